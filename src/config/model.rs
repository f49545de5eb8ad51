//! The decoded, validated configuration: plain data the rest of ringway reads.
//!
//! Design: these types carry no positions and no YAML; by the time a `Config` exists every
//! cross-reference has been checked (each route's cluster exists, names are unique), so
//! consumers can index by name without handling "not found". Defaults live here as
//! constants next to the field they belong to, so the reference config, the docs and the
//! code cannot drift apart silently (a test parses `config/reference.yaml`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use super::balance::{
    Balancing, DeclaredHealth, HashRule, HashSource, HealthCheck, HealthCheckKind, HttpCheck,
    LbPolicy, Locality, OutlierDetection, TcpCheck, MAX_PRIORITY,
};

/// A whole config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from (`<inline>` or whatever the caller passed for strings).
    pub source: PathBuf,
    pub workers: Workers,
    pub pin_workers: PinWorkers,
    pub driver: DriverChoice,
    /// The admin (stats, health) listener; `None` when the key is absent.
    pub admin: Option<SocketAddr>,
    /// At least one.
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    /// JWT providers and API keys (native top-level `auth`; Envoy's `jwt_authn`
    /// providers).
    pub auth: super::auth::AuthConfig,
    /// The access log; `None` when the key is absent (no access log).
    pub access_log: Option<AccessLogConfig>,
    /// Span exporters, one per distinct provider; listeners name theirs by index.
    pub tracers: Vec<super::observability::Tracer>,
    /// Client connections open at once over every listener and worker; more are closed
    /// at once (Envoy's `overload.global_downstream_max_connections`). None: no cap.
    pub max_connections: Option<u64>,
    /// When the file used the short form (top-level `routes`): the full-form document
    /// it was expanded to, which `--mode validate` prints.
    pub expansion: Option<String>,
    /// How the file was loaded (a reload loads it the same way).
    pub load_options: LoadOptions,
    /// The document as read, for `/config_dump`.
    pub document: Document,
    /// `Native` or `Envoy` (a v3 bootstrap).
    pub format: ConfigFormat,
}

/// The config document as read: what `/config_dump` shows (`config::dump`).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Document {
    /// Not kept (configs built in code).
    #[default]
    None,
    /// A native config's text.
    Native(std::sync::Arc<str>),
    /// An Envoy bootstrap, decoded (and merged with `--config-yaml`).
    Envoy(std::sync::Arc<prost_reflect::DynamicMessage>),
}

/// Command-line inputs to loading an Envoy bootstrap (Envoy's flags of the same names).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// `--config-yaml`: merged over the file (proto merge: scalars replace, messages
    /// merge, lists append); the whole config when there is no file.
    pub config_yaml: Option<String>,
    /// `--allow-unknown-static-fields`: unknown fields are warned about and counted,
    /// not refused.
    pub allow_unknown_static_fields: bool,
    /// `--accept-degraded`: groups of features ringway does not implement that may be
    /// dropped with a warning (`stats_sinks`, `watchdog`, ...; docs/envoy.md).
    pub accept_degraded: Vec<String>,
    /// `--service-cluster`: the local service cluster, over the bootstrap's
    /// `node.cluster` (as Envoy's flag does): the Zipkin tracer's service name and the
    /// rate-limit `source_cluster`. Empty: the bootstrap's.
    pub service_cluster: String,
    /// `--service-node` and `--service-zone`: the node's id and zone, over the
    /// bootstrap's `node.id` and `node.locality.zone` (the `node_id` and `zone` tags of
    /// an Envoy listener's spans). Empty: the bootstrap's.
    pub service_node: String,
    pub service_zone: String,
}

/// Which of the two config formats a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfigFormat {
    /// ringway's own.
    #[default]
    Native,
    /// An Envoy v3 `Bootstrap` (YAML or JSON).
    Envoy {
        /// Unknown fields ignored under `--allow-unknown-static-fields` (Envoy's
        /// `server.static_unknown_fields`).
        unknown_fields: u64,
        /// Items dropped under `--accept-degraded` (`server.degraded_config_items`).
        degraded: u64,
    },
}

impl Config {
    /// The cluster with this name. Every `RouteAction::Cluster` in a loaded config resolves.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

/// How many worker threads (one per core) to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workers {
    /// One per available CPU.
    #[default]
    Auto,
    /// Exactly this many, 1..=[`Workers::MAX`].
    Count(usize),
}

impl Workers {
    /// Upper bound for an explicit count; more is a typo, not a machine.
    pub const MAX: usize = 1024;
}

