//! Tests of the reconnection steps and of the errors' text.

use super::connect::{connect_step, Step};
use super::XenbusState::*;
use super::*;
use parapet_abi::xenbus::FrontAction;

/// Plays a frontend that reconnects against a backend whose published
/// state follows `backend` (one entry per store change), applying each
/// step as `handshake` does; returns the frontend's states.
fn replay(backend: &[XenbusState], timed_out_from: usize) -> (Vec<XenbusState>, bool) {
    let mut own = Initialising;
    let mut seen = vec![own];
    for (i, &b) in backend.iter().enumerate() {
        match connect_step(own, b, i >= timed_out_from) {
            Step::GiveUp => return (seen, false),
            Step::Act(FrontAction::Wait) => continue,
            Step::Act(FrontAction::Publish) => own = Initialised,
            Step::Act(FrontAction::Connect) => own = Connected,
            Step::Act(FrontAction::Reset) => own = Initialising,
        }
        seen.push(own);
    }
    (seen, true)
}

#[test]
fn a_restarted_backend_is_reconnected_to() {
    // The old backend's keys vanish (Unknown), the new instance
    // advertises, attaches: connected again.
    let (states, ok) = replay(&[Unknown, Unknown, InitWait, InitWait, Connected], 99);
    assert!(ok);
    assert_eq!(states, [Initialising, Initialised, Connected]);
}

#[test]
fn a_backend_that_dies_mid_handshake_is_waited_for_again() {
    let (states, ok) = replay(&[InitWait, Unknown, InitWait, Connected], 99);
    assert!(ok);
    assert_eq!(
        states,
        [
            Initialising,
            Initialised,
            Initialising,
            Initialised,
            Connected
        ]
    );
    // Closing instead of attaching: start over too.
    assert_eq!(
        connect_step(Initialised, Closing, false),
        Step::Act(FrontAction::Reset)
    );
    assert_eq!(
        connect_step(Initialised, Closed, true),
        Step::Act(FrontAction::Reset)
    );
}

#[test]
fn waiting_ends_at_the_deadline_only_when_there_is_nothing_to_do() {
    let (states, ok) = replay(&[Unknown, Unknown, Unknown], 2);
    assert!(!ok, "gave up");
    assert_eq!(states, [Initialising]);
    // An advertisement seen at the deadline is still taken.
    assert_eq!(
        connect_step(Initialising, InitWait, true),
        Step::Act(FrontAction::Publish)
    );
    assert_eq!(
        connect_step(Initialised, Connected, true),
        Step::Act(FrontAction::Connect)
    );
    assert_eq!(connect_step(Initialised, InitWait, true), Step::GiveUp);
    assert_eq!(
        connect_step(Initialised, InitWait, false),
        Step::Act(FrontAction::Wait)
    );
}

#[test]
fn a_connected_frontend_notices_a_restart() {
    // The backend re-advertises while we are connected: start over.
    assert_eq!(
        connect_step(Connected, InitWait, false),
        Step::Act(FrontAction::Reset)
    );
    assert_eq!(
        connect_step(Connected, Unknown, false),
        Step::Act(FrontAction::Reset)
    );
    assert_eq!(
        connect_step(Connected, Closed, false),
        Step::Act(FrontAction::Reset)
    );
}

#[test]
fn errors_say_what_happened() {
    assert_eq!(BlkError::Disconnected.to_string(), "the backend went away");
    assert_eq!(
        BlkError::TimedOut.to_string(),
        "the backend did not come back in time"
    );
    assert_eq!(BlkStats::default().reconnects, 0);
}
