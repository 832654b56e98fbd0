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
//! goes out in one write, as curl's does.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::transcript::{EXIT_DOMAIN_FAILED, EXIT_OK};
use crate::{build, load, prepare, prereq, run_prepared, Error, Forward, Outcome, Running};

/// Default `--clients`.
pub const DEFAULT_CLIENTS: usize = 16;
/// Default `--requests`.
pub const DEFAULT_REQUESTS: usize = 200;
/// How long one request (connect, send, read to the server's close) may
/// take before it counts as timed out.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// An answer larger than this is not the page of a small server.
const MAX_RESPONSE: usize = 1 << 20;
/// The request each client sends (the demo's page).
const PATH: &str = "/";

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

/// Why one request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// The connection was refused.
    Refused,
    /// The connection was not made within the request's time.
    ConnectTimeout,
    /// The connection was reset (or aborted, or the pipe broke).
    Reset,
    /// No complete answer within the request's time.
    Timeout,
    /// The server closed without sending anything.
    Empty,
    /// The server closed before the answer was complete (headers or body).
    Truncated,
    /// Not an HTTP answer, or a body longer than its `Content-Length`.
    Malformed,
    /// An HTTP answer with another status than 200.
    Status,
    /// Another socket error.
    Io,
    /// Not sent: the run's time was over, or QEMU had ended.
    NotRun,
}

impl Failure {
    /// A short name, for the report.
    pub fn label(self) -> &'static str {
        match self {
            Failure::Refused => "connection refused",
            Failure::ConnectTimeout => "connect timed out",
            Failure::Reset => "connection reset",
            Failure::Timeout => "timed out",
            Failure::Empty => "closed without an answer",
            Failure::Truncated => "answer cut short",
            Failure::Malformed => "malformed answer",
            Failure::Status => "status not 200",
            Failure::Io => "other socket error",
            Failure::NotRun => "not run",
        }
    }

    /// The cause of a socket error while connecting (`connect`) or after.
    pub fn from_io(e: &io::Error, connect: bool) -> Failure {
        use io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => Failure::Refused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Failure::Reset,
            K::TimedOut | K::WouldBlock if connect => Failure::ConnectTimeout,
            K::TimedOut | K::WouldBlock => Failure::Timeout,
            _ => Failure::Io,
        }
    }
}

/// A complete `200` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The body's length in bytes.
    pub body_len: usize,
}

/// Checks a whole answer (everything read until the server closed): a
/// status line `HTTP/1.x 200 …`, the end of the headers, and, when there
/// is a `Content-Length`, exactly that many bytes of body.
pub fn check_response(raw: &[u8]) -> Result<Response, Failure> {
    if raw.is_empty() {
        return Err(Failure::Empty);
    }
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        // An answer that starts right but stops before the headers end.
        let n = raw.len().min(7);
        return Err(if raw[..n] == b"HTTP/1."[..n] {
            Failure::Truncated
        } else {
            Failure::Malformed
        });
    };
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| Failure::Malformed)?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut words = status.split(' ');
    let version = words.next().unwrap_or("");
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return Err(Failure::Malformed);
    }
    let code = words
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or(Failure::Malformed)?;
    if code != 200 {
        return Err(Failure::Status);
    }
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(Failure::Malformed)?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            let want: usize = value.trim().parse().map_err(|_| Failure::Malformed)?;
            return match body.len() {
                n if n == want => Ok(Response { body_len: n }),
                n if n < want => Err(Failure::Truncated),
                _ => Err(Failure::Malformed),
            };
        }
    }
    Ok(Response {
        body_len: body.len(),
    })
}

