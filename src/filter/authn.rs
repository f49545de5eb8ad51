//! Authentication: JWTs and API keys, as a route requires them.
//!
//! Design: what a route requires is compiled once per snapshot into a small tree
//! ([`Req`]) whose leaves point at the worker's providers ([`ProviderRuntime`]: keys and
//! verified-token cache) and its API-key table. A request walks the tree: tokens and
//! keys are found in the head, the query or a cookie, checked (a cached token costs a
//! hash and a comparison), and the outcome combined as Envoy's `requires_any` /
//! `requires_all` / `allow_missing` combine theirs. Who the client turned out to be
//! stays in the request's [`Identity`] (shared pointers, no copies) for the
//! authorization filter, the access log and header variables. Listeners loaded from
//! Envoy configs carry `jwt_authn` rules (a request's rule is found by the connection
//! while it routes, with a router compiled from the rules: `router::auth`); a route's
//! own requirement replaces them.
//!
//! Answers, as Envoy gives them: a missing token is 401 with
//! `www-authenticate: Bearer realm="<url>"`; an invalid one adds `error="invalid_token"`;
//! a valid token for another audience is 403 (Envoy's rule; RFC 6750 would say 401). The
//! body is Envoy's status text (`Jwt is missing`), in the listener's reply profile.
//! Identity headers the route forwards (claims, the payload) are removed from what the
//! client sent before they are set, so a client cannot pose as someone else.
//!
//! Allocation: none per request once the connection's identity list has its capacity;
//! an uncached token allocates what its verification keeps (the decoded payload).

use std::rc::Rc;

use crate::auth::consumers::{ConsumerEntry, ConsumerTable};
use crate::auth::jwt::{audiences_allowed, extract, JwtError, Verified};
use crate::auth::runtime::{ProviderRuntime, Providers};
use crate::config::auth::{Requirement, TokenSource};
use crate::local_reply::{LocalReplies, Reply};
use crate::stats::names::jwt_authn as st;
use crate::stats::WorkerScope;

use super::{RequestFacts, RequestHead, RequestState, Verdict};

/// Who the client is, as far as authentication found out (cleared per request).
#[derive(Debug, Default)]
pub struct Identity {
    /// Verified tokens, with the provider that verified each.
    pub tokens: Vec<(Rc<ProviderRuntime>, Rc<Verified>)>,
    /// The consumer whose API key the request carried.
    pub consumer: Option<Rc<ConsumerEntry>>,
}

impl Identity {
    pub fn clear(&mut self) {
        self.tokens.clear();
        self.consumer = None;
    }

    /// A claim (dotted path) of the first verified token that has it.
    pub fn claim(&self, path: &str) -> Option<&serde_json::Value> {
        self.tokens.iter().find_map(|(_, v)| v.claim(path))
    }

    /// The payload of the token whose provider publishes it under `key` (Envoy's
    /// `payload_in_metadata`).
    pub fn payload(&self, key: &str) -> Option<&serde_json::Value> {
        self.tokens
            .iter()
            .find(|(p, _)| p.config.payload_in_metadata.as_deref() == Some(key))
            .map(|(_, v)| &v.payload)
    }

    /// Counts a finished request in the consumer's usage stats (when it has them):
    /// its status class, and the bytes received (`received`: the head) and sent.
    pub fn count_usage(&self, status: u16, (received, sent): (u64, u64)) {
        use crate::stats::names::consumer as usage;
        let Some(stats) = self.consumer.as_ref().and_then(|c| c.stats.as_ref()) else {
            return;
        };
        stats.get(usage::RQ_TOTAL).inc();
        if status != 0 {
            stats.get(usage::status_class(status)).inc();
        }
        stats.get(usage::RX_BYTES).add(received);
        stats.get(usage::TX_BYTES).add(sent);
    }

    /// The consumer's name, else the first token's `sub`: who the access log and rate
    /// limits name.
    pub fn principal(&self) -> Option<&str> {
        if let Some(c) = &self.consumer {
            return Some(&c.consumer.name);
        }
        self.claim("sub").and_then(serde_json::Value::as_str)
    }
}

/// API keys as a worker checks them.
#[derive(Debug)]
pub struct ApiKeyRuntime {
    pub table: ConsumerTable,
    pub from: Vec<TokenSource>,
    pub forward: bool,
}

/// A compiled requirement.
#[derive(Debug)]
pub enum Req {
    Provider {
        provider: Rc<ProviderRuntime>,
        /// The audiences a token must have (the provider's, or this requirement's own),
        /// checked on every request: the provider verifies and caches tokens without
        /// them, since requirements may differ. Everything else a token is checked for
        /// is either fixed by its bytes (issuer, claims: checked once, before caching)
        /// or checked by the cache (`exp`; `nbf` only ever becomes true).
        audiences: Box<[String]>,
    },
    ApiKey(Rc<ApiKeyRuntime>),
    Any(Box<[Req]>),
    All(Box<[Req]>),
    AllowMissing,
    AllowMissingOrFailed,
}

