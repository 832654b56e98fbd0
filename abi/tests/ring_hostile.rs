//! Malicious-peer tests: the test plays the hostile side by writing raw header fields
//! and slot contents between calls of an honest ring end, and checks that the honest
//! end returns typed errors, keeps its state, returns no more than asked, and never
//! writes outside its region (guard pages before and after it).

// Plain atomics only: under `cfg(loom)` the ring needs a loom model (tests/loom.rs).
#![cfg(not(loom))]

use std::mem::offset_of;

use parapet_abi::ring::{
    BackRing, ByteReader, ByteRingHeader, ByteWriter, FrontRing, RingBuffer, RingError,
    SringHeader, HEADER_SIZE, PAGE_SIZE,
};
use proptest::prelude::*;

type Req = [u8; 64];
type Rsp = u64;

const REQ_PROD: usize = offset_of!(SringHeader, req_prod);
const REQ_EVENT: usize = offset_of!(SringHeader, req_event);
const RSP_PROD: usize = offset_of!(SringHeader, rsp_prod);
const RSP_EVENT: usize = offset_of!(SringHeader, rsp_event);
const PROD: usize = offset_of!(ByteRingHeader, prod);
const CONS: usize = offset_of!(ByteRingHeader, cons);
const PROD_EVENT: usize = offset_of!(ByteRingHeader, prod_event);
const CONS_EVENT: usize = offset_of!(ByteRingHeader, cons_event);

fn req(n: u32) -> Req {
    let mut r = [0u8; 64];
    r[..4].copy_from_slice(&n.to_le_bytes());
    r
}

/// Hostile writes of one shared word (header field or slot contents).
fn poke(buf: &RingBuffer, off: usize, v: u32) {
    buf.atomic_u32(off)
        .store(v, std::sync::atomic::Ordering::SeqCst);
}

fn peek(buf: &RingBuffer, off: usize) -> u32 {
    buf.atomic_u32(off)
        .load(std::sync::atomic::Ordering::SeqCst)
}

/// An honest backend over `buf`, whose frontend is the test.
fn backend(buf: &RingBuffer) -> BackRing<'_, Req, Rsp> {
    // SAFETY: `buf` outlives the ring; the test's other accesses to the region are
    // atomic word accesses made between calls, on this thread.
    // `FrontRing::from_raw` initialises the header, as an honest frontend would.
    unsafe { FrontRing::<Req, Rsp>::from_raw(buf.as_mut_ptr(), buf.len()) }.expect("valid region");
    // SAFETY: as above.
    unsafe { BackRing::from_raw(buf.as_mut_ptr(), buf.len()) }.expect("valid region")
}

/// An honest frontend over `buf`, whose backend is the test.
fn frontend(buf: &RingBuffer) -> FrontRing<'_, Req, Rsp> {
    // SAFETY: as in `backend`.
    unsafe { FrontRing::from_raw(buf.as_mut_ptr(), buf.len()) }.expect("valid region")
}

/// An honest byte reader and writer over `buf` (the test replaces one of them).
fn byte_ends(buf: &RingBuffer) -> (ByteWriter<'_>, ByteReader<'_>) {
    // SAFETY: as in `backend`.
    let mut w = unsafe { ByteWriter::from_raw(buf.as_mut_ptr(), buf.len()) }.unwrap();
    w.init();
    // SAFETY: as in `backend`.
    let r = unsafe { ByteReader::from_raw(buf.as_mut_ptr(), buf.len()) }.unwrap();
    (w, r)
}

#[test]
fn raw_constructors_check_alignment_and_size() {
    let buf = RingBuffer::with_guards(2);
    let p = buf.as_mut_ptr();
    // SAFETY: the pointers lie in `buf` (or are null), which outlives the calls; every
    // call fails its checks before touching memory.
    unsafe {
        assert_eq!(
            FrontRing::<Req, Rsp>::from_raw(p.wrapping_add(64), PAGE_SIZE).err(),
            Some(RingError::Misaligned {
                addr: p as usize + 64,
                align: PAGE_SIZE
            })
        );
        assert_eq!(
            BackRing::<Req, Rsp>::from_raw(p, 4000).err(),
            Some(RingError::BadLength { len: 4000 })
        );
        assert_eq!(
            ByteWriter::from_raw(p, 0).err(),
            Some(RingError::BadLength { len: 0 })
        );
        assert_eq!(
            ByteReader::from_raw(std::ptr::null_mut(), PAGE_SIZE).err(),
            Some(RingError::Misaligned {
                addr: 0,
                align: PAGE_SIZE
            })
        );
        assert_eq!(
            FrontRing::<[u8; 4096], u8>::from_raw(p, PAGE_SIZE).err(),
            Some(RingError::RegionTooSmall {
                len: PAGE_SIZE,
                needed: PAGE_SIZE + HEADER_SIZE
            })
        );
    }
    assert!(buf.guards_intact());
}

