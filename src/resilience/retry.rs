//! Retry decisions: a route's compiled policy, one request's plan, and the verdict on
//! each failed attempt. Envoy's semantics, confirmed in its source
//! (`source/common/router/retry_state_impl.cc`: `wouldRetryFromHeaders` returns early on
//! `x-envoy-ratelimited`, then tests `is5xx`, `isGatewayError`, 409, the status list,
//! the header matchers and `getGrpcStatus`; `wouldRetryFromReset` retries the
//! connection-failure reasons under `connect-failure`, then any reset under
//! `reset-before-request` when `!upstream_request_started`, under `reset`, and under
//! `5xx | gateway-error` ("we count an upstream reset as a 5xx")) and docs (router
//! filter: `x-envoy-retry-on`, `x-envoy-max-retries` "takes precedence over the number
//! of retries set in either retry policy", no policy and no header: no retry):
//!
//! - A response carrying `x-envoy-ratelimited` (from an upstream Envoy) is retried only
//!   under `envoy-ratelimited`, whatever else the conditions say (Envoy returns early).
//! - `5xx`: any status 500..=599, and any attempt that ended without a response head
//!   (connect failure, reset, per-try timeout: Envoy's reset path retries every reset
//!   reason but overflow under `5xx | gateway-error | reset`; a per-try timeout goes
//!   down that path as a local reset).
//! - `gateway-error`: 502, 503, 504, and the same no-head endings.
//! - `reset`: every no-head ending, connect failures included (Envoy's reset path does
//!   not tell them apart; its docs say "does not respond at all (disconnect/reset/read
//!   timeout)").
//! - `reset-before-request`: a no-head ending before any request byte was written:
//!   connect failures, `Reset { written: false }`, `PerTryTimeout { written: false }`
//!   (Envoy: `!upstream_request_started`).
//! - `connect-failure`: connect failures only.
//! - `retriable-4xx`: 409. `retriable-status-codes`: the policy's list.
//!   `retriable-headers`: any one of the policy's response matchers.
//! - `refused-stream`: HTTP/2's REFUSED_STREAM has no HTTP/1.1 wire form. ringway takes
//!   its HTTP/1.1 meaning to be "the upstream closed a REUSED keep-alive connection
//!   before any response byte" (`Reset { reused: true, .. }`, written or not): the
//!   keep-alive race, where the server closed the idle connection while the request was
//!   on its way, which is the one HTTP/1.1 case where the server provably did not
//!   process the request. A reset on a fresh connection is not a refused stream.
//! - gRPC (`cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`,
//!   `unavailable`): the `grpc-status` RESPONSE HEADER (a trailers-only answer), as
//!   Envoy reads it in `wouldRetryFromHeaders`; trailers are not read.
//! - `http3-post-connect-failure`: never true (no HTTP/3 upstreams).
//!
//! The method rule is ringway's (issue 22): with [`RetryMethods::Idempotent`] a request
//! whose method is not idempotent is retried only when none of it was written. A
//! `Response` always means it was written.
//!
//! Request controls (`x-envoy-retry-on`, `x-envoy-retry-grpc-on`, `x-envoy-max-retries`,
//! `x-envoy-upstream-rq-per-try-timeout-ms`) are read only from trusted peers (the
//! caller's check); values that do not parse are ignored, unknown condition names are
//! skipped, as Envoy does. HTTP names count only in `x-envoy-retry-on` and gRPC names
//! only in `x-envoy-retry-grpc-on` (Envoy's `parseRetryOn` / `parseRetryGrpcOn`).
//!
//! Nothing here allocates after `RetryRules::compile`: a `Plan` is `Copy`, `judge` reads
//! headers through the caller's callback.

use std::time::Duration;

use crate::config::resilience::{Backoff, RateLimitedBackoff, RetryMethods, RetryOn, RetryPolicy};
use crate::config::HeaderMatch;
use crate::filter::value_match::Value;

/// The gRPC conditions (Envoy's `retry_grpc_on` names).
const GRPC: RetryOn = RetryOn(
    RetryOn::GRPC_CANCELLED.0
        | RetryOn::GRPC_DEADLINE_EXCEEDED.0
        | RetryOn::GRPC_INTERNAL.0
        | RetryOn::GRPC_RESOURCE_EXHAUSTED.0
        | RetryOn::GRPC_UNAVAILABLE.0,
);

