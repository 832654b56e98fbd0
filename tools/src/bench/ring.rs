//! `bench ring`: byte-channel throughput between two guests, with 1 and 2
//! CPUs, next to the same guest's memcpy, over windows (see [`super::stats`]);
//! and, under `-icount`, instructions per message (see [`super::icount`]).

use std::fmt::Write as _;

use serde::Serialize;

use super::stats::{figure, Figure, Window};
use super::{bench_tokens, cpus_text, met_text, pretty, BenchError, Bound, Fields, Target};

/// The wall-clock scenarios `bench ring` runs, in order.
pub const RING_SCENARIOS: [&str; 2] = [
    "scenarios/bench-ring-1cpu.toml",
    "scenarios/bench-ring-2cpu.toml",
];
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

/// `bench ring rx …`: the receiver's summary of one size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingRx {
    /// Message size in bytes.
    pub size: u64,
    /// Messages received (timed or not).
    pub msgs: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Event notifications the receiver sent.
    pub notify: u64,
    /// World switches on all CPUs during this size.
    pub switches: u64,
    /// Windows measured (0 for an instruction count).
    pub windows: u64,
    /// `copy` (the transport alone) or `net` (`bench net`'s pattern and
    /// FNV-1a checksum on every byte).
    pub work: String,
    /// `checksum=ok`.
    pub checksum_ok: bool,
}

/// `bench ring window …`: one window of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingWindow {
    /// The console line.
    pub line: String,
    /// Message size in bytes.
    pub size: u64,
    /// Window number, from 0.
    pub n: u64,
    /// Messages received in the window.
    pub msgs: u64,
    /// Bytes received in the window.
    pub bytes: u64,
    /// Counter ticks of the window.
    pub ticks: u64,
    /// Counter frequency, Hz.
    pub freq: u64,
    /// Notifications the receiver sent in the window.
    pub notify: u64,
    /// World switches in the window.
    pub switches: u64,
    /// The window's last batch (or every byte, `work=net`) checked out.
    pub checksum_ok: bool,
}

/// `bench ring memcpy …`: one window of the receiver's memcpy; `bench ring
/// xcopy …` (same fields): one window of the cross-CPU copy reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemcpyWindow {
    /// The console line.
    pub line: String,
    /// Message size in bytes.
    pub size: u64,
    /// Window number, from 0.
    pub n: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Counter ticks of the window.
    pub ticks: u64,
    /// Counter frequency, Hz.
    pub freq: u64,
}

/// `bench ring icount …`: instructions over a number of messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingIcount {
    /// The console line.
    pub line: String,
    /// Message size in bytes.
    pub size: u64,
    /// Messages the ring holds (its data bytes / `size`).
    pub slots: u64,
    /// Messages counted.
    pub msgs: u64,
    /// Instructions the CPU retired over them (EL1 and EL2).
    pub instructions: u64,
    /// Copies of the memcpy count.
    pub memcpy_msgs: u64,
    /// Instructions of those copies.
    pub memcpy_instructions: u64,
    /// The last batch checked out.
    pub checksum_ok: bool,
}

/// The ring benchmark lines of one run, as printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingLines {
    /// Sender lines, in order.
    pub tx: Vec<RingTx>,
    /// Receiver summaries, in order.
    pub rx: Vec<RingRx>,
    /// Stream windows, in order.
    pub windows: Vec<RingWindow>,
    /// Memcpy windows, in order.
    pub memcpy: Vec<MemcpyWindow>,
    /// Cross-CPU copy windows, in order (2 CPUs, the receiver with a second
    /// vCPU; none otherwise).
    pub xcopy: Vec<MemcpyWindow>,
    /// Instruction counts, in order.
    pub icount: Vec<RingIcount>,
    /// `sizes=` of the `bench ring done` line.
    pub done: Option<u64>,
}

fn ok_field(f: &Fields<'_>) -> Result<bool, BenchError> {
    match f.str("checksum")? {
        "ok" => Ok(true),
        "bad" => Ok(false),
        other => Err(f.malformed(format!("`checksum={other}`: expected `ok` or `bad`"))),
    }
}

