//! The hypervisor's trace buffers: one codec for the hypervisor, which writes
//! records, and `parapet`, which reads them out of guest-physical memory
//! (QEMU's `pmemsave`) and turns them into a Chrome/Perfetto trace.
//!
//! Each physical CPU has one buffer: a [`TraceHeader`] followed by
//! `capacity` [`TraceRecord`]s used as a ring. The writer stores record `n`
//! at slot `n % capacity`, then publishes `head = n + 1`; it never waits for
//! the reader. A reader that falls more than `capacity` records behind has
//! lost the oldest ones, and counts them from `head` (see [`ReadCursor`]):
//! records are lost loudly, never silently.
//!
//! A record is 32 bytes: a counter timestamp (`CNTPCT_EL0`, at the header's
//! `freq`), a [`TraceKind`], the domain and vCPU it concerns, and two or
//! three arguments whose meaning the kind gives. [`TraceEvent`] is the typed
//! form; [`TraceEvent::encode`] and [`TraceEvent::decode`] convert.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `TraceHeader::magic`: "PPTRACE1" little-endian.
pub const TRACE_MAGIC: u64 = u64::from_le_bytes(*b"PPTRACE1");
/// Version of this layout.
pub const TRACE_VERSION: u32 = 1;
/// Bytes of the header before the records.
pub const HEADER_SIZE: usize = 64;
/// Bytes of one record.
pub const RECORD_SIZE: usize = 32;
/// Largest buffer per CPU the hypervisor accepts (`trace_kib=`), in KiB.
pub const MAX_TRACE_KIB: u64 = 16 * 1024;
/// Buffer per CPU `parapet --trace` asks for, in KiB.
pub const DEFAULT_TRACE_KIB: u64 = 1024;
/// Longest text of a guest mark, in bytes.
pub const MARK_MAX: usize = 16;
/// "No vCPU" in a packed `domain << 8 | vcpu` argument.
pub const NO_VCPU: u32 = u32::MAX;

/// The start of one CPU's trace buffer.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct TraceHeader {
    /// [`TRACE_MAGIC`].
    pub magic: u64,
    /// [`TRACE_VERSION`].
    pub version: u32,
    /// The physical CPU this buffer records.
    pub cpu: u32,
    /// Records the ring holds.
    pub capacity: u64,
    /// Records written since boot (the next one goes to `head % capacity`).
    pub head: u64,
    /// Frequency of the timestamps, in Hz.
    pub freq: u64,
    /// Unused, zero.
    pub reserved: [u64; 3],
}
static_assertions::const_assert_eq!(core::mem::size_of::<TraceHeader>(), HEADER_SIZE);
static_assertions::const_assert_eq!(core::mem::offset_of!(TraceHeader, head), 24);

impl TraceHeader {
    /// The header of a fresh buffer of `bytes` (header included) for `cpu`.
    pub fn new(cpu: u32, bytes: u64, freq: u64) -> Self {
        Self {
            magic: TRACE_MAGIC,
            version: TRACE_VERSION,
            cpu,
            capacity: bytes.saturating_sub(HEADER_SIZE as u64) / RECORD_SIZE as u64,
            head: 0,
            freq,
            reserved: [0; 3],
        }
    }

    /// Checks the magic and version; returns why not when they are wrong.
    pub fn check(&self) -> Result<(), TraceError> {
        if self.magic != TRACE_MAGIC {
            return Err(TraceError::BadMagic(self.magic));
        }
        if self.version != TRACE_VERSION {
            return Err(TraceError::BadVersion(self.version));
        }
        if self.capacity == 0 {
            return Err(TraceError::Empty);
        }
        Ok(())
    }

    /// Byte offset of record `n` (counted since boot) in the buffer.
    pub fn offset_of(&self, n: u64) -> u64 {
        HEADER_SIZE as u64 + (n % self.capacity.max(1)) * RECORD_SIZE as u64
    }
}

/// One raw record.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct TraceRecord {
    /// Counter timestamp.
    pub ts: u64,
    /// [`TraceKind`] as a byte.
    pub kind: u8,
    /// The domain the record concerns.
    pub domain: u8,
    /// Its vCPU.
    pub vcpu: u8,
    /// Length of a mark's text or a domain name's prefix in `b`/`c`.
    pub len: u8,
    /// First argument.
    pub a: u32,
    /// Second argument.
    pub b: u64,
    /// Third argument.
    pub c: u64,
}
static_assertions::const_assert_eq!(core::mem::size_of::<TraceRecord>(), RECORD_SIZE);
static_assertions::const_assert_eq!(core::mem::offset_of!(TraceRecord, a), 12);
static_assertions::const_assert_eq!(core::mem::offset_of!(TraceRecord, b), 16);

