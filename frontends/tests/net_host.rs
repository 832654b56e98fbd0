//! End to end on the host: two guests' netfronts, each connected over real rings
//! (`RingBuffer`) and shared buffer pages to its own netback (`VifBackend`), the two
//! backends joined by a two-port "wire", and a smoltcp interface on each netfront
//! (10.0.0.1/24 and 10.0.0.2/24). Over it: ARP, 1 MiB over TCP with a checksum check,
//! a UDP echo and an ICMP echo. Time is simulated (1 ms per step), so the test is
//! deterministic and fast.

use parapet_abi::netif::{HostPages, RxRequest, RxResponse, TxRequest, TxResponse, NET_BUFS};
use parapet_abi::ring::RingBuffer;
use parapet_backends::netback::VifBackend;
use parapet_frontends::netfront::Netfront;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, IpEndpoint,
    Ipv4Address,
};

const IP_A: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const IP_B: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
const TCP_BYTES: usize = 1 << 20;
const TCP_PORT: u16 = 5000;
const UDP_PORT: u16 = 7;
const ICMP_IDENT: u16 = 0x2204;
/// Simulated milliseconds the whole test may take.
const MAX_STEPS: u64 = 60_000;

/// One guest and its backend: frontend core, smoltcp on top, backend core below.
struct Side<'a> {
    nf: Netfront<'a, HostPages>,
    vif: VifBackend<'a, HostPages>,
    iface: Interface,
    sockets: SocketSet<'static>,
}

impl<'a> Side<'a> {
    fn new(
        tx_buf: &'a mut RingBuffer,
        rx_buf: &'a mut RingBuffer,
        mac: [u8; 6],
        ip: Ipv4Address,
        sg: bool,
    ) -> Self {
        // The frontend initialises the rings; the backend attaches to them.
        let (tx_front, tx_back) = tx_buf.split_req::<TxRequest, TxResponse>().unwrap();
        let (rx_front, rx_back) = rx_buf.split_req::<RxRequest, RxResponse>().unwrap();
        // Both sides see the same pages (granted by the frontend, mapped by the backend).
        let pages = HostPages::new();
        let mut nf = Netfront::new(tx_front, rx_front, pages.clone())
            .unwrap()
            .with_sg(sg);
        let vif = VifBackend::new(tx_back, rx_back, pages).with_sg(sg);
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = u64::from(mac[5]);
        let mut iface = Interface::new(config, &mut nf, Instant::ZERO);
        iface.update_ip_addrs(|addrs| {
            addrs.push(IpCidr::new(IpAddress::Ipv4(ip), 24)).unwrap();
        });
        Side {
            nf,
            vif,
            iface,
            sockets: SocketSet::new(vec![]),
        }
    }

    /// The guest's half of a step: smoltcp, then publish.
    fn run_guest(&mut self, now: Instant) {
        self.iface.poll(now, &mut self.nf, &mut self.sockets);
        // Notifications are not needed here: every step runs every party.
        self.nf.flush();
    }
}

/// Moves every frame `from`'s guest sent to `to`'s guest (a two-port wire), as the
/// driver domain does: one copy from the sender's TX buffers to the receiver's RX
/// buffers.
fn wire(from: &mut Side<'_>, to: &mut Side<'_>) {
    let to_vif = &mut to.vif;
    from.vif
        .poll_tx(|frame| {
            to_vif.deliver_rx_from(frame).unwrap();
        })
        .unwrap();
}

/// One simulated millisecond: both guests, the wire both ways, both backends
/// publish, both frontends take their responses.
fn step(a: &mut Side<'_>, b: &mut Side<'_>, now: Instant) {
    a.run_guest(now);
    b.run_guest(now);
    wire(a, b);
    wire(b, a);
    a.vif.flush();
    b.vif.flush();
    a.nf.poll().unwrap();
    b.nf.poll().unwrap();
}

/// FNV-1a, 64 bits.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Deterministic test data (xorshift64).
fn payload(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
    )
}

fn udp_socket() -> udp::Socket<'static> {
    udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 4096]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 4096]),
    )
}

fn icmp_socket() -> icmp::Socket<'static> {
    let mut s = icmp::Socket::new(
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 4096]),
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 4096]),
    );
    s.bind(icmp::Endpoint::Ident(ICMP_IDENT)).unwrap();
    s
}

