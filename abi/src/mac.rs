//! Ethernet (MAC-48) addresses and their one text form, `02:00:00:00:00:0a`:
//! six two-digit hex bytes separated by colons, written in lower case and read
//! in either case. The scenario files, the driver domain's `vif=` wiring and
//! every log line use it.

use core::fmt;
use core::str::FromStr;

/// An Ethernet (MAC-48) address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[repr(transparent)]
pub struct MacAddr(pub [u8; 6]);

/// Length of the text form, `aa:bb:cc:dd:ee:ff`.
pub const MAC_TEXT_LEN: usize = 17;

/// Why a text is not a MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MacError {
    /// Not [`MAC_TEXT_LEN`] bytes long.
    Length(usize),
    /// Byte `at` (0-based) should be a `:`.
    Separator {
        /// Its offset.
        at: usize,
    },
    /// Byte `at` (0-based) should be a hex digit.
    Digit {
        /// Its offset.
        at: usize,
    },
}

impl fmt::Display for MacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MacError::Length(n) => write!(
                f,
                "{n} bytes long, not {MAC_TEXT_LEN} (six two-digit hex bytes separated by colons)"
            ),
            MacError::Separator { at } => write!(f, "expected ':' at offset {at}"),
            MacError::Digit { at } => write!(f, "expected a hex digit at offset {at}"),
        }
    }
}

impl core::error::Error for MacError {}

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`, every station.
    pub const BROADCAST: Self = Self([0xff; 6]);
    /// `00:00:00:00:00:00`, no station.
    pub const ZERO: Self = Self([0; 6]);

    /// Whether this is a group address (multicast, including broadcast): the
    /// low bit of the first octet is set.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// Whether this is the broadcast address.
    pub const fn is_broadcast(&self) -> bool {
        matches!(self.0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }

    /// Whether this is a locally administered address (the second-lowest bit
    /// of the first octet), as the `02:…` addresses Parapet gives guests are.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 2 != 0
    }

    /// Whether a station may use it as its own address: neither a group
    /// address nor all zero.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast() && !matches!(self.0, [0, 0, 0, 0, 0, 0])
    }

    /// The six octets.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Parses `02:00:00:00:00:0a`: exactly six groups of two hex digits
    /// (either case) separated by colons; nothing before or after.
    pub fn parse(s: &str) -> Result<Self, MacError> {
        let b = s.as_bytes();
        if b.len() != MAC_TEXT_LEN {
            return Err(MacError::Length(b.len()));
        }
        let mut mac = [0u8; 6];
        for (i, octet) in mac.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && b[at - 1] != b':' {
                return Err(MacError::Separator { at: at - 1 });
            }
            let digit = |at: usize| hex_digit(b[at]).ok_or(MacError::Digit { at });
            *octet = (digit(at)? << 4) | digit(at + 1)?;
        }
        Ok(Self(mac))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl FromStr for MacAddr {
    type Err = MacError;

    fn from_str(s: &str) -> Result<Self, MacError> {
        Self::parse(s)
    }
}

impl fmt::Display for MacAddr {
    /// Lower case, colon-separated: `02:00:00:00:00:0a`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        Self(octets)
    }
}

impl From<MacAddr> for [u8; 6] {
    fn from(mac: MacAddr) -> Self {
        mac.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let m = MacAddr::parse("02:00:00:00:00:0a").unwrap();
        assert_eq!(m, MacAddr([2, 0, 0, 0, 0, 0x0a]));
        assert_eq!(m.to_string(), "02:00:00:00:00:0a");
        assert_eq!(
            "AA:bb:Cc:dD:ee:FF".parse(),
            Ok(MacAddr([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]))
        );
        assert_eq!(MacAddr::BROADCAST.to_string(), "ff:ff:ff:ff:ff:ff");
        assert_eq!(
            MacAddr([0xAB, 1, 2, 3, 4, 5]).to_string(),
            "ab:01:02:03:04:05"
        );
    }

    #[test]
    fn bad_text_says_where() {
        use MacError::*;
        for (bad, e) in [
            ("", Length(0)),
            ("02:00:00:00:00", Length(14)),
            ("02:00:00:00:00:0a:0b", Length(20)),
            ("02:00:00:00:00:0", Length(16)),
            ("2:0:0:0:0:a", Length(11)),
            ("02:00:00:00:00:0g", Digit { at: 16 }),
            ("02-00-00-00-00-0a", Separator { at: 2 }),
            ("02:00:00:00:00:+a", Digit { at: 15 }),
            ("+2:00:00:00:00:0a", Digit { at: 0 }),
            ("02:00:00:00:000a:", Separator { at: 14 }),
            (" 02:00:00:00:00:0a", Length(18)),
            ("02:00:00:00:00:0a ", Length(18)),
            ("02:00:00:00:00:é", Digit { at: 15 }),
            ("0200:00:00:00:00a", Separator { at: 2 }),
        ] {
            assert_eq!(MacAddr::parse(bad), Err(e), "{bad:?}");
        }
        assert_eq!(Separator { at: 2 }.to_string(), "expected ':' at offset 2");
    }

    #[test]
    fn address_kinds() {
        assert!(MacAddr::BROADCAST.is_multicast() && MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(!MacAddr([0x01, 0, 0x5e, 0, 0, 1]).is_broadcast());
        let guest = MacAddr([0x02, 0, 0, 0, 0, 1]);
        assert!(guest.is_unicast() && guest.is_local() && !guest.is_multicast());
        assert!(!MacAddr::ZERO.is_unicast());
        assert!(MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]).is_local());
        assert!(!MacAddr([0x00, 0x1b, 0x21, 0, 0, 1]).is_local());
        assert_eq!(<[u8; 6]>::from(guest), guest.octets());
    }
}
