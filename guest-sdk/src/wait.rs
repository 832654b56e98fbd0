//! The one pluggable wait. Every blocking call of the SDK and the frontends
//! (`time::sleep`, `event::wait_until`, `store::wait_for`, the byte channel,
//! netfront, blkfront) waits here, in [`wait_until`].
//!
//! By default a wait blocks the vCPU (`Block`) until an event, a virtual IRQ
//! or its deadline. A guest OS with threads installs a [`WaitHook`] instead:
//! the SDK then asks it to *park the calling thread* and tells it whenever
//! something happened, so other threads keep running while one waits for a
//! network fetch, a disk transfer or a byte-channel read.
//!
//! The protocol, which makes lost wake-ups impossible:
//! 1. `wait_until` masks virtual interrupts and checks its condition;
//! 2. if it does not hold, it calls [`WaitHook::park`] *with interrupts still
//!    masked*; the OS records the thread as parked and switches to another
//!    one (the switch restores that thread's interrupt state);
//! 3. the SDK calls [`WaitHook::wake_all`] after every dispatch of events or
//!    virtual IRQs (and timers), from the dispatching thread: the OS makes
//!    every parked thread runnable;
//! 4. `park` returns in the woken thread, which dispatches what is pending
//!    (still masked) and checks its condition again; it unmasks once its
//!    wait ends.
//!
//! `park` may return early (spuriously); it must return by the deadline. An
//! OS can use [`crate::timer::add_at`] for that, and [`block_vcpu`] in its
//! idle thread.
//!
//! `wake_all` is coarse on purpose: it runs after every dispatch (the OS's
//! own tick included), and parked threads re-check their conditions. An OS
//! that wants fewer re-checks can keep its own wait queues and wake only
//! those whose event arrived (its handlers know).
#![deny(unsafe_code)]

use parapet_abi::HvError;

use crate::{hypercall, irq, time, timer};

/// A guest OS's way of waiting (see the module documentation).
pub trait WaitHook: Sync {
    /// Parks the calling thread until [`WaitHook::wake_all`] or until the
    /// counter reaches `deadline` (if any). Called with virtual interrupts
    /// masked; the thread must be recorded as parked before anything can
    /// unmask them. May return early.
    fn park(&self, deadline: Option<u64>);
    /// Something happened: make every parked thread runnable. Called from
    /// the dispatch of events and virtual IRQs, with interrupts masked; must
    /// not block or switch.
    fn wake_all(&self);
}

/// Why a wait ended without its condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed.
    TimedOut,
    /// The hypervisor refused to block or to arm the timer.
    Hv(HvError),
}

impl From<HvError> for WaitError {
    fn from(e: HvError) -> Self {
        WaitError::Hv(e)
    }
}

impl core::fmt::Display for WaitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WaitError::TimedOut => f.write_str("timed out"),
            WaitError::Hv(e) => write!(f, "{e}"),
        }
    }
}

static HOOK: spin::Once<&'static dyn WaitHook> = spin::Once::new();

/// Installs the guest OS's wait (once; later calls are refused with
/// `Busy`). From then on every blocking call of the SDK and the frontends
/// parks the calling thread instead of blocking the vCPU.
pub fn set_hook(hook: &'static dyn WaitHook) -> Result<(), HvError> {
    let mut installed = false;
    HOOK.call_once(|| {
        installed = true;
        hook
    });
    if !installed {
        return Err(HvError::Busy);
    }
    irq::set_switch_safe();
    Ok(())
}

/// Whether a guest OS installed its wait.
pub fn is_hooked() -> bool {
    HOOK.is_completed()
}

/// Called by the dispatcher after every batch: tells the OS.
pub(crate) fn notify() {
    if let Some(hook) = HOOK.get() {
        hook.wake_all();
    }
}

