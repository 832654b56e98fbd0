//! Decoding the exceptions that the SDK's vectors report before a crash.
#![deny(unsafe_code)]

use core::fmt;

/// The registers saved by the fatal-exception path (the layout the vector code
/// writes).
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct TrapFrame {
    /// x0–x30.
    pub x: [u64; 31],
    /// `ELR_EL1`: the faulting instruction.
    pub elr: u64,
    /// `SPSR_EL1`.
    pub spsr: u64,
    /// `ESR_EL1`: the syndrome.
    pub esr: u64,
    /// `FAR_EL1`: the faulting address (for aborts).
    pub far: u64,
    /// The stack pointer at the exception.
    pub sp: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 288);

/// The name of vector entry `index` (0–15).
pub fn vector_name(index: u64) -> &'static str {
    const NAMES: [&str; 16] = [
        "current EL/SP0 sync",
        "current EL/SP0 IRQ",
        "current EL/SP0 FIQ",
        "current EL/SP0 SError",
        "current EL/SPx sync",
        "current EL/SPx IRQ",
        "current EL/SPx FIQ",
        "current EL/SPx SError",
        "lower EL/AArch64 sync",
        "lower EL/AArch64 IRQ",
        "lower EL/AArch64 FIQ",
        "lower EL/AArch64 SError",
        "lower EL/AArch32 sync",
        "lower EL/AArch32 IRQ",
        "lower EL/AArch32 FIQ",
        "lower EL/AArch32 SError",
    ];
    NAMES
        .get(index as usize)
        .copied()
        .unwrap_or("unknown vector")
}

/// The name of an exception class (`ESR_EL1.EC`).
pub fn ec_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown reason",
        0x01 => "WFI/WFE",
        0x07 => "FP/SIMD access while disabled",
        0x0e => "illegal execution state",
        0x15 => "SVC",
        0x16 => "HVC",
        0x17 => "SMC",
        0x18 => "trapped system register access",
        0x19 => "SVE access while disabled",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort",
        0x26 => "SP alignment fault",
        0x2c => "floating-point exception",
        0x2f => "SError",
        0x30..=0x35 => "debug exception",
        0x3c => "BRK instruction",
        _ => "unrecognised exception class",
    }
}

/// The name of a data/instruction fault status code (`ISS.DFSC`/`IFSC`).
pub fn fault_status_name(fsc: u64) -> &'static str {
    match fsc {
        0x00..=0x03 => "address size fault",
        0x04..=0x07 => "translation fault",
        0x09..=0x0b => "access flag fault",
        0x0d..=0x0f => "permission fault",
        0x10 => "synchronous external abort",
        0x21 => "alignment fault",
        0x30 => "TLB conflict abort",
        _ => "other fault",
    }
}

/// A decoded exception, as printed before the domain crashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// The vector entry (0–15).
    pub vector: u64,
    /// `ESR_EL1`.
    pub esr: u64,
    /// `FAR_EL1`.
    pub far: u64,
    /// `ELR_EL1`.
    pub elr: u64,
}

impl Report {
    /// Builds a report from a saved frame and its vector index.
    pub fn new(frame: &TrapFrame, vector: u64) -> Self {
        Self {
            vector,
            esr: frame.esr,
            far: frame.far,
            elr: frame.elr,
        }
    }

    /// The exception class.
    pub fn ec(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }

    /// Whether this is a synchronous exception (ESR/FAR are meaningful).
    pub fn is_sync(&self) -> bool {
        self.vector.is_multiple_of(4)
    }

    fn is_abort(&self) -> bool {
        matches!(self.ec(), 0x20 | 0x21 | 0x24 | 0x25)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exception: {}", vector_name(self.vector))?;
        if self.is_sync() {
            write!(f, ": {} (EC {:#04x}", ec_name(self.ec()), self.ec())?;
            if self.is_abort() {
                let fsc = self.esr & 0x3f;
                write!(f, ", {} level {}", fault_status_name(fsc), fsc & 3)?;
                if self.ec() & !1 == 0x24 && self.esr & (1 << 6) != 0 {
                    f.write_str(", write")?;
                }
            }
            f.write_str(")")?;
        }
        write!(f, ", ESR {:#010x}", self.esr)?;
        if self.is_abort() {
            write!(f, ", FAR {:#x}", self.far)?;
        }
        write!(f, ", ELR {:#x}", self.elr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_an_undefined_instruction() {
        let frame = TrapFrame {
            esr: 0x0200_0000,
            elr: 0x4000_1234,
            ..Default::default()
        };
        let r = Report::new(&frame, 4);
        assert_eq!(
            r.to_string(),
            "exception: current EL/SPx sync: unknown reason (EC 0x00), ESR 0x02000000, ELR 0x40001234"
        );
    }

    #[test]
    fn decodes_a_data_abort() {
        // EC 0x25, IL, WnR, DFSC translation fault level 1.
        let esr = (0x25 << 26) | (1 << 25) | (1 << 6) | 0x05;
        let r = Report {
            vector: 4,
            esr,
            far: 0x6000_0000,
            elr: 0x4000_0100,
        };
        let s = r.to_string();
        assert!(
            s.contains("data abort (EC 0x25, translation fault level 1, write)"),
            "{s}"
        );
        assert!(s.contains("FAR 0x60000000"), "{s}");
    }

    #[test]
    fn names_vectors() {
        assert_eq!(vector_name(5), "current EL/SPx IRQ");
        assert_eq!(vector_name(99), "unknown vector");
        let r = Report {
            vector: 7,
            esr: 0,
            far: 0,
            elr: 0,
        };
        assert_eq!(
            r.to_string(),
            "exception: current EL/SPx SError, ESR 0x00000000, ELR 0x0"
        );
    }
}
