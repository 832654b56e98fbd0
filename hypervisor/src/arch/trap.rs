//! Exception vectors, the hypercall fast path, and the world switch.
//!
//! Traps from a guest come in two shapes:
//! * **Fast hypercalls** (the calls that never switch vCPU): the vector saves
//!   only `x18` and `x30` — the hypercall ABI lets it clobber `x0`–`x17`, and
//!   the Rust handler preserves `x19`–`x29` — calls [`hvc_fast`](crate::hv)
//!   and returns with `eret`.
//! * **Everything else** (slow hypercalls, aborts, IRQs): the full register
//!   file is saved into the current vCPU's [`GuestRegs`] (for a slow
//!   hypercall, all but `x8`–`x17`, which the ABI lets it clobber), Rust
//!   decides what to run next, and the chosen vCPU's registers are restored.

use core::sync::atomic::{AtomicPtr, AtomicU32};

/// A vCPU's general-purpose state as saved on a full trap.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct GuestRegs {
    /// `x0`–`x30`.
    pub x: [u64; 31],
    /// `SP_EL1`.
    pub sp_el1: u64,
    /// Return address (`ELR_EL2`).
    pub elr: u64,
    /// Saved PSTATE (`SPSR_EL2`).
    pub spsr: u64,
}
static_assertions::const_assert_eq!(core::mem::offset_of!(GuestRegs, sp_el1), 248);
static_assertions::const_assert_eq!(core::mem::offset_of!(GuestRegs, elr), 256);
static_assertions::const_assert_eq!(core::mem::offset_of!(GuestRegs, spsr), 264);

/// Per-CPU data the vectors read through `TPIDR_EL2`.
#[repr(C)]
pub struct PerCpuTrap {
    /// Where the full-trap path saves the running vCPU (offset 0).
    pub current_regs: AtomicPtr<GuestRegs>,
    /// The running vCPU as `domain << 8 | vcpu`, or `u32::MAX`.
    pub current: AtomicU32,
}

/// Why the full-trap path was entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapKind {
    /// Synchronous exception (see `ESR_EL2`).
    Sync,
    /// Physical IRQ.
    Irq,
    /// FIQ, SError or an AArch32 exception: not expected from guests.
    Other(u64),
}

/// Hypercalls that may switch vCPUs take the full path: a bit per number.
/// Yield (3), Block (4), Shutdown (7), VcpuUp (9).
pub const SLOW_HYPERCALLS: u64 = (1 << 3) | (1 << 4) | (1 << 7) | (1 << 9);

