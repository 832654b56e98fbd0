//! The byte channel in instructions: one CPU under `-icount shift=0`, the
//! PMU counting every instruction the CPU retires (both guests, the
//! hypervisor) over a fixed number of 4 KiB messages, next to the
//! instructions of the receiver's own memcpy of one message. Deterministic,
//! so part of the baseline ([`super::gate`]), and comparable with Xen 4.17's
//! figures measured the same way ([`XEN_BEYOND_COPIES`]).

use std::fmt::Write as _;

use serde::Serialize;

use super::ring::{check_sizes, parse_ring};
use super::BenchError;

/// The scenario of the instruction count (1 CPU, `-icount shift=0`).
pub const ICOUNT_SCENARIO: &str = "scenarios/bench-ring-icount.toml";
/// The ring sizes measured, as `(ring-pages=N of the receiver, slots of
/// 4 KiB)`: the data area is `N - 1` pages. 64 slots is the most the byte
/// channel takes (1 + 2 × 65 granted pages) and Xen's figure; 32 and 16 as
/// well, to see what a smaller ring costs.
pub const ICOUNT_RINGS: [(u32, u64); 3] = [(65, 64), (33, 32), (17, 16)];
/// Xen 4.17 (vchan, same method): instructions per 4 KiB message beyond the
/// two copies, by ring slots.
pub const XEN_BEYOND_COPIES: [(u64, u64); 2] = [(64, 222), (16, 777)];
/// Xen 4.17 with 64 slots: memcpy instructions / ring instructions.
pub const XEN_RATIO_64: f64 = 0.264;

/// One instruction count. Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IcountResult {
    /// Message size in bytes.
    pub size: u64,
    /// Messages the ring holds.
    pub slots: u64,
    /// Messages counted.
    pub msgs: u64,
    /// Instructions per message (the CPU's, both guests and the hypervisor).
    pub instructions_per_msg: f64,
    /// Instructions of one memcpy of a message.
    pub memcpy_instructions: f64,
    /// `instructions_per_msg - 2 * memcpy_instructions`: what the channel
    /// costs beyond the copy in and the copy out.
    pub beyond_two_copies: f64,
    /// `memcpy_instructions / instructions_per_msg`: the ring/memcpy
    /// throughput ratio if every instruction took as long.
    pub ratio: f64,
}

impl IcountResult {
    /// The name of a figure of this result in the baseline and the tables,
    /// e.g. `ring_4096_32slots_per_msg`.
    pub fn figure_name(&self, what: &str) -> String {
        format!("ring_{}_{}slots_{what}", self.size, self.slots)
    }

    /// `(name, value rounded to an instruction)` of its deterministic figures.
    pub fn figures(&self) -> [(String, u64); 3] {
        let r = |v: f64| v.round().max(0.0) as u64;
        [
            (self.figure_name("per_msg"), r(self.instructions_per_msg)),
            (self.figure_name("beyond_copies"), r(self.beyond_two_copies)),
            (self.figure_name("memcpy"), r(self.memcpy_instructions)),
        ]
    }
}

/// Reads and checks the lines of one instruction-count run (the checks of
/// `bench ring`, one `bench ring icount` line per size, nothing zero).
pub fn icount_run<S: AsRef<str>>(lines: &[S]) -> Result<Vec<IcountResult>, BenchError> {
    let parsed = parse_ring(lines)?;
    let pairs = check_sizes(&parsed)?;
    let mut out = Vec::new();
    for (_, rx) in pairs {
        let mut counts = parsed.icount.iter().filter(|i| i.size == rx.size);
        let Some(c) = counts.next() else {
            return Err(BenchError::Missing(format!(
                "`bench ring icount size={}` (the receiver did not count instructions; \
                 its command line needs `icount`)",
                rx.size
            )));
        };
        if counts.next().is_some() {
            return Err(BenchError::Duplicate(format!(
                "`bench ring icount size={}` printed twice",
                rx.size
            )));
        }
        for (name, v) in [
            ("msgs", c.msgs),
            ("instructions", c.instructions),
            ("memcpy_msgs", c.memcpy_msgs),
            ("memcpy_instructions", c.memcpy_instructions),
            ("slots", c.slots),
        ] {
            if v == 0 {
                return Err(BenchError::Inconsistent {
                    size: c.size,
                    problem: format!("{name}=0 in {}", c.line),
                });
            }
        }
        let per_msg = c.instructions as f64 / c.msgs as f64;
        let memcpy = c.memcpy_instructions as f64 / c.memcpy_msgs as f64;
        out.push(IcountResult {
            size: c.size,
            slots: c.slots,
            msgs: c.msgs,
            instructions_per_msg: per_msg,
            memcpy_instructions: memcpy,
            beyond_two_copies: per_msg - 2.0 * memcpy,
            ratio: memcpy / per_msg,
        });
    }
    Ok(out)
}

