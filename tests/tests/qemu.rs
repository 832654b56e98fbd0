//! End-to-end tests: boot the shipped scenarios on QEMU through `cargo parapet up`,
//! exactly as a user would, and check the console transcript.
#![deny(unsafe_code)]

use parapet_tests::check::{assert_has, bytes_and_checksum, fetch, forwarded_url, line_with};
use parapet_tests::live::Live;
use parapet_tests::{
    run_parapet, run_parapet_with_cues, run_parapet_with_input, run_up, serial, Cue,
};

#[test]
fn basics_scenario_runs_to_completion() {
    let _g = serial();
    let (status, t) = run_up("scenarios/basics.toml", 240);
    assert!(status.success(), "exit status {status}:\n{t}");
    assert_has(&t, "[driver] ");
    for g in ["guest-a", "guest-b"] {
        for what in [
            "abi: negotiated 1.4",
            "timer: unmasked ok",
            "timer: masked ok",
            "fp: ok",
            "fp upcall: handler without FP: FP state intact, 0 lazy-enable trap(s)",
            "fp upcall: ok",
            "demo: done",
        ] {
            assert_has(&t, &format!("[{g}] {what}"));
        }
        assert_has(&t, &format!("[hv] domain {g} exited: poweroff (code 0)"));
    }
    assert_has(&t, "[hv] all domains stopped: 3 ok, 0 failed");
}

#[test]
fn console_input_reaches_the_driver_domain() {
    let _g = serial();
    // Typed on the serial port: the hypervisor queues it, raises
    // `Virq::Console` in the driver domain, which reads it with `ConsoleRead`.
    let r = run_parapet_with_input(
        &["up", "scenarios/basics.toml", "--timeout", "240"],
        Some(b"echo hello from the host\r\ndomains\nfrobnicate\n"),
    );
    let t = r.transcript();
    assert!(r.status.success(), "exit status {}:\n{t}", r.status);
    assert_has(&t, "[driver] echo: hello from the host");
    assert_has(&t, "[driver] domains: ");
    assert_has(&t, "[driver] unknown command `frobnicate`");
    assert_has(&t, "[hv] all domains stopped: 3 ok, 0 failed");
}

#[test]
fn disk_writes_survive_a_reboot() {
    let _g = serial();
    // The image file scenarios/disk.toml names; start from a fresh one.
    let image = parapet_tests::workspace_root().join("target/parapet/disks/shared.img");
    let _ = std::fs::remove_file(&image);
    for boot in 1..=2 {
        let (status, t) = run_up("scenarios/disk.toml", 240);
        assert!(status.success(), "boot {boot}: exit status {status}:\n{t}");
        for g in ["disk-a", "disk-b"] {
            assert_has(
                &t,
                &format!("[{g}] disk: boot counter {boot} (was {})", boot - 1),
            );
            assert_has(&t, &format!("[{g}] disk: wrote and read back 256 KiB: ok"));
            assert_has(
                &t,
                &format!("[{g}] disk: a read past the end is refused: ok"),
            );
            assert_has(&t, &format!("[{g}] disk: done"));
        }
        assert_has(
            &t,
            "[driver] blkback: disk-a/vbd0 connected: 8192 sectors from disk0 at sector 0",
        );
        assert_has(
            &t,
            "[driver] blkback: disk-b/vbd0 connected: 8192 sectors from disk0 at sector 8192",
        );
    }
    // The writes reached the host file: each guest's counter sits in the
    // first sector of its own range.
    let bytes = std::fs::read(&image).expect("the image file");
    for start in [0usize, 8192 * 512] {
        assert_eq!(&bytes[start..start + 8], b"PRPTDISK", "at byte {start}");
        assert_eq!(bytes[start + 8], 2, "the counter at byte {start}");
    }
}

#[test]
fn hostile_disk_frontend_is_refused_and_others_keep_working() {
    let _g = serial();
    let (status, t) = run_up("scenarios/disk-hostile.toml", 240);
    assert!(status.success(), "exit status {status}:\n{t}");
    for (case, answer) in [
        ("a sane read", "Okay"),
        ("a grant never given", "Error"),
        ("sectors past the disk", "Error"),
        ("a sector number that wraps", "Error"),
        ("a segment past its page", "Error"),
        ("no segments", "Error"),
        ("200 segments", "Error"),
        ("an unknown operation", "NotSupported"),
    ] {
        assert_has(&t, &format!("[evil] hostile: {case}: {answer} (ok)"));
    }
    assert_has(
        &t,
        "[evil] hostile: a flood of 100 bad requests: 100 refused (ok)",
    );
    assert_has(&t, "[driver] blkback: evil/vbd0: ring corrupted");
    assert_has(
        &t,
        "[evil] hostile: a corrupted ring index: disconnected by the backend (ok)",
    );
    assert_has(&t, "[evil] hostile: done");
    // The other guest's disk was untouched by all this.
    assert_has(&t, "[disk-b] disk: wrote and read back 256 KiB: ok");
    assert_has(&t, "[disk-b] disk: done");
    assert_has(&t, "[hv] all domains stopped: 3 ok, 0 failed");
}

