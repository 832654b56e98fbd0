//! The micro-benchmark guest: instruction counts (PMU `INST_RETIRED`, exact
//! under `-icount shift=0`) of hypercalls, event delivery and world switches.
//!
//! Two instances share CPU 0 (`scenarios/bench-micro.toml`):
//! * `main` measures, and prints every result as `bench micro <name>
//!   instructions=<min> samples=<n>` (after a free-form `bench: <name>: …`
//!   line with the median), then `bench micro done count=<n>`;
//! * `peer` (cmdline `peer`; `other=NAME` overrides the other domain's
//!   default name in either role) takes the counter readings at the far end
//!   of each cross-domain path and hands them back through a page `main`
//!   grants it.
//!
//! The PMU counter is per physical CPU and keeps counting across world
//! switches (EL1 and EL2), so a reading in `main` and one in `peer` on the
//! same CPU subtract. Each cross-domain sample is tagged with a sequence
//! number in the shared page, so a reading is only paired with the one it
//! belongs to; a pair that comes out reversed is dropped. Every result is
//! minus the calibration (two counter reads around nothing), and covers:
//!
//! | name | from | to |
//! |------|------|----|
//! | `null_hypercall` | `hvc` `Version` | the instruction after it (fast path) |
//! | `unknown_hypercall` | `hvc` with an undefined number | the instruction after it |
//! | `world_switch` | `main`'s `hvc` `Yield` | `peer` returning from its own `hvc` `Yield` |
//! | `lazy_fp_trap` | `main`'s first FP instruction after `peer` used FP | the next instruction |
//! | `event_to_handler` | `main` before `event::send` + `yield_now` | first instruction of `peer`'s port handler, run from the upcall (`peer` blocked unmasked) |
//! | `event_send` | `main` before `event::send` waking the blocked `peer` | its return |
//! | `event_to_handler_unmask` | as `event_to_handler` | the handler, run from the unmask dispatch after `Block` returns in `event::wait_until` |
//! | `yield_no_switch` | `hvc` `Yield` with `peer` gone | the instruction after it (full trap path, no switch) |
//! | `pingpong_block` | `main` before `event::send` | `main` after its `event::wait_until` saw the peer's answer: half of it (one way) |
//! | `pingpong_upcall` | `main` before `event::send` | `main` after its spin loop (`Yield` until its handler, run from the upcall, set a flag) saw the answer: half of it |
//!
//! The two ping-pongs are symmetric: both sides answer the same way, with
//! the SDK's defaults (the virtual FP bit on, as vCPUs start, and each side
//! used FP once before, so that both hold FP state). In `pingpong_block`
//! each side waits in `event::wait_until` (blocked; its port handler runs
//! from the unmask dispatch); in `pingpong_upcall` each side is running, a
//! loop on `Yield` that ends when its port handler, run from the upcall,
//! set a flag. Each sample is a round trip from `main`'s reading before its
//! send to its reading once it saw the answer, minus the calibration,
//! halved.
//!
//! Domain control (`scenarios/bench-domctl.toml`): with cmdline `domctl
//! targets=A,B… [rounds=N]`, a control domain (`control = true`) creates and
//! destroys each target (defined with `autostart = false`, cmdline `idle`:
//! it says `ready` in the store and blocks for good) `N` times and prints
//! `bench domctl create|destroy|reclaim target=NAME mem_kib=K
//! instructions=<min> median=<median> samples=<n>`: `create` and `destroy`
//! are the `DomctlOp` hypercalls (counter reads around `control::domctl`);
//! a destroyed domain's memory comes back in the dispatch that ends the
//! hypercall when no other CPU runs it (always, on one CPU), else in that
//! CPU's next dispatch: `reclaim` is what the next `Yield` costs more than a
//! `Yield` with nothing to do (about 0 when the destroy reclaimed).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("bench-guest is a bare-metal image: build it with `cargo parapet build`");
}

#[cfg(target_os = "none")]
mod guest {
    use core::arch::asm;
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use parapet_examples::stats::{counter_delta, min_median};
    use parapet_guest::abi::event::Port;
    use parapet_guest::abi::hypercall::{Hypercall, HVC_IMM};
    use parapet_guest::abi::{HvError, StartInfo};
    use parapet_guest::grant::{self, SharedBytes, SharedPages};
    use parapet_guest::{cmdline, event, hypercall, irq, pmu, println, store};

