//! A limit's token bucket as the engine computes with it: GCRA (the generic cell rate
//! algorithm) over one "theoretical arrival time" (TAT) per key, in microseconds.
//!
//! Design: the emission interval `T = per / tokens` is kept as an exact reduced fraction
//! of microseconds (`num / den`), not a rounded number, so that `3/s` or `300000/s`
//! refill at their configured rate. Charging `n` tokens moves the TAT by `⌈n × T⌉` µs
//! (rounded up: a limit may refill up to 1 µs per charge slower than configured, never
//! faster); giving `n` back moves it by `⌊n × T⌋` µs; tokens in `d` µs of credit are
//! `⌊d / T⌋`. With these three roundings the step is exactly the token bucket of
//! [`crate::config::ratelimit::Bucket`] whenever `T` is a whole number of µs (`10/s`,
//! `100/min`, Envoy's `2` per `5 s`, `10000/s`), and never more generous otherwise.
//!
//! The capacity window `τ = ⌈burst × T⌉` (the time to refill an empty bucket) is capped at
//! [`MAX_WINDOW_US`] (about 203 days): a bucket slower than that is shortened to the
//! burst that fits. Rates above one token per microsecond are treated as one per µs
//! (the decoders bound rates well below). Both keep a TAT inside the 48 bits a pool cell
//! stores (see `pool.rs`).
//!
//! [`Rate::batch`] sizes the leases a worker takes from the process-wide pool: see the
//! rule there and the bounds in `mod.rs`.

use crate::config::ratelimit::Bucket;

/// The longest capacity window `τ` a rate keeps (2^44 µs, about 203.6 days).
pub const MAX_WINDOW_US: u64 = 1 << 44;

/// The most tokens a worker leases at once.
pub const MAX_BATCH: u32 = 64;

/// A lease covers about the tokens the limit refills in this long (10 ms): a key running
/// at its limit touches the pool about a hundred times a second until the cap.
pub const BATCH_PERIOD_US: u64 = 10_000;

/// A token bucket in the engine's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// The emission interval `T = num / den` µs, a reduced fraction with `num ≥ den ≥ 1`.
    num: u64,
    den: u64,
    /// Capacity in tokens (≥ 1).
    burst: u64,
    /// `τ = ⌈burst × T⌉` µs, at most [`MAX_WINDOW_US`].
    tau: u64,
}

/// One GCRA step: what taking up to `want` tokens at `now` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Take {
    pub granted: u64,
    /// The TAT after the step (meaningful when `granted > 0`).
    pub tat: u64,
    /// Tokens left in the bucket after the step.
    pub left: u64,
    /// µs from `now` until the bucket holds one token again (0 if it holds one).
    pub next_token_us: u64,
    /// µs from `now` until the bucket is full again.
    pub full_in_us: u64,
}

