//! The `http` role: the web server, its socket pool and the visit counter
//! on the virtual disk.

use alloc::string::String;
use core::fmt::Write as _;
use core::net::Ipv4Addr;

use parapet_frontends::blkfront::Blkfront;
use parapet_frontends::vif::{buffer, NetStack, VifError};
use parapet_guest::{println, time};
use smoltcp::socket::tcp;

use crate::guest::{boot, secs};

/// The visit counter on the virtual disk (sector 0).
///
/// Every request is counted at once in memory (`count`: the page shows
/// it, each visit gets its own number); the disk gets the count by
/// [`Visits::store`], which the server calls when no connection is
/// open, or under steady load at most once per [`STORE_EVERY`]. A
/// write and flush takes the driver domain a round trip and QEMU an
/// `fdatasync`, during which the server does not poll; one per visit
/// would put that on every request. The cost: a crash (or QEMU killed)
/// under load may lose the visits of the last [`STORE_EVERY`].
pub(crate) struct Visits {
    pub(crate) disk: Option<Blkfront>,
    pub(crate) count: u64,
    /// The count last written to the disk.
    pub(crate) stored: u64,
    /// When it was written (counter ticks).
    pub(crate) stored_at: u64,
}

/// Under load, the visit counter is written at most this often.
const STORE_EVERY: time::Duration = time::Duration::from_secs(1);
const MAGIC: &[u8; 8] = b"PRPTHTTP";
const BOOTS_MAGIC: &[u8; 8] = b"PRPTBOOT";

/// `boots`: counts this start in sector 1 of the disk.
fn record_boot(d: &mut Blkfront) -> Result<u64, parapet_frontends::blkfront::BlkError> {
    let mut s = [0u8; 512];
    d.read(1, &mut s)?;
    let previous = if &s[..8] == BOOTS_MAGIC {
        u64::from_le_bytes(s[8..16].try_into().unwrap_or_default())
    } else {
        0
    };
    s[..8].copy_from_slice(BOOTS_MAGIC);
    s[8..16].copy_from_slice(&(previous + 1).to_le_bytes());
    d.write(1, &s)?;
    d.flush()?;
    Ok(previous + 1)
}

impl Visits {
    pub(crate) fn open(wanted: bool, boots: bool, backend: u32) -> Self {
        let mut v = Visits {
            disk: None,
            count: 0,
            stored: 0,
            stored_at: 0,
        };
        if !wanted {
            return v;
        }
        match Blkfront::connect(backend, "vbd0") {
            Ok(mut d) => {
                let mut s = [0u8; 512];
                if d.read(0, &mut s).is_ok() && &s[..8] == MAGIC {
                    v.count = u64::from_le_bytes(s[8..16].try_into().unwrap_or_default());
                }
                v.stored = v.count;
                println!("http: visit counter on vbd0: {}", v.count);
                if boots {
                    match record_boot(&mut d) {
                        Ok(n) => println!("http: boot {n} recorded on vbd0"),
                        Err(e) => println!("http: cannot record the boot: {e}"),
                    }
                }
                v.disk = Some(d);
            }
            Err(e) => println!("http: no disk ({e}): visits are not kept"),
        }
        v
    }

    /// Counts a visit (in memory; see [`Visits::store`]).
    fn bump(&mut self) {
        self.count += 1;
    }

    /// Writes the count to the disk if it changed since the last write
    /// and the server is `idle` (no connection open) or the last write
    /// is [`STORE_EVERY`] old.
    fn store(&mut self, idle: bool) {
        let due = time::now().saturating_sub(self.stored_at) >= time::ticks(STORE_EVERY);
        if self.count == self.stored || !(idle || due) {
            return;
        }
        self.stored = self.count;
        self.stored_at = time::now();
        if let Some(d) = self.disk.as_mut() {
            let mut s = [0u8; 512];
            s[..8].copy_from_slice(MAGIC);
            s[8..16].copy_from_slice(&self.count.to_le_bytes());
            // A write that failed because the backend went away (a driver
            // domain restart) is tried once more: blkfront reconnects first.
            let mut store = || d.write(0, &s).and_then(|()| d.flush());
            if let Err(e) = store().or_else(|_| store()) {
                println!("http: cannot store the visit counter: {e}");
            }
        }
    }
}

