//! Tests of the netfront core: posting, sending, receiving, large frames,
//! protocol and ring errors.

use super::*;
use core::mem::offset_of;
use parapet_abi::netif::{rx_page, tx_page, FRAME_MIN, MTU_SG, TXF_MORE};
use parapet_abi::netif::{split_req_tampered, NET_PAGES};
use parapet_abi::ring::{BackRing, RingBuffer, SringHeader, PAGE_SIZE};
use smoltcp::phy::{Device, Medium};
use smoltcp::phy::{RxToken, TxToken};
use smoltcp::time::Instant;
use std::cell::RefCell;
use std::rc::Rc;

/// Buffer pages as the frontend may use them: it only ever writes TX buffers and
/// reads RX buffers, at most a frame, within one page. Anything else fails.
#[derive(Clone)]
pub(super) struct CheckedPages(Rc<RefCell<Vec<u8>>>);

impl CheckedPages {
    pub(super) fn new() -> Self {
        CheckedPages(Rc::new(RefCell::new(vec![0; NET_PAGES * PAGE_SIZE])))
    }
    pub(super) fn poke(&self, page: usize, data: &[u8]) {
        self.0.borrow_mut()[page * PAGE_SIZE..][..data.len()].copy_from_slice(data);
    }
    pub(super) fn peek(&self, page: usize, len: usize) -> Vec<u8> {
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

pub(super) type TxBack<'a> = BackRing<'a, TxRequest, TxResponse>;
pub(super) type RxBack<'a> = BackRing<'a, RxRequest, RxResponse>;

pub(super) fn frame(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

/// Sends `data` through the device; false if no token was offered.
pub(super) fn send(nf: &mut Netfront<'_, CheckedPages>, data: &[u8]) -> bool {
    match nf.transmit(Instant::ZERO) {
        Some(t) => {
            t.consume(data.len(), |b| b.copy_from_slice(data));
            true
        }
        None => false,
    }
}

/// Every frame the device has for smoltcp.
pub(super) fn recv_all(nf: &mut Netfront<'_, CheckedPages>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some((rx, _tx)) = nf.receive(Instant::ZERO) {
        out.push(rx.consume(|f| f.to_vec()));
    }
    out
}

pub(super) fn drain<T: parapet_abi::ring::RingEntry, U: parapet_abi::ring::RingEntry>(
    b: &mut BackRing<'_, T, U>,
) -> Vec<T> {
    std::iter::from_fn(|| b.poll_request().unwrap()).collect()
}

pub(super) fn tx_rsp(tb: &mut TxBack<'_>, id: u16, status: NetStatus) {
    tb.push_response(&TxResponse {
        id,
        status: status.raw(),
        _pad: 0,
    })
    .unwrap();
}

pub(super) fn rx_rsp(rb: &mut RxBack<'_>, id: u16, len: u16, status: NetStatus) {
    rb.push_response(&RxResponse {
        id,
        len,
        status: status.raw(),
        flags: 0,
    })
    .unwrap();
}

/// Sets that must always partition the buffers.
pub(super) fn check_invariants(nf: &Netfront<'_, CheckedPages>) {
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
