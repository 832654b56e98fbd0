//! Property tests of the ring protocol: random operation sequences against a model.
//!
//! Both ends run on one thread, so every interleaving is a sequence of whole calls;
//! `abi/tests/loom.rs` covers the concurrent ones. Indices start at random values,
//! often just below 2^32, so the wrap is crossed all the time.

// Plain atomics only: under `cfg(loom)` the ring needs a loom model (tests/loom.rs).
#![cfg(not(loom))]

use std::collections::VecDeque;

use parapet_abi::ring::index::{check_peer_index, clamp_want, needs_notify, wrap_split};
use parapet_abi::ring::{RingBuffer, RingError};
use proptest::prelude::*;

/// Start indices: zero, just below the wrap, just below 2^31, or anything.
fn start_index() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        (u32::MAX - 3000)..=u32::MAX,
        0x7fff_f000u32..=0x8000_0100,
        any::<u32>(),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn peer_index_window_is_exact(lo in any::<u32>(), d in any::<u32>(), limit in 0u32..=(1 << 31)) {
        let index = lo.wrapping_add(d);
        match check_peer_index(index, lo, limit) {
            Ok(n) => prop_assert!(d <= limit && n == d),
            Err(RingError::PeerIndexOutOfRange { index: i, private, limit: l }) => {
                prop_assert!(d > limit && (d as i32) >= 0);
                prop_assert_eq!((i, private, l), (index, lo, limit));
            }
            Err(RingError::PeerIndexBehind { index: i, private }) => {
                prop_assert!(d > limit && (d as i32) < 0);
                prop_assert_eq!((i, private), (index, lo));
            }
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
    }

    #[test]
    fn notify_iff_event_in_published_range(old in any::<u32>(), k in 0u32..(1 << 31), e in 0u32..(1 << 31)) {
        let new = old.wrapping_add(k);
        let event = old.wrapping_add(e);
        prop_assert_eq!(needs_notify(old, new, event), e >= 1 && e <= k);
    }

    #[test]
    fn wrap_split_covers_the_copy(size_log in 0u32..20, off in any::<u32>(), len in any::<u32>()) {
        let size = 1u32 << size_log;
        let off = off & (size - 1);
        let len = len % (size + 1);
        let (a, b) = wrap_split(off, len, size);
        prop_assert_eq!(a + b, len);
        prop_assert!(off + a <= size && b <= off);
        let w = clamp_want(len, size);
        prop_assert!(w >= 1 && w <= (size / 2).max(1));
    }
}

/// One step of the request/response test.
#[derive(Clone, Debug)]
enum ReqOp {
    /// Frontend pushes up to this many requests.
    Push(u8),
    /// Frontend publishes.
    Publish,
    /// Backend consumes up to this many requests (answering none yet).
    Poll(u8),
    /// Backend answers up to this many consumed requests.
    Respond(u8),
    /// Backend publishes responses.
    PublishRsp,
    /// Frontend consumes up to this many responses.
    PollRsp(u8),
    /// Backend goes to sleep if idle.
    SleepBack,
    /// Frontend goes to sleep if idle.
    SleepFront,
}

/// Counts biased towards 1 and 2, where off-by-one mistakes show.
fn count() -> impl Strategy<Value = u8> {
    prop_oneof![3 => 1u8..3, 1 => 1u8..40]
}

fn req_op() -> impl Strategy<Value = ReqOp> {
    prop_oneof![
        4 => count().prop_map(ReqOp::Push),
        3 => Just(ReqOp::Publish),
        3 => count().prop_map(ReqOp::Poll),
        3 => count().prop_map(ReqOp::Respond),
        3 => Just(ReqOp::PublishRsp),
        3 => count().prop_map(ReqOp::PollRsp),
        1 => Just(ReqOp::SleepBack),
        1 => Just(ReqOp::SleepFront),
    ]
}

/// A side's view of notifications: `armed` (it asked for one since the last one it
/// got; initially true, as the event indices start at `start + 1`) and `asleep`.
#[derive(Default)]
struct Waiter {
    armed: bool,
    asleep: bool,
}

impl Waiter {
    fn new() -> Self {
        Waiter {
            armed: true,
            asleep: false,
        }
    }

