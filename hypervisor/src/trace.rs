//! The trace ring writer: appends records to one CPU's buffer (a
//! [`TraceHeader`] and its records, laid out as `parapet_abi::trace` says)
//! without ever waiting for the reader. Portable; `hv::trace` owns the
//! buffers in physical memory, decides what to record and when.

use core::sync::atomic::{AtomicU64, Ordering};

use parapet_abi::trace::{TraceHeader, TraceRecord};

/// One CPU's ring, borrowed for the duration of a write.
pub struct Ring<'a> {
    /// The writer's published count of records (the header's `head`), read
    /// by the host while the writer runs.
    head: &'a AtomicU64,
    records: &'a mut [TraceRecord],
}

impl<'a> Ring<'a> {
    /// The ring over `head` (the header's `head` field) and `records`.
    pub fn new(head: &'a AtomicU64, records: &'a mut [TraceRecord]) -> Self {
        Self { head, records }
    }

    /// Appends `rec`, overwriting the oldest record when the ring is full
    /// (the reader counts those from `head`). Publishes the record with a
    /// release store of `head`, so a reader that sees `head` sees the record.
    pub fn push(&mut self, rec: TraceRecord) {
        let Ok(cap) = u64::try_from(self.records.len()) else {
            return;
        };
        if cap == 0 {
            return;
        }
        let n = self.head.load(Ordering::Relaxed);
        // `n % cap < cap = records.len()`, so the index fits and is in range.
        if let Some(slot) = usize::try_from(n % cap)
            .ok()
            .and_then(|i| self.records.get_mut(i))
        {
            *slot = rec;
        }
        self.head.store(n + 1, Ordering::Release);
    }
}

/// Size in bytes of a buffer of `kib` KiB rounded up to whole 4 KiB frames,
/// and the number of frames.
pub fn buffer_frames(kib: u64) -> (u64, u64) {
    let frames = (kib * 1024).div_ceil(4096);
    (frames * 4096, frames)
}

/// The header a buffer of `bytes` for `cpu` starts with.
pub fn header(cpu: u32, bytes: u64, freq: u64) -> TraceHeader {
    TraceHeader::new(cpu, bytes, freq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_abi::trace::{ReadCursor, TraceEvent, TraceVcpu};

    fn rec(i: u64) -> TraceRecord {
        TraceEvent::HvcEnter {
            v: TraceVcpu { domain: 1, vcpu: 0 },
            nr: u32::try_from(i).unwrap(),
        }
        .encode(i)
    }

    #[test]
    fn fills_then_wraps_and_the_reader_counts_the_loss() {
        let head = AtomicU64::new(0);
        let mut records = vec![TraceRecord::default(); 4];
        let mut ring = Ring::new(&head, &mut records);
        for i in 0..3 {
            ring.push(rec(i));
        }
        assert_eq!(head.load(Ordering::Relaxed), 3);
        for i in 3..10 {
            Ring::new(&head, &mut records).push(rec(i));
        }
        assert_eq!(head.load(Ordering::Relaxed), 10);
        // Slots hold records 8, 9, 6, 7.
        let ts: Vec<u64> = records.iter().map(|r| r.ts).collect();
        assert_eq!(ts, [8, 9, 6, 7]);
        let mut cursor = ReadCursor::default();
        let range = cursor.plan(10, 4);
        assert_eq!(range, 6..10);
        assert_eq!(cursor.lost, 6);
    }

    #[test]
    fn an_empty_ring_ignores_records() {
        let head = AtomicU64::new(0);
        let mut records: Vec<TraceRecord> = Vec::new();
        Ring::new(&head, &mut records).push(rec(1));
        assert_eq!(head.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn buffer_sizes_round_up_to_frames() {
        assert_eq!(buffer_frames(1024), (1 << 20, 256));
        assert_eq!(buffer_frames(1), (4096, 1));
        assert_eq!(buffer_frames(5), (8192, 2));
        assert_eq!(header(1, 1 << 20, 100).capacity, ((1 << 20) - 64) / 32);
    }
}
