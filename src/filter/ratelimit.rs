//! Rate limiting: a route's token buckets, decided on the request's own worker.
//!
//! Design: a route's [`config::ratelimit::RateLimitPolicy`] is compiled once per
//! snapshot into one or two filters: the limits whose key is known from the head alone
//! (client address, headers, the mTLS peer, Envoy's descriptors) run before
//! authentication, so a flood of bad credentials is limited before any token is
//! verified; the limits keyed by who the client is (consumer, JWT claim, plans) run after
//! it. Each limit decides from this worker's [`Shard`] of leases over the process-wide
//! [`crate::ratelimit::Pool`] of its id (`crate::ratelimit`: the bounds are stated
//! there), or from the connection's own bucket for per-connection limits. The key is a
//! seeded 64-bit hash of the key's parts, written without allocating.
//!
//! Answers: over a limit, native policies answer 429 with `Retry-After` (seconds until a
//! token is back); Envoy's answer exactly as its `local_ratelimit` filter does (its
//! `status`, body `local_rate_limited`, only the configured `response_headers_to_add`,
//! the stats `enabled`/`ok`/`rate_limited`/`enforced`, enabled-but-not-enforced counts
//! and allows). The access log gets the `RL` flag. Rate-limit headers, when enabled,
//! describe the most constrained limit that applied: the IETF draft's `RateLimit-Policy`
//! and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10) or Envoy's
//! `x-ratelimit-*` (its `DRAFT_VERSION_03`).
//!
//! Allocation: none per request (the connection's per-connection buckets are allocated
//! once per connection, on first use).

use std::{cell::RefCell, io::Write, net::IpAddr, rc::Rc};

use super::value_match::Value;
use crate::auth::jwt::extract::query_param;
use crate::config::ratelimit::{
    Action, Bucket, DescriptorRule, FilterPosition, Fraction, KeyPart, LimitHeaders, LimitKey,
    RateLimitPolicy,
};
use crate::config::{HeaderAdd, HeaderMutations};
use crate::local_reply::{LocalReplies, Reply};
use crate::peer::Peer;
use crate::ratelimit::{ConnBucket, Decision, Eviction, KeyHasher, Rate, Shard};
use crate::stats::names::{local_rate_limit as envoy_st, rate_limit as st};
use crate::stats::WorkerScope;

use super::{HeaderMutation, RequestFacts, RequestHead, RequestState, Verdict};

/// What a snapshot hands the compiler: this worker's shard for a limit id, and its stats.
pub trait LimitSource: std::fmt::Debug {
    /// The shard of the limit `id` (shared by every route that has the limit).
    fn shard(&self, id: &str) -> Option<Rc<RefCell<Shard>>>;
    /// This worker's cells of `http.<prefix>.rate_limit.<name>.`.
    fn limit_stats(&self, name: &str) -> Option<WorkerScope>;
    /// This worker's cells of `<stat_prefix>.http_local_rate_limit.`.
    fn envoy_stats(&self, stat_prefix: &str) -> Option<WorkerScope>;
}

