//! Copies between private memory and memory shared with another domain (granted
//! pages, mapped grants): the one copy routine netfront, netback and the SDK's grant
//! accessors use for frames and sectors.
//!
//! # Why not `copy_nonoverlapping`
//!
//! The bare-metal targets are built with `strict-align`: the compiler never emits an
//! unaligned word access, so `memcpy` between buffers whose addresses differ modulo 8
//! (a frame's payload at offset 54, a socket ring at any offset) falls back to bytes
//! and shifts, and a word copied into a `&mut [u8]` of unknown alignment is stored byte
//! by byte. And memory a peer can write at any time is read with volatile accesses, so
//! that every byte is fetched exactly once, by this copy, into private memory.
//!
//! # How
//!
//! The shared side is accessed only with **aligned, volatile `u64` loads or stores**
//! (bytes for an unaligned head and tail of at most 7 bytes each). The private side:
//!
//! * when both addresses agree modulo 8 (the case netfront and netback arrange:
//!   frames sit at offset 0 of a page and private frame buffers are 8-aligned), with
//!   aligned `u64` accesses too, four words per iteration;
//! * otherwise with aligned `u64` accesses to the private side as well, each output
//!   word assembled from two aligned input words with shifts (never byte by byte),
//!   reading no byte outside the slice.
//!
//! [`copy`] moves bytes from one shared region to another (netback: one guest's
//! transmit buffer to another's receive buffer) with volatile word accesses on both
//! sides when they agree modulo 8, which is how netback calls it (same offset in both
//! pages); bytes otherwise.
//!
//! Little-endian only (every Parapet target and host is).
#![allow(unsafe_code)]

use core::ptr::{read_volatile, write_volatile};

const WORD: usize = 8;
const _: () = assert!(
    cfg!(target_endian = "little"),
    "shmem assumes little-endian"
);

/// Bytes from `addr` to the next multiple of 8 (0 if aligned), at most `n`.
#[inline]
fn head_len(addr: usize, n: usize) -> usize {
    (addr.wrapping_neg() & (WORD - 1)).min(n)
}