impl Req {
    /// Compiles `requirement` against this worker's providers and API keys; `None` if a
    /// name does not resolve (validation rules that out).
    pub fn compile(
        requirement: &Requirement,
        providers: &Providers,
        api_keys: Option<&Rc<ApiKeyRuntime>>,
    ) -> Option<Req> {
        let list = |items: &[Requirement]| -> Option<Box<[Req]>> {
            items
                .iter()
                .map(|r| Req::compile(r, providers, api_keys))
                .collect()
        };
        Some(match requirement {
            // Alone (Envoy's `requires: {allow_missing: {}}`), these verify whatever
            // token any provider finds: an `any` of every provider with the flag.
            Requirement::AllowMissing | Requirement::AllowMissingOrFailed => {
                let flag = match requirement {
                    Requirement::AllowMissing => Req::AllowMissing,
                    _ => Req::AllowMissingOrFailed,
                };
                let every = providers.all().into_iter().map(|p| Req::Provider {
                    provider: Rc::clone(p),
                    audiences: p.config.audiences.clone().into_boxed_slice(),
                });
                Req::Any(every.chain([flag]).collect())
            }
            Requirement::Provider { name, audiences } => {
                let provider = providers.get(name)?;
                let audiences = audiences.as_ref().unwrap_or(&provider.config.audiences);
                Req::Provider {
                    provider: Rc::clone(provider),
                    audiences: audiences.clone().into_boxed_slice(),
                }
            }
            Requirement::ApiKey => Req::ApiKey(Rc::clone(api_keys?)),
            // Inside an `any`, the flags stay flags.
            Requirement::Any(items) => Req::Any(
                items
                    .iter()
                    .map(|r| match r {
                        Requirement::AllowMissing => Some(Req::AllowMissing),
                        Requirement::AllowMissingOrFailed => Some(Req::AllowMissingOrFailed),
                        other => Req::compile(other, providers, api_keys),
                    })
                    .collect::<Option<_>>()?,
            ),
            Requirement::All(items) => Req::All(list(items)?),
        })
    }

    /// The identity headers its providers set (claims, the payload), which a client
    /// may not send itself.
    fn identity_headers(&self, out: &mut Vec<Box<[u8]>>) {
        match self {
            Req::Provider { provider, .. } => {
                let config = &provider.config;
                let claims = config.claim_to_headers.iter().map(|c| &c.header);
                for name in config.forward_payload_header.iter().chain(claims) {
                    let name: Box<[u8]> = name.as_bytes().into();
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
            Req::Any(items) | Req::All(items) => {
                items.iter().for_each(|r| r.identity_headers(out));
            }
            Req::ApiKey(_) | Req::AllowMissing | Req::AllowMissingOrFailed => {}
        }
    }
}

/// Why a requirement did not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    /// No token (or key) where the requirement looks.
    Missing,
    /// A token that does not verify.
    Jwt(JwtError),
    /// No API key.
    KeyMissing,
    /// An API key nobody owns.
    KeyUnknown,
}

/// The listener's answers to refused requests, in its reply profile.
#[derive(Debug)]
pub struct AuthReplies {
    jwt: Vec<(JwtError, Reply)>,
    missing: Reply,
    key_missing: Reply,
    key_unknown: Reply,
}

impl AuthReplies {
    pub fn new(profile: &LocalReplies) -> Self {
        AuthReplies {
            jwt: JwtError::ALL
                .iter()
                .map(|e| (*e, profile.custom(e.status(), e.message())))
                .collect(),
            missing: profile.custom(401, "Jwt is missing"),
            key_missing: profile.custom(401, "API key is missing"),
            key_unknown: profile.custom(401, "API key is not valid"),
        }
    }

    fn get(&self, fail: Fail) -> &Reply {
        match fail {
            Fail::Missing => &self.missing,
            Fail::KeyMissing => &self.key_missing,
            Fail::KeyUnknown => &self.key_unknown,
            Fail::Jwt(e) => self
                .jwt
                .iter()
                .find(|(k, _)| *k == e)
                .map_or(&self.missing, |(_, r)| r),
        }
    }
}

/// What a chain's authentication requires.
#[derive(Debug)]
enum Plan {
    /// The route's own requirement (`None`: nothing).
    Route(Option<Req>),
    /// What each of the listener's rules requires; the connection finds the request's
    /// rule while it routes (`RequestFacts::auth_rule`).
    Rules(Rc<[Option<Req>]>),
}

/// The authentication filter of one route.
#[derive(Debug)]
pub struct Authn {
    plan: Plan,
    /// Headers the plan's providers set: the client's own copies are removed from
    /// every request the filter applies to, whether a token follows or not (a route
    /// that lets requests without a token through must not let `x-user-id: admin`
    /// through with them).
    identity_headers: Box<[Box<[u8]>]>,
    bypass_cors_preflight: bool,
    stats: Option<WorkerScope>,
    replies: Rc<AuthReplies>,
}

impl Authn {
    /// A route's own requirement.
    pub fn for_route(
        requires: Option<Req>,
        bypass_cors_preflight: bool,
        stats: Option<WorkerScope>,
        replies: Rc<AuthReplies>,
    ) -> Self {
        let mut identity_headers = Vec::new();
        if let Some(r) = &requires {
            r.identity_headers(&mut identity_headers);
        }
        Authn {
            plan: Plan::Route(requires),
            identity_headers: identity_headers.into(),
            bypass_cors_preflight,
            stats,
            replies,
        }
    }