/// The `p`-th percentile (0 < p <= 100) of `sorted` (ascending), by nearest
/// rank: the smallest value with at least `p` % of the values at or below
/// it. `None` when there is no value or `p` is out of range.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// What one load run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// The server: `domain:port at http://127.0.0.1:PORT/`.
    pub target: String,
    /// Client threads.
    pub clients: usize,
    /// Requests asked for.
    pub requests: usize,
    /// Latencies of the successful requests, ascending.
    pub latencies: Vec<Duration>,
    /// Failed requests by cause.
    pub failures: BTreeMap<Failure, usize>,
    /// Bytes of body received by the successful requests.
    pub body_bytes: u64,
    /// From the first request sent to the last one ended.
    pub wall: Duration,
    /// SYNs the host dropped meanwhile on a full accept queue (see the
    /// module docs), if the host says.
    pub listen_overflows: Option<u64>,
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1e3)
}

impl LoadReport {
    /// Successful requests.
    pub fn succeeded(&self) -> usize {
        self.latencies.len()
    }

    /// Failed (or not run) requests.
    pub fn failed(&self) -> usize {
        self.failures.values().sum()
    }

    /// p50, p99 and the maximum latency of the successes.
    pub fn p50_p99_max(&self) -> (Option<Duration>, Option<Duration>, Option<Duration>) {
        (
            percentile(&self.latencies, 50.0),
            percentile(&self.latencies, 99.0),
            self.latencies.last().copied(),
        )
    }

