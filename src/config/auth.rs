//! Authentication settings: JWT providers, API keys and consumers, and what a route
//! requires of a request (`auth`).
//!
//! Design: both formats decode to these types. Native configs declare providers once,
//! at the top level (`auth.jwt_providers`, `auth.api_keys`), and routes name what they
//! require (`auth: <provider>`, `auth: {any: [...]}`); Envoy configs declare providers in
//! the `jwt_authn` filter and requirements in its `rules` and per-route
//! `PerRouteConfig`. Providers are identified by a name unique in the [`AuthConfig`]
//! (Envoy providers of the same name in two filters with different settings get the
//! listener's name in front: `listener_0/firebase`). Key material is checked at load
//! (an inline or file JWKS that does not parse is a config error); remote keys are
//! fetched off the workers (`auth::keys`).

use std::path::PathBuf;
use std::time::Duration;

/// Every provider the config declares.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthConfig {
    /// Unique names.
    pub jwt_providers: Vec<JwtProvider>,
    /// API keys and the consumers that own them (native configs only).
    pub api_keys: Option<ApiKeys>,
}

impl AuthConfig {
    pub fn provider(&self, name: &str) -> Option<&JwtProvider> {
        self.jwt_providers.iter().find(|p| p.name == name)
    }
}

/// One JWT issuer and how its tokens are checked (Envoy's `JwtProvider`).
#[derive(Debug, Clone, PartialEq)]
pub struct JwtProvider {
    /// Unique in the config.
    pub name: String,
    /// The `iss` a token must carry; `None`: any (Envoy's empty `issuer`).
    pub issuer: Option<String>,
    /// The token's `aud` must contain one of these; empty: any audience.
    pub audiences: Vec<String>,
    /// Where the keys come from.
    pub jwks: JwksSource,
    /// Where the token is looked for, in order; never empty (the decoders fill in the
    /// default: `Authorization: Bearer`, then the query parameter `access_token`).
    pub from: Vec<TokenSource>,
    /// Keep the token in the request forwarded upstream (Envoy's `forward`; removed by
    /// default).
    pub forward: bool,
    /// Forward the token's payload, base64url-encoded, in this header.
    pub forward_payload_header: Option<String>,
    /// Pad that base64url value with `=` (Envoy's `pad_forward_payload_header`).
    pub pad_forward_payload_header: bool,
    /// Claims copied into request headers (`claim` may be a dotted path, `a.b`);
    /// string, number and boolean claims are copied, others skipped (Envoy's rule).
    pub claim_to_headers: Vec<ClaimToHeader>,
    /// Allowed clock difference for `exp` and `nbf` (Envoy's `clock_skew_seconds`, 60 s).
    pub clock_skew: Duration,
    /// A token without `exp` is refused (Envoy's `require_expiration`).
    pub require_expiration: bool,
    /// `exp - iat` (or `exp - now` without `iat`) may not exceed this
    /// (Envoy's `max_lifetime`).
    pub max_lifetime: Option<Duration>,
    /// Claims every token must carry (native `required_claims`).
    pub required_claims: Vec<String>,
    /// Verified tokens cached per core (Envoy's `jwt_cache_config.jwt_cache_size`, 100).
    pub cache_size: usize,
    /// Envoy's `payload_in_metadata`: the name under which authorization rules
    /// (`rbac` metadata matchers on `envoy.filters.http.jwt_authn`) find the payload.
    pub payload_in_metadata: Option<String>,
}

impl JwtProvider {
    pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
    pub const DEFAULT_CACHE_SIZE: usize = 100;
}

/// Where a provider's keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum JwksSource {
    /// JWKS JSON (or a PEM public key) written in the config.
    Inline(String),
    /// A file read at load and re-read when it changes; a change that does not parse
    /// keeps the keys before it.
    File {
        path: PathBuf,
        /// Its text at load (checked to parse).
        text: String,
    },
    /// Fetched over HTTP(S) off the workers.
    Remote(RemoteJwks),
}

