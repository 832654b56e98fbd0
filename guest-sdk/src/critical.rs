//! The lock behind the `critical-section` implementation: a spin lock owned by
//! one vCPU at a time, re-entrant on that vCPU (critical sections nest). The
//! runtime combines it with the VPSR soft mask.
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicUsize, Ordering};

/// A spin lock that remembers its owner.
pub(crate) struct OwnerLock {
    owner: AtomicUsize,
}

impl OwnerLock {
    pub(crate) const fn new() -> Self {
        Self {
            owner: AtomicUsize::new(0),
        }
    }

    /// Takes the lock for `me` (non-zero); returns `false` if `me` already held it
    /// (a nested acquire, which must not release it).
    pub(crate) fn acquire(&self, me: usize) -> bool {
        debug_assert_ne!(me, 0);
        if self.owner.load(Ordering::Relaxed) == me {
            return false;
        }
        while self
            .owner
            .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        true
    }

    /// Releases the lock.
    pub(crate) fn release(&self) {
        self.owner.store(0, Ordering::Release);
    }
}

/// `critical-section` restore state: bit 0 = the mask was set before, bit 1 = this
/// acquire took the lock.
pub(crate) fn encode(was_masked: bool, acquired: bool) -> u8 {
    was_masked as u8 | (acquired as u8) << 1
}

/// Inverse of [`encode`].
pub(crate) fn decode(state: u8) -> (bool, bool) {
    (state & 1 != 0, state & 2 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn nests_on_one_owner() {
        let l = OwnerLock::new();
        assert!(l.acquire(1));
        assert!(!l.acquire(1));
        l.release();
        assert!(l.acquire(2));
        l.release();
    }

    #[test]
    fn excludes_other_owners() {
        let l = Arc::new(OwnerLock::new());
        let counter = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (1..=4)
            .map(|me| {
                let (l, c) = (l.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        assert!(l.acquire(me));
                        let v = c.load(Ordering::Relaxed);
                        c.store(v + 1, Ordering::Relaxed);
                        l.release();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 4000);
    }

    #[test]
    fn state_round_trips() {
        for m in [false, true] {
            for a in [false, true] {
                assert_eq!(decode(encode(m, a)), (m, a));
            }
        }
    }
}
