//! What the device tree tells the hypervisor: RAM, GICv3, UART, virtio-mmio
//! devices, CPUs, and the domain images (`/chosen/module@…` nodes added by
//! QEMU's `guest-loader`).
#![deny(unsafe_code)]

use fdt::Fdt;

/// Most virtio-mmio slots recorded.
pub const MAX_VIRTIO: usize = 32;
/// Most domain images: one per domain the hypervisor can run.
pub const MAX_MODULES: usize = parapet_abi::layout::MAX_DOMAINS;

/// An MMIO device with one interrupt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Device {
    /// Physical base.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// GIC INTID.
    pub intid: u32,
}

/// A domain image handed over by the boot loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module<'a> {
    /// Physical address of the file's first byte.
    pub addr: u64,
    /// File size.
    pub size: u64,
    /// The node's `bootargs`.
    pub bootargs: &'a str,
}

/// The platform as described by the device tree.
#[derive(Clone, Debug)]
pub struct Platform<'a> {
    /// Base of RAM.
    pub ram_base: u64,
    /// Size of RAM.
    pub ram_size: u64,
    /// GIC distributor.
    pub gicd: u64,
    /// First GIC redistributor.
    pub gicr: u64,
    /// PL011 UART.
    pub uart: u64,
    /// The PL011's interrupt (console input).
    pub uart_intid: u32,
    /// Number of CPUs.
    pub cpus: usize,
    /// virtio-mmio slots (the first `virtio_count`).
    pub virtio: [Device; MAX_VIRTIO],
    /// Number of virtio-mmio slots.
    pub virtio_count: usize,
    /// Domain images in device-tree order (the first `module_count`).
    pub modules: [Option<Module<'a>>; MAX_MODULES],
    /// Number of modules.
    pub module_count: usize,
    /// Modules beyond `MAX_MODULES`, which are ignored.
    pub modules_dropped: usize,
    /// The hypervisor's own command line (`/chosen/bootargs`).
    pub bootargs: &'a str,
}

/// Why the device tree was not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformError {
    /// The blob is not a valid device tree.
    BadDeviceTree,
    /// A required node is missing (named).
    Missing(&'static str),
}

