//! Where the Parapet checkout is, and which toolchain a cargo run in a
//! directory gets.
//!
//! `parapet` builds the hypervisor and the driver domain from the checkout,
//! wherever it is run from (an installed `parapet` runs in a guest crate of
//! its own). The checkout is `$PARAPET_HOME` when set, else the directory
//! recorded when `parapet` was compiled (`tools/..`), else the first
//! ancestor of the current directory that is one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable naming the checkout.
pub const HOME_VAR: &str = "PARAPET_HOME";

/// The checkout `parapet` was compiled in.
const RECORDED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The checkout cannot be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HomeError {
    /// `$PARAPET_HOME` names something else.
    #[error(
        "PARAPET_HOME={} is not a Parapet checkout ({missing} is missing): set PARAPET_HOME \
         to the directory that holds Parapet's Cargo.toml, rust-toolchain.toml and guest-sdk/",
        .dir.display()
    )]
    NotACheckout {
        /// The directory.
        dir: PathBuf,
        /// What it lacks.
        missing: String,
    },
    /// Neither `$PARAPET_HOME`, nor the recorded checkout, nor an ancestor.
    #[error(
        "cannot find the Parapet checkout: PARAPET_HOME is not set, {} (recorded when \
         `parapet` was built) is not one any more ({missing} is missing), and neither is any \
         parent of {}; set PARAPET_HOME to the checkout's directory, e.g. \
         `export PARAPET_HOME=$HOME/parapet`",
        .recorded.display(),
        .cwd.display()
    )]
    NotFound {
        /// The recorded checkout.
        recorded: PathBuf,
        /// What it lacks.
        missing: String,
        /// The current directory.
        cwd: PathBuf,
    },
}

/// What `dir` lacks to be a Parapet checkout (`None`: it is one).
pub fn missing_part(dir: &Path) -> Option<String> {
    let workspace = std::fs::read_to_string(dir.join("Cargo.toml"))
        .map(|s| s.lines().any(|l| l.trim() == "[workspace]"))
        .unwrap_or(false);
    if !workspace {
        return Some(format!(
            "{} with [workspace]",
            dir.join("Cargo.toml").display()
        ));
    }
    [
        "rust-toolchain.toml",
        "guest-sdk/Cargo.toml",
        "hypervisor/Cargo.toml",
    ]
    .iter()
    .map(|p| dir.join(p))
    .find(|p| !p.is_file())
    .map(|p| p.display().to_string())
}

/// Finds the checkout: `env` (the value of `$PARAPET_HOME`) when given,
/// else `recorded`, else the first ancestor of `cwd` that is one.
pub fn find(env: Option<&Path>, recorded: &Path, cwd: &Path) -> Result<PathBuf, HomeError> {
    let canonical = |d: &Path| d.canonicalize().unwrap_or_else(|_| d.to_owned());
    if let Some(dir) = env.filter(|d| !d.as_os_str().is_empty()) {
        return match missing_part(dir) {
            None => Ok(canonical(dir)),
            Some(missing) => Err(HomeError::NotACheckout {
                dir: dir.to_owned(),
                missing,
            }),
        };
    }
    let Some(missing) = missing_part(recorded) else {
        return Ok(canonical(recorded));
    };
    cwd.ancestors()
        .find(|d| missing_part(d).is_none())
        .map(canonical)
        .ok_or_else(|| HomeError::NotFound {
            recorded: canonical(recorded),
            missing,
            cwd: cwd.to_owned(),
        })
}

/// The Parapet checkout (see the module documentation).
pub fn checkout_root() -> Result<PathBuf, HomeError> {
    let env = std::env::var_os(HOME_VAR).map(PathBuf::from);
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    find(env.as_deref(), Path::new(RECORDED), &cwd)
}

