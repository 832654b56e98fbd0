//! Grant tables: how a domain lets another domain map or copy one of its pages.
//!
//! Each domain owns a grant table of [`GRANT_ENTRIES`] entries in a page it
//! shares with the hypervisor (its address is in the start-info page). To
//! grant frame `gfn` (guest-physical address >> 12) to domain `d`, the granter
//! writes `frame = gfn`, then stores `header = PERMIT_ACCESS [| READONLY] | d << 16`
//! with release ordering; the index of the entry is the grant reference it
//! passes to `d` (through the store, or a ring).
//!
//! The grantee maps the grant into its own stage-2 at a page it chooses in the
//! grant window ([`GRANT_WINDOW_BASE`]), unmaps it, or has the hypervisor copy
//! to or from it. While a grant is mapped (or being copied), the hypervisor
//! keeps [`gtf::READING`] / [`gtf::WRITING`] set in the entry's header; the
//! granter ends access with a compare-and-swap of the header to 0 that expects
//! those bits clear ([`GrantEntry::end_access`]), so it cannot take a page back
//! behind a mapper's back. When a domain stops, the hypervisor unmaps
//! everything it mapped and takes away every mapping of its pages from the
//! grantees (pointing the grantee's window page at a scratch page of the
//! grantee's own, so that a late access reads garbage instead of faulting).
//!
//! Xen v1 grant entries have the same shape: 16-bit flags, 16-bit domain id,
//! 32-bit frame.

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, Ordering};
use static_assertions::const_assert;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Entries in a domain's grant table (one page of 8-byte entries).
pub const GRANT_ENTRIES: u32 = 512;
/// A grant reference: an index into the granter's table.
pub type GrantRef = u32;

/// Start of the guest-physical window where a domain maps grants.
pub const GRANT_WINDOW_BASE: u64 = 0xc000_0000;
/// Size of the grant window.
pub const GRANT_WINDOW_SIZE: u64 = 0x2000_0000;
/// Most grants one domain can have mapped at a time.
pub const MAX_MAPPINGS: u32 = 512;

/// Bits of the low 16 bits of [`GrantEntry::header`].
pub mod gtf {
    /// The entry grants access (otherwise it is invalid).
    pub const PERMIT_ACCESS: u32 = 1 << 0;
    /// The grantee may only read.
    pub const READONLY: u32 = 1 << 2;
    /// Set by the hypervisor while the grantee has the frame mapped or is
    /// copying from it.
    pub const READING: u32 = 1 << 3;
    /// Set by the hypervisor while the grantee has the frame mapped writable or
    /// is copying to it.
    pub const WRITING: u32 = 1 << 4;
    /// The in-use bits.
    pub const IN_USE: u32 = READING | WRITING;
    /// Every flag bit (the domain id is in bits 16..32).
    pub const MASK: u32 = 0xffff;
}

/// One grant table entry.
#[derive(Debug, FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct GrantEntry {
    /// Flags ([`gtf`]) in bits 0..16, the grantee's domain id in bits 16..32.
    /// One word, so that the hypervisor checks flags and domain together.
    pub header: AtomicU32,
    /// The granted frame: guest-physical address >> 12, in the granter's space.
    pub frame: AtomicU32,
}

const_assert!(size_of::<GrantEntry>() == 8);
// The window is page-aligned, inside the guests' 4 GiB identity map, and big
// enough for every mapping a domain may hold.
const_assert!(GRANT_WINDOW_BASE.is_multiple_of(crate::layout::PAGE_SIZE));
const_assert!(GRANT_WINDOW_BASE + GRANT_WINDOW_SIZE <= 1 << 32);
const_assert!(MAX_MAPPINGS as u64 * crate::layout::PAGE_SIZE <= GRANT_WINDOW_SIZE);
const_assert!(
    size_of::<GrantEntry>() * GRANT_ENTRIES as usize == crate::layout::PAGE_SIZE as usize
);

