//! The split network driver protocol (netif): what netfront and netback share.
//!
//! A virtual interface (vif) connects one guest's frontend to the driver domain's
//! backend with **persistent granted buffers**: the frontend grants its buffer pages
//! once, at connection, and every frame is copied into and out of them. No grant
//! operation happens per packet.
//!
//! # Pages
//!
//! The frontend allocates and grants to the backend (read-write):
//!
//! * one **control page**, [`NetifControl`] at offset 0 (the rest of the page is zero):
//!   magic, version, the grant references of everything below and the vif's MAC;
//! * one **TX ring** page: a request/response ring ([`crate::ring::req`]) of
//!   [`TxRequest`] / [`TxResponse`] (8-byte slots: 256 of them in one page);
//! * one **RX ring** page: a ring of [`RxRequest`] / [`RxResponse`] (256 slots);
//! * [`NET_BUFS`] **TX buffers** and [`NET_BUFS`] **RX buffers**, one page each.
//!
//! # Large frames (`feature-sg`, version 2)
//!
//! A frame longer than a page spans several buffers, as in Xen's netif with
//! `feature-sg`: each **fragment** is one buffer and one ring entry, every fragment
//! but the last carries the "more" flag ([`TXF_MORE`], [`RXF_MORE`]) and exactly
//! [`PAGE_SIZE`] bytes, the last one `1..=PAGE_SIZE`; byte `j` of the frame is at
//! offset `j % PAGE_SIZE` of fragment `j / PAGE_SIZE`. A frame has at most
//! [`MAX_FRAGS`] fragments ([`FRAME_MAX_SG`] bytes). The fragments of one frame are
//! consecutive entries of their ring and are published together.
//!
//! Both sides negotiate it through the store: the backend advertises
//! `feature-sg = 1` next to the MAC; a frontend that writes `feature-sg = 1` before
//! `Initialised` may send, and is sent, frames up to [`FRAME_MAX_SG`]; without it
//! both stay at [`FRAME_MAX`] in one buffer, a fragment with the "more" flag is
//! malformed, and the backend drops (and counts) a longer frame addressed to it.
//! [`Chain`] is the one decoder of fragment sequences both sides use.
//!
//! Both sides number the buffer pages the same way ([`FramePages`]): page `i` for
//! `i < NET_BUFS` is TX buffer `i` ([`tx_page`]), page `NET_BUFS + i` is RX buffer `i`
//! ([`rx_page`]). A frame always starts at offset 0 of its buffer.
//!
//! The frontend initialises both ring headers (`FrontRing::from_raw`) *before* it
//! grants them; the backend attaches (`BackRing::from_raw`) after mapping them.
//!
//! # Transmit (guest → backend)
//!
//! The frontend writes a frame of `len` bytes ([`FRAME_MIN`]`..=`[`FRAME_MAX`], or
//! [`FRAME_MAX_SG`] in fragments) at offset 0 of free TX buffers and pushes one
//! `TxRequest { id, len, flags }` per fragment. The backend copies the frame's
//! header into private memory, decides where the frame goes from that copy, copies
//! the rest once to where it goes (another guest's RX buffers, the uplink) and answers
//! `TxResponse { id, status }` for each fragment; from then on the buffer is the
//! frontend's again. A request with `id >= NET_BUFS`, a length out of range, a
//! fragment chain [`Chain`] refuses or unknown `flags` is answered with
//! [`NetStatus::Error`] and counted as malformed.
//!
//! # Receive (backend → guest)
//!
//! The frontend posts each empty RX buffer with `RxRequest { id }`. To deliver a frame
//! the backend takes the oldest posted buffer (one per fragment), copies the frame to
//! its offset 0 and answers `RxResponse { id, len, status: Okay, flags }` for each;
//! the buffer is the frontend's again
//! (it copies the frame out and posts the buffer anew). A posted buffer is never
//! answered before a frame arrives for it. An `RxRequest` with `id >= NET_BUFS`, or
//! naming a buffer already posted, is answered at once with `len: 0` and
//! [`NetStatus::Error`]. When no buffer is posted, the backend drops the frame.
//!
//! Responses need not come in request order: the ring only pairs *counts* of requests
//! and responses; the `id` says which buffer a response is about.
//!
//! # Notifications
//!
//! One event channel per vif serves both rings. Each side publishes a batch with
//! `push_*_and_check_notify` on both rings and notifies if either says so. The
//! backend asks to be woken (`final_check_for_requests`) for **TX requests only**: it
//! takes RX requests lazily, when it has a frame to deliver. The frontend asks for
//! responses on both rings (`final_check_for_responses`).
//!
//! # A hostile peer
//!
//! Every field of an entry and every byte of a buffer may have been written by a
//! hostile peer. The ring ends copy entries out before returning them; the receivers
//! check every `id` ([`BufSet`]) and `len` before using them and copy frames into
//! private memory before looking at them.
//!
//! Files: this one holds the constants, the pages' numbering, the store keys
//! and the ring entries; `control` the control page, `bufset` [`BufSet`],
//! `chain` the multi-buffer frame decoder ([`Chain`]), `host` the host-side
//! test helpers (feature `std`).

