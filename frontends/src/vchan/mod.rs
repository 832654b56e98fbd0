//! The byte channel: a bidirectional byte stream between two guests over
//! granted pages and one event channel, like Xen's libxenvchan.
//!
//! # Protocol
//! The *server* allocates `1 + 2 * ring_pages` pages, grants them all to the
//! client, allocates an unbound port for it, and publishes in its store
//! namespace the key `vchan/NAME` = `[control gref: u32, port: u32]`.
//! Page 0 is the control page (`Control`); pages `1..1+ring_pages` hold the
//! server→client byte ring, the next `ring_pages` the client→server ring
//! (`parapet_abi::ring::bytes`). The *client* waits for the key, maps the
//! control page, copies the references out and checks them, maps the ring
//! pages, binds the port, marks itself connected and notifies.
//!
//! Each side notifies only when the ring's event index says the peer waits
//! (for data, or for space): a stream in full flow sends few events.
//! [`Vchan::close`] marks the side closed in the control page and notifies;
//! the peer then reads what is left and gets end-of-stream. A peer that dies
//! is noticed through its port (the hypervisor closes it and wakes us): reads
//! and writes fail with [`ChanError::PeerDied`].
//!
//! # Waiting
//!
//! The blocking calls ([`Vchan::listen`], [`Vchan::read_blocking`],
//! [`Vchan::read_exact`], [`Vchan::write_all`], a server's
//! [`Vchan::close`]) wait through [`parapet_guest::wait::wait_until`]: with a
//! guest OS's wait hook installed they park only the calling thread (and skip
//! the yield-and-look-again polling they do on a bare vCPU).
//!
//! An OS can also wait on a channel itself, without polling: [`Vchan::read`]
//! and [`Vchan::write`] never block, and [`Vchan::arm_readable`] /
//! [`Vchan::arm_writable`] say whether the bytes (or the room) are there
//! already and, if not, ask the peer for an event on [`Vchan::port`] when they
//! are. This end sets no handler on the port: bind yours (before arming) with
//! `event::set_handler(chan.port(), …)`, or wait in the SDK's wait, which hears
//! of every event:
//!
//! ```ignore
//! loop {
//!     // The condition runs with interrupts masked: an event after the look
//!     // ends the wait, none is lost.
//!     let waited = wait::wait_until(None, || match chan.arm_readable(1) {
//!         Ok(false) => None,           // armed: the writer sends an event
//!         r => Some(r),                // data, or the end of the stream
//!     });
//!     let Ok(ready) = waited else { break }; // the hypervisor refused to block
//!     match ready {
//!         Ok(_) => { let n = chan.read(&mut buf)?; /* use buf[..n] */ }
//!         Err(ChanError::Closed) => break, // the peer closed, all read
//!         Err(e) => return Err(e),
//!     }
//! }
//! ```
//!
//! # Stack
//!
//! Stack: needs about 10 KiB. Measured on QEMU by stack painting (release
//! build; the boot stack below the caller's frame filled with a pattern, the
//! call run, the deepest overwritten word found; upcalls that came meanwhile
//! included): [`Vchan::connect`] 9.0 KiB (it maps the peer's grants),
//! [`Vchan::listen`] 2.8 KiB, streaming 4 MiB with [`Vchan::write_all`] or
//! [`Vchan::read_exact`] under 1 KiB, [`Vchan::close`] 2.3 KiB. Add about
//! 1 KiB for an upcall that lands at the deepest point. The pages (grant runs
//! are large) are on the heap, so a channel end is small to move (before
//! that, `connect` took 11.4 KiB and a client's `close` 12.8 KiB). Measured
//! when a ring was at most 33 pages: since rings of 65 pages, `connect`'s
//! arrays of grant references are 0.5 KiB larger and a `Mapped` 128 bytes
//! (not measured again).

extern crate alloc;

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU32, Ordering};

