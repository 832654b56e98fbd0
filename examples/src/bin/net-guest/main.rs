//! A guest on the virtual network (`vif0`, served by the driver domain's
//! netback and switch), running smoltcp over netfront. Its address comes
//! from the command line `parapet` writes from the scenario (`ip=A.B.C.D/N
//! gw=…`, or `ip=dhcp`). What it does is chosen with `role=`:
//!
//! * `role=sink [port=5001] [windows=N [window_ms=MS]]`: accepts one TCP
//!   connection and counts and checksums what arrives until the peer closes;
//!   also answers UDP echo on port 7. Prints the byte count and checksum.
//!   With `windows=N` it also times `N` windows of at least `MS` (default
//!   250) ms of its counter each, back to back from the first byte, each
//!   ending at the first poll after `MS`; after the last one it sends the
//!   peer `stop` on the same connection and goes on reading (and
//!   checksumming) until the peer closes.
//! * `role=source peer=A.B.C.D [port=5001] [bytes=N|unlimited]
//!   [stop_port=P]`: pings the peer (ICMP echo), sends it a UDP datagram to
//!   echo, then sends `N` bytes (default 4 MiB; `unlimited`: until stopped)
//!   of a pattern over TCP and prints their checksum and the throughput.
//!   Anything the peer sends on the connection (a windowed sink's `stop`)
//!   ends the stream at once, after what was sent. With `stop_port`, it
//!   also listens on TCP port `P`, and a connection there ends the stream
//!   the same way: a test that forwards a host port to `P` decides when a
//!   long stream ends.
//!
//!   Both also take `sockbuf=BYTES` (the TCP socket's receive and send
//!   buffers, default 65536: a window much larger overflows the 64 receive
//!   buffers netback fills, see `docs/drivers.md`) and `bench`, which adds
//!   one line for `cargo parapet bench net` after the closing line, with the
//!   exact counter ticks:
//!   `bench net rx|tx bytes=N checksum=HEX ticks=T freq=HZ frames=N
//!   notify=N complete=yes|no` (`frames`: frames the guest received for rx,
//!   sent for tx; `notify`: notifications it sent the backend; the sink's
//!   also `windows=N`, the window lines it printed). A windowed sink prints
//!   one `bench net window n=K bytes=B ticks=T freq=HZ` line per window as it
//!   ends (`B` bytes arrived in the window's `T` ticks).
//! * `role=http [disk [boots]] [quit]`: a small HTTP server on port 80 whose
//!   page shows live numbers: uptime, requests and bytes served, and a visit
//!   counter kept on its virtual disk `vbd0` (with `disk`), so it survives
//!   reboots (written when the server is idle, and under load at most once
//!   a second). A pool of 40 listening sockets, each put back to listening
//!   as soon as its connection ends, takes 16 clients that connect at once.
//!   With `boots` it also counts its starts in sector 1 of the disk
//!   (read, add one, write, flush: `http: boot N recorded on vbd0`), which
//!   shows that each new instance reaches the disk and finds what the last
//!   one wrote. It serves forever, or (with `quit`, for tests) until it has
//!   answered a request for `/quit`.
//! * `role=fetch url=http://A.B.C.D[:PORT]/ [count=N] [interval_ms=MS]
//!   [ping=A.B.C.D] [quit]`: (pings an address first, then) fetches the page
//!   `N` times and prints it; with `quit`, then asks the server for `/quit`.
//! * `role=hostile`: plays a hostile frontend. It posts malformed TX requests
//!   (a buffer id out of range, frames too short and too long, unknown flags)
//!   and a flood of them, and must be disconnected by netback; it connects
//!   again, corrupts its TX ring's producer index, and must be disconnected
//!   again — while the other guests' traffic goes on.
//!
//! Every role prints one closing line and powers off with 0 on success
//! (`http` only with `quit`). All of them ride out a restart of the
//! driver domain: the vif (and disk) reconnect by themselves.
//!
//! Files: `main.rs` holds the start (`main`: the command line, the vif, the
//! role) and the shared helpers; `stream` the `sink` and `source` roles
//! (with ping and UDP echo), `http` the server, `fetch` the client,
//! `hostile` the hostile frontend.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("net-guest is a bare-metal image: build it with `cargo parapet build`");
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod fetch;
#[cfg(target_os = "none")]
mod hostile;
#[cfg(target_os = "none")]
mod http;
#[cfg(target_os = "none")]
mod stream;

#[cfg(target_os = "none")]
mod guest {

    use crate::fetch::{fetch, quit_server};
    use crate::hostile::hostile;
    use crate::http::{http, Visits};
    use crate::stream::{ping, sink, source, Stream};

    use parapet_frontends::vif::{buffer, AddrConfig, NetStack, Vif};

    use parapet_guest::abi::{MacAddr, StartInfo};
    use parapet_guest::{cmdline, println, store, time};
    use smoltcp::socket::tcp;

    parapet_guest::entry!(main);

    /// Byte `i` of the TCP test stream.
    pub(crate) fn pattern(i: u64) -> u8 {
        (i.wrapping_mul(7) ^ (i >> 11)) as u8
    }