use core::mem::size_of;

use static_assertions::const_assert;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ring::{slot_count, slot_size, PAGE_SIZE};

mod bufset;
mod chain;
mod control;
#[cfg(any(test, feature = "std"))]
mod host;

pub use bufset::BufSet;
pub use chain::{Chain, FragError};
pub use control::{ControlError, NetifControl};
#[cfg(any(test, feature = "std"))]
pub use host::{split_req_tampered, HostPages, RingTamper, TamperedRing};

/// Buffers per direction (TX and RX), one page each.
pub const NET_BUFS: usize = 64;
/// Largest frame: an Ethernet frame without its FCS (1500-byte payload + 14-byte header).
pub const FRAME_MAX: usize = 1514;
/// Smallest frame: an Ethernet header.
pub const FRAME_MIN: usize = 14;
/// `"NETF"`, little-endian: [`NetifControl::magic`].
pub const NETIF_MAGIC: u32 = u32::from_le_bytes(*b"NETF");
/// Protocol version in [`NetifControl::version`]. Version 2 added multi-buffer frames
/// ([`TXF_MORE`], [`RXF_MORE`], negotiated with [`keys::FEATURE_SG`]).
pub const NETIF_VERSION: u32 = 2;
/// Most fragments (buffers) of one frame with `feature-sg`.
pub const MAX_FRAGS: usize = 4;
/// Largest frame with `feature-sg`: [`MAX_FRAGS`] whole buffers.
pub const FRAME_MAX_SG: usize = MAX_FRAGS * PAGE_SIZE;
/// The MTU (IP packet size) a frontend with `feature-sg` gives its stack: the largest
/// that fits [`FRAME_MAX_SG`] with the Ethernet header and keeps the TCP payload of a
/// full segment (MTU - 40) a multiple of 8, so that payload copies stay word-aligned.
pub const MTU_SG: usize = (FRAME_MAX_SG - 14 - 40) / 8 * 8 + 40;
/// [`TxRequest::flags`]: the next request carries the next fragment of this frame.
pub const TXF_MORE: u16 = 1;
/// [`RxResponse::flags`]: the next response carries the next fragment of this frame.
pub const RXF_MORE: u16 = 1;
/// Number of buffer pages both sides index with [`FramePages`]: TX, then RX.
pub const NET_PAGES: usize = 2 * NET_BUFS;

const_assert!(FRAME_MAX <= PAGE_SIZE);
const_assert!(FRAME_MIN <= FRAME_MAX);
// Ids and lengths travel as u16.
const_assert!(NET_BUFS <= u16::MAX as usize);
const_assert!(FRAME_MAX <= u16::MAX as usize);
const_assert!(FRAME_MAX_SG <= u16::MAX as usize);
const_assert!(MTU_SG + 14 <= FRAME_MAX_SG && (MTU_SG - 40).is_multiple_of(8));
const_assert!(MAX_FRAGS <= NET_BUFS);
// `BufSet` is one u64.
const_assert!(NET_BUFS <= 64);

/// The page index of TX buffer `id` for [`FramePages`].
#[inline]
pub const fn tx_page(id: usize) -> usize {
    id
}

/// The page index of RX buffer `id` for [`FramePages`].
#[inline]
pub const fn rx_page(id: usize) -> usize {
    NET_BUFS + id
}

/// A MAC address as the store carries it: the six bytes, big-endian, in the low 48
/// bits of a `u64` (`02:00:00:00:00:0a` is `0x0200_0000_000a`).
pub const fn mac_to_u64(mac: [u8; 6]) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < 6 {
        v = (v << 8) | mac[i] as u64;
        i += 1;
    }
    v
}