/// The rate-limit filters of one route, by where they run: before CORS (Envoy configs
/// that list the filter first), before authentication, after it.
pub fn compile(
    policy: &RateLimitPolicy,
    source: &dyn LimitSource,
    replies: &LocalReplies,
    route_name: &str,
) -> [Option<super::Filter>; 3] {
    let shared = Rc::new(Shared::compile(policy, source, replies, route_name));
    let mut limits: Vec<LimitRuntime> = Vec::with_capacity(policy.limits.len());
    for limit in &policy.limits {
        // Both are registered by the control thread for every limit of the config; a
        // limit without them would be a bug, and is logged rather than run unchecked.
        let (Some(stats), Some(store)) = (
            source.limit_stats(&limit.name),
            if limit.per_connection {
                Some(Store::Connection(uid(&limit.id)))
            } else {
                source.shard(&limit.id).map(Store::Shared)
            },
        ) else {
            tracing::error!(
                limit = limit.id,
                "rate limit without its bucket table or stats"
            );
            continue;
        };
        let plan = |bucket: &Bucket| Plan {
            rate: Rate::new(bucket),
            quota: quota(bucket),
        };
        limits.push(LimitRuntime {
            fill_rate: limit.bucket.tokens as f64 / limit.bucket.per.as_secs_f64(),
            plan: plan(&limit.bucket),
            plans: limit
                .plans
                .iter()
                .map(|(name, bucket)| (name.as_str().into(), plan(bucket)))
                .collect(),
            key: match &limit.key {
                LimitKey::Parts(parts) if parts[..] == [KeyPart::Client] => KeyRuntime::Client,
                LimitKey::Parts(parts) => KeyRuntime::Parts(parts.clone().into()),
                LimitKey::EnvoyDefault => KeyRuntime::EnvoyDefault,
                LimitKey::Descriptor(entries) => KeyRuntime::Descriptor(
                    entries
                        .iter()
                        .map(|(k, v)| (k.as_str().into(), v.as_deref().map(Into::into)))
                        .collect(),
                ),
            },
            needs_identity: limit.needs_identity(),
            shadow: limit.shadow,
            name: limit.name.as_str().into(),
            store,
            stats,
        });
    }
    // Matching order: native limits as written; Envoy's descriptors with every value
    // given before those with a wildcard (a generated descriptor goes to the first that
    // matches it), then the default bucket (skipped when a descriptor matched, unless it
    // is always consumed). Consumption order is decided per request (`on_request`).
    let class = |l: &LimitRuntime| match &l.key {
        KeyRuntime::Client | KeyRuntime::Parts(_) => 0,
        KeyRuntime::Descriptor(entries) if entries.iter().all(|(_, v)| v.is_some()) => 1,
        KeyRuntime::Descriptor(_) => 2,
        KeyRuntime::EnvoyDefault => 3,
    };
    limits.sort_by_key(class);
    let position = policy.envoy.as_ref().map(|e| e.position);
    let (after, before): (Vec<_>, Vec<_>) = limits
        .into_iter()
        .partition(|l| l.needs_identity || position == Some(FilterPosition::AfterAuth));
    let emits_after = !after.is_empty();
    // An Envoy filter counts `enabled` and `ok` even with nothing to limit: then one
    // filter without limits stands for it.
    let counts_alone = policy.envoy.is_some() && before.is_empty() && after.is_empty();
    let make = |limits: Vec<LimitRuntime>, emits: bool, alone: bool| {
        (!limits.is_empty() || alone).then(|| {
            super::Filter::RateLimit(Box::new(RateLimit {
                by_fill_rate: limits
                    .iter()
                    .any(|l| matches!(l.key, KeyRuntime::Descriptor(_))),
                limits: limits.into(),
                shared: Rc::clone(&shared),
                emits_headers: emits && shared.headers != LimitHeaders::None,
            }))
        })
    };
    let before = make(before, !emits_after, counts_alone);
    let after = make(after, true, false);
    match position {
        Some(FilterPosition::BeforeCors) => [before, None, after],
        _ => [None, before, after],
    }
}

/// A limit's id as the key of a connection's own buckets.
fn uid(id: &str) -> u64 {
    let mut h = KeyHasher::new();
    h.write(id.as_bytes());
    h.finish()
}

/// `RateLimit-Policy`'s quota and window for a bucket: `tokens` per `per` in whole
/// seconds, else the rate per second.
fn quota(bucket: &Bucket) -> (u64, u64) {
    if bucket.per.subsec_nanos() == 0 && bucket.per.as_secs() > 0 {
        (bucket.tokens, bucket.per.as_secs())
    } else {
        let per_second = bucket.tokens as f64 / bucket.per.as_secs_f64();
        ((per_second.round() as u64).max(1), 1)
    }
}

/// What the filters of one policy share.
#[derive(Debug)]
struct Shared {
    enabled: u32,
    enforced: u32,
    refusal: Reply,
    /// `response_headers_to_add` (values may have variables).
    refusal_headers: Option<HeaderMutation>,
    retry_after: bool,
    headers: LimitHeaders,
    envoy: Option<EnvoyRuntime>,
}

#[derive(Debug)]
struct EnvoyRuntime {
    stats: Option<WorkerScope>,
    rules: Box<[RuleRuntime]>,
    always_consume_default: bool,
    /// `request_headers_to_add_when_not_enforced`.
    when_not_enforced: Option<HeaderMutation>,
}

/// An Envoy descriptor's entries: keys, and values where given.
type Entries = Box<[(Box<str>, Option<Box<str>>)]>;

#[derive(Debug)]
struct RuleRuntime {
    actions: Box<[ActionRuntime]>,
}

