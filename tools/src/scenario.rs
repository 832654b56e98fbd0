//! Scenario files: which domains to boot, with which images and resources.
//!
//! A scenario is a TOML file with an optional `[machine]` table and one
//! `[[domain]]` table per domain. Every error names the file, the line and the
//! field, e.g. `scenarios/x.toml:12: domain[1].memory_mib: 4096 is out of range 2..=512`.

use std::fmt;
use std::path::{Path, PathBuf};

use parapet_abi::layout::{GUEST_POOL_BASE, RAM_BASE};
use serde::Deserialize;
use toml::Spanned;

/// One MiB.
pub const MIB: u64 = 1024 * 1024;

/// Default `machine.cpus`.
pub const DEFAULT_CPUS: u32 = 1;
/// Default `machine.memory_mib`.
pub const DEFAULT_MACHINE_MEMORY_MIB: u64 = 1024;
/// Default `machine.timeslice_ms`.
pub const DEFAULT_TIMESLICE_MS: u32 = 10;
/// Default `domain.memory_mib`.
pub const DEFAULT_DOMAIN_MEMORY_MIB: u64 = 32;
/// Longest `domain.cmdline`, in bytes.
pub const MAX_CMDLINE_BYTES: usize = 255;
/// Longest domain name.
pub const MAX_NAME_LEN: usize = 31;

/// An error in a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed or a value is invalid.
    #[error("{}", .0)]
    Invalid(Box<Located>),
}

/// A scenario error located in the file: path, line and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The scenario file, as given by the user.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted field path such as `domain[1].memory_mib`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl ScenarioError {
    /// The located error, if this is one.
    pub fn located(&self) -> Option<&Located> {
        match self {
            ScenarioError::Invalid(l) => Some(l),
            ScenarioError::Read { .. } => None,
        }
    }
}

/// The role of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The driver domain: owns the devices, runs the backends; domain id 0.
    Driver,
    /// An ordinary guest.
    Guest,
}

impl Role {
    /// The name used in scenario files and boot arguments.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Driver => "driver",
            Role::Guest => "guest",
        }
    }
}

/// What the hypervisor does when a domain crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnCrash {
    /// Destroy the domain; the others go on.
    #[default]
    Destroy,
}

/// Where a domain's image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A binary target of the workspace, built by `parapet build`.
    Bin(String),
    /// An existing ELF file.
    File(PathBuf),
}

/// The `[machine]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Physical CPUs (QEMU `-smp`).
    pub cpus: u32,
    /// RAM in MiB (QEMU `-m`).
    pub memory_mib: u64,
    /// Scheduler time slice passed to the hypervisor.
    pub timeslice_ms: u32,
    /// Run QEMU with `-icount shift=0`: deterministic, one instruction per
    /// virtual cycle, and the PMU counts instructions (for `bench micro`).
    pub icount: bool,
}

impl Default for Machine {
    fn default() -> Self {
        Machine {
            cpus: DEFAULT_CPUS,
            memory_mib: DEFAULT_MACHINE_MEMORY_MIB,
            timeslice_ms: DEFAULT_TIMESLICE_MS,
            icount: false,
        }
    }
}

/// One `[[domain]]` table, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Unique name, `[a-z0-9_-]{1,31}`.
    pub name: String,
    /// Driver or guest.
    pub role: Role,
    /// The image as written in the file.
    pub image: String,
    /// Where the image comes from.
    pub source: ImageSource,
    /// RAM in MiB.
    pub memory_mib: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Physical CPU the domain is pinned to.
    pub cpu: Option<u32>,
    /// Command line passed to the domain.
    pub cmdline: Option<String>,
    /// Crash policy.
    pub on_crash: OnCrash,
    /// Console input goes to this domain (default: the driver domain).
    pub console_input: bool,
    /// Its virtual disk (`vbd0`), served by the driver domain.
    pub disk: Option<DiskSpec>,
    /// Index of the `[[domain]]` table in the file (0-based).
    pub index: usize,
    /// Line of the `image` field.
    pub image_line: usize,
}

