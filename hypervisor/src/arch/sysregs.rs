//! Typed accessors for the system registers the hypervisor uses, and the
//! values it programs into them. One place where the bit layouts live.

macro_rules! sysreg_wo {
    ($write:ident, $reg:literal) => {
        #[doc = concat!("Writes `", $reg, "`.")]
        #[inline(always)]
        pub fn $write(v: u64) {
            // SAFETY: the hypervisor owns EL2; callers pass values built from
            // this module's bit definitions.
            unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) v, options(nomem, nostack)) };
        }
    };
}

macro_rules! sysreg_ro {
    ($read:ident, $reg:literal) => {
        #[doc = concat!("Reads `", $reg, "`.")]
        #[inline(always)]
        pub fn $read() -> u64 {
            let v: u64;
            // SAFETY: reading this system register has no side effects.
            unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nomem, nostack)) };
            v
        }
    };
}

sysreg_ro!(read_mpidr, "mpidr_el1");
sysreg_ro!(read_midr, "midr_el1");
sysreg_ro!(read_esr_el2, "esr_el2");
sysreg_ro!(read_far_el2, "far_el2");
sysreg_ro!(read_hpfar_el2, "hpfar_el2");
sysreg_ro!(read_cntfrq, "cntfrq_el0");
sysreg_ro!(read_pmcr, "pmcr_el0");
sysreg_wo!(write_hcr_el2, "hcr_el2");
sysreg_wo!(write_cptr_el2, "cptr_el2");

