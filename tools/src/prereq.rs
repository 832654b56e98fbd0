//! Prerequisites: QEMU and the Rust targets, installed where we can.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The QEMU binary we need.
pub const QEMU: &str = "qemu-system-aarch64";
/// The Rust targets the images are built for.
pub const TARGETS: [&str; 2] = ["aarch64-unknown-none", "aarch64-unknown-none-softfloat"];

/// A prerequisite is missing and could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum PrereqError {
    /// QEMU is missing and we may not install it.
    #[error(
        "qemu-system-aarch64 not found: install it with `sudo apt-get install qemu-system-arm` \
         (Debian/Ubuntu) or your distribution's qemu-system-aarch64 package"
    )]
    QemuMissing,
    /// Installing QEMU failed.
    #[error("installing qemu-system-arm failed ({0}); install it with `sudo apt-get install qemu-system-arm` (Debian/Ubuntu) or your distribution's qemu-system-aarch64 package")]
    QemuInstallFailed(String),
    /// `rustc` could not be run.
    #[error(
        "cannot run `rustc --print sysroot`: {0}; install Rust with rustup (https://rustup.rs)"
    )]
    Rustc(String),
    /// A target is missing and rustup is not there to install it.
    #[error("Rust target(s) {0} missing and rustup not found: install rustup (https://rustup.rs), then run `rustup toolchain install` in the repository root (or `rustup target add {0}`)")]
    NoRustup(String),
    /// `rustup toolchain install` did not provide the targets.
    #[error("Rust target(s) {0} still missing after `rustup toolchain install`; run `rustup target add {0}` in the repository root")]
    TargetsStillMissing(String),
}

/// What `parapet check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Path of `qemu-system-aarch64`, if found.
    pub qemu: Option<PathBuf>,
    /// The Rust sysroot, if `rustc` runs.
    pub sysroot: Option<PathBuf>,
    /// Targets missing from the sysroot.
    pub missing_targets: Vec<String>,
    /// Whether `rustup` is on PATH.
    pub rustup: Option<PathBuf>,
    /// Whether we run as root.
    pub root: bool,
}

/// Finds an executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    which_in(name, &path)
}

/// Finds an executable in a `PATH`-like list.
pub fn which_in(name: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether the effective user is root, from `/proc/self/status` (or `id -u`).
pub fn is_root() -> bool {
    if let Ok(s) = std::fs::read_to_string("/proc/self/status") {
        if let Some(uid) = parse_uid(&s) {
            return uid == 0;
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

/// The effective uid from the text of `/proc/self/status`.
pub fn parse_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // Uid: real effective saved fs
    line.split_whitespace().nth(2)?.parse().ok()
}

fn sudo_ok() -> bool {
    which("sudo").is_some()
        && Command::new("sudo")
            .args(["-n", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}

/// The sysroot of the toolchain selected in `root` (rust-toolchain.toml applies).
pub fn sysroot(root: &Path) -> Result<PathBuf, PrereqError> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = crate::home::tool_in(root, "rustc", rustc)
        .args(["--print", "sysroot"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| PrereqError::Rustc(e.to_string()))?;
    if !out.status.success() {
        return Err(PrereqError::Rustc(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Targets missing from a sysroot.
pub fn missing_targets(sysroot: &Path) -> Vec<String> {
    TARGETS
        .iter()
        .filter(|t| !sysroot.join("lib/rustlib").join(t).is_dir())
        .map(|t| t.to_string())
        .collect()
}

/// Looks at everything without changing anything.
pub fn report(root: &Path) -> Report {
    let sysroot = sysroot(root).ok();
    let missing = sysroot
        .as_deref()
        .map(missing_targets)
        .unwrap_or_else(|| TARGETS.iter().map(|t| t.to_string()).collect());
    Report {
        qemu: which(QEMU),
        sysroot,
        missing_targets: missing,
        rustup: which("rustup"),
        root: is_root(),
    }
}

fn run_logged(prog: &str, args: &[&str], sudo: bool) -> Result<(), String> {
    let (p, a): (&str, Vec<&str>) = if sudo {
        ("sudo", [&["-n", prog][..], args].concat())
    } else {
        (prog, args.to_vec())
    };
    eprintln!("parapet: running `{} {}`", p, a.join(" "));
    let st = Command::new(p)
        .args(&a)
        .stdin(Stdio::null())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("cannot run {p}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("`{} {}` failed with {st}", p, a.join(" ")))
    }
}

/// Makes sure `qemu-system-aarch64` is on PATH, installing it with apt-get as
/// root or with password-less sudo. Returns its path.
pub fn ensure_qemu() -> Result<PathBuf, PrereqError> {
    if let Some(p) = which(QEMU) {
        return Ok(p);
    }
    let sudo = if is_root() {
        false
    } else if sudo_ok() {
        true
    } else {
        return Err(PrereqError::QemuMissing);
    };
    if which("apt-get").is_none() {
        return Err(PrereqError::QemuMissing);
    }
    eprintln!("parapet: {QEMU} not found; installing the Debian package qemu-system-arm");
    run_logged("apt-get", &["update"], sudo).map_err(PrereqError::QemuInstallFailed)?;
    run_logged("apt-get", &["install", "-y", "qemu-system-arm"], sudo)
        .map_err(PrereqError::QemuInstallFailed)?;
    which(QEMU).ok_or_else(|| {
        PrereqError::QemuInstallFailed(format!("{QEMU} still not on PATH after the install"))
    })
}

/// Makes sure both bare-metal targets are installed for the pinned toolchain,
/// running `rustup toolchain install` in `root` if one is missing.
pub fn ensure_targets(root: &Path) -> Result<(), PrereqError> {
    let missing = missing_targets(&sysroot(root)?);
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if which("rustup").is_none() {
        return Err(PrereqError::NoRustup(list));
    }
    eprintln!(
        "parapet: Rust target(s) {list} missing; running `rustup toolchain install` in {}",
        root.display()
    );
    let st = crate::home::tool_in(root, "rustup", "rustup".into())
        .args(["toolchain", "install"])
        .stdin(Stdio::null())
        .status();
    if !matches!(st, Ok(s) if s.success()) {
        return Err(PrereqError::TargetsStillMissing(list));
    }
    let missing = missing_targets(&sysroot(root)?);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PrereqError::TargetsStillMissing(missing.join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_parsing() {
        let s = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1\n";
        assert_eq!(parse_uid(s), Some(0));
        assert_eq!(parse_uid("Name: x\n"), None);
    }

    #[test]
    fn which_finds_sh() {
        assert!(which_in("sh", OsStr::new("/nonexistent:/bin:/usr/bin")).is_some());
        assert!(which_in("no-such-binary-xyz", OsStr::new("/bin:/usr/bin")).is_none());
    }

    #[test]
    fn missing_targets_in_empty_sysroot() {
        assert_eq!(missing_targets(Path::new("/nonexistent")).len(), 2);
    }

    #[test]
    fn message_says_what_to_install() {
        let m = PrereqError::QemuMissing.to_string();
        assert!(m.contains("sudo apt-get install qemu-system-arm"), "{m}");
    }
}
