//! [`Capture`]: tees a run's console to stdout and keeps its lines.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use crate::transcript::render;

/// A console sink for [`crate::qemu::run`] (called with `colour = false`):
/// passes each line on to `out`, rendered like `parapet up` does (coloured
/// prefix when `colour`), and keeps the raw lines for parsing (in a list
/// shared with another thread, after [`Capture::shared`]).
pub struct Capture<W: Write> {
    out: W,
    domains: Vec<String>,
    colour: bool,
    pending: Vec<u8>,
    lines: Vec<String>,
    shared: Option<Arc<Mutex<Vec<String>>>>,
}

impl<W: Write> Capture<W> {
    /// A capture writing to `out` for a scenario with these domains.
    pub fn new(out: W, domains: Vec<String>, colour: bool) -> Self {
        Capture {
            out,
            domains,
            colour,
            pending: Vec::new(),
            lines: Vec::new(),
            shared: None,
        }
    }

    /// Keeps the complete lines in `into` instead, which another thread may
    /// read while the run goes on ([`Capture::lines`] then stays empty).
    pub fn shared(mut self, into: Arc<Mutex<Vec<String>>>) -> Self {
        self.shared = Some(into);
        self
    }

    /// The raw lines seen so far (complete lines only).
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Every raw line, including an unterminated last one.
    pub fn into_lines(mut self) -> Vec<String> {
        if !self.pending.is_empty() {
            let last = String::from_utf8_lossy(&self.pending).into_owned();
            self.lines.push(last);
        }
        self.lines
    }
}

impl<W: Write> Write for Capture<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.pending.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw[..pos]).into_owned();
            writeln!(self.out, "{}", render(&line, &self.domains, self.colour))?;
            match &self.shared {
                Some(into) => into.lock().unwrap_or_else(|e| e.into_inner()).push(line),
                None => self.lines.push(line),
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_tees_and_keeps_raw_lines() {
        let names = vec!["driver".to_owned(), "ring-tx".to_owned()];
        let mut out = Vec::new();
        let mut c = Capture::new(&mut out, names.clone(), true);
        write!(c, "[ring-tx] bench ").unwrap();
        writeln!(c, "ring tx size=1").unwrap();
        c.write_all(b"[hv] x\n[driver] y\npartial").unwrap();
        c.flush().unwrap();
        assert_eq!(
            c.lines(),
            ["[ring-tx] bench ring tx size=1", "[hv] x", "[driver] y"]
        );
        let lines = c.into_lines();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[3], "partial");
        let shown = String::from_utf8(out).unwrap();
        assert_eq!(
            shown,
            format!(
                "{}\n{}\n{}\n",
                render("[ring-tx] bench ring tx size=1", &names, true),
                render("[hv] x", &names, true),
                render("[driver] y", &names, true)
            )
        );
        assert!(shown.contains('\x1b'));
    }

    #[test]
    fn capture_can_share_its_lines() {
        let shared = Arc::new(Mutex::new(Vec::new()));
        let mut out = Vec::new();
        let mut c = Capture::new(&mut out, vec![], false).shared(Arc::clone(&shared));
        c.write_all(b"[a] one\n[b] two\n").unwrap();
        assert!(c.lines().is_empty());
        assert_eq!(*shared.lock().unwrap(), ["[a] one", "[b] two"]);
        drop(c);
        assert_eq!(out, b"[a] one\n[b] two\n");
    }
}
