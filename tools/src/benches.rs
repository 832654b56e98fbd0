//! `parapet bench ring|micro`: booting each run, reading its benchmark lines,
//! the regression gate against the baseline, the report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bench::{self};
use crate::run::prepare_traced;
use crate::{boot, colour_stdout, load, Error, Outcome};
use crate::{build, netbench, prereq, qemu, trace, transcript};

/// Options of `parapet bench`.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Which benchmark.
    pub kind: bench::Kind,
    /// Where to write the JSON report, if anywhere.
    pub json: Option<PathBuf>,
    /// Skip the build.
    pub no_build: bool,
    /// Kill QEMU after this long, per run (`None`: never).
    pub timeout: Option<Duration>,
    /// `bench ring`: where to write the SVG chart, if anywhere.
    pub plot: Option<PathBuf>,
    /// `bench micro`: write the measured figures as the new baseline
    /// instead of comparing them with it.
    pub update_baseline: bool,
    /// Record a trace of each run into this file (numbered when there are
    /// several runs); the gate is then skipped.
    pub trace: Option<PathBuf>,
}

/// What the runs of one benchmark measured.
#[derive(Debug, Default)]
pub struct BenchResults {
    /// `bench ring`'s windowed results.
    pub ring: Vec<bench::RingResult>,
    /// The byte channel's instruction counts.
    pub icount: Vec<bench::IcountResult>,
    /// `bench micro`'s results.
    pub micro: Vec<bench::MicroResult>,
}

/// Boots each run of `kind` in turn ([`bench::Kind::runs`]), streaming the
/// consoles to stdout, and reads their benchmark lines. `Err(outcome)` is
/// the first failed run (a failed domain: the transcript's exit status; a
/// missing, malformed or failed benchmark line:
/// [`transcript::EXIT_DOMAIN_FAILED`]) with the summary so far. This is
/// what `cargo parapet bench ring|micro` measures, for tests that check its
/// figures.
pub fn bench_measure(
    kind: bench::Kind,
    no_build: bool,
    timeout: Option<Duration>,
    trace: Option<&Path>,
    summary: &mut Vec<String>,
) -> Result<Result<BenchResults, Outcome>, Error> {
    let root = build::workspace_root()?;
    let runs = kind.runs();
    let mut scenarios = Vec::new();
    for run in &runs {
        let mut s = load(Path::new(run.scenario), &root)?;
        for (domain, key, value) in &run.set {
            netbench::set_cmdline(&mut s, domain, key, value)?;
        }
        scenarios.push(s);
    }
    let qemu_path = prereq::ensure_qemu()?;
    let mut prepared = Vec::new();
    let count = scenarios.len();
    for (i, s) in scenarios.into_iter().enumerate() {
        let setup = trace.map(|f| {
            trace::Setup::new(
                &trace::numbered(f, i, count),
                parapet_abi::trace::DEFAULT_TRACE_KIB,
            )
        });
        prepared.push(prepare_traced(
            &root,
            s,
            no_build,
            qemu_path.clone(),
            setup,
        )?);
    }
    let colour = colour_stdout();
    let mut results = BenchResults::default();
    for (run, p) in runs.iter().zip(&prepared) {
        let cpus = p.scenario.machine.cpus;
        let over = run.overrides();
        let what = format!(
            "{} ({cpus} CPU{}{}{})",
            run.scenario,
            if cpus == 1 { "" } else { "s" },
            if p.scenario.machine.icount {
                ", -icount"
            } else {
                ""
            },
            if over.is_empty() {
                String::new()
            } else {
                format!(", {}", over.join(", "))
            }
        );
        eprintln!("parapet: bench {kind}: running {what}");
        let mut capture =
            bench::Capture::new(std::io::stdout().lock(), p.scenario.domain_names(), colour);
        let stops = qemu::Stops {
            timeout,
            ..qemu::Stops::default()
        };
        let outcome = boot(p, &stops, &mut capture, false, false, None)?;
        let lines = capture.into_lines();
        summary.extend(outcome.summary.iter().map(|l| format!("{what}: {l}")));
        if outcome.exit_code != transcript::EXIT_OK {
            summary.push(format!("bench {kind}: {what} failed; no results"));
            return Ok(Err(Outcome {
                exit_code: outcome.exit_code,
                summary: std::mem::take(summary),
            }));
        }
        let parsed = match run.kind {
            bench::RunKind::RingWindows => {
                bench::ring_run(cpus, &lines).map(|r| results.ring.extend(r))
            }
            bench::RunKind::RingIcount => {
                bench::icount_run(&lines).map(|r| results.icount.extend(r))
            }
            bench::RunKind::Micro => bench::micro_run(&lines).map(|r| results.micro.extend(r)),
        };
        if let Err(e) = parsed {
            summary.push(format!("bench {kind}: {what}: {e}"));
            return Ok(Err(Outcome {
                exit_code: transcript::EXIT_DOMAIN_FAILED,
                summary: std::mem::take(summary),
            }));
        }
    }
    Ok(Ok(results))
}

