//! The EL2 physical timer (`CNTHP_*`), which preempts guests and fires their
//! one-shot timers.

/// Arms the timer for the absolute counter value `deadline`.
pub fn set_deadline(deadline: u64) {
    // SAFETY: programs this CPU's EL2 timer; no memory effects.
    unsafe {
        core::arch::asm!(
            "msr cnthp_cval_el2, {d}",
            "msr cnthp_ctl_el2, {on}",
            "isb",
            d = in(reg) deadline,
            on = in(reg) 1u64,
            options(nomem, nostack),
        );
    }
}

/// Stops the timer.
pub fn disable() {
    // SAFETY: as above.
    unsafe { core::arch::asm!("msr cnthp_ctl_el2, xzr", "isb", options(nomem, nostack)) };
}
