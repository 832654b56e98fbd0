//! The driver domain: drives the virtio-mmio devices passed to it with
//! `virtio-drivers`, serves the guests' virtual disks (blkback) and network
//! interfaces (netback and the switch) as the scenario wires them (its
//! command line), answers console commands typed on the serial port (it is
//! the console-input domain unless the scenario names another), serves the
//! host's domain-control requests when it is the control domain (the default:
//! `parapet list/create/destroy/pause/unpause`), and powers off when it is
//! the last domain alive — unless, as the control domain, a domain can still
//! be created (then `shutdown` on its console ends it).
//!
//! With `uplink_sink=PORT` on its command line it does none of that: it is a
//! TCP sink on the uplink (`sink.rs`), for `bench net`.
//!
//! Guests come and go while it runs: a destroyed (or crashed, or exited)
//! guest's vif and vbd are detached when its store keys vanish, and
//! advertised again for its next instance, which connects through the
//! handshake as the first did. A guest that does not run at boot
//! (`autostart = false`) is wired by its slot id, found with `DomctlList`
//! when this is the control domain, or once it starts otherwise
//! (`parapet_backends::domains`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("driver-domain is a bare-metal image: build it with `cargo parapet build`");
}

#[cfg(target_os = "none")]
mod hal;
#[cfg(target_os = "none")]
mod nic;
#[cfg(target_os = "none")]
mod sink;
#[cfg(target_os = "none")]
mod vbd;
#[cfg(target_os = "none")]
mod vif;

#[cfg(target_os = "none")]
mod driver {
    extern crate alloc;

    use alloc::vec::Vec;
    use core::ptr::NonNull;
    use core::sync::atomic::{AtomicBool, Ordering};

    use parapet_backends::blkback::REQUEST_BYTES_MAX;
    use parapet_backends::config::{self, Name, VbdWiring, VifWiring, Wiring};
    use parapet_backends::domains::{self, Lookup};
    use parapet_backends::shell::{Command, LineEditor, HELP};
    use parapet_backends::virtio_mmio::{Header, Probe, Registers};
    use parapet_guest::abi::domctl::DomainInfo;
    use parapet_guest::abi::event::Port;
    use parapet_guest::abi::start_info::{device_kind, MmioDevice};
    use parapet_guest::abi::vpsr::Virq;
    use parapet_guest::abi::{HvError, StartInfo};
    use parapet_guest::wait::{self, WaitError};
    use parapet_guest::{control, hypercall, irq, println, store, time};
    use virtio_drivers::device::blk::VirtIOBlk;
    use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
    use virtio_drivers::transport::{DeviceType, Transport};

    use crate::hal::{leak_pages, DriverHal};
    use crate::nic::Nic;
    use crate::vbd::{BlockDevice, Vbd};
    use crate::vif::{Network, Vif};

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

    /// How often an uplink without a bound interrupt is polled.
    const NIC_POLL: time::Duration = time::Duration::from_millis(2);

    static DOMAIN_EXITED: AtomicBool = AtomicBool::new(false);
    static CONSOLE_INPUT: AtomicBool = AtomicBool::new(false);
    static STORE_CHANGED: AtomicBool = AtomicBool::new(true);
    static RING_WORK: AtomicBool = AtomicBool::new(false);
    static NET_WORK: AtomicBool = AtomicBool::new(false);
    static NIC_IRQ: AtomicBool = AtomicBool::new(false);
    /// Input on the control channel: the host's domain-control requests.
    static CONTROL_INPUT: AtomicBool = AtomicBool::new(false);

    fn on_domain_exit() {
        DOMAIN_EXITED.store(true, Ordering::SeqCst);
    }

    fn on_console_input() {
        CONSOLE_INPUT.store(true, Ordering::SeqCst);
    }

    fn on_control_input() {
        CONTROL_INPUT.store(true, Ordering::SeqCst);
    }

    fn on_store() {
        STORE_CHANGED.store(true, Ordering::SeqCst);
    }

    fn on_ring(_: Port) {
        RING_WORK.store(true, Ordering::SeqCst);
    }

