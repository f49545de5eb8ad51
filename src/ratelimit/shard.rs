//! A worker's leases for one limit: the request path of rate limiting.
//!
//! Design: a fixed-capacity table (allocated once in [`Shard::new`], never after) of the
//! keys this worker has seen lately, in groups of [`GROUP`] (the keys of a group are one
//! cache line), each key with the tokens leased for it from the process-wide [`Pool`].
//! A request whose key holds a lease decides from the shard alone: no atomic, no shared
//! memory, a compare of up to eight keys and a decrement. Without a lease it leases
//! [`Rate::batch`] tokens (the first spent at once); when the pool has none, the
//! shard remembers until when (the pool's next token, at most one emission interval
//! away) and refuses locally until then, so a key flooding past its limit does not
//! touch the pool on every request either.
//!
//! Leases live at most [`LEASE_LIFETIME_US`] (100 ms): older tokens are given back on
//! the key's next request or by [`Shard::sweep`] (the worker calls it about every
//! 100 ms), so tokens do not stay stranded on a worker its clients left. A full group
//! evicts its least useful entry (an entry with no tokens and no pending refusal, else
//! one with no tokens, else the oldest lease), giving its tokens back first: a shard
//! eviction loses nothing. Dropping the shard gives every lease back.
//!
//! Memory: 8 bytes of key and 72 of lease per slot ([`Shard::memory_bytes`]), fixed.
//!
//! `remaining` and `reset` (headers) come from the pool as of the key's last lease: the
//! tokens in hand plus what the pool had left then; other workers' leases since are not
//! seen. They are estimates; the decision is not.

use std::fmt;
use std::sync::Arc;

use super::pool::{nonzero, Eviction, Pool};
use super::rate::Rate;

/// Keys per group: a key may live in any slot of its group.
pub const GROUP: usize = 8;

/// Tokens leased longer ago than this (µs) are given back.
pub const LEASE_LIFETIME_US: u64 = 100_000;

/// One key's lease.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Unused leased tokens.
    tokens: u32,
    /// When the tokens were leased (µs).
    leased_at: u64,
    /// Tokens the pool had left after the last lease.
    pool_left: u64,
    /// When the pool is full again, as of the last lease (µs).
    full_at: u64,
    /// The pool has no token before this (µs): refuse locally until then.
    retry_at: u64,
    /// The key's rate (for giving tokens back on eviction, sweep and drop).
    rate: Rate,
}

impl Slot {
    fn new(rate: &Rate) -> Slot {
        Slot {
            tokens: 0,
            leased_at: 0,
            pool_left: 0,
            full_at: 0,
            retry_at: 0,
            rate: *rate,
        }
    }
}

/// The outcome of one request against one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Tokens this key has left (pool + this shard's lease), after this decision.
    pub remaining: u64,
    /// When refused: µs until a token is back (Retry-After). When allowed: 0.
    pub retry_after_us: u64,
    /// µs until the bucket is full again (the `reset` of rate-limit headers).
    pub reset_us: u64,
    /// A pool or shard eviction this decision caused (counted in stats). A shard
    /// eviction is `Idle` (its tokens go back: nothing lost); the pool's wins when both.
    pub evicted: Option<Eviction>,
}

/// One worker's leases over one [`Pool`]; deciding takes `&mut self`: never shared.
pub struct Shard {
    pool: Arc<Pool>,
    /// 0 = free slot.
    keys: Box<[u64]>,
    slots: Box<[Slot]>,
    groups_mask: usize,
    group: usize,
    workers: usize,
    /// The latest `now` the shard's slow paths saw (for giving back on drop).
    last_now: u64,
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("capacity", &self.keys.len())
            .field("workers", &self.workers)
            .field("pool", &self.pool)
            .finish()
    }
}

impl Shard {
    /// Up to `capacity` keys' leases (power of two), over `pool`, for `workers` workers.
    pub fn new(pool: Arc<Pool>, capacity: u32, workers: usize) -> Shard {
        let capacity = (capacity.max(1) as usize).next_power_of_two();
        let group = capacity.min(GROUP);
        let unset = Rate::new(&crate::config::ratelimit::Bucket {
            tokens: 1,
            per: std::time::Duration::from_secs(1),
            burst: 1,
        });
        Shard {
            pool,
            keys: vec![0; capacity].into_boxed_slice(),
            slots: vec![Slot::new(&unset); capacity].into_boxed_slice(),
            groups_mask: capacity / group - 1,
            group,
            workers: workers.max(1),
            last_now: 0,
        }
    }

