//! `bench micro`: instruction counts of hypercalls, event delivery and world
//! switches, under `-icount shift=0`.

use std::fmt::Write as _;

use serde::Serialize;

use super::{bench_tokens, met_text, pretty, BenchError, Fields};

/// The scenario `bench micro` runs.
pub const MICRO_SCENARIO: &str = "scenarios/bench-micro.toml";
/// Targets of `bench micro`: (name, most instructions allowed).
pub const MICRO_TARGETS: [(&str, u64); 5] = [
    ("null_hypercall", 64),
    ("event_to_handler", 2000),
    ("world_switch", 400),
    // One way of a symmetric event ping-pong with the SDK's defaults.
    ("pingpong_block", 900),
    ("pingpong_upcall", 900),
];

/// One `bench micro <name> …` line, with its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MicroResult {
    /// What was measured, e.g. `null_hypercall`.
    pub name: String,
    /// Instructions per operation.
    pub instructions: u64,
    /// Samples taken.
    pub samples: u64,
    /// The most instructions allowed, when there is a target.
    pub target: Option<u64>,
    /// Whether the target is met, when there is one.
    pub met: Option<bool>,
}

/// The target of a micro benchmark, if it has one.
pub fn micro_target(name: &str) -> Option<u64> {
    MICRO_TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// Reads the `bench micro …` lines of one run's console and checks them (a
/// `bench micro done count=N` line matching the number of results, no
/// duplicates). Results keep the guest's order; targets are evaluated.
pub fn micro_run<S: AsRef<str>>(lines: &[S]) -> Result<Vec<MicroResult>, BenchError> {
    let mut results: Vec<MicroResult> = Vec::new();
    let mut done: Option<u64> = None;
    for line in lines {
        let line = line.as_ref();
        let Some(tokens) = bench_tokens(line, "micro") else {
            continue;
        };
        let Some((&name, rest)) = tokens.split_first() else {
            continue;
        };
        let f = Fields::parse(line, rest)?;
        if name == "done" {
            if done.is_some() {
                return Err(BenchError::Duplicate(
                    "`bench micro done` printed twice".into(),
                ));
            }
            done = Some(f.u64("count")?);
            continue;
        }
        if name.contains('=') {
            return Err(f.malformed("no benchmark name after `bench micro`".into()));
        }
        let instructions = f.u64("instructions")?;
        let samples = f.u64("samples")?;
        if samples == 0 {
            return Err(f.malformed("`samples=0`: nothing was measured".into()));
        }
        if results.iter().any(|r| r.name == name) {
            return Err(BenchError::Duplicate(format!(
                "`bench micro {name}` printed twice"
            )));
        }
        let target = micro_target(name);
        results.push(MicroResult {
            name: name.to_owned(),
            instructions,
            samples,
            target,
            met: target.map(|t| instructions <= t),
        });
    }
    let Some(done) = done else {
        return Err(BenchError::Missing(format!(
            "`bench micro done count=N` ({} result(s) reported before the end)",
            results.len()
        )));
    };
    if usize::try_from(done).ok() != Some(results.len()) {
        return Err(BenchError::CountMismatch {
            line: format!("bench micro done count={done}"),
            found: results.len(),
        });
    }
    if results.is_empty() {
        return Err(BenchError::Missing(
            "`bench micro <name> …`: nothing was measured".into(),
        ));
    }
    Ok(results)
}

/// Targeted benchmarks the guest did not report.
pub fn micro_unmeasured(results: &[MicroResult]) -> Vec<&'static str> {
    MICRO_TARGETS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !results.iter().any(|r| r.name == *n))
        .collect()
}

/// The table name / instructions / samples / target, for stdout.
pub fn micro_report(results: &[MicroResult]) -> String {
    let width = results
        .iter()
        .map(|r| r.name.len())
        .chain([4])
        .max()
        .unwrap_or(4);
    let mut s = String::from("bench micro: instructions per operation (-icount shift=0)\n");
    let _ = writeln!(
        s,
        "{:<width$} {:>12} {:>8} {:>8}  result",
        "name", "instructions", "samples", "target"
    );
    for r in results {
        let (target, met) = match (r.target, r.met) {
            (Some(t), Some(m)) => (format!("<= {t}"), met_text(m)),
            _ => ("-".to_owned(), "-"),
        };
        let _ = writeln!(
            s,
            "{:<width$} {:>12} {:>8} {:>8}  {}",
            r.name, r.instructions, r.samples, target, met
        );
    }
    for n in micro_unmeasured(results) {
        let t = micro_target(n).unwrap_or_default();
        let _ = writeln!(s, "note: no result for {n} (target <= {t})");
    }
    s
}

