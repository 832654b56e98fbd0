//! Tests of parsing and of the machine and domain fields.

use parapet_abi::layout::MAX_DOMAINS;

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(super) fn parse_str(src: &str) -> Result<Scenario, ScenarioError> {
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

pub(super) fn assert_err(src: &str, line: usize, field: &str, contains: &str) {
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
fn crash_policies() {
    let s = parse_str(
        "[[domain]]\nname = \"a\"\nimage = \"x\"\non_crash = \"restart\"\n\
         [[domain]]\nname = \"b\"\nimage = \"x\"\non_crash = \"destroy\"\n\
         [[domain]]\nname = \"c\"\nimage = \"x\"\n",
    )
    .unwrap();
    let policies: Vec<OnCrash> = s.domains.iter().map(|d| d.on_crash).collect();
    assert_eq!(
        policies,
        [OnCrash::Restart, OnCrash::Destroy, OnCrash::Destroy]
    );
    assert_eq!(OnCrash::Restart.as_str(), "restart");
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
        "[[domain]]\nname = \"a\"\nimage = \"x\"\non_crash = \"reboot\"\n",
        4,
        "domain[0].on_crash",
        "\"destroy\" or \"restart\"",
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
fn at_most_max_domains() {
    let domains = |n: usize| -> String {
        (0..n)
            .map(|i| format!("[[domain]]\nname = \"g{i}\"\nimage = \"x\"\nmemory_mib = 2\n\n"))
            .collect()
    };
    // Exactly the limit is fine (the driver domain counts like any other).
    let mut src = domains(MAX_DOMAINS);
    src = src.replacen("image = \"x\"\n", "role = \"driver\"\nimage = \"x\"\n", 1);
    assert_eq!(parse_str(&src).unwrap().domains.len(), MAX_DOMAINS);
    // One more is refused at its [[domain]] line, whatever its fields.
    let over = src.clone() + "[[domain]]\nname = \"BAD NAME\"\n";
    let line = src.lines().count() + 1;
    assert_err(
        &over,
        line,
        "domain[32]",
        "too many domains: the hypervisor runs at most 32 (driver domain included) and this file has 33",
    );
    assert!(err(&(over + &domains(2)))
        .to_string()
        .contains("this file has 35"));
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
