//! The store: small per-domain key/value entries that domains use to find each
//! other (which grant reference, which port), in the spirit of XenStore but
//! kept in the hypervisor and flat.
//!
//! A domain writes and removes keys in its own namespace only and reads any
//! domain's keys. Every write or removal raises
//! [`Virq::Store`](crate::vpsr::Virq::Store) in the other running domains, so a
//! domain waiting for a peer's key blocks instead of polling.

/// Longest key, in bytes.
pub const KEY_MAX: usize = 32;
/// Longest value, in bytes.
pub const VALUE_MAX: usize = 64;
/// Most keys one domain can hold.
pub const ENTRIES_PER_DOMAIN: usize = 32;

/// Whether `key` is acceptable: 1 to [`KEY_MAX`] bytes of printable ASCII
/// other than space.
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= KEY_MAX && key.iter().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(valid_key(b"vchan/guest-b/ring"));
        assert!(!valid_key(b""));
        assert!(!valid_key(b"a b"));
        assert!(!valid_key(&[b'a'; KEY_MAX + 1]));
        assert!(valid_key(&[b'a'; KEY_MAX]));
        assert!(!valid_key(b"\x01"));
    }
}
