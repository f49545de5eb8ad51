//! Native schema for how a cluster balances and checks its endpoints: its
//! `load_balancing`, `health_check` and `outlier_detection`, and the `hash_on` rules of
//! clusters and routes (the model is `config::balance`).
//!
//! ```yaml
//! clusters:
//!   - name: api
//!     endpoints:
//!       - 10.0.0.1:80
//!       - { address: 10.0.0.2:80, weight: 2, priority: 1, locality: eu-west/eu-west-1a,
//!           locality_weight: 3, health: draining, hostname: api-2, health_check_port: 8081 }
//!     load_balancing:
//!       policy: ring_hash            # round_robin | least_request | random | ring_hash | maglev
//!       min_ring_size: 1024          # ring_hash; max_ring_size too
//!       hash_on: [{ header: x-user }, { cookie: { name: sticky, ttl: 1h } }, source_ip]
//!       panic_threshold: 50%
//!       overprovisioning_factor: 140
//!       locality_weighted: true
//!     health_check:
//!       http: { path: /healthz, expected_statuses: [200, 204-299] }
//!       interval: 5s
//!       timeout: 1s
//!     outlier_detection: { consecutive_5xx: 5, base_ejection_time: 30s }
//! ```
//!
//! Design: the keys are Envoy's field names in snake case (`choice_count`,
//! `min_ring_size`, every `outlier_detection` field), so a reader of Envoy's docs finds
//! them, with Envoy's defaults from the model's types. The policy's own keys are refused
//! under another policy (`table_size` with `least_request`), rather than ignored. Where
//! the native format chooses: `healthy_threshold` defaults to 1 and
//! `unhealthy_threshold` to 3 (Envoy requires both); status ranges are written inclusive
//! (`204-299`) and kept half-open as Envoy's; a `consecutive_*` outlier threshold of 0
//! is refused (`enforcing_*: 0` is how a check is turned off). Durations that may be
//! zero (jitters, a cookie's `ttl`) say so; every other one must be positive.
//!
//! A route's `hash_on` replaces its cluster's; [`inherit_hash_policies`] gives every
//! cluster route without its own the cluster's once all clusters are read.

use std::time::Duration;

use super::balance::{
    parse_locality, Balancing, DeclaredHealth, HashRule, HashSource, HealthCheck, HealthCheckKind,
    HttpCheck, LbPolicy, Locality, OutlierDetection, TcpCheck,
};
use super::decode_headers::check_field_name;
use super::error::Diagnostics;
use super::fields::{choice, duration, exactly_one, non_empty_list, optional_bool, token_byte};
use super::model::{Cluster, Listener, RouteAction};
use super::node::{Map, Node};
use super::units::parse_duration;

