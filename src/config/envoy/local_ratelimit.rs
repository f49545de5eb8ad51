//! Envoy's `envoy.filters.http.local_ratelimit` (`LocalRateLimit`, in `http_filters` and
//! per route or virtual host), the `rate_limits` of routes and virtual hosts, and the
//! network filter `envoy.filters.network.local_ratelimit`, onto `config::ratelimit`.
//!
//! Design: the filter and each per-filter config decode to [`Settings`]; route and
//! virtual-host `rate_limits` to [`Rule`]s. [`resolve`] then gives every route of a
//! connection manager with the filter its [`RateLimitPolicy`], as Envoy picks the config
//! for a request (`resolveMostSpecificPerFilterConfig`): the route's per-filter config,
//! else its virtual host's, else the filter's; the descriptors come from the filter's own
//! `rate_limits` when it has them, else from the route's and its host's (per
//! `vh_rate_limits`, or the route's deprecated `include_vh_rate_limits`), only those of
//! the config's `stage`, without those that have a `disable_key` (Envoy's local filter
//! skips them), and only when the config has `descriptors` (Envoy generates none
//! otherwise). Redirect and direct-response routes have no route entry in Envoy, so
//! their route's and host's rules generate nothing; a filter-level rule with
//! `destination_cluster` generates nothing on them either.
//!
//! Bucket ids (`Limit::id`) are stable across reloads and unique per bucket:
//! `<listener>/<filter>` then `/default` or `/descriptor/<entries>` for the filter's
//! config (shared by every route using it, as Envoy's one limiter per config is), with
//! `/vhost/<host>` or `/route/<host>/<route>` before them for a per-filter config (one
//! bucket set per host's config, shared by its routes; one per route's config). Names are
//! escaped (`%XX` for anything but `[A-Za-z0-9_.-]`), a host or route whose name is
//! empty or not unique gets `#<index>` after it, and a descriptor's entries are written
//! `key=value` joined by `,` (`*` for an entry without a value), so no two buckets share
//! an id. The network filter's id is the listener's name, or, with a `share_key`, the key
//! and the bucket (Envoy shares a limiter between filters with the same key *and* token
//! bucket).
//!
//! Envoy's defaults: `filter_enabled` and `filter_enforced` absent are 0 %; a policy
//! whose `enabled` is 0 % is still given to the route (Envoy counts nothing then — its
//! filter returns before the `enabled` counter — but its counters exist, at 0);
//! `tokens_per_fill` 1; `status` 429 (a code under 400 means 429);
//! `always_consume_default_token_bucket` true; `stage` 0; `vh_rate_limits` `OVERRIDE`;
//! default descriptor keys `generic_key`, `header_match`; `expect_match` true;
//! `masked_remote_address` prefixes 32 and 128; the network filter's `runtime_enabled`
//! true. Runtime keys are accepted: ringway's runtime holds only connection limits, so
//! the default values always apply.
//!
//! Decisions where ringway differs or chooses:
//! - A descriptor with an entry without a value (one bucket per value) keeps up to
//!   `max_dynamic_descriptors` values when it is set, else `Limit::DEFAULT_MAX_KEYS`
//!   (Envoy's default is an LRU of 20, which forgets a limited value as soon as 20 others
//!   came by).
//! - `enable_retry_after_header` becomes `retry_after`, only with status 429 and when
//!   `response_headers_to_add` has no `retry-after` (Envoy's rules).
//! - `rate_limited_as_resource_exhausted` is accepted: it changes only gRPC answers, and
//!   ringway serves no gRPC (HTTP/2) yet.
//! - `source_cluster` is the local service cluster: `--service-cluster`, else the
//!   bootstrap's `node.cluster`; without either it is refused.
//!
//! Refused by name: `local_cluster_rate_limit` (Envoy's own message: there is no local
//! cluster), `max_tokens: 0` (a bucket that refuses everything), a fill interval under
//! 50 ms (Envoy's message), duplicate descriptors, a second local_ratelimit filter in a
//! connection manager, the actions `metadata`, `dynamic_metadata`, `extension`,
//! `query_parameter_value_match`, `remote_address_match`, `default_value` of
//! `generic_key` and `header_value_match`, a rule's `limit`, `hits_addend`,
//! `apply_on_stream_done`, `x_ratelimit_option`, and in the filter's own `rate_limits`
//! `stage` and `disable_key` (Envoy's message).

