//! The QEMU command line (module placement, bootargs, argv); running QEMU
//! while streaming its console is in [`run`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parapet_abi::bootargs::{DomainConfig, HvOptions};
use parapet_abi::layout::{MODULE_AREA_BASE, MODULE_AREA_END};

use crate::scenario::{Domain, Scenario};

/// Alignment of each domain image in the module area.
pub const MODULE_ALIGN: u64 = 64 * 1024;
/// How long QEMU may take to exit once the hypervisor said it is done.
pub const EXIT_GRACE: Duration = Duration::from_secs(10);

/// QEMU could not be run, or the images do not fit.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The images do not fit in the module area.
    #[error("the domain images do not fit in the module area {base:#x}..{end:#x}: image of '{domain}' ({size} bytes) would end at {would_end:#x}")]
    ModulesTooBig {
        /// The domain whose image overflows.
        domain: String,
        /// Its size.
        size: u64,
        /// Where it would end.
        would_end: u64,
        /// Module area start.
        base: u64,
        /// Module area end.
        end: u64,
    },
    /// A path is not valid UTF-8 (QEMU option values must be text).
    #[error("path {0} is not valid UTF-8")]
    NonUtf8Path(PathBuf),
    /// QEMU could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the console failed.
    #[error("console I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Addresses of consecutive images of these sizes in the module area, each
/// 64 KiB-aligned after the previous one's end.
pub fn place_modules(images: &[(&str, u64)]) -> Result<Vec<u64>, QemuError> {
    let mut next = MODULE_AREA_BASE;
    let mut out = Vec::with_capacity(images.len());
    for (domain, size) in images {
        let addr = next.div_ceil(MODULE_ALIGN) * MODULE_ALIGN;
        let end = addr.saturating_add(*size);
        if end > MODULE_AREA_END {
            return Err(QemuError::ModulesTooBig {
                domain: (*domain).to_owned(),
                size: *size,
                would_end: end,
                base: MODULE_AREA_BASE,
                end: MODULE_AREA_END,
            });
        }
        out.push(addr);
        next = end;
    }
    Ok(out)
}

/// The boot arguments the hypervisor reads for one domain, written by the
/// hypervisor's own codec ([`DomainConfig`]'s `Display`).
pub fn bootargs(d: &Domain) -> String {
    DomainConfig {
        name: &d.name,
        role: d.role,
        memory: d.memory_mib * crate::scenario::MIB,
        vcpus: d.vcpus,
        cpu: d.cpu,
        console_input: d.console_input,
        on_crash: d.on_crash,
        control: d.control,
        autostart: d.autostart,
        cmdline: d.cmdline.as_deref().unwrap_or(""),
    }
    .to_string()
}

/// Escapes a value for a QEMU option list: a comma is doubled.
pub fn escape_opt(s: &str) -> String {
    s.replace(',', ",,")
}

fn utf8(p: &Path) -> Result<&str, QemuError> {
    p.to_str()
        .ok_or_else(|| QemuError::NonUtf8Path(p.to_owned()))
}

/// What a traced boot adds: the hypervisor's buffer size, and QEMU's monitor
/// socket through which `parapet` reads the buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceArgs {
    /// Buffer per CPU, KiB.
    pub kib: u64,
    /// The QMP socket QEMU listens on.
    pub qmp: PathBuf,
}

