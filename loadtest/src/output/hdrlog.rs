//! The HdrHistogram interval log (`--hdr-log`): one interval histogram per second of the
//! measured phase, the format of Java's `HistogramLogWriter`, readable by
//! `HistogramLogProcessor`, HdrHistogram's online plotter and the hdrhistogram crate's
//! `IntervalLogIterator`.
//!
//! Written with the crate's own writer. Header: the format version and a legend (as the
//! Java writer puts them), `StartTime` and `BaseTime` both at the start of the measured
//! phase, so interval timestamps are seconds into the measured phase (0.000, 1.000, …).
//! Values are the corrected latency in **microseconds**; the `Interval_Max` column is
//! divided by 1000 (milliseconds), and Java's `HistogramLogProcessor` needs
//! `-outputValueUnitRatio 1000` to print milliseconds. Histograms are V2 compressed, which
//! is what the Java reader expects. Seconds without a response are written as empty
//! intervals so the timeline has no gaps.

use std::time::Duration;

use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::run::RunResult;

/// The log's bytes.
pub fn to_log(r: &RunResult) -> Result<Vec<u8>, String> {
    let err = |e: &dyn std::fmt::Debug| format!("cannot write the HDR log: {e:?}");
    let start = r
        .measure_started
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    // The header is written by hand so it reads like the Java writer's (the legend line
    // has no '#'); the crate's writer then appends the intervals.
    let mut out = format!(
        "#[Logged with ringway-load {}: corrected latency, values in microseconds]\n\
         #[Histogram log format version 1.3]\n\
         #[StartTime: {start:.3} (seconds since epoch), {}]\n\
         #[BaseTime: {start:.3} (seconds since epoch)]\n\
         \"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
        env!("CARGO_PKG_VERSION"),
        crate::output::fortio::rfc3339(r.measure_started),
    )
    .into_bytes();
    let mut serializer = V2DeflateSerializer::new();
    let mut writer = IntervalLogWriterBuilder::new()
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut out, &mut serializer)
        .map_err(|e| err(&e))?;
    let seconds = r.measured.as_secs_f64().ceil().max(1.0) as usize;
    let intervals = &r.histograms.intervals.seconds;
    let empty = crate::histo::new_histogram();
    for i in 0..seconds.max(intervals.len()) {
        let start = Duration::from_secs(i as u64);
        // The last interval is shorter when the run is not a whole number of seconds.
        let length = r
            .measured
            .saturating_sub(start)
            .clamp(Duration::from_millis(1), Duration::from_secs(1));
        let h = intervals.get(i).unwrap_or(&empty);
        writer
            .write_histogram(h, start, length, None)
            .map_err(|e| err(&e))?;
    }
    Ok(out)
}
