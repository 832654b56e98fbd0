//! `parapet bench net`: guest-to-guest TCP throughput through the driver
//! domain, next to the raw ring throughput measured in the same invocation,
//! and host-to-guest TCP throughput through the uplink.
//!
//! Four boots, one after another, each like `parapet up`:
//!
//! 1. [`bench::NET_RING_SCENARIO`] (bench ring's 2-CPU scenario) with the
//!    ring sender limited to 4096-byte messages: the raw ring figure, read
//!    and checked as `bench ring` does.
//! 2. [`bench::NET_SCENARIO`]: `source` streams a pattern to `sink` over TCP
//!    (`bytes=unlimited`); the sink times its windows (`windows=5`), prints a
//!    `bench net window` line per window, then says `stop` on the
//!    connection; the source ends the stream there, and both print a `bench
//!    net tx|rx` line over the whole stream, whose byte counts and FNV-1a
//!    checksums must match the pattern's.
//! 3. [`bench::NET_HOST_SCENARIO`]: the host connects to the port forwarded
//!    to `sink` and streams the same pattern, timing its own windows, until
//!    the sink has said `stop` (after its windows) and the host has at least
//!    [`bench::MIN_WINDOWS`]; then it shuts its side down and waits for the
//!    guest to close; the sink's `bench net rx` line must report every byte
//!    sent with the pattern's checksum.
//! 4. [`NET_UPLINK_SCENARIO`]: the same host client against the driver
//!    domain itself as the sink (`uplink_sink`: smoltcp straight on
//!    virtio-net, no switch, no guest): QEMU's own limit on that path, printed
//!    after host to guest.
//!
//! Every figure is MiB/s over at least [`bench::MIN_WINDOWS`] windows of at
//! least [`bench::MIN_WINDOW_MS`] (median, min, max, every sample), by the
//! receiving guest's counter (QEMU TCG without `-icount`, as for `bench
//! ring`: guest time follows host time), plus, host to a sink, by the host's
//! clock over the host's own windows.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bench::{self, NetReport, NetResult};
use crate::scenario::{Located, Scenario, ScenarioError};
use crate::transcript::{split_prefix, EXIT_DOMAIN_FAILED, EXIT_OK};
use crate::{boot, build, colour_stdout, load, prepare, prereq, qemu, run_prepared};
use crate::{Error, Outcome, Running};

/// QEMU's own limit on the host-to-guest path: the driver domain is the sink
/// (named like the guest sink, so the same host client serves both).
pub const NET_UPLINK_SCENARIO: &str = "scenarios/bench-net-uplink.toml";

/// Options of `parapet bench net`.
#[derive(Debug, Clone)]
pub struct BenchNetOptions {
    /// Where to write the JSON report, if anywhere.
    pub json: Option<PathBuf>,
    /// Skip the build.
    pub no_build: bool,
    /// Kill QEMU after this long, per run (`None`: never).
    pub timeout: Option<Duration>,
    /// Where to write the SVG chart, if anywhere.
    pub plot: Option<PathBuf>,
}

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
struct HostRun {
    /// Bytes sent: the whole stream.
    sent: u64,
    /// The host's windows.
    windows: Vec<bench::HostWindow>,
    /// The console lines up to the sink's `bench net rx` line.
    lines: Vec<String>,
}

/// `DOMAIN: key=value` after setting `key=value` in `domain`'s command line.
pub(crate) fn set_cmdline(
    s: &mut Scenario,
    domain: &str,
    key: &str,
    value: &str,
) -> Result<String, Error> {
    let path = s.path.clone();
    let d = s
        .domains
        .iter_mut()
        .find(|d| d.name == domain)
        .ok_or_else(|| {
            ScenarioError::Invalid(Box::new(Located {
                path,
                line: None,
                field: Some("domain".into()),
                message: format!("`parapet bench` needs a domain named `{domain}`"),
            }))
        })?;
    d.cmdline = Some(bench::set_word(
        d.cmdline.as_deref().unwrap_or(""),
        key,
        value,
    ));
    Ok(format!("{domain}: {key}={value}"))
}

