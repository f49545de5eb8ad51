//! Locality weights (Envoy: load_balancing/locality_weight, overprovisioning).
//!
//! With locality-weighted balancing a priority's hosts are grouped by locality, and a
//! locality is picked by smooth weighted round robin over its *effective* weight:
//!
//! ```text
//! availability(L)    = factor × eligible(L) / hosts(L)      (excluded hosts not counted)
//! effective_weight(L) = locality_weight(L) × min(100%, availability(L))
//! load(L)            = effective_weight(L) / Σ effective_weight
//! ```
//! "Eligible" is the healthy hosts when the pick goes to healthy hosts, the degraded ones
//! when it goes to degraded hosts. With localities X (weight 1) and Y (weight 2), Y fully
//! healthy: X at 100% or 70% healthy gets 33%, at 69% 32%, at 50% 26%, at 25% 15%, at 0% 0%.
//!
//! The hash policies (ring hash, Maglev) fold the locality weights into each host's share
//! instead (`host weight / Σ host weights in its locality × locality weight / Σ locality
//! weights`), without the availability adjustment, as Envoy's thread-aware balancers do.

/// Effective weights are kept in integers: the locality weight times this scale at full
/// availability (four decimal places of the availability ratio).
pub(crate) const SCALE: u64 = 10_000;

/// A locality's effective weight: `weight × min(1, factor/100 × eligible/hosts)`, scaled by
/// [`SCALE`]; 0 when the locality has no (non-excluded) hosts.
pub(crate) fn effective_weight(weight: u32, eligible: u64, hosts: u64, factor: u32) -> u64 {
    if hosts == 0 {
        return 0;
    }
    let full = 100 * u128::from(hosts);
    let available = (u128::from(factor) * u128::from(eligible)).min(full);
    (u128::from(weight) * u128::from(SCALE) * available / full) as u64
}

/// Each host's share of a hash table (summing to 1 over the hosts given): `members` are
/// `(locality weight, host weight, locality)` triples. Localities of weight 0 get nothing;
/// when every locality weighs 0 the shares ignore localities (rather than leaving the table
/// empty, which Envoy does).
pub(crate) fn hash_shares(members: &[(u32, u32, u32)]) -> Vec<f64> {
    use std::collections::HashMap;
    let mut per_locality: HashMap<u32, (u64, u64)> = HashMap::new();
    for &(lw, hw, locality) in members {
        let entry = per_locality.entry(locality).or_insert((u64::from(lw), 0));
        entry.1 += u64::from(hw.max(1));
    }
    let locality_total: u64 = per_locality.values().map(|&(lw, _)| lw).sum();
    if locality_total == 0 {
        let total: u64 = members.iter().map(|m| u64::from(m.1.max(1))).sum();
        return members
            .iter()
            .map(|m| u64::from(m.1.max(1)) as f64 / total as f64)
            .collect();
    }
    members
        .iter()
        .map(|&(_, hw, locality)| {
            let (lw, sum) = per_locality.get(&locality).copied().unwrap_or((0, 1));
            (lw as f64 / locality_total as f64) * (u64::from(hw.max(1)) as f64 / sum as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_locality_table() {
        // X weight 1, Y weight 2 and fully available, factor 1.4; percent of traffic to X.
        let y = effective_weight(2, 100, 100, 140);
        // The table rounds (its 69% row, 32, took the availability 96.6% as 96%), so the
        // exact shares are compared within 0.6 of a percent.
        for (x_healthy, expect) in [(100, 33), (70, 33), (69, 32), (50, 26), (25, 15), (0, 0)] {
            let x = effective_weight(1, x_healthy, 100, 140);
            let share = 100.0 * x as f64 / (x + y) as f64;
            assert!(
                (share - expect as f64).abs() < 0.6,
                "X {x_healthy}%: {share}"
            );
        }
    }

    #[test]
    fn an_empty_locality_weighs_nothing() {
        assert_eq!(effective_weight(5, 0, 0, 140), 0);
        assert_eq!(effective_weight(0, 3, 3, 140), 0);
        assert_eq!(effective_weight(5, 3, 3, 140), 5 * SCALE);
    }

    #[test]
    fn hash_shares_fold_locality_weights() {
        // Locality 0 (weight 1): hosts of weight 1 and 3; locality 1 (weight 3): one host.
        let shares = hash_shares(&[(1, 1, 0), (1, 3, 0), (3, 1, 1)]);
        let expect = [0.25 * 0.25, 0.25 * 0.75, 0.75];
        for (s, e) in shares.iter().zip(expect) {
            assert!((s - e).abs() < 1e-12, "{shares:?}");
        }
        // All localities weigh 0: host weights alone.
        let shares = hash_shares(&[(0, 1, 0), (0, 3, 1)]);
        assert_eq!(shares, [0.25, 0.75]);
    }
}
