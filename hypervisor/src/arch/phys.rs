//! Access to physical memory through the hypervisor's identity map.
//!
//! The functions are `unsafe`: the caller states that the range belongs to
//! what it is using it for (a domain's RAM it is loading or copying from, a
//! page-table frame from the pool, a VPSR page).

use crate::convert::usize_from;

/// Copies `src` to physical address `pa`.
///
/// # Safety
/// `[pa, pa + src.len())` must be RAM that no Rust reference aliases.
pub unsafe fn write_bytes(pa: u64, src: &[u8]) {
    // SAFETY: forwarded from the caller; RAM is identity-mapped at EL2.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), pa as *mut u8, src.len()) };
}

/// Copies from physical address `pa` into `dst`.
///
/// # Safety
/// `[pa, pa + dst.len())` must be RAM.
pub unsafe fn read_bytes(pa: u64, dst: &mut [u8]) {
    // SAFETY: forwarded from the caller.
    unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, dst.as_mut_ptr(), dst.len()) };
}

/// Fills `[pa, pa + len)` with zeros.
///
/// # Safety
/// The range must be RAM that no Rust reference aliases.
pub unsafe fn zero(pa: u64, len: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { core::ptr::write_bytes(pa as *mut u8, 0, usize_from(len)) };
}

/// A byte slice over physical memory.
///
/// # Safety
/// The range must be RAM that is not written while the slice lives.
pub unsafe fn slice(pa: u64, len: u64) -> &'static [u8] {
    // SAFETY: forwarded from the caller.
    unsafe { core::slice::from_raw_parts(pa as *const u8, usize_from(len)) }
}

/// Reads one `u64`.
///
/// # Safety
/// `pa` must be 8-byte aligned RAM.
pub unsafe fn read_u64(pa: u64) -> u64 {
    // SAFETY: forwarded from the caller.
    unsafe { core::ptr::read_volatile(pa as *const u64) }
}

/// Writes one `u64`.
///
/// # Safety
/// `pa` must be 8-byte aligned RAM owned by the caller.
pub unsafe fn write_u64(pa: u64, v: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { core::ptr::write_volatile(pa as *mut u64, v) };
}

/// Copies `len` bytes from physical `src` to physical `dst` (the ranges may
/// overlap).
///
/// # Safety
/// Both ranges must be RAM the caller is entitled to read (`src`) and write
/// (`dst`); no Rust reference aliases `dst`.
pub unsafe fn copy(dst: u64, src: u64, len: u64) {
    // SAFETY: forwarded from the caller; `copy` allows overlap.
    unsafe { core::ptr::copy(src as *const u8, dst as *mut u8, usize_from(len)) };
}
