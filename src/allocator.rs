//! The global allocator: mimalloc, with everything a client connection allocates kept
//! apart from what lives for the worker's whole life; and the calls that give a worker's
//! free memory back to the system.
//!
//! **Why two heaps.** mimalloc carves each small size class into 64 KiB pages and returns
//! a page to the kernel only when every block in it is free. A worker's long-lived small
//! objects (the wakers its idle tasks registered, its command channel's hook, small
//! tables) sit in the first page of their size class; a burst of connections used to
//! fill that same page with its own objects, touching all 64 KiB, and when the burst was
//! over the page kept its handful of long-lived blocks and stayed resident for good.
//! Measured by reading mimalloc's page table from `/proc/PID/mem` (quickstart, 2 workers,
//! 1,000-connection burst): each worker's 64, 96 and 128-byte pages, holding 5, 2 and 1-2
//! live blocks, went from 1-2 to 16 resident 4 KiB pages, most of the ~650 KiB a burst
//! left behind. So, much as nginx gives each connection its own pool, a client
//! connection's task allocates from a separate mimalloc heap (one for the process; each
//! thread allocates through its own part of it): a connection's objects never share a
//! page with the worker's, and once the burst's connections are gone their pages are
//! empty and go back. It costs about 50 KiB resident (the heap's bookkeeping) and one
//! thread-local read per allocation; instructions per request are unchanged (callgrind).
//!
//! **Arena size.** A heap keeps ~77 bitmaps per arena, each sized to the whole arena,
//! and touches every one of them; with mimalloc's 1 GiB arenas that is ~160 KiB resident
//! per heap. ringway reserves 64 MiB arenas instead (`size_arenas`, run before `main`;
//! `MIMALLOC_ARENA_RESERVE` in the environment still wins): ~10 KiB per heap, and more
//! memory simply takes more arenas, whose address space is reserved, not committed.
//!
//! **What goes where.** [`InConnectionHeap`] wraps a connection task's future: while it is
//! polled, [`Mimalloc`] allocates from the connection heap; [`in_connection_heap`] does
//! the same for a closure (the `spawn` that allocates the task itself, and with io_uring
//! the registration of the accepted socket; with epoll monoio's accept registers it, so
//! that accept is polled in the connection heap too). Everything else (start-up, the
//! control thread, sweeps, health checks, the rest of the accept loops) uses mimalloc's
//! default heap. Objects a connection creates that outlive it (a pooled upstream
//! connection, a grown slab) simply stay in the connection heap until freed: any block
//! can be freed from anywhere, whichever heap it came from.
//!
//! **Giving memory back.** mimalloc keeps a thread's emptied pages and returns memory to
//! the kernel (`MADV_DONTNEED`) only after a purge delay, and it does both as side effects
//! of later allocations. A worker that turns quiet after a burst allocates nothing more,
//! so without a nudge the burst's pages stay resident. Each worker calls [`collect`] from
//! its once-a-second sweep (`worker::sweep`), right after its buffer pool dropped the
//! chunks the burst left: every busy second a normal collect of both heaps (frees the
//! thread's empty pages, runs the purges that are due; microseconds), and in the first
//! quiet second after activity one forced collect (every page visited, every pending
//! purge done now; well under a millisecond on a small heap).
//!
//! This module and `control/adopt.rs` are the only places with `unsafe` in ringway.

#![allow(unsafe_code)]

use std::{
    alloc::{GlobalAlloc, Layout},
    cell::Cell,
    ffi::{c_int, c_long, c_void},
    future::Future,
    pin::Pin,
    ptr::{self, NonNull},
    sync::OnceLock,
    task::{Context, Poll},
};

// The `mimalloc` crate builds and links the static library these functions come from;
// naming it here links it into binaries that do not use [`Mimalloc`] (test binaries).
extern crate mimalloc;

/// mimalloc's `mi_heap_t`, only ever handled by pointer.
type RawHeap = c_void;

