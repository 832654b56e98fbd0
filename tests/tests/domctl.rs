//! Domains at run time on QEMU, driven from the host with `parapet list`,
//! `create`, `destroy`, `pause` and `unpause` (separate processes against a
//! running `parapet up`, as a user or a script would run them):
//!
//! - `scenarios/domctl.toml`: a guest with a vif and a disk, defined with
//!   `autostart = false`, is created and destroyed 100 times while two
//!   others stream over TCP; every create and destroy is answered `ok`, each
//!   instance connects its vif and disk anew and counts its boot on the
//!   disk, the stream arrives intact, and `parapet list`'s totals show no
//!   frame, grant or port leaked;
//! - `scenarios/demo.toml`: `parapet list` shows every domain, and the web
//!   guest destroyed and created again serves its page to the host again
//!   through the forwarded port;
//! - a domain that is not the control domain gets `Perm` for every
//!   domain-control hypercall (`scenarios/fault.toml`);
//! - a driver domain that is not the control domain wires a guest that did
//!   not run at boot once it starts (`scenarios/domctl-other.toml`);
//! - the instruction counts of the create and destroy hypercalls under
//!   `-icount` (`scenarios/bench-domctl.toml`).
#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parapet_tests::check::{
    assert_all_memory_back, assert_has, bytes_and_checksum, fetch, forwarded_url, line_with,
    number_after,
};
use parapet_tests::live::Live;
use parapet_tests::{run_up, serial, workspace_root};

// ---------------------------------------------------------------------------
// The host CLI

/// What one `parapet` subcommand did.
#[derive(Debug)]
struct Cli {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    secs: f64,
}

impl Cli {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// The `parapet` binary `cargo run` built for `parapet up` (run directly:
/// `cargo run` would add its own start-up to every request).
fn parapet_bin() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => workspace_root().join(t),
        None => workspace_root().join("target"),
    };
    target.join("debug").join("parapet")
}

/// Runs `parapet ARGS` (e.g. `create web`) in the checkout, against the
/// `parapet up` that runs there.
fn cli(args: &[&str]) -> Cli {
    let start = Instant::now();
    let out = Command::new(parapet_bin())
        .args(args)
        .current_dir(workspace_root())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", parapet_bin().display()));
    Cli {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        secs: start.elapsed().as_secs_f64(),
    }
}

/// Runs `parapet ARGS` and insists on exit status 0.
fn cli_ok(args: &[&str], sys: &Live) -> Cli {
    let r = cli(args);
    assert!(
        r.ok(),
        "`parapet {}` failed ({:?}): {}{}\n--- transcript\n{}",
        args.join(" "),
        r.code,
        r.stdout,
        r.stderr,
        sys.transcript()
    );
    r
}

/// `parapet list`, read back: each domain's name, state and creates, and
/// the totals line (`N domains, G grants mapped, P ports bound; frames: F
/// of T free (S free at start)`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listing {
    domains: Vec<(String, String, u64)>,
    count: u64,
    grants: u64,
    ports: u64,
    frames_free: u64,
    frames_at_start: u64,
}

impl Listing {
    fn parse(stdout: &str) -> Listing {
        let totals = line_with(stdout, " free at start)");
        let domains = stdout
            .lines()
            .skip_while(|l| !l.starts_with("NAME"))
            .skip(1)
            .take_while(|l| !l.contains(" free at start)"))
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let creates = w.last().and_then(|c| c.parse().ok()).unwrap_or(u64::MAX);
                (w[0].to_owned(), w[2].to_owned(), creates)
            })
            .collect();
        Listing {
            domains,
            count: number_after(totals, ""),
            grants: number_after(totals, " domains, "),
            ports: number_after(totals, " grants mapped, "),
            frames_free: number_after(totals, "frames: "),
            frames_at_start: number_after(totals, " free ("),
        }
    }

    fn state(&self, name: &str) -> &str {
        self.domains
            .iter()
            .find(|d| d.0 == name)
            .map(|d| d.1.as_str())
            .unwrap_or_else(|| panic!("{name} is not listed: {self:?}"))
    }

    fn creates(&self, name: &str) -> u64 {
        self.domains
            .iter()
            .find(|d| d.0 == name)
            .map(|d| d.2)
            .unwrap_or_else(|| panic!("{name} is not listed: {self:?}"))
    }

    /// What must not leak: frames free, grants mapped, ports bound.
    fn leak_view(&self) -> (u64, u64, u64) {
        (self.frames_free, self.grants, self.ports)
    }
}

fn list(sys: &Live) -> Listing {
    Listing::parse(&cli_ok(&["list"], sys).stdout)
}

