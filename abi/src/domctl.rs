//! Domain control (ABI 1.3): what the control domain may ask the hypervisor
//! about the other domains, and what it gets back.
//!
//! Only the control domain (the driver domain, unless a scenario names
//! another with `control = true`) may make these calls; any other domain
//! gets [`HvError::Perm`](crate::HvError::Perm). A domain is named by its id,
//! its slot in the hypervisor's table, fixed at boot: every domain the
//! scenario lists has a slot, including those loaded but not started
//! (`autostart = false`) and those destroyed, which can be created again.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::start_info::NAME_LEN;

/// What `DomctlOp` does to a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DomctlOp {
    /// Start a domain that does not run (never started, exited, crashed or
    /// destroyed) from its image, with fresh memory. `Busy` if it runs.
    Create,
    /// Stop a running or paused domain; its memory, grants and ports come
    /// back. `Inval` for the control domain itself (it shuts down instead).
    Destroy,
    /// Stop scheduling a running domain; its peers see its rings stall.
    Pause,
    /// Schedule a paused domain again.
    Unpause,
}

impl DomctlOp {
    /// The raw value passed in `x1`.
    pub const fn to_raw(self) -> u64 {
        match self {
            DomctlOp::Create => 0,
            DomctlOp::Destroy => 1,
            DomctlOp::Pause => 2,
            DomctlOp::Unpause => 3,
        }
    }

    /// Decodes a raw op; `None` for unknown values (answer `Inval`).
    pub const fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            0 => DomctlOp::Create,
            1 => DomctlOp::Destroy,
            2 => DomctlOp::Pause,
            3 => DomctlOp::Unpause,
            _ => return None,
        })
    }

    /// Every op.
    pub const ALL: [DomctlOp; 4] = [
        DomctlOp::Create,
        DomctlOp::Destroy,
        DomctlOp::Pause,
        DomctlOp::Unpause,
    ];
}

/// Where a domain is, as [`DomainInfo::state`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DomainRunState {
    /// Loaded but never started (`autostart = false`), or destroyed.
    Off,
    /// Its vCPUs run.
    Running,
    /// Paused by the control domain.
    Paused,
    /// It shut down (its memory is back or on its way).
    Exited,
    /// It crashed and was not restarted.
    Crashed,
}

impl DomainRunState {
    /// The raw value in [`DomainInfo::state`].
    pub const fn to_raw(self) -> u32 {
        match self {
            DomainRunState::Off => 0,
            DomainRunState::Running => 1,
            DomainRunState::Paused => 2,
            DomainRunState::Exited => 3,
            DomainRunState::Crashed => 4,
        }
    }

    /// Decodes a raw state; `None` for unknown values.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => DomainRunState::Off,
            1 => DomainRunState::Running,
            2 => DomainRunState::Paused,
            3 => DomainRunState::Exited,
            4 => DomainRunState::Crashed,
            _ => return None,
        })
    }

    /// A short name, as `parapet list` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            DomainRunState::Off => "off",
            DomainRunState::Running => "running",
            DomainRunState::Paused => "paused",
            DomainRunState::Exited => "exited",
            DomainRunState::Crashed => "crashed",
        }
    }
}

/// [`DomainInfo::flags`] bits.
pub mod flags {
    /// The driver domain (mapped 1:1, owns the devices).
    pub const DRIVER: u32 = 1 << 0;
    /// The control domain.
    pub const CONTROL: u32 = 1 << 1;
    /// Started at boot (`autostart`, the default).
    pub const AUTOSTART: u32 = 1 << 2;
}

/// Most vCPUs a [`DomainInfo`] describes.
pub const INFO_VCPUS: usize = 8;

/// One domain as `DomctlList` describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct DomainInfo {
    /// The domain's id (its slot).
    pub id: u32,
    /// A [`DomainRunState`], raw.
    pub state: u32,
    /// [`flags`] bits.
    pub flags: u32,
    /// Its vCPUs.
    pub vcpu_count: u32,
    /// Its name, NUL-padded.
    pub name: [u8; NAME_LEN],
    /// The physical CPU of each vCPU.
    pub vcpu_cpus: [u8; INFO_VCPUS],
    /// RAM in KiB (what it is given when it runs).
    pub ram_kib: u64,
    /// Stage-2 table frames it uses now.
    pub table_frames: u32,
    /// Grant mappings it holds now (frames of others mapped in its window).
    pub grants_mapped: u32,
    /// Event-channel ports it has bound now.
    pub ports_bound: u32,
    /// How often it crashed in this run.
    pub crashes: u32,
    /// How often it was restarted after a crash (`on_crash = "restart"`).
    pub restarts: u32,
    /// How often the control domain created it.
    pub creates: u32,
    /// Milliseconds since it (last) started; 0 when it does not run.
    pub uptime_ms: u64,
}

static_assertions::const_assert_eq!(core::mem::size_of::<DomainInfo>(), 96);
static_assertions::const_assert_eq!(core::mem::offset_of!(DomainInfo, name), 16);
static_assertions::const_assert_eq!(core::mem::offset_of!(DomainInfo, vcpu_cpus), 48);
static_assertions::const_assert_eq!(core::mem::offset_of!(DomainInfo, ram_kib), 56);
static_assertions::const_assert_eq!(core::mem::offset_of!(DomainInfo, uptime_ms), 88);

impl DomainInfo {
    /// The name as text (up to the first NUL).
    pub fn name(&self) -> &str {
        crate::start_info::c_str(&self.name).unwrap_or("?")
    }

    /// The state, if it is a known one.
    pub fn run_state(&self) -> Option<DomainRunState> {
        DomainRunState::from_raw(self.state)
    }

    /// The CPUs of its vCPUs.
    pub fn cpus(&self) -> &[u8] {
        &self.vcpu_cpus[..(self.vcpu_count as usize).min(INFO_VCPUS)]
    }
}

/// What `DomctlTotals` returns: the hypervisor's frame pool, and the grant
/// mappings and ports of every domain together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Frames of the pool free now.
    pub frames_free: u64,
    /// Frames in the pool.
    pub frames_total: u64,
    /// Frames free once the hypervisor was up, before any domain.
    pub frames_at_start: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn ops_and_states_round_trip() {
        for op in DomctlOp::ALL {
            assert_eq!(DomctlOp::from_raw(op.to_raw()), Some(op));
        }
        assert_eq!(DomctlOp::from_raw(4), None);
        for raw in 0..8 {
            if let Some(s) = DomainRunState::from_raw(raw) {
                assert_eq!(s.to_raw(), raw);
                assert!(!s.name().is_empty());
            }
        }
        assert_eq!(DomainRunState::from_raw(5), None);
    }

    #[test]
    fn info_accessors() {
        let mut i = DomainInfo::new_zeroed();
        crate::start_info::set_c_str(&mut i.name, "guest-a");
        i.vcpu_count = 2;
        i.vcpu_cpus[..2].copy_from_slice(&[1, 0]);
        i.state = DomainRunState::Paused.to_raw();
        assert_eq!(i.name(), "guest-a");
        assert_eq!(i.cpus(), [1, 0]);
        assert_eq!(i.run_state(), Some(DomainRunState::Paused));
        i.vcpu_count = 99;
        assert_eq!(i.cpus().len(), INFO_VCPUS, "clamped");
    }
}
