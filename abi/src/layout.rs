//! Guest-physical and physical memory layout on QEMU `virt`.
//!
//! The numbers here are shared by the hypervisor (which places domains), the SDK
//! (whose linker scripts link images at these addresses) and the `parapet` tool
//! (which tells QEMU's `guest-loader` where to put the images).

/// Size of a page (and of a stage-2 granule).
pub const PAGE_SIZE: u64 = 4096;

/// Start of RAM on QEMU `virt`; the device tree is loaded here.
pub const RAM_BASE: u64 = 0x4000_0000;
/// Link address of the hypervisor image (at or above `RAM_BASE + 2 MiB`, so that
/// QEMU loads the device tree at `RAM_BASE`).
pub const HYPERVISOR_BASE: u64 = 0x4020_0000;
/// Where the `parapet` tool asks QEMU's `guest-loader` to put domain images.
pub const MODULE_AREA_BASE: u64 = 0x4400_0000;
/// End (exclusive) of the module area.
pub const MODULE_AREA_END: u64 = 0x4800_0000;
/// The driver domain is mapped 1:1 (guest-physical == physical) here, because
/// QEMU's virtio devices DMA to physical addresses and there is no SMMU.
pub const DRIVER_DOMAIN_BASE: u64 = 0x4800_0000;
/// Largest driver-domain RAM.
pub const DRIVER_DOMAIN_MAX_SIZE: u64 = 0x0800_0000;
/// Physical memory from here to the end of RAM backs the other guests.
pub const GUEST_POOL_BASE: u64 = DRIVER_DOMAIN_BASE + DRIVER_DOMAIN_MAX_SIZE;
/// Every guest other than the driver domain sees its RAM at this guest-physical
/// address.
pub const GUEST_RAM_BASE: u64 = 0x4000_0000;
/// Most vCPUs a domain can have.
pub const MAX_VCPUS: u64 = 8;
/// Most domains (driver domain included) one hypervisor runs. The bound is the
/// hypervisor's static per-domain state (it has no heap) and the RAM of the
/// machine: 32 domains of the 2 MiB minimum fit the guest pool of a 1 GiB
/// machine many times over, and their fixed state stays a small part of the
/// hypervisor image. The VMID (8 bits) would allow 255.
pub const MAX_DOMAINS: usize = 32;
/// Pages at the top of each domain's RAM reserved by the hypervisor, from the
/// lowest: the VPSR pages ([`MAX_VCPUS`]), the event page, the grant table, the
/// grant scratch page, and the start-info page (the last page of RAM).
pub const RESERVED_TOP_PAGES: u64 = MAX_VCPUS + 4;
/// Smallest RAM a domain may have.
pub const MIN_DOMAIN_RAM: u64 = 2 * 1024 * 1024;
/// The virtual PPI through which the hypervisor raises the upcall (as Xen's PPI 31).
pub const UPCALL_INTID: u32 = 31;

/// Guest-physical address of the start-info page: the last page of RAM.
pub const fn start_info_ipa(ram_base: u64, ram_size: u64) -> u64 {
    ram_base + ram_size - PAGE_SIZE
}

/// Guest-physical address of vCPU `vcpu`'s VPSR page.
pub const fn vpsr_ipa(ram_base: u64, ram_size: u64, vcpu: u64) -> u64 {
    ram_base + ram_size - RESERVED_TOP_PAGES * PAGE_SIZE + vcpu * PAGE_SIZE
}

/// Guest-physical address of the domain's event page
/// ([`EventPage`](crate::event::EventPage)).
pub const fn event_page_ipa(ram_base: u64, ram_size: u64) -> u64 {
    reserved_top_base(ram_base, ram_size) + MAX_VCPUS * PAGE_SIZE
}

/// Guest-physical address of the domain's grant table.
pub const fn grant_table_ipa(ram_base: u64, ram_size: u64) -> u64 {
    event_page_ipa(ram_base, ram_size) + PAGE_SIZE
}

/// Guest-physical address of the grant scratch page: where the hypervisor
/// points the domain's mappings of a peer's pages when the peer stops.
pub const fn grant_scratch_ipa(ram_base: u64, ram_size: u64) -> u64 {
    grant_table_ipa(ram_base, ram_size) + PAGE_SIZE
}

/// First guest-physical address the hypervisor reserves at the top of RAM.
pub const fn reserved_top_base(ram_base: u64, ram_size: u64) -> u64 {
    ram_base + ram_size - RESERVED_TOP_PAGES * PAGE_SIZE
}

static_assertions::const_assert!(HYPERVISOR_BASE >= RAM_BASE + 0x20_0000);
static_assertions::const_assert!(MODULE_AREA_END <= DRIVER_DOMAIN_BASE);
static_assertions::const_assert!(vpsr_ipa(0, 1 << 20, MAX_VCPUS) == event_page_ipa(0, 1 << 20));
static_assertions::const_assert!(
    grant_scratch_ipa(0, 1 << 20) + PAGE_SIZE == start_info_ipa(0, 1 << 20)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_pages_do_not_overlap() {
        let (base, size) = (GUEST_RAM_BASE, 32 << 20);
        let si = start_info_ipa(base, size);
        for v in 0..MAX_VCPUS {
            let p = vpsr_ipa(base, size, v);
            assert!(p >= reserved_top_base(base, size) && p + PAGE_SIZE <= si);
            assert!(p < event_page_ipa(base, size));
        }
        let pages = [
            event_page_ipa(base, size),
            grant_table_ipa(base, size),
            grant_scratch_ipa(base, size),
            si,
        ];
        assert!(pages.windows(2).all(|w| w[1] == w[0] + PAGE_SIZE));
        assert_eq!(si + PAGE_SIZE, base + size);
    }
}
