//! Grant tables, guest side: granting pages of this domain to another one,
//! ending access, mapping other domains' grants into the grant window, and
//! grant copy.
//!
//! The allocators (grant references, window pages) are pure and tested on the
//! host; the table itself is the page the hypervisor shares with the domain
//! (`StartInfo::grant_table`).
#![deny(unsafe_code)]

use core::sync::atomic::AtomicU64;

use parapet_abi::grant::{
    EndAccessError, GrantCopy, GrantEntry, GrantRef, GRANT_ENTRIES, GRANT_WINDOW_BASE,
};
use parapet_abi::layout::PAGE_SIZE;
use parapet_abi::{Call, HvError};

use crate::event::DomId;

/// Pages of the grant window this SDK hands out (4 MiB).
pub const WINDOW_PAGES: usize = 1024;

/// A first-fit bitmap allocator of `N * 64` slots.
#[derive(Clone, Debug)]
pub struct Bitmap<const N: usize> {
    words: [u64; N],
}

impl<const N: usize> Default for Bitmap<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Bitmap<N> {
    /// All free.
    pub const fn new() -> Self {
        Self { words: [0; N] }
    }

    fn used(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize, used: bool) {
        if used {
            self.words[i / 64] |= 1 << (i % 64);
        } else {
            self.words[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Marks slot `i` used (to reserve it).
    pub fn reserve(&mut self, i: usize) {
        self.set(i, true);
    }

    /// Takes `count` consecutive free slots; returns the first.
    pub fn alloc(&mut self, count: usize) -> Option<usize> {
        if count == 0 {
            return None;
        }
        let total = N * 64;
        let mut start = 0;
        while start + count <= total {
            match (start..start + count).find(|&i| self.used(i)) {
                Some(busy) => start = busy + 1,
                None => {
                    (start..start + count).for_each(|i| self.set(i, true));
                    return Some(start);
                }
            }
        }
        None
    }

    /// Frees `count` slots from `first`.
    pub fn free(&mut self, first: usize, count: usize) {
        for i in first..(first + count).min(N * 64) {
            self.set(i, false);
        }
    }

    /// Slots in use.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

const REF_WORDS: usize = GRANT_ENTRIES as usize / 64;

struct State {
    refs: Bitmap<REF_WORDS>,
    window: Bitmap<{ WINDOW_PAGES / 64 }>,
}

static STATE: spin::Mutex<State> = spin::Mutex::new(State {
    refs: Bitmap::new(),
    window: Bitmap::new(),
});

/// Runs `f` on the grant bookkeeping with virtual interrupts masked, so that
/// a thread preempted inside it cannot make a handler (or, with a guest OS's
/// scheduler, another thread) spin on the lock.
fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    crate::irq::without_interrupts(|| f(&mut STATE.lock()))
}
static TABLE: spin::Once<&'static [GrantEntry]> = spin::Once::new();

/// Installs the domain's grant table (done by the runtime at start).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn set_table(table: &'static [GrantEntry]) {
    TABLE.call_once(|| table);
    // Reference 0 is never handed out, so that 0 can mean "none".
    with_state(|s| s.refs.reserve(0));
}

fn table() -> Result<&'static [GrantEntry], HvError> {
    TABLE.get().copied().ok_or(HvError::NotSupported)
}

/// Grants `domid` access to the page at guest-physical `addr` of this domain.
pub fn grant_access(domid: DomId, addr: u64, readonly: bool) -> Result<GrantRef, HvError> {
    if !addr.is_multiple_of(PAGE_SIZE) || domid > u32::from(u16::MAX) {
        return Err(HvError::Inval);
    }
    let gfn = u32::try_from(addr / PAGE_SIZE).map_err(|_| HvError::Inval)?;
    let table = table()?;
    let gref = with_state(|s| s.refs.alloc(1)).ok_or(HvError::NoMem)?;
    table[gref].grant(domid, gfn, readonly);
    Ok(gref as GrantRef)
}

/// Ends access to a grant: `Busy` while the grantee has it mapped (the grant
/// stays), `NoEnt` if it grants nothing. On success the reference is free.
pub fn end_access(gref: GrantRef) -> Result<(), HvError> {
    let table = table()?;
    let entry = table.get(gref as usize).ok_or(HvError::Inval)?;
    if gref == 0 {
        return Err(HvError::Inval);
    }
    entry.end_access().map_err(|e| match e {
        EndAccessError::InUse => HvError::Busy,
        EndAccessError::NotGranted => HvError::NoEnt,
    })?;
    with_state(|s| s.refs.free(gref as usize, 1));
    Ok(())
}

/// Grant references in use.
pub fn refs_in_use() -> usize {
    with_state(|s| s.refs.count()).saturating_sub(1)
}

/// A run of granted pages mapped into this domain's grant window.
#[derive(Debug)]
pub struct Mapped {
    first_page: usize,
    /// Window pages reserved (all of them, even if mapping stopped half-way).
    window_pages: usize,
    handles: heapless_vec::Handles,
    /// Guest-physical (and, with the SDK's identity map, virtual) address.
    pub addr: u64,
    /// Physical address of each page (driver domain only; zeros otherwise).
    pub pa: heapless_vec::Handles,
}

impl Mapped {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.handles.len() * PAGE_SIZE as usize
    }