/// Copies `dst.len()` bytes from shared memory at `src` into `dst`.
///
/// # Safety
///
/// `src..src + dst.len()` must be valid for reads for the duration of the call. The
/// memory may be written concurrently by another domain (that is why it is read with
/// volatile accesses), but not by this program through a Rust reference, and it must
/// not overlap `dst`.
pub unsafe fn read(src: *const u8, dst: &mut [u8]) {
    let n = dst.len();
    let d = dst.as_mut_ptr();
    let head = head_len(src as usize, n);
    let mut i = 0;
    while i < head {
        // SAFETY: `i < n`: in bounds of both (caller's contract for `src`).
        unsafe { *d.add(i) = read_volatile(src.add(i)) };
        i += 1;
    }
    // `src + i` is 8-aligned from here on (or `i == n`).
    if (d as usize + i).is_multiple_of(WORD) {
        while i + 4 * WORD <= n {
            // SAFETY: 32 bytes from `i` are in bounds of both; both sides are
            // 8-aligned at `i`.
            unsafe {
                let s = src.add(i).cast::<u64>();
                let t = d.add(i).cast::<u64>();
                let (a, b) = (read_volatile(s), read_volatile(s.add(1)));
                let (c, e) = (read_volatile(s.add(2)), read_volatile(s.add(3)));
                t.write(a);
                t.add(1).write(b);
                t.add(2).write(c);
                t.add(3).write(e);
            }
            i += 4 * WORD;
        }
        while i + WORD <= n {
            // SAFETY: 8 bytes from `i` in bounds of both, both 8-aligned.
            unsafe {
                let w = read_volatile(src.add(i).cast::<u64>());
                d.add(i).cast::<u64>().write(w);
            }
            i += WORD;
        }
    } else {
        // The destination is misaligned by `k` (1..=7) at `i`: store aligned words at
        // `j = i + (8 - k)`, each made of the input words at `j` and `j + 8` of `src`
        // … which are not aligned either. Instead read `src` aligned (it is, from `i`)
        // and assemble each aligned destination word from two source words.
        let k = (d as usize + i) % WORD;
        let lead = WORD - k;
        if i + lead + WORD <= n {
            // Bytes up to the first aligned destination word.
            let first = i + lead;
            while i < first {
                // SAFETY: `i < n`.
                unsafe { *d.add(i) = read_volatile(src.add(i)) };
                i += 1;
            }
            // Destination word at `i` (aligned) = source bytes `i..i + 8`, which
            // straddle the aligned source words at `i - lead` and `i - lead + 8`.
            let shift_lo = 8 * lead as u32;
            let shift_hi = 64 - shift_lo;
            // SAFETY: the source word at `i - lead` is in bounds (`i - lead` is the
            // aligned source position reached after the head, `< n - 8`).
            let mut lo = unsafe { read_volatile(src.add(i - lead).cast::<u64>()) };
            // Each step reads the source word at `i + k` (= `i - lead + 8`) and writes
            // the destination word at `i`; two per iteration first.
            while i + k + 2 * WORD <= n {
                // SAFETY: `i + k + 16 <= n`: the source words at `i + k` and `i + k +
                // 8` are in bounds and aligned; the destination words at `i` and `i +
                // 8` are in bounds (`i + 16 <= n`) and aligned.
                unsafe {
                    let h0 = read_volatile(src.add(i + k).cast::<u64>());
                    let h1 = read_volatile(src.add(i + k + WORD).cast::<u64>());
                    let t = d.add(i).cast::<u64>();
                    t.write((lo >> shift_lo) | (h0 << shift_hi));
                    t.add(1).write((h0 >> shift_lo) | (h1 << shift_hi));
                    lo = h1;
                }
                i += 2 * WORD;
            }
            while i + k + WORD <= n {
                // SAFETY: `i + k + 8 <= n`: the source word at `i + k` is in bounds
                // and aligned; the destination word at `i` is in bounds (`i + 8 <= i +
                // k + 8 <= n`) and aligned.
                unsafe {
                    let hi = read_volatile(src.add(i + k).cast::<u64>());
                    d.add(i)
                        .cast::<u64>()
                        .write((lo >> shift_lo) | (hi << shift_hi));
                    lo = hi;
                }
                i += WORD;
            }
        }
    }
    while i < n {
        // SAFETY: `i < n`.
        unsafe { *d.add(i) = read_volatile(src.add(i)) };
        i += 1;
    }
}

/// Copies `src` to shared memory at `dst`.
///
/// # Safety
///
/// `dst..dst + src.len()` must be valid for writes for the duration of the call. The
/// memory may be accessed concurrently by another domain, but not by this program
/// through a Rust reference, and it must not overlap `src`.
pub unsafe fn write(dst: *mut u8, src: &[u8]) {
    let n = src.len();
    let s = src.as_ptr();
    let head = head_len(dst as usize, n);
    let mut i = 0;
    while i < head {
        // SAFETY: `i < n`: in bounds of both (caller's contract for `dst`).
        unsafe { write_volatile(dst.add(i), *s.add(i)) };
        i += 1;
    }
    // `dst + i` is 8-aligned from here on (or `i == n`).
    if (s as usize + i).is_multiple_of(WORD) {
        while i + 4 * WORD <= n {
            // SAFETY: 32 bytes from `i` in bounds of both, both 8-aligned at `i`.
            unsafe {
                let f = s.add(i).cast::<u64>();
                let t = dst.add(i).cast::<u64>();
                let (a, b, c, e) = (f.read(), f.add(1).read(), f.add(2).read(), f.add(3).read());
                write_volatile(t, a);
                write_volatile(t.add(1), b);
                write_volatile(t.add(2), c);
                write_volatile(t.add(3), e);
            }
            i += 4 * WORD;
        }
        while i + WORD <= n {
            // SAFETY: 8 bytes from `i` in bounds of both, both 8-aligned.
            unsafe { write_volatile(dst.add(i).cast::<u64>(), s.add(i).cast::<u64>().read()) };
            i += WORD;
        }
    } else {
        // The source is misaligned by `k` (1..=7) at `i` while the destination is
        // aligned: each destination word at `i` is source bytes `i..i + 8`, which
        // straddle the aligned source words at `i - k` and `i - k + 8`. The first
        // of those starts before the slice, so its `8 - k` useful bytes are gathered
        // one by one; after that every source word read lies inside the slice.
        let k = (s as usize + i) % WORD;
        let lead = WORD - k;
        if i + lead + WORD <= n {
            let shift_lo = 8 * k as u32;
            let shift_hi = 64 - shift_lo;
            // The high `lead` bytes of the word at `i - k`, shifted down: source
            // bytes `i..i + lead`.
            let mut lo = 0u64;
            for b in 0..lead {
                // SAFETY: `i + b < i + lead < n`.
                lo |= u64::from(unsafe { *s.add(i + b) }) << (8 * b);
            }
            let mut lo = lo << shift_lo;
            while i + lead + 2 * WORD <= n {
                // SAFETY: the source words at `i + lead` and `i + lead + 8` are
                // aligned and in bounds (`i + lead + 16 <= n`); the destination words
                // at `i` and `i + 8` are aligned and in bounds.
                unsafe {
                    let h0 = s.add(i + lead).cast::<u64>().read();
                    let h1 = s.add(i + lead + WORD).cast::<u64>().read();
                    let t = dst.add(i).cast::<u64>();
                    write_volatile(t, (lo >> shift_lo) | (h0 << shift_hi));
                    write_volatile(t.add(1), (h0 >> shift_lo) | (h1 << shift_hi));
                    lo = h1;
                }
                i += 2 * WORD;
            }
            while i + lead + WORD <= n {
                // SAFETY: the source word at `i + lead` is aligned and in bounds
                // (`i + lead + 8 <= n`); the destination word at `i` is aligned and in
                // bounds (`i + 8 <= n`).
                unsafe {
                    let hi = s.add(i + lead).cast::<u64>().read();
                    write_volatile(
                        dst.add(i).cast::<u64>(),
                        (lo >> shift_lo) | (hi << shift_hi),
                    );
                    lo = hi;
                }
                i += WORD;
            }
        }
    }
    while i < n {
        // SAFETY: `i < n`.
        unsafe { write_volatile(dst.add(i), *s.add(i)) };
        i += 1;
    }
}