    /// Bytes the shard holds (fixed at construction).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Shard>()
            + std::mem::size_of_val(&*self.keys)
            + std::mem::size_of_val(&*self.slots)
    }

    /// The pool the shard leases from.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    #[inline]
    fn base(&self, key: u64) -> usize {
        // Bits above the pool's group bits and below its tag.
        ((key >> 24) as usize & self.groups_mask) * self.group
    }

    /// Takes one token for `key` at `rate`: from the lease in hand, else a new lease of
    /// `rate.batch(workers)` tokens (the first spent at once). `now` from `now_micros()`.
    #[inline]
    pub fn decide(&mut self, key: u64, rate: &Rate, now: u64) -> Decision {
        let key = nonzero(key);
        let base = self.base(key);
        let found = self.keys[base..base + self.group]
            .iter()
            .position(|&k| k == key);
        match found {
            Some(i) => {
                let i = base + i;
                let slot = &mut self.slots[i];
                if slot.tokens > 0 {
                    if now.saturating_sub(slot.leased_at) <= LEASE_LIFETIME_US {
                        slot.tokens -= 1;
                        return Decision {
                            allowed: true,
                            remaining: (u64::from(slot.tokens) + slot.pool_left).min(rate.burst()),
                            retry_after_us: 0,
                            reset_us: slot.full_at.saturating_sub(now),
                            evicted: None,
                        };
                    }
                    let (tokens, old) = (slot.tokens, slot.rate);
                    slot.tokens = 0;
                    self.pool.give_back(key, tokens, &old, now);
                } else if now < slot.retry_at {
                    return Decision {
                        allowed: false,
                        remaining: 0,
                        retry_after_us: slot.retry_at - now,
                        reset_us: slot.full_at.saturating_sub(now),
                        evicted: None,
                    };
                }
                self.lease(i, key, rate, now, None)
            }
            None => {
                let (i, evicted) = self.free_slot(base, now);
                self.keys[i] = key;
                self.slots[i] = Slot::new(rate);
                self.lease(i, key, rate, now, evicted)
            }
        }
    }

    /// The slow path: a new lease for the key in slot `i`.
    #[cold]
    fn lease(
        &mut self,
        i: usize,
        key: u64,
        rate: &Rate,
        now: u64,
        evicted: Option<Eviction>,
    ) -> Decision {
        self.last_now = self.last_now.max(now);
        let lease = self.pool.lease(key, rate.batch(self.workers), rate, now);
        let slot = &mut self.slots[i];
        slot.rate = *rate;
        slot.pool_left = lease.left;
        slot.full_at = now.saturating_add(lease.full_in_us);
        let evicted = lease.evicted.or(evicted);
        if lease.granted == 0 {
            slot.retry_at = now.saturating_add(lease.next_token_us);
            return Decision {
                allowed: false,
                remaining: 0,
                retry_after_us: lease.next_token_us.max(1),
                reset_us: lease.full_in_us,
                evicted,
            };
        }
        slot.tokens = lease.granted - 1;
        slot.leased_at = now;
        slot.retry_at = 0;
        Decision {
            allowed: true,
            remaining: (u64::from(slot.tokens) + lease.left).min(rate.burst()),
            retry_after_us: 0,
            reset_us: lease.full_in_us,
            evicted,
        }
    }

    /// A slot for a key not in its group: a free one, else the least useful entry's
    /// (its tokens given back first).
    #[cold]
    fn free_slot(&mut self, base: usize, now: u64) -> (usize, Option<Eviction>) {
        let group = base..base + self.group;
        if let Some(i) = group.clone().find(|&i| self.keys[i] == 0) {
            return (i, None);
        }
        let victim = group
            .min_by_key(|&i| {
                let slot = &self.slots[i];
                let useful = match (slot.tokens, slot.retry_at > now) {
                    (0, false) => 0,
                    (0, true) => 1,
                    _ => 2,
                };
                (useful, slot.leased_at)
            })
            .unwrap_or(base);
        let slot = self.slots[victim];
        if slot.tokens > 0 {
            self.pool
                .give_back(self.keys[victim], slot.tokens, &slot.rate, now);
        }
        (victim, Some(Eviction::Idle))
    }

    /// Returns leases unused for longer than the lease lifetime (call every ~100 ms), and
    /// frees the entries that hold nothing.
    pub fn sweep(&mut self, now: u64) {
        self.last_now = self.last_now.max(now);
        for (key, slot) in self.keys.iter_mut().zip(self.slots.iter_mut()) {
            if *key == 0 || now.saturating_sub(slot.leased_at) <= LEASE_LIFETIME_US {
                continue;
            }
            if slot.tokens > 0 {
                self.pool.give_back(*key, slot.tokens, &slot.rate, now);
                slot.tokens = 0;
            }
            if slot.retry_at <= now {
                *key = 0;
            }
        }
    }

    /// Unused tokens the shard holds for `key` (tests).
    #[cfg(test)]
    pub(crate) fn leased(&self, key: u64) -> u32 {
        let key = nonzero(key);
        let base = self.base(key);
        (base..base + self.group)
            .find(|&i| self.keys[i] == key)
            .map_or(0, |i| self.slots[i].tokens)
    }
}

