//! The driver domain's device wiring, one word of its command line per virtual
//! device, written by the `parapet` tool from the scenario file and read by the
//! driver domain:
//!
//! * `vbd=FRONTEND,DEV,SERIAL,START,SECTORS,rw|ro` ([`VbdWiring`]): domain
//!   `FRONTEND` gets virtual disk `DEV` (e.g. `vbd0`): `SECTORS` sectors from
//!   sector `START` of the virtio-blk device whose serial is `SERIAL`.
//! * `vif=FRONTEND,DEV,MAC` ([`VifWiring`]): domain `FRONTEND` gets network
//!   interface `DEV` (e.g. `vif0`) with that MAC address.
//!
//! Each type's `Display` writes its whole word and its `parse` reads it back;
//! [`WiringEntry::parse`] sorts a command-line word into one of them, or says
//! it is someone else's. No allocation: names are stored inline ([`Name`]).

use core::fmt;

use crate::mac::{MacAddr, MacError};

/// Longest [`Name`], in bytes.
pub const NAME_MAX: usize = 32;

/// A short name stored inline (domain names, device names, serials): 1 to
/// [`NAME_MAX`] bytes of `[A-Za-z0-9_-]`, so it never contains the `,` or
/// the space that separate the wiring.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name {
    buf: [u8; NAME_MAX],
    len: u8,
}

impl Name {
    /// `s` if it is 1..=[`NAME_MAX`] bytes of `[A-Za-z0-9_-]`. A `const fn`,
    /// so a fixed name can be checked at compile time.
    pub const fn new(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > NAME_MAX {
            return None;
        }
        let mut buf = [0; NAME_MAX];
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
                return None;
            }
            buf[i] = c;
            i += 1;
        }
        Some(Self {
            buf,
            len: b.len() as u8,
        })
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a `vbd=` or `vif=` word is malformed. The `&'static str`s name the
/// field: `frontend`, `dev`, `serial`, `start`, `sectors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WiringError {
    /// The word does not start with the key this parser reads (`vbd=` or `vif=`).
    Key,
    /// Not the number of comma-separated fields the entry has.
    Fields {
        /// How many it has.
        expected: usize,
    },
    /// A name field is not 1 to [`NAME_MAX`] bytes of `[A-Za-z0-9_-]`.
    Name(&'static str),
    /// A number field is not a decimal `u64`.
    Number(&'static str),
    /// The access mode is neither `rw` nor `ro`.
    Mode,
    /// The disk range is empty, or `START + SECTORS` overflows.
    Range,
    /// The MAC address.
    Mac(MacError),
}

impl fmt::Display for WiringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WiringError::Key => f.write_str("not a vbd= or vif= entry"),
            WiringError::Fields { expected } => {
                write!(f, "expected {expected} comma-separated fields")
            }
            WiringError::Name(field) => {
                write!(f, "bad {field}: use 1 to {NAME_MAX} of [A-Za-z0-9_-]")
            }
            WiringError::Number(field) => write!(f, "bad {field}: not a number"),
            WiringError::Mode => f.write_str("bad mode: rw or ro"),
            WiringError::Range => f.write_str("bad range: no sectors, or past 2^64"),
            WiringError::Mac(e) => write!(f, "bad MAC: {e}"),
        }
    }
}

impl core::error::Error for WiringError {}

/// Splits `KEY=A,B,C` into exactly `N` fields.
fn fields<'a, const N: usize>(word: &'a str, key: &str) -> Result<[&'a str; N], WiringError> {
    let value = word
        .strip_prefix(key)
        .and_then(|w| w.strip_prefix('='))
        .ok_or(WiringError::Key)?;
    let mut out = [""; N];
    let mut parts = value.split(',');
    for slot in &mut out {
        *slot = parts.next().ok_or(WiringError::Fields { expected: N })?;
    }
    match parts.next() {
        Some(_) => Err(WiringError::Fields { expected: N }),
        None => Ok(out),
    }
}

