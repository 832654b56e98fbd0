//! The hypervisor's own (EL2 stage-1) identity map: 1 GiB blocks, device
//! memory below RAM, normal write-back memory from 1 GiB to 4 GiB.

const ATTR_DEVICE: u64 = 0; // MAIR index 0: Device-nGnRE
const ATTR_NORMAL: u64 = 1; // MAIR index 1: Normal WB RA WA
const MAIR: u64 = 0x04 | (0xff << 8);
const VALID: u64 = 1;
const AF: u64 = 1 << 10;
const SH_INNER: u64 = 0b11 << 8;
const XN: u64 = 1 << 54;
/// TCR_EL2: T0SZ 25 (39-bit VA, start at level 1), WB walks, inner
/// shareable, 4 KiB granule, 40-bit PA, RES1 bits 23 and 31.
const TCR: u64 =
    25 | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (0b010 << 16) | (1 << 23) | (1 << 31);
/// SCTLR_EL2: M, C, SA, I plus RES1 bits.
const SCTLR: u64 = 0x30c5_0830 | 1 | (1 << 2) | (1 << 3) | (1 << 12);

#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut EL2_L1: Table = Table([0; 512]);

/// Builds the table (CPU 0, once, before `enable`).
pub fn build() {
    let mut entries = [0u64; 512];
    entries[0] = ATTR_DEVICE << 2 | AF | XN | VALID;
    for (gib, entry) in entries.iter_mut().enumerate().take(4).skip(1) {
        *entry = ((gib as u64) << 30) | ATTR_NORMAL << 2 | SH_INNER | AF | VALID;
    }
    // SAFETY: runs once on CPU 0 before any CPU enables its MMU, so nothing
    // reads the table concurrently.
    unsafe { EL2_L1 = Table(entries) };
}

/// Turns on the EL2 MMU and caches with the identity map.
pub fn enable() {
    // SAFETY: the table identity-maps all of RAM (including this code, its
    // stack and data) with the same addresses, so execution continues
    // unchanged once translation is on.
    unsafe {
        core::arch::asm!(
            "msr mair_el2, {mair}",
            "msr tcr_el2, {tcr}",
            "msr ttbr0_el2, {ttbr}",
            "dsb sy",
            "isb",
            "tlbi alle2",
            "dsb sy",
            "isb",
            "msr sctlr_el2, {sctlr}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) TCR,
            ttbr = in(reg) &raw const EL2_L1 as u64,
            sctlr = in(reg) SCTLR,
            options(nostack),
        );
    }
}
