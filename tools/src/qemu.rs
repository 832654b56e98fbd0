//! The QEMU command line, and running QEMU while streaming its console.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use parapet_abi::bootargs::DomainConfig;
use parapet_abi::control::REQUEST_MARKER;
use parapet_abi::layout::{MODULE_AREA_BASE, MODULE_AREA_END};

use crate::control::server::{LineUse, Server};
use crate::scenario::{Domain, Scenario};
use crate::transcript::{self, Outcome, QemuEnd, Transcript};

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

/// The QEMU arguments (without the program name) to boot `scenario`, given the
/// hypervisor ELF and each domain's image path and size (driver first, as in
/// `scenario.domains`).
pub fn args(
    scenario: &Scenario,
    hypervisor: &Path,
    images: &[(PathBuf, u64)],
    disks: &[crate::disks::AttachedDisk],
    forwards: &[crate::nets::Forward],
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
    push(&format!("timeslice_ms={}", m.timeslice_ms));
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

enum Msg {
    Line(String),
    Eof,
    Err(std::io::Error),
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// How a run may end besides QEMU exiting by itself.
#[derive(Debug, Clone, Default)]
pub struct Stops {
    /// Kill QEMU after this long (`None`: never).
    pub timeout: Option<Duration>,
    /// The scenario is a service: reaching `timeout` is a normal end
    /// ([`QemuEnd::Stopped`]) rather than a failure.
    pub service: bool,
    /// Set by the caller to stop QEMU; a normal end too.
    pub stop: Option<Arc<AtomicBool>>,
}

/// How often the run loop looks at [`interrupt`] and [`Stops::stop`].
const POLL: Duration = Duration::from_millis(50);

/// Runs in progress, and whether [`interrupt`] was called during them.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// For a Ctrl-C (SIGINT) handler: asks the runs in progress to kill QEMU
/// and end with [`QemuEnd::Interrupted`]. Returns false when none is in
/// progress (the caller should then exit as SIGINT would).
pub fn interrupt() -> bool {
    INTERRUPTED.store(true, Ordering::SeqCst);
    RUNNING.load(Ordering::SeqCst) > 0
}

struct RunGuard;

impl RunGuard {
    fn new() -> Self {
        if RUNNING.fetch_add(1, Ordering::SeqCst) == 0 {
            INTERRUPTED.store(false, Ordering::SeqCst);
        }
        RunGuard
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One piece of QEMU's serial input. Everything goes through one writer
/// thread ([`write_serial`]), so a control request never lands inside a line
/// the user is typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialInput {
    /// A line typed on (or piped into) our standard input (the last one
    /// may lack its newline).
    Typed(Vec<u8>),
    /// A control request line, `ID VERB [NAME]`, without the marker and the
    /// newline.
    Control(String),
}

/// Writes serial input to `sink` (QEMU's standard input) until every sender
/// is gone or a write fails. A control request starts a line of its own
/// (after a newline if a typed line was left unfinished), marked with
/// [`REQUEST_MARKER`]; a marker at the start of a typed line is dropped,
/// so that typing cannot forge a control request.
pub fn write_serial(mut sink: impl Write, input: mpsc::Receiver<SerialInput>) {
    let mut at_line_start = true;
    for piece in input {
        let bytes = match piece {
            SerialInput::Typed(line) => {
                let mut out = Vec::with_capacity(line.len());
                let mut start = at_line_start;
                for b in line {
                    if start && b == REQUEST_MARKER {
                        continue;
                    }
                    start = b == b'\n' || b == b'\r';
                    out.push(b);
                }
                out
            }
            SerialInput::Control(request) => {
                let mut out = Vec::with_capacity(request.len() + 3);
                if !at_line_start {
                    out.push(b'\n');
                }
                out.push(REQUEST_MARKER);
                out.extend_from_slice(request.as_bytes());
                out.push(b'\n');
                out
            }
        };
        let Some(&last) = bytes.last() else {
            continue;
        };
        if sink.write_all(&bytes).and_then(|()| sink.flush()).is_err() {
            return;
        }
        at_line_start = last == b'\n' || last == b'\r';
    }
}

/// Where the console goes, and what comes in.
struct Io<'a> {
    out: &'a mut dyn Write,
    colour: bool,
    forward_stdin: bool,
    control: Option<&'a Server>,
}

/// Detaches the control server when the run ends, however it ends.
struct Detach<'a>(Option<&'a Server>);

impl Drop for Detach<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.0 {
            s.detach();
        }
    }
}

