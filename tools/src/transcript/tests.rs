//! Host tests of the transcript: synthetic consoles, their events and outcomes.

use super::*;

fn names() -> Vec<String> {
    ["driver", "guest-a", "guest-b"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The hypervisor announcing the three domains, as every run starts.
const BOOT: &str = "[hv] domain driver (id 0, driver domain, 1:1, virtio-mmio passed through): 64 MiB at IPA 0x48000000 (PA 0x48000000), 1 vCPU(s) on CPU 0, entry 0x48000000\n\
    [hv] domain guest-a (id 1, guest): 32 MiB at IPA 0x40000000 (PA 0x50000000), 1 vCPU(s) on CPU 1, entry 0x40000000\n\
    [hv] domain guest-b (id 2, guest): 32 MiB at IPA 0x40000000 (PA 0x52000000), 1 vCPU(s) on CPU 0, entry 0x40000000\n";

/// A run's transcript: [`BOOT`], then `lines`.
fn feed(lines: &str) -> Transcript {
    feed_raw(&format!("{BOOT}{lines}"))
}

/// Exactly `lines`.
fn feed_raw(lines: &str) -> Transcript {
    let mut t = Transcript::new(names());
    for l in lines.lines() {
        t.feed(l);
    }
    t
}

#[test]
fn classify_lines() {
    assert_eq!(
        classify("[guest-a] abi: negotiated 1.0"),
        Event::Output {
            source: "guest-a".into()
        }
    );
    assert_eq!(
        classify("[hv] domain guest-a exited: poweroff (code 0)"),
        Event::Exited {
            domain: "guest-a".into(),
            reason: "poweroff".into(),
            code: Some(0)
        }
    );
    assert_eq!(
        classify("[hv] domain faulty crashed: stage-2 data abort at FAR 0x1234"),
        Event::Crashed {
            domain: "faulty".into(),
            reason: "stage-2 data abort at FAR 0x1234".into()
        }
    );
    assert_eq!(
        classify("[hv] all domains stopped: 2 ok, 1 failed"),
        Event::AllStopped {
            ok: 2,
            failed: 1,
            restarted: 0
        }
    );
    assert_eq!(
        classify("[hv] all domains stopped: 3 ok, 0 failed, 2 restarted"),
        Event::AllStopped {
            ok: 3,
            failed: 0,
            restarted: 2
        }
    );
    assert_eq!(
        classify("[hv] domain driver restarted (1 of 5)"),
        Event::Restarted {
            domain: "driver".into(),
            nth: 1,
            max: 5
        }
    );
    // Not the lifecycle lines, only look alike.
    for other in [
        "[hv] all domains stopped: 3 ok, 0 failed, 2 rebooted",
        "[hv] domain driver restarted (soon)",
        "[hv] domain driver not restarted: it crashed again after 5 restarts (at most 5)",
    ] {
        assert_eq!(
            classify(other),
            Event::Output {
                source: "hv".into()
            },
            "{other}"
        );
    }
    assert_eq!(
        classify("[hv] domain guest-a (id 1, guest): 32 MiB at IPA 0x40000000"),
        Event::Started {
            domain: "guest-a".into()
        }
    );
    assert_eq!(
        classify("[hv] domain image at 0x44020000 not started: image outside the module area (bootargs `name=x mem_mib=4`)"),
        Event::NotStarted {
            domain: Some("x".into()),
            addr: "0x44020000".into(),
            reason: "image outside the module area (bootargs `name=x mem_mib=4`)".into()
        }
    );
    // A domain may be called "image".
    assert_eq!(
        classify("[hv] domain image crashed: x"),
        Event::Crashed {
            domain: "image".into(),
            reason: "x".into()
        }
    );
    assert_eq!(
        classify("[hv] domain image (id 3, guest): 2 MiB"),
        Event::Started {
            domain: "image".into()
        }
    );
    assert_eq!(
        classify("[hv] PANIC: oops at x.rs:3"),
        Event::Panic("oops at x.rs:3".into())
    );
    assert_eq!(
        classify("[hv] booting"),
        Event::Output {
            source: "hv".into()
        }
    );
    assert_eq!(classify("garbage"), Event::Other);
    assert_eq!(classify("[no close"), Event::Other);
}

#[test]
fn success() {
    let t = feed(
        "[hv] boot\n[driver] up\n[guest-a] demo: done\n\
         [hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain guest-b exited: poweroff (code 0)\n\
         [hv] domain driver exited: poweroff (code 0)\n\
         [hv] all domains stopped: 3 ok, 0 failed\n",
    );
    assert!(t.finished());
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_OK, "{o:?}");
}

#[test]
fn crash_is_failure() {
    let t = feed(
        "[hv] domain guest-b crashed: stage-2 data abort, FAR 0x9000_0000\n\
         [hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain driver exited: poweroff (code 0)\n\
         [hv] all domains stopped: 2 ok, 1 failed\n",
    );
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED);
    assert_eq!(
        o.summary,
        ["domain 'guest-b' crashed: stage-2 data abort, FAR 0x9000_0000"]
    );
}

