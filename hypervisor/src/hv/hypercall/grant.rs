//! Grant-table hypercalls: mapping a frame another domain granted into the
//! caller's grant window, unmapping it, and copies between granted frames
//! and the caller's memory; and, when a domain stops, taking back every
//! mapping by it and of its frames.

use parapet_abi::grant::{self as abi_grant, MAX_MAPPINGS};
use parapet_abi::layout::{self, PAGE_SIZE};
use parapet_abi::HvError;

use crate::arch::phys;
use crate::bootargs::Role;
use crate::grant::{self, Mapping, Side};
use crate::hv::{domain_id, Hypervisor};
use crate::stage2::{Access, Attributes, MemKind};

/// Fixed-capacity list of mapping handles (the hypervisor has no heap).
struct Handles {
    items: [u64; MAX_MAPPINGS as usize],
    len: usize,
}

impl FromIterator<u64> for Handles {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let mut h = Handles {
            items: [0; MAX_MAPPINGS as usize],
            len: 0,
        };
        for x in iter.into_iter().take(MAX_MAPPINGS as usize) {
            h.items[h.len] = x;
            h.len += 1;
        }
        h
    }
}

impl Handles {
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.items[..self.len].iter().copied()
    }
}

impl Hypervisor {
    /// The physical page of frame `gfn` of domain `g`, if it is ordinary RAM
    /// of `g` below its reserved pages.
    fn granted_frame_pa(&self, g: usize, gfn: u32) -> Option<u64> {
        let dom = &self.domains[g];
        let ipa = u64::from(gfn) << 12;
        let top = layout::reserved_top_base(dom.ram_ipa, dom.ram_size);
        (ipa >= dom.ram_ipa && ipa < top).then(|| dom.ram_pa + (ipa - dom.ram_ipa))
    }

    /// `GrantMap`: maps `granter`'s grant `gref` at `ipa` of the caller's
    /// grant window. Returns the handle and, for the driver domain, the
    /// physical address (for DMA). `NoMem` when the caller has used up its
    /// mappings or its stage-2 table quota.
    pub(super) fn grant_map(
        &mut self,
        d: usize,
        granter: u64,
        gref: u64,
        ipa: u64,
        flags: u64,
    ) -> Result<(u64, u64), HvError> {
        if !self.domain_alive(granter) {
            return Err(HvError::NoDomain);
        }
        let granter = u8::try_from(granter).map_err(|_| HvError::NoDomain)?;
        if flags & !abi_grant::map_flags::READONLY != 0 {
            return Err(HvError::Inval);
        }
        grant::check_window(ipa)?;
        let mut s2 = self.domains[d].stage2.ok_or(HvError::Fault)?;
        if self.maps[d].at(ipa) || self.guest(d)?.page(ipa, false).is_ok() {
            return Err(HvError::Busy);
        }
        if self.maps[d].len() >= MAX_MAPPINGS as usize {
            return Err(HvError::NoMem);
        }
        let g = usize::from(granter);
        let write = flags & abi_grant::map_flags::READONLY == 0;
        let table = self.domains[g].grant_table();
        // `acquire` refuses a `gref` beyond the table with `Inval` first.
        let gref = u32::try_from(gref).map_err(|_| HvError::Inval)?;
        let grantee = domain_id(d).into();
        let frame = grant::acquire(table, &mut self.pins[g], gref.into(), grantee, write)?;
        let Some(pa) = self.granted_frame_pa(g, frame) else {
            grant::release(table, &mut self.pins[g], gref, write);
            return Err(HvError::Fault);
        };
        let attrs = Attributes {
            kind: MemKind::Normal,
            access: if write {
                Access::ReadWrite
            } else {
                Access::ReadOnly
            },
            executable: false,
        };
        if s2
            .map(&mut self.tables_of(d), ipa, pa, PAGE_SIZE, attrs)
            .is_err()
        {
            grant::release(table, &mut self.pins[g], gref, write);
            return Err(HvError::NoMem);
        }
        self.domains[d].stage2 = Some(s2);
        let handle = self.maps[d].insert(Mapping {
            granter,
            gref,
            ipa,
            pa,
            write,
            orphaned: false,
        })?;
        let dma = if self.domains[d].role == Role::Driver {
            pa
        } else {
            0
        };
        Ok((handle, dma))
    }

    /// `GrantUnmap`: undoes a `GrantMap`.
    pub(super) fn grant_unmap(&mut self, d: usize, handle: u64) -> Result<(), HvError> {
        let m = self.maps[d].remove(handle)?;
        self.unmap_window_page(d, m.ipa);
        if !m.orphaned {
            let table = self.domains[m.granter as usize].grant_table();
            grant::release(table, &mut self.pins[m.granter as usize], m.gref, m.write);
        }
        Ok(())
    }