/// Sockets listening on port 80. smoltcp has no accept queue: a socket
/// in `Listen` takes one connection, and a SYN that finds none
/// listening is answered with a reset. Each client holds a socket from
/// its SYN until its FIN (the server closes first, after the page),
/// and a client that connects again at once holds a second one
/// meanwhile; a burst of SYNs is taken in one poll, before the loop can
/// refill. So 16 clients that reconnect at once need up to 32, plus
/// spares.
const HTTP_SOCKETS: usize = 40;
/// Each socket's receive buffer (a request) and send buffer (a page of
/// about 600 bytes): 40 sockets take 240 KiB of heap.
const HTTP_RX_BUF: usize = 2048;
const HTTP_TX_BUF: usize = 4096;
/// The longest request read (the rest is ignored).
const HTTP_REQUEST_MAX: usize = 1024;
/// A connection whose peer sends nothing for this long is dropped, so
/// that a vanished client cannot keep a socket from listening.
const HTTP_IDLE_SECS: u64 = 10;

/// One of the server's sockets and the request read on it so far.
struct HttpConn {
    handle: smoltcp::iface::SocketHandle,
    request: [u8; HTTP_REQUEST_MAX],
    len: usize,
    replied: bool,
}

pub(crate) fn http(
    net: &mut NetStack,
    name: &str,
    mut visits: Visits,
    quit_on_request: bool,
) -> Result<bool, VifError> {
    let mut quit = false;
    let mut conns = alloc::vec::Vec::with_capacity(HTTP_SOCKETS);
    for _ in 0..HTTP_SOCKETS {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(buffer(HTTP_RX_BUF)),
            tcp::SocketBuffer::new(buffer(HTTP_TX_BUF)),
        );
        s.set_timeout(Some(smoltcp::time::Duration::from_secs(HTTP_IDLE_SECS)));
        let _ = s.listen(80);
        conns.push(HttpConn {
            handle: net.sockets.add(s),
            request: [0; HTTP_REQUEST_MAX],
            len: 0,
            replied: false,
        });
    }
    let (mut served, mut bytes) = (0u64, 0u64);
    println!(
        "http: serving on {}:80 ({HTTP_SOCKETS} listening sockets)",
        net.addr().map_or(Ipv4Addr::UNSPECIFIED, |a| a.address())
    );
    net.run_until(None, |net| {
        let mut open = 0;
        for c in conns.iter_mut() {
            let s = net.sockets.get_mut::<tcp::Socket>(c.handle);
            if !s.is_open() {
                // Closed, or in TIME-WAIT after our close (the page was
                // acknowledged and the client closed too): listen again
                // at once. Nothing of the old connection is left to
                // send; a stray segment of it gets a reset.
                c.len = 0;
                c.replied = false;
                let _ = s.listen(80);
                continue;
            }
            if s.is_active() {
                open += 1;
            }
            while s.can_recv() && c.len < c.request.len() {
                match s.recv_slice(&mut c.request[c.len..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => c.len += n,
                }
            }
            let req = &c.request[..c.len];
            let complete = req.windows(4).any(|w| w == b"\r\n\r\n");
            if !c.replied && (complete || c.len == c.request.len()) && s.can_send() {
                c.replied = true;
                visits.bump();
                served += 1;
                let path = core::str::from_utf8(req)
                    .ok()
                    .and_then(|r| r.split_whitespace().nth(1))
                    .unwrap_or("?");
                let mut body = String::new();
                let _ = write!(
                    body,
                    "<html><head><title>Parapet: {name}</title></head><body>\n\
                     <h1>Hello from {name}</h1>\n<pre>\n\
                     served by:     {name}, a Parapet guest on smoltcp over netfront\n\
                     uptime:        {:.1} s\n\
                     requests:      {served}\n\
                     bytes served:  {bytes}\n\
                     visits:        {} (kept on vbd0{})\n\
                     path:          {path}\n\
                     </pre></body></html>\n",
                    secs(time::now().saturating_sub(boot())),
                    visits.count,
                    if visits.disk.is_some() { "" } else { ": no disk" }
                );
                let mut page = String::new();
                let _ = write!(
                    page,
                    "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                // The send buffer is empty and larger than a page.
                let _ = s.send_slice(page.as_bytes());
                bytes += page.len() as u64;
                s.close();
                println!("http: request {served}: GET {path} ({} bytes)", body.len());
                quit |= quit_on_request && path == "/quit";
            }
        }
        visits.store(open == 0);
        // With `quit`, stop after answering /quit, once the sockets are closed.
        quit && open == 0
    })
    .inspect(|_| println!("http: served {served} requests ({bytes} bytes)"))
}