/// A guest's virtual disk: a raw image file, or a range of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// The image file (relative paths are resolved against the workspace root).
    pub image: PathBuf,
    /// Size of the image when `parapet` has to create it, in MiB.
    pub size_mib: u64,
    /// First sector of the range (default 0).
    pub start_sector: u64,
    /// Sectors in the range (default: to the end of the image).
    pub sectors: Option<u64>,
    /// The guest may not write.
    pub readonly: bool,
    /// `path:line: domain[N].disk`, for errors found when the image is opened.
    pub location: String,
}

/// Size of a disk image `parapet` creates when the scenario gives none.
pub const DEFAULT_DISK_MIB: u64 = 8;

/// A validated scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// The file, as given by the user.
    pub path: PathBuf,
    /// The machine.
    pub machine: Machine,
    /// The domains, driver first, then in file order.
    pub domains: Vec<Domain>,
}

impl Scenario {
    /// Names of the domains, driver first.
    pub fn domain_names(&self) -> Vec<String> {
        self.domains.iter().map(|d| d.name.clone()).collect()
    }

    /// Location prefix (`path:line`) of a domain's image field, for errors found later.
    pub fn image_location(&self, d: &Domain) -> String {
        format!(
            "{}:{}: domain[{}].image",
            self.path.display(),
            d.image_line,
            d.index
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    machine: Option<RawMachine>,
    #[serde(default)]
    domain: Vec<Spanned<RawDomain>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    cpus: Option<Spanned<i64>>,
    memory_mib: Option<Spanned<i64>>,
    timeslice_ms: Option<Spanned<i64>>,
    icount: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    name: Option<Spanned<String>>,
    role: Option<Spanned<String>>,
    image: Option<Spanned<String>>,
    memory_mib: Option<Spanned<i64>>,
    vcpus: Option<Spanned<i64>>,
    cpu: Option<Spanned<i64>>,
    cmdline: Option<Spanned<String>>,
    on_crash: Option<Spanned<String>>,
    console_input: Option<Spanned<bool>>,
    disk: Option<Spanned<RawDisk>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisk {
    image: String,
    size_mib: Option<Spanned<i64>>,
    start_sector: Option<Spanned<i64>>,
    sectors: Option<Spanned<i64>>,
    readonly: Option<bool>,
}

/// Reads and validates a scenario file.
///
/// Relative image paths are looked up in the scenario file's directory, then in
/// `workspace_root`.
pub fn load(path: &Path, workspace_root: &Path) -> Result<Scenario, ScenarioError> {
    let src = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_owned(),
        source,
    })?;
    let dir = path.parent().map(Path::to_owned).unwrap_or_default();
    parse(&src, path, &dir, workspace_root)
}

/// Parses and validates scenario text; `path` is only used in messages, `dir`
/// and `workspace_root` to resolve relative image paths.
pub fn parse(
    src: &str,
    path: &Path,
    dir: &Path,
    workspace_root: &Path,
) -> Result<Scenario, ScenarioError> {
    let cx = Cx { src, path };
    let raw: RawScenario = toml::from_str(src).map_err(|e| cx.toml_error(&e))?;

    let mut machine = Machine::default();
    if let Some(m) = &raw.machine {
        if let Some(v) = &m.cpus {
            machine.cpus = cx.int_in(v, "machine.cpus", 1, 8)? as u32;
        }
        if let Some(v) = &m.memory_mib {
            machine.memory_mib = cx.int_in(v, "machine.memory_mib", 512, 3072)? as u64;
        }
        if let Some(v) = &m.timeslice_ms {
            machine.timeslice_ms = cx.int_in(v, "machine.timeslice_ms", 1, 1000)? as u32;
        }
        machine.icount = m.icount.unwrap_or(false);
    }

    if raw.domain.is_empty() {
        return Err(cx.err(
            None,
            None,
            "no [[domain]] table: a scenario needs at least one domain".into(),
        ));
    }

    let mut domains: Vec<Domain> = Vec::new();
    let mut driver_seen: Option<usize> = None;
    for (i, sd) in raw.domain.iter().enumerate() {
        let d = sd.get_ref();
        let dline = cx.line(sd.span().start);
        let f = |name: &str| format!("domain[{i}].{name}");

        let name = match &d.name {
            None => return Err(cx.err(Some(dline), Some(f("name")), "missing (required)".into())),
            Some(n) => {
                let s = n.get_ref();
                let ok = !s.is_empty()
                    && s.len() <= MAX_NAME_LEN
                    && s.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    });
                if !ok {
                    return Err(cx.at(
                        n,
                        f("name"),
                        format!("{s:?} is not a valid name: use 1 to {MAX_NAME_LEN} characters from [a-z0-9_-]"),
                    ));
                }
                if let Some(prev) = domains.iter().find(|p| p.name == *s) {
                    return Err(cx.at(
                        n,
                        f("name"),
                        format!(
                            "duplicate domain name {s:?} (already used by domain[{}])",
                            prev.index
                        ),
                    ));
                }
                s.clone()
            }
        };

