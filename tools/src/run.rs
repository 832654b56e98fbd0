//! `parapet up`: preparing a scenario (disks, network, wiring the command
//! lines, the build, QEMU's arguments), booting it, and running a client
//! beside it (`up_with`, `run_prepared`) for tests and benchmarks.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{bench, build, control, disks, nets, prereq, qemu, scenario, trace};
use crate::{load, Error, Forward, Outcome, DEFAULT_TIMEOUT_SECS};

/// Options of `parapet up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The scenario file.
    pub scenario: PathBuf,
    /// `--timeout` in seconds: `Some(0)` for none, `None` for the default
    /// (see [`effective_timeout`]).
    pub timeout_secs: Option<u64>,
    /// Skip the build.
    pub no_build: bool,
    /// Record a trace into this file (Chrome trace event format), with
    /// buffers of this many KiB per CPU.
    pub trace: Option<(PathBuf, u64)>,
}

/// How long a run may last: `--timeout` as given (0: no limit); without
/// one, [`DEFAULT_TIMEOUT_SECS`], except for a service (a scenario that
/// forwards a port), which runs until stopped.
pub fn effective_timeout(timeout_secs: Option<u64>, service: bool) -> Option<Duration> {
    match timeout_secs {
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(secs)),
        None if service => None,
        None => Some(Duration::from_secs(DEFAULT_TIMEOUT_SECS)),
    }
}

/// A scenario built and ready to boot, its host ports held until QEMU
/// starts.
#[derive(Debug)]
pub struct Prepared {
    pub(crate) scenario: scenario::Scenario,
    /// The QEMU program.
    pub(crate) qemu: PathBuf,
    /// The QEMU arguments.
    pub(crate) args: Vec<OsString>,
    /// The ports forwarded from the host.
    pub(crate) forwards: Vec<Forward>,
    /// Listeners holding the forwarded ports, dropped when QEMU starts.
    pub(crate) reserved: Mutex<Vec<TcpListener>>,
    /// Where the trace goes, when the boot is traced.
    pub(crate) trace: Option<trace::Setup>,
}

impl Prepared {
    /// The scenario, with the wiring added to the command lines.
    pub fn scenario(&self) -> &scenario::Scenario {
        &self.scenario
    }

    /// The QEMU arguments.
    pub fn qemu_args(&self) -> &[OsString] {
        &self.args
    }

    /// The ports forwarded from the host to guests, as chosen for this boot.
    pub fn forwards(&self) -> &[Forward] {
        &self.forwards
    }

    /// Whether the scenario is a service (forwards a port): it runs until
    /// stopped, and its `--timeout` is a normal end.
    pub fn is_service(&self) -> bool {
        !self.forwards.is_empty()
    }

    fn release_ports(&self) {
        let held = std::mem::take(&mut *self.reserved.lock().unwrap_or_else(|e| e.into_inner()));
        drop(held);
    }
}

/// `words` appended to a command line.
fn append_words(cmdline: Option<String>, words: &str) -> String {
    match cmdline {
        Some(c) if !c.is_empty() => format!("{c} {words}"),
        _ => words.to_owned(),
    }
}

