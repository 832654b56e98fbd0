//! `parapet new PATH`: a guest crate of its own, outside the checkout, that
//! `parapet up` in its directory builds and boots beside the driver domain.
//!
//! The crate depends on the checkout's guest SDK by path, has its own
//! `[workspace]` (no enclosing workspace swallows it), the checkout's
//! toolchain pin and a copy of its `Cargo.lock` (the same dependency
//! versions), a `build.rs` that selects the SDK's linker script, a hello
//! world and a `scenario.toml` that names the crate as `image = "."`.

use std::path::{Path, PathBuf};

use crate::image::BUILD_RS;
use crate::scenario::MAX_NAME_LEN;

/// The scenario file of a guest crate, booted by `parapet up` with no
/// argument in its directory.
pub const SCENARIO_FILE: &str = "scenario.toml";

/// `parapet new` refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// The path has no last component to take the name from.
    #[error("{}: no directory name to make the guest's name from (e.g. `parapet new ../hello`)", .0.display())]
    NoName(PathBuf),
    /// The name is not a valid domain name.
    #[error(
        "{0:?} is not a valid guest name: the crate's directory name becomes its domain's name, \
         1 to {MAX_NAME_LEN} characters from [a-z0-9_-]"
    )]
    BadName(String),
    /// The name is a valid domain name but cargo refuses it as a package name.
    #[error("{name:?} cannot be a package name: {why}; choose another directory name")]
    NotAPackageName {
        /// The name.
        name: String,
        /// Why.
        why: &'static str,
    },
    /// The path exists.
    #[error(
        "{} already exists: `parapet new` only creates a new directory; choose another path or remove that one",
        .0.display()
    )]
    Exists(PathBuf),
    /// A path cannot be written in a TOML file.
    #[error("the checkout's path {} is not valid UTF-8: it cannot be written in Cargo.toml", .0.display())]
    NotUtf8(PathBuf),
    /// A file of the checkout cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file of the new crate cannot be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Names cargo or rustc would refuse for a package or a binary.
