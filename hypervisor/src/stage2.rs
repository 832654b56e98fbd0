//! Stage-2 translation tables: building them and walking them in software.
//!
//! Each domain has its own tables, rooted at a level-1 table (4 KiB granule,
//! 39-bit guest-physical space, `VTCR_EL2.SL0 = 1`). The same walk that the MMU
//! performs is done here in software, so the hypervisor translates and checks
//! every guest-supplied address through the caller's own view.
//!
//! The table memory is abstracted by [`TableMemory`], so this module is pure and
//! is tested on the host with tables in a `Vec`.
#![deny(unsafe_code)]

/// Bits of guest-physical address space (`VTCR_EL2.T0SZ = 64 - IPA_BITS`).
pub const IPA_BITS: u32 = 39;
/// Bits of physical address accepted in descriptors (`VTCR_EL2.PS = 0b010`).
pub const PA_BITS: u32 = 40;
const PAGE: u64 = 4096;
const BLOCK_2M: u64 = 2 << 20;
const OA_MASK: u64 = ((1 << 48) - 1) & !(PAGE - 1);

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
const MEMATTR_DEVICE_NGNRE: u64 = 0b0001 << 2;
const MEMATTR_MASK: u64 = 0b1111 << 2;
const S2AP_RO: u64 = 0b01 << 6;
const S2AP_RW: u64 = 0b11 << 6;
const S2AP_MASK: u64 = 0b11 << 6;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const XN: u64 = 1 << 54;

/// Reading translation tables, addressed by physical address: all a walk
/// needs.
pub trait TableRead {
    /// Reads entry `index` of the table at `table`.
    fn read(&self, table: u64, index: usize) -> u64;
}

/// Backing store for translation tables that are built and changed.
pub trait TableMemory: TableRead {
    /// Allocates a zeroed 4 KiB table and returns its physical address.
    fn alloc_table(&mut self) -> Option<u64>;
    /// Takes back a table that `alloc_table` handed out and that no
    /// translation uses any more.
    fn free_table(&mut self, table: u64);
    /// Writes entry `index` of the table at `table`.
    fn write(&mut self, table: u64, index: usize, value: u64);
}

/// What kind of memory a mapping is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemKind {
    /// Normal write-back cacheable RAM.
    Normal,
    /// Device-nGnRE MMIO, never executable.
    Device,
}

/// Access a guest has through a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only.
    ReadOnly,
    /// Read and write.
    ReadWrite,
}

/// The attributes of one mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// Memory type.
    pub kind: MemKind,
    /// Permission.
    pub access: Access,
    /// Whether the guest may execute from it.
    pub executable: bool,
}

impl Attributes {
    /// Ordinary guest RAM: normal memory, read-write, executable.
    pub const RAM: Attributes = Attributes {
        kind: MemKind::Normal,
        access: Access::ReadWrite,
        executable: true,
    };
    /// A passed-through device's registers.
    pub const DEVICE: Attributes = Attributes {
        kind: MemKind::Device,
        access: Access::ReadWrite,
        executable: false,
    };

    fn descriptor_bits(self) -> u64 {
        let mut bits = AF;
        bits |= match self.kind {
            MemKind::Normal => MEMATTR_NORMAL_WB | SH_INNER,
            MemKind::Device => MEMATTR_DEVICE_NGNRE,
        };
        bits |= match self.access {
            Access::ReadOnly => S2AP_RO,
            Access::ReadWrite => S2AP_RW,
        };
        if !self.executable || self.kind == MemKind::Device {
            bits |= XN;
        }
        bits
    }

    fn from_descriptor(desc: u64) -> Self {
        let kind = if desc & MEMATTR_MASK == MEMATTR_NORMAL_WB {
            MemKind::Normal
        } else {
            MemKind::Device
        };
        let access = if desc & S2AP_MASK == S2AP_RW {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        Attributes {
            kind,
            access,
            executable: desc & XN == 0,
        }
    }
}

/// Why a mapping was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// An address or size is not page-aligned.
    Unaligned,
    /// The range leaves the guest-physical or physical address space.
    OutOfRange,
    /// Part of the range is already mapped.
    AlreadyMapped,
    /// No memory for another table.
    NoMemory,
    /// Nothing is mapped there, or not as a single page.
    NotMapped,
}

/// One successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address.
    pub pa: u64,
    /// Bytes from `pa` to the end of the mapping block or page that holds it.
    pub contiguous: u64,
    /// The mapping's attributes.
    pub attributes: Attributes,
}

