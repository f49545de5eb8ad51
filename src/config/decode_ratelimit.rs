//! Native rate limits: a listener's and a route's `rate_limit`, the listener's
//! `rate_limit_headers` and `connection_rate`, and the short form's `rate_limit` (see
//! `config::ratelimit` for the model and the bucket's meaning).
//!
//! ```yaml
//! listeners:
//!   - name: edge
//!     rate_limit: 1000/s              # every route's requests (routes add theirs)
//!     rate_limit_headers: true        # RateLimit-Policy / RateLimit on responses
//!     connection_rate: 200/s          # or { rate: 200/s, burst: 400 }
//!     routes:
//!       - match: { prefix: /api }
//!         cluster: api
//!         rate_limit: 100/min         # per client address, burst 100
//!       - match: { prefix: /open }
//!         cluster: api
//!         rate_limit: none            # not even the listener's
//!       - match: { prefix: /keys }
//!         cluster: api
//!         rate_limit:                 # a mapping, or a list of rates and mappings
//!           - name: per-consumer
//!             rate: 1000/h
//!             burst: 50
//!             key: consumer           # client | consumer | peer | route | {header: x} |
//!                                     # {claim: a.b} | a list of parts (route alone)
//!             plans: { gold: 10000/h, free: { rate: 100/h, burst: 10 } }
//!             shadow: false
//!             per_connection: false
//!             max_keys: 16384
//! ```
//!
//! A rate is `N/s`, `N/min`, `N/h`, `N/day` (with the aliases `sec`, `second`, `m`,
//! `minute`, `hour`, `d`) or `N/<duration>` (`2/5s`, the units of `config::units`): a
//! token bucket refilled continuously at N per period whose `burst` (capacity) defaults
//! to N. Bounds: N and `burst` from 1 to 1,000,000,000; at most 1,000,000 tokens a second
//! and at least one a day; an empty bucket refills within 365 days (so a theoretical
//! arrival time stays far inside the engine's 48-bit microsecond clock).
//!
//! Design: the limits are decoded where they are written, each route's into a
//! [`RouteLimits`] that `decode::listener` hands back to [`resolve`] once the listener's
//! routes and virtual hosts are all read; resolving then gives every limit its name and
//! id and every route its [`RateLimitPolicy`] (the listener's limits, with the same ids on
//! every route so they share their buckets, then the route's own). Names are unique in a
//! listener: explicit names are recorded in `Marks::rate_limit_names` as they are read
//! and checked once per listener ([`unique_names`]), so a repeat is reported even when
//! another route failed. Default names are derived from what the limit is attached to,
//! never from the route's position, so that inserting a route keeps the other routes'
//! buckets across a reload: `listener` (then `listener.1`, ...) for a listener's limits;
//! a route's `name`, else its match's path, reduced to stat-name characters
//! (`/api/orders/**` is `api_orders`, `/` is `root`), prefixed by `<virtual host>.` in a
//! virtual host, with `.1`, `.2`... for a route's second and later limits; a default name
//! that is already taken gets `-2`, `-3`... Ids are `<listener>/<name>`.
//!
//! Refused beyond wrong shapes and bounds: `none` on a listener or inside a list, `route`
//! inside a combination, a part twice, `plans` without `consumer` in the key, `max_keys`
//! with `key: route` (one bucket: its `max_keys` is 1), and a `consumer` (or `claim`) key
//! in a file whose `auth` declares nothing that could find one (no JWT provider or API
//! keys; no JWT provider), where every request would skip the limit.
//!
//! The short form's `rate_limit` is checked here, at its own position, and written into
//! the expansion as flow YAML of the very value written ([`short_route`]), which the full
//! form then decodes.

use std::collections::HashSet;
use std::fmt::Write;
use std::time::Duration;

use super::error::Diagnostics;
use super::fields::{choice, exactly_one, non_empty_list, optional_bool, token_byte, AuthMarks};
use super::model::{Route, RouteMatch};
use super::node::{Map, Node};
use super::ratelimit::{
    Bucket, ConnectionRate, KeyPart, Limit, LimitHeaders, LimitKey, RateLimitPolicy,
};
use super::units::parse_duration;

const LIMIT_KEYS: &[&str] = &[
    "name",
    "rate",
    "burst",
    "key",
    "plans",
    "shadow",
    "per_connection",
    "max_keys",
];
/// A plan's bucket and `connection_rate` as mappings.
const BUCKET_KEYS: &[&str] = &["rate", "burst"];
const KEY_PART_KEYS: &[&str] = &["header", "claim", "query"];

/// The largest token count and `burst`.
const MAX_COUNT: u64 = 1_000_000_000;
/// The most tokens a second a rate may add.
const MAX_PER_SECOND: u128 = 1_000_000;
/// The longest interval between two tokens.
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);
/// The longest time an empty bucket may take to fill.
const MAX_REFILL_DAYS: u128 = 365;
/// The most distinct keys a limit may keep buckets for.
const MAX_KEYS: i64 = 16_777_216;
/// The longest default name derived from a route.
const MAX_DERIVED_NAME: usize = 64;

const EXPECTED_LIMIT: &str =
    "a rate such as `100/min`, a mapping with `rate`, a list of these, or `none`";

/// A limit as written, before [`resolve`] names it (`limit.name` and `limit.id` are empty
/// until then).
#[derive(Debug)]
pub(super) struct Pending {
    /// The explicit `name`, if any.
    name: Option<String>,
    limit: Limit,
}

/// What a route's `rate_limit` says.
#[derive(Debug)]
pub(super) enum RouteLimits {
    /// No `rate_limit`: the listener's limits, if any.
    Inherit,
    /// `none`: no limit, not even the listener's.
    Off,
    /// The listener's limits and these.
    Own(Vec<Pending>),
}

/// A listener's `rate_limit` and `rate_limit_headers`.
#[derive(Debug, Default)]
pub(super) struct ListenerLimits {
    limits: Vec<Pending>,
    headers: LimitHeaders,
}

/// A listener's `rate_limit` and `rate_limit_headers`; explicit names go to `names`.
pub(super) fn listener<'a>(
    map: &Map<'a>,
    diag: &mut Diagnostics,
    names: &mut Vec<(&'a str, Node<'a>)>,
    auth: Option<&AuthMarks>,
) -> Option<ListenerLimits> {
    let headers = optional_bool(map, "rate_limit_headers", false, diag).map(|on| {
        if on {
            LimitHeaders::Ietf
        } else {
            LimitHeaders::None
        }
    });
    let limits = match map.optional("rate_limit") {
        Some(n) if n.peek_str() == Some("none") => {
            n.error(
                diag,
                "`none` is a route's (it turns the listener's limits off); a listener without \
                 limits leaves `rate_limit` out",
            );
            None
        }
        Some(n) => limits(&n, diag, names, auth),
        None => Some(Vec::new()),
    };
    Some(ListenerLimits {
        limits: limits?,
        headers: headers?,
    })
}