#[derive(Debug)]
enum ActionRuntime {
    Fixed(Box<str>, Box<[u8]>),
    HeaderValueMatch {
        key: Box<str>,
        value: Box<[u8]>,
        expect_match: bool,
        headers: Box<[(Box<str>, Value)]>,
    },
    /// `request_headers` and `query_parameters`: a value of the request under `key`.
    Lookup {
        from: Lookup,
        /// The header's (lower-case) or the parameter's name.
        name: Box<str>,
        key: Box<str>,
        skip_if_absent: bool,
    },
    RemoteAddress,
    MaskedRemoteAddress(u8, u8),
}

/// Where an action's value is found.
#[derive(Debug, Clone, Copy)]
enum Lookup {
    Header,
    Query,
}

impl Lookup {
    fn find<'r>(self, name: &str, head: &'r RequestHead<'_>, query: &'r [u8]) -> Option<&'r [u8]> {
        match self {
            Lookup::Header => head.header(name),
            Lookup::Query => query_param(query, name),
        }
    }
}

impl Shared {
    fn compile(
        policy: &RateLimitPolicy,
        source: &dyn LimitSource,
        replies: &LocalReplies,
        route_name: &str,
    ) -> Self {
        let status = if policy.status < 400 {
            429
        } else {
            policy.status
        };
        let text = if policy.envoy.is_some() {
            "local_rate_limited"
        } else {
            "rate limit exceeded"
        };
        let edits = |request: &[HeaderAdd], response: &[HeaderAdd]| {
            (!request.is_empty() || !response.is_empty()).then(|| {
                HeaderMutation::compile(
                    &HeaderMutations {
                        request_add: request.to_vec(),
                        response_add: response.to_vec(),
                        ..Default::default()
                    },
                    route_name,
                )
            })
        };
        Shared {
            enabled: per_million(policy.enabled),
            enforced: per_million(policy.enforced),
            refusal: replies.custom(status, text),
            refusal_headers: edits(&[], &policy.response_headers),
            retry_after: policy.retry_after,
            headers: policy.headers,
            envoy: policy.envoy.as_ref().map(|e| EnvoyRuntime {
                stats: source.envoy_stats(&e.stat_prefix),
                rules: e.rules.iter().map(RuleRuntime::compile).collect(),
                always_consume_default: e.always_consume_default,
                when_not_enforced: edits(&e.request_headers_when_not_enforced, &[]),
            }),
        }
    }
}

fn per_million(f: Fraction) -> u32 {
    f.per_million.min(1_000_000)
}

/// Whether a request falls in a share of `per_million`.
fn sampled(per_million: u32) -> bool {
    per_million >= 1_000_000 || (per_million > 0 && fastrand::u32(..1_000_000) < per_million)
}

impl RuleRuntime {
    fn compile(rule: &DescriptorRule) -> Self {
        RuleRuntime {
            actions: rule
                .actions
                .iter()
                .map(|a| match a {
                    Action::Fixed { key, value } => {
                        ActionRuntime::Fixed(key.as_str().into(), value.as_bytes().into())
                    }
                    Action::HeaderValueMatch {
                        key,
                        value,
                        expect_match,
                        headers,
                    } => ActionRuntime::HeaderValueMatch {
                        key: key.as_str().into(),
                        value: value.as_bytes().into(),
                        expect_match: *expect_match,
                        headers: headers
                            .iter()
                            .map(|h| (h.name.as_str().into(), Value::compile(&h.value)))
                            .collect(),
                    },
                    Action::RequestHeader {
                        header,
                        key,
                        skip_if_absent,
                    } => ActionRuntime::Lookup {
                        from: Lookup::Header,
                        name: header.to_ascii_lowercase().into(),
                        key: key.as_str().into(),
                        skip_if_absent: *skip_if_absent,
                    },
                    Action::QueryParameter {
                        name,
                        key,
                        skip_if_absent,
                    } => ActionRuntime::Lookup {
                        from: Lookup::Query,
                        name: name.as_str().into(),
                        key: key.as_str().into(),
                        skip_if_absent: *skip_if_absent,
                    },
                    Action::RemoteAddress => ActionRuntime::RemoteAddress,
                    Action::MaskedRemoteAddress {
                        v4_prefix,
                        v6_prefix,
                    } => ActionRuntime::MaskedRemoteAddress(*v4_prefix, *v6_prefix),
                })
                .collect(),
        }
    }
}

