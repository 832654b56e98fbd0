//! Tests of [`super`] (`bench ring`).

use super::*;
use crate::bench::test_support::{root, value};
use crate::bench::{Kind, MICRO_SCENARIO};
use serde_json::json;

/// The lines of one size: 5 stream windows of 0.25 s at 62.5 MHz moving
/// `mib[n]` MiB each (so `4 * mib[n]` MiB/s), 5 memcpy windows of 0.25 s
/// moving `copy_mib` MiB (`4 * copy_mib` MiB/s), and the summaries.
pub(crate) fn size_lines(size: u64, mib: &[u64], copy_mib: u64, work: &str) -> Vec<String> {
    let mut v = Vec::new();
    for n in 0..mib.len() {
        v.push(format!(
            "[ring-rx] bench ring memcpy size={size} n={n} bytes={} ticks=15625000 freq=62500000",
            copy_mib << 20
        ));
    }
    let mut msgs = 0;
    for (n, m) in mib.iter().enumerate() {
        let bytes = m << 20;
        msgs += bytes / size;
        v.push(format!(
            "[ring-rx] bench ring window size={size} n={n} msgs={} bytes={bytes} \
             ticks=15625000 freq=62500000 notify=1 switches=2 checksum=ok",
            bytes / size
        ));
    }
    // 32 more messages drained after the last window.
    msgs += 32;
    v.push(format!(
        "[ring-tx] bench ring tx size={size} msgs={msgs} notify=16"
    ));
    v.push(format!(
        "[ring-rx] bench ring rx size={size} msgs={msgs} bytes={} notify=16 switches=64 \
         windows={} work={work} checksum=ok",
        msgs * size,
        mib.len()
    ));
    v
}

/// A 2-CPU run at 4096 B: 4, 8, 12, 16, 20 MiB/s; memcpy 16 MiB/s.
pub(crate) fn run_4096() -> Vec<String> {
    let mut v = vec!["[hv] parapet hypervisor".to_owned()];
    v.extend(size_lines(4096, &[1, 2, 3, 4, 5], 4, "copy"));
    v.push("[ring-rx] bench ring done sizes=1".into());
    v
}

fn err(lines: &[String]) -> String {
    ring_run(1, lines).unwrap_err().to_string()
}

fn replace(lines: &[String], from: &str, to: &str) -> Vec<String> {
    let mut done = false;
    lines
        .iter()
        .map(|l| {
            if !done && l.contains(from) {
                done = true;
                l.replacen(from, to, 1)
            } else {
                l.clone()
            }
        })
        .collect()
}

#[test]
fn parses_every_kind_of_line() {
    let mut lines = run_4096();
    lines.push(
        "[ring-rx] bench ring icount checksum=ok size=4096 slots=32 msgs=1024 \
         instructions=4636212 memcpy_msgs=64 memcpy_instructions=133378 new=x"
            .into(),
    );
    let l = parse_ring(&lines).unwrap();
    assert_eq!(
        l.tx,
        [RingTx {
            size: 4096,
            msgs: 3872,
            notify: 16
        }]
    );
    assert_eq!(l.windows.len(), 5);
    assert_eq!(l.memcpy.len(), 5);
    assert_eq!(
        (l.windows[2].n, l.windows[2].bytes, l.windows[2].ticks),
        (2, 3 << 20, 15_625_000)
    );
    assert!(l.windows[2].line.contains("n=2"));
    assert_eq!(
        l.rx[0],
        RingRx {
            size: 4096,
            msgs: 3872,
            bytes: 3872 * 4096,
            notify: 16,
            switches: 64,
            windows: 5,
            work: "copy".into(),
            checksum_ok: true,
        }
    );
    assert_eq!(
        (
            l.icount[0].slots,
            l.icount[0].instructions,
            l.icount[0].memcpy_msgs
        ),
        (32, 4_636_212, 64)
    );
    assert_eq!(l.done, Some(1));
}