/// A route's `rate_limit`; explicit names go to `names`.
pub(super) fn route<'a>(
    map: &Map<'a>,
    diag: &mut Diagnostics,
    names: &mut Vec<(&'a str, Node<'a>)>,
    auth: Option<&AuthMarks>,
) -> Option<RouteLimits> {
    match map.optional("rate_limit") {
        Some(n) if n.peek_str() == Some("none") => Some(RouteLimits::Off),
        Some(n) => limits(&n, diag, names, auth).map(RouteLimits::Own),
        None => Some(RouteLimits::Inherit),
    }
}

/// A listener's `connection_rate` (`Some(None)` when absent); its id is the listener's
/// name.
pub(super) fn connection_rate(
    map: &Map<'_>,
    listener: Option<&str>,
    diag: &mut Diagnostics,
) -> Option<Option<ConnectionRate>> {
    let Some(node) = map.optional("connection_rate") else {
        return Some(None);
    };
    let bucket = plain_bucket(&node, diag, "a rate such as `200/s`, or `{rate, burst}`")?;
    Some(Some(ConnectionRate {
        bucket,
        id: listener?.to_owned(),
        envoy_stat_prefix: None,
    }))
}

/// The short form's `rate_limit`, checked (names unique among the short routes, through
/// `names`), as the flow YAML the expansion writes.
pub(super) fn short_route<'a>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    names: &mut Vec<(&'a str, Node<'a>)>,
    auth: Option<&AuthMarks>,
) -> Option<String> {
    if node.peek_str() == Some("none") {
        return Some("none".to_owned());
    }
    limits(node, diag, names, auth)?;
    Some(flow_text(node))
}

/// Reports every repeat of an explicit name at the repeat (in file order); whether there
/// was none.
pub(super) fn unique_names(names: &mut [(&str, Node<'_>)], diag: &mut Diagnostics) -> bool {
    names.sort_by_key(|(_, n)| n.pos());
    let mut ok = true;
    for (i, (name, node)) in names.iter().enumerate() {
        if let Some((_, first)) = names.iter().take(i).find(|(n, _)| n == name) {
            node.error(
                diag,
                format!(
                    "duplicate rate limit name {name:?} (first defined at {}: {}); names are \
                     unique in a listener",
                    first.pos(),
                    first.path()
                ),
            );
            ok = false;
        }
    }
    ok
}

/// Names the listener's and its routes' limits and sets each route's `rate_limit`.
/// `routes` are the listener's routes, or its virtual hosts' (with the host's name), in
/// file order, each with what its `rate_limit` said; explicit names are unique
/// ([`unique_names`]).
pub(super) fn resolve<'r>(
    listener: &str,
    own: ListenerLimits,
    routes: impl IntoIterator<Item = (Option<&'r str>, &'r mut Route, RouteLimits)>,
) {
    let routes: Vec<_> = routes.into_iter().collect();
    let mut taken: HashSet<String> = own
        .limits
        .iter()
        .chain(routes.iter().flat_map(|(_, _, limits)| match limits {
            RouteLimits::Own(limits) => limits.as_slice(),
            _ => &[][..],
        }))
        .filter_map(|p| p.name.clone())
        .collect();
    let mut name = |pending: &Pending, base: &str, index: usize| match &pending.name {
        Some(name) => name.clone(),
        None => {
            let wanted = match index {
                0 => base.to_owned(),
                i => format!("{base}.{i}"),
            };
            let mut candidate = wanted.clone();
            let mut n = 2;
            while taken.contains(&candidate) {
                candidate = format!("{wanted}-{n}");
                n += 1;
            }
            taken.insert(candidate.clone());
            candidate
        }
    };
    let finish = |pending: Pending, name: String| Limit {
        id: format!("{listener}/{name}"),
        name,
        ..pending.limit
    };
    let shared: Vec<Limit> = own
        .limits
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let n = name(&p, "listener", i);
            finish(p, n)
        })
        .collect();
    for (host, route, limits) in routes {
        let own_limits = match limits {
            RouteLimits::Inherit => Vec::new(),
            RouteLimits::Off => {
                route.rate_limit = None;
                continue;
            }
            RouteLimits::Own(limits) => {
                let base = route_base(host, route);
                limits
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let n = name(&p, &base, i);
                        finish(p, n)
                    })
                    .collect()
            }
        };
        let all: Vec<Limit> = shared.iter().cloned().chain(own_limits).collect();
        route.rate_limit = (!all.is_empty()).then(|| RateLimitPolicy::native(all, own.headers));
    }
}

/// A route's default limit name: its `name`, else its match's text, in stat-name
/// characters; in a virtual host, after the host's name.
fn route_base(host: Option<&str>, route: &Route) -> String {
    let from_name = route
        .name
        .as_deref()
        .map(stat_word)
        .filter(|w| !w.is_empty());
    let base = from_name.unwrap_or_else(|| {
        let text = match &route.matcher {
            RouteMatch::Prefix(t)
            | RouteMatch::Path(t)
            | RouteMatch::PrefixAnyCase(t)
            | RouteMatch::PathAnyCase(t)
            | RouteMatch::Regex(t)
            | RouteMatch::Template(t) => t,
        };
        let word = stat_word(text);
        if word.is_empty() {
            "root".to_owned()
        } else {
            word
        }
    });
    match host {
        Some(host) => format!("{host}.{base}"),
        None => base,
    }
}

/// The runs of letters, digits, `_` and `-` of `text`, joined by `_` (at most
/// [`MAX_DERIVED_NAME`] bytes).
fn stat_word(text: &str) -> String {
    let mut out = String::new();
    let pieces = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|p| !p.is_empty());
    for piece in pieces {
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(piece);
    }
    // ASCII only, so any byte index is a char boundary.
    out.truncate(MAX_DERIVED_NAME);
    out.trim_end_matches('_').to_owned()
}

/// A `rate_limit` value other than `none`: one limit or a non-empty list of them.
fn limits<'a>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    names: &mut Vec<(&'a str, Node<'a>)>,
    auth: Option<&AuthMarks>,
) -> Option<Vec<Pending>> {
    if !node.is_seq() {
        return limit(node, diag, names, auth).map(|p| vec![p]);
    }
    non_empty_list(node, diag, "limit", |item, diag| {
        if item.peek_str() == Some("none") {
            item.error(
                diag,
                "`none` stands alone (`rate_limit: none`), not in a list of limits",
            );
            return None;
        }
        limit(item, diag, names, auth)
    })
}

