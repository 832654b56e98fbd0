//! The backend's core of one virtual interface (vif): the netif protocol
//! ([`parapet_abi::netif`]) over two rings and the frontend's buffer pages, as pure
//! code. The driver domain's glue maps the pages, runs the event channel and moves
//! frames between vifs and the NIC (the switch); this module only speaks the
//! protocol, and is tested on the host against hostile frontends.
//!
//! # Use
//!
//! The glue maps the control page, copies it out and checks it
//! (`NetifControl::check`), maps both ring pages and the `2 * NET_BUFS` buffer pages,
//! attaches the two [`BackRing`]s (the frontend initialised them) and builds a
//! [`VifBackend`] with a [`FramePages`] over the mapped buffers, indexed as the
//! protocol says (TX buffer `i` is page `i`, RX buffer `i` page `NET_BUFS + i`). Then,
//! on each event from the frontend (and once right after connecting):
//!
//! 1. [`VifBackend::poll_tx`] takes up to one ring's worth of TX requests and hands
//!    each valid frame to `deliver` as a [`TxFrame`]: its header copied into private
//!    memory, the rest still in the frontend's buffers. `deliver` decides from the
//!    header (the switch) and copies the frame **once**, straight to where it goes:
//!    another vif's RX buffers with [`VifBackend::deliver_rx_from`], the NIC with
//!    [`TxFrame::read`]. Frames from the NIC go in with [`VifBackend::deliver_rx`].
//!    The TX buffers are answered after `deliver` returns.
//! 2. [`VifBackend::flush`] publishes the responses; notify the frontend if it says so.
//! 3. Before sleeping, [`VifBackend::final_check`]: `Ok(true)` means more TX requests
//!    are waiting (for instance after a full batch), so serve the vif again.
//!
//! # Rules
//!
//! * Work is bounded: one `poll_tx` consumes at most the ring's size of requests, so
//!   a flooding frontend cannot starve the other vifs.
//! * Every request is answered exactly once; bad ones at once, with
//!   [`NetStatus::Error`], and counted in [`VifStats::malformed`]. After more than
//!   [`HOSTILE_MALFORMED`] of them, [`VifBackend::is_hostile`] says to disconnect.
//! * RX requests are taken lazily: when a frame is to be delivered and no posted
//!   buffer is left, all new RX requests are taken at once. The posted ids wait in a
//!   FIFO of [`NET_BUFS`] (an id already waiting there cannot be posted again), so the
//!   oldest posted buffer is filled first. Without a posted buffer the frame is dropped (counted
//!   in [`VifStats::rx_dropped`]): the backend never queues frames for a vif, and so
//!   never asks to be woken for RX requests.
//! * Large frames (`feature-sg`, see [`parapet_abi::netif`]): a vif built
//!   [`VifBackend::with_sg`] takes and delivers frames of up to [`FRAME_MAX_SG`]
//!   bytes in up to `MAX_FRAGS` buffers; otherwise [`FRAME_MAX`] in one. The
//!   fragments of a TX frame are decoded by [`Chain`] (a bad chain is answered
//!   `Error` fragment by fragment, counted once); a frame not yet complete when the
//!   ring runs dry waits for its next fragments. A frame longer than the vif takes
//!   is not delivered ([`VifStats::rx_too_long`]).
//! * A [`VifError::Ring`] means the frontend corrupted a ring index: disconnect the
//!   vif ([`VifError::is_peer_fault`]). The core stays usable (no panic), but
//!   the ring makes no progress.
//!
//! `frame` holds [`TxFrame`] and the FIFO of posted RX buffers; `tests` and
//! `props` (a hostile frontend, property-tested) test the core.

use parapet_abi::netif::{
    rx_page, tx_page, Chain, FramePages, NetStatus, RxRequest, RxResponse, TxRequest, TxResponse,
    FRAME_MAX, FRAME_MAX_SG, FRAME_MIN, MAX_FRAGS, NET_BUFS, RXF_MORE, TXF_MORE,
};
use parapet_abi::ring::PAGE_SIZE;
use parapet_abi::ring::{BackRing, RingError};

mod frame;

use frame::PostedFifo;
pub use frame::TxFrame;

