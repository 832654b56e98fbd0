//! `parapet bench`: the benchmark lines the guests print, the numbers derived
//! from them, the targets, the table and the JSON report. Pure code, apart
//! from [`Capture`], which only tees console lines.
//!
//! Each function takes the raw console lines of one run (`[domain] text`, as
//! the hypervisor prints them), so tests can feed sample transcripts.
//!
//! Accepted lines (after the `[domain] ` prefix; fields are `key=value`
//! separated by spaces, in any order, unknown keys ignored):
//!
//! ```text
//! bench ring tx size=<u64> msgs=<u64> notify=<u64>
//! bench ring rx size=<u64> msgs=<u64> bytes=<u64> ticks=<u64> freq=<u64> notify=<u64>
//!               switches=<u64> memcpy_bytes=<u64> memcpy_ticks=<u64> checksum=<ok|bad>
//! bench ring done sizes=<u64>
//! bench micro <name> instructions=<u64> samples=<u64>
//! bench micro done count=<u64>
//! bench net rx|tx bytes=<u64> checksum=<16 hex digits> ticks=<u64> freq=<u64>
//!               frames=<u64> notify=<u64> complete=<yes|no>
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::transcript::{render, split_prefix};

/// The scenarios `bench ring` runs, in order.
pub const RING_SCENARIOS: [&str; 2] = [
    "scenarios/bench-ring-1cpu.toml",
    "scenarios/bench-ring-2cpu.toml",
];
/// The scenario `bench micro` runs.
pub const MICRO_SCENARIO: &str = "scenarios/bench-micro.toml";
/// Default `--timeout` of `parapet bench`, per QEMU run, in seconds.
pub const DEFAULT_BENCH_TIMEOUT_SECS: u64 = 300;
/// The message size the ring targets are measured at.
pub const RING_TARGET_SIZE: u64 = 4096;
/// Target: ring/memcpy throughput ratio at 4096 B with 2 CPUs, at least.
pub const RATIO_LIMIT_2CPU: f64 = 0.8;
/// Target: ring/memcpy throughput ratio at 4096 B with 1 CPU, at least.
pub const RATIO_LIMIT_1CPU: f64 = 0.4;
/// Target: event notifications (sender + receiver) per message, at most.
pub const NOTIFY_PER_MSG_LIMIT: f64 = 1.0 / 32.0;
/// Targets of `bench micro`: (name, most instructions allowed).
pub const MICRO_TARGETS: [(&str, u64); 3] = [
    ("null_hypercall", 64),
    ("event_to_handler", 2000),
    ("world_switch", 400),
];

const MIB: f64 = 1024.0 * 1024.0;

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

    /// The scenario files this benchmark runs, in order (relative to the
    /// workspace root).
    pub fn scenarios(self) -> &'static [&'static str] {
        match self {
            Kind::Ring => &RING_SCENARIOS,
            Kind::Micro => std::slice::from_ref(&MICRO_SCENARIO),
        }
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
fn bench_tokens<'a>(line: &'a str, bench: &str) -> Option<Vec<&'a str>> {
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
struct Fields<'a> {
    line: &'a str,
    map: BTreeMap<&'a str, &'a str>,
}

impl<'a> Fields<'a> {
    fn parse(line: &'a str, tokens: &[&'a str]) -> Result<Self, BenchError> {
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

    fn malformed(&self, problem: String) -> BenchError {
        BenchError::Malformed {
            line: self.line.to_owned(),
            problem,
        }
    }

    fn str(&self, key: &str) -> Result<&'a str, BenchError> {
        self.map
            .get(key)
            .copied()
            .ok_or_else(|| self.malformed(format!("missing field `{key}=`")))
    }

    fn u64(&self, key: &str) -> Result<u64, BenchError> {
        let v = self.str(key)?;
        v.parse()
            .map_err(|_| self.malformed(format!("`{key}={v}`: expected an unsigned integer")))
    }
}

// ---------------------------------------------------------------------------
// bench ring

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