#[derive(Debug)]
enum Store {
    /// This worker's shard of the process-wide buckets.
    Shared(Rc<RefCell<Shard>>),
    /// The connection's own buckets, under this id (and the key).
    Connection(u64),
}

#[derive(Debug)]
enum KeyRuntime {
    /// The client address alone: the most common key, hashed as one or two words.
    Client,
    Parts(Box<[KeyPart]>),
    EnvoyDefault,
    Descriptor(Entries),
}

/// A bucket's engine form, and what `RateLimit-Policy` says of it.
#[derive(Debug)]
struct Plan {
    rate: Rate,
    /// Quota and window in seconds.
    quota: (u64, u64),
}

#[derive(Debug)]
struct LimitRuntime {
    /// Tokens per second (Envoy consumes slower descriptors first).
    fill_rate: f64,
    plan: Plan,
    /// Per consumer plan.
    plans: Box<[(Box<str>, Plan)]>,
    key: KeyRuntime,
    needs_identity: bool,
    shadow: bool,
    name: Rc<str>,
    store: Store,
    stats: WorkerScope,
}

/// The numbers rate-limit headers show.
#[derive(Debug, Clone)]
pub struct LimitInfo {
    name: Rc<str>,
    /// Tokens per window, and the window in seconds.
    quota: (u64, u64),
    /// The bucket's capacity (Envoy's `x-ratelimit-limit`).
    burst: u64,
    remaining: u64,
    /// Seconds until one more token is available (the draft's `t`).
    next: u64,
    /// Envoy's `x-ratelimit-reset`: 0 while a token remains, else the seconds one token
    /// takes to refill (whole seconds, rounded down, as Envoy computes it).
    envoy_reset: u64,
}

/// Limits applied to one request that are decided in one pass, most (more are decided
/// at once, in order).
const MAX_APPLIED: usize = 16;

/// One filter: some limits of a route.
#[derive(Debug)]
pub struct RateLimit {
    limits: Box<[LimitRuntime]>,
    shared: Rc<Shared>,
    /// This filter writes the rate-limit headers (the route's last rate-limit filter).
    emits_headers: bool,
    /// Envoy descriptors: consumed by fill rate once all are matched.
    by_fill_rate: bool,
}

/// How a request fared against one limit.
enum Outcome {
    Allowed,
    Refused(Decision),
}

