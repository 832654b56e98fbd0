//! The `parapet` host CLI as a library: scenario files, builds, the QEMU
//! command line, the console transcript and the prerequisites.
//!
//! `main.rs` only parses the command line and calls [`build()`], [`up`],
//! [`bench()`] or [`check`].
#![deny(unsafe_code)]

pub mod bench;
pub mod build;
pub mod disks;
pub mod prereq;
pub mod qemu;
pub mod scenario;
pub mod transcript;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use transcript::Outcome;

/// The scenario used when none is given.
pub const DEFAULT_SCENARIO: &str = "scenarios/demo.toml";
/// Default `--timeout` of `parapet up`, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 120;

/// Anything that stops a command before it can decide an outcome.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad scenario file.
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
    /// A missing prerequisite.
    #[error(transparent)]
    Prereq(#[from] prereq::PrereqError),
    /// A failed build.
    #[error(transparent)]
    Build(#[from] build::BuildError),
    /// QEMU could not be run.
    #[error(transparent)]
    Qemu(#[from] qemu::QemuError),
    /// A guest's disk could not be set up.
    #[error(transparent)]
    Disk(#[from] disks::DiskError),
    /// The `--json` report could not be written.
    #[error("cannot write {path}: {source}")]
    WriteReport {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Finds a scenario file: as given (relative to the current directory), else
/// relative to the workspace root. Returns the path as given when neither
/// exists, so that the error names it.
pub fn find_scenario(arg: &Path, root: &Path) -> PathBuf {
    if arg.exists() || arg.is_absolute() {
        return arg.to_owned();
    }
    let in_root = root.join(arg);
    if in_root.exists() {
        in_root
    } else {
        arg.to_owned()
    }
}

fn load(arg: &Path, root: &Path) -> Result<scenario::Scenario, Error> {
    Ok(scenario::load(&find_scenario(arg, root), root)?)
}

/// `parapet build`: checks the Rust targets, then builds the hypervisor and
/// every image of the scenario.
pub fn build(scenario_arg: &Path) -> Result<(), Error> {
    let root = build::workspace_root()?;
    let s = load(scenario_arg, &root)?;
    prereq::ensure_targets(&root)?;
    build::build_all(&root, &s)?;
    eprintln!(
        "parapet: built the hypervisor and {} image(s)",
        s.domains.len()
    );
    Ok(())
}

/// Options of `parapet up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Kill QEMU after this long (`None`: never).
    pub timeout: Option<Duration>,
    /// Skip the build.
    pub no_build: bool,
}

/// A scenario built and ready to boot.
struct Prepared {
    scenario: scenario::Scenario,
    /// The QEMU arguments.
    args: Vec<OsString>,
}

/// Builds the scenario's images (unless `no_build`: then only checks that
/// they are known) and writes its QEMU command line.
fn prepare(root: &Path, mut s: scenario::Scenario, no_build: bool) -> Result<Prepared, Error> {
    let disk_plan = disks::prepare(&s)?;
    if !disk_plan.driver_wiring.is_empty() {
        if let Some(driver) = s
            .domains
            .iter_mut()
            .find(|d| d.role == scenario::Role::Driver)
        {
            let cmdline = match driver.cmdline.take() {
                Some(c) => format!("{c} {}", disk_plan.driver_wiring),
                None => disk_plan.driver_wiring.clone(),
            };
            if cmdline.len() >= 256 {
                return Err(disks::DiskError::Invalid {
                    location: format!("{}", s.path.display()),
                    message: format!(
                        "the driver domain's command line with the disk wiring is {} bytes (at most 255): use fewer or shorter names",
                        cmdline.len()
                    ),
                }
                .into());
            }
            driver.cmdline = Some(cmdline);
        }
    }
    let ws = if no_build {
        let ws = build::metadata(root)?;
        ws.plan(&s)?; // names every unknown image
        ws
    } else {
        prereq::ensure_targets(root)?;
        build::build_all(root, &s)?
    };
    let hv = ws.hypervisor_elf();
    build::file_size(&hv)?;
    let mut images = Vec::new();
    for p in ws.image_paths(&s)? {
        let size = build::file_size(&p)?;
        images.push((p, size));
    }
    let args = qemu::args(&s, &hv, &images, &disk_plan.attached)?;
    Ok(Prepared { scenario: s, args })
}

/// Boots a prepared scenario, streaming the consoles to `out`.
fn boot(
    qemu_path: &Path,
    p: &Prepared,
    timeout: Option<Duration>,
    out: &mut dyn Write,
    colour: bool,
    forward_stdin: bool,
) -> Result<Outcome, Error> {
    eprintln!(
        "parapet: {}",
        qemu::display_command(&qemu_path.display().to_string(), &p.args)
    );
    let (outcome, _) = qemu::run(
        qemu_path,
        &p.args,
        p.scenario.domain_names(),
        timeout,
        out,
        colour,
        forward_stdin,
    )?;
    Ok(outcome)
}

/// Whether to colour the console prefixes on stdout.
fn colour_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `parapet up`: builds (unless `no_build`), boots QEMU, streams the consoles
/// to stdout and returns the outcome (its summary is not printed yet).
pub fn up(opts: &UpOptions) -> Result<Outcome, Error> {
    let root = build::workspace_root()?;
    let s = load(&opts.scenario, &root)?;
    let qemu_path = prereq::ensure_qemu()?;
    let p = prepare(&root, s, opts.no_build)?;
    let colour = colour_stdout();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    boot(&qemu_path, &p, opts.timeout, &mut out, colour, true)
}

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
}

/// The results of the runs of one benchmark.
enum BenchResults {
    Ring(Vec<bench::RingResult>),
    Micro(Vec<bench::MicroResult>),
}

/// `parapet bench ring|micro`: builds (unless `no_build`) and boots each of
/// the benchmark's scenarios in turn (see [`bench::Kind::scenarios`]),
/// streaming the consoles to stdout, then prints the results table and the
/// targets to stdout and writes the JSON report if asked.
///
/// The outcome is a failure when a run fails (the transcript's exit status)
/// or when its benchmark lines are missing, malformed or report a bad
/// checksum ([`transcript::EXIT_DOMAIN_FAILED`]); it stops at the first
/// failed run. Missed targets do not make it fail. The summary lines are for
/// stderr.
pub fn bench(opts: &BenchOptions) -> Result<Outcome, Error> {
    let root = build::workspace_root()?;
    let kind = opts.kind;
    if let Some(path) = &opts.json {
        // Say so before the runs rather than after them.
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir.filter(|d| !d.is_dir()) {
            return Err(Error::WriteReport {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("directory {} does not exist", dir.display()),
                ),
            });
        }
    }
    let mut scenarios = Vec::new();
    for path in kind.scenarios() {
        scenarios.push((*path, load(Path::new(path), &root)?));
    }
    let qemu_path = prereq::ensure_qemu()?;
    let mut prepared = Vec::new();
    for (path, s) in scenarios {
        prepared.push((path, prepare(&root, s, opts.no_build)?));
    }
    let colour = colour_stdout();
    let mut summary = Vec::new();
    let mut results = match kind {
        bench::Kind::Ring => BenchResults::Ring(Vec::new()),
        bench::Kind::Micro => BenchResults::Micro(Vec::new()),
    };
    for (path, p) in &prepared {
        let cpus = p.scenario.machine.cpus;
        let what = format!("{path} ({cpus} CPU{})", if cpus == 1 { "" } else { "s" });
        eprintln!("parapet: bench {kind}: running {what}");
        let mut capture =
            bench::Capture::new(std::io::stdout().lock(), p.scenario.domain_names(), colour);
        let outcome = boot(&qemu_path, p, opts.timeout, &mut capture, false, false)?;
        let lines = capture.into_lines();
        if outcome.exit_code != transcript::EXIT_OK {
            summary.extend(outcome.summary.iter().map(|l| format!("{what}: {l}")));
            summary.push(format!("bench {kind}: {what} failed; no results"));
            return Ok(Outcome {
                exit_code: outcome.exit_code,
                summary,
            });
        }
        summary.extend(outcome.summary.iter().map(|l| format!("{what}: {l}")));
        let parsed = match &mut results {
            BenchResults::Ring(all) => bench::ring_run(cpus, &lines).map(|r| all.extend(r)),
            BenchResults::Micro(all) => bench::micro_run(&lines).map(|r| all.extend(r)),
        };
        if let Err(e) = parsed {
            summary.push(format!("bench {kind}: {what}: {e}"));
            return Ok(Outcome {
                exit_code: transcript::EXIT_DOMAIN_FAILED,
                summary,
            });
        }
    }
    let (report, json, line) = match &results {
        BenchResults::Ring(r) => {
            let targets = bench::ring_targets(r);
            let met = targets.iter().filter(|t| t.met).count();
            (
                bench::ring_report(r, &targets),
                bench::ring_json(r, &targets),
                format!(
                    "bench ring: {} result(s), {met} of {} target(s) met",
                    r.len(),
                    targets.len()
                ),
            )
        }
        BenchResults::Micro(r) => {
            let with = r.iter().filter(|m| m.target.is_some()).count();
            let met = r.iter().filter(|m| m.met == Some(true)).count();
            (
                bench::micro_report(r),
                bench::micro_json(r),
                format!(
                    "bench micro: {} result(s), {met} of {with} target(s) met",
                    r.len()
                ),
            )
        }
    };
    print!("{report}");
    let _ = std::io::stdout().flush();
    summary.push(line);
    if let Some(path) = &opts.json {
        std::fs::write(path, json).map_err(|source| Error::WriteReport {
            path: path.clone(),
            source,
        })?;
        summary.push(format!("wrote the JSON report to {}", path.display()));
    }
    Ok(Outcome {
        exit_code: transcript::EXIT_OK,
        summary,
    })
}

/// `parapet check`: what is installed, as text lines; `Ok` iff all is there.
pub fn check() -> Result<Vec<String>, Vec<String>> {
    let root = match build::workspace_root() {
        Ok(r) => r,
        Err(e) => return Err(vec![e.to_string()]),
    };
    let r = prereq::report(&root);
    let mut lines = vec![format!("workspace: {}", root.display())];
    let mut ok = true;
    match &r.qemu {
        Some(p) => lines.push(format!("{}: {}", prereq::QEMU, p.display())),
        None => {
            ok = false;
            lines.push(format!(
                "{}: MISSING ({})",
                prereq::QEMU,
                if r.root {
                    "`parapet up` will install qemu-system-arm with apt-get"
                } else {
                    "install qemu-system-arm, or run `parapet up` as root or with password-less sudo"
                }
            ));
        }
    }
    match &r.sysroot {
        Some(s) => lines.push(format!("rust sysroot: {}", s.display())),
        None => {
            ok = false;
            lines.push("rustc: MISSING (install Rust with rustup: https://rustup.rs)".into());
        }
    }
    for t in prereq::TARGETS {
        if r.missing_targets.iter().any(|m| m == t) {
            ok = false;
            lines.push(format!(
                "target {t}: MISSING (run `rustup toolchain install` in {})",
                root.display()
            ));
        } else {
            lines.push(format!("target {t}: installed"));
        }
    }
    lines.push(match &r.rustup {
        Some(p) => format!("rustup: {}", p.display()),
        None => "rustup: not found".into(),
    });
    lines.push(format!(
        "running as root: {}",
        if r.root { "yes" } else { "no" }
    ));
    if ok {
        Ok(lines)
    } else {
        Err(lines)
    }
}
