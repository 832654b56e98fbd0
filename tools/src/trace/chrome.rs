//! The Chrome trace event format (the JSON that Perfetto UI and
//! `chrome://tracing` open) for a recorded [`Trace`].
//!
//! One process, "Parapet (physical CPUs)", with one thread (track) per
//! physical CPU. On each track:
//! - a slice (`cat: run`) for each stretch a vCPU runs there, named after
//!   its domain (`guest-a`, or `guest-a/v1` for a second vCPU);
//! - nested slices (`cat: hypercall`) from a hypercall's entry to its exit,
//!   named after the call (`EvtchnSend`), with its number and status;
//! - instants: world switches (`switch`), event sends and pendings
//!   (`event`), upcalls raised and taken (`upcall`), blocks, wake-ups and
//!   vCPU timers (`sched`), lazy-FPU traps (`fp`), other traps (`trap`),
//!   physical interrupts (`irq`), domain starts and ends (`domain`) and the
//!   guests' own marks (`mark`);
//! - flow arrows from each event send to what it caused in the receiving
//!   vCPU: its upcall, its wake-up into running, or its return from `Block`.
//!
//! Counters: events sent per domain. Every event carries `args.dom` (the
//! domain id) and `args.domain` (its name) for the summarizer; `otherData`
//! says how many records each CPU had and lost.

use std::collections::{BTreeMap, HashMap};

use parapet_abi::hypercall::Hypercall;
use parapet_abi::trace::{TraceEvent, TraceVcpu};
use serde_json::{json, Value};

use super::Trace;

/// The process id of the CPU tracks.
const PID: u32 = 0;
/// `HvcExit` of `Block` ends the flows to the caller.
const BLOCK: u32 = Hypercall::Block as u32;

/// The name of hypercall `nr`.
pub fn hypercall_name(nr: u32) -> String {
    Hypercall::from_raw(u64::from(nr)).map_or_else(|| format!("hvc {nr}"), |h| format!("{h:?}"))
}

/// The name of physical interrupt `intid` as the hypervisor uses it.
pub fn irq_name(intid: u32) -> String {
    match intid {
        0..=15 => format!("IPI {intid} (kick)"),
        26 => "EL2 timer".to_owned(),
        _ => format!("IRQ {intid}"),
    }
}

struct Writer<'a> {
    trace: &'a Trace,
    names: HashMap<u8, String>,
    t0: u64,
    freq: f64,
    events: Vec<Value>,
}

impl Writer<'_> {
    fn us(&self, ts: u64) -> f64 {
        ts.saturating_sub(self.t0) as f64 * 1e6 / self.freq
    }

    fn name(&mut self, d: u8) -> String {
        if let Some(n) = self.names.get(&d) {
            return n.clone();
        }
        let n = self.trace.domain_name(d);
        self.names.insert(d, n.clone());
        n
    }

    fn vcpu_label(&mut self, v: TraceVcpu) -> String {
        let n = self.name(v.domain);
        if v.vcpu == 0 {
            n
        } else {
            format!("{n}/v{}", v.vcpu)
        }
    }

    fn instant(&mut self, cpu: u32, ts: u64, cat: &str, name: &str, dom: u8, mut args: Value) {
        // `u8::MAX`: no domain (an interrupt on an idle CPU).
        if dom != u8::MAX {
            let domain = self.name(dom);
            if let Some(a) = args.as_object_mut() {
                a.insert("dom".into(), json!(dom));
                a.insert("domain".into(), json!(domain));
            }
        }
        let ev = json!({
            "ph": "i", "s": "t", "pid": PID, "tid": cpu, "ts": self.us(ts),
            "cat": cat, "name": name, "args": args,
        });
        self.events.push(ev);
    }

    fn slice(
        &mut self,
        cpu: u32,
        (from, to): (u64, u64),
        cat: &str,
        name: &str,
        dom: u8,
        mut args: Value,
    ) {
        let domain = self.name(dom);
        if let Some(a) = args.as_object_mut() {
            a.insert("dom".into(), json!(dom));
            a.insert("domain".into(), json!(domain));
        }
        let (start, end) = (self.us(from), self.us(to));
        let ev = json!({
            "ph": "X", "pid": PID, "tid": cpu, "ts": start, "dur": (end - start).max(0.0),
            "cat": cat, "name": name, "args": args,
        });
        self.events.push(ev);
    }

    /// The slice of `v` running on `cpu` over `span`.
    fn run_slice(&mut self, cpu: u32, span: (u64, u64), v: TraceVcpu) {
        let label = self.vcpu_label(v);
        self.slice(
            cpu,
            span,
            "run",
            &label,
            v.domain,
            json!({ "vcpu": v.vcpu }),
        );
    }

    /// An instant about vCPU `v` with no other argument.
    fn vcpu_instant(&mut self, cpu: u32, ts: u64, cat: &str, name: &str, v: TraceVcpu) {
        self.instant(cpu, ts, cat, name, v.domain, json!({ "vcpu": v.vcpu }));
    }

    fn flow(&mut self, ph: &str, cpu: u32, ts: u64, id: u64) {
        let mut ev = json!({
            "ph": ph, "pid": PID, "tid": cpu, "ts": self.us(ts),
            "cat": "event", "name": "event", "id": id,
        });
        if ph == "f" {
            ev["bp"] = json!("e");
        }
        self.events.push(ev);
    }
}