#[test]
fn hand_checked_computation() {
    let r = ring_run(2, &run_4096()).unwrap();
    assert_eq!(r.len(), 1);
    let r = &r[0];
    assert_eq!((r.size, r.cpus, r.work.as_str()), (4096, 2, "copy"));
    // 1..5 MiB per 0.25 s window.
    assert_eq!(r.mib_s.samples, [4.0, 8.0, 12.0, 16.0, 20.0]);
    assert_eq!(
        (r.mib_s.median, r.mib_s.min, r.mib_s.max),
        (12.0, 4.0, 20.0)
    );
    assert_eq!(r.memcpy_mib_s.median, 16.0);
    assert_eq!(r.ratio, 0.75);
    // 3 MiB in 0.25 s = 768 messages in 0.25 s.
    assert_eq!(r.msgs_s.median, 3072.0);
    assert_eq!(r.notify_per_msg, 32.0 / 3872.0);
    assert_eq!(r.switches_per_msg, 64.0 / 3872.0);
    assert_eq!((r.bytes, r.secs), (15 << 20, 1.25));
    assert_eq!((r.xcopy_mib_s.as_ref(), r.xcopy_ratio), (None, None));
}

/// `run_4096` with 5 cross-CPU copy windows of 2, 3, 4, 5, 6 MiB per
/// 0.25 s, printed in the order of `order`.
fn run_4096_xcopy(order: [u64; 5]) -> Vec<String> {
    let mut v = run_4096();
    for n in order {
        v.push(format!(
            "[ring-rx] bench ring xcopy size=4096 n={n} bytes={} ticks=15625000 freq=62500000",
            (n + 2) << 20
        ));
    }
    v
}