use std::fmt::Write as _;
use std::time::Duration;

use prost_reflect::Value as Pv;

use super::cursor::Msg;
use super::route;
use crate::config::error::Diagnostics;
use crate::config::format::Side;
use crate::config::model::HeaderAdd;
use crate::config::ratelimit::{
    Action, Bucket, ConnectionRate, DescriptorRule, EnvoyOptions, Fraction, Limit, LimitHeaders,
    LimitKey, RateLimitPolicy, VhRateLimits,
};

/// The filter's extension name: its default name in `http_filters`.
pub(crate) const FILTER: &str = "envoy.filters.http.local_ratelimit";
/// Envoy's smallest fill interval.
const MIN_FILL_INTERVAL: Duration = Duration::from_millis(50);
/// The most keys a wildcard descriptor may keep (`max_dynamic_descriptors`), as the
/// native format's `max_keys`.
const MAX_KEYS: u64 = 16_777_216;

/// A connection manager's local_ratelimit filter, decoded.
#[derive(Debug)]
pub(crate) struct LocalRateLimitFilter {
    /// The filter's name: per-filter configs are found under it.
    pub name: String,
    /// `<listener>/<filter name>`: every bucket id of the filter starts with it.
    pub id: String,
    /// The bootstrap's `node.cluster` (the value of `source_cluster`).
    pub source_cluster: Option<String>,
    /// The filter's own config (`None`: it did not decode, already reported).
    pub config: Option<Settings>,
    /// Its place among CORS, jwt_authn and RBAC in `http_filters`.
    pub position: crate::config::ratelimit::FilterPosition,
}

/// A decoded `LocalRateLimit`: the filter's, or a per-filter config's.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    stat_prefix: String,
    bucket: Option<Bucket>,
    enabled: Fraction,
    enforced: Fraction,
    status: u16,
    response_headers: Vec<HeaderAdd>,
    request_headers_when_not_enforced: Vec<HeaderAdd>,
    descriptors: Vec<Descriptor>,
    stage: u32,
    per_connection: bool,
    headers: LimitHeaders,
    vh_rate_limits: VhRateLimits,
    always_consume_default: bool,
    retry_after: bool,
    /// `max_dynamic_descriptors`, when set.
    max_keys: Option<u32>,
    /// The filter's own `rate_limits`, when it has some (the routes' and hosts' are then
    /// not used).
    rate_limits: Option<Vec<Rule>>,
}

/// A `descriptors[]` entry.
#[derive(Debug, Clone)]
struct Descriptor {
    entries: Vec<(String, Option<String>)>,
    bucket: Bucket,
    shadow: bool,
}

/// A `rate_limits[]` entry of a route, a virtual host or the filter, its
/// `destination_cluster` not yet resolved.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    stage: u32,
    /// It has a `disable_key`: Envoy's local filter skips it.
    disabled: bool,
    actions: Vec<RuleAction>,
}

#[derive(Debug, Clone)]
enum RuleAction {
    Ready(Action),
    /// The route's cluster.
    DestinationCluster,
}

/// What a route brings to its policy.
#[derive(Debug, Default)]
pub(crate) struct RouteLimits {
    /// Its per-filter config.
    pub config: Option<Settings>,
    /// Its `route.rate_limits`.
    pub rules: Vec<Rule>,
    /// Its deprecated `route.include_vh_rate_limits`.
    pub include_vh: bool,
    /// The cluster it forwards to (`None`: a redirect or a direct response).
    pub cluster: Option<String>,
}

/// What a virtual host brings to its routes' policies.
#[derive(Debug, Default)]
pub(crate) struct HostLimits {
    /// The host's part of bucket ids (see the module's note).
    pub key: String,
    /// Its per-filter config.
    pub config: Option<Settings>,
    /// Its `rate_limits`.
    pub rules: Vec<Rule>,
}

/// Decodes the filter's `typed_config`; errors go to `diag` (the filter is kept, so that
/// per-filter configs under its name are not refused as well).
pub(crate) fn filter(
    m: &Msg<'_, '_>,
    name: &str,
    listener: &str,
    source_cluster: Option<&str>,
    diag: &mut Diagnostics,
) -> LocalRateLimitFilter {
    LocalRateLimitFilter {
        name: name.to_owned(),
        id: format!("{listener}/{}", escape(name)),
        position: Default::default(),
        source_cluster: source_cluster.map(str::to_owned),
        config: settings(m, false, Some(source_cluster), diag),
    }
}

