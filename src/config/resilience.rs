//! Resilience settings: a route's retry policy, mirrors, fault injection and stream
//! duration, and a cluster's circuit breakers (issue 22). Plain data, filled by both
//! decoders (native `decode_resilience`, Envoy `envoy::resilience`); what they mean at
//! run time is in `crate::resilience` (the sans-IO decisions) and
//! `worker::connection::forward` (where they are applied).

use std::time::Duration;

use super::model::HeaderMatch;

/// When a failed attempt is tried again (Envoy's `retry_on` names, as a bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOn(pub u32);

impl RetryOn {
    /// `5xx`: any 5xx answer, a reset, a connect failure or a per-try timeout.
    pub const FIVE_XX: RetryOn = RetryOn(1 << 0);
    /// `gateway-error`: 502, 503, 504, resets, connect failures and per-try timeouts.
    pub const GATEWAY_ERROR: RetryOn = RetryOn(1 << 1);
    /// `reset`: the upstream reset or closed the connection, or did not answer in time.
    pub const RESET: RetryOn = RetryOn(1 << 2);
    /// `reset-before-request`: a reset before any request byte was written (always safe).
    pub const RESET_BEFORE_REQUEST: RetryOn = RetryOn(1 << 3);
    /// `connect-failure`: connecting failed or timed out.
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1 << 4);
    /// `envoy-ratelimited`: the answer carried `x-envoy-ratelimited`.
    pub const ENVOY_RATELIMITED: RetryOn = RetryOn(1 << 5);
    /// `retriable-4xx`: 409.
    pub const RETRIABLE_4XX: RetryOn = RetryOn(1 << 6);
    /// `refused-stream`: the upstream refused the stream (HTTP/2 `REFUSED_STREAM`; on
    /// HTTP/1.1, a connection closed before any response byte of a request written on
    /// a reused connection).
    pub const REFUSED_STREAM: RetryOn = RetryOn(1 << 7);
    /// `retriable-status-codes`: a status in `RetryPolicy::status_codes`.
    pub const RETRIABLE_STATUS_CODES: RetryOn = RetryOn(1 << 8);
    /// `retriable-headers`: a response header matching `RetryPolicy::response_headers`.
    pub const RETRIABLE_HEADERS: RetryOn = RetryOn(1 << 9);
    /// `http3-post-connect-failure`: never true before HTTP/3 (accepted, as Envoy does
    /// for HTTP/1.1 upstreams).
    pub const HTTP3_POST_CONNECT_FAILURE: RetryOn = RetryOn(1 << 10);
    /// gRPC conditions (`retry_grpc_on` or in `retry_on`): a `grpc-status` response
    /// header (trailers-only answer) of 1 (`cancelled`), 4 (`deadline-exceeded`),
    /// 13 (`internal`), 8 (`resource-exhausted`), 14 (`unavailable`).
    pub const GRPC_CANCELLED: RetryOn = RetryOn(1 << 11);
    pub const GRPC_DEADLINE_EXCEEDED: RetryOn = RetryOn(1 << 12);
    pub const GRPC_INTERNAL: RetryOn = RetryOn(1 << 13);
    pub const GRPC_RESOURCE_EXHAUSTED: RetryOn = RetryOn(1 << 14);
    pub const GRPC_UNAVAILABLE: RetryOn = RetryOn(1 << 15);

    /// Every condition with its Envoy name.
    pub const NAMES: [(RetryOn, &'static str); 16] = [
        (Self::FIVE_XX, "5xx"),
        (Self::GATEWAY_ERROR, "gateway-error"),
        (Self::RESET, "reset"),
        (Self::RESET_BEFORE_REQUEST, "reset-before-request"),
        (Self::CONNECT_FAILURE, "connect-failure"),
        (Self::ENVOY_RATELIMITED, "envoy-ratelimited"),
        (Self::RETRIABLE_4XX, "retriable-4xx"),
        (Self::REFUSED_STREAM, "refused-stream"),
        (Self::RETRIABLE_STATUS_CODES, "retriable-status-codes"),
        (Self::RETRIABLE_HEADERS, "retriable-headers"),
        (
            Self::HTTP3_POST_CONNECT_FAILURE,
            "http3-post-connect-failure",
        ),
        (Self::GRPC_CANCELLED, "cancelled"),
        (Self::GRPC_DEADLINE_EXCEEDED, "deadline-exceeded"),
        (Self::GRPC_INTERNAL, "internal"),
        (Self::GRPC_RESOURCE_EXHAUSTED, "resource-exhausted"),
        (Self::GRPC_UNAVAILABLE, "unavailable"),
    ];

    pub const NONE: RetryOn = RetryOn(0);

    /// The condition named `name` (Envoy's spelling), if there is one.
    pub fn named(name: &str) -> Option<RetryOn> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(bit, _)| *bit)
    }

    /// The conditions of a comma-separated list (Envoy's `retry_on`, the
    /// `x-envoy-retry-on` header); spaces around names are ignored. `Err` names the
    /// first unknown condition.
    pub fn parse_list(list: &str) -> Result<RetryOn, &str> {
        let mut on = RetryOn::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            on = on | Self::named(name).ok_or(name)?;
        }
        Ok(on)
    }

    pub fn contains(self, other: RetryOn) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn intersects(self, other: RetryOn) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for RetryOn {
    type Output = RetryOn;
    fn bitor(self, other: RetryOn) -> RetryOn {
        RetryOn(self.0 | other.0)
    }
}

