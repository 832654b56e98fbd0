//! The AArch64 layer: boot code, exception vectors, the identity map, system
//! registers and the `hvc` instruction. Everything else in the SDK is portable.

use core::arch::{asm, global_asm};
use core::mem::offset_of;

use parapet_abi::hypercall::{Hypercall, HVC_IMM};
use parapet_abi::layout::MAX_VCPUS;
use parapet_abi::vpsr::{Vpsr, VpsrStats};

use crate::exception::TrapFrame;

/// Size of each vCPU's boot stack.
pub const STACK_SIZE: usize = 64 * 1024;
/// Each boot stack sits above a guard page of its own (unmapped once the
/// runtime has built its page tables, see `crate::memory`).
pub const STACK_SLOT: usize = STACK_SIZE + 4096;
/// Size of each vCPU's emergency stack: the fatal-exception path switches to
/// it, so that a stack overflow (a fault on a guard page) can be reported.
const EMERGENCY_STACK: usize = 8 * 1024;

/// Bytes saved by the lazy-FP trap path: x0–x17 and x30, rounded to 16.
const FP_FRAME: usize = 160;
/// Bytes of the IRQ path's frame: x0–x18 (x18 is a temporary register for
/// this target's Rust code, which the handler may clobber), x30, ELR, SPSR,
/// the FP flags ([`IRQ_FP_ON`], [`IRQ_FP_SAVED`]), then room for FPCR, FPSR
/// and all of q0–q31 (an interrupt is not a call boundary: the upper halves
/// of v8–v15 are live too), filled only if the handler uses FP (see
/// [`VPSR_FP_DEFERRED`]).
const IRQ_FRAME: usize = 720;
/// IRQ frame flag: the virtual FP bit was set when the upcall came, so the
/// vector turned FP off and deferred saving the interrupted FP state.
const IRQ_FP_ON: u64 = 1;
/// IRQ frame flag: the FP trap saved the interrupted FP state in the frame
/// (restore it on the way out).
const IRQ_FP_SAVED: u64 = 2;
/// Offset in the IRQ frame of the FP flags, and of FPCR/FPSR and q0–q31.
const IRQ_FP_FLAGS: usize = 176;
const IRQ_FP_REGS: usize = 192;
/// `CPACR_EL1.FPEN`: FP/SIMD enabled at EL1 and EL0 (0b11), else trapped.
const CPACR_FPEN: u64 = 0b11 << 20;

/// Offset in this vCPU's VPSR page (`TPIDR_EL1`) of a word of the SDK's own,
/// in the guest's part of the page (`VPSR_GUEST_AREA`, beyond the shared
/// [`Vpsr`]: the hypervisor never reads or writes it): the address of the IRQ
/// frame whose interrupted code's FP/SIMD state is still in the registers,
/// unsaved, or 0.
///
/// The lazy upcall FP rule: an upcall that interrupts code with the virtual FP
/// bit set saves no FP register. It clears the bit and `CPACR_EL1.FPEN`
/// together (so that a hypercall inside the handler, which re-applies the bit,
/// keeps FP off), marks its frame [`IRQ_FP_ON`] and stores the frame's address
/// here. The first FP instruction of the handler traps (class 0x07) to
/// `__parapet_fp_trap`, which finds the frame here: it turns FP on, saves
/// FPCR, FPSR and q0–q31 into the frame, marks it [`IRQ_FP_SAVED`], clears
/// this word and retries. On the way out the vector sets the bit and FPEN to
/// their values at entry, and loads the saved registers if any. A thread
/// switch (`__parapet_context_switch`) with a frame recorded here saves the
/// state into it first (inline, as the trap would), so that at most one frame
/// is ever recorded, it belongs to the running thread, and the thread switched
/// to finds FP usable and its own state intact.
const VPSR_FP_DEFERRED: usize = parapet_abi::vpsr::VPSR_GUEST_AREA;
const _: () = assert!(IRQ_FP_REGS + 16 + 32 * 16 == IRQ_FRAME);
// The vector stores 0 or 1 (`cset`) as the flags and tests bit 1 with `tbnz`.
const _: () = assert!(IRQ_FP_ON == 1 && IRQ_FP_SAVED == 1 << 1);
/// Bytes saved by the fatal-exception path ([`TrapFrame`]).
const TRAP_FRAME: usize = core::mem::size_of::<TrapFrame>();
const _: () = assert!(TRAP_FRAME == 288 && TRAP_FRAME.is_multiple_of(16));