        let role = match &d.role {
            None => Role::Guest,
            Some(r) => match r.get_ref().as_str() {
                "driver" => {
                    if let Some(prev) = driver_seen {
                        return Err(cx.at(
                            r,
                            f("role"),
                            format!("a second driver domain: domain[{prev}] is already the driver (at most one is allowed)"),
                        ));
                    }
                    driver_seen = Some(i);
                    Role::Driver
                }
                "guest" => Role::Guest,
                other => {
                    return Err(cx.at(
                        r,
                        f("role"),
                        format!("unknown role {other:?}: expected \"driver\" or \"guest\""),
                    ))
                }
            },
        };

        let (image, image_line, source) = match &d.image {
            None => {
                return Err(cx.err(
                    Some(dline),
                    Some(f("image")),
                    "missing (required): a workspace binary name or an ELF file path".into(),
                ))
            }
            Some(img) => {
                let s = img.get_ref();
                let source = resolve_image(s, dir, workspace_root)
                    .map_err(|msg| cx.at(img, f("image"), msg))?;
                (s.clone(), cx.line(img.span().start), source)
            }
        };

        let memory_mib = match &d.memory_mib {
            None => DEFAULT_DOMAIN_MEMORY_MIB,
            Some(v) => {
                let max = if role == Role::Driver { 128 } else { 512 };
                cx.int_in(v, &f("memory_mib"), 2, max)? as u64
            }
        };
        let vcpus = match &d.vcpus {
            None => 1,
            Some(v) => cx.int_in(v, &f("vcpus"), 1, 8)? as u32,
        };
        let cpu = match &d.cpu {
            None => None,
            Some(v) => {
                let c = *v.get_ref();
                if c < 0 || c >= i64::from(machine.cpus) {
                    return Err(cx.at(
                        v,
                        f("cpu"),
                        format!(
                            "{c} is not a physical CPU: the machine has {} (machine.cpus), so use 0..={}",
                            machine.cpus,
                            machine.cpus - 1
                        ),
                    ));
                }
                Some(c as u32)
            }
        };
        let cmdline = match &d.cmdline {
            None => None,
            Some(c) => {
                let s = c.get_ref();
                if s.len() > MAX_CMDLINE_BYTES {
                    return Err(cx.at(
                        c,
                        f("cmdline"),
                        format!(
                            "{} bytes long, at most {MAX_CMDLINE_BYTES} allowed",
                            s.len()
                        ),
                    ));
                }
                if s.contains('\0') {
                    return Err(cx.at(c, f("cmdline"), "contains a NUL character".into()));
                }
                Some(s.clone())
            }
        };
        let on_crash = match &d.on_crash {
            None => OnCrash::Destroy,
            Some(o) => match o.get_ref().as_str() {
                "destroy" => OnCrash::Destroy,
                "restart" => {
                    return Err(cx.at(
                        o,
                        f("on_crash"),
                        "\"restart\" is not supported yet: only \"destroy\" is".into(),
                    ))
                }
                other => {
                    return Err(cx.at(
                        o,
                        f("on_crash"),
                        format!("unknown policy {other:?}: only \"destroy\" is supported"),
                    ))
                }
            },
        };

        let console_input = match &d.console_input {
            Some(c) if *c.get_ref() => {
                if let Some(prev) = domains.iter().find(|p| p.console_input) {
                    return Err(cx.at(
                        c,
                        f("console_input"),
                        format!(
                            "domain {:?} already takes the console input: only one domain may",
                            prev.name
                        ),
                    ));
                }
                true
            }
            _ => false,
        };