use parapet_abi::event::{Port, PortStatus};
use parapet_abi::ring::bytes::{ByteReader, ByteWriter};
use parapet_abi::ring::RingError;
use parapet_abi::HvError;
use parapet_guest::event;
use parapet_guest::grant::{self, Mapped, SharedBytes, SharedPages};
use parapet_guest::wait::{self, WaitError};

mod connect;

const PAGE: usize = 4096;
/// `"VCHN"`.
const MAGIC: u32 = u32::from_le_bytes(*b"VCHN");
/// Times a waiting end yields and looks again before it sleeps on the event.
const POLL_YIELDS: u32 = 32;

/// Most pages per ring (data is `ring_pages - 1` pages, a power of two): 64
/// pages of data, 64 slots of 4 KiB. A channel is `1 + 2 * ring_pages` granted
/// pages, within the SDK's [`grant::heapless_vec::MAX`].
pub const MAX_RING_PAGES: u32 = 65;
// The control page and the two rings (1 + 2 × 65) fit in one set of granted pages.
const _: () = assert!((2 * MAX_RING_PAGES as usize) < grant::heapless_vec::MAX);

/// Connection state of one side, in the control page.
mod state {
    pub const INIT: u32 = 0;
    pub const CONNECTED: u32 = 1;
    pub const CLOSED: u32 = 2;
}

/// The control page, as laid out in shared memory (offsets in bytes).
struct Control;

impl Control {
    const MAGIC: usize = 0;
    const RING_PAGES: usize = 4;
    const SERVER_STATE: usize = 8;
    const CLIENT_STATE: usize = 12;
    const REFS: usize = 64;
}

/// What went wrong on a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChanError {
    /// A hypercall failed.
    Hv(HvError),
    /// The peer broke the ring protocol (its indices are out of range).
    Protocol(RingError),
    /// The control page is malformed.
    BadControl(&'static str),
    /// The peer stopped (crashed or exited) without closing the channel.
    PeerDied,
    /// The channel was closed by us.
    Closed,
    /// Not enough bytes to read or room to write, and the call must not block.
    WouldBlock,
}

impl From<HvError> for ChanError {
    fn from(e: HvError) -> Self {
        ChanError::Hv(e)
    }
}

impl core::fmt::Display for ChanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ChanError::Hv(e) => write!(f, "hypercall failed: {e}"),
            ChanError::Protocol(e) => write!(f, "peer broke the ring protocol: {e}"),
            ChanError::BadControl(m) => write!(f, "malformed control page: {m}"),
            ChanError::PeerDied => f.write_str("the peer died"),
            ChanError::Closed => f.write_str("channel closed"),
            ChanError::WouldBlock => f.write_str("would block"),
        }
    }
}

// Boxed: grant runs are large, and a channel end stays small to move (see
// "Stack" above).
enum Pages {
    Server(Box<SharedPages>),
    Client {
        control: Box<Mapped>,
        rings: Box<Mapped>,
    },
}

impl Pages {
    fn control(&self) -> &dyn SharedBytes {
        match self {
            Pages::Server(p) => &**p,
            Pages::Client { control, .. } => &**control,
        }
    }
}

/// Counters of one channel end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChanStats {
    /// Events this end sent.
    pub notifications: u64,
    /// Times this end blocked waiting.
    pub waits: u64,
    /// Counter ticks spent blocked.
    pub wait_ticks: u64,
    /// Times a poll (yield and look again) found what it waited for.
    pub polls_ok: u64,
}

/// One end of a byte channel.
pub struct Vchan {
    // Field order: the rings borrow the pages, so they are dropped first.
    tx: ByteWriter<'static>,
    rx: ByteReader<'static>,
    /// `None` only while being dropped.
    pages: Option<Pages>,
    port: Port,
    is_server: bool,
    closed: bool,
    /// Counters.
    pub stats: ChanStats,
}

impl core::fmt::Debug for Vchan {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vchan")
            .field("port", &self.port)
            .field("server", &self.is_server)
            .finish()
    }
}