impl RateLimit {
    pub(super) fn on_request(
        &self,
        head: &mut RequestHead<'_>,
        facts: &mut RequestFacts<'_>,
        state: &mut RequestState,
    ) -> Verdict<'_> {
        let shared = &*self.shared;
        if !sampled(shared.enabled) {
            return Verdict::Continue;
        }
        let envoy_stats = shared.envoy.as_ref().and_then(|e| e.stats.as_ref());
        if let Some(stats) = envoy_stats {
            stats.get(envoy_st::ENABLED).inc();
        }
        let now = crate::ratelimit::now_micros();
        let refused = if self.by_fill_rate {
            self.decide_by_fill_rate(head, facts, state, now)
        } else {
            self.decide_in_order(head, facts, state, now)
        };
        self.finish(refused, head, state)
    }

    /// Native limits and Envoy's without descriptors: each decided as its key is found,
    /// in order, until one refuses.
    fn decide_in_order(
        &self,
        head: &RequestHead<'_>,
        facts: &RequestFacts<'_>,
        state: &mut RequestState,
        now: u64,
    ) -> Option<(usize, Decision)> {
        for (index, limit) in self.limits.iter().enumerate() {
            let key = match &limit.key {
                KeyRuntime::Client => Some(client_key(state.client)),
                KeyRuntime::Parts(parts) => key_of(parts, head, facts, state),
                KeyRuntime::EnvoyDefault => Some(1),
                KeyRuntime::Descriptor(_) => None,
            };
            if let Some(key) = key {
                if let Outcome::Refused(d) = self.decide(limit, key, now, state) {
                    return Some((index, d));
                }
            }
        }
        None
    }

    /// Envoy's descriptors: which apply, with their keys, is found first (a descriptor's
    /// match depends on the others'), then they are consumed slowest first, the default
    /// bucket last, until one refuses.
    fn decide_by_fill_rate(
        &self,
        head: &RequestHead<'_>,
        facts: &RequestFacts<'_>,
        state: &mut RequestState,
        now: u64,
    ) -> Option<(usize, Decision)> {
        let shared = &*self.shared;
        let mut applied = [(0usize, 0u64); MAX_APPLIED];
        let mut count = 0;
        let mut rules_matched = 0u64;
        for (index, limit) in self.limits.iter().enumerate() {
            let key = match &limit.key {
                KeyRuntime::Client => Some(client_key(state.client)),
                KeyRuntime::Parts(parts) => key_of(parts, head, facts, state),
                KeyRuntime::Descriptor(entries) => shared.envoy.as_ref().and_then(|e| {
                    let found =
                        descriptor_key(&e.rules, entries, rules_matched, head, facts, state);
                    found.map(|(key, rule)| {
                        rules_matched |= 1 << rule;
                        key
                    })
                }),
                KeyRuntime::EnvoyDefault => {
                    let always = shared
                        .envoy
                        .as_ref()
                        .is_none_or(|e| e.always_consume_default);
                    (always || rules_matched == 0).then_some(1)
                }
            };
            let Some(key) = key else { continue };
            if count < MAX_APPLIED {
                applied[count] = (index, key);
                count += 1;
            } else if let Outcome::Refused(d) = self.decide(limit, key, now, state) {
                return Some((index, d));
            }
        }
        applied[..count].sort_by(|a, b| {
            let (a, b) = (&self.limits[a.0], &self.limits[b.0]);
            let last = |l: &LimitRuntime| matches!(l.key, KeyRuntime::EnvoyDefault);
            last(a)
                .cmp(&last(b))
                .then(a.fill_rate.total_cmp(&b.fill_rate))
        });
        for &(index, key) in &applied[..count] {
            if let Outcome::Refused(d) = self.decide(&self.limits[index], key, now, state) {
                return Some((index, d));
            }
        }
        None
    }

    /// Counts and answers what the limits decided.
    fn finish(
        &self,
        refused: Option<(usize, Decision)>,
        head: &mut RequestHead<'_>,
        state: &mut RequestState,
    ) -> Verdict<'_> {
        let shared = &*self.shared;
        let envoy_stats = shared.envoy.as_ref().and_then(|e| e.stats.as_ref());
        let Some((index, decision)) = refused else {
            if let Some(stats) = envoy_stats {
                stats.get(envoy_st::OK).inc();
            }
            return Verdict::Continue;
        };
        let limit = &self.limits[index];
        if let Some(stats) = envoy_stats {
            stats.get(envoy_st::RATE_LIMITED).inc();
        }
        if shared.headers != LimitHeaders::None {
            // The refusing bucket is the one the headers describe.
            state.forget_limit();
            let info = limit.info(limit.plan_for(state), &decision);
            state.note_limit(info, shared.headers);
        }
        if !sampled(shared.enforced) {
            // Enabled but not enforced: counted, and the request passes.
            limit.stats.get(st::SHADOW_LIMITED).inc();
            if let Some(edits) = shared
                .envoy
                .as_ref()
                .and_then(|e| e.when_not_enforced.as_ref())
            {
                edits.on_request(head, state);
            }
            return Verdict::Continue;
        }
        if let Some(stats) = envoy_stats {
            stats.get(envoy_st::ENFORCED).inc();
        }
        limit.stats.get(st::LIMITED).inc();
        state.rate_limited = true;
        let mut lines = std::mem::take(&mut state.reply_lines);
        if let Some(edits) = &shared.refusal_headers {
            edits.local_reply_headers(&mut lines, state);
        }
        if shared.retry_after {
            let seconds = decision.retry_after_us.div_ceil(1_000_000).max(1);
            let _ = write!(lines, "retry-after: {seconds}\r\n");
        }
        if let Some(info) = state.limits.as_mut().and_then(|l| l.info.take()) {
            write_headers(shared.headers, &info, &mut lines);
        }
        state.reply_lines = lines;
        Verdict::Respond(&shared.refusal)
    }

    /// Takes a token of `limit` for `key`.
    fn decide(
        &self,
        limit: &LimitRuntime,
        key: u64,
        now: u64,
        state: &mut RequestState,
    ) -> Outcome {
        let plan = limit.plan_for(state);
        let decision = match &limit.store {
            Store::Shared(shard) => shard.borrow_mut().decide(key, &plan.rate, now),
            Store::Connection(id) => state.connection_bucket(*id, key).decide(&plan.rate, now),
        };
        match decision.evicted {
            Some(Eviction::Idle) => limit.stats.get(st::EVICTED_IDLE).inc(),
            Some(Eviction::Active) => limit.stats.get(st::EVICTED_ACTIVE).inc(),
            None => {}
        }
        if decision.allowed {
            limit.stats.get(st::ALLOWED).inc();
            if self.shared.headers != LimitHeaders::None {
                state.note_limit(limit.info(plan, &decision), self.shared.headers);
            }
            Outcome::Allowed
        } else if limit.shadow {
            limit.stats.get(st::SHADOW_LIMITED).inc();
            Outcome::Allowed
        } else {
            Outcome::Refused(decision)
        }
    }

    pub(super) fn edits_responses(&self) -> bool {
        self.emits_headers
    }

    /// Adds the rate-limit headers of the request's most constrained limit.
    pub(super) fn on_response(&self, head: &mut super::ResponseHead<'_>, state: &mut RequestState) {
        if !self.emits_headers {
            return;
        }
        if let Some(info) = state.limits.as_mut().and_then(|l| l.info.take()) {
            let mut lines = std::mem::take(&mut state.reply_lines);
            let start = lines.len();
            write_headers(self.shared.headers, &info, &mut lines);
            head.append_line(&lines[start..]);
            lines.truncate(start);
            state.reply_lines = lines;
        }
    }

    /// The same headers on a reply ringway writes itself.
    pub(super) fn local_reply_headers(&self, out: &mut Vec<u8>, state: &RequestState) {
        if self.emits_headers {
            if let Some(info) = state.limits.as_ref().and_then(|l| l.info.as_ref()) {
                write_headers(self.shared.headers, info, out);
            }
        }
    }
}