/// A domain's stage-2 translation tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2 {
    root: u64,
}

fn index(ipa: u64, level: u32) -> usize {
    ((ipa >> (12 + 9 * (3 - level))) & 0x1ff) as usize
}

fn level_size(level: u32) -> u64 {
    1 << (12 + 9 * (3 - level))
}

impl Stage2 {
    /// Allocates an empty root table.
    pub fn new(mem: &mut impl TableMemory) -> Result<Self, MapError> {
        Ok(Self {
            root: mem.alloc_table().ok_or(MapError::NoMemory)?,
        })
    }

    /// Physical address of the root table (the BADDR of `VTTBR_EL2`).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Maps `size` bytes of guest-physical `ipa` to physical `pa`, using 2 MiB
    /// blocks where both sides are aligned and 4 KiB pages elsewhere. On error
    /// nothing that was already there is changed, though tables may have been
    /// added.
    pub fn map(
        &mut self,
        mem: &mut impl TableMemory,
        ipa: u64,
        pa: u64,
        size: u64,
        attributes: Attributes,
    ) -> Result<(), MapError> {
        if !ipa.is_multiple_of(PAGE) || !pa.is_multiple_of(PAGE) || !size.is_multiple_of(PAGE) {
            return Err(MapError::Unaligned);
        }
        let ipa_end = ipa.checked_add(size).ok_or(MapError::OutOfRange)?;
        let pa_end = pa.checked_add(size).ok_or(MapError::OutOfRange)?;
        if ipa_end > 1 << IPA_BITS || pa_end > 1 << PA_BITS {
            return Err(MapError::OutOfRange);
        }
        // Check first, so that a refused mapping leaves no partial state.
        let mut off = 0;
        while off < size {
            if self.translate(mem, ipa + off).is_some() {
                return Err(MapError::AlreadyMapped);
            }
            off += PAGE;
        }
        let bits = attributes.descriptor_bits();
        let mut off = 0;
        while off < size {
            let (cur_ipa, cur_pa) = (ipa + off, pa + off);
            let block = cur_ipa % BLOCK_2M == 0 && cur_pa % BLOCK_2M == 0 && size - off >= BLOCK_2M;
            let (level, step) = if block { (2, BLOCK_2M) } else { (3, PAGE) };
            let table = self.table_for(mem, cur_ipa, level)?;
            let kind = if level == 3 { TABLE_OR_PAGE } else { 0 };
            mem.write(table, index(cur_ipa, level), cur_pa | bits | kind | VALID);
            off += step;
        }
        Ok(())
    }

    /// Returns the table at `level` that covers `ipa`, creating tables on the way.
    fn table_for(&self, mem: &mut impl TableMemory, ipa: u64, level: u32) -> Result<u64, MapError> {
        let mut table = self.root;
        for l in 1..level {
            let idx = index(ipa, l);
            let desc = mem.read(table, idx);
            table = if desc & VALID == 0 {
                let next = mem.alloc_table().ok_or(MapError::NoMemory)?;
                mem.write(table, idx, next | TABLE_OR_PAGE | VALID);
                next
            } else if desc & TABLE_OR_PAGE != 0 {
                desc & OA_MASK
            } else {
                return Err(MapError::AlreadyMapped);
            };
        }
        Ok(table)
    }

    /// Removes the 4 KiB page mapping at `ipa` and returns the physical page it
    /// mapped. Block mappings are refused (`NotMapped`). Tables left empty
    /// (the level-3 table, then the level-2 table above it) go back to `mem`,
    /// so that mapping and unmapping never uses up table memory. The caller
    /// must invalidate the TLB entries for `ipa` afterwards (all levels, which
    /// also drops cached walks through the freed tables).
    pub fn unmap_page(&mut self, mem: &mut impl TableMemory, ipa: u64) -> Result<u64, MapError> {
        if !ipa.is_multiple_of(PAGE) {
            return Err(MapError::Unaligned);
        }
        if ipa >= 1 << IPA_BITS {
            return Err(MapError::OutOfRange);
        }
        // The tables on the way down: [root, level 2, level 3].
        let mut path = [self.root; 3];
        for level in 1..3 {
            let desc = mem.read(path[level as usize - 1], index(ipa, level));
            if desc & VALID == 0 || desc & TABLE_OR_PAGE == 0 {
                return Err(MapError::NotMapped);
            }
            path[level as usize] = desc & OA_MASK;
        }
        let idx = index(ipa, 3);
        let desc = mem.read(path[2], idx);
        if desc & VALID == 0 || desc & TABLE_OR_PAGE == 0 {
            return Err(MapError::NotMapped);
        }
        mem.write(path[2], idx, 0);
        // Free the level-3 and then the level-2 table once empty (never the root).
        for level in (2..=3).rev() {
            let table = path[level as usize - 1];
            if (0..512).any(|i| mem.read(table, i) != 0) {
                break;
            }
            mem.write(path[level as usize - 2], index(ipa, level - 1), 0);
            mem.free_table(table);
        }
        Ok(desc & OA_MASK)
    }