#[rustfmt::skip]
const RESERVED: &[&str] = &[
    // Rust's own crates.
    "core", "std", "alloc", "test", "proc_macro", "proc-macro",
    // Cargo's directories in the target directory.
    "build", "deps", "examples", "incremental",
    // Keywords.
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Checks that `name` is a valid domain name ([a-z0-9_-]{1,31}) that cargo
/// takes as a package name.
pub fn check_name(name: &str) -> Result<(), NewError> {
    let domain = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !domain {
        return Err(NewError::BadName(name.to_owned()));
    }
    let why = if name.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        Some("cargo wants it to start with a letter or '_'")
    } else if RESERVED.contains(&name) {
        Some("it is a Rust keyword, a standard crate or a directory cargo reserves")
    } else {
        None
    };
    match why {
        Some(why) => Err(NewError::NotAPackageName {
            name: name.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// The guest's name: the last component of `path`.
pub fn name_of(path: &Path) -> Result<String, NewError> {
    let last = path
        .file_name()
        .ok_or_else(|| NewError::NoName(path.to_owned()))?;
    let name = last
        .to_str()
        .ok_or_else(|| NewError::BadName(last.to_string_lossy().into_owned()))?;
    check_name(name)?;
    Ok(name.to_owned())
}

fn read(path: PathBuf) -> Result<String, NewError> {
    std::fs::read_to_string(&path).map_err(|source| NewError::Read { path, source })
}

/// The crate's files for a guest `name` (a checked name), as (relative
/// path, text), for the checkout at `checkout`.
pub fn template(name: &str, checkout: &Path) -> Result<Vec<(&'static str, String)>, NewError> {
    let sdk = checkout.join("guest-sdk");
    let sdk_str = sdk.to_str().ok_or_else(|| NewError::NotUtf8(sdk.clone()))?;
    let sdk_toml = toml::Value::String(sdk_str.to_owned()).to_string();
    let cargo_toml = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
# The Parapet guest SDK, from the checkout `parapet new` was run with.
parapet-guest = {{ path = {sdk_toml} }}

# A workspace of its own: an enclosing workspace does not swallow it.
[workspace]

# As the Parapet checkout builds its images.
[profile.dev]
panic = "abort"

[profile.release]
panic = "abort"
debug = true
opt-level = 3
codegen-units = 1
"#
    );
    let mut toolchain = format!(
        "# The toolchain the Parapet checkout pins ({}), with its bare-metal targets.\n{}",
        checkout.join("rust-toolchain.toml").display(),
        read(checkout.join("rust-toolchain.toml"))?
    );
    if !toolchain.ends_with('\n') {
        toolchain.push('\n');
    }
    let lock = read(checkout.join("Cargo.lock"))?;
    let main_rs =
        r#"//! A Parapet guest: says hello and powers off (its return value is the exit code).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
parapet_guest::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &parapet_guest::abi::StartInfo) -> i32 {
    // The domain's name, as the scenario gives it.
    parapet_guest::println!("hello from {}", info.name());
    0
}

// A bare-metal image: `parapet up` builds it for aarch64-unknown-none.
#[cfg(not(target_os = "none"))]
fn main() {}
"#
        .to_owned();
    // Domain names are unique: a guest called "driver" gets a driver domain
    // with another name.
    let driver = if name == "driver" {
        "driver-domain"
    } else {
        "driver"
    };
    let scenario = format!(
        r#"# {name} beside the driver domain. `parapet up` in this directory builds the
# crate (image = "."), the hypervisor and the driver domain, boots this file on
# QEMU and streams the consoles. Every field is described in the Parapet
# checkout's scenarios/basics.toml.

[machine]
cpus = 2

# The driver domain, a binary of the Parapet checkout.
[[domain]]
name = "{driver}"
role = "driver"
image = "driver-domain"
memory_mib = 64
cpu = 0

# This crate; its console lines are prefixed with [{name}].
[[domain]]
name = "{name}"
image = "."
memory_mib = 32
cpu = 1
"#
    );
    Ok(vec![
        ("Cargo.toml", cargo_toml),
        ("rust-toolchain.toml", toolchain),
        ("build.rs", BUILD_RS.to_owned()),
        ("Cargo.lock", lock),
        ("src/main.rs", main_rs),
        (SCENARIO_FILE, scenario),
        (".gitignore", "/target\n".to_owned()),
    ])
}

/// Creates the guest crate at `path` (which must not exist) for the
/// checkout at `checkout`; returns the guest's name.
pub fn create(path: &Path, checkout: &Path) -> Result<String, NewError> {
    let name = name_of(path)?;
    if path.symlink_metadata().is_ok() {
        return Err(NewError::Exists(path.to_owned()));
    }
    let files = template(&name, checkout)?;
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| NewError::Write { path, source }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(write_err(parent))?;
    }
    std::fs::create_dir(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            NewError::Exists(path.to_owned())
        } else {
            write_err(path)(e)
        }
    })?;
    let written = files.iter().try_for_each(|(rel, text)| {
        let file = path.join(rel);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(write_err(dir))?;
        }
        std::fs::write(&file, text).map_err(write_err(&file))
    });
    if let Err(e) = written {
        // Leave nothing half made behind.
        let _ = std::fs::remove_dir_all(path);
        return Err(e);
    }
    Ok(name)
}

/// The scenario `parapet up` and `parapet build` use with no argument in
/// `cwd`: its [`SCENARIO_FILE`] (a guest crate's), if there is one.
pub fn default_scenario(cwd: &Path) -> Option<PathBuf> {
    cwd.join(SCENARIO_FILE)
        .is_file()
        .then(|| PathBuf::from(SCENARIO_FILE))
}

