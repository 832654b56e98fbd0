//! Tests of [`super`] (`bench net`).

use super::*;
use crate::bench::ring::tests::{run_4096, size_lines};
use crate::bench::test_support::value;
use serde_json::json;
use std::time::Duration;

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

/// 0.25 s at 62.5 MHz: the shortest window allowed.
const QUARTER: u64 = 15_625_000;

/// The receiver's `bench net rx` line, saying it printed 5 windows.
fn rx_line(domain: &str, bytes: u64, sum: u64) -> String {
    format!(
        "[{domain}] bench net rx bytes={bytes} checksum={sum:016x} ticks=125000000 \
         freq=62500000 frames=2888 notify=84 complete=yes windows=5"
    )
}

fn tx_line(bytes: u64, sum: u64) -> String {
    format!(
        "[source] bench net tx complete=yes notify=16 frames=3000 freq=62500000 \
         ticks=70000000 checksum={sum:016x} bytes={bytes} extra=1"
    )
}

/// Window lines of `domain`, each 0.25 s, at `mib_s[n]` MiB/s.
fn window_lines(domain: &str, mib_s: &[u64]) -> Vec<String> {
    mib_s
        .iter()
        .enumerate()
        .map(|(n, m)| {
            format!(
                "[{domain}] bench net window n={n} bytes={} ticks={QUARTER} freq=62500000",
                m * (1 << 20) / 4
            )
        })
        .collect()
}

/// A whole guest-to-guest run of `n` bytes: the sink's 5 windows at 2, 4,
/// 8, 6 and 4 MiB/s, its rx line, the source's tx line.
fn g2g_run(n: u64, sum: u64) -> Vec<String> {
    let mut v = vec!["[sink] net: sink listening on TCP port 5001".to_owned()];
    v.extend(window_lines("sink", &[2, 4, 8, 6, 4]));
    v.push(rx_line("sink", n, sum));
    v.push(tx_line(n, sum));
    v
}

fn g2g(lines: &[String]) -> Result<Transfer, BenchError> {
    net_guest_to_guest(lines)
}

