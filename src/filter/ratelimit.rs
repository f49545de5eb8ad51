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
use crate::config::ratelimit::{
    Action, DescriptorRule, Fraction, KeyPart, LimitHeaders, LimitKey, RateLimitPolicy,
};
use crate::local_reply::{LocalReplies, Reply};
use crate::peer::Peer;
use crate::ratelimit::{ConnBucket, Decision, Eviction, KeyHasher, Rate, Shard};
use crate::stats::names::{local_rate_limit as envoy_st, rate_limit as st};
use crate::stats::WorkerScope;

use super::{RequestFacts, RequestHead, RequestState, Verdict};

/// What a snapshot hands the compiler: this worker's shard for a limit id, and its stats.
pub trait LimitSource: std::fmt::Debug {
    /// The shard of the limit `id` (shared by every route that has the limit).
    fn shard(&self, id: &str) -> Option<Rc<RefCell<Shard>>>;
    /// This worker's cells of `http.<prefix>.rate_limit.<name>.`.
    fn limit_stats(&self, name: &str) -> Option<WorkerScope>;
    /// This worker's cells of `<stat_prefix>.http_local_rate_limit.`.
    fn envoy_stats(&self, stat_prefix: &str) -> Option<WorkerScope>;
    /// The number of workers (lease sizes depend on it).
    fn workers(&self) -> usize;
}

