//! Frontends that guests use to reach Parapet's backends: the byte channel
//! (vchan-style), netfront and blkfront.
//!
//! Not written yet: they need event channels, grant tables and the ring
//! protocol (issue 3) and the backends (issue 4). The crate exists so that the
//! workspace layout is the one the design fixes.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]
