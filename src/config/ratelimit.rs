//! Rate limits: token buckets keyed by who or what a request is, as a route applies them.
//!
//! Design: one model for both config formats, fully resolved per route by the decoders.
//! A route's [`RateLimitPolicy`] lists every [`Limit`] that may apply to its requests
//! (native listener-wide limits are copied into each route with the same
//! [`Limit::id`], so they share one bucket; Envoy's filter-level `token_bucket` is copied
//! into each route without a per-route config, likewise), with the answer and the stats
//! style of the format it came from. The engine (`crate::ratelimit`) keeps one process-wide
//! table of buckets per limit id; a reload keeps the buckets of a limit whose id and
//! bucket are unchanged.
//!
//! A token bucket holds at most `burst` tokens and is refilled continuously at
//! `tokens / per` (Envoy's current `local_ratelimit` refills continuously too: 2 tokens
//! per 5 s is one token every 2.5 s). A client may get `burst + rate × W` requests in any
//! window of length `W`.

use std::time::Duration;

use super::model::{HeaderAdd, HeaderMatch};

/// A token bucket: at most `burst` tokens, refilled continuously at `tokens` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens added per `per` (> 0).
    pub tokens: u64,
    /// The period `tokens` are added over (> 0).
    pub per: Duration,
    /// The bucket's capacity, and its level when a key is first seen (> 0).
    pub burst: u64,
}

/// A share of requests, in parts per million (Envoy's `RuntimeFractionalPercent`
/// default value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    pub per_million: u32,
}

impl Fraction {
    pub const ALL: Fraction = Fraction {
        per_million: 1_000_000,
    };
    pub const NONE: Fraction = Fraction { per_million: 0 };
}

/// One part of a native limit's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// The client address as the listener's trust policy resolved it (after
    /// `x-forwarded-for` from trusted proxies).
    Client,
    /// Who authentication found the client to be: the API-key consumer's name, else the
    /// JWT's `sub` (`Identity::principal`). Requests without one skip the limit.
    Consumer,
    /// A claim of the request's verified JWT (dotted path); requests without it skip the
    /// limit.
    Claim(String),
    /// The verified client certificate's identity (its first URI SAN, else its first DNS
    /// SAN, else its subject); requests without one skip the limit.
    Peer,
    /// A request header's value (lower-case name); requests without it skip the limit.
    Header(String),
    /// A query parameter's value, as sent (the first of that name); requests without it
    /// skip the limit.
    Query(String),
}

impl KeyPart {
    /// Whether the part is known only once authentication ran.
    pub fn needs_identity(&self) -> bool {
        matches!(self, KeyPart::Consumer | KeyPart::Claim(_))
    }
}

/// What a limit's key is, and when the limit applies to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// Native: the parts' values, in order; a request lacking one skips the limit. No
    /// parts: one bucket for every request of the limit.
    Parts(Vec<KeyPart>),
    /// Envoy: the filter's (or the per-route config's) own `token_bucket`; one bucket.
    /// It applies when no descriptor matched, or always with
    /// `always_consume_default_token_bucket` ([`EnvoyOptions`]).
    EnvoyDefault,
    /// Envoy: a `descriptors[]` entry. It applies when one of the request's generated
    /// descriptors has exactly these keys in this order, with these values where a value
    /// is given; an entry without a value matches any value, and each distinct value
    /// gets its own bucket (the key is the values of those entries).
    Descriptor(Vec<(String, Option<String>)>),
}

/// One limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Native: the limit's name (stats `http.<prefix>.rate_limit.<name>.`), unique among
    /// the limits of a listener. Envoy: a name for logs.
    pub name: String,
    /// Bucket identity: limits with the same id share their buckets (a listener-wide
    /// limit on every route, Envoy's filter-level bucket on every route of a connection
    /// manager), and a reload keeps the buckets of an id whose bucket and key are
    /// unchanged. Unique per bucket set in the process (decoders prefix it with the
    /// listener's name).
    pub id: String,
    pub bucket: Bucket,
    pub key: LimitKey,
    /// Per consumer plan: when the request's consumer has metadata `plan` with one of
    /// these values, its bucket is this one instead of `bucket` (native `plans`).
    pub plans: Vec<(String, Bucket)>,
    /// Decide and count, never refuse (native `shadow: true`).
    pub shadow: bool,
    /// A bucket per client connection instead of one shared by the process (Envoy's
    /// `local_rate_limit_per_downstream_connection`, native `per_connection`).
    pub per_connection: bool,
    /// Distinct keys the process keeps buckets for (a fixed-size table); more evict the
    /// idle ones first. Ignored for a limit with one bucket.
    pub max_keys: u32,
}

impl Limit {
    /// Default `max_keys`.
    pub const DEFAULT_MAX_KEYS: u32 = 16_384;

    /// Whether the limit's key is known only once authentication ran.
    pub fn needs_identity(&self) -> bool {
        !self.plans.is_empty()
            || matches!(&self.key, LimitKey::Parts(parts) if parts.iter().any(KeyPart::needs_identity))
    }
}