/// A route's retry policy (native `retry:`, Envoy's `RetryPolicy` on a route or its
/// virtual host; the route's replaces the host's).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The conditions that make an attempt worth repeating.
    pub retry_on: RetryOn,
    /// Attempts after the first (Envoy's `num_retries`, default 1).
    pub num_retries: u32,
    /// Limit of each attempt, from its start to the end of its response; `None`: only
    /// the route timeout (Envoy's `per_try_timeout`).
    pub per_try_timeout: Option<Duration>,
    /// No progress on an attempt for this long ends it (Envoy's `per_try_idle_timeout`).
    pub per_try_idle_timeout: Option<Duration>,
    /// When `per_try_timeout` passes, the attempt is not abandoned: a retry is sent
    /// beside it and the first good answer of either is forwarded (Envoy's
    /// `hedge_policy.hedge_on_per_try_timeout`; native `hedge: true`).
    pub hedge_on_per_try_timeout: bool,
    /// Statuses retried with `retriable-status-codes`.
    pub status_codes: Vec<u16>,
    /// Response headers retried with `retriable-headers` (any one matching).
    pub response_headers: Vec<HeaderMatch>,
    /// Only requests matching all of these are retried (Envoy's
    /// `retriable_request_headers`; empty: every request).
    pub request_headers: Vec<HeaderMatch>,
    /// Exponential back-off with full jitter between attempts.
    pub backoff: Backoff,
    /// Back-off told by the upstream (`Retry-After`, Envoy's
    /// `rate_limited_retry_back_off`); `None`: the upstream's hints are not read.
    pub rate_limited: Option<RateLimitedBackoff>,
    /// Prefer an endpoint not tried yet for each retry (Envoy's `retry_host_predicate`
    /// `envoy.retry_host_predicates.previous_hosts`; native default true).
    pub other_host: bool,
    /// Picks per retry looking for an endpoint not tried yet: the first and its re-picks
    /// (Envoy's `host_selection_retry_max_attempts` counts the re-picks, default 1, so
    /// Envoy's default is 2 picks; native default 3).
    pub host_selection_attempts: u32,
    /// Which requests may be retried after their bytes reached the upstream.
    pub methods: RetryMethods,
    /// A request body up to this size (with `Content-Length`) is read whole before the
    /// first attempt, so that any attempt can send it again (native `buffer`, Envoy's
    /// `per_request_buffer_limit_bytes`; default 64 KiB). A larger or chunked body
    /// streams, and is repeated only when none of it was sent.
    pub buffer_limit: u64,
}

impl RetryPolicy {
    /// Envoy's defaults: no condition, one retry, 25 ms base back-off.
    pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(25);
    /// The body size held for replay by default.
    pub const DEFAULT_BUFFER_LIMIT: u64 = 64 * 1024;

    /// A policy with Envoy's defaults and these conditions.
    pub fn new(retry_on: RetryOn) -> RetryPolicy {
        RetryPolicy {
            retry_on,
            num_retries: 1,
            per_try_timeout: None,
            per_try_idle_timeout: None,
            hedge_on_per_try_timeout: false,
            status_codes: Vec::new(),
            response_headers: Vec::new(),
            request_headers: Vec::new(),
            backoff: Backoff::default(),
            rate_limited: None,
            other_host: false,
            host_selection_attempts: 2,
            methods: RetryMethods::Any,
            buffer_limit: Self::DEFAULT_BUFFER_LIMIT,
        }
    }
}

/// Which requests a retry may repeat once their bytes were written upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMethods {
    /// Idempotent methods only (GET, HEAD, OPTIONS, TRACE, PUT, DELETE); any other
    /// request is retried only when nothing of it was written (native default).
    Idempotent,
    /// Any method, as the conditions say (Envoy's meaning; native `retry_non_idempotent:
    /// true`).
    Any,
}

/// Exponential back-off with full jitter: before retry `n` (from 1), a wait drawn
/// uniformly from `[0, min(max, base × 2^(n-1))]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    /// Default 10 × base (Envoy's).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: RetryPolicy::DEFAULT_BACKOFF_BASE,
            max: RetryPolicy::DEFAULT_BACKOFF_BASE * 10,
        }
    }
}

