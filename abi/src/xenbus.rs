//! The connection handshake between a frontend and its backend, with Xen's
//! `XenbusState` states, over the store.
//!
//! Each side publishes its state under a key of its own store namespace (a
//! domain can only write its own keys): the backend `B` writes
//! [`backend_key`]`(F, dev, "state")` for frontend domain `F`, the frontend
//! writes [`frontend_key`]`(dev, "state")`. Every store change raises
//! `Virq::Store` in the other domains, so each side re-runs its decision
//! function ([`frontend_step`], [`backend_step`]) whenever the store changes.
//!
//! ```text
//!  backend                                  frontend
//!  publish parameters, InitWait  ───────▶   (waits for InitWait)
//!                                ◀───────   grant ring + port, Initialised
//!  map ring, bind port, Connected ──────▶
//!                                ◀───────   Connected: I/O flows
//!  either side disappears (its keys vanish when it stops) or says Closing:
//!  the other tears down and starts over (backend: InitWait; frontend:
//!  Initialising, then waits for InitWait again and resubmits what was in
//!  flight)
//! ```
//!
//! The decision functions are pure, so the handshake is tested on the host.

/// Xen's `XenbusState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XenbusState {
    /// No state published.
    Unknown,
    /// Setting up.
    Initialising,
    /// Backend: parameters published, waiting for the frontend's details.
    InitWait,
    /// Frontend: ring and port published.
    Initialised,
    /// Both sides are ready: requests flow.
    Connected,
    /// Going away.
    Closing,
    /// Gone.
    Closed,
}

impl XenbusState {
    /// The value stored under the `state` key.
    pub const fn to_raw(self) -> u64 {
        match self {
            XenbusState::Unknown => 0,
            XenbusState::Initialising => 1,
            XenbusState::InitWait => 2,
            XenbusState::Initialised => 3,
            XenbusState::Connected => 4,
            XenbusState::Closing => 5,
            XenbusState::Closed => 6,
        }
    }

    /// Decodes a stored value; out-of-range values read as `Unknown` (a
    /// peer that writes garbage is treated as absent).
    pub const fn from_raw(raw: u64) -> Self {
        match raw {
            1 => XenbusState::Initialising,
            2 => XenbusState::InitWait,
            3 => XenbusState::Initialised,
            4 => XenbusState::Connected,
            5 => XenbusState::Closing,
            6 => XenbusState::Closed,
            _ => XenbusState::Unknown,
        }
    }
}

/// What the frontend does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontAction {
    /// Nothing: wait for the next store change.
    Wait,
    /// Read the backend's parameters, grant the ring and allocate the port,
    /// publish them, then set `Initialised`.
    Publish,
    /// The backend attached: set `Connected` and (re)submit queued requests.
    Connect,
    /// The backend went away or is closing: fail or keep the requests in
    /// flight for resubmission, revoke the ring and port, set `Initialising`.
    Reset,
}

/// What the backend does next for one frontend device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackAction {
    /// Nothing: wait for the next store change.
    Wait,
    /// Publish the device parameters, then set `InitWait`.
    Advertise,
    /// Read the frontend's ring and port, map and bind them, set `Connected`.
    Attach,
    /// The frontend went away, restarted or is closing: unmap and unbind,
    /// then advertise again (set `InitWait`).
    Detach,
}

/// The frontend's next step, given its own state and the backend's
/// (`Unknown` when the backend published none, e.g. it is not running).
pub const fn frontend_step(own: XenbusState, backend: XenbusState) -> FrontAction {
    use XenbusState::*;
    match (own, backend) {
        (Initialised, InitWait) => FrontAction::Wait,
        (Initialised, Connected) => FrontAction::Connect,
        (Connected, Connected) => FrontAction::Wait,
        // The backend vanished, closes, or restarted and advertises again.
        (Initialised | Connected, _) => FrontAction::Reset,
        (_, InitWait) => FrontAction::Publish,
        _ => FrontAction::Wait,
    }
}

/// The backend's next step for one device, given its own state and the
/// frontend's (`Unknown` when the frontend published none).
pub const fn backend_step(own: XenbusState, frontend: XenbusState) -> BackAction {
    use XenbusState::*;
    match (own, frontend) {
        (InitWait, Initialised) => BackAction::Attach,
        (InitWait, _) => BackAction::Wait,
        (Connected, Initialised | Connected) => BackAction::Wait,
        // The frontend vanished, restarted, or closes.
        (Connected, _) => BackAction::Detach,
        _ => BackAction::Advertise,
    }
}

/// Longest store key the helpers build (the store's `KEY_MAX`).
pub const KEY_MAX: usize = crate::store::KEY_MAX;

/// A store key built in a fixed buffer.
#[derive(Clone, Copy)]
pub struct Key {
    buf: [u8; KEY_MAX],
    len: usize,
}