fn state_word(pages: &Option<Pages>, server: bool) -> Option<&AtomicU32> {
    let base = pages.as_ref()?.control_base();
    let off = if server {
        Control::SERVER_STATE
    } else {
        Control::CLIENT_STATE
    };
    shared::atomic_at(base + off as u64)
}

/// Whether the peer of the end (`is_server`, `port`) closed its side or its
/// port is no longer connected (it closed, or died). A hypercall: slow path only.
fn peer_gone_at(pages: &Option<Pages>, is_server: bool, port: Port) -> bool {
    let peer = state_word(pages, !is_server).map_or(state::CLOSED, |s| s.load(Ordering::Acquire));
    peer == state::CLOSED || !matches!(event::status(port), Ok(PortStatus::Interdomain { .. }))
}

/// What arming a notification found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// What the end waits for is there already.
    Ready,
    /// Not there: the peer notifies when it is.
    Armed,
    /// The peer is gone (closed, died) or broke the ring.
    Gone,
}

/// Asks the writer for an event once `want` bytes are readable.
fn arm_data(
    rx: &mut ByteReader<'static>,
    pages: &Option<Pages>,
    is_server: bool,
    port: Port,
    want: u32,
) -> Found {
    match rx.request_data_notification(want) {
        Ok(true) => Found::Ready,
        Ok(false) if peer_gone_at(pages, is_server, port) => Found::Gone,
        Ok(false) => Found::Armed,
        Err(_) => Found::Gone,
    }
}

/// Asks the reader for an event once `want` bytes are free.
fn arm_space(
    tx: &mut ByteWriter<'static>,
    pages: &Option<Pages>,
    is_server: bool,
    port: Port,
    want: u32,
) -> Found {
    match tx.request_space_notification(want) {
        Ok(true) => Found::Ready,
        Ok(false) if peer_gone_at(pages, is_server, port) => Found::Gone,
        Ok(false) => Found::Armed,
        Err(_) => Found::Gone,
    }
}

/// A wait without a deadline ends only with its condition or a refused
/// hypercall.
fn wait_error(e: WaitError) -> ChanError {
    match e {
        WaitError::Hv(e) => ChanError::Hv(e),
        WaitError::TimedOut => ChanError::Hv(HvError::Busy),
    }
}

impl Pages {
    fn control_base(&self) -> u64 {
        self.control().base()
    }
}

fn key<'a>(name: &str, buf: &'a mut [u8; 32]) -> Result<&'a str, ChanError> {
    let prefix = b"vchan/";
    let n = prefix.len() + name.len();
    if n > buf.len() {
        return Err(ChanError::Hv(HvError::Inval));
    }
    buf[..prefix.len()].copy_from_slice(prefix);
    buf[prefix.len()..n].copy_from_slice(name.as_bytes());
    core::str::from_utf8(&buf[..n]).map_err(|_| ChanError::Hv(HvError::Inval))
}

impl Vchan {
    /// The event port of this end.
    pub fn port(&self) -> Port {
        self.port
    }

    /// Where the next byte written lands in the stream: bytes written so far,
    /// modulo 2^32 (the ring offset is this modulo [`Vchan::ring_size`]). A
    /// writer can pad to keep records aligned in the ring.
    pub fn tx_position(&self) -> u32 {
        self.tx.position()
    }

    /// Bytes each direction's ring holds.
    pub fn ring_size(&self) -> u32 {
        self.tx.size()
    }

    fn peer_state(&self) -> u32 {
        state_word(&self.pages, !self.is_server)
            .map_or(state::CLOSED, |s| s.load(Ordering::Acquire))
    }

    #[cold]
    #[inline(never)]
    fn notify(&mut self) -> Result<(), ChanError> {
        self.stats.notifications += 1;
        match event::send(self.port) {
            Ok(()) => Ok(()),
            Err(HvError::NoDomain | HvError::NoEnt) => Err(self.gone()),
            Err(e) => Err(e.into()),
        }
    }

    /// Why the peer is gone: closed in order, or died.
    fn gone(&self) -> ChanError {
        if self.peer_state() == state::CLOSED && self.peer_alive() {
            ChanError::Closed
        } else {
            ChanError::PeerDied
        }
    }

