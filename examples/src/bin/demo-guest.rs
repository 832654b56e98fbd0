//! The demo guest: negotiates the ABI, checks timer upcalls while unmasked and
//! while soft-masked, FP/SIMD (including the lazy-enable trap), that code
//! interrupted by an upcall finds its whole FP state intact (q0–q31, FPCR,
//! FPSR) whether the handler used FP or not, and that a handler without FP
//! takes no FP trap; shares the CPU doing f64 work, sleeps, and powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("demo-guest is a bare-metal image: build it with `cargo parapet build`");
}

#[cfg(target_os = "none")]
mod guest {
    use core::hint::black_box;
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    use parapet_examples::fpwork;
    use parapet_guest::abi::vpsr::Virq;
    use parapet_guest::abi::{StartInfo, ABI_VERSION};
    use parapet_guest::time::{self, Duration};
    use parapet_guest::{fpu, hypercall, irq, println, testing};

    parapet_guest::entry!(main);

    static TIMER_FIRED: AtomicU64 = AtomicU64::new(0);

    fn on_timer() {
        TIMER_FIRED.fetch_add(1, Ordering::SeqCst);
    }

    fn fired() -> u64 {
        TIMER_FIRED.load(Ordering::SeqCst)
    }

    fn main(info: &StartInfo) -> i32 {
        match run(info) {
            Ok(()) => {
                println!("demo: done");
                0
            }
            Err(()) => 1,
        }
    }

    fn run(info: &StartInfo) -> Result<(), ()> {
        abi(info)?;
        timer_unmasked()?;
        timer_masked()?;
        fp()?;
        fp_upcall()?;
        work()?;
        Ok(())
    }

    fn abi(info: &StartInfo) -> Result<(), ()> {
        let (host, features) =
            hypercall::version().map_err(|e| println!("abi: version failed: {e}"))?;
        let Some(negotiated) = hypercall::negotiate(ABI_VERSION, host) else {
            println!("abi: FAILED: hypervisor offers {host}, built for {ABI_VERSION}");
            return Err(());
        };
        println!("abi: negotiated {negotiated} (features {:#x})", features.0);
        let me = hypercall::vcpu_info().map_err(|e| println!("abi: vcpu_info failed: {e}"))?;
        println!(
            "domain {}, vcpu {} of {}, RAM {} MiB",
            me.domain_id,
            me.vcpu_id,
            me.vcpu_count,
            info.ram_size >> 20
        );
        Ok(())
    }

    /// The timer fires while unmasked: the upcall must deliver it (we only poll,
    /// never unmask-dispatch, so a moved counter means the upcall ran).
    fn timer_unmasked() -> Result<(), ()> {
        irq::set_handler(Virq::Timer, on_timer);
        let upcalls = &parapet_guest::vpsr().stats.upcalls;
        let (before, upcalls_before) = (fired(), upcalls.load(Ordering::Relaxed));
        let start = time::now();
        time::set_timer_after(Duration::from_millis(5))
            .map_err(|e| println!("timer: set_timer failed: {e}"))?;
        while fired() == before {
            if time::since(start) > Duration::from_secs(2) {
                println!("timer: unmasked FAILED (no upcall within 2 s)");
                return Err(());
            }
            let _ = hypercall::yield_now();
        }
        if upcalls.load(Ordering::Relaxed) == upcalls_before {
            println!("timer: unmasked FAILED (handler ran but no upcall was counted)");
            return Err(());
        }
        println!("timer: unmasked ok (upcall delivered)");
        Ok(())
    }

    /// The timer fires while soft-masked: it must be held (pending) and
    /// dispatched by the unmask.
    fn timer_masked() -> Result<(), ()> {
        let before = fired();
        let state = irq::disable();
        if let Err(e) = time::set_timer_after(Duration::from_millis(2)) {
            irq::restore(state);
            println!("timer: masked FAILED (set_timer: {e})");
            return Err(());
        }
        // Until it is pending (at most 2 s: a loaded host may deschedule
        // QEMU for longer than the timer's 2 ms), with interrupts masked.
        let deadline = time::deadline_after(Duration::from_secs(2));
        time::busy_wait(Duration::from_millis(10));
        while !irq::is_pending() && time::now() < deadline {
            core::hint::spin_loop();
        }
        let ran_while_masked = fired() != before;
        let pending = irq::is_pending();
        irq::restore(state);
        let ran_after = fired() != before;
        if ran_while_masked || !pending || !ran_after {
            println!(
                "timer: masked FAILED (ran while masked: {ran_while_masked}, pending: {pending}, ran after unmask: {ran_after})"
            );
            return Err(());
        }
        println!("timer: masked ok (held while masked, dispatched on unmask)");
        Ok(())
    }

