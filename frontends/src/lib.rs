//! Frontends that guests use to reach Parapet's backends and each other.
//!
//! * [`vchan`]: the byte channel, a stream between two guests over granted
//!   pages and one event channel (Xen's vchan).
//! * [`blkfront`]: a virtual disk served by blkback.
//! * [`netfront`]: the portable core of a virtual network interface, a
//!   smoltcp device; [`vif`] connects it to netback and runs a smoltcp stack.
//!
//! # Features
//!
//! Each frontend is a Cargo feature, all on by default:
//!
//! | feature | modules | pulls in |
//! | --- | --- | --- |
//! | `net` | [`netfront`], [`vif`] | smoltcp |
//! | `blk` | [`blkfront`] | – |
//! | `chan` | [`vchan`] | – |
//!
//! A guest that needs only the byte channel, or only a disk, does not build
//! smoltcp:
//!
//! ```toml
//! parapet-frontends = { path = "…/frontends", default-features = false, features = ["chan"] }
//! ```
//!
//! # Waiting
//!
//! Every blocking call of these frontends (a handshake, a disk transfer, a
//! byte-channel read or write, [`vif::Vif::wait`]) waits through the SDK's one
//! wait, [`parapet_guest::wait::wait_until`], with a deadline where it has a
//! timeout. None of them blocks the vCPU or arms the one-shot timer itself:
//! deadlines are timers of the SDK's queue ([`parapet_guest::timer`]), so an
//! OS's tick and `sleep` keep working. With a guest OS's wait hook installed
//! ([`parapet_guest::wait::set_hook`]), a blocking call parks only the calling
//! thread, and the other threads keep running during a network fetch, a disk
//! transfer or a byte-channel read.
//!
//! An OS that rather waits on the events itself (one loop serving many
//! channels, say) uses the non-blocking entry points: each frontend has a
//! `port()` to bind a handler to (`parapet_guest::event::set_handler`), and
//! the byte channel and the vif have an "arm" call that says whether there is
//! work already or, if not, asks the peer to send an event when there is:
//! [`vchan::Vchan::arm_readable`], [`vchan::Vchan::arm_writable`],
//! [`vif::Vif::arm`] (with [`vif::NetStack::next_deadline`] for smoltcp's
//! timers). Each module's documentation shows the pattern.
//!
//! # Stack
//!
//! What a thread that uses a frontend needs below its own frames (measured on
//! QEMU by stack painting, release build; each module's documentation has the
//! details), plus about 1 KiB for an upcall that lands at the deepest point:
//!
//! | frontend | needs | the deepest call |
//! | --- | --- | --- |
//! | [`vif`] with smoltcp | about 8 KiB | `Vif::connect`, 7 KiB |
//! | [`blkfront`] | about 6 KiB | `Blkfront::connect`, 5.7 KiB |
//! | [`vchan`] | about 10 KiB | `Vchan::connect`, 9 KiB |
//!
//! The frontends keep their granted pages and buffers on the heap, so that
//! the handles are small to move.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

#[cfg(feature = "blk")]
pub mod blkfront;
#[cfg(feature = "net")]
pub mod netfront;
#[cfg(feature = "chan")]
pub mod vchan;
#[cfg(feature = "net")]
pub mod vif;
#[cfg(any(feature = "net", feature = "blk"))]
mod xs;
