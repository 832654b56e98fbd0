//! netback glue: one [`Vif`] per guest network interface of the scenario, and
//! the [`Network`] that joins them and the uplink with the learning switch.
//!
//! A vif runs the backend side of the handshake through the store (it
//! advertises the MAC the scenario gave the guest), maps the frontend's
//! control page (copied out and checked, then unmapped), its two ring pages
//! and its `2 * NET_BUFS` buffer pages once, and serves the rings with the
//! portable [`VifBackend`]. Frames go through [`Switch`]: port 0 is the
//! uplink (virtio-net on QEMU's user network), port `1 + i` is vif `i`.

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;

use parapet_abi::event::Port;
use parapet_abi::netif::{
    keys, mac_to_u64, FramePages, NetifControl, RxRequest, RxResponse, TxRequest, TxResponse,
    FRAME_MAX, NET_BUFS, NET_PAGES,
};
use parapet_abi::ring::BackRing;
use parapet_abi::xenbus::{backend_key, backend_step, frontend_key, BackAction, XenbusState};
use parapet_abi::HvError;
use parapet_backends::config::VifWiring;
use parapet_backends::netback::{VifBackend, VifStats};
use parapet_backends::switch::{Decision, MacAddr, PortId, Switch};
use parapet_guest::event::{self, DomId};
use parapet_guest::grant::{self, Mapped, SharedBytes};
use parapet_guest::{println, store, time};
use zerocopy::FromBytes;

use crate::nic::Nic;
use crate::vbd::frontend_state;

const PAGE: usize = 4096;
/// The switch port of the uplink.
const UPLINK: PortId = 0;

/// The frontend's buffer pages, mapped in our grant window.
struct MappedPages(Mapped);

impl FramePages for MappedPages {
    fn read(&self, page: usize, offset: usize, out: &mut [u8]) {
        // netback checked ids and lengths; an out-of-range access is refused
        // by `read_at` and leaves `out` as it was.
        let _ = self.0.read_at(page * PAGE + offset, out);
    }
    fn write(&mut self, page: usize, offset: usize, data: &[u8]) {
        let _ = self.0.write_at(page * PAGE + offset, data);
    }
}

struct Connection {
    backend: VifBackend<'static, MappedPages>,
    rings: Mapped,
    port: Port,
}

/// One guest's network interface: wiring, handshake state and connection.
pub struct Vif {
    /// The scenario's entry.
    pub cfg: VifWiring,
    /// The frontend's domain id.
    pub frontend: DomId,
    state: XenbusState,
    conn: Option<Connection>,
    /// Counters of connections that ended.
    past: VifStats,
    /// Times a frontend was disconnected for breaking the protocol.
    pub refused: u64,
}

/// Why attaching a frontend failed.
#[derive(Debug)]
enum AttachError {
    Hv(HvError),
    Control(parapet_abi::netif::ControlError),
    WrongMac([u8; 6]),
}

impl From<HvError> for AttachError {
    fn from(e: HvError) -> Self {
        AttachError::Hv(e)
    }
}

impl core::fmt::Display for AttachError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AttachError::Hv(e) => write!(f, "{e}"),
            AttachError::Control(e) => write!(f, "{e}"),
            AttachError::WrongMac(m) => write!(f, "control page claims MAC {}", MacAddr(*m)),
        }
    }
}

impl Vif {
    /// A disconnected vif.
    pub fn new(cfg: VifWiring, frontend: DomId) -> Self {
        Self {
            cfg,
            frontend,
            state: XenbusState::Unknown,
            conn: None,
            past: VifStats::default(),
            refused: 0,
        }
    }

    /// Whether a frontend is connected.
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Counters over every connection so far.
    pub fn stats(&self) -> VifStats {
        let mut s = self.past;
        if let Some(c) = &self.conn {
            s += c.backend.stats();
        }
        s
    }

    fn key(&self, field: &str) -> Result<parapet_abi::xenbus::Key, HvError> {
        backend_key(self.frontend, self.cfg.dev.as_str(), field).ok_or(HvError::Inval)
    }