impl Rate {
    /// The engine's form of `bucket` (see the module note for clamps and rounding).
    pub fn new(bucket: &Bucket) -> Rate {
        let per = u64::try_from(bucket.per.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // At most one token per microsecond.
        let tokens = bucket.tokens.clamp(1, per);
        let g = gcd(per, tokens);
        let (mut num, mut den) = (per / g, tokens / g);
        if num / den > MAX_WINDOW_US {
            // Slower than one token per MAX_WINDOW_US: one token per MAX_WINDOW_US.
            (num, den) = (MAX_WINDOW_US, 1);
        }
        let mut rate = Rate {
            num,
            den,
            burst: bucket.burst.max(1),
            tau: 0,
        };
        rate.tau = rate.cost(rate.burst);
        if rate.tau > MAX_WINDOW_US {
            rate.burst = rate.tokens_in(MAX_WINDOW_US).max(1);
            rate.tau = rate.cost(rate.burst);
        }
        rate
    }

    /// The bucket's capacity in tokens.
    #[inline]
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Tokens added per second (for headers).
    pub fn per_second(&self) -> f64 {
        self.den as f64 * 1e6 / self.num as f64
    }

    /// µs an empty bucket takes to fill (`τ`).
    #[inline]
    pub fn window_us(&self) -> u64 {
        self.tau
    }

    /// Lease size for `workers` workers: about the tokens the limit refills in
    /// [`BATCH_PERIOD_US`] (10 ms), at most [`MAX_BATCH`], at most `burst / (4 × workers)`,
    /// at least 1. So tiny buckets (burst under `8 × workers`) and slow limits (under
    /// 200 tokens a second) lease one token at a time and are exact token buckets, and the
    /// tokens stranded in leases (`workers × (batch − 1)`, `mod.rs`) stay under a quarter
    /// of the burst.
    pub fn batch(&self, workers: usize) -> u32 {
        let workers = workers.max(1) as u64;
        let by_rate = self.tokens_in(BATCH_PERIOD_US);
        let by_burst = self.burst / workers.saturating_mul(4);
        by_rate.min(by_burst).min(u64::from(MAX_BATCH)).max(1) as u32
    }

    /// µs charged for `n` tokens: `⌈n × T⌉`.
    #[inline]
    pub(crate) fn cost(&self, n: u64) -> u64 {
        if self.den == 1 {
            n.saturating_mul(self.num)
        } else {
            let v = (u128::from(n) * u128::from(self.num)).div_ceil(u128::from(self.den));
            u64::try_from(v).unwrap_or(u64::MAX)
        }
    }

    /// µs given back for `n` returned tokens: `⌊n × T⌋`.
    #[inline]
    pub(crate) fn refund(&self, n: u64) -> u64 {
        if self.den == 1 {
            n.saturating_mul(self.num)
        } else {
            let v = u128::from(n) * u128::from(self.num) / u128::from(self.den);
            u64::try_from(v).unwrap_or(u64::MAX)
        }
    }

    /// Whole tokens in `us` µs of credit: `⌊us / T⌋`.
    #[inline]
    pub(crate) fn tokens_in(&self, us: u64) -> u64 {
        if self.den == 1 {
            us / self.num
        } else {
            let v = u128::from(us) * u128::from(self.den) / u128::from(self.num);
            u64::try_from(v).unwrap_or(u64::MAX)
        }
    }

    /// The GCRA step from `tat` at `now`: `t = max(tat, now)`; `n` tokens fit iff
    /// `t + ⌈n × T⌉ − now ≤ τ`; the most that fit, up to `want`, are taken.
    #[inline]
    pub(crate) fn take(&self, tat: u64, now: u64, want: u64) -> Take {
        let t = tat.max(now);
        let debt = t - now;
        let avail = self.tokens_in(self.tau.saturating_sub(debt));
        let granted = want.min(avail);
        let tat = t.saturating_add(self.cost(granted));
        let debt = tat - now;
        Take {
            granted,
            tat,
            left: self.tokens_in(self.tau.saturating_sub(debt)),
            next_token_us: (debt + self.cost(1)).saturating_sub(self.tau),
            full_in_us: debt,
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn rate(tokens: u64, per_ms: u64, burst: u64) -> Rate {
        Rate::new(&Bucket {
            tokens,
            per: Duration::from_millis(per_ms),
            burst,
        })
    }

    #[test]
    fn envoy_two_per_five_seconds_is_one_token_every_two_and_a_half_seconds() {
        let r = rate(2, 5_000, 2);
        assert_eq!(r.cost(1), 2_500_000);
        assert_eq!(r.window_us(), 5_000_000);
        let t0 = 1_000_000;
        let a = r.take(0, t0, 1);
        let b = r.take(a.tat, t0, 1);
        let c = r.take(b.tat, t0, 1);
        assert_eq!((a.granted, b.granted, c.granted), (1, 1, 0));
        assert_eq!((a.left, b.left), (1, 0));
        // The third waits exactly 2.5 s, and the bucket is full 5 s after the two.
        assert_eq!(c.next_token_us, 2_500_000);
        assert_eq!(b.full_in_us, 5_000_000);
        assert_eq!(r.take(b.tat, t0 + 2_499_999, 1).granted, 0);
        let d = r.take(b.tat, t0 + 2_500_000, 1);
        assert_eq!(d.granted, 1);
        assert_eq!(r.take(d.tat, t0 + 2_500_000, 1).granted, 0);
    }

    #[test]
    fn a_new_key_starts_full_and_a_lease_takes_what_is_there() {
        let r = rate(100, 60_000, 100);
        let full = r.take(0, 5, 1_000);
        assert_eq!(full.granted, 100);
        assert_eq!(full.left, 0);
        assert_eq!(full.full_in_us, 60_000_000);
        assert_eq!(full.next_token_us, 600_000);
    }

    #[test]
    fn intervals_that_are_not_whole_microseconds_keep_their_rate() {
        // 3/s: T = 333,333.3 µs; 300,000/s: T = 3.3 µs.
        let r = rate(3, 1_000, 3);
        assert_eq!(r.cost(3), 1_000_000);
        assert_eq!(r.cost(1), 333_334);
        assert_eq!(r.tokens_in(1_000_000), 3);
        let fast = rate(300_000, 1_000, 300_000);
        assert_eq!(fast.cost(300_000), 1_000_000);
        assert_eq!(fast.tokens_in(1_000_000), 300_000);
        assert!((fast.per_second() - 300_000.0).abs() < 1e-6);
    }

    #[test]
    fn rates_above_one_per_microsecond_and_huge_windows_are_clamped() {
        let r = Rate::new(&Bucket {
            tokens: 5_000,
            per: Duration::from_micros(1_000),
            burst: 10,
        });
        assert_eq!(r.cost(1), 1);
        let r = Rate::new(&Bucket {
            tokens: 5,
            per: Duration::from_nanos(10),
            burst: 1,
        });
        assert_eq!(r.cost(1), 1);
        // 1 per day with a burst of a million days: the window is capped.
        let slow = rate(1, 86_400_000, 1_000_000);
        assert!(slow.window_us() <= MAX_WINDOW_US);
        assert_eq!(slow.burst(), MAX_WINDOW_US / 86_400_000_000);
        // 1 per 10 years: one token per MAX_WINDOW_US.
        let glacial = rate(1, 315_360_000_000, 1);
        assert_eq!(glacial.cost(1), MAX_WINDOW_US);
    }

    #[test]
    fn batch_rule() {
        // Tiny buckets and slow limits: one token at a time.
        assert_eq!(rate(2, 5_000, 2).batch(4), 1);
        assert_eq!(rate(100, 60_000, 100).batch(2), 1);
        assert_eq!(rate(150, 1_000, 150).batch(1), 1);
        assert_eq!(rate(10_000, 1_000, 30).batch(4), 1);
        // About 10 ms of tokens.
        assert_eq!(rate(1_000, 1_000, 1_000).batch(2), 10);
        // Capped at 64, and at burst / (4 × workers).
        assert_eq!(rate(10_000, 1_000, 10_000).batch(2), 64);
        assert_eq!(rate(10_000, 1_000, 10_000).batch(64), 39);
        assert_eq!(rate(1_000_000, 1_000, 1_000).batch(16), 15);
        assert_eq!(rate(10_000, 1_000, 10_000).batch(0), 64);
    }

    proptest! {
        #[test]
        fn rounding_is_consistent(
            tokens in 1u64..2_000_000,
            per_ms in 1u64..100_000_000,
            burst in 1u64..1_000_000,
            us in 0u64..MAX_WINDOW_US,
        ) {
            let r = rate(tokens, per_ms, burst);
            let a = r.tokens_in(us);
            // a tokens fit in `us` of credit and a + 1 do not.
            prop_assert!(r.cost(a) <= us);
            prop_assert!(r.cost(a + 1) > us);
            prop_assert!(r.refund(a) <= r.cost(a));
            prop_assert_eq!(r.tokens_in(r.window_us()), r.burst());
        }

        #[test]
        fn batch_stays_in_its_bounds(
            tokens in 1u64..10_000_000,
            per_ms in 1u64..3_600_000,
            burst in 1u64..10_000_000,
            workers in 1usize..128,
        ) {
            let r = rate(tokens, per_ms, burst);
            let b = u64::from(r.batch(workers));
            prop_assert!((1..=u64::from(MAX_BATCH)).contains(&b));
            prop_assert!(b == 1 || b <= r.burst() / (4 * workers as u64));
            prop_assert!(b == 1 || b <= r.tokens_in(BATCH_PERIOD_US));
        }

        /// With a whole-µs interval GCRA is exactly a token bucket: a reference bucket kept
        /// in µs of credit (capped at τ, refilled 1 µs per µs, n tokens costing n × T)
        /// admits the same requests.
        #[test]
        fn gcra_is_a_token_bucket(
            interval in 1u64..10_000,
            burst in 1u64..50,
            steps in proptest::collection::vec((0u64..30_000, 1u64..5), 1..200),
        ) {
            let r = Rate::new(&Bucket { tokens: 1, per: Duration::from_micros(interval), burst });
            let tau = interval * burst;
            let (mut tat, mut credit, mut now) = (0u64, tau, 1_000u64);
            for (advance, want) in steps {
                credit = (credit + advance).min(tau);
                now += advance;
                let take = r.take(tat, now, want);
                let reference = want.min(credit / interval);
                prop_assert_eq!(take.granted, reference);
                credit -= reference * interval;
                if take.granted > 0 {
                    tat = take.tat;
                }
                prop_assert_eq!(take.left, credit / interval);
            }
        }
    }
}
