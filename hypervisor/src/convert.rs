//! Lossless integer conversions the standard library does not offer.
//!
//! The hypervisor only runs on 64-bit AArch64 (and its portable modules are
//! tested on 64-bit hosts), so every `u64` fits in a `usize`: [`usize_from`]
//! says so once, instead of an `as` cast at each address, length and index.
#![deny(unsafe_code)]

const _: () = assert!(usize::BITS == 64, "the hypervisor assumes 64-bit pointers");

/// `x` as a `usize`, losslessly: `usize` is 64 bits wide (asserted above).
#[inline(always)]
#[allow(clippy::cast_possible_truncation)] // usize is 64 bits wide: no bit is dropped
pub const fn usize_from(x: u64) -> usize {
    x as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_bit() {
        for x in [0, 1, u64::from(u32::MAX) + 1, u64::MAX] {
            assert_eq!(usize_from(x) as u64, x);
        }
    }
}