    fn set_state(&mut self, s: XenbusState) -> Result<(), HvError> {
        store::write_u64(self.key("state")?.as_str(), s.to_raw())?;
        self.state = s;
        Ok(())
    }

    /// Re-runs the handshake after a store change.
    fn handshake(&mut self, on_event: fn(Port)) {
        let theirs = frontend_state(self.frontend, self.cfg.dev.as_str());
        let result = match backend_step(self.state, theirs) {
            BackAction::Wait => Ok(()),
            BackAction::Advertise => self.advertise().map_err(AttachError::Hv),
            BackAction::Attach => self.attach(on_event),
            BackAction::Detach => {
                self.detach();
                println!(
                    "netback: {}/{} disconnected",
                    self.cfg.frontend, self.cfg.dev
                );
                self.advertise().map_err(AttachError::Hv)
            }
        };
        if let Err(e) = result {
            println!(
                "netback: {}/{}: handshake failed: {e}",
                self.cfg.frontend, self.cfg.dev
            );
            self.detach();
            let _ = self.set_state(XenbusState::Closed);
        }
    }

    fn advertise(&mut self) -> Result<(), HvError> {
        store::write_u64(
            self.key(keys::MAC)?.as_str(),
            mac_to_u64(self.cfg.mac.octets()),
        )?;
        self.set_state(XenbusState::InitWait)
    }

    fn attach(&mut self, on_event: fn(Port)) -> Result<(), AttachError> {
        let dev = self.cfg.dev.as_str();
        let read = |field| -> Result<u32, HvError> {
            let k = frontend_key(dev, field).ok_or(HvError::Inval)?;
            u32::try_from(store::read_u64(self.frontend, k.as_str())?).map_err(|_| HvError::Inval)
        };
        let (ctrl_ref, remote_port) = (read(keys::CTRL_REF)?, read(keys::PORT)?);
        // The control page is copied out, then checked; it is not kept mapped.
        let ctrl_map = grant::map(self.frontend, &[ctrl_ref], true)?;
        let mut raw = [0u8; core::mem::size_of::<NetifControl>()];
        let copied = ctrl_map.read_at(0, &mut raw);
        let _ = grant::unmap(ctrl_map);
        copied?;
        let ctrl = NetifControl::read_from_bytes(&raw).map_err(|_| HvError::Inval)?;
        ctrl.check().map_err(AttachError::Control)?;
        if MacAddr(ctrl.mac) != self.cfg.mac {
            return Err(AttachError::WrongMac(ctrl.mac));
        }
        let rings = grant::map(self.frontend, &[ctrl.tx_ring_ref, ctrl.rx_ring_ref], false)?;
        let mut refs = [0u32; NET_PAGES];
        refs[..NET_BUFS].copy_from_slice(&ctrl.tx_buf_refs);
        refs[NET_BUFS..].copy_from_slice(&ctrl.rx_buf_refs);
        let bufs = match grant::map(self.frontend, &refs, false) {
            Ok(m) => m,
            Err(e) => {
                let _ = grant::unmap(rings);
                return Err(e.into());
            }
        };
        let attached = shared::back_rings(rings.addr).and_then(|(tx, rx)| {
            let port = event::bind_interdomain(self.frontend, remote_port)?;
            event::set_handler(port, on_event)?;
            Ok((tx, rx, port))
        });
        let (tx, rx, port) = match attached {
            Ok(x) => x,
            Err(e) => {
                let _ = grant::unmap(bufs);
                let _ = grant::unmap(rings);
                return Err(e.into());
            }
        };
        self.conn = Some(Connection {
            backend: VifBackend::new(tx, rx, MappedPages(bufs)),
            rings,
            port,
        });
        self.set_state(XenbusState::Connected)?;
        println!(
            "netback: {}/{} connected: MAC {}",
            self.cfg.frontend, self.cfg.dev, self.cfg.mac
        );
        Ok(())
    }