/// Per-CPU state while walking the records.
#[derive(Default)]
struct CpuState {
    running: Option<(TraceVcpu, u64)>,
    hvc: Option<(TraceVcpu, u32, u64)>,
    last_ts: u64,
}

/// The trace as a Chrome trace event document.
pub fn to_json(trace: &Trace) -> Value {
    // One stream in time order (the counter is global); ties keep each
    // CPU's own order.
    let mut all: Vec<(u64, u32, usize, &parapet_abi::trace::TraceRecord)> = Vec::new();
    for c in &trace.cpus {
        for (i, r) in c.records.iter().enumerate() {
            all.push((r.ts, c.cpu, i, r));
        }
    }
    all.sort_by_key(|&(ts, cpu, i, _)| (ts, cpu, i));
    let t0 = all.first().map_or(0, |a| a.0);
    let freq = trace.cpus.first().map_or(1, |c| c.freq.max(1)) as f64;
    let mut w = Writer {
        trace,
        names: HashMap::new(),
        t0,
        freq,
        events: Vec::new(),
    };
    w.events.push(json!({
        "ph": "M", "pid": PID, "name": "process_name",
        "args": { "name": "Parapet (physical CPUs)" },
    }));
    for c in &trace.cpus {
        w.events.push(json!({
            "ph": "M", "pid": PID, "tid": c.cpu, "name": "thread_name",
            "args": { "name": format!("CPU {}", c.cpu) },
        }));
        w.events.push(json!({
            "ph": "M", "pid": PID, "tid": c.cpu, "name": "thread_sort_index",
            "args": { "sort_index": c.cpu },
        }));
    }
    let mut cpus: BTreeMap<u32, CpuState> = BTreeMap::new();
    let mut flows: HashMap<TraceVcpu, Vec<u64>> = HashMap::new();
    let mut next_flow = 1u64;
    let mut sent: BTreeMap<String, u64> = BTreeMap::new();
    let mut bad = 0u64;
    for &(ts, cpu, _, rec) in &all {
        let Ok(ev) = TraceEvent::decode(rec) else {
            bad += 1;
            continue;
        };
        let st = cpus.entry(cpu).or_default();
        st.last_ts = ts;
        let end_flows = |w: &mut Writer<'_>, flows: &mut HashMap<TraceVcpu, Vec<u64>>, v| {
            for id in flows.remove(&v).unwrap_or_default() {
                w.flow("f", cpu, ts, id);
            }
        };
        match ev {
            TraceEvent::Run { v } => {
                if let Some((prev, from)) = st.running.replace((v, ts)) {
                    w.run_slice(cpu, (from, ts), prev);
                }
                end_flows(&mut w, &mut flows, v);
            }
            TraceEvent::Idle => {
                if let Some((prev, from)) = st.running.take() {
                    w.run_slice(cpu, (from, ts), prev);
                }
            }
            TraceEvent::Switch { from, to } => {
                let from_name = from.map(|f| w.vcpu_label(f));
                let to_name = w.vcpu_label(to);
                w.instant(
                    cpu,
                    ts,
                    "switch",
                    &format!("switch to {to_name}"),
                    to.domain,
                    json!({ "from": from_name, "to": to_name, "vcpu": to.vcpu }),
                );
            }
            TraceEvent::HvcEnter { v, nr } => st.hvc = Some((v, nr, ts)),
            TraceEvent::HvcExit { v, nr, result } => {
                let from = match st.hvc.take() {
                    Some((ov, onr, from)) if ov == v && onr == nr => from,
                    _ => ts,
                };
                w.slice(
                    cpu,
                    (from, ts),
                    "hypercall",
                    &hypercall_name(nr),
                    v.domain,
                    json!({ "nr": nr, "result": result, "vcpu": v.vcpu }),
                );
                if nr == BLOCK {
                    end_flows(&mut w, &mut flows, v);
                }
            }
            TraceEvent::Trap { v, class, esr } => w.instant(
                cpu,
                ts,
                "trap",
                &format!("trap EC {class:#x}"),
                v.domain,
                json!({ "esr": format!("{esr:#x}"), "vcpu": v.vcpu }),
            ),
            TraceEvent::Irq { v, intid } => {
                let dom = v.map_or(u8::MAX, |v| v.domain);
                w.instant(
                    cpu,
                    ts,
                    "irq",
                    &irq_name(intid),
                    dom,
                    json!({ "intid": intid }),
                );
            }
            TraceEvent::EventSend {
                from,
                port,
                to_domain,
                to_port,
            } => {
                let to = w.name(to_domain);
                let id = next_flow;
                next_flow += 1;
                w.instant(
                    cpu,
                    ts,
                    "event",
                    "send",
                    from.domain,
                    json!({ "port": port, "to": to, "to_dom": to_domain, "to_port": to_port, "flow": id }),
                );
                w.flow("s", cpu, ts, id);
                // The flow ends in the vCPU the port is bound to, which the
                // `EventPending` right after names.
                flows
                    .entry(TraceVcpu {
                        domain: to_domain,
                        vcpu: u8::MAX,
                    })
                    .or_default()
                    .push(id);
                let domain = w.name(from.domain);
                let n = sent.entry(domain).or_default();
                *n += 1;
                let series = sent.clone();
                w.events.push(json!({
                    "ph": "C", "pid": PID, "ts": w.us(ts), "name": "events sent", "args": series,
                }));
            }
            TraceEvent::EventPending { v, port } => {
                w.instant(
                    cpu,
                    ts,
                    "event",
                    "pending",
                    v.domain,
                    json!({ "port": port, "vcpu": v.vcpu }),
                );
                let unbound = TraceVcpu {
                    domain: v.domain,
                    vcpu: u8::MAX,
                };
                if let Some(ids) = flows.remove(&unbound) {
                    flows.entry(v).or_default().extend(ids);
                }
            }
            TraceEvent::UpcallInject { v } => {
                w.vcpu_instant(cpu, ts, "upcall", "upcall", v);
                end_flows(&mut w, &mut flows, v);
            }
            TraceEvent::UpcallAck { v } => w.vcpu_instant(cpu, ts, "upcall", "upcall taken", v),
            TraceEvent::Block { v } => w.vcpu_instant(cpu, ts, "sched", "block", v),
            TraceEvent::Wake { v } => w.vcpu_instant(cpu, ts, "sched", "wake", v),
            TraceEvent::VcpuTimer { v } => w.vcpu_instant(cpu, ts, "sched", "vcpu timer", v),
            TraceEvent::FpTrap { v, owner } => {
                let owner = owner.map(|o| w.vcpu_label(o));
                w.instant(
                    cpu,
                    ts,
                    "fp",
                    "lazy FP trap",
                    v.domain,
                    json!({ "vcpu": v.vcpu, "owner": owner }),
                );
            }
            TraceEvent::DomainStart { domain, .. } => {
                w.instant(cpu, ts, "domain", "domain start", domain, json!({}))
            }
            TraceEvent::DomainStop { domain, code } => w.instant(
                cpu,
                ts,
                "domain",
                "domain stop",
                domain,
                json!({ "code": code }),
            ),
            TraceEvent::DomainCrash { domain } => {
                w.instant(cpu, ts, "domain", "domain crash", domain, json!({}))
            }
            TraceEvent::DomainRestart { domain } => {
                w.instant(cpu, ts, "domain", "domain restart", domain, json!({}))
            }
            TraceEvent::Mark { v, text } => {
                let text = text.to_str_lossy().to_string();
                w.instant(
                    cpu,
                    ts,
                    "mark",
                    &text,
                    v.domain,
                    json!({ "vcpu": v.vcpu, "text": text }),
                );
            }
        }
    }
    // Close what still runs at the end of the recording.
    for (cpu, st) in &cpus {
        if let Some((v, from)) = st.running {
            w.run_slice(*cpu, (from, st.last_ts), v);
        }
    }
    let per_cpu: Vec<Value> = trace
        .cpus
        .iter()
        .map(|c| {
            json!({
                "cpu": c.cpu, "records": c.records.len(), "lost": c.lost, "capacity": c.capacity,
            })
        })
        .collect();
    let names: BTreeMap<String, String> = (0..=u8::MAX)
        .filter_map(|d| w.names.get(&d).map(|n| (d.to_string(), n.clone())))
        .collect();
    json!({
        "traceEvents": w.events,
        "displayTimeUnit": "ns",
        "otherData": {
            "parapet": {
                "format": 1,
                "freq_hz": freq,
                "cpus": per_cpu,
                "records": trace.records(),
                "lost": trace.lost(),
                "undecodable": bad,
                "domains": names,
                "error": trace.error,
            }
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::trace::CpuTrace;
    use parapet_abi::trace::ShortText;

    fn v(domain: u8) -> TraceVcpu {
        TraceVcpu { domain, vcpu: 0 }
    }

    /// A ping from guest-a (1, CPU 0) to guest-b (2, CPU 1), which blocks.
    pub(crate) fn ping_trace() -> Trace {
        let e = |ts: u64, ev: TraceEvent| ev.encode(ts);
        let cpu0 = vec![
            e(
                1000,
                TraceEvent::DomainStart {
                    domain: 1,
                    name: ShortText::prefix(b"guest-a"),
                },
            ),
            e(
                1010,
                TraceEvent::Switch {
                    from: None,
                    to: v(1),
                },
            ),
            e(1010, TraceEvent::Run { v: v(1) }),
            e(1100, TraceEvent::HvcEnter { v: v(1), nr: 16 }),
            e(
                1101,
                TraceEvent::EventSend {
                    from: v(1),
                    port: 3,
                    to_domain: 2,
                    to_port: 4,
                },
            ),
            e(1102, TraceEvent::EventPending { v: v(2), port: 4 }),
            e(1103, TraceEvent::Wake { v: v(2) }),
            e(
                1110,
                TraceEvent::HvcExit {
                    v: v(1),
                    nr: 16,
                    result: 0,
                },
            ),
            e(
                1200,
                TraceEvent::Mark {
                    v: v(1),
                    text: ShortText::new(b"ping 1").unwrap(),
                },
            ),
            e(1300, TraceEvent::Idle),
        ];
        let cpu1 = vec![
            e(
                1005,
                TraceEvent::Switch {
                    from: None,
                    to: v(2),
                },
            ),
            e(1005, TraceEvent::Run { v: v(2) }),
            e(1050, TraceEvent::HvcEnter { v: v(2), nr: 4 }),
            e(1051, TraceEvent::Block { v: v(2) }),
            e(1052, TraceEvent::Idle),
            e(1120, TraceEvent::Run { v: v(2) }),
            e(
                1121,
                TraceEvent::HvcExit {
                    v: v(2),
                    nr: 4,
                    result: 0,
                },
            ),
            e(
                1130,
                TraceEvent::FpTrap {
                    v: v(2),
                    owner: None,
                },
            ),
            e(1400, TraceEvent::Idle),
        ];
        let mut names = BTreeMap::new();
        names.insert(2, "guest-b".to_owned());
        Trace {
            cpus: vec![
                CpuTrace {
                    cpu: 0,
                    freq: 1_000_000,
                    capacity: 100,
                    lost: 0,
                    records: cpu0,
                },
                CpuTrace {
                    cpu: 1,
                    freq: 1_000_000,
                    capacity: 100,
                    lost: 2,
                    records: cpu1,
                },
            ],
            names,
            error: None,
        }
    }

    fn events<'a>(doc: &'a Value, f: impl Fn(&Value) -> bool + 'a) -> Vec<&'a Value> {
        doc["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| f(e))
            .collect()
    }

    #[test]
    fn tracks_slices_and_names() {
        let doc = to_json(&ping_trace());
        let threads = events(&doc, |e| e["name"] == "thread_name");
        assert_eq!(threads.len(), 2);
        assert_eq!(threads[1]["args"]["name"], "CPU 1");
        let runs = events(&doc, |e| e["cat"] == "run");
        let names: Vec<(&str, f64, f64)> = runs
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap(),
                    e["ts"].as_f64().unwrap(),
                    e["dur"].as_f64().unwrap(),
                )
            })
            .collect();
        // Microseconds from the first record at 1 MHz.
        assert!(names.contains(&("guest-a", 10.0, 290.0)), "{names:?}");
        assert!(names.contains(&("guest-b", 5.0, 47.0)), "{names:?}");
        assert!(names.contains(&("guest-b", 120.0, 280.0)), "{names:?}");
        let hvc = events(&doc, |e| e["cat"] == "hypercall");
        assert_eq!(hvc.len(), 2);
        assert_eq!(hvc[0]["name"], "EvtchnSend");
        assert_eq!(hvc[0]["dur"].as_f64().unwrap(), 10.0);
        assert_eq!(hvc[1]["name"], "Block");
        assert_eq!(hvc[1]["args"]["result"], 0);
        assert_eq!(doc["otherData"]["parapet"]["lost"], 2);
        assert_eq!(doc["otherData"]["parapet"]["domains"]["1"], "guest-a");
        let marks = events(&doc, |e| e["cat"] == "mark");
        assert_eq!(marks[0]["name"], "ping 1");
    }

    #[test]
    fn a_send_flows_to_the_receivers_wakeup() {
        let doc = to_json(&ping_trace());
        let starts = events(&doc, |e| e["ph"] == "s");
        let ends = events(&doc, |e| e["ph"] == "f");
        assert_eq!(starts.len(), 1);
        assert_eq!(ends.len(), 1);
        assert_eq!(starts[0]["id"], ends[0]["id"]);
        assert_eq!(starts[0]["tid"], 0);
        // guest-b starts running again on CPU 1 at 120 us.
        assert_eq!(ends[0]["tid"], 1);
        assert_eq!(ends[0]["ts"].as_f64().unwrap(), 120.0);
        let counters = events(&doc, |e| e["ph"] == "C");
        assert_eq!(counters[0]["args"]["guest-a"], 1);
    }

    #[test]
    fn undecodable_records_are_counted() {
        let mut t = ping_trace();
        t.cpus[0].records[3].kind = 99;
        let doc = to_json(&t);
        assert_eq!(doc["otherData"]["parapet"]["undecodable"], 1);
    }
}
