//! Virtual interrupt control through the VPSR: masking is a plain store to
//! `vpsr.irq_mask` (no trap, no `msr daif`), unmasking dispatches whatever arrived
//! meanwhile, and handlers are registered per [`Virq`].
//!
//! The logic works on an explicit [`Vpsr`] and handler table so that it is tested
//! on the host with a zeroed page; the public functions apply it to the current
//! vCPU's VPSR and the global handler table.
#![deny(unsafe_code)]

use core::sync::atomic::{compiler_fence, AtomicBool, AtomicU64, Ordering};

use parapet_abi::vpsr::{Virq, Vpsr};

use crate::handler_slot::Slot;

/// A virtual IRQ handler. It runs with interrupts (soft-)masked.
pub type Handler = fn();

const NVIRQ: usize = Virq::ALL.len();

/// A table of handlers, one per [`Virq`], read by the dispatcher without a
/// lock ([`Slot`]).
pub(crate) struct Handlers {
    table: [Slot<Handler>; NVIRQ],
    /// The bits ([`Virq::bit`]) of the virtual IRQs that have a handler, so
    /// that one left pending without a handler costs the dispatcher nothing.
    handled: AtomicU64,
}

impl Handlers {
    pub(crate) const fn new() -> Self {
        Self {
            table: [const { Slot::new() }; NVIRQ],
            handled: AtomicU64::new(0),
        }
    }

    fn set(&self, virq: Virq, handler: Option<Handler>) {
        self.table[virq as usize].set(handler);
        if handler.is_some() {
            self.handled.fetch_or(virq.bit(), Ordering::SeqCst);
        } else {
            self.handled.fetch_and(!virq.bit(), Ordering::SeqCst);
        }
    }

    fn get(&self, virq: Virq) -> Option<Handler> {
        self.table[virq as usize].get()
    }

    fn handled(&self) -> u64 {
        self.handled.load(Ordering::Acquire)
    }
}

static HANDLERS: Handlers = Handlers::new();

/// Whether interrupts were masked before [`disable`]; give it back to [`restore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "give the state back to irq::restore"]
pub struct MaskState {
    was_masked: bool,
}

impl MaskState {
    /// Whether interrupts were masked before.
    pub fn was_masked(self) -> bool {
        self.was_masked
    }

    /// A state as returned by [`disable`] when interrupts were (`true`) or were
    /// not masked before: for code that keeps the state elsewhere, such as a
    /// `critical-section` implementation.
    pub fn from_masked(was_masked: bool) -> Self {
        Self { was_masked }
    }
}

/// Adds one to a statistics counter that only this vCPU writes.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

pub(crate) fn disable_on(vpsr: &Vpsr) -> MaskState {
    let was_masked = vpsr.irq_mask.load(Ordering::Relaxed) != 0;
    vpsr.irq_mask.store(1, Ordering::Relaxed);
    // The upcall runs on this CPU: keep the compiler from moving the critical
    // section's accesses above the mask.
    compiler_fence(Ordering::SeqCst);
    bump(&vpsr.stats.masks);
    MaskState { was_masked }
}

pub(crate) fn enable_on(vpsr: &Vpsr, handlers: &Handlers) {
    bump(&vpsr.stats.unmasks);
    compiler_fence(Ordering::SeqCst);
    // Store-then-load against the hypervisor's "set pending, then read the mask".
    vpsr.irq_mask.store(0, Ordering::SeqCst);
    if vpsr.pending.load(Ordering::SeqCst) != 0 {
        bump(&vpsr.stats.unmask_dispatches);
        run_pending(vpsr, handlers);
    }
}

pub(crate) fn restore_on(vpsr: &Vpsr, handlers: &Handlers, state: MaskState) {
    if !state.was_masked {
        enable_on(vpsr, handlers);
    }
}

/// Runs what is pending while interrupts stay masked, as an unmask would
/// (and tells the wait hook), without unmasking: for a wait that checks its
/// condition masked, so that it need not unmask and mask again around each
/// dispatch. Counted with the unmask dispatches.
pub(crate) fn dispatch_held_on(vpsr: &Vpsr, handlers: &Handlers) {
    if vpsr.pending.load(Ordering::SeqCst) != 0 {
        bump(&vpsr.stats.unmask_dispatches);
        dispatch(vpsr, handlers);
        crate::wait::notify();
    }
}

