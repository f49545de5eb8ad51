//! `/clusters`: every cluster and its hosts, in Envoy's text format
//! (`clusters_handler.cc`: `<cluster>::<key>::<value>` lines) or, with `?format=json`,
//! Envoy's `admin.v3.Clusters` in proto3 JSON.
//!
//! Per host: its stats summed over workers (`cx_active`, `cx_connect_fail`, `cx_total`,
//! `rq_active`, `rq_error`, `rq_success`, `rq_timeout`, `rq_total`), then its hostname,
//! health (`healthy`: ringway has no health checks or outlier detection yet), weight,
//! locality (empty), canary, priority and success rates (-1: not computed), as Envoy
//! prints them. The circuit-breaker lines show Envoy's defaults: an Envoy config with
//! other thresholds is refused until the resilience work, and ringway's own limits are
//! the pool settings (per worker and endpoint, `docs/configuration.md`).

use std::fmt::Write;

use super::TEXT;
use crate::{
    control::ControlState,
    local_reply::Reply,
    stats::{names::host, render::json_string, Kind},
    upstream::Member,
};

/// Envoy's default circuit-breaker thresholds, per priority.
const THRESHOLDS: [(&str, u64); 4] = [
    ("max_connections", 1024),
    ("max_pending_requests", 1024),
    ("max_requests", 1024),
    ("max_retries", 3),
];

/// A host's stats, summed over workers, with their kinds.
fn host_stats(member: &Member) -> Vec<(&'static str, Kind, u64)> {
    host::DEFS
        .iter()
        .enumerate()
        .map(|(i, def)| {
            let value = member.stats.as_ref().map_or(0, |s| s.sum(i));
            (def.name, def.kind, value)
        })
        .collect()
}

/// The endpoint's name (DNS), else its address.
fn hostname(member: &Member) -> String {
    member.hostname.as_deref().unwrap_or_default().to_owned()
}

/// Answers `/clusters`.
pub fn clusters(state: &ControlState, json: bool) -> Reply {
    let clusters = state.clusters.borrow();
    let mut out = String::with_capacity(4096);
    if json {
        out.push_str("{\"cluster_statuses\":[");
        for (c, (name, members)) in clusters.iter().enumerate() {
            if c > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            json_string(name, &mut out);
            out.push_str(",\"added_via_api\":false,\"circuit_breakers\":{\"thresholds\":[");
            for (p, priority) in ["DEFAULT", "HIGH"].iter().enumerate() {
                if p > 0 {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    "{{\"priority\":\"{priority}\",\"max_connections\":1024,\"max_pending_requests\":1024,\"max_requests\":1024,\"max_retries\":3}}"
                );
            }
            out.push_str("]},\"host_statuses\":[");
            for (h, member) in members.iter().enumerate() {
                if h > 0 {
                    out.push(',');
                }
                out.push_str("{\"address\":");
                super::json_address(&member.address, &mut out);
                out.push_str(",\"stats\":[");
                for (i, (stat, kind, value)) in host_stats(member).iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let kind = match kind {
                        Kind::Counter => "COUNTER",
                        Kind::Gauge => "GAUGE",
                    };
                    // proto3 JSON: a uint64 is a string.
                    let _ = write!(
                        out,
                        "{{\"type\":\"{kind}\",\"value\":\"{value}\",\"name\":\"{stat}\"}}"
                    );
                }
                out.push_str("],\"health_status\":{\"eds_health_status\":\"HEALTHY\"}");
                let _ = write!(out, ",\"weight\":{}", member.weight);
                out.push_str(",\"hostname\":");
                json_string(&hostname(member), &mut out);
                out.push_str(",\"locality\":{},\"priority\":0}");
            }
            out.push_str("]}");
        }
        out.push_str("]}\n");
        return Reply::new(200, "application/json", out.as_bytes());
    }
    for (name, members) in clusters.iter() {
        for priority in ["default_priority", "high_priority"] {
            for (key, value) in THRESHOLDS {
                let _ = writeln!(out, "{name}::{priority}::{key}::{value}");
            }
        }
        let _ = writeln!(out, "{name}::added_via_api::false");
        for member in members.iter() {
            let address = &member.address;
            for (stat, _, value) in host_stats(member) {
                let _ = writeln!(out, "{name}::{address}::{stat}::{value}");
            }
            let _ = writeln!(out, "{name}::{address}::hostname::{}", hostname(member));
            let _ = writeln!(out, "{name}::{address}::health_flags::healthy");
            let _ = writeln!(out, "{name}::{address}::weight::{}", member.weight);
            for key in ["region", "zone", "sub_zone"] {
                let _ = writeln!(out, "{name}::{address}::{key}::");
            }
            let _ = writeln!(out, "{name}::{address}::canary::false");
            let _ = writeln!(out, "{name}::{address}::priority::0");
            let _ = writeln!(out, "{name}::{address}::success_rate::-1");
            let _ = writeln!(out, "{name}::{address}::local_origin_success_rate::-1");
        }
    }
    Reply::new(200, TEXT, out.as_bytes())
}
