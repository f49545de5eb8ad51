//! Envoy's retry budget (`circuit_breakers.thresholds.retry_budget`), kept per core.
//!
//! Envoy allows a retry while `active_retries < max(min_retry_concurrency,
//! budget_percent% × active_requests)` over the whole cluster. ringway keeps the counts
//! per worker (no shared state on the request path), so each worker applies the rule to
//! its own counts with the minimum split between workers:
//!
//! ```text
//! allowed_w = max(ceil(min_retry_concurrency / workers), floor(pct × requests_w / 100))
//! ```
//!
//! Process-wide bound (W workers, R = Σ requests_w, m = min_retry_concurrency):
//! - never more than `W × ceil(m / W) + pct × R / 100 < m + W + pct × R / 100` retries
//!   at once (each worker's allowance is at most the sum of its two terms);
//! - never fewer allowed than `max(m, pct × R / 100 − W)` would be (Σ max ≥ max Σ, and
//!   each floor loses under one): at least Envoy's minimum concurrency, and the
//!   percentage short by at most one retry per worker.
//!
//! What per-core counting changes against Envoy's global one: a worker whose requests
//! are mostly retries may refuse one while another worker has unused budget. The budget
//! protects the upstream from a retry storm, which is a process-wide sum, so the bound
//! above is what matters.

use crate::config::resilience::RetryBudget;

/// Whether one more retry may start: active_retries < max(min_per_core, pct *
/// active_requests / 100) with min_per_core = ceil(min_retry_concurrency / workers).
/// `active_requests`: this worker's requests to the cluster at this priority (Envoy
/// counts active and pending); `active_retries`: its retries among them.
pub fn allows(
    budget: &RetryBudget,
    workers: usize,
    active_requests: u32,
    active_retries: u32,
) -> bool {
    let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
    let min_per_core = budget.min_retry_concurrency.div_ceil(workers);
    // `as` saturates and maps NaN to 0: a bad percent cannot panic; the decoders
    // refuse percents outside 0..=100 anyway.
    let by_share = (budget.budget_percent * f64::from(active_requests) / 100.0) as u32;
    active_retries < min_per_core.max(by_share)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(percent: f64, min: u32) -> RetryBudget {
        RetryBudget {
            budget_percent: percent,
            min_retry_concurrency: min,
        }
    }

    #[test]
    fn the_minimum_is_split_between_workers_rounding_up() {
        let b = RetryBudget::default(); // 20 %, 3
                                        // One worker: Envoy's rule as is.
        assert!(allows(&b, 1, 0, 2));
        assert!(!allows(&b, 1, 0, 3));
        // Two workers: ceil(3 / 2) = 2 each.
        assert!(allows(&b, 2, 0, 1));
        assert!(!allows(&b, 2, 0, 2));
        // Sixteen: 1 each (16 process-wide, never below Envoy's 3).
        assert!(allows(&b, 16, 0, 0));
        assert!(!allows(&b, 16, 0, 1));
        // Zero workers is taken as one.
        assert!(!allows(&b, 0, 0, 3));
    }

    #[test]
    fn the_share_of_active_requests() {
        let b = RetryBudget::default();
        // 20 % of 100 = 20.
        assert!(allows(&b, 4, 100, 19));
        assert!(!allows(&b, 4, 100, 20));
        // 20 % of 24 = 4.8, floor 4.
        assert!(allows(&b, 1, 24, 3));
        assert!(!allows(&b, 1, 24, 4));
        let all = budget(100.0, 0);
        assert!(allows(&all, 1, u32::MAX, u32::MAX - 1));
        let none = budget(0.0, 0);
        assert!(!allows(&none, 1, 1000, 0));
    }

    #[test]
    fn bad_percents_do_not_panic() {
        assert!(!allows(&budget(f64::NAN, 0), 1, 10, 0));
        assert!(!allows(&budget(-5.0, 0), 1, 10, 0));
        assert!(allows(&budget(f64::INFINITY, 0), 1, 10, 5));
        assert!(allows(&budget(1e300, 1), usize::MAX, u32::MAX, 0));
    }

    #[test]
    fn process_wide_bound_holds() {
        // Σ allowances over workers stays within m + W + pct × R / 100 and at least m.
        let b = RetryBudget::default();
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..1000 {
            let workers = rng.usize(1..=16);
            let requests: Vec<u32> = (0..workers).map(|_| rng.u32(0..200)).collect();
            let allowance = |r: u32| {
                (0..=r.max(10))
                    .take_while(|&k| allows(&b, workers, r, k))
                    .count()
            };
            let total: usize = requests.iter().map(|&r| allowance(r)).sum();
            let sum: u32 = requests.iter().sum();
            let upper = 3.0 + workers as f64 + 0.2 * f64::from(sum);
            assert!((total as f64) < upper, "{total} vs {upper}");
            assert!(total >= 3);
            assert!(total as f64 >= 0.2 * f64::from(sum) - workers as f64);
        }
    }
}