    /// Successful requests per second of wall time.
    pub fn rate(&self) -> f64 {
        self.succeeded() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// `2 connection reset, 1 timed out` (or `none`).
    pub fn causes(&self) -> String {
        if self.failures.is_empty() {
            return "none".into();
        }
        let all: Vec<String> = self
            .failures
            .iter()
            .map(|(f, n)| format!("{n} {}", f.label()))
            .collect();
        all.join(", ")
    }

    /// The table `bench http` prints.
    pub fn text(&self) -> String {
        let (p50, p99, max) = self.p50_p99_max();
        let show = |d: Option<Duration>| ms(d).map_or("-".into(), |m| format!("{m:.1} ms"));
        format!(
            "bench http: {}, {} client(s), {} request(s)\n\
             succeeded   {} of {}\n\
             failed      {} ({})\n\
             latency     p50 {}, p99 {}, max {}\n\
             throughput  {:.1} requests/s over {:.2} s\n{}",
            self.target,
            self.clients,
            self.requests,
            self.succeeded(),
            self.requests,
            self.failed(),
            self.causes(),
            show(p50),
            show(p99),
            show(max),
            self.rate(),
            self.wall.as_secs_f64(),
            self.listen_overflows.map_or(String::new(), |n| format!(
                "host        {n} SYN(s) dropped on a full accept queue (TcpExt ListenOverflows, whole \
                 host; QEMU listens on a forwarded port with a backlog of 1: each costs a client \
                 a 1 s SYN retransmit)\n"
            )),
        )
    }

    /// The JSON report.
    pub fn json(&self, command: &str) -> String {
        let (p50, p99, max) = self.p50_p99_max();
        let failures: serde_json::Map<String, serde_json::Value> = self
            .failures
            .iter()
            .map(|(f, n)| (f.label().to_owned(), (*n).into()))
            .collect();
        let doc = serde_json::json!({
            "bench": "http",
            "command": command,
            "target": self.target,
            "clients": self.clients,
            "requests": self.requests,
            "succeeded": self.succeeded(),
            "failed": self.failed(),
            "failures": failures,
            "p50_ms": ms(p50),
            "p99_ms": ms(p99),
            "max_ms": ms(max),
            "requests_per_s": self.rate(),
            "wall_s": self.wall.as_secs_f64(),
            "body_bytes": self.body_bytes,
            "host_listen_overflows": self.listen_overflows,
        });
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// `TcpExt ListenOverflows` in the text of Linux's `/proc/net/netstat`: a
/// `TcpExt:` line of names, then one of values.
pub fn listen_overflows(netstat: &str) -> Option<u64> {
    let mut tcp_ext = netstat.lines().filter_map(|l| l.strip_prefix("TcpExt:"));
    let names = tcp_ext.next()?;
    let values = tcp_ext.next()?;
    let at = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// The host's `ListenOverflows` now, if it says.
fn host_listen_overflows() -> Option<u64> {
    listen_overflows(&std::fs::read_to_string("/proc/net/netstat").ok()?)
}

/// One request on its own connection: its latency and body length, or why
/// it failed.
pub fn request(addr: SocketAddr, limit: Duration) -> Result<(Duration, usize), Failure> {
    let start = Instant::now();
    let left = || limit.saturating_sub(start.elapsed());
    let mut c = TcpStream::connect_timeout(&addr, limit).map_err(|e| Failure::from_io(&e, true))?;
    let io = |e: io::Error| Failure::from_io(&e, false);
    let timeout = |d: Duration| Some(d.max(Duration::from_millis(1)));
    c.set_write_timeout(timeout(left())).map_err(io)?;
    let req = format!(
        "GET {PATH} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: parapet-bench-http\r\nConnection: close\r\n\r\n"
    );
    c.write_all(req.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = left();
        if left.is_zero() {
            return Err(Failure::Timeout);
        }
        c.set_read_timeout(timeout(left)).map_err(io)?;
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if raw.len() + n > MAX_RESPONSE => return Err(Failure::Malformed),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    let r = check_response(&raw)?;
    Ok((start.elapsed(), r.body_len))
}

/// Runs `requests` requests to `addr` from `clients` threads; none starts
/// after `deadline` or once `stop` says so (they count as
/// [`Failure::NotRun`]).
pub fn run_load(
    addr: SocketAddr,
    target: String,
    clients: usize,
    requests: usize,
    deadline: Option<Instant>,
    stop: &(dyn Fn() -> bool + Sync),
) -> LoadReport {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(requests));
    let overflows_before = host_listen_overflows();
    let start = Instant::now();
    std::thread::scope(|sc| {
        for _ in 0..clients.max(1) {
            sc.spawn(|| {
                while next.fetch_add(1, Ordering::SeqCst) < requests {
                    let over = deadline.is_some_and(|d| Instant::now() >= d) || stop();
                    let r = if over {
                        Err(Failure::NotRun)
                    } else {
                        let limit = deadline.map_or(REQUEST_TIMEOUT, |d| {
                            REQUEST_TIMEOUT.min(d.saturating_duration_since(Instant::now()))
                        });
                        request(addr, limit)
                    };
                    results.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                }
            });
        }
    });
    let wall = start.elapsed();
    let listen_overflows = overflows_before
        .zip(host_listen_overflows())
        .map(|(before, after)| after.saturating_sub(before));
    let mut report = LoadReport {
        target,
        clients: clients.max(1),
        requests,
        latencies: Vec::new(),
        failures: BTreeMap::new(),
        body_bytes: 0,
        wall,
        listen_overflows,
    };
    for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        match r {
            Ok((t, body)) => {
                report.latencies.push(t);
                report.body_bytes += body as u64;
            }
            Err(f) => *report.failures.entry(f).or_default() += 1,
        }
    }
    report.latencies.sort();
    report
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

/// Fails early when `--json FILE` names a directory that does not exist.
fn check_report_dir(json: Option<&Path>) -> Result<(), Error> {
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

/// `parapet bench http`: builds (unless `no_build`) and boots the scenario,
/// loads its forwarded web server (see the module docs), prints the report
/// to stdout and writes the JSON report if asked, then stops QEMU.
///
/// The outcome is a failure ([`EXIT_DOMAIN_FAILED`], or the run's own
/// status when a domain failed) when the server never answered or a
/// request failed; the report is printed (and written) all the same.
pub fn bench_http(opts: &BenchHttpOptions) -> Result<Outcome, Error> {
    let root = build::workspace_root()?;
    check_report_dir(opts.json.as_deref())?;
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
mod tests {
    use super::*;
    use std::net::TcpListener;

    const PAGE: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";

    #[test]
    fn a_whole_200_answer_is_a_success() {
        assert_eq!(check_response(PAGE), Ok(Response { body_len: 5 }));
        // Without a Content-Length the body runs to the close.
        assert_eq!(
            check_response(b"HTTP/1.1 200 OK\r\n\r\nabc"),
            Ok(Response { body_len: 3 })
        );
        assert_eq!(
            check_response(b"HTTP/1.0 200 OK\r\ncontent-length:  0 \r\n\r\n"),
            Ok(Response { body_len: 0 })
        );
    }

    #[test]
    fn every_bad_answer_has_its_cause() {
        let cases: [(&[u8], Failure); 12] = [
            (b"", Failure::Empty),
            (b"HTTP/1.0 200 OK\r\nContent-Le", Failure::Truncated),
            (b"HTT", Failure::Truncated),
            (&PAGE[..PAGE.len() - 1], Failure::Truncated),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nabc",
                Failure::Malformed,
            ),
            (b"SSH-2.0-OpenSSH\r\n", Failure::Malformed),
            (b"HTTP/2 200\r\n\r\n", Failure::Malformed),
            (b"HTTP/1.0 2000 OK\r\n\r\n", Failure::Malformed),
            (b"HTTP/1.0 200 OK\r\nno colon\r\n\r\n", Failure::Malformed),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: x\r\n\r\n",
                Failure::Malformed,
            ),
            (b"HTTP/1.0 404 Not Found\r\n\r\n", Failure::Status),
            (
                b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
                Failure::Status,
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(
                check_response(raw),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let ms =
            |v: &[u64]| -> Vec<Duration> { v.iter().map(|&m| Duration::from_millis(m)).collect() };
        let d = |m| Some(Duration::from_millis(m));
        let hundred = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&hundred, 50.0), d(50));
        assert_eq!(percentile(&hundred, 99.0), d(99));
        assert_eq!(percentile(&hundred, 100.0), d(100));
        assert_eq!(percentile(&hundred, 0.5), d(1));
        let two_hundred = ms(&(1..=200).collect::<Vec<_>>());
        assert_eq!(percentile(&two_hundred, 99.0), d(198));
        let few = ms(&[10, 20, 30]);
        assert_eq!(percentile(&few, 50.0), d(20));
        assert_eq!(percentile(&few, 99.0), d(30));
        assert_eq!(percentile(&ms(&[7]), 50.0), d(7));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&few, 0.0), None);
        assert_eq!(percentile(&few, 101.0), None);
        assert_eq!(percentile(&few, f64::NAN), None);
    }

    #[test]
    fn listen_overflows_from_proc_net_netstat() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                    TcpExt: 0 100 101\n\
                    IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(listen_overflows(text), Some(100));
        assert_eq!(listen_overflows("TcpExt: ListenDrops\nTcpExt: 3\n"), None);
        assert_eq!(listen_overflows("TcpExt: ListenOverflows\n"), None);
        assert_eq!(listen_overflows(""), None);
    }

    #[test]
    fn socket_errors_by_cause() {
        use io::ErrorKind as K;
        let f = |k: K, connect| Failure::from_io(&io::Error::from(k), connect);
        assert_eq!(f(K::ConnectionRefused, true), Failure::Refused);
        assert_eq!(f(K::TimedOut, true), Failure::ConnectTimeout);
        assert_eq!(f(K::WouldBlock, false), Failure::Timeout);
        assert_eq!(f(K::ConnectionReset, false), Failure::Reset);
        assert_eq!(f(K::BrokenPipe, false), Failure::Reset);
        assert_eq!(f(K::PermissionDenied, false), Failure::Io);
    }

    /// A server on 127.0.0.1 that answers each connection with what
    /// `answer(n)` says for the n-th (`None`: closes at once); never more
    /// than `conns` connections.
    fn server(conns: usize, answer: fn(usize) -> Option<Vec<u8>>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for n in 0..conns {
                let Ok((mut c, _)) = l.accept() else { return };
                std::thread::spawn(move || {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 512];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => req.extend_from_slice(&buf[..k]),
                        }
                    }
                    assert!(req.starts_with(b"GET / HTTP/1.0\r\n"));
                    if let Some(a) = answer(n) {
                        let _ = c.write_all(&a);
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn the_load_counts_successes_and_failures_by_cause() {
        // Every 4th connection is closed without an answer, every 4th
        // (shifted) gets a 500.
        let addr = server(40, |n| match n % 4 {
            0 => None,
            1 => Some(b"HTTP/1.0 500 Oops\r\n\r\n".to_vec()),
            _ => Some(PAGE.to_vec()),
        });
        let r = run_load(addr, "t".into(), 4, 40, None, &|| false);
        assert_eq!(r.succeeded(), 20, "{r:?}");
        assert_eq!(r.failures.get(&Failure::Empty), Some(&10));
        assert_eq!(r.failures.get(&Failure::Status), Some(&10));
        assert_eq!(r.failed(), 20);
        assert_eq!(r.body_bytes, 20 * 5);
        assert!(r.latencies.windows(2).all(|w| w[0] <= w[1]));
        let text = r.text();
        assert!(text.contains("succeeded   20 of 40"), "{text}");
        assert!(
            text.contains("failed      20 (10 closed without an answer, 10 status not 200)"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&r.json("cmd")).unwrap();
        assert_eq!(v["succeeded"], 20);
        assert_eq!(v["failures"]["status not 200"], 10);
        assert!(v["p50_ms"].as_f64().is_some_and(|m| m > 0.0), "{v}");
        assert!(v["p99_ms"].as_f64() >= v["p50_ms"].as_f64());
    }

    #[test]
    fn a_silent_server_times_out_and_nothing_runs_after_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // Accepts (the backlog does) but never answers.
        let start = Instant::now();
        assert_eq!(
            request(addr, Duration::from_millis(300)),
            Err(Failure::Timeout)
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        let r = run_load(addr, "t".into(), 2, 5, Some(Instant::now()), &|| false);
        assert_eq!(r.failures.get(&Failure::NotRun), Some(&5), "{r:?}");
        assert_eq!(r.succeeded(), 0);
        assert!(r.text().contains("p50 -, p99 -, max -"), "{}", r.text());
        let stopped = run_load(addr, "t".into(), 2, 3, None, &|| true);
        assert_eq!(stopped.failures.get(&Failure::NotRun), Some(&3));
        drop(l);
        // Nobody listens now.
        assert_eq!(request(addr, Duration::from_secs(2)), Err(Failure::Refused));
    }

    #[test]
    fn the_forward_on_port_80_is_preferred() {
        let f = |domain: &str, guest_port| Forward {
            domain: domain.into(),
            host_port: 1000 + guest_port,
            guest_ip: std::net::Ipv4Addr::new(10, 0, 2, 15),
            guest_port,
        };
        assert_eq!(pick_forward(&[]), None);
        let both = [f("a", 22), f("b", 80)];
        assert_eq!(pick_forward(&both).unwrap().domain, "b");
        assert_eq!(pick_forward(&both[..1]).unwrap().domain, "a");
    }

    #[test]
    fn a_scenario_without_a_forward_is_refused_before_building() {
        let dir = std::env::temp_dir().join(format!("parapet-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("noforward.toml");
        std::fs::write(
            &path,
            "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"/bin/true\"\n\
             [[domain]]\nname = \"g\"\nimage = \"/bin/true\"\nnet = {}\n",
        )
        .unwrap();
        let opts = BenchHttpOptions {
            scenario: path.clone(),
            clients: 1,
            requests: 1,
            json: None,
            no_build: true,
            timeout: None,
        };
        let e = bench_http(&opts).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).ok();
        assert!(e.contains("forwards no host port to a guest"), "{e}");
        let missing = BenchHttpOptions {
            scenario: dir.join("missing.toml"),
            ..opts
        };
        let e = bench_http(&missing).unwrap_err().to_string();
        assert!(e.contains("missing.toml"), "{e}");
    }
}
