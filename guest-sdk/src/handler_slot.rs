//! A handler table entry that the dispatcher reads without a lock.
//!
//! Event and virtual-IRQ dispatch runs on every upcall and every unmask that
//! finds work: taking a spin lock there (and copying the table out) cost
//! about twenty instructions per dispatch. A slot is one atomic word holding
//! the function's address (0: no handler), so that registering is one store
//! and dispatching one load.
//!
//! The only unsafe code is turning the stored address back into the function
//! pointer it came from; [`Slot`] stores nothing else.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A function-pointer type a [`Slot`] can hold.
pub(crate) trait FnPtr: Copy + sealed::Sealed {
    /// The function's address (never 0: function pointers are not null).
    fn addr(self) -> usize;
    /// The function at `addr`.
    ///
    /// # Safety
    /// `addr` must come from [`FnPtr::addr`] of a value of the same type.
    unsafe fn from_addr(addr: usize) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for fn() {}
    impl Sealed for fn(u32) {}
}

impl FnPtr for fn() {
    fn addr(self) -> usize {
        self as usize
    }
    unsafe fn from_addr(addr: usize) -> Self {
        // SAFETY: the caller guarantees `addr` is the address of an `fn()`;
        // function pointers and `usize` have the same size on every target the
        // SDK builds for.
        unsafe { core::mem::transmute::<usize, fn()>(addr) }
    }
}

impl FnPtr for fn(u32) {
    fn addr(self) -> usize {
        self as usize
    }
    unsafe fn from_addr(addr: usize) -> Self {
        // SAFETY: as above, for an `fn(u32)`.
        unsafe { core::mem::transmute::<usize, fn(u32)>(addr) }
    }
}

/// One handler, or none, read and written without a lock.
pub(crate) struct Slot<F: FnPtr> {
    addr: AtomicUsize,
    _f: PhantomData<F>,
}

impl<F: FnPtr> Slot<F> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        Self {
            addr: AtomicUsize::new(0),
            _f: PhantomData,
        }
    }

    /// Installs `f`, or removes the handler with `None`.
    pub(crate) fn set(&self, f: Option<F>) {
        self.addr.store(f.map_or(0, FnPtr::addr), Ordering::Release);
    }

    /// The handler, if any.
    #[inline]
    pub(crate) fn get(&self) -> Option<F> {
        match self.addr.load(Ordering::Acquire) {
            0 => None,
            // SAFETY: only `set` writes the slot, with `FnPtr::addr` of an `F`.
            a => Some(unsafe { F::from_addr(a) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    static SEEN: AtomicU32 = AtomicU32::new(0);
    fn add(n: u32) {
        SEEN.fetch_add(n, Ordering::SeqCst);
    }
    fn one() {
        SEEN.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn set_get_and_clear() {
        let s: Slot<fn(u32)> = Slot::new();
        assert!(s.get().is_none());
        s.set(Some(add));
        s.get().unwrap()(5);
        let u: Slot<fn()> = Slot::new();
        u.set(Some(one));
        u.get().unwrap()();
        assert_eq!(SEEN.load(Ordering::SeqCst), 6);
        s.set(None);
        assert!(s.get().is_none());
    }
}
