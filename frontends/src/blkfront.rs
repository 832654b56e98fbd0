//! `blkfront`: a guest's virtual disk, served by `blkback` in the driver
//! domain over one request/response ring ([`parapet_abi::blkif`]).
//!
//! At connection the frontend grants the backend one ring page and a pool of
//! [`POOL_PAGES`] data pages, once; each request names pool pages by grant
//! reference, and the backend moves data with grant copies. Reads and writes
//! are cut into requests of up to 32 KiB, several of them in flight at once
//! (as many as the pool holds), and the ring is published once per batch.
//!
//! The handshake follows [`parapet_abi::xenbus`]: wait for the backend's
//! `InitWait`, publish `ring-ref` and `port`, `Initialised`, wait for
//! `Connected`. When the backend goes away mid-request, every request in
//! flight fails with [`BlkError::Disconnected`]; none is lost silently.

use parapet_abi::blkif::{
    BlkOp, BlkRequest, BlkResponse, BlkSegment, BlkStatus, SECTORS_PER_PAGE, SECTOR_SIZE,
    SEGMENTS_MAX,
};
use parapet_abi::event::{Port, PortStatus};
use parapet_abi::ring::{FrontRing, RingError};
use parapet_abi::xenbus::{backend_key, frontend_key, XenbusState};
use parapet_abi::HvError;
use parapet_guest::event::{self, DomId};
use parapet_guest::grant::{SharedBytes, SharedPages};
use parapet_guest::store;

/// Data pages granted to the backend.
pub const POOL_PAGES: usize = 32;
const PAGE: usize = 4096;
/// Bytes per request.
const CHUNK: usize = SEGMENTS_MAX * PAGE;
/// Requests in flight at most (the pool's capacity in whole requests).
const MAX_INFLIGHT: usize = POOL_PAGES / SEGMENTS_MAX;

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
    /// The backend went away; the requests in flight failed.
    Disconnected,
    /// The store key for this device would be too long.
    BadName,
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

/// A connected virtual disk.
pub struct Blkfront {
    backend: DomId,
    dev: [u8; 8],
    dev_len: usize,
    ring: FrontRing<'static, BlkRequest, BlkResponse>,
    _ring_page: SharedPages,
    pool: SharedPages,
    port: Port,
    info: DiskInfo,
    inflight: [Option<Inflight>; MAX_INFLIGHT],
    next_id: u64,
    stats: BlkStats,
}

fn my_domid() -> DomId {
    parapet_guest::start_info().map_or(0, |i| i.domain_id)
}

fn backend_state(backend: DomId, me: DomId, dev: &str) -> Result<XenbusState, BlkError> {
    let key = backend_key(me, dev, "state").ok_or(BlkError::BadName)?;
    match store::read_u64(backend, key.as_str()) {
        Ok(v) => Ok(XenbusState::from_raw(v)),
        Err(HvError::NoEnt) | Err(HvError::NoDomain) => Ok(XenbusState::Unknown),
        Err(e) => Err(e.into()),
    }
}

fn set_state(dev: &str, s: XenbusState) -> Result<(), BlkError> {
    let key = frontend_key(dev, "state").ok_or(BlkError::BadName)?;
    store::write_u64(key.as_str(), s.to_raw())?;
    Ok(())
}

impl Blkfront {
    /// Connects to device `dev` (e.g. `vbd0`) that domain `backend` serves
    /// for us, waiting for the backend to advertise it.
    pub fn connect(backend: DomId, dev: &str) -> Result<Self, BlkError> {
        let me = my_domid();
        if dev.len() > 8 {
            return Err(BlkError::BadName);
        }
        set_state(dev, XenbusState::Initialising)?;
        let mut seen = XenbusState::Unknown;
        event::wait_until(|| {
            seen = backend_state(backend, me, dev).unwrap_or(XenbusState::Unknown);
            seen == XenbusState::InitWait
        })?;
        let read = |field| -> Result<u64, BlkError> {
            let key = backend_key(me, dev, field).ok_or(BlkError::BadName)?;
            Ok(store::read_u64(backend, key.as_str())?)
        };
        let info = DiskInfo {
            sectors: read("sectors")?,
            readonly: read("readonly")? != 0,
        };
        let mut ring_page = SharedPages::new(1)?;
        let ring = shared::front_ring(ring_page.base())?;
        let ring_ref = ring_page.grant_all(backend, false)?[0];
        let mut pool = SharedPages::new(POOL_PAGES)?;
        pool.grant_all(backend, false)?;
        let port = event::alloc_unbound(backend)?;
        let key = |field| frontend_key(dev, field).ok_or(BlkError::BadName);
        store::write_u64(key("ring-ref")?.as_str(), ring_ref)?;
        store::write_u64(key("port")?.as_str(), port.into())?;
        set_state(dev, XenbusState::Initialised)?;
        event::wait_until(|| {
            seen = backend_state(backend, me, dev).unwrap_or(XenbusState::Unknown);
            seen != XenbusState::InitWait
        })?;
        if seen != XenbusState::Connected {
            let _ = event::close(port);
            return Err(BlkError::Disconnected);
        }
        set_state(dev, XenbusState::Connected)?;
        let mut name = [0u8; 8];
        name[..dev.len()].copy_from_slice(dev.as_bytes());
        Ok(Self {
            backend,
            dev: name,
            dev_len: dev.len(),
            ring,
            _ring_page: ring_page,
            pool,
            port,
            info,
            inflight: [None; MAX_INFLIGHT],
            next_id: 0,
            stats: BlkStats::default(),
        })
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
        self.check_range(sector, buf.len())?;
        self.transfer(BlkOp::Read, sector, Buf::In(buf))
    }