/// Reads the physical counter, ordered after earlier instructions.
#[inline(always)]
pub fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading the counter has no side effects.
    unsafe { core::arch::asm!("isb", "mrs {}, cntpct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

/// `HCR_EL2` bits.
pub mod hcr {
    /// Stage-2 translation on.
    pub const VM: u64 = 1 << 0;
    /// Set/way invalidation becomes clean+invalidate.
    pub const SWIO: u64 = 1 << 1;
    /// FIQs to EL2, virtual FIQs to the guest.
    pub const FMO: u64 = 1 << 3;
    /// IRQs to EL2; the guest's ICC accesses go to the virtual CPU interface.
    pub const IMO: u64 = 1 << 4;
    /// SErrors to EL2.
    pub const AMO: u64 = 1 << 5;
    /// Trap WFI (treated as "block until an event").
    pub const TWI: u64 = 1 << 13;
    /// Trap SMC (guests may not call firmware).
    pub const TSC: u64 = 1 << 19;
    /// EL1 is AArch64.
    pub const RW: u64 = 1 << 31;
    /// Pointer-authentication key registers do not trap.
    pub const APK: u64 = 1 << 40;
    /// Pointer-authentication instructions do not trap.
    pub const API: u64 = 1 << 41;
    /// What the hypervisor runs guests with.
    pub const GUEST: u64 = VM | SWIO | FMO | IMO | AMO | TWI | TSC | RW | APK | API;
}

/// `CPTR_EL2` (non-VHE layout).
pub mod cptr {
    /// RES1 bits, plus TZ (trap SVE) and TSM (trap SME): guests get FP/SIMD only.
    pub const BASE: u64 = 0x33ff;
    /// Trap FP/SIMD to EL2 (lazy switching: set while the vCPU does not own them).
    pub const TFP: u64 = 1 << 10;
}

/// `VTCR_EL2`: 39-bit IPA (T0SZ 25), start at level 1, 4 KiB granule, inner
/// shareable write-back walks, 40-bit PA, 8-bit VMID.
pub const VTCR_EL2: u64 =
    25 | (0b01 << 6) | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (0b010 << 16) | (1 << 31);

/// `SPSR_EL2` for a vCPU's first entry: EL1h with D, A, I and F masked.
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;
/// `SCTLR_EL1` reset value (RES1 bits only; MMU and caches off).
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;
/// `CPACR_EL1.FPEN = 0b11`: FP/SIMD enabled at EL1 and EL0.
pub const CPACR_FPEN: u64 = 0b11 << 20;

/// Programs the EL2 registers that are the same for every guest.
pub fn init_el2_controls() {
    write_hcr_el2(hcr::GUEST);
    write_cptr_el2(cptr::BASE | cptr::TFP);
    let pmcr_n = (read_pmcr() >> 11) & 0x1f;
    // SAFETY: EL2 configuration registers; the values give guests: virtual
    // counter without offset, EL1 physical timer trapped, counter readable,
    // the whole PMU at EL1 (HPMN = N) with EL2 counting allowed, and the stage-2
    // format used by `stage2`. The VPIDR mirrors the real MIDR.
    unsafe {
        core::arch::asm!(
            "msr cntvoff_el2, xzr",
            "msr cnthctl_el2, {cnthctl}",
            "msr mdcr_el2, {mdcr}",
            "msr vtcr_el2, {vtcr}",
            "msr vpidr_el2, {midr}",
            "isb",
            cnthctl = in(reg) 0b01u64,
            mdcr = in(reg) pmcr_n,
            vtcr = in(reg) VTCR_EL2,
            midr = in(reg) read_midr(),
            options(nostack),
        );
    }
}

/// The EL1 (and per-vCPU EL2) state switched between vCPUs on one CPU.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct El1State {
    /// `SCTLR_EL1`.
    pub sctlr: u64,
    /// `TTBR0_EL1`.
    pub ttbr0: u64,
    /// `TTBR1_EL1`.
    pub ttbr1: u64,
    /// `TCR_EL1`.
    pub tcr: u64,
    /// `MAIR_EL1`.
    pub mair: u64,
    /// `AMAIR_EL1`.
    pub amair: u64,
    /// `VBAR_EL1`.
    pub vbar: u64,
    /// `CONTEXTIDR_EL1`.
    pub contextidr: u64,
    /// `TPIDR_EL1`.
    pub tpidr_el1: u64,
    /// `TPIDR_EL0`.
    pub tpidr_el0: u64,
    /// `TPIDRRO_EL0`.
    pub tpidrro_el0: u64,
    /// `SP_EL0`.
    pub sp_el0: u64,
    /// `ELR_EL1`.
    pub elr_el1: u64,
    /// `SPSR_EL1`.
    pub spsr_el1: u64,
    /// `ESR_EL1`.
    pub esr_el1: u64,
    /// `FAR_EL1`.
    pub far_el1: u64,
    /// `AFSR0_EL1`.
    pub afsr0: u64,
    /// `AFSR1_EL1`.
    pub afsr1: u64,
    /// `PAR_EL1`.
    pub par: u64,
    /// `CPACR_EL1` (its FPEN field follows the VPSR's virtual FP bit).
    pub cpacr: u64,
    /// `CNTKCTL_EL1`.
    pub cntkctl: u64,
    /// `MDSCR_EL1`.
    pub mdscr: u64,
    /// `CSSELR_EL1`.
    pub csselr: u64,
    /// `VMPIDR_EL2`.
    pub vmpidr: u64,
    /// `ICH_VMCR_EL2`: the guest's virtual GIC CPU interface control.
    pub ich_vmcr: u64,
    /// `ICH_LR0_EL2`: the list register that carries the upcall.
    pub ich_lr0: u64,
    /// `ICH_AP1R0_EL2`: active priorities.
    pub ich_ap1r0: u64,
    /// `VTTBR_EL2`: the domain's stage-2 root and VMID.
    pub vttbr: u64,
}

// `save` and `load` below address the fields by these offsets.
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, sctlr), 0);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, ttbr0), 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, ttbr1), 16);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, tcr), 24);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, mair), 32);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, amair), 40);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, vbar), 48);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, contextidr), 56);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, tpidr_el1), 64);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, tpidr_el0), 72);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, tpidrro_el0), 80);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, sp_el0), 88);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, elr_el1), 96);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, spsr_el1), 104);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, esr_el1), 112);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, far_el1), 120);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, afsr0), 128);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, afsr1), 136);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, par), 144);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, cpacr), 152);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, cntkctl), 160);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, mdscr), 168);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, csselr), 176);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, vmpidr), 184);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, ich_vmcr), 192);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, ich_lr0), 200);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, ich_ap1r0), 208);
static_assertions::const_assert_eq!(core::mem::offset_of!(El1State, vttbr), 216);
static_assertions::const_assert_eq!(core::mem::size_of::<El1State>(), 224);

