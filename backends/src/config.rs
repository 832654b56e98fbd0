//! The driver domain's device wiring, from its command line (written by
//! `parapet` from the scenario file):
//!
//! * `vbd=FRONTEND,DEV,SERIAL,START,SECTORS,rw|ro` — domain `FRONTEND` gets
//!   virtual disk `DEV` (e.g. `vbd0`): `SECTORS` sectors from sector `START`
//!   of the virtio-blk device whose serial is `SERIAL`.
//! * `vif=FRONTEND,DEV,MAC` — domain `FRONTEND` gets network interface `DEV`
//!   (e.g. `vif0`) with that MAC address.
//!
//! The format, its parser and its writer are [`parapet_abi::wiring`], shared
//! with the tool; this module gathers a command line's entries into
//! fixed-size lists. Portable and tested on the host; a malformed entry is
//! reported with the reason and skipped, never a reason to crash.

use core::fmt;

pub use parapet_abi::wiring::{Name, VbdWiring, VifWiring, WiringEntry, WiringError};

/// Most virtual devices of each kind.
pub const MAX_VBDS: usize = 8;
/// Most virtual network interfaces.
pub const MAX_VIFS: usize = 8;

/// A fixed-capacity list (the driver domain keeps its wiring off the heap).
#[derive(Clone, Copy, Debug)]
pub struct List<T: Copy, const N: usize> {
    items: [Option<T>; N],
    len: usize,
}

impl<T: Copy, const N: usize> Default for List<T, N> {
    fn default() -> Self {
        Self {
            items: [None; N],
            len: 0,
        }
    }
}

impl<T: Copy, const N: usize> List<T, N> {
    /// Appends; `false` when full.
    pub fn push(&mut self, item: T) -> bool {
        if self.len == N {
            return false;
        }
        self.items[self.len] = Some(item);
        self.len += 1;
        true
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The items.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items[..self.len].iter().flatten()
    }

    /// Item `i`.
    pub fn get(&self, i: usize) -> Option<&T> {
        self.items.get(i)?.as_ref()
    }
}

/// Everything the command line wires.
#[derive(Clone, Debug, Default)]
pub struct Wiring {
    /// Virtual disks.
    pub vbds: List<VbdWiring, MAX_VBDS>,
    /// Network interfaces.
    pub vifs: List<VifWiring, MAX_VIFS>,
}

/// Why a wiring word of the command line is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// It does not parse.
    Malformed(WiringError),
    /// There are already this many devices of its kind.
    TooMany(usize),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Malformed(e) => write!(f, "malformed: {e}"),
            Refused::TooMany(max) => write!(f, "more than {max} devices of this kind"),
        }
    }
}

/// Reads the wiring from a command line; `bad` gets each `vbd=`/`vif=` word
/// that is malformed or beyond the limits, and why. Other words are someone
/// else's options.
pub fn parse(cmdline: &str, mut bad: impl FnMut(&str, Refused)) -> Wiring {
    let mut w = Wiring::default();
    for word in cmdline.split_ascii_whitespace() {
        let refused = match WiringEntry::parse(word) {
            None => None,
            Some(Err(e)) => Some(Refused::Malformed(e)),
            Some(Ok(WiringEntry::Vbd(c))) => {
                (!w.vbds.push(c)).then_some(Refused::TooMany(MAX_VBDS))
            }
            Some(Ok(WiringEntry::Vif(c))) => {
                (!w.vifs.push(c)).then_some(Refused::TooMany(MAX_VIFS))
            }
        };
        if let Some(why) = refused {
            bad(word, why);
        }
    }
    w
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use parapet_abi::MacAddr;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn parse_collecting(cmdline: &str) -> (Wiring, Vec<(String, Refused)>) {
        let mut bad = Vec::new();
        let w = parse(cmdline, |w, why| bad.push((String::from(w), why)));
        (w, bad)
    }

    #[test]
    fn parses_the_wiring() {
        let (w, bad) = parse_collecting(
            "log=info vbd=guest-a,vbd0,disk0,0,8192,rw vbd=guest-b,vbd0,disk0,8192,4096,ro \
             vif=guest-a,vif0,02:00:00:00:00:0A vbd=x,y vif=a,b,zz:00:00:00:00:00",
        );
        assert_eq!(w.vbds.len(), 2);
        let b = w.vbds.get(1).unwrap();
        assert_eq!(b.frontend.as_str(), "guest-b");
        assert_eq!((b.start, b.sectors, b.readonly), (8192, 4096, true));
        assert_eq!(w.vbds.get(0).unwrap().serial.as_str(), "disk0");
        assert_eq!(w.vifs.len(), 1);
        assert_eq!(w.vifs.get(0).unwrap().mac, MacAddr([2, 0, 0, 0, 0, 0x0a]));
        let words: Vec<&str> = bad.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, ["vbd=x,y", "vif=a,b,zz:00:00:00:00:00"]);
        assert_eq!(
            bad[0].1.to_string(),
            "malformed: expected 6 comma-separated fields"
        );
    }

    #[test]
    fn written_wiring_reads_back() {
        let (w, _) = parse_collecting("vbd=a,vbd0,disk0,0,16,rw vif=a,vif0,02:00:00:00:00:01");
        let line = [
            w.vbds.get(0).unwrap().to_string(),
            w.vifs.get(0).unwrap().to_string(),
        ]
        .join(" ");
        assert_eq!(
            line,
            "vbd=a,vbd0,disk0,0,16,rw vif=a,vif0,02:00:00:00:00:01"
        );
    }

    #[test]
    fn too_many_devices_are_refused() {
        let line: Vec<String> = (0..MAX_VIFS + 1)
            .map(|i| std::format!("vif=g{i},vif0,02:00:00:00:00:{i:02x}"))
            .collect();
        let (w, bad) = parse_collecting(&line.join(" "));
        assert_eq!(w.vifs.len(), MAX_VIFS);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].1, Refused::TooMany(MAX_VIFS));
        assert!(w.vbds.is_empty());
    }
}
