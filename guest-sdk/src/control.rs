//! For the control domain: domain-control hypercalls (`parapet_abi::domctl`)
//! and the service that answers the host's requests (`parapet list`,
//! `create`, `destroy`, `pause`, `unpause`), which arrive as lines on the
//! control channel (`parapet_abi::control`).
//!
//! A control domain calls [`serve`] when `Virq::Control` fires (or in its
//! event loop): each complete request line is parsed, carried out with
//! hypercalls, and answered with `ctl:ID …` console lines. The request
//! handling is written against the [`Domctl`] trait, so it is tested on the
//! host with a fake hypervisor.
#![deny(unsafe_code)]

use core::fmt::Write as _;

use parapet_abi::control::{self, Command, Reply, Request};
use parapet_abi::domctl::{DomainInfo, DomainRunState, DomctlOp, Totals};
use parapet_abi::{Call, HvError};
use zerocopy::{FromZeros, IntoBytes};

/// What the control service needs from the hypervisor.
pub trait Domctl {
    /// Domain `id`'s record and the number of domain slots; `NoEnt` past the
    /// last slot.
    fn list(&mut self, id: u32) -> Result<(DomainInfo, u32), HvError>;
    /// Does `op` to domain `id`.
    fn op(&mut self, op: DomctlOp, id: u32) -> Result<(), HvError>;
    /// The frame pool.
    fn totals(&mut self) -> Result<Totals, HvError>;
}

/// The hypervisor, through hypercalls.
pub struct Hypervisor;

impl Domctl for Hypervisor {
    fn list(&mut self, id: u32) -> Result<(DomainInfo, u32), HvError> {
        list(id)
    }
    fn op(&mut self, op: DomctlOp, id: u32) -> Result<(), HvError> {
        // A domain destroyed a moment ago on another CPU gives its memory
        // back once that CPU has left it: a create right after answers
        // `Busy` for that long. Retry briefly before reporting it.
        for _ in 0..20 {
            match domctl(op, id) {
                Err(HvError::Busy) if op == DomctlOp::Create => {
                    crate::time::sleep(core::time::Duration::from_millis(1))?;
                }
                r => return r,
            }
        }
        domctl(op, id)
    }
    fn totals(&mut self) -> Result<Totals, HvError> {
        totals()
    }
}

/// `DomctlList`: domain `id`'s record and the number of domain slots.
pub fn list(id: u32) -> Result<(DomainInfo, u32), HvError> {
    let mut info = DomainInfo::new_zeroed();
    let buf = info.as_mut_bytes();
    #[allow(unsafe_code)]
    // SAFETY: the hypervisor writes at most `len` bytes into `info`, which is
    // ours and exclusively borrowed; the guest maps itself 1:1.
    let r = unsafe {
        crate::hypercall::issue(Call::DomctlList {
            domain: id.into(),
            buf: buf.as_mut_ptr() as u64,
            len: buf.len() as u64,
        })
    }?;
    Ok((info, u32::try_from(r[0]).unwrap_or(u32::MAX)))
}

/// `DomctlOp`.
pub fn domctl(op: DomctlOp, id: u32) -> Result<(), HvError> {
    crate::hypercall::call_plain(Call::DomctlOp {
        op: op.to_raw(),
        domain: id.into(),
    })
    .map(|_| ())
}

/// `DomctlTotals`.
pub fn totals() -> Result<Totals, HvError> {
    let r = crate::hypercall::call_plain(Call::DomctlTotals)?;
    Ok(Totals {
        frames_free: r[0],
        frames_total: r[1],
        frames_at_start: r[2],
    })
}

/// `ControlRead`: queued control-channel bytes into `buf`; how many.
pub fn read(buf: &mut [u8]) -> Result<usize, HvError> {
    #[allow(unsafe_code)]
    // SAFETY: as for `list`: at most `buf.len()` bytes into our buffer.
    let r = unsafe {
        crate::hypercall::issue(Call::ControlRead {
            buf: buf.as_mut_ptr() as u64,
            len: buf.len() as u64,
        })
    }?;
    Ok(usize::try_from(r[0]).unwrap_or(0).min(buf.len()))
}