/// What a record says. Numbers are part of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TraceKind {
    /// A hypercall was entered.
    HvcEnter = 1,
    /// A hypercall returned to its caller.
    HvcExit = 2,
    /// Another synchronous trap (FP, WFI, abort, …).
    Trap = 3,
    /// A physical interrupt was taken.
    Irq = 4,
    /// A vCPU's state was loaded on this CPU.
    Switch = 5,
    /// The CPU has nothing to run.
    Idle = 6,
    /// A guest sent an event.
    EventSend = 7,
    /// An event became pending in its domain and flagged its vCPU.
    EventPending = 8,
    /// The upcall interrupt was raised in a vCPU.
    UpcallInject = 9,
    /// The hypervisor saw that the vCPU took the upcall.
    UpcallAck = 10,
    /// A vCPU blocked.
    Block = 11,
    /// A blocked vCPU was woken.
    Wake = 12,
    /// A vCPU's one-shot timer fired.
    VcpuTimer = 13,
    /// A lazy-FPU trap.
    FpTrap = 14,
    /// A domain started.
    DomainStart = 15,
    /// A domain stopped (shut down or destroyed).
    DomainStop = 16,
    /// A domain crashed.
    DomainCrash = 17,
    /// A domain is being restarted.
    DomainRestart = 18,
    /// A guest's own mark.
    Mark = 19,
    /// A vCPU starts running on this CPU (after another one, or idle).
    Run = 20,
}

impl TraceKind {
    /// The kind a byte names.
    pub const fn from_raw(raw: u8) -> Option<Self> {
        use TraceKind::*;
        Some(match raw {
            1 => HvcEnter,
            2 => HvcExit,
            3 => Trap,
            4 => Irq,
            5 => Switch,
            6 => Idle,
            7 => EventSend,
            8 => EventPending,
            9 => UpcallInject,
            10 => UpcallAck,
            11 => Block,
            12 => Wake,
            13 => VcpuTimer,
            14 => FpTrap,
            15 => DomainStart,
            16 => DomainStop,
            17 => DomainCrash,
            18 => DomainRestart,
            19 => Mark,
            20 => Run,
            _ => return None,
        })
    }
}

/// A vCPU: domain id and vCPU index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceVcpu {
    /// Domain id.
    pub domain: u8,
    /// vCPU index.
    pub vcpu: u8,
}

impl TraceVcpu {
    fn pack(v: Option<TraceVcpu>) -> u32 {
        v.map_or(NO_VCPU, |v| u32::from(v.domain) << 8 | u32::from(v.vcpu))
    }

    fn unpack(raw: u32) -> Option<TraceVcpu> {
        (raw != NO_VCPU).then_some(TraceVcpu {
            domain: (raw >> 8) as u8,
            vcpu: raw as u8,
        })
    }
}

/// Up to [`MARK_MAX`] bytes of text carried in a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShortText {
    bytes: [u8; MARK_MAX],
    len: u8,
}

impl ShortText {
    /// The text, or `None` if it is longer than [`MARK_MAX`].
    pub fn new(text: &[u8]) -> Option<Self> {
        let mut bytes = [0; MARK_MAX];
        bytes.get_mut(..text.len())?.copy_from_slice(text);
        Some(Self {
            bytes,
            len: text.len() as u8,
        })
    }

    /// The first [`MARK_MAX`] bytes of `text`.
    pub fn prefix(text: &[u8]) -> Self {
        Self::new(&text[..text.len().min(MARK_MAX)]).unwrap_or_default()
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The text, with invalid UTF-8 replaced.
    pub fn to_str_lossy(&self) -> Lossy<'_> {
        Lossy(self.as_bytes())
    }

    fn words(&self) -> (u64, u64) {
        let (lo, hi) = self.bytes.split_at(8);
        (
            u64::from_le_bytes(lo.try_into().unwrap_or_default()),
            u64::from_le_bytes(hi.try_into().unwrap_or_default()),
        )
    }

    fn from_words(b: u64, c: u64, len: u8) -> Option<Self> {
        if usize::from(len) > MARK_MAX {
            return None;
        }
        let mut bytes = [0; MARK_MAX];
        bytes[..8].copy_from_slice(&b.to_le_bytes());
        bytes[8..].copy_from_slice(&c.to_le_bytes());
        Some(Self { bytes, len })
    }
}

