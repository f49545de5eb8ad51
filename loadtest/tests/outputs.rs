//! The outputs of one short open-loop run against `serve`: Fortio JSON read back by a
//! Fortio-shaped reader, the HdrHistogram interval log read by the crate's log reader,
//! the HTML page and the SVG plot.
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use ringway_load::output::Outputs;
use serde::{Deserialize, Serialize};

/// Fortio's `fhttp.HTTPRunnerResults` as Go's decoder sees it: the fields Fortio's
/// report tools use, with Go's types; unknown keys (ringway-load's extras) are ignored
/// as Go ignores them.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
struct FortioRunnerResults {
    RunType: String,
    Labels: String,
    StartTime: String,
    RequestedQPS: String,
    RequestedDuration: String,
    ActualQPS: f64,
    ActualDuration: i64,
    NumThreads: i64,
    Version: String,
    DurationHistogram: FortioHistogramData,
    ErrorsDurationHistogram: FortioHistogramData,
    RetCodes: BTreeMap<String, i64>,
    URL: String,
    SocketCount: i64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
struct FortioHistogramData {
    Count: i64,
    Min: f64,
    Max: f64,
    Sum: f64,
    Avg: f64,
    StdDev: f64,
    Data: Option<Vec<FortioBucket>>,
    Percentiles: Option<Vec<FortioPercentile>>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
struct FortioBucket {
    Start: f64,
    End: f64,
    Percent: f64,
    Count: i64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
struct FortioPercentile {
    Percentile: f64,
    Value: f64,
}

#[test]
fn json_hdr_log_html_and_svg_describe_the_run() {
    let url = common::serve(|_| {});
    let mut p = common::params(url, 2, Duration::from_millis(2500));
    p.rate = Some(2000);
    let r = ringway_load::run::run(p).unwrap();
    assert!(r.counts.completed > 4000, "{}", r.counts.completed);
    let dir = tempfile::tempdir().unwrap();
    let outputs = Outputs {
        json: Some(dir.path().join("run.json")),
        hdr_log: Some(dir.path().join("run.hlog")),
        html: Some(dir.path().join("run.html")),
        svg: Some(dir.path().join("run.svg")),
    };
    outputs.write(&r).unwrap();

    // Fortio JSON, read as Fortio reads it, and written back unchanged.
    let text = std::fs::read_to_string(outputs.json.as_ref().unwrap()).unwrap();
    let f: FortioRunnerResults = serde_json::from_str(&text).unwrap();
    let again: FortioRunnerResults =
        serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
    assert_eq!(f, again);
    assert_eq!(f.RunType, "HTTP");
    assert_eq!(f.RequestedQPS, "2000");
    assert_eq!(f.RequestedDuration, "2.5s");
    assert_eq!(f.ActualDuration, 2_500_000_000);
    assert_eq!(f.NumThreads, 2);
    assert!(
        f.StartTime.ends_with('Z') && f.StartTime.contains('T'),
        "{}",
        f.StartTime
    );
    let completed = r.counts.completed as i64;
    assert!((f.ActualQPS - r.rate()).abs() < 1e-6);
    assert_eq!(f.RetCodes.get("200"), Some(&completed));
    let h = &f.DurationHistogram;
    assert_eq!(h.Count, completed);
    // Seconds, as Fortio writes them: loopback answers take microseconds to milliseconds.
    assert!(
        h.Min > 1e-6 && h.Max < 1.0 && h.Avg > h.Min && h.Avg < h.Max,
        "{h:?}"
    );
    assert!((h.Sum - h.Avg * completed as f64).abs() < 1e-6 * completed as f64);
    let data = h.Data.as_ref().unwrap();
    assert_eq!(data.iter().map(|b| b.Count).sum::<i64>(), completed);
    assert_eq!(data[0].Start, h.Min);
    assert_eq!(data.last().unwrap().End, h.Max);
    assert!((data.last().unwrap().Percent - 100.0).abs() < 1e-9);
    assert!(data.windows(2).all(|w| w[0].End <= w[1].Start + 1e-12));
    let percentiles = h.Percentiles.as_ref().unwrap();
    let p99 = percentiles.iter().find(|p| p.Percentile == 99.0).unwrap();
    let expected = r.histograms.latency.value_at_percentile(99.0) as f64 / 1e6;
    assert!((p99.Value - expected).abs() < 1e-12);
    assert_eq!(f.ErrorsDurationHistogram.Count, 0);
    // The extras are there, under a key Fortio ignores, and lossless.
    let ours = ringway_load::output::fortio::from_json(&text).unwrap();
    let latency = ringway_load::output::fortio::decode(&ours.ringway_load.hdr.latency).unwrap();
    assert_eq!(latency, r.histograms.latency);
    assert_eq!(
        ours.ringway_load.per_second.iter().sum::<u64>(),
        r.counts.completed
    );
    assert_eq!(
        ours.ringway_load.late_start_histogram.count,
        r.counts.completed
    );

    // HdrHistogram interval log: one interval per second, totals reproduce the run.
    let log = std::fs::read(outputs.hdr_log.as_ref().unwrap()).unwrap();
    let mut merged: Histogram<u64> = Histogram::new(3).unwrap();
    let mut intervals = Vec::new();
    let (mut start_time, mut base_time) = (None, None);
    for entry in IntervalLogIterator::new(&log) {
        match entry.unwrap() {
            LogEntry::Interval(i) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .unwrap();
                let h: Histogram<u64> = Deserializer::new()
                    .deserialize(&mut bytes.as_slice())
                    .unwrap();
                merged.add(&h).unwrap();
                intervals.push((i.start_timestamp(), i.duration(), h.len()));
            }
            LogEntry::StartTime(t) => start_time = Some(t),
            LogEntry::BaseTime(t) => base_time = Some(t),
        }
    }
    assert!(start_time.is_some() && base_time.is_some());
    assert_eq!(intervals.len(), 3, "{intervals:?}");
    assert_eq!(intervals[0].0, Duration::ZERO);
    assert_eq!(intervals[1].0, Duration::from_secs(1));
    assert_eq!(intervals[2].1, Duration::from_millis(500));
    assert!(intervals[1].2 > 1500, "{intervals:?}");
    assert_eq!(merged.len(), r.counts.completed);
    assert_eq!(merged.max(), r.histograms.latency.max());
    assert_eq!(
        merged.value_at_percentile(99.9),
        r.histograms.latency.value_at_percentile(99.9)
    );

    // HTML: the plot and the numbers, nothing fetched from the network.
    let html = std::fs::read_to_string(outputs.html.as_ref().unwrap()).unwrap();
    let p50 = ringway_load::report::fmt_us(r.histograms.latency.value_at_percentile(50.0) as f64);
    for expected in [
        "<svg",
        ">percentile<",
        ">99.9%<",
        "Requests per second",
        &r.counts.completed.to_string(),
        &format!("{:.2}", r.rate()),
        &p50,
        "open loop at 2000 requests/s",
    ] {
        assert!(html.contains(expected), "no {expected:?} in the page");
    }
    assert!(!html.contains("<script") && !html.contains("src=\"http"));
    let svg = std::fs::read_to_string(outputs.svg.as_ref().unwrap()).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
}
