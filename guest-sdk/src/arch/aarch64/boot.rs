//! Boot assembly: `_start` (vCPU 0), `__parapet_secondary` (vCPUs started
//! with `VcpuUp`) and the per-vCPU set-up.

use super::*;

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
