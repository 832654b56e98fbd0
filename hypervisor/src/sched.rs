//! Scheduling policy: a per-CPU round-robin run queue of vCPU handles.
//!
//! The mechanism (saving and restoring vCPUs, the preemption timer) is in
//! `arch`; this module only decides who runs next, and is tested on the host.
#![deny(unsafe_code)]

/// A vCPU, named by domain index and vCPU index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VcpuRef {
    /// Index of the domain in the hypervisor's domain table.
    pub domain: u8,
    /// Index of the vCPU in its domain.
    pub vcpu: u8,
}

/// "No vCPU" in a word of [`VcpuRef::packed`].
pub const NO_VCPU: u32 = u32::MAX;

impl VcpuRef {
    /// As one word, `domain << 8 | vcpu`: how the per-CPU trap data names
    /// the running vCPU (never [`NO_VCPU`]).
    pub const fn packed(self) -> u32 {
        (self.domain as u32) << 8 | self.vcpu as u32
    }

    /// From a word made by [`Self::packed`].
    pub const fn from_packed(raw: u32) -> Self {
        let [vcpu, domain, ..] = raw.to_le_bytes();
        VcpuRef { domain, vcpu }
    }
}

/// Most vCPUs queued on one CPU: every vCPU of every domain, so that a push
/// can never fail.
pub const QUEUE_CAPACITY: usize =
    parapet_abi::layout::MAX_DOMAINS * crate::convert::usize_from(parapet_abi::layout::MAX_VCPUS);

/// A FIFO run queue with a fixed capacity.
#[derive(Clone, Copy, Debug)]
pub struct RunQueue {
    items: [VcpuRef; QUEUE_CAPACITY],
    head: usize,
    len: usize,
}

impl Default for RunQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl RunQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            items: [VcpuRef { domain: 0, vcpu: 0 }; QUEUE_CAPACITY],
            head: 0,
            len: 0,
        }
    }

    /// Number of queued vCPUs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `v` unless it is already queued. Returns false if the queue is full.
    pub fn push(&mut self, v: VcpuRef) -> bool {
        if self.contains(v) {
            return true;
        }
        if self.len == QUEUE_CAPACITY {
            return false;
        }
        self.items[(self.head + self.len) % QUEUE_CAPACITY] = v;
        self.len += 1;
        true
    }

    /// Takes the vCPU that has waited longest.
    pub fn pop(&mut self) -> Option<VcpuRef> {
        if self.len == 0 {
            return None;
        }
        let v = self.items[self.head];
        self.head = (self.head + 1) % QUEUE_CAPACITY;
        self.len -= 1;
        Some(v)
    }

    /// Whether `v` is queued.
    pub fn contains(&self, v: VcpuRef) -> bool {
        (0..self.len).any(|i| self.items[(self.head + i) % QUEUE_CAPACITY] == v)
    }

    /// Removes every queued vCPU of domain `domain`.
    pub fn remove_domain(&mut self, domain: u8) {
        let mut kept = RunQueue::new();
        while let Some(v) = self.pop() {
            if v.domain != domain {
                kept.push(v);
            }
        }
        *self = kept;
    }
}

/// What the scheduler decides when the current vCPU stops running or its
/// slice ends.
///
/// `current` is the vCPU on the CPU (if it may continue), `expired` whether
/// its time slice is over. A vCPU that may continue and whose slice is not over
/// keeps the CPU; otherwise the head of the queue runs and a still-runnable
/// current vCPU goes to the back.
pub fn pick_next(queue: &mut RunQueue, current: Option<VcpuRef>, expired: bool) -> Option<VcpuRef> {
    match current {
        Some(cur) if !expired || queue.is_empty() => Some(cur),
        Some(cur) => {
            let next = queue.pop();
            queue.push(cur);
            next
        }
        None => queue.pop(),
    }
}

