//! Per-domain console line buffering. Output is cut into lines so that lines
//! of different domains never interleave on the serial port; each line is
//! printed with the domain's name as prefix by the caller.
#![deny(unsafe_code)]

/// Longest line kept before it is flushed without a newline.
pub const LINE_MAX: usize = 200;

/// A domain's partial output line.
#[derive(Clone, Copy)]
pub struct LineBuffer {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
        }
    }
}

impl LineBuffer {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
        }
    }

    /// Appends `bytes`, calling `emit` with each completed line (without the
    /// newline). Control characters other than tab are shown as `?` so a guest
    /// cannot drive the host's terminal; `\r` is dropped.
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(&str)) {
        for &b in bytes {
            match b {
                b'\n' => self.flush(&mut emit),
                b'\r' => {}
                b'\t' | 0x20..=0x7e | 0x80..=0xff => self.put(b, &mut emit),
                _ => self.put(b'?', &mut emit),
            }
        }
    }

    fn put(&mut self, b: u8, emit: &mut impl FnMut(&str)) {
        if self.len == LINE_MAX {
            self.flush(emit);
        }
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// Emits the partial line, if any.
    pub fn flush(&mut self, emit: &mut impl FnMut(&str)) {
        let text = match core::str::from_utf8(&self.buf[..self.len]) {
            Ok(t) => t,
            // A multi-byte character cut at LINE_MAX, or invalid UTF-8: keep the valid prefix.
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        };
        if self.len > 0 {
            emit(text);
        }
        self.len = 0;
    }

    /// Whether a partial line is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> Vec<String> {
        let mut lb = LineBuffer::default();
        let mut out = Vec::new();
        for c in chunks {
            lb.push(c, |l| out.push(l.to_string()));
        }
        lb.flush(&mut |l| out.push(format!("partial:{l}")));
        out
    }

    #[test]
    fn splits_lines_across_writes() {
        assert_eq!(collect(&[b"hel", b"lo\nwor", b"ld\n"]), ["hello", "world"]);
        assert_eq!(collect(&[b"no newline"]), ["partial:no newline"]);
        assert_eq!(collect(&[b"\n\n"]), Vec::<String>::new());
    }

    #[test]
    fn sanitises_control_characters() {
        assert_eq!(collect(&[b"a\x1b[2Jb\r\n"]), ["a?[2Jb"]);
    }

    #[test]
    fn long_lines_are_cut() {
        let long = vec![b'x'; LINE_MAX + 5];
        let out = collect(&[&long, b"\n"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), LINE_MAX);
        assert_eq!(out[1], "xxxxx");
    }
}