    fn detach(&mut self) {
        if let Some(c) = self.conn.take() {
            let _ = event::close(c.port);
            self.past += c.backend.stats();
            // The rings go (with the backend) before the mappings under them.
            let MappedPages(bufs) = c.backend.into_pages();
            let _ = grant::unmap(bufs);
            let _ = grant::unmap(c.rings);
        }
    }

    /// Drops the connection of a frontend that broke the protocol; it may
    /// connect again through the handshake.
    fn refuse(&mut self, why: &dyn core::fmt::Display) {
        println!(
            "netback: {}/{}: {why}: disconnecting",
            self.cfg.frontend, self.cfg.dev
        );
        self.refused += 1;
        self.detach();
        let _ = self.set_state(XenbusState::Closed);
    }
}

/// Frames taken from one vif's TX ring, waiting to be switched.
struct Staging {
    frames: Box<[[u8; FRAME_MAX]]>,
    lens: [usize; NET_BUFS],
    count: usize,
}

/// The switch, the uplink and the vifs.
pub struct Network {
    /// The uplink, if the machine has a virtio-net device.
    pub nic: Option<Nic>,
    /// The guests' interfaces.
    pub vifs: Vec<Vif>,
    /// The learning switch.
    pub switch: Switch,
    staging: Staging,
    scratch: Box<[u8; FRAME_MAX]>,
    /// Vifs whose responses must be published.
    dirty: u32,
}

fn now_ms() -> u64 {
    let f = time::frequency().max(1);
    (time::now() as u128 * 1000 / f as u128) as u64
}

impl Network {
    /// The network over `nic` and `vifs` (at most 15: switch ports).
    pub fn new(nic: Option<Nic>, vifs: Vec<Vif>) -> Self {
        let mut switch = Switch::new();
        if nic.is_some() {
            switch.set_port(UPLINK, true, None);
        }
        Network {
            nic,
            vifs,
            switch,
            staging: Staging {
                frames: alloc::vec![[0u8; FRAME_MAX]; NET_BUFS].into_boxed_slice(),
                lens: [0; NET_BUFS],
                count: 0,
            },
            scratch: Box::new([0; FRAME_MAX]),
            dirty: 0,
        }
    }

    fn port_of(i: usize) -> PortId {
        (i + 1) as PortId
    }

    /// Adds a vif whose guest was resolved late (it did not run at boot): it
    /// gets the next switch port, up once it connects. `false` (and nothing
    /// added) when every port is taken.
    pub fn add_vif(&mut self, vif: Vif) -> bool {
        if Self::port_of(self.vifs.len()) as usize >= parapet_backends::switch::MAX_PORTS {
            return false;
        }
        self.vifs.push(vif);
        true
    }

    /// Re-runs every vif's handshake.
    pub fn handshake(&mut self, on_event: fn(Port)) {
        for v in self.vifs.iter_mut() {
            v.handshake(on_event);
        }
        self.sync_ports();
    }

    /// Brings each vif's switch port up or down with its connection (a port
    /// going down forgets the stations learned on it).
    fn sync_ports(&mut self) {
        for (i, v) in self.vifs.iter().enumerate() {
            let (port, up) = (Self::port_of(i), v.connected());
            if self.switch.is_up(port) != up {
                self.switch.set_port(port, up, up.then_some(v.cfg.mac));
            }
        }
    }