#[test]
fn req_prod_far_ahead_is_refused() {
    let buf = RingBuffer::with_guards(1);
    let mut back = backend(&buf);
    // 33 requests in a 32-slot ring.
    poke(&buf, REQ_PROD, 33);
    assert_eq!(
        back.poll_request(),
        Err(RingError::PeerIndexOutOfRange {
            index: 33,
            private: 0,
            limit: 32
        })
    );
    assert_eq!(
        back.final_check_for_requests(),
        Err(RingError::PeerIndexOutOfRange {
            index: 33,
            private: 0,
            limit: 32
        })
    );
    poke(&buf, REQ_PROD, 0x7fff_ffff);
    assert!(matches!(
        back.poll_request(),
        Err(RingError::PeerIndexOutOfRange { .. })
    ));
    // Our state is untouched: an honest value works again.
    poke(&buf, REQ_PROD, 32);
    for n in 0..32 {
        assert_eq!(
            back.poll_request().map(|r| r.is_some()),
            Ok(true),
            "request {n}"
        );
    }
    assert_eq!(back.poll_request(), Ok(None));
    assert!(buf.guards_intact());
}

#[test]
fn req_prod_moving_back_is_refused() {
    let buf = RingBuffer::with_guards(1);
    let mut back = backend(&buf);
    for n in 0..5 {
        poke(&buf, HEADER_SIZE + 64 * n, n as u32);
    }
    poke(&buf, REQ_PROD, 5);
    assert_eq!(back.poll_request(), Ok(Some(req(0))));
    assert_eq!(back.poll_request(), Ok(Some(req(1))));
    // The peer takes back requests it published: behind what we saw.
    poke(&buf, REQ_PROD, 3);
    // The three already seen are still ours to take (read once per batch)...
    assert_eq!(back.poll_request(), Ok(Some(req(2))));
    assert_eq!(back.poll_request(), Ok(Some(req(3))));
    assert_eq!(back.poll_request(), Ok(Some(req(4))));
    // ...then the index is re-read and refused.
    assert_eq!(
        back.poll_request(),
        Err(RingError::PeerIndexBehind {
            index: 3,
            private: 5
        })
    );
    poke(&buf, REQ_PROD, u32::MAX);
    assert_eq!(
        back.poll_request(),
        Err(RingError::PeerIndexBehind {
            index: u32::MAX,
            private: 5
        })
    );
    assert!(buf.guards_intact());
}

#[test]
fn backend_never_overruns_unanswered_requests() {
    let buf = RingBuffer::with_guards(1);
    let mut back = backend(&buf);
    poke(&buf, REQ_PROD, 32);
    while back.poll_request().unwrap().is_some() {}
    assert_eq!(back.unanswered(), 32);
    // All 32 slots hold unanswered requests: the frontend cannot have published more,
    // whatever it claims, until we publish responses.
    poke(&buf, REQ_PROD, 33);
    assert_eq!(
        back.poll_request(),
        Err(RingError::PeerIndexOutOfRange {
            index: 33,
            private: 32,
            limit: 0
        })
    );
    // Answering privately does not free slots either: only published responses do.
    back.push_response(&1).unwrap();
    assert!(back.poll_request().is_err());
    back.push_responses_and_check_notify();
    assert_eq!(back.poll_request().map(|r| r.is_some()), Ok(true));
    // Responses never overtake consumed requests.
    for _ in 0..31 {
        back.push_response(&2).unwrap();
    }
    back.push_response(&3).unwrap();
    assert_eq!(back.push_response(&4), Err(RingError::NoRequestToAnswer));
    assert!(buf.guards_intact());
}

