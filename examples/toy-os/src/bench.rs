//! `bench`: what a thread switch costs, in instructions, counted by the PMU
//! (`INST_RETIRED`, EL1 and EL2, through `parapet_guest::pmu`).
//!
//! QEMU counts instructions exactly only under `-icount shift=0`: boot the
//! scenario with `icount = true` in its `[machine]` table (as
//! `scenarios/bench-micro.toml` does; see `scenarios/toy-os.toml`).
//! Without it the PMU counts nothing and `bench` says so.
//!
//! Three figures, each the minimum and median of many samples, minus the
//! cost of reading the counter:
//! * **voluntary yield**: two threads take turns calling
//!   [`sched::yield_now`]; a sample runs from the counter read just before
//!   one thread's call to the read just after the call returns in the other;
//! * **switch inside the tick handler**: from the tick callback's entry, in
//!   the preempted thread, to the return of the switch in the next thread
//!   (still inside its own, earlier tick handler);
//! * **preemption, end to end**: two threads spin reading the counter; a
//!   sample runs from the last read of the preempted thread to the first
//!   read of the next one: the hypervisor's timer interrupt and virtual IRQ,
//!   the upcall, the SDK's dispatch and timer queue, the tick, the switch,
//!   and the way back out of the next thread's handler (± one loop turn).
//!
//! Samples are kept only when exactly one switch, of the expected kind,
//! between the two measuring threads happened in between (other threads,
//! such as `spin`, may run meanwhile; their turns are dropped).

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use parapet_guest::{pmu, println, time};

use crate::sched::{self, Reason};
use crate::sync::{IrqLock, WaitQueue};

const YIELD_ROUNDS: usize = 500;
const TICK_SAMPLES: usize = 40;
const TICK_LIMIT: Duration = Duration::from_secs(5);

/// Instructions of a counter read itself.
static CALIBRATION: AtomicU64 = AtomicU64::new(0);
/// The two measuring threads of the current phase.
static PAIR: [AtomicUsize; 2] = [const { AtomicUsize::new(usize::MAX) }; 2];
/// The last counter read of a measuring thread: value, role, switch count.
static MARK: AtomicU64 = AtomicU64::new(0);
static MARK_ROLE: AtomicUsize = AtomicUsize::new(usize::MAX);
static MARK_SEQ: AtomicU64 = AtomicU64::new(0);
/// The tick probe: on while the tick phase runs.
static TICK_PROBE: AtomicBool = AtomicBool::new(false);
static TICK_MARK: AtomicU64 = AtomicU64::new(0);
static TICK_SEQ: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static DONE: AtomicUsize = AtomicUsize::new(0);
static JOINED: WaitQueue = WaitQueue::new();

static YIELDS: IrqLock<Vec<u64>> = IrqLock::new(Vec::new());
static IN_TICK: IrqLock<Vec<u64>> = IrqLock::new(Vec::new());
static PREEMPT: IrqLock<Vec<u64>> = IrqLock::new(Vec::new());

fn delta(from: u64, to: u64) -> u64 {
    u64::from((to as u32).wrapping_sub(from as u32))
        .saturating_sub(CALIBRATION.load(Ordering::Relaxed))
}

/// Whether the last switch was exactly one, of kind `why`, from the other
/// thread of the pair to `role`'s, since `seq` was read.
fn direct_switch(role: usize, seq: u64, why: Reason) -> bool {
    let (from, to, how) = sched::last_switch();
    sched::switch_count() == seq + 1
        && how == why
        && from == PAIR[1 - role].load(Ordering::Relaxed)
        && to == PAIR[role].load(Ordering::Relaxed)
}

/// Called by the tick on entry (cheap when the probe is off).
pub fn tick_enter() {
    if TICK_PROBE.load(Ordering::Relaxed) {
        TICK_SEQ.store(sched::switch_count(), Ordering::Relaxed);
        TICK_MARK.store(pmu::read_instructions(), Ordering::Relaxed);
    }
}

/// Called by the tick in the thread switched to, when its own earlier tick
/// handler resumes.
pub fn tick_resumed() {
    if TICK_PROBE.load(Ordering::Relaxed) {
        let now = pmu::read_instructions();
        let (_, _, why) = sched::last_switch();
        if why == Reason::Tick && sched::switch_count() == TICK_SEQ.load(Ordering::Relaxed) + 1 {
            let d = delta(TICK_MARK.load(Ordering::Relaxed), now);
            IN_TICK.with(|v| v.push(d));
        }
    }
}

