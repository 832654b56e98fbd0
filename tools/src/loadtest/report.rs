//! What a load measured: latencies by percentile, failures by cause, the host's
//! listen overflows, as text and JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Failure;

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

pub(super) fn ms(d: Option<Duration>) -> Option<f64> {
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
pub(super) fn host_listen_overflows() -> Option<u64> {
    listen_overflows(&std::fs::read_to_string("/proc/net/netstat").ok()?)
}