    /// Counts the tables of the tree, the root included.
    pub fn table_count(&self, mem: &impl TableRead) -> usize {
        let mut count = 1;
        for i1 in 0..512 {
            let d1 = mem.read(self.root, i1);
            if d1 & VALID == 0 || d1 & TABLE_OR_PAGE == 0 {
                continue;
            }
            count += 1;
            let l2 = d1 & OA_MASK;
            count += (0..512)
                .filter(|&i2| {
                    let d2 = mem.read(l2, i2);
                    d2 & VALID != 0 && d2 & TABLE_OR_PAGE != 0
                })
                .count();
        }
        count
    }

    /// Returns every table of the tree (the root and the tables below it) to
    /// `mem` and says how many there were. The caller makes sure that nothing
    /// translates through them any more: the domain no longer runs, and its
    /// VMID's TLB entries are invalidated before the VMID is used again.
    pub fn free(self, mem: &mut impl TableMemory) -> usize {
        let mut freed = 0;
        for i1 in 0..512 {
            let d1 = mem.read(self.root, i1);
            if d1 & VALID == 0 || d1 & TABLE_OR_PAGE == 0 {
                continue;
            }
            let l2 = d1 & OA_MASK;
            for i2 in 0..512 {
                let d2 = mem.read(l2, i2);
                if d2 & VALID != 0 && d2 & TABLE_OR_PAGE != 0 {
                    mem.free_table(d2 & OA_MASK);
                    freed += 1;
                }
            }
            mem.free_table(l2);
            freed += 1;
        }
        mem.free_table(self.root);
        freed + 1
    }

    /// Walks the tables as the MMU would; `None` if `ipa` is not mapped.
    pub fn translate(&self, mem: &impl TableRead, ipa: u64) -> Option<Translation> {
        if ipa >= 1 << IPA_BITS {
            return None;
        }
        let mut table = self.root;
        for level in 1..=3 {
            let desc = mem.read(table, index(ipa, level));
            if desc & VALID == 0 {
                return None;
            }
            let is_leaf = level == 3 || desc & TABLE_OR_PAGE == 0;
            if level == 3 && desc & TABLE_OR_PAGE == 0 {
                return None; // reserved encoding at level 3
            }
            if is_leaf {
                let size = level_size(level);
                let offset = ipa & (size - 1);
                return Some(Translation {
                    pa: (desc & OA_MASK & !(size - 1)) + offset,
                    contiguous: size - offset,
                    attributes: Attributes::from_descriptor(desc),
                });
            }
            table = desc & OA_MASK;
        }
        None
    }
}

/// Host-side table memory for tests: tables live in a vector, "physical"
/// addresses are synthetic.
#[cfg(test)]
pub mod fake {
    use super::{TableMemory, TableRead};

    /// Tables in a `Vec`, at synthetic physical addresses from `0x1000_0000`.
    pub struct VecTables {
        /// The tables, in allocation order.
        pub tables: Vec<[u64; 512]>,
        /// How many tables may be allocated.
        pub limit: usize,
        /// The tables given back with `free_table`, in order.
        pub freed: Vec<u64>,
    }

    impl VecTables {
        /// An empty store that hands out at most `limit` tables.
        pub fn new(limit: usize) -> Self {
            Self {
                tables: Vec::new(),
                limit,
                freed: Vec::new(),
            }
        }
        fn slot(pa: u64) -> usize {
            ((pa - 0x1000_0000) / 4096) as usize
        }
    }

    impl TableRead for VecTables {
        fn read(&self, table: u64, index: usize) -> u64 {
            self.tables[Self::slot(table)][index]
        }
    }

