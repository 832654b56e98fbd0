//! Tests of the layouts, the control page, statuses, sets, chains.

use super::*;
use crate::ring::{RingBuffer, SringHeader, HEADER_SIZE};
use zerocopy::FromZeros;

#[test]
fn entry_layouts() {
    let r = TxRequest {
        id: 0x0102,
        len: 0x0304,
        flags: 0x0506,
        _pad: 0x0708,
    };
    assert_eq!(r.as_bytes(), &[2, 1, 4, 3, 6, 5, 8, 7]);
    let r = TxResponse {
        id: 7,
        status: NetStatus::Dropped.raw(),
        _pad: 0,
    };
    assert_eq!(r.as_bytes(), &[7, 0, 0xfe, 0xff, 0, 0, 0, 0]);
    let r = RxRequest {
        id: 31,
        _pad: [0; 3],
    };
    assert_eq!(r.as_bytes(), &[31, 0, 0, 0, 0, 0, 0, 0]);
    let r = RxResponse {
        id: 3,
        len: 1514,
        status: 0,
        flags: RXF_MORE,
    };
    assert_eq!(r.as_bytes(), &[3, 0, 0xea, 0x05, 0, 0, 1, 0]);
    assert_eq!(
        RxResponse::read_from_bytes(&[1, 0, 14, 0, 0xff, 0xff, 0, 0]).unwrap(),
        RxResponse {
            id: 1,
            len: 14,
            status: -1,
            flags: 0
        }
    );
    assert_eq!(RING_SLOTS, 256);
    assert!(HEADER_SIZE + RING_SLOTS as usize * 8 <= PAGE_SIZE);
}

#[test]
fn control_page_layout_and_check() {
    let mut tx = [0u32; NET_BUFS];
    let mut rx = [0u32; NET_BUFS];
    for i in 0..NET_BUFS {
        tx[i] = 100 + i as u32;
        rx[i] = 200 + i as u32;
    }
    let mac = [0x02, 0, 0, 0, 0, 0x11];
    let c = NetifControl::new(5, 6, tx, rx, mac);
    assert_eq!(c.check(), Ok(()));
    let b = c.as_bytes();
    assert_eq!(&b[0..4], b"NETF");
    assert_eq!(&b[4..8], &NETIF_VERSION.to_le_bytes());
    assert_eq!(&b[8..12], &5u32.to_le_bytes());
    assert_eq!(&b[12..16], &6u32.to_le_bytes());
    assert_eq!(&b[16..20], &100u32.to_le_bytes());
    assert_eq!(&b[16 + 4 * 31..16 + 4 * 32], &131u32.to_le_bytes());
    assert_eq!(&b[272..276], &200u32.to_le_bytes());
    assert_eq!(&b[528..534], &mac);
    // A copy taken from a whole (peer-written) page.
    let mut page = [0u8; PAGE_SIZE];
    page[..b.len()].copy_from_slice(b);
    let (copy, _) = NetifControl::read_from_prefix(&page).unwrap();
    assert_eq!(copy, c);

    let mut bad = c;
    bad.magic = 0;
    assert_eq!(bad.check(), Err(ControlError::BadMagic(0)));
    let mut bad = c;
    bad.version = 1;
    assert_eq!(bad.check(), Err(ControlError::BadVersion(1)));
    let mut bad = c;
    bad.mac = [0xff; 6];
    assert_eq!(bad.check(), Err(ControlError::BadMac([0xff; 6])));
    bad.mac = [0; 6];
    assert_eq!(bad.check(), Err(ControlError::BadMac([0; 6])));
    assert_eq!(
        NetifControl::new_zeroed().check(),
        Err(ControlError::BadMagic(0))
    );
}

#[test]
fn status_round_trips() {
    for s in [NetStatus::Okay, NetStatus::Error, NetStatus::Dropped] {
        assert_eq!(NetStatus::from(s.raw()), s);
    }
    assert_eq!(NetStatus::from(0), NetStatus::Okay);
    assert_eq!(NetStatus::from(-1), NetStatus::Error);
    assert_eq!(NetStatus::from(-2), NetStatus::Dropped);
    assert_eq!(NetStatus::from(5), NetStatus::Unknown(5));
    assert_eq!(NetStatus::from(i16::MIN), NetStatus::Unknown(i16::MIN));
    assert_eq!(i16::from(NetStatus::Unknown(9)), 9);
}

#[test]
fn macs_round_trip_through_u64() {
    let mac = [0x02, 0, 0, 0, 0, 0x0a];
    assert_eq!(mac_to_u64(mac), 0x0200_0000_000a);
    assert_eq!(mac_from_u64(0x0200_0000_000a), Some(mac));
    assert_eq!(mac_from_u64(mac_to_u64([0xff; 6])), Some([0xff; 6]));
    assert_eq!(mac_from_u64(1 << 48), None);
}

#[test]
fn buf_sets() {
    let mut s = BufSet::EMPTY;
    assert!(s.is_empty());
    assert!(s.insert(0));
    assert!(s.insert(NET_BUFS - 1));
    assert!(!s.insert(0), "duplicate");
    assert!(!s.insert(NET_BUFS), "out of range");
    assert!(!s.insert(usize::MAX));
    assert!(!s.contains(NET_BUFS));
    assert!(!s.contains(usize::MAX));
    assert_eq!(s.len(), 2);
    assert!(!s.remove(5));
    assert!(!s.remove(1000));
    assert_eq!(s.pop_first(), Some(0));
    assert_eq!(s.pop_first(), Some(NET_BUFS - 1));
    assert_eq!(s.pop_first(), None);
    let mut all = BufSet::ALL;
    assert_eq!(all.len(), NET_BUFS);
    assert!(all.is_disjoint(BufSet::EMPTY));
    assert!(!all.is_disjoint(all));
    for i in 0..NET_BUFS {
        assert_eq!(all.pop_first(), Some(i));
    }
    assert!(all.is_empty());
}