/// Appends the wiring to the command lines: the `vbd=` then `vif=` words to
/// the driver domain's, each guest's `ip=` words to its own (after its own
/// words). The driver domain's must stay within 255 bytes.
fn wire_cmdlines(
    s: &mut scenario::Scenario,
    disk_wiring: &str,
    net_plan: &nets::NetPlan,
) -> Result<(), Error> {
    let wiring: Vec<&str> = [disk_wiring, net_plan.driver_wiring.as_str()]
        .into_iter()
        .filter(|w| !w.is_empty())
        .collect();
    let driver = s
        .domains
        .iter_mut()
        .find(|d| d.role == scenario::Role::Driver);
    if let Some(driver) = driver.filter(|_| !wiring.is_empty()) {
        let cmdline = append_words(driver.cmdline.take(), &wiring.join(" "));
        if cmdline.len() >= 256 {
            let location = format!("{}", s.path.display());
            let what = match (disk_wiring.is_empty(), net_plan.driver_wiring.is_empty()) {
                (_, true) => "disk",
                (true, false) => "network",
                (false, false) => "disk and network",
            };
            let message = format!(
                "the driver domain's command line with the {what} wiring is {} bytes (at most 255): use fewer or shorter names",
                cmdline.len()
            );
            return Err(if net_plan.driver_wiring.is_empty() {
                disks::DiskError::Invalid { location, message }.into()
            } else {
                nets::NetError::Invalid { location, message }.into()
            });
        }
        driver.cmdline = Some(cmdline);
    }
    for (name, words) in &net_plan.guest_wiring {
        if let Some(d) = s.domains.iter_mut().find(|d| d.name == *name) {
            d.cmdline = Some(append_words(d.cmdline.take(), words));
        }
    }
    Ok(())
}

/// Builds the scenario's images (unless `no_build`: then only checks that
/// they are known) and writes its QEMU command line.
pub(crate) fn prepare(
    root: &Path,
    s: scenario::Scenario,
    no_build: bool,
    qemu: PathBuf,
) -> Result<Prepared, Error> {
    prepare_traced(root, s, no_build, qemu, None)
}

/// [`prepare`], for a boot that records a trace as `trace` says.
pub(crate) fn prepare_traced(
    root: &Path,
    mut s: scenario::Scenario,
    no_build: bool,
    qemu: PathBuf,
    trace: Option<trace::Setup>,
) -> Result<Prepared, Error> {
    let disk_plan = disks::prepare(&s)?;
    let net_plan = nets::prepare(&s)?;
    wire_cmdlines(&mut s, &disk_plan.driver_wiring, &net_plan)?;
    let ws = if no_build {
        build::resolve_all(root, &s)?
    } else {
        prereq::ensure_targets(root)?;
        build::build_all(root, &s)?
    };
    let hv = match trace {
        Some(_) => {
            if !no_build {
                build::BuildStep::traced_hypervisor().run(root)?;
            }
            ws.traced_hypervisor_elf()
        }
        None => ws.hypervisor_elf(),
    };
    build::file_size(&hv)?;
    let mut images = Vec::new();
    for p in ws.image_paths(&s)? {
        let size = build::file_size(&p)?;
        images.push((p, size));
    }
    let args = qemu::args(
        &s,
        &hv,
        &images,
        &disk_plan.attached,
        &net_plan.forwards,
        trace.as_ref().map(trace::Setup::qemu_args).as_ref(),
    )?;
    Ok(Prepared {
        scenario: s,
        qemu,
        args,
        forwards: net_plan.forwards,
        reserved: Mutex::new(net_plan.reserved),
        trace,
    })
}

/// Boots a prepared scenario, streaming the consoles to `out`: prints the
/// forwarded ports and the QEMU command line, releases the ports, runs QEMU
/// (serving the control socket meanwhile, if given; our input is then
/// forwarded).
pub(crate) fn boot(
    p: &Prepared,
    stops: &qemu::Stops,
    out: &mut dyn Write,
    colour: bool,
    forward_stdin: bool,
    control: Option<&control::server::Server>,
) -> Result<Outcome, Error> {
    for f in &p.forwards {
        eprintln!("parapet: {}", f.reachable());
    }
    eprintln!(
        "parapet: {}",
        qemu::display_command(&p.qemu.display().to_string(), &p.args)
    );
    p.release_ports();
    let recorder = p.trace.as_ref().map(|t| Arc::new(t.start()));
    let traced;
    let stops = match &recorder {
        Some(r) => {
            traced = qemu::Stops {
                trace: Some(Arc::clone(r)),
                ..stops.clone()
            };
            &traced
        }
        None => stops,
    };
    let (outcome, _) = match control {
        Some(c) => qemu::run_controlled(
            &p.qemu,
            &p.args,
            p.scenario.domain_names(),
            stops,
            out,
            colour,
            c,
        )?,
        None => qemu::run_until(
            &p.qemu,
            &p.args,
            p.scenario.domain_names(),
            stops,
            out,
            colour,
            forward_stdin,
        )?,
    };
    if let (Some(setup), Some(r)) = (&p.trace, &recorder) {
        setup.write(r)?;
    }
    Ok(outcome)
}

