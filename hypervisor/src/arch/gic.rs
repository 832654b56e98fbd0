//! GICv3: distributor and redistributor set-up, the physical CPU interface
//! (acknowledge, end, SGIs) and the virtual CPU interface (list register 0
//! carries the upcall PPI).

use core::ptr::{read_volatile, write_volatile};

/// Distributor registers (offsets from GICD base).
mod gicd {
    pub const CTLR: usize = 0x0000;
    /// CTLR: affinity routing, group 1 enabled (security disabled view).
    pub const CTLR_ARE: u32 = 1 << 4;
    pub const CTLR_ENABLE_GRP1: u32 = 1 << 1;
    pub const CTLR_RWP: u32 = 1 << 31;
    pub const IGROUPR: usize = 0x0080;
    pub const ISENABLER: usize = 0x0100;
    pub const ICENABLER: usize = 0x0180;
    pub const IPRIORITYR: usize = 0x0400;
    pub const IROUTER: usize = 0x6000;
}

/// Redistributor registers (offsets from a CPU's RD_base; SGI frame at +64 KiB).
mod gicr {
    pub const FRAME_STRIDE: usize = 0x20000;
    pub const TYPER: usize = 0x0008;
    pub const TYPER_LAST: u64 = 1 << 4;
    pub const WAKER: usize = 0x0014;
    pub const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
    pub const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
    pub const SGI: usize = 0x10000;
    pub const IGROUPR0: usize = SGI + 0x0080;
    pub const ISENABLER0: usize = SGI + 0x0100;
    pub const ICENABLER0: usize = SGI + 0x0180;
    pub const IPRIORITYR: usize = SGI + 0x0400;
}

/// The SGI one CPU sends another to make it look at its run queue.
pub const SGI_KICK: u32 = 0;
/// The EL2 physical timer's PPI.
pub const INTID_HYP_TIMER: u32 = 26;
/// No interrupt pending.
pub const INTID_SPURIOUS: u32 = 1023;
const PRIORITY: u8 = 0xa0;

/// `ICH_LR<n>_EL2` fields.
pub mod lr {
    /// State: pending.
    pub const STATE_PENDING: u64 = 0b01 << 62;
    /// State: active.
    pub const STATE_ACTIVE: u64 = 0b10 << 62;
    /// State mask.
    pub const STATE_MASK: u64 = 0b11 << 62;
    /// Group 1.
    pub const GROUP1: u64 = 1 << 60;
    /// Priority field shift.
    pub const PRIORITY_SHIFT: u64 = 48;
}

/// `ICH_VMCR_EL2` for a new vCPU: group 1 enabled, priority mask 0xff.
pub const VMCR_INITIAL: u64 = (0xff << 24) | (1 << 1);

/// The list-register value that makes virtual INTID `intid` pending, keeping
/// it active if it was (so a new event during the handler raises the upcall
/// again once the handler ends).
pub fn lr_with_pending(current: u64, intid: u32) -> u64 {
    let state = match current & lr::STATE_MASK {
        lr::STATE_ACTIVE => lr::STATE_ACTIVE | lr::STATE_PENDING,
        s if s != 0 && (current & 0xffff_ffff) as u32 == intid => s,
        _ => lr::STATE_PENDING,
    };
    state | lr::GROUP1 | ((PRIORITY as u64) << lr::PRIORITY_SHIFT) | u64::from(intid)
}

/// MMIO base addresses of the GIC.
#[derive(Clone, Copy)]
pub struct Gic {
    /// Distributor.
    pub gicd: usize,
    /// First redistributor.
    pub gicr: usize,
}

impl Gic {
    fn read32(addr: usize) -> u32 {
        // SAFETY: `addr` is a GIC register inside the device region that the
        // EL2 identity map covers as device memory.
        unsafe { read_volatile(addr as *const u32) }
    }

    fn write32(addr: usize, v: u32) {
        // SAFETY: as for `read32`.
        unsafe { write_volatile(addr as *mut u32, v) }
    }

    fn read64(addr: usize) -> u64 {
        // SAFETY: as for `read32`.
        unsafe { read_volatile(addr as *const u64) }
    }

    /// Enables the distributor with affinity routing (CPU 0, once).
    pub fn init_distributor(&self) {
        Self::write32(
            self.gicd + gicd::CTLR,
            gicd::CTLR_ARE | gicd::CTLR_ENABLE_GRP1,
        );
        while Self::read32(self.gicd + gicd::CTLR) & gicd::CTLR_RWP != 0 {}
    }

    fn wait_for_distributor(&self) {
        while Self::read32(self.gicd + gicd::CTLR) & gicd::CTLR_RWP != 0 {}
    }

    /// Makes SPI `intid` a group-1 interrupt at the hypervisor's priority,
    /// routed to the CPU with affinity `mpidr`, and enables it.
    pub fn enable_spi(&self, intid: u32, mpidr: u64) {
        let (word, bit) = ((intid / 32) as usize * 4, 1u32 << (intid % 32));
        self.disable_spi(intid);
        let group = self.gicd + gicd::IGROUPR + word;
        Self::write32(group, Self::read32(group) | bit);
        // SAFETY: IPRIORITYR is byte-accessible (GICv3 architecture); the
        // address is this SPI's priority byte in the distributor.
        unsafe {
            write_volatile(
                (self.gicd + gicd::IPRIORITYR + intid as usize) as *mut u8,
                PRIORITY,
            )
        };
        let aff = mpidr & 0xff_00ff_ffff;
        // SAFETY: IROUTER<n> is this SPI's 64-bit routing register.
        unsafe {
            write_volatile(
                (self.gicd + gicd::IROUTER + 8 * intid as usize) as *mut u64,
                aff,
            )
        };
        Self::write32(self.gicd + gicd::ISENABLER + word, bit);
    }

