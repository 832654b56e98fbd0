//! What the scheduler counts, for `ps`, `uptime` and `bench`: CPU time,
//! switches, ticks, each thread's progress, and the last switch.

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use core::time::Duration;

use parapet_guest::time;

use super::{
    current, with, Reason, State, Tid, BOOT, LAST_SWITCH, MAX_THREADS, PROGRESS, SWITCHES,
};

/// Sets the calling thread's progress counter (shown by `ps`).
pub fn progress(value: u64) {
    let me = current();
    PROGRESS[me % MAX_THREADS].store(value, Ordering::Relaxed);
}

/// Thread switches so far (without masking interrupts).
pub fn switch_count() -> u64 {
    SWITCHES.load(Ordering::Relaxed)
}

/// The last switch: `(from, to, why)` (without masking interrupts).
pub fn last_switch() -> (Tid, Tid, Reason) {
    let p = LAST_SWITCH.load(Ordering::Relaxed);
    let why = match (p >> 16) & 0xff {
        0 => Reason::Tick,
        1 => Reason::Yield,
        _ => Reason::Wait,
    };
    ((p & 0xff) as Tid, ((p >> 8) & 0xff) as Tid, why)
}

/// Time since [`super::init`].
pub fn uptime() -> Duration {
    time::since(BOOT.load(Ordering::Relaxed))
}

/// Ticks so far.
pub fn ticks() -> u64 {
    with(|s| s.ticks)
}

/// One row of `ps`.
#[derive(Clone, Debug)]
pub struct ThreadInfo {
    /// Its id.
    pub tid: Tid,
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: State,
    /// Time spent running.
    pub cpu: Duration,
    /// Times switched in.
    pub switches: u64,
    /// What it reports as progress ([`progress`]).
    pub progress: u64,
    /// Its stack: lowest usable address and size (`None`: the boot stack).
    pub stack: Option<(u64, usize)>,
}

/// The thread table, as `ps` shows it.
pub fn threads() -> Vec<ThreadInfo> {
    let now = time::now();
    with(|s| {
        let (current, since) = (s.current, s.since);
        s.threads
            .iter()
            .enumerate()
            .filter_map(|(tid, t)| t.as_ref().map(|t| (tid, t)))
            .map(|(tid, t)| {
                let running = if tid == current { now - since } else { 0 };
                ThreadInfo {
                    tid,
                    name: t.name.clone(),
                    state: t.state,
                    cpu: time::ticks_to_duration(t.cpu + running, time::frequency()),
                    switches: t.switches,
                    progress: PROGRESS[tid].load(Ordering::Relaxed),
                    stack: t.stack.as_ref().map(|st| (st.bottom(), st.size())),
                }
            })
            .collect()
    })
}
