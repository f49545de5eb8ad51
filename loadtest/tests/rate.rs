//! Open loop holds its rate: 5 s at 5,000/s over 8 connections against `serve` completes
//! within 1% of 25,000 requests.
//!
//! A request due before the end but not yet sent then (because the machine stalled and
//! the connection is still catching up) is not counted, so one stall of the test machine
//! near the end costs its length in requests: 60 ms of a shared 2-core VM's stall already
//! exceeds the 1%. The run is therefore tried up to three times and one must hold the
//! rate; a generator that paces wrongly misses it every time.
mod common;

use std::time::Duration;

#[test]
fn achieved_rate_is_within_one_percent_of_the_target() {
    let url = common::serve(|_| {});
    let mut rates = Vec::new();
    for _attempt in 0..3 {
        let mut p = common::params(url.clone(), 8, Duration::from_secs(5));
        p.rate = Some(5000);
        let r = ringway_load::run::run(p).unwrap();
        eprintln!("{}", ringway_load::report::summary(&r));
        assert_eq!(r.counts.errors.total(), 0);
        assert_eq!(r.counts.status[1], r.counts.completed);
        assert_eq!(r.counts.connections_opened, 8);
        let rate = r.rate();
        if (rate - 5000.0).abs() <= 50.0 {
            return;
        }
        rates.push(format!("{rate:.1}/s"));
    }
    panic!("achieved {rates:?} in three runs, target 5000/s");
}
