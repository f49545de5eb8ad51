//! The admin endpoint's stat formats, from [`StatLine`]s (already filtered and sorted).
//!
//! - text: `name: value` per line (Envoy's `/stats`; Istio's readiness check splits each
//!   line on `:` and parses a `u64`);
//! - JSON: `{"stats":[{"name":...,"value":...}]}` (Envoy's `?format=json`);
//! - Prometheus text exposition 0.0.4, as Envoy writes it (`prometheus_stats.cc`): tags
//!   extracted by Envoy's default extractors ([`super::tags`]), the family named `envoy_`
//!   and the tag-extracted name with `[^a-zA-Z0-9_]` as `_`, one `# TYPE` line per
//!   family, counters first, then gauges, families sorted by name and series by their
//!   full stat name, braces written even without labels (`envoy_server_live{} 1`).
//!   Stats whose owner's name may hold dots, which no extractor can split out, get their
//!   labels from the names the store registered them under ([`Owners`]): per-endpoint
//!   stats (Envoy's own labels) and API consumers' stats
//!   (`envoy_consumer_<stat>{envoy_consumer_name="<name>"}`).

use std::{collections::BTreeMap, fmt::Write};

use super::{
    histogram::{Merged, ENVOY_BOUNDS_MS, QUANTILES},
    tags::TagExtractors,
    Kind, StatLine,
};

/// A histogram as the admin endpoint shows it: its name and merged counts.
#[derive(Debug, Clone)]
pub struct HistogramLine {
    pub name: String,
    pub merged: Merged,
}

/// A millisecond value as Envoy prints one (shortest form, microsecond precision).
fn ms(value: f64) -> String {
    format!("{}", (value * 1000.0).round() / 1000.0)
}

/// `name: value` lines.
pub fn text(lines: &[StatLine], out: &mut String) {
    for line in lines {
        let _ = writeln!(out, "{}: {}", line.name, line.value);
    }
}

/// Envoy's histogram lines: `name: P0(interval,cumulative) … P100(…)`, or `name: No
/// recorded values`. ringway keeps no interval window (Envoy's is the time since its
/// last stats flush), so the interval is always `nan`, as Envoy prints an empty one.
pub fn text_histograms(histograms: &[HistogramLine], out: &mut String) {
    for h in histograms {
        if h.merged.count() == 0 {
            let _ = writeln!(out, "{}: No recorded values", h.name);
            continue;
        }
        out.push_str(&h.name);
        out.push(':');
        for q in QUANTILES {
            let value = h.merged.quantile_ms(q).unwrap_or(0.0);
            let _ = write!(out, " P{q}(nan,{})", ms(value));
        }
        out.push('\n');
    }
}

/// Envoy's JSON stats document: the stats, then (when there are any) one element
/// holding the histograms' quantiles.
pub fn json(lines: &[StatLine], histograms: &[HistogramLine], out: &mut String) {
    out.push_str("{\"stats\":[");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_string(&line.name, out);
        let _ = write!(out, ",\"value\":{}}}", line.value);
    }
    if !histograms.is_empty() {
        if !lines.is_empty() {
            out.push(',');
        }
        out.push_str("{\"histograms\":{\"supported_quantiles\":[");
        let quantiles: Vec<String> = QUANTILES.iter().map(|q| q.to_string()).collect();
        out.push_str(&quantiles.join(","));
        out.push_str("],\"computed_quantiles\":[");
        for (i, h) in histograms.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            json_string(&h.name, out);
            out.push_str(",\"values\":[");
            for (k, q) in QUANTILES.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                match h.merged.quantile_ms(*q) {
                    Some(v) => {
                        let _ = write!(out, "{{\"interval\":null,\"cumulative\":{}}}", ms(v));
                    }
                    None => out.push_str("{\"interval\":null,\"cumulative\":null}"),
                }
            }
            out.push_str("]}");
        }
        out.push_str("]}}");
    }
    out.push_str("]}\n");
}

/// How `/stats` shows histograms: Envoy's `histogram_buckets` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buckets {
    /// Quantiles (the default).
    None,
    /// Per bound of [`ENVOY_BOUNDS_MS`], the values at or below it.
    Cumulative,
    /// Per bound, the values above the previous bound and at or below this one.
    Disjoint,
}

