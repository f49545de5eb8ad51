//! Counting heap allocations per thread (cargo feature `alloc-count`).
//!
//! Design: [`Counting`] wraps the real global allocator (mimalloc in the binary) and adds
//! one to a thread-local counter on every `alloc`, `alloc_zeroed` and `realloc`; `dealloc`
//! is not counted. The counter is a `thread_local!` `Cell<u64>` with `const`
//! initialisation and no destructor, so reaching it is a plain TLS access: it never
//! allocates (which inside the allocator would recurse), never registers a destructor,
//! and costs no atomic read-modify-write (each thread has its own). Workers publish
//! their own thread's count into the single-writer stat `server.worker_<i>.heap_allocations`
//! at the end of every request (`worker::WorkerContext::publish_allocations`), so the
//! figure comes from the real binary under real load, read through `/stats`.
//!
//! `tests/alloc_count.rs` uses it as a regression guard: at most 2 allocations per
//! proxied keep-alive request in steady state. The feature is off in release builds:
//! the wrapper costs a TLS increment per allocation, which is cheap but not free.
//!
//! `GlobalAlloc` is an unsafe trait, so this is the second module with `unsafe` in
//! ringway (after `control/adopt.rs`); every `unsafe` here only forwards the caller's
//! own contract to the wrapped allocator.

#![allow(unsafe_code)]

use std::{
    alloc::{GlobalAlloc, Layout},
    cell::Cell,
};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// A global allocator that counts the allocations of each thread, then delegates to `A`.
#[derive(Debug)]
pub struct Counting<A>(pub A);

#[inline]
fn count() {
    // `try_with` never fails for a `const`-initialised cell without a destructor; it is
    // used anyway so that the allocator can never panic.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get().wrapping_add(1)));
}

/// Allocations made so far by the calling thread (alloc, alloc_zeroed and realloc).
#[inline]
pub fn allocations() -> u64 {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

// SAFETY: every method forwards to the wrapped allocator with the caller's arguments
// unchanged, so `A`'s guarantees are this allocator's guarantees; counting touches only
// a thread-local integer and neither allocates nor unwinds.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { self.0.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `A`, with `layout`.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `A`, with `layout`.
        unsafe { self.0.dealloc(ptr, layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SYSTEM: Counting<std::alloc::System> = Counting(std::alloc::System);

    #[test]
    fn counts_this_threads_allocations() {
        let before = allocations();
        let layout = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: a non-zero layout; every pointer is freed with the layout it has.
        unsafe {
            let p = SYSTEM.alloc(layout);
            assert!(!p.is_null());
            let p = SYSTEM.realloc(p, layout, 128);
            assert!(!p.is_null());
            SYSTEM.dealloc(p, Layout::from_size_align(128, 8).unwrap());
            let z = SYSTEM.alloc_zeroed(layout);
            assert!(!z.is_null());
            SYSTEM.dealloc(z, layout);
        }
        assert_eq!(allocations() - before, 3);
        let other = std::thread::spawn(allocations).join().unwrap();
        assert_eq!(other, 0, "another thread's counter starts at zero");
    }
}
