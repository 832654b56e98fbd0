//! A guest's memory: the map of its RAM, pages for its own use, heap
//! statistics, and stacks with a guard page underneath.
//!
//! # The memory map
//! From the bottom of RAM (`StartInfo::ram_base`): the image (code, data,
//! then BSS, which holds each vCPU's 64 KiB boot stack above a guard page),
//! the heap (everything up to the reserved pages), and at the top the pages
//! the hypervisor reserves (VPSRs, event page, grant table, start info).
//! [`map`] returns it at run time.
//!
//! # Guard pages
//! At start-up the runtime replaces the boot identity map (1 GiB blocks) by
//! page tables that map the domain's RAM with 4 KiB pages, so that single
//! pages can be unmapped: the page under each boot stack, and under every
//! [`Stack`]. A stack that overflows faults on its guard page, and the fault
//! is reported as a stack overflow naming the stack (the fatal-exception
//! path runs on a separate emergency stack), not as later corruption.
#![deny(unsafe_code)]

extern crate alloc;

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use parapet_abi::layout::{reserved_top_base, MAX_VCPUS, PAGE_SIZE};

use crate::arch;

const ENTRIES: usize = 512;
const BLOCK_2M: u64 = 2 << 20;
const GIB: u64 = 1 << 30;
/// A level-2 block or level-3 page of normal write-back memory, inner
/// shareable, accessed (as the boot map's RAM blocks).
const NORMAL_BLOCK: u64 = 0x705;
const NORMAL_PAGE: u64 = 0x707;
const TABLE: u64 = 0b11;
/// `AttrIndx`, bits 4:2 of a block or page descriptor.
const ATTR_INDEX: u64 = 0x1c;
const VALID: u64 = 1;
const ADDRESS: u64 = 0x0000_ffff_ffff_f000;

/// One 4 KiB translation table.
#[derive(Clone)]
#[repr(C, align(4096))]
pub struct Table(pub [u64; ENTRIES]);

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Table@{:#x}", self as *const Table as usize)
    }
}

fn table() -> &'static mut Table {
    Box::leak(Box::new(Table([0; ENTRIES])))
}

fn address_of(t: &Table) -> u64 {
    t as *const Table as u64
}

/// Why a memory request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryError {
    /// The heap has no room.
    OutOfMemory,
    /// The address is not in the RAM the page tables map with pages.
    NotPaged,
    /// Every guard slot is in use.
    TooManyGuards,
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemoryError::OutOfMemory => "out of memory",
            MemoryError::NotPaged => "not in the RAM mapped with pages",
            MemoryError::TooManyGuards => "too many guard pages",
        })
    }
}

/// The stage-1 tables that map RAM with pages (portable: built and changed
/// here, installed by `arch`).
#[derive(Debug)]
pub struct PageTables {
    l1: &'static mut Table,
    /// The level-3 tables, one per 2 MiB of paged RAM, from `paged.start`.
    l3: Vec<&'static mut Table>,
    paged: Range<u64>,
}

impl PageTables {
    /// Copies the boot map `boot_l1` (1 GiB blocks) and maps the 1 GiB that
    /// holds `ram` with 2 MiB blocks, and `ram` itself with 4 KiB pages, all
    /// identity and with the attributes the boot map gives RAM. `None` if
    /// `ram` is not inside one GiB block of normal memory of the boot map.
    pub fn build(boot_l1: &[u64; ENTRIES], ram: Range<u64>) -> Option<Self> {
        let gib = ram.start / GIB;
        let index = usize::try_from(gib).ok()?;
        if ram.is_empty()
            || (ram.end - 1) / GIB != gib
            || index >= ENTRIES
            || boot_l1[index] & 0b11 != 0b01
            || boot_l1[index] & ATTR_INDEX != NORMAL_BLOCK & ATTR_INDEX
        {
            return None;
        }
        let start = ram.start & !(BLOCK_2M - 1);
        let end = ram.end.next_multiple_of(BLOCK_2M);
        let l1 = table();
        l1.0 = *boot_l1;
        let l2 = table();
        let gib_base = gib * GIB;
        let mut l3 = Vec::new();
        for (i, entry) in l2.0.iter_mut().enumerate() {
            let at = gib_base + i as u64 * BLOCK_2M;
            if (start..end).contains(&at) {
                let t = table();
                for (j, page) in t.0.iter_mut().enumerate() {
                    *page = (at + j as u64 * PAGE_SIZE) | NORMAL_PAGE;
                }
                *entry = address_of(t) | TABLE;
                l3.push(t);
            } else {
                *entry = at | NORMAL_BLOCK;
            }
        }
        l1.0[index] = address_of(l2) | TABLE;
        // The level-2 table lives as long as the level-1 one: leaked on purpose.
        Some(Self {
            l1,
            l3,
            paged: start..end,
        })
    }

