//! Per-second latency histograms, for the HdrHistogram interval log and the rate plot.
//!
//! Each thread keeps a `Vec` of interval histograms indexed by the second (since the start
//! of the measured phase) in which a request *completed*, as HdrHistogram's recorders do:
//! an interval says what was answered during it. The engine calls [`Intervals::record`]
//! once per counted response next to the whole-run histograms; at the end the threads'
//! vectors are merged index by index, so no state is shared while the run goes.
//!
//! The interval histograms auto-resize from a tiny start instead of using the run's fixed
//! 1 µs..60 s bounds: a fixed-bounds histogram is about 200 KiB, which times seconds times
//! threads would be tens of MiB for a long run, while loopback latencies of a few ms fit
//! in a few KiB. Values stay in microseconds with the same 3 significant figures, so
//! adding all intervals gives the same counts as the whole-run histogram.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::histo::{micros, SIGFIG};

/// One histogram per second of the measured phase.
#[derive(Debug, Clone, Default)]
pub struct Intervals {
    /// `seconds[i]`: responses completed in `[i, i+1)` s after the measured phase began.
    pub seconds: Vec<Histogram<u64>>,
}

/// An empty auto-resizing histogram with the run's precision.
fn new_interval() -> Histogram<u64> {
    // 3 significant figures is a valid precision, so this does not fail; the fallback
    // keeps the no-panic rule.
    Histogram::new(SIGFIG).unwrap_or_else(|_| Histogram::new(2).expect("2 sigfig is valid"))
}

impl Intervals {
    /// Records one response that completed `since_start` after the measured phase began,
    /// with `latency` (the corrected one, as in the whole-run `latency` histogram).
    pub fn record(&mut self, since_start: Duration, latency: Duration) {
        let index = since_start.as_secs() as usize;
        if self.seconds.len() <= index {
            self.seconds.resize_with(index + 1, new_interval);
        }
        // Auto-resize makes recording infallible short of memory; `micros` clamps.
        let _ = self.seconds[index].record(micros(latency));
    }

    /// Adds another thread's intervals, second by second.
    pub fn merge(&mut self, other: &Intervals) {
        if self.seconds.len() < other.seconds.len() {
            self.seconds.resize_with(other.seconds.len(), new_interval);
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            let _ = mine.add(theirs);
        }
    }

    /// Responses per interval.
    pub fn counts(&self) -> Vec<u64> {
        self.seconds.iter().map(Histogram::len).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_second_and_merges() {
        let mut a = Intervals::default();
        let mut b = Intervals::default();
        a.record(Duration::from_millis(100), Duration::from_micros(500));
        a.record(Duration::from_millis(2500), Duration::from_millis(3));
        b.record(Duration::from_millis(900), Duration::from_micros(700));
        b.record(Duration::from_millis(3100), Duration::from_secs(3600));
        a.merge(&b);
        assert_eq!(a.counts(), vec![2, 0, 1, 1]);
        assert_eq!(
            a.seconds[3].max(),
            a.seconds[3].highest_equivalent(60_000_000)
        );
    }
}
