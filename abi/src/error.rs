//! Typed hypercall errors.
//!
//! On the wire a hypercall returns a signed status in `x0`: zero or positive means
//! success, a negative value is one of the codes below. [`HvError::from_raw`] and
//! [`HvError::to_raw`] convert at the boundary; codes this build does not know
//! survive the round trip as [`HvError::Unknown`].

/// An error returned by a hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HvError {
    /// The caller may not do this (for example, touch another domain's resource).
    Perm,
    /// The named object (vCPU, port, key) does not exist.
    NoEnt,
    /// No such domain, or it is no longer running.
    NoDomain,
    /// Access denied by the object's owner: a grant or port that was not given
    /// to the caller, or a write through a read-only grant.
    Access,
    /// The resource is busy or in use; try again later or release it first.
    Busy,
    /// The hypervisor ran out of memory or of a bounded resource.
    NoMem,
    /// A guest-physical address is not mapped for the caller, or not with the right
    /// permission, or the range crosses out of its memory.
    Fault,
    /// An argument is out of range or malformed.
    Inval,
    /// No such hypercall.
    NoSys,
    /// The hypercall exists but the feature or sub-operation is not supported by
    /// this hypervisor build.
    NotSupported,
    /// The guest was built for an incompatible ABI major version.
    VersionMismatch,
    /// A code this build of the ABI does not know.
    Unknown(i64),
}

impl HvError {
    /// The raw (negative) status code.
    pub const fn to_raw(self) -> i64 {
        match self {
            HvError::Perm => -1,
            HvError::NoEnt => -2,
            HvError::NoDomain => -3,
            HvError::Access => -13,
            HvError::Busy => -16,
            HvError::NoMem => -12,
            HvError::Fault => -14,
            HvError::Inval => -22,
            HvError::NoSys => -38,
            HvError::NotSupported => -95,
            HvError::VersionMismatch => -71,
            HvError::Unknown(raw) => raw,
        }
    }

    /// Decodes a raw negative status code.
    pub const fn from_raw(raw: i64) -> Self {
        match raw {
            -1 => HvError::Perm,
            -2 => HvError::NoEnt,
            -3 => HvError::NoDomain,
            -13 => HvError::Access,
            -16 => HvError::Busy,
            -12 => HvError::NoMem,
            -14 => HvError::Fault,
            -22 => HvError::Inval,
            -38 => HvError::NoSys,
            -95 => HvError::NotSupported,
            -71 => HvError::VersionMismatch,
            other => HvError::Unknown(other),
        }
    }

    /// Decodes the status register of a hypercall return: non-negative is success.
    /// Inlined (the error's decoding is not): it follows every hypercall.
    #[inline(always)]
    pub const fn check(status: u64) -> Result<u64, HvError> {
        let signed = status as i64;
        if signed < 0 {
            Err(HvError::from_raw(signed))
        } else {
            Ok(status)
        }
    }

    /// A short, stable name, as printed by the hypervisor and the SDK.
    pub const fn name(self) -> &'static str {
        match self {
            HvError::Perm => "permission denied",
            HvError::NoEnt => "no such object",
            HvError::NoDomain => "no such domain",
            HvError::Access => "access denied",
            HvError::Busy => "busy",
            HvError::NoMem => "out of memory",
            HvError::Fault => "bad guest address",
            HvError::Inval => "invalid argument",
            HvError::NoSys => "no such hypercall",
            HvError::NotSupported => "not supported",
            HvError::VersionMismatch => "ABI major version mismatch",
            HvError::Unknown(_) => "unknown error",
        }
    }
}

impl core::fmt::Display for HvError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HvError::Unknown(raw) => write!(f, "unknown error {raw}"),
            other => f.write_str(other.name()),
        }
    }
}

impl core::error::Error for HvError {}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [HvError; 11] = [
        HvError::Perm,
        HvError::NoEnt,
        HvError::NoDomain,
        HvError::Access,
        HvError::Busy,
        HvError::NoMem,
        HvError::Fault,
        HvError::Inval,
        HvError::NoSys,
        HvError::NotSupported,
        HvError::VersionMismatch,
    ];

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for (i, e) in ALL.iter().enumerate() {
            assert!(e.to_raw() < 0);
            assert_eq!(HvError::from_raw(e.to_raw()), *e);
            for other in &ALL[i + 1..] {
                assert_ne!(e.to_raw(), other.to_raw());
            }
        }
        assert_ne!(HvError::NoSys, HvError::NotSupported);
    }

    #[test]
    fn unknown_codes_survive() {
        assert_eq!(HvError::from_raw(-1234), HvError::Unknown(-1234));
        assert_eq!(HvError::Unknown(-1234).to_raw(), -1234);
        assert_eq!(HvError::Unknown(-7).to_string(), "unknown error -7");
    }

    #[test]
    fn check_status() {
        assert_eq!(HvError::check(5), Ok(5));
        assert_eq!(HvError::check(0), Ok(0));
        assert_eq!(HvError::check(-38i64 as u64), Err(HvError::NoSys));
    }
}