/// Bytes shown as UTF-8 with invalid sequences replaced, without allocating.
pub struct Lossy<'a>(pub &'a [u8]);

impl core::fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

/// The typed form of a record, without its timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// `v` entered hypercall `nr`.
    HvcEnter {
        /// Caller.
        v: TraceVcpu,
        /// Hypercall number.
        nr: u32,
    },
    /// Hypercall `nr` of `v` returned `result` (`x0`).
    HvcExit {
        /// Caller.
        v: TraceVcpu,
        /// Hypercall number.
        nr: u32,
        /// Status returned (negative: an error code).
        result: i64,
    },
    /// `v` took a synchronous trap other than a hypercall.
    Trap {
        /// The vCPU.
        v: TraceVcpu,
        /// The exception class (`ESR_EL2.EC`).
        class: u32,
        /// The whole syndrome.
        esr: u64,
    },
    /// Physical interrupt `intid` was taken (`v`: the vCPU it interrupted).
    Irq {
        /// The vCPU running, if any.
        v: Option<TraceVcpu>,
        /// The interrupt.
        intid: u32,
    },
    /// `to`'s state was loaded, replacing `from`'s.
    Switch {
        /// The vCPU whose state was saved, if one was loaded.
        from: Option<TraceVcpu>,
        /// The vCPU that runs now.
        to: TraceVcpu,
    },
    /// The CPU went idle.
    Idle,
    /// `v` runs on this CPU from now on (its state may already have been
    /// loaded: a [`TraceEvent::Switch`] comes only when it was not).
    Run {
        /// The vCPU.
        v: TraceVcpu,
    },
    /// `from` sent an event on its `port`, to `to_domain`'s `to_port`.
    EventSend {
        /// Sender.
        from: TraceVcpu,
        /// The sender's port.
        port: u32,
        /// Receiving domain.
        to_domain: u8,
        /// The receiver's port.
        to_port: u32,
    },
    /// `port` became pending in `v`'s domain and flagged `v`.
    EventPending {
        /// The vCPU the port is bound to.
        v: TraceVcpu,
        /// The port.
        port: u32,
    },
    /// The upcall was raised in `v`.
    UpcallInject {
        /// The vCPU.
        v: TraceVcpu,
    },
    /// `v` took the upcall (seen at its next trap).
    UpcallAck {
        /// The vCPU.
        v: TraceVcpu,
    },
    /// `v` blocked.
    Block {
        /// The vCPU.
        v: TraceVcpu,
    },
    /// Blocked `v` was woken.
    Wake {
        /// The vCPU.
        v: TraceVcpu,
    },
    /// `v`'s one-shot timer fired.
    VcpuTimer {
        /// The vCPU.
        v: TraceVcpu,
    },
    /// `v` used FP/SIMD without owning the registers; `owner` had them.
    FpTrap {
        /// The vCPU.
        v: TraceVcpu,
        /// The previous owner on this CPU.
        owner: Option<TraceVcpu>,
    },
    /// Domain `domain` started, named (a prefix of) `name`.
    DomainStart {
        /// Domain id.
        domain: u8,
        /// Its name's first [`MARK_MAX`] bytes.
        name: ShortText,
    },
    /// Domain `domain` stopped with exit `code`.
    DomainStop {
        /// Domain id.
        domain: u8,
        /// Exit code (0 when destroyed).
        code: u32,
    },
    /// Domain `domain` crashed.
    DomainCrash {
        /// Domain id.
        domain: u8,
    },
    /// Domain `domain` is started again.
    DomainRestart {
        /// Domain id.
        domain: u8,
    },
    /// A guest's mark.
    Mark {
        /// The vCPU that made it.
        v: TraceVcpu,
        /// Its text.
        text: ShortText,
    },
}

/// Why a buffer or record cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceError {
    /// The header's magic is wrong (not a trace buffer).
    BadMagic(u64),
    /// The header's version is not [`TRACE_VERSION`].
    BadVersion(u32),
    /// The buffer holds no record.
    Empty,
    /// A record's kind is unknown.
    BadKind(u8),
    /// A record's text length is over [`MARK_MAX`].
    BadLength(u8),
}

