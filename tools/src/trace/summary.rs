//! `parapet trace summarize FILE`: per-domain totals over the interval a
//! trace recorded (a xentop for that interval): time running, world
//! switches in, hypercalls by number, events sent and received, upcalls and
//! lazy-FPU traps. Reads the Chrome trace `parapet` wrote (see
//! [`chrome`](super::chrome)), through the `cat` and `args` of its events.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

/// One domain's totals.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DomainTotals {
    /// Microseconds running, all vCPUs and CPUs.
    pub running_us: f64,
    /// World switches into its vCPUs.
    pub switches: u64,
    /// Hypercalls by name.
    pub hypercalls: BTreeMap<String, u64>,
    /// Events it sent.
    pub events_sent: u64,
    /// Events that became pending in it.
    pub events_received: u64,
    /// Upcalls raised in it.
    pub upcalls: u64,
    /// Lazy-FPU traps it took.
    pub fp_traps: u64,
    /// Physical interrupts taken while it ran.
    pub irqs: u64,
}

/// A trace's totals.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Microseconds from the first to the last event.
    pub interval_us: f64,
    /// Physical CPUs traced.
    pub cpus: usize,
    /// Records in the file, and lost while recording.
    pub records: u64,
    /// Records lost while recording.
    pub lost: u64,
    /// Totals by domain name.
    pub domains: BTreeMap<String, DomainTotals>,
}

/// Adds up the events of a trace document.
pub fn summarize(doc: &Value) -> Summary {
    let mut s = Summary::default();
    let (mut first, mut last) = (f64::MAX, f64::MIN);
    let empty = Vec::new();
    let events = doc["traceEvents"].as_array().unwrap_or(&empty);
    for e in events {
        if e["name"] == "thread_name" {
            s.cpus += 1;
        }
        let Some(ts) = e["ts"].as_f64() else {
            continue;
        };
        let dur = e["dur"].as_f64().unwrap_or(0.0);
        first = first.min(ts);
        last = last.max(ts + dur);
        let Some(domain) = e["args"]["domain"].as_str() else {
            continue;
        };
        let name = e["name"].as_str().unwrap_or("");
        let d = s.domains.entry(domain.to_owned()).or_default();
        match (e["cat"].as_str().unwrap_or(""), name) {
            ("run", _) => d.running_us += dur,
            ("switch", _) => d.switches += 1,
            ("hypercall", call) => *d.hypercalls.entry(call.to_owned()).or_default() += 1,
            ("event", "send") => d.events_sent += 1,
            ("event", "pending") => d.events_received += 1,
            ("upcall", "upcall") => d.upcalls += 1,
            ("fp", _) => d.fp_traps += 1,
            ("irq", _) => d.irqs += 1,
            _ => {}
        }
    }
    if first <= last {
        s.interval_us = last - first;
    }
    let p = &doc["otherData"]["parapet"];
    s.records = p["records"].as_u64().unwrap_or(0);
    s.lost = p["lost"].as_u64().unwrap_or(0);
    s
}

/// The summary as a table.
pub fn report(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace: {:.3} ms on {} CPU(s), {} records, {} lost",
        s.interval_us / 1000.0,
        s.cpus,
        s.records,
        s.lost
    );
    let width = s
        .domains
        .keys()
        .map(String::len)
        .chain([6])
        .max()
        .unwrap_or(6);
    let _ = writeln!(
        out,
        "{:<width$} {:>12} {:>7} {:>9} {:>10} {:>9} {:>9} {:>8} {:>8}",
        "domain",
        "running ms",
        "cpu %",
        "switches",
        "hypercalls",
        "ev sent",
        "ev recv",
        "upcalls",
        "FP traps"
    );
    let cpus = s.cpus.max(1) as f64;
    for (name, d) in &s.domains {
        let share = if s.interval_us > 0.0 {
            100.0 * d.running_us / (s.interval_us * cpus)
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "{:<width$} {:>12.3} {:>7.1} {:>9} {:>10} {:>9} {:>9} {:>8} {:>8}",
            name,
            d.running_us / 1000.0,
            share,
            d.switches,
            d.hypercalls.values().sum::<u64>(),
            d.events_sent,
            d.events_received,
            d.upcalls,
            d.fp_traps
        );
    }
    let _ = writeln!(out, "\nhypercalls by number:");
    for (name, d) in &s.domains {
        if d.hypercalls.is_empty() {
            continue;
        }
        let mut calls: Vec<(&String, &u64)> = d.hypercalls.iter().collect();
        calls.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let list: Vec<String> = calls.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = writeln!(out, "  {name}: {}", list.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::chrome::to_json;

    #[test]
    fn totals_of_a_ping() {
        let doc = to_json(&crate::trace::chrome::tests::ping_trace());
        let s = summarize(&doc);
        assert_eq!(s.cpus, 2);
        assert_eq!(s.lost, 2);
        assert_eq!(s.records, 19);
        assert!((s.interval_us - 400.0).abs() < 1e-9, "{}", s.interval_us);
        let a = &s.domains["guest-a"];
        assert_eq!(a.switches, 1);
        assert_eq!(a.events_sent, 1);
        assert_eq!(a.hypercalls["EvtchnSend"], 1);
        assert!((a.running_us - 290.0).abs() < 1e-9);
        let b = &s.domains["guest-b"];
        assert_eq!((b.switches, b.events_received, b.fp_traps), (1, 1, 1));
        assert!((b.running_us - 327.0).abs() < 1e-9, "{}", b.running_us);
        let text = report(&s);
        assert!(text.contains("guest-a"), "{text}");
        assert!(text.contains("EvtchnSend 1"), "{text}");
    }

    #[test]
    fn an_empty_document_sums_to_nothing() {
        let s = summarize(&serde_json::json!({ "traceEvents": [] }));
        assert_eq!(s, Summary::default());
    }
}
