//! Unit tests of the switch: learning, flooding, ageing, the table when full,
//! drops, large frames.

extern crate std;
use super::*;
use std::vec::Vec;

const UPLINK: PortId = 0;

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

pub(super) fn frame(dst: MacAddr, src: MacAddr, len: usize) -> Vec<u8> {
    let mut f = std::vec![0u8; len];
    for (i, b) in dst
        .0
        .iter()
        .chain(src.0.iter())
        .chain([0x08, 0x00].iter())
        .enumerate()
    {
        if let Some(x) = f.get_mut(i) {
            *x = *b;
        }
    }
    f
}

fn send(sw: &mut Switch, port: PortId, dst: MacAddr, src: MacAddr, now: u64) -> Decision {
    sw.forward(port, &frame(dst, src, 60), now)
}

fn mask(ports: &[PortId]) -> PortMask {
    let mut m = PortMask::EMPTY;
    for &p in ports {
        m.insert(p);
    }
    m
}

/// Uplink on port 0, vifs with `mac(p)` on ports `1..=vifs`.
pub(super) fn switch(vifs: PortId) -> Switch {
    let mut sw = Switch::new();
    sw.set_port(UPLINK, true, None);
    for p in 1..=vifs {
        sw.set_port(p, true, Some(mac(p)));
    }
    sw
}

#[test]
fn unknown_unicast_floods_then_learned_unicasts() {
    let mut sw = switch(3);
    assert_eq!(
        send(&mut sw, 1, mac(2), mac(1), 0),
        Decision::Flood(mask(&[0, 2, 3]))
    );
    assert_eq!(sw.lookup(mac(1), 0), Some(1));
    // mac(2) answers: mac(1) is known, so only port 1 gets it.
    assert_eq!(send(&mut sw, 2, mac(1), mac(2), 1), Decision::Unicast(1));
    assert_eq!(send(&mut sw, 1, mac(2), mac(1), 2), Decision::Unicast(2));
    let s = sw.stats();
    assert_eq!((s.unicast, s.flooded, s.dropped_total()), (2, 1, 0));
}

#[test]
fn broadcast_and_multicast_flood_even_when_known() {
    let mut sw = switch(3);
    send(&mut sw, 2, mac(1), mac(2), 0);
    let all_but_2 = Decision::Flood(mask(&[0, 1, 3]));
    assert_eq!(send(&mut sw, 2, MacAddr::BROADCAST, mac(2), 1), all_but_2);
    let group = MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]);
    assert_eq!(send(&mut sw, 2, group, mac(2), 2), all_but_2);
}

#[test]
fn flood_skips_down_ports_and_empty_flood_drops() {
    let mut sw = switch(3);
    sw.port_down(3);
    assert_eq!(
        send(&mut sw, 1, MacAddr::BROADCAST, mac(1), 0),
        Decision::Flood(mask(&[0, 2]))
    );
    let mut lone = Switch::new();
    lone.set_port(5, true, None);
    assert_eq!(
        send(&mut lone, 5, MacAddr::BROADCAST, mac(9), 0),
        Decision::Drop(DropReason::NoPorts)
    );
    assert_eq!(lone.stats().dropped_for(DropReason::NoPorts), 1);
}

#[test]
fn same_segment_is_dropped() {
    let mut sw = switch(2);
    // Two stations behind the uplink talk to each other.
    send(&mut sw, UPLINK, MacAddr::BROADCAST, mac(100), 0);
    assert_eq!(
        send(&mut sw, UPLINK, mac(100), mac(101), 1),
        Decision::Drop(DropReason::SameSegment)
    );
}

#[test]
fn station_moving_is_relearned() {
    let mut sw = switch(2);
    send(&mut sw, UPLINK, MacAddr::BROADCAST, mac(100), 0);
    assert_eq!(sw.lookup(mac(100), 0), Some(UPLINK));
    sw.set_port(5, true, None);
    send(&mut sw, 5, MacAddr::BROADCAST, mac(100), 1);
    assert_eq!(sw.lookup(mac(100), 1), Some(5));
    assert_eq!(send(&mut sw, 1, mac(100), mac(1), 2), Decision::Unicast(5));
    assert_eq!(sw.learned(2), 2);
}

