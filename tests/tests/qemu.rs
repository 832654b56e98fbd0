//! End-to-end tests: boot the shipped scenarios on QEMU through `cargo parapet up`,
//! exactly as a user would, and check the console transcript.

use parapet_tests::{run_parapet, run_parapet_with_input, run_up, serial};

fn assert_has(transcript: &str, needle: &str) {
    assert!(
        transcript.contains(needle),
        "the transcript should contain {needle:?}:\n{transcript}"
    );
}

fn line_with<'a>(transcript: &'a str, needle: &str) -> &'a str {
    transcript
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line contains {needle:?}:\n{transcript}"))
}

#[test]
fn demo_scenario_runs_to_completion() {
    let _g = serial();
    let (status, t) = run_up("scenarios/demo.toml", 240);
    assert!(status.success(), "exit status {status}:\n{t}");
    assert_has(&t, "[driver] ");
    for g in ["guest-a", "guest-b"] {
        for what in [
            "abi: negotiated 1.2",
            "timer: unmasked ok",
            "timer: masked ok",
            "fp: ok",
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
        &["up", "scenarios/demo.toml", "--timeout", "240"],
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
    for name in ["null_hypercall", "event_to_handler", "world_switch"] {
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
