//! PL011 UART output (polled).

use core::ptr::{read_volatile, write_volatile};

const DR: usize = 0x000;
const FR: usize = 0x018;
const FR_TXFF: u32 = 1 << 5;

/// A PL011 at a fixed MMIO address.
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// A UART at `base`.
    ///
    /// # Safety
    /// `base` must be the address of a PL011 mapped as device memory, and
    /// nothing else may drive it.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    /// Sends one byte, waiting while the FIFO is full.
    pub fn put(&mut self, byte: u8) {
        // SAFETY: `new`'s contract: `base` is a PL011 we own.
        unsafe {
            while read_volatile((self.base + FR) as *const u32) & FR_TXFF != 0 {}
            write_volatile((self.base + DR) as *mut u32, u32::from(byte));
        }
    }
}

impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}
