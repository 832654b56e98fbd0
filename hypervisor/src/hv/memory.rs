//! Memory the hypervisor manages for domains: the frame pool (guest RAM and
//! stage-2 tables), each domain's table quota, and access to guest memory
//! through the domain's own stage-2 view (the portable `guest_mem`).

use parapet_abi::layout::PAGE_SIZE;
use parapet_abi::HvError;

use super::{hvprintln, Hypervisor};
use crate::arch::phys;
use crate::frames::FrameAllocator;
use crate::guest_mem::{GuestMemory, PhysMemory};
use crate::stage2::{TableMemory, TableRead};

/// Frames the pool can hold: RAM from the guest pool's base up to 4 GiB (the
/// most `memory_mib` allows), 2.75 GiB in 4 KiB frames.
const POOL_WORDS: usize =
    ((1 << 32) - crate::convert::usize_from(parapet_abi::layout::GUEST_POOL_BASE)) / 4096 / 64;

/// The frame pool of guest RAM and stage-2 tables.
pub(super) type Frames = FrameAllocator<POOL_WORDS>;

/// Stage-2 table frames each domain may use: reserved when it is created, so
/// that no other domain can take them, and refused (`NoMem`) beyond. A
/// domain's RAM takes a handful (2 MiB blocks); the rest serves grant
/// mappings, one level-3 table per 2 MiB of the grant window in use.
pub(super) const TABLE_QUOTA: usize = 128;

/// Physical memory seen through the hypervisor's identity map.
pub(super) struct Phys;

impl PhysMemory for Phys {
    fn read(&self, pa: u64, buf: &mut [u8]) {
        // SAFETY: `guest_mem` passes only ranges it translated through a
        // domain's stage-2 as RAM of that domain (or frames granted to it);
        // the identity map covers all RAM, and no Rust reference aliases
        // guest RAM.
        unsafe { phys::read_bytes(pa, buf) }
    }

    fn write(&self, pa: u64, data: &[u8]) {
        // SAFETY: as for `read`, and the range was checked writable.
        unsafe { phys::write_bytes(pa, data) }
    }
}

/// Reads stage-2 tables in place (every table is a frame of the pool).
pub(super) struct PhysTables;

impl TableRead for PhysTables {
    fn read(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` is a stage-2 table a domain's tree points to, a
        // page-aligned frame of the pool; index < 512 by construction.
        unsafe { phys::read_u64(table + 8 * index as u64) }
    }
}

/// One domain's stage-2 table memory: frames from its reservation in the
/// pool, counted against [`TABLE_QUOTA`].
pub(super) struct DomainTables<'a> {
    pub frames: &'a mut Frames,
    pub used: &'a mut usize,
}

impl TableRead for DomainTables<'_> {
    fn read(&self, table: u64, index: usize) -> u64 {
        PhysTables.read(table, index)
    }
}

impl TableMemory for DomainTables<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        if *self.used >= TABLE_QUOTA {
            return None;
        }
        let pa = self.frames.alloc_reserved()?;
        // SAFETY: the frame was just taken from the pool and is ours.
        unsafe { phys::zero(pa, PAGE_SIZE) };
        *self.used += 1;
        Some(pa)
    }

    fn free_table(&mut self, table: u64) {
        match self.frames.free_reserved(table) {
            Ok(()) => *self.used -= 1,
            Err(e) => hvprintln!("stage-2 table {table:#x} not freed: {e:?}"),
        }
    }

    fn write(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as for `read`; the table belongs to this domain's tree,
        // which only the `HV` lock holder changes.
        unsafe { phys::write_u64(table + 8 * index as u64, value) }
    }
}

impl Hypervisor {
    /// Domain `d`'s table memory.
    pub(super) fn tables_of(&mut self, d: usize) -> DomainTables<'_> {
        DomainTables {
            frames: &mut self.frames,
            used: &mut self.domains[d].tables_used,
        }
    }

    /// Domain `d`'s memory as it sees it.
    pub(super) fn guest(
        &self,
        d: usize,
    ) -> Result<GuestMemory<'static, PhysTables, Phys>, HvError> {
        Ok(GuestMemory {
            stage2: self.domains[d].stage2.ok_or(HvError::Fault)?,
            tables: &PhysTables,
            phys: &Phys,
        })
    }

    /// Copies guest memory into `buf` (read once, into hypervisor memory).
    pub(super) fn copy_from_guest(
        &self,
        d: usize,
        ipa: u64,
        buf: &mut [u8],
    ) -> Result<(), HvError> {
        self.guest(d)?.read(ipa, buf)
    }

    /// Copies `data` into guest memory the domain may write.
    pub(super) fn copy_to_guest(&self, d: usize, ipa: u64, data: &[u8]) -> Result<(), HvError> {
        self.guest(d)?.write(ipa, data)
    }

    /// Prints how much of the frame pool is free.
    pub(super) fn report_memory(&self) {
        hvprintln!(
            "memory: {} of {} frames free ({} free at start)",
            self.frames.free(),
            self.frames.total(),
            self.frames_at_start
        );
    }
}
