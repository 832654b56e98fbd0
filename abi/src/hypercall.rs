//! Hypercall numbers and the calling convention.
//!
//! # Calling convention
//! A guest issues `hvc #HVC_IMM` ([`HVC_IMM`]) from EL1 with the hypercall number
//! in `x0` and up to six arguments in `x1`–`x6`. On return `x0` holds a status
//! (negative: an [`HvError`](crate::HvError) code, otherwise success) and `x1`–`x3`
//! hold results where a call documents them. Like a C call, a hypercall may clobber
//! `x0`–`x17` (the caller-saved registers of AAPCS64); it preserves `x18`–`x30`,
//! `sp` and the FP/SIMD registers. That lets the hypervisor's fast path save only
//! what its own code would clobber.
//!
//! Any other `hvc` immediate, and any unknown number, returns `NoSys`.

/// The `hvc` immediate that identifies a Parapet hypercall.
pub const HVC_IMM: u16 = 0x5050;

/// Hypercall numbers (the value in `x0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum Hypercall {
    /// `() -> (status 0, x1 = version raw, x2 = feature bits)`. The null hypercall.
    Version = 0,
    /// `(x1 = version raw the guest was built for) -> ()`; `VersionMismatch` if the
    /// majors differ. Until it has succeeded, `SetTimer`, `VcpuInfo`,
    /// `VpsrSync`, `DomainCount` and `VcpuUp` return `Perm`; `Version`,
    /// `ConsoleWrite`, `Yield`, `Block` and `Shutdown` work, so a refused guest
    /// can still say why and stop.
    VersionCheck = 1,
    /// `(x1 = buffer IPA, x2 = length) -> x0 = bytes accepted`. Output is line-buffered
    /// per domain and printed with the domain's name as prefix. At most
    /// [`CONSOLE_WRITE_MAX`] bytes per call.
    ConsoleWrite = 2,
    /// `() -> ()`: give up the CPU to another runnable vCPU.
    Yield = 3,
    /// `() -> ()`: block until a virtual IRQ or event is pending for this vCPU.
    /// Returns at once if one already is. Masking (`Vpsr::irq_mask`) does not
    /// prevent the wake-up, so a guest can block with interrupts soft-masked and
    /// then dispatch.
    Block = 4,
    /// `(x1 = deadline in counter ticks, absolute, of CNTVCT_EL0; 0 cancels) -> ()`:
    /// one-shot timer for this vCPU, delivered as `Virq::Timer`.
    SetTimer = 5,
    /// `() -> (x1 = domain id, x2 = vCPU id, x3 = vCPU count)`.
    VcpuInfo = 6,
    /// `(x1 = ShutdownReason raw, x2 = exit code) -> never returns`.
    Shutdown = 7,
    /// `() -> ()`: apply the VPSR's virtual state (FP enable) now, rather than at
    /// the next entry. Used by the guest's FP trap handler.
    VpsrSync = 8,
    /// `(x1 = vCPU id, x2 = entry IPA, x3 = argument passed in x0) -> ()`: start a
    /// secondary vCPU of the caller's domain, as PSCI `CPU_ON` does.
    VcpuUp = 9,
    /// `() -> (x1 = domains still alive, x2 = domains crashed so far)`.
    DomainCount = 10,
}

/// Largest console write accepted in one call.
pub const CONSOLE_WRITE_MAX: u64 = 1024;

impl Hypercall {
    /// Decodes a hypercall number; `None` for unknown numbers (answer `NoSys`).
    pub const fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            0 => Hypercall::Version,
            1 => Hypercall::VersionCheck,
            2 => Hypercall::ConsoleWrite,
            3 => Hypercall::Yield,
            4 => Hypercall::Block,
            5 => Hypercall::SetTimer,
            6 => Hypercall::VcpuInfo,
            7 => Hypercall::Shutdown,
            8 => Hypercall::VpsrSync,
            9 => Hypercall::VcpuUp,
            10 => Hypercall::DomainCount,
            _ => return None,
        })
    }
}

/// Why a domain shuts down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShutdownReason {
    /// Finished normally (with an exit code; non-zero codes are reported).
    Poweroff,
    /// The guest detected a fatal error (for example, a panic).
    Crash,
    /// Wants to be started again (honoured in later versions; treated as poweroff).
    Reboot,
}

impl ShutdownReason {
    /// The raw value passed in `x1`.
    pub const fn to_raw(self) -> u64 {
        match self {
            ShutdownReason::Poweroff => 0,
            ShutdownReason::Crash => 1,
            ShutdownReason::Reboot => 2,
        }
    }

    /// Decodes a raw reason; `None` for unknown values (answer `Inval`).
    pub const fn from_raw(raw: u64) -> Option<Self> {
        match raw {
            0 => Some(ShutdownReason::Poweroff),
            1 => Some(ShutdownReason::Crash),
            2 => Some(ShutdownReason::Reboot),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for raw in 0..64 {
            if let Some(call) = Hypercall::from_raw(raw) {
                assert_eq!(call as u64, raw);
            }
        }
        assert_eq!(Hypercall::from_raw(11), None);
        assert_eq!(Hypercall::from_raw(u64::MAX), None);
    }

    #[test]
    fn shutdown_reasons() {
        for r in [
            ShutdownReason::Poweroff,
            ShutdownReason::Crash,
            ShutdownReason::Reboot,
        ] {
            assert_eq!(ShutdownReason::from_raw(r.to_raw()), Some(r));
        }
        assert_eq!(ShutdownReason::from_raw(3), None);
    }
}
