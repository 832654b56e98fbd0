//! The `parapet` host CLI as a library: scenario files, builds, the QEMU
//! command line, the console transcript and the prerequisites.
//!
//! `main.rs` only parses the command line and calls [`build()`], [`up`],
//! [`bench()`], [`check`], [`new_guest`] or [`control::client::run`].
#![deny(unsafe_code)]

pub mod bench;
mod benches;
pub mod build;
pub mod control;
pub mod disks;
pub mod home;
pub mod image;
pub mod loadtest;
mod netbench;
pub mod nets;
pub mod new;
pub mod prereq;
pub mod qemu;
mod run;
pub mod scenario;
pub mod trace;
pub mod transcript;

use std::path::{Path, PathBuf};

pub use benches::{bench, bench_gate, bench_measure, BenchOptions, BenchResults};
pub use loadtest::{bench_http, BenchHttpOptions};
pub use netbench::{bench_net, BenchNetOptions, HostError};
pub use nets::Forward;
use run::{boot, colour_stdout, prepare};
pub use run::{
    effective_timeout, prepare_up, run_prepared, up, up_with, Prepared, Running, UpOptions,
};
pub use transcript::Outcome;

/// The scenario used when none is given (outside a guest crate, see
/// [`default_scenario`]).
pub const DEFAULT_SCENARIO: &str = "scenarios/demo.toml";
/// Default `--timeout` of `parapet up`, in seconds (none for a service).
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
    /// A guest's network interface could not be set up.
    #[error(transparent)]
    Net(#[from] nets::NetError),
    /// `parapet bench http` cannot load the scenario's server.
    #[error(transparent)]
    Load(#[from] loadtest::LoadError),
    /// `parapet new` refused or failed.
    #[error(transparent)]
    New(#[from] new::NewError),
    /// The trace could not be recorded, written or read.
    #[error(transparent)]
    Trace(#[from] trace::TraceFileError),
    /// A chart of `--plot` could not be written.
    #[error(transparent)]
    Plot(#[from] bench::plot::PlotError),
    /// The baseline of the regression gate could not be read or written.
    #[error(transparent)]
    Baseline(#[from] bench::gate::BaselineError),
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

/// The scenario of `parapet up` or `parapet build` without one: the guest
/// crate's `scenario.toml` in the current directory, else
/// [`DEFAULT_SCENARIO`] (the demo of the checkout).
pub fn default_scenario() -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| new::default_scenario(&cwd))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SCENARIO))
}

/// `parapet new PATH`: creates a guest crate (see [`new`]); returns what to
/// print: what was made and what to type next.
pub fn new_guest(path: &Path) -> Result<Vec<String>, Error> {
    let root = build::workspace_root()?;
    let name = new::create(path, &root)?;
    let abs = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    Ok(vec![
        format!("created the guest crate '{name}' in {}", path.display()),
        format!("boot it: cd {} && parapet up", path.display()),
        format!(
            "(`cargo install --locked --path {}` puts parapet on PATH; or, in the checkout: \
             cargo parapet up {})",
            root.join("tools").display(),
            abs.join(new::SCENARIO_FILE).display()
        ),
    ])
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
