//! Schema of a route's resilience keys (`retry`, `mirror`, `max_stream_duration`,
//! `priority`, `attempt_count`) and a cluster's `circuit_breakers`, onto
//! `config::resilience`.
//!
//! Design: the native format is safe by default where Envoy's is not: a retry prefers
//! another endpoint (`other_host: true`, three picks to find one) and never repeats a
//! non-idempotent request whose bytes reached the upstream unless the route says
//! `retry_non_idempotent: true`. Condition names are Envoy's (`5xx`, `reset`, ...), so
//! that one vocabulary serves both formats and `x-envoy-retry-on`. Listing
//! `status_codes` or `response_headers` implies the condition that reads them
//! (`retriable-status-codes`, `retriable-headers`), which Envoy requires to be named
//! twice. Every other default is Envoy's (`Thresholds::default()`, `RetryBudget::default()`,
//! `Backoff::default()`).

use std::time::Duration;

use super::error::Diagnostics;
use super::fields::{choice, duration, list, optional_bool, Marks};
use super::model::AttemptCount;
use super::node::{Map, Node};
use super::resilience::{
    Backoff, CircuitBreakers, Fraction, Mirror, Priority, RateLimitedBackoff, ResetFormat,
    ResetHeader, RetryBudget, RetryMethods, RetryOn, RetryPolicy, Thresholds,
};
use super::route_match::header;

/// The route keys decoded here (the route decoder lists them in its ROUTE_KEYS).
pub(super) const ROUTE_KEYS: &[&str] = &[
    "retry",
    "mirror",
    "max_stream_duration",
    "priority",
    "attempt_count",
];
const RETRY_KEYS: &[&str] = &[
    "on",
    "retries",
    "per_try_timeout",
    "per_try_idle_timeout",
    "hedge",
    "status_codes",
    "response_headers",
    "request_headers",
    "backoff",
    "retry_after",
    "other_host",
    "host_selection_attempts",
    "retry_non_idempotent",
    "buffer",
];
const BACKOFF_KEYS: &[&str] = &["base", "max"];
const RETRY_AFTER_KEYS: &[&str] = &["headers", "max_interval"];
const RESET_HEADER_KEYS: &[&str] = &["name", "format"];
const MIRROR_KEYS: &[&str] = &["cluster", "percent", "keep_host"];
const ATTEMPT_COUNT_KEYS: &[&str] = &["request", "response"];
const BREAKER_KEYS: &[&str] = &["default", "high"];
/// A thresholds map's keys: Envoy's `Thresholds` fields by the same names (its decoder
/// adds `priority`, which the native format says by the map's key).
pub(crate) const THRESHOLD_KEYS: &[&str] = &[
    "max_connections",
    "max_pending_requests",
    "max_requests",
    "max_retries",
    "retry_budget",
    "track_remaining",
];
const BUDGET_KEYS: &[&str] = &["percent", "min_concurrency"];

/// Native default of `host_selection_attempts`: with `other_host`, one pick finds the
/// endpoint just tried with probability 1/n; three make that 1/n³ (Envoy's default is 1,
/// and its docs suggest raising it with the previous-hosts predicate).
pub const NATIVE_HOST_SELECTION_ATTEMPTS: u32 = 3;
/// Most retries a native route may ask for (each one a full attempt).
pub const MAX_RETRIES: i64 = 100;
/// Longest wait a `Retry-After` may ask for by default (Envoy's
/// `rate_limited_retry_back_off.max_interval` default).
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);

/// A route's resilience settings, as the route decoder stores them.
#[derive(Debug, Default)]
pub(super) struct RouteResilience {
    pub retry: Option<RetryPolicy>,
    pub mirrors: Vec<Mirror>,
    pub max_stream_duration: Option<Duration>,
    pub priority: Priority,
    pub attempt_count: AttemptCount,
}

/// Reads the route keys of [`ROUTE_KEYS`]; `forwards`: whether the route has a cluster
/// (the keys apply only to those: a direct response or redirect has no upstream).
pub(super) fn route<'a>(
    map: &Map<'a>,
    forwards: bool,
    diag: &mut Diagnostics,
    marks: &mut Marks<'a>,
) -> Option<RouteResilience> {
    let mut ok = true;
    if !forwards {
        for key in ROUTE_KEYS {
            if let Some(n) = map.optional(key) {
                n.error(
                    diag,
                    format!("`{key}` applies only to routes with a `cluster`"),
                );
                ok = false;
            }
        }
        return ok.then(RouteResilience::default);
    }
    let retry = match map.optional("retry") {
        Some(n) => retry(&n, diag).map(Some),
        None => Some(None),
    };
    let mirrors = match map.optional("mirror") {
        Some(n) => list(&n, diag, |item, diag| mirror(item, diag, marks)),
        None => Some(Vec::new()),
    };
    let max_stream_duration = match map.optional("max_stream_duration") {
        Some(n) => duration(&n, diag).map(Some),
        None => Some(None),
    };
    let priority = match map.optional("priority") {
        Some(n) => choice(
            &n,
            diag,
            &[("default", Priority::Default), ("high", Priority::High)],
        ),
        None => Some(Priority::Default),
    };
    let attempt_count = match map.optional("attempt_count") {
        Some(n) => attempt_count(&n, diag),
        None => Some(AttemptCount::default()),
    };
    Some(RouteResilience {
        retry: retry?,
        mirrors: mirrors?,
        max_stream_duration: max_stream_duration?,
        priority: priority?,
        attempt_count: attempt_count?,
    })
}

