//! `bench net`: the lines of net-guest's TCP transfers, their checks, and
//! the report next to the raw ring.

use std::fmt::Write as _;

use serde::Serialize;

use std::time::Duration;

use super::stats::{figure, Window};
use super::{
    bench_tokens, cpus_text, pretty, ring_run, BenchError, Fields, Figure, RingResult, MIB,
    MIN_WINDOWS, MIN_WINDOW_MS, RING_SCENARIOS, RING_TARGET_SIZE,
};
use crate::transcript::split_prefix;

/// The raw-ring run of `bench net`: bench ring's 2-CPU scenario, at
/// [`RING_TARGET_SIZE`] only (see [`NET_RING_SIZES`]), with the TCP path's
/// work ([`NET_RING_WORK`]).
pub const NET_RING_SCENARIO: &str = RING_SCENARIOS[1];
/// The `sizes=` word `bench net` gives the ring sender.
pub const NET_RING_SIZES: &str = "4096";
/// The `work=` word `bench net` gives the ring sender: the pattern written
/// into every message and FNV-1a over every byte received, as net-guest
/// does on the TCP path, so that the ratio compares transports.
pub const NET_RING_WORK: &str = "net";
/// Guest-to-guest TCP: a `source` guest sends to a `sink` guest.
pub const NET_SCENARIO: &str = "scenarios/bench-net.toml";
/// Host-to-guest TCP: the host sends to a `sink` guest through the uplink.
pub const NET_HOST_SCENARIO: &str = "scenarios/bench-net-host.toml";
/// The receiving guest of both TCP scenarios.
pub const NET_SINK: &str = "sink";
/// The sending guest of [`NET_SCENARIO`].
pub const NET_SOURCE: &str = "source";
/// The sink's TCP port (forwarded from the host in [`NET_HOST_SCENARIO`]).
pub const NET_PORT: u16 = 5001;
/// FNV-1a 64 offset basis.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Byte `i` of the TCP test stream (net-guest's `pattern`).
pub fn net_pattern(i: u64) -> u8 {
    (i.wrapping_mul(7) ^ (i >> 11)) as u8
}

/// Fills `buf` with the stream's bytes from offset `start` on.
pub fn fill_pattern(start: u64, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = net_pattern(start + k as u64);
    }
}

/// FNV-1a 64 continued from `h` over `data`.
pub fn fnv1a64(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The checksum net-guest reports for the first `n` bytes of the stream.
pub fn pattern_checksum(n: u64) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut h, mut at) = (FNV_START, 0u64);
    while at < n {
        let k = (n - at).min(buf.len() as u64) as usize;
        fill_pattern(at, &mut buf[..k]);
        h = fnv1a64(h, &buf[..k]);
        at += k as u64;
    }
    h
}

/// `cmdline` with the word `key=value`: an existing `key=…` word is
/// replaced (the first; any others are dropped), else the word is appended.
pub fn set_word(cmdline: &str, key: &str, value: &str) -> String {
    let word = format!("{key}={value}");
    let mut out: Vec<&str> = Vec::new();
    let mut placed = false;
    for w in cmdline.split_whitespace() {
        if w.split_once('=').is_some_and(|(k, _)| k == key) {
            if !placed {
                out.push(&word);
                placed = true;
            }
        } else {
            out.push(w);
        }
    }
    if !placed {
        out.push(&word);
    }
    out.join(" ")
}

/// A `bench net rx|tx …` line of net-guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetLine {
    /// The domain that printed it.
    pub domain: String,
    /// Bytes received (rx) or sent (tx).
    pub bytes: u64,
    /// FNV-1a 64 of those bytes.
    pub checksum: u64,
    /// Counter ticks of the transfer.
    pub ticks: u64,
    /// Counter frequency, Hz.
    pub freq: u64,
    /// Frames the guest received (rx) or sent (tx).
    pub frames: u64,
    /// Notifications the guest sent its backend.
    pub notify: u64,
    /// `complete=yes`: the transfer ended normally (not on the guest's timeout).
    pub complete: bool,
    /// `windows=`: the window lines the receiver printed (rx; `None` if absent).
    pub windows: Option<u64>,
}

/// A `bench net window …` line: one window of a stream, by the receiver's
/// counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetWindow {
    /// The console line.
    pub line: String,
    /// The domain that printed it.
    pub domain: String,
    /// Window number, from 0.
    pub n: u64,
    /// Bytes that arrived in the window.
    pub bytes: u64,
    /// Counter ticks of the window.
    pub ticks: u64,
    /// Counter frequency, Hz.
    pub freq: u64,
}

