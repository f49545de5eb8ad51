//! Rate limiting: token buckets per key, enforced for the whole process by per-worker
//! shards (issue 20). A pure library: no runtime, no config decoding, no I/O; the glue
//! (`runtime`) keeps pools across reloads and gives each worker its shards.
//!
//! # The bucket
//!
//! A limit is a token bucket ([`crate::config::ratelimit::Bucket`]): at most `burst`
//! tokens, refilled continuously at `tokens / per`; a new key starts full; a request
//! takes one token. In any window of `W` a key gets at most `burst + rate × W` requests.
//! The engine computes it as GCRA ([`rate`]): one theoretical arrival time (TAT) per key,
//! in microseconds of [`now_micros`], the emission interval `T = per / tokens` kept as an
//! exact fraction of µs.
//!
//! # Pool, shards, leases
//!
//! Each limit has one [`Pool`]: a fixed table of atomic cells (key hash, tag + TAT), shared
//! by every worker in an `Arc`. Each worker has a [`Shard`] per limit: the tokens it has
//! leased from the pool, per key. A request with a lease in hand decides from its shard
//! alone (no atomic, no shared cache line); without one, the shard leases
//! `b = rate.batch(workers)` tokens with one CAS on the key's cell and spends the first.
//! A leased token has left the pool: no other worker can spend it. Leases live at most
//! [`shard::LEASE_LIFETIME_US`] (100 ms); older tokens go back to the pool on the key's
//! next request or at the worker's sweep. `b` is 1 for tiny buckets and slow limits, else
//! about 10 ms of the rate, at most 64 and at most `burst / (4 × workers)`
//! ([`Rate::batch`]). A per-connection limit uses a [`ConnBucket`] owned by the
//! connection instead (exact, no pool). Keys are [`KeyHasher`] hashes, seeded per process.
//!
//! # Bounds
//!
//! For one key of a limit with burst `B`, rate `r`, `w` workers and lease size
//! `b = rate.batch(w)`:
//!
//! 1. **Over-admission.** In any window of length `W` the process admits at most
//!    `B + ⌊r × W⌋ + w × (b − 1)` requests for the key: the bucket's own bound plus the
//!    tokens leased before the window and spent in it (a lease's first token is spent
//!    when it is taken, so at most `b − 1` per worker are ever unused). From a full
//!    bucket with no leases out (a new key), at most `B + ⌊r × W⌋`. Eviction (3) is the
//!    one exception.
//! 2. **Under-admission.** At any moment at most `w × (b − 1)` of the key's tokens sit
//!    unused in leases: the most the process can refuse while the bucket, counted with
//!    those tokens, is not empty. A worker refuses only when it holds no lease for the key
//!    and the pool held no token when it last looked, at most one emission interval `T`
//!    earlier (it does not look again before the pool's next token is due, so tokens
//!    another worker gives back meanwhile wait at most that long). So in a window that
//!    starts with a full bucket, while every worker keeps asking for the key until
//!    refused at least once per `T` (a flood over the limit: what makes an exact token
//!    bucket admit its full `B + ⌊r × W⌋`), the process admits at least
//!    `B + ⌊r × W⌋ − w × (b − 1)`.
//!
//!    With `b = 1` (every bucket with `burst < 8 × workers` or a rate under 200/s, e.g.
//!    Envoy's 2 per 5 s or 100/min) both bounds are 0: the process is an exact token
//!    bucket.
//! 3. **Eviction under a key flood.** Memory is fixed: a pool of `max_keys` cells and a
//!    shard of a fixed capacity, whatever the number of distinct keys. A new key in a
//!    full group of 8 cells takes a full bucket's cell if there is one
//!    ([`Eviction::Idle`]: loses nothing), else the cell of the bucket closest to full
//!    ([`Eviction::Active`]): that key, if it comes back, starts full. So a key is
//!    admitted at most one `B` more than (1) allows per Active eviction of its cell, and a
//!    depleted key's cell is taken only when every other cell of its group is at least as
//!    depleted (keys that each sent a request or two never push out a depleted key).
//!    Shard evictions give the tokens back and lose nothing. Cell reuse is tag-checked:
//!    a key never inherits another key's tokens, and a give-back to a reused cell is
//!    dropped.
//!
//! Rounding and fallbacks only refuse more: an interval that is not a whole number of µs
//! charges `⌈n × T⌉` µs per lease of `n` (at most 1 µs per lease slower than
//! configured), and a lease that cannot complete against other workers' claims in a
//! bounded number of tries is refused. Limits are per process: `N` replicas admit `N`
//! times a limit.

pub mod conn;
pub mod key;
pub mod pool;
pub mod rate;
pub mod runtime;
pub mod shard;

pub use conn::ConnBucket;
pub use key::KeyHasher;
pub use pool::{Eviction, Lease, Pool};
pub use rate::Rate;
pub use shard::{Decision, Shard};

use std::sync::OnceLock;

use nix::time::{clock_gettime, ClockId};