/// [`dispatch_held_on`] on this vCPU.
pub(crate) fn dispatch_held() {
    dispatch_held_on(crate::vpsr(), &HANDLERS);
}

/// Dispatches with the mask set until nothing is pending, then leaves the vCPU
/// unmasked. Re-checks after unmasking: an event recorded between the last
/// dispatch and the unmask raised no upcall. Tells the guest OS's wait hook
/// after each batch ([`crate::wait`]).
fn run_pending(vpsr: &Vpsr, handlers: &Handlers) {
    loop {
        vpsr.irq_mask.store(1, Ordering::SeqCst);
        dispatch(vpsr, handlers);
        crate::wait::notify();
        vpsr.irq_mask.store(0, Ordering::SeqCst);
        if vpsr.pending.load(Ordering::SeqCst) == 0 {
            break;
        }
    }
}

/// Set once a guest OS may switch threads inside handlers (it installed a
/// wait hook or uses `context`): the dispatcher then keeps `pending` set
/// while a handler runs and work remains, so that a handler that switches
/// away leaves the rest of the batch to whichever thread dispatches next.
static SWITCH_SAFE: AtomicBool = AtomicBool::new(false);

/// Makes dispatch safe for handlers that switch threads (see `SWITCH_SAFE`).
pub(crate) fn set_switch_safe() {
    SWITCH_SAFE.store(true, Ordering::SeqCst);
}

/// Takes the pending virtual IRQs and event-channel ports and calls their
/// handlers, until `pending` stays clear. Virtual IRQs are taken one at a
/// time, the others left in `pending_virqs`. IRQs with no handler stay in
/// `pending_virqs` (without setting `pending`): [`set_handler`] delivers
/// them.
pub(crate) fn dispatch(vpsr: &Vpsr, handlers: &Handlers) -> u64 {
    let mut taken = 0;
    let switch_safe = SWITCH_SAFE.load(Ordering::Relaxed);
    while vpsr.pending.load(Ordering::SeqCst) != 0 {
        vpsr.pending.store(0, Ordering::SeqCst);
        let mut unhandled = 0;
        loop {
            let bits = vpsr.pending_virqs.load(Ordering::SeqCst) & handlers.handled() & !unhandled;
            if bits == 0 {
                break;
            }
            let Some(virq) = Virq::ALL.into_iter().find(|v| bits & v.bit() != 0) else {
                break;
            };
            // Cleared since `handled` was read.
            let Some(handler) = handlers.get(virq) else {
                unhandled |= virq.bit();
                continue;
            };
            vpsr.pending_virqs.fetch_and(!virq.bit(), Ordering::SeqCst);
            taken |= virq.bit();
            if switch_safe {
                vpsr.pending.store(1, Ordering::SeqCst);
            }
            handler();
        }
        // Event-channel ports flagged in `pending_sel`.
        crate::event::PORTS.dispatch(vpsr, switch_safe);
    }
    taken
}

/// What the upcall handler did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upcall {
    /// Soft-masked: left pending for the unmask.
    LeftPending,
    /// Dispatched.
    Dispatched,
}

pub(crate) fn upcall_on(vpsr: &Vpsr, handlers: &Handlers) -> Upcall {
    if vpsr.irq_mask.load(Ordering::SeqCst) != 0 {
        bump(&vpsr.stats.upcalls_while_masked);
        return Upcall::LeftPending;
    }
    bump(&vpsr.stats.upcalls);
    run_pending(vpsr, handlers);
    Upcall::Dispatched
}

pub(crate) fn set_handler_on(
    vpsr: &Vpsr,
    handlers: &Handlers,
    virq: Virq,
    handler: Option<Handler>,
) {
    let state = disable_on(vpsr);
    handlers.set(virq, handler);
    if handler.is_some() && vpsr.pending_virqs.load(Ordering::SeqCst) & virq.bit() != 0 {
        vpsr.pending.store(1, Ordering::SeqCst);
    }
    restore_on(vpsr, handlers, state);
}

