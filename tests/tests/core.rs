//! End-to-end tests of the hypervisor core: many domains, wake-up
//! preemption on one CPU, stage-2 table quotas, and memory that comes back.
#![deny(unsafe_code)]

use parapet_tests::check::{assert_all_memory_back, assert_has, line_with, number_after};
use parapet_tests::{run_up, serial};

#[test]
fn sixteen_guests_and_the_driver_domain_boot_and_finish() {
    let _g = serial();
    let (status, t) = run_up("scenarios/scale.toml", 400);
    assert!(status.success(), "exit status {status}:\n{t}");
    for i in 1..=16 {
        assert_has(
            &t,
            &format!("[guest-{i:02}] core: hello from guest-{i:02} (domain {i})"),
        );
        assert_has(
            &t,
            &format!("[hv] domain guest-{i:02} exited: poweroff (code 0)"),
        );
    }
    assert_has(&t, "[hv] domain driver exited: poweroff (code 0)");
    assert_has(&t, "[hv] all domains stopped: 17 ok, 0 failed");
    assert!(!t.contains("refusing"), "{t}");
    assert_all_memory_back(&t);
}

#[test]
fn a_guest_woken_on_the_wakers_cpu_runs_within_two_slices() {
    let _g = serial();
    let (status, t) = run_up("scenarios/wakeup.toml", 300);
    assert!(status.success(), "exit status {status}:\n{t}");
    let woken = line_with(&t, "[sleeper] core: woken ");
    let late_ms = number_after(woken, "core: woken ");
    // The waker never traps after the send: only the preemption timer,
    // re-armed by the wake-up, lets the sleeper run (time slice 50 ms).
    assert!(
        late_ms <= 100,
        "woken {late_ms} ms late, more than two slices:\n{t}"
    );
    assert_has(&t, "[waker] core: waker computed 2000 ms without a trap");
    // The flood: the waker only makes fast hypercalls while it waits.
    assert_has(&t, "[sleeper] core: sleeper saw the flood");
    assert_has(&t, "[waker] core: flood of 10000 events answered after ");
    assert_has(&t, "[hv] all domains stopped: 3 ok, 0 failed");
    assert_all_memory_back(&t);
}

#[test]
fn guests_spraying_their_grant_windows_do_not_stop_another_from_connecting() {
    let _g = serial();
    let (status, t) = run_up("scenarios/grant-spray.toml", 400);
    assert!(status.success(), "exit status {status}:\n{t}");
    for i in 1..=4 {
        // Each sprayer hits its own stage-2 table quota, with a typed error.
        let line = line_with(&t, &format!("[spray-{i}] core: spray: "));
        assert!(line.ends_with("then refused: NoMem"), "{line}");
        let mapped = number_after(line, "core: spray: ");
        assert!((100..200).contains(&mapped), "{line}");
        assert_has(
            &t,
            &format!("[spray-{i}] core: spray: all {mapped} mappings given back"),
        );
    }
    assert_has(&t, "[driver] netback: victim/vif0 connected");
    assert_has(&t, "[victim] net: source sent 262144 bytes");
    assert_has(&t, "[victim-sink] net: sink received 262144 bytes");
    assert_has(&t, "[hv] all domains stopped: 7 ok, 0 failed");
    assert_all_memory_back(&t);
}