        let disk = match &d.disk {
            None => None,
            Some(sd) if role == Role::Driver => {
                return Err(cx.at(
                    sd,
                    f("disk"),
                    "the driver domain serves disks; give the disk to a guest".into(),
                ))
            }
            Some(sd) => {
                let raw = sd.get_ref();
                if raw.image.is_empty() || raw.image.contains('\0') || raw.image.contains(',') {
                    return Err(cx.at(
                        sd,
                        f("disk.image"),
                        "needs a file path (without commas)".into(),
                    ));
                }
                let image = Path::new(&raw.image);
                let image = if image.is_absolute() {
                    image.to_owned()
                } else {
                    workspace_root.join(image)
                };
                let size_mib = match &raw.size_mib {
                    None => DEFAULT_DISK_MIB,
                    Some(v) => cx.int_in(v, &f("disk.size_mib"), 1, 4096)? as u64,
                };
                let start_sector = match &raw.start_sector {
                    None => 0,
                    Some(v) => cx.int_in(v, &f("disk.start_sector"), 0, i64::MAX / 1024)? as u64,
                };
                let sectors = match &raw.sectors {
                    None => None,
                    Some(v) => Some(cx.int_in(v, &f("disk.sectors"), 1, i64::MAX / 1024)? as u64),
                };
                Some(DiskSpec {
                    image,
                    size_mib,
                    start_sector,
                    sectors,
                    readonly: raw.readonly.unwrap_or(false),
                    location: format!(
                        "{}:{}: domain[{i}].disk",
                        path.display(),
                        cx.line(sd.span().start)
                    ),
                })
            }
        };

        domains.push(Domain {
            name,
            role,
            image,
            source,
            memory_mib,
            vcpus,
            cpu,
            cmdline,
            on_crash,
            console_input,
            disk,
            index: i,
            image_line,
        });
    }

    // Total guest memory must fit in the guest pool.
    let reserved_mib = (GUEST_POOL_BASE - RAM_BASE) / MIB;
    let pool_mib = machine.memory_mib.saturating_sub(reserved_mib);
    let mut total = 0;
    for (d, sd) in domains.iter().zip(&raw.domain) {
        if d.role == Role::Driver {
            continue;
        }
        total += d.memory_mib;
        if total > pool_mib {
            let (line, field) = match &sd.get_ref().memory_mib {
                Some(v) => (
                    cx.line(v.span().start),
                    format!("domain[{}].memory_mib", d.index),
                ),
                None => (cx.line(sd.span().start), format!("domain[{}]", d.index)),
            };
            return Err(cx.err(
                Some(line),
                Some(field),
                format!(
                    "guest memory does not fit: the guests need {total} MiB so far, but the guest pool has only {pool_mib} MiB \
                     (machine.memory_mib {} minus {reserved_mib} MiB for the hypervisor, images and driver domain)",
                    machine.memory_mib
                ),
            ));
        }
    }

    // The driver domain goes first: the hypervisor gives it domain id 0.
    domains.sort_by_key(|d| (d.role != Role::Driver, d.index));

    Ok(Scenario {
        path: path.to_owned(),
        machine,
        domains,
    })
}

/// Decides whether `image` names an ELF file or a workspace binary.
fn resolve_image(image: &str, dir: &Path, root: &Path) -> Result<ImageSource, String> {
    if image.is_empty() {
        return Err("empty: expected a workspace binary name or an ELF file path".into());
    }
    let p = Path::new(image);
    let candidates: Vec<PathBuf> = if p.is_absolute() {
        vec![p.to_owned()]
    } else {
        vec![dir.join(p), root.join(p)]
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
    let looks_like_name = image
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
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

struct Cx<'a> {
    src: &'a str,
    path: &'a Path,
}

impl Cx<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err(&self, line: Option<usize>, field: Option<String>, message: String) -> ScenarioError {
        ScenarioError::Invalid(Box::new(Located {
            path: self.path.to_owned(),
            line,
            field,
            message,
        }))
    }

    fn at<T>(&self, v: &Spanned<T>, field: String, message: String) -> ScenarioError {
        self.err(Some(self.line(v.span().start)), Some(field), message)
    }

    fn int_in(
        &self,
        v: &Spanned<i64>,
        field: &str,
        lo: i64,
        hi: i64,
    ) -> Result<i64, ScenarioError> {
        let x = *v.get_ref();
        if (lo..=hi).contains(&x) {
            Ok(x)
        } else {
            Err(self.at(
                v,
                field.to_owned(),
                format!("{x} is out of range {lo}..={hi}"),
            ))
        }
    }

    fn toml_error(&self, e: &toml::de::Error) -> ScenarioError {
        let message = e.message().trim().to_owned();
        match e.span() {
            Some(span) => {
                let field = field_at(self.src, span.start);
                self.err(Some(self.line(span.start)), field, message)
            }
            None => self.err(None, None, message),
        }
    }
}

