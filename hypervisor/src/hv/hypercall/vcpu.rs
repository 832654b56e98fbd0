//! vCPU hypercalls: `VersionCheck`, `VcpuInfo`, `VpsrSync`, `VcpuUp`
//! (`SetTimer`, `Yield` and `Block` act directly on the scheduler).

use parapet_abi::layout;
use parapet_abi::{AbiVersion, HvError, ABI_VERSION};

use crate::hv::vcpu::apply_fp_enable;
use crate::hv::{hvprintln, Hypervisor};
use crate::lifecycle::VcpuState;
use crate::sched::VcpuRef;

impl Hypervisor {
    /// `VersionCheck`: the guest states the ABI it was built for.
    pub(super) fn version_check(&mut self, d: usize, guest: AbiVersion) -> Result<u64, HvError> {
        if guest.is_compatible_with(ABI_VERSION) {
            self.domains[d].abi_ok = true;
            Ok(0)
        } else {
            hvprintln!(
                "domain {} was built for ABI {guest}, this hypervisor speaks {ABI_VERSION}: refused",
                self.domains[d].name()
            );
            Err(HvError::VersionMismatch)
        }
    }

    /// `VcpuInfo`: domain id, vCPU id, vCPU count.
    pub(super) fn vcpu_info(&self, v: VcpuRef) -> [u64; 3] {
        let d = v.domain as usize;
        [
            d as u64,
            u64::from(v.vcpu),
            self.domains[d].vcpu_count as u64,
        ]
    }

    /// `VpsrSync`: applies the VPSR's virtual state now.
    pub(super) fn vpsr_sync(&self, v: VcpuRef) {
        let vcpu = self.vcpu(v);
        apply_fp_enable(vcpu);
        Self::deliver_now(v, vcpu);
    }

    /// `VcpuUp`: starts secondary vCPU `id` of the caller's domain.
    pub(super) fn vcpu_up(
        &mut self,
        v: VcpuRef,
        id: u64,
        entry: u64,
        arg: u64,
    ) -> Result<u64, HvError> {
        let d = &self.domains[v.domain as usize];
        if !d.abi_ok {
            return Err(HvError::Perm);
        }
        if id >= d.vcpu_count as u64 {
            return Err(HvError::NoEnt);
        }
        let id = u8::try_from(id).map_err(|_| HvError::NoEnt)?;
        if entry < d.ram_ipa
            || entry >= layout::reserved_top_base(d.ram_ipa, d.ram_size)
            || !entry.is_multiple_of(4)
        {
            return Err(HvError::Inval);
        }
        let target = VcpuRef {
            domain: v.domain,
            vcpu: id,
        };
        if self.vcpu(target).state != VcpuState::Off {
            return Err(HvError::Busy);
        }
        self.start_vcpu(target, entry, arg);
        Ok(0)
    }
}
