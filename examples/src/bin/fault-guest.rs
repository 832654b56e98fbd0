//! The fault guest: checks that bad hypercalls get typed errors (among them
//! the domain-control calls, which a domain that is not the control domain
//! may not make), then misbehaves as its command line says
//! (`mode=oob-write|oob-read|panic|undef|spin`, default `oob-write`) so that
//! the tests can check the hypervisor contains it; `mode=check` only makes
//! the checks and powers off (0 if all passed, else 1).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("fault-guest is a bare-metal image: build it with `cargo parapet build`");
}

#[cfg(target_os = "none")]
mod guest {
    use parapet_guest::abi::domctl::DomctlOp;
    use parapet_guest::abi::hypercall::Hypercall;
    use parapet_guest::abi::layout::GUEST_RAM_BASE;
    use parapet_guest::abi::{AbiVersion, Call, HvError, StartInfo};
    use parapet_guest::{cmdline, control, hypercall, irq, println, testing};

    parapet_guest::entry!(main);

    /// Mapped by the guest's own stage 1 (Normal memory up to 4 GiB), but beyond
    /// its RAM, so not by its stage 2.
    const OUT_OF_BOUNDS: u64 = GUEST_RAM_BASE + 512 * 1024 * 1024;

    fn expect(what: &str, got: Result<[u64; 3], HvError>, want: HvError) -> bool {
        if got == Err(want) {
            true
        } else {
            println!("errors: FAILED: {what}: expected {want:?}, got {got:?}");
            false
        }
    }

    fn check_errors() -> bool {
        let mut ok = true;
        // SAFETY: unknown numbers are always refused.
        ok &= expect(
            "hypercall 999",
            unsafe { hypercall::call(999, [0; 6]) },
            HvError::NoSys,
        );
        // SAFETY: the buffer is outside this domain's RAM: the hypervisor refuses it
        // and touches no memory of ours.
        let bad_write = unsafe {
            hypercall::issue(Call::ConsoleWrite {
                buf: 0x1_0000_0000,
                len: 16,
            })
        };
        ok &= expect("console_write outside RAM", bad_write, HvError::Fault);
        // SAFETY: an unknown shutdown reason is refused (the call returns). It
        // cannot be written as a `Call`, hence the raw registers.
        let bad_shutdown =
            unsafe { hypercall::call(Hypercall::Shutdown as u64, [77, 0, 0, 0, 0, 0]) };
        ok &= expect("shutdown reason 77", bad_shutdown, HvError::Inval);
        let mismatch = hypercall::version_check(AbiVersion { major: 2, minor: 0 }).map(|()| [0; 3]);
        ok &= expect("version_check 2.0", mismatch, HvError::VersionMismatch);
        ok &= check_domain_control();
        ok
    }

    /// Domain control is for the control domain only: this guest (never the
    /// control domain in the scenarios that boot it) gets `Perm` for every
    /// call, including an op on itself and on domain 0.
    fn check_domain_control() -> bool {
        let me = parapet_guest::start_info().map_or(1, |i| i.domain_id);
        let calls = [
            ("DomctlList 0", control::list(0).map(|_| [0; 3])),
            (
                "DomctlOp destroy 0",
                control::domctl(DomctlOp::Destroy, 0).map(|()| [0; 3]),
            ),
            (
                "DomctlOp pause self",
                control::domctl(DomctlOp::Pause, me).map(|()| [0; 3]),
            ),
            (
                "DomctlOp create self",
                control::domctl(DomctlOp::Create, me).map(|()| [0; 3]),
            ),
            ("DomctlTotals", control::totals().map(|_| [0; 3])),
            (
                "ControlRead",
                control::read(&mut [0u8; 64]).map(|n| [n as u64, 0, 0]),
            ),
        ];
        let mut ok = true;
        for (what, got) in calls {
            ok &= expect(what, got, HvError::Perm);
        }
        if ok {
            println!("errors: domain control refused (Perm): DomctlList, DomctlOp, DomctlTotals, ControlRead");
        }
        ok
    }

    fn main(info: &StartInfo) -> i32 {
        let checked = check_errors();
        if checked {
            println!("errors: ok");
        }
        let mode = cmdline::get(info.cmdline(), "mode").unwrap_or("oob-write");
        match mode {
            "check" => return if checked { 0 } else { 1 },
            "oob-write" | "oob-read" | "panic" | "undef" | "spin" => {}
            other => {
                println!("fault: unknown mode {other:?}");
                return 2;
            }
        }
        println!("fault: about to {mode}");
        match mode {
            "oob-write" => {
                // SAFETY: deliberately invalid: the address is mapped by our stage 1
                // but not by our stage 2, so the hypervisor stops this domain.
                unsafe { (OUT_OF_BOUNDS as *mut u64).write_volatile(0xdead_beef) };
            }
            "oob-read" => {
                // SAFETY: as above, for a read.
                let v = unsafe { (OUT_OF_BOUNDS as *const u64).read_volatile() };
                println!("fault: read {v:#x}");
            }
            "panic" => panic!("fault-guest: deliberate panic"),
            "undef" => testing::undefined_instruction(),
            _ => {
                let _masked = irq::disable();
                loop {
                    core::hint::spin_loop();
                }
            }
        }
        println!("fault: still alive after {mode}: the hypervisor did not stop it");
        3
    }
}
