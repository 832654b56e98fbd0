//! A hostile frontend, property-tested: random requests, ids and lengths,
//! rewritten indices, scribbled slots and pages.

use super::*;
use core::mem::offset_of;
use parapet_abi::netif::{split_req_tampered, RING_SLOTS};
use parapet_abi::ring::{RingBuffer, SringHeader, PAGE_SIZE};
use proptest::prelude::*;

use super::tests::{bytes, frame, CheckedPages};

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