fn cpus_text(cpus: u32) -> String {
    if cpus == 1 {
        "1 CPU".into()
    } else {
        format!("{cpus} CPUs")
    }
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

fn met_text(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
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

// ---------------------------------------------------------------------------
// bench micro

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
pub fn micro_json(results: &[MicroResult]) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        bench: &'static str,
        results: &'a [MicroResult],
    }
    pretty(&Doc {
        bench: "micro",
        results,
    })
}

// ---------------------------------------------------------------------------
// bench net

/// The raw-ring run of `bench net`: bench ring's 2-CPU scenario, at
/// [`RING_TARGET_SIZE`] only (see [`NET_RING_SIZES`]).
pub const NET_RING_SCENARIO: &str = RING_SCENARIOS[1];
/// The `sizes=` word `bench net` gives the ring sender.
pub const NET_RING_SIZES: &str = "4096";
/// Guest-to-guest TCP: a `source` guest sends to a `sink` guest.
pub const NET_SCENARIO: &str = "scenarios/bench-net.toml";
/// Host-to-guest TCP: the host sends to a `sink` guest through the uplink.
pub const NET_HOST_SCENARIO: &str = "scenarios/bench-net-host.toml";
/// The receiving guest of both TCP scenarios.
pub const NET_SINK: &str = "sink";
/// The sending guest of [`NET_SCENARIO`].
pub const NET_SOURCE: &str = "source";
/// The sink's TCP port (forwarded from the host in [`NET_HOST_SCENARIO`]).
pub const NET_PORT: u16 = 5001;
/// Bytes sent over each TCP path unless `--bytes` says otherwise.
pub const NET_DEFAULT_BYTES: u64 = 16 << 20;
/// FNV-1a 64 offset basis.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Byte `i` of the TCP test stream (net-guest's `pattern`).
pub fn net_pattern(i: u64) -> u8 {
    (i.wrapping_mul(7) ^ (i >> 11)) as u8
}

/// Fills `buf` with the stream's bytes from offset `start` on.
pub fn fill_pattern(start: u64, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = net_pattern(start + k as u64);
    }
}

/// FNV-1a 64 continued from `h` over `data`.
pub fn fnv1a64(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The checksum net-guest reports for the first `n` bytes of the stream.
pub fn pattern_checksum(n: u64) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut h, mut at) = (FNV_START, 0u64);
    while at < n {
        let k = (n - at).min(buf.len() as u64) as usize;
        fill_pattern(at, &mut buf[..k]);
        h = fnv1a64(h, &buf[..k]);
        at += k as u64;
    }
    h
}

/// `cmdline` with the word `key=value`: an existing `key=…` word is
/// replaced (the first; any others are dropped), else the word is appended.
pub fn set_word(cmdline: &str, key: &str, value: &str) -> String {
    let word = format!("{key}={value}");
    let mut out: Vec<&str> = Vec::new();
    let mut placed = false;
    for w in cmdline.split_whitespace() {
        if w.split_once('=').is_some_and(|(k, _)| k == key) {
            if !placed {
                out.push(&word);
                placed = true;
            }
        } else {
            out.push(w);
        }
    }
    if !placed {
        out.push(&word);
    }
    out.join(" ")
}

/// A `bench net rx|tx …` line of net-guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetLine {
    /// The domain that printed it.
    pub domain: String,
    /// Bytes received (rx) or sent (tx).
    pub bytes: u64,
    /// FNV-1a 64 of those bytes.
    pub checksum: u64,
    /// Counter ticks of the transfer.
    pub ticks: u64,
    /// Counter frequency, Hz.
    pub freq: u64,
    /// Frames the guest received (rx) or sent (tx).
    pub frames: u64,
    /// Notifications the guest sent its backend.
    pub notify: u64,
    /// `complete=yes`: the transfer ended normally (not on the guest's timeout).
    pub complete: bool,
}

/// The `bench net` lines of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetLines {
    /// Receivers' lines, in order.
    pub rx: Vec<NetLine>,
    /// Senders' lines, in order.
    pub tx: Vec<NetLine>,
}

