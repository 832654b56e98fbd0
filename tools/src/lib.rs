//! The `parapet` host CLI as a library: scenario files, builds, the QEMU
//! command line, the console transcript and the prerequisites.
//!
//! `main.rs` only parses the command line and calls [`build`], [`up`] or
//! [`check`].
#![deny(unsafe_code)]

pub mod build;
pub mod prereq;
pub mod qemu;
pub mod scenario;
pub mod transcript;

use std::io::IsTerminal;
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

/// `parapet up`: builds (unless `no_build`), boots QEMU, streams the consoles
/// to stdout and returns the outcome (its summary is not printed yet).
pub fn up(opts: &UpOptions) -> Result<Outcome, Error> {
    let root = build::workspace_root()?;
    let s = load(&opts.scenario, &root)?;
    let qemu_path = prereq::ensure_qemu()?;
    let ws = if opts.no_build {
        let ws = build::metadata(&root)?;
        ws.plan(&s)?; // names every unknown image
        ws
    } else {
        prereq::ensure_targets(&root)?;
        build::build_all(&root, &s)?
    };
    let hv = ws.hypervisor_elf();
    build::file_size(&hv)?;
    let mut images = Vec::new();
    for p in ws.image_paths(&s)? {
        let size = build::file_size(&p)?;
        images.push((p, size));
    }
    let args = qemu::args(&s, &hv, &images)?;
    eprintln!(
        "parapet: {}",
        qemu::display_command(&qemu_path.display().to_string(), &args)
    );
    let stdout = std::io::stdout();
    let colour = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = stdout.lock();
    let (outcome, _) = qemu::run(
        &qemu_path,
        &args,
        s.domain_names(),
        opts.timeout,
        &mut out,
        colour,
    )?;
    Ok(outcome)
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
