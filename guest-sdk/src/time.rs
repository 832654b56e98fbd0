//! Time: the virtual counter, conversions, the one-shot timer and sleeping.
#![deny(unsafe_code)]

pub use core::time::Duration;

use parapet_abi::HvError;

use crate::{arch, hypercall};

/// The virtual counter `CNTVCT_EL0`, in ticks.
pub fn now() -> u64 {
    arch::counter()
}

/// Ticks per second of the counter.
pub fn frequency() -> u64 {
    arch::counter_frequency()
}

/// Converts a duration to counter ticks at `freq` Hz (rounding up, saturating).
pub fn duration_to_ticks(d: Duration, freq: u64) -> u64 {
    let ticks = (d.as_nanos() * freq as u128).div_ceil(1_000_000_000);
    ticks.min(u64::MAX as u128) as u64
}

/// Converts counter ticks at `freq` Hz to a duration (rounding down).
pub fn ticks_to_duration(ticks: u64, freq: u64) -> Duration {
    if freq == 0 {
        return Duration::ZERO;
    }
    let nanos = ticks as u128 * 1_000_000_000 / freq as u128;
    Duration::new(
        (nanos / 1_000_000_000) as u64,
        (nanos % 1_000_000_000) as u32,
    )
}

/// A duration in ticks of this counter.
pub fn ticks(d: Duration) -> u64 {
    duration_to_ticks(d, frequency())
}

/// The time elapsed since counter value `start`.
pub fn since(start: u64) -> Duration {
    ticks_to_duration(now().saturating_sub(start), frequency())
}

/// The counter value `d` from now.
pub fn deadline_after(d: Duration) -> u64 {
    now().saturating_add(ticks(d))
}

/// Arms this vCPU's one-shot timer `d` from now, directly; returns the
/// deadline. This bypasses (and until the queue's next change overrides)
/// the [`crate::timer`] queue that `sleep`, the frontends and an OS's tick
/// share: prefer [`crate::timer::add_after`].
pub fn set_timer_after(d: Duration) -> Result<u64, HvError> {
    let deadline = deadline_after(d);
    hypercall::set_timer(deadline)?;
    Ok(deadline)
}

/// Spins on the counter for `d` (no hypercalls).
pub fn busy_wait(d: Duration) {
    let deadline = deadline_after(d);
    while now() < deadline {
        core::hint::spin_loop();
    }
}

/// Waits for at least `d`, through [`crate::wait`]: blocks this vCPU (other
/// virtual IRQs are dispatched meanwhile), or parks the calling thread when
/// a guest OS installed its wait hook. The deadline is a timer of the
/// [`crate::timer`] queue, so it overrides no other timer.
pub fn sleep(d: Duration) -> Result<(), HvError> {
    let deadline = deadline_after(d);
    match crate::wait::wait_until(Some(deadline), || None::<()>) {
        Ok(()) | Err(crate::wait::WaitError::TimedOut) => Ok(()),
        Err(crate::wait::WaitError::Hv(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::fake;

    #[test]
    fn conversions() {
        let f = 62_500_000;
        assert_eq!(duration_to_ticks(Duration::from_millis(1), f), 62_500);
        assert_eq!(duration_to_ticks(Duration::from_nanos(1), f), 1);
        assert_eq!(duration_to_ticks(Duration::ZERO, f), 0);
        assert_eq!(duration_to_ticks(Duration::MAX, f), u64::MAX);
        assert_eq!(ticks_to_duration(62_500, f), Duration::from_millis(1));
        assert_eq!(
            ticks_to_duration(f * 3 + f / 2, f),
            Duration::from_millis(3500)
        );
        assert_eq!(ticks_to_duration(5, 0), Duration::ZERO);
    }

    #[test]
    fn sleep_arms_the_timer_and_waits() {
        let before = now();
        sleep(Duration::from_millis(2)).unwrap();
        let after = now();
        assert!(after - before >= 125_000);
        // The wake-up timer was armed in the queue and is gone again.
        assert_eq!(fake::last_timer(), 0);
        assert_eq!(crate::timer::armed(), 0);
        assert!(crate::irq::are_enabled());
    }

    #[test]
    fn deadlines_move_forward() {
        let d = set_timer_after(Duration::from_millis(5)).unwrap();
        assert_eq!(fake::last_timer(), d);
        assert!(d > now() - fake_ticks());
    }

    fn fake_ticks() -> u64 {
        crate::arch::TICKS_PER_READ
    }
}
