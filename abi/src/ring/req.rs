//! Request/response rings, in the style of Xen's `io/ring.h`.
//!
//! Shared layout of a region of `n` pages (`n >= 1`):
//!
//! | offset | size | field | written by |
//! |-------:|-----:|-------|------------|
//! | 0 | 4 | `req_prod`: request producer index | frontend |
//! | 4 | 4 | `rsp_event`: frontend wants a notification when `rsp_prod` reaches this | frontend |
//! | 8 | 56 | reserved, zero | |
//! | 64 | 4 | `rsp_prod`: response producer index | backend |
//! | 68 | 4 | `req_event`: backend wants a notification when `req_prod` reaches this | backend |
//! | 72 | 56 | reserved, zero | |
//! | 128 | `size * slot_size` | slots: request `i` and, later, its response in slot `i % size` | both |
//!
//! `slot_size` = max(size of `Req`, size of `Rsp`) rounded up to 8; `size` = the largest
//! power of two with `128 + size * slot_size <= n * 4096` (for 64-byte slots: 32 slots in
//! one page, 512 in 16 pages). A request's slot is reused for its response, so the
//! frontend may have at most `size` requests outstanding (pushed, and their responses
//! not yet consumed).

use core::fmt;
use core::marker::PhantomData;
use core::mem::{offset_of, size_of};

use static_assertions::const_assert;
#[cfg(not(loom))]
use zerocopy::KnownLayout;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::index::{check_peer_index, needs_notify, pow2_floor};
use super::mem::{Region, SharedHeader};
use super::sync::{fence, AtomicU32, Ordering};
use super::{RingError, HEADER_SIZE};

/// Padding after the two indices of one cache line.
const PAD: usize = 64 - 2 * size_of::<AtomicU32>();

/// The shared header of a request/response ring: two cache lines, one written by each
/// side.
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
#[derive(Debug)]
#[repr(C, align(64))]
pub struct SringHeader {
    /// Request producer index (free-running), written by the frontend.
    pub req_prod: AtomicU32,
    /// Written by the frontend: notify it when `rsp_prod` reaches this value.
    pub rsp_event: AtomicU32,
    /// Reserved, zero.
    pub _pad0: [u8; PAD],
    /// Response producer index (free-running), written by the backend.
    pub rsp_prod: AtomicU32,
    /// Written by the backend: notify it when `req_prod` reaches this value.
    pub req_event: AtomicU32,
    /// Reserved, zero.
    pub _pad1: [u8; PAD],
}

#[cfg(not(loom))]
const_assert!(size_of::<SringHeader>() == HEADER_SIZE);
#[cfg(not(loom))]
const_assert!(offset_of!(SringHeader, req_prod) == 0);
#[cfg(not(loom))]
const_assert!(offset_of!(SringHeader, rsp_event) == 4);
#[cfg(not(loom))]
const_assert!(offset_of!(SringHeader, rsp_prod) == 64);
#[cfg(not(loom))]
const_assert!(offset_of!(SringHeader, req_event) == 68);
const_assert!(size_of::<SringHeader>() <= HEADER_SIZE);

const REQ_PROD: usize = offset_of!(SringHeader, req_prod);
const RSP_EVENT: usize = offset_of!(SringHeader, rsp_event);
const RSP_PROD: usize = offset_of!(SringHeader, rsp_prod);
const REQ_EVENT: usize = offset_of!(SringHeader, req_event);

impl SharedHeader for SringHeader {
    #[cfg(loom)]
    fn fresh() -> Self {
        SringHeader {
            req_prod: AtomicU32::new(0),
            rsp_event: AtomicU32::new(0),
            _pad0: [0; PAD],
            rsp_prod: AtomicU32::new(0),
            req_event: AtomicU32::new(0),
            _pad1: [0; PAD],
        }
    }
}