/// Conditions that hold for every attempt ended without a response head.
const ANY_NO_HEAD: RetryOn =
    RetryOn(RetryOn::FIVE_XX.0 | RetryOn::GATEWAY_ERROR.0 | RetryOn::RESET.0);

/// A header condition compiled: lower-case name and value test.
#[derive(Debug)]
struct Matcher {
    name: Box<str>,
    value: Value,
}

impl Matcher {
    fn compile(m: &HeaderMatch) -> Matcher {
        Matcher {
            name: m.name.to_ascii_lowercase().into_boxed_str(),
            value: Value::compile(&m.value),
        }
    }

    fn test<'h>(&self, get: &dyn Fn(&str) -> Option<&'h [u8]>) -> bool {
        self.value.test(get(&self.name))
    }
}

/// A route's retry policy compiled once per config (header matchers built, lists boxed).
#[derive(Debug)]
pub struct RetryRules {
    retry_on: RetryOn,
    num_retries: u32,
    per_try_timeout: Option<Duration>,
    per_try_idle_timeout: Option<Duration>,
    hedge: bool,
    methods: RetryMethods,
    status_codes: Box<[u16]>,
    response_headers: Box<[Matcher]>,
    request_headers: Box<[Matcher]>,
    /// Back-off between attempts (for [`crate::resilience::backoff::delay`]).
    pub backoff: Backoff,
    /// The upstream's hints (for [`crate::resilience::retry_after::wait`]).
    pub rate_limited: Option<RateLimitedBackoff>,
    /// Prefer endpoints not tried yet (Envoy's `previous_hosts` predicate).
    pub other_host: bool,
    /// Picks per retry looking for an endpoint not tried yet.
    pub host_selection_attempts: u32,
    /// A `Content-Length` body up to this size is held whole for replay.
    pub buffer_limit: u64,
}

/// Trusted request controls as read from the head (values unparsed are ignored).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Controls {
    pub retry_on: RetryOn,
    pub max_retries: Option<u32>,
    /// `Some(ZERO)`: the header asked for no per-try timeout (Envoy: 0 disables it).
    pub per_try_timeout: Option<Duration>,
    /// `x-envoy-hedge-on-per-try-timeout`, replacing the route's setting.
    pub hedge: Option<bool>,
}

/// One request's retry plan: small and Copy (it lives in the connection task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub retry_on: RetryOn,
    pub retries_left: u32,
    pub per_try_timeout: Option<Duration>,
    pub per_try_idle_timeout: Option<Duration>,
    pub methods: RetryMethods,
    /// A per-try timeout sends a retry beside the attempt instead of ending it
    /// (`hedge_on_per_try_timeout`).
    pub hedge: bool,
}

/// How one attempt ended, before anything of its response went to the client.
pub enum AttemptEnd<'a> {
    /// Refused, unreachable, connect timeout, TLS failure.
    ConnectFailure,
    /// Closed/reset before any response byte; `written`: some of the request reached
    /// the upstream; `reused`: the connection had served a request before.
    Reset { written: bool, reused: bool },
    /// The per-try (or per-try idle) limit passed before the head.
    PerTryTimeout { written: bool },
    /// A whole response head; `headers` looks a header up by lower-case name.
    Response {
        status: u16,
        headers: &'a dyn Fn(&str) -> Option<&'a [u8]>,
    },
}

impl std::fmt::Debug for AttemptEnd<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptEnd::ConnectFailure => f.write_str("ConnectFailure"),
            AttemptEnd::Reset { written, reused } => f
                .debug_struct("Reset")
                .field("written", written)
                .field("reused", reused)
                .finish(),
            AttemptEnd::PerTryTimeout { written } => f
                .debug_struct("PerTryTimeout")
                .field("written", written)
                .finish(),
            AttemptEnd::Response { status, .. } => {
                f.debug_struct("Response").field("status", status).finish()
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Retry,
    Final,
}