/// Opens the control socket of `parapet up` for scenario `s` (see
/// [`control`]). When another `parapet up` answers there, or the socket
/// cannot be made, this run goes on without one: only the control commands
/// are lost, and a warning says so (two scenarios may run side by side).
fn open_control(
    root: &Path,
    s: &scenario::Scenario,
) -> Result<Option<control::server::Server>, Error> {
    let path = control::socket_path(&control::target_dir(root)?);
    let control_domain = s.control_domain().map(|d| d.name.clone());
    match control::server::Server::open(&path, control_domain) {
        Ok(server) => Ok(Some(server)),
        Err(e) => {
            eprintln!(
                "parapet: warning: {e}; `parapet list` and the other control commands will not reach this run"
            );
            Ok(None)
        }
    }
}

/// Whether to colour the console prefixes on stdout.
pub(crate) fn colour_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// The first half of `parapet up`: loads the scenario, checks QEMU, builds
/// (unless `no_build`), picks the forwarded host ports (see
/// [`Prepared::forwards`]) and writes the QEMU command line. The ports stay
/// held until the scenario is booted.
pub fn prepare_up(opts: &UpOptions) -> Result<Prepared, Error> {
    let root = build::workspace_root()?;
    let s = load(&opts.scenario, &root)?;
    let qemu_path = prereq::ensure_qemu()?;
    prepare(&root, s, opts.no_build, qemu_path)
}

/// `parapet up`: builds (unless `no_build`), boots QEMU, streams the consoles
/// to stdout and returns the outcome (its summary is not printed yet).
///
/// A service (a scenario that forwards a port) runs until Ctrl-C (see
/// [`qemu::interrupt`]) or its `--timeout`, which is then a normal end.
///
/// Meanwhile the control socket (see [`control`]) takes `parapet list`,
/// `create`, `destroy`, `pause` and `unpause` to the control domain; it is
/// opened first, so that a second `parapet up` in the same checkout stops
/// before it builds.
pub fn up(opts: &UpOptions) -> Result<Outcome, Error> {
    let root = build::workspace_root()?;
    let s = load(&opts.scenario, &root)?;
    let server = open_control(&root, &s)?;
    let qemu_path = prereq::ensure_qemu()?;
    let trace = opts
        .trace
        .as_ref()
        .map(|(f, kib)| trace::Setup::new(f, *kib));
    let p = prepare_traced(&root, s, opts.no_build, qemu_path, trace)?;
    let service = p.is_service();
    let timeout = effective_timeout(opts.timeout_secs, service);
    if service {
        match timeout {
            None => eprintln!("parapet: a service (it forwards ports): runs until Ctrl-C"),
            Some(t) => eprintln!(
                "parapet: a service (it forwards ports): runs for {} s (--timeout) or until Ctrl-C",
                t.as_secs()
            ),
        }
    }
    let stops = qemu::Stops {
        timeout,
        service,
        ..qemu::Stops::default()
    };
    let colour = colour_stdout();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    boot(&p, &stops, &mut out, colour, true, server.as_ref())
}

/// What the client of [`up_with`] gets while QEMU runs.
#[derive(Debug)]
pub struct Running<'a> {
    forwards: &'a [Forward],
    ended: &'a AtomicBool,
    console: &'a Mutex<Vec<String>>,
}

