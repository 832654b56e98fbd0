//! The only `unsafe` code of the ring protocol: raw access to the shared region.
//!
//! A [`Region`] is a page-aligned range of memory shared with one peer. The rest of the
//! ring code is safe and reaches the memory only through this API:
//!
//! * [`Region::atomic`]: a `&AtomicU32` at a 4-aligned, in-bounds offset (the header's
//!   index fields);
//! * [`Region::write_bytes`], [`Region::write_obj`], [`Region::read_obj`]: `memcpy`
//!   (`copy_nonoverlapping`) to or from the region (the request rings' slots), every
//!   one bounds-checked against the region length, so no index a peer can make us
//!   compute reaches outside it (an out-of-bounds offset panics, it is never UB);
//! * [`DataArea`]: a byte ring's data area, the largest power of two after the header,
//!   computed here from the region's length; its copies ([`crate::shmem`]'s word
//!   copies) take a free-running stream position, mask it into the area and split at
//!   the end, so they stay inside by construction (a copy longer than the area
//!   panics).
//!
//! Soundness rests on three facts. (1) Whoever creates a `Region` promises that the
//! memory stays valid for as long as the region is used and that, in this address space,
//! only the ring endpoints touch it (the `unsafe` constructors state it). (2) The ring
//! protocol hands each data byte or slot to one side at a time (producer until it
//! publishes, consumer until it publishes its consumer index), so two honest endpoints
//! never copy to and from the same bytes at once. (3) Everything read from the peer is
//! copied into private memory first and is valid for any bit pattern (`FromBytes`), so a
//! hostile peer (in another VM, outside this program) can make us compute garbage, never
//! read or write outside the region.
//!
//! Under `cfg(loom)` the header's atomics are loom objects: they are created with
//! [`Region::init_header`] before any endpoint reads them.
#![allow(unsafe_code)]

use core::mem::{align_of, size_of, MaybeUninit};
use core::ptr::NonNull;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::sync::AtomicU32;
#[cfg(not(loom))]
use super::sync::Ordering;
use super::{
    BackRing, ByteReader, ByteWriter, FrontRing, RingEntry, RingError, HEADER_SIZE, PAGE_SIZE,
};

/// A byte ring's data area: `mask + 1` bytes (a power of two) from `base`, which is
/// `HEADER_SIZE` bytes into a [`Region`] whose length is at least `HEADER_SIZE + mask +
/// 1` (established by [`Region::data_area`], the only constructor).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DataArea {
    base: NonNull<u8>,
    mask: u32,
}

// SAFETY: as for `Region`: a handle to shared memory accessed only through the copies
// below, whose exclusivity the ring protocol guarantees.
unsafe impl Send for DataArea {}

impl DataArea {
    /// Copies `src` to the stream position `pos` (masked into the area), wrapping
    /// around its end. Panics if `src` is longer than the area.
    #[inline(always)]
    pub(crate) fn write(&self, pos: u32, src: &[u8]) {
        let size = self.mask as usize + 1;
        if src.len() > size {
            longer_than_area(src.len(), size);
        }
        let off = (pos & self.mask) as usize;
        let (first, second) = src.split_at(src.len().min(size - off));
        // SAFETY: `off < size` and `first.len() <= size - off`: the bytes are inside
        // the area, which is inside the region (`data_area`), valid for writes (the
        // `Region::new` contract); `src` is a Rust slice, which cannot point into the
        // region; the peer may read the bytes concurrently, which `shmem::write`
        // allows (volatile).
        unsafe { crate::shmem::write(self.base.as_ptr().add(off), first) };
        if !second.is_empty() {
            // SAFETY: `second.len() <= size - first.len() <= size`: from the start of
            // the area, inside it; as above otherwise.
            unsafe { crate::shmem::write(self.base.as_ptr(), second) };
        }
    }

