//! A guest's network interface: the netfront handshake with the backend, the
//! pages it grants, and a small smoltcp stack over it ([`NetStack`]).
//!
//! [`Vif::connect`] follows [`parapet_abi::xenbus`]: wait for the backend's
//! `InitWait` and read the MAC the scenario gave us, allocate and grant the
//! control page, both ring pages and the `2 * NET_BUFS` buffer pages (once),
//! publish `ctrl-ref`, `port` and `feature-sg` (1 if the backend offers large
//! frames: then smoltcp's MTU is [`parapet_abi::netif::MTU_SG`]), `Initialised`,
//! wait for `Connected`. From
//! then on no grant operation happens per frame: [`crate::netfront`] copies
//! frames into and out of the granted buffers.
//!
//! [`NetStack`] is the loop a guest runs: smoltcp's `Interface` and sockets
//! over the vif, an address from the command line (`ip=A.B.C.D/N gw=A.B.C.D`,
//! or `ip=dhcp` through the uplink), and [`NetStack::poll`] /
//! [`NetStack::wait`] that sleep on the event channel (or smoltcp's next
//! timer) instead of spinning.
//!
//! # Waiting
//!
//! Every wait (the handshake, [`Vif::wait`], [`NetStack::run_until`]) goes
//! through [`parapet_guest::wait::wait_until`], its deadline a timer of the
//! SDK's queue: with a guest OS's wait hook, only the calling thread waits.
//! An OS that serves the interface from its own event loop uses the
//! non-blocking half instead:
//!
//! ```ignore
//! loop {
//!     net.poll()?;                      // frames in and out, smoltcp's timers
//!     // ... use the sockets ...
//!     if !net.vif.arm()? {              // nothing to do: the backend will notify
//!         let deadline = net.next_deadline(None);
//!         os_wait(net.vif.port(), deadline); // an event on the port, or the deadline
//!     }
//! }
//! ```
//!
//! [`Vif::arm`] asks the backend for an event on [`Vif::port`] when it answers
//! (true: there is work already, poll again); [`NetStack::next_deadline`] is
//! when smoltcp needs a poll even without frames. The port changes when
//! [`NetStack::reconnect`] connects again ([`NetStack::reconnects`] counts).
//!
//! # Stack
//!
//! Stack: needs about 8 KiB. Measured on QEMU by stack painting (release build;
//! the boot stack below the caller's frame filled with a pattern, the call run,
//! the deepest overwritten word found; upcalls that came meanwhile included):
//! [`Vif::connect`] 7.0 KiB, [`NetStack::new`] 2.9 KiB, a 4 MiB TCP transfer
//! through [`NetStack::poll`] and [`NetStack::wait`] (smoltcp included) 3.5 KiB,
//! an HTTP fetch with the guest's own code 4.6 KiB. A reconnection runs
//! [`Vif::connect`] from inside [`NetStack::poll`]: count about 8 KiB below
//! the loop that polls, plus about 1 KiB for an upcall that lands at the deepest
//! point. The vif keeps its pages and netfront's frame buffers on the heap, so
//! it is small to move (before that, `Vif::connect` took 23 KiB and
//! `NetStack::new` 14.5 KiB).

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::sync::atomic::{AtomicBool, Ordering};

use parapet_abi::event::Port;
use parapet_abi::netif::{
    keys, mac_from_u64, FramePages, NetifControl, RxRequest, RxResponse, TxRequest, TxResponse,
    NET_BUFS, NET_PAGES,
};
use parapet_abi::ring::FrontRing;
use parapet_abi::xenbus::{backend_key, frontend_key, XenbusState};
use parapet_abi::HvError;
use parapet_guest::event::{self, DomId};
use parapet_guest::grant::{SharedBytes, SharedPages};
use parapet_guest::wait::{self, WaitError};
use parapet_guest::{store, time};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};
use zerocopy::IntoBytes;

use crate::netfront::{NetError, NetStats, Netfront};

const PAGE: usize = 4096;

