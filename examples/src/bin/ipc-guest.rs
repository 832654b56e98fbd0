//! The IPC checker: two instances (`role=server` and `role=client`, each with
//! `peer=NAME`) set up an event channel and grants through the store, then
//! make every mistake a hostile or buggy guest could make — send on a foreign
//! port, bind a port meant for someone else, map a grant they were not given,
//! write through a read-only grant, copy out of range, revoke a grant while it
//! is mapped — and check that each gets its typed error while both keep
//! running. Prints `check NAME: ok` per check and `ipc: N checks, M failed`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("ipc-guest is a bare-metal image: build it with `cargo parapet build`");
}

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicU32, Ordering};

    use parapet_guest::abi::event::PortStatus;
    use parapet_guest::abi::grant::{
        CopySide, GrantCopy, COPY_GREF, DOMID_SELF, GRANT_WINDOW_BASE,
    };
    use parapet_guest::abi::{HvError, StartInfo};
    use parapet_guest::grant::{self, SharedBytes, SharedPages};
    use parapet_guest::{cmdline, event, println, store};

    parapet_guest::entry!(main);

    static EVENTS: AtomicU32 = AtomicU32::new(0);
    static TIMER_PORT_FIRED: AtomicU32 = AtomicU32::new(0);
    static IPI_FIRED: AtomicU32 = AtomicU32::new(0);
    const EVENT_COUNT: u32 = 50;

    struct Checks {
        total: u32,
        failed: u32,
    }

    impl Checks {
        fn expect<T: core::fmt::Debug>(
            &mut self,
            name: &str,
            got: Result<T, HvError>,
            want: Result<(), HvError>,
        ) {
            self.total += 1;
            let ok = match (&got, want) {
                (Ok(_), Ok(())) => true,
                (Err(e), Err(w)) => *e == w,
                _ => false,
            };
            match got {
                Err(e) if ok => println!("check {name}: ok ({e})"),
                _ if ok => println!("check {name}: ok"),
                Ok(v) => {
                    self.failed += 1;
                    println!("check {name}: FAILED: got Ok({v:?}), want {want:?}");
                }
                Err(e) => {
                    self.failed += 1;
                    println!("check {name}: FAILED: got {e}, want {want:?}");
                }
            }
        }

        fn truth(&mut self, name: &str, ok: bool) {
            self.expect(name, if ok { Ok(()) } else { Err(HvError::Inval) }, Ok(()));
        }
    }

    fn on_event(_: u32) {
        EVENTS.fetch_add(1, Ordering::SeqCst);
    }

    fn on_timer_port(_: u32) {
        TIMER_PORT_FIRED.fetch_add(1, Ordering::SeqCst);
    }

    fn on_ipi(_: u32) {
        IPI_FIRED.fetch_add(1, Ordering::SeqCst);
    }

    /// Ports bound to a virtual IRQ and to a vCPU (IPI).
    fn local_ports(c: &mut Checks) {
        use parapet_guest::abi::vpsr::Virq;
        use parapet_guest::time::{self, Duration};
        let timer = event::bind_virq(Virq::Timer, 0);
        c.expect("bind the timer VIRQ to a port", timer, Ok(()));
        let Ok(timer) = timer else { return };
        c.expect(
            "bind it twice",
            event::bind_virq(Virq::Timer, 0),
            Err(HvError::Busy),
        );
        c.expect(
            "bind a VIRQ for a vCPU we do not have",
            event::bind_virq(Virq::Timer, 5),
            Err(HvError::NoEnt),
        );
        c.expect(
            "send on a VIRQ port",
            event::send(timer),
            Err(HvError::NoEnt),
        );
        event::set_handler(timer, on_timer_port).unwrap();
        let _ = time::set_timer_after(Duration::from_millis(2));
        let _ = event::wait_until(|| TIMER_PORT_FIRED.load(Ordering::SeqCst) > 0);
        c.truth(
            "the timer arrived on its port",
            TIMER_PORT_FIRED.load(Ordering::SeqCst) == 1,
        );
        c.truth(
            "status of the VIRQ port",
            event::status(timer)
                == Ok(PortStatus::Virq {
                    virq: Virq::Timer as u32,
                    vcpu: 0,
                }),
        );
        c.expect("close the VIRQ port", event::close(timer), Ok(()));
        let ipi = event::bind_ipi(0);
        c.expect("bind an IPI port", ipi, Ok(()));
        c.expect(
            "bind an IPI to a vCPU we do not have",
            event::bind_ipi(5),
            Err(HvError::NoEnt),
        );
        if let Ok(ipi) = ipi {
            event::set_handler(ipi, on_ipi).unwrap();
            c.expect("send to ourselves", event::send(ipi), Ok(()));
            let _ = event::wait_until(|| IPI_FIRED.load(Ordering::SeqCst) > 0);
            c.truth("the IPI arrived", IPI_FIRED.load(Ordering::SeqCst) == 1);
            // Masked: the event stays pending until unmasked.
            event::mask(ipi).unwrap();
            c.expect("send while masked", event::send(ipi), Ok(()));
            c.truth(
                "held while masked",
                IPI_FIRED.load(Ordering::SeqCst) == 1 && event::is_pending(ipi),
            );
            c.expect("unmask", event::unmask(ipi), Ok(()));
            let _ = event::wait_until(|| IPI_FIRED.load(Ordering::SeqCst) > 1);
            c.truth("delivered on unmask", IPI_FIRED.load(Ordering::SeqCst) == 2);
            c.expect("close the IPI port", event::close(ipi), Ok(()));
        }
    }

    /// Calls reserved to the console-input domain and to a device's owner.
    /// (The client is domain 1; console input goes to domain 0 here.)
    fn device_calls(c: &mut Checks) {
        c.expect(
            "read the console (not the console-input domain)",
            parapet_guest::hypercall::console_read(&mut [0u8; 16]).map(|_| ()),
            Err(HvError::Perm),
        );
        c.expect(
            "bind a device interrupt we do not own",
            event::bind_pirq(48).map(|_| ()),
            Err(HvError::Access),
        );
        c.expect(
            "bind the timer PPI as a device interrupt",
            event::bind_pirq(27).map(|_| ()),
            Err(HvError::Inval),
        );
        c.expect(
            "end a device interrupt we did not bind",
            event::irq_eoi(48),
            Err(HvError::Access),
        );
    }

    fn main(info: &StartInfo) -> i32 {
        let cmd = info.cmdline();
        let Some(peer_name) = cmdline::get(cmd, "peer") else {
            println!("usage: role=server|client peer=NAME");
            return 2;
        };
        let peer = match store::lookup(peer_name) {
            Ok(p) => p,
            Err(e) => {
                println!("peer {peer_name}: {e}");
                return 2;
            }
        };
        let mut c = Checks {
            total: 0,
            failed: 0,
        };
        match cmdline::get(cmd, "role") {
            Some("server") => server(&mut c, peer),
            Some("client") => client(&mut c, peer),
            _ => {
                println!("usage: role=server|client peer=NAME");
                return 2;
            }
        }
        println!("ipc: {} checks, {} failed", c.total, c.failed);
        (c.failed != 0) as i32
    }

    fn server(c: &mut Checks, peer: u32) {
        let port = event::alloc_unbound(peer).expect("alloc_unbound");
        event::set_handler(port, on_event).expect("handler");
        let mut rw = SharedPages::new(1).expect("page");
        rw.write_at(0, b"hello from the server").unwrap();
        let rw_ref = rw.grant_all(peer, false).expect("grant rw")[0];
        let mut ro = SharedPages::new(1).expect("page");
        ro.write_at(0, b"read-only data").unwrap();
        let ro_ref = ro.grant_all(peer, true).expect("grant ro")[0];
        c.expect("send on port 0", event::send(0), Err(HvError::Inval));
        c.expect("send on a free port", event::send(200), Err(HvError::NoEnt));
        c.expect(
            "send before the peer bound",
            event::send(port),
            Err(HvError::NoEnt),
        );
        c.expect(
            "alloc for a domain that does not exist",
            event::alloc_unbound(7),
            Err(HvError::NoDomain),
        );
        store::write_u64("port", port.into()).unwrap();
        store::write_u64("rw", rw_ref).unwrap();
        store::write_u64("ro", ro_ref).unwrap();

        // The client maps the read-write page, then tells us.
        let _ = store::wait_for_u64(peer, "mapped");
        c.truth(
            "status after bind",
            matches!(event::status(port), Ok(PortStatus::Interdomain { remote, .. }) if remote == peer),
        );
        c.expect("revoke while mapped", rw.end_all(), Err(HvError::Busy));
        c.expect(
            "revoke read-only while mapped",
            ro.end_all(),
            Err(HvError::Busy),
        );
        store::write_u64("revoke-tried", 1).unwrap();
        let _ = store::wait_for_u64(peer, "unmapped");
        let mut reply = [0u8; 15];
        rw.read_at(0, &mut reply).unwrap();
        c.truth("the client's write arrived", &reply == b"client was here");
        c.expect("revoke after unmap", rw.end_all(), Ok(()));
        c.expect("revoke read-only after unmap", ro.end_all(), Ok(()));

        // Events: the client sends EVENT_COUNT, then says so.
        let _ = store::wait_for_u64(peer, "sent");
        let _ = event::wait_until(|| EVENTS.load(Ordering::SeqCst) > 0);
        c.truth("events arrived", EVENTS.load(Ordering::SeqCst) > 0);
        println!(
            "server: {} event upcalls for {EVENT_COUNT} sends (sends coalesce while pending)",
            EVENTS.load(Ordering::SeqCst)
        );
        c.expect("send to the peer", event::send(port), Ok(()));
        store::write_u64("server-done", 1).unwrap();
        // Wait for the client to finish before our ports and grants go away.
        let _ = store::wait_for_u64(peer, "client-done");
    }

    fn client(c: &mut Checks, peer: u32) {
        let remote_port = store::wait_for_u64(peer, "port").expect("port") as u32;
        let rw_ref = store::wait_for_u64(peer, "rw").expect("rw") as u32;
        let ro_ref = store::wait_for_u64(peer, "ro").expect("ro") as u32;
        let me = parapet_guest::start_info()
            .map(|i| i.domain_id)
            .unwrap_or(0);

        c.expect(
            "send on the server's port number (foreign)",
            event::send(remote_port),
            Err(HvError::NoEnt),
        );
        c.expect(
            "bind a port that is not unbound",
            event::bind_interdomain(peer, 250),
            Err(HvError::NoEnt),
        );
        c.expect(
            "bind to a domain that does not exist",
            event::bind_interdomain(7, 1),
            Err(HvError::NoDomain),
        );
        let port = event::bind_interdomain(peer, remote_port);
        c.expect("bind the port meant for us", port, Ok(()));
        let port = port.unwrap_or(0);
        c.expect(
            "bind it twice",
            event::bind_interdomain(peer, remote_port),
            Err(HvError::NoEnt),
        );
        // Ports we allocate for ourselves cannot be bound by the server: the
        // server tries nothing, but we check our own port's status.
        c.truth("status", matches!(event::status(port), Ok(PortStatus::Interdomain { remote, remote_port: rp }) if remote == peer && rp == remote_port));

        // Grants.
        c.expect(
            "map a grant we were not given",
            grant::map(peer, &[100], false).map(|_| ()),
            Err(HvError::NoEnt),
        );
        c.expect(
            "map a reference out of range",
            grant::map(peer, &[100_000], false).map(|_| ()),
            Err(HvError::Inval),
        );
        c.expect(
            "map from a domain that does not exist",
            grant::map(7, &[rw_ref], false).map(|_| ()),
            Err(HvError::NoDomain),
        );
        c.expect(
            "map a read-only grant writable",
            grant::map(peer, &[ro_ref], false).map(|_| ()),
            Err(HvError::Access),
        );
        c.expect(
            "map outside the grant window",
            grant::map_at(peer, rw_ref, 0x4000_0000, false),
            Err(HvError::Inval),
        );
        c.expect(
            "map at an unaligned address",
            grant::map_at(peer, rw_ref, GRANT_WINDOW_BASE + 8, false),
            Err(HvError::Inval),
        );
        let ro_map = grant::map(peer, &[ro_ref], true);
        c.expect(
            "map a read-only grant read-only",
            ro_map.as_ref().map(|_| ()).map_err(|e| *e),
            Ok(()),
        );
        let rw_map = grant::map(peer, &[rw_ref], false);
        c.expect(
            "map the read-write grant",
            rw_map.as_ref().map(|_| ()).map_err(|e| *e),
            Ok(()),
        );
        if let (Ok(ro_map), Ok(rw_map)) = (ro_map, rw_map) {
            c.expect(
                "map over an existing mapping",
                grant::map_at(peer, rw_ref, rw_map.addr, false),
                Err(HvError::Busy),
            );
            let mut buf = [0u8; 21];
            rw_map.read_at(0, &mut buf).unwrap();
            c.truth("read the server's page", &buf == b"hello from the server");
            let mut buf = [0u8; 14];
            ro_map.read_at(0, &mut buf).unwrap();
            c.truth("read the read-only page", &buf == b"read-only data");
            rw_map.write_at(0, b"client was here").unwrap();

            // Grant copy.
            let mut local = [0u8; 64];
            let local_addr = local.as_mut_ptr() as u64;
            let own = |addr: u64| CopySide {
                gref_or_gfn: addr >> 12,
                offset: (addr & 0xfff) as u32,
                domid: DOMID_SELF,
                flags: 0,
            };
            let granted = |gref: u32, offset: u32| CopySide {
                gref_or_gfn: gref.into(),
                offset,
                domid: peer as u16,
                flags: COPY_GREF,
            };
            let len = 14u32.min(4096 - (local_addr & 0xfff) as u32);
            let op = GrantCopy {
                source: granted(ro_ref, 0),
                dest: own(local_addr),
                len,
                _reserved: 0,
            };
            c.expect("copy from the read-only grant", grant::copy(&op), Ok(()));
            c.truth(
                "copied bytes",
                local[..len as usize] == b"read-only data"[..len as usize],
            );
            let op = GrantCopy {
                source: own(local_addr),
                dest: granted(ro_ref, 0),
                len: 4,
                _reserved: 0,
            };
            c.expect(
                "copy into the read-only grant",
                grant::copy(&op),
                Err(HvError::Access),
            );
            let op = GrantCopy {
                source: granted(rw_ref, 4000),
                dest: own(local_addr),
                len: 200,
                _reserved: 0,
            };
            c.expect(
                "copy past the end of the page",
                grant::copy(&op),
                Err(HvError::Inval),
            );
            let op = GrantCopy {
                source: granted(100, 0),
                dest: own(local_addr),
                len: 4,
                _reserved: 0,
            };
            c.expect(
                "copy from a grant we were not given",
                grant::copy(&op),
                Err(HvError::NoEnt),
            );
            let op = GrantCopy {
                source: CopySide {
                    domid: 7,
                    ..granted(rw_ref, 0)
                },
                dest: own(local_addr),
                len: 4,
                _reserved: 0,
            };
            c.expect(
                "copy from a domain that does not exist",
                grant::copy(&op),
                Err(HvError::NoDomain),
            );
            let op = GrantCopy {
                source: own(0x7000_0000),
                dest: own(local_addr),
                len: 4,
                _reserved: 0,
            };
            c.expect(
                "copy from outside our memory",
                grant::copy(&op),
                Err(HvError::Fault),
            );
            c.expect(
                "copy request outside our memory",
                grant::copy_raw(0x7000_0000),
                Err(HvError::Fault),
            );

            store::write_u64("mapped", 1).unwrap();
            let _ = store::wait_for_u64(peer, "revoke-tried");
            c.expect("unmap", grant::unmap(rw_map), Ok(()));
            c.expect("unmap read-only", grant::unmap(ro_map), Ok(()));
            c.expect(
                "unmap a stale handle",
                grant::unmap_handle(0),
                Err(HvError::NoEnt),
            );
        } else {
            store::write_u64("mapped", 1).unwrap();
        }
        store::write_u64("unmapped", 1).unwrap();

        // Events to the server.
        let mut sent = 0;
        for _ in 0..EVENT_COUNT {
            if event::send(port).is_ok() {
                sent += 1;
            }
            let _ = parapet_guest::hypercall::yield_now();
        }
        c.truth("all sends accepted", sent == EVENT_COUNT);
        store::write_u64("sent", 1).unwrap();
        let _ = store::wait_for_u64(peer, "server-done");
        c.truth(
            "our store keys are ours",
            store::read(me, "sent", &mut [0u8; 8]) == Ok(8),
        );
        c.expect("close our port", event::close(port), Ok(()));
        c.expect("close it again", event::close(port), Err(HvError::NoEnt));
        local_ports(c);
        device_calls(c);
        store::write_u64("client-done", 1).unwrap();
    }
}