impl RetryRules {
    pub fn compile(policy: &RetryPolicy) -> RetryRules {
        RetryRules {
            retry_on: policy.retry_on,
            num_retries: policy.num_retries,
            per_try_timeout: policy.per_try_timeout,
            per_try_idle_timeout: policy.per_try_idle_timeout,
            hedge: policy.hedge_on_per_try_timeout,
            methods: policy.methods,
            status_codes: policy.status_codes.clone().into_boxed_slice(),
            response_headers: policy
                .response_headers
                .iter()
                .map(Matcher::compile)
                .collect(),
            request_headers: policy
                .request_headers
                .iter()
                .map(Matcher::compile)
                .collect(),
            backoff: policy.backoff,
            rate_limited: policy.rate_limited.clone(),
            other_host: policy.other_host,
            host_selection_attempts: policy.host_selection_attempts,
            buffer_limit: policy.buffer_limit,
        }
    }

    /// Conditions, retries and per-try limits for one request: the route's, with the
    /// trusted request controls applied (x-envoy-retry-on OR'ed in, x-envoy-max-retries
    /// replacing num_retries, x-envoy-upstream-rq-per-try-timeout-ms replacing the
    /// per-try timeout). `rules` may be None (route without policy) while a header
    /// still asks for retries (Envoy then retries with num_retries 1). `None`: no
    /// condition at all, the request is never retried (Envoy creates no retry state).
    pub fn for_request(rules: Option<&RetryRules>, controls: &Controls) -> Option<Plan> {
        let route_on = rules.map_or(RetryOn::NONE, |r| r.retry_on);
        let retry_on = route_on | controls.retry_on;
        if retry_on.is_empty() {
            return None;
        }
        let per_try_timeout = match controls.per_try_timeout {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => rules.and_then(|r| r.per_try_timeout),
        };
        Some(Plan {
            retry_on,
            retries_left: controls
                .max_retries
                .unwrap_or_else(|| rules.map_or(1, |r| r.num_retries)),
            per_try_timeout,
            per_try_idle_timeout: rules.and_then(|r| r.per_try_idle_timeout),
            // Header-driven retries from a trusted peer keep Envoy's meaning.
            methods: rules.map_or(RetryMethods::Any, |r| r.methods),
            hedge: controls
                .hedge
                .unwrap_or_else(|| rules.is_some_and(|r| r.hedge)),
        })
    }

    /// Envoy's retriable_request_headers: whether this request may be retried at all
    /// (every matcher holds; none configured: any request).
    pub fn request_allowed<'h>(&self, get: &dyn Fn(&str) -> Option<&'h [u8]>) -> bool {
        self.request_headers.iter().all(|m| m.test(get))
    }

    /// The policy's own conditions (before request controls).
    pub fn retry_on(&self) -> RetryOn {
        self.retry_on
    }
}

impl Controls {
    pub fn read<'h>(get: &dyn Fn(&str) -> Option<&'h [u8]>) -> Controls {
        let mut retry_on = RetryOn::NONE;
        if let Some(list) = get("x-envoy-retry-on") {
            retry_on = retry_on | names(list, |on| !on.intersects(GRPC));
        }
        if let Some(list) = get("x-envoy-retry-grpc-on") {
            retry_on = retry_on | names(list, |on| on.intersects(GRPC));
        }
        Controls {
            retry_on,
            max_retries: get("x-envoy-max-retries").and_then(integer::<u32>),
            per_try_timeout: get("x-envoy-upstream-rq-per-try-timeout-ms")
                .and_then(integer::<u64>)
                .map(Duration::from_millis),
            hedge: get("x-envoy-hedge-on-per-try-timeout").and_then(boolean),
        }
    }
}

/// The known names of a comma list that `keep` accepts; others are skipped (Envoy).
fn names(list: &[u8], keep: impl Fn(RetryOn) -> bool) -> RetryOn {
    list.split(|&b| b == b',')
        .filter_map(|name| std::str::from_utf8(name).ok())
        .filter_map(|name| RetryOn::named(name.trim()))
        .filter(|&on| keep(on))
        .fold(RetryOn::NONE, |all, on| all | on)
}

/// A boolean as absl::SimpleAtob reads it (Envoy's `x-envoy-hedge-on-per-try-timeout`):
/// `true`, `t`, `yes`, `y`, `1` and their opposites, in any case.
pub fn boolean(value: &[u8]) -> Option<bool> {
    const TRUE: [&[u8]; 5] = [b"true", b"t", b"yes", b"y", b"1"];
    const FALSE: [&[u8]; 5] = [b"false", b"f", b"no", b"n", b"0"];
    let value = value.trim_ascii();
    let is = |words: [&[u8]; 5]| words.iter().any(|w| w.eq_ignore_ascii_case(value));
    if is(TRUE) {
        Some(true)
    } else if is(FALSE) {
        Some(false)
    } else {
        None
    }
}