    impl TableMemory for VecTables {
        fn alloc_table(&mut self) -> Option<u64> {
            if self.tables.len() == self.limit {
                return None;
            }
            self.tables.push([0; 512]);
            Some(0x1000_0000 + 4096 * (self.tables.len() as u64 - 1))
        }
        fn free_table(&mut self, table: u64) {
            assert!(Self::slot(table) < self.tables.len(), "not a table");
            assert!(!self.freed.contains(&table), "double free of {table:#x}");
            self.freed.push(table);
        }
        fn write(&mut self, table: u64, index: usize, value: u64) {
            self.tables[Self::slot(table)][index] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::VecTables;
    use super::*;

    #[test]
    fn unmaps_and_remaps_single_pages() {
        let mut mem = VecTables::new(64);
        let mut s2 = Stage2::new(&mut mem).unwrap();
        let ro = Attributes {
            access: Access::ReadOnly,
            executable: false,
            ..Attributes::RAM
        };
        s2.map(&mut mem, 0xc000_1000, 0x5000_3000, PAGE, ro)
            .unwrap();
        let t = s2.translate(&mem, 0xc000_1008).unwrap();
        assert_eq!((t.pa, t.attributes), (0x5000_3008, ro));
        assert_eq!(s2.unmap_page(&mut mem, 0xc000_1000), Ok(0x5000_3000));
        assert!(s2.translate(&mem, 0xc000_1000).is_none());
        assert_eq!(
            s2.unmap_page(&mut mem, 0xc000_1000),
            Err(MapError::NotMapped)
        );
        assert_eq!(
            s2.unmap_page(&mut mem, 0xc000_1004),
            Err(MapError::Unaligned)
        );
        // The slot can be mapped again, elsewhere.
        s2.map(&mut mem, 0xc000_1000, 0x5000_4000, PAGE, Attributes::RAM)
            .unwrap();
        assert_eq!(s2.translate(&mem, 0xc000_1000).unwrap().pa, 0x5000_4000);
        // Blocks are not unmapped page by page.
        s2.map(&mut mem, 0x4000_0000, 0x6000_0000, 2 << 20, Attributes::RAM)
            .unwrap();
        assert_eq!(
            s2.unmap_page(&mut mem, 0x4000_0000),
            Err(MapError::NotMapped)
        );
        assert!(s2.translate(&mem, 0x4000_0000).is_some());
    }

    #[test]
    fn maps_ram_with_blocks_and_translates() {
        let mut mem = VecTables::new(64);
        let mut s2 = Stage2::new(&mut mem).unwrap();
        s2.map(
            &mut mem,
            0x4000_0000,
            0x5000_0000,
            32 << 20,
            Attributes::RAM,
        )
        .unwrap();
        // root + one level-2 table; no level-3 tables for aligned 2 MiB blocks
        assert_eq!(mem.tables.len(), 2);
        let t = s2.translate(&mem, 0x4012_3456).unwrap();
        assert_eq!(t.pa, 0x5012_3456);
        assert_eq!(t.attributes, Attributes::RAM);
        assert_eq!(t.contiguous, 0x4020_0000 - 0x4012_3456);
        assert!(s2.translate(&mem, 0x4200_0000).is_none());
        assert!(s2.translate(&mem, 0x3fff_f000).is_none());
        assert!(s2.translate(&mem, 1 << 40).is_none());
    }

    #[test]
    fn maps_devices_with_pages() {
        let mut mem = VecTables::new(64);
        let mut s2 = Stage2::new(&mut mem).unwrap();
        s2.map(
            &mut mem,
            0x0a00_3000,
            0x0a00_3000,
            0x1000,
            Attributes::DEVICE,
        )
        .unwrap();
        let t = s2.translate(&mem, 0x0a00_3e00).unwrap();
        assert_eq!(t.pa, 0x0a00_3e00);
        assert_eq!(t.attributes.kind, MemKind::Device);
        assert!(!t.attributes.executable);
        assert!(s2.translate(&mem, 0x0a00_4000).is_none());
        assert!(s2.translate(&mem, 0x0a00_2fff).is_none());
    }

    #[test]
    fn refuses_bad_ranges_and_overlaps() {
        let mut mem = VecTables::new(64);
        let mut s2 = Stage2::new(&mut mem).unwrap();
        assert_eq!(
            s2.map(&mut mem, 0x1001, 0, 4096, Attributes::RAM),
            Err(MapError::Unaligned)
        );
        assert_eq!(
            s2.map(&mut mem, (1 << 39) - 4096, 0, 8192, Attributes::RAM),
            Err(MapError::OutOfRange)
        );
        assert_eq!(
            s2.map(&mut mem, !0xfff, 0, 8192, Attributes::RAM),
            Err(MapError::OutOfRange)
        );
        s2.map(&mut mem, 0x4000_0000, 0x5000_0000, 4 << 20, Attributes::RAM)
            .unwrap();
        assert_eq!(
            s2.map(&mut mem, 0x403f_f000, 0x6000_0000, 8192, Attributes::RAM),
            Err(MapError::AlreadyMapped)
        );
        // The refused mapping changed nothing.
        assert!(s2.translate(&mem, 0x4040_0000).is_none());
    }

    #[test]
    fn mixed_alignment_uses_pages_then_blocks() {
        let mut mem = VecTables::new(64);
        let mut s2 = Stage2::new(&mut mem).unwrap();
        s2.map(
            &mut mem,
            0x401f_f000,
            0x501f_f000,
            (2 << 20) + 4096,
            Attributes::RAM,
        )
        .unwrap();
        assert_eq!(s2.translate(&mem, 0x401f_f010).unwrap().pa, 0x501f_f010);
        assert_eq!(s2.translate(&mem, 0x4020_0000).unwrap().contiguous, 2 << 20);
        assert_eq!(s2.translate(&mem, 0x403f_ffff).unwrap().pa, 0x503f_ffff);
    }

    #[test]
    fn freeing_returns_every_table_once() {
        let mut mem = VecTables::new(64);
        let mut s2 = Stage2::new(&mut mem).unwrap();
        // RAM in blocks and a page-aligned tail, a device page, a grant page.
        s2.map(
            &mut mem,
            0x4800_0000,
            0x4800_0000,
            (64 << 20) + 4096,
            Attributes::RAM,
        )
        .unwrap();
        s2.map(&mut mem, 0x0a00_3000, 0x0a00_3000, 4096, Attributes::DEVICE)
            .unwrap();
        s2.map(&mut mem, 0xc000_0000, 0x5000_0000, 4096, Attributes::RAM)
            .unwrap();
        s2.unmap_page(&mut mem, 0xc000_0000).unwrap();
        // The unmap gave back the grant window's two tables already.
        assert_eq!(mem.freed.len(), 2);
        let allocated = mem.tables.len();
        assert_eq!(s2.free(&mut mem), allocated - 2);
        let mut freed = mem.freed.clone();
        freed.sort_unstable();
        let all: Vec<u64> = (0..allocated as u64)
            .map(|i| 0x1000_0000 + 4096 * i)
            .collect();
        assert_eq!(freed, all, "every table, once");
        // The root goes last, after the tables it points to.
        assert_eq!(mem.freed.last(), Some(&s2.root()));
    }

    #[test]
    fn unmapping_the_last_page_frees_its_tables() {
        let mut mem = VecTables::new(64);
        let mut s2 = Stage2::new(&mut mem).unwrap();
        // One page in each of two 2 MiB regions of the grant window: one
        // level-2 table and two level-3 tables below the root.
        for ipa in [0xc000_0000, 0xc020_0000, 0xc020_1000] {
            s2.map(&mut mem, ipa, 0x5000_0000, PAGE, Attributes::RAM)
                .unwrap();
        }
        assert_eq!(s2.table_count(&mem), 4);
        s2.unmap_page(&mut mem, 0xc020_0000).unwrap();
        assert_eq!(s2.table_count(&mem), 4, "0xc020_1000 still uses its table");
        assert!(mem.freed.is_empty());
        s2.unmap_page(&mut mem, 0xc020_1000).unwrap();
        assert_eq!(s2.table_count(&mem), 3);
        assert_eq!(mem.freed.len(), 1);
        s2.unmap_page(&mut mem, 0xc000_0000).unwrap();
        assert_eq!(s2.table_count(&mem), 1, "only the root is left");
        assert_eq!(mem.freed.len(), 3);
        assert!(s2.translate(&mem, 0xc000_0000).is_none());
        // The space maps again, with new tables.
        s2.map(&mut mem, 0xc020_1000, 0x5000_1000, PAGE, Attributes::RAM)
            .unwrap();
        assert_eq!(s2.translate(&mem, 0xc020_1000).unwrap().pa, 0x5000_1000);
        assert_eq!(s2.free(&mut mem), 3);
    }

    #[test]
    fn out_of_table_memory_is_an_error() {
        let mut mem = VecTables::new(2);
        let mut s2 = Stage2::new(&mut mem).unwrap();
        s2.map(&mut mem, 0x4000_0000, 0x5000_0000, 2 << 20, Attributes::RAM)
            .unwrap();
        assert_eq!(
            s2.map(&mut mem, 0x8000_0000, 0x5000_0000, 4096, Attributes::RAM),
            Err(MapError::NoMemory)
        );
    }
}
