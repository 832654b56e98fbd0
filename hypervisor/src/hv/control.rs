//! Domains at run time: what the control domain may do to the others
//! (create, destroy, pause, unpause, list; `parapet_abi::domctl`), and the
//! control channel that brings the host's requests to it
//! (`parapet_abi::control`): marked lines of serial input, kept apart from
//! console input.

use parapet_abi::domctl::{self, DomainInfo, DomainRunState, DomctlOp, INFO_VCPUS};
use parapet_abi::vpsr::Virq;
use parapet_abi::HvError;
use zerocopy::{FromZeros, IntoBytes};

use super::{hvprintln, Hypervisor};
use crate::bootargs::Role;
use crate::console::Route;
use crate::lifecycle::{AfterStop, DomainState};
use crate::sched::VcpuRef;

use super::domain::Outcome;

impl Hypervisor {
    /// The control domain: the one the scenario marks `control`, else the
    /// driver domain, else none.
    pub(super) fn choose_control_domain(&mut self) {
        let domains = &self.domains[..self.domain_count];
        self.control_domain = domains
            .iter()
            .position(|d| d.control)
            .or_else(|| domains.iter().position(|d| d.role == Role::Driver));
    }

    /// `Perm` unless `d` is the control domain.
    pub(super) fn require_control(&self, d: usize) -> Result<(), HvError> {
        if self.control_domain == Some(d) {
            Ok(())
        } else {
            Err(HvError::Perm)
        }
    }

    fn domain_index(&self, id: u64) -> Result<usize, HvError> {
        usize::try_from(id)
            .ok()
            .filter(|&i| i < self.domain_count)
            .ok_or(HvError::NoDomain)
    }

    /// `DomctlList`: domain `id`'s record, into the caller's buffer.
    pub(super) fn domctl_list(
        &self,
        d: usize,
        id: u64,
        buf: u64,
        len: u64,
    ) -> Result<u64, HvError> {
        self.require_control(d)?;
        // Past the last slot is the end of the list, not an unknown domain.
        let i = self.domain_index(id).map_err(|_| HvError::NoEnt)?;
        if len < core::mem::size_of::<DomainInfo>() as u64 {
            return Err(HvError::Inval);
        }
        let info = self.domain_info(i);
        self.copy_to_guest(d, buf, info.as_bytes())?;
        Ok(self.domain_count as u64)
    }

    fn domain_info(&self, i: usize) -> DomainInfo {
        let dom = &self.domains[i];
        let mut info = DomainInfo::new_zeroed();
        info.id = u32::try_from(i).unwrap_or(u32::MAX);
        let state = match dom.state {
            DomainState::Running if dom.paused => DomainRunState::Paused,
            DomainState::Running => DomainRunState::Running,
            DomainState::Exited(_) => DomainRunState::Exited,
            DomainState::Crashed => DomainRunState::Crashed,
            DomainState::Off | DomainState::Empty => DomainRunState::Off,
        };
        info.state = state.to_raw();
        let flag = |on: bool, bit: u32| if on { bit } else { 0 };
        info.flags = flag(dom.role == Role::Driver, domctl::flags::DRIVER)
            | flag(self.control_domain == Some(i), domctl::flags::CONTROL)
            | flag(dom.autostart, domctl::flags::AUTOSTART);
        info.vcpu_count = u32::try_from(dom.vcpu_count).unwrap_or(0);
        info.name = dom.name;
        for (c, &cpu) in info.vcpu_cpus.iter_mut().zip(&dom.cpus).take(INFO_VCPUS) {
            *c = u8::try_from(cpu).unwrap_or(u8::MAX);
        }
        info.ram_kib = dom.ram_size / 1024;
        info.table_frames = u32::try_from(dom.tables_used).unwrap_or(u32::MAX);
        info.grants_mapped = u32::try_from(self.maps[i].len()).unwrap_or(u32::MAX);
        info.ports_bound = if dom.alive() {
            u32::try_from(self.events.table(super::domain_id(i)).in_use()).unwrap_or(u32::MAX)
        } else {
            0
        };
        info.crashes = dom.crashes;
        info.restarts = dom.restarts;
        info.creates = dom.creates;
        if dom.alive() {
            let ticks = crate::arch::sysregs::counter().saturating_sub(dom.started_at);
            info.uptime_ms = ticks.saturating_mul(1000) / self.freq.max(1);
        }
        info
    }

    /// `DomctlTotals`: the frame pool.
    pub(super) fn domctl_totals(&self, d: usize) -> Result<[u64; 3], HvError> {
        self.require_control(d)?;
        Ok([
            self.frames.free() as u64,
            self.frames.total() as u64,
            self.frames_at_start as u64,
        ])
    }

