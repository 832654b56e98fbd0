//! Store hypercalls: each domain writes small keys in its own namespace and
//! reads any running domain's (rendezvous for split drivers, as XenStore).

use parapet_abi::store::{KEY_MAX, VALUE_MAX};
use parapet_abi::vpsr::Virq;
use parapet_abi::HvError;

use crate::convert::usize_from;
use crate::hv::Hypervisor;

/// A store key copied out of guest memory.
struct KeyBuf {
    bytes: [u8; KEY_MAX],
    len: usize,
}

impl KeyBuf {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Hypervisor {
    fn read_key(&self, d: usize, ipa: u64, len: u64) -> Result<KeyBuf, HvError> {
        if len == 0 || len > KEY_MAX as u64 {
            return Err(HvError::Inval);
        }
        let mut k = KeyBuf {
            bytes: [0; KEY_MAX],
            len: usize::try_from(len).map_err(|_| HvError::Inval)?,
        };
        self.copy_from_guest(d, ipa, &mut k.bytes[..k.len])?;
        Ok(k)
    }

    /// `StoreWrite`: writes a key of the caller's namespace.
    pub(super) fn store_write(
        &mut self,
        d: usize,
        key: u64,
        key_len: u64,
        value: u64,
        value_len: u64,
    ) -> Result<(), HvError> {
        let key = self.read_key(d, key, key_len)?;
        if value_len > VALUE_MAX as u64 {
            return Err(HvError::Inval);
        }
        let mut buf = [0u8; VALUE_MAX];
        let buf = &mut buf[..usize::try_from(value_len).map_err(|_| HvError::Inval)?];
        self.copy_from_guest(d, value, buf)?;
        self.store[d].write(key.as_slice(), buf)?;
        self.store_changed(d);
        Ok(())
    }

    /// `StoreRead`: reads `owner`'s key into the caller's buffer (truncated
    /// to it); returns the value's full length.
    pub(super) fn store_read(
        &mut self,
        d: usize,
        owner: u64,
        key: u64,
        key_len: u64,
        buf: u64,
        buf_len: u64,
    ) -> Result<u64, HvError> {
        if !self.domain_alive(owner) {
            return Err(HvError::NoDomain);
        }
        let owner = usize::try_from(owner).map_err(|_| HvError::NoDomain)?;
        let key = self.read_key(d, key, key_len)?;
        let mut value = [0u8; VALUE_MAX];
        let len = self.store[owner].read(key.as_slice(), &mut value)?;
        let n = len.min(VALUE_MAX).min(usize_from(buf_len));
        self.copy_to_guest(d, buf, &value[..n])?;
        Ok(len as u64)
    }

    /// `StoreRemove`: removes a key of the caller's namespace.
    pub(super) fn store_remove(&mut self, d: usize, key: u64, key_len: u64) -> Result<(), HvError> {
        let key = self.read_key(d, key, key_len)?;
        self.store[d].remove(key.as_slice())?;
        self.store_changed(d);
        Ok(())
    }

    /// Raises `Virq::Store` in every other running domain.
    pub(in crate::hv) fn store_changed(&mut self, writer: usize) {
        self.raise_virq_all(Virq::Store, writer);
    }
}
