//! Event channels, guest side: binding ports, sending, masking, and per-port
//! handlers run by the upcall dispatcher.
//!
//! A port's pending bit is cleared before its handler runs, so an event that
//! arrives during the handler runs it again. A pending port with no handler is
//! acknowledged silently: it still wakes a vCPU blocked in
//! [`hypercall::block`](crate::hypercall::block), which is how waiting code
//! (see [`wait_until`]) uses events.
#![deny(unsafe_code)]

use core::sync::atomic::Ordering;

use parapet_abi::event::{EventPage, Port, PortStatus, MAX_PORTS, WORDS};
use parapet_abi::vpsr::{Virq, Vpsr};
use parapet_abi::{Call, HvError};

use crate::handler_slot::Slot;
use crate::hypercall::call_plain;

/// A domain id.
pub type DomId = u32;

/// A per-port handler; it runs with interrupts (soft-)masked.
pub type PortHandler = fn(Port);

/// Port handlers and the domain's event page. The dispatcher reads a
/// handler with one load ([`Slot`]), no lock.
pub(crate) struct Ports {
    handlers: [Slot<PortHandler>; MAX_PORTS as usize],
    page: spin::Once<&'static EventPage>,
}

impl Ports {
    pub(crate) const fn new() -> Self {
        Self {
            handlers: [const { Slot::new() }; MAX_PORTS as usize],
            page: spin::Once::new(),
        }
    }

    #[cfg_attr(not(target_os = "none"), allow(dead_code))]
    pub(crate) fn set_page(&self, page: &'static EventPage) {
        self.page.call_once(|| page);
    }

    fn handler(&self, port: Port) -> Option<PortHandler> {
        self.handlers.get(port as usize)?.get()
    }

    fn set_handler(&self, port: Port, handler: Option<PortHandler>) {
        if let Some(slot) = self.handlers.get(port as usize) {
            slot.set(handler);
        }
    }

    /// Takes the words flagged in `vpsr.pending_sel`, acknowledges each
    /// pending, unmasked port and runs its handler. Returns the ports taken.
    /// Calls the handlers of the pending, unmasked ports flagged in
    /// `pending_sel`. With `switch_safe`, the words not yet looked at (and
    /// the current one) are flagged again before each handler, so that a
    /// handler that switches threads strands none of them.
    pub(crate) fn dispatch(&self, vpsr: &Vpsr, switch_safe: bool) -> u32 {
        let Some(page) = self.page.get() else {
            return 0;
        };
        let mut taken = 0;
        let mut sel = vpsr.pending_sel.swap(0, Ordering::SeqCst);
        while sel != 0 {
            let w = sel.trailing_zeros() as usize;
            sel &= sel - 1;
            if w >= WORDS {
                continue;
            }
            let mut bits = page.deliverable(w);
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                let port = (w as u32) * 64 + b;
                if page.clear_pending(port) {
                    taken += 1;
                    if let Some(h) = self.handler(port) {
                        if switch_safe {
                            vpsr.pending_sel.fetch_or(sel | 1 << w, Ordering::SeqCst);
                            vpsr.pending.store(1, Ordering::SeqCst);
                        }
                        h(port);
                    }
                }
            }
        }
        taken
    }
}

pub(crate) static PORTS: Ports = Ports::new();

fn page() -> Result<&'static EventPage, HvError> {
    PORTS.page.get().copied().ok_or(HvError::NotSupported)
}

fn port_arg(port: Port) -> Result<u64, HvError> {
    if parapet_abi::event::is_valid_port(port.into()) {
        Ok(port.into())
    } else {
        Err(HvError::Inval)
    }
}

/// `EvtchnAllocUnbound`: a port that only `remote` may bind.
pub fn alloc_unbound(remote: DomId) -> Result<Port, HvError> {
    Ok(call_plain(Call::EvtchnAllocUnbound {
        remote: remote.into(),
    })?[0] as Port)
}

/// `EvtchnBindInterdomain`: connects to `remote_port` of `remote`.
pub fn bind_interdomain(remote: DomId, remote_port: Port) -> Result<Port, HvError> {
    Ok(call_plain(Call::EvtchnBindInterdomain {
        remote: remote.into(),
        remote_port: remote_port.into(),
    })?[0] as Port)
}

/// `EvtchnBindVirq`: delivers `virq` for `vcpu` through a port.
pub fn bind_virq(virq: Virq, vcpu: u32) -> Result<Port, HvError> {
    Ok(call_plain(Call::EvtchnBindVirq {
        virq: virq as u64,
        vcpu: vcpu.into(),
    })?[0] as Port)
}

/// `EvtchnBindIpi`: a port that notifies `vcpu` of this domain.
pub fn bind_ipi(vcpu: u32) -> Result<Port, HvError> {
    Ok(call_plain(Call::EvtchnBindIpi { vcpu: vcpu.into() })?[0] as Port)
}

/// `EvtchnBindPirq`: a port for the interrupt `intid` of a device passed
/// through to this domain. Each time it fires the hypervisor masks it and
/// sends the port; call [`irq_eoi`] once the device is served.
pub fn bind_pirq(intid: u32) -> Result<Port, HvError> {
    Ok(call_plain(Call::EvtchnBindPirq {
        intid: intid.into(),
    })?[0] as Port)
}

/// `IrqEoi`: unmasks device interrupt `intid` (bound with [`bind_pirq`]).
pub fn irq_eoi(intid: u32) -> Result<(), HvError> {
    call_plain(Call::IrqEoi {
        intid: intid.into(),
    })
    .map(|_| ())
}

