//! Timers multiplexed on the per-vCPU one-shot timer: any number of
//! deadlines (an OS's periodic tick, [`crate::time::sleep`], the frontends'
//! timeouts) share the one `SetTimer` of a vCPU without overriding each
//! other. The hypervisor's timer is always armed for the earliest deadline.
//!
//! Callbacks run in the `Virq::Timer` handler, one per dispatch: a callback
//! may switch threads ([`crate::context`]); the timers still due stay
//! pending (the virtual IRQ is raised again) and run in whichever thread
//! dispatches next. A callback must not block.
//!
//! The SDK installs the `Virq::Timer` handler at start-up. A guest that
//! installs its own with `irq::set_handler(Virq::Timer, …)` takes the timer
//! away from this queue (and from `time::sleep`'s deadline).
#![deny(unsafe_code)]

use core::sync::atomic::Ordering;
use core::time::Duration;

use parapet_abi::layout::MAX_VCPUS;
use parapet_abi::vpsr::Virq;
use parapet_abi::HvError;

use crate::{arch, hypercall, irq, time};

/// What a timer calls, with the argument it was added with.
pub type TimerFn = fn(usize);

/// Timers one vCPU can have armed at once.
pub const TIMERS_PER_VCPU: usize = 32;

/// Names an armed timer, for [`cancel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    slot: u16,
    generation: u16,
}

/// Why a timer could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerError {
    /// All [`TIMERS_PER_VCPU`] timers of this vCPU are armed.
    Full,
    /// The hypervisor refused to arm the one-shot timer.
    Hv(HvError),
}

impl core::fmt::Display for TimerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TimerError::Full => write!(f, "all {TIMERS_PER_VCPU} timers of this vCPU are armed"),
            TimerError::Hv(e) => write!(f, "the hypervisor refused the timer: {e}"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    deadline: u64,
    /// Re-armed this many ticks after each expiry; 0 for one-shot.
    period: u64,
    f: TimerFn,
    arg: usize,
    generation: u16,
}

/// A set of deadlines (portable; one per vCPU at run time).
#[derive(Debug)]
pub struct TimerQueue<const N: usize> {
    entries: [Option<Entry>; N],
    generation: u16,
}

impl<const N: usize> Default for TimerQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> TimerQueue<N> {
    /// No timers.
    pub const fn new() -> Self {
        Self {
            entries: [None; N],
            generation: 0,
        }
    }

    /// Arms `f(arg)` at `deadline`, again every `period` ticks if non-zero.
    pub fn add(
        &mut self,
        deadline: u64,
        period: u64,
        f: TimerFn,
        arg: usize,
    ) -> Result<TimerId, TimerError> {
        let slot = self
            .entries
            .iter()
            .position(Option::is_none)
            .ok_or(TimerError::Full)?;
        self.generation = self.generation.wrapping_add(1);
        self.entries[slot] = Some(Entry {
            deadline,
            period,
            f,
            arg,
            generation: self.generation,
        });
        Ok(TimerId {
            slot: u16::try_from(slot).map_err(|_| TimerError::Full)?,
            generation: self.generation,
        })
    }

    /// Disarms timer `id`; false if it already fired (one-shot) or was
    /// cancelled.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        match self.entries.get_mut(usize::from(id.slot)) {
            Some(e @ Some(_)) if e.is_some_and(|e| e.generation == id.generation) => {
                *e = None;
                true
            }
            _ => false,
        }
    }

    /// The earliest deadline, if any timer is armed.
    pub fn earliest(&self) -> Option<u64> {
        self.entries.iter().flatten().map(|e| e.deadline).min()
    }

    /// How many timers are armed.
    pub fn len(&self) -> usize {
        self.entries.iter().flatten().count()
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the earliest timer due at `now` (re-arming it if periodic, past
    /// any periods it missed) and says whether another one is due too.
    pub fn take_due(&mut self, now: u64) -> Option<(TimerFn, usize, bool)> {
        let (slot, entry) = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.map(|e| (i, e)))
            .filter(|(_, e)| e.deadline <= now)
            .min_by_key(|(_, e)| e.deadline)?;
        match (now - entry.deadline).checked_div(entry.period) {
            None => self.entries[slot] = None,
            Some(periods) => {
                let missed = periods + 1;
                let next = entry
                    .deadline
                    .saturating_add(missed.saturating_mul(entry.period));
                if let Some(e) = self.entries[slot].as_mut() {
                    e.deadline = next;
                }
            }
        }
        let more = self.entries.iter().flatten().any(|e| e.deadline <= now);
        Some((entry.f, entry.arg, more))
    }
}

