//! Byte rings: one direction of a byte stream, in the style of Xen's vchan.
//!
//! A byte channel uses two of them, one per direction. Shared layout of a region of `n`
//! pages (`n >= 1`):
//!
//! | offset | size | field | written by |
//! |-------:|-----:|-------|------------|
//! | 0 | 4 | `prod`: bytes written (free-running) | writer |
//! | 4 | 4 | `cons_event`: writer wants a notification when `cons` reaches this | writer |
//! | 8 | 56 | reserved, zero | |
//! | 64 | 4 | `cons`: bytes read (free-running) | reader |
//! | 68 | 4 | `prod_event`: reader wants a notification when `prod` reaches this | reader |
//! | 72 | 56 | reserved, zero | |
//! | 128 | `size` | data: byte `i` of the stream at `128 + i % size` | writer |
//!
//! `size` is the largest power of two `<= n * 4096 - 128`: 2 KiB for one page, 4 KiB for
//! two, `2^k` pages of data for `2^k + 1` pages.

use core::fmt;
use core::marker::PhantomData;
use core::mem::{offset_of, size_of};

use static_assertions::const_assert;
#[cfg(not(loom))]
use zerocopy::{FromBytes, IntoBytes, KnownLayout};

use super::index::{check_peer_index, clamp_want, free, needs_notify, pow2_floor};
use super::mem::{DataArea, Region, SharedHeader};
use super::sync::{fence, AtomicU32, Ordering};
use super::{RingError, HEADER_SIZE};

/// Padding after the two indices of one cache line.
const PAD: usize = 64 - 2 * size_of::<AtomicU32>();

/// The shared header of a byte ring: two cache lines, one written by each side.
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
#[derive(Debug)]
#[repr(C, align(64))]
pub struct ByteRingHeader {
    /// Producer index: total bytes written (free-running), written by the writer.
    pub prod: AtomicU32,
    /// Written by the writer: notify it when `cons` reaches this value (it wants space).
    pub cons_event: AtomicU32,
    /// Reserved, zero.
    pub _pad0: [u8; PAD],
    /// Consumer index: total bytes read (free-running), written by the reader.
    pub cons: AtomicU32,
    /// Written by the reader: notify it when `prod` reaches this value (it wants data).
    pub prod_event: AtomicU32,
    /// Reserved, zero.
    pub _pad1: [u8; PAD],
}

#[cfg(not(loom))]
const_assert!(size_of::<ByteRingHeader>() == HEADER_SIZE);
#[cfg(not(loom))]
const_assert!(offset_of!(ByteRingHeader, prod) == 0);
#[cfg(not(loom))]
const_assert!(offset_of!(ByteRingHeader, cons_event) == 4);
#[cfg(not(loom))]
const_assert!(offset_of!(ByteRingHeader, cons) == 64);
#[cfg(not(loom))]
const_assert!(offset_of!(ByteRingHeader, prod_event) == 68);
const_assert!(size_of::<ByteRingHeader>() <= HEADER_SIZE);

const PROD: usize = offset_of!(ByteRingHeader, prod);
const CONS_EVENT: usize = offset_of!(ByteRingHeader, cons_event);
const CONS: usize = offset_of!(ByteRingHeader, cons);
const PROD_EVENT: usize = offset_of!(ByteRingHeader, prod_event);

impl SharedHeader for ByteRingHeader {
    #[cfg(loom)]
    fn fresh() -> Self {
        ByteRingHeader {
            prod: AtomicU32::new(0),
            cons_event: AtomicU32::new(0),
            _pad0: [0; PAD],
            cons: AtomicU32::new(0),
            prod_event: AtomicU32::new(0),
            _pad1: [0; PAD],
        }
    }
}

/// Size of the data area of a byte ring in a region of `region_len` bytes: the largest
/// power of two that fits after the header (0 if the region is smaller than that).
pub const fn data_size(region_len: usize) -> u32 {
    if region_len <= HEADER_SIZE {
        0
    } else {
        pow2_floor(region_len - HEADER_SIZE)
    }
}

fn geometry(region: &Region) -> Result<(u32, DataArea), RingError> {
    let size = data_size(region.len());
    match region.data_area() {
        Some(data) => Ok((size, data)),
        None => Err(RingError::RegionTooSmall {
            len: region.len(),
            needed: HEADER_SIZE + 1,
        }),
    }
}

