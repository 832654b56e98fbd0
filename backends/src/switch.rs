//! The driver domain's learning Ethernet switch: netback hands it every frame
//! that arrives on a port (a guest's vif, or the uplink NIC) and it says where
//! the frame goes. Guests must not see each other's unicast traffic, so the
//! switch learns which port each source MAC lives behind and floods only
//! broadcasts, multicasts and frames to stations it does not know yet.
//!
//! A vif port has a fixed MAC (the one netback gave the guest), and frames from
//! it with any other source are dropped as spoofed: otherwise a guest could
//! steal another guest's traffic by sending one frame with its MAC. The uplink
//! has no fixed MAC, since everything outside the machine sits behind it.
//!
//! Each port has a largest frame it takes (its MTU plus the Ethernet header):
//! [`FRAME_MAX`] unless set with [`Switch::set_frame_max`] (a vif that negotiated
//! large frames, up to [`FRAME_MAX_SG`]). A frame longer than an output port's
//! limit is not sent there and is counted per port ([`SwitchStats::oversize`]), and
//! dropped as [`DropReason::TooLongForPort`] if it has nowhere else to go: the
//! uplink (QEMU's virtio-net) stays at 1514 bytes while guests exchange 16 KiB
//! frames.
//!
//! Everything is fixed-size (no heap) and time is an opaque monotonic tick
//! passed in by the caller, so the logic is portable and tested on the host;
//! the driver domain feeds it frames and its clock. It never panics, whatever
//! the frame or port number.

pub use parapet_abi::mac::MacAddr;

/// Number of switch ports; ports are numbered `0..MAX_PORTS`.
pub const MAX_PORTS: usize = 16;
/// Number of MAC addresses the switch remembers at once.
pub const TABLE_SIZE: usize = 64;
/// Shortest frame accepted: the Ethernet header (destination, source, type).
pub const FRAME_MIN: usize = 14;
/// Longest frame a port takes unless told otherwise: the header plus a 1500-byte
/// payload, without FCS.
pub const FRAME_MAX: usize = 1514;
/// Longest frame any port may be given ([`Switch::set_frame_max`]).
pub use parapet_abi::netif::FRAME_MAX_SG;
/// Ticks after which a learned entry is stale: an entry refreshed at `t` is
/// used up to and including `t + AGE` and ignored after that.
pub const AGE: u64 = 300_000;

// `PortMask` holds one bit per port.
const _: () = assert!(MAX_PORTS <= 16);

/// A switch port number, `0..MAX_PORTS`.
pub type PortId = u8;

/// A set of ports, one bit per port (bit `p` is port `p`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct PortMask(pub u16);

impl PortMask {
    /// No ports.
    pub const EMPTY: Self = Self(0);

    /// Whether `port` is in the set (ports `>= MAX_PORTS` never are).
    pub const fn contains(&self, port: PortId) -> bool {
        (port as usize) < MAX_PORTS && self.0 & (1 << port) != 0
    }

    /// Adds `port` to the set; ports `>= MAX_PORTS` are ignored.
    pub fn insert(&mut self, port: PortId) {
        if (port as usize) < MAX_PORTS {
            self.0 |= 1 << port;
        }
    }

    /// Removes `port` from the set.
    pub fn remove(&mut self, port: PortId) {
        if (port as usize) < MAX_PORTS {
            self.0 &= !(1 << port);
        }
    }

    /// Whether the set is empty.
    pub const fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Number of ports in the set.
    pub const fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    /// The ports in the set, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = PortId> {
        let mask = *self;
        (0..MAX_PORTS as PortId).filter(move |&p| mask.contains(p))
    }
}

