//! Safe, typed wrappers for every hypercall of the ABI.
//!
//! Each returns `Result<_, HvError>` and builds its registers from a
//! [`Call`] ([`Call::encode`]), the one encoding the hypervisor decodes;
//! [`issue`] issues any typed call and [`call`] a raw one, for tests of bad
//! arguments.

use parapet_abi::hypercall::{ShutdownReason, CONSOLE_WRITE_MAX};
use parapet_abi::{AbiVersion, Call, Features, HvError};

use crate::arch;

/// Issues hypercall `nr` with `args` in x1–x6; returns x1–x3 on success.
///
/// # Safety
/// The arguments must be valid for the call: memory the hypervisor reads or writes
/// on the caller's behalf must be owned by the caller for that access, and a
/// `VcpuUp` entry point must be code that can start a vCPU. Calls with an unknown
/// number, or with addresses outside the caller's memory, are always sound (the
/// hypervisor refuses them).
///
/// Always inlined, so that the arguments go straight into registers and the
/// status check is a test and a branch in the caller.
#[inline(always)]
pub unsafe fn call(nr: u64, args: [u64; 6]) -> Result<[u64; 3], HvError> {
    // SAFETY: the caller vouches for the arguments.
    let r = unsafe { arch::hvc(nr, args) };
    HvError::check(r[0]).map(|_| [r[1], r[2], r[3]])
}

/// Issues `c`; returns x1–x3 on success.
///
/// # Safety
/// As for [`call`]: memory named by the call's addresses must be the caller's
/// for the access the call makes, and a `VcpuUp` entry must be code that can
/// start a vCPU.
#[inline]
pub unsafe fn issue(c: Call) -> Result<[u64; 3], HvError> {
    let (nr, args) = c.encode();
    // SAFETY: the caller vouches for the call's arguments.
    unsafe { call(nr, args) }
}

/// Issues `c` and returns the raw x0–x3 (status included), for callers that
/// read a result next to the status.
///
/// # Safety
/// As for [`issue`].
#[inline]
unsafe fn hvc(c: Call) -> [u64; 4] {
    let (nr, args) = c.encode();
    // SAFETY: the caller vouches for the call's arguments.
    unsafe { arch::hvc(nr, args) }
}

/// A hypercall whose arguments are plain values (no memory, no code
/// addresses), for the SDK's modules.
#[inline]
pub(crate) fn call_plain(c: Call) -> Result<[u64; 3], HvError> {
    // SAFETY: callers pass only hypercalls whose arguments are numbers, which the
    // hypervisor validates; no memory is read or written on our behalf.
    unsafe { issue(c) }
}

/// `Version`: the hypervisor's ABI version and feature bits (the null hypercall).
pub fn version() -> Result<(AbiVersion, Features), HvError> {
    let r = call_plain(Call::Version)?;
    Ok((AbiVersion::from_raw(r[0]), Features(r[1])))
}

/// The version two sides speak: the common major and the lower minor; `None` if
/// the majors differ.
pub fn negotiate(ours: AbiVersion, host: AbiVersion) -> Option<AbiVersion> {
    ours.is_compatible_with(host).then(|| AbiVersion {
        major: ours.major,
        minor: ours.minor.min(host.minor),
    })
}

/// `VersionCheck`: states the ABI version this guest was built for.
/// `Err(VersionMismatch)` when the majors differ. The runtime does this at start.
pub fn version_check(version: AbiVersion) -> Result<(), HvError> {
    call_plain(Call::VersionCheck { version }).map(|_| ())
}

/// `ConsoleWrite`: writes bytes to the domain's console, in chunks of at most
/// `CONSOLE_WRITE_MAX`; returns the number of bytes accepted.
pub fn console_write(bytes: &[u8]) -> Result<usize, HvError> {
    let mut done = 0;
    while done < bytes.len() {
        let chunk = &bytes[done..];
        let len = chunk.len().min(CONSOLE_WRITE_MAX as usize);
        // SAFETY: the hypervisor only reads `len` bytes of a live slice; the guest
        // maps itself 1:1, so its address is the guest-physical address.
        let r = unsafe {
            hvc(Call::ConsoleWrite {
                buf: chunk.as_ptr() as u64,
                len: len as u64,
            })
        };
        let status = HvError::check(r[0])?;
        // The count is a result (x1) by the calling convention; accept it in the
        // status too, and never more than was offered.
        let accepted = (status.max(r[1]) as usize).min(len);
        if accepted == 0 {
            break;
        }
        done += accepted;
    }
    Ok(done)
}

/// `ConsoleRead`: takes console input the hypervisor queued for this domain
/// (the console-input domain; others get `Perm`) into `buf`; returns how many
/// bytes, 0 when there are none. `Virq::Console` says when there are some.
pub fn console_read(buf: &mut [u8]) -> Result<usize, HvError> {
    // SAFETY: the hypervisor writes at most `buf.len()` bytes into a live,
    // exclusively borrowed slice; the guest maps itself 1:1.
    let r = unsafe {
        hvc(Call::ConsoleRead {
            buf: buf.as_mut_ptr() as u64,
            len: buf.len() as u64,
        })
    };
    HvError::check(r[0])?;
    Ok((r[1] as usize).min(buf.len()))
}

