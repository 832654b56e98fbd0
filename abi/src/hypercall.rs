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
//!
//! [`Call`](crate::Call) is the typed form of a hypercall and its arguments: guests
//! build the registers with [`Call::encode`](crate::Call::encode) and the hypervisor
//! reads them with [`Call::decode`](crate::Call::decode), so the layout documented
//! below is written in code exactly once.

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
    /// `VpsrSync`, `DomainCount`, `VcpuUp` and every event-channel, grant,
    /// store and stats call return `Perm`; `Version`,
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
    /// `(x1 = name IPA, x2 = name length) -> x1 = domain id`; `NoDomain` if no
    /// running domain has that name.
    DomainLookup = 11,
    /// `(x1 = remote domain id) -> x1 = port`: allocates a port that only the
    /// remote domain may bind (`EvtchnBindInterdomain`).
    EvtchnAllocUnbound = 12,
    /// `(x1 = remote domain id, x2 = remote port) -> x1 = local port`: connects
    /// to a port the remote domain allocated for the caller. `Access` if it was
    /// allocated for someone else, `NoEnt` if it is not unbound.
    EvtchnBindInterdomain = 13,
    /// `(x1 = virq, x2 = vCPU) -> x1 = port`: delivers a virtual IRQ through a
    /// port instead of `Vpsr::pending_virqs`. `Busy` if already bound.
    EvtchnBindVirq = 14,
    /// `(x1 = vCPU) -> x1 = port`: an inter-vCPU port; a send notifies that vCPU.
    EvtchnBindIpi = 15,
    /// `(x1 = port) -> ()`: notifies the other end. `NoEnt` if the port is free,
    /// unbound or closed by the peer, `NoDomain` if the peer has stopped.
    EvtchnSend = 16,
    /// `(x1 = port) -> ()`: frees the port; the peer's end becomes `Closed`.
    EvtchnClose = 17,
    /// `(x1 = port) -> (x1, x2, x3) =` [`PortStatus::to_raw`](crate::event::PortStatus::to_raw).
    EvtchnStatus = 18,
    /// `(x1 = port) -> ()`: after the guest cleared the port's mask bit and
    /// found it pending, re-raises it on the bound vCPU.
    EvtchnUnmask = 19,
    /// `(x1 = granter domain id, x2 = grant ref, x3 = IPA in the grant window,
    /// x4 =` [`map_flags`](crate::grant::map_flags)`) -> (x1 = handle, x2 = PA
    /// for the driver domain, 0 otherwise)`: maps a granted frame into the
    /// caller's stage-2.
    GrantMap = 20,
    /// `(x1 = handle) -> ()`: unmaps what `GrantMap` mapped.
    GrantUnmap = 21,
    /// `(x1 = IPA of a` [`GrantCopy`](crate::grant::GrantCopy)`) -> x1 = bytes
    /// copied`: the hypervisor copies between granted frames and the caller's
    /// memory, checking permissions, offsets and lengths.
    GrantCopy = 22,
    /// `(x1 = key IPA, x2 = key length, x3 = value IPA, x4 = value length) -> ()`:
    /// writes a key of the caller's store namespace.
    StoreWrite = 23,
    /// `(x1 = domain id, x2 = key IPA, x3 = key length, x4 = buffer IPA, x5 =
    /// buffer length) -> x1 = value length`: reads another domain's key (`NoEnt`
    /// if absent; the value is truncated to the buffer).
    StoreRead = 24,
    /// `(x1 = key IPA, x2 = key length) -> ()`: removes a key of the caller's.
    StoreRemove = 25,
    /// `() -> (x1 = world switches on all CPUs, x2 = events sent by the caller,
    /// x3 = hypercalls made by the caller)`: counters for benchmarks.
    Stats = 26,
    /// `(x1 = buffer IPA, x2 = buffer length) -> x1 = bytes read`: takes
    /// console input the hypervisor buffered (0 when there is none). Only the
    /// console-input domain may call it (`Perm` otherwise). ABI 1.2.
    ConsoleRead = 27,
    /// `(x1 = INTID) -> x1 = port`: binds the interrupt of a device passed
    /// through to the caller to a new event-channel port. The hypervisor masks
    /// the interrupt each time it fires and sends the port; the caller unmasks
    /// it with `IrqEoi` once it has served the device. `Access` for a device
    /// that is not the caller's, `Busy` if already bound. ABI 1.2.
    EvtchnBindPirq = 28,
    /// `(x1 = INTID) -> ()`: end of interrupt for a bound device interrupt:
    /// unmasks it at the interrupt controller. ABI 1.2.
    IrqEoi = 29,
    /// `(x1 = domain id, x2 = buffer IPA, x3 = buffer length) -> x1 = domain
    /// slots`: writes the domain's [`DomainInfo`](crate::domctl::DomainInfo)
    /// into the buffer (`Inval` if it is smaller); `NoEnt` past the last slot.
    /// Control domain only (`Perm`). ABI 1.3.
    DomctlList = 30,
    /// `(x1 =` [`DomctlOp`](crate::domctl::DomctlOp) `raw, x2 = domain id) ->
    /// ()`: creates, destroys, pauses or unpauses a domain. `NoDomain` for an
    /// unknown id, `Busy` when the domain is not in a state the op applies
    /// to, `Inval` for an unknown op or for destroying or pausing the control
    /// domain itself. Control domain only (`Perm`). ABI 1.3.
    DomctlOp = 31,
    /// `() -> (x1 = frames free, x2 = frames in the pool, x3 = frames free
    /// at start)`: the hypervisor's frame pool. Control domain only (`Perm`).
    /// ABI 1.3.
    DomctlTotals = 32,
    /// `(x1 = buffer IPA, x2 = buffer length) -> x1 = bytes read`: takes
    /// control-channel input the hypervisor queued (request lines from the
    /// host, see [`control`](crate::control)); 0 when there is none.
    /// `Virq::Control` says when there is some. Control domain only
    /// (`Perm`). ABI 1.3.
    ControlRead = 33,
    /// `(x1, x2 = up to 16 bytes of text, little-endian, x3 = its length) ->
    /// ()`: records a mark in the hypervisor's trace (see
    /// [`trace`](crate::trace)); does nothing when tracing is off. `Inval`
    /// for a length over [`MARK_MAX`](crate::trace::MARK_MAX). Any domain.
    /// ABI 1.4.
    TraceMark = 34,
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
            11 => Hypercall::DomainLookup,
            12 => Hypercall::EvtchnAllocUnbound,
            13 => Hypercall::EvtchnBindInterdomain,
            14 => Hypercall::EvtchnBindVirq,
            15 => Hypercall::EvtchnBindIpi,
            16 => Hypercall::EvtchnSend,
            17 => Hypercall::EvtchnClose,
            18 => Hypercall::EvtchnStatus,
            19 => Hypercall::EvtchnUnmask,
            20 => Hypercall::GrantMap,
            21 => Hypercall::GrantUnmap,
            22 => Hypercall::GrantCopy,
            23 => Hypercall::StoreWrite,
            24 => Hypercall::StoreRead,
            25 => Hypercall::StoreRemove,
            26 => Hypercall::Stats,
            27 => Hypercall::ConsoleRead,
            28 => Hypercall::EvtchnBindPirq,
            29 => Hypercall::IrqEoi,
            30 => Hypercall::DomctlList,
            31 => Hypercall::DomctlOp,
            32 => Hypercall::DomctlTotals,
            33 => Hypercall::ControlRead,
            34 => Hypercall::TraceMark,
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
        assert_eq!(Hypercall::from_raw(35), None);
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
