//! The entry points from the exception vectors and the scheduler loop:
//! the full-trap path (`hv_trap`), the fast hypercall path (`hvc_fast`), and
//! `dispatch`, which chooses what a CPU runs next.

use core::sync::atomic::Ordering;

use parapet_abi::hypercall::HVC_IMM;
use parapet_abi::trace::TraceEvent;
use parapet_abi::{Features, HvError, Hypercall, ABI_VERSION};
use spin::MutexGuard;

pub(super) use super::vcpu::PERCPU;

use super::boot::fatal;
use super::domain::Outcome;
use super::trace::{self, trace_event, tv};
use super::{hvprintln, Hypervisor, HV};
use crate::arch::sysregs;
use crate::arch::trap::{GuestRegs, TrapKind};
use crate::arch::{psci, wait_for_interrupt_polling};
use crate::esr::{self, ec};
use crate::lifecycle::VcpuState;
use crate::sched::{pick_next, VcpuRef, NO_VCPU};

/// How long an idle CPU polls for an interrupt before it halts (iterations).
const IDLE_POLL_SPINS: u32 = 20_000;

/// Chooses what `cpu` runs next (idling until there is something) and
/// prepares the entry. Powers the machine off once every domain has stopped
/// and given its memory back.
///
/// Inlined into the trap path, which then pays for one stack frame, not two.
#[inline(always)]
pub(super) fn dispatch(
    cpu: usize,
    mut hv: MutexGuard<'static, Hypervisor>,
    mut expired: bool,
) -> *mut GuestRegs {
    loop {
        hv.run_after_stop(cpu);
        let now = sysregs::counter();
        hv.fire_timers(cpu, now);
        let current = hv.cpus[cpu]
            .current
            .filter(|&c| hv.vcpu(c).state == VcpuState::Running);
        if current.is_some() && now >= hv.cpus[cpu].slice_end {
            expired = true;
        }
        // `switch_to` marks a preempted current vCPU runnable.
        if let Some(next) = pick_next(&mut hv.cpus[cpu].queue, current, expired) {
            return hv.switch_to(cpu, next, now);
        }
        if let Some(prev) = hv.cpus[cpu].current.take() {
            let n = core::mem::take(&mut hv.cpus[cpu].hypercalls);
            hv.vcpu_mut(prev).stats.hypercalls += n;
            trace_event!(TraceEvent::Idle);
        }
        PERCPU[cpu].current.store(NO_VCPU, Ordering::Relaxed);
        let all_stopped = hv.alive_domains() == 0 && hv.after_stop_pending == 0;
        if hv.domain_count > 0 && all_stopped || hv.domain_count == 0 && cpu == 0 {
            hvprintln!("all domains stopped: {}", hv.tally);
            hv.report_memory();
            psci::system_off();
        }
        hv.program_timer(cpu);
        drop(hv);
        wait_for_interrupt_polling(IDLE_POLL_SPINS);
        hv = HV.lock();
        hv.handle_irqs();
        expired = false;
    }
}

/// The full-trap path: called by the vectors with the current vCPU's saved
/// registers; returns the registers of the vCPU to enter.
#[unsafe(no_mangle)]
extern "C" fn hv_trap(regs: *mut GuestRegs, kind: u64) -> *mut GuestRegs {
    let cpu = crate::arch::cpu_index();
    let mut hv = HV.lock();
    let Some(cur) = hv.cpus[cpu].current else {
        fatal(format_args!("trap on CPU {cpu} with no current vCPU"));
    };
    let mut expired = false;
    match TrapKind::from_raw(kind) {
        TrapKind::Sync => {
            // SAFETY: `regs` is the running vCPU's slot, which the vectors just
            // filled; only this CPU uses it while the vCPU is current.
            let regs = unsafe { &mut *regs };
            if trace::on() {
                return traced_sync(cpu, hv, cur, regs);
            }
            let esr = sysregs::read_esr_el2();
            match hv.handle_sync(cpu, cur, regs, esr) {
                After::Resume => return regs,
                After::Dispatch => {}
                After::GiveUp => expired = true,
            }
        }
        TrapKind::Irq => hv.handle_irqs(),
        TrapKind::Other(k) => {
            let what = if k == 4 {
                "AArch32 execution"
            } else {
                "FIQ/SError"
            };
            hv.stop_domain(
                cur.domain as usize,
                Outcome::Crash(format_args!("{what} is not supported")),
            );
        }
    }
    dispatch(cpu, hv, expired)
}

/// [`hv_trap`]'s synchronous trap with tracing on: the same, between an entry
/// record (the hypercall number, or the exception class) and, for a
/// hypercall, an exit record with its status.
#[inline(never)]
fn traced_sync(
    cpu: usize,
    mut hv: MutexGuard<'static, Hypervisor>,
    cur: VcpuRef,
    regs: &mut GuestRegs,
) -> *mut GuestRegs {
    let v = tv(cur);
    trace::saw_upcall_taken(cpu, cur);
    let esr = sysregs::read_esr_el2();
    let hvc = esr::class(esr) == ec::HVC64;
    let nr = u32::try_from(regs.x[0]).unwrap_or(u32::MAX);
    if hvc {
        trace::emit(TraceEvent::HvcEnter { v, nr });
    } else {
        trace::emit(TraceEvent::Trap {
            v,
            class: u32::try_from(esr::class(esr)).unwrap_or(u32::MAX),
            esr,
        });
    }
    let expired = match hv.handle_sync(cpu, cur, regs, esr) {
        After::Resume | After::Dispatch => false,
        After::GiveUp => true,
    };
    if hvc {
        trace::emit(TraceEvent::HvcExit {
            v,
            nr,
            result: regs.x[0] as i64,
        });
    }
    dispatch(cpu, hv, expired)
}

