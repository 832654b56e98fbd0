//! Scenario files: which domains to boot, with which images and resources.
//!
//! A scenario is a TOML file with an optional `[machine]` table and one
//! `[[domain]]` table per domain. Every error names the file, the line and the
//! field, e.g. `scenarios/x.toml:12: domain[1].memory_mib: 4096 is out of range 2..=512`.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use parapet_abi::layout::{GUEST_POOL_BASE, MAX_DOMAINS, RAM_BASE};
use parapet_abi::MacAddr;
use serde::Deserialize;
use toml::Spanned;

mod runtime;

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

/// An error in a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed or a value is invalid.
    #[error("{}", .0)]
    Invalid(Box<Located>),
}

/// A scenario error located in the file: path, line and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The scenario file, as given by the user.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted field path such as `domain[1].memory_mib`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl ScenarioError {
    /// The located error, if this is one.
    pub fn located(&self) -> Option<&Located> {
        match self {
            ScenarioError::Invalid(l) => Some(l),
            ScenarioError::Read { .. } => None,
        }
    }
}

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

/// A guest's network interface (`net = { … }`): the driver domain switches
/// it onto QEMU's user network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSpec {
    /// Its MAC address (default `02:00:00:00:00:NN`, NN = position in the file).
    pub mac: MacAddr,
    /// How it gets its IPv4 address.
    pub ip: NetIp,
    /// TCP ports forwarded from the host to it.
    pub forward: Vec<PortForward>,
    /// `path:line: domain[N].net`, for errors found later.
    pub location: String,
}

/// How a guest gets its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetIp {
    /// From QEMU's DHCP server (the default).
    Dhcp,
    /// A static address.
    Static {
        /// The address.
        addr: Ipv4Addr,
        /// Its prefix length (1..=30).
        prefix: u8,
        /// The default gateway, if any.
        gateway: Option<Ipv4Addr>,
    },
}

/// A TCP port forwarded from the host (`127.0.0.1`) to a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortForward {
    /// The host port (0: any free port).
    pub host: u16,
    /// The guest's port.
    pub guest: u16,
}

/// QEMU's user network (`-netdev user,net=…`): its address and prefix.
pub const USER_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 0, 2, 0), 24);
/// The user network's gateway (QEMU's host side).
pub const USER_NET_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The user network's DNS server.
pub const USER_NET_DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// The addresses QEMU's DHCP server hands out (16 from `.15`).
pub const USER_NET_DHCP: (Ipv4Addr, Ipv4Addr) =
    (Ipv4Addr::new(10, 0, 2, 15), Ipv4Addr::new(10, 0, 2, 30));
/// The MAC address of QEMU's NIC (the driver domain's uplink).
pub const NIC_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

/// Parses `aa:bb:cc:dd:ee:ff` (hex digits in either case, [`MacAddr::parse`])
/// into a unicast, non-zero MAC address.
pub fn parse_mac(s: &str) -> Result<MacAddr, String> {
    let mac = MacAddr::parse(s).map_err(|e| {
        format!("{s:?} is not a MAC address ({e}): write six hex bytes, e.g. \"02:00:00:00:00:0a\"")
    })?;
    if mac == MacAddr::ZERO {
        return Err(format!(
            "{s:?} is all zero: use a unicast address such as \"02:00:00:00:00:0a\""
        ));
    }
    if mac.is_multicast() {
        return Err(format!(
            "{s:?} is a multicast address (lowest bit of the first byte set): use a unicast one such as \"02:00:00:00:00:0a\""
        ));
    }
    Ok(mac)
}

/// Whether `a` is inside `net/prefix`.
pub fn in_subnet(a: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(a) & mask == u32::from(net) & mask
}

