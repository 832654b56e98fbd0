//! The driver domain's console shell: console input arrives in arbitrary
//! pieces (whatever the UART had when the hypervisor drained it); [`LineEditor`]
//! assembles lines with backspace handling, and [`Command::parse`] reads them.
//! Portable and tested on the host; the binary feeds it from `ConsoleRead`.

/// Longest line kept; longer input is cut there (the rest is dropped).
pub const LINE_MAX: usize = 120;

/// Assembles console input into lines.
pub struct LineEditor {
    buf: [u8; LINE_MAX],
    len: usize,
    /// Bytes dropped because a line was too long.
    pub overflow: usize,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
            overflow: 0,
        }
    }

    /// Feeds input bytes, calling `line` with each completed line (trimmed,
    /// without its terminator). `\r`, `\n` and `\r\n` end a line; backspace and
    /// DEL erase; other control bytes and non-ASCII bytes are ignored.
    pub fn feed(&mut self, bytes: &[u8], mut line: impl FnMut(&str)) {
        for &b in bytes {
            match b {
                b'\r' | b'\n' => {
                    if self.len > 0 || b == b'\n' {
                        let text = core::str::from_utf8(&self.buf[..self.len]).unwrap_or("");
                        let text = text.trim();
                        if !text.is_empty() {
                            line(text);
                        }
                    }
                    self.len = 0;
                }
                0x08 | 0x7f => self.len = self.len.saturating_sub(1),
                0x20..=0x7e if self.len < LINE_MAX => {
                    self.buf[self.len] = b;
                    self.len += 1;
                }
                0x20..=0x7e => self.overflow += 1,
                _ => {}
            }
        }
    }
}

/// A shell command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `help`: lists the commands.
    Help,
    /// `domains`: how many domains run and how many crashed.
    Domains,
    /// `devices`: the devices the driver domain drives.
    Devices,
    /// `echo TEXT`: prints TEXT back.
    Echo(&'a str),
    /// Anything else.
    Unknown(&'a str),
}

impl<'a> Command<'a> {
    /// Parses one line.
    pub fn parse(line: &'a str) -> Self {
        let line = line.trim();
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "help" | "?" => Command::Help,
            "domains" => Command::Domains,
            "devices" => Command::Devices,
            "echo" => Command::Echo(rest.trim()),
            _ => Command::Unknown(word),
        }
    }
}

/// The help text.
pub const HELP: &str = "commands: help, domains, devices, echo TEXT";

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut ed = LineEditor::new();
        let mut out = Vec::new();
        for c in chunks {
            ed.feed(c, |l| out.push(l.to_string()));
        }
        out
    }

    #[test]
    fn lines_survive_any_split() {
        let input = b"echo hi\r\ndomains\nhelp\r";
        let whole = lines(&[input]);
        assert_eq!(whole, ["echo hi", "domains", "help"]);
        for cut in 0..input.len() {
            assert_eq!(
                lines(&[&input[..cut], &input[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn editing_and_junk() {
        assert_eq!(lines(&[b"ecx\x7fho  a\x08b \n"]), ["echo  b"]);
        assert_eq!(lines(&[b"\x1b[A\xff\xfeok\n"]), ["[Aok"]);
        assert_eq!(lines(&[b"\n\r\n   \n"]), Vec::<String>::new());
        let mut ed = LineEditor::new();
        let mut got = Vec::new();
        ed.feed(&[b'x'; LINE_MAX + 5], |_| {});
        ed.feed(b"\n", |l| got.push(l.len()));
        assert_eq!((got, ed.overflow), (vec![LINE_MAX], 5));
    }

    #[test]
    fn commands() {
        assert_eq!(Command::parse("help"), Command::Help);
        assert_eq!(Command::parse(" domains "), Command::Domains);
        assert_eq!(Command::parse("echo  a b "), Command::Echo("a b"));
        assert_eq!(Command::parse("echo"), Command::Echo(""));
        assert_eq!(Command::parse("reboot now"), Command::Unknown("reboot"));
    }
}
