//! The byte-channel benchmark and transfer check. Two instances: `rx` (the
//! channel's server) and `tx` (its client).
//!
//! **Transfer check** (tx `kib=N`, the `chan*.toml` scenarios): for each
//! message size, `tx` streams `N` KiB of messages of pseudo-random bytes,
//! then the stream's digest; `rx` reads them into one buffer and checks every
//! byte through the digest.
//!
//! **Windows** (no `kib=`, `bench ring`): for each size, `rx` first times its
//! own memcpy of the same messages over `windows` windows of at least
//! `window-ms` each, then tells `tx` to go; `tx` streams batches of messages
//! (each batch followed by its digest, or in `work=net` mode by the running
//! FNV-1a of the stream) until `rx` tells it to stop, and `rx` times
//! `windows` windows of the stream back to back, each ending at the first
//! batch boundary after `window-ms` of guest time (`CNTVCT`). With a second
//! vCPU (the 2-CPU scenario), `rx` also times the cross-CPU copy reference
//! between its memcpy and the stream (`xcpu.rs`). The transport
//! alone is timed (one copy in, one copy out): after each window's clock
//! stopped, `rx` checks every byte of the window's last batch against its
//! digest. With `work=net` (tx), `tx` writes `bench net`'s byte pattern into
//! each message and `rx` checksums every byte it reads with FNV-1a (the work
//! net-guest does on the TCP path), inside the timed loop, and the running
//! checksum is compared at every batch: every byte is checked.
//!
//! **Instructions** (rx `icount`, under QEMU `-icount shift=0` on one CPU):
//! `rx` counts the instructions the CPU retires (PMU `PMEVCNTR0_EL0`, EL1
//! and EL2: both guests, the hypervisor) over `msgs=M` messages (default
//! 1024) after a warm-up of 128 (and before a tail of 128, so that `tx`
//! still streams when the count ends), and the instructions of its own memcpy of
//! one message (the least of 16 rounds of 64 copies). The stream is the
//! transport alone, as in Xen's benchmark: `rx` asks for warm-up + `M`
//! messages (`ICOUNT`), `tx` answers with their count and their stream
//! digest (computed before it sends), pads the stream so that each message
//! fills whole ring slots, and writes the messages back to back; `rx` reads
//! them into one buffer and, after the count, checks every byte against the
//! digest.
//!
//! Command line: `tx` or `rx`; `peer=NAME` (default `ring-rx` / `ring-tx`);
//! `sizes=64,256,...` (tx; default 64 B to 64 KiB); `kib=N` (tx: transfer
//! check); `work=net` (tx); `crash-after=BYTES` (tx: crash after sending that
//! much, to test that the reader gets a clean error; rx: crash after
//! receiving that much, to test the writer's side); `ring-pages=N` (rx);
//! `windows=N` (rx, default 5), `window-ms=MS` (rx, default 250); `icount`
//! and `msgs=M` (rx).
//!
//! Output lines (parsed by `cargo parapet bench ring`; the grammar is in
//! `tools/src/bench/mod.rs`): `bench ring tx size=.. msgs=.. notify=..`;
//! per window `bench ring memcpy size=.. n=.. bytes=.. ticks=.. freq=..`,
//! `bench ring xcopy` (the same fields; 2 CPUs) and `bench ring window size=.. n=.. msgs=.. bytes=.. ticks=.. freq=.. notify=..
//! switches=.. checksum=ok|bad`; `bench ring icount size=.. slots=.. msgs=..
//! instructions=.. memcpy_msgs=.. memcpy_instructions=.. checksum=ok|bad`;
//! per size `bench ring rx size=.. msgs=.. bytes=.. notify=.. switches=..
//! windows=.. work=copy|net checksum=ok|bad`; `bench ring done sizes=..`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("ring-bench is a bare-metal image: build it with `cargo parapet build`");
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod xcpu;

#[cfg(target_os = "none")]
mod guest {
    use alloc::vec;
    use alloc::vec::Vec;
    use core::hint::black_box;

    use parapet_examples::{digest, stream};
    use parapet_frontends::vchan::{ChanError, Vchan};
    use parapet_guest::abi::hypercall::ShutdownReason;
    use parapet_guest::abi::StartInfo;
    use parapet_guest::{cmdline, event, hypercall, pmu, println, store, time};

