//! Draining the hypervisor's trace buffers while the system runs: a thread
//! reads each CPU's ring through QEMU's monitor (`pmemsave`) every few
//! milliseconds, so guests are never stopped for it, and once more at the
//! end: when the machine powers off (QEMU runs with `-no-shutdown`, so the
//! memory is still there; the thread then quits QEMU), or before `parapet`
//! kills it.
//!
//! The buffers are found from the hypervisor's boot lines (`trace: CPU n
//! buffer at PA …`), the domain names from its `domain NAME (id N, …` lines.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use parapet_abi::trace::{ReadCursor, TraceHeader, TraceRecord, HEADER_SIZE, RECORD_SIZE};
use zerocopy::FromBytes;

use super::qmp::{Qmp, QmpError};
use super::{CpuTrace, Trace};

/// How often the rings are read while the system runs.
const PERIOD: Duration = Duration::from_millis(10);
/// How long to wait for the power-off once the hypervisor said it is done.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(2);
/// How long to wait for QEMU's monitor socket.
const CONNECT_PATIENCE: Duration = Duration::from_secs(20);

/// One buffer the hypervisor announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announced {
    /// Physical CPU.
    pub cpu: u32,
    /// Physical address.
    pub pa: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Reads `trace: CPU <n> buffer at PA <hex>, <bytes> bytes, …` out of a
/// console line.
pub fn parse_buffer_line(line: &str) -> Option<Announced> {
    let rest = &line[line.find("trace: CPU ")? + "trace: CPU ".len()..];
    let (cpu, rest) = rest.split_once(" buffer at PA ")?;
    let (pa, rest) = rest.split_once(", ")?;
    let (bytes, _) = rest.split_once(" bytes")?;
    Some(Announced {
        cpu: cpu.parse().ok()?,
        pa: u64::from_str_radix(pa.strip_prefix("0x")?, 16).ok()?,
        bytes: bytes.parse().ok()?,
    })
}

/// Reads `domain NAME (id N, …` out of a hypervisor console line.
pub fn parse_domain_line(line: &str) -> Option<(u8, String)> {
    let rest = &line[line.find("] domain ")? + "] domain ".len()..];
    let (name, rest) = rest.split_once(" (id ")?;
    let (id, _) = rest.split_once(',')?;
    Some((id.parse().ok()?, name.to_owned()))
}

#[derive(Default)]
struct Shared {
    buffers: Vec<Announced>,
    names: BTreeMap<u8, String>,
    result: Option<Result<Trace, String>>,
}

/// A running drain of one QEMU's trace buffers.
pub struct Recorder {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    ended: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

impl Recorder {
    /// Starts draining through the monitor socket `qmp` (QEMU is being
    /// started with it); `scratch` is a file for `pmemsave`.
    pub fn start(qmp: PathBuf, scratch: PathBuf) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let ended = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop, ended) =
                (Arc::clone(&shared), Arc::clone(&stop), Arc::clone(&ended));
            std::thread::spawn(move || {
                let r = drain(&qmp, scratch, &shared, &stop, &ended).map_err(|e| e.to_string());
                if let Ok(mut s) = shared.lock() {
                    s.result = Some(r);
                }
            })
        };
        Self {
            shared,
            stop,
            ended,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Looks at one console line for buffers and domain names.
    pub fn on_line(&self, line: &str) {
        let Ok(mut s) = self.shared.lock() else {
            return;
        };
        if let Some(b) = parse_buffer_line(line) {
            s.buffers.push(b);
        } else if let Some((id, name)) = parse_domain_line(line) {
            s.names.insert(id, name);
        }
    }

    /// The hypervisor said it is done and is powering the machine off: the
    /// drain waits for the power-off, reads the buffers a last time and
    /// quits QEMU (which `-no-shutdown` keeps alive until then).
    pub fn end_of_run(&self) {
        self.ended.store(true, Ordering::SeqCst);
    }

    /// Reads the buffers one last time and stops (QEMU must still be
    /// there). Called before QEMU is killed, and after it ended.
    pub fn finish(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }

    /// The trace recorded (after [`Self::finish`]), or why there is none.
    pub fn take(&self) -> Result<Trace, String> {
        self.finish();
        let mut s = self.shared.lock().map_err(|_| "trace state poisoned")?;
        let names = std::mem::take(&mut s.names);
        match s.result.take() {
            Some(Ok(mut t)) => {
                for (id, name) in names {
                    t.names.insert(id, name);
                }
                Ok(t)
            }
            Some(Err(e)) => Err(e),
            None => Err("the trace was not drained".into()),
        }
    }
}

/// One CPU's reading state.
struct Ring {
    pa: u64,
    header: TraceHeader,
    cursor: ReadCursor,
    records: Vec<TraceRecord>,
}

