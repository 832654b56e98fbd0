//! `blkfront`: a guest's virtual disk, served by `blkback` in the driver
//! domain over one request/response ring ([`parapet_abi::blkif`]).
//!
//! At connection the frontend grants the backend one ring page and a pool of
//! [`POOL_PAGES`] data pages; each request names pool pages by grant
//! reference, and the backend moves data with grant copies. Reads and writes
//! are cut into requests of up to 32 KiB, several of them in flight at once
//! (as many as the pool holds), and the ring is published once per batch.
//!
//! The handshake follows [`parapet_abi::xenbus`]: wait for the backend's
//! `InitWait`, publish `ring-ref` and `port`, `Initialised`, wait for
//! `Connected`.
//!
//! **The backend may go away and come back** (a driver domain restarted by
//! its `on_crash = "restart"` policy, or a backend that closes and
//! re-advertises). Its port then stops being connected (a dead domain's ports
//! are closed by the hypervisor, a live backend closes its own before it
//! advertises again), which the frontend notices when it sends or waits:
//! every request in flight fails with [`BlkError::Disconnected`] — none is
//! lost silently — and the connection is torn down (port closed, grants
//! ended once the old backend's mappings are gone). The next `read`,
//! `write` or `flush` runs the handshake again with the new backend
//! instance, waiting for it up to [`RECONNECT_TIMEOUT`] (then
//! [`BlkError::TimedOut`]), and [`BlkStats::reconnects`] counts it. What the
//! failed call wrote may or may not have reached the disk: the caller
//! retries it.
//!
//! # Waiting
//!
//! Transfers are synchronous: a `read`, `write` or `flush` returns when every
//! request it made is answered. Its waits (for answers, for the backend in a
//! handshake, with the reconnect timeout as a deadline of the SDK's timer
//! queue) go through [`parapet_guest::wait::wait_until`]: with a guest OS's
//! wait hook installed, only the calling thread waits and the others run
//! meanwhile. The backend notifies [`Blkfront::port`] when it answers; the
//! frontend sets no handler on it, so an OS may bind one.
//!
//! # Stack
//!
//! Stack: needs about 6 KiB. Measured on QEMU by stack painting (release
//! build; the boot stack below the caller's frame filled with a pattern, the
//! call run, the deepest overwritten word found; upcalls that came meanwhile
//! included): [`Blkfront::connect`] (and so a reconnection) 5.7 KiB, 256 KiB
//! of writes, reads and a flush 2.4 KiB with the calling guest's own frames,
//! [`Blkfront::close`] under 1.5 KiB. Add about 1 KiB for an upcall that
//! lands at the deepest point. The ring page and the data pool are on the
//! heap (before, `connect` took 10 KiB).//!
//! `connect` holds the handshake and reconnection, `transfer` the requests
//! (and the raw ones conformance tests send).

extern crate alloc;

use alloc::boxed::Box;
use core::time::Duration;

use parapet_abi::blkif::{BlkOp, BlkRequest, BlkResponse, BlkStatus, SECTOR_SIZE, SEGMENTS_MAX};
use parapet_abi::event::Port;
use parapet_abi::ring::{FrontRing, RingError};
use parapet_abi::xenbus::XenbusState;
use parapet_abi::HvError;
use parapet_guest::event::{self, DomId};
use parapet_guest::grant::SharedPages;

mod connect;
mod transfer;

use connect::{backend_state, set_state, Connection};

/// Data pages granted to the backend.
pub const POOL_PAGES: usize = 32;
const PAGE: usize = 4096;
/// Bytes per request.
const CHUNK: usize = SEGMENTS_MAX * PAGE;
/// Requests in flight at most (the pool's capacity in whole requests).
const MAX_INFLIGHT: usize = POOL_PAGES / SEGMENTS_MAX;
/// How long a reconnection waits for the backend to come back, by default
/// ([`Blkfront::set_reconnect_timeout`]).
pub const RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a torn-down connection checks whether the old backend has let
/// go of its ring page.
const RELEASE_POLL: Duration = Duration::from_millis(1);

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// A hypercall failed.
    Hv(HvError),
    /// The backend corrupted the ring.
    Ring(RingError),
    /// The backend answered something it was not asked.
    Protocol(&'static str),
    /// The backend answered a request with this status.
    Io(BlkStatus),
    /// Sectors outside the disk, or a buffer that is not whole sectors.
    Inval,
    /// A write to a read-only disk.
    ReadOnly,
    /// The backend went away; the requests in flight failed. The next call
    /// reconnects.
    Disconnected,
    /// The store key for this device would be too long.
    BadName,
    /// Reconnecting: the backend did not come back within the timeout.
    TimedOut,
}

impl From<HvError> for BlkError {
    fn from(e: HvError) -> Self {
        BlkError::Hv(e)
    }
}

impl core::fmt::Display for BlkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlkError::Hv(e) => write!(f, "hypercall failed: {e}"),
            BlkError::Ring(e) => write!(f, "ring corrupted by the backend: {e:?}"),
            BlkError::Protocol(what) => write!(f, "protocol error: {what}"),
            BlkError::Io(s) => write!(f, "I/O error ({s:?})"),
            BlkError::Inval => write!(f, "sectors outside the disk or not whole sectors"),
            BlkError::ReadOnly => write!(f, "the disk is read-only"),
            BlkError::Disconnected => write!(f, "the backend went away"),
            BlkError::BadName => write!(f, "device name too long"),
            BlkError::TimedOut => write!(f, "the backend did not come back in time"),
        }
    }
}