/// An exception vector table named `$name` whose entry for synchronous
/// exceptions from the guests branches to `$sync`; every other entry is the
/// same in both tables.
macro_rules! vector_table {
    ($name:literal, $sync:literal) => {
        concat!(
            "
    .balign 2048
    .global ",
            $name,
            "
",
            $name,
            ":
    // Current EL with SP_EL0: never used.
    .balign 0x80
    mov x0, #0
    b hv_self_trap
    .balign 0x80
    mov x0, #1
    b hv_self_trap
    .balign 0x80
    mov x0, #2
    b hv_self_trap
    .balign 0x80
    mov x0, #3
    b hv_self_trap
    // Current EL with SP_ELx: a hypervisor bug.
    .balign 0x80
    mov x0, #0
    b hv_self_trap
    .balign 0x80
    mov x0, #1
    b hv_self_trap
    .balign 0x80
    mov x0, #2
    b hv_self_trap
    .balign 0x80
    mov x0, #3
    b hv_self_trap
    // Lower EL, AArch64: the guests.
    .balign 0x80
    b ",
            $sync,
            "
    .balign 0x80
    stp x18, x30, [sp, #-16]!
    mov x18, #1
    b full_trap
    .balign 0x80
    stp x18, x30, [sp, #-16]!
    mov x18, #2
    b full_trap
    .balign 0x80
    stp x18, x30, [sp, #-16]!
    mov x18, #3
    b full_trap
    // Lower EL, AArch32: refused.
    .balign 0x80
    stp x18, x30, [sp, #-16]!
    mov x18, #4
    b full_trap
    .balign 0x80
    stp x18, x30, [sp, #-16]!
    mov x18, #4
    b full_trap
    .balign 0x80
    stp x18, x30, [sp, #-16]!
    mov x18, #4
    b full_trap
    .balign 0x80
    stp x18, x30, [sp, #-16]!
    mov x18, #4
    b full_trap
"
        )
    };
}

/// The synchronous entry from a guest, labelled `$label`: a fast hypercall
/// calls `$handler` and returns with `eret`; a slow hypercall goes to
/// `full_trap_hvc`; anything else ends with `x18 = 0` (the kind) and the
/// guest's `x18`/`x30` on the stack, for `full_trap`.
macro_rules! el1_sync {
    ($label:literal, $handler:literal) => {
        concat!(
            $label,
            ":
    stp     x18, x30, [sp, #-16]!
    mrs     x18, esr_el2
    lsr     x18, x18, #26
    cmp     x18, #0x16
    b.ne    2f
    cmp     x0, #63
    b.hi    1f
    mov     x18, #{slow}
    lsr     x18, x18, x0
    tbnz    x18, #0, full_trap_hvc
1:  sub     sp, sp, #32
    mov     x7, sp
    bl      ",
            $handler,
            "
    ldp     x1, x2, [sp]
    ldr     x3, [sp, #16]
    add     sp, sp, #32
    ldp     x18, x30, [sp], #16
    eret
2:  mov     x18, #0
"
        )
    };
}

core::arch::global_asm!(
    "    .section .text.vectors, \"ax\"",
    vector_table!("hv_vectors", "el1_sync"),
    // With tracing on: the same, but fast hypercalls are recorded.
    vector_table!("hv_vectors_traced", "el1_sync_traced"),
    el1_sync!("el1_sync_traced", "hvc_fast_traced"),
    "    b       full_trap",
    el1_sync!("el1_sync", "hvc_fast"),
    r#"
    // Full trap: [sp] holds the guest's x18 and x30, x18 the kind.
full_trap:
    mrs     x30, tpidr_el2
    ldr     x30, [x30]
    stp     x8, x9, [x30, #64]
    stp     x10, x11, [x30, #80]
    stp     x12, x13, [x30, #96]
    stp     x14, x15, [x30, #112]
    stp     x16, x17, [x30, #128]
    b       full_trap_low

    // A slow hypercall: the ABI lets it clobber x0-x17, and x8-x17 carry no
    // argument, so they are not saved (their slot keeps this vCPU's own older
    // values, which the entry restores).
full_trap_hvc:
    mov     x18, #0
    mrs     x30, tpidr_el2
    ldr     x30, [x30]
full_trap_low:
    stp     x0, x1, [x30, #0]
    stp     x2, x3, [x30, #16]
    stp     x4, x5, [x30, #32]
    stp     x6, x7, [x30, #48]
    mov     x1, x18
    ldp     x0, x2, [sp], #16
    stp     x0, x19, [x30, #144]
    stp     x20, x21, [x30, #160]
    stp     x22, x23, [x30, #176]
    stp     x24, x25, [x30, #192]
    stp     x26, x27, [x30, #208]
    stp     x28, x29, [x30, #224]
    mrs     x3, sp_el1
    stp     x2, x3, [x30, #240]
    mrs     x3, elr_el2
    mrs     x4, spsr_el2
    stp     x3, x4, [x30, #256]
    mov     x0, x30
    bl      hv_trap
    // fall through with x0 = the vCPU to run

    .global hv_enter_guest
hv_enter_guest:
    mov     x30, x0
    ldp     x2, x3, [x30, #248]
    ldr     x4, [x30, #264]
    msr     sp_el1, x2
    msr     elr_el2, x3
    msr     spsr_el2, x4
    ldp     x0, x1, [x30, #0]
    ldp     x2, x3, [x30, #16]
    ldp     x4, x5, [x30, #32]
    ldp     x6, x7, [x30, #48]
    ldp     x8, x9, [x30, #64]
    ldp     x10, x11, [x30, #80]
    ldp     x12, x13, [x30, #96]
    ldp     x14, x15, [x30, #112]
    ldp     x16, x17, [x30, #128]
    ldp     x18, x19, [x30, #144]
    ldp     x20, x21, [x30, #160]
    ldp     x22, x23, [x30, #176]
    ldp     x24, x25, [x30, #192]
    ldp     x26, x27, [x30, #208]
    ldp     x28, x29, [x30, #224]
    ldr     x30, [x30, #240]
    eret

hv_self_trap:
    mrs     x1, esr_el2
    mrs     x2, elr_el2
    mrs     x3, far_el2
    bl      hv_self_exception
    "#,
    slow = const SLOW_HYPERCALLS,
);

unsafe extern "C" {
    static hv_vectors: u8;
    static hv_vectors_traced: u8;
    fn hv_enter_guest(regs: *mut GuestRegs) -> !;
}

/// Installs the vectors (the traced ones if `traced`) and the per-CPU pointer
/// on the calling CPU.
pub fn install(per_cpu: &'static PerCpuTrap, traced: bool) {
    let table = if traced {
        &raw const hv_vectors_traced
    } else {
        &raw const hv_vectors
    };
    // SAFETY: both tables above are 2 KiB-aligned; `per_cpu` lives forever,
    // so the vectors may read it at any time.
    unsafe {
        core::arch::asm!(
            "msr vbar_el2, {v}",
            "msr tpidr_el2, {p}",
            "isb",
            v = in(reg) table,
            p = in(reg) per_cpu as *const PerCpuTrap,
            options(nostack),
        );
    }
}

/// Restores `regs` and enters the guest.
///
/// # Safety
/// `regs` must be the saved state of the vCPU whose EL1 state and stage-2
/// tables are loaded on this CPU, and this CPU's [`PerCpuTrap::current_regs`]
/// must point to it, so the next trap saves into the right place.
pub unsafe fn enter_guest(regs: *mut GuestRegs) -> ! {
    // SAFETY: forwarded from the caller's contract.
    unsafe { hv_enter_guest(regs) }
}

impl TrapKind {
    /// Decodes the kind the vectors pass.
    pub fn from_raw(raw: u64) -> Self {
        match raw {
            0 => TrapKind::Sync,
            1 => TrapKind::Irq,
            other => TrapKind::Other(other),
        }
    }
}
