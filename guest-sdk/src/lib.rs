//! The Parapet guest SDK: the runtime and the safe hypercall API that guests link.
//!
//! A guest image is a `no_std`, `no_main` binary that depends on this crate, selects
//! the SDK's linker script in its `build.rs` and names its main function with
//! [`entry!`]:
//!
//! ```ignore
//! #![cfg_attr(target_os = "none", no_std, no_main)]
//! #[cfg(target_os = "none")]
//! mod guest {
//!     use parapet_guest::{abi::StartInfo, println};
//!     parapet_guest::entry!(main);
//!     fn main(info: &StartInfo) -> i32 {
//!         println!("hello from {}", info.name());
//!         0
//!     }
//! }
//! #[cfg(not(target_os = "none"))]
//! fn main() { eprintln!("a bare-metal image: build it with `cargo parapet build`"); }
//! ```
//!
//! The SDK's `_start` sets up a stack per vCPU, zeroes BSS, installs its exception
//! vectors, turns on the MMU with an identity map, initialises the heap and the
//! `log` backend, unmasks IRQ exceptions once (from then on interrupts are masked
//! through the VPSR, see [`irq`]), states its ABI version to the hypervisor and
//! calls `main`; main's return value becomes `Shutdown(Poweroff, code)`.
//!
//! Everything that touches the CPU (`asm!`, system registers) is behind the private
//! `arch` module; the rest is portable and unit-tested on the host, where `arch` is a
//! small fake (a zeroed VPSR per thread, a fake counter and a fake hypervisor).
#![cfg_attr(target_os = "none", no_std)]

pub use parapet_abi as abi;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[path = "arch/aarch64/mod.rs"]
mod arch;
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
#[path = "arch/fake.rs"]
mod arch;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod rt;

pub mod cmdline;
pub mod console;
pub mod context;
pub mod control;
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod critical;
pub mod event;
pub mod exception;
pub mod fpu;
pub mod grant;
mod handler_slot;
pub mod heap;
pub mod hypercall;
pub mod irq;
#[cfg(target_os = "none")]
mod memcpy;
pub mod memory;
pub mod smp;
pub mod store;
pub mod time;
pub mod timer;
pub mod trace;
pub mod wait;

/// The PMU instruction counter, for benchmarks (bare metal only).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod pmu {
    pub use crate::arch::pmu::*;
}

/// Helpers that provoke CPU behaviour on purpose, for the SDK's own checks and the
/// fault-injection guests (bare metal only).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod testing {
    pub use crate::arch::testing::*;
}

use parapet_abi::{StartInfo, Vpsr};

static START_INFO: spin::Once<&'static StartInfo> = spin::Once::new();

/// The start-info page of this domain, once the runtime has started (always, in
/// code called from `main`; `None` on the host).
pub fn start_info() -> Option<&'static StartInfo> {
    START_INFO.get().copied()
}

/// Records the start-info page (done once by the runtime).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn set_start_info(info: &'static StartInfo) {
    START_INFO.call_once(|| info);
}

/// The VPSR page of the vCPU this code runs on.
///
/// On the host (unit tests) every thread has its own zeroed VPSR.
pub fn vpsr() -> &'static Vpsr {
    arch::vpsr()
}

/// Names the guest's main function: `fn main(info: &StartInfo) -> i32`.
///
/// The SDK runtime calls it on vCPU 0 once it has set everything up; its return
/// value becomes the exit code of `Shutdown(Poweroff, code)`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[doc(hidden)]
        #[no_mangle]
        pub extern "Rust" fn __parapet_main(info: &$crate::abi::StartInfo) -> i32 {
            let main: fn(&$crate::abi::StartInfo) -> i32 = $main;
            main(info)
        }
    };
}

#[cfg(test)]
mod tests {
    use parapet_abi::layout;

    #[test]
    fn bases_match_the_abi() {
        assert_eq!(
            env!("PARAPET_GUEST_BASE"),
            format!("{:#x}", layout::GUEST_RAM_BASE)
        );
        assert_eq!(
            env!("PARAPET_DRIVER_BASE"),
            format!("{:#x}", layout::DRIVER_DOMAIN_BASE)
        );
    }

    #[test]
    fn linker_scripts_are_generated() {
        let dir = env!("OUT_DIR");
        for (name, base) in [
            ("parapet-guest.ld", "0x40000000"),
            ("parapet-driver.ld", "0x48000000"),
        ] {
            let text = std::fs::read_to_string(std::path::Path::new(dir).join(name)).unwrap();
            assert!(text.contains(&format!(". = {base};")), "{name}");
            for needle in [
                "ENTRY(_start)",
                ".text.boot",
                "__bss_start",
                "__bss_end",
                "__image_end",
                "*(.eh_frame*)",
            ] {
                assert!(text.contains(needle), "{name} lacks {needle}");
            }
        }
    }
}
