//! What a scenario's `image` names, and building guest crates of their own.
//!
//! An `image` is, in this order: a crate directory or its `Cargo.toml`
//! (relative to the scenario file), built by `parapet` with
//! `cargo build --release --target aarch64-unknown-none` in that crate; an
//! ELF file (relative to the scenario file, then to the checkout); or the
//! name of a binary target of the Parapet workspace.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::build::{BuildError, IMAGE_TARGET};
use crate::home;
use crate::scenario::ImageSource;

/// The line of a guest's `build.rs` that links it with the SDK's linker script.
pub const LINKER_SCRIPT_LINE: &str = r#"println!("cargo:rustc-link-arg-bins=-Tparapet-guest.ld");"#;

/// A guest's `build.rs`, as `parapet new` writes it (and `examples/build.rs` is).
pub const BUILD_RS: &str = r#"//! Links the guest with the Parapet SDK's linker script (bare metal only).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-Tparapet-guest.ld");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
"#;

/// A guest crate could not be inspected or built.
#[derive(Debug, thiserror::Error)]
pub enum CrateError {
    /// The manifest has no `[package]` (a virtual workspace).
    #[error("{}: no [package] in this manifest: name the directory of a crate with a binary", .0.display())]
    NoPackage(PathBuf),
    /// The package has no binary to boot, or several and none named after it.
    #[error(
        "{}: package '{package}' has {}: make it one binary, or name one after the package",
        .manifest.display(),
        if bins.is_empty() { "no binary target".to_owned() } else { format!("binaries {} and none is named '{package}'", bins.join(", ")) }
    )]
    NoBin {
        /// The manifest.
        manifest: PathBuf,
        /// The package.
        package: String,
        /// Its binary targets.
        bins: Vec<String>,
    },
    /// The link failed for want of the SDK's linker script.
    #[error(
        "`{command}` failed: the guest was linked without the SDK's linker script \
         (undefined symbol __bss_end in the SDK's start code).\n{}",
        linker_script_hint(.build_rs)
    )]
    NoLinkerScript {
        /// The cargo command.
        command: String,
        /// The crate's `build.rs`.
        build_rs: PathBuf,
    },
}

/// What to add to `build_rs` (which may not exist yet) to link with the
/// SDK's linker script.
pub fn linker_script_hint(build_rs: &Path) -> String {
    if build_rs.is_file() {
        format!(
            "Add this line to fn main() in {}, for bare metal only (as examples/build.rs does):\n\n    \
             if std::env::var(\"CARGO_CFG_TARGET_OS\").as_deref() == Ok(\"none\") {{\n        \
             {LINKER_SCRIPT_LINE}\n    }}",
            build_rs.display()
        )
    } else {
        let body: String = BUILD_RS.lines().map(|l| format!("    {l}\n")).collect();
        format!(
            "Create {} with the line {LINKER_SCRIPT_LINE} (for bare metal only):\n\n{}",
            build_rs.display(),
            body.trim_end()
        )
    }
}

/// Whether a failed build's output shows a link without the SDK's linker
/// script: the symbols only that script defines are undefined in the SDK's
/// start code.
pub fn needs_linker_script(output: &str) -> bool {
    let text = strip_ansi(output);
    let undefined = text.contains("undefined symbol") || text.contains("undefined reference");
    undefined
        && ["__bss_end", "__bss_start", "__image_end", "parapet_guest"]
            .iter()
            .any(|s| text.contains(s))
}

/// `s` without ANSI escape sequences (cargo's colours).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters… final byte in @..=~.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Decides what `image` names (see the module documentation); `dir` is the
/// scenario file's directory, `root` the checkout. The error is the message
/// for the `image` field.
pub fn resolve(image: &str, dir: &Path, root: &Path) -> Result<ImageSource, String> {
    if image.is_empty() {
        return Err(
            "empty: expected a crate directory, a Cargo.toml, an ELF file path or a workspace binary name"
                .into(),
        );
    }
    let p = Path::new(image);
    let here = if p.is_absolute() {
        p.to_owned()
    } else {
        dir.join(p)
    };
    let canonical = |p: PathBuf| p.canonicalize().unwrap_or(p);
    let looks_like_name = image
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    // `dir.join(".")` of an empty `dir` is ".", the current directory.
    let here_dir = if here.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        here.clone()
    };
    if here_dir.is_dir() {
        let manifest = here_dir.join("Cargo.toml");
        if manifest.is_file() {
            return Ok(ImageSource::Crate(canonical(manifest)));
        }
        if !looks_like_name {
            return Err(format!(
                "{} is a directory without a Cargo.toml: expected a crate directory, a Cargo.toml or an ELF file",
                here_dir.display()
            ));
        }
    }
    if here.file_name().is_some_and(|n| n == "Cargo.toml") && here.is_file() {
        return Ok(ImageSource::Crate(canonical(here)));
    }
    let candidates: Vec<PathBuf> = if p.is_absolute() {
        vec![here]
    } else {
        vec![here, root.join(p)]
    };
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        let mut magic = [0u8; 4];
        let ok = std::fs::File::open(found)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && magic == *b"\x7fELF";
        if !ok {
            return Err(format!("{} is not an ELF file", found.display()));
        }
        return Ok(ImageSource::File(found.clone()));
    }
    if looks_like_name {
        Ok(ImageSource::Bin(image.to_owned()))
    } else {
        let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
        Err(format!(
            "image file {image:?} not found (looked for {})",
            looked.join(" and ")
        ))
    }
}

