//! Typed hypercalls: one [`Call`] variant per [`Hypercall`] number, with the
//! argument registers as named fields.
//!
//! [`Call::encode`] is what a guest puts in `x0`–`x6`; [`Call::decode`] is what
//! the hypervisor reads back. Both are a single `match` and inline to the same
//! register moves a hand-written `[u64; 6]` would, so they cost nothing on the
//! hypercall path. The field order is the register order: the first field goes
//! in `x1`, the next in `x2`, and so on; registers a call does not use are
//! encoded as 0 and ignored by decode.
//!
//! Integer fields stay `u64` on purpose: which value is out of range, and which
//! error it gets, is decided by the subsystem that serves the call (a port
//! number is checked by the event-channel table, a domain id by the domain
//! list), exactly as for a raw register. Only two fields are typed here:
//! `VersionCheck`'s [`AbiVersion`] (bits above 32 are ignored, as
//! [`AbiVersion::from_raw`] does) and `Shutdown`'s [`ShutdownReason`], whose
//! unknown values decode to [`HvError::Inval`].
//!
//! Results come back in `x1`–`x3`; each variant's documentation says which.

use crate::hypercall::{Hypercall, ShutdownReason};
use crate::{AbiVersion, HvError};

/// One hypercall with its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// The null hypercall. Returns `x1` = ABI version raw, `x2` = feature bits.
    Version,
    /// States the ABI version the guest was built for (`x1`).
    VersionCheck {
        /// The guest's version.
        version: AbiVersion,
    },
    /// Writes `len` bytes at `buf` to the console. Returns the bytes accepted.
    ConsoleWrite {
        /// IPA of the bytes.
        buf: u64,
        /// How many.
        len: u64,
    },
    /// Gives up the CPU.
    Yield,
    /// Blocks until a virtual IRQ or an event is pending.
    Block,
    /// One-shot timer at `deadline` (absolute `CNTVCT_EL0` ticks; 0 cancels).
    SetTimer {
        /// The deadline.
        deadline: u64,
    },
    /// Returns `x1` = domain id, `x2` = vCPU id, `x3` = vCPU count.
    VcpuInfo,
    /// Stops the domain; does not return (unless refused).
    Shutdown {
        /// Why.
        reason: ShutdownReason,
        /// The exit code (an `i64`, sign-extended, by convention).
        code: u64,
    },
    /// Applies the VPSR's virtual state now.
    VpsrSync,
    /// Starts secondary vCPU `vcpu` at `entry` with `arg` in its `x0`.
    VcpuUp {
        /// The vCPU id.
        vcpu: u64,
        /// IPA of the entry point.
        entry: u64,
        /// Passed in `x0`.
        arg: u64,
    },
    /// Returns `x1` = domains alive, `x2` = domains crashed so far.
    DomainCount,
    /// Looks a running domain up by name. Returns `x1` = its id.
    DomainLookup {
        /// IPA of the name.
        name: u64,
        /// Its length.
        len: u64,
    },
    /// Allocates a port only `remote` may bind. Returns `x1` = the port.
    EvtchnAllocUnbound {
        /// The remote domain id.
        remote: u64,
    },
    /// Binds `remote_port` of `remote`. Returns `x1` = the local port.
    EvtchnBindInterdomain {
        /// The remote domain id.
        remote: u64,
        /// The port it allocated for the caller.
        remote_port: u64,
    },
    /// Delivers `virq` of `vcpu` through a port. Returns `x1` = the port.
    EvtchnBindVirq {
        /// The [`Virq`](crate::vpsr::Virq) raw value.
        virq: u64,
        /// The vCPU.
        vcpu: u64,
    },
    /// An inter-vCPU port to `vcpu`. Returns `x1` = the port.
    EvtchnBindIpi {
        /// The vCPU to notify.
        vcpu: u64,
    },
    /// Notifies the other end of `port`.
    EvtchnSend {
        /// The local port.
        port: u64,
    },
    /// Frees `port`.
    EvtchnClose {
        /// The local port.
        port: u64,
    },
    /// Returns `x1`–`x3` = [`PortStatus::to_raw`](crate::event::PortStatus::to_raw).
    EvtchnStatus {
        /// The local port.
        port: u64,
    },
    /// Re-raises `port` if it is pending, after the guest unmasked it.
    EvtchnUnmask {
        /// The local port.
        port: u64,
    },
    /// Maps grant `gref` of `granter` at `ipa`. Returns `x1` = handle, `x2` =
    /// PA (driver domain only, 0 otherwise).
    GrantMap {
        /// The granting domain id.
        granter: u64,
        /// The grant reference.
        gref: u64,
        /// Where, in the caller's grant window.
        ipa: u64,
        /// [`map_flags`](crate::grant::map_flags).
        flags: u64,
    },
    /// Unmaps what `GrantMap` mapped.
    GrantUnmap {
        /// The handle `GrantMap` returned.
        handle: u64,
    },
    /// Copies as the [`GrantCopy`](crate::grant::GrantCopy) at `op` says.
    /// Returns `x1` = bytes copied.
    GrantCopy {
        /// IPA of the request.
        op: u64,
    },
    /// Writes a key of the caller's store namespace.
    StoreWrite {
        /// IPA of the key.
        key: u64,
        /// Its length.
        key_len: u64,
        /// IPA of the value.
        value: u64,
        /// Its length.
        value_len: u64,
    },
    /// Reads key `key` of `domain` into `buf`. Returns `x1` = the value's length.
    StoreRead {
        /// The owner's domain id.
        domain: u64,
        /// IPA of the key.
        key: u64,
        /// Its length.
        key_len: u64,
        /// IPA of the buffer.
        buf: u64,
        /// Its length.
        buf_len: u64,
    },
    /// Removes a key of the caller's.
    StoreRemove {
        /// IPA of the key.
        key: u64,
        /// Its length.
        key_len: u64,
    },
    /// Returns `x1` = world switches, `x2` = events sent, `x3` = hypercalls made.
    Stats,
    /// Takes buffered console input into `buf`. Returns `x1` = bytes read.
    ConsoleRead {
        /// IPA of the buffer.
        buf: u64,
        /// Its length.
        len: u64,
    },
    /// Binds device interrupt `intid` to a new port. Returns `x1` = the port.
    EvtchnBindPirq {
        /// The interrupt.
        intid: u64,
    },
    /// Unmasks bound device interrupt `intid`.
    IrqEoi {
        /// The interrupt.
        intid: u64,
    },
    /// Describes domain `domain` in the `DomainInfo` at `buf` (`len` bytes).
    /// Returns `x1` = the number of domain slots. ABI 1.3.
    DomctlList {
        /// The domain id.
        domain: u64,
        /// IPA of the buffer.
        buf: u64,
        /// Its length.
        len: u64,
    },
    /// Creates, destroys, pauses or unpauses `domain`. ABI 1.3.
    DomctlOp {
        /// A `DomctlOp`, raw (checked by the hypervisor: `Inval`).
        op: u64,
        /// The domain id.
        domain: u64,
    },
    /// Returns `x1` = frames free, `x2` = frames in the pool, `x3` = frames
    /// free at start. ABI 1.3.
    DomctlTotals,
    /// Reads queued control-channel input into `buf`. Returns the bytes read.
    /// ABI 1.3.
    ControlRead {
        /// IPA of the buffer.
        buf: u64,
        /// Its length.
        len: u64,
    },
    /// Records a mark in the trace: `len` bytes of `text` (little-endian).
    /// ABI 1.4.
    TraceMark {
        /// The text's bytes 0–7 and 8–15.
        text: [u64; 2],
        /// Its length (checked by the hypervisor: `Inval` over 16).
        len: u64,
    },
}