const VPSR_FP_ENABLE: usize = offset_of!(Vpsr, fp_enable);
const VPSR_FP_TRAPS: usize = offset_of!(Vpsr, stats) + offset_of!(VpsrStats, fp_disabled_traps);
const _: () = assert!(VPSR_FP_ENABLE == 2 && VPSR_FP_TRAPS == 80);

/// The link-time address of an assembler symbol (no memory access).
macro_rules! symbol_address {
    ($sym:literal) => {{
        let addr: u64;
        // SAFETY: computes an address with `adrp`/`add`; reads no memory.
        unsafe {
            asm!(
                concat!("adrp {a}, ", $sym),
                concat!("add {a}, {a}, :lo12:", $sym),
                a = out(reg) addr,
                options(nomem, nostack, preserves_flags),
            )
        };
        addr
    }};
}

/// The 16 `stp`/`ldp` lines that store or load q0–q31 at their place in an
/// IRQ frame (`IRQ_FP_REGS + 16` onwards) whose address is in `base`.
#[rustfmt::skip]
macro_rules! q_regs {
    ($op:literal, $base:literal) => {
        concat!(
            "    ", $op, " q0, q1, [", $base, ", #208]\n",
            "    ", $op, " q2, q3, [", $base, ", #240]\n",
            "    ", $op, " q4, q5, [", $base, ", #272]\n",
            "    ", $op, " q6, q7, [", $base, ", #304]\n",
            "    ", $op, " q8, q9, [", $base, ", #336]\n",
            "    ", $op, " q10, q11, [", $base, ", #368]\n",
            "    ", $op, " q12, q13, [", $base, ", #400]\n",
            "    ", $op, " q14, q15, [", $base, ", #432]\n",
            "    ", $op, " q16, q17, [", $base, ", #464]\n",
            "    ", $op, " q18, q19, [", $base, ", #496]\n",
            "    ", $op, " q20, q21, [", $base, ", #528]\n",
            "    ", $op, " q22, q23, [", $base, ", #560]\n",
            "    ", $op, " q24, q25, [", $base, ", #592]\n",
            "    ", $op, " q26, q27, [", $base, ", #624]\n",
            "    ", $op, " q28, q29, [", $base, ", #656]\n",
            "    ", $op, " q30, q31, [", $base, ", #688]\n",
        )
    };
}
const _: () = assert!(IRQ_FP_REGS + 16 == 208);

// Boot: `_start` (vCPU 0) and `__parapet_secondary` (vCPUs started with VcpuUp).
// Both arrive at EL1h with the MMU and caches off; x0 = start info (primary) or the
// VcpuUp argument (secondary), x1 = the VPSR page, x2 = the vCPU id.
global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
    .type _start, %function
_start:
    cmp     x2, #{max_vcpus}
    b.hs    9f
    bl      __parapet_cpu_init
    cbnz    x2, 2f
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
1:  cmp     x9, x10
    b.hs    2f
    stp     xzr, xzr, [x9], #16
    b       1b
2:  bl      {sdk_start}
9:  wfe
    b       9b

    .global __parapet_secondary
    .type __parapet_secondary, %function
__parapet_secondary:
    cmp     x2, #{max_vcpus}
    b.hs    9b
    bl      __parapet_cpu_init
    bl      {sdk_secondary}
    b       9b

