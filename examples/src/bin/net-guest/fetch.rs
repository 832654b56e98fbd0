//! The `fetch` role: an HTTP client that fetches a page `N` times, then may
//! ask the server to quit.

use alloc::string::String;
use alloc::vec;
use core::fmt::Write as _;
use core::net::Ipv4Addr;

use parapet_frontends::vif::{NetStack, VifError};
use parapet_guest::{println, time};
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;

use crate::guest::{deadline, tcp_socket};

/// `http://A.B.C.D[:PORT]/path` → address, port, path.
fn parse_url(url: &str) -> Option<(Ipv4Addr, u16, &str)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (ip, port) = match host.split_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (host, 80),
    };
    Some((ip.parse().ok()?, port, path))
}

/// One GET; true if a whole `200` page came back.
fn fetch_once(
    net: &mut NetStack,
    (ip, port, path): (Ipv4Addr, u16, &str),
    url: &str,
    (n, count): (u32, u32),
    attempt: u16,
) -> Result<bool, VifError> {
    let h = net.sockets.add(tcp_socket(16 * 1024));
    let cx = net.iface.context();
    let local_port = 50000 + (n as u16 % 1000) * 8 + attempt;
    let _ =
        net.sockets
            .get_mut::<tcp::Socket>(h)
            .connect(cx, (IpAddress::Ipv4(ip), port), local_port);
    let mut sent = false;
    let mut page = vec![0u8; 0];
    let finished = net.run_until(deadline(10), |net| {
        let s = net.sockets.get_mut::<tcp::Socket>(h);
        if s.may_send() && !sent {
            let mut req = String::new();
            let _ = write!(req, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n");
            let _ = s.send_slice(req.as_bytes());
            sent = true;
        }
        let mut buf = [0u8; 2048];
        while s.can_recv() {
            match s.recv_slice(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => page.extend_from_slice(&buf[..k]),
            }
        }
        if sent && !s.may_recv() {
            s.close();
            return true;
        }
        !s.is_open() && sent
    })?;
    net.sockets.get_mut::<tcp::Socket>(h).abort();
    let _ = net.poll();
    net.sockets.remove(h);
    let text = core::str::from_utf8(&page).unwrap_or("(not UTF-8)");
    let status = text.lines().next().unwrap_or("");
    if finished && status.starts_with("HTTP/1.0 200") {
        println!("fetch {n}/{count}: {url}: {status}");
        for line in text
            .lines()
            .filter(|l| l.contains(':') && !l.contains("HTTP/") && !l.contains('<'))
            .filter(|l| !l.starts_with("Content-") && !l.starts_with("Connection"))
        {
            println!("  {}", line.trim_end());
        }
        Ok(true)
    } else {
        println!("fetch {n}/{count}: {url}: failed ({} bytes)", page.len());
        Ok(false)
    }
}

pub(crate) fn fetch(
    net: &mut NetStack,
    url: &str,
    count: u32,
    interval_ms: u64,
) -> Result<bool, VifError> {
    let Some((ip, port, path)) = parse_url(url) else {
        println!("fetch: cannot parse url={url} (want http://A.B.C.D[:PORT]/path)");
        return Ok(false);
    };
    let mut ok = 0;
    for n in 1..=count {
        // A failed fetch (the server or the path to it went away for a
        // moment, e.g. a driver domain restart) is tried again, as a
        // browser's user would.
        for attempt in 0..5u16 {
            if attempt > 0 {
                println!("fetch {n}/{count}: trying again");
                time::sleep(time::Duration::from_millis(500)).ok();
            }
            if fetch_once(net, (ip, port, path), url, (n, count), attempt)? {
                ok += 1;
                break;
            }
        }
        time::sleep(time::Duration::from_millis(interval_ms)).ok();
    }
    println!("fetch: {ok} of {count} pages fetched");
    Ok(ok == count)
}

/// Asks the server at `url`'s address to stop (`GET /quit`).
pub(crate) fn quit_server(net: &mut NetStack, url: &str) -> Result<bool, VifError> {
    let Some((ip, port, _)) = parse_url(url) else {
        return Ok(false);
    };
    for attempt in 0..5u16 {
        if fetch_once(net, (ip, port, "/quit"), url, (0, 0), 5 + attempt)? {
            return Ok(true);
        }
        time::sleep(time::Duration::from_millis(500)).ok();
    }
    Ok(false)
}