#[test]
fn the_cross_cpu_copy_reference() {
    let lines = run_4096_xcopy([4, 3, 2, 1, 0]);
    assert_eq!(parse_ring(&lines).unwrap().xcopy.len(), 5);
    // Printed out of order: an error naming the window.
    let e = ring_run(2, &lines).unwrap_err().to_string();
    assert!(e.contains("xcopy window n=4 where n=0 was due"), "{e}");
    let lines = run_4096_xcopy([0, 1, 2, 3, 4]);
    let r = &ring_run(2, &lines).unwrap()[0];
    let x = r.xcopy_mib_s.as_ref().unwrap();
    assert_eq!((x.median, x.min, x.max), (16.0, 8.0, 24.0));
    // The ring's median 12 against the reference's 16.
    assert_eq!(r.xcopy_ratio, Some(0.75));
    let report = ring_report(std::slice::from_ref(r), &[]);
    let row = report
        .lines()
        .find(|l| l.trim_start().starts_with("2 "))
        .unwrap();
    assert!(row.contains("16.00 (8.00–24.00)"), "{row}");
    assert!(row.trim_end().ends_with("0.750"), "{row}");
    let v = value(&ring_json(std::slice::from_ref(r), &[], &[]));
    assert_eq!(v["results"][0]["xcopy_ratio"], 0.75);
    assert_eq!(
        v["results"][0]["xcopy_mib_s"]["samples"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // Too few windows is an error, as for the memcpy.
    let short: Vec<String> = lines
        .iter()
        .filter(|l| !l.contains("xcopy size=4096 n=4"))
        .cloned()
        .collect();
    assert!(ring_run(2, &short).is_err());
}

#[test]
fn missing_field() {
    let e = err(&["[ring-tx] bench ring tx size=64 msgs=10".to_owned()]);
    assert!(e.contains("missing field `notify=`"), "{e}");
    assert!(e.contains("bench ring tx size=64 msgs=10"), "{e}");
    let e = err(&replace(&run_4096(), " ticks=15625000", ""));
    assert!(e.contains("missing field `ticks=`"), "{e}");
    let e = err(&["[ring-rx] bench ring done".to_owned()]);
    assert!(e.contains("missing field `sizes=`"), "{e}");
}

#[test]
fn garbage() {
    // Not benchmark lines: ignored.
    let ignored = parse_ring(&[
        "garbage",
        "bench ring tx size=1 msgs=1 notify=1", // no domain prefix
        "[hv] bench ring tx size=1 msgs=1 notify=1",
        "[ring-tx] benchmark ring tx",
        "[ring-tx] bench",
        "[ring-tx] bench ring",
        "[ring-tx] bench ring info whatever",
        "[ring-tx] bench micro x instructions=1 samples=1",
    ])
    .unwrap();
    assert_eq!(ignored, RingLines::default());
    for (line, says) in [
        (
            "[ring-tx] bench ring tx size=abc msgs=1 notify=1",
            "`size=abc`",
        ),
        (
            "[ring-tx] bench ring tx size=-1 msgs=1 notify=1",
            "`size=-1`",
        ),
        (
            "[ring-tx] bench ring tx size=1 msgs=1 notify=1 junk",
            "`junk` is not key=value",
        ),
        (
            "[ring-tx] bench ring tx size=1 =2 msgs=1 notify=1",
            "no key",
        ),
        (
            "[ring-tx] bench ring tx size=1 size=2 msgs=1 notify=1",
            "`size` given twice",
        ),
    ] {
        let e = err(&[line.to_owned()]);
        assert!(e.starts_with("malformed line"), "{e}");
        assert!(e.contains(says), "{e} should contain {says}");
    }
    let e = err(&replace(&run_4096(), "checksum=ok", "checksum=maybe"));
    assert!(e.contains("expected `ok` or `bad`"), "{e}");
}

#[test]
fn bad_checksums_anywhere() {
    for line in ["bench ring window size=4096 n=3", "bench ring rx"] {
        let lines: Vec<String> = run_4096()
            .into_iter()
            .map(|l| {
                if l.contains(line) {
                    l.replace("checksum=ok", "checksum=bad")
                } else {
                    l
                }
            })
            .collect();
        let e = ring_run(2, &lines).unwrap_err();
        assert_eq!(e, BenchError::BadChecksum { size: 4096 }, "{line}");
        assert_eq!(
            e.to_string(),
            "bad checksum at size 4096 B: the receiver got corrupted data"
        );
    }
}

#[test]
fn missing_tx_and_rx() {
    let no_tx: Vec<String> = run_4096()
        .into_iter()
        .filter(|l| !l.contains("ring tx"))
        .collect();
    assert!(
        err(&no_tx).contains("missing line: `bench ring tx size=4096`"),
        "{}",
        err(&no_tx)
    );
    let e = err(&[
        "[ring-tx] bench ring tx size=4096 msgs=1 notify=0".to_owned(),
        "[ring-rx] bench ring done sizes=0".to_owned(),
    ]);
    assert!(e.contains("missing line: `bench ring rx size=4096`"), "{e}");
}

#[test]
fn missing_done_and_wrong_count() {
    let mut lines = run_4096();
    lines.pop();
    let e = err(&lines);
    assert!(e.contains("missing line: `bench ring done sizes=N`"), "{e}");
    assert!(e.contains("1 size(s) reported"), "{e}");
    let e = err(&replace(&run_4096(), "done sizes=1", "done sizes=6"));
    assert_eq!(
        e,
        "`bench ring done sizes=6` but 1 result line(s) were printed"
    );
    let e = err(&["[ring-rx] bench ring done sizes=0".to_owned()]);
    assert!(e.contains("no size was measured"), "{e}");
    let mut twice = run_4096();
    twice.push("[ring-rx] bench ring done sizes=1".into());
    assert!(err(&twice).starts_with("duplicate line"));
    let tx = "[ring-tx] bench ring tx size=4096 msgs=1 notify=0".to_owned();
    let e = err(&[tx.clone(), tx]);
    assert!(e.contains("`bench ring tx size=4096` printed twice"), "{e}");
}

#[test]
fn inconsistent_numbers() {
    let e = err(&replace(
        &run_4096(),
        "tx size=4096 msgs=3872",
        "tx size=4096 msgs=3000",
    ));
    assert_eq!(
        e,
        "size 4096 B: the sender sent 3000 message(s) but the receiver got 3872"
    );
    let e = err(&replace(&run_4096(), "windows=5", "windows=6"));
    assert!(e.contains("says windows=6 but printed 5"), "{e}");
    let e = err(&replace(
        &run_4096(),
        "window size=4096 n=3",
        "window size=4096 n=7",
    ));
    assert!(e.contains("stream window n=7 where n=3 was due"), "{e}");
}

#[test]
fn windows_are_checked_by_line() {
    // Four windows: too few.
    let mut lines = vec![];
    lines.extend(size_lines(4096, &[1, 2, 3, 4], 4, "copy"));
    lines.push("[ring-rx] bench ring done sizes=1".into());
    let e = err(&lines);
    assert_eq!(
        e,
        "ring MiB/s at 4096 B, 1 CPU: 4 window(s), at least 5 needed"
    );
    // A window of 249.99 ms: named by its line.
    let e = err(&replace(
        &run_4096(),
        "n=2 msgs=768 bytes=3145728 ticks=15625000",
        "n=2 msgs=768 bytes=3145728 ticks=15624999",
    ));
    assert!(
        e.starts_with("window of 250.0 ms, at least 250 ms needed: "),
        "{e}"
    );
    assert!(
        e.contains("[ring-rx] bench ring window size=4096 n=2 "),
        "{e}"
    );
    // The memcpy's windows too.
    let e = err(&replace(
        &run_4096(),
        "n=4 bytes=4194304 ticks=15625000",
        "n=4 bytes=4194304 ticks=100",
    ));
    assert!(
        e.contains("window of 0.0 ms") && e.contains("bench ring memcpy size=4096 n=4"),
        "{e}"
    );
}

fn fig(v: f64) -> Figure {
    Figure::of(vec![v; 5]).unwrap()
}

fn result(cpus: u32, size: u64, ratio: f64, notify_per_msg: f64) -> RingResult {
    RingResult {
        size,
        cpus,
        work: "copy".into(),
        mib_s: fig(1.0),
        msgs_s: fig(1.0),
        memcpy_mib_s: fig(1.0),
        ratio,
        xcopy_mib_s: None,
        xcopy_ratio: None,
        notify_per_msg,
        switches_per_msg: 0.0,
        msgs: 1,
        bytes: 1,
        secs: 1.25,
        freq: 1,
    }
}

#[test]
fn ring_target_evaluation() {
    let r = [
        result(1, 64, 0.1, 0.5),
        result(1, 4096, 0.4, 1.0 / 32.0),
        result(2, 4096, 0.79, 0.01),
        result(2, 65536, 0.9, 0.02),
    ];
    let t = ring_targets(&r);
    let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ratio_4096_1cpu",
            "ratio_4096_2cpu",
            "notify_per_msg_worst",
            "notify_per_msg_4096_1cpu",
            "notify_per_msg_4096_2cpu"
        ]
    );
    let got: Vec<(Option<f64>, f64, bool)> = t.iter().map(|t| (t.value, t.limit, t.met)).collect();
    assert_eq!(
        got,
        [
            (Some(0.4), 0.4, true), // the limit itself is met
            (Some(0.79), 0.8, false),
            (Some(0.5), 1.0 / 32.0, false),
            (Some(1.0 / 32.0), 1.0 / 32.0, true),
            (Some(0.01), 1.0 / 32.0, true),
        ]
    );
    assert_eq!(
        t[2].description,
        "notifications per message, worst (64 B, 1 CPU)"
    );
    // Nothing at 4096 B with 2 CPUs: reported as not measured, missed.
    let t = ring_targets(&r[..2]);
    assert_eq!((t[1].value, t[1].met), (None, false));
    let report = ring_report(&r[..2], &t);
    assert!(report.contains("not measured"), "{report}");
    assert!(ring_targets(&[]).iter().all(|t| !t.met));
}

