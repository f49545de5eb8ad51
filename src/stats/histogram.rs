//! Latency histograms with one writer per cell, merged when read.
//!
//! Design: each worker records into its own block of log-linear buckets (microseconds:
//! exact below 16 µs, then eight buckets per power of two, so any value is known to
//! within 12.5%, up to 2^36 µs, about 19 hours) plus a running sum. Recording is a few
//! shifts and two relaxed load-and-store pairs on the worker's own cache lines: no lock,
//! no read-modify-write, no allocation. The admin endpoint merges the workers' blocks
//! when it renders, and derives what Envoy shows from the fine buckets: quantiles for
//! `/stats` (interpolated within a bucket), and Envoy's default bucket bounds for
//! Prometheus (`le` from 0.5 ms to one hour; a bound that falls inside a fine bucket takes
//! the share of it below the bound, assuming values spread evenly across it). Values are
//! shown in milliseconds, as Envoy's `_ms`/`_time` histograms are. A histogram of counts
//! (Envoy's unitless ones, `upstream_rq_per_cx`) records each count as that many
//! "microseconds" and shows it as it is: exact up to 15, then within 12.5%, on the same
//! `le` bounds (a count equal to a bound is above it, as in Envoy's buckets).

use std::{sync::Arc, time::Duration};

use super::Counter;

/// Below this, one bucket per microsecond.
const LINEAR: u64 = 16;
/// Buckets per power of two above it (2^SUB_BITS).
const SUB_BITS: u32 = 3;
/// Powers of two covered: 2^4 .. 2^36 µs.
const OCTAVES: usize = 32;
/// Fine buckets, then the sum.
pub const BUCKETS: usize = LINEAR as usize + OCTAVES * (1 << SUB_BITS);
const CELLS: usize = BUCKETS + 1;
const SUM: usize = BUCKETS;

/// Envoy's default bucket bounds, in milliseconds.
pub const ENVOY_BOUNDS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];
/// The quantiles `/stats` shows, as Envoy's (percent).
pub const QUANTILES: [f64; 10] = [0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 100.0];

