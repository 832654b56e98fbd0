//! Property tests of the netif wire format (`parapet_abi::netif`): every ring
//! entry round-trips through its bytes, a frame of any length split into
//! fragments as the sender does is decoded by `Chain` to the same length and
//! buffers, and no sequence of fragments, however hostile, makes `Chain` panic
//! or accept a frame outside its limits.

use parapet_abi::netif::{
    Chain, RxRequest, RxResponse, TxRequest, TxResponse, FRAME_MAX, FRAME_MAX_SG, FRAME_MIN,
    MAX_FRAGS, RXF_MORE, TXF_MORE,
};
use parapet_abi::ring::PAGE_SIZE;
use proptest::prelude::*;
use zerocopy::{FromBytes, IntoBytes};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1024,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn entries_round_trip_through_bytes(a: u16, b: u16, c: u16, d: u16, e: i16, f: u32) {
        let t = TxRequest { id: a, len: b, flags: c, _pad: d };
        prop_assert_eq!(TxRequest::read_from_bytes(t.as_bytes()).unwrap(), t);
        let t = TxResponse { id: a, status: e, _pad: f };
        prop_assert_eq!(TxResponse::read_from_bytes(t.as_bytes()).unwrap(), t);
        let r = RxRequest { id: a, _pad: [b, c, d] };
        prop_assert_eq!(RxRequest::read_from_bytes(r.as_bytes()).unwrap(), r);
        let r = RxResponse { id: a, len: b, status: e, flags: d };
        prop_assert_eq!(RxResponse::read_from_bytes(r.as_bytes()).unwrap(), r);
        // The "more" flags sit where both ends look for them.
        prop_assert_eq!(TxRequest { flags: TXF_MORE, ..t0() }.as_bytes()[4], 1);
        prop_assert_eq!(RxResponse { flags: RXF_MORE, ..r0() }.as_bytes()[6], 1);
    }

    /// What netfront (TX) and netback (RX) send, `Chain` (netback's TX,
    /// netfront's RX) decodes back: same length, same buffers in order.
    #[test]
    fn split_frames_decode_to_the_same_frame(
        len in FRAME_MIN..=FRAME_MAX_SG,
        ids in proptest::collection::vec(any::<u16>(), MAX_FRAGS),
    ) {
        let n = Chain::frags(len);
        prop_assert!(n <= MAX_FRAGS);
        let mut c = Chain::new();
        for (i, &id) in ids[..n].iter().enumerate() {
            let more = i + 1 < n;
            let got = c.push(id, Chain::frag_len(len, i), more, FRAME_MAX_SG);
            prop_assert_eq!(got, Ok(!more));
        }
        prop_assert_eq!(c.len(), len);
        prop_assert_eq!(c.ids(), &ids[..n]);
        // Without large frames only a one-buffer frame of at most FRAME_MAX passes.
        let mut one = Chain::new();
        let r = one.push(ids[0], Chain::frag_len(len, 0), n > 1, FRAME_MAX);
        prop_assert_eq!(r.is_ok(), len <= FRAME_MAX);
    }

    /// Any fragments: no panic, and a frame is only ever complete within its
    /// limits.
    #[test]
    fn hostile_fragments_never_make_a_bad_frame(
        max in prop_oneof![Just(FRAME_MAX), Just(FRAME_MAX_SG), any::<usize>()],
        frags in proptest::collection::vec(
            (any::<u16>(), prop_oneof![0usize..20, Just(PAGE_SIZE), any::<usize>()], any::<bool>()),
            0..40,
        ),
    ) {
        let mut c = Chain::new();
        for (id, len, more) in frags {
            let before = c;
            match c.push(id, len, more, max) {
                Ok(true) => {
                    prop_assert!(c.len() >= FRAME_MIN);
                    prop_assert!(c.len() <= max.min(FRAME_MAX_SG));
                    prop_assert!(c.ids().len() <= MAX_FRAGS);
                    c.clear();
                }
                Ok(false) => prop_assert!(c.ids().len() < MAX_FRAGS),
                Err(_) => {
                    prop_assert_eq!(c, before, "a refusal leaves the chain as it was");
                    c.clear();
                }
            }
        }
    }
}

fn t0() -> TxRequest {
    TxRequest::default()
}

fn r0() -> RxResponse {
    RxResponse::default()
}