    /// The root to install.
    pub fn root(&self) -> u64 {
        address_of(self.l1)
    }

    fn entry(&mut self, va: u64) -> Result<&mut u64, MemoryError> {
        if !self.paged.contains(&va) {
            return Err(MemoryError::NotPaged);
        }
        let off = va - self.paged.start;
        let t = usize::try_from(off / BLOCK_2M).map_err(|_| MemoryError::NotPaged)?;
        let p = usize::try_from((off % BLOCK_2M) / PAGE_SIZE).map_err(|_| MemoryError::NotPaged)?;
        Ok(&mut self.l3[t].0[p])
    }

    /// Unmaps the page at `va` (the caller then drops its translation).
    pub fn unmap(&mut self, va: u64) -> Result<(), MemoryError> {
        let e = self.entry(va)?;
        *e &= !VALID;
        Ok(())
    }

    /// Maps the page at `va` again.
    pub fn remap(&mut self, va: u64) -> Result<(), MemoryError> {
        let e = self.entry(va)?;
        *e = (va & ADDRESS) | NORMAL_PAGE;
        Ok(())
    }

    /// Whether the page at `va` is mapped.
    pub fn is_mapped(&mut self, va: u64) -> bool {
        self.entry(va).map(|e| *e & VALID != 0).unwrap_or(true)
    }
}

static TABLES: spin::Mutex<Option<PageTables>> = spin::Mutex::new(None);

/// A guard page and what it protects.
#[derive(Clone, Copy)]
struct Guard {
    page: u64,
    name: [u8; 24],
    len: u8,
}

const MAX_GUARDS: usize = 64;
static GUARDS: spin::Mutex<[Option<Guard>; MAX_GUARDS]> = spin::Mutex::new([None; MAX_GUARDS]);

fn register_guard(page: u64, name: &str) -> Result<(), MemoryError> {
    let mut g = Guard {
        page,
        name: [0; 24],
        len: 0,
    };
    let n = name.len().min(g.name.len());
    let n = (0..=n)
        .rev()
        .find(|&i| name.is_char_boundary(i))
        .unwrap_or(0);
    g.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    g.len = u8::try_from(n).unwrap_or(0);
    crate::irq::without_interrupts(|| {
        let mut guards = GUARDS.lock();
        let slot = guards
            .iter_mut()
            .find(|s| s.is_none())
            .ok_or(MemoryError::TooManyGuards)?;
        *slot = Some(g);
        Ok(())
    })
}

fn unregister_guard(page: u64) {
    crate::irq::without_interrupts(|| {
        for slot in GUARDS.lock().iter_mut() {
            if slot.is_some_and(|g| g.page == page) {
                *slot = None;
            }
        }
    });
}

/// Unmaps the page at `page` as the guard of `name` (if the RAM is paged).
fn guard(page: u64, name: &str) -> Result<(), MemoryError> {
    register_guard(page, name)?;
    let unmapped = crate::irq::without_interrupts(|| match TABLES.lock().as_mut() {
        Some(t) => t.unmap(page).map(|()| true),
        None => Ok(false),
    });
    match unmapped {
        Ok(true) => {
            arch::invalidate_page(page);
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => {
            unregister_guard(page);
            Err(e)
        }
    }
}

fn unguard(page: u64) {
    let remapped = crate::irq::without_interrupts(|| {
        TABLES
            .lock()
            .as_mut()
            .is_some_and(|t| t.remap(page).is_ok())
    });
    if remapped {
        arch::invalidate_page(page);
    }
    unregister_guard(page);
}

/// If `addr` is in a guard page, the name of the stack it guards: a fault
/// there is that stack's overflow.
pub fn guarded_stack(addr: u64) -> Option<([u8; 24], usize)> {
    let page = addr & !(PAGE_SIZE - 1);
    // No lock held for long and no allocation: called on the fatal path.
    let guards = GUARDS.try_lock()?;
    guards
        .iter()
        .flatten()
        .find(|g| g.page == page)
        .map(|g| (g.name, usize::from(g.len)))
}

/// Whether guard pages are in force (the runtime built its page tables).
pub fn guards_active() -> bool {
    crate::irq::without_interrupts(|| TABLES.lock().is_some())
}

/// Builds the paged map of `ram`, installs it on this vCPU and unmaps the
/// guard page under every vCPU's boot stack. Called once by the runtime on
/// vCPU 0; secondary vCPUs install the same root with [`install_on_this_vcpu`].
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn init_paging(boot_l1: &[u64; ENTRIES], ram: Range<u64>) -> Result<(), MemoryError> {
    let tables = PageTables::build(boot_l1, ram).ok_or(MemoryError::NotPaged)?;
    let root = tables.root();
    crate::irq::without_interrupts(|| *TABLES.lock() = Some(tables));
    arch::install_translation_root(root);
    let stacks = arch::boot_stacks();
    for vcpu in 0..MAX_VCPUS {
        let page = stacks + vcpu * arch::STACK_SLOT as u64;
        let mut name = [0u8; 24];
        let text = vcpu_stack_name(vcpu, &mut name);
        guard(page, text)?;
    }
    Ok(())
}

fn vcpu_stack_name(vcpu: u64, buf: &mut [u8; 24]) -> &str {
    use fmt::Write;
    struct W<'a>(&'a mut [u8; 24], usize);
    impl fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let n = s.len().min(self.0.len() - self.1);
            self.0[self.1..self.1 + n].copy_from_slice(&s.as_bytes()[..n]);
            self.1 += n;
            Ok(())
        }
    }
    let mut w = W(buf, 0);
    let _ = write!(w, "vCPU {vcpu} boot stack");
    let len = w.1;
    core::str::from_utf8(&buf[..len]).unwrap_or("boot stack")
}