/// A virtual host's or route's `LocalRateLimit` under the filter's name (`filter`,
/// `None` when the chain has no local_ratelimit filter), when it has one.
pub(crate) fn per_route(
    m: &Msg<'_, '_>,
    filter: Option<&LocalRateLimitFilter>,
    diag: &mut Diagnostics,
) -> Option<Settings> {
    let mut result = None;
    let entries = route::PerFilter {
        type_name: super::schema::LOCAL_RATELIMIT,
        filter: filter.map(|f| f.name.as_str()),
        what: ("a LocalRateLimit", "a local_ratelimit filter", FILTER),
    };
    let source = filter.map(|f| f.source_cluster.as_deref());
    route::per_filter_config(m, entries, diag, |config, diag| {
        result = settings(config, true, source, diag);
    });
    result
}

/// The `rate_limits` of a virtual host or route action. `filter` is the chain's
/// local_ratelimit filter: without one they are checked but used by nothing (as in
/// Envoy, where they serve rate-limit filters).
pub(crate) fn rules(
    m: &Msg<'_, '_>,
    filter: Option<&LocalRateLimitFilter>,
    diag: &mut Diagnostics,
) -> Vec<Rule> {
    let source = filter.map(|f| f.source_cluster.as_deref());
    m.children("rate_limits")
        .iter()
        .filter_map(|r| rule(r, false, source, diag))
        .collect()
}

/// The policy of a route, or `None` when the chain has no local_ratelimit filter (or
/// its config did not decode, already reported).
pub(crate) fn resolve(
    filter: Option<&LocalRateLimitFilter>,
    host: &HostLimits,
    route: &RouteLimits,
    route_key: &str,
) -> Option<RateLimitPolicy> {
    let filter = filter?;
    let (settings, scope) = if let Some(config) = &route.config {
        (
            config,
            format!("{}/route/{}/{route_key}", filter.id, host.key),
        )
    } else if let Some(config) = &host.config {
        (config, format!("{}/vhost/{}", filter.id, host.key))
    } else {
        (filter.config.as_ref()?, filter.id.clone())
    };
    let rules = descriptor_rules(settings, host, route);
    let mut limits = Vec::with_capacity(settings.descriptors.len() + 1);
    if let Some(bucket) = settings.bucket {
        limits.push(Limit {
            name: "default".to_owned(),
            id: format!("{scope}/default"),
            bucket,
            key: LimitKey::EnvoyDefault,
            plans: Vec::new(),
            shadow: false,
            per_connection: settings.per_connection,
            max_keys: 1,
        });
    }
    for d in &settings.descriptors {
        let wildcard = d.entries.iter().any(|(_, value)| value.is_none());
        limits.push(Limit {
            name: descriptor_text(&d.entries),
            id: format!("{scope}/descriptor/{}", descriptor_id(&d.entries)),
            bucket: d.bucket,
            key: LimitKey::Descriptor(d.entries.clone()),
            plans: Vec::new(),
            shadow: d.shadow,
            per_connection: settings.per_connection,
            max_keys: if wildcard {
                settings.max_keys.unwrap_or(Limit::DEFAULT_MAX_KEYS)
            } else {
                1
            },
        });
    }
    Some(RateLimitPolicy {
        limits,
        enabled: settings.enabled,
        enforced: settings.enforced,
        status: settings.status,
        response_headers: settings.response_headers.clone(),
        retry_after: settings.retry_after,
        headers: settings.headers,
        envoy: Some(EnvoyOptions {
            position: filter.position,
            stat_prefix: settings.stat_prefix.clone(),
            rules,
            always_consume_default: settings.always_consume_default,
            request_headers_when_not_enforced: settings.request_headers_when_not_enforced.clone(),
        }),
    })
}

