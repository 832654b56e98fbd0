//! The regression gate: the deterministic figures (every `bench micro`
//! path, and the byte channel's instructions per message under `-icount`)
//! against the committed baseline, [`BASELINE_FILE`]. A figure that moved by
//! more than [`tolerance`] either way fails: faster too, so that the
//! baseline (and the README's numbers, which a test checks against it)
//! never drift. Updating it is one command, [`UPDATE_COMMAND`], and a
//! deliberate commit.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{pretty, IcountResult, MicroResult};

/// The baseline, relative to the workspace root.
pub const BASELINE_FILE: &str = "tests/bench-baseline.json";
/// What rewrites the baseline.
pub const UPDATE_COMMAND: &str = "cargo parapet bench micro --update-baseline";
/// A figure may move by this fraction of its baseline…
pub const TOLERANCE_FRACTION: f64 = 0.02;
/// …or by this many instructions, whichever is more.
pub const TOLERANCE_INSTRUCTIONS: u64 = 10;

/// The baseline file: `{"comment", "command", "figures": {name: instructions}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// What the file is, for a reader.
    pub comment: String,
    /// The command that wrote it.
    pub command: String,
    /// Instructions by figure name, sorted by name.
    pub figures: BTreeMap<String, u64>,
}

/// The baseline file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a baseline.
    #[error("{}: not a baseline ({source}); rewrite it with `{UPDATE_COMMAND}`", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl Baseline {
    /// A baseline of `figures`.
    pub fn new(figures: BTreeMap<String, u64>) -> Self {
        Baseline {
            comment: "Deterministic instruction counts (QEMU -icount shift=0, PMU): every \
                      `bench micro` path and the byte channel per 4 KiB message. \
                      tests/tests/bench_gate.rs fails when a figure moves by more than \
                      max(2%, 10 instructions); README.md and docs/ipc.md show these numbers."
                .into(),
            command: UPDATE_COMMAND.into(),
            figures,
        }
    }

    /// The JSON text, pretty-printed, ending with a newline.
    pub fn to_json(&self) -> String {
        pretty(self)
    }

    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| BaselineError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes `path`.
    pub fn write(&self, path: &Path) -> Result<(), BaselineError> {
        std::fs::write(path, self.to_json()).map_err(|source| BaselineError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

/// The gated figures of a `bench micro` run: each path's instructions, and
/// each instruction count of the byte channel ([`IcountResult::figures`]).
pub fn figures(micro: &[MicroResult], icount: &[IcountResult]) -> BTreeMap<String, u64> {
    micro
        .iter()
        .map(|m| (m.name.clone(), m.instructions))
        .chain(icount.iter().flat_map(IcountResult::figures))
        .collect()
}

/// How far a figure of `baseline` instructions may move: max(2%, 10).
pub fn tolerance(baseline: u64) -> u64 {
    let pct = (baseline as f64 * TOLERANCE_FRACTION).floor() as u64;
    pct.max(TOLERANCE_INSTRUCTIONS)
}

/// A figure outside the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    /// The figure.
    pub name: String,
    /// Its baseline (`None`: a new figure).
    pub baseline: Option<u64>,
    /// What was measured (`None`: no longer measured).
    pub measured: Option<u64>,
}

impl Deviation {
    /// One line: name, baseline, measured, difference.
    pub fn text(&self) -> String {
        match (self.baseline, self.measured) {
            (Some(b), Some(m)) => {
                let d = m as i64 - b as i64;
                let pct = if b == 0 {
                    String::new()
                } else {
                    format!(" ({:+.1}%)", d as f64 * 100.0 / b as f64)
                };
                format!(
                    "{}: baseline {b}, measured {m}, difference {d:+}{pct}: {} than the baseline by more than {}",
                    self.name,
                    if d < 0 { "faster" } else { "slower" },
                    tolerance(b)
                )
            }
            (Some(b), None) => format!("{}: baseline {b}, not measured any more", self.name),
            (None, Some(m)) => format!("{}: not in the baseline, measured {m}", self.name),
            (None, None) => format!("{}: neither in the baseline nor measured", self.name),
        }
    }
}

/// Every figure of `baseline` or `measured` that is not in both within
/// [`tolerance`], sorted by name.
pub fn compare(
    baseline: &BTreeMap<String, u64>,
    measured: &BTreeMap<String, u64>,
) -> Vec<Deviation> {
    let mut names: Vec<&String> = baseline.keys().chain(measured.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let (b, m) = (baseline.get(name).copied(), measured.get(name).copied());
            let ok = matches!((b, m), (Some(b), Some(m)) if b.abs_diff(m) <= tolerance(b));
            (!ok).then(|| Deviation {
                name: name.clone(),
                baseline: b,
                measured: m,
            })
        })
        .collect()
}

