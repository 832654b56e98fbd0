//! Tests of the vif core: delivery both ways, large frames, floods, hostile
//! and corrupt requests.

use super::*;
use core::mem::offset_of;
use parapet_abi::netif::{split_req_tampered, RING_SLOTS};
use parapet_abi::ring::{RingBuffer, SringHeader, PAGE_SIZE};
use std::cell::RefCell;
use std::rc::Rc;

/// Buffer pages as the backend may use them: it only ever reads TX buffers and
/// writes RX buffers, within one page. Anything else fails the test.
#[derive(Clone, Default)]
pub(super) struct CheckedPages(Rc<RefCell<Vec<u8>>>);

impl CheckedPages {
    pub(super) fn new() -> Self {
        CheckedPages(Rc::new(RefCell::new(vec![0; 2 * NET_BUFS * PAGE_SIZE])))
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
pub(super) fn bytes(f: &TxFrame<'_, CheckedPages>) -> Vec<u8> {
    let mut v = vec![0; f.len()];
    f.read(0, &mut v);
    v
}

pub(super) fn frame(seed: u8, len: usize) -> Vec<u8> {
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
