//! `parapet up --trace`: the hypervisor's records reach a Chrome trace file
//! that names the CPUs and domains, and the trace agrees with the
//! hypervisor's own per-domain statistics; `parapet trace summarize` reads it.
#![deny(unsafe_code)]

use std::collections::BTreeMap;

use parapet_tests::check::{assert_has, line_with, number_after};
use parapet_tests::{run_parapet, serial};
use serde_json::Value;

#[test]
fn basics_traced_matches_the_hypervisors_statistics() {
    let _g = serial();
    let dir = std::env::temp_dir().join(format!("parapet-trace-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("basics.json");
    let file_s = file.to_str().unwrap();
    let r = run_parapet(&[
        "up",
        "scenarios/basics.toml",
        "--timeout",
        "300",
        "--trace",
        file_s,
    ]);
    let t = r.transcript();
    assert!(r.status.success(), "exit status {}:\n{t}", r.status);
    assert_has(&t, "[hv] all domains stopped: 3 ok, 0 failed");
    let note = line_with(&t, "parapet: trace: ");
    assert!(note.contains(" 0 lost"), "{note}");

    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().expect("traceEvents");
    // A track per physical CPU (basics.toml: 2).
    let mut tracks: Vec<&str> = events
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    tracks.sort_unstable();
    assert_eq!(tracks, ["CPU 0", "CPU 1"]);
    // Every domain runs on some track under its name.
    for name in ["driver", "guest-a", "guest-b"] {
        assert!(
            events
                .iter()
                .any(|e| e["cat"] == "run" && e["name"] == name),
            "no run slice for {name}"
        );
    }
    assert_eq!(doc["otherData"]["parapet"]["lost"], 0);

    // World switches into each domain, as the trace and as the hypervisor
    // counts them ("… N world switches in").
    let mut traced: BTreeMap<String, u64> = BTreeMap::new();
    for e in events.iter().filter(|e| e["cat"] == "switch") {
        *traced
            .entry(e["args"]["domain"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for name in ["driver", "guest-a", "guest-b"] {
        let stats = line_with(&t, &format!("[hv] domain {name} stats: "));
        let hv = number_after(stats, "hypercalls and traps, ");
        assert_eq!(
            traced.get(name).copied().unwrap_or(0),
            hv,
            "switches into {name}: trace vs `{stats}`"
        );
        assert!(hv > 0, "{stats}");
    }
    // Hypercalls too: each one the trace shows is one the hypervisor counted.
    let calls = events
        .iter()
        .filter(|e| e["cat"] == "hypercall" && e["args"]["domain"] == "guest-b")
        .count() as u64;
    let stats = line_with(&t, "[hv] domain guest-b stats: ");
    let counted = number_after(stats, "stats: ");
    assert!(calls > 1000 && calls <= counted, "{calls} traced, {stats}");

    // The summary reads the file.
    let s = run_parapet(&["trace", "summarize", file_s]);
    assert!(s.status.success(), "{}", s.transcript());
    assert!(s.stdout.contains("guest-a"), "{}", s.stdout);
    assert!(s.stdout.contains("Yield"), "{}", s.stdout);
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"x\": 1}").unwrap();
    let s = run_parapet(&["trace", "summarize", bad.to_str().unwrap()]);
    assert_eq!(s.status.code(), Some(2), "{}", s.transcript());
    assert!(s.stderr.contains("not a Parapet trace"), "{}", s.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_buffer_too_small_counts_the_records_it_lost() {
    let _g = serial();
    let file =
        std::env::temp_dir().join(format!("parapet-trace-small-{}.json", std::process::id()));
    let file_s = file.to_str().unwrap();
    let r = run_parapet(&[
        "up",
        "scenarios/basics.toml",
        "--timeout",
        "300",
        "--trace",
        file_s,
        "--trace-kib",
        "4",
    ]);
    let t = r.transcript();
    assert!(r.status.success(), "exit status {}:\n{t}", r.status);
    let note = line_with(&t, "parapet: trace: ");
    let lost = number_after(note, "CPU(s), ");
    assert!(lost > 0, "{note}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc["otherData"]["parapet"]["lost"], lost, "{note}");
    let _ = std::fs::remove_file(&file);
}