    /// Unmasks SPI `intid` (after [`Gic::enable_spi`] configured it).
    pub fn unmask_spi(&self, intid: u32) {
        let (word, bit) = ((intid / 32) as usize * 4, 1u32 << (intid % 32));
        Self::write32(self.gicd + gicd::ISENABLER + word, bit);
    }

    /// Masks SPI `intid` and waits until the distributor has done so.
    pub fn disable_spi(&self, intid: u32) {
        let (word, bit) = ((intid / 32) as usize * 4, 1u32 << (intid % 32));
        Self::write32(self.gicd + gicd::ICENABLER + word, bit);
        self.wait_for_distributor();
    }

    /// Finds the redistributor of the CPU with affinity `mpidr`.
    fn redistributor(&self, mpidr: u64) -> Option<usize> {
        let aff = (((mpidr >> 32) & 0xff) << 24) | (mpidr & 0xff_ffff);
        let mut rd = self.gicr;
        for _ in 0..64 {
            let typer = Self::read64(rd + gicr::TYPER);
            if typer >> 32 == aff {
                return Some(rd);
            }
            if typer & gicr::TYPER_LAST != 0 {
                break;
            }
            rd += gicr::FRAME_STRIDE;
        }
        None
    }

    /// Wakes this CPU's redistributor, enables the kick SGI and the EL2 timer,
    /// and turns on the physical and virtual CPU interfaces.
    pub fn init_cpu(&self, mpidr: u64) {
        let rd = self
            .redistributor(mpidr)
            .expect("no GIC redistributor for this CPU");
        let waker = Self::read32(rd + gicr::WAKER) & !gicr::WAKER_PROCESSOR_SLEEP;
        Self::write32(rd + gicr::WAKER, waker);
        while Self::read32(rd + gicr::WAKER) & gicr::WAKER_CHILDREN_ASLEEP != 0 {}
        Self::write32(rd + gicr::ICENABLER0, u32::MAX);
        Self::write32(rd + gicr::IGROUPR0, u32::MAX);
        for i in 0..8 {
            let p = u32::from_ne_bytes([PRIORITY; 4]);
            Self::write32(rd + gicr::IPRIORITYR + 4 * i, p);
        }
        Self::write32(
            rd + gicr::ISENABLER0,
            (1 << SGI_KICK) | (1 << INTID_HYP_TIMER),
        );
        // SAFETY: enables the system-register interface at EL2 (and lets EL1
        // use it, which is how guests reach the virtual interface), unmasks all
        // priorities, enables group 1, and turns on the virtual interface.
        unsafe {
            core::arch::asm!(
                "msr icc_sre_el2, {sre}",
                "isb",
                "msr icc_pmr_el1, {pmr}",
                "msr icc_igrpen1_el1, {one}",
                "msr ich_hcr_el2, {one}",
                "isb",
                sre = in(reg) 0b1111u64,
                pmr = in(reg) 0xffu64,
                one = in(reg) 1u64,
                options(nostack),
            );
        }
    }
}

/// Acknowledges the highest-priority pending physical interrupt.
pub fn acknowledge() -> u32 {
    let v: u64;
    // SAFETY: reading IAR acknowledges an interrupt; the caller ends it.
    unsafe { core::arch::asm!("mrs {}, icc_iar1_el1", out(reg) v, options(nomem, nostack)) };
    // The INTID is in bits [23:0]; bits [63:32] are RES0.
    (v & 0xffff_ffff) as u32
}

/// Ends (drops priority and deactivates) interrupt `intid`.
pub fn end(intid: u32) {
    // SAFETY: ends an interrupt previously acknowledged with `acknowledge`.
    unsafe {
        core::arch::asm!("msr icc_eoir1_el1, {}", in(reg) u64::from(intid), options(nomem, nostack))
    };
}

/// Sends the kick SGI to CPU `cpu` (Aff0 = cpu, other affinity levels 0).
pub fn kick(cpu: usize) {
    let v = (u64::from(SGI_KICK) << 24) | (1u64 << (cpu & 0xf));
    // SAFETY: generating an SGI has no memory effects.
    unsafe { core::arch::asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) v, options(nomem, nostack)) };
}

/// Reads list register 0 of the loaded vCPU.
pub fn read_lr0() -> u64 {
    let v: u64;
    // SAFETY: reading has no side effects.
    unsafe { core::arch::asm!("mrs {}, ich_lr0_el2", out(reg) v, options(nomem, nostack)) };
    v
}

/// Writes list register 0 of the loaded vCPU.
pub fn write_lr0(v: u64) {
    // SAFETY: list register 0 belongs to the loaded vCPU's virtual interface.
    unsafe { core::arch::asm!("msr ich_lr0_el2, {}", in(reg) v, options(nomem, nostack)) };
}