#[test]
fn rsp_prod_beyond_outstanding_requests_is_refused() {
    let buf = RingBuffer::with_guards(1);
    let mut front = frontend(&buf);
    // No request yet: any response is too many.
    poke(&buf, RSP_PROD, 1);
    assert_eq!(
        front.poll_response(),
        Err(RingError::TooManyResponses {
            rsp_prod: 1,
            rsp_cons: 0,
            outstanding: 0
        })
    );
    assert_eq!(
        front.final_check_for_responses(),
        Err(RingError::TooManyResponses {
            rsp_prod: 1,
            rsp_cons: 0,
            outstanding: 0
        })
    );
    // Three requests pushed, two published: at most two responses.
    for n in 0..3 {
        front.push_request(&req(n)).unwrap();
    }
    poke(&buf, RSP_PROD, 0);
    assert_eq!(front.poll_response(), Ok(None));
    front.push_requests_and_check_notify();
    front.push_request(&req(3)).unwrap();
    poke(&buf, RSP_PROD, 4);
    assert_eq!(
        front.poll_response(),
        Err(RingError::TooManyResponses {
            rsp_prod: 4,
            rsp_cons: 0,
            outstanding: 3
        })
    );
    poke(&buf, RSP_PROD, u32::MAX);
    assert_eq!(
        front.poll_response(),
        Err(RingError::PeerIndexBehind {
            index: u32::MAX,
            private: 0
        })
    );
    poke(&buf, HEADER_SIZE, 77);
    poke(&buf, RSP_PROD, 1);
    assert_eq!(front.poll_response(), Ok(Some(77)));
    // Back again, behind the response we consumed.
    poke(&buf, RSP_PROD, 0);
    assert_eq!(
        front.poll_response(),
        Err(RingError::PeerIndexBehind {
            index: 0,
            private: 1
        })
    );
    assert!(buf.guards_intact());
}

#[test]
fn slot_rewritten_after_copy_does_not_change_what_was_returned() {
    let buf = RingBuffer::with_guards(1);
    let mut back = backend(&buf);
    poke(&buf, HEADER_SIZE, 0x1111_1111);
    poke(&buf, REQ_PROD, 2);
    let first = back.poll_request().unwrap().unwrap();
    // The peer rewrites the slot right after we copied it out.
    poke(&buf, HEADER_SIZE, 0x2222_2222);
    assert_eq!(&first[..4], &0x1111_1111u32.to_le_bytes());
    // And while the next request sits unread: we take whatever is there at poll time,
    // once.
    poke(&buf, HEADER_SIZE + 64, 0x3333_3333);
    let second = back.poll_request().unwrap().unwrap();
    poke(&buf, HEADER_SIZE + 64, 0x4444_4444);
    assert_eq!(&second[..4], &0x3333_3333u32.to_le_bytes());

    // Same for a response seen by an honest frontend.
    let buf = RingBuffer::with_guards(1);
    let mut front = frontend(&buf);
    front.push_request(&req(9)).unwrap();
    front.push_requests_and_check_notify();
    poke(&buf, HEADER_SIZE, 5);
    poke(&buf, HEADER_SIZE + 4, 0);
    poke(&buf, RSP_PROD, 1);
    let rsp = front.poll_response().unwrap().unwrap();
    poke(&buf, HEADER_SIZE, 6);
    assert_eq!(rsp, 5);
    assert!(buf.guards_intact());
}

#[test]
fn garbage_event_indices_only_change_notifications() {
    let buf = RingBuffer::with_guards(1);
    let mut front = frontend(&buf);
    for ev in [0, 1, 2, u32::MAX, 0x8000_0000, 12345] {
        poke(&buf, REQ_EVENT, ev);
        front.push_request(&req(ev)).unwrap();
        let _ = front.push_requests_and_check_notify();
        poke(&buf, RSP_PROD, peek(&buf, REQ_PROD));
        assert!(front.poll_response().unwrap().is_some());
    }
    assert_eq!(
        peek(&buf, RSP_EVENT),
        1,
        "the frontend's own event index is untouched"
    );
    assert!(buf.guards_intact());
}

