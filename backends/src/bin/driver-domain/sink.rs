//! `uplink_sink=PORT`: the driver domain itself receives one TCP stream from
//! the host straight off virtio-net — no switch, no netback, no guest — with
//! smoltcp on the NIC, at the address the scenario's `net = { ip = … }` gives
//! it (`ip=A.B.C.D/N` on its command line), and its NIC's MAC. `bench net`
//! runs it (`scenarios/bench-net-uplink.toml`) to put QEMU's own limit on the
//! host-to-guest path (slirp → virtio-net → a sink) next to the figure through
//! the switch and a guest's vif.
//!
//! It prints what `net-guest`'s `role=sink bench windows=N` prints for the
//! host client: `net: sink listening on TCP port P` once listening; with
//! `windows=N [window_ms=MS]` on its command line, one `bench net window n=K
//! bytes=B ticks=T freq=HZ` line per window of at least `MS` (default 250) ms
//! of its counter, back to back from the first byte, then `stop` to the peer
//! on the same connection; and after the peer's FIN `bench net rx bytes=N
//! checksum=HEX ticks=T freq=HZ frames=N notify=0 complete=yes|no windows=N`
//! (the FNV-1a 64 of every byte, windows and the rest; counter ticks from
//! the connection's establishment to the FIN), then the driver domain powers
//! off.

extern crate alloc;

use core::cell::RefCell;
use core::net::Ipv4Addr;
use core::sync::atomic::{AtomicBool, Ordering};

use alloc::vec;
use alloc::vec::Vec;
use parapet_abi::netif::FRAME_MAX;
use parapet_guest::wait::{self, WaitError};
use parapet_guest::{cmdline, println, time};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};
use zerocopy::IntoBytes;

use crate::nic::Nic;

/// The NIC as a smoltcp device: frames go straight between the virtio
/// buffers and smoltcp.
struct Uplink(RefCell<Nic>);

struct UpRx<'a>(&'a RefCell<Nic>);
struct UpTx<'a>(&'a RefCell<Nic>);

impl phy::RxToken for UpRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        // smoltcp may transmit (through the NIC) while it looks at the frame, so
        // the frame is copied out of the virtio buffer first (one copy, as
        // netback's into a guest's buffer), at the same alignment modulo 8.
        let mut words = [0u64; FRAME_MAX.div_ceil(8) + 1];
        let buf = words.as_mut_bytes();
        let got = self.0.borrow_mut().receive_one(|frame| {
            let at = frame.as_ptr() as usize % 8;
            buf[at..at + frame.len()].copy_from_slice(frame);
            (at, frame.len())
        });
        let (at, n) = got.unwrap_or((0, 0));
        f(&buf[at..at + n])
    }
}

impl phy::TxToken for UpTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut f = Some(f);
        let mut out = None;
        if len <= FRAME_MAX {
            self.0.borrow_mut().send_with(len, |buf| {
                out = f.take().map(|f| f(buf));
            });
        }
        // No transmit buffer (counted by the NIC) or too long: built, dropped.
        match (out, f) {
            (Some(r), _) => r,
            (None, Some(f)) => f(&mut vec![0u8; len]),
            (None, None) => unreachable!(),
        }
    }
}

impl Device for Uplink {
    type RxToken<'a> = UpRx<'a>;
    type TxToken<'a> = UpTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(UpRx<'_>, UpTx<'_>)> {
        let ready = self.0.get_mut().has_rx();
        ready.then_some((UpRx(&self.0), UpTx(&self.0)))
    }

    fn transmit(&mut self, _: Instant) -> Option<UpTx<'_>> {
        Some(UpTx(&self.0))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME_MAX;
        caps
    }
}

fn now() -> Instant {
    let f = time::frequency().max(1) as u128;
    Instant::from_micros((time::now() as u128 * 1_000_000 / f) as i64)
}

/// FNV-1a, 64 bits, continued from `h` (as net-guest computes it).
fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `ip=A.B.C.D/N` from the command line.
fn address(cmd: &str) -> Option<Ipv4Cidr> {
    let (a, p) = cmdline::get(cmd, "ip")?.split_once('/')?;
    let addr: Ipv4Addr = a.parse().ok()?;
    let prefix: u8 = p.parse().ok().filter(|p| (1..=32).contains(p))?;
    Some(Ipv4Cidr::new(addr, prefix))
}

