//! Netfront: a guest's side of a virtual interface, as a [`smoltcp`] device.
//!
//! This module is the portable core of the split network driver's frontend: the
//! netif protocol ([`parapet_abi::netif`]) over two [`FrontRing`]s and the buffer
//! pages, generic over how the pages are reached ([`FramePages`]), so it runs on the
//! host in tests. The guest glue allocates and grants the pages, fills the control
//! page, runs the event channel and drives the loop below.
//!
//! # Use
//!
//! The glue allocates the two ring pages and makes the [`FrontRing`]s over them (this
//! initialises the ring headers, so it happens *before* the backend attaches), gives
//! a [`FramePages`] over its `2 * NET_BUFS` buffer pages (TX buffer `i` is page `i`,
//! RX buffer `i` is page `NET_BUFS + i`), and calls [`Netfront::new`], which pushes
//! (without publishing) one [`RxRequest`] per RX buffer. Once the backend is
//! connected, and on every wake-up after that:
//!
//! 1. [`Netfront::poll`] consumes responses: TX buffers come back, received frames
//!    are queued for smoltcp. An `Err` is a protocol violation by the backend
//!    (disconnect); the device stays usable.
//! 2. `Interface::poll` with this device: [`Device::receive`] and
//!    [`Device::transmit`] push requests.
//! 3. [`Netfront::flush`] publishes them (one release store per ring) and says
//!    whether to notify the backend. The first flush after [`Netfront::new`]
//!    publishes the RX buffers and always asks for a notification.
//! 4. Before blocking on the event channel: [`Netfront::final_check`]. `Ok(true)`
//!    means there is work already (loop again); on `Ok(false)` the response
//!    notifications of both rings are armed and the glue may sleep (or until
//!    smoltcp's `poll_delay`).
//!
//! Stack: the device is small (its two frame buffers are on the heap); a whole
//! interface with smoltcp needs about 8 KiB, see [`crate::vif`].
//!
//! # Design
//!
//! * **Receive**: [`Device::receive`] takes the oldest received frame, copies it
//!   out of its RX page into a private buffer, and re-posts the RX buffer at once
//!   (its content is no longer needed; the request is published by the next flush).
//!   The [`NetRxToken`] only holds the private copy, so it borrows nothing the
//!   [`NetTxToken`] needs.
//! * **Transmit**: the [`NetTxToken`] lets smoltcp build the frame in a private
//!   buffer, copies it into a free TX page and pushes a [`TxRequest`].
//!   [`Device::transmit`] offers a token only when a TX buffer is free. The token
//!   that comes with a received frame may find none: the reply is then dropped (and
//!   counted in [`NetStats::tx_dropped`]), as is a frame longer than
//!   [`FRAME_MAX`] or shorter than [`FRAME_MIN`].
//! * **Large frames** (`feature-sg`, [`Netfront::with_sg`]): smoltcp gets an MTU of
//!   [`MTU_SG`] and a frame spans up to `MAX_FRAGS` buffers (TX requests with
//!   [`TXF_MORE`]; RX responses with [`RXF_MORE`], decoded by [`Chain`]).
//!   [`Device::transmit`] then offers a token only when a largest frame's worth of
//!   TX buffers is free. Without it, frames stay within one buffer and
//!   [`FRAME_MAX`].
//! * **Alignment**: the private frame buffers start the frame 2 bytes past an 8-byte
//!   boundary (Linux's `NET_IP_ALIGN`), so the TCP payload of a segment without
//!   options (offset 54) is 8-aligned and smoltcp's copies between it and the socket
//!   buffers go a word at a time; copies to and from the granted pages use
//!   `parapet_abi::shmem` (aligned words on the shared side).
//! * **Checks**: a response's id must be a buffer we sent (TX) or posted (RX), else
//!   [`NetError::Protocol`]. A received frame with a bad status, unknown flags or
//!   fragments [`Chain`] refuses (a length outside `FRAME_MIN..=` the vif's largest
//!   frame, a short fragment marked "more", too many) is counted in
//!   [`NetStats::rx_errors`] and all its buffers are re-posted. A TX response with a status other than Okay is counted in
//!   [`NetStats::tx_errors`]; its buffer is free again either way. Ring index
//!   corruption is [`NetError::Ring`].

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec;

use parapet_abi::netif::{
    rx_page, tx_page, BufSet, Chain, FramePages, NetStatus, RxRequest, RxResponse, TxRequest,
    TxResponse, FRAME_MAX, FRAME_MAX_SG, FRAME_MIN, MTU_SG, NET_BUFS, RXF_MORE, TXF_MORE,
};
use parapet_abi::ring::PAGE_SIZE;
use parapet_abi::ring::{FrontRing, RingError};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use zerocopy::IntoBytes;

/// What went wrong on a netfront.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// A ring's index protocol was broken (by the backend, or the rings given to
    /// [`Netfront::new`] were not fresh).
    Ring(RingError),
    /// The backend broke the netif protocol (an id it did not have, a ring too
    /// small, ...): disconnect.
    Protocol(&'static str),
}

impl From<RingError> for NetError {
    fn from(e: RingError) -> Self {
        NetError::Ring(e)
    }
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetError::Ring(e) => write!(f, "netfront ring: {e}"),
            NetError::Protocol(what) => write!(f, "netfront protocol: {what}"),
        }
    }
}

