//! Priority loads and panic, as Envoy documents them (load_balancing/priority,
//! overprovisioning, degraded, panic_threshold).
//!
//! Per priority P, over its non-excluded hosts (excluded ones are in no denominator):
//!
//! ```text
//! health(P)   = min(100, factor × healthy(P) / total(P))      integer percent, factor 140 = 1.4
//! degraded(P) = min(100, factor × degraded(P) / total(P))
//! normalized total availability NTA = min(100, Σ health + Σ degraded)
//! healthy load(P)  = min(load left, health(P) × 100 / NTA), from P=0 down, out of 100
//! degraded load(P) = min(load left, degraded(P) × 100 / NTA), with what healthy left
//! ```
//! The rounding left-over goes to the first priority with healthy availability (else the
//! first with degraded), so the loads always sum to 100: with two priorities and P=1 fully
//! healthy, P=0 at 72% healthy keeps 100%, at 71% gets 99/1, at 50% 70/30, at 25% 35/65.
//!
//! Panic: only while NTA < 100, a priority whose (healthy + degraded) share of its hosts is
//! below the threshold is in panic and balances over all of its hosts. When every priority
//! is in panic (e.g. nothing is healthy anywhere) the loads follow the host counts instead.
//! With the threshold at 0 and nothing available, P=0 gets the whole load and nothing can
//! be picked ("no healthy upstream"), as in Envoy.
//!
//! Envoy's total-panic split counts excluded hosts too; here they are left out, as they
//! are never picked (see the module note of `balance`).

/// One priority's host counts (excluded hosts not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub total: u64,
    pub healthy: u64,
    pub degraded: u64,
}

/// Every priority's loads (percent) and panic state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loads {
    pub healthy: Vec<u32>,
    pub degraded: Vec<u32>,
    pub panic: Vec<bool>,
}

/// The loads of `counts` (one entry per priority, at least one) under an overprovisioning
/// `factor` (percent) and a panic `threshold` (percent, 0..=100).
pub(crate) fn loads(counts: &[Counts], factor: u32, threshold: u32) -> Loads {
    let n = counts.len();
    let mut out = Loads {
        healthy: vec![0; n],
        degraded: vec![0; n],
        panic: vec![false; n],
    };
    if n == 0 {
        return out;
    }
    let factor = u64::from(factor);
    let share = |part: u64, total: u64| -> u32 {
        factor
            .saturating_mul(part)
            .checked_div(total)
            .map_or(0, |s| s.min(100) as u32)
    };
    let health: Vec<u32> = counts.iter().map(|c| share(c.healthy, c.total)).collect();
    let degraded: Vec<u32> = counts.iter().map(|c| share(c.degraded, c.total)).collect();
    let sum: u64 = health.iter().chain(&degraded).map(|&h| u64::from(h)).sum();
    let nta = sum.min(100) as u32;

    if nta > 0 {
        let left = distribute(&mut out.healthy, &health, 100, nta);
        let left = distribute(&mut out.degraded, &degraded, left, nta);
        if left > 0 {
            if let Some(p) = health.iter().position(|&h| h > 0) {
                out.healthy[p] += left;
            } else if let Some(p) = degraded.iter().position(|&d| d > 0) {
                out.degraded[p] += left;
            }
        }
    }

    if threshold == 0 && nta == 0 {
        out.healthy[0] = 100;
        return out;
    }
    let mut total_panic = true;
    for (p, c) in counts.iter().enumerate() {
        let in_panic = nta < 100 && {
            // healthy% + degraded% < threshold, in integers: 100 × available < threshold × total.
            let available = c.healthy + c.degraded;
            c.total == 0
                || 100 * u128::from(available) < u128::from(threshold) * u128::from(c.total)
        };
        out.panic[p] = in_panic && threshold > 0;
        total_panic &= out.panic[p];
    }
    if total_panic {
        let hosts: u64 = counts.iter().map(|c| c.total).sum();
        out.degraded.fill(0);
        if hosts == 0 {
            out.healthy.fill(0);
            out.healthy[0] = 100;
            return out;
        }
        let mut left = 100;
        for (p, c) in counts.iter().enumerate() {
            out.healthy[p] = (100 * c.total / hosts) as u32;
            left -= out.healthy[p];
        }
        if let Some(p) = counts.iter().position(|c| c.total > 0) {
            out.healthy[p] += left;
        }
    }
    out
}