// ---------------------------------------------------------------------------
// A running `parapet up` we can type into

/// `cargo parapet up SCENARIO --timeout T` with its console input open (to
/// type `shutdown` at the end).
fn start_system(scenario: &str, timeout_secs: u64) -> Live {
    Live::start_with_console(&["up", scenario, "--timeout", &timeout_secs.to_string()])
}

/// Fails the test unless `needle` appears within `timeout`.
fn expect_line(sys: &mut Live, needle: &str, timeout: Duration) {
    assert!(
        sys.wait_for(needle, timeout),
        "no {needle:?} within {} s:\n{}",
        timeout.as_secs(),
        sys.transcript()
    );
}

/// The host address `parapet up` printed for `domain:port`
/// (`parapet: DOMAIN:PORT is reachable at …127.0.0.1:HOST…`).
fn forwarded(t: &str, domain: &str, port: u16) -> String {
    let line = line_with(t, &format!("{domain}:{port} is reachable at "));
    let at = line.find("127.0.0.1:").expect("a host address") + "127.0.0.1:".len();
    let host_port = number_after(&line[at..], "");
    format!("127.0.0.1:{host_port}")
}

// ---------------------------------------------------------------------------
// The tests

const CYCLES: usize = 100;
const SERVING: &str = "[web] http: serving on 10.0.2.20:80";