    /// Copies the bytes at stream position `pos` (masked into the area), wrapping
    /// around its end, into `dst`. Panics if `dst` is longer than the area.
    #[inline(always)]
    pub(crate) fn read(&self, pos: u32, dst: &mut [u8]) {
        let size = self.mask as usize + 1;
        if dst.len() > size {
            longer_than_area(dst.len(), size);
        }
        let off = (pos & self.mask) as usize;
        let n = dst.len().min(size - off);
        let (first, second) = dst.split_at_mut(n);
        // SAFETY: `off < size` and `first.len() <= size - off`: inside the area, so
        // inside the region (`data_area`), valid for reads (the `Region::new`
        // contract); `dst` is private memory (a `&mut` cannot alias the region); a
        // concurrent writer is allowed by `shmem::read` (volatile).
        unsafe { crate::shmem::read(self.base.as_ptr().add(off), first) };
        if !second.is_empty() {
            // SAFETY: `second.len() <= size`, from the start of the area; as above.
            unsafe { crate::shmem::read(self.base.as_ptr(), second) };
        }
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn longer_than_area(n: usize, size: usize) -> ! {
    panic!("ring copy of {n} bytes is longer than the {size}-byte data area")
}

/// The failure of [`Region::check`], out of line so that the copies' fast path
/// keeps no panic arguments around.
#[cold]
#[inline(never)]
#[track_caller]
fn out_of_bounds(off: usize, n: usize, len: usize) -> ! {
    panic!("ring access out of bounds: {off}+{n} > {len}")
}

/// A shared header made only of `AtomicU32`s and padding (a multiple of 4 bytes).
pub(crate) trait SharedHeader: Sized {
    /// A fresh header, all fields zero (loom objects must be constructed).
    #[cfg(loom)]
    fn fresh() -> Self;
}

/// A page-aligned shared-memory region of whole pages, shared with one peer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Region {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a `Region` is a handle to shared memory that is only accessed through atomics
// and bounds-checked copies whose exclusivity the ring protocol guarantees (module
// docs); the memory is not tied to the creating thread.
unsafe impl Send for Region {}

impl Region {
    /// Wraps `len` bytes at `ptr`, checking that `ptr` is page-aligned and `len` a
    /// non-zero multiple of the page size.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes for as long as this value
    /// (or any copy) is used. In this address space nothing but ring endpoints built on
    /// this module may access the memory meanwhile, except atomic accesses to 4-aligned
    /// words; the peer may be another program that writes anything at any time. Under
    /// `cfg(loom)` the header must be initialised with [`Region::init_header`] before
    /// [`Region::atomic`] is used.
    pub(crate) unsafe fn new(ptr: *mut u8, len: usize) -> Result<Self, RingError> {
        let addr = ptr as usize;
        if addr == 0 || !addr.is_multiple_of(PAGE_SIZE) {
            return Err(RingError::Misaligned {
                addr,
                align: PAGE_SIZE,
            });
        }
        let fits = addr
            .checked_add(len)
            .is_some_and(|end| end <= isize::MAX as usize);
        if len == 0 || !len.is_multiple_of(PAGE_SIZE) || !fits {
            return Err(RingError::BadLength { len });
        }
        let base = NonNull::new(ptr).ok_or(RingError::Misaligned {
            addr,
            align: PAGE_SIZE,
        })?;
        Ok(Region { base, len })
    }

    /// The data area of a byte ring over this region: the largest power of two that
    /// fits after the header (`None` if not even one byte does).
    pub(crate) fn data_area(&self) -> Option<DataArea> {
        let size = super::bytes::data_size(self.len);
        if size == 0 {
            return None;
        }
        // `size <= len - HEADER_SIZE` (`data_size`): the area is inside the region.
        debug_assert!(HEADER_SIZE + size as usize <= self.len);
        // SAFETY: `HEADER_SIZE < len` (`size > 0`), so the pointer stays inside the
        // region's allocation.
        let base = unsafe { self.base.add(HEADER_SIZE) };
        Some(DataArea {
            base,
            mask: size - 1,
        })
    }

    /// Length of the region in bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    #[track_caller]
    fn check(&self, off: usize, n: usize) {
        if !(off <= self.len && n <= self.len - off) {
            out_of_bounds(off, n, self.len);
        }
    }

    /// The atomic `u32` at byte offset `off` (4-aligned, in bounds; panics otherwise).
    #[inline]
    pub(crate) fn atomic(&self, off: usize) -> &AtomicU32 {
        assert!(off.is_multiple_of(4), "unaligned ring atomic");
        // A region is at least a page long (`new`), so a word in the first page needs
        // no look at `len`: for the headers' constant offsets the check folds away.
        if off + size_of::<AtomicU32>() > PAGE_SIZE {
            self.check(off, size_of::<AtomicU32>());
        }
        #[cfg(not(loom))]
        const _: () = assert!(size_of::<AtomicU32>() == 4 && align_of::<AtomicU32>() == 4);
        // SAFETY: the 4 bytes at `off` are in bounds (checked, or in the first page,
        // which every region has) and 4-aligned (the base
        // is page-aligned and `off % 4 == 0`), and valid for as long as `&self` (the
        // `new` contract). Without loom, `AtomicU32` has the layout of `u32`, every bit
        // pattern is valid, and the contract allows only atomic accesses to this word
        // while we use it. Under loom, `init_header` placed an `AtomicU32` here.
        unsafe { &*self.base.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// Writes a fresh, all-zero header `H` at offset 0.
    pub(crate) fn init_header<H: SharedHeader>(&self) {
        self.check(0, size_of::<H>());
        const { assert!(align_of::<H>() <= PAGE_SIZE) };
        #[cfg(not(loom))]
        {
            const { assert!(size_of::<H>().is_multiple_of(4)) };
            for off in (0..size_of::<H>()).step_by(4) {
                self.atomic(off).store(0, Ordering::Relaxed);
            }
        }
        #[cfg(loom)]
        // SAFETY: in bounds (checked), aligned (page-aligned base); under loom only test
        // code creates regions and it initialises the header before sharing it.
        unsafe {
            self.base.as_ptr().cast::<H>().write(H::fresh());
        }
    }

    /// Copies `src` into the region at `off` (panics if it does not fit).
    #[inline]
    pub(crate) fn write_bytes(&self, off: usize, src: &[u8]) {
        self.check(off, src.len());
        // SAFETY: the destination is in bounds (checked) and valid for writes (`new`
        // contract); `src` is a Rust slice, which cannot point into the region (only
        // endpoints access it); the protocol gives these bytes to us alone right now.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), self.base.as_ptr().add(off), src.len());
        }
    }

    /// Copies `value`'s bytes into the region at `off`.
    #[inline]
    pub(crate) fn write_obj<T: IntoBytes + Immutable>(&self, off: usize, value: &T) {
        self.write_bytes(off, value.as_bytes());
    }

    /// Copies a `T` out of the region at `off` (one fetch; any bytes are a valid `T`).
    #[inline]
    pub(crate) fn read_obj<T: FromBytes>(&self, off: usize) -> T {
        self.check(off, size_of::<T>());
        let mut out = MaybeUninit::<T>::uninit();
        // SAFETY: the source is in bounds (checked) and readable (`new` contract); the
        // destination is our own local, `size_of::<T>()` bytes, not overlapping. The
        // copy does not need the source to be aligned for `T` (bytes are copied).
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.base.as_ptr().add(off),
                out.as_mut_ptr().cast::<u8>(),
                size_of::<T>(),
            );
        }
        // SAFETY: every byte of `out` was just written, and `T: FromBytes` is valid for
        // any bit pattern.
        unsafe { out.assume_init() }
    }
}

// The `unsafe` constructors of the ring ends live here, with the rest of the unsafe
// code; each only checks the region and hands it to the safe constructor.

impl<'a, Req: RingEntry, Rsp: RingEntry> FrontRing<'a, Req, Rsp> {
    /// Makes the frontend end over `len_bytes` of shared memory at `ptr` and
    /// initialises the shared header (indices 0, both event indices 1).
    ///
    /// Fails if `ptr` is not page-aligned, `len_bytes` not a non-zero multiple of
    /// [`PAGE_SIZE`], or the region cannot hold one slot.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len_bytes` bytes for `'a`. During
    /// `'a`, nothing else in this program may access that memory except the backend's
    /// [`BackRing`] (or atomic accesses to 4-aligned words); the peer may also be
    /// another program (another VM) that writes anything at any time. The backend must
    /// attach only after this call.
    pub unsafe fn from_raw(ptr: *mut u8, len_bytes: usize) -> Result<Self, RingError> {
        // SAFETY: forwarded from our own contract.
        let region = unsafe { Region::new(ptr, len_bytes) }?;
        Self::over(region, 0)
    }
}

impl<'a, Req: RingEntry, Rsp: RingEntry> BackRing<'a, Req, Rsp> {
    /// Attaches the backend end to a ring the frontend initialised. Our indices start
    /// at the shared `rsp_prod`.
    ///
    /// Fails if `ptr` is not page-aligned, `len_bytes` not a non-zero multiple of
    /// [`PAGE_SIZE`], or the region cannot hold one slot.
    ///
    /// # Safety
    ///
    /// As for [`FrontRing::from_raw`]: `ptr` valid for reads and writes of `len_bytes`
    /// for `'a`, and nothing else in this program accesses the memory meanwhile but the
    /// frontend's [`FrontRing`] (or atomic accesses to 4-aligned words).
    pub unsafe fn from_raw(ptr: *mut u8, len_bytes: usize) -> Result<Self, RingError> {
        // SAFETY: forwarded from our own contract.
        let region = unsafe { Region::new(ptr, len_bytes) }?;
        Self::attach(region)
    }
}

impl<'a> ByteWriter<'a> {
    /// Attaches the writing end to an initialised byte ring (see [`ByteWriter::init`]).
    ///
    /// Fails if `ptr` is not page-aligned or `len_bytes` not a non-zero multiple of
    /// [`PAGE_SIZE`].
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len_bytes` bytes for `'a`. During
    /// `'a`, nothing else in this program may access that memory except the reader's
    /// [`ByteReader`] (or atomic accesses to 4-aligned words); the peer may also be
    /// another program (another VM) that writes anything at any time.
    pub unsafe fn from_raw(ptr: *mut u8, len_bytes: usize) -> Result<Self, RingError> {
        // SAFETY: forwarded from our own contract.
        let region = unsafe { Region::new(ptr, len_bytes) }?;
        Self::attach(region)
    }
}

impl<'a> ByteReader<'a> {
    /// Attaches the reading end to an initialised byte ring (see [`ByteReader::init`]).
    ///
    /// Fails if `ptr` is not page-aligned or `len_bytes` not a non-zero multiple of
    /// [`PAGE_SIZE`].
    ///
    /// # Safety
    ///
    /// As for [`ByteWriter::from_raw`], with the writer's [`ByteWriter`] as the only
    /// other user of the memory in this program.
    pub unsafe fn from_raw(ptr: *mut u8, len_bytes: usize) -> Result<Self, RingError> {
        // SAFETY: forwarded from our own contract.
        let region = unsafe { Region::new(ptr, len_bytes) }?;
        Self::attach(region)
    }
}

#[cfg(any(test, feature = "std"))]
pub use buffer::RingBuffer;

#[cfg(any(test, feature = "std"))]
mod buffer {
    extern crate alloc;

