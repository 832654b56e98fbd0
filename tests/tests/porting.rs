//! End-to-end tests of the guest SDK's OS-porting layer: threads switched
//! inside the timer handler, and a stack overflow caught by a guard page.
#![deny(unsafe_code)]

use parapet_tests::check::assert_has;
use parapet_tests::{run_up, serial};

#[test]
fn threads_switch_in_the_tick_and_an_overflow_is_reported_by_name() {
    let _g = serial();
    let (status, t) = run_up("scenarios/threads.toml", 300);
    // `overflow` crashes on purpose.
    assert_eq!(status.code(), Some(1), "exit status {status}:\n{t}");
    assert_has(&t, "[threads] core: threads: FP state intact");
    assert_has(&t, "[threads] core: threads: all three ran");
    assert_has(&t, "[hv] domain threads exited: poweroff (code 0)");
    assert_has(
        &t,
        "[overflow] stack overflow: deep-thread ran into its guard page at ",
    );
    assert_has(&t, "translation fault level 3, write");
    assert_has(&t, "[hv] domain overflow crashed");
}
