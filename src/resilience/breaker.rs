//! Circuit-breaker limits (Envoy's `max_connections`, `max_pending_requests`,
//! `max_requests`, `max_retries`) process-wide, without a lock and mostly without
//! shared read-modify-writes.
//!
//! Envoy keeps one atomic counter per resource and does an RMW on it for every request
//! (and every connection, pending request and retry). ringway's workers share nothing on
//! the request path, so a limit is split in two:
//!
//! - [`SharedLimit`]: the process-wide pool of units (one per cluster, priority and
//!   resource), an atomic count of the units LEASED to workers. It is kept across
//!   reloads by the lead's registry; `set_limit` changes the limit in place.
//! - [`LocalLimit`]: one worker's share. It leases units from the pool in batches of
//!   `b = limit / (64 × workers)` and hands them out to its requests from plain
//!   `Cell`s; only when its leased units run out (acquire) or too many sit idle
//!   (release) does it touch the shared line.
//!
//! Invariants and bounds (W workers, limit L, batch b):
//! - **Never over the limit.** A lease of up to n units is one compare-and-swap of the
//!   shared count from `p` to `p + min(n, L − p)` (none when `p ≥ L`), so the leases
//!   never sum past L, and units in use are a subset of units leased.
//! - **Idle units per worker ≤ 2b.** A lease is for at most b units (or 1 when b = 0)
//!   and is taken only when none is idle; a release that leaves more than 2b idle
//!   gives back all but b. So a worker holds at most 2b units it does not use.
//! - **Shortfall.** A worker refuses only when it has no idle unit and the pool is
//!   empty, i.e. when the units in use process-wide are at least
//!   `L − (W − 1) × 2b ≥ L − 2(W − 1)L/(64W) > L − L/32`: a refusal happens at most
//!   3.1 % early. At Envoy's default L = 1024: W = 2, b = 8, at most 16 units short
//!   (1.6 %); W = 16, b = 1, at most 30 short (2.9 %). Limits below 64 × W have b = 0:
//!   every acquire and release is one relaxed RMW on the shared count, exact like
//!   Envoy's.
//! - A lower limit (`set_limit`) refuses new leases until releases bring the count
//!   under it; units already in use are not revoked (Envoy's breakers also let the
//!   requests in flight finish). A worker reads the batch only when it visits the pool
//!   (the hot paths touch only its own `Cell`s), so after a change its idle units are
//!   bounded by the batch it last saw until its next lease or return;
//!   `LocalLimit::give_back_idle` (say, on a reload) applies the new one at once.
//!
//! `Relaxed` everywhere: the count guards no other memory, and each RMW is atomic, which
//! is all the bound needs.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// One limit shared by every worker (one per cluster, priority and resource); kept
/// across reloads by the lead's registry (limit may change).
#[derive(Debug)]
// Its own cache line (two, against the adjacent-line prefetcher): the pools of
// different clusters must not share one.
#[repr(align(128))]
pub struct SharedLimit {
    /// Units leased to workers.
    leased: AtomicU64,
    limit: AtomicU32,
    /// `limit / (64 × workers)`, kept with the limit so that a release, which compares
    /// its idle units with it, does not divide.
    batch: AtomicU32,
    workers: u32,
}

impl SharedLimit {
    pub fn new(limit: u32, workers: usize) -> Arc<SharedLimit> {
        let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        Arc::new(SharedLimit {
            leased: AtomicU64::new(0),
            limit: AtomicU32::new(limit),
            batch: AtomicU32::new(batch(limit, workers)),
            workers,
        })
    }

