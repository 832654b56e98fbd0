//! The block backend's request handling, portable and tested on the host.
//!
//! A request is copied out of the ring (by [`parapet_abi::ring::BackRing`]),
//! then [`check`]ed against the frontend's virtual disk — a range of sectors of
//! a real device — and only then [`execute`]d: data moves between the
//! frontend's granted pages and a private bounce buffer through a [`Grants`]
//! implementation (grant copies in the driver domain), and between the bounce
//! buffer and the device through a [`Storage`] implementation (virtio-blk).
//! Nothing the frontend wrote can make the backend touch sectors outside the
//! frontend's range or bytes outside the bounce buffer.

use parapet_abi::blkif::{
    BlkOp, BlkRequest, BlkStatus, SECTORS_PER_PAGE, SECTOR_SIZE, SEGMENTS_MAX,
};

/// Bytes of the largest request: the bounce buffer's size.
pub const REQUEST_BYTES_MAX: usize = SEGMENTS_MAX * 4096;

/// A frontend's virtual disk: `sectors` sectors of the device from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disk {
    /// First device sector of the virtual disk.
    pub start: u64,
    /// Size in sectors.
    pub sectors: u64,
    /// Writes are refused.
    pub readonly: bool,
}

/// Why a request was refused (answered with `Error` or `NotSupported`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Unknown operation.
    BadOp(u8),
    /// Zero segments for a read or write, more than [`SEGMENTS_MAX`], or some
    /// for a flush.
    BadSegmentCount(u8),
    /// Segment `n` has sectors outside its page or reversed.
    BadSegment(usize),
    /// The sectors lie (partly) outside the virtual disk.
    OutOfRange,
    /// A write to a read-only disk.
    ReadOnly,
}

impl Reject {
    /// The status the frontend gets.
    pub const fn status(self) -> BlkStatus {
        match self {
            Reject::BadOp(_) => BlkStatus::NotSupported,
            _ => BlkStatus::Error,
        }
    }
}

/// A request that passed [`check`]: what to do, in device sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// Read `sectors` sectors from device sector `device_sector`.
    Read {
        /// First device sector.
        device_sector: u64,
        /// Sectors in all segments.
        sectors: u64,
    },
    /// Write `sectors` sectors at device sector `device_sector`.
    Write {
        /// First device sector.
        device_sector: u64,
        /// Sectors in all segments.
        sectors: u64,
    },
    /// Flush the device's write cache.
    Flush,
}

/// Validates a request (already copied out of shared memory).
pub fn check(req: &BlkRequest, disk: &Disk) -> Result<Checked, Reject> {
    let op = BlkOp::from_raw(req.op);
    let n = req.nr_segments;
    match op {
        BlkOp::Unknown(x) => return Err(Reject::BadOp(x)),
        BlkOp::Flush if n != 0 => return Err(Reject::BadSegmentCount(n)),
        BlkOp::Flush => return Ok(Checked::Flush),
        BlkOp::Read | BlkOp::Write if n == 0 || n as usize > SEGMENTS_MAX => {
            return Err(Reject::BadSegmentCount(n))
        }
        _ => {}
    }
    let mut sectors = 0u64;
    for (i, seg) in req.segs[..n as usize].iter().enumerate() {
        if seg.first_sect > seg.last_sect || seg.last_sect >= SECTORS_PER_PAGE {
            return Err(Reject::BadSegment(i));
        }
        sectors += seg.sectors();
    }
    let end = req.sector.checked_add(sectors).ok_or(Reject::OutOfRange)?;
    if end > disk.sectors {
        return Err(Reject::OutOfRange);
    }
    let device_sector = disk
        .start
        .checked_add(req.sector)
        .ok_or(Reject::OutOfRange)?;
    if op == BlkOp::Write {
        if disk.readonly {
            return Err(Reject::ReadOnly);
        }
        Ok(Checked::Write {
            device_sector,
            sectors,
        })
    } else {
        Ok(Checked::Read {
            device_sector,
            sectors,
        })
    }
}

