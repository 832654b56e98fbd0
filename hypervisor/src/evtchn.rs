//! Event-channel port tables: allocation, binding, closing and where a send
//! goes. The shared pending/mask bits and the kick are the caller's (`hv`);
//! this module is pure bookkeeping and is tested on the host.
#![deny(unsafe_code)]

use parapet_abi::event::{is_valid_port, Port, PortStatus, MAX_PORTS};
use parapet_abi::vpsr::{Virq, NR_VIRQS};
use parapet_abi::HvError;

use crate::convert::usize_from;

/// Most vCPUs per domain (as the ABI's layout).
const MAX_VCPUS: usize = usize_from(parapet_abi::layout::MAX_VCPUS);

// A table stores port numbers as `u16`.
const _: () = assert!(MAX_PORTS <= 1 << 16);

/// `port`, a number a guest passed, as a port of a table: `Inval` unless it
/// is in `1..MAX_PORTS`.
fn port_number(port: u64) -> Result<u16, HvError> {
    if !is_valid_port(port) {
        return Err(HvError::Inval);
    }
    u16::try_from(port).map_err(|_| HvError::Inval)
}

/// What one port is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    /// Not allocated.
    Free,
    /// Allocated for `remote` to bind.
    Unbound {
        /// The domain allowed to bind.
        remote: u8,
    },
    /// Connected to `remote_port` of `remote`.
    Interdomain {
        /// The peer domain.
        remote: u8,
        /// The peer's port.
        remote_port: u16,
    },
    /// A virtual IRQ.
    Virq(Virq),
    /// An inter-vCPU port.
    Ipi,
    /// A device interrupt passed through to the domain (its GIC INTID).
    Pirq(u16),
    /// The peer closed its end or stopped.
    Closed {
        /// The peer domain that was.
        remote: u8,
    },
}

#[derive(Clone, Copy, Debug)]
struct PortEntry {
    state: PortState,
    /// The vCPU notified when this port becomes pending.
    vcpu: u8,
}

/// One domain's ports.
#[derive(Clone, Debug)]
pub struct EventTable {
    ports: [PortEntry; MAX_PORTS as usize],
    virq_ports: [[u16; NR_VIRQS]; MAX_VCPUS],
    /// Successful sends by this domain.
    pub sends: u64,
}

impl Default for EventTable {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// Where a send lands: a port of a domain, notifying one of its vCPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The domain to notify.
    pub domain: u8,
    /// Its port to set pending.
    pub port: Port,
    /// Its vCPU to notify.
    pub vcpu: u8,
}

impl EventTable {
    /// A table with every port free.
    pub const EMPTY: EventTable = EventTable {
        ports: [PortEntry {
            state: PortState::Free,
            vcpu: 0,
        }; MAX_PORTS as usize],
        virq_ports: [[0; NR_VIRQS]; MAX_VCPUS],
        sends: 0,
    };

    fn alloc(&mut self, state: PortState, vcpu: u8) -> Result<u16, HvError> {
        let port = (1..=u16::MAX)
            .take_while(|&p| u32::from(p) < MAX_PORTS)
            .find(|&p| self.ports[usize::from(p)].state == PortState::Free)
            .ok_or(HvError::NoMem)?;
        self.ports[usize::from(port)] = PortEntry { state, vcpu };
        Ok(port)
    }

    fn entry(&self, port: u64) -> Result<&PortEntry, HvError> {
        Ok(&self.ports[usize::from(port_number(port)?)])
    }

    /// The port bound to `virq` on `vcpu`, if any.
    pub fn virq_port(&self, vcpu: u8, virq: Virq) -> Option<Port> {
        match self.virq_ports[vcpu as usize % MAX_VCPUS][virq as usize] {
            0 => None,
            p => Some(Port::from(p)),
        }
    }

    /// The state of `port`.
    pub fn state(&self, port: u64) -> Result<PortState, HvError> {
        Ok(self.entry(port)?.state)
    }

    /// Ports not free.
    pub fn in_use(&self) -> usize {
        self.ports
            .iter()
            .filter(|p| p.state != PortState::Free)
            .count()
    }
}