    /// `DomctlOp`: create, destroy, pause or unpause domain `id`.
    pub(super) fn domctl_op(&mut self, d: usize, op: u64, id: u64) -> Result<(), HvError> {
        self.require_control(d)?;
        let op = DomctlOp::from_raw(op).ok_or(HvError::Inval)?;
        let i = self.domain_index(id)?;
        let dom = &self.domains[i];
        match op {
            DomctlOp::Create => {
                let stopped = matches!(
                    dom.state,
                    DomainState::Off | DomainState::Exited(_) | DomainState::Crashed
                );
                // Its memory must be back first (it comes back once no CPU
                // runs the old instance).
                if !stopped || dom.after_stop != AfterStop::Nothing || dom.tables_reserved {
                    return Err(HvError::Busy);
                }
                match self.start_domain(i) {
                    Ok(()) => {
                        self.domains[i].creates += 1;
                        Ok(())
                    }
                    Err(e) => {
                        hvprintln!("domain {} not created: {e}", self.domains[i].name());
                        Err(e.to_hv_error())
                    }
                }
            }
            DomctlOp::Destroy => {
                if i == d {
                    return Err(HvError::Inval);
                }
                if !dom.alive() {
                    return Err(HvError::Busy);
                }
                self.stop_domain(i, Outcome::Destroyed);
                // Its memory comes back now, unless another CPU still runs
                // it (kicked, that CPU does it in its own dispatch): this
                // call takes no dispatch, so a create or a list that follows
                // would otherwise wait for this CPU's next one.
                self.run_after_stop(crate::arch::cpu_index());
                Ok(())
            }
            DomctlOp::Pause => {
                if i == d {
                    return Err(HvError::Inval);
                }
                if !dom.alive() || dom.paused {
                    return Err(HvError::Busy);
                }
                self.pause(i);
                Ok(())
            }
            DomctlOp::Unpause => {
                if !dom.alive() || !dom.paused {
                    return Err(HvError::Busy);
                }
                self.unpause(i);
                Ok(())
            }
        }
    }

    /// Takes domain `i`'s vCPUs off the CPUs: queued ones leave their
    /// queues, running ones are kicked off their CPU; events keep arriving
    /// (and stay pending) meanwhile.
    fn pause(&mut self, i: usize) {
        let here = crate::arch::cpu_index();
        self.domains[i].paused = true;
        let id = super::domain_id(i);
        for c in 0..self.cpu_count {
            self.cpus[c].queue.remove_domain(id);
            if self.cpus[c].current.is_some_and(|v| v.domain == id) && c != here {
                crate::arch::gic::kick(c);
            }
        }
        for v in &mut self.domains[i].vcpus {
            v.state.pause();
        }
        hvprintln!("domain {} paused", self.domains[i].name());
    }

    /// Puts domain `i`'s runnable vCPUs back on their CPUs.
    fn unpause(&mut self, i: usize) {
        let here = crate::arch::cpu_index();
        self.domains[i].paused = false;
        for n in 0..self.domains[i].vcpu_count {
            let v = &mut self.domains[i].vcpus[n];
            if v.state.unpause() {
                let cpu = v.cpu;
                let r = VcpuRef {
                    domain: super::domain_id(i),
                    vcpu: super::vcpu_id(n),
                };
                self.enqueue(cpu, here, r);
                if cpu != here {
                    crate::arch::gic::kick(cpu);
                }
            }
        }
        hvprintln!("domain {} unpaused", self.domains[i].name());
    }

    /// Routes one byte of serial input: console input, or a control request
    /// (a marked line), raising `Virq::Control` in the control domain when a
    /// request is complete. Returns whether console input arrived.
    pub(super) fn route_input(&mut self, b: u8) -> bool {
        match self.demux.route(b) {
            Route::Console(b) => return self.console_in.push(b),
            Route::Control(b) => {
                self.control_in.push(b);
            }
            Route::ControlEnd => {
                self.control_in.push(b'\n');
                match self.control_domain.filter(|&c| self.domains[c].alive()) {
                    Some(c) => self.raise_virq(
                        VcpuRef {
                            domain: super::domain_id(c),
                            vcpu: 0,
                        },
                        Virq::Control,
                    ),
                    None => {
                        // Nobody to serve it: say so rather than let it sit.
                        let mut line = [0u8; parapet_abi::control::REQUEST_MAX + 1];
                        let n = self.control_in.pop_into(&mut line);
                        let text = core::str::from_utf8(&line[..n]).unwrap_or("?").trim_end();
                        hvprintln!("control request `{text}` dropped: no control domain runs");
                    }
                }
            }
            Route::Nowhere => {}
        }
        false
    }

    /// `ControlRead`: hands queued control requests to the control domain.
    pub(super) fn control_read(&mut self, d: usize, ipa: u64, len: u64) -> Result<u64, HvError> {
        self.require_control(d)?;
        let mut buf = [0u8; crate::console::INPUT_MAX];
        let want = usize::try_from(len).unwrap_or(usize::MAX).min(buf.len());
        let n = self.control_in.peek_into(&mut buf[..want]);
        self.copy_to_guest(d, ipa, &buf[..n])?;
        self.control_in.consume(n);
        Ok(n as u64)
    }
}