#[test]
fn restarted_crash_is_not_a_failure_but_is_reported() {
    let t = feed(
        "[hv] domain driver crashed: stage-2 data abort (read) at IPA 0x1\n\
         [hv] domain driver stats: 9 hypercalls\n\
         [hv] domain driver restarted (1 of 5)\n\
         [hv] domain driver (id 0, driver domain): 64 MiB\n\
         [hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain guest-b exited: poweroff (code 0)\n\
         [hv] domain driver exited: poweroff (code 0)\n\
         [hv] all domains stopped: 3 ok, 0 failed, 1 restarted\n",
    );
    assert_eq!(t.restarts().len(), 1);
    assert_eq!(
        t.restarts()[0].reason,
        "stage-2 data abort (read) at IPA 0x1"
    );
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_OK, "{o:?}");
    assert_eq!(
        o.summary,
        [
            "domain 'driver' crashed and was restarted (1 of 5): stage-2 data abort (read) at IPA 0x1",
            "all domains stopped: 3 ok, 0 failed, 1 restarted"
        ]
    );
}

#[test]
fn a_crash_after_the_last_restart_is_a_failure() {
    let t = feed(
        "[hv] domain driver crashed: x\n\
         [hv] domain driver restarted (1 of 1)\n\
         [hv] domain driver crashed: y\n\
         [hv] domain driver not restarted: it crashed again after 1 restarts (at most 1)\n\
         [hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain guest-b exited: poweroff (code 0)\n\
         [hv] all domains stopped: 2 ok, 1 failed, 1 restarted\n",
    );
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED, "{o:?}");
    assert_eq!(
        o.summary,
        [
            "domain 'driver' crashed and was restarted (1 of 1): x",
            "domain 'driver' crashed: y"
        ]
    );
    assert_eq!(
        t.ends().get("driver"),
        Some(&DomainEnd::Crashed("y".into()))
    );
}

#[test]
fn a_restarted_domain_that_never_ends_is_still_running() {
    let t = feed(
        "[hv] domain driver crashed: x\n\
         [hv] domain driver restarted (1 of 5)\n\
         [hv] domain guest-a exited: poweroff (code 0)\n",
    );
    assert_eq!(t.still_running(), ["driver", "guest-b"]);
    let o = t.outcome(QemuEnd::TimedOut { secs: 9 });
    assert_eq!(o.exit_code, EXIT_TIMEOUT);
}

#[test]
fn nonzero_exit_is_failure() {
    let t = feed(
        "[hv] domain guest-a exited: poweroff (code 3)\n\
         [hv] all domains stopped: 2 ok, 1 failed\n",
    );
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED);
    assert_eq!(o.summary[0], "domain 'guest-a' exited with code 3");
}

#[test]
fn failed_count_without_line_is_failure() {
    let t = feed("[hv] all domains stopped: 2 ok, 1 failed\n");
    assert_eq!(t.outcome(QemuEnd::Exited(0)).exit_code, EXIT_DOMAIN_FAILED);
}

#[test]
fn panic() {
    let t = feed("[hv] domain guest-a exited: poweroff (code 0)\n[hv] PANIC: bad thing\n");
    assert!(t.finished());
    let o = t.outcome(QemuEnd::Hung);
    assert_eq!(o.exit_code, EXIT_PLATFORM);
    assert_eq!(o.summary[0], "hypervisor panic: bad thing");
    assert!(
        o.summary.iter().any(|s| s.contains("driver, guest-b")),
        "{o:?}"
    );
}