/// Reads the `bench ring …` lines of one run's console. Other lines are
/// ignored; a `bench ring tx|rx|window|memcpy|xcopy|icount|done` line that cannot
/// be read is an error.
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
        if !["tx", "rx", "window", "memcpy", "xcopy", "icount", "done"].contains(&kind) {
            continue;
        }
        let f = Fields::parse(line, rest)?;
        match kind {
            "tx" => {
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
                let rx = RingRx {
                    size: f.u64("size")?,
                    msgs: f.u64("msgs")?,
                    bytes: f.u64("bytes")?,
                    notify: f.u64("notify")?,
                    switches: f.u64("switches")?,
                    windows: f.u64("windows")?,
                    work: f.str("work")?.to_owned(),
                    checksum_ok: ok_field(&f)?,
                };
                if out.rx.iter().any(|r| r.size == rx.size) {
                    return Err(BenchError::Duplicate(format!(
                        "`bench ring rx size={}` printed twice",
                        rx.size
                    )));
                }
                out.rx.push(rx);
            }
            "window" => out.windows.push(RingWindow {
                line: line.to_owned(),
                size: f.u64("size")?,
                n: f.u64("n")?,
                msgs: f.u64("msgs")?,
                bytes: f.u64("bytes")?,
                ticks: f.u64("ticks")?,
                freq: f.u64("freq")?,
                notify: f.u64("notify")?,
                switches: f.u64("switches")?,
                checksum_ok: ok_field(&f)?,
            }),
            "memcpy" | "xcopy" => {
                let w = MemcpyWindow {
                    line: line.to_owned(),
                    size: f.u64("size")?,
                    n: f.u64("n")?,
                    bytes: f.u64("bytes")?,
                    ticks: f.u64("ticks")?,
                    freq: f.u64("freq")?,
                };
                if kind == "memcpy" {
                    out.memcpy.push(w);
                } else {
                    out.xcopy.push(w);
                }
            }
            "icount" => out.icount.push(RingIcount {
                line: line.to_owned(),
                size: f.u64("size")?,
                slots: f.u64("slots")?,
                msgs: f.u64("msgs")?,
                instructions: f.u64("instructions")?,
                memcpy_msgs: f.u64("memcpy_msgs")?,
                memcpy_instructions: f.u64("memcpy_instructions")?,
                checksum_ok: ok_field(&f)?,
            }),
            _ => {
                let n = f.u64("sizes")?;
                if out.done.is_some() {
                    return Err(BenchError::Duplicate(
                        "`bench ring done` printed twice".into(),
                    ));
                }
                out.done = Some(n);
            }
        }
    }
    Ok(out)
}

