//! Threads and the scheduler: a thread table, round-robin scheduling, a
//! periodic tick that preempts the running thread *inside the timer
//! handler*, voluntary [`yield_now`], [`sleep`] and thread [`exit`].
//!
//! # The model
//! toy-os runs on one vCPU. A thread is a [`Context`] (the registers
//! `context::switch` saves) plus a [`Stack`] with a guard page; the table
//! keeps its name, [`State`], CPU time and switch count. Thread 0 is the
//! *idle* thread: the boot stack `main` runs on, which becomes the idle loop
//! ([`crate::hook::idle_loop`]) once the first threads are spawned. It runs
//! only when no other thread is ready.
//!
//! # The one rule: the table is touched with interrupts masked
//! On a single vCPU, "interrupts masked" (the VPSR soft mask, a plain store)
//! means "nothing else runs": no handler, hence no tick, hence no other
//! thread. Every access to the table masks first ([`with`]), so the spin
//! lock around it is never contended; it is there for Rust's sake. A switch
//! always happens with interrupts masked too: the thread switched away
//! keeps its mask in its context, and the thread switched to gets its own
//! back (`context::switch` carries it).
//!
//! # Preemption
//! [`on_tick`] is a callback of the SDK's timer queue, so it runs in the
//! `Virq::Timer` handler, on the stack of whatever thread was interrupted.
//! It calls [`reschedule`] like a yield would: the interrupted thread's
//! context is saved *in the middle of its handler*, and it finishes that
//! handler (and returns from the interrupt) only when it is scheduled again.
//! The SDK allows this once `context::enable_switching` (or a wait hook) is
//! in force: the dispatcher leaves the rest of a batch pending for whichever
//! thread unmasks next. The tick stops while the idle thread blocks the
//! vCPU ([`stop_tick`]: "tickless idle").
//!
//! An exited thread's stack is freed by the next [`spawn`] (a thread cannot
//! free the stack it still runs on). [`stats`] holds the counters that
//! `ps`, `uptime` and `bench` read.

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use parapet_guest::context::{self, Context};
use parapet_guest::memory::{MemoryError, Stack};
use parapet_guest::{irq, time, timer};

mod stats;
pub use stats::*;

/// A thread's index in the table.
pub type Tid = usize;

/// The idle thread (the boot stack).
pub const IDLE: Tid = 0;

/// Most threads at once (wait queues keep their waiters in a `u64` mask).
pub const MAX_THREADS: usize = 16;

/// The scheduler's tick: the longest a thread runs while others are ready.
pub const TICK: Duration = Duration::from_millis(10);

/// Where a thread is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// On the vCPU now.
    Running,
    /// Waiting for its turn.
    Ready,
    /// Parked by the SDK's wait hook: waits for *any* event, virtual IRQ
    /// or its deadline (a network, disk or channel call in progress).
    Parked,
    /// Waiting on a toy-os wait queue (a mutex, console input, a join).
    Blocked,
    /// In [`sleep`] until its timer fires.
    Sleeping,
    /// Finished; its stack is freed when the slot is reused.
    Exited,
}

impl State {
    /// The word `ps` prints.
    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Ready => "ready",
            State::Parked => "parked",
            State::Blocked => "blocked",
            State::Sleeping => "sleeping",
            State::Exited => "exited",
        }
    }
}

/// Why the last switch happened (the benchmark filters on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    /// The tick preempted a thread.
    Tick,
    /// A thread called [`yield_now`].
    Yield,
    /// A thread waited (parked, blocked, slept) or exited.
    Wait,
}

/// What a new thread runs.
type Entry = Box<dyn FnOnce() + Send>;

struct Thread {
    name: String,
    state: State,
    /// Boxed, so that its address stays put while the table changes: a
    /// switch writes into it after the table's lock is released.
    context: Box<Context>,
    /// `None` for the idle thread, which runs on the boot stack.
    stack: Option<Stack>,
    /// Taken by the thread when it first runs.
    entry: Option<Entry>,
    /// Counter ticks spent running.
    cpu: u64,
    /// Times it was switched in.
    switches: u64,
}

struct Scheduler {
    /// Indexed by [`Tid`]; `None` is a free slot.
    threads: Vec<Option<Thread>>,
    current: Tid,
    /// When `current` was switched in (counter ticks).
    since: u64,
    ticks: u64,
    /// The periodic tick, while it runs (see [`stop_tick`]).
    tick: Option<timer::TimerId>,
}

impl Scheduler {
    fn thread(&mut self, tid: Tid) -> Option<&mut Thread> {
        self.threads.get_mut(tid).and_then(Option::as_mut)
    }

    fn state(&self, tid: Tid) -> Option<State> {
        self.threads.get(tid)?.as_ref().map(|t| t.state)
    }

