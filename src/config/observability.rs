//! Observability settings: where spans go and which requests are traced, how trace
//! context travels between hops, and the stats scopes a config opts into (per route,
//! per virtual host and virtual cluster, per endpoint).
//!
//! One model for both formats: the native `tracing:` sections and route/vhost `stats`
//! keys (`decode_observability.rs`), and Envoy's HTTP connection manager `tracing`
//! (providers `envoy.tracers.zipkin` and `envoy.tracers.opentelemetry`), route
//! `decorator`, `tracing` and `stat_prefix`, virtual clusters and a cluster's
//! `track_cluster_stats.per_endpoint_stats` (`envoy/tracing.rs`). docs/observability.md
//! is the reference.

use std::time::Duration;

use super::model::HeaderMatch;
use super::resilience::Fraction;

/// A span exporter: one per distinct provider configuration in the config
/// (`Config::tracers`); listeners name theirs by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracer {
    /// The wire format spans are exported in.
    pub provider: TraceProvider,
    /// Where the export requests go.
    pub collector: Collector,
    /// `service.name` of the spans (native `service_name`, default `ringway`; from
    /// Envoy configs, as Envoy does: the OpenTelemetry provider's `service_name`, else
    /// `unknown_service:envoy`; Zipkin's, the local service cluster, `--service-cluster`
    /// else `node.cluster`, else `envoy`).
    pub service_name: String,
    /// Spans exported per second by the whole process, shared out per worker; `None`:
    /// unlimited. Spans over it are dropped and counted.
    pub max_spans_per_second: Option<u32>,
    /// The most spans in one export request (default 512).
    pub batch_spans: usize,
    /// How long a worker keeps a partial batch before handing it over (default 1 s).
    pub flush_interval: Duration,
    /// Batches waiting for the exporter, process-wide (default 64); a full queue drops
    /// the batch and counts its spans.
    pub queue_batches: usize,
}

impl Tracer {
    pub const DEFAULT_SERVICE_NAME: &'static str = "ringway";
    pub const DEFAULT_BATCH_SPANS: usize = 512;
    pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
    pub const DEFAULT_QUEUE_BATCHES: usize = 64;
}

/// The export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceProvider {
    /// OTLP over HTTP, protobuf (`ExportTraceServiceRequest` POSTed as
    /// `application/x-protobuf`). OTLP over gRPC is refused by name until HTTP/2.
    Otlp,
    /// Zipkin v2 JSON (`POST /api/v2/spans`).
    Zipkin {
        /// 128-bit trace ids in new traces (Envoy's `trace_id_128bit`, default false).
        trace_id_128bit: bool,
        /// A server span reuses the incoming span id, Zipkin's shared-span model
        /// (Envoy's `shared_span_context`, default true).
        shared_span_context: bool,
    },
}

/// Where a tracer POSTs its spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collector {
    /// The cluster whose endpoints receive the requests (guaranteed to exist); its TLS
    /// settings apply.
    pub cluster: String,
    /// The request path (`/v1/traces` for OTLP, `/api/v2/spans` for Zipkin by default).
    pub path: String,
    /// `Host` of the requests; `None`: the cluster's name (Envoy's default).
    pub authority: Option<String>,
    /// Extra request headers (collector tokens), in order.
    pub headers: Vec<(String, String)>,
    /// One export request, from connect to the last response byte (default 5 s).
    pub timeout: Duration,
}

impl Collector {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const OTLP_PATH: &'static str = "/v1/traces";
    pub const ZIPKIN_PATH: &'static str = "/api/v2/spans";
}

/// A listener's tracing (native listener `tracing:`, Envoy's HCM `tracing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTracing {
    /// Index into `Config::tracers`.
    pub tracer: usize,
    /// Which requests are traced when the parent does not say.
    pub sampling: Sampling,
    /// The context formats written to upstream requests (besides the one that came in).
    pub propagation: Propagation,
    /// The context formats read from requests, and which wins.
    pub reads: Reads,
    /// Envoy's decision: from a hash of `x-request-id`, the reason packed into the
    /// UUID (`request_id_extension`, `use_request_id_for_trace_sampling`), so every hop
    /// of a request agrees. Off (native): a draw from the worker's generator.
    pub request_id_sampling: bool,
    /// Write the decision into the UUID's version nibble (Envoy's `pack_trace_reason`).
    pub pack_trace_reason: bool,
    /// A client span per upstream attempt, its id sent upstream (native: always;
    /// Envoy's `spawn_upstream_span`, default false: the request's one span is the
    /// upstream's parent).
    pub upstream_spans: bool,
    /// The request's own span: `Server` (ingress; native, Envoy's INBOUND or
    /// unspecified `traffic_direction`) or `Client` (Envoy's OUTBOUND listeners).
    pub kind: SpanKind,
    /// Tags added to the request's span.
    pub custom_tags: Vec<CustomTag>,
    /// `url.path` longer than this is cut (Envoy's `max_path_tag_length`, default 256).
    pub max_path_tag_length: usize,
}

