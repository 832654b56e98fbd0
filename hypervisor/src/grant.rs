//! Grant bookkeeping: checking a grant entry and pinning it (the in-use bits),
//! the per-grantee table of mappings (handles), and the checks on copy
//! requests. Stage-2 changes and the copies themselves are the caller's
//! (`hv`); this module is pure and tested on the host.
#![deny(unsafe_code)]

use core::sync::atomic::Ordering;
use parapet_abi::grant::{
    gtf, GrantCopy, GrantEntry, COPY_GREF, DOMID_SELF, GRANT_ENTRIES, GRANT_WINDOW_BASE,
    GRANT_WINDOW_SIZE, MAX_MAPPINGS,
};
use parapet_abi::layout::PAGE_SIZE;
use parapet_abi::HvError;

/// How many mappings and copies hold each entry of one granter's table.
#[derive(Clone, Copy, Debug)]
pub struct Pins {
    readers: [u16; GRANT_ENTRIES as usize],
    writers: [u16; GRANT_ENTRIES as usize],
}

impl Default for Pins {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl Pins {
    /// Nothing pinned.
    pub const EMPTY: Pins = Pins {
        readers: [0; GRANT_ENTRIES as usize],
        writers: [0; GRANT_ENTRIES as usize],
    };

    /// Whether `gref` is pinned.
    pub fn pinned(&self, gref: u32) -> bool {
        self.readers[gref as usize] != 0
    }

    /// Entries pinned.
    pub fn count(&self) -> usize {
        self.readers.iter().filter(|&&r| r != 0).count()
    }
}

/// Checks entry `gref` of a granter's table for `grantee` and pins it: sets
/// the in-use bits in the shared header with a compare-and-swap that also
/// checks flags and domain, so the granter cannot end access in between.
/// Returns the granted frame (in the granter's guest-physical space).
pub fn acquire(
    table: &[GrantEntry],
    pins: &mut Pins,
    gref: u64,
    grantee: u32,
    write: bool,
) -> Result<u32, HvError> {
    let g = usize::try_from(gref).map_err(|_| HvError::Inval)?;
    if gref >= u64::from(GRANT_ENTRIES) || g >= table.len() {
        return Err(HvError::Inval);
    }
    let entry = &table[g];
    let mut cur = entry.header.load(Ordering::Acquire);
    loop {
        let flags = cur & gtf::MASK;
        if flags & gtf::PERMIT_ACCESS == 0 {
            return Err(HvError::NoEnt);
        }
        if cur >> 16 != grantee || (write && flags & gtf::READONLY != 0) {
            return Err(HvError::Access);
        }
        let new = cur | gtf::READING | if write { gtf::WRITING } else { 0 };
        match entry
            .header
            .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    pins.readers[g] += 1;
    if write {
        pins.writers[g] += 1;
    }
    Ok(entry.frame.load(Ordering::Acquire))
}

/// Drops one pin taken by [`acquire`]; clears the in-use bits that no pin
/// needs any more.
pub fn release(table: &[GrantEntry], pins: &mut Pins, gref: u32, write: bool) {
    let g = gref as usize;
    if g >= table.len() || pins.readers[g] == 0 {
        return;
    }
    pins.readers[g] -= 1;
    if write && pins.writers[g] > 0 {
        pins.writers[g] -= 1;
    }
    let mut clear = 0;
    if pins.writers[g] == 0 {
        clear |= gtf::WRITING;
    }
    if pins.readers[g] == 0 {
        clear |= gtf::READING;
    }
    table[g].header.fetch_and(!clear, Ordering::AcqRel);
}

/// One grant mapped by a grantee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The granting domain.
    pub granter: u8,
    /// The grant reference in its table.
    pub gref: u32,
    /// Where the grantee mapped it.
    pub ipa: u64,
    /// The physical frame.
    pub pa: u64,
    /// Mapped writable.
    pub write: bool,
    /// The granter stopped: the window page now shows the grantee's scratch
    /// page, and no pin is held.
    pub orphaned: bool,
}

/// A grantee's mappings; a handle is an index.
#[derive(Clone, Debug)]
pub struct MapTrack {
    slots: [Option<Mapping>; MAX_MAPPINGS as usize],
}

impl Default for MapTrack {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl MapTrack {
    /// No mappings.
    pub const EMPTY: MapTrack = MapTrack {
        slots: [None; MAX_MAPPINGS as usize],
    };

    /// Records `m`; returns its handle.
    pub fn insert(&mut self, m: Mapping) -> Result<u64, HvError> {
        let i = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(HvError::NoMem)?;
        self.slots[i] = Some(m);
        Ok(i as u64)
    }

    /// The mapping of `handle`.
    pub fn get(&self, handle: u64) -> Result<Mapping, HvError> {
        self.slots
            .get(usize::try_from(handle).map_err(|_| HvError::Inval)?)
            .copied()
            .flatten()
            .ok_or(HvError::NoEnt)
    }