/// Each bound's count for `mode` (not [`Buckets::None`]).
fn bucket_counts(merged: &Merged, mode: Buckets) -> Vec<u64> {
    let mut counts = merged.at_most_each_ms(&ENVOY_BOUNDS_MS);
    if mode == Buckets::Disjoint {
        for i in (1..counts.len()).rev() {
            counts[i] -= counts[i - 1];
        }
    }
    counts
}

/// Envoy's text lines with `histogram_buckets`: `name: B0.5(interval,cumulative) B1(…) …`
/// per bound (the interval `nan`, as for quantiles), or `No recorded values`.
pub fn text_histogram_buckets(histograms: &[HistogramLine], mode: Buckets, out: &mut String) {
    for h in histograms {
        if h.merged.count() == 0 {
            let _ = writeln!(out, "{}: No recorded values", h.name);
            continue;
        }
        out.push_str(&h.name);
        out.push(':');
        for (bound, n) in ENVOY_BOUNDS_MS.iter().zip(bucket_counts(&h.merged, mode)) {
            let _ = write!(out, " B{bound}(nan,{n})");
        }
        out.push('\n');
    }
}

/// Envoy's JSON stats document with `histogram_buckets`: the stats, then one element
/// `{"histograms":[{"name":…,"buckets":[{"upper_bound":…,"interval":null,"cumulative":…}]}]}`
/// (the interval `null`, as for quantiles: ringway keeps no interval window).
pub fn json_buckets(
    lines: &[StatLine],
    histograms: &[HistogramLine],
    mode: Buckets,
    out: &mut String,
) {
    json(lines, &[], out);
    if histograms.is_empty() {
        return;
    }
    // Reopen the array `json` closed.
    out.truncate(out.len() - "]}\n".len());
    if !lines.is_empty() {
        out.push(',');
    }
    out.push_str("{\"histograms\":[");
    for (i, h) in histograms.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_string(&h.name, out);
        out.push_str(",\"buckets\":[");
        for (k, (bound, n)) in ENVOY_BOUNDS_MS
            .iter()
            .zip(bucket_counts(&h.merged, mode))
            .enumerate()
        {
            if k > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"upper_bound\":{bound},\"interval\":null,\"cumulative\":{n}}}"
            );
        }
        out.push_str("]}");
    }
    out.push_str("]}]}\n");
}

/// A JSON string literal.
pub fn json_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Prometheus text exposition: counters, gauges, then histograms (Envoy's default
/// bucket bounds, in milliseconds).
pub fn prometheus(
    lines: &[StatLine],
    histograms: &[HistogramLine],
    tags: &TagExtractors,
    out: &mut String,
) {
    prometheus_labelled(lines, histograms, tags, Owners::default(), out);
}

/// The stats whose labels come from the names they were registered under, not from the
/// tag extractors (those names may hold dots): from [`super::StoreView`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Owners<'a> {
    /// Per-endpoint stats (`StoreView::endpoint_labels`).
    pub endpoints: &'a [super::store::EndpointLabels],
    /// The API consumers with usage stats, sorted (`StoreView::consumer_names`).
    pub consumers: &'a [String],
}

impl Owners<'_> {
    /// The family and labels of `name` when it is one of these owners' stats.
    fn family_and_labels(&self, name: &str) -> Option<(String, String)> {
        if let Some((stat, e)) = self
            .endpoints
            .iter()
            .find_map(|e| Some((name.strip_prefix(e.prefix.as_str())?, e)))
        {
            return Some((
                format!("envoy_cluster_endpoint_{}", sanitize(stat)),
                endpoint_labels(e),
            ));
        }
        let (consumer, stat) = super::names::consumer::split(name)?;
        self.consumers
            .binary_search_by(|c| c.as_str().cmp(consumer))
            .ok()?;
        Some((
            format!("envoy_consumer_{}", sanitize(stat)),
            format!("envoy_consumer_name=\"{}\"", escape_label(consumer)),
        ))
    }
}

