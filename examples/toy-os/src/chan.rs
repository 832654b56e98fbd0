//! The byte channel to the peer guest (`parapet_frontends::vchan`):
//! `chan send TEXT` and `chan recv` for the shell, and the echo server of
//! the peer mode.
//!
//! Unlike the network and the disk, the channel has one long-lived I/O
//! thread, `chand`, which owns the [`Vchan`] and is fed through queues: the
//! shell puts messages in the outbox and wakes it; what arrives goes to the
//! inbox, whose [`WaitQueue`] wakes `chan recv`. `chand` waits for both at
//! once in one SDK wait: "a message to send, or bytes to read".

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parapet_frontends::vchan::{ChanError, Vchan};
use parapet_guest::abi::hypercall::ShutdownReason;
use parapet_guest::event::DomId;
use parapet_guest::{hypercall, println, time, wait};

use crate::sched;
use crate::sync::{IrqLock, WaitQueue};

/// The channel's name in the peer's store namespace.
const NAME: &str = "toy";
/// Stack for a channel thread (vchan needs about 10 KiB, see `net::STACK`).
pub const STACK: usize = 24 * 1024;

static OUTBOX: IrqLock<VecDeque<Vec<u8>>> = IrqLock::new(VecDeque::new());
static INBOX: IrqLock<Vec<u8>> = IrqLock::new(Vec::new());
static ARRIVED: WaitQueue = WaitQueue::new();
static CONNECTED: AtomicBool = AtomicBool::new(false);
static BYTES_IN: AtomicU64 = AtomicU64::new(0);
static BYTES_OUT: AtomicU64 = AtomicU64::new(0);

/// What woke `chand`.
enum Work {
    Send,
    Read,
    Failed(ChanError),
}

/// The `chand` thread: connects to the channel the peer offers, then moves
/// bytes both ways until the peer goes away.
pub fn chand(peer: DomId, peer_name: &str) {
    let mut chan = match Vchan::connect(peer, NAME) {
        Ok(c) => c,
        Err(e) => return println!("chan: cannot connect to {peer_name}: {e}"),
    };
    CONNECTED.store(true, Ordering::SeqCst);
    println!(
        "chan: connected to {peer_name} (ring {} bytes)",
        chan.ring_size()
    );
    let mut buf = [0u8; 512];
    loop {
        // One wait for two things; the condition runs with interrupts
        // masked, as the SDK requires (IrqLock masks too: that nests).
        let work = wait::wait_until(None, || {
            if OUTBOX.with(|o| !o.is_empty()) {
                return Some(Work::Send);
            }
            match chan.arm_readable(1) {
                Ok(true) => Some(Work::Read),
                Ok(false) => None,
                Err(e) => Some(Work::Failed(e)),
            }
        });
        let result = match work {
            Ok(Work::Send) => match OUTBOX.with(VecDeque::pop_front) {
                Some(msg) => chan.write_all(&msg).map(|()| {
                    BYTES_OUT.fetch_add(msg.len() as u64, Ordering::Relaxed);
                }),
                None => Ok(()),
            },
            Ok(Work::Read) => chan.read(&mut buf).map(|n| {
                INBOX.with(|i| i.extend_from_slice(&buf[..n]));
                BYTES_IN.fetch_add(n as u64, Ordering::Relaxed);
                ARRIVED.wake_all();
            }),
            Ok(Work::Failed(e)) => Err(e),
            Err(e) => Err(ChanError::Hv(match e {
                wait::WaitError::Hv(e) => e,
                wait::WaitError::TimedOut => parapet_guest::abi::HvError::Busy,
            })),
        };
        if let Err(e) = result {
            CONNECTED.store(false, Ordering::SeqCst);
            return println!("chan: channel to {peer_name} ended: {e}");
        }
    }
}

/// `chan send TEXT`: queues a message for `chand` and wakes it.
pub fn send(text: &str) {
    if !CONNECTED.load(Ordering::SeqCst) {
        return println!("chan: not connected");
    }
    OUTBOX.with(|o| o.push_back(text.as_bytes().to_vec()));
    // `chand` is parked in the SDK's wait: make it look again.
    sched::wake_parked();
    println!("chan: queued {} bytes for chand", text.len());
}

/// `chan recv`: prints what arrived, waiting up to `timeout` for something.
pub fn recv(timeout: time::Duration) {
    let deadline = time::deadline_after(timeout);
    let arrived = ARRIVED.wait_until(Some(deadline), || INBOX.with(|i| !i.is_empty()));
    let data = INBOX.with(core::mem::take);
    if arrived {
        println!("chan: received {:?}", String::from_utf8_lossy(&data));
    } else {
        println!("chan: nothing arrived in {} ms", timeout.as_millis());
    }
}

/// Bytes received and sent, and whether the channel is up (for `uptime`).
pub fn stats() -> (u64, u64, bool) {
    (
        BYTES_IN.load(Ordering::Relaxed),
        BYTES_OUT.load(Ordering::Relaxed),
        CONNECTED.load(Ordering::SeqCst),
    )
}

/// The peer mode's echo server: offers the channel to `client`, sends back
/// everything it reads (prefixed `echo: `), and powers the domain off when
/// the client goes away (closes the channel, or stops).
pub fn echod(client: DomId) {
    let mut chan = match Vchan::listen(client, NAME, 2) {
        Ok(c) => c,
        Err(e) => {
            println!("echod: cannot offer the channel: {e}");
            hypercall::shutdown(ShutdownReason::Poweroff, 1);
        }
    };
    println!("echod: client connected");
    let mut buf = [0u8; 512];
    let end = loop {
        match chan.read_blocking(&mut buf) {
            Ok(0) => break "closed the channel",
            Ok(n) => {
                println!("echod: echoing {n} bytes");
                let mut reply = Vec::from(&b"echo: "[..]);
                reply.extend_from_slice(&buf[..n]);
                if chan.write_all(&reply).is_err() {
                    break "went away";
                }
            }
            Err(_) => break "went away",
        }
    };
    println!("echod: the client {end}; powering off");
    hypercall::shutdown(ShutdownReason::Poweroff, 0);
}
