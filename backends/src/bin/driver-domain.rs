//! The driver domain: probes the virtio-mmio devices passed to it, answers
//! console commands typed on the serial port (it is the console-input domain
//! unless the scenario names another), then waits for the other domains to
//! stop and powers off when it is the last one alive.
//! (Real virtio drivers and the backends come later.)
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("driver-domain is a bare-metal image: build it with `cargo parapet build`");
}

#[cfg(target_os = "none")]
mod driver {
    use core::sync::atomic::{AtomicBool, Ordering};

    use parapet_backends::shell::{Command, LineEditor, HELP};
    use parapet_backends::virtio_mmio::{Header, Probe, Registers};
    use parapet_guest::abi::start_info::{device_kind, MmioDevice};
    use parapet_guest::abi::vpsr::Virq;
    use parapet_guest::abi::StartInfo;
    use parapet_guest::{hypercall, irq, println};

    parapet_guest::entry!(main);

    /// A device's register window, read with volatile loads (mapped 1:1, Device
    /// memory in the SDK's identity map).
    struct Mmio<'a>(&'a MmioDevice);

    impl Registers for Mmio<'_> {
        fn read32(&self, offset: usize) -> u32 {
            if offset + 4 > self.0.size as usize {
                return 0;
            }
            let addr = self.0.base as usize + offset;
            // SAFETY: the hypervisor passed this window to the driver domain and
            // maps it 1:1; the offset is inside it and 4-byte aligned (the callers
            // use the virtio-mmio register offsets).
            unsafe { (addr as *const u32).read_volatile() }
        }
    }

    static DOMAIN_EXITED: AtomicBool = AtomicBool::new(false);

    fn on_domain_exit() {
        DOMAIN_EXITED.store(true, Ordering::SeqCst);
    }

    static CONSOLE_INPUT: AtomicBool = AtomicBool::new(false);

    fn on_console_input() {
        CONSOLE_INPUT.store(true, Ordering::SeqCst);
    }

    /// Reads what console input is queued and runs each complete line.
    fn serve_console(editor: &mut LineEditor, info: &StartInfo, present: usize) {
        let mut buf = [0u8; 256];
        loop {
            let n = match hypercall::console_read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    println!("console: read failed: {e}");
                    return;
                }
            };
            editor.feed(&buf[..n], |line| match Command::parse(line) {
                Command::Help => println!("{HELP}"),
                Command::Domains => match hypercall::domain_count() {
                    Ok(c) => println!("domains: {} running, {} crashed", c.alive, c.crashed),
                    Err(e) => println!("domains: {e}"),
                },
                Command::Devices => println!(
                    "devices: {present} virtio devices among {} slots",
                    info.devices().len()
                ),
                Command::Echo(text) => println!("echo: {text}"),
                Command::Unknown(word) => println!("unknown command `{word}` ({HELP})"),
            });
        }
    }

    fn main(info: &StartInfo) -> i32 {
        irq::set_handler(Virq::DomainExit, on_domain_exit);
        irq::set_handler(Virq::Console, on_console_input);
        let mut editor = LineEditor::new();
        let devices = info.devices();
        println!("driver domain up: {} devices", devices.len());
        let (mut present, mut empty) = (0, 0);
        for dev in devices
            .iter()
            .filter(|d| d.kind == device_kind::VIRTIO_MMIO)
        {
            match Header::read(&Mmio(dev)).probe() {
                Probe::Device(h) => {
                    present += 1;
                    println!("virtio-mmio@{:#010x}: {h}, irq {}", dev.base, dev.intid);
                }
                Probe::Empty => empty += 1,
                Probe::Invalid(h) => println!(
                    "virtio-mmio@{:#010x}: not a virtio device (magic {:#010x}, version {})",
                    dev.base, h.magic, h.version
                ),
            }
        }
        println!("driver domain: {present} virtio devices, {empty} empty slots");

        // Input typed before the handler was set is queued in the hypervisor.
        serve_console(&mut editor, info, present);
        loop {
            let state = irq::disable();
            if !DOMAIN_EXITED.load(Ordering::SeqCst) && !CONSOLE_INPUT.load(Ordering::SeqCst) {
                if let Err(e) = hypercall::block() {
                    irq::restore(state);
                    println!("driver domain: block failed: {e}");
                    return 1;
                }
            }
            irq::restore(state);
            if CONSOLE_INPUT.swap(false, Ordering::SeqCst) {
                serve_console(&mut editor, info, present);
            }
            if DOMAIN_EXITED.swap(false, Ordering::SeqCst) {
                match hypercall::domain_count() {
                    Ok(count) if count.alive <= 1 => {
                        println!("driver domain: all guests gone, shutting down");
                        return 0;
                    }
                    Ok(count) => {
                        log::debug!("{} domains alive, {} crashed", count.alive, count.crashed)
                    }
                    Err(e) => {
                        println!("driver domain: domain_count failed: {e}");
                        return 1;
                    }
                }
            }
        }
    }
}
