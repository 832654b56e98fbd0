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
//! heap (before, `connect` took 10 KiB).

extern crate alloc;

use alloc::boxed::Box;
use core::time::Duration;

use parapet_abi::blkif::{
    BlkOp, BlkRequest, BlkResponse, BlkSegment, BlkStatus, SECTORS_PER_PAGE, SECTOR_SIZE,
    SEGMENTS_MAX,
};
use parapet_abi::event::{Port, PortStatus};
use parapet_abi::ring::{FrontRing, RingError};
use parapet_abi::xenbus::{backend_key, frontend_key, frontend_step, FrontAction, XenbusState};
use parapet_abi::HvError;
use parapet_guest::event::{self, DomId};
use parapet_guest::grant::{SharedBytes, SharedPages};
use parapet_guest::wait::{self, WaitError};
use parapet_guest::{store, time};

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

/// One connection to one backend instance: the ring (over its page, which
/// is granted to the backend) and the event port.
struct Connection {
    // The ring handle goes before the page under it.
    ring: FrontRing<'static, BlkRequest, BlkResponse>,
    ring_page: Box<SharedPages>,
    port: Port,
}

/// What a (re)connecting frontend does next, given its own state and the
/// backend's: the handshake's decision ([`frontend_step`]), unless the
/// deadline passed while there is still something to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// As the handshake says.
    Act(FrontAction),
    /// Waited long enough.
    GiveUp,
}

