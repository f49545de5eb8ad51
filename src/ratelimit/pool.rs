//! The process-wide table of one limit's buckets, shared by every worker.
//!
//! Design: a fixed-size table of cells, allocated once (no allocation after
//! [`Pool::new`]), split into groups of [`GROUP`] cells (two cache lines); a key lives in
//! one cell of its group, chosen by the hash's low bits. A cell is two `AtomicU64`s: the
//! key's full 64-bit hash (0 = empty) and a state word packing a 16-bit tag (the hash's
//! top 16 bits, disjoint from the group bits) and a 48-bit TAT in µs since
//! [`super::now_micros`]'s epoch (8.9 years; `τ` is capped at 2^44 µs so a TAT fits for
//! 8.3 years of process life). A TAT at or before `now` is a full bucket.
//!
//! Workers never touch the pool per request: a [`super::Shard`] leases tokens in batches,
//! and this module is its slow path. A lease is one compare-and-swap on one state word,
//! a read-modify-write on memory other cores write: ARCHITECTURE.md rule 1 allows it as
//! the documented "per-core leases" exception, once per batch, never per request. With
//! batch 1 (tiny buckets and slow limits, kept exact) that is one CAS per admitted
//! request, the rule's other exception (an exact limit, only where one is configured).
//! A refusal writes nothing, and the shard decides refusals alone until the pool's next
//! token is due.
//!
//! Identity: every read of a cell is validated (key, state, key again), every CAS expects
//! the whole state word, tag included, and a claim changes the state first, so a cell
//! reused for another key never lends the old key's tokens to the new one, and tokens
//! given back for a key whose cell now holds another key are dropped (ABA would need the
//! same tag and the same µs TAT, written within the few nanoseconds of one read).
//!
//! Claiming a cell (a key not in its group): the first empty cell, else a full bucket
//! ([`Eviction::Idle`]: loses nothing), else the bucket closest to full (smallest TAT:
//! [`Eviction::Active`]: if that key comes back it starts full, which is the only way a
//! key flood can make the pool over-admit; `mod.rs` states the bound). A depleted key is
//! evicted only when every other cell of its group is at least as depleted. A claim marks
//! the state word `CLAIMING` (the new key's tag, TAT all ones) by CAS, checks the group
//! for another claim of the same key, then writes the key and the real state. Two
//! workers claiming the same new key in different cells see each other (sequentially
//! consistent CAS-then-load on both sides): the higher cell backs off, the lower waits
//! for a higher one it sees, so a key never holds two cells (two cells would be two full
//! buckets). A claim in progress is a few instructions; waiting on one is bounded
//! ([`SPINS`]), and a lease that cannot finish in [`ATTEMPTS`] tries is refused (it can
//! only under-admit).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::rate::Rate;

/// Cells per group: a key may live in any cell of its group.
pub const GROUP: usize = 8;

const TAT_MASK: u64 = (1 << 48) - 1;
/// The TAT field of a cell being claimed.
const CLAIMING: u64 = TAT_MASK;
/// The largest TAT stored.
const MAX_TAT: u64 = TAT_MASK - 1;
/// Scans (and CAS attempts) before a lease gives up and refuses.
pub const ATTEMPTS: u32 = 64;
/// Spins waiting for another worker's claim in progress.
pub const SPINS: u32 = 256;

#[inline]
fn tag_of(key: u64) -> u64 {
    key >> 48
}

#[inline]
fn pack(tag: u64, tat: u64) -> u64 {
    (tag << 48) | tat.min(MAX_TAT)
}

#[inline]
fn tat_of(state: u64) -> u64 {
    state & TAT_MASK
}

#[inline]
fn state_tag(state: u64) -> u64 {
    state >> 48
}

#[inline]
fn claiming(state: u64) -> bool {
    state & TAT_MASK == CLAIMING
}

/// 0 marks an empty cell; a key hash of 0 (which `KeyHasher` never gives) is taken as 1.
#[inline]
pub(crate) fn nonzero(key: u64) -> u64 {
    key.max(1)
}

#[derive(Debug, Default)]
#[repr(C, align(16))]
struct Cell {
    key: AtomicU64,
    state: AtomicU64,
}

/// One limit's buckets for the whole process.
pub struct Pool {
    cells: Box<[Cell]>,
    groups_mask: usize,
    group: usize,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("cells", &self.cells.len())
            .finish()
    }
}