impl El1State {
    /// Saves the vCPU state held in the registers: all but `VMPIDR_EL2` and
    /// `VTTBR_EL2`, which only the hypervisor writes (their saved copy is
    /// the truth). One asm block, two registers per store.
    pub fn save(&mut self) {
        let p: *mut Self = self;
        // SAFETY: reading EL1/EL2 state registers has no side effects; the
        // stores go to `self`'s fields at the offsets asserted above.
        unsafe {
            core::arch::asm!(
                "mrs {a}, sctlr_el1",
                "mrs {b}, ttbr0_el1",
                "stp {a}, {b}, [{p}, #0]",
                "mrs {a}, ttbr1_el1",
                "mrs {b}, tcr_el1",
                "stp {a}, {b}, [{p}, #16]",
                "mrs {a}, mair_el1",
                "mrs {b}, amair_el1",
                "stp {a}, {b}, [{p}, #32]",
                "mrs {a}, vbar_el1",
                "mrs {b}, contextidr_el1",
                "stp {a}, {b}, [{p}, #48]",
                "mrs {a}, tpidr_el1",
                "mrs {b}, tpidr_el0",
                "stp {a}, {b}, [{p}, #64]",
                "mrs {a}, tpidrro_el0",
                "mrs {b}, sp_el0",
                "stp {a}, {b}, [{p}, #80]",
                "mrs {a}, elr_el1",
                "mrs {b}, spsr_el1",
                "stp {a}, {b}, [{p}, #96]",
                "mrs {a}, esr_el1",
                "mrs {b}, far_el1",
                "stp {a}, {b}, [{p}, #112]",
                "mrs {a}, afsr0_el1",
                "mrs {b}, afsr1_el1",
                "stp {a}, {b}, [{p}, #128]",
                "mrs {a}, par_el1",
                "mrs {b}, cpacr_el1",
                "stp {a}, {b}, [{p}, #144]",
                "mrs {a}, cntkctl_el1",
                "mrs {b}, mdscr_el1",
                "stp {a}, {b}, [{p}, #160]",
                "mrs {a}, csselr_el1",
                "str {a}, [{p}, #176]",
                "mrs {a}, ich_vmcr_el2",
                "mrs {b}, ich_lr0_el2",
                "stp {a}, {b}, [{p}, #192]",
                "mrs {a}, ich_ap1r0_el2",
                "str {a}, [{p}, #208]",
                p = in(reg) p,
                a = out(reg) _,
                b = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
    }

    /// Loads this vCPU state into the registers (two fields per load), then
    /// synchronises the context.
    pub fn load(&self) {
        let p: *const Self = self;
        // SAFETY: the hypervisor is at EL2 and no guest runs on this CPU
        // until it enters the vCPU whose state this is; the loads read
        // `self`'s fields at the offsets asserted above. The `isb` makes the
        // new context (stage-2 root, VMID) visible before the guest runs.
        unsafe {
            core::arch::asm!(
                "ldp {a}, {b}, [{p}, #0]",
                "msr sctlr_el1, {a}",
                "msr ttbr0_el1, {b}",
                "ldp {a}, {b}, [{p}, #16]",
                "msr ttbr1_el1, {a}",
                // TCR_EL1 only when it changes: QEMU (TCG, up to 8.x) drops
                // every TLB entry of every regime, EL2's included, on each
                // write, equal or not; hardware does not care.
                "mrs {a}, tcr_el1",
                "cmp {a}, {b}",
                "b.eq 2f",
                "msr tcr_el1, {b}",
                "2:",
                "ldp {a}, {b}, [{p}, #32]",
                "msr mair_el1, {a}",
                "msr amair_el1, {b}",
                "ldp {a}, {b}, [{p}, #48]",
                "msr vbar_el1, {a}",
                "msr contextidr_el1, {b}",
                "ldp {a}, {b}, [{p}, #64]",
                "msr tpidr_el1, {a}",
                "msr tpidr_el0, {b}",
                "ldp {a}, {b}, [{p}, #80]",
                "msr tpidrro_el0, {a}",
                "msr sp_el0, {b}",
                "ldp {a}, {b}, [{p}, #96]",
                "msr elr_el1, {a}",
                "msr spsr_el1, {b}",
                "ldp {a}, {b}, [{p}, #112]",
                "msr esr_el1, {a}",
                "msr far_el1, {b}",
                "ldp {a}, {b}, [{p}, #128]",
                "msr afsr0_el1, {a}",
                "msr afsr1_el1, {b}",
                "ldp {a}, {b}, [{p}, #144]",
                "msr par_el1, {a}",
                "msr cpacr_el1, {b}",
                "ldp {a}, {b}, [{p}, #160]",
                "msr cntkctl_el1, {a}",
                "msr mdscr_el1, {b}",
                "ldp {a}, {b}, [{p}, #176]",
                "msr csselr_el1, {a}",
                "msr vmpidr_el2, {b}",
                "ldp {a}, {b}, [{p}, #192]",
                "msr ich_vmcr_el2, {a}",
                "msr ich_lr0_el2, {b}",
                "ldp {a}, {b}, [{p}, #208]",
                "msr ich_ap1r0_el2, {a}",
                "msr vttbr_el2, {b}",
                "isb",
                p = in(reg) p,
                a = out(reg) _,
                b = out(reg) _,
                options(nostack, readonly),
            );
        }
    }
}

/// Writes `CPACR_EL1` of the loaded vCPU.
pub fn write_cpacr_el1(v: u64) {
    // SAFETY: only affects EL1/EL0 FP trapping of the loaded vCPU.
    unsafe { core::arch::asm!("msr cpacr_el1, {}", in(reg) v, options(nomem, nostack)) };
}

/// Reads `CPACR_EL1` of the loaded vCPU.
pub fn read_cpacr_el1() -> u64 {
    let v: u64;
    // SAFETY: reading has no side effects.
    unsafe { core::arch::asm!("mrs {}, cpacr_el1", out(reg) v, options(nomem, nostack)) };
    v
}
