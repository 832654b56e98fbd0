//! `parapet`: build Parapet images and boot scenarios on QEMU.
#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};
use parapet_abi::control::Command;
use parapet_tools::bench::{self, DEFAULT_BENCH_TIMEOUT_SECS};
use parapet_tools::loadtest::{DEFAULT_CLIENTS, DEFAULT_REQUESTS};
use parapet_tools::{qemu, transcript, BenchHttpOptions, BenchNetOptions, BenchOptions, UpOptions};

/// Build Parapet images and boot scenarios on QEMU.
#[derive(Parser)]
#[command(name = "parapet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the hypervisor and every image the scenario names (release profile).
    Build {
        /// The scenario file [default: ./scenario.toml in a guest crate,
        /// else scenarios/demo.toml].
        scenario: Option<PathBuf>,
    },
    /// Build, boot the scenario on QEMU and stream the consoles.
    ///
    /// Exit status: 0 when every domain ended well, 1 when a domain crashed or
    /// exited non-zero, 2 on a hypervisor panic or QEMU error, 3 on timeout,
    /// 130 on Ctrl-C (QEMU is stopped and the summary printed).
    ///
    /// A scenario that forwards host ports to a guest (`net = { forward =
    /// [...] }`) is a service: it runs until Ctrl-C, or for --timeout SECS
    /// if given, and reaching that timeout is a normal end (exit 0 unless a
    /// domain failed). Each forwarded port is printed before booting.
    ///
    /// An image that names a crate directory or a Cargo.toml is built in
    /// that crate first (`cargo build --release --target
    /// aarch64-unknown-none`).
    Up {
        /// The scenario file [default: ./scenario.toml in a guest crate made
        /// by `parapet new`, else scenarios/demo.toml].
        scenario: Option<PathBuf>,
        /// Kill QEMU after this many seconds (0: never) [default: 120, none
        /// for a service].
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// Do not build; use the images already built.
        #[arg(long)]
        no_build: bool,
        /// Record what the hypervisor does (hypercalls, world switches,
        /// events, upcalls, …) per physical CPU and write it to FILE in the
        /// Chrome trace event format, which https://ui.perfetto.dev and
        /// chrome://tracing open. See docs/tracing.md.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// With --trace: the trace buffer of each physical CPU, in KiB (32
        /// bytes per record). Records the drain does not read in time are
        /// counted as lost, never hidden.
        #[arg(long, value_name = "KIB", default_value_t = parapet_abi::trace::DEFAULT_TRACE_KIB,
              value_parser = clap::value_parser!(u64).range(4..=parapet_abi::trace::MAX_TRACE_KIB))]
        trace_kib: u64,
    },
    /// Read a trace written by `up --trace`.
    Trace {
        #[command(subcommand)]
        which: TraceCmd,
    },
    /// Run a benchmark on QEMU and print its results and targets.
    ///
    /// Builds and boots the benchmark's scenarios like `up`, streams the
    /// consoles, reads the `bench …` lines the guests print, then prints a
    /// table and the targets (met or missed) and, with --json, writes them to
    /// a file.
    ///
    /// Exit status: 0 when every run completed and its results were read,
    /// even if targets were missed; otherwise as for `up` (1 when a domain
    /// failed, 2 on a hypervisor panic or QEMU error, 3 on timeout), and 1
    /// when a benchmark line is missing or malformed, a checksum is bad, a
    /// wall-clock figure has fewer than 5 windows or a window under 250 ms,
    /// or (`bench micro`) a figure moved from the baseline.
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
    /// Check the prerequisites (QEMU, Rust targets) and print what was found.
    Check,
    /// Create a guest crate of your own at PATH (a new directory, outside
    /// the checkout): the guest SDK by path, the checkout's toolchain pin
    /// and Cargo.lock, a build.rs with the linker script, a hello world and a
    /// scenario.toml that `parapet up` in that directory builds and boots.
    ///
    /// The directory's name is the package's and the domain's name:
    /// 1 to 31 characters from [a-z0-9_-], starting with a letter or '_'.
    New {
        /// The directory to create, e.g. ../hello.
        path: PathBuf,
    },
    /// List the domains of the running system: name, id, state, vCPUs and
    /// their CPUs, memory, stage-2 tables, grants, ports, uptime, crashes,
    /// restarts and creates, then the totals (frame pool, grants, ports).
    ///
    /// Asks the control domain of the `parapet up` running in this checkout
    /// (through its socket, target/parapet/control.sock). Exit status: 0
    /// when it answered, 1 when the request failed (refused, or no answer
    /// within 15 s), 2 when no system is running.
    List,
    /// Create a domain that does not run: one with `autostart = false`, or
    /// one that exited, crashed or was destroyed (fresh memory, from its
    /// image).
    ///
    /// Exit status as for `list`: 0 done, 1 refused (the control domain
    /// says why), 2 no system running or NAME is not a domain name.
    Create(NameArg),
    /// Destroy a running or paused domain: it stops at once, its memory,
    /// grants and ports come back; an end, not a failure. The control
    /// domain cannot destroy itself.
    ///
    /// Exit status as for `create`.
    Destroy(NameArg),
    /// Pause a running domain: its vCPUs are no longer scheduled (events
    /// stay pending); its peers see its rings stall.
    ///
    /// Exit status as for `create`.
    Pause(NameArg),
    /// Unpause a paused domain.
    ///
    /// Exit status as for `create`.
    Unpause(NameArg),
}

