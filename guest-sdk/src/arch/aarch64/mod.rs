//! The AArch64 layer: boot code, exception vectors, the identity map, system
//! registers and the `hvc` instruction. Everything else in the SDK is portable.//!
//! The assembly is in its own files: `boot` (`_start`, the per-vCPU set-up),
//! `vectors` (the exception vectors, the FP trap, the upcall, fatal
//! exceptions), `switch` (the thread context switch); `pmu` and `testing`
//! are for benchmarks and tests.

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

/// Saves the FP state an upcall deferred (`VPSR_FP_DEFERRED`) into its IRQ
/// frame: FP on (`CPACR_EL1`, then the virtual bit, which agrees), the frame
/// forgotten, FPCR, FPSR and q0–q31 stored, the frame marked saved. `$vpsr`
/// holds the VPSR page, `$frame` the frame; `$t1` (`$w1` its 32-bit name) and
/// `$t2` are scratch, and `$t2` may be `$vpsr`. The lazy-FP trap and a context
/// switch inside a handler both use it, so the two cannot drift apart.
macro_rules! save_deferred_fp_asm {
    ($vpsr:literal, $frame:literal, $t1:literal, $w1:literal, $t2:literal) => {
        concat!(
            "    mrs     ",
            $t1,
            ", cpacr_el1\n",
            "    orr     ",
            $t1,
            ", ",
            $t1,
            ", #{cpacr_fpen}\n",
            "    msr     cpacr_el1, ",
            $t1,
            "\n",
            "    isb\n",
            "    mov     ",
            $w1,
            ", #1\n",
            "    strb    ",
            $w1,
            ", [",
            $vpsr,
            ", #{vpsr_fp_enable}]\n",
            "    str     xzr, [",
            $vpsr,
            ", #{vpsr_fp_deferred}]\n",
            "    mrs     ",
            $t1,
            ", fpcr\n",
            "    mrs     ",
            $t2,
            ", fpsr\n",
            "    stp     ",
            $t1,
            ", ",
            $t2,
            ", [",
            $frame,
            ", #{irq_fp_regs}]\n",
            q_regs!("stp", $frame),
            "    ldr     ",
            $t1,
            ", [",
            $frame,
            ", #{irq_fp_flags}]\n",
            "    orr     ",
            $t1,
            ", ",
            $t1,
            ", #{irq_fp_saved}\n",
            "    str     ",
            $t1,
            ", [",
            $frame,
            ", #{irq_fp_flags}]\n",
        )
    };
}

// In the original order of the assembly: boot, vectors, switch.
mod boot;
mod vectors;

mod switch;

pub mod pmu;
pub mod testing;

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
