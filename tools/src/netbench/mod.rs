//! `parapet bench net`: guest-to-guest TCP throughput through the driver
//! domain, next to the raw ring throughput measured in the same invocation,
//! and host-to-guest TCP throughput through the uplink.
//!
//! Four boots, one after another, each like `parapet up`:
//!
//! 1. [`bench::NET_RING_SCENARIO`] (bench ring's 2-CPU scenario) with the
//!    ring sender limited to 4096-byte messages: the raw ring figure, read
//!    and checked as `bench ring` does.
//! 2. [`bench::NET_SCENARIO`]: `source` streams a pattern to `sink` over TCP
//!    (`bytes=unlimited`); the sink times its windows (`windows=5`), prints a
//!    `bench net window` line per window, then says `stop` on the
//!    connection; the source ends the stream there, and both print a `bench
//!    net tx|rx` line over the whole stream, whose byte counts and FNV-1a
//!    checksums must match the pattern's.
//! 3. [`bench::NET_HOST_SCENARIO`]: the host connects to the port forwarded
//!    to `sink` and streams the same pattern, timing its own windows, until
//!    the sink has said `stop` (after its windows) and the host has at least
//!    [`bench::MIN_WINDOWS`]; then it shuts its side down and waits for the
//!    guest to close; the sink's `bench net rx` line must report every byte
//!    sent with the pattern's checksum.
//! 4. [`NET_UPLINK_SCENARIO`]: the same host client against the driver
//!    domain itself as the sink (`uplink_sink`: smoltcp straight on
//!    virtio-net, no switch, no guest): QEMU's own limit on that path, printed
//!    after host to guest.
//!
//! Every figure is MiB/s over at least [`bench::MIN_WINDOWS`] windows of at
//! least [`bench::MIN_WINDOW_MS`] (median, min, max, every sample), by the
//! receiving guest's counter (QEMU TCG without `-icount`, as for `bench
//! ring`: guest time follows host time), plus, host to a sink, by the host's
//! clock over the host's own windows.//!
//! `host` is the host's client of runs 3 and 4 (streaming in windows, the
//! console lines it waits for).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bench::{self, NetReport, NetResult};
use crate::scenario::{Located, Scenario, ScenarioError};
use crate::transcript::{EXIT_DOMAIN_FAILED, EXIT_OK};
use crate::{boot, build, colour_stdout, load, prepare, prereq, qemu, run_prepared};
use crate::{Error, Outcome};

mod host;

use host::host_client;
pub use host::HostError;

/// QEMU's own limit on the host-to-guest path: the driver domain is the sink
/// (named like the guest sink, so the same host client serves both).
pub const NET_UPLINK_SCENARIO: &str = "scenarios/bench-net-uplink.toml";

/// Options of `parapet bench net`.
#[derive(Debug, Clone)]
pub struct BenchNetOptions {
    /// Where to write the JSON report, if anywhere.
    pub json: Option<PathBuf>,
    /// Skip the build.
    pub no_build: bool,
    /// Kill QEMU after this long, per run (`None`: never).
    pub timeout: Option<Duration>,
    /// Where to write the SVG chart, if anywhere.
    pub plot: Option<PathBuf>,
}

/// `DOMAIN: key=value` after setting `key=value` in `domain`'s command line.
pub(crate) fn set_cmdline(
    s: &mut Scenario,
    domain: &str,
    key: &str,
    value: &str,
) -> Result<String, Error> {
    let path = s.path.clone();
    let d = s
        .domains
        .iter_mut()
        .find(|d| d.name == domain)
        .ok_or_else(|| {
            ScenarioError::Invalid(Box::new(Located {
                path,
                line: None,
                field: Some("domain".into()),
                message: format!("`parapet bench` needs a domain named `{domain}`"),
            }))
        })?;
    d.cmdline = Some(bench::set_word(
        d.cmdline.as_deref().unwrap_or(""),
        key,
        value,
    ));
    Ok(format!("{domain}: {key}={value}"))
}

/// Fails early when `--json FILE` names a directory that does not exist.
pub(crate) fn check_report_dir(json: Option<&Path>) -> Result<(), Error> {
    let Some(path) = json else { return Ok(()) };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    match dir.filter(|d| !d.is_dir()) {
        Some(dir) => Err(Error::WriteReport {
            path: path.to_owned(),
            source: io::Error::new(
                io::ErrorKind::NotFound,
                format!("directory {} does not exist", dir.display()),
            ),
        }),
        None => Ok(()),
    }
}
/// `n CPU(s)` for the progress lines.
fn what(path: &str, s: &Scenario) -> String {
    let cpus = s.machine.cpus;
    format!("{path} ({cpus} CPU{})", if cpus == 1 { "" } else { "s" })
}

