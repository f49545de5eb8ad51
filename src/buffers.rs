//! Per-worker pool of read buffers ("chunks").
//!
//! A connection holds a chunk only while it has bytes to parse or forward: an idle
//! keep-alive connection waits for readability with no buffer, then takes a chunk, and
//! gives it back when its request is done and nothing is left in it. Chunks are plain
//! `Vec<u8>` lent to the kernel by value (monoio's owned-buffer I/O), so a chunk can never
//! be reused while a read or write still has it: ownership is the reference count.
//!
//! The pool is a free list on one thread (`RefCell`, no atomics), capped so that a burst
//! cannot grow it without bound; a chunk that grew past the standard size (a large head)
//! is not kept. It also gives memory back after a burst: the worker calls [`BufPool::trim`]
//! once a second, which frees the chunks that stayed in the free list the whole time
//! since the previous call (its low-water mark), down to a small idle reserve. A steady
//! load keeps what it cycles through; 1,000 connections' worth of chunks left over from
//! a burst are freed within two calls.

use std::cell::{Cell, RefCell};

/// The size of one chunk: large enough for nearly every request head and a useful slice
/// of a body, small enough that 10,000 busy connections stay in the hundreds of MiB.
pub const CHUNK: usize = 16 * 1024;

/// How much of a free list went unused between two sweeps: the fewest entries it held
/// since the last one. The buffer pool and the upstream pools (`upstream::pool`) trim
/// by it, so a steady load keeps what it cycles through and a burst's leftovers go.
#[derive(Debug, Default)]
pub struct LowWater(Cell<usize>);

impl LowWater {
    /// After taking from the list, which now holds `len`.
    pub fn taken(&self, len: usize) {
        self.0.set(self.0.get().min(len));
    }

    /// At a sweep of a list holding `len` that keeps at least `keep`: how many entries
    /// no one needed since the previous sweep, to be freed.
    pub fn unused(&self, len: usize, keep: usize) -> usize {
        self.0.get().min(len.saturating_sub(keep))
    }

    /// After the sweep, the list holds `len`: the next interval starts from there.
    pub fn reset(&self, len: usize) {
        self.0.set(len);
    }
}

/// A worker's free list of chunks.
#[derive(Debug)]
pub struct BufPool {
    free: RefCell<Vec<Vec<u8>>>,
    max_free: usize,
    /// Idle chunks not taken since the last trim.
    low_water: LowWater,
    /// Chunks taken so far (wrapping): the worker's sweep compares it to tell a busy
    /// second from a quiet one.
    takes: Cell<u64>,
}

impl BufPool {
    /// A pool keeping at most `max_free` idle chunks.
    pub fn new(max_free: usize) -> Self {
        BufPool {
            free: RefCell::new(Vec::new()),
            max_free,
            low_water: LowWater::default(),
            takes: Cell::new(0),
        }
    }

    /// An empty chunk with capacity of at least [`CHUNK`].
    pub fn take(&self) -> Vec<u8> {
        let mut free = self.free.borrow_mut();
        let chunk = free.pop();
        self.low_water.taken(free.len());
        self.takes.set(self.takes.get().wrapping_add(1));
        chunk.unwrap_or_else(|| Vec::with_capacity(CHUNK))
    }

    /// Returns a chunk. Oversized or undersized buffers are dropped, not kept.
    pub fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() != CHUNK {
            return;
        }
        let mut free = self.free.borrow_mut();
        if free.len() < self.max_free {
            buf.clear();
            free.push(buf);
        }
    }

    /// Frees the idle chunks that were not taken since the previous call, keeping at least
    /// `keep`; returns how many it freed.
    pub fn trim(&self, keep: usize) -> usize {
        let mut free = self.free.borrow_mut();
        let len = free.len();
        let release = self.low_water.unused(len, keep);
        if release > 0 {
            free.truncate(len - release);
            free.shrink_to(keep);
        }
        self.low_water.reset(free.len());
        release
    }

    /// Chunks taken so far (wrapping); every request takes one.
    pub fn takes(&self) -> u64 {
        self.takes.get()
    }

    /// Idle chunks held (for tests and stats).
    pub fn idle(&self) -> usize {
        self.free.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_reused_and_oversized_ones_dropped() {
        let pool = BufPool::new(2);
        let mut a = pool.take();
        a.extend_from_slice(b"hello");
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take();
        assert_eq!(b.as_ptr(), ptr);
        assert!(b.is_empty());
        pool.give(Vec::with_capacity(CHUNK * 2));
        assert_eq!(pool.idle(), 0);
        pool.give(b);
        pool.give(pool.take());
        pool.give(Vec::with_capacity(CHUNK));
        pool.give(Vec::with_capacity(CHUNK));
        assert_eq!(pool.idle(), 2);
    }

    #[test]
    fn trim_frees_what_a_burst_left_and_keeps_what_a_steady_load_uses() {
        let pool = BufPool::new(100);
        // A burst: 50 chunks out at once, then all back.
        let burst: Vec<_> = (0..50).map(|_| pool.take()).collect();
        burst.into_iter().for_each(|c| pool.give(c));
        assert_eq!(pool.idle(), 50);
        // The interval that saw the burst needed every chunk: nothing is freed yet.
        assert_eq!(pool.trim(4), 0);
        // A steady load of 10 connections through the next interval.
        for _ in 0..3 {
            let steady: Vec<_> = (0..10).map(|_| pool.take()).collect();
            steady.into_iter().for_each(|c| pool.give(c));
        }
        // 40 chunks stayed idle the whole interval: freed; the 10 in use are kept.
        assert_eq!(pool.trim(4), 40);
        assert_eq!(pool.idle(), 10);
        // Idle from now on: down to the reserve, and no further.
        assert_eq!(pool.trim(4), 6);
        assert_eq!(pool.idle(), 4);
        assert_eq!(pool.trim(4), 0);
        assert_eq!(pool.idle(), 4);
        assert_eq!(pool.takes(), 80);
        // With no reserve, a pool quiet since the last trim ends empty.
        assert_eq!(pool.trim(0), 4);
        assert_eq!(pool.idle(), 0);
    }
}
