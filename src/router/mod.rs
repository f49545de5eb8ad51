//! Route matching: the first route, in config order, whose matchers all accept the
//! request wins (as in Envoy).
//!
//! Sans-IO and protocol-agnostic: a request is a [`RouteInput`] (authority, normalised
//! path, raw query, and headers through [`HeaderLookup`]), which HTTP/1 builds from its
//! parsed head and HTTP/2 will build from its pseudo-headers. Paths are normalised first
//! by [`normalize`], with a scratch buffer the caller owns.
//!
//! Speed: literal routes (`prefix`, `path`) live in a byte trie ([`trie`]), so one walk
//! over the path yields the few literal candidates, already sorted, whatever the number
//! of routes. Regex routes (and literal ones in any case: Envoy's `case_sensitive: false`)
//! sit in a side list and are merged in by index: such a route's path is tested
//! only while no lower-indexed candidate has matched, so a table of 1,000 prefixes plus a
//! few regexes costs one walk plus, at most, those regexes. Then the candidates' host,
//! header and query conditions ([`conditions`]) are tested in index order. The result is
//! exactly what a linear scan would give ([`Router::route_linear`], the property-test
//! oracle and bench baseline). Matching allocates nothing.

pub mod auth;
mod conditions;
mod hosts;
pub mod normalize;
pub mod rewrite;
pub mod stats;
mod trie;

use std::rc::Rc;
use std::time::Duration;

use regex::bytes::Regex;

use crate::{
    config::{self, pattern::anchored_regex},
    filter::Chain,
    local_reply::Reply,
};

use conditions::Conditions;
use trie::{Literal, LiteralTrie, RouteIndex};

/// What a matched route does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer with a pre-rendered response.
    Direct(Reply),
    /// Forward to the cluster at this index of the snapshot's clusters.
    Cluster(usize),
    /// Forward to one of several clusters, split by weight.
    Weighted(Box<Split>),
    /// Answer with a redirect to where [`rewrite::Redirect::location`] says.
    Redirect(Box<RedirectAction>),
}

/// A route's mirror (shadow traffic), compiled.
#[derive(Debug, Clone, Copy)]
pub struct MirrorTo {
    /// The cluster's index in the snapshot's clusters.
    pub cluster: usize,
    pub fraction: config::resilience::Fraction,
    pub keep_host: bool,
}

/// A weighted split over clusters (canary traffic shifting), compiled.
#[derive(Debug, Clone)]
pub struct Split {
    /// Each cluster's index and the running sum of the weights up to and including it.
    clusters: Box<[(usize, u64)]>,
    total: u64,
    /// Split by the request's hash (the route's hash rules) when it has one.
    pub sticky: bool,
}

impl Split {
    /// The cluster index for a draw `value`: any `u64` (a random number, or the
    /// request's hash), mapped onto the weights. Clusters of weight 0 never win.
    pub fn pick(&self, value: u64) -> usize {
        let at = value % self.total.max(1);
        self.clusters
            .iter()
            .find(|(_, upto)| at < *upto)
            .map_or(usize::MAX, |(index, _)| *index)
    }

    fn compile(split: &config::WeightedClusters, index: impl Fn(&str) -> Option<usize>) -> Split {
        let mut upto = 0;
        let clusters = split
            .clusters
            .iter()
            .map(|(name, weight)| {
                upto += u64::from(*weight);
                (index(name).unwrap_or(usize::MAX), upto)
            })
            .collect();
        Split {
            clusters,
            total: upto,
            sticky: split.sticky,
        }
    }
}

/// A compiled redirect and its pre-rendered reply (status, `content-length: 0`).
#[derive(Debug, Clone)]
pub struct RedirectAction {
    pub redirect: rewrite::Redirect,
    pub reply: Reply,
}

/// Header access for matching, over whatever the protocol parsed.
pub trait HeaderLookup {
    /// The value of the first field named `name` (given in lower case; implementations
    /// compare ASCII-case-insensitively), or `None`.
    fn get(&self, name: &str) -> Option<&[u8]>;

    /// The client's verified certificate, for route conditions on it; `None` on a
    /// connection without one (plaintext, or TLS without a client certificate).
    fn client_certificate(&self) -> Option<&crate::tls::identity::PeerIdentity> {
        None
    }
}

/// No headers at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHeaders;

impl HeaderLookup for NoHeaders {
    fn get(&self, _name: &str) -> Option<&[u8]> {
        None
    }
}