    parapet_guest::entry!(main);

    /// Samples of the single-domain measurements.
    const ITERATIONS: usize = 1000;
    /// Samples of each cross-domain measurement.
    const CROSS_SAMPLES: usize = 200;
    /// A hypercall number nobody defines.
    const UNKNOWN: u64 = 0xbad;

    // The shared page (granted by `main`, mapped by `peer`): little-endian u64s.
    /// Sequence number of the current sample (written by `main`).
    const SEQ: usize = 0;
    /// The sequence number `peer` took its reading for (written by `peer`).
    const ACK: usize = 8;
    /// `peer`'s counter reading for sample `ACK`.
    const T1: usize = 16;
    /// What `peer` does now, one of the `CMD_*` (written by `main`).
    const CMD: usize = 24;

    /// `peer` loops on `Yield`, reading the counter as each returns.
    const CMD_YIELD: u64 = 0;
    /// `peer` blocks with interrupts unmasked: its port handler runs from the
    /// upcall taken as it is entered again.
    const CMD_EVENT_UPCALL: u64 = 1;
    /// `peer` waits in `event::wait_until` (soft-masked while blocked): its
    /// port handler runs from the unmask dispatch after `Block` returns.
    const CMD_EVENT_UNMASK: u64 = 2;
    /// `peer` unmaps the page, says `peer-done` in the store and exits.
    const CMD_QUIT: u64 = 3;
    /// `peer` loops on `Yield` and uses the FP registers after each, so that
    /// `main` no longer owns them when it runs again.
    const CMD_FP: u64 = 4;
    /// `peer` answers each event from `main` with one on the same port,
    /// waiting in `event::wait_until` (`pingpong_block`).
    const CMD_PINGPONG_BLOCK: u64 = 5;
    /// `peer` loops on `Yield` and answers when its handler, run from the
    /// upcall, saw an event from `main` (`pingpong_upcall`).
    const CMD_PINGPONG_UPCALL: u64 = 6;

    /// `peer`'s counter reading at the start of its port handler.
    static HANDLER_AT: AtomicU64 = AtomicU64::new(0);
    /// The handler ran since `peer` last reported.
    static FIRED: AtomicBool = AtomicBool::new(false);

    fn main(info: &StartInfo) -> i32 {
        let cmd = info.cmdline();
        let peer_role = cmdline::has(cmd, "peer");
        let default_other = if peer_role { "bench" } else { "bench-peer" };
        let other = cmdline::get(cmd, "other").unwrap_or(default_other);
        let result = if cmdline::has(cmd, "idle") {
            idle()
        } else if cmdline::has(cmd, "domctl") {
            domctl(cmd)
        } else if peer_role {
            peer(other)
        } else {
            bench(other)
        };
        match result {
            Ok(()) => 0,
            Err(e) => {
                println!("bench: failed: {e}");
                1
            }
        }
    }

    /// A word of the shared page: one load (the offsets are aligned
    /// constants inside the first page).
    fn get(page: &impl SharedBytes, offset: usize) -> u64 {
        page.word(offset).map_or(0, |w| w.load(Ordering::Acquire))
    }

    fn put(page: &impl SharedBytes, offset: usize, value: u64) {
        if let Ok(w) = page.word(offset) {
            w.store(value, Ordering::Release);
        }
    }

    /// Reads the counter, then `Yield` at once; returns the reading. The same
    /// sequence as `pmu::measure_hypercall` up to its `hvc`.
    fn read_then_yield() -> u64 {
        let before: u64;
        // SAFETY: `Yield` takes no arguments and touches no guest memory; the
        // hypercall ABI clobbers at most x0-x17 (declared) and the hypervisor
        // restores x20 when it switches back to us.
        unsafe {
            asm!(
                "isb",
                "mrs x20, pmevcntr0_el0",
                "hvc #{imm}",
                imm = const HVC_IMM,
                out("x20") before,
                inlateout("x0") Hypercall::Yield as u64 => _,
                in("x1") 0u64,
                in("x2") 0u64,
                in("x3") 0u64,
                clobber_abi("C"),
                options(nostack),
            )
        };
        before
    }