impl core::error::Error for NetError {}

/// Counters of one netfront.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames pushed to the TX ring.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Frames smoltcp gave us that were not sent (no free TX buffer, or a bad length).
    pub tx_dropped: u64,
    /// TX responses with a status other than Okay.
    pub tx_errors: u64,
    /// Frames handed to smoltcp.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// RX responses refused (bad status or length); their buffers were re-posted.
    pub rx_errors: u64,
    /// Responses naming a buffer the backend did not have ([`NetError::Protocol`]).
    pub protocol_errors: u64,
    /// Times [`Netfront::flush`] said the backend must be notified.
    pub notifications: u64,
}

/// Received frames waiting for smoltcp, oldest first, one entry per buffer:
/// `(rx buffer id, fragment length, more fragments follow)`. Only complete, checked
/// frames are queued. Each buffer is in it at most once, so [`NET_BUFS`] entries
/// always suffice.
#[derive(Debug)]
struct RxQueue {
    items: [(u8, u16, bool); NET_BUFS],
    head: usize,
    len: usize,
}

// Ids are stored as u8.
const _: () = assert!(NET_BUFS <= 256);

impl RxQueue {
    const fn new() -> Self {
        RxQueue {
            items: [(0, 0, false); NET_BUFS],
            head: 0,
            len: 0,
        }
    }

