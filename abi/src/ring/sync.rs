//! The atomics the ring protocol uses: `core`'s normally, loom's under `cfg(loom)` so
//! that the model checker sees every access to the shared indices.

#[cfg(not(loom))]
pub use core::sync::atomic::{fence, AtomicU32, Ordering};
#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU32, Ordering};