/// Called by the runtime's IRQ handler after it acknowledged and ended the upcall.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn handle_upcall() {
    upcall_on(crate::vpsr(), &HANDLERS);
}

/// Masks virtual interrupts on this vCPU (a plain store); returns the previous
/// state for [`restore`].
pub fn disable() -> MaskState {
    disable_on(crate::vpsr())
}

/// Unmasks virtual interrupts on this vCPU and dispatches whatever is pending.
pub fn enable() {
    enable_on(crate::vpsr(), &HANDLERS);
}

/// Returns to the state before [`disable`]: unmasks (and dispatches) only if
/// interrupts were unmasked then.
pub fn restore(state: MaskState) {
    restore_on(crate::vpsr(), &HANDLERS, state);
}

/// Runs `f` with virtual interrupts masked.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let state = disable();
    let result = f();
    restore(state);
    result
}

/// Whether virtual interrupts are unmasked on this vCPU.
pub fn are_enabled() -> bool {
    crate::vpsr().irq_mask.load(Ordering::Relaxed) == 0
}

/// Whether something is pending on this vCPU (`vpsr.pending`).
pub fn is_pending() -> bool {
    crate::vpsr().pending.load(Ordering::SeqCst) != 0
}

/// Registers the handler of a virtual IRQ (for every vCPU of the domain). An IRQ
/// that arrived while it had no handler is delivered now (or at the next unmask).
pub fn set_handler(virq: Virq, handler: Handler) {
    set_handler_on(crate::vpsr(), &HANDLERS, virq, Some(handler));
}

