//! The bench guest: counts the instructions of a null hypercall round trip
//! (`Version`) and of an unknown hypercall with the PMU (exact under
//! `-icount shift=0`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("bench-guest is a bare-metal image: build it with `cargo parapet build`");
}

#[cfg(target_os = "none")]
mod guest {
    use parapet_examples::stats::min_median;
    use parapet_guest::abi::hypercall::Hypercall;
    use parapet_guest::abi::StartInfo;
    use parapet_guest::{pmu, println};

    parapet_guest::entry!(main);

    const ITERATIONS: usize = 1000;
    /// A hypercall number nobody defines.
    const UNKNOWN: u64 = 0xbad;

    fn main(_: &StartInfo) -> i32 {
        pmu::enable_instruction_counter();
        // Calibration: the same counter reads around no instruction.
        let mut calibration = u64::MAX;
        for _ in 0..100 {
            calibration = calibration.min(pmu::measure_nothing());
        }
        println!("bench: calibration: {calibration} instructions");

        let mut samples = [0u64; ITERATIONS];
        for s in samples.iter_mut() {
            *s = pmu::measure_hypercall(Hypercall::Version as u64).saturating_sub(calibration);
        }
        let Some((min, median)) = min_median(&mut samples) else {
            return 1;
        };
        println!("bench: null hypercall: {min} instructions (min), {median} (median)");

        for s in samples.iter_mut() {
            *s = pmu::measure_hypercall(UNKNOWN).saturating_sub(calibration);
        }
        let Some((min, _)) = min_median(&mut samples) else {
            return 1;
        };
        println!("bench: unknown hypercall: {min} instructions (min)");
        0
    }
}
