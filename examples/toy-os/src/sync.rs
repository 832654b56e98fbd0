//! Synchronisation between threads: wait queues, a blocking mutex, and a
//! lock for data that handlers share with threads.
//!
//! All three rest on the scheduler's one rule (see [`crate::sched`]): with
//! virtual interrupts masked nothing else runs on this single vCPU. A
//! waiter checks its condition and puts itself on the queue *with
//! interrupts masked*, so a waker (a thread, or a handler such as the
//! console's) cannot slip in between: no wake-up is lost.

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU64, Ordering};

use parapet_guest::{irq, time};

use crate::sched::{self, State, Tid, MAX_THREADS};

const _: () = assert!(MAX_THREADS <= 64, "waiters are a u64 mask");

/// Threads waiting for something: a set of thread ids.
pub struct WaitQueue {
    waiters: AtomicU64,
}

impl WaitQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            waiters: AtomicU64::new(0),
        }
    }

    /// Waits until `ready()` returns true (its result: true) or the counter
    /// reaches `deadline` (false). `ready` runs with interrupts masked and
    /// must not block; whoever makes it true calls [`WaitQueue::wake_one`]
    /// or [`WaitQueue::wake_all`].
    pub fn wait_until(&self, deadline: Option<u64>, mut ready: impl FnMut() -> bool) -> bool {
        loop {
            let mask = irq::disable();
            if ready() {
                irq::restore(mask);
                return true;
            }
            if deadline.is_some_and(|d| time::now() >= d) {
                irq::restore(mask);
                return false;
            }
            let bit = 1u64 << sched::current();
            self.waiters.fetch_or(bit, Ordering::SeqCst);
            sched::block_current(State::Blocked, deadline);
            self.waiters.fetch_and(!bit, Ordering::SeqCst);
            irq::restore(mask);
        }
    }

    /// Wakes one waiter (the lowest thread id); false if none waited.
    pub fn wake_one(&self) -> bool {
        loop {
            let w = self.waiters.load(Ordering::SeqCst);
            if w == 0 {
                return false;
            }
            let tid = w.trailing_zeros() as Tid;
            self.waiters.fetch_and(!(1 << tid), Ordering::SeqCst);
            // A waiter whose deadline woke it already does not count.
            if sched::wake(tid) {
                return true;
            }
        }
    }

    /// Wakes every waiter.
    pub fn wake_all(&self) {
        let mut w = self.waiters.swap(0, Ordering::SeqCst);
        while w != 0 {
            let tid = w.trailing_zeros() as Tid;
            w &= w - 1;
            sched::wake(tid);
        }
    }
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

/// A mutex whose waiters sleep on a [`WaitQueue`] instead of spinning: a
/// thread that finds it taken lets the others run, and the owner's unlock
/// wakes one waiter. Threads only: a handler must not take it.
///
/// Built on a spin lock that is only ever *tried*, so it needs no `unsafe`;
/// the owner may be preempted while holding it (unlike [`IrqLock`]).
pub struct Mutex<T> {
    inner: spin::Mutex<T>,
    waiters: WaitQueue,
    /// Times a thread had to wait.
    contended: AtomicU64,
}

impl<T> Mutex<T> {
    /// An unlocked mutex around `value`.
    pub const fn new(value: T) -> Self {
        Self {
            inner: spin::Mutex::new(value),
            waiters: WaitQueue::new(),
            contended: AtomicU64::new(0),
        }
    }

    /// Takes the mutex, sleeping while another thread holds it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        loop {
            if let Some(guard) = self.inner.try_lock() {
                return MutexGuard {
                    guard: Some(guard),
                    mutex: self,
                };
            }
            self.contended.fetch_add(1, Ordering::Relaxed);
            self.waiters.wait_until(None, || !self.inner.is_locked());
        }
    }

    /// Times a thread found it taken and waited.
    pub fn contended(&self) -> u64 {
        self.contended.load(Ordering::Relaxed)
    }
}

/// Access to what a [`Mutex`] protects; unlocks (and wakes a waiter) when
/// dropped.
pub struct MutexGuard<'a, T> {
    /// `Some` until dropped.
    guard: Option<spin::MutexGuard<'a, T>>,
    mutex: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_deref().expect("held until dropped")
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_deref_mut().expect("held until dropped")
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.mutex.waiters.wake_one();
    }
}

/// Data shared with handlers (or checked inside a wait condition): a spin
/// lock taken with interrupts masked, so that its holder is never
/// preempted and a handler never finds it taken. Keep the sections short.
pub struct IrqLock<T> {
    inner: spin::Mutex<T>,
}

impl<T> IrqLock<T> {
    /// A lock around `value`.
    pub const fn new(value: T) -> Self {
        Self {
            inner: spin::Mutex::new(value),
        }
    }

    /// Runs `f` on the data with interrupts masked.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        irq::without_interrupts(|| f(&mut self.inner.lock()))
    }
}
