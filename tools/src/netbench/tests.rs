//! Tests of `bench net`: its scenarios, the report directory, the host client
//! against a fake QEMU, console lines.

use super::host::from_domain;
use super::*;
use std::io::Read;
use std::net::Shutdown;
use std::time::Instant;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn net_scenarios_are_as_bench_net_expects() {
    let mut g2g = crate::scenario::load(&root().join(bench::NET_SCENARIO), &root())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g2g.machine.cpus, 2);
    assert!(!g2g.machine.icount, "same clock as bench ring");
    assert_eq!(g2g.domain_names(), ["driver", "sink", "source"]);
    let over = set_cmdline(&mut g2g, bench::NET_SOURCE, "bytes", "4096").unwrap();
    assert_eq!(over, "source: bytes=4096");
    let source = g2g.domains.iter().find(|d| d.name == "source").unwrap();
    assert_eq!(
        source.cmdline.as_deref(),
        Some("role=source peer=10.0.2.15 port=5001 bytes=4096 sockbuf=196608 bench")
    );
    // As the scenario has it: the source streams until the sink, after
    // its windows, says stop.
    let file = crate::scenario::load(&root().join(bench::NET_SCENARIO), &root())
        .unwrap_or_else(|e| panic!("{e}"));
    let cmd = |s: &Scenario, d: &str| {
        s.domains
            .iter()
            .find(|x| x.name == d)
            .and_then(|x| x.cmdline.clone())
            .unwrap()
    };
    assert!(cmd(&file, "source").contains(" bytes=unlimited "));
    let windows = format!("bench windows={}", bench::MIN_WINDOWS);
    assert!(cmd(&file, "sink").ends_with(&windows));
    // The same placement as the ring's 2-CPU run.
    let pins: Vec<Option<u32>> = g2g.domains.iter().map(|d| d.cpu).collect();
    assert_eq!(pins, [Some(0), Some(1), Some(0)]);
    let e = set_cmdline(&mut g2g, "nobody", "bytes", "1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs a domain named `nobody`"), "{e}");

    let h2g = crate::scenario::load(&root().join(bench::NET_HOST_SCENARIO), &root())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!h2g.machine.icount);
    assert!(cmd(&h2g, "sink").ends_with(&windows));
    // QEMU's limit: the driver domain alone, named like the sink, with the
    // forward the host client looks for.
    let up = crate::scenario::load(&root().join(NET_UPLINK_SCENARIO), &root())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!up.machine.icount);
    assert_eq!(up.domain_names(), [bench::NET_SINK]);
    let d = &up.domains[0];
    assert_eq!(d.role, crate::scenario::Role::Driver);
    assert_eq!(
        d.cmdline.as_deref(),
        Some(format!("uplink_sink=5001 windows={}", bench::MIN_WINDOWS).as_str())
    );
    let fw = &d.net.as_ref().unwrap().forward;
    assert_eq!(fw[0].guest, bench::NET_PORT);
    assert_eq!(h2g.domain_names(), ["driver", "sink"]);
    let plan = crate::nets::prepare(&h2g).unwrap();
    assert_eq!(plan.forwards.len(), 1);
    assert_eq!(
        (
            plan.forwards[0].domain.as_str(),
            plan.forwards[0].guest_port
        ),
        (bench::NET_SINK, bench::NET_PORT)
    );

    let mut ring = crate::scenario::load(&root().join(bench::NET_RING_SCENARIO), &root())
        .unwrap_or_else(|e| panic!("{e}"));
    set_cmdline(&mut ring, "ring-tx", "sizes", bench::NET_RING_SIZES).unwrap();
    set_cmdline(&mut ring, "ring-tx", "work", bench::NET_RING_WORK).unwrap();
    let tx = ring.domains.iter().find(|d| d.name == "ring-tx").unwrap();
    assert_eq!(tx.cmdline.as_deref(), Some("tx sizes=4096 work=net"));
}

#[test]
fn a_missing_report_directory_is_refused_before_running() {
    let e = check_report_dir(Some(Path::new("/nonexistent-dir/x.json"))).unwrap_err();
    assert!(
        e.to_string()
            .contains("directory /nonexistent-dir does not exist"),
        "{e}"
    );
    check_report_dir(Some(Path::new("x.json"))).unwrap();
    check_report_dir(None).unwrap();
}

/// A prepared "scenario" whose QEMU is `sh -c SCRIPT`, with the sink's
/// port forwarded.
fn fake(script: &str) -> crate::Prepared {
    let src = "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"/bin/true\"\n\
               [[domain]]\nname = \"sink\"\nimage = \"/bin/true\"\n\
               net = { ip = \"10.0.2.15/24\", forward = [{ host = 0, guest = 5001 }] }\n";
    let s =
        crate::scenario::parse(src, Path::new("t.toml"), Path::new("/"), Path::new("/")).unwrap();
    let plan = crate::nets::prepare(&s).unwrap();
    crate::Prepared {
        scenario: s,
        qemu: PathBuf::from("/bin/sh"),
        args: vec!["-c".into(), script.into()],
        forwards: plan.forwards,
        reserved: std::sync::Mutex::new(plan.reserved),
        trace: None,
    }
}

