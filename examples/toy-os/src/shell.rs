//! The shell: reads lines typed on the console ([`crate::tty`]) and runs
//! commands. Quick ones (`ps`, `mem`…) run in the shell thread; network,
//! disk and channel commands, `spin` and `bench` run in threads of their
//! own, so the shell answers again at once while they proceed.

extern crate alloc;

use alloc::string::String;
use core::fmt::Write as _;
use core::hint::black_box;
use core::net::Ipv4Addr;
use core::time::Duration;

use parapet_guest::abi::hypercall::ShutdownReason;
use parapet_guest::{hypercall, memory, println, time};

use crate::tty::LineReader;
use crate::{bench, chan, disk, net, sched};

/// The commands, with what `help` says of them.
const COMMANDS: &[(&str, &str)] = &[
    ("help", "this list"),
    (
        "ps",
        "the threads: state, CPU time, switches, progress, stack",
    ),
    ("uptime", "time since boot, ticks and thread switches"),
    ("mem", "the memory map, the heap and the thread stacks"),
    ("sleep MS", "put the shell to sleep for MS milliseconds"),
    (
        "spin",
        "start a CPU-bound thread that counts (watch it in ps)",
    ),
    (
        "net ping IP",
        "ICMP echo over vif0 (e.g. the gateway 10.0.2.2)",
    ),
    (
        "net get URL",
        "HTTP GET over vif0, e.g. http://10.0.2.21/ (the peer)",
    ),
    (
        "disk write TEXT",
        "store TEXT in sector 0 of the virtual disk vbd0",
    ),
    ("disk read", "read the text back from vbd0"),
    (
        "chan send TEXT",
        "send TEXT to the peer over the byte channel",
    ),
    (
        "chan recv",
        "print what the peer sent back (waits up to 3 s)",
    ),
    (
        "bench",
        "instructions per thread switch (boot with icount = true)",
    ),
    ("halt", "power toy-os off"),
];

/// The shell thread.
pub fn run() {
    let mut input = LineReader::new();
    println!("toy-os: shell ready; type `help`");
    let mut n = 0u32;
    loop {
        let line = input.read_line();
        if line.is_empty() {
            continue;
        }
        n += 1;
        // Echo the command: the transcript shows what ran, in order.
        println!("toy-os:{n}$ {line}");
        execute(&line);
    }
}

/// Starts `f` in a thread of its own, or says why not.
fn background(name: &str, stack: usize, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = sched::spawn(name, stack, f) {
        println!("{name}: cannot start a thread: {e}");
    }
}

fn execute(line: &str) {
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    let (sub, arg) = rest.split_once(' ').unwrap_or((rest, ""));
    let arg = String::from(arg.trim());
    match (cmd, sub) {
        ("help", _) => help(),
        ("ps", _) => ps(),
        ("uptime", _) => uptime(),
        ("mem", _) => mem(),
        ("sleep", ms) => match ms.parse::<u64>() {
            Ok(ms) => {
                let start = time::now();
                sched::sleep(Duration::from_millis(ms));
                println!("sleep: slept {} ms", time::since(start).as_millis());
            }
            Err(_) => println!("sleep: want a number of milliseconds"),
        },
        ("spin", _) => background("spin", 16 * 1024, spin),
        ("net", "ping") => match arg.parse::<Ipv4Addr>() {
            Ok(ip) => background("net-ping", net::STACK, move || net::ping(ip)),
            Err(_) => println!("net ping: want an IPv4 address"),
        },
        ("net", "get") => background("net-get", net::STACK, move || net::get(&arg)),
        ("disk", "write") => background("disk-write", disk::STACK, move || disk::write(&arg)),
        ("disk", "read") => background("disk-read", disk::STACK, disk::read),
        // `chand` does the I/O: `send` only queues the message.
        ("chan", "send") => chan::send(&arg),
        ("chan", "recv") => background("chan-recv", chan::STACK, || {
            chan::recv(Duration::from_secs(3))
        }),
        ("bench", _) => background("bench", 16 * 1024, bench::run),
        ("halt", _) => {
            println!("halt: powering off");
            hypercall::shutdown(ShutdownReason::Poweroff, 0);
        }
        _ => println!("{line}: unknown command (type `help`)"),
    }
}

fn help() {
    println!("commands:");
    for (cmd, what) in COMMANDS {
        println!("  {cmd:<16} {what}");
    }
}

/// A CPU-bound thread: counts forever, and reports the count to `ps`.
fn spin() {
    let mut count: u64 = 0;
    loop {
        count = black_box(count + 1);
        if count.is_multiple_of(4096) {
            sched::progress(count);
        }
    }
}

fn ps() {
    println!("  TID  NAME        STATE      CPU ms  SWITCHES    PROGRESS  STACK");
    for t in sched::threads() {
        let mut stack = String::new();
        match t.stack {
            Some((bottom, size)) => {
                let _ = write!(stack, "{:#x}, {} KiB", bottom, size / 1024);
            }
            None => stack.push_str("boot stack"),
        }
        println!(
            "  {:>3}  {:<10}  {:<8} {:>8}  {:>8}  {:>10}  {}",
            t.tid,
            t.name,
            t.state.name(),
            t.cpu.as_millis(),
            t.switches,
            t.progress,
            stack
        );
    }
}

fn uptime() {
    let up = sched::uptime();
    let (chan_in, chan_out, chan_up) = chan::stats();
    println!(
        "uptime: {}.{:03} s, {} ticks of {} ms, {} thread switches, {} threads",
        up.as_secs(),
        up.subsec_millis(),
        sched::ticks(),
        sched::TICK.as_millis(),
        sched::switch_count(),
        sched::threads().len()
    );
    println!(
        "uptime: byte channel {}, {chan_in} bytes in, {chan_out} out; \
         commands that waited for the net mutex {}, for the disk mutex {}",
        if chan_up { "up" } else { "down" },
        net::waits(),
        disk::waits()
    );
}

fn region(name: &str, r: &core::ops::Range<u64>) {
    println!(
        "mem: {name:<12} {:#010x}-{:#010x} {:>7} KiB",
        r.start,
        r.end,
        (r.end - r.start) / 1024
    );
}

fn mem() {
    let m = memory::map();
    region("RAM", &m.ram);
    region("image", &m.image);
    region("boot stacks", &m.boot_stacks);
    region("heap", &m.heap);
    region("reserved", &m.reserved);
    let h = memory::heap_stats();
    println!(
        "mem: heap use {} KiB of {} KiB (peak {} KiB) in {} blocks; guard pages {}",
        h.used / 1024,
        h.size / 1024,
        h.peak / 1024,
        h.allocations,
        if memory::guards_active() { "on" } else { "off" }
    );
    for t in sched::threads() {
        if let Some((bottom, size)) = t.stack {
            println!(
                "mem: stack of {:<10} {:#010x}-{:#010x} {:>4} KiB, guard page below{}",
                t.name,
                bottom,
                bottom + size as u64,
                size / 1024,
                if t.state == sched::State::Exited {
                    " (exited: freed at the next spawn)"
                } else {
                    ""
                }
            );
        }
    }
}