/// `(name, value)` pairs: handy for tests and benches.
impl HeaderLookup for [(&str, &[u8])] {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// One request, as the router sees it.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a, H: HeaderLookup + ?Sized> {
    /// The authority (Host or `:authority`), port included or not; empty when none.
    pub host: &'a [u8],
    /// The normalised path ([`normalize::normalize`]), without query.
    pub path: &'a [u8],
    /// The raw query, without `?`; empty when none.
    pub query: &'a [u8],
    pub headers: &'a H,
}

#[derive(Debug, Clone)]
enum PathMatch {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    /// In any ASCII case: tested per request, as a regex is (not in the literal trie).
    ExactAnyCase(Box<[u8]>),
    PrefixAnyCase(Box<[u8]>),
    /// `None`: failed to compile, which validation rules out; such a route never matches.
    Regex(Option<Regex>),
}

impl PathMatch {
    fn matches(&self, path: &[u8]) -> bool {
        match self {
            PathMatch::Exact(p) => path == &p[..],
            PathMatch::Prefix(p) => path.starts_with(p),
            PathMatch::ExactAnyCase(p) => path.eq_ignore_ascii_case(p),
            PathMatch::PrefixAnyCase(p) => path
                .get(..p.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(p)),
            PathMatch::Regex(r) => r.as_ref().is_some_and(|r| r.is_match(path)),
        }
    }
}

/// What a listener (and a virtual host) gives each of its routes that has no setting of
/// its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteDefaults<'a> {
    /// Header edits run before every route's own: the listener's, then the host's.
    pub headers: [Option<&'a config::HeaderMutations>; 2],
    pub cors: Option<&'a config::CorsPolicy>,
    pub max_request_body: Option<u64>,
    pub upgrades: &'a [String],
    /// The listener's authentication and authorization, when it or a route has them.
    pub auth: Option<&'a auth::AuthContext>,
    /// Where routes' rate limits find their buckets and stats, and the replies they
    /// answer with; `None`: rate limits are not compiled (tests, benches).
    pub limits: Option<(
        &'a dyn crate::filter::ratelimit::LimitSource,
        &'a crate::local_reply::LocalReplies,
    )>,
    /// Where routes' stats cells come from (`stats`); `None`: no route stats (tests,
    /// benches).
    pub stats: Option<&'a dyn stats::StatsSource>,
    /// The virtual host's name (a listener's own routes: the listener's) and its
    /// virtual clusters.
    pub vhost: (&'a str, Option<&'a Rc<stats::VirtualClusters>>),
}

impl Route {
    /// Whether this route tunnels `protocol` (an `Upgrade` value's first token).
    pub fn allows_upgrade(&self, protocol: &[u8]) -> bool {
        self.upgrades
            .iter()
            .any(|u| protocol.eq_ignore_ascii_case(u))
    }
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    pub action: Action,
    /// The listener's filters, then the route's (`filter`).
    pub filters: Chain,
    /// Upstream timeout (cluster routes).
    pub timeout: Duration,
    /// Replaces the listener's `stream_idle_timeout` for this route's exchanges.
    pub idle_timeout: Option<Duration>,
    /// Position in the listener's `routes` list (for logs and stats).
    pub index: usize,
    /// The upstream's path instead of the request's (cluster routes).
    pub path_rewrite: Option<rewrite::PathRewrite>,
    /// The upstream's Host instead of the request's (cluster routes).
    pub host_rewrite: Option<config::HostRewrite>,
    /// Upgrade protocols tunnelled (lower case).
    pub upgrades: Box<[Box<[u8]>]>,
    /// What a request is hashed on for a ring-hash or Maglev cluster (Envoy's
    /// `hash_policy`; the cluster's `hash_on` when the route has none).
    pub hash_policy: Rc<[config::HashRule]>,
    /// The route's `name` (Envoy's `%ROUTE_NAME%` in the access log).
    pub name: Option<Box<str>>,
    /// The listener's authentication rules (Envoy's `jwt_authn` rules), when this
    /// route's authentication uses them: the connection finds the request's rule with
    /// them while it routes.
    pub auth_rules: Option<Rc<Router>>,
    /// How this route's exchanges are repeated and bounded (issue 22); `None` for a
    /// route with none of it, so that the plain path reads one pointer.
    pub resilience: Option<Box<Resilience>>,
    /// Clusters a share of the requests is copied to (`worker::mirror`); empty for most.
    pub mirrors: Box<[MirrorTo]>,
    /// Faults injected into this route's forwarded requests (`filter::fault`).
    pub fault: Option<Rc<crate::filter::fault::Fault>>,
    /// The route's span name, sampling and tags, when it sets them.
    pub tracing: Option<Rc<config::observability::RouteTracing>>,
    /// The route's stats and its host's virtual clusters (`stats`); `None` for most.
    pub stats: Option<Rc<stats::RouteStats>>,
    path: PathMatch,
    conditions: Conditions,
}

