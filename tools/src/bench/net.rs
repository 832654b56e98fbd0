//! `bench net`: the lines of net-guest's TCP transfers, their checks, and
//! the report next to the raw ring.

use std::fmt::Write as _;

use serde::Serialize;

use super::{
    bench_tokens, cpus_text, parse_ring, pretty, ring_results, BenchError, Fields, RingResult,
    RingRx, MIB, RING_SCENARIOS, RING_TARGET_SIZE,
};
use crate::transcript::split_prefix;

/// The raw-ring run of `bench net`: bench ring's 2-CPU scenario, at
/// [`RING_TARGET_SIZE`] only (see [`NET_RING_SIZES`]).
pub const NET_RING_SCENARIO: &str = RING_SCENARIOS[1];
/// The `sizes=` word `bench net` gives the ring sender.
pub const NET_RING_SIZES: &str = "4096";
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
/// checked as `bench ring` checks them, at [`RING_TARGET_SIZE`].
pub fn net_ring<S: AsRef<str>>(lines: &[S]) -> Result<(RingResult, RingRx), BenchError> {
    let parsed = parse_ring(lines)?;
    let results = ring_results(2, &parsed)?;
    let missing = || {
        BenchError::Missing(format!(
            "`bench ring rx size={RING_TARGET_SIZE}` (the ring was not measured at {RING_TARGET_SIZE} B)"
        ))
    };
    let r = results
        .into_iter()
        .find(|r| r.size == RING_TARGET_SIZE)
        .ok_or_else(missing)?;
    let rx = parsed
        .rx
        .into_iter()
        .find(|r| r.size == RING_TARGET_SIZE)
        .ok_or_else(missing)?;
    Ok((r, rx))
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
}