/// The bucket of `us` microseconds.
#[inline]
fn bucket(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros(); // >= 4
    let sub = (us >> (octave - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    let index = LINEAR as usize + (octave as usize - 4) * (1 << SUB_BITS) + sub as usize;
    index.min(BUCKETS - 1)
}

/// The values of bucket `index`: `[low, high)` in microseconds.
fn bounds(index: usize) -> (u64, u64) {
    if index < LINEAR as usize {
        return (index as u64, index as u64 + 1);
    }
    let rest = index - LINEAR as usize;
    let octave = (rest >> SUB_BITS) as u32 + 4;
    let sub = (rest & ((1 << SUB_BITS) - 1)) as u64;
    let width = 1u64 << (octave - SUB_BITS);
    let low = (1u64 << octave) + sub * width;
    (low, low + width)
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Line([Counter; 16]);

/// One histogram: a block of cells per worker.
#[derive(Debug)]
pub struct Histogram {
    name: Box<str>,
    /// Shown only once it holds a value (Envoy makes such a histogram on its first
    /// value: `internal.upstream_rq_time`).
    sparse: bool,
    /// Its values are counts, not times.
    counts: bool,
    workers: usize,
    lines_per_worker: usize,
    lines: Box<[Line]>,
}

impl Histogram {
    /// A histogram named `name` (its full stat name) for `workers` workers.
    pub fn new(name: &str, workers: usize) -> Self {
        let lines_per_worker = CELLS.div_ceil(16);
        Histogram {
            name: name.into(),
            sparse: false,
            counts: false,
            workers,
            lines_per_worker,
            lines: (0..lines_per_worker * workers.max(1))
                .map(|_| Line::default())
                .collect(),
        }
    }

    /// A histogram shown only once it holds a value.
    pub fn sparse(name: &str, workers: usize) -> Self {
        Histogram {
            sparse: true,
            ..Histogram::new(name, workers)
        }
    }

    /// A histogram of counts: [`WorkerHistogram::record_count`].
    pub fn counts(name: &str, workers: usize) -> Self {
        Histogram {
            counts: true,
            ..Histogram::new(name, workers)
        }
    }

    /// The full stat name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Shown only once it holds a value.
    pub fn is_sparse(&self) -> bool {
        self.sparse
    }

    fn cell(&self, worker: usize, index: usize) -> &Counter {
        &self.lines[worker * self.lines_per_worker + index / 16].0[index % 16]
    }

    /// The handle through which worker `worker` records.
    ///
    /// # Panics
    /// When `worker` is not below the worker count (a bug in the caller).
    pub fn for_worker(self: &Arc<Self>, worker: usize) -> WorkerHistogram {
        assert!(
            worker < self.workers,
            "worker index out of range for histogram"
        );
        WorkerHistogram {
            histogram: Arc::clone(self),
            worker,
        }
    }

    /// Every worker's cells, added up.
    pub fn merged(&self) -> Merged {
        let mut counts = vec![0u64; BUCKETS];
        let mut sum_us = 0u64;
        for worker in 0..self.workers {
            for (i, count) in counts.iter_mut().enumerate() {
                *count = count.wrapping_add(self.cell(worker, i).get());
            }
            sum_us = sum_us.wrapping_add(self.cell(worker, SUM).get());
        }
        Merged {
            counts,
            sum_us,
            of_counts: self.counts,
        }
    }
}

/// A worker's recording handle (held in its snapshot).
#[derive(Debug, Clone)]
pub struct WorkerHistogram {
    histogram: Arc<Histogram>,
    worker: usize,
}

/// `value` in whole microseconds, what a histogram records (not `as_micros`, whose
/// u128 arithmetic costs more than the record itself).
#[inline]
pub fn micros(value: Duration) -> u64 {
    value
        .as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(value.subsec_micros()))
}

impl WorkerHistogram {
    /// Records one value.
    #[inline]
    pub fn record(&self, value: Duration) {
        self.record_micros(micros(value));
    }

    /// Records one count (a histogram made with [`Histogram::counts`]).
    #[inline]
    pub fn record_count(&self, n: u64) {
        self.record_micros(n);
    }

    /// Records one value of `us` microseconds (one conversion for a value recorded in
    /// two histograms).
    #[inline]
    pub fn record_micros(&self, us: u64) {
        let h = &*self.histogram;
        h.cell(self.worker, bucket(us)).inc();
        h.cell(self.worker, SUM).add(us);
    }
}

/// A histogram's merged counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    counts: Vec<u64>,
    sum_us: u64,
    /// The values are counts, shown as they are (else microseconds, shown in
    /// milliseconds).
    of_counts: bool,
}

impl Merged {
    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What one shown unit is in recorded ones: a millisecond's microseconds, or 1.
    fn per_unit(&self) -> f64 {
        if self.of_counts {
            1.0
        } else {
            1000.0
        }
    }

    /// Their sum, in milliseconds (or as counted).
    pub fn sum_ms(&self) -> f64 {
        self.sum_us as f64 / self.per_unit()
    }

    /// The value below which `percent` of the values lie, in milliseconds (interpolated
    /// within its bucket); `None` without values.
    pub fn quantile_ms(&self, percent: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = percent / 100.0 * count as f64;
        let mut below = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let (low, high) = bounds(i);
            if (below + n) as f64 >= rank {
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                // Counts are whole: a bucket holds `low` to `high - 1` (one number
                // below 16).
                let width = if self.of_counts {
                    high - low - 1
                } else {
                    high - low
                };
                let us = low as f64 + within * width as f64;
                return Some(us / self.per_unit());
            }
            below += n;
        }
        None
    }

    /// Values at or below each of `bounds_ms` (ascending): Prometheus' cumulative `le`
    /// buckets, in one pass over the fine buckets.
    pub fn at_most_each_ms(&self, bounds_ms: &[f64]) -> Vec<u64> {
        let mut out = Vec::with_capacity(bounds_ms.len());
        let (mut i, mut below) = (0usize, 0u64);
        for &bound in bounds_ms {
            // Counts are whole numbers: those below the bound are those below its
            // ceiling (a count equal to the bound is above it, as in Envoy, whose
            // buckets take the values below each bound).
            let bound_us = if self.of_counts {
                bound.ceil()
            } else {
                bound * 1000.0
            };
            // Whole fine buckets under the bound.
            while i < BUCKETS && bounds(i).1 as f64 <= bound_us {
                below += self.counts[i];
                i += 1;
            }
            let mut at = below;
            if i < BUCKETS {
                let (low, high) = bounds(i);
                if (low as f64) < bound_us {
                    let share = (bound_us - low as f64) / (high - low) as f64;
                    at += (self.counts[i] as f64 * share).floor() as u64;
                }
            }
            out.push(at);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for us in (0..100_000u64).chain([1 << 20, (1 << 36) - 1, u64::MAX]) {
            let b = bucket(us);
            assert!(b >= last || us > 100_000, "{us}");
            last = b;
            let (low, high) = bounds(b);
            if b < BUCKETS - 1 {
                assert!(low <= us && us < high, "{us} in [{low}, {high})");
                // 12.5% resolution.
                assert!((high - low) * 8 <= high.max(16), "{us}: [{low}, {high})");
            }
        }
        assert_eq!(bounds(BUCKETS - 1).1, 1 << 36);
    }

    #[test]
    fn counts_are_whole_numbers_on_envoys_bounds() {
        let h = Arc::new(Histogram::counts("cluster.a.upstream_rq_per_cx", 2));
        for (worker, n) in [(0, 1), (1, 1), (0, 3), (1, 5), (0, 40)] {
            h.for_worker(worker).record_count(n);
        }
        let m = h.merged();
        assert_eq!((m.count(), m.sum_ms()), (5, 50.0));
        assert_eq!(m.quantile_ms(0.0), Some(1.0));
        assert_eq!(m.quantile_ms(50.0), Some(3.0));
        let p100 = m.quantile_ms(100.0).unwrap();
        assert!((40.0..=43.0).contains(&p100), "{p100}");
        // Below each bound, as Envoy's buckets count: a count at a bound is above it.
        let each = m.at_most_each_ms(&ENVOY_BOUNDS_MS[..6]);
        assert_eq!(each, [0, 0, 3, 4, 4, 5], "le 0.5, 1, 5, 10, 25, 50");
        // Times keep their milliseconds.
        let t = Arc::new(Histogram::new("t", 1));
        t.for_worker(0).record(Duration::from_millis(3));
        assert_eq!(t.merged().sum_ms(), 3.0);
    }

    #[test]
    fn workers_merge_into_quantiles_and_envoy_buckets() {
        let h = Arc::new(Histogram::new("cluster.a.upstream_rq_time", 2));
        let (w0, w1) = (h.for_worker(0), h.for_worker(1));
        for ms in 1..=100u64 {
            let worker = if ms % 2 == 0 { &w0 } else { &w1 };
            worker.record(Duration::from_millis(ms));
        }
        let m = h.merged();
        assert_eq!(m.count(), 100);
        assert_eq!(m.sum_ms(), 5050.0);
        let p50 = m.quantile_ms(50.0).unwrap();
        assert!((45.0..=56.0).contains(&p50), "{p50}");
        let p99 = m.quantile_ms(99.0).unwrap();
        assert!((90.0..=113.0).contains(&p99), "{p99}");
        assert!(m.quantile_ms(0.0).unwrap() <= 1.0);
        let at_most = |bound: f64| m.at_most_each_ms(&[bound])[0];
        assert_eq!(at_most(0.5), 0);
        assert_eq!(at_most(1000.0), 100);
        let ten = at_most(10.0);
        assert!((9..=11).contains(&ten), "{ten}");
        let mut previous = 0;
        let each = m.at_most_each_ms(&ENVOY_BOUNDS_MS);
        for (bound, n) in ENVOY_BOUNDS_MS.iter().zip(&each) {
            assert_eq!(
                *n,
                at_most(*bound),
                "one pass and one bound agree at {bound}"
            );
            assert!(*n >= previous, "cumulative at {bound}");
            previous = *n;
        }
        assert_eq!(Histogram::new("x", 1).merged().quantile_ms(50.0), None);
    }
}