/// A cluster route's retry rules, stream duration, breaker priority and attempt-count
/// headers, compiled once per worker.
#[derive(Debug, Clone)]
pub struct Resilience {
    pub retry: Option<Rc<crate::resilience::retry::RetryRules>>,
    pub max_stream_duration: Option<Duration>,
    pub priority: config::resilience::Priority,
    pub attempt_count: config::AttemptCount,
}

impl Resilience {
    /// `None` when the route sets none of it.
    fn compile(route: &config::Route) -> Option<Box<Resilience>> {
        let plain = route.retry.is_none()
            && route.max_stream_duration.is_none()
            && route.priority == config::resilience::Priority::Default
            && route.attempt_count == config::AttemptCount::default();
        (!plain).then(|| {
            Box::new(Resilience {
                retry: route
                    .retry
                    .as_ref()
                    .map(|p| Rc::new(crate::resilience::retry::RetryRules::compile(p))),
                max_stream_duration: route.max_stream_duration,
                priority: route.priority,
                attempt_count: route.attempt_count,
            })
        })
    }
}

impl Route {
    /// How much of `path` (which this route matched) its matcher matched: the prefix, or
    /// the whole path for exact and regex matchers.
    pub fn matched_len(&self, path: &[u8]) -> usize {
        match &self.path {
            PathMatch::Prefix(p) | PathMatch::PrefixAnyCase(p) => p.len(),
            PathMatch::Exact(_) | PathMatch::ExactAnyCase(_) | PathMatch::Regex(_) => path.len(),
        }
    }

    fn matches<H: HeaderLookup + ?Sized>(&self, input: &RouteInput<'_, H>) -> bool {
        self.path.matches(input.path) && self.conditions_hold(input)
    }

    fn conditions_hold<H: HeaderLookup + ?Sized>(&self, input: &RouteInput<'_, H>) -> bool {
        self.conditions.hold(input.host, input.headers, input.query)
    }
}

/// A compiled route table of one listener.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
    literals: LiteralTrie,
    /// Indices of the routes whose path is tested per request (regexes, templates,
    /// literals in any case), ascending.
    regexes: Vec<RouteIndex>,
}

/// A listener's route tables by authority: its virtual hosts, or its one table of
/// `routes` for every authority (`hosts`).
#[derive(Debug, Clone)]
pub struct HostRouter {
    hosts: hosts::HostTable,
    tables: Vec<Router>,
}

impl HostRouter {
    /// Compiles a listener's routes or virtual hosts. `defaults` carries the listener's
    /// settings (its header edits first in `headers`).
    pub fn build(
        listener: &config::Listener,
        defaults: RouteDefaults<'_>,
        cluster_index: impl Fn(&str) -> Option<usize> + Copy,
    ) -> Self {
        let mut hosts = hosts::HostTable::default();
        let mut tables = Vec::new();
        if listener.virtual_hosts.is_empty() {
            hosts.add(0, &["*".to_owned()]);
            let defaults = RouteDefaults {
                vhost: (&listener.name, None),
                ..defaults
            };
            tables.push(Router::for_listener(
                &listener.routes,
                defaults,
                cluster_index,
            ));
        }
        for (i, host) in listener.virtual_hosts.iter().enumerate() {
            hosts.add(i, &host.domains);
            let vclusters = defaults.stats.and_then(|source| {
                stats::VirtualClusters::compile((&host.name, &host.observe), source)
            });
            let defaults = RouteDefaults {
                headers: [defaults.headers[0], Some(&host.headers)],
                cors: host.cors.as_ref().or(defaults.cors),
                vhost: (&host.name, vclusters.as_ref()),
                ..defaults
            };
            tables.push(Router::for_listener(&host.routes, defaults, cluster_index));
        }
        HostRouter { hosts, tables }
    }

    /// The first route of the host serving `input`'s authority that matches it.
    pub fn route<H: HeaderLookup + ?Sized>(&self, input: &RouteInput<'_, H>) -> Option<&Route> {
        let table = self.tables.get(self.hosts.find(input.host)?)?;
        table.route(input)
    }
}

impl Router {
    /// Compiles a listener's routes. `cluster_index` resolves a cluster name, which the
    /// config has already validated.
    pub fn build(routes: &[config::Route], cluster_index: impl Fn(&str) -> Option<usize>) -> Self {
        Router::for_listener(routes, RouteDefaults::default(), cluster_index)
    }

