//! Envoy's request mirroring (`request_mirror_policies`), `max_stream_duration`,
//! routing `priority` and a cluster's `circuit_breakers` onto `config::resilience`.
//! Retry and hedge policies are in `retry.rs`.
//!
//! Design: a mirror policy's `runtime_fraction` is read through its `default_value`:
//! ringway has no runtime (a static layer with any other key than its two connection
//! limits is refused), so a `runtime_key` always finds no value and Envoy then uses the
//! default; the key is accepted for that reason. `trace_sampled: true` is refused
//! (ringway reports no spans); unset or false is what ringway does. Mirror policies on a
//! route, its virtual host and its route configuration are not merged: the most specific
//! non-empty list applies, as in Envoy. Circuit-breaker thresholds are process-wide per
//! cluster and priority, with Envoy's defaults for what is unset; `per_host_thresholds`
//! is refused (ringway's per-endpoint pool limit is per worker, so it would not be the
//! same limit), as are `max_connection_pools` and a budget's `budget_interval`.

use std::time::Duration;

use super::cursor::Msg;
use crate::config::decode_resilience::THRESHOLD_KEYS;
use crate::config::error::Diagnostics;
use crate::config::resilience::{
    CircuitBreakers, Fraction, Mirror, Priority, RetryBudget, Thresholds,
};

/// A message's `request_mirror_policies` (route action, virtual host or route
/// configuration); each cluster must exist.
pub(super) fn mirrors(m: &Msg<'_, '_>, clusters: &[String], diag: &mut Diagnostics) -> Vec<Mirror> {
    let mut out = Vec::new();
    for p in m.children("request_mirror_policies") {
        p.only(
            diag,
            &[
                "cluster",
                "runtime_fraction",
                "trace_sampled",
                "disable_shadow_host_suffix_append",
            ],
        );
        let Some(cluster) = p.str("cluster") else {
            // `cluster_header` has its error already.
            if !p.has("cluster_header") {
                p.error(diag, "cluster", "a mirror policy needs `cluster`");
            }
            continue;
        };
        super::route::known_cluster(&p, "cluster", cluster, clusters, diag);
        if p.wrapped_bool("trace_sampled") == Some(true) {
            p.error(
                diag,
                "trace_sampled",
                "`trace_sampled: true` is not supported (ringway reports no trace spans; leave it unset)",
            );
        }
        let fraction = match p.child("runtime_fraction") {
            Some(rf) => {
                rf.only(diag, &["default_value", "runtime_key"]);
                rf.child("default_value")
                    .map_or(Fraction::ALL, |v| fractional_percent(&v, diag))
            }
            // Envoy mirrors every request without a fraction.
            None => Fraction::ALL,
        };
        out.push(Mirror {
            cluster: cluster.to_owned(),
            fraction,
            keep_host: p.bool("disable_shadow_host_suffix_append"),
        });
    }
    out
}

/// A `FractionalPercent`; a numerator above the denominator is all requests (Envoy's
/// rule).
pub(crate) fn fractional_percent(v: &Msg<'_, '_>, diag: &mut Diagnostics) -> Fraction {
    v.only(diag, &["numerator", "denominator"]);
    let denominator: u32 = match v.enum_name("denominator").as_deref() {
        Some("MILLION") => 1_000_000,
        Some("TEN_THOUSAND") => 10_000,
        // HUNDRED, the zero value (others are refused by the validation rules).
        _ => 100,
    };
    let numerator = u32::try_from(v.uint("numerator"))
        .unwrap_or(u32::MAX)
        .min(denominator);
    Fraction {
        numerator,
        denominator,
    }
}

/// A route action's `max_stream_duration {max_stream_duration}`: `None` when unset
/// (the connection manager's applies), `Some(None)` when zero (no limit on this route).
/// The gRPC header fields are refused by name.
pub(super) fn max_stream_duration(
    a: &Msg<'_, '_>,
    diag: &mut Diagnostics,
) -> Option<Option<Duration>> {
    let m = a.child("max_stream_duration")?;
    m.only(diag, &["max_stream_duration"]);
    let d = m.duration("max_stream_duration")?;
    Some((!d.is_zero()).then_some(d))
}

/// `RoutingPriority`: DEFAULT or HIGH.
pub(super) fn priority(a: &Msg<'_, '_>) -> Priority {
    match a.enum_name("priority").as_deref() {
        Some("HIGH") => Priority::High,
        _ => Priority::Default,
    }
}

/// A cluster's `circuit_breakers {thresholds}`: at most one entry per priority.
pub(super) fn circuit_breakers(cb: &Msg<'_, '_>, diag: &mut Diagnostics) -> CircuitBreakers {
    cb.only(diag, &["thresholds"]);
    let mut breakers = CircuitBreakers::default();
    let mut seen = [false; 2];
    for t in cb.children("thresholds") {
        // The native format's names, and the priority its map key says.
        t.only(diag, &[&["priority"][..], THRESHOLD_KEYS].concat());
        let slot = match priority(&t) {
            Priority::Default => 0,
            Priority::High => 1,
        };
        if std::mem::replace(&mut seen[slot], true) {
            let name = ["DEFAULT", "HIGH"][slot];
            t.error(
                diag,
                "priority",
                format!("a second thresholds entry for priority {name} (one per priority)"),
            );
            continue;
        }
        let defaults = Thresholds::default();
        // UInt32Values: always fit.
        let limit = |field: &str, default: u32| {
            t.wrapped_uint(field)
                .map_or(default, |v| u32::try_from(v).unwrap_or(u32::MAX))
        };
        breakers.thresholds[slot] = Thresholds {
            max_connections: limit("max_connections", defaults.max_connections),
            max_pending_requests: limit("max_pending_requests", defaults.max_pending_requests),
            max_requests: limit("max_requests", defaults.max_requests),
            max_retries: limit("max_retries", defaults.max_retries),
            retry_budget: t.child("retry_budget").map(|b| retry_budget(&b, diag)),
            track_remaining: t.bool("track_remaining"),
        };
    }
    breakers
}

/// `retry_budget {budget_percent, min_retry_concurrency}` (defaults 20 % and 3).
fn retry_budget(b: &Msg<'_, '_>, diag: &mut Diagnostics) -> RetryBudget {
    b.only(diag, &["budget_percent", "min_retry_concurrency"]);
    let defaults = RetryBudget::default();
    RetryBudget {
        // A `Percent`, 0 to 100 by the validation rules.
        budget_percent: b
            .child("budget_percent")
            .map_or(defaults.budget_percent, |p| p.double("value")),
        min_retry_concurrency: b
            .wrapped_uint("min_retry_concurrency")
            .map_or(defaults.min_retry_concurrency, |v| {
                u32::try_from(v).unwrap_or(u32::MAX)
            }),
    }
}

#[cfg(test)]
mod tests;
