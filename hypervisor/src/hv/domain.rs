//! A domain's life: creating it from its image, ending it (exit or crash),
//! and what follows once no CPU runs it any more: a restart in place
//! (`on_crash = "restart"`) or giving its RAM and stage-2 tables back.

use core::sync::atomic::Ordering;

use parapet_abi::event::{self, EventPage};
use parapet_abi::grant::{GrantEntry, GRANT_ENTRIES, GRANT_WINDOW_BASE};
use parapet_abi::layout::{self, MAX_DOMAINS, PAGE_SIZE};
use parapet_abi::start_info::{self, device_kind, MmioDevice, StartInfo};
use parapet_abi::trace::{ShortText, TraceEvent};
use parapet_abi::vpsr::Virq;
use parapet_abi::{Features, HvError, ABI_VERSION};
use zerocopy::{FromZeros, IntoBytes};

use super::memory::TABLE_QUOTA;
use super::trace::trace_event;
use super::vcpu::{Vcpu, VcpuStats};
use super::{domain_id, hvprintln, print_line, Hypervisor, MAX_VCPUS};
use crate::arch::{cache, phys};
use crate::bootargs::{self, DomainConfig, OnCrash, Role};
use crate::evtchn::{FIRST_SPI, MAX_PIRQ, PIRQ_LIMIT};
use crate::grant::{MapTrack, Pins};
use crate::lifecycle::{AfterStop, DomainState, VcpuState};
use crate::platform::Module;
use crate::restart::{self, Decision, MAX_RESTARTS};
use crate::sched::VcpuRef;
use crate::stage2::{Attributes, Stage2};

/// Guest RAM is allocated in 2 MiB-aligned runs, so the stage-2 maps it with
/// blocks.
const RAM_ALIGN_FRAMES: usize = (2 << 20) / crate::convert::usize_from(PAGE_SIZE);

pub(super) struct Domain {
    pub state: DomainState,
    pub name: [u8; start_info::NAME_LEN],
    pub role: Role,
    pub vcpu_count: usize,
    pub ram_ipa: u64,
    pub ram_pa: u64,
    pub ram_size: u64,
    /// Whether the RAM came from the frame pool (a guest's) rather than a
    /// fixed range (the driver domain's).
    pub ram_from_pool: bool,
    pub stage2: Option<Stage2>,
    /// Stage-2 table frames in use, of its `TABLE_QUOTA` reservation.
    pub tables_used: usize,
    /// Whether the domain holds its table reservation in the pool.
    pub tables_reserved: bool,
    pub console: crate::console::LineBuffer,
    pub abi_ok: bool,
    /// Physical address of the shared event page.
    pub event_pa: u64,
    /// Physical address of the shared grant table.
    pub grant_pa: u64,
    /// Guest-physical address of the grant scratch page.
    pub scratch_ipa: u64,
    /// Interrupts of the devices passed through to the domain, one bit per
    /// INTID below `evtchn::MAX_PIRQ`.
    pub device_irqs: u128,
    /// The scenario asked for console input to go to this domain.
    pub console_input: bool,
    /// What happens when it crashes.
    pub on_crash: OnCrash,
    /// How often it was restarted after a crash in this run.
    pub restarts: u32,
    /// What is left to do once no CPU runs it any more.
    pub after_stop: AfterStop,
    /// It is the control domain's to manage: `control=1`.
    pub control: bool,
    /// It starts at boot (`autostart=0` only loads it).
    pub autostart: bool,
    /// The control domain paused it: its vCPUs are not scheduled.
    pub paused: bool,
    /// The physical CPU of each vCPU, fixed when it was defined.
    pub cpus: [usize; MAX_VCPUS],
    /// Counter value when it (last) started.
    pub started_at: u64,
    /// How often it crashed in this run.
    pub crashes: u32,
    /// How often the control domain created it.
    pub creates: u32,
    /// Its image and bootargs, kept to start it again.
    pub module: Option<Module<'static>>,
    pub vcpus: [Vcpu; MAX_VCPUS],
}