/// Runs steps until `done` says so; returns the step count.
fn run_until(
    a: &mut Side<'_>,
    b: &mut Side<'_>,
    clock: &mut u64,
    mut done: impl FnMut(&mut Side<'_>, &mut Side<'_>) -> bool,
) -> u64 {
    let start = *clock;
    loop {
        assert!(
            *clock - start < MAX_STEPS,
            "no progress after {MAX_STEPS} steps"
        );
        step(a, b, Instant::from_millis(*clock as i64));
        *clock += 1;
        if done(a, b) {
            return *clock - start;
        }
    }
}

#[test]
fn two_guests_talk_tcp_udp_and_icmp_over_netfront_and_netback() {
    talk(false);
}

/// The same with large frames (`feature-sg`): TCP segments of up to 16 KiB, in
/// several buffers each.
#[test]
fn two_guests_talk_with_large_frames() {
    let frames = talk(true);
    assert!(
        frames < (TCP_BYTES / 8192) as u64,
        "{frames} frames: the segments were not large"
    );
}

/// Runs the exchange; returns the frames A sent.
fn talk(sg: bool) -> u64 {
    let mut bufs: Vec<RingBuffer> = (0..4).map(|_| RingBuffer::new(1)).collect();
    let [a_tx, a_rx, b_tx, b_rx] = &mut bufs[..] else {
        unreachable!()
    };
    let mut a = Side::new(a_tx, a_rx, [0x02, 0, 0, 0, 0, 0x0a], IP_A, sg);
    let mut b = Side::new(b_tx, b_rx, [0x02, 0, 0, 0, 0, 0x0b], IP_B, sg);
    let mut clock = 0u64;

    // The first flush publishes the posted RX buffers and asks for a notification.
    assert!(a.nf.flush());
    assert!(b.nf.flush());

    // --- TCP: 1 MiB from A to B. ---
    let data = payload(TCP_BYTES);
    let mut want = Fnv::new();
    want.update(&data);
    let server = b.sockets.add(tcp_socket());
    b.sockets
        .get_mut::<tcp::Socket>(server)
        .listen(TCP_PORT)
        .unwrap();
    let client = a.sockets.add(tcp_socket());
    {
        let cx = a.iface.context();
        a.sockets
            .get_mut::<tcp::Socket>(client)
            .connect(cx, (IpAddress::Ipv4(IP_B), TCP_PORT), 49152)
            .unwrap();
    }
    let mut sent = 0usize;
    let mut got = Fnv::new();
    let mut received = 0usize;
    let steps = run_until(&mut a, &mut b, &mut clock, |a, b| {
        let c = a.sockets.get_mut::<tcp::Socket>(client);
        if c.can_send() && sent < data.len() {
            sent += c.send_slice(&data[sent..]).unwrap();
            if sent == data.len() {
                c.close();
            }
        }
        let s = b.sockets.get_mut::<tcp::Socket>(server);
        while s.can_recv() {
            s.recv(|buf| {
                got.update(buf);
                received += buf.len();
                (buf.len(), ())
            })
            .unwrap();
        }
        if received == TCP_BYTES && !s.may_recv() && s.state() != tcp::State::Closed {
            s.close();
        }
        received == TCP_BYTES
    });
    assert_eq!(received, TCP_BYTES);
    assert_eq!(got.0, want.0, "checksum of the received stream");
    println!("tcp: 1 MiB in {steps} simulated ms");

    // --- UDP: A sends a datagram to B's echo port, B sends it back. ---
    let echo = b.sockets.add(udp_socket());
    b.sockets
        .get_mut::<udp::Socket>(echo)
        .bind(UDP_PORT)
        .unwrap();
    let uclient = a.sockets.add(udp_socket());
    {
        let u = a.sockets.get_mut::<udp::Socket>(uclient);
        u.bind(40000).unwrap();
        let to = IpEndpoint::new(IpAddress::Ipv4(IP_B), UDP_PORT);
        u.send_slice(b"parapet udp echo", to).unwrap();
    }
    let mut reply = None;
    run_until(&mut a, &mut b, &mut clock, |a, b| {
        let e = b.sockets.get_mut::<udp::Socket>(echo);
        if let Ok((data, meta)) = e.recv() {
            let data = data.to_vec();
            e.send_slice(&data, meta.endpoint).unwrap();
        }
        if let Ok((data, meta)) = a.sockets.get_mut::<udp::Socket>(uclient).recv() {
            reply = Some((data.to_vec(), meta.endpoint));
        }
        reply.is_some()
    });
    let (data, from) = reply.unwrap();
    assert_eq!(data, b"parapet udp echo");
    assert_eq!(from, IpEndpoint::new(IpAddress::Ipv4(IP_B), UDP_PORT));

    // --- ICMP: A pings B; B's ICMP socket answers (no automatic echo replies). ---
    let caps = ChecksumCapabilities::default();
    let pinger: SocketHandle = a.sockets.add(icmp_socket());
    let responder = b.sockets.add(icmp_socket());
    {
        let req = Icmpv4Repr::EchoRequest {
            ident: ICMP_IDENT,
            seq_no: 1,
            data: b"ping through netfront",
        };
        let p = a.sockets.get_mut::<icmp::Socket>(pinger);
        let buf = p.send(req.buffer_len(), IpAddress::Ipv4(IP_B)).unwrap();
        req.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
    }
    let mut pong = None;
    run_until(&mut a, &mut b, &mut clock, |a, b| {
        let r = b.sockets.get_mut::<icmp::Socket>(responder);
        if let Ok((bytes, from)) = r.recv() {
            let pkt = Icmpv4Packet::new_checked(bytes).unwrap();
            if let Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } = Icmpv4Repr::parse(&pkt, &caps).unwrap()
            {
                let data = data.to_vec();
                let rep = Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data: &data,
                };
                let buf = r.send(rep.buffer_len(), from).unwrap();
                rep.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
            }
        }
        if let Ok((bytes, from)) = a.sockets.get_mut::<icmp::Socket>(pinger).recv() {
            let pkt = Icmpv4Packet::new_checked(bytes).unwrap();
            if let Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } = Icmpv4Repr::parse(&pkt, &caps).unwrap()
            {
                pong = Some((ident, seq_no, data.to_vec(), from));
            }
        }
        pong.is_some()
    });
    assert_eq!(
        pong.unwrap(),
        (
            ICMP_IDENT,
            1,
            b"ping through netfront".to_vec(),
            IpAddress::Ipv4(IP_B)
        )
    );

    // Let the TCP close and the last acknowledgements finish.
    let mut idle = 0;
    run_until(&mut a, &mut b, &mut clock, |_, _| {
        idle += 1;
        idle == 200
    });
    assert_eq!(
        a.sockets.get_mut::<tcp::Socket>(client).state(),
        tcp::State::TimeWait
    );

    // Nothing was lost or refused anywhere, and both sides can sleep.
    for side in [&mut a, &mut b] {
        let nf = side.nf.stats();
        let vif = side.vif.stats();
        println!("netfront {nf:?}\nnetback {vif:?}");
        assert_eq!(
            nf.tx_dropped + nf.tx_errors + nf.rx_errors + nf.protocol_errors,
            0
        );
        assert_eq!(vif.rx_dropped + vif.malformed, 0);
        assert_eq!(nf.tx_frames, vif.tx_frames);
        assert_eq!(nf.rx_frames, vif.rx_frames);
        assert!(!side.vif.is_hostile());
        assert_eq!(side.nf.tx_free(), NET_BUFS);
        assert_eq!(side.nf.rx_posted(), NET_BUFS);
        assert_eq!(side.vif.final_check(), Ok(false));
        assert_eq!(side.nf.final_check(), Ok(false));
    }
    assert!(a.vif.stats().tx_bytes > TCP_BYTES as u64);
    a.nf.stats().tx_frames
}

