//! Envoy's v3 API as descriptors, and the extensions ringway implements.
//!
//! Design: `schema.bin` is a `FileDescriptorSet` compiled once from the `.proto` files
//! that the envoy-types crate ships (`tools/envoy-schema`, which also says how to
//! regenerate it), trimmed to the bootstrap and the extensions below, without comments.
//! It is decoded on the first Envoy-format load only; a native config never touches it.
//! Extensions are chosen by the `@type` of their `typed_config` (Envoy's rule: the
//! `name` is only a label), so the registry is keyed by message name.

use std::sync::OnceLock;

use prost_reflect::DescriptorPool;

static SCHEMA: &[u8] = include_bytes!("schema.bin");

/// The descriptor pool, decoded on first use. `None` only if the committed
/// `schema.bin` is damaged (a unit test decodes it), which a load reports as an error.
pub(crate) fn pool() -> Option<&'static DescriptorPool> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    POOL.get_or_init(|| decode().ok()).as_ref()
}

/// Decodes the descriptor set (once per process through [`pool`]).
pub(crate) fn decode() -> Result<DescriptorPool, prost_reflect::DescriptorError> {
    DescriptorPool::decode(SCHEMA)
}

pub(crate) const BOOTSTRAP: &str = "envoy.config.bootstrap.v3.Bootstrap";
pub(crate) const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
pub(crate) const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";
pub(crate) const FILE_LOG: &str = "envoy.extensions.access_loggers.file.v3.FileAccessLog";
pub(crate) const STDOUT_LOG: &str = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
pub(crate) const STDERR_LOG: &str = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog";
pub(crate) const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
pub(crate) const PROXY_PROTOCOL: &str =
    "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol";
pub(crate) const CORS: &str = "envoy.extensions.filters.http.cors.v3.Cors";
pub(crate) const CORS_POLICY: &str = "envoy.extensions.filters.http.cors.v3.CorsPolicy";
pub(crate) const HEALTH_CHECK: &str = "envoy.extensions.filters.http.health_check.v3.HealthCheck";
pub(crate) const JWT_AUTHN: &str = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";
pub(crate) const JWT_PER_ROUTE: &str = "envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig";
pub(crate) const FAULT: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";
pub(crate) const RBAC: &str = "envoy.extensions.filters.http.rbac.v3.RBAC";
pub(crate) const RBAC_PER_ROUTE: &str = "envoy.extensions.filters.http.rbac.v3.RBACPerRoute";
pub(crate) const LOCAL_RATELIMIT: &str =
    "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";
pub(crate) const NETWORK_LOCAL_RATELIMIT: &str =
    "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit";
pub(crate) const DOWNSTREAM_TLS: &str =
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
pub(crate) const UPSTREAM_TLS: &str =
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
pub(crate) const RAW_BUFFER: &str = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";
pub(crate) const TLS_INSPECTOR: &str =
    "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";
pub(crate) const PREVIOUS_HOSTS: &str =
    "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate";
pub(crate) const ZIPKIN: &str = "envoy.config.trace.v3.ZipkinConfig";
pub(crate) const OPENTELEMETRY: &str = "envoy.config.trace.v3.OpenTelemetryConfig";
pub(crate) const UUID_REQUEST_ID: &str = "envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig";

/// Every `@type` the loader accepts somewhere, with what it is.
pub(crate) const EXTENSIONS: &[(&str, &str)] = &[
    (
        HCM,
        "network filter envoy.filters.network.http_connection_manager",
    ),
    (ROUTER, "HTTP filter envoy.filters.http.router"),
    (FILE_LOG, "access logger envoy.access_loggers.file"),
    (STDOUT_LOG, "access logger envoy.access_loggers.stdout"),
    (STDERR_LOG, "access logger envoy.access_loggers.stderr"),
    (
        HTTP_OPTIONS,
        "cluster protocol options envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    ),
    (
        PROXY_PROTOCOL,
        "listener filter envoy.filters.listener.proxy_protocol",
    ),
    (CORS, "HTTP filter envoy.filters.http.cors"),
    (CORS_POLICY, "per-route config of envoy.filters.http.cors"),
    (HEALTH_CHECK, "HTTP filter envoy.filters.http.health_check"),
    (JWT_AUTHN, "HTTP filter envoy.filters.http.jwt_authn"),
    (
        JWT_PER_ROUTE,
        "per-route config of envoy.filters.http.jwt_authn",
    ),
    (RBAC, "HTTP filter envoy.filters.http.rbac"),
    (
        FAULT,
        "HTTP filter envoy.filters.http.fault (and its per-route config)",
    ),
    (
        RBAC_PER_ROUTE,
        "per-route config of envoy.filters.http.rbac",
    ),
    (
        LOCAL_RATELIMIT,
        "HTTP filter envoy.filters.http.local_ratelimit (and its per-route config)",
    ),
    (
        NETWORK_LOCAL_RATELIMIT,
        "network filter envoy.filters.network.local_ratelimit",
    ),
    (
        DOWNSTREAM_TLS,
        "transport socket envoy.transport_sockets.tls (filter chains)",
    ),
    (
        UPSTREAM_TLS,
        "transport socket envoy.transport_sockets.tls (clusters)",
    ),
    (
        RAW_BUFFER,
        "transport socket envoy.transport_sockets.raw_buffer",
    ),
    (
        TLS_INSPECTOR,
        "listener filter envoy.filters.listener.tls_inspector",
    ),
    (
        PREVIOUS_HOSTS,
        "retry host predicate envoy.retry_host_predicates.previous_hosts",
    ),
    (ZIPKIN, "tracer envoy.tracers.zipkin"),
    (OPENTELEMETRY, "tracer envoy.tracers.opentelemetry"),
    (
        UUID_REQUEST_ID,
        "request ID extension envoy.request_id.uuid",
    ),
];

/// `udpa.type.v1.TypedStruct` and `xds.type.v3.TypedStruct`: an extension written as a
/// `type_url` and a free-form `value` (Istio's bootstrap uses them).
pub(crate) const TYPED_STRUCTS: &[&str] = &["udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"];

pub(crate) fn is_supported_extension(message: &str) -> bool {
    EXTENSIONS.iter().any(|(name, _)| *name == message)
}

/// The message name of a type URL (`type.googleapis.com/envoy.x.v3.Y` -> `envoy.x.v3.Y`).
pub(crate) fn message_name(type_url: &str) -> &str {
    type_url.rsplit_once('/').map_or(type_url, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_decodes_and_has_every_supported_extension() {
        let pool = pool().expect("schema.bin decodes");
        assert!(pool.get_message_by_name(BOOTSTRAP).is_some());
        for (name, _) in EXTENSIONS {
            assert!(pool.get_message_by_name(name).is_some(), "{name}");
        }
        assert_eq!(message_name("type.googleapis.com/a.B"), "a.B");
        assert_eq!(message_name("a.B"), "a.B");
    }
}