    /// Records the switch from `from` (which becomes `becomes`) to `to` at
    /// counter value `now`; returns their contexts for `context::switch`.
    fn hand_over(
        &mut self,
        from: Tid,
        to: Tid,
        becomes: State,
        why: Reason,
        now: u64,
    ) -> (*mut Context, *const Context) {
        let since = core::mem::replace(&mut self.since, now);
        self.current = to;
        let packed = from as u64 | (to as u64) << 8 | (why as u64) << 16;
        LAST_SWITCH.store(packed, Ordering::Relaxed);
        SWITCHES.fetch_add(1, Ordering::Relaxed);
        let t = self
            .thread(from)
            .expect("the running thread is in the table");
        t.cpu += now.saturating_sub(since);
        // The idle thread never waits: it is what runs when no other can.
        t.state = if from == IDLE { State::Ready } else { becomes };
        let from_ctx: *mut Context = &mut *t.context;
        let t = self.thread(to).expect("picked from the table");
        t.state = State::Running;
        t.switches += 1;
        (from_ctx, &*t.context)
    }

    /// Round robin: the first ready thread after the current one; else the
    /// current one if it may go on running; else idle.
    fn pick_next(&self, current_runnable: bool) -> Tid {
        let n = self.threads.len();
        (1..=n)
            .map(|k| (self.current + k) % n)
            .find(|&t| t != IDLE && self.state(t) == Some(State::Ready))
            .unwrap_or(if current_runnable { self.current } else { IDLE })
    }
}

static SCHED: spin::Mutex<Scheduler> = spin::Mutex::new(Scheduler {
    threads: Vec::new(),
    current: IDLE,
    since: 0,
    ticks: 0,
    tick: None,
});

/// The counter when the kernel started.
static BOOT: AtomicU64 = AtomicU64::new(0);
/// Switches so far, and the last one packed as `from | to << 8 | why << 16`:
/// outside the table, so that a thread can read them without masking
/// interrupts (the benchmark does, in its measuring loops).
static SWITCHES: AtomicU64 = AtomicU64::new(0);
static LAST_SWITCH: AtomicU64 = AtomicU64::new(0);

/// What each thread reports as progress (`ps` shows it; see [`progress`]).
static PROGRESS: [AtomicU64; MAX_THREADS] = [const { AtomicU64::new(0) }; MAX_THREADS];

/// Runs `f` on the thread table with interrupts masked (see the module
/// documentation). `f` must not switch or block.
fn with<R>(f: impl FnOnce(&mut Scheduler) -> R) -> R {
    irq::without_interrupts(|| f(&mut SCHED.lock()))
}

/// Makes the running code (`main`, on the boot stack) the idle thread and
/// starts the tick. Call once, before [`spawn`].
pub fn init() -> Result<(), timer::TimerError> {
    with(|s| {
        s.threads.push(Some(Thread {
            name: String::from("idle"),
            state: State::Running,
            context: Box::new(Context::empty()),
            stack: None,
            entry: None,
            cpu: 0,
            switches: 0,
        }));
        s.since = time::now();
    });
    BOOT.store(time::now(), Ordering::Relaxed);
    context::enable_switching();
    start_tick()
}

/// Starts the tick (if it is not running).
pub fn start_tick() -> Result<(), timer::TimerError> {
    irq::without_interrupts(|| {
        let mut s = SCHED.lock();
        if s.tick.is_none() {
            s.tick = Some(timer::add_periodic(TICK, on_tick, 0)?);
        }
        Ok(())
    })
}

/// Stops the tick: the idle thread does, before it blocks the vCPU, so that
/// an idle toy-os is not woken 100 times a second for nothing ("tickless
/// idle"). It starts again as soon as the vCPU is woken.
pub fn stop_tick() {
    if let Some(id) = with(|s| s.tick.take()) {
        timer::cancel(id);
    }
}

/// Why a thread could not be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// All [`MAX_THREADS`] slots hold live threads.
    TooManyThreads,
    /// No memory for the stack (or no guard slot left).
    Stack(MemoryError),
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpawnError::TooManyThreads => write!(f, "all {MAX_THREADS} thread slots are in use"),
            SpawnError::Stack(e) => write!(f, "no stack: {e}"),
        }
    }
}