/// Why a frame was dropped.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum DropReason {
    /// Shorter than [`FRAME_MIN`].
    TooShort = 0,
    /// Longer than the input port's limit ([`FRAME_MAX`] unless set).
    TooLong = 1,
    /// The input port is `>= MAX_PORTS`.
    BadPort = 2,
    /// The input port is down.
    PortDown = 3,
    /// The source address is a group address, which no station may send from.
    SourceMulticast = 4,
    /// The source address is not the input port's configured MAC.
    Spoofed = 5,
    /// The destination was learned on the input port: it already has the frame.
    SameSegment = 6,
    /// The frame must be flooded but no other port is up.
    NoPorts = 7,
    /// Longer than the limit of every port it should go to (the uplink's, say).
    TooLongForPort = 8,
}

impl DropReason {
    /// Number of reasons; indexes [`SwitchStats::dropped`].
    pub const COUNT: usize = 9;
    /// Every reason, in index order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::TooShort,
        Self::TooLong,
        Self::BadPort,
        Self::PortDown,
        Self::SourceMulticast,
        Self::Spoofed,
        Self::SameSegment,
        Self::NoPorts,
        Self::TooLongForPort,
    ];

    /// This reason's index in [`SwitchStats::dropped`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short name for logs and the shell.
    pub const fn name(self) -> &'static str {
        match self {
            Self::TooShort => "too-short",
            Self::TooLong => "too-long",
            Self::BadPort => "bad-port",
            Self::PortDown => "port-down",
            Self::SourceMulticast => "source-multicast",
            Self::Spoofed => "spoofed",
            Self::SameSegment => "same-segment",
            Self::NoPorts => "no-ports",
            Self::TooLongForPort => "too-long-for-port",
        }
    }
}

/// Where a frame goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Decision {
    /// To this one port (never the input port, always an up port).
    Unicast(PortId),
    /// To every port in the mask (never the input port, only up ports, never
    /// empty).
    Flood(PortMask),
    /// Nowhere.
    Drop(DropReason),
}

/// The switch's counters, one per decision taken by [`Switch::forward`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SwitchStats {
    /// Frames sent to a single port.
    pub unicast: u64,
    /// Frames flooded.
    pub flooded: u64,
    /// Frames dropped, indexed by [`DropReason::index`].
    pub dropped: [u64; DropReason::COUNT],
    /// Fresh entries pushed out of the full table to learn a new address.
    pub evicted: u64,
    /// Per output port: frames not sent there because they were longer than its
    /// limit ([`Switch::set_frame_max`]).
    pub oversize: [u64; MAX_PORTS],
}