/// Gives each priority `min(left, availability × 100 / nta)` in order; answers what is left.
fn distribute(load: &mut [u32], availability: &[u32], mut left: u32, nta: u32) -> u32 {
    for (slot, &a) in load.iter_mut().zip(availability) {
        *slot = left.min(a * 100 / nta);
        left -= *slot;
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A priority of 100 hosts with `healthy`% healthy, `degraded`% degraded.
    fn pct(healthy: u64, degraded: u64) -> Counts {
        Counts {
            total: 100,
            healthy,
            degraded,
        }
    }

    fn healthy_loads(counts: &[Counts]) -> Vec<u32> {
        loads(counts, 140, 50).healthy
    }

    #[test]
    fn two_priorities_p1_fully_healthy() {
        // Envoy's table (load_balancing/priority): P=0 healthy% → traffic to P=0 / P=1.
        for (p0, expect) in [
            (100, [100, 0]),
            (72, [100, 0]),
            (71, [99, 1]),
            (50, [70, 30]),
            (25, [35, 65]),
            (0, [0, 100]),
        ] {
            assert_eq!(
                healthy_loads(&[pct(p0, 0), pct(100, 0)]),
                expect,
                "P0 {p0}%"
            );
        }
    }

    #[test]
    fn two_priorities_both_degrading() {
        for (p0, p1, expect) in [
            (100, 100, [100, 0]),
            (72, 72, [100, 0]),
            (71, 71, [99, 1]),
            (50, 50, [70, 30]),
            (25, 100, [35, 65]),
            // Health {35, 35}: NTA 70, normalised to 50/50.
            (25, 25, [50, 50]),
        ] {
            assert_eq!(
                healthy_loads(&[pct(p0, 0), pct(p1, 0)]),
                expect,
                "{p0}/{p1}"
            );
        }
    }

    #[test]
    fn three_priorities() {
        for (p, expect) in [
            ([100, 100, 100], [100, 0, 0]),
            ([72, 72, 100], [100, 0, 0]),
            ([71, 71, 100], [99, 1, 0]),
            ([50, 50, 100], [70, 30, 0]),
            ([25, 100, 100], [35, 65, 0]),
            ([25, 25, 100], [35, 35, 30]),
        ] {
            let counts: Vec<Counts> = p.iter().map(|&h| pct(h, 0)).collect();
            assert_eq!(healthy_loads(&counts), expect, "{p:?}");
        }
        // Envoy's table ends with 25/25/20 → 36/36/28, leaving panic aside. Its algorithm
        // (the same pseudo code) gives 35/35/28 and the rounding left-over (2) to P=0; and
        // with the default threshold every priority (NTA 98) is in panic, so the loads
        // follow the host counts instead.
        let counts = [pct(25, 0), pct(25, 0), pct(20, 0)];
        assert_eq!(loads(&counts, 140, 0).healthy, [37, 35, 28]);
        let l = loads(&counts, 140, 50);
        assert_eq!(l.panic, [true, true, true]);
        assert_eq!(l.healthy, [34, 33, 33]);
    }

    #[test]
    fn the_overprovisioning_factor_is_configurable() {
        // Factor 1.0: a priority is "full" only when every host is healthy.
        assert_eq!(loads(&[pct(80, 0), pct(100, 0)], 100, 50).healthy, [80, 20]);
        // Factor 2.0: half the hosts are enough.
        assert_eq!(loads(&[pct(50, 0), pct(100, 0)], 200, 50).healthy, [100, 0]);
    }

    #[test]
    fn degraded_hosts_take_load_after_healthy_ones() {
        // Envoy's table (load_balancing/degraded): P=0 healthy/degraded/unhealthy →
        // traffic to healthy / degraded hosts.
        for (h, d, healthy, degraded) in [
            (100, 0, 100, 0),
            (71, 0, 100, 0),
            (71, 29, 99, 1),
            (25, 65, 35, 65),
            (5, 0, 100, 0),
        ] {
            let l = loads(&[pct(h, d)], 140, 50);
            assert_eq!(
                (l.healthy[0], l.degraded[0]),
                (healthy, degraded),
                "{h}/{d}"
            );
        }
        // The last row is in panic (5% < 50%): all its hosts are used.
        assert!(loads(&[pct(5, 0)], 140, 50).panic[0]);
    }

    #[test]
    fn degraded_load_spans_priorities() {
        // Envoy's comment example: health 10/20/10 %, degraded 20/10/0 % (after the factor)
        // gives 16/28/14 to healthy hosts and 28/14/0 to degraded ones, the left-over to the
        // first healthy priority. Counts chosen so that factor 100 gives those shares.
        let counts = [pct(10, 20), pct(20, 10), pct(10, 0)];
        let l = loads(&counts, 100, 0);
        assert_eq!(l.healthy, [16, 28, 14]);
        assert_eq!(l.degraded, [28, 14, 0]);
    }

    #[test]
    fn panic_only_when_total_availability_is_short() {
        // Envoy's panic table (load_balancing/panic_threshold), P=1 fully healthy: NTA is
        // 100 and P=0 never panics, whatever its health.
        for p0 in [72, 71, 50, 25, 0] {
            let l = loads(&[pct(p0, 0), pct(100, 0)], 140, 50);
            assert_eq!(l.panic, [false, false], "P0 {p0}%");
        }
        // Both at 25%: NTA 70, both below 50% → both in panic: the loads follow the host
        // counts (equal here).
        let l = loads(&[pct(25, 0), pct(25, 0)], 140, 50);
        assert_eq!(l.panic, [true, true]);
        assert_eq!(l.healthy, [50, 50]);
        // 5% and 65%: NTA 98 → P=0 panics, P=1 does not. (Envoy's table prints 7/93;
        // its algorithm gives 7/92 and the left-over to P=0.)
        let l = loads(&[pct(5, 0), pct(65, 0)], 140, 50);
        assert_eq!(l.panic, [true, false]);
        assert_eq!(l.healthy, [8, 92]);
        // 71/71: NTA 100, no panic.
        assert_eq!(
            loads(&[pct(71, 0), pct(71, 0)], 140, 50).panic,
            [false, false]
        );
    }

    #[test]
    fn nothing_healthy_panics_into_p0_unless_disabled() {
        // All hosts down: total panic, loads by host counts.
        let counts = [
            pct(0, 0),
            Counts {
                total: 300,
                healthy: 0,
                degraded: 0,
            },
        ];
        let l = loads(&counts, 140, 50);
        assert_eq!(l.panic, [true, true]);
        assert_eq!(l.healthy, [25, 75]);
        // Threshold 0: no panic, P=0 gets the load and has nothing to pick.
        let l = loads(&counts, 140, 0);
        assert_eq!(l.panic, [false, false]);
        assert_eq!(l.healthy, [100, 0]);
        assert_eq!(l.degraded, [0, 0]);
    }

    #[test]
    fn excluded_hosts_are_in_no_denominator() {
        // Envoy's example (load_balancing/excluded): P0 {healthy, excluded, excluded},
        // P1 {healthy, healthy}: 1 / (3 - 2) → all traffic stays on P0.
        let p0 = Counts {
            total: 1,
            healthy: 1,
            degraded: 0,
        };
        let p1 = Counts {
            total: 2,
            healthy: 2,
            degraded: 0,
        };
        assert_eq!(loads(&[p0, p1], 140, 50).healthy, [100, 0]);
    }

    #[test]
    fn empty_priorities_do_not_break_the_sum() {
        let empty = Counts::default();
        assert_eq!(healthy_loads(&[empty, pct(100, 0)]), [0, 100]);
        let l = loads(&[empty], 140, 50);
        assert_eq!(l.healthy, [100]);
        assert_eq!(l.panic, [true]);
    }
}