/// Removes the handler of a virtual IRQ; later ones stay pending.
pub fn clear_handler(virq: Virq) {
    set_handler_on(crate::vpsr(), &HANDLERS, virq, None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use zerocopy::FromZeros;

    thread_local! {
        static LOG: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    }
    fn on_timer() {
        LOG.with(|l| l.borrow_mut().push("timer"));
    }
    fn on_exit() {
        LOG.with(|l| l.borrow_mut().push("exit"));
    }
    fn log() -> Vec<&'static str> {
        LOG.with(|l| l.borrow_mut().drain(..).collect())
    }
    fn raise(v: &Vpsr, virq: Virq) {
        v.pending_virqs.fetch_or(virq.bit(), Ordering::SeqCst);
        v.pending.store(1, Ordering::SeqCst);
    }
    fn table() -> Handlers {
        let h = Handlers::new();
        h.set(Virq::Timer, Some(on_timer));
        h.set(Virq::DomainExit, Some(on_exit));
        h
    }

    #[test]
    fn masked_events_wait_for_unmask() {
        let v = Vpsr::new_zeroed();
        let h = table();
        let s = disable_on(&v);
        assert!(!s.was_masked());
        assert_eq!(v.irq_mask.load(Ordering::Relaxed), 1);
        raise(&v, Virq::Timer);
        // An upcall that lands while masked leaves the work pending.
        assert_eq!(upcall_on(&v, &h), Upcall::LeftPending);
        assert!(log().is_empty());
        assert_eq!(v.pending.load(Ordering::Relaxed), 1);
        restore_on(&v, &h, s);
        assert_eq!(log(), ["timer"]);
        assert_eq!(v.pending.load(Ordering::Relaxed), 0);
        assert_eq!(v.pending_virqs.load(Ordering::Relaxed), 0);
        assert_eq!(v.irq_mask.load(Ordering::Relaxed), 0);
        let st = &v.stats;
        assert_eq!(st.masks.load(Ordering::Relaxed), 1);
        assert_eq!(st.unmasks.load(Ordering::Relaxed), 1);
        assert_eq!(st.unmask_dispatches.load(Ordering::Relaxed), 1);
        assert_eq!(st.upcalls_while_masked.load(Ordering::Relaxed), 1);
        assert_eq!(st.upcalls.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn nested_disable_keeps_the_mask() {
        let v = Vpsr::new_zeroed();
        let h = table();
        let outer = disable_on(&v);
        let inner = disable_on(&v);
        assert!(inner.was_masked());
        raise(&v, Virq::DomainExit);
        restore_on(&v, &h, inner);
        assert!(log().is_empty());
        assert_eq!(v.irq_mask.load(Ordering::Relaxed), 1);
        restore_on(&v, &h, outer);
        assert_eq!(log(), ["exit"]);
    }

    #[test]
    fn upcall_while_unmasked_dispatches_all_bits_in_order() {
        let v = Vpsr::new_zeroed();
        let h = table();
        raise(&v, Virq::DomainExit);
        raise(&v, Virq::Timer);
        assert_eq!(upcall_on(&v, &h), Upcall::Dispatched);
        assert_eq!(log(), ["timer", "exit"]);
        assert_eq!(v.stats.upcalls.load(Ordering::Relaxed), 1);
        assert_eq!(v.irq_mask.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn unhandled_irqs_wait_for_their_handler() {
        let v = Vpsr::new_zeroed();
        let h = Handlers::new();
        h.set(Virq::Timer, Some(on_timer));
        raise(&v, Virq::DomainExit);
        raise(&v, Virq::Timer);
        assert_eq!(upcall_on(&v, &h), Upcall::Dispatched);
        assert_eq!(log(), ["timer"]);
        assert_eq!(v.pending.load(Ordering::Relaxed), 0);
        assert_eq!(
            v.pending_virqs.load(Ordering::Relaxed),
            Virq::DomainExit.bit()
        );
        set_handler_on(&v, &h, Virq::DomainExit, Some(on_exit));
        assert_eq!(log(), ["exit"]);
        assert_eq!(v.pending_virqs.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn unmask_with_nothing_pending_does_not_dispatch() {
        let v = Vpsr::new_zeroed();
        let h = table();
        let s = disable_on(&v);
        restore_on(&v, &h, s);
        assert_eq!(v.stats.unmask_dispatches.load(Ordering::Relaxed), 0);
        assert!(log().is_empty());
    }

    fn reraise() {
        // A handler that causes more work: the dispatcher must pick it up.
        let v = crate::vpsr();
        LOG.with(|l| l.borrow_mut().push("re"));
        if LOG.with(|l| l.borrow().len()) < 3 {
            raise(v, Virq::Timer);
        }
    }

    #[test]
    fn work_raised_during_dispatch_is_dispatched() {
        let v = crate::vpsr();
        let h = Handlers::new();
        h.set(Virq::Timer, Some(reraise));
        raise(v, Virq::Timer);
        upcall_on(v, &h);
        assert_eq!(log(), ["re", "re", "re"]);
        assert_eq!(v.pending.load(Ordering::Relaxed), 0);
    }

    fn switches_away() {
        // What a handler that switches threads leaves behind: while it runs,
        // the rest of the batch must still be flagged for the next thread.
        let v = crate::vpsr();
        LOG.with(|l| l.borrow_mut().push("switch"));
        assert_eq!(v.pending.load(Ordering::SeqCst), 1, "rest still flagged");
        assert_ne!(
            v.pending_virqs.load(Ordering::SeqCst) & Virq::DomainExit.bit(),
            0,
            "the other IRQ is still pending, not in a local variable"
        );
    }

    #[test]
    fn a_handler_that_switches_strands_nothing() {
        set_switch_safe();
        let v = crate::vpsr();
        let h = Handlers::new();
        h.set(Virq::Timer, Some(switches_away));
        h.set(Virq::DomainExit, Some(on_exit));
        raise(v, Virq::Timer);
        raise(v, Virq::DomainExit);
        upcall_on(v, &h);
        assert_eq!(log(), ["switch", "exit"]);
        assert_eq!(v.pending.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn global_api_uses_this_threads_vpsr() {
        assert!(are_enabled());
        let r = without_interrupts(|| {
            assert!(!are_enabled());
            7
        });
        assert_eq!(r, 7);
        assert!(are_enabled());
        assert!(!is_pending());
    }
}
