//! Event channels: ports, their states, and the shared pending/mask page.
//!
//! Every domain has [`MAX_PORTS`] ports (port 0 is never allocated, so that a
//! zeroed field means "no port"). A port is free, unbound (allocated for one
//! named remote domain that has not bound it yet), inter-domain (connected to a
//! remote port), bound to a virtual IRQ, or an inter-vCPU (IPI) port.
//!
//! Pending and mask bits live in the domain's [`EventPage`], one bit per port,
//! shared with the hypervisor. A send sets the target port's pending bit; if
//! the bit was clear and the port is not masked, the hypervisor sets the word's
//! bit in the bound vCPU's [`Vpsr::pending_sel`](crate::Vpsr::pending_sel) and
//! [`Vpsr::pending`](crate::Vpsr::pending), then raises the upcall (or leaves it
//! for the guest's unmask when the vCPU is soft-masked), wakes the vCPU if it is
//! blocked and kicks its CPU with an SGI if it runs elsewhere (Xen's 2-level
//! scheme).
//!
//! The guest masks a port by setting its mask bit (no hypercall); to unmask it
//! clears the bit and, only if the port is pending, calls
//! [`Hypercall::EvtchnUnmask`](crate::Hypercall::EvtchnUnmask) so that the
//! hypervisor re-raises it on the bound vCPU. It acknowledges a port by
//! clearing its pending bit before running the handler.

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU64, Ordering};
use static_assertions::const_assert;
use zerocopy::{FromBytes, IntoBytes, KnownLayout};

/// Ports per domain (an explicit, fixed limit).
pub const MAX_PORTS: u32 = 256;
/// 64-bit words of pending (and of mask) bits.
pub const WORDS: usize = (MAX_PORTS / 64) as usize;

/// A port number, valid in `1..MAX_PORTS`.
pub type Port = u32;

/// Whether `port` is a number a domain can hold (it may still be free).
pub const fn is_valid_port(port: u64) -> bool {
    port != 0 && port < MAX_PORTS as u64
}

/// The word index and bit of `port` in the pending and mask arrays.
pub const fn word_and_bit(port: Port) -> (usize, u64) {
    ((port / 64) as usize, 1 << (port % 64))
}

/// The shared event page of a domain (one page; these are its first bytes).
#[derive(Debug, FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct EventPage {
    /// Pending bits, one per port. Set by the hypervisor, cleared by the guest.
    pub pending: [AtomicU64; WORDS],
    /// Mask bits, one per port. Written by the guest only.
    pub mask: [AtomicU64; WORDS],
}

const_assert!(size_of::<EventPage>() == 64);
const_assert!(offset_of!(EventPage, mask) == 32);

impl EventPage {
    /// Whether `port` is pending.
    pub fn is_pending(&self, port: Port) -> bool {
        let (w, bit) = word_and_bit(port);
        self.pending[w].load(Ordering::SeqCst) & bit != 0
    }

    /// Whether `port` is masked.
    pub fn is_masked(&self, port: Port) -> bool {
        let (w, bit) = word_and_bit(port);
        self.mask[w].load(Ordering::SeqCst) & bit != 0
    }

    /// Sets `port`'s pending bit; returns whether it was clear (a new event).
    pub fn set_pending(&self, port: Port) -> bool {
        let (w, bit) = word_and_bit(port);
        self.pending[w].fetch_or(bit, Ordering::SeqCst) & bit == 0
    }

    /// Clears `port`'s pending bit; returns whether it was set.
    pub fn clear_pending(&self, port: Port) -> bool {
        let (w, bit) = word_and_bit(port);
        self.pending[w].fetch_and(!bit, Ordering::SeqCst) & bit != 0
    }

    /// Sets `port`'s mask bit.
    pub fn mask(&self, port: Port) {
        let (w, bit) = word_and_bit(port);
        self.mask[w].fetch_or(bit, Ordering::SeqCst);
    }

    /// Clears `port`'s mask bit; returns whether the port is pending (then the
    /// guest asks the hypervisor to re-raise it).
    pub fn unmask(&self, port: Port) -> bool {
        let (w, bit) = word_and_bit(port);
        self.mask[w].fetch_and(!bit, Ordering::SeqCst);
        self.pending[w].load(Ordering::SeqCst) & bit != 0
    }