#[test]
fn timeout_names_running_domains() {
    let t = feed("[hv] domain guest-b exited: poweroff (code 0)\n");
    assert!(!t.finished());
    let o = t.outcome(QemuEnd::TimedOut { secs: 60 });
    assert_eq!(o.exit_code, EXIT_TIMEOUT);
    assert_eq!(
        o.summary,
        ["timeout after 60 s; still running: driver, guest-a"]
    );
}

#[test]
fn a_domain_without_an_end_fails_the_run() {
    let t = feed(
        "[hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain driver exited: poweroff (code 0)\n\
         [hv] all domains stopped: 2 ok, 0 failed\n",
    );
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED, "{o:?}");
    assert_eq!(
        o.summary,
        ["domain 'guest-b' reported no end (neither exited, crashed nor was destroyed) before all domains stopped"]
    );
}

#[test]
fn a_domain_never_started_fails_the_run() {
    let t = feed_raw(
        "[hv] domain driver (id 0, driver domain): 64 MiB\n\
         [hv] domain guest-a (id 1, guest): 32 MiB\n\
         [hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain driver exited: poweroff (code 0)\n\
         [hv] all domains stopped: 2 ok, 0 failed\n",
    );
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED, "{o:?}");
    assert_eq!(
        o.summary,
        ["domain 'guest-b' was never started (the hypervisor did not announce it)"]
    );
    // Only once the hypervisor says it is done: a run stopped earlier
    // keeps its own status.
    let o = t.outcome(QemuEnd::TimedOut { secs: 1 });
    assert_eq!(o.exit_code, EXIT_TIMEOUT, "{o:?}");
}

#[test]
fn a_refused_image_fails_the_run_and_is_named() {
    let t = feed_raw(
        "[hv] domain driver (id 0, driver domain): 64 MiB\n\
         [hv] domain guest-a (id 1, guest): 32 MiB\n\
         [hv] domain image at 0x44040000 not started: not enough RAM left for this domain (bootargs `name=guest-b role=guest mem_mib=32 vcpus=1`)\n\
         [hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain driver exited: poweroff (code 0)\n\
         [hv] all domains stopped: 2 ok, 1 failed\n",
    );
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED, "{o:?}");
    assert_eq!(
        o.summary,
        ["domain 'guest-b' (image at 0x44040000) was not started: not enough RAM left for this domain (bootargs `name=guest-b role=guest mem_mib=32 vcpus=1`)"]
    );
    // Bootargs that do not parse name no domain; the scenario's missing
    // one is named as never started.
    let t = feed_raw(
        "[hv] domain driver (id 0, driver domain): 64 MiB\n\
         [hv] domain guest-a (id 1, guest): 32 MiB\n\
         [hv] domain image at 0x44040000 not started: bad domain entry (bootargs `name=guest-b mem_mib=1`)\n\
         [hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain driver exited: poweroff (code 0)\n\
         [hv] all domains stopped: 2 ok, 1 failed\n",
    );
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED, "{o:?}");
    assert_eq!(
        o.summary,
        [
            "the domain image at 0x44040000 was not started: bad domain entry (bootargs `name=guest-b mem_mib=1`)",
            "domain 'guest-b' was never started (the hypervisor did not announce it)"
        ]
    );
}

#[test]
fn after_a_panic_missing_ends_are_listed_not_blamed() {
    let t = feed("[hv] domain guest-a exited: poweroff (code 0)\n[hv] PANIC: x\n");
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_PLATFORM, "{o:?}");
    assert_eq!(
        o.summary,
        [
            "hypervisor panic: x",
            "no end reported for: driver, guest-b"
        ]
    );
}

#[test]
fn timeout_beats_domain_failure() {
    let t = feed("[hv] domain guest-b crashed: x\n");
    let o = t.outcome(QemuEnd::TimedOut { secs: 5 });
    assert_eq!(o.exit_code, EXIT_TIMEOUT);
    assert_eq!(o.summary.len(), 2);
}