/// Guesses the dotted field path of the key on the line containing `offset`,
/// from the table headers above it (`machine`, `domain[N]`).
fn field_at(src: &str, offset: usize) -> Option<String> {
    let offset = offset.min(src.len());
    let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
    let mut section: Option<String> = None;
    let mut domain_idx: usize = 0;
    let mut header = |line: &str, section: &mut Option<String>| -> Option<String> {
        let t = strip_comment(line).trim();
        if let Some(inner) = t.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            let name = inner.trim();
            let s = if name == "domain" {
                domain_idx += 1;
                format!("domain[{}]", domain_idx - 1)
            } else {
                name.to_owned()
            };
            *section = Some(s.clone());
            Some(s)
        } else if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let s = inner.trim().to_owned();
            *section = Some(s.clone());
            Some(s)
        } else {
            None
        }
    };
    for line in src[..line_start].lines() {
        header(line, &mut section);
    }
    let current = &src[line_start..line_end];
    if let Some(h) = header(current, &mut section) {
        return Some(h);
    }
    let code = strip_comment(current);
    let key = code
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches(|c| c == '"' || c == '\'').to_owned());
    match (section, key) {
        (Some(s), Some(k)) if !k.is_empty() => Some(format!("{s}.{k}")),
        (None, Some(k)) if !k.is_empty() => Some(k),
        (s, _) => s,
    }
}