/// The rules that generate a route's descriptors under `settings` (see the module's
/// note).
fn descriptor_rules(
    settings: &Settings,
    host: &HostLimits,
    route: &RouteLimits,
) -> Vec<DescriptorRule> {
    if settings.descriptors.is_empty() {
        return Vec::new();
    }
    let chosen: Vec<&Rule> = if let Some(own) = &settings.rate_limits {
        // Envoy refuses `stage` and `disable_key` there: every rule applies.
        own.iter().collect()
    } else if route.cluster.is_none() {
        Vec::new()
    } else {
        let vh = if route.include_vh {
            VhRateLimits::Include
        } else {
            settings.vh_rate_limits
        };
        let mut chosen: Vec<&Rule> = route.rules.iter().collect();
        match vh {
            VhRateLimits::Ignore => {}
            VhRateLimits::Include => chosen.extend(&host.rules),
            VhRateLimits::Override if route.rules.is_empty() => chosen.extend(&host.rules),
            VhRateLimits::Override => {}
        }
        chosen
            .into_iter()
            .filter(|r| r.stage == settings.stage && !r.disabled)
            .collect()
    };
    chosen
        .into_iter()
        .filter_map(|r| {
            let actions = r
                .actions
                .iter()
                .map(|a| match a {
                    RuleAction::Ready(action) => Some(action.clone()),
                    // No route entry: Envoy's action fails and the descriptor is not
                    // generated.
                    RuleAction::DestinationCluster => {
                        route.cluster.as_ref().map(|cluster| Action::Fixed {
                            key: "destination_cluster".to_owned(),
                            value: cluster.clone(),
                        })
                    }
                })
                .collect::<Option<Vec<_>>>()?;
            Some(DescriptorRule {
                stage: settings.stage,
                actions,
            })
        })
        .collect()
}

/// A `LocalRateLimit`. `source` is `None` when no filter uses its rules, else the node's
/// cluster, when the bootstrap names one.
fn settings(
    m: &Msg<'_, '_>,
    per_route: bool,
    source: Option<Option<&str>>,
    diag: &mut Diagnostics,
) -> Option<Settings> {
    m.only(
        diag,
        &[
            "stat_prefix",
            "status",
            "token_bucket",
            "filter_enabled",
            "filter_enforced",
            "request_headers_to_add_when_not_enforced",
            "response_headers_to_add",
            "descriptors",
            "stage",
            "local_rate_limit_per_downstream_connection",
            "local_cluster_rate_limit",
            "enable_x_ratelimit_headers",
            "vh_rate_limits",
            "always_consume_default_token_bucket",
            "rate_limited_as_resource_exhausted",
            "rate_limits",
            "max_dynamic_descriptors",
            "enable_retry_after_header",
        ],
    );
    let mut ok = true;
    if m.has("local_cluster_rate_limit") {
        // ringway has no `cluster_manager.local_cluster_name` (refused in the bootstrap).
        m.error(
            diag,
            "local_cluster_rate_limit",
            "local_cluster_rate_limit is set but no local cluster name is present",
        );
        ok = false;
    }
    let bucket = match m.child("token_bucket") {
        Some(b) => {
            let bucket = token_bucket(&b, false, diag);
            ok &= bucket.is_some();
            bucket
        }
        None if per_route => {
            m.error(
                diag,
                "token_bucket",
                "local rate limit token bucket must be set for per filter configs",
            );
            ok = false;
            None
        }
        None => None,
    };
    let status = match m.child("status") {
        Some(s) => {
            s.only(diag, &["code"]);
            match s.msg.get_field_by_name("code").as_deref() {
                Some(Pv::EnumNumber(code)) if (400..=599).contains(code) => *code as u16,
                _ => 429,
            }
        }
        None => 429,
    };
    let headers = |field: &str, side: Side, diag: &mut Diagnostics| -> Option<Vec<HeaderAdd>> {
        m.children(field)
            .iter()
            .map(|o| route::header_add(o, side, diag))
            .collect()
    };
    let response_headers = headers("response_headers_to_add", Side::Response, diag);
    let request_headers = headers(
        "request_headers_to_add_when_not_enforced",
        Side::Request,
        diag,
    );
    let descriptors = descriptors(m, diag);
    let rate_limits = if m.has("rate_limits") {
        let decoded: Option<Vec<Rule>> = m
            .children("rate_limits")
            .iter()
            .map(|r| rule(r, true, source, diag))
            .collect();
        ok &= decoded.is_some();
        decoded
    } else {
        None
    };
    let headers_kind = match m.enum_name("enable_x_ratelimit_headers").as_deref() {
        Some("DRAFT_VERSION_03") => LimitHeaders::XRateLimitDraft03,
        _ => LimitHeaders::None,
    };
    let vh_rate_limits = match m.enum_name("vh_rate_limits").as_deref() {
        Some("INCLUDE") => VhRateLimits::Include,
        Some("IGNORE") => VhRateLimits::Ignore,
        _ => VhRateLimits::Override,
    };
    let max_keys = match m.wrapped_uint("max_dynamic_descriptors") {
        Some(n) if n > MAX_KEYS => {
            m.error(
                diag,
                "max_dynamic_descriptors",
                format!("at most {MAX_KEYS} is supported, found {n}"),
            );
            ok = false;
            None
        }
        n => n.and_then(|n| u32::try_from(n).ok()),
    };
    let (Some(response_headers), Some(request_headers), Some(descriptors)) =
        (response_headers, request_headers, descriptors)
    else {
        return None;
    };
    if !ok {
        return None;
    }
    let retry_after = m.bool("enable_retry_after_header")
        && status == 429
        && !response_headers.iter().any(|h| h.name == "retry-after");
    Some(Settings {
        stat_prefix: m.str("stat_prefix").unwrap_or_default().to_owned(),
        bucket,
        enabled: fraction(m, "filter_enabled", diag),
        enforced: fraction(m, "filter_enforced", diag),
        status,
        response_headers,
        request_headers_when_not_enforced: request_headers,
        descriptors,
        stage: u32::try_from(m.uint("stage")).unwrap_or(u32::MAX),
        per_connection: m.bool("local_rate_limit_per_downstream_connection"),
        headers: headers_kind,
        vh_rate_limits,
        always_consume_default: m
            .wrapped_bool("always_consume_default_token_bucket")
            .unwrap_or(true),
        retry_after,
        max_keys,
        rate_limits,
    })
}

