//! Envoy's route configuration (`RouteConfiguration`, `VirtualHost`, `Route`) onto
//! ringway's listeners, virtual hosts and routes.
//!
//! Design: each message is read through [`Msg`], which refuses every field not listed
//! in its `only` call; the listed ones map one to one onto the native model, with
//! Envoy's defaults (route `timeout` 15 s, `0` meaning none; redirect code 301).
//! Retry, hedge and mirror policies, stream duration and priority are read by `retry.rs`
//! and `resilience.rs`; a virtual host's retry policy, mirror policies and attempt-count
//! flags apply to its forwarding routes (a route's own retry policy replaces the host's).
//! Values are checked with the same helpers as the native decoder (header names,
//! `%VARIABLE%`s, regexes, paths), so both formats accept the same things.

use std::time::Duration;

use super::cursor::Msg;
use super::listener::HttpFilters;
use super::local_ratelimit;
use super::schema;
use super::DISABLED;
use super::{resilience, retry};
use crate::config::decode_rewrite as rewrites;
use crate::config::error::Diagnostics;
use crate::config::format::{self, Side};
use crate::config::model::AttemptCount;
use crate::config::model::{
    AddOnlyIf, CorsPolicy, DirectResponse, HashRule, HashSource, HeaderAdd, HeaderMatch,
    HeaderMutations, HostRewrite, OriginMatch, PathRewrite, QueryMatch, Redirect, RedirectPath,
    Rewrite, Route, RouteAction, RouteConditions, RouteMatch, ValueMatch, VirtualHost,
};
use crate::config::pattern;
use crate::config::resilience::{Mirror, Priority};
use crate::config::WeightedClusters;

/// A route configuration's virtual hosts, and its own header edits; `filters` says
/// which per-filter configs its hosts and routes may have.
/// `stream_limit`: the connection manager's `max_stream_duration`, for routes without
/// their own.
pub(crate) fn route_config(
    rc: &Msg<'_, '_>,
    clusters: &[String],
    filters: &HttpFilters,
    stream_limit: Option<Duration>,
    diag: &mut Diagnostics,
) -> (Vec<VirtualHost>, HeaderMutations) {
    rc.only(
        diag,
        &[
            "name",
            "virtual_hosts",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "validate_clusters",
            "max_direct_response_body_size_bytes",
            "request_mirror_policies",
        ],
    );
    let mirrors = resilience::mirrors(rc, clusters, diag);
    let max_body = rc
        .wrapped_uint("max_direct_response_body_size_bytes")
        .unwrap_or(4096);
    let headers = mutations(rc, diag);
    let hosts = rc.children("virtual_hosts");
    let names: Vec<Option<&str>> = hosts.iter().map(|vh| vh.str("name")).collect();
    let hosts = hosts
        .iter()
        .enumerate()
        .map(|(i, vh)| {
            let key = local_ratelimit::key(&names, i);
            let context = Context {
                clusters,
                filters,
                max_body,
                stream_limit,
            };
            virtual_host(vh, &key, &context, &mirrors, diag)
        })
        .collect();
    (hosts, headers)
}

/// What a route configuration gives each of its routes.
struct Context<'a> {
    clusters: &'a [String],
    filters: &'a HttpFilters,
    /// `max_direct_response_body_size_bytes`.
    max_body: u64,
    /// The connection manager's `max_stream_duration`.
    stream_limit: Option<Duration>,
}

