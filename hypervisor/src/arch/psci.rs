//! PSCI calls to the firmware (QEMU's built-in PSCI, conduit SMC).

use smccc::{psci, Smc};

/// Starts CPU `cpu` at `entry` with `context` in `x0`.
pub fn cpu_on(cpu: usize, entry: u64, context: u64) -> Result<(), psci::Error> {
    psci::cpu_on::<Smc>(cpu as u64, entry, context)
}

/// Powers the machine off (QEMU exits with status 0).
pub fn system_off() -> ! {
    let _ = psci::system_off::<Smc>();
    loop {
        super::wait_for_interrupt();
    }
}
