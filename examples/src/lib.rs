//! Example Parapet guests (the binaries in `src/bin/`) and the small portable
//! helpers they share, tested on the host.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

/// f64 work with a known answer, used to check that FP/SIMD state survives traps,
/// upcalls and world switches.
pub mod fpwork {
    /// Partial sum of the Basel series, `sum 1/k^2` for `k` in `1..=n`, computed in
    /// four interleaved lanes (so that several FP registers are live at once).
    pub fn basel(n: u64) -> f64 {
        // Four accumulators over consecutive terms. (A version indexing
        // `lanes[k % 4]` was vectorised wrongly for aarch64 by rustc 1.95: the
        // fourth lane's sum was stored one slot past the array.)
        let (mut a, mut b, mut c, mut d) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let term = |k: u64| {
            let x = k as f64;
            1.0 / (x * x)
        };
        let mut k = 1;
        while k + 3 <= n {
            a += term(k);
            b += term(k + 1);
            c += term(k + 2);
            d += term(k + 3);
            k += 4;
        }
        while k <= n {
            a += term(k);
            k += 1;
        }
        (a + b) + (c + d)
    }

    /// `pi^2 / 6`, the limit of [`basel`].
    pub const BASEL_LIMIT: f64 = core::f64::consts::PI * core::f64::consts::PI / 6.0;

    /// Whether `basel(n)` is within the bound of its tail (`1/n`) of the limit.
    pub fn basel_ok(n: u64, value: f64) -> bool {
        let err = BASEL_LIMIT - value;
        err > 0.0 && err < 1.0 / n as f64
    }
}

/// Statistics over instruction-count samples.
pub mod stats {
    /// Minimum and median (lower median) of `samples`, which is sorted in place;
    /// `None` if empty.
    pub fn min_median(samples: &mut [u64]) -> Option<(u64, u64)> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        Some((samples[0], samples[(samples.len() - 1) / 2]))
    }

    /// Instructions from reading `start` to reading `end` of a 32-bit PMU
    /// event counter (on the same CPU, possibly in different domains), minus
    /// `calibration`, the cost of a counter read itself. `None` if `end` comes
    /// before `start` (half the counter's range or more "later"): the two
    /// readings do not belong together.
    pub fn counter_delta(start: u64, end: u64, calibration: u64) -> Option<u64> {
        let d = (end as u32).wrapping_sub(start as u32);
        (d < 1 << 31).then(|| u64::from(d).saturating_sub(calibration))
    }
}

/// End-to-end checksums of the byte-channel benchmark.
pub mod digest {
    /// Fletcher-style digest of one message, over 8-byte little-endian words
    /// (a tail shorter than 8 bytes is zero-padded): sensitive to every byte
    /// and to the order of words.
    pub fn message(data: &[u8]) -> u64 {
        let (mut a, mut b) = (0u64, 0u64);
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            a = a.wrapping_add(w);
            b = b.wrapping_add(a);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            a = a.wrapping_add(u64::from_le_bytes(w));
            b = b.wrapping_add(a);
        }
        a ^ b.rotate_left(32) ^ data.len() as u64
    }

    /// Folds one message digest into a stream digest (order-sensitive).
    pub fn fold(stream: u64, message: u64) -> u64 {
        stream.rotate_left(7) ^ message.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// Deterministic pseudo-random bytes (xorshift), the benchmark's payload.
    pub fn fill(buf: &mut [u8], seed: u64) {
        let mut x = seed | 1;
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// The test stream of `bench net` (net-guest's TCP transfers, and the raw
/// ring's baseline in ring-bench's `work=net` mode): its bytes and checksum.
/// The host's copy is `parapet_tools::bench::{net_pattern, fnv1a64}`.
pub mod stream {
    /// FNV-1a 64 offset basis.
    pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

    /// Byte `i` of the stream.
    pub fn pattern(i: u64) -> u8 {
        (i.wrapping_mul(7) ^ (i >> 11)) as u8
    }

    /// Fills `buf` with the stream's bytes from offset `start` on.
    pub fn fill(start: u64, buf: &mut [u8]) {
        for (k, b) in buf.iter_mut().enumerate() {
            *b = pattern(start + k as u64);
        }
    }

    /// FNV-1a 64 continued from `h` over `data`.
    pub fn fnv(mut h: u64, data: &[u8]) -> u64 {
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basel_converges() {
        for n in [10, 1000, 10_000] {
            let v = fpwork::basel(n);
            assert!(fpwork::basel_ok(n, v), "{n}: {v}");
        }
        assert!(!fpwork::basel_ok(1000, 1.0));
    }

    #[test]
    fn digests_see_every_byte_and_the_order() {
        let mut buf = [0u8; 200];
        digest::fill(&mut buf, 42);
        let d = digest::message(&buf);
        for i in [0, 7, 8, 100, 195, 199] {
            let mut b = buf;
            b[i] ^= 1;
            assert_ne!(digest::message(&b), d, "byte {i}");
        }
        let mut swapped = buf;
        swapped[..8].copy_from_slice(&buf[8..16]);
        swapped[8..16].copy_from_slice(&buf[..8]);
        assert_ne!(digest::message(&swapped), d);
        assert_ne!(digest::message(&buf[..199]), d);
        let (x, y) = (digest::message(&buf[..64]), digest::message(&buf[64..128]));
        assert_ne!(
            digest::fold(digest::fold(0, x), y),
            digest::fold(digest::fold(0, y), x)
        );
    }

    #[test]
    fn the_stream_is_net_guests() {
        // 4 MiB of the stream, as net-guest and the host tool checksum it.
        let mut buf = vec![0u8; 4 << 20];
        stream::fill(0, &mut buf);
        assert_eq!(stream::fnv(stream::FNV_START, &buf), 0x50b5_59db_c8e4_2325);
        let (a, b) = buf.split_at(1000);
        let mut part = [0u8; 1000];
        stream::fill(1000, &mut part);
        assert_eq!(&part[..], &b[..1000]);
        assert_eq!(
            stream::fnv(stream::fnv(stream::FNV_START, a), b),
            stream::fnv(stream::FNV_START, &buf)
        );
    }

    #[test]
    fn min_median() {
        assert_eq!(stats::min_median(&mut []), None);
        assert_eq!(stats::min_median(&mut [5]), Some((5, 5)));
        assert_eq!(stats::min_median(&mut [9, 1, 5, 7]), Some((1, 5)));
        assert_eq!(stats::min_median(&mut [3, 2, 1]), Some((1, 2)));
    }

    #[test]
    fn counter_deltas_wrap_and_reject_reversed_pairs() {
        assert_eq!(stats::counter_delta(100, 350, 2), Some(248));
        assert_eq!(stats::counter_delta(100, 101, 2), Some(0));
        // The counter is 32 bits: it wraps, and the upper half of the u64 is ignored.
        assert_eq!(stats::counter_delta(0xffff_fff0, 0x10, 0), Some(0x20));
        assert_eq!(stats::counter_delta(0x1_0000_0005, 0x9, 0), Some(4));
        // `end` before `start`: not a pair.
        assert_eq!(stats::counter_delta(350, 100, 0), None);
        assert_eq!(stats::counter_delta(0, 1 << 31, 0), None);
        assert_eq!(
            stats::counter_delta(0, (1 << 31) - 1, 0),
            Some((1 << 31) - 1)
        );
    }
}