/// The QEMU arguments (without the program name) to boot `scenario`, given the
/// hypervisor ELF and each domain's image path and size (driver first, as in
/// `scenario.domains`).
pub fn args(
    scenario: &Scenario,
    hypervisor: &Path,
    images: &[(PathBuf, u64)],
    disks: &[crate::disks::AttachedDisk],
    forwards: &[crate::nets::Forward],
    trace: Option<&TraceArgs>,
) -> Result<Vec<OsString>, QemuError> {
    let m = &scenario.machine;
    let named: Vec<(&str, u64)> = scenario
        .domains
        .iter()
        .zip(images)
        .map(|(d, (_, size))| (d.name.as_str(), *size))
        .collect();
    let addrs = place_modules(&named)?;
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: &str| a.push(s.into());
    push("-M");
    push("virt,virtualization=on,gic-version=3");
    push("-cpu");
    push("max");
    push("-m");
    push(&format!("{}M", m.memory_mib));
    push("-smp");
    push(&m.cpus.to_string());
    if m.icount {
        push("-icount");
        push("shift=0");
    }
    for s in [
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ] {
        push(s);
    }
    push("-kernel");
    a.push(hypervisor.as_os_str().to_owned());
    let mut push = |s: &str| a.push(s.into());
    push("-append");
    let hv = HvOptions {
        timeslice_ms: u64::from(m.timeslice_ms),
        trace_kib: trace.map_or(0, |t| t.kib),
    };
    push(&hv.to_string());
    if let Some(t) = trace {
        // The monitor reads the trace buffers; after the power-off QEMU
        // keeps the memory until the last read, then is told to quit.
        push("-no-shutdown");
        push("-qmp");
        push(&format!(
            "unix:{},server=on,wait=off",
            escape_opt(utf8(&t.qmp)?)
        ));
    }
    push("-netdev");
    push(&crate::nets::netdev(forwards));
    push("-device");
    push(&crate::nets::nic_device());
    for (i, disk) in disks.iter().enumerate() {
        push("-drive");
        push(&format!(
            "file={},format=raw,if=none,id=drive{i}",
            escape_opt(utf8(&disk.path)?)
        ));
        push("-device");
        push(&format!(
            "virtio-blk-device,drive=drive{i},serial={}",
            disk.serial
        ));
    }
    for ((d, (path, _)), addr) in scenario.domains.iter().zip(images).zip(addrs) {
        a.push("-device".into());
        a.push(
            format!(
                "guest-loader,addr={addr:#x},kernel={},bootargs={}",
                escape_opt(utf8(path)?),
                escape_opt(&bootargs(d))
            )
            .into(),
        );
    }
    Ok(a)
}

/// Renders argv for display (shell-like quoting, for humans only).
pub fn display_command(program: &str, args: &[OsString]) -> String {
    let mut s = program.to_owned();
    for a in args {
        let a = a.to_string_lossy();
        s.push(' ');
        if a.contains([' ', '"', '\'']) {
            s += &format!("'{}'", a.replace('\'', "'\\''"));
        } else {
            s += &a;
        }
    }
    s
}

mod run;
pub use run::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario;

    fn scen(src: &str) -> Scenario {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        scenario::parse(src, Path::new("s.toml"), Path::new("."), &root).unwrap()
    }

    const SRC: &str = r#"