impl Running<'_> {
    /// The ports forwarded from the host.
    pub fn forwards(&self) -> &[Forward] {
        self.forwards
    }

    /// The host address forwarded to `domain`'s `guest_port`, if any.
    pub fn addr(&self, domain: &str, guest_port: u16) -> Option<SocketAddr> {
        self.forwards
            .iter()
            .find(|f| f.domain == domain && f.guest_port == guest_port)
            .map(Forward::host_addr)
    }

    /// Whether QEMU has ended; a client waiting for a guest should give up.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// The console lines printed so far (raw, `[domain] text`), from the
    /// `from`-th on.
    pub fn console(&self, from: usize) -> Vec<String> {
        let lines = self.console.lock().unwrap_or_else(|e| e.into_inner());
        lines.get(from..).unwrap_or_default().to_vec()
    }
}

/// `parapet up` with a client, for tests and benchmarks: prepares like
/// [`prepare_up`], then [`run_prepared`].
pub fn up_with<T: Send>(
    opts: &UpOptions,
    client: impl FnOnce(&Running<'_>) -> T + Send,
) -> Result<(Outcome, T), Error> {
    let p = prepare_up(opts)?;
    run_prepared(&p, opts.timeout_secs, client)
}

/// Boots a prepared scenario (consoles to stdout, no console input) and,
/// once its ports are released to QEMU, runs `client` on another thread.
/// When the client returns, QEMU is stopped: a normal end (`stopped after N
/// s (stopped by the caller)`) unless a domain failed. `timeout_secs` is as
/// for [`UpOptions`]. QEMU may also end first (a failure, the timeout,
/// Ctrl-C): the client is always waited for, so it should give up once
/// [`Running::ended`] says so. The guest needs some seconds to boot, and a
/// connection to a forwarded port can be accepted by QEMU before the guest
/// listens: the client should retry until it gets an answer.
pub fn run_prepared<T: Send>(
    p: &Prepared,
    timeout_secs: Option<u64>,
    client: impl FnOnce(&Running<'_>) -> T + Send,
) -> Result<(Outcome, T), Error> {
    let service = p.is_service();
    let stop = Arc::new(AtomicBool::new(false));
    let stops = qemu::Stops {
        timeout: effective_timeout(timeout_secs, service),
        service,
        stop: Some(Arc::clone(&stop)),
        ..qemu::Stops::default()
    };
    let ended = AtomicBool::new(false);
    let console = Arc::new(Mutex::new(Vec::new()));
    let running = Running {
        forwards: &p.forwards,
        ended: &ended,
        console: &console,
    };
    p.release_ports();
    std::thread::scope(|sc| {
        let handle = sc.spawn(|| {
            let r = client(&running);
            stop.store(true, Ordering::SeqCst);
            r
        });
        // Not `stdout().lock()`: the client may print too.
        let mut out = bench::Capture::new(
            std::io::stdout(),
            p.scenario.domain_names(),
            colour_stdout(),
        )
        .shared(Arc::clone(&console));
        let outcome = boot(p, &stops, &mut out, false, false, None);
        ended.store(true, Ordering::SeqCst);
        let r = handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        outcome.map(|o| (o, r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript;

    fn scen(src: &str) -> scenario::Scenario {
        scenario::parse(src, Path::new("t.toml"), Path::new("/"), Path::new("/")).unwrap()
    }

    #[test]
    fn the_timeout_rule() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(effective_timeout(None, false), secs(DEFAULT_TIMEOUT_SECS));
        assert_eq!(
            effective_timeout(None, true),
            None,
            "a service runs until stopped"
        );
        for service in [false, true] {
            assert_eq!(effective_timeout(Some(0), service), None);
            assert_eq!(effective_timeout(Some(30), service), secs(30));
        }
    }

    const SRC: &str = "[[domain]]\nname = \"web\"\nimage = \"/bin/true\"\ncmdline = \"serve --port 80\"\n\
                       net = { ip = \"10.0.2.10/24\", forward = [{ host = 0, guest = 80 }] }\n\
                       [[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"/bin/true\"\ncmdline = \"verbose\"\n\
                       [[domain]]\nname = \"cli\"\nimage = \"/bin/true\"\nnet = {}\n\
                       [[domain]]\nname = \"quiet\"\nimage = \"/bin/true\"\n";

    #[test]
    fn wiring_goes_to_the_command_lines() {
        let mut s = scen(SRC);
        let plan = nets::prepare(&s).unwrap();
        wire_cmdlines(&mut s, "vbd=web,vbd0,disk0,0,16,rw", &plan).unwrap();
        let cmdline = |n: &str| {
            let d = s.domains.iter().find(|d| d.name == n).unwrap();
            d.cmdline.clone()
        };
        assert_eq!(
            cmdline("d").as_deref(),
            Some("verbose vbd=web,vbd0,disk0,0,16,rw vif=web,vif0,02:00:00:00:00:01 vif=cli,vif0,02:00:00:00:00:03")
        );
        assert_eq!(
            cmdline("web").as_deref(),
            Some("serve --port 80 ip=10.0.2.10/24 gw=10.0.2.2")
        );
        assert_eq!(cmdline("cli").as_deref(), Some("ip=dhcp"));
        assert_eq!(cmdline("quiet"), None);
        // What the hypervisor gets.
        let web = s.domains.iter().find(|d| d.name == "web").unwrap();
        assert!(qemu::bootargs(web).ends_with(" -- serve --port 80 ip=10.0.2.10/24 gw=10.0.2.2"));
    }

    #[test]
    fn run_prepared_stops_when_the_client_is_done() {
        // A stand-in for QEMU that runs until killed.
        let mut s = scen(SRC);
        let plan = nets::prepare(&s).unwrap();
        wire_cmdlines(&mut s, "", &plan).unwrap();
        let p = Prepared {
            scenario: s,
            qemu: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), "echo '[web] up'; exec sleep 30".into()],
            forwards: plan.forwards,
            reserved: Mutex::new(plan.reserved),
            trace: None,
        };
        assert!(p.is_service());
        let start = std::time::Instant::now();
        let (outcome, got) = run_prepared(&p, None, |r| {
            let addr = r.addr("web", 80).expect("forwarded");
            assert_eq!(r.addr("web", 81), None);
            // The client sees the console.
            let seen = std::time::Instant::now();
            while r.console(0).is_empty() && seen.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(r.console(0), ["[web] up"]);
            assert!(r.console(1).is_empty() && r.console(5).is_empty());
            assert!(!r.ended());
            // The port was released for QEMU: play its part.
            let server = TcpListener::bind(addr).expect("the port is free");
            std::thread::spawn(move || {
                let (mut c, _) = server.accept().unwrap();
                std::io::Write::write_all(&mut c, b"hi").unwrap();
            });
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            let mut buf = [0u8; 2];
            std::io::Read::read_exact(&mut c, &mut buf).unwrap();
            buf
        })
        .unwrap();
        assert_eq!(&got, b"hi");
        assert!(start.elapsed() < Duration::from_secs(30));
        assert_eq!(outcome.exit_code, transcript::EXIT_OK, "{outcome:?}");
        assert!(
            outcome.summary[0].starts_with("stopped after ")
                && outcome.summary[0].ends_with(" s (stopped by the caller)"),
            "{outcome:?}"
        );
    }

    #[test]
    fn the_driver_command_line_stays_short() {
        let mut s = scen(&SRC.replace("\"verbose\"", &format!("\"{}\"", "v".repeat(200))));
        let plan = nets::prepare(&s).unwrap();
        let e = wire_cmdlines(&mut s, "vbd=web,vbd0,disk0,0,16,rw", &plan).unwrap_err();
        assert!(matches!(e, Error::Net(_)), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("with the disk and network wiring") && e.contains("at most 255"),
            "{e}"
        );
    }
}
