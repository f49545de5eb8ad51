//! Smooth weighted round robin, per worker.
//!
//! Each pick adds every endpoint's weight to its running score, takes the highest, and
//! subtracts the total from the winner (nginx's algorithm): weights 5,1,1 give
//! `a a b a c a a`, spread out rather than in runs. Every worker has its own state and
//! starts at a random point of the cycle, so that N workers started together do not all
//! send their first request to the same endpoint.

use std::cell::RefCell;

/// The balancer state of one cluster on one worker.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    weights: Vec<i64>,
    scores: RefCell<Vec<i64>>,
    total: i64,
}

impl WeightedRoundRobin {
    /// A balancer over `weights` (each at least 1), advanced `skip` picks, which the
    /// caller draws at random per worker.
    pub fn new(weights: &[u32], skip: u64) -> Self {
        let weights: Vec<i64> = weights.iter().map(|&w| i64::from(w.max(1))).collect();
        let total = weights.iter().sum();
        let balancer = WeightedRoundRobin {
            scores: RefCell::new(vec![0; weights.len()]),
            weights,
            total,
        };
        for _ in 0..skip % (total.max(1) as u64) {
            balancer.pick();
        }
        balancer
    }

    /// The index of the next endpoint (0 when there is only one). Ties go to the
    /// endpoint listed first.
    pub fn pick(&self) -> usize {
        if self.weights.len() <= 1 {
            return 0;
        }
        let mut scores = self.scores.borrow_mut();
        let mut best = 0;
        for i in 0..scores.len() {
            scores[i] += self.weights[i];
            if scores[i] > scores[best] {
                best = i;
            }
        }
        scores[best] -= self.total;
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_follow_the_weights_smoothly() {
        let wrr = WeightedRoundRobin::new(&[5, 1, 1], 0);
        let picks: Vec<usize> = (0..7).map(|_| wrr.pick()).collect();
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
        let mut counts = [0; 3];
        for _ in 0..700 {
            counts[wrr.pick()] += 1;
        }
        assert_eq!(counts, [500, 100, 100]);
    }

    #[test]
    fn a_skip_starts_elsewhere_in_the_same_cycle() {
        let a = WeightedRoundRobin::new(&[1, 1, 1], 0);
        let b = WeightedRoundRobin::new(&[1, 1, 1], 1);
        assert_eq!(a.pick(), 0);
        assert_eq!(b.pick(), 1);
        assert_eq!(WeightedRoundRobin::new(&[3], 7).pick(), 0);
    }
}
