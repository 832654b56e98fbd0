//! A guest that uses its virtual disk (`vbd0`, served by the driver domain's
//! blkback over a ring, grants and an event channel):
//!
//! 1. keeps a boot counter in sector 0: reads it, adds one, writes it back and
//!    flushes, so that each boot prints the next number (the image file on the
//!    host keeps it between runs);
//! 2. writes 256 KiB of a pattern that depends on the counter, reads it back
//!    and compares (several requests in flight);
//! 3. checks that a read past the end of the disk is refused.
//!
//! With `mode=steady rounds=N [pause_ms=M]` it keeps the disk busy instead,
//! to show that it survives a restart of the driver domain: each round
//! writes a 4 KiB block of its own, flushes, reads it back and compares,
//! then pauses (default 100 ms). A round that fails because the backend went
//! away (`Disconnected`) is run again — the next call reconnects to the
//! restarted backend — and at the end every block is read back once more.
//! It prints `disk: round R/N ok` per round and a last line that says how
//! many reconnects happened and whether all data verified.
//!
//! With `mode=hostile` it plays a hostile frontend instead: malformed
//! requests (a grant it never gave, sectors past its disk, a segment past its
//! page, no segments, an unknown operation) must each get an error answer, and
//! a corrupted ring index must get it disconnected — while the other guests'
//! disks keep working.
//!
//! Command line: `backend=NAME` (default `driver`), `mode=hostile`,
//! `mode=steady rounds=N pause_ms=M`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("disk-guest is a bare-metal image: build it with `cargo parapet build`");
}

#[cfg(target_os = "none")]
mod guest {
    extern crate alloc;
    use alloc::vec;

    use parapet_frontends::blkfront::{BlkError, Blkfront};
    use parapet_guest::abi::blkif::{BlkOp, BlkRequest, BlkSegment, BlkStatus};
    use parapet_guest::abi::StartInfo;
    use parapet_guest::{cmdline, println, store, time};

    parapet_guest::entry!(main);

    const MAGIC: &[u8; 8] = b"PRPTDISK";
    const PATTERN_SECTOR: u64 = 64;
    const PATTERN_BYTES: usize = 256 * 1024;

    fn pattern(counter: u64, i: usize) -> u8 {
        (i as u64).wrapping_mul(2654435761).wrapping_add(counter) as u8 ^ (i >> 9) as u8
    }

    fn run(disk: &mut Blkfront) -> Result<(), BlkError> {
        let mut sector0 = [0u8; 512];
        disk.read(0, &mut sector0)?;
        let previous = if &sector0[..8] == MAGIC {
            u64::from_le_bytes(sector0[8..16].try_into().unwrap_or_default())
        } else {
            0
        };
        let counter = previous + 1;
        sector0[..8].copy_from_slice(MAGIC);
        sector0[8..16].copy_from_slice(&counter.to_le_bytes());
        disk.write(0, &sector0)?;
        disk.flush()?;
        println!("disk: boot counter {counter} (was {previous})");

        let data: alloc::vec::Vec<u8> = (0..PATTERN_BYTES).map(|i| pattern(counter, i)).collect();
        disk.write(PATTERN_SECTOR, &data)?;
        let mut back = vec![0u8; PATTERN_BYTES];
        disk.read(PATTERN_SECTOR, &mut back)?;
        let ok = back == data;
        let stats = disk.stats();
        println!(
            "disk: wrote and read back {} KiB: {} ({} requests, at most {} in flight)",
            PATTERN_BYTES / 1024,
            if ok { "ok" } else { "MISMATCH" },
            stats.requests,
            stats.max_inflight
        );
        if !ok {
            return Err(BlkError::Protocol("read back differs"));
        }
        let end = disk.info().sectors;
        match disk.read(end - 1, &mut [0u8; 1024]) {
            Err(BlkError::Inval) => println!("disk: a read past the end is refused: ok"),
            other => {
                println!("disk: a read past the end gave {other:?}");
                return Err(BlkError::Protocol("read past the end accepted"));
            }
        }
        Ok(())
    }

