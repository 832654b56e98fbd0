//! Parapet's hypercall ABI: the contract between guests and the hypervisor.
//!
//! Everything a guest and the hypervisor must agree on lives here and nowhere else:
//! the ABI [`version`], the [`hypercall`] numbers and calling convention, the typed
//! hypercalls ([`call::Call`], one encoder and decoder of the argument registers), the typed
//! [`error`] codes, the [`start_info`] page a domain receives in `x0`, the per-vCPU
//! [`vpsr`] page, the [`event`] channel page, the [`grant`] table, the
//! [`store`] limits, the guest-physical memory [`layout`], the text codecs the
//! host tool writes and the hypervisor and driver domain read ([`bootargs`] of a
//! domain, the driver domain's device [`wiring`], [`mac`] addresses), the hypervisor's [`trace`]
//! buffers, and the shared-memory
//! [`ring`] protocol that frontends and backends speak over granted pages.
//!
//! Shared structures are `#[repr(C)]`, derive zerocopy traits and carry compile-time
//! size and offset assertions next to their definition, so a layout change cannot go
//! unnoticed. The crate is `no_std`; its only `unsafe` code is raw shared-memory
//! access, in two small modules: the ring's (`ring::mem`) and [`shmem`], the word copy
//! to and from granted pages that frontends, backends and the SDK share.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod blkif;
pub mod bootargs;
pub mod call;
pub mod control;
pub mod domctl;
pub mod error;
pub mod event;
pub mod grant;
pub mod hypercall;
pub mod layout;
pub mod mac;
pub mod netif;
pub mod ring;
pub mod shmem;
pub mod start_info;
pub mod store;
pub mod trace;
pub mod version;
pub mod vpsr;
pub mod wiring;
pub mod xenbus;

pub use call::Call;
pub use error::HvError;
pub use hypercall::Hypercall;
pub use mac::MacAddr;
pub use start_info::StartInfo;
pub use version::{AbiVersion, Features, ABI_VERSION};
pub use vpsr::Vpsr;
