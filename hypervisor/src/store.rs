//! The store: per-domain key/value entries that domains use to rendezvous
//! (see `parapet_abi::store`). Pure and tested on the host.
#![deny(unsafe_code)]

use parapet_abi::store::{valid_key, ENTRIES_PER_DOMAIN, KEY_MAX, VALUE_MAX};
use parapet_abi::HvError;

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: [u8; KEY_MAX],
    key_len: u8,
    value: [u8; VALUE_MAX],
    value_len: u8,
}

impl Entry {
    fn key(&self) -> &[u8] {
        &self.key[..self.key_len as usize]
    }
}

/// One domain's keys.
#[derive(Clone, Debug)]
pub struct Namespace {
    entries: [Option<Entry>; ENTRIES_PER_DOMAIN],
}

impl Default for Namespace {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl Namespace {
    /// No keys.
    pub const EMPTY: Namespace = Namespace {
        entries: [None; ENTRIES_PER_DOMAIN],
    };

    /// Writes `key` (creating it if needed).
    pub fn write(&mut self, key: &[u8], value: &[u8]) -> Result<(), HvError> {
        if !valid_key(key) || value.len() > VALUE_MAX {
            return Err(HvError::Inval);
        }
        // Both fit, as checked just above: at most `KEY_MAX` and `VALUE_MAX`.
        let key_len = u8::try_from(key.len()).map_err(|_| HvError::Inval)?;
        let value_len = u8::try_from(value.len()).map_err(|_| HvError::Inval)?;
        let slot = match self.find(key) {
            Some(i) => i,
            None => self
                .entries
                .iter()
                .position(Option::is_none)
                .ok_or(HvError::NoMem)?,
        };
        let mut e = Entry {
            key: [0; KEY_MAX],
            key_len,
            value: [0; VALUE_MAX],
            value_len,
        };
        e.key[..key.len()].copy_from_slice(key);
        e.value[..value.len()].copy_from_slice(value);
        self.entries[slot] = Some(e);
        Ok(())
    }

    fn find(&self, key: &[u8]) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.as_ref().is_some_and(|e| e.key() == key))
    }

    /// Reads `key` into `buf` (truncated); returns the value's full length.
    pub fn read(&self, key: &[u8], buf: &mut [u8]) -> Result<usize, HvError> {
        if !valid_key(key) {
            return Err(HvError::Inval);
        }
        let e = self
            .find(key)
            .and_then(|i| self.entries[i])
            .ok_or(HvError::NoEnt)?;
        let len = e.value_len as usize;
        let n = len.min(buf.len());
        buf[..n].copy_from_slice(&e.value[..n]);
        Ok(len)
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &[u8]) -> Result<(), HvError> {
        if !valid_key(key) {
            return Err(HvError::Inval);
        }
        let i = self.find(key).ok_or(HvError::NoEnt)?;
        self.entries[i] = None;
        Ok(())
    }

    /// Removes everything (the domain stopped).
    pub fn clear(&mut self) {
        *self = Self::EMPTY;
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.iter().flatten().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_overwrite_remove() {
        let mut ns = Namespace::EMPTY;
        ns.write(b"ring", b"12").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(ns.read(b"ring", &mut buf), Ok(2));
        assert_eq!(&buf[..2], b"12");
        ns.write(b"ring", b"345").unwrap();
        assert_eq!(ns.read(b"ring", &mut buf), Ok(3));
        assert_eq!(ns.len(), 1);
        let mut small = [0u8; 1];
        assert_eq!(ns.read(b"ring", &mut small), Ok(3));
        assert_eq!(&small, b"3");
        ns.remove(b"ring").unwrap();
        assert_eq!(ns.read(b"ring", &mut buf), Err(HvError::NoEnt));
        assert_eq!(ns.remove(b"ring"), Err(HvError::NoEnt));
    }

    #[test]
    fn bad_input_and_limits() {
        let mut ns = Namespace::EMPTY;
        assert_eq!(ns.write(b"", b"x"), Err(HvError::Inval));
        assert_eq!(ns.write(b"a key", b"x"), Err(HvError::Inval));
        assert_eq!(ns.write(b"k", &[0; VALUE_MAX + 1]), Err(HvError::Inval));
        assert!(ns.write(b"k", &[0; VALUE_MAX]).is_ok());
        for i in 1..ENTRIES_PER_DOMAIN {
            ns.write(format!("k{i}").as_bytes(), b"v").unwrap();
        }
        assert_eq!(ns.write(b"one-more", b"v"), Err(HvError::NoMem));
        // Overwriting an existing key still works when full.
        assert!(ns.write(b"k1", b"w").is_ok());
        ns.clear();
        assert!(ns.is_empty());
    }
}