/// The `bench net` lines of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetLines {
    /// Receivers' lines, in order.
    pub rx: Vec<NetLine>,
    /// Senders' lines, in order.
    pub tx: Vec<NetLine>,
    /// Window lines, in order.
    pub windows: Vec<NetWindow>,
}

/// Reads the `bench net rx|tx|window …` lines of one run's console; other
/// lines are ignored, a `bench net rx|tx|window` line that cannot be read is
/// an error.
pub fn parse_net<S: AsRef<str>>(lines: &[S]) -> Result<NetLines, BenchError> {
    let mut out = NetLines::default();
    for line in lines {
        let line = line.as_ref();
        let Some(tokens) = bench_tokens(line, "net") else {
            continue;
        };
        let Some((&dir, rest)) = tokens.split_first() else {
            continue;
        };
        if dir != "rx" && dir != "tx" && dir != "window" {
            continue;
        }
        let f = Fields::parse(line, rest)?;
        let domain = split_prefix(line).map_or("", |(p, _)| p).to_owned();
        if dir == "window" {
            out.windows.push(NetWindow {
                line: line.to_owned(),
                domain,
                n: f.u64("n")?,
                bytes: f.u64("bytes")?,
                ticks: f.u64("ticks")?,
                freq: f.u64("freq")?,
            });
            continue;
        }
        let sum = f.str("checksum")?;
        let checksum = u64::from_str_radix(sum, 16)
            .map_err(|_| f.malformed(format!("`checksum={sum}`: expected 16 hex digits")))?;
        let complete = match f.str("complete")? {
            "yes" => true,
            "no" => false,
            other => return Err(f.malformed(format!("`complete={other}`: expected `yes` or `no`"))),
        };
        let parsed = NetLine {
            domain,
            bytes: f.u64("bytes")?,
            checksum,
            ticks: f.u64("ticks")?,
            freq: f.u64("freq")?,
            frames: f.u64("frames")?,
            notify: f.u64("notify")?,
            complete,
            windows: match f.str("windows") {
                Ok(_) => Some(f.u64("windows")?),
                Err(_) => None,
            },
        };
        if dir == "rx" {
            out.rx.push(parsed);
        } else {
            out.tx.push(parsed);
        }
    }
    Ok(out)
}

/// One TCP stream as checked: every byte that arrived, and the receiver's
/// windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// Bytes that arrived and were checked: the whole stream (the windows,
    /// and what arrived before and after them).
    pub bytes: u64,
    /// Their FNV-1a 64, equal to the pattern's.
    pub checksum: u64,
    /// MiB/s by the receiver's counter, over its windows.
    pub mib_s: Figure,
    /// Seconds the windows took, by the receiver's counter.
    pub secs: f64,
    /// Counter frequency, Hz.
    pub freq: u64,
    /// Frames the receiver got (the whole stream).
    pub frames: u64,
    /// Notifications the guests sent their backend (receiver + sender).
    pub notify: u64,
}

fn one<'a>(lines: &'a [NetLine], dir: &str, what: &str) -> Result<&'a NetLine, BenchError> {
    match lines {
        [] => Err(BenchError::Missing(format!(
            "`bench net {dir} …` from {what}"
        ))),
        [l] => Ok(l),
        [a, b, ..] => Err(BenchError::Duplicate(format!(
            "`bench net {dir}` printed twice (by {} and {})",
            a.domain, b.domain
        ))),
    }
}

/// Checks what the receiver reports against `sent` pattern bytes: the whole
/// stream arrived, with the pattern's checksum.
fn check_rx(path: &str, rx: &NetLine, sent: u64, expected_sum: u64) -> Result<(), BenchError> {
    let fail = |problem: String| BenchError::Transfer {
        path: path.to_owned(),
        problem,
    };
    if !rx.complete {
        return Err(fail(format!(
            "{} gave up before the sender closed (complete=no, {} bytes received)",
            rx.domain, rx.bytes
        )));
    }
    if rx.bytes != sent {
        return Err(fail(format!(
            "{} received {} bytes but {sent} were sent",
            rx.domain, rx.bytes
        )));
    }
    if rx.checksum != expected_sum {
        return Err(BenchError::ChecksumMismatch {
            path: path.to_owned(),
            bytes: sent,
            expected: format!("{expected_sum:016x}"),
            got: format!("{:016x}", rx.checksum),
        });
    }
    Ok(())
}

