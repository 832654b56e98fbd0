//! Frontends that guests use to reach Parapet's backends and each other.
//!
//! * [`vchan`]: the byte channel, a stream between two guests over granted
//!   pages and one event channel (Xen's vchan).
//!
//! * [`blkfront`]: a virtual disk served by blkback.
//! * [`netfront`]: the portable core of a virtual network interface, a
//!   smoltcp device; [`vif`] connects it to netback and runs a smoltcp stack.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

pub mod blkfront;
pub mod netfront;
pub mod vchan;
pub mod vif;
mod xs;