#[test]
fn the_host_client_sends_in_windows_until_stop_and_reads_the_report() {
    // The guest's lines; the "guest" itself is a thread on the port.
    let p = fake(
        "echo '[hv] domain d (id 0, driver domain)'; echo '[hv] domain sink (id 1, guest)'; \
         echo '[sink] net: sink listening on TCP port 5001, UDP echo on port 7'; sleep 4; \
         echo '[sink] bench net rx bytes=1 checksum=0000000000000001 ticks=1 freq=1 frames=1 notify=1 complete=yes windows=0'; \
         sleep 1; echo '[hv] domain sink exited: poweroff (code 0)'; \
         echo '[hv] domain d exited: poweroff (code 0)'; \
         echo '[hv] all domains stopped: 2 ok, 0 failed'",
    );
    let (outcome, (client, got)) = run_prepared(&p, Some(60), |r| {
        let addr = r.addr(bench::NET_SINK, bench::NET_PORT).unwrap();
        let server = std::net::TcpListener::bind(addr).unwrap();
        let guest = std::thread::spawn(move || {
            let (mut c, _) = server.accept().unwrap();
            // Read for 0.6 s, say stop, read to the end.
            let start = Instant::now();
            let (mut data, mut buf) = (Vec::new(), vec![0u8; 65536]);
            while start.elapsed() < Duration::from_millis(600) {
                let n = c.read(&mut buf).unwrap();
                data.extend_from_slice(&buf[..n]);
            }
            c.write_all(b"stop").unwrap();
            c.read_to_end(&mut data).unwrap();
            (data.len() as u64, bench::fnv1a64(bench::FNV_START, &data))
        });
        let client = host_client(r, Some(Duration::from_secs(30)));
        (client, guest.join().unwrap())
    })
    .unwrap();
    let run = client.unwrap();
    assert_eq!(
        got,
        (run.sent, bench::pattern_checksum(run.sent)),
        "the stream is the pattern, all of it"
    );
    // The guest said stop after 0.6 s: the host went on to 5 windows.
    assert_eq!(run.windows.len(), bench::MIN_WINDOWS, "{:?}", run.windows);
    assert!(run
        .windows
        .iter()
        .all(|w| w.elapsed >= Duration::from_millis(bench::MIN_WINDOW_MS)));
    assert!(run.windows.iter().map(|w| w.bytes).sum::<u64>() <= run.sent);
    bench::host_figure("x", &run.windows).unwrap();
    assert!(run.lines[2].contains("sink listening"), "{:?}", run.lines);
    assert!(run.lines.last().unwrap().contains("bench net rx"));
    // The client waited for the machine to power off by itself.
    assert_eq!(outcome.exit_code, EXIT_OK, "{outcome:?}");
    assert_eq!(outcome.summary, ["all domains stopped: 2 ok, 0 failed"]);
}

#[test]
fn a_guest_that_closes_before_stop_fails_the_host_client() {
    let p = fake("echo '[sink] net: sink listening on TCP port 5001'; exec sleep 30");
    let (_, client) = run_prepared(&p, Some(60), |r| {
        let addr = r.addr(bench::NET_SINK, bench::NET_PORT).unwrap();
        let server = std::net::TcpListener::bind(addr).unwrap();
        let guest = std::thread::spawn(move || {
            let (mut c, _) = server.accept().unwrap();
            let mut buf = vec![0u8; 100_000];
            c.read_exact(&mut buf).unwrap();
            // Closes its side without a word, then drains.
            c.shutdown(Shutdown::Write).unwrap();
            let _ = io::copy(&mut c, &mut io::sink());
        });
        let client = host_client(r, Some(Duration::from_secs(30)));
        guest.join().unwrap();
        client
    })
    .unwrap();
    let e = client.unwrap_err();
    assert!(
        matches!(e, HostError::ClosedEarly { stopped: false, windows, bytes } if windows < 5 && bytes >= 100_000),
        "{e}"
    );
    assert!(e.to_string().contains("before it said stop"), "{e}");
}

#[test]
fn the_host_client_gives_up_when_qemu_ends() {
    let p = fake("echo '[sink] net: cannot listen on port 5001'");
    let (_, client) = run_prepared(&p, Some(60), |r| {
        host_client(r, Some(Duration::from_secs(30)))
    })
    .unwrap();
    let e = client.unwrap_err();
    assert!(matches!(e, HostError::Ended(_)), "{e}");
    assert_eq!(
        e.to_string(),
        "QEMU ended before sink listened on port 5001"
    );
    // No forward to the sink: said at once.
    let mut p = fake("exec sleep 30");
    p.forwards.clear();
    let (_, client) = run_prepared(&p, Some(60), |r| host_client(r, None)).unwrap();
    assert_eq!(
        client.unwrap_err().to_string(),
        "the scenario forwards no host port to sink:5001"
    );
}

#[test]
fn domain_lines() {
    assert!(from_domain(
        "[sink] bench net rx bytes=1",
        "sink",
        "bench net rx"
    ));
    assert!(!from_domain(
        "[source] bench net rx bytes=1",
        "sink",
        "bench net rx"
    ));
    assert!(!from_domain("bench net rx", "sink", "bench net rx"));
}