/// The rate-limit filters of one route: before and after authentication.
pub fn compile(
    policy: &RateLimitPolicy,
    source: &dyn LimitSource,
    replies: &LocalReplies,
) -> [Option<super::Filter>; 2] {
    let shared = Rc::new(Shared::compile(policy, source, replies));
    let mut limits: Vec<LimitRuntime> = Vec::with_capacity(policy.limits.len());
    for limit in &policy.limits {
        let Some(stats) = source.limit_stats(&limit.name) else {
            continue;
        };
        let store = if limit.per_connection {
            Store::Connection(uid(&limit.id))
        } else {
            match source.shard(&limit.id) {
                Some(shard) => Store::Shared(shard),
                None => continue,
            }
        };
        limits.push(LimitRuntime {
            rate: Rate::new(&limit.bucket),
            fill_rate: limit.bucket.tokens as f64 / limit.bucket.per.as_secs_f64(),
            quota: (limit.bucket.tokens, limit.bucket.per.as_secs().max(1)),
            plans: limit
                .plans
                .iter()
                .map(|(plan, bucket)| (plan.as_str().into(), Rate::new(bucket)))
                .collect(),
            key: match &limit.key {
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
    // Envoy's order: descriptors first, those with every value given before those with
    // a wildcard (a generated descriptor takes the first that matches it), the slowest
    // to refill first within each (Envoy checks matched descriptors by fill rate), then
    // the default bucket (skipped when a descriptor matched, unless it is always
    // consumed). Native limits keep their order.
    let class = |l: &LimitRuntime| match &l.key {
        KeyRuntime::Parts(_) => 0,
        KeyRuntime::Descriptor(entries) if entries.iter().all(|(_, v)| v.is_some()) => 1,
        KeyRuntime::Descriptor(_) => 2,
        KeyRuntime::EnvoyDefault => 3,
    };
    limits.sort_by(|a, b| {
        let envoy = matches!(a.key, KeyRuntime::Descriptor(_))
            && matches!(b.key, KeyRuntime::Descriptor(_));
        class(a).cmp(&class(b)).then_with(|| {
            if envoy {
                a.fill_rate.total_cmp(&b.fill_rate)
            } else {
                std::cmp::Ordering::Equal
            }
        })
    });
    let (after, before): (Vec<_>, Vec<_>) = limits.into_iter().partition(|l| l.needs_identity);
    let emits_after = !after.is_empty();
    let make = |limits: Vec<LimitRuntime>, emits: bool| {
        (!limits.is_empty()).then(|| {
            super::Filter::RateLimit(Box::new(RateLimit {
                limits: limits.into(),
                shared: Rc::clone(&shared),
                emits_headers: emits && shared.headers != LimitHeaders::None,
            }))
        })
    };
    [make(before, !emits_after), make(after, true)]
}

/// A limit's id as the key of a connection's own bucket.
fn uid(id: &str) -> u64 {
    let mut h = KeyHasher::new();
    h.write(id.as_bytes());
    h.finish()
}

/// What the filters of one policy share.
#[derive(Debug)]
struct Shared {
    enabled: u32,
    enforced: u32,
    refusal: Reply,
    /// `response_headers_to_add`, as header lines.
    refusal_lines: Box<[u8]>,
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
    when_not_enforced: Box<[HeaderEdit]>,
}

/// A header added to the forwarded request.
#[derive(Debug)]
struct HeaderEdit {
    name: Box<[u8]>,
    value: Box<[u8]>,
    /// Beside fields of the same name, or replacing them.
    append: bool,
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
    RequestHeader {
        header: Box<str>,
        key: Box<str>,
        skip_if_absent: bool,
    },
    QueryParameter {
        name: Box<[u8]>,
        key: Box<str>,
        skip_if_absent: bool,
    },
    RemoteAddress,
    MaskedRemoteAddress(u8, u8),
}

impl Shared {
    fn compile(policy: &RateLimitPolicy, source: &dyn LimitSource, replies: &LocalReplies) -> Self {
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
        let mut refusal_lines = Vec::new();
        for h in &policy.response_headers {
            refusal_lines.extend_from_slice(h.name.as_bytes());
            refusal_lines.extend_from_slice(b": ");
            refusal_lines.extend_from_slice(h.value.as_bytes());
            refusal_lines.extend_from_slice(b"\r\n");
        }
        Shared {
            enabled: per_million(policy.enabled),
            enforced: per_million(policy.enforced),
            refusal: replies.custom(status, text),
            refusal_lines: refusal_lines.into(),
            retry_after: policy.retry_after,
            headers: policy.headers,
            envoy: policy.envoy.as_ref().map(|e| EnvoyRuntime {
                stats: source.envoy_stats(&e.stat_prefix),
                rules: e.rules.iter().map(RuleRuntime::compile).collect(),
                always_consume_default: e.always_consume_default,
                when_not_enforced: e
                    .request_headers_when_not_enforced
                    .iter()
                    .map(|h| HeaderEdit {
                        name: h.name.as_bytes().into(),
                        value: h.value.as_bytes().into(),
                        append: h.append,
                    })
                    .collect(),
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
                    } => ActionRuntime::RequestHeader {
                        header: header.to_ascii_lowercase().into(),
                        key: key.as_str().into(),
                        skip_if_absent: *skip_if_absent,
                    },
                    Action::QueryParameter {
                        name,
                        key,
                        skip_if_absent,
                    } => ActionRuntime::QueryParameter {
                        name: name.as_bytes().into(),
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
    /// The connection's own bucket, under this id.
    Connection(u64),
}

#[derive(Debug)]
enum KeyRuntime {
    Parts(Box<[KeyPart]>),
    EnvoyDefault,
    Descriptor(Entries),
}

#[derive(Debug)]
struct LimitRuntime {
    rate: Rate,
    /// Tokens per second (Envoy checks slower descriptors first).
    fill_rate: f64,
    /// `tokens` per `per` seconds, for `RateLimit-Policy`.
    quota: (u64, u64),
    plans: Box<[(Box<str>, Rate)]>,
    key: KeyRuntime,
    needs_identity: bool,
    shadow: bool,
    name: Rc<str>,
    store: Store,
    stats: WorkerScope,
}

/// The numbers rate-limit headers show, for the most constrained limit of a request.
#[derive(Debug, Clone)]
pub struct LimitInfo {
    name: Rc<str>,
    /// Tokens per window, and the window in seconds.
    quota: (u64, u64),
    /// The bucket's capacity (Envoy's `x-ratelimit-limit`).
    burst: u64,
    remaining: u64,
    /// Seconds until the bucket is full again.
    reset: u64,
}

/// One filter: some limits of a route.
#[derive(Debug)]
pub struct RateLimit {
    limits: Box<[LimitRuntime]>,
    shared: Rc<Shared>,
    /// This filter writes the rate-limit headers (the route's last rate-limit filter).
    emits_headers: bool,
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
        // The rules whose generated descriptor found its limit already.
        let mut rules_matched = 0u64;
        let mut refused: Option<(&LimitRuntime, Decision)> = None;
        for limit in self.limits.iter() {
            let key = match &limit.key {
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
            let rate = limit.rate_for(state);
            let decision = match &limit.store {
                Store::Shared(shard) => shard.borrow_mut().decide(key, rate, now),
                Store::Connection(id) => state.connection_bucket(*id).decide(rate, now),
            };
            match decision.evicted {
                Some(Eviction::Idle) => limit.stats.get(st::EVICTED_IDLE).inc(),
                Some(Eviction::Active) => limit.stats.get(st::EVICTED_ACTIVE).inc(),
                None => {}
            }
            if decision.allowed {
                limit.stats.get(st::ALLOWED).inc();
                if shared.headers != LimitHeaders::None {
                    state.note_limit(limit.info(rate, &decision));
                }
            } else if limit.shadow {
                limit.stats.get(st::SHADOW_LIMITED).inc();
            } else {
                refused = Some((limit, decision));
                break;
            }
        }
        let Some((limit, decision)) = refused else {
            if let Some(stats) = envoy_stats {
                stats.get(envoy_st::OK).inc();
            }
            return Verdict::Continue;
        };
        if let Some(stats) = envoy_stats {
            stats.get(envoy_st::RATE_LIMITED).inc();
        }
        if !sampled(shared.enforced) {
            // Enabled but not enforced: counted, and the request passes.
            limit.stats.get(st::SHADOW_LIMITED).inc();
            if let Some(envoy) = &shared.envoy {
                for edit in envoy.when_not_enforced.iter() {
                    if edit.append {
                        head.append(&edit.name, &edit.value);
                    } else {
                        head.set(&edit.name, &edit.value);
                    }
                }
            }
            return Verdict::Continue;
        }
        if let Some(stats) = envoy_stats {
            stats.get(envoy_st::ENFORCED).inc();
        }
        limit.stats.get(st::LIMITED).inc();
        state.rate_limited = true;
        state.forget_limit();
        let lines = &mut state.reply_lines;
        lines.extend_from_slice(&shared.refusal_lines);
        if shared.retry_after {
            let seconds = decision.retry_after_us.div_ceil(1_000_000).max(1);
            let _ = write!(lines, "retry-after: {seconds}\r\n");
        }
        let rate = limit.rate_for(state);
        write_headers(
            shared.headers,
            &limit.info(rate, &decision),
            &mut state.reply_lines,
        );
        Verdict::Respond(&shared.refusal)
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
    /// The rate for this request: its consumer's plan's, else the limit's.
    fn rate_for(&self, state: &RequestState) -> &Rate {
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
                if let Some((_, rate)) = self.plans.iter().find(|(p, _)| **p == *plan) {
                    return rate;
                }
            }
        }
        &self.rate
    }

    fn info(&self, rate: &Rate, decision: &Decision) -> LimitInfo {
        LimitInfo {
            name: Rc::clone(&self.name),
            quota: self.quota,
            burst: rate.burst(),
            remaining: decision.remaining,
            reset: decision.reset_us.div_ceil(1_000_000),
        }
    }
}

/// What rate limiting keeps per connection: the headers' numbers of the current request
/// and the connection's own buckets (boxed in [`RequestState`] on first use, so
/// connections on routes without limits stay small).
#[derive(Debug, Default)]
pub struct LimitState {
    info: Option<LimitInfo>,
    /// Per-connection buckets, by limit.
    buckets: Vec<(u64, ConnBucket)>,
}

impl RequestState {
    /// Keeps the most constrained limit's numbers for the response's headers.
    fn note_limit(&mut self, info: LimitInfo) {
        let state = self.limits.get_or_insert_with(Default::default);
        match &state.info {
            Some(kept) if kept.remaining <= info.remaining => {}
            _ => state.info = Some(info),
        }
    }

    /// Forgets the current request's header numbers.
    pub(super) fn forget_limit(&mut self) {
        if let Some(state) = &mut self.limits {
            state.info = None;
        }
    }

    /// The connection's own bucket for a per-connection limit.
    fn connection_bucket(&mut self, id: u64) -> &mut ConnBucket {
        let buckets = &mut self.limits.get_or_insert_with(Default::default).buckets;
        let index = match buckets.iter().position(|(i, _)| *i == id) {
            Some(index) => index,
            None => {
                buckets.push((id, ConnBucket::default()));
                buckets.len() - 1
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
                info.name, info.name, info.remaining, info.reset
            );
        }
        LimitHeaders::XRateLimitDraft03 => {
            let _ = write!(
                out,
                "x-ratelimit-limit: {}\r\nx-ratelimit-remaining: {}\r\nx-ratelimit-reset: {}\r\n",
                info.burst, info.remaining, info.reset
            );
        }
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
            KeyPart::Client => match state.client {
                Peer::Ip(IpAddr::V4(ip)) => h.write(&ip.octets()),
                Peer::Ip(IpAddr::V6(ip)) => h.write(&ip.octets()),
                Peer::Unix => h.write(b"unix"),
            },
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
                ActionRuntime::RequestHeader {
                    header,
                    key,
                    skip_if_absent,
                } => match head.header(header) {
                    Some(value) => Entry::Value(key, value),
                    None if *skip_if_absent => Entry::Skip,
                    None => Entry::None,
                },
                ActionRuntime::QueryParameter {
                    name,
                    key,
                    skip_if_absent,
                } => match query_value(facts.query, name) {
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

/// The raw value of the first query parameter named `name`.
fn query_value<'q>(query: &'q [u8], name: &[u8]) -> Option<&'q [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        (k == name).then_some(v)
    })
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
        assert_eq!(query_value(b"a=1&b=2", b"b"), Some(&b"2"[..]));
        assert_eq!(query_value(b"a&b=2", b"a"), Some(&b""[..]));
        assert_eq!(query_value(b"ab=1", b"a"), None);
    }
}
