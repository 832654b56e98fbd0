//! The virtio-mmio transport header (virtio 1.2, section 4.2.2): enough to tell
//! which devices sit in QEMU's virtio-mmio slots.
//!
//! Register access goes through [`Registers`], so that the decoding is tested on
//! the host with an array and runs on the device with volatile MMIO reads.

use core::fmt;

/// `MagicValue`: "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// Offset of `MagicValue`.
pub const REG_MAGIC: usize = 0x000;
/// Offset of `Version`.
pub const REG_VERSION: usize = 0x004;
/// Offset of `DeviceID`.
pub const REG_DEVICE_ID: usize = 0x008;
/// Offset of `VendorID`.
pub const REG_VENDOR_ID: usize = 0x00c;

/// 32-bit register reads from a device's register window.
pub trait Registers {
    /// Reads the 32-bit register at byte offset `offset`.
    fn read32(&self, offset: usize) -> u32;
}

impl Registers for [u32] {
    fn read32(&self, offset: usize) -> u32 {
        self.get(offset / 4).copied().unwrap_or(0)
    }
}

/// The identification registers of a virtio-mmio device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `MagicValue` ([`MAGIC`] when valid).
    pub magic: u32,
    /// `Version`: 1 (legacy) or 2 (virtio 1.x).
    pub version: u32,
    /// `DeviceID`: 0 for an empty slot.
    pub device_id: u32,
    /// `VendorID`.
    pub vendor_id: u32,
}

/// What a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A device.
    Device(Header),
    /// A valid transport with device id 0: nothing attached.
    Empty,
    /// Not a virtio-mmio transport (bad magic) or an unknown version.
    Invalid(Header),
}

impl Header {
    /// Reads the header.
    pub fn read<R: Registers + ?Sized>(regs: &R) -> Self {
        Self {
            magic: regs.read32(REG_MAGIC),
            version: regs.read32(REG_VERSION),
            device_id: regs.read32(REG_DEVICE_ID),
            vendor_id: regs.read32(REG_VENDOR_ID),
        }
    }

    /// Classifies the slot.
    pub fn probe(self) -> Probe {
        if self.magic != MAGIC || !(1..=2).contains(&self.version) {
            Probe::Invalid(self)
        } else if self.device_id == 0 {
            Probe::Empty
        } else {
            Probe::Device(self)
        }
    }

    /// The device type's name.
    pub fn device_name(&self) -> &'static str {
        device_name(self.device_id)
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "virtio v{}, device {} ({})",
            self.version,
            self.device_id,
            self.device_name()
        )
    }
}

/// The name of a virtio device type (virtio 1.2, section 5).
pub fn device_name(id: u32) -> &'static str {
    match id {
        0 => "none",
        1 => "net",
        2 => "block",
        3 => "console",
        4 => "entropy",
        5 => "balloon",
        8 => "scsi",
        9 => "9p",
        16 => "gpu",
        18 => "input",
        19 => "vsock",
        20 => "crypto",
        26 => "fs",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(version: u32, device: u32) -> [u32; 4] {
        [MAGIC, version, device, 0x554d_4551]
    }

    #[test]
    fn decodes_a_net_device() {
        let regs = slot(2, 1);
        let h = Header::read(&regs[..]);
        assert_eq!(h.probe(), Probe::Device(h));
        assert_eq!(h.to_string(), "virtio v2, device 1 (net)");
        assert_eq!(h.vendor_id, 0x554d_4551);
    }

    #[test]
    fn empty_and_invalid_slots() {
        assert_eq!(Header::read(&slot(2, 0)[..]).probe(), Probe::Empty);
        let bad = Header::read(&[0xffff_ffffu32, 2, 1, 0][..]);
        assert!(matches!(bad.probe(), Probe::Invalid(_)));
        let v3 = Header::read(&slot(3, 1)[..]);
        assert!(matches!(v3.probe(), Probe::Invalid(_)));
        // A short window reads as zero.
        assert!(matches!(
            Header::read(&[MAGIC][..]).probe(),
            Probe::Invalid(_)
        ));
    }

    #[test]
    fn names() {
        assert_eq!(device_name(2), "block");
        assert_eq!(device_name(4), "entropy");
        assert_eq!(device_name(1000), "unknown");
        assert_eq!(
            Header::read(&slot(1, 2)[..]).to_string(),
            "virtio v1, device 2 (block)"
        );
    }
}
