//! The virtual FP/SIMD enable bit (`vpsr.fp_enable`).
//!
//! The hypervisor starts every vCPU with FP/SIMD enabled and applies the bit on
//! every entry (or at once with `VpsrSync`). With the bit clear, the first FP/SIMD
//! instruction traps at EL1 (ESR class 0x07) to the SDK's vector, which counts it in
//! `vpsr.stats.fp_disabled_traps`, sets the bit again and retries: FP is enabled
//! lazily, without Rust code or FP registers in the trap path.
//!
//! Upcalls use the same trap so that a handler that uses no FP costs no FP
//! work. When an upcall interrupts code with the bit set, the SDK's IRQ vector
//! saves no FP/SIMD register: it clears the bit and `CPACR_EL1.FPEN` (both, so
//! that a hypercall in the handler, which re-applies the bit, keeps FP off) and
//! records its frame in a per-vCPU word of the VPSR page beyond the shared
//! part. The handler's first FP instruction traps, and the trap saves the
//! interrupted FPCR, FPSR and q0–q31 into that frame before it turns FP on and
//! retries. On its way out the vector sets the bit and FPEN back to their
//! values at entry and loads the saved registers, if the trap saved them.
//! Without FP in the handler, no register is saved or loaded, and the lazy
//! FPU of the hypervisor is not woken either.
//!
//! Thread switches inside handlers (`context::switch`): a switch while an
//! upcall's save is still deferred does that save first (in the switch
//! routine, as the trap would), so the deferred state always belongs to the
//! running thread, the thread switched to may use FP at once, and a thread
//! resumed inside its handler gets its own interrupted state back from its
//! own frame.
#![deny(unsafe_code)]

use core::sync::atomic::Ordering;

use parapet_abi::HvError;

use crate::hypercall;

/// Sets this vCPU's virtual FP enable bit and applies it now (`VpsrSync`).
/// Inside an upcall handler, turning it on first saves the interrupted code's
/// FP state, which the upcall deferred (see below).
pub fn set_enabled(enabled: bool) -> Result<(), HvError> {
    if enabled {
        crate::arch::save_deferred_fp();
    }
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
