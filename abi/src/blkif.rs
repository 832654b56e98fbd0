//! The block device protocol between `blkfront` (in a guest) and `blkback` (in
//! the driver domain), in the style of Xen's `io/blkif.h`.
//!
//! One request/response ring ([`crate::ring::FrontRing`]) in one granted page,
//! plus one event channel. A request names up to [`SEGMENTS_MAX`] segments,
//! each a run of 512-byte sectors inside one page the frontend granted to the
//! backend. The backend moves the data with grant copies between those pages
//! and its own DMA buffers, so it maps nothing per request, and a bad grant
//! reference only fails that request.
//!
//! Device parameters (size in sectors, read-only) are published by the backend
//! in the store during the handshake ([`crate::xenbus`]).

use core::mem::{offset_of, size_of};

use static_assertions::const_assert;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes per sector.
pub const SECTOR_SIZE: usize = 512;
/// Sectors in one 4 KiB page.
pub const SECTORS_PER_PAGE: u8 = 8;
/// Most segments (pages) per request: 32 KiB.
pub const SEGMENTS_MAX: usize = 8;

/// One segment of a request: sectors `first_sect..=last_sect` of the page
/// granted as `gref`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct BlkSegment {
    /// Grant reference of the data page (granted to the backend).
    pub gref: u32,
    /// First sector within the page, `0..8`.
    pub first_sect: u8,
    /// Last sector within the page, `first_sect..8`.
    pub last_sect: u8,
    /// Reserved, zero.
    pub _pad: u16,
}
const_assert!(size_of::<BlkSegment>() == 8);

impl BlkSegment {
    /// Sectors the segment covers (0 if malformed).
    pub const fn sectors(&self) -> u64 {
        if self.first_sect <= self.last_sect && self.last_sect < SECTORS_PER_PAGE {
            (self.last_sect - self.first_sect + 1) as u64
        } else {
            0
        }
    }
}

/// A block request (88 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct BlkRequest {
    /// Chosen by the frontend; echoed in the response.
    pub id: u64,
    /// First sector on the virtual disk.
    pub sector: u64,
    /// [`BlkOp`] as raw.
    pub op: u8,
    /// Segments used: 1..=[`SEGMENTS_MAX`] for reads and writes, 0 for a flush.
    pub nr_segments: u8,
    /// Reserved, zero.
    pub _pad: [u8; 6],
    /// The segments, in disk order.
    pub segs: [BlkSegment; SEGMENTS_MAX],
}
const_assert!(size_of::<BlkRequest>() == 88);
const_assert!(offset_of!(BlkRequest, segs) == 24);

/// A block response (16 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct BlkResponse {
    /// The request's id.
    pub id: u64,
    /// The request's operation, raw.
    pub op: u8,
    /// Reserved, zero.
    pub _pad: [u8; 3],
    /// [`BlkStatus`] as raw.
    pub status: i32,
}
const_assert!(size_of::<BlkResponse>() == 16);

/// Block operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlkOp {
    /// Read sectors into the segments.
    Read,
    /// Write the segments' sectors.
    Write,
    /// Make earlier completed writes durable.
    Flush,
    /// Something else (answered `NotSupported`).
    Unknown(u8),
}

impl BlkOp {
    /// The wire value.
    pub const fn to_raw(self) -> u8 {
        match self {
            BlkOp::Read => 0,
            BlkOp::Write => 1,
            BlkOp::Flush => 2,
            BlkOp::Unknown(x) => x,
        }
    }

    /// Decodes a wire value.
    pub const fn from_raw(raw: u8) -> Self {
        match raw {
            0 => BlkOp::Read,
            1 => BlkOp::Write,
            2 => BlkOp::Flush,
            x => BlkOp::Unknown(x),
        }
    }
}

/// Completion status of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlkStatus {
    /// Done.
    Okay,
    /// Failed: a malformed request (bad grant, sectors outside the disk,
    /// write to a read-only disk) or an I/O error.
    Error,
    /// Unknown operation.
    NotSupported,
    /// The backend went away before answering; the frontend's own verdict for
    /// requests lost in a disconnection (never on the wire).
    Disconnected,
    /// A value this version does not know.
    Unknown(i32),
}

impl BlkStatus {
    /// The wire value.
    pub const fn to_raw(self) -> i32 {
        match self {
            BlkStatus::Okay => 0,
            BlkStatus::Error => -1,
            BlkStatus::NotSupported => -2,
            BlkStatus::Disconnected => -3,
            BlkStatus::Unknown(x) => x,
        }
    }

    /// Decodes a wire value.
    pub const fn from_raw(raw: i32) -> Self {
        match raw {
            0 => BlkStatus::Okay,
            -1 => BlkStatus::Error,
            -2 => BlkStatus::NotSupported,
            -3 => BlkStatus::Disconnected,
            x => BlkStatus::Unknown(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{slot_count, slot_size};

    #[test]
    fn wire_values_round_trip() {
        for op in [BlkOp::Read, BlkOp::Write, BlkOp::Flush, BlkOp::Unknown(9)] {
            assert_eq!(BlkOp::from_raw(op.to_raw()), op);
        }
        for s in [
            BlkStatus::Okay,
            BlkStatus::Error,
            BlkStatus::NotSupported,
            BlkStatus::Disconnected,
            BlkStatus::Unknown(-77),
        ] {
            assert_eq!(BlkStatus::from_raw(s.to_raw()), s);
        }
    }

    #[test]
    fn segments_count_their_sectors() {
        let s = |first_sect, last_sect| BlkSegment {
            gref: 1,
            first_sect,
            last_sect,
            _pad: 0,
        };
        assert_eq!(s(0, 7).sectors(), 8);
        assert_eq!(s(3, 3).sectors(), 1);
        assert_eq!(s(4, 2).sectors(), 0, "reversed");
        assert_eq!(s(0, 8).sectors(), 0, "past the page");
    }

    #[test]
    fn one_page_ring_holds_32_requests() {
        assert_eq!(slot_size::<BlkRequest, BlkResponse>(), 88);
        assert_eq!(slot_count(4096, slot_size::<BlkRequest, BlkResponse>()), 32);
    }
}