#[test]
fn net_lines_parse() {
    let mut lines = vec![
        "[sink] net: sink received 4194304 bytes, checksum 50b559dbc8e42325, in 1 s".to_owned(),
        "[hv] bench net rx bytes=1".to_owned(),
        "[hv] bench net window n=0".to_owned(),
        "[sink] bench net done".to_owned(),
        rx_line("sink", 4 << 20, SUM_4MIB),
        tx_line(4 << 20, SUM_4MIB),
    ];
    lines.extend(window_lines("sink", &[4, 8]));
    let l = parse_net(&lines).unwrap();
    assert_eq!(
        l.rx,
        [NetLine {
            domain: "sink".into(),
            bytes: 4 << 20,
            checksum: SUM_4MIB,
            ticks: 125_000_000,
            freq: 62_500_000,
            frames: 2888,
            notify: 84,
            complete: true,
            windows: Some(5),
        }]
    );
    assert_eq!(l.tx.len(), 1);
    assert_eq!(
        (l.tx[0].ticks, l.tx[0].notify, l.tx[0].windows),
        (70_000_000, 16, None)
    );
    assert_eq!(
        l.windows[1],
        NetWindow {
            line: lines[7].clone(),
            domain: "sink".into(),
            n: 1,
            bytes: 2 << 20,
            ticks: QUARTER,
            freq: 62_500_000,
        }
    );
    for (bad, says) in [
        ("checksum=xyz", "`checksum=xyz`: expected 16 hex digits"),
        ("complete=maybe", "expected `yes` or `no`"),
        ("ticks=-1", "`ticks=-1`"),
        ("windows=five", "`windows=five`"),
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
    let e = parse_net(&["[sink] bench net window n=0 bytes=1 freq=1"]).unwrap_err();
    assert!(e.to_string().contains("missing field `ticks=`"), "{e}");
    let e = parse_net(&["[sink] bench net window n=0 bytes=x ticks=1 freq=1"]).unwrap_err();
    assert!(e.to_string().contains("`bytes=x`"), "{e}");
}

#[test]
fn guest_to_guest_is_checked_and_computed() {
    let n = 40 << 20;
    let sum = pattern_checksum(n);
    let t = g2g(&g2g_run(n, sum)).unwrap();
    // The sink's windows, in the order measured; notifications of both guests.
    assert_eq!(
        t,
        Transfer {
            bytes: n,
            checksum: sum,
            mib_s: Figure {
                median: 4.0,
                min: 2.0,
                max: 8.0,
                samples: vec![2.0, 4.0, 8.0, 6.0, 4.0],
            },
            secs: 1.25,
            freq: 62_500_000,
            frames: 2888,
            notify: 100,
        }
    );
    // Another domain's window lines are not the sink's.
    let mut lines = g2g_run(n, sum);
    lines.extend(window_lines("source", &[1]));
    assert_eq!(g2g(&lines).unwrap().mib_s.samples.len(), 5);
}

#[test]
fn guest_to_guest_failures_are_loud() {
    let n = 4 << 20;
    let run = g2g_run(n, SUM_4MIB);
    let with = |from: &str, to: &str| -> Vec<String> {
        run.iter().map(|l| l.replacen(from, to, 1)).collect()
    };
    // The sink got other bytes (one corrupted byte changes the checksum).
    let mut corrupted = vec![0u8; 4 << 20];
    fill_pattern(0, &mut corrupted);
    corrupted[123_456] ^= 1;
    let bad = fnv1a64(FNV_START, &corrupted);
    let mut lines = run.clone();
    lines[6] = rx_line("sink", n, bad);
    let e = g2g(&lines).unwrap_err();
    assert_eq!(
        e,
        BenchError::ChecksumMismatch {
            path: "guest to guest".into(),
            bytes: n,
            expected: "50b559dbc8e42325".into(),
            got: format!("{bad:016x}"),
        }
    );
    assert!(
        e.to_string().starts_with(
            "guest to guest: checksum mismatch over 4194304 bytes: expected fnv1a64 \
             50b559dbc8e42325, got "
        ),
        "{e}"
    );
    // The source sent other bytes.
    let mut lines = run.clone();
    lines[7] = tx_line(n, 7);
    let e = g2g(&lines).unwrap_err();
    assert!(matches!(e, BenchError::ChecksumMismatch { .. }), "{e}");
    assert!(
        e.to_string().starts_with("guest to guest (source sent)"),
        "{e}"
    );
    // Short transfers: the sink lost bytes; the source gave up.
    let mut lines = run.clone();
    lines[6] = rx_line("sink", n - 1, SUM_4MIB);
    let e = g2g(&lines).unwrap_err();
    assert_eq!(
        e.to_string(),
        "guest to guest: sink received 4194303 bytes but 4194304 were sent"
    );
    let e = g2g(&with("complete=yes notify=16", "complete=no notify=16")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "guest to guest: source gave up after sending 4194304 bytes (complete=no)"
    );
    let e = g2g(&with("complete=yes windows", "complete=no windows")).unwrap_err();
    assert!(
        e.to_string().contains("gave up before the sender closed"),
        "{e}"
    );
    // Missing, duplicate.
    let e = g2g(&run[7..]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "missing line: `bench net rx …` from the receiver"
    );
    let e = g2g(&run[..7]).unwrap_err();
    assert!(
        e.to_string().contains("`bench net tx …` from the sender"),
        "{e}"
    );
    let mut lines = run.clone();
    lines.push(rx_line("other", n, SUM_4MIB));
    let e = g2g(&lines).unwrap_err();
    assert!(
        e.to_string()
            .contains("`bench net rx` printed twice (by sink and other)"),
        "{e}"
    );
}

#[test]
fn every_tcp_figure_needs_five_windows_of_250_ms() {
    let n = 4 << 20;
    let run = g2g_run(n, SUM_4MIB);
    // Too few windows (and the sink says so).
    let mut lines: Vec<String> = run
        .iter()
        .filter(|l| !l.contains("window n=4"))
        .cloned()
        .collect();
    let i = lines
        .iter()
        .position(|l| l.contains("bench net rx"))
        .unwrap();
    lines[i] = lines[i].replace("windows=5", "windows=4");
    let e = g2g(&lines).unwrap_err();
    assert_eq!(
        e,
        BenchError::TooFewWindows {
            what: "guest to guest MiB/s".into(),
            found: 4,
            needed: 5
        }
    );
    // A window 1 tick short of 250 ms.
    let short = run[3].replace(
        &format!("ticks={QUARTER}"),
        &format!("ticks={}", QUARTER - 1),
    );
    let mut lines = run.clone();
    lines[3] = short.clone();
    let e = g2g(&lines).unwrap_err();
    assert!(
        matches!(&e, BenchError::ShortWindow { line, .. } if *line == short),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("window of 250.0 ms, at least 250 ms needed"),
        "{e}"
    );
    // Windows out of order, or fewer lines than the sink counted.
    let mut lines = run.clone();
    lines.swap(1, 2);
    let e = g2g(&lines).unwrap_err();
    assert_eq!(
        e.to_string(),
        "guest to guest: sink printed window n=1 where n=0 was due"
    );
    let mut lines = run.clone();
    lines.remove(4);
    let e = g2g(&lines).unwrap_err();
    assert!(
        e.to_string().contains("window n=4 where n=3 was due"),
        "{e}"
    );
    let mut lines = run.clone();
    lines.remove(5);
    let e = g2g(&lines).unwrap_err();
    assert_eq!(
        e.to_string(),
        "guest to guest: sink says windows=5 but printed 4 window line(s)"
    );
    let mut lines = run.clone();
    lines.remove(4);
    lines.remove(3);
    let e = g2g(&lines).unwrap_err();
    assert!(
        e.to_string().contains("window n=4 where n=2 was due"),
        "{e}"
    );
    let mut lines = run.clone();
    lines[6] = lines[6].replace("windows=5", "windows=6");
    let e = g2g(&lines).unwrap_err();
    assert_eq!(
        e.to_string(),
        "guest to guest: sink says windows=6 but printed 5 window line(s)"
    );
    // A sink that timed no windows at all.
    let mut lines = run.clone();
    lines[6] = lines[6].replace(" windows=5", "");
    let e = g2g(&lines).unwrap_err();
    assert!(e.to_string().contains("has no `windows=`"), "{e}");
    // Windows in which nothing arrived.
    let zero: Vec<String> = run
        .iter()
        .map(|l| {
            if l.contains("bench net window") {
                let b = l
                    .split_whitespace()
                    .find(|w| w.starts_with("bytes="))
                    .unwrap();
                l.replace(b, "bytes=0")
            } else {
                l.clone()
            }
        })
        .collect();
    let e = g2g(&zero).unwrap_err();
    assert!(
        e.to_string().contains("no bytes arrived in the windows"),
        "{e}"
    );
}

fn h2g_run(n: u64, sum: u64) -> Vec<String> {
    let mut v = vec!["[hv] x".to_owned()];
    v.extend(window_lines("sink", &[4, 4, 4, 4, 4]));
    v.push(rx_line("sink", n, sum));
    v
}

#[test]
fn host_to_a_sink_is_checked() {
    let n = 4 << 20;
    let t = net_host_to_sink(HOST_TO_GUEST, &h2g_run(n, SUM_4MIB), n).unwrap();
    assert_eq!(
        (t.bytes, t.notify, t.mib_s.median, t.secs),
        (n, 84, 4.0, 1.25)
    );
    let e = net_host_to_sink(HOST_TO_GUEST, &h2g_run(n, SUM_4MIB), n + 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "host to guest: sink received 4194304 bytes but 4194305 were sent"
    );
    let e = net_host_to_sink(HOST_TO_DRIVER, &h2g_run(n, 1), n).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("host to driver domain: checksum mismatch"),
        "{e}"
    );
    let e = net_host_to_sink(HOST_TO_GUEST, &h2g_run(n, SUM_4MIB)[2..], n).unwrap_err();
    assert_eq!(
        e.to_string(),
        "host to guest: sink printed window n=1 where n=0 was due"
    );
    let e = net_host_to_sink(HOST_TO_GUEST, &["[sink] nothing"], n).unwrap_err();
    assert!(matches!(e, BenchError::Missing(_)), "{e}");
}