#[test]
fn port_down_forgets_its_stations() {
    let mut sw = switch(3);
    send(&mut sw, 2, MacAddr::BROADCAST, mac(2), 0);
    send(&mut sw, UPLINK, MacAddr::BROADCAST, mac(100), 0);
    sw.port_down(2);
    assert!(!sw.is_up(2));
    assert_eq!(sw.lookup(mac(2), 1), None);
    assert_eq!(sw.lookup(mac(100), 1), Some(UPLINK));
    // Back up: nothing remembered, so frames to it flood until it talks.
    sw.set_port(2, true, Some(mac(2)));
    assert_eq!(
        send(&mut sw, 1, mac(2), mac(1), 2),
        Decision::Flood(mask(&[0, 2, 3]))
    );
    // set_port(down) forgets too.
    send(&mut sw, 3, MacAddr::BROADCAST, mac(3), 3);
    sw.set_port(3, false, Some(mac(3)));
    sw.set_port(3, true, Some(mac(3)));
    assert_eq!(sw.lookup(mac(3), 4), None);
}

#[test]
fn entries_age_out() {
    let mut sw = switch(2);
    send(&mut sw, 2, MacAddr::BROADCAST, mac(2), 1000);
    assert_eq!(sw.lookup(mac(2), 1000 + AGE), Some(2));
    assert_eq!(sw.lookup(mac(2), 1000 + AGE + 1), None);
    assert_eq!(
        send(&mut sw, 1, mac(2), mac(1), 1000 + AGE + 1),
        Decision::Flood(mask(&[0, 2]))
    );
    // Traffic refreshes the entry.
    send(&mut sw, 2, mac(1), mac(2), 1000 + AGE + 2);
    assert_eq!(sw.lookup(mac(2), 1000 + 2 * AGE), Some(2));
    assert_eq!(sw.learned(1000 + 2 * AGE), 2);
}

#[test]
fn full_table_replaces_least_recently_refreshed() {
    let mut sw = switch(0);
    let station = |i: usize| MacAddr([0x02, 0xaa, 0, 0, (i >> 8) as u8, i as u8]);
    for i in 0..TABLE_SIZE {
        send(&mut sw, UPLINK, MacAddr::BROADCAST, station(i), i as u64);
    }
    assert_eq!(sw.learned(TABLE_SIZE as u64), TABLE_SIZE);
    // Refresh station 0, so station 1 is now the oldest.
    send(&mut sw, UPLINK, MacAddr::BROADCAST, station(0), 100);
    send(
        &mut sw,
        UPLINK,
        MacAddr::BROADCAST,
        station(TABLE_SIZE),
        101,
    );
    assert_eq!(sw.lookup(station(0), 101), Some(UPLINK));
    assert_eq!(sw.lookup(station(1), 101), None);
    assert_eq!(sw.lookup(station(2), 101), Some(UPLINK));
    assert_eq!(sw.lookup(station(TABLE_SIZE), 101), Some(UPLINK));
    assert_eq!(sw.learned(101), TABLE_SIZE);
    assert_eq!(sw.stats().evicted, 1);
}

#[test]
fn full_table_replaces_stale_entries_first() {
    let mut sw = switch(0);
    let station = |i: usize| MacAddr([0x02, 0xbb, 0, 0, 0, i as u8]);
    // Half learned long ago, half recently.
    for i in 0..TABLE_SIZE {
        let t = if i % 2 == 0 { 0 } else { AGE };
        send(&mut sw, UPLINK, MacAddr::BROADCAST, station(i), t);
    }
    let now = AGE + 10;
    assert_eq!(sw.learned(now), TABLE_SIZE / 2);
    for i in TABLE_SIZE..TABLE_SIZE + TABLE_SIZE / 2 {
        send(&mut sw, UPLINK, MacAddr::BROADCAST, station(i), now);
    }
    // Every recent entry survived; no fresh entry was evicted.
    for i in (1..TABLE_SIZE).step_by(2) {
        assert_eq!(sw.lookup(station(i), now), Some(UPLINK), "station {i}");
    }
    assert_eq!(sw.learned(now), TABLE_SIZE);
    assert_eq!(sw.stats().evicted, 0);
}

#[test]
fn spoofed_and_multicast_sources_are_dropped_and_not_learned() {
    let mut sw = switch(2);
    // Guest 1 pretends to be guest 2.
    assert_eq!(
        send(&mut sw, 1, MacAddr::BROADCAST, mac(2), 0),
        Decision::Drop(DropReason::Spoofed)
    );
    assert_eq!(sw.lookup(mac(2), 0), None);
    assert_eq!(
        send(&mut sw, UPLINK, mac(1), MacAddr::BROADCAST, 0),
        Decision::Drop(DropReason::SourceMulticast)
    );
    assert_eq!(sw.learned(0), 0);
    let s = sw.stats();
    assert_eq!(s.dropped_for(DropReason::Spoofed), 1);
    assert_eq!(s.dropped_for(DropReason::SourceMulticast), 1);
    assert_eq!(s.dropped_total(), 2);
}