/// Writes a fresh header with every index at `start`: the reader wants a notification
/// for the first byte, the writer wants none.
fn init_header(region: &Region, start: u32) {
    region.init_header::<ByteRingHeader>();
    region.atomic(PROD).store(start, Ordering::Relaxed);
    region.atomic(CONS).store(start, Ordering::Relaxed);
    region
        .atomic(PROD_EVENT)
        .store(start.wrapping_add(1), Ordering::Relaxed);
    region.atomic(CONS_EVENT).store(start, Ordering::Relaxed);
    fence(Ordering::Release);
}

/// The writing end of a byte ring.
pub struct ByteWriter<'a> {
    region: Region,
    data: DataArea,
    mask: u32,
    /// Bytes written (private producer index).
    prod: u32,
    /// `prod` as we last published it.
    prod_pub: u32,
    /// Validated copy of the reader's `cons`.
    cons_seen: u32,
    _p: PhantomData<&'a mut [u8]>,
}

impl fmt::Debug for ByteWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteWriter")
            .field("size", &(self.mask + 1))
            .field("prod", &self.prod)
            .field("prod_pub", &self.prod_pub)
            .field("cons_seen", &self.cons_seen)
            .finish()
    }
}

impl<'a> ByteWriter<'a> {
    pub(super) fn attach(region: Region) -> Result<Self, RingError> {
        let (size, data) = geometry(&region)?;
        let prod = region.atomic(PROD).load(Ordering::Acquire);
        // Assume no free space until the first `refresh_cons` checks the reader's
        // `cons` against `[prod - size, prod]`.
        Ok(ByteWriter {
            region,
            data,
            mask: size - 1,
            prod,
            prod_pub: prod,
            cons_seen: prod.wrapping_sub(size),
            _p: PhantomData,
        })
    }

    /// (Re)initialises the shared header, every index 0; the reader must (re)attach
    /// afterwards. Whichever side allocates the ring initialises it.
    pub fn init(&mut self) {
        self.init_at(0);
    }

    /// Like [`ByteWriter::init`] with every index at `start` (tests cross the wrap).
    pub fn init_at(&mut self, start: u32) {
        init_header(&self.region, start);
        self.prod = start;
        self.prod_pub = start;
        self.cons_seen = start;
    }

    /// Size of the data area in bytes.
    #[inline]
    pub fn size(&self) -> u32 {
        self.mask + 1
    }

    /// Bytes written so far (published or not), modulo 2^32: the stream offset
    /// of the next byte, at data offset `position() % size()`.
    #[inline]
    pub fn position(&self) -> u32 {
        self.prod
    }

    /// Bytes written but not yet published.
    #[inline]
    pub fn unpublished(&self) -> u32 {
        self.prod.wrapping_sub(self.prod_pub)
    }

    /// Re-reads `cons` and checks it: it may not move back nor pass what we published.
    fn refresh_cons(&mut self) -> Result<(), RingError> {
        let cons = self.region.atomic(CONS).load(Ordering::Acquire);
        let lo = self.cons_seen;
        check_peer_index(cons, lo, self.prod_pub.wrapping_sub(lo))?;
        self.cons_seen = cons;
        Ok(())
    }

    /// Free space in bytes, after re-reading the reader's `cons`.
    #[inline]
    pub fn free(&mut self) -> Result<u32, RingError> {
        self.refresh_cons()?;
        Ok(free(self.prod, self.cons_seen, self.size()))
    }

    /// Copies as much of `data` as fits (wrapping around the end of the data area) and
    /// returns how many bytes it took; never blocks. The bytes become visible to the
    /// reader at the next [`ByteWriter::publish`]. `cons` is re-read only when the
    /// space already known is not enough for all of `data`.
    #[inline(always)]
    pub fn write(&mut self, data: &[u8]) -> Result<usize, RingError> {
        // The common case (the space known is enough) is small enough to inline;
        // looking at the reader's index is out of line.
        if self.write_known(data) {
            return Ok(data.len());
        }
        self.write_refreshing(data)
    }

    /// Writes all of `data` if the free space already known holds it (without
    /// looking at the reader's index) and returns true; otherwise writes nothing and
    /// returns false. The fast path of [`ByteWriter::write`], for a caller that
    /// handles the rest out of line.
    #[inline(always)]
    pub fn write_known(&mut self, data: &[u8]) -> bool {
        // `cons_seen <= prod <= cons_seen + size` always (`cons_seen` is checked
        // against what we published, and we write only free space), so the free
        // space needs no saturation here.
        let room = self
            .cons_seen
            .wrapping_add(self.size())
            .wrapping_sub(self.prod);
        debug_assert_eq!(room, free(self.prod, self.cons_seen, self.size()));
        if (room as usize) < data.len() {
            return false;
        }
        self.copy_in(data);
        true
    }

