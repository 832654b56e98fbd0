//! Getting a vCPU's attention: event-channel sends, virtual IRQs, the
//! per-vCPU one-shot timers, physical interrupts (the EL2 timer, the UART,
//! passed-through devices) and console input.

use core::sync::atomic::Ordering;

use parapet_abi::event::{self, Port};
use parapet_abi::layout;
use parapet_abi::trace::{TraceEvent, TraceVcpu};
use parapet_abi::vpsr::Virq;

use super::trace::{self, trace_event, tv};
use super::vcpu::Vcpu;
use super::{domain_id, vcpu_id, CpuSched, Hypervisor, CONSOLE};
use crate::arch::{gic, timer};
use crate::bootargs::Role;
use crate::evtchn::{Target, FIRST_SPI};
use crate::sched::VcpuRef;

impl Hypervisor {
    /// Records `virq` pending for `v` and makes sure it is noticed: wakes the
    /// vCPU if blocked, kicks its CPU if that is another one. Delivery to a
    /// vCPU that runs here happens in `prepare_entry` (or `deliver_now`).
    pub(super) fn raise_virq(&mut self, v: VcpuRef, virq: Virq) {
        if !self.vcpu(v).state.is_on() {
            return;
        }
        if let Some(target) = self.events.virq_target(v.domain, v.vcpu, virq) {
            self.send_event(target);
            return;
        }
        let vpsr = self.vcpu(v).vpsr();
        vpsr.pending_virqs.fetch_or(virq.bit(), Ordering::SeqCst);
        self.notify_vcpu(v);
    }

    /// Raises `virq` on vCPU 0 of every running domain but `except`.
    pub(super) fn raise_virq_all(&mut self, virq: Virq, except: usize) {
        for d in 0..self.domain_count {
            if d != except && self.domains[d].alive() {
                self.raise_virq(
                    VcpuRef {
                        domain: domain_id(d),
                        vcpu: 0,
                    },
                    virq,
                );
            }
        }
    }

    /// Marks `v` as having work pending and makes sure it notices: wakes it if
    /// blocked (queued on its CPU, with preemption re-armed there), kicks its
    /// CPU if that is another one, raises the upcall at once if it is the
    /// vCPU loaded here.
    pub(super) fn notify_vcpu(&mut self, v: VcpuRef) {
        let here = crate::arch::cpu_index();
        let vcpu = self.vcpu_mut(v);
        if !vcpu.state.is_on() {
            return;
        }
        vcpu.vpsr().pending.store(1, Ordering::SeqCst);
        let cpu = vcpu.cpu;
        let woken = vcpu.state.wake();
        if woken {
            trace_event!(TraceEvent::Wake { v: tv(v) });
            self.enqueue(cpu, here, v);
        }
        if cpu != here {
            gic::kick(cpu);
        } else if !woken && self.cpus[cpu].loaded == Some(v) && self.cpus[cpu].current == Some(v) {
            // A vCPU just woken is not running: `prepare_entry` delivers.
            Self::deliver_now(v, self.vcpu(v));
        }
    }

    /// Sets `t.port` pending in its domain and, if that is news and the port
    /// is not masked, flags the word in the bound vCPU's VPSR and notifies it
    /// (Xen's 2-level event delivery).
    pub(super) fn send_event(&mut self, t: Target) {
        let d = &self.domains[t.domain as usize];
        if !d.alive() || d.event_pa == 0 {
            return;
        }
        let page = d.events();
        if !page.set_pending(t.port) || page.is_masked(t.port) {
            return;
        }
        trace_event!(TraceEvent::EventPending {
            v: TraceVcpu {
                domain: t.domain,
                vcpu: t.vcpu,
            },
            port: t.port,
        });
        self.flag_port(t);
    }

    /// Makes `port` of `domain` pending on its bound vCPU, so that a peer
    /// whose port was just closed wakes up and sees it.
    pub(super) fn wake_port(&mut self, domain: u8, port: Port) {
        let vcpu = self.events.bound_vcpu(domain, port.into()).unwrap_or(0);
        self.send_event(Target { domain, port, vcpu });
    }

    pub(super) fn flag_port(&mut self, t: Target) {
        let v = VcpuRef {
            domain: t.domain,
            vcpu: t.vcpu,
        };
        let (w, _) = event::word_and_bit(t.port);
        self.vcpu(v)
            .vpsr()
            .pending_sel
            .fetch_or(1 << w, Ordering::SeqCst);
        self.notify_vcpu(v);
    }

    /// Raises the upcall in `v`, the loaded vCPU, if it has work pending and
    /// is not soft-masked. Inlined: it is on every guest entry.
    #[inline(always)]
    pub(super) fn deliver_now(v: VcpuRef, vcpu: &Vcpu) {
        let vpsr = vcpu.vpsr();
        if vpsr.pending.load(Ordering::SeqCst) != 0 && vpsr.irq_mask.load(Ordering::SeqCst) == 0 {
            let before = gic::read_lr0();
            gic::write_lr0(gic::lr_with_pending(before, layout::UPCALL_INTID));
            if trace::on() && before & gic::lr::STATE_PENDING == 0 {
                trace::upcall_raised(v);
            }
        }
    }

    // -----------------------------------------------------------------------
    // Timers