    /// Where the steady rounds' blocks start, past the boot counter and the
    /// 256 KiB pattern.
    const STEADY_SECTOR: u64 = PATTERN_SECTOR + (PATTERN_BYTES / 512) as u64;
    const STEADY_BLOCK: usize = 4096;
    /// Attempts per round: the first, plus retries after a disconnection.
    const STEADY_ATTEMPTS: u32 = 4;

    fn steady_block(nonce: u64, round: u64) -> alloc::vec::Vec<u8> {
        (0..STEADY_BLOCK)
            .map(|i| pattern(nonce ^ round.wrapping_mul(0x9e37_79b9), i))
            .collect()
    }

    /// One round: write the block, flush, read it back and compare.
    fn steady_round(disk: &mut Blkfront, sector: u64, data: &[u8]) -> Result<bool, BlkError> {
        disk.write(sector, data)?;
        disk.flush()?;
        let mut back = vec![0u8; data.len()];
        disk.read(sector, &mut back)?;
        Ok(back == data)
    }

    /// `mode=steady`: rounds of write, flush, read back, retried when the
    /// backend goes away; true if every block verified, also at the end.
    fn steady(disk: &mut Blkfront, rounds: u64, pause: time::Duration) -> bool {
        let end = disk.info().sectors;
        let per_block = (STEADY_BLOCK / 512) as u64;
        if STEADY_SECTOR + rounds * per_block > end {
            println!("disk: steady: {rounds} rounds do not fit on {end} sectors");
            return false;
        }
        // Different on every boot, so that a block left by an earlier run
        // cannot pass for this one's.
        let nonce = time::now();
        let mut disconnections = 0u64;
        for round in 1..=rounds {
            let sector = STEADY_SECTOR + (round - 1) * per_block;
            let data = steady_block(nonce, round);
            let mut attempt = 1;
            loop {
                match steady_round(disk, sector, &data) {
                    Ok(true) => break,
                    Ok(false) => {
                        println!("disk: round {round}/{rounds}: read back differs (MISMATCH)");
                        return false;
                    }
                    Err(BlkError::Disconnected) if attempt < STEADY_ATTEMPTS => {
                        disconnections += 1;
                        println!(
                            "disk: round {round}/{rounds}: the backend went away; retrying (attempt {})",
                            attempt + 1
                        );
                        attempt += 1;
                    }
                    Err(e) => {
                        println!("disk: round {round}/{rounds}: FAILED: {e}");
                        return false;
                    }
                }
            }
            println!(
                "disk: round {round}/{rounds} ok (reconnects so far: {})",
                disk.stats().reconnects
            );
            if time::sleep(pause).is_err() {
                println!("disk: steady: cannot sleep");
                return false;
            }
        }
        // Everything written before, during and after the disconnections is
        // there.
        let mut verified = 0;
        let mut back = vec![0u8; STEADY_BLOCK];
        for round in 1..=rounds {
            let sector = STEADY_SECTOR + (round - 1) * per_block;
            let mut result = disk.read(sector, &mut back);
            if result == Err(BlkError::Disconnected) {
                disconnections += 1;
                result = disk.read(sector, &mut back);
            }
            match result {
                Ok(()) if back == steady_block(nonce, round) => verified += 1,
                Ok(()) => println!("disk: steady: block of round {round} differs (MISMATCH)"),
                Err(e) => println!("disk: steady: block of round {round}: {e}"),
            }
        }
        let stats = disk.stats();
        let ok = verified == rounds;
        println!(
            "disk: steady: {rounds} rounds, {} reconnects ({disconnections} disconnections), {verified}/{rounds} blocks verified: {}",
            stats.reconnects,
            if ok { "all data verified" } else { "DATA LOST" }
        );
        ok
    }

