//! Tests of [`super`] (`bench net`).

use super::*;
use crate::bench::ring::tests::{run_4096, size_lines};
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
    assert_eq!((row.mib_s, row.work.as_deref()), (12.0, Some("net")));
    assert_eq!(row.windows.as_ref().unwrap().samples.len(), 5);
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
    let t = g2g(n, &[rx_line("sink", n, SUM_4MIB), tx_line(n, SUM_4MIB)]).unwrap();
    let h = net_host_to_guest(
        &[rx_line("sink", n, SUM_4MIB).replace("ticks=62500000", "ticks=125000000")],
        n,
    )
    .unwrap();
    NetReport::new(
        "cargo parapet bench net --bytes 4194304".into(),
        net_clock(62_500_000),
        NetResult::ring(&r, NET_RING_SCENARIO, vec!["ring-tx: sizes=4096".into()]),
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
    assert!(text.contains("fnv1a64 of every byte ok"), "{text}");
    assert!(
        text.contains("MiB/s is the median of 5 windows, 4.00 (4.00–4.00) (min–max); the same work as the TCP path"),
        "{text}"
    );
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
            "frames": 2888, "notify": 84, "windows": null, "work": null
        })
    );
    assert_eq!(results[0]["checksum"], serde_json::Value::Null);
    assert_eq!(results[0]["work"], "net");
    assert_eq!(
        results[0]["windows"]["samples"],
        json!([4.0, 4.0, 4.0, 4.0, 4.0])
    );
    assert_eq!(results[0]["overrides"], json!(["ring-tx: sizes=4096"]));
    assert_eq!(results[0]["scenario"], "scenarios/bench-ring-2cpu.toml");
    assert_eq!(results[1]["wall_mib_s"], serde_json::Value::Null);
    let at = |k: &str| text.find(k).unwrap();
    assert!(at("\"bench\"") < at("\"command\"") && at("\"clock\"") < at("\"results\""));
    assert!(at("\"results\"") < at("\"ratio_tcp_to_ring\""));
}
