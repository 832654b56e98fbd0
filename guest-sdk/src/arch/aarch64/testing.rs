//! Provoking CPU behaviour on purpose.

use core::arch::asm;
use core::sync::atomic::AtomicU32;
use parapet_abi::hypercall::{Hypercall, HVC_IMM};

/// In one sequence: clears the virtual FP bit, applies it with `VpsrSync`, and
/// executes `fmov d0, #1.0`. The instruction traps (ESR class 0x07) to the
/// SDK's vector, which counts the trap in `vpsr.stats.fp_disabled_traps`, sets
/// the bit again and retries it.
pub fn fp_trap_round_trip() {
    let vpsr = super::vpsr() as *const _ as usize;
    // SAFETY: stores to this vCPU's own VPSR page and issues VpsrSync (no
    // memory arguments); the FP trap is handled by the SDK's vector, which
    // preserves every register; clobbers declared.
    unsafe {
        asm!(
            "strb wzr, [{vpsr}, #{fp_enable}]",
            "mov x0, #{sync}",
            "hvc #{imm}",
            "fmov d0, #1.0",
            vpsr = in(reg) vpsr,
            fp_enable = const super::VPSR_FP_ENABLE,
            sync = const Hypercall::VpsrSync as u64,
            imm = const HVC_IMM,
            clobber_abi("C"),
            options(nostack),
        )
    };
}

/// FPCR while [`fp_state_across_upcall`] waits: round toward zero, flush
/// to zero (not the reset value).
pub const FPCR_PATTERN: u64 = 0b111 << 22;
/// FPSR while it waits: QC, IXC and IOC set.
pub const FPSR_PATTERN: u64 = (1 << 27) | (1 << 4) | 1;

/// What [`fp_state_across_upcall`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpAcross {
    /// `flag` became 2 before the spin budget ran out.
    pub fired: bool,
    /// The OR of the XOR of every q register, FPCR and FPSR with what it
    /// held before the wait: 0 when the FP state came through intact.
    pub diff: u64,
}

/// Fills q0–q31 with a pattern from `seed` (each register different,
/// both halves), sets FPCR to [`FPCR_PATTERN`] and FPSR to
/// [`FPSR_PATTERN`], stores 1 to `flag` (the pattern is in place), spins
/// without FP instructions until `flag` is 2 (an upcall's handler moves it
/// from 1 to 2) or `spins` rounds passed, then compares every one of them
/// with what it held; restores FPCR and FPSR. The interrupted FP state of
/// an upcall, checked whole.
pub fn fp_state_across_upcall(flag: &AtomicU32, spins: u64, seed: u64) -> FpAcross {
    let (left, diff): (u64, u64);
    // SAFETY: writes and reads only the FP/SIMD registers (all declared
    // clobbered), FPCR and FPSR (restored before the end) and reads
    // `flag`, a valid atomic; the FP/SIMD instructions may trap to the
    // SDK's lazy-FP path, which preserves every register.
    unsafe {
        asm!(
        "mrs {ofpcr}, fpcr",
        "mrs {ofpsr}, fpsr",
        "mov {a}, {seed}",
        "mvn {b}, {seed}",
        "dup v0.2d, {a}", "ins v0.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v1.2d, {a}", "ins v1.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v2.2d, {a}", "ins v2.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v3.2d, {a}", "ins v3.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v4.2d, {a}", "ins v4.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v5.2d, {a}", "ins v5.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v6.2d, {a}", "ins v6.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v7.2d, {a}", "ins v7.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v8.2d, {a}", "ins v8.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v9.2d, {a}", "ins v9.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v10.2d, {a}", "ins v10.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v11.2d, {a}", "ins v11.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v12.2d, {a}", "ins v12.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v13.2d, {a}", "ins v13.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v14.2d, {a}", "ins v14.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v15.2d, {a}", "ins v15.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v16.2d, {a}", "ins v16.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v17.2d, {a}", "ins v17.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v18.2d, {a}", "ins v18.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v19.2d, {a}", "ins v19.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v20.2d, {a}", "ins v20.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v21.2d, {a}", "ins v21.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v22.2d, {a}", "ins v22.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v23.2d, {a}", "ins v23.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v24.2d, {a}", "ins v24.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v25.2d, {a}", "ins v25.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v26.2d, {a}", "ins v26.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v27.2d, {a}", "ins v27.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v28.2d, {a}", "ins v28.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v29.2d, {a}", "ins v29.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v30.2d, {a}", "ins v30.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "dup v31.2d, {a}", "ins v31.d[1], {b}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "msr fpcr, {fpcr}",
        "msr fpsr, {fpsr}",
        "mov {tw:w}, #1",
        "str {tw:w}, [{flag}]",
        "2:",
        "ldr {tw:w}, [{flag}]",
        "cmp {tw:w}, #2",
        "b.eq 3f",
        "subs {left}, {left}, #1",
        "b.ne 2b",
        "3:",
        "mrs {t}, fpcr",
        "eor {bad}, {t}, {fpcr}",
        "mrs {t}, fpsr",
        "eor {t}, {t}, {fpsr}",
        "orr {bad}, {bad}, {t}",
        "mov {a}, {seed}",
        "mvn {b}, {seed}",
        "umov {t}, v0.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v0.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v1.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v1.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v2.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v2.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v3.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v3.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v4.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v4.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v5.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v5.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v6.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v6.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v7.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v7.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v8.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v8.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v9.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v9.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v10.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v10.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v11.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v11.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v12.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v12.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v13.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v13.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v14.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v14.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v15.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v15.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v16.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v16.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v17.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v17.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v18.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v18.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v19.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v19.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v20.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v20.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v21.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v21.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v22.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v22.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v23.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v23.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v24.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v24.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v25.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v25.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v26.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v26.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v27.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v27.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v28.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v28.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v29.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v29.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v30.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v30.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "umov {t}, v31.d[0]", "eor {t}, {t}, {a}", "orr {bad}, {bad}, {t}", "umov {t}, v31.d[1]", "eor {t}, {t}, {b}", "orr {bad}, {bad}, {t}", "add {a}, {a}, #1", "sub {b}, {b}, #1",
        "msr fpcr, {ofpcr}",
        "msr fpsr, {ofpsr}",
        seed = in(reg) seed,
        flag = in(reg) flag.as_ptr(),
        fpcr = in(reg) FPCR_PATTERN,
        fpsr = in(reg) FPSR_PATTERN,
        left = inout(reg) spins.max(1) => left,
        bad = out(reg) diff,
        a = out(reg) _,
        b = out(reg) _,
        t = out(reg) _,
        tw = out(reg) _,
        ofpcr = out(reg) _,
        ofpsr = out(reg) _,
        out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _, out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _, out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
        options(nostack),
        )
    };
    FpAcross {
        fired: left != 0,
        diff,
    }
}

