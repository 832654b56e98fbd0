//! Parapet's hypervisor: runs at EL2 on QEMU `virt` and hosts a driver domain
//! and guests, each in its own stage-2 address space.
//!
//! Portable modules (`stage2`, `frames`, `guest_mem`, `elf`, `bootargs`,
//! `platform`, `sched`, `lifecycle`, `console`, `esr`, `evtchn`, `grant`,
//! `store`, `restart`, `trace`, `convert`) hold the logic and are tested on the host;
//! `hv` holds the state behind the hypervisor's lock and acts on it;
//! everything that touches system registers, the GIC, the timer or the UART
//! lives in `arch`.
#![cfg_attr(target_os = "none", no_std, no_main)]
// Truncating `as` casts hide bugs in address and length arithmetic: use
// `try_from` or say why the value fits.
#![warn(clippy::cast_possible_truncation)]

pub mod bootargs;
pub mod console;
pub mod convert;
pub mod elf;
pub mod esr;
pub mod evtchn;
pub mod frames;
pub mod grant;
pub mod guest_mem;
pub mod lifecycle;
pub mod platform;
pub mod restart;
pub mod sched;
pub mod stage2;
pub mod store;
pub mod trace;

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod hv;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "parapet-hypervisor is a bare-metal image for QEMU virt at EL2: build and run it with `cargo parapet up`"
    );
}
