//! One request on its own connection, the check of its answer, and the load:
//! many requests from many threads.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::report::{host_listen_overflows, LoadReport};
use super::{MAX_RESPONSE, PATH, REQUEST_TIMEOUT};

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
