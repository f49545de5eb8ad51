//! `/stats` and `/stats/prometheus`, with Envoy's parameters: `filter` (a regex that
//! may match anywhere in the name; `^...$` anchors it), `usedonly`, `type`
//! (`Counters`, `Gauges`, `Histograms`, `TextReadouts`, `All`), `format` (`json`,
//! `prometheus`, text by default). Histograms follow the counters and gauges in every
//! format; a histogram is "used" once it recorded a value.
//!
//! `usedonly` keeps counters that counted something and every gauge: ringway's cells
//! carry no written-to flag (one would cost every increment a store), and a counter
//! has been written exactly when it is above zero (`/reset_counters` aside), while a
//! gauge at zero may be a real reading (`server.state: 0` is LIVE, which Istio's
//! readiness check looks for with `usedonly`).

use super::{query::Query, TEXT};
use crate::{
    control::ControlState,
    local_reply::Reply,
    stats::{render, Kind},
};

const JSON: &str = "application/json";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=UTF-8";

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Prometheus,
}

/// Answers a stats request; `format` is forced by `/stats/prometheus`.
pub fn stats(state: &ControlState, query: &Query, format: Option<Format>) -> Reply {
    let format = match (format, query.get("format")) {
        (Some(f), _) => f,
        (None, None | Some("text")) => Format::Text,
        (None, Some("json")) => Format::Json,
        (None, Some("prometheus")) => Format::Prometheus,
        (None, Some(other)) => {
            return Reply::new(
                400,
                TEXT,
                format!("unsupported format {other:?}: use json, prometheus or text\n").as_bytes(),
            )
        }
    };
    let filter = match query.get("filter").filter(|f| !f.is_empty()) {
        Some(pattern) => match regex::Regex::new(pattern) {
            Ok(re) => Some(re),
            Err(e) => {
                return Reply::new(400, TEXT, format!("Invalid regex: {e}\n").as_bytes());
            }
        },
        None => None,
    };
    let (kinds, with_histograms): (&[Kind], bool) = match query.get("type") {
        None | Some("All") => (&[Kind::Counter, Kind::Gauge], true),
        Some("Counters") => (&[Kind::Counter], false),
        Some("Gauges") => (&[Kind::Gauge], false),
        Some("Histograms") => (&[], true),
        // ringway has no text readouts: the type exists, with none.
        Some("TextReadouts") => (&[], false),
        Some(other) => {
            return Reply::new(
                400,
                TEXT,
                format!(
                "invalid type {other:?}: use Counters, Gauges, Histograms, TextReadouts or All\n"
            )
                .as_bytes(),
            )
        }
    };
    let used_only = query.has("usedonly");
    let mut lines = state.stat_lines();
    lines.retain(|line| {
        kinds.contains(&line.kind)
            && (!used_only || line.kind == Kind::Gauge || line.value > 0)
            && filter.as_ref().is_none_or(|re| re.is_match(&line.name))
    });
    let mut histograms = if with_histograms {
        state.histogram_lines()
    } else {
        Vec::new()
    };
    histograms.retain(|h| {
        (!used_only || h.merged.count() > 0)
            && filter.as_ref().is_none_or(|re| re.is_match(&h.name))
    });
    let mut out = String::with_capacity(64 * lines.len() + 1024 * histograms.len());
    let content_type = match format {
        Format::Text => {
            render::text(&lines, &mut out);
            render::text_histograms(&histograms, &mut out);
            TEXT
        }
        Format::Json => {
            render::json(&lines, &histograms, &mut out);
            JSON
        }
        Format::Prometheus => {
            render::prometheus(&lines, &histograms, state.tag_extractors(), &mut out);
            PROMETHEUS
        }
    };
    Reply::new(200, content_type, out.as_bytes())
}