/// `parapet bench net`: builds (unless `no_build`) and boots the three
/// scenarios in turn (see the module docs), streaming the consoles to
/// stdout, then prints the table (raw ring, guest to guest, host to guest,
/// and the guest-TCP / ring ratio) and writes the JSON report if asked.
///
/// The outcome is a failure (and the summary says why) when a run fails, a
/// benchmark line is missing or malformed, a byte count or checksum does not
/// match what was sent ([`transcript::EXIT_DOMAIN_FAILED`]), or the host
/// cannot send its stream; it stops at the first failure. There are no
/// targets.
///
/// [`transcript::EXIT_DOMAIN_FAILED`]: crate::transcript::EXIT_DOMAIN_FAILED
pub fn bench_net(opts: &BenchNetOptions) -> Result<Outcome, Error> {
    let root = build::workspace_root()?;
    check_report_dir(opts.json.as_deref())?;
    let mut ring = load(Path::new(bench::NET_RING_SCENARIO), &root)?;
    let ring_over = vec![
        set_cmdline(&mut ring, "ring-tx", "sizes", bench::NET_RING_SIZES)?,
        set_cmdline(&mut ring, "ring-tx", "work", bench::NET_RING_WORK)?,
    ];
    let g2g = load(Path::new(bench::NET_SCENARIO), &root)?;
    let h2g = load(Path::new(bench::NET_HOST_SCENARIO), &root)?;
    let up = load(Path::new(NET_UPLINK_SCENARIO), &root)?;
    let qemu_path = prereq::ensure_qemu()?;
    let ring_what = what(bench::NET_RING_SCENARIO, &ring);
    let g2g_what = what(bench::NET_SCENARIO, &g2g);
    let h2g_what = what(bench::NET_HOST_SCENARIO, &h2g);
    let up_what = what(NET_UPLINK_SCENARIO, &up);
    let p_ring = prepare(&root, ring, opts.no_build, qemu_path.clone())?;
    let p_g2g = prepare(&root, g2g, opts.no_build, qemu_path.clone())?;
    let p_h2g = prepare(&root, h2g, opts.no_build, qemu_path.clone())?;
    let p_up = prepare(&root, up, opts.no_build, qemu_path)?;
    let colour = colour_stdout();
    let mut summary = Vec::new();
    let failed = |mut summary: Vec<String>, code: i32, why: String| {
        summary.push(format!("bench net: {why}"));
        Ok(Outcome {
            exit_code: code,
            summary,
        })
    };

    // The ring and guest to guest: runs that end by themselves.
    let mut plain_runs = Vec::new();
    for (what, p) in [(&ring_what, &p_ring), (&g2g_what, &p_g2g)] {
        eprintln!("parapet: bench net: running {what}");
        let mut capture =
            bench::Capture::new(io::stdout().lock(), p.scenario().domain_names(), colour);
        let stops = qemu::Stops {
            timeout: opts.timeout,
            ..qemu::Stops::default()
        };
        let outcome = boot(p, &stops, &mut capture, false, false, None)?;
        summary.extend(outcome.summary.iter().map(|l| format!("{what}: {l}")));
        if outcome.exit_code != EXIT_OK {
            return failed(
                summary,
                outcome.exit_code,
                format!("{what} failed; no results"),
            );
        }
        plain_runs.push(capture.into_lines());
    }
    let ring_lines = &plain_runs[0];
    let g2g_lines = &plain_runs[1];
    let ring_result = match bench::net_ring(ring_lines) {
        Ok(r) => r,
        Err(e) => return failed(summary, EXIT_DOMAIN_FAILED, format!("{ring_what}: {e}")),
    };
    let g2g_t = match bench::net_guest_to_guest(g2g_lines) {
        Ok(t) => t,
        Err(e) => return failed(summary, EXIT_DOMAIN_FAILED, format!("{g2g_what}: {e}")),
    };

    // Host to guest: a service; the client sends and reads the console.
    eprintln!("parapet: bench net: running {h2g_what}");
    let limit = opts.timeout;
    let timeout_secs = Some(limit.map_or(0, |t| t.as_secs().max(1)));
    let (outcome, client) = run_prepared(&p_h2g, timeout_secs, |r| host_client(r, limit))?;
    summary.extend(outcome.summary.iter().map(|l| format!("{h2g_what}: {l}")));
    let host = match client {
        Ok(h) => h,
        Err(e) => {
            let code = if outcome.exit_code == EXIT_OK {
                EXIT_DOMAIN_FAILED
            } else {
                outcome.exit_code
            };
            return failed(summary, code, format!("{h2g_what}: host to guest: {e}"));
        }
    };
    if outcome.exit_code != EXIT_OK {
        return failed(
            summary,
            outcome.exit_code,
            format!("{h2g_what} failed; no results"),
        );
    }
    let h2g_t = match bench::net_host_to_sink(bench::HOST_TO_GUEST, &host.lines, host.sent)
        .and_then(|t| Ok((t, bench::host_figure(bench::HOST_TO_GUEST, &host.windows)?)))
    {
        Ok(t) => t,
        Err(e) => return failed(summary, EXIT_DOMAIN_FAILED, format!("{h2g_what}: {e}")),
    };

    // QEMU's own limit on the host-to-guest path: the same client, the driver
    // domain as the sink.
    eprintln!("parapet: bench net: running {up_what}");
    let (outcome, client) = run_prepared(&p_up, timeout_secs, |r| host_client(r, limit))?;
    summary.extend(outcome.summary.iter().map(|l| format!("{up_what}: {l}")));
    let up_host = match (client, outcome.exit_code) {
        (Ok(h), EXIT_OK) => h,
        (Err(e), code) => {
            let code = if code == EXIT_OK {
                EXIT_DOMAIN_FAILED
            } else {
                code
            };
            return failed(
                summary,
                code,
                format!("{up_what}: host to driver domain: {e}"),
            );
        }
        (Ok(_), code) => return failed(summary, code, format!("{up_what} failed; no results")),
    };
    let up_t = match bench::net_host_to_sink(bench::HOST_TO_DRIVER, &up_host.lines, up_host.sent)
        .and_then(|t| {
            Ok((
                t,
                bench::host_figure(bench::HOST_TO_DRIVER, &up_host.windows)?,
            ))
        }) {
        Ok(t) => t,
        Err(e) => return failed(summary, EXIT_DOMAIN_FAILED, format!("{up_what}: {e}")),
    };

    let ring_row = NetResult::ring(&ring_result, bench::NET_RING_SCENARIO, ring_over);
    let g2g_row = NetResult::tcp(
        "guest_to_guest_tcp",
        "guest to guest, TCP via the driver domain",
        bench::NET_SCENARIO,
        Vec::new(),
        &g2g_t,
        None,
    );
    let h2g_row = NetResult::tcp(
        "host_to_guest_tcp",
        "host to guest, TCP via the uplink",
        bench::NET_HOST_SCENARIO,
        Vec::new(),
        &h2g_t.0,
        Some(h2g_t.1),
    );
    let mut report = NetReport::new(
        "cargo parapet bench net".to_owned(),
        bench::net_clock(ring_result.freq),
        ring_row,
        g2g_row,
        h2g_row,
    );
    report.results.push(NetResult::tcp(
        "host_to_driver_uplink_only",
        "host to driver domain, virtio-net only (QEMU)",
        NET_UPLINK_SCENARIO,
        Vec::new(),
        &up_t.0,
        Some(up_t.1),
    ));
    print!("{}", report.text());
    let _ = io::stdout().flush();
    summary.push(format!(
        "bench net: MiB/s, medians of the receivers' windows: ring {:.2}, guest to guest {:.2} (ratio {:.4}), host to guest {:.2} (QEMU's own limit on that path {:.2}); checksums matched",
        report.results[0].mib_s.median,
        report.results[1].mib_s.median,
        report.ratio_tcp_to_ring,
        report.results[2].mib_s.median,
        report.results[3].mib_s.median
    ));
    if let Some(path) = &opts.json {
        std::fs::write(path, report.json()).map_err(|source| Error::WriteReport {
            path: path.clone(),
            source,
        })?;
        summary.push(format!("wrote the JSON report to {}", path.display()));
    }
    if let Some(dir) = &opts.plot {
        let file = bench::plot::net_plot(&report, dir)?;
        summary.push(format!("wrote the chart {}", file.display()));
    }
    Ok(Outcome {
        exit_code: EXIT_OK,
        summary,
    })
}

#[cfg(test)]
mod tests;