/// A JWKS URL (Envoy's `remote_jwks`).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteJwks {
    /// `http://` or `https://` URL.
    pub url: String,
    /// The cluster whose endpoints (and TLS settings) the fetch connects to (Envoy's
    /// `http_uri.cluster`); `None`: the URL's host, resolved by the system, with the
    /// system's roots for `https`.
    pub cluster: Option<String>,
    /// Time allowed for one fetch (Envoy's `http_uri.timeout`).
    pub timeout: Duration,
    /// Keys are fetched again after this long (Envoy's `cache_duration`; the native
    /// default is 5 min, Envoy's 10 min).
    pub cache_duration: Duration,
    /// After a failed fetch, the next try comes this much later (Envoy's
    /// `async_fetch.failed_refetch_duration`, 1 s), doubling up to `cache_duration`.
    pub failed_refetch: Duration,
    /// Until the first fetch succeeds: `true` (Envoy's `fast_listener: true`, and the
    /// native default): serve, and answer 401 to requests needing these keys; `false`:
    /// `/ready` answers 503 until the keys arrive (see `ready_after_failed_fetch`).
    pub fast_listener: bool,
    /// With `fast_listener: false`, a first fetch that *failed* also ends the wait
    /// (Envoy's documented rule: "activated after the initial fetch is completed ...
    /// successful or failed"; set for Envoy configs); `false` (native `wait_for_keys`):
    /// only keys end it.
    pub ready_after_failed_fetch: bool,
    /// Attempts per fetch beyond the first (Envoy's `retry_policy.num_retries`).
    pub retries: u32,
    /// A token with a `kid` the keys do not have makes the keys be fetched again, at
    /// most once per this long (native `refetch_unknown_kid`, 10 s; 0: never).
    pub unknown_kid_refetch: Duration,
}

impl RemoteJwks {
    pub const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(300);
    pub const DEFAULT_FAILED_REFETCH: Duration = Duration::from_secs(1);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(10);
}

/// Where a token is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A request header (name lower case), the token after `prefix` (`Bearer `; the
    /// prefix is compared case-insensitively, as Envoy does for `Bearer`).
    Header { name: String, prefix: String },
    /// A query parameter of the request target (removed before the upstream).
    Query(String),
    /// A cookie of the `Cookie` header.
    Cookie(String),
}

/// A claim copied into a request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToHeader {
    pub claim: String,
    /// Lower case.
    pub header: String,
}

/// API keys and the consumers that own them.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeys {
    /// Where a key is looked for, in order (native default: header `x-api-key`).
    pub from: Vec<TokenSource>,
    /// Consumers written in the config.
    pub consumers: Vec<Consumer>,
    /// A YAML file of more consumers (re-read when it changes; a bad change keeps the
    /// consumers before it), and its consumers at load.
    pub file: Option<(PathBuf, Vec<Consumer>)>,
    /// Keep the key in the request forwarded upstream (removed by default).
    pub forward: bool,
}

/// A client of the API, known by its keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    /// Unique; the identity access logs, stats and rate limits use.
    pub name: String,
    /// SHA-256 digests of its keys (from `keys` or `key_sha256` in the config).
    pub key_digests: Vec<[u8; 32]>,
    /// Free-form facts (`plan: gold`) authorization rules and header variables read.
    pub metadata: Vec<(String, String)>,
}

/// What a route requires of a request (Envoy's `JwtRequirement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A valid token of this provider; `audiences` replaces the provider's when set
    /// (Envoy's `provider_and_audiences`).
    Provider {
        name: String,
        audiences: Option<Vec<String>>,
    },
    /// A valid API key of a known consumer.
    ApiKey,
    /// One of these holds (Envoy's `requires_any`); the error of the last is answered.
    Any(Vec<Requirement>),
    /// All hold (Envoy's `requires_all`).
    All(Vec<Requirement>),
    /// Missing tokens pass; invalid tokens are refused (Envoy's `allow_missing`).
    AllowMissing,
    /// Missing and invalid tokens pass (Envoy's `allow_missing_or_failed`); valid
    /// ones are still verified and forwarded.
    AllowMissingOrFailed,
}

/// A listener's authentication (the native top-level `auth` used by its routes, or
/// Envoy's `jwt_authn` filter in its connection manager).
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerAuth {
    /// Envoy's `rules`: the first whose match holds for a request decides what it
    /// requires (`None`: nothing); a route's own [`RouteAuth`] replaces them. Native
    /// listeners have none: their routes say what they require.
    pub rules: Vec<AuthRule>,
    /// CORS preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
    /// pass without a token (Envoy's `bypass_cors_preflight`, off by default there; on in
    /// native configs).
    pub bypass_cors_preflight: bool,
    /// Stats go under `http.<prefix>.jwt_authn.` (Envoy's filter stats).
    pub stats: bool,
}

/// One of Envoy's `jwt_authn` rules.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthRule {
    pub matcher: super::RouteMatch,
    pub conditions: super::RouteConditions,
    pub requires: Option<Requirement>,
}

/// What one route requires, replacing the listener's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAuth {
    /// Nothing (Envoy's per-route `disabled: true`; native `auth: none`).
    Disabled,
    /// This (native `auth: ...`; Envoy's per-route `requirement_name`).
    Requires(Requirement),
}
