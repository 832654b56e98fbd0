//! The hypervisor-core checker, for the scenarios that push the core:
//!
//! * `mode=hello`: says hello with its domain id and exits (many of them
//!   boot side by side in `scenarios/scale.toml`).
//! * `mode=waker peer=NAME` and `mode=sleeper peer=NAME`, on the same CPU
//!   (`scenarios/wakeup.toml`): the sleeper blocks on an event channel; the
//!   waker sends it an event and then computes without a single trap. The
//!   sleeper prints how late it ran. Then the waker floods events and waits
//!   for the sleeper's answer with fast hypercalls only (which never
//!   reschedule), so only preemption lets the sleeper answer.
//! * `mode=spray`: maps a page of its own in every 2 MiB region of its grant
//!   window until the hypervisor refuses (`NoMem`: its stage-2 table quota),
//!   holds them for `hold_ms`, then unmaps them all
//!   (`scenarios/grant-spray.toml`).
//! * `mode=threads`: two threads on `memory::Stack`s switched by a 10 ms
//!   tick from the timer queue, inside the timer handler (preemption), each
//!   (and `main`) computing in f64 with its own operand; checks all three made
//!   progress and every result was exact (the FP state of a thread
//!   preempted in the middle of its work survives the other threads' FP
//!   work).
//! * `mode=overflow`: a thread on an 8 KiB stack recurses until it hits its
//!   guard page: the SDK must report `stack overflow: deep-thread`.
//! * `mode=control target=NAME [rounds=N] [first_ms=M]`: as the control
//!   domain (`control = true`), waits `M` ms (default 2000), then `N` times
//!   (default 2) creates `NAME`, waits until its `vif0` is connected (its
//!   frontend's state in the store) and destroys it
//!   (`scenarios/domctl-other.toml`: the driver domain, not the control
//!   domain, wires a guest that did not run at boot once it starts).
//! * `mode=ping peer=NAME [rounds=N]` and `mode=pong peer=NAME [rounds=N]`: an event
//!   ping-pong of `N` (default 20) round trips over one event channel, each
//!   side waiting for the other's event with the SDK's `wait_until`. Each
//!   side marks the trace (`trace::mark("ping 3")`, `"pong 3"`) so a round
//!   trip can be read in `parapet up --trace` (`scenarios/pingpong.toml`,
//!   docs/tracing.md).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("core-guest is a bare-metal image: build it with `cargo parapet build`");
}

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicU32, Ordering};
    use core::time::Duration;

    use parapet_guest::abi::grant::{GRANT_WINDOW_BASE, GRANT_WINDOW_SIZE};
    use parapet_guest::abi::{HvError, StartInfo};
    use parapet_guest::{cmdline, event, grant, println, store, time};

    parapet_guest::entry!(main);

    static EVENTS: AtomicU32 = AtomicU32::new(0);

    fn on_event(_port: u32) {
        EVENTS.fetch_add(1, Ordering::SeqCst);
    }

    fn ms(ticks: u64) -> u64 {
        ticks * 1000 / time::frequency()
    }

    fn main(info: &StartInfo) -> i32 {
        let cmd = info.cmdline();
        let result = match cmdline::get(cmd, "mode").unwrap_or("hello") {
            "hello" => {
                println!(
                    "core: hello from {} (domain {})",
                    info.name(),
                    info.domain_id
                );
                Ok(())
            }
            "waker" => waker(cmd),
            "sleeper" => sleeper(cmd),
            "spray" => spray(cmd, info.domain_id),
            "threads" => threads::run(),
            "overflow" => threads::overflow(),
            "control" => control_cycles(cmd),
            "ping" => pingpong::ping(cmd),
            "pong" => pingpong::pong(cmd),
            other => {
                println!("core: unknown mode {other:?}");
                return 2;
            }
        };
        match result {
            Ok(()) => 0,
            Err(e) => {
                println!("core: FAILED: {e}");
                1
            }
        }
    }

    /// `mode=control`: see the module docs.
    fn control_cycles(cmd: &str) -> Result<(), HvError> {
        use parapet_guest::abi::domctl::DomctlOp;
        use parapet_guest::control;

        let name = cmdline::get(cmd, "target").ok_or(HvError::Inval)?;
        let number = |key, default| {
            cmdline::get(cmd, key)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let (rounds, first_ms) = (number("rounds", 2), number("first_ms", 2000));
        let mut target = None;
        let mut id = 0;
        while let Ok((info, count)) = control::list(id) {
            if info.name() == name {
                target = Some(info.id);
            }
            id += 1;
            if id >= count {
                break;
            }
        }
        let target = target.ok_or(HvError::NoEnt)?;
        time::sleep(Duration::from_millis(first_ms))?;
        for round in 1..=rounds {
            control::domctl(DomctlOp::Create, target)?;
            // Connected (4): its vif went through the handshake.
            let limit = time::now() + time::ticks(Duration::from_secs(60));
            while store::read_u64(target, "vif0/state") != Ok(4) {
                if time::now() > limit {
                    println!("core: control: {name}'s vif0 did not connect");
                    return Err(HvError::Busy);
                }
                time::sleep(Duration::from_millis(10))?;
            }
            control::domctl(DomctlOp::Destroy, target)?;
            println!(
                "core: control: {name} created, connected and destroyed ({round} of {rounds})"
            );
        }
        Ok(())
    }

    fn peer(cmd: &str) -> Result<u32, HvError> {
        let name = cmdline::get(cmd, "peer").ok_or(HvError::Inval)?;
        loop {
            match store::lookup(name) {
                Ok(id) => return Ok(id),
                Err(HvError::NoDomain) => time::sleep(Duration::from_millis(5))?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one event, then computes for `spin_ms` without trapping; then
    /// floods events and waits for the sleeper's answer with `StoreRead`
    /// only (fast hypercalls, which never reschedule).
    fn waker(cmd: &str) -> Result<(), HvError> {
        let sleeper = peer(cmd)?;
        let spin_ms: u64 = cmdline::get(cmd, "spin_ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000);
        let port = event::alloc_unbound(sleeper)?;
        store::write_u64("wake-port", port.into())?;
        // The sleeper says when it is bound and about to block.
        store::wait_for_u64(sleeper, "ready")?;
        time::sleep(Duration::from_millis(20))?;
        let t0 = time::now();
        store::write_u64("sent-at", t0)?;
        event::send(port)?;
        time::busy_wait(Duration::from_millis(spin_ms));
        println!("core: waker computed {spin_ms} ms without a trap after the wake-up");

        let flood_start = time::now();
        for _ in 0..10_000 {
            event::send(port)?;
        }
        let deadline = flood_start + time::ticks(Duration::from_secs(60));
        loop {
            match store::read_u64(sleeper, "flood-seen") {
                Ok(_) => break,
                Err(HvError::NoEnt) if time::now() < deadline => core::hint::spin_loop(),
                Err(e) => return Err(e),
            }
        }
        println!(
            "core: flood of 10000 events answered after {} ms",
            ms(time::now() - flood_start)
        );
        store::write_u64("done", 1)?;
        Ok(())
    }

    fn sleeper(cmd: &str) -> Result<(), HvError> {
        let waker = peer(cmd)?;
        let remote = store::wait_for_u64(waker, "wake-port")?;
        let port = event::bind_interdomain(waker, remote as u32)?;
        event::set_handler(port, on_event)?;
        store::write_u64("ready", 1)?;
        event::wait_until(|| EVENTS.load(Ordering::SeqCst) > 0)?;
        let woken = time::now();
        let sent = store::read_u64(waker, "sent-at")?;
        println!(
            "core: woken {} ms after the event was sent (time slice {} ms)",
            ms(woken.saturating_sub(sent)),
            cmdline::get(cmd, "slice_ms").unwrap_or("?")
        );
        let seen = EVENTS.load(Ordering::SeqCst);
        event::wait_until(|| EVENTS.load(Ordering::SeqCst) > seen)?;
        store::write_u64("flood-seen", 1)?;
        println!("core: sleeper saw the flood");
        // Stay until the waker has read the answer.
        match store::wait_for_u64(waker, "done") {
            Ok(_) | Err(HvError::NoDomain) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// An event ping-pong with trace marks.
    mod pingpong {
        use core::fmt::Write as _;
        use core::sync::atomic::Ordering;

        use parapet_guest::abi::HvError;
        use parapet_guest::{cmdline, event, println, store, trace};

        use super::{on_event, peer, EVENTS};

        /// A mark's text: `what` and the round (at most 16 bytes).
        fn mark(what: &str, round: u32) {
            let mut text = heapless_text::Text::default();
            let _ = write!(text, "{what} {round}");
            if let Err(e) = trace::mark(text.as_str()) {
                println!("core: trace mark refused: {e}");
            }
        }

        /// A tiny fixed buffer for a mark's text (no allocation).
        mod heapless_text {
            #[derive(Default)]
            pub struct Text {
                buf: [u8; 16],
                len: usize,
            }
            impl Text {
                pub fn as_str(&self) -> &str {
                    core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
                }
            }
            impl core::fmt::Write for Text {
                fn write_str(&mut self, s: &str) -> core::fmt::Result {
                    let end = self.len + s.len();
                    let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
                    dst.copy_from_slice(s.as_bytes());
                    self.len = end;
                    Ok(())
                }
            }
        }

        fn rounds(cmd: &str) -> u32 {
            cmdline::get(cmd, "rounds")
                .and_then(|v| v.parse().ok())
                .unwrap_or(20)
        }

        pub fn ping(cmd: &str) -> Result<(), HvError> {
            let pong = peer(cmd)?;
            let rounds = rounds(cmd);
            let port = event::alloc_unbound(pong)?;
            event::set_handler(port, on_event)?;
            store::write_u64("ping-port", port.into())?;
            store::wait_for_u64(pong, "ready")?;
            for round in 1..=rounds {
                mark("ping", round);
                event::send(port)?;
                event::wait_until(|| EVENTS.load(Ordering::SeqCst) >= round)?;
            }
            println!("core: ping-pong: {rounds} round trips");
            Ok(())
        }

        pub fn pong(cmd: &str) -> Result<(), HvError> {
            let ping = peer(cmd)?;
            let rounds = rounds(cmd);
            let remote = store::wait_for_u64(ping, "ping-port")?;
            let port = event::bind_interdomain(ping, remote as u32)?;
            event::set_handler(port, on_event)?;
            store::write_u64("ready", 1)?;
            for round in 1..=rounds {
                event::wait_until(|| EVENTS.load(Ordering::SeqCst) >= round)?;
                mark("pong", round);
                event::send(port)?;
            }
            println!("core: ping-pong: answered {rounds}");
            Ok(())
        }
    }

    /// Two threads preempted by a tick, and a stack overflow.
    mod threads {
        use core::hint::black_box;
        use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
        use core::time::Duration;

        use parapet_examples::fpwork;
        use parapet_guest::abi::HvError;
        use parapet_guest::context::{self, Context};
        use parapet_guest::memory::Stack;
        use parapet_guest::{println, time, timer};

        /// Thread contexts: 0 is `main`'s, 1 and 2 the workers'. Only the
        /// tick handler and the threads on this one vCPU touch them.
        static mut CONTEXTS: [Context; 3] = [const { Context::empty() }; 3];
        static CURRENT: AtomicUsize = AtomicUsize::new(0);
        static COUNTS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
        static TICKS: AtomicU64 = AtomicU64::new(0);
        /// Each thread's `basel` operand, and the exact result (computed by
        /// `main` before the tick starts).
        const TERMS: [u64; 3] = [301, 502, 703];
        static EXPECTED: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
        /// Results that differed from `EXPECTED`.
        static WRONG: AtomicU64 = AtomicU64::new(0);

        /// One round of f64 work, checked: several FP registers are live
        /// most of the time, so the tick often preempts it mid-computation.
        fn fp_round(me: usize) {
            let v = fpwork::basel(black_box(TERMS[me]));
            if v.to_bits() != EXPECTED[me].load(Ordering::Relaxed) {
                WRONG.fetch_add(1, Ordering::Relaxed);
            }
            COUNTS[me].fetch_add(1, Ordering::Relaxed);
        }

        fn switch_to(next: usize) {
            let prev = CURRENT.swap(next, Ordering::SeqCst);
            if prev == next {
                return;
            }
            #[allow(unsafe_code)]
            // SAFETY: one vCPU; the contexts live in a static; each index is
            // a thread started on its own stack (or main's).
            unsafe {
                let all = &raw mut CONTEXTS;
                let from = &mut (*all)[prev];
                let to = &(*all)[next];
                context::switch(from, to);
            }
        }

        /// The tick: round-robin among the three, inside the timer handler.
        fn tick(_: usize) {
            TICKS.fetch_add(1, Ordering::SeqCst);
            let next = (CURRENT.load(Ordering::SeqCst) + 1) % 3;
            switch_to(next);
        }

        fn worker(me: usize) -> ! {
            loop {
                fp_round(me);
            }
        }

        pub fn run() -> Result<(), HvError> {
            context::enable_switching();
            let stacks = [
                Stack::new(16 * 1024, "worker-1").map_err(|_| HvError::NoMem)?,
                Stack::new(16 * 1024, "worker-2").map_err(|_| HvError::NoMem)?,
            ];
            #[allow(unsafe_code)]
            // SAFETY: no thread runs yet but main; the stacks outlive the workers
            // (main never returns before they stop being scheduled).
            unsafe {
                let all = &raw mut CONTEXTS;
                (*all)[1] = Context::new(stacks[0].top(), worker, 1);
                (*all)[2] = Context::new(stacks[1].top(), worker, 2);
            }
            for (e, n) in EXPECTED.iter().zip(TERMS) {
                e.store(fpwork::basel(black_box(n)).to_bits(), Ordering::Relaxed);
            }
            let t = timer::add_periodic(Duration::from_millis(10), tick, 0)
                .map_err(|_| HvError::Busy)?;
            let start = time::now();
            while time::since(start) < Duration::from_millis(500) {
                fp_round(0);
            }
            timer::cancel(t);
            let c: [u64; 3] = core::array::from_fn(|i| COUNTS[i].load(Ordering::Relaxed));
            println!(
                "core: threads: {} ticks, progress main {} worker-1 {} worker-2 {}",
                TICKS.load(Ordering::SeqCst),
                c[0],
                c[1],
                c[2]
            );
            core::mem::forget(stacks);
            let wrong = WRONG.load(Ordering::Relaxed);
            if wrong != 0 {
                println!("core: threads: FAILED: {wrong} f64 result(s) wrong");
                return Err(HvError::Inval);
            }
            println!(
                "core: threads: FP state intact ({} f64 rounds checked)",
                c.iter().sum::<u64>()
            );
            if c.iter().all(|&n| n > 0) {
                println!("core: threads: all three ran");
                Ok(())
            } else {
                Err(HvError::Busy)
            }
        }

        fn recurse(depth: u64) -> u64 {
            let buf = black_box([depth; 64]);
            if depth == u64::MAX {
                return 0;
            }
            recurse(black_box(depth + 1)) + buf[3]
        }

        fn deep(_: usize) -> ! {
            let n = recurse(0);
            println!("core: overflow: returned {n}?");
            loop {
                core::hint::spin_loop();
            }
        }

        pub fn overflow() -> Result<(), HvError> {
            let stack = Stack::new(8 * 1024, "deep-thread").map_err(|_| HvError::NoMem)?;
            println!("core: overflow: starting a thread on an 8 KiB stack");
            #[allow(unsafe_code)]
            // SAFETY: as in `run`.
            unsafe {
                let all = &raw mut CONTEXTS;
                (*all)[1] = Context::new(stack.top(), deep, 0);
            }
            core::mem::forget(stack);
            let _ = time::now;
            switch_to(1);
            Ok(())
        }
    }

    /// Maps one page of its own per 2 MiB region of the grant window until
    /// refused; holds the mappings, then gives them all back.
    fn spray(cmd: &str, me: u32) -> Result<(), HvError> {
        let hold_ms: u64 = cmdline::get(cmd, "hold_ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000);
        let mut page = grant::SharedPages::new(1)?;
        let gref = page.grant_all(me, false)?[0] as parapet_guest::abi::grant::GrantRef;
        let mut handles = [0u64; 256];
        let mut count = 0;
        let mut refused = None;
        let mut at = GRANT_WINDOW_BASE;
        while at < GRANT_WINDOW_BASE + GRANT_WINDOW_SIZE && count < handles.len() {
            match grant::map_at(me, gref, at, false) {
                Ok((handle, _)) => {
                    handles[count] = handle;
                    count += 1;
                }
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
            at += 2 << 20;
        }
        match refused {
            Some(e) => println!("core: spray: {count} mappings, then refused: {e:?}"),
            None => println!("core: spray: {count} mappings, none refused"),
        }
        time::sleep(Duration::from_millis(hold_ms))?;
        for &h in &handles[..count] {
            grant::unmap_handle(h)?;
        }
        page.end_all()?;
        println!("core: spray: all {count} mappings given back");
        Ok(())
    }
}