/// Lines of code in Rust source: neither blank nor only a comment.
pub fn code_lines(src: &str) -> usize {
    src.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image;
    use crate::scenario::{self, ImageSource, Role};

    fn checkout() -> PathBuf {
        crate::home::checkout_root().unwrap()
    }

    /// A fresh scratch directory outside the checkout, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let d = std::env::temp_dir().join(format!("parapet-new-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Scratch(d.canonicalize().unwrap())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn creates_the_crate() {
        let s = Scratch::new("ok");
        let dir = s.0.join("guests/hello");
        assert_eq!(create(&dir, &checkout()).unwrap(), "hello");
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        for f in [
            "Cargo.toml",
            "rust-toolchain.toml",
            "build.rs",
            "Cargo.lock",
            "src/main.rs",
            "scenario.toml",
        ] {
            assert!(dir.join(f).is_file(), "{f}");
        }
        // Cargo.toml: the package, the SDK by path, a workspace of its own,
        // panic=abort as in the checkout.
        let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some("hello"));
        let sdk = manifest["dependencies"]["parapet-guest"]["path"]
            .as_str()
            .unwrap();
        assert_eq!(Path::new(sdk), checkout().join("guest-sdk"));
        assert!(manifest["workspace"].is_table());
        assert_eq!(
            manifest["profile"]["release"]["panic"].as_str(),
            Some("abort")
        );
        // The checkout's pin and lock.
        let pin: toml::Value = toml::from_str(&read("rust-toolchain.toml")).unwrap();
        let ours: toml::Value = toml::from_str(
            &std::fs::read_to_string(checkout().join("rust-toolchain.toml")).unwrap(),
        )
        .unwrap();
        assert_eq!(pin, ours);
        let targets = pin["toolchain"]["targets"].as_array().unwrap();
        assert!(targets
            .iter()
            .any(|t| t.as_str() == Some("aarch64-unknown-none")));
        assert_eq!(
            read("Cargo.lock"),
            std::fs::read_to_string(checkout().join("Cargo.lock")).unwrap()
        );
        // build.rs: the linker script, for bare metal only.
        let build_rs = read("build.rs");
        assert!(build_rs.contains(image::LINKER_SCRIPT_LINE));
        assert!(
            build_rs.contains(r#"std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none")"#)
        );
        // A short hello world.
        let main_rs = read("src/main.rs");
        assert!(code_lines(&main_rs) <= 10, "{main_rs}");
        assert!(main_rs.contains(r#"println!("hello from {}", info.name())"#));
        // The scenario: the crate beside the driver domain, valid as written.
        let sc = scenario::load(&dir.join("scenario.toml"), &checkout()).unwrap();
        assert_eq!(sc.domain_names(), ["driver", "hello"]);
        assert_eq!(sc.domains[0].role, Role::Driver);
        assert_eq!(
            sc.domains[0].source,
            ImageSource::Bin("driver-domain".into())
        );
        assert_eq!(sc.domains[1].image, ".");
        assert_eq!(
            sc.domains[1].source,
            ImageSource::Crate(dir.join("Cargo.toml"))
        );
        assert_eq!(default_scenario(&dir), Some(PathBuf::from("scenario.toml")));
        assert_eq!(default_scenario(&s.0), None);
    }

    #[test]
    fn refuses_an_existing_path() {
        let s = Scratch::new("exists");
        let dir = s.0.join("hello");
        create(&dir, &checkout()).unwrap();
        std::fs::write(dir.join("src/main.rs"), "// mine\n").unwrap();
        let e = create(&dir, &checkout()).unwrap_err();
        assert!(matches!(e, NewError::Exists(_)), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "{} already exists: `parapet new` only creates a new directory; choose another path or remove that one",
                dir.display()
            )
        );
        // Nothing was touched.
        assert_eq!(
            std::fs::read_to_string(dir.join("src/main.rs")).unwrap(),
            "// mine\n"
        );
        // An existing file, too.
        std::fs::write(s.0.join("file"), "x").unwrap();
        assert!(matches!(
            create(&s.0.join("file"), &checkout()),
            Err(NewError::Exists(_))
        ));
    }

    #[test]
    fn refuses_bad_names() {
        let s = Scratch::new("names");
        for bad in ["Hello", "hello world", "héllo", "a.b", &"a".repeat(32)] {
            let e = create(&s.0.join(bad), &checkout()).unwrap_err();
            assert!(matches!(e, NewError::BadName(_)), "{bad}: {e}");
            assert!(
                e.to_string()
                    .ends_with("1 to 31 characters from [a-z0-9_-]"),
                "{e}"
            );
        }
        for bad in ["1st", "-x", "std", "build", "fn"] {
            let e = create(&s.0.join(bad), &checkout()).unwrap_err();
            assert!(matches!(e, NewError::NotAPackageName { .. }), "{bad}: {e}");
        }
        let e = create(Path::new("/"), &checkout()).unwrap_err();
        assert!(matches!(e, NewError::NoName(_)), "{e}");
        assert!(matches!(
            create(&s.0.join(".."), &checkout()),
            Err(NewError::NoName(_))
        ));
        // Nothing was created.
        assert_eq!(std::fs::read_dir(&s.0).unwrap().count(), 0);
        // The longest valid name, digits and '_' or '-' inside.
        assert!(check_name(&"a".repeat(31)).is_ok());
        assert!(check_name("g_2-x").is_ok());
    }

    #[test]
    fn a_guest_named_driver_gets_a_driver_of_another_name() {
        let s = Scratch::new("driver");
        let dir = s.0.join("driver");
        create(&dir, &checkout()).unwrap();
        let sc = scenario::load(&dir.join("scenario.toml"), &checkout()).unwrap();
        assert_eq!(sc.domain_names(), ["driver-domain", "driver"]);
    }

    #[test]
    fn counts_code_lines() {
        assert_eq!(
            code_lines("//! doc\n\nfn main() {\n    // x\n    0\n}\n"),
            3
        );
    }
}