    /// Queues the buffers of a complete frame; false (nothing queued) if they do
    /// not fit.
    fn push_frame(&mut self, chain: &Chain) -> bool {
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

    fn pop(&mut self) -> Option<(usize, usize, bool)> {
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
const FRAME_OFFSET: usize = 2;

/// A private frame buffer (on the heap, 8-aligned) holding a frame at
/// [`FRAME_OFFSET`] (see "Alignment" in the module docs).
struct FrameBuf(Box<[u64]>);

impl FrameBuf {
    fn new(frame_max: usize) -> Self {
        FrameBuf(vec![0u64; (FRAME_OFFSET + frame_max).div_ceil(8)].into_boxed_slice())
    }

    fn frame(&self, len: usize) -> &[u8] {
        &self.0.as_bytes()[FRAME_OFFSET..FRAME_OFFSET + len]
    }

    fn frame_mut(&mut self, len: usize) -> &mut [u8] {
        &mut self.0.as_mut_bytes()[FRAME_OFFSET..FRAME_OFFSET + len]
    }
}

/// The transmit half: everything a [`NetTxToken`] needs besides the pages.
struct TxPath<'a> {
    ring: FrontRing<'a, TxRequest, TxResponse>,
    /// TX buffers we may fill.
    free: BufSet,
    /// TX buffers pushed to the ring, waiting for their response.
    in_flight: BufSet,
    /// Where smoltcp builds a frame before it is copied to TX pages (the vif's
    /// largest frame, on the heap: the device stays small to move).
    scratch: FrameBuf,
    /// The largest frame: [`FRAME_MAX`], or [`FRAME_MAX_SG`] with large frames.
    frame_max: usize,
}

/// The receive half.
struct RxPath<'a> {
    ring: FrontRing<'a, RxRequest, RxResponse>,
    /// RX buffers pushed to the ring, waiting for a frame.
    posted: BufSet,
    /// Buffers holding a received frame, not yet taken by smoltcp.
    queue: RxQueue,
    /// The fragments of a frame whose last fragment has not come yet.
    chain: Chain,
    /// The private copy of the frame being received (the vif's largest frame).
    scratch: FrameBuf,
}

impl RxPath<'_> {
    /// Pushes (without publishing) a request posting RX buffer `id`.
    fn post(&mut self, id: usize) {
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

/// A guest's end of one vif: both rings, the buffer pages (through `P`), which
/// buffers are where, the frames waiting for smoltcp and counters. Implements
/// [`smoltcp::phy::Device`]. See the module docs.
pub struct Netfront<'a, P: FramePages> {
    tx: TxPath<'a>,
    rx: RxPath<'a>,
    pages: P,
    stats: NetStats,
}

impl<P: FramePages> core::fmt::Debug for Netfront<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Netfront")
            .field("tx_ring", &self.tx.ring)
            .field("rx_ring", &self.rx.ring)
            .field("tx_free", &self.tx.free.len())
            .field("rx_posted", &self.rx.posted.len())
            .field("rx_queued", &self.rx.queue.len)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<'a, P: FramePages> Netfront<'a, P> {
    /// A netfront over freshly initialised rings and the buffer pages. Pushes one
    /// request per RX buffer; the first [`Netfront::flush`] publishes them.
    ///
    /// Fails if a ring is smaller than [`NET_BUFS`] or has requests outstanding.
    pub fn new(
        tx: FrontRing<'a, TxRequest, TxResponse>,
        rx: FrontRing<'a, RxRequest, RxResponse>,
        pages: P,
    ) -> Result<Self, NetError> {
        for (size, free) in [(tx.size(), tx.free_slots()), (rx.size(), rx.free_slots())] {
            if (size as usize) < NET_BUFS {
                return Err(NetError::Protocol("ring smaller than NET_BUFS"));
            }
            if free != size {
                return Err(NetError::Protocol("ring not fresh"));
            }
        }
        let mut nf = Netfront {
            tx: TxPath {
                ring: tx,
                free: BufSet::ALL,
                in_flight: BufSet::EMPTY,
                scratch: FrameBuf::new(FRAME_MAX),
                frame_max: FRAME_MAX,
            },
            rx: RxPath {
                ring: rx,
                posted: BufSet::EMPTY,
                queue: RxQueue::new(),
                chain: Chain::new(),
                scratch: FrameBuf::new(FRAME_MAX),
            },
            pages,
            stats: NetStats::default(),
        };
        for id in 0..NET_BUFS {
            nf.rx.post(id);
        }
        Ok(nf)
    }

    /// With `sg` (the backend advertised `feature-sg` and we told it we use it):
    /// frames of up to [`FRAME_MAX_SG`] bytes in several buffers, both ways, and an
    /// MTU of [`MTU_SG`] for smoltcp. Call before the first frame.
    pub fn with_sg(mut self, sg: bool) -> Self {
        let max = if sg { FRAME_MAX_SG } else { FRAME_MAX };
        self.tx.frame_max = max;
        self.tx.scratch = FrameBuf::new(max);
        self.rx.scratch = FrameBuf::new(max);
        self
    }

    /// The largest frame sent or taken.
    pub fn frame_max(&self) -> usize {
        self.tx.frame_max
    }

    /// The counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// The buffer pages.
    pub fn pages(&self) -> &P {
        &self.pages
    }

    /// TX buffers free for a frame.
    pub fn tx_free(&self) -> usize {
        self.tx.free.len()
    }

    /// RX buffers posted to the backend.
    pub fn rx_posted(&self) -> usize {
        self.rx.posted.len()
    }

    /// Received frames waiting for smoltcp.
    pub fn rx_queued(&self) -> usize {
        self.rx.queue.len
    }

    /// Consumes the responses of both rings: frees TX buffers, queues received
    /// frames (re-posting the buffers of bad ones). Stops at the first protocol
    /// violation and returns it (what was consumed before is kept); the device stays
    /// usable, but the glue should disconnect.
    pub fn poll(&mut self) -> Result<(), NetError> {
        // Responses are copies; the ring bounds how many there can be.
        while let Some(rsp) = self.tx.ring.poll_response()? {
            let id = usize::from(rsp.id);
            if !self.tx.in_flight.remove(id) {
                self.stats.protocol_errors += 1;
                return Err(NetError::Protocol("TX response for a buffer not in flight"));
            }
            self.tx.free.insert(id);
            if NetStatus::from(rsp.status) != NetStatus::Okay {
                self.stats.tx_errors += 1;
            }
        }
        while let Some(rsp) = self.rx.ring.poll_response()? {
            let id = usize::from(rsp.id);
            if !self.rx.posted.remove(id) {
                self.stats.protocol_errors += 1;
                return Err(NetError::Protocol("RX response for a buffer not posted"));
            }
            let ok = NetStatus::from(rsp.status) == NetStatus::Okay && rsp.flags & !RXF_MORE == 0;
            let pushed = if ok {
                self.rx
                    .chain
                    .push(
                        rsp.id,
                        usize::from(rsp.len),
                        rsp.flags & RXF_MORE != 0,
                        self.tx.frame_max,
                    )
                    .ok()
            } else {
                None
            };
            match pushed {
                Some(false) => {}
                // Each id is in the queue at most once (it was posted), so it fits.
                Some(true) if self.rx.queue.push_frame(&self.rx.chain) => {
                    self.rx.chain.clear();
                }
                _ => {
                    // A bad fragment spoils its frame: every buffer of it is
                    // posted again.
                    self.stats.rx_errors += 1;
                    let chain = self.rx.chain;
                    self.rx.chain.clear();
                    for &c in chain.ids() {
                        self.rx.post(usize::from(c));
                    }
                    if !chain.ids().contains(&rsp.id) {
                        self.rx.post(id);
                    }
                }
            }
        }
        Ok(())
    }

    /// Publishes the requests pushed since the last flush (TX frames, re-posted RX
    /// buffers): one release store per ring. True if the backend must be notified.
    pub fn flush(&mut self) -> bool {
        let tx = self.tx.ring.push_requests_and_check_notify();
        let rx = self.rx.ring.push_requests_and_check_notify();
        if tx || rx {
            self.stats.notifications += 1;
        }
        tx || rx
    }

    /// Pushes `req` on the TX ring as it is, without checking it or keeping
    /// track of its buffer: for tests that play a hostile frontend. Published by
    /// the next [`Netfront::flush`]. The backend's answer (an error for a
    /// malformed request) is a response this netfront did not expect, so the
    /// next [`Netfront::poll`] reports a protocol error.
    pub fn push_raw_tx(&mut self, req: &TxRequest) -> Result<(), NetError> {
        Ok(self.tx.ring.push_request(req)?)
    }

    /// Before blocking (after [`Netfront::flush`]): true if there is work (frames
    /// queued for smoltcp, or responses waiting on either ring); otherwise arms the
    /// response notifications of both rings and checks again. Block only on
    /// `Ok(false)`.
    pub fn final_check(&mut self) -> Result<bool, NetError> {
        if self.rx.queue.len > 0 {
            return Ok(true);
        }
        let tx = self.tx.ring.final_check_for_responses()?;
        let rx = self.rx.ring.final_check_for_responses()?;
        Ok(tx || rx)
    }
}

/// A received frame, already copied into private memory.
#[derive(Debug)]
pub struct NetRxToken<'t> {
    frame: &'t [u8],
}