    /// Whether it maps nothing.
    pub fn is_empty(&self) -> bool {
        self.handles.len() == 0
    }
}

/// Small fixed-capacity vectors of `u64` (no heap needed).
pub mod heapless_vec {
    /// Most pages in one [`Mapped`](super::Mapped) run or one
    /// [`SharedPages`](super::SharedPages) set: 136, room for the largest byte
    /// channel (1 + 2 × 65 pages, rings of 64 slots of 4 KiB).
    pub const MAX: usize = 136;

    /// Up to [`MAX`] values.
    #[derive(Clone, Debug)]
    pub struct Handles {
        items: [u64; MAX],
        len: usize,
    }

    impl Handles {
        pub(crate) const fn new() -> Self {
            Self {
                items: [0; MAX],
                len: 0,
            }
        }

        pub(crate) fn push(&mut self, v: u64) {
            self.items[self.len] = v;
            self.len += 1;
        }

        /// The values.
        pub fn as_slice(&self) -> &[u64] {
            &self.items[..self.len]
        }

        /// Number of values.
        pub fn len(&self) -> usize {
            self.len
        }

        /// Whether there are none.
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }
    }
}

/// `GrantMap` at an address the caller chooses, with no bookkeeping: for tests
/// of the hypervisor's checks. Returns `(handle, pa)`.
pub fn map_at(
    granter: DomId,
    gref: GrantRef,
    addr: u64,
    readonly: bool,
) -> Result<(u64, u64), HvError> {
    let flags = if readonly {
        parapet_abi::grant::map_flags::READONLY
    } else {
        0
    };
    let r = crate::hypercall::call_plain(Call::GrantMap {
        granter: granter.into(),
        gref: gref.into(),
        ipa: addr,
        flags,
    })?;
    Ok((r[0], r[1]))
}

/// `GrantUnmap` of a handle from [`map_at`].
pub fn unmap_handle(handle: u64) -> Result<(), HvError> {
    crate::hypercall::call_plain(Call::GrantUnmap { handle }).map(|_| ())
}

/// Maps grants `refs` of `granter` at consecutive pages of the grant window.
/// On error nothing stays mapped.
pub fn map(granter: DomId, refs: &[GrantRef], readonly: bool) -> Result<Mapped, HvError> {
    if refs.is_empty() || refs.len() > heapless_vec::MAX {
        return Err(HvError::Inval);
    }
    let first = with_state(|s| s.window.alloc(refs.len())).ok_or(HvError::NoMem)?;
    let addr = GRANT_WINDOW_BASE + first as u64 * PAGE_SIZE;
    let mut m = Mapped {
        first_page: first,
        window_pages: refs.len(),
        handles: heapless_vec::Handles::new(),
        addr,
        pa: heapless_vec::Handles::new(),
    };
    for (i, &gref) in refs.iter().enumerate() {
        match map_at(granter, gref, addr + i as u64 * PAGE_SIZE, readonly) {
            Ok((handle, pa)) => {
                m.handles.push(handle);
                m.pa.push(pa);
            }
            Err(e) => {
                let _ = unmap(m);
                return Err(e);
            }
        }
    }
    Ok(m)
}