impl Call {
    /// Decodes `x0` (`nr`) and `x1`–`x6` (`args`). `NoSys` for an unknown
    /// number, `Inval` for a `Shutdown` reason that is not a
    /// [`ShutdownReason`]; argument registers the call does not use are
    /// ignored. Never panics.
    #[inline]
    pub const fn decode(nr: u64, args: [u64; 6]) -> Result<Call, HvError> {
        match Hypercall::from_raw(nr) {
            Some(call) => Self::from_args(call, args),
            None => Err(HvError::NoSys),
        }
    }

    /// Decodes the arguments of a hypercall whose number is already known
    /// (the hypervisor matches the number first, on its fast path).
    #[inline]
    pub const fn from_args(call: Hypercall, args: [u64; 6]) -> Result<Call, HvError> {
        let [a1, a2, a3, a4, a5, _] = args;
        Ok(match call {
            Hypercall::Version => Call::Version,
            Hypercall::VersionCheck => Call::VersionCheck {
                version: AbiVersion::from_raw(a1),
            },
            Hypercall::ConsoleWrite => Call::ConsoleWrite { buf: a1, len: a2 },
            Hypercall::Yield => Call::Yield,
            Hypercall::Block => Call::Block,
            Hypercall::SetTimer => Call::SetTimer { deadline: a1 },
            Hypercall::VcpuInfo => Call::VcpuInfo,
            Hypercall::Shutdown => match ShutdownReason::from_raw(a1) {
                Some(reason) => Call::Shutdown { reason, code: a2 },
                None => return Err(HvError::Inval),
            },
            Hypercall::VpsrSync => Call::VpsrSync,
            Hypercall::VcpuUp => Call::VcpuUp {
                vcpu: a1,
                entry: a2,
                arg: a3,
            },
            Hypercall::DomainCount => Call::DomainCount,
            Hypercall::DomainLookup => Call::DomainLookup { name: a1, len: a2 },
            Hypercall::EvtchnAllocUnbound => Call::EvtchnAllocUnbound { remote: a1 },
            Hypercall::EvtchnBindInterdomain => Call::EvtchnBindInterdomain {
                remote: a1,
                remote_port: a2,
            },
            Hypercall::EvtchnBindVirq => Call::EvtchnBindVirq { virq: a1, vcpu: a2 },
            Hypercall::EvtchnBindIpi => Call::EvtchnBindIpi { vcpu: a1 },
            Hypercall::EvtchnSend => Call::EvtchnSend { port: a1 },
            Hypercall::EvtchnClose => Call::EvtchnClose { port: a1 },
            Hypercall::EvtchnStatus => Call::EvtchnStatus { port: a1 },
            Hypercall::EvtchnUnmask => Call::EvtchnUnmask { port: a1 },
            Hypercall::GrantMap => Call::GrantMap {
                granter: a1,
                gref: a2,
                ipa: a3,
                flags: a4,
            },
            Hypercall::GrantUnmap => Call::GrantUnmap { handle: a1 },
            Hypercall::GrantCopy => Call::GrantCopy { op: a1 },
            Hypercall::StoreWrite => Call::StoreWrite {
                key: a1,
                key_len: a2,
                value: a3,
                value_len: a4,
            },
            Hypercall::StoreRead => Call::StoreRead {
                domain: a1,
                key: a2,
                key_len: a3,
                buf: a4,
                buf_len: a5,
            },
            Hypercall::StoreRemove => Call::StoreRemove {
                key: a1,
                key_len: a2,
            },
            Hypercall::Stats => Call::Stats,
            Hypercall::ConsoleRead => Call::ConsoleRead { buf: a1, len: a2 },
            Hypercall::EvtchnBindPirq => Call::EvtchnBindPirq { intid: a1 },
            Hypercall::IrqEoi => Call::IrqEoi { intid: a1 },
            Hypercall::DomctlList => Call::DomctlList {
                domain: a1,
                buf: a2,
                len: a3,
            },
            Hypercall::DomctlOp => Call::DomctlOp { op: a1, domain: a2 },
            Hypercall::DomctlTotals => Call::DomctlTotals,
            Hypercall::ControlRead => Call::ControlRead { buf: a1, len: a2 },
            Hypercall::TraceMark => Call::TraceMark {
                text: [a1, a2],
                len: a3,
            },
        })
    }