/// Copies `len` bytes from shared memory at `src` to shared memory at `dst`, word by
/// word when the two agree modulo 8 (otherwise byte by byte).
///
/// # Safety
///
/// `src..src + len` must be valid for reads and `dst..dst + len` for writes for the
/// duration of the call, and must not overlap. Other domains may access both
/// concurrently, this program only through raw pointers.
pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) {
    let mut i = 0;
    if (dst as usize)
        .wrapping_sub(src as usize)
        .is_multiple_of(WORD)
    {
        let head = head_len(src as usize, len);
        while i < head {
            // SAFETY: `i < len`, in bounds of both.
            unsafe { write_volatile(dst.add(i), read_volatile(src.add(i))) };
            i += 1;
        }
        while i + 4 * WORD <= len {
            // SAFETY: 32 bytes from `i` in bounds of both, both 8-aligned at `i`.
            unsafe {
                let f = src.add(i).cast::<u64>();
                let t = dst.add(i).cast::<u64>();
                let (a, b) = (read_volatile(f), read_volatile(f.add(1)));
                let (c, e) = (read_volatile(f.add(2)), read_volatile(f.add(3)));
                write_volatile(t, a);
                write_volatile(t.add(1), b);
                write_volatile(t.add(2), c);
                write_volatile(t.add(3), e);
            }
            i += 4 * WORD;
        }
        while i + WORD <= len {
            // SAFETY: 8 bytes from `i` in bounds of both, both 8-aligned.
            unsafe {
                write_volatile(
                    dst.add(i).cast::<u64>(),
                    read_volatile(src.add(i).cast::<u64>()),
                )
            };
            i += WORD;
        }
    }
    while i < len {
        // SAFETY: `i < len`.
        unsafe { write_volatile(dst.add(i), read_volatile(src.add(i))) };
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    }

    /// 8-aligned backing store, so offsets name alignments exactly.
    fn aligned(n: usize) -> Vec<u64> {
        vec![0u64; n.div_ceil(8) + 1]
    }

    const LENS: &[usize] = &[
        0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 39, 40, 41, 47, 63, 64, 65, 100, 255,
        1514, 4096,
    ];

    /// Every source and destination alignment, many lengths: exactly the bytes asked
    /// for are copied, nothing around them is touched.
    #[test]
    fn read_and_write_copy_exactly_at_every_alignment() {
        for &len in LENS {
            let data = pattern(len + 16, len as u8);
            for so in 0..8 {
                for doff in 0..8 {
                    // read: shared (at `so`) -> private (at `doff`).
                    let mut shared = aligned(len + 16);
                    let sb = shared.as_mut_ptr().cast::<u8>();
                    // SAFETY: `len + 16` bytes fit in the backing store.
                    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), sb, len + 16) };
                    let mut private = aligned(len + 16);
                    let pb = private.as_mut_ptr().cast::<u8>();
                    // SAFETY: in bounds of the backing store; no other reference.
                    let out = unsafe { core::slice::from_raw_parts_mut(pb.add(doff), len) };
                    // SAFETY: `sb + so .. + len` is inside `shared`.
                    unsafe { read(sb.add(so), out) };
                    let got = out.to_vec();
                    assert_eq!(
                        got,
                        data[so..so + len],
                        "read len {len} src {so} dst {doff}"
                    );
                    // SAFETY: the whole backing store, no other reference alive.
                    let all = unsafe { core::slice::from_raw_parts(pb, (len + 16) & !7) };
                    assert!(all[..doff].iter().all(|&b| b == 0), "read wrote before");
                    assert!(
                        all[doff + len..].iter().all(|&b| b == 0),
                        "read wrote after"
                    );

                    // write: private (at `so`) -> shared (at `doff`).
                    let src = &data[so..so + len];
                    let mut shared = aligned(len + 16);
                    let sb = shared.as_mut_ptr().cast::<u8>();
                    // SAFETY: `sb + doff .. + len` is inside `shared`.
                    unsafe { write(sb.add(doff), src) };
                    // SAFETY: the whole backing store.
                    let all = unsafe { core::slice::from_raw_parts(sb, (len + 16) & !7) };
                    assert_eq!(
                        &all[doff..doff + len],
                        src,
                        "write len {len} src {so} dst {doff}"
                    );
                    assert!(all[..doff].iter().all(|&b| b == 0), "write wrote before");
                    assert!(
                        all[doff + len..].iter().all(|&b| b == 0),
                        "write wrote after"
                    );
                }
            }
        }
    }

    /// The private side's alignment is what the misaligned paths depend on: try it
    /// with slices that start and end at every offset of a larger buffer, so that a
    /// word read or written past either end would show (Miri would flag the read;
    /// the zero check flags the write).
    #[test]
    fn misaligned_private_slices_stay_in_bounds() {
        let data = pattern(200, 7);
        for start in 0..16 {
            for len in 0..100 {
                let src = &data[start..start + len];
                let mut shared = aligned(128);
                let sb = shared.as_mut_ptr().cast::<u8>();
                // SAFETY: 8 + 100 <= 128 bytes.
                unsafe { write(sb.add(8), src) };
                let mut back = vec![0u8; 16 + len + 16];
                // SAFETY: as above.
                unsafe { read(sb.add(8), &mut back[start..start + len]) };
                assert_eq!(&back[start..start + len], src);
                assert!(back[..start].iter().all(|&b| b == 0));
                assert!(back[start + len..].iter().all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn copy_between_shared_regions() {
        for &len in LENS {
            let data = pattern(len + 16, 3);
            for so in 0..8 {
                for doff in [so, (so + 3) % 8] {
                    let mut a = aligned(len + 16);
                    let ab = a.as_mut_ptr().cast::<u8>();
                    // SAFETY: fits.
                    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), ab, len + 16) };
                    let mut b = aligned(len + 16);
                    let bb = b.as_mut_ptr().cast::<u8>();
                    // SAFETY: both ranges inside their backing stores, disjoint.
                    unsafe { copy(bb.add(doff), ab.add(so), len) };
                    // SAFETY: the whole backing store.
                    let all = unsafe { core::slice::from_raw_parts(bb, (len + 16) & !7) };
                    assert_eq!(
                        &all[doff..doff + len],
                        &data[so..so + len],
                        "{len} {so} {doff}"
                    );
                    assert!(all[..doff].iter().all(|&x| x == 0));
                    assert!(all[doff + len..].iter().all(|&x| x == 0));
                }
            }
        }
    }
}
