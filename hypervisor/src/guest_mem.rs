//! Access to a domain's memory on its behalf: every guest-physical address a
//! hypercall passes is translated through the caller's own stage-2 tables
//! and bounds-checked there, and the data is copied once into or out of
//! hypervisor memory (so a guest cannot change what was validated: no double
//! fetch).
//!
//! Physical memory sits behind [`PhysMemory`], so the same translation and
//! checks run on the host against a fake (see the tests).
#![deny(unsafe_code)]

use parapet_abi::layout::PAGE_SIZE;
use parapet_abi::HvError;

use crate::convert::usize_from;
use crate::stage2::{Access, MemKind, Stage2, TableRead};

/// Raw physical memory, as the hypervisor sees it.
pub trait PhysMemory {
    /// Copies `buf.len()` bytes at physical `pa` into `buf`.
    fn read(&self, pa: u64, buf: &mut [u8]);
    /// Copies `data` to physical `pa`.
    fn write(&self, pa: u64, data: &[u8]);
}

/// Most physically contiguous pieces one access may span. Domain RAM is
/// mapped with 2 MiB blocks, so a buffer of up to a page spans at most two.
const MAX_PIECES: usize = 4;

/// A physically contiguous piece of an access: `(pa, offset in the buffer, length)`.
type Piece = (u64, usize, usize);

/// One domain's memory: its stage-2 view over physical memory.
pub struct GuestMemory<'a, T: TableRead, P: PhysMemory> {
    /// The domain's stage-2 tables.
    pub stage2: Stage2,
    /// Where the tables live.
    pub tables: &'a T,
    /// Physical memory.
    pub phys: &'a P,
}

