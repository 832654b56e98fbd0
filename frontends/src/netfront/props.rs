//! A hostile backend, property-tested: random responses, rewritten indices,
//! scribbled slots and pages.

use super::*;
use core::mem::offset_of;
use parapet_abi::netif::FRAME_MIN;
use parapet_abi::netif::{split_req_tampered, NET_PAGES};
use parapet_abi::ring::{RingBuffer, SringHeader, PAGE_SIZE};
use proptest::prelude::*;
use smoltcp::phy::Device;
use smoltcp::phy::TxToken;
use smoltcp::time::Instant;

use super::tests::*;

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
    let tx = (id.clone(), status.clone(), any::<u32>()).prop_map(|(id, status, _pad)| TxResponse {
        id,
        status,
        _pad,
    });
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