#[derive(Subcommand)]
enum TraceCmd {
    /// Per-domain totals over the interval the trace recorded: time running
    /// (and share of the CPUs), world switches in, hypercalls (and by
    /// number), events sent and received, upcalls, lazy-FPU traps.
    ///
    /// Exit status: 0, or 2 when the file cannot be read or is not a trace.
    Summarize {
        /// The trace file.
        file: PathBuf,
    },
}

#[derive(Args)]
struct NameArg {
    /// The domain's name, as in the scenario.
    name: String,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Ring throughput between two guests, with 1 and then 2 CPUs, and its
    /// instructions per message under -icount.
    ///
    /// Runs scenarios/bench-ring-1cpu.toml and scenarios/bench-ring-2cpu.toml.
    /// For each CPU count and message size: MiB/s (the median of 5 windows of
    /// at least 250 ms of guest time, with min and max), messages/s,
    /// notifications and world switches per message, memcpy MiB/s (its own 5
    /// windows) and the ring/memcpy ratio of the medians. Then
    /// scenarios/bench-ring-icount.toml (1 CPU, -icount shift=0) with 32 and
    /// 16 ring slots: instructions per 4 KiB message, beyond the two copies,
    /// and the ratio in instructions, next to Xen 4.17's. Targets: ratio at
    /// 4096 B >= 0.4 with 1 CPU and >= 0.8 with 2 CPUs; notifications per
    /// message <= 1/32 (worst size, and at 4096 B).
    Ring(RingArgs),
    /// Instruction counts of hypercalls, event delivery and world switches,
    /// and of the byte channel; checked against the baseline.
    ///
    /// Runs scenarios/bench-micro.toml and scenarios/bench-ring-icount.toml
    /// (QEMU -icount: deterministic). Targets, in instructions:
    /// null_hypercall <= 64, event_to_handler <= 2000, world_switch <= 400.
    /// Every figure is compared with tests/bench-baseline.json: one that
    /// moved by more than max(2%, 10 instructions), faster or slower, makes
    /// the exit status 1 (the regression gate of `cargo test`); if the change
    /// is intended, --update-baseline rewrites the file instead.
    Micro(MicroArgs),
    /// TCP throughput guest to guest (through the driver domain) and host to
    /// guest (through the uplink), next to the raw ring.
    ///
    /// Runs scenarios/bench-ring-2cpu.toml at 4096-byte messages with the TCP
    /// path's work (the sender writes the same byte pattern, the receiver
    /// checksums every byte with FNV-1a: `work=net`) over 5 windows of at
    /// least 250 ms (the raw ring), scenarios/bench-net.toml (one guest
    /// streams to another over TCP), scenarios/bench-net-host.toml (the host
    /// streams to a guest through a forwarded port) and
    /// scenarios/bench-net-uplink.toml (the host streams to the driver domain
    /// itself: QEMU's own limit). Each stream lasts until the receiver has
    /// timed 5 windows of at least 250 ms (and the host 5 of its own).
    /// Every stream's byte count and checksum are checked. Prints MiB/s as
    /// median (min–max) by the receiving guest's clock (and the host's for
    /// host to a sink) and the guest-TCP / ring ratio of the medians; no
    /// targets.
    Net(NetArgs),
    /// A bounded load test of the web server a scenario forwards to the host.
    ///
    /// Boots the scenario (default scenarios/demo.toml: guest-a's page) like
    /// `up`, waits until its forwarded port answers `GET /`, then sends
    /// --requests requests from --clients threads, each on its own
    /// connection to 127.0.0.1 (HTTP/1.0, 10 s per request, --timeout for
    /// the whole run). Prints the successes, the failures by cause and the
    /// p50, p99 and maximum latency; then stops QEMU. Exit status 1 when a
    /// request failed (the report is printed all the same).
    Http(HttpArgs),
}

#[derive(Args)]
struct HttpArgs {
    /// The scenario file; it must forward a host port to a guest's server.
    #[arg(default_value = parapet_tools::DEFAULT_SCENARIO)]
    scenario: PathBuf,
    /// Client threads, each with one request at a time.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CLIENTS,
          value_parser = clap::value_parser!(u16).range(1..=1024).map(usize::from))]
    clients: usize,
    /// Requests in all.
    #[arg(long, value_name = "M", default_value_t = DEFAULT_REQUESTS,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|m| m as usize))]
    requests: usize,
    #[command(flatten)]
    common: BenchArgs,
}

#[derive(Args)]
struct RingArgs {
    #[command(flatten)]
    common: BenchArgs,
    /// Also write an SVG chart (bench-ring.svg) into DIR.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
}