/// Whether to pin each worker thread to its own core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PinWorkers {
    /// Pin when there are at least as many cores available as workers.
    #[default]
    Auto,
    On,
    Off,
}

/// Which I/O driver the workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriverChoice {
    /// io_uring when the kernel allows it, else epoll.
    #[default]
    Auto,
    IoUring,
    Epoll,
}

/// A socket that accepts HTTP/1.1 and routes requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Unique; `[A-Za-z0-9_.-]+` (used in stat names).
    pub name: String,
    /// `ip:port`, or `unix:/path` for a Unix stream socket.
    pub address: Address,
    /// First match wins, in file order. Empty when the listener has `virtual_hosts`.
    pub routes: Vec<Route>,
    /// Route tables by authority (Envoy's virtual hosts); empty when the listener has
    /// `routes`, which then serve every authority.
    pub virtual_hosts: Vec<VirtualHost>,
    pub http1: Http1Settings,
    /// Time allowed to receive a complete request head.
    pub header_read_timeout: Duration,
    /// A client connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// No read or write of a request's exchange (either side) may take longer than
    /// this without completing (Envoy's `stream_idle_timeout`).
    pub stream_idle_timeout: Duration,
    /// The whole request body must arrive within this long of the head (Envoy's
    /// `request_timeout`); none by default.
    pub request_timeout: Option<Duration>,
    /// Client connections open at once on this listener, over every worker; more are
    /// closed at once (Envoy's listener connection limit). None: no cap.
    pub connection_limit: Option<u64>,
    /// The request that reaches this many on one connection is answered with
    /// `connection: close` and the connection closed after it (Envoy's
    /// `max_requests_per_connection`, nginx's `keepalive_requests`). None: no cap.
    pub max_requests_per_connection: Option<u64>,
    /// A connection open this long is closed: at once when idle, else after the
    /// response in progress, which says `connection: close` (Envoy's
    /// `max_connection_duration`). None: no limit.
    pub max_connection_duration: Option<Duration>,
    /// Header edits of every route of this listener (Envoy's route-configuration level).
    pub headers: HeaderMutations,
    /// CORS policy of every route of this listener without its own.
    pub cors: Option<CorsPolicy>,
    /// Upgrade protocols tunnelled on its routes (lower case; `websocket` by default).
    pub upgrades: Vec<String>,
    /// PROXY protocol before the client's bytes (behind a load balancer).
    pub proxy_protocol: Option<ProxyProtocol>,
    /// How requests are forwarded: trust, forwarding headers, body limits.
    pub proxy: ProxySettings,
    /// How request paths are normalised before routing.
    pub path_normalization: PathNormalization,
    /// Envoy's `envoy.filters.http.health_check` filter: requests it matches are answered
    /// by ringway (200; 503 while `/healthcheck/fail` holds), or passed on in pass-through
    /// mode unless failing. Listeners loaded from Envoy configs only.
    pub health_check: Option<HealthCheckFilter>,
    /// Stats root `http.<this>.` (Envoy's HTTP connection manager `stat_prefix`, which
    /// several listeners may share); `None`: the listener's name.
    pub http_stat_prefix: Option<String>,
    /// Stats root `listener.<this>.` (Envoy's listener `stat_prefix`, else its address
    /// as `0.0.0.0_10000`); `None`: the listener's name.
    pub listener_stat_prefix: Option<String>,
    /// TLS termination (`tls`, Envoy's `DownstreamTlsContext`); `None`: plaintext.
    pub tls: Option<super::tls::ServerTls>,
    /// Authentication on this listener's routes (Envoy's `jwt_authn` filter; native
    /// listeners get one when a route has `auth`).
    pub auth: Option<super::auth::ListenerAuth>,
    /// The access policy of every route without its own (Envoy's `rbac` filter).
    pub authorization: Option<super::authz::AuthzPolicy>,
    /// A limit on new connections per second over the process (native
    /// `connection_rate`, Envoy's network `local_ratelimit`).
    pub connection_rate: Option<super::ratelimit::ConnectionRate>,
    /// Tracing of its requests; `None`: trace context passes through untouched.
    pub tracing: Option<super::observability::ListenerTracing>,
}

impl Listener {
    /// The `http.<prefix>.` this listener's request stats go under.
    pub fn http_stats_prefix(&self) -> &str {
        self.http_stat_prefix.as_deref().unwrap_or(&self.name)
    }

    /// The `listener.<prefix>.` this listener's connection stats go under.
    pub fn listener_stats_prefix(&self) -> &str {
        self.listener_stat_prefix.as_deref().unwrap_or(&self.name)
    }
}