#[test]
fn driver_domain_restart_guests_reconnect() {
    let _g = serial();
    // Both guests keep their disks busy (a block written, flushed, read back
    // and checked per round). Once both have made progress, `crash` typed on
    // the console makes the driver domain fault; its `on_crash = "restart"`
    // policy starts it again, and the guests reconnect by themselves.
    let (r, cues) = run_parapet_with_cues(
        &["up", "scenarios/disk-restart.toml", "--timeout", "300"],
        vec![Cue::new(
            &[
                "[disk-a] disk: round 3/60 ok",
                "[disk-b] disk: round 3/60 ok",
            ],
            b"crash\n",
        )],
    );
    let t = r.transcript();
    assert_eq!(cues, 1, "`crash` was never typed:\n{t}");
    // The documented status: a crash followed by a restart is reported but
    // is not a failure.
    assert_eq!(r.status.code(), Some(0), "exit status {}:\n{t}", r.status);
    assert_has(&t, "[driver] crash: faulting on purpose");
    let crash = line_with(&t, "[hv] domain driver crashed:");
    assert!(crash.contains("stage-2 data abort"), "{crash}");
    assert_has(&t, "[hv] domain driver restarted (1 of 5)");
    assert!(
        !t.contains("restarted (2 of 5)"),
        "restarted only once:\n{t}"
    );
    // The new instance found its devices again and re-advertised the disks.
    let restart_at = t.find("[hv] domain driver restarted").unwrap();
    let after = &t[restart_at..];
    assert_has(after, "[driver] driver domain up:");
    for g in ["disk-a", "disk-b"] {
        assert_has(after, &format!("[driver] blkback: {g}/vbd0 connected"));
        // Its requests in flight failed cleanly ("the backend went away")
        // and the round was run again.
        let round = format!("[{g}] disk: round ");
        assert!(
            after
                .lines()
                .any(|l| l.starts_with(&round) && l.contains("the backend went away; retrying")),
            "{g} never retried a round:\n{t}"
        );
        let last = line_with(&t, &format!("[{g}] disk: steady: 60 rounds, "));
        let reconnects: u32 = last
            .split("60 rounds, ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no reconnect count in {last:?}"));
        assert!(reconnects >= 1, "{g} did not reconnect: {last}");
        assert!(
            last.ends_with("60/60 blocks verified: all data verified"),
            "{last}"
        );
        assert_has(&t, &format!("[{g}] disk: round 60/60 ok"));
        assert_has(&t, &format!("[{g}] disk: done"));
        assert_has(&t, &format!("[hv] domain {g} exited: poweroff (code 0)"));
    }
    assert_has(&t, "[hv] domain driver exited: poweroff (code 0)");
    assert_has(&t, "[hv] all domains stopped: 3 ok, 0 failed, 1 restarted");
    assert_has(
        &t,
        "parapet: domain 'driver' crashed and was restarted (1 of 5): stage-2 data abort",
    );
}

#[test]
fn a_domain_that_keeps_crashing_is_restarted_five_times_then_destroyed() {
    let _g = serial();
    let (status, t) = run_up("scenarios/crash-loop.toml", 240);
    assert_eq!(status.code(), Some(1), "exit status {status}:\n{t}");
    for n in 1..=5 {
        assert_has(&t, &format!("[hv] domain faulty restarted ({n} of 5)"));
    }
    assert_eq!(
        t.matches("[hv] domain faulty crashed:").count(),
        6,
        "six crashes:\n{t}"
    );
    assert_has(
        &t,
        "[hv] domain faulty not restarted: it crashed again after 5 restarts (at most 5)",
    );
    // Each instance ran from the start, in the same memory.
    assert_eq!(
        t.matches("[faulty] fault: about to oob-write").count(),
        6,
        "{t}"
    );
    let placements: Vec<&str> = t
        .lines()
        .filter(|l| l.starts_with("[hv] domain faulty (id 2, guest)"))
        .collect();
    assert_eq!(placements.len(), 6, "{t}");
    assert!(
        placements.iter().all(|l| *l == placements[0]),
        "{placements:?}"
    );
    assert_has(&t, "[guest-a] demo: done");
    assert_has(&t, "[hv] all domains stopped: 2 ok, 1 failed, 5 restarted");
    assert_has(
        &t,
        "parapet: domain 'faulty' crashed and was restarted (5 of 5)",
    );
    assert_has(&t, "parapet: domain 'faulty' crashed: stage-2");
}