static QUEUES: [spin::Mutex<TimerQueue<TIMERS_PER_VCPU>>; MAX_VCPUS as usize] =
    [const { spin::Mutex::new(TimerQueue::new()) }; MAX_VCPUS as usize];

fn queue() -> &'static spin::Mutex<TimerQueue<TIMERS_PER_VCPU>> {
    &QUEUES[arch::vcpu_index() % QUEUES.len()]
}

/// Arms the hypervisor's one-shot timer for the earliest deadline (or
/// cancels it when none is left).
fn program(q: &TimerQueue<TIMERS_PER_VCPU>) -> Result<(), HvError> {
    hypercall::set_timer(q.earliest().unwrap_or(0))
}

fn add(deadline: u64, period: u64, f: TimerFn, arg: usize) -> Result<TimerId, TimerError> {
    irq::without_interrupts(|| {
        let mut q = queue().lock();
        let earlier = q.earliest().is_none_or(|e| deadline < e);
        let id = q.add(deadline, period, f, arg)?;
        if earlier {
            if let Err(e) = program(&q) {
                q.cancel(id);
                return Err(TimerError::Hv(e));
            }
        }
        Ok(id)
    })
}

/// Calls `f(arg)` once, at counter value `deadline`, on this vCPU.
pub fn add_at(deadline: u64, f: TimerFn, arg: usize) -> Result<TimerId, TimerError> {
    add(deadline, 0, f, arg)
}

/// Calls `f(arg)` once, `d` from now, on this vCPU.
pub fn add_after(d: Duration, f: TimerFn, arg: usize) -> Result<TimerId, TimerError> {
    add(time::deadline_after(d), 0, f, arg)
}

/// Calls `f(arg)` every `period` from now on, on this vCPU (a tick). Ticks
/// missed while the vCPU did not run are skipped, not run in a burst.
pub fn add_periodic(period: Duration, f: TimerFn, arg: usize) -> Result<TimerId, TimerError> {
    let ticks = time::ticks(period).max(1);
    add(time::now().saturating_add(ticks), ticks, f, arg)
}

/// Disarms a timer of this vCPU; false if it had fired (one-shot) or was
/// cancelled already.
pub fn cancel(id: TimerId) -> bool {
    irq::without_interrupts(|| {
        let mut q = queue().lock();
        let earliest = q.earliest();
        let cancelled = q.cancel(id);
        // The hypervisor's timer changes only if the earliest deadline did.
        if cancelled && q.earliest() != earliest {
            let _ = program(&q);
        }
        cancelled
    })
}

/// Timers armed on this vCPU.
pub fn armed() -> usize {
    irq::without_interrupts(|| queue().lock().len())
}

fn nothing(_: usize) {}

/// Makes sure this vCPU's one-shot timer fires by `deadline` (a timer that
/// does nothing but wake the vCPU); for waits with a deadline.
pub(crate) fn wake_at(deadline: u64) -> Result<TimerId, TimerError> {
    add_at(deadline, nothing, 0)
}