/// A virtual host; `key` names it in rate-limit bucket ids; `rc_mirrors`: the route
/// configuration's mirror policies.
fn virtual_host(
    vh: &Msg<'_, '_>,
    key: &str,
    context: &Context<'_>,
    rc_mirrors: &[Mirror],
    diag: &mut Diagnostics,
) -> VirtualHost {
    let (clusters, filters) = (context.clusters, context.filters);
    vh.only(
        diag,
        &[
            "name",
            "domains",
            "routes",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "typed_per_filter_config",
            "rate_limits",
            "retry_policy",
            "hedge_policy",
            "request_mirror_policies",
            "include_request_attempt_count",
            "include_attempt_count_in_response",
            "per_request_buffer_limit_bytes",
            "virtual_clusters",
        ],
    );
    // The body size a retrying route holds for replay (a route's own replaces it).
    let host_buffer = vh.wrapped_uint("per_request_buffer_limit_bytes");
    // What the host gives its forwarding routes: its retry policy (a route's own
    // replaces it entirely), its mirror policies (or the route configuration's; a
    // route's own non-empty list wins), and the attempt-count headers.
    let retry = vh
        .child("retry_policy")
        .map(|p| retry::retry_policy(&p, diag));
    let host_hedge = retry::hedge_policy(vh, diag);
    let mirrors = match resilience::mirrors(vh, clusters, diag) {
        own if own.is_empty() => rc_mirrors.to_vec(),
        own => own,
    };
    let attempt_count = AttemptCount {
        request: vh.bool("include_request_attempt_count"),
        response: vh.bool("include_attempt_count_in_response"),
    };
    let domains = vh
        .strings("domains")
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    // The host's jwt_authn and RBAC per-filter configs apply to its routes without
    // their own.
    let auth = super::jwt_authn::per_route(vh, filters.jwt_authn.as_ref(), diag);
    let authorization = super::rbac::per_route(vh, filters.rbac.as_deref(), diag);
    // Its fault filter config replaces the filter's for its routes without their own.
    let fault_filter = filters.fault.as_ref();
    let fault = super::fault::per_route(vh, fault_filter, clusters, diag)
        .unwrap_or_else(|| fault_filter.and_then(|f| f.policy.clone()));
    // Its local_ratelimit config and `rate_limits`, for its routes' policies.
    let limiter = filters.local_ratelimit.as_ref();
    let host_limits = local_ratelimit::HostLimits {
        key: key.to_owned(),
        config: local_ratelimit::per_route(vh, limiter, diag),
        rules: local_ratelimit::rules(vh, limiter, diag),
    };
    let items = vh.children("routes");
    let names: Vec<Option<&str>> = items.iter().map(|r| r.str("name")).collect();
    let mut routes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some((mut r, limits)) = route(item, context, diag) else {
            continue;
        };
        if matches!(r.action, RouteAction::Cluster(_) | RouteAction::Weighted(_)) {
            if r.retry.is_none() {
                match &retry {
                    Some(Some(policy)) => r.retry = Some(policy.clone()),
                    // The host's policy has its errors already.
                    Some(None) => continue,
                    None => {}
                }
            }
            if r.mirrors.is_empty() {
                r.mirrors.clone_from(&mirrors);
            }
            let buffer = item
                .wrapped_uint("per_request_buffer_limit_bytes")
                .or(host_buffer);
            if let (Some(policy), Some(limit)) = (&mut r.retry, buffer) {
                policy.buffer_limit = limit;
            }
            // The route action's hedge policy, else the host's (Envoy's precedence).
            let hedge = item
                .child("route")
                .and_then(|a| retry::hedge_flag(&a))
                .or(host_hedge);
            if let (Some(policy), Some(hedge)) = (&mut r.retry, hedge) {
                policy.hedge_on_per_try_timeout = hedge;
            }
            r.attempt_count = attempt_count;
        }
        // The route's own fault config (even an empty one, which turns faults off),
        // else its host's, else the filter's.
        r.fault = super::fault::per_route(item, fault_filter, clusters, diag)
            .unwrap_or_else(|| fault.clone());
        if r.auth.is_none() {
            r.auth.clone_from(&auth);
        }
        if r.authorization.is_none() {
            r.authorization.clone_from(&authorization);
        }
        let route_key = local_ratelimit::key(&names, i);
        r.rate_limit = local_ratelimit::resolve(limiter, &host_limits, &limits, &route_key);
        routes.push(r);
    }
    VirtualHost {
        observe: virtual_clusters(vh, diag),
        name: vh.str("name").unwrap_or_default().to_owned(),
        domains,
        routes,
        headers: mutations(vh, diag),
        cors: cors_policy(vh, filters.cors.as_deref(), diag),
    }
}

/// A virtual host's `virtual_clusters`: request classes counted under
/// `vhost.<host>.vcluster.<name>.`, the rest under `vcluster.other.` (Envoy's stats).
fn virtual_clusters(
    vh: &Msg<'_, '_>,
    diag: &mut Diagnostics,
) -> crate::config::observability::VhostObservability {
    use crate::config::observability::{VhostObservability, VirtualCluster};
    let mut classes: Vec<VirtualCluster> = Vec::new();
    for vc in vh.children("virtual_clusters") {
        // `pattern` and `method` were v2's (removed from v3): the schema refuses them as
        // unknown fields, by name.
        vc.only(diag, &["name", "headers"]);
        let name = vc.str("name").unwrap_or_default();
        if name.is_empty() || name == "other" {
            vc.error(
                diag,
                "name",
                format!("{name:?} cannot name a virtual cluster (`other` counts the rest)"),
            );
            continue;
        }
        if classes.iter().any(|c| c.name == name) {
            vc.error(diag, "name", format!("duplicate virtual cluster {name:?}"));
            continue;
        }
        let headers = vc
            .children("headers")
            .iter()
            .filter_map(|h| header_matcher(h, diag))
            .collect();
        classes.push(VirtualCluster {
            name: name.to_owned(),
            headers,
        });
    }
    VhostObservability {
        other: !classes.is_empty(),
        virtual_clusters: classes,
    }
}