/// The port of `uplink_sink=PORT` on the command line, if there is one.
pub fn requested(cmd: &str) -> Option<&str> {
    cmdline::get(cmd, "uplink_sink")
}

/// Runs the sink on `nic` (see the module docs); the driver domain's exit
/// code. `irq` is set by the NIC's interrupt handler.
pub fn run(nic: Nic, cmd: &str, port: &str, irq: &AtomicBool) -> i32 {
    let (Some(cidr), Ok(port)) = (address(cmd), port.parse::<u16>()) else {
        println!("uplink sink: needs uplink_sink=PORT and ip=A.B.C.D/N (the scenario's net.ip)");
        return 2;
    };
    let mac = nic.mac;
    let has_irq = nic.has_irq();
    let mut dev = Uplink(RefCell::new(nic));
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(EthernetAddress(mac))),
        &mut dev,
        now(),
    );
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::Ipv4(cidr));
    });
    let mut sock = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        tcp::SocketBuffer::new(vec![0; 4096]),
    );
    if sock.listen(port).is_err() {
        println!("uplink sink: cannot listen on port {port}");
        return 1;
    }
    let num = |key: &str, default: u64| {
        cmdline::get(cmd, key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let want = num("windows", 0);
    // Rounded up: a window is never a fraction of a tick short.
    let window_ticks = (time::frequency() * num("window_ms", 250).clamp(1, 60_000)).div_ceil(1000);
    // Windows printed; the current one's start (`None`: no byte yet) and the
    // byte count then; `stop` sent.
    let (mut n, mut w_start, mut w_from, mut stopped) = (0u64, None::<u64>, 0u64, false);
    let mut sockets = SocketSet::new(Vec::new());
    let h = sockets.add(sock);
    println!("net: sink listening on TCP port {port} (the driver domain, on the uplink at {cidr})");
    let (mut bytes, mut sum, mut start, mut open, mut end) =
        (0u64, 0xcbf2_9ce4_8422_2325, 0, false, 0);
    let limit = time::deadline_after(time::Duration::from_secs(600));
    let done = loop {
        iface.poll(now(), &mut dev, &mut sockets);
        let s = sockets.get_mut::<tcp::Socket>(h);
        if s.may_recv() && !open {
            open = true;
            start = time::now();
        }
        while s.can_recv() {
            match s.recv(|d| {
                sum = fnv(sum, d);
                (d.len(), d.len())
            }) {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes += n as u64,
            }
        }
        if n < want && bytes > 0 {
            let t = time::now();
            match w_start {
                None => (w_start, w_from) = (Some(t), bytes),
                Some(at) if t.saturating_sub(at) >= window_ticks => {
                    println!(
                        "bench net window n={n} bytes={} ticks={} freq={}",
                        bytes - w_from,
                        t - at,
                        time::frequency()
                    );
                    n += 1;
                    (w_start, w_from) = (Some(t), bytes);
                }
                Some(_) => {}
            }
        }
        if want > 0 && n >= want && !stopped && s.may_send() {
            stopped = s.send_slice(b"stop").is_ok_and(|k| k == 4);
        }
        if open && !s.may_recv() {
            if end == 0 {
                end = time::now();
                s.close();
            }
            if !s.is_open() {
                break true;
            }
        }
        if time::now() >= limit {
            break false;
        }
        // Sleep until the NIC interrupts or smoltcp's next timer (at most 10 ms;
        // 1 ms when the NIC has no interrupt).
        let cap = time::Duration::from_millis(if has_irq { 10 } else { 1 });
        let delay = iface.poll_delay(now(), &sockets).map_or(cap, |d| {
            time::Duration::from_micros(d.total_micros()).min(cap)
        });
        let deadline = time::deadline_after(delay);
        match wait::wait_until(Some(deadline), || irq.load(Ordering::SeqCst).then_some(())) {
            Ok(()) | Err(WaitError::TimedOut) => {}
            Err(WaitError::Hv(e)) => {
                println!("uplink sink: wait failed: {e}");
                return 1;
            }
        }
        if irq.swap(false, Ordering::SeqCst) {
            dev.0.get_mut().ack_irq();
        }
    };
    let ticks = end.max(start).saturating_sub(start);
    let st = dev.0.get_mut().stats;
    println!(
        "bench net rx bytes={bytes} checksum={sum:016x} ticks={ticks} freq={} frames={} notify=0 complete={} windows={n}",
        time::frequency(),
        st.rx_frames,
        if done { "yes" } else { "no" }
    );
    i32::from(!done)
}