/// Parses a static `A.B.C.D/N` address (N in 1..=30) of a host: not the
/// network or broadcast address of its subnet, nor loopback, multicast or
/// unspecified.
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let bad = || {
        format!("{s:?} is neither \"dhcp\" nor an address with a prefix length such as \"10.0.2.15/24\"")
    };
    let (a, n) = s.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
    let prefix: u8 = match n.parse() {
        Ok(p) if !n.starts_with('+') => p,
        _ => return Err(bad()),
    };
    if !(1..=30).contains(&prefix) {
        return Err(format!(
            "prefix length /{prefix} of {s:?} is out of range 1..=30"
        ));
    }
    if addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() || addr.is_broadcast() {
        return Err(format!("{addr} cannot be a guest's address"));
    }
    let host = u32::from(addr) & (u32::MAX >> prefix);
    if host == 0 || host == u32::MAX >> prefix {
        return Err(format!(
            "{addr} is the {} address of its subnet /{prefix}",
            if host == 0 { "network" } else { "broadcast" }
        ));
    }
    Ok((addr, prefix))
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    machine: Option<RawMachine>,
    #[serde(default)]
    domain: Vec<Spanned<RawDomain>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    cpus: Option<Spanned<i64>>,
    memory_mib: Option<Spanned<i64>>,
    timeslice_ms: Option<Spanned<i64>>,
    icount: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    name: Option<Spanned<String>>,
    role: Option<Spanned<String>>,
    image: Option<Spanned<String>>,
    memory_mib: Option<Spanned<i64>>,
    vcpus: Option<Spanned<i64>>,
    cpu: Option<Spanned<i64>>,
    cmdline: Option<Spanned<String>>,
    on_crash: Option<Spanned<String>>,
    console_input: Option<Spanned<bool>>,
    control: Option<Spanned<bool>>,
    autostart: Option<Spanned<bool>>,
    disk: Option<Spanned<RawDisk>>,
    net: Option<Spanned<RawNet>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNet {
    mac: Option<Spanned<String>>,
    ip: Option<Spanned<String>>,
    gateway: Option<Spanned<String>>,
    forward: Option<Vec<Spanned<RawForward>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    host: Spanned<i64>,
    guest: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisk {
    image: String,
    size_mib: Option<Spanned<i64>>,
    start_sector: Option<Spanned<i64>>,
    sectors: Option<Spanned<i64>>,
    readonly: Option<bool>,
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

/// Parses and validates scenario text; `path` is only used in messages, `dir`
/// and `workspace_root` to resolve relative image paths.
pub fn parse(
    src: &str,
    path: &Path,
    dir: &Path,
    workspace_root: &Path,
) -> Result<Scenario, ScenarioError> {
    let cx = Cx { src, path };
    let raw: RawScenario = toml::from_str(src).map_err(|e| cx.toml_error(&e))?;

    let mut machine = Machine::default();
    if let Some(m) = &raw.machine {
        if let Some(v) = &m.cpus {
            machine.cpus = cx.int_in(v, "machine.cpus", 1, 8)? as u32;
        }
        if let Some(v) = &m.memory_mib {
            machine.memory_mib = cx.int_in(v, "machine.memory_mib", 512, 3072)? as u64;
        }
        if let Some(v) = &m.timeslice_ms {
            machine.timeslice_ms = cx.int_in(v, "machine.timeslice_ms", 1, 1000)? as u32;
        }
        machine.icount = m.icount.unwrap_or(false);
    }

    if raw.domain.is_empty() {
        return Err(cx.err(
            None,
            None,
            "no [[domain]] table: a scenario needs at least one domain".into(),
        ));
    }
    if let Some(over) = raw.domain.get(MAX_DOMAINS) {
        return Err(cx.err(
            Some(cx.line(over.span().start)),
            Some(format!("domain[{MAX_DOMAINS}]")),
            format!(
                "too many domains: the hypervisor runs at most {MAX_DOMAINS} (driver domain included) and this file has {}; this is the first one over the limit",
                raw.domain.len()
            ),
        ));
    }

    let mut domains: Vec<Domain> = Vec::new();
    let mut driver_seen: Option<usize> = None;
    for (i, sd) in raw.domain.iter().enumerate() {
        let d = sd.get_ref();
        let dline = cx.line(sd.span().start);
        let f = |name: &str| format!("domain[{i}].{name}");

        let name = match &d.name {
            None => return Err(cx.err(Some(dline), Some(f("name")), "missing (required)".into())),
            Some(n) => {
                let s = n.get_ref();
                let ok = !s.is_empty()
                    && s.len() <= MAX_NAME_LEN
                    && s.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    });
                if !ok {
                    return Err(cx.at(
                        n,
                        f("name"),
                        format!("{s:?} is not a valid name: use 1 to {MAX_NAME_LEN} characters from [a-z0-9_-]"),
                    ));
                }
                if let Some(prev) = domains.iter().find(|p| p.name == *s) {
                    return Err(cx.at(
                        n,
                        f("name"),
                        format!(
                            "duplicate domain name {s:?} (already used by domain[{}])",
                            prev.index
                        ),
                    ));
                }
                s.clone()
            }
        };

        let role = match &d.role {
            None => Role::Guest,
            Some(r) => match Role::from_name(r.get_ref()) {
                Some(Role::Driver) => {
                    if let Some(prev) = driver_seen {
                        return Err(cx.at(
                            r,
                            f("role"),
                            format!("a second driver domain: domain[{prev}] is already the driver (at most one is allowed)"),
                        ));
                    }
                    driver_seen = Some(i);
                    Role::Driver
                }
                Some(Role::Guest) => Role::Guest,
                None => {
                    return Err(cx.at(
                        r,
                        f("role"),
                        format!(
                            "unknown role {:?}: expected \"driver\" or \"guest\"",
                            r.get_ref()
                        ),
                    ))
                }
            },
        };

        let (image, image_line, source) = match &d.image {
            None => {
                return Err(cx.err(
                    Some(dline),
                    Some(f("image")),
                    "missing (required): a crate directory, a Cargo.toml, an ELF file path or a workspace binary name".into(),
                ))
            }
            Some(img) => {
                let s = img.get_ref();
                let source = crate::image::resolve(s, dir, workspace_root)
                    .map_err(|msg| cx.at(img, f("image"), msg))?;
                (s.clone(), cx.line(img.span().start), source)
            }
        };

        let memory_mib = match &d.memory_mib {
            None => DEFAULT_DOMAIN_MEMORY_MIB,
            Some(v) => {
                let max = if role == Role::Driver { 128 } else { 512 };
                cx.int_in(v, &f("memory_mib"), 2, max)? as u64
            }
        };
        let vcpus = match &d.vcpus {
            None => 1,
            Some(v) => cx.int_in(v, &f("vcpus"), 1, 8)? as u32,
        };
        let cpu = match &d.cpu {
            None => None,
            Some(v) => {
                let c = *v.get_ref();
                if c < 0 || c >= i64::from(machine.cpus) {
                    return Err(cx.at(
                        v,
                        f("cpu"),
                        format!(
                            "{c} is not a physical CPU: the machine has {} (machine.cpus), so use 0..={}",
                            machine.cpus,
                            machine.cpus - 1
                        ),
                    ));
                }
                Some(c as u32)
            }
        };
        let cmdline = match &d.cmdline {
            None => None,
            Some(c) => {
                let s = c.get_ref();
                if s.len() > MAX_CMDLINE_BYTES {
                    return Err(cx.at(
                        c,
                        f("cmdline"),
                        format!(
                            "{} bytes long, at most {MAX_CMDLINE_BYTES} allowed",
                            s.len()
                        ),
                    ));
                }
                if s.contains('\0') {
                    return Err(cx.at(c, f("cmdline"), "contains a NUL character".into()));
                }
                Some(s.clone())
            }
        };
        let on_crash = match &d.on_crash {
            None => OnCrash::Destroy,
            Some(o) => OnCrash::from_name(o.get_ref()).ok_or_else(|| {
                cx.at(
                    o,
                    f("on_crash"),
                    format!(
                        "unknown policy {:?}: \"destroy\" or \"restart\"",
                        o.get_ref()
                    ),
                )
            })?,
        };

        let console_input = match &d.console_input {
            Some(c) if *c.get_ref() => {
                if let Some(prev) = domains.iter().find(|p| p.console_input) {
                    return Err(cx.at(
                        c,
                        f("console_input"),
                        format!(
                            "domain {:?} already takes the console input: only one domain may",
                            prev.name
                        ),
                    ));
                }
                true
            }
            _ => false,
        };

        let (control, autostart) = runtime::keys(&cx, d, i, role, &domains)?;

        let disk = match &d.disk {
            None => None,
            Some(sd) if role == Role::Driver => {
                return Err(cx.at(
                    sd,
                    f("disk"),
                    "the driver domain serves disks; give the disk to a guest".into(),
                ))
            }
            Some(sd) => {
                let raw = sd.get_ref();
                if raw.image.is_empty() || raw.image.contains('\0') || raw.image.contains(',') {
                    return Err(cx.at(
                        sd,
                        f("disk.image"),
                        "needs a file path (without commas)".into(),
                    ));
                }
                let image = Path::new(&raw.image);
                let image = if image.is_absolute() {
                    image.to_owned()
                } else {
                    workspace_root.join(image)
                };
                let size_mib = match &raw.size_mib {
                    None => DEFAULT_DISK_MIB,
                    Some(v) => cx.int_in(v, &f("disk.size_mib"), 1, 4096)? as u64,
                };
                let start_sector = match &raw.start_sector {
                    None => 0,
                    Some(v) => cx.int_in(v, &f("disk.start_sector"), 0, i64::MAX / 1024)? as u64,
                };
                let sectors = match &raw.sectors {
                    None => None,
                    Some(v) => Some(cx.int_in(v, &f("disk.sectors"), 1, i64::MAX / 1024)? as u64),
                };
                Some(DiskSpec {
                    image,
                    size_mib,
                    start_sector,
                    sectors,
                    readonly: raw.readonly.unwrap_or(false),
                    location: format!(
                        "{}:{}: domain[{i}].disk",
                        path.display(),
                        cx.line(sd.span().start)
                    ),
                })
            }
        };

        let net = match &d.net {
            None => None,
            // The driver domain's own address on the uplink (its NIC's MAC), for
            // its `uplink_sink` mode (bench net): static only, it runs no DHCP.
            Some(sn) if role == Role::Driver => {
                let n = parse_net(&cx, sn, i, &domains)?;
                if !matches!(n.ip, NetIp::Static { .. }) {
                    return Err(cx.at(
                        sn,
                        f("net"),
                        "the driver domain runs the network backend: its own `net` is only a static address on the uplink (for `uplink_sink`); give a guest its interface"
                            .into(),
                    ));
                }
                Some(n)
            }
            Some(sn) => Some(parse_net(&cx, sn, i, &domains)?),
        };

        domains.push(Domain {
            name,
            role,
            image,
            source,
            memory_mib,
            vcpus,
            cpu,
            cmdline,
            on_crash,
            console_input,
            control,
            autostart,
            disk,
            net,
            index: i,
            image_line,
        });
    }

    check_dhcp_pool(&cx, &domains, &raw.domain)?;
    runtime::check(&cx, &domains, &raw.domain)?;

    // Total guest memory must fit in the guest pool.
    let reserved_mib = (GUEST_POOL_BASE - RAM_BASE) / MIB;
    let pool_mib = machine.memory_mib.saturating_sub(reserved_mib);
    let mut total = 0;
    for (d, sd) in domains.iter().zip(&raw.domain) {
        if d.role == Role::Driver {
            continue;
        }
        total += d.memory_mib;
        if total > pool_mib {
            let (line, field) = match &sd.get_ref().memory_mib {
                Some(v) => (
                    cx.line(v.span().start),
                    format!("domain[{}].memory_mib", d.index),
                ),
                None => (cx.line(sd.span().start), format!("domain[{}]", d.index)),
            };
            return Err(cx.err(
                Some(line),
                Some(field),
                format!(
                    "guest memory does not fit: the guests need {total} MiB so far, but the guest pool has only {pool_mib} MiB \
                     (machine.memory_mib {} minus {reserved_mib} MiB for the hypervisor, images and driver domain)",
                    machine.memory_mib
                ),
            ));
        }
    }

    // The driver domain goes first: the hypervisor gives it domain id 0.
    domains.sort_by_key(|d| (d.role != Role::Driver, d.index));

    Ok(Scenario {
        path: path.to_owned(),
        machine,
        domains,
    })
}