/// What [`Pool::lease`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub granted: u32,
    /// Tokens left in the pool after this lease.
    pub left: u64,
    /// Microseconds from `now` until the pool holds one token again (0 if it holds one).
    pub next_token_us: u64,
    /// Microseconds from `now` until the pool is full again.
    pub full_in_us: u64,
    /// The lease had to take over another key's cell.
    pub evicted: Option<Eviction>,
}

/// A bucket removed from a full table to make room for another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// A full (idle) bucket: loses nothing.
    Idle,
    /// A bucket that was not full: its key, if it comes back, starts full again.
    Active,
}

/// Where a key is, or where it would go.
enum Scan {
    Found(usize, u64),
    Claim(usize, u64, Option<Eviction>),
    /// A claim of this key (or its tag) is in progress, or a cell changed under the read.
    Busy,
}

impl Pool {
    /// A table for up to `max_keys` keys (rounded up to a power of two; 1 = one cell).
    pub fn new(max_keys: u32) -> Pool {
        let cells = (max_keys.max(1) as usize).next_power_of_two();
        let group = cells.min(GROUP);
        Pool {
            cells: (0..cells).map(|_| Cell::default()).collect(),
            groups_mask: cells / group - 1,
            group,
        }
    }

    /// Bytes the pool holds (fixed at construction).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Pool>() + std::mem::size_of_val(&*self.cells)
    }

    /// Cells in the table.
    pub fn capacity(&self) -> usize {
        self.cells.len()
    }

    #[inline]
    fn base(&self, key: u64) -> usize {
        (key as usize & self.groups_mask) * self.group
    }

    /// The cell's key and state, or `None` if the key changed during the read.
    #[inline]
    fn read(&self, i: usize) -> Option<(u64, u64)> {
        let cell = &self.cells[i];
        let key = cell.key.load(Ordering::Acquire);
        let state = cell.state.load(Ordering::Acquire);
        (cell.key.load(Ordering::Acquire) == key).then_some((key, state))
    }

    fn scan(&self, base: usize, key: u64, tag: u64, now: u64) -> Scan {
        let mut busy = false;
        let mut empty = None;
        let mut idle = None;
        let mut closest: Option<(usize, u64, u64)> = None;
        for i in base..base + self.group {
            let Some((k, s)) = self.read(i) else {
                busy = true;
                continue;
            };
            if claiming(s) {
                // A claim of this tag may be this key's; this key's cell being taken
                // over may yet be given back: wait for either.
                busy |= state_tag(s) == tag || k == key;
                continue;
            }
            if k == key {
                if state_tag(s) == tag {
                    return Scan::Found(i, s);
                }
                busy = true;
            } else if k == 0 {
                if s == 0 {
                    empty = empty.or(Some((i, s)));
                } else {
                    busy = true;
                }
            } else if tat_of(s) <= now {
                idle = idle.or(Some((i, s)));
            } else if closest.is_none_or(|(_, _, tat)| tat_of(s) < tat) {
                closest = Some((i, s, tat_of(s)));
            }
        }
        if busy {
            Scan::Busy
        } else if let Some((i, s)) = empty {
            Scan::Claim(i, s, None)
        } else if let Some((i, s)) = idle {
            Scan::Claim(i, s, Some(Eviction::Idle))
        } else if let Some((i, s, _)) = closest {
            Scan::Claim(i, s, Some(Eviction::Active))
        } else {
            // Every cell of the group is being claimed.
            Scan::Busy
        }
    }

    /// Takes up to `want` (≥ 1) tokens for `key`: one CAS loop on the key's cell.
    pub fn lease(&self, key: u64, want: u32, rate: &Rate, now: u64) -> Lease {
        let key = nonzero(key);
        let tag = tag_of(key);
        let base = self.base(key);
        let want = u64::from(want.max(1));
        for _ in 0..ATTEMPTS {
            match self.scan(base, key, tag, now) {
                Scan::Found(i, s) => {
                    let take = rate.take(tat_of(s), now, want);
                    if take.granted == 0 {
                        return to_lease(take, None);
                    }
                    // Rule 1's per-core-lease exception: one CAS on a cell other cores
                    // write, once per batch of tokens, never per request.
                    if self.cells[i]
                        .state
                        .compare_exchange(
                            s,
                            pack(tag, take.tat),
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        return to_lease(take, None);
                    }
                }
                Scan::Claim(i, s, evicted) => {
                    if let Some(lease) = self.claim(base, i, s, key, want, rate, now, evicted) {
                        return lease;
                    }
                }
                Scan::Busy => {
                    for _ in 0..SPINS / 8 {
                        std::hint::spin_loop();
                    }
                }
            }
        }
        Lease {
            granted: 0,
            left: 0,
            next_token_us: 0,
            full_in_us: 0,
            evicted: None,
        }
    }

    /// Takes cell `i` (state `old`) for `key`, a full bucket, and leases from it; `None`
    /// when another worker got there first (scan again).
    #[allow(clippy::too_many_arguments)]
    fn claim(
        &self,
        base: usize,
        i: usize,
        old: u64,
        key: u64,
        want: u64,
        rate: &Rate,
        now: u64,
        evicted: Option<Eviction>,
    ) -> Option<Lease> {
        let tag = tag_of(key);
        let cell = &self.cells[i];
        // The claim marker; the old key's leases and give-backs now fail their CAS. Rule
        // 1's per-core-lease exception, as in `lease`: the slow path of a new key.
        cell.state
            .compare_exchange(
                old,
                pack(tag, 0) | CLAIMING,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .ok()?;
        let back_off = || {
            cell.state.store(old, Ordering::Release);
            None
        };
        for j in (base..base + self.group).filter(|&j| j != i) {
            let other = &self.cells[j];
            let mut spins = 0;
            loop {
                let s = other.state.load(Ordering::SeqCst);
                let k = other.key.load(Ordering::SeqCst);
                if claiming(s) {
                    if state_tag(s) == tag && j < i {
                        // Perhaps this key, claimed in a lower cell: that claim wins.
                        return back_off();
                    }
                    if state_tag(s) == tag || k == key {
                        // Perhaps this key claimed higher up (which may not have seen this
                        // claim), or this key's cell being taken over (which may be given
                        // back): wait for the outcome.
                        spins += 1;
                        if spins > SPINS {
                            return back_off();
                        }
                        std::hint::spin_loop();
                        continue;
                    }
                    break;
                }
                if k == key {
                    if state_tag(s) == tag {
                        // The key has a cell: use it.
                        return back_off();
                    }
                    // Read between a claim's key and state writes: read again.
                    spins += 1;
                    if spins > SPINS {
                        return back_off();
                    }
                    continue;
                }
                break;
            }
        }
        let take = rate.take(0, now, want);
        cell.key.store(key, Ordering::Release);
        cell.state.store(pack(tag, take.tat), Ordering::Release);
        Some(to_lease(take, evicted))
    }

    /// Returns unused tokens (dropped if the cell now holds another key).
    pub fn give_back(&self, key: u64, tokens: u32, rate: &Rate, now: u64) {
        if tokens == 0 {
            return;
        }
        let key = nonzero(key);
        let tag = tag_of(key);
        let base = self.base(key);
        let refund = rate.refund(u64::from(tokens));
        for _ in 0..ATTEMPTS {
            let found = (base..base + self.group).find_map(|i| {
                let (k, s) = self.read(i)?;
                (k == key && state_tag(s) == tag && !claiming(s)).then_some((i, s))
            });
            let Some((i, s)) = found else {
                return;
            };
            let tat = tat_of(s);
            if tat <= now {
                // Full already: the tokens would overflow the bucket.
                return;
            }
            // Rule 1's per-core-lease exception, as in `lease`.
            if self.cells[i]
                .state
                .compare_exchange(
                    s,
                    pack(tag, tat.saturating_sub(refund)),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return;
            }
        }
    }

    /// Keys whose bucket is not full at `now` (a full bucket is the same as none); scans
    /// the table.
    pub fn keys(&self, now: u64) -> usize {
        self.cells
            .iter()
            .filter(|cell| {
                let s = cell.state.load(Ordering::Relaxed);
                cell.key.load(Ordering::Relaxed) != 0 && !claiming(s) && tat_of(s) > now
            })
            .count()
    }

    /// Tokens `key` has in the pool at `now` (tests).
    #[cfg(test)]
    pub(crate) fn available(&self, key: u64, rate: &Rate, now: u64) -> Option<u64> {
        let key = nonzero(key);
        let base = self.base(key);
        (base..base + self.group).find_map(|i| {
            let (k, s) = self.read(i)?;
            (k == key && state_tag(s) == tag_of(key)).then(|| rate.take(tat_of(s), now, 0).left)
        })
    }

    /// Cells holding `key` (tests: never more than one).
    #[cfg(test)]
    pub(crate) fn cells_holding(&self, key: u64) -> usize {
        self.cells
            .iter()
            .filter(|c| c.key.load(Ordering::SeqCst) == key)
            .count()
    }
}