const BALANCING_KEYS: &[&str] = &[
    "policy",
    "choice_count",
    "active_request_bias",
    "min_ring_size",
    "max_ring_size",
    "table_size",
    "hash_on",
    "panic_threshold",
    "overprovisioning_factor",
    "locality_weighted",
];
const HASH_SOURCES: &[&str] = &["header", "cookie", "source_ip", "query"];
const HASH_KEYS: &[&str] = &["header", "cookie", "source_ip", "query", "terminal"];
const COOKIE_KEYS: &[&str] = &["name", "ttl", "path"];
const HEALTH_KEYS: &[&str] = &[
    "http",
    "tcp",
    "interval",
    "timeout",
    "healthy_threshold",
    "unhealthy_threshold",
    "interval_jitter",
    "interval_jitter_percent",
    "initial_jitter",
    "no_traffic_interval",
    "no_traffic_healthy_interval",
    "unhealthy_interval",
    "unhealthy_edge_interval",
    "healthy_edge_interval",
    "always_log_failures",
    "reuse_connection",
];
const HTTP_KEYS: &[&str] = &[
    "path",
    "host",
    "method",
    "expected_statuses",
    "retriable_statuses",
    "headers",
    "remove_headers",
];
const TCP_KEYS: &[&str] = &["send", "expect"];
/// Outlier detection's counts and percents, by field (durations and flags follow).
/// Outlier detection's counts, percents and every field: the same names in both
/// formats (the Envoy decoder takes them from here).
pub(crate) const OUTLIER_COUNTS: &[&str] = &[
    "consecutive_5xx",
    "consecutive_gateway_failure",
    "consecutive_local_origin_failure",
    "success_rate_minimum_hosts",
    "success_rate_request_volume",
    "success_rate_stdev_factor",
    "failure_percentage_minimum_hosts",
    "failure_percentage_request_volume",
];
pub(crate) const OUTLIER_PERCENTS: &[&str] = &[
    "max_ejection_percent",
    "enforcing_consecutive_5xx",
    "enforcing_consecutive_gateway_failure",
    "enforcing_consecutive_local_origin_failure",
    "enforcing_success_rate",
    "enforcing_local_origin_success_rate",
    "failure_percentage_threshold",
    "enforcing_failure_percentage",
    "enforcing_failure_percentage_local_origin",
];
pub(crate) const OUTLIER_KEYS: &[&str] = &[
    "consecutive_5xx",
    "consecutive_gateway_failure",
    "consecutive_local_origin_failure",
    "success_rate_minimum_hosts",
    "success_rate_request_volume",
    "success_rate_stdev_factor",
    "failure_percentage_minimum_hosts",
    "failure_percentage_request_volume",
    "max_ejection_percent",
    "enforcing_consecutive_5xx",
    "enforcing_consecutive_gateway_failure",
    "enforcing_consecutive_local_origin_failure",
    "enforcing_success_rate",
    "enforcing_local_origin_success_rate",
    "failure_percentage_threshold",
    "enforcing_failure_percentage",
    "enforcing_failure_percentage_local_origin",
    "interval",
    "base_ejection_time",
    "max_ejection_time",
    "max_ejection_time_jitter",
    "split_external_local_origin_errors",
    "successful_active_health_check_uneject_host",
    "always_eject_one_host",
];
const MAX_U32: i64 = u32::MAX as i64;

/// The `policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    RoundRobin,
    LeastRequest,
    Random,
    RingHash,
    Maglev,
}

const POLICIES: &[(&str, Kind)] = &[
    ("round_robin", Kind::RoundRobin),
    ("least_request", Kind::LeastRequest),
    ("random", Kind::Random),
    ("ring_hash", Kind::RingHash),
    ("maglev", Kind::Maglev),
];

/// Keys that belong to one policy.
const POLICY_KEYS: &[(&str, Kind)] = &[
    ("choice_count", Kind::LeastRequest),
    ("active_request_bias", Kind::LeastRequest),
    ("min_ring_size", Kind::RingHash),
    ("max_ring_size", Kind::RingHash),
    ("table_size", Kind::Maglev),
];

