//! The byte-channel benchmark and transfer check. Two instances: `rx` (the
//! channel's server) and `tx` (its client). For each message size, `tx`
//! streams messages of pseudo-random bytes, then the stream's digest; `rx`
//! reads them into one buffer, checks every byte through the digest (after
//! the timed loop, which is the transport alone), and measures the
//! throughput, the notifications and world switches per message, and its own
//! memcpy bandwidth for the same sizes, in the same run.
//!
//! Command line: `tx` or `rx`; `peer=NAME` (default `ring-rx` / `ring-tx`);
//! `sizes=64,256,...` (tx; default 64 B to 64 KiB); `kib=N` bytes per size in
//! KiB (tx; default 8192); `crash-after=BYTES` (tx: crash after sending that
//! much, to test that the reader gets a clean error; rx: crash after receiving
//! that much, to test the writer's side); `ring-pages=N` (rx).
//!
//! Output lines (parsed by `cargo parapet bench ring`):
//! `bench ring tx size=.. msgs=.. notify=..`,
//! `bench ring rx size=.. msgs=.. bytes=.. ticks=.. freq=.. notify=.. switches=..
//! memcpy_bytes=.. memcpy_ticks=.. checksum=ok|bad`, `bench ring done sizes=..`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("ring-bench is a bare-metal image: build it with `cargo parapet build`");
}

#[cfg(target_os = "none")]
mod guest {
    extern crate alloc;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::hint::black_box;

    use parapet_examples::digest;
    use parapet_frontends::vchan::{ChanError, Vchan};
    use parapet_guest::abi::hypercall::ShutdownReason;
    use parapet_guest::abi::StartInfo;
    use parapet_guest::{cmdline, event, hypercall, println, store, time};

    parapet_guest::entry!(main);

    const DEFAULT_SIZES: [u32; 6] = [64, 256, 1024, 4096, 16384, 65536];
    const CHANNEL: &str = "bench";
    /// Distinct payload offsets (so messages differ).
    const OFFSETS: usize = 64;

    fn main(info: &StartInfo) -> i32 {
        let cmd = info.cmdline();
        let rx = cmdline::has(cmd, "rx");
        let peer_name = cmdline::get(cmd, "peer").unwrap_or(if rx { "ring-tx" } else { "ring-rx" });
        let peer = match store::lookup(peer_name) {
            Ok(p) => p,
            Err(e) => {
                println!("peer {peer_name}: {e}");
                return 2;
            }
        };
        let result = if rx {
            let pages = cmdline::get(cmd, "ring-pages")
                .and_then(|v| v.parse().ok())
                .unwrap_or(33);
            receive(
                peer,
                pages,
                cmdline::get(cmd, "crash-after").and_then(|v| v.parse().ok()),
            )
        } else {
            send(peer, cmd)
        };
        match result {
            Ok(()) => 0,
            Err(e) => {
                println!("ring-bench: {e}");
                1
            }
        }
    }

    fn header(size: u32, msgs: u32) -> [u8; 8] {
        let mut h = [0u8; 8];
        h[..4].copy_from_slice(&size.to_le_bytes());
        h[4..].copy_from_slice(&msgs.to_le_bytes());
        h
    }

    fn send(peer: u32, cmd: &str) -> Result<(), ChanError> {
        let kib: u64 = cmdline::get(cmd, "kib")
            .and_then(|v| v.parse().ok())
            .unwrap_or(8192);
        let crash_after: Option<u64> =
            cmdline::get(cmd, "crash-after").and_then(|v| v.parse().ok());
        let mut sizes: Vec<u32> = Vec::new();
        match cmdline::get(cmd, "sizes") {
            Some(list) => sizes.extend(
                list.split(',')
                    .filter_map(|s| s.parse::<u32>().ok())
                    .filter(|&s| s > 0 && s <= 1 << 20),
            ),
            None => sizes.extend_from_slice(&DEFAULT_SIZES),
        }
        let mut chan = Vchan::connect(peer, CHANNEL)?;
        println!(
            "tx: connected, ring {} KiB per direction",
            chan.ring_size() / 1024
        );
        let max = sizes.iter().copied().max().unwrap_or(64) as usize;
        let mut payload = vec![0u8; max + OFFSETS * 64];
        digest::fill(&mut payload, 0x5eed);
        let mut sent_total = 0u64;
        for &size in &sizes {
            let msgs = ((kib * 1024) / u64::from(size)).clamp(16, 1 << 18) as u32;
            // Per-offset digests, computed before the clock starts.
            let digests: Vec<u64> = (0..OFFSETS)
                .map(|o| digest::message(&payload[o * 64..o * 64 + size as usize]))
                .collect();
            chan.write_all(&header(size, msgs))?;
            let before = event::stats().map(|s| s.events_sent).unwrap_or(0);
            let mut stream = 0u64;
            for i in 0..msgs as usize {
                let o = i % OFFSETS;
                chan.write_all(&payload[o * 64..o * 64 + size as usize])?;
                stream = digest::fold(stream, digests[o]);
                sent_total += u64::from(size);
                if crash_after.is_some_and(|c| sent_total >= c) {
                    println!("tx: crashing on purpose after {sent_total} bytes");
                    hypercall::shutdown(ShutdownReason::Crash, 3);
                }
            }
            chan.write_all(&stream.to_le_bytes())?;
            let after = event::stats().map(|s| s.events_sent).unwrap_or(0);
            println!(
                "bench ring tx size={size} msgs={msgs} notify={}",
                after - before
            );
        }
        chan.write_all(&header(0, 0))?;
        println!(
            "tx: waits {} ({} ticks), polls that found space {}, notifications {}",
            chan.stats.waits, chan.stats.wait_ticks, chan.stats.polls_ok, chan.stats.notifications
        );
        chan.close()?;
        Ok(())
    }

