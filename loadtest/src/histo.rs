//! Per-thread latency histograms and their merge.
//!
//! Values are **microseconds**: 1 µs is below anything a loopback HTTP round trip takes,
//! and with 3 significant figures over 1 µs..60 s a histogram is about 200 KiB, small
//! enough to clone once a second for the progress line. Values above a minute are
//! clamped to the top (a timed-out request is an error, not a value, so only a 60 s
//! `--timeout` can get there) and values of 0 to 1 µs, so recording never fails.
//!
//! Three histograms per thread, as wrk2 keeps (but wrk2 prints only the first):
//! - `latency`: from the intended send time (open loop) — corrected for coordinated
//!   omission; in closed loop the intended time is the actual one.
//! - `uncorrected`: from the actual send, what wrk reports.
//! - `late_start`: actual send − intended send; a run whose generator was the bottleneck
//!   shows it here instead of passing it off as upstream latency.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::intervals::Intervals;

/// Largest recordable value: one minute, in microseconds.
pub const MAX_US: u64 = 60_000_000;
/// Significant figures kept.
pub const SIGFIG: u8 = 3;

/// A new empty histogram with the run's bounds.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants inside hdrhistogram's accepted range, so this never fails;
    // the fallback keeps the no-panic rule anyway.
    Histogram::new_with_bounds(1, MAX_US, SIGFIG)
        .or_else(|_| Histogram::new(SIGFIG))
        .unwrap_or_else(|_| Histogram::new(2).expect("2 significant figures are valid"))
}

/// Microseconds, clamped to the recordable range.
pub fn micros(d: Duration) -> u64 {
    (d.as_micros().min(u128::from(MAX_US)) as u64).max(1)
}

/// The three histograms of one thread (or of the whole run, once merged).
#[derive(Debug, Clone)]
pub struct Histograms {
    pub latency: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    pub late_start: Histogram<u64>,
    /// The corrected latency of 2xx answers alone (a rate-limited run's allowed
    /// requests, apart from the refusals answered locally).
    pub success: Histogram<u64>,
    /// The corrected latency again, one histogram per second (HDR log, rate plot).
    pub intervals: Intervals,
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            latency: new_histogram(),
            uncorrected: new_histogram(),
            late_start: new_histogram(),
            success: new_histogram(),
            intervals: Intervals::default(),
        }
    }
}

impl Histograms {
    /// Records one response: `latency` from the intended send, `uncorrected` from the
    /// actual send, and how late the send was.
    pub fn record(&mut self, latency: Duration, uncorrected: Duration, late: Duration) {
        self.latency.saturating_record(micros(latency));
        self.uncorrected.saturating_record(micros(uncorrected));
        // A send on time is a late start of 0; hdrhistogram records 0 fine.
        let late = late.as_micros().min(u128::from(MAX_US)) as u64;
        self.late_start.saturating_record(late);
    }

    /// Adds another thread's histograms. Same bounds on both sides, so this cannot fail;
    /// a failure would only lose that thread's values, which the count would show.
    pub fn merge(&mut self, other: &Histograms) {
        let _ = self.latency.add(&other.latency);
        let _ = self.uncorrected.add(&other.uncorrected);
        let _ = self.late_start.add(&other.late_start);
        let _ = self.success.add(&other.success);
        self.intervals.merge(&other.intervals);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_merges() {
        let mut a = Histograms::default();
        let mut b = Histograms::default();
        a.record(
            Duration::from_millis(2),
            Duration::from_millis(1),
            Duration::from_millis(1),
        );
        b.record(Duration::from_secs(3600), Duration::ZERO, Duration::ZERO);
        a.merge(&b);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.latency.max(), a.latency.highest_equivalent(MAX_US));
        assert_eq!(a.uncorrected.min(), 1);
        assert_eq!(a.late_start.min(), 0);
    }
}