/// More malformed requests than this and [`VifBackend::is_hostile`] is true.
pub const HOSTILE_MALFORMED: u64 = 64;

/// What went wrong on a vif.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VifError {
    /// The frontend broke a ring's index protocol: disconnect the vif.
    Ring(RingError),
    /// [`VifBackend::deliver_rx`] was given a frame of this length, outside
    /// `FRAME_MIN..=FRAME_MAX_SG` (the caller's fault, not the frontend's).
    FrameLen(usize),
}

impl VifError {
    /// Whether the frontend caused the error (and the vif should be disconnected).
    pub fn is_peer_fault(&self) -> bool {
        matches!(self, VifError::Ring(_))
    }
}

impl From<RingError> for VifError {
    fn from(e: RingError) -> Self {
        VifError::Ring(e)
    }
}

impl core::fmt::Display for VifError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VifError::Ring(e) => write!(f, "vif ring: {e}"),
            VifError::FrameLen(n) => write!(f, "frame of {n} bytes cannot be delivered"),
        }
    }
}

impl core::error::Error for VifError {}

/// Counters of one vif, from the backend's side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VifStats {
    /// Frames taken from the frontend's TX ring and delivered.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Frames copied into the frontend's RX buffers.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames for the frontend dropped because it had no RX buffer posted (or not
    /// enough for all the frame's fragments).
    pub rx_dropped: u64,
    /// Frames for the frontend dropped because they were longer than it takes
    /// (large frames not negotiated).
    pub rx_too_long: u64,
    /// Malformed requests (bad id, length, flags, or an RX buffer posted twice),
    /// answered with `NetStatus::Error`.
    pub malformed: u64,
    /// Times [`VifBackend::flush`] said the frontend must be notified.
    pub notifications: u64,
}

impl core::ops::AddAssign for VifStats {
    /// Adds another connection's counters (a vif's totals over reconnections).
    fn add_assign(&mut self, o: Self) {
        let VifStats {
            tx_frames,
            tx_bytes,
            rx_frames,
            rx_bytes,
            rx_dropped,
            rx_too_long,
            malformed,
            notifications,
        } = o;
        self.tx_frames += tx_frames;
        self.tx_bytes += tx_bytes;
        self.rx_frames += rx_frames;
        self.rx_bytes += rx_bytes;
        self.rx_dropped += rx_dropped;
        self.rx_too_long += rx_too_long;
        self.malformed += malformed;
        self.notifications += notifications;
    }
}

/// The backend's end of one vif: both rings, the frontend's buffer pages (through
/// `P`), the posted RX buffers and counters. See the module docs.
pub struct VifBackend<'a, P: FramePages> {
    tx: BackRing<'a, TxRequest, TxResponse>,
    rx: BackRing<'a, RxRequest, RxResponse>,
    pages: P,
    posted: PostedFifo,
    stats: VifStats,
    /// [`FRAME_MAX`], or [`FRAME_MAX_SG`] with large frames.
    frame_max: usize,
    /// The fragments of a TX frame taken so far (waiting for the rest).
    pending: Chain,
}