/// A cluster's `load_balancing`.
pub(super) fn balancing(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Balancing> {
    let map = node.map(diag, BALANCING_KEYS)?;
    let kind = match map.optional("policy") {
        Some(n) => choice(&n, diag, POLICIES),
        None => Some(Kind::RoundRobin),
    };
    let mut misplaced = false;
    if let Some(kind) = kind {
        for (key, owner) in POLICY_KEYS {
            if let Some(n) = map.optional(key).filter(|_| *owner != kind) {
                let (word, _) = POLICIES.iter().find(|(_, k)| k == owner)?;
                n.error(diag, format!("`{key}` applies only to `policy: {word}`"));
                misplaced = true;
            }
        }
    }
    let policy = kind.and_then(|kind| policy(kind, &map, diag));
    let panic_threshold = match map.optional("panic_threshold") {
        Some(n) => percent(&n, diag),
        None => Some(Balancing::DEFAULT_PANIC_THRESHOLD),
    };
    let overprovisioning_factor = match map.optional("overprovisioning_factor") {
        Some(n) => n
            .int_in(diag, "a percentage", 1..=MAX_U32)
            .and_then(|v| u32::try_from(v).ok()),
        None => Some(Balancing::DEFAULT_OVERPROVISIONING_FACTOR),
    };
    let locality_weighted = optional_bool(&map, "locality_weighted", false, diag);
    let hash_on = match map.optional("hash_on") {
        Some(n) => hash_rules(&n, diag),
        None => Some(Vec::new()),
    };
    if misplaced {
        return None;
    }
    Some(Balancing {
        policy: policy?,
        panic_threshold: panic_threshold?,
        overprovisioning_factor: overprovisioning_factor?,
        locality_weighted: locality_weighted?,
        hash_on: hash_on?,
    })
}

fn policy(kind: Kind, map: &Map<'_>, diag: &mut Diagnostics) -> Option<LbPolicy> {
    match kind {
        Kind::RoundRobin => Some(LbPolicy::RoundRobin),
        Kind::Random => Some(LbPolicy::Random),
        Kind::LeastRequest => {
            let choice_count = match map.optional("choice_count") {
                Some(n) => n
                    .int_in(diag, "a choice count", 2..=MAX_U32)
                    .and_then(|v| u32::try_from(v).ok()),
                None => Some(LbPolicy::DEFAULT_CHOICE_COUNT),
            };
            let active_request_bias = match map.optional("active_request_bias") {
                Some(n) => non_negative(&n, diag),
                None => Some(LbPolicy::DEFAULT_ACTIVE_REQUEST_BIAS),
            };
            Some(LbPolicy::LeastRequest {
                choice_count: choice_count?,
                active_request_bias: active_request_bias?,
            })
        }
        Kind::RingHash => {
            let size = |key: &str, diag: &mut Diagnostics, default: u64| match map.optional(key) {
                Some(n) => n
                    .int_in(diag, "a ring size", 1..=LbPolicy::MAX_RING_SIZE as i64)
                    .and_then(|v| u64::try_from(v).ok()),
                None => Some(default),
            };
            let min = size("min_ring_size", diag, LbPolicy::DEFAULT_MIN_RING_SIZE)?;
            let max = size("max_ring_size", diag, LbPolicy::MAX_RING_SIZE)?;
            if min > max {
                map.error(
                    diag,
                    format!("min_ring_size ({min}) is greater than max_ring_size ({max})"),
                );
                return None;
            }
            Some(LbPolicy::RingHash {
                min_ring_size: min,
                max_ring_size: max,
            })
        }
        Kind::Maglev => {
            let table_size = match map.optional("table_size") {
                Some(n) => {
                    let size = n
                        .int_in(diag, "a table size", 2..=LbPolicy::MAX_TABLE_SIZE as i64)
                        .and_then(|v| u64::try_from(v).ok())?;
                    if !super::balance::is_prime(size) {
                        n.error(diag, format!("table_size {size} is not a prime number"));
                        return None;
                    }
                    size
                }
                None => LbPolicy::DEFAULT_TABLE_SIZE,
            };
            Some(LbPolicy::Maglev { table_size })
        }
    }
}

/// A percentage from 0 to 100: `50`, `12.5` or `"50%"`.
fn percent(node: &Node<'_>, diag: &mut Diagnostics) -> Option<f64> {
    let value = match (node.peek_number(), node.peek_str()) {
        (Some(v), _) => Some(v),
        (None, Some(text)) => text
            .strip_suffix('%')
            .and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite()),
        (None, None) => None,
    };
    match value {
        Some(v) if (0.0..=100.0).contains(&v) => Some(v),
        Some(v) => {
            node.error(
                diag,
                format!("expected a percentage from 0 to 100, found {v}"),
            );
            None
        }
        None => {
            node.wrong_type(diag, "a percentage such as `50%` or `50`");
            None
        }
    }
}