    /// A new limit (a reload); workers see it at their next lease or release.
    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Relaxed);
        self.batch
            .store(batch(limit, self.workers), Ordering::Relaxed);
    }

    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Units leased to workers (in use or idle in a worker's share): what Envoy's
    /// `remaining_*` gauge subtracts from the limit (conservative by at most 2b per
    /// worker).
    pub fn leased(&self) -> u32 {
        let leased = self.leased.load(Ordering::Relaxed);
        u32::try_from(leased).unwrap_or(u32::MAX)
    }

    /// `limit − leased`, for the `remaining_*` gauges.
    pub fn remaining(&self) -> u32 {
        self.limit().saturating_sub(self.leased())
    }

    /// Units per lease: `limit / (64 × workers)`; 0 means exact (one unit at a time).
    pub fn batch(&self) -> u32 {
        self.batch.load(Ordering::Relaxed)
    }

    /// Leases up to `want` units; returns how many were granted (0: the pool is empty).
    fn lease(&self, want: u32) -> u32 {
        let limit = u64::from(self.limit());
        let mut granted = 0;
        // A relaxed RMW on a shared line only when leasing a batch. A compare-and-swap
        // loop rather than add-then-undo, so that no transient over-count can make
        // another worker's lease fail below the limit (the shortfall bound is exact).
        let _ = self
            .leased
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |leased| {
                granted = limit.saturating_sub(leased).min(u64::from(want));
                (granted > 0).then_some(leased + granted)
            });
        // `granted` ≤ `want`, a u32.
        granted as u32
    }

    fn give_back(&self, units: u32) {
        if units > 0 {
            // A relaxed RMW on a shared line only when returning a batch.
            #[allow(clippy::disallowed_methods)]
            self.leased.fetch_sub(u64::from(units), Ordering::Relaxed);
        }
    }
}

fn batch(limit: u32, workers: u32) -> u32 {
    limit / workers.saturating_mul(64)
}

/// A worker's share: leases units from the shared pool in batches, so that most
/// acquires/releases touch only this worker's memory. The process never exceeds the
/// limit (leases are exact); it may refuse while other workers hold idle units (at most
/// 2 × batch each, see the module note). One per worker per shared limit; `!Sync`.
#[derive(Debug)]
pub struct LocalLimit {
    shared: Arc<SharedLimit>,
    /// Units this worker leased from the pool.
    leased: Cell<u32>,
    /// Units of those handed out to requests.
    in_use: Cell<u32>,
    /// The pool's batch as of this worker's last visit to it: a release compares with
    /// it instead of loading the pool's line, which other workers' leases write.
    batch: Cell<u32>,
}

impl LocalLimit {
    pub fn new(shared: Arc<SharedLimit>) -> LocalLimit {
        let batch = shared.batch();
        LocalLimit {
            shared,
            leased: Cell::new(0),
            in_use: Cell::new(0),
            batch: Cell::new(batch),
        }
    }

    /// Takes one unit; `false`: the limit is reached (the breaker is open).
    #[inline]
    pub fn try_acquire(&self) -> bool {
        let in_use = self.in_use.get();
        if in_use < self.leased.get() {
            self.in_use.set(in_use + 1);
            return true;
        }
        self.acquire_leasing()
    }

    #[cold]
    fn acquire_leasing(&self) -> bool {
        let batch = self.shared.batch();
        self.batch.set(batch);
        let granted = self.shared.lease(batch.max(1));
        if granted == 0 {
            return false;
        }
        self.leased.set(self.leased.get() + granted);
        self.in_use.set(self.in_use.get() + 1);
        true
    }

    /// Returns one unit taken by `try_acquire` (a release without one is ignored).
    #[inline]
    pub fn release(&self) {
        let in_use = self.in_use.get();
        if in_use == 0 {
            return;
        }
        self.in_use.set(in_use - 1);
        let batch = self.batch.get();
        if self.leased.get() - (in_use - 1) > 2 * batch {
            self.return_idle(batch);
        }
    }

    /// Gives back all idle units but `keep`.
    #[cold]
    fn return_idle(&self, keep: u32) {
        self.batch.set(self.shared.batch());
        let keep = keep.min(self.batch.get());
        let idle = self.leased.get() - self.in_use.get();
        let back = idle.saturating_sub(keep);
        self.leased.set(self.leased.get() - back);
        self.shared.give_back(back);
    }

    /// Gives every idle unit back to the pool (for a worker going quiet, or after a
    /// limit was lowered); the next acquire leases again.
    pub fn give_back_idle(&self) {
        self.return_idle(0);
    }

    /// This worker's units in use.
    pub fn in_use(&self) -> u32 {
        self.in_use.get()
    }

    /// This worker's units leased (in use or idle).
    pub fn leased(&self) -> u32 {
        self.leased.get()
    }

    pub fn shared(&self) -> &Arc<SharedLimit> {
        &self.shared
    }
}

impl Drop for LocalLimit {
    /// Returns every unit leased, in use or not: nothing can release them after this.
    fn drop(&mut self) {
        self.shared.give_back(self.leased.get());
    }
}

#[cfg(test)]
mod tests;