    parapet_guest::entry!(main);

    const DEFAULT_SIZES: [u32; 6] = [64, 256, 1024, 4096, 16384, 65536];
    const CHANNEL: &str = "bench";
    /// Distinct payload offsets (so messages differ).
    const OFFSETS: usize = 64;
    /// Bytes per batch in the windowed stream (at least one message).
    const BATCH_BYTES: usize = 64 * 1024;
    /// rx → tx: start streaming.
    const GO: u8 = 1;
    /// rx → tx: end the stream after the current batch.
    const STOP: u8 = 2;
    /// rx → tx: send the number of messages in the next control block, back
    /// to back (the instruction count).
    const ICOUNT: u8 = 3;
    /// Messages read (untimed) before the instructions are counted.
    const ICOUNT_WARMUP: u64 = 128;
    /// Messages tx sends after the counted ones (more than a ring holds), so
    /// that it is still streaming, not finishing, when the count ends.
    const ICOUNT_TAIL: u64 = 128;
    /// The memcpy rounds of the instruction count (the least is taken).
    const MEMCPY_ROUNDS: usize = 16;
    /// Copies per memcpy round.
    const MEMCPY_ROUND_MSGS: u64 = 64;

    /// What each end does per message besides the copies.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Work {
        /// Nothing: pseudo-random payloads, digests precomputed (tx) and
        /// checked after the clock stops (rx).
        Copy,
        /// `bench net`'s pattern written into each message (tx) and FNV-1a
        /// over every byte read (rx), in the timed loop.
        Net,
    }

    /// How rx measures the stream.
    pub(crate) struct Measure {
        pub(crate) windows: u32,
        pub(crate) window_ticks: u64,
        /// `Some(msgs)`: count instructions over that many messages instead.
        icount: Option<u64>,
    }

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
        let num = |key: &str, default: u64| -> u64 {
            cmdline::get(cmd, key)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let result = if rx {
            let window_ms = num("window-ms", 250).max(1);
            let measure = Measure {
                windows: num("windows", 5).clamp(1, 1000) as u32,
                window_ticks: time::frequency() * window_ms / 1000,
                icount: cmdline::has(cmd, "icount").then(|| num("msgs", 1024).max(1)),
            };
            receive(
                peer,
                num("ring-pages", 33) as u32,
                cmdline::get(cmd, "crash-after").and_then(|v| v.parse().ok()),
                &measure,
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

    /// Bytes of a control block (up to 8 little-endian words, zero-padded):
    /// a whole cache line, so that the messages between blocks stay aligned
    /// in the ring as they are in the buffers.
    const CTRL: usize = 64;

    /// Writes a control block holding `words`.
    fn write_ctrl(chan: &mut Vchan, words: &[u64]) -> Result<(), ChanError> {
        let mut b = [0u8; CTRL];
        for (i, w) in words.iter().enumerate() {
            b[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        chan.write_all(&b)
    }

    /// Reads a control block's first `N` words.
    fn read_ctrl<const N: usize>(chan: &mut Vchan) -> Result<[u64; N], ChanError> {
        let mut b = [0u8; CTRL];
        chan.read_exact(&mut b)?;
        let mut w = [0u64; N];
        for (i, v) in w.iter_mut().enumerate() {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[8 * i..8 * i + 8]);
            *v = u64::from_le_bytes(x);
        }
        Ok(w)
    }

    /// A size's header, tx → rx: size, messages (0: a windowed stream), work.
    fn header(chan: &mut Vchan, size: u32, msgs: u32, work: Work) -> Result<(), ChanError> {
        write_ctrl(
            chan,
            &[
                u64::from(size),
                u64::from(msgs),
                u64::from(work == Work::Net),
            ],
        )
    }

    /// Messages per batch of the windowed stream.
    pub(crate) fn batch_msgs(size: u32) -> u64 {
        (BATCH_BYTES / size as usize).max(1) as u64
    }

    fn read_u64(chan: &mut Vchan) -> Result<u64, ChanError> {
        Ok(read_ctrl::<1>(chan)?[0])
    }

    /// The sender's state across the messages of one size.
    struct Tx {
        payload: Vec<u8>,
        digests: Vec<u64>,
        size: usize,
        work: Work,
        /// Bytes sent of this size (the pattern's offset in `Net` mode).
        sent: u64,
        /// `Net`: FNV-1a of the stream so far.
        fnv: u64,
        crash_after: Option<u64>,
        sent_total: u64,
    }

    impl Tx {
        /// Sends message `i`; returns its digest (`Copy`) or 0.
        fn message(&mut self, chan: &mut Vchan, i: u64) -> Result<u64, ChanError> {
            let d = match self.work {
                Work::Copy => {
                    let o = i as usize % OFFSETS;
                    chan.write_all(&self.payload[o * 64..o * 64 + self.size])?;
                    self.digests[o]
                }
                Work::Net => {
                    let m = &mut self.payload[..self.size];
                    stream::fill(self.sent, m);
                    self.fnv = stream::fnv(self.fnv, m);
                    chan.write_all(m)?;
                    0
                }
            };
            self.sent += self.size as u64;
            self.sent_total += self.size as u64;
            if self.crash_after.is_some_and(|c| self.sent_total >= c) {
                println!("tx: crashing on purpose after {} bytes", self.sent_total);
                hypercall::shutdown(ShutdownReason::Crash, 3);
            }
            Ok(d)
        }
    }

    fn send(peer: u32, cmd: &str) -> Result<(), ChanError> {
        let kib: Option<u64> = cmdline::get(cmd, "kib").and_then(|v| v.parse().ok());
        // The transfer check (`kib=`) sends the pseudo-random payloads only.
        let work = if kib.is_none() && cmdline::get(cmd, "work") == Some("net") {
            Work::Net
        } else {
            Work::Copy
        };
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
        let mut tx = Tx {
            payload: vec![0u8; max + OFFSETS * 64],
            digests: Vec::new(),
            size: 0,
            work,
            sent: 0,
            fnv: stream::FNV_START,
            crash_after: cmdline::get(cmd, "crash-after").and_then(|v| v.parse().ok()),
            sent_total: 0,
        };
        digest::fill(&mut tx.payload, 0x5eed);
        for &size in &sizes {
            tx.size = size as usize;
            tx.sent = 0;
            tx.fnv = stream::FNV_START;
            // Per-offset digests, computed before the clock starts.
            tx.digests = (0..OFFSETS)
                .map(|o| digest::message(&tx.payload[o * 64..o * 64 + size as usize]))
                .collect();
            let before = event::stats().map(|s| s.events_sent).unwrap_or(0);
            let msgs = match kib {
                Some(kib) => {
                    let msgs = ((kib * 1024) / u64::from(size)).clamp(16, 1 << 18) as u32;
                    header(&mut chan, size, msgs, Work::Copy)?;
                    let mut stream = 0u64;
                    for i in 0..u64::from(msgs) {
                        stream = digest::fold(stream, tx.message(&mut chan, i)?);
                    }
                    write_ctrl(&mut chan, &[stream])?;
                    u64::from(msgs)
                }
                None => stream_tx(&mut chan, &mut tx)?,
            };
            let after = event::stats().map(|s| s.events_sent).unwrap_or(0);
            println!(
                "bench ring tx size={size} msgs={msgs} notify={}",
                after - before
            );
        }
        header(&mut chan, 0, 0, Work::Copy)?;
        println!(
            "tx: waits {} ({} ticks), polls that found space {}, notifications {}",
            chan.stats.waits, chan.stats.wait_ticks, chan.stats.polls_ok, chan.stats.notifications
        );
        chan.close()?;
        Ok(())
    }

    /// The windowed stream of one size: waits for `GO`, sends batches
    /// (`[count]`, `count` messages, `[digest or running FNV-1a]`, each
    /// `[…]` a control block) until rx says `STOP`, then `[0, messages sent,
    /// FNV-1a]`. Returns the messages.
    fn stream_tx(chan: &mut Vchan, tx: &mut Tx) -> Result<u64, ChanError> {
        header(chan, tx.size as u32, 0, tx.work)?;
        let mut cmd = [0u8; 1];
        chan.read_exact(&mut cmd)?;
        if cmd[0] == ICOUNT {
            return icount_tx(chan, tx);
        }
        if cmd[0] != GO {
            return Err(ChanError::BadControl("expected GO"));
        }
        let batch = batch_msgs(tx.size as u32);
        let mut msgs = 0u64;
        loop {
            write_ctrl(chan, &[batch])?;
            let mut digest = 0u64;
            for _ in 0..batch {
                digest = digest::fold(digest, tx.message(chan, msgs)?);
                msgs += 1;
            }
            let check = if tx.work == Work::Net { tx.fnv } else { digest };
            write_ctrl(chan, &[check])?;
            // Never blocks: STOP is there or not yet.
            if chan.read(&mut cmd)? == 1 {
                if cmd[0] != STOP {
                    return Err(ChanError::BadControl("expected STOP"));
                }
                break;
            }
        }
        write_ctrl(chan, &[0, msgs, tx.fnv])?;
        Ok(msgs)
    }

    /// The instruction count's stream (see the module docs): `[messages,
    /// digest, pad]`, `pad` bytes, the messages back to back, then `[0,
    /// messages, 0]`. Nothing but the writes in the loop: the digest is
    /// folded before it.
    // Out of line: the loop gets its own registers, not `main`'s.
    #[inline(never)]
    fn icount_tx(chan: &mut Vchan, tx: &mut Tx) -> Result<u64, ChanError> {
        let [msgs] = read_ctrl::<1>(chan)?;
        if msgs == 0 || msgs > 1 << 20 {
            return Err(ChanError::BadControl("icount message count"));
        }
        let size = tx.size;
        let digest = (0..msgs).fold(0u64, |d, i| {
            digest::fold(d, tx.digests[i as usize % OFFSETS])
        });
        // After the control block, the first message starts a ring slot.
        let at = chan.tx_position() as usize + CTRL;
        let pad = (size - at % size) % size;
        write_ctrl(chan, &[msgs, digest, pad as u64])?;
        chan.write_all(&vec![0u8; pad])?;
        let pieces: [&[u8]; OFFSETS] = core::array::from_fn(|o| &tx.payload[o * 64..o * 64 + size]);
        // Message `i` is `pieces[i % OFFSETS]`.
        for _ in 0..msgs / OFFSETS as u64 {
            for piece in &pieces {
                chan.write_all(piece)?;
            }
        }
        for piece in &pieces[..(msgs % OFFSETS as u64) as usize] {
            chan.write_all(piece)?;
        }
        tx.sent += msgs * size as u64;
        tx.sent_total += msgs * size as u64;
        write_ctrl(chan, &[0, msgs, 0])?;
        Ok(msgs)
    }

    fn receive(
        peer: u32,
        ring_pages: u32,
        crash_after: Option<u64>,
        measure: &Measure,
    ) -> Result<(), ChanError> {
        let mut chan = Vchan::listen(peer, CHANNEL, ring_pages)?;
        println!(
            "rx: connected, ring {} KiB per direction",
            chan.ring_size() / 1024
        );
        if measure.icount.is_some() {
            pmu::enable_instruction_counter();
        }
        let mut rx = Rx {
            total: 0,
            crash_after,
            xcpu: crate::xcpu::Reference::start(chan.ring_size() as usize)?,
        };
        let mut done = 0;
        let mut all_ok = true;
        loop {
            let [size, msgs, work] = match read_ctrl::<3>(&mut chan) {
                Ok(h) => h,
                Err(e) => {
                    println!("rx: channel ended after {} bytes: {e}", rx.total);
                    return Err(e);
                }
            };
            if size == 0 {
                break;
            }
            if size > 1 << 20 || msgs > 1 << 18 {
                println!("rx: bad message size {size} or count {msgs}");
                return Err(ChanError::BadControl("message size"));
            }
            let (size, msgs) = (size as u32, msgs as u32);
            let work = if work == 1 { Work::Net } else { Work::Copy };
            let ok = if msgs != 0 {
                rx.transfer(&mut chan, size, msgs)?
            } else {
                rx.windows(&mut chan, size, work, measure)?
            };
            if !ok {
                println!("rx: checksum mismatch at size {size}");
                all_ok = false;
            }
            done += 1;
        }
        println!("bench ring done sizes={done}");
        println!(
            "rx: received {} bytes, {}; waits {}, notifications {}",
            rx.total,
            if all_ok {
                "all checksums verified"
            } else {
                "CHECKSUM MISMATCH"
            },
            chan.stats.waits,
            chan.stats.notifications
        );
        chan.close()?;
        Ok(())
    }

    /// The receiver's state across sizes.
    struct Rx {
        total: u64,
        crash_after: Option<u64>,
        /// The cross-CPU copy reference, when rx has a second vCPU.
        xcpu: Option<crate::xcpu::Reference>,
    }

    impl Rx {
        fn read_message(&mut self, chan: &mut Vchan, m: &mut [u8]) -> Result<(), ChanError> {
            if let Err(e) = chan.read_exact(m) {
                println!("rx: channel ended after {} bytes: {e}", self.total);
                return Err(e);
            }
            self.total += m.len() as u64;
            if self.crash_after.is_some_and(|c| self.total >= c) {
                println!("rx: crashing on purpose after {} bytes", self.total);
                hypercall::shutdown(ShutdownReason::Crash, 3);
            }
            Ok(())
        }

        /// The transfer check of one size: `msgs` messages into one buffer,
        /// then the digest. Returns whether it matched.
        fn transfer(&mut self, chan: &mut Vchan, size: u32, msgs: u32) -> Result<bool, ChanError> {
            let mut buf = vec![0u8; size as usize * msgs as usize];
            let s0 = event::stats().unwrap_or_default();
            let t0 = time::now();
            for m in buf.chunks_exact_mut(size as usize) {
                self.read_message(chan, m)?;
            }
            let t1 = time::now();
            let s1 = event::stats().unwrap_or_default();
            let stream = digest_of(&buf, size as usize);
            drop(buf);
            let ok = read_u64(chan)? == stream;
            println!(
                "bench ring rx size={size} msgs={msgs} bytes={} ticks={} freq={} notify={} switches={} windows=0 work=copy checksum={}",
                u64::from(size) * u64::from(msgs),
                t1 - t0,
                time::frequency(),
                s1.events_sent - s0.events_sent,
                s1.world_switches - s0.world_switches,
                ok_text(ok)
            );
            Ok(ok)
        }

        /// The windowed measurement of one size (see the module docs).
        fn windows(
            &mut self,
            chan: &mut Vchan,
            size: u32,
            work: Work,
            measure: &Measure,
        ) -> Result<bool, ChanError> {
            let freq = time::frequency();
            let sz = size as usize;
            if let Some(target) = measure.icount {
                return self.icount(chan, size, target);
            }
            memcpy_windows(size, measure);
            if let Some(x) = self.xcpu.as_mut() {
                x.windows(size, measure)?;
            }
            chan.write_all(&[GO])?;
            let s0 = event::stats().unwrap_or_default();
            let mut st = Stream {
                size: sz,
                work,
                buf: vec![0u8; batch_msgs(size) as usize * sz],
                fnv: stream::FNV_START,
                msgs: 0,
                ok: true,
                ended: false,
                last: 0,
                last_check: 0,
                end: (0, 0),
            };
            {
                for n in 0..measure.windows {
                    if st.ended {
                        break;
                    }
                    let e0 = event::stats().unwrap_or_default();
                    let m0 = st.msgs;
                    let t0 = time::now();
                    let mut t1 = t0;
                    while t1 - t0 < measure.window_ticks && st.batch(self, chan)? {
                        t1 = time::now();
                    }
                    let e1 = event::stats().unwrap_or_default();
                    // After the clock stopped: the window's last batch, every byte.
                    let good = st.check_last();
                    let wm = st.msgs - m0;
                    println!(
                        "bench ring window size={size} n={n} msgs={wm} bytes={} ticks={} freq={freq} notify={} switches={} checksum={}",
                        wm * u64::from(size),
                        t1 - t0,
                        e1.events_sent - e0.events_sent,
                        e1.world_switches - e0.world_switches,
                        ok_text(good)
                    );
                }
            }
            chan.write_all(&[STOP])?;
            while !st.ended && st.batch(self, chan)? {}
            let (sent, sent_fnv) = st.end;
            let s1 = event::stats().unwrap_or_default();
            let (msgs, mut ok) = (st.msgs, st.ok);
            if sent != msgs {
                println!("rx: size {size}: tx sent {sent} message(s), {msgs} arrived");
                ok = false;
            }
            if work == Work::Net && sent_fnv != st.fnv {
                ok = false;
            }
            println!(
                "bench ring rx size={size} msgs={msgs} bytes={} notify={} switches={} windows={} work={} checksum={}",
                msgs * u64::from(size),
                s1.events_sent - s0.events_sent,
                s1.world_switches - s0.world_switches,
                measure.windows,
                if work == Work::Net { "net" } else { "copy" },
                ok_text(ok)
            );
            Ok(ok)
        }
    }

    impl Rx {
        /// The instruction count of one size (see the module docs): warm-up +
        /// `target` messages back to back into one buffer, the instructions
        /// of the last `target` counted, then every byte checked against
        /// tx's digest.
        #[inline(never)]
        fn icount(&mut self, chan: &mut Vchan, size: u32, target: u64) -> Result<bool, ChanError> {
            let sz = size as usize;
            let (memcpy_msgs, memcpy_instr) = memcpy_instructions(sz);
            let total = ICOUNT_WARMUP + target + ICOUNT_TAIL;
            let s0 = event::stats().unwrap_or_default();
            chan.write_all(&[ICOUNT])?;
            write_ctrl(chan, &[total])?;
            let [msgs, digest, pad] = read_ctrl::<3>(chan)?;
            if msgs != total || pad >= u64::from(size) {
                return Err(ChanError::BadControl("icount stream header"));
            }
            let mut buf = vec![0u8; total as usize * sz];
            chan.read_exact(&mut buf[..pad as usize])?;
            let (warm, rest) = buf.split_at_mut(ICOUNT_WARMUP as usize * sz);
            let (counted, tail) = rest.split_at_mut(target as usize * sz);
            for m in warm.chunks_exact_mut(sz) {
                chan.read_exact(m)?;
            }
            let i0 = pmu::read_instructions();
            for m in counted.chunks_exact_mut(sz) {
                chan.read_exact(m)?;
            }
            let i1 = pmu::read_instructions();
            for m in tail.chunks_exact_mut(sz) {
                chan.read_exact(m)?;
            }
            // After the count: every byte of every message.
            let mut ok = digest_of(&buf, sz) == digest;
            let [end, sent, _] = read_ctrl::<3>(chan)?;
            if end != 0 || sent != total {
                println!("rx: size {size}: tx sent {sent} message(s), {total} asked for");
                ok = false;
            }
            self.total += total * u64::from(size);
            let s1 = event::stats().unwrap_or_default();
            println!(
                "bench ring icount size={size} slots={} msgs={target} instructions={} memcpy_msgs={memcpy_msgs} memcpy_instructions={memcpy_instr} checksum={}",
                chan.ring_size() / size,
                (i1 as u32).wrapping_sub(i0 as u32),
                ok_text(ok)
            );
            println!(
                "bench ring rx size={size} msgs={total} bytes={} notify={} switches={} windows=0 work=copy checksum={}",
                total * u64::from(size),
                s1.events_sent - s0.events_sent,
                s1.world_switches - s0.world_switches,
                ok_text(ok)
            );
            Ok(ok)
        }
    }

    /// rx's side of one size's windowed stream.
    struct Stream {
        size: usize,
        work: Work,
        /// The current batch.
        buf: Vec<u8>,
        /// `Net`: FNV-1a of the stream so far.
        fnv: u64,
        msgs: u64,
        /// Every check so far matched.
        ok: bool,
        /// tx ended the stream.
        ended: bool,
        /// Messages in `buf`, and their digest as tx sent it (`Copy`).
        last: u64,
        last_check: u64,
        /// The end block: messages sent, FNV-1a of the stream (`Net`).
        end: (u64, u64),
    }

    impl Stream {
        /// Reads one batch into `buf` (`[count]`, the messages, the check
        /// word); `false` at the end of the stream (`[0]`). A `Net` batch's
        /// check word is the running FNV-1a, compared here; a `Copy` batch's
        /// digest is kept for [`Stream::check_last`].
        fn batch(&mut self, rx: &mut Rx, chan: &mut Vchan) -> Result<bool, ChanError> {
            let [count, sent, fnv] = read_ctrl::<3>(chan)?;
            if count == 0 {
                self.ended = true;
                self.end = (sent, fnv);
                return Ok(false);
            }
            let bytes = count as usize * self.size;
            if count > (self.buf.len() / self.size) as u64 {
                return Err(ChanError::BadControl("batch too large"));
            }
            for m in self.buf[..bytes].chunks_exact_mut(self.size) {
                rx.read_message(chan, m)?;
                if self.work == Work::Net {
                    self.fnv = stream::fnv(self.fnv, m);
                }
            }
            let check = read_u64(chan)?;
            if self.work == Work::Net && check != self.fnv {
                self.ok = false;
            }
            self.msgs += count;
            (self.last, self.last_check) = (count, check);
            Ok(true)
        }

        /// Checks every byte of the last batch against its digest (`Copy`;
        /// `Net` batches were checked as they came).
        fn check_last(&mut self) -> bool {
            let good = self.work == Work::Net
                || digest_of(&self.buf[..self.last as usize * self.size], self.size)
                    == self.last_check;
            self.ok &= good;
            good
        }
    }

    fn ok_text(ok: bool) -> &'static str {
        if ok {
            "ok"
        } else {
            "bad"
        }
    }

    /// The stream digest of `size`-byte messages, as tx folds them.
    fn digest_of(buf: &[u8], size: usize) -> u64 {
        buf.chunks_exact(size)
            .fold(0u64, |acc, m| digest::fold(acc, digest::message(m)))
    }

    /// One copy of a message, as the reference: a fresh `size`-byte piece
    /// between two buffers.
    fn copy_one(dst: &mut [u8], src: &[u8]) {
        dst.copy_from_slice(black_box(src));
        black_box(dst);
    }

    /// `measure.windows` windows of at least `window_ticks` each, copying
    /// `size`-byte pieces with `piece` (a batch's worth between looks at the
    /// clock); prints one `bench ring KIND` line per window.
    pub(crate) fn copy_windows(kind: &str, size: u32, measure: &Measure, mut piece: impl FnMut()) {
        let per_look = batch_msgs(size);
        let freq = time::frequency();
        for n in 0..measure.windows {
            let mut copies = 0u64;
            let t0 = time::now();
            let mut t1 = t0;
            while t1 - t0 < measure.window_ticks {
                for _ in 0..per_look {
                    piece();
                }
                copies += per_look;
                t1 = time::now();
            }
            println!(
                "bench ring {kind} size={size} n={n} bytes={} ticks={} freq={freq}",
                copies * u64::from(size),
                t1 - t0
            );
        }
    }

    /// The memcpy windows of one size: copies between two private buffers.
    pub(crate) fn memcpy_windows(size: u32, measure: &Measure) {
        let sz = size as usize;
        let src = vec![0x5au8; sz];
        let mut dst = vec![0u8; sz];
        copy_windows("memcpy", size, measure, || copy_one(&mut dst, &src));
    }

    /// Instructions of `MEMCPY_ROUND_MSGS` copies of one message (the least
    /// of `MEMCPY_ROUNDS` rounds): `(copies, instructions)`.
    #[inline(never)]
    fn memcpy_instructions(size: usize) -> (u64, u64) {
        let src = vec![0x5au8; size];
        let mut dst = vec![0u8; size];
        let mut least = u64::MAX;
        for _ in 0..MEMCPY_ROUNDS {
            let i0 = pmu::read_instructions();
            for _ in 0..MEMCPY_ROUND_MSGS {
                copy_one(&mut dst, &src);
            }
            let i1 = pmu::read_instructions();
            least = least.min(u64::from((i1 as u32).wrapping_sub(i0 as u32)));
        }
        (MEMCPY_ROUND_MSGS, least)
    }
}
