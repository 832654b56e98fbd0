//! `virtio-drivers`' `Hal` for the driver domain, and its page allocator.
//!
//! The driver domain is mapped 1:1 (guest-physical == physical, see docs/memory.md),
//! and the SDK's stage-1 map is the identity too, so a buffer's virtual
//! address is the physical address the device DMAs to. There is no IOMMU and
//! QEMU's DMA is cache-coherent, so sharing a buffer needs no bounce or
//! cache maintenance.

extern crate alloc;

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// The driver domain's DMA-capable memory: its own (1:1) heap.
pub struct DriverHal;

fn layout(pages: usize) -> Layout {
    Layout::from_size_align(pages.max(1) * PAGE_SIZE, PAGE_SIZE).expect("DMA layout")
}

/// Allocates `pages` zeroed, page-aligned pages that live for the rest of the
/// run (bounce buffers, packet pools).
pub fn leak_pages(pages: usize) -> &'static mut [u8] {
    let l = layout(pages);
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc_zeroed(l) };
    assert!(!p.is_null(), "out of memory for {pages} pages");
    // SAFETY: `p` is a fresh, zeroed allocation of `l.size()` bytes that is
    // never freed, so handing out the only reference for 'static is sound.
    unsafe { core::slice::from_raw_parts_mut(p, l.size()) }
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned, exclusively owned memory
// whose address is also its physical address (1:1 map); `share` returns the
// buffer's own address for the same reason, and nothing needs undoing in
// `unshare`.
unsafe impl Hal for DriverHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let l = layout(pages);
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(l) };
        let p = NonNull::new(p).expect("out of DMA memory");
        (p.as_ptr() as PhysAddr, p)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: the caller passes back what `dma_alloc(pages)` returned.
        unsafe { dealloc(vaddr.as_ptr(), layout(pages)) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).expect("MMIO at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