/// One limit: a rate (per client address), or a mapping.
fn limit<'a>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    names: &mut Vec<(&'a str, Node<'a>)>,
    auth: Option<&AuthMarks>,
) -> Option<Pending> {
    if node.peek_str().is_some() {
        let bucket = bucket(node, None, diag)?;
        return Some(Pending {
            name: None,
            limit: new_limit(bucket, vec![KeyPart::Client]),
        });
    }
    if node.peek_int().is_some() || node.peek_bool().is_some() {
        node.wrong_type(diag, EXPECTED_LIMIT);
        return None;
    }
    let map = node.map(diag, LIMIT_KEYS)?;
    let name = match map.optional("name") {
        Some(n) => super::fields::name(&n, diag).map(|text| {
            names.push((text, n.clone()));
            Some(text.to_owned())
        }),
        None => Some(None),
    };
    let bucket = match map.field(diag, "rate") {
        Some(rate) => bucket(&rate, map.optional("burst").as_ref(), diag),
        None => None,
    };
    let key_node = map.optional("key");
    let parts = match &key_node {
        Some(n) => key(n, diag, auth),
        None => Some(vec![KeyPart::Client]),
    };
    let plans = match map.optional("plans") {
        Some(n) => {
            let with_consumer = parts
                .as_ref()
                .is_some_and(|p| p.contains(&KeyPart::Consumer));
            if parts.is_some() && !with_consumer {
                n.error(
                    diag,
                    "`plans` chooses a bucket by the consumer's `plan` metadata; it needs a \
                     `key` with `consumer`",
                );
                None
            } else {
                plans(&n, diag)
            }
        }
        None => Some(Vec::new()),
    };
    let shadow = optional_bool(&map, "shadow", false, diag);
    let per_connection = optional_bool(&map, "per_connection", false, diag);
    let max_keys = match map.optional("max_keys") {
        Some(n) => {
            let value = n
                .int_in(diag, "a number of keys", 1..=MAX_KEYS)
                .and_then(|v| u32::try_from(v).ok());
            if matches!(&parts, Some(p) if p.is_empty()) {
                n.error(
                    diag,
                    "`max_keys` bounds the keys of a keyed limit; `key: route` has one bucket",
                );
                None
            } else {
                value.map(Some)
            }
        }
        None => Some(None),
    };
    let mut limit = new_limit(bucket?, parts?);
    if let Some(max_keys) = max_keys? {
        limit.max_keys = max_keys;
    }
    limit.plans = plans?;
    limit.shadow = shadow?;
    limit.per_connection = per_connection?;
    Some(Pending { name: name?, limit })
}

/// A limit with the defaults, not yet named.
fn new_limit(bucket: Bucket, parts: Vec<KeyPart>) -> Limit {
    let one = parts.is_empty();
    Limit {
        name: String::new(),
        id: String::new(),
        bucket,
        key: LimitKey::Parts(parts),
        plans: Vec::new(),
        shadow: false,
        per_connection: false,
        max_keys: if one { 1 } else { Limit::DEFAULT_MAX_KEYS },
    }
}

/// `key`: a word, `{header}` / `{claim}`, or a list of those (not `route`). The empty
/// list of parts is `route`.
fn key(node: &Node<'_>, diag: &mut Diagnostics, auth: Option<&AuthMarks>) -> Option<Vec<KeyPart>> {
    let parts = if node.is_seq() {
        let items = node.seq(diag)?;
        let mut parts: Vec<KeyPart> = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in &items {
            if item.peek_str() == Some("route") {
                item.error(
                    diag,
                    "`route` is a key of its own (one bucket for every request of the limit), \
                     not a part of a combination",
                );
                ok = false;
                continue;
            }
            match part(item, diag) {
                Some(Some(p)) if parts.contains(&p) => {
                    item.error(diag, "this part is already in the key");
                    ok = false;
                }
                Some(Some(p)) => parts.push(p),
                _ => ok = false,
            }
        }
        if ok && parts.is_empty() {
            node.error(
                diag,
                "a key lists at least one part (`key: route` for one bucket)",
            );
            return None;
        }
        ok.then_some(parts)?
    } else {
        part(node, diag)?.into_iter().collect()
    };
    if let Some(auth) = auth {
        let jwt = !auth.jwt_providers.is_empty();
        let problem = if parts.contains(&KeyPart::Consumer) && !jwt && !auth.api_keys {
            Some(
                "`consumer` is who authentication found; the file's `auth` declares no JWT \
                 provider and no API keys",
            )
        } else if parts.iter().any(|p| matches!(p, KeyPart::Claim(_))) && !jwt {
            Some("`claim` reads the verified JWT; the file's `auth` declares no JWT provider")
        } else {
            None
        };
        if let Some(problem) = problem {
            node.error(diag, problem);
            return None;
        }
    }
    Some(parts)
}

