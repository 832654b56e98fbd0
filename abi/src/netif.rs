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

use core::mem::{offset_of, size_of};

use static_assertions::const_assert;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ring::{slot_count, slot_size, PAGE_SIZE};

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

/// The control page (offset 0 of a page the frontend grants to the backend).
///
/// The backend copies it out of the shared page (`read_from_bytes`) and checks it
/// with [`NetifControl::check`] before using any reference in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetifControl {
    /// [`NETIF_MAGIC`].
    pub magic: u32,
    /// [`NETIF_VERSION`].
    pub version: u32,
    /// Grant reference of the TX ring page.
    pub tx_ring_ref: u32,
    /// Grant reference of the RX ring page.
    pub rx_ring_ref: u32,
    /// Grant references of the TX buffers, by buffer id.
    pub tx_buf_refs: [u32; NET_BUFS],
    /// Grant references of the RX buffers, by buffer id.
    pub rx_buf_refs: [u32; NET_BUFS],
    /// The vif's MAC address (unicast, not all zero).
    pub mac: [u8; 6],
    /// Reserved, zero.
    pub _pad: [u8; 2],
}

const_assert!(size_of::<NetifControl>() == 536);
const_assert!(size_of::<NetifControl>() <= PAGE_SIZE);
const_assert!(offset_of!(NetifControl, tx_buf_refs) == 16);
const_assert!(offset_of!(NetifControl, rx_buf_refs) == 16 + 4 * NET_BUFS);
const_assert!(offset_of!(NetifControl, mac) == 16 + 8 * NET_BUFS);

/// Why a control page was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// The magic is not [`NETIF_MAGIC`].
    BadMagic(u32),
    /// The version is not [`NETIF_VERSION`].
    BadVersion(u32),
    /// The MAC is multicast or all zero.
    BadMac([u8; 6]),
}

impl core::fmt::Display for ControlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ControlError::BadMagic(m) => write!(f, "netif control page: bad magic {m:#x}"),
            ControlError::BadVersion(v) => write!(f, "netif control page: version {v}"),
            ControlError::BadMac(m) => write!(f, "netif control page: bad MAC {m:02x?}"),
        }
    }
}

impl core::error::Error for ControlError {}

impl NetifControl {
    /// A control page for `mac` with the given references (magic and version set).
    pub fn new(
        tx_ring_ref: u32,
        rx_ring_ref: u32,
        tx_buf_refs: [u32; NET_BUFS],
        rx_buf_refs: [u32; NET_BUFS],
        mac: [u8; 6],
    ) -> Self {
        NetifControl {
            magic: NETIF_MAGIC,
            version: NETIF_VERSION,
            tx_ring_ref,
            rx_ring_ref,
            tx_buf_refs,
            rx_buf_refs,
            mac,
            _pad: [0; 2],
        }
    }

    /// Checks magic, version and MAC of a copy of the control page. Grant references
    /// are checked by the hypervisor when the backend maps them.
    pub fn check(&self) -> Result<(), ControlError> {
        if self.magic != NETIF_MAGIC {
            return Err(ControlError::BadMagic(self.magic));
        }
        if self.version != NETIF_VERSION {
            return Err(ControlError::BadVersion(self.version));
        }
        if self.mac[0] & 1 != 0 || self.mac == [0; 6] {
            return Err(ControlError::BadMac(self.mac));
        }
        Ok(())
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

/// A set of buffer ids (`0..NET_BUFS`): which buffers are free, in flight or posted.
/// Out-of-range ids are never members, so a peer's id can be tested directly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufSet(u64);

impl BufSet {
    /// No buffer.
    pub const EMPTY: BufSet = BufSet(0);
    /// Every buffer `0..NET_BUFS`.
    pub const ALL: BufSet = BufSet(if NET_BUFS == 64 {
        u64::MAX
    } else {
        (1u64 << NET_BUFS) - 1
    });

    /// Whether `id` is in the set (false for any `id >= NET_BUFS`).
    #[inline]
    pub const fn contains(self, id: usize) -> bool {
        id < NET_BUFS && (self.0 >> id) & 1 == 1
    }

    /// Adds `id`; false (and no change) if it is out of range or already present.
    #[inline]
    pub fn insert(&mut self, id: usize) -> bool {
        if id >= NET_BUFS || self.contains(id) {
            return false;
        }
        self.0 |= 1 << id;
        true
    }

    /// Removes `id`; false if it was not present.
    #[inline]
    pub fn remove(&mut self, id: usize) -> bool {
        if !self.contains(id) {
            return false;
        }
        self.0 &= !(1 << id);
        true
    }

    /// Removes and returns the lowest id.
    #[inline]
    pub fn pop_first(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let id = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(id)
    }

    /// Number of ids in the set.
    #[inline]
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether `self` and `other` have no id in common.
    #[inline]
    pub const fn is_disjoint(self, other: BufSet) -> bool {
        self.0 & other.0 == 0
    }
}

/// Why [`Chain::push`] refused a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragError {
    /// A fragment length out of range: 0 or more than a page, a fragment followed by
    /// another that is not exactly a page, or a frame shorter than [`FRAME_MIN`] or
    /// longer than the vif's limit.
    BadLength(usize),
    /// More fragments than the vif's limit allows (any continuation without
    /// `feature-sg`).
    TooManyFragments,
}

impl core::fmt::Display for FragError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FragError::BadLength(n) => write!(f, "fragment or frame length {n} out of range"),
            FragError::TooManyFragments => f.write_str("too many fragments in one frame"),
        }
    }
}

