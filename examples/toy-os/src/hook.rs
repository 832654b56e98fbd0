//! The SDK's wait hook, and the idle thread.
//!
//! Every blocking call of the SDK and the frontends (a network fetch, a
//! disk transfer, a byte-channel read, `time::sleep`, a store wait) ends in
//! `parapet_guest::wait::wait_until`. Without a hook that blocks the whole
//! vCPU; with [`ParkHook`] installed it parks only the calling thread:
//!
//! 1. the SDK masks interrupts, finds its condition false and calls
//!    [`WaitHook::park`]: the thread becomes `Parked` (with a timer for its
//!    deadline, if any) and the scheduler switches to another thread;
//! 2. after every dispatch of events or virtual IRQs (the tick included),
//!    the SDK calls [`WaitHook::wake_all`]: every parked thread becomes
//!    ready, and looks at its condition again when it next runs.
//!
//! That wake-up is coarse (any event wakes every parked thread, and the
//! tick does so every 10 ms), which is what the SDK's protocol asks for and
//! costs a few condition checks. The tick only runs while some thread does
//! (see below).
//!
//! When no thread is ready, the idle thread stops the tick and blocks the
//! vCPU with `hypercall::block()`, which returns as soon as something is
//! pending (an event, console input, a thread's deadline timer).

use parapet_guest::abi::HvError;
use parapet_guest::wait::{self, WaitHook};
use parapet_guest::{hypercall, irq, println};

use crate::sched::{self, State};

/// toy-os's [`WaitHook`]: park the calling thread, let the others run.
pub struct ParkHook;

impl WaitHook for ParkHook {
    fn park(&self, deadline: Option<u64>) {
        if sched::current() == sched::IDLE {
            // The idle thread (main, before it became idle) has nobody to
            // hand the vCPU to: it waits the SDK's default way.
            let _ = wait::block_vcpu(deadline);
        } else {
            sched::block_current(State::Parked, deadline);
        }
    }

    fn wake_all(&self) {
        sched::wake_parked();
    }
}

static HOOK: ParkHook = ParkHook;

/// Installs [`ParkHook`] (once).
pub fn install() -> Result<(), HvError> {
    wait::set_hook(&HOOK)
}

/// The idle thread's loop: runs the ready threads, and blocks the vCPU when
/// there are none. `main` ends here.
pub fn idle_loop() -> ! {
    loop {
        let mask = irq::disable();
        if !sched::any_ready() {
            // Nothing to preempt: no tick until something happens.
            sched::stop_tick();
            // Returns at once if an event or virtual IRQ is pending, even
            // though interrupts are masked: nothing is missed.
            let _ = hypercall::block();
        }
        // Unmasking dispatches what is pending; the handlers wake threads.
        irq::restore(mask);
        if let Err(e) = sched::start_tick() {
            println!("idle: cannot restart the tick: {e}");
        }
        sched::yield_now();
    }
}
