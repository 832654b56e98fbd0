//! Entry points: `_start` (CPU 0, from QEMU) and `secondary_entry` (other CPUs,
//! from PSCI `CPU_ON` with the CPU index as context id).

/// Most physical CPUs supported.
pub const MAX_CPUS: usize = 8;
/// Size of each CPU's EL2 stack.
pub const STACK_SIZE: usize = 64 * 1024;

/// The EL2 stacks, one per CPU.
#[repr(C, align(16))]
pub struct Stacks([[u8; STACK_SIZE]; MAX_CPUS]);

/// Referenced by the entry code only.
#[unsafe(no_mangle)]
static mut HV_STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_CPUS]);

core::arch::global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    mrs     x1, mpidr_el1
    and     x1, x1, #0xff
    cbnz    x1, 9f
    adrp    x2, __bss_start
    add     x2, x2, :lo12:__bss_start
    adrp    x3, __bss_end
    add     x3, x3, :lo12:__bss_end
1:  cmp     x2, x3
    b.hs    2f
    stp     xzr, xzr, [x2], #16
    b       1b
2:  mov     x0, #0
    b       3f

    .global secondary_entry
secondary_entry:
    and     x0, x0, #0xff
3:  adrp    x1, HV_STACKS
    add     x1, x1, :lo12:HV_STACKS
    add     x2, x0, #1
    lsl     x2, x2, #16
    add     sp, x1, x2
    bl      hv_cpu_entry
9:  wfe
    b       9b
    "#
);

unsafe extern "C" {
    fn secondary_entry();
}

/// Physical address where PSCI `CPU_ON` starts secondary CPUs.
pub fn secondary_entry_address() -> u64 {
    secondary_entry as *const () as u64
}

#[unsafe(no_mangle)]
extern "C" fn hv_cpu_entry(cpu: u64) -> ! {
    crate::hv::cpu_main(crate::convert::usize_from(cpu))
}