/// Checks what every run must have: no bad checksum anywhere, a tx line for
/// every rx line and the reverse with the same message count, and a `done`
/// line counting them. Returns the sender line of each receiver line.
pub(crate) fn check_sizes(lines: &RingLines) -> Result<Vec<(&RingTx, &RingRx)>, BenchError> {
    let bad = lines
        .windows
        .iter()
        .filter(|w| !w.checksum_ok)
        .map(|w| w.size)
        .chain(
            lines
                .icount
                .iter()
                .filter(|i| !i.checksum_ok)
                .map(|i| i.size),
        )
        .chain(lines.rx.iter().filter(|r| !r.checksum_ok).map(|r| r.size))
        .next();
    if let Some(size) = bad {
        return Err(BenchError::BadChecksum { size });
    }
    for tx in &lines.tx {
        if !lines.rx.iter().any(|r| r.size == tx.size) {
            return Err(BenchError::Missing(format!(
                "`bench ring rx size={}` from the receiver (the sender reported this size)",
                tx.size
            )));
        }
    }
    let mut pairs = Vec::new();
    for rx in &lines.rx {
        let Some(tx) = lines.tx.iter().find(|t| t.size == rx.size) else {
            return Err(BenchError::Missing(format!(
                "`bench ring tx size={}` from the sender (the receiver reported this size)",
                rx.size
            )));
        };
        if tx.msgs != rx.msgs {
            return Err(BenchError::Inconsistent {
                size: rx.size,
                problem: format!(
                    "the sender sent {} message(s) but the receiver got {}",
                    tx.msgs, rx.msgs
                ),
            });
        }
        if rx.msgs == 0 {
            return Err(BenchError::Inconsistent {
                size: rx.size,
                problem: "the receiver reports msgs=0".into(),
            });
        }
        pairs.push((tx, rx));
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
    Ok(pairs)
}

/// The figures of one (CPUs, size) pair. Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RingResult {
    /// Message size in bytes.
    pub size: u64,
    /// Physical CPUs of the run.
    pub cpus: u32,
    /// `copy` or `net` (see [`RingRx::work`]).
    pub work: String,
    /// Ring throughput, MiB/s, over the windows.
    pub mib_s: Figure,
    /// Messages per second, over the windows.
    pub msgs_s: Figure,
    /// Plain memcpy throughput, MiB/s, over its windows.
    pub memcpy_mib_s: Figure,
    /// `mib_s.median / memcpy_mib_s.median`.
    pub ratio: f64,
    /// The cross-CPU copy reference, MiB/s, over its windows: the same copies
    /// with the bytes crossing between CPUs and no protocol (2 CPUs only;
    /// `null` otherwise).
    pub xcopy_mib_s: Option<Figure>,
    /// `mib_s.median / xcopy_mib_s.median`: how close the byte channel comes
    /// to moving the bytes between CPUs with nothing else.
    pub xcopy_ratio: Option<f64>,
    /// (sender + receiver notifications) / messages, over the whole stream.
    pub notify_per_msg: f64,
    /// World switches / messages, over the whole stream.
    pub switches_per_msg: f64,
    /// Messages of the whole stream (the windows and what came after).
    pub msgs: u64,
    /// Bytes received in the windows.
    pub bytes: u64,
    /// Seconds the windows took, by the receiver's counter.
    pub secs: f64,
    /// The receiver's counter frequency, Hz.
    pub freq: u64,
}

/// Windows of one size, numbered 0, 1, … in order.
fn numbered<'a, T>(
    size: u64,
    what: &str,
    all: &'a [T],
    of: impl Fn(&T) -> (u64, u64),
) -> Result<Vec<&'a T>, BenchError> {
    let ws: Vec<&T> = all.iter().filter(|w| of(w).0 == size).collect();
    for (i, w) in ws.iter().enumerate() {
        if of(w).1 != i as u64 {
            return Err(BenchError::Inconsistent {
                size,
                problem: format!("{what} window n={} where n={i} was due", of(w).1),
            });
        }
    }
    Ok(ws)
}