/// The port tables of every domain. Operations that connect two domains
/// change both tables at once.
pub struct EventTables<const N: usize> {
    tables: [EventTable; N],
    /// Device interrupt `intid` → the `(domain, port)` it is bound to.
    pirqs: [Option<(u8, u16)>; MAX_PIRQ],
}

/// Device interrupts that can be bound are the SPIs below this INTID (QEMU
/// `virt` puts its devices at SPIs 0..=95).
pub const PIRQ_LIMIT: u32 = 128;
/// [`PIRQ_LIMIT`], as the length of the table of bound device interrupts.
pub const MAX_PIRQ: usize = PIRQ_LIMIT as usize;
/// The first SPI: INTIDs below are SGIs and PPIs, never passed through.
pub const FIRST_SPI: u32 = 32;

impl<const N: usize> Default for EventTables<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> EventTables<N> {
    /// Every domain with every port free.
    pub const fn new() -> Self {
        Self {
            tables: [const { EventTable::EMPTY }; N],
            pirqs: [None; MAX_PIRQ],
        }
    }

    /// Domain `d`'s table.
    pub fn table(&self, d: u8) -> &EventTable {
        &self.tables[d as usize]
    }

    /// Domain `d`'s table, mutably.
    pub fn table_mut(&mut self, d: u8) -> &mut EventTable {
        &mut self.tables[d as usize]
    }

    /// `EvtchnAllocUnbound`: a port of `d` that only `remote` may bind.
    /// `remote_alive` says whether the remote domain exists and runs.
    pub fn alloc_unbound(
        &mut self,
        d: u8,
        remote: u64,
        remote_alive: bool,
    ) -> Result<Port, HvError> {
        if remote >= N as u64 || !remote_alive {
            return Err(HvError::NoDomain);
        }
        let remote = u8::try_from(remote).map_err(|_| HvError::NoDomain)?;
        self.tables[d as usize]
            .alloc(PortState::Unbound { remote }, 0)
            .map(Port::from)
    }

    /// `EvtchnBindInterdomain`: connects a new port of `d` to `remote_port` of
    /// `remote`, which must be unbound and allocated for `d`.
    pub fn bind_interdomain(
        &mut self,
        d: u8,
        remote: u64,
        remote_port: u64,
        remote_alive: bool,
    ) -> Result<Port, HvError> {
        if remote >= N as u64 || !remote_alive {
            return Err(HvError::NoDomain);
        }
        let r = u8::try_from(remote).map_err(|_| HvError::NoDomain)?;
        let rp = port_number(remote_port)?;
        match self.tables[r as usize].ports[usize::from(rp)].state {
            PortState::Unbound { remote: allowed } if allowed == d => {}
            PortState::Unbound { .. } => return Err(HvError::Access),
            _ => return Err(HvError::NoEnt),
        }
        // `connect` overwrites the placeholder state at once (also for a
        // loopback channel, where both ends are `d`'s).
        let local = self.tables[d as usize].alloc(PortState::Closed { remote: r }, 0)?;
        self.connect(d, local, r, rp);
        Ok(local.into())
    }

    fn connect(&mut self, a: u8, pa: u16, b: u8, pb: u16) {
        self.tables[a as usize].ports[usize::from(pa)].state = PortState::Interdomain {
            remote: b,
            remote_port: pb,
        };
        self.tables[b as usize].ports[usize::from(pb)].state = PortState::Interdomain {
            remote: a,
            remote_port: pa,
        };
    }

    /// `EvtchnBindVirq`.
    pub fn bind_virq(
        &mut self,
        d: u8,
        virq: u64,
        vcpu: u64,
        vcpus: usize,
    ) -> Result<Port, HvError> {
        let virq = Virq::from_raw(virq).ok_or(HvError::Inval)?;
        if vcpu >= vcpus as u64 {
            return Err(HvError::NoEnt);
        }
        let vcpu = u8::try_from(vcpu).map_err(|_| HvError::NoEnt)?;
        let t = &mut self.tables[d as usize];
        if t.virq_ports[usize::from(vcpu)][virq as usize] != 0 {
            return Err(HvError::Busy);
        }
        let port = t.alloc(PortState::Virq(virq), vcpu)?;
        t.virq_ports[usize::from(vcpu)][virq as usize] = port;
        Ok(port.into())
    }

