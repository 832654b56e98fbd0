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
    /// `crash`: a test aid: the driver domain faults on purpose (see
    /// [`crash_on_purpose`]), to try the scenario's `on_crash` policy.
    Crash,
    /// `shutdown`: the driver domain prints its counters and powers off,
    /// whether guests still run or not (their devices go away with it). It
    /// ends a run in which, as the control domain, it stays up for the
    /// host's requests (see `domains::may_create_later`).
    Shutdown,
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
            "crash" if rest.trim().is_empty() => Command::Crash,
            "shutdown" if rest.trim().is_empty() => Command::Shutdown,
            _ => Command::Unknown(word),
        }
    }
}

/// The help text.
pub const HELP: &str = "commands: help, domains, devices, echo TEXT, \
shutdown (power the driver domain off), \
crash (a test aid: crash the driver domain on purpose, to try on_crash)";

/// An address that no domain has mapped at stage 2 but that the SDK's
/// stage-1 identity map covers as normal memory: the last page of the grant
/// window (the SDK maps grants only at the window's first pages).
pub const CRASH_ADDRESS: u64 =
    parapet_abi::grant::GRANT_WINDOW_BASE + parapet_abi::grant::GRANT_WINDOW_SIZE - 4096;

/// `crash`: faults on purpose with a load from [`CRASH_ADDRESS`]. The
/// hypervisor takes the stage-2 data abort, stops the domain as crashed and
/// applies its `on_crash` policy; this never returns.
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub fn crash_on_purpose() -> ! {
    parapet_guest::println!("crash: faulting on purpose (a load from {CRASH_ADDRESS:#x})");
    // SAFETY: deliberately invalid, as a test aid: the address is mapped by
    // our stage 1 but by no stage 2, so the load traps to the hypervisor,
    // which stops this domain; no value is ever read and no Rust object
    // lives there.
    let v = unsafe { core::ptr::read_volatile(CRASH_ADDRESS as *const u64) };
    panic!("crash: the load from {CRASH_ADDRESS:#x} returned {v:#x} instead of faulting");
}

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
        assert_eq!(Command::parse(" shutdown "), Command::Shutdown);
        assert_eq!(Command::parse("shutdown now"), Command::Unknown("shutdown"));
        assert!(HELP.contains("shutdown"), "{HELP}");
    }

    #[test]
    fn crash_is_a_command_of_its_own() {
        assert_eq!(Command::parse("crash"), Command::Crash);
        assert_eq!(Command::parse("  crash  "), Command::Crash);
        // Only the bare word: anything else is not a request to crash.
        assert_eq!(Command::parse("crash now"), Command::Unknown("crash"));
        assert_eq!(Command::parse("crashes"), Command::Unknown("crashes"));
        assert!(HELP.contains("crash"), "{HELP}");
        assert!(HELP.contains("on_crash"), "{HELP}");
        // Outside RAM and the devices, inside the SDK's 1-4 GiB normal map.
        let (base, size) = (
            parapet_abi::grant::GRANT_WINDOW_BASE,
            parapet_abi::grant::GRANT_WINDOW_SIZE,
        );
        assert!((base..base + size).contains(&CRASH_ADDRESS));
        // Past the window pages the SDK hands out for mappings.
        let sdk_window_end = base + 4096 * parapet_guest::grant::WINDOW_PAGES as u64;
        assert!(CRASH_ADDRESS >= sdk_window_end && CRASH_ADDRESS < 1 << 32);
        assert!(CRASH_ADDRESS.is_multiple_of(4096));
    }
}
