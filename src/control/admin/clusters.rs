//! `/clusters`: every cluster and its hosts, in Envoy's text format
//! (`clusters_handler.cc`: `<cluster>::<key>::<value>` lines) or, with `?format=json`,
//! Envoy's `admin.v3.Clusters` in proto3 JSON.
//!
//! Per host: its stats summed over workers (`cx_active`, `cx_connect_fail`, `cx_total`,
//! `rq_active`, `rq_error`, `rq_success`, `rq_timeout`, `rq_total`), then its hostname,
//! health flags (`healthy`, or Envoy's `/failed_active_hc/failed_outlier_check/...`),
//! weight, locality, canary, priority and success rates (-1: not kept), as Envoy prints
//! them; clusters with outlier detection start with Envoy's `outlier::` lines. The
//! circuit-breaker lines show each priority's thresholds (process-wide limits,
//! `upstream::breakers`).

use std::fmt::Write;

use super::TEXT;
use crate::{
    config::{DeclaredHealth, Locality},
    control::ControlState,
    health::HealthFlags,
    local_reply::Reply,
    stats::{names::host, render::json_string, Kind},
    upstream::Member,
};

/// A priority's thresholds as Envoy names them.
fn thresholds(t: &crate::config::resilience::Thresholds) -> [(&'static str, u32); 4] {
    [
        ("max_connections", t.max_connections),
        ("max_pending_requests", t.max_pending_requests),
        ("max_requests", t.max_requests),
        ("max_retries", t.max_retries),
    ]
}

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

/// The endpoint's name (DNS, or the config's `hostname`), else empty.
fn hostname(member: &Member) -> String {
    member.hostname.as_deref().unwrap_or_default().to_owned()
}

/// Envoy's `eds_health_status` of what the config declares.
fn eds_status(declared: &DeclaredHealth) -> &'static str {
    match declared {
        DeclaredHealth::Healthy => "HEALTHY",
        DeclaredHealth::Unhealthy => "UNHEALTHY",
        DeclaredHealth::Draining => "DRAINING",
        DeclaredHealth::Degraded => "DEGRADED",
    }
}

/// The proto3 JSON of Envoy's `HostHealthStatus` (false fields omitted).
fn json_health(flags: HealthFlags, declared: &DeclaredHealth, out: &mut String) {
    out.push('{');
    for (flag, field) in [
        (HealthFlags::FAILED_ACTIVE_HC, "failed_active_health_check"),
        (HealthFlags::FAILED_OUTLIER_CHECK, "failed_outlier_check"),
        (HealthFlags::PENDING_ACTIVE_HC, "pending_active_hc"),
        (
            HealthFlags::EXCLUDED_VIA_IMMEDIATE_HC_FAIL,
            "excluded_via_immediate_hc_fail",
        ),
        (HealthFlags::ACTIVE_HC_TIMEOUT, "active_hc_timeout"),
    ] {
        if flags.contains(flag) {
            let _ = write!(out, "\"{field}\":true,");
        }
    }
    let _ = write!(out, "\"eds_health_status\":\"{}\"}}", eds_status(declared));
}

/// The proto3 JSON of a `Locality` (empty fields omitted).
fn json_locality(locality: &Locality, out: &mut String) {
    out.push('{');
    let mut first = true;
    for (field, value) in [
        ("region", &locality.region),
        ("zone", &locality.zone),
        ("sub_zone", &locality.sub_zone),
    ] {
        if value.is_empty() {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "\"{field}\":");
        json_string(value, out);
    }
    out.push('}');
}

/// Answers `/clusters`.
pub fn clusters(state: &ControlState, json: bool) -> Reply {
    let clusters = state.clusters.borrow();
    let mut out = String::with_capacity(4096);
    if json {
        out.push_str("{\"cluster_statuses\":[");
        for (c, view) in clusters.iter().enumerate() {
            if c > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            json_string(&view.name, &mut out);
            out.push_str(",\"added_via_api\":false,\"circuit_breakers\":{\"thresholds\":[");
            for (p, priority) in ["DEFAULT", "HIGH"].iter().enumerate() {
                if p > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{{\"priority\":\"{priority}\"");
                for (key, value) in thresholds(&view.thresholds[p]) {
                    let _ = write!(out, ",\"{key}\":{value}");
                }
                out.push('}');
            }
            out.push_str("]},\"host_statuses\":[");
            let set = &view.set;
            for (h, (member, flags)) in set.members.iter().zip(set.flags.iter()).enumerate() {
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
                out.push_str("],\"health_status\":");
                json_health(*flags, &member.declared, &mut out);
                let _ = write!(out, ",\"weight\":{}", member.weight);
                out.push_str(",\"hostname\":");
                json_string(&hostname(member), &mut out);
                out.push_str(",\"locality\":");
                json_locality(&member.locality, &mut out);
                let _ = write!(out, ",\"priority\":{}}}", member.priority);
            }
            out.push_str("]}");
        }
        out.push_str("]}\n");
        return Reply::new(200, "application/json", out.as_bytes());
    }
    for view in clusters.iter() {
        let name = &view.name;
        if view.outlier_detection {
            // Success-rate figures of the last interval are not kept: -1, as Envoy
            // prints them when too few hosts had enough requests.
            for key in [
                "success_rate_average",
                "success_rate_ejection_threshold",
                "local_origin_success_rate_average",
                "local_origin_success_rate_ejection_threshold",
            ] {
                let _ = writeln!(out, "{name}::outlier::{key}::-1");
            }
        }
        for (p, priority) in ["default_priority", "high_priority"].iter().enumerate() {
            for (key, value) in thresholds(&view.thresholds[p]) {
                let _ = writeln!(out, "{name}::{priority}::{key}::{value}");
            }
        }
        let _ = writeln!(out, "{name}::added_via_api::false");
        let set = &view.set;
        for (member, flags) in set.members.iter().zip(set.flags.iter()) {
            let address = &member.address;
            for (stat, _, value) in host_stats(member) {
                let _ = writeln!(out, "{name}::{address}::{stat}::{value}");
            }
            let _ = writeln!(out, "{name}::{address}::hostname::{}", hostname(member));
            let _ = writeln!(
                out,
                "{name}::{address}::health_flags::{}",
                flags.envoy_text()
            );
            let _ = writeln!(out, "{name}::{address}::weight::{}", member.weight);
            let locality = &member.locality;
            let _ = writeln!(out, "{name}::{address}::region::{}", locality.region);
            let _ = writeln!(out, "{name}::{address}::zone::{}", locality.zone);
            let _ = writeln!(out, "{name}::{address}::sub_zone::{}", locality.sub_zone);
            let _ = writeln!(out, "{name}::{address}::canary::false");
            let _ = writeln!(out, "{name}::{address}::priority::{}", member.priority);
            let _ = writeln!(out, "{name}::{address}::success_rate::-1");
            let _ = writeln!(out, "{name}::{address}::local_origin_success_rate::-1");
        }
    }
    Reply::new(200, TEXT, out.as_bytes())
}