    /// Forgets `handle`.
    pub fn remove(&mut self, handle: u64) -> Result<Mapping, HvError> {
        self.slots
            .get_mut(usize::try_from(handle).map_err(|_| HvError::Inval)?)
            .and_then(Option::take)
            .ok_or(HvError::NoEnt)
    }

    /// Whether some mapping sits at `ipa`.
    pub fn at(&self, ipa: u64) -> bool {
        self.slots.iter().flatten().any(|m| m.ipa == ipa)
    }

    /// The live mappings with their handles.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Mapping)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.map(|m| (i as u64, m)))
    }

    /// Marks the mapping `handle` orphaned.
    pub fn orphan(&mut self, handle: u64) {
        let slot = usize::try_from(handle)
            .ok()
            .and_then(|i| self.slots.get_mut(i));
        if let Some(Some(m)) = slot {
            m.orphaned = true;
        }
    }

    /// Number of mappings.
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks a window address chosen by a grantee.
pub fn check_window(ipa: u64) -> Result<(), HvError> {
    if !ipa.is_multiple_of(PAGE_SIZE)
        || !(GRANT_WINDOW_BASE..GRANT_WINDOW_BASE + GRANT_WINDOW_SIZE).contains(&ipa)
    {
        return Err(HvError::Inval);
    }
    Ok(())
}

/// A checked side of a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The caller's own frame `gfn`.
    Own {
        /// Guest frame number.
        gfn: u64,
        /// Byte offset in it.
        offset: u32,
    },
    /// Grant `gref` of `granter`.
    Granted {
        /// The granting domain.
        granter: u8,
        /// The grant reference.
        gref: u32,
        /// Byte offset in the frame.
        offset: u32,
    },
}

/// Checks a copy request (already copied out of guest memory) before any
/// grant is touched: lengths and offsets stay in one page, domains are named
/// properly. `domain_ok(d)` says whether `d` exists and runs.
pub fn check_copy(
    op: &GrantCopy,
    domain_ok: impl Fn(u16) -> bool,
) -> Result<(Side, Side), HvError> {
    if op._reserved != 0 || op.len == 0 || op.len as u64 > PAGE_SIZE {
        return Err(HvError::Inval);
    }
    let side = |s: &parapet_abi::grant::CopySide| -> Result<Side, HvError> {
        if s.flags & !COPY_GREF != 0 {
            return Err(HvError::Inval);
        }
        if u64::from(s.offset) + u64::from(op.len) > PAGE_SIZE {
            return Err(HvError::Inval);
        }
        if s.flags & COPY_GREF != 0 {
            if s.domid == DOMID_SELF || !domain_ok(s.domid) {
                return Err(HvError::NoDomain);
            }
            let granter = u8::try_from(s.domid).map_err(|_| HvError::NoDomain)?;
            if s.gref_or_gfn >= u64::from(GRANT_ENTRIES) {
                return Err(HvError::Inval);
            }
            Ok(Side::Granted {
                granter,
                gref: u32::try_from(s.gref_or_gfn).map_err(|_| HvError::Inval)?,
                offset: s.offset,
            })
        } else {
            if s.domid != DOMID_SELF {
                return Err(HvError::Inval);
            }
            Ok(Side::Own {
                gfn: s.gref_or_gfn,
                offset: s.offset,
            })
        }
    };
    Ok((side(&op.source)?, side(&op.dest)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_abi::grant::CopySide;
    use zerocopy::FromZeros;

    fn table() -> Vec<GrantEntry> {
        (0..GRANT_ENTRIES)
            .map(|_| GrantEntry::new_zeroed())
            .collect()
    }

    #[test]
    fn map_pins_and_revoke_while_mapped_fails() {
        let t = table();
        let mut pins = Pins::EMPTY;
        t[5].grant(2, 0x40100, false);
        assert_eq!(acquire(&t, &mut pins, 5, 2, true), Ok(0x40100));
        assert!(t[5].in_use());
        assert!(t[5].end_access().is_err(), "revoke while mapped must fail");
        // A second (read-only) mapping of the same grant.
        assert_eq!(acquire(&t, &mut pins, 5, 2, false), Ok(0x40100));
        release(&t, &mut pins, 5, true);
        assert!(t[5].in_use());
        assert_eq!(t[5].header.load(Ordering::Relaxed) & gtf::WRITING, 0);
        release(&t, &mut pins, 5, false);
        assert!(!t[5].in_use());
        assert!(t[5].end_access().is_ok());
        assert_eq!(pins.count(), 0);
    }

    #[test]
    fn wrong_domain_reference_and_permission() {
        let t = table();
        let mut pins = Pins::EMPTY;
        t[1].grant(2, 0x40100, true);
        assert_eq!(acquire(&t, &mut pins, 1, 3, false), Err(HvError::Access));
        assert_eq!(acquire(&t, &mut pins, 1, 2, true), Err(HvError::Access));
        assert_eq!(acquire(&t, &mut pins, 2, 2, false), Err(HvError::NoEnt));
        assert_eq!(
            acquire(&t, &mut pins, u64::from(GRANT_ENTRIES), 2, false),
            Err(HvError::Inval)
        );
        assert_eq!(
            acquire(&t, &mut pins, u64::MAX, 2, false),
            Err(HvError::Inval)
        );
        assert_eq!(pins.count(), 0);
        assert!(!t[1].in_use(), "a refused map leaves no trace");
        // Unbalanced release is harmless.
        release(&t, &mut pins, 1, false);
        assert_eq!(t[1].header.load(Ordering::Relaxed) >> 16, 2);
    }

    #[test]
    fn maptrack_handles() {
        let mut mt = MapTrack::EMPTY;
        let m = Mapping {
            granter: 1,
            gref: 3,
            ipa: GRANT_WINDOW_BASE,
            pa: 0x5000_0000,
            write: true,
            orphaned: false,
        };
        let h = mt.insert(m).unwrap();
        assert!(mt.at(GRANT_WINDOW_BASE));
        assert_eq!(mt.get(h), Ok(m));
        assert_eq!(mt.get(h + 1), Err(HvError::NoEnt));
        assert_eq!(mt.get(u64::MAX), Err(HvError::NoEnt));
        assert_eq!(mt.remove(u64::MAX), Err(HvError::NoEnt));
        assert_eq!(mt.remove(1 << 32 | h), Err(HvError::NoEnt));
        mt.orphan(1 << 32 | h);
        assert!(!mt.get(h).unwrap().orphaned);
        mt.orphan(h);
        assert!(mt.get(h).unwrap().orphaned);
        assert!(mt.remove(h).is_ok());
        assert_eq!(mt.remove(h), Err(HvError::NoEnt));
        for _ in 0..MAX_MAPPINGS {
            mt.insert(m).unwrap();
        }
        assert_eq!(mt.insert(m), Err(HvError::NoMem));
    }

    #[test]
    fn window_checks() {
        assert!(check_window(GRANT_WINDOW_BASE).is_ok());
        assert!(check_window(GRANT_WINDOW_BASE + GRANT_WINDOW_SIZE - PAGE_SIZE).is_ok());
        assert_eq!(check_window(GRANT_WINDOW_BASE + 1), Err(HvError::Inval));
        assert_eq!(
            check_window(GRANT_WINDOW_BASE + GRANT_WINDOW_SIZE),
            Err(HvError::Inval)
        );
        assert_eq!(check_window(0x4000_0000), Err(HvError::Inval));
    }

    fn copy(src: CopySide, dst: CopySide, len: u32) -> GrantCopy {
        GrantCopy {
            source: src,
            dest: dst,
            len,
            _reserved: 0,
        }
    }

    #[test]
    fn copy_checks() {
        let own = CopySide {
            gref_or_gfn: 0x40010,
            offset: 0,
            domid: DOMID_SELF,
            flags: 0,
        };
        let granted = CopySide {
            gref_or_gfn: 7,
            offset: 100,
            domid: 1,
            flags: COPY_GREF,
        };
        let ok = |d: u16| d == 1;
        assert_eq!(
            check_copy(&copy(granted, own, 96), ok),
            Ok((
                Side::Granted {
                    granter: 1,
                    gref: 7,
                    offset: 100
                },
                Side::Own {
                    gfn: 0x40010,
                    offset: 0
                }
            ))
        );
        // Offset + length past the page.
        assert_eq!(
            check_copy(&copy(granted, own, 3997), ok),
            Err(HvError::Inval)
        );
        assert_eq!(check_copy(&copy(own, own, 4097), ok), Err(HvError::Inval));
        assert_eq!(check_copy(&copy(own, own, 0), ok), Err(HvError::Inval));
        let far = CopySide {
            offset: u32::MAX,
            ..own
        };
        assert_eq!(check_copy(&copy(far, own, 1), ok), Err(HvError::Inval));
        // Wrong domain.
        let other = CopySide {
            domid: 2,
            ..granted
        };
        assert_eq!(check_copy(&copy(other, own, 4), ok), Err(HvError::NoDomain));
        let bad_ref = CopySide {
            gref_or_gfn: 1 << 20,
            ..granted
        };
        assert_eq!(check_copy(&copy(bad_ref, own, 4), ok), Err(HvError::Inval));
        let wide_ref = CopySide {
            gref_or_gfn: 1 << 32 | 7,
            ..granted
        };
        assert_eq!(check_copy(&copy(wide_ref, own, 4), ok), Err(HvError::Inval));
        // A domain check that lets a wide id through still gets no granter
        // cut to 8 bits.
        let wide_domain = CopySide {
            domid: 1 << 8 | 1,
            ..granted
        };
        assert_eq!(
            check_copy(&copy(wide_domain, own, 4), |_| true),
            Err(HvError::NoDomain)
        );
        let own_with_domain = CopySide { domid: 1, ..own };
        assert_eq!(
            check_copy(&copy(own_with_domain, own, 4), ok),
            Err(HvError::Inval)
        );
    }
}