    fn on_vif(_: Port) {
        NET_WORK.store(true, Ordering::SeqCst);
    }

    fn on_nic_irq(_: Port) {
        NIC_IRQ.store(true, Ordering::SeqCst);
    }

    /// A wiring entry whose guest has no domain id yet (it does not run
    /// and this is not the control domain).
    #[derive(Clone, Copy)]
    enum Unwired {
        /// A disk, and the index of the device that holds it.
        Vbd(VbdWiring, usize),
        Vif(VifWiring),
    }

    impl Unwired {
        fn names(&self) -> (&str, &str) {
            match self {
                Unwired::Vbd(c, _) => (c.frontend.as_str(), c.dev.as_str()),
                Unwired::Vif(c) => (c.frontend.as_str(), c.dev.as_str()),
            }
        }
    }

    struct State {
        /// Whether this is the console-input domain (until the hypervisor
        /// says otherwise).
        console_input: bool,
        /// Whether this is the control domain (`DomctlList` is allowed).
        control: bool,
        /// This domain's id.
        me: u32,
        editor: LineEditor,
        disks: Vec<BlockDevice>,
        vbds: Vec<Vbd>,
        net: Network,
        /// Wiring waiting for its guest to start.
        unwired: Vec<Unwired>,
        present: usize,
        slots: usize,
        /// `shutdown` was typed.
        shutdown: bool,
    }