/// Envoy's health-check filter on a listener (not a cluster's active health check,
/// which is [`super::balance::HealthCheck`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckFilter {
    /// Pass matching requests on to their route (answering 503 only while failing).
    pub pass_through: bool,
    /// What makes a request a health check: all must hold (`:path` and `:method`
    /// included); none matches every request, as in Envoy.
    pub headers: Vec<HeaderMatch>,
}

/// A group of routes for some authorities (Envoy's `VirtualHost`).
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    /// Unique in its listener.
    pub name: String,
    /// Lower case: exact names (`host` or `host:port`), `*.suffix` / `*suffix`,
    /// `prefix.*` / `prefix*`, or `*`; unique in the listener.
    pub domains: Vec<String>,
    /// First match wins, in file order.
    pub routes: Vec<Route>,
    /// Header edits of its routes, after the listener's and before each route's.
    pub headers: HeaderMutations,
    /// CORS policy of its routes without their own (replaces the listener's).
    pub cors: Option<CorsPolicy>,
    /// Virtual-cluster stats.
    pub observe: super::observability::VhostObservability,
}

/// Path normalisation policy of one listener (see `router::normalize`). Dot segments are
/// always removed and unreserved escapes always decoded; these are the choices that can
/// change what a backend sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathNormalization {
    /// Merge runs of `/` into one. Off by default: some backends give `//` meaning.
    pub merge_slashes: bool,
    pub escaped_slashes: EscapedSlashes,
}

/// What to do with `%2F` / `%5C` (an escaped `/` or `\`) in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// Leave them escaped: they are data, not separators, for routing and upstream.
    #[default]
    Keep,
    /// Answer 400.
    Reject,
    /// Turn both into `/` before dot segments are removed.
    Unescape,
}

impl Listener {
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// nginx's `client_body_timeout` and `send_timeout`; Envoy's default is 5 minutes.
    /// Shorter, because a stalled client holds a connection, its buffers and an upstream
    /// connection for all that time.
    pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
}

/// HTTP/1.1 parser limits for one listener, all in bytes except `max_headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http1Settings {
    pub max_request_line: usize,
    /// The whole head: request line plus header fields.
    pub max_request_head: usize,
    /// Number of header fields.
    pub max_headers: usize,
    pub max_chunk_extension: usize,
    pub max_trailer_section: usize,
    /// Request fields whose names hold an underscore: kept, dropped or refused.
    pub underscores: crate::http1::Underscores,
}

impl Http1Settings {
    /// Upper bound for `max_headers`: what the codec can hold (its header table is an
    /// array on the stack), far above any real client.
    pub const MAX_HEADERS_LIMIT: usize = crate::http1::HARD_MAX_HEADERS;
}

impl Default for Http1Settings {
    fn default() -> Self {
        Http1Settings {
            max_request_line: 8 * 1024,
            max_request_head: 60 * 1024,
            max_headers: 100,
            max_chunk_extension: 16 * 1024,
            max_trailer_section: 16 * 1024,
            underscores: crate::http1::Underscores::Allow,
        }
    }
}

/// One routing rule: which requests, and what to do with them.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Optional (Envoy's `Route.name`), for `%ROUTE_NAME%`.
    pub name: Option<String>,
    pub matcher: RouteMatch,
    pub action: RouteAction,
    /// Upstream request timeout; only used by `RouteAction::Cluster`.
    pub timeout: Duration,
    /// Host, header and query conditions; all must hold (none by default).
    pub conditions: RouteConditions,
    /// Header edits of this route (after the listener's on requests, before them on
    /// responses).
    pub headers: HeaderMutations,
    /// Largest request body; replaces the listener's `max_request_body` for this route.
    pub max_request_body: Option<u64>,
    /// What the upstream is sent instead of the request's path and Host (cluster routes).
    pub rewrite: Rewrite,
    /// CORS policy; replaces the listener's for this route.
    pub cors: Option<CorsPolicy>,
    /// Upgrade protocols this route tunnels (lower case); replaces the listener's.
    pub upgrades: Option<Vec<String>>,
    /// Replaces the listener's `stream_idle_timeout` for this route (Envoy's route
    /// `idle_timeout`).
    pub idle_timeout: Option<Duration>,
    /// What this route requires, replacing the listener's rules.
    pub auth: Option<super::auth::RouteAuth>,
    /// This route's access policy, replacing the listener's.
    pub authorization: Option<super::authz::RouteAuthz>,
    /// The rate limits of this route's requests, resolved by the decoders (listener-wide
    /// limits and Envoy's filter-level bucket included).
    pub rate_limit: Option<super::ratelimit::RateLimitPolicy>,
    /// How a request is hashed for its cluster's ring hash or Maglev balancer, resolved
    /// by the decoders: the route's own rules, else (native) its cluster's `hash_on`.
    /// Empty: no hash (a random one is used, as in Envoy).
    pub hash_policy: Vec<super::balance::HashRule>,
    /// When and how failed attempts are repeated (cluster routes); `None`: only the
    /// stale-connection retry every request gets.
    pub retry: Option<super::resilience::RetryPolicy>,
    /// Clusters that get a copy of a share of the requests (shadow traffic).
    pub mirrors: Vec<super::resilience::Mirror>,
    /// Faults injected into this route's requests (resolved by the decoders: the
    /// route's own, else the listener's).
    pub fault: Option<super::resilience::FaultPolicy>,
    /// A request (and its response) may last at most this long from its first byte
    /// (Envoy's `max_stream_duration`); `None`: no limit.
    pub max_stream_duration: Option<Duration>,
    /// Which of the cluster's circuit-breaker thresholds apply.
    pub priority: super::resilience::Priority,
    /// Tell the upstream (request) and the client (response) the attempt number in
    /// `x-envoy-attempt-count` (Envoy's `include_request_attempt_count`,
    /// `include_attempt_count_in_response`).
    pub attempt_count: AttemptCount,
    /// Tracing overrides and per-route stats.
    pub observe: super::observability::RouteObservability,
}

