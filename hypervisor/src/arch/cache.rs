//! Cache maintenance for memory that a guest reads with its MMU off.

/// Cleans `[pa, pa + len)` to the point of coherency and invalidates the
/// instruction cache, so a guest starting with caches off sees what the
/// hypervisor wrote through its cacheable map.
pub fn clean_to_poc(pa: u64, len: u64) {
    let mut line = pa & !63;
    while line < pa + len {
        // SAFETY: cleaning a data-cache line has no effect on memory contents.
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) line, options(nostack)) };
        line += 64;
    }
    // SAFETY: barrier and I-cache invalidation have no memory effects.
    unsafe { core::arch::asm!("dsb sy", "ic iallu", "dsb sy", "isb", options(nostack)) };
}