/// The table, for stdout, with Xen 4.17's figures where it has them.
pub fn icount_report(results: &[IcountResult]) -> String {
    let mut s = String::from(
        "bench ring: instructions per message, 1 CPU, -icount shift=0 (both guests and the hypervisor)\n",
    );
    let _ = writeln!(
        s,
        "{:>8} {:>6} {:>7} {:>12} {:>8} {:>14} {:>7}  Xen 4.17 beyond copies",
        "size B", "slots", "msgs", "instr/msg", "memcpy", "beyond copies", "ratio"
    );
    for r in results {
        let xen = XEN_BEYOND_COPIES
            .iter()
            .find(|(slots, _)| *slots == r.slots)
            .map_or_else(|| "-".to_owned(), |(_, x)| x.to_string());
        let _ = writeln!(
            s,
            "{:>8} {:>6} {:>7} {:>12.1} {:>8.1} {:>14.1} {:>7.3}  {xen}",
            r.size,
            r.slots,
            r.msgs,
            r.instructions_per_msg,
            r.memcpy_instructions,
            r.beyond_two_copies,
            r.ratio
        );
    }
    let _ = writeln!(
        s,
        "  Xen 4.17, 64 slots: {} beyond the two copies, ratio {XEN_RATIO_64}; 16 slots: {}",
        XEN_BEYOND_COPIES[0].1, XEN_BEYOND_COPIES[1].1
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::test_support::root;

    fn run(instructions: u64, memcpy: u64) -> Vec<String> {
        vec![
            "[ring-tx] bench ring tx size=4096 msgs=1184 notify=1".into(),
            format!(
                "[ring-rx] bench ring icount size=4096 slots=32 msgs=1024 \
                 instructions={instructions} memcpy_msgs=64 memcpy_instructions={memcpy} checksum=ok"
            ),
            "[ring-rx] bench ring rx size=4096 msgs=1184 bytes=4849664 notify=0 switches=76 \
             windows=0 work=copy checksum=ok"
                .into(),
            "[ring-rx] bench ring done sizes=1".into(),
        ]
    }

    #[test]
    fn hand_checked_instructions() {
        // 4096 instructions per message, 1024 per memcpy.
        let r = icount_run(&run(4096 * 1024, 1024 * 64)).unwrap();
        assert_eq!(
            r,
            [IcountResult {
                size: 4096,
                slots: 32,
                msgs: 1024,
                instructions_per_msg: 4096.0,
                memcpy_instructions: 1024.0,
                beyond_two_copies: 2048.0,
                ratio: 0.25,
            }]
        );
        assert_eq!(
            r[0].figures(),
            [
                ("ring_4096_32slots_per_msg".to_owned(), 4096),
                ("ring_4096_32slots_beyond_copies".to_owned(), 2048),
                ("ring_4096_32slots_memcpy".to_owned(), 1024),
            ]
        );
        // Rounded to the nearest instruction.
        let r = icount_run(&run(4_636_212, 133_378)).unwrap();
        assert_eq!(
            r[0].figures().map(|(_, v)| v),
            [4528, 4528 - 2 * 2084 - 1, 2084]
        );
        let report = icount_report(&r);
        assert!(report.contains("4527.6"), "{report}");
        assert!(report.contains("Xen 4.17, 64 slots: 222"), "{report}");
    }

    #[test]
    fn icount_errors() {
        let mut lines = run(1, 1);
        lines.remove(1);
        let e = icount_run(&lines).unwrap_err().to_string();
        assert!(e.contains("`bench ring icount size=4096`"), "{e}");
        let e = icount_run(&run(0, 1)).unwrap_err().to_string();
        assert!(
            e.contains("instructions=0 in [ring-rx] bench ring icount"),
            "{e}"
        );
        let bad: Vec<String> = run(5, 5)
            .into_iter()
            .map(|l| {
                l.replace(
                    "instructions=5 memcpy_msgs=64 memcpy_instructions=5 checksum=ok",
                    "instructions=5 memcpy_msgs=64 memcpy_instructions=5 checksum=bad",
                )
            })
            .collect();
        assert_eq!(
            icount_run(&bad).unwrap_err(),
            BenchError::BadChecksum { size: 4096 }
        );
        let mut twice = run(5, 5);
        twice.insert(1, twice[1].clone());
        assert!(icount_run(&twice)
            .unwrap_err()
            .to_string()
            .contains("printed twice"));
    }

    #[test]
    fn the_icount_scenario_is_one_cpu_under_icount() {
        let s = crate::scenario::load(&root().join(ICOUNT_SCENARIO), &root())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.machine.cpus, 1, "-icount with 2 CPUs stalls");
        assert!(s.machine.icount);
        assert_eq!(s.domain_names(), ["driver", "ring-tx", "ring-rx"]);
        let cmd = |n: &str| {
            s.domains
                .iter()
                .find(|d| d.name == n)
                .and_then(|d| d.cmdline.clone())
                .unwrap()
        };
        assert!(cmd("ring-rx").split_whitespace().any(|w| w == "icount"));
        assert!(cmd("ring-tx").contains("sizes=4096"));
    }
}