impl phy::RxToken for NetRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// The right to send one frame.
pub struct NetTxToken<'t, 'a, P: FramePages> {
    tx: &'t mut TxPath<'a>,
    pages: &'t mut P,
    stats: &'t mut NetStats,
}

impl<P: FramePages> core::fmt::Debug for NetTxToken<'_, '_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NetTxToken")
            .field("tx_free", &self.tx.free.len())
            .finish()
    }
}

impl<P: FramePages> phy::TxToken for NetTxToken<'_, '_, P> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let tx = self.tx;
        if len > tx.frame_max {
            // smoltcp respects the MTU; should it not, the frame is built and dropped.
            let mut big = vec![0u8; len];
            let r = f(&mut big);
            self.stats.tx_dropped += 1;
            return r;
        }
        let r = f(tx.scratch.frame_mut(len));
        let frags = Chain::frags(len);
        if len < FRAME_MIN || tx.free.len() < frags || tx.ring.free_slots() < frags as u32 {
            self.stats.tx_dropped += 1;
            return r;
        }
        let frame = tx.scratch.frame(len);
        for i in 0..frags {
            // `free.len() >= frags`: there is one.
            let Some(id) = tx.free.pop_first() else { break };
            let n = Chain::frag_len(len, i);
            self.pages
                .write(tx_page(id), 0, &frame[i * PAGE_SIZE..i * PAGE_SIZE + n]);
            let req = TxRequest {
                id: id as u16,
                len: n as u16,
                flags: if i + 1 < frags { TXF_MORE } else { 0 },
                _pad: 0,
            };
            // Room was checked above: the whole frame goes in.
            if tx.ring.push_request(&req).is_ok() {
                tx.in_flight.insert(id);
            } else {
                tx.free.insert(id);
            }
        }
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += len as u64;
        r
    }
}

impl<'a, P: FramePages> Device for Netfront<'a, P> {
    type RxToken<'t>
        = NetRxToken<'t>
    where
        Self: 't;
    type TxToken<'t>
        = NetTxToken<'t, 'a, P>
    where
        Self: 't;

