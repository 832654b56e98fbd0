//! guest-a's web server under load: the demo (scenarios/demo.toml) boots,
//! and 16 client threads on the host send 200 requests to its forwarded
//! port on 127.0.0.1 (each on its own connection, HTTP/1.0, as browsers
//! and `cargo parapet bench http` do). Every one must come back as a whole
//! `200` page of guest-a with its own visit number (the counter is right
//! under concurrency); the p50 and p99 latencies are printed.
//!
//! Bounded in count (200 requests) and in time: 10 s per request, 60 s for
//! the load, a 240 s `--timeout` on QEMU and the watchdog on the run; a
//! hung guest fails the test instead of hanging it.
#![deny(unsafe_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use parapet_tests::check::{assert_has, forwarded_url};
use parapet_tests::live::Live;
use parapet_tests::serial;

const CLIENTS: usize = 16;
const REQUESTS: usize = 200;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const LOAD_LIMIT: Duration = Duration::from_secs(60);

/// What guest-a's page says, of what the test checks.
#[derive(Debug)]
struct Page {
    visits: u64,
    requests: u64,
}

/// The number after `label` on a line of the page.
fn field(body: &str, label: &str) -> Option<u64> {
    let rest = &body[body.find(label)? + label.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Checks a whole answer: `HTTP/1.0 200 OK`, a `Content-Length` that
/// matches the body, guest-a's page.
fn check(raw: &[u8]) -> Result<Page, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "not UTF-8".to_string())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {} bytes", raw.len()))?;
    if !head.starts_with("HTTP/1.0 200 OK\r\n") {
        return Err(format!("status: {:?}", head.lines().next()));
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or("no Content-Length")?;
    if body.len() != length {
        return Err(format!(
            "{} bytes of body, Content-Length {length}",
            body.len()
        ));
    }
    for marker in [
        "<h1>Hello from guest-a</h1>",
        "(kept on vbd0)",
        "path:          /load",
    ] {
        if !body.contains(marker) {
            return Err(format!("no `{marker}` in the page:\n{body}"));
        }
    }
    Ok(Page {
        visits: field(body, "visits:").ok_or("no visit count")?,
        requests: field(body, "requests:").ok_or("no request count")?,
    })
}

/// One request on its own connection: the page and the latency.
fn get(addr: SocketAddr, path: &str) -> Result<(Page, Duration), String> {
    let start = Instant::now();
    let mut c =
        TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    c.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    // In one write, as curl does: QEMU's forwarded port listens with a
    // backlog of 1, so under load the host answers with SYN cookies, and a
    // request in several segments whose first one is dropped on the full
    // accept queue gets a reset from the host (`TcpExtSyncookiesFailed`).
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    c.write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if start.elapsed() > REQUEST_TIMEOUT {
            return Err("no whole answer within 10 s".into());
        }
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read after {} bytes: {e}", raw.len())),
        }
    }
    Ok((check(&raw)?, start.elapsed()))
}

/// Nearest-rank percentile of ascending `sorted`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn guest_a_answers_200_of_200_requests_from_16_parallel_clients() {
    let _g = serial();
    let mut run = Live::start(&["up", "scenarios/demo.toml", "--timeout", "240"]);
    assert!(
        run.wait_for(
            "[guest-a] http: serving on 10.0.2.15:80",
            Duration::from_secs(300)
        ),
        "guest-a never served:\n{}",
        run.transcript()
    );
    let url = forwarded_url(&run.transcript(), "is reachable at http://127.0.0.1:");
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert!(addr.ip().is_loopback(), "{addr}");

    // QEMU accepts before the guest's path is up: one page first.
    let warm = Instant::now();
    let mut last = Err(String::new());
    while warm.elapsed() < Duration::from_secs(30) {
        last = get(addr, "/load");
        if last.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    if let Err(e) = last {
        panic!("{url} never answered: {e}\n{}", run.transcript());
    }

    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            s.spawn(|| {
                while next.fetch_add(1, Ordering::SeqCst) < REQUESTS {
                    let r = if start.elapsed() > LOAD_LIMIT {
                        Err("not sent: the load took over 60 s".to_string())
                    } else {
                        get(addr, "/load")
                    };
                    results.lock().unwrap().push(r);
                }
            });
        }
    });
    let wall = start.elapsed();
    let r = run.interrupt();
    let t = r.transcript();

    let results = results.into_inner().unwrap();
    assert_eq!(results.len(), REQUESTS);
    let mut failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    failures.sort();
    let pages: Vec<&(Page, Duration)> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let mut latencies: Vec<Duration> = pages.iter().map(|(_, d)| *d).collect();
    latencies.sort();
    if !latencies.is_empty() {
        println!(
            "http load: {} of {REQUESTS} from {CLIENTS} clients in {:.2} s; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pages.len(),
            wall.as_secs_f64(),
            percentile(&latencies, 50.0).as_secs_f64() * 1e3,
            percentile(&latencies, 99.0).as_secs_f64() * 1e3,
            latencies[latencies.len() - 1].as_secs_f64() * 1e3,
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {REQUESTS} requests failed: {failures:#?}\n{t}",
        failures.len()
    );
    // Each request was counted once: its own visit and request number.
    let visits: BTreeSet<u64> = pages.iter().map(|(p, _)| p.visits).collect();
    let requests: BTreeSet<u64> = pages.iter().map(|(p, _)| p.requests).collect();
    assert_eq!(visits.len(), REQUESTS, "visit numbers repeat: {visits:?}");
    assert_eq!(
        requests.len(),
        REQUESTS,
        "request numbers repeat: {requests:?}"
    );
    // The guest saw them all (and the first page).
    assert!(t.matches(": GET /load (").count() > REQUESTS, "{t}");
    assert!(!t.contains("cannot store the visit counter"), "{t}");
    assert!(!t.contains("[hv] domain guest-a crashed"), "{t}");
    assert_has(&t, "interrupted (Ctrl-C)");
}