/// Reads the `bench net rx|tx …` lines of one run's console; other lines
/// are ignored, a `bench net rx|tx` line that cannot be read is an error.
pub fn parse_net<S: AsRef<str>>(lines: &[S]) -> Result<NetLines, BenchError> {
    let mut out = NetLines::default();
    for line in lines {
        let line = line.as_ref();
        let Some(tokens) = bench_tokens(line, "net") else {
            continue;
        };
        let Some((&dir, rest)) = tokens.split_first() else {
            continue;
        };
        if dir != "rx" && dir != "tx" {
            continue;
        }
        let f = Fields::parse(line, rest)?;
        let sum = f.str("checksum")?;
        let checksum = u64::from_str_radix(sum, 16)
            .map_err(|_| f.malformed(format!("`checksum={sum}`: expected 16 hex digits")))?;
        let complete = match f.str("complete")? {
            "yes" => true,
            "no" => false,
            other => return Err(f.malformed(format!("`complete={other}`: expected `yes` or `no`"))),
        };
        let parsed = NetLine {
            domain: split_prefix(line).map_or("", |(p, _)| p).to_owned(),
            bytes: f.u64("bytes")?,
            checksum,
            ticks: f.u64("ticks")?,
            freq: f.u64("freq")?,
            frames: f.u64("frames")?,
            notify: f.u64("notify")?,
            complete,
        };
        if dir == "rx" {
            out.rx.push(parsed);
        } else {
            out.tx.push(parsed);
        }
    }
    Ok(out)
}

/// One TCP transfer as checked: what arrived, in how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// Bytes that arrived (and were checked).
    pub bytes: u64,
    /// Their FNV-1a 64, equal to the pattern's.
    pub checksum: u64,
    /// Seconds by the receiver's counter.
    pub secs: f64,
    /// Counter frequency, Hz.
    pub freq: u64,
    /// Frames the receiver got.
    pub frames: u64,
    /// Notifications the guests sent their backend (receiver + sender).
    pub notify: u64,
}

impl Transfer {
    /// MiB/s by the receiver's counter.
    pub fn mib_s(&self) -> f64 {
        self.bytes as f64 / self.secs / MIB
    }
}

fn one<'a>(lines: &'a [NetLine], dir: &str, what: &str) -> Result<&'a NetLine, BenchError> {
    match lines {
        [] => Err(BenchError::Missing(format!(
            "`bench net {dir} …` from {what}"
        ))),
        [l] => Ok(l),
        [a, b, ..] => Err(BenchError::Duplicate(format!(
            "`bench net {dir}` printed twice (by {} and {})",
            a.domain, b.domain
        ))),
    }
}

/// Checks what the receiver reports against `sent` pattern bytes: the whole
/// transfer arrived, with the pattern's checksum, in a non-zero time.
fn check_rx(path: &str, rx: &NetLine, sent: u64, expected_sum: u64) -> Result<(), BenchError> {
    let fail = |problem: String| BenchError::Transfer {
        path: path.to_owned(),
        problem,
    };
    if !rx.complete {
        return Err(fail(format!(
            "{} gave up before the sender closed (complete=no, {} bytes received)",
            rx.domain, rx.bytes
        )));
    }
    if rx.bytes != sent {
        return Err(fail(format!(
            "{} received {} bytes but {sent} were sent",
            rx.domain, rx.bytes
        )));
    }
    if rx.checksum != expected_sum {
        return Err(BenchError::ChecksumMismatch {
            path: path.to_owned(),
            bytes: sent,
            expected: format!("{expected_sum:016x}"),
            got: format!("{:016x}", rx.checksum),
        });
    }
    if rx.ticks == 0 || rx.freq == 0 {
        return Err(fail(format!(
            "{} reports ticks={} freq={}: no time to divide by",
            rx.domain, rx.ticks, rx.freq
        )));
    }
    Ok(())
}

/// The label of the guest-to-guest path in errors and reports.
pub const GUEST_TO_GUEST: &str = "guest to guest";
/// The label of the host-to-guest path in errors and reports.
pub const HOST_TO_GUEST: &str = "host to guest";

