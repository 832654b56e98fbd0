//! The PMU instruction counter (event counter 0 counting `INST_RETIRED`).

use core::arch::asm;
use parapet_abi::hypercall::HVC_IMM;

/// `PMEVTYPER0_EL0`: `INST_RETIRED` (0x08), with NSH so that EL2 counts too.
const EVTYPER: u64 = 0x08 | (1 << 27);

/// Programs event counter 0 to count retired instructions (EL1 and EL2) and
/// starts it.
pub fn enable_instruction_counter() {
    // SAFETY: the hypervisor lets EL1 program the PMU; this only configures
    // and enables counter 0.
    unsafe {
        asm!(
            "mrs {t}, pmcr_el0",
            "orr {t}, {t}, #1",
            "msr pmcr_el0, {t}",
            "msr pmevtyper0_el0, {ty}",
            "mov {t}, #1",
            "msr pmcntenset_el0, {t}",
            "isb",
            t = out(reg) _,
            ty = in(reg) EVTYPER,
            options(nomem, nostack, preserves_flags),
        )
    };
}

/// Reads event counter 0 (after an `isb`).
pub fn read_instructions() -> u64 {
    let v: u64;
    // SAFETY: reads a PMU counter.
    unsafe {
        asm!("isb", "mrs {}, pmevcntr0_el0", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Instructions counted between two counter reads around nothing: subtract it
/// from [`measure_hypercall`].
pub fn measure_nothing() -> u64 {
    let (before, after): (u64, u64);
    // SAFETY: reads a PMU counter twice.
    unsafe {
        asm!(
            "isb",
            "mrs x20, pmevcntr0_el0",
            "isb",
            "mrs x21, pmevcntr0_el0",
            out("x20") before,
            out("x21") after,
            options(nomem, nostack, preserves_flags),
        )
    };
    (after as u32).wrapping_sub(before as u32) as u64
}

/// Instructions counted between two counter reads around one `hvc` with
/// number `nr` and zero arguments, the same sequence as [`measure_nothing`]
/// plus the `hvc`. Use only with calls that take no arguments or reject them
/// (`Version`, unknown numbers).
pub fn measure_hypercall(nr: u64) -> u64 {
    let (before, after): (u64, u64);
    // SAFETY: a hypercall with zero arguments reads or writes no guest memory;
    // x20/x21 are callee-saved for the hypercall; clobbers declared.
    unsafe {
        asm!(
            "isb",
            "mrs x20, pmevcntr0_el0",
            "hvc #{imm}",
            "isb",
            "mrs x21, pmevcntr0_el0",
            imm = const HVC_IMM,
            out("x20") before,
            out("x21") after,
            inlateout("x0") nr => _,
            in("x1") 0u64,
            in("x2") 0u64,
            in("x3") 0u64,
            clobber_abi("C"),
            options(nostack),
        )
    };
    (after as u32).wrapping_sub(before as u32) as u64
}
