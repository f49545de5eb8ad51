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

use std::{collections::BTreeMap, fmt::Write};

use super::{tags::TagExtractors, Kind, StatLine};

/// `name: value` lines.
pub fn text(lines: &[StatLine], out: &mut String) {
    for line in lines {
        let _ = writeln!(out, "{}: {}", line.name, line.value);
    }
}

/// Envoy's JSON stats document.
pub fn json(lines: &[StatLine], out: &mut String) {
    out.push_str("{\"stats\":[");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_string(&line.name, out);
        let _ = write!(out, ",\"value\":{}}}", line.value);
    }
    out.push_str("]}\n");
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

/// Prometheus text exposition.
pub fn prometheus(lines: &[StatLine], tags: &TagExtractors, out: &mut String) {
    for kind in [Kind::Counter, Kind::Gauge] {
        // Family name -> its series, each (full stat name, labels, value).
        let mut families: BTreeMap<String, Vec<(&str, String, u64)>> = BTreeMap::new();
        for line in lines.iter().filter(|l| l.kind == kind) {
            let tagged = tags.extract(&line.name);
            let family = format!("envoy_{}", sanitize(&tagged.name));
            let mut labels = String::new();
            for (i, (name, value)) in tagged.tags.iter().enumerate() {
                if i > 0 {
                    labels.push(',');
                }
                let _ = write!(labels, "{}=\"{}\"", sanitize(name), escape_label(value));
            }
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
        prometheus(&lines, &TagExtractors::envoy_defaults(), &mut out);
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

    #[test]
    fn json_and_text() {
        let lines = vec![StatLine::new("server.live", 1, Kind::Gauge)];
        let mut out = String::new();
        json(&lines, &mut out);
        assert_eq!(
            out,
            "{\"stats\":[{\"name\":\"server.live\",\"value\":1}]}\n"
        );
        out.clear();
        text(&lines, &mut out);
        assert_eq!(out, "server.live: 1\n");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
