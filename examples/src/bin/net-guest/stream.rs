//! The `sink` and `source` roles (see the binary's docs): a TCP stream,
//! counted and checksummed, its windows and `bench net` lines; ping and UDP
//! echo.

use alloc::string::String;
use alloc::vec;
use core::fmt::Write as _;
use core::net::Ipv4Addr;

use parapet_frontends::vif::{buffer, NetStack, VifError};
use parapet_guest::{println, time};
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress, IpEndpoint};

use crate::guest::{deadline, fnv, pattern, secs, tcp_socket, FNV_START};

/// Options of the `sink` and `source` roles.
#[derive(Clone, Copy)]
pub(crate) struct Stream {
    pub(crate) port: u16,
    /// TCP socket buffer size (each way).
    pub(crate) sockbuf: usize,
    /// Print the `bench net …` line.
    pub(crate) bench: bool,
    /// `source`: a connection to this port ends the stream.
    pub(crate) stop_port: Option<u16>,
    /// `sink`: windows to time (0: none).
    pub(crate) windows: u64,
    /// `sink`: the least length of a window, counter ticks.
    pub(crate) window_ticks: u64,
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

pub(crate) fn sink(net: &mut NetStack, opts: Stream) -> Result<bool, VifError> {
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
pub(crate) fn ping(net: &mut NetStack, peer: Ipv4Addr) -> Result<Option<f64>, VifError> {
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

pub(crate) fn source(
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
