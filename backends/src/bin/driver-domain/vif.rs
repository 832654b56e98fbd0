//! netback glue: one [`Vif`] per guest network interface of the scenario, and
//! the [`Network`] that joins them and the uplink with the learning switch.
//!
//! A vif runs the backend side of the handshake through the store (it
//! advertises the MAC the scenario gave the guest), maps the frontend's
//! control page (copied out and checked, then unmapped), its two ring pages
//! and its `2 * NET_BUFS` buffer pages once, and serves the rings with the
//! portable [`VifBackend`]. Frames go through [`Switch`]: port 0 is the
//! uplink (virtio-net on QEMU's user network), port `1 + i` is vif `i`.
//!
//! A vif whose frontend wrote `feature-sg = 1` (the backend offers it) takes
//! and sends frames of up to `FRAME_MAX_SG` bytes; its switch port is given
//! that limit, the uplink keeps 1514, and the switch leaves a longer frame out
//! of the uplink (counted, and printed the first time). A guest's frame is
//! copied once in the driver domain: the switch decides from a private copy of
//! its header, then the frame goes straight from the sender's TX buffers to
//! each receiver's RX buffers (or the NIC's transmit buffer).

extern crate alloc;

use alloc::vec::Vec;

use parapet_abi::event::Port;
use parapet_abi::netif::{
    keys, mac_to_u64, FramePages, NetifControl, RxRequest, RxResponse, TxRequest, TxResponse,
    NET_BUFS, NET_PAGES,
};
use parapet_abi::ring::BackRing;
use parapet_abi::xenbus::{backend_key, backend_step, frontend_key, BackAction, XenbusState};
use parapet_abi::HvError;
use parapet_backends::config::VifWiring;
use parapet_backends::netback::{TxFrame, VifBackend, VifStats};
use parapet_backends::switch::{Decision, MacAddr, PortId, Switch, FRAME_MAX, MAX_PORTS};
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
    fn copy_from(&mut self, page: usize, src: &Self, src_page: usize, offset: usize, len: usize) {
        // Mapped page to mapped page, volatile words, no private copy.
        let _ = self
            .0
            .copy_from(page * PAGE + offset, &src.0, src_page * PAGE + offset, len);
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

    /// The longest frame the connected frontend takes ([`FRAME_MAX`] when none).
    fn frame_max(&self) -> usize {
        self.conn
            .as_ref()
            .map_or(FRAME_MAX, |c| c.backend.frame_max())
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
        store::write_u64(self.key(keys::FEATURE_SG)?.as_str(), 1)?;
        self.set_state(XenbusState::InitWait)
    }

    fn attach(&mut self, on_event: fn(Port)) -> Result<(), AttachError> {
        let dev = self.cfg.dev.as_str();
        let read = |field| -> Result<u32, HvError> {
            let k = frontend_key(dev, field).ok_or(HvError::Inval)?;
            u32::try_from(store::read_u64(self.frontend, k.as_str())?).map_err(|_| HvError::Inval)
        };
        let (ctrl_ref, remote_port) = (read(keys::CTRL_REF)?, read(keys::PORT)?);
        // Large frames only if the frontend asked (an absent key is a no).
        let sg = read(keys::FEATURE_SG) == Ok(1);
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
            backend: VifBackend::new(tx, rx, MappedPages(bufs)).with_sg(sg),
            rings,
            port,
        });
        self.set_state(XenbusState::Connected)?;
        println!(
            "netback: {}/{} connected: MAC {}{}",
            self.cfg.frontend,
            self.cfg.dev,
            self.cfg.mac,
            if sg { ", frames up to 16 KiB" } else { "" }
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

/// The switch, the uplink and the vifs.
pub struct Network {
    /// The uplink, if the machine has a virtio-net device.
    pub nic: Option<Nic>,
    /// The guests' interfaces.
    pub vifs: Vec<Vif>,
    /// The learning switch.
    pub switch: Switch,
    /// Vifs whose responses must be published.
    dirty: u32,
    /// Per switch port: frames left out for being too long, as last reported.
    oversize_seen: [u64; MAX_PORTS],
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
            dirty: 0,
            oversize_seen: [0; MAX_PORTS],
        }
    }

    fn port_of(i: usize) -> PortId {
        (i + 1) as PortId
    }

    /// Adds a vif whose guest was resolved late (it did not run at boot): it
    /// gets the next switch port, up once it connects. `false` (and nothing
    /// added) when every port is taken.
    pub fn add_vif(&mut self, vif: Vif) -> bool {
        if Self::port_of(self.vifs.len()) as usize >= MAX_PORTS {
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
    /// going down forgets the stations learned on it), with the longest frame
    /// its frontend negotiated.
    fn sync_ports(&mut self) {
        for (i, v) in self.vifs.iter().enumerate() {
            let (port, up) = (Self::port_of(i), v.connected());
            if self.switch.is_up(port) != up {
                self.switch.set_port(port, up, up.then_some(v.cfg.mac));
            }
            if self.switch.frame_max(port) != v.frame_max() {
                self.switch.set_frame_max(port, v.frame_max());
            }
        }
    }

    /// Says (once per port, then only in the counters) that the switch left
    /// frames out of a port for being longer than it takes.
    fn report_oversize(&mut self) {
        let counts = self.switch.stats().oversize;
        for (p, (&n, seen)) in counts.iter().zip(self.oversize_seen.iter_mut()).enumerate() {
            if n > 0 && *seen == 0 {
                let name = match p {
                    0 => "the uplink",
                    _ => self
                        .vifs
                        .get(p - 1)
                        .map_or("a vif", |v| v.cfg.frontend.as_str()),
                };
                println!(
                    "netback: frames longer than {} bytes are not sent to {name} (counted in `devices`)",
                    self.switch.frame_max(p as PortId)
                );
            }
            *seen = n;
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
                deliver_to_vifs(vifs, dirty, d, None, |b| b.deliver_rx(frame));
            });
        }
        let mut again = false;
        for i in 0..self.vifs.len() {
            let in_port = Self::port_of(i);
            // The sender apart from the others: frames are copied straight from
            // its buffers to theirs.
            let (before, rest) = self.vifs.split_at_mut(i);
            let Some((me, after)) = rest.split_first_mut() else {
                break;
            };
            let Some(c) = me.conn.as_mut() else {
                continue;
            };
            let (switch, nic, dirty) = (&mut self.switch, &mut self.nic, &mut self.dirty);
            let polled = c.backend.poll_tx(|frame: &TxFrame<'_, MappedPages>| {
                let d = switch.forward_header(in_port, frame.header(), frame.len(), now);
                let to_uplink = match d {
                    Decision::Unicast(p) => p == UPLINK,
                    Decision::Flood(mask) => mask.contains(UPLINK),
                    Decision::Drop(_) => false,
                };
                if to_uplink {
                    if let Some(nic) = nic.as_mut() {
                        nic.send_with(frame.len(), |buf| frame.read(0, buf));
                    }
                }
                let mut others = Others {
                    before: &mut *before,
                    after: &mut *after,
                    me: i,
                };
                deliver_to_vifs(&mut others, dirty, d, Some(i), |b| b.deliver_rx_from(frame));
            });
            match polled {
                Ok(n) if n > 0 => self.dirty |= 1 << i,
                Ok(_) => {}
                Err(e) => {
                    self.vifs[i].refuse(&e);
                    continue;
                }
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
        self.report_oversize();
        if let Some(nic) = self.nic.as_mut() {
            nic.reclaim_tx();
        }
        again
    }
}