    fn hostile(disk: &mut Blkfront) -> bool {
        let good = disk.pool_ref(0).unwrap_or(0);
        let seg = |gref, first_sect, last_sect| BlkSegment {
            gref,
            first_sect,
            last_sect,
            _pad: 0,
        };
        let req = |op: BlkOp, sector, segs: &[BlkSegment]| {
            let mut r = BlkRequest {
                sector,
                op: op.to_raw(),
                nr_segments: segs.len() as u8,
                ..Default::default()
            };
            r.segs[..segs.len()].copy_from_slice(segs);
            r
        };
        let end = disk.info().sectors;
        let mut many = req(BlkOp::Read, 0, &[seg(good, 0, 7)]);
        many.nr_segments = 200;
        let cases = [
            (
                "a sane read",
                req(BlkOp::Read, 0, &[seg(good, 0, 7)]),
                BlkStatus::Okay,
            ),
            (
                "a grant never given",
                req(BlkOp::Write, 0, &[seg(4000, 0, 7)]),
                BlkStatus::Error,
            ),
            (
                "sectors past the disk",
                req(BlkOp::Read, end - 4, &[seg(good, 0, 7)]),
                BlkStatus::Error,
            ),
            (
                "a sector number that wraps",
                req(BlkOp::Read, u64::MAX - 2, &[seg(good, 0, 7)]),
                BlkStatus::Error,
            ),
            (
                "a segment past its page",
                req(BlkOp::Read, 0, &[seg(good, 4, 9)]),
                BlkStatus::Error,
            ),
            ("no segments", req(BlkOp::Write, 0, &[]), BlkStatus::Error),
            ("200 segments", many, BlkStatus::Error),
            (
                "an unknown operation",
                req(BlkOp::Unknown(42), 0, &[]),
                BlkStatus::NotSupported,
            ),
        ];
        let mut ok = true;
        for (what, r, want) in cases {
            match disk.raw_request(&r) {
                Ok(got) if got == want => println!("hostile: {what}: {got:?} (ok)"),
                other => {
                    println!("hostile: {what}: got {other:?}, wanted {want:?} (FAILED)");
                    ok = false;
                }
            }
        }
        // A flood of bad requests, more than the ring holds in total.
        let bad = req(BlkOp::Read, end, &[seg(good, 0, 7)]);
        let refused = (0..100)
            .filter(|_| disk.raw_request(&bad) == Ok(BlkStatus::Error))
            .count();
        println!(
            "hostile: a flood of 100 bad requests: {refused} refused{}",
            if refused == 100 { " (ok)" } else { " (FAILED)" }
        );
        ok &= refused == 100;
        match disk.corrupt_ring(0x8000_0000) {
            Ok(()) => println!("hostile: a corrupted ring index: disconnected by the backend (ok)"),
            Err(e) => {
                println!("hostile: a corrupted ring index: {e} (FAILED)");
                ok = false;
            }
        }
        ok
    }

    fn main(info: &StartInfo) -> i32 {
        let backend_name = cmdline::get(info.cmdline(), "backend").unwrap_or("driver");
        let backend = match store::lookup(backend_name) {
            Ok(d) => d,
            Err(e) => {
                println!("disk: no backend domain {backend_name}: {e}");
                return 2;
            }
        };
        let mut disk = match Blkfront::connect(backend, "vbd0") {
            Ok(d) => d,
            Err(e) => {
                println!("disk: cannot connect vbd0: {e}");
                return 1;
            }
        };
        let i = disk.info();
        println!(
            "disk: vbd0 connected, {} sectors ({} KiB), {}",
            i.sectors,
            i.sectors / 2,
            if i.readonly {
                "read-only"
            } else {
                "read-write"
            }
        );
        if cmdline::get(info.cmdline(), "mode") == Some("steady") {
            let number = |key, default| {
                cmdline::get(info.cmdline(), key).map_or(Some(default), |v| v.parse::<u64>().ok())
            };
            let (Some(rounds), Some(pause_ms)) = (number("rounds", 20), number("pause_ms", 100))
            else {
                println!("disk: steady: rounds= and pause_ms= take numbers");
                return 2;
            };
            let ok = steady(&mut disk, rounds, time::Duration::from_millis(pause_ms));
            let _ = disk.close();
            println!("disk: {}", if ok { "done" } else { "FAILED" });
            return (!ok).into();
        }
        if cmdline::get(info.cmdline(), "mode") == Some("hostile") {
            let ok = hostile(&mut disk);
            println!("hostile: {}", if ok { "done" } else { "FAILED" });
            return (!ok).into();
        }
        let result = run(&mut disk);
        let _ = disk.close();
        match result {
            Ok(()) => {
                println!("disk: done");
                0
            }
            Err(e) => {
                println!("disk: FAILED: {e}");
                1
            }
        }
    }
}