/// A guest crate of its own and the binary `parapet` boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrateImage {
    /// Its `Cargo.toml`.
    pub manifest: PathBuf,
    /// The package.
    pub package: String,
    /// The binary target booted.
    pub bin: String,
    /// Its target directory.
    pub target_dir: PathBuf,
}

impl CrateImage {
    /// The crate's directory.
    pub fn dir(&self) -> &Path {
        self.manifest.parent().unwrap_or(Path::new("."))
    }

    /// Path of the built image.
    pub fn elf(&self) -> PathBuf {
        self.target_dir
            .join(IMAGE_TARGET)
            .join("release")
            .join(&self.bin)
    }

    /// The arguments after `cargo` that build it.
    pub fn build_args(&self) -> Vec<String> {
        vec![
            "build".into(),
            "--release".into(),
            "--target".into(),
            IMAGE_TARGET.into(),
            "--bin".into(),
            self.bin.clone(),
            "--manifest-path".into(),
            self.manifest.display().to_string(),
        ]
    }

    /// Builds it in its own directory (its toolchain file, its target
    /// directory), streaming cargo's messages to stderr. A link without the
    /// SDK's linker script gets [`CrateError::NoLinkerScript`].
    pub fn build(&self) -> Result<(), BuildError> {
        let args = self.build_args();
        let shown = format!(
            "cargo {} (in {})",
            args[..6].join(" "),
            self.dir().display()
        );
        eprintln!("parapet: {shown}");
        let mut cmd = home::cargo_in(self.dir());
        // Its messages go through us: keep cargo's colours for a terminal.
        let colour = std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none()
            && std::env::var_os("CARGO_TERM_COLOR").is_none();
        if colour {
            cmd.env("CARGO_TERM_COLOR", "always");
        }
        let mut child = cmd
            .args(&args)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| BuildError::Spawn {
                cargo: cmd.get_program().to_string_lossy().into_owned(),
                source,
            })?;
        let mut output = String::new();
        if let Some(err) = child.stderr.take() {
            let stderr = std::io::stderr();
            for line in BufReader::new(err).split(b'\n').map_while(Result::ok) {
                let line = String::from_utf8_lossy(&line);
                let _ = writeln!(stderr.lock(), "{line}");
                output.push_str(&line);
                output.push('\n');
            }
        }
        let status = child.wait().map_err(|source| BuildError::Spawn {
            cargo: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        if status.success() {
            Ok(())
        } else if needs_linker_script(&output) {
            Err(CrateError::NoLinkerScript {
                command: shown,
                build_rs: self.dir().join("build.rs"),
            }
            .into())
        } else {
            Err(BuildError::CargoFailed(shown))
        }
    }
}

/// Runs `cargo metadata --no-deps` on a guest crate's manifest.
pub fn inspect(manifest: &Path) -> Result<CrateImage, BuildError> {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let mut cmd = home::cargo_in(dir);
    let args = ["metadata", "--no-deps", "--format-version", "1"];
    let out = cmd
        .args(args)
        .arg("--manifest-path")
        .arg(manifest)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| BuildError::Spawn {
            cargo: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(BuildError::CargoFailed(format!(
            "cargo {} --manifest-path {}",
            args.join(" "),
            manifest.display()
        )));
    }
    parse_metadata(&out.stdout, manifest)
}

/// Finds the package of `manifest` and its binary in `cargo metadata` JSON:
/// the package's single binary target, else the one named after it.
pub fn parse_metadata(json: &[u8], manifest: &Path) -> Result<CrateImage, BuildError> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| BuildError::Metadata(e.to_string()))?;
    let packages = v["packages"]
        .as_array()
        .ok_or_else(|| BuildError::Metadata("no `packages` array".into()))?;
    let same = |p: &str| {
        let p = Path::new(p);
        p == manifest || p.canonicalize().ok().as_deref() == Some(manifest)
    };
    let pkg = packages
        .iter()
        .find(|p| p["manifest_path"].as_str().is_some_and(same))
        .ok_or_else(|| CrateError::NoPackage(manifest.to_owned()))?;
    let package = pkg["name"]
        .as_str()
        .ok_or_else(|| BuildError::Metadata("a package without a name".into()))?
        .to_owned();
    let bins: Vec<String> = pkg["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    let bin = match bins.as_slice() {
        [one] => one.clone(),
        _ if bins.contains(&package) => package.clone(),
        _ => {
            return Err(CrateError::NoBin {
                manifest: manifest.to_owned(),
                package,
                bins,
            }
            .into())
        }
    };
    let target_dir = v["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.with_file_name("target"));
    Ok(CrateImage {
        manifest: manifest.to_owned(),
        package,
        bin,
        target_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let d =
                std::env::temp_dir().join(format!("parapet-image-{tag}-{}", std::process::id()));
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

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn a_crate_directory_or_its_manifest_is_a_crate() {
        let s = Scratch::new("crate");
        let g = s.0.join("guest");
        std::fs::create_dir_all(&g).unwrap();
        std::fs::write(g.join("Cargo.toml"), "[package]\nname = \"guest\"\n").unwrap();
        let want = ImageSource::Crate(g.join("Cargo.toml"));
        assert_eq!(resolve("guest", &s.0, &root()), Ok(want.clone()));
        assert_eq!(resolve("guest/Cargo.toml", &s.0, &root()), Ok(want.clone()));
        assert_eq!(resolve(".", &g, &root()), Ok(want.clone()));
        assert_eq!(resolve("./", &g, &root()), Ok(want.clone()));
        assert_eq!(resolve("../guest", &g, &root()), Ok(want.clone()));
        let abs = g.display().to_string();
        assert_eq!(resolve(&abs, Path::new("/"), &root()), Ok(want));
        // A directory without a manifest is not a crate.
        std::fs::create_dir_all(s.0.join("empty")).unwrap();
        let e = resolve("./empty", &s.0, &root()).unwrap_err();
        assert!(e.ends_with("empty is a directory without a Cargo.toml: expected a crate directory, a Cargo.toml or an ELF file"), "{e}");
        // …and a name that happens to be a directory stays a name.
        assert_eq!(
            resolve("empty", &s.0, &root()),
            Ok(ImageSource::Bin("empty".into()))
        );
    }

    #[test]
    fn workspace_bins_and_elf_files_work_as_before() {
        let s = Scratch::new("elf");
        assert_eq!(
            resolve("demo-guest", &s.0, &root()),
            Ok(ImageSource::Bin("demo-guest".into()))
        );
        std::fs::write(s.0.join("img.elf"), b"\x7fELF\x02\x01\x01\0").unwrap();
        assert_eq!(
            resolve("img.elf", &s.0, &root()),
            Ok(ImageSource::File(s.0.join("img.elf")))
        );
        std::fs::write(s.0.join("notes.txt"), b"hello").unwrap();
        let e = resolve("notes.txt", &s.0, &root()).unwrap_err();
        assert!(e.ends_with("notes.txt is not an ELF file"), "{e}");
        let e = resolve("nope/x.elf", &s.0, &root()).unwrap_err();
        assert!(e.starts_with("image file \"nope/x.elf\" not found"), "{e}");
        assert!(resolve("", &s.0, &root()).unwrap_err().starts_with("empty"));
    }

    const META: &str = r#"{"packages":[
      {"name":"hello","manifest_path":"/g/hello/Cargo.toml","targets":[
         {"name":"hello","kind":["bin"]},{"name":"build-script-build","kind":["custom-build"]}]},
      {"name":"two","manifest_path":"/g/two/Cargo.toml","targets":[
         {"name":"a","kind":["bin"]},{"name":"b","kind":["bin"]}]},
      {"name":"lib","manifest_path":"/g/lib/Cargo.toml","targets":[{"name":"lib","kind":["lib"]}]},
      {"name":"named","manifest_path":"/g/named/Cargo.toml","targets":[
         {"name":"x","kind":["bin"]},{"name":"named","kind":["bin"]}]},
      {"name":"renamed","manifest_path":"/g/renamed/Cargo.toml","targets":[{"name":"guest","kind":["bin"]}]}
    ],"target_directory":"/g/target"}"#;

    fn meta(m: &str) -> Result<CrateImage, BuildError> {
        parse_metadata(META.as_bytes(), Path::new(m))
    }

    #[test]
    fn the_binary_is_the_single_one_else_the_package_name() {
        let c = meta("/g/hello/Cargo.toml").unwrap();
        assert_eq!((c.package.as_str(), c.bin.as_str()), ("hello", "hello"));
        assert_eq!(
            c.elf(),
            Path::new("/g/target/aarch64-unknown-none/release/hello")
        );
        assert_eq!(c.dir(), Path::new("/g/hello"));
        assert_eq!(
            c.build_args().join(" "),
            "build --release --target aarch64-unknown-none --bin hello --manifest-path /g/hello/Cargo.toml"
        );
        assert_eq!(meta("/g/renamed/Cargo.toml").unwrap().bin, "guest");
        assert_eq!(meta("/g/named/Cargo.toml").unwrap().bin, "named");
        let e = meta("/g/two/Cargo.toml").unwrap_err().to_string();
        assert_eq!(
            e,
            "/g/two/Cargo.toml: package 'two' has binaries a, b and none is named 'two': make it one binary, or name one after the package"
        );
        let e = meta("/g/lib/Cargo.toml").unwrap_err().to_string();
        assert!(e.contains("package 'lib' has no binary target"), "{e}");
        let e = meta("/g/Cargo.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("/g/Cargo.toml: no [package] in this manifest"),
            "{e}"
        );
    }

    /// What rust-lld says when a guest is linked without the script.
    const NO_SCRIPT: &str = "  = note: rust-lld: error: undefined symbol: __bss_end
          >>> referenced by parapet_guest.257f4e4ee4fcace0-cgu.0
          >>>               parapet_guest-4b3a.rcgu.o:(.text.boot+0x18) in archive libparapet_guest-4b3a.rlib
          rust-lld: error: undefined symbol: __image_end
error: could not compile `hello` (bin \"hello\") due to 1 previous error";

    #[test]
    fn a_link_without_the_linker_script_is_recognised() {
        assert!(needs_linker_script(NO_SCRIPT));
        assert!(needs_linker_script(
            "\x1b[1m\x1b[32mnote\x1b[0m: rust-lld: error: undefined symbol: \x1b[1m__bss_end\x1b[0m"
        ));
        assert!(!needs_linker_script(
            "error[E0425]: cannot find value `x` in this scope"
        ));
        assert!(!needs_linker_script(
            "rust-lld: error: undefined symbol: my_function"
        ));
        assert!(!needs_linker_script(
            "warning: unused variable: `__bss_end`"
        ));
    }

    #[test]
    fn the_hint_names_the_line_and_the_file() {
        let s = Scratch::new("hint");
        let build_rs = s.0.join("build.rs");
        let e = CrateError::NoLinkerScript {
            command: "cargo build".into(),
            build_rs: build_rs.clone(),
        }
        .to_string();
        assert!(
            e.starts_with(
                "`cargo build` failed: the guest was linked without the SDK's linker script"
            ),
            "{e}"
        );
        assert!(e.contains(&format!("Create {}", build_rs.display())), "{e}");
        assert!(e.contains(LINKER_SCRIPT_LINE), "{e}");
        assert!(e.contains("fn main() {"), "{e}");
        std::fs::write(&build_rs, "fn main() {}\n").unwrap();
        let hint = linker_script_hint(&build_rs);
        assert!(
            hint.starts_with(&format!(
                "Add this line to fn main() in {}",
                build_rs.display()
            )),
            "{hint}"
        );
        assert!(
            hint.contains("== Ok(\"none\") {\n        println!(\"cargo:rustc-link-arg-bins=-Tparapet-guest.ld\");\n    }"),
            "{hint}"
        );
    }

    #[test]
    fn the_build_script_is_the_examples_one() {
        // The line the hint names is the one the examples link with.
        let examples = std::fs::read_to_string(root().join("examples/build.rs")).unwrap();
        assert!(examples.contains(LINKER_SCRIPT_LINE), "{examples}");
        assert!(BUILD_RS.contains(LINKER_SCRIPT_LINE));
        assert!(BUILD_RS.contains("CARGO_CFG_TARGET_OS"));
    }
}
