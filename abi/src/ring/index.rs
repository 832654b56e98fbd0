//! Index arithmetic shared by both ring kinds, as small pure functions.
//!
//! Every index is a free-running `u32` that wraps at 2^32; a ring of `size` entries
//! (a power of two, at most 2^31) uses `index & (size - 1)` as the slot. Distances are
//! `wrapping_sub`s, so everything here is correct across the wrap.

use super::RingError;

/// The largest ring (entries or bytes) the `u32` index arithmetic supports.
pub const MAX_RING_SIZE: u32 = 1 << 31;

/// How many entries lie between `cons` and `prod`: `prod - cons`, wrapping.
#[inline]
pub const fn used(prod: u32, cons: u32) -> u32 {
    prod.wrapping_sub(cons)
}

/// Free space of a ring of `size` entries holding `prod - cons` of them.
///
/// The caller guarantees `used(prod, cons) <= size` (the peer's index was checked with
/// [`check_peer_index`]); the result saturates at 0 otherwise.
#[inline]
pub const fn free(prod: u32, cons: u32, size: u32) -> u32 {
    size.saturating_sub(used(prod, cons))
}

/// Xen's notification rule: after moving our producer (or consumer) index from `old`
/// to `new`, notify the peer iff its event index `event` lies in `(old, new]`.
///
/// `new == old` (nothing published) never notifies.
#[inline]
pub const fn needs_notify(old: u32, new: u32, event: u32) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// Checks an index read from the peer: it must lie in `[lo, lo + limit]` (wrapping).
///
/// `lo` is the lowest value the peer may legitimately show (the value we last accepted,
/// so an index can never move back), `limit` how far ahead of `lo` it may be. Returns
/// `index - lo`, the number of new entries. An index outside the window is
/// [`RingError::PeerIndexBehind`] if it is up to 2^31 behind `lo`, else
/// [`RingError::PeerIndexOutOfRange`].
#[inline]
pub const fn check_peer_index(index: u32, lo: u32, limit: u32) -> Result<u32, RingError> {
    let ahead = index.wrapping_sub(lo);
    if ahead <= limit {
        Ok(ahead)
    } else if (ahead as i32) < 0 {
        Err(RingError::PeerIndexBehind { index, private: lo })
    } else {
        Err(RingError::PeerIndexOutOfRange {
            index,
            private: lo,
            limit,
        })
    }
}

/// The largest power of two `<= n`, capped at [`MAX_RING_SIZE`]; 0 for `n == 0`.
#[inline]
pub const fn pow2_floor(n: usize) -> u32 {
    if n == 0 {
        0
    } else {
        let p = 1usize << (usize::BITS - 1 - n.leading_zeros());
        if p > MAX_RING_SIZE as usize {
            MAX_RING_SIZE
        } else {
            p as u32
        }
    }
}

/// Splits a copy of `len` bytes starting at ring offset `off` (`< size`) into the part
/// up to the end of the data area and the part that wraps to its start.
#[inline]
pub const fn wrap_split(off: u32, len: u32, size: u32) -> (u32, u32) {
    let to_end = size - off;
    if len <= to_end {
        (len, 0)
    } else {
        (to_end, len - to_end)
    }
}

/// Clamps a notification threshold to `1..=size/2` (at least 1).
#[inline]
pub const fn clamp_want(want: u32, size: u32) -> u32 {
    let half = if size / 2 == 0 { 1 } else { size / 2 };
    if want == 0 {
        1
    } else if want > half {
        half
    } else {
        want
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_rule_matches_xen() {
        // Event just past the old index: notify.
        assert!(needs_notify(10, 12, 11));
        assert!(needs_notify(10, 12, 12));
        // Event already passed or not yet reached: no notification.
        assert!(!needs_notify(10, 12, 10));
        assert!(!needs_notify(10, 12, 13));
        assert!(!needs_notify(10, 10, 10));
        assert!(!needs_notify(10, 10, 11));
        // Across the wrap.
        assert!(needs_notify(u32::MAX - 1, 2, u32::MAX));
        assert!(needs_notify(u32::MAX - 1, 2, 0));
        assert!(needs_notify(u32::MAX - 1, 2, 2));
        assert!(!needs_notify(u32::MAX - 1, 2, 3));
        assert!(!needs_notify(u32::MAX - 1, 2, u32::MAX - 1));
    }

    #[test]
    fn peer_index_window() {
        assert_eq!(check_peer_index(5, 5, 0), Ok(0));
        assert_eq!(check_peer_index(9, 5, 4), Ok(4));
        assert_eq!(
            check_peer_index(10, 5, 4),
            Err(RingError::PeerIndexOutOfRange {
                index: 10,
                private: 5,
                limit: 4
            })
        );
        assert_eq!(
            check_peer_index(4, 5, 4),
            Err(RingError::PeerIndexBehind {
                index: 4,
                private: 5
            })
        );
        // Across the wrap.
        assert_eq!(check_peer_index(1, u32::MAX - 1, 8), Ok(3));
        assert_eq!(
            check_peer_index(u32::MAX, 1, 8),
            Err(RingError::PeerIndexBehind {
                index: u32::MAX,
                private: 1
            })
        );
    }

    #[test]
    fn pow2_and_split() {
        assert_eq!(pow2_floor(0), 0);
        assert_eq!(pow2_floor(1), 1);
        assert_eq!(pow2_floor(62), 32);
        assert_eq!(pow2_floor(64), 64);
        assert_eq!(pow2_floor(usize::MAX), MAX_RING_SIZE);
        assert_eq!(wrap_split(0, 10, 16), (10, 0));
        assert_eq!(wrap_split(10, 6, 16), (6, 0));
        assert_eq!(wrap_split(10, 7, 16), (6, 1));
        assert_eq!(free(u32::MAX, u32::MAX - 3, 8), 5);
        assert_eq!(clamp_want(0, 64), 1);
        assert_eq!(clamp_want(100, 64), 32);
        assert_eq!(clamp_want(5, 1), 1);
    }
}
