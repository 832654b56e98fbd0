//! Console input: what is typed into `parapet up` reaches the
//! console-input domain (`console_input = true` in the scenario). The
//! hypervisor queues it and raises `Virq::Console`; the handler only notes
//! it and wakes the reader, which takes the bytes with
//! `hypercall::console_read` and cuts them into lines.

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use parapet_guest::abi::vpsr::Virq;
use parapet_guest::{hypercall, irq, println};

use crate::sync::WaitQueue;

/// Set by the handler: input is queued in the hypervisor.
static INPUT: AtomicBool = AtomicBool::new(true);
static READERS: WaitQueue = WaitQueue::new();

/// The `Virq::Console` handler (runs with interrupts masked; must not block).
fn on_console() {
    INPUT.store(true, Ordering::SeqCst);
    READERS.wake_all();
}

/// Installs the handler. Input typed earlier is still queued: the first
/// [`LineReader::read_line`] takes it.
pub fn init() {
    irq::set_handler(Virq::Console, on_console);
}

/// Cuts console input into lines.
pub struct LineReader {
    pending: Vec<u8>,
}

/// Longest line kept (the rest is dropped).
const MAX_LINE: usize = 512;

impl LineReader {
    /// No input yet.
    pub const fn new() -> Self {
        Self {
            pending: Vec::new(),
        }
    }

    /// The next line (without its end), sleeping until one is typed.
    pub fn read_line(&mut self) -> String {
        loop {
            if let Some(line) = self.take_line() {
                return line;
            }
            READERS.wait_until(None, || INPUT.swap(false, Ordering::SeqCst));
            let mut buf = [0u8; 128];
            loop {
                match hypercall::console_read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => self.push(&buf[..n]),
                    Err(e) => {
                        println!("tty: console read failed: {e}");
                        break;
                    }
                }
            }
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                // Backspace and delete edit the line.
                0x08 | 0x7f => {
                    self.pending.pop();
                }
                b'\r' | b'\n' => self.pending.push(b'\n'),
                _ if self.pending.len() < MAX_LINE => self.pending.push(b),
                _ => {}
            }
        }
    }

    fn take_line(&mut self) -> Option<String> {
        let end = self.pending.iter().position(|&b| b == b'\n')?;
        let rest = self.pending.split_off(end + 1);
        let line = core::mem::replace(&mut self.pending, rest);
        Some(String::from_utf8_lossy(&line[..end]).trim().into())
    }
}
