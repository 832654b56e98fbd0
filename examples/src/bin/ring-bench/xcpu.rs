//! The cross-CPU copy reference (`bench ring xcopy` lines): what the two
//! copies cost when the bytes cross from one CPU to the other with
//! nothing else, next to the memcpy of one CPU.
//!
//! With a second vCPU (`vcpus = 2`, placed on the other CPU), rx runs a
//! writer there: for each size it copies messages into an area of the
//! ring's size, round robin, through the same shared-memory copy as the
//! byte channel, while rx copies them out into a private buffer. The two
//! ends share a written count and a read count (spin-waits, no events,
//! no notifications, no control blocks): a ring with none of the byte
//! channel's protocol. The bytes are not checked (the stream is).

use alloc::vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parapet_frontends::vchan::ChanError;
use parapet_guest::abi::event::Port;
use parapet_guest::grant::{SharedBytes, SharedPages};
use parapet_guest::{event, hypercall, println, smp, time};

use crate::guest::{copy_windows, Measure};

/// The area both ends copy through.
static AREA: spin::Once<SharedPages> = spin::Once::new();
/// The current phase (rx bumps it to start or end one).
static PHASE: AtomicU64 = AtomicU64::new(0);
/// The phase the writer has taken up.
static ACK: AtomicU64 = AtomicU64::new(0);
/// Message size of the current phase (0: none, wait).
static SIZE: AtomicUsize = AtomicUsize::new(0);
/// Messages written in the current phase (the writer's).
static WRITTEN: AtomicU64 = AtomicU64::new(0);
/// Messages read in the current phase (rx's).
static READ: AtomicU64 = AtomicU64::new(0);

/// rx's end of the reference.
pub(super) struct Reference {
    /// Wakes the writer's vCPU.
    port: Port,
    /// The last phase started (the writer acknowledges each in `ACK`).
    phase: u64,
}

fn err(what: &'static str) -> impl Fn(parapet_guest::abi::HvError) -> ChanError {
    move |e| {
        println!("rx: cross-CPU reference: {what}: {e}");
        ChanError::BadControl("cross-CPU reference")
    }
}

/// How long rx waits for the writer before it gives up (a writer that
/// stopped must fail the run, not hang it).
const STALL_SECS: u64 = 5;

/// A spin-wait's deadline, looked at every 2^16 turns (reading the counter
/// costs far more than a turn under TCG).
struct Stall {
    turns: u32,
    deadline: Option<u64>,
}

impl Stall {
    fn new() -> Self {
        Stall {
            turns: 0,
            deadline: None,
        }
    }

    /// One turn of the wait; true once it has lasted [`STALL_SECS`].
    fn too_long(&mut self) -> bool {
        core::hint::spin_loop();
        self.turns = self.turns.wrapping_add(1);
        if !self.turns.is_multiple_of(1 << 16) {
            return false;
        }
        let now = time::now();
        let deadline = *self
            .deadline
            .get_or_insert(now + STALL_SECS * time::frequency());
        now >= deadline
    }
}

impl Reference {
    /// Starts the writer on vCPU 1 if this domain has one; `None`
    /// (no reference) otherwise.
    pub(super) fn start(area_bytes: usize) -> Result<Option<Self>, ChanError> {
        let info = hypercall::vcpu_info().map_err(err("VcpuInfo"))?;
        if info.vcpu_count < 2 {
            return Ok(None);
        }
        let pages = area_bytes.div_ceil(4096);
        let area = SharedPages::new(pages).map_err(err("area"))?;
        AREA.call_once(|| area);
        let port = event::bind_ipi(1).map_err(err("EvtchnBindIpi"))?;
        smp::start_vcpu(1, writer).map_err(err("VcpuUp"))?;
        Ok(Some(Reference { port, phase: 0 }))
    }

    /// Moves the writer to a new phase (`size` 0: idle) and waits
    /// until it has taken it up.
    fn phase(&mut self, size: usize) -> Result<(), ChanError> {
        READ.store(0, Ordering::SeqCst);
        SIZE.store(size, Ordering::SeqCst);
        self.phase += 1;
        PHASE.store(self.phase, Ordering::SeqCst);
        event::send(self.port).map_err(err("EvtchnSend"))?;
        if size != 0 {
            let mut stall = Stall::new();
            while ACK.load(Ordering::Acquire) != self.phase {
                if stall.too_long() {
                    println!("rx: cross-CPU reference: the writer did not start in {STALL_SECS} s");
                    return Err(ChanError::BadControl("cross-CPU reference"));
                }
            }
        }
        Ok(())
    }

    /// `measure.windows` windows of copies out of the area, as
    /// [`crate::guest::memcpy_windows`] times its copies ([`copy_windows`]).
    pub(super) fn windows(&mut self, size: u32, measure: &Measure) -> Result<(), ChanError> {
        let sz = size as usize;
        let area = AREA.get().ok_or(ChanError::BadControl("no area"))?;
        let slots = (area.size() / sz) as u64;
        let mut dst = vec![0u8; sz];
        self.phase(sz)?;
        let mut read = 0u64;
        let mut stalled = false;
        copy_windows("xcopy", size, measure, || {
            let mut stall = Stall::new();
            while WRITTEN.load(Ordering::Acquire) <= read {
                if stalled || stall.too_long() {
                    // Let the window end; the error follows.
                    stalled = true;
                    return;
                }
            }
            let at = (read % slots) as usize * sz;
            let _ = area.read_at(at, &mut dst);
            read += 1;
            READ.store(read, Ordering::Release);
        });
        self.phase(0)?;
        if stalled {
            println!("rx: cross-CPU reference: the writer stopped writing for {STALL_SECS} s");
            return Err(ChanError::BadControl("cross-CPU reference"));
        }
        Ok(())
    }
}

/// vCPU 1: waits (blocked) for a phase with a size, then writes
/// messages into the area for as long as the phase lasts.
fn writer(_id: usize) -> ! {
    let src = vec![0x5au8; 1 << 20];
    let mut seen = 0;
    loop {
        let _ = event::wait_until(|| PHASE.load(Ordering::Acquire) != seen);
        seen = PHASE.load(Ordering::Acquire);
        let sz = SIZE.load(Ordering::Acquire);
        let Some(area) = AREA.get() else { continue };
        if sz == 0 || sz > src.len() {
            continue;
        }
        let slots = (area.size() / sz) as u64;
        WRITTEN.store(0, Ordering::SeqCst);
        ACK.store(seen, Ordering::Release);
        let mut written = 0u64;
        while PHASE.load(Ordering::Relaxed) == seen {
            if written - READ.load(Ordering::Acquire) < slots {
                let at = (written % slots) as usize * sz;
                let _ = area.write_at(at, &src[..sz]);
                written += 1;
                WRITTEN.store(written, Ordering::Release);
            } else {
                core::hint::spin_loop();
            }
        }
    }
}