/// Where `x-envoy-attempt-count` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptCount {
    pub request: bool,
    pub response: bool,
}

/// A CORS policy (Envoy's `CorsPolicy`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsPolicy {
    /// Origins allowed; `*` alone allows any.
    pub allow_origins: Vec<OriginMatch>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight's answer.
    pub max_age: Option<Duration>,
    pub allow_credentials: bool,
}

/// How an `Origin` is matched (case-sensitive, as browsers send it in lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    /// The whole origin matches (anchored); compiled at load.
    Regex(String),
}

/// Target and Host changes on the way upstream (Envoy's `RouteAction` rewrite fields).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rewrite {
    pub path: Option<PathRewrite>,
    pub host: Option<HostRewrite>,
}

/// A new path from the matched one; the query is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRewrite {
    /// The part the route's matcher matched (its prefix, or the whole path for `path` and
    /// `regex` matchers) is replaced by this (`prefix_rewrite`).
    Prefix(String),
    /// Every match of `pattern` in the path is replaced by `substitution`, in which `\N`
    /// is capture group N (RE2's syntax, as Envoy's `regex_rewrite`).
    Regex {
        pattern: String,
        substitution: String,
    },
    /// The path rebuilt from the route's template variables (`/v2/{id}/{rest}`);
    /// `template` is the route's.
    Template { template: String, rewrite: String },
}

/// Where the upstream's Host comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRewrite {
    /// This value (`host_rewrite_literal`).
    Literal(String),
    /// The value of this request header, when the request has it (`host_rewrite_header`).
    Header(String),
    /// The endpoint's address (`auto_host_rewrite: true`).
    Endpoint,
}

/// An answer that sends the client elsewhere (Envoy's `RedirectAction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// `https_redirect: true` or `scheme_redirect`; the request's scheme otherwise.
    pub scheme: Option<String>,
    /// `host_redirect`; the request's authority otherwise.
    pub host: Option<String>,
    /// `port_redirect`.
    pub port: Option<u16>,
    pub path: Option<RedirectPath>,
    /// 301 (default), 302, 303, 307 or 308.
    pub status: u16,
    /// Drop the request's query (`strip_query`).
    pub strip_query: bool,
}

/// The redirect's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectPath {
    /// This path (and query, if it has one: it then replaces the request's).
    Path(String),
    /// The request's path rewritten.
    Rewrite(PathRewrite),
}

/// Header fields to add and remove on requests and responses (Envoy's
/// `request_headers_to_add`, `request_headers_to_remove`, `response_headers_to_add`,
/// `response_headers_to_remove`). Removals apply before additions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderMutations {
    pub request_add: Vec<HeaderAdd>,
    pub request_remove: Vec<String>,
    pub response_add: Vec<HeaderAdd>,
    pub response_remove: Vec<String>,
}

impl HeaderMutations {
    /// Whether nothing is edited.
    pub fn is_empty(&self) -> bool {
        self.request_add.is_empty()
            && self.request_remove.is_empty()
            && self.response_add.is_empty()
            && self.response_remove.is_empty()
    }
}