/// The receiver's windows: its `bench net window` lines, numbered 0, 1, … as
/// many as its `windows=` says, at least [`super::MIN_WINDOWS`] of at least
/// [`super::MIN_WINDOW_MS`] each ([`figure`]). MiB/s over them, and their
/// seconds.
fn rx_windows(path: &str, rx: &NetLine, all: &[NetWindow]) -> Result<(Figure, f64), BenchError> {
    let fail = |problem: String| BenchError::Transfer {
        path: path.to_owned(),
        problem,
    };
    let said = rx.windows.ok_or_else(|| {
        fail(format!(
            "{}'s `bench net rx` line has no `windows=` (a sink without `windows=N` times no windows)",
            rx.domain
        ))
    })?;
    let ws: Vec<&NetWindow> = all.iter().filter(|w| w.domain == rx.domain).collect();
    for (i, w) in ws.iter().enumerate() {
        if w.n != i as u64 {
            return Err(fail(format!(
                "{} printed window n={} where n={i} was due",
                rx.domain, w.n
            )));
        }
    }
    if ws.len() as u64 != said {
        return Err(fail(format!(
            "{} says windows={said} but printed {} window line(s)",
            rx.domain,
            ws.len()
        )));
    }
    let secs = |w: &NetWindow| w.ticks as f64 / w.freq.max(1) as f64;
    let fig = figure(
        &format!("{path} MiB/s"),
        &ws.iter()
            .map(|w| Window::mib_s(&w.line, w.bytes, w.ticks, w.freq))
            .collect::<Vec<_>>(),
    )?;
    if ws.iter().map(|w| w.bytes).sum::<u64>() == 0 {
        return Err(fail("no bytes arrived in the windows".into()));
    }
    Ok((fig, ws.iter().map(|w| secs(w)).sum()))
}

/// One window of the host's sending, by the host's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostWindow {
    /// Bytes the host's socket took in the window.
    pub bytes: u64,
    /// How long the window took.
    pub elapsed: Duration,
}

/// The host's figure over its windows (at least [`super::MIN_WINDOWS`] of at
/// least [`super::MIN_WINDOW_MS`]): MiB/s, and their seconds.
pub fn host_figure(path: &str, windows: &[HostWindow]) -> Result<(Figure, f64), BenchError> {
    let lines: Vec<String> = windows
        .iter()
        .enumerate()
        .map(|(n, w)| {
            format!(
                "host window n={n} bytes={} ns={}",
                w.bytes,
                w.elapsed.as_nanos()
            )
        })
        .collect();
    let fig = figure(
        &format!("{path} MiB/s by the host's clock"),
        &windows
            .iter()
            .zip(&lines)
            .map(|(w, line)| Window {
                line,
                ticks: u64::try_from(w.elapsed.as_nanos()).unwrap_or(u64::MAX),
                freq: 1_000_000_000,
                value: w.bytes as f64 / w.elapsed.as_secs_f64().max(1e-9) / MIB,
            })
            .collect::<Vec<_>>(),
    )?;
    Ok((fig, windows.iter().map(|w| w.elapsed.as_secs_f64()).sum()))
}

/// The label of the guest-to-guest path in errors and reports.
pub const GUEST_TO_GUEST: &str = "guest to guest";
/// The label of the host-to-guest path in errors and reports.
pub const HOST_TO_GUEST: &str = "host to guest";
/// The label of the host-to-driver-domain path in errors and reports.
pub const HOST_TO_DRIVER: &str = "host to driver domain";

/// Guest-to-guest TCP: one `bench net tx` line (the source), one `bench net
/// rx` line (the sink) and the sink's window lines. The source must have
/// completed; both must report the same byte count with the pattern's
/// checksum over it ([`pattern_checksum`]); the figure is the sink's windows'.
pub fn net_guest_to_guest<S: AsRef<str>>(lines: &[S]) -> Result<Transfer, BenchError> {
    let l = parse_net(lines)?;
    let tx = one(&l.tx, "tx", "the sender")?;
    let rx = one(&l.rx, "rx", "the receiver")?;
    let bytes = tx.bytes;
    if !tx.complete {
        return Err(BenchError::Transfer {
            path: GUEST_TO_GUEST.to_owned(),
            problem: format!(
                "{} gave up after sending {bytes} bytes (complete=no)",
                tx.domain
            ),
        });
    }
    let expected = pattern_checksum(bytes);
    if tx.checksum != expected {
        return Err(BenchError::ChecksumMismatch {
            path: format!("{GUEST_TO_GUEST} ({} sent)", tx.domain),
            bytes,
            expected: format!("{expected:016x}"),
            got: format!("{:016x}", tx.checksum),
        });
    }
    check_rx(GUEST_TO_GUEST, rx, bytes, expected)?;
    let (mib_s, secs) = rx_windows(GUEST_TO_GUEST, rx, &l.windows)?;
    Ok(Transfer {
        bytes,
        checksum: expected,
        mib_s,
        secs,
        freq: rx.freq,
        frames: rx.frames,
        notify: rx.notify + tx.notify,
    })
}