    /// [`ByteWriter::write`] when the space already known is too small.
    #[inline(never)]
    fn write_refreshing(&mut self, data: &[u8]) -> Result<usize, RingError> {
        self.refresh_cons()?;
        let room = free(self.prod, self.cons_seen, self.size());
        let n = data.len().min(room as usize);
        if n > 0 {
            self.copy_in(&data[..n]);
        }
        Ok(n)
    }

    /// Copies `data` (at most the free space) at `prod` and advances it.
    #[inline(always)]
    fn copy_in(&mut self, data: &[u8]) {
        self.data.write(self.prod, data);
        self.prod = self.prod.wrapping_add(data.len() as u32);
    }

    /// Publishes every written byte; true if the reader must be notified (its
    /// `prod_event` lies in the range just published).
    #[inline(always)]
    pub fn publish(&mut self) -> bool {
        // Nothing new (`old == new`) stores the same index again and never notifies;
        // no test for it on the path that always has something to publish.
        let (old, new) = (self.prod_pub, self.prod);
        // Both words located before the fence, which makes the compiler forget
        // what it knew of memory.
        let (index, event) = (self.region.atomic(PROD), self.region.atomic(PROD_EVENT));
        index.store(new, Ordering::Release);
        self.prod_pub = new;
        fence(Ordering::SeqCst);
        let event = event.load(Ordering::Relaxed);
        needs_notify(old, new, event)
    }

    /// Before sleeping for space: asks the reader to notify us once at least `want`
    /// bytes are free (`want` clamped to `1..=size/2`), fences, and re-checks. Returns
    /// true if the space is already there (do not sleep). [`ByteWriter::publish`] first,
    /// or the reader may never free the space.
    pub fn request_space_notification(&mut self, want: u32) -> Result<bool, RingError> {
        let size = self.size();
        let want = clamp_want(want, size);
        if free(self.prod, self.cons_seen, size) >= want {
            return Ok(true);
        }
        let event = self.prod.wrapping_sub(size).wrapping_add(want);
        self.region
            .atomic(CONS_EVENT)
            .store(event, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.refresh_cons()?;
        Ok(free(self.prod, self.cons_seen, size) >= want)
    }
}

/// The reading end of a byte ring.
pub struct ByteReader<'a> {
    region: Region,
    data: DataArea,
    mask: u32,
    /// Bytes read (private consumer index).
    cons: u32,
    /// `cons` as we last published it.
    cons_pub: u32,
    /// Validated copy of the writer's `prod`.
    prod_seen: u32,
    _p: PhantomData<&'a mut [u8]>,
}

impl fmt::Debug for ByteReader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteReader")
            .field("size", &(self.mask + 1))
            .field("cons", &self.cons)
            .field("cons_pub", &self.cons_pub)
            .field("prod_seen", &self.prod_seen)
            .finish()
    }
}

impl<'a> ByteReader<'a> {
    pub(super) fn attach(region: Region) -> Result<Self, RingError> {
        let (size, data) = geometry(&region)?;
        let cons = region.atomic(CONS).load(Ordering::Acquire);
        Ok(ByteReader {
            region,
            data,
            mask: size - 1,
            cons,
            cons_pub: cons,
            prod_seen: cons,
            _p: PhantomData,
        })
    }

    /// (Re)initialises the shared header, every index 0; the writer must (re)attach
    /// afterwards. Whichever side allocates the ring initialises it.
    pub fn init(&mut self) {
        self.init_at(0);
    }

    /// Like [`ByteReader::init`] with every index at `start` (tests cross the wrap).
    pub fn init_at(&mut self, start: u32) {
        init_header(&self.region, start);
        self.cons = start;
        self.cons_pub = start;
        self.prod_seen = start;
    }

    /// Size of the data area in bytes.
    #[inline]
    pub fn size(&self) -> u32 {
        self.mask + 1
    }

    /// Re-reads `prod` and checks it: it may not move back, nor run more than the ring
    /// size ahead of the `cons` we published.
    fn refresh_prod(&mut self) -> Result<(), RingError> {
        let prod = self.region.atomic(PROD).load(Ordering::Acquire);
        let lo = self.prod_seen;
        let limit = self.cons_pub.wrapping_add(self.size()).wrapping_sub(lo);
        check_peer_index(prod, lo, limit)?;
        self.prod_seen = prod;
        Ok(())
    }

    /// Bytes ready to read, after re-reading the writer's `prod`.
    #[inline]
    pub fn available(&mut self) -> Result<u32, RingError> {
        self.refresh_prod()?;
        Ok(self.prod_seen.wrapping_sub(self.cons))
    }