/// One field to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderAdd {
    pub name: String,
    pub value: String,
    /// Add beside fields of the same name (`true`, Envoy's default
    /// `APPEND_IF_EXISTS_OR_ADD`), or replace them (`false`, `OVERWRITE_IF_EXISTS_OR_ADD`).
    pub append: bool,
    /// Whether it applies only when a field of that name is there or is not.
    pub only_if: AddOnlyIf,
}

/// When a header addition applies, by whether a field of its name is there (received
/// and kept, or added before it): Envoy's `ADD_IF_ABSENT` and `OVERWRITE_IF_EXISTS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddOnlyIf {
    #[default]
    Always,
    /// Added only when no field of that name is there (`ADD_IF_ABSENT`).
    Absent,
    /// Replaces the fields of that name, only when there is one (`OVERWRITE_IF_EXISTS`).
    Present,
}

/// Conditions beyond the path. Empty means "any request".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteConditions {
    /// Any one must match the request's authority; empty = any host (or none).
    pub hosts: Vec<HostMatch>,
    /// Any one must be the request's method; empty = any method.
    pub methods: Vec<String>,
    /// All must hold.
    pub headers: Vec<HeaderMatch>,
    /// All must hold.
    pub query: Vec<QueryMatch>,
    /// What the client's certificate must be (Envoy's `tls_context`, and its names).
    pub client_certificate: Option<ClientCertMatch>,
}

impl RouteConditions {
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
            && self.methods.is_empty()
            && self.headers.is_empty()
            && self.query.is_empty()
            && self.client_certificate.is_none()
    }
}

/// A route condition on the client's certificate (TLS listeners with
/// `client_certificate`). A certificate is only ever presented verified: one that does
/// not verify fails the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientCertMatch {
    /// The client sent a certificate (`true`) or did not (`false`).
    pub presented: Option<bool>,
    /// The certificate verified (Envoy's `validated`; the same as `presented` here).
    pub validated: Option<bool>,
    /// It carries one of these subject alt names (URI or DNS); empty: any.
    pub subject_alt_names: Vec<super::tls::SanMatch>,
}

/// A host pattern, lower-cased, without port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// `api.example.com` (or an IP literal).
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: one or more labels before it.
    Suffix(String),
}

/// One header condition; `name` is lower-cased and a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    pub name: String,
    pub value: ValueMatch,
}

/// One query-parameter condition; `name` as it reads after percent-decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryMatch {
    pub name: String,
    pub value: ValueMatch,
}

/// How a header or query value is tested (query parameters allow `Exact` and `Present`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    Exact(String),
    Prefix(String),
    /// Anchored to the whole value; checked to compile when the config is read.
    Regex(String),
    /// `true`: present with any value; `false`: absent.
    Present(bool),
    /// An integer value in `[start, end)` (Envoy's `range_match`); a value that is not
    /// an integer does not match.
    Range(i64, i64),
    /// The inner test's result inverted for a present value (Envoy's `invert_match`);
    /// an absent one does not match.
    Inverted(Box<ValueMatch>),
    /// An absent value tested as the empty one (Envoy's
    /// `treat_missing_header_as_empty`).
    MissingAsEmpty(Box<ValueMatch>),
}

impl Route {
    /// Envoy's route timeout default.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
}

/// Request-path matcher, applied to the normalised path (without query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// The path starts with this string (which starts with `/`).
    Prefix(String),
    /// The path equals this string (which starts with `/`).
    Path(String),
    /// [`RouteMatch::Prefix`] in any ASCII case (Envoy's `case_sensitive: false`).
    PrefixAnyCase(String),
    /// [`RouteMatch::Path`] in any ASCII case.
    PathAnyCase(String),
    /// The whole path matches this pattern (`regex` crate syntax, anchored at both ends).
    Regex(String),
    /// The whole path matches this path template (Envoy's `uri_template`:
    /// `/api/{id}/**`); its variables can be used by a `template_rewrite`.
    Template(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    /// Proxy to the named cluster (guaranteed to exist in `Config::clusters`).
    Cluster(String),
    /// Proxy to one of several clusters, split by weight (canary traffic shifting;
    /// Envoy's `weighted_clusters`).
    Weighted(WeightedClusters),
    /// Answer from the proxy itself.
    DirectResponse(DirectResponse),
    /// Send the client elsewhere.
    Redirect(Redirect),
}

/// A route's clusters and their shares of its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedClusters {
    /// Each cluster (guaranteed to exist) with its weight; the weights sum to at least 1.
    pub clusters: Vec<(String, u32)>,
    /// Split by the request's hash (the route's hash rules) instead of at random, so
    /// that one user stays on one cluster at the same proportions (Envoy's
    /// `use_hash_policy`). A request the rules find nothing in is split at random.
    pub sticky: bool,
}