    /// The listener's rules (`requires[i]` is what rule `i` requires).
    pub fn for_rules(
        requires: Rc<[Option<Req>]>,
        bypass_cors_preflight: bool,
        stats: Option<WorkerScope>,
        replies: Rc<AuthReplies>,
    ) -> Self {
        let mut identity_headers = Vec::new();
        requires
            .iter()
            .flatten()
            .for_each(|r| r.identity_headers(&mut identity_headers));
        Authn {
            plan: Plan::Rules(requires),
            identity_headers: identity_headers.into(),
            bypass_cors_preflight,
            stats,
            replies,
        }
    }

    fn count(&self, index: usize) {
        if let Some(stats) = &self.stats {
            stats.get(index).inc();
        }
    }

    pub(super) fn on_request(
        &self,
        head: &mut RequestHead<'_>,
        facts: &mut RequestFacts<'_>,
        state: &mut RequestState,
    ) -> Verdict<'_> {
        let req = match &self.plan {
            Plan::Route(req) => req.as_ref(),
            Plan::Rules(requires) => facts
                .auth_rule
                .and_then(|i| requires.get(i))
                .and_then(Option::as_ref),
        };
        let Some(req) = req else {
            self.count(st::ALLOWED);
            return Verdict::Continue;
        };
        for name in self.identity_headers.iter() {
            head.remove(name);
        }
        if self.bypass_cors_preflight && is_cors_preflight(head) {
            self.count(st::CORS_PREFLIGHT_BYPASSED);
            return Verdict::Continue;
        }
        match self.check(req, head, facts, state) {
            Ok(()) => {
                self.count(st::ALLOWED);
                Verdict::Continue
            }
            Err(fail) => {
                self.count(st::DENIED);
                if matches!(fail, Fail::Missing | Fail::Jwt(_)) {
                    challenge(fail, head, facts, &mut state.reply_lines);
                }
                Verdict::Respond(self.replies.get(fail))
            }
        }
    }

    /// Whether `req` holds; on the way, verified tokens and the consumer are recorded in
    /// `state.auth` and the request is edited as the providers say.
    fn check(
        &self,
        req: &Req,
        head: &mut RequestHead<'_>,
        facts: &mut RequestFacts<'_>,
        state: &mut RequestState,
    ) -> Result<(), Fail> {
        match req {
            Req::Provider {
                provider,
                audiences,
            } => self.check_token(provider, audiences, head, facts, state),
            Req::ApiKey(keys) => check_key(keys, head, facts, state),
            Req::All(items) => items
                .iter()
                .try_for_each(|r| self.check(r, head, facts, state)),
            Req::Any(items) => {
                // Envoy's aggregation: any success wins; otherwise the last failure
                // that is not a missing token, else "missing" (which `allow_missing`
                // in the list turns into a pass).
                // The flags apply to the outcome of the others, wherever they are
                // in the list: every provider is still tried first, so a valid token
                // is verified and forwarded even when anything would pass.
                let mut outcome = Err(Fail::Missing);
                let (mut allow_missing, mut allow_failed) = (false, false);
                for item in items.iter() {
                    match item {
                        Req::AllowMissing => allow_missing = true,
                        Req::AllowMissingOrFailed => allow_failed = true,
                        _ => match self.check(item, head, facts, state) {
                            Ok(()) => return Ok(()),
                            // A token of another issuer is, to this provider, no token
                            // (Envoy's rule: several providers may share a header), and
                            // so is a missing API key.
                            Err(
                                Fail::Missing
                                | Fail::KeyMissing
                                | Fail::Jwt(JwtError::UnknownIssuer),
                            ) => {}
                            Err(other) => outcome = Err(other),
                        },
                    }
                }
                match outcome {
                    _ if allow_failed => Ok(()),
                    Err(Fail::Missing) if allow_missing => Ok(()),
                    other => other,
                }
            }
            // Only ever inside an `any` (`Req::compile`).
            Req::AllowMissing | Req::AllowMissingOrFailed => Ok(()),
        }
    }