impl core::fmt::Display for TraceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TraceError::BadMagic(m) => write!(f, "not a trace buffer (magic {m:#x})"),
            TraceError::BadVersion(v) => {
                write!(f, "trace format version {v}, expected {TRACE_VERSION}")
            }
            TraceError::Empty => f.write_str("the trace buffer holds no record"),
            TraceError::BadKind(k) => write!(f, "unknown trace record kind {k}"),
            TraceError::BadLength(l) => {
                write!(f, "trace record text of {l} bytes (at most {MARK_MAX})")
            }
        }
    }
}

impl TraceEvent {
    /// The record of this event at timestamp `ts`.
    pub fn encode(&self, ts: u64) -> TraceRecord {
        let rec = |kind: TraceKind, v: TraceVcpu, a: u32, b: u64, c: u64| TraceRecord {
            ts,
            kind: kind as u8,
            domain: v.domain,
            vcpu: v.vcpu,
            len: 0,
            a,
            b,
            c,
        };
        let dom = |domain: u8| TraceVcpu { domain, vcpu: 0 };
        let none = TraceVcpu {
            domain: u8::MAX,
            vcpu: u8::MAX,
        };
        match *self {
            TraceEvent::HvcEnter { v, nr } => rec(TraceKind::HvcEnter, v, nr, 0, 0),
            TraceEvent::HvcExit { v, nr, result } => {
                rec(TraceKind::HvcExit, v, nr, result as u64, 0)
            }
            TraceEvent::Trap { v, class, esr } => rec(TraceKind::Trap, v, class, esr, 0),
            TraceEvent::Irq { v, intid } => rec(
                TraceKind::Irq,
                none,
                intid,
                u64::from(TraceVcpu::pack(v)),
                0,
            ),
            TraceEvent::Switch { from, to } => {
                rec(TraceKind::Switch, to, TraceVcpu::pack(from), 0, 0)
            }
            TraceEvent::Idle => rec(TraceKind::Idle, none, 0, 0, 0),
            TraceEvent::Run { v } => rec(TraceKind::Run, v, 0, 0, 0),
            TraceEvent::EventSend {
                from,
                port,
                to_domain,
                to_port,
            } => rec(
                TraceKind::EventSend,
                from,
                port,
                u64::from(to_domain),
                u64::from(to_port),
            ),
            TraceEvent::EventPending { v, port } => rec(TraceKind::EventPending, v, port, 0, 0),
            TraceEvent::UpcallInject { v } => rec(TraceKind::UpcallInject, v, 0, 0, 0),
            TraceEvent::UpcallAck { v } => rec(TraceKind::UpcallAck, v, 0, 0, 0),
            TraceEvent::Block { v } => rec(TraceKind::Block, v, 0, 0, 0),
            TraceEvent::Wake { v } => rec(TraceKind::Wake, v, 0, 0, 0),
            TraceEvent::VcpuTimer { v } => rec(TraceKind::VcpuTimer, v, 0, 0, 0),
            TraceEvent::FpTrap { v, owner } => {
                rec(TraceKind::FpTrap, v, TraceVcpu::pack(owner), 0, 0)
            }
            TraceEvent::DomainStart { domain, name } => {
                let (b, c) = name.words();
                TraceRecord {
                    len: name.len,
                    ..rec(TraceKind::DomainStart, dom(domain), 0, b, c)
                }
            }
            TraceEvent::DomainStop { domain, code } => {
                rec(TraceKind::DomainStop, dom(domain), code, 0, 0)
            }
            TraceEvent::DomainCrash { domain } => rec(TraceKind::DomainCrash, dom(domain), 0, 0, 0),
            TraceEvent::DomainRestart { domain } => {
                rec(TraceKind::DomainRestart, dom(domain), 0, 0, 0)
            }
            TraceEvent::Mark { v, text } => {
                let (b, c) = text.words();
                TraceRecord {
                    len: text.len,
                    ..rec(TraceKind::Mark, v, 0, b, c)
                }
            }
        }
    }