/// A `TokenBucket` (`descriptor`: a descriptor's, for Envoy's message).
fn token_bucket(b: &Msg<'_, '_>, descriptor: bool, diag: &mut Diagnostics) -> Option<Bucket> {
    b.only(diag, &["max_tokens", "tokens_per_fill", "fill_interval"]);
    let max_tokens = b.uint("max_tokens");
    let tokens_per_fill = b.wrapped_uint("tokens_per_fill").unwrap_or(1);
    // Required, longer than 0 (the validation rules); Envoy reads whole milliseconds.
    let interval = b.duration("fill_interval").unwrap_or_default();
    let interval = Duration::from_millis(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX));
    if max_tokens == 0 {
        b.error(
            diag,
            "max_tokens",
            "`max_tokens: 0` (a bucket that refuses every request) is not supported; a direct_response route answers without a bucket",
        );
        return None;
    }
    if interval < MIN_FILL_INTERVAL {
        let what = if descriptor { "descriptor " } else { "" };
        b.error(
            diag,
            "fill_interval",
            format!("local rate limit {what}token bucket fill timer must be >= 50ms"),
        );
        return None;
    }
    Some(Bucket {
        tokens: tokens_per_fill,
        per: interval,
        burst: max_tokens,
    })
}

/// A `RuntimeFractionalPercent`'s default value; absent: 0 %.
fn fraction(m: &Msg<'_, '_>, field: &str, diag: &mut Diagnostics) -> Fraction {
    let Some(f) = m.child(field) else {
        return Fraction::NONE;
    };
    f.only(diag, &["default_value", "runtime_key"]);
    let Some(value) = f.child("default_value") else {
        return Fraction::NONE;
    };
    value.only(diag, &["numerator", "denominator"]);
    let scale = match value.enum_name("denominator").as_deref() {
        Some("MILLION") => 1,
        Some("TEN_THOUSAND") => 100,
        // HUNDRED, the zero value.
        _ => 10_000,
    };
    // A numerator above the denominator is every request, as in Envoy.
    let per_million = value.uint("numerator").saturating_mul(scale).min(1_000_000);
    Fraction {
        per_million: u32::try_from(per_million).unwrap_or(1_000_000),
    }
}