/// Host to a sink (`path`: [`HOST_TO_GUEST`] or [`HOST_TO_DRIVER`]): the
/// host sent `sent` pattern bytes; one `bench net rx` line must report them
/// all, with the pattern's checksum; the figure is the sink's windows'.
pub fn net_host_to_sink<S: AsRef<str>>(
    path: &str,
    lines: &[S],
    sent: u64,
) -> Result<Transfer, BenchError> {
    let l = parse_net(lines)?;
    let rx = one(&l.rx, "rx", "the receiver")?;
    let expected = pattern_checksum(sent);
    check_rx(path, rx, sent, expected)?;
    let (mib_s, secs) = rx_windows(path, rx, &l.windows)?;
    Ok(Transfer {
        bytes: sent,
        checksum: expected,
        mib_s,
        secs,
        freq: rx.freq,
        frames: rx.frames,
        notify: rx.notify,
    })
}

/// The raw ring figure of `bench net`: the ring lines of the 2-CPU run,
/// checked as `bench ring` checks them (windows included), at
/// [`RING_TARGET_SIZE`], with the TCP path's work (`work=net`).
pub fn net_ring<S: AsRef<str>>(lines: &[S]) -> Result<RingResult, BenchError> {
    let r = ring_run(2, lines)?
        .into_iter()
        .find(|r| r.size == RING_TARGET_SIZE)
        .ok_or_else(|| {
            BenchError::Missing(format!(
                "`bench ring rx size={RING_TARGET_SIZE}` (the ring was not measured at {RING_TARGET_SIZE} B)"
            ))
        })?;
    if r.work != NET_RING_WORK {
        return Err(BenchError::Inconsistent {
            size: r.size,
            problem: format!(
                "the raw ring ran with work={} instead of the TCP path's work \
                 (its sender needs `work={NET_RING_WORK}`)",
                r.work
            ),
        });
    }
    Ok(r)
}

/// One row of `bench net`. Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetResult {
    /// `ring_4096_2cpu`, `guest_to_guest_tcp`, `host_to_guest_tcp` or
    /// `host_to_driver_uplink_only`.
    pub name: String,
    /// For humans.
    pub path: String,
    /// The scenario file that was booted.
    pub scenario: String,
    /// What `bench net` changed in the guests' command lines, as
    /// `DOMAIN: key=value`.
    pub overrides: Vec<String>,
    /// Bytes checked: TCP the whole stream (its windows and what came before
    /// and after them), the ring its windows'.
    pub bytes: u64,
    /// FNV-1a 64 of the TCP stream as checked (hex); `None` for the ring,
    /// whose receiver checks every byte itself (`work=net`).
    pub checksum: Option<String>,
    /// Seconds the receiver's windows took, by its counter.
    pub secs: f64,
    /// MiB/s by the receiving guest's counter: median, min, max and every
    /// window's sample.
    pub mib_s: Figure,
    /// Seconds the host's windows took, by the host's clock (host to a sink
    /// only).
    pub wall_secs: Option<f64>,
    /// MiB/s the host sent by its clock, over its own windows (host to a
    /// sink only).
    pub wall_mib_s: Option<Figure>,
    /// Frames the receiving guest got (TCP only, the whole stream).
    pub frames: Option<u64>,
    /// Event notifications the guests sent (ring: both ends; TCP: both
    /// guests to their backend).
    pub notify: Option<u64>,
    /// The ring's work besides the copies (`net`: the pattern and FNV-1a,
    /// as on the TCP path).
    pub work: Option<String>,
}

impl NetResult {
    /// The ring row.
    pub fn ring(r: &RingResult, scenario: &str, overrides: Vec<String>) -> Self {
        NetResult {
            name: format!("ring_{}_{}cpu", r.size, r.cpus),
            path: format!("raw ring, {} B messages, {}", r.size, cpus_text(r.cpus)),
            scenario: scenario.to_owned(),
            overrides,
            bytes: r.bytes,
            checksum: None,
            secs: r.secs,
            mib_s: r.mib_s.clone(),
            wall_secs: None,
            wall_mib_s: None,
            frames: None,
            notify: Some((r.notify_per_msg * r.msgs as f64).round() as u64),
            work: Some(r.work.clone()),
        }
    }

