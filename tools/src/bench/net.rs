//! `bench net`: the lines of net-guest's TCP transfers, their checks, and
//! the report next to the raw ring.

use std::fmt::Write as _;

use serde::Serialize;

use super::{
    bench_tokens, cpus_text, pretty, ring_run, BenchError, Fields, Figure, RingResult, MIB,
    RING_SCENARIOS, RING_TARGET_SIZE,
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
/// Bytes sent over each TCP path unless `--bytes` says otherwise.
pub const NET_DEFAULT_BYTES: u64 = 16 << 20;
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
}

/// The `bench net` lines of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetLines {
    /// Receivers' lines, in order.
    pub rx: Vec<NetLine>,
    /// Senders' lines, in order.
    pub tx: Vec<NetLine>,
}

/// Reads the `bench net rx|tx …` lines of one run's console; other lines
/// are ignored, a `bench net rx|tx` line that cannot be read is an error.
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
        if dir != "rx" && dir != "tx" {
            continue;
        }
        let f = Fields::parse(line, rest)?;
        let sum = f.str("checksum")?;
        let checksum = u64::from_str_radix(sum, 16)
            .map_err(|_| f.malformed(format!("`checksum={sum}`: expected 16 hex digits")))?;
        let complete = match f.str("complete")? {
            "yes" => true,
            "no" => false,
            other => return Err(f.malformed(format!("`complete={other}`: expected `yes` or `no`"))),
        };
        let parsed = NetLine {
            domain: split_prefix(line).map_or("", |(p, _)| p).to_owned(),
            bytes: f.u64("bytes")?,
            checksum,
            ticks: f.u64("ticks")?,
            freq: f.u64("freq")?,
            frames: f.u64("frames")?,
            notify: f.u64("notify")?,
            complete,
        };
        if dir == "rx" {
            out.rx.push(parsed);
        } else {
            out.tx.push(parsed);
        }
    }
    Ok(out)
}

/// One TCP transfer as checked: what arrived, in how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// Bytes that arrived (and were checked).
    pub bytes: u64,
    /// Their FNV-1a 64, equal to the pattern's.
    pub checksum: u64,
    /// Seconds by the receiver's counter.
    pub secs: f64,
    /// Counter frequency, Hz.
    pub freq: u64,
    /// Frames the receiver got.
    pub frames: u64,
    /// Notifications the guests sent their backend (receiver + sender).
    pub notify: u64,
}

impl Transfer {
    /// MiB/s by the receiver's counter.
    pub fn mib_s(&self) -> f64 {
        self.bytes as f64 / self.secs / MIB
    }
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
/// transfer arrived, with the pattern's checksum, in a non-zero time.
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
    if rx.ticks == 0 || rx.freq == 0 {
        return Err(fail(format!(
            "{} reports ticks={} freq={}: no time to divide by",
            rx.domain, rx.ticks, rx.freq
        )));
    }
    Ok(())
}

/// The label of the guest-to-guest path in errors and reports.
pub const GUEST_TO_GUEST: &str = "guest to guest";
/// The label of the host-to-guest path in errors and reports.
pub const HOST_TO_GUEST: &str = "host to guest";

/// Guest-to-guest TCP: one `bench net tx` line (the source) and one `bench
/// net rx` line (the sink). Both must report `bytes` bytes, complete, with
/// the pattern's checksum ([`pattern_checksum`]); the time is the sink's.
pub fn net_guest_to_guest<S: AsRef<str>>(lines: &[S], bytes: u64) -> Result<Transfer, BenchError> {
    let l = parse_net(lines)?;
    let tx = one(&l.tx, "tx", "the sender")?;
    let rx = one(&l.rx, "rx", "the receiver")?;
    let expected = pattern_checksum(bytes);
    if !tx.complete || tx.bytes != bytes {
        return Err(BenchError::Transfer {
            path: GUEST_TO_GUEST.to_owned(),
            problem: format!(
                "{} sent {} of {bytes} bytes{}",
                tx.domain,
                tx.bytes,
                if tx.complete {
                    ""
                } else {
                    " and gave up (complete=no)"
                }
            ),
        });
    }
    if tx.checksum != expected {
        return Err(BenchError::ChecksumMismatch {
            path: format!("{GUEST_TO_GUEST} ({} sent)", tx.domain),
            bytes,
            expected: format!("{expected:016x}"),
            got: format!("{:016x}", tx.checksum),
        });
    }
    check_rx(GUEST_TO_GUEST, rx, bytes, expected)?;
    Ok(Transfer {
        bytes,
        checksum: expected,
        secs: rx.ticks as f64 / rx.freq as f64,
        freq: rx.freq,
        frames: rx.frames,
        notify: rx.notify + tx.notify,
    })
}

