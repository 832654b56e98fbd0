//! Decoding of `ESR_EL2` for fault reports.
#![deny(unsafe_code)]

/// Exception classes the hypervisor handles or reports.
pub mod ec {
    /// Unknown reason (e.g. `udf` that reached EL2).
    pub const UNKNOWN: u64 = 0x00;
    /// Trapped WFI/WFE.
    pub const WFX: u64 = 0x01;
    /// Access to FP/SIMD trapped by `CPTR_EL2.TFP` (or, at EL1, by `CPACR_EL1`).
    pub const FP: u64 = 0x07;
    /// Illegal execution state.
    pub const ILLEGAL: u64 = 0x0e;
    /// HVC from AArch64.
    pub const HVC64: u64 = 0x16;
    /// SMC from AArch64.
    pub const SMC64: u64 = 0x17;
    /// Trapped MSR/MRS/system instruction.
    pub const SYSREG: u64 = 0x18;
    /// SVE access.
    pub const SVE: u64 = 0x19;
    /// Instruction abort from a lower EL.
    pub const IABT_LOWER: u64 = 0x20;
    /// Instruction abort at the current EL.
    pub const IABT_CURRENT: u64 = 0x21;
    /// PC alignment fault.
    pub const PC_ALIGN: u64 = 0x22;
    /// Data abort from a lower EL.
    pub const DABT_LOWER: u64 = 0x24;
    /// Data abort at the current EL.
    pub const DABT_CURRENT: u64 = 0x25;
    /// SP alignment fault.
    pub const SP_ALIGN: u64 = 0x26;
    /// BRK instruction.
    pub const BRK: u64 = 0x3c;
}

/// The exception class of an ESR value.
pub const fn class(esr: u64) -> u64 {
    (esr >> 26) & 0x3f
}

/// A name for an exception class.
pub fn class_name(ec_value: u64) -> &'static str {
    match ec_value {
        ec::UNKNOWN => "unknown/undefined instruction",
        ec::WFX => "WFI/WFE",
        ec::FP => "FP/SIMD access",
        ec::ILLEGAL => "illegal execution state",
        ec::HVC64 => "HVC",
        ec::SMC64 => "SMC",
        ec::SYSREG => "system register access",
        ec::SVE => "SVE access",
        ec::IABT_LOWER => "instruction abort",
        ec::IABT_CURRENT => "instruction abort (EL2)",
        ec::PC_ALIGN => "PC alignment fault",
        ec::DABT_LOWER => "data abort",
        ec::DABT_CURRENT => "data abort (EL2)",
        ec::SP_ALIGN => "SP alignment fault",
        ec::BRK => "BRK",
        _ => "other exception",
    }
}

/// Whether an abort's fault status code says it happened at stage 2 while the
/// stage-1 walk itself succeeded, i.e. the address is outside the domain.
/// (`S1PTW` distinguishes a stage-2 fault on a stage-1 table walk.)
pub fn abort_description(esr: u64) -> (&'static str, bool) {
    let fsc = esr & 0x3f;
    let write = esr & (1 << 6) != 0;
    let kind = match fsc {
        0x04..=0x07 => "translation fault",
        0x08..=0x0b => "access flag fault",
        0x0c..=0x0f => "permission fault",
        0x10 => "synchronous external abort",
        0x21 => "alignment fault",
        _ => "abort",
    };
    (kind, write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_classes_and_aborts() {
        let esr = (0x24u64 << 26) | (1 << 25) | (1 << 6) | 0x06;
        assert_eq!(class(esr), ec::DABT_LOWER);
        assert_eq!(class_name(class(esr)), "data abort");
        assert_eq!(abort_description(esr), ("translation fault", true));
        assert_eq!(class_name(0x3f), "other exception");
    }
}
