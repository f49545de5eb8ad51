//! Envoy's `RetryPolicy` (on a route action or its virtual host) and `HedgePolicy`
//! onto `config::resilience::RetryPolicy`, and the load-time warning about routes that
//! may repeat a non-idempotent request.
//!
//! Design: Envoy's meaning is kept, so a retry repeats any method
//! (`RetryMethods::Any`); routes whose conditions can fire once the request was written
//! are named in one warning each at load ([`unsafe_retry_warnings`]), since that is
//! where Envoy and ringway's native format differ. `retry_on` names outside Envoy's
//! list are refused with the name (Envoy would ignore them silently).
//! `retry_host_predicate` takes only `previous_hosts` (`RetryPolicy::other_host`);
//! `retry_priority`, `retry_options_predicates`, `refresh_cluster_on_retry` and the
//! typed `retry_policy_typed_config` are refused by name. Zero `per_try_timeout` and
//! `per_try_idle_timeout` mean none, as in Envoy. A `hedge_policy` (the route action's,
//! else its host's) sets `hedge_on_per_try_timeout` on the route's retry policy;
//! without a retry policy it has nothing to act on, as in Envoy.

use std::time::Duration;

use super::cursor::Msg;
use super::schema;
use crate::config::error::Diagnostics;
use crate::config::model::{Listener, Route, RouteAction, RouteMatch};
use crate::config::resilience::{
    Backoff, RateLimitedBackoff, ResetFormat, ResetHeader, RetryMethods, RetryOn, RetryPolicy,
};

/// Envoy's default `rate_limited_retry_back_off.max_interval`.
const RATE_LIMITED_MAX: Duration = Duration::from_secs(300);
/// The name of the only retry host predicate ringway implements.
const PREVIOUS_HOSTS: &str = "envoy.retry_host_predicates.previous_hosts";

/// Conditions that fire only before any byte of the request reached the upstream:
/// the others (a response, a reset or timeout after writing, and `refused-stream`,
/// which on HTTP/1.1 is a reused connection closed after the request was written) may
/// repeat a request the upstream already acted on.
pub(crate) const BEFORE_SENDING: RetryOn = RetryOn(
    RetryOn::CONNECT_FAILURE.0
        | RetryOn::RESET_BEFORE_REQUEST.0
        | RetryOn::HTTP3_POST_CONNECT_FAILURE.0,
);