/// Validates a guest's `net = { … }` against the domains before it (MACs,
/// static addresses and host ports are unique).
fn parse_net(
    cx: &Cx,
    sn: &Spanned<RawNet>,
    i: usize,
    earlier: &[Domain],
) -> Result<NetSpec, ScenarioError> {
    let raw = sn.get_ref();
    let f = |name: &str| format!("domain[{i}].net.{name}");
    let others = || {
        earlier
            .iter()
            .filter_map(|d| d.net.as_ref().map(|n| (d.index, n)))
    };

    // Where a MAC error points: the field, or the table for the default.
    let (mac, mac_line, mac_field) = match &raw.mac {
        Some(m) => (
            parse_mac(m.get_ref()).map_err(|msg| cx.at(m, f("mac"), msg))?,
            cx.line(m.span().start),
            f("mac"),
        ),
        // One byte is enough: a scenario has at most MAX_DOMAINS (32) domains.
        None => (
            MacAddr([0x02, 0, 0, 0, 0, u8::try_from(i + 1).unwrap_or(0)]),
            cx.line(sn.span().start),
            format!("domain[{i}].net"),
        ),
    };
    let mac_err = |msg: String| cx.err(Some(mac_line), Some(mac_field.clone()), msg);
    let which = if raw.mac.is_some() {
        "MAC"
    } else {
        "default MAC"
    };
    if mac == NIC_MAC {
        return Err(mac_err(format!(
            "{which} {mac} is the address of QEMU's NIC (the driver domain's uplink): use another"
        )));
    }
    if let Some((j, _)) = others().find(|(_, n)| n.mac == mac) {
        return Err(mac_err(format!(
            "{which} {mac} is already used by domain[{j}]: set a unique net.mac"
        )));
    }

    let ip = match &raw.ip {
        None => NetIp::Dhcp,
        Some(v) if v.get_ref() == "dhcp" => NetIp::Dhcp,
        Some(v) => {
            let (addr, prefix) = parse_cidr(v.get_ref()).map_err(|msg| cx.at(v, f("ip"), msg))?;
            let in_user_net = in_subnet(addr, USER_NET.0, USER_NET.1);
            if in_user_net && (addr == USER_NET_GATEWAY || addr == USER_NET_DNS) {
                return Err(cx.at(
                    v,
                    f("ip"),
                    format!(
                        "{addr} belongs to QEMU's user network ({USER_NET_GATEWAY} is its gateway, {USER_NET_DNS} its DNS server): use another address"
                    ),
                ));
            }
            let dup =
                others().find(|(_, n)| matches!(n.ip, NetIp::Static { addr: a, .. } if a == addr));
            if let Some((j, _)) = dup {
                return Err(cx.at(
                    v,
                    f("ip"),
                    format!("{addr} is already the address of domain[{j}]"),
                ));
            }
            let gateway = match &raw.gateway {
                Some(g) => {
                    let gw: Ipv4Addr = g.get_ref().parse().map_err(|_| {
                        cx.at(
                            g,
                            f("gateway"),
                            format!(
                                "{:?} is not an IPv4 address such as \"10.0.2.2\"",
                                g.get_ref()
                            ),
                        )
                    })?;
                    if gw == addr || !in_subnet(gw, addr, prefix) {
                        return Err(cx.at(
                            g,
                            f("gateway"),
                            format!(
                                "{gw} is not another address of the guest's subnet {addr}/{prefix}"
                            ),
                        ));
                    }
                    Some(gw)
                }
                None if in_user_net => {
                    if !in_subnet(USER_NET_GATEWAY, addr, prefix) {
                        return Err(cx.at(
                            v,
                            f("ip"),
                            format!(
                                "the default gateway {USER_NET_GATEWAY} is outside {}: use a shorter prefix such as /24, or set net.gateway",
                                v.get_ref()
                            ),
                        ));
                    }
                    Some(USER_NET_GATEWAY)
                }
                None => None,
            };
            NetIp::Static {
                addr,
                prefix,
                gateway,
            }
        }
    };
    if let (Some(g), NetIp::Dhcp) = (&raw.gateway, ip) {
        return Err(cx.at(
            g,
            f("gateway"),
            "a gateway goes with a static address (net.ip = \"A.B.C.D/N\"); with DHCP the server gives it".into(),
        ));
    }

    let mut forward: Vec<PortForward> = Vec::new();
    for (k, sf) in raw.forward.iter().flatten().enumerate() {
        let fw = sf.get_ref();
        let ff = |name: &str| format!("domain[{i}].net.forward[{k}].{name}");
        let host = cx.int_in(&fw.host, &ff("host"), 0, 65535)? as u16;
        let guest = cx.int_in(&fw.guest, &ff("guest"), 1, 65535)? as u16;
        if !matches!(ip, NetIp::Static { addr, .. } if in_subnet(addr, USER_NET.0, USER_NET.1)) {
            return Err(cx.at(
                sf,
                format!("domain[{i}].net.forward[{k}]"),
                format!(
                    "forwarding needs a static net.ip inside QEMU's user network {}/{}, e.g. \"10.0.2.10/24\"",
                    USER_NET.0, USER_NET.1
                ),
            ));
        }
        if host != 0 {
            let mine = forward.iter().any(|p| p.host == host);
            let theirs = others().find(|(_, n)| n.forward.iter().any(|p| p.host == host));
            if mine || theirs.is_some() {
                let by = theirs.map_or(format!("domain[{i}]"), |(j, _)| format!("domain[{j}]"));
                return Err(cx.at(
                    &fw.host,
                    ff("host"),
                    format!("host port {host} is already forwarded (to {by}): each host port goes to one guest port"),
                ));
            }
        }
        forward.push(PortForward { host, guest });
    }

    Ok(NetSpec {
        mac,
        ip,
        forward,
        location: format!(
            "{}:{}: domain[{i}].net",
            cx.path.display(),
            cx.line(sn.span().start)
        ),
    })
}