/// A route, and what it brings to its rate-limit policy (resolved by its host).
fn route(
    r: &Msg<'_, '_>,
    context: &Context<'_>,
    diag: &mut Diagnostics,
) -> Option<(Route, local_ratelimit::RouteLimits)> {
    let (clusters, filters, max_body) = (context.clusters, context.filters, context.max_body);
    r.only(
        diag,
        &[
            "name",
            "match",
            "route",
            "redirect",
            "direct_response",
            "request_headers_to_add",
            "request_headers_to_remove",
            "response_headers_to_add",
            "response_headers_to_remove",
            "metadata",
            "typed_per_filter_config",
            "per_request_buffer_limit_bytes",
            // Read by `tracing::route`.
            "decorator",
            "tracing",
            "stat_prefix",
        ],
    );
    let m = r.child("match");
    let (matcher, conditions) = match &m {
        Some(m) => route_match(m, diag)?,
        None => {
            r.error(diag, "match", "`match` is required");
            return None;
        }
    };
    let mut timeout = Route::DEFAULT_TIMEOUT;
    let mut idle_timeout = None;
    let mut rewrite = Rewrite::default();
    let mut upgrades = None;
    let mut hash_policy = Vec::new();
    let mut retry = None;
    let mut mirrors = Vec::new();
    let mut max_stream_duration = context.stream_limit;
    let mut priority = Priority::Default;
    let limiter = filters.local_ratelimit.as_ref();
    let mut limits = local_ratelimit::RouteLimits {
        config: local_ratelimit::per_route(r, limiter, diag),
        ..Default::default()
    };
    let action = if let Some(a) = r.child("route") {
        a.only(
            diag,
            &[
                "cluster",
                "weighted_clusters",
                "prefix_rewrite",
                "regex_rewrite",
                "host_rewrite_literal",
                "auto_host_rewrite",
                "host_rewrite_header",
                "timeout",
                "idle_timeout",
                "upgrade_configs",
                "cluster_not_found_response_code",
                "rate_limits",
                "include_vh_rate_limits",
                "hash_policy",
                "retry_policy",
                "hedge_policy",
                "request_mirror_policies",
                "max_stream_duration",
                "priority",
            ],
        );
        if let Some(p) = a.child("retry_policy") {
            retry = Some(retry::retry_policy(&p, diag)?);
        }
        let _ = retry::hedge_policy(&a, diag);
        mirrors = resilience::mirrors(&a, clusters, diag);
        if let Some(limit) = resilience::max_stream_duration(&a, diag) {
            max_stream_duration = limit;
        }
        priority = resilience::priority(&a);
        let target = if let Some(w) = a.child("weighted_clusters") {
            RouteAction::Weighted(weighted_clusters(&w, clusters, diag)?)
        } else if let Some(cluster) = a.str("cluster") {
            known_cluster(&a, "cluster", cluster, clusters, diag);
            RouteAction::Cluster(cluster.to_owned())
        } else {
            a.error(
                diag,
                "cluster",
                "a route action needs `cluster` or `weighted_clusters` (cluster_header is not supported yet)",
            );
            return None;
        };
        if let Some(t) = a.duration("timeout") {
            timeout = if t.is_zero() { DISABLED } else { t };
        }
        idle_timeout = a
            .duration("idle_timeout")
            .map(|t| if t.is_zero() { DISABLED } else { t });
        rewrite.path = path_rewrite(&a, diag);
        rewrite.host = if let Some(host) = a.str("host_rewrite_literal") {
            match rewrites::check_authority(host) {
                Ok(host) => Some(HostRewrite::Literal(host)),
                Err(message) => {
                    a.error(diag, "host_rewrite_literal", message);
                    None
                }
            }
        } else if a.wrapped_bool("auto_host_rewrite") == Some(true) {
            Some(HostRewrite::Endpoint)
        } else if let Some(name) = a.str("host_rewrite_header") {
            if let Err(message) = crate::config::decode_headers::check_field_name(name) {
                a.error(diag, "host_rewrite_header", message);
            }
            Some(HostRewrite::Header(name.to_ascii_lowercase()))
        } else {
            None
        };
        if a.has("upgrade_configs") {
            upgrades = Some(upgrade_types(&a, diag));
        }
        hash_policy = hash_rules(&a, diag);
        limits.rules = local_ratelimit::rules(&a, limiter, diag);
        limits.include_vh = a.wrapped_bool("include_vh_rate_limits") == Some(true);
        if let RouteAction::Cluster(cluster) = &target {
            limits.cluster = Some(cluster.clone());
        }
        target
    } else if let Some(rd) = r.child("redirect") {
        RouteAction::Redirect(redirect(&rd, diag)?)
    } else if let Some(d) = r.child("direct_response") {
        RouteAction::DirectResponse(direct_response(&d, max_body, diag)?)
    } else {
        r.error(
            diag,
            "route",
            "a route needs one of `route`, `redirect` or `direct_response`",
        );
        return None;
    };
    let route = Route {
        // Envoy's `stat_prefix`: stats under `vhost.<host>.route.<prefix>.` (empty: none).
        observe: crate::config::observability::RouteObservability {
            tracing: super::tracing::route(r, diag),
            stat_prefix: r
                .str("stat_prefix")
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
        },
        retry,
        mirrors,
        fault: None,
        max_stream_duration,
        priority,
        // Set by `virtual_host` (Envoy's are virtual-host fields).
        attempt_count: Default::default(),
        auth: super::jwt_authn::per_route(r, filters.jwt_authn.as_ref(), diag),
        authorization: super::rbac::per_route(r, filters.rbac.as_deref(), diag),
        // Resolved by `virtual_host`, which knows the host's config and rules.
        rate_limit: None,
        hash_policy,
        name: r.str("name").map(str::to_owned),
        matcher,
        action,
        timeout,
        conditions,
        headers: mutations(r, diag),
        max_request_body: None,
        rewrite,
        cors: cors_policy(r, filters.cors.as_deref(), diag),
        upgrades,
        idle_timeout,
    };
    Some((route, limits))
}

