//! The byte channel's host tests: arming, waiting, errors, over host memory.

use super::*;
use parapet_abi::ring::RingBuffer;

/// An end over host memory, and its peer's halves (our TX ring's reader,
/// our RX ring's writer). It has no control page and the host's fake
/// hypervisor knows no ports, so the peer counts as gone whenever the
/// end looks (the slow path).
fn end() -> (Vchan, ByteReader<'static>, ByteWriter<'static>) {
    let a: &'static mut RingBuffer = Box::leak(Box::new(RingBuffer::new(2)));
    let b: &'static mut RingBuffer = Box::leak(Box::new(RingBuffer::new(2)));
    let (tx, peer_rx) = a.split_bytes().unwrap();
    let (peer_tx, rx) = b.split_bytes().unwrap();
    let chan = Vchan {
        tx,
        rx,
        pages: None,
        port: 1,
        is_server: false,
        closed: false,
        stats: ChanStats::default(),
    };
    (chan, peer_rx, peer_tx)
}

#[test]
fn arming_for_data_asks_the_writer_for_an_event() {
    let (mut chan, _peer_rx, mut peer_tx) = end();
    // Nothing there: the writer is asked to notify at 4 bytes (the peer
    // then counts as gone here, with nothing left to read).
    assert_eq!(chan.arm_readable(4), Err(ChanError::PeerDied));
    assert_eq!(peer_tx.write(b"abc").unwrap(), 3);
    assert!(!peer_tx.publish(), "3 bytes: not yet");
    assert_eq!(peer_tx.write(b"d").unwrap(), 1);
    assert!(peer_tx.publish(), "the 4th byte notifies");
    assert_eq!(chan.arm_readable(4), Ok(true));
    // A peer gone with bytes left: read them first.
    assert_eq!(chan.arm_readable(8), Ok(true));
    let mut buf = [0u8; 8];
    assert_eq!(chan.read(&mut buf), Ok(4));
    assert_eq!(&buf[..4], b"abcd");
    assert_eq!(chan.arm_readable(1), Err(ChanError::PeerDied));
}

#[test]
fn arming_for_space_asks_the_reader_for_an_event() {
    let (mut chan, mut peer_rx, _peer_tx) = end();
    let size = chan.ring_size() as usize;
    assert_eq!(chan.arm_writable(size), Ok(true), "half the ring is free");
    let full = vec![7u8; size];
    assert_eq!(chan.tx.write(&full), Ok(size));
    chan.tx.publish();
    assert_eq!(chan.arm_writable(16), Err(ChanError::PeerDied));
    let mut buf = vec![0u8; size];
    assert_eq!(peer_rx.read(&mut buf[..8]), Ok(8));
    assert!(!peer_rx.publish(), "8 bytes free: not yet");
    assert_eq!(peer_rx.read(&mut buf[..8]), Ok(8));
    assert!(peer_rx.publish(), "16 bytes free: notifies");
    assert_eq!(chan.arm_writable(16), Ok(true));
    chan.closed = true;
    assert_eq!(chan.arm_writable(1), Err(ChanError::Closed));
}