/// Runs QEMU, printing each console line to `out` as it arrives (coloured
/// prefixes when `colour`), and decides the outcome. `timeout` of `None` means
/// no limit. QEMU is killed on timeout, on a console error, and when it does
/// not exit within [`EXIT_GRACE`] after the hypervisor said it is done.
///
/// With `forward_stdin`, what is typed on (or piped into) our standard input
/// goes to the serial port, where the hypervisor hands it to the
/// console-input domain.
pub fn run(
    program: &Path,
    args: &[OsString],
    domains: Vec<String>,
    timeout: Option<Duration>,
    out: &mut dyn Write,
    colour: bool,
    forward_stdin: bool,
) -> Result<(Outcome, Transcript), QemuError> {
    let stops = Stops {
        timeout,
        ..Stops::default()
    };
    run_until(program, args, domains, &stops, out, colour, forward_stdin)
}

/// [`run`], which also ends (killing QEMU) when [`Stops::stop`] is set or on
/// [`interrupt`], and for which a service's timeout is a normal end.
pub fn run_until(
    program: &Path,
    args: &[OsString],
    domains: Vec<String>,
    stops: &Stops,
    out: &mut dyn Write,
    colour: bool,
    forward_stdin: bool,
) -> Result<(Outcome, Transcript), QemuError> {
    let io = Io {
        out,
        colour,
        forward_stdin,
        control: None,
    };
    run_io(program, args, domains, stops, io)
}

/// [`run_until`] with our standard input forwarded and `control` serving
/// the control socket meanwhile: its requests go to the serial input, and
/// the control domain's replies to them go back to it instead of `out`
/// (the line that ends an answer becomes a `parapet: control: …` note on
/// stderr).
pub fn run_controlled(
    program: &Path,
    args: &[OsString],
    domains: Vec<String>,
    stops: &Stops,
    out: &mut dyn Write,
    colour: bool,
    control: &Server,
) -> Result<(Outcome, Transcript), QemuError> {
    let io = Io {
        out,
        colour,
        forward_stdin: true,
        control: Some(control),
    };
    run_io(program, args, domains, stops, io)
}

fn run_io(
    program: &Path,
    args: &[OsString],
    domains: Vec<String>,
    stops: &Stops,
    io: Io<'_>,
) -> Result<(Outcome, Transcript), QemuError> {
    let Io {
        out,
        colour,
        forward_stdin,
        control,
    } = io;
    let _running = RunGuard::new();
    let timeout = stops.timeout;
    let stop_asked = || {
        INTERRUPTED.load(Ordering::SeqCst)
            || stops
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::SeqCst))
    };
    let stopped_end = |start: Instant| {
        let secs = start.elapsed().as_secs();
        if INTERRUPTED.load(Ordering::SeqCst) {
            QemuEnd::Interrupted { secs }
        } else {
            QemuEnd::Stopped {
                secs,
                why: "stopped by the caller",
            }
        }
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if forward_stdin || control.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| QemuError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
    let _detach = Detach(control);
    if let Some(sink) = child.stdin.take() {
        // One writer; typed input line by line, so a terminal in cooked
        // mode works as expected. The writer ends with our input (unless
        // the control server holds a sender until the run ends) or with
        // QEMU (a write then fails).
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || write_serial(sink, rx));
        if let Some(c) = control {
            c.attach(tx.clone());
        }
        if forward_stdin {
            std::thread::spawn(move || {
                let mut line = Vec::new();
                let mut input = std::io::stdin().lock();
                while matches!(input.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    if tx
                        .send(SerialInput::Typed(std::mem::take(&mut line)))
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    }
    let (tx, rx) = mpsc::channel::<Msg>();
    if let Some(stdout) = child.stdout.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Msg::Eof);
                        break;
                    }
                    Ok(_) => {
                        let s = String::from_utf8_lossy(&buf);
                        let s = s.trim_end_matches(['\n', '\r']).to_owned();
                        if tx.send(Msg::Line(s)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Msg::Err(e));
                        break;
                    }
                }
            }
        });
    }
    drop(tx);
    let stderr_thread = child.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
                let s = String::from_utf8_lossy(&line);
                eprintln!("[qemu] {}", s.trim_end_matches('\r'));
            }
        })
    });

    let start = Instant::now();
    let deadline = timeout.map(|t| start + t);
    let mut t = Transcript::new(domains);
    let mut grace_deadline: Option<Instant> = None;
    let mut end: Option<QemuEnd> = None;
    let mut eof = false;
    while !eof {
        let now = Instant::now();
        if stop_asked() {
            kill(&mut child);
            end = Some(stopped_end(start));
            break;
        }
        let mut wake = deadline;
        if let Some(g) = grace_deadline {
            wake = Some(wake.map_or(g, |w| w.min(g)));
        }
        let msg = match wake {
            Some(w) if w <= now => None,
            _ => {
                let poll = wake.map_or(POLL, |w| (w - now).min(POLL));
                match rx.recv_timeout(poll) {
                    Ok(m) => Some(m),
                    Err(mpsc::RecvTimeoutError::Timeout)
                        if wake.is_some_and(|w| w <= Instant::now()) =>
                    {
                        None
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => Some(Msg::Eof),
                }
            }
        };
        match msg {
            Some(Msg::Line(line)) => {
                let was_finished = t.finished();
                t.feed(&line);
                let shown = match control.map_or(LineUse::Show, |c| c.on_line(&line)) {
                    LineUse::Show => Some(transcript::render(&line, t.domain_names(), colour)),
                    LineUse::Hide => None,
                    LineUse::Note(note) => {
                        eprintln!("parapet: {note}");
                        None
                    }
                };
                let written = match shown {
                    Some(shown) => writeln!(out, "{shown}").and_then(|()| out.flush()),
                    None => Ok(()),
                };
                if let Err(e) = written {
                    kill(&mut child);
                    return Err(QemuError::Io(e));
                }
                if !was_finished && t.finished() {
                    grace_deadline = Some(Instant::now() + EXIT_GRACE);
                }
            }
            Some(Msg::Eof) => eof = true,
            Some(Msg::Err(e)) => {
                kill(&mut child);
                return Err(QemuError::Io(e));
            }
            None => {
                // A deadline passed.
                kill(&mut child);
                let secs = timeout.map_or(0, |d| d.as_secs());
                end = Some(match (grace_deadline, deadline) {
                    (Some(g), _) if Instant::now() >= g => QemuEnd::Hung,
                    _ if stops.service => QemuEnd::Stopped {
                        secs,
                        why: "--timeout",
                    },
                    _ => QemuEnd::TimedOut { secs },
                });
                break;
            }
        }
    }
    let end = match end {
        Some(e) => e,
        None => {
            // Stdout closed: QEMU is exiting. Still bounded by the deadline.
            let status = wait_until(&mut child, deadline)?;
            match status {
                // A Ctrl-C reaches QEMU too, which then exits by itself.
                Some(_) if stop_asked() && !t.finished() => stopped_end(start),
                Some(st) => st.code().map_or(QemuEnd::Signalled, QemuEnd::Exited),
                None => {
                    kill(&mut child);
                    QemuEnd::TimedOut {
                        secs: timeout.map_or(0, |d| d.as_secs()),
                    }
                }
            }
        }
    };
    if let Some(h) = stderr_thread {
        let _ = h.join();
    }
    Ok((t.outcome(end), t))
}