/// A route action's `hash_policy`: header, cookie, source IP and query parameter
/// rules. `connection_properties` with `source_ip: false` adds nothing (Envoy builds no
/// hash method for it); `filter_state`, a header's `regex_rewrite` and a cookie's
/// `attributes` are refused by name.
fn hash_rules(a: &Msg<'_, '_>, diag: &mut Diagnostics) -> Vec<HashRule> {
    let mut rules = Vec::new();
    for h in a.children("hash_policy") {
        h.only(
            diag,
            &[
                "header",
                "cookie",
                "connection_properties",
                "query_parameter",
                "filter_state",
                "terminal",
            ],
        );
        let source = if let Some(header) = h.child("header") {
            header.only(diag, &["header_name"]);
            // Non-empty and a header name by Envoy's validation rules.
            let name = header
                .str("header_name")
                .unwrap_or_default()
                .to_ascii_lowercase();
            match name.as_str() {
                // HTTP/1.1 carries the authority in Host.
                ":authority" => HashSource::Header("host".to_owned()),
                n if n.starts_with(':') => {
                    header.error(
                        diag,
                        "header_name",
                        format!(
                            "hashing on the pseudo-header {n} is not supported yet (:authority is)"
                        ),
                    );
                    continue;
                }
                _ => HashSource::Header(name),
            }
        } else if let Some(cookie) = h.child("cookie") {
            cookie.only(diag, &["name", "ttl", "path"]);
            // The name and path go into a `Set-Cookie` line as they are.
            for field in ["name", "path"] {
                let text = cookie.str(field).unwrap_or_default();
                if text.bytes().any(|b| b.is_ascii_control() || b == b';') {
                    cookie.error(
                        diag,
                        field,
                        format!("a cookie {field} cannot hold control characters or `;`"),
                    );
                }
            }
            HashSource::Cookie {
                name: cookie.str("name").unwrap_or_default().to_owned(),
                ttl: cookie.duration("ttl"),
                path: cookie.str("path").map(str::to_owned),
            }
        } else if let Some(props) = h.child("connection_properties") {
            props.only(diag, &["source_ip"]);
            if !props.bool("source_ip") {
                continue;
            }
            HashSource::SourceIp
        } else if let Some(query) = h.child("query_parameter") {
            query.only(diag, &["name"]);
            HashSource::Query(query.str("name").unwrap_or_default().to_owned())
        } else {
            if h.has("filter_state") {
                h.error(
                    diag,
                    "filter_state",
                    "hash_policy filter_state is not supported yet (ringway's filters keep no shared state)",
                );
            }
            continue;
        };
        rules.push(HashRule {
            source,
            terminal: h.bool("terminal"),
        });
    }
    rules
}

/// The upgrade types of `upgrade_configs` that are enabled (lower case).
pub(crate) fn upgrade_types(m: &Msg<'_, '_>, diag: &mut Diagnostics) -> Vec<String> {
    let mut types = Vec::new();
    for u in m.children("upgrade_configs") {
        u.only(diag, &["upgrade_type", "enabled"]);
        let kind = u
            .str("upgrade_type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if kind == "connect" {
            u.error(diag, "upgrade_type", "CONNECT is not supported yet");
            continue;
        }
        if u.wrapped_bool("enabled") != Some(false) {
            types.push(kind);
        }
    }
    types
}

pub(crate) fn route_match(
    m: &Msg<'_, '_>,
    diag: &mut Diagnostics,
) -> Option<(RouteMatch, RouteConditions)> {
    m.only(
        diag,
        &[
            "prefix",
            "path",
            "safe_regex",
            "case_sensitive",
            "headers",
            "query_parameters",
            "tls_context",
        ],
    );
    // `tls_context`: whether the client presented (and the listener validated) a
    // certificate; ringway only ever sees verified certificates.
    let client_certificate = m.child("tls_context").map(|t| {
        t.only(diag, &["presented", "validated"]);
        crate::config::ClientCertMatch {
            presented: t.wrapped_bool("presented"),
            validated: t.wrapped_bool("validated"),
            subject_alt_names: Vec::new(),
        }
    });
    // Envoy ignores it for `safe_regex` (a pattern says its own case).
    let any_case = m.wrapped_bool("case_sensitive") == Some(false);
    let matcher = if m.has("prefix") || m.str("path").is_none() && !m.has("safe_regex") {
        // An empty `prefix` (or none of the three) matches every path.
        let prefix = m.str("prefix").unwrap_or("/");
        path_text(m, "prefix", prefix, diag)?;
        if any_case {
            RouteMatch::PrefixAnyCase(prefix.to_owned())
        } else {
            RouteMatch::Prefix(prefix.to_owned())
        }
    } else if let Some(path) = m.str("path") {
        path_text(m, "path", path, diag)?;
        if any_case {
            RouteMatch::PathAnyCase(path.to_owned())
        } else {
            RouteMatch::Path(path.to_owned())
        }
    } else {
        let re = m.child("safe_regex")?;
        RouteMatch::Regex(regex(&re, diag)?)
    };
    let headers = m
        .children("headers")
        .iter()
        .filter_map(|h| header_matcher(h, diag))
        .collect();
    let query = m
        .children("query_parameters")
        .iter()
        .filter_map(|q| query_matcher(q, diag))
        .collect();
    Some((
        matcher,
        RouteConditions {
            hosts: Vec::new(),
            methods: Vec::new(),
            headers,
            query,
            client_certificate,
        },
    ))
}