impl<T: TableRead, P: PhysMemory> GuestMemory<'_, T, P> {
    /// Splits `len` bytes at `ipa` into physically contiguous pieces
    /// `(pa, offset, n)`. `Fault` if any byte is unmapped, not RAM, or (for
    /// `write`) read-only; `Inval` if the range spans too many pieces.
    fn pieces(
        &self,
        ipa: u64,
        len: u64,
        write: bool,
    ) -> Result<([Piece; MAX_PIECES], usize), HvError> {
        let mut pieces: [Piece; MAX_PIECES] = [(0, 0, 0); MAX_PIECES];
        let mut count = 0;
        let mut done = 0;
        while done < len {
            let at = ipa.checked_add(done).ok_or(HvError::Fault)?;
            let t = self
                .stage2
                .translate(self.tables, at)
                .ok_or(HvError::Fault)?;
            if t.attributes.kind != MemKind::Normal
                || (write && t.attributes.access != Access::ReadWrite)
            {
                return Err(HvError::Fault);
            }
            if count == MAX_PIECES {
                return Err(HvError::Inval);
            }
            let n = t.contiguous.min(len - done);
            // Both are at most `len`, the length of a buffer in memory.
            pieces[count] = (t.pa, usize_from(done), usize_from(n));
            count += 1;
            done += n;
        }
        Ok((pieces, count))
    }

    /// Copies guest memory at `ipa` into `buf`. Nothing is read unless the
    /// whole range is readable RAM of the domain.
    pub fn read(&self, ipa: u64, buf: &mut [u8]) -> Result<(), HvError> {
        let (pieces, count) = self.pieces(ipa, buf.len() as u64, false)?;
        for &(pa, off, n) in &pieces[..count] {
            self.phys.read(pa, &mut buf[off..off + n]);
        }
        Ok(())
    }

    /// Copies `data` to guest memory at `ipa`. Nothing is written unless the
    /// whole range is RAM the domain may write.
    pub fn write(&self, ipa: u64, data: &[u8]) -> Result<(), HvError> {
        let (pieces, count) = self.pieces(ipa, data.len() as u64, true)?;
        for &(pa, off, n) in &pieces[..count] {
            self.phys.write(pa, &data[off..off + n]);
        }
        Ok(())
    }

    /// The physical address of the page at `ipa` (page-aligned), if the
    /// domain may read it (or, with `write`, write it): one side of a grant
    /// copy from or to the caller's own memory.
    pub fn page(&self, ipa: u64, write: bool) -> Result<u64, HvError> {
        if !ipa.is_multiple_of(PAGE_SIZE) {
            return Err(HvError::Inval);
        }
        let (pieces, _) = self.pieces(ipa, PAGE_SIZE, write)?;
        Ok(pieces[0].0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage2::fake::VecTables;
    use crate::stage2::Attributes;
    use std::cell::RefCell;

    /// 8 MiB of fake physical memory at 0x5000_0000.
    struct FakePhys(RefCell<Vec<u8>>);

    const PHYS: u64 = 0x5000_0000;

    impl FakePhys {
        fn new() -> Self {
            Self(RefCell::new(vec![0; 8 << 20]))
        }
    }

    impl PhysMemory for FakePhys {
        fn read(&self, pa: u64, buf: &mut [u8]) {
            let at = usize_from(pa - PHYS);
            buf.copy_from_slice(&self.0.borrow()[at..at + buf.len()]);
        }
        fn write(&self, pa: u64, data: &[u8]) {
            let at = usize_from(pa - PHYS);
            self.0.borrow_mut()[at..at + data.len()].copy_from_slice(data);
        }
    }

    const RAM: u64 = 0x4000_0000;

    /// A domain with 4 MiB of RAM at IPA 0x4000_0000 (two 2 MiB blocks, the
    /// second one mapped *below* the first in physical memory, so a copy
    /// across the boundary is two pieces), a read-only page and a device page.
    fn domain(tables: &mut VecTables) -> Stage2 {
        let mut s2 = Stage2::new(tables).unwrap();
        s2.map(tables, RAM, PHYS + (2 << 20), 2 << 20, Attributes::RAM)
            .unwrap();
        s2.map(tables, RAM + (2 << 20), PHYS, 2 << 20, Attributes::RAM)
            .unwrap();
        let ro = Attributes {
            access: Access::ReadOnly,
            ..Attributes::RAM
        };
        s2.map(tables, 0xc000_0000, PHYS + (4 << 20), PAGE_SIZE, ro)
            .unwrap();
        s2.map(
            tables,
            0x0a00_0000,
            0x0a00_0000,
            PAGE_SIZE,
            Attributes::DEVICE,
        )
        .unwrap();
        s2
    }

    #[test]
    fn copies_in_and_out_across_blocks() {
        let mut tables = VecTables::new(16);
        let s2 = domain(&mut tables);
        let phys = FakePhys::new();
        let mem = GuestMemory {
            stage2: s2,
            tables: &tables,
            phys: &phys,
        };
        let data: Vec<u8> = (0..64).collect();
        let at = RAM + (2 << 20) - 32;
        mem.write(at, &data).unwrap();
        let mut back = [0u8; 64];
        mem.read(at, &mut back).unwrap();
        assert_eq!(&back[..], &data[..]);
        // The bytes landed where the tables say: the end of the second
        // physical block and the start of the first.
        let raw = phys.0.borrow();
        assert_eq!(&raw[(4 << 20) - 32..4 << 20], &data[..32]);
        assert_eq!(&raw[..32], &data[32..]);
    }

    #[test]
    fn faults_are_refused_before_anything_moves() {
        let mut tables = VecTables::new(16);
        let s2 = domain(&mut tables);
        let phys = FakePhys::new();
        let mem = GuestMemory {
            stage2: s2,
            tables: &tables,
            phys: &phys,
        };
        let end = RAM + (4 << 20);
        // Runs off the end of RAM: nothing written, not even the mapped part.
        assert_eq!(mem.write(end - 8, &[0xaa; 16]), Err(HvError::Fault));
        assert!(phys.0.borrow().iter().all(|&b| b == 0));
        let mut buf = [0u8; 16];
        assert_eq!(mem.read(end - 8, &mut buf), Err(HvError::Fault));
        assert_eq!(mem.read(0, &mut buf), Err(HvError::Fault));
        assert_eq!(mem.read(u64::MAX - 4, &mut buf), Err(HvError::Fault));
        // Devices are not memory the hypervisor copies.
        assert_eq!(mem.read(0x0a00_0000, &mut buf), Err(HvError::Fault));
        // Read-only grants can be read but not written.
        assert_eq!(mem.read(0xc000_0000, &mut buf), Ok(()));
        assert_eq!(mem.write(0xc000_0000, &buf), Err(HvError::Fault));
        assert_eq!(mem.page(0xc000_0000, true), Err(HvError::Fault));
        assert_eq!(mem.page(0xc000_0000, false), Ok(PHYS + (4 << 20)));
        assert_eq!(mem.page(RAM + 1, false), Err(HvError::Inval));
        // An empty access touches nothing and succeeds anywhere.
        assert_eq!(mem.read(0, &mut []), Ok(()));
    }

    #[test]
    fn too_many_pieces_is_inval() {
        let mut tables = VecTables::new(16);
        let mut s2 = Stage2::new(&mut tables).unwrap();
        // Five pages, each mapped to a different, non-adjacent frame.
        for i in 0..5u64 {
            s2.map(
                &mut tables,
                RAM + i * PAGE_SIZE,
                PHYS + 2 * i * PAGE_SIZE,
                PAGE_SIZE,
                Attributes::RAM,
            )
            .unwrap();
        }
        let phys = FakePhys::new();
        let mem = GuestMemory {
            stage2: s2,
            tables: &tables,
            phys: &phys,
        };
        let mut buf = vec![0u8; 4 * usize_from(PAGE_SIZE)];
        assert_eq!(mem.read(RAM, &mut buf), Ok(()));
        let mut buf = vec![0u8; 4 * usize_from(PAGE_SIZE) + 1];
        assert_eq!(mem.read(RAM, &mut buf), Err(HvError::Inval));
    }
}
