//! The open-loop timeline: when each request should be sent.
//!
//! Like wrk2, requests are due on a fixed timeline independent of how fast answers come.
//! With rate `R` over `C` connections, request number `n` of the whole run is due at
//! `start + n / R`; connection `i` owns the numbers `i, i + C, i + 2C, …`, so each
//! connection sends at `R / C` per second and the connections' timelines are staggered
//! by `1 / R`, which spreads the load evenly instead of sending `C` requests at once.
//! Times are computed from the index in integer nanoseconds (no accumulated rounding),
//! so the timeline holds the exact rate over any length of run.
//!
//! When a connection falls behind (a slow answer, or a generator that cannot keep up) its
//! due times are in the past: it sends the next request as soon as the previous answer
//! arrives, until it has caught up. Latency is measured from the due time, so the wait
//! is counted (the coordinated-omission correction).

use std::time::{Duration, Instant};

/// One connection's due times.
#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    rate: u64,
    connections: u64,
    /// The next request number of this connection.
    next: u64,
}

impl Schedule {
    /// Connection `index` of `connections`, sharing `rate` requests per second.
    pub fn new(start: Instant, rate: u64, connections: u64, index: u64) -> Schedule {
        Schedule {
            start,
            rate: rate.max(1),
            connections: connections.max(1),
            next: index,
        }
    }

    /// The due time of this connection's next request, and advances.
    pub fn next_due(&mut self) -> Instant {
        let n = self.next;
        self.next += self.connections;
        let nanos = u128::from(n) * 1_000_000_000 / u128::from(self.rate);
        self.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The due time of the next request without advancing.
    pub fn peek(&self) -> Instant {
        self.clone().next_due()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_interleave_at_the_exact_rate() {
        let start = Instant::now();
        let mut all: Vec<Duration> = Vec::new();
        for i in 0..8 {
            let mut s = Schedule::new(start, 5000, 8, i);
            for _ in 0..1000 {
                all.push(s.next_due() - start);
            }
        }
        all.sort();
        // 8000 requests at 5000/s: one every 200 µs, the last at 1.5998 s.
        for (n, t) in all.iter().enumerate() {
            assert_eq!(t.as_nanos(), n as u128 * 200_000);
        }
    }

    #[test]
    fn odd_rates_do_not_drift() {
        let start = Instant::now();
        let mut s = Schedule::new(start, 3, 1, 0);
        let mut last = start;
        for _ in 0..3001 {
            last = s.next_due();
        }
        assert_eq!(last - start, Duration::from_secs(1000));
    }
}
