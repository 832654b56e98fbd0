//! The hardware boundary of the hypervisor: everything that uses `asm!`,
//! system registers or MMIO. The rest of the hypervisor calls only what this
//! module re-exports.

pub mod boot;
pub mod cache;
pub mod fp;
pub mod gic;
pub mod mmu;
pub mod phys;
pub mod psci;
pub mod sysregs;
pub mod timer;
pub mod tlb;
pub mod trap;
pub mod uart;

/// Idle polling (as KVM's halt-polling): looks for a pending physical
/// interrupt (`ISR_EL1`, which shows it even while masked at EL2) up to
/// `spins` times before halting in `wfi`. A CPU whose vCPU blocked waiting for
/// a peer on another CPU is then woken in microseconds instead of paying the
/// (emulator's) cost of a halt and wake-up.
pub fn wait_for_interrupt_polling(spins: u32) {
    for _ in 0..spins {
        let isr: u64;
        // SAFETY: reading ISR_EL1 has no side effects.
        unsafe { core::arch::asm!("mrs {}, isr_el1", out(reg) isr, options(nomem, nostack)) };
        if isr & (1 << 7) != 0 {
            return;
        }
        core::hint::spin_loop();
    }
    wait_for_interrupt();
}

/// Waits for an interrupt (or any other wake-up event).
pub fn wait_for_interrupt() {
    // SAFETY: `wfi` has no memory effects; physical IRQs are masked at EL2, so
    // a pending one wakes the CPU without being taken.
    unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack)) };
}

/// Index of the calling CPU (`MPIDR_EL1.Aff0`; QEMU virt numbers CPUs 0..n).
///
/// Always below [`boot::MAX_CPUS`]: boot starts no CPU beyond it, so the mask
/// changes nothing for the CPUs that run, and lets the compiler drop the
/// bounds checks of every per-CPU array on the trap path.
#[inline(always)]
pub fn cpu_index() -> usize {
    (sysregs::read_mpidr() & 0xff) as usize & (boot::MAX_CPUS - 1)
}

const _: () = assert!(boot::MAX_CPUS.is_power_of_two());

/// Whether a virtio-mmio slot holds a device (magic "virt" and a non-zero
/// device id), so that only real devices are passed to the driver domain.
pub fn virtio_slot_present(base: u64) -> bool {
    // SAFETY: `base` is a virtio-mmio slot from the device tree, inside the
    // device region of the EL2 identity map; reading magic and device id has
    // no side effects.
    unsafe {
        core::ptr::read_volatile(base as *const u32) == 0x7472_6976
            && core::ptr::read_volatile((base + 8) as *const u32) != 0
    }
}

/// Resets the virtio-mmio device at `base` (writes 0 to its `Status`
/// register and waits until it reads back 0), so that it stops using the
/// queues and buffers its driver gave it. Returns false if it did not reset.
pub fn virtio_reset(base: u64) -> bool {
    const STATUS: u64 = 0x70;
    let status = (base + STATUS) as *mut u32;
    // SAFETY: `base` is a present virtio-mmio slot from the device tree,
    // inside the device region of the EL2 identity map; writing 0 to its
    // Status register is the reset the virtio specification defines, and
    // reading it back has no side effects.
    unsafe {
        core::ptr::write_volatile(status, 0);
        for _ in 0..1000 {
            if core::ptr::read_volatile(status) == 0 {
                return true;
            }
            core::hint::spin_loop();
        }
    }
    false
}
