//! PL011 UART output (polled).

use core::ptr::{read_volatile, write_volatile};

const DR: usize = 0x000;
const FR: usize = 0x018;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
/// Interrupt mask set/clear register.
const IMSC: usize = 0x038;
/// Receive and receive-timeout interrupts (IMSC bits).
const INT_RX: u32 = 1 << 4;
const INT_RT: u32 = 1 << 6;

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

impl Pl011 {
    /// Enables the receive interrupts (FIFO level and timeout).
    pub fn enable_rx_interrupt(&mut self) {
        // SAFETY: `new`'s contract: `base` is a PL011 we own.
        unsafe {
            let imsc = read_volatile((self.base + IMSC) as *const u32);
            write_volatile((self.base + IMSC) as *mut u32, imsc | INT_RX | INT_RT);
        }
    }

    /// Takes one received byte, if any. Reading the data register is what
    /// deasserts the receive interrupt; clearing it through `ICR` instead
    /// could lose a byte that arrived after the empty check.
    pub fn try_get(&mut self) -> Option<u8> {
        // SAFETY: `new`'s contract: `base` is a PL011 we own.
        unsafe {
            if read_volatile((self.base + FR) as *const u32) & FR_RXFE != 0 {
                return None;
            }
            // The byte is in bits [7:0]; [11:8] are its error flags.
            Some((read_volatile((self.base + DR) as *const u32) & 0xff) as u8)
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