    /// `Yield`, then reads the counter as soon as it returns: the same
    /// sequence as `pmu::measure_hypercall` from its `hvc`.
    fn yield_then_read() -> u64 {
        let after: u64;
        // SAFETY: as in `read_then_yield`.
        unsafe {
            asm!(
                "hvc #{imm}",
                "isb",
                "mrs x21, pmevcntr0_el0",
                imm = const HVC_IMM,
                out("x21") after,
                inlateout("x0") Hypercall::Yield as u64 => _,
                in("x1") 0u64,
                in("x2") 0u64,
                in("x3") 0u64,
                clobber_abi("C"),
                options(nostack),
            )
        };
        after
    }

    /// Writes an FP/SIMD register: the first such instruction after another
    /// vCPU used them on this CPU traps to the hypervisor's lazy FPU switch.
    fn touch_fp() {
        // SAFETY: only writes v16, declared clobbered.
        unsafe { asm!("fmov d16, xzr", out("v16") _, options(nomem, nostack, preserves_flags)) };
    }

    /// Counter reads around one FP instruction (as `pmu::measure_nothing` plus
    /// the `fmov`): the lazy FPU switch when another vCPU owns the registers.
    fn measure_fp_first_use() -> u64 {
        let (before, after): (u64, u64);
        // SAFETY: reads the PMU counter twice and writes v16, declared clobbered.
        unsafe {
            asm!(
                "isb",
                "mrs x20, pmevcntr0_el0",
                "fmov d16, xzr",
                "isb",
                "mrs x21, pmevcntr0_el0",
                out("x20") before,
                out("x21") after,
                out("v16") _,
                options(nomem, nostack, preserves_flags),
            )
        };
        (after as u32).wrapping_sub(before as u32) as u64
    }

    /// `peer`'s port handler: reads the counter first of all.
    fn on_event(_: Port) {
        HANDLER_AT.store(pmu::read_instructions(), Ordering::Relaxed);
        FIRED.store(true, Ordering::Relaxed);
    }

    // -----------------------------------------------------------------------
    // main

    /// The result lines printed so far.
    struct Results {
        count: u32,
        /// Results with no valid sample (no line printed).
        missing: u32,
    }

    impl Results {
        /// Prints the minimum of `samples` (sorted in place) as a result line,
        /// after a free-form line with the median and what was measured.
        fn report(&mut self, name: &str, what: &str, samples: &mut [u64]) {
            let n = samples.len();
            let Some((min, median)) = min_median(samples) else {
                println!("bench: {name}: no valid sample");
                self.missing += 1;
                return;
            };
            println!("bench: {name}: min {min}, median {median}, {n} samples: {what}");
            println!("bench micro {name} instructions={min} samples={n}");
            self.count += 1;
        }
    }

    fn calibrate() -> u64 {
        // The same counter reads around no instruction.
        let mut calibration = u64::MAX;
        for _ in 0..100 {
            calibration = calibration.min(pmu::measure_nothing());
        }
        calibration
    }

    /// One cross-domain sample per element of `samples`: `go` reads the
    /// counter and starts the path, which ends with `peer` storing its own
    /// reading and acknowledging the sequence number before we run again.
    /// Returns the number of valid samples (at the start of `samples`).
    fn cross(
        page: &SharedPages,
        seq: &mut u64,
        calibration: u64,
        samples: &mut [u64],
        mut go: impl FnMut() -> u64,
    ) -> usize {
        let mut valid = 0;
        for _ in 0..samples.len() {
            *seq += 1;
            put(page, SEQ, *seq);
            let t0 = go();
            if get(page, ACK) != *seq {
                continue;
            }
            if let Some(d) = counter_delta(t0, get(page, T1), calibration) {
                samples[valid] = d;
                valid += 1;
            }
        }
        valid
    }

    /// One round trip per element of `samples`: `round` reads the counter,
    /// sends to `peer` and returns once `peer`'s answer was seen (`FIRED`).
    /// Stores half of each round trip; returns the number of valid samples.
    fn pingpong(samples: &mut [u64], calibration: u64, mut round: impl FnMut() -> u64) -> usize {
        let mut valid = 0;
        for _ in 0..samples.len() {
            FIRED.store(false, Ordering::Relaxed);
            let t0 = round();
            let t1 = pmu::read_instructions();
            if let Some(d) = counter_delta(t0, t1, calibration) {
                samples[valid] = d / 2;
                valid += 1;
            }
        }
        valid
    }

