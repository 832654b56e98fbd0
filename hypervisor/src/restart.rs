//! The crash policy and the run's tally: whether a crashed domain is started
//! again (`on_crash=restart`, at most [`MAX_RESTARTS`] times per run), and how
//! each end counts in the final `all domains stopped:` line. Pure code,
//! tested on the host.
#![deny(unsafe_code)]

use crate::bootargs::OnCrash;

/// Most restarts of one domain in one run; a domain that crashes once more
/// is destroyed, so that a domain that crashes at start does not loop.
pub const MAX_RESTARTS: u32 = 5;

/// What to do with a domain that crashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Tear it down for good (`on_crash=destroy`).
    Destroy,
    /// Start it again: this is restart `nth` of at most `max`.
    Restart {
        /// 1 for the first restart.
        nth: u32,
        /// [`MAX_RESTARTS`].
        max: u32,
    },
    /// It asked to be restarted but has used up its restarts.
    GiveUp {
        /// The restarts it already had.
        restarts: u32,
    },
}

/// Decides what happens to a domain with policy `policy` that has been
/// restarted `restarts` times so far and has just crashed.
pub fn on_crash(policy: OnCrash, restarts: u32) -> Decision {
    match policy {
        OnCrash::Destroy => Decision::Destroy,
        OnCrash::Restart if restarts < MAX_RESTARTS => Decision::Restart {
            nth: restarts + 1,
            max: MAX_RESTARTS,
        },
        OnCrash::Restart => Decision::GiveUp { restarts },
    }
}

/// How the domains ended, for the final line. A crash followed by a
/// successful restart is not a failure: it counts in `restarts`, and the
/// restarted domain is counted again when it ends for good.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Domains that exited with code 0.
    pub ok: usize,
    /// Domains that crashed for good, exited non-zero, or were not started.
    pub failed: usize,
    /// Crashes after which the domain was started again.
    pub restarts: usize,
}

impl Tally {
    /// A domain exited with `code`.
    pub fn exited(&mut self, code: u64) {
        if code == 0 {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
    }

    /// A domain crashed and stays down, or could not be started (again).
    pub fn failed(&mut self) {
        self.failed += 1;
    }

    /// The control domain destroyed a domain: an end, not a failure.
    pub fn destroyed(&mut self) {
        self.ok += 1;
    }

    /// A domain was restarted after a crash.
    pub fn restarted(&mut self) {
        self.restarts += 1;
    }
}

/// `K ok, F failed`, plus `, R restarted` when there were restarts (the
/// format `parapet`'s transcript reader parses).
impl core::fmt::Display for Tally {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ok, {} failed", self.ok, self.failed)?;
        if self.restarts > 0 {
            write!(f, ", {} restarted", self.restarts)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroy_is_the_default_and_never_restarts() {
        assert_eq!(on_crash(OnCrash::default(), 0), Decision::Destroy);
        assert_eq!(on_crash(OnCrash::Destroy, 3), Decision::Destroy);
    }

    #[test]
    fn restarts_are_counted_and_bounded() {
        let mut restarts = 0;
        let mut seen = Vec::new();
        loop {
            match on_crash(OnCrash::Restart, restarts) {
                Decision::Restart { nth, max } => {
                    assert_eq!((nth, max), (restarts + 1, MAX_RESTARTS));
                    seen.push(nth);
                    restarts = nth;
                }
                Decision::GiveUp { restarts: r } => {
                    assert_eq!(r, MAX_RESTARTS);
                    break;
                }
                Decision::Destroy => panic!("a restart policy never destroys outright"),
            }
        }
        assert_eq!(seen, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn tally_line() {
        let mut t = Tally::default();
        t.exited(0);
        t.exited(0);
        assert_eq!(t.to_string(), "2 ok, 0 failed");
        t.restarted();
        t.exited(0);
        assert_eq!(t.to_string(), "3 ok, 0 failed, 1 restarted");
        t.exited(2);
        t.failed();
        assert_eq!(t.to_string(), "3 ok, 2 failed, 1 restarted");
    }
}