    use alloc::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
    use core::ptr::NonNull;

    use super::{Region, PAGE_SIZE};
    #[cfg(not(loom))]
    use crate::ring::sync::AtomicU32;

    /// The byte [`RingBuffer::with_guards`] fills its guard pages with.
    pub const GUARD_BYTE: u8 = 0xA5;

    /// An owned, zeroed, page-aligned ring region on the host heap (feature `std`).
    ///
    /// For tests, benchmarks and host tools: [`RingBuffer::split_req`] and
    /// [`RingBuffer::split_bytes`] make both endpoints of a ring over it, safely.
    /// [`RingBuffer::with_guards`] surrounds the region with a guard page on each side
    /// so tests can check that nothing is written outside the ring.
    #[derive(Debug)]
    pub struct RingBuffer {
        alloc: NonNull<u8>,
        layout: Layout,
        ring_off: usize,
        ring_len: usize,
    }

    // SAFETY: the buffer owns its allocation; through `&RingBuffer` the region is only
    // reached atomically (`atomic_u32`) or by endpoints whose exclusivity `split_*`
    // (`&mut self`) or the `from_raw` contract guarantee.
    unsafe impl Send for RingBuffer {}
    // SAFETY: as above; shared references give only atomic access and guard reads.
    unsafe impl Sync for RingBuffer {}

