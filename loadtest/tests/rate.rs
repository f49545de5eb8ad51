//! Open loop holds its rate: 5 s at 5,000/s over 8 connections against `serve` completes
//! within 1% of 25,000 requests.
mod common;

use std::time::Duration;

#[test]
fn achieved_rate_is_within_one_percent_of_the_target() {
    let url = common::serve(|_| {});
    let mut p = common::params(url, 8, Duration::from_secs(5));
    p.rate = Some(5000);
    let r = ringway_load::run::run(p).unwrap();
    let rate = r.rate();
    eprintln!("{}", ringway_load::report::summary(&r));
    assert_eq!(r.counts.errors.total(), 0);
    assert!(
        (rate - 5000.0).abs() <= 50.0,
        "achieved {rate:.1}/s, target 5000/s"
    );
    assert_eq!(r.counts.status[1], r.counts.completed);
    assert_eq!(r.counts.connections_opened, 8);
}