    /// Pending, unmasked ports of word `w`, as a bit set.
    pub fn deliverable(&self, w: usize) -> u64 {
        self.pending[w].load(Ordering::SeqCst) & !self.mask[w].load(Ordering::SeqCst)
    }
}

/// What a port is, as reported by
/// [`Hypercall::EvtchnStatus`](crate::Hypercall::EvtchnStatus) in `x1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortStatus {
    /// Not allocated.
    Free,
    /// Allocated for remote domain `remote`, waiting for it to bind.
    Unbound {
        /// The only domain allowed to bind it.
        remote: u32,
    },
    /// Connected to `remote_port` of domain `remote`.
    Interdomain {
        /// The peer domain.
        remote: u32,
        /// The peer's port.
        remote_port: Port,
    },
    /// Bound to virtual IRQ `virq` on vCPU `vcpu`.
    Virq {
        /// The [`Virq`](crate::vpsr::Virq) number.
        virq: u32,
        /// The vCPU that receives it.
        vcpu: u32,
    },
    /// Inter-vCPU port notifying vCPU `vcpu`.
    Ipi {
        /// The vCPU that receives it.
        vcpu: u32,
    },
    /// Bound to the interrupt of a passed-through device (ABI 1.2).
    Pirq {
        /// The device's GIC INTID.
        intid: u32,
    },
    /// The peer closed its end (or died): sends fail with `NoDomain`.
    Closed {
        /// The peer domain that was.
        remote: u32,
    },
}

impl PortStatus {
    /// Encodes as `(x1, x2, x3)`: kind, then two kind-specific values.
    pub const fn to_raw(self) -> [u64; 3] {
        match self {
            PortStatus::Free => [0, 0, 0],
            PortStatus::Unbound { remote } => [1, remote as u64, 0],
            PortStatus::Interdomain {
                remote,
                remote_port,
            } => [2, remote as u64, remote_port as u64],
            PortStatus::Virq { virq, vcpu } => [3, virq as u64, vcpu as u64],
            PortStatus::Ipi { vcpu } => [4, vcpu as u64, 0],
            PortStatus::Closed { remote } => [5, remote as u64, 0],
            PortStatus::Pirq { intid } => [6, intid as u64, 0],
        }
    }

    /// Decodes what [`PortStatus::to_raw`] made; `None` for an unknown kind.
    pub const fn from_raw(raw: [u64; 3]) -> Option<Self> {
        let (a, b) = (raw[1] as u32, raw[2] as u32);
        Some(match raw[0] {
            0 => PortStatus::Free,
            1 => PortStatus::Unbound { remote: a },
            2 => PortStatus::Interdomain {
                remote: a,
                remote_port: b,
            },
            3 => PortStatus::Virq { virq: a, vcpu: b },
            4 => PortStatus::Ipi { vcpu: a },
            5 => PortStatus::Closed { remote: a },
            6 => PortStatus::Pirq { intid: a },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn port_numbers() {
        assert!(!is_valid_port(0));
        assert!(is_valid_port(1));
        assert!(is_valid_port(u64::from(MAX_PORTS) - 1));
        assert!(!is_valid_port(u64::from(MAX_PORTS)));
        assert_eq!(word_and_bit(65), (1, 2));
    }

    #[test]
    fn pending_and_mask_bits() {
        let page = EventPage::new_zeroed();
        assert!(page.set_pending(70));
        assert!(!page.set_pending(70));
        assert_eq!(page.deliverable(1), 1 << 6);
        page.mask(70);
        assert_eq!(page.deliverable(1), 0);
        assert!(page.is_masked(70));
        assert!(page.unmask(70));
        assert!(page.clear_pending(70));
        assert!(!page.clear_pending(70));
        assert!(!page.unmask(70));
    }

    #[test]
    fn status_round_trip() {
        for s in [
            PortStatus::Free,
            PortStatus::Unbound { remote: 2 },
            PortStatus::Interdomain {
                remote: 1,
                remote_port: 9,
            },
            PortStatus::Virq { virq: 0, vcpu: 1 },
            PortStatus::Ipi { vcpu: 3 },
            PortStatus::Closed { remote: 4 },
            PortStatus::Pirq { intid: 48 },
        ] {
            assert_eq!(PortStatus::from_raw(s.to_raw()), Some(s));
        }
        assert_eq!(PortStatus::from_raw([9, 0, 0]), None);
    }
}
