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