/// Guest-to-guest TCP: one `bench net tx` line (the source) and one `bench
/// net rx` line (the sink). Both must report `bytes` bytes, complete, with
/// the pattern's checksum ([`pattern_checksum`]); the time is the sink's.
pub fn net_guest_to_guest<S: AsRef<str>>(lines: &[S], bytes: u64) -> Result<Transfer, BenchError> {
    let l = parse_net(lines)?;
    let tx = one(&l.tx, "tx", "the sender")?;
    let rx = one(&l.rx, "rx", "the receiver")?;
    let expected = pattern_checksum(bytes);
    if !tx.complete || tx.bytes != bytes {
        return Err(BenchError::Transfer {
            path: GUEST_TO_GUEST.to_owned(),
            problem: format!(
                "{} sent {} of {bytes} bytes{}",
                tx.domain,
                tx.bytes,
                if tx.complete {
                    ""
                } else {
                    " and gave up (complete=no)"
                }
            ),
        });
    }
    if tx.checksum != expected {
        return Err(BenchError::ChecksumMismatch {
            path: format!("{GUEST_TO_GUEST} ({} sent)", tx.domain),
            bytes,
            expected: format!("{expected:016x}"),
            got: format!("{:016x}", tx.checksum),
        });
    }
    check_rx(GUEST_TO_GUEST, rx, bytes, expected)?;
    Ok(Transfer {
        bytes,
        checksum: expected,
        secs: rx.ticks as f64 / rx.freq as f64,
        freq: rx.freq,
        frames: rx.frames,
        notify: rx.notify + tx.notify,
    })
}

/// Host-to-guest TCP: the host sent `sent` pattern bytes; one `bench net rx`
/// line must report them all, with the pattern's checksum.
pub fn net_host_to_guest<S: AsRef<str>>(lines: &[S], sent: u64) -> Result<Transfer, BenchError> {
    let l = parse_net(lines)?;
    let rx = one(&l.rx, "rx", "the receiver")?;
    let expected = pattern_checksum(sent);
    check_rx(HOST_TO_GUEST, rx, sent, expected)?;
    Ok(Transfer {
        bytes: sent,
        checksum: expected,
        secs: rx.ticks as f64 / rx.freq as f64,
        freq: rx.freq,
        frames: rx.frames,
        notify: rx.notify,
    })
}

/// The raw ring figure of `bench net`: the ring lines of the 2-CPU run,
/// checked as `bench ring` checks them, at [`RING_TARGET_SIZE`].
pub fn net_ring<S: AsRef<str>>(lines: &[S]) -> Result<(RingResult, RingRx), BenchError> {
    let parsed = parse_ring(lines)?;
    let results = ring_results(2, &parsed)?;
    let missing = || {
        BenchError::Missing(format!(
            "`bench ring rx size={RING_TARGET_SIZE}` (the ring was not measured at {RING_TARGET_SIZE} B)"
        ))
    };
    let r = results
        .into_iter()
        .find(|r| r.size == RING_TARGET_SIZE)
        .ok_or_else(missing)?;
    let rx = parsed
        .rx
        .into_iter()
        .find(|r| r.size == RING_TARGET_SIZE)
        .ok_or_else(missing)?;
    Ok((r, rx))
}

/// One row of `bench net`. Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetResult {
    /// `ring_4096_2cpu`, `guest_to_guest_tcp` or `host_to_guest_tcp`.
    pub name: String,
    /// For humans.
    pub path: String,
    /// The scenario file that was booted.
    pub scenario: String,
    /// What `bench net` changed in the guests' command lines, as
    /// `DOMAIN: key=value`.
    pub overrides: Vec<String>,
    /// Bytes moved and checked.
    pub bytes: u64,
    /// FNV-1a 64 of the TCP stream as checked (hex); `None` for the ring,
    /// whose receiver checks the sender's digest itself.
    pub checksum: Option<String>,
    /// Seconds by the receiving guest's counter.
    pub secs: f64,
    /// MiB/s by the receiving guest's counter.
    pub mib_s: f64,
    /// Seconds by the host's clock, from connecting to the guest's close
    /// (host to guest only).
    pub wall_secs: Option<f64>,
    /// MiB/s by the host's clock (host to guest only).
    pub wall_mib_s: Option<f64>,
    /// Frames the receiving guest got (TCP only).
    pub frames: Option<u64>,
    /// Event notifications the guests sent (ring: both ends; TCP: both
    /// guests to their backend).
    pub notify: Option<u64>,
}

