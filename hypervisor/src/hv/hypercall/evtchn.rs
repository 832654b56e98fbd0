//! Event-channel hypercalls: allocating, binding, sending, closing,
//! unmasking and querying ports, device interrupts bound to ports, and the
//! closing of a stopped domain's ports.

use parapet_abi::event::Port;
use parapet_abi::trace::TraceEvent;
use parapet_abi::HvError;

use crate::evtchn::{PortState, Target, MAX_PIRQ};
use crate::hv::trace::{trace_event, tv};
use crate::hv::{domain_id, Hypervisor};
use crate::sched::VcpuRef;

impl Hypervisor {
    /// `EvtchnAllocUnbound`: a port only `remote` may bind.
    pub(super) fn evtchn_alloc_unbound(&mut self, v: VcpuRef, remote: u64) -> Result<u64, HvError> {
        let alive = self.domain_alive(remote);
        Ok(self.events.alloc_unbound(v.domain, remote, alive)?.into())
    }

    /// `EvtchnBindInterdomain`: connects to `remote`'s port `remote_port`.
    pub(super) fn evtchn_bind_interdomain(
        &mut self,
        v: VcpuRef,
        remote: u64,
        remote_port: u64,
    ) -> Result<u64, HvError> {
        let alive = self.domain_alive(remote);
        let port = self
            .events
            .bind_interdomain(v.domain, remote, remote_port, alive)?;
        Ok(port.into())
    }

    /// `EvtchnBindVirq`: delivers `virq` of `vcpu` through a port.
    pub(super) fn evtchn_bind_virq(
        &mut self,
        v: VcpuRef,
        virq: u64,
        vcpu: u64,
    ) -> Result<u64, HvError> {
        let vcpus = self.domains[v.domain as usize].vcpu_count;
        Ok(self.events.bind_virq(v.domain, virq, vcpu, vcpus)?.into())
    }

    /// `EvtchnBindIpi`: an inter-vCPU port to `vcpu`.
    pub(super) fn evtchn_bind_ipi(&mut self, v: VcpuRef, vcpu: u64) -> Result<u64, HvError> {
        let vcpus = self.domains[v.domain as usize].vcpu_count;
        Ok(self.events.bind_ipi(v.domain, vcpu, vcpus)?.into())
    }

    /// `EvtchnSend`: notifies the other end of `port`.
    pub(super) fn evtchn_send(&mut self, v: VcpuRef, port: u64) -> Result<(), HvError> {
        let domains = &self.domains;
        let target = self
            .events
            .send_target(v.domain, port, |x| domains[x as usize].alive())?;
        trace_event!(TraceEvent::EventSend {
            from: tv(v),
            port: u32::try_from(port).unwrap_or(u32::MAX),
            to_domain: target.domain,
            to_port: target.port,
        });
        self.send_event(target);
        Ok(())
    }

    /// `EvtchnBindPirq`: binds a passed-through device's interrupt to a port
    /// and routes it to the domain's vCPU 0's CPU.
    pub(super) fn evtchn_bind_pirq(&mut self, v: VcpuRef, intid: u64) -> Result<u64, HvError> {
        // Too large for a `u32`: `bind_pirq`'s first check says `Inval` too.
        let spi = u32::try_from(intid).map_err(|_| HvError::Inval)?;
        let d = v.domain as usize;
        let owned = self.domains[d].device_irqs;
        let port = self.events.bind_pirq(v.domain, intid, |i| {
            (i as usize) < MAX_PIRQ && owned & (1u128 << i) != 0
        })?;
        let cpu = self.domains[d].vcpus[0].cpu;
        self.gic.enable_spi(spi, self.mpidr[cpu]);
        Ok(port.into())
    }

    /// `IrqEoi`: the domain served its device; unmask its interrupt.
    pub(super) fn irq_eoi(&mut self, v: VcpuRef, intid: u64) -> Result<(), HvError> {
        if !self.events.pirq_bound_by(v.domain, intid) {
            return Err(HvError::Access);
        }
        let spi = u32::try_from(intid).map_err(|_| HvError::Access)?;
        self.gic.unmask_spi(spi);
        Ok(())
    }

    /// `EvtchnClose`: frees `port`; the peer's end becomes closed and is
    /// woken so that it notices.
    pub(super) fn evtchn_close(&mut self, v: VcpuRef, port: u64) -> Result<(), HvError> {
        if let Ok(PortState::Pirq(intid)) = self.events.table(v.domain).state(port) {
            self.gic.disable_spi(intid.into());
        }
        if let Some((peer, peer_port)) = self.events.close(v.domain, port)? {
            self.wake_port(peer, peer_port);
        }
        Ok(())
    }

    /// `EvtchnStatus`: the port's state, as `PortStatus::to_raw`.
    pub(super) fn evtchn_status(&self, v: VcpuRef, port: u64) -> Result<[u64; 3], HvError> {
        Ok(self.events.status(v.domain, port)?.to_raw())
    }

    /// `EvtchnUnmask`: the guest cleared the port's mask bit; if it is
    /// pending, raise it on its vCPU.
    pub(super) fn evtchn_unmask(&mut self, v: VcpuRef, port: u64) -> Result<(), HvError> {
        let vcpu = self.events.bound_vcpu(v.domain, port)?;
        let port = Port::try_from(port).map_err(|_| HvError::Inval)?;
        let page = self.domains[v.domain as usize].events();
        if page.is_pending(port) && !page.is_masked(port) {
            self.flag_port(Target {
                domain: v.domain,
                port,
                vcpu,
            });
        }
        Ok(())
    }

    /// Domain `d` stopped: close its ports and wake the peers of those that
    /// were connected, so they see the close.
    pub(in crate::hv) fn teardown_ports(&mut self, d: usize) {
        let mut peers = [(0u8, 0 as Port); 64];
        let mut n = 0;
        self.events.teardown(domain_id(d), |peer, port| {
            if n < peers.len() {
                peers[n] = (peer, port);
                n += 1;
            }
        });
        for &(peer, port) in &peers[..n] {
            self.wake_port(peer, port);
        }
    }
}