impl SwitchStats {
    /// Frames dropped for `reason`.
    pub const fn dropped_for(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Frames dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

#[derive(Clone, Copy)]
struct Port {
    up: bool,
    mac: Option<MacAddr>,
    frame_max: usize,
}

#[derive(Clone, Copy)]
struct Entry {
    valid: bool,
    mac: MacAddr,
    port: PortId,
    /// When the entry was last learned or refreshed.
    stamp: u64,
}

impl Entry {
    const EMPTY: Self = Self {
        valid: false,
        mac: MacAddr([0; 6]),
        port: 0,
        stamp: 0,
    };

    /// Stale entries are ignored by lookups and replaced first. A clock that
    /// went backwards makes an entry fresh rather than stale.
    fn stale(&self, now: u64) -> bool {
        now.saturating_sub(self.stamp) > AGE
    }
}

/// A learning L2 switch with [`MAX_PORTS`] ports and [`TABLE_SIZE`] entries.
/// All ports start down.
pub struct Switch {
    ports: [Port; MAX_PORTS],
    table: [Entry; TABLE_SIZE],
    stats: SwitchStats,
}

impl Default for Switch {
    fn default() -> Self {
        Self::new()
    }
}

impl Switch {
    /// A switch with every port down and nothing learned.
    pub const fn new() -> Self {
        Self {
            ports: [Port {
                up: false,
                mac: None,
                frame_max: FRAME_MAX,
            }; MAX_PORTS],
            table: [Entry::EMPTY; TABLE_SIZE],
            stats: SwitchStats {
                unicast: 0,
                flooded: 0,
                dropped: [0; DropReason::COUNT],
                evicted: 0,
                oversize: [0; MAX_PORTS],
            },
        }
    }

    /// Configures `port`: whether it is up, and its fixed MAC (a vif's, so
    /// frames from any other source are dropped as spoofed) or `None` (the
    /// uplink, which accepts any unicast source). Taking the port down or
    /// changing its MAC forgets what was learned on it, as [`Self::port_down`]
    /// does. Ports `>= MAX_PORTS` are ignored.
    pub fn set_port(&mut self, port: PortId, up: bool, mac: Option<MacAddr>) {
        let Some(p) = self.ports.get_mut(port as usize) else {
            return;
        };
        let changed = p.mac != mac;
        p.up = up;
        p.mac = mac;
        if !up || changed {
            self.forget_port(port);
        }
    }

    /// Sets the longest frame `port` takes and may send, clamped to
    /// `FRAME_MIN..=FRAME_MAX_SG` (a vif's negotiated limit; the uplink keeps
    /// [`FRAME_MAX`]). Ports `>= MAX_PORTS` are ignored.
    pub fn set_frame_max(&mut self, port: PortId, max: usize) {
        if let Some(p) = self.ports.get_mut(port as usize) {
            p.frame_max = max.clamp(FRAME_MIN, FRAME_MAX_SG);
        }
    }

    /// The longest frame `port` takes (0 for ports `>= MAX_PORTS`).
    pub fn frame_max(&self, port: PortId) -> usize {
        self.ports.get(port as usize).map_or(0, |p| p.frame_max)
    }

    /// Takes `port` down and forgets every address learned on it, so frames to
    /// those stations are flooded (and re-learned) instead of lost. Ports
    /// `>= MAX_PORTS` are ignored.
    pub fn port_down(&mut self, port: PortId) {
        if let Some(p) = self.ports.get_mut(port as usize) {
            p.up = false;
            self.forget_port(port);
        }
    }

    /// Whether `port` is up (ports `>= MAX_PORTS` never are).
    pub fn is_up(&self, port: PortId) -> bool {
        self.ports.get(port as usize).is_some_and(|p| p.up)
    }

    /// The ports that are up.
    pub fn up_ports(&self) -> PortMask {
        let mut mask = PortMask::EMPTY;
        for (i, p) in self.ports.iter().enumerate() {
            if p.up {
                mask.insert(i as PortId);
            }
        }
        mask
    }

    /// Decides where `frame`, received on `in_port` at tick `now`, goes, and
    /// learns its source address on `in_port`. The checks run in this order:
    /// length, port number, port up, source not multicast, source not spoofed
    /// (a dropped frame teaches nothing). Then group destinations are flooded,
    /// known ones are sent to their port (or dropped if that is `in_port`) and
    /// unknown ones are flooded; a flood with no other up port is dropped.
    pub fn forward(&mut self, in_port: PortId, frame: &[u8], now: u64) -> Decision {
        self.forward_header(in_port, frame, frame.len(), now)
    }

    /// [`Self::forward`] for a frame of `len` bytes of which the caller has copied
    /// only the start, `header` (at least the two addresses): netback decides from a
    /// private copy of the header and then copies the frame once, straight from the
    /// sender's buffers to where it goes. Ports whose limit is below `len` are left
    /// out (and counted in [`SwitchStats::oversize`]).
    pub fn forward_header(
        &mut self,
        in_port: PortId,
        header: &[u8],
        len: usize,
        now: u64,
    ) -> Decision {
        let decision = match self.decide(in_port, header, len, now) {
            Decision::Unicast(p) if len > self.frame_max(p) => {
                self.stats.oversize[p as usize] += 1;
                Decision::Drop(DropReason::TooLongForPort)
            }
            Decision::Flood(mut mask) => {
                for p in mask.iter() {
                    if len > self.frame_max(p) {
                        self.stats.oversize[p as usize] += 1;
                        mask.remove(p);
                    }
                }
                if mask.is_empty() {
                    Decision::Drop(DropReason::TooLongForPort)
                } else {
                    Decision::Flood(mask)
                }
            }
            d => d,
        };
        match decision {
            Decision::Unicast(_) => self.stats.unicast += 1,
            Decision::Flood(_) => self.stats.flooded += 1,
            Decision::Drop(r) => self.stats.dropped[r.index()] += 1,
        }
        decision
    }

    fn decide(&mut self, in_port: PortId, frame: &[u8], len: usize, now: u64) -> Decision {
        use DropReason::*;
        if len < FRAME_MIN {
            return Decision::Drop(TooShort);
        }
        let limit = self
            .ports
            .get(in_port as usize)
            .map_or(FRAME_MAX, |p| p.frame_max);
        if len > limit {
            return Decision::Drop(TooLong);
        }
        let Some((dst, rest)) = frame.split_first_chunk::<6>() else {
            return Decision::Drop(TooShort);
        };
        let Some((src, _)) = rest.split_first_chunk::<6>() else {
            return Decision::Drop(TooShort);
        };
        let (dst, src) = (MacAddr(*dst), MacAddr(*src));
        let Some(port) = self.ports.get(in_port as usize) else {
            return Decision::Drop(BadPort);
        };
        if !port.up {
            return Decision::Drop(PortDown);
        }
        if src.is_multicast() {
            return Decision::Drop(SourceMulticast);
        }
        if port.mac.is_some_and(|mac| mac != src) {
            return Decision::Drop(Spoofed);
        }
        self.learn(src, in_port, now);
        if !dst.is_multicast() {
            match self.lookup(dst, now) {
                Some(p) if p == in_port => return Decision::Drop(SameSegment),
                Some(p) => return Decision::Unicast(p),
                None => {}
            }
        }
        let mut mask = self.up_ports();
        mask.remove(in_port);
        if mask.is_empty() {
            Decision::Drop(NoPorts)
        } else {
            Decision::Flood(mask)
        }
    }

    /// The port `mac` was last seen on, if that entry is fresh at `now` and
    /// its port is up.
    pub fn lookup(&self, mac: MacAddr, now: u64) -> Option<PortId> {
        self.table
            .iter()
            .find(|e| e.valid && e.mac == mac)
            .filter(|e| !e.stale(now) && self.is_up(e.port))
            .map(|e| e.port)
    }

    /// Number of fresh entries at `now`.
    pub fn learned(&self, now: u64) -> usize {
        self.table
            .iter()
            .filter(|e| e.valid && !e.stale(now))
            .count()
    }

    /// The counters so far.
    pub fn stats(&self) -> SwitchStats {
        self.stats
    }

    /// Records that `mac` is behind `port` as of `now`: refreshes (and moves)
    /// its entry, or takes a free slot, else the stalest slot, else the least
    /// recently refreshed one.
    fn learn(&mut self, mac: MacAddr, port: PortId, now: u64) {
        let slot = match self.table.iter().position(|e| e.valid && e.mac == mac) {
            Some(i) => i,
            None => match self.table.iter().position(|e| !e.valid) {
                Some(i) => i,
                None => {
                    // Stale entries first, then the oldest stamp.
                    let (i, victim) = self
                        .table
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, e)| (!e.stale(now), e.stamp))
                        .unwrap_or((0, &Entry::EMPTY));
                    if !victim.stale(now) {
                        self.stats.evicted += 1;
                    }
                    i
                }
            },
        };
        if let Some(e) = self.table.get_mut(slot) {
            *e = Entry {
                valid: true,
                mac,
                port,
                stamp: now,
            };
        }
    }