impl core::error::Error for FragError {}

/// The fragments of one frame as they come off a ring (TX requests for the backend,
/// RX responses for the frontend): the one decoder of the "Large frames" rules.
///
/// [`Chain::push`] each fragment in ring order; `Ok(true)` says the frame is
/// complete ([`Chain::ids`], [`Chain::len`]), then [`Chain::clear`] before the next
/// one. On `Err` the chain is left as it was before the call: the caller answers (or
/// re-posts) every id of the chain and the refused one, then clears it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    ids: [u16; MAX_FRAGS],
    count: usize,
    len: usize,
    done: bool,
}

impl Chain {
    /// An empty chain.
    pub const fn new() -> Self {
        Chain {
            ids: [0; MAX_FRAGS],
            count: 0,
            len: 0,
            done: false,
        }
    }

    /// Adds fragment `id` of `len` bytes, with the "more" flag `more`, to a frame of at
    /// most `frame_max` bytes ([`FRAME_MAX`] without `feature-sg`, [`FRAME_MAX_SG`]
    /// with it). The id is not checked here (the caller checks it against its buffer
    /// sets). `Ok(true)`: the frame is complete.
    pub fn push(
        &mut self,
        id: u16,
        len: usize,
        more: bool,
        frame_max: usize,
    ) -> Result<bool, FragError> {
        if self.done {
            // A caller that forgot `clear`: start over rather than grow past the end.
            self.clear();
        }
        let max_frags = frame_max.div_ceil(PAGE_SIZE).clamp(1, MAX_FRAGS);
        if self.count >= max_frags || (more && self.count + 1 >= max_frags) {
            return Err(FragError::TooManyFragments);
        }
        if more {
            if len != PAGE_SIZE {
                return Err(FragError::BadLength(len));
            }
        } else if len == 0 || len > PAGE_SIZE {
            return Err(FragError::BadLength(len));
        }
        let total = self.len + len;
        if !more && !(FRAME_MIN..=frame_max.min(FRAME_MAX_SG)).contains(&total) {
            return Err(FragError::BadLength(total));
        }
        self.ids[self.count] = id;
        self.count += 1;
        self.len = total;
        self.done = !more;
        Ok(self.done)
    }

    /// The buffer ids pushed so far, in frame order.
    pub fn ids(&self) -> &[u16] {
        &self.ids[..self.count]
    }

    /// Bytes pushed so far (the frame's length once complete).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no fragment was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the last fragment pushed ended the frame.
    pub fn is_complete(&self) -> bool {
        self.done
    }

    /// Forgets every fragment.
    pub fn clear(&mut self) {
        *self = Chain::new();
    }

    /// How many fragments a frame of `len` bytes takes.
    pub const fn frags(len: usize) -> usize {
        if len == 0 {
            1
        } else {
            len.div_ceil(PAGE_SIZE)
        }
    }

    /// The length of fragment `i` of a frame of `len` bytes.
    pub const fn frag_len(len: usize, i: usize) -> usize {
        let start = i * PAGE_SIZE;
        if len <= start {
            0
        } else if len - start > PAGE_SIZE {
            PAGE_SIZE
        } else {
            len - start
        }
    }
}

