//! Minimal ELF64 reader for domain images: checks the header and lists the
//! `PT_LOAD` segments, refusing anything that would land outside the domain.
#![deny(unsafe_code)]

use zerocopy::{FromBytes, Immutable, KnownLayout};

#[derive(FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Header {
    ident: [u8; 16],
    kind: u16,
    machine: u16,
    version: u32,
    entry: u64,
    phoff: u64,
    shoff: u64,
    flags: u32,
    ehsize: u16,
    phentsize: u16,
    phnum: u16,
    shentsize: u16,
    shnum: u16,
    shstrndx: u16,
}
static_assertions::const_assert_eq!(core::mem::size_of::<Header>(), 64);

#[derive(FromBytes, Immutable, KnownLayout, Clone, Copy)]
#[repr(C)]
struct ProgramHeader {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}
static_assertions::const_assert_eq!(core::mem::size_of::<ProgramHeader>(), 56);

const PT_LOAD: u32 = 1;
const EM_AARCH64: u16 = 183;

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not a little-endian ELF64 executable for AArch64.
    NotAarch64Elf,
    /// A header or segment lies outside the file.
    Truncated,
    /// A segment or the entry point falls outside the allowed range.
    OutOfRange,
    /// More than [`MAX_SEGMENTS`] loadable segments.
    TooManySegments,
}

impl ElfError {
    /// A message for the console.
    pub fn message(self) -> &'static str {
        match self {
            ElfError::NotAarch64Elf => "not an AArch64 ELF64 executable",
            ElfError::Truncated => "truncated ELF file",
            ElfError::OutOfRange => "segment or entry point outside the domain's RAM",
            ElfError::TooManySegments => "too many loadable segments",
        }
    }
}

/// Most `PT_LOAD` segments accepted.
pub const MAX_SEGMENTS: usize = 8;

/// One segment to load: copy `file_range` of the file to `addr`, then zero up
/// to `addr + mem_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Segment {
    /// Guest-physical load address.
    pub addr: u64,
    /// Offset of the segment's bytes in the file.
    pub file_offset: usize,
    /// Number of bytes in the file.
    pub file_size: usize,
    /// Size in memory (at least `file_size`).
    pub mem_size: u64,
}

/// A checked image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Image {
    /// Entry point.
    pub entry: u64,
    /// Loadable segments (the first `count`).
    pub segments: [Segment; MAX_SEGMENTS],
    /// Number of valid segments.
    pub count: usize,
    /// Highest address any segment reaches.
    pub end: u64,
}

