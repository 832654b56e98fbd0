//! Per-domain console line buffering, and the console input queue. Output is
//! cut into lines so that lines of different domains never interleave on the
//! serial port; each line is printed with the domain's name as prefix by the
//! caller. Input typed on the serial port waits in an [`InputQueue`] until the
//! console-input domain reads it.
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

/// Bytes of console input kept for the console-input domain.
pub const INPUT_MAX: usize = 1024;

/// Console input received on the serial port and not yet read. When it is
/// full, new bytes are dropped (and counted) rather than old ones, so that a
/// line being read stays whole.
pub struct InputQueue {
    buf: [u8; INPUT_MAX],
    head: usize,
    len: usize,
    /// Bytes dropped because the queue was full.
    pub dropped: u64,
}

impl Default for InputQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl InputQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            buf: [0; INPUT_MAX],
            head: 0,
            len: 0,
            dropped: 0,
        }
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one byte; `false` (and counted in `dropped`) when full.
    pub fn push(&mut self, byte: u8) -> bool {
        if self.len == INPUT_MAX {
            self.dropped += 1;
            return false;
        }
        self.buf[(self.head + self.len) % INPUT_MAX] = byte;
        self.len += 1;
        true
    }

    /// Copies up to `out.len()` of the oldest bytes into `out`, leaving them
    /// queued; returns how many.
    pub fn peek_into(&self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        for (i, b) in out.iter_mut().take(n).enumerate() {
            *b = self.buf[(self.head + i) % INPUT_MAX];
        }
        n
    }

    /// Drops the `n` oldest bytes (after they were delivered).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % INPUT_MAX;
        self.len -= n;
    }

    /// Moves up to `out.len()` bytes into `out`; returns how many.
    pub fn pop_into(&mut self, out: &mut [u8]) -> usize {
        let n = self.peek_into(out);
        self.consume(n);
        n
    }
}

#[cfg(test)]
mod input_tests {
    use super::*;

    #[test]
    fn input_is_read_in_order_and_wraps() {
        let mut q = InputQueue::new();
        let mut out = [0u8; 700];
        for round in 0..5u8 {
            for i in (0..=u8::MAX).cycle().take(700) {
                assert!(q.push(round.wrapping_add(i)));
            }
            assert_eq!(q.pop_into(&mut out[..300]), 300);
            assert_eq!(q.pop_into(&mut out[300..]), 400);
            assert!(out
                .iter()
                .zip((0..=u8::MAX).cycle())
                .all(|(&b, i)| b == round.wrapping_add(i)));
            assert!(q.is_empty());
        }
    }

    #[test]
    fn a_full_queue_drops_new_bytes() {
        let mut q = InputQueue::new();
        for b in (0..=u8::MAX).cycle().take(INPUT_MAX + 10) {
            q.push(b);
        }
        assert_eq!((q.len(), q.dropped), (INPUT_MAX, 10));
        let mut out = [0u8; 2];
        assert_eq!(q.pop_into(&mut out), 2);
        assert_eq!(out, [0, 1], "the oldest bytes are kept");
        assert_eq!(q.pop_into(&mut []), 0);
        assert_eq!(q.peek_into(&mut out), 2);
        assert_eq!(out, [2, 3]);
        assert_eq!(q.peek_into(&mut out), 2, "peeking leaves the bytes queued");
        assert_eq!(q.len(), INPUT_MAX - 2);
    }
}

/// Where a byte of serial input goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Console input, for the console-input domain.
    Console(u8),
    /// Part of a control request, for the control domain.
    Control(u8),
    /// The end of a control request (its newline).
    ControlEnd,
    /// Nothing (the marker that starts a control request).
    Nowhere,
}

/// Splits serial input into console input and control requests: a line
/// that starts with `parapet_abi::control::REQUEST_MARKER` is a control
/// request (see `parapet_abi::control`), every other byte is console input.
#[derive(Clone, Copy, Debug, Default)]
pub struct Demux {
    at_line_start: bool,
    in_control: bool,
}

impl Demux {
    /// At the start of a line.
    pub const fn new() -> Self {
        Self {
            at_line_start: true,
            in_control: false,
        }
    }

    /// Routes one byte.
    pub fn route(&mut self, b: u8) -> Route {
        let start = core::mem::replace(&mut self.at_line_start, b == b'\n' || b == b'\r');
        if self.in_control {
            if b == b'\n' || b == b'\r' {
                self.in_control = false;
                return Route::ControlEnd;
            }
            return Route::Control(b);
        }
        if start && b == parapet_abi::control::REQUEST_MARKER {
            self.in_control = true;
            self.at_line_start = false;
            return Route::Nowhere;
        }
        Route::Console(b)
    }
}

#[cfg(test)]
mod demux_tests {
    use super::*;
    use parapet_abi::control::REQUEST_MARKER as M;

    fn split(input: &[u8]) -> (Vec<u8>, Vec<u8>, usize) {
        let mut d = Demux::new();
        let (mut console, mut control, mut ends) = (Vec::new(), Vec::new(), 0);
        for &b in input {
            match d.route(b) {
                Route::Console(b) => console.push(b),
                Route::Control(b) => control.push(b),
                Route::ControlEnd => ends += 1,
                Route::Nowhere => {}
            }
        }
        (console, control, ends)
    }

    #[test]
    fn marked_lines_are_control_requests_the_rest_console_input() {
        let mut input = b"ps\n".to_vec();
        input.push(M);
        input.extend_from_slice(b"7 list\n");
        input.extend_from_slice(b"uptime\r\n");
        input.push(M);
        input.extend_from_slice(b"8 destroy a\n");
        let (console, control, ends) = split(&input);
        assert_eq!(console, b"ps\nuptime\r\n");
        assert_eq!(control, b"7 list8 destroy a");
        assert_eq!(ends, 2);
    }

    #[test]
    fn a_marker_inside_a_line_is_console_input() {
        let input = [b'a', M, b'b', b'\n'];
        let (console, control, _) = split(&input);
        assert_eq!(console, input);
        assert!(control.is_empty());
    }
}
