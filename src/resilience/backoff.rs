//! Exponential back-off with full jitter (AWS's "full jitter", as the issue asks):
//! before retry `n` (from 1) a wait drawn uniformly from `[0, min(max, base × 2^(n-1))]`.
//!
//! Envoy's `JitteredExponentialBackOffStrategy` draws from `[0, (2^n - 1) × base)`
//! capped at `max`; ringway follows the documented formula of `config::Backoff`
//! instead (the same ceiling for the first retry, a lower one after). The draw is a
//! uniform `u64` from the caller (the worker's generator), so that this stays pure.
//!
//! Overflow: the ceiling is computed in `u128` nanoseconds with the shift capped, so a
//! huge retry number or a huge base saturates at `max` instead of wrapping or panicking.

use std::time::Duration;

use crate::config::resilience::Backoff;

/// Full jitter: uniform in `[0, min(max, base * 2^(retry-1))]`, `retry` from 1 (0 is
/// taken as 1); `draw` a uniform u64.
pub fn delay(backoff: &Backoff, retry: u32, draw: u64) -> Duration {
    let ceiling = ceiling_nanos(backoff, retry);
    // Multiply-shift maps the draw onto [0, ceiling] without a division and with a bias
    // below 2^-64 per value; `ceiling + 1` fits since the ceiling is capped below.
    let nanos = (u128::from(draw) * (ceiling + 1)) >> 64;
    duration_from_nanos(nanos)
}

/// The largest wait before retry `retry`, in nanoseconds (at most `u64::MAX - 1`).
fn ceiling_nanos(backoff: &Backoff, retry: u32) -> u128 {
    let base = backoff.base.as_nanos();
    let max = backoff.max.as_nanos();
    let shift = retry.max(1) - 1;
    // A shift that would push a bit out of the u128 saturates (the result is far beyond
    // any `max`: Duration's range is below 2^94 ns).
    let grown = if shift < base.leading_zeros() {
        base << shift
    } else if base == 0 {
        0
    } else {
        u128::MAX
    };
    grown.min(max).min(u128::from(u64::MAX - 1))
}

fn duration_from_nanos(nanos: u128) -> Duration {
    let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
    Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn backoff(base: u64, max: u64) -> Backoff {
        Backoff {
            base: ms(base),
            max: ms(max),
        }
    }

    #[test]
    fn the_ceiling_doubles_per_retry_up_to_max() {
        let b = backoff(25, 250);
        assert_eq!(delay(&b, 1, u64::MAX), ms(25));
        assert_eq!(delay(&b, 2, u64::MAX), ms(50));
        assert_eq!(delay(&b, 3, u64::MAX), ms(100));
        assert_eq!(delay(&b, 4, u64::MAX), ms(200));
        assert_eq!(delay(&b, 5, u64::MAX), ms(250));
        assert_eq!(
            delay(&b, 0, u64::MAX),
            ms(25),
            "retry 0 counts as the first"
        );
    }

    #[test]
    fn the_draw_spans_zero_to_the_ceiling() {
        let b = backoff(100, 1000);
        assert_eq!(delay(&b, 1, 0), Duration::ZERO);
        let half = delay(&b, 1, u64::MAX / 2);
        assert!(half > ms(49) && half < ms(51), "{half:?}");
        // Uniform: the mean of many draws is near half the ceiling.
        let mut rng = fastrand::Rng::with_seed(7);
        let n = 20_000u32;
        let sum: Duration = (0..n).map(|_| delay(&b, 3, rng.u64(..))).sum();
        let mean = sum / n;
        assert!(mean > ms(190) && mean < ms(210), "{mean:?}");
    }

    #[test]
    fn huge_retry_numbers_and_durations_saturate() {
        let b = backoff(25, 250);
        for retry in [31, 32, 33, 64, 1000, u32::MAX] {
            assert_eq!(delay(&b, retry, u64::MAX), ms(250), "retry {retry}");
        }
        let huge = Backoff {
            base: Duration::MAX,
            max: Duration::MAX,
        };
        let d = delay(&huge, u32::MAX, u64::MAX);
        assert_eq!(d, Duration::from_nanos(u64::MAX - 1));
        let zero = Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert_eq!(delay(&zero, 9, u64::MAX), Duration::ZERO);
    }

    #[test]
    fn a_tiny_base_still_grows_to_a_large_max() {
        let b = Backoff {
            base: Duration::from_nanos(1),
            max: Duration::from_secs(3600),
        };
        assert_eq!(delay(&b, 41, u64::MAX), Duration::from_nanos(1 << 40));
        assert_eq!(delay(&b, 200, u64::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn max_below_base_caps_the_first_retry() {
        let b = backoff(100, 10);
        assert_eq!(delay(&b, 1, u64::MAX), ms(10));
    }
}
