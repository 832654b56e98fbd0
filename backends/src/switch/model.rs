//! Property tests of the switch against a capacity-free model.

extern crate std;
use super::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::vec::Vec;

use super::tests::{frame, switch};

/// The reference: a map with no capacity limit.
struct Model {
    ports: [(bool, Option<MacAddr>); MAX_PORTS],
    seen: HashMap<MacAddr, (PortId, u64)>,
}

impl Model {
    fn lookup(&self, mac: MacAddr, now: u64) -> Option<PortId> {
        let &(p, t) = self.seen.get(&mac)?;
        (now.saturating_sub(t) <= AGE && self.ports[p as usize].0).then_some(p)
    }

    fn forward(&mut self, in_port: PortId, frame: &[u8], now: u64) -> Decision {
        use DropReason::*;
        if frame.len() < FRAME_MIN {
            return Decision::Drop(TooShort);
        }
        if frame.len() > FRAME_MAX {
            return Decision::Drop(TooLong);
        }
        let dst = MacAddr(frame[0..6].try_into().unwrap());
        let src = MacAddr(frame[6..12].try_into().unwrap());
        let Some(&(up, fixed)) = self.ports.get(in_port as usize) else {
            return Decision::Drop(BadPort);
        };
        if !up {
            return Decision::Drop(PortDown);
        }
        if src.0[0] & 1 != 0 {
            return Decision::Drop(SourceMulticast);
        }
        if fixed.is_some_and(|m| m != src) {
            return Decision::Drop(Spoofed);
        }
        self.seen.insert(src, (in_port, now));
        if dst.0[0] & 1 == 0 {
            match self.lookup(dst, now) {
                Some(p) if p == in_port => return Decision::Drop(SameSegment),
                Some(p) => return Decision::Unicast(p),
                None => {}
            }
        }
        let m = PortMask(
            (0..MAX_PORTS)
                .filter(|&p| self.ports[p].0 && p != in_port as usize)
                .fold(0, |m, p| m | 1 << p),
        );
        if m.is_empty() {
            Decision::Drop(NoPorts)
        } else {
            Decision::Flood(m)
        }
    }