fn connect_step(own: XenbusState, backend: XenbusState, timed_out: bool) -> Step {
    match frontend_step(own, backend) {
        FrontAction::Wait if timed_out => Step::GiveUp,
        action => Step::Act(action),
    }
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

use crate::xs::my_domid;

fn backend_state(backend: DomId, dev: &str) -> Result<XenbusState, BlkError> {
    crate::xs::backend_state(backend, dev).map_err(|e| match e {
        HvError::Inval => BlkError::BadName,
        e => e.into(),
    })
}

fn set_state(dev: &str, s: XenbusState) -> Result<(), BlkError> {
    let key = frontend_key(dev, "state").ok_or(BlkError::BadName)?;
    store::write_u64(key.as_str(), s.to_raw())?;
    Ok(())
}

/// Waits until the handshake says to act (returns the action and the
/// backend's state) or, with a `deadline` (a counter value), until it passes.
fn await_backend(
    backend: DomId,
    dev: &str,
    own: XenbusState,
    deadline: Option<u64>,
) -> Result<(FrontAction, XenbusState), BlkError> {
    // The deadline is a timer of the SDK's queue, which the wait arms and
    // cancels itself.
    let waited = wait::wait_until(deadline, || {
        let seen = backend_state(backend, dev).unwrap_or(XenbusState::Unknown);
        let timed_out = deadline.is_some_and(|d| time::now() >= d);
        match connect_step(own, seen, timed_out) {
            Step::Act(FrontAction::Wait) => None,
            step => Some((step, seen)),
        }
    });
    match waited {
        Ok((Step::Act(action), seen)) => Ok((action, seen)),
        Ok((Step::GiveUp, _)) | Err(WaitError::TimedOut) => Err(BlkError::TimedOut),
        Err(WaitError::Hv(e)) => Err(e.into()),
    }
}

/// Ends the grants of `pages` once the backend no longer uses them (a dead
/// backend's mappings are already gone; a live one unmaps as it detaches),
/// waiting until `deadline` at most. Pages still in use then are leaked
/// rather than reused (dropping `SharedPages` does that).
fn release(mut pages: Box<SharedPages>, deadline: u64) {
    while pages.end_all() == Err(HvError::Busy) && time::now() < deadline {
        if time::sleep(RELEASE_POLL).is_err() {
            break;
        }
    }
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

    /// Runs the handshake until connected: publishes `Initialising`, waits
    /// for the backend's `InitWait`, grants the pool and a fresh ring page,
    /// publishes them, and waits for `Connected`. A backend that goes away
    /// in the middle is waited for again. With a `deadline` (a counter
    /// value), gives up with [`BlkError::TimedOut`] when it passes.
    fn handshake(&mut self, deadline: Option<u64>) -> Result<(), BlkError> {
        let dev_buf = self.dev;
        let dev = core::str::from_utf8(&dev_buf[..self.dev_len]).map_err(|_| BlkError::BadName)?;
        let backend = self.backend;
        // A connection the backend dropped mid-handshake: taken down only
        // once our state no longer says `Initialised`, so that no backend
        // attaches to its ring in between.
        let mut stale: Option<Connection> = None;
        loop {
            set_state(dev, XenbusState::Initialising)?;
            if let Some(conn) = stale.take() {
                self.drop_connection(conn, deadline);
            }
            let (action, _) = await_backend(backend, dev, XenbusState::Initialising, deadline)?;
            if action != FrontAction::Publish {
                continue;
            }
            let me = my_domid();
            let read = |field| -> Result<u64, BlkError> {
                let key = backend_key(me, dev, field).ok_or(BlkError::BadName)?;
                Ok(store::read_u64(backend, key.as_str())?)
            };
            let info = match (read("sectors"), read("readonly")) {
                (Ok(sectors), Ok(readonly)) => DiskInfo {
                    sectors,
                    readonly: readonly != 0,
                },
                // It went away again between advertising and now.
                _ => continue,
            };
            if self.pool.refs().is_empty() {
                self.pool.grant_all(backend, false)?;
            }
            let mut ring_page = Box::new(SharedPages::new(1)?);
            let ring = shared::front_ring(ring_page.base())?;
            let ring_ref = ring_page.grant_all(backend, false)?[0];
            let port = event::alloc_unbound(backend)?;
            let conn = Connection {
                ring,
                ring_page,
                port,
            };
            let (Some(ring_key), Some(port_key)) =
                (frontend_key(dev, "ring-ref"), frontend_key(dev, "port"))
            else {
                self.drop_connection(conn, deadline);
                return Err(BlkError::BadName);
            };
            let published = store::write_u64(ring_key.as_str(), ring_ref)
                .and_then(|()| store::write_u64(port_key.as_str(), port.into()));
            if let Err(e) = published {
                self.drop_connection(conn, deadline);
                return Err(e.into());
            }
            if let Err(e) = set_state(dev, XenbusState::Initialised) {
                self.drop_connection(conn, deadline);
                return Err(e);
            }
            match await_backend(backend, dev, XenbusState::Initialised, deadline) {
                Ok((FrontAction::Connect, _)) => {
                    set_state(dev, XenbusState::Connected)?;
                    self.info = info;
                    self.conn = Some(conn);
                    return Ok(());
                }
                // Gone again, or closing: start over.
                Ok(_) => stale = Some(conn),
                Err(e) => {
                    let _ = set_state(dev, XenbusState::Initialising);
                    self.drop_connection(conn, deadline);
                    return Err(e);
                }
            }
        }
    }

    /// Takes a connection down: closes the port, and ends the grants of
    /// the ring page once the backend no longer maps it.
    fn drop_connection(&mut self, conn: Connection, deadline: Option<u64>) {
        let _ = event::close(conn.port);
        // The ring handle is never used again (it has no `Drop`).
        let Connection { ring_page, .. } = conn;
        let deadline = deadline.unwrap_or_else(|| time::deadline_after(self.reconnect_timeout));
        release(ring_page, deadline);
    }

    /// The backend went away: every request in flight fails, the
    /// connection is torn down (port closed, grants ended), and the next
    /// call reconnects.
    fn disconnect(&mut self) {
        self.inflight = [None; MAX_INFLIGHT];
        if let Some(conn) = self.conn.take() {
            // No longer `Connected`: a new backend instance waits for us.
            let dev = self.dev;
            if let Ok(name) = core::str::from_utf8(&dev[..self.dev_len]) {
                let _ = set_state(name, XenbusState::Initialising);
            }
            self.drop_connection(conn, None);
        }
        // The pool is granted again with the next ring: a backend that
        // still copies from it (a live one that closed) is done with it once
        // it re-advertises, and a dead one's copies ended with it.
        let _ = self.pool.end_all();
    }

    /// Makes sure there is a connection: after the backend went away, runs
    /// the handshake again, waiting for the backend up to the reconnect
    /// timeout.
    fn ensure_connected(&mut self) -> Result<(), BlkError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let deadline = time::deadline_after(self.reconnect_timeout);
        self.handshake(Some(deadline))?;
        self.stats.reconnects += 1;
        Ok(())
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

    /// Cuts the transfer into requests, keeps up to `MAX_INFLIGHT` in flight,
    /// and collects every answer (also after a failure, so that no request is
    /// left behind). If the backend goes away, the transfer fails with
    /// `Disconnected` and the connection is torn down.
    fn transfer(&mut self, op: BlkOp, sector: u64, buf: Buf<'_>) -> Result<(), BlkError> {
        let result = self.transfer_on(op, sector, buf);
        if let Err(BlkError::Disconnected | BlkError::Ring(_)) = result {
            // Gone, or its ring cannot be trusted any more.
            self.disconnect();
        }
        result
    }

    fn transfer_on(&mut self, op: BlkOp, sector: u64, mut buf: Buf<'_>) -> Result<(), BlkError> {
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
                let conn = self.conn.as_mut().ok_or(BlkError::Disconnected)?;
                conn.ring.push_request(&req).map_err(BlkError::Ring)?;
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
            let conn = self.conn.as_mut().ok_or(BlkError::Disconnected)?;
            if pushed {
                let n = self.inflight.iter().flatten().count() as u32;
                self.stats.max_inflight = self.stats.max_inflight.max(n);
                if conn.ring.push_requests_and_check_notify() {
                    self.stats.notifications += 1;
                    if event::send(conn.port).is_err() {
                        return self.fail_all(first_error);
                    }
                }
            }
            if self.inflight.iter().all(Option::is_none) {
                return first_error.map_or(Ok(()), Err);
            }
            // Collect answers.
            match conn.ring.poll_response().map_err(BlkError::Ring)? {
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
        let Some(conn) = self.conn.as_mut() else {
            return Ok(false);
        };
        let mut gone = false;
        let (ring, port) = (&mut conn.ring, conn.port);
        event::wait_until(|| {
            if ring.final_check_for_responses().unwrap_or(true) {
                return true;
            }
            gone = !matches!(event::status(port), Ok(PortStatus::Interdomain { .. }));
            gone
        })?;
        Ok(!gone || conn.ring.final_check_for_responses().unwrap_or(false))
    }

    /// The backend went away: every request in flight fails (a failure seen
    /// before stands; otherwise `Disconnected`), and the connection is torn
    /// down.
    fn fail_all(&mut self, first_error: Option<BlkError>) -> Result<(), BlkError> {
        self.disconnect();
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
                gref: refs.get(slot * SEGMENTS_MAX + n).map_or(0, |&r| r as u32),
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
        self.ensure_connected()?;
        if self.inflight.iter().any(Option::is_some) {
            return Err(BlkError::Protocol("requests in flight"));
        }
        let mut req = *req;
        self.next_id = self.next_id.wrapping_add(1);
        req.id = self.next_id << 8 | 0xff;
        let result = self.raw_exchange(&req);
        if result == Err(BlkError::Disconnected) {
            self.disconnect();
        }
        result
    }

    fn raw_exchange(&mut self, req: &BlkRequest) -> Result<BlkStatus, BlkError> {
        let conn = self.conn.as_mut().ok_or(BlkError::Disconnected)?;
        conn.ring.push_request(req).map_err(BlkError::Ring)?;
        if conn.ring.push_requests_and_check_notify() {
            event::send(conn.port).map_err(|_| BlkError::Disconnected)?;
        }
        loop {
            let conn = self.conn.as_mut().ok_or(BlkError::Disconnected)?;
            if let Some(rsp) = conn.ring.poll_response().map_err(BlkError::Ring)? {
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
    /// Returns once the backend has disconnected us; the next call
    /// reconnects.
    pub fn corrupt_ring(&mut self, req_prod: u32) -> Result<(), BlkError> {
        self.ensure_connected()?;
        let conn = self.conn.as_mut().ok_or(BlkError::Disconnected)?;
        conn.ring_page.write_at(0, &req_prod.to_le_bytes())?;
        event::send(conn.port).map_err(|_| BlkError::Disconnected)?;
        let port = conn.port;
        event::wait_until(|| !matches!(event::status(port), Ok(PortStatus::Interdomain { .. })))?;
        self.disconnect();
        Ok(())
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
mod tests {
    use super::XenbusState::*;
    use super::*;

    /// Plays a frontend that reconnects against a backend whose published
    /// state follows `backend` (one entry per store change), applying each
    /// step as `handshake` does; returns the frontend's states.
    fn replay(backend: &[XenbusState], timed_out_from: usize) -> (Vec<XenbusState>, bool) {
        let mut own = Initialising;
        let mut seen = vec![own];
        for (i, &b) in backend.iter().enumerate() {
            match connect_step(own, b, i >= timed_out_from) {
                Step::GiveUp => return (seen, false),
                Step::Act(FrontAction::Wait) => continue,
                Step::Act(FrontAction::Publish) => own = Initialised,
                Step::Act(FrontAction::Connect) => own = Connected,
                Step::Act(FrontAction::Reset) => own = Initialising,
            }
            seen.push(own);
        }
        (seen, true)
    }

    #[test]
    fn a_restarted_backend_is_reconnected_to() {
        // The old backend's keys vanish (Unknown), the new instance
        // advertises, attaches: connected again.
        let (states, ok) = replay(&[Unknown, Unknown, InitWait, InitWait, Connected], 99);
        assert!(ok);
        assert_eq!(states, [Initialising, Initialised, Connected]);
    }

    #[test]
    fn a_backend_that_dies_mid_handshake_is_waited_for_again() {
        let (states, ok) = replay(&[InitWait, Unknown, InitWait, Connected], 99);
        assert!(ok);
        assert_eq!(
            states,
            [
                Initialising,
                Initialised,
                Initialising,
                Initialised,
                Connected
            ]
        );
        // Closing instead of attaching: start over too.
        assert_eq!(
            connect_step(Initialised, Closing, false),
            Step::Act(FrontAction::Reset)
        );
        assert_eq!(
            connect_step(Initialised, Closed, true),
            Step::Act(FrontAction::Reset)
        );
    }

    #[test]
    fn waiting_ends_at_the_deadline_only_when_there_is_nothing_to_do() {
        let (states, ok) = replay(&[Unknown, Unknown, Unknown], 2);
        assert!(!ok, "gave up");
        assert_eq!(states, [Initialising]);
        // An advertisement seen at the deadline is still taken.
        assert_eq!(
            connect_step(Initialising, InitWait, true),
            Step::Act(FrontAction::Publish)
        );
        assert_eq!(
            connect_step(Initialised, Connected, true),
            Step::Act(FrontAction::Connect)
        );
        assert_eq!(connect_step(Initialised, InitWait, true), Step::GiveUp);
        assert_eq!(
            connect_step(Initialised, InitWait, false),
            Step::Act(FrontAction::Wait)
        );
    }

    #[test]
    fn a_connected_frontend_notices_a_restart() {
        // The backend re-advertises while we are connected: start over.
        assert_eq!(
            connect_step(Connected, InitWait, false),
            Step::Act(FrontAction::Reset)
        );
        assert_eq!(
            connect_step(Connected, Unknown, false),
            Step::Act(FrontAction::Reset)
        );
        assert_eq!(
            connect_step(Connected, Closed, false),
            Step::Act(FrontAction::Reset)
        );
    }

    #[test]
    fn errors_say_what_happened() {
        assert_eq!(BlkError::Disconnected.to_string(), "the backend went away");
        assert_eq!(
            BlkError::TimedOut.to_string(),
            "the backend did not come back in time"
        );
        assert_eq!(BlkStats::default().reconnects, 0);
    }
}