/// The cargo to run when no toolchain file decides: `$CARGO` or `cargo`.
pub fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Whether a tool run in `dir` should get the toolchain `dir`'s
/// `rust-toolchain.toml` pins rather than the one `parapet` inherited.
///
/// rustup passes the toolchain it picked to its children
/// (`RUSTUP_TOOLCHAIN`); when it picked it only by default or from another
/// directory's toolchain file (`RUSTUP_TOOLCHAIN_SOURCE`), the directory's
/// own file should apply. A toolchain chosen on purpose (`cargo +x`, the
/// environment, an override) is kept.
fn defer_to_toolchain_file(dir: &Path, source: Option<&str>) -> bool {
    matches!(source, Some("default" | "toolchain-file"))
        && (dir.join("rust-toolchain.toml").is_file() || dir.join("rust-toolchain").is_file())
}

/// A command running `program` (a rustup-managed tool: `cargo`, `rustc`,
/// `rustup`) in `dir`, with the toolchain `dir` pins when it has a toolchain
/// file (see `defer_to_toolchain_file`); `fallback` is what to run
/// otherwise (`$CARGO` for cargo).
pub fn tool_in(dir: &Path, program: &str, fallback: OsString) -> Command {
    let source = std::env::var("RUSTUP_TOOLCHAIN_SOURCE").ok();
    let mut c = if defer_to_toolchain_file(dir, source.as_deref()) {
        let mut c = Command::new(program);
        c.env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTUP_TOOLCHAIN_SOURCE");
        c
    } else {
        Command::new(fallback)
    };
    c.current_dir(dir);
    c
}

/// `cargo` in `dir` (see [`tool_in`]).
pub fn cargo_in(dir: &Path) -> Command {
    tool_in(dir, "cargo", cargo_program())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> PathBuf {
        Path::new(RECORDED).canonicalize().unwrap()
    }

    #[test]
    fn the_recorded_checkout_is_one() {
        assert_eq!(missing_part(Path::new(RECORDED)), None);
        let r = find(None, Path::new(RECORDED), Path::new("/")).unwrap();
        assert_eq!(r, recorded());
        assert!(r.join("tools/Cargo.toml").is_file());
    }

    #[test]
    fn parapet_home_wins_and_is_checked() {
        let home = recorded();
        let r = find(Some(&home), Path::new("/nonexistent"), Path::new("/")).unwrap();
        assert_eq!(r, home);
        let e = find(Some(Path::new("/tmp")), Path::new(RECORDED), Path::new("/")).unwrap_err();
        let m = e.to_string();
        assert!(
            m.starts_with("PARAPET_HOME=/tmp is not a Parapet checkout (/tmp/Cargo.toml"),
            "{m}"
        );
        assert!(m.contains("set PARAPET_HOME to the directory"), "{m}");
    }

    #[test]
    fn a_moved_checkout_says_what_to_set() {
        let e = find(None, Path::new("/nonexistent/parapet"), Path::new("/")).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, HomeError::NotFound { .. }), "{m}");
        assert!(
            m.contains("PARAPET_HOME is not set, /nonexistent/parapet (recorded when `parapet` was built) is not one any more"),
            "{m}"
        );
        assert!(m.contains("export PARAPET_HOME="), "{m}");
        // From inside a checkout, its ancestors still find it.
        let inside = recorded().join("tools/src");
        assert_eq!(
            find(None, Path::new("/nonexistent"), &inside).unwrap(),
            recorded()
        );
    }

    #[test]
    fn toolchain_files_apply_unless_chosen_on_purpose() {
        let home = recorded();
        assert!(defer_to_toolchain_file(&home, Some("toolchain-file")));
        assert!(defer_to_toolchain_file(&home, Some("default")));
        assert!(!defer_to_toolchain_file(&home, Some("cli")));
        assert!(!defer_to_toolchain_file(&home, Some("env")));
        assert!(!defer_to_toolchain_file(&home, None));
        assert!(!defer_to_toolchain_file(
            &home.join("tools"),
            Some("default")
        ));
    }
}