    fn peer_alive(&self) -> bool {
        matches!(event::status(self.port), Ok(PortStatus::Interdomain { .. }))
    }

    /// Whether the peer is gone (checked only on the slow path).
    fn peer_gone(&self) -> bool {
        peer_gone_at(&self.pages, self.is_server, self.port)
    }

    #[cold]
    #[inline(never)]
    fn ring_err(&self, e: RingError) -> ChanError {
        if self.peer_alive() {
            ChanError::Protocol(e)
        } else {
            ChanError::PeerDied
        }
    }

    /// Writes as much of `data` as fits, without blocking; notifies the
    /// reader if it waits. Returns the bytes written (0 if the ring is full).
    #[inline(always)]
    pub fn write(&mut self, data: &[u8]) -> Result<usize, ChanError> {
        if self.closed {
            return Err(ChanError::Closed);
        }
        let n = self.tx.write(data).map_err(|e| self.ring_err(e))?;
        if n > 0 && self.tx.publish() {
            self.notify()?;
        }
        Ok(n)
    }

    /// Writes all of `data`, blocking while the ring is full.
    #[inline(always)]
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), ChanError> {
        // The common case, all of it fits in the space already known, inline;
        // the rest (the reader's index, waiting) out of line.
        if !self.closed && self.tx.write_known(data) {
            if self.tx.publish() {
                self.notify()?;
            }
            return Ok(());
        }
        self.write_all_waiting(data)
    }

    #[inline(never)]
    fn write_all_waiting(&mut self, mut data: &[u8]) -> Result<(), ChanError> {
        while !data.is_empty() {
            let n = self.write(data)?;
            data = &data[n..];
            if data.is_empty() {
                break;
            }
            self.wait_space(data.len())?;
        }
        Ok(())
    }

    /// `want` as the notifications take it: at most half the ring.
    fn clamp_want(&self, want: usize) -> u32 {
        want.min(self.tx.size() as usize / 2) as u32
    }

    /// What a writer does after arming found `found`: go on (`true`),
    /// wait (`false`), or fail (the peer is gone: writing is pointless).
    fn space_outcome(&mut self, found: Found) -> Result<bool, ChanError> {
        match found {
            Found::Ready => Ok(true),
            Found::Armed => Ok(false),
            Found::Gone => Err(match self.tx.free() {
                Err(e) => self.ring_err(e),
                Ok(_) => self.gone(),
            }),
        }
    }

    /// Whether `want` bytes (at most half the ring) can be written now:
    /// `Ok(true)`. If not (`Ok(false)`), it has asked the reader to send an
    /// event on [`Vchan::port`] once they are free; the caller may wait for
    /// that event, then write and arm again. Fails when the peer is gone
    /// (`Closed`, `PeerDied`) or broke the ring. The non-blocking half of
    /// [`Vchan::write_all`]; see the module documentation.
    pub fn arm_writable(&mut self, want: usize) -> Result<bool, ChanError> {
        if self.closed {
            return Err(ChanError::Closed);
        }
        let want = self.clamp_want(want);
        let found = arm_space(&mut self.tx, &self.pages, self.is_server, self.port, want);
        self.space_outcome(found)
    }

    fn wait_space(&mut self, want: usize) -> Result<(), ChanError> {
        let want = self.clamp_want(want);
        // Poll first, yielding the CPU before each look (the caller has
        // just looked): on one CPU that runs the peer at once; on two, the
        // peer is likely running and about to free space, and a yield costs
        // far less than sleeping and being woken by an event. Not under a
        // guest OS's wait hook: its other threads run meanwhile instead.
        if !wait::is_hooked() {
            for _ in 0..POLL_YIELDS {
                let _ = parapet_guest::hypercall::yield_now();
                if self.tx.free().map_err(|e| self.ring_err(e))? >= want {
                    self.stats.polls_ok += 1;
                    return Ok(());
                }
            }
        }
        self.stats.waits += 1;
        let t0 = parapet_guest::time::now();
        let (tx, pages) = (&mut self.tx, &self.pages);
        let (port, is_server) = (self.port, self.is_server);
        let found = wait::wait_until(None, || match arm_space(tx, pages, is_server, port, want) {
            Found::Armed => None,
            done => Some(done),
        })
        .map_err(wait_error)?;
        self.stats.wait_ticks += parapet_guest::time::now() - t0;
        self.space_outcome(found).map(|_| ())
    }

    /// Reads what is available into `buf`, without blocking. `Ok(0)` means
    /// nothing is available yet, or (if [`Self::eof`]) the stream ended.
    #[inline(always)]
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, ChanError> {
        let n = self.rx.read(buf).map_err(|e| self.ring_err(e))?;
        if n > 0 && self.rx.publish() {
            self.notify()?;
        }
        Ok(n)
    }

    /// Whether the peer closed its end and everything it wrote was read.
    pub fn eof(&mut self) -> bool {
        self.peer_state() == state::CLOSED && self.rx.available().unwrap_or(0) == 0
    }

    /// Reads at least one byte, blocking until some arrive. `Ok(0)` at the end
    /// of the stream (the peer closed its end in order).
    pub fn read_blocking(&mut self, buf: &mut [u8]) -> Result<usize, ChanError> {
        loop {
            let n = self.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            match self.wait_data(1) {
                Ok(()) => {}
                Err(ChanError::Closed) => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }

    /// Fills `buf`, blocking as needed. `Closed` if the stream ends first.
    #[inline(always)]
    pub fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ChanError> {
        // The common case, all of it among the bytes already known, inline;
        // the rest (the writer's index, waiting) out of line.
        if self.rx.read_known(buf) {
            if self.rx.publish() {
                self.notify()?;
            }
            return Ok(());
        }
        self.read_exact_waiting(buf)
    }

    #[inline(never)]
    fn read_exact_waiting(&mut self, mut buf: &mut [u8]) -> Result<(), ChanError> {
        while !buf.is_empty() {
            let n = self.read(buf)?;
            buf = &mut buf[n..];
            if !buf.is_empty() {
                self.wait_data(buf.len())?;
            }
        }
        Ok(())
    }

    /// What a reader does after arming found `found`: read (`true`), wait
    /// (`false`), or fail. Data that arrived before the peer went is still
    /// readable: `true` while there is some.
    fn data_outcome(&mut self, found: Found) -> Result<bool, ChanError> {
        match found {
            Found::Ready => Ok(true),
            Found::Armed => Ok(false),
            Found::Gone => match self.rx.available() {
                Ok(n) if n > 0 => Ok(true),
                Err(e) => Err(self.ring_err(e)),
                Ok(_) => Err(self.gone()),
            },
        }
    }

    /// Whether `want` bytes (at most half the ring) are readable now, or the
    /// peer went and left some: `Ok(true)`, read them. If not (`Ok(false)`),
    /// it has asked the writer to send an event on [`Vchan::port`] once they
    /// are there (or when it closes or dies); the caller may wait for that
    /// event, then read and arm again. `Err(Closed)` is the end of the
    /// stream (the peer closed in order and everything was read),
    /// `PeerDied` a peer that stopped without closing. The non-blocking half
    /// of [`Vchan::read_blocking`]; see the module documentation.
    pub fn arm_readable(&mut self, want: usize) -> Result<bool, ChanError> {
        let want = want.min(self.rx.size() as usize / 2) as u32;
        let found = arm_data(&mut self.rx, &self.pages, self.is_server, self.port, want);
        self.data_outcome(found)
    }

    /// Blocks until `want` bytes (at most half the ring) are readable.
    fn wait_data(&mut self, want: usize) -> Result<(), ChanError> {
        let want = want.min(self.rx.size() as usize / 2) as u32;
        // Poll first (see `wait_space`).
        if !wait::is_hooked() {
            for _ in 0..POLL_YIELDS {
                let _ = parapet_guest::hypercall::yield_now();
                if self.rx.available().map_err(|e| self.ring_err(e))? >= want {
                    self.stats.polls_ok += 1;
                    return Ok(());
                }
                if self.peer_state() == state::CLOSED {
                    break;
                }
            }
        }
        self.stats.waits += 1;
        let t0 = parapet_guest::time::now();
        let (rx, pages) = (&mut self.rx, &self.pages);
        let (port, is_server) = (self.port, self.is_server);
        let found = wait::wait_until(None, || match arm_data(rx, pages, is_server, port, want) {
            Found::Armed => None,
            done => Some(done),
        })
        .map_err(wait_error)?;
        self.stats.wait_ticks += parapet_guest::time::now() - t0;
        self.data_outcome(found).map(|_| ())
    }

    /// Closes this end in order: the peer reads what is left, then sees the
    /// end of the stream. Waits (up to the peer's death) until the peer has
    /// unmapped our pages before ending the grants, so memory is not reused
    /// under it.
    pub fn close(mut self) -> Result<(), ChanError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ChanError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        if let Some(s) = state_word(&self.pages, self.is_server) {
            s.store(state::CLOSED, Ordering::Release);
        }
        let _ = event::send(self.port);
        if self.is_server {
            // Wait until the client has closed too (or died), so that it
            // unmapped our pages.
            let port = self.port;
            let pages = &self.pages;
            let _ = event::wait_until(|| {
                let peer =
                    state_word(pages, false).map_or(state::CLOSED, |s| s.load(Ordering::Acquire));
                peer != state::CONNECTED
                    || !matches!(event::status(port), Ok(PortStatus::Interdomain { .. }))
            });
        }
        let _ = event::close(self.port);
        Ok(())
    }

    /// Whether the peer has gone (closed or died).
    pub fn peer_has_gone(&self) -> bool {
        self.peer_gone()
    }
}