/// What went wrong with a vif.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VifError {
    /// A hypercall failed.
    Hv(HvError),
    /// The backend broke the netif protocol.
    Net(NetError),
    /// The backend advertised no usable MAC.
    BadMac,
    /// The backend went away (or refused us).
    Disconnected,
    /// The device name is too long for a store key.
    BadName,
}

impl From<HvError> for VifError {
    fn from(e: HvError) -> Self {
        VifError::Hv(e)
    }
}

impl From<NetError> for VifError {
    fn from(e: NetError) -> Self {
        VifError::Net(e)
    }
}

impl core::fmt::Display for VifError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VifError::Hv(e) => write!(f, "hypercall failed: {e}"),
            VifError::Net(e) => write!(f, "{e}"),
            VifError::BadMac => write!(f, "the backend advertised no usable MAC"),
            VifError::Disconnected => write!(f, "the backend went away"),
            VifError::BadName => write!(f, "device name too long"),
        }
    }
}

impl core::error::Error for VifError {}

/// Our buffer pages, as netfront indexes them (boxed, like the vif's other
/// pages, so that a vif is small to move: see "Stack" above).
pub struct OwnPages(Box<SharedPages>);

impl FramePages for OwnPages {
    fn read(&self, page: usize, offset: usize, out: &mut [u8]) {
        // netfront checks ids and lengths; `read_at` refuses anything else.
        let _ = self.0.read_at(page * PAGE + offset, out);
    }
    fn write(&mut self, page: usize, offset: usize, data: &[u8]) {
        let _ = self.0.write_at(page * PAGE + offset, data);
    }
}

/// Set by the event handler of every vif port.
static EVENT: AtomicBool = AtomicBool::new(false);

fn on_event(_: Port) {
    EVENT.store(true, Ordering::SeqCst);
}

use crate::xs::my_domid;

/// The backend's state for our `dev` (`Unknown` when it cannot be read).
fn backend_state(backend: DomId, dev: &str) -> XenbusState {
    crate::xs::backend_state(backend, dev).unwrap_or(XenbusState::Unknown)
}

/// A connected network interface.
pub struct Vif {
    backend: DomId,
    dev: &'static str,
    nf: Netfront<'static, OwnPages>,
    // The ring pages and control page stay allocated (and granted) for as
    // long as the rings over them live.
    _rings: Box<SharedPages>,
    _ctrl: Box<SharedPages>,
    port: Port,
    mac: [u8; 6],
    /// When the backend's state was last looked at (counter ticks).
    checked: u64,
}