/// Ties a ring end to its memory's lifetime and its entry types (without owning any).
type Marker<'a, Req, Rsp> = PhantomData<(&'a mut [u8], fn() -> (Req, Rsp))>;

/// Both ends of one request/response ring, as `RingBuffer::split_req` returns them.
pub type ReqRingPair<'a, Req, Rsp> = (FrontRing<'a, Req, Rsp>, BackRing<'a, Req, Rsp>);

/// What a ring entry (request or response) must be: plain bytes, copied in and out.
pub trait RingEntry: FromBytes + IntoBytes + Immutable + Copy {}
impl<T: FromBytes + IntoBytes + Immutable + Copy> RingEntry for T {}

/// Bytes per slot for requests `Req` and responses `Rsp`: the larger size, rounded up
/// to 8.
pub const fn slot_size<Req, Rsp>() -> usize {
    let (a, b) = (size_of::<Req>(), size_of::<Rsp>());
    let m = if a > b { a } else { b };
    (m + 7) & !7
}

/// Number of slots of `slot` bytes in a region of `region_len` bytes: the largest power
/// of two that fits after the header (0 if none does).
pub const fn slot_count(region_len: usize, slot: usize) -> u32 {
    if slot == 0 || region_len < HEADER_SIZE {
        0
    } else {
        pow2_floor((region_len - HEADER_SIZE) / slot)
    }
}

/// Checks a region for entries of `slot` bytes; returns the slot count.
fn geometry(region: &Region, slot: usize) -> Result<u32, RingError> {
    let size = slot_count(region.len(), slot);
    if size == 0 {
        return Err(RingError::RegionTooSmall {
            len: region.len(),
            needed: HEADER_SIZE + slot,
        });
    }
    Ok(size)
}

/// The frontend's end of a request/response ring: pushes requests, consumes responses.
///
/// Only the frontend initialises the shared header ([`FrontRing::from_raw`] does,
/// [`FrontRing::init_at`] re-does it).
pub struct FrontRing<'a, Req, Rsp> {
    region: Region,
    mask: u32,
    /// Next request slot to fill (private producer index).
    req_prod_pvt: u32,
    /// `req_prod` as we last published it.
    req_prod_pub: u32,
    /// Next response to consume.
    rsp_cons: u32,
    /// Validated copy of the backend's `rsp_prod`.
    rsp_prod_seen: u32,
    _p: Marker<'a, Req, Rsp>,
}

impl<Req, Rsp> fmt::Debug for FrontRing<'_, Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontRing")
            .field("size", &(self.mask + 1))
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("req_prod_pub", &self.req_prod_pub)
            .field("rsp_cons", &self.rsp_cons)
            .field("rsp_prod_seen", &self.rsp_prod_seen)
            .finish()
    }
}

impl<'a, Req: RingEntry, Rsp: RingEntry> FrontRing<'a, Req, Rsp> {
    const SLOT: usize = slot_size::<Req, Rsp>();
    const CHECKS: () = assert!(Self::SLOT > 0, "ring entries must not be zero-sized");

    pub(super) fn over(region: Region, start: u32) -> Result<Self, RingError> {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECKS;
        let size = geometry(&region, Self::SLOT)?;
        let mut ring = FrontRing {
            region,
            mask: size - 1,
            req_prod_pvt: 0,
            req_prod_pub: 0,
            rsp_cons: 0,
            rsp_prod_seen: 0,
            _p: PhantomData,
        };
        ring.init_at(start);
        Ok(ring)
    }

    /// Re-initialises the shared header and our private state with every index at
    /// 0, the event indices at 1. The backend must (re)attach afterwards.
    pub fn init(&mut self) {
        self.init_at(0);
    }