/// A static address in the range QEMU's DHCP server hands out would clash
/// with a DHCP guest's.
fn check_dhcp_pool(
    cx: &Cx,
    domains: &[Domain],
    raw: &[Spanned<RawDomain>],
) -> Result<(), ScenarioError> {
    let dhcp = domains
        .iter()
        .find(|d| matches!(&d.net, Some(n) if n.ip == NetIp::Dhcp));
    let Some(dhcp) = dhcp else { return Ok(()) };
    for d in domains {
        let Some(NetSpec {
            ip: NetIp::Static { addr, .. },
            ..
        }) = &d.net
        else {
            continue;
        };
        if (USER_NET_DHCP.0..=USER_NET_DHCP.1).contains(addr) {
            let v = raw[d.index]
                .get_ref()
                .net
                .as_ref()
                .and_then(|n| n.get_ref().ip.as_ref());
            let line = v.map(|v| cx.line(v.span().start));
            return Err(cx.err(
                line,
                Some(format!("domain[{}].net.ip", d.index)),
                format!(
                    "{addr} is in the range QEMU's DHCP server hands out ({} to {}) and domain[{}] uses DHCP: pick an address outside it, e.g. 10.0.2.10",
                    USER_NET_DHCP.0, USER_NET_DHCP.1, dhcp.index
                ),
            ));
        }
    }
    Ok(())
}

struct Cx<'a> {
    src: &'a str,
    path: &'a Path,
}

impl Cx<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err(&self, line: Option<usize>, field: Option<String>, message: String) -> ScenarioError {
        ScenarioError::Invalid(Box::new(Located {
            path: self.path.to_owned(),
            line,
            field,
            message,
        }))
    }

    fn at<T>(&self, v: &Spanned<T>, field: String, message: String) -> ScenarioError {
        self.err(Some(self.line(v.span().start)), Some(field), message)
    }

    fn int_in(
        &self,
        v: &Spanned<i64>,
        field: &str,
        lo: i64,
        hi: i64,
    ) -> Result<i64, ScenarioError> {
        let x = *v.get_ref();
        if (lo..=hi).contains(&x) {
            Ok(x)
        } else {
            Err(self.at(
                v,
                field.to_owned(),
                format!("{x} is out of range {lo}..={hi}"),
            ))
        }
    }

    fn toml_error(&self, e: &toml::de::Error) -> ScenarioError {
        let message = e.message().trim().to_owned();
        match e.span() {
            Some(span) => {
                let field = field_at(self.src, span.start);
                self.err(Some(self.line(span.start)), field, message)
            }
            None => self.err(None, None, message),
        }
    }
}