extern "C" {
    fn mi_malloc_aligned(size: usize, alignment: usize) -> *mut c_void;
    fn mi_zalloc_aligned(size: usize, alignment: usize) -> *mut c_void;
    fn mi_realloc_aligned(p: *mut c_void, newsize: usize, alignment: usize) -> *mut c_void;
    fn mi_free(p: *mut c_void);
    fn mi_collect(force: bool);
    fn mi_option_set(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_heap_new() -> *mut RawHeap;
    fn mi_heap_malloc_aligned(heap: *mut RawHeap, size: usize, alignment: usize) -> *mut c_void;
    fn mi_heap_zalloc_aligned(heap: *mut RawHeap, size: usize, alignment: usize) -> *mut c_void;
    fn mi_heap_realloc_aligned(
        heap: *mut RawHeap,
        p: *mut c_void,
        newsize: usize,
        alignment: usize,
    ) -> *mut c_void;
    fn mi_heap_collect(heap: *mut RawHeap, force: bool);
    fn mi_process_info(
        elapsed_msecs: *mut usize,
        user_msecs: *mut usize,
        system_msecs: *mut usize,
        current_rss: *mut usize,
        peak_rss: *mut usize,
        current_commit: *mut usize,
        peak_commit: *mut usize,
        page_faults: *mut usize,
    );
    #[cfg(test)]
    fn mi_heap_contains(heap: *const RawHeap, p: *const c_void) -> bool;
}

/// The process's memory as mimalloc sees it (Envoy's `server.memory_*` stats).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Bytes mimalloc has committed (its heaps' in-use and cached pages).
    pub committed: u64,
    /// Resident set size: bytes in physical memory.
    pub resident: u64,
}

/// Reads [`Memory`] (a few system calls' worth: the control thread, at a scrape).
pub fn memory() -> Memory {
    let mut v = [0usize; 8];
    let [elapsed, user, system, rss, peak_rss, commit, peak_commit, faults] = &mut v;
    // SAFETY: mimalloc writes one `size_t` through each pointer, all valid and distinct
    // for the duration of the call; it reads process counters and allocates nothing.
    unsafe {
        mi_process_info(
            elapsed,
            user,
            system,
            rss,
            peak_rss,
            commit,
            peak_commit,
            faults,
        )
    };
    Memory {
        committed: v[5] as u64,
        // mimalloc reports its commit as the RSS where it cannot read it: the kernel's
        // own count, from /proc.
        resident: resident_bytes().unwrap_or(v[3] as u64),
    }
}

/// The resident set size from `/proc/self/statm` (pages, times the page size).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    Some(pages * u64::try_from(page_size).ok()?)
}

/// `mi_option_arena_reserve` in mimalloc 3's `mi_option_t` (a test checks the index).
const MI_OPTION_ARENA_RESERVE: c_int = 23;

/// The size of each arena mimalloc reserves, in KiB: 64 MiB instead of its 1 GiB default
/// (see "Arena size" above).
const ARENA_RESERVE_KIB: c_long = 64 * 1024;

/// Sizes mimalloc's arenas before the first allocation reserves one: an ELF constructor,
/// which the loader runs before Rust's runtime starts (so before any allocation).
/// `#[used]` keeps it in every binary that links ringway's library.
#[used]
#[link_section = ".init_array"]
static SIZE_ARENAS: extern "C" fn() = size_arenas;

/// Sets mimalloc's arena size unless `MIMALLOC_ARENA_RESERVE` is set; allocates nothing.
extern "C" fn size_arenas() {
    // SAFETY: `getenv` with a NUL-terminated literal; no other thread exists yet.
    let set_by_user = !unsafe { nix::libc::getenv(c"MIMALLOC_ARENA_RESERVE".as_ptr()) }.is_null();
    if !set_by_user {
        // SAFETY: setting an option is valid at any time, before mimalloc's init too.
        unsafe { mi_option_set(MI_OPTION_ARENA_RESERVE, ARENA_RESERVE_KIB) }
    }
}

/// The process's connection heap, created by the first worker that starts.
struct ConnectionHeap(NonNull<RawHeap>);

// SAFETY: a mimalloc (v3) heap may be allocated from, collected and freed into from any
// thread: each thread allocates through its own thread-local part of it ("theap"), and
// the shared part is guarded by mimalloc itself. The pointer is never freed.
unsafe impl Send for ConnectionHeap {}
// SAFETY: as for `Send`: every operation on it is thread-safe in mimalloc.
unsafe impl Sync for ConnectionHeap {}

static CONNECTION_HEAP: OnceLock<Option<ConnectionHeap>> = OnceLock::new();

thread_local! {
    /// The heap this thread allocates from right now: null for mimalloc's default heap.
    /// `const`-initialised without a destructor, so reading it is a plain TLS load that
    /// never allocates (which inside the allocator would recurse).
    static CURRENT: Cell<*mut RawHeap> = const { Cell::new(ptr::null_mut()) };
}