/// A line of output, at most one console line long.
struct Line {
    buf: [u8; 192],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Self {
            buf: [0; 192],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Carries out request line `line` (without the marker) against `hv`, and
/// emits each reply line with `emit`.
pub fn handle(line: &str, hv: &mut impl Domctl, mut emit: impl FnMut(Reply<'_>)) {
    let request = match control::parse_request(line) {
        Ok(r) => r,
        Err(e) => {
            // No id to answer to if the id itself is bad: answer 0.
            let id = line
                .split_ascii_whitespace()
                .next()
                .and_then(|w| w.parse().ok())
                .unwrap_or(0);
            let mut text = Line::new();
            let _ = write!(text, "bad request: {e}");
            emit(Reply::Err {
                id,
                text: text.as_str(),
            });
            return;
        }
    };
    let Request { id, command } = request;
    let mut text = Line::new();
    let result = match command {
        Command::List => list_all(id, hv, &mut emit, &mut text),
        Command::Create(name) => act(hv, name, DomctlOp::Create, &mut text),
        Command::Destroy(name) => act(hv, name, DomctlOp::Destroy, &mut text),
        Command::Pause(name) => act(hv, name, DomctlOp::Pause, &mut text),
        Command::Unpause(name) => act(hv, name, DomctlOp::Unpause, &mut text),
    };
    match result {
        Ok(()) => emit(Reply::Ok {
            id,
            text: text.as_str(),
        }),
        Err(()) => emit(Reply::Err {
            id,
            text: text.as_str(),
        }),
    }
}

fn all_domains(hv: &mut impl Domctl, mut f: impl FnMut(&DomainInfo)) -> Result<(), HvError> {
    let mut id = 0;
    loop {
        match hv.list(id) {
            Ok((info, count)) => {
                f(&info);
                id += 1;
                if id >= count {
                    return Ok(());
                }
            }
            Err(HvError::NoEnt) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn list_all(
    id: u32,
    hv: &mut impl Domctl,
    emit: &mut impl FnMut(Reply<'_>),
    summary: &mut Line,
) -> Result<(), ()> {
    let (mut count, mut grants, mut ports) = (0, 0u64, 0u64);
    let listed = all_domains(hv, |info| {
        count += 1;
        grants += u64::from(info.grants_mapped);
        ports += u64::from(info.ports_bound);
        let mut line = Line::new();
        let state = info.run_state().map_or("?", DomainRunState::name);
        let _ = write!(
            line,
            "{} id={} state={} vcpus={} cpus=",
            info.name(),
            info.id,
            state,
            info.vcpu_count
        );
        for (i, cpu) in info.cpus().iter().enumerate() {
            let _ = write!(line, "{}{cpu}", if i == 0 { "" } else { "," });
        }
        let _ = write!(
            line,
            " mem_kib={} tables={} grants={} ports={} uptime_ms={} crashes={} restarts={} creates={}",
            info.ram_kib,
            info.table_frames,
            info.grants_mapped,
            info.ports_bound,
            info.uptime_ms,
            info.crashes,
            info.restarts,
            info.creates
        );
        emit(Reply::Data {
            id,
            text: line.as_str(),
        });
    });
    if let Err(e) = listed {
        let _ = write!(summary, "list failed: {e}");
        return Err(());
    }
    match hv.totals() {
        Ok(t) => {
            let _ = write!(
                summary,
                "{count} domains; frames free={} total={} at_start={}; grants={grants} ports={ports}",
                t.frames_free, t.frames_total, t.frames_at_start
            );
            Ok(())
        }
        Err(e) => {
            let _ = write!(summary, "totals failed: {e}");
            Err(())
        }
    }
}

fn act(hv: &mut impl Domctl, name: &str, op: DomctlOp, text: &mut Line) -> Result<(), ()> {
    let mut found = None;
    let mut known = Line::new();
    let listed = all_domains(hv, |info| {
        if info.name() == name {
            found = Some(info.id);
        }
        let _ = write!(
            known,
            "{}{}",
            if known.len == 0 { "" } else { ", " },
            info.name()
        );
    });
    if let Err(e) = listed {
        let _ = write!(text, "list failed: {e}");
        return Err(());
    }
    let Some(target) = found else {
        let _ = write!(text, "no domain `{name}`; known: {}", known.as_str());
        return Err(());
    };
    let verb = match op {
        DomctlOp::Create => "created",
        DomctlOp::Destroy => "destroyed",
        DomctlOp::Pause => "paused",
        DomctlOp::Unpause => "unpaused",
    };
    match hv.op(op, target) {
        Ok(()) => {
            let _ = write!(text, "{verb} {name}");
            Ok(())
        }
        Err(e) => {
            let why = match (op, e) {
                (DomctlOp::Create, HvError::Busy) => "it runs (or is still stopping)",
                (DomctlOp::Create, HvError::NoMem) => "not enough memory",
                (DomctlOp::Create, HvError::Inval) => "its image or entry is unusable",
                (DomctlOp::Destroy | DomctlOp::Pause, HvError::Inval) => "it is the control domain",
                (_, HvError::Busy) => "not in a state that allows it",
                (_, HvError::Perm) => "this domain is not the control domain",
                _ => "refused",
            };
            let _ = write!(text, "{name} not {verb}: {why} ({e})");
            Err(())
        }
    }
}

/// Bytes of a request line collected so far (across `ControlRead`s).
static PARTIAL: spin::Mutex<([u8; control::REQUEST_MAX + 1], usize)> =
    spin::Mutex::new(([0; control::REQUEST_MAX + 1], 0));

/// Reads what the control channel holds and answers every complete request
/// on the console. Call it when `Virq::Control` fires (not from the handler
/// itself if printing there is not allowed in your OS: it prints).
pub fn serve() -> Result<(), HvError> {
    let mut chunk = [0u8; 128];
    loop {
        let n = read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        for &b in &chunk[..n] {
            let line = crate::irq::without_interrupts(|| {
                let mut p = PARTIAL.lock();
                let (buf, len) = &mut *p;
                if b == b'\n' {
                    let line = (*buf, *len);
                    *len = 0;
                    Some(line)
                } else {
                    if *len < buf.len() {
                        buf[*len] = b;
                    }
                    *len = (*len + 1).min(buf.len());
                    None
                }
            });
            if let Some((buf, len)) = line {
                let text = core::str::from_utf8(&buf[..len]).unwrap_or("");
                handle(text, &mut Hypervisor, |reply| crate::println!("{reply}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    /// A hypervisor with a few domains, as the real one answers.
    struct Fake {
        domains: Vec<DomainInfo>,
        ops: Vec<(DomctlOp, u32)>,
    }

    fn info(id: u32, name: &str, state: DomainRunState) -> DomainInfo {
        let mut i = DomainInfo::new_zeroed();
        i.id = id;
        parapet_abi::start_info::set_c_str(&mut i.name, name);
        i.state = state.to_raw();
        i.vcpu_count = 1;
        i.ram_kib = 32 * 1024;
        i.ports_bound = 2;
        i.grants_mapped = 3;
        i
    }

    impl Domctl for Fake {
        fn list(&mut self, id: u32) -> Result<(DomainInfo, u32), HvError> {
            let n = self.domains.len() as u32;
            self.domains
                .get(id as usize)
                .map(|d| (*d, n))
                .ok_or(HvError::NoEnt)
        }
        fn op(&mut self, op: DomctlOp, id: u32) -> Result<(), HvError> {
            let d = &mut self.domains[id as usize];
            let running = d.run_state() == Some(DomainRunState::Running);
            match (op, running) {
                (DomctlOp::Create, false) => d.state = DomainRunState::Running.to_raw(),
                (DomctlOp::Destroy, true) => d.state = DomainRunState::Off.to_raw(),
                _ => return Err(HvError::Busy),
            }
            self.ops.push((op, id));
            Ok(())
        }
        fn totals(&mut self) -> Result<Totals, HvError> {
            Ok(Totals {
                frames_free: 100,
                frames_total: 200,
                frames_at_start: 150,
            })
        }
    }

    fn fake() -> Fake {
        Fake {
            domains: vec![
                info(0, "driver", DomainRunState::Running),
                info(1, "guest-a", DomainRunState::Running),
                info(2, "spare", DomainRunState::Off),
            ],
            ops: Vec::new(),
        }
    }

    fn run(line: &str, hv: &mut Fake) -> Vec<String> {
        let mut out = Vec::new();
        handle(line, hv, |r| out.push(r.to_string()));
        out
    }

    #[test]
    fn list_prints_every_domain_then_totals() {
        let out = run("4 list", &mut fake());
        assert_eq!(out.len(), 4);
        assert!(
            out[0].starts_with("ctl:4 | driver id=0 state=running vcpus=1 cpus=0 mem_kib=32768")
        );
        assert!(out[2].contains("spare id=2 state=off"));
        assert_eq!(
            out[3],
            "ctl:4 ok 3 domains; frames free=100 total=200 at_start=150; grants=9 ports=6"
        );
    }

    #[test]
    fn ops_find_domains_by_name_and_report_refusals() {
        let mut hv = fake();
        assert_eq!(
            run("5 destroy guest-a", &mut hv),
            ["ctl:5 ok destroyed guest-a"]
        );
        assert_eq!(
            run("6 create guest-a", &mut hv),
            ["ctl:6 ok created guest-a"]
        );
        assert_eq!(hv.ops, [(DomctlOp::Destroy, 1), (DomctlOp::Create, 1)]);
        let out = run("7 create guest-a", &mut hv);
        assert_eq!(
            out,
            ["ctl:7 err guest-a not created: it runs (or is still stopping) (resource busy)"]
                .map(|s| s.replace("(resource busy)", &format!("({})", HvError::Busy)))
        );
        let out = run("8 pause nobody", &mut hv);
        assert_eq!(
            out,
            ["ctl:8 err no domain `nobody`; known: driver, guest-a, spare"]
        );
    }

    #[test]
    fn malformed_requests_get_an_error_reply() {
        let mut hv = fake();
        assert_eq!(
            run("9 frobnicate", &mut hv),
            ["ctl:9 err bad request: unknown command `frobnicate` (list, create, destroy, pause, unpause)"]
        );
        assert_eq!(
            run("zz list", &mut hv),
            ["ctl:0 err bad request: bad request id `zz`"]
        );
        assert_eq!(run("", &mut hv), ["ctl:0 err bad request: empty request"]);
        assert!(hv.ops.is_empty());
    }
}