/// Guesses the dotted field path of the key on the line containing `offset`,
/// from the table headers above it (`machine`, `domain[N]`).
fn field_at(src: &str, offset: usize) -> Option<String> {
    let offset = offset.min(src.len());
    let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
    let mut section: Option<String> = None;
    let mut domain_idx: usize = 0;
    let mut header = |line: &str, section: &mut Option<String>| -> Option<String> {
        let t = strip_comment(line).trim();
        if let Some(inner) = t.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            let name = inner.trim();
            let s = if name == "domain" {
                domain_idx += 1;
                format!("domain[{}]", domain_idx - 1)
            } else {
                name.to_owned()
            };
            *section = Some(s.clone());
            Some(s)
        } else if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let s = inner.trim().to_owned();
            *section = Some(s.clone());
            Some(s)
        } else {
            None
        }
    };
    for line in src[..line_start].lines() {
        header(line, &mut section);
    }
    let current = &src[line_start..line_end];
    if let Some(h) = header(current, &mut section) {
        return Some(h);
    }
    let code = strip_comment(current);
    let key = code
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches(|c| c == '"' || c == '\'').to_owned());
    match (section, key) {
        (Some(s), Some(k)) if !k.is_empty() => Some(format!("{s}.{k}")),
        (None, Some(k)) if !k.is_empty() => Some(k),
        (s, _) => s,
    }
}