#[test]
fn faulty_guest_is_isolated() {
    let _g = serial();
    let (status, t) = run_up("scenarios/fault.toml", 240);
    assert_eq!(status.code(), Some(1), "exit status {status}:\n{t}");
    let crash = line_with(&t, "[hv] domain faulty crashed:");
    assert!(crash.contains("stage-2"), "{crash}");
    assert!(crash.contains("FAR"), "{crash}");
    assert_has(&t, "[guest-a] demo: done");
    assert_has(&t, "[hv] domain guest-a exited: poweroff (code 0)");
    assert_has(&t, "[hv] all domains stopped: 2 ok, 1 failed");
    assert_has(&t, "parapet: domain 'faulty' crashed:");
    // Bad hypercalls got typed errors (NoSys, Fault, Inval, VersionMismatch)
    // before the fault, and the guest kept running.
    assert_has(&t, "[faulty] errors: ok");
}

#[test]
fn spinning_guest_is_preempted() {
    let _g = serial();
    // `hog` spins forever on guest-a's CPU with interrupts soft-masked; the
    // time slice preempts it, guest-a finishes, and the run ends at the timeout.
    let (status, t) = run_up("scenarios/spin.toml", 25);
    assert_eq!(status.code(), Some(3), "exit status {status}:\n{t}");
    assert_has(&t, "[hog] fault: about to spin");
    assert_has(&t, "[guest-a] demo: done");
    assert_has(&t, "[hv] domain guest-a exited: poweroff (code 0)");
    assert_has(&t, "still running: driver, hog");
}

#[test]
fn missing_scenario_fails_fast() {
    let r = run_parapet(&["up", "scenarios/does-not-exist.toml", "--no-build"]);
    assert!(!r.status.success());
    assert!(
        r.stderr.contains("scenarios/does-not-exist.toml"),
        "stderr should name the file:\n{}",
        r.stderr
    );
}

