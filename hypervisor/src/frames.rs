//! The page-frame allocator for the memory the hypervisor hands to domains:
//! guest RAM and stage-2 tables, from one pool of physical frames.
//!
//! RAM is taken as contiguous, aligned runs from the bottom of the pool and
//! tables as single frames from the top, so that tables added and removed by
//! grant mappings do not fragment the space later domains need for RAM.
//!
//! Frames can be *reserved*: a domain reserves its whole stage-2 table quota
//! when it is created, so whatever other domains do, its own table
//! allocations cannot fail for lack of frames (only for exceeding its quota).
//! Every free is checked: giving back a frame that is not in use, or one
//! outside the pool, is refused and changes nothing.
//!
//! Portable and tested on the host; the hypervisor zeroes frames itself.
#![deny(unsafe_code)]

use parapet_abi::layout::PAGE_SIZE;

/// Why a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The address is not page-aligned or not inside the pool.
    OutOfPool,
    /// A frame of the range is not in use: a double free.
    NotInUse,
    /// More frames unreserved than were reserved.
    NotReserved,
}

/// A pool of up to `64 * WORDS` frames of 4 KiB starting at a physical base.
pub struct FrameAllocator<const WORDS: usize> {
    base: u64,
    frames: usize,
    used: [u64; WORDS],
    free: usize,
    reserved: usize,
}

impl<const WORDS: usize> Default for FrameAllocator<WORDS> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<const WORDS: usize> FrameAllocator<WORDS> {
    /// Most frames a pool can hold.
    pub const CAPACITY: usize = WORDS * 64;

    /// A pool with no frames (for statics; see [`FrameAllocator::init`]).
    pub const fn empty() -> Self {
        Self {
            base: 0,
            frames: 0,
            used: [0; WORDS],
            free: 0,
            reserved: 0,
        }
    }

    /// Makes the pool the `frames` frames from `base` (page-aligned), all
    /// free; frames beyond [`Self::CAPACITY`] are left out. Returns how many
    /// frames the pool holds.
    pub fn init(&mut self, base: u64, frames: usize) -> usize {
        let frames = frames.min(Self::CAPACITY);
        *self = Self::empty();
        self.base = base;
        self.frames = frames;
        self.free = frames;
        // Frames past the end of the pool count as used, so no search finds them.
        for i in frames..Self::CAPACITY {
            self.used[i / 64] |= 1 << (i % 64);
        }
        frames
    }

    /// Frames in the pool.
    pub fn total(&self) -> usize {
        self.frames
    }

    /// Frames not in use (reserved ones included).
    pub fn free(&self) -> usize {
        self.free
    }

    /// Frames reserved and not yet allocated.
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Frames that neither are in use nor reserved.
    pub fn available(&self) -> usize {
        self.free - self.reserved
    }

