//! The VPSR: the virtual processor status page, one per vCPU.
//!
//! Shared between one vCPU and the hypervisor. It replaces the two pieces of
//! processor state that a trap-and-emulate design would have to trap on:
//!
//! * **Interrupt mask.** The guest masks virtual interrupts by storing 1 to
//!   [`Vpsr::irq_mask`] — no trap. While it is set, the hypervisor raises no
//!   upcall; it records virtual IRQs in [`Vpsr::pending_virqs`] and sets
//!   [`Vpsr::pending`]. On unmask the guest checks `pending` and dispatches
//!   itself, again without a trap. When an event arrives while unmasked, the
//!   hypervisor raises the upcall as virtual PPI [`UPCALL_INTID`](crate::layout::UPCALL_INTID)
//!   through a GICv3 list register; the guest acknowledges and ends it through
//!   the GIC's virtual CPU interface, which does not trap. An upcall that lands
//!   just after the guest masked is left pending by the guest's handler.
//! * **FP enable.** The guest's virtual FP/SIMD enable bit is
//!   [`Vpsr::fp_enable`]; the hypervisor applies it (to `CPACR_EL1.FPEN`) on the
//!   next entry into the vCPU, or at once on `VpsrSync`. FP/SIMD registers are
//!   switched between vCPUs lazily.
//!
//! All fields are atomics: both sides access the page concurrently.

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU64, AtomicU8};
use static_assertions::const_assert;
use zerocopy::{FromBytes, IntoBytes, KnownLayout};

/// Virtual IRQs, each a bit in [`Vpsr::pending_virqs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Virq {
    /// The one-shot timer set with `SetTimer` expired.
    Timer = 0,
    /// Some domain stopped (exited or crashed).
    DomainExit = 1,
    /// Another domain wrote or removed a store key.
    Store = 2,
    /// Console input arrived (read it with `ConsoleRead`). Raised only in the
    /// console-input domain (the driver domain unless the scenario names
    /// another), like Xen's `VIRQ_CONSOLE` for dom0.
    Console = 3,
    /// Control-channel input arrived (read it with `ControlRead`). Raised
    /// only in the control domain. ABI 1.3.
    Control = 4,
}

/// Number of virtual IRQs.
pub const NR_VIRQS: usize = 5;

impl Virq {
    /// Every virtual IRQ, in bit order.
    pub const ALL: [Virq; NR_VIRQS] = [
        Virq::Timer,
        Virq::DomainExit,
        Virq::Store,
        Virq::Console,
        Virq::Control,
    ];

    /// Decodes a raw number; `None` for unknown ones.
    pub const fn from_raw(raw: u64) -> Option<Self> {
        match raw {
            0 => Some(Virq::Timer),
            1 => Some(Virq::DomainExit),
            2 => Some(Virq::Store),
            3 => Some(Virq::Console),
            4 => Some(Virq::Control),
            _ => None,
        }
    }

    /// The bit of this IRQ in [`Vpsr::pending_virqs`].
    pub const fn bit(self) -> u64 {
        1 << self as u32
    }
}

/// The virtual processor status page of one vCPU (the first bytes of its page).
/// The rest of the page, from [`VPSR_GUEST_AREA`], is the guest's own: the
/// hypervisor never reads or writes it.
#[derive(Debug, FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct Vpsr {
    /// Written by the guest: non-zero masks virtual interrupts.
    pub irq_mask: AtomicU8,
    /// Set by the hypervisor when it records something pending for this vCPU;
    /// cleared by the guest before it dispatches.
    pub pending: AtomicU8,
    /// Written by the guest: non-zero enables FP/SIMD (applied at the next entry).
    pub fp_enable: AtomicU8,
    /// Reserved, zero.
    pub _reserved0: [u8; 5],
    /// Pending virtual IRQs, one bit per [`Virq`]; the hypervisor sets bits, the
    /// guest takes them with an atomic swap.
    pub pending_virqs: AtomicU64,
    /// Selector of pending event-channel words: bit `i` set means word `i` of
    /// the [`EventPage`](crate::event::EventPage) has news for this vCPU. The
    /// hypervisor sets bits; the guest takes them with an atomic swap.
    pub pending_sel: AtomicU64,
    /// Offset of the guest's virtual counter from the physical one, in ticks.
    pub counter_offset: AtomicU64,
    /// Counter frequency in Hz.
    pub counter_freq: AtomicU64,
    /// Statistics kept by the guest SDK, reported by the hypervisor at shutdown.
    pub stats: VpsrStats,
}

/// Counters the guest SDK keeps in its VPSR so the hypervisor can report them.
#[derive(Debug, FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct VpsrStats {
    /// Interrupt masks done with a plain store (each a trap avoided).
    pub masks: AtomicU64,
    /// Unmasks done with a plain store (each a trap avoided).
    pub unmasks: AtomicU64,
    /// Unmasks that found work pending and dispatched it in the guest, no trap.
    pub unmask_dispatches: AtomicU64,
    /// Upcalls taken, each acknowledged and ended without a trap.
    pub upcalls: AtomicU64,
    /// Upcalls that arrived while soft-masked and were left pending.
    pub upcalls_while_masked: AtomicU64,
    /// FP traps taken at EL1 while the virtual FP bit was clear.
    pub fp_disabled_traps: AtomicU64,
}

/// Offset in a vCPU's VPSR page of the part that is the guest's own (the
/// guest SDK keeps per-vCPU words there that its vectors reach through the
/// page's address, e.g. the upcall frame whose FP state is still unsaved).
pub const VPSR_GUEST_AREA: usize = 2048;

const_assert!(size_of::<VpsrStats>() == 48);
const_assert!(size_of::<Vpsr>() <= VPSR_GUEST_AREA);
const_assert!(size_of::<Vpsr>() == 88);
const_assert!(offset_of!(Vpsr, irq_mask) == 0);
const_assert!(offset_of!(Vpsr, pending) == 1);
const_assert!(offset_of!(Vpsr, fp_enable) == 2);
const_assert!(offset_of!(Vpsr, pending_virqs) == 8);
const_assert!(offset_of!(Vpsr, pending_sel) == 16);
const_assert!(offset_of!(Vpsr, counter_offset) == 24);
const_assert!(offset_of!(Vpsr, counter_freq) == 32);
const_assert!(offset_of!(Vpsr, stats) == 40);

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering;
    use zerocopy::FromZeros;

    #[test]
    fn virq_bits_are_distinct() {
        let mut seen = 0;
        for v in Virq::ALL {
            assert_eq!(seen & v.bit(), 0);
            seen |= v.bit();
        }
    }

    #[test]
    fn zeroed_page_is_unmasked_and_idle() {
        let v = Vpsr::new_zeroed();
        assert_eq!(v.irq_mask.load(Ordering::Relaxed), 0);
        assert_eq!(v.pending_virqs.load(Ordering::Relaxed), 0);
        v.pending_virqs
            .fetch_or(Virq::Timer.bit(), Ordering::Relaxed);
        assert_eq!(v.pending_virqs.swap(0, Ordering::Relaxed), 1);
    }
}
