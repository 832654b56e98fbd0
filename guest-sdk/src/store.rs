//! The store, guest side: publish small values under keys of this domain, read
//! other domains' keys, wait for a key to appear.
//!
//! Each call passes buffers by address; the hypervisor reads (or, for
//! [`read`], writes) them through this domain's stage-2 and checks lengths.

use parapet_abi::{Call, HvError};

use crate::event::DomId;

/// `StoreWrite`: sets `key` of this domain to `value`.
pub fn write(key: &str, value: &[u8]) -> Result<(), HvError> {
    // SAFETY: the hypervisor only reads the two buffers, through our stage-2.
    unsafe {
        crate::hypercall::issue(Call::StoreWrite {
            key: key.as_ptr() as u64,
            key_len: key.len() as u64,
            value: value.as_ptr() as u64,
            value_len: value.len() as u64,
        })
    }
    .map(|_| ())
}

/// `StoreRead`: reads `key` of domain `domid` into `buf`; returns the value's
/// length (it may exceed `buf`, which then holds the start).
pub fn read(domid: DomId, key: &str, buf: &mut [u8]) -> Result<usize, HvError> {
    // SAFETY: the hypervisor writes at most `buf.len()` bytes into `buf`,
    // which we own mutably, and reads the key.
    let r = unsafe {
        crate::hypercall::issue(Call::StoreRead {
            domain: domid.into(),
            key: key.as_ptr() as u64,
            key_len: key.len() as u64,
            buf: buf.as_mut_ptr() as u64,
            buf_len: buf.len() as u64,
        })
    }?;
    Ok(r[0] as usize)
}

/// `StoreRemove`.
pub fn remove(key: &str) -> Result<(), HvError> {
    // SAFETY: the hypervisor only reads the key.
    unsafe {
        crate::hypercall::issue(Call::StoreRemove {
            key: key.as_ptr() as u64,
            key_len: key.len() as u64,
        })
    }
    .map(|_| ())
}

/// Writes a `u64` value (little-endian).
pub fn write_u64(key: &str, value: u64) -> Result<(), HvError> {
    write(key, &value.to_le_bytes())
}

/// Reads a value written by [`write_u64`].
pub fn read_u64(domid: DomId, key: &str) -> Result<u64, HvError> {
    let mut buf = [0u8; 8];
    let len = read(domid, key, &mut buf)?;
    decode_u64(len, buf)
}

/// A `u64` value from a read of `len` bytes that left its start in `buf`.
fn decode_u64(len: usize, buf: [u8; 8]) -> Result<u64, HvError> {
    match len {
        8 => Ok(u64::from_le_bytes(buf)),
        _ => Err(HvError::Inval),
    }
}

/// Blocks until `key` of `domid` exists, then returns it as [`read`] does.
/// Fails with `NoDomain` if the domain stops meanwhile.
pub fn wait_for(domid: DomId, key: &str, buf: &mut [u8]) -> Result<usize, HvError> {
    let mut result = Err(HvError::NoEnt);
    crate::event::wait_until(|| {
        result = read(domid, key, buf);
        !matches!(result, Err(HvError::NoEnt))
    })?;
    result
}

/// Blocks until `key` of `domid` holds a `u64`.
pub fn wait_for_u64(domid: DomId, key: &str) -> Result<u64, HvError> {
    let mut buf = [0u8; 8];
    let len = wait_for(domid, key, &mut buf)?;
    decode_u64(len, buf)
}

/// `DomainLookup`: the id of the running domain called `name`.
pub fn lookup(name: &str) -> Result<DomId, HvError> {
    // SAFETY: the hypervisor only reads the name.
    let r = unsafe {
        crate::hypercall::issue(Call::DomainLookup {
            name: name.as_ptr() as u64,
            len: name.len() as u64,
        })
    }?;
    Ok(r[0] as DomId)
}
