//! The virtual FP/SIMD enable bit (`vpsr.fp_enable`).
//!
//! The hypervisor starts every vCPU with FP/SIMD enabled and applies the bit on
//! every entry (or at once with `VpsrSync`). With the bit clear, the first FP/SIMD
//! instruction traps at EL1 (ESR class 0x07) to the SDK's vector, which counts it in
//! `vpsr.stats.fp_disabled_traps`, sets the bit again and retries: FP is enabled
//! lazily, without Rust code or FP registers in the trap path.
#![deny(unsafe_code)]

use core::sync::atomic::Ordering;

use parapet_abi::HvError;

use crate::hypercall;

/// Sets this vCPU's virtual FP enable bit and applies it now (`VpsrSync`).
pub fn set_enabled(enabled: bool) -> Result<(), HvError> {
    crate::vpsr()
        .fp_enable
        .store(enabled as u8, Ordering::SeqCst);
    hypercall::vpsr_sync()
}

/// Whether this vCPU's virtual FP enable bit is set.
pub fn is_enabled() -> bool {
    crate::vpsr().fp_enable.load(Ordering::SeqCst) != 0
}

/// How many lazy-enable FP traps this vCPU took.
pub fn lazy_traps() -> u64 {
    crate::vpsr()
        .stats
        .fp_disabled_traps
        .load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_round_trips() {
        assert!(!is_enabled()); // zeroed page on the host
        set_enabled(true).unwrap();
        assert!(is_enabled());
        set_enabled(false).unwrap();
        assert!(!is_enabled());
        assert_eq!(lazy_traps(), 0);
    }
}
