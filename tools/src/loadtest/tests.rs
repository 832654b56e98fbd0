//! Tests of `bench http`: answers and their causes, percentiles, the load
//! against local servers, picking the forward.

use super::*;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};

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
    let ms = |v: &[u64]| -> Vec<Duration> { v.iter().map(|&m| Duration::from_millis(m)).collect() };
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