impl NetResult {
    /// The ring row.
    pub fn ring(r: &RingResult, rx: &RingRx, scenario: &str, overrides: Vec<String>) -> Self {
        let secs = if rx.freq == 0 {
            0.0
        } else {
            rx.ticks as f64 / rx.freq as f64
        };
        NetResult {
            name: format!("ring_{}_{}cpu", r.size, r.cpus),
            path: format!("raw ring, {} B messages, {}", r.size, cpus_text(r.cpus)),
            scenario: scenario.to_owned(),
            overrides,
            bytes: rx.bytes,
            checksum: None,
            secs,
            mib_s: r.mib_s,
            wall_secs: None,
            wall_mib_s: None,
            frames: None,
            notify: Some((r.notify_per_msg * rx.msgs as f64).round() as u64),
        }
    }

    /// A TCP row; `wall` is the host's time for host to guest.
    pub fn tcp(
        name: &str,
        path: &str,
        scenario: &str,
        overrides: Vec<String>,
        t: &Transfer,
        wall: Option<f64>,
    ) -> Self {
        NetResult {
            name: name.to_owned(),
            path: path.to_owned(),
            scenario: scenario.to_owned(),
            overrides,
            bytes: t.bytes,
            checksum: Some(format!("{:016x}", t.checksum)),
            secs: t.secs,
            mib_s: t.mib_s(),
            wall_secs: wall,
            wall_mib_s: wall.filter(|&w| w > 0.0).map(|w| t.bytes as f64 / w / MIB),
            frames: Some(t.frames),
            notify: Some(t.notify),
        }
    }
}

/// The clock the `bench net` figures use, for the report and the JSON.
pub fn net_clock(freq: u64) -> String {
    format!(
        "guest counter at {freq} Hz, QEMU TCG without -icount (guest time follows host time, as in bench ring); host figures by the host's clock"
    )
}

/// What `bench net` reports: the three rows and the ratio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetReport {
    /// `bench net`, for the JSON.
    pub bench: &'static str,
    /// The command that produced it.
    pub command: String,
    /// Which clock the figures use.
    pub clock: String,
    /// The ring, guest to guest, host to guest.
    pub results: Vec<NetResult>,
    /// Guest-to-guest TCP MiB/s over raw ring MiB/s.
    pub ratio_tcp_to_ring: f64,
}

impl NetReport {
    /// The report over `ring`, `g2g` and `h2g` (in that order in `results`).
    pub fn new(
        command: String,
        clock: String,
        ring: NetResult,
        g2g: NetResult,
        h2g: NetResult,
    ) -> Self {
        let ratio = if ring.mib_s > 0.0 {
            g2g.mib_s / ring.mib_s
        } else {
            0.0
        };
        NetReport {
            bench: "net",
            command,
            clock,
            results: vec![ring, g2g, h2g],
            ratio_tcp_to_ring: ratio,
        }
    }

    /// The table, for stdout.
    pub fn text(&self) -> String {
        let mut s = String::from("bench net: results\n");
        let _ = writeln!(s, "  clock: {}", self.clock);
        let width = self
            .results
            .iter()
            .map(|r| r.path.len())
            .chain([4])
            .max()
            .unwrap_or(4);
        let _ = writeln!(
            s,
            "{:<width$} {:>10} {:>9} {:>9} {:>11}  checked",
            "path", "bytes", "secs", "MiB/s", "host MiB/s"
        );
        for r in &self.results {
            let host = r
                .wall_mib_s
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
            let checked = r
                .checksum
                .as_ref()
                .map_or_else(|| "digest ok".to_owned(), |c| format!("fnv1a64 {c} ok"));
            let _ = writeln!(
                s,
                "{:<width$} {:>10} {:>9.3} {:>9.2} {:>11}  {}",
                r.path, r.bytes, r.secs, r.mib_s, host, checked
            );
        }
        let _ = writeln!(
            s,
            "guest-to-guest TCP / raw ring: {:.4}",
            self.ratio_tcp_to_ring
        );
        s
    }