/// One part of a key; `Some(None)` for `route`.
fn part(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Option<KeyPart>> {
    if node.peek_str().is_some() {
        return choice(
            node,
            diag,
            &[
                ("client", Some(KeyPart::Client)),
                ("consumer", Some(KeyPart::Consumer)),
                ("peer", Some(KeyPart::Peer)),
                ("route", None),
            ],
        );
    }
    if node.entries(&mut scratch()).is_none() {
        node.wrong_type(
            diag,
            "`client`, `consumer`, `peer`, `route`, `{header: name}`, `{claim: name}`, \
             `{query: name}` or a list of parts",
        );
        return None;
    }
    let map = node.map(diag, KEY_PART_KEYS)?;
    let (kind, n) = exactly_one(
        (node, &map),
        (KEY_PART_KEYS, KEY_PART_KEYS),
        diag,
        "a key part mapping has exactly one of `header`, `claim` or `query`",
    )?;
    let text = n.str(diag)?;
    if kind == "header" {
        if text.is_empty() || !text.bytes().all(token_byte) {
            n.error(
                diag,
                format!("{text:?} is not a header name (letters, digits and !#$%&'*+-.^_`|~)"),
            );
            return None;
        }
        return Some(Some(KeyPart::Header(text.to_ascii_lowercase())));
    }
    if kind == "query" {
        if text.is_empty() {
            n.error(diag, "a query parameter's name is not empty");
            return None;
        }
        return Some(Some(KeyPart::Query(text.to_owned())));
    }
    if text.is_empty() || text.split('.').any(str::is_empty) {
        n.error(
            diag,
            format!("{text:?} is not a claim: a name, or a dotted path such as `org.id`"),
        );
        return None;
    }
    Some(Some(KeyPart::Claim(text.to_owned())))
}

/// `plans`: plan names (the consumer's `plan` metadata values) to buckets.
fn plans(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<(String, Bucket)>> {
    let entries = node.entries(diag)?;
    if entries.is_empty() {
        node.error(
            diag,
            "`plans` needs at least one plan (such as `gold: 10000/h`)",
        );
        return None;
    }
    let mut plans = Vec::with_capacity(entries.len());
    let mut ok = true;
    for (name, key_node, value) in entries {
        if name.is_empty() {
            key_node.error(diag, "a plan name is not empty");
            ok = false;
            continue;
        }
        match plain_bucket(&value, diag, "a rate such as `10000/h`, or `{rate, burst}`") {
            Some(bucket) => plans.push((name.to_owned(), bucket)),
            None => ok = false,
        }
    }
    ok.then_some(plans)
}

/// A rate, or a `{rate, burst}` mapping.
fn plain_bucket(node: &Node<'_>, diag: &mut Diagnostics, expected: &str) -> Option<Bucket> {
    if node.peek_str().is_some() {
        return bucket(node, None, diag);
    }
    if node.entries(&mut scratch()).is_none() {
        node.wrong_type(diag, expected);
        return None;
    }
    let map = node.map(diag, BUCKET_KEYS)?;
    let rate = map.field(diag, "rate")?;
    bucket(&rate, map.optional("burst").as_ref(), diag)
}

/// The bucket of a `rate` and an optional `burst` (default: the rate's count), bounded.
fn bucket(rate: &Node<'_>, burst: Option<&Node<'_>>, diag: &mut Diagnostics) -> Option<Bucket> {
    let parsed =
        rate.scalar_text(diag, "a rate such as `100/min`")
            .and_then(|text| match parse_rate(&text) {
                Ok(r) => Some((text, r)),
                Err(message) => {
                    rate.error(diag, message);
                    None
                }
            });
    let burst_value = match burst {
        Some(n) => n
            .int_in(diag, "a burst", 1..=MAX_COUNT as i64)
            .and_then(|b| u64::try_from(b).ok())
            .map(Some),
        None => Some(None),
    };
    let (text, (tokens, per)) = parsed?;
    let burst_value = burst_value?.unwrap_or(tokens);
    // The time an empty bucket takes to fill: burst × per / tokens.
    let refill_ns = u128::from(burst_value) * per.as_nanos();
    let max_ns = u128::from(tokens) * MAX_REFILL_DAYS * 86_400 * 1_000_000_000;
    if refill_ns > max_ns {
        let days = refill_ns / (u128::from(tokens) * 86_400 * 1_000_000_000);
        let at = burst.unwrap_or(rate);
        at.error(
            diag,
            format!(
                "a burst of {burst_value} at {text} takes {days} days to refill from empty; at \
                 most {MAX_REFILL_DAYS} (lower the burst or raise the rate)"
            ),
        );
        return None;
    }
    Some(Bucket {
        tokens,
        per,
        burst: burst_value,
    })
}

/// `N/unit` (`s`, `min`, `h`, `day` and their aliases) or `N/<duration>`: the count and
/// the period, within the bounds of the module note.
pub(super) fn parse_rate(text: &str) -> Result<(u64, Duration), String> {
    let bad = || {
        format!(
            "invalid rate {text:?}: expected `N/s`, `N/min`, `N/h`, `N/day` or `N/<duration>`, \
             e.g. `100/min` or `2/5s`"
        )
    };
    let (count, unit) = text.split_once('/').ok_or_else(bad)?;
    let count = count.trim();
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let tokens = match count.parse::<u64>() {
        Ok(0) => return Err(format!("invalid rate {text:?}: the count is at least 1")),
        Ok(n) if n <= MAX_COUNT => n,
        _ => {
            return Err(format!(
                "invalid rate {text:?}: the count is at most {MAX_COUNT}"
            ))
        }
    };
    let unit = unit.trim();
    let per = match unit {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        u if u.starts_with(|c: char| c.is_ascii_digit()) => {
            parse_duration(u).map_err(|e| format!("invalid rate {text:?}: {e}"))?
        }
        _ => return Err(bad()),
    };
    if per.is_zero() {
        return Err(format!(
            "invalid rate {text:?}: the period is greater than zero"
        ));
    }
    let per_ns = per.as_nanos();
    if u128::from(tokens) * 1_000_000_000 > MAX_PER_SECOND * per_ns {
        return Err(format!(
            "rate {text:?} is over {MAX_PER_SECOND} a second, the most a limit allows"
        ));
    }
    if per_ns > u128::from(tokens) * MAX_INTERVAL.as_nanos() {
        return Err(format!(
            "rate {text:?} is under one a day, the least a limit allows"
        ));
    }
    Ok((tokens, per))
}

/// Diagnostics for a shape question whose answer is reported elsewhere.
fn scratch() -> Diagnostics {
    Diagnostics::new(std::path::Path::new(""))
}

/// A value as flow YAML: strings quoted, mapping keys bare where that reads the same.
fn flow_text(node: &Node<'_>) -> String {
    let mut out = String::new();
    write_flow(node, &mut out);
    out
}

fn write_flow(node: &Node<'_>, out: &mut String) {
    if let Some(text) = node.peek_str() {
        out.push_str(&quote(text));
    } else if let Some(i) = node.peek_int() {
        let _ = write!(out, "{i}");
    } else if let Some(b) = node.peek_bool() {
        let _ = write!(out, "{b}");
    } else if node.is_seq() {
        let items = node.seq(&mut scratch()).unwrap_or_default();
        out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_flow(item, out);
        }
        out.push(']');
    } else if let Some(entries) = node.entries(&mut scratch()) {
        out.push_str("{ ");
        for (i, (key, _, value)) in entries.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let bare = key.starts_with(|c: char| c.is_ascii_lowercase())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && !matches!(
                    *key,
                    "true" | "false" | "null" | "yes" | "no" | "on" | "off"
                );
            if bare {
                out.push_str(key);
            } else {
                out.push_str(&quote(key));
            }
            out.push_str(": ");
            write_flow(value, out);
        }
        out.push_str(" }");
    } else {
        // Null: a checked value has none where it matters (`key:` means the default).
        out.push_str("null");
    }
}