    /// `EvtchnBindIpi`.
    pub fn bind_ipi(&mut self, d: u8, vcpu: u64, vcpus: usize) -> Result<Port, HvError> {
        if vcpu >= vcpus as u64 {
            return Err(HvError::NoEnt);
        }
        let vcpu = u8::try_from(vcpu).map_err(|_| HvError::NoEnt)?;
        self.tables[d as usize]
            .alloc(PortState::Ipi, vcpu)
            .map(Port::from)
    }

    /// `EvtchnBindPirq`: a port of `d` (notifying vCPU 0) for device
    /// interrupt `intid`. `owns(intid)` says whether the device is `d`'s; the
    /// caller enables the interrupt.
    pub fn bind_pirq(
        &mut self,
        d: u8,
        intid: u64,
        owns: impl Fn(u32) -> bool,
    ) -> Result<Port, HvError> {
        if intid < u64::from(FIRST_SPI) || intid >= MAX_PIRQ as u64 {
            return Err(HvError::Inval);
        }
        let intid = u16::try_from(intid).map_err(|_| HvError::Inval)?;
        if !owns(intid.into()) {
            return Err(HvError::Access);
        }
        if self.pirqs[usize::from(intid)].is_some() {
            return Err(HvError::Busy);
        }
        let port = self.tables[d as usize].alloc(PortState::Pirq(intid), 0)?;
        self.pirqs[usize::from(intid)] = Some((d, port));
        Ok(port.into())
    }

    /// Where device interrupt `intid` goes, if a domain bound it.
    pub fn pirq_target(&self, intid: u32) -> Option<Target> {
        let (domain, port) = (*self.pirqs.get(intid as usize)?)?;
        Some(Target {
            domain,
            port: port.into(),
            vcpu: self.tables[domain as usize].ports[port as usize].vcpu,
        })
    }

    /// Whether `d` has bound device interrupt `intid` (`IrqEoi` is allowed).
    pub fn pirq_bound_by(&self, d: u8, intid: u64) -> bool {
        matches!(self.pirqs.get(usize_from(intid)), Some(Some((owner, _))) if *owner == d)
    }

    /// `EvtchnClose`: frees `port` of `d`; an interdomain peer sees `Closed`.
    /// Returns that peer's port, `(domain, port)`, for the caller to wake.
    pub fn close(&mut self, d: u8, port: u64) -> Result<Option<(u8, Port)>, HvError> {
        let port = port_number(port)?;
        let state = self.tables[d as usize].ports[usize::from(port)].state;
        let mut peer_to_wake = None;
        match state {
            PortState::Free => return Err(HvError::NoEnt),
            PortState::Interdomain {
                remote,
                remote_port,
            } if remote != d => {
                let peer = &mut self.tables[remote as usize].ports[remote_port as usize];
                if peer.state
                    == (PortState::Interdomain {
                        remote: d,
                        remote_port: port,
                    })
                {
                    peer.state = PortState::Closed { remote: d };
                    peer_to_wake = Some((remote, Port::from(remote_port)));
                }
            }
            PortState::Interdomain { remote_port, .. } => {
                // Loopback: the other end becomes closed too.
                let peer = &mut self.tables[d as usize].ports[remote_port as usize];
                if remote_port != port {
                    peer.state = PortState::Closed { remote: d };
                }
            }
            PortState::Virq(virq) => {
                let t = &mut self.tables[d as usize];
                let vcpu = usize::from(t.ports[usize::from(port)].vcpu);
                t.virq_ports[vcpu][virq as usize] = 0;
            }
            PortState::Pirq(intid) => self.pirqs[intid as usize] = None,
            _ => {}
        }
        self.tables[d as usize].ports[usize::from(port)] = PortEntry {
            state: PortState::Free,
            vcpu: 0,
        };
        Ok(peer_to_wake)
    }