/// Installs the paged map on a secondary vCPU (after vCPU 0 built it).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn install_on_this_vcpu() {
    let root = crate::irq::without_interrupts(|| TABLES.lock().as_ref().map(PageTables::root));
    if let Some(root) = root {
        arch::install_translation_root(root);
    }
}

/// A stack for a thread: `size` bytes (rounded up to pages) above a guard
/// page, from the heap. Dropping it maps the guard page again and frees it;
/// drop it only once no thread runs on it.
#[derive(Debug)]
pub struct Stack {
    base: u64,
    pages: usize,
}

impl Stack {
    /// Allocates a stack of at least `size` bytes named `name` (the name a
    /// stack overflow is reported with).
    pub fn new(size: usize, name: &str) -> Result<Self, MemoryError> {
        let pages = size.div_ceil(PAGE_SIZE as usize).max(1) + 1;
        let base = Pages::alloc(pages).ok_or(MemoryError::OutOfMemory)?.leak();
        if let Err(e) = guard(base, name) {
            Pages {
                addr: base,
                count: pages,
            }
            .free_now();
            return Err(e);
        }
        Ok(Self { base, pages })
    }

    /// The top of the stack (exclusive): the initial stack pointer.
    pub fn top(&self) -> u64 {
        self.base + self.pages as u64 * PAGE_SIZE
    }

    /// The usable bytes (the guard page excluded).
    pub fn size(&self) -> usize {
        (self.pages - 1) * PAGE_SIZE as usize
    }

    /// The lowest usable address (just above the guard page).
    pub fn bottom(&self) -> u64 {
        self.base + PAGE_SIZE
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        unguard(self.base);
        Pages {
            addr: self.base,
            count: self.pages,
        }
        .free_now();
    }
}

/// Zeroed, page-aligned pages of this domain's RAM, taken from the heap.
/// Freed when dropped (unless [`Pages::leak`]ed).
#[derive(Debug)]
pub struct Pages {
    addr: u64,
    count: usize,
}

impl Pages {
    fn layout(count: usize) -> Option<Layout> {
        let size = count.checked_mul(PAGE_SIZE as usize)?;
        Layout::from_size_align(size, PAGE_SIZE as usize).ok()
    }

    /// `count` zeroed pages; `None` if the heap has no room.
    pub fn alloc(count: usize) -> Option<Self> {
        let layout = Self::layout(count.max(1))?;
        #[allow(unsafe_code)]
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        (!p.is_null()).then(|| Self {
            addr: p as u64,
            count: count.max(1),
        })
    }

    /// The first page's address (guest-physical = virtual: identity map).
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// How many pages.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Keeps the pages for good; returns their address.
    pub fn leak(self) -> u64 {
        let addr = self.addr;
        core::mem::forget(self);
        addr
    }

    fn free_now(self) {
        drop(self);
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        if let Some(layout) = Self::layout(self.count) {
            #[allow(unsafe_code)]
            // SAFETY: `addr` came from `alloc_zeroed` with this layout and is
            // given back once (the value is being dropped).
            unsafe {
                dealloc(self.addr as *mut u8, layout)
            };
        }
    }
}

