//! `parapet bench`: the benchmark lines the guests print, the numbers derived
//! from them, the targets, the table and the JSON report. Pure code, apart
//! from [`Capture`], which only tees console lines.
//!
//! One module per benchmark: [`ring`], [`micro`], [`net`]; this one holds
//! what they share (the line grammar's tokenizer, errors, targets).
//!
//! Each function takes the raw console lines of one run (`[domain] text`, as
//! the hypervisor prints them), so tests can feed sample transcripts.
//!
//! Accepted lines (after the `[domain] ` prefix; fields are `key=value`
//! separated by spaces, in any order, unknown keys ignored):
//!
//! ```text
//! bench ring tx size=<u64> msgs=<u64> notify=<u64>
//! bench ring memcpy size=<u64> n=<u64> bytes=<u64> ticks=<u64> freq=<u64>
//! bench ring xcopy size=<u64> n=<u64> bytes=<u64> ticks=<u64> freq=<u64>
//! bench ring window size=<u64> n=<u64> msgs=<u64> bytes=<u64> ticks=<u64> freq=<u64>
//!               notify=<u64> switches=<u64> checksum=<ok|bad>
//! bench ring icount size=<u64> slots=<u64> msgs=<u64> instructions=<u64>
//!               memcpy_msgs=<u64> memcpy_instructions=<u64> checksum=<ok|bad>
//! bench ring rx size=<u64> msgs=<u64> bytes=<u64> notify=<u64> switches=<u64>
//!               windows=<u64> work=<copy|net> checksum=<ok|bad>
//! bench ring done sizes=<u64>
//! bench micro <name> instructions=<u64> samples=<u64>
//! bench micro done count=<u64>
//! bench net window n=<u64> bytes=<u64> ticks=<u64> freq=<u64>
//! bench net rx bytes=<u64> checksum=<16 hex digits> ticks=<u64> freq=<u64>
//!               frames=<u64> notify=<u64> complete=<yes|no> windows=<u64>
//! bench net tx bytes=<u64> checksum=<16 hex digits> ticks=<u64> freq=<u64>
//!               frames=<u64> notify=<u64> complete=<yes|no>
//! ```
//!
//! `memcpy` and `window` lines come once per window `n` = 0, 1, … of a
//! message size (the receiver's memcpy, then the stream); each window is at
//! least [`MIN_WINDOW_MS`] of guest time and a size has at least
//! [`MIN_WINDOWS`] of each ([`stats`]). `xcopy` lines (2 CPUs, the
//! receiver with a second vCPU; none otherwise) are the cross-CPU copy
//! reference's windows, between the two, under the same rules. `rx` sums up the size (its `msgs`
//! include those read after the last window, and equal the sender's).
//! `icount` replaces the windows under `-icount` ([`icount`]).
//!
//! `bench net window` lines come from a TCP stream's receiver, once per
//! window `n` = 0, 1, … as it ends: `bytes` arrived in its `ticks`; the same
//! rules ([`MIN_WINDOWS`] of at least [`MIN_WINDOW_MS`]). Its `rx` line
//! sums up the whole stream, the windows and what arrived before and after
//! them (`bytes`, the FNV-1a 64 `checksum` of every byte, `ticks` from the
//! connection's establishment to the sender's FIN, `windows` the window
//! lines it printed); the sending guest's `tx` line (guest to guest) the
//! same from its side. All lines of one stream come from the same domain.

pub mod capture;
pub mod gate;
pub mod icount;
pub mod micro;
pub mod net;
pub mod plot;
pub mod ring;
pub mod stats;

pub use capture::Capture;
pub use icount::*;
pub use micro::*;
pub use net::*;
pub use ring::*;
pub use stats::{Figure, MIN_WINDOWS, MIN_WINDOW_MS};

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::transcript::split_prefix;

/// Default `--timeout` of `parapet bench`, per QEMU run, in seconds.
pub const DEFAULT_BENCH_TIMEOUT_SECS: u64 = 300;

pub(crate) const MIB: f64 = 1024.0 * 1024.0;

/// Which benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ring throughput, 1 and 2 CPUs.
    Ring,
    /// Instruction counts of hypercalls, events and world switches.
    Micro,
}

