//! The frontend side's store reads of the handshake, shared by blkfront and
//! the vif.

use parapet_abi::xenbus::{backend_key, XenbusState};
use parapet_abi::HvError;
use parapet_guest::event::DomId;
use parapet_guest::store;

/// This domain's id.
pub(crate) fn my_domid() -> DomId {
    parapet_guest::start_info().map_or(0, |i| i.domain_id)
}

/// The backend's state for our device `dev`: `Unknown` when it published
/// none or its domain is gone; `Inval` if `dev` makes too long a key.
pub(crate) fn backend_state(backend: DomId, dev: &str) -> Result<XenbusState, HvError> {
    let key = backend_key(my_domid(), dev, "state").ok_or(HvError::Inval)?;
    match store::read_u64(backend, key.as_str()) {
        Ok(v) => Ok(XenbusState::from_raw(v)),
        Err(HvError::NoEnt) | Err(HvError::NoDomain) => Ok(XenbusState::Unknown),
        Err(e) => Err(e),
    }
}
