//! The hypervisor proper: domains, vCPUs, scheduling, hypercalls, virtual
//! IRQs, lazy FPU and fault containment. Hardware access goes through `arch`.
//!
//! Locking: one lock (`HV`) protects every domain and run queue. A vCPU's
//! general registers ([`GuestRegs`]) live outside the lock, in `REGS`: only the
//! CPU that runs the vCPU touches them (the vectors write them on a trap, the
//! trap handler reads them while it holds the lock), except before the vCPU
//! first runs.

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use parapet_abi::event::{self, EventPage, Port};
use parapet_abi::grant::{self as abi_grant, GrantEntry, GRANT_ENTRIES};
use parapet_abi::hypercall::{ShutdownReason, CONSOLE_WRITE_MAX, HVC_IMM};
use parapet_abi::layout::{self, PAGE_SIZE};
use parapet_abi::start_info::{self, device_kind, MmioDevice, StartInfo};
use parapet_abi::store::{KEY_MAX, VALUE_MAX};
use parapet_abi::vpsr::Virq;
use parapet_abi::{AbiVersion, Features, HvError, Hypercall, Vpsr, ABI_VERSION};
use spin::{Mutex, MutexGuard};
use zerocopy::{FromZeros, IntoBytes};

use crate::arch::boot::MAX_CPUS;
use crate::arch::fp::FpState;
use crate::arch::gic::{self, Gic};
use crate::arch::sysregs::{self, cptr, El1State};
use crate::arch::trap::{self, GuestRegs, PerCpuTrap, TrapKind};
use crate::arch::{cache, mmu, phys, psci, timer, uart::Pl011};
use crate::bootargs::{self, DomainConfig, OnCrash, Role};
use crate::console::{InputQueue, LineBuffer};
use crate::esr::{self, ec};
use crate::evtchn::{EventTables, Target, FIRST_SPI, MAX_PIRQ};
use crate::grant::{self, MapTrack, Mapping, Pins, Side};
use crate::platform::{Device, Module, Platform, MAX_VIRTIO};
use crate::restart::{self, Decision, Tally, MAX_RESTARTS};
use crate::sched::{pick_next, RunQueue, VcpuRef};
use crate::stage2::{Access, Attributes, FrameBitmap, MemKind, Stage2, TableMemory};
use crate::store::Namespace;

const MAX_DOMAINS: usize = 8;
const MAX_VCPUS: usize = layout::MAX_VCPUS as usize;
const TABLE_POOL_PAGES: usize = 1024;
const DEFAULT_UART: usize = 0x0900_0000;
/// How long an idle CPU polls for an interrupt before it halts (iterations).
const IDLE_POLL_SPINS: u32 = 20_000;

// ---------------------------------------------------------------------------
// Console

static CONSOLE: Mutex<Option<Pl011>> = Mutex::new(None);

/// Prints one line with the given prefix on the serial console.
fn print_line(prefix: &str, args: core::fmt::Arguments<'_>) {
    let mut console = CONSOLE.lock();
    if let Some(uart) = console.as_mut() {
        let _ = writeln!(uart, "[{prefix}] {args}");
    }
}

macro_rules! hvprintln {
    ($($arg:tt)*) => { print_line("hv", format_args!($($arg)*)) };
}

// ---------------------------------------------------------------------------
// Page-table frames

#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut TABLE_POOL: [Page; TABLE_POOL_PAGES] = [const { Page([0; 4096]) }; TABLE_POOL_PAGES];

/// Stage-2 table frames, handed out from a static pool; the tables of a
/// restarted domain come back to it.
struct PoolTables {
    frames: FrameBitmap<{ TABLE_POOL_PAGES / 64 }>,
}

impl PoolTables {
    fn base() -> u64 {
        (&raw const TABLE_POOL) as u64
    }
}

impl TableMemory for PoolTables {
    fn alloc_table(&mut self) -> Option<u64> {
        let i = self.frames.alloc()?;
        // SAFETY: only the address is taken; the bitmap never hands out a
        // frame in use twice, and the pool is only reached through the `HV`
        // lock that owns this allocator.
        let pa = unsafe { (&raw mut TABLE_POOL[i]) as u64 };
        // SAFETY: the frame was just taken from the pool and is ours.
        unsafe { phys::zero(pa, PAGE_SIZE) };
        Some(pa)
    }

    fn free_table(&mut self, table: u64) {
        let offset = table.wrapping_sub(Self::base());
        if offset.is_multiple_of(PAGE_SIZE) && offset < (TABLE_POOL_PAGES as u64) * PAGE_SIZE {
            self.frames.free((offset / PAGE_SIZE) as usize);
        }
    }