/// `EvtchnSend`: notifies the other end of `port`.
pub fn send(port: Port) -> Result<(), HvError> {
    call_plain(Call::EvtchnSend { port: port.into() }).map(|_| ())
}

/// `EvtchnClose`: frees `port` (its handler is removed too).
pub fn close(port: Port) -> Result<(), HvError> {
    let p = port_arg(port)?;
    call_plain(Call::EvtchnClose { port: p })?;
    PORTS.set_handler(port, None);
    if let Ok(page) = page() {
        page.clear_pending(port);
        page.unmask(port);
    }
    Ok(())
}

/// `EvtchnStatus`.
pub fn status(port: Port) -> Result<PortStatus, HvError> {
    let r = call_plain(Call::EvtchnStatus { port: port.into() })?;
    PortStatus::from_raw(r).ok_or(HvError::Inval)
}

/// Masks `port`: a plain store in the shared page, no hypercall.
pub fn mask(port: Port) -> Result<(), HvError> {
    port_arg(port)?;
    page()?.mask(port);
    Ok(())
}

/// Unmasks `port`; asks the hypervisor to re-raise it only if it is pending.
pub fn unmask(port: Port) -> Result<(), HvError> {
    let p = port_arg(port)?;
    if page()?.unmask(port) {
        call_plain(Call::EvtchnUnmask { port: p })?;
    }
    Ok(())
}

/// Whether `port` is pending (not yet acknowledged by the dispatcher).
pub fn is_pending(port: Port) -> bool {
    page().is_ok_and(|p| port_arg(port).is_ok() && p.is_pending(port))
}

/// Runs `handler` whenever `port` fires (on whichever vCPU dispatches it).
pub fn set_handler(port: Port, handler: PortHandler) -> Result<(), HvError> {
    port_arg(port)?;
    PORTS.set_handler(port, Some(handler));
    Ok(())
}

/// Removes `port`'s handler; its events still wake blocked vCPUs.
pub fn clear_handler(port: Port) -> Result<(), HvError> {
    port_arg(port)?;
    PORTS.set_handler(port, None);
    Ok(())
}

/// Waits until `ready()` holds, through [`crate::wait`]: blocks this vCPU by
/// default (checking with interrupts masked, then blocking: the hypervisor
/// wakes it on any event or virtual IRQ, even while soft-masked; unmasking
/// dispatches handlers, then it checks again), or parks the calling thread
/// when a guest OS installed its wait hook. No wake-up is lost.
pub fn wait_until(mut ready: impl FnMut() -> bool) -> Result<(), HvError> {
    crate::wait::wait_until(None, || ready().then_some(())).map_err(|e| match e {
        crate::wait::WaitError::Hv(e) => e,
        crate::wait::WaitError::TimedOut => HvError::Busy,
    })
}

/// As [`wait_until`], giving up at counter value `deadline`
/// (`Err(WaitError::TimedOut)`).
pub fn wait_until_deadline(
    deadline: u64,
    mut ready: impl FnMut() -> bool,
) -> Result<(), crate::wait::WaitError> {
    crate::wait::wait_until(Some(deadline), || ready().then_some(()))
}

/// Hypervisor counters for benchmarks ([`Call::Stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stats {
    /// World switches on all CPUs since boot.
    pub world_switches: u64,
    /// Events this domain sent.
    pub events_sent: u64,
    /// Hypercalls this domain made.
    pub hypercalls: u64,
}

/// `Stats`.
pub fn stats() -> Result<Stats, HvError> {
    let r = call_plain(Call::Stats)?;
    Ok(Stats {
        world_switches: r[0],
        events_sent: r[1],
        hypercalls: r[2],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use zerocopy::FromZeros;

    static SEEN: AtomicU32 = AtomicU32::new(0);
    fn on_port(port: Port) {
        SEEN.fetch_add(port, Ordering::SeqCst);
    }

    fn raise(page: &EventPage, vpsr: &Vpsr, port: Port) {
        if page.set_pending(port) && !page.is_masked(port) {
            vpsr.pending_sel
                .fetch_or(1 << (port / 64), Ordering::SeqCst);
            vpsr.pending.store(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn dispatch_acks_runs_handlers_and_honours_masks() {
        let ports = Ports::new();
        let page: &'static EventPage = Box::leak(Box::new(EventPage::new_zeroed()));
        ports.set_page(page);
        ports.set_handler(3, Some(on_port));
        ports.set_handler(130, Some(on_port));
        let vpsr = Vpsr::new_zeroed();
        raise(page, &vpsr, 3);
        raise(page, &vpsr, 130);
        raise(page, &vpsr, 7); // no handler: acknowledged silently
        page.mask(200);
        raise(page, &vpsr, 200);
        assert_eq!(ports.dispatch(&vpsr, false), 3);
        assert_eq!(SEEN.load(Ordering::SeqCst), 133);
        assert!(!page.is_pending(3) && !page.is_pending(7));
        assert!(page.is_pending(200), "masked ports stay pending");
        assert_eq!(vpsr.pending_sel.load(Ordering::SeqCst), 0);
        // Unmasking finds it pending: the guest then asks for a re-raise.
        assert!(page.unmask(200));
    }

    #[test]
    fn bad_ports_are_refused_locally() {
        assert_eq!(set_handler(0, on_port), Err(HvError::Inval));
        assert_eq!(set_handler(MAX_PORTS, on_port), Err(HvError::Inval));
        assert_eq!(mask(0), Err(HvError::Inval));
        assert!(!is_pending(0));
    }
}