/// Starts a thread called `name` that runs `f` on a stack of `stack_size`
/// bytes (above a guard page); it is ready at once and exits when `f`
/// returns. Frees the stacks of threads that exited before.
pub fn spawn(
    name: &str,
    stack_size: usize,
    f: impl FnOnce() + Send + 'static,
) -> Result<Tid, SpawnError> {
    let stack = Stack::new(stack_size, name).map_err(SpawnError::Stack)?;
    let top = stack.top();
    let mut stack = Some(stack);
    let mut f: Option<Entry> = Some(Box::new(f));
    let mut reaped = Vec::new();
    let tid = with(|s| {
        // Exited threads no longer run on their stacks: their slots are free.
        for slot in s.threads.iter_mut() {
            if slot.as_ref().is_some_and(|t| t.state == State::Exited) {
                reaped.push(slot.take());
            }
        }
        let tid = match s.threads.iter().position(Option::is_none) {
            Some(free) => free,
            None if s.threads.len() < MAX_THREADS => {
                s.threads.push(None);
                s.threads.len() - 1
            }
            None => return None,
        };
        PROGRESS[tid].store(0, Ordering::Relaxed);
        s.threads[tid] = Some(Thread {
            name: String::from(name),
            state: State::Ready,
            context: Box::new(Context::new(top, thread_start, tid)),
            stack: stack.take(),
            entry: f.take(),
            cpu: 0,
            switches: 0,
        });
        Some(tid)
    });
    // The old stacks go back to the heap outside the table's lock.
    drop(reaped);
    tid.ok_or(SpawnError::TooManyThreads)
}

/// Where every spawned thread begins (`Context::new` points here).
fn thread_start(tid: usize) -> ! {
    let entry = with(|s| s.thread(tid).and_then(|t| t.entry.take()));
    if let Some(f) = entry {
        f();
    }
    exit()
}

/// Ends the calling thread.
pub fn exit() -> ! {
    let _ = irq::disable();
    reschedule(State::Exited, Reason::Wait);
    unreachable!("an exited thread was scheduled again")
}

/// Gives the vCPU to the next ready thread, if any.
pub fn yield_now() {
    irq::without_interrupts(|| reschedule(State::Ready, Reason::Yield));
}

/// The tick (a periodic timer of the SDK's queue, so it runs in the timer
/// handler): the running thread goes to the back of the queue.
fn on_tick(_: usize) {
    with(|s| s.ticks += 1);
    crate::bench::tick_enter();
    reschedule(State::Ready, Reason::Tick);
    crate::bench::tick_resumed();
}

/// Switches from the running thread, which becomes `becomes`, to the next
/// one. Interrupts must be masked; returns when the caller is switched back.
fn reschedule(becomes: State, why: Reason) {
    let runnable = matches!(becomes, State::Running | State::Ready);
    let now = time::now();
    let pair = {
        let mut s = SCHED.lock();
        let from = s.current;
        let to = s.pick_next(runnable);
        (to != from).then(|| s.hand_over(from, to, becomes, why, now))
    };
    if let Some((from, to)) = pair {
        #[allow(unsafe_code)]
        // SAFETY: both contexts are boxed in the thread table and stay there
        // until their threads exited *and* another thread reused the slot,
        // which cannot happen before this switch completes (one vCPU,
        // interrupts masked). `to` was made by `Context::new` on the
        // thread's own stack or saved by an earlier switch; `from` is the
        // running thread's and nothing else touches it until it is resumed.
        unsafe {
            context::switch(&mut *from, &*to)
        };
    }
}

/// The running thread.
pub fn current() -> Tid {
    with(|s| s.current)
}

/// Whether a thread other than idle is ready to run.
pub fn any_ready() -> bool {
    with(|s| (1..s.threads.len()).any(|t| t != s.current && s.state(t) == Some(State::Ready)))
}

/// Puts the running thread in `state` (parked, blocked or sleeping) until
/// [`wake`] or the counter reaches `deadline`. Interrupts must be masked:
/// that is what makes "decide to wait, then wait" atomic. May return early.
pub fn block_current(state: State, deadline: Option<u64>) {
    let me = current();
    let timer = match deadline {
        Some(d) => match timer::add_at(d, wake_on_timeout, me) {
            Ok(id) => Some(id),
            // No timer to end the wait: do not wait (the caller looks again).
            Err(_) => return,
        },
        None => None,
    };
    reschedule(state, Reason::Wait);
    if let Some(id) = timer {
        timer::cancel(id);
    }
}

fn wake_on_timeout(tid: usize) {
    wake(tid);
}

/// Makes a waiting thread ready; false if it was not waiting.
pub fn wake(tid: Tid) -> bool {
    with(|s| match s.thread(tid) {
        Some(t) if matches!(t.state, State::Parked | State::Blocked | State::Sleeping) => {
            t.state = State::Ready;
            true
        }
        _ => false,
    })
}

/// Makes every thread parked by the SDK's wait hook ready: they look at
/// their conditions again.
pub fn wake_parked() {
    with(|s| {
        for t in s.threads.iter_mut().flatten() {
            if t.state == State::Parked {
                t.state = State::Ready;
            }
        }
    });
}

/// Sleeps for at least `d`; other threads run meanwhile.
pub fn sleep(d: Duration) {
    let deadline = time::deadline_after(d);
    while time::now() < deadline {
        irq::without_interrupts(|| block_current(State::Sleeping, Some(deadline)));
    }
}
