//! `memcpy` for bare-metal domains, a word at a time at any alignment.
//!
//! The bare-metal target is built `strict-align`, so compiler-builtins'
//! `memcpy` (a weak symbol, which this strong one replaces) copies byte by byte
//! whenever source and destination disagree modulo 8 — the common case for a
//! network payload (offset 54 of a frame) going to or from a socket's ring
//! buffer. This one is `parapet_abi::shmem::read`: aligned `u64` loads of the
//! source (four per iteration), aligned stores, shifts when the two disagree.
//! Its accesses are volatile on the source, which also keeps the compiler from
//! turning the loop back into a call to `memcpy`. Only aligned accesses, so it
//! is correct before the MMU is on (Device memory) as after.
#![allow(unsafe_code)]

/// # Safety
///
/// The C contract: `src..src + n` readable, `dst..dst + n` writable, the two
/// not overlapping.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if n != 0 {
        // SAFETY: the C contract above: `dst` is valid for `n` bytes and no
        // other reference to them is used during the call.
        let out = unsafe { core::slice::from_raw_parts_mut(dst, n) };
        // SAFETY: `src` is valid for `n` bytes and does not overlap `out`;
        // volatile reads of private memory are merely slower, not wrong.
        unsafe { parapet_abi::shmem::read(src, out) };
    }
    dst
}
