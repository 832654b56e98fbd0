//! The hypervisor proper: the state behind the `HV` lock and the code that
//! acts on it. Each submodule holds one concept, listed from the entry points
//! down:
//!
//! - [`trap`]: the entry points from the vectors and the scheduler loop;
//! - [`hypercall`]: one module per subsystem of the hypercall ABI, each with
//!   the teardown of that subsystem's state when a domain stops;
//! - [`boot`]: bringing up the CPUs and creating the boot-time domains;
//! - [`domain`]: a domain's life: creation, end, restart, reclaiming memory;
//! - [`vcpu`]: vCPU registers and state, starting, switching, lazy FPU;
//! - [`notify`]: events, virtual IRQs, timers and physical interrupts;
//! - [`memory`]: frames, stage-2 table quotas and guest-memory access;
//! - [`trace`]: the per-CPU trace buffers and the records the others emit.
//!
//! A module calls those below it, with one exception: ending a domain
//! (`domain::stop_domain`) calls each subsystem's teardown in `hypercall`.
//! The portable modules at the crate root (`sched`, `evtchn`, `grant`,
//! `store`, `stage2`, `frames`, `guest_mem`, `lifecycle`, …) hold the policy
//! and are called from here, never the other way round.
//!
//! Locking: one lock (`HV`) protects every domain and run queue. A vCPU's
//! general registers ([`GuestRegs`](crate::arch::trap::GuestRegs)) live
//! outside the lock, in `vcpu::REGS`: only the CPU that runs the vCPU touches
//! them (the vectors write them on a trap, the trap handler reads them while
//! it holds the lock), except before the vCPU first runs.

mod boot;
mod control;
mod domain;
mod hypercall;
mod memory;
mod notify;
mod trace;
mod trap;
mod vcpu;

pub use boot::cpu_main;

use core::fmt::Write;

use parapet_abi::layout::{self, MAX_DOMAINS};
use spin::Mutex;

use crate::arch::boot::MAX_CPUS;
use crate::arch::gic::Gic;
use crate::arch::uart::Pl011;
use crate::console::InputQueue;
use crate::evtchn::EventTables;
use crate::grant::{MapTrack, Pins};
use crate::platform::{Device, MAX_VIRTIO};
use crate::restart::Tally;
use crate::sched::{RunQueue, VcpuRef};
use crate::store::Namespace;

use domain::Domain;
use memory::Frames;
use vcpu::Vcpu;

const MAX_VCPUS: usize = crate::convert::usize_from(layout::MAX_VCPUS);
const DEFAULT_UART: usize = 0x0900_0000;

// Domain and vCPU indices are named by a `u8` in a `VcpuRef`, an event table
// or a grant mapping.
const _: () = assert!(MAX_DOMAINS <= 1 << 8 && MAX_VCPUS <= 1 << 8);

/// Domain index `d` as the `u8` that names it in a `VcpuRef`, an event table
/// or a grant mapping. Callers pass the index of a slot of
/// `Hypervisor::domains`, so `d < MAX_DOMAINS`.
#[allow(clippy::cast_possible_truncation)] // d < MAX_DOMAINS <= 256 (asserted above)
const fn domain_id(d: usize) -> u8 {
    d as u8
}

/// vCPU index `i` as the `u8` that names it in a `VcpuRef`. Callers pass the
/// index of a slot of `Domain::vcpus`, so `i < MAX_VCPUS`.
#[allow(clippy::cast_possible_truncation)] // i < MAX_VCPUS <= 256 (asserted above)
const fn vcpu_id(i: usize) -> u8 {
    i as u8
}

// ---------------------------------------------------------------------------
// Console

static CONSOLE: Mutex<Option<Pl011>> = Mutex::new(None);

/// Prints one line with the given prefix on the serial console.
fn print_line(prefix: &str, args: core::fmt::Arguments<'_>) {
    let mut console = CONSOLE.lock();
    if let Some(uart) = console.as_mut() {
        let _ = writeln!(uart, "[{prefix}] {args}");
    }
}

macro_rules! hvprintln {
    ($($arg:tt)*) => { $crate::hv::print_line("hv", format_args!($($arg)*)) };
}
use hvprintln;

// ---------------------------------------------------------------------------
// The state behind the lock

/// One physical CPU's scheduling state.
pub(super) struct CpuSched {
    queue: RunQueue,
    current: Option<VcpuRef>,
    /// Whose EL1 state is in this CPU's registers.
    loaded: Option<VcpuRef>,
    /// Whose FP/SIMD state is in this CPU's registers (lazy FPU).
    fp_owner: Option<VcpuRef>,
    slice_end: u64,
    /// No one-shot timer of this CPU's vCPUs is due before this (never later
    /// than the earliest; `u64::MAX` when none is armed), so that a trap
    /// looks at the vCPUs' timers only when one may be due.
    next_timer: u64,
    /// Hypercalls and traps of the current vCPU not yet added to its
    /// `VcpuStats::hypercalls` (added when another vCPU becomes current):
    /// counting here spares the trap path a lookup of the vCPU.
    hypercalls: u64,
}