fn name(s: &str, field: &'static str) -> Result<Name, WiringError> {
    Name::new(s).ok_or(WiringError::Name(field))
}

fn number(s: &str, field: &'static str) -> Result<u64, WiringError> {
    // `u64::from_str` takes a leading `+`; the wiring is digits only.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WiringError::Number(field));
    }
    s.parse().map_err(|_| WiringError::Number(field))
}

/// One virtual disk: `vbd=FRONTEND,DEV,SERIAL,START,SECTORS,rw|ro`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VbdWiring {
    /// The frontend domain's name.
    pub frontend: Name,
    /// The device name in the frontend (`vbd0`).
    pub dev: Name,
    /// Serial of the virtio-blk device that holds it.
    pub serial: Name,
    /// First sector on that device.
    pub start: u64,
    /// Size in sectors; [`VbdWiring::parse`] refuses 0 and a range past 2^64.
    pub sectors: u64,
    /// Read-only (`ro`).
    pub readonly: bool,
}

impl VbdWiring {
    /// The key of its word.
    pub const KEY: &'static str = "vbd";

    /// Parses a whole `vbd=…` word.
    pub fn parse(word: &str) -> Result<Self, WiringError> {
        let [frontend, dev, serial, start, sectors, mode] = fields::<6>(word, Self::KEY)?;
        let c = VbdWiring {
            frontend: name(frontend, "frontend")?,
            dev: name(dev, "dev")?,
            serial: name(serial, "serial")?,
            start: number(start, "start")?,
            sectors: number(sectors, "sectors")?,
            readonly: match mode {
                "ro" => true,
                "rw" => false,
                _ => return Err(WiringError::Mode),
            },
        };
        if c.sectors == 0 || c.start.checked_add(c.sectors).is_none() {
            return Err(WiringError::Range);
        }
        Ok(c)
    }
}

impl fmt::Display for VbdWiring {
    /// `vbd=FRONTEND,DEV,SERIAL,START,SECTORS,rw|ro`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={},{},{},{},{},{}",
            Self::KEY,
            self.frontend,
            self.dev,
            self.serial,
            self.start,
            self.sectors,
            if self.readonly { "ro" } else { "rw" }
        )
    }
}

/// One virtual network interface: `vif=FRONTEND,DEV,MAC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VifWiring {
    /// The frontend domain's name.
    pub frontend: Name,
    /// The device name in the frontend (`vif0`).
    pub dev: Name,
    /// Its MAC address.
    pub mac: MacAddr,
}

impl VifWiring {
    /// The key of its word.
    pub const KEY: &'static str = "vif";

    /// Parses a whole `vif=…` word.
    pub fn parse(word: &str) -> Result<Self, WiringError> {
        let [frontend, dev, mac] = fields::<3>(word, Self::KEY)?;
        Ok(VifWiring {
            frontend: name(frontend, "frontend")?,
            dev: name(dev, "dev")?,
            mac: MacAddr::parse(mac).map_err(WiringError::Mac)?,
        })
    }
}

impl fmt::Display for VifWiring {
    /// `vif=FRONTEND,DEV,MAC`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={},{},{}",
            Self::KEY,
            self.frontend,
            self.dev,
            self.mac
        )
    }
}

/// One wiring word of either kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WiringEntry {
    /// `vbd=…`.
    Vbd(VbdWiring),
    /// `vif=…`.
    Vif(VifWiring),
}

impl WiringEntry {
    /// Reads one command-line word: `None` when it is not a `vbd=` or `vif=`
    /// word (someone else's option), otherwise the entry or why it is
    /// malformed.
    pub fn parse(word: &str) -> Option<Result<Self, WiringError>> {
        let (key, _) = word.split_once('=')?;
        match key {
            VbdWiring::KEY => Some(VbdWiring::parse(word).map(WiringEntry::Vbd)),
            VifWiring::KEY => Some(VifWiring::parse(word).map(WiringEntry::Vif)),
            _ => None,
        }
    }
}

