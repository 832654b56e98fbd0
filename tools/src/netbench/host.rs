//! The host's client of `bench net`'s host-to-guest and uplink runs: it
//! waits for the sink's console lines, streams the pattern to the forwarded
//! port in windows until the sink says `stop`, and reads the sink's report.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bench;
use crate::transcript::split_prefix;
use crate::Running;

/// What went wrong on the host's side of the host-to-guest run.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The scenario forwards no host port to the sink.
    #[error("the scenario forwards no host port to {domain}:{port}")]
    NoForward {
        /// The guest.
        domain: String,
        /// Its port.
        port: u16,
    },
    /// QEMU ended (or the run's timeout passed) while the client waited.
    #[error("QEMU ended before {0}")]
    Ended(String),
    /// The client's own time limit passed.
    #[error("timed out after {secs} s waiting for {what}")]
    TimedOut {
        /// What was awaited.
        what: String,
        /// How long.
        secs: u64,
    },
    /// The guest closed the connection while the host still had windows to
    /// send, or before it said `stop`.
    #[error("the guest closed the connection after {bytes} bytes and {windows} host window(s), {}", if *stopped { "after its stop" } else { "before it said stop (its windows done)" })]
    ClosedEarly {
        /// Bytes sent.
        bytes: u64,
        /// The host's windows so far.
        windows: usize,
        /// Whether the guest had said `stop`.
        stopped: bool,
    },
    /// A socket operation failed.
    #[error("{what} ({addr}): {source}")]
    Io {
        /// What the client was doing.
        what: String,
        /// The forwarded address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// What the host client measured.
#[derive(Debug)]
pub(super) struct HostRun {
    /// Bytes sent: the whole stream.
    pub(super) sent: u64,
    /// The host's windows.
    pub(super) windows: Vec<bench::HostWindow>,
    /// The console lines up to the sink's `bench net rx` line.
    pub(super) lines: Vec<String>,
}
/// Waits until a console line from the `from`-th on satisfies `want`;
/// returns every line up to it and the index after it.
pub(super) fn wait_for_line(
    r: &Running<'_>,
    from: usize,
    deadline: Option<Instant>,
    what: &str,
    want: impl Fn(&str) -> bool,
) -> Result<(Vec<String>, usize), HostError> {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut at = from;
    loop {
        let ended = r.ended();
        for line in r.console(at) {
            at += 1;
            let found = want(&line);
            seen.push(line);
            if found {
                return Ok((seen, at));
            }
        }
        if ended {
            return Err(HostError::Ended(what.to_owned()));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(HostError::TimedOut {
                what: what.to_owned(),
                secs: start.elapsed().as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `line` is `[domain] text…`.
pub(super) fn from_domain(line: &str, domain: &str, text: &str) -> bool {
    split_prefix(line).is_some_and(|(p, t)| p == domain && t.starts_with(text))
}

/// How long one socket operation may block before the client looks at
/// whether QEMU is still there.
const SOCKET_SLICE: Duration = Duration::from_secs(1);

/// How long the client waits, after the sink's report, for the machine to
/// power off by itself.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// Sends the pattern to `addr` in windows of at least
/// [`bench::MIN_WINDOW_MS`] by the host's clock, until the sink has said
/// `stop` on the connection (after its own windows) and the host has at least
/// [`bench::MIN_WINDOWS`] windows; then shuts the sending side down and waits
/// until the guest closes. Returns the bytes sent and the host's windows. A
/// thread reads the connection meanwhile. QEMU's user network accepts a
/// connection before it reaches the guest, so a connection it resets before
/// the guest said anything is tried again (a few times).
fn send_stream(
    r: &Running<'_>,
    addr: SocketAddr,
    deadline: Option<Instant>,
) -> Result<(u64, Vec<bench::HostWindow>), HostError> {
    let io_err = |what: &str, source: io::Error| HostError::Io {
        what: what.to_owned(),
        addr,
        source,
    };
    let expired = || deadline.is_some_and(|d| Instant::now() >= d);
    // A socket operation timed out for good: QEMU is gone, or our limit.
    let gave_up = |what: String, start: Instant| {
        if r.ended() {
            HostError::Ended(what)
        } else {
            HostError::TimedOut {
                what,
                secs: start.elapsed().as_secs(),
            }
        }
    };
    let window = Duration::from_millis(bench::MIN_WINDOW_MS);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let start = Instant::now();
        let result = (|| -> Result<(u64, Vec<bench::HostWindow>), HostError> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                .map_err(|e| io_err("cannot connect", e))?;
            let _ = s.set_nodelay(true);
            s.set_write_timeout(Some(SOCKET_SLICE))
                .and_then(|()| s.set_read_timeout(Some(SOCKET_SLICE)))
                .map_err(|e| io_err("cannot set socket timeouts", e))?;
            let mut reader = s
                .try_clone()
                .map_err(|e| io_err("cannot clone the socket", e))?;
            // Set by the reader: the sink said something (`stop`); the
            // connection ended (the guest's close, or an error). Set by us:
            // stop reading.
            let (said, closed, quit) = (
                AtomicBool::new(false),
                AtomicBool::new(false),
                AtomicBool::new(false),
            );
            std::thread::scope(|scope| {
                let read = scope.spawn(|| -> io::Result<()> {
                    let mut scratch = [0u8; 512];
                    let end = |r: io::Result<()>| {
                        closed.store(true, Ordering::SeqCst);
                        r
                    };
                    loop {
                        match reader.read(&mut scratch) {
                            Ok(0) => return end(Ok(())),
                            Ok(_) => said.store(true, Ordering::SeqCst),
                            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {
                                if quit.load(Ordering::SeqCst) {
                                    return Ok(());
                                }
                            }
                            // A reset after the guest's `stop` and our FIN
                            // still means the guest is done.
                            Err(e)
                                if e.kind() == io::ErrorKind::ConnectionReset
                                    && said.load(Ordering::SeqCst) =>
                            {
                                return end(Ok(()))
                            }
                            Err(e) => return end(Err(e)),
                        }
                    }
                });
                let sent = send_windows(&mut s, &said, &closed, window, |sent, e| {
                    if is_timeout(&e) && !r.ended() && !expired() {
                        Ok(())
                    } else if is_timeout(&e) {
                        Err(gave_up(
                            format!("the guest to take more data (after {sent} bytes)"),
                            start,
                        ))
                    } else {
                        Err(io_err(&format!("sending failed after {sent} bytes"), e))
                    }
                });
                let sent = sent.and_then(|got| {
                    s.shutdown(Shutdown::Write)
                        .map_err(|e| io_err("cannot shut down the sending side", e))?;
                    // The sink closes once it has seen our FIN, after all the data.
                    while !closed.load(Ordering::SeqCst) {
                        if r.ended() || expired() {
                            return Err(gave_up("the guest to close the connection".into(), start));
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Ok(got)
                });
                quit.store(true, Ordering::SeqCst);
                let read = read
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("the reading thread panicked")));
                match (sent, read) {
                    // The connection ended under the sender: say why.
                    (Err(HostError::Io { .. } | HostError::ClosedEarly { .. }) | Ok(_), Err(e)) => {
                        Err(io_err("receiving from the guest failed", e))
                    }
                    (Err(e), _) => Err(e),
                    (Ok(got), Ok(())) => Ok(got),
                }
            })
        })();
        match result {
            Err(HostError::Io { source, .. })
                if attempt < 5
                    && !r.ended()
                    && !expired()
                    && matches!(
                        source.kind(),
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::BrokenPipe
                    )
                    && !r
                        .console(0)
                        .iter()
                        .any(|l| from_domain(l, bench::NET_SINK, "bench net")) =>
            {
                std::thread::sleep(Duration::from_millis(500));
            }
            other => return other,
        }
    }
}

/// The sending loop of [`send_stream`]: writes the pattern to `s` until
/// `said` and at least [`bench::MIN_WINDOWS`] windows of at least `window`
/// are done; a window ends at the first write after `window`. `on_error`
/// decides whether a write error is waited out (`Ok`) or ends the stream.
/// The connection ending first (`closed`) is an error.
fn send_windows(
    s: &mut TcpStream,
    said: &AtomicBool,
    closed: &AtomicBool,
    window: Duration,
    on_error: impl Fn(u64, io::Error) -> Result<(), HostError>,
) -> Result<(u64, Vec<bench::HostWindow>), HostError> {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut sent, mut windows) = (0u64, Vec::new());
    // The current window: when it started and the bytes sent then.
    let mut current: Option<(Instant, u64)> = None;
    while !(said.load(Ordering::SeqCst) && windows.len() >= bench::MIN_WINDOWS) {
        if closed.load(Ordering::SeqCst) {
            return Err(HostError::ClosedEarly {
                bytes: sent,
                windows: windows.len(),
                stopped: said.load(Ordering::SeqCst),
            });
        }
        bench::fill_pattern(sent, &mut buf);
        let mut chunk = &buf[..];
        while !chunk.is_empty() {
            match s.write(chunk) {
                Ok(0) => on_error(sent, io::ErrorKind::WriteZero.into())?,
                Ok(n) => {
                    chunk = &chunk[n..];
                    sent += n as u64;
                    let now = Instant::now();
                    match current {
                        None => current = Some((now, sent)),
                        Some((at, from)) if now - at >= window => {
                            windows.push(bench::HostWindow {
                                bytes: sent - from,
                                elapsed: now - at,
                            });
                            current = Some((now, sent));
                        }
                        Some(_) => {}
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => on_error(sent, e)?,
            }
        }
    }
    Ok((sent, windows))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The host's side of the host-to-guest run: waits for the sink to listen,
/// sends the stream in windows until the sink says stop ([`send_stream`]),
/// then waits for the sink's `bench net rx` line.
pub(super) fn host_client(r: &Running<'_>, limit: Option<Duration>) -> Result<HostRun, HostError> {
    let deadline = limit.map(|l| Instant::now() + l);
    let sink = bench::NET_SINK;
    let addr = r
        .addr(sink, bench::NET_PORT)
        .ok_or_else(|| HostError::NoForward {
            domain: sink.to_owned(),
            port: bench::NET_PORT,
        })?;
    let listening = format!("net: sink listening on TCP port {}", bench::NET_PORT);
    let (mut lines, at) = wait_for_line(
        r,
        0,
        deadline,
        &format!("{sink} listened on port {}", bench::NET_PORT),
        |l| from_domain(l, sink, &listening),
    )?;
    let (sent, windows) = send_stream(r, addr, deadline)?;
    let (more, _) = wait_for_line(
        r,
        at,
        deadline,
        &format!("{sink} reported what it received (`bench net rx …`)"),
        |l| from_domain(l, sink, "bench net rx"),
    )?;
    lines.extend(more);
    // Let the sink power off (and the driver domain after it), so that the
    // outcome says how they ended; QEMU is stopped after this anyway.
    let end = Instant::now() + EXIT_WAIT;
    while !r.ended() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(HostRun {
        sent,
        windows,
        lines,
    })
}
