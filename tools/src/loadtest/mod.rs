//! `parapet bench http`: a bounded load test of the web server a scenario
//! forwards to the host (by default the demo's guest-a).
//!
//! It boots the scenario as `parapet up` does (through [`run_prepared`], as
//! `bench net`'s host-to-guest run does), takes the port the scenario
//! forwards from the host (the first one to a guest's port 80, else the
//! first one), waits until `GET /` there answers `200`, then sends
//! `--requests` requests from `--clients` threads, each request on its own
//! connection (`HTTP/1.0`, `Connection: close`) to `127.0.0.1` only, with a
//! time limit per request ([`REQUEST_TIMEOUT`]) and one for the whole run
//! (`--timeout`). A request succeeds when the whole answer came back: a
//! `200` status line, the end of the headers and, with a `Content-Length`,
//! exactly that many bytes of body ([`check_response`]). Failures are
//! counted by cause ([`Failure`]); the latencies of the successes (connect
//! to the server's close, by the host's clock) give p50, p99 and the
//! maximum ([`percentile`], nearest rank). Then QEMU is stopped.
//!
//! QEMU's user network listens on a forwarded port with a backlog of 1
//! (libslirp's `listen(s, 1)`) and accepts from its main loop: when many
//! clients connect at once, the host's kernel drops the SYNs that find the
//! accept queue full, and each such client connects on its SYN retransmit,
//! a second later. That is outside the guests; the report counts it from
//! the host's `TcpExt ListenOverflows` ([`listen_overflows`], on Linux; the
//! whole host's, so another program's overflows count too). The host then
//! also answers with SYN cookies, and a request sent in several segments
//! can be reset by the host itself (`TcpExtSyncookiesFailed`): each request
//! goes out in one write, as curl's does.//!
//! `request` is one request, its check and the load of many; `report` what
//! the load measured (percentiles, causes, the text and JSON).

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::transcript::{EXIT_DOMAIN_FAILED, EXIT_OK};
use crate::{build, load, prepare, prereq, run_prepared, Error, Forward, Outcome, Running};

mod report;
mod request;

use report::ms;
pub use report::{listen_overflows, percentile, LoadReport};
pub use request::{check_response, request, run_load, Failure, Response};

/// Default `--clients`.
pub const DEFAULT_CLIENTS: usize = 16;
/// Default `--requests`.
pub const DEFAULT_REQUESTS: usize = 200;
/// How long one request (connect, send, read to the server's close) may
/// take before it counts as timed out.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// An answer larger than this is not the page of a small server.
pub(super) const MAX_RESPONSE: usize = 1 << 20;
/// The request each client sends (the demo's page).
pub(super) const PATH: &str = "/";

/// Options of `parapet bench http`.
#[derive(Debug, Clone)]
pub struct BenchHttpOptions {
    /// The scenario to boot (it must forward a host port to a guest).
    pub scenario: PathBuf,
    /// Client threads (at least 1).
    pub clients: usize,
    /// Requests in all (at least 1).
    pub requests: usize,
    /// Where to write the JSON report, if anywhere.
    pub json: Option<PathBuf>,
    /// Skip the build.
    pub no_build: bool,
    /// Kill QEMU after this long: boot, warm-up and load (`None`: never).
    pub timeout: Option<Duration>,
}

