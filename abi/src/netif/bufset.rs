//! A set of buffer ids, one bit each.

use super::NET_BUFS;

/// A set of buffer ids (`0..NET_BUFS`): which buffers are free, in flight or posted.
/// Out-of-range ids are never members, so a peer's id can be tested directly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufSet(u64);

impl BufSet {
    /// No buffer.
    pub const EMPTY: BufSet = BufSet(0);
    /// Every buffer `0..NET_BUFS`.
    pub const ALL: BufSet = BufSet(if NET_BUFS == 64 {
        u64::MAX
    } else {
        (1u64 << NET_BUFS) - 1
    });

    /// Whether `id` is in the set (false for any `id >= NET_BUFS`).
    #[inline]
    pub const fn contains(self, id: usize) -> bool {
        id < NET_BUFS && (self.0 >> id) & 1 == 1
    }

    /// Adds `id`; false (and no change) if it is out of range or already present.
    #[inline]
    pub fn insert(&mut self, id: usize) -> bool {
        if id >= NET_BUFS || self.contains(id) {
            return false;
        }
        self.0 |= 1 << id;
        true
    }

    /// Removes `id`; false if it was not present.
    #[inline]
    pub fn remove(&mut self, id: usize) -> bool {
        if !self.contains(id) {
            return false;
        }
        self.0 &= !(1 << id);
        true
    }

    /// Removes and returns the lowest id.
    #[inline]
    pub fn pop_first(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let id = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(id)
    }

    /// Number of ids in the set.
    #[inline]
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether `self` and `other` have no id in common.
    #[inline]
    pub const fn is_disjoint(self, other: BufSet) -> bool {
        self.0 & other.0 == 0
    }
}