[machine]
cpus = 2
memory_mib = 2048
timeslice_ms = 7
[[domain]]
name = "guest-a"
image = "demo-guest"
cpu = 1
cmdline = "x=1,y=2 z"
[[domain]]
name = "driver"
role = "driver"
image = "driver-domain"
memory_mib = 64
vcpus = 2
"#;

    #[test]
    fn placement_is_aligned_and_consecutive() {
        let a = place_modules(&[("a", 100), ("b", 0x10000), ("c", 1)]).unwrap();
        assert_eq!(
            a,
            [
                MODULE_AREA_BASE,
                MODULE_AREA_BASE + 0x10000,
                MODULE_AREA_BASE + 0x20000
            ]
        );
        let e = place_modules(&[("a", 100), ("big", MODULE_AREA_END - MODULE_AREA_BASE)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("'big'"), "{e}");
        assert!(place_modules(&[("x", MODULE_AREA_END - MODULE_AREA_BASE)]).is_ok());
    }

    #[test]
    fn bootargs_format() {
        let s = scen(SRC);
        assert_eq!(
            bootargs(&s.domains[0]),
            "name=driver role=driver mem_mib=64 vcpus=2"
        );
        assert_eq!(
            bootargs(&s.domains[1]),
            "name=guest-a role=guest mem_mib=32 vcpus=1 cpu=1 -- x=1,y=2 z"
        );
        let mut d = s.domains[0].clone();
        d.on_crash = crate::scenario::OnCrash::Restart;
        assert_eq!(
            bootargs(&d),
            "name=driver role=driver mem_mib=64 vcpus=2 on_crash=restart"
        );
        // The hypervisor reads back what was written.
        for d in s.domains.iter().chain([&d]) {
            let text = bootargs(d);
            let c = parapet_abi::bootargs::parse_domain(&text).unwrap();
            assert_eq!(
                (c.name, c.role, c.memory >> 20, c.vcpus, c.cpu, c.on_crash),
                (
                    d.name.as_str(),
                    d.role,
                    d.memory_mib,
                    d.vcpus,
                    d.cpu,
                    d.on_crash
                ),
                "{text}"
            );
            assert_eq!(c.cmdline, d.cmdline.as_deref().unwrap_or(""));
        }
    }

    #[test]
    fn bootargs_carry_control_and_autostart() {
        let s = scen(&format!(
            "{SRC}[[domain]]\nname = \"boss\"\nimage = \"demo-guest\"\ncontrol = true\n\
             [[domain]]\nname = \"later\"\nimage = \"demo-guest\"\nautostart = false\n"
        ));
        let args: Vec<String> = s.domains.iter().map(bootargs).collect();
        assert_eq!(
            args,
            [
                "name=driver role=driver mem_mib=64 vcpus=2",
                "name=guest-a role=guest mem_mib=32 vcpus=1 cpu=1 -- x=1,y=2 z",
                "name=boss role=guest mem_mib=32 vcpus=1 control=1",
                "name=later role=guest mem_mib=32 vcpus=1 autostart=0",
            ]
        );
        for (d, text) in s.domains.iter().zip(&args) {
            let c = parapet_abi::bootargs::parse_domain(text).unwrap();
            assert_eq!((c.control, c.autostart), (d.control, d.autostart), "{text}");
        }
    }

    #[test]
    fn argv() {
        let s = scen(SRC);
        let images = vec![
            (PathBuf::from("/t/driver-domain"), 0x18000),
            (PathBuf::from("/t,x/demo-guest"), 10),
        ];
        let a = args(&s, Path::new("/t/hv"), &images, &[], &[], None).unwrap();
        let a: Vec<String> = a.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        let expect = [
            "-M",
            "virt,virtualization=on,gic-version=3",
            "-cpu",
            "max",
            "-m",
            "2048M",
            "-smp",
            "2",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
            "/t/hv",
            "-append",
            "timeslice_ms=7",
            "-netdev",
            "user,id=net0,net=10.0.2.0/24",
            "-device",
            "virtio-net-device,netdev=net0,mac=52:54:00:12:34:56",
            "-device",
            "guest-loader,addr=0x44000000,kernel=/t/driver-domain,bootargs=name=driver role=driver mem_mib=64 vcpus=2",
            "-device",
            "guest-loader,addr=0x44020000,kernel=/t,,x/demo-guest,bootargs=name=guest-a role=guest mem_mib=32 vcpus=1 cpu=1 -- x=1,,y=2 z",
        ];
        assert_eq!(a, expect);
    }

    #[test]
    fn argv_forwards_ports() {
        let s = scen(SRC);
        let images = vec![(PathBuf::from("/t/d"), 10), (PathBuf::from("/t/g"), 10)];
        let fw = crate::nets::Forward {
            domain: "guest-a".into(),
            host_port: 8080,
            guest_ip: std::net::Ipv4Addr::new(10, 0, 2, 15),
            guest_port: 80,
        };
        let a = args(
            &s,
            Path::new("/t/hv"),
            &images,
            &[],
            &[
                fw.clone(),
                crate::nets::Forward {
                    host_port: 2222,
                    guest_port: 22,
                    ..fw
                },
            ],
            None,
        )
        .unwrap();
        let i = a.iter().position(|x| x == "-netdev").unwrap();
        assert_eq!(
            a[i + 1],
            "user,id=net0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80,hostfwd=tcp:127.0.0.1:2222-10.0.2.15:22"
        );
    }

    #[test]
    fn argv_traced() {
        let s = scen(SRC);
        let images = vec![(PathBuf::from("/t/d"), 10), (PathBuf::from("/t/g"), 10)];
        let t = TraceArgs {
            kib: 512,
            qmp: PathBuf::from("/tmp/q,1.sock"),
        };
        let a = args(&s, Path::new("/t/hv"), &images, &[], &[], Some(&t)).unwrap();
        let a: Vec<String> = a.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        let i = a.iter().position(|x| x == "-append").unwrap();
        assert_eq!(a[i + 1], "timeslice_ms=7 trace_kib=512");
        let hv = parapet_abi::bootargs::parse_options(&a[i + 1], |w| panic!("{w}"));
        assert_eq!(hv.trace_kib, 512);
        assert!(a.contains(&"-no-shutdown".to_owned()));
        let q = a.iter().position(|x| x == "-qmp").unwrap();
        assert_eq!(a[q + 1], "unix:/tmp/q,,1.sock,server=on,wait=off");
    }

    #[test]
    fn display_quotes() {
        let s = display_command("q", &["a b".into(), "c".into()]);
        assert_eq!(s, "q 'a b' c");
    }
}
