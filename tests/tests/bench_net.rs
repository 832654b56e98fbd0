//! `cargo parapet bench net` on QEMU: the four figures (raw ring, guest to
//! guest TCP, host to guest TCP, and host to the driver domain alone — QEMU's
//! own limit on that path) are each measured over at least 5 windows of at
//! least 250 ms (median, min, max, every sample), the streams' checksums
//! match, and the JSON report has every field. The windows set the run time
//! (about 1.5 s of streaming per path); no performance target is checked.
#![deny(unsafe_code)]

use parapet_tests::{run_parapet, serial};

#[test]
fn bench_net_measures_ring_guest_and_host_throughput_in_windows() {
    let _g = serial();
    let json = std::env::temp_dir().join(format!("parapet-net-{}.json", std::process::id()));
    let r = run_parapet(&[
        "bench",
        "net",
        "--json",
        json.to_str().unwrap(),
        "--timeout",
        "300",
    ]);
    assert!(r.status.success(), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("checksums matched"),
        "no checksum verdict:\n{}",
        r.stderr
    );

    // The table: four rows, each `median (min–max)` with min <= median <= max.
    for (row, host) in [
        ("raw ring, 4096 B messages, 2 CPUs", false),
        ("guest to guest, TCP via the driver domain", false),
        ("host to guest, TCP via the uplink", true),
        ("host to driver domain, virtio-net only (QEMU)", true),
    ] {
        let line = r
            .lines_starting(row)
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no `{row}` row in:\n{}", r.stdout));
        let cols: Vec<&str> = line[row.len()..].split_whitespace().collect();
        let fig = |median: &str, range: &str| -> (f64, f64, f64) {
            let (lo, hi) = range
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split_once('–')
                .unwrap_or_else(|| panic!("{line}"));
            let p = |v: &str| v.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
            (p(lo), p(median), p(hi))
        };
        let (lo, med, hi) = fig(cols[2], cols[3]);
        assert!(0.0 < lo && lo <= med && med <= hi, "{line}");
        if host {
            assert_eq!(cols[1], "5/5", "{line}");
            let (lo, med, hi) = fig(cols[4], cols[5]);
            assert!(0.0 < lo && lo <= med && med <= hi, "{line}");
        } else {
            assert_eq!((cols[1], cols[4]), ("5", "-"), "{line}");
        }
    }
    assert!(r.stdout.contains("without -icount"), "{}", r.stdout);
    let ratio = r
        .lines_starting("guest-to-guest TCP / raw ring: ")
        .first()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no ratio in:\n{}", r.stdout));
    assert!(ratio > 0.0, "{ratio}");

    // The JSON report.
    let text = std::fs::read_to_string(&json).expect("the JSON report");
    let _ = std::fs::remove_file(&json);
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["bench"], "net", "{text}");
    assert_eq!(v["command"], "cargo parapet bench net");
    assert!(
        v["clock"].as_str().is_some_and(|c| c.contains("Hz")),
        "{text}"
    );
    let results = v["results"].as_array().expect("results");
    let names: Vec<&str> = results.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "ring_4096_2cpu",
            "guest_to_guest_tcp",
            "host_to_guest_tcp",
            "host_to_driver_uplink_only"
        ]
    );
    // Every figure: the median, min and max of at least 5 samples, all in
    // the JSON.
    let figure = |f: &serde_json::Value| {
        let samples: Vec<f64> = f["samples"]
            .as_array()
            .unwrap_or_else(|| panic!("no samples in {f}"))
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!(samples.len() >= 5, "{f}");
        assert!(samples.iter().all(|&x| x > 0.0), "{f}");
        let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(
            (f["min"].as_f64(), f["max"].as_f64()),
            (Some(min), Some(max))
        );
        let m = f["median"].as_f64().unwrap();
        assert!(min <= m && m <= max, "{f}");
        m
    };
    let ring = figure(&results[0]["mib_s"]);
    let g2g = figure(&results[1]["mib_s"]);
    let ratio = v["ratio_tcp_to_ring"].as_f64().unwrap();
    assert!((ratio - g2g / ring).abs() < 1e-9, "{text}");
    for r in results {
        for key in ["path", "scenario", "overrides", "secs", "mib_s", "bytes"] {
            assert!(!r[key].is_null(), "{key} missing in {r}");
        }
        figure(&r["mib_s"]);
        // The windows: at least 5 × 250 ms.
        assert!(r["secs"].as_f64().unwrap() >= 1.25, "{r}");
    }
    // Every TCP byte was checked against the pattern's checksum.
    for tcp in &results[1..] {
        assert!(tcp["bytes"].as_u64().unwrap() > 0, "{tcp}");
        let sum = tcp["checksum"].as_str().expect("checksum");
        assert_eq!(sum.len(), 16, "{sum}");
        assert!(tcp["frames"].as_u64().unwrap() > 0, "{tcp}");
    }
    // Host to a sink (both) also has the host's clock, over its own windows.
    for h in &results[2..] {
        figure(&h["wall_mib_s"]);
        assert!(h["wall_secs"].as_f64().unwrap() >= 1.25, "{h}");
    }
    assert!(results[1]["wall_mib_s"].is_null());
}