#[derive(Args)]
struct MicroArgs {
    #[command(flatten)]
    common: BenchArgs,
    /// Write the measured figures to tests/bench-baseline.json instead of
    /// comparing them with it (then commit the file).
    #[arg(long)]
    update_baseline: bool,
}

#[derive(Args)]
struct NetArgs {
    #[command(flatten)]
    common: BenchArgs,
    /// Also write an SVG chart (bench-net.svg) into DIR.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    /// Also write the results and targets as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Do not build; use the images already built.
    #[arg(long)]
    no_build: bool,
    /// Kill QEMU after this many seconds, per run (0: never).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_BENCH_TIMEOUT_SECS)]
    timeout: u64,
    /// Record a trace of each run (as `up --trace`): FILE for one run,
    /// FILE-1, FILE-2, … (before the extension) for several. The traced
    /// hypervisor has hooks, so its instruction counts are not checked
    /// against the baseline.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Ctrl-C reaches QEMU and us alike: a run in progress makes sure QEMU is
    // gone and ends with its summary; otherwise exit as SIGINT would.
    let _ = ctrlc::set_handler(|| {
        if !qemu::interrupt() {
            std::process::exit(transcript::EXIT_INTERRUPTED);
        }
    });
    match cli.command {
        Cmd::Build { scenario } => {
            match parapet_tools::build(&scenario.unwrap_or_else(parapet_tools::default_scenario)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Cmd::Up {
            scenario,
            timeout,
            no_build,
            trace,
            trace_kib,
        } => {
            let opts = UpOptions {
                scenario: scenario.unwrap_or_else(parapet_tools::default_scenario),
                timeout_secs: timeout,
                no_build,
                trace: trace.map(|file| (file, trace_kib)),
            };
            finish(parapet_tools::up(&opts))
        }
        Cmd::Trace {
            which: TraceCmd::Summarize { file },
        } => match parapet_tools::trace::read_file(&file) {
            Ok(doc) => {
                let s = parapet_tools::trace::summary::summarize(&doc);
                print!("{}", parapet_tools::trace::summary::report(&s));
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.into()),
        },
        Cmd::Bench { which } => {
            let (kind, args, plot, update_baseline) = match which {
                BenchCmd::Ring(a) => (bench::Kind::Ring, a.common, a.plot, false),
                BenchCmd::Micro(a) => (bench::Kind::Micro, a.common, None, a.update_baseline),
                BenchCmd::Net(n) => {
                    let opts = BenchNetOptions {
                        json: n.common.json,
                        no_build: n.common.no_build,
                        timeout: timeout(n.common.timeout),
                        plot: n.plot,
                    };
                    return finish(parapet_tools::bench_net(&opts));
                }
                BenchCmd::Http(h) => {
                    let opts = BenchHttpOptions {
                        scenario: h.scenario,
                        clients: h.clients,
                        requests: h.requests,
                        json: h.common.json,
                        no_build: h.common.no_build,
                        timeout: timeout(h.common.timeout),
                    };
                    return finish(parapet_tools::bench_http(&opts));
                }
            };
            let opts = BenchOptions {
                kind,
                json: args.json,
                no_build: args.no_build,
                timeout: timeout(args.timeout),
                plot,
                update_baseline,
                trace: args.trace,
            };
            finish(parapet_tools::bench(&opts))
        }
        Cmd::New { path } => match parapet_tools::new_guest(&path) {
            Ok(lines) => {
                lines.iter().for_each(|l| eprintln!("parapet: {l}"));
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Cmd::List => control(&Command::List),
        Cmd::Create(a) => control(&Command::Create(&a.name)),
        Cmd::Destroy(a) => control(&Command::Destroy(&a.name)),
        Cmd::Pause(a) => control(&Command::Pause(&a.name)),
        Cmd::Unpause(a) => control(&Command::Unpause(&a.name)),
        Cmd::Check => match parapet_tools::check() {
            Ok(lines) => {
                lines.iter().for_each(|l| println!("{l}"));
                ExitCode::SUCCESS
            }
            Err(lines) => {
                lines.iter().for_each(|l| println!("{l}"));
                ExitCode::from(transcript::EXIT_PLATFORM as u8)
            }
        },
    }
}

/// `parapet list|create|destroy|pause|unpause`: one request to the running
/// system's control domain.
fn control(command: &Command<'_>) -> ExitCode {
    let p = parapet_tools::control::client::run(command);
    p.stdout.iter().for_each(|l| println!("{l}"));
    p.stderr.iter().for_each(|l| eprintln!("{l}"));
    ExitCode::from(p.exit_code as u8)
}

/// `--timeout SECS` of `bench`: 0 is none.
fn timeout(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Prints the outcome's summary and turns it into the exit status.
fn finish(r: Result<parapet_tools::Outcome, parapet_tools::Error>) -> ExitCode {
    match r {
        Ok(outcome) => {
            for line in &outcome.summary {
                eprintln!("parapet: {line}");
            }
            ExitCode::from(outcome.exit_code as u8)
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &parapet_tools::Error) -> ExitCode {
    eprintln!("parapet: error: {e}");
    ExitCode::from(transcript::EXIT_PLATFORM as u8)
}