impl NetResult {
    /// The ring row.
    pub fn ring(r: &RingResult, rx: &RingRx, scenario: &str, overrides: Vec<String>) -> Self {
        let secs = if rx.freq == 0 {
            0.0
        } else {
            rx.ticks as f64 / rx.freq as f64
        };
        NetResult {
            name: format!("ring_{}_{}cpu", r.size, r.cpus),
            path: format!("raw ring, {} B messages, {}", r.size, cpus_text(r.cpus)),
            scenario: scenario.to_owned(),
            overrides,
            bytes: rx.bytes,
            checksum: None,
            secs,
            mib_s: r.mib_s,
            wall_secs: None,
            wall_mib_s: None,
            frames: None,
            notify: Some((r.notify_per_msg * rx.msgs as f64).round() as u64),
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
            let checked = r
                .checksum
                .as_ref()
                .map_or_else(|| "digest ok".to_owned(), |c| format!("fnv1a64 {c} ok"));
            let _ = writeln!(
                s,
                "{:<width$} {:>10} {:>9.3} {:>9.2} {:>11}  {}",
                r.path, r.bytes, r.secs, r.mib_s, host, checked
            );
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
mod tests {
    use super::*;
    use crate::bench::ring::tests::{RX_4096, TX_4096};
    use crate::bench::test_support::value;
    use serde_json::json;

    /// 4 MiB of the pattern, as a real net.toml run reported it.
    const SUM_4MIB: u64 = 0x50b5_59db_c8e4_2325;

    #[test]
    fn pattern_and_checksum_match_the_guest() {
        assert_eq!(pattern_checksum(0), FNV_START);
        assert_eq!(pattern_checksum(4 << 20), SUM_4MIB);
        // FNV-1a 64 of "a", the published test vector.
        assert_eq!(fnv1a64(FNV_START, b"a"), 0xaf63_dc4c_8601_ec8c);
        let mut b = [0u8; 4];
        fill_pattern(2047, &mut b);
        assert_eq!(
            b,
            [
                net_pattern(2047),
                net_pattern(2048),
                net_pattern(2049),
                net_pattern(2050)
            ]
        );
        assert_eq!(net_pattern(2048), ((2048u64 * 7) ^ 1) as u8);
        // Chunking does not matter.
        let mut whole = vec![0u8; 200_000];
        fill_pattern(0, &mut whole);
        assert_eq!(fnv1a64(FNV_START, &whole), pattern_checksum(200_000));
    }

    #[test]
    fn words_are_set_in_command_lines() {
        assert_eq!(
            set_word("role=source bytes=4194304 bench", "bytes", "16"),
            "role=source bytes=16 bench"
        );
        assert_eq!(set_word("tx", "sizes", "4096"), "tx sizes=4096");
        assert_eq!(set_word("", "sizes", "4096"), "sizes=4096");
        assert_eq!(set_word("a=1  a=2 b", "a", "3"), "a=3 b");
        // `bytesx=` is another key.
        assert_eq!(set_word("bytesx=1", "bytes", "2"), "bytesx=1 bytes=2");
    }

    fn rx_line(domain: &str, bytes: u64, sum: u64) -> String {
        format!(
            "[{domain}] bench net rx bytes={bytes} checksum={sum:016x} ticks=62500000 \
             freq=62500000 frames=2888 notify=84 complete=yes"
        )
    }

    fn tx_line(bytes: u64, sum: u64) -> String {
        format!(
            "[source] bench net tx complete=yes notify=16 frames=3000 freq=62500000 \
             ticks=70000000 checksum={sum:016x} bytes={bytes} extra=1"
        )
    }

    fn g2g(bytes: u64, lines: &[String]) -> Result<Transfer, BenchError> {
        net_guest_to_guest(lines, bytes)
    }

    #[test]
    fn net_lines_parse() {
        let l = parse_net(&[
            "[sink] net: sink received 4194304 bytes, checksum 50b559dbc8e42325, in 1 s".to_owned(),
            "[hv] bench net rx bytes=1".to_owned(),
            "[sink] bench net done".to_owned(),
            rx_line("sink", 4 << 20, SUM_4MIB),
            tx_line(4 << 20, SUM_4MIB),
        ])
        .unwrap();
        assert_eq!(
            l.rx,
            [NetLine {
                domain: "sink".into(),
                bytes: 4 << 20,
                checksum: SUM_4MIB,
                ticks: 62_500_000,
                freq: 62_500_000,
                frames: 2888,
                notify: 84,
                complete: true,
            }]
        );
        assert_eq!(l.tx.len(), 1);
        assert_eq!((l.tx[0].ticks, l.tx[0].notify), (70_000_000, 16));
        for (bad, says) in [
            ("checksum=xyz", "`checksum=xyz`: expected 16 hex digits"),
            ("complete=maybe", "expected `yes` or `no`"),
            ("ticks=-1", "`ticks=-1`"),
        ] {
            let key = bad.split('=').next().unwrap();
            let line = rx_line("sink", 1, 1)
                .split_whitespace()
                .map(|w| {
                    if w.starts_with(&format!("{key}=")) {
                        bad
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
            let e = parse_net(&[line]).unwrap_err().to_string();
            assert!(e.starts_with("malformed line") && e.contains(says), "{e}");
        }
        let e = parse_net(&["[sink] bench net rx bytes=1"]).unwrap_err();
        assert!(e.to_string().contains("missing field `checksum=`"), "{e}");
    }

    #[test]
    fn guest_to_guest_is_checked_and_computed() {
        let n = 4 << 20;
        let t = g2g(n, &[rx_line("sink", n, SUM_4MIB), tx_line(n, SUM_4MIB)]).unwrap();
        // 4 MiB in 1 s by the sink's counter; notifications of both guests.
        assert_eq!(
            t,
            Transfer {
                bytes: n,
                checksum: SUM_4MIB,
                secs: 1.0,
                freq: 62_500_000,
                frames: 2888,
                notify: 100,
            }
        );
        assert_eq!(t.mib_s(), 4.0);
    }

    #[test]
    fn guest_to_guest_failures_are_loud() {
        let n = 4 << 20;
        let good_rx = rx_line("sink", n, SUM_4MIB);
        let good_tx = tx_line(n, SUM_4MIB);
        // The sink got other bytes.
        let e = g2g(n, &[rx_line("sink", n, 0x1234), good_tx.clone()]).unwrap_err();
        assert_eq!(
            e,
            BenchError::ChecksumMismatch {
                path: "guest to guest".into(),
                bytes: n,
                expected: "50b559dbc8e42325".into(),
                got: "0000000000001234".into(),
            }
        );
        assert_eq!(
            e.to_string(),
            "guest to guest: checksum mismatch over 4194304 bytes: expected fnv1a64 \
             50b559dbc8e42325, got 0000000000001234"
        );
        // The source sent other bytes.
        let e = g2g(n, &[good_rx.clone(), tx_line(n, 7)]).unwrap_err();
        assert!(matches!(e, BenchError::ChecksumMismatch { .. }), "{e}");
        assert!(
            e.to_string().starts_with("guest to guest (source sent)"),
            "{e}"
        );
        // Short transfers.
        let e = g2g(n, &[rx_line("sink", n - 1, SUM_4MIB), good_tx.clone()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "guest to guest: sink received 4194303 bytes but 4194304 were sent"
        );
        let e = g2g(n, &[good_rx.clone(), tx_line(n - 1, SUM_4MIB)]).unwrap_err();
        assert!(
            e.to_string()
                .contains("source sent 4194303 of 4194304 bytes"),
            "{e}"
        );
        let e = g2g(
            n,
            &[
                good_rx.replace("complete=yes", "complete=no"),
                good_tx.clone(),
            ],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("gave up before the sender closed"),
            "{e}"
        );
        // Missing, duplicate, no time.
        let e = g2g(n, std::slice::from_ref(&good_tx)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing line: `bench net rx …` from the receiver"
        );
        let e = g2g(n, std::slice::from_ref(&good_rx)).unwrap_err();
        assert!(
            e.to_string().contains("`bench net tx …` from the sender"),
            "{e}"
        );
        let e = g2g(
            n,
            &[
                good_rx.clone(),
                rx_line("other", n, SUM_4MIB),
                good_tx.clone(),
            ],
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("`bench net rx` printed twice (by sink and other)"),
            "{e}"
        );
        let e = g2g(n, &[good_rx.replace("ticks=62500000", "ticks=0"), good_tx]).unwrap_err();
        assert!(e.to_string().contains("ticks=0"), "{e}");
    }

    #[test]
    fn host_to_guest_is_checked() {
        let n = 4 << 20;
        let t = net_host_to_guest(&["[hv] x".to_owned(), rx_line("sink", n, SUM_4MIB)], n).unwrap();
        assert_eq!((t.bytes, t.notify, t.mib_s()), (n, 84, 4.0));
        let e = net_host_to_guest(&[rx_line("sink", n, SUM_4MIB)], n + 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "host to guest: sink received 4194304 bytes but 4194305 were sent"
        );
        let e = net_host_to_guest(&[rx_line("sink", n, 1)], n).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("host to guest: checksum mismatch"),
            "{e}"
        );
        let e = net_host_to_guest(&["[sink] nothing"], n).unwrap_err();
        assert!(matches!(e, BenchError::Missing(_)), "{e}");
    }

    #[test]
    fn the_ring_figure_is_the_4096_row() {
        let done = "[ring-rx] bench ring done sizes=1";
        let (r, rx) = net_ring(&[TX_4096, RX_4096, done]).unwrap();
        assert_eq!((r.size, r.cpus, r.mib_s), (4096, 2, 4.0));
        assert_eq!((rx.bytes, rx.ticks), (4 << 20, 62_500_000));
        let row = NetResult::ring(
            &r,
            &rx,
            NET_RING_SCENARIO,
            vec!["ring-tx: sizes=4096".into()],
        );
        assert_eq!(row.name, "ring_4096_2cpu");
        assert_eq!((row.bytes, row.secs, row.notify), (4 << 20, 1.0, Some(32)));
        // Measured at other sizes only.
        let e = net_ring(&[
            "[ring-tx] bench ring tx size=64 msgs=1 notify=0",
            "[ring-rx] bench ring rx size=64 msgs=1 bytes=64 ticks=1 freq=1 notify=0 \
             switches=0 memcpy_bytes=64 memcpy_ticks=1 checksum=ok",
            done,
        ])
        .unwrap_err();
        assert!(e.to_string().contains("not measured at 4096 B"), "{e}");
        // A bad ring checksum fails as in bench ring.
        let bad = RX_4096.replace("checksum=ok", "checksum=bad");
        assert_eq!(
            net_ring(&[TX_4096, &bad, done]).unwrap_err(),
            BenchError::BadChecksum { size: 4096 }
        );
    }

    fn net_report() -> NetReport {
        let done = "[ring-rx] bench ring done sizes=1";
        let (r, rx) = net_ring(&[TX_4096, RX_4096, done]).unwrap();
        let n = 4 << 20;
        let t = g2g(n, &[rx_line("sink", n, SUM_4MIB), tx_line(n, SUM_4MIB)]).unwrap();
        let h = net_host_to_guest(
            &[rx_line("sink", n, SUM_4MIB).replace("ticks=62500000", "ticks=125000000")],
            n,
        )
        .unwrap();
        NetReport::new(
            "cargo parapet bench net --bytes 4194304".into(),
            net_clock(62_500_000),
            NetResult::ring(
                &r,
                &rx,
                NET_RING_SCENARIO,
                vec!["ring-tx: sizes=4096".into()],
            ),
            NetResult::tcp(
                "guest_to_guest_tcp",
                "guest to guest",
                NET_SCENARIO,
                vec!["source: bytes=4194304".into()],
                &t,
                None,
            ),
            NetResult::tcp(
                "host_to_guest_tcp",
                "host to guest",
                NET_HOST_SCENARIO,
                vec![],
                &h,
                Some(4.0),
            ),
        )
    }

    #[test]
    fn net_report_ratio_and_table() {
        let rep = net_report();
        // Guest TCP 4 MiB/s over a ring of 4 MiB/s.
        assert_eq!(rep.ratio_tcp_to_ring, 1.0);
        let text = rep.text();
        assert!(text.contains("guest counter at 62500000 Hz"), "{text}");
        assert!(text.contains("without -icount"), "{text}");
        assert!(
            text.contains("guest-to-guest TCP / raw ring: 1.0000"),
            "{text}"
        );
        let row = text
            .lines()
            .find(|l| l.starts_with("host to guest"))
            .unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        // path (3 words), bytes, secs, MiB/s, host MiB/s, checksum.
        assert_eq!(&cols[3..7], ["4194304", "2.000", "2.00", "1.00"], "{row}");
        assert!(row.ends_with("fnv1a64 50b559dbc8e42325 ok"), "{row}");
        assert!(text.contains("digest ok"), "{text}");
        // No ring throughput: no ratio rather than infinity.
        let mut zero = rep.results[0].clone();
        zero.mib_s = 0.0;
        let z = NetReport::new(
            String::new(),
            String::new(),
            zero,
            rep.results[1].clone(),
            rep.results[2].clone(),
        );
        assert_eq!(z.ratio_tcp_to_ring, 0.0);
    }

    #[test]
    fn net_json_shape() {
        let text = net_report().json();
        let v = value(&text);
        assert_eq!(v["bench"], "net");
        assert_eq!(v["command"], "cargo parapet bench net --bytes 4194304");
        assert!(v["clock"].as_str().unwrap().contains("62500000 Hz"));
        assert_eq!(v["ratio_tcp_to_ring"], 1.0);
        let results = v["results"].as_array().unwrap();
        let names: Vec<&str> = results
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["ring_4096_2cpu", "guest_to_guest_tcp", "host_to_guest_tcp"]
        );
        assert_eq!(
            results[2],
            json!({
                "name": "host_to_guest_tcp", "path": "host to guest",
                "scenario": "scenarios/bench-net-host.toml", "overrides": [],
                "bytes": 4194304, "checksum": "50b559dbc8e42325",
                "secs": 2.0, "mib_s": 2.0, "wall_secs": 4.0, "wall_mib_s": 1.0,
                "frames": 2888, "notify": 84
            })
        );
        assert_eq!(results[0]["checksum"], serde_json::Value::Null);
        assert_eq!(results[0]["overrides"], json!(["ring-tx: sizes=4096"]));
        assert_eq!(results[0]["scenario"], "scenarios/bench-ring-2cpu.toml");
        assert_eq!(results[1]["wall_mib_s"], serde_json::Value::Null);
        let at = |k: &str| text.find(k).unwrap();
        assert!(at("\"bench\"") < at("\"command\"") && at("\"clock\"") < at("\"results\""));
        assert!(at("\"results\"") < at("\"ratio_tcp_to_ring\""));
    }
}