    fn port_down(&mut self, port: PortId) {
        if let Some(p) = self.ports.get_mut(port as usize) {
            p.0 = false;
            self.seen.retain(|_, (q, _)| *q != port);
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    Frame {
        port: PortId,
        src: usize,
        dst: usize,
        len: usize,
        dt: u64,
        /// On a port with a fixed MAC, send from it rather than `src`.
        honest: bool,
    },
    Down(PortId),
    Up(PortId),
}

/// Addresses used by the tests: `n` unicast stations, then two group addresses.
fn pool(n: usize) -> Vec<MacAddr> {
    let mut v: Vec<_> = (0..n)
        .map(|i| MacAddr([0x02, 0xcc, 0, 0, (i >> 8) as u8, i as u8]))
        .collect();
    v.push(MacAddr::BROADCAST);
    v.push(MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    v
}

/// Up to `max_steps` steps; `jumps` percent of frames come after a long
/// pause (up to twice [`AGE`]).
fn steps(n_macs: usize, max_steps: usize, jumps: u32) -> impl Strategy<Value = Vec<Step>> {
    let frame = (
        0..MAX_PORTS as PortId + 2,
        0..n_macs + 2,
        0..n_macs + 2,
        prop_oneof![8 => 14usize..100, 1 => 0usize..1600],
        prop_oneof![100 - jumps => 0u64..1000, jumps => 0u64..2 * AGE],
        proptest::bool::weighted(0.8),
    )
        .prop_map(|(port, src, dst, len, dt, honest)| Step::Frame {
            port,
            src,
            dst,
            len,
            dt,
            honest,
        });
    let step = prop_oneof![
        20 => frame,
        1 => (0..MAX_PORTS as PortId + 1).prop_map(Step::Down),
        2 => (0..MAX_PORTS as PortId + 1).prop_map(Step::Up),
    ];
    proptest::collection::vec(step, 1..max_steps)
}

/// Port configurations: up or down, and (with probability `vifs`) a fixed
/// MAC (a pool index) or none.
fn config(n_macs: usize, vifs: f64) -> impl Strategy<Value = Vec<(bool, Option<usize>)>> {
    proptest::collection::vec(
        (
            proptest::bool::weighted(0.75),
            proptest::option::weighted(vifs, 0..n_macs),
        ),
        MAX_PORTS,
    )
}

/// Runs `steps` through a switch and the model; `exact` demands identical
/// decisions (only valid below the table's capacity), otherwise checks the
/// invariants that hold whatever the switch forgot.
fn check(
    cfg: &[(bool, Option<usize>)],
    steps: &[Step],
    n_macs: usize,
    exact: bool,
) -> Result<(), TestCaseError> {
    let macs = pool(n_macs);
    let mut sw = Switch::new();
    let mut model = Model {
        ports: [(false, None); MAX_PORTS],
        seen: HashMap::new(),
    };
    for (p, &(up, fixed)) in cfg.iter().enumerate() {
        let fixed = fixed.map(|i| macs[i]);
        sw.set_port(p as PortId, up, fixed);
        model.ports[p] = (up, fixed);
    }
    let mut now = 0u64;
    let mut frames = 0u64;
    for step in steps {
        match *step {
            Step::Down(p) => {
                sw.port_down(p);
                model.port_down(p);
            }
            Step::Up(p) => {
                let fixed = model.ports.get(p as usize).and_then(|q| q.1);
                sw.set_port(p, true, fixed);
                if let Some(q) = model.ports.get_mut(p as usize) {
                    q.0 = true;
                }
            }
            Step::Frame {
                port,
                src,
                dst,
                len,
                dt,
                honest,
            } => {
                now += dt;
                frames += 1;
                let src = match model.ports.get(port as usize).and_then(|q| q.1) {
                    Some(fixed) if honest => fixed,
                    _ => macs[src],
                };
                let f = frame(macs[dst], src, len);
                let up_before = sw.up_ports();
                let got = sw.forward(port, &f, now);
                let want = model.forward(port, &f, now);
                match got {
                    Decision::Unicast(p) => {
                        prop_assert_ne!(p, port);
                        prop_assert!(up_before.contains(p));
                        // Only where that address was last seen, and fresh.
                        prop_assert_eq!(model.lookup(macs[dst], now), Some(p));
                    }
                    Decision::Flood(m) => {
                        prop_assert!(!m.is_empty());
                        prop_assert!(!m.contains(port));
                        prop_assert_eq!(m.0 & !up_before.0, 0);
                    }
                    Decision::Drop(_) => {}
                }
                if exact {
                    prop_assert_eq!(got, want);
                } else if got != want {
                    // A full table only forgets: the switch may flood
                    // what the model knows, nothing else.
                    prop_assert!(
                        matches!(
                            want,
                            Decision::Unicast(_) | Decision::Drop(DropReason::SameSegment)
                        ),
                        "got {:?}, want {:?}",
                        got,
                        want
                    );
                    prop_assert!(matches!(
                        got,
                        Decision::Flood(_) | Decision::Drop(DropReason::NoPorts)
                    ));
                }
            }
        }
    }
    let s = sw.stats();
    prop_assert_eq!(s.unicast + s.flooded + s.dropped_total(), frames);
    prop_assert!(sw.learned(now) <= TABLE_SIZE);
    Ok(())
}

/// More stations than the table holds.
const BIG: usize = TABLE_SIZE + 32;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matches_model_below_capacity(cfg in config(24, 0.4), steps in steps(24, 300, 10)) {
        check(&cfg, &steps, 24, true)?;
    }

    #[test]
    fn invariants_hold_beyond_capacity(cfg in config(BIG, 0.1), steps in steps(BIG, 800, 1)) {
        check(&cfg, &steps, BIG, false)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(port in any::<u8>(), bytes in proptest::collection::vec(any::<u8>(), 0..1600), now in any::<u64>()) {
        let mut sw = switch(4);
        sw.forward(port, &bytes, now);
        let _ = sw.lookup(MacAddr([0; 6]), now);
    }

}