#[test]
fn ring_report_rows_sorted() {
    let r = [
        result(2, 64, 0.5, 0.0),
        result(1, 4096, 0.5, 0.0),
        result(1, 64, 0.5, 0.0),
    ];
    let report = ring_report(&r, &ring_targets(&r));
    let rows: Vec<(String, String)> = report
        .lines()
        .skip(2)
        .take(3)
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap().into(), w.next().unwrap().into())
        })
        .collect();
    let rows: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(rows, [("1", "64"), ("1", "4096"), ("2", "64")]);
    assert!(report.contains("bench ring: targets"));
    assert!(report.contains("ring/memcpy ratio at 4096 B, 2 CPUs"));
    assert!(report.contains("missed"));
}

#[test]
fn ring_json_shape() {
    let r = ring_run(2, &run_4096()).unwrap();
    let t = ring_targets(&r);
    let text = ring_json(&r, &[], &t);
    let v = value(&text);
    assert_eq!(v["bench"], "ring");
    assert_eq!(
        v["results"][0]["mib_s"],
        json!({"median": 12.0, "min": 4.0, "max": 20.0,
               "samples": [4.0, 8.0, 12.0, 16.0, 20.0]})
    );
    assert_eq!(v["results"][0]["ratio"], 0.75);
    assert_eq!(v["results"][0]["xcopy_ratio"], serde_json::Value::Null);
    assert_eq!(
        v["results"][0]["memcpy_mib_s"]["samples"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        v["targets"][1],
        json!({"name": "ratio_4096_2cpu", "value": 0.75, "limit": 0.8, "met": false})
    );
    assert_eq!(v["targets"][0]["value"], serde_json::Value::Null);
    // Keys in the documented order.
    let at = |k: &str| text.find(k).unwrap();
    assert!(at("\"bench\"") < at("\"results\"") && at("\"icount\"") < at("\"targets\""));
    assert_eq!(v["icount"], json!([]));
    assert!(at("\"size\"") < at("\"cpus\"") && at("\"mib_s\"") < at("\"ratio\""));
    assert!(at("\"median\"") < at("\"samples\""));
    assert!(at("\"name\"") < at("\"value\"") && at("\"limit\"") < at("\"met\""));
}

#[test]
fn ring_report_shows_median_min_max() {
    let r = ring_run(1, &run_4096()).unwrap();
    let report = ring_report(&r, &ring_targets(&r));
    let row = report
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap();
    assert!(row.contains("12.00 (4.00–20.00)"), "{row}");
    assert!(row.contains("16.00 (16.00–16.00)"), "{row}");
    assert!(row.contains(" 0.750 "), "{row}");
    assert!(
        row.trim_end().ends_with('-'),
        "no cross-CPU reference: {row}"
    );
    assert!(report.contains("median (min–max)"), "{report}");
}

#[test]
fn ring_scenarios_parse_as_intended() {
    // The receiver: on CPU 0 with one vCPU (1 CPU); with two vCPUs placed
    // round robin from CPU 1 (2 CPUs: it on CPU 1, its cross-CPU writer on
    // CPU 0).
    for (path, cpus, rx) in [
        (RING_SCENARIOS[0], 1, (Some(0), 1)),
        (RING_SCENARIOS[1], 2, (None, 2)),
    ] {
        let s =
            crate::scenario::load(&root().join(path), &root()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.machine.cpus, cpus, "{path}");
        assert!(!s.machine.icount, "{path}");
        assert_eq!(s.domain_names(), ["driver", "ring-tx", "ring-rx"], "{path}");
        // (image, cmdline, memory MiB, pinned CPU, vCPUs)
        type Row<'a> = (&'a str, Option<&'a str>, u64, Option<u32>, u32);
        let got: Vec<Row> = s
            .domains
            .iter()
            .map(|d| {
                (
                    d.image.as_str(),
                    d.cmdline.as_deref(),
                    d.memory_mib,
                    d.cpu,
                    d.vcpus,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("driver-domain", None, 64, Some(0), 1),
                ("ring-bench", Some("tx"), 64, Some(0), 1),
                ("ring-bench", Some("rx"), 64, rx.0, rx.1),
            ],
            "{path}"
        );
        assert_eq!(s.domains[0].role, crate::scenario::Role::Driver);
    }
    let m = crate::scenario::load(&root().join(MICRO_SCENARIO), &root()).unwrap();
    assert!(m.machine.icount);
    let scenarios = |k: Kind| -> Vec<&str> { k.runs().iter().map(|r| r.scenario).collect() };
    let icount = crate::bench::ICOUNT_SCENARIO;
    assert_eq!(
        scenarios(Kind::Micro),
        [MICRO_SCENARIO, icount, icount, icount]
    );
    assert_eq!(
        scenarios(Kind::Ring),
        [RING_SCENARIOS[0], RING_SCENARIOS[1], icount, icount, icount]
    );
    let pages: Vec<Vec<String>> = Kind::Micro.runs().iter().map(|r| r.overrides()).collect();
    assert_eq!(
        pages,
        [
            vec![],
            vec!["ring-rx: ring-pages=65".to_owned()],
            vec!["ring-rx: ring-pages=33".to_owned()],
            vec!["ring-rx: ring-pages=17".to_owned()]
        ]
    );
}
