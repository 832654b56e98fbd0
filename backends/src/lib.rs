//! Parapet's driver domain and its backends. The portable parts (device probing,
//! and later the backends' protocol logic) live in this library and are tested on
//! the host; the bare-metal binary `driver-domain` does the MMIO.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

pub mod blkback;
pub mod config;
pub mod domains;
pub mod netback;
pub mod shell;
pub mod switch;
pub mod virtio_mmio;
