//! The decoder of multi-buffer frames: a frame's fragments, checked as they
//! come ([`Chain`]), and the fragment arithmetic.

use crate::ring::PAGE_SIZE;

#[cfg(doc)]
use super::FRAME_MAX;
use super::{FRAME_MAX_SG, FRAME_MIN, MAX_FRAGS};

/// Why [`Chain::push`] refused a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragError {
    /// A fragment length out of range: 0 or more than a page, a fragment followed by
    /// another that is not exactly a page, or a frame shorter than [`FRAME_MIN`] or
    /// longer than the vif's limit.
    BadLength(usize),
    /// More fragments than the vif's limit allows (any continuation without
    /// `feature-sg`).
    TooManyFragments,
}

impl core::fmt::Display for FragError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FragError::BadLength(n) => write!(f, "fragment or frame length {n} out of range"),
            FragError::TooManyFragments => f.write_str("too many fragments in one frame"),
        }
    }
}

impl core::error::Error for FragError {}

/// The fragments of one frame as they come off a ring (TX requests for the backend,
/// RX responses for the frontend): the one decoder of the "Large frames" rules.
///
/// [`Chain::push`] each fragment in ring order; `Ok(true)` says the frame is
/// complete ([`Chain::ids`], [`Chain::len`]), then [`Chain::clear`] before the next
/// one. On `Err` the chain is left as it was before the call: the caller answers (or
/// re-posts) every id of the chain and the refused one, then clears it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    ids: [u16; MAX_FRAGS],
    count: usize,
    len: usize,
    done: bool,
}

impl Chain {
    /// An empty chain.
    pub const fn new() -> Self {
        Chain {
            ids: [0; MAX_FRAGS],
            count: 0,
            len: 0,
            done: false,
        }
    }

    /// Adds fragment `id` of `len` bytes, with the "more" flag `more`, to a frame of at
    /// most `frame_max` bytes ([`FRAME_MAX`] without `feature-sg`, [`FRAME_MAX_SG`]
    /// with it). The id is not checked here (the caller checks it against its buffer
    /// sets). `Ok(true)`: the frame is complete.
    pub fn push(
        &mut self,
        id: u16,
        len: usize,
        more: bool,
        frame_max: usize,
    ) -> Result<bool, FragError> {
        if self.done {
            // A caller that forgot `clear`: start over rather than grow past the end.
            self.clear();
        }
        let max_frags = frame_max.div_ceil(PAGE_SIZE).clamp(1, MAX_FRAGS);
        if self.count >= max_frags || (more && self.count + 1 >= max_frags) {
            return Err(FragError::TooManyFragments);
        }
        if more {
            if len != PAGE_SIZE {
                return Err(FragError::BadLength(len));
            }
        } else if len == 0 || len > PAGE_SIZE {
            return Err(FragError::BadLength(len));
        }
        let total = self.len + len;
        if !more && !(FRAME_MIN..=frame_max.min(FRAME_MAX_SG)).contains(&total) {
            return Err(FragError::BadLength(total));
        }
        self.ids[self.count] = id;
        self.count += 1;
        self.len = total;
        self.done = !more;
        Ok(self.done)
    }

    /// The buffer ids pushed so far, in frame order.
    pub fn ids(&self) -> &[u16] {
        &self.ids[..self.count]
    }

    /// Bytes pushed so far (the frame's length once complete).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no fragment was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the last fragment pushed ended the frame.
    pub fn is_complete(&self) -> bool {
        self.done
    }

    /// Forgets every fragment.
    pub fn clear(&mut self) {
        *self = Chain::new();
    }

    /// How many fragments a frame of `len` bytes takes.
    pub const fn frags(len: usize) -> usize {
        if len == 0 {
            1
        } else {
            len.div_ceil(PAGE_SIZE)
        }
    }

    /// The length of fragment `i` of a frame of `len` bytes.
    pub const fn frag_len(len: usize, i: usize) -> usize {
        let start = i * PAGE_SIZE;
        if len <= start {
            0
        } else if len - start > PAGE_SIZE {
            PAGE_SIZE
        } else {
            len - start
        }
    }
}
