//! Stage-2 TLB maintenance.

/// Invalidates, on every CPU of the inner-shareable domain, the cached
/// stage-2 (and combined stage-1) translations of one page of the domain
/// whose `VTTBR_EL2` value is `vttbr`. Call after removing or changing a
/// stage-2 page entry and before anyone relies on the change.
pub fn invalidate_ipa(vttbr: u64, ipa: u64) {
    // SAFETY: the TLB operations act on the VMID in VTTBR_EL2, so it is set to
    // the target domain's for their duration and restored; EL2's own
    // translation does not use VTTBR_EL2. No memory is accessed.
    unsafe {
        core::arch::asm!(
            "mrs {saved}, vttbr_el2",
            "msr vttbr_el2, {vttbr}",
            "isb",
            "dsb ishst",
            "tlbi ipas2e1is, {page}",
            "dsb ish",
            "tlbi vmalle1is",
            "dsb ish",
            "msr vttbr_el2, {saved}",
            "isb",
            saved = out(reg) _,
            vttbr = in(reg) vttbr,
            page = in(reg) (ipa >> 12) & ((1 << 36) - 1),
            options(nostack)
        );
    }
}

/// Invalidates, on every CPU of the inner-shareable domain, every cached
/// stage-1 and stage-2 translation of the VMID in `vttbr` (`TLBI
/// VMALLS12E1IS`). Call after a domain's stage-2 tables were freed, before its
/// VMID runs again (a restarted domain keeps its VMID).
pub fn invalidate_vmid(vttbr: u64) {
    // SAFETY: as in `invalidate_ipa`: VTTBR_EL2 holds the target VMID only for
    // the duration of the invalidation and is restored; EL2's own
    // translation does not use it, and no memory is accessed.
    unsafe {
        core::arch::asm!(
            "mrs {saved}, vttbr_el2",
            "msr vttbr_el2, {vttbr}",
            "isb",
            "dsb ishst",
            "tlbi vmalls12e1is",
            "dsb ish",
            "msr vttbr_el2, {saved}",
            "isb",
            saved = out(reg) _,
            vttbr = in(reg) vttbr,
            options(nostack)
        );
    }
}
