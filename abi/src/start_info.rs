//! The start-info page a domain receives in `x0` when its first vCPU starts.

use core::mem::{offset_of, size_of};
use static_assertions::const_assert;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `"PRPT"` in little-endian byte order.
pub const START_INFO_MAGIC: u32 = u32::from_le_bytes(*b"PRPT");
/// Most MMIO devices described to a domain.
pub const MAX_DEVICES: usize = 16;
/// Longest domain name, in bytes.
pub const NAME_LEN: usize = 32;
/// Longest command line, in bytes.
pub const CMDLINE_LEN: usize = 256;

/// `StartInfo::flags`: this is the driver domain (mapped 1:1, owns the devices).
pub const FLAG_DRIVER_DOMAIN: u32 = 1 << 0;

/// Kinds of device described in [`MmioDevice::kind`].
pub mod device_kind {
    /// A virtio-mmio transport.
    pub const VIRTIO_MMIO: u32 = 1;
}

/// An MMIO device passed through to the domain (driver domain only).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MmioDevice {
    /// Guest-physical base (equal to the physical base for the driver domain).
    pub base: u64,
    /// Size of the register window in bytes.
    pub size: u64,
    /// The device's interrupt (GIC INTID).
    pub intid: u32,
    /// One of [`device_kind`].
    pub kind: u32,
}
const_assert!(size_of::<MmioDevice>() == 24);

/// The start-info page, written by the hypervisor, read by the domain.
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct StartInfo {
    /// [`START_INFO_MAGIC`].
    pub magic: u32,
    /// The hypervisor's ABI version, as [`AbiVersion::to_raw`](crate::AbiVersion::to_raw).
    pub abi_version: u32,
    /// The hypervisor's [`Features`](crate::Features) bits.
    pub features: u64,
    /// This domain's id (the driver domain is 0).
    pub domain_id: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Number of vCPUs the domain was given.
    pub vcpu_count: u32,
    /// Reserved, zero.
    pub _reserved0: u32,
    /// Guest-physical base of RAM.
    pub ram_base: u64,
    /// Size of RAM in bytes (including the reserved pages at its top).
    pub ram_size: u64,
    /// Guest-physical address of vCPU 0's VPSR page; vCPU `i` is `i` pages above.
    pub vpsr_base: u64,
    /// First guest-physical address above the loaded image (page-aligned).
    pub image_end: u64,
    /// Frequency of the virtual counter `CNTVCT_EL0`, in Hz.
    pub counter_freq: u64,
    /// Domain name, NUL-padded UTF-8.
    pub name: [u8; NAME_LEN],
    /// Command line from the scenario, NUL-padded UTF-8.
    pub cmdline: [u8; CMDLINE_LEN],
    /// Number of valid entries in `devices`.
    pub device_count: u32,
    /// Reserved, zero.
    pub _reserved1: u32,
    /// Devices passed through to this domain.
    pub devices: [MmioDevice; MAX_DEVICES],
    /// Guest-physical address of the domain's
    /// [`EventPage`](crate::event::EventPage) (ABI 1.1).
    pub event_page: u64,
    /// Guest-physical address of the domain's grant table (ABI 1.1).
    pub grant_table: u64,
    /// Entries in the grant table.
    pub grant_entries: u32,
    /// Ports per domain.
    pub max_ports: u32,
}

const_assert!(size_of::<StartInfo>() == 776);
const_assert!(offset_of!(StartInfo, event_page) == 752);
const_assert!(offset_of!(StartInfo, grant_table) == 760);
const_assert!(offset_of!(StartInfo, grant_entries) == 768);
const_assert!(size_of::<StartInfo>() <= crate::layout::PAGE_SIZE as usize);
const_assert!(offset_of!(StartInfo, features) == 8);
const_assert!(offset_of!(StartInfo, domain_id) == 16);
const_assert!(offset_of!(StartInfo, ram_base) == 32);
const_assert!(offset_of!(StartInfo, vpsr_base) == 48);
const_assert!(offset_of!(StartInfo, counter_freq) == 64);
const_assert!(offset_of!(StartInfo, name) == 72);
const_assert!(offset_of!(StartInfo, cmdline) == 104);
const_assert!(offset_of!(StartInfo, device_count) == 360);
const_assert!(offset_of!(StartInfo, devices) == 368);

/// Returns the text before the first NUL of a fixed-size string field, or `None`
/// if it is not valid UTF-8.
pub fn c_str(field: &[u8]) -> Option<&str> {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    core::str::from_utf8(&field[..len]).ok()
}

/// Copies `text` into a fixed-size string field, truncating at a character
/// boundary and NUL-padding the rest.
pub fn set_c_str(field: &mut [u8], text: &str) {
    field.fill(0);
    let mut len = text.len().min(field.len());
    while !text.is_char_boundary(len) {
        len -= 1;
    }
    field[..len].copy_from_slice(&text.as_bytes()[..len]);
}

impl StartInfo {
    /// The domain name.
    pub fn name(&self) -> &str {
        c_str(&self.name).unwrap_or("?")
    }

    /// The command line.
    pub fn cmdline(&self) -> &str {
        c_str(&self.cmdline).unwrap_or("")
    }

    /// Whether this is the driver domain.
    pub fn is_driver_domain(&self) -> bool {
        self.flags & FLAG_DRIVER_DOMAIN != 0
    }

    /// The valid device entries.
    pub fn devices(&self) -> &[MmioDevice] {
        let n = (self.device_count as usize).min(MAX_DEVICES);
        &self.devices[..n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn strings_round_trip_and_truncate() {
        let mut si = StartInfo::new_zeroed();
        set_c_str(&mut si.name, "guest-a");
        assert_eq!(si.name(), "guest-a");
        set_c_str(&mut si.name, &"é".repeat(40));
        assert_eq!(si.name().len(), 32);
        assert!(si.name().chars().all(|c| c == 'é'));
    }

    #[test]
    fn device_count_is_clamped() {
        let mut si = StartInfo::new_zeroed();
        si.device_count = 1000;
        assert_eq!(si.devices().len(), MAX_DEVICES);
    }

    #[test]
    fn parses_from_bytes() {
        let mut si = StartInfo::new_zeroed();
        si.magic = START_INFO_MAGIC;
        si.domain_id = 7;
        let bytes = si.as_bytes().to_vec();
        let back = StartInfo::read_from_bytes(&bytes).unwrap();
        assert_eq!(back.domain_id, 7);
        assert_eq!(&START_INFO_MAGIC.to_le_bytes(), b"PRPT");
    }
}