    /// Moves every frame that is waiting (from the vifs' TX rings and from
    /// the uplink) to where the switch says, publishes the responses and
    /// notifies the frontends that need it. Returns true if a vif may have
    /// more requests waiting (serve again before sleeping).
    pub fn serve(&mut self) -> bool {
        let now = now_ms();
        // Uplink first: its receive buffers are re-posted as frames go.
        if let Some(nic) = self.nic.as_mut() {
            let (switch, vifs, dirty) = (&mut self.switch, &mut self.vifs, &mut self.dirty);
            nic.receive(|frame| {
                let d = switch.forward(UPLINK, frame, now);
                deliver_to_vifs(vifs, dirty, d, frame);
            });
        }
        let mut again = false;
        for i in 0..self.vifs.len() {
            let in_port = Self::port_of(i);
            self.staging.count = 0;
            let polled = {
                let Some(c) = self.vifs[i].conn.as_mut() else {
                    continue;
                };
                let st = &mut self.staging;
                c.backend.poll_tx(&mut self.scratch, |frame| {
                    if st.count < NET_BUFS {
                        st.frames[st.count][..frame.len()].copy_from_slice(frame);
                        st.lens[st.count] = frame.len();
                        st.count += 1;
                    }
                })
            };
            match polled {
                Ok(n) if n > 0 => self.dirty |= 1 << i,
                Ok(_) => {}
                Err(e) => {
                    self.vifs[i].refuse(&e);
                    continue;
                }
            }
            for k in 0..self.staging.count {
                let frame = &self.staging.frames[k][..self.staging.lens[k]];
                let d = self.switch.forward(in_port, frame, now);
                let to_uplink = match d {
                    Decision::Unicast(p) => p == UPLINK,
                    Decision::Flood(mask) => mask.iter().any(|p| p == UPLINK),
                    Decision::Drop(_) => false,
                };
                if to_uplink {
                    if let Some(nic) = self.nic.as_mut() {
                        nic.send(frame);
                    }
                }
                deliver_to_vifs(&mut self.vifs, &mut self.dirty, d, frame);
            }
            if self.vifs[i]
                .conn
                .as_ref()
                .is_some_and(|c| c.backend.is_hostile())
            {
                self.vifs[i].refuse(&"too many malformed requests");
            }
        }
        // Publish, notify, and check for requests that raced the sleep.
        for (i, v) in self.vifs.iter_mut().enumerate() {
            let Some(c) = v.conn.as_mut() else { continue };
            if self.dirty & (1 << i) != 0 && c.backend.flush() {
                let _ = event::send(c.port);
            }
            match c.backend.final_check() {
                Ok(true) => again = true,
                Ok(false) => {}
                Err(e) => v.refuse(&e),
            }
        }
        self.dirty = 0;
        self.sync_ports();
        if let Some(nic) = self.nic.as_mut() {
            nic.reclaim_tx();
        }
        again
    }
}

/// Copies `frame` into the RX buffers of the vifs the decision names.
fn deliver_to_vifs(vifs: &mut [Vif], dirty: &mut u32, d: Decision, frame: &[u8]) {
    let mut one = |i: usize| {
        let Some(v) = vifs.get_mut(i) else { return };
        let Some(c) = v.conn.as_mut() else { return };
        match c.backend.deliver_rx(frame) {
            Ok(true) => *dirty |= 1 << i,
            Ok(false) => {}
            Err(e) if e.is_peer_fault() => v.refuse(&e),
            Err(_) => {}
        }
    };
    match d {
        Decision::Unicast(p) if p != UPLINK => one(usize::from(p) - 1),
        Decision::Flood(mask) => {
            for p in mask.iter().filter(|&p| p != UPLINK) {
                one(usize::from(p) - 1);
            }
        }
        _ => {}
    }
}

/// The unsafe part: ring handles over the frontend's mapped ring pages.
mod shared {
    use super::*;

    type Rings = (
        BackRing<'static, TxRequest, TxResponse>,
        BackRing<'static, RxRequest, RxResponse>,
    );

    pub fn back_rings(addr: u64) -> Result<Rings, HvError> {
        // SAFETY: `addr` is two pages the frontend granted (TX ring, RX ring),
        // mapped in our grant window until `Vif::detach` unmaps them, which
        // drops the rings first; only the ring code touches them. A frontend
        // that dies has its pages replaced by our scratch page, so they stay
        // mapped.
        let tx = unsafe { BackRing::from_raw(addr as *mut u8, PAGE) };
        // SAFETY: as above, the second page.
        let rx = unsafe { BackRing::from_raw((addr + PAGE as u64) as *mut u8, PAGE) };
        match (tx, rx) {
            (Ok(tx), Ok(rx)) => Ok((tx, rx)),
            _ => Err(HvError::Inval),
        }
    }
}
