//! Guests' virtual disks: creating missing image files, attaching each image
//! to QEMU as a virtio-blk device (with a serial the driver domain recognises
//! it by), and writing the driver domain's `vbd=` wiring.

use std::path::PathBuf;

use parapet_abi::wiring::{Name, VbdWiring};

use crate::scenario::{Role, Scenario};

/// The device name of a guest's disk in the wiring (`vbd0`).
const VBD_DEV: Name = match Name::new("vbd0") {
    Some(n) => n,
    None => panic!("not a wiring name"),
};

/// An image attached to QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedDisk {
    /// The image file.
    pub path: PathBuf,
    /// Its virtio-blk serial (`disk0`, `disk1`, …).
    pub serial: String,
}

/// What the disks add to a boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskPlan {
    /// Images to attach, in order.
    pub attached: Vec<AttachedDisk>,
    /// `vbd=…` words for the driver domain's command line.
    pub driver_wiring: String,
}

/// A disk that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The image could not be created or read.
    #[error("{location}: {path}: {source}")]
    Io {
        /// Scenario location.
        location: String,
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The image or range does not fit.
    #[error("{location}: {message}")]
    Invalid {
        /// Scenario location.
        location: String,
        /// What is wrong.
        message: String,
    },
}

/// Creates missing images and plans the attachment of every guest disk.
pub fn prepare(s: &Scenario) -> Result<DiskPlan, DiskError> {
    let mut plan = DiskPlan::default();
    let has_driver = s.domains.iter().any(|d| d.role == Role::Driver);
    for d in &s.domains {
        let Some(disk) = &d.disk else { continue };
        let io = |source| DiskError::Io {
            location: disk.location.clone(),
            path: disk.image.clone(),
            source,
        };
        let invalid = |message: String| DiskError::Invalid {
            location: disk.location.clone(),
            message,
        };
        if !has_driver {
            return Err(invalid(
                "a disk needs a driver domain to serve it (add a domain with role = \"driver\")"
                    .into(),
            ));
        }
        if !disk.image.exists() {
            if let Some(dir) = disk.image.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let f = std::fs::File::create(&disk.image).map_err(io)?;
            f.set_len(disk.size_mib << 20).map_err(io)?;
            eprintln!(
                "parapet: created {} ({} MiB) for {}",
                disk.image.display(),
                disk.size_mib,
                d.name
            );
        }
        let len = std::fs::metadata(&disk.image).map_err(io)?.len();
        if len == 0 || len % 512 != 0 {
            return Err(invalid(format!(
                "{} is {len} bytes: a disk image must be a non-empty multiple of 512 bytes",
                disk.image.display()
            )));
        }
        let image_sectors = len / 512;
        let sectors = disk
            .sectors
            .unwrap_or(image_sectors.saturating_sub(disk.start_sector));
        if sectors == 0 || disk.start_sector.saturating_add(sectors) > image_sectors {
            return Err(invalid(format!(
                "sectors {}..{} do not fit in {} ({image_sectors} sectors)",
                disk.start_sector,
                disk.start_sector.saturating_add(sectors),
                disk.image.display()
            )));
        }
        let canonical = std::fs::canonicalize(&disk.image).map_err(io)?;
        let serial = match plan.attached.iter().find(|a| a.path == canonical) {
            Some(a) => a.serial.clone(),
            None => {
                let serial = format!("disk{}", plan.attached.len());
                plan.attached.push(AttachedDisk {
                    path: canonical,
                    serial: serial.clone(),
                });
                serial
            }
        };
        if !plan.driver_wiring.is_empty() {
            plan.driver_wiring.push(' ');
        }
        let name = |s: &str| {
            Name::new(s).ok_or_else(|| invalid(format!("{s:?} cannot be named in a vbd entry")))
        };
        let vbd = VbdWiring {
            frontend: name(&d.name)?,
            dev: VBD_DEV,
            serial: name(&serial)?,
            start: disk.start_sector,
            sectors,
            readonly: disk.readonly,
        };
        plan.driver_wiring += &vbd.to_string();
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scen(src: &str) -> Scenario {
        crate::scenario::parse(src, Path::new("t.toml"), Path::new("/"), Path::new("/")).unwrap()
    }

    #[test]
    fn creates_images_and_wires_them() {
        let dir = std::env::temp_dir().join(format!("parapet-disks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = dir.join("sub/a.img");
        let src = format!(
            "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"/bin/true\"\n\
             [[domain]]\nname = \"ga\"\nimage = \"/bin/true\"\ndisk = {{ image = \"{a}\", size_mib = 2 }}\n\
             [[domain]]\nname = \"gb\"\nimage = \"/bin/true\"\ndisk = {{ image = \"{a}\", start_sector = 2048, sectors = 1024, readonly = true }}\n",
            a = a.display()
        );
        let plan = prepare(&scen(&src)).unwrap();
        assert_eq!(std::fs::metadata(&a).unwrap().len(), 2 << 20);
        assert_eq!(plan.attached.len(), 1, "one image, attached once");
        assert_eq!(plan.attached[0].serial, "disk0");
        assert_eq!(
            plan.driver_wiring,
            "vbd=ga,vbd0,disk0,0,4096,rw vbd=gb,vbd0,disk0,2048,1024,ro"
        );
        // A range past the end is refused, naming the field.
        let bad = src.replace("sectors = 1024", "sectors = 4096");
        let e = prepare(&scen(&bad)).unwrap_err().to_string();
        assert!(
            e.contains("domain[2].disk") && e.contains("do not fit"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_disk_needs_a_driver_domain() {
        let src = "[[domain]]\nname = \"ga\"\nimage = \"/bin/true\"\ndisk = { image = \"/nonexistent/x.img\" }\n";
        let e = prepare(&scen(src)).unwrap_err().to_string();
        assert!(e.contains("needs a driver domain"), "{e}");
    }
}