/// `envoy_cluster_name`, `envoy_endpoint_address` and, when the host has a name,
/// `envoy_endpoint_hostname` (Envoy's tags on per-endpoint stats, in its order).
fn endpoint_labels(e: &super::store::EndpointLabels) -> String {
    let mut labels = format!(
        "envoy_cluster_name=\"{}\",envoy_endpoint_address=\"{}\"",
        escape_label(&e.cluster),
        escape_label(&e.address)
    );
    if let Some(hostname) = &e.hostname {
        labels.push_str(&format!(
            ",envoy_endpoint_hostname=\"{}\"",
            escape_label(hostname)
        ));
    }
    labels
}

/// [`prometheus`], with the stats of `owners`:
/// - a line under one of the endpoints' prefixes is Envoy's
///   `envoy_cluster_endpoint_<stat>{envoy_cluster_name="..",envoy_endpoint_address=".."}`,
///   with `envoy_endpoint_hostname=".."` when the host has a name (Envoy tags those stats
///   as it makes them; their names cannot be split by the extractors, since an address
///   holds dots);
/// - a consumer's `consumer.<name>.<stat>` is `envoy_consumer_<stat>{envoy_consumer_name="<name>"}`,
///   the name as configured (one series per consumer: `a.b` and `a_b` are two).
pub fn prometheus_labelled(
    lines: &[StatLine],
    histograms: &[HistogramLine],
    tags: &TagExtractors,
    owners: Owners<'_>,
    out: &mut String,
) {
    for kind in [Kind::Counter, Kind::Gauge] {
        // Family name -> its series, each (full stat name, labels, value).
        let mut families: BTreeMap<String, Vec<(&str, String, u64)>> = BTreeMap::new();
        for line in lines.iter().filter(|l| l.kind == kind) {
            let (family, labels) = owners
                .family_and_labels(&line.name)
                .unwrap_or_else(|| family_and_labels(&line.name, tags));
            families
                .entry(family)
                .or_default()
                .push((&line.name, labels, line.value));
        }
        let type_name = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        for (family, mut series) in families {
            let _ = writeln!(out, "# TYPE {family} {type_name}");
            series.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (_, labels, value) in series {
                let _ = writeln!(out, "{family}{{{labels}}} {value}");
            }
        }
    }
    let mut families: BTreeMap<String, Vec<(&HistogramLine, String)>> = BTreeMap::new();
    for h in histograms {
        let (family, labels) = family_and_labels(&h.name, tags);
        families.entry(family).or_default().push((h, labels));
    }
    for (family, mut series) in families {
        let _ = writeln!(out, "# TYPE {family} histogram");
        series.sort_unstable_by(|a, b| a.0.name.cmp(&b.0.name));
        for (h, labels) in series {
            let sep = if labels.is_empty() { "" } else { "," };
            let cumulative = h.merged.at_most_each_ms(&ENVOY_BOUNDS_MS);
            for (bound, n) in ENVOY_BOUNDS_MS.iter().zip(cumulative) {
                let _ = writeln!(out, "{family}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
            }
            let count = h.merged.count();
            let _ = writeln!(out, "{family}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{family}_sum{{{labels}}} {}", ms(h.merged.sum_ms()));
            let _ = writeln!(out, "{family}_count{{{labels}}} {count}");
        }
    }
}

/// The Prometheus family and label text of a stat name.
fn family_and_labels(name: &str, tags: &TagExtractors) -> (String, String) {
    let tagged = tags.extract(name);
    let family = format!("envoy_{}", sanitize(&tagged.name));
    let mut labels = String::new();
    for (i, (name, value)) in tagged.tags.iter().enumerate() {
        if i > 0 {
            labels.push(',');
        }
        let _ = write!(labels, "{}=\"{}\"", sanitize(name), escape_label(value));
    }
    (family, labels)
}

/// `[^a-zA-Z0-9_]` as `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A label value: `\`, newline and `"` escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_as_envoy_writes_it() {
        let lines = vec![
            StatLine::new("cluster.backend.upstream_rq_2xx", 10, Kind::Counter),
            StatLine::new("cluster.backend.upstream_rq_5xx", 2, Kind::Counter),
            StatLine::new("cluster.api.upstream_rq_total", 3, Kind::Counter),
            StatLine::new("cluster.backend.upstream_rq_total", 12, Kind::Counter),
            StatLine::new(
                "listener.public.worker_1.downstream_cx_active",
                4,
                Kind::Gauge,
            ),
            StatLine::new("server.live", 1, Kind::Gauge),
        ];
        let mut out = String::new();
        prometheus(&lines, &[], &TagExtractors::envoy_defaults(), &mut out);
        assert_eq!(
            out,
            "# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{envoy_cluster_name=\"api\"} 3
envoy_cluster_upstream_rq_total{envoy_cluster_name=\"backend\"} 12
# TYPE envoy_cluster_upstream_rq_xx counter
envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"backend\"} 10
envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\",envoy_cluster_name=\"backend\"} 2
# TYPE envoy_listener_worker_downstream_cx_active gauge
envoy_listener_worker_downstream_cx_active{envoy_worker_id=\"1\",envoy_listener_address=\"public\"} 4
# TYPE envoy_server_live gauge
envoy_server_live{} 1
"
        );
    }

    /// Consumer names may hold dots, and names that differ only in `.`, `_` or `-` are
    /// different consumers: each is one series under `envoy_consumer_name`.
    #[test]
    fn consumers_are_one_series_each_labelled_with_the_exact_name() {
        let counts = [
            ("acme-corp", 1),
            ("a.b", 2),
            ("a_b", 1),
            ("acme_corp", 3),
            ("we\"ird\\", 5),
        ];
        let mut lines = Vec::new();
        for (name, n) in counts {
            lines.push(StatLine::new(
                &format!("consumer.{name}.rq_total"),
                n,
                Kind::Counter,
            ));
            lines.push(StatLine::new(
                &format!("consumer.{name}.rq_2xx"),
                n,
                Kind::Counter,
            ));
        }
        let mut consumers: Vec<String> = counts.iter().map(|(n, _)| (*n).to_owned()).collect();
        consumers.sort();
        let owners = Owners {
            endpoints: &[],
            consumers: &consumers,
        };
        let tags = TagExtractors::envoy_defaults();
        let mut out = String::new();
        prometheus_labelled(&lines, &[], &tags, owners, &mut out);
        assert_eq!(
            out,
            "# TYPE envoy_consumer_rq_2xx counter
envoy_consumer_rq_2xx{envoy_consumer_name=\"a.b\"} 2
envoy_consumer_rq_2xx{envoy_consumer_name=\"a_b\"} 1
envoy_consumer_rq_2xx{envoy_consumer_name=\"acme-corp\"} 1
envoy_consumer_rq_2xx{envoy_consumer_name=\"acme_corp\"} 3
envoy_consumer_rq_2xx{envoy_consumer_name=\"we\\\"ird\\\\\"} 5
# TYPE envoy_consumer_rq_total counter
envoy_consumer_rq_total{envoy_consumer_name=\"a.b\"} 2
envoy_consumer_rq_total{envoy_consumer_name=\"a_b\"} 1
envoy_consumer_rq_total{envoy_consumer_name=\"acme-corp\"} 1
envoy_consumer_rq_total{envoy_consumer_name=\"acme_corp\"} 3
envoy_consumer_rq_total{envoy_consumer_name=\"we\\\"ird\\\\\"} 5
"
        );
        // A `consumer.` stat of no registered consumer goes through the extractors.
        let stray = [StatLine::new("consumer.a.b.rq_total", 1, Kind::Counter)];
        out.clear();
        prometheus_labelled(&stray, &[], &tags, Owners::default(), &mut out);
        assert_eq!(
            out,
            "# TYPE envoy_consumer_a_b_rq_total counter\nenvoy_consumer_a_b_rq_total{} 1\n"
        );
    }

    #[test]
    fn json_and_text() {
        let lines = vec![StatLine::new("server.live", 1, Kind::Gauge)];
        let mut out = String::new();
        json(&lines, &[], &mut out);
        assert_eq!(
            out,
            "{\"stats\":[{\"name\":\"server.live\",\"value\":1}]}\n"
        );
        out.clear();
        text(&lines, &mut out);
        assert_eq!(out, "server.live: 1\n");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn histograms_in_each_format() {
        let h = std::sync::Arc::new(crate::stats::Histogram::new(
            "cluster.backend.upstream_rq_time",
            1,
        ));
        let w = h.for_worker(0);
        for ms in [1u64, 2, 3, 400] {
            w.record(std::time::Duration::from_millis(ms));
        }
        let lines = vec![HistogramLine {
            name: h.name().to_owned(),
            merged: h.merged(),
        }];
        let mut out = String::new();
        prometheus(&[], &lines, &TagExtractors::envoy_defaults(), &mut out);
        assert!(
            out.starts_with("# TYPE envoy_cluster_upstream_rq_time histogram\n"),
            "{out}"
        );
        assert!(out.contains("envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"backend\",le=\"0.5\"} 0\n"), "{out}");
        assert!(out.contains("envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"backend\",le=\"5\"} 3\n"), "{out}");
        assert!(out.contains("envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"backend\",le=\"3600000\"} 4\n"), "{out}");
        assert!(out.contains("envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"backend\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(
            out.contains(
                "envoy_cluster_upstream_rq_time_sum{envoy_cluster_name=\"backend\"} 406\n"
            ),
            "{out}"
        );
        assert!(
            out.ends_with(
                "envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"backend\"} 4\n"
            ),
            "{out}"
        );
        out.clear();
        text_histograms(&lines, &mut out);
        // Within a fine bucket (12.5%) of the values recorded: 1 ms and 400 ms.
        assert!(
            out.starts_with("cluster.backend.upstream_rq_time: P0(nan,0.96) P25(nan,"),
            "{out}"
        );
        assert!(out.trim_end().ends_with("P100(nan,425.984)"), "{out}");
        out.clear();
        json(&[], &lines, &mut out);
        assert!(out.starts_with("{\"stats\":[{\"histograms\":{\"supported_quantiles\":[0,25,50,75,90,95,99,99.5,99.9,100],\"computed_quantiles\":[{\"name\":\"cluster.backend.upstream_rq_time\",\"values\":[{\"interval\":null,\"cumulative\":0.96}"), "{out}");
        let empty = vec![HistogramLine {
            name: "http.x.downstream_rq_time".into(),
            merged: crate::stats::Histogram::new("h", 1).merged(),
        }];
        out.clear();
        text_histograms(&empty, &mut out);
        assert_eq!(out, "http.x.downstream_rq_time: No recorded values\n");

        // Envoy's `histogram_buckets`: 1, 2 and 3 ms are at most 5 ms, 400 at most 500.
        out.clear();
        json_buckets(&[], &lines, Buckets::Cumulative, &mut out);
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let h = &doc["stats"][0]["histograms"][0];
        assert_eq!(h["name"], "cluster.backend.upstream_rq_time");
        let buckets = h["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), ENVOY_BOUNDS_MS.len());
        assert_eq!(buckets[2]["upper_bound"], 5.0);
        assert_eq!(buckets[2]["cumulative"], 3);
        assert_eq!(buckets[2]["interval"], serde_json::Value::Null);
        assert_eq!(buckets[8]["cumulative"], 4);
        out.clear();
        let server = vec![StatLine::new("server.live", 1, Kind::Gauge)];
        json_buckets(&server, &lines, Buckets::Disjoint, &mut out);
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["stats"][0]["name"], "server.live");
        let buckets = doc["stats"][1]["histograms"][0]["buckets"]
            .as_array()
            .unwrap();
        let counts: Vec<u64> = buckets
            .iter()
            .map(|b| b["cumulative"].as_u64().unwrap())
            .collect();
        assert_eq!(counts.iter().sum::<u64>(), 4);
        assert_eq!((counts[2], counts[8]), (3, 1), "{counts:?}");
        out.clear();
        json_buckets(&server, &[], Buckets::Cumulative, &mut out);
        assert_eq!(
            out,
            "{\"stats\":[{\"name\":\"server.live\",\"value\":1}]}\n"
        );
        out.clear();
        text_histogram_buckets(&lines, Buckets::Cumulative, &mut out);
        assert!(
            out.starts_with("cluster.backend.upstream_rq_time: B0.5(nan,0) B1(nan,0) B5(nan,3) "),
            "{out}"
        );
        assert!(out.ends_with(" B3600000(nan,4)\n"), "{out}");
    }
}
