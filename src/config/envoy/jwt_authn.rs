//! Envoy's `envoy.filters.http.jwt_authn` (`JwtAuthentication`) and its per-route
//! `PerRouteConfig` onto ringway's authentication model (`config::auth`).
//!
//! Design: each connection manager may have one jwt_authn filter. Its providers are
//! decoded here with Envoy's defaults, its `rules` and `requirement_map` resolved
//! against them (an unknown provider or requirement name fails the load, with Envoy's
//! message), and the filter becomes the listener's [`ListenerAuth`]; a route's or a
//! virtual host's `typed_per_filter_config` entry under the filter's name becomes the
//! route's [`RouteAuth`] (a route's replaces its host's). The providers of every
//! filter are merged into the config's one list by [`merge`]: a name that two filters
//! define differently is qualified by the listener's name (`listener_0/firebase`)
//! everywhere it is used.
//!
//! Envoy's defaults: no `from_*`: the `Authorization: Bearer` header, then the
//! `access_token` query parameter; `clock_skew_seconds` 60; `jwt_cache_size` 100;
//! `cache_duration` 10 min; `failed_refetch_duration` 1 s; with `async_fetch`,
//! `fast_listener` false; `retry_policy` without `num_retries`: one retry.
//!
//! Decisions where ringway differs:
//! - Remote keys are always fetched in the background, never by a worker. Without
//!   `async_fetch`, Envoy fetches on the first request that needs them, holding it until
//!   the keys arrive, and never delays the listener: ringway serves at once too
//!   (`fast_listener: true`) and answers 401 to such requests until the first fetch
//!   succeeds.
//! - A local JWKS that does not parse fails the load (Envoy logs a warning and then
//!   refuses every token).
//! - An unknown per-route `requirement_name` fails the load (Envoy answers such
//!   requests 403).
//! - Verified tokens are cached per core whether or not `jwt_cache_config` is given
//!   (Envoy caches only with it); the cache changes no answer.
//! - A token whose `kid` the keys lack makes the keys be fetched again, at most every
//!   10 s (Envoy waits for `cache_duration`).
//! - `retry_policy.retry_back_off` is accepted; retries follow ringway's own pacing.
//! - `max_lifetime` implies `require_expiration` (Envoy refuses a token without `exp`
//!   when either is set).
//!
//! Refused by name (`Msg::only`): `subjects`, `normalize_payload_in_metadata`,
//! `header_in_metadata`, `failed_status_in_metadata`, `clear_route_cache`,
//! `filter_state_rules`, `strip_failure_response`, `local_jwks.environment_variable`,
//! `jwt_cache_config` fields other than the size, the other `retry_policy` fields, and
//! an empty requirement inside `requires_any` / `requires_all`.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use prost_reflect::{MapKey, ReflectMessage, Value as Pv};

use super::cursor::Msg;
use super::schema;
use crate::config::auth::{
    AuthConfig, AuthRule, ClaimToHeader, JwksSource, JwtProvider, ListenerAuth, RemoteJwks,
    Requirement, RouteAuth, TokenSource,
};
use crate::config::decode_auth::{check_url, read_file};
use crate::config::decode_headers::check_field_name;
use crate::config::error::Diagnostics;
use crate::config::model::Listener;
use crate::config::suggest;

/// Envoy's `cache_duration` when absent (ringway's native default is 5 min).
const CACHE_DURATION: Duration = Duration::from_secs(600);
/// The largest JWKS file read.
const MAX_JWKS_FILE: u64 = 1 << 20;

/// A connection manager's jwt_authn filter, decoded.
#[derive(Debug)]
pub(crate) struct JwtFilter {
    /// The filter's name: per-route configs are found under it.
    pub name: String,
    /// Named as in the filter (see [`merge`]).
    pub providers: Vec<JwtProvider>,
    pub rules: Vec<AuthRule>,
    /// `requirement_map`: each name and its requirement (`Some(None)`: an empty
    /// requirement, nothing required; `None`: it did not decode, already reported).
    pub requirements: Vec<(String, Option<Option<Requirement>>)>,
    pub bypass_cors_preflight: bool,
}