    /// Tells `peer` what to do next: it is either yielding (it sees the
    /// command as its `Yield` returns) or blocked (the event wakes it).
    fn command(page: &SharedPages, port: Port, cmd: u64) -> Result<(), HvError> {
        put(page, CMD, cmd);
        event::send(port)?;
        hypercall::yield_now()
    }

    fn bench(peer_name: &str) -> Result<(), HvError> {
        pmu::enable_instruction_counter();
        let calibration = calibrate();
        println!("bench: calibration: {calibration} instructions (subtracted from every result)");
        let mut out = Results {
            count: 0,
            missing: 0,
        };

        let mut samples = [0u64; ITERATIONS];
        for s in samples.iter_mut() {
            *s = pmu::measure_hypercall(Hypercall::Version as u64).saturating_sub(calibration);
        }
        out.report("null_hypercall", "hvc Version, fast path", &mut samples);
        for s in samples.iter_mut() {
            *s = pmu::measure_hypercall(UNKNOWN).saturating_sub(calibration);
        }
        out.report(
            "unknown_hypercall",
            "hvc with an undefined number",
            &mut samples,
        );

        // Rendezvous with the peer: a port it binds, a page it maps.
        let peer = store::lookup(peer_name)?;
        let port = event::alloc_unbound(peer)?;
        let mut page = SharedPages::new(1)?;
        let gref = page.grant_all(peer, false)?[0];
        store::write_u64("port", port.into())?;
        store::write_u64("page", gref)?;
        store::wait_for_u64(peer, "ready")?;
        // The peer now loops on Yield: the two of us alternate on this CPU.
        let mut seq = 0;

        let mut samples = [0u64; CROSS_SAMPLES];
        let n = cross(&page, &mut seq, calibration, &mut samples, read_then_yield);
        out.report(
            "world_switch",
            "our hvc Yield to the peer's return from its hvc Yield",
            &mut samples[..n],
        );

        let send_and_yield = || {
            let t0 = pmu::read_instructions();
            let _ = event::send(port);
            let _ = hypercall::yield_now();
            t0
        };
        command(&page, port, CMD_FP)?;
        for s in samples.iter_mut() {
            // The peer uses the FP registers, then yields back to us.
            let _ = read_then_yield();
            *s = measure_fp_first_use().saturating_sub(calibration);
        }
        out.report(
            "lazy_fp_trap",
            "an fmov after the peer used FP (trap, save theirs, load ours)",
            &mut samples,
        );

        command(&page, port, CMD_EVENT_UPCALL)?;
        let n = cross(&page, &mut seq, calibration, &mut samples, send_and_yield);
        out.report(
            "event_to_handler",
            "send + yield_now here to the peer's handler, via the upcall",
            &mut samples[..n],
        );

        // The sender's part alone: the peer is blocked, the send wakes it.
        let mut n = 0;
        for _ in 0..samples.len() {
            let t0 = pmu::read_instructions();
            let _ = event::send(port);
            let t1 = pmu::read_instructions();
            let _ = hypercall::yield_now();
            if let Some(d) = counter_delta(t0, t1, calibration) {
                samples[n] = d;
                n += 1;
            }
        }
        out.report(
            "event_send",
            "event::send waking the blocked peer (wrapper + fast hvc)",
            &mut samples[..n],
        );

        command(&page, port, CMD_EVENT_UNMASK)?;
        let n = cross(&page, &mut seq, calibration, &mut samples, send_and_yield);
        out.report(
            "event_to_handler_unmask",
            "send + yield_now here to the peer's handler, via the unmask in wait_until",
            &mut samples[..n],
        );

        // The symmetric ping-pongs: `main` answers the peer's events with the
        // same handler.
        event::set_handler(port, on_event)?;
        touch_fp();
        command(&page, port, CMD_PINGPONG_BLOCK)?;
        let n = pingpong(&mut samples, calibration, || {
            let t0 = pmu::read_instructions();
            let _ = event::send(port);
            let _ = event::wait_until(|| FIRED.load(Ordering::Relaxed));
            t0
        });
        out.report(
            "pingpong_block",
            "one way (half a round trip): event::send, then event::wait_until on both sides",
            &mut samples[..n],
        );

        command(&page, port, CMD_PINGPONG_UPCALL)?;
        let n = pingpong(&mut samples, calibration, || {
            let t0 = pmu::read_instructions();
            let _ = event::send(port);
            while !FIRED.load(Ordering::Relaxed) {
                let _ = hypercall::yield_now();
            }
            t0
        });
        out.report(
            "pingpong_upcall",
            "one way (half a round trip): event::send, then Yield until the upcall's handler saw the answer, on both sides",
            &mut samples[..n],
        );
        event::clear_handler(port)?;

        command(&page, port, CMD_QUIT)?;
        // The peer unmaps the page before it says so (or it is gone already).
        match store::wait_for_u64(peer, "peer-done") {
            Ok(_) | Err(HvError::NoDomain) => {}
            Err(e) => return Err(e),
        }
        drop(page);

        // Alone on the CPU now: the slow hypercall path without a switch.
        let mut samples = [0u64; ITERATIONS];
        for s in samples.iter_mut() {
            *s = pmu::measure_hypercall(Hypercall::Yield as u64).saturating_sub(calibration);
        }
        out.report(
            "yield_no_switch",
            "hvc Yield with nothing else runnable (full trap path)",
            &mut samples,
        );
        println!("bench micro done count={}", out.count);
        if out.missing != 0 {
            return Err(HvError::Inval);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // domain control

    /// Samples per target of the domain-control measurements.
    const DOMCTL_ROUNDS: usize = 64;

    /// `idle`: a target of `domctl`: ready, then blocked until destroyed.
    fn idle() -> Result<(), HvError> {
        store::write_u64("ready", 1)?;
        loop {
            hypercall::block()?;
        }
    }

    /// `domctl targets=A,B [rounds=N]`: see the module docs.
    fn domctl(cmd: &str) -> Result<(), HvError> {
        use parapet_guest::abi::domctl::{DomainRunState, DomctlOp};
        use parapet_guest::control;

        pmu::enable_instruction_counter();
        let calibration = calibrate();
        let rounds = cmdline::get(cmd, "rounds")
            .and_then(|r| r.parse().ok())
            .unwrap_or(16)
            .clamp(1, DOMCTL_ROUNDS);
        let mut nothing = [0u64; DOMCTL_ROUNDS];
        for s in nothing.iter_mut() {
            *s = pmu::measure_hypercall(Hypercall::Yield as u64).saturating_sub(calibration);
        }
        let (yield_min, _) = min_median(&mut nothing).unwrap_or((0, 0));
        println!("bench: domctl: calibration {calibration}, Yield with nothing to do {yield_min}");
        let targets = cmdline::get(cmd, "targets").unwrap_or("victim");
        for name in targets.split(',') {
            // The target's slot, from the list (it does not run yet).
            let mut found = None;
            let mut id = 0;
            while let Ok((info, count)) = control::list(id) {
                if info.name() == name {
                    found = Some(info);
                }
                id += 1;
                if id >= count {
                    break;
                }
            }
            let Some(info) = found else {
                println!("bench: domctl: no domain {name}");
                return Err(HvError::NoEnt);
            };
            if info.run_state() != Some(DomainRunState::Off) {
                println!("bench: domctl: {name} is not off (autostart = false?)");
                return Err(HvError::Busy);
            }
            let target = info.id;
            let mut create = [0u64; DOMCTL_ROUNDS];
            let mut destroy = [0u64; DOMCTL_ROUNDS];
            let mut reclaim = [0u64; DOMCTL_ROUNDS];
            for r in 0..rounds {
                let t0 = pmu::read_instructions();
                let created = control::domctl(DomctlOp::Create, target);
                let t1 = pmu::read_instructions();
                created?;
                create[r] = counter_delta(t0, t1, calibration).unwrap_or(0);
                // Let it boot (one CPU: it runs when we yield) until it is
                // ready; its key went with its last instance.
                while store::read_u64(target, "ready").is_err() {
                    hypercall::yield_now()?;
                }
                let t0 = pmu::read_instructions();
                let destroyed = control::domctl(DomctlOp::Destroy, target);
                let t1 = pmu::read_instructions();
                destroyed?;
                destroy[r] = counter_delta(t0, t1, calibration).unwrap_or(0);
                reclaim[r] = pmu::measure_hypercall(Hypercall::Yield as u64)
                    .saturating_sub(calibration)
                    .saturating_sub(yield_min);
                if control::list(target).map(|(i, _)| i.run_state())
                    != Ok(Some(DomainRunState::Off))
                {
                    println!("bench: domctl: {name} not off after destroy");
                    return Err(HvError::Busy);
                }
            }
            let kib = info.ram_kib;
            for (what, samples) in [
                ("create", &mut create[..rounds]),
                ("destroy", &mut destroy[..rounds]),
                ("reclaim", &mut reclaim[..rounds]),
            ] {
                let (min, median) = min_median(samples).unwrap_or((0, 0));
                println!(
                    "bench domctl {what} target={name} mem_kib={kib} instructions={min} median={median} samples={rounds}"
                );
            }
        }
        let t = control::totals()?;
        println!(
            "bench domctl done: frames free={} at_start={}",
            t.frames_free, t.frames_at_start
        );
        Ok(())
    }

    // -----------------------------------------------------------------------
    // peer

    /// Hands the handler's reading to `main` for the current sample.
    fn report_handler(page: &impl SharedBytes) {
        if FIRED.swap(false, Ordering::Relaxed) {
            put(page, T1, HANDLER_AT.load(Ordering::Relaxed));
            put(page, ACK, get(page, SEQ));
        }
    }

    fn peer(main_name: &str) -> Result<(), HvError> {
        let main = store::lookup(main_name)?;
        pmu::enable_instruction_counter();
        let remote_port = store::wait_for_u64(main, "port")? as Port;
        let gref = store::wait_for_u64(main, "page")? as u32;
        let port = event::bind_interdomain(main, remote_port)?;
        event::set_handler(port, on_event)?;
        let page = grant::map(main, &[gref], false)?;
        if !irq::are_enabled() {
            println!("bench: peer: virtual interrupts masked at start: unmasking");
            irq::enable();
        }
        store::write_u64("ready", 1)?;

        let (mut last_seq, mut last_cmd) = (0, CMD_YIELD);
        loop {
            let cmd = get(&page, CMD);
            if cmd != last_cmd {
                // The handler ran for the command's event: not a sample.
                FIRED.store(false, Ordering::Relaxed);
                last_cmd = cmd;
            }
            match cmd {
                CMD_YIELD => {
                    let t1 = yield_then_read();
                    let seq = get(&page, SEQ);
                    if seq != last_seq {
                        put(&page, T1, t1);
                        put(&page, ACK, seq);
                        last_seq = seq;
                    }
                }
                CMD_EVENT_UPCALL => {
                    // Unmasked: the handler runs from the upcall, before
                    // `block` returns.
                    hypercall::block()?;
                    report_handler(&page);
                }
                CMD_EVENT_UNMASK => {
                    event::wait_until(|| FIRED.load(Ordering::Relaxed))?;
                    report_handler(&page);
                }
                CMD_FP => {
                    let _ = yield_then_read();
                    touch_fp();
                }
                CMD_PINGPONG_BLOCK => {
                    event::wait_until(|| FIRED.load(Ordering::Relaxed))?;
                    FIRED.store(false, Ordering::Relaxed);
                    if get(&page, CMD) == CMD_PINGPONG_BLOCK {
                        event::send(port)?;
                    }
                }
                CMD_PINGPONG_UPCALL => {
                    hypercall::yield_now()?;
                    if FIRED.swap(false, Ordering::Relaxed)
                        && get(&page, CMD) == CMD_PINGPONG_UPCALL
                    {
                        event::send(port)?;
                    }
                }
                CMD_QUIT => break,
                other => {
                    println!("bench: peer: unknown command {other}");
                    return Err(HvError::Inval);
                }
            }
        }
        grant::unmap(page)?;
        event::close(port)?;
        store::write_u64("peer-done", 1)?;
        Ok(())
    }
}
