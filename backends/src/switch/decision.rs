//! What the switch answers: sets of ports, forwarding decisions, the reasons
//! a frame is dropped, and the counters.

use super::{PortId, MAX_PORTS};
#[cfg(doc)]
use super::{Switch, FRAME_MAX, FRAME_MIN};

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