fn strip_comment(line: &str) -> &str {
    // Good enough for locating keys: a '#' inside a string on an erroneous line
    // only shortens what we look at.
    line.split('#').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    pub(super) fn parse_str(src: &str) -> Result<Scenario, ScenarioError> {
        parse(
            src,
            Path::new("scenarios/x.toml"),
            Path::new("scenarios"),
            &root(),
        )
    }

    fn err(src: &str) -> Located {
        match parse_str(src) {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(e) => e
                .located()
                .cloned()
                .unwrap_or_else(|| panic!("not located: {e}")),
        }
    }

    pub(super) fn assert_err(src: &str, line: usize, field: &str, contains: &str) {
        let e = err(src);
        let text = e.to_string();
        assert_eq!(e.line, Some(line), "{text}");
        assert_eq!(e.field.as_deref(), Some(field), "{text}");
        assert!(
            text.contains(contains),
            "{text:?} should contain {contains:?}"
        );
        assert!(
            text.starts_with(&format!("scenarios/x.toml:{line}: {field}: ")),
            "{text}"
        );
    }

    const DEMO: &str = r#"# demo
[machine]
cpus = 2
memory_mib = 1024
timeslice_ms = 5

[[domain]]
name = "guest-a"
image = "demo-guest"
cpu = 1

[[domain]]
name = "driver"
role = "driver"
image = "driver-domain"
memory_mib = 64
cpu = 0
cmdline = "a,b c"
on_crash = "destroy"
"#;

    #[test]
    fn parses_demo_and_puts_driver_first() {
        let s = parse_str(DEMO).unwrap();
        assert_eq!(
            s.machine,
            Machine {
                cpus: 2,
                memory_mib: 1024,
                timeslice_ms: 5,
                icount: false,
            }
        );
        assert_eq!(s.domain_names(), ["driver", "guest-a"]);
        let d = &s.domains[0];
        assert_eq!(d.role, Role::Driver);
        assert_eq!(d.memory_mib, 64);
        assert_eq!(d.cpu, Some(0));
        assert_eq!(d.cmdline.as_deref(), Some("a,b c"));
        assert_eq!(d.source, ImageSource::Bin("driver-domain".into()));
        assert_eq!(d.index, 1);
        assert_eq!(d.image_line, 15);
        let g = &s.domains[1];
        assert_eq!(g.role, Role::Guest);
        assert_eq!(g.memory_mib, DEFAULT_DOMAIN_MEMORY_MIB);
        assert_eq!(g.vcpus, 1);
        assert_eq!(g.cmdline, None);
    }

    #[test]
    fn defaults() {
        let s = parse_str("[[domain]]\nname = \"a\"\nimage = \"x\"\n").unwrap();
        assert_eq!(s.machine, Machine::default());
        assert_eq!(s.domains.len(), 1);
    }

    #[test]
    fn unknown_field() {
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\nmemory = 3\n",
            4,
            "domain[0].memory",
            "unknown field `memory`",
        );
        assert_err(
            "[machine]\ncpu = 2\n[[domain]]\nname = \"a\"\nimage = \"x\"\n",
            2,
            "machine.cpu",
            "unknown field",
        );
    }

    #[test]
    fn unknown_table() {
        let e = err("[machin]\ncpus = 2\n[[domain]]\nname = \"a\"\nimage = \"x\"\n");
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.to_string().contains("machin"), "{e}");
    }

    #[test]
    fn wrong_type() {
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\n\n[[domain]]\nname = \"b\"\nimage = \"x\"\nmemory_mib = \"64\"\n",
            8,
            "domain[1].memory_mib",
            "invalid type",
        );
        assert_err(
            "[machine]\ncpus = 1.5\n[[domain]]\nname = \"a\"\nimage = \"x\"\n",
            2,
            "machine.cpus",
            "invalid type",
        );
    }

    #[test]
    fn syntax_error_has_line() {
        let e = err("[[domain]]\nname = \"a\nimage = \"x\"\n");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn out_of_range() {
        let two =
            "[[domain]]\nname = \"a\"\nimage = \"x\"\n\n[[domain]]\nname = \"b\"\nimage = \"x\"\n";
        assert_err(
            &format!("{two}memory_mib = 4096\n"),
            8,
            "domain[1].memory_mib",
            "4096 is out of range 2..=512",
        );
        assert_err(
            "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"x\"\nmemory_mib = 256\n",
            5,
            "domain[0].memory_mib",
            "256 is out of range 2..=128",
        );
        assert_err(
            "[machine]\ncpus = 9\n[[domain]]\nname = \"a\"\nimage = \"x\"\n",
            2,
            "machine.cpus",
            "9 is out of range 1..=8",
        );
        assert_err(
            "[machine]\nmemory_mib = 256\n[[domain]]\nname = \"a\"\nimage = \"x\"\n",
            2,
            "machine.memory_mib",
            "out of range 512..=3072",
        );
        assert_err(
            "[machine]\ntimeslice_ms = 0\n[[domain]]\nname = \"a\"\nimage = \"x\"\n",
            2,
            "machine.timeslice_ms",
            "out of range 1..=1000",
        );
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\nvcpus = -1\n",
            4,
            "domain[0].vcpus",
            "-1 is out of range 1..=8",
        );
    }

    #[test]
    fn duplicate_name() {
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\n[[domain]]\nname = \"a\"\nimage = \"x\"\n",
            5,
            "domain[1].name",
            "duplicate domain name \"a\"",
        );
    }

    #[test]
    fn bad_name() {
        assert_err(
            "[[domain]]\nname = \"Guest A\"\nimage = \"x\"\n",
            2,
            "domain[0].name",
            "not a valid name",
        );
        assert_err(
            &format!("[[domain]]\nname = \"{}\"\nimage = \"x\"\n", "a".repeat(32)),
            2,
            "domain[0].name",
            "not a valid name",
        );
    }

    #[test]
    fn one_console_input_domain() {
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\nconsole_input = true\n[[domain]]\nname = \"b\"\nimage = \"x\"\nconsole_input = true\n",
            8,
            "domain[1].console_input",
            "already takes the console input",
        );
    }

    #[test]
    fn two_drivers() {
        assert_err(
            "[[domain]]\nname = \"a\"\nrole = \"driver\"\nimage = \"x\"\n[[domain]]\nname = \"b\"\nrole = \"driver\"\nimage = \"x\"\n",
            7,
            "domain[1].role",
            "at most one",
        );
    }

    #[test]
    fn crash_policies() {
        let s = parse_str(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\non_crash = \"restart\"\n\
             [[domain]]\nname = \"b\"\nimage = \"x\"\non_crash = \"destroy\"\n\
             [[domain]]\nname = \"c\"\nimage = \"x\"\n",
        )
        .unwrap();
        let policies: Vec<OnCrash> = s.domains.iter().map(|d| d.on_crash).collect();
        assert_eq!(
            policies,
            [OnCrash::Restart, OnCrash::Destroy, OnCrash::Destroy]
        );
        assert_eq!(OnCrash::Restart.as_str(), "restart");
    }

    #[test]
    fn bad_role_and_on_crash() {
        assert_err(
            "[[domain]]\nname = \"a\"\nrole = \"dom0\"\nimage = \"x\"\n",
            3,
            "domain[0].role",
            "unknown role",
        );
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\non_crash = \"reboot\"\n",
            4,
            "domain[0].on_crash",
            "\"destroy\" or \"restart\"",
        );
    }

    #[test]
    fn bad_pin() {
        assert_err(
            "[machine]\ncpus = 2\n[[domain]]\nname = \"a\"\nimage = \"x\"\ncpu = 2\n",
            6,
            "domain[0].cpu",
            "not a physical CPU",
        );
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\ncpu = 1\n",
            4,
            "domain[0].cpu",
            "0..=0",
        );
    }

    #[test]
    fn memory_overflow() {
        // 1024 MiB machine: 768 MiB guest pool.
        let mut s = String::new();
        for (i, m) in [512, 200, 100].iter().enumerate() {
            s += &format!("[[domain]]\nname = \"g{i}\"\nimage = \"x\"\nmemory_mib = {m}\n\n");
        }
        assert_err(
            &s,
            14,
            "domain[2].memory_mib",
            "guest pool has only 768 MiB",
        );
        // The driver domain does not count.
        let ok = "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"x\"\nmemory_mib = 128\n\
                  [[domain]]\nname = \"g\"\nimage = \"x\"\nmemory_mib = 512\n\
                  [[domain]]\nname = \"h\"\nimage = \"x\"\nmemory_mib = 256\n";
        parse_str(ok).unwrap();
    }

    #[test]
    fn missing_required() {
        assert_err(
            "[[domain]]\nname = \"a\"\n",
            1,
            "domain[0].image",
            "missing",
        );
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\n\n[[domain]]\nimage = \"x\"\n",
            5,
            "domain[1].name",
            "missing",
        );
        let e = err("[machine]\ncpus = 1\n");
        assert!(e.to_string().contains("at least one domain"), "{e}");
    }

    #[test]
    fn at_most_max_domains() {
        let domains = |n: usize| -> String {
            (0..n)
                .map(|i| format!("[[domain]]\nname = \"g{i}\"\nimage = \"x\"\nmemory_mib = 2\n\n"))
                .collect()
        };
        // Exactly the limit is fine (the driver domain counts like any other).
        let mut src = domains(MAX_DOMAINS);
        src = src.replacen("image = \"x\"\n", "role = \"driver\"\nimage = \"x\"\n", 1);
        assert_eq!(parse_str(&src).unwrap().domains.len(), MAX_DOMAINS);
        // One more is refused at its [[domain]] line, whatever its fields.
        let over = src.clone() + "[[domain]]\nname = \"BAD NAME\"\n";
        let line = src.lines().count() + 1;
        assert_err(
            &over,
            line,
            "domain[32]",
            "too many domains: the hypervisor runs at most 32 (driver domain included) and this file has 33",
        );
        assert!(err(&(over + &domains(2)))
            .to_string()
            .contains("this file has 35"));
    }

    #[test]
    fn cmdline_checks() {
        assert_err(
            &format!(
                "[[domain]]\nname = \"a\"\nimage = \"x\"\ncmdline = \"{}\"\n",
                "x".repeat(256)
            ),
            4,
            "domain[0].cmdline",
            "256 bytes",
        );
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\ncmdline = \"a\\u0000b\"\n",
            4,
            "domain[0].cmdline",
            "NUL",
        );
    }

    #[test]
    fn image_paths() {
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"images/nope.elf\"\n",
            3,
            "domain[0].image",
            "not found",
        );
        // Cargo.toml exists relative to the workspace root but is not an ELF file.
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"Cargo.toml\"\n",
            3,
            "domain[0].image",
            "not an ELF file",
        );
        let dir = std::env::temp_dir().join(format!("parapet-scn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let elf = dir.join("img.elf");
        std::fs::write(&elf, b"\x7fELF\x02\x01\x01\0").unwrap();
        let s = parse(
            "[[domain]]\nname = \"a\"\nimage = \"img.elf\"\n",
            &dir.join("s.toml"),
            &dir,
            &root(),
        )
        .unwrap();
        assert_eq!(s.domains[0].source, ImageSource::File(dir.join("img.elf")));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_file() {
        let e = load(Path::new("scenarios/does-not-exist.toml"), &root()).unwrap_err();
        assert!(matches!(e, ScenarioError::Read { .. }));
        assert!(
            e.to_string().contains("scenarios/does-not-exist.toml"),
            "{e}"
        );
    }

    /// A driver domain, then guest `g` (domain[1]) with `net = NET` on line 8.
    fn with_net(net: &str) -> String {
        format!(
            "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"x\"\n\
             [[domain]]\nname = \"g\"\nimage = \"x\"\nnet = {net}\n"
        )
    }

    /// [`with_net`] plus guest `h` (domain[2]) with `net = NET2` on line 12.
    fn with_nets(net: &str, net2: &str) -> String {
        format!(
            "{}[[domain]]\nname = \"h\"\nimage = \"x\"\nnet = {net2}\n",
            with_net(net)
        )
    }

    fn net_of(s: &Scenario, name: &str) -> NetSpec {
        let d = s.domains.iter().find(|d| d.name == name).unwrap();
        d.net.clone().unwrap()
    }

    #[test]
    fn net_fields_and_defaults() {
        let s = parse_str(&with_nets(
            r#"{ mac = "02:00:00:00:00:0A", ip = "10.0.2.10/24", gateway = "10.0.2.1", forward = [{ host = 8080, guest = 80 }, { host = 0, guest = 22 }] }"#,
            "{}",
        ))
        .unwrap();
        let g = net_of(&s, "g");
        assert_eq!(g.mac, MacAddr([2, 0, 0, 0, 0, 0x0a]));
        assert_eq!(
            g.ip,
            NetIp::Static {
                addr: Ipv4Addr::new(10, 0, 2, 10),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 0, 2, 1)),
            }
        );
        assert_eq!(
            g.forward,
            [
                PortForward {
                    host: 8080,
                    guest: 80
                },
                PortForward { host: 0, guest: 22 }
            ]
        );
        assert_eq!(g.location, "scenarios/x.toml:8: domain[1].net");
        // Every field is optional: DHCP, and a MAC from the position (3rd).
        let h = net_of(&s, "h");
        assert_eq!(h.mac.to_string(), "02:00:00:00:00:03");
        assert_eq!(h.ip, NetIp::Dhcp);
        assert!(h.forward.is_empty());
        assert_eq!(s.domains[0].net, None);
        // The default gateway inside QEMU's network; none outside it.
        let s = parse_str(&with_nets(
            r#"{ ip = "10.0.2.10/24" }"#,
            r#"{ ip = "192.168.7.9/16" }"#,
        ))
        .unwrap();
        assert!(matches!(
            net_of(&s, "g").ip,
            NetIp::Static { gateway: Some(g), .. } if g == USER_NET_GATEWAY
        ));
        assert!(matches!(
            net_of(&s, "h").ip,
            NetIp::Static {
                gateway: None,
                prefix: 16,
                ..
            }
        ));
        parse_str(&with_net(r#"{ ip = "dhcp" }"#)).unwrap();
    }

    #[test]
    fn net_errors() {
        let n = "domain[1].net";
        assert_err(
            "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"x\"\nnet = {}\n",
            5,
            "domain[0].net",
            "the driver domain runs the network backend",
        );
        // A static address is its own on the uplink (`uplink_sink`).
        parse_str(
            "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"x\"\nnet = { ip = \"10.0.2.15/24\" }\n",
        )
        .unwrap();
        for (mac, what) in [
            ("02:00:00:00:0a", "not a MAC address"),
            ("02:00:00:00:00:0g", "not a MAC address"),
            ("02-00-00-00-00-0a", "not a MAC address"),
            ("2:00:00:00:00:0a0", "not a MAC address"),
            ("00:00:00:00:00:00", "all zero"),
            ("01:00:5e:00:00:01", "multicast"),
            ("ff:ff:ff:ff:ff:ff", "multicast"),
            ("52:54:00:12:34:56", "QEMU's NIC"),
        ] {
            assert_err(
                &with_net(&format!("{{ mac = \"{mac}\" }}")),
                8,
                &format!("{n}.mac"),
                what,
            );
        }
        for (ip, what) in [
            ("10.0.2/24", "neither \"dhcp\" nor"),
            ("10.0.2.10", "neither \"dhcp\" nor"),
            ("10.0.2.10/+24", "neither \"dhcp\" nor"),
            ("DHCP", "neither \"dhcp\" nor"),
            ("10.0.2.10/31", "out of range 1..=30"),
            ("10.0.2.10/0", "out of range 1..=30"),
            ("10.0.2.0/24", "network address"),
            ("10.0.2.255/24", "broadcast address"),
            ("127.0.0.5/8", "cannot be a guest's address"),
            ("224.0.0.5/8", "cannot be a guest's address"),
            ("10.0.2.2/24", "QEMU's user network"),
            ("10.0.2.3/24", "QEMU's user network"),
            ("10.0.2.100/28", "default gateway 10.0.2.2 is outside"),
        ] {
            assert_err(
                &with_net(&format!("{{ ip = \"{ip}\" }}")),
                8,
                &format!("{n}.ip"),
                what,
            );
        }
        for (net, what) in [
            (r#"{ gateway = "10.0.2.2" }"#, "goes with a static address"),
            (
                r#"{ ip = "dhcp", gateway = "10.0.2.2" }"#,
                "goes with a static address",
            ),
            (
                r#"{ ip = "10.0.2.10/24", gateway = "10.0.2" }"#,
                "not an IPv4 address",
            ),
            (
                r#"{ ip = "10.0.2.10/24", gateway = "10.0.3.1" }"#,
                "not another address of the guest's subnet 10.0.2.10/24",
            ),
            (
                r#"{ ip = "10.0.2.10/24", gateway = "10.0.2.10" }"#,
                "not another address",
            ),
        ] {
            assert_err(&with_net(net), 8, &format!("{n}.gateway"), what);
        }
        for (net, field, what) in [
            (
                "{ forward = [{ host = 8080, guest = 80 }] }",
                "forward[0]",
                "needs a static net.ip inside QEMU's user network 10.0.2.0/24",
            ),
            (
                r#"{ ip = "192.168.1.5/24", forward = [{ host = 8080, guest = 80 }] }"#,
                "forward[0]",
                "needs a static net.ip",
            ),
            (
                r#"{ ip = "10.0.2.10/24", forward = [{ host = 65536, guest = 80 }] }"#,
                "forward[0].host",
                "65536 is out of range 0..=65535",
            ),
            (
                r#"{ ip = "10.0.2.10/24", forward = [{ host = -1, guest = 80 }] }"#,
                "forward[0].host",
                "out of range 0..=65535",
            ),
            (
                r#"{ ip = "10.0.2.10/24", forward = [{ host = 1, guest = 0 }] }"#,
                "forward[0].guest",
                "0 is out of range 1..=65535",
            ),
            (
                r#"{ ip = "10.0.2.10/24", forward = [{ host = 8080, guest = 80 }, { host = 8080, guest = 81 }] }"#,
                "forward[1].host",
                "host port 8080 is already forwarded (to domain[1])",
            ),
        ] {
            assert_err(&with_net(net), 8, &format!("{n}.{field}"), what);
        }
        // Several free ports (0) are fine.
        parse_str(&with_net(
            r#"{ ip = "10.0.2.10/24", forward = [{ host = 0, guest = 80 }, { host = 0, guest = 81 }] }"#,
        ))
        .unwrap();
        // Unknown fields, missing and mistyped ones: the line and the key.
        for (net, what) in [
            ("{ mask = 24 }", "unknown field `mask`"),
            (
                r#"{ ip = "10.0.2.10/24", forward = [{ host = 1, guest = 2, proto = "udp" }] }"#,
                "unknown field `proto`",
            ),
            (
                r#"{ ip = "10.0.2.10/24", forward = [{ host = 1 }] }"#,
                "missing field `guest`",
            ),
            ("{ ip = 5 }", "invalid type"),
            (r#""dhcp""#, "invalid type"),
        ] {
            assert_err(&with_net(net), 8, n, what);
        }
    }

    #[test]
    fn net_duplicates_across_guests() {
        let m = "domain[2].net";
        assert_err(
            &with_nets(
                r#"{ mac = "02:00:00:00:00:aa" }"#,
                r#"{ mac = "02:00:00:00:00:AA" }"#,
            ),
            12,
            &format!("{m}.mac"),
            "MAC 02:00:00:00:00:aa is already used by domain[1]",
        );
        // An explicit MAC equal to a later guest's default: named at the default.
        assert_err(
            &with_nets(r#"{ mac = "02:00:00:00:00:03" }"#, "{}"),
            12,
            m,
            "default MAC 02:00:00:00:00:03 is already used by domain[1]",
        );
        assert_err(
            &with_nets(r#"{ ip = "10.0.2.10/24" }"#, r#"{ ip = "10.0.2.10/16" }"#),
            12,
            &format!("{m}.ip"),
            "10.0.2.10 is already the address of domain[1]",
        );
        assert_err(
            &with_nets(
                r#"{ ip = "10.0.2.10/24", forward = [{ host = 8080, guest = 80 }] }"#,
                r#"{ ip = "10.0.2.11/24", forward = [{ host = 8080, guest = 80 }] }"#,
            ),
            12,
            &format!("{m}.forward[0].host"),
            "host port 8080 is already forwarded (to domain[1])",
        );
        // A static address QEMU's DHCP server may also hand out, with a DHCP
        // guest: named at the static address, whichever comes first.
        for (a, b, line, field) in [
            (r#"{ ip = "10.0.2.15/24" }"#, "{}", 8, "domain[1].net.ip"),
            ("{}", r#"{ ip = "10.0.2.30/24" }"#, 12, "domain[2].net.ip"),
        ] {
            assert_err(
                &with_nets(a, b),
                line,
                field,
                "in the range QEMU's DHCP server hands out (10.0.2.15 to 10.0.2.30)",
            );
        }
        // Without a DHCP guest, any free address will do.
        parse_str(&with_nets(
            r#"{ ip = "10.0.2.15/24" }"#,
            r#"{ ip = "10.0.2.16/24" }"#,
        ))
        .unwrap();
    }

    #[test]
    fn mac_and_address_helpers() {
        assert_eq!(
            parse_mac("02:00:00:00:00:0A").map(|m| m.to_string()),
            Ok("02:00:00:00:00:0a".to_owned())
        );
        assert_eq!(
            parse_cidr("10.0.2.15/24"),
            Ok((Ipv4Addr::new(10, 0, 2, 15), 24))
        );
        assert!(parse_cidr("10.0.2.015/24").is_err());
        assert!(in_subnet(
            Ipv4Addr::new(10, 0, 2, 200),
            Ipv4Addr::new(10, 0, 2, 0),
            24
        ));
        assert!(!in_subnet(
            Ipv4Addr::new(10, 0, 3, 1),
            Ipv4Addr::new(10, 0, 2, 0),
            24
        ));
        assert!(in_subnet(
            Ipv4Addr::new(10, 9, 9, 9),
            Ipv4Addr::new(10, 0, 0, 0),
            8
        ));
    }

    #[test]
    fn shipped_scenarios_parse() {
        for name in ["demo", "fault", "bench-micro"] {
            let p = root().join("scenarios").join(format!("{name}.toml"));
            let s = load(&p, &root()).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.domains.is_empty());
        }
    }
}
