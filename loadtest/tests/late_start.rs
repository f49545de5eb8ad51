//! A rate one connection cannot reach is reported as a shortfall, not as a clean
//! histogram: 1 connection asked for 200,000/s against an upstream answering after 1 ms.
mod common;

use std::time::Duration;

#[test]
fn an_impossible_rate_shows_in_late_starts_and_the_achieved_rate() {
    let url = common::serve(|o| o.delay = Duration::from_millis(1));
    let mut p = common::params(url, 1, Duration::from_secs(2));
    p.rate = Some(200_000);
    let r = ringway_load::run::run(p).unwrap();
    let summary = ringway_load::report::summary(&r);
    eprintln!("{summary}");
    assert!(r.counts.completed > 0);
    assert!(r.rate() < 2_000.0, "achieved {}", r.rate());
    let late_p50 = r.histograms.late_start.value_at_percentile(50.0);
    assert!(
        late_p50 > 200_000,
        "late start p50 {} ms",
        common::ms(late_p50)
    );
    assert!(summary.contains("Late start"));
    assert!(summary.contains("target 200000"));
}