#[test]
fn a_stopped_service_ends_well_unless_a_domain_failed() {
    let t = feed("[guest-a] serving\n");
    let o = t.outcome(QemuEnd::Stopped {
        secs: 30,
        why: "--timeout",
    });
    assert_eq!(o.exit_code, EXIT_OK, "{o:?}");
    assert_eq!(
        o.summary,
        [
            "stopped after 30 s (--timeout)",
            "still running: driver, guest-a, guest-b"
        ]
    );
    let t = feed("[hv] domain guest-b crashed: x\n");
    let o = t.outcome(QemuEnd::Stopped {
        secs: 30,
        why: "--timeout",
    });
    assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED, "{o:?}");
    assert_eq!(o.summary[2], "domain 'guest-b' crashed: x");
    let t = feed("[hv] PANIC: boom\n");
    let o = t.outcome(QemuEnd::Stopped { secs: 1, why: "x" });
    assert_eq!(o.exit_code, EXIT_PLATFORM, "{o:?}");
}

#[test]
fn ctrl_c_gives_130_and_the_summary() {
    let t = feed("[hv] domain guest-b crashed: x\n");
    let o = t.outcome(QemuEnd::Interrupted { secs: 7 });
    assert_eq!(o.exit_code, EXIT_INTERRUPTED);
    assert_eq!(
        o.summary,
        [
            "interrupted (Ctrl-C) after 7 s",
            "still running: driver, guest-a",
            "domain 'guest-b' crashed: x"
        ]
    );
}

#[test]
fn qemu_error_and_missing_all_stopped() {
    let t = feed("[hv] all domains stopped: 3 ok, 0 failed\n");
    assert_eq!(t.outcome(QemuEnd::Exited(1)).exit_code, EXIT_PLATFORM);
    assert_eq!(t.outcome(QemuEnd::Signalled).exit_code, EXIT_PLATFORM);
    let t = feed("[guest-a] hello\n");
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_PLATFORM);
    assert!(o.summary[0].contains("driver, guest-a, guest-b"), "{o:?}");
}

#[test]
fn render_colours_prefix_only() {
    let n = names();
    assert_eq!(render("[guest-a] hi", &n, false), "[guest-a] hi");
    assert_eq!(
        render("[guest-a] hi", &n, true),
        "\x1b[32m[guest-a]\x1b[0m hi"
    );
    assert_eq!(render("[hv] x", &n, true), "\x1b[1m[hv]\x1b[0m x");
    assert_eq!(render("plain", &n, true), "plain");
}

/// The hypervisor announcing the driver and guest-a, with guest-b loaded
/// but not started (`autostart = false`).
const BOOT_WAITING: &str = "[hv] domain driver (id 0, driver domain, 1:1, virtio-mmio passed through): 64 MiB at IPA 0x48000000 (PA 0x48000000), 1 vCPU(s) on CPU 0, entry 0x48000000\n\
    [hv] domain guest-a (id 1, guest): 32 MiB at IPA 0x40000000 (PA 0x50000000), 1 vCPU(s) on CPU 1, entry 0x40000000\n\
    [hv] domain guest-b loaded as id 2, not started (autostart = false)\n";

#[test]
fn classify_run_time_lines() {
    assert_eq!(
        classify("[hv] domain guest-b loaded as id 2, not started (autostart = false)"),
        Event::Loaded {
            domain: "guest-b".into()
        }
    );
    assert_eq!(
        classify("[hv] domain guest-a destroyed by the control domain"),
        Event::Destroyed {
            domain: "guest-a".into()
        }
    );
    for other in [
        "[hv] domain guest-a destroyed by accident",
        "[hv] domain guest-a loaded",
        "[hv] domain guest-a paused",
        "[guest-a] domain guest-a destroyed by the control domain",
    ] {
        assert!(
            matches!(classify(other), Event::Output { .. }),
            "{other}: {:?}",
            classify(other)
        );
    }
}