impl Drop for Shard {
    /// Gives every lease back.
    fn drop(&mut self) {
        for (key, slot) in self.keys.iter().zip(self.slots.iter()) {
            if *key != 0 && slot.tokens > 0 {
                self.pool
                    .give_back(*key, slot.tokens, &slot.rate, self.last_now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::config::ratelimit::Bucket;

    const T0: u64 = 1_000_000;

    fn rate(tokens: u64, per: Duration, burst: u64) -> Rate {
        Rate::new(&Bucket { tokens, per, burst })
    }

    #[test]
    fn decides_from_the_lease_in_hand() {
        let r = rate(10_000, Duration::from_secs(1), 10_000);
        let pool = Arc::new(Pool::new(64));
        let mut shard = Shard::new(pool.clone(), 64, 2);
        let k = 99;
        let first = shard.decide(k, &r, T0);
        assert!(first.allowed);
        assert_eq!(first.remaining, 10_000 - 1);
        assert_eq!(first.reset_us, 64 * 100);
        assert_eq!(shard.leased(k), 63);
        assert_eq!(pool.available(k, &r, T0), Some(10_000 - 64));
        // The next 63 come from the shard: the pool does not move.
        for n in 1..64 {
            let d = shard.decide(k, &r, T0);
            assert!(d.allowed);
            assert_eq!(d.remaining, 10_000 - 1 - n);
            assert_eq!(pool.available(k, &r, T0), Some(10_000 - 64));
        }
        assert_eq!(shard.leased(k), 0);
        assert!(shard.decide(k, &r, T0).allowed);
        assert_eq!(pool.available(k, &r, T0), Some(10_000 - 128));
    }

    #[test]
    fn envoy_two_per_five_seconds_across_workers() {
        let r = rate(2, Duration::from_secs(5), 2);
        let pool = Arc::new(Pool::new(1));
        let mut shards: Vec<_> = (0..4).map(|_| Shard::new(pool.clone(), 16, 4)).collect();
        assert_eq!(r.batch(4), 1);
        assert!(shards[0].decide(1, &r, T0).allowed);
        assert!(shards[1].decide(1, &r, T0).allowed);
        for shard in &mut shards {
            let d = shard.decide(1, &r, T0);
            assert!(!d.allowed);
            assert_eq!(d.retry_after_us, 2_500_000);
            assert_eq!(d.reset_us, 5_000_000);
            assert!(!shard.decide(1, &r, T0 + 2_499_999).allowed);
        }
        let t = T0 + 2_500_000;
        assert!(shards[3].decide(1, &r, t).allowed);
        for shard in &mut shards {
            assert!(!shard.decide(1, &r, t).allowed);
        }
    }

    #[test]
    fn expired_leases_are_given_back_on_access_and_by_sweep() {
        let r = rate(1_000, Duration::from_secs(1), 1_000);
        let pool = Arc::new(Pool::new(64));
        let mut shard = Shard::new(pool.clone(), 64, 1);
        assert_eq!(r.batch(1), 10);
        // Key 5 takes 501 tokens (9 left in hand), key 6 takes 301.
        for (k, n) in [(5, 501), (6, 301)] {
            for _ in 0..n {
                assert!(shard.decide(k, &r, T0).allowed);
            }
        }
        assert_eq!((shard.leased(5), shard.leased(6)), (9, 9));
        assert_eq!(pool.available(5, &r, T0), Some(1_000 - 510));
        // Within the lifetime the lease is used; past it, given back and leased anew.
        let late = T0 + LEASE_LIFETIME_US + 1;
        assert!(shard.decide(5, &r, T0 + LEASE_LIFETIME_US).allowed);
        assert_eq!(shard.leased(5), 8);
        assert!(shard.decide(5, &r, late).allowed);
        assert_eq!(shard.leased(5), 9);
        let refill = r.tokens_in(late - T0);
        assert_eq!(
            pool.available(5, &r, late),
            Some(1_000 - 510 + 8 - 10 + refill)
        );
        // The sweep gives key 6's 9 back.
        shard.sweep(late);
        assert_eq!(shard.leased(6), 0);
        assert_eq!(pool.available(6, &r, late), Some(1_000 - 310 + 9 + refill));
        // A swept entry that holds nothing frees its slot.
        assert_eq!(shard.keys.iter().filter(|&&k| k != 0).count(), 1);
    }

    #[test]
    fn a_shard_eviction_gives_the_tokens_back() {
        let r = rate(10_000, Duration::from_secs(1), 10_000);
        let pool = Arc::new(Pool::new(64));
        let mut shard = Shard::new(pool.clone(), 1, 1);
        assert!(shard.decide(1, &r, T0).allowed);
        assert_eq!(pool.available(1, &r, T0), Some(10_000 - 64));
        let d = shard.decide(2, &r, T0);
        assert!(d.allowed);
        assert_eq!(d.evicted, Some(Eviction::Idle));
        assert_eq!(shard.leased(1), 0);
        assert_eq!(pool.available(1, &r, T0), Some(10_000 - 1));
        assert_eq!(shard.memory_bytes(), {
            let other = Shard::new(pool.clone(), 1, 1);
            other.memory_bytes()
        });
    }

    #[test]
    fn memory_is_fixed_at_construction() {
        assert_eq!(std::mem::size_of::<Slot>(), 72);
        let shard = Shard::new(Arc::new(Pool::new(1)), 1_000, 4);
        assert_eq!(shard.keys.len(), 1_024);
        assert_eq!(
            shard.memory_bytes(),
            std::mem::size_of::<Shard>() + 1_024 * (8 + 72)
        );
    }

    #[test]
    fn dropping_a_shard_gives_every_lease_back() {
        let r = rate(10_000, Duration::from_secs(1), 10_000);
        let pool = Arc::new(Pool::new(64));
        let mut shard = Shard::new(pool.clone(), 64, 1);
        for k in 1..=10 {
            assert!(shard.decide(k, &r, T0).allowed);
        }
        assert_eq!(pool.available(3, &r, T0), Some(10_000 - 64));
        drop(shard);
        for k in 1..=10 {
            assert_eq!(pool.available(k, &r, T0), Some(10_000 - 1));
        }
    }

    #[test]
    fn refusals_wait_for_the_pools_next_token() {
        let r = rate(1_000, Duration::from_secs(1), 100);
        let pool = Arc::new(Pool::new(64));
        let mut a = Shard::new(pool.clone(), 64, 2);
        let mut b = Shard::new(pool.clone(), 64, 2);
        assert_eq!(r.batch(2), 10);
        assert!(a.decide(7, &r, T0).allowed);
        let mut n = 1;
        while b.decide(7, &r, T0).allowed {
            n += 1;
        }
        assert_eq!(n, 91);
        let refused = b.decide(7, &r, T0);
        assert_eq!(
            (refused.allowed, refused.remaining, refused.retry_after_us),
            (false, 0, 1_000)
        );
        // a gives its 9 back: b does not look before the pool's next token was due.
        drop(a);
        assert!(!b.decide(7, &r, T0 + 999).allowed);
        assert!(b.decide(7, &r, T0 + 1_000).allowed);
        assert_eq!(b.leased(7), 9);
    }

    proptest! {
        /// One worker: whatever the request pattern, no window of W µs admits more than
        /// B + ⌊W / T⌋ + (b − 1), and from a new key no more than B + ⌊W / T⌋ in total.
        #[test]
        fn one_worker_stays_within_the_bounds(
            per_second in prop::sample::select(vec![2u64, 150, 1_000, 10_000, 100_000]),
            burst in 1u64..2_000,
            gaps in proptest::collection::vec(0u64..400, 1..3_000),
            window in 1u64..200_000,
        ) {
            let r = rate(per_second, Duration::from_secs(1), burst);
            let b = u64::from(r.batch(1));
            let pool = Arc::new(Pool::new(8));
            let mut shard = Shard::new(pool, 8, 1);
            let mut now = T0;
            let mut allowed = Vec::new();
            for gap in gaps {
                now += gap;
                if shard.decide(3, &r, now).allowed {
                    allowed.push(now);
                }
            }
            prop_assert!(allowed.len() as u64 <= burst + r.tokens_in(now - T0));
            let bound = burst + r.tokens_in(window) + (b - 1);
            for (i, &start) in allowed.iter().enumerate() {
                let within = allowed[i..].iter().take_while(|&&t| t <= start + window).count() as u64;
                prop_assert!(within <= bound, "{within} in {window} µs, bound {bound}");
            }
        }
    }
}
