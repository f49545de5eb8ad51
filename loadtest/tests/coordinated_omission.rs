//! The coordinated-omission correction, with pinned parameters: 4 connections at
//! 1,000 requests/s for 10 s against an upstream that stalls once for 1 s.
//!
//! During the stall each connection has one request in flight and stops sending, while
//! its timeline keeps going: about 1,000 intended sends pile up, and once the stall ends
//! they go out back to back. Measured from their intended times their latencies spread
//! evenly over 0..1 s, about 10% of the run's 10,000 requests, so the corrected p99.9 is
//! near 1 s. Measured from the actual send (what wrk does) only the 4 requests caught in
//! flight were slow (0.04%), so the uncorrected p99.9 stays at loopback latency.
mod common;

use std::time::Duration;

#[test]
fn a_stall_shows_in_corrected_latency_and_not_in_uncorrected() {
    let url = common::serve(|o| {
        o.stall_at = Some(Duration::from_secs(3));
        o.stall_for = Duration::from_secs(1);
    });
    let mut p = common::params(url, 4, Duration::from_secs(10));
    p.rate = Some(1000);
    let r = ringway_load::run::run(p).unwrap();
    eprintln!("{}", ringway_load::report::summary(&r));
    let corrected = r.histograms.latency.value_at_percentile(99.9);
    let uncorrected = r.histograms.uncorrected.value_at_percentile(99.9);
    assert_eq!(r.counts.errors.total(), 0);
    assert!(
        corrected >= 500_000,
        "corrected p99.9 {} ms",
        common::ms(corrected)
    );
    assert!(
        uncorrected < 100_000,
        "uncorrected p99.9 {} ms",
        common::ms(uncorrected)
    );
    // The generator itself caught up after the stall: late starts are what the stall
    // caused, and the run still completed about 10,000 requests.
    assert!(r.counts.completed > 9_800, "{}", r.counts.completed);
}