    /// Like [`Router::build`], with the listener's header edits compiled into each
    /// route's filter chain ahead of the route's own, and the listener's settings for
    /// routes without their own.
    pub fn for_listener(
        routes: &[config::Route],
        defaults: RouteDefaults<'_>,
        cluster_index: impl Fn(&str) -> Option<usize>,
    ) -> Self {
        let mut compiled = Vec::with_capacity(routes.len());
        let mut regexes = Vec::new();
        let no_headers = config::HeaderMutations::default();
        for (index, route) in routes.iter().enumerate() {
            let action = match &route.action {
                config::RouteAction::DirectResponse(d) => {
                    Action::Direct(Reply::new(d.status, &d.content_type, &d.body))
                }
                // Validation guarantees the name resolves; an unknown one can only come
                // from a bug, and then the route answers "no upstream" rather than panic.
                config::RouteAction::Cluster(name) => {
                    Action::Cluster(cluster_index(name).unwrap_or(usize::MAX))
                }
                config::RouteAction::Weighted(split) => {
                    Action::Weighted(Box::new(Split::compile(split, &cluster_index)))
                }
                // Validation guarantees it compiles; if not, the route answers 404.
                config::RouteAction::Redirect(r) => match rewrite::Redirect::compile(r) {
                    Some(redirect) => Action::Redirect(Box::new(RedirectAction {
                        redirect,
                        reply: Reply::new(r.status, "", b""),
                    })),
                    None => Action::Direct(Reply::new(404, "", b"")),
                },
            };
            let path = match &route.matcher {
                config::RouteMatch::Path(p) => PathMatch::Exact(p.as_bytes().into()),
                config::RouteMatch::Prefix(p) => PathMatch::Prefix(p.as_bytes().into()),
                config::RouteMatch::PathAnyCase(p) => {
                    regexes.push(index as RouteIndex);
                    PathMatch::ExactAnyCase(p.as_bytes().into())
                }
                config::RouteMatch::PrefixAnyCase(p) => {
                    regexes.push(index as RouteIndex);
                    PathMatch::PrefixAnyCase(p.as_bytes().into())
                }
                config::RouteMatch::Regex(p) => {
                    regexes.push(index as RouteIndex);
                    PathMatch::Regex(anchored_regex(p).ok())
                }
                // A template is a regex with a group per variable, matched the same way.
                config::RouteMatch::Template(t) => {
                    regexes.push(index as RouteIndex);
                    let regex = config::pattern::template(t).ok();
                    PathMatch::Regex(regex.and_then(|t| anchored_regex(&t.regex).ok()))
                }
            };
            compiled.push(Route {
                // Validation guarantees the names resolve.
                mirrors: route
                    .mirrors
                    .iter()
                    .filter_map(|m| {
                        Some(MirrorTo {
                            cluster: cluster_index(&m.cluster)?,
                            fraction: m.fraction,
                            keep_host: m.keep_host,
                        })
                    })
                    .collect(),
                name: route.name.as_deref().map(Into::into),
                stats: defaults.stats.and_then(|source| {
                    let (vhost, vclusters) = defaults.vhost;
                    stats::RouteStats::compile(route, vhost, vclusters, source)
                }),
                auth_rules: defaults.auth.and_then(|a| a.rules_for(route)),
                fault: route.fault.as_ref().map(|policy| {
                    let replies = defaults.limits.map(|(_, replies)| replies);
                    Rc::new(crate::filter::fault::Fault::compile(policy, replies))
                }),
                action,
                filters: Chain::build(
                    (
                        [
                            defaults.headers[0].unwrap_or(&no_headers),
                            defaults.headers[1].unwrap_or(&no_headers),
                        ],
                        &route.headers,
                    ),
                    (
                        route.cors.as_ref().or(defaults.cors),
                        // Only a forwarded request has a body to limit.
                        matches!(
                            route.action,
                            config::RouteAction::Cluster(_) | config::RouteAction::Weighted(_)
                        )
                        .then(|| route.max_request_body.or(defaults.max_request_body))
                        .flatten(),
                    ),
                    route.name.as_deref().unwrap_or(""),
                    (
                        defaults.auth.map_or([None, None], |a| a.filters(route)),
                        match (defaults.limits, &route.rate_limit) {
                            (Some((source, replies)), Some(policy)) => {
                                crate::filter::ratelimit::compile(
                                    policy,
                                    source,
                                    replies,
                                    route.name.as_deref().unwrap_or(""),
                                )
                            }
                            _ => [None, None, None],
                        },
                    ),
                ),
                upgrades: route
                    .upgrades
                    .as_deref()
                    .unwrap_or(defaults.upgrades)
                    .iter()
                    .map(|u| u.as_bytes().into())
                    .collect(),
                timeout: route.timeout,
                idle_timeout: route.idle_timeout,
                index,
                path_rewrite: route
                    .rewrite
                    .path
                    .as_ref()
                    .and_then(rewrite::PathRewrite::compile),
                host_rewrite: route.rewrite.host.clone(),
                hash_policy: route.hash_policy.as_slice().into(),
                resilience: Resilience::compile(route),
                tracing: route.observe.tracing.clone().map(Rc::new),
                path,
                conditions: Conditions::compile(&route.conditions),
            });
        }
        let literals: Vec<Literal<'_>> = compiled
            .iter()
            .filter_map(|r| {
                let (bytes, exact) = match &r.path {
                    PathMatch::Exact(p) => (&p[..], true),
                    PathMatch::Prefix(p) => (&p[..], false),
                    PathMatch::ExactAnyCase(_)
                    | PathMatch::PrefixAnyCase(_)
                    | PathMatch::Regex(_) => return None,
                };
                Some(Literal {
                    bytes,
                    exact,
                    index: r.index as RouteIndex,
                    unconditional: r.conditions.is_empty(),
                })
            })
            .collect();
        let literals = LiteralTrie::build(&literals);
        Router {
            routes: compiled,
            literals,
            regexes,
        }
    }

