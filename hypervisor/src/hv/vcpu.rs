//! vCPUs: their registers and state, starting one, switching the CPU to one,
//! preparing its entry, and lazy FP/SIMD switching.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use parapet_abi::layout::{self, MAX_DOMAINS};
use parapet_abi::trace::TraceEvent;
use parapet_abi::Vpsr;

use super::notify::program_cpu_timer;
use super::trace::{self, trace_event, tv};
use super::{domain_id, Hypervisor, MAX_VCPUS};
use crate::arch::boot::MAX_CPUS;
use crate::arch::fp::FpState;
use crate::arch::gic;
use crate::arch::sysregs::{self, cptr, El1State};
use crate::arch::trap::{GuestRegs, PerCpuTrap};
use crate::lifecycle::VcpuState;
use crate::sched::{VcpuRef, NO_VCPU};

/// One vCPU's general registers, outside the lock (see the module docs of
/// `hv`): only the CPU that runs the vCPU touches them.
pub(super) struct RegsSlot(UnsafeCell<GuestRegs>);
// SAFETY: see above: one CPU at a time uses a slot.
unsafe impl Sync for RegsSlot {}

static REGS: [[RegsSlot; MAX_VCPUS]; MAX_DOMAINS] = [const {
    [const {
        RegsSlot(UnsafeCell::new(GuestRegs {
            x: [0; 31],
            sp_el1: 0,
            elr: 0,
            spsr: 0,
        }))
    }; MAX_VCPUS]
}; MAX_DOMAINS];

/// Each CPU's trap data: the registers of its current vCPU and who it is.
pub(super) static PERCPU: [PerCpuTrap; MAX_CPUS] = [const {
    PerCpuTrap {
        current_regs: AtomicPtr::new(core::ptr::null_mut()),
        current: AtomicU32::new(NO_VCPU),
    }
}; MAX_CPUS];

pub(super) fn regs_ptr(v: VcpuRef) -> *mut GuestRegs {
    REGS[v.domain as usize][v.vcpu as usize].0.get()
}

/// Counters kept per vCPU for the end-of-domain report.
#[derive(Clone, Copy, Default)]
pub(super) struct VcpuStats {
    pub hypercalls: u64,
    pub switches_in: u64,
    pub switches_out: u64,
    pub fp_loads: u64,
    pub fp_saves: u64,
}

pub(super) struct Vcpu {
    pub state: VcpuState,
    pub cpu: usize,
    pub el1: El1State,
    pub fp: FpState,
    pub timer_deadline: u64,
    pub vpsr_pa: u64,
    pub stats: VcpuStats,
}

impl Vcpu {
    pub const EMPTY: Vcpu = Vcpu {
        state: VcpuState::Off,
        cpu: 0,
        el1: El1State::ZERO,
        fp: FpState::ZERO,
        timer_deadline: 0,
        vpsr_pa: 0,
        stats: VcpuStats {
            hypercalls: 0,
            switches_in: 0,
            switches_out: 0,
            fp_loads: 0,
            fp_saves: 0,
        },
    };

    pub fn vpsr(&self) -> &'static Vpsr {
        // SAFETY: `vpsr_pa` is a page of the domain's RAM reserved for this
        // VPSR, page-aligned. It stays valid while the hypervisor may look at
        // it: a vCPU's VPSR is only read while its domain owns its RAM (the
        // RAM goes back to the pool only after the domain's vCPUs are off and
        // no CPU runs them). `Vpsr` is all atomics, so shared access with the
        // guest is sound.
        unsafe { &*(self.vpsr_pa as *const Vpsr) }
    }
}