/// A YAML double-quoted scalar (JSON string syntax).
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::parse_rate;
    use crate::config::ratelimit::*;
    use crate::config::{Config, Listener};

    const AUTH: &str = "auth:\n  api_keys:\n    consumers:\n      - { name: acme, keys: [k1], metadata: { plan: gold } }\n  jwt_providers:\n    - { name: main, jwks: { url: \"https://id.example.com/jwks\" } }\n";

    fn parse(text: &str) -> Result<Config, Vec<String>> {
        Config::parse(text, Path::new("t.yaml"))
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    /// A listener `a` with these listener keys (indented by 4) and routes (each a
    /// `- match` item indented by 6), after the `AUTH` section.
    fn listener(keys: &str, routes: &str) -> Result<Listener, Vec<String>> {
        let text = format!(
            "{AUTH}listeners:\n  - name: a\n    address: 127.0.0.1:1\n{keys}    routes:\n{routes}"
        );
        parse(&text).map(|mut c| c.listeners.remove(0))
    }

    fn errors(keys: &str, routes: &str) -> Vec<String> {
        listener(keys, routes).expect_err("refused")
    }

    /// The policy of the only route, whose `rate_limit` is `value`.
    fn policy(value: &str) -> Option<RateLimitPolicy> {
        let routes = format!(
            "      - match: {{ prefix: /api }}\n        direct_response: {{ status: 200 }}\n        rate_limit: {value}\n"
        );
        let l = listener("", &routes).unwrap_or_else(|e| panic!("{e:?}"));
        l.routes[0].rate_limit.clone()
    }

    fn limits(value: &str) -> Vec<Limit> {
        policy(value).expect("a policy").limits
    }

    /// The one error of a route `rate_limit: value` (at line 12 of the file).
    fn refused(value: &str) -> String {
        let routes = format!(
            "      - match: {{ prefix: /api }}\n        direct_response: {{ status: 200 }}\n        rate_limit: {value}\n"
        );
        let e = errors("", &routes);
        assert_eq!(e.len(), 1, "{e:?}");
        e[0].clone()
    }

    fn bucket(tokens: u64, per_secs: u64, burst: u64) -> Bucket {
        Bucket {
            tokens,
            per: Duration::from_secs(per_secs),
            burst,
        }
    }

    fn limit(name: &str, bucket: Bucket, parts: Vec<KeyPart>) -> Limit {
        Limit {
            name: name.to_owned(),
            id: format!("a/{name}"),
            max_keys: if parts.is_empty() {
                1
            } else {
                Limit::DEFAULT_MAX_KEYS
            },
            bucket,
            key: LimitKey::Parts(parts),
            plans: Vec::new(),
            shadow: false,
            per_connection: false,
        }
    }

    #[test]
    fn rate_grammar() {
        let secs = Duration::from_secs;
        assert_eq!(parse_rate("100/min"), Ok((100, secs(60))));
        assert_eq!(parse_rate("5/s"), Ok((5, secs(1))));
        assert_eq!(parse_rate("1000 / hour"), Ok((1000, secs(3600))));
        for (text, per) in [
            ("1/sec", 1),
            ("1/second", 1),
            ("1/m", 60),
            ("1/minute", 60),
            ("1/h", 3600),
            ("1/d", 86_400),
            ("1/day", 86_400),
            ("2/5s", 5),
            ("10/10m", 600),
            ("7/24h", 86_400),
        ] {
            assert_eq!(parse_rate(text).map(|r| r.1), Ok(secs(per)), "{text}");
        }
        assert_eq!(parse_rate("1/500ms"), Ok((1, Duration::from_millis(500))));
        // Bounds: a count from 1 to 10⁹, at most 10⁶ a second, at least one a day.
        assert_eq!(parse_rate("1000000/s"), Ok((1_000_000, secs(1))));
        assert_eq!(parse_rate("1/day").map(|r| r.0), Ok(1));
        assert_eq!(
            parse_rate("0/min").unwrap_err(),
            "invalid rate \"0/min\": the count is at least 1"
        );
        assert_eq!(
            parse_rate("1000000001/h").unwrap_err(),
            "invalid rate \"1000000001/h\": the count is at most 1000000000"
        );
        assert_eq!(
            parse_rate("1000001/s").unwrap_err(),
            "rate \"1000001/s\" is over 1000000 a second, the most a limit allows"
        );
        assert_eq!(parse_rate("1/1us").unwrap(), (1, Duration::from_micros(1)));
        assert!(parse_rate("2/1us").unwrap_err().contains("is over"));
        assert_eq!(
            parse_rate("1/25h").unwrap_err(),
            "rate \"1/25h\" is under one a day, the least a limit allows"
        );
        assert_eq!(
            parse_rate("100/week").unwrap_err(),
            "invalid rate \"100/week\": expected `N/s`, `N/min`, `N/h`, `N/day` or `N/<duration>`, e.g. `100/min` or `2/5s`"
        );
        assert!(parse_rate("1/0s")
            .unwrap_err()
            .contains("greater than zero"));
        assert!(parse_rate("1/5x").unwrap_err().contains("unknown unit `x`"));
        for bad in ["fast", "/s", "-1/s", "+1/s", "1.5/s", "1/", "1/s/s", "٣/s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shorthand_defaults() {
        assert_eq!(
            limits("100/min"),
            [limit("api", bucket(100, 60, 100), vec![KeyPart::Client])]
        );
        let p = policy("100/min").unwrap();
        assert_eq!(p.enabled, Fraction::ALL);
        assert_eq!(p.enforced, Fraction::ALL);
        assert_eq!(p.status, 429);
        assert!(p.retry_after);
        assert_eq!(p.headers, LimitHeaders::None);
        assert_eq!(p.envoy, None);
        assert!(p.response_headers.is_empty());
        // A mapping with only `rate` is the same limit.
        assert_eq!(limits("{ rate: 100/min }"), limits("100/min"));
        // No `rate_limit`, or `none`: no policy.
        assert_eq!(policy("none"), None);
        assert_eq!(policy("~"), None);
    }

    #[test]
    fn every_key_of_a_limit() {
        let l = limits(
            "{ name: per-consumer, rate: 1000/h, burst: 50, key: consumer, plans: { gold: 10000/h, free: { rate: 100/h, burst: 10 } }, shadow: true, per_connection: true, max_keys: 1024 }",
        );
        assert_eq!(
            l,
            [Limit {
                name: "per-consumer".into(),
                id: "a/per-consumer".into(),
                bucket: bucket(1000, 3600, 50),
                key: LimitKey::Parts(vec![KeyPart::Consumer]),
                plans: vec![
                    ("gold".into(), bucket(10_000, 3600, 10_000)),
                    ("free".into(), bucket(100, 3600, 10)),
                ],
                shadow: true,
                per_connection: true,
                max_keys: 1024,
            }]
        );
        assert!(l[0].needs_identity());
        let key = |k: &str| limits(&format!("{{ rate: 1/s, key: {k} }}"))[0].key.clone();
        let parts = |p: Vec<KeyPart>| LimitKey::Parts(p);
        assert_eq!(key("client"), parts(vec![KeyPart::Client]));
        assert_eq!(key("peer"), parts(vec![KeyPart::Peer]));
        assert_eq!(key("route"), parts(vec![]));
        assert_eq!(
            key("{ header: X-Tenant }"),
            parts(vec![KeyPart::Header("x-tenant".into())])
        );
        assert_eq!(
            key("{ claim: org.id }"),
            parts(vec![KeyPart::Claim("org.id".into())])
        );
        assert_eq!(
            key("[consumer, { header: x-region }, client]"),
            parts(vec![
                KeyPart::Consumer,
                KeyPart::Header("x-region".into()),
                KeyPart::Client
            ])
        );
        assert_eq!(key("[peer]"), parts(vec![KeyPart::Peer]));
        assert_eq!(
            key("{ query: api_key }"),
            parts(vec![KeyPart::Query("api_key".into())])
        );
        // One bucket: `max_keys` is 1.
        assert_eq!(limits("{ rate: 1/s, key: route }")[0].max_keys, 1);
        assert_eq!(
            limits("{ rate: 1/s, key: client, max_keys: 16777216 }")[0].max_keys,
            16_777_216
        );
        // Plans with a combination containing `consumer`.
        assert_eq!(
            limits("{ rate: 1/s, key: [consumer, client], plans: { gold: 2/s } }")[0].plans,
            [("gold".to_owned(), bucket(2, 1, 2))]
        );
        assert_eq!(
            limits("{ rate: 2/5s, burst: 1 }")[0].bucket,
            bucket(2, 5, 1)
        );
    }

    #[test]
    fn listener_limits_are_shared_by_every_route() {
        let l = listener(
            "    rate_limit: 1000/s\n    rate_limit_headers: true\n    connection_rate: 200/s\n",
            "      - match: { prefix: /api }\n        cluster: c\n        rate_limit: 100/min\n      - match: { prefix: /open }\n        cluster: c\n        rate_limit: none\n      - match: { prefix: /keys }\n        cluster: c\n        rate_limit:\n          - name: per-consumer\n            rate: 1000/h\n            key: consumer\n          - 10/s\n      - match: { prefix: / }\n        cluster: c\nclusters: [ { name: c, endpoints: [127.0.0.1:2] } ]\n",
        )
        .unwrap();
        let shared = limit("listener", bucket(1000, 1, 1000), vec![KeyPart::Client]);
        let policy = |limits| Some(RateLimitPolicy::native(limits, LimitHeaders::Ietf));
        let r = &l.routes;
        assert_eq!(
            r[0].rate_limit,
            policy(vec![
                shared.clone(),
                limit("api", bucket(100, 60, 100), vec![KeyPart::Client])
            ])
        );
        assert_eq!(r[1].rate_limit, None);
        assert_eq!(
            r[2].rate_limit,
            policy(vec![
                shared.clone(),
                limit(
                    "per-consumer",
                    bucket(1000, 3600, 1000),
                    vec![KeyPart::Consumer]
                ),
                limit("keys.1", bucket(10, 1, 10), vec![KeyPart::Client]),
            ])
        );
        assert_eq!(r[3].rate_limit, policy(vec![shared]));
        assert_eq!(
            l.connection_rate,
            Some(ConnectionRate {
                bucket: bucket(200, 1, 200),
                id: "a".into(),
                envoy_stat_prefix: None
            })
        );
        // Several listener limits; the mapping form of `connection_rate`.
        let l = listener(
            "    rate_limit: [1000/s, { rate: 10/s, key: route }]\n    rate_limit_headers: false\n    connection_rate: { rate: 200/s, burst: 400 }\n",
            "      - match: { prefix: / }\n        direct_response: { status: 200 }\n",
        )
        .unwrap();
        let p = l.routes[0].rate_limit.clone().unwrap();
        assert_eq!(p.headers, LimitHeaders::None);
        let names: Vec<_> = p.limits.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(names, ["a/listener", "a/listener.1"]);
        assert_eq!(l.connection_rate.unwrap().bucket, bucket(200, 1, 400));
        // Neither key: nothing.
        let l = listener(
            "",
            "      - match: { prefix: / }\n        direct_response: { status: 200 }\n",
        )
        .unwrap();
        assert_eq!(l.routes[0].rate_limit, None);
        assert_eq!(l.connection_rate, None);
    }

    #[test]
    fn default_names_follow_the_route_not_its_position() {
        let l = listener(
            "    rate_limit: { name: api, rate: 1/s }\n",
            "      - match: { prefix: /api/ }\n        direct_response: { status: 200 }\n        rate_limit: 1/s\n      - match: { template: \"/api/orders/**\" }\n        direct_response: { status: 200 }\n        rate_limit: [1/s, { name: x, rate: 2/s }, 3/s]\n      - name: \"Orders API\"\n        match: { prefix: /o }\n        direct_response: { status: 200 }\n        rate_limit: 1/s\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n        rate_limit: 1/s\n      - match: { regex: \".*\" }\n        direct_response: { status: 200 }\n        rate_limit: 1/s\n      - match: { path: /api }\n        direct_response: { status: 200 }\n        rate_limit: 1/s\n",
        )
        .unwrap();
        let names: Vec<Vec<&str>> = l
            .routes
            .iter()
            .map(|r| {
                r.rate_limit
                    .as_ref()
                    .unwrap()
                    .limits
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect()
            })
            .collect();
        assert_eq!(
            names,
            [
                // `api` is the listener limit's explicit name.
                vec!["api", "api-2"],
                vec!["api", "api_orders", "x", "api_orders.2"],
                vec!["api", "Orders_API"],
                vec!["api", "root"],
                vec!["api", "root-2"],
                vec!["api", "api-3"],
            ]
        );
        let ids: Vec<&str> = l.routes[1]
            .rate_limit
            .as_ref()
            .unwrap()
            .limits
            .iter()
            .map(|l| l.id.as_str())
            .collect();
        assert_eq!(ids, ["a/api", "a/api_orders", "a/x", "a/api_orders.2"]);
        assert_eq!(super::stat_word(&"/x".repeat(100)).len(), 63);
    }

    #[test]
    fn virtual_hosts_routes_take_limits_and_the_listeners() {
        let text = format!(
            "{AUTH}listeners:\n  - name: a\n    address: 127.0.0.1:1\n    rate_limit: 50/s\n    virtual_hosts:\n      - name: api\n        domains: [api.example.com]\n        routes:\n          - match: {{ prefix: / }}\n            direct_response: {{ status: 200 }}\n            rate_limit: {{ rate: 5/s, key: {{ claim: org.id }} }}\n      - name: other\n        domains: [\"*\"]\n        routes:\n          - match: {{ prefix: / }}\n            direct_response: {{ status: 200 }}\n          - match: {{ prefix: /x }}\n            direct_response: {{ status: 200 }}\n            rate_limit: none\n"
        );
        let config = parse(&text).unwrap();
        let hosts = &config.listeners[0].virtual_hosts;
        let shared = limit("listener", bucket(50, 1, 50), vec![KeyPart::Client]);
        assert_eq!(
            hosts[0].routes[0].rate_limit,
            Some(RateLimitPolicy::native(
                vec![
                    shared.clone(),
                    limit(
                        "api.root",
                        bucket(5, 1, 5),
                        vec![KeyPart::Claim("org.id".into())]
                    )
                ],
                LimitHeaders::None
            ))
        );
        assert_eq!(
            hosts[1].routes[0].rate_limit,
            Some(RateLimitPolicy::native(vec![shared], LimitHeaders::None))
        );
        assert_eq!(hosts[1].routes[1].rate_limit, None);
    }

    #[test]
    fn shapes_and_values_refused_where_written() {
        // Line 13 column 21 is the value of the route's `rate_limit`.
        let at = "t.yaml:13:21: listeners[0].routes[0].rate_limit";
        assert_eq!(
            refused("100"),
            format!("{at}: expected a rate such as `100/min`, a mapping with `rate`, a list of these, or `none`, found the integer `100`")
        );
        assert_eq!(
            refused("100/week"),
            format!("{at}: invalid rate \"100/week\": expected `N/s`, `N/min`, `N/h`, `N/day` or `N/<duration>`, e.g. `100/min` or `2/5s`")
        );
        assert_eq!(
            refused("[]"),
            format!("{at}: at least one limit is required")
        );
        assert_eq!(
            refused("[1/s, none]"),
            "t.yaml:13:27: listeners[0].routes[0].rate_limit[1]: `none` stands alone (`rate_limit: none`), not in a list of limits"
        );
        assert_eq!(
            refused("{ rate: 1/s, burts: 5 }"),
            "t.yaml:13:34: listeners[0].routes[0].rate_limit.burts: unknown key `burts`; did you mean `burst`?"
        );
        assert_eq!(
            refused("{ burst: 5 }"),
            format!("{at}: missing required key `rate`")
        );
        assert_eq!(
            refused("{ rate: 1/s, burst: 0 }"),
            "t.yaml:13:41: listeners[0].routes[0].rate_limit.burst: expected a burst from 1 to 1000000000, found 0"
        );
        assert_eq!(
            refused("{ rate: 1/h, burst: 10000 }"),
            "t.yaml:13:41: listeners[0].routes[0].rate_limit.burst: a burst of 10000 at 1/h takes 416 days to refill from empty; at most 365 (lower the burst or raise the rate)"
        );
        assert_eq!(
            refused("100000/100000h"),
            format!("{at}: a burst of 100000 at 100000/100000h takes 4166 days to refill from empty; at most 365 (lower the burst or raise the rate)")
        );
        assert_eq!(
            refused("{ rate: 1/s, key: clinet }"),
            "t.yaml:13:39: listeners[0].routes[0].rate_limit.key: unknown value \"clinet\": expected one of `client`, `consumer`, `peer`, `route`; did you mean `client`?"
        );
        assert_eq!(
            refused("{ rate: 1/s, key: [client, route] }"),
            "t.yaml:13:48: listeners[0].routes[0].rate_limit.key[1]: `route` is a key of its own (one bucket for every request of the limit), not a part of a combination"
        );
        assert_eq!(
            refused("{ rate: 1/s, key: [client, client] }"),
            "t.yaml:13:48: listeners[0].routes[0].rate_limit.key[1]: this part is already in the key"
        );
        assert_eq!(
            refused("{ rate: 1/s, key: [] }"),
            "t.yaml:13:39: listeners[0].routes[0].rate_limit.key: a key lists at least one part (`key: route` for one bucket)"
        );
        assert_eq!(
            refused("{ rate: 1/s, key: { header: x, claim: y } }"),
            "t.yaml:13:39: listeners[0].routes[0].rate_limit.key: a key part mapping has exactly one of `header`, `claim` or `query`"
        );
        assert!(refused("{ rate: 1/s, key: { header: \"x y\" } }").contains("is not a header name"));
        assert!(
            refused("{ rate: 1/s, key: { header: \":path\" } }").contains("is not a header name")
        );
        assert!(refused("{ rate: 1/s, key: { claim: \"a..b\" } }").contains("is not a claim"));
        assert!(refused("{ rate: 1/s, key: { heder: x } }").contains("did you mean `header`?"));
        assert!(refused("{ rate: 1/s, key: 7 }").contains("expected `client`, `consumer`"));
        assert_eq!(
            refused("{ rate: 1/s, plans: { gold: 2/s } }"),
            "t.yaml:13:41: listeners[0].routes[0].rate_limit.plans: `plans` chooses a bucket by the consumer's `plan` metadata; it needs a `key` with `consumer`"
        );
        assert!(refused("{ rate: 1/s, key: consumer, plans: {} }").contains("at least one plan"));
        assert!(
            refused("{ rate: 1/s, key: consumer, plans: { gold: 0/s } }")
                .contains("the count is at least 1")
        );
        assert!(
            refused("{ rate: 1/s, key: consumer, plans: { gold: { rate: 1/s, brust: 1 } } }")
                .contains("did you mean `burst`?")
        );
        assert!(refused("{ rate: 1/s, key: consumer, plans: { gold: 5 } }")
            .contains("expected a rate such as `10000/h`, or `{rate, burst}`"));
        assert_eq!(
            refused("{ rate: 1/s, key: route, max_keys: 10 }"),
            "t.yaml:13:56: listeners[0].routes[0].rate_limit.max_keys: `max_keys` bounds the keys of a keyed limit; `key: route` has one bucket"
        );
        assert!(refused("{ rate: 1/s, max_keys: 0 }")
            .contains("expected a number of keys from 1 to 16777216, found 0"));
        assert!(refused("{ rate: 1/s, max_keys: 16777217 }").contains("found 16777217"));
        assert!(refused("{ rate: 1/s, shadow: yes }").contains("expected true or false"));
        assert!(refused("{ rate: 1/s, per_connection: 1 }").contains("expected true or false"));
        assert!(refused("{ name: \"a b\", rate: 1/s }").contains("invalid name \"a b\""));
        assert!(refused("{ rate: [1/s] }").contains("expected a rate such as `100/min`"));
        // A misspelt route key.
        let e = errors(
            "",
            "      - match: { prefix: / }\n        direct_response: { status: 200 }\n        ratelimit: 1/s\n",
        );
        assert_eq!(
            e,
            ["t.yaml:13:9: listeners[0].routes[0].ratelimit: unknown key `ratelimit`; did you mean `rate_limit`?"]
        );
    }

    #[test]
    fn identity_keys_need_authentication() {
        let route = "      - match: { prefix: / }\n        direct_response: { status: 200 }\n        rate_limit: { rate: 1/s, key: KEY }\n";
        let without_auth = |key: &str| {
            let text = format!(
                "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    routes:\n{}",
                route.replace("KEY", key)
            );
            parse(&text)
        };
        assert_eq!(
            without_auth("consumer").unwrap_err(),
            ["t.yaml:7:39: listeners[0].routes[0].rate_limit.key: `consumer` is who authentication found; the file's `auth` declares no JWT provider and no API keys"]
        );
        assert_eq!(
            without_auth("[client, { claim: sub }]").unwrap_err(),
            ["t.yaml:7:39: listeners[0].routes[0].rate_limit.key: `claim` reads the verified JWT; the file's `auth` declares no JWT provider"]
        );
        assert!(without_auth("client").is_ok());
        // API keys alone make a consumer, not a claim.
        let keys_only = |key: &str| {
            let text = format!(
                "auth:\n  api_keys:\n    consumers: [ {{ name: acme, keys: [k1] }} ]\nlisteners:\n  - name: a\n    address: 127.0.0.1:1\n    routes:\n{}",
                route.replace("KEY", key)
            );
            parse(&text)
        };
        assert!(keys_only("consumer").is_ok());
        assert!(keys_only("{ claim: sub }").unwrap_err()[0].contains("no JWT provider"));
    }

    #[test]
    fn listener_keys_refused_where_written() {
        let routes = "      - match: { prefix: / }\n        direct_response: { status: 200 }\n";
        assert_eq!(
            errors("    rate_limit: none\n", routes),
            ["t.yaml:10:17: listeners[0].rate_limit: `none` is a route's (it turns the listener's limits off); a listener without limits leaves `rate_limit` out"]
        );
        assert_eq!(
            errors("    rate_limit_headers: yes\n", routes),
            ["t.yaml:10:25: listeners[0].rate_limit_headers: expected true or false, found the string \"yes\""]
        );
        assert_eq!(
            errors("    connection_rate: none\n", routes),
            ["t.yaml:10:22: listeners[0].connection_rate: invalid rate \"none\": expected `N/s`, `N/min`, `N/h`, `N/day` or `N/<duration>`, e.g. `100/min` or `2/5s`"]
        );
        assert_eq!(
            errors("    connection_rate: { rate: 1/s, brust: 2 }\n", routes),
            ["t.yaml:10:35: listeners[0].connection_rate.brust: unknown key `brust`; did you mean `burst`?"]
        );
        assert_eq!(
            errors("    connection_rate: 10\n", routes),
            ["t.yaml:10:22: listeners[0].connection_rate: expected a rate such as `200/s`, or `{rate, burst}`, found the integer `10`"]
        );
        assert_eq!(
            errors("    connection_rate: { burst: 2 }\n", routes),
            ["t.yaml:10:22: listeners[0].connection_rate: missing required key `rate`"]
        );
        assert_eq!(
            errors("    ratelimit: 1/s\n", routes),
            ["t.yaml:10:5: listeners[0].ratelimit: unknown key `ratelimit`; did you mean `rate_limit`?"]
        );
    }

    #[test]
    fn names_are_unique_in_a_listener() {
        let e = errors(
            "    rate_limit: { name: x, rate: 1/s }\n",
            "      - match: { prefix: /a }\n        direct_response: { status: 200 }\n        rate_limit: [ { name: y, rate: 1/s }, { name: x, rate: 1/s } ]\n      - match: { prefix: /b }\n        direct_response: { status: 200 }\n        rate_limit: { name: y, rate: 1/s }\n",
        );
        assert_eq!(
            e,
            [
                "t.yaml:14:55: listeners[0].routes[0].rate_limit[1].name: duplicate rate limit name \"x\" (first defined at 10:25: listeners[0].rate_limit.name); names are unique in a listener",
                "t.yaml:17:29: listeners[0].routes[1].rate_limit.name: duplicate rate limit name \"y\" (first defined at 14:31: listeners[0].routes[0].rate_limit[0].name); names are unique in a listener",
            ]
        );
        // Another listener may use the same names: ids carry the listener's.
        let text =
            "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    rate_limit: { name: x, rate: 1/s }\n    routes: [ { match: { prefix: / }, direct_response: { status: 200 } } ]\n  - name: b\n    address: 127.0.0.1:2\n    rate_limit: { name: x, rate: 1/s }\n    routes: [ { match: { prefix: / }, direct_response: { status: 200 } } ]\n";
        let config = parse(text).unwrap();
        let id = |i: usize| {
            config.listeners[i].routes[0]
                .rate_limit
                .as_ref()
                .unwrap()
                .limits[0]
                .id
                .clone()
        };
        assert_eq!((id(0), id(1)), ("a/x".to_owned(), "b/x".to_owned()));
    }

    #[test]
    fn the_short_form_writes_what_it_checked() {
        let short = "routes:\n  - path: /api/**\n    upstream: 127.0.0.1:9000\n    rate_limit: 100/min\n  - path: /keys\n    upstream: 127.0.0.1:9000\n    rate_limit: [ { name: per-key, rate: 1000/h, burst: 50, key: [consumer, { header: X-Tenant }], plans: { gold: 10000/h, \"plan b\": { rate: 5/s } } }, 2/5s ]\n  - path: /open\n    upstream: 127.0.0.1:9000\n    rate_limit: none\nauth:\n  api_keys:\n    consumers: [ { name: acme, keys: [k1] } ]\n";
        let config = parse(short).unwrap();
        let expansion = config.expansion.clone().unwrap();
        assert!(
            expansion.contains("        rate_limit: \"100/min\"\n"),
            "{expansion}"
        );
        assert!(
            expansion.contains("        rate_limit: [{ name: \"per-key\", rate: \"1000/h\", burst: 50, key: [\"consumer\", { header: \"X-Tenant\" }], plans: { gold: \"10000/h\", \"plan b\": { rate: \"5/s\" } } }, \"2/5s\"]\n"),
            "{expansion}"
        );
        assert!(
            expansion.contains("        rate_limit: none\n"),
            "{expansion}"
        );
        let routes = &config.listeners[0].routes;
        let ids = |i: usize| -> Vec<String> {
            routes[i]
                .rate_limit
                .iter()
                .flat_map(|p| p.limits.iter().map(|l| l.id.clone()))
                .collect()
        };
        assert_eq!(ids(0), ["default/api"]);
        assert_eq!(ids(1), ["default/per-key", "default/keys.1"]);
        assert!(ids(2).is_empty());
        let keys = &routes[1].rate_limit.as_ref().unwrap().limits[0];
        assert_eq!(
            keys.plans,
            [
                ("gold".to_owned(), bucket(10_000, 3600, 10_000)),
                ("plan b".to_owned(), bucket(5, 1, 5))
            ]
        );
        // The printed form is the same config.
        let full = format!(
            "{expansion}auth:\n  api_keys:\n    consumers: [ {{ name: acme, keys: [k1] }} ]\n"
        );
        let from_full = parse(&full).unwrap();
        assert_eq!(from_full.listeners, config.listeners);
    }

    #[test]
    fn short_form_limits_are_refused_where_written() {
        let e = parse("routes:\n  - path: /a\n    upstream: x\n    rate_limit: { name: n, rate: 1/s, key: consumer }\n  - path: /b\n    upstream: x\n    rate_limit: { name: n, rate: 1/s }\n  - path: /c\n    upstream: x\n    rate_limit: 5\n").unwrap_err();
        assert_eq!(
            e,
            [
                "t.yaml:4:44: routes[0].rate_limit.key: `consumer` is who authentication found; the file's `auth` declares no JWT provider and no API keys",
                "t.yaml:7:25: routes[1].rate_limit.name: duplicate rate limit name \"n\" (first defined at 4:25: routes[0].rate_limit.name); names are unique in a listener",
                "t.yaml:10:17: routes[2].rate_limit: expected a rate such as `100/min`, a mapping with `rate`, a list of these, or `none`, found the integer `5`",
            ]
        );
    }
}