    /// The first route matching `input`, if any.
    pub fn route<H: HeaderLookup + ?Sized>(&self, input: &RouteInput<'_, H>) -> Option<&Route> {
        let (prefix, exact) = self.literals.candidates(input.path);
        // A three-way merge by index of two literal lists (path already matched) and the
        // regex list (path still to test); stop at the first route that holds.
        let mut lists: [&[RouteIndex]; 3] = [prefix, exact, &self.regexes];
        loop {
            let mut next: Option<(usize, RouteIndex)> = None;
            for (which, list) in lists.iter().enumerate() {
                if let Some(&head) = list.first() {
                    if next.is_none_or(|(_, lowest)| head < lowest) {
                        next = Some((which, head));
                    }
                }
            }
            let (which, index) = next?;
            lists[which] = lists[which].get(1..).unwrap_or_default();
            let Some(route) = self.routes.get(index as usize) else {
                continue;
            };
            let path_ok = which != 2 || route.path.matches(input.path);
            if path_ok && route.conditions_hold(input) {
                return Some(route);
            }
        }
    }

    /// The first matching route by testing every route in order: the reference
    /// semantics [`Router::route`] must equal, kept for tests and benchmarks.
    #[doc(hidden)]
    pub fn route_linear<H: HeaderLookup + ?Sized>(
        &self,
        input: &RouteInput<'_, H>,
    ) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(input))
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod split_tests {
    use super::*;

    fn split(weights: &[u32], sticky: bool) -> Split {
        let clusters = weights
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("c{i}"), *w))
            .collect();
        let config = config::WeightedClusters { clusters, sticky };
        Split::compile(&config, |name| name[1..].parse().ok())
    }

    #[test]
    fn random_draws_split_within_half_a_point_of_the_weights() {
        for weights in [&[90, 10][..], &[99, 1], &[1, 2, 3, 4], &[50, 0, 50]] {
            let s = split(weights, false);
            let total: u32 = weights.iter().sum();
            let mut rng = fastrand::Rng::with_seed(7);
            let mut counts = vec![0u32; weights.len()];
            let n = 100_000;
            for _ in 0..n {
                counts[s.pick(rng.u64(..))] += 1;
            }
            for (i, (&c, &w)) in counts.iter().zip(weights).enumerate() {
                let got = f64::from(c) * 100.0 / f64::from(n);
                let want = f64::from(w) * 100.0 / f64::from(total);
                assert!(
                    (got - want).abs() < 0.5,
                    "{weights:?}: cluster {i} got {got}%"
                );
            }
            // A weight of 0 never wins.
            if let Some(zero) = weights.iter().position(|&w| w == 0) {
                assert_eq!(counts[zero], 0);
            }
        }
    }

    #[test]
    fn a_hash_always_lands_on_the_same_cluster_and_hashes_split_by_weight() {
        let s = split(&[90, 10], true);
        let mut counts = [0u32; 2];
        for user in 0..20_000u32 {
            let hash = crate::balance::hash_bytes(format!("user-{user}").as_bytes());
            let first = s.pick(hash);
            assert_eq!(s.pick(hash), first);
            counts[first] += 1;
        }
        let canary = f64::from(counts[1]) * 100.0 / 20_000.0;
        assert!((canary - 10.0).abs() < 1.0, "{canary}% on the canary");
    }
}