/// Waits until `ready()` returns `Some` (its value is returned), or until
/// the counter reaches `deadline`. `ready` runs with virtual interrupts
/// masked; it must not block.
///
/// Interrupts stay masked for the whole wait: after each park, what arrived
/// is dispatched (if the caller had interrupts unmasked) before `ready` is
/// checked again, and the caller's state comes back once, at the end.
pub fn wait_until<T>(
    deadline: Option<u64>,
    mut ready: impl FnMut() -> Option<T>,
) -> Result<T, WaitError> {
    let state = irq::disable();
    let result = loop {
        if let Some(v) = ready() {
            break Ok(v);
        }
        if deadline.is_some_and(|d| time::now() >= d) {
            break Err(WaitError::TimedOut);
        }
        if let Err(e) = park(deadline) {
            break Err(e);
        }
        if !state.was_masked() {
            irq::dispatch_held();
        }
    };
    irq::restore(state);
    result
}

/// Parks (hook) or blocks the vCPU (default) once, interrupts masked.
fn park(deadline: Option<u64>) -> Result<(), WaitError> {
    if let Some(hook) = HOOK.get() {
        hook.park(deadline);
        return Ok(());
    }
    block_vcpu(deadline)
}

/// The default wait, for an OS's idle thread: blocks the vCPU until
/// something is pending for it or until `deadline`, whichever is first. The
/// hypervisor returns at once if something is already pending, even while
/// virtual interrupts are masked (call it masked, then unmask to dispatch).
/// The deadline is a timer of the [`crate::timer`] queue, so it overrides no
/// other timer.
pub fn block_vcpu(deadline: Option<u64>) -> Result<(), WaitError> {
    let wake = match deadline {
        Some(d) => Some(timer::wake_at(d).map_err(|e| match e {
            timer::TimerError::Hv(e) => WaitError::Hv(e),
            timer::TimerError::Full => WaitError::Hv(HvError::NoMem),
        })?),
        None => None,
    };
    let blocked = hypercall::block();
    if let Some(id) = wake {
        timer::cancel(id);
    }
    blocked.map_err(WaitError::Hv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering;
    use std::cell::Cell;

    #[test]
    fn ready_at_once_and_after_a_few_blocks() {
        assert_eq!(wait_until(None, || Some(5)), Ok(5));
        let n = Cell::new(0);
        let r = wait_until(None, || {
            n.set(n.get() + 1);
            (n.get() == 3).then_some("done")
        });
        assert_eq!(r, Ok("done"));
        assert!(irq::are_enabled());
    }

    /// A guest OS's hook, as far as the host can play one: it counts, and
    /// "parks" by returning at once (allowed: parks may be spurious).
    struct CountingHook {
        parks: std::sync::atomic::AtomicUsize,
        wakes: std::sync::atomic::AtomicUsize,
    }

    impl WaitHook for CountingHook {
        fn park(&self, _deadline: Option<u64>) {
            assert!(!irq::are_enabled(), "park runs with interrupts masked");
            self.parks.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_all(&self) {
            self.wakes.fetch_add(1, Ordering::SeqCst);
        }
    }

    static HOOK_UNDER_TEST: CountingHook = CountingHook {
        parks: std::sync::atomic::AtomicUsize::new(0),
        wakes: std::sync::atomic::AtomicUsize::new(0),
    };

    #[test]
    fn with_a_hook_waits_park_the_thread_and_dispatch_wakes_it() {
        set_hook(&HOOK_UNDER_TEST).unwrap();
        assert!(is_hooked());
        assert_eq!(set_hook(&HOOK_UNDER_TEST), Err(HvError::Busy), "once");
        let n = Cell::new(0);
        wait_until(None, || {
            n.set(n.get() + 1);
            (n.get() == 4).then_some(())
        })
        .unwrap();
        assert!(HOOK_UNDER_TEST.parks.load(Ordering::SeqCst) >= 3);
        // Something dispatched: the OS hears of it.
        let vpsr = crate::vpsr();
        vpsr.pending.store(1, Ordering::SeqCst);
        let before = HOOK_UNDER_TEST.wakes.load(Ordering::SeqCst);
        irq::enable();
        assert!(HOOK_UNDER_TEST.wakes.load(Ordering::SeqCst) > before);
    }

    #[test]
    fn the_deadline_ends_the_wait() {
        let deadline = time::now() + 5 * crate::arch::TICKS_PER_READ;
        assert_eq!(
            wait_until(Some(deadline), || None::<()>),
            Err(WaitError::TimedOut)
        );
        assert!(time::now() >= deadline);
        assert_eq!(timer::armed(), 0, "the wake-up timers are gone");
        assert!(irq::are_enabled());
    }
}