#[test]
fn a_guest_is_created_and_destroyed_a_hundred_times_while_two_others_stream() {
    let _g = serial();
    let mut sys = start_system("scenarios/domctl.toml", 400);
    expect_line(
        &mut sys,
        "[sink] net: sink listening on TCP port 5001",
        Duration::from_secs(300),
    );
    expect_line(
        &mut sys,
        "[source] net: udp echo via 10.0.2.15:7: ok",
        Duration::from_secs(60),
    );
    expect_line(&mut sys, "[nosy] errors: ok", Duration::from_secs(30));
    // The stream runs (it goes on until we connect to the source's port).
    let before = list(&sys);
    assert_eq!(before.count, 5, "{before:?}");
    assert_eq!(before.state("web"), "off", "{before:?}");
    assert_eq!(before.state("driver"), "running", "{before:?}");
    assert_eq!(before.state("sink"), "running", "{before:?}");
    assert_eq!(before.state("source"), "running", "{before:?}");

    let start = Instant::now();
    let (mut create_secs, mut up_secs, mut destroy_secs) = (0.0, 0.0, 0.0);
    for k in 1..=CYCLES {
        let c = cli_ok(&["create", "web"], &sys);
        assert!(c.stdout.contains("created web"), "create {k}: {c:?}");
        create_secs += c.secs;
        let t = Instant::now();
        assert!(
            sys.wait_for_count(SERVING, k, Duration::from_secs(60)),
            "instance {k} of web never served:\n{}",
            sys.transcript()
        );
        up_secs += t.elapsed().as_secs_f64();
        let d = cli_ok(&["destroy", "web"], &sys);
        assert!(d.stdout.contains("destroyed web"), "destroy {k}: {d:?}");
        destroy_secs += d.secs;
        if k == CYCLES / 2 {
            // A paused guest's peer sees its rings stall, no error, and
            // both go on after unpause (the checksums at the end).
            for who in ["sink", "source"] {
                cli_ok(&["pause", who], &sys);
                assert_eq!(list(&sys).state(who), "paused");
                std::thread::sleep(Duration::from_millis(500));
                cli_ok(&["unpause", who], &sys);
            }
        }
    }
    let cycles = start.elapsed().as_secs_f64();
    let after = list(&sys);
    std::thread::sleep(Duration::from_millis(300));
    let t = sys.transcript();
    assert!(
        !t.contains("[hv] domain source exited") && !t.contains("[hv] domain sink exited"),
        "the stream ended before the cycles did: the totals would not compare:\n{t}"
    );
    assert_eq!(after.state("web"), "off", "{after:?}");
    assert_eq!(after.creates("web"), CYCLES as u64, "{after:?}");
    assert_eq!(
        after.leak_view(),
        before.leak_view(),
        "frames free, grants and ports after {CYCLES} cycles vs before:\n{after:?}\n{before:?}"
    );
    println!(
        "domctl: {CYCLES} cycles in {cycles:.1} s ({:.3} s per cycle: `parapet create` {:.3} s, \
         until it serves {:.3} s, `parapet destroy` {:.3} s)",
        cycles / CYCLES as f64,
        create_secs / CYCLES as f64,
        up_secs / CYCLES as f64,
        destroy_secs / CYCLES as f64
    );
    println!("domctl: totals before and after: {before:?} / {after:?}");

    // End the stream: a connection to the source's forwarded port.
    let addr = forwarded(&t, "source", 7001);
    let mut stop = None;
    for _ in 0..20 {
        match std::net::TcpStream::connect(&addr) {
            Ok(s) => {
                stop = Some(s);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
    assert!(stop.is_some(), "cannot connect to {addr}");
    expect_line(
        &mut sys,
        "[sink] net: sink received ",
        Duration::from_secs(120),
    );
    expect_line(
        &mut sys,
        "[source] net: source sent ",
        Duration::from_secs(30),
    );
    drop(stop);
    expect_line(
        &mut sys,
        "[driver] driver domain: no guest runs; staying up for domain control",
        Duration::from_secs(60),
    );
    sys.type_line("shutdown");
    let r = sys.finish(Duration::from_secs(120));
    let (status, t) = (r.status, r.transcript());
    assert!(status.success(), "exit status {status}:\n{t}");

    // The stream arrived intact, across the cycles and the pauses.
    let sent = bytes_and_checksum(line_with(&t, "[source] net: source sent "));
    let received = bytes_and_checksum(line_with(&t, "[sink] net: sink received "));
    assert!(sent.0 > 0, "{sent:?}");
    assert_eq!(sent, received, "source vs sink:\n{t}");
    assert_has(
        &t,
        "[source] net: source: a connection to port 7001: ending the stream",
    );
    for who in ["sink", "source"] {
        assert_has(&t, &format!("[hv] domain {who} paused"));
        assert_has(&t, &format!("[hv] domain {who} unpaused"));
    }

    // Every instance connected its vif and disk anew, and found on the disk
    // what the last one wrote.
    let boots: Vec<u64> = t
        .lines()
        .filter(|l| l.starts_with("[web] http: boot "))
        .map(|l| number_after(l, "http: boot "))
        .collect();
    assert_eq!(boots.len(), CYCLES, "{boots:?}");
    assert!(
        boots.windows(2).all(|w| w[1] == w[0] + 1),
        "boot counters: {boots:?}"
    );
    for (needle, n) in [
        ("[hv] domain web destroyed by the control domain", CYCLES),
        ("[driver] netback: web/vif0 connected", CYCLES),
        ("[driver] netback: web/vif0 disconnected", CYCLES),
        ("[driver] blkback: web/vbd0 connected", CYCLES),
        ("[driver] blkback: web/vbd0 disconnected", CYCLES),
        (SERVING, CYCLES),
    ] {
        let got = t.lines().filter(|l| l.contains(needle)).count();
        assert_eq!(got, n, "{needle:?} {got} times:\n{t}");
    }
    for bad in [
        "handshake failed",
        "ring corrupted",
        "disconnecting",
        "not created",
    ] {
        assert!(!t.contains(bad), "{bad:?}:\n{t}");
    }
    // The domain that is not the control domain was refused.
    assert_has(
        &t,
        "[nosy] errors: domain control refused (Perm): DomctlList, DomctlOp, DomctlTotals, ControlRead",
    );
    assert_has(
        &t,
        "[driver] driver domain: shutting down (shutdown typed on the console)",
    );
    let memory = assert_all_memory_back(&t);
    println!("domctl: after {CYCLES} cycles: [hv] memory: {memory}");
}

#[test]
fn the_demo_lists_its_domains_and_its_web_guest_comes_back_after_destroy_and_create() {
    let _g = serial();
    let mut run = Live::start(&["up", "scenarios/demo.toml"]);
    for needle in [
        "[guest-a] http: serving on 10.0.2.15:80",
        "[guest-b] fetch: 3 of 3 pages fetched",
    ] {
        assert!(
            run.wait_for(needle, Duration::from_secs(300)),
            "no {needle:?}:\n{}",
            run.transcript()
        );
    }
    let listed = cli(&["list"]);
    assert!(listed.ok(), "{listed:?}");
    let l = Listing::parse(&listed.stdout);
    assert_eq!(l.count, 3, "{listed:?}");
    assert_eq!(
        l.domains.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
        ["driver", "guest-a", "guest-b"],
        "{listed:?}"
    );
    assert_eq!(l.state("driver"), "running");
    assert_eq!(l.state("guest-a"), "running");

    let d = cli(&["destroy", "guest-a"]);
    assert!(d.ok() && d.stdout.contains("destroyed guest-a"), "{d:?}");
    assert!(
        run.wait_for(
            "[hv] domain guest-a destroyed by the control domain",
            Duration::from_secs(10)
        ),
        "{}",
        run.transcript()
    );
    let off = Listing::parse(&cli(&["list"]).stdout);
    assert_eq!(off.state("guest-a"), "off", "{off:?}");
    let c = cli(&["create", "guest-a"]);
    assert!(c.ok() && c.stdout.contains("created guest-a"), "{c:?}");
    // The new instance connects its vif and disk and serves again.
    let start = Instant::now();
    while run
        .transcript()
        .matches("[guest-a] http: serving on 10.0.2.15:80")
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "guest-a did not serve again:\n{}",
            run.transcript()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = run.transcript();
    let url = forwarded_url(&t, "guest-a:80 is reachable at http://127.0.0.1:");
    let curl = fetch(&format!("{url}after-create"));
    let page = curl.page.clone();
    let back = Listing::parse(&cli(&["list"]).stdout);
    let r = run.interrupt();
    let t = r.transcript();
    assert!(curl.ok, "curl {url} failed: {}\n{t}", curl.error);
    assert_has(&page, "<h1>Hello from guest-a</h1>");
    assert_has(&page, "path:          /after-create");
    // A fresh instance: its first request (the visits go on, on its disk).
    assert_has(&page, "requests:      1\n");
    assert_has(&page, "(kept on vbd0)");
    assert_eq!(back.state("guest-a"), "running", "{back:?}");
    assert_eq!(back.creates("guest-a"), 1, "{back:?}");
    for needle in [
        "[driver] netback: guest-a/vif0 connected",
        "[driver] blkback: guest-a/vbd0 connected",
    ] {
        assert_eq!(t.matches(needle).count(), 2, "{needle:?} twice:\n{t}");
    }
    assert_has(&t, "GET /after-create");
    assert_has(&t, "interrupted (Ctrl-C)");
}

#[test]
fn a_domain_that_is_not_the_control_domain_gets_perm() {
    let _g = serial();
    // `faulty` makes every domain-control hypercall (the driver domain is
    // the control domain) before it misbehaves.
    let (status, t) = run_up("scenarios/fault.toml", 240);
    assert_eq!(status.code(), Some(1), "exit status {status}:\n{t}");
    assert_has(
        &t,
        "[faulty] errors: domain control refused (Perm): DomctlList, DomctlOp, DomctlTotals, ControlRead",
    );
    assert_has(&t, "[faulty] errors: ok");
    assert!(!t.contains("FAILED"), "{t}");
}

#[test]
fn a_driver_domain_that_is_not_the_control_domain_wires_a_guest_once_it_starts() {
    let _g = serial();
    let (status, t) = run_up("scenarios/domctl-other.toml", 240);
    assert!(status.success(), "exit status {status}:\n{t}");
    // It could not look `web` up at boot (it does not run, and the list is
    // the control domain's).
    assert_has(
        &t,
        "[driver] vbd0 of web: web does not run: wired once it starts",
    );
    assert_has(
        &t,
        "[driver] vif0 of web: web does not run: wired once it starts",
    );
    for needle in [
        "[driver] blkback: web/vbd0 connected",
        "[driver] netback: web/vif0 connected",
        "[driver] blkback: web/vbd0 disconnected",
        "[driver] netback: web/vif0 disconnected",
        "[hv] domain web destroyed by the control domain",
    ] {
        assert_eq!(t.matches(needle).count(), 2, "{needle:?} twice:\n{t}");
    }
    assert_has(
        &t,
        "[ctl] core: control: web created, connected and destroyed (2 of 2)",
    );
    // Not the control domain: it ends as before once the guests are gone.
    assert_has(&t, "[driver] driver domain: all guests gone, shutting down");
    assert_all_memory_back(&t);
}

#[test]
fn create_and_destroy_are_counted_in_instructions() {
    let _g = serial();
    let (status, t) = run_up("scenarios/bench-domctl.toml", 240);
    assert!(status.success(), "exit status {status}:\n{t}");
    for target in ["small", "large"] {
        for what in ["create", "destroy"] {
            let line = line_with(&t, &format!("bench domctl {what} target={target} "));
            let n = number_after(line, "instructions=");
            assert!(n > 1000, "{line}");
            assert_eq!(number_after(line, "samples="), 16, "{line}");
            println!("domctl: {}", line.rsplit("] ").next().unwrap_or(line));
        }
    }
    // A create zeroes the RAM: the larger domain costs more.
    let create = |target: &str| {
        number_after(
            line_with(&t, &format!("bench domctl create target={target} ")),
            "instructions=",
        )
    };
    assert!(create("large") > create("small"), "{t}");
    assert_has(&t, "[hv] domain small destroyed by the control domain");
    assert_all_memory_back(&t);
}
