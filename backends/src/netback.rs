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

use parapet_abi::netif::{
    rx_page, tx_page, BufSet, Chain, FramePages, NetStatus, RxRequest, RxResponse, TxRequest,
    TxResponse, FRAME_MAX, FRAME_MAX_SG, FRAME_MIN, MAX_FRAGS, NET_BUFS, RXF_MORE, TXF_MORE,
};
use parapet_abi::ring::PAGE_SIZE;
use parapet_abi::ring::{BackRing, RingError};

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

/// The posted RX buffer ids, oldest first; each id at most once.
#[derive(Debug)]
struct PostedFifo {
    ids: [u8; NET_BUFS],
    head: usize,
    len: usize,
    set: BufSet,
}

impl PostedFifo {
    const fn new() -> Self {
        PostedFifo {
            ids: [0; NET_BUFS],
            head: 0,
            len: 0,
            set: BufSet::EMPTY,
        }
    }

    /// Adds `id`; false if it is out of range or already posted.
    fn push(&mut self, id: usize) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        // At most NET_BUFS distinct ids are in the set, so there is room.
        debug_assert!(self.len < NET_BUFS);
        self.ids[(self.head + self.len) % NET_BUFS] = id as u8;
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<usize> {
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
/// [`VifBackend::poll_tx`] answers them, after `deliver` returns).
pub struct TxFrame<'t, P: FramePages> {
    pages: &'t P,
    chain: Chain,
    header: [u8; FRAME_MIN],
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
mod tests {
    use super::*;
    use core::mem::offset_of;
    use parapet_abi::netif::{split_req_tampered, RING_SLOTS};
    use parapet_abi::ring::{RingBuffer, SringHeader, PAGE_SIZE};
    use proptest::prelude::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Buffer pages as the backend may use them: it only ever reads TX buffers and
    /// writes RX buffers, within one page. Anything else fails the test.
    #[derive(Clone, Default)]
    struct CheckedPages(Rc<RefCell<Vec<u8>>>);

    impl CheckedPages {
        fn new() -> Self {
            CheckedPages(Rc::new(RefCell::new(vec![0; 2 * NET_BUFS * PAGE_SIZE])))
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
            assert!(page < NET_BUFS, "backend read page {page}: not a TX buffer");
            assert!(offset + out.len() <= PAGE_SIZE, "read past the page");
            out.copy_from_slice(&self.0.borrow()[page * PAGE_SIZE + offset..][..out.len()]);
        }
        fn write(&mut self, page: usize, offset: usize, data: &[u8]) {
            assert!(
                (NET_BUFS..2 * NET_BUFS).contains(&page),
                "backend wrote page {page}: not an RX buffer"
            );
            assert!(offset + data.len() <= PAGE_SIZE, "write past the page");
            self.0.borrow_mut()[page * PAGE_SIZE + offset..][..data.len()].copy_from_slice(data);
        }
    }

    /// The whole frame, through [`TxFrame::read`].
    fn bytes(f: &TxFrame<'_, CheckedPages>) -> Vec<u8> {
        let mut v = vec![0; f.len()];
        f.read(0, &mut v);
        v
    }

    fn frame(seed: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
    }

    fn tx_req(id: u16, len: u16) -> TxRequest {
        TxRequest {
            id,
            len,
            flags: 0,
            _pad: 0,
        }
    }

    fn rx_req(id: u16) -> RxRequest {
        RxRequest { id, _pad: [0; 3] }
    }

    #[test]
    fn stats_add_up_field_by_field() {
        let one = VifStats {
            tx_frames: 1,
            tx_bytes: 2,
            rx_frames: 3,
            rx_bytes: 4,
            rx_dropped: 5,
            rx_too_long: 8,
            malformed: 6,
            notifications: 7,
        };
        let mut sum = one;
        sum += one;
        assert_eq!(
            sum,
            VifStats {
                tx_frames: 2,
                tx_bytes: 4,
                rx_frames: 6,
                rx_bytes: 8,
                rx_dropped: 10,
                rx_too_long: 16,
                malformed: 12,
                notifications: 14,
            }
        );
    }

    #[test]
    fn tx_frames_are_delivered_and_answered() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (mut tf, tb) = tbuf.split_req::<TxRequest, TxResponse>().unwrap();
        let (_rf, rb) = rbuf.split_req::<RxRequest, RxResponse>().unwrap();
        let pages = CheckedPages::new();
        let mut vif = VifBackend::new(tb, rb, pages.clone());
        assert_eq!(tf.size(), RING_SLOTS);

        pages.poke(tx_page(3), &frame(1, 60));
        pages.poke(tx_page(31), &frame(2, FRAME_MAX));
        tf.push_request(&tx_req(3, 60)).unwrap();
        tf.push_request(&tx_req(31, FRAME_MAX as u16)).unwrap();
        tf.push_request(&tx_req(NET_BUFS as u16, 60)).unwrap(); // bad id
        tf.push_request(&tx_req(0, 13)).unwrap(); // too short
        tf.push_request(&tx_req(0, FRAME_MAX as u16 + 1)).unwrap(); // too long
        tf.push_request(&tx_req(0, u16::MAX)).unwrap(); // past the page
        tf.push_request(&TxRequest {
            flags: 1,
            ..tx_req(3, 60)
        })
        .unwrap(); // unknown flags
        assert!(tf.push_requests_and_check_notify());

        let mut got = Vec::new();
        assert_eq!(vif.poll_tx(|f| got.push(bytes(f))), Ok(7));
        assert_eq!(got, vec![frame(1, 60), frame(2, FRAME_MAX)]);
        assert!(vif.flush());
        let statuses: Vec<_> = std::iter::from_fn(|| tf.poll_response().unwrap())
            .map(|r| (r.id, NetStatus::from(r.status)))
            .collect();
        use NetStatus::{Error, Okay};
        assert_eq!(
            statuses,
            vec![
                (3, Okay),
                (31, Okay),
                (NET_BUFS as u16, Error),
                (0, Error),
                (0, Error),
                (0, Error),
                (3, Error)
            ]
        );
        let s = vif.stats();
        assert_eq!((s.tx_frames, s.tx_bytes, s.malformed), (2, 60 + 1514, 5));
        assert!(!vif.is_hostile());
        // Nothing waiting: arms the event and sleeps; the next request notifies.
        assert_eq!(vif.final_check(), Ok(false));
        tf.push_request(&tx_req(3, 60)).unwrap();
        assert!(tf.push_requests_and_check_notify());
        assert_eq!(vif.final_check(), Ok(true));
    }

    #[test]
    fn rx_fills_posted_buffers_in_order_and_drops_without_one() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (_tf, tb) = tbuf.split_req::<TxRequest, TxResponse>().unwrap();
        let (mut rf, rb) = rbuf.split_req::<RxRequest, RxResponse>().unwrap();
        let pages = CheckedPages::new();
        let mut vif = VifBackend::new(tb, rb, pages.clone());

        // Nothing posted: dropped.
        assert_eq!(vif.deliver_rx(&frame(0, 60)), Ok(false));
        assert_eq!(vif.stats().rx_dropped, 1);
        // Bad frames from the switch are the caller's error.
        assert_eq!(vif.deliver_rx(&[0; 13]), Err(VifError::FrameLen(13)));
        assert_eq!(
            vif.deliver_rx(&[0; FRAME_MAX_SG + 1]),
            Err(VifError::FrameLen(FRAME_MAX_SG + 1))
        );
        assert!(!VifError::FrameLen(0).is_peer_fault());
        // Longer than this vif takes (no large frames): dropped, counted apart.
        assert_eq!(vif.deliver_rx(&[0; FRAME_MAX + 1]), Ok(false));
        assert_eq!(vif.stats().rx_too_long, 1);

        for id in [5u16, NET_BUFS as u16 + 8, 7, 5, 9] {
            rf.push_request(&rx_req(id)).unwrap();
        }
        rf.push_requests_and_check_notify();
        for (i, want) in [5usize, 7, 9].into_iter().enumerate() {
            assert_eq!(vif.deliver_rx(&frame(i as u8, 100 + i)), Ok(true));
            assert_eq!(pages.peek(rx_page(want), 100 + i), frame(i as u8, 100 + i));
        }
        assert_eq!(vif.deliver_rx(&frame(9, 60)), Ok(false));
        assert!(vif.flush());
        let rsps: Vec<_> = std::iter::from_fn(|| rf.poll_response().unwrap())
            .map(|r| (r.id, r.len, NetStatus::from(r.status)))
            .collect();
        use NetStatus::{Error, Okay};
        // All five requests were taken at the first delivery: the bad id and the
        // second post of buffer 5 (still posted) were answered at once.
        assert_eq!(
            rsps,
            vec![
                (NET_BUFS as u16 + 8, 0, Error),
                (5, 0, Error),
                (5, 100, Okay),
                (7, 101, Okay),
                (9, 102, Okay)
            ]
        );
        let s = vif.stats();
        assert_eq!((s.rx_frames, s.rx_dropped, s.malformed), (3, 2, 2));
        // Reposting works.
        rf.push_request(&rx_req(5)).unwrap();
        rf.push_requests_and_check_notify();
        assert_eq!(vif.deliver_rx(&frame(1, 14)), Ok(true));
        assert_eq!(vif.rx_posted(), 0);
    }

