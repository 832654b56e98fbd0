//! The states of a domain and of a vCPU, and the transitions the hypervisor
//! allows between them. Portable and tested on the host; the mechanism
//! (queues, timers, registers) acts on what these transitions return.
#![deny(unsafe_code)]

/// Where a domain is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainState {
    /// The slot holds no domain.
    Empty,
    /// The slot holds a domain that does not run: loaded but not started
    /// (`autostart = false`), or destroyed. The control domain may create it.
    Off,
    /// Its vCPUs may run.
    Running,
    /// It shut down with this exit code.
    Exited(u64),
    /// It crashed (a fault, or it reported one).
    Crashed,
}

/// What a domain's end leaves to do once no CPU runs it any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterStop {
    /// Nothing (it was never started, or it is dealt with already).
    Nothing,
    /// Start it again in place (`on_crash = "restart"`).
    Restart,
    /// Give back its RAM and stage-2 tables.
    Reclaim,
}

impl DomainState {
    /// Whether its vCPUs may run.
    pub fn alive(self) -> bool {
        self == DomainState::Running
    }

    /// The domain ends: `Some(new state)` if it was running, `None` if it
    /// had already ended (a second end changes nothing).
    pub fn end(self, crashed: bool, code: u64) -> Option<DomainState> {
        match self {
            DomainState::Running if crashed => Some(DomainState::Crashed),
            DomainState::Running => Some(DomainState::Exited(code)),
            _ => None,
        }
    }
}

/// Where a vCPU is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuState {
    /// Not started, or its domain ended.
    Off,
    /// Waits in its CPU's run queue.
    Runnable,
    /// Is its CPU's current vCPU.
    Running,
    /// Waits for an event (`Block`, `wfi`).
    Blocked,
    /// Its domain is paused; it was runnable (or running).
    Paused,
    /// Its domain is paused; it was waiting for an event.
    PausedBlocked,
}

impl VcpuState {
    /// Something is pending for the vCPU: a blocked vCPU becomes runnable
    /// (a paused one only once its domain is unpaused). Returns whether it
    /// must be put on its run queue.
    pub fn wake(&mut self) -> bool {
        match *self {
            VcpuState::Blocked => {
                *self = VcpuState::Runnable;
                true
            }
            VcpuState::PausedBlocked => {
                *self = VcpuState::Paused;
                false
            }
            _ => false,
        }
    }

    /// Its domain is paused: it leaves the CPU (the caller takes it off the
    /// run queue and its CPU).
    pub fn pause(&mut self) {
        *self = match *self {
            VcpuState::Runnable | VcpuState::Running => VcpuState::Paused,
            VcpuState::Blocked => VcpuState::PausedBlocked,
            other => other,
        };
    }

    /// Its domain is unpaused. Returns whether it must be put on its run
    /// queue.
    pub fn unpause(&mut self) -> bool {
        match *self {
            VcpuState::Paused => {
                *self = VcpuState::Runnable;
                true
            }
            VcpuState::PausedBlocked => {
                *self = VcpuState::Blocked;
                false
            }
            _ => false,
        }
    }

    /// The running vCPU waits for an event, unless one is already pending.
    /// Returns whether it gave up the CPU.
    pub fn block(&mut self, pending: bool) -> bool {
        if pending || *self != VcpuState::Running {
            return false;
        }
        *self = VcpuState::Blocked;
        true
    }

    /// Whether it can receive events (it has been started and not stopped).
    pub fn is_on(self) -> bool {
        self != VcpuState::Off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_ends_once() {
        let s = DomainState::Running;
        assert!(s.alive());
        assert_eq!(s.end(false, 3), Some(DomainState::Exited(3)));
        assert_eq!(s.end(true, 0), Some(DomainState::Crashed));
        for ended in [
            DomainState::Exited(0),
            DomainState::Crashed,
            DomainState::Empty,
            DomainState::Off,
        ] {
            assert!(!ended.alive());
            assert_eq!(ended.end(true, 0), None);
        }
    }

    #[test]
    fn vcpu_wake_and_block() {
        let mut v = VcpuState::Running;
        assert!(!v.block(true), "something pending: it does not block");
        assert_eq!(v, VcpuState::Running);
        assert!(v.block(false));
        assert_eq!(v, VcpuState::Blocked);
        assert!(v.wake());
        assert_eq!(v, VcpuState::Runnable);
        assert!(!v.wake(), "already queued");
        // Paused, an event is recorded but the vCPU stays off the CPU.
        for (before, paused, woken, after) in [
            (
                VcpuState::Running,
                VcpuState::Paused,
                VcpuState::Paused,
                VcpuState::Runnable,
            ),
            (
                VcpuState::Runnable,
                VcpuState::Paused,
                VcpuState::Paused,
                VcpuState::Runnable,
            ),
            (
                VcpuState::Blocked,
                VcpuState::PausedBlocked,
                VcpuState::Paused,
                VcpuState::Runnable,
            ),
        ] {
            let mut v = before;
            v.pause();
            assert_eq!(v, paused);
            assert!(!v.wake(), "not queued while paused");
            assert_eq!(v, woken);
            assert!(v.unpause());
            assert_eq!(v, after);
        }
        let mut v = VcpuState::Blocked;
        v.pause();
        assert!(!v.unpause(), "still waiting: not queued");
        assert_eq!(v, VcpuState::Blocked);
        let mut off = VcpuState::Off;
        assert!(!off.wake());
        assert!(!off.block(false));
        assert!(!off.is_on());
    }
}