/// Runs a guest until it has nothing left to do, as the guest glue would before
/// blocking on its event channel: take responses, run smoltcp and the application,
/// publish (returns whether the backend must be notified), and sleep only once
/// `final_check` says no work is waiting (the response events are then armed).
fn run_guest_until_idle(
    side: &mut Side<'_>,
    now: Instant,
    mut app: impl FnMut(&mut SocketSet<'static>),
) -> bool {
    let mut notify = false;
    for _ in 0..1000 {
        side.nf.poll().unwrap();
        side.iface.poll(now, &mut side.nf, &mut side.sockets);
        app(&mut side.sockets);
        side.iface.poll(now, &mut side.nf, &mut side.sockets);
        notify |= side.nf.flush();
        if !side.nf.final_check().unwrap() {
            return notify;
        }
    }
    panic!("guest never idle");
}

/// Runs the backend (both vifs and the wire) until neither vif has TX requests
/// waiting; returns which frontends must be notified.
fn run_backend_until_idle(a: &mut Side<'_>, b: &mut Side<'_>) -> (bool, bool) {
    let (mut na, mut nb) = (false, false);
    for _ in 0..1000 {
        wire(a, b);
        wire(b, a);
        na |= a.vif.flush();
        nb |= b.vif.flush();
        // Both must be armed before sleeping: no short circuit.
        let more_a = a.vif.final_check().unwrap();
        let more_b = b.vif.final_check().unwrap();
        if !(more_a || more_b) {
            return (na, nb);
        }
    }
    panic!("backend never idle");
}

#[test]
fn event_driven_loop_loses_no_wakeup() {
    const BYTES: usize = 256 * 1024;
    let mut bufs: Vec<RingBuffer> = (0..4).map(|_| RingBuffer::new(1)).collect();
    let [a_tx, a_rx, b_tx, b_rx] = &mut bufs[..] else {
        unreachable!()
    };
    let mut a = Side::new(a_tx, a_rx, [0x02, 0, 0, 0, 0, 0x1a], IP_A, false);
    let mut b = Side::new(b_tx, b_rx, [0x02, 0, 0, 0, 0, 0x1b], IP_B, true);
    let data = payload(BYTES);
    let mut want = Fnv::new();
    want.update(&data);
    let server = b.sockets.add(tcp_socket());
    b.sockets
        .get_mut::<tcp::Socket>(server)
        .listen(TCP_PORT)
        .unwrap();
    let client = a.sockets.add(tcp_socket());
    {
        let cx = a.iface.context();
        a.sockets
            .get_mut::<tcp::Socket>(client)
            .connect(cx, (IpAddress::Ipv4(IP_B), TCP_PORT), 49153)
            .unwrap();
    }
    let (mut sent, mut received, mut got) = (0usize, 0usize, Fnv::new());

    // Pending events: one port per party. Connecting: each frontend publishes its
    // RX buffers (the first flush always asks for a notification).
    let mut ev_back = a.nf.flush() | b.nf.flush();
    assert!(ev_back);
    let (mut ev_a, mut ev_b) = (true, true);
    let mut events = 0u64;
    let mut clock = 0i64;
    while received < BYTES {
        assert!(clock < 60_000, "stalled: {sent} sent, {received} received");
        let now = Instant::from_millis(clock);
        // Guests also wake up for smoltcp's timers.
        ev_a |= a.iface.poll_at(now, &a.sockets).is_some_and(|t| t <= now);
        ev_b |= b.iface.poll_at(now, &b.sockets).is_some_and(|t| t <= now);
        let mut rounds = 0;
        while ev_a || ev_b || ev_back {
            rounds += 1;
            assert!(rounds < 10_000, "livelock");
            if std::mem::take(&mut ev_a) {
                ev_back |= run_guest_until_idle(&mut a, now, |sockets| {
                    let c = sockets.get_mut::<tcp::Socket>(client);
                    if c.can_send() && sent < data.len() {
                        sent += c.send_slice(&data[sent..]).unwrap();
                    }
                });
            }
            if std::mem::take(&mut ev_back) {
                let (na, nb) = run_backend_until_idle(&mut a, &mut b);
                ev_a |= na;
                ev_b |= nb;
                events += u64::from(na) + u64::from(nb);
            }
            if std::mem::take(&mut ev_b) {
                ev_back |= run_guest_until_idle(&mut b, now, |sockets| {
                    let s = sockets.get_mut::<tcp::Socket>(server);
                    while s.can_recv() {
                        s.recv(|buf| {
                            got.update(buf);
                            received += buf.len();
                            (buf.len(), ())
                        })
                        .unwrap();
                    }
                });
            }
        }
        // Everyone went to sleep: had anyone work without an event to wake it, a
        // wake-up was lost.
        assert!(!a.nf.final_check().unwrap() && a.nf.rx_queued() == 0);
        assert!(!b.nf.final_check().unwrap() && b.nf.rx_queued() == 0);
        assert!(!a.vif.final_check().unwrap() && !b.vif.final_check().unwrap());
        clock += 1;
    }
    assert_eq!(got.0, want.0, "checksum of the received stream");
    // No retransmission timeout was needed.
    assert!(clock < 100, "took {clock} simulated ms");
    let (sa, sb) = (a.nf.stats(), b.nf.stats());
    let frames = sa.tx_frames + sb.tx_frames;
    let notifies = sa.notifications + sb.notifications + events;
    println!(
        "event-driven: {BYTES} bytes in {clock} simulated ms, {frames} frames, \
         {notifies} notifications, {} dropped at netback",
        a.vif.stats().rx_dropped + b.vif.stats().rx_dropped
    );
    // Suppression works: events are per batch, not per frame.
    assert!(
        notifies * 2 < frames,
        "{notifies} notifications for {frames} frames"
    );
    assert_eq!(a.vif.stats().rx_dropped + b.vif.stats().rx_dropped, 0);
}