    /// The `--json` document: `{"bench":"net","command":…,"clock":…,
    /// "results":[…],"ratio_tcp_to_ring":…}`, pretty-printed with the keys
    /// in that order, ending with a newline.
    pub fn json(&self) -> String {
        pretty(self)
    }
}

fn pretty<T: Serialize>(doc: &T) -> String {
    // Plain structs of numbers, strings and options: cannot fail, and the
    // values are finite (non-finite floats would become `null`).
    let mut s = serde_json::to_string_pretty(doc).unwrap_or_default();
    s.push('\n');
    s
}

// ---------------------------------------------------------------------------
// Console capture

/// A console sink for [`crate::qemu::run`] (called with `colour = false`):
/// passes each line on to `out`, rendered like `parapet up` does (coloured
/// prefix when `colour`), and keeps the raw lines for parsing (in a list
/// shared with another thread, after [`Capture::shared`]).
pub struct Capture<W: Write> {
    out: W,
    domains: Vec<String>,
    colour: bool,
    pending: Vec<u8>,
    lines: Vec<String>,
    shared: Option<Arc<Mutex<Vec<String>>>>,
}

impl<W: Write> Capture<W> {
    /// A capture writing to `out` for a scenario with these domains.
    pub fn new(out: W, domains: Vec<String>, colour: bool) -> Self {
        Capture {
            out,
            domains,
            colour,
            pending: Vec::new(),
            lines: Vec::new(),
            shared: None,
        }
    }

    /// Keeps the complete lines in `into` instead, which another thread may
    /// read while the run goes on ([`Capture::lines`] then stays empty).
    pub fn shared(mut self, into: Arc<Mutex<Vec<String>>>) -> Self {
        self.shared = Some(into);
        self
    }

    /// The raw lines seen so far (complete lines only).
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Every raw line, including an unterminated last one.
    pub fn into_lines(mut self) -> Vec<String> {
        if !self.pending.is_empty() {
            let last = String::from_utf8_lossy(&self.pending).into_owned();
            self.lines.push(last);
        }
        self.lines
    }
}