    impl RingBuffer {
        /// A zeroed region of `pages` pages (panics if `pages == 0`).
        pub fn new(pages: usize) -> Self {
            Self::alloc(pages, 0)
        }

        /// A zeroed region of `pages` pages between two guard pages of [`GUARD_BYTE`].
        pub fn with_guards(pages: usize) -> Self {
            let buf = Self::alloc(pages, PAGE_SIZE);
            let end = buf.ring_off + buf.ring_len;
            // SAFETY: both guard pages lie inside our allocation, which nothing else
            // references yet.
            unsafe {
                core::ptr::write_bytes(buf.alloc.as_ptr(), GUARD_BYTE, PAGE_SIZE);
                core::ptr::write_bytes(buf.alloc.as_ptr().add(end), GUARD_BYTE, PAGE_SIZE);
            }
            buf
        }

        fn alloc(pages: usize, guard: usize) -> Self {
            assert!(pages > 0, "a ring needs at least one page");
            let ring_len = pages.checked_mul(PAGE_SIZE).expect("ring too large");
            let total = ring_len + 2 * guard;
            let layout = Layout::from_size_align(total, PAGE_SIZE).expect("ring too large");
            // SAFETY: `layout` has a non-zero size.
            let ptr = unsafe { alloc_zeroed(layout) };
            let alloc = NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(layout));
            RingBuffer {
                alloc,
                layout,
                ring_off: guard,
                ring_len,
            }
        }

