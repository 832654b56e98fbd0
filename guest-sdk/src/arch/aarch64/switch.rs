//! The thread context switch's assembly (`__parapet_context_switch`) and a new
//! thread's first instructions.

use super::*;

// Thread context switch (`crate::context::Context`): saves the callee-saved
// registers, sp, lr, DAIF and (when this vCPU's virtual FP bit is set)
// d8-d15 into x0's context, loads x1's, and returns into it. DAIF is loaded
// last, so that a thread switched away inside the IRQ handler (PSTATE.I set)
// gets it back, and any other thread runs with I clear. A switch inside an
// upcall handler that has not used FP, with the interrupted state deferred
// (VPSR_FP_DEFERRED), first saves that state into the upcall's frame and turns
// FP on, as the FP trap would, so the thread switched to may use FP.
global_asm!(
    r#"
    .section .text.parapet_switch, "ax"
    .global __parapet_context_switch
    .type __parapet_context_switch, %function
__parapet_context_switch:
    mrs     x11, tpidr_el1
    ldr     x12, [x11, #{vpsr_fp_deferred}]
    cbz     x12, 0f
    // x12: the IRQ frame of this thread's upcall, whose interrupted FP state
    // is still in the registers: as the FP trap would, FP on, save it there,
    // mark it saved, forget the frame.
"#,
    save_deferred_fp_asm!("x11", "x12", "x9", "w9", "x10"),
    r#"0:  stp     x19, x20, [x0, #0]
    stp     x21, x22, [x0, #16]
    stp     x23, x24, [x0, #32]
    stp     x25, x26, [x0, #48]
    stp     x27, x28, [x0, #64]
    stp     x29, x30, [x0, #80]
    mov     x9, sp
    mrs     x10, daif
    stp     x9, x10, [x0, #96]
    ldrb    w12, [x11, #{vpsr_fp_enable}]
    str     x12, [x0, #{fp_saved}]
    cbz     x12, 1f
    stp     d8, d9, [x0, #112]
    stp     d10, d11, [x0, #128]
    stp     d12, d13, [x0, #144]
    stp     d14, d15, [x0, #160]
1:  ldp     x19, x20, [x1, #0]
    ldp     x21, x22, [x1, #16]
    ldp     x23, x24, [x1, #32]
    ldp     x25, x26, [x1, #48]
    ldp     x27, x28, [x1, #64]
    ldp     x29, x30, [x1, #80]
    ldr     x12, [x1, #{fp_saved}]
    cbz     x12, 2f
    ldp     d8, d9, [x1, #112]
    ldp     d10, d11, [x1, #128]
    ldp     d12, d13, [x1, #144]
    ldp     d14, d15, [x1, #160]
2:  ldp     x9, x10, [x1, #96]
    mov     sp, x9
    msr     daif, x10
    ret

    // A new thread's first "return": entry in x19, argument in x20.
    .global __parapet_thread_start
    .type __parapet_thread_start, %function
__parapet_thread_start:
    mov     x0, x19
    mov     x1, x20
    b       {thread_entry}
"#,
    vpsr_fp_enable = const VPSR_FP_ENABLE,
    vpsr_fp_deferred = const VPSR_FP_DEFERRED,
    cpacr_fpen = const CPACR_FPEN,
    irq_fp_regs = const IRQ_FP_REGS,
    irq_fp_flags = const IRQ_FP_FLAGS,
    irq_fp_saved = const IRQ_FP_SAVED,
    fp_saved = const crate::context::FP_SAVED_OFFSET,
    thread_entry = sym crate::context::thread_entry,
);