/// Why `bench http` could not run its load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The scenario forwards no host port.
    #[error(
        "{scenario} forwards no host port to a guest: `bench http` needs a server reachable from \
         the host (e.g. `net = {{ ip = \"10.0.2.15/24\", forward = [{{ host = 8080, guest = 80 }}] }}`)"
    )]
    NoForward {
        /// The scenario file.
        scenario: PathBuf,
    },
    /// QEMU ended (or the run's timeout passed) before the server answered.
    #[error("QEMU ended before {url} answered (last try: {last})")]
    Ended {
        /// The forwarded URL.
        url: String,
        /// What the last try got.
        last: String,
    },
}
/// Waits until `GET /` at `addr` answers `200` (the guest boots, and QEMU
/// accepts connections before the guest listens), trying every 250 ms
/// while QEMU runs.
fn wait_for_page(r: &Running<'_>, f: &Forward) -> Result<Duration, LoadError> {
    let start = Instant::now();
    let mut last = "nothing yet".to_owned();
    loop {
        if r.ended() {
            return Err(LoadError::Ended { url: f.url(), last });
        }
        match request(f.host_addr(), Duration::from_secs(5)) {
            Ok(_) => return Ok(start.elapsed()),
            Err(e) => last = e.label().to_owned(),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The forward `bench http` loads: the first to a guest's port 80, else the
/// first.
pub fn pick_forward(forwards: &[Forward]) -> Option<&Forward> {
    forwards
        .iter()
        .find(|f| f.guest_port == 80)
        .or_else(|| forwards.first())
}

/// The client side while QEMU runs: wait for the page, then the load.
fn client(
    r: &Running<'_>,
    f: &Forward,
    opts: &BenchHttpOptions,
    deadline: Option<Instant>,
) -> Result<LoadReport, LoadError> {
    eprintln!("parapet: bench http: waiting for {} to answer", f.url());
    let after = wait_for_page(r, f)?;
    eprintln!(
        "parapet: bench http: it answered after {:.1} s; {} request(s) from {} client(s)",
        after.as_secs_f64(),
        opts.requests,
        opts.clients
    );
    let target = format!("{}:{} at {}", f.domain, f.guest_port, f.url());
    let report = run_load(
        f.host_addr(),
        target,
        opts.clients,
        opts.requests,
        deadline,
        &|| r.ended(),
    );
    Ok(report)
}

/// `parapet bench http`: builds (unless `no_build`) and boots the scenario,
/// loads its forwarded web server (see the module docs), prints the report
/// to stdout and writes the JSON report if asked, then stops QEMU.
///
/// The outcome is a failure ([`EXIT_DOMAIN_FAILED`], or the run's own
/// status when a domain failed) when the server never answered or a
/// request failed; the report is printed (and written) all the same.
pub fn bench_http(opts: &BenchHttpOptions) -> Result<Outcome, Error> {
    let root = build::workspace_root()?;
    crate::netbench::check_report_dir(opts.json.as_deref())?;
    let s = load(&opts.scenario, &root)?;
    if !s
        .domains
        .iter()
        .any(|d| d.net.as_ref().is_some_and(|n| !n.forward.is_empty()))
    {
        return Err(LoadError::NoForward {
            scenario: s.path.clone(),
        }
        .into());
    }
    let path = s.path.display().to_string();
    let qemu_path = prereq::ensure_qemu()?;
    let p = prepare(&root, s, opts.no_build, qemu_path)?;
    let f = pick_forward(p.forwards())
        .cloned()
        .ok_or_else(|| LoadError::NoForward {
            scenario: PathBuf::from(&path),
        })?;
    eprintln!("parapet: bench http: running {path}");
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let timeout_secs = Some(opts.timeout.map_or(0, |t| t.as_secs().max(1)));
    let (outcome, client) = run_prepared(&p, timeout_secs, |r| client(r, &f, opts, deadline))?;
    let mut summary: Vec<String> = outcome
        .summary
        .iter()
        .map(|l| format!("{path}: {l}"))
        .collect();
    let failed_code = if outcome.exit_code == EXIT_OK {
        EXIT_DOMAIN_FAILED
    } else {
        outcome.exit_code
    };
    let report = match client {
        Ok(r) => r,
        Err(e) => {
            summary.push(format!("bench http: {e}"));
            return Ok(Outcome {
                exit_code: failed_code,
                summary,
            });
        }
    };
    print!("{}", report.text());
    let _ = io::stdout().flush();
    let (p50, p99, max) = report.p50_p99_max();
    let show = |d: Option<Duration>| ms(d).map_or("-".into(), |m| format!("{m:.1} ms"));
    summary.push(format!(
        "bench http: {} of {} requests succeeded ({} client{}); p50 {}, p99 {}, max {}; failures: {}",
        report.succeeded(),
        report.requests,
        report.clients,
        if report.clients == 1 { "" } else { "s" },
        show(p50),
        show(p99),
        show(max),
        report.causes()
    ));
    if let Some(json) = &opts.json {
        let command = format!(
            "cargo parapet bench http {path} --clients {} --requests {}",
            opts.clients, opts.requests
        );
        std::fs::write(json, report.json(&command)).map_err(|source| Error::WriteReport {
            path: json.clone(),
            source,
        })?;
        summary.push(format!("wrote the JSON report to {}", json.display()));
    }
    let all = report.succeeded() == report.requests;
    Ok(Outcome {
        exit_code: if all && outcome.exit_code == EXIT_OK {
            EXIT_OK
        } else {
            failed_code
        },
        summary,
    })
}
#[cfg(test)]
mod tests;
