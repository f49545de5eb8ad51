//! Fortio's JSON result shape, so Fortio's report tools (`fortio report`, its browse UI)
//! read ringway-load's runs next to Fortio's own.
//!
//! The field names and units are Fortio's (`periodic.RunnerResults`,
//! `stats.HistogramData`, `fhttp.HTTPRunnerResults`): durations in the histograms are
//! **seconds** as floats, `ActualDuration` is Go's `time.Duration` (integer nanoseconds),
//! `StartTime` is RFC 3339 with nanoseconds, `RequestedQPS` is a string ("max" in closed
//! loop), `RetCodes` maps status codes (as strings, as Go writes `map[int]int64`) to
//! counts with -1 for transport errors, and `NumThreads` is the connection count (a Fortio
//! "thread" is one connection).
//!
//! Where the engine knows less than Fortio reports, the mapping is stated here rather
//! than invented: the engine counts status *classes*, so `RetCodes` has "200" for every
//! 2xx, "400" for every 4xx and so on; errors have no durations, so
//! `ErrorsDurationHistogram` has only its `Count`; and `DurationHistogram` holds the
//! corrected latency of completed requests (errors are not in it, unlike Fortio).
//!
//! ringway-load's own data sits under `RingwayLoad`, a key Go's decoder skips: the
//! uncorrected and late-start histograms, errors by kind, the per-second counts, and the
//! three histograms losslessly (HdrHistogram V2 compressed, base64), which is what
//! `compare` reads back to compute exact percentiles.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::run::RunResult;

/// The percentiles listed in `Percentiles`, as `fortio load -p 50,75,90,99,99.9`.
pub const PERCENTILES: [f64; 5] = [50.0, 75.0, 90.0, 99.0, 99.9];

/// Fortio's `HTTPRunnerResults` (the fields ringway-load can fill) plus the extras.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FortioResult {
    pub run_type: String,
    pub labels: String,
    pub start_time: String,
    #[serde(rename = "RequestedQPS")]
    pub requested_qps: String,
    pub requested_duration: String,
    #[serde(rename = "ActualQPS")]
    pub actual_qps: f64,
    /// Nanoseconds.
    pub actual_duration: u64,
    pub num_threads: usize,
    pub version: String,
    pub duration_histogram: HistogramData,
    pub errors_duration_histogram: HistogramData,
    pub exactly: i64,
    pub jitter: bool,
    pub uniform: bool,
    pub no_catch_up: bool,
    #[serde(rename = "RunID")]
    pub run_id: i64,
    pub ret_codes: BTreeMap<String, u64>,
    #[serde(rename = "URL")]
    pub url: String,
    pub socket_count: u64,
    pub ringway_load: Extras,
}

/// Fortio's `stats.HistogramData`, values in seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistogramData {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub avg: f64,
    pub std_dev: f64,
    pub data: Vec<Bucket>,
    pub percentiles: Vec<Percentile>,
}

/// One bucket: `[Start, End[` (the last one includes `Max`), cumulative `Percent`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Bucket {
    pub start: f64,
    pub end: f64,
    pub percent: f64,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Percentile {
    pub percentile: f64,
    pub value: f64,
}

