//! Starting secondary vCPUs.
//!
//! [`start_vcpu`] starts vCPU `id` through `VcpuUp` at the SDK's secondary entry,
//! which gives it its own 64 KiB stack, its VPSR in `TPIDR_EL1`, the vectors and
//! the identity map, unmasks IRQ exceptions and calls `f(id)`.

use parapet_abi::layout::MAX_VCPUS;
use parapet_abi::HvError;

use crate::{arch, hypercall};

/// The code a secondary vCPU runs; it receives its vCPU id.
pub type SecondaryMain = fn(usize) -> !;

/// Starts vCPU `id` (1 ≤ id < `MAX_VCPUS`) of this domain running `f(id)`.
pub fn start_vcpu(id: usize, f: SecondaryMain) -> Result<(), HvError> {
    if id == 0 || id as u64 >= MAX_VCPUS {
        return Err(HvError::Inval);
    }
    // SAFETY: the entry is the SDK's secondary entry, which sets up the vCPU's
    // stack, vectors and MMU before calling `f`, passed as its argument.
    unsafe { hypercall::vcpu_up(id as u64, arch::secondary_entry(), f as usize as u64) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: usize) -> ! {
        unreachable!()
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(start_vcpu(0, never), Err(HvError::Inval));
        assert_eq!(start_vcpu(MAX_VCPUS as usize, never), Err(HvError::Inval));
        // The fake hypervisor has no SMP.
        assert_eq!(start_vcpu(1, never), Err(HvError::NotSupported));
    }
}