/// Overwrites q0–q31, FPCR (round toward plus infinity) and FPSR (DZC):
/// what an upcall handler that uses FP may leave behind.
pub fn clobber_fp(value: u64) {
    // SAFETY: writes only the FP/SIMD registers (declared clobbered),
    // FPCR and FPSR, which the code around an upcall handler does not
    // rely on (the upcall restores the interrupted code's).
    unsafe {
        asm!(
        "dup v0.2d, {t}",
        "dup v1.2d, {t}",
        "dup v2.2d, {t}",
        "dup v3.2d, {t}",
        "dup v4.2d, {t}",
        "dup v5.2d, {t}",
        "dup v6.2d, {t}",
        "dup v7.2d, {t}",
        "dup v8.2d, {t}",
        "dup v9.2d, {t}",
        "dup v10.2d, {t}",
        "dup v11.2d, {t}",
        "dup v12.2d, {t}",
        "dup v13.2d, {t}",
        "dup v14.2d, {t}",
        "dup v15.2d, {t}",
        "dup v16.2d, {t}",
        "dup v17.2d, {t}",
        "dup v18.2d, {t}",
        "dup v19.2d, {t}",
        "dup v20.2d, {t}",
        "dup v21.2d, {t}",
        "dup v22.2d, {t}",
        "dup v23.2d, {t}",
        "dup v24.2d, {t}",
        "dup v25.2d, {t}",
        "dup v26.2d, {t}",
        "dup v27.2d, {t}",
        "dup v28.2d, {t}",
        "dup v29.2d, {t}",
        "dup v30.2d, {t}",
        "dup v31.2d, {t}",
        "msr fpcr, {fpcr}",
        "msr fpsr, {fpsr}",
        t = in(reg) value,
        fpcr = in(reg) 1u64 << 22,
        fpsr = in(reg) 1u64 << 1,
        out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _, out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _, out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
        options(nomem, nostack),
        )
    };
}

/// Executes `udf #0`: an undefined instruction, reported by the SDK's vector.
pub fn undefined_instruction() -> ! {
    // SAFETY: raises a synchronous exception that the SDK's vector reports
    // before shutting the domain down; never returns.
    unsafe { asm!("udf #0", options(noreturn, nomem, nostack)) }
}
