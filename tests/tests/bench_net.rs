//! `cargo parapet bench net` on QEMU: the four figures (raw ring, guest to
//! guest TCP, host to guest TCP, and host to the driver domain alone — QEMU's
//! own limit on that path) are measured, the streams' checksums match,
//! and the JSON report has every field. A small `--bytes` keeps it fast; no
//! performance target is checked.
#![deny(unsafe_code)]

use parapet_tests::{run_parapet, serial};

#[test]
fn bench_net_measures_ring_guest_and_host_throughput() {
    let _g = serial();
    let json = std::env::temp_dir().join(format!("parapet-net-{}.json", std::process::id()));
    let bytes: u64 = 1 << 20;
    let r = run_parapet(&[
        "bench",
        "net",
        "--bytes",
        &bytes.to_string(),
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

    // The table: three rows with positive MiB/s, and the ratio.
    for row in [
        "raw ring, 4096 B messages, 2 CPUs",
        "guest to guest, TCP via the driver domain",
        "host to guest, TCP via the uplink",
        "host to driver domain, virtio-net only (QEMU)",
    ] {
        let line = r
            .lines_starting(row)
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no `{row}` row in:\n{}", r.stdout));
        let cols: Vec<&str> = line[row.len()..].split_whitespace().collect();
        let mib_s: f64 = cols[2].parse().unwrap_or_else(|_| panic!("{line}"));
        assert!(mib_s > 0.0, "{line}");
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
    assert_eq!(
        v["command"],
        format!("cargo parapet bench net --bytes {bytes}")
    );
    assert!(
        v["clock"].as_str().is_some_and(|c| c.contains("Hz")),
        "{text}"
    );
    assert!(v["ratio_tcp_to_ring"].as_f64().is_some_and(|x| x > 0.0));
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
    for r in results {
        for key in ["path", "scenario", "overrides", "secs", "mib_s", "bytes"] {
            assert!(!r[key].is_null(), "{key} missing in {r}");
        }
        assert!(r["mib_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["secs"].as_f64().unwrap() > 0.0, "{r}");
    }
    // Every TCP byte was checked against the pattern's checksum.
    for tcp in &results[1..] {
        assert_eq!(tcp["bytes"].as_u64(), Some(bytes), "{tcp}");
        let sum = tcp["checksum"].as_str().expect("checksum");
        assert_eq!(sum.len(), 16, "{sum}");
        assert!(tcp["frames"].as_u64().unwrap() > 0, "{tcp}");
    }
    assert_eq!(
        results[1]["checksum"], results[2]["checksum"],
        "same pattern"
    );
    assert_eq!(results[3]["checksum"], results[2]["checksum"]);
    assert_eq!(results[1]["overrides"][0], format!("source: bytes={bytes}"));
    // Host to guest (both) also has the host's clock.
    assert!(results[2]["wall_mib_s"].as_f64().unwrap() > 0.0, "{text}");
    assert!(results[3]["wall_mib_s"].as_f64().unwrap() > 0.0, "{text}");
    assert!(results[1]["wall_mib_s"].is_null());
}