/// A `RetryPolicy` message.
pub(super) fn retry_policy(p: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<RetryPolicy> {
    p.only(
        diag,
        &[
            "retry_on",
            "num_retries",
            "per_try_timeout",
            "per_try_idle_timeout",
            "retry_host_predicate",
            "host_selection_retry_max_attempts",
            "retriable_status_codes",
            "retry_back_off",
            "rate_limited_retry_back_off",
            "retriable_headers",
            "retriable_request_headers",
        ],
    );
    let mut ok = true;
    let retry_on = match RetryOn::parse_list(p.str("retry_on").unwrap_or_default()) {
        Ok(on) => on,
        Err(name) => {
            let hint =
                crate::config::suggest::did_you_mean(name, RetryOn::NAMES.iter().map(|(_, n)| *n));
            p.error(
                diag,
                "retry_on",
                format!("unknown retry condition {name:?}{hint}"),
            );
            ok = false;
            RetryOn::NONE
        }
    };
    // A UInt32Value: always fits.
    let num_retries = u32::try_from(p.wrapped_uint("num_retries").unwrap_or(1)).unwrap_or(u32::MAX);
    let per_try = |field: &str| p.duration(field).filter(|d| !d.is_zero());
    let mut status_codes = Vec::new();
    let codes_at = p.at("retriable_status_codes");
    for (i, code) in p.uints("retriable_status_codes").into_iter().enumerate() {
        match u16::try_from(code) {
            Ok(code) if (100..=599).contains(&code) => status_codes.push(code),
            _ => {
                let at = codes_at.index(i);
                diag.error(
                    at.pos,
                    &at.path,
                    format!("{code} is not an HTTP status code (100 to 599)"),
                );
                ok = false;
            }
        }
    }
    let mut headers = |field: &str, diag: &mut Diagnostics| {
        let items = p.children(field);
        let decoded: Vec<_> = items
            .iter()
            .filter_map(|h| super::route::header_matcher(h, diag))
            .collect();
        ok &= decoded.len() == items.len();
        decoded
    };
    let response_headers = headers("retriable_headers", diag);
    let request_headers = headers("retriable_request_headers", diag);
    let backoff = match p.child("retry_back_off") {
        Some(b) => backoff(&b, diag),
        None => Some(Backoff::default()),
    };
    let rate_limited = match p.child("rate_limited_retry_back_off") {
        Some(r) => rate_limited(&r, diag).map(Some),
        None => Some(None),
    };
    let other_host = host_predicates(p, diag);
    // Envoy's value counts the re-picks after the first pick (its load balancers make
    // `host_selection_retry_max_attempts + 1` picks); the model counts all of them.
    let attempts = p.int("host_selection_retry_max_attempts");
    let host_selection_attempts = match attempts {
        // Unset (Envoy, too, cannot tell 0 from unset): its default, one re-pick.
        0 => Some(2),
        n => match u32::try_from(n).ok().and_then(|n| n.checked_add(1)) {
            Some(n) => Some(n),
            None => {
                p.error(
                    diag,
                    "host_selection_retry_max_attempts",
                    format!(
                        "expected a number of attempts from 1 to {}, found {n}",
                        u32::MAX - 1
                    ),
                );
                None
            }
        },
    };
    if !ok {
        return None;
    }
    Some(RetryPolicy {
        retry_on,
        num_retries,
        per_try_timeout: per_try("per_try_timeout"),
        per_try_idle_timeout: per_try("per_try_idle_timeout"),
        // Set from the route's or host's `hedge_policy` (`route::virtual_host`).
        hedge_on_per_try_timeout: false,
        status_codes,
        response_headers,
        request_headers,
        backoff: backoff?,
        rate_limited: rate_limited?,
        other_host: other_host?,
        host_selection_attempts: host_selection_attempts?,
        methods: RetryMethods::Any,
        // The route's or host's `per_request_buffer_limit_bytes` replaces it.
        buffer_limit: RetryPolicy::DEFAULT_BUFFER_LIMIT,
    })
}

/// `retry_back_off {base_interval, max_interval}`: base required and above zero; max
/// 10 × base by default and not below base (Envoy's rules).
fn backoff(b: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Backoff> {
    b.only(diag, &["base_interval", "max_interval"]);
    let Some(base) = b.duration("base_interval").filter(|d| !d.is_zero()) else {
        b.error(
            diag,
            "base_interval",
            "retry_back_off needs a `base_interval` above zero",
        );
        return None;
    };
    // Envoy rounds a base below a millisecond up to one.
    let base = base.max(Duration::from_millis(1));
    let max = b
        .duration("max_interval")
        .unwrap_or(base.saturating_mul(10));
    if max < base {
        b.error(
            diag,
            "max_interval",
            format!("max_interval ({max:?}) must be at least base_interval ({base:?})"),
        );
        return None;
    }
    Some(Backoff { base, max })
}

/// `rate_limited_retry_back_off {reset_headers [{name, format}], max_interval}`.
fn rate_limited(r: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<RateLimitedBackoff> {
    r.only(diag, &["reset_headers", "max_interval"]);
    let mut reset_headers = Vec::new();
    let mut ok = true;
    for h in r.children("reset_headers") {
        h.only(diag, &["name", "format"]);
        let name = h.str("name").unwrap_or_default();
        if let Err(message) = crate::config::decode_headers::check_field_name(name) {
            h.error(diag, "name", message);
            ok = false;
            continue;
        }
        let format = match h.enum_name("format").as_deref() {
            None | Some("SECONDS") => ResetFormat::Seconds,
            Some("UNIX_TIMESTAMP") => ResetFormat::UnixTimestamp,
            Some(other) => {
                h.error(diag, "format", format!("unknown format {other}"));
                ok = false;
                continue;
            }
        };
        reset_headers.push(ResetHeader {
            name: name.to_ascii_lowercase(),
            format,
        });
    }
    if reset_headers.is_empty() && ok {
        r.error(
            diag,
            "reset_headers",
            "at least one reset header is required",
        );
        return None;
    }
    let max_interval = r
        .duration("max_interval")
        .filter(|d| !d.is_zero())
        .unwrap_or(RATE_LIMITED_MAX);
    ok.then_some(RateLimitedBackoff {
        reset_headers,
        max_interval,
    })
}

/// `retry_host_predicate`: whether `previous_hosts` is there (the only one ringway
/// implements; any other is refused by its name).
fn host_predicates(p: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<bool> {
    let mut ok = true;
    let mut previous_hosts = false;
    for h in p.children("retry_host_predicate") {
        h.only(diag, &["name", "typed_config"]);
        match h.any("typed_config") {
            Some((type_name, _)) if type_name == schema::PREVIOUS_HOSTS => previous_hosts = true,
            // Other types are refused by the preparation pass (not in the schema).
            Some(_) => ok = false,
            None if h.str("name") == Some(PREVIOUS_HOSTS) => previous_hosts = true,
            None => {
                let name = h.str("name").unwrap_or_default();
                h.error(
                    diag,
                    "name",
                    format!(
                        "retry host predicate {name:?} is not supported (only {PREVIOUS_HOSTS})"
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(previous_hosts)
}

/// `hedge_policy`, checked: `hedge_on_per_try_timeout` is supported; Envoy's
/// `initial_requests` and `additional_request_chance` are not implemented by Envoy
/// either and are refused unless left at their defaults. Returns the hedge flag when the
/// message has a policy.
pub(super) fn hedge_policy(m: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<bool> {
    let h = m.child("hedge_policy")?;
    h.only(
        diag,
        &[
            "initial_requests",
            "additional_request_chance",
            "hedge_on_per_try_timeout",
        ],
    );
    let refuse = |field: &str, diag: &mut Diagnostics| {
        h.error(
            diag,
            field,
            format!("{field} is not supported (Envoy does not implement it either): leave it at its default"),
        );
    };
    if h.wrapped_uint("initial_requests").is_some_and(|n| n != 1) {
        refuse("initial_requests", diag);
    }
    if h.child("additional_request_chance")
        .is_some_and(|c| c.uint("numerator") != 0)
    {
        refuse("additional_request_chance", diag);
    }
    Some(h.bool("hedge_on_per_try_timeout"))
}

/// A route's or host's `hedge_on_per_try_timeout`, when it has a `hedge_policy`
/// (already checked by [`hedge_policy`]).
pub(super) fn hedge_flag(m: &Msg<'_, '_>) -> Option<bool> {
    m.child("hedge_policy")
        .map(|h| h.bool("hedge_on_per_try_timeout"))
}

/// One warning per route whose retry policy may repeat a non-idempotent request after
/// it was sent (Envoy's meaning, which ringway keeps for Envoy configs).
pub(crate) fn unsafe_retry_warnings(listeners: &[Listener]) -> Vec<String> {
    let mut warnings = Vec::new();
    for l in listeners {
        let hosts = l
            .virtual_hosts
            .iter()
            .map(|vh| (Some(vh.name.as_str()), &vh.routes));
        for (host, routes) in std::iter::once((None, &l.routes)).chain(hosts) {
            for r in routes {
                if let Some(conditions) = after_sending(r) {
                    warnings.push(format!(
                        "{}: retry_on {conditions} may retry non-idempotent requests (POST, PATCH, ...) after they were sent, as Envoy does; the native format retries those only before sending unless `retry_non_idempotent: true`",
                        describe(&l.name, host, r),
                    ));
                }
            }
        }
    }
    warnings
}

/// The conditions of the route's policy that can fire once the request was written
/// (comma-separated), when it may repeat any method.
fn after_sending(r: &Route) -> Option<String> {
    let p = r.retry.as_ref()?;
    if p.methods != RetryMethods::Any || p.num_retries == 0 {
        return None;
    }
    if !matches!(r.action, RouteAction::Cluster(_) | RouteAction::Weighted(_)) {
        return None;
    }
    let names: Vec<&str> = RetryOn::NAMES
        .iter()
        .filter(|(bit, _)| p.retry_on.contains(*bit) && !BEFORE_SENDING.contains(*bit))
        .map(|(_, name)| *name)
        .collect();
    (!names.is_empty()).then(|| names.join(","))
}

/// `listener "l", virtual host "vh", route "name"` (or the route's match).
fn describe(listener: &str, host: Option<&str>, r: &Route) -> String {
    let mut text = format!("listener {listener:?}");
    if let Some(host) = host {
        text.push_str(&format!(", virtual host {host:?}"));
    }
    match &r.name {
        Some(name) => text.push_str(&format!(", route {name:?}")),
        None => {
            let (kind, value) = match &r.matcher {
                RouteMatch::Prefix(p) => ("prefix", p),
                RouteMatch::Path(p) => ("path", p),
                RouteMatch::PrefixAnyCase(p) => ("prefix (any case)", p),
                RouteMatch::PathAnyCase(p) => ("path (any case)", p),
                RouteMatch::Regex(p) => ("safe_regex", p),
                RouteMatch::Template(p) => ("path template", p),
            };
            text.push_str(&format!(", route matching {kind} {value:?}"));
        }
    }
    text
}
