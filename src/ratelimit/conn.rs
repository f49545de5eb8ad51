//! A bucket owned by one client connection (Envoy's
//! `local_rate_limit_per_downstream_connection`, native `per_connection`).
//!
//! Design: the connection's task owns it, so it is one plain `u64` TAT and the GCRA step
//! of [`Rate`]: no atomics, no table, no lease (leases exist to keep workers apart; a
//! connection lives on one worker). A new connection's bucket is full
//! (`ConnBucket::default()`: TAT 0). Exact: the same step as the pool with batch 1.

use super::rate::Rate;
use super::shard::Decision;

/// One connection's bucket for one limit.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnBucket {
    /// Theoretical arrival time, µs (at or before `now`: full).
    tat: u64,
}

impl ConnBucket {
    /// Takes one token at `now` (µs, from `now_micros()`).
    #[inline]
    pub fn decide(&mut self, rate: &Rate, now: u64) -> Decision {
        let take = rate.take(self.tat, now, 1);
        if take.granted == 0 {
            return Decision {
                allowed: false,
                remaining: 0,
                retry_after_us: take.next_token_us,
                reset_us: take.full_in_us,
                evicted: None,
            };
        }
        self.tat = take.tat;
        Decision {
            allowed: true,
            remaining: take.left,
            retry_after_us: 0,
            reset_us: take.full_in_us,
            evicted: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::config::ratelimit::Bucket;

    fn rate(tokens: u64, per: Duration, burst: u64) -> Rate {
        Rate::new(&Bucket { tokens, per, burst })
    }

    #[test]
    fn envoy_two_per_five_seconds_per_connection() {
        let r = rate(2, Duration::from_secs(5), 2);
        let mut b = ConnBucket::default();
        let t0 = 7_000_000;
        let first = b.decide(&r, t0);
        assert!(first.allowed);
        assert_eq!((first.remaining, first.reset_us), (1, 2_500_000));
        let second = b.decide(&r, t0);
        assert!(second.allowed);
        assert_eq!((second.remaining, second.reset_us), (0, 5_000_000));
        let third = b.decide(&r, t0);
        assert!(!third.allowed);
        assert_eq!(third.retry_after_us, 2_500_000);
        assert_eq!(third.reset_us, 5_000_000);
        assert!(!b.decide(&r, t0 + 2_499_999).allowed);
        assert!(b.decide(&r, t0 + 2_500_000).allowed);
        assert!(!b.decide(&r, t0 + 2_500_000).allowed);
        // Idle long enough, the bucket is full again, never fuller.
        let later = t0 + 60_000_000;
        assert!(b.decide(&r, later).allowed && b.decide(&r, later).allowed);
        assert!(!b.decide(&r, later).allowed);
    }

    #[test]
    fn connections_do_not_share_buckets() {
        let r = rate(1, Duration::from_secs(60), 1);
        let (mut a, mut b) = (ConnBucket::default(), ConnBucket::default());
        assert!(a.decide(&r, 10).allowed);
        assert!(!a.decide(&r, 10).allowed);
        assert!(b.decide(&r, 10).allowed);
    }

    proptest! {
        /// In any window of W µs a connection gets at most burst + ⌊W / T⌋ requests.
        #[test]
        fn no_window_gets_more_than_the_bucket_allows(
            interval in 1u64..5_000,
            burst in 1u64..20,
            gaps in proptest::collection::vec(0u64..3_000, 1..400),
            window in 1u64..50_000,
        ) {
            let r = rate(1, Duration::from_micros(interval), burst);
            let mut b = ConnBucket::default();
            let mut now = 1_000;
            let mut allowed = Vec::new();
            for gap in gaps {
                now += gap;
                if b.decide(&r, now).allowed {
                    allowed.push(now);
                }
            }
            let bound = burst + window / interval;
            for (i, &start) in allowed.iter().enumerate() {
                let within = allowed[i..].iter().take_while(|&&t| t <= start + window).count() as u64;
                prop_assert!(within <= bound, "{within} in {window} µs from {start}, bound {bound}");
            }
        }
    }
}