    /// Writes `data` (whole sectors) at `sector`.
    pub fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), BlkError> {
        if self.info.readonly {
            return Err(BlkError::ReadOnly);
        }
        self.check_range(sector, data.len())?;
        self.transfer(BlkOp::Write, sector, Buf::Out(data))
    }

    /// Makes completed writes durable.
    pub fn flush(&mut self) -> Result<(), BlkError> {
        self.transfer(BlkOp::Flush, 0, Buf::Out(&[]))
    }

    /// Cuts the transfer into requests, keeps up to `MAX_INFLIGHT` in flight,
    /// and collects every answer (also after a failure, so that no request is
    /// left behind).
    fn transfer(&mut self, op: BlkOp, sector: u64, mut buf: Buf<'_>) -> Result<(), BlkError> {
        let total = buf.len();
        let mut next = 0usize;
        let mut first_error = None;
        let mut submitted_any = false;
        loop {
            // Submit while there is room.
            let mut pushed = false;
            while first_error.is_none() && (next < total || (op == BlkOp::Flush && !submitted_any))
            {
                let Some(slot) = self.inflight.iter().position(Option::is_none) else {
                    break;
                };
                let len = (total - next).min(CHUNK);
                let req = self.build(op, sector + (next / SECTOR_SIZE) as u64, slot, len);
                if let Buf::Out(data) = &buf {
                    self.fill_pages(slot, &data[next..next + len])?;
                }
                self.ring.push_request(&req).map_err(BlkError::Ring)?;
                self.inflight[slot] = Some(Inflight {
                    op,
                    at: next,
                    len,
                    first_page: slot * SEGMENTS_MAX,
                });
                next += len;
                submitted_any = true;
                pushed = true;
            }
            if pushed {
                let n = self.inflight.iter().flatten().count() as u32;
                self.stats.max_inflight = self.stats.max_inflight.max(n);
                if self.ring.push_requests_and_check_notify() {
                    self.stats.notifications += 1;
                    if event::send(self.port).is_err() {
                        return self.fail_all(first_error);
                    }
                }
            }
            if self.inflight.iter().all(Option::is_none) {
                return first_error.map_or(Ok(()), Err);
            }
            // Collect answers.
            match self.ring.poll_response().map_err(BlkError::Ring)? {
                Some(rsp) => {
                    if let Err(e) = self.complete(&rsp, &mut buf) {
                        first_error.get_or_insert(e);
                    }
                }
                None => {
                    if !self.wait_for_answers()? {
                        return self.fail_all(first_error);
                    }
                }
            }
        }
    }

    /// Sleeps until the backend answers (`true`) or goes away with nothing
    /// left to answer (`false`): its port is no longer connected.
    fn wait_for_answers(&mut self) -> Result<bool, BlkError> {
        let mut gone = false;
        let (ring, port) = (&mut self.ring, self.port);
        event::wait_until(|| {
            if ring.final_check_for_responses().unwrap_or(true) {
                return true;
            }
            gone = !matches!(event::status(port), Ok(PortStatus::Interdomain { .. }));
            gone
        })?;
        Ok(!gone || self.ring.final_check_for_responses().unwrap_or(false))
    }

    /// The backend went away: every request in flight fails.
    fn fail_all(&mut self, first_error: Option<BlkError>) -> Result<(), BlkError> {
        self.inflight = [None; MAX_INFLIGHT];
        Err(first_error.unwrap_or(BlkError::Disconnected))
    }

    fn build(&mut self, op: BlkOp, sector: u64, slot: usize, len: usize) -> BlkRequest {
        self.next_id = self.next_id.wrapping_add(1);
        let mut req = BlkRequest {
            // The slot in the low bits identifies the answer; the counter
            // catches a stale or duplicated one.
            id: (self.next_id << 8) | slot as u64,
            sector,
            op: op.to_raw(),
            ..Default::default()
        };
        let refs = self.pool.refs();
        let mut left = len / SECTOR_SIZE;
        let mut n = 0;
        while left > 0 {
            let sectors = left.min(SECTORS_PER_PAGE as usize);
            req.segs[n] = BlkSegment {
                gref: refs[slot * SEGMENTS_MAX + n] as u32,
                first_sect: 0,
                last_sect: sectors as u8 - 1,
                _pad: 0,
            };
            left -= sectors;
            n += 1;
        }
        req.nr_segments = n as u8;
        req
    }

    fn fill_pages(&self, slot: usize, data: &[u8]) -> Result<(), BlkError> {
        self.pool.write_at(slot * SEGMENTS_MAX * PAGE, data)?;
        Ok(())
    }

    fn complete(&mut self, rsp: &BlkResponse, buf: &mut Buf<'_>) -> Result<(), BlkError> {
        let slot = (rsp.id & 0xff) as usize;
        let Some(inflight) = self.inflight.get(slot).copied().flatten() else {
            return Err(BlkError::Protocol("an answer to no request"));
        };
        if BlkOp::from_raw(rsp.op) != inflight.op {
            return Err(BlkError::Protocol("an answer for another operation"));
        }
        self.inflight[slot] = None;
        self.stats.requests += 1;
        match BlkStatus::from_raw(rsp.status) {
            BlkStatus::Okay => {}
            s => return Err(BlkError::Io(s)),
        }
        if let Buf::In(out) = buf {
            self.pool.read_at(
                inflight.first_page * PAGE,
                &mut out[inflight.at..inflight.at + inflight.len],
            )?;
        }
        Ok(())
    }

    /// The grant reference of pool page `i` (granted to the backend).
    pub fn pool_ref(&self, i: usize) -> Option<u32> {
        self.pool.refs().get(i).map(|&r| r as u32)
    }

    /// Sends `req` as given — only its `id` is replaced, to match the answer —
    /// and waits for the answer. For conformance tests of backends: this is
    /// how a test plays a hostile frontend.
    pub fn raw_request(&mut self, req: &BlkRequest) -> Result<BlkStatus, BlkError> {
        if self.inflight.iter().any(Option::is_some) {
            return Err(BlkError::Protocol("requests in flight"));
        }
        let mut req = *req;
        self.next_id = self.next_id.wrapping_add(1);
        req.id = self.next_id << 8 | 0xff;
        self.ring.push_request(&req).map_err(BlkError::Ring)?;
        if self.ring.push_requests_and_check_notify() {
            event::send(self.port).map_err(|_| BlkError::Disconnected)?;
        }
        loop {
            if let Some(rsp) = self.ring.poll_response().map_err(BlkError::Ring)? {
                if rsp.id != req.id {
                    return Err(BlkError::Protocol("an answer to another request"));
                }
                return Ok(BlkStatus::from_raw(rsp.status));
            }
            if !self.wait_for_answers()? {
                return Err(BlkError::Disconnected);
            }
        }
    }

    /// Overwrites the shared request producer index with `req_prod` and
    /// notifies the backend: a frontend that corrupts its ring (for tests).
    /// Returns once the backend has disconnected us.
    pub fn corrupt_ring(&mut self, req_prod: u32) -> Result<(), BlkError> {
        self._ring_page.write_at(0, &req_prod.to_le_bytes())?;
        event::send(self.port).map_err(|_| BlkError::Disconnected)?;
        let port = self.port;
        event::wait_until(|| !matches!(event::status(port), Ok(PortStatus::Interdomain { .. })))?;
        Ok(())
    }

    /// Closes the connection: the backend sees `Closing` and detaches.
    pub fn close(mut self) -> Result<(), BlkError> {
        let dev = self.dev;
        let name = core::str::from_utf8(&dev[..self.dev_len]).unwrap_or("?");
        set_state(name, XenbusState::Closing)?;
        let me = my_domid();
        let backend = self.backend;
        let _ = event::wait_until(|| {
            backend_state(backend, me, name).unwrap_or(XenbusState::Unknown)
                != XenbusState::Connected
        });
        let _ = event::close(self.port);
        let _ = self.pool.end_all();
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
        // SAFETY: `page` is a page of our own that `Blkfront` keeps allocated
        // (and granted only to the backend) for as long as the ring lives;
        // only the ring code touches it here.
        unsafe { FrontRing::from_raw(page as *mut u8, PAGE) }.map_err(BlkError::Ring)
    }
}