    fn read(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` came from `alloc_table`; index < 512 by construction.
        unsafe { phys::read_u64(table + 8 * index as u64) }
    }

    fn write(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as for `read`; the table belongs to a domain we are building.
        unsafe { phys::write_u64(table + 8 * index as u64, value) }
    }
}

// ---------------------------------------------------------------------------
// Per-vCPU registers and per-CPU trap data

struct RegsSlot(UnsafeCell<GuestRegs>);
// SAFETY: see the module documentation: one CPU at a time uses a slot.
unsafe impl Sync for RegsSlot {}

static REGS: [[RegsSlot; MAX_VCPUS]; MAX_DOMAINS] = [const {
    [const {
        RegsSlot(UnsafeCell::new(GuestRegs {
            x: [0; 31],
            sp_el1: 0,
            elr: 0,
            spsr: 0,
        }))
    }; MAX_VCPUS]
}; MAX_DOMAINS];

static PERCPU: [PerCpuTrap; MAX_CPUS] = [const {
    PerCpuTrap {
        current_regs: AtomicPtr::new(core::ptr::null_mut()),
        current: AtomicU32::new(u32::MAX),
    }
}; MAX_CPUS];

fn regs_ptr(v: VcpuRef) -> *mut GuestRegs {
    REGS[v.domain as usize][v.vcpu as usize].0.get()
}

// ---------------------------------------------------------------------------
// Domains and vCPUs

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum VcpuState {
    Off,
    Runnable,
    Running,
    Blocked,
}

#[derive(Clone, Copy, Default)]
struct VcpuStats {
    hypercalls: u64,
    switches_in: u64,
    switches_out: u64,
    fp_loads: u64,
    fp_saves: u64,
}

struct Vcpu {
    state: VcpuState,
    cpu: usize,
    el1: El1State,
    fp: FpState,
    timer_deadline: u64,
    vpsr_pa: u64,
    stats: VcpuStats,
}

impl Vcpu {
    const EMPTY: Vcpu = Vcpu {
        state: VcpuState::Off,
        cpu: 0,
        el1: El1State::ZERO,
        fp: FpState::ZERO,
        timer_deadline: 0,
        vpsr_pa: 0,
        stats: VcpuStats {
            hypercalls: 0,
            switches_in: 0,
            switches_out: 0,
            fp_loads: 0,
            fp_saves: 0,
        },
    };

    fn vpsr(&self) -> &'static Vpsr {
        // SAFETY: `vpsr_pa` is a page of the domain's RAM reserved for this
        // VPSR, page-aligned, and lives as long as the hypervisor (domain RAM
        // is never given to anything else; a restarted domain has its VPSRs
        // at the same place, and zeroing them leaves valid atomics). `Vpsr`
        // is all atomics, so shared access with the guest is sound.
        unsafe { &*(self.vpsr_pa as *const Vpsr) }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum DomainState {
    Empty,
    Running,
    Exited(u64),
    Crashed,
}

struct Domain {
    state: DomainState,
    name: [u8; start_info::NAME_LEN],
    role: Role,
    vcpu_count: usize,
    ram_ipa: u64,
    ram_pa: u64,
    ram_size: u64,
    stage2: Option<Stage2>,
    console: LineBuffer,
    abi_ok: bool,
    /// Physical address of the shared event page.
    event_pa: u64,
    /// Physical address of the shared grant table.
    grant_pa: u64,
    /// Guest-physical address of the grant scratch page.
    scratch_ipa: u64,
    /// Interrupts of the devices passed through to the domain, one bit per
    /// INTID below `evtchn::MAX_PIRQ`.
    device_irqs: u128,
    /// The scenario asked for console input to go to this domain.
    console_input: bool,
    /// What happens when it crashes.
    on_crash: OnCrash,
    /// How often it was restarted after a crash in this run.
    restarts: u32,
    /// It crashed and waits to be restarted (once no CPU runs it any more).
    restart_pending: bool,
    /// Its image and bootargs, kept to start it again.
    module: Option<Module<'static>>,
    vcpus: [Vcpu; MAX_VCPUS],
}

impl Domain {
    const EMPTY: Domain = Domain {
        state: DomainState::Empty,
        name: [0; start_info::NAME_LEN],
        role: Role::Guest,
        vcpu_count: 0,
        ram_ipa: 0,
        ram_pa: 0,
        ram_size: 0,
        stage2: None,
        console: LineBuffer::new(),
        abi_ok: false,
        event_pa: 0,
        grant_pa: 0,
        scratch_ipa: 0,
        device_irqs: 0,
        console_input: false,
        on_crash: OnCrash::Destroy,
        restarts: 0,
        restart_pending: false,
        module: None,
        vcpus: [const { Vcpu::EMPTY }; MAX_VCPUS],
    };

    fn name(&self) -> &str {
        start_info::c_str(&self.name).unwrap_or("?")
    }

    fn alive(&self) -> bool {
        self.state == DomainState::Running
    }

    fn events(&self) -> &'static EventPage {
        // SAFETY: `event_pa` is the domain's reserved event page (set at
        // creation, page-aligned, never given to anything else, the same
        // after a restart); `EventPage` is all atomics, so sharing it with
        // the guest is sound.
        unsafe { &*(self.event_pa as *const EventPage) }
    }

    fn grant_table(&self) -> &'static [GrantEntry] {
        // SAFETY: `grant_pa` is the domain's reserved grant-table page, which
        // holds exactly GRANT_ENTRIES entries of atomics.
        unsafe {
            core::slice::from_raw_parts(self.grant_pa as *const GrantEntry, GRANT_ENTRIES as usize)
        }
    }

    fn vttbr(&self) -> u64 {
        self.vcpus[0].el1.vttbr
    }
}

struct CpuSched {
    queue: RunQueue,
    current: Option<VcpuRef>,
    loaded: Option<VcpuRef>,
    fp_owner: Option<VcpuRef>,
    slice_end: u64,
}

struct Hypervisor {
    domains: [Domain; MAX_DOMAINS],
    domain_count: usize,
    cpus: [CpuSched; MAX_CPUS],
    cpu_count: usize,
    timeslice: u64,
    freq: u64,
    tables: PoolTables,
    pool_next: u64,
    ram_end: u64,
    next_cpu: usize,
    /// How the domains ended, for the final line.
    tally: Tally,
    /// The machine's virtio-mmio slots (passed through to the driver domain).
    virtio: [Device; MAX_VIRTIO],
    virtio_count: usize,
    gic: Gic,
    events: EventTables<MAX_DOMAINS>,
    maps: [MapTrack; MAX_DOMAINS],
    pins: [Pins; MAX_DOMAINS],
    store: [Namespace; MAX_DOMAINS],
    /// Console input not yet read by the console-input domain.
    console_in: InputQueue,
    /// The domain that receives console input (`Virq::Console`).
    console_domain: usize,
    /// The PL011's interrupt.
    uart_intid: u32,
    /// Each CPU's affinity (`MPIDR_EL1`), for routing device interrupts.
    mpidr: [u64; MAX_CPUS],
}

static HV: Mutex<Hypervisor> = Mutex::new(Hypervisor {
    domains: [const { Domain::EMPTY }; MAX_DOMAINS],
    domain_count: 0,
    cpus: [const {
        CpuSched {
            queue: RunQueue::new(),
            current: None,
            loaded: None,
            fp_owner: None,
            slice_end: 0,
        }
    }; MAX_CPUS],
    cpu_count: 1,
    timeslice: 0,
    freq: 1,
    tables: PoolTables {
        frames: FrameBitmap::new(),
    },
    pool_next: layout::GUEST_POOL_BASE,
    ram_end: 0,
    next_cpu: 0,
    tally: Tally {
        ok: 0,
        failed: 0,
        restarts: 0,
    },
    virtio: [Device {
        base: 0,
        size: 0,
        intid: 0,
    }; MAX_VIRTIO],
    virtio_count: 0,
    gic: Gic { gicd: 0, gicr: 0 },
    events: EventTables::new(),
    maps: [const { MapTrack::EMPTY }; MAX_DOMAINS],
    pins: [const { Pins::EMPTY }; MAX_DOMAINS],
    store: [const { Namespace::EMPTY }; MAX_DOMAINS],
    console_in: InputQueue::new(),
    console_domain: 0,
    uart_intid: 0,
    mpidr: [0; MAX_CPUS],
});

/// A store key copied out of guest memory.
struct KeyBuf {
    bytes: [u8; KEY_MAX],
    len: usize,
}

impl KeyBuf {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Fixed-capacity lists of mapping handles (the hypervisor has no heap).
mod heapless_handles {
    use parapet_abi::grant::MAX_MAPPINGS;

    pub struct Handles {
        items: [u64; MAX_MAPPINGS as usize],
        len: usize,
    }

    impl Handles {
        pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
            self.items[..self.len].iter().copied()
        }
    }

    impl FromIterator<u64> for Handles {
        fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
            let mut h = Handles {
                items: [0; MAX_MAPPINGS as usize],
                len: 0,
            };
            for x in iter.into_iter().take(MAX_MAPPINGS as usize) {
                h.items[h.len] = x;
                h.len += 1;
            }
            h
        }
    }
}

/// How a domain ended.
enum Outcome<'a> {
    Exit(u64),
    Crash(core::fmt::Arguments<'a>),
}

// ---------------------------------------------------------------------------
// Boot

/// Entry from `arch::boot` on every CPU.
pub fn cpu_main(cpu: usize) -> ! {
    if cpu == 0 {
        primary_boot();
    } else {
        mmu::enable();
        sysregs::init_el2_controls();
        trap::install(&PERCPU[cpu]);
        let gic = {
            let mut hv = HV.lock();
            hv.mpidr[cpu] = sysregs::read_mpidr();
            hv.gic
        };
        gic.init_cpu(sysregs::read_mpidr());
        hvprintln!("CPU {cpu} online");
    }
    let hv = HV.lock();
    let regs = dispatch(cpu, hv, false);
    // SAFETY: `dispatch` loaded the chosen vCPU's state and pointed this CPU's
    // trap data at its registers.
    unsafe { trap::enter_guest(regs) }
}

fn primary_boot() {
    // SAFETY: QEMU virt's PL011; only this console ever drives it.
    *CONSOLE.lock() = Some(unsafe { Pl011::new(DEFAULT_UART) });
    mmu::build();
    mmu::enable();
    // SAFETY: QEMU places the device tree at the start of RAM for images
    // linked where the hypervisor is; its header gives its size. It is never
    // written.
    let dtb = unsafe {
        let size = u32::from_be(core::ptr::read_volatile(
            (layout::RAM_BASE + 4) as *const u32,
        ));
        phys::slice(layout::RAM_BASE, u64::from(size).min(1 << 20))
    };
    let platform = match Platform::from_fdt(dtb) {
        Ok(p) => p,
        Err(e) => fatal(format_args!("cannot read the device tree: {e:?}")),
    };
    sysregs::init_el2_controls();
    trap::install(&PERCPU[0]);
    let gic = Gic {
        gicd: platform.gicd as usize,
        gicr: platform.gicr as usize,
    };
    gic.init_distributor();
    gic.init_cpu(sysregs::read_mpidr());
    let options = bootargs::parse_options(platform.bootargs, |w| {
        hvprintln!("ignoring unknown option `{w}`")
    });
    let freq = sysregs::read_cntfrq();
    let cpus = platform.cpus.min(MAX_CPUS);
    hvprintln!(
        "Parapet hypervisor, ABI {ABI_VERSION}: {cpus} CPU(s), {} MiB RAM, {} domain image(s), time slice {} ms",
        platform.ram_size >> 20,
        platform.module_count,
        options.timeslice_ms
    );
    if platform.modules_dropped > 0 {
        hvprintln!(
            "ignoring {} domain image(s) beyond the first {}",
            platform.modules_dropped,
            MAX_DOMAINS
        );
    }
    let mut hv = HV.lock();
    hv.gic = gic;
    hv.mpidr[0] = sysregs::read_mpidr();
    hv.uart_intid = platform.uart_intid;
    hv.cpu_count = cpus;
    hv.freq = freq;
    hv.timeslice = freq * options.timeslice_ms / 1000;
    hv.ram_end = platform.ram_base + platform.ram_size;
    hv.virtio = platform.virtio;
    hv.virtio_count = platform.virtio_count;
    for module in platform.modules() {
        let index = hv.domain_count;
        if let Err(e) = hv.create_domain(index, module) {
            hvprintln!(
                "domain image at {:#x} not started: {e} (bootargs `{}`)",
                module.addr,
                module.bootargs
            );
            hv.tally.failed();
        }
    }
    hv.start_console_input();
    drop(hv);
    for cpu in 1..cpus {
        if let Err(e) = psci::cpu_on(
            cpu,
            crate::arch::boot::secondary_entry_address(),
            cpu as u64,
        ) {
            hvprintln!("CPU {cpu} did not start: {e:?}");
        }
    }
}

fn fatal(args: core::fmt::Arguments<'_>) -> ! {
    hvprintln!("PANIC: {args}");
    psci::system_off()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // Do not wait for a console lock a panicking CPU may hold.
    if let Some(mut console) = CONSOLE.try_lock() {
        if let Some(uart) = console.as_mut() {
            let _ = writeln!(uart, "[hv] PANIC: {info}");
        }
    }
    psci::system_off()
}

/// An exception taken at EL2 itself: a hypervisor bug.
#[unsafe(no_mangle)]
extern "C" fn hv_self_exception(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    fatal(format_args!(
        "exception in the hypervisor: kind {kind}, {} (ESR {esr:#x}) at PC {elr:#x}, FAR {far:#x}",
        esr::class_name(esr::class(esr))
    ))
}

/// Why a domain could not be created.
enum CreateError {
    Bootargs,
    Memory(&'static str),
    Image(&'static str),
    Tables,
}

impl core::fmt::Display for CreateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CreateError::Bootargs => f.write_str("malformed domain entry"),
            CreateError::Memory(m) | CreateError::Image(m) => f.write_str(m),
            CreateError::Tables => f.write_str("out of stage-2 table memory"),
        }
    }
}

impl Hypervisor {
    fn vcpu(&self, v: VcpuRef) -> &Vcpu {
        &self.domains[v.domain as usize].vcpus[v.vcpu as usize]
    }

    fn vcpu_mut(&mut self, v: VcpuRef) -> &mut Vcpu {
        &mut self.domains[v.domain as usize].vcpus[v.vcpu as usize]
    }

    fn create_domain(&mut self, index: usize, module: Module<'static>) -> Result<(), CreateError> {
        if index >= MAX_DOMAINS {
            return Err(CreateError::Memory("too many domains"));
        }
        let cfg: DomainConfig<'_> = bootargs::parse_domain(module.bootargs).map_err(|e| {
            hvprintln!("bad domain entry: {e}");
            CreateError::Bootargs
        })?;
        if let Some(cpu) = cfg.cpu {
            if cpu as usize >= self.cpu_count {
                hvprintln!(
                    "domain {}: cpu={cpu} but the machine has {} CPU(s)",
                    cfg.name,
                    self.cpu_count
                );
                return Err(CreateError::Bootargs);
            }
        }
        if self.domains[..self.domain_count]
            .iter()
            .any(|d| d.name() == cfg.name)
        {
            return Err(CreateError::Memory("duplicate domain name"));
        }
        let module_end = module
            .addr
            .checked_add(module.size)
            .ok_or(CreateError::Image("bad module range"))?;
        if module.addr < layout::MODULE_AREA_BASE || module_end > layout::MODULE_AREA_END {
            return Err(CreateError::Image("image outside the module area"));
        }
        let (ipa, pa) = match cfg.role {
            Role::Driver => {
                if self.domains[..self.domain_count]
                    .iter()
                    .any(|d| d.role == Role::Driver)
                {
                    return Err(CreateError::Memory("a second driver domain"));
                }
                (layout::DRIVER_DOMAIN_BASE, layout::DRIVER_DOMAIN_BASE)
            }
            Role::Guest => {
                let pa = self.pool_next.next_multiple_of(2 << 20);
                if pa + cfg.memory > self.ram_end {
                    return Err(CreateError::Memory("not enough RAM left for this domain"));
                }
                self.pool_next = pa + cfg.memory;
                (layout::GUEST_RAM_BASE, pa)
            }
        };
        if ipa + cfg.memory > abi_grant::GRANT_WINDOW_BASE {
            return Err(CreateError::Memory("RAM would overlap the grant window"));
        }
        let mut cpus = [0usize; MAX_VCPUS];
        for c in cpus.iter_mut().take(cfg.vcpus as usize) {
            *c = match cfg.cpu {
                Some(c) => c as usize,
                None => {
                    self.next_cpu = (self.next_cpu + 1) % self.cpu_count;
                    self.next_cpu
                }
            };
        }
        let entry = self.load_domain(index, module, &cfg, (ipa, pa), &cpus, 0)?;
        self.domain_count = index + 1;
        self.announce(index, entry);
        Ok(())
    }

    /// Builds domain `index` from its image: zeroes its RAM at `ipa`/`pa`,
    /// loads the ELF, builds its stage-2 tables and start-info page, resets
    /// its slot of the sharing state, and starts vCPU 0 (each vCPU on
    /// `cpus[i]`). Used at boot and to restart a crashed domain in place.
    /// Returns the entry point.
    fn load_domain(
        &mut self,
        index: usize,
        module: Module<'static>,
        cfg: &DomainConfig<'_>,
        (ipa, pa): (u64, u64),
        cpus: &[usize; MAX_VCPUS],
        restarts: u32,
    ) -> Result<u64, CreateError> {
        let size = cfg.memory;
        // SAFETY: [pa, pa+size) is this domain's RAM: the driver domain's fixed
        // range or its range of the guest pool; nothing else uses it (a
        // restarted domain's old instance runs nowhere any more).
        unsafe { phys::zero(pa, size) };
        // SAFETY: the module area holds the images QEMU loaded; nothing writes it.
        let file = unsafe { phys::slice(module.addr, module.size) };
        let image = crate::elf::parse(file, ipa, layout::reserved_top_base(ipa, size))
            .map_err(|e| CreateError::Image(e.message()))?;
        for seg in &image.segments[..image.count] {
            let dst = pa + (seg.addr - ipa);
            // SAFETY: `elf::parse` checked the segment lies inside the domain's
            // RAM below the reserved pages.
            unsafe {
                phys::write_bytes(dst, &file[seg.file_offset..seg.file_offset + seg.file_size])
            };
            cache::clean_to_poc(dst, seg.mem_size);
        }
        let mut s2 = Stage2::new(&mut self.tables).map_err(|_| CreateError::Tables)?;
        let mut info = StartInfo::new_zeroed();
        let device_irqs = match self.map_domain(&mut s2, &mut info, cfg.role, ipa, pa, size) {
            Ok(irqs) => irqs,
            Err(e) => {
                s2.free(&mut self.tables);
                return Err(e);
            }
        };
        info.magic = start_info::START_INFO_MAGIC;
        info.abi_version = ABI_VERSION.to_raw() as u32;
        info.features = Features::OFFERED.0;
        info.domain_id = index as u32;
        info.vcpu_count = cfg.vcpus;
        info.ram_base = ipa;
        info.ram_size = size;
        info.vpsr_base = layout::vpsr_ipa(ipa, size, 0);
        info.image_end = image.end.next_multiple_of(PAGE_SIZE);
        info.counter_freq = self.freq;
        info.event_page = layout::event_page_ipa(ipa, size);
        info.grant_table = layout::grant_table_ipa(ipa, size);
        info.grant_entries = GRANT_ENTRIES;
        info.max_ports = event::MAX_PORTS;
        start_info::set_c_str(&mut info.name, cfg.name);
        start_info::set_c_str(&mut info.cmdline, cfg.cmdline);
        let info_pa = pa + (layout::start_info_ipa(ipa, size) - ipa);
        // SAFETY: the start-info page is the last page of the domain's RAM.
        unsafe { phys::write_bytes(info_pa, info.as_bytes()) };
        cache::clean_to_poc(
            pa + (layout::reserved_top_base(ipa, size) - ipa),
            layout::RESERVED_TOP_PAGES * PAGE_SIZE,
        );

        let vttbr = (((index + 1) as u64) << 48) | s2.root();
        let d = &mut self.domains[index];
        *d = Domain::EMPTY;
        d.state = DomainState::Running;
        start_info::set_c_str(&mut d.name, cfg.name);
        d.role = cfg.role;
        d.vcpu_count = cfg.vcpus as usize;
        (d.ram_ipa, d.ram_pa, d.ram_size, d.stage2) = (ipa, pa, size, Some(s2));
        d.event_pa = pa + (layout::event_page_ipa(ipa, size) - ipa);
        d.grant_pa = pa + (layout::grant_table_ipa(ipa, size) - ipa);
        d.scratch_ipa = layout::grant_scratch_ipa(ipa, size);
        d.device_irqs = device_irqs;
        d.console_input = cfg.console_input;
        d.on_crash = cfg.on_crash;
        d.restarts = restarts;
        d.module = Some(module);
        *self.events.table_mut(index as u8) = crate::evtchn::EventTable::EMPTY;
        self.maps[index] = MapTrack::EMPTY;
        self.pins[index] = Pins::EMPTY;
        self.store[index].clear();
        for (i, v) in d.vcpus.iter_mut().enumerate().take(d.vcpu_count) {
            v.vpsr_pa = pa + (layout::vpsr_ipa(ipa, size, i as u64) - ipa);
            v.el1.vttbr = vttbr;
            v.cpu = cpus[i];
            let vpsr = v.vpsr();
            vpsr.fp_enable.store(1, Ordering::Relaxed);
            vpsr.counter_freq.store(self.freq, Ordering::Relaxed);
        }
        let v0 = VcpuRef {
            domain: index as u8,
            vcpu: 0,
        };
        self.start_vcpu(v0, image.entry, layout::start_info_ipa(ipa, size));
        Ok(image.entry)
    }

    /// Maps a new domain's RAM (and, for the driver domain, every populated
    /// virtio-mmio page, listed in `info`) into `s2`; returns the device
    /// interrupts it owns.
    fn map_domain(
        &mut self,
        s2: &mut Stage2,
        info: &mut StartInfo,
        role: Role,
        ipa: u64,
        pa: u64,
        size: u64,
    ) -> Result<u128, CreateError> {
        s2.map(&mut self.tables, ipa, pa, size, Attributes::RAM)
            .map_err(|_| CreateError::Tables)?;
        let mut device_irqs = 0u128;
        if role == Role::Driver {
            let mut mapped_page = u64::MAX;
            let virtio = self.virtio;
            for dev in virtio[..self.virtio_count]
                .iter()
                .filter(|d| crate::arch::virtio_slot_present(d.base))
            {
                let page = dev.base & !(PAGE_SIZE - 1);
                if page != mapped_page {
                    s2.map(&mut self.tables, page, page, PAGE_SIZE, Attributes::DEVICE)
                        .map_err(|_| CreateError::Tables)?;
                    mapped_page = page;
                }
                if (info.device_count as usize) < start_info::MAX_DEVICES {
                    if (dev.intid as usize) < MAX_PIRQ && dev.intid >= FIRST_SPI {
                        device_irqs |= 1u128 << dev.intid;
                    }
                    info.devices[info.device_count as usize] = MmioDevice {
                        base: dev.base,
                        size: dev.size,
                        intid: dev.intid,
                        kind: device_kind::VIRTIO_MMIO,
                    };
                    info.device_count += 1;
                }
            }
            info.flags |= start_info::FLAG_DRIVER_DOMAIN;
        }
        Ok(device_irqs)
    }

    /// Prints the line that describes a domain just (re)started.
    fn announce(&self, index: usize, entry: u64) {
        let d = &self.domains[index];
        hvprintln!(
            "domain {} (id {index}, {}): {} MiB at IPA {:#x} (PA {:#x}), {} vCPU(s) on CPU {}, entry {entry:#x}{}",
            d.name(),
            if d.role == Role::Driver { "driver domain, 1:1, virtio-mmio passed through" } else { "guest" },
            d.ram_size >> 20,
            d.ram_ipa,
            d.ram_pa,
            d.vcpu_count,
            d.vcpus[0].cpu,
            if d.on_crash == OnCrash::Restart { ", restarted if it crashes" } else { "" }
        );
    }

    // -----------------------------------------------------------------------
    // Restart after a crash

    /// Whether a crashed domain waits to be restarted.
    fn restarts_pending(&self) -> bool {
        self.domains[..self.domain_count]
            .iter()
            .any(|d| d.restart_pending)
    }

    /// Restarts the crashed domains that wait for it, once no other CPU than
    /// `cpu` (which is in `dispatch`, so not running a guest) has one of
    /// their vCPUs current: a CPU that still runs (or is about to trap from)
    /// the old instance must leave it first, since the new instance reuses
    /// its register slots and memory. Such a CPU was kicked by
    /// `stop_domain` and does this itself in its own `dispatch`.
    fn run_restarts(&mut self, cpu: usize) {
        for index in 0..self.domain_count {
            if !self.domains[index].restart_pending {
                continue;
            }
            let busy = (0..self.cpu_count).any(|c| {
                c != cpu
                    && self.cpus[c]
                        .current
                        .is_some_and(|v| v.domain as usize == index)
            });
            if !busy {
                self.domains[index].restart_pending = false;
                self.restart_domain(index);
            }
        }
    }

    /// Starts crashed domain `index` again in place: same id, same RAM
    /// (zeroed and reloaded from its image), new stage-2 tables (the old
    /// ones go back to the pool and its VMID's TLB entries are invalidated).
    /// Its sharing state was torn down when it stopped. For the driver
    /// domain, every passed-through virtio device is reset first, so that no
    /// DMA of the old instance lands in the new one; their interrupts stay
    /// masked until the new instance binds them.
    fn restart_domain(&mut self, index: usize) {
        let (module, ipa, pa, role, restarts, old_vttbr) = {
            let d = &self.domains[index];
            (
                d.module,
                d.ram_ipa,
                d.ram_pa,
                d.role,
                d.restarts + 1,
                d.vttbr(),
            )
        };
        let mut cpus = [0usize; MAX_VCPUS];
        for (c, v) in cpus.iter_mut().zip(self.domains[index].vcpus.iter()) {
            *c = v.cpu;
        }
        // The old instance's EL1 and FP state, still in some CPU's registers,
        // is dropped rather than saved over the new instance's.
        for c in &mut self.cpus[..self.cpu_count] {
            let gone = |v: &Option<VcpuRef>| v.is_some_and(|v| v.domain as usize == index);
            if gone(&c.loaded) {
                c.loaded = None;
            }
            if gone(&c.fp_owner) {
                c.fp_owner = None;
            }
            if gone(&c.current) {
                c.current = None;
            }
            c.queue.remove_domain(index as u8);
        }
        if role == Role::Driver {
            let virtio = self.virtio;
            for dev in &virtio[..self.virtio_count] {
                if crate::arch::virtio_slot_present(dev.base)
                    && !crate::arch::virtio_reset(dev.base)
                {
                    hvprintln!("virtio-mmio@{:#x}: the device did not reset", dev.base);
                }
            }
        }
        if let Some(s2) = self.domains[index].stage2.take() {
            s2.free(&mut self.tables);
        }
        crate::arch::tlb::invalidate_vmid(old_vttbr);
        let name = self.domains[index].name;
        let name = start_info::c_str(&name).unwrap_or("?");
        let result = match module {
            Some(m) => match bootargs::parse_domain(m.bootargs) {
                Ok(cfg) => self.load_domain(index, m, &cfg, (ipa, pa), &cpus, restarts),
                Err(_) => Err(CreateError::Bootargs),
            },
            None => Err(CreateError::Image("no image to restart from")),
        };
        match result {
            Ok(entry) => {
                self.tally.restarted();
                hvprintln!("domain {name} restarted ({restarts} of {MAX_RESTARTS})");
                self.announce(index, entry);
            }
            Err(e) => {
                hvprintln!("domain {name} not restarted: {e}");
                self.tally.failed();
            }
        }
    }

    /// Makes vCPU `v` runnable at `entry` with `arg` in `x0`.
    fn start_vcpu(&mut self, v: VcpuRef, entry: u64, arg: u64) {
        let d = &self.domains[v.domain as usize];
        let vpsr_ipa = layout::vpsr_ipa(d.ram_ipa, d.ram_size, u64::from(v.vcpu));
        // SAFETY: the vCPU is off, so no CPU is using its register slot (a
        // restarted domain's slots are reused only once no CPU has one of
        // the old instance's vCPUs current: `run_restarts`).
        let regs = unsafe { &mut *regs_ptr(v) };
        *regs = GuestRegs::default();
        regs.x[0] = arg;
        regs.x[1] = vpsr_ipa;
        regs.x[2] = u64::from(v.vcpu);
        regs.elr = entry;
        regs.spsr = sysregs::SPSR_EL1H_MASKED;
        let vcpu = self.vcpu_mut(v);
        let vttbr = vcpu.el1.vttbr;
        vcpu.el1 = El1State::ZERO;
        vcpu.el1.vttbr = vttbr;
        vcpu.el1.sctlr = sysregs::SCTLR_EL1_RESET;
        vcpu.el1.vmpidr = (1 << 31) | u64::from(v.vcpu);
        vcpu.el1.ich_vmcr = gic::VMCR_INITIAL;
        vcpu.el1.cpacr = sysregs::CPACR_FPEN;
        vcpu.fp = FpState::ZERO;
        vcpu.timer_deadline = 0;
        vcpu.state = VcpuState::Runnable;
        let cpu = vcpu.cpu;
        self.cpus[cpu].queue.push(v);
        if cpu != crate::arch::cpu_index() {
            gic::kick(cpu);
        }
    }

    // -----------------------------------------------------------------------
    // Events

    /// Records `virq` pending for `v` and makes sure it is noticed: wakes the
    /// vCPU if blocked, kicks its CPU if that is another one. Delivery to a
    /// vCPU that runs here happens in `prepare_entry` (or `deliver_now`).
    fn raise_virq(&mut self, v: VcpuRef, virq: Virq) {
        if self.vcpu(v).state == VcpuState::Off {
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

    /// Marks `v` as having work pending and makes sure it notices: wakes it if
    /// blocked, kicks its CPU if that is another one, raises the upcall at
    /// once if it is the vCPU loaded here.
    fn notify_vcpu(&mut self, v: VcpuRef) {
        let here = crate::arch::cpu_index();
        let vcpu = self.vcpu_mut(v);
        if vcpu.state == VcpuState::Off {
            return;
        }
        vcpu.vpsr().pending.store(1, Ordering::SeqCst);
        let cpu = vcpu.cpu;
        if vcpu.state == VcpuState::Blocked {
            vcpu.state = VcpuState::Runnable;
            self.cpus[cpu].queue.push(v);
        }
        if cpu != here {
            gic::kick(cpu);
        } else if self.cpus[cpu].loaded == Some(v) && self.cpus[cpu].current == Some(v) {
            Self::deliver_now(self.vcpu(v));
        }
    }

    /// Sets `t.port` pending in its domain and, if that is news and the port
    /// is not masked, flags the word in the bound vCPU's VPSR and notifies it
    /// (Xen's 2-level event delivery).
    fn send_event(&mut self, t: Target) {
        let d = &self.domains[t.domain as usize];
        if !d.alive() || d.event_pa == 0 {
            return;
        }
        let page = d.events();
        if !page.set_pending(t.port) || page.is_masked(t.port) {
            return;
        }
        self.flag_port(t);
    }

    /// Makes `port` of `domain` pending on its bound vCPU, so that a peer
    /// whose port was just closed wakes up and sees it.
    fn wake_port(&mut self, domain: u8, port: Port) {
        let vcpu = self.events.bound_vcpu(domain, port.into()).unwrap_or(0);
        self.send_event(Target { domain, port, vcpu });
    }

    fn flag_port(&mut self, t: Target) {
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

    /// Raises the upcall in the loaded vCPU if it has work pending and is not
    /// soft-masked.
    fn deliver_now(vcpu: &Vcpu) {
        let vpsr = vcpu.vpsr();
        if vpsr.pending.load(Ordering::SeqCst) != 0 && vpsr.irq_mask.load(Ordering::SeqCst) == 0 {
            gic::write_lr0(gic::lr_with_pending(gic::read_lr0(), layout::UPCALL_INTID));
        }
    }

    /// Fires the one-shot timers of this CPU's vCPUs that are due.
    fn fire_timers(&mut self, cpu: usize, now: u64) {
        for d in 0..self.domain_count {
            for i in 0..self.domains[d].vcpu_count {
                let v = &mut self.domains[d].vcpus[i];
                if v.cpu == cpu
                    && v.state != VcpuState::Off
                    && v.timer_deadline != 0
                    && now >= v.timer_deadline
                {
                    v.timer_deadline = 0;
                    self.raise_virq(
                        VcpuRef {
                            domain: d as u8,
                            vcpu: i as u8,
                        },
                        Virq::Timer,
                    );
                }
            }
        }
    }

    /// Arms the EL2 timer for the earliest of: the end of the time slice (if
    /// another vCPU waits) and the one-shot timers of this CPU's vCPUs.
    fn program_timer(&self, cpu: usize) {
        let mut deadline = if self.cpus[cpu].queue.is_empty() {
            u64::MAX
        } else {
            self.cpus[cpu].slice_end
        };
        for d in &self.domains[..self.domain_count] {
            for v in &d.vcpus[..d.vcpu_count] {
                if v.cpu == cpu && v.state != VcpuState::Off && v.timer_deadline != 0 {
                    deadline = deadline.min(v.timer_deadline);
                }
            }
        }
        if deadline == u64::MAX {
            timer::disable();
        } else {
            timer::set_deadline(deadline);
        }
    }

    /// Acknowledges and ends every pending physical interrupt on this CPU.
    fn handle_irqs(&mut self) {
        loop {
            let intid = gic::acknowledge();
            if intid == gic::INTID_SPURIOUS {
                break;
            }
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
    fn start_console_input(&mut self) {
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

    /// The UART received input: queue it and tell the console-input domain.
    fn console_input(&mut self) {
        let mut got = false;
        if let Some(uart) = CONSOLE.lock().as_mut() {
            while let Some(b) = uart.try_get() {
                got |= self.console_in.push(b);
            }
        }
        let d = self.console_domain;
        if got && d < self.domain_count && self.domains[d].alive() {
            self.raise_virq(
                VcpuRef {
                    domain: d as u8,
                    vcpu: 0,
                },
                Virq::Console,
            );
        }
    }

    // -----------------------------------------------------------------------
    // Scheduling

    /// Makes `next` the running vCPU of `cpu`, switching EL1 state if another
    /// vCPU's is loaded, and prepares the entry.
    fn switch_to(&mut self, cpu: usize, next: VcpuRef, now: u64) -> *mut GuestRegs {
        if let Some(prev) = self.cpus[cpu].current {
            if prev != next && self.vcpu(prev).state == VcpuState::Running {
                self.vcpu_mut(prev).state = VcpuState::Runnable;
            }
        }
        if self.cpus[cpu].current != Some(next) {
            self.cpus[cpu].slice_end = now + self.timeslice;
        }
        if self.cpus[cpu].loaded != Some(next) {
            if let Some(prev) = self.cpus[cpu].loaded {
                let p = self.vcpu_mut(prev);
                p.el1.save();
                p.stats.switches_out += 1;
            }
            let n = self.vcpu_mut(next);
            n.el1.load();
            n.stats.switches_in += 1;
            self.cpus[cpu].loaded = Some(next);
        }
        self.cpus[cpu].current = Some(next);
        self.vcpu_mut(next).state = VcpuState::Running;
        PERCPU[cpu]
            .current_regs
            .store(regs_ptr(next), Ordering::Relaxed);
        PERCPU[cpu].current.store(
            u32::from(next.domain) << 8 | u32::from(next.vcpu),
            Ordering::Relaxed,
        );
        self.prepare_entry(cpu, next);
        regs_ptr(next)
    }

    /// Applies the VPSR's virtual state and pending work before entering `v`.
    fn prepare_entry(&self, cpu: usize, v: VcpuRef) {
        let vcpu = self.vcpu(v);
        apply_fp_enable(vcpu);
        let trap_fp = if self.cpus[cpu].fp_owner == Some(v) {
            0
        } else {
            cptr::TFP
        };
        sysregs::write_cptr_el2(cptr::BASE | trap_fp);
        Self::deliver_now(vcpu);
        self.program_timer(cpu);
    }

    fn alive_domains(&self) -> usize {
        self.domains[..self.domain_count]
            .iter()
            .filter(|d| d.alive())
            .count()
    }

    fn crashed_domains(&self) -> usize {
        self.domains[..self.domain_count]
            .iter()
            .filter(|d| d.state == DomainState::Crashed)
            .count()
    }

    // -----------------------------------------------------------------------
    // Domain end

    fn stop_domain(&mut self, index: usize, outcome: Outcome<'_>) {
        let here = crate::arch::cpu_index();
        if !self.domains[index].alive() {
            return;
        }
        {
            let d = &mut self.domains[index];
            let name = start_info::c_str(&d.name).unwrap_or("?");
            let mut console = d.console;
            console.flush(&mut |line| print_line(name, format_args!("{line}")));
            d.console = console;
        }
        let name = self.domains[index].name();
        match outcome {
            Outcome::Exit(code) => {
                hvprintln!("domain {name} exited: poweroff (code {code})");
                self.tally.exited(code);
                self.domains[index].state = DomainState::Exited(code);
            }
            Outcome::Crash(reason) => {
                hvprintln!("domain {name} crashed: {reason}");
                let d = &self.domains[index];
                match restart::on_crash(d.on_crash, d.restarts) {
                    Decision::Destroy => self.tally.failed(),
                    // Counted once the restart has happened (`restart_domain`).
                    Decision::Restart { .. } => self.domains[index].restart_pending = true,
                    Decision::GiveUp { restarts } => {
                        hvprintln!(
                            "domain {name} not restarted: it crashed again after {restarts} restarts (at most {MAX_RESTARTS})"
                        );
                        self.tally.failed();
                    }
                }
                self.domains[index].state = DomainState::Crashed;
            }
        }
        self.report_stats(index);
        for i in 0..self.domains[index].vcpu_count {
            let v = &mut self.domains[index].vcpus[i];
            v.state = VcpuState::Off;
            v.timer_deadline = 0;
        }
        for cpu in 0..self.cpu_count {
            self.cpus[cpu].queue.remove_domain(index as u8);
            if let Some(cur) = self.cpus[cpu].current {
                if cur.domain as usize == index && cpu != here {
                    gic::kick(cpu);
                }
            }
            if self.cpus[cpu]
                .fp_owner
                .is_some_and(|o| o.domain as usize == index)
                && cpu == here
            {
                self.cpus[cpu].fp_owner = None;
            }
        }
        self.teardown_sharing(index);
        for d in 0..self.domain_count {
            if self.domains[d].alive() {
                self.raise_virq(
                    VcpuRef {
                        domain: d as u8,
                        vcpu: 0,
                    },
                    Virq::DomainExit,
                );
            }
        }
    }

    fn report_stats(&self, index: usize) {
        let d = &self.domains[index];
        let mut total = VcpuStats::default();
        let (mut masks, mut unmasks, mut dispatches, mut upcalls, mut held, mut fp_traps) =
            (0, 0, 0, 0, 0, 0);
        for v in &d.vcpus[..d.vcpu_count] {
            total.hypercalls += v.stats.hypercalls;
            total.switches_in += v.stats.switches_in;
            total.switches_out += v.stats.switches_out;
            total.fp_loads += v.stats.fp_loads;
            total.fp_saves += v.stats.fp_saves;
            let s = &v.vpsr().stats;
            masks += s.masks.load(Ordering::Relaxed);
            unmasks += s.unmasks.load(Ordering::Relaxed);
            dispatches += s.unmask_dispatches.load(Ordering::Relaxed);
            upcalls += s.upcalls.load(Ordering::Relaxed);
            held += s.upcalls_while_masked.load(Ordering::Relaxed);
            fp_traps += s.fp_disabled_traps.load(Ordering::Relaxed);
        }
        let eager = total.switches_in + total.switches_out;
        let lazy = total.fp_loads + total.fp_saves;
        hvprintln!(
            "domain {} stats: {} hypercalls and traps, {} world switches in; VPSR: {} traps avoided ({masks} masks + {unmasks} unmasks by plain store, {dispatches} dispatched on unmask), {upcalls} upcalls acked without a trap ({held} held while masked); lazy FPU: {} loads + {} saves instead of {eager}, {} FP save/restores avoided, {fp_traps} FP-disabled traps in the guest",
            d.name(),
            total.hypercalls,
            total.switches_in,
            masks + unmasks,
            total.fp_loads,
            total.fp_saves,
            eager.saturating_sub(lazy)
        );
    }

    // -----------------------------------------------------------------------
    // Synchronous traps

    /// Handles a synchronous trap of `v`; returns true if it gives up the CPU.
    fn handle_sync(&mut self, cpu: usize, v: VcpuRef, regs: &mut GuestRegs) -> bool {
        let esr = sysregs::read_esr_el2();
        let class = esr::class(esr);
        self.vcpu_mut(v).stats.hypercalls += 1;
        match class {
            ec::HVC64 => self.slow_hypercall(cpu, v, regs, esr),
            ec::FP => {
                self.fp_trap(cpu, v);
                false
            }
            ec::WFX => {
                regs.elr += 4;
                if esr & 1 == 0 {
                    self.block(v)
                } else {
                    true
                }
            }
            ec::DABT_LOWER | ec::IABT_LOWER => {
                let far = sysregs::read_far_el2();
                let ipa = ((sysregs::read_hpfar_el2() >> 4) << 12) | (far & 0xfff);
                let (kind, write) = esr::abort_description(esr);
                let what = if class == ec::DABT_LOWER {
                    if write {
                        "data abort (write)"
                    } else {
                        "data abort (read)"
                    }
                } else {
                    "instruction abort"
                };
                self.stop_domain(
                    v.domain as usize,
                    Outcome::Crash(format_args!(
                        "stage-2 {what}, {kind} at IPA {ipa:#x} (FAR {far:#x}), PC {:#x}, ESR {esr:#x}: outside the domain's memory",
                        regs.elr
                    )),
                );
                true
            }
            _ => {
                let what = esr::class_name(class);
                self.stop_domain(
                    v.domain as usize,
                    Outcome::Crash(format_args!(
                        "{what} not permitted to guests (ESR {esr:#x}, EC {class:#x}), PC {:#x}, FAR {:#x}",
                        regs.elr,
                        sysregs::read_far_el2()
                    )),
                );
                true
            }
        }
    }

    fn block(&mut self, v: VcpuRef) -> bool {
        let vcpu = self.vcpu_mut(v);
        // Only `pending` counts: the guest clears it when it dispatches and
        // leaves virtual IRQs it has no handler for in `pending_virqs`, which
        // must not keep it from blocking.
        if vcpu.vpsr().pending.load(Ordering::SeqCst) != 0 {
            return false;
        }
        vcpu.state = VcpuState::Blocked;
        true
    }

    fn slow_hypercall(&mut self, _cpu: usize, v: VcpuRef, regs: &mut GuestRegs, esr: u64) -> bool {
        let [nr, a1, a2, a3] = [regs.x[0], regs.x[1], regs.x[2], regs.x[3]];
        let status = |r: Result<u64, HvError>| match r {
            Ok(v) => v,
            Err(e) => e.to_raw() as u64,
        };
        if esr & 0xffff != u64::from(HVC_IMM) {
            regs.x[0] = HvError::NoSys.to_raw() as u64;
            return false;
        }
        let d = v.domain as usize;
        match Hypercall::from_raw(nr) {
            Some(Hypercall::Yield) => {
                regs.x[0] = 0;
                true
            }
            Some(Hypercall::Block) => {
                regs.x[0] = 0;
                self.block(v)
            }
            Some(Hypercall::Shutdown) => match ShutdownReason::from_raw(a1) {
                Some(ShutdownReason::Crash) => {
                    self.stop_domain(
                        d,
                        Outcome::Crash(format_args!("the guest reported a crash (code {a2})")),
                    );
                    true
                }
                Some(_) => {
                    self.stop_domain(d, Outcome::Exit(a2));
                    true
                }
                None => {
                    regs.x[0] = HvError::Inval.to_raw() as u64;
                    false
                }
            },
            Some(Hypercall::VcpuUp) => {
                let r = self.vcpu_up(v, a1, a2, a3);
                regs.x[0] = status(r);
                false
            }
            _ => {
                regs.x[0] = HvError::NoSys.to_raw() as u64;
                false
            }
        }
    }

    fn vcpu_up(&mut self, v: VcpuRef, id: u64, entry: u64, arg: u64) -> Result<u64, HvError> {
        let d = &self.domains[v.domain as usize];
        if !d.abi_ok {
            return Err(HvError::Perm);
        }
        if id >= d.vcpu_count as u64 {
            return Err(HvError::NoEnt);
        }
        if entry < d.ram_ipa
            || entry >= layout::reserved_top_base(d.ram_ipa, d.ram_size)
            || !entry.is_multiple_of(4)
        {
            return Err(HvError::Inval);
        }
        let target = VcpuRef {
            domain: v.domain,
            vcpu: id as u8,
        };
        if self.vcpu(target).state != VcpuState::Off {
            return Err(HvError::Busy);
        }
        self.start_vcpu(target, entry, arg);
        Ok(0)
    }

    /// Lazy FPU: `v` used FP/SIMD without owning the registers on this CPU.
    fn fp_trap(&mut self, cpu: usize, v: VcpuRef) {
        sysregs::write_cptr_el2(cptr::BASE);
        if let Some(owner) = self.cpus[cpu].fp_owner {
            let o = self.vcpu_mut(owner);
            crate::arch::fp::save(&mut o.fp);
            o.stats.fp_saves += 1;
        }
        let n = self.vcpu_mut(v);
        crate::arch::fp::load(&n.fp);
        n.stats.fp_loads += 1;
        self.cpus[cpu].fp_owner = Some(v);
    }

    // -----------------------------------------------------------------------
    // Fast hypercalls (no vCPU switch)

    fn fast_hypercall(
        &mut self,
        cpu: usize,
        v: VcpuRef,
        call: Hypercall,
        args: [u64; 6],
        out: &mut [u64; 3],
    ) -> Result<u64, HvError> {
        let d = v.domain as usize;
        let needs_abi = !matches!(call, Hypercall::VersionCheck | Hypercall::ConsoleWrite);
        if needs_abi && !self.domains[d].abi_ok {
            return Err(HvError::Perm);
        }
        match call {
            Hypercall::VersionCheck => {
                let guest = AbiVersion::from_raw(args[0]);
                if guest.is_compatible_with(ABI_VERSION) {
                    self.domains[d].abi_ok = true;
                    Ok(0)
                } else {
                    hvprintln!(
                        "domain {} was built for ABI {guest}, this hypervisor speaks {ABI_VERSION}: refused",
                        self.domains[d].name()
                    );
                    Err(HvError::VersionMismatch)
                }
            }
            Hypercall::ConsoleWrite => self.console_write(d, args[0], args[1]),
            Hypercall::SetTimer => {
                self.vcpu_mut(v).timer_deadline = args[0];
                if args[0] != 0 && sysregs::counter() >= args[0] {
                    self.fire_timers(cpu, sysregs::counter());
                    Self::deliver_now(self.vcpu(v));
                }
                self.program_timer(cpu);
                Ok(0)
            }
            Hypercall::VcpuInfo => {
                *out = [
                    d as u64,
                    u64::from(v.vcpu),
                    self.domains[d].vcpu_count as u64,
                ];
                Ok(0)
            }
            Hypercall::VpsrSync => {
                let vcpu = self.vcpu(v);
                apply_fp_enable(vcpu);
                Self::deliver_now(vcpu);
                Ok(0)
            }
            Hypercall::DomainCount => {
                *out = [
                    self.alive_domains() as u64,
                    self.crashed_domains() as u64,
                    0,
                ];
                Ok(0)
            }
            Hypercall::DomainLookup => {
                out[0] = self.domain_lookup(d, args[0], args[1])?;
                Ok(0)
            }
            Hypercall::EvtchnAllocUnbound => {
                let alive = self.domain_alive(args[0]);
                let port = self.events.alloc_unbound(v.domain, args[0], alive)?;
                out[0] = port.into();
                Ok(0)
            }
            Hypercall::EvtchnBindInterdomain => {
                let alive = self.domain_alive(args[0]);
                let port = self
                    .events
                    .bind_interdomain(v.domain, args[0], args[1], alive)?;
                out[0] = port.into();
                Ok(0)
            }
            Hypercall::EvtchnBindVirq => {
                let vcpus = self.domains[d].vcpu_count;
                out[0] = self
                    .events
                    .bind_virq(v.domain, args[0], args[1], vcpus)?
                    .into();
                Ok(0)
            }
            Hypercall::EvtchnBindIpi => {
                let vcpus = self.domains[d].vcpu_count;
                out[0] = self.events.bind_ipi(v.domain, args[0], vcpus)?.into();
                Ok(0)
            }
            Hypercall::EvtchnSend => {
                let domains = &self.domains;
                let target = self
                    .events
                    .send_target(v.domain, args[0], |x| domains[x as usize].alive())?;
                self.send_event(target);
                Ok(0)
            }
            Hypercall::EvtchnBindPirq => {
                let owned = self.domains[d].device_irqs;
                let port = self.events.bind_pirq(v.domain, args[0], |intid| {
                    (intid as usize) < MAX_PIRQ && owned & (1u128 << intid) != 0
                })?;
                let cpu = self.domains[d].vcpus[0].cpu;
                self.gic.enable_spi(args[0] as u32, self.mpidr[cpu]);
                out[0] = port.into();
                Ok(0)
            }
            Hypercall::IrqEoi => {
                if !self.events.pirq_bound_by(v.domain, args[0]) {
                    return Err(HvError::Access);
                }
                self.gic.unmask_spi(args[0] as u32);
                Ok(0)
            }
            Hypercall::ConsoleRead => {
                out[0] = self.console_read(d, args[0], args[1])?;
                Ok(0)
            }
            Hypercall::EvtchnClose => {
                if let Ok(crate::evtchn::PortState::Pirq(intid)) =
                    self.events.table(v.domain).state(args[0])
                {
                    self.gic.disable_spi(intid.into());
                }
                if let Some((peer, port)) = self.events.close(v.domain, args[0])? {
                    self.wake_port(peer, port);
                }
                Ok(0)
            }
            Hypercall::EvtchnStatus => {
                *out = self.events.status(v.domain, args[0])?.to_raw();
                Ok(0)
            }
            Hypercall::EvtchnUnmask => {
                let vcpu = self.events.bound_vcpu(v.domain, args[0])?;
                let port = args[0] as Port;
                let page = self.domains[d].events();
                if page.is_pending(port) && !page.is_masked(port) {
                    self.flag_port(Target {
                        domain: v.domain,
                        port,
                        vcpu,
                    });
                }
                Ok(0)
            }
            Hypercall::GrantMap => self.grant_map(d, args, out),
            Hypercall::GrantUnmap => {
                self.grant_unmap(d, args[0])?;
                Ok(0)
            }
            Hypercall::GrantCopy => self.grant_copy(d, args[0]),
            Hypercall::StoreWrite => {
                let key = self.read_key(d, args[0], args[1])?;
                if args[3] > VALUE_MAX as u64 {
                    return Err(HvError::Inval);
                }
                let mut value = [0u8; VALUE_MAX];
                let value = &mut value[..args[3] as usize];
                self.copy_from_guest(d, args[2], value)?;
                self.store[d].write(key.as_slice(), value)?;
                self.store_changed(d);
                Ok(0)
            }
            Hypercall::StoreRead => {
                let owner = usize::try_from(args[0]).map_err(|_| HvError::NoDomain)?;
                if !self.domain_alive(owner as u64) {
                    return Err(HvError::NoDomain);
                }
                let key = self.read_key(d, args[1], args[2])?;
                let mut value = [0u8; VALUE_MAX];
                let len = self.store[owner].read(key.as_slice(), &mut value)?;
                let n = len.min(args[4].min(VALUE_MAX as u64) as usize);
                self.copy_to_guest(d, args[3], &value[..n])?;
                out[0] = len as u64;
                Ok(0)
            }
            Hypercall::StoreRemove => {
                let key = self.read_key(d, args[0], args[1])?;
                self.store[d].remove(key.as_slice())?;
                self.store_changed(d);
                Ok(0)
            }
            Hypercall::Stats => {
                let mut switches = 0;
                for dom in &self.domains[..self.domain_count] {
                    for vc in &dom.vcpus[..dom.vcpu_count] {
                        switches += vc.stats.switches_in;
                    }
                }
                let own: u64 = self.domains[d].vcpus[..self.domains[d].vcpu_count]
                    .iter()
                    .map(|vc| vc.stats.hypercalls)
                    .sum();
                *out = [switches, self.events.table(v.domain).sends, own];
                Ok(0)
            }
            _ => Err(HvError::NoSys),
        }
    }

    fn domain_alive(&self, id: u64) -> bool {
        (id as usize) < self.domain_count
            && id < MAX_DOMAINS as u64
            && self.domains[id as usize].alive()
    }

    fn domain_lookup(&self, d: usize, ipa: u64, len: u64) -> Result<u64, HvError> {
        if len == 0 || len > start_info::NAME_LEN as u64 {
            return Err(HvError::Inval);
        }
        let mut name = [0u8; start_info::NAME_LEN];
        let name = &mut name[..len as usize];
        self.copy_from_guest(d, ipa, name)?;
        self.domains[..self.domain_count]
            .iter()
            .position(|dom| dom.alive() && dom.name().as_bytes() == name)
            .map(|i| i as u64)
            .ok_or(HvError::NoDomain)
    }

    /// Raises `Virq::Store` in every other running domain.
    fn store_changed(&mut self, writer: usize) {
        for e in 0..self.domain_count {
            if e != writer && self.domains[e].alive() {
                self.raise_virq(
                    VcpuRef {
                        domain: e as u8,
                        vcpu: 0,
                    },
                    Virq::Store,
                );
            }
        }
    }

    fn read_key(&self, d: usize, ipa: u64, len: u64) -> Result<KeyBuf, HvError> {
        if len == 0 || len > KEY_MAX as u64 {
            return Err(HvError::Inval);
        }
        let mut k = KeyBuf {
            bytes: [0; KEY_MAX],
            len: len as usize,
        };
        self.copy_from_guest(d, ipa, &mut k.bytes[..len as usize])?;
        Ok(k)
    }

    /// Walks `len` bytes at `ipa` through domain `d`'s stage-2 and calls `f`
    /// with each physically contiguous piece `(pa, offset, n)`. Fails before
    /// calling `f` at all if any piece is unmapped, not RAM, or (for
    /// `write`) read-only.
    fn guest_ranges(
        &self,
        d: usize,
        ipa: u64,
        len: u64,
        write: bool,
        mut f: impl FnMut(u64, usize, usize),
    ) -> Result<(), HvError> {
        let s2 = self.domains[d].stage2.ok_or(HvError::Fault)?;
        let mut pieces = [(0u64, 0usize, 0usize); 4];
        let mut count = 0;
        let mut done = 0;
        while done < len {
            let at = ipa.checked_add(done).ok_or(HvError::Fault)?;
            let t = s2.translate(&self.tables, at).ok_or(HvError::Fault)?;
            if t.attributes.kind != MemKind::Normal
                || (write && t.attributes.access != Access::ReadWrite)
            {
                return Err(HvError::Fault);
            }
            let n = t.contiguous.min(len - done);
            if count == pieces.len() {
                return Err(HvError::Inval);
            }
            pieces[count] = (t.pa, done as usize, n as usize);
            count += 1;
            done += n;
        }
        for &(pa, off, n) in &pieces[..count] {
            f(pa, off, n);
        }
        Ok(())
    }

    /// Copies guest memory into `buf` (read once, into hypervisor memory).
    fn copy_from_guest(&self, d: usize, ipa: u64, buf: &mut [u8]) -> Result<(), HvError> {
        self.guest_ranges(d, ipa, buf.len() as u64, false, |pa, off, n| {
            // SAFETY: `guest_ranges` checked that [pa, pa + n) is RAM mapped
            // to the domain.
            unsafe { phys::read_bytes(pa, &mut buf[off..off + n]) }
        })
    }

    /// Copies `data` into guest memory the domain may write.
    fn copy_to_guest(&self, d: usize, ipa: u64, data: &[u8]) -> Result<(), HvError> {
        self.guest_ranges(d, ipa, data.len() as u64, true, |pa, off, n| {
            // SAFETY: `guest_ranges` checked that [pa, pa + n) is RAM the
            // domain may write; no Rust reference aliases guest RAM.
            unsafe { phys::write_bytes(pa, &data[off..off + n]) }
        })
    }

    // -----------------------------------------------------------------------
    // Grants

    /// The physical page of frame `gfn` of domain `g`, if it is ordinary RAM
    /// of `g` below its reserved pages.
    fn granted_frame_pa(&self, g: usize, gfn: u32) -> Option<u64> {
        let dom = &self.domains[g];
        let ipa = u64::from(gfn) << 12;
        let top = layout::reserved_top_base(dom.ram_ipa, dom.ram_size);
        (ipa >= dom.ram_ipa && ipa < top).then(|| dom.ram_pa + (ipa - dom.ram_ipa))
    }

    fn grant_map(&mut self, d: usize, args: [u64; 6], out: &mut [u64; 3]) -> Result<u64, HvError> {
        let [granter, gref, ipa, flags, ..] = args;
        if !self.domain_alive(granter) {
            return Err(HvError::NoDomain);
        }
        if flags & !abi_grant::map_flags::READONLY != 0 {
            return Err(HvError::Inval);
        }
        grant::check_window(ipa)?;
        let mut s2 = self.domains[d].stage2.ok_or(HvError::Fault)?;
        if self.maps[d].at(ipa) || s2.translate(&self.tables, ipa).is_some() {
            return Err(HvError::Busy);
        }
        if self.maps[d].len() >= abi_grant::MAX_MAPPINGS as usize {
            return Err(HvError::NoMem);
        }
        let g = granter as usize;
        let write = flags & abi_grant::map_flags::READONLY == 0;
        let table = self.domains[g].grant_table();
        let frame = grant::acquire(table, &mut self.pins[g], gref, d as u32, write)?;
        let Some(pa) = self.granted_frame_pa(g, frame) else {
            grant::release(table, &mut self.pins[g], gref as u32, write);
            return Err(HvError::Fault);
        };
        let attrs = Attributes {
            kind: MemKind::Normal,
            access: if write {
                Access::ReadWrite
            } else {
                Access::ReadOnly
            },
            executable: false,
        };
        if s2.map(&mut self.tables, ipa, pa, PAGE_SIZE, attrs).is_err() {
            grant::release(table, &mut self.pins[g], gref as u32, write);
            return Err(HvError::NoMem);
        }
        self.domains[d].stage2 = Some(s2);
        let handle = self.maps[d].insert(Mapping {
            granter: g as u8,
            gref: gref as u32,
            ipa,
            pa,
            write,
            orphaned: false,
        })?;
        out[0] = handle;
        out[1] = if self.domains[d].role == Role::Driver {
            pa
        } else {
            0
        };
        Ok(0)
    }

    fn grant_unmap(&mut self, d: usize, handle: u64) -> Result<(), HvError> {
        let m = self.maps[d].remove(handle)?;
        self.unmap_window_page(d, m.ipa);
        if !m.orphaned {
            let table = self.domains[m.granter as usize].grant_table();
            grant::release(table, &mut self.pins[m.granter as usize], m.gref, m.write);
        }
        Ok(())
    }

    /// Removes the page at `ipa` from `d`'s stage-2 and flushes it from TLBs.
    fn unmap_window_page(&mut self, d: usize, ipa: u64) {
        if let Some(mut s2) = self.domains[d].stage2 {
            let _ = s2.unmap_page(&mut self.tables, ipa);
            crate::arch::tlb::invalidate_ipa(self.domains[d].vttbr(), ipa);
        }
    }

    fn grant_copy(&mut self, d: usize, op_ipa: u64) -> Result<u64, HvError> {
        let mut op = abi_grant::GrantCopy::default();
        self.copy_from_guest(d, op_ipa, op.as_mut_bytes())?;
        let (src, dst) = grant::check_copy(&op, |x| self.domain_alive(x.into()))?;
        let len = u64::from(op.len);
        let src_pa = self.copy_side(d, src, false)?;
        let dst_pa = match self.copy_side(d, dst, true) {
            Ok(pa) => pa,
            Err(e) => {
                self.release_side(src, false);
                return Err(e);
            }
        };
        // SAFETY: both sides were checked: the source is RAM the caller may
        // read (its own, or a frame granted to it), the destination RAM it may
        // write; each range stays within one page.
        unsafe { phys::copy(dst_pa, src_pa, len) };
        self.release_side(src, false);
        self.release_side(dst, true);
        Ok(len)
    }

    /// Resolves one side of a grant copy to a physical address, pinning a
    /// granted frame for the duration.
    fn copy_side(&mut self, d: usize, side: Side, write: bool) -> Result<u64, HvError> {
        match side {
            Side::Own { gfn, offset } => {
                let ipa = gfn.checked_mul(PAGE_SIZE).ok_or(HvError::Fault)?;
                let mut pa = 0;
                self.guest_ranges(d, ipa, PAGE_SIZE, write, |p, _, _| pa = p)?;
                Ok(pa + u64::from(offset))
            }
            Side::Granted {
                granter,
                gref,
                offset,
            } => {
                let g = granter as usize;
                let table = self.domains[g].grant_table();
                let frame = grant::acquire(table, &mut self.pins[g], gref.into(), d as u32, write)?;
                match self.granted_frame_pa(g, frame) {
                    Some(pa) => Ok(pa + u64::from(offset)),
                    None => {
                        grant::release(table, &mut self.pins[g], gref, write);
                        Err(HvError::Fault)
                    }
                }
            }
        }
    }

    fn release_side(&mut self, side: Side, write: bool) {
        if let Side::Granted { granter, gref, .. } = side {
            let table = self.domains[granter as usize].grant_table();
            grant::release(table, &mut self.pins[granter as usize], gref, write);
        }
    }

    /// Domain `d` stopped: undo every mapping it made, take every mapping of
    /// its pages away from the grantees (pointing their window page at their
    /// own scratch page), close its ports and empty its store namespace.
    fn teardown_sharing(&mut self, d: usize) {
        let mine: heapless_handles::Handles = self.maps[d].iter().map(|(h, _)| h).collect();
        for h in mine.iter() {
            let _ = self.grant_unmap(d, h);
        }
        for e in 0..self.domain_count {
            if e == d {
                continue;
            }
            let theirs: heapless_handles::Handles = self.maps[e]
                .iter()
                .filter(|(_, m)| m.granter as usize == d && !m.orphaned)
                .map(|(h, _)| h)
                .collect();
            for h in theirs.iter() {
                let Ok(m) = self.maps[e].get(h) else { continue };
                self.unmap_window_page(e, m.ipa);
                let scratch_pa = {
                    let dom = &self.domains[e];
                    dom.ram_pa + (dom.scratch_ipa - dom.ram_ipa)
                };
                if let Some(mut s2) = self.domains[e].stage2 {
                    let _ = s2.map(
                        &mut self.tables,
                        m.ipa,
                        scratch_pa,
                        PAGE_SIZE,
                        Attributes {
                            kind: MemKind::Normal,
                            access: Access::ReadWrite,
                            executable: false,
                        },
                    );
                }
                let table = self.domains[d].grant_table();
                grant::release(table, &mut self.pins[d], m.gref, m.write);
                self.maps[e].orphan(h);
            }
        }
        self.pins[d] = Pins::EMPTY;
        for intid in FIRST_SPI..MAX_PIRQ as u32 {
            if self.events.pirq_bound_by(d as u8, intid.into()) {
                self.gic.disable_spi(intid);
            }
        }
        let mut peers = [(0u8, 0 as Port); 64];
        let mut n = 0;
        self.events.teardown(d as u8, |peer, port| {
            if n < peers.len() {
                peers[n] = (peer, port);
                n += 1;
            }
        });
        for &(peer, port) in &peers[..n] {
            self.wake_port(peer, port);
        }
        if !self.store[d].is_empty() {
            self.store[d].clear();
            self.store_changed(d);
        }
    }

    /// `ConsoleRead`: hands queued console input to the console-input domain.
    /// Bytes leave the queue only once they are in the guest's buffer.
    #[inline(never)]
    fn console_read(&mut self, d: usize, ipa: u64, len: u64) -> Result<u64, HvError> {
        if d != self.console_domain {
            return Err(HvError::Perm);
        }
        let mut buf = [0u8; crate::console::INPUT_MAX];
        let want = len.min(buf.len() as u64) as usize;
        let n = self.console_in.peek_into(&mut buf[..want]);
        self.copy_to_guest(d, ipa, &buf[..n])?;
        self.console_in.consume(n);
        Ok(n as u64)
    }

    /// Copies the guest's buffer through its stage-2 view (read once, into a
    /// private buffer) and line-buffers it.
    fn console_write(&mut self, d: usize, ipa: u64, len: u64) -> Result<u64, HvError> {
        if len > CONSOLE_WRITE_MAX {
            return Err(HvError::Inval);
        }
        let mut buf = [0u8; CONSOLE_WRITE_MAX as usize];
        self.copy_from_guest(d, ipa, &mut buf[..len as usize])?;
        let dom = &mut self.domains[d];
        let name = start_info::c_str(&dom.name).unwrap_or("?");
        dom.console.push(&buf[..len as usize], |line| {
            print_line(name, format_args!("{line}"))
        });
        Ok(len)
    }
}

impl El1State {
    /// All zeros.
    pub const ZERO: El1State = El1State {
        sctlr: 0,
        ttbr0: 0,
        ttbr1: 0,
        tcr: 0,
        mair: 0,
        amair: 0,
        vbar: 0,
        contextidr: 0,
        tpidr_el1: 0,
        tpidr_el0: 0,
        tpidrro_el0: 0,
        sp_el0: 0,
        elr_el1: 0,
        spsr_el1: 0,
        esr_el1: 0,
        far_el1: 0,
        afsr0: 0,
        afsr1: 0,
        par: 0,
        cpacr: 0,
        cntkctl: 0,
        mdscr: 0,
        csselr: 0,
        vmpidr: 0,
        ich_vmcr: 0,
        ich_lr0: 0,
        ich_ap1r0: 0,
        vttbr: 0,
    };
}

/// Applies the VPSR's virtual FP-enable bit to the loaded vCPU's `CPACR_EL1`.
fn apply_fp_enable(vcpu: &Vcpu) {
    let want = if vcpu.vpsr().fp_enable.load(Ordering::Relaxed) != 0 {
        sysregs::CPACR_FPEN
    } else {
        0
    };
    let cpacr = sysregs::read_cpacr_el1();
    if cpacr & sysregs::CPACR_FPEN != want {
        sysregs::write_cpacr_el1((cpacr & !sysregs::CPACR_FPEN) | want);
    }
}

/// Chooses what `cpu` runs next (idling until there is something) and
/// prepares the entry. Powers the machine off once every domain has stopped.
fn dispatch(
    cpu: usize,
    mut hv: MutexGuard<'static, Hypervisor>,
    mut expired: bool,
) -> *mut GuestRegs {
    loop {
        hv.run_restarts(cpu);
        let now = sysregs::counter();
        hv.fire_timers(cpu, now);
        let current = hv.cpus[cpu]
            .current
            .filter(|&c| hv.vcpu(c).state == VcpuState::Running);
        if current.is_some() && now >= hv.cpus[cpu].slice_end {
            expired = true;
        }
        // `switch_to` marks a preempted current vCPU runnable.
        if let Some(next) = pick_next(&mut hv.cpus[cpu].queue, current, expired) {
            return hv.switch_to(cpu, next, now);
        }
        hv.cpus[cpu].current = None;
        PERCPU[cpu].current.store(u32::MAX, Ordering::Relaxed);
        let all_stopped = hv.alive_domains() == 0 && !hv.restarts_pending();
        if hv.domain_count > 0 && all_stopped || hv.domain_count == 0 && cpu == 0 {
            hvprintln!("all domains stopped: {}", hv.tally);
            psci::system_off();
        }
        hv.program_timer(cpu);
        drop(hv);
        crate::arch::wait_for_interrupt_polling(IDLE_POLL_SPINS);
        hv = HV.lock();
        hv.handle_irqs();
        expired = false;
    }
}

/// The full-trap path: called by the vectors with the current vCPU's saved
/// registers; returns the registers of the vCPU to enter.
#[unsafe(no_mangle)]
extern "C" fn hv_trap(regs: *mut GuestRegs, kind: u64) -> *mut GuestRegs {
    let cpu = crate::arch::cpu_index();
    let mut hv = HV.lock();
    let Some(cur) = hv.cpus[cpu].current else {
        fatal(format_args!("trap on CPU {cpu} with no current vCPU"));
    };
    let mut expired = false;
    match TrapKind::from_raw(kind) {
        TrapKind::Sync => {
            // SAFETY: `regs` is the running vCPU's slot, which the vectors just
            // filled; only this CPU uses it while the vCPU is current.
            let regs = unsafe { &mut *regs };
            expired = hv.handle_sync(cpu, cur, regs);
        }
        TrapKind::Irq => hv.handle_irqs(),
        TrapKind::Other(k) => {
            let what = if k == 4 {
                "AArch32 execution"
            } else {
                "FIQ/SError"
            };
            hv.stop_domain(
                cur.domain as usize,
                Outcome::Crash(format_args!("{what} is not supported")),
            );
        }
    }
    dispatch(cpu, hv, expired)
}

/// The fast hypercall path: no vCPU switch, only `x18`/`x30` saved by the
/// vectors. Results beyond the status go to `out` (loaded into `x1`–`x3`).
#[unsafe(no_mangle)]
extern "C" fn hvc_fast(
    nr: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
    out: *mut [u64; 3],
) -> u64 {
    // SAFETY: `out` points to the 32-byte scratch area the vector reserved on
    // this CPU's stack for exactly this call.
    let out = unsafe { &mut *out };
    if sysregs::read_esr_el2() & 0xffff != u64::from(HVC_IMM) {
        return HvError::NoSys.to_raw() as u64;
    }
    if nr == Hypercall::Version as u64 {
        out[0] = ABI_VERSION.to_raw();
        out[1] = Features::OFFERED.0;
        return 0;
    }
    // Unknown numbers are answered without taking the lock.
    let Some(call) = Hypercall::from_raw(nr) else {
        return HvError::NoSys.to_raw() as u64;
    };
    fast_locked(call, [a1, a2, a3, a4, a5, a6], out)
}

/// The fast hypercalls that need the lock. Kept out of line so that the
/// `Version` path above pays for none of its stack frame (the console buffer).
#[inline(never)]
fn fast_locked(call: Hypercall, args: [u64; 6], out: &mut [u64; 3]) -> u64 {
    let cpu = crate::arch::cpu_index();
    let cur = PERCPU[cpu].current.load(Ordering::Relaxed);
    let v = VcpuRef {
        domain: (cur >> 8) as u8,
        vcpu: cur as u8,
    };
    let mut hv = HV.lock();
    hv.vcpu_mut(v).stats.hypercalls += 1;
    match hv.fast_hypercall(cpu, v, call, args, out) {
        Ok(value) => value,
        Err(e) => e.to_raw() as u64,
    }
}