    /// The registers: `x0` and `x1`–`x6` (unused ones 0).
    #[inline]
    pub const fn encode(&self) -> (u64, [u64; 6]) {
        let args = match *self {
            Call::Version
            | Call::Yield
            | Call::Block
            | Call::VcpuInfo
            | Call::VpsrSync
            | Call::DomainCount
            | Call::DomctlTotals
            | Call::Stats => [0; 6],
            Call::VersionCheck { version } => [version.to_raw(), 0, 0, 0, 0, 0],
            Call::ConsoleWrite { buf, len }
            | Call::DomainLookup { name: buf, len }
            | Call::ConsoleRead { buf, len }
            | Call::ControlRead { buf, len } => [buf, len, 0, 0, 0, 0],
            Call::SetTimer { deadline: a }
            | Call::EvtchnAllocUnbound { remote: a }
            | Call::EvtchnBindIpi { vcpu: a }
            | Call::EvtchnSend { port: a }
            | Call::EvtchnClose { port: a }
            | Call::EvtchnStatus { port: a }
            | Call::EvtchnUnmask { port: a }
            | Call::GrantUnmap { handle: a }
            | Call::GrantCopy { op: a }
            | Call::EvtchnBindPirq { intid: a }
            | Call::IrqEoi { intid: a } => [a, 0, 0, 0, 0, 0],
            Call::Shutdown { reason, code } => [reason.to_raw(), code, 0, 0, 0, 0],
            Call::VcpuUp { vcpu, entry, arg } => [vcpu, entry, arg, 0, 0, 0],
            Call::TraceMark {
                text: [lo, hi],
                len,
            } => [lo, hi, len, 0, 0, 0],
            Call::EvtchnBindInterdomain {
                remote: a,
                remote_port: b,
            }
            | Call::EvtchnBindVirq { virq: a, vcpu: b }
            | Call::StoreRemove { key: a, key_len: b }
            | Call::DomctlOp { op: a, domain: b } => [a, b, 0, 0, 0, 0],
            Call::DomctlList { domain, buf, len } => [domain, buf, len, 0, 0, 0],
            Call::GrantMap {
                granter,
                gref,
                ipa,
                flags,
            } => [granter, gref, ipa, flags, 0, 0],
            Call::StoreWrite {
                key,
                key_len,
                value,
                value_len,
            } => [key, key_len, value, value_len, 0, 0],
            Call::StoreRead {
                domain,
                key,
                key_len,
                buf,
                buf_len,
            } => [domain, key, key_len, buf, buf_len, 0],
        };
        (self.number() as u64, args)
    }

