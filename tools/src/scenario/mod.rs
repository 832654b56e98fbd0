//! Scenario files: which domains to boot, with which images and resources.
//!
//! A scenario is a TOML file with an optional `[machine]` table and one
//! `[[domain]]` table per domain. Every error names the file, the line and the
//! field, e.g. `scenarios/x.toml:12: domain[1].memory_mib: 4096 is out of range 2..=512`.
//!
//! `parse` validates the machine and domain fields, `net` a guest's network
//! keys, `runtime` the control-domain and autostart keys; `raw` holds the TOML
//! types as deserialized, `error` the located errors.

use std::path::{Path, PathBuf};

mod error;
mod net;
mod parse;
mod raw;
mod runtime;

use error::Cx;
use raw::RawDomain;

pub use error::{Located, ScenarioError};
pub use net::{
    in_subnet, parse_cidr, parse_mac, NetIp, NetSpec, PortForward, NIC_MAC, USER_NET,
    USER_NET_DHCP, USER_NET_DNS, USER_NET_GATEWAY,
};
pub use parse::parse;

/// One MiB.
pub const MIB: u64 = 1024 * 1024;

/// Default `machine.cpus`.
pub const DEFAULT_CPUS: u32 = 1;
/// Default `machine.memory_mib`.
pub const DEFAULT_MACHINE_MEMORY_MIB: u64 = 1024;
/// Default `machine.timeslice_ms`.
pub const DEFAULT_TIMESLICE_MS: u32 = 10;
/// Default `domain.memory_mib`.
pub const DEFAULT_DOMAIN_MEMORY_MIB: u64 = 32;
/// Longest `domain.cmdline`, in bytes.
pub const MAX_CMDLINE_BYTES: usize = 255;
/// Longest domain name.
pub const MAX_NAME_LEN: usize = 31;

/// The role of a domain and its crash policy: the hypervisor's types, so the
/// values a scenario names are the ones the bootargs carry (`as_str`,
/// `from_name`).
pub use parapet_abi::bootargs::{OnCrash, Role};

/// Where a domain's image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A binary target of the workspace, built by `parapet build`.
    Bin(String),
    /// An existing ELF file.
    File(PathBuf),
    /// A guest crate of its own, by its `Cargo.toml` (absolute): built by
    /// `parapet` in its own directory (see [`crate::image`]).
    Crate(PathBuf),
}

/// The `[machine]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Physical CPUs (QEMU `-smp`).
    pub cpus: u32,
    /// RAM in MiB (QEMU `-m`).
    pub memory_mib: u64,
    /// Scheduler time slice passed to the hypervisor.
    pub timeslice_ms: u32,
    /// Run QEMU with `-icount shift=0`: deterministic, one instruction per
    /// virtual cycle, and the PMU counts instructions (for `bench micro`).
    pub icount: bool,
}

impl Default for Machine {
    fn default() -> Self {
        Machine {
            cpus: DEFAULT_CPUS,
            memory_mib: DEFAULT_MACHINE_MEMORY_MIB,
            timeslice_ms: DEFAULT_TIMESLICE_MS,
            icount: false,
        }
    }
}

/// One `[[domain]]` table, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Unique name, `[a-z0-9_-]{1,31}`.
    pub name: String,
    /// Driver or guest.
    pub role: Role,
    /// The image as written in the file.
    pub image: String,
    /// Where the image comes from.
    pub source: ImageSource,
    /// RAM in MiB.
    pub memory_mib: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Physical CPU the domain is pinned to.
    pub cpu: Option<u32>,
    /// Command line passed to the domain.
    pub cmdline: Option<String>,
    /// Crash policy.
    pub on_crash: OnCrash,
    /// Console input goes to this domain (default: the driver domain).
    pub console_input: bool,
    /// The control domain (`control = true`): it may create, destroy, pause
    /// and unpause the others (by default the driver domain is).
    pub control: bool,
    /// Started at boot (`autostart = false`: only loaded, for the control
    /// domain to create later).
    pub autostart: bool,
    /// Its virtual disk (`vbd0`), served by the driver domain.
    pub disk: Option<DiskSpec>,
    /// Its network interface (`vif0`), switched by the driver domain.
    pub net: Option<NetSpec>,
    /// Index of the `[[domain]]` table in the file (0-based).
    pub index: usize,
    /// Line of the `image` field.
    pub image_line: usize,
}

/// A guest's virtual disk: a raw image file, or a range of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// The image file (relative paths are resolved against the workspace root).
    pub image: PathBuf,
    /// Size of the image when `parapet` has to create it, in MiB.
    pub size_mib: u64,
    /// First sector of the range (default 0).
    pub start_sector: u64,
    /// Sectors in the range (default: to the end of the image).
    pub sectors: Option<u64>,
    /// The guest may not write.
    pub readonly: bool,
    /// `path:line: domain[N].disk`, for errors found when the image is opened.
    pub location: String,
}

/// Size of a disk image `parapet` creates when the scenario gives none.
pub const DEFAULT_DISK_MIB: u64 = 8;

/// A validated scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// The file, as given by the user.
    pub path: PathBuf,
    /// The machine.
    pub machine: Machine,
    /// The domains, driver first, then in file order.
    pub domains: Vec<Domain>,
}

impl Scenario {
    /// Names of the domains, driver first.
    pub fn domain_names(&self) -> Vec<String> {
        self.domains.iter().map(|d| d.name.clone()).collect()
    }

    /// Location prefix (`path:line`) of a domain's image field, for errors found later.
    pub fn image_location(&self, d: &Domain) -> String {
        format!(
            "{}:{}: domain[{}].image",
            self.path.display(),
            d.image_line,
            d.index
        )
    }
}

/// Reads and validates a scenario file.
///
/// Relative image paths are looked up in the scenario file's directory (crates
/// and ELF files), then in `workspace_root` (ELF files); see [`crate::image`].
pub fn load(path: &Path, workspace_root: &Path) -> Result<Scenario, ScenarioError> {
    let src = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_owned(),
        source,
    })?;
    let dir = path.parent().map(Path::to_owned).unwrap_or_default();
    parse(&src, path, &dir, workspace_root)
}

#[cfg(test)]
mod net_tests;
#[cfg(test)]
mod tests;
