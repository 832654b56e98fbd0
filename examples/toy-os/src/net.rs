//! The network: `net ping IP` and `net get URL` for the shell, and a small
//! HTTP server for the peer mode. smoltcp over the vif (netfront), served
//! by the driver domain's netback and switch.
//!
//! The stack is one [`NetStack`] behind a [`Mutex`]: each command runs in a
//! thread of its own that takes the mutex (a second command waits for the
//! first, asleep), connects the vif on first use, and waits in the
//! frontend's calls, which park only that thread (see [`crate::hook`]).

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::net::Ipv4Addr;

use parapet_frontends::vif::{buffer, AddrConfig, NetStack, Vif, VifError};
use parapet_guest::event::DomId;
use parapet_guest::{println, time};
use smoltcp::socket::{icmp, tcp};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};

use crate::sync::Mutex;

/// Stack for a network thread: the vif needs about 8 KiB (docs/PORTING.md
/// lists each frontend's measured needs); the rest is room for our frames
/// and for the interrupt path (a tick or an upcall lands on this stack).
pub const STACK: usize = 32 * 1024;

static NET: Mutex<Option<NetStack>> = Mutex::new(None);
static CONFIG: spin::Once<(DomId, AddrConfig)> = spin::Once::new();

/// Records where the vif comes from and its address (`ip=`, `gw=` of the
/// command line); it is connected on first use.
pub fn configure(backend: DomId, addr: AddrConfig) {
    CONFIG.call_once(|| (backend, addr));
}

/// Runs `f` on the stack, connecting the vif first if needed.
fn with_stack<R>(f: impl FnOnce(&mut NetStack) -> Result<R, VifError>) -> Result<R, VifError> {
    let mut net = NET.lock();
    if net.is_none() {
        let &(backend, addr) = CONFIG.get().ok_or(VifError::Disconnected)?;
        let vif = Vif::connect(backend, "vif0")?;
        let stack = NetStack::new(vif, addr);
        if let Some(a) = stack.addr() {
            println!("net: vif0 connected, address {a}");
        }
        *net = Some(stack);
    }
    match net.as_mut() {
        Some(stack) => f(stack),
        None => Err(VifError::Disconnected),
    }
}

/// Times a network command waited for another one to finish with the stack.
pub fn waits() -> u64 {
    NET.contended()
}

fn deadline_ms(ms: u64) -> Option<u64> {
    Some(time::deadline_after(time::Duration::from_millis(ms)))
}

fn ms_since(t: u64) -> u64 {
    time::since(t).as_millis() as u64
}

/// `net ping IP`: up to 4 ICMP echoes, one reply is enough.
pub fn ping(peer: Ipv4Addr) {
    let r = with_stack(|net| {
        let mut sock = icmp::Socket::new(
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], buffer(1024)),
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], buffer(1024)),
        );
        let ident = 0x7059;
        let _ = sock.bind(icmp::Endpoint::Ident(ident));
        let h = net.sockets.add(sock);
        let mut answer = None;
        for seq in 0..4u16 {
            let repr = Icmpv4Repr::EchoRequest {
                ident,
                seq_no: seq,
                data: b"toy-os ping",
            };
            let s = net.sockets.get_mut::<icmp::Socket>(h);
            if let Ok(buf) = s.send(repr.buffer_len(), IpAddress::Ipv4(peer)) {
                repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &Default::default());
            }
            let sent = time::now();
            let got = net.run_until(deadline_ms(1000), |net| {
                let s = net.sockets.get_mut::<icmp::Socket>(h);
                while let Ok((data, _)) = s.recv() {
                    let reply = Icmpv4Packet::new_checked(data)
                        .ok()
                        .and_then(|p| Icmpv4Repr::parse(&p, &Default::default()).ok());
                    if matches!(reply, Some(Icmpv4Repr::EchoReply { ident: i, .. }) if i == ident) {
                        return true;
                    }
                }
                false
            })?;
            if got {
                answer = Some((seq, ms_since(sent)));
                break;
            }
        }
        net.sockets.remove(h);
        Ok(answer)
    });
    match r {
        Ok(Some((seq, ms))) => println!("net ping {peer}: reply to echo {seq} in {ms} ms"),
        Ok(None) => println!("net ping {peer}: no reply"),
        Err(e) => println!("net ping {peer}: {e}"),
    }
}