    fn fp() -> Result<(), ()> {
        let n = black_box(10_000);
        let v = fpwork::basel(n);
        if !fpwork::basel_ok(n, v) {
            println!("fp: FAILED (basel({n}) = {v})");
            return Err(());
        }
        let before = fpu::lazy_traps();
        testing::fp_trap_round_trip();
        let after = fpu::lazy_traps();
        if after != before + 1 || !fpu::is_enabled() {
            println!(
                "fp: FAILED (lazy-enable traps {before} -> {after}, fp enabled: {})",
                fpu::is_enabled()
            );
            return Err(());
        }
        // FP works again after the trap.
        let w = fpwork::basel(black_box(n));
        if w.to_bits() != v.to_bits() {
            println!("fp: FAILED after the trap ({w} != {v})");
            return Err(());
        }
        println!("fp: ok ({after} lazy-enable traps)");
        Ok(())
    }

    /// 1 once `testing::fp_state_across_upcall` has its pattern in place, 2
    /// once a timer handler of [`fp_upcall`] ran after that.
    static UPCALL_DONE: AtomicU32 = AtomicU32::new(0);
    /// What the FP-using handler computed (it runs with the interrupted
    /// code's FPCR, so the value itself is not checked).
    static HANDLER_RESULT: AtomicU64 = AtomicU64::new(0);

    /// Moves `UPCALL_DONE` from 1 to 2, or, if the timer came before the
    /// pattern was in place, arms it again.
    fn upcall_seen() {
        if UPCALL_DONE
            .compare_exchange(1, 2, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            let _ = time::set_timer_after(Duration::from_millis(1));
        }
    }

    fn on_timer_without_fp() {
        upcall_seen();
    }

    fn on_timer_with_fp() {
        HANDLER_RESULT.store(fpwork::basel(black_box(50)).to_bits(), Ordering::SeqCst);
        testing::clobber_fp(0x5a5a_5a5a_5a5a_5a5a);
        upcall_seen();
    }

    /// A timer upcall interrupts code that holds a pattern in every FP/SIMD
    /// register, FPCR and FPSR: with a handler that uses no FP (no FP trap
    /// may be taken: the upcall saves no FP register), then with one that
    /// computes in f64 and overwrites them all (one lazy-enable trap, which
    /// saves the interrupted state). Both times it must all come back.
    fn fp_upcall() -> Result<(), ()> {
        let handlers: [(&str, fn(), bool); 2] = [
            ("handler without FP", on_timer_without_fp, false),
            ("handler with FP", on_timer_with_fp, true),
        ];
        for (i, (what, handler, uses_fp)) in handlers.into_iter().enumerate() {
            irq::set_handler(Virq::Timer, handler);
            UPCALL_DONE.store(0, Ordering::SeqCst);
            let traps = fpu::lazy_traps();
            time::set_timer_after(Duration::from_millis(1))
                .map_err(|e| println!("fp upcall: set_timer failed: {e}"))?;
            let seen =
                testing::fp_state_across_upcall(&UPCALL_DONE, 200_000_000, 0x1234_0000 + i as u64);
            let traps = fpu::lazy_traps() - traps;
            let traps_ok = if uses_fp { traps >= 1 } else { traps == 0 };
            if !seen.fired || seen.diff != 0 || !traps_ok || !fpu::is_enabled() {
                println!(
                    "fp upcall: FAILED ({what}: upcall seen {}, FP state differs by {:#x}, {traps} lazy-enable traps, FP enabled {})",
                    seen.fired,
                    seen.diff,
                    fpu::is_enabled()
                );
                irq::set_handler(Virq::Timer, on_timer);
                return Err(());
            }
            println!("fp upcall: {what}: FP state intact, {traps} lazy-enable trap(s)");
        }
        irq::set_handler(Virq::Timer, on_timer);
        println!("fp upcall: ok");
        Ok(())
    }

    /// About 200 ms of f64 work with a yield each round, so that two guests on one
    /// CPU keep handing the FP registers to each other; then two sleeps.
    fn work() -> Result<(), ()> {
        let n = 200;
        let expected = fpwork::basel(n);
        let start = time::now();
        let (mut rounds, mut acc, mut check) = (0u64, 0.0f64, 0.0f64);
        while time::since(start) < Duration::from_millis(200) {
            let v = fpwork::basel(black_box(n));
            if v.to_bits() != expected.to_bits() {
                println!("work: FAILED: round {rounds}: {v} != {expected}");
                return Err(());
            }
            acc += v;
            let _ = hypercall::yield_now();
            check += expected;
            rounds += 1;
        }
        if acc.to_bits() != check.to_bits() {
            println!("work: FAILED: running sum {acc} != {check}");
            return Err(());
        }
        println!("work: {rounds} rounds of f64 work with yields, FP state intact");
        for _ in 0..2 {
            let t = time::now();
            if let Err(e) = time::sleep(Duration::from_millis(20)) {
                println!("sleep: FAILED: {e}");
                return Err(());
            }
            let slept = time::since(t);
            if slept < Duration::from_millis(20) {
                println!("sleep: FAILED: woke after {slept:?}");
                return Err(());
            }
        }
        println!("sleep: ok (2 x 20 ms)");
        Ok(())
    }
}
