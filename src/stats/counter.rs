//! A single-writer counter.
//!
//! `AtomicU64` only so that another thread may read it without a data race; writes are
//! load + store by the one owning worker, which costs the same as a plain integer. Using
//! `fetch_add` here would put a locked instruction on the request path for nothing (and is
//! banned by clippy.toml).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A counter or gauge cell written by exactly one worker thread.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one. Only the owning worker may call this.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`. Only the owning worker may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Subtracts one (gauges). Only the owning worker may call this.
    #[inline]
    pub fn dec(&self) {
        self.0.store(self.0.load(Relaxed).wrapping_sub(1), Relaxed);
    }

    /// Sets the value (gauges). Only the owning worker may call this.
    #[inline]
    pub fn set(&self, value: u64) {
        self.0.store(value, Relaxed);
    }

    /// Reads the value; any thread may call this.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}