    /// Like [`FrontRing::init`], but every index starts at `start` (the event indices
    /// at `start + 1`); tests use it to cross the 2^32 wrap quickly.
    pub fn init_at(&mut self, start: u32) {
        self.region.init_header::<SringHeader>();
        let r = &self.region;
        r.atomic(REQ_PROD).store(start, Ordering::Relaxed);
        r.atomic(RSP_PROD).store(start, Ordering::Relaxed);
        r.atomic(REQ_EVENT)
            .store(start.wrapping_add(1), Ordering::Relaxed);
        r.atomic(RSP_EVENT)
            .store(start.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.req_prod_pvt = start;
        self.req_prod_pub = start;
        self.rsp_cons = start;
        self.rsp_prod_seen = start;
    }

    /// Number of slots.
    #[inline]
    pub fn size(&self) -> u32 {
        self.mask + 1
    }

    #[inline]
    fn slot_off(&self, i: u32) -> usize {
        HEADER_SIZE + (i & self.mask) as usize * Self::SLOT
    }

    /// Requests that can still be pushed before responses must be consumed.
    #[inline]
    pub fn free_slots(&self) -> u32 {
        self.size() - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Requests pushed but not yet published.
    #[inline]
    pub fn unpublished(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.req_prod_pub)
    }

    /// Copies `req` into the next free slot. It becomes visible to the backend at the
    /// next [`FrontRing::push_requests_and_check_notify`].
    #[inline]
    pub fn push_request(&mut self, req: &Req) -> Result<(), RingError> {
        if self.free_slots() == 0 {
            return Err(RingError::Full);
        }
        self.region.write_obj(self.slot_off(self.req_prod_pvt), req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes every pushed request; true if the backend must be notified (its
    /// `req_event` lies in the range just published). Xen's
    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`.
    #[inline]
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        let (old, new) = (self.req_prod_pub, self.req_prod_pvt);
        if old == new {
            return false;
        }
        self.region.atomic(REQ_PROD).store(new, Ordering::Release);
        self.req_prod_pub = new;
        fence(Ordering::SeqCst);
        let event = self.region.atomic(REQ_EVENT).load(Ordering::Relaxed);
        needs_notify(old, new, event)
    }

    /// Re-reads `rsp_prod` and checks it: it may not move back, nor pass the requests
    /// we published.
    fn refresh_rsp_prod(&mut self) -> Result<(), RingError> {
        let prod = self.region.atomic(RSP_PROD).load(Ordering::Acquire);
        let lo = self.rsp_prod_seen;
        match check_peer_index(prod, lo, self.req_prod_pub.wrapping_sub(lo)) {
            Ok(_) => {
                self.rsp_prod_seen = prod;
                Ok(())
            }
            Err(RingError::PeerIndexOutOfRange { .. }) => Err(RingError::TooManyResponses {
                rsp_prod: prod,
                rsp_cons: self.rsp_cons,
                outstanding: self.req_prod_pub.wrapping_sub(self.rsp_cons),
            }),
            Err(e) => Err(e),
        }
    }

    /// Takes the next response, copied out of its slot, or `None` if there is none.
    /// `rsp_prod` is read only when the responses already seen are used up.
    #[inline]
    pub fn poll_response(&mut self) -> Result<Option<Rsp>, RingError> {
        if self.rsp_cons == self.rsp_prod_seen {
            self.refresh_rsp_prod()?;
            if self.rsp_cons == self.rsp_prod_seen {
                return Ok(None);
            }
        }
        let rsp = self.region.read_obj::<Rsp>(self.slot_off(self.rsp_cons));
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// Before sleeping: true if responses are waiting; otherwise asks to be notified of
    /// the next one (`rsp_event = rsp_cons + 1`), fences, and checks again. Xen's
    /// `RING_FINAL_CHECK_FOR_RESPONSES`. Sleep only on `Ok(false)`.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.rsp_cons != self.rsp_prod_seen {
            return Ok(true);
        }
        self.refresh_rsp_prod()?;
        if self.rsp_cons != self.rsp_prod_seen {
            return Ok(true);
        }
        self.region
            .atomic(RSP_EVENT)
            .store(self.rsp_cons.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.refresh_rsp_prod()?;
        Ok(self.rsp_cons != self.rsp_prod_seen)
    }
}

/// The backend's end of a request/response ring: consumes requests, pushes responses.
pub struct BackRing<'a, Req, Rsp> {
    region: Region,
    mask: u32,
    /// Next request to consume.
    req_cons: u32,
    /// Validated copy of the frontend's `req_prod`.
    req_prod_seen: u32,
    /// Next response slot to fill (private producer index).
    rsp_prod_pvt: u32,
    /// `rsp_prod` as we last published it.
    rsp_prod_pub: u32,
    _p: Marker<'a, Req, Rsp>,
}

impl<Req, Rsp> fmt::Debug for BackRing<'_, Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackRing")
            .field("size", &(self.mask + 1))
            .field("req_cons", &self.req_cons)
            .field("req_prod_seen", &self.req_prod_seen)
            .field("rsp_prod_pvt", &self.rsp_prod_pvt)
            .field("rsp_prod_pub", &self.rsp_prod_pub)
            .finish()
    }
}

impl<'a, Req: RingEntry, Rsp: RingEntry> BackRing<'a, Req, Rsp> {
    const SLOT: usize = slot_size::<Req, Rsp>();
    const CHECKS: () = assert!(Self::SLOT > 0, "ring entries must not be zero-sized");

    pub(super) fn attach(region: Region) -> Result<Self, RingError> {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECKS;
        let size = geometry(&region, Self::SLOT)?;
        let start = region.atomic(RSP_PROD).load(Ordering::Acquire);
        Ok(BackRing {
            region,
            mask: size - 1,
            req_cons: start,
            req_prod_seen: start,
            rsp_prod_pvt: start,
            rsp_prod_pub: start,
            _p: PhantomData,
        })
    }

    /// Number of slots.
    #[inline]
    pub fn size(&self) -> u32 {
        self.mask + 1
    }

    #[inline]
    fn slot_off(&self, i: u32) -> usize {
        HEADER_SIZE + (i & self.mask) as usize * Self::SLOT
    }

    /// Consumed requests not yet answered with a pushed response.
    #[inline]
    pub fn unanswered(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// Re-reads `req_prod` and checks it: it may not move back, nor claim more requests
    /// than free slots (slots whose responses the frontend may have consumed).
    fn refresh_req_prod(&mut self) -> Result<(), RingError> {
        let prod = self.region.atomic(REQ_PROD).load(Ordering::Acquire);
        let lo = self.req_prod_seen;
        let limit = self.rsp_prod_pub.wrapping_add(self.size()).wrapping_sub(lo);
        check_peer_index(prod, lo, limit)?;
        self.req_prod_seen = prod;
        Ok(())
    }

    /// Takes the next request, copied out of its slot, or `None` if there is none.
    /// `req_prod` is read only when the requests already seen are used up.
    #[inline]
    pub fn poll_request(&mut self) -> Result<Option<Req>, RingError> {
        if self.req_cons == self.req_prod_seen {
            self.refresh_req_prod()?;
            if self.req_cons == self.req_prod_seen {
                return Ok(None);
            }
        }
        let req = self.region.read_obj::<Req>(self.slot_off(self.req_cons));
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Copies `rsp` into the slot of the oldest unanswered request. Visible to the
    /// frontend at the next [`BackRing::push_responses_and_check_notify`].
    #[inline]
    pub fn push_response(&mut self, rsp: &Rsp) -> Result<(), RingError> {
        if self.rsp_prod_pvt == self.req_cons {
            return Err(RingError::NoRequestToAnswer);
        }
        self.region.write_obj(self.slot_off(self.rsp_prod_pvt), rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes every pushed response; true if the frontend must be notified. Xen's
    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`.
    #[inline]
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        let (old, new) = (self.rsp_prod_pub, self.rsp_prod_pvt);
        if old == new {
            return false;
        }
        self.region.atomic(RSP_PROD).store(new, Ordering::Release);
        self.rsp_prod_pub = new;
        fence(Ordering::SeqCst);
        let event = self.region.atomic(RSP_EVENT).load(Ordering::Relaxed);
        needs_notify(old, new, event)
    }

    /// Before sleeping: true if requests are waiting; otherwise asks to be notified of
    /// the next one (`req_event = req_cons + 1`), fences, and checks again. Xen's
    /// `RING_FINAL_CHECK_FOR_REQUESTS`. Sleep only on `Ok(false)`.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.req_cons != self.req_prod_seen {
            return Ok(true);
        }
        self.refresh_req_prod()?;
        if self.req_cons != self.req_prod_seen {
            return Ok(true);
        }
        self.region
            .atomic(REQ_EVENT)
            .store(self.req_cons.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.refresh_req_prod()?;
        Ok(self.req_cons != self.req_prod_seen)
    }
}

#[cfg(any(test, feature = "std"))]
impl super::RingBuffer {
    /// Initialises a request/response ring over this buffer and returns both ends.
    pub fn split_req<Req: RingEntry, Rsp: RingEntry>(
        &mut self,
    ) -> Result<ReqRingPair<'_, Req, Rsp>, RingError> {
        self.split_req_at(0)
    }

    /// Like [`RingBuffer::split_req`](super::RingBuffer::split_req), with every index
    /// starting at `start`.
    pub fn split_req_at<Req: RingEntry, Rsp: RingEntry>(
        &mut self,
        start: u32,
    ) -> Result<ReqRingPair<'_, Req, Rsp>, RingError> {
        let front = FrontRing::over(self.region(), start)?;
        let back = BackRing::attach(self.region())?;
        Ok((front, back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{RingBuffer, PAGE_SIZE};

    type Req = [u8; 64];
    type Rsp = u64;

    fn req(n: u64) -> Req {
        let mut r = [0u8; 64];
        r[..8].copy_from_slice(&n.to_le_bytes());
        r[63] = n as u8 ^ 0x5a;
        r
    }

    #[test]
    fn slot_sizes_round_up_to_8() {
        assert_eq!(slot_size::<u64, u32>(), 8);
        assert_eq!(slot_size::<[u8; 5], [u8; 13]>(), 16);
        assert_eq!(slot_size::<[u8; 64], u64>(), 64);
        assert_eq!(slot_size::<u8, [u8; 112]>(), 112);
    }

    #[test]
    fn slot_counts_for_1_2_16_pages() {
        let p = PAGE_SIZE;
        // (pages, slot bytes, slots)
        let cases = [
            (1, 8, 256),
            (1, 64, 32),
            (1, 112, 32), // Xen's blkif: 32 requests in one page
            (1, 3968, 1),
            (1, 4096, 0),
            (2, 64, 64),
            (2, 4096, 1),
            (2, 2048, 2),
            (16, 8, 4096),
            (16, 64, 512),
            (16, 112, 512),
            (16, 4096, 8),
        ];
        for (pages, slot, want) in cases {
            assert_eq!(
                slot_count(pages * p, slot),
                want,
                "{pages} pages, {slot}-byte slots"
            );
        }
        // Every slot fits inside the region.
        for pages in [1, 2, 16] {
            for slot in [8, 16, 24, 64, 112, 200, 1000, 4000] {
                let n = slot_count(pages * p, slot) as usize;
                assert!(HEADER_SIZE + n * slot <= pages * p);
                let next = if n == 0 { 1 } else { 2 * n };
                assert!(
                    HEADER_SIZE + next * slot > pages * p,
                    "not the largest power of two"
                );
            }
        }
    }

    #[test]
    fn round_trip_and_notifications() {
        let mut buf = RingBuffer::new(1);
        let (mut front, mut back) = buf.split_req::<Req, Rsp>().unwrap();
        assert_eq!(front.size(), 32);
        assert_eq!(front.free_slots(), 32);
        // Nothing visible before publishing.
        front.push_request(&req(1)).unwrap();
        front.push_request(&req(2)).unwrap();
        assert_eq!(back.poll_request(), Ok(None));
        // req_event starts at 1: the first publish notifies.
        assert!(front.push_requests_and_check_notify());
        // Publishing nothing never notifies.
        assert!(!front.push_requests_and_check_notify());
        assert_eq!(back.poll_request(), Ok(Some(req(1))));
        front.push_request(&req(3)).unwrap();
        // The backend has not asked again: suppressed.
        assert!(!front.push_requests_and_check_notify());
        assert_eq!(back.poll_request(), Ok(Some(req(2))));
        assert_eq!(back.poll_request(), Ok(Some(req(3))));
        assert_eq!(back.poll_request(), Ok(None));
        // Going to sleep: asks for the next request, which then notifies.
        assert_eq!(back.final_check_for_requests(), Ok(false));
        front.push_request(&req(4)).unwrap();
        assert!(front.push_requests_and_check_notify());
        assert_eq!(back.final_check_for_requests(), Ok(true));
        assert_eq!(back.poll_request(), Ok(Some(req(4))));

        assert_eq!(front.free_slots(), 28);
        for n in 1..=4 {
            back.push_response(&(n * 10)).unwrap();
        }
        assert_eq!(back.push_response(&99), Err(RingError::NoRequestToAnswer));
        assert_eq!(front.poll_response(), Ok(None));
        // rsp_event starts at 1: notifies.
        assert!(back.push_responses_and_check_notify());
        for n in 1..=4 {
            assert_eq!(front.poll_response(), Ok(Some(n * 10)));
        }
        assert_eq!(front.poll_response(), Ok(None));
        assert_eq!(front.free_slots(), 32);
        assert_eq!(front.final_check_for_responses(), Ok(false));
    }

    #[test]
    fn full_ring_refuses_until_responses_are_consumed() {
        let mut buf = RingBuffer::new(1);
        let (mut front, mut back) = buf.split_req::<Req, Rsp>().unwrap();
        for n in 0..32 {
            front.push_request(&req(n)).unwrap();
        }
        assert_eq!(front.free_slots(), 0);
        assert_eq!(front.push_request(&req(99)), Err(RingError::Full));
        front.push_requests_and_check_notify();
        // Consuming requests does not free slots: their responses need them.
        while back.poll_request().unwrap().is_some() {}
        assert_eq!(front.push_request(&req(99)), Err(RingError::Full));
        back.push_response(&7).unwrap();
        back.push_responses_and_check_notify();
        assert_eq!(front.push_request(&req(99)), Err(RingError::Full));
        assert_eq!(front.poll_response(), Ok(Some(7)));
        assert_eq!(front.free_slots(), 1);
        front.push_request(&req(99)).unwrap();
    }

    #[test]
    fn indices_wrap_past_u32_max() {
        for start in [u32::MAX - 40, u32::MAX - 31, u32::MAX, 0x7fff_fff0] {
            let mut buf = RingBuffer::new(1);
            let (mut front, mut back) = buf.split_req_at::<Req, Rsp>(start).unwrap();
            let mut next = 0u64;
            let mut expect = 0u64;
            for _round in 0..5 {
                while front.free_slots() > 0 {
                    front.push_request(&req(next)).unwrap();
                    next += 1;
                }
                front.push_requests_and_check_notify();
                while let Some(r) = back.poll_request().unwrap() {
                    back.push_response(&u64::from_le_bytes(r[..8].try_into().unwrap()))
                        .unwrap();
                }
                back.push_responses_and_check_notify();
                while let Some(v) = front.poll_response().unwrap() {
                    assert_eq!(v, expect);
                    expect += 1;
                }
            }
            assert_eq!(expect, 5 * 32);
        }
    }
}