/// `Yield`: gives the CPU to another runnable vCPU.
pub fn yield_now() -> Result<(), HvError> {
    call_plain(Call::Yield).map(|_| ())
}

/// `Block`: sleeps until something is pending for this vCPU; returns at once if
/// something already is, even while interrupts are soft-masked.
pub fn block() -> Result<(), HvError> {
    call_plain(Call::Block).map(|_| ())
}

/// `SetTimer`: one-shot timer at an absolute `CNTVCT_EL0` value (0 cancels),
/// delivered as `Virq::Timer`.
pub fn set_timer(deadline: u64) -> Result<(), HvError> {
    call_plain(Call::SetTimer { deadline }).map(|_| ())
}

/// What [`vcpu_info`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuInfo {
    /// This domain's id.
    pub domain_id: u64,
    /// This vCPU's id.
    pub vcpu_id: u64,
    /// The domain's number of vCPUs.
    pub vcpu_count: u64,
}

/// `VcpuInfo`: which domain and vCPU this is.
pub fn vcpu_info() -> Result<VcpuInfo, HvError> {
    let r = call_plain(Call::VcpuInfo)?;
    Ok(VcpuInfo {
        domain_id: r[0],
        vcpu_id: r[1],
        vcpu_count: r[2],
    })
}

/// `Shutdown`: stops the domain. The exit code is passed sign-extended.
pub fn shutdown(reason: ShutdownReason, code: i32) -> ! {
    let _ = call_plain(Call::Shutdown {
        reason,
        code: code as i64 as u64,
    });
    // Only reachable if the hypervisor refused.
    loop {
        let _ = call_plain(Call::Shutdown {
            reason: ShutdownReason::Crash,
            code: 1,
        });
        core::hint::spin_loop();
    }
}

/// `VpsrSync`: applies the VPSR's virtual state (FP enable) now.
pub fn vpsr_sync() -> Result<(), HvError> {
    call_plain(Call::VpsrSync).map(|_| ())
}

/// `VcpuUp`: starts vCPU `id` of this domain at `entry` with `arg` in x0 (its VPSR
/// address in x1, its id in x2; MMU off, SP undefined). Prefer
/// [`smp::start_vcpu`](crate::smp::start_vcpu), which sets up the vCPU.
///
/// # Safety
/// `entry` must be code that can run in that state.
pub unsafe fn vcpu_up(id: u64, entry: u64, arg: u64) -> Result<(), HvError> {
    // SAFETY: the caller vouches for the entry point.
    unsafe {
        issue(Call::VcpuUp {
            vcpu: id,
            entry,
            arg,
        })
    }
    .map(|_| ())
}

/// What [`domain_count`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainCount {
    /// Domains still alive (including the caller).
    pub alive: u64,
    /// Domains that crashed so far.
    pub crashed: u64,
}

/// `DomainCount`: how many domains are alive, and how many crashed.
pub fn domain_count() -> Result<DomainCount, HvError> {
    let r = call_plain(Call::DomainCount)?;
    Ok(DomainCount {
        alive: r[0],
        crashed: r[1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::fake;
    use parapet_abi::ABI_VERSION;

    #[test]
    fn version_decodes() {
        let (v, f) = version().unwrap();
        assert_eq!(v, ABI_VERSION);
        assert_eq!(f, Features::OFFERED);
        assert_eq!(version_check(ABI_VERSION), Ok(()));
        assert_eq!(
            version_check(AbiVersion { major: 2, minor: 0 }),
            Err(HvError::VersionMismatch)
        );
    }

    #[test]
    fn negotiation() {
        let v = |major, minor| AbiVersion { major, minor };
        assert_eq!(negotiate(v(1, 0), v(1, 3)), Some(v(1, 0)));
        assert_eq!(negotiate(v(1, 4), v(1, 3)), Some(v(1, 3)));
        assert_eq!(negotiate(v(1, 0), v(2, 0)), None);
    }

    #[test]
    fn errors_are_typed() {
        // SAFETY: unknown hypercall numbers are always sound.
        assert_eq!(unsafe { call(999, [0; 6]) }, Err(HvError::NoSys));
    }

    #[test]
    fn console_write_splits_into_chunks() {
        let text = vec![b'x'; 2500];
        assert_eq!(console_write(&text), Ok(2500));
        assert_eq!(fake::console_chunks(), [1024, 1024, 452]);
        assert_eq!(fake::take_console(), text);
        assert_eq!(console_write(b""), Ok(0));
        assert!(fake::console_chunks().is_empty());
    }

    #[test]
    fn results_decode() {
        assert_eq!(
            vcpu_info(),
            Ok(VcpuInfo {
                domain_id: 1,
                vcpu_id: 0,
                vcpu_count: 1
            })
        );
        assert_eq!(
            domain_count(),
            Ok(DomainCount {
                alive: 2,
                crashed: 0
            })
        );
        assert_eq!(set_timer(5), Ok(()));
        assert_eq!(fake::last_timer(), 5);
    }
}