fn yielder(role: usize) {
    for _ in 0..YIELD_ROUNDS {
        let seq = sched::switch_count();
        MARK_ROLE.store(role, Ordering::Relaxed);
        MARK_SEQ.store(seq, Ordering::Relaxed);
        MARK.store(pmu::read_instructions(), Ordering::Relaxed);
        sched::yield_now();
        let now = pmu::read_instructions();
        if MARK_ROLE.load(Ordering::Relaxed) == 1 - role
            && direct_switch(role, MARK_SEQ.load(Ordering::Relaxed), Reason::Yield)
        {
            let d = delta(MARK.load(Ordering::Relaxed), now);
            YIELDS.with(|v| v.push(d));
        }
    }
    finished();
}

fn spinner(role: usize) {
    let mut seen = sched::switch_count();
    while !STOP.load(Ordering::Relaxed) {
        let now = pmu::read_instructions();
        let seq = sched::switch_count();
        if seq != seen
            && MARK_ROLE.load(Ordering::Relaxed) == 1 - role
            && direct_switch(role, MARK_SEQ.load(Ordering::Relaxed), Reason::Tick)
        {
            let d = delta(MARK.load(Ordering::Relaxed), now);
            PREEMPT.with(|v| v.push(d));
        }
        seen = seq;
        MARK.store(now, Ordering::Relaxed);
        MARK_ROLE.store(role, Ordering::Relaxed);
        MARK_SEQ.store(seq, Ordering::Relaxed);
    }
    finished();
}

fn finished() {
    DONE.fetch_add(1, Ordering::SeqCst);
    JOINED.wake_all();
}

/// Runs `body(0)` and `body(1)` in two threads and waits for both.
fn pair(names: [&str; 2], body: fn(usize)) -> bool {
    DONE.store(0, Ordering::SeqCst);
    MARK_ROLE.store(usize::MAX, Ordering::SeqCst);
    for role in 0..2 {
        // The threads start only once this one waits below.
        match sched::spawn(names[role], 16 * 1024, move || body(role)) {
            Ok(tid) => PAIR[role].store(tid, Ordering::SeqCst),
            Err(e) => {
                println!("bench: cannot start {}: {e}", names[role]);
                return false;
            }
        }
    }
    JOINED.wait_until(None, || DONE.load(Ordering::SeqCst) == 2);
    true
}

fn report(what: &str, samples: &IrqLock<Vec<u64>>) {
    let mut v = samples.with(core::mem::take);
    v.sort_unstable();
    match (v.first(), v.get(v.len().saturating_sub(1) / 2)) {
        (Some(min), Some(median)) => println!(
            "bench: {what}: min {min}, median {median} instructions ({} samples)",
            v.len()
        ),
        _ => println!("bench: {what}: no samples"),
    }
}

/// The `bench` command (runs in a thread of its own).
pub fn run() {
    pmu::enable_instruction_counter();
    let cal = (0..16).map(|_| pmu::measure_nothing()).min().unwrap_or(0);
    CALIBRATION.store(cal, Ordering::Relaxed);
    let t0 = pmu::read_instructions();
    core::hint::black_box((0..1000u64).sum::<u64>());
    if pmu::read_instructions() == t0 {
        println!(
            "bench: the PMU counts no instructions here: boot with `icount = true` \
             in [machine] (QEMU -icount shift=0), see scenarios/toy-os.toml"
        );
        return;
    }
    println!("bench: counter read costs {cal} instructions (subtracted)");
    if !pair(["yield-a", "yield-b"], yielder) {
        return;
    }
    report("voluntary yield, thread to thread", &YIELDS);
    STOP.store(false, Ordering::SeqCst);
    TICK_PROBE.store(true, Ordering::SeqCst);
    let stopper = sched::spawn("bench-stop", 8 * 1024, || {
        let start = time::now();
        while time::since(start) < TICK_LIMIT
            && (IN_TICK.with(|v| v.len()) < TICK_SAMPLES
                || PREEMPT.with(|v| v.len()) < TICK_SAMPLES)
        {
            sched::sleep(Duration::from_millis(50));
        }
        STOP.store(true, Ordering::SeqCst);
    });
    if stopper.is_err() || !pair(["tick-a", "tick-b"], spinner) {
        STOP.store(true, Ordering::SeqCst);
    }
    TICK_PROBE.store(false, Ordering::SeqCst);
    report("switch inside the tick handler", &IN_TICK);
    report(
        "preemption end to end (last instruction of one thread to the first of the next)",
        &PREEMPT,
    );
}