fn non_negative(node: &Node<'_>, diag: &mut Diagnostics) -> Option<f64> {
    match node.peek_number() {
        Some(v) if v >= 0.0 => Some(v),
        Some(v) => {
            node.error(diag, format!("expected a number of at least 0, found {v}"));
            None
        }
        None => {
            node.wrong_type(diag, "a number such as `1.0`");
            None
        }
    }
}

/// A `hash_on` list (cluster or route): at least one rule.
pub(super) fn hash_rules(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<HashRule>> {
    non_empty_list(node, diag, "hash rule", hash_rule)
}

/// `source_ip`, or a mapping with one of `header`, `cookie`, `source_ip`, `query`, and
/// `terminal`.
fn hash_rule(node: &Node<'_>, diag: &mut Diagnostics) -> Option<HashRule> {
    if let Some(text) = node.peek_str() {
        if text == "source_ip" {
            return Some(HashRule {
                source: HashSource::SourceIp,
                terminal: false,
            });
        }
        node.error(
            diag,
            format!(
                "{text:?}: a hash rule is `source_ip` or a mapping such as `{{ header: x-user }}`"
            ),
        );
        return None;
    }
    let map = node.map(diag, HASH_KEYS)?;
    let terminal = optional_bool(&map, "terminal", false, diag);
    let (key, value) = exactly_one(
        (node, &map),
        (HASH_SOURCES, HASH_KEYS),
        diag,
        "a hash rule has one of `header`, `cookie`, `source_ip` or `query`",
    )?;
    let source = match key {
        "header" => value.str(diag).and_then(|name| {
            let lower = name.to_ascii_lowercase();
            if lower.is_empty() || !lower.bytes().all(token_byte) {
                value.error(diag, format!("{name:?} is not a header name"));
                return None;
            }
            Some(HashSource::Header(lower))
        }),
        "cookie" => cookie(&value, diag),
        "source_ip" => match value.peek_bool() {
            Some(true) => Some(HashSource::SourceIp),
            Some(false) => {
                value.error(diag, "`source_ip: false` hashes nothing; remove the rule");
                None
            }
            None => {
                value.wrong_type(diag, "true");
                None
            }
        },
        _ => value.str(diag).and_then(|name| {
            if name.is_empty() {
                value.error(diag, "a query parameter's name cannot be empty");
                return None;
            }
            Some(HashSource::Query(name.to_owned()))
        }),
    };
    Some(HashRule {
        source: source?,
        terminal: terminal?,
    })
}

/// `name`, or `{ name, ttl, path }`.
fn cookie(node: &Node<'_>, diag: &mut Diagnostics) -> Option<HashSource> {
    let (name_node, ttl, path) = if node.peek_str().is_some() {
        (node.clone(), Some(None), Some(None))
    } else {
        let map = node.map(diag, COOKIE_KEYS)?;
        let ttl = match map.optional("ttl") {
            Some(n) => zero_or_more(&n, diag).map(Some),
            None => Some(None),
        };
        let path = match map.optional("path") {
            Some(n) => n.str(diag).and_then(|p| {
                if !p.starts_with('/') || !p.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
                    n.error(
                        diag,
                        format!("{p:?}: a cookie path starts with `/` and has no spaces or `;`"),
                    );
                    return None;
                }
                Some(Some(p.to_owned()))
            }),
            None => Some(None),
        };
        (map.field(diag, "name")?, ttl, path)
    };
    let name = name_node.str(diag)?;
    if name.is_empty() || !name.bytes().all(token_byte) {
        name_node.error(diag, format!("{name:?} is not a cookie name"));
        return None;
    }
    Some(HashSource::Cookie {
        name: name.to_owned(),
        ttl: ttl?,
        path: path?,
    })
}