fn hw(mib: u64, ms: u64) -> HostWindow {
    HostWindow {
        bytes: mib << 20,
        elapsed: Duration::from_millis(ms),
    }
}

#[test]
fn the_hosts_windows_make_its_figure() {
    let ws = [hw(1, 500), hw(3, 1000), hw(1, 250), hw(2, 1000), hw(1, 400)];
    let (f, secs) = host_figure(HOST_TO_GUEST, &ws).unwrap();
    assert_eq!(f.samples, [2.0, 3.0, 4.0, 2.0, 2.5]);
    assert_eq!((f.median, f.min, f.max), (2.5, 2.0, 4.0));
    assert_eq!(secs, 3.15);
    let e = host_figure(HOST_TO_GUEST, &ws[..4]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "host to guest MiB/s by the host's clock: 4 window(s), at least 5 needed"
    );
    let mut short = ws;
    short[2].elapsed = Duration::from_micros(249_999);
    let e = host_figure(HOST_TO_GUEST, &short).unwrap_err();
    assert_eq!(
        e.to_string(),
        "window of 250.0 ms, at least 250 ms needed: host window n=2 bytes=1048576 ns=249999000"
    );
}

fn net_ring_lines() -> Vec<String> {
    let mut v = size_lines(4096, &[1, 2, 3, 4, 5], 4, "net");
    v.push("[ring-rx] bench ring done sizes=1".into());
    v
}

