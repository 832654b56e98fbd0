//! Console output over `ConsoleWrite`: the [`print!`](crate::print) and
//! [`println!`](crate::println) macros and a `log` backend.
//!
//! Output is formatted into a line buffer on the stack and written at each `'\n'`
//! or when the buffer is full, so that a line normally reaches the hypervisor in
//! one hypercall (the hypervisor prefixes each line with `[domain-name] `).
#![deny(unsafe_code)]

use core::fmt::{self, Write};

use log::{LevelFilter, Log, Metadata, Record};

use crate::hypercall;

/// Size of the stack line buffer.
pub const LINE_BUFFER: usize = 256;

/// A line-buffering writer to the console.
pub struct LineWriter {
    buf: [u8; LINE_BUFFER],
    len: usize,
}

impl LineWriter {
    /// An empty writer.
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_BUFFER],
            len: 0,
        }
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        if self.len > 0 {
            let _ = hypercall::console_write(&self.buf[..self.len]);
            self.len = 0;
        }
    }

    /// Buffers bytes, writing out at each newline and whenever the buffer fills.
    pub fn write_bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = LINE_BUFFER - self.len;
            let line = bytes.iter().position(|&b| b == b'\n').map(|i| i + 1);
            let take = line.unwrap_or(bytes.len()).min(room);
            self.buf[self.len..self.len + take].copy_from_slice(&bytes[..take]);
            self.len += take;
            bytes = &bytes[take..];
            if self.len == LINE_BUFFER || self.buf[self.len - 1] == b'\n' {
                self.flush();
            }
        }
    }
}

impl Default for LineWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for LineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

static LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// Prints formatted text (used by the macros). Serialised between vCPUs, with
/// interrupts masked so that a handler that prints cannot deadlock.
#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    crate::irq::without_interrupts(|| {
        let _guard = LOCK.lock();
        let mut w = LineWriter::new();
        let _ = w.write_fmt(args);
    });
}

/// Prints formatted text without taking the console lock: for panic and fault
/// reports, which may happen while this vCPU holds it.
#[doc(hidden)]
pub fn _print_unlocked(args: fmt::Arguments) {
    let mut w = LineWriter::new();
    let _ = w.write_fmt(args);
}

/// Prints to the domain's console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the domain's console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::_print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// The `log` backend: prints `[LEVEL] message`.
struct Logger;

impl Log for Logger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            _print(format_args!("[{}] {}\n", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Installs the console as the `log` backend with a maximum level (the runtime
/// does this with the level from the command line, `loglevel=`, default `info`).
pub fn init_logger(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// The log level named by `loglevel=` on a command line; `Info` by default.
pub fn level_from_cmdline(cmdline: &str) -> LevelFilter {
    crate::cmdline::get(cmdline, "loglevel")
        .and_then(|v| v.parse().ok())
        .unwrap_or(LevelFilter::Info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::fake;

    #[test]
    fn lines_are_written_whole() {
        crate::println!("hello {}", 42);
        crate::print!("a");
        crate::print!("b\nc");
        assert_eq!(fake::console_chunks(), [9, 1, 2, 1]);
        assert_eq!(fake::take_console(), b"hello 42\nab\nc");
    }

    #[test]
    fn long_output_is_split_at_the_buffer() {
        let s = "y".repeat(600);
        crate::println!("{s}");
        assert_eq!(fake::console_chunks(), [256, 256, 89]);
        assert_eq!(fake::take_console().len(), 601);
    }

    #[test]
    fn logger_prefixes_the_level() {
        init_logger(LevelFilter::Trace);
        log::warn!("careful");
        let out = String::from_utf8(fake::take_console()).unwrap();
        assert!(out.contains("[WARN] careful\n"), "{out}");
    }

    #[test]
    fn level_parses() {
        assert_eq!(
            level_from_cmdline("mode=x loglevel=debug"),
            LevelFilter::Debug
        );
        assert_eq!(level_from_cmdline("loglevel=bogus"), LevelFilter::Info);
        assert_eq!(level_from_cmdline(""), LevelFilter::Info);
    }
}