/// The connection heap, created on first use; `None` if mimalloc could not create it
/// (connections then share the default heap, as they would without this module).
fn connection_heap() -> Option<*mut RawHeap> {
    let heap = CONNECTION_HEAP.get_or_init(|| {
        // SAFETY: `mi_heap_new` takes nothing and returns a new heap or null.
        NonNull::new(unsafe { mi_heap_new() }).map(ConnectionHeap)
    });
    heap.as_ref().map(|heap| heap.0.as_ptr())
}

/// Sets up the connection heap; workers call it as they start, so the first connection
/// does not pay for it.
pub fn init() {
    let _ = connection_heap();
}

#[inline]
fn current() -> *mut RawHeap {
    // `try_with` fails only while the thread is being torn down: the default heap then.
    CURRENT.try_with(Cell::get).unwrap_or(ptr::null_mut())
}

/// Restores the previous heap when a connection-heap section ends, even by unwinding.
struct Restore(*mut RawHeap);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|current| current.set(self.0));
    }
}

fn enter_connection_heap() -> Restore {
    let heap = connection_heap().unwrap_or(ptr::null_mut());
    Restore(
        CURRENT
            .try_with(|current| current.replace(heap))
            .unwrap_or(ptr::null_mut()),
    )
}

/// Runs `f` with this thread's allocations going to the connection heap.
pub fn in_connection_heap<R>(f: impl FnOnce() -> R) -> R {
    let _restore = enter_connection_heap();
    f()
}

pin_project_lite::pin_project! {
    /// A future whose allocations, while it is polled, come from the connection heap.
    #[derive(Debug)]
    pub struct InConnectionHeap<F> {
        #[pin]
        inner: F,
    }
}

impl<F> InConnectionHeap<F> {
    /// Wraps a connection task's future.
    pub fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<F: Future> Future for InConnectionHeap<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _restore = enter_connection_heap();
        self.project().inner.poll(cx)
    }
}

/// Frees the calling thread's empty pages in both heaps and purges memory whose purge
/// delay has passed; `force` purges everything free now (for a thread that just turned
/// quiet: a busy one would only fault the pages back in).
pub fn collect(force: bool) {
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any
    // time; on a thread that never allocated through mimalloc it returns at once.
    unsafe { mi_collect(force) }
    if let Some(Some(heap)) = CONNECTION_HEAP.get() {
        // SAFETY: a live heap (never deleted); collecting it touches only this thread's
        // part of it, and is a no-op on a thread that never allocated from it.
        unsafe { mi_heap_collect(heap.0.as_ptr(), force) }
    }
}

type DefaultAlloc = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type HeapAlloc = unsafe extern "C" fn(*mut RawHeap, usize, usize) -> *mut c_void;

/// Allocates `layout` with `default` outside connection sections, else with `in_heap`
/// from the connection heap.
///
/// # Safety
/// `layout` has a non-zero size (`GlobalAlloc::alloc`'s contract).
#[inline]
unsafe fn allocate(layout: Layout, default: DefaultAlloc, in_heap: HeapAlloc) -> *mut u8 {
    let heap = current();
    // SAFETY: both are mimalloc's aligned allocation functions; `heap` is null or the
    // live connection heap.
    let p = unsafe {
        if heap.is_null() {
            default(layout.size(), layout.align())
        } else {
            in_heap(heap, layout.size(), layout.align())
        }
    };
    p.cast()
}

/// mimalloc as the global allocator, allocating from the connection heap inside
/// [`InConnectionHeap`] and [`in_connection_heap`] and from its default heap elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mimalloc;