/// Host-to-guest TCP: the host sent `sent` pattern bytes; one `bench net rx`
/// line must report them all, with the pattern's checksum.
pub fn net_host_to_guest<S: AsRef<str>>(lines: &[S], sent: u64) -> Result<Transfer, BenchError> {
    let l = parse_net(lines)?;
    let rx = one(&l.rx, "rx", "the receiver")?;
    let expected = pattern_checksum(sent);
    check_rx(HOST_TO_GUEST, rx, sent, expected)?;
    Ok(Transfer {
        bytes: sent,
        checksum: expected,
        secs: rx.ticks as f64 / rx.freq as f64,
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
    /// `ring_4096_2cpu`, `guest_to_guest_tcp` or `host_to_guest_tcp`.
    pub name: String,
    /// For humans.
    pub path: String,
    /// The scenario file that was booted.
    pub scenario: String,
    /// What `bench net` changed in the guests' command lines, as
    /// `DOMAIN: key=value`.
    pub overrides: Vec<String>,
    /// Bytes moved and checked.
    pub bytes: u64,
    /// FNV-1a 64 of the TCP stream as checked (hex); `None` for the ring,
    /// whose receiver checks the sender's digest itself.
    pub checksum: Option<String>,
    /// Seconds by the receiving guest's counter.
    pub secs: f64,
    /// MiB/s by the receiving guest's counter.
    pub mib_s: f64,
    /// Seconds by the host's clock, from connecting to the guest's close
    /// (host to guest only).
    pub wall_secs: Option<f64>,
    /// MiB/s by the host's clock (host to guest only).
    pub wall_mib_s: Option<f64>,
    /// Frames the receiving guest got (TCP only).
    pub frames: Option<u64>,
    /// Event notifications the guests sent (ring: both ends; TCP: both
    /// guests to their backend).
    pub notify: Option<u64>,
    /// The ring's MiB/s over its windows (`mib_s` is their median).
    pub windows: Option<Figure>,
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
            mib_s: r.mib_s.median,
            wall_secs: None,
            wall_mib_s: None,
            frames: None,
            notify: Some((r.notify_per_msg * r.msgs as f64).round() as u64),
            windows: Some(r.mib_s.clone()),
            work: Some(r.work.clone()),
        }
    }

    /// A TCP row; `wall` is the host's time for host to guest.
    pub fn tcp(
        name: &str,
        path: &str,
        scenario: &str,
        overrides: Vec<String>,
        t: &Transfer,
        wall: Option<f64>,
    ) -> Self {
        NetResult {
            name: name.to_owned(),
            path: path.to_owned(),
            scenario: scenario.to_owned(),
            overrides,
            bytes: t.bytes,
            checksum: Some(format!("{:016x}", t.checksum)),
            secs: t.secs,
            mib_s: t.mib_s(),
            wall_secs: wall,
            wall_mib_s: wall.filter(|&w| w > 0.0).map(|w| t.bytes as f64 / w / MIB),
            frames: Some(t.frames),
            notify: Some(t.notify),
            windows: None,
            work: None,
        }
    }
}

/// The clock the `bench net` figures use, for the report and the JSON.
pub fn net_clock(freq: u64) -> String {
    format!(
        "guest counter at {freq} Hz, QEMU TCG without -icount (guest time follows host time, as in bench ring); host figures by the host's clock"
    )
}

/// What `bench net` reports: the three rows and the ratio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetReport {
    /// `bench net`, for the JSON.
    pub bench: &'static str,
    /// The command that produced it.
    pub command: String,
    /// Which clock the figures use.
    pub clock: String,
    /// The ring, guest to guest, host to guest.
    pub results: Vec<NetResult>,
    /// Guest-to-guest TCP MiB/s over raw ring MiB/s.
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
        let ratio = if ring.mib_s > 0.0 {
            g2g.mib_s / ring.mib_s
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

    /// The table, for stdout.
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
            "{:<width$} {:>10} {:>9} {:>9} {:>11}  checked",
            "path", "bytes", "secs", "MiB/s", "host MiB/s"
        );
        for r in &self.results {
            let host = r
                .wall_mib_s
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
            let checked = match (&r.checksum, r.work.as_deref()) {
                (Some(c), _) => format!("fnv1a64 {c} ok"),
                (None, Some("net")) => "fnv1a64 of every byte ok".to_owned(),
                (None, _) => "digest ok".to_owned(),
            };
            let _ = writeln!(
                s,
                "{:<width$} {:>10} {:>9.3} {:>9.2} {:>11}  {}",
                r.path, r.bytes, r.secs, r.mib_s, host, checked
            );
        }
        for r in &self.results {
            if let Some(w) = &r.windows {
                let _ = writeln!(
                    s,
                    "  {}: MiB/s is the median of {} windows, {} (min–max){}",
                    r.path,
                    w.samples.len(),
                    w.text(2),
                    if r.work.as_deref() == Some("net") {
                        "; the same work as the TCP path (the pattern written, FNV-1a over every byte received)"
                    } else {
                        ""
                    }
                );
            }
        }
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