fn wait_until(
    child: &mut Child,
    deadline: Option<Instant>,
) -> Result<Option<std::process::ExitStatus>, QemuError> {
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

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
        let a = args(&s, Path::new("/t/hv"), &images, &[], &[]).unwrap();
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
        )
        .unwrap();
        let i = a.iter().position(|x| x == "-netdev").unwrap();
        assert_eq!(
            a[i + 1],
            "user,id=net0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80,hostfwd=tcp:127.0.0.1:2222-10.0.2.15:22"
        );
    }

    #[test]
    fn display_quotes() {
        let s = display_command("q", &["a b".into(), "c".into()]);
        assert_eq!(s, "q 'a b' c");
    }

    fn sh(script: &str, timeout: Option<Duration>) -> (Outcome, Vec<u8>) {
        let mut out = Vec::new();
        let (o, _) = run(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            vec!["driver".into(), "guest-a".into()],
            timeout,
            &mut out,
            false,
            false,
        )
        .unwrap();
        (o, out)
    }

    #[test]
    fn run_success() {
        let (o, out) = sh(
            "printf '[hv] domain driver (id 0, driver domain)\\n[hv] domain guest-a (id 1, guest)\\n\
             [guest-a] hi\\r\\n[hv] domain guest-a exited: poweroff (code 0)\\n\
             [hv] domain driver exited: poweroff (code 0)\\n[hv] all domains stopped: 2 ok, 0 failed\\n'",
            Some(Duration::from_secs(20)),
        );
        assert_eq!(o.exit_code, 0, "{o:?}");
        assert!(String::from_utf8(out).unwrap().contains("\n[guest-a] hi\n"));
    }

    #[test]
    fn run_timeout_kills() {
        let start = Instant::now();
        let (o, _) = sh(
            "echo '[hv] domain driver exited: poweroff (code 0)'; exec sleep 30",
            Some(Duration::from_millis(500)),
        );
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(o.exit_code, transcript::EXIT_TIMEOUT);
        assert_eq!(o.summary, ["timeout after 0 s; still running: guest-a"]);
    }

    fn sh_until(script: &str, stops: &Stops) -> Outcome {
        run_until(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            vec!["driver".into(), "guest-a".into()],
            stops,
            &mut Vec::new(),
            false,
            false,
        )
        .unwrap()
        .0
    }

    #[test]
    fn a_service_timeout_is_a_normal_end() {
        let stops = Stops {
            timeout: Some(Duration::from_millis(300)),
            service: true,
            stop: None,
        };
        let o = sh_until("echo '[guest-a] serving'; exec sleep 30", &stops);
        assert_eq!(o.exit_code, transcript::EXIT_OK, "{o:?}");
        assert_eq!(
            o.summary,
            [
                "stopped after 0 s (--timeout)",
                "still running: driver, guest-a"
            ]
        );
        // A domain that failed before still fails the run.
        let o = sh_until(
            "echo '[hv] domain guest-a crashed: x'; exec sleep 30",
            &stops,
        );
        assert_eq!(o.exit_code, transcript::EXIT_DOMAIN_FAILED, "{o:?}");
    }

    #[test]
    fn the_caller_can_stop_a_run() {
        let stop = Arc::new(AtomicBool::new(false));
        let stops = Stops {
            timeout: Some(Duration::from_secs(20)),
            service: true,
            stop: Some(Arc::clone(&stop)),
        };
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::SeqCst);
        });
        let start = Instant::now();
        let o = sh_until("exec sleep 30", &stops);
        setter.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(o.exit_code, transcript::EXIT_OK, "{o:?}");
        assert_eq!(o.summary[0], "stopped after 0 s (stopped by the caller)");
    }

    #[test]
    fn serial_input_keeps_control_lines_whole() {
        let (tx, rx) = mpsc::channel();
        for piece in [
            SerialInput::Typed(b"ps\n".to_vec()),
            SerialInput::Control("1 list".into()),
            // Typing cannot forge a request: markers at line starts go.
            SerialInput::Typed(b"\x10\x102 destroy a\n".to_vec()),
            SerialInput::Typed(b"a\r\x10b\x10\n".to_vec()),
            SerialInput::Typed(Vec::new()),
            // A last line without its newline is ended before a request.
            SerialInput::Typed(b"unfinished".to_vec()),
            SerialInput::Control("3 pause b".into()),
        ] {
            tx.send(piece).unwrap();
        }
        drop(tx);
        let mut out = Vec::new();
        write_serial(&mut out, rx);
        assert_eq!(
            out,
            b"ps\n\x101 list\n2 destroy a\na\rb\x10\nunfinished\n\x103 pause b\n"
        );
    }

    #[test]
    fn control_requests_reach_the_serial_input_and_replies_stay_off_the_console() {
        use crate::control::{client, server::tests::scratch};
        use parapet_abi::control::Command;
        // A stand-in for QEMU whose control domain answers every request
        // with a data line (the request as it arrived) and `ok`.
        let script = "echo '[hv] domain driver (id 0, driver domain)'; \
                      while IFS= read -r l; do l=${l#?}; id=${l%% *}; \
                      echo \"[driver] ctl:$id | got $l\"; echo '[driver] hello'; \
                      echo \"[driver] ctl:$id ok done\"; done";
        let path = scratch("run").join("control.sock");
        let server = Server::open(&path, Some("driver".into())).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stops = Stops {
            timeout: Some(Duration::from_secs(20)),
            service: true,
            stop: Some(Arc::clone(&stop)),
        };
        let client = {
            let path = path.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let answer = loop {
                    let a = client::request(&path, &Command::Destroy("guest-a"));
                    match a {
                        Ok(a) if a.text.contains("still starting") => {}
                        other => break other,
                    }
                    assert!(start.elapsed() < Duration::from_secs(10));
                    std::thread::sleep(Duration::from_millis(20));
                };
                stop.store(true, Ordering::SeqCst);
                answer
            })
        };
        let mut out = Vec::new();
        let io = Io {
            out: &mut out,
            colour: false,
            forward_stdin: false,
            control: Some(&server),
        };
        let (o, t) = run_io(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            vec!["driver".into()],
            &stops,
            io,
        )
        .unwrap();
        let a = client.join().unwrap().unwrap();
        assert!(a.ok, "{a:?}");
        assert_eq!(a.data, [format!("got {} destroy guest-a", a.id)]);
        assert_eq!(a.text, "done");
        assert_eq!(o.exit_code, transcript::EXIT_OK, "{o:?}");
        let console = String::from_utf8(out).unwrap();
        assert_eq!(
            console,
            "[hv] domain driver (id 0, driver domain)\n[driver] hello\n"
        );
        assert_eq!(t.still_running(), ["driver"]);
        // Once the run is over, requests are refused.
        let a = client::request(&path, &Command::List).unwrap();
        assert_eq!(a.text, "the system has stopped");
    }

    #[test]
    fn run_qemu_failure() {
        let (o, _) = sh("echo boom >&2; exit 1", None);
        assert_eq!(o.exit_code, transcript::EXIT_PLATFORM);
    }

    #[test]
    fn missing_program() {
        let e = run(
            Path::new("/nonexistent/qemu"),
            &[],
            vec![],
            None,
            &mut Vec::new(),
            false,
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/qemu"));
    }
}