/// Decodes a `JwtAuthentication`; errors go to `diag` (what decoded is kept, so that
/// per-route configs under the filter's name are not refused as well).
pub(crate) fn filter(
    m: &Msg<'_, '_>,
    name: &str,
    clusters: &[String],
    diag: &mut Diagnostics,
) -> JwtFilter {
    m.only(
        diag,
        &[
            "providers",
            "rules",
            "requirement_map",
            "bypass_cors_preflight",
            "stat_prefix",
        ],
    );
    let declared = message_map(m, "providers");
    let names: Vec<&str> = declared.iter().map(|(n, _)| n.as_str()).collect();
    let providers = declared
        .iter()
        .filter_map(|(name, p)| provider(name, p, clusters, diag))
        .collect();
    let requirements: Vec<_> = message_map(m, "requirement_map")
        .iter()
        .map(|(name, r)| (name.clone(), requirement(r, &names, false, diag)))
        .collect();
    let mut rules = Vec::new();
    for rule in m.children("rules") {
        rule.only(diag, &["match", "requires", "requirement_name"]);
        let matched = rule
            .child("match")
            .and_then(|mm| super::route::route_match(&mm, diag));
        let requires = if let Some(r) = rule.child("requires") {
            requirement(&r, &names, false, diag)
        } else if let Some(key) = rule.str("requirement_name") {
            named(&rule, "requirement_name", key, &requirements, diag)
        } else {
            Some(None)
        };
        if let (Some((matcher, conditions)), Some(requires)) = (matched, requires) {
            rules.push(AuthRule {
                matcher,
                conditions,
                requires,
            });
        }
    }
    JwtFilter {
        name: name.to_owned(),
        providers,
        rules,
        requirements,
        bypass_cors_preflight: m.bool("bypass_cors_preflight"),
    }
}

/// The listener's authentication: the filter's rules.
pub(crate) fn listener_auth(f: &JwtFilter) -> ListenerAuth {
    ListenerAuth {
        rules: f.rules.clone(),
        bypass_cors_preflight: f.bypass_cors_preflight,
        stats: true,
    }
}

/// The entry of `requirement_map` named `key`: `Some(None)` for an empty one; `None`
/// (reported here, with Envoy's message) for an unknown name.
fn named(
    m: &Msg<'_, '_>,
    field: &str,
    key: &str,
    requirements: &[(String, Option<Option<Requirement>>)],
    diag: &mut Diagnostics,
) -> Option<Option<Requirement>> {
    match requirements.iter().find(|(name, _)| name == key) {
        Some((_, decoded)) => decoded.clone(),
        None => {
            let mut all: Vec<&str> = requirements.iter().map(|(n, _)| n.as_str()).collect();
            all.sort_unstable();
            m.error(
                diag,
                field,
                format!(
                    "Wrong requirement_name: {key}. It should be one of [{}]",
                    all.join(",")
                ),
            );
            None
        }
    }
}

/// A route's or virtual host's `PerRouteConfig`, from its `typed_per_filter_config`
/// entry under the jwt_authn filter's name.
pub(crate) fn per_route(
    m: &Msg<'_, '_>,
    filter: Option<&JwtFilter>,
    diag: &mut Diagnostics,
) -> Option<RouteAuth> {
    let mut result = None;
    let entries = super::route::PerFilter {
        type_name: schema::JWT_PER_ROUTE,
        filter: filter.map(|f| f.name.as_str()),
        what: (
            "a PerRouteConfig",
            "a jwt_authn filter",
            "envoy.filters.http.jwt_authn",
        ),
    };
    let requirements = filter.map(|f| &f.requirements);
    super::route::per_filter_config(m, entries, diag, |config, diag| {
        config.only(diag, &["disabled", "requirement_name"]);
        if config.bool("disabled") {
            result = Some(RouteAuth::Disabled);
        } else if let (Some(name), Some(requirements)) =
            (config.str("requirement_name"), requirements)
        {
            result = named(config, "requirement_name", name, requirements, diag)
                .map(|r| r.map_or(RouteAuth::Disabled, RouteAuth::Requires));
        }
    });
    result
}