        /// Length of the ring region in bytes.
        pub fn len(&self) -> usize {
            self.ring_len
        }

        /// Always false: a ring region has at least one page.
        pub fn is_empty(&self) -> bool {
            false
        }

        /// Start of the ring region, for the `unsafe` `from_raw` constructors.
        pub fn as_mut_ptr(&self) -> *mut u8 {
            // SAFETY: `ring_off` is within the allocation.
            unsafe { self.alloc.as_ptr().add(self.ring_off) }
        }

        /// True if both guard pages still hold [`GUARD_BYTE`] (always true without
        /// guards).
        pub fn guards_intact(&self) -> bool {
            if self.ring_off == 0 {
                return true;
            }
            let end = self.ring_off + self.ring_len;
            // SAFETY: the guard pages are inside the allocation, initialised, and never
            // part of a ring region (every endpoint access is bounds-checked), so
            // nothing writes them concurrently.
            let (before, after) = unsafe {
                (
                    core::slice::from_raw_parts(self.alloc.as_ptr(), PAGE_SIZE),
                    core::slice::from_raw_parts(self.alloc.as_ptr().add(end), PAGE_SIZE),
                )
            };
            before.iter().chain(after).all(|&b| b == GUARD_BYTE)
        }

        /// The word at byte offset `off` of the ring region as an atomic (4-aligned, in
        /// bounds; panics otherwise). Lets a test play a hostile peer: rewrite header
        /// fields or slot contents between calls of an honest endpoint.
        #[cfg(not(loom))]
        pub fn atomic_u32(&self, off: usize) -> &AtomicU32 {
            let region = self.region();
            let word = region.atomic(off);
            // SAFETY: `region.atomic` returned a reference into our allocation, which
            // lives as long as `&self`; extend the borrow from the local `region` to it.
            unsafe { &*(word as *const AtomicU32) }
        }

        /// The ring region as a [`Region`].
        pub(crate) fn region(&self) -> Region {
            // SAFETY: the allocation is page-aligned, its ring part is whole pages and
            // valid while `self` lives; endpoints made from it borrow `self`.
            unsafe { Region::new(self.as_mut_ptr(), self.ring_len) }
                .expect("RingBuffer is page-aligned")
        }
    }

    impl Drop for RingBuffer {
        fn drop(&mut self) {
            // SAFETY: allocated in `alloc` with this layout; endpoints borrow `self`,
            // so none is left.
            unsafe { dealloc(self.alloc.as_ptr(), self.layout) }
        }
    }
}

#[cfg(any(test, feature = "std"))]
pub use buffer::GUARD_BYTE;
