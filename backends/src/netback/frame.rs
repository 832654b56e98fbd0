//! A TX frame as `deliver` sees it, and the FIFO of posted RX buffer ids.

use parapet_abi::netif::{tx_page, BufSet, Chain, FramePages, FRAME_MIN, NET_BUFS};
use parapet_abi::ring::PAGE_SIZE;

/// The posted RX buffer ids, oldest first; each id at most once.
#[derive(Debug)]
pub(super) struct PostedFifo {
    ids: [u8; NET_BUFS],
    head: usize,
    pub(super) len: usize,
    set: BufSet,
}

impl PostedFifo {
    pub(super) const fn new() -> Self {
        PostedFifo {
            ids: [0; NET_BUFS],
            head: 0,
            len: 0,
            set: BufSet::EMPTY,
        }
    }

    /// Adds `id`; false if it is out of range or already posted.
    pub(super) fn push(&mut self, id: usize) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        // At most NET_BUFS distinct ids are in the set, so there is room.
        debug_assert!(self.len < NET_BUFS);
        self.ids[(self.head + self.len) % NET_BUFS] = id as u8;
        self.len += 1;
        true
    }

    pub(super) fn pop(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let id = usize::from(self.ids[self.head]);
        self.head = (self.head + 1) % NET_BUFS;
        self.len -= 1;
        self.set.remove(id);
        Some(id)
    }
}

// Ids are stored as u8.
const _: () = assert!(NET_BUFS <= 256);

/// A frame taken from a vif's TX ring and not yet answered: its header copied into
/// private memory, the rest still in the frontend's TX buffers (which stay its until
/// [`VifBackend::poll_tx`](super::VifBackend::poll_tx) answers them, after `deliver` returns).
pub struct TxFrame<'t, P: FramePages> {
    pub(super) pages: &'t P,
    pub(super) chain: Chain,
    pub(super) header: [u8; FRAME_MIN],
}

impl<P: FramePages> core::fmt::Debug for TxFrame<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TxFrame")
            .field("len", &self.chain.len())
            .field("ids", &self.chain.ids())
            .finish()
    }
}

impl<P: FramePages> TxFrame<'_, P> {
    /// The frame's length.
    pub fn len(&self) -> usize {
        self.chain.len()
    }

    /// Whether the frame is empty (never: frames are at least `FRAME_MIN` long).
    pub fn is_empty(&self) -> bool {
        self.chain.len() == 0
    }

    /// The private copy of the frame's first [`FRAME_MIN`] bytes (the Ethernet
    /// header): what the switch decides on, and what every copy of the frame starts
    /// with (never re-read from the frontend's buffer).
    pub fn header(&self) -> &[u8; FRAME_MIN] {
        &self.header
    }

    /// Copies the frame's bytes `offset..offset + out.len()` into `out` (clipped to
    /// the frame): the header from the private copy, the rest straight from the
    /// frontend's buffers.
    pub fn read(&self, offset: usize, out: &mut [u8]) {
        let end = (offset + out.len()).min(self.len());
        let mut at = offset;
        while at < end {
            let n = if at < FRAME_MIN {
                let n = (FRAME_MIN - at).min(end - at);
                out[at - offset..][..n].copy_from_slice(&self.header[at..at + n]);
                n
            } else {
                let (frag, off) = (at / PAGE_SIZE, at % PAGE_SIZE);
                let n = (PAGE_SIZE - off).min(end - at);
                let id = usize::from(self.chain.ids()[frag]);
                self.pages
                    .read(tx_page(id), off, &mut out[at - offset..][..n]);
                n
            };
            at += n;
        }
    }
}