    /// FNV-1a, 64 bits, continued from `h`.
    pub(crate) fn fnv(mut h: u64, data: &[u8]) -> u64 {
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
    pub(crate) const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

    static BOOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

    /// The counter when this guest started.
    pub(crate) fn boot() -> u64 {
        BOOT.load(core::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn secs(ticks: u64) -> f64 {
        ticks as f64 / time::frequency().max(1) as f64
    }

    pub(crate) fn tcp_socket(size: usize) -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(buffer(size)),
            tcp::SocketBuffer::new(buffer(size)),
        )
    }

    pub(crate) fn deadline(s: u64) -> Option<u64> {
        Some(time::deadline_after(time::Duration::from_secs(s)))
    }

    fn main(info: &StartInfo) -> i32 {
        BOOT.store(time::now(), core::sync::atomic::Ordering::Relaxed);
        let cmd = info.cmdline();
        let name = info.name();
        let backend_name = cmdline::get(cmd, "backend").unwrap_or("driver");
        let backend = match store::lookup(backend_name) {
            Ok(d) => d,
            Err(e) => {
                println!("net: no backend domain {backend_name}: {e}");
                return 2;
            }
        };
        let addr = match AddrConfig::from_cmdline(cmd) {
            Ok(a) => a,
            Err(e) => {
                println!("net: {e}");
                return 2;
            }
        };
        let role = cmdline::get(cmd, "role").unwrap_or("sink");
        // The visit counter's disk first: its handshake does not need the net.
        let visits = (role == "http").then(|| {
            Visits::open(
                cmdline::has(cmd, "disk"),
                cmdline::has(cmd, "boots"),
                backend,
            )
        });
        let vif = match Vif::connect(backend, "vif0") {
            Ok(v) => v,
            Err(e) => {
                println!("net: cannot connect vif0: {e}");
                return 1;
            }
        };
        if role == "hostile" {
            return match hostile(vif, backend) {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(e) => {
                    println!("net: hostile: {e}");
                    1
                }
            };
        }
        println!("net: vif0 connected, MAC {}", MacAddr(vif.mac()));
        let mut net = NetStack::new(vif, addr);
        if addr == AddrConfig::Dhcp {
            match net.run_until(deadline(30), |n| n.addr().is_some()) {
                Ok(true) => {}
                _ => {
                    println!("net: no DHCP lease after 30 s");
                    return 1;
                }
            }
        }
        if let Some(a) = net.addr() {
            println!("net: address {a}");
        }
        let port = cmdline::get(cmd, "port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(5001);
        let stream = Stream {
            port,
            sockbuf: cmdline::get(cmd, "sockbuf")
                .and_then(|b| b.parse().ok())
                .filter(|&b| b >= 1024)
                .unwrap_or(64 * 1024),
            bench: cmdline::has(cmd, "bench"),
            stop_port: cmdline::get(cmd, "stop_port").and_then(|p| p.parse().ok()),
            windows: cmdline::get(cmd, "windows")
                .and_then(|w| w.parse().ok())
                .unwrap_or(0),
            // Rounded up: a window is never a fraction of a tick short.
            window_ticks: (time::frequency()
                * cmdline::get(cmd, "window_ms")
                    .and_then(|w| w.parse::<u64>().ok())
                    .unwrap_or(250)
                    .clamp(1, 60_000))
            .div_ceil(1000),
        };
        let result = match role {
            "sink" => sink(&mut net, stream),
            "source" => {
                let Some(peer) = cmdline::get(cmd, "peer").and_then(|p| p.parse().ok()) else {
                    println!("net: role=source needs peer=A.B.C.D");
                    return 2;
                };
                let bytes = match cmdline::get(cmd, "bytes") {
                    Some("unlimited") => u64::MAX,
                    b => b.and_then(|b| b.parse().ok()).unwrap_or(4 << 20),
                };
                source(&mut net, peer, stream, bytes)
            }
            "http" => http(
                &mut net,
                name,
                visits.unwrap_or(Visits {
                    disk: None,
                    count: 0,
                    stored: 0,
                    stored_at: 0,
                }),
                cmdline::has(cmd, "quit"),
            ),
            "fetch" => {
                if let Some(to) = cmdline::get(cmd, "ping").and_then(|p| p.parse().ok()) {
                    match ping(&mut net, to) {
                        Ok(Some(ms)) => println!("net: ping {to}: reply in {ms:.1} ms"),
                        _ => println!("net: ping {to}: no reply"),
                    }
                }
                let url = cmdline::get(cmd, "url").unwrap_or("http://10.0.2.15/");
                let count = cmdline::get(cmd, "count")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(3);
                let interval = cmdline::get(cmd, "interval_ms")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1000);
                fetch(&mut net, url, count, interval).and_then(|ok| {
                    Ok(if cmdline::has(cmd, "quit") {
                        quit_server(&mut net, url)? && ok
                    } else {
                        ok
                    })
                })
            }
            other => {
                println!("net: unknown role={other} (sink, source, http, fetch)");
                return 2;
            }
        };
        match result {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                println!("net: {e}");
                1
            }
        }
    }
}