    fn check_token(
        &self,
        provider: &Rc<ProviderRuntime>,
        audiences: &[String],
        head: &mut RequestHead<'_>,
        facts: &mut RequestFacts<'_>,
        state: &mut RequestState,
    ) -> Result<(), Fail> {
        let config = &provider.config;
        let Some((source, checked)) = find(&config.from, head, facts, |token| {
            provider.check(token, facts.now)
        }) else {
            return Err(Fail::Missing);
        };
        self.count(if checked.cached {
            st::JWT_CACHE_HIT
        } else {
            st::JWT_CACHE_MISS
        });
        let verified = checked.result.map_err(Fail::Jwt)?;
        if !audiences_allowed(audiences, &verified) {
            return Err(Fail::Jwt(JwtError::AudienceNotAllowed));
        }
        if let Some(name) = &config.forward_payload_header {
            let payload = &verified.payload_b64;
            let render = &mut state.render;
            render.clear();
            render.extend_from_slice(payload.as_bytes());
            if config.pad_forward_payload_header {
                render.resize(render.len() + (4 - render.len() % 4) % 4, b'=');
            }
            head.set(name.as_bytes(), render);
        }
        for claim in &config.claim_to_headers {
            state.render.clear();
            if verified.claim_text(&claim.claim, &mut state.render) {
                head.set(claim.header.as_bytes(), &state.render);
            }
        }
        if !config.forward {
            strip(source, head, facts);
        }
        state
            .identity_mut()
            .tokens
            .push((Rc::clone(provider), verified));
        Ok(())
    }
}

fn check_key(
    keys: &ApiKeyRuntime,
    head: &mut RequestHead<'_>,
    facts: &mut RequestFacts<'_>,
    state: &mut RequestState,
) -> Result<(), Fail> {
    let Some((source, found)) = find(&keys.from, head, facts, |key| {
        keys.table.find(key).map(Rc::clone)
    }) else {
        return Err(Fail::KeyMissing);
    };
    let consumer = found.ok_or(Fail::KeyUnknown)?;
    if !keys.forward {
        strip(source, head, facts);
    }
    state.identity_mut().consumer = Some(consumer);
    Ok(())
}

/// The first of `sources` that has a token (or key), and what `check` says of it.
fn find<'s, T>(
    sources: &'s [TokenSource],
    head: &RequestHead<'_>,
    facts: &RequestFacts<'_>,
    check: impl FnOnce(&[u8]) -> T,
) -> Option<(&'s TokenSource, T)> {
    for source in sources {
        let token = match source {
            TokenSource::Header { name, prefix } => head
                .header(name)
                .and_then(|v| extract::from_header_value(v, prefix)),
            TokenSource::Query(name) => extract::query_param(facts.query, name),
            TokenSource::Cookie(name) => {
                head.header("cookie").and_then(|v| extract::cookie(v, name))
            }
        };
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            return Some((source, check(token)));
        }
    }
    None
}

/// Removes a token or key from what goes upstream: its header, or its query parameter.
/// A cookie stays (the other cookies in the header are the application's).
fn strip(source: &TokenSource, head: &mut RequestHead<'_>, facts: &mut RequestFacts<'_>) {
    match source {
        TokenSource::Header { name, .. } => head.remove(name.as_bytes()),
        TokenSource::Query(name) => {
            if let Some(target) = facts.upstream_target.as_deref_mut() {
                extract::remove_query_param(target, name);
            }
        }
        TokenSource::Cookie(_) => {}
    }
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
fn is_cors_preflight(head: &RequestHead<'_>) -> bool {
    head.method() == crate::http1::Method::Options
        && head.header("origin").is_some()
        && head.header("access-control-request-method").is_some()
}

/// `www-authenticate: Bearer realm="<url>"`, with `error="invalid_token"` unless the
/// token was missing (RFC 6750 3.1), as Envoy writes it: the URL is the request's as
/// received (Envoy's `buildOriginalUri`: scheme, Host, path and query).
fn challenge(fail: Fail, head: &RequestHead<'_>, facts: &RequestFacts<'_>, lines: &mut Vec<u8>) {
    lines.extend_from_slice(b"www-authenticate: Bearer realm=\"");
    lines.extend_from_slice(if facts.https { b"https://" } else { b"http://" });
    // Visible ASCII (the codec checked both); a quoted-string escapes `"` and `\`.
    for &b in facts.authority.iter().chain(head.target()) {
        if b == b'"' || b == b'\\' {
            lines.push(b'\\');
        }
        lines.push(b);
    }
    lines.push(b'"');
    if fail != Fail::Missing {
        lines.extend_from_slice(b", error=\"invalid_token\"");
    }
    lines.extend_from_slice(b"\r\n");
}
