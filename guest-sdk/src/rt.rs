//! The bare-metal runtime glue called from the boot code and the vectors: start-up,
//! the upcall, fatal exceptions, the panic handler, the global allocator and the
//! `critical-section` implementation. No `asm!` here: that is in `arch`.

use core::panic::PanicInfo;
use core::sync::atomic::Ordering;

use parapet_abi::hypercall::ShutdownReason;
use parapet_abi::layout::{reserved_top_base, PAGE_SIZE, UPCALL_INTID};
use parapet_abi::start_info::START_INFO_MAGIC;
use parapet_abi::{StartInfo, ABI_VERSION};

use crate::critical::{self, OwnerLock};
use crate::exception::{Report, TrapFrame};
use crate::heap::Heap;
use crate::{arch, console, hypercall, irq};

#[global_allocator]
static HEAP: Heap = Heap::new();

extern "Rust" {
    /// The guest's main, named with `entry!`.
    fn __parapet_main(info: &StartInfo) -> i32;
}

fn crash() -> ! {
    hypercall::shutdown(ShutdownReason::Crash, 1)
}

/// Rust entry of vCPU 0, called by `_start` with the MMU on and BSS zeroed.
pub(crate) extern "C" fn sdk_start(info: usize, _vpsr: usize, _vcpu: usize) -> ! {
    // SAFETY: the hypervisor passes the start-info page in x0; it stays mapped and
    // unchanged for the domain's lifetime.
    let info: &'static StartInfo = unsafe { &*(info as *const StartInfo) };
    if info.magic != START_INFO_MAGIC {
        console::_print_unlocked(format_args!(
            "sdk: bad start-info magic {:#x}\n",
            info.magic
        ));
        crash();
    }
    crate::set_start_info(info);
    if info.abi_version >= 0x1_0001 && info.event_page != 0 && info.grant_table != 0 {
        // SAFETY: ABI 1.1 hypervisors put the event page and the grant table
        // in reserved pages of our RAM (identity-mapped by `_start`); they stay
        // for the domain's lifetime and are made of atomics the hypervisor
        // shares with us.
        let (page, table) = unsafe {
            (
                &*(info.event_page as *const parapet_abi::event::EventPage),
                core::slice::from_raw_parts(
                    info.grant_table as *const parapet_abi::grant::GrantEntry,
                    (info.grant_entries as usize).min(parapet_abi::grant::GRANT_ENTRIES as usize),
                ),
            )
        };
        crate::event::PORTS.set_page(page);
        crate::grant::set_table(table);
    }

    let heap_start =
        (arch::image_end().max(info.image_end as usize)).next_multiple_of(PAGE_SIZE as usize);
    let heap_end = reserved_top_base(info.ram_base, info.ram_size) as usize;
    // SAFETY: RAM between the end of the image (and BSS) and the reserved pages is
    // this domain's and used by nothing else.
    unsafe { HEAP.init(heap_start, heap_end) };

    // Page tables with 4 KiB pages over our RAM, so that guard pages under
    // the stacks turn an overflow into a reported fault.
    let ram = info.ram_base..info.ram_base + info.ram_size;
    let paging = crate::memory::init_paging(arch::boot_translation_entries(), ram);

    console::init_logger(console::level_from_cmdline(info.cmdline()));
    if let Err(e) = paging {
        log::warn!(
            "no guard pages: RAM {:#x}+{:#x}: {e}",
            info.ram_base,
            info.ram_size
        );
    }
    // The timer queue serves `time::sleep`, the frontends' timeouts and an
    // OS's tick on the one per-vCPU timer.
    irq::set_handler(parapet_abi::vpsr::Virq::Timer, crate::timer::on_timer_irq);
    arch::unmask_irq_exceptions();

    if let Err(e) = hypercall::version_check(ABI_VERSION) {
        let offered = hypercall::version()
            .map(|(v, _)| v)
            .unwrap_or(parapet_abi::AbiVersion::from_raw(info.abi_version as u64));
        crate::println!(
            "sdk: this guest was built for ABI {ABI_VERSION}, the hypervisor offers {offered}: {e}"
        );
        crash();
    }
    log::debug!("heap {heap_start:#x}..{heap_end:#x}");

    // SAFETY: `entry!` defines it with this signature.
    let code = unsafe { __parapet_main(info) };
    hypercall::shutdown(ShutdownReason::Poweroff, code)
}

/// Rust entry of a secondary vCPU, called by `__parapet_secondary`.
pub(crate) extern "C" fn sdk_secondary_start(arg: usize, _vpsr: usize, vcpu: usize) -> ! {
    // SAFETY: `smp::start_vcpu` passes a `SecondaryMain` as the argument.
    let main: crate::smp::SecondaryMain =
        unsafe { core::mem::transmute::<usize, crate::smp::SecondaryMain>(arg) };
    crate::memory::install_on_this_vcpu();
    arch::unmask_irq_exceptions();
    main(vcpu)
}

/// The IRQ handler's Rust part: acknowledge, end, then dispatch unless masked.
pub(crate) extern "C" fn upcall() {
    let intid = arch::irq_ack();
    if intid >= 1020 {
        return; // spurious
    }
    arch::irq_eoi(intid);
    if intid != UPCALL_INTID {
        return;
    }
    // The vector gives the interrupted code its FP state and its virtual FP
    // bit back, whatever the handlers did (see `arch`).
    irq::handle_upcall();
}

/// Any exception other than the upcall and the lazy-FP trap: report and crash.
pub(crate) extern "C" fn fatal_exception(frame: &TrapFrame, vector: u64) -> ! {
    crate::vpsr().irq_mask.store(1, Ordering::SeqCst);
    let ec = (frame.esr >> 26) & 0x3f;
    let abort = matches!(ec, 0x24 | 0x25);
    if let Some((name, len)) = abort
        .then(|| crate::memory::guarded_stack(frame.far))
        .flatten()
    {
        let name = core::str::from_utf8(&name[..len]).unwrap_or("?");
        console::_print_unlocked(format_args!(
            "stack overflow: {name} ran into its guard page at {:#x} (SP {:#x}, PC {:#x})\n",
            frame.far & !(PAGE_SIZE - 1),
            frame.sp,
            frame.elr
        ));
    }
    console::_print_unlocked(format_args!("{}\n", Report::new(frame, vector)));
    crash()
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    crate::vpsr().irq_mask.store(1, Ordering::SeqCst);
    console::_print_unlocked(format_args!("panic: {info}\n"));
    crash()
}

/// Critical sections: the VPSR soft mask plus a lock shared by the vCPUs.
struct SdkCriticalSection;
critical_section::set_impl!(SdkCriticalSection);

static CS_LOCK: OwnerLock = OwnerLock::new();

// SAFETY: acquire masks this vCPU's virtual interrupts and takes a lock that
// excludes the other vCPUs (re-entrant for nesting); release undoes both in order.
unsafe impl critical_section::Impl for SdkCriticalSection {
    unsafe fn acquire() -> critical_section::RawRestoreState {
        let state = irq::disable();
        // The VPSR address identifies the vCPU.
        let me = crate::vpsr() as *const _ as usize;
        let acquired = CS_LOCK.acquire(me);
        critical::encode(state.was_masked(), acquired)
    }

    unsafe fn release(state: critical_section::RawRestoreState) {
        let (was_masked, acquired) = critical::decode(state);
        if acquired {
            CS_LOCK.release();
        }
        irq::restore(irq::MaskState::from_masked(was_masked));
    }
}
