//! Least request (Envoy: load_balancers.rst, weighted least request).
//!
//! - All weights equal: power of N choices. Draw `choice_count` hosts at random (with
//!   replacement, as Envoy) and take the one with the fewest active requests; the first
//!   drawn wins ties. O(choice_count), no state.
//! - Weights differ: earliest deadline first over dynamic weights `weight / (active +
//!   1)^bias` (bias 0 is plain weighted round robin; 1 divides by active + 1). Each pick
//!   takes the entry with the earliest deadline and schedules it again at `deadline + 1 /
//!   weight`, its weight computed from its active requests at that moment; the others keep
//!   their deadlines until picked, as in Envoy. The heap is allocated once (per plan), so
//!   a pick only moves entries within it.
//!
//! "Active requests" are the picking worker's own in-flight requests to the host: workers
//! share nothing, so each balances its own load (the caller passes them in).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Power of `choices` choices over `members`: an index into `members`.
#[inline]
pub(crate) fn choose(
    rng: &mut fastrand::Rng,
    members: &[u32],
    choices: u32,
    active: &dyn Fn(usize) -> u32,
) -> Option<usize> {
    if members.is_empty() {
        return None;
    }
    let len = members.len();
    let mut best = rng.usize(..len);
    let mut best_active = active(members[best] as usize);
    // A huge `choice_count` must not loop per request: 64 draws with replacement miss
    // the least loaded of even 16 candidates less than 2% of the time.
    let draws = choices.clamp(2, 64);
    for _ in 1..draws {
        let candidate = rng.usize(..len);
        let candidate_active = active(members[candidate] as usize);
        if candidate_active < best_active {
            best = candidate;
            best_active = candidate_active;
        }
    }
    Some(best)
}

/// One worker's earliest-deadline-first schedule over a weighted host list.
#[derive(Debug, Clone)]
pub(crate) struct Edf {
    heap: BinaryHeap<Deadline>,
}

#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: f64,
    index: u32,
}

// BinaryHeap is a max-heap: the earliest deadline must compare greatest. Ties go to the
// lower index, so equal schedules are deterministic.
impl Ord for Deadline {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then(other.index.cmp(&self.index))
    }
}
impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Deadline {}

impl Edf {
    /// A schedule over `weights` (each at least 1) whose first deadlines fall at random
    /// points of each entry's first period, so that workers do not move in lockstep.
    pub(crate) fn new(weights: &[i64], rng: &mut fastrand::Rng) -> Edf {
        let heap = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Deadline {
                at: rng.f64() / w.max(1) as f64,
                index: i as u32,
            })
            .collect();
        Edf { heap }
    }

    /// The next entry: an index into the weight list. Never allocates: the picked entry is
    /// rescheduled in place.
    #[inline]
    pub(crate) fn pick(
        &mut self,
        weights: &[i64],
        members: &[u32],
        bias: f64,
        active: &dyn Fn(usize) -> u32,
    ) -> Option<usize> {
        let mut top = self.heap.peek_mut()?;
        let index = top.index as usize;
        let weight = *weights.get(index)? as f64;
        let member = *members.get(index)? as usize;
        let active = f64::from(active(member)) + 1.0;
        let dynamic = if bias == 0.0 {
            weight
        } else if bias == 1.0 {
            weight / active
        } else {
            weight / active.powf(bias)
        };
        // A weight that rounds to nothing would schedule the host at infinity forever.
        top.at += 1.0 / dynamic.max(f64::MIN_POSITIVE);
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_choices_take_the_less_loaded_host() {
        let members = [0, 1];
        let active = |m: usize| if m == 0 { 10 } else { 0 };
        let mut rng = fastrand::Rng::with_seed(3);
        let mut counts = [0i32; 2];
        for _ in 0..1000 {
            counts[choose(&mut rng, &members, 2, &active).unwrap()] += 1;
        }
        // Host 0 wins only when both draws land on it: about a quarter of the time.
        assert!(counts[0] > 150 && counts[0] < 350, "{counts:?}");
        // With 5 choices, host 0 wins only 1/32 of the time.
        let mut busy = 0;
        for _ in 0..1000 {
            busy += usize::from(choose(&mut rng, &members, 5, &active) == Some(0));
        }
        assert!(busy < 80, "{busy}");
        assert_eq!(choose(&mut rng, &[], 2, &active), None);
    }

    #[test]
    fn the_fewest_active_wins_whenever_it_is_drawn() {
        // Among 4 hosts, host 2 has no requests in flight: whenever both draws differ and
        // one is host 2, host 2 wins; it is never beaten.
        let members = [0, 1, 2, 3];
        let active = |m: usize| if m == 2 { 0 } else { 5 };
        let mut rng = fastrand::Rng::with_seed(11);
        let mut host2 = 0;
        for _ in 0..10_000 {
            host2 += usize::from(choose(&mut rng, &members, 2, &active) == Some(2));
        }
        // P(host 2 drawn at least once in two draws) = 1 - (3/4)^2 = 7/16.
        assert!(
            (host2 as f64 / 10_000.0 - 7.0 / 16.0).abs() < 0.03,
            "{host2}"
        );
    }

    #[test]
    fn edf_follows_weights_when_idle() {
        let weights = [3, 1];
        let members = [0, 1];
        let mut rng = fastrand::Rng::with_seed(5);
        let mut edf = Edf::new(&weights, &mut rng);
        let mut counts = [0i32; 2];
        for _ in 0..4000 {
            counts[edf.pick(&weights, &members, 1.0, &|_| 0).unwrap()] += 1;
        }
        assert!((counts[0] - 3000).abs() <= 2, "{counts:?}");
    }

    #[test]
    fn edf_divides_weights_by_active_requests() {
        // Weight 2 with 3 in flight (2/4) against weight 1 idle (1/1): the idle host gets
        // twice the picks.
        let weights = [2, 1];
        let members = [0, 1];
        let active = |m: usize| if m == 0 { 3 } else { 0 };
        let mut rng = fastrand::Rng::with_seed(5);
        let mut edf = Edf::new(&weights, &mut rng);
        let mut counts = [0i32; 2];
        for _ in 0..3000 {
            counts[edf.pick(&weights, &members, 1.0, &active).unwrap()] += 1;
        }
        assert!((counts[1] - 2000).abs() <= 3, "{counts:?}");
        // Bias 0: active requests are ignored, weights alone.
        let mut edf = Edf::new(&weights, &mut rng);
        let mut counts = [0i32; 2];
        for _ in 0..3000 {
            counts[edf.pick(&weights, &members, 0.0, &active).unwrap()] += 1;
        }
        assert!((counts[0] - 2000).abs() <= 3, "{counts:?}");
    }
}
