//! ABI version and feature bits.
//!
//! A guest states the version it was built for at start-up
//! ([`Hypercall::VersionCheck`](crate::Hypercall::VersionCheck)). The hypervisor
//! refuses a different major version with [`HvError::VersionMismatch`](crate::HvError);
//! a newer minor version on either side is compatible, and optional behaviour is
//! negotiated through [`Features`].

/// An ABI version: `major` changes break compatibility, `minor` ones add to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AbiVersion {
    /// Incompatible changes bump this.
    pub major: u16,
    /// Compatible additions bump this.
    pub minor: u16,
}

/// The version this crate describes.
pub const ABI_VERSION: AbiVersion = AbiVersion { major: 1, minor: 4 };

impl AbiVersion {
    /// Packs the version into one register value: `major << 16 | minor`.
    pub const fn to_raw(self) -> u64 {
        ((self.major as u64) << 16) | self.minor as u64
    }

    /// Unpacks a value made by [`AbiVersion::to_raw`]; bits above 32 are ignored.
    pub const fn from_raw(raw: u64) -> Self {
        Self {
            major: (raw >> 16) as u16,
            minor: raw as u16,
        }
    }

    /// Whether a guest built for `self` can run on a hypervisor offering `host`.
    pub const fn is_compatible_with(self, host: AbiVersion) -> bool {
        self.major == host.major
    }
}

impl core::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Feature bits the hypervisor reports with its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Features(pub u64);

impl Features {
    /// Interrupts are masked lazily through `Vpsr::irq_mask`.
    pub const VPSR_IRQ_MASK: Features = Features(1 << 0);
    /// FP/SIMD is enabled through `Vpsr::fp_enable` and switched lazily.
    pub const LAZY_FPU: Features = Features(1 << 1);
    /// One-shot timer delivered as [`Virq::Timer`](crate::vpsr::Virq::Timer).
    pub const ONESHOT_TIMER: Features = Features(1 << 2);
    /// Several vCPUs per domain ([`Hypercall::VcpuUp`](crate::Hypercall::VcpuUp)).
    pub const SMP: Features = Features(1 << 3);
    /// Event channels (ABI 1.1).
    pub const EVENT_CHANNELS: Features = Features(1 << 4);
    /// Grant tables: map, unmap, copy (ABI 1.1).
    pub const GRANT_TABLES: Features = Features(1 << 5);
    /// The store (ABI 1.1).
    pub const STORE: Features = Features(1 << 6);
    /// Console input: `Virq::Console` and `ConsoleRead` (ABI 1.2).
    pub const CONSOLE_INPUT: Features = Features(1 << 7);
    /// Device interrupts as events: `EvtchnBindPirq`, `IrqEoi` (ABI 1.2).
    pub const DEVICE_IRQS: Features = Features(1 << 8);
    /// Domain control for the control domain: `DomctlList`, `DomctlOp`,
    /// `DomctlTotals`, `ControlRead`, `Virq::Control` (ABI 1.3).
    pub const DOMAIN_CONTROL: Features = Features(1 << 9);
    /// Tracing: `TraceMark` (ABI 1.4). Offered whether or not tracing is on.
    pub const TRACE: Features = Features(1 << 10);

    /// What this hypervisor build offers.
    pub const OFFERED: Features = Features(
        Self::VPSR_IRQ_MASK.0
            | Self::LAZY_FPU.0
            | Self::ONESHOT_TIMER.0
            | Self::SMP.0
            | Self::EVENT_CHANNELS.0
            | Self::GRANT_TABLES.0
            | Self::STORE.0
            | Self::CONSOLE_INPUT.0
            | Self::DEVICE_IRQS.0
            | Self::DOMAIN_CONTROL.0
            | Self::TRACE.0,
    );

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip() {
        let v = AbiVersion {
            major: 3,
            minor: 0xfffe,
        };
        assert_eq!(AbiVersion::from_raw(v.to_raw()), v);
        assert_eq!(ABI_VERSION.to_raw(), 0x1_0004);
    }

    #[test]
    fn compatibility_is_by_major() {
        let host = AbiVersion { major: 1, minor: 2 };
        assert!(AbiVersion { major: 1, minor: 0 }.is_compatible_with(host));
        assert!(AbiVersion { major: 1, minor: 9 }.is_compatible_with(host));
        assert!(!AbiVersion { major: 2, minor: 0 }.is_compatible_with(host));
        assert!(!AbiVersion { major: 0, minor: 2 }.is_compatible_with(host));
    }

    #[test]
    fn offered_features() {
        assert!(Features::OFFERED.contains(Features::LAZY_FPU));
        assert!(Features::OFFERED.contains(Features::GRANT_TABLES));
        assert!(Features::OFFERED.contains(Features::EVENT_CHANNELS));
        assert!(!Features::OFFERED.contains(Features(1 << 40)));
        assert_eq!(ABI_VERSION.to_string(), "1.4");
    }
}
