//! Building the hypervisor and the domain images with cargo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::home;
use crate::image::{self, CrateError, CrateImage};
use crate::scenario::{ImageSource, Scenario};

/// Target of the hypervisor (never touches the guests' FP/SIMD registers).
pub const HYPERVISOR_TARGET: &str = "aarch64-unknown-none-softfloat";
/// Target of the domain images.
pub const IMAGE_TARGET: &str = "aarch64-unknown-none";
/// Package of the hypervisor.
pub const HYPERVISOR_PACKAGE: &str = "parapet-hypervisor";
/// Binary of the hypervisor.
pub const HYPERVISOR_BIN: &str = "parapet-hypervisor";
/// Cargo profile of the hypervisor with its trace hooks (`--features trace`).
pub const TRACED_PROFILE: &str = "release-traced";

/// A build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Parapet checkout was not found.
    #[error(transparent)]
    Home(#[from] home::HomeError),
    /// A guest crate of its own could not be inspected or built.
    #[error(transparent)]
    Crate(#[from] CrateError),
    /// cargo could not be started.
    #[error("cannot run {cargo}: {source}")]
    Spawn {
        /// The cargo program.
        cargo: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A cargo command failed.
    #[error("`{0}` failed (see cargo's messages above)")]
    CargoFailed(String),
    /// `cargo metadata` printed something we do not understand.
    #[error("cannot understand `cargo metadata` output: {0}")]
    Metadata(String),
    /// A scenario names a binary that is not in the workspace.
    #[error(
        "{location}: no binary target named '{name}' in the workspace; available: {available}"
    )]
    UnknownBin {
        /// `path:line: domain[i].image`.
        location: String,
        /// The name.
        name: String,
        /// Available bins, comma-separated.
        available: String,
    },
    /// An image file cannot be read.
    #[error("cannot read image {path}: {source} (not built yet? run `cargo parapet build` first)")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The Parapet checkout (the workspace root): see [`home::checkout_root`].
pub fn workspace_root() -> Result<PathBuf, BuildError> {
    Ok(home::checkout_root()?)
}

/// What `cargo metadata` tells us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workspace {
    /// The root directory.
    pub root: PathBuf,
    /// The target directory.
    pub target_dir: PathBuf,
    /// Binary target name → package name.
    pub bins: BTreeMap<String, String>,
    /// The scenario's guest crates of their own, by manifest (see
    /// [`resolve_crates`]).
    pub crates: BTreeMap<PathBuf, CrateImage>,
}

impl Workspace {
    /// Path of the built hypervisor ELF.
    pub fn hypervisor_elf(&self) -> PathBuf {
        self.target_dir
            .join(HYPERVISOR_TARGET)
            .join("release")
            .join(HYPERVISOR_BIN)
    }

    /// Path of the built hypervisor ELF with its trace hooks.
    pub fn traced_hypervisor_elf(&self) -> PathBuf {
        self.target_dir
            .join(HYPERVISOR_TARGET)
            .join(TRACED_PROFILE)
            .join(HYPERVISOR_BIN)
    }

    /// Path of a built image.
    pub fn image_elf(&self, bin: &str) -> PathBuf {
        self.target_dir.join(IMAGE_TARGET).join("release").join(bin)
    }

    /// Path of every domain's image, driver first (not checked to exist).
    pub fn image_paths(&self, scenario: &Scenario) -> Result<Vec<PathBuf>, BuildError> {
        scenario
            .domains
            .iter()
            .map(|d| match &d.source {
                ImageSource::File(p) => Ok(p.clone()),
                ImageSource::Bin(name) => {
                    self.package_of(name, &scenario.image_location(d))?;
                    Ok(self.image_elf(name))
                }
                ImageSource::Crate(manifest) => self
                    .crates
                    .get(manifest)
                    .map(CrateImage::elf)
                    .ok_or_else(|| {
                        BuildError::Metadata(format!("{} was not inspected", manifest.display()))
                    }),
            })
            .collect()
    }

    fn package_of(&self, bin: &str, location: &str) -> Result<&str, BuildError> {
        self.bins
            .get(bin)
            .map(String::as_str)
            .ok_or_else(|| BuildError::UnknownBin {
                location: location.to_owned(),
                name: bin.to_owned(),
                available: self.available_bins(),
            })
    }

    fn available_bins(&self) -> String {
        let v: Vec<&str> = self
            .bins
            .keys()
            .map(String::as_str)
            .filter(|b| *b != "parapet" && *b != HYPERVISOR_BIN)
            .collect();
        if v.is_empty() {
            "(none)".to_owned()
        } else {
            v.join(", ")
        }
    }

