//! `/stats` and `/stats/prometheus`, with Envoy's parameters: `filter` (a regex that
//! may match anywhere in the name; `^...$` anchors it), `usedonly`, `type`
//! (`Counters`, `Gauges`, `Histograms`, `TextReadouts`, `All`), `format` (`json`,
//! `prometheus`, text by default), `histogram_buckets` (`cumulative` or `disjoint`:
//! each histogram's counts per Envoy default bound instead of its quantiles, in text and
//! JSON; Envoy's `detailed` and `combined` are refused by name). Histograms follow the
//! counters and gauges in every format; a histogram is "used" once it recorded a value.
//!
//! `usedonly` keeps counters that counted something and every gauge: ringway's cells
//! carry no written-to flag (one would cost every increment a store), and a counter
//! has been written exactly when it is above zero (`/reset_counters` aside), while a
//! gauge at zero may be a real reading (`server.state: 0` is LIVE, which Istio's
//! readiness check looks for with `usedonly`).

use std::{collections::HashMap, sync::Arc};

use super::{query::Query, TEXT};
use crate::{
    control::ControlState,
    local_reply::Reply,
    stats::{render, tags::TagExtractors, Kind, StatLine, StoreView},
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

/// What to render, decided on the control thread; rendered on a thread of its own.
struct Job {
    view: StoreView,
    own: Vec<StatLine>,
    offsets: HashMap<String, u64>,
    tags: Arc<TagExtractors>,
    format: Format,
    filter: Option<regex::Regex>,
    kinds: &'static [Kind],
    with_histograms: bool,
    buckets: render::Buckets,
    used_only: bool,
}

/// Answers a stats request; `format` is forced by `/stats/prometheus`. The parameters
/// are checked here; the rendering (milliseconds for a large process) runs on a thread
/// of its own, so the control thread keeps answering `/ready` and the control loop
/// meanwhile.
pub async fn stats(state: &ControlState, query: &Query, format: Option<Format>) -> Reply {
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
    let (kinds, with_histograms): (&'static [Kind], bool) = match query.get("type") {
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
    let buckets = match query.get("histogram_buckets") {
        None | Some("none") => render::Buckets::None,
        Some("cumulative") => render::Buckets::Cumulative,
        Some("disjoint") => render::Buckets::Disjoint,
        Some(mode @ ("detailed" | "combined")) => {
            return Reply::new(
                400,
                TEXT,
                format!(
                "histogram_buckets={mode} is not supported yet: use cumulative, disjoint or none\n"
            )
                .as_bytes(),
            )
        }
        Some(other) => {
            return Reply::new(
                400,
                TEXT,
                format!("invalid histogram_buckets {other:?}: use cumulative, disjoint or none\n")
                    .as_bytes(),
            )
        }
    };
    let job = Job {
        view: state.stats.borrow().view(),
        own: {
            let mut own = state.own_lines();
            endpoint_health(state, &mut own);
            own
        },
        offsets: state.counter_offsets.borrow().clone(),
        tags: Arc::clone(&state.tags),
        format,
        filter,
        kinds,
        with_histograms,
        buckets,
        used_only: query.has("usedonly"),
    };
    let (tx, rx) = flume::bounded(1);
    let spawned = std::thread::Builder::new()
        .name("ringway-admin-stats".into())
        .spawn(move || {
            let _ = tx.send(job.render());
        });
    if spawned.is_err() {
        return Reply::new(503, TEXT, b"cannot start the stats renderer\n");
    }
    rx.recv_async()
        .await
        .unwrap_or_else(|_| Reply::new(500, TEXT, b"the stats renderer failed\n"))
}

/// Envoy's synthetic per-endpoint `healthy` gauge (1 while the endpoint is healthy, 0
/// when degraded, unhealthy or excluded), for clusters with `per_endpoint_stats`, from
/// the host sets the control thread holds.
fn endpoint_health(state: &ControlState, lines: &mut Vec<StatLine>) {
    let store = state.stats.borrow();
    for view in state.clusters.borrow().iter() {
        if !store.per_endpoint(&view.name) {
            continue;
        }
        let set = &view.set;
        for (member, flags) in set.members.iter().zip(set.flags.iter()) {
            let address = member.address.to_string();
            let healthy = flags.usability() == crate::balance::Usability::Healthy;
            lines.push(StatLine {
                name: format!(
                    "{}healthy",
                    crate::stats::endpoint_prefix(&view.name, &address)
                ),
                value: u64::from(healthy),
                kind: Kind::Gauge,
            });
        }
    }
}

impl Job {
    fn render(self) -> Reply {
        let (filter, used_only) = (&self.filter, self.used_only);
        // A counter is used once it has counted anything, before a `/reset_counters`
        // too (Envoy's `used` flag outlives a reset): judged on the raw value, before
        // the reset's offset is taken off.
        let lines: Vec<_> = self
            .view
            .lines(self.own)
            .into_iter()
            .filter(|line| {
                self.kinds.contains(&line.kind)
                    && (!used_only || line.kind == Kind::Gauge || line.value > 0)
                    && filter.as_ref().is_none_or(|re| re.is_match(&line.name))
            })
            .map(|mut line| {
                if line.kind == Kind::Counter {
                    if let Some(offset) = self.offsets.get(&line.name) {
                        line.value = line.value.saturating_sub(*offset);
                    }
                }
                line
            })
            .collect();
        let mut histograms = if self.with_histograms {
            self.view.histograms()
        } else {
            Vec::new()
        };
        histograms.retain(|h| {
            (!used_only || h.merged.count() > 0)
                && filter.as_ref().is_none_or(|re| re.is_match(&h.name))
        });
        let mut out = String::with_capacity(64 * lines.len() + 1024 * histograms.len());
        let content_type = match self.format {
            Format::Text => {
                render::text(&lines, &mut out);
                match self.buckets {
                    render::Buckets::None => render::text_histograms(&histograms, &mut out),
                    mode => render::text_histogram_buckets(&histograms, mode, &mut out),
                }
                TEXT
            }
            Format::Json => {
                match self.buckets {
                    render::Buckets::None => render::json(&lines, &histograms, &mut out),
                    mode => render::json_buckets(&lines, &histograms, mode, &mut out),
                }
                JSON
            }
            Format::Prometheus => {
                let endpoints = self.view.endpoint_labels();
                let owners = render::Owners {
                    endpoints: &endpoints,
                    consumers: self.view.consumer_names(),
                };
                render::prometheus_labelled(&lines, &histograms, &self.tags, owners, &mut out);
                PROMETHEUS
            }
        };
        Reply::new(200, content_type, out.as_bytes())
    }
}