/// The regions of a domain's RAM (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryMap {
    /// All of the domain's RAM.
    pub ram: Range<u64>,
    /// The image: code, data and BSS (boot stacks included).
    pub image: Range<u64>,
    /// The boot stacks with their guard pages (inside the image's BSS).
    pub boot_stacks: Range<u64>,
    /// The heap, where [`Pages`] and [`Stack`]s come from.
    pub heap: Range<u64>,
    /// The pages the hypervisor reserves at the top.
    pub reserved: Range<u64>,
}

/// This domain's memory map (empty ranges before the runtime started).
pub fn map() -> MemoryMap {
    let (ram, reserved) = match crate::start_info() {
        Some(info) => {
            let end = info.ram_base + info.ram_size;
            let top = reserved_top_base(info.ram_base, info.ram_size);
            (info.ram_base..end, top..end)
        }
        None => (0..0, 0..0),
    };
    let stacks = arch::boot_stacks();
    let heap = crate::heap::region();
    MemoryMap {
        image: ram.start..arch::image_end() as u64,
        boot_stacks: stacks..stacks + arch::STACK_SLOT as u64 * MAX_VCPUS,
        heap: heap.start as u64..heap.end as u64,
        ram,
        reserved,
    }
}

pub use crate::heap::{stats as heap_stats, HeapStats};

#[cfg(test)]
mod tests {
    use super::*;

    fn boot_l1() -> [u64; ENTRIES] {
        let mut t = [0; ENTRIES];
        t[0] = 0x0060_0000_0000_0401;
        t[1] = 0x4000_0705;
        t[2] = 0x8000_0705;
        t[3] = 0xc000_0705;
        t
    }

    #[test]
    fn ram_is_mapped_with_pages_and_the_rest_as_before() {
        let ram = 0x4000_0000..0x4000_0000 + (8 << 20);
        let mut t = PageTables::build(&boot_l1(), ram.clone()).unwrap();
        assert_eq!(t.l1.0[0], boot_l1()[0]);
        assert_eq!(t.l1.0[3], boot_l1()[3]);
        assert_eq!(t.l1.0[1] & 0b11, TABLE);
        assert_eq!(t.l3.len(), 4, "8 MiB: four level-3 tables");
        // Every page of RAM maps to itself.
        for va in ram.clone().step_by(PAGE_SIZE as usize) {
            assert_eq!(*t.entry(va).unwrap(), va | NORMAL_PAGE);
        }
        assert_eq!(t.entry(ram.end), Err(MemoryError::NotPaged));
    }

    #[test]
    fn guard_pages_unmap_and_remap() {
        let mut t = PageTables::build(&boot_l1(), 0x4800_0000..0x4c00_0000).unwrap();
        let page = 0x4800_5000;
        assert!(t.is_mapped(page));
        t.unmap(page).unwrap();
        assert!(!t.is_mapped(page));
        assert!(t.is_mapped(page + PAGE_SIZE), "only that page");
        t.remap(page).unwrap();
        assert_eq!(*t.entry(page).unwrap(), page | NORMAL_PAGE);
        assert_eq!(t.unmap(0x4000_0000), Err(MemoryError::NotPaged));
    }

    #[test]
    fn ram_outside_the_boot_maps_ram_blocks_is_refused() {
        assert!(PageTables::build(&boot_l1(), 0x0900_0000..0x0a00_0000).is_none());
        assert!(PageTables::build(&boot_l1(), 0x7ff0_0000..0x8010_0000).is_none());
        assert!(PageTables::build(&boot_l1(), 0x4000_0000..0x4000_0000).is_none());
    }

    #[test]
    fn stacks_have_a_named_guard_page() {
        let s = Stack::new(10_000, "worker-1").unwrap();
        assert_eq!(s.size(), 3 * PAGE_SIZE as usize);
        assert_eq!(s.top() - s.bottom(), s.size() as u64);
        assert!(s.top().is_multiple_of(PAGE_SIZE));
        let guard = s.bottom() - PAGE_SIZE;
        let (name, len) = guarded_stack(guard + 8).unwrap();
        assert_eq!(&name[..len], b"worker-1");
        assert!(guarded_stack(s.bottom()).is_none());
        drop(s);
        assert!(guarded_stack(guard).is_none(), "unregistered when dropped");
    }

    #[test]
    fn pages_are_zeroed_aligned_and_freed() {
        let p = Pages::alloc(3).unwrap();
        assert!(p.addr().is_multiple_of(PAGE_SIZE));
        assert_eq!(p.count(), 3);
        drop(p);
    }
}