impl Vif {
    /// Connects to interface `dev` (e.g. `vif0`) that domain `backend` serves
    /// for us, waiting for the backend to advertise it.
    pub fn connect(backend: DomId, dev: &'static str) -> Result<Self, VifError> {
        let me = my_domid();
        let fkey = |field| frontend_key(dev, field).ok_or(VifError::BadName);
        let bkey = |field| backend_key(me, dev, field).ok_or(VifError::BadName);
        let backend_state = || backend_state(backend, dev);
        store::write_u64(fkey("state")?.as_str(), XenbusState::Initialising.to_raw())?;
        event::wait_until(|| backend_state() == XenbusState::InitWait)?;
        let mac = mac_from_u64(store::read_u64(backend, bkey(keys::MAC)?.as_str())?)
            .filter(|m| m[0] & 1 == 0 && *m != [0; 6])
            .ok_or(VifError::BadMac)?;
        // Large frames if the backend offers them (absent key: no).
        let sg = store::read_u64(backend, bkey(keys::FEATURE_SG)?.as_str()) == Ok(1);

        // Ring headers are initialised before the pages are granted.
        let mut rings = Box::new(SharedPages::new(2)?);
        let (tx, rx) = shared::front_rings(rings.base())?;
        let ring_refs = rings.grant_all(backend, false)?;
        let (tx_ring_ref, rx_ring_ref) = (ring_refs[0] as u32, ring_refs[1] as u32);
        let mut bufs = Box::new(SharedPages::new(NET_PAGES)?);
        let buf_refs = bufs.grant_all(backend, false)?;
        let mut tx_refs = [0u32; NET_BUFS];
        let mut rx_refs = [0u32; NET_BUFS];
        for i in 0..NET_BUFS {
            tx_refs[i] = buf_refs[i] as u32;
            rx_refs[i] = buf_refs[NET_BUFS + i] as u32;
        }
        let nf = Netfront::new(tx, rx, OwnPages(bufs))?.with_sg(sg);
        let mut ctrl = Box::new(SharedPages::new(1)?);
        let control = NetifControl::new(tx_ring_ref, rx_ring_ref, tx_refs, rx_refs, mac);
        ctrl.write_at(0, control.as_bytes())?;
        let ctrl_ref = ctrl.grant_all(backend, true)?[0];
        let port = event::alloc_unbound(backend)?;
        event::set_handler(port, on_event)?;
        store::write_u64(fkey(keys::CTRL_REF)?.as_str(), ctrl_ref)?;
        store::write_u64(fkey(keys::PORT)?.as_str(), port.into())?;
        store::write_u64(fkey(keys::FEATURE_SG)?.as_str(), u64::from(sg))?;
        store::write_u64(fkey("state")?.as_str(), XenbusState::Initialised.to_raw())?;
        let mut seen = XenbusState::InitWait;
        event::wait_until(|| {
            seen = backend_state();
            seen != XenbusState::InitWait
        })?;
        if seen != XenbusState::Connected {
            let _ = event::close(port);
            return Err(VifError::Disconnected);
        }
        store::write_u64(fkey("state")?.as_str(), XenbusState::Connected.to_raw())?;
        let mut vif = Vif {
            backend,
            dev,
            nf,
            _rings: rings,
            _ctrl: ctrl,
            port,
            mac,
            checked: time::now(),
        };
        // Publishes the RX buffers; the first flush always notifies.
        vif.flush()?;
        Ok(vif)
    }