impl WeightedClusters {
    /// The largest weight of one cluster, and of their sum (Envoy's bound on a total).
    pub const MAX_TOTAL: u64 = 10_000_000;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponse {
    /// 200..=599.
    pub status: u16,
    pub body: bytes::Bytes,
    /// `Content-Type` header value; checked to be a valid header value.
    pub content_type: String,
}

impl DirectResponse {
    pub const DEFAULT_CONTENT_TYPE: &'static str = "text/plain";
}

/// A named group of upstream endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    /// Where its endpoints come from.
    pub endpoints: Endpoints,
    /// Time allowed to establish a connection to an endpoint (default 5s, Envoy's).
    pub connect_timeout: Duration,
    /// Per-worker connection pool settings.
    pub pool: PoolSettings,
    /// Send a PROXY protocol header (1 or 2) on every upstream connection.
    pub proxy_protocol: Option<u8>,
    /// TLS to the endpoints (`tls`, Envoy's `UpstreamTlsContext`); `None`: plaintext.
    pub tls: Option<super::tls::ClientTls>,
    /// Policy, priorities' and localities' settings, hashing.
    pub balancing: super::balance::Balancing,
    /// The active health check (Envoy's `health_checks`, at most one); `None`: none.
    pub health_check: Option<super::balance::HealthCheck>,
    /// Passive health checking; `None`: none (Envoy's default without the field).
    pub outlier_detection: Option<super::balance::OutlierDetection>,
    /// Process-wide limits per routing priority (Envoy's defaults without the field).
    pub circuit_breakers: super::resilience::CircuitBreakers,
    /// Export each endpoint's stats in `/stats` (Envoy's
    /// `track_cluster_stats.per_endpoint_stats`; native `per_endpoint_stats`).
    pub per_endpoint_stats: bool,
}

impl Cluster {
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
}

/// A cluster's endpoints: listed, or found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    /// Addresses written in the config (Envoy's `STATIC`).
    Static(Vec<Endpoint>),
    /// Host names resolved off the workers (`discovery`).
    Dns(DnsDiscovery),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: Address,
    /// Relative share of requests, 1..=1000 (default 1).
    pub weight: u32,
    /// 0 (the default) is the highest; priorities go from 0 without gaps, up to
    /// [`super::balance::MAX_PRIORITY`].
    pub priority: u32,
    pub locality: super::balance::Locality,
    /// The locality's weight (Envoy's `LocalityLbEndpoints.load_balancing_weight`), the
    /// same for every endpoint of a locality and priority; used when the cluster's
    /// balancing is `locality_weighted` (a locality without one then gets no load).
    pub locality_weight: Option<u32>,
    /// What the config says of its health (Envoy's `health_status`).
    pub health: super::balance::DeclaredHealth,
    /// Envoy's `hostname` (for `auto_host_rewrite`, health-check `Host`, logs).
    pub hostname: Option<String>,
    /// Health checks go to this port instead of the address's
    /// (`health_check_config.port_value`).
    pub health_check_port: Option<u16>,
}

impl Endpoint {
    /// An endpoint with this weight and every other setting at its default (priority 0,
    /// no locality, declared healthy).
    pub fn new(address: Address, weight: u32) -> Endpoint {
        Endpoint {
            address,
            weight,
            priority: 0,
            locality: Default::default(),
            locality_weight: None,
            health: Default::default(),
            hostname: None,
            health_check_port: None,
        }
    }
}

/// Endpoints found by resolving host names, re-resolved every `refresh_rate` (Envoy's
/// `STRICT_DNS` and `LOGICAL_DNS` cluster types).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsDiscovery {
    /// Strict: every address of every name is an endpoint. Logical: one name, and new
    /// connections go to its first address.
    pub kind: DnsKind,
    /// Time between resolutions of each name (default 5s, Envoy's `dns_refresh_rate`).
    pub refresh_rate: Duration,
    /// Which address families to use.
    pub family: LookupFamily,
    /// At least one (exactly one when logical).
    pub names: Vec<DnsName>,
    /// Envoy's `respect_dns_ttl`: a name is resolved again after the TTL of its answer
    /// instead of `refresh_rate` (a TTL of 0, a hosts-file entry and a failure use
    /// `refresh_rate`). Its names are then asked of the `resolv.conf` nameservers
    /// directly, since getaddrinfo gives no TTL. Default false.
    pub respect_dns_ttl: bool,
}

impl DnsDiscovery {
    pub const DEFAULT_REFRESH_RATE: Duration = Duration::from_secs(5);
}