fn path_text(m: &Msg<'_, '_>, field: &str, text: &str, diag: &mut Diagnostics) -> Option<()> {
    if !text.starts_with('/') {
        m.error(diag, field, format!("{text:?} must start with `/`"));
        return None;
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '?' | '#'))
    {
        m.error(
            diag,
            field,
            format!("{text:?} contains {bad:?}, which cannot appear in a request path"),
        );
        return None;
    }
    Some(())
}

/// A `RegexMatcher` (`{regex: ...}`), checked to compile.
fn regex(re: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<String> {
    re.only(diag, &["regex"]);
    let text = re.str("regex").unwrap_or_default();
    match pattern::anchored_regex(text) {
        Ok(_) => Some(text.to_owned()),
        Err(message) => {
            re.error(diag, "regex", message);
            None
        }
    }
}

fn escaped(text: &str) -> String {
    regex::escape(text)
}

/// A `StringMatcher` as a value test.
fn string_matcher(s: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<ValueMatch> {
    s.only(
        diag,
        &[
            "exact",
            "prefix",
            "suffix",
            "contains",
            "safe_regex",
            "ignore_case",
        ],
    );
    let ignore_case = s.bool("ignore_case");
    let case = if ignore_case { "(?i)" } else { "" };
    let text = |name: &str| s.str(name).unwrap_or_default().to_owned();
    Some(if s.has("safe_regex") {
        let re = regex(&s.child("safe_regex")?, diag)?;
        ValueMatch::Regex(format!("{case}{re}"))
    } else if s.has("prefix") {
        if ignore_case {
            ValueMatch::Regex(format!("(?i){}.*", escaped(&text("prefix"))))
        } else {
            ValueMatch::Prefix(text("prefix"))
        }
    } else if s.has("suffix") {
        ValueMatch::Regex(format!("{case}.*{}", escaped(&text("suffix"))))
    } else if s.has("contains") {
        ValueMatch::Regex(format!("{case}.*{}.*", escaped(&text("contains"))))
    } else if ignore_case {
        ValueMatch::Regex(format!("(?i){}", escaped(&text("exact"))))
    } else {
        ValueMatch::Exact(text("exact"))
    })
}

pub(crate) fn header_matcher(h: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<HeaderMatch> {
    h.only(
        diag,
        &[
            "name",
            "string_match",
            "present_match",
            "exact_match",
            "safe_regex_match",
            "prefix_match",
            "suffix_match",
            "contains_match",
            "range_match",
            "invert_match",
            "treat_missing_header_as_empty",
        ],
    );
    let name = h.str("name").unwrap_or_default().to_ascii_lowercase();
    let invert = h.bool("invert_match");
    let text = |field: &str| h.str(field).unwrap_or_default().to_owned();
    let value = if let Some(s) = h.child("string_match") {
        string_matcher(&s, diag)?
    } else if h.has("present_match") {
        ValueMatch::Present(h.bool("present_match"))
    } else if h.has("exact_match") {
        ValueMatch::Exact(text("exact_match"))
    } else if h.has("prefix_match") {
        ValueMatch::Prefix(text("prefix_match"))
    } else if h.has("suffix_match") {
        ValueMatch::Regex(format!(".*{}", escaped(&text("suffix_match"))))
    } else if h.has("contains_match") {
        ValueMatch::Regex(format!(".*{}.*", escaped(&text("contains_match"))))
    } else if let Some(re) = h.child("safe_regex_match") {
        ValueMatch::Regex(regex(&re, diag)?)
    } else if let Some(range) = h.child("range_match") {
        // `Int64Range`: `[start, end)`.
        range.only(diag, &["start", "end"]);
        ValueMatch::Range(range.int("start"), range.int("end"))
    } else {
        // No matcher: the header must be present (Envoy's rule).
        ValueMatch::Present(true)
    };
    // Envoy's order: an absent header fails every test but presence, unless it is
    // read as empty; then the test's result is inverted.
    let value = match (invert, value) {
        (false, v) => v,
        (true, ValueMatch::Present(p)) => ValueMatch::Present(!p),
        (true, v) => ValueMatch::Inverted(Box::new(v)),
    };
    let value = match value {
        v @ ValueMatch::Present(_) => v,
        v if h.bool("treat_missing_header_as_empty") => ValueMatch::MissingAsEmpty(Box::new(v)),
        v => v,
    };
    Some(HeaderMatch { name, value })
}

fn query_matcher(q: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<QueryMatch> {
    q.only(diag, &["name", "string_match", "present_match"]);
    let name = q.str("name").unwrap_or_default().to_owned();
    let value = if let Some(s) = q.child("string_match") {
        match string_matcher(&s, diag)? {
            exact @ ValueMatch::Exact(_) => exact,
            _ => {
                q.error(
                    diag,
                    "string_match",
                    "query parameters can be matched by `exact` or `present_match` only, for now",
                );
                return None;
            }
        }
    } else {
        ValueMatch::Present(true)
    };
    Some(QueryMatch { name, value })
}

fn path_rewrite(a: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<PathRewrite> {
    if a.has("prefix_rewrite") && a.has("regex_rewrite") {
        a.error(
            diag,
            "regex_rewrite",
            "Cannot specify both prefix_rewrite and regex_rewrite",
        );
        return None;
    }
    if let Some(prefix) = a.str("prefix_rewrite") {
        if let Err(message) = rewrites::check_uri_path(prefix, true) {
            a.error(diag, "prefix_rewrite", message);
            return None;
        }
        return Some(PathRewrite::Prefix(prefix.to_owned()));
    }
    let rr = a.child("regex_rewrite")?;
    rr.only(diag, &["pattern", "substitution"]);
    let pattern = regex(&rr.child("pattern")?, diag)?;
    let substitution = rr.str("substitution").unwrap_or_default().to_owned();
    let groups = pattern::unanchored_regex(&pattern).map_or(0, |re| re.captures_len());
    if let Err(message) = rewrites::check_substitution(&substitution, groups) {
        rr.error(diag, "substitution", message);
        return None;
    }
    Some(PathRewrite::Regex {
        pattern,
        substitution,
    })
}

fn redirect(rd: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Redirect> {
    rd.only(diag, rewrites::REDIRECT_KEYS);
    let status = match rd.enum_name("response_code").as_deref() {
        None | Some("MOVED_PERMANENTLY") => 301,
        Some("FOUND") => 302,
        Some("SEE_OTHER") => 303,
        Some("TEMPORARY_REDIRECT") => 307,
        Some("PERMANENT_REDIRECT") => 308,
        Some(other) => {
            rd.error(
                diag,
                "response_code",
                format!("unknown redirect code {other}"),
            );
            return None;
        }
    };
    let scheme = if rd.bool("https_redirect") {
        Some("https".to_owned())
    } else if let Some(text) = rd.str("scheme_redirect") {
        match rewrites::check_scheme(text) {
            Ok(scheme) => Some(scheme),
            Err(message) => {
                rd.error(diag, "scheme_redirect", message);
                return None;
            }
        }
    } else {
        None
    };
    let host = match rd.str("host_redirect").map(rewrites::check_authority) {
        Some(Ok(host)) => Some(host),
        Some(Err(message)) => {
            rd.error(diag, "host_redirect", message);
            return None;
        }
        None => None,
    };
    let port = match rd.uint("port_redirect") {
        0 => None,
        p => match u16::try_from(p) {
            Ok(p) => Some(p),
            Err(_) => {
                rd.error(diag, "port_redirect", format!("{p} is not a port"));
                return None;
            }
        },
    };
    let path = if let Some(p) = rd.str("path_redirect") {
        if let Err(message) = rewrites::check_uri_path(p, false) {
            rd.error(diag, "path_redirect", message);
            return None;
        }
        Some(RedirectPath::Path(p.to_owned()))
    } else {
        path_rewrite(rd, diag).map(RedirectPath::Rewrite)
    };
    Some(Redirect {
        scheme,
        host,
        port,
        path,
        status,
        strip_query: rd.bool("strip_query"),
    })
}

fn direct_response(
    d: &Msg<'_, '_>,
    max_body: u64,
    diag: &mut Diagnostics,
) -> Option<DirectResponse> {
    d.only(diag, &["status", "body"]);
    let status = u16::try_from(d.uint("status")).unwrap_or(0);
    let body = match d.child("body") {
        Some(source) => super::data_source(&source, diag)?,
        None => Vec::new(),
    };
    if body.len() as u64 > max_body {
        d.error(
            diag,
            "body",
            format!(
                "the body is {} bytes, more than max_direct_response_body_size_bytes ({max_body})",
                body.len()
            ),
        );
        return None;
    }
    Some(DirectResponse {
        status,
        body: body.into(),
        content_type: DirectResponse::DEFAULT_CONTENT_TYPE.to_owned(),
    })
}

/// The four header-edit lists of a route configuration, virtual host or route.
pub(crate) fn mutations(m: &Msg<'_, '_>, diag: &mut Diagnostics) -> HeaderMutations {
    let adds = |field: &str, side: Side, diag: &mut Diagnostics| -> Vec<HeaderAdd> {
        m.children(field)
            .iter()
            .filter_map(|o| header_add(o, side, diag))
            .collect()
    };
    let removes = |field: &str, diag: &mut Diagnostics| -> Vec<String> {
        let loc = m.at(field);
        m.strings(field)
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let at = loc.index(i);
                match crate::config::decode_headers::check_field_name(name) {
                    Ok(()) => Some(name.to_ascii_lowercase()),
                    Err(message) => {
                        diag.error(at.pos, &at.path, message);
                        None
                    }
                }
            })
            .collect()
    };
    HeaderMutations {
        request_add: adds("request_headers_to_add", Side::Request, diag),
        request_remove: removes("request_headers_to_remove", diag),
        response_add: adds("response_headers_to_add", Side::Response, diag),
        response_remove: removes("response_headers_to_remove", diag),
    }
}

/// A `HeaderValueOption` (`side`: the `%VARIABLE%`s its value may use).
pub(crate) fn header_add(o: &Msg<'_, '_>, side: Side, diag: &mut Diagnostics) -> Option<HeaderAdd> {
    o.only(
        diag,
        &["header", "append", "append_action", "keep_empty_value"],
    );
    let header = o.child("header")?;
    header.only(diag, &["key", "value"]);
    let name = header.str("key").unwrap_or_default();
    if let Err(message) = crate::config::decode_headers::check_field_name(name) {
        header.error(diag, "key", message);
        return None;
    }
    let value = header.str("value").unwrap_or_default();
    if let Err(message) = format::parse(value, side) {
        header.error(diag, "value", message);
        return None;
    }
    let (append, only_if) = match o.enum_name("append_action").as_deref() {
        None | Some("APPEND_IF_EXISTS_OR_ADD") => {
            (o.wrapped_bool("append").unwrap_or(true), AddOnlyIf::Always)
        }
        Some("OVERWRITE_IF_EXISTS_OR_ADD") => (false, AddOnlyIf::Always),
        Some("ADD_IF_ABSENT") => (true, AddOnlyIf::Absent),
        Some("OVERWRITE_IF_EXISTS") => (false, AddOnlyIf::Present),
        Some(other) => {
            o.error(
                diag,
                "append_action",
                format!("unknown `append_action: {other}` (APPEND_IF_EXISTS_OR_ADD, ADD_IF_ABSENT, OVERWRITE_IF_EXISTS_OR_ADD, OVERWRITE_IF_EXISTS)"),
            );
            return None;
        }
    };
    Some(HeaderAdd {
        name: name.to_ascii_lowercase(),
        value: value.to_owned(),
        append,
        only_if,
    })
}

/// A virtual host's or route's `CorsPolicy`, from its `typed_per_filter_config` under
/// the CORS filter's name (Envoy's `envoy.filters.http.cors`, which must be in the
/// chain). The jwt_authn, RBAC, local_ratelimit and fault filters' entries are read by
/// `jwt_authn::per_route`, `rbac::per_route`, `local_ratelimit::per_route` and
/// `fault::per_route`; every
/// other per-filter config is refused.
fn cors_policy(m: &Msg<'_, '_>, cors: Option<&str>, diag: &mut Diagnostics) -> Option<CorsPolicy> {
    const READ: [&str; 5] = [
        schema::FAULT,
        schema::CORS_POLICY,
        schema::JWT_PER_ROUTE,
        schema::RBAC_PER_ROUTE,
        schema::LOCAL_RATELIMIT,
    ];
    for (_, at, type_name, _) in m.any_map("typed_per_filter_config") {
        if !READ.contains(&type_name.as_str()) {
            diag.error(
                at.pos,
                &at.path,
                format!("per-route config {type_name} is not supported"),
            );
        }
    }
    let mut result = None;
    let filter = PerFilter {
        type_name: schema::CORS_POLICY,
        filter: cors,
        what: ("a CorsPolicy", "a CORS filter", "envoy.filters.http.cors"),
    };
    per_filter_config(m, filter, diag, |policy, diag| {
        result = cors_from(policy, diag);
    });
    result
}

/// Which `typed_per_filter_config` entries [`per_filter_config`] reads, and how its
/// error names them.
pub(crate) struct PerFilter<'a> {
    /// The entries' message type.
    pub type_name: &'a str,
    /// The name of the chain's filter they configure, when the chain has one.
    pub filter: Option<&'a str>,
    /// The entry, the filter and its extension name, for the error:
    /// `("a CorsPolicy", "a CORS filter", "envoy.filters.http.cors")`.
    pub what: (&'a str, &'a str, &'a str),
}

/// Calls `each`, in document order, with every `typed_per_filter_config` entry of
/// `m` of the given type whose key names the chain's filter; an entry under another
/// key is an error (Envoy applies per-filter configs by filter name).
pub(crate) fn per_filter_config(
    m: &Msg<'_, '_>,
    entries: PerFilter<'_>,
    diag: &mut Diagnostics,
    mut each: impl FnMut(&Msg<'_, '_>, &mut Diagnostics),
) {
    let (entry, filter, extension) = entries.what;
    for (key, at, type_name, config) in m.any_map("typed_per_filter_config") {
        if type_name != entries.type_name {
            continue;
        }
        if entries.filter != Some(key.as_str()) {
            diag.error(
                at.pos,
                &at.path,
                format!("{entry} under {key:?} needs {filter} of that name in http_filters ({extension})"),
            );
            continue;
        }
        each(&Msg::new(&config, at), diag);
    }
}

fn cors_from(p: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<CorsPolicy> {
    p.only(
        diag,
        &[
            "allow_origin_string_match",
            "allow_methods",
            "allow_headers",
            "expose_headers",
            "max_age",
            "allow_credentials",
            "forward_not_matching_preflights",
        ],
    );
    if p.wrapped_bool("forward_not_matching_preflights") == Some(false) {
        p.error(
            diag,
            "forward_not_matching_preflights",
            "`forward_not_matching_preflights: false` is not supported yet",
        );
    }
    let list = |field: &str| -> Vec<String> {
        p.str(field)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut allow_origins = Vec::new();
    for s in p.children("allow_origin_string_match") {
        s.only(
            diag,
            &["exact", "prefix", "suffix", "contains", "safe_regex"],
        );
        let text = |f: &str| s.str(f).unwrap_or_default().to_owned();
        allow_origins.push(if s.has("prefix") {
            OriginMatch::Prefix(text("prefix"))
        } else if s.has("suffix") {
            OriginMatch::Suffix(text("suffix"))
        } else if s.has("contains") {
            OriginMatch::Contains(text("contains"))
        } else if let Some(re) = s.child("safe_regex") {
            OriginMatch::Regex(regex(&re, diag)?)
        } else {
            OriginMatch::Exact(text("exact"))
        });
    }
    let max_age = match p.str("max_age") {
        Some(text) => match text.parse::<u64>() {
            Ok(seconds) => Some(std::time::Duration::from_secs(seconds)),
            Err(_) => {
                p.error(
                    diag,
                    "max_age",
                    format!("{text:?} is not a number of seconds"),
                );
                None
            }
        },
        None => None,
    };
    Some(CorsPolicy {
        allow_origins,
        allow_methods: list("allow_methods"),
        allow_headers: list("allow_headers"),
        expose_headers: list("expose_headers"),
        max_age,
        allow_credentials: p.wrapped_bool("allow_credentials") == Some(true),
    })
}

/// Refuses a cluster name the config does not define (Envoy's `validate_clusters`
/// defaults to true for a static route_config).
pub(super) fn known_cluster(
    at: &Msg<'_, '_>,
    field: &str,
    cluster: &str,
    clusters: &[String],
    diag: &mut Diagnostics,
) {
    if !clusters.iter().any(|c| c == cluster) {
        let hint =
            crate::config::suggest::did_you_mean(cluster, clusters.iter().map(String::as_str));
        at.error(diag, field, format!("unknown cluster \"{cluster}\"{hint}"));
    }
}

/// `RouteAction.weighted_clusters`: the clusters with their weights (a canary split).
/// `use_hash_policy` splits by the route's `hash_policy`; a `total_weight` (deprecated)
/// must equal the weights' sum, as Envoy checks. Per-cluster header edits, host rewrites,
/// metadata and filter configs, `cluster_header`, `runtime_key_prefix`, `header_name` and
/// `random_value_specifier` are refused by name.
fn weighted_clusters(
    w: &Msg<'_, '_>,
    clusters: &[String],
    diag: &mut Diagnostics,
) -> Option<WeightedClusters> {
    w.only(diag, &["clusters", "total_weight", "use_hash_policy"]);
    let mut out = Vec::new();
    for c in w.children("clusters") {
        c.only(diag, &["name", "weight"]);
        let Some(name) = c.str("name") else {
            c.error(diag, "name", "a weighted cluster needs `name`");
            continue;
        };
        known_cluster(&c, "name", name, clusters, diag);
        let weight = c.wrapped_uint("weight").unwrap_or(0);
        out.push((name.to_owned(), u32::try_from(weight).unwrap_or(u32::MAX)));
    }
    let total: u64 = out.iter().map(|(_, w)| u64::from(*w)).sum();
    if out.is_empty() {
        w.error(diag, "clusters", "at least one cluster is required");
        return None;
    }
    if total == 0 || total > WeightedClusters::MAX_TOTAL {
        w.error(
            diag,
            "clusters",
            format!(
                "the weights add up to {total}; they must add up to 1 .. {}",
                WeightedClusters::MAX_TOTAL
            ),
        );
        return None;
    }
    if let Some(declared) = w.wrapped_uint("total_weight") {
        if declared != total {
            w.error(
                diag,
                "total_weight",
                format!("total_weight is {declared} but the weights add up to {total}"),
            );
            return None;
        }
    }
    Some(WeightedClusters {
        clusters: out,
        sticky: w.wrapped_bool("use_hash_policy") == Some(true),
    })
}