    #[test]
    fn large_frames_span_buffers_both_ways_once_negotiated() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (mut tf, tb) = tbuf.split_req::<TxRequest, TxResponse>().unwrap();
        let (mut rf, rb) = rbuf.split_req::<RxRequest, RxResponse>().unwrap();
        let pages = CheckedPages::new();
        let mut vif = VifBackend::new(tb, rb, pages.clone()).with_sg(true);
        assert_eq!(vif.frame_max(), FRAME_MAX_SG);
        // TX: a 9000-byte frame in buffers 4, 2, 7.
        let big = frame(3, 9000);
        for (k, id) in [4u16, 2, 7].into_iter().enumerate() {
            let part = &big[k * PAGE_SIZE..][..Chain::frag_len(9000, k)];
            pages.poke(tx_page(usize::from(id)), part);
            let more = k < 2;
            tf.push_request(&TxRequest {
                id,
                len: part.len() as u16,
                flags: if more { TXF_MORE } else { 0 },
                _pad: 0,
            })
            .unwrap();
            // Published fragment by fragment: the frame waits for its last one.
            tf.push_requests_and_check_notify();
            let mut got = Vec::new();
            assert_eq!(vif.poll_tx(|f| got.push(bytes(f))), Ok(1));
            if more {
                assert!(got.is_empty());
            } else {
                assert_eq!(got, vec![big.clone()]);
            }
        }
        vif.flush();
        let ids: Vec<_> = std::iter::from_fn(|| tf.poll_response().unwrap())
            .map(|r| (r.id, NetStatus::from(r.status)))
            .collect();
        assert_eq!(
            ids,
            vec![
                (4, NetStatus::Okay),
                (2, NetStatus::Okay),
                (7, NetStatus::Okay)
            ]
        );
        // A repeated id inside one frame, and a "more" on a short fragment: refused,
        // with the fragments before them.
        pages.poke(tx_page(1), &frame(0, PAGE_SIZE));
        for r in [
            TxRequest {
                id: 1,
                len: PAGE_SIZE as u16,
                flags: TXF_MORE,
                _pad: 0,
            },
            TxRequest {
                id: 1,
                len: 60,
                flags: 0,
                _pad: 0,
            },
            TxRequest {
                id: 5,
                len: 60,
                flags: TXF_MORE,
                _pad: 0,
            },
        ] {
            tf.push_request(&r).unwrap();
        }
        tf.push_requests_and_check_notify();
        assert_eq!(vif.poll_tx(|_| panic!("delivered a bad chain")), Ok(3));
        vif.flush();
        let st: Vec<_> = std::iter::from_fn(|| tf.poll_response().unwrap())
            .map(|r| (r.id, NetStatus::from(r.status)))
            .collect();
        assert_eq!(
            st,
            vec![
                (1, NetStatus::Error),
                (1, NetStatus::Error),
                (5, NetStatus::Error)
            ]
        );
        assert_eq!(vif.stats().malformed, 2);

