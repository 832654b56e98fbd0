//! The driver domain's device wiring, from its command line (written by
//! `parapet` from the scenario file):
//!
//! * `vbd=FRONTEND,DEV,SERIAL,START,SECTORS,rw|ro` — domain `FRONTEND` gets
//!   virtual disk `DEV` (e.g. `vbd0`): `SECTORS` sectors from sector `START`
//!   of the virtio-blk device whose serial is `SERIAL`.
//! * `vif=FRONTEND,DEV,MAC` — domain `FRONTEND` gets network interface `DEV`
//!   (e.g. `vif0`) with that MAC address.
//!
//! Portable and tested on the host; a malformed entry is reported by name and
//! skipped, never a reason to crash.

/// Most virtual devices of each kind.
pub const MAX_VBDS: usize = 8;
/// Most virtual network interfaces.
pub const MAX_VIFS: usize = 8;

/// A short name stored inline (domain names, device names, serials).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    buf: [u8; 32],
    len: u8,
}

impl Name {
    /// `s` if it is 1..=32 bytes of `[A-Za-z0-9_-]`.
    pub fn new(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return None;
        }
        let mut buf = [0; 32];
        buf[..s.len()].copy_from_slice(s.as_bytes());
        Some(Self {
            buf,
            len: s.len() as u8,
        })
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl core::fmt::Debug for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl core::fmt::Display for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One virtual disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VbdConfig {
    /// The frontend domain's name.
    pub frontend: Name,
    /// The device name in the frontend (`vbd0`).
    pub dev: Name,
    /// Serial of the virtio-blk device that holds it.
    pub serial: Name,
    /// First sector on that device.
    pub start: u64,
    /// Size in sectors.
    pub sectors: u64,
    /// Read-only.
    pub readonly: bool,
}

/// One virtual network interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VifConfig {
    /// The frontend domain's name.
    pub frontend: Name,
    /// The device name in the frontend (`vif0`).
    pub dev: Name,
    /// Its MAC address.
    pub mac: [u8; 6],
}

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
    pub vbds: List<VbdConfig, MAX_VBDS>,
    /// Network interfaces.
    pub vifs: List<VifConfig, MAX_VIFS>,
}

/// Parses a MAC address `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn parse_vbd(v: &str) -> Option<VbdConfig> {
    let mut f = v.split(',');
    let c = VbdConfig {
        frontend: Name::new(f.next()?)?,
        dev: Name::new(f.next()?)?,
        serial: Name::new(f.next()?)?,
        start: f.next()?.parse().ok()?,
        sectors: f.next()?.parse().ok()?,
        readonly: match f.next()? {
            "ro" => true,
            "rw" => false,
            _ => return None,
        },
    };
    (f.next().is_none() && c.sectors > 0 && c.start.checked_add(c.sectors).is_some()).then_some(c)
}

fn parse_vif(v: &str) -> Option<VifConfig> {
    let mut f = v.split(',');
    let c = VifConfig {
        frontend: Name::new(f.next()?)?,
        dev: Name::new(f.next()?)?,
        mac: parse_mac(f.next()?)?,
    };
    f.next().is_none().then_some(c)
}

/// Reads the wiring from a command line; `bad` gets each entry that is
/// malformed or beyond the limits.
pub fn parse(cmdline: &str, mut bad: impl FnMut(&str)) -> Wiring {
    let mut w = Wiring::default();
    for word in cmdline.split_ascii_whitespace() {
        let pushed = match word.split_once('=') {
            Some(("vbd", v)) => parse_vbd(v).is_some_and(|c| w.vbds.push(c)),
            Some(("vif", v)) => parse_vif(v).is_some_and(|c| w.vifs.push(c)),
            _ => true, // someone else's option
        };
        if !pushed {
            bad(word);
        }
    }
    w
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn parses_the_wiring() {
        let mut bad = Vec::new();
        let w = parse(
            "log=info vbd=guest-a,vbd0,disk0,0,8192,rw vbd=guest-b,vbd0,disk0,8192,4096,ro \
             vif=guest-a,vif0,02:00:00:00:00:0A vbd=x,y vif=a,b,zz:00:00:00:00:00",
            |w| bad.push(std::string::String::from(w)),
        );
        assert_eq!(w.vbds.len(), 2);
        assert_eq!(w.vbds.get(1).unwrap().frontend.as_str(), "guest-b");
        assert_eq!(
            (
                w.vbds.get(1).unwrap().start,
                w.vbds.get(1).unwrap().sectors,
                w.vbds.get(1).unwrap().readonly
            ),
            (8192, 4096, true)
        );
        assert_eq!(w.vbds.get(0).unwrap().serial.as_str(), "disk0");
        assert_eq!(w.vifs.len(), 1);
        assert_eq!(w.vifs.get(0).unwrap().mac, [2, 0, 0, 0, 0, 0x0a]);
        assert_eq!(bad, ["vbd=x,y", "vif=a,b,zz:00:00:00:00:00"]);
    }

    #[test]
    fn rejects_bad_entries() {
        for v in [
            "a,vbd0,d,0,0,rw",
            "a,vbd0,d,0,10,rx",
            "a,vbd0,d,18446744073709551615,10,rw",
            "a,vbd0,d,0,10,rw,extra",
            "a b,vbd0,d,0,10,rw",
        ] {
            assert!(parse_vbd(v).is_none(), "{v}");
        }
        assert!(parse_mac("02:00:00:00:00").is_none());
        assert!(parse_mac("02:00:00:00:00:00:00").is_none());
        assert!(parse_mac("2:00:00:00:00:00").is_none());
    }
}