    /// Sets `v`'s one-shot timer (0 cancels) and re-arms this CPU's timer.
    pub(super) fn set_vcpu_timer(&mut self, cpu: usize, v: VcpuRef, deadline: u64) {
        self.vcpu_mut(v).timer_deadline = deadline;
        if deadline != 0 {
            let c = &mut self.cpus[self.vcpu(v).cpu];
            c.next_timer = c.next_timer.min(deadline);
        }
        let now = crate::arch::sysregs::counter();
        if deadline != 0 && now >= deadline {
            self.fire_timers(cpu, now);
            Self::deliver_now(v, self.vcpu(v));
        }
        self.program_timer(cpu);
    }

    /// Fires the one-shot timers of this CPU's vCPUs that are due. Looks at
    /// the vCPUs only when one may be due (`CpuSched::next_timer`), so a
    /// trap's cost does not grow with the number of domains.
    ///
    /// The test is inlined and the scan kept out of line, so that the common
    /// case (nothing due) costs a compare, not the scan's stack frame.
    #[inline(always)]
    pub(super) fn fire_timers(&mut self, cpu: usize, now: u64) {
        if now >= self.cpus[cpu].next_timer {
            self.fire_due_timers(cpu, now);
        }
    }

    #[inline(never)]
    fn fire_due_timers(&mut self, cpu: usize, now: u64) {
        let mut next = u64::MAX;
        for d in 0..self.domain_count {
            for i in 0..self.domains[d].vcpu_count {
                let v = &mut self.domains[d].vcpus[i];
                if v.cpu != cpu || !v.state.is_on() || v.timer_deadline == 0 {
                    continue;
                }
                if now < v.timer_deadline {
                    next = next.min(v.timer_deadline);
                    continue;
                }
                v.timer_deadline = 0;
                let v = VcpuRef {
                    domain: domain_id(d),
                    vcpu: vcpu_id(i),
                };
                trace_event!(TraceEvent::VcpuTimer { v: tv(v) });
                self.raise_virq(v, Virq::Timer);
            }
        }
        self.cpus[cpu].next_timer = next;
    }

    /// Arms the EL2 timer for the earliest of: the end of the time slice (if
    /// another vCPU waits) and the one-shot timers of this CPU's vCPUs.
    pub(super) fn program_timer(&self, cpu: usize) {
        program_cpu_timer(&self.cpus[cpu]);
    }

    // -----------------------------------------------------------------------
    // Physical interrupts and console input

    /// Acknowledges and ends every pending physical interrupt on this CPU.
    pub(super) fn handle_irqs(&mut self) {
        loop {
            let intid = gic::acknowledge();
            if intid == gic::INTID_SPURIOUS {
                break;
            }
            trace_event!(TraceEvent::Irq {
                v: trace::running_here(),
                intid,
            });
            if intid == gic::INTID_HYP_TIMER {
                // Level-triggered: silence it until `program_timer` re-arms it.
                timer::disable();
            } else if intid == self.uart_intid {
                self.console_input();
            } else if (FIRST_SPI..gic::INTID_SPURIOUS).contains(&intid) {
                // A passed-through device: masked until its domain's `IrqEoi`
                // (the device keeps a level interrupt asserted until served).
                self.gic.disable_spi(intid);
                if let Some(t) = self.events.pirq_target(intid) {
                    self.send_event(t);
                }
            }
            gic::end(intid);
        }
    }

    /// Chooses the console-input domain (the one the scenario names, else the
    /// driver domain, else domain 0) and turns on the UART's receive interrupt.
    pub(super) fn start_console_input(&mut self) {
        let domains = &self.domains[..self.domain_count];
        self.console_domain = domains
            .iter()
            .position(|d| d.console_input)
            .or_else(|| domains.iter().position(|d| d.role == Role::Driver))
            .unwrap_or(0);
        if let Some(uart) = CONSOLE.lock().as_mut() {
            uart.enable_rx_interrupt();
        }
        self.gic.enable_spi(self.uart_intid, self.mpidr[0]);
    }

    /// The UART received input: queue it (console input for the
    /// console-input domain, control requests for the control domain) and
    /// tell the domain concerned.
    fn console_input(&mut self) {
        // Bytes are taken from the UART in batches and routed after the
        // console lock is dropped: routing may print (a dropped control
        // request), which takes that lock again.
        let mut bytes = [0u8; 64];
        let mut got = false;
        loop {
            let mut n = 0;
            if let Some(uart) = CONSOLE.lock().as_mut() {
                while n < bytes.len() {
                    match uart.try_get() {
                        Some(b) => {
                            bytes[n] = b;
                            n += 1;
                        }
                        None => break,
                    }
                }
            }
            for &b in &bytes[..n] {
                got |= self.route_input(b);
            }
            if n < bytes.len() {
                break;
            }
        }
        let d = self.console_domain;
        if got && self.domain_alive(d as u64) {
            self.raise_virq(
                VcpuRef {
                    domain: super::domain_id(d),
                    vcpu: 0,
                },
                Virq::Console,
            );
        }
    }
}

/// [`Hypervisor::program_timer`] for one CPU's scheduling state.
#[inline(always)]
pub(super) fn program_cpu_timer(c: &CpuSched) {
    match crate::sched::timer_deadline(!c.queue.is_empty(), c.slice_end, c.next_timer) {
        u64::MAX => timer::disable(),
        deadline => timer::set_deadline(deadline),
    }
}
