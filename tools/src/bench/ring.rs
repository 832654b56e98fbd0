//! `bench ring`: byte-channel throughput between two guests, with 1 and 2
//! CPUs, next to the same guest's memcpy.

use std::fmt::Write as _;

use serde::Serialize;

use super::{bench_tokens, cpus_text, met_text, pretty, BenchError, Bound, Fields, Target, MIB};

/// The scenarios `bench ring` runs, in order.
pub const RING_SCENARIOS: [&str; 2] = [
    "scenarios/bench-ring-1cpu.toml",
    "scenarios/bench-ring-2cpu.toml",
];
/// The scenario `bench micro` runs.
/// The message size the ring targets are measured at.
pub const RING_TARGET_SIZE: u64 = 4096;
/// Target: ring/memcpy throughput ratio at 4096 B with 2 CPUs, at least.
pub const RATIO_LIMIT_2CPU: f64 = 0.8;
/// Target: ring/memcpy throughput ratio at 4096 B with 1 CPU, at least.
pub const RATIO_LIMIT_1CPU: f64 = 0.4;
/// Target: event notifications (sender + receiver) per message, at most.
pub const NOTIFY_PER_MSG_LIMIT: f64 = 1.0 / 32.0;

/// `bench ring tx …`: what the sender reports for one size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingTx {
    /// Message size in bytes.
    pub size: u64,
    /// Messages sent.
    pub msgs: u64,
    /// Event notifications the sender sent.
    pub notify: u64,
}

/// `bench ring rx …`: what the receiver reports for one size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingRx {
    /// Message size in bytes.
    pub size: u64,
    /// Messages received.
    pub msgs: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Counter ticks the transfer took.
    pub ticks: u64,
    /// Counter frequency, Hz.
    pub freq: u64,
    /// Event notifications the receiver sent.
    pub notify: u64,
    /// World switches on all CPUs during this size.
    pub switches: u64,
    /// Bytes copied by the plain-memcpy reference.
    pub memcpy_bytes: u64,
    /// Counter ticks of the memcpy reference.
    pub memcpy_ticks: u64,
    /// `checksum=ok`.
    pub checksum_ok: bool,
}

/// The ring benchmark lines of one run, as printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingLines {
    /// Sender lines, in order.
    pub tx: Vec<RingTx>,
    /// Receiver lines, in order.
    pub rx: Vec<RingRx>,
    /// `sizes=` of the `bench ring done` line.
    pub done: Option<u64>,
}

