//! The heap allocator: `talc` behind a spin lock, taken with virtual interrupts
//! masked (so that a handler that allocates cannot deadlock on its own vCPU).
//!
//! The runtime registers one [`Heap`] as the `#[global_allocator]` and gives it the
//! RAM from the end of the image (or BSS) up to the reserved pages at the top.

use core::alloc::{GlobalAlloc, Layout};
use core::ops::Range;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};

use talc_stable::{ErrOnOom, Span, Talc};

/// The heap's region and use, for [`stats`] (one heap per domain: the
/// runtime's global allocator).
static START: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);
static USED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// How the heap is used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes the heap manages.
    pub size: usize,
    /// Bytes allocated now (as requested; the allocator's overhead aside).
    pub used: usize,
    /// The most bytes allocated at once so far.
    pub peak: usize,
    /// Blocks allocated now.
    pub allocations: usize,
}

/// The global heap's statistics.
pub fn stats() -> HeapStats {
    HeapStats {
        size: END
            .load(Ordering::Relaxed)
            .saturating_sub(START.load(Ordering::Relaxed)),
        used: USED.load(Ordering::Relaxed),
        peak: PEAK.load(Ordering::Relaxed),
        allocations: ALLOCATIONS.load(Ordering::Relaxed),
    }
}

/// The global heap's region (empty before the runtime set it up).
pub fn region() -> Range<usize> {
    START.load(Ordering::Relaxed)..END.load(Ordering::Relaxed)
}

/// A heap over one region of memory.
pub struct Heap {
    talc: spin::Mutex<Talc<ErrOnOom>>,
}

impl Heap {
    /// A heap with no memory yet.
    pub const fn new() -> Self {
        Self {
            talc: spin::Mutex::new(Talc::new(ErrOnOom)),
        }
    }

    /// Gives the heap the memory `[start, end)`; returns the usable size.
    ///
    /// # Safety
    /// The region must be valid, writable memory used by nothing else for the rest
    /// of the program.
    pub unsafe fn init(&self, start: usize, end: usize) -> usize {
        if end <= start {
            return 0;
        }
        let span = Span::new(start as *mut u8, end as *mut u8);
        START.store(start, Ordering::Relaxed);
        END.store(end, Ordering::Relaxed);
        crate::irq::without_interrupts(|| {
            // SAFETY: the caller hands over the region.
            match unsafe { self.talc.lock().claim(span) } {
                Ok(claimed) => claimed.size(),
                Err(()) => 0,
            }
        })
    }
}

impl Default for Heap {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: talc upholds the allocator contract; the lock serialises vCPUs and the
// soft mask keeps this vCPU's handlers out while it is held.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = crate::irq::without_interrupts(|| {
            // SAFETY: GlobalAlloc callers pass a non-zero size.
            unsafe { self.talc.lock().malloc(layout) }.map_or(ptr::null_mut(), NonNull::as_ptr)
        });
        if !p.is_null() {
            let used = USED.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(used, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            USED.fetch_sub(layout.size(), Ordering::Relaxed);
            ALLOCATIONS.fetch_sub(1, Ordering::Relaxed);
            crate::irq::without_interrupts(|| {
                // SAFETY: the caller returns a block this allocator gave out with
                // this layout.
                unsafe { self.talc.lock().free(ptr, layout) }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_from_its_region_and_reuses_it() {
        let mut region = vec![0u64; 8192];
        let range = region.as_mut_ptr_range();
        let (start, end) = (range.start as usize, range.end as usize);
        let heap = Heap::new();
        // SAFETY: `region` outlives `heap`'s use and nothing else touches it.
        let size = unsafe { heap.init(start, end) };
        assert!(size > 60_000);
        let layout = Layout::from_size_align(1000, 64).unwrap();
        // SAFETY: non-zero size.
        let a = unsafe { heap.alloc(layout) };
        assert!(!a.is_null() && (a as usize).is_multiple_of(64));
        assert!((start..end).contains(&(a as usize)));
        // SAFETY: `a` is 1000 writable bytes.
        unsafe { ptr::write_bytes(a, 0xab, 1000) };
        // SAFETY: `a` came from `heap` with `layout`.
        unsafe { heap.dealloc(a, layout) };
        let big = Layout::from_size_align(1 << 20, 8).unwrap();
        // SAFETY: non-zero size.
        assert!(unsafe { heap.alloc(big) }.is_null());
        // SAFETY: non-zero size.
        let b = unsafe { heap.alloc(layout) };
        assert!(!b.is_null());
        // SAFETY: `b` came from `heap` with `layout`.
        unsafe { heap.dealloc(b, layout) };
        drop(region);
    }

    #[test]
    fn empty_region_gives_nothing() {
        let heap = Heap::new();
        // SAFETY: an empty region is not touched.
        assert_eq!(unsafe { heap.init(100, 100) }, 0);
    }
}