    /// Groups the scenario's workspace binaries by package: one cargo call each.
    pub fn plan(&self, scenario: &Scenario) -> Result<Vec<BuildStep>, BuildError> {
        let mut steps: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in &scenario.domains {
            if let ImageSource::Bin(name) = &d.source {
                let pkg = self.package_of(name, &scenario.image_location(d))?;
                let bins = steps.entry(pkg.to_owned()).or_default();
                if !bins.contains(name) {
                    bins.push(name.clone());
                }
            }
        }
        Ok(steps
            .into_iter()
            .map(|(package, bins)| BuildStep {
                package,
                bins,
                target: IMAGE_TARGET,
                profile: "release",
                features: None,
            })
            .collect())
    }
}

/// One `cargo build` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStep {
    /// `-p PACKAGE`.
    pub package: String,
    /// `--bin NAME` for each.
    pub bins: Vec<String>,
    /// `--target`.
    pub target: &'static str,
    /// `--profile` (`release`: `--release`).
    pub profile: &'static str,
    /// `--features`, if any.
    pub features: Option<&'static str>,
}

impl BuildStep {
    /// The hypervisor's build.
    pub fn hypervisor() -> Self {
        BuildStep {
            package: HYPERVISOR_PACKAGE.to_owned(),
            bins: vec![HYPERVISOR_BIN.to_owned()],
            target: HYPERVISOR_TARGET,
            profile: "release",
            features: None,
        }
    }

    /// The build of the hypervisor with its trace hooks.
    pub fn traced_hypervisor() -> Self {
        BuildStep {
            profile: TRACED_PROFILE,
            features: Some("trace"),
            ..Self::hypervisor()
        }
    }

    /// The arguments after `cargo`.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["build".to_owned()];
        if self.profile == "release" {
            a.push("--release".to_owned());
        } else {
            a.push("--profile".to_owned());
            a.push(self.profile.to_owned());
        }
        if let Some(f) = self.features {
            a.push("--features".to_owned());
            a.push(f.to_owned());
        }
        a.push("-p".to_owned());
        a.push(self.package.clone());
        for b in &self.bins {
            a.push("--bin".to_owned());
            a.push(b.clone());
        }
        a.push("--target".to_owned());
        a.push(self.target.to_owned());
        a
    }

    /// Runs the build in `root`.
    pub fn run(&self, root: &Path) -> Result<(), BuildError> {
        let args = self.args();
        let shown = format!("cargo {}", args.join(" "));
        eprintln!("parapet: {shown}");
        let mut cmd = home::cargo_in(root);
        let st = cmd
            .args(&args)
            .stdin(Stdio::null())
            .status()
            .map_err(|source| BuildError::Spawn {
                cargo: cmd.get_program().to_string_lossy().into_owned(),
                source,
            })?;
        if st.success() {
            Ok(())
        } else {
            Err(BuildError::CargoFailed(shown))
        }
    }
}

/// Runs `cargo metadata --no-deps` in `root`.
pub fn metadata(root: &Path) -> Result<Workspace, BuildError> {
    let mut cmd = home::cargo_in(root);
    let out = cmd
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| BuildError::Spawn {
            cargo: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(BuildError::CargoFailed(
            "cargo metadata --no-deps --format-version 1".into(),
        ));
    }
    parse_metadata(&out.stdout, root)
}

/// Parses `cargo metadata` JSON.
pub fn parse_metadata(json: &[u8], root: &Path) -> Result<Workspace, BuildError> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| BuildError::Metadata(e.to_string()))?;
    let target_dir = v["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let packages = v["packages"]
        .as_array()
        .ok_or_else(|| BuildError::Metadata("no `packages` array".into()))?;
    let mut bins = BTreeMap::new();
    for p in packages {
        let Some(pkg) = p["name"].as_str() else {
            continue;
        };
        for t in p["targets"].as_array().into_iter().flatten() {
            let is_bin = t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"));
            if let (true, Some(name)) = (is_bin, t["name"].as_str()) {
                bins.insert(name.to_owned(), pkg.to_owned());
            }
        }
    }
    Ok(Workspace {
        root: root.to_owned(),
        target_dir,
        bins,
        crates: BTreeMap::new(),
    })
}

/// Inspects the scenario's guest crates of their own (`cargo metadata` in
/// each): which binary each builds, and where.
pub fn resolve_crates(scenario: &Scenario) -> Result<BTreeMap<PathBuf, CrateImage>, BuildError> {
    let mut crates = BTreeMap::new();
    for d in &scenario.domains {
        if let ImageSource::Crate(manifest) = &d.source {
            if !crates.contains_key(manifest) {
                crates.insert(manifest.clone(), image::inspect(manifest)?);
            }
        }
    }
    Ok(crates)
}