    /// The MAC the backend gave us.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The smoltcp device.
    pub fn device(&mut self) -> &mut Netfront<'static, OwnPages> {
        &mut self.nf
    }

    /// Counters.
    pub fn stats(&self) -> NetStats {
        self.nf.stats()
    }

    /// Consumes the backend's responses. Every 100 ms it also checks that the
    /// backend is still connected ([`VifError::Disconnected`] if not).
    pub fn poll(&mut self) -> Result<(), VifError> {
        EVENT.store(false, Ordering::SeqCst);
        self.nf.poll()?;
        if time::since(self.checked) >= time::Duration::from_millis(100) {
            self.checked = time::now();
            if self.backend_state() != XenbusState::Connected {
                return Err(VifError::Disconnected);
            }
        }
        Ok(())
    }

    /// Publishes the requests pushed since the last flush, notifying the
    /// backend if it asked.
    pub fn flush(&mut self) -> Result<(), VifError> {
        if self.nf.flush() {
            event::send(self.port)?;
        }
        Ok(())
    }

    /// The backend's handshake state for this vif.
    pub fn backend_state(&self) -> XenbusState {
        backend_state(self.backend, self.dev)
    }

    /// Hostile-frontend tests: pushes `req` on the TX ring unchecked and
    /// notifies the backend (see [`Netfront::push_raw_tx`]).
    pub fn push_raw_tx(&mut self, req: &TxRequest) -> Result<(), VifError> {
        self.nf.push_raw_tx(req)?;
        self.nf.flush();
        event::send(self.port)?;
        Ok(())
    }

    /// Hostile-frontend tests: overwrites the TX ring's request producer index
    /// with `req_prod` and notifies the backend.
    pub fn corrupt_tx_ring(&mut self, req_prod: u32) -> Result<(), VifError> {
        self._rings.write_at(0, &req_prod.to_le_bytes())?;
        event::send(self.port)?;
        Ok(())
    }

    /// Closes the interface: tells the backend (`Closing`), which unmaps our
    /// pages, then ends the grants (pages still mapped by a backend that does
    /// not answer are leaked rather than reused).
    pub fn close(self) -> Result<(), VifError> {
        let key = frontend_key(self.dev, "state").ok_or(VifError::BadName)?;
        store::write_u64(key.as_str(), XenbusState::Closing.to_raw())?;
        let limit = time::deadline_after(time::Duration::from_secs(5));
        match event::wait_until_deadline(limit, || {
            !matches!(self.backend_state(), XenbusState::Connected)
        }) {
            // A backend that does not answer in time: close anyway.
            Ok(()) | Err(WaitError::TimedOut) => {}
            Err(WaitError::Hv(e)) => return Err(e.into()),
        }
        let _ = event::close(self.port);
        store::write_u64(key.as_str(), XenbusState::Closed.to_raw())?;
        Ok(())
    }

    /// The event port the backend notifies (a new one after
    /// [`NetStack::reconnect`]). The vif's own handler only sets a flag that
    /// [`Vif::wait`] also looks at; a handler of yours
    /// (`event::set_handler(vif.port(), …)`) replaces it, and the waits still
    /// work (they check the rings).
    pub fn port(&self) -> Port {
        self.port
    }

    /// Whether there is work (an event since the last [`Vif::poll`], frames
    /// queued for smoltcp, or answers on either ring): `Ok(true)`, poll again.
    /// Otherwise (`Ok(false)`) it has asked the backend to notify
    /// [`Vif::port`] when it answers, and the caller may wait for that event
    /// (plus smoltcp's next timer, [`NetStack::next_deadline`]). The
    /// non-blocking half of [`Vif::wait`]; call it after [`Vif::flush`].
    pub fn arm(&mut self) -> Result<bool, VifError> {
        if EVENT.load(Ordering::SeqCst) {
            return Ok(true);
        }
        Ok(self.nf.final_check()?)
    }

    /// Sleeps until the backend answers or `deadline` (counter ticks) passes;
    /// returns at once if there is work already. Waits through
    /// [`parapet_guest::wait`]: with a guest OS's wait hook, only the calling
    /// thread waits.
    pub fn wait(&mut self, deadline: Option<u64>) -> Result<(), VifError> {
        // `arm` runs with interrupts masked, so an answer that comes after it
        // looked wakes the wait below.
        match wait::wait_until(deadline, || match self.arm() {
            Ok(false) => None,
            Ok(true) => Some(Ok(())),
            Err(e) => Some(Err(e)),
        }) {
            Ok(r) => r,
            Err(WaitError::TimedOut) => Ok(()),
            Err(WaitError::Hv(e)) => Err(e.into()),
        }
    }
}

/// How a guest gets its address (from its command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrConfig {
    /// `ip=A.B.C.D/N` and optionally `gw=A.B.C.D`.
    Static {
        /// Address and prefix length.
        addr: Ipv4Addr,
        /// Prefix length, 1..=32.
        prefix: u8,
        /// Default gateway.
        gateway: Option<Ipv4Addr>,
    },
    /// `ip=dhcp` (or no `ip=`): DHCP through the uplink.
    Dhcp,
}

/// A malformed `ip=` or `gw=` word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAddr;

impl core::fmt::Display for BadAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("malformed ip= or gw= (want ip=A.B.C.D/N gw=A.B.C.D, or ip=dhcp)")
    }
}

impl AddrConfig {
    /// Reads `ip=` and `gw=` from a command line.
    pub fn from_cmdline(cmdline: &str) -> Result<Self, BadAddr> {
        let ip = parapet_guest::cmdline::get(cmdline, "ip");
        let Some(ip) = ip.filter(|&v| v != "dhcp") else {
            return Ok(AddrConfig::Dhcp);
        };
        let (a, p) = ip.split_once('/').ok_or(BadAddr)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| BadAddr)?;
        let prefix: u8 = p.parse().map_err(|_| BadAddr)?;
        if !(1..=32).contains(&prefix) {
            return Err(BadAddr);
        }
        let gateway = match parapet_guest::cmdline::get(cmdline, "gw") {
            Some(g) => Some(g.parse().map_err(|_| BadAddr)?),
            None => None,
        };
        Ok(AddrConfig::Static {
            addr,
            prefix,
            gateway,
        })
    }
}