impl Kind {
    /// `ring` or `micro`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ring => "ring",
            Kind::Micro => "micro",
        }
    }

    /// The QEMU runs of this benchmark, in order: `bench ring` the
    /// windowed 1- and 2-CPU runs then the instruction counts of the ring,
    /// `bench micro` the micro-benchmarks then the same instruction counts
    /// (every deterministic figure, for the baseline).
    pub fn runs(self) -> Vec<Run> {
        let icount = ICOUNT_RINGS.iter().map(|(pages, _)| Run {
            scenario: ICOUNT_SCENARIO,
            set: vec![("ring-rx", "ring-pages", pages.to_string())],
            kind: RunKind::RingIcount,
        });
        let mut runs: Vec<Run> = match self {
            Kind::Ring => RING_SCENARIOS
                .iter()
                .map(|s| Run {
                    scenario: s,
                    set: Vec::new(),
                    kind: RunKind::RingWindows,
                })
                .collect(),
            Kind::Micro => vec![Run {
                scenario: MICRO_SCENARIO,
                set: Vec::new(),
                kind: RunKind::Micro,
            }],
        };
        runs.extend(icount);
        runs
    }
}

/// What one QEMU run of a benchmark measures, and so how its lines are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// `bench ring` windows ([`ring_run`]).
    RingWindows,
    /// `bench ring icount` ([`icount_run`]).
    RingIcount,
    /// `bench micro` ([`micro_run`]).
    Micro,
}

/// One QEMU run of a benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The scenario file, relative to the workspace root.
    pub scenario: &'static str,
    /// Words set in command lines first: `(domain, key, value)` (see
    /// [`set_word`]).
    pub set: Vec<(&'static str, &'static str, String)>,
    /// What it measures.
    pub kind: RunKind,
}

impl Run {
    /// The overrides as `DOMAIN: key=value`.
    pub fn overrides(&self) -> Vec<String> {
        self.set
            .iter()
            .map(|(d, k, v)| format!("{d}: {k}={v}"))
            .collect()
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The benchmark lines of a run are missing, malformed or report a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BenchError {
    /// A line that starts like a benchmark line but cannot be read.
    #[error("malformed line {line:?}: {problem}")]
    Malformed {
        /// The console line.
        line: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The receiver found corrupted data.
    #[error("bad checksum at size {size} B: the receiver got corrupted data")]
    BadChecksum {
        /// Message size.
        size: u64,
    },
    /// An expected line is not in the transcript.
    #[error("missing line: {0}")]
    Missing(String),
    /// The same result was printed twice.
    #[error("duplicate line: {0}")]
    Duplicate(String),
    /// A `done` line counts a different number of results.
    #[error("`{line}` but {found} result line(s) were printed")]
    CountMismatch {
        /// The `done` line as reported (without prefix).
        line: String,
        /// The number of result lines found.
        found: usize,
    },
    /// Numbers that cannot be right (zero time, mismatched message counts).
    #[error("size {size} B: {problem}")]
    Inconsistent {
        /// Message size.
        size: u64,
        /// What is wrong.
        problem: String,
    },
    /// Fewer windows than a wall-clock figure needs.
    #[error("{what}: {found} window(s), at least {needed} needed")]
    TooFewWindows {
        /// The figure.
        what: String,
        /// Windows printed.
        found: usize,
        /// Windows needed.
        needed: usize,
    },
    /// A window shorter than a wall-clock figure needs.
    #[error("window of {ms} ms, at least {needed_ms} ms needed: {line}")]
    ShortWindow {
        /// The console line of the window.
        line: String,
        /// Its length in ms.
        ms: String,
        /// The least allowed.
        needed_ms: u64,
    },
    /// A `bench net` stream arrived with another checksum than the one sent.
    #[error(
        "{path}: checksum mismatch over {bytes} bytes: expected fnv1a64 {expected}, got {got}"
    )]
    ChecksumMismatch {
        /// Which transfer.
        path: String,
        /// Bytes checksummed.
        bytes: u64,
        /// The pattern's checksum.
        expected: String,
        /// The reported one.
        got: String,
    },
    /// A `bench net` transfer did not complete as it should have.
    #[error("{path}: {problem}")]
    Transfer {
        /// Which transfer.
        path: String,
        /// What went wrong.
        problem: String,
    },
}

/// The tokens after `bench <bench>` of a domain's console line, if it is one.
pub(crate) fn bench_tokens<'a>(line: &'a str, bench: &str) -> Option<Vec<&'a str>> {
    let (prefix, text) = split_prefix(line)?;
    if prefix == "hv" {
        return None;
    }
    let mut t = text.split_whitespace();
    if t.next() != Some("bench") || t.next() != Some(bench) {
        return None;
    }
    Some(t.collect())
}