/// A duration that may be zero (`0s`).
fn zero_or_more(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Duration> {
    let text = node.scalar_text(diag, "a duration such as `2s`")?;
    match parse_duration(&text) {
        Ok(d) => Some(d),
        Err(message) => {
            node.error(diag, message);
            None
        }
    }
}

fn optional_zero_or_more(map: &Map<'_>, key: &str, diag: &mut Diagnostics) -> Option<Duration> {
    match map.optional(key) {
        Some(n) => zero_or_more(&n, diag),
        None => Some(Duration::ZERO),
    }
}

fn optional_positive(map: &Map<'_>, key: &str, diag: &mut Diagnostics) -> Option<Option<Duration>> {
    match map.optional(key) {
        Some(n) => duration(&n, diag).map(Some),
        None => Some(None),
    }
}

fn count(
    map: &Map<'_>,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
    default: u32,
    diag: &mut Diagnostics,
) -> Option<u32> {
    match map.optional(key) {
        Some(n) => n
            .int_in(diag, "a count", range)
            .and_then(|v| u32::try_from(v).ok()),
        None => Some(default),
    }
}

/// A cluster's `health_check`.
pub(super) fn health_check(node: &Node<'_>, diag: &mut Diagnostics) -> Option<HealthCheck> {
    let map = node.map(diag, HEALTH_KEYS)?;
    let kind = exactly_one(
        (node, &map),
        (&["http", "tcp"], HEALTH_KEYS),
        diag,
        "a health check has one of `http` or `tcp`",
    )
    .and_then(|(key, n)| match key {
        "http" => http_check(&n, diag).map(HealthCheckKind::Http),
        _ => tcp_check(&n, diag).map(HealthCheckKind::Tcp),
    });
    let interval = map.field(diag, "interval").and_then(|n| duration(&n, diag));
    let timeout = map.field(diag, "timeout").and_then(|n| duration(&n, diag));
    let healthy_threshold = count(
        &map,
        "healthy_threshold",
        1..=MAX_U32,
        HealthCheck::DEFAULT_HEALTHY_THRESHOLD,
        diag,
    );
    let unhealthy_threshold = count(
        &map,
        "unhealthy_threshold",
        1..=MAX_U32,
        HealthCheck::DEFAULT_UNHEALTHY_THRESHOLD,
        diag,
    );
    let interval_jitter = optional_zero_or_more(&map, "interval_jitter", diag);
    let interval_jitter_percent = count(&map, "interval_jitter_percent", 0..=100, 0, diag);
    let initial_jitter = optional_zero_or_more(&map, "initial_jitter", diag);
    let no_traffic_interval = optional_positive(&map, "no_traffic_interval", diag);
    let no_traffic_healthy_interval = optional_positive(&map, "no_traffic_healthy_interval", diag);
    let unhealthy_interval = optional_positive(&map, "unhealthy_interval", diag);
    let unhealthy_edge_interval = optional_positive(&map, "unhealthy_edge_interval", diag);
    let healthy_edge_interval = optional_positive(&map, "healthy_edge_interval", diag);
    let always_log_failures = optional_bool(&map, "always_log_failures", false, diag);
    let reuse_connection = optional_bool(&map, "reuse_connection", true, diag);
    Some(HealthCheck {
        timeout: timeout?,
        interval: interval?,
        interval_jitter: interval_jitter?,
        interval_jitter_percent: interval_jitter_percent?,
        initial_jitter: initial_jitter?,
        unhealthy_threshold: unhealthy_threshold?,
        healthy_threshold: healthy_threshold?,
        no_traffic_interval: no_traffic_interval?
            .unwrap_or(HealthCheck::DEFAULT_NO_TRAFFIC_INTERVAL),
        no_traffic_healthy_interval: no_traffic_healthy_interval?,
        unhealthy_interval: unhealthy_interval?,
        unhealthy_edge_interval: unhealthy_edge_interval?,
        healthy_edge_interval: healthy_edge_interval?,
        always_log_failures: always_log_failures?,
        reuse_connection: reuse_connection?,
        kind: kind?,
    })
}

fn http_check(node: &Node<'_>, diag: &mut Diagnostics) -> Option<HttpCheck> {
    let map = node.map(diag, HTTP_KEYS)?;
    let path = map.field(diag, "path").and_then(|n| {
        let p = n.str(diag)?;
        let ok = check_path(p);
        if let Err(message) = &ok {
            n.error(diag, message.clone());
        }
        ok.ok().map(|()| p.to_owned())
    });
    let host = match map.optional("host") {
        Some(n) => n.str(diag).and_then(|h| match check_host(h) {
            Ok(()) => Some(Some(h.to_owned())),
            Err(message) => {
                n.error(diag, message);
                None
            }
        }),
        None => Some(None),
    };
    let method = match map.optional("method") {
        Some(n) => n.str(diag).and_then(|m| match check_method(m) {
            Ok(()) => Some(m.to_owned()),
            Err(message) => {
                n.error(diag, message);
                None
            }
        }),
        None => Some("GET".to_owned()),
    };
    let expected_statuses = match map.optional("expected_statuses") {
        Some(n) => non_empty_list(&n, diag, "status", status_range),
        None => Some(HttpCheck::DEFAULT_EXPECTED_STATUSES.to_vec()),
    };
    let retriable_statuses = match map.optional("retriable_statuses") {
        Some(n) => non_empty_list(&n, diag, "status", status_range),
        None => Some(Vec::new()),
    };
    let request_headers = match map.optional("headers") {
        Some(n) => probe_headers(&n, diag),
        None => Some(Vec::new()),
    };
    let remove_headers = match map.optional("remove_headers") {
        Some(n) => non_empty_list(&n, diag, "header name", |item, diag| {
            let name = item.str(diag)?;
            match check_field_name(name) {
                Ok(()) => Some(name.to_ascii_lowercase()),
                Err(message) => {
                    item.error(diag, message);
                    None
                }
            }
        }),
        None => Some(Vec::new()),
    };
    Some(HttpCheck {
        host: host?,
        path: path?,
        method: method?,
        expected_statuses: expected_statuses?,
        retriable_statuses: retriable_statuses?,
        request_headers: request_headers?,
        remove_headers: remove_headers?,
    })
}

/// A health check's path: starts with `/`, visible ASCII (Envoy: a header value).
pub(super) fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{path:?}: a health-check path starts with `/` and has no spaces or control characters"
        ));
    }
    Ok(())
}