impl<W: Write> Write for Capture<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.pending.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw[..pos]).into_owned();
            writeln!(self.out, "{}", render(&line, &self.domains, self.colour))?;
            match &self.shared {
                Some(into) => into.lock().unwrap_or_else(|e| e.into_inner()).push(line),
                None => self.lines.push(line),
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::{Path, PathBuf};

    fn value(text: &str) -> serde_json::Value {
        assert!(text.ends_with("}\n"), "{text}");
        serde_json::from_str(text).unwrap()
    }

    fn lines(s: &str) -> Vec<&str> {
        s.lines().map(str::trim_start).collect()
    }

    const TX_4096: &str = "[ring-tx] bench ring tx size=4096 msgs=1024 notify=16";
    // 4 MiB in 1 s; memcpy 8 MiB in 0.5 s.
    const RX_4096: &str = "[ring-rx] bench ring rx size=4096 msgs=1024 bytes=4194304 \
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

    const MICRO: &str = "[hv] boot
        [bench] bench micro null_hypercall instructions=52 samples=1000
        [bench] bench micro unknown_hypercall samples=1000 instructions=40 min=38
        [bench] bench micro event_to_handler instructions=2500 samples=100
        [bench] bench micro world_switch instructions=400 samples=100
        [bench] bench micro done count=4
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
            value(&micro_json(&r)),
            json!({"bench": "micro", "results": [
                {"name": "null_hypercall", "instructions": 70, "samples": 3, "target": 64, "met": false},
                {"name": "custom", "instructions": 5, "samples": 1, "target": null, "met": null},
            ]})
        );
        assert_eq!(micro_unmeasured(&r), ["event_to_handler", "world_switch"]);
        let report = micro_report(&r);
        assert!(report.contains("note: no result for world_switch (target <= 400)"));
    }

    #[test]
    fn capture_tees_and_keeps_raw_lines() {
        let names = vec!["driver".to_owned(), "ring-tx".to_owned()];
        let mut out = Vec::new();
        let mut c = Capture::new(&mut out, names.clone(), true);
        write!(c, "[ring-tx] bench ").unwrap();
        writeln!(c, "ring tx size=1").unwrap();
        c.write_all(b"[hv] x\n[driver] y\npartial").unwrap();
        c.flush().unwrap();
        assert_eq!(
            c.lines(),
            ["[ring-tx] bench ring tx size=1", "[hv] x", "[driver] y"]
        );
        let lines = c.into_lines();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[3], "partial");
        let shown = String::from_utf8(out).unwrap();
        assert_eq!(
            shown,
            format!(
                "{}\n{}\n{}\n",
                render("[ring-tx] bench ring tx size=1", &names, true),
                render("[hv] x", &names, true),
                render("[driver] y", &names, true)
            )
        );
        assert!(shown.contains('\x1b'));
    }

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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

    // -- bench net

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

    #[test]
    fn the_ring_figure_is_the_4096_row() {
        let done = "[ring-rx] bench ring done sizes=1";
        let (r, rx) = net_ring(&[TX_4096, RX_4096, done]).unwrap();
        assert_eq!((r.size, r.cpus, r.mib_s), (4096, 2, 4.0));
        assert_eq!((rx.bytes, rx.ticks), (4 << 20, 62_500_000));
        let row = NetResult::ring(
            &r,
            &rx,
            NET_RING_SCENARIO,
            vec!["ring-tx: sizes=4096".into()],
        );
        assert_eq!(row.name, "ring_4096_2cpu");
        assert_eq!((row.bytes, row.secs, row.notify), (4 << 20, 1.0, Some(32)));
        // Measured at other sizes only.
        let e = net_ring(&[
            "[ring-tx] bench ring tx size=64 msgs=1 notify=0",
            "[ring-rx] bench ring rx size=64 msgs=1 bytes=64 ticks=1 freq=1 notify=0 \
             switches=0 memcpy_bytes=64 memcpy_ticks=1 checksum=ok",
            done,
        ])
        .unwrap_err();
        assert!(e.to_string().contains("not measured at 4096 B"), "{e}");
        // A bad ring checksum fails as in bench ring.
        let bad = RX_4096.replace("checksum=ok", "checksum=bad");
        assert_eq!(
            net_ring(&[TX_4096, &bad, done]).unwrap_err(),
            BenchError::BadChecksum { size: 4096 }
        );
    }

    fn net_report() -> NetReport {
        let done = "[ring-rx] bench ring done sizes=1";
        let (r, rx) = net_ring(&[TX_4096, RX_4096, done]).unwrap();
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
            NetResult::ring(
                &r,
                &rx,
                NET_RING_SCENARIO,
                vec!["ring-tx: sizes=4096".into()],
            ),
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
        assert!(text.contains("digest ok"), "{text}");
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
                "frames": 2888, "notify": 84
            })
        );
        assert_eq!(results[0]["checksum"], serde_json::Value::Null);
        assert_eq!(results[0]["overrides"], json!(["ring-tx: sizes=4096"]));
        assert_eq!(results[0]["scenario"], "scenarios/bench-ring-2cpu.toml");
        assert_eq!(results[1]["wall_mib_s"], serde_json::Value::Null);
        let at = |k: &str| text.find(k).unwrap();
        assert!(at("\"bench\"") < at("\"command\"") && at("\"clock\"") < at("\"results\""));
        assert!(at("\"results\"") < at("\"ratio_tcp_to_ring\""));
    }

    #[test]
    fn capture_can_share_its_lines() {
        let shared = Arc::new(Mutex::new(Vec::new()));
        let mut out = Vec::new();
        let mut c = Capture::new(&mut out, vec![], false).shared(Arc::clone(&shared));
        c.write_all(b"[a] one\n[b] two\n").unwrap();
        assert!(c.lines().is_empty());
        assert_eq!(*shared.lock().unwrap(), ["[a] one", "[b] two"]);
        drop(c);
        assert_eq!(out, b"[a] one\n[b] two\n");
    }
}