#[test]
fn byte_reader_refuses_impossible_prod() {
    let buf = RingBuffer::with_guards(1);
    let (_w, mut r) = byte_ends(&buf);
    let mut out = [0u8; 4096];
    // More than the 2048-byte ring holds.
    poke(&buf, PROD, 2049);
    assert_eq!(
        r.read(&mut out),
        Err(RingError::PeerIndexOutOfRange {
            index: 2049,
            private: 0,
            limit: 2048
        })
    );
    assert_eq!(
        r.available(),
        Err(RingError::PeerIndexOutOfRange {
            index: 2049,
            private: 0,
            limit: 2048
        })
    );
    assert!(r.request_data_notification(1).is_err());
    // Exactly full is fine; a read takes no more than asked.
    poke(&buf, PROD, 2048);
    assert_eq!(r.read(&mut out[..10]), Ok(10));
    assert_eq!(r.read(&mut out), Ok(2038));
    // Not published our consumption: the writer may not have reused any space.
    poke(&buf, PROD, 2049);
    assert_eq!(
        r.read(&mut out),
        Err(RingError::PeerIndexOutOfRange {
            index: 2049,
            private: 2048,
            limit: 0
        })
    );
    r.publish();
    assert_eq!(r.read(&mut out), Ok(1));
    // Backwards.
    poke(&buf, PROD, 100);
    assert_eq!(
        r.read(&mut out),
        Err(RingError::PeerIndexBehind {
            index: 100,
            private: 2049
        })
    );
    assert!(buf.guards_intact());
}

#[test]
fn byte_writer_refuses_impossible_cons() {
    let buf = RingBuffer::with_guards(1);
    let (mut w, _r) = byte_ends(&buf);
    assert_eq!(w.write(&[1; 100]), Ok(100));
    // The reader cannot have read unpublished bytes.
    poke(&buf, CONS, 1);
    assert_eq!(
        w.free(),
        Err(RingError::PeerIndexOutOfRange {
            index: 1,
            private: 0,
            limit: 0
        })
    );
    w.publish();
    poke(&buf, CONS, 101);
    assert_eq!(
        w.free(),
        Err(RingError::PeerIndexOutOfRange {
            index: 101,
            private: 0,
            limit: 100
        })
    );
    poke(&buf, CONS, 60);
    assert_eq!(w.free(), Ok(2048 - 40));
    poke(&buf, CONS, 59);
    assert_eq!(
        w.free(),
        Err(RingError::PeerIndexBehind {
            index: 59,
            private: 60
        })
    );
    // Half the ring (the cap) is known free from the last good `cons`: no re-read.
    assert_eq!(w.request_space_notification(2000), Ok(true));
    // A write that needs a fresh `cons` fails too, and writes nothing.
    assert_eq!(
        w.write(&[2; 2048]),
        Err(RingError::PeerIndexBehind {
            index: 59,
            private: 60
        })
    );
    assert_eq!(w.unpublished(), 0);
    assert!(buf.guards_intact());
}

#[test]
fn garbage_byte_events_only_change_notifications() {
    let buf = RingBuffer::with_guards(1);
    let (mut w, mut r) = byte_ends(&buf);
    let mut out = [0u8; 64];
    for ev in [0, 1, u32::MAX, 0x8000_0000, 7] {
        poke(&buf, PROD_EVENT, ev);
        poke(&buf, CONS_EVENT, ev);
        w.write(&[3; 40]).unwrap();
        let _ = w.publish();
        assert_eq!(r.read(&mut out), Ok(40));
        let _ = r.publish();
    }
    assert!(buf.guards_intact());
}

/// A hostile header word write, between honest operations.
#[derive(Clone, Debug)]
enum Attack {
    /// Write this value to the header word at this offset (any of the four fields).
    Header(u8, u32),
    /// Move the peer's index by a small signed amount.
    Nudge(u8, i16),
    /// Rewrite a data word.
    Data(u16, u32),
    /// Let the honest side run one operation.
    Honest(u8, u16),
}

fn attack() -> impl Strategy<Value = Attack> {
    prop_oneof![
        (0u8..4, any::<u32>()).prop_map(|(f, v)| Attack::Header(f, v)),
        (0u8..4, any::<i16>()).prop_map(|(f, d)| Attack::Nudge(f, d)),
        (any::<u16>(), any::<u32>()).prop_map(|(o, v)| Attack::Data(o, v)),
        (0u8..6, 0u16..5000).prop_map(|(op, n)| Attack::Honest(op, n)),
    ]
}