/// `retry: {on, retries, ...}`.
pub(super) fn retry(node: &Node<'_>, diag: &mut Diagnostics) -> Option<RetryPolicy> {
    let map = node.map(diag, RETRY_KEYS)?;
    let on = match map.optional("on") {
        Some(n) => conditions(&n, diag),
        None => Some(RetryOn::NONE),
    };
    let retries = match map.optional("retries") {
        Some(n) => n
            .int_in(diag, "a number of retries", 0..=MAX_RETRIES)
            .and_then(|r| u32::try_from(r).ok()),
        None => Some(1),
    };
    let optional = |key: &str, diag: &mut Diagnostics| match map.optional(key) {
        Some(n) => duration(&n, diag).map(Some),
        None => Some(None),
    };
    let per_try_timeout = optional("per_try_timeout", diag);
    let per_try_idle_timeout = optional("per_try_idle_timeout", diag);
    let hedge = optional_bool(&map, "hedge", false, diag);
    let status_codes = match map.optional("status_codes") {
        Some(n) => list(&n, diag, |item, diag| {
            item.int_in(diag, "a status code", 100..=599)
                .and_then(|s| u16::try_from(s).ok())
        }),
        None => Some(Vec::new()),
    };
    let headers = |key: &str, diag: &mut Diagnostics| match map.optional(key) {
        Some(n) => list(&n, diag, header),
        None => Some(Vec::new()),
    };
    let response_headers = headers("response_headers", diag);
    let request_headers = headers("request_headers", diag);
    let backoff = match map.optional("backoff") {
        Some(n) => backoff(&n, diag),
        None => Some(Backoff::default()),
    };
    let rate_limited = match map.optional("retry_after") {
        Some(n) => retry_after(&n, diag),
        None => Some(None),
    };
    let other_host = optional_bool(&map, "other_host", true, diag);
    let host_selection_attempts = match map.optional("host_selection_attempts") {
        Some(n) => n
            .int_in(diag, "a number of picks", 1..=MAX_RETRIES)
            .and_then(|r| u32::try_from(r).ok()),
        None => Some(NATIVE_HOST_SELECTION_ATTEMPTS),
    };
    let methods = optional_bool(&map, "retry_non_idempotent", false, diag).map(|any| {
        if any {
            RetryMethods::Any
        } else {
            RetryMethods::Idempotent
        }
    });
    let buffer_limit = match map.optional("buffer") {
        Some(n) => super::fields::size(&n, diag).map(|b| b as u64),
        None => Some(RetryPolicy::DEFAULT_BUFFER_LIMIT),
    };
    let (status_codes, response_headers) = (status_codes?, response_headers?);
    let mut retry_on = on?;
    if !status_codes.is_empty() {
        retry_on = retry_on | RetryOn::RETRIABLE_STATUS_CODES;
    }
    if !response_headers.is_empty() {
        retry_on = retry_on | RetryOn::RETRIABLE_HEADERS;
    }
    if retry_on.is_empty() {
        node.error(
            diag,
            "`retry` needs `on` (the conditions, such as `[connect-failure, 5xx]`), \
             `status_codes` or `response_headers`",
        );
        return None;
    }
    Some(RetryPolicy {
        retry_on,
        num_retries: retries?,
        per_try_timeout: per_try_timeout?,
        per_try_idle_timeout: per_try_idle_timeout?,
        hedge_on_per_try_timeout: hedge?,
        status_codes,
        response_headers,
        request_headers: request_headers?,
        backoff: backoff?,
        rate_limited: rate_limited?,
        other_host: other_host?,
        host_selection_attempts: host_selection_attempts?,
        methods: methods?,
        buffer_limit: buffer_limit?,
    })
}

