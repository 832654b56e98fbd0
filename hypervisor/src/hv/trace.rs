//! Recording the trace: one buffer per physical CPU, taken from the frame
//! pool at boot when the command line says `trace_kib=N`, written only by
//! its CPU (no lock) and read by `parapet` from outside the machine (QEMU's
//! `pmemsave`), so draining never stops a guest.
//!
//! The hooks exist only in a hypervisor built with the `trace` feature
//! (`parapet up --trace` builds and boots that one, in the `release-traced`
//! profile): the default build has none, so tracing costs it nothing
//! (`bench micro` is unchanged). In the traced build each hook is one load
//! and branch ([`on`]) in front of an out-of-line [`emit`], and the fast
//! hypercall path is the traced one only once tracing is on (the vectors are
//! chosen at boot, `arch::trap::install`).
//!
//! Boot prints one line per buffer, which `parapet` reads to find them:
//! `trace: CPU <n> buffer at PA <hex>, <bytes> bytes, <records> records, <freq> Hz`.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use parapet_abi::trace::{ShortText, TraceEvent, TraceRecord, TraceVcpu, HEADER_SIZE, RECORD_SIZE};
use parapet_abi::HvError;

use super::hvprintln;
use super::memory::Frames;
use super::trap::PERCPU;
use crate::arch::boot::MAX_CPUS;
use crate::arch::{gic, phys, sysregs};
use crate::convert::usize_from;
use crate::sched::{VcpuRef, NO_VCPU};
use crate::trace::{buffer_frames, header, Ring};

static ON: AtomicBool = AtomicBool::new(false);
/// Physical address of each CPU's buffer (0: none).
static BUFFERS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Records each buffer holds after its header (its `capacity`).
static RECORDS: AtomicU64 = AtomicU64::new(0);
/// Per CPU: the vCPU (`domain << 8 | vcpu`) whose upcall was raised here and
/// not yet seen taken, or `NO_VCPU`.
static RAISED: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(NO_VCPU) }; MAX_CPUS];

/// Whether tracing is on (decided once, at boot). Without the `trace`
/// feature this is `false` at compile time, and every hook disappears.
#[inline(always)]
pub(super) fn on() -> bool {
    cfg!(feature = "trace") && ON.load(Ordering::Relaxed)
}

/// Records `$event` (a `TraceEvent`, built only when tracing is on).
macro_rules! trace_event {
    ($event:expr) => {
        if $crate::hv::trace::on() {
            $crate::hv::trace::emit($event)
        }
    };
}
pub(super) use trace_event;

/// A vCPU as the trace names it.
pub(super) fn tv(v: VcpuRef) -> TraceVcpu {
    TraceVcpu {
        domain: v.domain,
        vcpu: v.vcpu,
    }
}

/// The vCPU running on this CPU, if any.
pub(super) fn running_here() -> Option<TraceVcpu> {
    current_here(crate::arch::cpu_index()).map(tv)
}

/// The vCPU running on `cpu`, as the vectors see it.
fn current_here(cpu: usize) -> Option<VcpuRef> {
    let packed = PERCPU[cpu].current.load(Ordering::Relaxed);
    (packed != NO_VCPU).then(|| VcpuRef::from_packed(packed))
}

/// Takes a buffer of `kib` KiB per CPU from the pool, writes their headers,
/// announces them and turns tracing on. Returns false (tracing stays off,
/// said on the console) when the pool cannot give them.
pub(super) fn setup(frames: &mut Frames, cpus: usize, kib: u64, freq: u64) -> bool {
    if !cfg!(feature = "trace") {
        hvprintln!(
            "trace: `trace_kib={kib}` ignored: this hypervisor is built without the `trace` feature (`parapet up --trace` builds one with it)"
        );
        return false;
    }
    let (bytes, count) = buffer_frames(kib);
    let mut taken = [0u64; MAX_CPUS];
    for (cpu, slot) in taken.iter_mut().enumerate().take(cpus) {
        match frames.alloc_run(usize_from(count), 1) {
            Some(pa) => *slot = pa,
            None => {
                hvprintln!("trace: no memory for {kib} KiB on CPU {cpu}: tracing is off");
                for &pa in taken.iter().take(cpu) {
                    let _ = frames.free_run(pa, usize_from(count));
                }
                return false;
            }
        }
    }
    for (cpu, &pa) in taken.iter().enumerate().take(cpus) {
        let cpu32 = u32::try_from(cpu).unwrap_or(u32::MAX);
        let h = header(cpu32, bytes, freq);
        // SAFETY: `pa` is a run of `bytes` the pool just gave to the trace;
        // nothing else refers to it.
        unsafe {
            phys::zero(pa, bytes);
            phys::write_bytes(pa, zerocopy::IntoBytes::as_bytes(&h));
        }
        BUFFERS[cpu].store(pa, Ordering::Relaxed);
        hvprintln!(
            "trace: CPU {cpu} buffer at PA {pa:#x}, {bytes} bytes, {} records, {freq} Hz",
            h.capacity
        );
    }
    RECORDS.store(
        (bytes - HEADER_SIZE as u64) / RECORD_SIZE as u64,
        Ordering::Relaxed,
    );
    ON.store(true, Ordering::Release);
    true
}