/// `http://A.B.C.D[:PORT][/path]` → address, port, path.
fn parse_url(url: &str) -> Option<(Ipv4Addr, u16, &str)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let (ip, port) = match host.split_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (host, 80),
    };
    Some((ip.parse().ok()?, port, path))
}

fn tcp_socket(size: usize) -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(buffer(size)),
        tcp::SocketBuffer::new(buffer(size)),
    )
}

/// A local port for each fetch, so that a new one never meets the old one's
/// TIME-WAIT at the server.
static NEXT_PORT: core::sync::atomic::AtomicU16 = core::sync::atomic::AtomicU16::new(49200);

/// `net get URL`: one HTTP/1.0 GET; prints the status and the page's text.
pub fn get(url: &str) {
    let Some((ip, port, path)) = parse_url(url) else {
        println!("net get: cannot parse {url:?} (want http://A.B.C.D[:PORT]/path)");
        return;
    };
    let start = time::now();
    let r = with_stack(|net| {
        let h = net.sockets.add(tcp_socket(16 * 1024));
        let local = NEXT_PORT.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        let cx = net.iface.context();
        let s = net.sockets.get_mut::<tcp::Socket>(h);
        if s.connect(cx, (IpAddress::Ipv4(ip), port), local).is_err() {
            net.sockets.remove(h);
            return Ok(None);
        }
        let (mut sent, mut page) = (false, Vec::new());
        let done = net.run_until(deadline_ms(10_000), |net| {
            let s = net.sockets.get_mut::<tcp::Socket>(h);
            if s.may_send() && !sent {
                let mut req = String::new();
                let _ = write!(req, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n");
                sent = s.send_slice(req.as_bytes()).is_ok();
            }
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = s.recv_slice(&mut buf) {
                page.extend_from_slice(&buf[..n]);
            }
            if sent && !s.may_recv() {
                s.close();
                return true;
            }
            sent && !s.is_open()
        })?;
        net.sockets.get_mut::<tcp::Socket>(h).abort();
        let _ = net.poll();
        net.sockets.remove(h);
        Ok(done.then_some(page))
    });
    let page = match r {
        Ok(Some(p)) => p,
        Ok(None) => return println!("net get {url}: no answer"),
        Err(e) => return println!("net get {url}: {e}"),
    };
    let text = String::from_utf8_lossy(&page);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    println!(
        "net get {url}: {} ({} bytes in {} ms)",
        head.lines().next().unwrap_or("no status line"),
        page.len(),
        ms_since(start)
    );
    for line in body.lines().filter(|l| !l.trim().is_empty()).take(12) {
        println!("  | {}", line.trim_end());
    }
}

/// The peer mode's web server: a plain-text page on port 80, forever.
pub fn httpd(name: &str) {
    const SOCKETS: usize = 2;
    let boot = time::now();
    let r = with_stack(|net| {
        let handles: Vec<_> = (0..SOCKETS)
            .map(|_| net.sockets.add(tcp_socket(4096)))
            .collect();
        let mut served = 0u64;
        let mut answered = [false; SOCKETS];
        println!("httpd: serving on port 80");
        net.run_until(None, |net| {
            for (k, &h) in handles.iter().enumerate() {
                let s = net.sockets.get_mut::<tcp::Socket>(h);
                if !s.is_open() {
                    answered[k] = false;
                    let _ = s.listen(80);
                    continue;
                }
                let mut req = [0u8; 512];
                let got = s.recv_slice(&mut req).unwrap_or(0);
                if got > 0 && !answered[k] && s.can_send() {
                    answered[k] = true;
                    served += 1;
                    let mut body = String::new();
                    let _ = write!(
                        body,
                        "hello from {name}, a toy-os thread serving HTTP\n\
                         request {served}, uptime {} ms\n",
                        ms_since(boot)
                    );
                    let mut reply = String::new();
                    let _ = write!(
                        reply,
                        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.send_slice(reply.as_bytes());
                    s.close();
                    println!("httpd: request {served} answered");
                }
            }
            false
        })
    });
    if let Err(e) = r {
        println!("httpd: {e}");
    }
}