fn to_lease(take: super::rate::Take, evicted: Option<Eviction>) -> Lease {
    Lease {
        granted: take.granted as u32,
        left: take.left,
        next_token_us: take.next_token_us,
        full_in_us: take.full_in_us,
        evicted,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::config::ratelimit::Bucket;

    const T0: u64 = 1_000_000;

    fn rate(tokens: u64, per: Duration, burst: u64) -> Rate {
        Rate::new(&Bucket { tokens, per, burst })
    }

    /// A key with tag `tag` in group 0 of any pool.
    fn key(tag: u64, n: u64) -> u64 {
        tag << 48 | n << 32
    }

    #[test]
    fn leases_take_from_a_full_bucket_and_refuse_when_empty() {
        let r = rate(10, Duration::from_secs(1), 10);
        let pool = Pool::new(64);
        let k = 0xabcd_0000_0000_0007;
        let a = pool.lease(k, 4, &r, T0);
        assert_eq!(
            a,
            Lease {
                granted: 4,
                left: 6,
                next_token_us: 0,
                full_in_us: 400_000,
                evicted: None
            }
        );
        let b = pool.lease(k, 8, &r, T0);
        assert_eq!(
            (b.granted, b.left, b.next_token_us, b.full_in_us),
            (6, 0, 100_000, 1_000_000)
        );
        let c = pool.lease(k, 1, &r, T0 + 99_999);
        assert_eq!((c.granted, c.next_token_us), (0, 1));
        assert_eq!(pool.lease(k, 5, &r, T0 + 100_000).granted, 1);
        assert_eq!(pool.cells_holding(k), 1);
    }

    #[test]
    fn give_back_restores_tokens_and_never_overfills() {
        let r = rate(10, Duration::from_secs(1), 10);
        let pool = Pool::new(64);
        let k = 77;
        assert_eq!(pool.lease(k, 10, &r, T0).granted, 10);
        pool.give_back(k, 4, &r, T0);
        assert_eq!(pool.available(k, &r, T0), Some(4));
        // Full again after a second: given-back tokens do not make it fuller.
        pool.give_back(k, 3, &r, T0 + 1_000_000);
        assert_eq!(pool.available(k, &r, T0 + 1_000_000), Some(10));
        // Half refilled, half given back: capped at the burst.
        assert_eq!(pool.lease(k, 10, &r, T0 + 2_000_000).granted, 10);
        pool.give_back(k, 8, &r, T0 + 2_500_000);
        assert_eq!(pool.available(k, &r, T0 + 2_500_000), Some(10));
        // Unknown keys: dropped.
        pool.give_back(12345, 3, &r, T0);
        assert_eq!(pool.available(12345, &r, T0), None);
    }

    #[test]
    fn a_reused_cell_never_lends_the_old_keys_tokens() {
        let r = rate(10, Duration::from_secs(60), 10);
        // Same tag and different tags: the key word and the tag both guard the cell.
        for (a, b) in [(key(7, 1), key(7, 2)), (key(7, 1), key(9, 1))] {
            let pool = Pool::new(1);
            assert_eq!(pool.lease(a, 10, &r, T0).granted, 10);
            // b takes over the only cell: a full bucket of its own, not a's empty one.
            let taken = pool.lease(b, 3, &r, T0);
            assert_eq!(
                (taken.granted, taken.left, taken.evicted),
                (3, 7, Some(Eviction::Active))
            );
            assert_eq!(pool.available(a, &r, T0), None);
            // a's leased tokens coming back are dropped, not given to b.
            pool.give_back(a, 10, &r, T0);
            assert_eq!(pool.available(b, &r, T0), Some(7));
            // b's depleted bucket is taken back by a, which starts full (the documented
            // eviction hazard), and b's give-back is dropped too.
            assert_eq!(pool.lease(b, 7, &r, T0).granted, 7);
            let back = pool.lease(a, 1, &r, T0 + 1);
            assert_eq!(
                (back.granted, back.left, back.evicted),
                (1, 9, Some(Eviction::Active))
            );
            pool.give_back(b, 10, &r, T0 + 1);
            assert_eq!(pool.available(a, &r, T0 + 1), Some(9));
        }
    }

    #[test]
    fn eviction_takes_a_full_bucket_first_then_the_one_closest_to_full() {
        let r = rate(10, Duration::from_secs(1), 10);
        let pool = Pool::new(8);
        let keys: Vec<u64> = (1..=8).map(|n| key(n, n)).collect();
        for (n, &k) in keys.iter().enumerate() {
            assert_eq!(pool.lease(k, n as u32 + 1, &r, T0).evicted, None);
        }
        // None full: the one that took 1 token goes.
        let first = pool.lease(key(100, 1), 1, &r, T0);
        assert_eq!(first.evicted, Some(Eviction::Active));
        assert_eq!(pool.available(keys[0], &r, T0), None);
        // 250 ms later the buckets that took 1 (the newcomer) and 2 tokens are full:
        // Idle evictions take them, and the depleted ones stay.
        let later = T0 + 250_000;
        for n in 0..2 {
            assert_eq!(
                pool.lease(key(200, n), 1, &r, later).evicted,
                Some(Eviction::Idle)
            );
        }
        assert_eq!(pool.available(keys[1], &r, later), None);
        for &k in &keys[2..] {
            assert!(pool.available(k, &r, later).is_some());
        }
        // Then the one closest to full: 3 tokens taken, 2.5 back.
        assert_eq!(
            pool.lease(key(300, 0), 1, &r, later).evicted,
            Some(Eviction::Active)
        );
        assert_eq!(pool.available(keys[2], &r, later), None);
        assert_eq!(pool.available(keys[7], &r, later), Some(4));
    }

    #[test]
    fn keys_and_memory() {
        let r = rate(10, Duration::from_secs(1), 10);
        let pool = Pool::new(4_000);
        assert_eq!(pool.capacity(), 4_096);
        assert_eq!(
            pool.memory_bytes(),
            std::mem::size_of::<Pool>() + 4_096 * 16
        );
        assert_eq!(Pool::new(1).capacity(), 1);
        assert_eq!(Pool::new(0).capacity(), 1);
        for k in 1..=100u64 {
            pool.lease(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1, &r, T0);
        }
        assert_eq!(pool.keys(T0), 100);
        assert_eq!(pool.keys(T0 + 100_000), 0);
    }

    /// Workers claiming the same new key at once, in a group full of other keys: one
    /// cell, one bucket, never more tokens than the burst.
    #[test]
    fn concurrent_claims_of_one_new_key_make_one_cell() {
        let r = Arc::new(rate(1, Duration::from_secs(3_600), 2));
        let pool = Arc::new(Pool::new(8));
        for n in 0..8 {
            pool.lease(key(1_000 + n, n), 2, &r, T0);
        }
        let (threads, rounds) = (4, 3_000u64);
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (pool, barrier, r) = (pool.clone(), barrier.clone(), r.clone());
                std::thread::spawn(move || {
                    let mut granted = vec![0u32; rounds as usize];
                    for round in 0..rounds {
                        barrier.wait();
                        // Half the rounds share a tag with the previous key, half not.
                        let k = key(round / 2, round + 1);
                        let now = T0 + round;
                        granted[round as usize] =
                            pool.lease(k, 1, &r, now).granted + pool.lease(k, 1, &r, now).granted;
                        barrier.wait();
                        assert!(pool.cells_holding(k) <= 1, "round {round}: two cells");
                    }
                    granted
                })
            })
            .collect();
        let mut per_round = vec![0u32; rounds as usize];
        for h in handles {
            for (sum, g) in per_round.iter_mut().zip(h.join().unwrap()) {
                *sum += g;
            }
        }
        for (round, &g) in per_round.iter().enumerate() {
            assert!(g <= 2, "round {round}: {g} tokens from a bucket of 2");
        }
        assert!(per_round.iter().filter(|&&g| g == 2).count() > rounds as usize / 2);
    }

    /// Workers whose clocks differ see different buckets as full and pick different
    /// cells to take over for the same new key (one finds cell 0 full, the other finds
    /// nothing full and takes cell 7, the closest to full): the claim check still leaves
    /// the key one cell.
    #[test]
    fn concurrent_claims_with_different_clocks_make_one_cell() {
        use std::sync::atomic::AtomicUsize;
        // 1 ms per token, so a lease at `at` leaves a TAT of `at + 1000`.
        let r = rate(1_000, Duration::from_secs(1), 2);
        let base = T0 + 10_000;
        let rounds = 3_000;
        let pools: Arc<Vec<Pool>> = Arc::new(
            (0..rounds)
                .map(|_| {
                    let pool = Pool::new(8);
                    for (cell, tat) in [10, 100, 100, 100, 100, 100, 100, 5]
                        .into_iter()
                        .enumerate()
                    {
                        pool.lease(key(50 + cell as u64, 1), 1, &r, base + tat - 1_000);
                    }
                    pool
                })
                .collect(),
        );
        let arrived = Arc::new(AtomicUsize::new(0));
        let k = key(3, 3);
        let handles: Vec<_> = [base + 50, base]
            .into_iter()
            .map(|now| {
                let (pools, arrived) = (pools.clone(), arrived.clone());
                std::thread::spawn(move || {
                    for (round, pool) in pools.iter().enumerate() {
                        // A spin barrier: both threads start the round within nanoseconds.
                        arrived.fetch_add(1, Ordering::SeqCst);
                        while arrived.load(Ordering::SeqCst) < 2 * (round + 1) {
                            std::hint::spin_loop();
                        }
                        pool.lease(k, 1, &r, now);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let duplicated = pools.iter().filter(|p| p.cells_holding(k) > 1).count();
        let missing = pools.iter().filter(|p| p.cells_holding(k) == 0).count();
        assert_eq!((duplicated, missing), (0, 0));
    }

    /// Threads leasing and giving back on a few hot keys in a small pool while others
    /// flood it: no key ever holds two cells, and a key's net tokens never exceed what a
    /// bucket gives plus a burst per takeover of its cell.
    #[test]
    fn concurrent_leases_give_backs_and_takeovers() {
        let r = Arc::new(rate(1_000, Duration::from_secs(1), 100));
        let pool = Arc::new(Pool::new(16));
        let threads = 4;
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let (pool, r) = (pool.clone(), r.clone());
                std::thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(t);
                    for step in 0..20_000u64 {
                        let now = T0 + step;
                        let k = if rng.bool() {
                            rng.u64(1..4)
                        } else {
                            rng.u64(4..200)
                        };
                        let k = k << 40 | k;
                        let lease = pool.lease(k, rng.u32(1..9), &r, now);
                        if lease.granted > 1 && rng.bool() {
                            pool.give_back(k, lease.granted - 1, &r, now);
                        }
                        if step % 512 == 0 {
                            for hot in 1..4u64 {
                                assert!(pool.cells_holding(hot << 40 | hot) <= 1);
                            }
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        for k in 1..200u64 {
            assert!(pool.cells_holding(k << 40 | k) <= 1);
        }
    }

    proptest! {
        /// One key, one worker: leases and give-backs are exactly a token bucket kept in
        /// µs of credit (capped at τ; a give-back of k adds k × T, capped).
        #[test]
        fn lease_and_give_back_are_a_token_bucket(
            interval in 1u64..5_000,
            burst in 1u64..100,
            steps in proptest::collection::vec((0u64..20_000, 1u32..20, 0u32..20), 1..200),
        ) {
            let r = Rate::new(&Bucket { tokens: 1, per: Duration::from_micros(interval), burst });
            let tau = interval * burst;
            let pool = Pool::new(4);
            let k = 0x1234_5678_9abc_def0;
            let (mut credit, mut now, mut held) = (tau, T0, 0u64);
            for (advance, want, back) in steps {
                now += advance;
                credit = (credit + advance).min(tau);
                let lease = pool.lease(k, want, &r, now);
                let expected = u64::from(want).min(credit / interval);
                prop_assert_eq!(u64::from(lease.granted), expected);
                credit -= expected * interval;
                prop_assert_eq!(lease.left, credit / interval);
                held += expected;
                let back = u64::from(back).min(held);
                pool.give_back(k, back as u32, &r, now);
                held -= back;
                credit = (credit + back * interval).min(tau);
                prop_assert_eq!(pool.available(k, &r, now), Some(credit / interval));
            }
        }
    }
}