/// Which rate-limit headers go on responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimitHeaders {
    #[default]
    None,
    /// `RateLimit-Policy` and `RateLimit` of draft-ietf-httpapi-ratelimit-headers
    /// (native `rate_limit_headers: true`), on every response of the route.
    Ietf,
    /// Envoy's `enable_x_ratelimit_headers: DRAFT_VERSION_03`: `x-ratelimit-limit`,
    /// `x-ratelimit-remaining`, `x-ratelimit-reset`.
    XRateLimitDraft03,
}

/// How Envoy's `rate_limits` of a virtual host combine with a route's (the filter's
/// `vh_rate_limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VhRateLimits {
    /// The virtual host's apply only when the route has none (Envoy's default).
    #[default]
    Override,
    /// Both apply.
    Include,
    /// Only the route's.
    Ignore,
}

/// One value source of an Envoy `rate_limits[].actions[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A fixed entry: `generic_key`, `source_cluster`, `destination_cluster` (the
    /// decoder resolves the cluster's name).
    Fixed { key: String, value: String },
    /// `header_value_match`: the entry when the headers match (or do not, with
    /// `expect_match: false`); the descriptor is not generated otherwise.
    HeaderValueMatch {
        key: String,
        value: String,
        expect_match: bool,
        headers: Vec<HeaderMatch>,
    },
    /// `request_headers`: the header's value under `key`; absent: the descriptor is not
    /// generated, or with `skip_if_absent` the entry is left out.
    RequestHeader {
        header: String,
        key: String,
        skip_if_absent: bool,
    },
    /// `query_parameters`: likewise for a query parameter (its raw value).
    QueryParameter {
        name: String,
        key: String,
        skip_if_absent: bool,
    },
    /// `remote_address`: the trusted client address under `remote_address`.
    RemoteAddress,
    /// `masked_remote_address`: the client address masked, `ip/len`, under
    /// `masked_remote_address`.
    MaskedRemoteAddress { v4_prefix: u8, v6_prefix: u8 },
}

/// One Envoy `rate_limits[]` entry of a route or virtual host: its actions generate one
/// descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorRule {
    /// Only rules whose stage equals the filter's `stage` apply.
    pub stage: u32,
    pub actions: Vec<Action>,
}

/// Where Envoy's `local_ratelimit` sits among the filters ringway orders itself (its
/// place in `http_filters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FilterPosition {
    /// Before the CORS filter: preflights are limited too.
    BeforeCors,
    /// After CORS, before jwt_authn and RBAC (where Envoy configs usually put it).
    #[default]
    BeforeAuth,
    /// After jwt_authn or RBAC: requests they refuse take no token.
    AfterAuth,
}

/// What only Envoy's `local_ratelimit` has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyOptions {
    /// Where the filter runs in the chain.
    pub position: FilterPosition,
    /// `<stat_prefix>.http_local_rate_limit.{enabled,ok,rate_limited,enforced}`.
    pub stat_prefix: String,
    /// The descriptors the route's (and virtual host's, per `vh_rate_limits`) rules
    /// generate, resolved by the decoder: only those of this filter's `stage`.
    pub rules: Vec<DescriptorRule>,
    /// Consume the default bucket also when a descriptor matched (Envoy's
    /// `always_consume_default_token_bucket`, default true).
    pub always_consume_default: bool,
    /// Added to the forwarded request when enabled but not enforced.
    pub request_headers_when_not_enforced: Vec<HeaderAdd>,
}

/// The rate limits of one route, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// Every limit that may apply; all that apply must allow.
    pub limits: Vec<Limit>,
    /// Share of requests the policy is checked for (Envoy's `filter_enabled`; native:
    /// all).
    pub enabled: Fraction,
    /// Share of checked requests refused when over a limit (Envoy's `filter_enforced`;
    /// native: all, and `shadow` per limit). Enabled but not enforced counts and allows.
    pub enforced: Fraction,
    /// The refusal's status (429; Envoy's `status`, where a code under 400 means 429).
    pub status: u16,
    /// Added to the refusal (Envoy's `response_headers_to_add`).
    pub response_headers: Vec<HeaderAdd>,
    /// `Retry-After` on the refusal: seconds until the next token (native; Envoy: no).
    pub retry_after: bool,
    pub headers: LimitHeaders,
    /// Envoy's descriptors and stats; `None` for native policies.
    pub envoy: Option<EnvoyOptions>,
}

impl RateLimitPolicy {
    /// A native policy of these limits (429, `Retry-After`, stats per limit).
    pub fn native(limits: Vec<Limit>, headers: LimitHeaders) -> RateLimitPolicy {
        RateLimitPolicy {
            limits,
            enabled: Fraction::ALL,
            enforced: Fraction::ALL,
            status: 429,
            response_headers: Vec::new(),
            retry_after: true,
            headers,
            envoy: None,
        }
    }
}

/// A limit on new connections of a listener, over the process (native
/// `connection_rate`, Envoy's `envoy.filters.network.local_ratelimit`): one over it is
/// accepted and closed at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRate {
    pub bucket: Bucket,
    /// Bucket identity across reloads (the listener's name, or Envoy's `share_key`).
    pub id: String,
    /// Envoy: counted in `local_rate_limit.<stat_prefix>.rate_limited`; native (`None`):
    /// in `listener.<prefix>.connection_rate.rate_limited`.
    pub envoy_stat_prefix: Option<String>,
}