/// A health check's `Host`: visible ASCII.
pub(super) fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("{host:?} is not a host name"));
    }
    Ok(())
}

/// A health check's method: an upper-case token, not `CONNECT` (Envoy refuses it: a
/// probe has no tunnel to open).
fn check_method(method: &str) -> Result<(), String> {
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| token_byte(b) && !b.is_ascii_lowercase())
    {
        return Err(format!("{method:?} is not an upper-case HTTP method"));
    }
    if method == "CONNECT" {
        return Err("a health check cannot use CONNECT".to_owned());
    }
    Ok(())
}

/// A status (`200`) or an inclusive range (`"200-299"`), as a half-open range.
fn status_range(node: &Node<'_>, diag: &mut Diagnostics) -> Option<(u16, u16)> {
    const EXPECTED: &str = "a status such as `200` or a range such as `200-299`";
    if let Some(code) = node.peek_int() {
        return match u16::try_from(code) {
            Ok(code @ 100..=599) => Some((code, code + 1)),
            _ => {
                node.error(diag, format!("{code} is not an HTTP status (100 to 599)"));
                None
            }
        };
    }
    let Some(text) = node.peek_str() else {
        node.wrong_type(diag, EXPECTED);
        return None;
    };
    let parsed = text.split_once('-').and_then(|(a, b)| {
        let a: u16 = a.trim().parse().ok()?;
        let b: u16 = b.trim().parse().ok()?;
        ((100..=599).contains(&a) && (a..=599).contains(&b)).then_some((a, b + 1))
    });
    if parsed.is_none() {
        node.error(
            diag,
            format!("{text:?}: expected {EXPECTED}, from 100 to 599, start not above end"),
        );
    }
    parsed
}