/// The entries of a `map<string, Message>` field, in document order.
fn message_map<'m, 't>(m: &Msg<'m, 't>, name: &str) -> Vec<(String, Msg<'m, 't>)> {
    let Some(field) = m.msg.descriptor().get_field_by_name(name) else {
        return Vec::new();
    };
    if !m.msg.has_field(&field) {
        return Vec::new();
    }
    let Cow::Borrowed(Pv::Map(map)) = m.msg.get_field(&field) else {
        return Vec::new();
    };
    let loc = m.at(name);
    let mut items: Vec<(String, Msg<'m, 't>)> = map
        .iter()
        .filter_map(|(key, value)| match (key, value) {
            (MapKey::String(key), Pv::Message(value)) => {
                Some((key.clone(), Msg::new(value, loc.key(key))))
            }
            _ => None,
        })
        .collect();
    items.sort_by(|(a, x), (b, y)| (x.loc.pos, a).cmp(&(y.loc.pos, b)));
    items
}

fn provider(
    name: &str,
    p: &Msg<'_, '_>,
    clusters: &[String],
    diag: &mut Diagnostics,
) -> Option<JwtProvider> {
    p.only(
        diag,
        &[
            "issuer",
            "audiences",
            "remote_jwks",
            "local_jwks",
            "forward",
            "from_headers",
            "from_params",
            "from_cookies",
            "forward_payload_header",
            "pad_forward_payload_header",
            "payload_in_metadata",
            "claim_to_headers",
            "clock_skew_seconds",
            "jwt_cache_config",
            "require_expiration",
            "max_lifetime",
        ],
    );
    let jwks = if let Some(r) = p.child("remote_jwks") {
        remote(name, &r, clusters, diag).map(JwksSource::Remote)
    } else if let Some(l) = p.child("local_jwks") {
        local(&l, diag)
    } else {
        p.error(
            diag,
            "remote_jwks",
            "a provider needs `remote_jwks` or `local_jwks`",
        );
        None
    };
    let mut ok = true;
    let mut from = Vec::new();
    for h in p.children("from_headers") {
        h.only(diag, &["name", "value_prefix"]);
        let header = h.str("name").unwrap_or_default();
        match check_field_name(header) {
            Ok(()) => from.push(TokenSource::Header {
                name: header.to_ascii_lowercase(),
                prefix: h.str("value_prefix").unwrap_or_default().to_owned(),
            }),
            Err(message) => {
                h.error(diag, "name", message);
                ok = false;
            }
        }
    }
    from.extend(
        p.strings("from_params")
            .iter()
            .map(|q| TokenSource::Query((*q).to_owned())),
    );
    from.extend(
        p.strings("from_cookies")
            .iter()
            .map(|c| TokenSource::Cookie((*c).to_owned())),
    );
    if from.is_empty() {
        from = vec![
            TokenSource::Header {
                name: "authorization".to_owned(),
                prefix: "Bearer ".to_owned(),
            },
            TokenSource::Query("access_token".to_owned()),
        ];
    }
    let forward_payload_header = match p.str("forward_payload_header") {
        Some(header) => match check_field_name(header) {
            Ok(()) => Some(header.to_ascii_lowercase()),
            Err(message) => {
                p.error(diag, "forward_payload_header", message);
                ok = false;
                None
            }
        },
        None => None,
    };
    let mut claim_to_headers = Vec::new();
    for c in p.children("claim_to_headers") {
        c.only(diag, &["header_name", "claim_name"]);
        let header = c.str("header_name").unwrap_or_default();
        match check_field_name(header) {
            Ok(()) => claim_to_headers.push(ClaimToHeader {
                claim: c.str("claim_name").unwrap_or_default().to_owned(),
                header: header.to_ascii_lowercase(),
            }),
            Err(message) => {
                c.error(diag, "header_name", message);
                ok = false;
            }
        }
    }
    let clock_skew = match p.uint("clock_skew_seconds") {
        0 => JwtProvider::DEFAULT_CLOCK_SKEW,
        seconds => Duration::from_secs(seconds),
    };
    let cache_size = match p.child("jwt_cache_config") {
        Some(c) => {
            c.only(diag, &["jwt_cache_size"]);
            match c.uint("jwt_cache_size") {
                0 => JwtProvider::DEFAULT_CACHE_SIZE,
                n => usize::try_from(n).unwrap_or(usize::MAX),
            }
        }
        None => JwtProvider::DEFAULT_CACHE_SIZE,
    };
    let max_lifetime = p.duration("max_lifetime");
    ok.then_some(())?;
    Some(JwtProvider {
        name: name.to_owned(),
        issuer: p.str("issuer").map(str::to_owned),
        audiences: p
            .strings("audiences")
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
        jwks: jwks?,
        from,
        forward: p.bool("forward"),
        forward_payload_header,
        pad_forward_payload_header: p.bool("pad_forward_payload_header"),
        claim_to_headers,
        clock_skew,
        require_expiration: p.bool("require_expiration") || max_lifetime.is_some(),
        max_lifetime,
        required_claims: Vec::new(),
        cache_size,
        payload_in_metadata: p.str("payload_in_metadata").map(str::to_owned),
    })
}

