//! The handshake with the backend, and reconnecting when it went away.

extern crate alloc;

use alloc::boxed::Box;

use parapet_abi::blkif::{BlkRequest, BlkResponse};
use parapet_abi::event::Port;
use parapet_abi::ring::FrontRing;
use parapet_abi::xenbus::{backend_key, frontend_key, frontend_step, FrontAction, XenbusState};
use parapet_abi::HvError;
use parapet_guest::event::{self, DomId};
use parapet_guest::grant::{SharedBytes, SharedPages};
use parapet_guest::wait::{self, WaitError};
use parapet_guest::{store, time};

use super::{shared, BlkError, Blkfront, DiskInfo, MAX_INFLIGHT, RELEASE_POLL};
use crate::xs::my_domid;

/// One connection to one backend instance: the ring (over its page, which
/// is granted to the backend) and the event port.
pub(super) struct Connection {
    // The ring handle goes before the page under it.
    pub(super) ring: FrontRing<'static, BlkRequest, BlkResponse>,
    pub(super) ring_page: Box<SharedPages>,
    pub(super) port: Port,
}

/// What a (re)connecting frontend does next, given its own state and the
/// backend's: the handshake's decision ([`frontend_step`]), unless the
/// deadline passed while there is still something to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// As the handshake says.
    Act(FrontAction),
    /// Waited long enough.
    GiveUp,
}

pub(super) fn connect_step(own: XenbusState, backend: XenbusState, timed_out: bool) -> Step {
    match frontend_step(own, backend) {
        FrontAction::Wait if timed_out => Step::GiveUp,
        action => Step::Act(action),
    }
}
pub(super) fn backend_state(backend: DomId, dev: &str) -> Result<XenbusState, BlkError> {
    crate::xs::backend_state(backend, dev).map_err(|e| match e {
        HvError::Inval => BlkError::BadName,
        e => e.into(),
    })
}

pub(super) fn set_state(dev: &str, s: XenbusState) -> Result<(), BlkError> {
    let key = frontend_key(dev, "state").ok_or(BlkError::BadName)?;
    store::write_u64(key.as_str(), s.to_raw())?;
    Ok(())
}

/// Waits until the handshake says to act (returns the action and the
/// backend's state) or, with a `deadline` (a counter value), until it passes.
pub(super) fn await_backend(
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
pub(super) fn release(mut pages: Box<SharedPages>, deadline: u64) {
    while pages.end_all() == Err(HvError::Busy) && time::now() < deadline {
        if time::sleep(RELEASE_POLL).is_err() {
            break;
        }
    }
}
impl Blkfront {
    /// Runs the handshake until connected: publishes `Initialising`, waits
    /// for the backend's `InitWait`, grants the pool and a fresh ring page,
    /// publishes them, and waits for `Connected`. A backend that goes away
    /// in the middle is waited for again. With a `deadline` (a counter
    /// value), gives up with [`BlkError::TimedOut`] when it passes.
    pub(super) fn handshake(&mut self, deadline: Option<u64>) -> Result<(), BlkError> {
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
    pub(super) fn drop_connection(&mut self, conn: Connection, deadline: Option<u64>) {
        let _ = event::close(conn.port);
        // The ring handle is never used again (it has no `Drop`).
        let Connection { ring_page, .. } = conn;
        let deadline = deadline.unwrap_or_else(|| time::deadline_after(self.reconnect_timeout));
        release(ring_page, deadline);
    }

    /// The backend went away: every request in flight fails, the
    /// connection is torn down (port closed, grants ended), and the next
    /// call reconnects.
    pub(super) fn disconnect(&mut self) {
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
    pub(super) fn ensure_connected(&mut self) -> Result<(), BlkError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let deadline = time::deadline_after(self.reconnect_timeout);
        self.handshake(Some(deadline))?;
        self.stats.reconnects += 1;
        Ok(())
    }
}
