//! Smooth weighted round robin, one worker's state over fixed weights.
//!
//! Each pick adds every entry's weight to its running score, takes the highest, and
//! subtracts the total from the winner (nginx's algorithm): weights 5,1,1 give
//! `a a b a c a a`, spread out rather than in runs, and over a cycle of `total` picks each
//! entry is picked exactly `weight` times. Hosts use it for weighted round robin, and
//! localities (whose effective weights change only when the plan does) to pick a locality.
//! Every worker starts at a random point of the cycle, so that N workers started together
//! do not all send their first request to the same host.

/// Scores of one weight list; the weights themselves live in the plan.
#[derive(Debug, Clone)]
pub(crate) struct Smooth {
    scores: Box<[i64]>,
}

/// How far into its cycle a new state may start: enough to spread workers, bounded so
/// that building a picker over heavy weights stays cheap.
const MAX_SKIP: u64 = 1024;

impl Smooth {
    /// A state over `weights` (each at least 1, summing to `total`), advanced `skip`
    /// picks (modulo the cycle, at most [`MAX_SKIP`]).
    pub(crate) fn new(weights: &[i64], total: i64, skip: u64) -> Smooth {
        let mut state = Smooth {
            scores: vec![0; weights.len()].into_boxed_slice(),
        };
        let cycle = (total.max(1) as u64).min(MAX_SKIP);
        for _ in 0..skip % cycle {
            state.pick(weights, total);
        }
        state
    }

    /// The index of the next entry; ties go to the entry listed first. `weights` must be
    /// the list the state was made for (a shorter list is tolerated: indices stay in it).
    #[inline]
    pub(crate) fn pick(&mut self, weights: &[i64], total: i64) -> usize {
        let mut best = 0;
        let mut best_score = i64::MIN;
        for (score, &weight) in self.scores.iter_mut().zip(weights) {
            *score += weight;
            if *score > best_score {
                best_score = *score;
            }
        }
        // A second pass finds the winner's index; separating the passes lets the first
        // one vectorise, which keeps a 100-host pick in tens of nanoseconds.
        for (i, &score) in self.scores.iter().enumerate() {
            if score == best_score {
                best = i;
                break;
            }
        }
        if let Some(score) = self.scores.get_mut(best) {
            *score -= total;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_follow_the_weights_smoothly() {
        let weights = [5, 1, 1];
        let mut wrr = Smooth::new(&weights, 7, 0);
        let picks: Vec<usize> = (0..7).map(|_| wrr.pick(&weights, 7)).collect();
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
        let mut counts = [0; 3];
        for _ in 0..700 {
            counts[wrr.pick(&weights, 7)] += 1;
        }
        assert_eq!(counts, [500, 100, 100]);
    }

    #[test]
    fn a_skip_starts_elsewhere_in_the_same_cycle() {
        let weights = [1, 1, 1];
        assert_eq!(Smooth::new(&weights, 3, 0).pick(&weights, 3), 0);
        assert_eq!(Smooth::new(&weights, 3, 1).pick(&weights, 3), 1);
        assert_eq!(Smooth::new(&[3], 3, 7).pick(&[3], 3), 0);
    }
}