fn remote(
    provider: &str,
    r: &Msg<'_, '_>,
    clusters: &[String],
    diag: &mut Diagnostics,
) -> Option<RemoteJwks> {
    r.only(
        diag,
        &["http_uri", "cache_duration", "async_fetch", "retry_policy"],
    );
    let Some(uri) = r.child("http_uri") else {
        r.error(diag, "http_uri", "`remote_jwks` needs `http_uri`");
        return None;
    };
    uri.only(diag, &["uri", "cluster", "timeout"]);
    let mut ok = true;
    let url = uri.str("uri").unwrap_or_default();
    if let Err(why) = check_url(url) {
        uri.error(
            diag,
            "uri",
            format!("Provider '{provider}' has an invalid URI: '{url}' ({why})"),
        );
        ok = false;
    }
    let cluster = uri.str("cluster").unwrap_or_default();
    if !clusters.iter().any(|c| c == cluster) {
        let hint = suggest::did_you_mean(cluster, clusters.iter().map(String::as_str));
        uri.error(
            diag,
            "cluster",
            format!("unknown cluster \"{cluster}\"{hint}"),
        );
        ok = false;
    }
    let timeout = match uri.duration("timeout") {
        Some(t) if t.is_zero() => {
            uri.error(
                diag,
                "timeout",
                "a JWKS fetch needs a timeout greater than zero (ringway's fetches always have a deadline)",
            );
            ok = false;
            RemoteJwks::DEFAULT_TIMEOUT
        }
        Some(t) => t,
        None => RemoteJwks::DEFAULT_TIMEOUT,
    };
    let (fast_listener, failed_refetch) = match r.child("async_fetch") {
        Some(a) => {
            a.only(diag, &["fast_listener", "failed_refetch_duration"]);
            let failed = match a.duration("failed_refetch_duration") {
                Some(d) if d.is_zero() => {
                    a.error(
                        diag,
                        "failed_refetch_duration",
                        "a refetch after a failure needs a pause greater than zero",
                    );
                    ok = false;
                    RemoteJwks::DEFAULT_FAILED_REFETCH
                }
                Some(d) => d,
                None => RemoteJwks::DEFAULT_FAILED_REFETCH,
            };
            (a.bool("fast_listener"), failed)
        }
        // Envoy fetches on demand and never holds the listener: serve at once.
        None => (true, RemoteJwks::DEFAULT_FAILED_REFETCH),
    };
    let retries = match r.child("retry_policy") {
        Some(policy) => {
            policy.only(diag, &["retry_back_off", "num_retries"]);
            if let Some(back_off) = policy.child("retry_back_off") {
                back_off.only(diag, &["base_interval", "max_interval"]);
            }
            // At most 100, as the native format allows: fetches run one after another on
            // one thread, so a huge count would starve the other providers.
            match policy.wrapped_uint("num_retries") {
                None => 1,
                Some(n) if n <= 100 => n as u32,
                Some(n) => {
                    policy.error(
                        diag,
                        "num_retries",
                        format!("{n} retries: ringway retries a JWKS fetch at most 100 times"),
                    );
                    ok = false;
                    0
                }
            }
        }
        None => 0,
    };
    ok.then_some(())?;
    Some(RemoteJwks {
        url: url.to_owned(),
        cluster: Some(cluster.to_owned()),
        timeout,
        cache_duration: r.duration("cache_duration").unwrap_or(CACHE_DURATION),
        failed_refetch,
        fast_listener,
        retries,
        unknown_kid_refetch: RemoteJwks::DEFAULT_UNKNOWN_KID_REFETCH,
        ready_after_failed_fetch: true,
    })
}