    /// The event a record holds.
    pub fn decode(r: &TraceRecord) -> Result<Self, TraceError> {
        let kind = TraceKind::from_raw(r.kind).ok_or(TraceError::BadKind(r.kind))?;
        let v = TraceVcpu {
            domain: r.domain,
            vcpu: r.vcpu,
        };
        let text = || ShortText::from_words(r.b, r.c, r.len).ok_or(TraceError::BadLength(r.len));
        Ok(match kind {
            TraceKind::HvcEnter => TraceEvent::HvcEnter { v, nr: r.a },
            TraceKind::HvcExit => TraceEvent::HvcExit {
                v,
                nr: r.a,
                result: r.b as i64,
            },
            TraceKind::Trap => TraceEvent::Trap {
                v,
                class: r.a,
                esr: r.b,
            },
            TraceKind::Irq => TraceEvent::Irq {
                v: TraceVcpu::unpack(r.b as u32),
                intid: r.a,
            },
            TraceKind::Switch => TraceEvent::Switch {
                from: TraceVcpu::unpack(r.a),
                to: v,
            },
            TraceKind::Idle => TraceEvent::Idle,
            TraceKind::Run => TraceEvent::Run { v },
            TraceKind::EventSend => TraceEvent::EventSend {
                from: v,
                port: r.a,
                to_domain: r.b as u8,
                to_port: r.c as u32,
            },
            TraceKind::EventPending => TraceEvent::EventPending { v, port: r.a },
            TraceKind::UpcallInject => TraceEvent::UpcallInject { v },
            TraceKind::UpcallAck => TraceEvent::UpcallAck { v },
            TraceKind::Block => TraceEvent::Block { v },
            TraceKind::Wake => TraceEvent::Wake { v },
            TraceKind::VcpuTimer => TraceEvent::VcpuTimer { v },
            TraceKind::FpTrap => TraceEvent::FpTrap {
                v,
                owner: TraceVcpu::unpack(r.a),
            },
            TraceKind::DomainStart => TraceEvent::DomainStart {
                domain: r.domain,
                name: text()?,
            },
            TraceKind::DomainStop => TraceEvent::DomainStop {
                domain: r.domain,
                code: r.a,
            },
            TraceKind::DomainCrash => TraceEvent::DomainCrash { domain: r.domain },
            TraceKind::DomainRestart => TraceEvent::DomainRestart { domain: r.domain },
            TraceKind::Mark => TraceEvent::Mark { v, text: text()? },
        })
    }
}

/// A reader's position in one CPU's ring: what to read next given the
/// writer's `head`, and how many records were lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadCursor {
    /// The next record to read (counted since boot).
    pub next: u64,
    /// Records the writer overwrote before they were read.
    pub lost: u64,
}

impl ReadCursor {
    /// The records `[from, to)` still in a ring of `capacity` whose writer is
    /// at `head`; counts the ones already overwritten as lost.
    pub fn plan(&mut self, head: u64, capacity: u64) -> core::ops::Range<u64> {
        let oldest = head.saturating_sub(capacity);
        if self.next < oldest {
            self.lost += oldest - self.next;
            self.next = oldest;
        }
        self.next..head.max(self.next)
    }