impl Drop for Vchan {
    fn drop(&mut self) {
        let _ = self.shutdown();
        // A client unmaps the server's pages; a server's `SharedPages` ends
        // the grants when dropped (or leaks the pages if the client still
        // maps them, so they are never reused under it).
        if let Some(Pages::Client { control, rings }) = self.pages.take() {
            let _ = grant::unmap(*rings);
            let _ = grant::unmap(*control);
        }
    }
}

/// The unsafe part: ring handles over shared pages.
#[allow(unsafe_code)]
mod shared {
    use super::ChanError;
    use core::sync::atomic::AtomicU32;
    use parapet_abi::ring::bytes::{ByteReader, ByteWriter};

    /// A writer over `[tx, tx + len)` and a reader over `[rx, rx + len)`.
    ///
    /// Both ranges are pages the channel owns (its `SharedPages`) or has
    /// mapped (its `Mapped` runs) for as long as it lives; the `Vchan` drops
    /// the ring handles before the pages.
    pub fn rings(
        tx: u64,
        rx: u64,
        len: usize,
    ) -> Result<(ByteWriter<'static>, ByteReader<'static>), ChanError> {
        // SAFETY: see above: the memory stays mapped while the handles live,
        // and only the ring code (with atomics for the indices) touches it.
        let w = unsafe { ByteWriter::from_raw(tx as *mut u8, len) }.map_err(ChanError::Protocol)?;
        // SAFETY: as above.
        let r = unsafe { ByteReader::from_raw(rx as *mut u8, len) }.map_err(ChanError::Protocol)?;
        Ok((w, r))
    }

    /// The atomic word at `addr` of the control page.
    pub fn atomic_at(addr: u64) -> Option<&'static AtomicU32> {
        if !addr.is_multiple_of(4) || addr == 0 {
            return None;
        }
        // SAFETY: `addr` is in the channel's control page, which stays mapped
        // (or allocated) for as long as the channel; the word is shared with
        // the peer, so it is only accessed atomically.
        Some(unsafe { &*(addr as *const AtomicU32) })
    }
}

#[cfg(test)]
mod tests;