/// `local_jwks`: `inline_string`, `inline_bytes` or `filename` (relative to the working
/// directory, as Envoy reads it), checked to parse.
fn local(l: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<JwksSource> {
    l.only(diag, &["inline_string", "inline_bytes", "filename"]);
    let (field, source) = if let Some(text) = l.str("inline_string") {
        ("inline_string", JwksSource::Inline(text.to_owned()))
    } else if let Some(Pv::Bytes(bytes)) = l
        .msg
        .get_field_by_name("inline_bytes")
        .map(Cow::into_owned)
        .filter(|_| l.has("inline_bytes"))
    {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => ("inline_bytes", JwksSource::Inline(text)),
            Err(_) => {
                l.error(diag, "inline_bytes", "the JWKS is not UTF-8 text");
                return None;
            }
        }
    } else if let Some(name) = l.str("filename") {
        match read_file(Path::new(name), MAX_JWKS_FILE) {
            Ok(text) => (
                "filename",
                JwksSource::File {
                    path: name.into(),
                    text,
                },
            ),
            Err(message) => {
                l.error(diag, "filename", message);
                return None;
            }
        }
    } else {
        // `environment_variable` alone is refused by `only` above.
        if !l.has("environment_variable") {
            diag.error(
                l.loc.pos,
                &l.loc.path,
                "`local_jwks` needs `inline_string`, `inline_bytes` or `filename`",
            );
        }
        return None;
    };
    let text = match &source {
        JwksSource::Inline(text) | JwksSource::File { text, .. } => text.as_str(),
        JwksSource::Remote(_) => "",
    };
    if let Err(message) = crate::auth::jwt::Jwks::parse(text) {
        l.error(diag, field, format!("invalid JWKS: {message}"));
        return None;
    }
    Some(source)
}

/// A `JwtRequirement`; `Some(None)` for the empty one (nothing required), which
/// `inside` a list is refused.
fn requirement(
    r: &Msg<'_, '_>,
    providers: &[&str],
    inside: bool,
    diag: &mut Diagnostics,
) -> Option<Option<Requirement>> {
    r.only(
        diag,
        &[
            "provider_name",
            "provider_and_audiences",
            "requires_any",
            "requires_all",
            "allow_missing",
            "allow_missing_or_failed",
        ],
    );
    if r.has("provider_name") {
        let name = known(r, "provider_name", providers, diag)?;
        return Some(Some(Requirement::Provider {
            name,
            audiences: None,
        }));
    }
    if let Some(pa) = r.child("provider_and_audiences") {
        pa.only(diag, &["provider_name", "audiences"]);
        let name = known(&pa, "provider_name", providers, diag)?;
        let audiences: Vec<String> = pa
            .strings("audiences")
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        return Some(Some(Requirement::Provider {
            name,
            // None: the provider's own audiences (Envoy's rule for an empty list).
            audiences: (!audiences.is_empty()).then_some(audiences),
        }));
    }
    for (field, any) in [("requires_any", true), ("requires_all", false)] {
        let Some(list) = r.child(field) else {
            continue;
        };
        list.only(diag, &["requirements"]);
        let items: Vec<_> = list
            .children("requirements")
            .iter()
            .map(|item| requirement(item, providers, true, diag).flatten())
            .collect();
        let items: Vec<Requirement> = items.into_iter().collect::<Option<_>>()?;
        return Some(Some(if any {
            Requirement::Any(items)
        } else {
            Requirement::All(items)
        }));
    }
    if r.has("allow_missing") {
        return Some(Some(Requirement::AllowMissing));
    }
    if r.has("allow_missing_or_failed") {
        return Some(Some(Requirement::AllowMissingOrFailed));
    }
    if inside {
        diag.error(
            r.loc.pos,
            &r.loc.path,
            "an empty requirement inside requires_any or requires_all is not supported (it would let every request through)",
        );
        return None;
    }
    Some(None)
}