    fn receive(&mut self, _timestamp: Instant) -> Option<(NetRxToken<'_>, NetTxToken<'_, 'a, P>)> {
        // The queue holds whole frames only; lengths were checked (`Chain`) when the
        // responses were accepted. The copy is private: the backend may rewrite the
        // pages, not our frame.
        let mut len = 0;
        loop {
            let (id, n, more) = self.rx.queue.pop()?;
            let out = self.rx.scratch.frame_mut(len + n);
            self.pages.read(rx_page(id), 0, &mut out[len..]);
            self.rx.post(id);
            len += n;
            if !more {
                break;
            }
        }
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += len as u64;
        Some((
            NetRxToken {
                frame: self.rx.scratch.frame(len),
            },
            NetTxToken {
                tx: &mut self.tx,
                pages: &mut self.pages,
                stats: &mut self.stats,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<NetTxToken<'_, 'a, P>> {
        // Room for the largest frame: smoltcp asks before it knows the length.
        if self.tx.free.len() < Chain::frags(self.tx.frame_max) {
            return None;
        }
        Some(NetTxToken {
            tx: &mut self.tx,
            pages: &mut self.pages,
            stats: &mut self.stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        // smoltcp's Ethernet MTU counts the 14-byte header.
        caps.max_transmission_unit = if self.tx.frame_max > FRAME_MAX {
            MTU_SG + 14
        } else {
            FRAME_MAX
        };
        caps.max_burst_size = Some(NET_BUFS / Chain::frags(self.tx.frame_max));
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use parapet_abi::netif::{split_req_tampered, NET_PAGES};
    use parapet_abi::ring::{BackRing, RingBuffer, SringHeader, PAGE_SIZE};
    use proptest::prelude::*;
    use smoltcp::phy::{RxToken, TxToken};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Buffer pages as the frontend may use them: it only ever writes TX buffers and
    /// reads RX buffers, at most a frame, within one page. Anything else fails.
    #[derive(Clone)]
    struct CheckedPages(Rc<RefCell<Vec<u8>>>);

    impl CheckedPages {
        fn new() -> Self {
            CheckedPages(Rc::new(RefCell::new(vec![0; NET_PAGES * PAGE_SIZE])))
        }
        fn poke(&self, page: usize, data: &[u8]) {
            self.0.borrow_mut()[page * PAGE_SIZE..][..data.len()].copy_from_slice(data);
        }
        fn peek(&self, page: usize, len: usize) -> Vec<u8> {
            self.0.borrow()[page * PAGE_SIZE..][..len].to_vec()
        }
    }

    impl FramePages for CheckedPages {
        fn read(&self, page: usize, offset: usize, out: &mut [u8]) {
            assert!(
                (NET_BUFS..NET_PAGES).contains(&page),
                "frontend read page {page}: not an RX buffer"
            );
            assert!(offset == 0 && (1..=PAGE_SIZE).contains(&out.len()));
            out.copy_from_slice(&self.0.borrow()[page * PAGE_SIZE..][..out.len()]);
        }
        fn write(&mut self, page: usize, offset: usize, data: &[u8]) {
            assert!(
                page < NET_BUFS,
                "frontend wrote page {page}: not a TX buffer"
            );
            assert!(offset == 0 && (1..=PAGE_SIZE).contains(&data.len()));
            self.0.borrow_mut()[page * PAGE_SIZE..][..data.len()].copy_from_slice(data);
        }
    }

    type TxBack<'a> = BackRing<'a, TxRequest, TxResponse>;
    type RxBack<'a> = BackRing<'a, RxRequest, RxResponse>;

    fn frame(seed: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
    }

    /// Sends `data` through the device; false if no token was offered.
    fn send(nf: &mut Netfront<'_, CheckedPages>, data: &[u8]) -> bool {
        match nf.transmit(Instant::ZERO) {
            Some(t) => {
                t.consume(data.len(), |b| b.copy_from_slice(data));
                true
            }
            None => false,
        }
    }

    /// Every frame the device has for smoltcp.
    fn recv_all(nf: &mut Netfront<'_, CheckedPages>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some((rx, _tx)) = nf.receive(Instant::ZERO) {
            out.push(rx.consume(|f| f.to_vec()));
        }
        out
    }

    fn drain<T: parapet_abi::ring::RingEntry, U: parapet_abi::ring::RingEntry>(
        b: &mut BackRing<'_, T, U>,
    ) -> Vec<T> {
        std::iter::from_fn(|| b.poll_request().unwrap()).collect()
    }

    fn tx_rsp(tb: &mut TxBack<'_>, id: u16, status: NetStatus) {
        tb.push_response(&TxResponse {
            id,
            status: status.raw(),
            _pad: 0,
        })
        .unwrap();
    }

    fn rx_rsp(rb: &mut RxBack<'_>, id: u16, len: u16, status: NetStatus) {
        rb.push_response(&RxResponse {
            id,
            len,
            status: status.raw(),
            flags: 0,
        })
        .unwrap();
    }

    /// Sets that must always partition the buffers.
    fn check_invariants(nf: &Netfront<'_, CheckedPages>) {
        assert!(nf.tx.free.is_disjoint(nf.tx.in_flight));
        assert_eq!(nf.tx.free.len() + nf.tx.in_flight.len(), NET_BUFS);
        let mut queued = BufSet::EMPTY;
        let mut frame = 0;
        for i in 0..nf.rx.queue.len {
            let (id, len, more) = nf.rx.queue.items[(nf.rx.queue.head + i) % NET_BUFS];
            assert!(queued.insert(usize::from(id)), "queued twice");
            let len = usize::from(len);
            assert!((1..=PAGE_SIZE).contains(&len) && (!more || len == PAGE_SIZE));
            frame += len;
            if !more {
                assert!((FRAME_MIN..=nf.frame_max()).contains(&frame));
                frame = 0;
            }
        }
        assert_eq!(frame, 0, "only whole frames are queued");
        for &id in nf.rx.chain.ids() {
            assert!(queued.insert(usize::from(id)), "pending and queued");
        }
        assert!(queued.is_disjoint(nf.rx.posted));
        assert_eq!(queued.len() + nf.rx.posted.len(), NET_BUFS);
    }

    #[test]
    fn new_posts_every_rx_buffer_on_first_flush() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (tf, _tb) = tbuf.split_req().unwrap();
        let (rf, mut rb) = rbuf.split_req().unwrap();
        let mut nf = Netfront::new(tf, rf, CheckedPages::new()).unwrap();
        assert_eq!(nf.rx_posted(), NET_BUFS);
        assert_eq!(nf.tx_free(), NET_BUFS);
        assert!(drain(&mut rb).is_empty(), "not published before flush");
        assert!(nf.flush());
        assert!(!nf.flush());
        let ids: Vec<u16> = drain(&mut rb).iter().map(|r| r.id).collect();
        assert_eq!(ids, (0..NET_BUFS as u16).collect::<Vec<_>>());
        assert_eq!(nf.stats().notifications, 1);
        let caps = nf.capabilities();
        assert_eq!(caps.medium, Medium::Ethernet);
        assert_eq!(caps.max_transmission_unit, FRAME_MAX);
        assert_eq!(caps.max_burst_size, Some(NET_BUFS));
        check_invariants(&nf);
    }

    #[test]
    fn refuses_used_rings() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (mut tf, _tb) = tbuf.split_req().unwrap();
        let (rf, _rb) = rbuf.split_req().unwrap();
        tf.push_request(&TxRequest::default()).unwrap();
        assert_eq!(
            Netfront::new(tf, rf, CheckedPages::new()).err(),
            Some(NetError::Protocol("ring not fresh"))
        );
    }

    #[test]
    fn transmit_fills_tx_buffers_until_none_is_free() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (tf, mut tb) = tbuf.split_req().unwrap();
        let (rf, _rb) = rbuf.split_req().unwrap();
        let pages = CheckedPages::new();
        let mut nf = Netfront::new(tf, rf, pages.clone()).unwrap();
        for i in 0..NET_BUFS {
            assert!(send(&mut nf, &frame(i as u8, 60 + i)));
        }
        assert!(!send(&mut nf, &frame(0, 60)), "no free buffer: no token");
        assert!(nf.flush());
        let reqs = drain(&mut tb);
        assert_eq!(reqs.len(), NET_BUFS);
        for (i, r) in reqs.iter().enumerate() {
            assert_eq!((r.flags, usize::from(r.len)), (0, 60 + i));
            assert_eq!(
                pages.peek(tx_page(usize::from(r.id)), 60 + i),
                frame(i as u8, 60 + i)
            );
        }
        // Answer two, one with an error: both buffers are free again.
        tx_rsp(&mut tb, reqs[3].id, NetStatus::Okay);
        tx_rsp(&mut tb, reqs[0].id, NetStatus::Dropped);
        assert!(tb.push_responses_and_check_notify());
        nf.poll().unwrap();
        assert_eq!(nf.tx_free(), 2);
        let s = nf.stats();
        assert_eq!(
            (s.tx_frames, s.tx_errors, s.tx_dropped),
            (NET_BUFS as u64, 1, 0)
        );
        assert_eq!(
            s.tx_bytes,
            (0..NET_BUFS as u64).map(|i| 60 + i).sum::<u64>()
        );
        check_invariants(&nf);
    }

    #[test]
    fn bad_frame_lengths_are_dropped() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (tf, mut tb) = tbuf.split_req().unwrap();
        let (rf, _rb) = rbuf.split_req().unwrap();
        let mut nf = Netfront::new(tf, rf, CheckedPages::new()).unwrap();
        let mut called = 0;
        for len in [0, FRAME_MIN - 1, FRAME_MAX + 1, 9000] {
            let t = nf.transmit(Instant::ZERO).unwrap();
            t.consume(len, |b| {
                assert_eq!(b.len(), len);
                called += 1;
            });
        }
        assert_eq!(called, 4);
        assert_eq!(nf.stats().tx_dropped, 4);
        assert_eq!(nf.tx_free(), NET_BUFS);
        nf.flush();
        assert!(drain(&mut tb).is_empty());
    }

    #[test]
    fn receive_copies_out_and_reposts() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (tf, _tb) = tbuf.split_req().unwrap();
        let (rf, mut rb) = rbuf.split_req().unwrap();
        let pages = CheckedPages::new();
        let mut nf = Netfront::new(tf, rf, pages.clone()).unwrap();
        nf.flush();
        assert_eq!(drain(&mut rb).len(), NET_BUFS);
        // Good frames in buffers 7 and 2, bad ones in 3, 4 and 5.
        pages.poke(rx_page(7), &frame(7, 100));
        pages.poke(rx_page(2), &frame(2, FRAME_MAX));
        rx_rsp(&mut rb, 7, 100, NetStatus::Okay);
        rx_rsp(&mut rb, 3, 0, NetStatus::Error);
        rx_rsp(&mut rb, 4, FRAME_MAX as u16 + 1, NetStatus::Okay);
        rx_rsp(&mut rb, 5, 60, NetStatus::Unknown(7));
        rx_rsp(&mut rb, 2, FRAME_MAX as u16, NetStatus::Okay);
        assert!(rb.push_responses_and_check_notify());
        nf.poll().unwrap();
        assert_eq!(nf.rx_queued(), 2);
        assert_eq!(nf.stats().rx_errors, 3);
        assert_eq!(nf.final_check(), Ok(true), "frames are waiting");
        // Scribbling over the page after the copy changes nothing.
        let (rx, _tx) = nf.receive(Instant::ZERO).unwrap();
        pages.poke(rx_page(7), &[0xee; 100]);
        assert_eq!(rx.consume(|f| f.to_vec()), frame(7, 100));
        assert_eq!(recv_all(&mut nf), vec![frame(2, FRAME_MAX)]);
        check_invariants(&nf);
        // The three bad buffers and the two consumed ones are re-posted, in order.
        nf.flush();
        let ids: Vec<u16> = drain(&mut rb).iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![3, 4, 5, 7, 2]);
        let s = nf.stats();
        assert_eq!((s.rx_frames, s.rx_bytes), (2, 100 + FRAME_MAX as u64));
        // Nothing left: arm and sleep; the next response notifies.
        assert_eq!(nf.final_check(), Ok(false));
        rx_rsp(&mut rb, 3, 60, NetStatus::Okay);
        assert!(rb.push_responses_and_check_notify());
        assert_eq!(nf.final_check(), Ok(true));
    }