/// Packs a header value.
pub const fn header(flags: u32, domid: u32) -> u32 {
    (flags & gtf::MASK) | (domid << 16)
}

/// Why the granter could not end access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndAccessError {
    /// The grantee has the frame mapped (or a copy is under way).
    InUse,
    /// The entry grants nothing.
    NotGranted,
}

impl GrantEntry {
    /// Granter side: grants `gfn` to `domid`. The caller must own the entry
    /// (not in use).
    pub fn grant(&self, domid: u32, gfn: u32, readonly: bool) {
        self.frame.store(gfn, Ordering::Relaxed);
        let flags = gtf::PERMIT_ACCESS | if readonly { gtf::READONLY } else { 0 };
        self.header.store(header(flags, domid), Ordering::Release);
    }

    /// Granter side: revokes the grant unless it is in use.
    pub fn end_access(&self) -> Result<(), EndAccessError> {
        let mut cur = self.header.load(Ordering::Acquire);
        loop {
            if cur & gtf::IN_USE != 0 {
                return Err(EndAccessError::InUse);
            }
            if cur & gtf::PERMIT_ACCESS == 0 {
                return Err(EndAccessError::NotGranted);
            }
            match self
                .header
                .compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    /// Whether the hypervisor marks the entry in use.
    pub fn in_use(&self) -> bool {
        self.header.load(Ordering::Acquire) & gtf::IN_USE != 0
    }
}

/// Flags of [`Hypercall::GrantMap`](crate::Hypercall::GrantMap) (`x4`).
pub mod map_flags {
    /// Map read-only (required for a read-only grant).
    pub const READONLY: u64 = 1 << 0;
}

/// The domain id that means "the caller" in a [`CopySide`].
pub const DOMID_SELF: u16 = 0x7ff0;

/// `CopySide::flags`: `gref_or_gfn` is a grant reference of domain `domid`;
/// otherwise it is a frame of the caller's own memory (and `domid` must be
/// [`DOMID_SELF`]).
pub const COPY_GREF: u16 = 1 << 0;

/// One side of a grant copy.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CopySide {
    /// A grant reference ([`COPY_GREF`]) or one of the caller's frames.
    pub gref_or_gfn: u64,
    /// Byte offset in the page.
    pub offset: u32,
    /// The granter for a grant reference, or [`DOMID_SELF`].
    pub domid: u16,
    /// [`COPY_GREF`] or 0.
    pub flags: u16,
}

/// A grant copy request, in the caller's memory; its address is `x1` of
/// [`Hypercall::GrantCopy`](crate::Hypercall::GrantCopy). Each side stays in
/// one page: `offset + len <= 4096`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GrantCopy {
    /// Where to read.
    pub source: CopySide,
    /// Where to write.
    pub dest: CopySide,
    /// Bytes to copy.
    pub len: u32,
    /// Reserved, zero.
    pub _reserved: u32,
}

const_assert!(size_of::<CopySide>() == 16);
const_assert!(size_of::<GrantCopy>() == 40);
const_assert!(offset_of!(GrantCopy, dest) == 16);
const_assert!(offset_of!(GrantCopy, len) == 32);

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn grant_and_end() {
        let e = GrantEntry::new_zeroed();
        assert_eq!(e.end_access(), Err(EndAccessError::NotGranted));
        e.grant(3, 0x40123, true);
        let h = e.header.load(Ordering::Relaxed);
        assert_eq!(h >> 16, 3);
        assert_eq!(h & gtf::MASK, gtf::PERMIT_ACCESS | gtf::READONLY);
        e.header.fetch_or(gtf::READING, Ordering::Relaxed);
        assert!(e.in_use());
        assert_eq!(e.end_access(), Err(EndAccessError::InUse));
        e.header.fetch_and(!gtf::READING, Ordering::Relaxed);
        assert_eq!(e.end_access(), Ok(()));
        assert_eq!(e.header.load(Ordering::Relaxed), 0);
    }
}