/// Fails early when `--json FILE` names a directory that does not exist.
pub(crate) fn check_report_dir(json: Option<&Path>) -> Result<(), Error> {
    let Some(path) = json else { return Ok(()) };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    match dir.filter(|d| !d.is_dir()) {
        Some(dir) => Err(Error::WriteReport {
            path: path.to_owned(),
            source: io::Error::new(
                io::ErrorKind::NotFound,
                format!("directory {} does not exist", dir.display()),
            ),
        }),
        None => Ok(()),
    }
}

/// Waits until a console line from the `from`-th on satisfies `want`;
/// returns every line up to it and the index after it.
fn wait_for_line(
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
fn from_domain(line: &str, domain: &str, text: &str) -> bool {
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
fn host_client(r: &Running<'_>, limit: Option<Duration>) -> Result<HostRun, HostError> {
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

/// `n CPU(s)` for the progress lines.
fn what(path: &str, s: &Scenario) -> String {
    let cpus = s.machine.cpus;
    format!("{path} ({cpus} CPU{})", if cpus == 1 { "" } else { "s" })
}

/// `parapet bench net`: builds (unless `no_build`) and boots the three
/// scenarios in turn (see the module docs), streaming the consoles to
/// stdout, then prints the table (raw ring, guest to guest, host to guest,
/// and the guest-TCP / ring ratio) and writes the JSON report if asked.
///
/// The outcome is a failure (and the summary says why) when a run fails, a
/// benchmark line is missing or malformed, a byte count or checksum does not
/// match what was sent ([`transcript::EXIT_DOMAIN_FAILED`]), or the host
/// cannot send its stream; it stops at the first failure. There are no
/// targets.
///
/// [`transcript::EXIT_DOMAIN_FAILED`]: crate::transcript::EXIT_DOMAIN_FAILED
pub fn bench_net(opts: &BenchNetOptions) -> Result<Outcome, Error> {
    let root = build::workspace_root()?;
    check_report_dir(opts.json.as_deref())?;
    let mut ring = load(Path::new(bench::NET_RING_SCENARIO), &root)?;
    let ring_over = vec![
        set_cmdline(&mut ring, "ring-tx", "sizes", bench::NET_RING_SIZES)?,
        set_cmdline(&mut ring, "ring-tx", "work", bench::NET_RING_WORK)?,
    ];
    let g2g = load(Path::new(bench::NET_SCENARIO), &root)?;
    let h2g = load(Path::new(bench::NET_HOST_SCENARIO), &root)?;
    let up = load(Path::new(NET_UPLINK_SCENARIO), &root)?;
    let qemu_path = prereq::ensure_qemu()?;
    let ring_what = what(bench::NET_RING_SCENARIO, &ring);
    let g2g_what = what(bench::NET_SCENARIO, &g2g);
    let h2g_what = what(bench::NET_HOST_SCENARIO, &h2g);
    let up_what = what(NET_UPLINK_SCENARIO, &up);
    let p_ring = prepare(&root, ring, opts.no_build, qemu_path.clone())?;
    let p_g2g = prepare(&root, g2g, opts.no_build, qemu_path.clone())?;
    let p_h2g = prepare(&root, h2g, opts.no_build, qemu_path.clone())?;
    let p_up = prepare(&root, up, opts.no_build, qemu_path)?;
    let colour = colour_stdout();
    let mut summary = Vec::new();
    let failed = |mut summary: Vec<String>, code: i32, why: String| {
        summary.push(format!("bench net: {why}"));
        Ok(Outcome {
            exit_code: code,
            summary,
        })
    };

    // The ring and guest to guest: runs that end by themselves.
    let mut plain_runs = Vec::new();
    for (what, p) in [(&ring_what, &p_ring), (&g2g_what, &p_g2g)] {
        eprintln!("parapet: bench net: running {what}");
        let mut capture =
            bench::Capture::new(io::stdout().lock(), p.scenario().domain_names(), colour);
        let stops = qemu::Stops {
            timeout: opts.timeout,
            ..qemu::Stops::default()
        };
        let outcome = boot(p, &stops, &mut capture, false, false, None)?;
        summary.extend(outcome.summary.iter().map(|l| format!("{what}: {l}")));
        if outcome.exit_code != EXIT_OK {
            return failed(
                summary,
                outcome.exit_code,
                format!("{what} failed; no results"),
            );
        }
        plain_runs.push(capture.into_lines());
    }
    let ring_lines = &plain_runs[0];
    let g2g_lines = &plain_runs[1];
    let ring_result = match bench::net_ring(ring_lines) {
        Ok(r) => r,
        Err(e) => return failed(summary, EXIT_DOMAIN_FAILED, format!("{ring_what}: {e}")),
    };
    let g2g_t = match bench::net_guest_to_guest(g2g_lines) {
        Ok(t) => t,
        Err(e) => return failed(summary, EXIT_DOMAIN_FAILED, format!("{g2g_what}: {e}")),
    };

    // Host to guest: a service; the client sends and reads the console.
    eprintln!("parapet: bench net: running {h2g_what}");
    let limit = opts.timeout;
    let timeout_secs = Some(limit.map_or(0, |t| t.as_secs().max(1)));
    let (outcome, client) = run_prepared(&p_h2g, timeout_secs, |r| host_client(r, limit))?;
    summary.extend(outcome.summary.iter().map(|l| format!("{h2g_what}: {l}")));
    let host = match client {
        Ok(h) => h,
        Err(e) => {
            let code = if outcome.exit_code == EXIT_OK {
                EXIT_DOMAIN_FAILED
            } else {
                outcome.exit_code
            };
            return failed(summary, code, format!("{h2g_what}: host to guest: {e}"));
        }
    };
    if outcome.exit_code != EXIT_OK {
        return failed(
            summary,
            outcome.exit_code,
            format!("{h2g_what} failed; no results"),
        );
    }
    let h2g_t = match bench::net_host_to_sink(bench::HOST_TO_GUEST, &host.lines, host.sent)
        .and_then(|t| Ok((t, bench::host_figure(bench::HOST_TO_GUEST, &host.windows)?)))
    {
        Ok(t) => t,
        Err(e) => return failed(summary, EXIT_DOMAIN_FAILED, format!("{h2g_what}: {e}")),
    };

    // QEMU's own limit on the host-to-guest path: the same client, the driver
    // domain as the sink.
    eprintln!("parapet: bench net: running {up_what}");
    let (outcome, client) = run_prepared(&p_up, timeout_secs, |r| host_client(r, limit))?;
    summary.extend(outcome.summary.iter().map(|l| format!("{up_what}: {l}")));
    let up_host = match (client, outcome.exit_code) {
        (Ok(h), EXIT_OK) => h,
        (Err(e), code) => {
            let code = if code == EXIT_OK {
                EXIT_DOMAIN_FAILED
            } else {
                code
            };
            return failed(
                summary,
                code,
                format!("{up_what}: host to driver domain: {e}"),
            );
        }
        (Ok(_), code) => return failed(summary, code, format!("{up_what} failed; no results")),
    };
    let up_t = match bench::net_host_to_sink(bench::HOST_TO_DRIVER, &up_host.lines, up_host.sent)
        .and_then(|t| {
            Ok((
                t,
                bench::host_figure(bench::HOST_TO_DRIVER, &up_host.windows)?,
            ))
        }) {
        Ok(t) => t,
        Err(e) => return failed(summary, EXIT_DOMAIN_FAILED, format!("{up_what}: {e}")),
    };

    let ring_row = NetResult::ring(&ring_result, bench::NET_RING_SCENARIO, ring_over);
    let g2g_row = NetResult::tcp(
        "guest_to_guest_tcp",
        "guest to guest, TCP via the driver domain",
        bench::NET_SCENARIO,
        Vec::new(),
        &g2g_t,
        None,
    );
    let h2g_row = NetResult::tcp(
        "host_to_guest_tcp",
        "host to guest, TCP via the uplink",
        bench::NET_HOST_SCENARIO,
        Vec::new(),
        &h2g_t.0,
        Some(h2g_t.1),
    );
    let mut report = NetReport::new(
        "cargo parapet bench net".to_owned(),
        bench::net_clock(ring_result.freq),
        ring_row,
        g2g_row,
        h2g_row,
    );
    report.results.push(NetResult::tcp(
        "host_to_driver_uplink_only",
        "host to driver domain, virtio-net only (QEMU)",
        NET_UPLINK_SCENARIO,
        Vec::new(),
        &up_t.0,
        Some(up_t.1),
    ));
    print!("{}", report.text());
    let _ = io::stdout().flush();
    summary.push(format!(
        "bench net: MiB/s, medians of the receivers' windows: ring {:.2}, guest to guest {:.2} (ratio {:.4}), host to guest {:.2} (QEMU's own limit on that path {:.2}); checksums matched",
        report.results[0].mib_s.median,
        report.results[1].mib_s.median,
        report.ratio_tcp_to_ring,
        report.results[2].mib_s.median,
        report.results[3].mib_s.median
    ));
    if let Some(path) = &opts.json {
        std::fs::write(path, report.json()).map_err(|source| Error::WriteReport {
            path: path.clone(),
            source,
        })?;
        summary.push(format!("wrote the JSON report to {}", path.display()));
    }
    if let Some(dir) = &opts.plot {
        let file = bench::plot::net_plot(&report, dir)?;
        summary.push(format!("wrote the chart {}", file.display()));
    }
    Ok(Outcome {
        exit_code: EXIT_OK,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn net_scenarios_are_as_bench_net_expects() {
        let mut g2g = crate::scenario::load(&root().join(bench::NET_SCENARIO), &root())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g2g.machine.cpus, 2);
        assert!(!g2g.machine.icount, "same clock as bench ring");
        assert_eq!(g2g.domain_names(), ["driver", "sink", "source"]);
        let over = set_cmdline(&mut g2g, bench::NET_SOURCE, "bytes", "4096").unwrap();
        assert_eq!(over, "source: bytes=4096");
        let source = g2g.domains.iter().find(|d| d.name == "source").unwrap();
        assert_eq!(
            source.cmdline.as_deref(),
            Some("role=source peer=10.0.2.15 port=5001 bytes=4096 sockbuf=196608 bench")
        );
        // As the scenario has it: the source streams until the sink, after
        // its windows, says stop.
        let file = crate::scenario::load(&root().join(bench::NET_SCENARIO), &root())
            .unwrap_or_else(|e| panic!("{e}"));
        let cmd = |s: &Scenario, d: &str| {
            s.domains
                .iter()
                .find(|x| x.name == d)
                .and_then(|x| x.cmdline.clone())
                .unwrap()
        };
        assert!(cmd(&file, "source").contains(" bytes=unlimited "));
        let windows = format!("bench windows={}", bench::MIN_WINDOWS);
        assert!(cmd(&file, "sink").ends_with(&windows));
        // The same placement as the ring's 2-CPU run.
        let pins: Vec<Option<u32>> = g2g.domains.iter().map(|d| d.cpu).collect();
        assert_eq!(pins, [Some(0), Some(1), Some(0)]);
        let e = set_cmdline(&mut g2g, "nobody", "bytes", "1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a domain named `nobody`"), "{e}");

        let h2g = crate::scenario::load(&root().join(bench::NET_HOST_SCENARIO), &root())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!h2g.machine.icount);
        assert!(cmd(&h2g, "sink").ends_with(&windows));
        // QEMU's limit: the driver domain alone, named like the sink, with the
        // forward the host client looks for.
        let up = crate::scenario::load(&root().join(NET_UPLINK_SCENARIO), &root())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!up.machine.icount);
        assert_eq!(up.domain_names(), [bench::NET_SINK]);
        let d = &up.domains[0];
        assert_eq!(d.role, crate::scenario::Role::Driver);
        assert_eq!(
            d.cmdline.as_deref(),
            Some(format!("uplink_sink=5001 windows={}", bench::MIN_WINDOWS).as_str())
        );
        let fw = &d.net.as_ref().unwrap().forward;
        assert_eq!(fw[0].guest, bench::NET_PORT);
        assert_eq!(h2g.domain_names(), ["driver", "sink"]);
        let plan = crate::nets::prepare(&h2g).unwrap();
        assert_eq!(plan.forwards.len(), 1);
        assert_eq!(
            (
                plan.forwards[0].domain.as_str(),
                plan.forwards[0].guest_port
            ),
            (bench::NET_SINK, bench::NET_PORT)
        );

        let mut ring = crate::scenario::load(&root().join(bench::NET_RING_SCENARIO), &root())
            .unwrap_or_else(|e| panic!("{e}"));
        set_cmdline(&mut ring, "ring-tx", "sizes", bench::NET_RING_SIZES).unwrap();
        set_cmdline(&mut ring, "ring-tx", "work", bench::NET_RING_WORK).unwrap();
        let tx = ring.domains.iter().find(|d| d.name == "ring-tx").unwrap();
        assert_eq!(tx.cmdline.as_deref(), Some("tx sizes=4096 work=net"));
    }

    #[test]
    fn a_missing_report_directory_is_refused_before_running() {
        let e = check_report_dir(Some(Path::new("/nonexistent-dir/x.json"))).unwrap_err();
        assert!(
            e.to_string()
                .contains("directory /nonexistent-dir does not exist"),
            "{e}"
        );
        check_report_dir(Some(Path::new("x.json"))).unwrap();
        check_report_dir(None).unwrap();
    }

    /// A prepared "scenario" whose QEMU is `sh -c SCRIPT`, with the sink's
    /// port forwarded.
    fn fake(script: &str) -> crate::Prepared {
        let src = "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"/bin/true\"\n\
                   [[domain]]\nname = \"sink\"\nimage = \"/bin/true\"\n\
                   net = { ip = \"10.0.2.15/24\", forward = [{ host = 0, guest = 5001 }] }\n";
        let s = crate::scenario::parse(src, Path::new("t.toml"), Path::new("/"), Path::new("/"))
            .unwrap();
        let plan = crate::nets::prepare(&s).unwrap();
        crate::Prepared {
            scenario: s,
            qemu: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            forwards: plan.forwards,
            reserved: std::sync::Mutex::new(plan.reserved),
            trace: None,
        }
    }

    #[test]
    fn the_host_client_sends_in_windows_until_stop_and_reads_the_report() {
        // The guest's lines; the "guest" itself is a thread on the port.
        let p = fake(
            "echo '[hv] domain d (id 0, driver domain)'; echo '[hv] domain sink (id 1, guest)'; \
             echo '[sink] net: sink listening on TCP port 5001, UDP echo on port 7'; sleep 4; \
             echo '[sink] bench net rx bytes=1 checksum=0000000000000001 ticks=1 freq=1 frames=1 notify=1 complete=yes windows=0'; \
             sleep 1; echo '[hv] domain sink exited: poweroff (code 0)'; \
             echo '[hv] domain d exited: poweroff (code 0)'; \
             echo '[hv] all domains stopped: 2 ok, 0 failed'",
        );
        let (outcome, (client, got)) = run_prepared(&p, Some(60), |r| {
            let addr = r.addr(bench::NET_SINK, bench::NET_PORT).unwrap();
            let server = std::net::TcpListener::bind(addr).unwrap();
            let guest = std::thread::spawn(move || {
                let (mut c, _) = server.accept().unwrap();
                // Read for 0.6 s, say stop, read to the end.
                let start = Instant::now();
                let (mut data, mut buf) = (Vec::new(), vec![0u8; 65536]);
                while start.elapsed() < Duration::from_millis(600) {
                    let n = c.read(&mut buf).unwrap();
                    data.extend_from_slice(&buf[..n]);
                }
                c.write_all(b"stop").unwrap();
                c.read_to_end(&mut data).unwrap();
                (data.len() as u64, bench::fnv1a64(bench::FNV_START, &data))
            });
            let client = host_client(r, Some(Duration::from_secs(30)));
            (client, guest.join().unwrap())
        })
        .unwrap();
        let run = client.unwrap();
        assert_eq!(
            got,
            (run.sent, bench::pattern_checksum(run.sent)),
            "the stream is the pattern, all of it"
        );
        // The guest said stop after 0.6 s: the host went on to 5 windows.
        assert_eq!(run.windows.len(), bench::MIN_WINDOWS, "{:?}", run.windows);
        assert!(run
            .windows
            .iter()
            .all(|w| w.elapsed >= Duration::from_millis(bench::MIN_WINDOW_MS)));
        assert!(run.windows.iter().map(|w| w.bytes).sum::<u64>() <= run.sent);
        bench::host_figure("x", &run.windows).unwrap();
        assert!(run.lines[2].contains("sink listening"), "{:?}", run.lines);
        assert!(run.lines.last().unwrap().contains("bench net rx"));
        // The client waited for the machine to power off by itself.
        assert_eq!(outcome.exit_code, EXIT_OK, "{outcome:?}");
        assert_eq!(outcome.summary, ["all domains stopped: 2 ok, 0 failed"]);
    }

    #[test]
    fn a_guest_that_closes_before_stop_fails_the_host_client() {
        let p = fake("echo '[sink] net: sink listening on TCP port 5001'; exec sleep 30");
        let (_, client) = run_prepared(&p, Some(60), |r| {
            let addr = r.addr(bench::NET_SINK, bench::NET_PORT).unwrap();
            let server = std::net::TcpListener::bind(addr).unwrap();
            let guest = std::thread::spawn(move || {
                let (mut c, _) = server.accept().unwrap();
                let mut buf = vec![0u8; 100_000];
                c.read_exact(&mut buf).unwrap();
                // Closes its side without a word, then drains.
                c.shutdown(Shutdown::Write).unwrap();
                let _ = io::copy(&mut c, &mut io::sink());
            });
            let client = host_client(r, Some(Duration::from_secs(30)));
            guest.join().unwrap();
            client
        })
        .unwrap();
        let e = client.unwrap_err();
        assert!(
            matches!(e, HostError::ClosedEarly { stopped: false, windows, bytes } if windows < 5 && bytes >= 100_000),
            "{e}"
        );
        assert!(e.to_string().contains("before it said stop"), "{e}");
    }

    #[test]
    fn the_host_client_gives_up_when_qemu_ends() {
        let p = fake("echo '[sink] net: cannot listen on port 5001'");
        let (_, client) = run_prepared(&p, Some(60), |r| {
            host_client(r, Some(Duration::from_secs(30)))
        })
        .unwrap();
        let e = client.unwrap_err();
        assert!(matches!(e, HostError::Ended(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "QEMU ended before sink listened on port 5001"
        );
        // No forward to the sink: said at once.
        let mut p = fake("exec sleep 30");
        p.forwards.clear();
        let (_, client) = run_prepared(&p, Some(60), |r| host_client(r, None)).unwrap();
        assert_eq!(
            client.unwrap_err().to_string(),
            "the scenario forwards no host port to sink:5001"
        );
    }

    #[test]
    fn domain_lines() {
        assert!(from_domain(
            "[sink] bench net rx bytes=1",
            "sink",
            "bench net rx"
        ));
        assert!(!from_domain(
            "[source] bench net rx bytes=1",
            "sink",
            "bench net rx"
        ));
        assert!(!from_domain("bench net rx", "sink", "bench net rx"));
    }
}