/// `headers: { name: value }` of a probe.
fn probe_headers(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<(String, String)>> {
    let entries = node.entries(diag)?;
    let mut headers = Vec::with_capacity(entries.len());
    let mut ok = true;
    for (name, key, value) in entries {
        if let Err(message) = check_field_name(name) {
            key.error(diag, message);
            ok = false;
            continue;
        }
        let Some(text) = value.scalar_text(diag, "a header value") else {
            ok = false;
            continue;
        };
        if text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            value.error(diag, "a header value cannot contain CR, LF or NUL");
            ok = false;
            continue;
        }
        headers.push((name.to_ascii_lowercase(), text));
    }
    ok.then_some(headers)
}

fn tcp_check(node: &Node<'_>, diag: &mut Diagnostics) -> Option<TcpCheck> {
    let map = node.map(diag, TCP_KEYS)?;
    let send = match map.optional("send") {
        Some(n) => hex(&n, diag),
        None => Some(Vec::new()),
    };
    let receive = match map.optional("expect") {
        Some(n) => non_empty_list(&n, diag, "payload", hex),
        None => Some(Vec::new()),
    };
    Some(TcpCheck {
        send: send?,
        receive: receive?,
    })
}

/// Hex bytes, quoted: unquoted, `50494e47` is a YAML number and `0000` an integer.
fn hex(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<u8>> {
    if node.peek_str().is_none() {
        node.wrong_type(diag, "hex bytes in quotes, such as \"50494e47\"");
        return None;
    }
    node.parse_str(diag, super::balance::decode_hex)
}

/// A cluster's `outlier_detection`.
pub(super) fn outlier_detection(
    node: &Node<'_>,
    diag: &mut Diagnostics,
) -> Option<OutlierDetection> {
    let map = node.map(diag, OUTLIER_KEYS)?;
    let mut o = OutlierDetection::default();
    let mut ok = true;
    for key in OUTLIER_COUNTS.iter().chain(OUTLIER_PERCENTS) {
        let Some(n) = map.optional(key) else { continue };
        let (what, min, max) = if OUTLIER_PERCENTS.contains(key) {
            ("a percentage", 0, 100)
        } else if key.starts_with("consecutive_") {
            ("a count", 1, MAX_U32)
        } else {
            ("a count", 0, MAX_U32)
        };
        let Some(value) = n
            .int_in(diag, what, min..=max)
            .and_then(|v| u32::try_from(v).ok())
        else {
            ok = false;
            continue;
        };
        if let Some(slot) = outlier_count(&mut o, key) {
            *slot = value;
        }
    }
    let mut positive = |key: &str, slot: &mut Duration, diag: &mut Diagnostics| {
        if let Some(n) = map.optional(key) {
            match duration(&n, diag) {
                Some(d) => *slot = d,
                None => ok = false,
            }
        }
    };
    positive("interval", &mut o.interval, diag);
    positive("base_ejection_time", &mut o.base_ejection_time, diag);
    let explicit_max = map.has("max_ejection_time");
    positive("max_ejection_time", &mut o.max_ejection_time, diag);
    match optional_zero_or_more(&map, "max_ejection_time_jitter", diag) {
        Some(d) => o.max_ejection_time_jitter = d,
        None => ok = false,
    }
    for (key, default, slot) in [
        (
            "split_external_local_origin_errors",
            false,
            &mut o.split_external_local_origin_errors,
        ),
        (
            "successful_active_health_check_uneject_host",
            true,
            &mut o.successful_active_health_check_uneject_host,
        ),
        ("always_eject_one_host", false, &mut o.always_eject_one_host),
    ] {
        match optional_bool(&map, key, default, diag) {
            Some(v) => *slot = v,
            None => ok = false,
        }
    }
    if let Err(message) = finish_outlier(&mut o, explicit_max) {
        match map.optional("max_ejection_time") {
            Some(n) => n.error(diag, message),
            None => map.error(diag, message),
        }
        ok = false;
    }
    ok.then_some(o)
}

/// The `u32` field of an outlier detection named `key` (shared with the Envoy mapping,
/// whose field names are the same).
pub(super) fn outlier_count<'o>(o: &'o mut OutlierDetection, key: &str) -> Option<&'o mut u32> {
    Some(match key {
        "consecutive_5xx" => &mut o.consecutive_5xx,
        "consecutive_gateway_failure" => &mut o.consecutive_gateway_failure,
        "consecutive_local_origin_failure" => &mut o.consecutive_local_origin_failure,
        "success_rate_minimum_hosts" => &mut o.success_rate_minimum_hosts,
        "success_rate_request_volume" => &mut o.success_rate_request_volume,
        "success_rate_stdev_factor" => &mut o.success_rate_stdev_factor,
        "failure_percentage_minimum_hosts" => &mut o.failure_percentage_minimum_hosts,
        "failure_percentage_request_volume" => &mut o.failure_percentage_request_volume,
        "max_ejection_percent" => &mut o.max_ejection_percent,
        "enforcing_consecutive_5xx" => &mut o.enforcing_consecutive_5xx,
        "enforcing_consecutive_gateway_failure" => &mut o.enforcing_consecutive_gateway_failure,
        "enforcing_consecutive_local_origin_failure" => {
            &mut o.enforcing_consecutive_local_origin_failure
        }
        "enforcing_success_rate" => &mut o.enforcing_success_rate,
        "enforcing_local_origin_success_rate" => &mut o.enforcing_local_origin_success_rate,
        "failure_percentage_threshold" => &mut o.failure_percentage_threshold,
        "enforcing_failure_percentage" => &mut o.enforcing_failure_percentage,
        "enforcing_failure_percentage_local_origin" => {
            &mut o.enforcing_failure_percentage_local_origin
        }
        _ => return None,
    })
}