    #[test]
    fn large_frames_span_buffers_with_sg() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (tf, mut tb) = tbuf.split_req().unwrap();
        let (rf, mut rb) = rbuf.split_req().unwrap();
        let pages = CheckedPages::new();
        let mut nf = Netfront::new(tf, rf, pages.clone()).unwrap().with_sg(true);
        assert_eq!(nf.capabilities().max_transmission_unit, MTU_SG + 14);
        assert_eq!(nf.frame_max(), FRAME_MAX_SG);
        nf.flush();
        drain(&mut rb);
        // TX: 9000 bytes in three buffers, "more" on the first two.
        let f = frame(5, 9000);
        assert!(send(&mut nf, &f));
        nf.flush();
        let reqs = drain(&mut tb);
        let shape: Vec<_> = reqs.iter().map(|r| (r.len, r.flags)).collect();
        assert_eq!(shape, vec![(4096, TXF_MORE), (4096, TXF_MORE), (808, 0)]);
        let mut sent = Vec::new();
        for r in &reqs {
            sent.extend(pages.peek(tx_page(usize::from(r.id)), usize::from(r.len)));
        }
        assert_eq!(sent, f);
        // Too few free buffers for a largest frame: no token.
        while send(&mut nf, &frame(0, 60)) {}
        assert!(nf.tx_free() < 4);
        // RX: a frame in buffers 6, 1 (4096 + 20 bytes), responses published apart.
        pages.poke(rx_page(6), &f[..4096]);
        pages.poke(rx_page(1), &f[4096..4116]);
        let more = |rb: &mut RxBack<'_>, id, len, flags| {
            rb.push_response(&RxResponse {
                id,
                len,
                status: 0,
                flags,
            })
            .unwrap();
            rb.push_responses_and_check_notify();
        };
        more(&mut rb, 6, 4096, RXF_MORE);
        nf.poll().unwrap();
        assert_eq!(nf.rx_queued(), 0, "half a frame is not queued");
        check_invariants(&nf);
        more(&mut rb, 1, 20, 0);
        nf.poll().unwrap();
        assert_eq!(recv_all(&mut nf), vec![f[..4116].to_vec()]);
        check_invariants(&nf);
        // A bad chain (short fragment with "more") re-posts every buffer of it.
        more(&mut rb, 2, 4096, RXF_MORE);
        more(&mut rb, 3, 100, RXF_MORE);
        nf.poll().unwrap();
        assert_eq!(nf.stats().rx_errors, 1);
        assert_eq!(nf.rx_queued(), 0);
        check_invariants(&nf);
    }

    #[test]
    fn reply_token_drops_without_a_free_tx_buffer() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (tf, _tb) = tbuf.split_req().unwrap();
        let (rf, mut rb) = rbuf.split_req().unwrap();
        let mut nf = Netfront::new(tf, rf, CheckedPages::new()).unwrap();
        while send(&mut nf, &frame(0, 60)) {}
        nf.flush();
        drain(&mut rb);
        rx_rsp(&mut rb, 0, 60, NetStatus::Okay);
        rb.push_responses_and_check_notify();
        nf.poll().unwrap();
        let (rx, tx) = nf.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|f| f.len()), 60);
        tx.consume(60, |b| b.fill(1));
        assert_eq!(nf.stats().tx_dropped, 1);
        check_invariants(&nf);
    }

    #[test]
    fn responses_for_unknown_buffers_are_protocol_errors() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (tf, mut tb) = tbuf.split_req().unwrap();
        let (rf, mut rb) = rbuf.split_req().unwrap();
        let mut nf = Netfront::new(tf, rf, CheckedPages::new()).unwrap();
        assert!(send(&mut nf, &frame(0, 60)));
        assert!(send(&mut nf, &frame(0, 60)));
        nf.flush();
        let reqs = drain(&mut tb);
        drain(&mut rb);
        // TX: the same buffer twice.
        tx_rsp(&mut tb, reqs[0].id, NetStatus::Okay);
        tx_rsp(&mut tb, reqs[0].id, NetStatus::Okay);
        tb.push_responses_and_check_notify();
        assert!(matches!(nf.poll(), Err(NetError::Protocol(_))));
        // RX: a buffer out of range, then one twice.
        rx_rsp(&mut rb, NET_BUFS as u16, 60, NetStatus::Okay);
        rx_rsp(&mut rb, 1, 60, NetStatus::Okay);
        rx_rsp(&mut rb, 1, 60, NetStatus::Okay);
        rb.push_responses_and_check_notify();
        assert!(matches!(nf.poll(), Err(NetError::Protocol(_))));
        assert!(matches!(nf.poll(), Err(NetError::Protocol(_))));
        assert_eq!(nf.poll(), Ok(()));
        assert_eq!(nf.stats().protocol_errors, 3);
        assert_eq!(nf.rx_queued(), 1);
        check_invariants(&nf);
    }

    #[test]
    fn corrupt_indices_are_ring_errors() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (tf, _tb, ttamper) = split_req_tampered(&mut tbuf).unwrap();
        let (rf, _rb, rtamper) = split_req_tampered(&mut rbuf).unwrap();
        let mut nf = Netfront::new(tf, rf, CheckedPages::new()).unwrap();
        nf.flush();
        let rsp_prod = offset_of!(SringHeader, rsp_prod);
        // More RX responses than buffers posted.
        rtamper.store(rsp_prod, NET_BUFS as u32 + 1);
        assert!(matches!(nf.poll(), Err(NetError::Ring(_))));
        rtamper.store(rsp_prod, 0);
        // A TX response with nothing sent.
        ttamper.store(rsp_prod, 1);
        assert!(matches!(nf.poll(), Err(NetError::Ring(_))));
        assert!(matches!(nf.final_check(), Err(NetError::Ring(_))));
        ttamper.store(rsp_prod, 0);
        assert_eq!(nf.poll(), Ok(()));
        check_invariants(&nf);
    }

    /// One step of a hostile backend (or of the frontend under test).
    #[derive(Clone, Debug)]
    enum Op {
        TakeTx,
        TakeRx,
        RspTx(TxResponse),
        RspRx(RxResponse),
        Publish,
        PokeTx(usize, u32),
        PokeRx(usize, u32),
        PokePage(usize, u8),
        Send(usize),
        Receive,
        Poll,
        Flush,
        FinalCheck,
    }

    fn header_word() -> impl Strategy<Value = usize> {
        prop_oneof![
            Just(offset_of!(SringHeader, rsp_prod)),
            Just(offset_of!(SringHeader, req_event)),
            Just(offset_of!(SringHeader, req_prod)),
            Just(offset_of!(SringHeader, rsp_event)),
            (0..PAGE_SIZE / 4).prop_map(|w| w * 4),
        ]
    }

    fn index_value() -> impl Strategy<Value = u32> {
        prop_oneof![0u32..600, (u32::MAX - 600)..=u32::MAX, any::<u32>()]
    }

    fn op() -> impl Strategy<Value = Op> {
        let id = prop_oneof![0u16..40, any::<u16>()];
        let status = prop_oneof![Just(0i16), Just(-1), Just(-2), any::<i16>()];
        let len = prop_oneof![0u16..20, 50u16..70, 1500u16..1530, Just(4096), any::<u16>()];
        let tx = (id.clone(), status.clone(), any::<u32>())
            .prop_map(|(id, status, _pad)| TxResponse { id, status, _pad });
        let rx = (
            id,
            len,
            status,
            prop_oneof![Just(0u16), Just(RXF_MORE), any::<u16>()],
        )
            .prop_map(|(id, len, status, _pad)| RxResponse {
                id,
                len,
                status,
                flags: _pad,
            });
        prop_oneof![
            3 => Just(Op::TakeTx),
            3 => Just(Op::TakeRx),
            5 => tx.prop_map(Op::RspTx),
            5 => rx.prop_map(Op::RspRx),
            3 => Just(Op::Publish),
            1 => (header_word(), index_value()).prop_map(|(o, v)| Op::PokeTx(o, v)),
            1 => (header_word(), index_value()).prop_map(|(o, v)| Op::PokeRx(o, v)),
            1 => (0..NET_PAGES, any::<u8>()).prop_map(|(p, b)| Op::PokePage(p, b)),
            5 => prop_oneof![0usize..20, 20usize..1520, 1510usize..1600, 4000usize..17000]
                .prop_map(Op::Send),
            4 => Just(Op::Receive),
            4 => Just(Op::Poll),
            3 => Just(Op::Flush),
            1 => Just(Op::FinalCheck),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A hostile backend (responses with random ids, lengths and statuses,
        /// rewritten indices and slots, scribbled pages) never makes the frontend
        /// panic, touch a page it must not, hand smoltcp a frame of a bad length, or
        /// lose track of a buffer.
        #[test]
        fn hostile_backend(ops in proptest::collection::vec(op(), 1..200), sg in any::<bool>()) {
            let max = if sg { FRAME_MAX_SG } else { FRAME_MAX };
            let mut tbuf = RingBuffer::new(1);
            let mut rbuf = RingBuffer::new(1);
            let (tf, mut tb, ttamper) = split_req_tampered(&mut tbuf).unwrap();
            let (rf, mut rb, rtamper) = split_req_tampered(&mut rbuf).unwrap();
            let pages = CheckedPages::new();
            let mut nf = Netfront::new(tf, rf, pages.clone()).unwrap().with_sg(sg);
            for op in ops {
                match op {
                    Op::TakeTx => { let _ = tb.poll_request(); }
                    Op::TakeRx => { let _ = rb.poll_request(); }
                    Op::RspTx(r) => { let _ = tb.push_response(&r); }
                    Op::RspRx(r) => { let _ = rb.push_response(&r); }
                    Op::Publish => {
                        tb.push_responses_and_check_notify();
                        rb.push_responses_and_check_notify();
                    }
                    Op::PokeTx(o, v) => ttamper.store(o, v),
                    Op::PokeRx(o, v) => rtamper.store(o, v),
                    Op::PokePage(p, b) => pages.poke(p, &[b; 64]),
                    Op::Send(len) => {
                        let before = nf.stats();
                        let offered = nf.transmit(Instant::ZERO).map(|t| {
                            t.consume(len, |b| b.fill(len as u8))
                        });
                        let after = nf.stats();
                        if offered.is_some() {
                            let ok = (FRAME_MIN..=max).contains(&len);
                            prop_assert_eq!(after.tx_frames - before.tx_frames, ok as u64);
                            prop_assert_eq!(after.tx_dropped - before.tx_dropped, !ok as u64);
                        } else {
                            prop_assert_eq!(nf.tx_free(), 0);
                        }
                    }
                    Op::Receive => {
                        for f in recv_all(&mut nf) {
                            prop_assert!((FRAME_MIN..=max).contains(&f.len()));
                        }
                    }
                    Op::Poll => { let _ = nf.poll(); }
                    Op::Flush => { nf.flush(); }
                    Op::FinalCheck => { let _ = nf.final_check(); }
                }
                check_invariants(&nf);
            }
        }
    }
}