#[test]
fn a_domain_not_started_is_expected_neither_to_start_nor_to_end() {
    let t = feed_raw(&format!(
        "{BOOT_WAITING}[hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain driver exited: poweroff (code 0)\n\
         [hv] all domains stopped: 2 ok, 0 failed\n"
    ));
    assert_eq!(t.waiting().collect::<Vec<_>>(), ["guest-b"]);
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_OK, "{o:?}");
    assert_eq!(o.summary, ["all domains stopped: 2 ok, 0 failed"]);
    // Nor is it running when the run is stopped.
    let t = feed_raw(&format!("{BOOT_WAITING}[guest-a] serving\n"));
    assert_eq!(t.still_running(), ["driver", "guest-a"]);
    let o = t.outcome(QemuEnd::Interrupted { secs: 3 });
    assert_eq!(o.summary[1], "still running: driver, guest-a");
}

#[test]
fn a_destroyed_domain_has_ended_well() {
    let t = feed(
        "[hv] domain guest-b destroyed by the control domain\n\
         [hv] domain guest-b stats: 9 hypercalls\n\
         [hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain driver exited: poweroff (code 0)\n\
         [hv] all domains stopped: 3 ok, 0 failed\n",
    );
    assert_eq!(t.ends().get("guest-b"), Some(&DomainEnd::Destroyed));
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_OK, "{o:?}");
    assert_eq!(o.summary, ["all domains stopped: 3 ok, 0 failed"]);
}

#[test]
fn a_created_domain_must_end_like_any_other() {
    let created = format!(
        "{BOOT_WAITING}[hv] domain guest-b (id 2, guest): 32 MiB at IPA 0x40000000 (PA 0x52000000), 1 vCPU(s) on CPU 0, entry 0x40000000\n\
         [guest-b] hello\n"
    );
    // It ends: fine, whether it exited or was destroyed.
    for end in [
        "[hv] domain guest-b exited: poweroff (code 0)\n",
        "[hv] domain guest-b destroyed by the control domain\n",
    ] {
        let t = feed_raw(&format!(
            "{created}{end}[hv] domain guest-a exited: poweroff (code 0)\n\
             [hv] domain driver exited: poweroff (code 0)\n\
             [hv] all domains stopped: 3 ok, 0 failed\n"
        ));
        assert_eq!(t.waiting().count(), 0);
        let o = t.outcome(QemuEnd::Exited(0));
        assert_eq!(o.exit_code, EXIT_OK, "{end}: {o:?}");
    }
    // It does not: a failure, as for a domain started at boot.
    let t = feed_raw(&format!(
        "{created}[hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain driver exited: poweroff (code 0)\n\
         [hv] all domains stopped: 2 ok, 0 failed\n"
    ));
    assert_eq!(t.still_running(), ["guest-b"]);
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED, "{o:?}");
    assert_eq!(
        o.summary,
        ["domain 'guest-b' reported no end (neither exited, crashed nor was destroyed) before all domains stopped"]
    );
    // It crashes: a failure.
    let t = feed_raw(&format!(
        "{created}[hv] domain guest-b crashed: x\n\
         [hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain driver exited: poweroff (code 0)\n\
         [hv] all domains stopped: 2 ok, 1 failed\n"
    ));
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED, "{o:?}");
    assert_eq!(o.summary, ["domain 'guest-b' crashed: x"]);
}

#[test]
fn a_domain_destroyed_then_created_again_must_end_again() {
    let again = "[hv] domain guest-b destroyed by the control domain\n\
         [hv] domain guest-b (id 2, guest): 32 MiB at IPA 0x40000000 (PA 0x52000000), 1 vCPU(s) on CPU 0, entry 0x40000000\n";
    let t = feed(&format!(
        "{again}[hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain driver exited: poweroff (code 0)\n\
         [hv] all domains stopped: 3 ok, 0 failed\n"
    ));
    assert_eq!(t.ends().get("guest-b"), None, "created again: no end yet");
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED, "{o:?}");
    assert!(
        o.summary[0].starts_with("domain 'guest-b' reported no end"),
        "{o:?}"
    );
    let t = feed(&format!(
        "{again}[hv] domain guest-b exited: poweroff (code 0)\n\
         [hv] domain guest-a exited: poweroff (code 0)\n\
         [hv] domain driver exited: poweroff (code 0)\n\
         [hv] all domains stopped: 4 ok, 0 failed\n"
    ));
    let o = t.outcome(QemuEnd::Exited(0));
    assert_eq!(o.exit_code, EXIT_OK, "{o:?}");
}