        // RX: a frame of 3 fragments needs 3 posted buffers.
        for id in [10u16, 11] {
            rf.push_request(&rx_req(id)).unwrap();
        }
        rf.push_requests_and_check_notify();
        assert_eq!(
            vif.deliver_rx(&big),
            Ok(false),
            "two buffers are not enough"
        );
        assert_eq!(vif.stats().rx_dropped, 1);
        rf.push_request(&rx_req(12)).unwrap();
        rf.push_requests_and_check_notify();
        assert_eq!(vif.deliver_rx(&big), Ok(true));
        vif.flush();
        let rsps: Vec<_> = std::iter::from_fn(|| rf.poll_response().unwrap())
            .map(|r| (r.id, r.len, r.flags))
            .collect();
        assert_eq!(
            rsps,
            vec![(10, 4096, RXF_MORE), (11, 4096, RXF_MORE), (12, 808, 0)]
        );
        let mut back = Vec::new();
        for (id, len, _) in rsps {
            back.extend(pages.peek(rx_page(usize::from(id)), usize::from(len)));
        }
        assert_eq!(back, big);
        assert_eq!(
            vif.deliver_rx(&[0; FRAME_MAX_SG + 1]),
            Err(VifError::FrameLen(FRAME_MAX_SG + 1))
        );
    }

    #[test]
    fn without_sg_frames_stay_in_one_buffer() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (mut tf, tb) = tbuf.split_req::<TxRequest, TxResponse>().unwrap();
        let (mut rf, rb) = rbuf.split_req::<RxRequest, RxResponse>().unwrap();
        let mut vif = VifBackend::new(tb, rb, CheckedPages::new());
        tf.push_request(&TxRequest {
            id: 0,
            len: PAGE_SIZE as u16,
            flags: TXF_MORE,
            _pad: 0,
        })
        .unwrap();
        tf.push_request(&tx_req(1, 60)).unwrap();
        tf.push_requests_and_check_notify();
        let mut n = 0;
        assert_eq!(vif.poll_tx(|_| n += 1), Ok(2));
        assert_eq!((n, vif.stats().malformed), (1, 1));
        for id in 0..4 {
            rf.push_request(&rx_req(id)).unwrap();
        }
        rf.push_requests_and_check_notify();
        assert_eq!(vif.deliver_rx(&frame(0, FRAME_MAX + 1)), Ok(false));
        assert_eq!(vif.stats().rx_too_long, 1);
        assert_eq!(vif.deliver_rx(&frame(0, FRAME_MAX)), Ok(true));
    }

    #[test]
    fn a_frame_goes_from_one_vif_to_another_with_the_checked_header() {
        let mut bufs: Vec<RingBuffer> = (0..4).map(|_| RingBuffer::new(1)).collect();
        let (a, b) = bufs.split_at_mut(2);
        let (a_tx, a_rx) = a.split_at_mut(1);
        let (b_tx, b_rx) = b.split_at_mut(1);
        let (mut atf, atb) = a_tx[0].split_req::<TxRequest, TxResponse>().unwrap();
        let (_arf, arb) = a_rx[0].split_req::<RxRequest, RxResponse>().unwrap();
        let (_btf, btb) = b_tx[0].split_req::<TxRequest, TxResponse>().unwrap();
        let (mut brf, brb) = b_rx[0].split_req::<RxRequest, RxResponse>().unwrap();
        let (pa, pb) = (CheckedPages::new(), CheckedPages::new());
        let mut va = VifBackend::new(atb, arb, pa.clone()).with_sg(true);
        let mut vb = VifBackend::new(btb, brb, pb.clone()).with_sg(true);
        let f = frame(9, 5000);
        pa.poke(tx_page(0), &f[..PAGE_SIZE]);
        pa.poke(tx_page(1), &f[PAGE_SIZE..]);
        atf.push_request(&TxRequest {
            id: 0,
            len: PAGE_SIZE as u16,
            flags: TXF_MORE,
            _pad: 0,
        })
        .unwrap();
        atf.push_request(&tx_req(1, (5000 - PAGE_SIZE) as u16))
            .unwrap();
        atf.push_requests_and_check_notify();
        for id in [3, 8] {
            brf.push_request(&rx_req(id)).unwrap();
        }
        brf.push_requests_and_check_notify();
        va.poll_tx(|t| {
            // The sender rewrites its header after the check: the receiver still
            // gets the checked one.
            pa.poke(tx_page(0), &[0xee; FRAME_MIN]);
            assert_eq!(vb.deliver_rx_from(t), Ok(true));
        })
        .unwrap();
        let mut got = pb.peek(rx_page(3), PAGE_SIZE);
        got.extend(pb.peek(rx_page(8), 5000 - PAGE_SIZE));
        assert_eq!(got, f);
    }

    #[test]
    fn a_flood_is_served_one_ring_at_a_time() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (mut tf, tb) = tbuf.split_req::<TxRequest, TxResponse>().unwrap();
        let (_rf, rb) = rbuf.split_req::<RxRequest, RxResponse>().unwrap();
        let mut vif = VifBackend::new(tb, rb, CheckedPages::new());
        let mut n = 0usize;
        for round in 0..3 {
            while tf.push_request(&tx_req(1, 60)).is_ok() {}
            tf.push_requests_and_check_notify();
            assert_eq!(vif.poll_tx(|_| n += 1), Ok(RING_SLOTS as usize));
            vif.flush();
            while tf.poll_response().unwrap().is_some() {}
            assert_eq!(n, (round + 1) * RING_SLOTS as usize);
        }
        assert_eq!(vif.poll_tx(|_| n += 1), Ok(0));
    }

    #[test]
    fn hostile_after_many_malformed_requests() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (mut tf, tb) = tbuf.split_req::<TxRequest, TxResponse>().unwrap();
        let (_rf, rb) = rbuf.split_req::<RxRequest, RxResponse>().unwrap();
        let mut vif = VifBackend::new(tb, rb, CheckedPages::new());
        for _ in 0..=HOSTILE_MALFORMED {
            tf.push_request(&tx_req(99, 60)).unwrap();
        }
        tf.push_requests_and_check_notify();
        vif.poll_tx(|_| panic!("delivered a bad frame")).unwrap();
        assert!(vif.is_hostile());
    }

    #[test]
    fn corrupt_indices_are_errors() {
        let mut tbuf = RingBuffer::new(1);
        let mut rbuf = RingBuffer::new(1);
        let (_tf, tb, ttamper) = split_req_tampered::<TxRequest, TxResponse>(&mut tbuf).unwrap();
        let (_rf, rb, rtamper) = split_req_tampered::<RxRequest, RxResponse>(&mut rbuf).unwrap();
        let mut vif = VifBackend::new(tb, rb, CheckedPages::new());
        let req_prod = offset_of!(SringHeader, req_prod);
        ttamper.store(req_prod, 1000);
        rtamper.store(req_prod, u32::MAX);
        let e = vif.poll_tx(|_| {}).unwrap_err();
        assert!(e.is_peer_fault());
        assert!(matches!(vif.deliver_rx(&[0; 60]), Err(VifError::Ring(_))));
        assert!(matches!(vif.final_check(), Err(VifError::Ring(_))));
        // Fixed again (as far as the backend can tell): works.
        ttamper.store(req_prod, 0);
        assert_eq!(vif.poll_tx(|_| {}), Ok(0));
    }

    /// One step of a hostile frontend (or of the backend under test).
    #[derive(Clone, Debug)]
    enum Op {
        PushTx(TxRequest),
        PushRx(RxRequest),
        PublishTx,
        PublishRx,
        /// Re-initialise a ring's shared header with every index at this value.
        ReinitTx(u32),
        ReinitRx(u32),
        /// Write a word anywhere in a ring page (header or slots).
        PokeTx(usize, u32),
        PokeRx(usize, u32),
        /// Scribble over a buffer page.
        PokePage(usize, u8),
        DrainResponses,
        PollTx,
        DeliverRx(usize),
        Flush,
        FinalCheck,
    }

    fn header_word() -> impl Strategy<Value = usize> {
        prop_oneof![
            Just(offset_of!(SringHeader, req_prod)),
            Just(offset_of!(SringHeader, rsp_event)),
            Just(offset_of!(SringHeader, rsp_prod)),
            Just(offset_of!(SringHeader, req_event)),
            (0..PAGE_SIZE / 4).prop_map(|w| w * 4),
        ]
    }

    fn index_value() -> impl Strategy<Value = u32> {
        prop_oneof![0u32..600, (u32::MAX - 600)..=u32::MAX, any::<u32>()]
    }

    fn op() -> impl Strategy<Value = Op> {
        let id = prop_oneof![0u16..40, any::<u16>()];
        let len = prop_oneof![
            0u16..20,
            1500u16..1530,
            4090u16..4100,
            Just(4096),
            any::<u16>()
        ];
        let tx = (
            id.clone(),
            len,
            prop_oneof![Just(0u16), Just(TXF_MORE), any::<u16>()],
            any::<u16>(),
        )
            .prop_map(|(id, len, flags, _pad)| TxRequest {
                id,
                len,
                flags,
                _pad,
            });
        let rx = (id, any::<[u16; 3]>()).prop_map(|(id, _pad)| RxRequest { id, _pad });
        prop_oneof![
            6 => tx.prop_map(Op::PushTx),
            6 => rx.prop_map(Op::PushRx),
            3 => Just(Op::PublishTx),
            3 => Just(Op::PublishRx),
            1 => index_value().prop_map(Op::ReinitTx),
            1 => index_value().prop_map(Op::ReinitRx),
            1 => (header_word(), index_value()).prop_map(|(o, v)| Op::PokeTx(o, v)),
            1 => (header_word(), index_value()).prop_map(|(o, v)| Op::PokeRx(o, v)),
            1 => (0..2 * NET_BUFS, any::<u8>()).prop_map(|(p, b)| Op::PokePage(p, b)),
            2 => Just(Op::DrainResponses),
            4 => Just(Op::PollTx),
            4 => prop_oneof![0usize..20, 20usize..1600, 1500usize..1520, 4000usize..20000]
                .prop_map(Op::DeliverRx),
            3 => Just(Op::Flush),
            1 => Just(Op::FinalCheck),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A hostile frontend (random requests, ids and lengths, rewritten indices,
        /// scribbled slots and pages) never makes the backend panic, touch a page it
        /// must not, or deliver a frame of a bad length; every answered id is one the
        /// frontend sent.
        #[test]
        fn hostile_frontend(ops in proptest::collection::vec(op(), 1..200), sg in any::<bool>()) {
            let max = if sg { FRAME_MAX_SG } else { FRAME_MAX };
            let mut tbuf = RingBuffer::new(1);
            let mut rbuf = RingBuffer::new(1);
            let (mut tf, tb, ttamper) =
                split_req_tampered::<TxRequest, TxResponse>(&mut tbuf).unwrap();
            let (mut rf, rb, rtamper) =
                split_req_tampered::<RxRequest, RxResponse>(&mut rbuf).unwrap();
            let pages = CheckedPages::new();
            let mut vif = VifBackend::new(tb, rb, pages.clone()).with_sg(sg);
            let mut delivered = 0u64;
            let mut last_malformed = 0;
            for op in ops {
                match op {
                    Op::PushTx(r) => { let _ = tf.push_request(&r); }
                    Op::PushRx(r) => { let _ = rf.push_request(&r); }
                    Op::PublishTx => { tf.push_requests_and_check_notify(); }
                    Op::PublishRx => { rf.push_requests_and_check_notify(); }
                    Op::ReinitTx(v) => tf.init_at(v),
                    Op::ReinitRx(v) => rf.init_at(v),
                    Op::PokeTx(o, v) => ttamper.store(o, v),
                    Op::PokeRx(o, v) => rtamper.store(o, v),
                    Op::PokePage(p, b) => pages.poke(p, &[b; 64]),
                    Op::DrainResponses => {
                        while let Ok(Some(_)) = tf.poll_response() {}
                        while let Ok(Some(_)) = rf.poll_response() {}
                    }
                    Op::PollTx => {
                        let r = vif.poll_tx(|f| {
                            assert!((FRAME_MIN..=max).contains(&f.len()));
                            assert_eq!(bytes(f).len(), f.len());
                            delivered += 1;
                        });
                        if let Ok(n) = r {
                            prop_assert!(n <= RING_SLOTS as usize);
                        }
                    }
                    Op::DeliverRx(len) => {
                        let f = frame(len as u8, len);
                        match vif.deliver_rx(&f) {
                            Ok(true) => prop_assert!((FRAME_MIN..=max).contains(&len)),
                            Ok(false) => {}
                            Err(VifError::FrameLen(n)) => {
                                prop_assert_eq!(n, len);
                                prop_assert!(!(FRAME_MIN..=FRAME_MAX_SG).contains(&len));
                            }
                            Err(VifError::Ring(_)) => {}
                        }
                    }
                    Op::Flush => { vif.flush(); }
                    Op::FinalCheck => { let _ = vif.final_check(); }
                }
                let s = vif.stats();
                prop_assert_eq!(s.tx_frames, delivered);
                prop_assert!(s.malformed >= last_malformed);
                last_malformed = s.malformed;
                prop_assert!(vif.rx_posted() <= NET_BUFS);
                prop_assert!(s.tx_bytes <= s.tx_frames * max as u64);
                prop_assert!(s.rx_bytes <= s.rx_frames * max as u64);
            }
            let _ = vif.final_check();
        }
    }
}