impl ListenerTracing {
    pub const DEFAULT_MAX_PATH_TAG_LENGTH: usize = 256;
}

/// The request's span kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpanKind {
    #[default]
    Server,
    Client,
}

/// Envoy's three sampling shares (each default 100 %); native `sampling: 1%` sets
/// `random`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// Requests traced with no parent decision and nothing forcing it.
    pub random: Fraction,
    /// Requests with `x-client-trace-id` that are traced because of it.
    pub client: Fraction,
    /// A cap on all of the above (not on a parent's decision).
    pub overall: Fraction,
}

impl Sampling {
    pub const ALL: Sampling = Sampling {
        random: Fraction::ALL,
        client: Fraction::ALL,
        overall: Fraction::ALL,
    };
}

/// Trace-context formats. Every format is read; a request's own format is written back
/// with the new span id, and these are written as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Propagation {
    /// W3C `traceparent` (and `tracestate`, passed on).
    pub w3c: bool,
    /// B3 multi-header: `x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`,
    /// `x-b3-sampled`.
    pub b3: bool,
    /// B3 single header `b3`.
    pub b3_single: bool,
}

/// Which incoming formats a listener reads, and which wins when both came. The default
/// is a native listener's: every format, W3C first. Envoy's tracers read their own:
/// Zipkin B3 (W3C only as a fallback when no B3 came, with `USE_B3_WITH_W3C_PROPAGATION`),
/// OpenTelemetry W3C alone; fields of a format not read are neither parsed nor removed
/// (they go upstream as they came).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reads {
    pub ignore_w3c: bool,
    pub ignore_b3: bool,
    /// B3 ids win over a `traceparent` (Envoy's Zipkin tracer).
    pub b3_first: bool,
}

impl Reads {
    /// Every format, W3C first (native listeners).
    pub const ALL: Reads = Reads {
        ignore_w3c: false,
        ignore_b3: false,
        b3_first: false,
    };
}

/// A tag added to a span (Envoy's `custom_tags`; `metadata` tags are refused by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomTag {
    pub tag: String,
    pub value: TagValue,
}

/// Where a custom tag's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagValue {
    /// A fixed value (Envoy's `literal`, and `environment`, read at load).
    Literal(String),
    /// A request header's value, else `default` (no tag when `None`).
    RequestHeader {
        name: String,
        default: Option<String>,
    },
}

/// A route's tracing (native route `tracing:`; Envoy's route `decorator` and `tracing`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteTracing {
    /// The span's name (Envoy's `decorator.operation`); `None`: the listener's default
    /// (Envoy: `<authority><path>`… as Envoy names it; native: `<method> <route>`).
    pub operation: Option<String>,
    /// Send `x-envoy-decorator-operation` upstream (Envoy's `decorator.propagate`,
    /// default true; Envoy listeners only).
    pub propagate_operation: bool,
    /// Replaces the listener's shares for this route's requests.
    pub sampling: Option<Sampling>,
    /// Tags added after the listener's.
    pub custom_tags: Vec<CustomTag>,
}

/// What a route adds to observability.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteObservability {
    /// `None`: the listener's tracing as it is.
    pub tracing: Option<RouteTracing>,
    /// Per-route stats under `vhost.<vhost>.route.<prefix>.` (Envoy's route
    /// `stat_prefix`; native `stats: true` uses the route's name, `stats: <prefix>`).
    pub stat_prefix: Option<String>,
}

/// What a virtual host adds to observability (Envoy's `virtual_clusters`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VhostObservability {
    /// Request classes counted under `vhost.<vhost>.vcluster.<name>.`; a request that
    /// matches none is counted under `vcluster.other.` when the list is not empty
    /// (native `stats: true` on a virtual host: just `other`, i.e. every request).
    pub virtual_clusters: Vec<VirtualCluster>,
    /// Count the requests no virtual cluster matched (`vcluster.other.`): set whenever
    /// there are virtual clusters, or by native `stats: true`.
    pub other: bool,
}

/// One request class of a virtual host: the first whose headers all match counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualCluster {
    pub name: String,
    /// `:method` and `:path` are matched as pseudo-headers (Envoy's).
    pub headers: Vec<HeaderMatch>,
}