    /// The peer published `new_entries` entries (more than zero) and `notify` says
    /// whether it would notify: never unasked, never missed for a sleeper.
    fn check(&mut self, new_entries: bool, notify: bool) -> Result<(), TestCaseError> {
        if notify {
            prop_assert!(self.armed, "notification nobody asked for");
            prop_assert!(new_entries, "notification for nothing");
            self.armed = false;
            self.asleep = false;
        } else if new_entries {
            prop_assert!(!self.asleep, "lost wake-up: a sleeper was not notified");
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn request_ring_matches_model(
        pages in prop_oneof![Just(1usize), Just(2), Just(16)],
        start in start_index(),
        ops in prop::collection::vec(req_op(), 1..250),
    ) {
        type Req = [u8; 56];
        type Rsp = u64;
        let mut buf = RingBuffer::new(pages);
        let (mut front, mut back) = buf.split_req_at::<Req, Rsp>(start).unwrap();
        let size = front.size() as usize;
        prop_assert_eq!(size, match pages { 1 => 64, 2 => 128, _ => 1024 });

        let mut next = 0u64;
        let mut unpublished = VecDeque::new();
        let mut published = VecDeque::new();
        let mut unanswered = VecDeque::new();
        let mut rsp_unpublished = VecDeque::new();
        let mut rsp_published = VecDeque::new();
        let mut outstanding = 0usize; // pushed, response not yet consumed
        let (mut back_w, mut front_w) = (Waiter::new(), Waiter::new());
        let req_of = |n: u64| {
            let mut r = [0u8; 56];
            r[..8].copy_from_slice(&n.to_le_bytes());
            r[55] = (n as u8).wrapping_mul(7);
            r
        };

        for op in ops {
            match op {
                ReqOp::Push(k) => for _ in 0..k {
                    let res = front.push_request(&req_of(next));
                    if outstanding < size {
                        prop_assert_eq!(res, Ok(()));
                        unpublished.push_back(next);
                        next += 1;
                        outstanding += 1;
                    } else {
                        prop_assert_eq!(res, Err(RingError::Full));
                    }
                    prop_assert_eq!(front.free_slots() as usize, size - outstanding);
                },
                ReqOp::Publish => {
                    let new = !unpublished.is_empty();
                    published.extend(unpublished.drain(..));
                    let notify = front.push_requests_and_check_notify();
                    back_w.check(new, notify)?;
                }
                ReqOp::Poll(k) if !back_w.asleep => for _ in 0..k {
                    let got = back.poll_request().unwrap();
                    prop_assert_eq!(got, published.pop_front().map(req_of));
                    if let Some(r) = got {
                        unanswered.push_back(u64::from_le_bytes(r[..8].try_into().unwrap()));
                    }
                },
                ReqOp::Respond(k) if !back_w.asleep => for _ in 0..k {
                    // Answer with the request's number (or anything if there is none).
                    let answer = unanswered.front().copied().unwrap_or(u64::MAX);
                    let res = back.push_response(&answer);
                    match unanswered.pop_front() {
                        Some(n) => {
                            prop_assert_eq!(res, Ok(()));
                            rsp_unpublished.push_back(n);
                        }
                        None => prop_assert_eq!(res, Err(RingError::NoRequestToAnswer)),
                    }
                },
                ReqOp::PublishRsp if !back_w.asleep => {
                    let new = !rsp_unpublished.is_empty();
                    rsp_published.extend(rsp_unpublished.drain(..));
                    let notify = back.push_responses_and_check_notify();
                    front_w.check(new, notify)?;
                }
                ReqOp::PollRsp(k) if !front_w.asleep => for _ in 0..k {
                    let got = front.poll_response().unwrap();
                    prop_assert_eq!(got, rsp_published.pop_front());
                    if got.is_some() {
                        outstanding -= 1;
                    }
                },
                ReqOp::SleepBack if !back_w.asleep => {
                    let work = back.final_check_for_requests().unwrap();
                    prop_assert_eq!(work, !published.is_empty());
                    if !work {
                        back_w.armed = true;
                        back_w.asleep = true;
                    }
                }
                ReqOp::SleepFront if !front_w.asleep => {
                    let work = front.final_check_for_responses().unwrap();
                    prop_assert_eq!(work, !rsp_published.is_empty());
                    if !work {
                        front_w.armed = true;
                        front_w.asleep = true;
                    }
                }
                _ => {} // the side is asleep
            }
        }
    }
}

// Like `request_ring_matches_model`, but responses carry the request number so that
// order and content are checked end to end.
proptest! {
    #![proptest_config(config())]

    #[test]
    fn responses_answer_requests_in_order(
        start in start_index(),
        batches in prop::collection::vec((1usize..40, 1usize..40), 1..60),
    ) {
        let mut buf = RingBuffer::new(1);
        let (mut front, mut back) = buf.split_req_at::<u64, u64>(start).unwrap();
        let (mut next, mut expect) = (0u64, 0u64);
        for (push, answer) in batches {
            for _ in 0..push {
                if front.push_request(&next).is_ok() {
                    next += 1;
                }
            }
            front.push_requests_and_check_notify();
            for _ in 0..answer {
                match back.poll_request().unwrap() {
                    Some(r) => back.push_response(&(r * 3 + 1)).unwrap(),
                    None => break,
                }
            }
            back.push_responses_and_check_notify();
            while let Some(v) = front.poll_response().unwrap() {
                prop_assert_eq!(v, expect * 3 + 1);
                expect += 1;
            }
        }
        prop_assert!(expect <= next);
    }
}

/// One step of the byte-ring test.
#[derive(Clone, Debug)]
enum ByteOp {
    Write(u16),
    Publish,
    Read(u16),
    PublishRead,
    /// The reader sleeps until this many bytes are readable.
    SleepReader(u16),
    /// The writer sleeps until this many bytes are free.
    SleepWriter(u16),
}

fn byte_op() -> impl Strategy<Value = ByteOp> {
    prop_oneof![
        4 => (0u16..3000).prop_map(ByteOp::Write),
        3 => Just(ByteOp::Publish),
        4 => (0u16..3000).prop_map(ByteOp::Read),
        3 => Just(ByteOp::PublishRead),
        1 => (0u16..3000).prop_map(ByteOp::SleepReader),
        1 => (0u16..3000).prop_map(ByteOp::SleepWriter),
    ]
}

/// Byte `i` of the test stream.
fn stream_byte(i: u64) -> u8 {
    (i.wrapping_mul(0x9e37_79b9) >> 13) as u8
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn byte_ring_matches_model(
        pages in prop_oneof![Just(1usize), Just(2), Just(3)],
        start in start_index(),
        ops in prop::collection::vec(byte_op(), 1..250),
    ) {
        let mut buf = RingBuffer::new(pages);
        let (mut w, mut r) = buf.split_bytes_at(start).unwrap();
        let size = w.size() as u64;
        prop_assert_eq!(size, [0, 2048, 4096, 8192][pages]);
        // Model, in stream offsets (u64, never wrap).
        let (mut prod, mut prod_pub, mut cons, mut cons_pub) = (0u64, 0u64, 0u64, 0u64);
        // Thresholds the sleepers wait for: prod >= data_at, cons_pub >= space_at.
        let (mut data_at, mut space_at) = (0u64, 0u64);
        let (mut reader, mut writer) = (Waiter::new(), Waiter::new());
        writer.armed = false; // the writer wants no notification initially
        let mut scratch = vec![0u8; 3000];

        for op in ops {
            match op {
                ByteOp::Write(n) if !writer.asleep => {
                    let data: Vec<u8> = (prod..prod + n as u64).map(stream_byte).collect();
                    let took = w.write(&data).unwrap() as u64;
                    prop_assert_eq!(took, (n as u64).min(size - (prod - cons_pub)));
                    prod += took;
                }
                ByteOp::Publish if !writer.asleep => {
                    let notify = w.publish();
                    let new = prod > prod_pub;
                    prod_pub = prod;
                    if reader.asleep && new && prod_pub >= data_at {
                        prop_assert!(notify, "lost wake-up of the reader");
                    }
                    if notify {
                        prop_assert!(reader.armed && new);
                        reader.armed = false;
                        reader.asleep = false;
                    }
                }
                ByteOp::Read(n) if !reader.asleep => {
                    let got = r.read(&mut scratch[..n as usize]).unwrap() as u64;
                    prop_assert_eq!(got, (n as u64).min(prod_pub - cons));
                    for (i, b) in scratch[..got as usize].iter().enumerate() {
                        prop_assert_eq!(*b, stream_byte(cons + i as u64));
                    }
                    cons += got;
                }
                ByteOp::PublishRead if !reader.asleep => {
                    let notify = r.publish();
                    let new = cons > cons_pub;
                    cons_pub = cons;
                    if writer.asleep && new && cons_pub >= space_at {
                        prop_assert!(notify, "lost wake-up of the writer");
                    }
                    if notify {
                        prop_assert!(writer.armed && new);
                        writer.armed = false;
                        writer.asleep = false;
                    }
                }
                ByteOp::SleepReader(want) if !reader.asleep => {
                    let want = clamp_want(want as u32, size as u32) as u64;
                    let ready = r.request_data_notification(want as u32).unwrap();
                    prop_assert_eq!(ready, prod_pub - cons >= want);
                    if !ready {
                        reader.armed = true;
                        reader.asleep = true;
                        data_at = cons + want;
                    }
                }
                ByteOp::SleepWriter(want) if !writer.asleep => {
                    let want = clamp_want(want as u32, size as u32) as u64;
                    let ready = w.request_space_notification(want as u32).unwrap();
                    prop_assert_eq!(ready, size - (prod - cons_pub) >= want);
                    if !ready {
                        writer.armed = true;
                        writer.asleep = true;
                        space_at = prod + want - size;
                    }
                }
                _ => {}
            }
        }
    }
}