/// `on`: a list of condition names, or one comma-separated string (as in
/// `x-envoy-retry-on`).
fn conditions(node: &Node<'_>, diag: &mut Diagnostics) -> Option<RetryOn> {
    let known = || RetryOn::NAMES.iter().map(|(_, name)| *name);
    let one = |text: &str, at: &Node<'_>, diag: &mut Diagnostics| match RetryOn::parse_list(text) {
        Ok(on) => Some(on),
        Err(name) => {
            let hint = super::suggest::did_you_mean(name, known());
            at.error(
                diag,
                format!("unknown retry condition {name:?}{hint} (Envoy's `retry_on` names)"),
            );
            None
        }
    };
    if let Some(text) = node.peek_str() {
        return one(text, node, diag);
    }
    let each = list(node, diag, |item, diag| {
        let text = item.str(diag)?;
        one(text, item, diag)
    })?;
    Some(each.into_iter().fold(RetryOn::NONE, |all, on| all | on))
}

/// `backoff: {base, max}` (defaults 25ms and 10 × base).
fn backoff(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Backoff> {
    let map = node.map(diag, BACKOFF_KEYS)?;
    let base = match map.optional("base") {
        Some(n) => duration(&n, diag),
        None => Some(RetryPolicy::DEFAULT_BACKOFF_BASE),
    };
    let max = match map.optional("max") {
        Some(n) => duration(&n, diag).map(Some),
        None => Some(None),
    };
    let (base, max) = (base?, max?);
    let max = max.unwrap_or(base.saturating_mul(10));
    if max < base {
        let at = map.optional("max").unwrap_or_else(|| node.clone());
        at.error(
            diag,
            format!("`max` ({max:?}) is shorter than `base` ({base:?})"),
        );
        return None;
    }
    Some(Backoff { base, max })
}

/// `retry_after: true | false | {headers: [{name, format}], max_interval}`.
fn retry_after(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Option<RateLimitedBackoff>> {
    let retry_after = || ResetHeader {
        name: "retry-after".to_owned(),
        format: ResetFormat::Seconds,
    };
    match node.peek_bool() {
        Some(false) => return Some(None),
        Some(true) => {
            return Some(Some(RateLimitedBackoff {
                reset_headers: vec![retry_after()],
                max_interval: RETRY_AFTER_MAX,
            }))
        }
        None => {}
    }
    if node.peek_str().is_some() || node.peek_int().is_some() || node.is_seq() {
        node.wrong_type(
            diag,
            "true, false, or a mapping with `headers` and `max_interval`",
        );
        return None;
    }
    let map = node.map(diag, RETRY_AFTER_KEYS)?;
    let headers = match map.optional("headers") {
        Some(n) => super::fields::non_empty_list(&n, diag, "header", reset_header),
        None => Some(vec![retry_after()]),
    };
    let max_interval = match map.optional("max_interval") {
        Some(n) => duration(&n, diag),
        None => Some(RETRY_AFTER_MAX),
    };
    Some(Some(RateLimitedBackoff {
        reset_headers: headers?,
        max_interval: max_interval?,
    }))
}

fn reset_header(node: &Node<'_>, diag: &mut Diagnostics) -> Option<ResetHeader> {
    let map = node.map(diag, RESET_HEADER_KEYS)?;
    let name = map.field(diag, "name").and_then(|n| {
        let text = n.str(diag)?;
        match super::decode_headers::check_field_name(text) {
            Ok(()) => Some(text.to_ascii_lowercase()),
            Err(message) => {
                n.error(diag, message);
                None
            }
        }
    });
    let format = match map.optional("format") {
        Some(n) => choice(
            &n,
            diag,
            &[
                ("seconds", ResetFormat::Seconds),
                ("unix_timestamp", ResetFormat::UnixTimestamp),
            ],
        ),
        None => Some(ResetFormat::Seconds),
    };
    Some(ResetHeader {
        name: name?,
        format: format?,
    })
}

/// One `mirror` entry: `{cluster, percent, keep_host}`.
fn mirror<'a>(node: &Node<'a>, diag: &mut Diagnostics, marks: &mut Marks<'a>) -> Option<Mirror> {
    let map = node.map(diag, MIRROR_KEYS)?;
    let cluster = map.field(diag, "cluster").and_then(|n| {
        let name = n.str(diag)?;
        // Existence is checked once all clusters are known (validate).
        marks.cluster_refs.push((name, n.clone()));
        Some(name.to_owned())
    });
    let fraction = match map.optional("percent") {
        Some(n) => percent(&n, diag),
        None => Some(Fraction::ALL),
    };
    let keep_host = optional_bool(&map, "keep_host", false, diag);
    Some(Mirror {
        cluster: cluster?,
        fraction: fraction?,
        keep_host: keep_host?,
    })
}

/// A percentage from 0 to 100: a whole number over 100, else over 1,000,000 (four
/// decimals at most, the finest share Envoy's `FractionalPercent` holds).
fn percent(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Fraction> {
    if node.peek_int().is_some() {
        let whole = node.int_in(diag, "a percentage", 0..=100)?;
        return Some(Fraction {
            numerator: u32::try_from(whole).ok()?,
            denominator: 100,
        });
    }
    let Some(value) = node.peek_number() else {
        node.wrong_type(diag, "a percentage from 0 to 100");
        return None;
    };
    let Some(millionths) = percent_millionths(value) else {
        node.error(
            diag,
            format!("expected a percentage from 0 to 100 with at most 4 decimals, found {value}"),
        );
        return None;
    };
    Some(Fraction {
        numerator: millionths,
        denominator: 1_000_000,
    })
}

/// A percentage from 0 to 100 with four decimals at most, in millionths (`None`
/// otherwise): the rule of [`percent`], shared with the tracing `sampling` shares
/// (`decode_observability`), which are also written as text (`1%`).
pub(super) fn percent_millionths(value: f64) -> Option<u32> {
    let millionths = value * 10_000.0;
    if !(0.0..=100.0).contains(&value) || (millionths - millionths.round()).abs() > 1e-6 {
        return None;
    }
    // In 0..=1_000_000 by the check above.
    Some(millionths.round() as u32)
}

fn attempt_count(node: &Node<'_>, diag: &mut Diagnostics) -> Option<AttemptCount> {
    let map = node.map(diag, ATTEMPT_COUNT_KEYS)?;
    let request = optional_bool(&map, "request", false, diag);
    let response = optional_bool(&map, "response", false, diag);
    Some(AttemptCount {
        request: request?,
        response: response?,
    })
}

/// A cluster's `circuit_breakers: {default: {...}, high: {...}}`.
pub(super) fn circuit_breakers(node: &Node<'_>, diag: &mut Diagnostics) -> Option<CircuitBreakers> {
    let map = node.map(diag, BREAKER_KEYS)?;
    let each = |key: &str, diag: &mut Diagnostics| match map.optional(key) {
        Some(n) => thresholds(&n, diag),
        None => Some(Thresholds::default()),
    };
    let default = each("default", diag);
    let high = each("high", diag);
    Some(CircuitBreakers {
        thresholds: [default?, high?],
    })
}

fn thresholds(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Thresholds> {
    let map = node.map(diag, THRESHOLD_KEYS)?;
    let defaults = Thresholds::default();
    // A limit of 0 connections or requests would refuse every request; 0 pending
    // (never queue) and 0 retries (never retry) are meaningful.
    let count = |key: &str, min: i64, default: u32, diag: &mut Diagnostics| match map.optional(key)
    {
        Some(n) => n
            .int_in(diag, "a limit", min..=i64::from(u32::MAX))
            .and_then(|v| u32::try_from(v).ok()),
        None => Some(default),
    };
    let max_connections = count("max_connections", 1, defaults.max_connections, diag);
    let max_pending_requests = count(
        "max_pending_requests",
        0,
        defaults.max_pending_requests,
        diag,
    );
    let max_requests = count("max_requests", 1, defaults.max_requests, diag);
    let max_retries = count("max_retries", 0, defaults.max_retries, diag);
    let retry_budget = match map.optional("retry_budget") {
        Some(n) => retry_budget(&n, diag).map(Some),
        None => Some(None),
    };
    let track_remaining = optional_bool(&map, "track_remaining", false, diag);
    Some(Thresholds {
        max_connections: max_connections?,
        max_pending_requests: max_pending_requests?,
        max_requests: max_requests?,
        max_retries: max_retries?,
        retry_budget: retry_budget?,
        track_remaining: track_remaining?,
    })
}

fn retry_budget(node: &Node<'_>, diag: &mut Diagnostics) -> Option<RetryBudget> {
    let defaults = RetryBudget::default();
    // `retry_budget: {}` (or a bare `retry_budget:`) takes Envoy's defaults.
    if node.is_null() {
        return Some(defaults);
    }
    let map = node.map(diag, BUDGET_KEYS)?;
    let percent = match map.optional("percent") {
        Some(n) => match n.peek_number() {
            Some(p) if (0.0..=100.0).contains(&p) => Some(p),
            Some(p) => {
                n.error(
                    diag,
                    format!("expected a percentage from 0 to 100, found {p}"),
                );
                None
            }
            None => {
                n.wrong_type(diag, "a percentage from 0 to 100");
                None
            }
        },
        None => Some(defaults.budget_percent),
    };
    let min_concurrency = match map.optional("min_concurrency") {
        Some(n) => n
            .int_in(diag, "a number of retries", 0..=i64::from(u32::MAX))
            .and_then(|v| u32::try_from(v).ok()),
        None => Some(defaults.min_retry_concurrency),
    };
    Some(RetryBudget {
        budget_percent: percent?,
        min_retry_concurrency: min_concurrency?,
    })
}

#[cfg(test)]
mod tests;