/// The `--json` document of `bench micro`.
/// `{"bench":"micro","results":[…]}`, pretty-printed with the keys in that
/// order, ending with a newline.
///
/// With the byte channel's instruction counts: `{"bench":"micro",
/// "results":[…],"icount":[…]}`.
pub fn micro_json(results: &[MicroResult], icount: &[super::IcountResult]) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        bench: &'static str,
        results: &'a [MicroResult],
        icount: &'a [super::IcountResult],
    }
    pretty(&Doc {
        bench: "micro",
        results,
        icount,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::test_support::{lines, value};
    use serde_json::json;

    const MICRO: &str = "[hv] boot
        [bench] bench micro null_hypercall instructions=52 samples=1000
        [bench] bench micro unknown_hypercall samples=1000 instructions=40 min=38
        [bench] bench micro event_to_handler instructions=2500 samples=100
        [bench] bench micro world_switch instructions=400 samples=100
        [bench] bench micro pingpong_block instructions=901 samples=200
        [bench] bench micro pingpong_upcall instructions=900 samples=200
        [bench] bench micro done count=6
        [hv] domain bench exited: poweroff (code 0)";

    /// name, instructions, samples, target, met.
    type MicroRow<'a> = (&'a str, u64, u64, Option<u64>, Option<bool>);

    #[test]
    fn micro_parses_and_evaluates() {
        let r = micro_run(&lines(MICRO)).unwrap();
        let got: Vec<MicroRow> = r
            .iter()
            .map(|r| (r.name.as_str(), r.instructions, r.samples, r.target, r.met))
            .collect();
        assert_eq!(
            got,
            [
                ("null_hypercall", 52, 1000, Some(64), Some(true)),
                ("unknown_hypercall", 40, 1000, None, None),
                ("event_to_handler", 2500, 100, Some(2000), Some(false)),
                ("world_switch", 400, 100, Some(400), Some(true)),
                ("pingpong_block", 901, 200, Some(900), Some(false)),
                ("pingpong_upcall", 900, 200, Some(900), Some(true)),
            ]
        );
        assert!(micro_unmeasured(&r).is_empty());
        let report = micro_report(&r);
        assert!(report.contains("event_to_handler"), "{report}");
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("event_to_handler") && l.ends_with("missed")),
            "{report}"
        );
        assert!(!report.contains("note:"), "{report}");
    }

    #[test]
    fn micro_errors() {
        let e = micro_run(&lines(
            "[bench] bench micro null_hypercall instructions=52 samples=9",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("missing line: `bench micro done count=N`"),
            "{e}"
        );
        let e = micro_run(&lines(
            "[bench] bench micro null_hypercall instructions=52\n[bench] bench micro done count=1",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing field `samples=`"), "{e}");
        let e = micro_run(&lines("[bench] bench micro instructions=52 samples=1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no benchmark name"), "{e}");
        let e = micro_run(&lines(
            "[bench] bench micro a instructions=x samples=1\n[bench] bench micro done count=1",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("`instructions=x`"), "{e}");
        let e = micro_run(&lines(
            "[bench] bench micro a instructions=1 samples=1\n[bench] bench micro done count=2",
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "`bench micro done count=2` but 1 result line(s) were printed"
        );
        let e = micro_run(&lines(
            "[bench] bench micro a instructions=1 samples=1\n\
             [bench] bench micro a instructions=1 samples=1\n[bench] bench micro done count=2",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("`bench micro a` printed twice"), "{e}");
        let e = micro_run(&lines("[bench] bench micro done count=0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nothing was measured"), "{e}");
        // Garbage is ignored, so only the end is missing.
        let e = micro_run(&lines("garbage\n[bench] benchmark\n[bench] bench micro"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("(0 result(s) reported"), "{e}");
    }

    #[test]
    fn micro_json_shape_and_unmeasured() {
        let r = micro_run(&lines(
            "[bench] bench micro null_hypercall instructions=70 samples=3\n\
             [bench] bench micro custom instructions=5 samples=1\n\
             [bench] bench micro done count=2",
        ))
        .unwrap();
        assert_eq!(
            value(&micro_json(&r, &[])),
            json!({"bench": "micro", "results": [
                {"name": "null_hypercall", "instructions": 70, "samples": 3, "target": 64, "met": false},
                {"name": "custom", "instructions": 5, "samples": 1, "target": null, "met": null},
            ], "icount": []})
        );
        assert_eq!(
            micro_unmeasured(&r),
            [
                "event_to_handler",
                "world_switch",
                "pingpong_block",
                "pingpong_upcall"
            ]
        );
        let report = micro_report(&r);
        assert!(report.contains("note: no result for world_switch (target <= 400)"));
    }
}