/// Reads the `bench ring …` lines of one run's console. Other lines are
/// ignored; a `bench ring tx|rx|done` line that cannot be read is an error.
pub fn parse_ring<S: AsRef<str>>(lines: &[S]) -> Result<RingLines, BenchError> {
    let mut out = RingLines::default();
    for line in lines {
        let line = line.as_ref();
        let Some(tokens) = bench_tokens(line, "ring") else {
            continue;
        };
        let Some((&kind, rest)) = tokens.split_first() else {
            continue;
        };
        match kind {
            "tx" => {
                let f = Fields::parse(line, rest)?;
                let tx = RingTx {
                    size: f.u64("size")?,
                    msgs: f.u64("msgs")?,
                    notify: f.u64("notify")?,
                };
                if out.tx.iter().any(|t| t.size == tx.size) {
                    return Err(BenchError::Duplicate(format!(
                        "`bench ring tx size={}` printed twice",
                        tx.size
                    )));
                }
                out.tx.push(tx);
            }
            "rx" => {
                let f = Fields::parse(line, rest)?;
                let checksum_ok = match f.str("checksum")? {
                    "ok" => true,
                    "bad" => false,
                    other => {
                        return Err(
                            f.malformed(format!("`checksum={other}`: expected `ok` or `bad`"))
                        )
                    }
                };
                let rx = RingRx {
                    size: f.u64("size")?,
                    msgs: f.u64("msgs")?,
                    bytes: f.u64("bytes")?,
                    ticks: f.u64("ticks")?,
                    freq: f.u64("freq")?,
                    notify: f.u64("notify")?,
                    switches: f.u64("switches")?,
                    memcpy_bytes: f.u64("memcpy_bytes")?,
                    memcpy_ticks: f.u64("memcpy_ticks")?,
                    checksum_ok,
                };
                if out.rx.iter().any(|r| r.size == rx.size) {
                    return Err(BenchError::Duplicate(format!(
                        "`bench ring rx size={}` printed twice",
                        rx.size
                    )));
                }
                out.rx.push(rx);
            }
            "done" => {
                let f = Fields::parse(line, rest)?;
                let n = f.u64("sizes")?;
                if out.done.is_some() {
                    return Err(BenchError::Duplicate(
                        "`bench ring done` printed twice".into(),
                    ));
                }
                out.done = Some(n);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The figures of one (CPUs, size) pair. Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RingResult {
    /// Message size in bytes.
    pub size: u64,
    /// Physical CPUs of the run.
    pub cpus: u32,
    /// Ring throughput, MiB/s.
    pub mib_s: f64,
    /// Messages per second.
    pub msgs_s: f64,
    /// (sender + receiver notifications) / messages.
    pub notify_per_msg: f64,
    /// World switches / messages.
    pub switches_per_msg: f64,
    /// Plain memcpy throughput, MiB/s.
    pub memcpy_mib_s: f64,
    /// `mib_s / memcpy_mib_s`.
    pub ratio: f64,
}

/// Checks the lines of one run (a matching tx line for every rx line and the
/// reverse, good checksums, a `done` line with the right count, non-zero
/// times) and computes one result per size, in the order the receiver printed.
pub fn ring_results(cpus: u32, lines: &RingLines) -> Result<Vec<RingResult>, BenchError> {
    if let Some(rx) = lines.rx.iter().find(|r| !r.checksum_ok) {
        return Err(BenchError::BadChecksum { size: rx.size });
    }
    for rx in &lines.rx {
        if !lines.tx.iter().any(|t| t.size == rx.size) {
            return Err(BenchError::Missing(format!(
                "`bench ring tx size={}` from the sender (the receiver reported this size)",
                rx.size
            )));
        }
    }
    for tx in &lines.tx {
        if !lines.rx.iter().any(|r| r.size == tx.size) {
            return Err(BenchError::Missing(format!(
                "`bench ring rx size={}` from the receiver (the sender reported this size)",
                tx.size
            )));
        }
    }
    let Some(done) = lines.done else {
        return Err(BenchError::Missing(format!(
            "`bench ring done sizes=N` from the receiver ({} size(s) reported before the end)",
            lines.rx.len()
        )));
    };
    if usize::try_from(done).ok() != Some(lines.rx.len()) {
        return Err(BenchError::CountMismatch {
            line: format!("bench ring done sizes={done}"),
            found: lines.rx.len(),
        });
    }
    if lines.rx.is_empty() {
        return Err(BenchError::Missing(
            "`bench ring rx …`: no size was measured".into(),
        ));
    }
    lines
        .rx
        .iter()
        .map(|rx| {
            let tx = lines
                .tx
                .iter()
                .find(|t| t.size == rx.size)
                .expect("checked above");
            ring_result(cpus, tx, rx)
        })
        .collect()
}

fn ring_result(cpus: u32, tx: &RingTx, rx: &RingRx) -> Result<RingResult, BenchError> {
    let bad = |problem: String| BenchError::Inconsistent {
        size: rx.size,
        problem,
    };
    for (name, v) in [
        ("freq", rx.freq),
        ("ticks", rx.ticks),
        ("msgs", rx.msgs),
        ("memcpy_ticks", rx.memcpy_ticks),
        ("memcpy_bytes", rx.memcpy_bytes),
    ] {
        if v == 0 {
            return Err(bad(format!("the receiver reports {name}=0")));
        }
    }
    if tx.msgs != rx.msgs {
        return Err(bad(format!(
            "the sender sent {} message(s) but the receiver got {}",
            tx.msgs, rx.msgs
        )));
    }
    let freq = rx.freq as f64;
    let msgs = rx.msgs as f64;
    let secs = rx.ticks as f64 / freq;
    let mib_s = rx.bytes as f64 / secs / MIB;
    let memcpy_mib_s = rx.memcpy_bytes as f64 / (rx.memcpy_ticks as f64 / freq) / MIB;
    Ok(RingResult {
        size: rx.size,
        cpus,
        mib_s,
        msgs_s: msgs / secs,
        notify_per_msg: (tx.notify + rx.notify) as f64 / msgs,
        switches_per_msg: rx.switches as f64 / msgs,
        memcpy_mib_s,
        ratio: mib_s / memcpy_mib_s,
    })
}

/// [`parse_ring`] then [`ring_results`].
pub fn ring_run<S: AsRef<str>>(cpus: u32, lines: &[S]) -> Result<Vec<RingResult>, BenchError> {
    ring_results(cpus, &parse_ring(lines)?)
}

/// The ring targets: ratio at 4096 B (≥ 0.4 with 1 CPU, ≥ 0.8 with 2 CPUs),
/// and notifications per message ≤ 1/32 at the worst size and at 4096 B for
/// each CPU count. A value that was not measured is `None` and not met.
pub fn ring_targets(results: &[RingResult]) -> Vec<Target> {
    let at = |cpus: u32| {
        results
            .iter()
            .find(|r| r.cpus == cpus && r.size == RING_TARGET_SIZE)
    };
    let mut t = Vec::new();
    for (cpus, limit) in [(1, RATIO_LIMIT_1CPU), (2, RATIO_LIMIT_2CPU)] {
        t.push(Target::new(
            format!("ratio_{RING_TARGET_SIZE}_{cpus}cpu"),
            format!(
                "ring/memcpy ratio at {RING_TARGET_SIZE} B, {}",
                cpus_text(cpus)
            ),
            at(cpus).map(|r| r.ratio),
            Bound::AtLeast,
            limit,
        ));
    }
    let worst = results
        .iter()
        .max_by(|a, b| a.notify_per_msg.total_cmp(&b.notify_per_msg));
    t.push(Target::new(
        "notify_per_msg_worst",
        match worst {
            Some(w) => format!(
                "notifications per message, worst ({} B, {})",
                w.size,
                cpus_text(w.cpus)
            ),
            None => "notifications per message, worst".to_owned(),
        },
        worst.map(|w| w.notify_per_msg),
        Bound::AtMost,
        NOTIFY_PER_MSG_LIMIT,
    ));
    for cpus in [1, 2] {
        t.push(Target::new(
            format!("notify_per_msg_{RING_TARGET_SIZE}_{cpus}cpu"),
            format!(
                "notifications per message at {RING_TARGET_SIZE} B, {}",
                cpus_text(cpus)
            ),
            at(cpus).map(|r| r.notify_per_msg),
            Bound::AtMost,
            NOTIFY_PER_MSG_LIMIT,
        ));
    }
    t
}

/// The table (one row per CPUs × size, sorted) and the targets, for stdout.
pub fn ring_report(results: &[RingResult], targets: &[Target]) -> String {
    let mut rows: Vec<&RingResult> = results.iter().collect();
    rows.sort_by_key(|r| (r.cpus, r.size));
    let mut s = String::from("bench ring: results\n");
    let _ = writeln!(
        s,
        "{:>4} {:>8} {:>10} {:>12} {:>10} {:>12} {:>12} {:>7}",
        "cpus", "size B", "MiB/s", "msgs/s", "notify/msg", "switches/msg", "memcpy MiB/s", "ratio"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:>4} {:>8} {:>10.2} {:>12.0} {:>10.4} {:>12.4} {:>12.2} {:>7.3}",
            r.cpus,
            r.size,
            r.mib_s,
            r.msgs_s,
            r.notify_per_msg,
            r.switches_per_msg,
            r.memcpy_mib_s,
            r.ratio
        );
    }
    s += "bench ring: targets\n";
    let width = targets
        .iter()
        .map(|t| t.description.len())
        .max()
        .unwrap_or(0);
    for t in targets {
        let value = t
            .value
            .map_or_else(|| "not measured".to_owned(), |v| format!("{v:.4}"));
        let _ = writeln!(
            s,
            "  {:<width$}  {} {:<7.4}  {:>12}  {}",
            t.description,
            t.bound.symbol(),
            t.limit,
            value,
            met_text(t.met)
        );
    }
    s
}

/// The `--json` document of `bench ring`.
/// `{"bench":"ring","results":[…],"targets":[…]}`, pretty-printed with the
/// keys in that order, ending with a newline.
pub fn ring_json(results: &[RingResult], targets: &[Target]) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        bench: &'static str,
        results: &'a [RingResult],
        targets: &'a [Target],
    }
    pretty(&Doc {
        bench: "ring",
        results,
        targets,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bench::test_support::{root, value};
    use crate::bench::{Kind, MICRO_SCENARIO};
    use serde_json::json;

    pub(crate) const TX_4096: &str = "[ring-tx] bench ring tx size=4096 msgs=1024 notify=16";
    // 4 MiB in 1 s; memcpy 8 MiB in 0.5 s.
    pub(crate) const RX_4096: &str = "[ring-rx] bench ring rx size=4096 msgs=1024 bytes=4194304 \
         ticks=62500000 freq=62500000 notify=16 switches=64 memcpy_bytes=8388608 \
         memcpy_ticks=31250000 checksum=ok";

    fn good() -> Vec<String> {
        vec![
            "[hv] parapet hypervisor".into(),
            "[driver] up".into(),
            // Fields in another order, an unknown key.
            "[ring-tx] bench ring tx notify=1 msgs=100 size=64 extra=7".into(),
            "[ring-rx] bench ring rx checksum=ok memcpy_ticks=1000 memcpy_bytes=6400 \
             switches=300 notify=3 freq=1000000 ticks=2000 bytes=6400 msgs=100 size=64 new=x"
                .into(),
            TX_4096.into(),
            RX_4096.into(),
            "[ring-rx] bench ring done sizes=2".into(),
            "[hv] domain ring-rx exited: poweroff (code 0)".into(),
        ]
    }

    #[test]
    fn parses_good_lines() {
        let l = parse_ring(&good()).unwrap();
        assert_eq!(
            l.tx,
            [
                RingTx {
                    size: 64,
                    msgs: 100,
                    notify: 1
                },
                RingTx {
                    size: 4096,
                    msgs: 1024,
                    notify: 16
                }
            ]
        );
        assert_eq!(l.rx.len(), 2);
        assert_eq!(
            l.rx[0],
            RingRx {
                size: 64,
                msgs: 100,
                bytes: 6400,
                ticks: 2000,
                freq: 1_000_000,
                notify: 3,
                switches: 300,
                memcpy_bytes: 6400,
                memcpy_ticks: 1000,
                checksum_ok: true,
            }
        );
        assert_eq!(l.done, Some(2));
    }

    #[test]
    fn hand_checked_computation() {
        let r = ring_run(2, &[TX_4096, RX_4096, "[ring-rx] bench ring done sizes=1"]).unwrap();
        assert_eq!(
            r,
            [RingResult {
                size: 4096,
                cpus: 2,
                mib_s: 4.0,
                msgs_s: 1024.0,
                notify_per_msg: 32.0 / 1024.0,
                switches_per_msg: 0.0625,
                memcpy_mib_s: 16.0,
                ratio: 0.25,
            }]
        );
        // 6400 B in 2 ms = 3.2 MB/s; memcpy 6400 B in 1 ms.
        let r = ring_run(1, &good()).unwrap();
        assert_eq!(r.len(), 2);
        let r64 = &r[0];
        assert_eq!((r64.size, r64.cpus), (64, 1));
        assert!((r64.mib_s - 3_200_000.0 / MIB).abs() < 1e-9);
        assert!((r64.msgs_s - 50_000.0).abs() < 1e-6);
        assert!((r64.notify_per_msg - 0.04).abs() < 1e-12);
        assert!((r64.switches_per_msg - 3.0).abs() < 1e-12);
        assert!((r64.memcpy_mib_s - 6_400_000.0 / MIB).abs() < 1e-9);
        assert!((r64.ratio - 0.5).abs() < 1e-12);
    }

    fn err(lines: &[&str]) -> String {
        ring_run(1, lines).unwrap_err().to_string()
    }

    #[test]
    fn missing_field() {
        let e = err(&["[ring-tx] bench ring tx size=64 msgs=10"]);
        assert!(e.contains("missing field `notify=`"), "{e}");
        assert!(e.contains("bench ring tx size=64 msgs=10"), "{e}");
        let rx = RX_4096.replace(" ticks=62500000", "");
        let e = err(&[TX_4096, &rx]);
        assert!(e.contains("missing field `ticks=`"), "{e}");
        let e = err(&["[ring-rx] bench ring done"]);
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
            let e = err(&[line]);
            assert!(e.starts_with("malformed line"), "{e}");
            assert!(e.contains(says), "{e} should contain {says}");
        }
        let rx = RX_4096.replace("checksum=ok", "checksum=maybe");
        assert!(err(&[TX_4096, &rx]).contains("expected `ok` or `bad`"));
    }

    #[test]
    fn bad_checksum() {
        let rx = RX_4096.replace("checksum=ok", "checksum=bad");
        let e = ring_run(2, &[TX_4096, &rx, "[ring-rx] bench ring done sizes=1"]).unwrap_err();
        assert_eq!(e, BenchError::BadChecksum { size: 4096 });
        assert_eq!(
            e.to_string(),
            "bad checksum at size 4096 B: the receiver got corrupted data"
        );
    }

    #[test]
    fn missing_tx_and_rx() {
        let e = err(&[RX_4096, "[ring-rx] bench ring done sizes=1"]);
        assert!(e.contains("missing line: `bench ring tx size=4096`"), "{e}");
        let e = err(&[TX_4096, "[ring-rx] bench ring done sizes=0"]);
        assert!(e.contains("missing line: `bench ring rx size=4096`"), "{e}");
    }

    #[test]
    fn missing_done_and_wrong_count() {
        let e = err(&[TX_4096, RX_4096]);
        assert!(e.contains("missing line: `bench ring done sizes=N`"), "{e}");
        assert!(e.contains("1 size(s) reported"), "{e}");
        let e = err(&[TX_4096, RX_4096, "[ring-rx] bench ring done sizes=6"]);
        assert_eq!(
            e,
            "`bench ring done sizes=6` but 1 result line(s) were printed"
        );
        let e = err(&["[ring-rx] bench ring done sizes=0"]);
        assert!(e.contains("no size was measured"), "{e}");
        let e = err(&[
            TX_4096,
            RX_4096,
            "[ring-rx] bench ring done sizes=1",
            "[ring-rx] bench ring done sizes=1",
        ]);
        assert!(e.starts_with("duplicate line"), "{e}");
        let e = err(&[TX_4096, TX_4096]);
        assert!(e.contains("`bench ring tx size=4096` printed twice"), "{e}");
    }

    #[test]
    fn inconsistent_numbers() {
        let done = "[ring-rx] bench ring done sizes=1";
        let rx = RX_4096.replace("ticks=62500000 ", "ticks=0 ");
        assert!(err(&[TX_4096, &rx, done]).contains("ticks=0"));
        let rx = RX_4096.replace("freq=62500000", "freq=0");
        assert!(err(&[TX_4096, &rx, done]).contains("freq=0"));
        let tx = TX_4096.replace("msgs=1024", "msgs=1000");
        let e = err(&[&tx, RX_4096, done]);
        assert_eq!(
            e,
            "size 4096 B: the sender sent 1000 message(s) but the receiver got 1024"
        );
    }

    fn result(cpus: u32, size: u64, ratio: f64, notify_per_msg: f64) -> RingResult {
        RingResult {
            size,
            cpus,
            mib_s: 1.0,
            msgs_s: 1.0,
            notify_per_msg,
            switches_per_msg: 0.0,
            memcpy_mib_s: 1.0,
            ratio,
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
        let got: Vec<(Option<f64>, f64, bool)> =
            t.iter().map(|t| (t.value, t.limit, t.met)).collect();
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
        let r = ring_run(2, &[TX_4096, RX_4096, "[ring-rx] bench ring done sizes=1"]).unwrap();
        let t = ring_targets(&r);
        let text = ring_json(&r, &t);
        let v = value(&text);
        assert_eq!(
            v,
            json!({
                "bench": "ring",
                "results": [{
                    "size": 4096, "cpus": 2, "mib_s": 4.0, "msgs_s": 1024.0,
                    "notify_per_msg": 0.03125, "switches_per_msg": 0.0625,
                    "memcpy_mib_s": 16.0, "ratio": 0.25
                }],
                "targets": [
                    {"name": "ratio_4096_1cpu", "value": null, "limit": 0.4, "met": false},
                    {"name": "ratio_4096_2cpu", "value": 0.25, "limit": 0.8, "met": false},
                    {"name": "notify_per_msg_worst", "value": 0.03125, "limit": 0.03125, "met": true},
                    {"name": "notify_per_msg_4096_1cpu", "value": null, "limit": 0.03125, "met": false},
                    {"name": "notify_per_msg_4096_2cpu", "value": 0.03125, "limit": 0.03125, "met": true},
                ]
            })
        );
        // Keys in the documented order.
        let at = |k: &str| text.find(k).unwrap();
        assert!(at("\"bench\"") < at("\"results\"") && at("\"results\"") < at("\"targets\""));
        assert!(at("\"size\"") < at("\"cpus\"") && at("\"mib_s\"") < at("\"ratio\""));
        assert!(at("\"name\"") < at("\"value\"") && at("\"limit\"") < at("\"met\""));
    }
    #[test]
    fn ring_scenarios_parse_as_intended() {
        for (path, cpus, pins) in [
            (RING_SCENARIOS[0], 1, [0, 0, 0]),
            (RING_SCENARIOS[1], 2, [0, 0, 1]),
        ] {
            let s = crate::scenario::load(&root().join(path), &root())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.machine.cpus, cpus, "{path}");
            assert!(!s.machine.icount, "{path}");
            assert_eq!(s.domain_names(), ["driver", "ring-tx", "ring-rx"], "{path}");
            let got: Vec<(&str, Option<&str>, u64, Option<u32>)> = s
                .domains
                .iter()
                .map(|d| (d.image.as_str(), d.cmdline.as_deref(), d.memory_mib, d.cpu))
                .collect();
            assert_eq!(
                got,
                [
                    ("driver-domain", None, 64, Some(pins[0])),
                    ("ring-bench", Some("tx"), 64, Some(pins[1])),
                    ("ring-bench", Some("rx"), 64, Some(pins[2])),
                ],
                "{path}"
            );
            assert_eq!(s.domains[0].role, crate::scenario::Role::Driver);
        }
        let m = crate::scenario::load(&root().join(MICRO_SCENARIO), &root()).unwrap();
        assert!(m.machine.icount);
        assert_eq!(Kind::Micro.scenarios(), [MICRO_SCENARIO]);
        assert_eq!(Kind::Ring.scenarios(), RING_SCENARIOS);
    }
}