/// A decimal integer, spaces around it allowed (absl::SimpleAtoi, which Envoy uses).
fn integer<T: std::str::FromStr>(value: &[u8]) -> Option<T> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

impl AttemptEnd<'_> {
    /// Whether any of the request reached the upstream (an answer means it did).
    pub fn written(&self) -> bool {
        match *self {
            AttemptEnd::ConnectFailure => false,
            AttemptEnd::Reset { written, .. } | AttemptEnd::PerTryTimeout { written } => written,
            AttemptEnd::Response { .. } => true,
        }
    }
}

impl Plan {
    /// Whether `end` is worth another attempt by the conditions and the method rule
    /// (idempotent: GET HEAD OPTIONS TRACE PUT DELETE). Does not look at budgets,
    /// breakers or deadlines (the caller does), does not decrement retries_left; a plan
    /// with no retries left is always `Final`.
    pub fn judge(
        &self,
        rules: Option<&RetryRules>,
        end: &AttemptEnd<'_>,
        idempotent: bool,
    ) -> Verdict {
        if self.retries_left == 0 {
            return Verdict::Final;
        }
        if end.written() && !idempotent && self.methods == RetryMethods::Idempotent {
            return Verdict::Final;
        }
        if self.condition_holds(rules, end) {
            Verdict::Retry
        } else {
            Verdict::Final
        }
    }

    fn condition_holds(&self, rules: Option<&RetryRules>, end: &AttemptEnd<'_>) -> bool {
        let on = self.retry_on;
        match *end {
            AttemptEnd::ConnectFailure => on
                .intersects(ANY_NO_HEAD | RetryOn::CONNECT_FAILURE | RetryOn::RESET_BEFORE_REQUEST),
            AttemptEnd::Reset { written, reused } => {
                on.intersects(ANY_NO_HEAD)
                    || (!written && on.intersects(RetryOn::RESET_BEFORE_REQUEST))
                    || (reused && on.intersects(RetryOn::REFUSED_STREAM))
            }
            AttemptEnd::PerTryTimeout { written } => {
                on.intersects(ANY_NO_HEAD)
                    || (!written && on.intersects(RetryOn::RESET_BEFORE_REQUEST))
            }
            AttemptEnd::Response { status, headers } => response_holds(on, rules, status, headers),
        }
    }
}

fn response_holds<'h>(
    on: RetryOn,
    rules: Option<&RetryRules>,
    status: u16,
    headers: &dyn Fn(&str) -> Option<&'h [u8]>,
) -> bool {
    // An upstream Envoy's rate-limit answer: only `envoy-ratelimited` retries it.
    if headers("x-envoy-ratelimited").is_some() {
        return on.intersects(RetryOn::ENVOY_RATELIMITED);
    }
    if on.intersects(RetryOn::FIVE_XX) && (500..=599).contains(&status) {
        return true;
    }
    if on.intersects(RetryOn::GATEWAY_ERROR) && (502..=504).contains(&status) {
        return true;
    }
    if on.intersects(RetryOn::RETRIABLE_4XX) && status == 409 {
        return true;
    }
    if let Some(rules) = rules {
        if on.intersects(RetryOn::RETRIABLE_STATUS_CODES) && rules.status_codes.contains(&status) {
            return true;
        }
        if on.intersects(RetryOn::RETRIABLE_HEADERS)
            && rules.response_headers.iter().any(|m| m.test(headers))
        {
            return true;
        }
    }
    if on.intersects(GRPC) {
        if let Some(code) = headers("grpc-status").and_then(integer::<u32>) {
            let hit = match code {
                1 => RetryOn::GRPC_CANCELLED,
                4 => RetryOn::GRPC_DEADLINE_EXCEEDED,
                8 => RetryOn::GRPC_RESOURCE_EXHAUSTED,
                13 => RetryOn::GRPC_INTERNAL,
                14 => RetryOn::GRPC_UNAVAILABLE,
                _ => RetryOn::NONE,
            };
            return on.intersects(hit);
        }
    }
    false
}

#[cfg(test)]
mod tests;
