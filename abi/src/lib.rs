//! Parapet's hypercall ABI: the contract between guests and the hypervisor.
//!
//! Everything a guest and the hypervisor must agree on lives here and nowhere else:
//! the ABI [`version`], the [`hypercall`] numbers and calling convention, the typed
//! [`error`] codes, the [`start_info`] page a domain receives in `x0`, the per-vCPU
//! [`vpsr`] page, and the guest-physical memory [`layout`].
//!
//! Shared structures are `#[repr(C)]`, derive zerocopy traits and carry compile-time
//! size and offset assertions next to their definition, so a layout change cannot go
//! unnoticed. The crate is `no_std` and contains no `unsafe`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod error;
pub mod hypercall;
pub mod layout;
pub mod start_info;
pub mod version;
pub mod vpsr;

pub use error::HvError;
pub use hypercall::Hypercall;
pub use start_info::StartInfo;
pub use version::{AbiVersion, Features, ABI_VERSION};
pub use vpsr::Vpsr;
