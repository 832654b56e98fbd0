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
use parapet_abi::{Call, HvError, Hypercall};

use super::Hypervisor;
use crate::arch::trap::GuestRegs;
use crate::sched::VcpuRef;

impl Hypervisor {
    /// The hypercalls that may switch vCPUs or end the domain, taken on the
    /// full-trap path; returns true if the caller gives up the CPU.
    pub(super) fn slow_hypercall(&mut self, v: VcpuRef, regs: &mut GuestRegs, esr: u64) -> bool {
        let call = if esr & 0xffff != u64::from(HVC_IMM) {
            Err(HvError::NoSys)
        } else if regs.x[0] == Hypercall::Yield as u64 {
            // The world switch's own calls: no arguments to decode.
            Ok(Call::Yield)
        } else if regs.x[0] == Hypercall::Block as u64 {
            Ok(Call::Block)
        } else {
            let x = &regs.x;
            Call::decode(x[0], [x[1], x[2], x[3], x[4], x[5], x[6]])
        };
        let (status, gives_up) = match call {
            Ok(Call::Yield) => (Ok(0), true),
            Ok(Call::Block) => (Ok(0), self.block(v)),
            Ok(Call::Shutdown { reason, code }) => {
                self.shutdown(v, reason, code);
                return true;
            }
            Ok(Call::VcpuUp { vcpu, entry, arg }) => (self.vcpu_up(v, vcpu, entry, arg), false),
            Ok(_) => (Err(HvError::NoSys), false),
            Err(e) => (Err(e), false),
        };
        regs.x[0] = match status {
            Ok(value) => value,
            Err(e) => e.to_raw() as u64,
        };
        gives_up
    }

    /// The hypercalls answered without a vCPU switch (`call` is the number,
    /// already known; `args` are x1–x6).
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
        let one = |out: &mut [u64; 3], x: u64| {
            out[0] = x;
            0
        };
        match Call::from_args(call, args)? {
            Call::VersionCheck { version } => self.version_check(d, version),
            Call::ConsoleWrite { buf, len } => self.console_write(d, buf, len),
            Call::ConsoleRead { buf, len } => self.console_read(d, buf, len).map(|n| one(out, n)),
            Call::SetTimer { deadline } => {
                self.set_vcpu_timer(cpu, v, deadline);
                Ok(0)
            }
            Call::VcpuInfo => {
                *out = self.vcpu_info(v);
                Ok(0)
            }
            Call::VpsrSync => {
                self.vpsr_sync(v);
                Ok(0)
            }
            Call::DomainCount => {
                *out = [
                    self.alive_domains() as u64,
                    self.crashed_domains() as u64,
                    0,
                ];
                Ok(0)
            }
            Call::DomainLookup { name, len } => {
                self.domain_lookup(d, name, len).map(|id| one(out, id))
            }
            Call::Stats => {
                *out = self.stats(v);
                Ok(0)
            }
            Call::EvtchnAllocUnbound { remote } => {
                self.evtchn_alloc_unbound(v, remote).map(|p| one(out, p))
            }
            Call::EvtchnBindInterdomain {
                remote,
                remote_port,
            } => self
                .evtchn_bind_interdomain(v, remote, remote_port)
                .map(|p| one(out, p)),
            Call::EvtchnBindVirq { virq, vcpu } => {
                self.evtchn_bind_virq(v, virq, vcpu).map(|p| one(out, p))
            }
            Call::EvtchnBindIpi { vcpu } => self.evtchn_bind_ipi(v, vcpu).map(|p| one(out, p)),
            Call::EvtchnBindPirq { intid } => self.evtchn_bind_pirq(v, intid).map(|p| one(out, p)),
            Call::EvtchnSend { port } => self.evtchn_send(v, port).map(|()| 0),
            Call::EvtchnClose { port } => self.evtchn_close(v, port).map(|()| 0),
            Call::EvtchnStatus { port } => self.evtchn_status(v, port).map(|s| {
                *out = s;
                0
            }),
            Call::EvtchnUnmask { port } => self.evtchn_unmask(v, port).map(|()| 0),
            Call::IrqEoi { intid } => self.irq_eoi(v, intid).map(|()| 0),
            Call::GrantMap {
                granter,
                gref,
                ipa,
                flags,
            } => self.grant_map(d, granter, gref, ipa, flags).map(|r| {
                (out[0], out[1]) = r;
                0
            }),
            Call::GrantUnmap { handle } => self.grant_unmap(d, handle).map(|()| 0),
            Call::GrantCopy { op } => self.grant_copy(d, op),
            Call::StoreWrite {
                key,
                key_len,
                value,
                value_len,
            } => self
                .store_write(d, key, key_len, value, value_len)
                .map(|()| 0),
            Call::StoreRead {
                domain,
                key,
                key_len,
                buf,
                buf_len,
            } => self
                .store_read(d, domain, key, key_len, buf, buf_len)
                .map(|n| one(out, n)),
            Call::StoreRemove { key, key_len } => self.store_remove(d, key, key_len).map(|()| 0),
            Call::DomctlList { domain, buf, len } => {
                self.domctl_list(d, domain, buf, len).map(|n| one(out, n))
            }
            Call::DomctlOp { op, domain } => self.domctl_op(d, op, domain).map(|()| 0),
            Call::DomctlTotals => self.domctl_totals(d).map(|t| {
                *out = t;
                0
            }),
            Call::ControlRead { buf, len } => self.control_read(d, buf, len).map(|n| one(out, n)),
            Call::TraceMark { text, len } => super::trace::mark(v, text, len).map(|()| 0),
            // Answered before the lock (`Version`) or on the full-trap path.
            Call::Version
            | Call::Yield
            | Call::Block
            | Call::Shutdown { .. }
            | Call::VcpuUp { .. } => Err(HvError::NoSys),
        }
    }
}
