//! Per-worker pool of read buffers ("chunks").
//!
//! A connection holds a chunk only while it has bytes to parse or forward: an idle
//! keep-alive connection waits for readability with no buffer, then takes a chunk, and
//! gives it back when its request is done and nothing is left in it. Chunks are plain
//! `Vec<u8>` lent to the kernel by value (monoio's owned-buffer I/O), so a chunk can never
//! be reused while a read or write still has it: ownership is the reference count.
//!
//! The pool is a free list on one thread (`RefCell`, no atomics), capped so that a burst
//! does not pin memory forever; a chunk that grew past the standard size (a large head)
//! is not kept.

use std::cell::RefCell;

/// The size of one chunk: large enough for nearly every request head and a useful slice
/// of a body, small enough that 10,000 busy connections stay in the hundreds of MiB.
pub const CHUNK: usize = 16 * 1024;

/// A worker's free list of chunks.
#[derive(Debug)]
pub struct BufPool {
    free: RefCell<Vec<Vec<u8>>>,
    max_free: usize,
}

impl BufPool {
    /// A pool keeping at most `max_free` idle chunks.
    pub fn new(max_free: usize) -> Self {
        BufPool {
            free: RefCell::new(Vec::new()),
            max_free,
        }
    }

    /// An empty chunk with capacity of at least [`CHUNK`].
    pub fn take(&self) -> Vec<u8> {
        self.free
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK))
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
}