impl Key {
    /// The key text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    fn push(&mut self, s: &str) -> Option<()> {
        let end = self.len.checked_add(s.len())?;
        if end > KEY_MAX {
            return None;
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Some(())
    }
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

fn decimal(mut n: u32, out: &mut [u8; 10]) -> &str {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    core::str::from_utf8(&out[i..]).unwrap_or("0")
}

/// The frontend's key `DEV/FIELD` (e.g. `vbd0/state`); `None` if too long.
pub fn frontend_key(dev: &str, field: &str) -> Option<Key> {
    let mut k = Key {
        buf: [0; KEY_MAX],
        len: 0,
    };
    k.push(dev)?;
    k.push("/")?;
    k.push(field)?;
    Some(k)
}

/// The backend's key `FRONTEND_DOMID/DEV/FIELD` (e.g. `2/vbd0/state`) for the
/// device `dev` of frontend domain `frontend`; `None` if too long.
pub fn backend_key(frontend: u32, dev: &str, field: &str) -> Option<Key> {
    let mut k = Key {
        buf: [0; KEY_MAX],
        len: 0,
    };
    k.push(decimal(frontend, &mut [0; 10]))?;
    k.push("/")?;
    k.push(dev)?;
    k.push("/")?;
    k.push(field)?;
    Some(k)
}

#[cfg(test)]
mod tests {
    use super::XenbusState::*;
    use super::*;

    const ALL: [XenbusState; 7] = [
        Unknown,
        Initialising,
        InitWait,
        Initialised,
        Connected,
        Closing,
        Closed,
    ];

    #[test]
    fn states_round_trip_and_garbage_is_unknown() {
        for s in ALL {
            assert_eq!(XenbusState::from_raw(s.to_raw()), s);
        }
        assert_eq!(XenbusState::from_raw(7), Unknown);
        assert_eq!(XenbusState::from_raw(u64::MAX), Unknown);
    }

    /// Runs both sides against each other until neither acts, applying each
    /// action's state change; returns the final states.
    fn settle(mut front: XenbusState, mut back: XenbusState) -> (XenbusState, XenbusState) {
        for _ in 0..16 {
            let mut acted = false;
            match backend_step(back, front) {
                BackAction::Advertise | BackAction::Detach => {
                    back = InitWait;
                    acted = true;
                }
                BackAction::Attach => {
                    back = Connected;
                    acted = true;
                }
                BackAction::Wait => {}
            }
            match frontend_step(front, back) {
                FrontAction::Publish => {
                    front = Initialised;
                    acted = true;
                }
                FrontAction::Connect => {
                    front = Connected;
                    acted = true;
                }
                FrontAction::Reset => {
                    front = Initialising;
                    acted = true;
                }
                FrontAction::Wait => {}
            }
            if !acted {
                return (front, back);
            }
        }
        panic!("the handshake does not settle from {front:?}/{back:?}");
    }

    #[test]
    fn a_fresh_pair_connects() {
        assert_eq!(settle(Unknown, Unknown), (Connected, Connected));
        assert_eq!(settle(Initialising, Unknown), (Connected, Connected));
    }

    #[test]
    fn every_starting_pair_ends_connected() {
        // Whatever state either side was left in (a crash mid-handshake, a
        // restart, garbage), both end up connected.
        for f in ALL {
            for b in ALL {
                assert_eq!(settle(f, b), (Connected, Connected), "from {f:?}/{b:?}");
            }
        }
    }

    #[test]
    fn a_vanished_peer_is_noticed() {
        assert_eq!(frontend_step(Connected, Unknown), FrontAction::Reset);
        assert_eq!(frontend_step(Connected, InitWait), FrontAction::Reset);
        assert_eq!(backend_step(Connected, Unknown), BackAction::Detach);
        assert_eq!(backend_step(Connected, Initialising), BackAction::Detach);
        assert_eq!(frontend_step(Connected, Connected), FrontAction::Wait);
        assert_eq!(backend_step(Connected, Connected), BackAction::Wait);
        // A frontend that has not published yet is simply waited for.
        assert_eq!(backend_step(InitWait, Unknown), BackAction::Wait);
        assert_eq!(frontend_step(Initialising, Unknown), FrontAction::Wait);
    }

    #[test]
    fn keys() {
        assert_eq!(
            frontend_key("vbd0", "state").unwrap().as_str(),
            "vbd0/state"
        );
        assert_eq!(
            backend_key(2, "vbd0", "sectors").unwrap().as_str(),
            "2/vbd0/sectors"
        );
        assert_eq!(
            backend_key(4_000_000_000, "v", "s").unwrap().as_str(),
            "4000000000/v/s"
        );
        assert_eq!(backend_key(0, "vbd0", "s").unwrap().as_str(), "0/vbd0/s");
        assert!(frontend_key("a-very-long-device-name", "ring-reference").is_none());
    }
}
