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
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("net-guest is a bare-metal image: build it with `cargo parapet build`");
}

#[cfg(target_os = "none")]
mod guest {
    extern crate alloc;

    use alloc::string::String;
    use alloc::vec;
    use core::fmt::Write as _;
    use core::net::Ipv4Addr;

    use parapet_frontends::blkfront::Blkfront;
    use parapet_frontends::vif::{buffer, AddrConfig, NetStack, Vif, VifError};
    use parapet_guest::abi::netif::{TxRequest, NET_BUFS};
    use parapet_guest::abi::xenbus::XenbusState;
    use parapet_guest::abi::{MacAddr, StartInfo};
    use parapet_guest::{cmdline, println, store, time};
    use smoltcp::socket::{icmp, tcp, udp};
    use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress, IpEndpoint};

    parapet_guest::entry!(main);

    /// Byte `i` of the TCP test stream.
    fn pattern(i: u64) -> u8 {
        (i.wrapping_mul(7) ^ (i >> 11)) as u8
    }

    /// FNV-1a, 64 bits, continued from `h`.
    fn fnv(mut h: u64, data: &[u8]) -> u64 {
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
    const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

    static BOOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

    /// The counter when this guest started.
    fn boot() -> u64 {
        BOOT.load(core::sync::atomic::Ordering::Relaxed)
    }

    fn secs(ticks: u64) -> f64 {
        ticks as f64 / time::frequency().max(1) as f64
    }

    fn tcp_socket(size: usize) -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(buffer(size)),
            tcp::SocketBuffer::new(buffer(size)),
        )
    }

    fn deadline(s: u64) -> Option<u64> {
        Some(time::deadline_after(time::Duration::from_secs(s)))
    }

    /// Options of the `sink` and `source` roles.
    #[derive(Clone, Copy)]
    struct Stream {
        port: u16,
        /// TCP socket buffer size (each way).
        sockbuf: usize,
        /// Print the `bench net …` line.
        bench: bool,
        /// `source`: a connection to this port ends the stream.
        stop_port: Option<u16>,
        /// `sink`: windows to time (0: none).
        windows: u64,
        /// `sink`: the least length of a window, counter ticks.
        window_ticks: u64,
    }

    /// A windowed sink's timing (see the module docs).
    struct Windows {
        /// Windows wanted.
        want: u64,
        /// Windows printed.
        n: u64,
        /// The least length of a window, ticks.
        len: u64,
        /// When the current window started (`None`: no byte yet).
        start: Option<u64>,
        /// The stream's byte count when it started.
        from: u64,
        /// `stop` is in the socket's send buffer.
        stopped: bool,
    }

    impl Windows {
        /// After receiving: ends the current window if it is long enough.
        fn tick(&mut self, bytes: u64) {
            if self.n >= self.want || bytes == 0 {
                return;
            }
            let now = time::now();
            let Some(start) = self.start else {
                // The first byte(s): the first window starts now.
                self.start = Some(now);
                self.from = bytes;
                return;
            };
            let ticks = now.saturating_sub(start);
            if ticks >= self.len {
                println!(
                    "bench net window n={} bytes={} ticks={ticks} freq={}",
                    self.n,
                    bytes - self.from,
                    time::frequency()
                );
                self.n += 1;
                self.start = Some(now);
                self.from = bytes;
            }
        }

        /// All windows done and `stop` not yet sent.
        fn stop_due(&self) -> bool {
            self.want > 0 && self.n >= self.want && !self.stopped
        }
    }

    /// The `bench net rx|tx …` line (see the module docs).
    fn bench_line(
        dir: &str,
        bytes: u64,
        sum: u64,
        ticks: u64,
        (frames, notify): (u64, u64),
        done: bool,
        windows: Option<u64>,
    ) {
        let mut w = String::new();
        if let Some(n) = windows {
            let _ = write!(w, " windows={n}");
        }
        println!(
            "bench net {dir} bytes={bytes} checksum={sum:016x} ticks={ticks} freq={} frames={frames} notify={notify} complete={}{w}",
            time::frequency(),
            if done { "yes" } else { "no" }
        );
    }

    fn sink(net: &mut NetStack, opts: Stream) -> Result<bool, VifError> {
        let port = opts.port;
        let mut sock = tcp_socket(opts.sockbuf);
        if sock.listen(port).is_err() {
            println!("net: cannot listen on port {port}");
            return Ok(false);
        }
        let tcp_h = net.sockets.add(sock);
        let mut udp_sock = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], buffer(4096)),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], buffer(4096)),
        );
        let _ = udp_sock.bind(7);
        let udp_h = net.sockets.add(udp_sock);
        println!("net: sink listening on TCP port {port}, UDP echo on port 7");
        let (mut bytes, mut sum, mut start, mut seen_open) = (0u64, FNV_START, 0u64, false);
        let mut win = Windows {
            want: opts.windows,
            n: 0,
            len: opts.window_ticks,
            start: None,
            from: 0,
            stopped: false,
        };
        let done = net.run_until(deadline(600), |net| {
            // UDP echo.
            let u = net.sockets.get_mut::<udp::Socket>(udp_h);
            let mut dgram = [0u8; 512];
            while let Ok((n, meta)) = u.recv_slice(&mut dgram) {
                let _ = u.send_slice(&dgram[..n], meta.endpoint);
            }
            let s = net.sockets.get_mut::<tcp::Socket>(tcp_h);
            if s.may_recv() && !seen_open {
                seen_open = true;
                start = time::now();
            }
            // Checksummed in place in the socket's buffer (no copy out).
            while s.can_recv() {
                let got = s.recv(|data| {
                    sum = fnv(sum, data);
                    (data.len(), data.len())
                });
                match got {
                    Ok(0) | Err(_) => break,
                    Ok(n) => bytes += n as u64,
                }
            }
            win.tick(bytes);
            if win.stop_due() && s.may_send() {
                win.stopped = s.send_slice(b"stop").is_ok_and(|n| n == 4);
            }
            if seen_open && !s.may_recv() {
                s.close();
                return true;
            }
            false
        })?;
        let ticks = time::now().saturating_sub(start);
        let t = secs(ticks);
        // Let the FIN/ACK go out.
        let _ = net.run_until(deadline(2), |net| {
            !net.sockets.get::<tcp::Socket>(tcp_h).is_open()
        });
        let st = net.vif.stats();
        println!(
            "net: sink stats: {} frames in, {} out, {} tx dropped, {} rx errors, {} notifications",
            st.rx_frames, st.tx_frames, st.tx_dropped, st.rx_errors, st.notifications
        );
        println!(
            "net: sink received {bytes} bytes, checksum {sum:016x}, in {:.2} s ({:.0} KiB/s){}",
            t,
            bytes as f64 / 1024.0 / t.max(1e-9),
            if done { "" } else { " (timed out)" }
        );
        if opts.bench {
            bench_line(
                "rx",
                bytes,
                sum,
                ticks,
                (st.rx_frames, st.notifications),
                done,
                Some(win.n),
            );
        }
        Ok(done)
    }

    /// Pings `peer` once; the round trip in ms.
    fn ping(net: &mut NetStack, peer: Ipv4Addr) -> Result<Option<f64>, VifError> {
        let mut sock = icmp::Socket::new(
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], buffer(1024)),
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], buffer(1024)),
        );
        let ident = 0x5052;
        let _ = sock.bind(icmp::Endpoint::Ident(ident));
        let h = net.sockets.add(sock);
        let payload = b"parapet ping";
        let mut sent_at = None;
        let mut rtt = None;
        for seq in 0..10u16 {
            let s = net.sockets.get_mut::<icmp::Socket>(h);
            let repr = Icmpv4Repr::EchoRequest {
                ident,
                seq_no: seq,
                data: payload,
            };
            if let Ok(buf) = s.send(repr.buffer_len(), IpAddress::Ipv4(peer)) {
                let mut pkt = Icmpv4Packet::new_unchecked(buf);
                repr.emit(&mut pkt, &Default::default());
                sent_at = Some(time::now());
            }
            let got = net.run_until(
                Some(time::deadline_after(time::Duration::from_millis(500))),
                |net| {
                    let s = net.sockets.get_mut::<icmp::Socket>(h);
                    while let Ok((data, _)) = s.recv() {
                        if let Ok(pkt) = Icmpv4Packet::new_checked(data) {
                            if let Ok(Icmpv4Repr::EchoReply { ident: i, .. }) =
                                Icmpv4Repr::parse(&pkt, &Default::default())
                            {
                                if i == ident {
                                    return true;
                                }
                            }
                        }
                    }
                    false
                },
            )?;
            if got {
                rtt = sent_at.map(|t| secs(time::now().saturating_sub(t)) * 1000.0);
                break;
            }
        }
        net.sockets.remove(h);
        Ok(rtt)
    }

    /// Sends a datagram to the peer's UDP echo port and waits for it back.
    fn udp_echo(net: &mut NetStack, peer: Ipv4Addr) -> Result<bool, VifError> {
        let mut sock = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], buffer(2048)),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], buffer(2048)),
        );
        let _ = sock.bind(40007);
        let h = net.sockets.add(sock);
        let msg = b"parapet udp echo";
        let to = IpEndpoint::new(IpAddress::Ipv4(peer), 7);
        for _ in 0..10 {
            let _ = net.sockets.get_mut::<udp::Socket>(h).send_slice(msg, to);
            let got = net.run_until(
                Some(time::deadline_after(time::Duration::from_millis(500))),
                |net| {
                    let mut buf = [0u8; 64];
                    matches!(
                        net.sockets.get_mut::<udp::Socket>(h).recv_slice(&mut buf),
                        Ok((n, _)) if &buf[..n] == msg
                    )
                },
            )?;
            if got {
                net.sockets.remove(h);
                return Ok(true);
            }
        }
        net.sockets.remove(h);
        Ok(false)
    }

    fn source(
        net: &mut NetStack,
        peer: Ipv4Addr,
        opts: Stream,
        mut total: u64,
    ) -> Result<bool, VifError> {
        let port = opts.port;
        let stop = opts.stop_port.map(|p| {
            let mut s = tcp_socket(1024);
            let _ = s.listen(p);
            (p, net.sockets.add(s))
        });
        match ping(net, peer)? {
            Some(ms) => println!("net: ping {peer}: reply in {ms:.1} ms"),
            None => println!("net: ping {peer}: no reply"),
        }
        let echoed = udp_echo(net, peer)?;
        println!(
            "net: udp echo via {peer}:7: {}",
            if echoed { "ok" } else { "no answer" }
        );
        let h = net.sockets.add(tcp_socket(opts.sockbuf));
        let mut connected = false;
        for attempt in 0..20 {
            let cx = net.iface.context();
            let s = net.sockets.get_mut::<tcp::Socket>(h);
            s.abort();
            if s.connect(cx, (IpAddress::Ipv4(peer), port), 49152 + attempt)
                .is_err()
            {
                break;
            }
            connected = net.run_until(deadline(3), |net| {
                let s = net.sockets.get::<tcp::Socket>(h);
                s.may_send() || !s.is_open()
            })? && net.sockets.get::<tcp::Socket>(h).may_send();
            if connected {
                break;
            }
            time::sleep(time::Duration::from_millis(200)).ok();
        }
        if !connected {
            println!("net: cannot connect to {peer}:{port}");
            return Ok(false);
        }
        let start = time::now();
        let (mut sent, mut sum) = (0u64, FNV_START);
        let done = net.run_until(deadline(600), |net| {
            if let Some((p, stop_h)) = stop {
                if sent < total && net.sockets.get::<tcp::Socket>(stop_h).is_active() {
                    total = sent;
                    println!(
                        "net: source: a connection to port {p}: ending the stream at {sent} bytes"
                    );
                }
            }
            let s = net.sockets.get_mut::<tcp::Socket>(h);
            // Anything from the peer (a windowed sink's `stop`) ends the stream.
            if s.can_recv() {
                let _ = s.recv(|d| (d.len(), ()));
                if sent < total {
                    total = sent;
                    println!("net: source: the peer said stop: ending the stream at {sent} bytes");
                }
            }
            // The pattern is written straight into the socket's free space
            // (no staging copy, and no more of it than fits).
            while sent < total && s.can_send() {
                let put = s.send(|space| {
                    let n = (total - sent).min(space.len() as u64) as usize;
                    for (k, b) in space[..n].iter_mut().enumerate() {
                        *b = pattern(sent + k as u64);
                    }
                    sum = fnv(sum, &space[..n]);
                    (n, n)
                });
                match put {
                    Ok(0) | Err(_) => break,
                    Ok(m) => sent += m as u64,
                }
            }
            if sent == total {
                s.close();
            }
            // Done once everything (and our FIN) is acknowledged.
            sent == total
                && matches!(
                    s.state(),
                    tcp::State::FinWait2 | tcp::State::TimeWait | tcp::State::Closed
                )
        })?;
        let ticks = time::now().saturating_sub(start);
        let t = secs(ticks);
        let st = net.vif.stats();
        println!(
            "net: source sent {sent} bytes, checksum {sum:016x}, in {t:.2} s ({:.0} KiB/s); \
             {} frames out, {} in, {} notifications",
            sent as f64 / 1024.0 / t.max(1e-9),
            st.tx_frames,
            st.rx_frames,
            st.notifications
        );
        if opts.bench {
            bench_line(
                "tx",
                sent,
                sum,
                ticks,
                (st.tx_frames, st.notifications),
                done,
                None,
            );
        }
        Ok(done && sent == total && echoed)
    }

    /// The visit counter on the virtual disk (sector 0).
    ///
    /// Every request is counted at once in memory (`count`: the page shows
    /// it, each visit gets its own number); the disk gets the count by
    /// [`Visits::store`], which the server calls when no connection is
    /// open, or under steady load at most once per [`STORE_EVERY`]. A
    /// write and flush takes the driver domain a round trip and QEMU an
    /// `fdatasync`, during which the server does not poll; one per visit
    /// would put that on every request. The cost: a crash (or QEMU killed)
    /// under load may lose the visits of the last [`STORE_EVERY`].
    struct Visits {
        disk: Option<Blkfront>,
        count: u64,
        /// The count last written to the disk.
        stored: u64,
        /// When it was written (counter ticks).
        stored_at: u64,
    }

    /// Under load, the visit counter is written at most this often.
    const STORE_EVERY: time::Duration = time::Duration::from_secs(1);
    const MAGIC: &[u8; 8] = b"PRPTHTTP";
    const BOOTS_MAGIC: &[u8; 8] = b"PRPTBOOT";

    /// `boots`: counts this start in sector 1 of the disk.
    fn record_boot(d: &mut Blkfront) -> Result<u64, parapet_frontends::blkfront::BlkError> {
        let mut s = [0u8; 512];
        d.read(1, &mut s)?;
        let previous = if &s[..8] == BOOTS_MAGIC {
            u64::from_le_bytes(s[8..16].try_into().unwrap_or_default())
        } else {
            0
        };
        s[..8].copy_from_slice(BOOTS_MAGIC);
        s[8..16].copy_from_slice(&(previous + 1).to_le_bytes());
        d.write(1, &s)?;
        d.flush()?;
        Ok(previous + 1)
    }

    impl Visits {
        fn open(wanted: bool, boots: bool, backend: u32) -> Self {
            let mut v = Visits {
                disk: None,
                count: 0,
                stored: 0,
                stored_at: 0,
            };
            if !wanted {
                return v;
            }
            match Blkfront::connect(backend, "vbd0") {
                Ok(mut d) => {
                    let mut s = [0u8; 512];
                    if d.read(0, &mut s).is_ok() && &s[..8] == MAGIC {
                        v.count = u64::from_le_bytes(s[8..16].try_into().unwrap_or_default());
                    }
                    v.stored = v.count;
                    println!("http: visit counter on vbd0: {}", v.count);
                    if boots {
                        match record_boot(&mut d) {
                            Ok(n) => println!("http: boot {n} recorded on vbd0"),
                            Err(e) => println!("http: cannot record the boot: {e}"),
                        }
                    }
                    v.disk = Some(d);
                }
                Err(e) => println!("http: no disk ({e}): visits are not kept"),
            }
            v
        }

        /// Counts a visit (in memory; see [`Visits::store`]).
        fn bump(&mut self) {
            self.count += 1;
        }

        /// Writes the count to the disk if it changed since the last write
        /// and the server is `idle` (no connection open) or the last write
        /// is [`STORE_EVERY`] old.
        fn store(&mut self, idle: bool) {
            let due = time::now().saturating_sub(self.stored_at) >= time::ticks(STORE_EVERY);
            if self.count == self.stored || !(idle || due) {
                return;
            }
            self.stored = self.count;
            self.stored_at = time::now();
            if let Some(d) = self.disk.as_mut() {
                let mut s = [0u8; 512];
                s[..8].copy_from_slice(MAGIC);
                s[8..16].copy_from_slice(&self.count.to_le_bytes());
                // A write that failed because the backend went away (a driver
                // domain restart) is tried once more: blkfront reconnects first.
                let mut store = || d.write(0, &s).and_then(|()| d.flush());
                if let Err(e) = store().or_else(|_| store()) {
                    println!("http: cannot store the visit counter: {e}");
                }
            }
        }
    }

    /// Sockets listening on port 80. smoltcp has no accept queue: a socket
    /// in `Listen` takes one connection, and a SYN that finds none
    /// listening is answered with a reset. Each client holds a socket from
    /// its SYN until its FIN (the server closes first, after the page),
    /// and a client that connects again at once holds a second one
    /// meanwhile; a burst of SYNs is taken in one poll, before the loop can
    /// refill. So 16 clients that reconnect at once need up to 32, plus
    /// spares.
    const HTTP_SOCKETS: usize = 40;
    /// Each socket's receive buffer (a request) and send buffer (a page of
    /// about 600 bytes): 40 sockets take 240 KiB of heap.
    const HTTP_RX_BUF: usize = 2048;
    const HTTP_TX_BUF: usize = 4096;
    /// The longest request read (the rest is ignored).
    const HTTP_REQUEST_MAX: usize = 1024;
    /// A connection whose peer sends nothing for this long is dropped, so
    /// that a vanished client cannot keep a socket from listening.
    const HTTP_IDLE_SECS: u64 = 10;

    /// One of the server's sockets and the request read on it so far.
    struct HttpConn {
        handle: smoltcp::iface::SocketHandle,
        request: [u8; HTTP_REQUEST_MAX],
        len: usize,
        replied: bool,
    }

    fn http(
        net: &mut NetStack,
        name: &str,
        mut visits: Visits,
        quit_on_request: bool,
    ) -> Result<bool, VifError> {
        let mut quit = false;
        let mut conns = alloc::vec::Vec::with_capacity(HTTP_SOCKETS);
        for _ in 0..HTTP_SOCKETS {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(buffer(HTTP_RX_BUF)),
                tcp::SocketBuffer::new(buffer(HTTP_TX_BUF)),
            );
            s.set_timeout(Some(smoltcp::time::Duration::from_secs(HTTP_IDLE_SECS)));
            let _ = s.listen(80);
            conns.push(HttpConn {
                handle: net.sockets.add(s),
                request: [0; HTTP_REQUEST_MAX],
                len: 0,
                replied: false,
            });
        }
        let (mut served, mut bytes) = (0u64, 0u64);
        println!(
            "http: serving on {}:80 ({HTTP_SOCKETS} listening sockets)",
            net.addr().map_or(Ipv4Addr::UNSPECIFIED, |a| a.address())
        );
        net.run_until(None, |net| {
            let mut open = 0;
            for c in conns.iter_mut() {
                let s = net.sockets.get_mut::<tcp::Socket>(c.handle);
                if !s.is_open() {
                    // Closed, or in TIME-WAIT after our close (the page was
                    // acknowledged and the client closed too): listen again
                    // at once. Nothing of the old connection is left to
                    // send; a stray segment of it gets a reset.
                    c.len = 0;
                    c.replied = false;
                    let _ = s.listen(80);
                    continue;
                }
                if s.is_active() {
                    open += 1;
                }
                while s.can_recv() && c.len < c.request.len() {
                    match s.recv_slice(&mut c.request[c.len..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => c.len += n,
                    }
                }
                let req = &c.request[..c.len];
                let complete = req.windows(4).any(|w| w == b"\r\n\r\n");
                if !c.replied && (complete || c.len == c.request.len()) && s.can_send() {
                    c.replied = true;
                    visits.bump();
                    served += 1;
                    let path = core::str::from_utf8(req)
                        .ok()
                        .and_then(|r| r.split_whitespace().nth(1))
                        .unwrap_or("?");
                    let mut body = String::new();
                    let _ = write!(
                        body,
                        "<html><head><title>Parapet: {name}</title></head><body>\n\
                         <h1>Hello from {name}</h1>\n<pre>\n\
                         served by:     {name}, a Parapet guest on smoltcp over netfront\n\
                         uptime:        {:.1} s\n\
                         requests:      {served}\n\
                         bytes served:  {bytes}\n\
                         visits:        {} (kept on vbd0{})\n\
                         path:          {path}\n\
                         </pre></body></html>\n",
                        secs(time::now().saturating_sub(boot())),
                        visits.count,
                        if visits.disk.is_some() { "" } else { ": no disk" }
                    );
                    let mut page = String::new();
                    let _ = write!(
                        page,
                        "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    // The send buffer is empty and larger than a page.
                    let _ = s.send_slice(page.as_bytes());
                    bytes += page.len() as u64;
                    s.close();
                    println!("http: request {served}: GET {path} ({} bytes)", body.len());
                    quit |= quit_on_request && path == "/quit";
                }
            }
            visits.store(open == 0);
            // With `quit`, stop after answering /quit, once the sockets are closed.
            quit && open == 0
        })
        .inspect(|_| println!("http: served {served} requests ({bytes} bytes)"))
    }

    /// Waits (up to 10 s) for netback to drop us.
    fn dropped(vif: &Vif) -> bool {
        let limit = time::deadline_after(time::Duration::from_secs(10));
        while time::now() < limit {
            if vif.backend_state() != XenbusState::Connected {
                return true;
            }
            time::sleep(time::Duration::from_millis(20)).ok();
        }
        false
    }

    fn hostile(vif: Vif, backend: u32) -> Result<bool, VifError> {
        let mut vif = vif;
        let req = |id: u16, len: u16, flags: u16| TxRequest {
            id,
            len,
            flags,
            _pad: 0,
        };
        let cases = [
            ("a buffer id out of range", req(NET_BUFS as u16, 60, 0)),
            ("a frame shorter than a header", req(0, 3, 0)),
            ("a frame longer than a page", req(1, 9000, 0)),
            ("unknown flags", req(2, 60, 0x8000)),
        ];
        // netback runs on another CPU and may drop us mid-flood: then the
        // notification fails (our port is no longer connected), which is
        // the expected end, not an error.
        for (what, r) in cases {
            if vif.push_raw_tx(&r).is_err() {
                break;
            }
            println!("net: hostile: sent {what}");
        }
        let mut flood = 0;
        while flood < 100
            && vif
                .push_raw_tx(&req(NET_BUFS as u16 + flood, 60, 0))
                .is_ok()
        {
            flood += 1;
        }
        println!("net: hostile: sent a flood of {flood} malformed requests");
        let first = dropped(&vif);
        println!(
            "net: hostile: disconnected by netback after malformed requests: {}",
            if first { "ok" } else { "NO" }
        );
        drop(vif);
        let mut vif = Vif::connect(backend, "vif0")?;
        println!("net: hostile: connected again");
        vif.corrupt_tx_ring(0x7fff_0000)?;
        let second = dropped(&vif);
        println!(
            "net: hostile: disconnected by netback after corrupting the ring: {}",
            if second { "ok" } else { "NO" }
        );
        Ok(first && second)
    }

    /// `http://A.B.C.D[:PORT]/path` → address, port, path.
    fn parse_url(url: &str) -> Option<(Ipv4Addr, u16, &str)> {
        let rest = url.strip_prefix("http://")?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (ip, port) = match host.split_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (host, 80),
        };
        Some((ip.parse().ok()?, port, path))
    }

    /// One GET; true if a whole `200` page came back.
    fn fetch_once(
        net: &mut NetStack,
        (ip, port, path): (Ipv4Addr, u16, &str),
        url: &str,
        (n, count): (u32, u32),
        attempt: u16,
    ) -> Result<bool, VifError> {
        let h = net.sockets.add(tcp_socket(16 * 1024));
        let cx = net.iface.context();
        let local_port = 50000 + (n as u16 % 1000) * 8 + attempt;
        let _ = net.sockets.get_mut::<tcp::Socket>(h).connect(
            cx,
            (IpAddress::Ipv4(ip), port),
            local_port,
        );
        let mut sent = false;
        let mut page = vec![0u8; 0];
        let finished = net.run_until(deadline(10), |net| {
            let s = net.sockets.get_mut::<tcp::Socket>(h);
            if s.may_send() && !sent {
                let mut req = String::new();
                let _ = write!(req, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n");
                let _ = s.send_slice(req.as_bytes());
                sent = true;
            }
            let mut buf = [0u8; 2048];
            while s.can_recv() {
                match s.recv_slice(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => page.extend_from_slice(&buf[..k]),
                }
            }
            if sent && !s.may_recv() {
                s.close();
                return true;
            }
            !s.is_open() && sent
        })?;
        net.sockets.get_mut::<tcp::Socket>(h).abort();
        let _ = net.poll();
        net.sockets.remove(h);
        let text = core::str::from_utf8(&page).unwrap_or("(not UTF-8)");
        let status = text.lines().next().unwrap_or("");
        if finished && status.starts_with("HTTP/1.0 200") {
            println!("fetch {n}/{count}: {url}: {status}");
            for line in text
                .lines()
                .filter(|l| l.contains(':') && !l.contains("HTTP/") && !l.contains('<'))
                .filter(|l| !l.starts_with("Content-") && !l.starts_with("Connection"))
            {
                println!("  {}", line.trim_end());
            }
            Ok(true)
        } else {
            println!("fetch {n}/{count}: {url}: failed ({} bytes)", page.len());
            Ok(false)
        }
    }

    fn fetch(
        net: &mut NetStack,
        url: &str,
        count: u32,
        interval_ms: u64,
    ) -> Result<bool, VifError> {
        let Some((ip, port, path)) = parse_url(url) else {
            println!("fetch: cannot parse url={url} (want http://A.B.C.D[:PORT]/path)");
            return Ok(false);
        };
        let mut ok = 0;
        for n in 1..=count {
            // A failed fetch (the server or the path to it went away for a
            // moment, e.g. a driver domain restart) is tried again, as a
            // browser's user would.
            for attempt in 0..5u16 {
                if attempt > 0 {
                    println!("fetch {n}/{count}: trying again");
                    time::sleep(time::Duration::from_millis(500)).ok();
                }
                if fetch_once(net, (ip, port, path), url, (n, count), attempt)? {
                    ok += 1;
                    break;
                }
            }
            time::sleep(time::Duration::from_millis(interval_ms)).ok();
        }
        println!("fetch: {ok} of {count} pages fetched");
        Ok(ok == count)
    }

    /// Asks the server at `url`'s address to stop (`GET /quit`).
    fn quit_server(net: &mut NetStack, url: &str) -> Result<bool, VifError> {
        let Some((ip, port, _)) = parse_url(url) else {
            return Ok(false);
        };
        for attempt in 0..5u16 {
            if fetch_once(net, (ip, port, "/quit"), url, (0, 0), 5 + attempt)? {
                return Ok(true);
            }
            time::sleep(time::Duration::from_millis(500)).ok();
        }
        Ok(false)
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