impl CpuSched {
    const IDLE: CpuSched = CpuSched {
        queue: RunQueue::new(),
        current: None,
        loaded: None,
        fp_owner: None,
        slice_end: 0,
        next_timer: u64::MAX,
        hypercalls: 0,
    };
}

struct Hypervisor {
    domains: [Domain; MAX_DOMAINS],
    domain_count: usize,
    cpus: [CpuSched; MAX_CPUS],
    cpu_count: usize,
    timeslice: u64,
    freq: u64,
    /// Guest RAM and stage-2 tables.
    frames: Frames,
    /// Free frames once the hypervisor was up, before any domain.
    frames_at_start: usize,
    next_cpu: usize,
    /// Domains that ended and wait for a restart or for their memory to be
    /// reclaimed (`Domain::after_stop`), so that the trap path checks one
    /// counter instead of scanning the domains.
    after_stop_pending: usize,
    /// How the domains ended, for the final line.
    tally: Tally,
    /// The machine's virtio-mmio slots (passed through to the driver domain).
    virtio: [Device; MAX_VIRTIO],
    virtio_count: usize,
    gic: Gic,
    events: EventTables<MAX_DOMAINS>,
    maps: [MapTrack; MAX_DOMAINS],
    pins: [Pins; MAX_DOMAINS],
    store: [Namespace; MAX_DOMAINS],
    /// Console input not yet read by the console-input domain.
    console_in: InputQueue,
    /// The domain that receives console input (`Virq::Console`).
    console_domain: usize,
    /// Splits serial input into console input and control requests.
    demux: crate::console::Demux,
    /// Control requests from the host not yet read by the control domain.
    control_in: InputQueue,
    /// The domain that may control the others (`parapet_abi::domctl`).
    control_domain: Option<usize>,
    /// The PL011's interrupt.
    uart_intid: u32,
    /// Each CPU's affinity (`MPIDR_EL1`), for routing device interrupts.
    mpidr: [u64; MAX_CPUS],
}

static HV: Mutex<Hypervisor> = Mutex::new(Hypervisor {
    domains: [const { Domain::EMPTY }; MAX_DOMAINS],
    domain_count: 0,
    cpus: [const { CpuSched::IDLE }; MAX_CPUS],
    cpu_count: 1,
    timeslice: 0,
    freq: 1,
    frames: Frames::empty(),
    frames_at_start: 0,
    next_cpu: 0,
    after_stop_pending: 0,
    tally: Tally {
        ok: 0,
        failed: 0,
        restarts: 0,
    },
    virtio: [Device {
        base: 0,
        size: 0,
        intid: 0,
    }; MAX_VIRTIO],
    virtio_count: 0,
    gic: Gic { gicd: 0, gicr: 0 },
    events: EventTables::new(),
    maps: [const { MapTrack::EMPTY }; MAX_DOMAINS],
    pins: [const { Pins::EMPTY }; MAX_DOMAINS],
    store: [const { Namespace::EMPTY }; MAX_DOMAINS],
    console_in: InputQueue::new(),
    console_domain: 0,
    demux: crate::console::Demux::new(),
    control_in: InputQueue::new(),
    control_domain: None,
    uart_intid: 0,
    mpidr: [0; MAX_CPUS],
});

impl Hypervisor {
    fn vcpu(&self, v: VcpuRef) -> &Vcpu {
        &self.domains[v.domain as usize].vcpus[v.vcpu as usize]
    }

    fn vcpu_mut(&mut self, v: VcpuRef) -> &mut Vcpu {
        &mut self.domains[v.domain as usize].vcpus[v.vcpu as usize]
    }

    /// Hypercalls of domain `d`'s vCPUs that are current somewhere and not
    /// yet in their stats (`CpuSched::hypercalls`).
    fn pending_hypercalls(&self, d: usize) -> u64 {
        self.cpus[..self.cpu_count]
            .iter()
            .filter(|c| c.current.is_some_and(|v| v.domain as usize == d))
            .map(|c| c.hypercalls)
            .sum()
    }

    /// Whether `id` names a running domain.
    fn domain_alive(&self, id: u64) -> bool {
        usize::try_from(id).is_ok_and(|i| i < self.domain_count && self.domains[i].alive())
    }

    fn alive_domains(&self) -> usize {
        self.domains[..self.domain_count]
            .iter()
            .filter(|d| d.alive())
            .count()
    }

    fn crashed_domains(&self) -> usize {
        self.domains[..self.domain_count]
            .iter()
            .filter(|d| d.state == crate::lifecycle::DomainState::Crashed)
            .count()
    }
}

/// The hypervisor state a domain slot costs, beyond the domain's RAM and
/// stage-2 tables: its `Domain` record (vCPUs, EL1 and FP state), register
/// slots, event-channel table, grant mappings and pins, and store namespace.
pub const fn per_domain_bytes() -> usize {
    core::mem::size_of::<Domain>()
        + core::mem::size_of::<[vcpu::RegsSlot; MAX_VCPUS]>()
        + core::mem::size_of::<crate::evtchn::EventTable>()
        + core::mem::size_of::<MapTrack>()
        + core::mem::size_of::<Pins>()
        + core::mem::size_of::<Namespace>()
}