impl Hypervisor {
    /// Makes vCPU `v` runnable at `entry` with `arg` in `x0`.
    pub(super) fn start_vcpu(&mut self, v: VcpuRef, entry: u64, arg: u64) {
        let d = &self.domains[v.domain as usize];
        let vpsr_ipa = layout::vpsr_ipa(d.ram_ipa, d.ram_size, u64::from(v.vcpu));
        // SAFETY: the vCPU is off, so no CPU is using its register slot (a
        // domain's slots are reused only once no CPU has one of the old
        // instance's vCPUs current: `run_after_stop`).
        let regs = unsafe { &mut *regs_ptr(v) };
        *regs = GuestRegs::default();
        regs.x[0] = arg;
        regs.x[1] = vpsr_ipa;
        regs.x[2] = u64::from(v.vcpu);
        regs.elr = entry;
        regs.spsr = sysregs::SPSR_EL1H_MASKED;
        let vcpu = self.vcpu_mut(v);
        let vttbr = vcpu.el1.vttbr;
        vcpu.el1 = El1State::ZERO;
        vcpu.el1.vttbr = vttbr;
        vcpu.el1.sctlr = sysregs::SCTLR_EL1_RESET;
        vcpu.el1.vmpidr = (1 << 31) | u64::from(v.vcpu);
        vcpu.el1.ich_vmcr = gic::VMCR_INITIAL;
        vcpu.el1.cpacr = sysregs::CPACR_FPEN;
        vcpu.fp = FpState::ZERO;
        vcpu.timer_deadline = 0;
        vcpu.state = VcpuState::Runnable;
        let cpu = vcpu.cpu;
        let here = crate::arch::cpu_index();
        self.enqueue(cpu, here, v);
        if cpu != here {
            gic::kick(cpu);
        }
    }

    /// Puts runnable `v` on `cpu`'s queue (`here` is this CPU). If it is the
    /// first to wait behind a running vCPU on this CPU, the preemption timer
    /// is armed now (`sched::timer_deadline`): the running vCPU may never
    /// trap again. Another CPU re-arms its own when kicked.
    pub(super) fn enqueue(&mut self, cpu: usize, here: usize, v: VcpuRef) {
        let c = &mut self.cpus[cpu];
        let was_alone = c.queue.is_empty() && c.current.is_some();
        c.queue.push(v);
        if was_alone && cpu == here {
            crate::arch::timer::set_deadline(crate::sched::timer_deadline(
                true,
                c.slice_end,
                c.next_timer,
            ));
        }
    }

    /// Makes `next` the running vCPU of `cpu`, switching EL1 state if another
    /// vCPU's is loaded, and prepares the entry: the VPSR's FP bit, the
    /// lazy-FPU trap, a pending upcall, the CPU's timer. Each vCPU is looked
    /// up once (this is the world switch's path).
    #[inline(always)]
    pub(super) fn switch_to(&mut self, cpu: usize, next: VcpuRef, now: u64) -> *mut GuestRegs {
        let timeslice = self.timeslice;
        let Hypervisor { domains, cpus, .. } = self;
        let c = &mut cpus[cpu];
        let current = c.current;
        let other = current != Some(next);
        if other {
            let counted = core::mem::take(&mut c.hypercalls);
            if let Some(prev) = current {
                let p = &mut domains[prev.domain as usize].vcpus[prev.vcpu as usize];
                p.stats.hypercalls += counted;
                if p.state == VcpuState::Running {
                    p.state = VcpuState::Runnable;
                }
            }
            c.slice_end = now + timeslice;
            trace_event!(TraceEvent::Run { v: tv(next) });
        }
        let from = c.loaded;
        let switching = from != Some(next);
        if switching {
            if let Some(prev) = from {
                if trace::on() {
                    trace::unloaded(cpu, prev);
                }
                let p = &mut domains[prev.domain as usize].vcpus[prev.vcpu as usize];
                p.el1.save();
                p.stats.switches_out += 1;
            }
        }
        let n = &mut domains[next.domain as usize].vcpus[next.vcpu as usize];
        if switching {
            n.el1.load();
            n.stats.switches_in += 1;
            c.loaded = Some(next);
            trace_event!(TraceEvent::Switch {
                from: from.map(tv),
                to: tv(next),
            });
        }
        c.current = Some(next);
        n.state = VcpuState::Running;
        let regs = regs_ptr(next);
        if other {
            // Unchanged while the same vCPU stays current.
            PERCPU[cpu].current_regs.store(regs, Ordering::Relaxed);
            PERCPU[cpu].current.store(next.packed(), Ordering::Relaxed);
        }
        // The entry.
        apply_fp_enable(n);
        let trap_fp = if c.fp_owner == Some(next) {
            0
        } else {
            cptr::TFP
        };
        sysregs::write_cptr_el2(cptr::BASE | trap_fp);
        Self::deliver_now(next, n);
        program_cpu_timer(c);
        regs
    }