    fn forget_port(&mut self, port: PortId) {
        for e in self.table.iter_mut().filter(|e| e.port == port) {
            e.valid = false;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::vec::Vec;

    const UPLINK: PortId = 0;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, n])
    }

    fn frame(dst: MacAddr, src: MacAddr, len: usize) -> Vec<u8> {
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
    fn switch(vifs: PortId) -> Switch {
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

    // ---- property tests against a capacity-free model ----

    /// The reference: a map with no capacity limit.
    struct Model {
        ports: [(bool, Option<MacAddr>); MAX_PORTS],
        seen: HashMap<MacAddr, (PortId, u64)>,
    }

    impl Model {
        fn lookup(&self, mac: MacAddr, now: u64) -> Option<PortId> {
            let &(p, t) = self.seen.get(&mac)?;
            (now.saturating_sub(t) <= AGE && self.ports[p as usize].0).then_some(p)
        }

        fn forward(&mut self, in_port: PortId, frame: &[u8], now: u64) -> Decision {
            use DropReason::*;
            if frame.len() < FRAME_MIN {
                return Decision::Drop(TooShort);
            }
            if frame.len() > FRAME_MAX {
                return Decision::Drop(TooLong);
            }
            let dst = MacAddr(frame[0..6].try_into().unwrap());
            let src = MacAddr(frame[6..12].try_into().unwrap());
            let Some(&(up, fixed)) = self.ports.get(in_port as usize) else {
                return Decision::Drop(BadPort);
            };
            if !up {
                return Decision::Drop(PortDown);
            }
            if src.0[0] & 1 != 0 {
                return Decision::Drop(SourceMulticast);
            }
            if fixed.is_some_and(|m| m != src) {
                return Decision::Drop(Spoofed);
            }
            self.seen.insert(src, (in_port, now));
            if dst.0[0] & 1 == 0 {
                match self.lookup(dst, now) {
                    Some(p) if p == in_port => return Decision::Drop(SameSegment),
                    Some(p) => return Decision::Unicast(p),
                    None => {}
                }
            }
            let m = PortMask(
                (0..MAX_PORTS)
                    .filter(|&p| self.ports[p].0 && p != in_port as usize)
                    .fold(0, |m, p| m | 1 << p),
            );
            if m.is_empty() {
                Decision::Drop(NoPorts)
            } else {
                Decision::Flood(m)
            }
        }

        fn port_down(&mut self, port: PortId) {
            if let Some(p) = self.ports.get_mut(port as usize) {
                p.0 = false;
                self.seen.retain(|_, (q, _)| *q != port);
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Step {
        Frame {
            port: PortId,
            src: usize,
            dst: usize,
            len: usize,
            dt: u64,
            /// On a port with a fixed MAC, send from it rather than `src`.
            honest: bool,
        },
        Down(PortId),
        Up(PortId),
    }

    /// Addresses used by the tests: `n` unicast stations, then two group addresses.
    fn pool(n: usize) -> Vec<MacAddr> {
        let mut v: Vec<_> = (0..n)
            .map(|i| MacAddr([0x02, 0xcc, 0, 0, (i >> 8) as u8, i as u8]))
            .collect();
        v.push(MacAddr::BROADCAST);
        v.push(MacAddr([0x33, 0x33, 0, 0, 0, 1]));
        v
    }

    /// Up to `max_steps` steps; `jumps` percent of frames come after a long
    /// pause (up to twice [`AGE`]).
    fn steps(n_macs: usize, max_steps: usize, jumps: u32) -> impl Strategy<Value = Vec<Step>> {
        let frame = (
            0..MAX_PORTS as PortId + 2,
            0..n_macs + 2,
            0..n_macs + 2,
            prop_oneof![8 => 14usize..100, 1 => 0usize..1600],
            prop_oneof![100 - jumps => 0u64..1000, jumps => 0u64..2 * AGE],
            proptest::bool::weighted(0.8),
        )
            .prop_map(|(port, src, dst, len, dt, honest)| Step::Frame {
                port,
                src,
                dst,
                len,
                dt,
                honest,
            });
        let step = prop_oneof![
            20 => frame,
            1 => (0..MAX_PORTS as PortId + 1).prop_map(Step::Down),
            2 => (0..MAX_PORTS as PortId + 1).prop_map(Step::Up),
        ];
        proptest::collection::vec(step, 1..max_steps)
    }

    /// Port configurations: up or down, and (with probability `vifs`) a fixed
    /// MAC (a pool index) or none.
    fn config(n_macs: usize, vifs: f64) -> impl Strategy<Value = Vec<(bool, Option<usize>)>> {
        proptest::collection::vec(
            (
                proptest::bool::weighted(0.75),
                proptest::option::weighted(vifs, 0..n_macs),
            ),
            MAX_PORTS,
        )
    }

    /// Runs `steps` through a switch and the model; `exact` demands identical
    /// decisions (only valid below the table's capacity), otherwise checks the
    /// invariants that hold whatever the switch forgot.
    fn check(
        cfg: &[(bool, Option<usize>)],
        steps: &[Step],
        n_macs: usize,
        exact: bool,
    ) -> Result<(), TestCaseError> {
        let macs = pool(n_macs);
        let mut sw = Switch::new();
        let mut model = Model {
            ports: [(false, None); MAX_PORTS],
            seen: HashMap::new(),
        };
        for (p, &(up, fixed)) in cfg.iter().enumerate() {
            let fixed = fixed.map(|i| macs[i]);
            sw.set_port(p as PortId, up, fixed);
            model.ports[p] = (up, fixed);
        }
        let mut now = 0u64;
        let mut frames = 0u64;
        for step in steps {
            match *step {
                Step::Down(p) => {
                    sw.port_down(p);
                    model.port_down(p);
                }
                Step::Up(p) => {
                    let fixed = model.ports.get(p as usize).and_then(|q| q.1);
                    sw.set_port(p, true, fixed);
                    if let Some(q) = model.ports.get_mut(p as usize) {
                        q.0 = true;
                    }
                }
                Step::Frame {
                    port,
                    src,
                    dst,
                    len,
                    dt,
                    honest,
                } => {
                    now += dt;
                    frames += 1;
                    let src = match model.ports.get(port as usize).and_then(|q| q.1) {
                        Some(fixed) if honest => fixed,
                        _ => macs[src],
                    };
                    let f = frame(macs[dst], src, len);
                    let up_before = sw.up_ports();
                    let got = sw.forward(port, &f, now);
                    let want = model.forward(port, &f, now);
                    match got {
                        Decision::Unicast(p) => {
                            prop_assert_ne!(p, port);
                            prop_assert!(up_before.contains(p));
                            // Only where that address was last seen, and fresh.
                            prop_assert_eq!(model.lookup(macs[dst], now), Some(p));
                        }
                        Decision::Flood(m) => {
                            prop_assert!(!m.is_empty());
                            prop_assert!(!m.contains(port));
                            prop_assert_eq!(m.0 & !up_before.0, 0);
                        }
                        Decision::Drop(_) => {}
                    }
                    if exact {
                        prop_assert_eq!(got, want);
                    } else if got != want {
                        // A full table only forgets: the switch may flood
                        // what the model knows, nothing else.
                        prop_assert!(
                            matches!(
                                want,
                                Decision::Unicast(_) | Decision::Drop(DropReason::SameSegment)
                            ),
                            "got {:?}, want {:?}",
                            got,
                            want
                        );
                        prop_assert!(matches!(
                            got,
                            Decision::Flood(_) | Decision::Drop(DropReason::NoPorts)
                        ));
                    }
                }
            }
        }
        let s = sw.stats();
        prop_assert_eq!(s.unicast + s.flooded + s.dropped_total(), frames);
        prop_assert!(sw.learned(now) <= TABLE_SIZE);
        Ok(())
    }

    /// More stations than the table holds.
    const BIG: usize = TABLE_SIZE + 32;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn matches_model_below_capacity(cfg in config(24, 0.4), steps in steps(24, 300, 10)) {
            check(&cfg, &steps, 24, true)?;
        }

        #[test]
        fn invariants_hold_beyond_capacity(cfg in config(BIG, 0.1), steps in steps(BIG, 800, 1)) {
            check(&cfg, &steps, BIG, false)?;
        }

        #[test]
        fn arbitrary_bytes_never_panic(port in any::<u8>(), bytes in proptest::collection::vec(any::<u8>(), 0..1600), now in any::<u64>()) {
            let mut sw = switch(4);
            sw.forward(port, &bytes, now);
            let _ = sw.lookup(MacAddr([0; 6]), now);
        }

    }
}