#[test]
fn page_numbering() {
    assert_eq!(tx_page(0), 0);
    assert_eq!(tx_page(NET_BUFS - 1), NET_BUFS - 1);
    assert_eq!(rx_page(0), NET_BUFS);
    assert_eq!(rx_page(NET_BUFS - 1), NET_PAGES - 1);
}

#[test]
fn host_pages_are_shared_and_checked() {
    let mut a = HostPages::new();
    let b = a.clone();
    a.write(rx_page(3), 10, b"hello");
    let mut out = [0u8; 5];
    b.read(rx_page(3), 10, &mut out);
    assert_eq!(&out, b"hello");
    b.read(NET_PAGES - 1, PAGE_SIZE - 5, &mut out);
}

#[test]
#[should_panic(expected = "out of range")]
fn host_pages_refuse_bad_page() {
    let mut out = [0u8; 1];
    HostPages::new().read(NET_PAGES, 0, &mut out);
}

#[test]
#[should_panic(expected = "past the page")]
fn host_pages_refuse_long_copy() {
    HostPages::new().write(0, PAGE_SIZE - 1, &[0, 0]);
}

#[test]
fn tamper_rewrites_the_shared_header() {
    let mut buf = RingBuffer::new(1);
    let (mut front, mut back, tamper) =
        split_req_tampered::<TxRequest, TxResponse>(&mut buf).unwrap();
    let req_prod = core::mem::offset_of!(SringHeader, req_prod);
    front.push_request(&TxRequest::default()).unwrap();
    front.push_requests_and_check_notify();
    assert_eq!(tamper.load(req_prod), 1);
    tamper.store(req_prod, 1000);
    assert!(back.poll_request().is_err());
    tamper.store(req_prod, 1);
    assert_eq!(back.poll_request(), Ok(Some(TxRequest::default())));
}

#[test]
fn chains_follow_the_large_frame_rules() {
    // One buffer, without and with feature-sg.
    for max in [FRAME_MAX, FRAME_MAX_SG] {
        let mut c = Chain::new();
        assert_eq!(c.push(7, 60, false, max), Ok(true));
        assert_eq!((c.ids(), c.len()), (&[7u16][..], 60));
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.push(1, 13, false, max), Err(FragError::BadLength(13)));
        assert_eq!(c.push(1, 0, false, max), Err(FragError::BadLength(0)));
        assert!(
            c.is_empty(),
            "a refused fragment leaves the chain as it was"
        );
    }
    let mut c = Chain::new();
    assert_eq!(
        c.push(1, FRAME_MAX + 1, false, FRAME_MAX),
        Err(FragError::BadLength(FRAME_MAX + 1))
    );
    assert_eq!(
        c.push(1, PAGE_SIZE, true, FRAME_MAX),
        Err(FragError::TooManyFragments)
    );
    // Four fragments: the largest frame.
    let mut c = Chain::new();
    for i in 0..3 {
        assert_eq!(c.push(i, PAGE_SIZE, true, FRAME_MAX_SG), Ok(false));
    }
    assert_eq!(c.push(9, PAGE_SIZE, false, FRAME_MAX_SG), Ok(true));
    assert_eq!((c.ids(), c.len()), (&[0u16, 1, 2, 9][..], FRAME_MAX_SG));
    // A fifth is refused, as is a "more" on the fourth.
    let mut c = Chain::new();
    for i in 0..3 {
        c.push(i, PAGE_SIZE, true, FRAME_MAX_SG).unwrap();
    }
    assert_eq!(
        c.push(3, PAGE_SIZE, true, FRAME_MAX_SG),
        Err(FragError::TooManyFragments)
    );
    assert_eq!(c.ids().len(), 3);
    // A short fragment with "more", and a long last one.
    let mut c = Chain::new();
    assert_eq!(
        c.push(0, 100, true, FRAME_MAX_SG),
        Err(FragError::BadLength(100))
    );
    c.push(0, PAGE_SIZE, true, FRAME_MAX_SG).unwrap();
    assert_eq!(
        c.push(1, PAGE_SIZE + 1, false, FRAME_MAX_SG),
        Err(FragError::BadLength(PAGE_SIZE + 1))
    );
    assert_eq!(c.push(1, 1, false, FRAME_MAX_SG), Ok(true));
    assert_eq!(c.len(), PAGE_SIZE + 1);
    // A push after completion starts a new frame.
    assert_eq!(c.push(5, 20, false, FRAME_MAX_SG), Ok(true));
    assert_eq!(c.ids(), &[5]);
}

#[test]
fn fragment_arithmetic_round_trips() {
    for len in [14, 1514, 4095, 4096, 4097, 8192, 9000, FRAME_MAX_SG] {
        let n = Chain::frags(len);
        let parts: Vec<usize> = (0..n).map(|i| Chain::frag_len(len, i)).collect();
        assert_eq!(parts.iter().sum::<usize>(), len, "{len}");
        let mut c = Chain::new();
        for (i, &p) in parts.iter().enumerate() {
            let last = i + 1 == n;
            assert_eq!(
                c.push(i as u16, p, !last, FRAME_MAX_SG),
                Ok(last),
                "{len} {i}"
            );
        }
        assert_eq!(c.len(), len);
    }
    assert_eq!(Chain::frag_len(100, 1), 0);
    assert_eq!(MTU_SG, 16368);
}