/// What Fortio has no field for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Extras {
    /// "closed" or "open".
    pub mode: String,
    pub connections: usize,
    pub threads: usize,
    pub placement: String,
    pub warmup_seconds: f64,
    /// Measured phase, seconds since the Unix epoch.
    pub measure_start: f64,
    pub measure_end: f64,
    pub completed: u64,
    pub uncorrected_histogram: HistogramData,
    pub late_start_histogram: HistogramData,
    pub errors: ErrorKinds,
    /// Responses by status class, "1xx".."5xx".
    pub status_classes: BTreeMap<String, u64>,
    pub connections_opened: u64,
    /// TLS connections whose handshake resumed a session (`--tls-resume`).
    #[serde(default)]
    pub tls_resumed: u64,
    /// The generator's own CPU per completed request, microseconds (absent when unknown).
    pub cpu_us_per_request: Option<CpuPerRequest>,
    /// Completed requests in each second of the measured phase.
    pub per_second: Vec<u64>,
    /// The three histograms, lossless: HdrHistogram V2 compressed, base64, microseconds.
    pub hdr: EncodedHistograms,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorKinds {
    pub connect: u64,
    pub timeout: u64,
    pub read: u64,
    pub write: u64,
    pub malformed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CpuPerRequest {
    pub total: f64,
    pub user: f64,
    pub system: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncodedHistograms {
    pub latency: String,
    pub uncorrected: String,
    pub late_start: String,
}

/// Seconds from microseconds.
fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

/// Fortio's `HistogramData` of an hdrhistogram in microseconds: one bucket per recorded
/// hdrhistogram bucket, so nothing is lost to coarser buckets.
pub fn histogram_data(h: &Histogram<u64>) -> HistogramData {
    if h.is_empty() {
        return HistogramData::default();
    }
    let n = h.len();
    let mut data = Vec::new();
    let mut total = 0u64;
    for v in h.iter_recorded() {
        let value = v.value_iterated_to();
        total += v.count_at_value();
        data.push(Bucket {
            start: secs(h.lowest_equivalent(value)),
            end: secs(h.next_non_equivalent(value)),
            percent: 100.0 * total as f64 / n as f64,
            count: v.count_at_value(),
        });
    }
    // Fortio's first bucket starts at Min and its last ends at Max (inclusive).
    if let Some(first) = data.first_mut() {
        first.start = secs(h.min());
    }
    if let Some(last) = data.last_mut() {
        last.end = secs(h.max());
    }
    HistogramData {
        count: n,
        min: secs(h.min()),
        max: secs(h.max()),
        sum: h.mean() * n as f64 / 1e6,
        avg: h.mean() / 1e6,
        std_dev: h.stdev() / 1e6,
        data,
        percentiles: PERCENTILES
            .iter()
            .map(|&p| Percentile {
                percentile: p,
                value: secs(h.value_at_percentile(p)),
            })
            .collect(),
    }
}

/// Lossless text form of a histogram: V2 compressed, base64.
pub fn encode(h: &Histogram<u64>) -> Result<String, String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| format!("cannot encode a histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The inverse of [`encode`].
pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("bad base64 histogram: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("bad histogram: {e:?}"))
}

/// Go's `time.Duration.String()` for whole milliseconds and above: "10s", "1.5s",
/// "500ms", "1m0s".
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (m, s) = (ms / 60_000, (ms % 60_000) as f64 / 1e3);
    let s = format!("{s}").trim_end_matches(".0").to_string();
    if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// RFC 3339 in UTC with nanoseconds, as Go's `time.Time` marshals.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, mo, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{mo:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The Fortio-shaped result of a run.
pub fn result(r: &RunResult) -> Result<FortioResult, String> {
    let p = &r.params;
    let c = &r.counts;
    let h = &r.histograms;
    let url = p
        .urls
        .iter()
        .map(|u| format!("http://{}{}", u.authority, u.path))
        .collect::<Vec<_>>()
        .join(" ");
    let mut ret_codes = BTreeMap::new();
    for (i, &n) in c.status.iter().enumerate() {
        if n > 0 {
            ret_codes.insert(((i + 1) * 100).to_string(), n);
        }
    }
    if c.errors.total() > 0 {
        ret_codes.insert("-1".into(), c.errors.total());
    }
    let status_classes = c
        .status
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("{}xx", i + 1), n))
        .collect();
    Ok(FortioResult {
        run_type: "HTTP".into(),
        labels: "ringway-load".into(),
        start_time: rfc3339(r.measure_started),
        requested_qps: p.rate.map_or("max".into(), |q| q.to_string()),
        requested_duration: go_duration(p.duration),
        actual_qps: r.rate(),
        actual_duration: r.measured.as_nanos() as u64,
        num_threads: p.connections,
        version: format!("ringway-load {}", env!("CARGO_PKG_VERSION")),
        duration_histogram: histogram_data(&h.latency),
        errors_duration_histogram: HistogramData {
            count: c.errors.total(),
            ..HistogramData::default()
        },
        exactly: 0,
        jitter: false,
        // Open-loop connections are staggered evenly, which is Fortio's -uniform.
        uniform: p.rate.is_some(),
        no_catch_up: false,
        run_id: 0,
        ret_codes,
        url,
        socket_count: c.connections_opened,
        ringway_load: Extras {
            mode: if p.rate.is_some() { "open" } else { "closed" }.into(),
            connections: p.connections,
            threads: p.threads,
            placement: r.placement.clone(),
            warmup_seconds: p.warmup.as_secs_f64(),
            measure_start: unix(r.measure_started),
            measure_end: unix(r.ended),
            completed: c.completed,
            uncorrected_histogram: histogram_data(&h.uncorrected),
            late_start_histogram: histogram_data(&h.late_start),
            errors: ErrorKinds {
                connect: c.errors.connect,
                timeout: c.errors.timeout,
                read: c.errors.read,
                write: c.errors.write,
                malformed: c.errors.malformed,
            },
            status_classes,
            connections_opened: c.connections_opened,
            tls_resumed: c.tls_resumed,
            cpu_us_per_request: r
                .cpu_per_request_us()
                .map(|(total, user, system)| CpuPerRequest {
                    total,
                    user,
                    system,
                }),
            per_second: h.intervals.counts(),
            hdr: EncodedHistograms {
                latency: encode(&h.latency)?,
                uncorrected: encode(&h.uncorrected)?,
                late_start: encode(&h.late_start)?,
            },
        },
    })
}

/// The JSON text of [`result`], indented as Fortio writes its files.
pub fn to_json(r: &RunResult) -> Result<String, String> {
    serde_json::to_string_pretty(&result(r)?).map_err(|e| format!("cannot write JSON: {e}"))
}

/// Reads a file written by [`to_json`].
pub fn from_json(text: &str) -> Result<FortioResult, String> {
    serde_json::from_str(text).map_err(|e| format!("not a ringway-load JSON result: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_go_writes_them() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn histogram_buckets_cover_min_to_max() {
        let mut h = crate::histo::new_histogram();
        for v in [100, 200, 200, 5000] {
            h.record(v).unwrap();
        }
        let d = histogram_data(&h);
        assert_eq!(d.count, 4);
        assert_eq!(d.data.len(), 3);
        assert_eq!(d.data[0].start, d.min);
        assert_eq!(d.data[2].end, d.max);
        assert_eq!(d.data[2].percent, 100.0);
        assert!((d.min - 100e-6).abs() < 1e-9);
        assert_eq!(decode(&encode(&h).unwrap()).unwrap(), h);
    }
}