impl LimitRuntime {
    /// The bucket for this request: its consumer's plan's, else the limit's.
    fn plan_for(&self, state: &RequestState) -> &Plan {
        if !self.plans.is_empty() {
            let plan = state
                .identity()
                .and_then(|i| i.consumer.as_ref())
                .and_then(|c| {
                    c.consumer
                        .metadata
                        .iter()
                        .find(|(k, _)| k == "plan")
                        .map(|(_, v)| v.as_str())
                });
            if let Some(plan) = plan {
                if let Some((_, found)) = self.plans.iter().find(|(p, _)| **p == *plan) {
                    return found;
                }
            }
        }
        &self.plan
    }

    fn info(&self, plan: &Plan, decision: &Decision) -> LimitInfo {
        let interval_us = 1e6 / plan.rate.per_second();
        let next_us = if !decision.allowed {
            decision.retry_after_us
        } else if decision.reset_us == 0 {
            0
        } else {
            // The bucket is `reset_us` from full: the next token is the remainder of
            // that over one token's interval.
            let rest = decision.reset_us as f64 % interval_us;
            (if rest == 0.0 { interval_us } else { rest }) as u64
        };
        LimitInfo {
            name: Rc::clone(&self.name),
            quota: plan.quota,
            burst: plan.rate.burst(),
            remaining: decision.remaining,
            next: next_us.div_ceil(1_000_000),
            envoy_reset: if decision.allowed && decision.remaining > 0 {
                0
            } else {
                (interval_us / 1_000.0).ceil() as u64 / 1_000
            },
        }
    }
}

/// What rate limiting keeps per connection: the headers' numbers of the current request
/// and the connection's own buckets (boxed in [`RequestState`] on first use, so
/// connections on routes without limits stay small).
#[derive(Debug, Default)]
pub struct LimitState {
    info: Option<LimitInfo>,
    /// Per-connection buckets, by limit and key.
    buckets: Vec<(u64, ConnBucket)>,
    /// The fault filter's pacing of the current response: kept in this box, rarely
    /// used like the rest of it, so that the connection does not grow by a pointer.
    pub(super) pacer: super::fault::Pacer,
}

/// Buckets one connection keeps (per-connection limits with a key: one per key seen);
/// past this, a new key takes an old key's place.
const MAX_CONNECTION_BUCKETS: usize = 64;

impl RequestState {
    /// Keeps the numbers rate-limit headers show: Envoy's show the first bucket
    /// consumed, the draft's the most constrained.
    fn note_limit(&mut self, info: LimitInfo, mode: LimitHeaders) {
        let state = self.limits.get_or_insert_with(Default::default);
        match (&state.info, mode) {
            (Some(_), LimitHeaders::XRateLimitDraft03) => {}
            (Some(kept), _) if kept.remaining <= info.remaining => {}
            _ => state.info = Some(info),
        }
    }