fn strip_comment(line: &str) -> &str {
    // Good enough for locating keys: a '#' inside a string on an erroneous line
    // only shortens what we look at.
    line.split('#').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn parse_str(src: &str) -> Result<Scenario, ScenarioError> {
        parse(
            src,
            Path::new("scenarios/x.toml"),
            Path::new("scenarios"),
            &root(),
        )
    }

    fn err(src: &str) -> Located {
        match parse_str(src) {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(e) => e
                .located()
                .cloned()
                .unwrap_or_else(|| panic!("not located: {e}")),
        }
    }

    fn assert_err(src: &str, line: usize, field: &str, contains: &str) {
        let e = err(src);
        let text = e.to_string();
        assert_eq!(e.line, Some(line), "{text}");
        assert_eq!(e.field.as_deref(), Some(field), "{text}");
        assert!(
            text.contains(contains),
            "{text:?} should contain {contains:?}"
        );
        assert!(
            text.starts_with(&format!("scenarios/x.toml:{line}: {field}: ")),
            "{text}"
        );
    }

    const DEMO: &str = r#"# demo
[machine]
cpus = 2
memory_mib = 1024
timeslice_ms = 5

[[domain]]
name = "guest-a"
image = "demo-guest"
cpu = 1

[[domain]]
name = "driver"
role = "driver"
image = "driver-domain"
memory_mib = 64
cpu = 0
cmdline = "a,b c"
on_crash = "destroy"
"#;

    #[test]
    fn parses_demo_and_puts_driver_first() {
        let s = parse_str(DEMO).unwrap();
        assert_eq!(
            s.machine,
            Machine {
                cpus: 2,
                memory_mib: 1024,
                timeslice_ms: 5,
                icount: false,
            }
        );
        assert_eq!(s.domain_names(), ["driver", "guest-a"]);
        let d = &s.domains[0];
        assert_eq!(d.role, Role::Driver);
        assert_eq!(d.memory_mib, 64);
        assert_eq!(d.cpu, Some(0));
        assert_eq!(d.cmdline.as_deref(), Some("a,b c"));
        assert_eq!(d.source, ImageSource::Bin("driver-domain".into()));
        assert_eq!(d.index, 1);
        assert_eq!(d.image_line, 15);
        let g = &s.domains[1];
        assert_eq!(g.role, Role::Guest);
        assert_eq!(g.memory_mib, DEFAULT_DOMAIN_MEMORY_MIB);
        assert_eq!(g.vcpus, 1);
        assert_eq!(g.cmdline, None);
    }

    #[test]
    fn defaults() {
        let s = parse_str("[[domain]]\nname = \"a\"\nimage = \"x\"\n").unwrap();
        assert_eq!(s.machine, Machine::default());
        assert_eq!(s.domains.len(), 1);
    }

    #[test]
    fn unknown_field() {
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\nmemory = 3\n",
            4,
            "domain[0].memory",
            "unknown field `memory`",
        );
        assert_err(
            "[machine]\ncpu = 2\n[[domain]]\nname = \"a\"\nimage = \"x\"\n",
            2,
            "machine.cpu",
            "unknown field",
        );
    }

    #[test]
    fn unknown_table() {
        let e = err("[machin]\ncpus = 2\n[[domain]]\nname = \"a\"\nimage = \"x\"\n");
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.to_string().contains("machin"), "{e}");
    }

    #[test]
    fn wrong_type() {
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\n\n[[domain]]\nname = \"b\"\nimage = \"x\"\nmemory_mib = \"64\"\n",
            8,
            "domain[1].memory_mib",
            "invalid type",
        );
        assert_err(
            "[machine]\ncpus = 1.5\n[[domain]]\nname = \"a\"\nimage = \"x\"\n",
            2,
            "machine.cpus",
            "invalid type",
        );
    }

    #[test]
    fn syntax_error_has_line() {
        let e = err("[[domain]]\nname = \"a\nimage = \"x\"\n");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn out_of_range() {
        let two =
            "[[domain]]\nname = \"a\"\nimage = \"x\"\n\n[[domain]]\nname = \"b\"\nimage = \"x\"\n";
        assert_err(
            &format!("{two}memory_mib = 4096\n"),
            8,
            "domain[1].memory_mib",
            "4096 is out of range 2..=512",
        );
        assert_err(
            "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"x\"\nmemory_mib = 256\n",
            5,
            "domain[0].memory_mib",
            "256 is out of range 2..=128",
        );
        assert_err(
            "[machine]\ncpus = 9\n[[domain]]\nname = \"a\"\nimage = \"x\"\n",
            2,
            "machine.cpus",
            "9 is out of range 1..=8",
        );
        assert_err(
            "[machine]\nmemory_mib = 256\n[[domain]]\nname = \"a\"\nimage = \"x\"\n",
            2,
            "machine.memory_mib",
            "out of range 512..=3072",
        );
        assert_err(
            "[machine]\ntimeslice_ms = 0\n[[domain]]\nname = \"a\"\nimage = \"x\"\n",
            2,
            "machine.timeslice_ms",
            "out of range 1..=1000",
        );
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\nvcpus = -1\n",
            4,
            "domain[0].vcpus",
            "-1 is out of range 1..=8",
        );
    }

    #[test]
    fn duplicate_name() {
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\n[[domain]]\nname = \"a\"\nimage = \"x\"\n",
            5,
            "domain[1].name",
            "duplicate domain name \"a\"",
        );
    }

    #[test]
    fn bad_name() {
        assert_err(
            "[[domain]]\nname = \"Guest A\"\nimage = \"x\"\n",
            2,
            "domain[0].name",
            "not a valid name",
        );
        assert_err(
            &format!("[[domain]]\nname = \"{}\"\nimage = \"x\"\n", "a".repeat(32)),
            2,
            "domain[0].name",
            "not a valid name",
        );
    }

    #[test]
    fn one_console_input_domain() {
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\nconsole_input = true\n[[domain]]\nname = \"b\"\nimage = \"x\"\nconsole_input = true\n",
            8,
            "domain[1].console_input",
            "already takes the console input",
        );
    }

    #[test]
    fn two_drivers() {
        assert_err(
            "[[domain]]\nname = \"a\"\nrole = \"driver\"\nimage = \"x\"\n[[domain]]\nname = \"b\"\nrole = \"driver\"\nimage = \"x\"\n",
            7,
            "domain[1].role",
            "at most one",
        );
    }

    #[test]
    fn bad_role_and_on_crash() {
        assert_err(
            "[[domain]]\nname = \"a\"\nrole = \"dom0\"\nimage = \"x\"\n",
            3,
            "domain[0].role",
            "unknown role",
        );
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\non_crash = \"restart\"\n",
            4,
            "domain[0].on_crash",
            "not supported yet",
        );
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\non_crash = \"reboot\"\n",
            4,
            "domain[0].on_crash",
            "only \"destroy\"",
        );
    }

    #[test]
    fn bad_pin() {
        assert_err(
            "[machine]\ncpus = 2\n[[domain]]\nname = \"a\"\nimage = \"x\"\ncpu = 2\n",
            6,
            "domain[0].cpu",
            "not a physical CPU",
        );
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\ncpu = 1\n",
            4,
            "domain[0].cpu",
            "0..=0",
        );
    }

    #[test]
    fn memory_overflow() {
        // 1024 MiB machine: 768 MiB guest pool.
        let mut s = String::new();
        for (i, m) in [512, 200, 100].iter().enumerate() {
            s += &format!("[[domain]]\nname = \"g{i}\"\nimage = \"x\"\nmemory_mib = {m}\n\n");
        }
        assert_err(
            &s,
            14,
            "domain[2].memory_mib",
            "guest pool has only 768 MiB",
        );
        // The driver domain does not count.
        let ok = "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"x\"\nmemory_mib = 128\n\
                  [[domain]]\nname = \"g\"\nimage = \"x\"\nmemory_mib = 512\n\
                  [[domain]]\nname = \"h\"\nimage = \"x\"\nmemory_mib = 256\n";
        parse_str(ok).unwrap();
    }

    #[test]
    fn missing_required() {
        assert_err(
            "[[domain]]\nname = \"a\"\n",
            1,
            "domain[0].image",
            "missing",
        );
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\n\n[[domain]]\nimage = \"x\"\n",
            5,
            "domain[1].name",
            "missing",
        );
        let e = err("[machine]\ncpus = 1\n");
        assert!(e.to_string().contains("at least one domain"), "{e}");
    }

    #[test]
    fn cmdline_checks() {
        assert_err(
            &format!(
                "[[domain]]\nname = \"a\"\nimage = \"x\"\ncmdline = \"{}\"\n",
                "x".repeat(256)
            ),
            4,
            "domain[0].cmdline",
            "256 bytes",
        );
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\ncmdline = \"a\\u0000b\"\n",
            4,
            "domain[0].cmdline",
            "NUL",
        );
    }

    #[test]
    fn image_paths() {
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"images/nope.elf\"\n",
            3,
            "domain[0].image",
            "not found",
        );
        // Cargo.toml exists relative to the workspace root but is not an ELF file.
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"Cargo.toml\"\n",
            3,
            "domain[0].image",
            "not an ELF file",
        );
        let dir = std::env::temp_dir().join(format!("parapet-scn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let elf = dir.join("img.elf");
        std::fs::write(&elf, b"\x7fELF\x02\x01\x01\0").unwrap();
        let s = parse(
            "[[domain]]\nname = \"a\"\nimage = \"img.elf\"\n",
            &dir.join("s.toml"),
            &dir,
            &root(),
        )
        .unwrap();
        assert_eq!(s.domains[0].source, ImageSource::File(dir.join("img.elf")));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_file() {
        let e = load(Path::new("scenarios/does-not-exist.toml"), &root()).unwrap_err();
        assert!(matches!(e, ScenarioError::Read { .. }));
        assert!(
            e.to_string().contains("scenarios/does-not-exist.toml"),
            "{e}"
        );
    }

    #[test]
    fn shipped_scenarios_parse() {
        for name in ["demo", "fault", "bench-micro"] {
            let p = root().join("scenarios").join(format!("{name}.toml"));
            let s = load(&p, &root()).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.domains.is_empty());
        }
    }
}