/// The MAC address in the low 48 bits of `v` (see [`mac_to_u64`]); `None` if the
/// high 16 bits are not zero.
pub const fn mac_from_u64(v: u64) -> Option<[u8; 6]> {
    if v >> 48 != 0 {
        return None;
    }
    let b = v.to_be_bytes();
    Some([b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The store keys of the vif handshake (besides `state`, see [`crate::xenbus`]):
/// the frontend publishes the grant reference of its control page and its port,
/// the backend the MAC the scenario gave the vif.
pub mod keys {
    /// Frontend: grant reference of the [`super::NetifControl`] page.
    pub const CTRL_REF: &str = "ctrl-ref";
    /// Frontend: the unbound event-channel port for the backend.
    pub const PORT: &str = "port";
    /// Backend: the vif's MAC ([`super::mac_to_u64`]); the control page must carry it.
    pub const MAC: &str = "mac";
    /// Both: `1` if the side handles multi-buffer frames (see "Large frames" in the
    /// module docs). The backend advertises it with the MAC; the frontend writes it
    /// before `Initialised` to use it.
    pub const FEATURE_SG: &str = "feature-sg";
}

/// Byte access to a vif's [`NET_PAGES`] buffer pages, as one side has them (granted
/// pages in the frontend, mapped grants in the backend, a `Vec` in host tests).
///
/// Pages `0..NET_BUFS` are the TX buffers, `NET_BUFS..2 * NET_BUFS` the RX buffers
/// ([`tx_page`], [`rx_page`]). Callers (netfront, netback) guarantee
/// `page < NET_PAGES` and `offset + len <= PAGE_SIZE`: ids and lengths from the peer
/// are checked before any call. An implementation may panic on a violation.
///
/// The peer may write the pages at any time: implementations copy with volatile
/// (or at least non-elided) accesses and never hand out references into them.
pub trait FramePages {
    /// Copies `out.len()` bytes at `offset` of page `page` into `out`.
    fn read(&self, page: usize, offset: usize, out: &mut [u8]);
    /// Copies `data` to `offset` of page `page`.
    fn write(&mut self, page: usize, offset: usize, data: &[u8]);
    /// Copies `len` bytes at `offset` of `src`'s page `src_page` to the same offset of
    /// page `page` (netback: one vif's TX buffer to another's RX buffer, one copy).
    /// The default goes through a small private buffer; implementations over mapped
    /// memory copy directly ([`crate::shmem::copy`]).
    fn copy_from(&mut self, page: usize, src: &Self, src_page: usize, offset: usize, len: usize)
    where
        Self: Sized,
    {
        let mut buf = [0u8; 256];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len());
            src.read(src_page, offset + done, &mut buf[..n]);
            self.write(page, offset + done, &buf[..n]);
            done += n;
        }
    }
}

impl<P: FramePages + ?Sized> FramePages for &mut P {
    fn read(&self, page: usize, offset: usize, out: &mut [u8]) {
        (**self).read(page, offset, out);
    }
    fn write(&mut self, page: usize, offset: usize, data: &[u8]) {
        (**self).write(page, offset, data);
    }
}

/// A TX request (frontend → backend): "send the frame in TX buffer `id`".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct TxRequest {
    /// TX buffer index, `< NET_BUFS`.
    pub id: u16,
    /// Length in bytes of this fragment (a whole frame of `FRAME_MIN..=FRAME_MAX`
    /// unless `feature-sg`: see [`Chain`]), at offset 0 of the buffer.
    pub len: u16,
    /// [`TXF_MORE`] or 0; the backend refuses any other bit.
    pub flags: u16,
    /// Reserved, zero.
    pub _pad: u16,
}

const_assert!(size_of::<TxRequest>() == 8);

/// A TX response (backend → frontend): TX buffer `id` is free again.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct TxResponse {
    /// The TX buffer index of the request.
    pub id: u16,
    /// A [`NetStatus`] as its raw `i16`.
    pub status: i16,
    /// Reserved, zero.
    pub _pad: u32,
}

const_assert!(size_of::<TxResponse>() == 8);

/// An RX request (frontend → backend): "RX buffer `id` is empty, fill it".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RxRequest {
    /// RX buffer index, `< NET_BUFS`.
    pub id: u16,
    /// Reserved, zero.
    pub _pad: [u16; 3],
}

const_assert!(size_of::<RxRequest>() == 8);

/// An RX response (backend → frontend): a frame of `len` bytes is at offset 0 of RX
/// buffer `id` (if `status` is [`NetStatus::Okay`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RxResponse {
    /// The RX buffer index.
    pub id: u16,
    /// Length in bytes of this fragment (0 unless `status` is Okay).
    pub len: u16,
    /// A [`NetStatus`] as its raw `i16`.
    pub status: i16,
    /// [`RXF_MORE`] or 0 (always 0 without `feature-sg`).
    pub flags: u16,
}

const_assert!(size_of::<RxResponse>() == 8);

/// Slots of each ring (one page of 8-byte slots).
pub const RING_SLOTS: u32 = slot_count(PAGE_SIZE, slot_size::<TxRequest, TxResponse>());
const_assert!(RING_SLOTS == 256);
const_assert!(slot_count(PAGE_SIZE, slot_size::<RxRequest, RxResponse>()) == RING_SLOTS);
// Every buffer can be in flight at once.
const_assert!(RING_SLOTS as usize >= NET_BUFS);

/// The status of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetStatus {
    /// Done.
    Okay,
    /// The request was malformed (bad id, length or flags).
    Error,
    /// The frame was dropped (no room on the way).
    Dropped,
    /// A value this version does not know.
    Unknown(i16),
}

impl NetStatus {
    /// The raw value carried in responses.
    pub const fn raw(self) -> i16 {
        match self {
            NetStatus::Okay => 0,
            NetStatus::Error => -1,
            NetStatus::Dropped => -2,
            NetStatus::Unknown(v) => v,
        }
    }
}

impl From<i16> for NetStatus {
    fn from(v: i16) -> Self {
        match v {
            0 => NetStatus::Okay,
            -1 => NetStatus::Error,
            -2 => NetStatus::Dropped,
            v => NetStatus::Unknown(v),
        }
    }
}

impl From<NetStatus> for i16 {
    fn from(s: NetStatus) -> i16 {
        s.raw()
    }
}

#[cfg(test)]
mod tests;