/// Back-off the upstream asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitedBackoff {
    /// Response headers read in order; the first that parses gives the wait.
    pub reset_headers: Vec<ResetHeader>,
    /// Longest wait taken from a header (default 300 s, Envoy's); a longer one makes
    /// the attempt final (its answer is returned).
    pub max_interval: Duration,
}

/// A response header that says when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetHeader {
    /// Lower case.
    pub name: String,
    pub format: ResetFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetFormat {
    /// Delta seconds (`Retry-After: 120`; also an HTTP date for `retry-after`).
    Seconds,
    /// A Unix timestamp in seconds (`X-RateLimit-Reset: 1700000000`).
    UnixTimestamp,
}

/// A cluster's circuit breakers: one set of thresholds per routing priority (Envoy's
/// `circuit_breakers.thresholds`; a priority without an entry gets the defaults).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CircuitBreakers {
    /// `[DEFAULT, HIGH]`.
    pub thresholds: [Thresholds; 2],
}

/// Process-wide limits of one cluster and priority.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Connections open to the cluster's endpoints (default 1024).
    pub max_connections: u32,
    /// Requests waiting for a connection (default 1024).
    pub max_pending_requests: u32,
    /// Requests outstanding (default 1024).
    pub max_requests: u32,
    /// Retries outstanding (default 3); ignored when `retry_budget` is set.
    pub max_retries: u32,
    pub retry_budget: Option<RetryBudget>,
    /// Publish `remaining_*` gauges (Envoy's `track_remaining`).
    pub track_remaining: bool,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
            retry_budget: None,
            track_remaining: false,
        }
    }
}

#[cfg(test)]
impl Thresholds {
    /// Every field away from its default: what the decoders' tests of both formats
    /// write and expect back.
    pub(crate) fn every_field_set() -> Thresholds {
        Thresholds {
            max_connections: 10,
            max_pending_requests: 0,
            max_requests: 30,
            max_retries: 4,
            retry_budget: Some(RetryBudget {
                budget_percent: 12.5,
                min_retry_concurrency: 1,
            }),
            track_remaining: true,
        }
    }
}

/// Retries allowed as a share of active requests (Envoy's `RetryBudget`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// Percent of active requests that may be retries (default 20.0).
    pub budget_percent: f64,
    /// Retries allowed whatever the number of active requests (default 3).
    pub min_retry_concurrency: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            budget_percent: 20.0,
            min_retry_concurrency: 3,
        }
    }
}

/// Routing priority of a route's requests (Envoy's `RouteAction.priority`), which
/// picks the cluster's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    #[default]
    Default,
    High,
}

/// A share of requests (Envoy's `FractionalPercent`): `numerator / denominator`, the
/// denominator 100, 10,000 or 1,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    pub numerator: u32,
    pub denominator: u32,
}

impl Fraction {
    pub const ALL: Fraction = Fraction {
        numerator: 100,
        denominator: 100,
    };

    /// Whether a uniform draw in `[0, 2^64)` falls in the share.
    pub fn hits(self, draw: u64) -> bool {
        let numerator = self.numerator.min(self.denominator);
        (draw % u64::from(self.denominator.max(1))) < u64::from(numerator)
    }
}

/// Shadow traffic: a copy of a share of a route's requests to another cluster, fire
/// and forget (Envoy's `request_mirror_policies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Guaranteed to exist.
    pub cluster: String,
    /// Share of requests mirrored (default all).
    pub fraction: Fraction,
    /// Keep Host as it is instead of suffixing `-shadow` (Envoy's
    /// `disable_shadow_host_suffix_append`).
    pub keep_host: bool,
}

/// Fault injection of a route (Envoy's `envoy.filters.http.fault`, native `fault:`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultPolicy {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
    pub response_rate: Option<FaultRate>,
    /// Only requests matching all of these get faults.
    pub headers: Vec<HeaderMatch>,
    /// Only requests routed to one of these clusters (empty: any).
    pub upstream_clusters: Vec<String>,
    /// Faults active at once on one worker, past which none is injected (Envoy's
    /// `max_active_faults`, process-wide there; `None`: no limit).
    pub max_active: Option<u32>,
}

/// Delay a share of requests before they are forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultDelay {
    /// `None`: the delay comes from `x-envoy-fault-delay-request` (milliseconds).
    pub fixed: Option<Duration>,
    pub fraction: Fraction,
}

/// Answer a share of requests with a status instead of forwarding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultAbort {
    /// `None`: the status comes from `x-envoy-fault-abort-request` (200..=599).
    pub status: Option<u16>,
    pub fraction: Fraction,
}

/// Send a share of responses at a limited rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRate {
    /// `None`: the rate comes from `x-envoy-fault-throughput-response` (KiB/s).
    pub kibps: Option<u64>,
    pub fraction: Fraction,
}
