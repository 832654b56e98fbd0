//! Domain hypercalls: `Shutdown`, `DomainCount`, `DomainLookup`, `Stats`.

use parapet_abi::hypercall::ShutdownReason;
use parapet_abi::start_info;
use parapet_abi::HvError;

use crate::hv::domain::Outcome;
use crate::hv::Hypervisor;
use crate::sched::VcpuRef;

impl Hypervisor {
    /// `Shutdown`: ends the caller's domain (the reason was checked when
    /// the call was decoded: an unknown one is `Inval`).
    pub(super) fn shutdown(&mut self, v: VcpuRef, reason: ShutdownReason, code: u64) {
        let d = v.domain as usize;
        match reason {
            ShutdownReason::Crash => self.stop_domain(
                d,
                Outcome::Crash(format_args!("the guest reported a crash (code {code})")),
            ),
            ShutdownReason::Poweroff | ShutdownReason::Reboot => {
                self.stop_domain(d, Outcome::Exit(code))
            }
        }
    }

    /// `DomainLookup`: the id of the running domain with the name at `ipa`.
    pub(super) fn domain_lookup(&self, d: usize, ipa: u64, len: u64) -> Result<u64, HvError> {
        if len == 0 || len > start_info::NAME_LEN as u64 {
            return Err(HvError::Inval);
        }
        let mut name = [0u8; start_info::NAME_LEN];
        let name = &mut name[..usize::try_from(len).map_err(|_| HvError::Inval)?];
        self.copy_from_guest(d, ipa, name)?;
        self.domains[..self.domain_count]
            .iter()
            .position(|dom| dom.alive() && dom.name().as_bytes() == name)
            .map(|i| i as u64)
            .ok_or(HvError::NoDomain)
    }

    /// `Stats`: world switches on all CPUs, events sent by the caller,
    /// hypercalls made by the caller.
    pub(super) fn stats(&self, v: VcpuRef) -> [u64; 3] {
        let d = v.domain as usize;
        let mut switches = 0;
        for dom in &self.domains[..self.domain_count] {
            for vc in &dom.vcpus[..dom.vcpu_count] {
                switches += vc.stats.switches_in;
            }
        }
        let own: u64 = self.domains[d].vcpus[..self.domains[d].vcpu_count]
            .iter()
            .map(|vc| vc.stats.hypercalls)
            .sum::<u64>()
            + self.pending_hypercalls(d);
        [switches, self.events.table(v.domain).sends, own]
    }
}
