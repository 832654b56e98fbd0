//! The regression gate: `cargo parapet bench micro` on QEMU (`-icount
//! shift=0`, deterministic) measures every micro-benchmark path and the byte
//! channel's instructions per 4 KiB message (64, 32 and 16 ring slots), and
//! compares each figure with `tests/bench-baseline.json`. A figure that
//! moved by more than max(2%, 10 instructions), faster or slower, fails the
//! command and so this test, which prints the command's lines (name,
//! baseline, measured, difference) and what to run to update the baseline.
//! The comparison itself is host-tested in `parapet-tools`
//! (`bench::gate`). About 10 s once built; each QEMU run gets 60 s (they
//! take about 3), so a hung guest fails the test.
#![deny(unsafe_code)]

use parapet_tests::{run_parapet, serial, workspace_root};

#[test]
fn deterministic_figures_match_the_baseline() {
    let _g = serial();
    let json = std::env::temp_dir().join(format!("parapet-gate-{}.json", std::process::id()));
    let start = std::time::Instant::now();
    let r = run_parapet(&[
        "bench",
        "micro",
        "--json",
        json.to_str().unwrap(),
        "--timeout",
        "60",
    ]);
    let gate: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("bench gate") || l.starts_with("  ") && l.contains("baseline"))
        .collect();
    assert!(
        r.status.success(),
        "`cargo parapet bench micro` failed ({}):\n{}\n\nstdout:\n{}\nstderr:\n{}",
        r.status,
        gate.join("\n"),
        r.stdout,
        r.stderr
    );
    let baseline: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("tests/bench-baseline.json"))
            .expect("tests/bench-baseline.json"),
    )
    .expect("the baseline is JSON");
    let figures = baseline["figures"].as_object().expect("figures");
    assert!(
        gate.iter().any(|l| l.starts_with(&format!(
            "bench gate: {} figure(s) within max(2%, 10 instructions)",
            figures.len()
        ))),
        "the gate's verdict:\n{}",
        r.stdout
    );
    // The JSON report has what the baseline has: every micro path and the
    // three ring sizes, with the instructions the gate compared.
    let text = std::fs::read_to_string(&json).expect("the JSON report");
    let _ = std::fs::remove_file(&json);
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    for m in v["results"].as_array().expect("results") {
        let name = m["name"].as_str().unwrap();
        let want = figures[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} not in the baseline"));
        let got = m["instructions"].as_u64().unwrap();
        assert!(
            got.abs_diff(want) <= (want / 50).max(10),
            "{name}: {got} vs {want}"
        );
    }
    let slots: Vec<u64> = v["icount"]
        .as_array()
        .expect("icount")
        .iter()
        .map(|i| i["slots"].as_u64().unwrap())
        .collect();
    assert_eq!(slots, [64, 32, 16], "{text}");
    eprintln!("bench gate: {:.1} s", start.elapsed().as_secs_f64());
}
