//! The exception vectors' assembly: the vector table, the FP trap, the upcall
//! and fatal exceptions.

use super::*;

// Exception vectors.
global_asm!(
    r#"
    // A fatal exception: keep the stack pointer in TPIDR_EL0 and continue on
    // this vCPU's emergency stack (TPIDRRO_EL0), so that a stack overflow
    // into a guard page can still be reported. SP_EL0 (unused: the SDK runs
    // on SP_EL1) holds x0 meanwhile.
    .macro PARAPET_TO_EMERGENCY_STACK kind
    mov     x0, sp
    msr     tpidr_el0, x0
    mrs     x0, tpidrro_el0
    mov     sp, x0
    mrs     x0, sp_el0
    sub     sp, sp, #{trap_frame}
    stp     x0, x1, [sp]
    mov     x1, #\kind
    b       __parapet_fatal
    .endm

    .macro PARAPET_FATAL kind
    .balign 0x80
    msr     sp_el0, x0
    PARAPET_TO_EMERGENCY_STACK \kind
    .endm

    .section .text.vectors, "ax"
    .balign 2048
    .global __parapet_vectors
__parapet_vectors:
    PARAPET_FATAL 0
    PARAPET_FATAL 1
    PARAPET_FATAL 2
    PARAPET_FATAL 3

    // Current EL with SPx, synchronous: the lazy-FP fast path, else fatal.
    .balign 0x80
    msr     sp_el0, x0
    mrs     x0, esr_el1
    ubfx    x0, x0, #26, #6
    cmp     x0, #0x07
    b.ne    1f
    mrs     x0, sp_el0
    sub     sp, sp, #{fp_frame}
    stp     x0, x1, [sp]
    b       __parapet_fp_trap
1:  PARAPET_TO_EMERGENCY_STACK 4

    // Current EL with SPx, IRQ: the upcall.
    .balign 0x80
    sub     sp, sp, #{irq_frame}
    stp     x0, x1, [sp]
    b       __parapet_irq

    PARAPET_FATAL 6
    PARAPET_FATAL 7
    PARAPET_FATAL 8
    PARAPET_FATAL 9
    PARAPET_FATAL 10
    PARAPET_FATAL 11
    PARAPET_FATAL 12
    PARAPET_FATAL 13
    PARAPET_FATAL 14
    PARAPET_FATAL 15

// FP/SIMD used while the virtual FP bit is clear (ESR class 0x07): count it, set
// the bit, apply it with VpsrSync and retry the instruction. No FP, no Rust.
// Inside an upcall that deferred the interrupted FP state (VPSR_FP_DEFERRED),
// save that state into its frame first (label 5).
__parapet_fp_trap:
    mrs     x0, tpidr_el1
    ldr     x1, [x0, #{vpsr_fp_deferred}]
    cbnz    x1, 5f
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    str     x30, [sp, #144]
    mrs     x9, tpidr_el1
    ldr     x10, [x9, #{vpsr_fp_traps}]
    add     x10, x10, #1
    str     x10, [x9, #{vpsr_fp_traps}]
    mov     w10, #1
    strb    w10, [x9, #{vpsr_fp_enable}]
    mov     x0, #{vpsr_sync}
    hvc     #{hvc_imm}
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldr     x30, [sp, #144]
    ldp     x0, x1, [sp]
    add     sp, sp, #{fp_frame}
    eret

    // x0: the VPSR page, x1: the deferring IRQ frame. FP on (CPACR directly,
    // then the virtual bit, which agrees), save the interrupted state, mark
    // the frame, forget it, retry.
5:  str     x2, [sp, #16]
    ldr     x2, [x0, #{vpsr_fp_traps}]
    add     x2, x2, #1
    str     x2, [x0, #{vpsr_fp_traps}]
"#,
    save_deferred_fp_asm!("x0", "x1", "x2", "w2", "x0"),
    r#"    ldr     x2, [sp, #16]
    ldp     x0, x1, [sp]
    add     sp, sp, #{fp_frame}
    eret

// The upcall: save what a C call may clobber, call Rust, restore, return. With
// the virtual FP bit set, no FP register is saved here: FP is turned off for
// the handler and the save deferred to its first FP instruction, if any (see
// VPSR_FP_DEFERRED). FP instructions come before ELR/SPSR are loaded back: a
// trap they take at EL1 overwrites ELR_EL1 and SPSR_EL1.
__parapet_irq:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    mrs     x9, elr_el1
    mrs     x10, spsr_el1
    stp     x9, x10, [sp, #160]
    stp     x18, x30, [sp, #144]
    mrs     x9, tpidr_el1
    ldrb    w10, [x9, #{vpsr_fp_enable}]
    cmp     w10, #0
    cset    x10, ne
    str     x10, [sp, #{irq_fp_flags}]
    cbz     x10, 1f
    // FP on: off for the handler (CPACR and the virtual bit agree), this
    // frame recorded as the one to save the interrupted state into.
    mrs     x11, cpacr_el1
    bic     x11, x11, #{cpacr_fpen}
    msr     cpacr_el1, x11
    isb
    strb    wzr, [x9, #{vpsr_fp_enable}]
    mov     x11, sp
    str     x11, [x9, #{vpsr_fp_deferred}]
1:  bl      {upcall}
    mrs     x9, tpidr_el1
    ldr     x10, [sp, #{irq_fp_flags}]
    cbnz    x10, 3f
    // FP was off: off again if the handler turned it on.
    ldrb    w11, [x9, #{vpsr_fp_enable}]
    cbz     w11, 2f
    strb    wzr, [x9, #{vpsr_fp_enable}]
    mrs     x11, cpacr_el1
    bic     x11, x11, #{cpacr_fpen}
    msr     cpacr_el1, x11
    b       2f
    // FP was on: on again; the interrupted state is either still in the
    // registers (then this frame is the one recorded: forget it) or saved
    // in the frame by the FP trap (load it).
3:  mrs     x11, cpacr_el1
    orr     x11, x11, #{cpacr_fpen}
    msr     cpacr_el1, x11
    mov     w11, #1
    strb    w11, [x9, #{vpsr_fp_enable}]
    tbnz    x10, #1, 4f
    str     xzr, [x9, #{vpsr_fp_deferred}]
    b       2f
4:  isb
    ldp     x9, x11, [sp, #{irq_fp_regs}]
    msr     fpcr, x9
    msr     fpsr, x11
"#,
    q_regs!("ldp", "sp"),
    r#"2:  ldp     x9, x10, [sp, #160]
    msr     elr_el1, x9
    msr     spsr_el1, x10
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x30, [sp, #144]
    ldp     x0, x1, [sp]
    add     sp, sp, #{irq_frame}
    eret

// Anything else: save a full TrapFrame and let Rust report it (never returns).
// x0 and x1 are already saved, x1 holds the vector index.
__parapet_fatal:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x9, elr_el1
    stp     x30, x9, [sp, #240]
    mrs     x9, spsr_el1
    mrs     x10, esr_el1
    stp     x9, x10, [sp, #256]
    mrs     x9, far_el1
    mrs     x10, tpidr_el0
    stp     x9, x10, [sp, #272]
    mov     x0, sp
    bl      {fatal}
3:  wfe
    b       3b
"#,
    trap_frame = const TRAP_FRAME,
    fp_frame = const FP_FRAME,
    irq_frame = const IRQ_FRAME,
    vpsr_fp_traps = const VPSR_FP_TRAPS,
    vpsr_fp_enable = const VPSR_FP_ENABLE,
    vpsr_fp_deferred = const VPSR_FP_DEFERRED,
    cpacr_fpen = const CPACR_FPEN,
    irq_fp_flags = const IRQ_FP_FLAGS,
    irq_fp_regs = const IRQ_FP_REGS,
    irq_fp_saved = const IRQ_FP_SAVED,
    vpsr_sync = const Hypercall::VpsrSync as u64,
    hvc_imm = const HVC_IMM,
    upcall = sym crate::rt::upcall,
    fatal = sym crate::rt::fatal_exception,
);