// SAFETY: every method forwards to mimalloc's aligned allocation functions, which meet
// `GlobalAlloc`'s contract for any size and power-of-two alignment (the `mimalloc` crate's
// own allocator makes the same calls); `mi_free` frees a block of either heap from any
// thread, and `mi_heap_realloc_aligned` accepts a block of either heap. Choosing the heap
// reads one thread-local pointer and neither allocates nor unwinds.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { allocate(layout, mi_malloc_aligned, mi_heap_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { allocate(layout, mi_zalloc_aligned, mi_heap_zalloc_aligned) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let heap = current();
        // SAFETY: `ptr` came from this allocator (either heap) with `layout`.
        let p = unsafe {
            if heap.is_null() {
                mi_realloc_aligned(ptr.cast(), new_size, layout.align())
            } else {
                mi_heap_realloc_aligned(heap, ptr.cast(), new_size, layout.align())
            }
        };
        p.cast()
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (either heap).
        unsafe { mi_free(ptr.cast()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates through [`Mimalloc`] and reports whether the block is in the connection
    /// heap (test binaries keep the system allocator, so this calls it directly).
    fn allocated_in_connection_heap(size: usize) -> bool {
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: a non-zero layout; the block is freed with the layout it has.
        unsafe {
            let p = Mimalloc.alloc(layout);
            assert!(!p.is_null());
            let inside = mi_heap_contains(connection_heap().unwrap(), p.cast());
            Mimalloc.dealloc(p, layout);
            inside
        }
    }

    #[test]
    fn arenas_are_sized_before_the_first_allocation() {
        if std::env::var_os("MIMALLOC_ARENA_RESERVE").is_some() {
            eprintln!("SKIP arena size: MIMALLOC_ARENA_RESERVE is set");
            return;
        }
        // The constructor ran in this test binary too (it links ringway's library).
        // SAFETY: reading an option is valid at any time.
        assert_eq!(
            unsafe { mi_option_get(MI_OPTION_ARENA_RESERVE) },
            ARENA_RESERVE_KIB
        );
        // And the option is the arena size: the mapping holding a block is no larger
        // (with mimalloc's default it is 1 GiB).
        let layout = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: a non-zero layout, freed with the layout it has.
        let p = unsafe { Mimalloc.alloc(layout) } as usize;
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mapping = maps
            .lines()
            .filter_map(|line| line.split_whitespace().next()?.split_once('-'))
            .map(|(a, b)| {
                (
                    usize::from_str_radix(a, 16).unwrap(),
                    usize::from_str_radix(b, 16).unwrap(),
                )
            })
            .find(|&(start, end)| start <= p && p < end)
            .expect("the block's mapping");
        // SAFETY: allocated above with `layout`.
        unsafe { Mimalloc.dealloc(p as *mut u8, layout) };
        assert!(
            mapping.1 - mapping.0 <= (ARENA_RESERVE_KIB as usize) << 10,
            "{mapping:x?}"
        );
    }

    #[test]
    fn connection_sections_allocate_from_the_connection_heap_and_end_cleanly() {
        init();
        assert!(!allocated_in_connection_heap(64));
        assert!(in_connection_heap(|| allocated_in_connection_heap(64)));
        assert!(!allocated_in_connection_heap(64), "the section ended");
        // Nested sections restore what was there before them.
        in_connection_heap(|| {
            in_connection_heap(|| ());
            assert!(allocated_in_connection_heap(96));
        });
        // An unwinding section restores it too.
        let _ = std::panic::catch_unwind(|| in_connection_heap(|| panic!("unwinds")));
        assert!(!allocated_in_connection_heap(64));
    }

    #[test]
    fn a_wrapped_future_allocates_from_the_connection_heap_only_while_polled() {
        init();
        let mut polled = None;
        let future = InConnectionHeap::new(std::future::poll_fn(|_| {
            polled = Some(allocated_in_connection_heap(128));
            Poll::Ready(())
        }));
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_ready());
        assert_eq!(polled, Some(true));
        assert!(!allocated_in_connection_heap(128));
    }

    #[test]
    fn blocks_move_between_heaps_and_free_from_either() {
        init();
        let layout = Layout::from_size_align(48, 16).unwrap();
        // SAFETY: non-zero layouts; each block is freed once, with its current layout.
        unsafe {
            let p = Mimalloc.alloc(layout);
            assert!(!p.is_null());
            p.write_bytes(7, 48);
            // Grown inside a connection section: moved into the connection heap, intact.
            let q = in_connection_heap(|| Mimalloc.realloc(p, layout, 4096));
            assert!(!q.is_null());
            assert_eq!(q as usize % 16, 0);
            assert_eq!(std::slice::from_raw_parts(q, 48), &[7u8; 48][..]);
            // Freed on another thread, outside any section.
            let q = q as usize;
            std::thread::spawn(move || {
                Mimalloc.dealloc(q as *mut u8, Layout::from_size_align(4096, 16).unwrap())
            })
            .join()
            .unwrap();
            let z = in_connection_heap(|| Mimalloc.alloc_zeroed(layout));
            assert!(std::slice::from_raw_parts(z, 48).iter().all(|&b| b == 0));
            Mimalloc.dealloc(z, layout);
        }
        collect(true);
        std::thread::spawn(|| collect(false)).join().unwrap();
    }
}
