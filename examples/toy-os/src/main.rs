//! toy-os: a small but real guest OS on Parapet, built only on the public
//! guest SDK (`parapet-guest`) and the frontends (`parapet-frontends`). It is
//! meant to be read: it shows what porting an OS onto Parapet takes.
//!
//! * [`sched`]: threads on `memory::Stack`s (guard pages), a round-robin
//!   scheduler, and a 10 ms tick that preempts the running thread inside the
//!   timer handler with `context::switch`; yield, sleep, exit.
//! * [`sync`]: wait queues, a blocking mutex, a lock shared with handlers.
//! * [`hook`]: the SDK's wait hook (every blocking SDK or frontend call
//!   parks only the calling thread) and the idle thread, which blocks the
//!   vCPU when no thread is ready.
//! * [`tty`] and [`shell`]: console input and the commands.
//! * [`net`], [`disk`], [`chan`]: the network (smoltcp over netfront), the
//!   virtual disk (blkfront) and the byte channel (vchan), used by commands
//!   running in threads of their own.
//! * [`bench`](mod@bench): the cost of a thread switch, in instructions.
//!
//! One vCPU: with interrupts masked nothing else runs, which is all the
//! mutual exclusion the kernel needs (see [`sched`]). Several vCPUs would
//! need a run queue per vCPU and real locks.
//!
//! Two modes, chosen by the command line:
//! * the default: the shell (the domain must take console input,
//!   `console_input = true`), `peer=NAME` naming the byte channel's peer;
//! * `mode=peer client=NAME`: the same kernel without a shell, running an
//!   HTTP server thread and a byte-channel echo thread for the shell's
//!   `net get` and `chan` commands; it powers off when the client goes.
//!
//! `scenarios/toy-os.toml` boots both; its header says what to type.
#![cfg_attr(target_os = "none", no_std, no_main)]
// The only `unsafe` is the thread switch, in `sched::reschedule`.
#![deny(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "toy-os is a bare-metal guest OS: boot it with `cargo parapet up scenarios/toy-os.toml`"
    );
}

#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod chan;
#[cfg(target_os = "none")]
mod disk;
#[cfg(target_os = "none")]
mod hook;
#[cfg(target_os = "none")]
mod net;
#[cfg(target_os = "none")]
mod sched;
#[cfg(target_os = "none")]
mod shell;
#[cfg(target_os = "none")]
mod sync;
#[cfg(target_os = "none")]
mod tty;

/// Start-up: the kernel's `main`.
#[cfg(target_os = "none")]
mod boot {
    extern crate alloc;

    use alloc::string::String;

    use parapet_frontends::vif::AddrConfig;
    use parapet_guest::abi::StartInfo;
    use parapet_guest::event::DomId;
    use parapet_guest::{cmdline, println, store, time};

    use crate::{chan, disk, hook, net, sched, shell, tty};

    parapet_guest::entry!(main);

    /// A domain's id by name, waiting a little for it to exist.
    fn lookup(name: &str) -> Option<DomId> {
        for _ in 0..200 {
            if let Ok(id) = store::lookup(name) {
                return Some(id);
            }
            let _ = time::sleep(time::Duration::from_millis(10));
        }
        None
    }

    fn start(name: &str, stack: usize, f: impl FnOnce() + Send + 'static) -> bool {
        match sched::spawn(name, stack, f) {
            Ok(_) => true,
            Err(e) => {
                println!("toy-os: cannot start {name}: {e}");
                false
            }
        }
    }

    /// Boots the kernel, starts the first threads, and becomes the idle
    /// thread.
    fn main(info: &StartInfo) -> i32 {
        let cmd = info.cmdline();
        if let Err(e) = sched::init() {
            println!("toy-os: no tick: {e}");
            return 1;
        }
        if let Err(e) = hook::install() {
            println!("toy-os: cannot install the wait hook: {e}");
            return 1;
        }
        let backend = lookup(cmdline::get(cmd, "backend").unwrap_or("driver"));
        match (backend, AddrConfig::from_cmdline(cmd)) {
            (Some(b), Ok(addr)) => {
                net::configure(b, addr);
                disk::configure(b);
            }
            (None, _) => println!("toy-os: no driver domain: no network, no disk"),
            (_, Err(e)) => println!("toy-os: {e}"),
        }
        println!(
            "toy-os: {} on 1 vCPU, round-robin threads, tick {} ms",
            info.name(),
            sched::TICK.as_millis()
        );
        let ok = if cmdline::get(cmd, "mode") == Some("peer") {
            peer(cmd, info.name())
        } else {
            tty::init();
            let chan_peer = cmdline::get(cmd, "peer").map(|p| (p, lookup(p)));
            let chand = match chan_peer {
                Some((name, Some(id))) => {
                    let name = String::from(name);
                    start("chand", chan::STACK, move || chan::chand(id, &name))
                }
                Some((name, None)) => {
                    println!("toy-os: no domain {name}: no byte channel");
                    true
                }
                None => true,
            };
            chand && start("shell", 32 * 1024, shell::run)
        };
        if !ok {
            return 1;
        }
        hook::idle_loop()
    }

    /// The peer mode: an HTTP server thread and a byte-channel echo thread.
    fn peer(cmd: &str, name: &str) -> bool {
        let Some(client) = cmdline::get(cmd, "client").and_then(lookup) else {
            println!("toy-os: mode=peer needs client=NAME, a running domain");
            return false;
        };
        let name = String::from(name);
        start("httpd", net::STACK, move || net::httpd(&name))
            && start("echod", chan::STACK, move || chan::echod(client))
    }
}