// Per-vCPU set-up; preserves x0-x2, clobbers x9-x11.
__parapet_cpu_init:
    adrp    x9, __parapet_stacks
    add     x9, x9, :lo12:__parapet_stacks
    add     x10, x2, #1
    mov     x11, #{stack_slot_lo}
    movk    x11, #{stack_slot_hi}, lsl #16
    madd    x9, x10, x11, x9
    mov     sp, x9
    adrp    x9, __parapet_emergency_stacks
    add     x9, x9, :lo12:__parapet_emergency_stacks
    mov     x11, #{emergency_stack}
    madd    x9, x10, x11, x9
    msr     tpidrro_el0, x9
    msr     tpidr_el1, x1
    adrp    x9, __parapet_vectors
    add     x9, x9, :lo12:__parapet_vectors
    msr     vbar_el1, x9
    // MAIR: attr0 Device-nGnRE, attr1 Normal write-back.
    mov     x9, #0xff04
    msr     mair_el1, x9
    // TCR: T0SZ=25, IRGN0=ORGN0=WB, SH0=inner, TG0=4K, EPD1, TG1=4K, IPS=40 bits.
    mov     x9, #0x3519
    movk    x9, #0x8080, lsl #16
    movk    x9, #0x2, lsl #32
    msr     tcr_el1, x9
    adrp    x9, __parapet_l1_table
    msr     ttbr0_el1, x9
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    // SCTLR: RES1 bits (29,28,23,22,20,11) | I | C | M.
    mov     x9, #0x1805
    movk    x9, #0x30d0, lsl #16
    msr     sctlr_el1, x9
    isb
    // No upcall has deferred FP state yet (see VPSR_FP_DEFERRED).
    str     xzr, [x1, #{vpsr_fp_deferred}]
    ret

    .section .bss.parapet_stacks, "aw", %nobits
    .balign 4096
    .global __parapet_stacks
__parapet_stacks:
    .space  {stacks_total}
    .balign 16
__parapet_emergency_stacks:
    .space  {emergency_total}

    // Identity map, 1 GiB blocks: [0, 1 GiB) Device-nGnRE, XN; [1, 4 GiB) Normal
    // write-back, inner shareable. Entries: AF | SH | AttrIndx | block.
    .section .data.parapet_l1_table, "aw"
    .balign 4096
__parapet_l1_table:
    .quad   0x0060000000000401
    .quad   0x0000000040000705
    .quad   0x0000000080000705
    .quad   0x00000000c0000705
    .fill   508, 8, 0
"#,
    max_vcpus = const MAX_VCPUS,
    stack_slot_lo = const STACK_SLOT & 0xffff,
    stack_slot_hi = const STACK_SLOT >> 16,
    stacks_total = const STACK_SLOT * MAX_VCPUS as usize,
    emergency_stack = const EMERGENCY_STACK,
    emergency_total = const EMERGENCY_STACK * MAX_VCPUS as usize,
    vpsr_fp_deferred = const VPSR_FP_DEFERRED,
    sdk_start = sym crate::rt::sdk_start,
    sdk_secondary = sym crate::rt::sdk_secondary_start,
);

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
    mrs     x2, cpacr_el1
    orr     x2, x2, #{cpacr_fpen}
    msr     cpacr_el1, x2
    isb
    mov     w2, #1
    strb    w2, [x0, #{vpsr_fp_enable}]
    str     xzr, [x0, #{vpsr_fp_deferred}]
    mrs     x0, fpcr
    mrs     x2, fpsr
    stp     x0, x2, [x1, #{irq_fp_regs}]
"#,
    q_regs!("stp", "x1"),
    r#"    ldr     x0, [x1, #{irq_fp_flags}]
    orr     x0, x0, #{irq_fp_saved}
    str     x0, [x1, #{irq_fp_flags}]
    ldr     x2, [sp, #16]
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
    mrs     x9, cpacr_el1
    orr     x9, x9, #{cpacr_fpen}
    msr     cpacr_el1, x9
    isb
    mov     w9, #1
    strb    w9, [x11, #{vpsr_fp_enable}]
    str     xzr, [x11, #{vpsr_fp_deferred}]
    mrs     x9, fpcr
    mrs     x10, fpsr
    stp     x9, x10, [x12, #{irq_fp_regs}]
"#,
    q_regs!("stp", "x12"),
    r#"
    ldr     x9, [x12, #{irq_fp_flags}]
    orr     x9, x9, #{irq_fp_saved}
    str     x9, [x12, #{irq_fp_flags}]
0:  stp     x19, x20, [x0, #0]
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

extern "C" {
    fn __parapet_context_switch(
        from: *mut crate::context::Context,
        to: *const crate::context::Context,
    );
    fn __parapet_thread_start();
}

/// Switches from the running thread (its state saved in `from`) to the one
/// saved in `to`; returns when something switches back to `from`.
///
/// # Safety
/// `from` must be writable and `to` must hold a context saved by this
/// function or made by `Context::new` on a valid, unused stack; neither may be
/// the context of a thread running on another vCPU.
pub unsafe fn context_switch(
    from: *mut crate::context::Context,
    to: *const crate::context::Context,
) {
    // SAFETY: the caller vouches for both contexts; the routine saves and
    // restores every register the C ABI requires a call to preserve.
    unsafe { __parapet_context_switch(from, to) }
}

/// Where a new thread starts (see `Context::new`).
pub fn thread_start_address() -> u64 {
    (__parapet_thread_start as *const ()).addr() as u64
}

/// PSTATE.DAIF for a new thread: debug, SError and FIQ masked as the SDK runs,
/// IRQ (the upcall) unmasked.
pub const THREAD_DAIF: u64 = 0b1101 << 6;

/// Installs `root` (a level-1 table) as this vCPU's stage-1 translation table
/// and drops the old translations. The new tables must map everything the
/// running code uses exactly as the old ones do.
///
/// # Safety
/// `root` must be a valid level-1 table tree that identity-maps this domain
/// (code, data, stacks, heap, devices) with the same attributes as now.
pub unsafe fn set_translation_root(root: u64) {
    // SAFETY: per the caller, the new tree maps the same addresses the same way.
    unsafe {
        asm!(
            "dsb ishst",
            "msr ttbr0_el1, {r}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            r = in(reg) root,
            options(nostack, preserves_flags),
        )
    };
}

/// Installs the runtime's page tables (see `crate::memory`).
pub fn install_translation_root(root: u64) {
    // SAFETY: `memory::PageTables::build` copies the boot map and maps the
    // domain's RAM identity with the same attributes, only with pages.
    unsafe { set_translation_root(root) }
}

/// The boot map's level-1 entries.
pub fn boot_translation_entries() -> &'static [u64; 512] {
    // SAFETY: `__parapet_l1_table` is a 4 KiB-aligned table of 512 entries in
    // the image's data, which nothing writes after boot.
    unsafe { &*(boot_translation_root() as *const [u64; 512]) }
}

/// Drops the translation of the page at `va` on every vCPU of the domain
/// (after its page-table entry changed).
pub fn invalidate_page(va: u64) {
    // SAFETY: TLB maintenance only.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi vaae1is, {p}",
            "dsb ish",
            "isb",
            p = in(reg) va >> 12,
            options(nostack, preserves_flags),
        )
    };
}

/// The boot-time level-1 table (1 GiB blocks).
pub fn boot_translation_root() -> u64 {
    symbol_address!("__parapet_l1_table")
}

/// The base of the boot stacks: vCPU `i`'s guard page is at
/// `base + i * STACK_SLOT`, its stack above it.
pub fn boot_stacks() -> u64 {
    symbol_address!("__parapet_stacks")
}

/// The VPSR page of the current vCPU (its address is kept in `TPIDR_EL1`).
pub fn vpsr() -> &'static Vpsr {
    let addr: usize;
    // SAFETY: reads TPIDR_EL1, no side effects.
    unsafe { asm!("mrs {}, tpidr_el1", out(reg) addr, options(nomem, nostack, preserves_flags)) };
    // SAFETY: the boot code stores this vCPU's VPSR address, given by the hypervisor,
    // in TPIDR_EL1 before any Rust code runs; the page is mapped for the domain's
    // lifetime, page-aligned, and every field is an atomic (shared with the
    // hypervisor), so a shared reference is sound.
    unsafe { &*(addr as *const Vpsr) }
}

/// Issues `hvc #HVC_IMM` with the number in x0 and `args` in x1–x6; returns x0–x3.
///
/// # Safety
/// The arguments must be valid for the call: addresses the hypervisor will read or
/// write must be owned by the caller for the access, and `VcpuUp` entry points must
/// be code that can run with the state the hypervisor gives them.
pub unsafe fn hvc(nr: u64, args: [u64; 6]) -> [u64; 4] {
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    // SAFETY: the hypercall follows the C calling convention (clobbers x0–x17 only,
    // preserves sp and FP/SIMD); the caller vouches for the arguments.
    unsafe {
        asm!(
            "hvc #{imm}",
            imm = const HVC_IMM,
            inlateout("x0") nr => r0,
            inlateout("x1") args[0] => r1,
            inlateout("x2") args[1] => r2,
            inlateout("x3") args[2] => r3,
            inlateout("x4") args[3] => _,
            inlateout("x5") args[4] => _,
            inlateout("x6") args[5] => _,
            // x0–x17 only, not the FP/SIMD registers (the ABI preserves them):
            // `clobber_abi("C")` would make every call save and restore d8–d15,
            // an FP use that defeats the lazy FPU.
            lateout("x7") _, lateout("x8") _, lateout("x9") _, lateout("x10") _,
            lateout("x11") _, lateout("x12") _, lateout("x13") _, lateout("x14") _,
            lateout("x15") _, lateout("x16") _, lateout("x17") _,
            options(nostack),
        );
    }
    [r0, r1, r2, r3]
}

/// If an upcall on this vCPU deferred saving the interrupted code's FP/SIMD
/// state (see `VPSR_FP_DEFERRED`), saves it into the upcall's frame now and
/// turns FP on: a read of FPCR traps to `__parapet_fp_trap`, which does it.
/// Call before turning the virtual FP bit on by other means.
pub fn save_deferred_fp() {
    let vpsr = vpsr() as *const Vpsr as usize;
    // SAFETY: reads this vCPU's own VPSR page (mapped for the domain's
    // lifetime; the word at VPSR_FP_DEFERRED is the SDK's) and, if a frame is
    // recorded there, FPCR: that traps (FP is off) to the SDK's vector, which
    // preserves every register but turns FP on.
    unsafe {
        asm!(
            "ldr {t}, [{vpsr}, #{deferred}]",
            "cbz {t}, 1f",
            "mrs {t}, fpcr",
            "1:",
            vpsr = in(reg) vpsr,
            deferred = const VPSR_FP_DEFERRED,
            t = out(reg) _,
            options(nostack),
        )
    };
}

/// The virtual counter `CNTVCT_EL0`.
pub fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter has no side effects.
    unsafe {
        asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// The counter frequency `CNTFRQ_EL0`, in Hz.
pub fn counter_frequency() -> u64 {
    let v: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Acknowledges the highest-priority pending group-1 interrupt (`ICC_IAR1_EL1`).
pub fn irq_ack() -> u32 {
    let v: u64;
    // SAFETY: served by the GIC's virtual CPU interface; acknowledging is what the
    // IRQ handler is for.
    unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v as u32
}

/// Ends an acknowledged interrupt (`ICC_EOIR1_EL1`).
pub fn irq_eoi(intid: u32) {
    // SAFETY: ends an interrupt this handler acknowledged.
    unsafe {
        asm!("msr icc_eoir1_el1, {}", "isb", in(reg) intid as u64, options(nomem, nostack, preserves_flags))
    };
}

/// Clears PSTATE.I, once at start-up: from then on interrupts are masked through
/// the VPSR.
pub fn unmask_irq_exceptions() {
    // SAFETY: the vectors are installed; the upcall handler is ready.
    unsafe { asm!("msr daifclr, #2", options(nomem, nostack, preserves_flags)) };
}

/// This vCPU's index in its domain (`MPIDR_EL1.Aff0`: the hypervisor sets the
/// virtual MPIDR to the vCPU id).
pub fn vcpu_index() -> usize {
    let mpidr: u64;
    // SAFETY: reads MPIDR_EL1, no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack, preserves_flags)) };
    usize::from(mpidr.to_le_bytes()[0])
}

/// The address of the secondary-vCPU entry point.
pub fn secondary_entry() -> u64 {
    symbol_address!("__parapet_secondary")
}

/// The address of the end of the image (`__image_end`, page-aligned, after BSS).
pub fn image_end() -> usize {
    symbol_address!("__image_end") as usize
}

/// The PMU instruction counter (event counter 0 counting `INST_RETIRED`).
pub mod pmu {
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
}

/// Provoking CPU behaviour on purpose.
pub mod testing {
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
}