/// The disk as the backend describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// Writes are refused.
    pub readonly: bool,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkStats {
    /// Requests answered.
    pub requests: u64,
    /// Most requests in flight at once.
    pub max_inflight: u32,
    /// Notifications sent to the backend.
    pub notifications: u64,
    /// Handshakes run again after the backend went away.
    pub reconnects: u64,
}

#[derive(Clone, Copy)]
struct Inflight {
    op: BlkOp,
    /// Offset of this request's bytes in the caller's buffer.
    at: usize,
    len: usize,
    /// First pool page used (requests use `len / PAGE` consecutive pages).
    first_page: usize,
}
/// A virtual disk. It stays usable across backend restarts: see the module
/// documentation.
pub struct Blkfront {
    backend: DomId,
    dev: [u8; 8],
    dev_len: usize,
    /// `None` after the backend went away, until the next call reconnects.
    conn: Option<Connection>,
    /// Boxed, as the ring page: grant runs are large, and a `Blkfront` is
    /// small to move (see "Stack" above).
    pool: Box<SharedPages>,
    info: DiskInfo,
    inflight: [Option<Inflight>; MAX_INFLIGHT],
    next_id: u64,
    stats: BlkStats,
    reconnect_timeout: Duration,
}
impl Blkfront {
    /// Connects to device `dev` (e.g. `vbd0`) that domain `backend` serves
    /// for us, waiting for the backend to advertise it.
    pub fn connect(backend: DomId, dev: &str) -> Result<Self, BlkError> {
        if dev.len() > 8 {
            return Err(BlkError::BadName);
        }
        let mut name = [0u8; 8];
        name[..dev.len()].copy_from_slice(dev.as_bytes());
        let mut disk = Self {
            backend,
            dev: name,
            dev_len: dev.len(),
            conn: None,
            pool: Box::new(SharedPages::new(POOL_PAGES)?),
            info: DiskInfo {
                sectors: 0,
                readonly: true,
            },
            inflight: [None; MAX_INFLIGHT],
            next_id: 0,
            stats: BlkStats::default(),
            reconnect_timeout: RECONNECT_TIMEOUT,
        };
        disk.handshake(None)?;
        Ok(disk)
    }

    /// How long the next reconnection waits for the backend
    /// ([`RECONNECT_TIMEOUT`] unless set).
    pub fn set_reconnect_timeout(&mut self, timeout: Duration) {
        self.reconnect_timeout = timeout;
    }

    /// Whether the frontend is connected (false after the backend went
    /// away, until the next call reconnects).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The event port of the current connection (`None` after the backend
    /// went away, until the next call reconnects; a new port then). The
    /// backend notifies it when it answers; the frontend sets no handler
    /// on it, so a guest OS may bind one (`event::set_handler`).
    pub fn port(&self) -> Option<Port> {
        self.conn.as_ref().map(|c| c.port)
    }

    /// The device name.
    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.dev[..self.dev_len]).unwrap_or("?")
    }

    /// Size and mode.
    pub fn info(&self) -> DiskInfo {
        self.info
    }

    /// Counters.
    pub fn stats(&self) -> BlkStats {
        self.stats
    }

    fn check_range(&self, sector: u64, len: usize) -> Result<(), BlkError> {
        if !len.is_multiple_of(SECTOR_SIZE) {
            return Err(BlkError::Inval);
        }
        let end = sector
            .checked_add((len / SECTOR_SIZE) as u64)
            .ok_or(BlkError::Inval)?;
        if end > self.info.sectors {
            return Err(BlkError::Inval);
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes (whole sectors) from `sector`.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        self.ensure_connected()?;
        self.check_range(sector, buf.len())?;
        self.transfer(BlkOp::Read, sector, Buf::In(buf))
    }

    /// Writes `data` (whole sectors) at `sector`.
    pub fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), BlkError> {
        self.ensure_connected()?;
        if self.info.readonly {
            return Err(BlkError::ReadOnly);
        }
        self.check_range(sector, data.len())?;
        self.transfer(BlkOp::Write, sector, Buf::Out(data))
    }

    /// Makes completed writes durable.
    pub fn flush(&mut self) -> Result<(), BlkError> {
        self.ensure_connected()?;
        self.transfer(BlkOp::Flush, 0, Buf::Out(&[]))
    }
    /// Closes the connection: the backend sees `Closing` and detaches.
    pub fn close(mut self) -> Result<(), BlkError> {
        let dev = self.dev;
        let name = core::str::from_utf8(&dev[..self.dev_len]).unwrap_or("?");
        set_state(name, XenbusState::Closing)?;
        let backend = self.backend;
        if self.conn.is_some() {
            let _ = event::wait_until(|| {
                backend_state(backend, name).unwrap_or(XenbusState::Unknown)
                    != XenbusState::Connected
            });
        }
        self.disconnect();
        set_state(name, XenbusState::Closed)?;
        Ok(())
    }
}

enum Buf<'a> {
    In(&'a mut [u8]),
    Out(&'a [u8]),
}

impl Buf<'_> {
    fn len(&self) -> usize {
        match self {
            Buf::In(b) => b.len(),
            Buf::Out(b) => b.len(),
        }
    }
}

/// The unsafe part: the ring handle over our own shared page.
#[allow(unsafe_code)]
mod shared {
    use super::*;

    pub fn front_ring(page: u64) -> Result<FrontRing<'static, BlkRequest, BlkResponse>, BlkError> {
        // SAFETY: `page` is a fresh page of our own that the `Connection`
        // keeps allocated (and granted only to the backend) for as long as
        // the ring lives: the ring is dropped before its page; only the ring
        // code touches it here.
        unsafe { FrontRing::from_raw(page as *mut u8, PAGE) }.map_err(BlkError::Ring)
    }
}
#[cfg(test)]
mod tests;
