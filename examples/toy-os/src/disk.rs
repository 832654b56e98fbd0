//! The virtual disk `vbd0` (blkfront, served by the driver domain's
//! blkback): `disk write TEXT` stores a line of text in sector 0, `disk
//! read` reads it back. Like the network, the disk is one [`Blkfront`]
//! behind a [`Mutex`], used by one thread per command; a transfer parks
//! only that thread.

use parapet_frontends::blkfront::{BlkError, Blkfront};
use parapet_guest::event::DomId;
use parapet_guest::{println, time};

use crate::sync::Mutex;

/// Stack for a disk thread (blkfront needs about 6 KiB, see `net::STACK`).
pub const STACK: usize = 24 * 1024;

/// Sector 0 starts with this, then the text's length (u32, little endian).
const MAGIC: &[u8; 8] = b"TOYOSTXT";
const SECTOR: usize = 512;
/// Longest text kept.
pub const MAX_TEXT: usize = SECTOR - 12;

static DISK: Mutex<Option<Blkfront>> = Mutex::new(None);
static BACKEND: spin::Once<DomId> = spin::Once::new();

/// Records which domain serves `vbd0`; it is connected on first use.
pub fn configure(backend: DomId) {
    BACKEND.call_once(|| backend);
}

fn with_disk<R>(f: impl FnOnce(&mut Blkfront) -> Result<R, BlkError>) -> Result<R, BlkError> {
    let mut disk = DISK.lock();
    if disk.is_none() {
        let &backend = BACKEND.get().ok_or(BlkError::Disconnected)?;
        let d = Blkfront::connect(backend, "vbd0")?;
        println!("disk: vbd0 connected, {} sectors", d.info().sectors);
        *disk = Some(d);
    }
    match disk.as_mut() {
        Some(d) => f(d),
        None => Err(BlkError::Disconnected),
    }
}

/// Times a disk command waited for another one to finish with the disk.
pub fn waits() -> u64 {
    DISK.contended()
}

/// `disk write TEXT`: writes and flushes sector 0.
pub fn write(text: &str) {
    let text = &text.as_bytes()[..text.len().min(MAX_TEXT)];
    let mut sector = [0u8; SECTOR];
    sector[..8].copy_from_slice(MAGIC);
    sector[8..12].copy_from_slice(&(text.len() as u32).to_le_bytes());
    sector[12..12 + text.len()].copy_from_slice(text);
    let start = time::now();
    match with_disk(|d| d.write(0, &sector).and_then(|()| d.flush())) {
        Ok(()) => println!(
            "disk: wrote {} bytes to vbd0 sector 0 in {} ms",
            text.len(),
            time::since(start).as_millis()
        ),
        Err(e) => println!("disk: write failed: {e}"),
    }
}

/// `disk read`: reads sector 0 and prints the text found there.
pub fn read() {
    let mut sector = [0u8; SECTOR];
    match with_disk(|d| d.read(0, &mut sector)) {
        Ok(()) if &sector[..8] == MAGIC => {
            let len = u32::from_le_bytes([sector[8], sector[9], sector[10], sector[11]]) as usize;
            let text = &sector[12..12 + len.min(MAX_TEXT)];
            println!(
                "disk: read {:?} from vbd0 sector 0",
                core::str::from_utf8(text).unwrap_or("(not UTF-8)")
            );
        }
        Ok(()) => println!("disk: sector 0 of vbd0 holds no text yet (try `disk write TEXT`)"),
        Err(e) => println!("disk: read failed: {e}"),
    }
}