    /// Forgets the current request's header numbers.
    pub(super) fn forget_limit(&mut self) {
        if let Some(state) = &mut self.limits {
            state.info = None;
        }
    }

    /// The connection's own bucket for a per-connection limit and key.
    fn connection_bucket(&mut self, id: u64, key: u64) -> &mut ConnBucket {
        let id = id ^ key.rotate_left(17);
        let buckets = &mut self.limits.get_or_insert_with(Default::default).buckets;
        let index = match buckets.iter().position(|(i, _)| *i == id) {
            Some(index) => index,
            None if buckets.len() < MAX_CONNECTION_BUCKETS => {
                buckets.push((id, ConnBucket::default()));
                buckets.len() - 1
            }
            None => {
                let index = (id % MAX_CONNECTION_BUCKETS as u64) as usize;
                buckets[index] = (id, ConnBucket::default());
                index
            }
        };
        &mut buckets[index].1
    }
}

/// Writes the rate-limit header lines of `mode`.
fn write_headers(mode: LimitHeaders, info: &LimitInfo, out: &mut Vec<u8>) {
    match mode {
        LimitHeaders::None => {}
        LimitHeaders::Ietf => {
            let (q, w) = info.quota;
            let _ = write!(
                out,
                "ratelimit-policy: \"{}\";q={q};w={w}\r\nratelimit: \"{}\";r={};t={}\r\n",
                info.name, info.name, info.remaining, info.next
            );
        }
        LimitHeaders::XRateLimitDraft03 => {
            let _ = write!(
                out,
                "x-ratelimit-limit: {}\r\nx-ratelimit-remaining: {}\r\nx-ratelimit-reset: {}\r\n",
                info.burst, info.remaining, info.envoy_reset
            );
        }
    }
}

/// The key of a limit on the client address alone.
#[inline]
fn client_key(client: Peer) -> u64 {
    let mut h = KeyHasher::new();
    write_client(&mut h, client);
    h.finish()
}

/// Writes the client address as words, not bytes (the most common key part, on every
/// request of a per-client limit).
#[inline]
fn write_client(h: &mut KeyHasher, client: Peer) {
    match client {
        Peer::Ip(IpAddr::V4(ip)) => h.write_u64(u64::from(u32::from(ip)) | 4 << 32),
        Peer::Ip(IpAddr::V6(ip)) => {
            let ip = u128::from(ip);
            h.write_u64(ip as u64);
            h.write_u64((ip >> 64) as u64 ^ 6 << 56);
        }
        Peer::Unix => h.write_u64(0),
    }
}

/// A request's key for a native limit: the seeded hash of its parts, or `None` when a part
/// is missing (the limit does not apply).
fn key_of(
    parts: &[KeyPart],
    head: &RequestHead<'_>,
    facts: &RequestFacts<'_>,
    state: &RequestState,
) -> Option<u64> {
    let mut h = KeyHasher::new();
    for part in parts {
        match part {
            KeyPart::Client => write_client(&mut h, state.client),
            KeyPart::Consumer => h.write(state.identity()?.principal()?.as_bytes()),
            KeyPart::Claim(path) => {
                let value = state.identity()?.claim(path)?;
                match value {
                    serde_json::Value::String(s) => h.write(s.as_bytes()),
                    serde_json::Value::Bool(b) => h.write(if *b { b"true" } else { b"false" }),
                    serde_json::Value::Number(n) => {
                        let mut buf = [0u8; 40];
                        let mut cursor = std::io::Cursor::new(&mut buf[..]);
                        let _ = write!(cursor, "{n}");
                        let len = cursor.position() as usize;
                        h.write(&buf[..len]);
                    }
                    _ => return None,
                }
            }
            KeyPart::Peer => {
                let peer = facts.peer?;
                let id = peer
                    .uris
                    .first()
                    .or(peer.dns.first())
                    .unwrap_or(&peer.subject);
                h.write(id.as_bytes());
            }
            KeyPart::Header(name) => h.write(head.header(name)?),
            KeyPart::Query(name) => h.write(query_param(facts.query, name)?),
        }
    }
    Some(h.finish())
}

/// What one action contributes to a descriptor.
enum Entry<'v> {
    Value(&'v str, &'v [u8]),
    Skip,
    /// The descriptor is not generated.
    None,
}