    /// Copies up to `buf.len()` published bytes into `buf` and returns how many; never
    /// blocks. The space becomes free for the writer at the next
    /// [`ByteReader::publish`]. `prod` is re-read only when the bytes already known
    /// are fewer than `buf.len()`.
    #[inline(always)]
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        // The common case (the bytes known are enough) is small enough to inline;
        // looking at the writer's index is out of line.
        if self.read_known(buf) {
            return Ok(buf.len());
        }
        self.read_refreshing(buf)
    }

    /// Fills `buf` if the bytes already known to be published are enough (without
    /// looking at the writer's index) and returns true; otherwise reads nothing and
    /// returns false. The fast path of [`ByteReader::read`], for a caller that
    /// handles the rest out of line.
    #[inline(always)]
    pub fn read_known(&mut self, buf: &mut [u8]) -> bool {
        if (self.prod_seen.wrapping_sub(self.cons) as usize) < buf.len() {
            return false;
        }
        self.copy_out(buf);
        true
    }

    /// [`ByteReader::read`] when the bytes already known are too few.
    #[inline(never)]
    fn read_refreshing(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        self.refresh_prod()?;
        let avail = self.prod_seen.wrapping_sub(self.cons);
        let n = buf.len().min(avail as usize);
        if n > 0 {
            self.copy_out(&mut buf[..n]);
        }
        Ok(n)
    }

    /// Copies `buf.len()` bytes (at most those available) from `cons` and advances it.
    #[inline(always)]
    fn copy_out(&mut self, buf: &mut [u8]) {
        self.data.read(self.cons, buf);
        self.cons = self.cons.wrapping_add(buf.len() as u32);
    }

    /// Publishes our consumer index (frees the space read); true if the writer must be
    /// notified (its `cons_event` lies in the range just freed).
    #[inline(always)]
    pub fn publish(&mut self) -> bool {
        // Nothing new (`old == new`) stores the same index again and never notifies;
        // no test for it on the path that always has something to publish.
        let (old, new) = (self.cons_pub, self.cons);
        // Both words located before the fence, which makes the compiler forget
        // what it knew of memory.
        let (index, event) = (self.region.atomic(CONS), self.region.atomic(CONS_EVENT));
        index.store(new, Ordering::Release);
        self.cons_pub = new;
        fence(Ordering::SeqCst);
        let event = event.load(Ordering::Relaxed);
        needs_notify(old, new, event)
    }

    /// Before sleeping for data: asks the writer to notify us once at least `want`
    /// bytes are readable (`want` clamped to `1..=size/2`), fences, and re-checks.
    /// Returns true if the data is already there (do not sleep). [`ByteReader::publish`]
    /// first, or the writer may never get the space to write.
    pub fn request_data_notification(&mut self, want: u32) -> Result<bool, RingError> {
        let want = clamp_want(want, self.size());
        if self.prod_seen.wrapping_sub(self.cons) >= want {
            return Ok(true);
        }
        self.region
            .atomic(PROD_EVENT)
            .store(self.cons.wrapping_add(want), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.refresh_prod()?;
        Ok(self.prod_seen.wrapping_sub(self.cons) >= want)
    }
}

#[cfg(any(test, feature = "std"))]
impl super::RingBuffer {
    /// Initialises a byte ring over this buffer and returns both ends.
    pub fn split_bytes(&mut self) -> Result<(ByteWriter<'_>, ByteReader<'_>), RingError> {
        self.split_bytes_at(0)
    }