    /// `v` waits for an event (`Block`, `wfi`) unless one is pending;
    /// returns whether it gave up the CPU.
    pub(super) fn block(&mut self, v: VcpuRef) -> bool {
        let vcpu = self.vcpu_mut(v);
        // Only `pending` counts: the guest clears it when it dispatches and
        // leaves virtual IRQs it has no handler for in `pending_virqs`, which
        // must not keep it from blocking.
        let pending = vcpu.vpsr().pending.load(Ordering::SeqCst) != 0;
        let blocked = vcpu.state.block(pending);
        if blocked {
            trace_event!(TraceEvent::Block { v: tv(v) });
        }
        blocked
    }

    /// Lazy FPU: `v` used FP/SIMD without owning the registers on this CPU.
    pub(super) fn fp_trap(&mut self, cpu: usize, v: VcpuRef) {
        trace_event!(TraceEvent::FpTrap {
            v: tv(v),
            owner: self.cpus[cpu].fp_owner.map(tv),
        });
        sysregs::write_cptr_el2(cptr::BASE);
        if let Some(owner) = self.cpus[cpu].fp_owner {
            let o = self.vcpu_mut(owner);
            crate::arch::fp::save(&mut o.fp);
            o.stats.fp_saves += 1;
        }
        let n = self.vcpu_mut(v);
        crate::arch::fp::load(&n.fp);
        n.stats.fp_loads += 1;
        self.cpus[cpu].fp_owner = Some(v);
    }

    /// Forgets every CPU's record of domain `index`'s vCPUs (current, loaded
    /// EL1 state, FP owner, queued): its old instance's state in some CPU's
    /// registers is dropped rather than saved over what comes next.
    pub(super) fn forget_vcpus_of(&mut self, index: usize) {
        for c in &mut self.cpus[..self.cpu_count] {
            let gone = |v: &Option<VcpuRef>| v.is_some_and(|v| v.domain as usize == index);
            if gone(&c.loaded) {
                c.loaded = None;
            }
            if gone(&c.fp_owner) {
                c.fp_owner = None;
            }
            if gone(&c.current) {
                // Its stats were reported when it stopped.
                c.current = None;
                c.hypercalls = 0;
            }
            c.queue.remove_domain(domain_id(index));
        }
    }
}

impl El1State {
    /// All zeros.
    pub const ZERO: El1State = El1State {
        sctlr: 0,
        ttbr0: 0,
        ttbr1: 0,
        tcr: 0,
        mair: 0,
        amair: 0,
        vbar: 0,
        contextidr: 0,
        tpidr_el1: 0,
        tpidr_el0: 0,
        tpidrro_el0: 0,
        sp_el0: 0,
        elr_el1: 0,
        spsr_el1: 0,
        esr_el1: 0,
        far_el1: 0,
        afsr0: 0,
        afsr1: 0,
        par: 0,
        cpacr: 0,
        cntkctl: 0,
        mdscr: 0,
        csselr: 0,
        vmpidr: 0,
        ich_vmcr: 0,
        ich_lr0: 0,
        ich_ap1r0: 0,
        vttbr: 0,
    };
}

/// Applies the VPSR's virtual FP-enable bit to the loaded vCPU's `CPACR_EL1`.
/// Inlined: it is on every guest entry.
#[inline(always)]
pub(super) fn apply_fp_enable(vcpu: &Vcpu) {
    let want = if vcpu.vpsr().fp_enable.load(Ordering::Relaxed) != 0 {
        sysregs::CPACR_FPEN
    } else {
        0
    };
    let cpacr = sysregs::read_cpacr_el1();
    if cpacr & sysregs::CPACR_FPEN != want {
        sysregs::write_cpacr_el1((cpacr & !sysregs::CPACR_FPEN) | want);
    }
}