#[cfg(any(test, feature = "std"))]
pub use host::{split_req_tampered, HostPages, RingTamper, TamperedRing};

/// Host-side helpers for tests (feature `std`): buffer pages over the heap, and a
/// ring with a handle that lets a test play a hostile peer.
#[cfg(any(test, feature = "std"))]
mod host {
    extern crate alloc;

    use alloc::boxed::Box;
    use alloc::rc::Rc;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::cell::RefCell;
    use core::marker::PhantomData;
    use core::sync::atomic::Ordering;

    use super::{FramePages, NET_PAGES};
    use crate::ring::{BackRing, FrontRing, RingBuffer, RingEntry, RingError, PAGE_SIZE};

    /// [`NET_PAGES`] zeroed pages on the heap implementing [`FramePages`]; clones
    /// share the pages (one clone per side, like granted memory). Every access is
    /// checked: a page index out of range or a copy past the page panics.
    #[derive(Clone, Debug)]
    pub struct HostPages(Rc<RefCell<Vec<u8>>>);

    impl Default for HostPages {
        fn default() -> Self {
            Self::new()
        }
    }

    impl HostPages {
        /// Fresh zeroed pages.
        pub fn new() -> Self {
            HostPages(Rc::new(RefCell::new(vec![0; NET_PAGES * PAGE_SIZE])))
        }

        #[track_caller]
        fn span(page: usize, offset: usize, len: usize) -> core::ops::Range<usize> {
            assert!(page < NET_PAGES, "page {page} out of range");
            assert!(
                offset <= PAGE_SIZE && len <= PAGE_SIZE - offset,
                "access {offset}+{len} past the page"
            );
            let start = page * PAGE_SIZE + offset;
            start..start + len
        }
    }

    impl FramePages for HostPages {
        #[track_caller]
        fn read(&self, page: usize, offset: usize, out: &mut [u8]) {
            let span = Self::span(page, offset, out.len());
            out.copy_from_slice(&self.0.borrow()[span]);
        }

        #[track_caller]
        fn write(&mut self, page: usize, offset: usize, data: &[u8]) {
            let span = Self::span(page, offset, data.len());
            self.0.borrow_mut()[span].copy_from_slice(data);
        }
    }

    type WordFn<'a> = Box<dyn Fn(usize, Option<u32>) -> u32 + 'a>;

    /// Word access to a ring region while its two ends borrow the buffer: a test
    /// writes header indices or slot contents between calls of an honest end, as a
    /// hostile peer in another VM could at any time. Only atomic 4-byte accesses.
    pub struct RingTamper<'a> {
        word: WordFn<'a>,
        _p: PhantomData<&'a RingBuffer>,
    }

    impl core::fmt::Debug for RingTamper<'_> {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("RingTamper")
        }
    }

    impl RingTamper<'_> {
        /// Stores `v` in the word at byte offset `off` (4-aligned, inside the region;
        /// panics otherwise).
        pub fn store(&self, off: usize, v: u32) {
            (self.word)(off, Some(v));
        }

        /// Loads the word at byte offset `off`.
        pub fn load(&self, off: usize) -> u32 {
            (self.word)(off, None)
        }
    }

    /// Both ends of a ring and a [`RingTamper`] over it.
    pub type TamperedRing<'a, Req, Rsp> = (
        FrontRing<'a, Req, Rsp>,
        BackRing<'a, Req, Rsp>,
        RingTamper<'a>,
    );

    /// Like [`RingBuffer::split_req`], plus a [`RingTamper`] over the same region.
    pub fn split_req_tampered<Req: RingEntry, Rsp: RingEntry>(
        buf: &mut RingBuffer,
    ) -> Result<TamperedRing<'_, Req, Rsp>, RingError> {
        // A `Region` is a plain handle (no borrow); its word accesses are atomic, which
        // its contract allows next to the ring ends. The tamper handle borrows `buf`
        // as long as the ends do, so the memory outlives it.
        let region = buf.region();
        let (front, back) = buf.split_req()?;
        let word: WordFn<'_> = Box::new(move |off, v| {
            let a = region.atomic(off);
            match v {
                Some(v) => a.swap(v, Ordering::SeqCst),
                None => a.load(Ordering::SeqCst),
            }
        });
        Ok((
            front,
            back,
            RingTamper {
                word,
                _p: PhantomData,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
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
}