#[test]
fn the_ring_figure_is_the_4096_row() {
    let r = net_ring(&net_ring_lines()).unwrap();
    assert_eq!((r.size, r.cpus, r.mib_s.median), (4096, 2, 12.0));
    let row = NetResult::ring(&r, NET_RING_SCENARIO, vec!["ring-tx: sizes=4096".into()]);
    assert_eq!(row.name, "ring_4096_2cpu");
    assert_eq!(
        (row.bytes, row.secs, row.notify),
        (15 << 20, 1.25, Some(32))
    );
    assert_eq!((row.mib_s.median, row.work.as_deref()), (12.0, Some("net")));
    assert_eq!(row.mib_s.samples.len(), 5);
    // Measured at other sizes only.
    let mut other = size_lines(64, &[1, 1, 1, 1, 1], 4, "net");
    other.push("[ring-rx] bench ring done sizes=1".into());
    let e = net_ring(&other).unwrap_err();
    assert!(e.to_string().contains("not measured at 4096 B"), "{e}");
    // Without the TCP path's work: not comparable.
    let e = net_ring(&run_4096()).unwrap_err();
    assert!(
        e.to_string()
            .contains("work=copy instead of the TCP path's work"),
        "{e}"
    );
    // A bad ring checksum fails as in bench ring.
    let bad: Vec<String> = net_ring_lines()
        .into_iter()
        .map(|l| l.replace("checksum=ok", "checksum=bad"))
        .collect();
    assert_eq!(
        net_ring(&bad).unwrap_err(),
        BenchError::BadChecksum { size: 4096 }
    );
}

fn net_report() -> NetReport {
    // A ring of 1 MiB in each of 5 windows of 0.25 s: 4 MiB/s.
    let mut lines = size_lines(4096, &[1, 1, 1, 1, 1], 4, "net");
    lines.push("[ring-rx] bench ring done sizes=1".into());
    let r = net_ring(&lines).unwrap();
    let n = 4 << 20;
    let t = g2g(&g2g_run(n, SUM_4MIB)).unwrap();
    let mut h = h2g_run(n, SUM_4MIB);
    h[1] = h[1].replace("bytes=1048576", "bytes=524288");
    let h = net_host_to_sink(HOST_TO_GUEST, &h, n).unwrap();
    let host = host_figure(HOST_TO_GUEST, &[hw(1, 250); 5]).unwrap();
    NetReport::new(
        "cargo parapet bench net".into(),
        net_clock(62_500_000),
        NetResult::ring(&r, NET_RING_SCENARIO, vec!["ring-tx: sizes=4096".into()]),
        NetResult::tcp(
            "guest_to_guest_tcp",
            "guest to guest",
            NET_SCENARIO,
            vec![],
            &t,
            None,
        ),
        NetResult::tcp(
            "host_to_guest_tcp",
            "host to guest",
            NET_HOST_SCENARIO,
            vec![],
            &h,
            Some(host),
        ),
    )
}

