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
//!
//! `paths` holds the transmit and receive halves and their buffers, `device`
//! smoltcp's tokens and [`Device`] impl; `tests` and `props` (a hostile
//! backend, property-tested) test the core.

extern crate alloc;

use parapet_abi::netif::{
    BufSet, Chain, FramePages, NetStatus, RxRequest, RxResponse, TxRequest, TxResponse, FRAME_MAX,
    FRAME_MAX_SG, NET_BUFS, RXF_MORE,
};
#[cfg(doc)]
use parapet_abi::netif::{FRAME_MIN, MTU_SG, TXF_MORE};
use parapet_abi::ring::{FrontRing, RingError};
#[cfg(doc)]
use smoltcp::phy::Device;

mod device;
mod paths;

pub use device::{NetRxToken, NetTxToken};
use paths::{FrameBuf, RxPath, RxQueue, TxPath};

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

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