#[test]
fn bad_lengths_ports_and_down_ports_are_dropped() {
    let mut sw = switch(2);
    let f = frame(MacAddr::BROADCAST, mac(1), FRAME_MAX + 1);
    let drop = |r| Decision::Drop(r);
    assert_eq!(sw.forward(1, &[], 0), drop(DropReason::TooShort));
    assert_eq!(
        sw.forward(1, &f[..FRAME_MIN - 1], 0),
        drop(DropReason::TooShort)
    );
    assert_eq!(sw.forward(1, &f, 0), drop(DropReason::TooLong));
    assert!(matches!(
        sw.forward(1, &f[..FRAME_MIN], 0),
        Decision::Flood(_)
    ));
    assert!(matches!(
        sw.forward(1, &f[..FRAME_MAX], 0),
        Decision::Flood(_)
    ));
    assert_eq!(
        sw.forward(MAX_PORTS as PortId, &f[..60], 0),
        drop(DropReason::BadPort)
    );
    assert_eq!(sw.forward(255, &f[..60], 0), drop(DropReason::BadPort));
    assert_eq!(sw.forward(7, &f[..60], 0), drop(DropReason::PortDown));
    // Out-of-range configuration is ignored, not a panic.
    sw.set_port(200, true, None);
    sw.port_down(200);
    assert!(!sw.is_up(200));
    assert_eq!(sw.stats().dropped_total(), 6);
}

#[test]
fn large_frames_go_only_to_ports_that_take_them() {
    let mut sw = switch(3);
    for p in [1, 2] {
        sw.set_frame_max(p, FRAME_MAX_SG);
    }
    assert_eq!(sw.frame_max(UPLINK), FRAME_MAX);
    assert_eq!(sw.frame_max(3), FRAME_MAX);
    assert_eq!(sw.frame_max(MAX_PORTS as PortId), 0);
    let big = frame(MacAddr::BROADCAST, mac(1), 9000);
    // Flooded: only to port 2; the uplink and port 3 are left out, counted.
    assert_eq!(sw.forward(1, &big, 0), Decision::Flood(mask(&[2])));
    let s = sw.stats();
    assert_eq!((s.oversize[0], s.oversize[3], s.oversize[2]), (1, 1, 0));
    // Learned unicast to the uplink: dropped, never truncated.
    let _ = send(&mut sw, UPLINK, mac(1), mac(9), 0);
    let to_out = frame(mac(9), mac(1), FRAME_MAX + 1);
    assert_eq!(
        sw.forward(1, &to_out, 0),
        Decision::Drop(DropReason::TooLongForPort)
    );
    assert_eq!(sw.stats().oversize[0], 2);
    // From the header alone, as netback asks.
    assert_eq!(
        sw.forward_header(1, &to_out[..FRAME_MIN], FRAME_MAX, 0),
        Decision::Unicast(UPLINK)
    );
    // A port sends no more than its own limit; none beyond FRAME_MAX_SG.
    assert_eq!(
        sw.forward(3, &frame(mac(1), mac(3), FRAME_MAX + 1), 0),
        Decision::Drop(DropReason::TooLong)
    );
    assert_eq!(
        sw.forward_header(1, &big[..FRAME_MIN], FRAME_MAX_SG + 1, 0),
        Decision::Drop(DropReason::TooLong)
    );
    sw.set_frame_max(2, usize::MAX);
    assert_eq!(sw.frame_max(2), FRAME_MAX_SG);
    assert_eq!(sw.stats().dropped_for(DropReason::TooLongForPort), 1);
}

#[test]
fn port_mask() {
    let m = mask(&[0, 3, 15]);
    assert_eq!(m.iter().collect::<Vec<_>>(), [0, 3, 15]);
    assert_eq!(m.len(), 3);
    assert!(m.contains(15) && !m.contains(16) && !m.contains(1));
    assert!(PortMask::EMPTY.is_empty());
    assert_eq!(
        DropReason::ALL
            .iter()
            .map(|r| r.index())
            .collect::<Vec<_>>(),
        (0..DropReason::COUNT).collect::<Vec<_>>()
    );
}