fn apply(buf: &RingBuffer, fields: [usize; 4], a: &Attack) {
    match *a {
        Attack::Header(f, v) => poke(buf, fields[f as usize], v),
        Attack::Nudge(f, d) => {
            let off = fields[f as usize];
            poke(buf, off, peek(buf, off).wrapping_add(d as i32 as u32));
        }
        Attack::Data(o, v) => {
            let off = HEADER_SIZE + (o as usize * 4) % (buf.len() - HEADER_SIZE);
            poke(buf, off, v);
        }
        Attack::Honest(..) => {}
    }
}

fn ok_or_peer_error<T>(r: Result<T, RingError>) -> Result<Option<T>, TestCaseError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(
            RingError::PeerIndexOutOfRange { .. }
            | RingError::PeerIndexBehind { .. }
            | RingError::TooManyResponses { .. },
        ) => Ok(None),
        Err(e) => Err(TestCaseError::fail(format!("unexpected error {e:?}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random header and slot rewrites against an honest backend (the test is a
    /// hostile frontend): only typed errors, nothing outside the region.
    #[test]
    fn fuzzed_frontend_cannot_break_the_backend(attacks in prop::collection::vec(attack(), 1..200)) {
        let buf = RingBuffer::with_guards(1);
        let mut back = backend(&buf);
        for a in &attacks {
            apply(&buf, [REQ_PROD, RSP_EVENT, REQ_PROD, RSP_PROD], a);
            if let Attack::Honest(op, n) = *a {
                match op {
                    0 | 1 => { ok_or_peer_error(back.poll_request())?; }
                    2 => {
                        let r = back.push_response(&(n as u64));
                        prop_assert!(matches!(r, Ok(()) | Err(RingError::NoRequestToAnswer)));
                    }
                    3 => { back.push_responses_and_check_notify(); }
                    4 => { ok_or_peer_error(back.final_check_for_requests())?; }
                    _ => prop_assert!(back.unanswered() <= back.size()),
                }
            }
        }
        prop_assert!(buf.guards_intact());
    }

    /// The same against an honest frontend (the test is a hostile backend).
    #[test]
    fn fuzzed_backend_cannot_break_the_frontend(attacks in prop::collection::vec(attack(), 1..200)) {
        let buf = RingBuffer::with_guards(1);
        let mut front = frontend(&buf);
        for a in &attacks {
            apply(&buf, [RSP_PROD, REQ_EVENT, RSP_PROD, REQ_PROD], a);
            if let Attack::Honest(op, n) = *a {
                match op {
                    0 | 1 => {
                        let r = front.push_request(&req(n as u32));
                        prop_assert!(matches!(r, Ok(()) | Err(RingError::Full)));
                    }
                    2 => { front.push_requests_and_check_notify(); }
                    3 => { ok_or_peer_error(front.poll_response())?; }
                    4 => { ok_or_peer_error(front.final_check_for_responses())?; }
                    _ => prop_assert!(front.free_slots() <= front.size()),
                }
            }
        }
        prop_assert!(buf.guards_intact());
    }

    /// Random rewrites against an honest byte reader and writer at once (the test
    /// rewrites their fields behind both): reads never return more than asked, nothing
    /// outside the region is touched.
    #[test]
    fn fuzzed_byte_peers_cannot_break_either_end(attacks in prop::collection::vec(attack(), 1..200)) {
        let buf = RingBuffer::with_guards(2);
        let (mut w, mut r) = byte_ends(&buf);
        let src = vec![0x5au8; 5000];
        let mut dst = vec![0u8; 5000];
        for a in &attacks {
            apply(&buf, [PROD, CONS, PROD_EVENT, CONS_EVENT], a);
            if let Attack::Honest(op, n) = *a {
                let n = n as usize;
                match op {
                    0 => {
                        if let Some(k) = ok_or_peer_error(w.write(&src[..n]))? {
                            prop_assert!(k <= n);
                        }
                    }
                    1 => { w.publish(); }
                    2 => {
                        if let Some(k) = ok_or_peer_error(r.read(&mut dst[..n]))? {
                            prop_assert!(k <= n);
                        }
                    }
                    3 => { r.publish(); }
                    4 => {
                        ok_or_peer_error(r.request_data_notification(n as u32))?;
                        ok_or_peer_error(r.available())?;
                    }
                    _ => {
                        ok_or_peer_error(w.request_space_notification(n as u32))?;
                        if let Some(f) = ok_or_peer_error(w.free())? {
                            prop_assert!(f <= w.size());
                        }
                    }
                }
            }
        }
        prop_assert!(buf.guards_intact());
    }
}