    /// `EvtchnStatus`.
    pub fn status(&self, d: u8, port: u64) -> Result<PortStatus, HvError> {
        let e = self.tables[d as usize].entry(port)?;
        Ok(match e.state {
            PortState::Free => PortStatus::Free,
            PortState::Unbound { remote } => PortStatus::Unbound {
                remote: remote.into(),
            },
            PortState::Interdomain {
                remote,
                remote_port,
            } => PortStatus::Interdomain {
                remote: remote.into(),
                remote_port: remote_port.into(),
            },
            PortState::Virq(v) => PortStatus::Virq {
                virq: v as u32,
                vcpu: e.vcpu.into(),
            },
            PortState::Ipi => PortStatus::Ipi {
                vcpu: e.vcpu.into(),
            },
            PortState::Pirq(intid) => PortStatus::Pirq {
                intid: intid.into(),
            },
            PortState::Closed { remote } => PortStatus::Closed {
                remote: remote.into(),
            },
        })
    }

    /// `EvtchnSend`: where a send on `port` of `d` lands. `alive(domain)` says
    /// whether a domain runs.
    pub fn send_target(
        &mut self,
        d: u8,
        port: u64,
        alive: impl Fn(u8) -> bool,
    ) -> Result<Target, HvError> {
        let port = port_number(port)?;
        let e = self.tables[d as usize].ports[usize::from(port)];
        let target = match e.state {
            PortState::Interdomain {
                remote,
                remote_port,
            } => {
                if !alive(remote) {
                    return Err(HvError::NoDomain);
                }
                let vcpu = self.tables[remote as usize].ports[remote_port as usize].vcpu;
                Target {
                    domain: remote,
                    port: remote_port.into(),
                    vcpu,
                }
            }
            PortState::Ipi => Target {
                domain: d,
                port: port.into(),
                vcpu: e.vcpu,
            },
            PortState::Closed { remote } if !alive(remote) => return Err(HvError::NoDomain),
            // Free, unbound, closed, or a VIRQ (only the hypervisor raises those).
            _ => return Err(HvError::NoEnt),
        };
        self.tables[d as usize].sends += 1;
        Ok(target)
    }

    /// Where `virq` for vCPU `vcpu` of `d` goes, if it is bound to a port.
    pub fn virq_target(&self, d: u8, vcpu: u8, virq: Virq) -> Option<Target> {
        self.tables[d as usize]
            .virq_port(vcpu, virq)
            .map(|port| Target {
                domain: d,
                port,
                vcpu,
            })
    }

    /// `EvtchnUnmask`: the vCPU a pending port of `d` notifies.
    pub fn bound_vcpu(&self, d: u8, port: u64) -> Result<u8, HvError> {
        let e = self.tables[d as usize].entry(port)?;
        if e.state == PortState::Free {
            return Err(HvError::NoEnt);
        }
        Ok(e.vcpu)
    }