/// smoltcp's clock: the counter, in microseconds.
pub fn now() -> Instant {
    let f = time::frequency().max(1) as u128;
    Instant::from_micros((time::now() as u128 * 1_000_000 / f) as i64)
}

/// Longest sleep of [`NetStack::wait`].
pub const IDLE_CHECK: time::Duration = time::Duration::from_millis(500);

/// A smoltcp interface and its sockets over a [`Vif`].
pub struct NetStack {
    /// The interface.
    pub vif: Vif,
    /// smoltcp's interface.
    pub iface: Interface,
    /// The sockets (add yours).
    pub sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    /// Times the vif was connected again after its backend went away.
    pub reconnects: u64,
}

impl NetStack {
    /// A stack over `vif`, configured as `addr` says.
    pub fn new(mut vif: Vif, addr: AddrConfig) -> Self {
        let mac = vif.mac();
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = time::now() ^ u64::from(my_domid()) << 32;
        let iface = Interface::new(config, vif.device(), now());
        let mut stack = NetStack {
            vif,
            iface,
            sockets: SocketSet::new(Vec::new()),
            dhcp: None,
            reconnects: 0,
        };
        match addr {
            AddrConfig::Static {
                addr,
                prefix,
                gateway,
            } => stack.set_addr(Ipv4Cidr::new(addr, prefix), gateway),
            AddrConfig::Dhcp => {
                let h = stack.sockets.add(dhcpv4::Socket::new());
                stack.dhcp = Some(h);
            }
        }
        stack
    }

    fn set_addr(&mut self, cidr: Ipv4Cidr, gateway: Option<Ipv4Addr>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some(gw) = gateway {
            let _ = self.iface.routes_mut().add_default_ipv4_route(gw);
        }
    }

    /// Our IPv4 address, once we have one.
    pub fn addr(&self) -> Option<Ipv4Cidr> {
        self.iface
            .ip_addrs()
            .iter()
            .map(|a| match a {
                IpCidr::Ipv4(c) => *c,
            })
            .next()
    }

    /// One round: take the backend's responses, let smoltcp process frames
    /// and timers, publish what it sent. Returns true if a socket may have
    /// changed.
    pub fn poll(&mut self) -> Result<bool, VifError> {
        match self.vif.poll() {
            Ok(()) => {}
            // The backend went away (its domain stopped or restarted) or broke
            // the protocol: connect again, keeping the interface and sockets,
            // so TCP connections ride out a short outage by retransmitting.
            Err(VifError::Disconnected | VifError::Net(_)) => self.reconnect()?,
            Err(e) => return Err(e),
        }
        let changed = self.iface.poll(now(), self.vif.device(), &mut self.sockets)
            != smoltcp::iface::PollResult::None;
        if let Some(h) = self.dhcp {
            let event = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
                Some(dhcpv4::Event::Configured(c)) => Some(Some((c.address, c.router))),
                Some(dhcpv4::Event::Deconfigured) => Some(None),
                None => None,
            };
            match event {
                Some(Some((address, router))) => self.set_addr(address, router),
                Some(None) => {
                    self.iface.update_ip_addrs(|a| a.clear());
                    self.iface.routes_mut().remove_default_ipv4_route();
                }
                None => {}
            }
        }
        self.vif.flush()?;
        Ok(changed)
    }

    /// Connects the vif again (the backend's new instance), keeping the
    /// interface and sockets. Blocks until the backend is back.
    pub fn reconnect(&mut self) -> Result<(), VifError> {
        let (backend, dev) = (self.vif.backend, self.vif.dev);
        parapet_guest::println!("net: {dev}: the backend went away; reconnecting");
        let _ = event::close(self.vif.port);
        let vif = Vif::connect(backend, dev)?;
        // The old pages go back to the heap only if no backend still maps them.
        self.vif = vif;
        self.reconnects += 1;
        parapet_guest::println!("net: {dev}: reconnected ({} so far)", self.reconnects);
        Ok(())
    }

    /// Sleeps until a frame arrives, smoltcp's next timer, or `limit` (counter
    /// ticks), whichever comes first; at most [`IDLE_CHECK`], so that a
    /// backend that went away is noticed even when nothing is sent.
    pub fn wait(&mut self, limit: Option<u64>) -> Result<(), VifError> {
        let deadline = self.next_deadline(limit);
        self.vif.wait(Some(deadline))
    }

    /// When [`NetStack::poll`] must run again even if no frame comes:
    /// smoltcp's next timer, `limit`, or [`IDLE_CHECK`] from now, whichever
    /// is first (a counter value). For a guest that waits on
    /// [`Vif::port`] itself (after [`Vif::arm`] said there is nothing to do)
    /// instead of in [`NetStack::wait`].
    pub fn next_deadline(&mut self, limit: Option<u64>) -> u64 {
        let timer = self.iface.poll_delay(now(), &self.sockets).map(|d| {
            time::now().saturating_add(time::ticks(time::Duration::from_micros(d.total_micros())))
        });
        let idle = time::deadline_after(IDLE_CHECK);
        [timer, limit].into_iter().flatten().fold(idle, u64::min)
    }

    /// Runs the stack until `done` says so (called after each round), or
    /// `limit` (counter ticks) passes: `Ok(false)` then.
    pub fn run_until(
        &mut self,
        limit: Option<u64>,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> Result<bool, VifError> {
        loop {
            self.poll()?;
            if done(self) {
                return Ok(true);
            }
            if limit.is_some_and(|l| time::now() >= l) {
                return Ok(false);
            }
            self.wait(limit)?;
        }
    }
}