impl<P: FramePages> core::fmt::Debug for VifBackend<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VifBackend")
            .field("tx", &self.tx)
            .field("rx", &self.rx)
            .field("posted", &self.posted.len)
            .field("frame_max", &self.frame_max)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<'a, P: FramePages> VifBackend<'a, P> {
    /// A vif over rings the backend has attached to and the frontend's buffer pages,
    /// with one-buffer frames of at most [`FRAME_MAX`] bytes.
    pub fn new(
        tx: BackRing<'a, TxRequest, TxResponse>,
        rx: BackRing<'a, RxRequest, RxResponse>,
        pages: P,
    ) -> Self {
        VifBackend {
            tx,
            rx,
            pages,
            posted: PostedFifo::new(),
            stats: VifStats::default(),
            frame_max: FRAME_MAX,
            pending: Chain::new(),
        }
    }

    /// With `sg` (the frontend wrote `feature-sg = 1`): frames of up to
    /// [`FRAME_MAX_SG`] bytes in several buffers, both ways.
    pub fn with_sg(mut self, sg: bool) -> Self {
        self.frame_max = if sg { FRAME_MAX_SG } else { FRAME_MAX };
        self
    }

    /// The longest frame this vif sends and takes.
    pub fn frame_max(&self) -> usize {
        self.frame_max
    }

    /// The counters.
    pub fn stats(&self) -> VifStats {
        self.stats
    }

    /// RX buffers the backend has taken from the ring and not yet filled.
    pub fn rx_posted(&self) -> usize {
        self.posted.len
    }

    /// The buffer pages.
    pub fn pages(&self) -> &P {
        &self.pages
    }

    /// Gives the buffer pages back (to unmap them), dropping the rings.
    pub fn into_pages(self) -> P {
        self.pages
    }

    /// Whether the frontend sent more than [`HOSTILE_MALFORMED`] malformed requests:
    /// policy says disconnect it.
    pub fn is_hostile(&self) -> bool {
        self.stats.malformed > HOSTILE_MALFORMED
    }

    fn answer_tx(&mut self, id: u16, status: NetStatus) -> Result<(), VifError> {
        self.tx.push_response(&TxResponse {
            id,
            status: status.raw(),
            _pad: 0,
        })?;
        Ok(())
    }

    /// Takes up to one ring's worth of TX requests. For each complete, valid frame
    /// (ids `< NET_BUFS` and not repeated in the frame, fragments as [`Chain`]
    /// says, flags at most [`TXF_MORE`]) copies the header into private memory,
    /// calls `deliver` with the frame, then answers its fragments `Okay`; a malformed
    /// request is answered `Error` together with the fragments before it. Returns the
    /// number of requests consumed: if it is the ring size, more may be waiting (see
    /// [`VifBackend::final_check`]). The responses are published by
    /// [`VifBackend::flush`].
    pub fn poll_tx(&mut self, mut deliver: impl FnMut(&TxFrame<'_, P>)) -> Result<usize, VifError> {
        let budget = self.tx.size();
        let mut done = 0;
        while done < budget as usize {
            // A copy of the slot: nothing below re-reads shared memory.
            let Some(req) = self.tx.poll_request()? else {
                break;
            };
            done += 1;
            let valid = usize::from(req.id) < NET_BUFS
                && req.flags & !TXF_MORE == 0
                && !self.pending.ids().contains(&req.id);
            let more = req.flags & TXF_MORE != 0;
            let pushed = if valid {
                self.pending
                    .push(req.id, usize::from(req.len), more, self.frame_max)
                    .ok()
            } else {
                None
            };
            match pushed {
                Some(false) => {}
                Some(true) => {
                    let chain = self.pending;
                    self.pending.clear();
                    let mut header = [0u8; FRAME_MIN];
                    self.pages
                        .read(tx_page(usize::from(chain.ids()[0])), 0, &mut header);
                    deliver(&TxFrame {
                        pages: &self.pages,
                        chain,
                        header,
                    });
                    self.stats.tx_frames += 1;
                    self.stats.tx_bytes += chain.len() as u64;
                    for &id in chain.ids() {
                        self.answer_tx(id, NetStatus::Okay)?;
                    }
                }
                None => {
                    self.stats.malformed += 1;
                    let chain = self.pending;
                    self.pending.clear();
                    for &id in chain.ids() {
                        self.answer_tx(id, NetStatus::Error)?;
                    }
                    self.answer_tx(req.id, NetStatus::Error)?;
                }
            }
        }
        Ok(done)
    }

    /// Takes every new RX request (at most one ring's worth) into the FIFO of posted
    /// buffers; answers malformed ones at once.
    fn pull_rx_requests(&mut self) -> Result<(), VifError> {
        let budget = self.rx.size();
        for _ in 0..budget {
            let Some(req) = self.rx.poll_request()? else {
                break;
            };
            if self.posted.push(usize::from(req.id)) {
                continue;
            }
            // Out of range, or already posted (a buffer cannot be filled twice).
            self.stats.malformed += 1;
            self.rx.push_response(&RxResponse {
                id: req.id,
                len: 0,
                status: NetStatus::Error.raw(),
                flags: 0,
            })?;
        }
        Ok(())
    }

    /// Checks a frame of `len` bytes for delivery and takes the posted RX buffers
    /// for its fragments, oldest first: `None` (counted) if it is too long for the
    /// frontend or not enough buffers are posted.
    fn take_rx(&mut self, len: usize) -> Result<Option<([usize; MAX_FRAGS], usize)>, VifError> {
        if !(FRAME_MIN..=FRAME_MAX_SG).contains(&len) {
            return Err(VifError::FrameLen(len));
        }
        if len > self.frame_max {
            self.stats.rx_too_long += 1;
            return Ok(None);
        }
        let frags = Chain::frags(len);
        if self.posted.len < frags {
            self.pull_rx_requests()?;
        }
        if self.posted.len < frags {
            self.stats.rx_dropped += 1;
            return Ok(None);
        }
        let mut ids = [0usize; MAX_FRAGS];
        for id in ids.iter_mut().take(frags) {
            // `posted.len >= frags`: there is one.
            *id = self.posted.pop().unwrap_or(0);
        }
        Ok(Some((ids, frags)))
    }

    /// Answers the RX buffers `ids` that now hold a frame of `len` bytes.
    fn answer_rx(&mut self, ids: &[usize], len: usize) -> Result<(), VifError> {
        for (i, &id) in ids.iter().enumerate() {
            let last = i + 1 == ids.len();
            // Each id came from a consumed request that is not answered yet, so
            // there is a slot for the response.
            self.rx.push_response(&RxResponse {
                id: id as u16,
                len: Chain::frag_len(len, i) as u16,
                status: NetStatus::Okay.raw(),
                flags: if last { 0 } else { RXF_MORE },
            })?;
        }
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += len as u64;
        Ok(())
    }

    /// Copies `frame` into the oldest RX buffers the frontend posted (one per
    /// fragment) and answers them. `Ok(false)` if the frontend has too few buffers
    /// posted, or does not take frames this long: the frame is dropped (and counted).
    /// The responses are published by [`VifBackend::flush`].
    pub fn deliver_rx(&mut self, frame: &[u8]) -> Result<bool, VifError> {
        let len = frame.len();
        let Some((ids, frags)) = self.take_rx(len)? else {
            return Ok(false);
        };
        for (i, &id) in ids[..frags].iter().enumerate() {
            let part = &frame[i * PAGE_SIZE..][..Chain::frag_len(len, i)];
            self.pages.write(rx_page(id), 0, part);
        }
        self.answer_rx(&ids[..frags], len)?;
        Ok(true)
    }

    /// Like [`VifBackend::deliver_rx`] for a frame another vif sent: the header from
    /// its private copy, the rest copied once, straight from the sender's TX buffers
    /// to this frontend's RX buffers ([`FramePages::copy_from`]).
    pub fn deliver_rx_from(&mut self, src: &TxFrame<'_, P>) -> Result<bool, VifError> {
        let len = src.len();
        let Some((ids, frags)) = self.take_rx(len)? else {
            return Ok(false);
        };
        self.pages.write(rx_page(ids[0]), 0, &src.header);
        for (i, &id) in ids[..frags].iter().enumerate() {
            let start = if i == 0 { FRAME_MIN } else { 0 };
            let n = Chain::frag_len(len, i) - start;
            let from = tx_page(usize::from(src.chain.ids()[i]));
            self.pages.copy_from(rx_page(id), src.pages, from, start, n);
        }
        self.answer_rx(&ids[..frags], len)?;
        Ok(true)
    }

    /// Publishes the responses of both rings; true if the frontend must be notified.
    pub fn flush(&mut self) -> bool {
        let tx = self.tx.push_responses_and_check_notify();
        let rx = self.rx.push_responses_and_check_notify();
        if tx || rx {
            self.stats.notifications += 1;
        }
        tx || rx
    }

    /// Before sleeping (after [`VifBackend::flush`]): true if TX requests are waiting;
    /// otherwise asks to be notified of the next one and checks again. Sleep only on
    /// `Ok(false)`. RX requests never wake the backend (see the module docs).
    pub fn final_check(&mut self) -> Result<bool, VifError> {
        Ok(self.tx.final_check_for_requests()?)
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
