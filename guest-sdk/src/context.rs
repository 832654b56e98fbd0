//! Thread contexts for a guest OS: what a thread's CPU state is between two
//! switches, how to start one on a stack, and the switch itself.
//!
//! A [`Context`] holds the registers a function call preserves (x19–x30, sp,
//! d8–d15 when this vCPU's FP is enabled) plus the *interrupt state*: the
//! VPSR soft mask and PSTATE.DAIF. Carrying DAIF is what makes a switch
//! inside an upcall handler work: the IRQ exception set PSTATE.I, and the
//! thread switched to gets its own DAIF back (I clear for a thread that was
//! not inside the handler), while the thread switched away keeps I set until
//! it resumes and its handler returns with `eret`.
//!
//! # What an upcall handler may do
//! Handlers (`irq::set_handler`, `event::set_handler`, timer callbacks) run
//! with virtual interrupts soft-masked, on the stack of the thread that was
//! interrupted. They may:
//! - call [`switch`] (preempt the interrupted thread): once a guest OS has
//!   installed its wait hook or called [`enable_switching`], the dispatcher
//!   takes one virtual IRQ and one event word at a time and keeps the rest
//!   pending, so whichever thread dispatches next finishes the batch;
//! - send events, read and write shared memory, arm timers.
//!
//! They must not block (`wait::wait_until`, `time::sleep`, a frontend's
//! blocking calls) or take a lock a thread holds with interrupts unmasked.
//!
//! The costs of a switch, in instructions under `-icount shift=0`, are
//! measured by `examples/toy-os` (its `bench` command).
#![deny(unsafe_code)]

use core::mem::offset_of;

/// A thread's saved CPU state (see the module documentation). The layout is
/// the one the switch routine in `arch` reads and writes.
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct Context {
    /// x19–x28.
    callee_saved: [u64; 10],
    /// x29, the frame pointer.
    fp: u64,
    /// x30: where the switch returns to.
    lr: u64,
    /// The stack pointer.
    sp: u64,
    /// PSTATE.DAIF.
    daif: u64,
    /// d8–d15, valid when `fp_saved` is non-zero.
    fp_regs: [u64; 8],
    /// Whether d8–d15 were saved (the vCPU's virtual FP bit was set).
    fp_saved: u64,
    /// The VPSR soft mask the thread had when it switched away.
    irq_masked: u64,
}

/// Offset of `fp_saved` in [`Context`], for the switch routine.
pub(crate) const FP_SAVED_OFFSET: usize = offset_of!(Context, fp_saved);

const _: () = {
    assert!(offset_of!(Context, callee_saved) == 0);
    assert!(offset_of!(Context, fp) == 80);
    assert!(offset_of!(Context, lr) == 88);
    assert!(offset_of!(Context, sp) == 96);
    assert!(offset_of!(Context, daif) == 104);
    assert!(offset_of!(Context, fp_regs) == 112);
    assert!(FP_SAVED_OFFSET == 176);
    assert!(offset_of!(Context, irq_masked) == 184);
    assert!(core::mem::size_of::<Context>() == 192);
};

/// What a new thread runs: it receives the argument given to
/// [`Context::new`] and never returns (a thread ends by switching away for
/// good).
pub type ThreadEntry = fn(usize) -> !;

impl Context {
    /// An empty context, to switch *from* (the state of the running thread
    /// is written into it).
    pub const fn empty() -> Self {
        Self {
            callee_saved: [0; 10],
            fp: 0,
            lr: 0,
            sp: 0,
            daif: 0,
            fp_regs: [0; 8],
            fp_saved: 0,
            irq_masked: 0,
        }
    }

    /// A thread that starts at `entry(arg)` on the stack whose top (highest
    /// address, exclusive) is `stack_top`, with interrupts enabled. Use a
    /// [`crate::memory::Stack`] to get a stack with a guard page.
    pub fn new(stack_top: u64, entry: ThreadEntry, arg: usize) -> Self {
        let mut c = Self::empty();
        c.callee_saved[0] = (entry as *const ()).addr() as u64;
        c.callee_saved[1] = arg as u64;
        c.lr = crate::arch::thread_start_address();
        c.sp = stack_top & !0xf;
        c.daif = crate::arch::THREAD_DAIF;
        c
    }

    /// The saved stack pointer (for an OS's `ps` or a debugger).
    pub fn stack_pointer(&self) -> u64 {
        self.sp
    }

    /// Whether the thread had virtual interrupts masked when it switched
    /// away.
    pub fn irq_masked(&self) -> bool {
        self.irq_masked != 0
    }
}

/// Makes dispatch safe for handlers that switch threads (see the module
/// documentation). Installing a wait hook does it too.
pub fn enable_switching() {
    crate::irq::set_switch_safe();
}

/// Saves the running thread's state in `from` and continues the thread
/// saved in `to`; returns when some thread switches back to `from`. Carries
/// the interrupt state: the soft mask and DAIF are the resumed thread's own.
///
/// Safe to call from an upcall handler (see the module documentation).
///
/// # Safety
/// `to` must be a context saved by `switch` or made by [`Context::new`] on a
/// stack that stays valid and is used by nothing else; `from` and `to` must
/// not be the context of a thread running on another vCPU; `from` must stay
/// valid until the thread is resumed.
#[allow(unsafe_code)]
pub unsafe fn switch(from: &mut Context, to: &Context) {
    let state = crate::irq::disable();
    from.irq_masked = u64::from(state.was_masked());
    let from: *mut Context = from;
    // SAFETY: the caller vouches for both contexts.
    unsafe { crate::arch::context_switch(from, to) };
    // Back in this thread: `from` is its own context again.
    // SAFETY: `from` stayed valid while this thread was switched away (the
    // caller's promise), and only this thread touches it now.
    let masked = unsafe { (*from).irq_masked } != 0;
    crate::irq::restore(crate::irq::MaskState::from_masked(masked));
}

/// Where every new thread starts (from `arch`'s trampoline): unmask, which
/// dispatches whatever the previous thread left pending, and run.
#[allow(unsafe_code)]
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // `arch`'s trampoline calls it
pub(crate) extern "C" fn thread_entry(entry: usize, arg: usize) -> ! {
    // SAFETY: `Context::new` stored a `ThreadEntry` in x19, which the
    // trampoline passes here unchanged.
    let entry: ThreadEntry = unsafe { core::mem::transmute::<usize, ThreadEntry>(entry) };
    crate::irq::enable();
    entry(arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: usize) -> ! {
        unreachable!()
    }

    #[test]
    fn a_new_thread_starts_at_the_trampoline_with_its_entry_and_argument() {
        let c = Context::new(0x4010_0008, never, 42);
        assert_eq!(c.sp, 0x4010_0000, "16-byte aligned, below the top");
        assert_eq!(
            c.callee_saved[0],
            (never as fn(usize) -> !) as *const () as u64
        );
        assert_eq!(c.callee_saved[1], 42);
        assert_eq!(c.lr, crate::arch::thread_start_address());
        assert_eq!(c.daif & (1 << 7), 0, "IRQs unmasked");
        assert!(!c.irq_masked());
        assert_eq!(c.fp_saved, 0);
    }
}