/// The `key=value` fields of one benchmark line.
pub(crate) struct Fields<'a> {
    line: &'a str,
    map: BTreeMap<&'a str, &'a str>,
}

impl<'a> Fields<'a> {
    pub(crate) fn parse(line: &'a str, tokens: &[&'a str]) -> Result<Self, BenchError> {
        let mut map = BTreeMap::new();
        for tok in tokens {
            let malformed = |problem: String| BenchError::Malformed {
                line: line.to_owned(),
                problem,
            };
            let (k, v) = tok
                .split_once('=')
                .ok_or_else(|| malformed(format!("`{tok}` is not key=value")))?;
            if k.is_empty() {
                return Err(malformed(format!("`{tok}` has no key")));
            }
            if map.insert(k, v).is_some() {
                return Err(malformed(format!("field `{k}` given twice")));
            }
        }
        Ok(Fields { line, map })
    }

    pub(crate) fn malformed(&self, problem: String) -> BenchError {
        BenchError::Malformed {
            line: self.line.to_owned(),
            problem,
        }
    }

    pub(crate) fn str(&self, key: &str) -> Result<&'a str, BenchError> {
        self.map
            .get(key)
            .copied()
            .ok_or_else(|| self.malformed(format!("missing field `{key}=`")))
    }

    pub(crate) fn u64(&self, key: &str) -> Result<u64, BenchError> {
        let v = self.str(key)?;
        v.parse()
            .map_err(|_| self.malformed(format!("`{key}={v}`: expected an unsigned integer")))
    }
}

/// Which way a target's limit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `value >= limit`.
    AtLeast,
    /// `value <= limit`.
    AtMost,
}

impl Bound {
    fn symbol(self) -> &'static str {
        match self {
            Bound::AtLeast => ">=",
            Bound::AtMost => "<=",
        }
    }
}

/// A target of `bench ring`: serialised as `{name, value, limit, met}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    /// Stable identifier, e.g. `ratio_4096_2cpu`.
    pub name: String,
    /// The measured value; `None` (JSON `null`) when it was not measured.
    pub value: Option<f64>,
    /// The limit.
    pub limit: f64,
    /// Whether the value is within the limit (`false` when not measured).
    pub met: bool,
    /// Which way the limit goes.
    #[serde(skip)]
    pub bound: Bound,
    /// For humans, e.g. `ring/memcpy ratio at 4096 B, 2 CPUs`.
    #[serde(skip)]
    pub description: String,
}

impl Target {
    /// A target evaluated on `value`.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        value: Option<f64>,
        bound: Bound,
        limit: f64,
    ) -> Self {
        let met = value.is_some_and(|v| match bound {
            Bound::AtLeast => v >= limit,
            Bound::AtMost => v <= limit,
        });
        Target {
            name: name.into(),
            value,
            limit,
            met,
            bound,
            description: description.into(),
        }
    }
}

pub(crate) fn cpus_text(cpus: u32) -> String {
    if cpus == 1 {
        "1 CPU".into()
    } else {
        format!("{cpus} CPUs")
    }
}

pub(crate) fn met_text(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

pub(crate) fn pretty<T: Serialize>(doc: &T) -> String {
    // Plain structs of numbers, strings and options: cannot fail, and the
    // values are finite (non-finite floats would become `null`).
    let mut s = serde_json::to_string_pretty(doc).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};

    pub(crate) fn value(text: &str) -> serde_json::Value {
        assert!(text.ends_with("}\n"), "{text}");
        serde_json::from_str(text).unwrap()
    }

    pub(crate) fn lines(s: &str) -> Vec<&str> {
        s.lines().map(str::trim_start).collect()
    }

    pub(crate) fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }
}