    /// After copying `range` out while the writer moved on to `head_after`:
    /// keeps the records that cannot have been overwritten meanwhile (the
    /// rest count as lost) and advances past the range.
    pub fn settle(
        &mut self,
        range: core::ops::Range<u64>,
        head_after: u64,
        capacity: u64,
    ) -> core::ops::Range<u64> {
        let safe_from = head_after.saturating_sub(capacity).max(range.start);
        let kept = safe_from.min(range.end)..range.end;
        self.lost += kept.start - range.start;
        self.next = range.end;
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(domain: u8, vcpu: u8) -> TraceVcpu {
        TraceVcpu { domain, vcpu }
    }

    fn samples() -> Vec<TraceEvent> {
        vec![
            TraceEvent::HvcEnter { v: v(1, 0), nr: 16 },
            TraceEvent::HvcExit {
                v: v(1, 0),
                nr: 16,
                result: -3,
            },
            TraceEvent::Trap {
                v: v(2, 1),
                class: 7,
                esr: 0x1fe0_0000,
            },
            TraceEvent::Irq { v: None, intid: 26 },
            TraceEvent::Irq {
                v: Some(v(0, 0)),
                intid: 33,
            },
            TraceEvent::Switch {
                from: None,
                to: v(0, 0),
            },
            TraceEvent::Switch {
                from: Some(v(3, 1)),
                to: v(1, 0),
            },
            TraceEvent::Idle,
            TraceEvent::Run { v: v(3, 1) },
            TraceEvent::EventSend {
                from: v(1, 0),
                port: 5,
                to_domain: 2,
                to_port: 9,
            },
            TraceEvent::EventPending {
                v: v(2, 0),
                port: 9,
            },
            TraceEvent::UpcallInject { v: v(2, 0) },
            TraceEvent::UpcallAck { v: v(2, 0) },
            TraceEvent::Block { v: v(2, 0) },
            TraceEvent::Wake { v: v(2, 0) },
            TraceEvent::VcpuTimer { v: v(2, 0) },
            TraceEvent::FpTrap {
                v: v(2, 0),
                owner: Some(v(1, 0)),
            },
            TraceEvent::FpTrap {
                v: v(2, 0),
                owner: None,
            },
            TraceEvent::DomainStart {
                domain: 4,
                name: ShortText::prefix(b"a-very-long-domain-name"),
            },
            TraceEvent::DomainStop { domain: 4, code: 3 },
            TraceEvent::DomainCrash { domain: 4 },
            TraceEvent::DomainRestart { domain: 4 },
            TraceEvent::Mark {
                v: v(1, 0),
                text: ShortText::new(b"ping 42").unwrap(),
            },
        ]
    }

    #[test]
    fn every_event_round_trips() {
        for (i, e) in samples().into_iter().enumerate() {
            let r = e.encode(1000 + i as u64);
            assert_eq!(r.ts, 1000 + i as u64);
            assert_eq!(TraceEvent::decode(&r), Ok(e), "{e:?}");
            let bytes = r.as_bytes();
            assert_eq!(bytes.len(), RECORD_SIZE);
            assert_eq!(TraceRecord::read_from_bytes(bytes).unwrap(), r);
        }
    }

    #[test]
    fn texts_are_bounded() {
        assert!(ShortText::new(&[b'x'; MARK_MAX]).is_some());
        assert!(ShortText::new(&[b'x'; MARK_MAX + 1]).is_none());
        assert_eq!(
            ShortText::prefix(b"0123456789abcdefXYZ").as_bytes(),
            b"0123456789abcdef"
        );
        let t = ShortText::new(b"ok\xff").unwrap();
        assert_eq!(t.to_str_lossy().to_string(), "ok\u{fffd}");
    }

    #[test]
    fn bad_records_are_refused() {
        let mut r = TraceEvent::Idle.encode(0);
        r.kind = 0;
        assert_eq!(TraceEvent::decode(&r), Err(TraceError::BadKind(0)));
        r.kind = 200;
        assert_eq!(TraceEvent::decode(&r), Err(TraceError::BadKind(200)));
        let mut m = TraceEvent::Mark {
            v: v(1, 0),
            text: ShortText::new(b"x").unwrap(),
        }
        .encode(0);
        m.len = 17;
        assert_eq!(TraceEvent::decode(&m), Err(TraceError::BadLength(17)));
    }

    #[test]
    fn header_checks_and_offsets() {
        let h = TraceHeader::new(1, 1 << 20, 62_500_000);
        assert_eq!(h.check(), Ok(()));
        assert_eq!(h.capacity, ((1 << 20) - 64) / 32);
        assert_eq!(h.offset_of(0), 64);
        assert_eq!(h.offset_of(h.capacity + 2), 64 + 2 * 32);
        let mut bad = h;
        bad.magic = 0;
        assert!(matches!(bad.check(), Err(TraceError::BadMagic(0))));
        let mut bad = h;
        bad.version = 9;
        assert_eq!(bad.check(), Err(TraceError::BadVersion(9)));
        assert_eq!(TraceHeader::new(0, 64, 1).check(), Err(TraceError::Empty));
        let bytes = h.as_bytes();
        assert_eq!(TraceHeader::read_from_bytes(bytes).unwrap(), h);
    }

    #[test]
    fn a_reader_that_keeps_up_loses_nothing() {
        let mut c = ReadCursor::default();
        let r = c.plan(10, 100);
        assert_eq!(r, 0..10);
        assert_eq!(c.settle(r, 50, 100), 0..10);
        assert_eq!(c, ReadCursor { next: 10, lost: 0 });
        let r = c.plan(50, 100);
        assert_eq!(r, 10..50);
    }

    #[test]
    fn a_reader_that_falls_behind_counts_what_it_lost() {
        let mut c = ReadCursor::default();
        // The writer lapped the ring: the oldest 150 are gone.
        let r = c.plan(250, 100);
        assert_eq!(r, 150..250);
        assert_eq!(c.lost, 150);
        // While copying, the writer went on by 30: those slots were reused.
        let kept = c.settle(r, 280, 100);
        assert_eq!(kept, 180..250);
        assert_eq!(
            c,
            ReadCursor {
                next: 250,
                lost: 180
            }
        );
        // Nothing new.
        assert_eq!(c.plan(250, 100), 250..250);
    }
}