    fn is_used(&self, i: usize) -> bool {
        self.used[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize, used: bool) {
        if used {
            self.used[i / 64] |= 1 << (i % 64);
        } else {
            self.used[i / 64] &= !(1 << (i % 64));
        }
    }

    fn index(&self, pa: u64) -> Result<usize, FrameError> {
        let off = pa.checked_sub(self.base).ok_or(FrameError::OutOfPool)?;
        if !off.is_multiple_of(PAGE_SIZE) || off / PAGE_SIZE >= self.frames as u64 {
            return Err(FrameError::OutOfPool);
        }
        Ok((off / PAGE_SIZE) as usize)
    }

    fn address(&self, i: usize) -> u64 {
        self.base + i as u64 * PAGE_SIZE
    }

    /// Takes `count` contiguous frames whose first one is aligned to `align`
    /// frames (a power of two), the lowest such run; `None` if no run is free
    /// or if it would eat into reserved frames. Returns its physical address.
    pub fn alloc_run(&mut self, count: usize, align: usize) -> Option<u64> {
        if count == 0 || !align.is_power_of_two() || count > self.available() {
            return None;
        }
        // Align in physical terms, so a 2 MiB run is 2 MiB-aligned in memory.
        let align_bytes = align as u64 * PAGE_SIZE;
        let first = (self.base.next_multiple_of(align_bytes) - self.base) / PAGE_SIZE;
        let mut start = first as usize;
        while start + count <= self.frames {
            match (start..start + count).rev().find(|&i| self.is_used(i)) {
                None => {
                    for i in start..start + count {
                        self.set(i, true);
                    }
                    self.free -= count;
                    return Some(self.address(start));
                }
                // Skip past the used frame, to the next aligned start.
                Some(used) => start = (used + 1).next_multiple_of(align),
            }
        }
        None
    }

    /// Gives back a run from [`Self::alloc_run`]; refused (and nothing
    /// changes) unless every frame of it is in use.
    pub fn free_run(&mut self, pa: u64, count: usize) -> Result<(), FrameError> {
        let start = self.index(pa)?;
        if count == 0 || start + count > self.frames {
            return Err(FrameError::OutOfPool);
        }
        if (start..start + count).any(|i| !self.is_used(i)) {
            return Err(FrameError::NotInUse);
        }
        for i in start..start + count {
            self.set(i, false);
        }
        self.free += count;
        Ok(())
    }

    /// Sets `count` free frames aside for later [`Self::alloc_reserved`];
    /// false (nothing reserved) if fewer are available.
    pub fn reserve(&mut self, count: usize) -> bool {
        if count > self.available() {
            return false;
        }
        self.reserved += count;
        true
    }

    /// Returns `count` reserved frames to the available ones.
    pub fn unreserve(&mut self, count: usize) -> Result<(), FrameError> {
        if count > self.reserved {
            return Err(FrameError::NotReserved);
        }
        self.reserved -= count;
        Ok(())
    }

    /// Takes one reserved frame, the highest free one; `None` if nothing is
    /// reserved.
    pub fn alloc_reserved(&mut self) -> Option<u64> {
        if self.reserved == 0 {
            return None;
        }
        let i = self.highest_free()?;
        self.set(i, true);
        self.free -= 1;
        self.reserved -= 1;
        Some(self.address(i))
    }

    /// Gives back a frame from [`Self::alloc_reserved`] to the reservation it
    /// came from.
    pub fn free_reserved(&mut self, pa: u64) -> Result<(), FrameError> {
        self.free_run(pa, 1)?;
        self.reserved += 1;
        Ok(())
    }

    fn highest_free(&self) -> Option<usize> {
        let (w, word) = self
            .used
            .iter()
            .enumerate()
            .rev()
            .find(|(_, word)| **word != u64::MAX)?;
        let bit = 63 - (!*word).leading_zeros() as usize;
        Some(w * 64 + bit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x5000_0000;
    const RUN_2M: usize = 512;

    fn pool(frames: usize) -> FrameAllocator<64> {
        let mut a = FrameAllocator::<64>::empty();
        assert_eq!(a.init(BASE, frames), frames);
        a
    }

    #[test]
    fn runs_come_from_the_bottom_aligned_and_tables_from_the_top() {
        let mut a = pool(4096); // 16 MiB
        let t = a.reserve(2).then(|| a.alloc_reserved()).flatten().unwrap();
        assert_eq!(t, BASE + 4095 * PAGE_SIZE);
        let r1 = a.alloc_run(RUN_2M + 1, RUN_2M).unwrap();
        assert_eq!(r1, BASE);
        let r2 = a.alloc_run(RUN_2M, RUN_2M).unwrap();
        assert_eq!(
            r2,
            BASE + 2 * RUN_2M as u64 * PAGE_SIZE,
            "next aligned start"
        );
        assert_eq!(a.free(), 4096 - 1 - (2 * RUN_2M + 1));
        assert_eq!(a.reserved(), 1);
    }

    #[test]
    fn alignment_is_physical() {
        let mut a = FrameAllocator::<64>::empty();
        a.init(BASE + 3 * PAGE_SIZE, 2048);
        let r = a.alloc_run(RUN_2M, RUN_2M).unwrap();
        assert!(r.is_multiple_of(2 << 20));
        assert_eq!(r, BASE + (2 << 20));
    }

    #[test]
    fn everything_comes_back() {
        let mut a = pool(4096);
        let start = a.free();
        let runs: Vec<_> = (0..3)
            .map(|_| a.alloc_run(RUN_2M, RUN_2M).unwrap())
            .collect();
        assert!(a.reserve(10));
        let tables: Vec<_> = (0..10).map(|_| a.alloc_reserved().unwrap()).collect();
        assert_eq!(a.alloc_reserved(), None, "the reservation is used up");
        for t in tables {
            a.free_reserved(t).unwrap();
        }
        a.unreserve(10).unwrap();
        for r in runs {
            a.free_run(r, RUN_2M).unwrap();
        }
        assert_eq!(a.free(), start);
        assert_eq!(a.reserved(), 0);
    }

    #[test]
    fn exhaustion_is_none_and_reservations_are_respected() {
        let mut a = pool(2048); // 8 MiB: four 2 MiB runs
        assert!(a.reserve(1));
        for _ in 0..3 {
            assert!(a.alloc_run(RUN_2M, RUN_2M).is_some());
        }
        // 511 frames are available beyond the reserved one: not a 2 MiB run.
        assert_eq!(a.alloc_run(RUN_2M, RUN_2M), None);
        assert_eq!(a.available(), RUN_2M - 1);
        assert!(!a.reserve(RUN_2M), "more than is available");
        assert!(a.alloc_reserved().is_some());
        assert_eq!(a.alloc_reserved(), None);
        assert_eq!(a.alloc_run(0, 1), None);
        assert_eq!(a.alloc_run(1, 3), None, "alignment must be a power of two");
    }

    #[test]
    fn double_and_foreign_frees_are_refused_and_change_nothing() {
        let mut a = pool(1024);
        let r = a.alloc_run(4, 1).unwrap();
        assert_eq!(a.free_run(r, 5), Err(FrameError::NotInUse));
        assert_eq!(a.free(), 1020, "a refused free changes nothing");
        a.free_run(r, 4).unwrap();
        assert_eq!(a.free_run(r, 4), Err(FrameError::NotInUse));
        assert_eq!(a.free_run(BASE - PAGE_SIZE, 1), Err(FrameError::OutOfPool));
        assert_eq!(a.free_run(BASE + 1, 1), Err(FrameError::OutOfPool));
        assert_eq!(
            a.free_run(BASE + 1024 * PAGE_SIZE, 1),
            Err(FrameError::OutOfPool)
        );
        assert_eq!(a.free_reserved(BASE), Err(FrameError::NotInUse));
        assert_eq!(a.unreserve(1), Err(FrameError::NotReserved));
        assert_eq!(a.free(), 1024);
    }

    #[test]
    fn fragmentation_by_tables_does_not_block_runs() {
        let mut a = pool(4096);
        assert!(a.reserve(100));
        let tables: Vec<_> = (0..100).map(|_| a.alloc_reserved().unwrap()).collect();
        // Tables sit in the top 2 MiB; the three runs below are intact.
        for _ in 0..7 {
            assert!(a.alloc_run(RUN_2M, RUN_2M).is_some());
        }
        assert!(tables
            .iter()
            .all(|&t| t >= BASE + 7 * RUN_2M as u64 * PAGE_SIZE));
    }

    #[test]
    fn capacity_bounds_the_pool() {
        let mut a = FrameAllocator::<2>::empty();
        assert_eq!(a.init(BASE, 1000), 128);
        assert_eq!(a.alloc_run(129, 1), None);
        assert!(a.alloc_run(128, 1).is_some());
        assert_eq!(a.free(), 0);
    }
}