/// A buffer of `n` zero bytes (socket buffers).
pub fn buffer(n: usize) -> Vec<u8> {
    vec![0; n]
}

/// The unsafe part: ring handles over our own shared pages.
#[allow(unsafe_code)]
mod shared {
    use super::*;

    type Rings = (
        FrontRing<'static, TxRequest, TxResponse>,
        FrontRing<'static, RxRequest, RxResponse>,
    );

    pub fn front_rings(base: u64) -> Result<Rings, VifError> {
        // SAFETY: `base` is two pages of our own that `Vif` keeps allocated
        // (and granted only to the backend) for as long as the rings live;
        // only the ring code touches them.
        let tx = unsafe { FrontRing::from_raw(base as *mut u8, PAGE) };
        // SAFETY: as above, the second page.
        let rx = unsafe { FrontRing::from_raw((base + PAGE as u64) as *mut u8, PAGE) };
        match (tx, rx) {
            (Ok(tx), Ok(rx)) => Ok((tx, rx)),
            (Err(e), _) | (_, Err(e)) => Err(VifError::Net(NetError::Ring(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_the_command_line() {
        assert_eq!(AddrConfig::from_cmdline("mode=x"), Ok(AddrConfig::Dhcp));
        assert_eq!(AddrConfig::from_cmdline("ip=dhcp"), Ok(AddrConfig::Dhcp));
        assert_eq!(
            AddrConfig::from_cmdline("ip=10.0.2.15/24 gw=10.0.2.2"),
            Ok(AddrConfig::Static {
                addr: Ipv4Addr::new(10, 0, 2, 15),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            })
        );
        assert_eq!(
            AddrConfig::from_cmdline("ip=192.168.1.2/16"),
            Ok(AddrConfig::Static {
                addr: Ipv4Addr::new(192, 168, 1, 2),
                prefix: 16,
                gateway: None,
            })
        );
        for bad in [
            "ip=10.0.2.15",
            "ip=10.0.2.15/33",
            "ip=10.0.2.15/0",
            "ip=10.0.2/24",
            "ip=10.0.2.15/24 gw=x",
        ] {
            assert_eq!(AddrConfig::from_cmdline(bad), Err(BadAddr), "{bad}");
        }
    }
}