/// Unmaps what [`map`] mapped and frees the window pages. Reports the first
/// error but unmaps everything it can.
pub fn unmap(m: Mapped) -> Result<(), HvError> {
    let mut result = Ok(());
    for &h in m.handles.as_slice() {
        if let Err(e) = unmap_handle(h) {
            result = result.and(Err(e));
        }
    }
    // Window pages of a mapping that failed half-way are free again too.
    with_state(|s| s.window.free(m.first_page, m.window_pages));
    result
}

/// `GrantCopy`: the hypervisor copies as `op` says; returns the bytes copied.
pub fn copy(op: &GrantCopy) -> Result<u32, HvError> {
    let addr = op as *const GrantCopy as u64;
    // SAFETY-free: the request is passed by address; the hypervisor reads it
    // through our stage-2 and checks every field.
    let r = copy_raw(addr)?;
    Ok(r as u32)
}

/// `GrantCopy` with the request at an arbitrary address (for tests of the
/// hypervisor's checks).
pub fn copy_raw(op_addr: u64) -> Result<u64, HvError> {
    Ok(crate::hypercall::call_plain(Call::GrantCopy { op: op_addr })?[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_first_fit_runs() {
        let mut b = Bitmap::<2>::new();
        b.reserve(0);
        assert_eq!(b.alloc(1), Some(1));
        assert_eq!(b.alloc(3), Some(2));
        b.free(1, 1);
        assert_eq!(b.alloc(2), Some(5), "the one-slot hole does not fit two");
        assert_eq!(b.alloc(1), Some(1));
        assert_eq!(b.count(), 7);
        assert_eq!(b.alloc(121), Some(7));
        assert_eq!(b.alloc(1), None);
        assert_eq!(b.alloc(0), None);
        b.free(100, 1000);
        assert_eq!(b.count(), 100);
    }

    #[test]
    fn words_are_aligned_in_range_and_see_the_bytes() {
        use core::sync::atomic::Ordering;
        let p = SharedPages::new(1).unwrap();
        p.word(8)
            .unwrap()
            .store(0x0102_0304_0506_0708, Ordering::SeqCst);
        let mut b = [0u8; 8];
        p.read_at(8, &mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 0x0102_0304_0506_0708);
        p.write_at(4088, &7u64.to_ne_bytes()).unwrap();
        assert_eq!(p.word(4088).unwrap().load(Ordering::SeqCst), 7);
        assert_eq!(p.word(4).err(), Some(HvError::Inval), "unaligned");
        assert_eq!(p.word(4096).err(), Some(HvError::Inval), "past the end");
        assert_eq!(p.word(usize::MAX - 3).err(), Some(HvError::Inval));
    }

    #[test]
    fn without_a_table_grants_are_not_supported() {
        assert_eq!(
            grant_access(1, 0x4000_0000, false),
            Err(HvError::NotSupported)
        );
        assert_eq!(grant_access(1, 0x4000_0001, false), Err(HvError::Inval));
    }
}

/// Bounds-checked byte access to shared memory: the pages of a [`Mapped`] run
/// or of [`SharedPages`]. The peer may change the bytes at any time, so they
/// are copied with volatile accesses and must be validated after the copy.
///
/// Sealed: only this module's types, whose `base..base + size` is memory the
/// domain owns or has mapped for as long as the value lives, implement it.
pub trait SharedBytes: sealed::Sealed {
    /// Start address.
    fn base(&self) -> u64;
    /// Length in bytes.
    fn size(&self) -> usize;

    /// Copies `buf.len()` bytes from `offset` into `buf`.
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), HvError> {
        let end = offset.checked_add(buf.len()).ok_or(HvError::Inval)?;
        if end > self.size() {
            return Err(HvError::Inval);
        }
        shared_mem::read(self.base() + offset as u64, buf);
        Ok(())
    }

    /// Copies `data` to `offset`.
    fn write_at(&self, offset: usize, data: &[u8]) -> Result<(), HvError> {
        let end = offset.checked_add(data.len()).ok_or(HvError::Inval)?;
        if end > self.size() {
            return Err(HvError::Inval);
        }
        shared_mem::write(self.base() + offset as u64, data);
        Ok(())
    }

    /// The aligned 8-byte word at `offset` as an atomic, for a flag, an index
    /// or a command both sides read and write in place (one load or store
    /// instead of a copy). `offset` must be a multiple of 8 inside the range.
    /// The peer may store anything there at any time: check a value loaded
    /// from it before using it.
    fn word(&self, offset: usize) -> Result<&AtomicU64, HvError> {
        let end = offset.checked_add(8).ok_or(HvError::Inval)?;
        if !offset.is_multiple_of(8) || end > self.size() {
            return Err(HvError::Inval);
        }
        // In range and aligned (checked above); the memory lives as long as
        // `self`, which the result borrows.
        Ok(shared_mem::word(self.base() + offset as u64))
    }

    /// Copies `len` bytes at `src_offset` of `src` to `offset` of this one, shared
    /// memory to shared memory with no private copy in between (netback: one
    /// guest's transmit buffer to another's receive buffer). Both ranges are
    /// checked; they must not overlap.
    fn copy_from<S: SharedBytes>(
        &self,
        offset: usize,
        src: &S,
        src_offset: usize,
        len: usize,
    ) -> Result<(), HvError>
    where
        Self: Sized,
    {
        let end = offset.checked_add(len).ok_or(HvError::Inval)?;
        let src_end = src_offset.checked_add(len).ok_or(HvError::Inval)?;
        if end > self.size() || src_end > src.size() {
            return Err(HvError::Inval);
        }
        let (dst, from) = (self.base() + offset as u64, src.base() + src_offset as u64);
        // Two distinct mappings or allocations never overlap; the same one could.
        if dst < from + len as u64 && from < dst + len as u64 {
            return Err(HvError::Inval);
        }
        shared_mem::copy(dst, from, len);
        Ok(())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Mapped {}
    impl Sealed for super::SharedPages {}
}

impl SharedBytes for Mapped {
    fn base(&self) -> u64 {
        self.addr
    }
    fn size(&self) -> usize {
        self.len()
    }
}

/// Zeroed, page-aligned pages of this domain's heap, to grant to another
/// domain. Dropping them while a grant is still in place leaks them (the peer
/// may still write there) instead of returning them to the heap.
pub struct SharedPages {
    base: u64,
    pages: usize,
    refs: heapless_vec::Handles,
}

impl core::fmt::Debug for SharedPages {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedPages")
            .field("base", &format_args!("{:#x}", self.base))
            .field("pages", &self.pages)
            .finish()
    }
}

impl SharedPages {
    /// Allocates `pages` zeroed pages (at most [`heapless_vec::MAX`]).
    pub fn new(pages: usize) -> Result<Self, HvError> {
        if pages == 0 || pages > heapless_vec::MAX {
            return Err(HvError::Inval);
        }
        let base = shared_mem::alloc_pages(pages).ok_or(HvError::NoMem)?;
        Ok(Self {
            base,
            pages,
            refs: heapless_vec::Handles::new(),
        })
    }

    /// Grants every page to `domid`; returns the references, in page order.
    pub fn grant_all(&mut self, domid: DomId, readonly: bool) -> Result<&[u64], HvError> {
        if !self.refs.is_empty() {
            return Err(HvError::Busy);
        }
        for i in 0..self.pages {
            match grant_access(domid, self.base + i as u64 * PAGE_SIZE, readonly) {
                Ok(r) => self.refs.push(r.into()),
                Err(e) => {
                    let _ = self.end_all();
                    return Err(e);
                }
            }
        }
        Ok(self.refs.as_slice())
    }

    /// Ends every grant; `Busy` (and the grants stay) if the peer still has
    /// one mapped.
    pub fn end_all(&mut self) -> Result<(), HvError> {
        let table = table()?;
        if self
            .refs
            .as_slice()
            .iter()
            .any(|&r| table.get(r as usize).is_some_and(GrantEntry::in_use))
        {
            return Err(HvError::Busy);
        }
        for &r in self.refs.as_slice() {
            match end_access(r as GrantRef) {
                Ok(()) | Err(HvError::NoEnt) => {}
                Err(e) => return Err(e),
            }
        }
        self.refs = heapless_vec::Handles::new();
        Ok(())
    }

    /// The grant references, in page order (empty until [`Self::grant_all`]).
    pub fn refs(&self) -> &[u64] {
        self.refs.as_slice()
    }
}

impl SharedBytes for SharedPages {
    fn base(&self) -> u64 {
        self.base
    }
    fn size(&self) -> usize {
        self.pages * PAGE_SIZE as usize
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        if self.end_all().is_ok() {
            shared_mem::free_pages(self.base, self.pages);
        }
    }
}

/// The only unsafe code of this module: raw access to shared pages.
#[allow(unsafe_code)]
mod shared_mem {
    extern crate alloc;
    use alloc::alloc::{alloc_zeroed, dealloc, Layout};
    use core::sync::atomic::AtomicU64;
    use parapet_abi::layout::PAGE_SIZE;

    fn layout(pages: usize) -> Option<Layout> {
        Layout::from_size_align(pages * PAGE_SIZE as usize, PAGE_SIZE as usize).ok()
    }

    pub fn alloc_pages(pages: usize) -> Option<u64> {
        let l = layout(pages)?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(l) };
        (!p.is_null()).then_some(p as u64)
    }

    pub fn free_pages(base: u64, pages: usize) {
        if let Some(l) = layout(pages) {
            // SAFETY: `base` came from `alloc_pages(pages)` with this layout and
            // no grant to it remains.
            unsafe { dealloc(base as *mut u8, l) };
        }
    }

    // The copy itself is `parapet_abi::shmem`'s (aligned volatile words on the
    // shared side, never byte by byte in the middle), shared with netback/netfront.

    pub fn read(addr: u64, buf: &mut [u8]) {
        // SAFETY: the callers checked that [addr, addr + len) lies in pages they own
        // or have mapped for as long as they live; the peer may write concurrently,
        // which `shmem::read` allows (volatile); `buf` is private memory.
        unsafe { parapet_abi::shmem::read(addr as *const u8, buf) }
    }

    pub fn write(addr: u64, data: &[u8]) {
        // SAFETY: as for `read`, and the pages are writable.
        unsafe { parapet_abi::shmem::write(addr as *mut u8, data) }
    }

    /// The word at `addr`, which the caller checked is 8-byte aligned and in
    /// pages owned or mapped for at least the returned lifetime.
    pub fn word<'a>(addr: u64) -> &'a AtomicU64 {
        // SAFETY: as the caller checked; every bit pattern is a valid `u64`, and
        // the peer's concurrent accesses are atomic on its side or races on plain
        // data that this side only ever reads or writes whole (aligned 8 bytes).
        unsafe { &*(addr as *const AtomicU64) }
    }

    pub fn copy(dst: u64, src: u64, len: usize) {
        // SAFETY: the caller checked both ranges (each in pages owned or mapped for
        // as long as they live, the destination writable) and that they do not
        // overlap; peers may access both concurrently, which `shmem::copy` allows.
        unsafe { parapet_abi::shmem::copy(dst as *mut u8, src as *const u8, len) }
    }
}