/// A device or grant operation failed (the request is answered `Error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoFailed;

/// The real device, in whole sectors.
pub trait Storage {
    /// Reads `buf.len() / 512` sectors at `sector`.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), IoFailed>;
    /// Writes `buf.len() / 512` sectors at `sector`.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), IoFailed>;
    /// Makes completed writes durable.
    fn flush(&mut self) -> Result<(), IoFailed>;
}

/// Copies between the frontend's granted pages and our memory.
pub trait Grants {
    /// Copies `out.len()` bytes at `offset` of the page granted as `gref`.
    fn copy_from(&mut self, gref: u32, offset: usize, out: &mut [u8]) -> Result<(), IoFailed>;
    /// Copies `data` to `offset` of the page granted as `gref`.
    fn copy_to(&mut self, gref: u32, offset: usize, data: &[u8]) -> Result<(), IoFailed>;
}

/// Checks and carries out one request; returns the status to answer with.
pub fn execute(
    req: &BlkRequest,
    disk: &Disk,
    storage: &mut impl Storage,
    grants: &mut impl Grants,
    bounce: &mut [u8; REQUEST_BYTES_MAX],
) -> BlkStatus {
    let checked = match check(req, disk) {
        Ok(c) => c,
        Err(r) => return r.status(),
    };
    let segs = &req.segs[..req.nr_segments as usize];
    // Where each segment's bytes sit in the page and in the bounce buffer.
    let pieces = segs.iter().scan(0usize, |at, seg| {
        let len = seg.sectors() as usize * SECTOR_SIZE;
        let piece = (seg.gref, seg.first_sect as usize * SECTOR_SIZE, *at, len);
        *at += len;
        Some(piece)
    });
    let result = match checked {
        Checked::Flush => storage.flush(),
        Checked::Read {
            device_sector,
            sectors,
        } => {
            let total = sectors as usize * SECTOR_SIZE;
            storage
                .read(device_sector, &mut bounce[..total])
                .and_then(|()| {
                    pieces.into_iter().try_for_each(|(gref, offset, at, len)| {
                        grants.copy_to(gref, offset, &bounce[at..at + len])
                    })
                })
        }
        Checked::Write {
            device_sector,
            sectors,
        } => {
            let total = sectors as usize * SECTOR_SIZE;
            pieces
                .into_iter()
                .try_for_each(|(gref, offset, at, len)| {
                    grants.copy_from(gref, offset, &mut bounce[at..at + len])
                })
                .and_then(|()| storage.write(device_sector, &bounce[..total]))
        }
    };
    match result {
        Ok(()) => BlkStatus::Okay,
        Err(IoFailed) => BlkStatus::Error,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use parapet_abi::blkif::BlkSegment;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::vec;
    use std::vec::Vec;

    /// A device of `n` sectors in memory that records every sector touched.
    struct MemDisk {
        data: Vec<u8>,
        touched: Vec<u64>,
        flushed: usize,
    }

    impl MemDisk {
        fn new(sectors: usize) -> Self {
            let data = (0..sectors * SECTOR_SIZE)
                .map(|i| (i / SECTOR_SIZE) as u8)
                .collect();
            Self {
                data,
                touched: Vec::new(),
                flushed: 0,
            }
        }
        fn range(&mut self, sector: u64, len: usize) -> Result<core::ops::Range<usize>, IoFailed> {
            assert_eq!(len % SECTOR_SIZE, 0);
            let start = sector as usize * SECTOR_SIZE;
            if start + len > self.data.len() {
                return Err(IoFailed);
            }
            self.touched
                .extend(sector..sector + (len / SECTOR_SIZE) as u64);
            Ok(start..start + len)
        }
    }

    impl Storage for MemDisk {
        fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), IoFailed> {
            let r = self.range(sector, buf.len())?;
            buf.copy_from_slice(&self.data[r]);
            Ok(())
        }
        fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), IoFailed> {
            let r = self.range(sector, buf.len())?;
            self.data[r].copy_from_slice(buf);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), IoFailed> {
            self.flushed += 1;
            Ok(())
        }
    }

    /// The frontend's granted pages by reference; others fail like a bad
    /// grant does in the hypervisor.
    struct Pages(HashMap<u32, Vec<u8>>);

    impl Grants for Pages {
        fn copy_from(&mut self, gref: u32, offset: usize, out: &mut [u8]) -> Result<(), IoFailed> {
            let p = self.0.get(&gref).ok_or(IoFailed)?;
            out.copy_from_slice(p.get(offset..offset + out.len()).ok_or(IoFailed)?);
            Ok(())
        }
        fn copy_to(&mut self, gref: u32, offset: usize, data: &[u8]) -> Result<(), IoFailed> {
            let p = self.0.get_mut(&gref).ok_or(IoFailed)?;
            p.get_mut(offset..offset + data.len())
                .ok_or(IoFailed)?
                .copy_from_slice(data);
            Ok(())
        }
    }

    fn seg(gref: u32, first_sect: u8, last_sect: u8) -> BlkSegment {
        BlkSegment {
            gref,
            first_sect,
            last_sect,
            _pad: 0,
        }
    }

    fn req(op: BlkOp, sector: u64, segs: &[BlkSegment]) -> BlkRequest {
        let mut r = BlkRequest {
            id: 7,
            sector,
            op: op.to_raw(),
            nr_segments: segs.len() as u8,
            ..Default::default()
        };
        r.segs[..segs.len()].copy_from_slice(segs);
        r
    }

    const DISK: Disk = Disk {
        start: 100,
        sectors: 64,
        readonly: false,
    };

    #[test]
    fn checks() {
        let one = [seg(1, 0, 7)];
        assert_eq!(
            check(&req(BlkOp::Read, 0, &one), &DISK),
            Ok(Checked::Read {
                device_sector: 100,
                sectors: 8
            })
        );
        assert_eq!(
            check(&req(BlkOp::Write, 56, &one), &DISK),
            Ok(Checked::Write {
                device_sector: 156,
                sectors: 8
            })
        );
        assert_eq!(
            check(&req(BlkOp::Write, 57, &one), &DISK),
            Err(Reject::OutOfRange)
        );
        assert_eq!(
            check(&req(BlkOp::Read, u64::MAX - 3, &one), &DISK),
            Err(Reject::OutOfRange)
        );
        assert_eq!(
            check(&req(BlkOp::Read, 0, &[]), &DISK),
            Err(Reject::BadSegmentCount(0))
        );
        assert_eq!(
            check(&req(BlkOp::Read, 0, &[seg(1, 2, 8)]), &DISK),
            Err(Reject::BadSegment(0))
        );
        assert_eq!(
            check(&req(BlkOp::Read, 0, &[seg(1, 0, 0), seg(1, 5, 4)]), &DISK),
            Err(Reject::BadSegment(1))
        );
        assert_eq!(check(&req(BlkOp::Flush, 0, &[]), &DISK), Ok(Checked::Flush));
        assert_eq!(
            check(&req(BlkOp::Flush, 0, &one), &DISK),
            Err(Reject::BadSegmentCount(1))
        );
        let mut r = req(BlkOp::Read, 0, &one);
        r.nr_segments = 9;
        assert_eq!(check(&r, &DISK), Err(Reject::BadSegmentCount(9)));
        r.op = 77;
        assert_eq!(check(&r, &DISK), Err(Reject::BadOp(77)));
        assert_eq!(Reject::BadOp(77).status(), BlkStatus::NotSupported);
        let ro = Disk {
            readonly: true,
            ..DISK
        };
        assert_eq!(
            check(&req(BlkOp::Write, 0, &one), &ro),
            Err(Reject::ReadOnly)
        );
        assert!(check(&req(BlkOp::Read, 0, &one), &ro).is_ok());
    }

    #[test]
    fn write_then_read_moves_the_bytes_through_the_grants() {
        let mut dev = MemDisk::new(256);
        let mut pages = Pages(HashMap::new());
        pages.0.insert(1, vec![0xaa; 4096]);
        pages.0.insert(2, (0..4096).map(|i| i as u8).collect());
        let mut bounce = [0u8; REQUEST_BYTES_MAX];
        // Sectors 2..=7 of page 2, then 0..=1 of page 1: 8 sectors at disk sector 10.
        let w = req(BlkOp::Write, 10, &[seg(2, 2, 7), seg(1, 0, 1)]);
        assert_eq!(
            execute(&w, &DISK, &mut dev, &mut pages, &mut bounce),
            BlkStatus::Okay
        );
        assert_eq!(dev.touched, (110..118).collect::<Vec<_>>());
        assert_eq!(
            &dev.data[110 * 512..110 * 512 + 6 * 512],
            &pages.0[&2][1024..4096]
        );
        assert!(dev.data[116 * 512..118 * 512].iter().all(|&b| b == 0xaa));
        pages.0.insert(3, vec![0; 4096]);
        let r = req(BlkOp::Read, 10, &[seg(3, 0, 7)]);
        assert_eq!(
            execute(&r, &DISK, &mut dev, &mut pages, &mut bounce),
            BlkStatus::Okay
        );
        assert_eq!(&pages.0[&3][..6 * 512], &pages.0[&2][1024..4096]);
        let f = req(BlkOp::Flush, 0, &[]);
        assert_eq!(
            execute(&f, &DISK, &mut dev, &mut pages, &mut bounce),
            BlkStatus::Okay
        );
        assert_eq!(dev.flushed, 1);
    }

    #[test]
    fn a_bad_grant_fails_the_request_and_writes_nothing() {
        let mut dev = MemDisk::new(256);
        let before = dev.data.clone();
        let mut pages = Pages(HashMap::new());
        pages.0.insert(1, vec![0xaa; 4096]);
        let mut bounce = [0u8; REQUEST_BYTES_MAX];
        let w = req(BlkOp::Write, 0, &[seg(1, 0, 7), seg(99, 0, 7)]);
        assert_eq!(
            execute(&w, &DISK, &mut dev, &mut pages, &mut bounce),
            BlkStatus::Error
        );
        assert_eq!(
            dev.data, before,
            "a write whose data could not be fetched is not done"
        );
        let r = req(BlkOp::Read, 0, &[seg(99, 0, 7)]);
        assert_eq!(
            execute(&r, &DISK, &mut dev, &mut pages, &mut bounce),
            BlkStatus::Error
        );
    }

    proptest! {
        /// Any request, however malformed, touches only the frontend's range
        /// and never panics.
        #[test]
        fn hostile_requests_stay_inside_the_disk(
            op in 0u8..5,
            sector in prop_oneof![0u64..80, any::<u64>()],
            nr in 0u8..12,
            raw_segs in proptest::collection::vec((0u32..4, 0u8..10, 0u8..10), SEGMENTS_MAX),
            readonly: bool,
        ) {
            let disk = Disk { readonly, ..DISK };
            let mut dev = MemDisk::new(256);
            let before = dev.data.clone();
            let mut pages = Pages(HashMap::new());
            for g in 1..4 {
                pages.0.insert(g, vec![g as u8; 4096]);
            }
            let mut r = BlkRequest { id: 1, sector, op, nr_segments: nr, ..Default::default() };
            for (i, &(g, a, b)) in raw_segs.iter().enumerate() {
                r.segs[i] = seg(g, a, b);
            }
            let mut bounce = [0u8; REQUEST_BYTES_MAX];
            let status = execute(&r, &disk, &mut dev, &mut pages, &mut bounce);
            for &s in &dev.touched {
                prop_assert!((disk.start..disk.start + disk.sectors).contains(&s), "sector {s}");
            }
            if status != BlkStatus::Okay || op != 1 {
                prop_assert_eq!(&dev.data, &before);
            }
            if readonly {
                prop_assert_eq!(&dev.data, &before);
            }
        }
    }
}