    fn receive(peer: u32, ring_pages: u32, crash_after: Option<u64>) -> Result<(), ChanError> {
        let mut chan = Vchan::listen(peer, CHANNEL, ring_pages)?;
        println!(
            "rx: connected, ring {} KiB per direction",
            chan.ring_size() / 1024
        );
        let freq = time::frequency();
        let mut done = 0;
        let mut total = 0u64;
        loop {
            let mut h = [0u8; 8];
            match chan.read_exact(&mut h) {
                Ok(()) => {}
                Err(e) => {
                    println!("rx: channel ended after {total} bytes: {e}");
                    return Err(e);
                }
            }
            let size = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let msgs = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            if size == 0 {
                break;
            }
            if size > 1 << 20 {
                println!("rx: bad message size {size}");
                return Err(ChanError::BadControl("message size"));
            }
            // Messages land one after the other in a buffer big enough for
            // all of them, so that the timed loop is the transport only (one
            // copy in, one copy out); every byte is still checked, after the
            // clock stops.
            let mut buf = vec![0u8; size as usize * msgs as usize];
            let s0 = event::stats().unwrap_or_default();
            let t0 = time::now();
            for m in buf.chunks_exact_mut(size as usize) {
                if let Err(e) = chan.read_exact(m) {
                    println!("rx: channel ended after {total} bytes: {e}");
                    return Err(e);
                }
                total += u64::from(size);
                if crash_after.is_some_and(|c| total >= c) {
                    println!("rx: crashing on purpose after {total} bytes");
                    hypercall::shutdown(ShutdownReason::Crash, 3);
                }
            }
            let t1 = time::now();
            let s1 = event::stats().unwrap_or_default();
            let stream = buf
                .chunks_exact(size as usize)
                .fold(0u64, |acc, m| digest::fold(acc, digest::message(m)));
            drop(buf);
            let mut trailer = [0u8; 8];
            chan.read_exact(&mut trailer)?;
            let ok = u64::from_le_bytes(trailer) == stream;
            let bytes = u64::from(size) * u64::from(msgs);
            let (memcpy_bytes, memcpy_ticks) = memcpy_bandwidth(size as usize, bytes);
            println!(
                "bench ring rx size={size} msgs={msgs} bytes={bytes} ticks={} freq={freq} notify={} switches={} memcpy_bytes={memcpy_bytes} memcpy_ticks={memcpy_ticks} checksum={}",
                t1 - t0,
                s1.events_sent - s0.events_sent,
                s1.world_switches - s0.world_switches,
                if ok { "ok" } else { "bad" }
            );
            if !ok {
                println!("rx: checksum mismatch at size {size}");
            }
            done += 1;
        }
        println!("bench ring done sizes={done}");
        println!(
            "rx: received {total} bytes, all checksums verified; waits {}, notifications {}",
            chan.stats.waits, chan.stats.notifications
        );
        chan.close()?;
        Ok(())
    }

    /// Copies `total` bytes in `size`-byte pieces between two buffers (the
    /// same pieces as the ring's messages); returns bytes and ticks.
    fn memcpy_bandwidth(size: usize, total: u64) -> (u64, u64) {
        let src = vec![0x5au8; size];
        let mut dst = vec![0u8; size];
        let n = (total / size as u64).max(1);
        let t0 = time::now();
        for _ in 0..n {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        }
        let t1 = time::now();
        (n * size as u64, t1 - t0)
    }
}
