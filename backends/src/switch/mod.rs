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
//!
//! `decision` holds what the switch answers (port sets, decisions, drop
//! reasons, counters); `tests` and `model` (property tests against a
//! capacity-free model) test it.

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

mod decision;

pub use decision::{Decision, DropReason, PortMask, SwitchStats};

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
mod model;
#[cfg(test)]
mod tests;