#[test]
fn malformed_scenario_names_field_and_line() {
    let dir = std::env::temp_dir().join(format!("parapet-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[machine]\ncpus = 1\n\n[[domain]]\nname = \"a\"\nimage = \"demo-guest\"\n\n\
         [[domain]]\nname = \"b\"\nimage = \"demo-guest\"\nmemory_mib = 4096\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let r = run_parapet(&["up", p, "--no-build"]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(!r.status.success());
    let expected = format!("{p}:11: domain[1].memory_mib: 4096 is out of range 2..=512");
    assert!(
        r.stderr.contains(&expected),
        "stderr should contain {expected:?}:\n{}",
        r.stderr
    );
}

#[test]
fn hostile_ipc_calls_get_typed_errors() {
    let _g = serial();
    let (status, t) = run_up("scenarios/ipc.toml", 240);
    assert!(status.success(), "exit status {status}:\n{t}");
    for (who, check, error) in [
        (
            "ipc-client",
            "send on the server's port number (foreign)",
            "no such object",
        ),
        (
            "ipc-client",
            "map a grant we were not given",
            "no such object",
        ),
        (
            "ipc-client",
            "map a read-only grant writable",
            "access denied",
        ),
        (
            "ipc-client",
            "copy past the end of the page",
            "invalid argument",
        ),
        (
            "ipc-client",
            "copy into the read-only grant",
            "access denied",
        ),
        (
            "ipc-client",
            "copy from a domain that does not exist",
            "no such domain",
        ),
        ("ipc-server", "revoke while mapped", "busy"),
        (
            "ipc-client",
            "read the console (not the console-input domain)",
            "permission denied",
        ),
        (
            "ipc-client",
            "bind a device interrupt we do not own",
            "access denied",
        ),
        (
            "ipc-client",
            "end a device interrupt we did not bind",
            "access denied",
        ),
    ] {
        assert_has(&t, &format!("[{who}] check {check}: ok ({error})"));
    }
    assert_has(&t, "[ipc-server] check revoke after unmap: ok");
    assert_has(&t, "[ipc-server] check the client's write arrived: ok");
    assert_has(&t, "[ipc-server] check events arrived: ok");
    assert!(!t.contains("FAILED"), "{t}");
    // Ports bound to a virtual IRQ and to a vCPU (IPI), masking and unmasking.
    for check in [
        "the timer arrived on its port: ok",
        "bind it twice: ok (busy)",
        "the IPI arrived: ok",
        "held while masked: ok",
        "delivered on unmask: ok",
    ] {
        assert_has(&t, &format!("[ipc-client] check {check}"));
    }
    assert_has(&t, "[ipc-client] ipc: 52 checks, 0 failed");
    assert_has(&t, "[hv] all domains stopped: 2 ok, 0 failed");
}

#[test]
fn byte_channel_moves_megabytes_intact() {
    let _g = serial();
    let (status, t) = run_up("scenarios/chan.toml", 300);
    assert!(status.success(), "exit status {status}:\n{t}");
    let sizes = t
        .lines()
        .filter(|l| l.starts_with("[chan-rx] bench ring rx ") && l.ends_with("checksum=ok"))
        .count();
    assert_eq!(sizes, 2, "{t}");
    assert!(!t.contains("checksum=bad"), "{t}");
    // 2 MiB in 4 KiB messages, and 34 messages of 60000 B.
    assert_has(
        &t,
        "[chan-rx] rx: received 4137152 bytes, all checksums verified",
    );
    assert_has(&t, "[hv] all domains stopped: 2 ok, 0 failed");
}

#[test]
fn killing_one_end_gives_the_other_a_clean_error() {
    let _g = serial();
    let (status, t) = run_up("scenarios/chan-kill.toml", 300);
    assert_eq!(status.code(), Some(1), "exit status {status}:\n{t}");
    assert_has(&t, "[chan-tx] tx: crashing on purpose after");
    assert_has(&t, "[hv] domain chan-tx crashed:");
    let end = line_with(&t, "[chan-rx] rx: channel ended after");
    assert!(end.ends_with("the peer died"), "{end}");
    // The receiver is not hurt: it reports the error and exits by itself.
    assert_has(&t, "[chan-rx] ring-bench: the peer died");
    assert_has(&t, "[hv] domain chan-rx exited: poweroff (code 1)");
}

#[test]
fn bench_micro_reports_every_path_as_json() {
    let _g = serial();
    let json = std::env::temp_dir().join(format!("parapet-micro-{}.json", std::process::id()));
    let r = run_parapet(&[
        "bench",
        "micro",
        "--json",
        json.to_str().unwrap(),
        "--timeout",
        "300",
    ]);
    assert!(r.status.success(), "{}\n{}", r.stdout, r.stderr);
    let text = std::fs::read_to_string(&json).expect("the JSON report");
    let _ = std::fs::remove_file(&json);
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let results = v["results"].as_array().expect("results");
    for name in [
        "null_hypercall",
        "event_to_handler",
        "world_switch",
        "pingpong_block",
        "pingpong_upcall",
    ] {
        let r = results
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {text}"));
        // Instruction counts exist and are plausible (not a target check).
        let n = r["instructions"].as_u64().unwrap();
        assert!(n > 0 && n < 100_000, "{name}: {n}");
    }
}

#[test]
fn granter_dying_takes_its_pages_from_the_mapper_cleanly() {
    let _g = serial();
    let (status, t) = run_up("scenarios/chan-kill-server.toml", 300);
    assert_eq!(status.code(), Some(1), "exit status {status}:\n{t}");
    assert_has(&t, "[chan-rx] rx: crashing on purpose after");
    assert_has(&t, "[hv] domain chan-rx crashed:");
    // The sender had the receiver's pages mapped: it gets an error, not a
    // fault, and exits by itself (unmapping the orphaned mappings).
    assert_has(&t, "[chan-tx] ring-bench: the peer died");
    assert_has(&t, "[hv] domain chan-tx exited: poweroff (code 1)");
    assert!(!t.contains("[hv] domain chan-tx crashed"), "{t}");
}

#[test]
fn guests_talk_tcp_udp_and_icmp_over_the_virtual_network() {
    let _g = serial();
    let (status, t) = run_up("scenarios/net.toml", 300);
    assert!(status.success(), "exit status {status}:\n{t}");
    // The driver domain drives virtio-net and connects both vifs.
    assert_has(&t, "[driver] virtio-net@");
    assert_has(
        &t,
        "[driver] netback: net-a/vif0 connected: MAC 02:00:00:00:00:02",
    );
    assert_has(
        &t,
        "[driver] netback: net-b/vif0 connected: MAC 02:00:00:00:00:03",
    );
    assert_has(&t, "[net-a] net: address 10.0.2.15/24");
    // ICMP and UDP, guest to guest.
    assert_has(line_with(&t, "[net-b] net: ping 10.0.2.15:"), "reply in");
    assert_has(&t, "[net-b] net: udp echo via 10.0.2.15:7: ok");
    // 4 MiB over TCP: what net-a received is what net-b sent.
    let sent = bytes_and_checksum(line_with(&t, "[net-b] net: source sent"));
    let got = bytes_and_checksum(line_with(&t, "[net-a] net: sink received"));
    assert_eq!(sent.0, 4 << 20, "{t}");
    assert_eq!(got, sent, "{t}");
    assert_has(&t, "[hv] all domains stopped: 3 ok, 0 failed");
}

#[test]
fn hostile_net_frontend_is_disconnected_and_others_keep_working() {
    let _g = serial();
    let (status, t) = run_up("scenarios/net-hostile.toml", 300);
    assert!(status.success(), "exit status {status}:\n{t}");
    assert_has(
        &t,
        "[driver] netback: evil/vif0: too many malformed requests: disconnecting",
    );
    assert_has(
        &t,
        "[evil] net: hostile: disconnected by netback after malformed requests: ok",
    );
    assert_has(&t, "[evil] net: hostile: connected again");
    assert_has(
        line_with(&t, "[driver] netback: evil/vif0: vif ring:"),
        "disconnecting",
    );
    assert_has(
        &t,
        "[evil] net: hostile: disconnected by netback after corrupting the ring: ok",
    );
    // None of its requests was forwarded.
    assert_has(&t, "[driver]   vif evil/vif0: 0 frames (0 B) from it");
    // Every malformed request it got to post was counted (more than 64 get a
    // frontend disconnected; netback may drop it before the flood ends).
    let evil = line_with(&t, "[driver]   vif evil/vif0:");
    let malformed: u64 = evil
        .split(" malformed")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no malformed count in {evil:?}"));
    assert!((65..=104).contains(&malformed), "{evil}");
    // Meanwhile the others' transfer went through intact.
    let sent = bytes_and_checksum(line_with(&t, "[net-b] net: source sent"));
    let got = bytes_and_checksum(line_with(&t, "[net-a] net: sink received"));
    assert_eq!(sent.0, 2 << 20, "{t}");
    assert_eq!(got, sent, "{t}");
    assert_has(&t, "[hv] all domains stopped: 4 ok, 0 failed");
}

/// The demo (scenarios/demo.toml, what `cargo parapet up` boots): guest-b
/// fetches guest-a's page over the virtual network, and the host fetches it
/// with curl through QEMU's port forward, virtio-net, the switch and netfront.
#[test]
fn demo_serves_its_page_to_the_other_guest_and_to_the_host() {
    use std::time::Duration;
    let _g = serial();
    let mut run = Live::start(&["up", "scenarios/demo.toml"]);
    assert!(
        run.wait_for(
            "[guest-a] http: serving on 10.0.2.15:80",
            Duration::from_secs(300)
        ),
        "guest-a never served:\n{}",
        run.transcript()
    );
    let t = run.transcript();
    let url = forwarded_url(&t, "is reachable at http://127.0.0.1:");
    let curl = fetch(&format!("{url}from-the-host"));
    let page = curl.page.clone();
    assert!(
        run.wait_for(
            "[guest-b] fetch: 3 of 3 pages fetched",
            Duration::from_secs(120)
        ),
        "guest-b did not fetch its pages:\n{}",
        run.transcript()
    );
    let r = run.interrupt();
    let t = r.transcript();
    assert!(curl.ok, "curl {url} failed: {}\n{t}", curl.error);
    assert_has(&page, "<h1>Hello from guest-a</h1>");
    assert_has(&page, "path:          /from-the-host");
    assert_has(&page, "(kept on vbd0)");
    assert_has(&t, "[guest-a] http: request ");
    assert_has(&t, "GET /from-the-host");
    // guest-b saw the live numbers, counted by guest-a and kept on its disk.
    assert_has(
        &t,
        "[guest-b] fetch 3/3: http://10.0.2.15/: HTTP/1.0 200 OK",
    );
    assert_has(&t, "[guest-b]   served by:     guest-a");
    assert_has(&t, "[driver] netback: guest-a/vif0 connected");
    assert_has(&t, "[driver] blkback: guest-a/vbd0 connected");
    assert_has(&t, "[hv] domain guest-b exited: poweroff (code 0)");
    // Ctrl-C ends the service: parapet says so and leaves no QEMU behind.
    assert_has(&t, "interrupted (Ctrl-C)");
}

/// Out through QEMU: a guest without a static address gets one by DHCP from
/// QEMU's user network (through the driver domain's virtio-net and switch),
/// pings the gateway and fetches a page from a server on the host (10.0.2.2
/// is the host's loopback as the guests see it).
#[test]
fn dhcp_guest_reaches_a_server_on_the_host_through_the_uplink() {
    use std::io::{Read, Write};
    let _g = serial();
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let served = std::thread::spawn(move || {
        let (mut conn, _) = server.accept().expect("the guest connects");
        conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 512];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let body = "greeting: hello from the host\n";
        let _ = write!(
            conn,
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        String::from_utf8_lossy(&req).into_owned()
    });
    let dir = std::env::temp_dir().join(format!("parapet-dhcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dhcp.toml");
    std::fs::write(
        &path,
        format!(
            "[machine]\ncpus = 2\n\n\
             [[domain]]\nname = \"driver\"\nrole = \"driver\"\nimage = \"driver-domain\"\nmemory_mib = 64\ncpu = 0\n\n\
             [[domain]]\nname = \"dhcp\"\nimage = \"net-guest\"\ncpu = 1\n\
             cmdline = \"role=fetch url=http://10.0.2.2:{port}/from-a-guest count=1 ping=10.0.2.2\"\n\
             net = {{}}\n"
        ),
    )
    .unwrap();
    let (status, t) = run_up(path.to_str().unwrap(), 240);
    std::fs::remove_dir_all(&dir).ok();
    assert!(status.success(), "exit status {status}:\n{t}");
    // QEMU's DHCP server hands out 10.0.2.15 first.
    assert_has(&t, "[dhcp] net: address 10.0.2.15/24");
    assert_has(line_with(&t, "[dhcp] net: ping 10.0.2.2:"), "reply in");
    assert_has(&t, "[dhcp] fetch 1/1: ");
    assert_has(&t, "[dhcp]   greeting: hello from the host");
    let req = served.join().unwrap();
    assert!(req.starts_with("GET /from-a-guest HTTP/1.0\r\n"), "{req:?}");
}

/// The driver domain is restarted while a guest fetches another's page: both
/// vifs (and the server's disk) reconnect by themselves and every page is
/// fetched in the end.
#[test]
fn driver_domain_restart_network_guests_reconnect() {
    let _g = serial();
    let (r, cues) = run_parapet_with_cues(
        &["up", "scenarios/net-restart.toml", "--timeout", "300"],
        vec![Cue::new(
            &["[net-b] fetch 3/12: http://10.0.2.15/: HTTP/1.0 200 OK"],
            b"crash\n",
        )],
    );
    let t = r.transcript();
    assert_eq!(cues, 1, "`crash` was never typed:\n{t}");
    assert_eq!(r.status.code(), Some(0), "exit status {}:\n{t}", r.status);
    assert_has(&t, "[hv] domain driver restarted (1 of 5)");
    let after = &t[t.find("[hv] domain driver restarted").unwrap()..];
    // The new instance drives virtio-net again and both vifs come back.
    assert_has(after, "[driver] virtio-net@");
    for g in ["net-a", "net-b"] {
        assert_has(
            after,
            &format!("[{g}] net: vif0: the backend went away; reconnecting"),
        );
        assert_has(after, &format!("[{g}] net: vif0: reconnected (1 so far)"));
        assert_has(after, &format!("[driver] netback: {g}/vif0 connected"));
    }
    assert_has(after, "[driver] blkback: net-a/vbd0 connected");
    // Nothing was lost for good: every page arrived, every request was served.
    assert_has(
        &t,
        "[net-b] fetch 12/12: http://10.0.2.15/: HTTP/1.0 200 OK",
    );
    assert_has(&t, "[net-b] fetch: 12 of 12 pages fetched");
    assert_has(&t, "GET /quit");
    assert_has(&t, "[net-a] http: served ");
    assert_has(&t, "[hv] domain net-a exited: poweroff (code 0)");
    assert_has(&t, "[hv] all domains stopped: 3 ok, 0 failed, 1 restarted");
}
