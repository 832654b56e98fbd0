//! The hypercall ABI, one module per subsystem. `trap` hands each call here
//! decoded; the handlers take typed arguments and return a status (and, in
//! `out`, the results for `x1`–`x3`).
//!
//! Until a domain's `VersionCheck` succeeded, only `Version`,
//! `VersionCheck`, `ConsoleWrite`, `Yield`, `Block` and `Shutdown` work; the
//! rest answer `Perm` (see `parapet_abi::hypercall`).

mod console;
mod domain;
mod evtchn;
mod grant;
mod store;
mod vcpu;

use parapet_abi::hypercall::HVC_IMM;
use parapet_abi::{HvError, Hypercall};

use super::Hypervisor;
use crate::arch::trap::GuestRegs;
use crate::sched::VcpuRef;

impl Hypervisor {
    /// The hypercalls that may switch vCPUs or end the domain, taken on the
    /// full-trap path; returns true if the caller gives up the CPU.
    pub(super) fn slow_hypercall(&mut self, v: VcpuRef, regs: &mut GuestRegs, esr: u64) -> bool {
        let [nr, a1, a2, a3] = [regs.x[0], regs.x[1], regs.x[2], regs.x[3]];
        let (status, gives_up) = if esr & 0xffff != u64::from(HVC_IMM) {
            (Err(HvError::NoSys), false)
        } else {
            match Hypercall::from_raw(nr) {
                Some(Hypercall::Yield) => (Ok(0), true),
                Some(Hypercall::Block) => (Ok(0), self.block(v)),
                Some(Hypercall::Shutdown) => match self.shutdown(v, a1, a2) {
                    Ok(()) => return true,
                    Err(e) => (Err(e), false),
                },
                Some(Hypercall::VcpuUp) => (self.vcpu_up(v, a1, a2, a3), false),
                _ => (Err(HvError::NoSys), false),
            }
        };
        regs.x[0] = match status {
            Ok(value) => value,
            Err(e) => e.to_raw() as u64,
        };
        gives_up
    }

    /// The hypercalls answered without a vCPU switch.
    pub(super) fn fast_hypercall(
        &mut self,
        cpu: usize,
        v: VcpuRef,
        call: Hypercall,
        args: [u64; 6],
        out: &mut [u64; 3],
    ) -> Result<u64, HvError> {
        let d = v.domain as usize;
        let needs_abi = !matches!(call, Hypercall::VersionCheck | Hypercall::ConsoleWrite);
        if needs_abi && !self.domains[d].abi_ok {
            return Err(HvError::Perm);
        }
        let [a1, a2, a3, a4, a5, _] = args;
        match call {
            Hypercall::VersionCheck => self.version_check(d, a1),
            Hypercall::ConsoleWrite => self.console_write(d, a1, a2),
            Hypercall::ConsoleRead => self.console_read(d, a1, a2).map(|n| {
                out[0] = n;
                0
            }),
            Hypercall::SetTimer => {
                self.set_vcpu_timer(cpu, v, a1);
                Ok(0)
            }
            Hypercall::VcpuInfo => {
                *out = self.vcpu_info(v);
                Ok(0)
            }
            Hypercall::VpsrSync => {
                self.vpsr_sync(v);
                Ok(0)
            }
            Hypercall::DomainCount => {
                *out = [
                    self.alive_domains() as u64,
                    self.crashed_domains() as u64,
                    0,
                ];
                Ok(0)
            }
            Hypercall::DomainLookup => self.domain_lookup(d, a1, a2).map(|id| {
                out[0] = id;
                0
            }),
            Hypercall::Stats => {
                *out = self.stats(v);
                Ok(0)
            }
            Hypercall::EvtchnAllocUnbound => self.evtchn_alloc_unbound(v, a1).map(|p| {
                out[0] = p;
                0
            }),
            Hypercall::EvtchnBindInterdomain => self.evtchn_bind_interdomain(v, a1, a2).map(|p| {
                out[0] = p;
                0
            }),
            Hypercall::EvtchnBindVirq => self.evtchn_bind_virq(v, a1, a2).map(|p| {
                out[0] = p;
                0
            }),
            Hypercall::EvtchnBindIpi => self.evtchn_bind_ipi(v, a1).map(|p| {
                out[0] = p;
                0
            }),
            Hypercall::EvtchnBindPirq => self.evtchn_bind_pirq(v, a1).map(|p| {
                out[0] = p;
                0
            }),
            Hypercall::EvtchnSend => self.evtchn_send(v, a1).map(|()| 0),
            Hypercall::EvtchnClose => self.evtchn_close(v, a1).map(|()| 0),
            Hypercall::EvtchnStatus => self.evtchn_status(v, a1).map(|s| {
                *out = s;
                0
            }),
            Hypercall::EvtchnUnmask => self.evtchn_unmask(v, a1).map(|()| 0),
            Hypercall::IrqEoi => self.irq_eoi(v, a1).map(|()| 0),
            Hypercall::GrantMap => self.grant_map(d, a1, a2, a3, a4).map(|r| {
                (out[0], out[1]) = r;
                0
            }),
            Hypercall::GrantUnmap => self.grant_unmap(d, a1).map(|()| 0),
            Hypercall::GrantCopy => self.grant_copy(d, a1),
            Hypercall::StoreWrite => self.store_write(d, a1, a2, a3, a4).map(|()| 0),
            Hypercall::StoreRead => self.store_read(d, a1, a2, a3, a4, a5).map(|n| {
                out[0] = n;
                0
            }),
            Hypercall::StoreRemove => self.store_remove(d, a1, a2).map(|()| 0),
            // Answered before the lock (`Version`) or on the full-trap path.
            Hypercall::Version
            | Hypercall::Yield
            | Hypercall::Block
            | Hypercall::Shutdown
            | Hypercall::VcpuUp => Err(HvError::NoSys),
        }
    }
}