/// The checkout's workspace and the scenario's crates, every image named
/// resolved, nothing built (`--no-build`).
pub fn resolve_all(root: &Path, scenario: &Scenario) -> Result<Workspace, BuildError> {
    let mut ws = metadata(root)?;
    ws.plan(scenario)?; // names every unknown image
    ws.crates = resolve_crates(scenario)?;
    Ok(ws)
}

/// Builds the scenario's guest crates of their own (each in its directory),
/// the hypervisor and every workspace image the scenario names (in `root`).
/// Returns the workspace description (for the image paths).
pub fn build_all(root: &Path, scenario: &Scenario) -> Result<Workspace, BuildError> {
    let mut ws = metadata(root)?;
    // Resolve every name before the long builds start.
    let steps = ws.plan(scenario)?;
    ws.crates = resolve_crates(scenario)?;
    // The guest crates first: their messages are the ones to read.
    for c in ws.crates.values() {
        c.build()?;
    }
    BuildStep::hypervisor().run(root)?;
    for s in &steps {
        s.run(root)?;
    }
    Ok(ws)
}

/// Size of a file in bytes.
pub fn file_size(path: &Path) -> Result<u64, BuildError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|source| BuildError::Image {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario;

    const META: &str = r#"{"packages":[
      {"name":"parapet-examples","targets":[
         {"name":"parapet_examples","kind":["lib"]},
         {"name":"demo-guest","kind":["bin"]},
         {"name":"fault-guest","kind":["bin"]}]},
      {"name":"parapet-backends","targets":[{"name":"driver-domain","kind":["bin"]}]},
      {"name":"parapet-tools","targets":[{"name":"parapet","kind":["bin"]}]}
    ],"target_directory":"/w/target","workspace_root":"/w"}"#;

    fn ws() -> Workspace {
        parse_metadata(META.as_bytes(), Path::new("/w")).unwrap()
    }

    fn scen(src: &str) -> Scenario {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        scenario::parse(src, Path::new("s.toml"), Path::new("."), &root).unwrap()
    }

    #[test]
    fn metadata_bins() {
        let w = ws();
        assert_eq!(w.bins["demo-guest"], "parapet-examples");
        assert_eq!(w.bins["driver-domain"], "parapet-backends");
        assert!(!w.bins.contains_key("parapet_examples"));
        assert_eq!(
            w.hypervisor_elf(),
            Path::new("/w/target/aarch64-unknown-none-softfloat/release/parapet-hypervisor")
        );
    }

    #[test]
    fn plan_groups_by_package() {
        let s = scen(
            "[[domain]]\nname=\"a\"\nimage=\"demo-guest\"\n[[domain]]\nname=\"b\"\nimage=\"fault-guest\"\n\
             [[domain]]\nname=\"c\"\nimage=\"demo-guest\"\n[[domain]]\nname=\"d\"\nrole=\"driver\"\nimage=\"driver-domain\"\n",
        );
        let plan = ws().plan(&s).unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(
            plan[0].args(),
            [
                "build",
                "--release",
                "-p",
                "parapet-backends",
                "--bin",
                "driver-domain",
                "--target",
                "aarch64-unknown-none"
            ]
        );
        assert_eq!(plan[1].package, "parapet-examples");
        assert_eq!(plan[1].bins, ["demo-guest", "fault-guest"]);
        let paths = ws().image_paths(&s).unwrap();
        assert_eq!(
            paths[0],
            Path::new("/w/target/aarch64-unknown-none/release/driver-domain")
        );
    }

    #[test]
    fn hypervisor_step() {
        assert_eq!(
            BuildStep::hypervisor().args().join(" "),
            "build --release -p parapet-hypervisor --bin parapet-hypervisor --target aarch64-unknown-none-softfloat"
        );
        assert_eq!(
            BuildStep::traced_hypervisor().args().join(" "),
            "build --profile release-traced --features trace -p parapet-hypervisor --bin parapet-hypervisor --target aarch64-unknown-none-softfloat"
        );
        let ws = Workspace {
            target_dir: PathBuf::from("/w/target"),
            ..Workspace::default()
        };
        assert_eq!(
            ws.traced_hypervisor_elf(),
            Path::new("/w/target/aarch64-unknown-none-softfloat/release-traced/parapet-hypervisor")
        );
    }

    #[test]
    fn unknown_bin_lists_available() {
        let s = scen("\n[[domain]]\nname=\"a\"\nimage=\"nope\"\n");
        let e = ws().plan(&s).unwrap_err().to_string();
        assert!(
            e.starts_with("s.toml:4: domain[0].image: no binary target named 'nope'"),
            "{e}"
        );
        assert!(
            e.contains("available: demo-guest, driver-domain, fault-guest"),
            "{e}"
        );
    }

    #[test]
    fn finds_workspace_root() {
        let r = workspace_root().unwrap();
        assert!(r.join("tools/Cargo.toml").is_file());
    }
}