    /// Reads what console input is queued and runs each complete line. When
    /// another domain takes the console input (the hypervisor refuses the
    /// read), it says so once at debug level and never reads again.
    fn serve_console(st: &mut State) {
        if !st.console_input {
            return;
        }
        let mut buf = [0u8; 256];
        loop {
            let n = match hypercall::console_read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(HvError::Perm) => {
                    log::debug!("console: input goes to another domain");
                    st.console_input = false;
                    return;
                }
                Err(e) => {
                    println!("console: read failed: {e}");
                    return;
                }
            };
            let (disks, vbds, net) = (&st.disks, &st.vbds, &st.net);
            let (present, slots) = (st.present, st.slots);
            let shutdown = &mut st.shutdown;
            st.editor
                .feed(&buf[..n], |line| match Command::parse(line) {
                    Command::Help => println!("{HELP}"),
                    Command::Domains => match hypercall::domain_count() {
                        Ok(c) => println!("domains: {} running, {} crashed", c.alive, c.crashed),
                        Err(e) => println!("domains: {e}"),
                    },
                    Command::Devices => {
                        println!("devices: {present} virtio devices among {slots} slots");
                        for d in disks {
                            println!(
                                "  disk {}: {} sectors, {} interrupts",
                                d.serial, d.sectors, d.irqs
                            );
                        }
                        for v in vbds {
                            println!(
                                "  vbd {}/{}: {} requests served, {} refused",
                                v.cfg.frontend, v.cfg.dev, v.served, v.failed
                            );
                        }
                        print_net(net);
                    }
                    Command::Echo(text) => println!("echo: {text}"),
                    Command::Crash => parapet_backends::shell::crash_on_purpose(),
                    Command::Shutdown => *shutdown = true,
                    Command::Unknown(word) => println!("unknown command `{word}` ({HELP})"),
                });
        }
    }

    fn print_net(net: &Network) {
        if let Some(nic) = &net.nic {
            let s = nic.stats;
            println!(
                "  uplink {}: {} frames in, {} out, {} dropped, {} irqs",
                parapet_backends::switch::MacAddr(nic.mac),
                s.rx_frames,
                s.tx_frames,
                s.tx_dropped,
                s.irqs
            );
        }
        for v in &net.vifs {
            let s = v.stats();
            println!(
                "  vif {}/{}: {} frames ({} B) from it, {} ({} B) to it, {} dropped, {} malformed, {} too long for it{}",
                v.cfg.frontend,
                v.cfg.dev,
                s.tx_frames,
                s.tx_bytes,
                s.rx_frames,
                s.rx_bytes,
                s.rx_dropped,
                s.malformed,
                s.rx_too_long,
                if v.connected() { "" } else { ", disconnected" }
            );
        }
        let sw = net.switch.stats();
        println!(
            "  switch: {} unicast, {} flooded, {} dropped, {} left out of the uplink as too long",
            sw.unicast,
            sw.flooded,
            sw.dropped_total(),
            sw.oversize[0]
        );
    }

    /// Every domain slot, as `DomctlList` describes them (the control
    /// domain only).
    fn domain_list() -> Result<Vec<DomainInfo>, HvError> {
        let mut all = Vec::new();
        loop {
            match control::list(all.len() as u32) {
                Ok((info, count)) => {
                    all.push(info);
                    if all.len() >= count as usize {
                        return Ok(all);
                    }
                }
                Err(HvError::NoEnt) => return Ok(all),
                Err(e) => return Err(e),
            }
        }
    }

    /// Gives each waiting wiring entry whose guest can now be named its
    /// backend (which the next handshake pass advertises). `at_boot`: say
    /// which ones wait.
    fn wire_pending(st: &mut State, at_boot: bool) {
        if st.unwired.is_empty() {
            return;
        }
        let list = if st.control {
            match domain_list() {
                Ok(l) => Some(l),
                Err(e) => {
                    println!("driver domain: domain list failed: {e}");
                    None
                }
            }
        } else {
            None
        };
        let mut waiting = Vec::new();
        for entry in core::mem::take(&mut st.unwired) {
            let (frontend, dev) = entry.names();
            match domains::resolve(frontend, store::lookup(frontend), list.as_deref()) {
                Lookup::Found(domid) => match entry {
                    Unwired::Vbd(cfg, device) => st.vbds.push(Vbd::new(cfg, domid, device)),
                    Unwired::Vif(cfg) => {
                        if !st.net.add_vif(Vif::new(cfg, domid)) {
                            println!("vif {frontend}/{dev}: no switch port left");
                        }
                    }
                },
                Lookup::NotYet => {
                    if at_boot {
                        println!(
                            "{dev} of {frontend}: {frontend} does not run: wired once it starts"
                        );
                    }
                    waiting.push(entry);
                }
                Lookup::NoSuchDomain => println!("{dev} of {frontend}: no such domain"),
            }
        }
        st.unwired = waiting;
    }

    /// Answers the host's domain-control requests (the control domain).
    fn serve_control(st: &mut State) {
        if !st.control {
            return;
        }
        if let Err(e) = control::serve() {
            println!("driver domain: control channel: {e}");
        }
    }

    /// Prints the backends' counters (at the end of the run).
    fn print_totals(st: &State) {
        for v in &st.vbds {
            println!(
                "blkback: {}/{}: {} requests served, {} refused",
                v.cfg.frontend, v.cfg.dev, v.served, v.failed
            );
        }
        print_net(&st.net);
    }

    /// Starts the virtio-blk driver on `dev` and reads its serial.
    fn start_block(dev: &MmioDevice) -> Option<BlockDevice> {
        let header = NonNull::new(dev.base as *mut VirtIOHeader)?;
        // SAFETY: the hypervisor mapped this virtio-mmio window (header and
        // config space, `size` bytes) 1:1 into the driver domain only, and it
        // stays mapped for the domain's life; this transport is its only user.
        let transport = match unsafe { MmioTransport::new(header, dev.size as usize) } {
            Ok(t) => t,
            Err(e) => {
                println!("virtio-mmio@{:#010x}: {e:?}", dev.base);
                return None;
            }
        };
        if transport.device_type() != DeviceType::Block {
            return None;
        }
        let mut blk = match VirtIOBlk::<DriverHal, _>::new(transport) {
            Ok(b) => b,
            Err(e) => {
                println!("virtio-blk@{:#010x}: {e:?}", dev.base);
                return None;
            }
        };
        let mut id = [0u8; 20];
        let serial = match blk.device_id(&mut id) {
            Ok(n) => core::str::from_utf8(&id[..n]).ok().and_then(Name::new),
            Err(_) => None,
        }
        .or_else(|| Name::new("unnamed"))?;
        let sectors = blk.capacity();
        println!(
            "virtio-blk@{:#010x}: serial {serial}, {} sectors ({} MiB){}",
            dev.base,
            sectors,
            sectors / 2048,
            if blk.readonly() { ", read-only" } else { "" }
        );
        let mut disk = BlockDevice::new(serial, blk);
        if let Err(e) = disk.bind_irq(dev.intid) {
            println!(
                "virtio-blk: interrupt {} not bound ({e}): polling",
                dev.intid
            );
        }
        Some(disk)
    }

    /// The disks the wiring names on a device that holds them; their guests
    /// are looked up by `wire_pending`.
    fn wire_disks(wiring: &Wiring, disks: &[BlockDevice]) -> Vec<Unwired> {
        let mut vbds = Vec::new();
        for cfg in wiring.vbds.iter() {
            let Some(device) = disks.iter().position(|d| d.serial == cfg.serial) else {
                println!(
                    "vbd {}/{}: no disk with serial {}",
                    cfg.frontend, cfg.dev, cfg.serial
                );
                continue;
            };
            if cfg.start + cfg.sectors > disks[device].sectors {
                println!(
                    "vbd {}/{}: sectors {}..{} lie outside {} ({} sectors)",
                    cfg.frontend,
                    cfg.dev,
                    cfg.start,
                    cfg.start + cfg.sectors,
                    cfg.serial,
                    disks[device].sectors
                );
                continue;
            }
            vbds.push(Unwired::Vbd(*cfg, device));
        }
        vbds
    }

    fn main(info: &StartInfo) -> i32 {
        irq::set_handler(Virq::DomainExit, on_domain_exit);
        irq::set_handler(Virq::Console, on_console_input);
        irq::set_handler(Virq::Store, on_store);
        irq::set_handler(Virq::Control, on_control_input);
        let devices = info.devices();
        println!("driver domain up: {} devices", devices.len());
        let wiring = config::parse(info.cmdline(), |word, why| {
            println!("ignoring wiring `{word}`: {why}")
        });
        let (mut present, mut empty) = (0, 0);
        let mut disks = Vec::new();
        let mut nic = None;
        for dev in devices
            .iter()
            .filter(|d| d.kind == device_kind::VIRTIO_MMIO)
        {
            match Header::read(&Mmio(dev)).probe() {
                Probe::Device(h) => {
                    present += 1;
                    println!("virtio-mmio@{:#010x}: {h}, irq {}", dev.base, dev.intid);
                    if h.device_name() == "block" {
                        disks.extend(start_block(dev));
                    } else if h.device_name() == "net" && nic.is_none() {
                        nic = Nic::start(dev, on_nic_irq);
                    }
                }
                Probe::Empty => empty += 1,
                Probe::Invalid(h) => println!(
                    "virtio-mmio@{:#010x}: not a virtio device (magic {:#010x}, version {})",
                    dev.base, h.magic, h.version
                ),
            }
        }
        println!("driver domain: {present} virtio devices, {empty} empty slots");
        // `bench net`'s measure of QEMU's own host-to-guest limit: nothing but
        // a TCP sink on the uplink.
        if let Some(port) = crate::sink::requested(info.cmdline()) {
            let Some(nic) = nic else {
                println!("uplink sink: no virtio-net device");
                return 1;
            };
            return crate::sink::run(nic, info.cmdline(), port, &NIC_IRQ);
        }
        let mut unwired = wire_disks(&wiring, &disks);
        unwired.extend(wiring.vifs.iter().map(|c| Unwired::Vif(*c)));
        // Only the control domain may list the domains.
        let control = match control::list(0) {
            Ok(_) => true,
            Err(HvError::Perm) => false,
            Err(e) => {
                println!("driver domain: domain list failed: {e}");
                false
            }
        };
        let bounce: &'static mut [u8; REQUEST_BYTES_MAX] = leak_pages(REQUEST_BYTES_MAX / 4096)
            .try_into()
            .expect("bounce buffer size");
        let mut st = State {
            console_input: true,
            control,
            me: info.domain_id,
            editor: LineEditor::new(),
            disks,
            vbds: Vec::new(),
            net: Network::new(nic, Vec::new()),
            unwired,
            present,
            slots: devices.len(),
            shutdown: false,
        };
        wire_pending(&mut st, true);
        // Whether "no guest runs, staying up" was said (once per run).
        let mut said_staying = false;

        // Input typed (or requests sent) before the handlers were set is
        // queued in the hypervisor.
        serve_console(&mut st);
        serve_control(&mut st);
        loop {
            if st.shutdown {
                print_totals(&st);
                println!("driver domain: shutting down (shutdown typed on the console)");
                return 0;
            }
            // Sleeps until there is work; an uplink whose interrupt could not
            // be bound is polled every NIC_POLL (a deadline of the SDK's timer
            // queue).
            let poll_nic = st.net.nic.as_ref().is_some_and(|n| !n.has_irq());
            let deadline = poll_nic.then(|| time::deadline_after(NIC_POLL));
            let work = || {
                DOMAIN_EXITED.load(Ordering::SeqCst)
                    || CONSOLE_INPUT.load(Ordering::SeqCst)
                    || STORE_CHANGED.load(Ordering::SeqCst)
                    || RING_WORK.load(Ordering::SeqCst)
                    || NET_WORK.load(Ordering::SeqCst)
                    || NIC_IRQ.load(Ordering::SeqCst)
                    || CONTROL_INPUT.load(Ordering::SeqCst)
            };
            let idle = !work();
            match wait::wait_until(deadline, || work().then_some(())) {
                Ok(()) | Err(WaitError::TimedOut) => {}
                Err(WaitError::Hv(e)) => {
                    println!("driver domain: block failed: {e}");
                    return 1;
                }
            }
            if poll_nic && idle {
                NET_WORK.store(true, Ordering::SeqCst);
            }
            if CONSOLE_INPUT.swap(false, Ordering::SeqCst) {
                serve_console(&mut st);
            }
            if STORE_CHANGED.swap(false, Ordering::SeqCst) {
                // A guest that did not run may have started.
                wire_pending(&mut st, false);
                for v in st.vbds.iter_mut() {
                    v.handshake(on_ring);
                }
                st.net.handshake(on_vif);
                RING_WORK.store(true, Ordering::SeqCst);
                NET_WORK.store(true, Ordering::SeqCst);
            }
            if NIC_IRQ.swap(false, Ordering::SeqCst) {
                if let Some(nic) = st.net.nic.as_mut() {
                    nic.ack_irq();
                }
                NET_WORK.store(true, Ordering::SeqCst);
            }
            if NET_WORK.swap(false, Ordering::SeqCst) && st.net.serve() {
                NET_WORK.store(true, Ordering::SeqCst);
            }
            if RING_WORK.swap(false, Ordering::SeqCst) {
                for v in st.vbds.iter_mut() {
                    let disk = &mut st.disks[v.device];
                    v.serve(disk, bounce);
                    if v.has_work() {
                        RING_WORK.store(true, Ordering::SeqCst);
                    }
                }
            }
            // After the store changes a destroy made (the backends detached
            // above): a `list` that follows sees what it gave back.
            if CONTROL_INPUT.swap(false, Ordering::SeqCst) {
                serve_control(&mut st);
            }
            if DOMAIN_EXITED.swap(false, Ordering::SeqCst) {
                match hypercall::domain_count() {
                    Ok(count) if count.alive <= 1 => {
                        let stay = st.control
                            && domain_list().is_ok_and(|l| domains::may_create_later(st.me, &l));
                        if !stay {
                            print_totals(&st);
                            println!("driver domain: all guests gone, shutting down");
                            return 0;
                        }
                        if !said_staying {
                            println!(
                                "driver domain: no guest runs; staying up for domain control (`shutdown` on the console ends it)"
                            );
                            said_staying = true;
                        }
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