/// What the gate prints: a line per deviation and what to run, or that all
/// figures are within the tolerance.
pub fn gate_report(deviations: &[Deviation], checked: usize) -> String {
    let mut s = String::new();
    if deviations.is_empty() {
        let _ = writeln!(
            s,
            "bench gate: {checked} figure(s) within max(2%, {TOLERANCE_INSTRUCTIONS} instructions) of {BASELINE_FILE}"
        );
        return s;
    }
    let _ = writeln!(
        s,
        "bench gate: {} figure(s) differ from {BASELINE_FILE} by more than max(2%, {TOLERANCE_INSTRUCTIONS} instructions):",
        deviations.len()
    );
    for d in deviations {
        let _ = writeln!(s, "  {}", d.text());
    }
    let _ = writeln!(
        s,
        "bench gate: if the change is intended (faster or slower), update the baseline with \
         `{UPDATE_COMMAND}` and commit {BASELINE_FILE} (README.md and docs/ipc.md show these \
         numbers: `cargo test -p parapet-tests --test docs` says which to change)"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: &[(&str, u64)]) -> BTreeMap<String, u64> {
        v.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn the_tolerance_is_2_percent_or_10_instructions() {
        assert_eq!(tolerance(30), 10);
        assert_eq!(tolerance(500), 10);
        assert_eq!(tolerance(501), 10);
        assert_eq!(tolerance(550), 11);
        assert_eq!(tolerance(4528), 90);
    }

    #[test]
    fn both_directions_fail() {
        let base = map(&[("a", 100), ("b", 1000), ("c", 30), ("gone", 5)]);
        let got = map(&[("a", 110), ("b", 979), ("c", 19), ("new", 7)]);
        let d = compare(&base, &got);
        let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        // a: +10 is within 10; b: -21 beyond 20; c: -11 beyond 10 (faster).
        assert_eq!(names, ["b", "c", "gone", "new"]);
        assert_eq!(
            d[0].text(),
            "b: baseline 1000, measured 979, difference -21 (-2.1%): faster than the baseline by more than 20"
        );
        assert_eq!(
            d[1].text(),
            "c: baseline 30, measured 19, difference -11 (-36.7%): faster than the baseline by more than 10"
        );
        assert_eq!(d[2].text(), "gone: baseline 5, not measured any more");
        assert_eq!(d[3].text(), "new: not in the baseline, measured 7");
        let slower = compare(&map(&[("a", 100)]), &map(&[("a", 111)]));
        assert!(
            slower[0].text().contains("+11 (+11.0%): slower"),
            "{:?}",
            slower
        );
        assert!(compare(&base, &base).is_empty());
    }

    #[test]
    fn the_report_says_what_to_run() {
        let d = compare(&map(&[("x", 100)]), &map(&[("x", 200)]));
        let r = gate_report(&d, 1);
        assert!(
            r.contains("x: baseline 100, measured 200, difference +100"),
            "{r}"
        );
        assert!(
            r.contains("`cargo parapet bench micro --update-baseline`"),
            "{r}"
        );
        assert!(r.contains("commit tests/bench-baseline.json"), "{r}");
        let ok = gate_report(&[], 12);
        assert!(
            ok.contains("12 figure(s) within max(2%, 10 instructions)"),
            "{ok}"
        );
    }

    #[test]
    fn baselines_round_trip_and_bad_files_say_what_to_run() {
        let b = Baseline::new(map(&[("z", 1), ("a", 2)]));
        let text = b.to_json();
        assert!(text.find("\"a\"").unwrap() < text.find("\"z\"").unwrap());
        let dir = std::env::temp_dir().join(format!("parapet-gate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("b.json");
        b.write(&p).unwrap();
        assert_eq!(Baseline::read(&p).unwrap(), b);
        std::fs::write(&p, "{\"figures\": 3}").unwrap();
        let e = Baseline::read(&p).unwrap_err().to_string();
        assert!(
            e.contains("not a baseline") && e.contains(UPDATE_COMMAND),
            "{e}"
        );
        let e = Baseline::read(&dir.join("missing.json")).unwrap_err();
        assert!(matches!(e, BaselineError::Io { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn figures_take_micro_and_icount() {
        let m = MicroResult {
            name: "null_hypercall".into(),
            instructions: 30,
            samples: 1000,
            target: Some(64),
            met: Some(true),
        };
        let i = IcountResult {
            size: 4096,
            slots: 16,
            msgs: 1024,
            instructions_per_msg: 5000.4,
            memcpy_instructions: 2000.0,
            beyond_two_copies: 1000.4,
            ratio: 0.4,
        };
        let f = figures(&[m], &[i]);
        assert_eq!(
            f,
            map(&[
                ("null_hypercall", 30),
                ("ring_4096_16slots_per_msg", 5000),
                ("ring_4096_16slots_beyond_copies", 1000),
                ("ring_4096_16slots_memcpy", 2000),
            ])
        );
    }
}