/// The `Virq::Timer` handler: runs the earliest due timer, after re-arming
/// the hypervisor's timer and re-raising the virtual IRQ if more are due,
/// so that a callback that switches threads strands nothing.
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // the runtime installs it
pub(crate) fn on_timer_irq() {
    let now = time::now();
    let due = {
        let mut q = queue().lock();
        let due = q.take_due(now);
        let _ = program(&q);
        due
    };
    if let Some((f, arg, more)) = due {
        if more {
            let vpsr = crate::vpsr();
            vpsr.pending_virqs
                .fetch_or(Virq::Timer.bit(), Ordering::SeqCst);
            vpsr.pending.store(1, Ordering::SeqCst);
        }
        f(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static FIRED: AtomicUsize = AtomicUsize::new(0);
    fn bump(arg: usize) {
        FIRED.fetch_add(arg, Ordering::SeqCst);
    }

    #[test]
    fn earliest_first_and_one_at_a_time() {
        let mut q = TimerQueue::<4>::new();
        q.add(300, 0, bump, 3).unwrap();
        q.add(100, 0, bump, 1).unwrap();
        q.add(200, 0, bump, 2).unwrap();
        assert_eq!(q.earliest(), Some(100));
        assert!(q.take_due(50).is_none());
        let (_, arg, more) = q.take_due(250).unwrap();
        assert_eq!((arg, more), (1, true));
        let (_, arg, more) = q.take_due(250).unwrap();
        assert_eq!((arg, more), (2, false));
        assert_eq!(q.earliest(), Some(300));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn a_periodic_tick_and_one_shots_coexist() {
        let mut q = TimerQueue::<4>::new();
        let tick = q.add(100, 100, bump, 0).unwrap();
        q.add(150, 0, bump, 7).unwrap(); // a sleep
        q.add(1_000, 0, bump, 9).unwrap(); // a frontend's timeout
        let mut fired = Vec::new();
        for now in [100, 150, 200, 300, 1_000] {
            while let Some((_, arg, _)) = q.take_due(now) {
                fired.push((now, arg));
            }
        }
        assert_eq!(
            fired,
            [
                (100, 0),
                (150, 7),
                (200, 0),
                (300, 0),
                (1_000, 0),
                (1_000, 9)
            ]
        );
        assert_eq!(q.earliest(), Some(1_100), "the tick goes on");
        assert!(q.cancel(tick));
        assert!(q.is_empty());
    }

    #[test]
    fn missed_ticks_are_skipped() {
        let mut q = TimerQueue::<2>::new();
        q.add(100, 100, bump, 0).unwrap();
        assert!(q.take_due(1_050).is_some());
        assert_eq!(q.earliest(), Some(1_100));
        assert!(q.take_due(1_050).is_none());
    }

    #[test]
    fn cancel_is_by_generation_and_full_is_an_error() {
        let mut q = TimerQueue::<2>::new();
        let a = q.add(10, 0, bump, 0).unwrap();
        let _b = q.add(20, 0, bump, 0).unwrap();
        assert_eq!(q.add(30, 0, bump, 0), Err(TimerError::Full));
        assert!(q.cancel(a));
        assert!(!q.cancel(a), "twice");
        let c = q.add(30, 0, bump, 0).unwrap();
        assert_ne!(a, c, "a reused slot gets a new generation");
        assert!(!q.cancel(a), "the old id does not cancel the new timer");
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn the_handler_runs_one_due_timer_and_leaves_the_rest_pending() {
        static RAN: AtomicUsize = AtomicUsize::new(0);
        fn count(_: usize) {
            RAN.fetch_add(1, Ordering::SeqCst);
        }
        let now = time::now();
        add_at(now, count, 0).unwrap();
        add_at(now, count, 0).unwrap();
        let vpsr = crate::vpsr();
        on_timer_irq();
        assert_eq!(RAN.load(Ordering::SeqCst), 1, "one per dispatch");
        assert_ne!(
            vpsr.pending_virqs.load(Ordering::SeqCst) & Virq::Timer.bit(),
            0
        );
        assert_eq!(
            vpsr.pending.load(Ordering::SeqCst),
            1,
            "the rest stays pending"
        );
        vpsr.pending_virqs.store(0, Ordering::SeqCst);
        vpsr.pending.store(0, Ordering::SeqCst);
        on_timer_irq();
        assert_eq!(RAN.load(Ordering::SeqCst), 2);
        assert_eq!(vpsr.pending.load(Ordering::SeqCst), 0);
        assert_eq!(armed(), 0);
    }

    #[test]
    fn the_vcpu_api_arms_the_hypervisor_timer_for_the_earliest() {
        let now = time::now();
        let late = add_at(now + 1_000_000, bump, 0).unwrap();
        assert_eq!(arch::fake::last_timer(), now + 1_000_000);
        let early = add_at(now + 10_000, bump, 0).unwrap();
        assert_eq!(arch::fake::last_timer(), now + 10_000);
        assert!(cancel(early));
        assert_eq!(arch::fake::last_timer(), now + 1_000_000);
        assert!(cancel(late));
        assert_eq!(arch::fake::last_timer(), 0, "nothing armed: cancelled");
        assert_eq!(armed(), 0);
    }
}