    /// Domain `d` stopped: frees all its ports (their peers see `Closed`) and
    /// turns the unbound ports others allocated for it into closed ones.
    /// Returns the peers whose ports changed, as `(domain, port)` pairs through
    /// `notify`, so the caller can wake them.
    pub fn teardown(&mut self, d: u8, mut notify: impl FnMut(u8, Port)) {
        for port in 1..MAX_PORTS {
            if self.tables[d as usize].ports[port as usize].state != PortState::Free {
                if let Ok(Some((peer, peer_port))) = self.close(d, port.into()) {
                    notify(peer, peer_port);
                }
            }
        }
        self.tables[d as usize].sends = 0;
        for (i, t) in self.tables.iter_mut().enumerate() {
            if i == d as usize {
                continue;
            }
            for p in t.ports.iter_mut() {
                if p.state == (PortState::Unbound { remote: d }) {
                    p.state = PortState::Closed { remote: d };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type T = EventTables<4>;

    #[test]
    fn device_interrupts_bind_to_their_owner_only() {
        let mut t = T::new();
        let owns = |intid| intid == 48;
        assert_eq!(t.bind_pirq(0, 27, owns), Err(HvError::Inval), "a PPI");
        assert_eq!(t.bind_pirq(0, 500, owns), Err(HvError::Inval));
        assert_eq!(t.bind_pirq(1, 49, owns), Err(HvError::Access));
        let p = t.bind_pirq(0, 48, owns).unwrap();
        assert_eq!(t.bind_pirq(0, 48, owns), Err(HvError::Busy));
        assert_eq!(
            t.pirq_target(48),
            Some(Target {
                domain: 0,
                port: p,
                vcpu: 0
            })
        );
        assert!(t.pirq_bound_by(0, 48));
        assert!(!t.pirq_bound_by(1, 48));
        assert_eq!(t.status(0, p.into()), Ok(PortStatus::Pirq { intid: 48 }));
        assert_eq!(
            t.send_target(0, p.into(), alive),
            Err(HvError::NoEnt),
            "only the hypervisor raises a device port"
        );
        t.teardown(0, |_, _| {});
        assert_eq!(t.pirq_target(48), None, "teardown unbinds it");
        assert!(
            t.bind_pirq(0, 48, owns).is_ok(),
            "and it can be bound again"
        );
    }

    fn alive(_: u8) -> bool {
        true
    }

    #[test]
    fn unbound_bind_send_both_ways() {
        let mut t = T::new();
        let p1 = t.alloc_unbound(1, 2, true).unwrap();
        assert_eq!(p1, 1, "port 0 is never handed out");
        assert_eq!(
            t.status(1, p1.into()),
            Ok(PortStatus::Unbound { remote: 2 })
        );
        let p2 = t.bind_interdomain(2, 1, p1.into(), true).unwrap();
        assert_eq!(
            t.send_target(2, p2.into(), alive),
            Ok(Target {
                domain: 1,
                port: p1,
                vcpu: 0
            })
        );
        assert_eq!(
            t.send_target(1, p1.into(), alive),
            Ok(Target {
                domain: 2,
                port: p2,
                vcpu: 0
            })
        );
        assert_eq!(t.table(2).sends, 1);
    }

    #[test]
    fn foreign_and_invalid_ports_are_refused() {
        let mut t = T::new();
        let p1 = t.alloc_unbound(1, 2, true).unwrap();
        // Domain 3 may not bind a port meant for domain 2.
        assert_eq!(
            t.bind_interdomain(3, 1, p1.into(), true),
            Err(HvError::Access)
        );
        // Not unbound.
        assert_eq!(t.bind_interdomain(2, 1, 5, true), Err(HvError::NoEnt));
        assert_eq!(t.bind_interdomain(2, 1, 0, true), Err(HvError::Inval));
        assert_eq!(
            t.bind_interdomain(2, 1, u64::from(MAX_PORTS), true),
            Err(HvError::Inval)
        );
        assert_eq!(t.bind_interdomain(2, 9, 1, true), Err(HvError::NoDomain));
        assert_eq!(t.alloc_unbound(1, 2, false), Err(HvError::NoDomain));
        // Sending on a port the caller does not hold (it is domain 1's).
        assert_eq!(t.send_target(3, p1.into(), alive), Err(HvError::NoEnt));
        // Sending on an unbound port.
        assert_eq!(t.send_target(1, p1.into(), alive), Err(HvError::NoEnt));
        assert_eq!(t.send_target(1, 0, alive), Err(HvError::Inval));
        assert_eq!(t.send_target(1, 1 << 40, alive), Err(HvError::Inval));
        assert_eq!(t.close(1, 77), Err(HvError::NoEnt));
    }

    #[test]
    fn close_leaves_the_peer_closed() {
        let mut t = T::new();
        let p1 = t.alloc_unbound(1, 2, true).unwrap();
        let p2 = t.bind_interdomain(2, 1, p1.into(), true).unwrap();
        t.close(1, p1.into()).unwrap();
        assert_eq!(t.status(2, p2.into()), Ok(PortStatus::Closed { remote: 1 }));
        assert_eq!(t.send_target(2, p2.into(), alive), Err(HvError::NoEnt));
        assert_eq!(
            t.send_target(2, p2.into(), |d| d != 1),
            Err(HvError::NoDomain)
        );
        assert_eq!(t.status(1, p1.into()), Ok(PortStatus::Free));
        // The freed number is reused.
        assert_eq!(t.alloc_unbound(1, 3, true), Ok(p1));
    }

    #[test]
    fn dead_peer_gives_nodomain_and_teardown_closes() {
        let mut t = T::new();
        let p1 = t.alloc_unbound(1, 2, true).unwrap();
        let p2 = t.bind_interdomain(2, 1, p1.into(), true).unwrap();
        let spare = t.alloc_unbound(3, 1, true).unwrap();
        assert_eq!(
            t.send_target(2, p2.into(), |d| d != 1),
            Err(HvError::NoDomain)
        );
        let mut notified = Vec::new();
        t.teardown(1, |d, p| notified.push((d, p)));
        assert_eq!(notified, vec![(2, p2)]);
        assert_eq!(t.table(1).in_use(), 0);
        assert_eq!(t.status(2, p2.into()), Ok(PortStatus::Closed { remote: 1 }));
        assert_eq!(
            t.status(3, spare.into()),
            Ok(PortStatus::Closed { remote: 1 })
        );
    }

    #[test]
    fn virq_and_ipi_binding() {
        let mut t = T::new();
        let p = t.bind_virq(1, Virq::Timer as u64, 1, 2).unwrap();
        assert_eq!(t.bind_virq(1, Virq::Timer as u64, 1, 2), Err(HvError::Busy));
        assert_eq!(t.bind_virq(1, 99, 0, 2), Err(HvError::Inval));
        assert_eq!(t.bind_virq(1, 0, 2, 2), Err(HvError::NoEnt));
        assert_eq!(
            t.virq_target(1, 1, Virq::Timer),
            Some(Target {
                domain: 1,
                port: p,
                vcpu: 1
            })
        );
        assert_eq!(t.virq_target(1, 0, Virq::Timer), None);
        // Guests cannot send on a VIRQ port.
        assert_eq!(t.send_target(1, p.into(), alive), Err(HvError::NoEnt));
        t.close(1, p.into()).unwrap();
        assert_eq!(t.virq_target(1, 1, Virq::Timer), None);
        let ipi = t.bind_ipi(1, 1, 2).unwrap();
        assert_eq!(
            t.send_target(1, ipi.into(), alive),
            Ok(Target {
                domain: 1,
                port: ipi,
                vcpu: 1
            })
        );
        assert_eq!(t.bind_ipi(1, 5, 2), Err(HvError::NoEnt));
    }

    #[test]
    fn loopback_channel() {
        let mut t = T::new();
        let a = t.alloc_unbound(1, 1, true).unwrap();
        let b = t.bind_interdomain(1, 1, a.into(), true).unwrap();
        assert_eq!(t.send_target(1, a.into(), alive).unwrap().port, b);
        assert_eq!(t.send_target(1, b.into(), alive).unwrap().port, a);
        t.close(1, a.into()).unwrap();
        assert_eq!(t.status(1, b.into()), Ok(PortStatus::Closed { remote: 1 }));
    }

    #[test]
    fn numbers_beyond_every_integer_width_are_refused_not_truncated() {
        let mut t = T::new();
        let p = t.alloc_unbound(1, 2, true).unwrap();
        // Would name domain 2, vCPU 0 or port `p` if cut to 8, 16 or 32 bits.
        for big in [1 << 8 | 2, 1 << 16 | 2, 1 << 32 | 2, u64::MAX] {
            assert_eq!(t.alloc_unbound(1, big, true), Err(HvError::NoDomain));
            assert_eq!(
                t.bind_interdomain(2, big, p.into(), true),
                Err(HvError::NoDomain)
            );
            assert_eq!(t.bind_virq(1, 0, big, 2), Err(HvError::NoEnt));
            assert_eq!(t.bind_ipi(1, big, 2), Err(HvError::NoEnt));
            assert_eq!(t.bind_pirq(1, big, |_| true), Err(HvError::Inval));
            assert!(!t.pirq_bound_by(1, big));
        }
        for big in [1 << 16 | u64::from(p), 1 << 32 | u64::from(p), u64::MAX] {
            assert_eq!(t.bind_interdomain(2, 1, big, true), Err(HvError::Inval));
            assert_eq!(t.status(1, big), Err(HvError::Inval));
            assert_eq!(t.bound_vcpu(1, big), Err(HvError::Inval));
            assert_eq!(t.send_target(1, big, alive), Err(HvError::Inval));
            assert_eq!(t.close(1, big), Err(HvError::Inval));
        }
        assert_eq!(t.status(1, p.into()), Ok(PortStatus::Unbound { remote: 2 }));
    }

    #[test]
    fn ports_run_out_explicitly() {
        let mut t = T::new();
        for _ in 1..MAX_PORTS {
            t.alloc_unbound(1, 2, true).unwrap();
        }
        assert_eq!(t.alloc_unbound(1, 2, true), Err(HvError::NoMem));
    }
}
