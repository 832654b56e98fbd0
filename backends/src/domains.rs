//! The driver domain's view of the other domains at run time (ABI 1.3,
//! `parapet_abi::domctl`): which domain a wiring entry names, and whether the
//! driver domain should stay up once no guest runs.
//!
//! - A scenario may define a guest that does not start at boot (`autostart
//!   = false`), and the control domain may destroy and create guests while
//!   the driver domain runs. `DomainLookup` finds only running domains, so a
//!   `vbd=`/`vif=` entry whose guest does not run yet is kept and resolved
//!   later ([`resolve`]): at once from `DomctlList` when the driver domain is
//!   the control domain (every domain of the scenario has a slot, its id, from
//!   boot), else when its guest starts (its frontend's first store write
//!   raises `Virq::Store`).
//! - The driver domain powers off when it is the last domain alive, unless
//!   it is the control domain and a domain can still be created
//!   ([`may_create_later`]): then it stays up to serve the host's requests.
//!
//! Portable and tested on the host; the binary makes the hypercalls.

use parapet_abi::domctl::{flags, DomainInfo, DomainRunState};
use parapet_abi::HvError;

/// What a frontend's name resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The domain's id (its slot: the same for every instance of it).
    Found(u32),
    /// Not running now and nothing else says it exists: ask again when the
    /// store changes (a starting frontend writes its `Initialising` state).
    NotYet,
    /// The control domain's list has no such domain: it never will.
    NoSuchDomain,
}

/// Resolves `name`: `running` is `DomainLookup` (running domains only);
/// `list` is every domain slot when this is the control domain (`None`
/// otherwise).
pub fn resolve(name: &str, running: Result<u32, HvError>, list: Option<&[DomainInfo]>) -> Lookup {
    if let Ok(id) = running {
        return Lookup::Found(id);
    }
    match list {
        Some(domains) => domains
            .iter()
            .find(|d| d.name() == name)
            .map_or(Lookup::NoSuchDomain, |d| Lookup::Found(d.id)),
        None => Lookup::NotYet,
    }
}

/// Whether a domain other than `me` can still be created, so that the
/// control domain should not power off when it is the last one alive: one
/// is defined not to start at boot (the host creates it), was created in
/// this run, or was destroyed (it may be created again). Domains that just
/// ended (exit, crash) do not count: a run whose guests all finished ends
/// as before.
pub fn may_create_later(me: u32, domains: &[DomainInfo]) -> bool {
    domains.iter().filter(|d| d.id != me).any(|d| {
        d.flags & flags::AUTOSTART == 0
            || d.creates > 0
            || d.run_state() == Some(DomainRunState::Off)
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;
    use zerocopy::FromZeros;

    fn info(id: u32, name: &str, state: DomainRunState, autostart: bool) -> DomainInfo {
        let mut i = DomainInfo::new_zeroed();
        i.id = id;
        parapet_abi::start_info::set_c_str(&mut i.name, name);
        i.state = state.to_raw();
        i.flags = if autostart { flags::AUTOSTART } else { 0 };
        i
    }

    fn scenario() -> Vec<DomainInfo> {
        vec![
            info(0, "driver", DomainRunState::Running, true),
            info(1, "web", DomainRunState::Running, true),
            info(2, "spare", DomainRunState::Off, false),
        ]
    }

    #[test]
    fn running_domains_resolve_through_lookup_others_through_the_list() {
        let list = scenario();
        assert_eq!(resolve("web", Ok(1), None), Lookup::Found(1));
        assert_eq!(resolve("web", Ok(1), Some(&list)), Lookup::Found(1));
        // Not running: the control domain still knows its slot.
        assert_eq!(
            resolve("spare", Err(HvError::NoEnt), Some(&list)),
            Lookup::Found(2)
        );
        assert_eq!(
            resolve("nobody", Err(HvError::NoEnt), Some(&list)),
            Lookup::NoSuchDomain
        );
        // Another domain is the control domain: wait for it to start.
        assert_eq!(resolve("spare", Err(HvError::NoEnt), None), Lookup::NotYet);
    }

    #[test]
    fn stays_up_only_while_a_domain_can_still_be_created() {
        let mut all_ran = vec![
            info(0, "driver", DomainRunState::Running, true),
            info(1, "a", DomainRunState::Exited, true),
            info(2, "b", DomainRunState::Crashed, true),
        ];
        // Today's behaviour: every guest finished, nobody created any.
        assert!(!may_create_later(0, &all_ran));
        // One was created by the host in this run.
        all_ran[1].creates = 1;
        assert!(may_create_later(0, &all_ran));
        all_ran[1].creates = 0;
        // One was destroyed (Off although it starts at boot).
        all_ran[2].state = DomainRunState::Off.to_raw();
        assert!(may_create_later(0, &all_ran));
        // One is defined not to start at boot, whatever its state.
        let spare = scenario();
        assert!(may_create_later(0, &spare));
        // The driver domain itself never counts.
        let mut me = vec![info(0, "driver", DomainRunState::Running, false)];
        me[0].creates = 3;
        assert!(!may_create_later(0, &me));
    }
}