/// Checks the lines of one windowed run (see `check_sizes`; at least
/// [`super::MIN_WINDOWS`] windows of the stream and of the memcpy per size,
/// each at least [`super::MIN_WINDOW_MS`] long, as many as the receiver
/// says) and computes one result per size, in the order the receiver
/// printed.
pub fn ring_results(cpus: u32, lines: &RingLines) -> Result<Vec<RingResult>, BenchError> {
    let mut out = Vec::new();
    for (tx, rx) in check_sizes(lines)? {
        let size = rx.size;
        let ring = numbered(size, "stream", &lines.windows, |w| (w.size, w.n))?;
        let copy = numbered(size, "memcpy", &lines.memcpy, |w| (w.size, w.n))?;
        let xcopy = numbered(size, "xcopy", &lines.xcopy, |w| (w.size, w.n))?;
        if ring.len() as u64 != rx.windows {
            return Err(BenchError::Inconsistent {
                size,
                problem: format!(
                    "the receiver says windows={} but printed {} window line(s)",
                    rx.windows,
                    ring.len()
                ),
            });
        }
        let secs = |ticks: u64, freq: u64| ticks as f64 / freq.max(1) as f64;
        let mib_s = figure(
            &format!("ring MiB/s at {size} B, {}", cpus_text(cpus)),
            &ring
                .iter()
                .map(|w| Window::mib_s(&w.line, w.bytes, w.ticks, w.freq))
                .collect::<Vec<_>>(),
        )?;
        let msgs_s = Figure::of(
            ring.iter()
                .map(|w| w.msgs as f64 / secs(w.ticks, w.freq))
                .collect(),
        )
        .unwrap_or_else(|| mib_s.clone());
        // The memcpy's and the cross-CPU copy's windows alike.
        let copy_figure = |what: &str, ws: &[&MemcpyWindow]| {
            figure(
                &format!("{what} MiB/s at {size} B, {}", cpus_text(cpus)),
                &ws.iter()
                    .map(|w| Window::mib_s(&w.line, w.bytes, w.ticks, w.freq))
                    .collect::<Vec<_>>(),
            )
        };
        let memcpy_mib_s = copy_figure("memcpy", &copy)?;
        let xcopy_mib_s = if xcopy.is_empty() {
            None
        } else {
            Some(copy_figure("cross-CPU copy", &xcopy)?)
        };
        if memcpy_mib_s.median <= 0.0
            || mib_s.median <= 0.0
            || xcopy_mib_s.as_ref().is_some_and(|x| x.median <= 0.0)
        {
            return Err(BenchError::Inconsistent {
                size,
                problem: "no bytes moved in the windows".into(),
            });
        }
        let msgs = rx.msgs as f64;
        out.push(RingResult {
            size,
            cpus,
            work: rx.work.clone(),
            ratio: mib_s.median / memcpy_mib_s.median,
            xcopy_ratio: xcopy_mib_s.as_ref().map(|x| mib_s.median / x.median),
            xcopy_mib_s,
            mib_s,
            msgs_s,
            memcpy_mib_s,
            notify_per_msg: (tx.notify + rx.notify) as f64 / msgs,
            switches_per_msg: rx.switches as f64 / msgs,
            msgs: rx.msgs,
            bytes: ring.iter().map(|w| w.bytes).sum(),
            secs: ring.iter().map(|w| secs(w.ticks, w.freq)).sum(),
            freq: ring.first().map_or(0, |w| w.freq),
        });
    }
    Ok(out)
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
    let mut s = String::from(
        "bench ring: results (median (min–max) of the windows; ratio of the medians; \
         the second ratio is the ring's to the cross-CPU copy, 2 CPUs)\n",
    );
    let _ = writeln!(
        s,
        "{:>4} {:>8} {:>5} {:>26} {:>10} {:>10} {:>12} {:>26} {:>7} {:>26} {:>7}",
        "cpus",
        "size B",
        "work",
        "MiB/s",
        "msgs/s",
        "notify/msg",
        "switches/msg",
        "memcpy MiB/s",
        "ratio",
        "cross-CPU copy MiB/s",
        "ratio"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:>4} {:>8} {:>5} {:>26} {:>10.0} {:>10.4} {:>12.4} {:>26} {:>7.3} {:>26} {:>7}",
            r.cpus,
            r.size,
            r.work,
            r.mib_s.text(2),
            r.msgs_s.median,
            r.notify_per_msg,
            r.switches_per_msg,
            r.memcpy_mib_s.text(2),
            r.ratio,
            r.xcopy_mib_s
                .as_ref()
                .map_or_else(|| "-".to_owned(), |x| x.text(2)),
            r.xcopy_ratio
                .map_or_else(|| "-".to_owned(), |x| format!("{x:.3}"))
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
/// `{"bench":"ring","results":[…],"icount":[…],"targets":[…]}`,
/// pretty-printed with the keys in that order, ending with a newline. Every
/// window's sample is in `results[].mib_s.samples` (and `msgs_s`,
/// `memcpy_mib_s`).
pub fn ring_json(
    results: &[RingResult],
    icount: &[super::IcountResult],
    targets: &[Target],
) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        bench: &'static str,
        results: &'a [RingResult],
        icount: &'a [super::IcountResult],
        targets: &'a [Target],
    }
    pretty(&Doc {
        bench: "ring",
        results,
        icount,
        targets,
    })
}

#[cfg(test)]
#[path = "ring_tests.rs"]
pub(crate) mod tests;
