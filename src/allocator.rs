//! The global allocator (mimalloc, set in `main.rs`) and the one call ringway makes into
//! it: giving a worker's free memory back to the system.
//!
//! mimalloc keeps a thread's emptied pages in that thread's heap and returns memory to
//! the kernel (`MADV_DONTNEED`) only after a purge delay (1 s), and it does both as side
//! effects of later allocations. A worker that turns quiet after a burst allocates
//! nothing more, so without a nudge the burst's pages stay resident for good. Each worker
//! calls [`collect`] from its once-a-second sweep (`worker::sweep`), right after its
//! buffer pool dropped the chunks the burst left: every busy second a normal collect
//! (frees the thread's empty pages, runs the purges that are due; microseconds), and in
//! the first quiet second after activity one forced collect (every page visited, every
//! pending purge done now; well under a millisecond on a small heap), so the resident
//! set is back a second or two after a burst. A worker that stays quiet calls nothing.
//!
//! This module and `control/adopt.rs` are the only places with `unsafe` in ringway.

#![allow(unsafe_code)]

// The `mimalloc` crate links the static library `mi_collect` comes from; naming it here
// links it into binaries that do not use it as their allocator too (test binaries).
extern crate mimalloc;

extern "C" {
    /// mimalloc's `void mi_collect(bool force)`, from the static library the `mimalloc`
    /// crate links.
    fn mi_collect(force: bool);
}

/// Frees the calling thread's empty allocator pages and purges memory whose purge delay
/// has passed; `force` purges everything free now (for a thread that just turned quiet:
/// a busy one would only fault the pages back in).
pub fn collect(force: bool) {
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any
    // time; on a thread that never allocated through mimalloc (a test binary with the
    // system allocator) it returns at once.
    unsafe { mi_collect(force) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn collect_can_run_on_any_thread() {
        super::collect(false);
        std::thread::spawn(|| super::collect(true)).join().unwrap();
    }
}