    /// Removes the page at `ipa` from `d`'s stage-2 (tables left empty go
    /// back to its quota) and flushes it from the TLBs.
    fn unmap_window_page(&mut self, d: usize, ipa: u64) {
        if let Some(mut s2) = self.domains[d].stage2 {
            let _ = s2.unmap_page(&mut self.tables_of(d), ipa);
            crate::arch::tlb::invalidate_ipa(self.domains[d].vttbr(), ipa);
        }
    }

    /// `GrantCopy`: copies between a granted frame and the caller's memory
    /// (or two granted frames), as the `GrantCopy` at `op_ipa` says.
    pub(super) fn grant_copy(&mut self, d: usize, op_ipa: u64) -> Result<u64, HvError> {
        let mut op = abi_grant::GrantCopy::default();
        self.copy_from_guest(d, op_ipa, zerocopy::IntoBytes::as_mut_bytes(&mut op))?;
        let (src, dst) = grant::check_copy(&op, |x| self.domain_alive(x.into()))?;
        let len = u64::from(op.len);
        let src_pa = self.copy_side(d, src, false)?;
        let dst_pa = match self.copy_side(d, dst, true) {
            Ok(pa) => pa,
            Err(e) => {
                self.release_side(src, false);
                return Err(e);
            }
        };
        // SAFETY: both sides were checked: the source is RAM the caller may
        // read (its own, or a frame granted to it), the destination RAM it may
        // write; each range stays within one page.
        unsafe { phys::copy(dst_pa, src_pa, len) };
        self.release_side(src, false);
        self.release_side(dst, true);
        Ok(len)
    }

    /// Resolves one side of a grant copy to a physical address, pinning a
    /// granted frame for the duration.
    fn copy_side(&mut self, d: usize, side: Side, write: bool) -> Result<u64, HvError> {
        match side {
            Side::Own { gfn, offset } => {
                let ipa = gfn.checked_mul(PAGE_SIZE).ok_or(HvError::Fault)?;
                Ok(self.guest(d)?.page(ipa, write)? + u64::from(offset))
            }
            Side::Granted {
                granter,
                gref,
                offset,
            } => {
                let g = granter as usize;
                let table = self.domains[g].grant_table();
                let grantee = domain_id(d).into();
                let frame = grant::acquire(table, &mut self.pins[g], gref.into(), grantee, write)?;
                match self.granted_frame_pa(g, frame) {
                    Some(pa) => Ok(pa + u64::from(offset)),
                    None => {
                        grant::release(table, &mut self.pins[g], gref, write);
                        Err(HvError::Fault)
                    }
                }
            }
        }
    }

    fn release_side(&mut self, side: Side, write: bool) {
        if let Side::Granted { granter, gref, .. } = side {
            let table = self.domains[granter as usize].grant_table();
            grant::release(table, &mut self.pins[granter as usize], gref, write);
        }
    }

    /// Domain `d` stopped: undo every mapping it made, and take every
    /// mapping of its pages away from the grantees (pointing their window
    /// page at their own scratch page, so they read zeros rather than fault).
    pub(in crate::hv) fn teardown_grants(&mut self, d: usize) {
        let mine: Handles = self.maps[d].iter().map(|(h, _)| h).collect();
        for h in mine.iter() {
            let _ = self.grant_unmap(d, h);
        }
        for e in 0..self.domain_count {
            if e == d {
                continue;
            }
            let theirs: Handles = self.maps[e]
                .iter()
                .filter(|(_, m)| m.granter as usize == d && !m.orphaned)
                .map(|(h, _)| h)
                .collect();
            for h in theirs.iter() {
                let Ok(m) = self.maps[e].get(h) else { continue };
                self.unmap_window_page(e, m.ipa);
                let scratch_pa = {
                    let dom = &self.domains[e];
                    dom.ram_pa + (dom.scratch_ipa - dom.ram_ipa)
                };
                if let Some(mut s2) = self.domains[e].stage2 {
                    let _ = s2.map(
                        &mut self.tables_of(e),
                        m.ipa,
                        scratch_pa,
                        PAGE_SIZE,
                        Attributes {
                            kind: MemKind::Normal,
                            access: Access::ReadWrite,
                            executable: false,
                        },
                    );
                }
                let table = self.domains[d].grant_table();
                grant::release(table, &mut self.pins[d], m.gref, m.write);
                self.maps[e].orphan(h);
            }
        }
        self.pins[d] = crate::grant::Pins::EMPTY;
    }
}