/// The `descriptors`; duplicates are refused (Envoy's message).
fn descriptors(m: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Vec<Descriptor>> {
    let mut result: Vec<Descriptor> = Vec::new();
    let mut ok = true;
    for d in m.children("descriptors") {
        d.only(diag, &["entries", "token_bucket", "shadow_mode"]);
        let entries: Vec<(String, Option<String>)> = d
            .children("entries")
            .iter()
            .map(|e| {
                e.only(diag, &["key", "value"]);
                (
                    e.str("key").unwrap_or_default().to_owned(),
                    e.str("value").map(str::to_owned),
                )
            })
            .collect();
        // Required by the validation rules.
        let Some(bucket) = d
            .child("token_bucket")
            .and_then(|b| token_bucket(&b, true, diag))
        else {
            ok = false;
            continue;
        };
        if result.iter().any(|other| other.entries == entries) {
            d.error(
                diag,
                "entries",
                format!(
                    "duplicate descriptor in the local rate descriptor: {}",
                    descriptor_text(&entries)
                ),
            );
            ok = false;
            continue;
        }
        result.push(Descriptor {
            entries,
            bucket,
            shadow: d.bool("shadow_mode"),
        });
    }
    ok.then_some(result)
}

/// A `RateLimit` (`own`: the filter's own `rate_limits`, where Envoy refuses `stage` and
/// `disable_key`).
fn rule(
    r: &Msg<'_, '_>,
    own: bool,
    source: Option<Option<&str>>,
    diag: &mut Diagnostics,
) -> Option<Rule> {
    r.only(diag, &["stage", "disable_key", "actions"]);
    if own && (r.has("stage") || r.has("disable_key")) {
        let field = if r.has("stage") {
            "stage"
        } else {
            "disable_key"
        };
        r.error(
            diag,
            field,
            "'stage' field and 'disable_key' field are not supported",
        );
        return None;
    }
    let actions: Option<Vec<RuleAction>> = r
        .children("actions")
        .iter()
        .map(|a| action(a, source, diag))
        .collect();
    Some(Rule {
        stage: u32::try_from(r.wrapped_uint("stage").unwrap_or(0)).unwrap_or(u32::MAX),
        disabled: r.has("disable_key"),
        actions: actions?,
    })
}

/// One `RateLimit.Action` (exactly one kind is set: the validation rules).
fn action(
    a: &Msg<'_, '_>,
    source: Option<Option<&str>>,
    diag: &mut Diagnostics,
) -> Option<RuleAction> {
    a.only(
        diag,
        &[
            "source_cluster",
            "destination_cluster",
            "request_headers",
            "query_parameters",
            "remote_address",
            "generic_key",
            "header_value_match",
            "masked_remote_address",
        ],
    );
    let key_or = |m: &Msg<'_, '_>, default: &str| -> String {
        m.str("descriptor_key").unwrap_or(default).to_owned()
    };
    let action = if let Some(s) = a.child("source_cluster") {
        s.only(diag, &[]);
        let value = match source {
            // No filter reads the rule.
            None => "",
            Some(Some(cluster)) => cluster,
            Some(None) => {
                a.error(
                    diag,
                    "source_cluster",
                    "`source_cluster` is the local service cluster, and neither --service-cluster nor the bootstrap's `node.cluster` names one",
                );
                return None;
            }
        };
        Action::Fixed {
            key: "source_cluster".to_owned(),
            value: value.to_owned(),
        }
    } else if let Some(d) = a.child("destination_cluster") {
        d.only(diag, &[]);
        return Some(RuleAction::DestinationCluster);
    } else if let Some(h) = a.child("request_headers") {
        h.only(diag, &["header_name", "descriptor_key", "skip_if_absent"]);
        Action::RequestHeader {
            header: h
                .str("header_name")
                .unwrap_or_default()
                .to_ascii_lowercase(),
            key: key_or(&h, ""),
            skip_if_absent: h.bool("skip_if_absent"),
        }
    } else if let Some(q) = a.child("query_parameters") {
        q.only(
            diag,
            &["query_parameter_name", "descriptor_key", "skip_if_absent"],
        );
        Action::QueryParameter {
            name: q.str("query_parameter_name").unwrap_or_default().to_owned(),
            key: key_or(&q, ""),
            skip_if_absent: q.bool("skip_if_absent"),
        }
    } else if let Some(r) = a.child("remote_address") {
        r.only(diag, &[]);
        Action::RemoteAddress
    } else if let Some(g) = a.child("generic_key") {
        g.only(diag, &["descriptor_value", "descriptor_key"]);
        Action::Fixed {
            key: key_or(&g, "generic_key"),
            value: g.str("descriptor_value").unwrap_or_default().to_owned(),
        }
    } else if let Some(h) = a.child("header_value_match") {
        h.only(
            diag,
            &[
                "descriptor_value",
                "descriptor_key",
                "expect_match",
                "headers",
            ],
        );
        let headers: Option<Vec<_>> = h
            .children("headers")
            .iter()
            .map(|m| route::header_matcher(m, diag))
            .collect();
        Action::HeaderValueMatch {
            key: key_or(&h, "header_match"),
            value: h.str("descriptor_value").unwrap_or_default().to_owned(),
            expect_match: h.wrapped_bool("expect_match").unwrap_or(true),
            headers: headers?,
        }
    } else if let Some(m) = a.child("masked_remote_address") {
        m.only(diag, &["v4_prefix_mask_len", "v6_prefix_mask_len"]);
        // Bounded (32, 128) by the validation rules.
        let len = |field: &str, default: u8| {
            m.wrapped_uint(field)
                .map_or(default, |n| u8::try_from(n).unwrap_or(default))
        };
        Action::MaskedRemoteAddress {
            v4_prefix: len("v4_prefix_mask_len", 32),
            v6_prefix: len("v6_prefix_mask_len", 128),
        }
    } else {
        // An action of a kind `only` refused.
        return None;
    };
    Some(RuleAction::Ready(action))
}

/// The network filter `envoy.filters.network.local_ratelimit` of `listener`'s filter
/// chains: its limit on new connections, or `None` when `runtime_enabled` is false (or
/// it did not decode, already reported).
pub(crate) fn connection_rate(
    m: &Msg<'_, '_>,
    listener: &str,
    diag: &mut Diagnostics,
) -> Option<ConnectionRate> {
    m.only(
        diag,
        &[
            "stat_prefix",
            "token_bucket",
            "runtime_enabled",
            "share_key",
        ],
    );
    // Required by the validation rules.
    let bucket = token_bucket(&m.child("token_bucket")?, false, diag)?;
    if let Some(flag) = m.child("runtime_enabled") {
        flag.only(diag, &["default_value", "runtime_key"]);
        if flag.wrapped_bool("default_value") == Some(false) {
            return None;
        }
    }
    let id = match m.str("share_key") {
        // Envoy shares one limiter between filters with the same key and bucket; a
        // listener's name has no `/`, so the two kinds of ids never meet.
        Some(key) => format!(
            "share_key/{}/{}/{}/{}",
            escape(key),
            bucket.burst,
            bucket.tokens,
            bucket.per.as_millis()
        ),
        None => listener.to_owned(),
    };
    Some(ConnectionRate {
        bucket,
        id,
        envoy_stat_prefix: Some(m.str("stat_prefix").unwrap_or_default().to_owned()),
    })
}

/// The part of bucket ids for item `index` of a list named `names` (a host among the
/// route configuration's, a route among its host's): its escaped name, followed by
/// `#<index>` when the name is empty or not unique.
pub(crate) fn key(names: &[Option<&str>], index: usize) -> String {
    let name = names.get(index).copied().flatten().unwrap_or_default();
    let unique = !name.is_empty()
        && names
            .iter()
            .filter(|other| other.unwrap_or_default() == name)
            .count()
            == 1;
    if unique {
        escape(name)
    } else {
        format!("{}#{index}", escape(name))
    }
}

/// `text` with every byte outside `[A-Za-z0-9_.-]` written `%XX`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A descriptor's entries for its bucket id: `key=value,...`, escaped, `*` for any
/// value.
fn descriptor_id(entries: &[(String, Option<String>)]) -> String {
    entries
        .iter()
        .map(|(key, value)| {
            format!(
                "{}={}",
                escape(key),
                value.as_deref().map_or_else(|| "*".to_owned(), escape)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A descriptor's entries as text, for errors and logs: `key=value, key=*`.
fn descriptor_text(entries: &[(String, Option<String>)]) -> String {
    entries
        .iter()
        .map(|(key, value)| format!("{key}={}", value.as_deref().unwrap_or("*")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
