//! Shared-memory rings: the protocol frontends and backends speak over granted pages.
//!
//! Two kinds, both pure code over a region of whole 4 KiB pages shared with one peer:
//!
//! * [`FrontRing`] / [`BackRing`]: a request/response ring in the style of Xen's
//!   `io/ring.h`. The frontend pushes fixed-size requests, the backend answers each with
//!   a response in the same slot array. Layout: [`SringHeader`] (128 bytes), then
//!   `size` slots of [`slot_size`] bytes, `size` the largest power of two that fits.
//! * [`ByteWriter`] / [`ByteReader`]: one direction of a byte stream in the style of
//!   Xen's vchan. Layout: [`ByteRingHeader`] (128 bytes), then a data area whose size is
//!   the largest power of two that fits (a region of `2^k + 1` pages wastes nothing).
//!
//! # Protocol
//!
//! Indices are free-running `u32`s that wrap ([`index`]). Each side keeps its own
//! indices privately and only *stores* them to the shared header; it never trusts a
//! value it reads back. A producer fills entries, then publishes with one `Release`
//! store of its producer index (batching: push many, publish once). A consumer
//! `Acquire`-loads the peer's producer index only when its cached copy says the ring is
//! empty, checks it ([`index::check_peer_index`]) and copies each entry into private
//! memory before returning it (no double fetch).
//!
//! Notification suppression follows Xen exactly. Publishing stores the producer index,
//! issues a `SeqCst` fence, then reads the peer's event index and notifies iff it lies in
//! `(old, new]` ([`index::needs_notify`]). Before sleeping, a consumer writes its event
//! index, issues a `SeqCst` fence and re-checks the producer index (`final_check_*`,
//! `request_*_notification`). The two fences forbid the lost wake-up: either the consumer
//! sees the new entries on its re-check, or the producer sees the event index and
//! notifies. `abi/tests/loom.rs` model-checks this.
//!
//! # A hostile peer
//!
//! Everything read from shared memory is checked before use: a peer index must lie in
//! the window the protocol allows, otherwise the call fails with a [`RingError`] and our
//! private state is left as it was. Slot offsets are always masked into the ring and
//! every copy is bounds-checked (module `mem`; a byte ring's data copies are masked and
//! split inside the data area `mem` computes from the region's length, and only their
//! length is checked), so no value the peer writes can make us touch memory outside the
//! region or return more than asked.
//!
//! The only `unsafe` code is in the private module `mem`. With the `std` feature (or in this crate's
//! tests) `RingBuffer` provides an owned region and safe constructors for host tests.

pub mod bytes;
pub mod index;
mod mem;
pub mod req;
mod sync;

use core::fmt;

pub use bytes::{data_size, ByteReader, ByteRingHeader, ByteWriter};
#[cfg(any(test, feature = "std"))]
pub use mem::{RingBuffer, GUARD_BYTE};
pub use req::{slot_count, slot_size, BackRing, FrontRing, ReqRingPair, RingEntry, SringHeader};

/// Size of a page: ring regions are whole pages, page-aligned.
pub const PAGE_SIZE: usize = 4096;

/// Size in bytes of both ring headers (two cache lines); entries start after it.
pub const HEADER_SIZE: usize = 128;

/// An error of a ring operation. Errors caused by the peer leave our private state
/// unchanged: the caller may report the peer and disconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingError {
    /// The peer's index `index` claims more than the ring can hold: it lies more than
    /// `limit` entries ahead of `private`, the lowest value it may have (the index we
    /// last accepted).
    PeerIndexOutOfRange {
        /// The index read from the peer.
        index: u32,
        /// The lowest value the index may have (our last accepted value).
        private: u32,
        /// How far ahead of `private` the index may legally be.
        limit: u32,
    },
    /// The peer's index moved backwards: `index` is behind `private`, a value it had
    /// already reached (or that our own consumption implies it reached).
    PeerIndexBehind {
        /// The index read from the peer.
        index: u32,
        /// The lowest value the index may have.
        private: u32,
    },
    /// The backend published more responses than there are requests outstanding.
    TooManyResponses {
        /// The response producer index read from the backend.
        rsp_prod: u32,
        /// Our response consumer index.
        rsp_cons: u32,
        /// Requests published and not yet answered by a consumed response.
        outstanding: u32,
    },
    /// The backend tried to push a response with no consumed request left to answer
    /// (responses may never overtake consumed requests).
    NoRequestToAnswer,
    /// The ring is full: no free slot for another request.
    Full,
    /// The region is not aligned as required.
    Misaligned {
        /// Start address of the region.
        addr: usize,
        /// Required alignment in bytes.
        align: usize,
    },
    /// The region length is not a non-zero multiple of the page size.
    BadLength {
        /// Length given, in bytes.
        len: usize,
    },
    /// The region is too small for the header and one entry (or one data byte).
    RegionTooSmall {
        /// Length given, in bytes.
        len: usize,
        /// Bytes needed for the header and one slot.
        needed: usize,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RingError::PeerIndexOutOfRange {
                index,
                private,
                limit,
            } => write!(
                f,
                "peer index {index} is more than {limit} ahead of {private}: it claims more than the ring holds"
            ),
            RingError::PeerIndexBehind { index, private } => {
                write!(f, "peer index {index} moved back behind {private}")
            }
            RingError::TooManyResponses {
                rsp_prod,
                rsp_cons,
                outstanding,
            } => write!(
                f,
                "peer published responses up to {rsp_prod} from {rsp_cons}, but only {outstanding} requests are outstanding"
            ),
            RingError::NoRequestToAnswer => {
                f.write_str("no consumed request is waiting for a response")
            }
            RingError::Full => f.write_str("ring full"),
            RingError::Misaligned { addr, align } => {
                write!(f, "ring region at {addr:#x} is not {align}-byte aligned")
            }
            RingError::BadLength { len } => write!(
                f,
                "ring region length {len} is not a non-zero multiple of {PAGE_SIZE}"
            ),
            RingError::RegionTooSmall { len, needed } => {
                write!(f, "ring region of {len} bytes is smaller than the {needed} needed")
            }
        }
    }
}

impl core::error::Error for RingError {}
