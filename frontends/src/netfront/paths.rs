//! The transmit and receive halves of a netfront, and the buffers they own.

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec;

use parapet_abi::netif::{BufSet, Chain, RxRequest, RxResponse, TxRequest, TxResponse, NET_BUFS};
use parapet_abi::ring::FrontRing;
use zerocopy::IntoBytes;

/// always suffice.
#[derive(Debug)]
pub(super) struct RxQueue {
    pub(super) items: [(u8, u16, bool); NET_BUFS],
    pub(super) head: usize,
    pub(super) len: usize,
}

// Ids are stored as u8.
const _: () = assert!(NET_BUFS <= 256);

impl RxQueue {
    pub(super) const fn new() -> Self {
        RxQueue {
            items: [(0, 0, false); NET_BUFS],
            head: 0,
            len: 0,
        }
    }

    /// Queues the buffers of a complete frame; false (nothing queued) if they do
    /// not fit.
    pub(super) fn push_frame(&mut self, chain: &Chain) -> bool {
        let ids = chain.ids();
        if self.len + ids.len() > NET_BUFS {
            return false;
        }
        for (i, &id) in ids.iter().enumerate() {
            let more = i + 1 < ids.len();
            self.items[(self.head + self.len) % NET_BUFS] =
                (id as u8, Chain::frag_len(chain.len(), i) as u16, more);
            self.len += 1;
        }
        true
    }

    pub(super) fn pop(&mut self) -> Option<(usize, usize, bool)> {
        if self.len == 0 {
            return None;
        }
        let (id, len, more) = self.items[self.head];
        self.head = (self.head + 1) % NET_BUFS;
        self.len -= 1;
        Some((usize::from(id), usize::from(len), more))
    }
}

/// Where the frame starts in a [`FrameBuf`]: 2 bytes past an 8-byte boundary.
pub(super) const FRAME_OFFSET: usize = 2;

/// A private frame buffer (on the heap, 8-aligned) holding a frame at
/// [`FRAME_OFFSET`] (see "Alignment" in the module docs).
pub(super) struct FrameBuf(Box<[u64]>);

impl FrameBuf {
    pub(super) fn new(frame_max: usize) -> Self {
        FrameBuf(vec![0u64; (FRAME_OFFSET + frame_max).div_ceil(8)].into_boxed_slice())
    }

    pub(super) fn frame(&self, len: usize) -> &[u8] {
        &self.0.as_bytes()[FRAME_OFFSET..FRAME_OFFSET + len]
    }

    pub(super) fn frame_mut(&mut self, len: usize) -> &mut [u8] {
        &mut self.0.as_mut_bytes()[FRAME_OFFSET..FRAME_OFFSET + len]
    }
}

/// The transmit half: everything a [`NetTxToken`] needs besides the pages.
pub(super) struct TxPath<'a> {
    pub(super) ring: FrontRing<'a, TxRequest, TxResponse>,
    /// TX buffers we may fill.
    pub(super) free: BufSet,
    /// TX buffers pushed to the ring, waiting for their response.
    pub(super) in_flight: BufSet,
    /// Where smoltcp builds a frame before it is copied to TX pages (the vif's
    /// largest frame, on the heap: the device stays small to move).
    pub(super) scratch: FrameBuf,
    /// The largest frame: [`FRAME_MAX`], or [`FRAME_MAX_SG`] with large frames.
    pub(super) frame_max: usize,
}

/// The receive half.
pub(super) struct RxPath<'a> {
    pub(super) ring: FrontRing<'a, RxRequest, RxResponse>,
    /// RX buffers pushed to the ring, waiting for a frame.
    pub(super) posted: BufSet,
    /// Buffers holding a received frame, not yet taken by smoltcp.
    pub(super) queue: RxQueue,
    /// The fragments of a frame whose last fragment has not come yet.
    pub(super) chain: Chain,
    /// The private copy of the frame being received (the vif's largest frame).
    pub(super) scratch: FrameBuf,
}

impl RxPath<'_> {
    /// Pushes (without publishing) a request posting RX buffer `id`.
    pub(super) fn post(&mut self, id: usize) {
        // At most NET_BUFS requests are outstanding and the ring holds more (checked
        // in `new`), so the push cannot fail; if it did, the buffer would stay
        // unposted rather than panic.
        if self
            .ring
            .push_request(&RxRequest {
                id: id as u16,
                _pad: [0; 3],
            })
            .is_ok()
        {
            self.posted.insert(id);
        }
    }
}
