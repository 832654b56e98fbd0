//! The byte channel's handshake: [`Vchan::listen`] offers the pages and the
//! port through the store and waits for the client; [`Vchan::connect`] finds
//! the offer, checks and maps it, and marks itself connected.

use alloc::boxed::Box;
use core::sync::atomic::Ordering;

use parapet_abi::HvError;
use parapet_guest::event::{self, DomId};
use parapet_guest::grant::{self, SharedPages};
use parapet_guest::store;

use super::*;

impl Vchan {
    /// Server side: offers channel `name` to domain `client` with rings of
    /// `ring_pages` pages each (2..=65; the data area is a power of two), and
    /// waits until the client has connected.
    pub fn listen(client: DomId, name: &str, ring_pages: u32) -> Result<Vchan, ChanError> {
        if !(2..=MAX_RING_PAGES).contains(&ring_pages) {
            return Err(ChanError::Hv(HvError::Inval));
        }
        let total = 1 + 2 * ring_pages as usize;
        let mut pages = Box::new(SharedPages::new(total)?);
        let refs = pages.grant_all(client, false)?;
        let mut refs_le = [0u8; 8 * MAX_RING_PAGES as usize];
        for (i, &r) in refs[1..].iter().enumerate() {
            refs_le[4 * i..4 * i + 4].copy_from_slice(&(r as u32).to_le_bytes());
        }
        let ctrl_ref = refs[0] as u32;
        let nrefs = refs.len() - 1;
        pages.write_at(Control::REFS, &refs_le[..4 * nrefs])?;
        pages.write_at(Control::RING_PAGES, &ring_pages.to_le_bytes())?;
        pages.write_at(Control::MAGIC, &MAGIC.to_le_bytes())?;
        let ring_len = ring_pages as usize * PAGE;
        let base = pages.base();
        let (mut tx, mut rx) = shared::rings(
            base + PAGE as u64,
            base + (PAGE + ring_len) as u64,
            ring_len,
        )?;
        tx.init();
        rx.init();
        let port = event::alloc_unbound(client)?;
        let pages = Some(Pages::Server(pages));
        if let Some(s) = state_word(&pages, true) {
            s.store(state::CONNECTED, Ordering::Release);
        }
        let mut value = [0u8; 8];
        value[..4].copy_from_slice(&ctrl_ref.to_le_bytes());
        value[4..].copy_from_slice(&port.to_le_bytes());
        let mut kbuf = [0u8; 32];
        store::write(key(name, &mut kbuf)?, &value)?;
        let chan = Vchan {
            tx,
            rx,
            pages,
            port,
            is_server: true,
            closed: false,
            stats: ChanStats::default(),
        };
        let mut result = Ok(());
        event::wait_until(|| {
            if chan.peer_state() != state::INIT {
                return true;
            }
            match event::status(chan.port) {
                Ok(PortStatus::Interdomain { .. } | PortStatus::Unbound { .. }) => false,
                Ok(_) => {
                    result = Err(ChanError::PeerDied);
                    true
                }
                Err(e) => {
                    result = Err(e.into());
                    true
                }
            }
        })?;
        result?;
        Ok(chan)
    }

    /// Client side: connects to channel `name` offered by domain `server`,
    /// waiting for the offer to appear.
    pub fn connect(server: DomId, name: &str) -> Result<Vchan, ChanError> {
        let mut kbuf = [0u8; 32];
        let mut value = [0u8; 8];
        let n = store::wait_for(server, key(name, &mut kbuf)?, &mut value)?;
        if n != 8 {
            return Err(ChanError::BadControl("store value is not 8 bytes"));
        }
        let ctrl_ref = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
        let remote_port = u32::from_le_bytes([value[4], value[5], value[6], value[7]]);
        let control = Box::new(grant::map(server, &[ctrl_ref], false)?);
        // Copy the control fields out before checking them.
        let mut head = [0u8; 8];
        control.read_at(0, &mut head)?;
        if u32::from_le_bytes([head[0], head[1], head[2], head[3]]) != MAGIC {
            let _ = grant::unmap(*control);
            return Err(ChanError::BadControl("bad magic"));
        }
        let ring_pages = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if !(2..=MAX_RING_PAGES).contains(&ring_pages) {
            let _ = grant::unmap(*control);
            return Err(ChanError::BadControl("ring size out of range"));
        }
        let nrefs = 2 * ring_pages as usize;
        let mut raw = [0u8; 8 * MAX_RING_PAGES as usize];
        control.read_at(Control::REFS, &mut raw[..4 * nrefs])?;
        let mut refs = [0u32; 2 * MAX_RING_PAGES as usize];
        for (i, r) in refs.iter_mut().enumerate().take(nrefs) {
            *r = u32::from_le_bytes([raw[4 * i], raw[4 * i + 1], raw[4 * i + 2], raw[4 * i + 3]]);
        }
        let rings = match grant::map(server, &refs[..nrefs], false) {
            Ok(m) => Box::new(m),
            Err(e) => {
                let _ = grant::unmap(*control);
                return Err(e.into());
            }
        };
        let ring_len = ring_pages as usize * PAGE;
        // Server→client is our receive ring.
        let (tx, rx) = match shared::rings(rings.addr + ring_len as u64, rings.addr, ring_len) {
            Ok(r) => r,
            Err(e) => {
                let _ = grant::unmap(*rings);
                let _ = grant::unmap(*control);
                return Err(e);
            }
        };
        let port = match event::bind_interdomain(server, remote_port) {
            Ok(p) => p,
            Err(e) => {
                let _ = grant::unmap(*rings);
                let _ = grant::unmap(*control);
                return Err(e.into());
            }
        };
        let chan = Vchan {
            tx,
            rx,
            pages: Some(Pages::Client { control, rings }),
            port,
            is_server: false,
            closed: false,
            stats: ChanStats::default(),
        };
        if let Some(s) = state_word(&chan.pages, false) {
            s.store(state::CONNECTED, Ordering::Release);
        }
        event::send(port)?;
        Ok(chan)
    }
}
