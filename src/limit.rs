//! Process-wide connection caps: a listener's `connection_limit` and the process's
//! `max_connections` (Envoy's per-listener connection limit and the overload manager's
//! `global_downstream_max_connections`).
//!
//! Workers share nothing on the request path; a cap over every worker's connections is
//! the one exception the rules allow (ARCHITECTURE.md, rule 1): one relaxed atomic add
//! on a counter all workers write when a connection is accepted, and one subtract when
//! it closes, and only where a cap is configured. A per-worker share of the cap would
//! need no atomic but would refuse connections early on a worker SO_REUSEPORT happens to
//! load more. Over the cap a connection is accepted and closed at once, as Envoy does
//! (counted in `downstream_cx_overflow` or `downstream_global_cx_overflow`); as soon as
//! connections close, new ones are admitted again.
//!
//! The counters are created by the control thread under stable names and outlive
//! snapshots, so a reload that changes a cap keeps counting the connections already
//! open. A connection is released on the snapshot it was admitted on.

use std::sync::atomic::{AtomicU64, Ordering};

/// The connections open under one cap, across every worker.
#[derive(Debug, Default)]
pub struct OpenConnections(AtomicU64);

impl OpenConnections {
    /// Counts one more connection if fewer than `limit` are open.
    pub fn try_open(&self, limit: u64) -> bool {
        // The process-wide exact limit: one relaxed read-modify-write per accepted
        // connection (rule 1's documented exception).
        #[allow(clippy::disallowed_methods)]
        let before = self.0.fetch_add(1, Ordering::Relaxed);
        if before < limit {
            return true;
        }
        self.close();
        false
    }

    /// A connection counted by [`OpenConnections::try_open`] closed.
    pub fn close(&self) {
        // The other half of the documented exception.
        #[allow(clippy::disallowed_methods)]
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Connections counted now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_admits_up_to_its_limit_and_again_after_a_close() {
        let open = OpenConnections::default();
        assert!(open.try_open(2) && open.try_open(2));
        assert!(!open.try_open(2));
        assert_eq!(open.get(), 2);
        open.close();
        assert!(open.try_open(2));
        assert_eq!(open.get(), 2);
    }

    #[test]
    fn workers_racing_never_exceed_the_cap() {
        let open = std::sync::Arc::new(OpenConnections::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let open = std::sync::Arc::clone(&open);
                std::thread::spawn(move || (0..10_000).filter(|_| open.try_open(100)).count())
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 100);
        assert_eq!(open.get(), 100);
    }
}