/// Appends `event` to this CPU's buffer, stamped with the counter.
#[cold]
#[inline(never)]
pub(super) fn emit(event: TraceEvent) {
    let cpu = crate::arch::cpu_index();
    let Some(base) = BUFFERS.get(cpu).map(|b| b.load(Ordering::Relaxed)) else {
        return;
    };
    if base == 0 {
        return;
    }
    let count = usize_from(RECORDS.load(Ordering::Relaxed));
    let rec = event.encode(sysregs::counter());
    // SAFETY: `base` is this CPU's buffer from `setup` (a header and `count`
    // records), which
    // only this CPU writes (the host reads it from outside the machine); the
    // header's `head` is 8-aligned at offset 24 and the records follow the
    // 64-byte header, so both views are in bounds, aligned and disjoint.
    let (head, records) = unsafe {
        (
            AtomicU64::from_ptr((base + 24) as *mut u64),
            core::slice::from_raw_parts_mut((base + HEADER_SIZE as u64) as *mut TraceRecord, count),
        )
    };
    Ring::new(head, records).push(rec);
}

/// The traced fast hypercall path: the traced vectors call this instead of
/// `hvc_fast`, which it wraps with the entry and exit records.
#[unsafe(no_mangle)]
extern "C" fn hvc_fast_traced(
    nr: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
    out: *mut [u64; 3],
) -> u64 {
    let cpu = crate::arch::cpu_index();
    let v = current_here(cpu);
    let nr32 = u32::try_from(nr).unwrap_or(u32::MAX);
    if let Some(v) = v {
        saw_upcall_taken(cpu, v);
        emit(TraceEvent::HvcEnter { v: tv(v), nr: nr32 });
    }
    let result = super::trap::hvc_fast(nr, a1, a2, a3, a4, a5, a6, out);
    if let Some(v) = v {
        emit(TraceEvent::HvcExit {
            v: tv(v),
            nr: nr32,
            result: result as i64,
        });
    }
    result
}

/// The upcall was just raised in `v`, loaded here (its list register was
/// not pending before).
pub(super) fn upcall_raised(v: VcpuRef) {
    let cpu = crate::arch::cpu_index();
    RAISED[cpu].store(v.packed(), Ordering::Relaxed);
    emit(TraceEvent::UpcallInject { v: tv(v) });
}

/// At a trap of `v` (or before its state is saved): if its upcall was
/// raised and is no longer pending in the list register, it was taken.
pub(super) fn saw_upcall_taken(cpu: usize, v: VcpuRef) {
    if RAISED[cpu].load(Ordering::Relaxed) != v.packed() {
        return;
    }
    if gic::read_lr0() & gic::lr::STATE_PENDING == 0 {
        RAISED[cpu].store(NO_VCPU, Ordering::Relaxed);
        emit(TraceEvent::UpcallAck { v: tv(v) });
    }
}

/// `v`'s state leaves this CPU: its raised upcall is no longer watched here.
pub(super) fn unloaded(cpu: usize, v: VcpuRef) {
    saw_upcall_taken(cpu, v);
    let _ = RAISED[cpu].compare_exchange(v.packed(), NO_VCPU, Ordering::Relaxed, Ordering::Relaxed);
}

/// `TraceMark`: records `len` bytes of `text` (little-endian words) as `v`'s
/// mark; `Inval` over 16 bytes (`MARK_MAX`), whether or not tracing is on, so a
/// guest learns of the limit before it traces.
pub(super) fn mark(v: VcpuRef, text: [u64; 2], len: u64) -> Result<(), HvError> {
    let n = usize::try_from(len).map_err(|_| HvError::Inval)?;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&text[0].to_le_bytes());
    bytes[8..].copy_from_slice(&text[1].to_le_bytes());
    let text = bytes
        .get(..n)
        .and_then(ShortText::new)
        .ok_or(HvError::Inval)?;
    trace_event!(TraceEvent::Mark { v: tv(v), text });
    Ok(())
}