fn read_header(q: &mut Qmp, pa: u64) -> Result<TraceHeader, QmpError> {
    let bytes = q.read_phys(pa, HEADER_SIZE as u64)?;
    let h = TraceHeader::read_from_bytes(&bytes)
        .map_err(|_| QmpError::Protocol("short trace header".into()))?;
    h.check()
        .map_err(|e| QmpError::Protocol(format!("trace buffer at {pa:#x}: {e}")))?;
    Ok(h)
}

/// Copies the records `ring` has not read yet.
fn read_new(q: &mut Qmp, ring: &mut Ring) -> Result<(), QmpError> {
    let cap = ring.header.capacity;
    let head = read_header(q, ring.pa)?.head;
    let range = ring.cursor.plan(head, cap);
    if range.is_empty() {
        return Ok(());
    }
    // The range is at most one lap: read it in at most two pieces.
    let mut bytes = Vec::with_capacity(((range.end - range.start) as usize) * RECORD_SIZE);
    let mut n = range.start;
    while n < range.end {
        let slot = n % cap;
        let run = (cap - slot).min(range.end - n);
        let off = ring.header.offset_of(n);
        bytes.extend(q.read_phys(ring.pa + off, run * RECORD_SIZE as u64)?);
        n += run;
    }
    let after = read_header(q, ring.pa)?.head;
    let kept = ring.cursor.settle(range.clone(), after, cap);
    let skip = ((kept.start - range.start) as usize) * RECORD_SIZE;
    for chunk in bytes[skip..].chunks_exact(RECORD_SIZE) {
        if let Ok(r) = TraceRecord::read_from_bytes(chunk) {
            ring.records.push(r);
        }
    }
    Ok(())
}

fn drain(
    qmp: &std::path::Path,
    scratch: PathBuf,
    shared: &Mutex<Shared>,
    stop: &AtomicBool,
    ended: &AtomicBool,
) -> Result<Trace, QmpError> {
    let mut q = Qmp::connect(qmp, CONNECT_PATIENCE, scratch)?;
    let mut rings: Vec<Ring> = Vec::new();
    let mut error = None;
    loop {
        let end = ended.load(Ordering::SeqCst);
        if end {
            // The power-off follows the hypervisor's last line at once.
            q.wait_shutdown(SHUTDOWN_PATIENCE);
        }
        let last = end || stop.load(Ordering::SeqCst) || q.shutdown;
        if let Err(e) = pass(&mut q, &mut rings, shared) {
            // Keep what was read: QEMU may have gone first.
            error = Some(e.to_string());
            break;
        }
        if last {
            break;
        }
        q.poll_events();
        if !q.shutdown {
            std::thread::sleep(PERIOD);
        }
        // Powered off: the memory stays until we quit; one more pass.
    }
    if q.shutdown || ended.load(Ordering::SeqCst) {
        q.quit();
    }
    Ok(Trace {
        cpus: rings
            .into_iter()
            .map(|r| CpuTrace {
                cpu: r.header.cpu,
                freq: r.header.freq,
                capacity: r.header.capacity,
                lost: r.cursor.lost,
                records: r.records,
            })
            .collect(),
        names: BTreeMap::new(),
        error,
    })
}

/// Reads every announced ring's new records.
fn pass(q: &mut Qmp, rings: &mut Vec<Ring>, shared: &Mutex<Shared>) -> Result<(), QmpError> {
    let announced: Vec<Announced> = shared.lock().map(|s| s.buffers.clone()).unwrap_or_default();
    for a in announced.iter().skip(rings.len()) {
        let header = read_header(q, a.pa)?;
        rings.push(Ring {
            pa: a.pa,
            header,
            cursor: ReadCursor::default(),
            records: Vec::new(),
        });
    }
    for ring in rings.iter_mut() {
        read_new(q, ring)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_buffer_and_domain_lines() {
        let l =
            "[hv] trace: CPU 1 buffer at PA 0x7ff00000, 1048576 bytes, 32766 records, 62500000 Hz";
        assert_eq!(
            parse_buffer_line(l),
            Some(Announced {
                cpu: 1,
                pa: 0x7ff0_0000,
                bytes: 1 << 20
            })
        );
        assert_eq!(parse_buffer_line("[hv] trace: no memory"), None);
        assert_eq!(
            parse_buffer_line("[guest-a] trace: CPU x buffer at PA 0x1, 2 bytes"),
            None
        );
        let d = "[hv] domain guest-a (id 1, guest): 32 MiB at IPA 0x40000000 (PA 0x48000000), 1 vCPU(s) on CPU 1, entry 0x40000000";
        assert_eq!(parse_domain_line(d), Some((1, "guest-a".into())));
        assert_eq!(parse_domain_line("[hv] domain guest-a stats: 3"), None);
    }
}
