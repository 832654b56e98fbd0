//! Host stand-in for the AArch64 layer, for unit tests: every thread has its own
//! zeroed VPSR, a counter that advances on each read, and a tiny fake hypervisor
//! that answers hypercalls and captures console output.

extern crate std;

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::vec::Vec;

use parapet_abi::hypercall::CONSOLE_WRITE_MAX;
use parapet_abi::{Call, Features, HvError, Vpsr, ABI_VERSION};
use zerocopy::FromZeros;

/// Counter ticks per read of the fake counter.
pub const TICKS_PER_READ: u64 = 1000;

thread_local! {
    static VPSR: &'static Vpsr = Box::leak(Box::new(Vpsr::new_zeroed()));
    static COUNTER: Cell<u64> = const { Cell::new(0) };
    static CONSOLE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static CHUNKS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    static TIMER: Cell<u64> = const { Cell::new(0) };
}

/// This thread's VPSR.
pub fn vpsr() -> &'static Vpsr {
    VPSR.with(|v| *v)
}

/// A fake hypervisor. It decodes the registers with [`Call::decode`], as the
/// real one does, so the SDK's encoding is checked against the ABI's.
///
/// # Safety
/// For `ConsoleWrite`, `args[0]` must point to `args[1]` readable bytes.
pub unsafe fn hvc(nr: u64, args: [u64; 6]) -> [u64; 4] {
    let ok = |a: u64, b: u64, c: u64| [0, a, b, c];
    let err = |e: HvError| [e.to_raw() as u64, 0, 0, 0];
    match Call::decode(nr, args) {
        Err(e) => err(e),
        Ok(Call::Version) => ok(ABI_VERSION.to_raw(), Features::OFFERED.0, 0),
        Ok(Call::VersionCheck { version }) => {
            if version.is_compatible_with(ABI_VERSION) {
                ok(0, 0, 0)
            } else {
                err(HvError::VersionMismatch)
            }
        }
        Ok(Call::ConsoleWrite { buf, len }) => {
            if len > CONSOLE_WRITE_MAX {
                return err(HvError::Inval);
            }
            // SAFETY: the caller guarantees the buffer.
            let bytes = unsafe { core::slice::from_raw_parts(buf as *const u8, len as usize) };
            CONSOLE.with(|c| c.borrow_mut().extend_from_slice(bytes));
            CHUNKS.with(|c| c.borrow_mut().push(len as usize));
            ok(len, 0, 0)
        }
        Ok(Call::SetTimer { deadline }) => {
            TIMER.with(|t| t.set(deadline));
            ok(0, 0, 0)
        }
        Ok(Call::VcpuInfo) => ok(1, 0, 1),
        Ok(Call::DomainCount) => ok(2, 0, 0),
        Ok(Call::Shutdown { reason, code }) => {
            panic!("fake shutdown: {reason:?}, code {}", code as i64)
        }
        Ok(Call::VcpuUp { .. }) => err(HvError::NotSupported),
        Ok(Call::Yield | Call::Block | Call::VpsrSync) => ok(0, 0, 0),
        // Event channels, grants and the store are tested against the real
        // hypervisor under QEMU; their guest-side logic has its own fakes.
        Ok(_) => err(HvError::NotSupported),
    }
}

/// No upcall defers FP state on the host.
pub fn save_deferred_fp() {}

/// The fake counter: advances [`TICKS_PER_READ`] per read.
pub fn counter() -> u64 {
    COUNTER.with(|c| {
        let v = c.get() + TICKS_PER_READ;
        c.set(v);
        v
    })
}

/// 62.5 MHz, as QEMU's.
pub fn counter_frequency() -> u64 {
    62_500_000
}

/// A vCPU index per host thread (tests run in parallel threads, each its own
/// "vCPU"; indices wrap at `MAX_VCPUS`).
pub fn vcpu_index() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % parapet_abi::layout::MAX_VCPUS as usize;
    }
    INDEX.with(|i| *i)
}

/// Boot stacks: one slot per vCPU, a guard page and the stack.
pub const STACK_SLOT: usize = 64 * 1024 + 4096;

/// No boot stacks on the host.
pub fn boot_stacks() -> u64 {
    0
}

/// No image on the host.
pub fn image_end() -> usize {
    0
}

/// No page tables on the host.
pub fn install_translation_root(_root: u64) {}

/// No TLB on the host.
pub fn invalidate_page(_va: u64) {}

/// A stand-in address for the thread trampoline.
pub fn thread_start_address() -> u64 {
    0x1000
}

/// As on the hardware: D, A and F masked, I clear.
pub const THREAD_DAIF: u64 = 0b1101 << 6;

/// Host tests cannot switch stacks: the context layout and `Context::new`
/// are tested on the host, the switch itself under QEMU
/// (`tests/tests/porting.rs`, toy-os). Calling it on the host is a test bug.
///
/// # Safety
/// None needed: it touches nothing and panics.
pub unsafe fn context_switch(
    _from: *mut crate::context::Context,
    _to: *const crate::context::Context,
) {
    panic!("context::switch runs on the guest only; host tests cover the context layout")
}

/// No secondary entry on the host.
pub fn secondary_entry() -> u64 {
    0
}

/// Test helpers.
#[cfg(test)]
pub mod fake {
    use super::*;

    /// Takes the console output captured so far on this thread.
    pub fn take_console() -> Vec<u8> {
        CHUNKS.with(|c| c.borrow_mut().clear());
        CONSOLE.with(|c| core::mem::take(&mut *c.borrow_mut()))
    }

    /// The lengths of the console writes so far (cleared by [`take_console`]).
    pub fn console_chunks() -> Vec<usize> {
        CHUNKS.with(|c| c.borrow().clone())
    }

    /// The last timer deadline set.
    pub fn last_timer() -> u64 {
        TIMER.with(|t| t.get())
    }
}