/// Microseconds since a process-wide epoch (the first call), on `CLOCK_MONOTONIC`.
///
/// Read once per rate-limited request, so it is read directly (one vDSO call and integer
/// arithmetic): `Instant::elapsed` and `Duration::as_micros` cost about 150 user-space
/// instructions per request more (measured with callgrind, docs/performance.md).
#[inline]
pub fn now_micros() -> u64 {
    static EPOCH: OnceLock<u64> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(monotonic_micros);
    monotonic_micros().saturating_sub(epoch)
}

#[inline]
fn monotonic_micros() -> u64 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => (ts.tv_sec() as u64) * 1_000_000 + (ts.tv_nsec() as u64) / 1_000,
        // CLOCK_MONOTONIC cannot fail on Linux; should it, time stands still (limits
        // refill no further), which only refuses more.
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use super::*;
    use crate::config::ratelimit::Bucket;

    const T0: u64 = 1_000_000;

    fn bucket(tokens: u64, per: Duration, burst: u64) -> Bucket {
        Bucket { tokens, per, burst }
    }

    /// `workers` threads, each with its own shard over one pool, decide for every key
    /// until refused at each tick of a simulated clock (`ticks + 1` ticks `tick_us`
    /// apart, from `T0`); the admitted count per key.
    fn hammer(b: Bucket, workers: usize, keys: &[u64], ticks: u64, tick_us: u64) -> Vec<u64> {
        let rate = Rate::new(&b);
        let pool = Arc::new(Pool::new(64));
        let barrier = Arc::new(Barrier::new(workers));
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                let (pool, barrier, keys) = (pool.clone(), barrier.clone(), keys.to_vec());
                std::thread::spawn(move || {
                    let mut shard = Shard::new(pool, 64, workers);
                    let mut admitted = vec![0u64; keys.len()];
                    for tick in 0..=ticks {
                        barrier.wait();
                        let now = T0 + tick * tick_us;
                        for (n, &key) in admitted.iter_mut().zip(&keys) {
                            while shard.decide(key, &rate, now).allowed {
                                *n += 1;
                            }
                        }
                    }
                    admitted
                })
            })
            .collect();
        threads.into_iter().fold(vec![0; keys.len()], |mut sum, t| {
            for (s, n) in sum.iter_mut().zip(t.join().unwrap()) {
                *s += n;
            }
            sum
        })
    }

    /// Clients on 4 workers, 3 keys, each limit shape: the process admits
    /// `B + ⌊r × W⌋` within `w × (b − 1)`, and never more (a new key: no leases before
    /// the window).
    #[test]
    fn accuracy_across_workers() {
        let workers = 4;
        let keys = [
            0x1111_2222_3333_4444,
            0x5555_6666_7777_8888,
            0x0123_4567_89ab_cdef,
        ];
        let shapes = [
            // Envoy's 2 per 5 s over a minute at 100 ms ticks: batch 1, exact.
            (bucket(2, Duration::from_secs(5), 2), 600, 100_000),
            // 100/min over a minute: batch 1, exact.
            (bucket(100, Duration::from_secs(60), 100), 600, 100_000),
            // 10,000/s over a second at 1 ms ticks: batch 64.
            (bucket(10_000, Duration::from_secs(1), 10_000), 1_000, 1_000),
        ];
        for (b, ticks, tick_us) in shapes {
            let rate = Rate::new(&b);
            let batch = u64::from(rate.batch(workers));
            let w = ticks * tick_us;
            let expected = b.burst + rate.tokens_in(w);
            let slack = workers as u64 * (batch - 1);
            for admitted in hammer(b, workers, &keys, ticks, tick_us) {
                assert!(
                    admitted <= expected && admitted + slack >= expected,
                    "{b:?}: admitted {admitted}, expected {expected} - {slack}"
                );
                if batch == 1 {
                    assert_eq!(admitted, expected, "{b:?}");
                }
            }
        }
    }

    /// The over-admission bound is reached: every worker spends a lease's first token,
    /// the pool refills, and a window then admits the full bucket, its refill and the
    /// `w × (b − 1)` leased before it.
    #[test]
    fn over_admission_bound_is_tight() {
        let (workers, key) = (4, 42);
        let rate = Rate::new(&bucket(10_000, Duration::from_secs(1), 1_024));
        let b = u64::from(rate.batch(workers));
        assert_eq!(b, 64);
        let pool = Arc::new(Pool::new(16));
        let mut shards: Vec<_> = (0..workers)
            .map(|_| Shard::new(pool.clone(), 16, workers))
            .collect();
        for shard in &mut shards {
            assert!(shard.decide(key, &rate, T0).allowed);
        }
        // 25.6 ms later the pool is full again; the leases (100 ms) are still good.
        let start = T0 + 30_000;
        let mut admitted = 0;
        for now in [start, start + 10_000] {
            for shard in &mut shards {
                while shard.decide(key, &rate, now).allowed {
                    admitted += 1;
                }
            }
        }
        let bound = rate.burst() + rate.tokens_in(10_000) + workers as u64 * (b - 1);
        assert_eq!(admitted, bound);
    }

    /// The under-admission bound: tokens stranded in other workers' leases are refused to
    /// the worker that drains the pool, at most `w × (b − 1)` of them.
    #[test]
    fn under_admission_bound() {
        let (workers, key) = (4, 42);
        let rate = Rate::new(&bucket(10_000, Duration::from_secs(1), 10_000));
        let b = u64::from(rate.batch(workers));
        let pool = Arc::new(Pool::new(16));
        let mut shards: Vec<_> = (0..workers)
            .map(|_| Shard::new(pool.clone(), 16, workers))
            .collect();
        let mut admitted = 0;
        for shard in &mut shards[1..] {
            assert!(shard.decide(key, &rate, T0).allowed);
            admitted += 1;
        }
        while shards[0].decide(key, &rate, T0).allowed {
            admitted += 1;
        }
        let stranded = (workers as u64 - 1) * (b - 1);
        assert_eq!(admitted, rate.burst() - stranded);
        assert!(admitted + workers as u64 * (b - 1) >= rate.burst());
        // Once the leases expire and are swept, the tokens are back for anyone.
        let later = T0 + shard::LEASE_LIFETIME_US + 1;
        for shard in &mut shards[1..] {
            shard.sweep(later);
        }
        let refill = rate.tokens_in(later - T0);
        let mut after = 0;
        while shards[0].decide(key, &rate, later).allowed {
            after += 1;
        }
        assert_eq!(after, stranded + refill);
    }

    /// 100,000 keys through a 4,096-cell pool and a 1,024-key shard: memory does not move,
    /// a depleted key stays limited, and every key beyond the table's size evicts one.
    #[test]
    fn key_flood() {
        let rate = Rate::new(&bucket(10, Duration::from_secs(60), 10));
        let pool = Arc::new(Pool::new(4_096));
        let mut shard = Shard::new(pool.clone(), 1_024, 2);
        let (pool_bytes, shard_bytes) = (pool.memory_bytes(), shard.memory_bytes());
        assert_eq!(pool_bytes, std::mem::size_of::<Pool>() + 4_096 * 16);
        let hash = |bytes: &[u8]| {
            let mut h = KeyHasher::new();
            h.write(bytes);
            h.finish()
        };
        let legit = hash(b"198.51.100.1");
        let mut now = T0;
        for _ in 0..10 {
            assert!(shard.decide(legit, &rate, now).allowed);
        }
        let (mut legit_admitted, mut active, mut idle) = (0, 0, 0);
        for i in 0..100_000u32 {
            now += 1;
            let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            let d = shard.decide(hash(ip.as_bytes()), &rate, now);
            assert!(d.allowed, "a new key starts full");
            match d.evicted {
                Some(Eviction::Active) => active += 1,
                Some(Eviction::Idle) => idle += 1,
                None => {}
            }
            if i % 10 == 0 && shard.decide(legit, &rate, now).allowed {
                legit_admitted += 1;
            }
        }
        // The window is 0.1 s of a 10/min limit: no token for the depleted key.
        assert_eq!(legit_admitted, 0);
        assert_eq!(pool.available(legit, &rate, now), Some(0));
        assert_eq!(
            (pool.memory_bytes(), shard.memory_bytes()),
            (pool_bytes, shard_bytes)
        );
        assert!(pool.keys(now) <= 4_096);
        // Each flood key took one of its ten tokens: the pool's evictions are Active
        // (decisions report the pool's eviction over the shard's), one per key beyond the
        // pool's cells at least.
        assert!(active >= 100_000 - 4_096, "{active} active evictions");
        assert!(active + idle <= 100_000);
    }

    /// Keys that come back after their cell was taken start full: over-admission is at
    /// most one burst per Active eviction, and evictions of keys' cells do happen when
    /// every key of a group is depleted.
    #[test]
    fn a_flood_over_admits_at_most_a_burst_per_active_eviction() {
        let rate = Rate::new(&bucket(1, Duration::from_secs(3_600), 5));
        let pool = Pool::new(8);
        let keys: Vec<u64> = (1..=12u64).map(|k| k << 50 | k).collect();
        let (mut admitted, mut active) = (0u64, 0u64);
        let mut now = T0;
        for _round in 0..20 {
            for &key in &keys {
                now += 1;
                loop {
                    let lease = pool.lease(key, 1, &rate, now);
                    if lease.evicted == Some(Eviction::Active) {
                        active += 1;
                    }
                    if lease.granted == 0 {
                        break;
                    }
                    admitted += u64::from(lease.granted);
                }
            }
        }
        let per_key = rate.burst() + rate.tokens_in(now - T0);
        let bound = keys.len() as u64 * per_key + rate.burst() * active;
        assert!(active > 0);
        assert!(admitted <= bound, "{admitted} > {bound}");
        assert!(
            admitted > keys.len() as u64 * per_key,
            "the flood does over-admit"
        );
    }
}