impl fmt::Display for WiringEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WiringEntry::Vbd(v) => v.fmt(f),
            WiringEntry::Vif(v) => v.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    #[test]
    fn writes_and_reads_both_kinds() {
        let vbd = VbdWiring {
            frontend: n("guest-b"),
            dev: n("vbd0"),
            serial: n("disk0"),
            start: 8192,
            sectors: 4096,
            readonly: true,
        };
        assert_eq!(vbd.to_string(), "vbd=guest-b,vbd0,disk0,8192,4096,ro");
        assert_eq!(
            WiringEntry::parse("vbd=guest-b,vbd0,disk0,8192,4096,ro"),
            Some(Ok(WiringEntry::Vbd(vbd)))
        );
        let vif = VifWiring {
            frontend: n("guest-a"),
            dev: n("vif0"),
            mac: MacAddr([2, 0, 0, 0, 0, 0x0a]),
        };
        assert_eq!(vif.to_string(), "vif=guest-a,vif0,02:00:00:00:00:0a");
        assert_eq!(
            WiringEntry::parse("vif=guest-a,vif0,02:00:00:00:00:0A"),
            Some(Ok(WiringEntry::Vif(vif)))
        );
        assert_eq!(WiringEntry::parse("log=info"), None);
        assert_eq!(WiringEntry::parse("verbose"), None);
    }

    #[test]
    fn bad_entries_say_why() {
        use WiringError::*;
        for (word, e) in [
            ("vbd=a,vbd0,d,0,0,rw", Range),
            ("vbd=a,vbd0,d,0,10,rx", Mode),
            ("vbd=a,vbd0,d,18446744073709551615,10,rw", Range),
            ("vbd=a,vbd0,d,0,10,rw,extra", Fields { expected: 6 }),
            ("vbd=x,y", Fields { expected: 6 }),
            ("vbd=", Fields { expected: 6 }),
            ("vbd=a b,vbd0,d,0,10,rw", Name("frontend")),
            ("vbd=a,,d,0,10,rw", Name("dev")),
            ("vbd=a,vbd0,d.0,0,10,rw", Name("serial")),
            ("vbd=a,vbd0,d,+1,10,rw", Number("start")),
            ("vbd=a,vbd0,d,0,-1,rw", Number("sectors")),
            ("vbd=a,vbd0,d,0,99999999999999999999,rw", Number("sectors")),
        ] {
            assert_eq!(VbdWiring::parse(word), Err(e), "{word}");
            assert_eq!(WiringEntry::parse(word), Some(Err(e)), "{word}");
        }
        for (word, e) in [
            ("vif=a,b,zz:00:00:00:00:00", Mac(MacError::Digit { at: 0 })),
            ("vif=a,b", Fields { expected: 3 }),
            ("vif=a,b,02:00:00:00:00:01,x", Fields { expected: 3 }),
        ] {
            assert_eq!(VifWiring::parse(word), Err(e), "{word}");
        }
        let long = format!("vif={},b,02:00:00:00:00:01", "a".repeat(NAME_MAX + 1));
        assert_eq!(VifWiring::parse(&long), Err(Name("frontend")));
        assert_eq!(VbdWiring::parse("vif=a,b,02:00:00:00:00:01"), Err(Key));
        assert_eq!(VifWiring::parse("vifx=a,b,02:00:00:00:00:01"), Err(Key));
        assert_eq!(
            Name("serial").to_string(),
            "bad serial: use 1 to 32 of [A-Za-z0-9_-]"
        );
    }

    #[test]
    fn names() {
        assert_eq!(n("Disk_0-a").as_str(), "Disk_0-a");
        assert_eq!(
            Name::new(&"x".repeat(NAME_MAX)).map(|n| n.as_str().len()),
            Some(32)
        );
        for bad in ["", "a,b", "a b", "é", "a=b"] {
            assert_eq!(Name::new(bad), None, "{bad:?}");
        }
        assert_eq!(Name::new(&"x".repeat(NAME_MAX + 1)), None);
        assert_eq!(format!("{:?}", n("vbd0")), "\"vbd0\"");
    }
}