/// A provider name field naming one of the filter's providers (Envoy's message).
fn known(
    m: &Msg<'_, '_>,
    field: &str,
    providers: &[&str],
    diag: &mut Diagnostics,
) -> Option<String> {
    let name = m.str(field).unwrap_or_default();
    if providers.contains(&name) {
        return Some(name.to_owned());
    }
    let hint = suggest::did_you_mean(name, providers.iter().copied());
    m.error(
        diag,
        field,
        format!("Required provider ['{name}'] is not configured.{hint}"),
    );
    None
}

/// The config's providers from every listener's filter (`sets`: a listener's index and
/// its filter's providers). A name every filter defines alike is one provider; a name
/// defined differently is qualified by each listener's name (`listener_0/firebase`),
/// in the provider and in the listener's rules and routes.
pub(crate) fn merge(
    listeners: &mut [Listener],
    sets: Vec<(usize, Vec<JwtProvider>)>,
    b: &Msg<'_, '_>,
    diag: &mut Diagnostics,
) -> AuthConfig {
    let all: Vec<(usize, JwtProvider)> = sets
        .into_iter()
        .flat_map(|(i, providers)| providers.into_iter().map(move |p| (i, p)))
        .collect();
    let mut result: Vec<JwtProvider> = Vec::new();
    for (i, p) in &all {
        let alike = all
            .iter()
            .filter(|(_, q)| q.name == p.name)
            .all(|(_, q)| q == p);
        if alike {
            if !result.iter().any(|q| q.name == p.name) {
                result.push(p.clone());
            }
            continue;
        }
        let Some(listener) = listeners.get_mut(*i) else {
            continue;
        };
        let qualified = format!("{}/{}", listener.name, p.name);
        rename_in(listener, &p.name, &qualified);
        result.push(JwtProvider {
            name: qualified,
            ..p.clone()
        });
    }
    for (i, p) in result.iter().enumerate() {
        if result.iter().take(i).any(|q| q.name == p.name) {
            b.error(
                diag,
                "static_resources",
                format!(
                    "two jwt_authn providers end up named {:?} (a provider defined differently by two listeners is named `<listener>/<provider>`)",
                    p.name
                ),
            );
        }
    }
    AuthConfig {
        jwt_providers: result,
        api_keys: None,
    }
}

/// Renames provider `from` to `to` in a listener's rules and routes.
fn rename_in(listener: &mut Listener, from: &str, to: &str) {
    if let Some(auth) = &mut listener.auth {
        for rule in &mut auth.rules {
            if let Some(r) = &mut rule.requires {
                rename(r, from, to);
            }
        }
    }
    let routes = listener.routes.iter_mut().chain(
        listener
            .virtual_hosts
            .iter_mut()
            .flat_map(|h| &mut h.routes),
    );
    for route in routes {
        if let Some(RouteAuth::Requires(r)) = &mut route.auth {
            rename(r, from, to);
        }
    }
}

fn rename(r: &mut Requirement, from: &str, to: &str) {
    match r {
        Requirement::Provider { name, .. } if name == from => *name = to.to_owned(),
        Requirement::Any(items) | Requirement::All(items) => {
            for item in items {
                rename(item, from, to);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