/// The fast hypercall path: no vCPU switch, only `x18`/`x30` saved by the
/// vectors. Results beyond the status go to `out` (loaded into `x1`–`x3`).
#[unsafe(no_mangle)]
pub(super) extern "C" fn hvc_fast(
    nr: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
    out: *mut [u64; 3],
) -> u64 {
    // SAFETY: `out` points to the 32-byte scratch area the vector reserved on
    // this CPU's stack for exactly this call.
    let out = unsafe { &mut *out };
    if sysregs::read_esr_el2() & 0xffff != u64::from(HVC_IMM) {
        return HvError::NoSys.to_raw() as u64;
    }
    if nr == Hypercall::Version as u64 {
        out[0] = ABI_VERSION.to_raw();
        out[1] = Features::OFFERED.0;
        return 0;
    }
    // Unknown numbers are answered without taking the lock.
    let Some(call) = Hypercall::from_raw(nr) else {
        return HvError::NoSys.to_raw() as u64;
    };
    fast_locked(call, [a1, a2, a3, a4, a5, a6], out)
}

/// The fast hypercalls that need the lock. Kept out of line so that the
/// `Version` path above pays for none of its stack frame (the console buffer).
#[inline(never)]
fn fast_locked(call: Hypercall, args: [u64; 6], out: &mut [u64; 3]) -> u64 {
    let cpu = crate::arch::cpu_index();
    let v = VcpuRef::from_packed(PERCPU[cpu].current.load(Ordering::Relaxed));
    let mut hv = HV.lock();
    hv.cpus[cpu].hypercalls += 1;
    match hv.fast_hypercall(cpu, v, call, args, out) {
        Ok(value) => value,
        Err(e) => e.to_raw() as u64,
    }
}

/// What follows a synchronous trap.
enum After {
    /// Enter the same vCPU at once (a `Yield` answered in place).
    Resume,
    /// `dispatch`, the vCPU keeping the rest of its slice.
    Dispatch,
    /// `dispatch`, the vCPU giving up the CPU.
    GiveUp,
}

impl Hypervisor {
    /// Answers `v`'s `Yield` in place when nothing else may run on this CPU:
    /// no vCPU waits in its queue, no timer is due, no stopped domain awaits
    /// its end, and `v` may still run (not paused or stopped meanwhile by
    /// another CPU). `dispatch` would pick `v` again and change nothing
    /// but the entry work, which is done here: the VPSR's FP bit and any
    /// pending upcall. Returns false (nothing done) otherwise.
    #[inline(never)]
    fn yield_in_place(&mut self, cpu: usize, v: VcpuRef, regs: &mut GuestRegs, esr: u64) -> bool {
        if esr & 0xffff != u64::from(HVC_IMM)
            || self.after_stop_pending != 0
            || self.vcpu(v).state != VcpuState::Running
            || sysregs::counter() >= self.cpus[cpu].next_timer
        {
            return false;
        }
        regs.x[0] = 0;
        self.cpus[cpu].hypercalls += 1;
        let vcpu = self.vcpu_mut(v);
        super::vcpu::apply_fp_enable(vcpu);
        Self::deliver_now(v, vcpu);
        true
    }

    /// Handles a synchronous trap of `v`; returns true if it gives up the CPU.
    fn handle_sync(&mut self, cpu: usize, v: VcpuRef, regs: &mut GuestRegs, esr: u64) -> After {
        let class = esr::class(esr);
        if class == ec::HVC64
            && regs.x[0] == Hypercall::Yield as u64
            && self.cpus[cpu].queue.is_empty()
            && self.yield_in_place(cpu, v, regs, esr)
        {
            return After::Resume;
        }
        self.cpus[cpu].hypercalls += 1;
        let gives_up = match class {
            ec::HVC64 => self.slow_hypercall(v, regs, esr),
            ec::FP => {
                self.fp_trap(cpu, v);
                false
            }
            ec::WFX => {
                regs.elr += 4;
                if esr & 1 == 0 {
                    self.block(v)
                } else {
                    true
                }
            }
            ec::DABT_LOWER | ec::IABT_LOWER => {
                let far = sysregs::read_far_el2();
                let ipa = ((sysregs::read_hpfar_el2() >> 4) << 12) | (far & 0xfff);
                let (kind, write) = esr::abort_description(esr);
                let what = if class == ec::DABT_LOWER {
                    if write {
                        "data abort (write)"
                    } else {
                        "data abort (read)"
                    }
                } else {
                    "instruction abort"
                };
                self.stop_domain(
                    v.domain as usize,
                    Outcome::Crash(format_args!(
                        "stage-2 {what}, {kind} at IPA {ipa:#x} (FAR {far:#x}), PC {:#x}, ESR {esr:#x}: outside the domain's memory",
                        regs.elr
                    )),
                );
                true
            }
            _ => {
                let what = esr::class_name(class);
                self.stop_domain(
                    v.domain as usize,
                    Outcome::Crash(format_args!(
                        "{what} not permitted to guests (ESR {esr:#x}, EC {class:#x}), PC {:#x}, FAR {:#x}",
                        regs.elr,
                        sysregs::read_far_el2()
                    )),
                );
                true
            }
        };
        if gives_up {
            After::GiveUp
        } else {
            After::Dispatch
        }
    }
}