/// Envoy's DNS cluster types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsKind {
    Strict,
    Logical,
}

/// Envoy's `dns_lookup_family`: which of a name's addresses become endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupFamily {
    /// IPv6 addresses if the name has any, else IPv4 (Envoy's `AUTO`, its default).
    Auto,
    /// IPv4 addresses if the name has any, else IPv6 (ringway's native default).
    V4Preferred,
    V4Only,
    V6Only,
    /// Both families.
    All,
}

/// A host name (or IP literal) and port, with the weight each of its addresses gets
/// and the settings each of its endpoints has (see [`Endpoint`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsName {
    pub host: String,
    pub port: u16,
    /// 1..=1000 (default 1).
    pub weight: u32,
    pub priority: u32,
    pub locality: super::balance::Locality,
    pub locality_weight: Option<u32>,
    pub health_check_port: Option<u16>,
}

impl DnsName {
    /// A name with this weight and every other setting at its default.
    pub fn new(host: String, port: u16, weight: u32) -> DnsName {
        DnsName {
            host,
            port,
            weight,
            priority: 0,
            locality: Default::default(),
            locality_weight: None,
            health_check_port: None,
        }
    }
}

/// A stream socket address: where a listener accepts or an endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// TCP, IPv4 or IPv6.
    Tcp(SocketAddr),
    /// A Unix stream socket path (written `unix:/path`).
    Unix(PathBuf),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl Address {
    /// The TCP address, if this is one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Address::Tcp(addr) => Some(*addr),
            Address::Unix(_) => None,
        }
    }
}

/// A worker's connection pool to each endpoint of a cluster. Every limit is per worker:
/// workers share nothing, so a process holds up to `workers x` these numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Idle keep-alive connections kept per endpoint once load has passed (default 64);
    /// during a burst more stay idle, and those no request needed for a second are closed
    /// (`upstream::pool`).
    pub max_idle_per_endpoint: usize,
    /// An idle connection is closed after this long (default 4s: below the 5s keep-alive
    /// timeouts of Node.js and Apache, so ringway closes first and rarely reuses a
    /// connection the origin is closing).
    pub idle_timeout: Duration,
    /// Connections open at once per endpoint, busy or idle (default 1024).
    pub max_connections_per_endpoint: usize,
    /// Requests waiting for a connection when an endpoint is at its limit (default
    /// 1024); one more is answered 503.
    pub max_pending: usize,
    /// Requests a connection serves before it is closed (Envoy's cluster
    /// `max_requests_per_connection`, nginx's upstream `keepalive_requests`); `None`:
    /// no limit.
    pub max_requests_per_connection: Option<u64>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_idle_per_endpoint: 64,
            idle_timeout: Duration::from_secs(4),
            max_connections_per_endpoint: 1024,
            max_pending: 1024,
            max_requests_per_connection: None,
        }
    }
}

/// Accepting the PROXY protocol (versions 1 and 2) on a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// Every connection must start with a header (else: a connection may, or may not).
    pub required: bool,
    /// Peers allowed to send one; from others, a header is refused.
    pub trusted_sources: Vec<Cidr>,
}

/// A listener's forwarding policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    /// Which peers may tell ringway the client's address and request id.
    pub trusted_proxies: TrustedProxies,
    /// Give every request an `x-request-id` (kept from trusted peers).
    pub request_id: bool,
    /// Add `via: 1.1 <this>` to forwarded requests and responses.
    pub via: Option<String>,
    /// Set `server: <this>` on responses.
    pub server_header: Option<String>,
    /// Only on responses without a `server` field of their own (Envoy's
    /// `APPEND_IF_ABSENT`); else the upstream's is replaced (`OVERWRITE`).
    pub server_header_if_absent: bool,
    /// Remove what names the upstream's software from responses (`server`,
    /// `x-powered-by`, `x-aspnet-version`, `x-aspnetmvc-version`).
    pub hide_upstream_identity: bool,
    /// Largest request body accepted; 413 above it. `None`: unlimited.
    pub max_request_body: Option<u64>,
    /// Who answers `Expect: 100-continue`.
    pub expect_continue: ExpectContinue,
    /// The most bytes a connection buffers (a head, or pipelined requests) before it
    /// stops reading (default 1MiB).
    pub buffer_limit: usize,
    /// Add the router's `x-envoy-*` response headers (`x-envoy-upstream-service-time`):
    /// listeners loaded from Envoy configs, unless the router's
    /// `suppress_envoy_headers`; never for native ones.
    pub envoy_headers: bool,
    /// Envoy's HTTP connection manager header processing instead of ringway's trust
    /// policy (listeners loaded from Envoy configs; `forwarding_envoy`).
    pub envoy: Option<EnvoyForwarding>,
}