    /// Like [`RingBuffer::split_bytes`](super::RingBuffer::split_bytes), with every
    /// index starting at `start`.
    pub fn split_bytes_at(
        &mut self,
        start: u32,
    ) -> Result<(ByteWriter<'_>, ByteReader<'_>), RingError> {
        let region = self.region();
        geometry(&region)?;
        init_header(&region, start);
        Ok((ByteWriter::attach(region)?, ByteReader::attach(region)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{RingBuffer, PAGE_SIZE};

    /// `len` bytes of a recognisable stream starting at stream offset `from`.
    fn pattern(from: u32, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (from as usize + i).wrapping_mul(31) as u8)
            .collect()
    }

    #[test]
    fn data_sizes() {
        assert_eq!(data_size(PAGE_SIZE), 2048);
        assert_eq!(data_size(2 * PAGE_SIZE), 4096);
        assert_eq!(data_size(16 * PAGE_SIZE), 32768);
        assert_eq!(data_size(65 * PAGE_SIZE), 256 * 1024);
        assert_eq!(data_size(HEADER_SIZE), 0);
    }

    #[test]
    fn write_read_round_trip_with_wrap() {
        let mut buf = RingBuffer::new(1);
        let (mut w, mut r) = buf.split_bytes().unwrap();
        assert_eq!(w.size(), 2048);
        let mut got = [0u8; 2048];
        let mut at = 0u32;
        for _ in 0..10 {
            let msg = pattern(at, 1500);
            assert_eq!(w.write(&msg), Ok(1500));
            // Not visible before publish.
            assert_eq!(r.read(&mut got), Ok(0));
            w.publish();
            assert_eq!(r.read(&mut got[..1000]), Ok(1000));
            assert_eq!(r.read(&mut got[1000..]), Ok(500));
            assert_eq!(&got[..1500], &msg[..]);
            r.publish();
            at += 1500;
        }
    }

    #[test]
    fn partial_writes_and_reads() {
        let mut buf = RingBuffer::new(1);
        let (mut w, mut r) = buf.split_bytes().unwrap();
        let big = pattern(0, 3000);
        assert_eq!(w.write(&big), Ok(2048));
        assert_eq!(w.write(&big), Ok(0));
        assert_eq!(w.free(), Ok(0));
        w.publish();
        let mut got = [0u8; 4096];
        assert_eq!(r.available(), Ok(2048));
        assert_eq!(r.read(&mut got[..100]), Ok(100));
        // Space frees only when the reader publishes.
        assert_eq!(w.free(), Ok(0));
        r.publish();
        assert_eq!(w.free(), Ok(100));
        assert_eq!(w.write(&big[2048..]), Ok(100));
        w.publish();
        assert_eq!(r.read(&mut got[100..]), Ok(2048));
        assert_eq!(&got[..2148], &big[..2148]);
    }

    #[test]
    fn data_notifications() {
        let mut buf = RingBuffer::new(1);
        let (mut w, mut r) = buf.split_bytes().unwrap();
        // prod_event starts at start + 1: the first byte notifies.
        w.write(&[1, 2, 3]).unwrap();
        assert!(w.publish());
        w.write(&[4]).unwrap();
        assert!(!w.publish(), "the reader did not ask again");
        let mut got = [0u8; 16];
        assert_eq!(r.read(&mut got), Ok(4));
        r.publish();
        // Wants 10 bytes: 9 do not notify, the tenth does.
        assert_eq!(r.request_data_notification(10), Ok(false));
        w.write(&[0; 9]).unwrap();
        assert!(!w.publish());
        assert_eq!(r.request_data_notification(10), Ok(false));
        w.write(&[0; 1]).unwrap();
        assert!(w.publish());
        assert_eq!(r.request_data_notification(10), Ok(true));
        // `want` is capped at half the ring.
        assert_eq!(r.read(&mut got), Ok(10));
        r.publish();
        assert_eq!(r.request_data_notification(u32::MAX), Ok(false));
        w.write(&[0; 1023]).unwrap();
        assert!(!w.publish());
        w.write(&[0; 1]).unwrap();
        assert!(w.publish());
    }

    #[test]
    fn space_notifications() {
        let mut buf = RingBuffer::new(1);
        let (mut w, mut r) = buf.split_bytes().unwrap();
        assert_eq!(w.write(&[7; 2048]), Ok(2048));
        w.publish();
        assert_eq!(w.request_space_notification(100), Ok(false));
        let mut got = [0u8; 64];
        r.read(&mut got[..50]).unwrap();
        assert!(!r.publish(), "50 bytes free: not yet");
        r.read(&mut got[..49]).unwrap();
        assert!(!r.publish(), "99 bytes free: not yet");
        r.read(&mut got[..1]).unwrap();
        assert!(r.publish(), "100 bytes free");
        r.read(&mut got[..1]).unwrap();
        assert!(!r.publish(), "already notified");
        assert_eq!(w.request_space_notification(100), Ok(true));
    }

    #[test]
    fn indices_wrap_past_u32_max() {
        for start in [u32::MAX - 1000, u32::MAX, u32::MAX - 2047, 0x7fff_ff00] {
            let mut buf = RingBuffer::new(1);
            let (mut w, mut r) = buf.split_bytes_at(start).unwrap();
            let stream = pattern(0, 20_000);
            let (mut sent, mut recvd) = (0usize, Vec::new());
            let mut chunk = [0u8; 777];
            while recvd.len() < stream.len() {
                let end = (sent + 1234).min(stream.len());
                sent += w.write(&stream[sent..end]).unwrap();
                w.publish();
                let n = r.read(&mut chunk).unwrap();
                recvd.extend_from_slice(&chunk[..n]);
                r.publish();
            }
            assert_eq!(recvd, stream);
        }
    }
}