/// The key of an Envoy descriptor limit for this request, and the rule that matched:
/// the hash of the values of its wildcard entries, when one of the route's rules (not in
/// `taken`, a bit per rule: a generated descriptor goes to one limit) generates a
/// descriptor with exactly the limit's keys (and its values where it has them).
fn descriptor_key(
    rules: &[RuleRuntime],
    entries: &Entries,
    taken: u64,
    head: &RequestHead<'_>,
    facts: &RequestFacts<'_>,
    state: &RequestState,
) -> Option<(u64, usize)> {
    let mut text = [0u8; 64];
    'rules: for (index, rule) in rules.iter().enumerate().take(64) {
        if taken & (1 << index) != 0 {
            continue;
        }
        let mut h = KeyHasher::new();
        let mut next = 0;
        for action in rule.actions.iter() {
            let entry = match action {
                ActionRuntime::Fixed(key, value) => Entry::Value(key, value),
                ActionRuntime::HeaderValueMatch {
                    key,
                    value,
                    expect_match,
                    headers,
                } => {
                    let hold = headers
                        .iter()
                        .all(|(name, value)| value.test(head.header(name)));
                    if hold == *expect_match {
                        Entry::Value(key, value)
                    } else {
                        Entry::None
                    }
                }
                ActionRuntime::Lookup {
                    from,
                    name,
                    key,
                    skip_if_absent,
                } => match from.find(name, head, facts.query) {
                    Some(value) => Entry::Value(key, value),
                    None if *skip_if_absent => Entry::Skip,
                    None => Entry::None,
                },
                ActionRuntime::RemoteAddress => match state.client.ip() {
                    Some(ip) => {
                        let len = ip_text(ip, None, &mut text);
                        Entry::Value("remote_address", &text[..len])
                    }
                    None => Entry::None,
                },
                ActionRuntime::MaskedRemoteAddress(v4, v6) => match state.client.ip() {
                    Some(ip) => {
                        let len = ip_text(ip, Some((*v4, *v6)), &mut text);
                        Entry::Value("masked_remote_address", &text[..len])
                    }
                    None => Entry::None,
                },
            };
            match entry {
                Entry::Skip => {}
                Entry::None => continue 'rules,
                Entry::Value(key, value) => {
                    let Some((want_key, want_value)) = entries.get(next) else {
                        continue 'rules;
                    };
                    if **want_key != *key {
                        continue 'rules;
                    }
                    match want_value {
                        Some(want) if want.as_bytes() != value => continue 'rules,
                        Some(_) => {}
                        None => h.write(value),
                    }
                    next += 1;
                }
            }
        }
        if next == entries.len() {
            return Some((h.finish(), index));
        }
    }
    None
}

/// Writes `ip` (masked to `ip/len` when asked, as Envoy's `masked_remote_address`) into
/// `out`; returns the length.
fn ip_text(ip: IpAddr, mask: Option<(u8, u8)>, out: &mut [u8; 64]) -> usize {
    let mut cursor = std::io::Cursor::new(&mut out[..]);
    let _ = match (ip, mask) {
        (ip, None) => write!(cursor, "{ip}"),
        (IpAddr::V4(v4), Some((len, _))) => {
            let len = len.min(32);
            let bits = u32::from(v4) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            write!(cursor, "{}/{len}", std::net::Ipv4Addr::from(bits))
        }
        (IpAddr::V6(v6), Some((_, len))) => {
            let len = len.min(128);
            let bits = u128::from(v6) & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            write!(cursor, "{}/{len}", std::net::Ipv6Addr::from(bits))
        }
    };
    cursor.position() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_addresses_as_envoy_writes_them() {
        let mut out = [0u8; 64];
        let ip: IpAddr = "192.168.7.9".parse().unwrap();
        let n = ip_text(ip, Some((24, 128)), &mut out);
        assert_eq!(&out[..n], b"192.168.7.0/24");
        let n = ip_text(ip, Some((0, 128)), &mut out);
        assert_eq!(&out[..n], b"0.0.0.0/0");
        let n = ip_text(ip, None, &mut out);
        assert_eq!(&out[..n], b"192.168.7.9");
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let n = ip_text(ip, Some((32, 64)), &mut out);
        assert_eq!(&out[..n], b"2001:db8::/64");
    }

    #[test]
    fn query_values() {
        assert_eq!(query_param(b"a=1&b=2", "b"), Some(&b"2"[..]));
        assert_eq!(query_param(b"a&b=2", "a"), Some(&b""[..]));
        assert_eq!(query_param(b"ab=1", "a"), None);
    }
}