fn be_cells(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

fn first_reg(node: &fdt::node::FdtNode<'_, '_>, index: usize) -> Option<(u64, u64)> {
    let region = node.reg()?.nth(index)?;
    Some((
        region.starting_address as u64,
        region.size.unwrap_or(0) as u64,
    ))
}

/// Decodes a module's `reg` by its length: (2, 2), (2, 1) or (1, 1) cells.
fn module_reg(value: &[u8]) -> Option<(u64, u64)> {
    let cells: [u32; 4] = {
        let mut c = [0; 4];
        for (i, v) in be_cells(value).take(4).enumerate() {
            c[i] = v;
        }
        c
    };
    let wide = |hi: u32, lo: u32| (u64::from(hi) << 32) | u64::from(lo);
    match value.len() {
        16 => Some((wide(cells[0], cells[1]), wide(cells[2], cells[3]))),
        12 => Some((wide(cells[0], cells[1]), u64::from(cells[2]))),
        8 => Some((u64::from(cells[0]), u64::from(cells[1]))),
        _ => None,
    }
}

/// SPI interrupts are `<0 n flags>` → INTID `32 + n`; PPIs `<1 n flags>` → `16 + n`.
fn intid(node: &fdt::node::FdtNode<'_, '_>) -> Option<u32> {
    let prop = node.property("interrupts")?;
    let mut cells = be_cells(prop.value);
    let (kind, num) = (cells.next()?, cells.next()?);
    Some(if kind == 0 { 32 + num } else { 16 + num })
}

impl<'a> Platform<'a> {
    /// Reads the platform from a flattened device tree.
    pub fn from_fdt(blob: &'a [u8]) -> Result<Self, PlatformError> {
        let fdt = Fdt::new(blob).map_err(|_| PlatformError::BadDeviceTree)?;
        let mem = fdt
            .memory()
            .regions()
            .next()
            .ok_or(PlatformError::Missing("memory"))?;
        let gic = fdt
            .find_compatible(&["arm,gic-v3"])
            .ok_or(PlatformError::Missing("GICv3"))?;
        let (gicd, _) = first_reg(&gic, 0).ok_or(PlatformError::Missing("GICv3 reg"))?;
        let (gicr, _) = first_reg(&gic, 1).ok_or(PlatformError::Missing("GICv3 redistributor"))?;
        let pl011 = fdt
            .find_compatible(&["arm,pl011"])
            .ok_or(PlatformError::Missing("PL011"))?;
        let uart = first_reg(&pl011, 0)
            .ok_or(PlatformError::Missing("PL011 reg"))?
            .0;
        let uart_intid = intid(&pl011).ok_or(PlatformError::Missing("PL011 interrupt"))?;
        let mut platform = Platform {
            ram_base: mem.starting_address as u64,
            ram_size: mem.size.unwrap_or(0) as u64,
            gicd,
            gicr,
            uart,
            uart_intid,
            cpus: fdt.cpus().count().max(1),
            virtio: [Device::default(); MAX_VIRTIO],
            virtio_count: 0,
            modules: [None; MAX_MODULES],
            module_count: 0,
            modules_dropped: 0,
            bootargs: "",
        };
        for node in fdt.all_nodes() {
            let compatible = node
                .compatible()
                .map(|c| c.all().any(|s| s == "virtio,mmio"));
            if compatible == Some(true) && platform.virtio_count < MAX_VIRTIO {
                if let (Some((base, size)), Some(intid)) = (first_reg(&node, 0), intid(&node)) {
                    platform.virtio[platform.virtio_count] = Device { base, size, intid };
                    platform.virtio_count += 1;
                }
            }
        }
        // Keep the virtio slots in address order, as the transport numbering is.
        platform.virtio[..platform.virtio_count].sort_unstable_by_key(|d| d.base);
        if let Some(chosen) = fdt.find_node("/chosen") {
            if let Some(args) = chosen.property("bootargs").and_then(|p| p.as_str()) {
                platform.bootargs = args;
            }
            for child in chosen.children() {
                let is_module = child
                    .compatible()
                    .map(|c| c.all().any(|s| s == "multiboot,module"))
                    .unwrap_or(false);
                if !is_module {
                    continue;
                }
                // `/chosen` declares no cell sizes; guest-loader writes the root's (2, 2).
                let Some((addr, size)) = child.property("reg").and_then(|p| module_reg(p.value))
                else {
                    continue;
                };
                let bootargs = child
                    .property("bootargs")
                    .and_then(|p| p.as_str())
                    .unwrap_or("");
                let module = Module {
                    addr,
                    size,
                    bootargs,
                };
                if platform.module_count < MAX_MODULES {
                    platform.modules[platform.module_count] = Some(module);
                    platform.module_count += 1;
                    continue;
                }
                // Full: keep the lowest addresses (the first domains of the
                // scenario, the driver domain among them) and count the rest.
                platform.modules_dropped += 1;
                let highest = platform
                    .modules
                    .iter_mut()
                    .flatten()
                    .max_by_key(|m| m.addr)
                    .filter(|m| m.addr > addr);
                if let Some(highest) = highest {
                    *highest = module;
                }
            }
        }
        // guest-loader nodes come out of the tree in reverse order of creation;
        // the tool places images in scenario order at increasing addresses.
        platform.modules[..platform.module_count].sort_unstable_by_key(|m| m.map(|m| m.addr));
        Ok(platform)
    }

    /// The virtio-mmio slots.
    pub fn virtio(&self) -> &[Device] {
        &self.virtio[..self.virtio_count]
    }

    /// The domain images.
    pub fn modules(&self) -> impl Iterator<Item = Module<'a>> + '_ {
        self.modules[..self.module_count].iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_qemu_virt() {
        let blob = include_bytes!("../tests/fixtures/qemu-virt-smp2.dtb");
        let p = Platform::from_fdt(blob).unwrap();
        assert_eq!((p.ram_base, p.ram_size), (0x4000_0000, 1 << 30));
        assert_eq!(
            (p.gicd, p.gicr, p.uart),
            (0x0800_0000, 0x080a_0000, 0x0900_0000)
        );
        assert_eq!(p.cpus, 2);
        assert_eq!(p.uart_intid, 33);
        assert_eq!(p.virtio().len(), 32);
        assert_eq!(
            p.virtio()[0],
            Device {
                base: 0x0a00_0000,
                size: 0x200,
                intid: 48
            }
        );
        let last = p.virtio()[31];
        assert_eq!((last.base, last.intid), (0x0a00_3e00, 32 + 0x2f));
        let m: Vec<_> = p.modules().collect();
        assert!(p.modules[..p.module_count].is_sorted_by_key(|m| m.map(|m| m.addr)));
        assert_eq!(
            m,
            [Module {
                addr: 0x4400_0000,
                size: 6,
                bootargs: "name=guest-a role=guest mem_mib=32 -- hi there"
            }]
        );
    }

    #[test]
    fn beyond_the_limit_the_first_modules_are_kept_and_the_rest_counted() {
        // 34 guest-loader modules at 0x4400_0000 + i * 64 KiB, named g0..g33
        // (the tree lists them in reverse order of creation).
        let blob = include_bytes!("../tests/fixtures/qemu-virt-34-modules.dtb");
        let p = Platform::from_fdt(blob).unwrap();
        assert_eq!(p.module_count, MAX_MODULES);
        assert_eq!(p.modules_dropped, 34 - MAX_MODULES);
        let names: Vec<_> = p.modules().map(|m| m.bootargs).collect();
        let want: Vec<_> = (0..MAX_MODULES).map(|i| format!("name=g{i}")).collect();
        assert_eq!(names, want, "the lowest addresses, in order");
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(
            Platform::from_fdt(&[0u8; 64]).unwrap_err(),
            PlatformError::BadDeviceTree
        );
    }
}