#[test]
fn net_report_ratio_and_table() {
    let rep = net_report();
    // Guest TCP's median 4 MiB/s over the ring's 4 MiB/s.
    assert_eq!(rep.ratio_tcp_to_ring, 1.0);
    let text = rep.text();
    assert!(text.contains("guest counter at 62500000 Hz"), "{text}");
    assert!(text.contains("without -icount"), "{text}");
    assert!(
        text.contains("at least 5 windows of at least 250 ms"),
        "{text}"
    );
    assert!(
        text.contains("guest-to-guest TCP / raw ring: 1.0000"),
        "{text}"
    );
    let row = |start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start} in {text}"))
            .to_owned()
    };
    let h = row("host to guest");
    let cols: Vec<&str> = h.split_whitespace().collect();
    // path (3 words), bytes, windows (guest/host), MiB/s, host MiB/s, checksum.
    assert_eq!(
        &cols[3..9],
        [
            "4194304",
            "5/5",
            "4.00",
            "(2.00–4.00)",
            "4.00",
            "(4.00–4.00)"
        ],
        "{h}"
    );
    assert!(h.ends_with("fnv1a64 50b559dbc8e42325 ok"), "{h}");
    let g = row("guest to guest");
    let cols: Vec<&str> = g.split_whitespace().collect();
    assert_eq!(
        &cols[3..8],
        ["4194304", "5", "4.00", "(2.00–8.00)", "-"],
        "{g}"
    );
    let ring = row("raw ring");
    assert!(ring.contains(" 4.00 (4.00–4.00) "), "{ring}");
    assert!(ring.ends_with("fnv1a64 of every byte ok"), "{ring}");
    // No ring throughput: no ratio rather than infinity.
    let mut zero = rep.results[0].clone();
    zero.mib_s.median = 0.0;
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
    assert_eq!(v["command"], "cargo parapet bench net");
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
            "bytes": 4194304, "checksum": "50b559dbc8e42325", "secs": 1.25,
            "mib_s": {"median": 4.0, "min": 2.0, "max": 4.0,
                      "samples": [2.0, 4.0, 4.0, 4.0, 4.0]},
            "wall_secs": 1.25,
            "wall_mib_s": {"median": 4.0, "min": 4.0, "max": 4.0,
                           "samples": [4.0, 4.0, 4.0, 4.0, 4.0]},
            "frames": 2888, "notify": 84, "work": null
        })
    );
    assert_eq!(
        results[1]["mib_s"]["samples"],
        json!([2.0, 4.0, 8.0, 6.0, 4.0])
    );
    assert_eq!(results[0]["checksum"], serde_json::Value::Null);
    assert_eq!(results[0]["work"], "net");
    assert_eq!(
        results[0]["mib_s"]["samples"],
        json!([4.0, 4.0, 4.0, 4.0, 4.0])
    );
    assert_eq!(results[0]["overrides"], json!(["ring-tx: sizes=4096"]));
    assert_eq!(results[0]["scenario"], "scenarios/bench-ring-2cpu.toml");
    assert_eq!(results[1]["wall_mib_s"], serde_json::Value::Null);
    let at = |k: &str| text.find(k).unwrap();
    assert!(at("\"bench\"") < at("\"command\"") && at("\"clock\"") < at("\"results\""));
    assert!(at("\"results\"") < at("\"ratio_tcp_to_ring\""));
}
