//! The control page: what the frontend grants the backend first, and its check.

use core::mem::{offset_of, size_of};

use static_assertions::const_assert;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ring::PAGE_SIZE;

use super::{NETIF_MAGIC, NETIF_VERSION, NET_BUFS};

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