/// Envoy's rule for `max_ejection_time`: when not given, the larger of its default and
/// `base_ejection_time`; when given, not below `base_ejection_time`.
pub(super) fn finish_outlier(o: &mut OutlierDetection, explicit_max: bool) -> Result<(), String> {
    if !explicit_max {
        o.max_ejection_time = o.max_ejection_time.max(o.base_ejection_time);
        return Ok(());
    }
    if o.max_ejection_time < o.base_ejection_time {
        return Err(format!(
            "max_ejection_time ({:?}) cannot be smaller than base_ejection_time ({:?})",
            o.max_ejection_time, o.base_ejection_time
        ));
    }
    Ok(())
}

/// An endpoint's `locality` text.
pub(super) fn locality(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Locality> {
    node.parse_str(diag, parse_locality)
}

/// An endpoint's `health`.
pub(super) fn declared_health(node: &Node<'_>, diag: &mut Diagnostics) -> Option<DeclaredHealth> {
    choice(
        node,
        diag,
        &[
            ("healthy", DeclaredHealth::Healthy),
            ("unhealthy", DeclaredHealth::Unhealthy),
            ("draining", DeclaredHealth::Draining),
            ("degraded", DeclaredHealth::Degraded),
        ],
    )
}

/// Gives every cluster route without `hash_on` of its own its cluster's (the clusters
/// are all known by now; a route naming an unknown one has its error already).
pub(super) fn inherit_hash_policies(listeners: &mut [Listener], clusters: &[Cluster]) {
    for listener in listeners {
        let routes = listener.routes.iter_mut().chain(
            listener
                .virtual_hosts
                .iter_mut()
                .flat_map(|v| v.routes.iter_mut()),
        );
        for route in routes {
            let RouteAction::Cluster(name) = &route.action else {
                continue;
            };
            if !route.hash_policy.is_empty() {
                continue;
            }
            if let Some(cluster) = clusters.iter().find(|c| &c.name == name) {
                route.hash_policy.clone_from(&cluster.balancing.hash_on);
            }
        }
    }
}

#[cfg(test)]
#[path = "decode_balance/tests.rs"]
mod tests;