/// When a CPU's timer must fire next: at the end of the running vCPU's time
/// slice if another vCPU waits for the CPU (`someone_waits`), and at the
/// earliest one-shot timer of the CPU's vCPUs (`next_timer`); `u64::MAX`
/// for never.
///
/// This is also what a wake-up re-arms: when a vCPU becomes runnable behind
/// the running one on the same CPU, the running one has at most the rest of
/// its slice, and none if its slice is already over (the deadline is in the
/// past, so the timer fires at once). So the woken vCPU runs within one time
/// slice even if the running one never traps.
pub fn timer_deadline(someone_waits: bool, slice_end: u64, next_timer: u64) -> u64 {
    let slice = if someone_waits { slice_end } else { u64::MAX };
    slice.min(next_timer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_round_trips() {
        for (domain, vcpu) in [(0, 0), (31, 7), (255, 255), (1, 0)] {
            let v = VcpuRef { domain, vcpu };
            assert_eq!(VcpuRef::from_packed(v.packed()), v);
            assert_ne!(v.packed(), NO_VCPU);
        }
        assert_eq!(VcpuRef { domain: 2, vcpu: 3 }.packed(), 0x203);
    }

    fn v(d: u8) -> VcpuRef {
        VcpuRef { domain: d, vcpu: 0 }
    }

    #[test]
    fn round_robin() {
        let mut q = RunQueue::new();
        q.push(v(1));
        q.push(v(2));
        // v(0) runs; its slice ends: 1 runs, 0 queued behind 2.
        assert_eq!(pick_next(&mut q, Some(v(0)), true), Some(v(1)));
        assert_eq!(pick_next(&mut q, Some(v(1)), true), Some(v(2)));
        assert_eq!(pick_next(&mut q, Some(v(2)), true), Some(v(0)));
        // not expired: keep running
        assert_eq!(pick_next(&mut q, Some(v(0)), false), Some(v(0)));
    }

    #[test]
    fn blocked_current_gives_way_and_idle_is_none() {
        let mut q = RunQueue::new();
        assert_eq!(pick_next(&mut q, None, false), None);
        q.push(v(3));
        assert_eq!(pick_next(&mut q, None, false), Some(v(3)));
        assert!(q.is_empty());
        // alone and expired: keeps the CPU
        assert_eq!(pick_next(&mut q, Some(v(3)), true), Some(v(3)));
    }

    #[test]
    fn a_wakeup_preempts_within_the_slice_even_without_a_trap() {
        // Alone, with no one-shot timer: no timer at all.
        assert_eq!(timer_deadline(false, 1_000, u64::MAX), u64::MAX);
        assert_eq!(timer_deadline(false, 1_000, 700), 700);
        // A wake-up: the running vCPU keeps the rest of its slice...
        assert_eq!(timer_deadline(true, 1_000, u64::MAX), 1_000);
        assert_eq!(timer_deadline(true, 1_000, 700), 700);
        // ... and when the timer fires the woken vCPU runs.
        let mut q = RunQueue::new();
        q.push(v(2));
        let now = 1_000;
        assert_eq!(pick_next(&mut q, Some(v(1)), now >= 1_000), Some(v(2)));
        // A slice long over (it ran alone): the deadline is in the past, so
        // the timer fires at once.
        assert!(timer_deadline(true, 1_000, u64::MAX) < 5_000);
    }

    #[test]
    fn no_duplicates_capacity_and_removal() {
        let mut q = RunQueue::new();
        assert!(q.push(v(1)));
        assert!(q.push(v(1)));
        assert_eq!(q.len(), 1);
        for i in 0..QUEUE_CAPACITY - 1 {
            let v = VcpuRef {
                domain: 2 + u8::try_from(i / 8).unwrap(),
                vcpu: u8::try_from(i % 8).unwrap(),
            };
            assert!(q.push(v));
        }
        assert!(!q.push(v(250)));
        for d in 2..2 + u8::try_from(QUEUE_CAPACITY / 8).unwrap() {
            q.remove_domain(d);
        }
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop(), Some(v(1)));
    }
}