impl Domain {
    pub const EMPTY: Domain = Domain {
        state: DomainState::Empty,
        name: [0; start_info::NAME_LEN],
        role: Role::Guest,
        vcpu_count: 0,
        ram_ipa: 0,
        ram_pa: 0,
        ram_size: 0,
        ram_from_pool: false,
        stage2: None,
        tables_used: 0,
        tables_reserved: false,
        console: crate::console::LineBuffer::new(),
        abi_ok: false,
        event_pa: 0,
        grant_pa: 0,
        scratch_ipa: 0,
        device_irqs: 0,
        console_input: false,
        on_crash: OnCrash::Destroy,
        restarts: 0,
        after_stop: AfterStop::Nothing,
        control: false,
        autostart: true,
        paused: false,
        cpus: [0; MAX_VCPUS],
        started_at: 0,
        crashes: 0,
        creates: 0,
        module: None,
        vcpus: [const { Vcpu::EMPTY }; MAX_VCPUS],
    };

    pub fn name(&self) -> &str {
        start_info::c_str(&self.name).unwrap_or("?")
    }

    pub fn alive(&self) -> bool {
        self.state.alive()
    }

    pub fn events(&self) -> &'static EventPage {
        // SAFETY: `event_pa` is the domain's reserved event page (set at
        // creation, page-aligned, never given to anything else while the
        // domain holds its RAM, the same after a restart); callers look at
        // it only for running domains. `EventPage` is all atomics, so
        // sharing it with the guest is sound.
        unsafe { &*(self.event_pa as *const EventPage) }
    }

    pub fn grant_table(&self) -> &'static [GrantEntry] {
        // SAFETY: `grant_pa` is the domain's reserved grant-table page, which
        // holds exactly GRANT_ENTRIES entries of atomics (as for `events`).
        unsafe {
            core::slice::from_raw_parts(self.grant_pa as *const GrantEntry, GRANT_ENTRIES as usize)
        }
    }

    pub fn vttbr(&self) -> u64 {
        self.vcpus[0].el1.vttbr
    }
}

/// Why a domain could not be created.
pub(super) enum CreateError {
    Bootargs,
    Limit(&'static str),
    Memory(&'static str),
    Image(&'static str),
    Tables,
}

impl CreateError {
    /// What a `DomctlOp` create answers: `NoMem` when memory ran out,
    /// `Inval` when the image or its entry is unusable, `Busy` for a limit.
    pub fn to_hv_error(&self) -> HvError {
        match self {
            CreateError::Memory(_) | CreateError::Tables => HvError::NoMem,
            CreateError::Bootargs | CreateError::Image(_) => HvError::Inval,
            CreateError::Limit(_) => HvError::Busy,
        }
    }
}

impl core::fmt::Display for CreateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CreateError::Bootargs => f.write_str("malformed domain entry"),
            CreateError::Limit(m) | CreateError::Memory(m) | CreateError::Image(m) => {
                f.write_str(m)
            }
            CreateError::Tables => f.write_str("out of stage-2 table memory"),
        }
    }
}

/// How a domain ended.
pub(super) enum Outcome<'a> {
    Exit(u64),
    Crash(core::fmt::Arguments<'a>),
    /// The control domain destroyed it.
    Destroyed,
}