/// The regression gate over what `bench micro` measured: the deviations
/// from the baseline ([`bench::gate`]) and the report to print.
pub fn bench_gate(results: &BenchResults) -> Result<(Vec<bench::gate::Deviation>, String), Error> {
    let root = build::workspace_root()?;
    let baseline = bench::gate::Baseline::read(&root.join(bench::gate::BASELINE_FILE))?;
    let measured = bench::gate::figures(&results.micro, &results.icount);
    let deviations = bench::gate::compare(&baseline.figures, &measured);
    let report = bench::gate::gate_report(&deviations, measured.len());
    Ok((deviations, report))
}

/// `parapet bench ring|micro`: builds (unless `no_build`) and boots each of
/// the benchmark's runs in turn ([`bench_measure`]), then prints the results
/// table and the targets to stdout, writes the JSON report and the chart if
/// asked; `bench micro` then compares every deterministic figure with the
/// baseline (or, with `update_baseline`, rewrites it).
///
/// The outcome is a failure when a run fails or its benchmark lines are
/// missing, malformed or report a bad checksum, and for `bench micro` when
/// a figure differs from the baseline ([`transcript::EXIT_DOMAIN_FAILED`]);
/// it stops at the first failed run. Missed targets do not make it fail.
/// The summary lines are for stderr.
pub fn bench(opts: &BenchOptions) -> Result<Outcome, Error> {
    let kind = opts.kind;
    netbench::check_report_dir(opts.json.as_deref())?;
    let mut summary = Vec::new();
    let traced = opts.trace.as_deref();
    let results = match bench_measure(kind, opts.no_build, opts.timeout, traced, &mut summary)? {
        Ok(r) => r,
        Err(failed) => return Ok(failed),
    };
    let mut exit_code = transcript::EXIT_OK;
    let (report, json, line) = match kind {
        bench::Kind::Ring => {
            let r = &results.ring;
            let targets = bench::ring_targets(r);
            let met = targets.iter().filter(|t| t.met).count();
            (
                bench::ring_report(r, &targets) + &bench::icount_report(&results.icount),
                bench::ring_json(r, &results.icount, &targets),
                format!(
                    "bench ring: {} result(s), {} instruction count(s), {met} of {} target(s) met",
                    r.len(),
                    results.icount.len(),
                    targets.len()
                ),
            )
        }
        bench::Kind::Micro => {
            let r = &results.micro;
            let with = r.iter().filter(|m| m.target.is_some()).count();
            let met = r.iter().filter(|m| m.met == Some(true)).count();
            (
                bench::micro_report(r) + &bench::icount_report(&results.icount),
                bench::micro_json(r, &results.icount),
                format!(
                    "bench micro: {} result(s), {met} of {with} target(s) met",
                    r.len()
                ),
            )
        }
    };
    print!("{report}");
    summary.push(line);
    if kind == bench::Kind::Micro && traced.is_some() {
        summary.push(
            "bench gate: skipped: these counts are the traced hypervisor's (its hooks cost instructions)"
                .to_owned(),
        );
    } else if kind == bench::Kind::Micro {
        let root = build::workspace_root()?;
        let file = root.join(bench::gate::BASELINE_FILE);
        if opts.update_baseline {
            let figures = bench::gate::figures(&results.micro, &results.icount);
            let n = figures.len();
            bench::gate::Baseline::new(figures).write(&file)?;
            summary.push(format!(
                "bench micro: wrote {n} figure(s) to {}: commit it (README.md and docs/ipc.md \
                 show these numbers: `cargo test -p parapet-tests --test docs` says which to change)",
                bench::gate::BASELINE_FILE
            ));
        } else {
            let (deviations, gate) = bench_gate(&results)?;
            print!("{gate}");
            if deviations.is_empty() {
                summary.push(gate.trim_end().to_owned());
            } else {
                exit_code = transcript::EXIT_DOMAIN_FAILED;
                summary.push(format!(
                    "bench gate: {} figure(s) moved: see above; if intended, run `{}`",
                    deviations.len(),
                    bench::gate::UPDATE_COMMAND
                ));
            }
        }
    }
    let _ = std::io::stdout().flush();
    if let Some(path) = &opts.json {
        std::fs::write(path, json).map_err(|source| Error::WriteReport {
            path: path.clone(),
            source,
        })?;
        summary.push(format!("wrote the JSON report to {}", path.display()));
    }
    if let Some(dir) = &opts.plot {
        if kind == bench::Kind::Ring {
            let file = bench::plot::ring_plot(&results.ring, dir)?;
            summary.push(format!("wrote the chart {}", file.display()));
        }
    }
    Ok(Outcome { exit_code, summary })
}