/// The HTTP connection manager settings that decide the client address and the
/// forwarding headers (Envoy's `use_remote_address`, `xff_num_trusted_hops` (in
/// `trusted_proxies.hops`), `skip_xff_append`, `internal_address_config`,
/// `preserve_external_request_id`, `via`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvoyForwarding {
    pub use_remote_address: bool,
    pub skip_xff_append: bool,
    /// Peers whose requests are internal (Envoy >= 1.36: none unless listed).
    pub internal: Vec<Cidr>,
    pub preserve_external_request_id: bool,
    /// Appended to `via` on requests and responses, as written.
    pub via: Option<String>,
    /// Return the request's `x-request-id` in every response (Envoy's
    /// `always_set_request_id_in_response`; a request whose trace an internal peer
    /// forced with `x-envoy-force-trace` gets it anyway).
    pub request_id_in_response: bool,
}

impl ProxySettings {
    pub const DEFAULT_BUFFER_LIMIT: usize = 1024 * 1024;
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            trusted_proxies: TrustedProxies::default(),
            request_id: true,
            via: None,
            server_header: None,
            server_header_if_absent: false,
            hide_upstream_identity: false,
            max_request_body: None,
            expect_continue: ExpectContinue::Answer,
            buffer_limit: Self::DEFAULT_BUFFER_LIMIT,
            envoy_headers: false,
            envoy: None,
        }
    }
}

/// Who may set `x-forwarded-for`, `x-forwarded-proto` and `x-request-id`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustedProxies {
    /// Trust this many proxies in front of ringway: the client is the address this many
    /// entries from the right of `x-forwarded-for` (Envoy's `xff_num_trusted_hops`).
    pub hops: u32,
    /// Trust peers in these networks: walk `x-forwarded-for` from the right past trusted
    /// addresses; the first untrusted one is the client.
    pub cidrs: Vec<Cidr>,
}

/// An IP network, `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: std::net::IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses match IPv4 networks).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(ip, V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (V4(net), V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix_len),
            (V6(net), V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix_len),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    if a.get(..whole) != b.get(..whole) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(whole), b.get(whole)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// How `Expect: 100-continue` is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectContinue {
    /// ringway sends `100 Continue` itself once the request is routed, and removes the
    /// Expect header upstream (the default: the client waits one proxy hop, not two).
    Answer,
    /// Forward the Expect header and relay the upstream's `100 Continue`.
    Forward,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_contain_their_addresses() {
        let net = Cidr {
            network: "10.1.0.0".parse().unwrap(),
            prefix_len: 12,
        };
        assert!(net.contains("10.15.255.1".parse().unwrap()));
        assert!(!net.contains("10.16.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        let v6 = Cidr {
            network: "fd00::".parse().unwrap(),
            prefix_len: 8,
        };
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let all = Cidr {
            network: "0.0.0.0".parse().unwrap(),
            prefix_len: 0,
        };
        assert!(all.contains("192.0.2.1".parse().unwrap()));
    }
}

/// Where and how the access log is written (one line per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub path: AccessLogPath,
    pub format: AccessLogFormat,
    /// Bytes a worker collects before handing a batch to the writer thread.
    pub buffer: usize,
    /// A worker hands off a partial batch at least this often.
    pub flush_interval: Duration,
}

impl AccessLogConfig {
    pub const DEFAULT_BUFFER: usize = 64 * 1024;
    /// Upper bound for `buffer`: each worker may have several batches in flight, so a
    /// larger value is memory spent on lines that are only late.
    pub const MAX_BUFFER: usize = 16 * 1024 * 1024;
    pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
}

/// The access log's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogPath {
    /// `-`: the process's standard output.
    Stdout,
    /// A file, opened for appending (created if missing) and reopened on SIGUSR1.
    File(PathBuf),
}

/// The access log's line format (see `access_log::format` and `access_log::envoy`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    /// Envoy-like text line.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
    /// An Envoy format string of `%COMMAND%` operators (`config::log_format`), as Envoy's
    /// `text_format`: its own newline, if it has one, ends the line.
    EnvoyText {
        format: String,
        /// Envoy's `omit_empty_values`: an empty value prints nothing instead of `-`.
        omit_empty_values: bool,
    },
    /// Envoy's `json_format`: one object per line, each value a format string; a value
    /// that is one operator keeps its type (a number, or `null` when empty).
    EnvoyJson {
        fields: Vec<(String, String)>,
        omit_empty_values: bool,
    },
}
