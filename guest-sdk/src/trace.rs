//! Marks in the hypervisor's trace: `trace::mark("ping 42")` puts the text
//! on this vCPU's CPU track, between the hypervisor's own records, when the
//! system runs with `parapet up --trace FILE`. Without tracing a mark costs
//! one fast hypercall and records nothing.
//!
//! A mark is at most [`MARK_MAX`] bytes (it travels in two registers): a
//! longer one is refused with [`MarkError::TooLong`], never cut short.

pub use parapet_abi::trace::MARK_MAX;
use parapet_abi::{Call, HvError};

use crate::hypercall::call_plain;

/// Why a mark was not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkError {
    /// The text is longer than [`MARK_MAX`] bytes.
    TooLong {
        /// Its length.
        len: usize,
    },
    /// The hypervisor refused the call.
    Hv(HvError),
}

impl core::fmt::Display for MarkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MarkError::TooLong { len } => {
                write!(f, "a trace mark of {len} bytes (at most {MARK_MAX})")
            }
            MarkError::Hv(e) => write!(f, "trace mark refused: {e:?}"),
        }
    }
}

/// The `TraceMark` call carrying `text`.
pub fn mark_call(text: &str) -> Result<Call, MarkError> {
    let bytes = text.as_bytes();
    if bytes.len() > MARK_MAX {
        return Err(MarkError::TooLong { len: bytes.len() });
    }
    let mut buf = [0u8; MARK_MAX];
    buf[..bytes.len()].copy_from_slice(bytes);
    let (lo, hi) = buf.split_at(8);
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    Ok(Call::TraceMark {
        text: [word(lo), word(hi)],
        len: bytes.len() as u64,
    })
}

/// Records `text` in the trace at this point.
pub fn mark(text: &str) -> Result<(), MarkError> {
    call_plain(mark_call(text)?)
        .map(|_| ())
        .map_err(MarkError::Hv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_the_text_little_endian() {
        let Call::TraceMark { text, len } = mark_call("ping 42").unwrap() else {
            panic!("not a TraceMark");
        };
        assert_eq!(len, 7);
        assert_eq!(text[0].to_le_bytes(), *b"ping 42\0");
        assert_eq!(text[1], 0);
        let Call::TraceMark { text, len } = mark_call("0123456789abcdef").unwrap() else {
            panic!("not a TraceMark");
        };
        assert_eq!(len, 16);
        assert_eq!(text[1].to_le_bytes(), *b"89abcdef");
    }

    #[test]
    fn refuses_a_long_mark() {
        assert_eq!(
            mark_call("0123456789abcdefg"),
            Err(MarkError::TooLong { len: 17 })
        );
    }
}
