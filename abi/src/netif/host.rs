//! Host-side helpers for tests (feature `std`): buffer pages over the heap, and a
//! ring with a handle that lets a test play a hostile peer.

extern crate alloc;

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::marker::PhantomData;
use core::sync::atomic::Ordering;

use super::{FramePages, NET_PAGES};
use crate::ring::{BackRing, FrontRing, RingBuffer, RingEntry, RingError, PAGE_SIZE};

/// [`NET_PAGES`] zeroed pages on the heap implementing [`FramePages`]; clones
/// share the pages (one clone per side, like granted memory). Every access is
/// checked: a page index out of range or a copy past the page panics.
#[derive(Clone, Debug)]
pub struct HostPages(Rc<RefCell<Vec<u8>>>);

impl Default for HostPages {
    fn default() -> Self {
        Self::new()
    }
}

impl HostPages {
    /// Fresh zeroed pages.
    pub fn new() -> Self {
        HostPages(Rc::new(RefCell::new(vec![0; NET_PAGES * PAGE_SIZE])))
    }

    #[track_caller]
    fn span(page: usize, offset: usize, len: usize) -> core::ops::Range<usize> {
        assert!(page < NET_PAGES, "page {page} out of range");
        assert!(
            offset <= PAGE_SIZE && len <= PAGE_SIZE - offset,
            "access {offset}+{len} past the page"
        );
        let start = page * PAGE_SIZE + offset;
        start..start + len
    }
}

impl FramePages for HostPages {
    #[track_caller]
    fn read(&self, page: usize, offset: usize, out: &mut [u8]) {
        let span = Self::span(page, offset, out.len());
        out.copy_from_slice(&self.0.borrow()[span]);
    }

    #[track_caller]
    fn write(&mut self, page: usize, offset: usize, data: &[u8]) {
        let span = Self::span(page, offset, data.len());
        self.0.borrow_mut()[span].copy_from_slice(data);
    }
}

type WordFn<'a> = Box<dyn Fn(usize, Option<u32>) -> u32 + 'a>;

/// Word access to a ring region while its two ends borrow the buffer: a test
/// writes header indices or slot contents between calls of an honest end, as a
/// hostile peer in another VM could at any time. Only atomic 4-byte accesses.
pub struct RingTamper<'a> {
    word: WordFn<'a>,
    _p: PhantomData<&'a RingBuffer>,
}

impl core::fmt::Debug for RingTamper<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RingTamper")
    }
}

impl RingTamper<'_> {
    /// Stores `v` in the word at byte offset `off` (4-aligned, inside the region;
    /// panics otherwise).
    pub fn store(&self, off: usize, v: u32) {
        (self.word)(off, Some(v));
    }

    /// Loads the word at byte offset `off`.
    pub fn load(&self, off: usize) -> u32 {
        (self.word)(off, None)
    }
}

/// Both ends of a ring and a [`RingTamper`] over it.
pub type TamperedRing<'a, Req, Rsp> = (
    FrontRing<'a, Req, Rsp>,
    BackRing<'a, Req, Rsp>,
    RingTamper<'a>,
);

/// Like [`RingBuffer::split_req`], plus a [`RingTamper`] over the same region.
pub fn split_req_tampered<Req: RingEntry, Rsp: RingEntry>(
    buf: &mut RingBuffer,
) -> Result<TamperedRing<'_, Req, Rsp>, RingError> {
    // A `Region` is a plain handle (no borrow); its word accesses are atomic, which
    // its contract allows next to the ring ends. The tamper handle borrows `buf`
    // as long as the ends do, so the memory outlives it.
    let region = buf.region();
    let (front, back) = buf.split_req()?;
    let word: WordFn<'_> = Box::new(move |off, v| {
        let a = region.atomic(off);
        match v {
            Some(v) => a.swap(v, Ordering::SeqCst),
            None => a.load(Ordering::SeqCst),
        }
    });
    Ok((
        front,
        back,
        RingTamper {
            word,
            _p: PhantomData,
        },
    ))
}