    /// A TCP row; `host` is the host's figure and its seconds (host to a
    /// sink).
    pub fn tcp(
        name: &str,
        path: &str,
        scenario: &str,
        overrides: Vec<String>,
        t: &Transfer,
        host: Option<(Figure, f64)>,
    ) -> Self {
        let (wall_mib_s, wall_secs) = host.unzip();
        NetResult {
            name: name.to_owned(),
            path: path.to_owned(),
            scenario: scenario.to_owned(),
            overrides,
            bytes: t.bytes,
            checksum: Some(format!("{:016x}", t.checksum)),
            secs: t.secs,
            mib_s: t.mib_s.clone(),
            wall_secs,
            wall_mib_s,
            frames: Some(t.frames),
            notify: Some(t.notify),
            work: None,
        }
    }
}

/// The clock the `bench net` figures use, for the report and the JSON.
pub fn net_clock(freq: u64) -> String {
    format!(
        "guest counter at {freq} Hz, QEMU TCG without -icount (guest time follows host time, as in bench ring); every figure the median (min–max) of at least {MIN_WINDOWS} windows of at least {MIN_WINDOW_MS} ms; host figures by the host's clock over its own windows"
    )
}

/// What `bench net` reports: the rows and the ratio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetReport {
    /// `bench net`, for the JSON.
    pub bench: &'static str,
    /// The command that produced it.
    pub command: String,
    /// Which clock the figures use.
    pub clock: String,
    /// The ring, guest to guest, host to guest (then host to the driver
    /// domain).
    pub results: Vec<NetResult>,
    /// Guest-to-guest TCP MiB/s over raw ring MiB/s, medians.
    pub ratio_tcp_to_ring: f64,
}

impl NetReport {
    /// The report over `ring`, `g2g` and `h2g` (in that order in `results`).
    pub fn new(
        command: String,
        clock: String,
        ring: NetResult,
        g2g: NetResult,
        h2g: NetResult,
    ) -> Self {
        let ratio = if ring.mib_s.median > 0.0 {
            g2g.mib_s.median / ring.mib_s.median
        } else {
            0.0
        };
        NetReport {
            bench: "net",
            command,
            clock,
            results: vec![ring, g2g, h2g],
            ratio_tcp_to_ring: ratio,
        }
    }

    /// The table, for stdout: per path the bytes checked, the windows, MiB/s
    /// by the receiver's counter and by the host's clock as `median
    /// (min–max)`, and what was checked; then the ratio of the medians.
    pub fn text(&self) -> String {
        let mut s = String::from("bench net: results\n");
        let _ = writeln!(s, "  clock: {}", self.clock);
        let width = self
            .results
            .iter()
            .map(|r| r.path.len())
            .chain([4])
            .max()
            .unwrap_or(4);
        let _ = writeln!(
            s,
            "{:<width$} {:>10} {:>7} {:>26} {:>26}  checked",
            "path", "bytes", "windows", "MiB/s (min–max)", "host MiB/s (min–max)"
        );
        for r in &self.results {
            let host = r
                .wall_mib_s
                .as_ref()
                .map_or_else(|| "-".to_owned(), |f| f.text(2));
            let checked = match (&r.checksum, r.work.as_deref()) {
                (Some(c), _) => format!("fnv1a64 {c} ok"),
                (None, Some("net")) => "fnv1a64 of every byte ok".to_owned(),
                (None, _) => "digest ok".to_owned(),
            };
            let windows = match &r.wall_mib_s {
                Some(h) => format!("{}/{}", r.mib_s.samples.len(), h.samples.len()),
                None => r.mib_s.samples.len().to_string(),
            };
            let _ = writeln!(
                s,
                "{:<width$} {:>10} {:>7} {:>26} {:>26}  {}",
                r.path,
                r.bytes,
                windows,
                r.mib_s.text(2),
                host,
                checked
            );
        }
        let _ = writeln!(
            s,
            "  windows: the receiver's (/the host's); bytes: TCP the whole stream, every byte checked; the raw ring does the TCP path's work (the pattern written, FNV-1a over every byte received)"
        );
        let _ = writeln!(
            s,
            "guest-to-guest TCP / raw ring: {:.4}",
            self.ratio_tcp_to_ring
        );
        s
    }

    /// The `--json` document: `{"bench":"net","command":…,"clock":…,
    /// "results":[…],"ratio_tcp_to_ring":…}`, pretty-printed with the keys
    /// in that order, ending with a newline.
    pub fn json(&self) -> String {
        pretty(self)
    }
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
