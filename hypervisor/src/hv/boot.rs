//! Bringing the machine up: the primary CPU reads the platform, sets up EL2,
//! the GIC and the frame pool, creates the boot-time domains and starts the
//! secondary CPUs; every CPU then enters the scheduler loop.

use core::fmt::Write;

use parapet_abi::layout::{self, MAX_DOMAINS, PAGE_SIZE};
use parapet_abi::ABI_VERSION;

use super::trap::{dispatch, PERCPU};
use super::{hvprintln, CONSOLE, DEFAULT_UART, HV};
use crate::arch::boot::MAX_CPUS;
use crate::arch::gic::Gic;
use crate::arch::sysregs;
use crate::arch::{mmu, phys, psci, trap, uart::Pl011};
use crate::bootargs;
use crate::esr;
use crate::platform::Platform;

/// Entry from `arch::boot` on every CPU.
pub fn cpu_main(cpu: usize) -> ! {
    if cpu == 0 {
        primary_boot();
    } else {
        mmu::enable();
        sysregs::init_el2_controls();
        trap::install(&PERCPU[cpu], super::trace::on());
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
    trap::install(&PERCPU[0], false);
    let gic = Gic {
        gicd: crate::convert::usize_from(platform.gicd),
        gicr: crate::convert::usize_from(platform.gicr),
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
    let mut hv = HV.lock();
    hv.gic = gic;
    hv.mpidr[0] = sysregs::read_mpidr();
    hv.uart_intid = platform.uart_intid;
    hv.cpu_count = cpus;
    hv.freq = freq;
    hv.timeslice = freq * options.timeslice_ms / 1000;
    hv.virtio = platform.virtio;
    hv.virtio_count = platform.virtio_count;
    let ram_end = platform.ram_base + platform.ram_size;
    let pool = ram_end.saturating_sub(layout::GUEST_POOL_BASE) / PAGE_SIZE;
    let frames = hv.frames.init(layout::GUEST_POOL_BASE, pool as usize);
    // Taken before the pool's starting level is noted: the buffers stay for
    // the whole run, and every frame a domain took still comes back.
    if options.trace_kib > 0 && super::trace::setup(&mut hv.frames, cpus, options.trace_kib, freq) {
        trap::install(&PERCPU[0], true);
    }
    hv.frames_at_start = hv.frames.free();
    hvprintln!(
        "memory: {frames} frames of 4 KiB for guest RAM and stage-2 tables from {:#x}; at most {MAX_DOMAINS} domains, {} KiB of hypervisor state each",
        layout::GUEST_POOL_BASE,
        super::per_domain_bytes().div_ceil(1024)
    );
    if platform.modules_dropped > 0 {
        // Never silently: each one counts as a domain that failed.
        hvprintln!(
            "refusing {} domain image(s): at most {MAX_DOMAINS} domains",
            platform.modules_dropped,
        );
        for _ in 0..platform.modules_dropped {
            hv.tally.failed();
        }
    }
    for module in platform.modules() {
        let started = hv.define_domain(module).and_then(|index| {
            if hv.domains[index].autostart {
                hv.start_domain(index)
            } else {
                hvprintln!(
                    "domain {} loaded as id {index}, not started (autostart = false)",
                    hv.domains[index].name()
                );
                Ok(())
            }
        });
        if let Err(e) = started {
            hvprintln!(
                "domain image at {:#x} not started: {e} (bootargs `{}`)",
                module.addr,
                module.bootargs
            );
            hv.tally.failed();
        }
    }
    hv.choose_control_domain();
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

/// Stops the machine after a hypervisor error.
pub(super) fn fatal(args: core::fmt::Arguments<'_>) -> ! {
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