impl Hypervisor {
    /// Takes the next slot for a boot module: checks its entry and records
    /// what it needs to start (image, name, role, memory, CPUs, policies).
    /// The domain does not run yet (`start_domain`). Returns its id.
    pub(super) fn define_domain(&mut self, module: Module<'static>) -> Result<usize, CreateError> {
        let index = self.domain_count;
        if index >= MAX_DOMAINS {
            return Err(CreateError::Limit("too many domains"));
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
        let others = &self.domains[..self.domain_count];
        if others.iter().any(|d| d.name() == cfg.name) {
            return Err(CreateError::Limit("duplicate domain name"));
        }
        let module_end = module
            .addr
            .checked_add(module.size)
            .ok_or(CreateError::Image("bad module range"))?;
        if module.addr < layout::MODULE_AREA_BASE || module_end > layout::MODULE_AREA_END {
            return Err(CreateError::Image("image outside the module area"));
        }
        let driver = cfg.role == Role::Driver;
        if driver && others.iter().any(|d| d.role == Role::Driver) {
            return Err(CreateError::Limit("a second driver domain"));
        }
        if cfg.control && others.iter().any(|d| d.control) {
            return Err(CreateError::Limit("a second control domain"));
        }
        let ipa = if driver {
            layout::DRIVER_DOMAIN_BASE
        } else {
            layout::GUEST_RAM_BASE
        };
        if ipa + cfg.memory > GRANT_WINDOW_BASE {
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
        let d = &mut self.domains[index];
        *d = Domain::EMPTY;
        d.state = DomainState::Off;
        start_info::set_c_str(&mut d.name, cfg.name);
        d.role = cfg.role;
        d.vcpu_count = cfg.vcpus as usize;
        (d.ram_ipa, d.ram_size) = (ipa, cfg.memory);
        d.console_input = cfg.console_input;
        d.on_crash = cfg.on_crash;
        d.control = cfg.control;
        d.autostart = cfg.autostart;
        d.cpus = cpus;
        d.module = Some(module);
        self.domain_count = index + 1;
        Ok(index)
    }

    /// Starts defined domain `index` from its image, with fresh memory: its
    /// stage-2 table quota is reserved and its RAM taken from the pool (the
    /// driver domain's is fixed). On failure nothing is kept.
    pub(super) fn start_domain(&mut self, index: usize) -> Result<(), CreateError> {
        let module = self.domains[index]
            .module
            .ok_or(CreateError::Image("no image"))?;
        let cfg = bootargs::parse_domain(module.bootargs).map_err(|_| CreateError::Bootargs)?;
        let driver = cfg.role == Role::Driver;
        if !self.frames.reserve(TABLE_QUOTA) {
            return Err(CreateError::Memory(
                "not enough memory left for its stage-2 tables",
            ));
        }
        let pa = if driver {
            layout::DRIVER_DOMAIN_BASE
        } else {
            let frames = (cfg.memory / PAGE_SIZE) as usize;
            match self.frames.alloc_run(frames, RAM_ALIGN_FRAMES) {
                Some(pa) => pa,
                None => {
                    let _ = self.frames.unreserve(TABLE_QUOTA);
                    return Err(CreateError::Memory("not enough RAM left for this domain"));
                }
            }
        };
        let d = &mut self.domains[index];
        d.ram_from_pool = !driver;
        d.tables_reserved = true;
        (d.ram_pa, d.ram_size) = (pa, cfg.memory);
        let (ipa, cpus) = (d.ram_ipa, d.cpus);
        match self.load_domain(index, module, &cfg, (ipa, pa), &cpus, 0) {
            Ok(entry) => {
                self.announce(index, entry);
                Ok(())
            }
            Err(e) => {
                self.give_back_memory(index);
                self.domains[index].state = DomainState::Off;
                Err(e)
            }
        }
    }

    /// Builds domain `index` from its image: zeroes its RAM at `ipa`/`pa`,
    /// loads the ELF, builds its stage-2 tables and start-info page, resets
    /// its slot of the sharing state, and starts vCPU 0 (each vCPU on
    /// `cpus[i]`). Used at boot and to restart a crashed domain in place;
    /// its memory (RAM and table reservation) is already its own.
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
        // range or its run of the frame pool; nothing else uses it (a
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
        let mut s2 = Stage2::new(&mut self.tables_of(index)).map_err(|_| CreateError::Tables)?;
        let mut info = StartInfo::new_zeroed();
        let device_irqs = match self.map_domain(index, &mut s2, &mut info, cfg.role, ipa, pa, size)
        {
            Ok(irqs) => irqs,
            Err(e) => {
                s2.free(&mut self.tables_of(index));
                return Err(e);
            }
        };
        info.magic = start_info::START_INFO_MAGIC;
        // `AbiVersion::to_raw`'s packing, which fits 32 bits.
        info.abi_version = (u32::from(ABI_VERSION.major) << 16) | u32::from(ABI_VERSION.minor);
        info.features = Features::OFFERED.0;
        info.domain_id = domain_id(index).into();
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
        d.state = DomainState::Running;
        d.name = [0; start_info::NAME_LEN];
        start_info::set_c_str(&mut d.name, cfg.name);
        d.role = cfg.role;
        d.vcpu_count = cfg.vcpus as usize;
        (d.ram_ipa, d.ram_pa, d.ram_size, d.stage2) = (ipa, pa, size, Some(s2));
        d.console = crate::console::LineBuffer::new();
        d.abi_ok = false;
        d.event_pa = pa + (layout::event_page_ipa(ipa, size) - ipa);
        d.grant_pa = pa + (layout::grant_table_ipa(ipa, size) - ipa);
        d.scratch_ipa = layout::grant_scratch_ipa(ipa, size);
        d.device_irqs = device_irqs;
        d.console_input = cfg.console_input;
        d.on_crash = cfg.on_crash;
        d.restarts = restarts;
        d.after_stop = AfterStop::Nothing;
        d.paused = false;
        d.started_at = crate::arch::sysregs::counter();
        d.module = Some(module);
        for v in d.vcpus.iter_mut() {
            *v = Vcpu::EMPTY;
        }
        *self.events.table_mut(domain_id(index)) = crate::evtchn::EventTable::EMPTY;
        self.maps[index] = MapTrack::EMPTY;
        self.pins[index] = Pins::EMPTY;
        self.store[index].clear();
        let freq = self.freq;
        let d = &mut self.domains[index];
        for (i, v) in d.vcpus.iter_mut().enumerate().take(d.vcpu_count) {
            v.vpsr_pa = pa + (layout::vpsr_ipa(ipa, size, i as u64) - ipa);
            v.el1.vttbr = vttbr;
            v.cpu = cpus[i];
            let vpsr = v.vpsr();
            vpsr.fp_enable.store(1, Ordering::Relaxed);
            vpsr.counter_freq.store(freq, Ordering::Relaxed);
        }
        let v0 = VcpuRef {
            domain: domain_id(index),
            vcpu: 0,
        };
        self.start_vcpu(v0, image.entry, layout::start_info_ipa(ipa, size));
        Ok(image.entry)
    }

    /// Maps a new domain's RAM (and, for the driver domain, every populated
    /// virtio-mmio page, listed in `info`) into `s2`; returns the device
    /// interrupts it owns.
    #[allow(clippy::too_many_arguments)]
    fn map_domain(
        &mut self,
        index: usize,
        s2: &mut Stage2,
        info: &mut StartInfo,
        role: Role,
        ipa: u64,
        pa: u64,
        size: u64,
    ) -> Result<u128, CreateError> {
        s2.map(&mut self.tables_of(index), ipa, pa, size, Attributes::RAM)
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
                    s2.map(
                        &mut self.tables_of(index),
                        page,
                        page,
                        PAGE_SIZE,
                        Attributes::DEVICE,
                    )
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
        trace_event!(TraceEvent::DomainStart {
            domain: domain_id(index),
            name: ShortText::prefix(d.name().as_bytes()),
        });
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
    // The end of a domain

    /// Ends domain `index`: reports it, stops its vCPUs, undoes its sharing
    /// and tells the others; its restart or the return of its memory follows
    /// once no CPU runs it (`run_after_stop`).
    pub(super) fn stop_domain(&mut self, index: usize, outcome: Outcome<'_>) {
        let here = crate::arch::cpu_index();
        let (crashed, code) = match outcome {
            Outcome::Exit(code) => (false, code),
            Outcome::Crash(_) => (true, 0),
            Outcome::Destroyed => (false, 0),
        };
        let Some(mut next_state) = self.domains[index].state.end(crashed, code) else {
            return;
        };
        trace_event!(if crashed {
            TraceEvent::DomainCrash {
                domain: domain_id(index),
            }
        } else {
            TraceEvent::DomainStop {
                domain: domain_id(index),
                code: u32::try_from(code).unwrap_or(u32::MAX),
            }
        });
        {
            let d = &mut self.domains[index];
            let name = start_info::c_str(&d.name).unwrap_or("?");
            let mut console = d.console;
            console.flush(&mut |line| print_line(name, format_args!("{line}")));
            d.console = console;
        }
        let name = self.domains[index].name();
        let after = match outcome {
            Outcome::Exit(code) => {
                hvprintln!("domain {name} exited: poweroff (code {code})");
                self.tally.exited(code);
                AfterStop::Reclaim
            }
            Outcome::Destroyed => {
                hvprintln!("domain {name} destroyed by the control domain");
                self.tally.destroyed();
                next_state = DomainState::Off;
                AfterStop::Reclaim
            }
            Outcome::Crash(reason) => {
                hvprintln!("domain {name} crashed: {reason}");
                let d = &self.domains[index];
                match restart::on_crash(d.on_crash, d.restarts) {
                    Decision::Destroy => {
                        self.tally.failed();
                        AfterStop::Reclaim
                    }
                    // Counted once the restart has happened (`restart_domain`).
                    Decision::Restart { .. } => AfterStop::Restart,
                    Decision::GiveUp { restarts } => {
                        hvprintln!(
                            "domain {name} not restarted: it crashed again after {restarts} restarts (at most {MAX_RESTARTS})"
                        );
                        self.tally.failed();
                        AfterStop::Reclaim
                    }
                }
            }
        };
        if crashed {
            self.domains[index].crashes += 1;
        }
        self.domains[index].state = next_state;
        self.domains[index].paused = false;
        self.domains[index].after_stop = after;
        self.after_stop_pending += 1;
        self.report_stats(index);
        for i in 0..self.domains[index].vcpu_count {
            let v = &mut self.domains[index].vcpus[i];
            v.state = VcpuState::Off;
            v.timer_deadline = 0;
        }
        for cpu in 0..self.cpu_count {
            self.cpus[cpu].queue.remove_domain(domain_id(index));
            if let Some(cur) = self.cpus[cpu].current {
                if cur.domain as usize == index && cpu != here {
                    crate::arch::gic::kick(cpu);
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
        self.raise_virq_all(Virq::DomainExit, index);
    }

    /// Domain `d` stopped: undo every grant mapping by and of it, release its
    /// device interrupts, close its ports and empty its store namespace.
    fn teardown_sharing(&mut self, d: usize) {
        self.teardown_grants(d);
        for intid in FIRST_SPI..PIRQ_LIMIT {
            if self.events.pirq_bound_by(domain_id(d), intid.into()) {
                self.gic.disable_spi(intid);
            }
        }
        self.teardown_ports(d);
        if !self.store[d].is_empty() {
            self.store[d].clear();
            self.store_changed(d);
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
        total.hypercalls += self.pending_hypercalls(index);
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
    // After the end: restart or reclaim

    /// Restarts or reclaims the domains that ended, once no other CPU than
    /// `cpu` (which is in `dispatch`, so not running a guest) has one of
    /// their vCPUs current: a CPU that still runs (or is about to trap from)
    /// the old instance must leave it first, since a new instance reuses its
    /// register slots and memory, and reclaimed memory goes to others. Such
    /// a CPU was kicked by `stop_domain` and does this itself in its own
    /// `dispatch`. Costs one comparison when nothing is pending.
    #[inline(always)]
    pub(super) fn run_after_stop(&mut self, cpu: usize) {
        if self.after_stop_pending != 0 {
            self.run_after_stop_now(cpu);
        }
    }

    /// The work of `run_after_stop`, out of the trap path's line.
    #[inline(never)]
    fn run_after_stop_now(&mut self, cpu: usize) {
        for index in 0..self.domain_count {
            let after = self.domains[index].after_stop;
            if after == AfterStop::Nothing {
                continue;
            }
            let busy = (0..self.cpu_count).any(|c| {
                c != cpu
                    && self.cpus[c]
                        .current
                        .is_some_and(|v| v.domain as usize == index)
            });
            if busy {
                continue;
            }
            self.domains[index].after_stop = AfterStop::Nothing;
            self.after_stop_pending -= 1;
            match after {
                AfterStop::Restart => self.restart_domain(index),
                AfterStop::Reclaim => self.reclaim_domain(index),
                AfterStop::Nothing => {}
            }
        }
    }

    /// Drops every CPU's record of the domain's vCPUs, frees its stage-2
    /// tables and invalidates its VMID's TLB entries. For the driver domain,
    /// every passed-through virtio device is reset first, so that no DMA of
    /// the old instance lands in memory that is reused.
    fn release_translation(&mut self, index: usize) {
        self.forget_vcpus_of(index);
        if self.domains[index].role == Role::Driver {
            let virtio = self.virtio;
            for dev in &virtio[..self.virtio_count] {
                if crate::arch::virtio_slot_present(dev.base)
                    && !crate::arch::virtio_reset(dev.base)
                {
                    hvprintln!("virtio-mmio@{:#x}: the device did not reset", dev.base);
                }
            }
        }
        let old_vttbr = self.domains[index].vttbr();
        if let Some(s2) = self.domains[index].stage2.take() {
            s2.free(&mut self.tables_of(index));
        }
        crate::arch::tlb::invalidate_vmid(old_vttbr);
    }

    /// Gives back domain `index`'s stage-2 tables, table reservation and RAM.
    fn give_back_memory(&mut self, index: usize) {
        if let Some(s2) = self.domains[index].stage2.take() {
            s2.free(&mut self.tables_of(index));
        }
        let d = &mut self.domains[index];
        if d.tables_used != 0 {
            hvprintln!(
                "domain {}: {} stage-2 tables not freed",
                d.name(),
                d.tables_used
            );
        }
        if core::mem::take(&mut d.tables_reserved) {
            let _ = self.frames.unreserve(TABLE_QUOTA);
        }
        let d = &mut self.domains[index];
        if core::mem::take(&mut d.ram_from_pool) {
            let (pa, frames) = (d.ram_pa, (d.ram_size / PAGE_SIZE) as usize);
            if let Err(e) = self.frames.free_run(pa, frames) {
                hvprintln!("domain RAM at {pa:#x} not freed: {e:?}");
            }
        }
    }

    /// An ended domain that will not run again gives back its memory; its
    /// record stays (name, state and counters) for the final report.
    fn reclaim_domain(&mut self, index: usize) {
        self.release_translation(index);
        self.give_back_memory(index);
    }

    /// Starts crashed domain `index` again in place: same id, same RAM
    /// (zeroed and reloaded from its image), new stage-2 tables (the old
    /// ones go back to its reservation and its VMID's TLB entries are
    /// invalidated). Its sharing state was torn down when it stopped; device
    /// interrupts stay masked until the new instance binds them.
    fn restart_domain(&mut self, index: usize) {
        trace_event!(TraceEvent::DomainRestart {
            domain: domain_id(index),
        });
        let (module, ipa, pa, restarts) = {
            let d = &self.domains[index];
            (d.module, d.ram_ipa, d.ram_pa, d.restarts + 1)
        };
        let cpus = self.domains[index].cpus;
        self.release_translation(index);
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
                self.give_back_memory(index);
            }
        }
    }
}
