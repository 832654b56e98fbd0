//! Frontends that guests use to reach Parapet's backends and each other.
//!
//! * [`vchan`]: the byte channel, a stream between two guests over granted
//!   pages and one event channel (Xen's vchan).
//!
//! Netfront and blkfront come with the backends (issue 4).
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

pub mod blkfront;
pub mod netfront;
pub mod vchan;