/// The vifs other than the one whose frame is being switched (index `me`).
struct Others<'v> {
    before: &'v mut [Vif],
    after: &'v mut [Vif],
    me: usize,
}

/// The vifs a frame can be delivered to.
trait VifSet {
    fn get(&mut self, i: usize) -> Option<&mut Vif>;
}

impl VifSet for Vec<Vif> {
    fn get(&mut self, i: usize) -> Option<&mut Vif> {
        self.get_mut(i)
    }
}

impl VifSet for Others<'_> {
    fn get(&mut self, i: usize) -> Option<&mut Vif> {
        match i.cmp(&self.me) {
            core::cmp::Ordering::Less => self.before.get_mut(i),
            core::cmp::Ordering::Equal => None,
            core::cmp::Ordering::Greater => self.after.get_mut(i - self.me - 1),
        }
    }
}

/// Delivers a frame (with `deliver`, one copy each) to the vifs the decision
/// names, other than `from`.
fn deliver_to_vifs(
    vifs: &mut impl VifSet,
    dirty: &mut u32,
    d: Decision,
    from: Option<usize>,
    mut deliver: impl FnMut(
        &mut VifBackend<'static, MappedPages>,
    ) -> Result<bool, parapet_backends::netback::VifError>,
) {
    let mut one = |i: usize| {
        if Some(i) == from {
            return;
        }
        let Some(v) = vifs.get(i) else { return };
        let Some(c) = v.conn.as_mut() else { return };
        match deliver(&mut c.backend) {
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