    /// The hypercall number (`x0`).
    #[inline]
    pub const fn number(&self) -> Hypercall {
        match self {
            Call::Version => Hypercall::Version,
            Call::VersionCheck { .. } => Hypercall::VersionCheck,
            Call::ConsoleWrite { .. } => Hypercall::ConsoleWrite,
            Call::Yield => Hypercall::Yield,
            Call::Block => Hypercall::Block,
            Call::SetTimer { .. } => Hypercall::SetTimer,
            Call::VcpuInfo => Hypercall::VcpuInfo,
            Call::Shutdown { .. } => Hypercall::Shutdown,
            Call::VpsrSync => Hypercall::VpsrSync,
            Call::VcpuUp { .. } => Hypercall::VcpuUp,
            Call::DomainCount => Hypercall::DomainCount,
            Call::DomainLookup { .. } => Hypercall::DomainLookup,
            Call::EvtchnAllocUnbound { .. } => Hypercall::EvtchnAllocUnbound,
            Call::EvtchnBindInterdomain { .. } => Hypercall::EvtchnBindInterdomain,
            Call::EvtchnBindVirq { .. } => Hypercall::EvtchnBindVirq,
            Call::EvtchnBindIpi { .. } => Hypercall::EvtchnBindIpi,
            Call::EvtchnSend { .. } => Hypercall::EvtchnSend,
            Call::EvtchnClose { .. } => Hypercall::EvtchnClose,
            Call::EvtchnStatus { .. } => Hypercall::EvtchnStatus,
            Call::EvtchnUnmask { .. } => Hypercall::EvtchnUnmask,
            Call::GrantMap { .. } => Hypercall::GrantMap,
            Call::GrantUnmap { .. } => Hypercall::GrantUnmap,
            Call::GrantCopy { .. } => Hypercall::GrantCopy,
            Call::StoreWrite { .. } => Hypercall::StoreWrite,
            Call::StoreRead { .. } => Hypercall::StoreRead,
            Call::StoreRemove { .. } => Hypercall::StoreRemove,
            Call::Stats => Hypercall::Stats,
            Call::ConsoleRead { .. } => Hypercall::ConsoleRead,
            Call::EvtchnBindPirq { .. } => Hypercall::EvtchnBindPirq,
            Call::IrqEoi { .. } => Hypercall::IrqEoi,
            Call::DomctlList { .. } => Hypercall::DomctlList,
            Call::DomctlOp { .. } => Hypercall::DomctlOp,
            Call::DomctlTotals => Hypercall::DomctlTotals,
            Call::ControlRead { .. } => Hypercall::ControlRead,
            Call::TraceMark { .. } => Hypercall::TraceMark,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The register layout of every call, written out once more by hand (the
    /// same table as the docs of [`Hypercall`]): arguments 1, 2, 3… land in
    /// `x1`, `x2`, `x3`… and nothing else is set.
    #[test]
    fn register_layout() {
        let v = AbiVersion { major: 1, minor: 2 };
        let cases: [(Call, [u64; 6]); 35] = [
            (Call::Version, [0; 6]),
            (Call::VersionCheck { version: v }, [0x1_0002, 0, 0, 0, 0, 0]),
            (Call::ConsoleWrite { buf: 1, len: 2 }, [1, 2, 0, 0, 0, 0]),
            (Call::Yield, [0; 6]),
            (Call::Block, [0; 6]),
            (Call::SetTimer { deadline: 1 }, [1, 0, 0, 0, 0, 0]),
            (Call::VcpuInfo, [0; 6]),
            (
                Call::Shutdown {
                    reason: ShutdownReason::Crash,
                    code: 2,
                },
                [1, 2, 0, 0, 0, 0],
            ),
            (Call::VpsrSync, [0; 6]),
            (
                Call::VcpuUp {
                    vcpu: 1,
                    entry: 2,
                    arg: 3,
                },
                [1, 2, 3, 0, 0, 0],
            ),
            (Call::DomainCount, [0; 6]),
            (Call::DomainLookup { name: 1, len: 2 }, [1, 2, 0, 0, 0, 0]),
            (Call::EvtchnAllocUnbound { remote: 1 }, [1, 0, 0, 0, 0, 0]),
            (
                Call::EvtchnBindInterdomain {
                    remote: 1,
                    remote_port: 2,
                },
                [1, 2, 0, 0, 0, 0],
            ),
            (
                Call::EvtchnBindVirq { virq: 1, vcpu: 2 },
                [1, 2, 0, 0, 0, 0],
            ),
            (Call::EvtchnBindIpi { vcpu: 1 }, [1, 0, 0, 0, 0, 0]),
            (Call::EvtchnSend { port: 1 }, [1, 0, 0, 0, 0, 0]),
            (Call::EvtchnClose { port: 1 }, [1, 0, 0, 0, 0, 0]),
            (Call::EvtchnStatus { port: 1 }, [1, 0, 0, 0, 0, 0]),
            (Call::EvtchnUnmask { port: 1 }, [1, 0, 0, 0, 0, 0]),
            (
                Call::GrantMap {
                    granter: 1,
                    gref: 2,
                    ipa: 3,
                    flags: 4,
                },
                [1, 2, 3, 4, 0, 0],
            ),
            (Call::GrantUnmap { handle: 1 }, [1, 0, 0, 0, 0, 0]),
            (Call::GrantCopy { op: 1 }, [1, 0, 0, 0, 0, 0]),
            (
                Call::StoreWrite {
                    key: 1,
                    key_len: 2,
                    value: 3,
                    value_len: 4,
                },
                [1, 2, 3, 4, 0, 0],
            ),
            (
                Call::StoreRead {
                    domain: 1,
                    key: 2,
                    key_len: 3,
                    buf: 4,
                    buf_len: 5,
                },
                [1, 2, 3, 4, 5, 0],
            ),
            (Call::StoreRemove { key: 1, key_len: 2 }, [1, 2, 0, 0, 0, 0]),
            (Call::Stats, [0; 6]),
            (Call::ConsoleRead { buf: 1, len: 2 }, [1, 2, 0, 0, 0, 0]),
            (Call::EvtchnBindPirq { intid: 1 }, [1, 0, 0, 0, 0, 0]),
            (Call::IrqEoi { intid: 1 }, [1, 0, 0, 0, 0, 0]),
            (
                Call::DomctlList {
                    domain: 1,
                    buf: 2,
                    len: 3,
                },
                [1, 2, 3, 0, 0, 0],
            ),
            (Call::DomctlOp { op: 1, domain: 2 }, [1, 2, 0, 0, 0, 0]),
            (Call::DomctlTotals, [0; 6]),
            (Call::ControlRead { buf: 1, len: 2 }, [1, 2, 0, 0, 0, 0]),
            (
                Call::TraceMark {
                    text: [1, 2],
                    len: 3,
                },
                [1, 2, 3, 0, 0, 0],
            ),
        ];
        for (nr, (call, args)) in cases.iter().enumerate() {
            assert_eq!(call.number() as u64, nr as u64, "{call:?}");
            assert_eq!(call.encode(), (nr as u64, *args), "{call:?}");
            assert_eq!(Call::decode(nr as u64, *args), Ok(*call), "{call:?}");
        }
        // Every number is covered.
        assert_eq!(Hypercall::from_raw(cases.len() as u64), None);
    }

    #[test]
    fn bad_numbers_and_reasons() {
        assert_eq!(Call::decode(35, [0; 6]), Err(HvError::NoSys));
        assert_eq!(Call::decode(u64::MAX, [0; 6]), Err(HvError::NoSys));
        let nr = Hypercall::Shutdown as u64;
        assert_eq!(Call::decode(nr, [3, 0, 0, 0, 0, 0]), Err(HvError::Inval));
        assert_eq!(
            Call::decode(nr, [u64::MAX, 0, 0, 0, 0, 0]),
            Err(HvError::Inval)
        );
        // Unused registers are ignored; the version's upper bits too.
        assert_eq!(Call::decode(3, [9; 6]), Ok(Call::Yield));
        assert_eq!(
            Call::decode(1, [(7 << 32) | 0x1_0002, 9, 9, 9, 9, 9]),
            Ok(Call::VersionCheck {
                version: AbiVersion { major: 1, minor: 2 }
            })
        );
    }
}