/// Parses `file` and checks that every segment and the entry point lie in
/// `[base, limit)`.
pub fn parse(file: &[u8], base: u64, limit: u64) -> Result<Image, ElfError> {
    let (header, _) = Header::read_from_prefix(file).map_err(|_| ElfError::Truncated)?;
    if &header.ident[..4] != b"\x7fELF"
        || header.ident[4] != 2
        || header.ident[5] != 1
        || header.machine != EM_AARCH64
        || header.kind != 2
        || usize::from(header.phentsize) != core::mem::size_of::<ProgramHeader>()
    {
        return Err(ElfError::NotAarch64Elf);
    }
    let mut image = Image {
        entry: header.entry,
        segments: [Segment::default(); MAX_SEGMENTS],
        count: 0,
        end: base,
    };
    for i in 0..usize::from(header.phnum) {
        let at = usize::try_from(header.phoff)
            .ok()
            .and_then(|off| off.checked_add(i * core::mem::size_of::<ProgramHeader>()))
            .ok_or(ElfError::Truncated)?;
        let bytes = file.get(at..).ok_or(ElfError::Truncated)?;
        let (ph, _) = ProgramHeader::read_from_prefix(bytes).map_err(|_| ElfError::Truncated)?;
        if ph.kind != PT_LOAD || ph.memsz == 0 {
            continue;
        }
        let file_offset = usize::try_from(ph.offset).map_err(|_| ElfError::Truncated)?;
        let file_size = usize::try_from(ph.filesz).map_err(|_| ElfError::Truncated)?;
        let file_end = file_offset
            .checked_add(file_size)
            .ok_or(ElfError::Truncated)?;
        if file_end > file.len() || ph.filesz > ph.memsz {
            return Err(ElfError::Truncated);
        }
        let end = ph.paddr.checked_add(ph.memsz).ok_or(ElfError::OutOfRange)?;
        if ph.paddr < base || end > limit {
            return Err(ElfError::OutOfRange);
        }
        if image.count == MAX_SEGMENTS {
            return Err(ElfError::TooManySegments);
        }
        image.segments[image.count] = Segment {
            addr: ph.paddr,
            file_offset,
            file_size,
            mem_size: ph.memsz,
        };
        image.count += 1;
        image.end = image.end.max(end);
    }
    if image.count == 0 || image.entry < base || image.entry >= image.end {
        return Err(ElfError::OutOfRange);
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    fn build(entry: u64, segs: &[(u64, u64, u64)]) -> Vec<u8> {
        // header, program headers, then the file bytes of each segment
        let mut out = vec![0u8; 64 + 56 * segs.len()];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[16..18].copy_from_slice(&2u16.to_le_bytes());
        out[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        out[24..32].copy_from_slice(&entry.to_le_bytes());
        out[32..40].copy_from_slice(&64u64.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&u16::try_from(segs.len()).unwrap().to_le_bytes());
        for (i, &(addr, filesz, memsz)) in segs.iter().enumerate() {
            let ph = [
                PT_LOAD as u64 | (5 << 32),
                out.len() as u64,
                addr,
                addr,
                filesz,
                memsz,
                4096,
            ];
            let at = 64 + 56 * i;
            out[at..at + 56].copy_from_slice(ph.as_bytes());
            out.extend(std::iter::repeat_n(0xab, usize::try_from(filesz).unwrap()));
        }
        out
    }

    #[test]
    fn accepts_a_well_formed_image() {
        let file = build(
            0x4000_0000,
            &[(0x4000_0000, 0x100, 0x100), (0x4000_1000, 0x10, 0x2000)],
        );
        let img = parse(&file, 0x4000_0000, 0x4100_0000).unwrap();
        assert_eq!(img.count, 2);
        assert_eq!(img.entry, 0x4000_0000);
        assert_eq!(img.end, 0x4000_3000);
        assert_eq!(img.segments[1].mem_size, 0x2000);
        assert_eq!(&file[img.segments[0].file_offset..][..2], &[0xab, 0xab]);
    }

    #[test]
    fn refuses_garbage_and_escapes() {
        assert_eq!(parse(b"hello", 0, u64::MAX), Err(ElfError::Truncated));
        assert_eq!(
            parse(&[0u8; 128], 0, u64::MAX),
            Err(ElfError::NotAarch64Elf)
        );
        let outside = build(0x4000_0000, &[(0x3fff_f000, 0x100, 0x2000)]);
        assert_eq!(
            parse(&outside, 0x4000_0000, 0x4100_0000),
            Err(ElfError::OutOfRange)
        );
        let past_end = build(0x4000_0000, &[(0x40ff_f000, 0x100, 0x2000)]);
        assert_eq!(
            parse(&past_end, 0x4000_0000, 0x4100_0000),
            Err(ElfError::OutOfRange)
        );
        let bad_entry = build(0x5000_0000, &[(0x4000_0000, 0x100, 0x100)]);
        assert_eq!(
            parse(&bad_entry, 0x4000_0000, 0x4100_0000),
            Err(ElfError::OutOfRange)
        );
        let mut truncated = build(0x4000_0000, &[(0x4000_0000, 0x100, 0x100)]);
        truncated.truncate(truncated.len() - 1);
        assert_eq!(
            parse(&truncated, 0x4000_0000, 0x4100_0000),
            Err(ElfError::Truncated)
        );
        let wrap = build(0x4000_0000, &[(u64::MAX - 10, 0, 100)]);
        assert_eq!(parse(&wrap, 0, u64::MAX), Err(ElfError::OutOfRange));
    }
}
