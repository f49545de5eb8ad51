//! The scopes ringway defines, with Envoy's stat names where Envoy has one.
//!
//! Index constants are positions in the definition arrays; the request path uses them to
//! reach a cell without touching a name.

use super::{Kind, StatDef};

const fn counter(name: &'static str) -> StatDef {
    StatDef {
        name,
        kind: Kind::Counter,
        per_worker: false,
        any: false,
    }
}

const fn per_worker(def: StatDef) -> StatDef {
    StatDef {
        per_worker: true,
        ..def
    }
}

const fn gauge(name: &'static str) -> StatDef {
    StatDef {
        name,
        kind: Kind::Gauge,
        per_worker: false,
        any: false,
    }
}

/// A 0/1 gauge each worker sets in its own cell, shown as 1 when any cell is.
const fn flag(name: &'static str) -> StatDef {
    StatDef {
        any: true,
        ..gauge(name)
    }
}

/// How far a status's class counter is from the `1xx` one (`1xx` … `5xx`; a status
/// outside 100..=599 is charged to the nearest class).
#[inline]
const fn class_offset(status: u16) -> usize {
    let class = status / 100;
    (if class < 1 {
        1
    } else if class > 5 {
        5
    } else {
        class
    }) as usize
        - 1
}

/// `listener.<name>.`: connections accepted by one listener (Envoy's listener stats).
pub mod listener {
    use super::*;

    /// Connections accepted.
    pub const DOWNSTREAM_CX_TOTAL: usize = 0;
    /// Connections open now.
    pub const DOWNSTREAM_CX_ACTIVE: usize = 1;
    /// Connections closed.
    pub const DOWNSTREAM_CX_DESTROY: usize = 2;
    /// Connections closed at once because the listener's `connection_limit` was reached.
    pub const DOWNSTREAM_CX_OVERFLOW: usize = 3;
    /// Connections closed at once because the process's `max_connections` was reached.
    pub const DOWNSTREAM_GLOBAL_CX_OVERFLOW: usize = 4;
    /// Connections closed for a missing, malformed, late or untrusted PROXY header.
    pub const DOWNSTREAM_CX_PROXY_PROTO_ERROR: usize = 5;
    /// TLS handshakes completed.
    pub const SSL_HANDSHAKE: usize = 6;
    /// Of those, resumed sessions.
    pub const SSL_SESSION_REUSED: usize = 7;
    /// TLS connections that failed other than for the client's certificate (no common
    /// version or cipher, a malformed message, a timeout, a closed connection).
    pub const SSL_CONNECTION_ERROR: usize = 8;
    /// TLS connections without a client certificate (Envoy counts every one).
    pub const SSL_NO_CERTIFICATE: usize = 9;
    /// Handshakes refused: no client certificate where one is required.
    pub const SSL_FAIL_VERIFY_NO_CERT: usize = 10;
    /// Handshakes refused: the client's certificate did not verify.
    pub const SSL_FAIL_VERIFY_ERROR: usize = 11;
    /// Handshakes refused: the client's certificate has none of the accepted names.
    pub const SSL_FAIL_VERIFY_SAN: usize = 12;
    /// Handshakes by version: `SSL_VERSIONS_TLS12`, then TLS 1.3.
    pub const SSL_VERSIONS_TLS12: usize = 13;
    pub const SSL_VERSIONS_TLS13: usize = 14;
    /// Connections closed at once because the worker had `max_handshakes` in progress
    /// (ringway's own).
    pub const SSL_HANDSHAKE_OVERFLOW: usize = 15;
    /// Handshakes that did not finish within `handshake_timeout` (ringway's own; also
    /// counted in `ssl.connection_error`).
    pub const SSL_HANDSHAKE_TIMEOUT: usize = 16;
    /// The same timeouts by Envoy's name (its `transport_socket_connect_timeout`).
    pub const DOWNSTREAM_CX_TRANSPORT_SOCKET_CONNECT_TIMEOUT: usize = 17;
    /// TLS connections refused because they named no server the listener serves, on a
    /// listener that serves its names only (Envoy's filter chains that all have
    /// `server_names`: no chain matched).
    pub const NO_FILTER_CHAIN_MATCH: usize = 18;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 19] = [
        per_worker(counter("downstream_cx_total")),
        per_worker(gauge("downstream_cx_active")),
        counter("downstream_cx_destroy"),
        counter("downstream_cx_overflow"),
        counter("downstream_global_cx_overflow"),
        counter("downstream_cx_proxy_proto_error"),
        counter("ssl.handshake"),
        counter("ssl.session_reused"),
        counter("ssl.connection_error"),
        counter("ssl.no_certificate"),
        counter("ssl.fail_verify_no_cert"),
        counter("ssl.fail_verify_error"),
        counter("ssl.fail_verify_san"),
        counter("ssl.versions.TLSv1.2"),
        counter("ssl.versions.TLSv1.3"),
        counter("ssl.handshake_overflow"),
        counter("ssl.handshake_timeout"),
        counter("downstream_cx_transport_socket_connect_timeout"),
        counter("no_filter_chain_match"),
    ];
}

/// `http.<name>.`: HTTP requests on one listener (Envoy's HTTP connection manager stats).
pub mod http {
    use super::*;

    /// Requests whose head was parsed.
    pub const DOWNSTREAM_RQ_TOTAL: usize = 0;
    /// Responses by status class: index `DOWNSTREAM_RQ_1XX + class - 1`.
    pub const DOWNSTREAM_RQ_1XX: usize = 1;
    /// 2xx responses.
    pub const DOWNSTREAM_RQ_2XX: usize = 2;
    /// 3xx responses.
    pub const DOWNSTREAM_RQ_3XX: usize = 3;
    /// 4xx responses.
    pub const DOWNSTREAM_RQ_4XX: usize = 4;
    /// 5xx responses.
    pub const DOWNSTREAM_RQ_5XX: usize = 5;
    /// Connections closed because the client sent bytes that are not valid HTTP/1.1.
    pub const DOWNSTREAM_CX_PROTOCOL_ERROR: usize = 6;
    /// Bytes received from clients.
    pub const DOWNSTREAM_CX_RX_BYTES_TOTAL: usize = 7;
    /// Bytes sent to clients.
    pub const DOWNSTREAM_CX_TX_BYTES_TOTAL: usize = 8;
    /// Requests answered by a route's direct_response.
    pub const RQ_DIRECT_RESPONSE: usize = 9;
    /// Requests that matched no route.
    pub const RQ_NO_ROUTE: usize = 10;
    /// Connections closed because the head did not arrive within header_read_timeout.
    pub const DOWNSTREAM_RQ_HEADER_TIMEOUT: usize = 11;
    /// Keep-alive connections closed after idle_timeout.
    pub const DOWNSTREAM_CX_IDLE_TIMEOUT: usize = 12;
    /// Requests whose body did not arrive within request_timeout.
    pub const DOWNSTREAM_RQ_TIMEOUT: usize = 13;
    /// Requests ended by stream_idle_timeout.
    pub const DOWNSTREAM_RQ_IDLE_TIMEOUT: usize = 14;
    /// Requests answered by a route's redirect.
    pub const RQ_REDIRECT: usize = 15;
    /// Connections switched to another protocol (WebSocket) and tunnelled.
    pub const DOWNSTREAM_CX_UPGRADES_TOTAL: usize = 16;
    /// Tunnels open now.
    pub const DOWNSTREAM_CX_UPGRADES_ACTIVE: usize = 17;
    /// Upgrade requests on routes that do not allow them (answered 403).
    pub const DOWNSTREAM_RQ_WS_ON_NON_WS_ROUTE: usize = 18;
    /// Requests that got a response (from upstream or ringway), not those cut short.
    pub const DOWNSTREAM_RQ_COMPLETED: usize = 19;
    /// Connections this connection manager served (admitted ones).
    pub const DOWNSTREAM_CX_TOTAL: usize = 20;
    /// Connections open now.
    pub const DOWNSTREAM_CX_ACTIVE: usize = 21;
    /// HTTP/1 connections served (all of them, until HTTP/2 exists).
    pub const DOWNSTREAM_CX_HTTP1_TOTAL: usize = 22;
    /// HTTP/1 connections open now.
    pub const DOWNSTREAM_CX_HTTP1_ACTIVE: usize = 23;
    /// Connections closed.
    pub const DOWNSTREAM_CX_DESTROY: usize = 24;
    /// HTTP/1 requests.
    pub const DOWNSTREAM_RQ_HTTP1_TOTAL: usize = 25;
    /// Requests in progress now.
    pub const DOWNSTREAM_RQ_ACTIVE: usize = 26;
    /// Requests the router sent towards a cluster (Envoy's router `rq_total`).
    pub const RQ_TOTAL: usize = 27;
    /// Requests ended by their route's `max_stream_duration`.
    pub const DOWNSTREAM_RQ_MAX_DURATION_REACHED: usize = 28;
    /// Requests the fault filter delayed (Envoy's `fault.delays_injected`).
    pub const FAULT_DELAYS_INJECTED: usize = 29;
    /// Requests the fault filter aborted.
    pub const FAULT_ABORTS_INJECTED: usize = 30;
    /// Responses the fault filter sent at a limited rate.
    pub const FAULT_RESPONSE_RL_INJECTED: usize = 31;
    /// Faults not injected because `max_active_faults` were active.
    pub const FAULT_FAULTS_OVERFLOW: usize = 32;
    /// Requests with a fault in progress now.
    pub const FAULT_ACTIVE_FAULTS: usize = 33;
    /// Tracing decisions on listeners that decide as Envoy does (Envoy's
    /// `tracing.*` connection-manager stats): sampled at random…
    pub const TRACING_RANDOM_SAMPLING: usize = 34;
    /// … forced by a trusted `x-envoy-force-trace`…
    pub const TRACING_SERVICE_FORCED: usize = 35;
    /// … forced by `x-client-trace-id`…
    pub const TRACING_CLIENT_ENABLED: usize = 36;
    /// … or not traced.
    pub const TRACING_NOT_TRACEABLE: usize = 37;
    /// Health-check requests (never traced; Envoy's, always 0 here: the health-check
    /// filter answers them before tracing).
    pub const TRACING_HEALTH_CHECK: usize = 38;
    /// TLS connections served (counted once their handshake is done).
    pub const DOWNSTREAM_CX_SSL_TOTAL: usize = 39;
    /// TLS connections open now.
    pub const DOWNSTREAM_CX_SSL_ACTIVE: usize = 40;
    /// Connections closed by ringway (`downstream_cx_destroy` split as Envoy's: by
    /// who closed it, and whether a request was still unanswered on it).
    pub const DOWNSTREAM_CX_DESTROY_LOCAL: usize = 41;
    /// Connections the client closed (or reset).
    pub const DOWNSTREAM_CX_DESTROY_REMOTE: usize = 42;
    /// Connections closed with a request unanswered or its response cut short, by
    /// either side.
    pub const DOWNSTREAM_CX_DESTROY_ACTIVE_RQ: usize = 43;
    pub const DOWNSTREAM_CX_DESTROY_LOCAL_ACTIVE_RQ: usize = 44;
    pub const DOWNSTREAM_CX_DESTROY_REMOTE_ACTIVE_RQ: usize = 45;
    /// Requests the client reset (went away) before their response was whole.
    pub const DOWNSTREAM_RQ_RX_RESET: usize = 46;
    /// Requests whose response ringway cut short after it had begun (the upstream
    /// failed mid-response).
    pub const DOWNSTREAM_RQ_TX_RESET: usize = 47;
    /// The router's count of the same (Envoy's router stat).
    pub const RQ_RESET_AFTER_DOWNSTREAM_RESPONSE_STARTED: usize = 48;
    /// Connections closed because ringway was draining (a drain, a hot restart, or a
    /// reload that removed the listener): after a response that would have kept it
    /// open, or idle.
    pub const DOWNSTREAM_CX_DRAIN_CLOSE: usize = 49;
    /// Requests refused with a 413 for a body over the limit (`max_request_body`,
    /// Envoy's buffer limits), from its declared length or as it streamed.
    pub const DOWNSTREAM_RQ_TOO_LARGE: usize = 50;
    /// Requests whose response head was sent before the request was wholly received (an
    /// upstream's early answer, a local reply to a body left unread or broken).
    pub const DOWNSTREAM_RQ_RESPONSE_BEFORE_RQ_COMPLETE: usize = 51;
    /// HTTP/2 connections and requests: Envoy's names, 0 until ringway speaks HTTP/2
    /// (emitted as Envoy emits them on an HTTP/1.1-only listener).
    pub const DOWNSTREAM_CX_HTTP2_TOTAL: usize = 52;
    pub const DOWNSTREAM_CX_HTTP2_ACTIVE: usize = 53;
    pub const DOWNSTREAM_RQ_HTTP2_TOTAL: usize = 54;
    /// Connections closed after the request that reached `max_requests_per_connection`.
    pub const DOWNSTREAM_CX_MAX_REQUESTS_REACHED: usize = 55;
    /// Connections closed for reaching `max_connection_duration`.
    pub const DOWNSTREAM_CX_MAX_DURATION_REACHED: usize = 56;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 57] = [
        per_worker(counter("downstream_rq_total")),
        counter("downstream_rq_1xx"),
        counter("downstream_rq_2xx"),
        counter("downstream_rq_3xx"),
        counter("downstream_rq_4xx"),
        counter("downstream_rq_5xx"),
        counter("downstream_cx_protocol_error"),
        counter("downstream_cx_rx_bytes_total"),
        counter("downstream_cx_tx_bytes_total"),
        counter("rq_direct_response"),
        counter("no_route"),
        counter("downstream_rq_header_timeout"),
        counter("downstream_cx_idle_timeout"),
        counter("downstream_rq_timeout"),
        counter("downstream_rq_idle_timeout"),
        counter("rq_redirect"),
        counter("downstream_cx_upgrades_total"),
        gauge("downstream_cx_upgrades_active"),
        counter("downstream_rq_ws_on_non_ws_route"),
        counter("downstream_rq_completed"),
        counter("downstream_cx_total"),
        gauge("downstream_cx_active"),
        counter("downstream_cx_http1_total"),
        gauge("downstream_cx_http1_active"),
        counter("downstream_cx_destroy"),
        counter("downstream_rq_http1_total"),
        gauge("downstream_rq_active"),
        counter("rq_total"),
        counter("downstream_rq_max_duration_reached"),
        counter("fault.delays_injected"),
        counter("fault.aborts_injected"),
        counter("fault.response_rl_injected"),
        counter("fault.faults_overflow"),
        gauge("fault.active_faults"),
        counter("tracing.random_sampling"),
        counter("tracing.service_forced"),
        counter("tracing.client_enabled"),
        counter("tracing.not_traceable"),
        counter("tracing.health_check"),
        counter("downstream_cx_ssl_total"),
        gauge("downstream_cx_ssl_active"),
        counter("downstream_cx_destroy_local"),
        counter("downstream_cx_destroy_remote"),
        counter("downstream_cx_destroy_active_rq"),
        counter("downstream_cx_destroy_local_active_rq"),
        counter("downstream_cx_destroy_remote_active_rq"),
        counter("downstream_rq_rx_reset"),
        counter("downstream_rq_tx_reset"),
        counter("rq_reset_after_downstream_response_started"),
        counter("downstream_cx_drain_close"),
        counter("downstream_rq_too_large"),
        counter("downstream_rq_response_before_rq_complete"),
        counter("downstream_cx_http2_total"),
        gauge("downstream_cx_http2_active"),
        counter("downstream_rq_http2_total"),
        counter("downstream_cx_max_requests_reached"),
        counter("downstream_cx_max_duration_reached"),
    ];

    /// The index of the status-class counter for `status` (100..=599).
    #[inline]
    pub fn status_class(status: u16) -> usize {
        DOWNSTREAM_RQ_1XX + class_offset(status)
    }
}

/// `listener.<name>.http.<prefix>.`: the responses of one listener's connection
/// manager (Envoy's per-listener HTTP stats), charged with the `http.<prefix>.` ones.
pub mod listener_http {
    use super::*;

    /// Responses by status class: index `DOWNSTREAM_RQ_1XX + class - 1`.
    pub const DOWNSTREAM_RQ_1XX: usize = 0;
    /// Requests that got a response (their status class is counted with it).
    pub const DOWNSTREAM_RQ_COMPLETED: usize = 5;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 6] = [
        counter("downstream_rq_1xx"),
        counter("downstream_rq_2xx"),
        counter("downstream_rq_3xx"),
        counter("downstream_rq_4xx"),
        counter("downstream_rq_5xx"),
        counter("downstream_rq_completed"),
    ];

    /// The index of the status-class counter for `status` (100..=599).
    #[inline]
    pub fn status_class(status: u16) -> usize {
        DOWNSTREAM_RQ_1XX + class_offset(status)
    }
}

/// `listener.<name>.ssl.`: handshakes by the cipher suite and key-exchange group they
/// agreed on (Envoy's `ssl.ciphers.<name>` and `ssl.curves.<name>`, BoringSSL's
/// names). A sparse scope: as in Envoy, only those used are shown. The cells follow
/// `tls::names::CIPHERS`, then `tls::names::CURVES`.
pub mod listener_tls {
    use super::*;

    /// The first cipher's cell (`tls::names::CIPHERS` order).
    pub const CIPHERS: usize = 0;
    /// The first curve's cell (`tls::names::CURVES` order).
    pub const CURVES: usize = 9;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 14] = [
        counter("ciphers.TLS_AES_128_GCM_SHA256"),
        counter("ciphers.TLS_AES_256_GCM_SHA384"),
        counter("ciphers.TLS_CHACHA20_POLY1305_SHA256"),
        counter("ciphers.ECDHE-ECDSA-AES128-GCM-SHA256"),
        counter("ciphers.ECDHE-ECDSA-AES256-GCM-SHA384"),
        counter("ciphers.ECDHE-ECDSA-CHACHA20-POLY1305"),
        counter("ciphers.ECDHE-RSA-AES128-GCM-SHA256"),
        counter("ciphers.ECDHE-RSA-AES256-GCM-SHA384"),
        counter("ciphers.ECDHE-RSA-CHACHA20-POLY1305"),
        counter("curves.X25519MLKEM768"),
        counter("curves.X25519"),
        counter("curves.P-256"),
        counter("curves.P-384"),
        counter("curves.P-521"),
    ];
}

/// `cluster.<name>.`: requests forwarded to one cluster (Envoy's cluster stats).
pub mod cluster {
    use super::*;

    /// Connections opened.
    pub const UPSTREAM_CX_TOTAL: usize = 0;
    /// Connects that failed (refused, unreachable).
    pub const UPSTREAM_CX_CONNECT_FAIL: usize = 1;
    /// Connects that timed out.
    pub const UPSTREAM_CX_CONNECT_TIMEOUT: usize = 2;
    /// Responses that were not valid HTTP/1.1.
    pub const UPSTREAM_CX_PROTOCOL_ERROR: usize = 3;
    /// Requests sent (retries included).
    pub const UPSTREAM_RQ_TOTAL: usize = 4;
    /// Responses by status class: index `UPSTREAM_RQ_1XX + class - 1`.
    pub const UPSTREAM_RQ_1XX: usize = 5;
    /// Requests refused because the pending queue was full.
    pub const UPSTREAM_RQ_PENDING_OVERFLOW: usize = 10;
    /// Requests that hit the route timeout.
    pub const UPSTREAM_RQ_TIMEOUT: usize = 11;
    /// Requests retried on a fresh connection after a pooled one failed.
    pub const UPSTREAM_RQ_RETRY: usize = 12;
    /// Requests sent on a pooled (reused) connection.
    pub const UPSTREAM_CX_POOL_REUSE: usize = 13;
    /// DNS resolution rounds started (Envoy's `update_attempt`); written by the
    /// resolver thread in the scope's extra slot, as are the four below.
    pub const UPDATE_ATTEMPT: usize = 14;
    /// Rounds in which every name resolved.
    pub const UPDATE_SUCCESS: usize = 15;
    /// Rounds in which a name failed to resolve (its last good addresses were kept).
    pub const UPDATE_FAILURE: usize = 16;
    /// Times the cluster's endpoints changed.
    pub const MEMBERSHIP_CHANGE: usize = 17;
    /// Endpoints the cluster has now (static clusters: those written).
    pub const MEMBERSHIP_TOTAL: usize = 18;
    /// Upstream requests that got a whole response.
    pub const UPSTREAM_RQ_COMPLETED: usize = 19;
    /// Upstream requests in flight now.
    pub const UPSTREAM_RQ_ACTIVE: usize = 20;
    /// Upstream connections open now (busy or idle in the pools).
    pub const UPSTREAM_CX_ACTIVE: usize = 21;
    /// HTTP/1 connections opened (all of them, until HTTP/2 exists).
    pub const UPSTREAM_CX_HTTP1_TOTAL: usize = 22;
    /// Connections closed.
    pub const UPSTREAM_CX_DESTROY: usize = 23;
    /// TLS handshakes completed with endpoints.
    pub const SSL_HANDSHAKE: usize = 24;
    /// Of those, resumed sessions.
    pub const SSL_SESSION_REUSED: usize = 25;
    /// TLS handshakes that failed other than on the server's certificate.
    pub const SSL_CONNECTION_ERROR: usize = 26;
    /// TLS handshakes refused: the server's certificate did not verify.
    pub const SSL_FAIL_VERIFY_ERROR: usize = 27;
    /// TLS handshakes refused: the server's certificate has none of the accepted names.
    pub const SSL_FAIL_VERIFY_SAN: usize = 28;
    /// Requests balanced while their priority was in panic mode (too few healthy
    /// endpoints: balanced over all of them).
    pub const LB_HEALTHY_PANIC: usize = 29;
    /// Endpoints healthy now (the control thread writes its slot).
    pub const MEMBERSHIP_HEALTHY: usize = 30;
    /// Endpoints degraded now.
    pub const MEMBERSHIP_DEGRADED: usize = 31;
    /// Endpoints excluded from balancing now (draining, immediate health-check fail).
    pub const MEMBERSHIP_EXCLUDED: usize = 32;
    /// Retries that got an answer that was not retried again (Envoy's
    /// `upstream_rq_retry_success`).
    pub const UPSTREAM_RQ_RETRY_SUCCESS: usize = 33;
    /// Retries not made: the retry circuit breaker or the retry budget said no.
    pub const UPSTREAM_RQ_RETRY_OVERFLOW: usize = 34;
    /// Retries not made: the policy's retries were used up.
    pub const UPSTREAM_RQ_RETRY_LIMIT_EXCEEDED: usize = 35;
    /// Retries that waited the exponential back-off.
    pub const UPSTREAM_RQ_RETRY_BACKOFF_EXPONENTIAL: usize = 36;
    /// Retries that waited as the upstream asked (`Retry-After`, reset headers).
    pub const UPSTREAM_RQ_RETRY_BACKOFF_RATELIMITED: usize = 37;
    /// Attempts ended by their `per_try_timeout`.
    pub const UPSTREAM_RQ_PER_TRY_TIMEOUT: usize = 38;
    /// Connections not opened: the cluster was at its `max_connections`.
    pub const UPSTREAM_CX_OVERFLOW: usize = 39;
    /// Requests that waited for a connection.
    pub const UPSTREAM_RQ_PENDING_TOTAL: usize = 40;
    /// Requests waiting for a connection now.
    pub const UPSTREAM_RQ_PENDING_ACTIVE: usize = 41;
    /// Attempts ended by their `per_try_idle_timeout`.
    pub const UPSTREAM_RQ_PER_TRY_IDLE_TIMEOUT: usize = 42;
    /// Requests that a route's mirror drew but did not copy here (`worker::mirror`):
    /// their body streams, this worker's shadow requests in flight are at their bound,
    /// or the cluster speaks PROXY protocol. Not an Envoy stat.
    pub const UPSTREAM_RQ_SHADOW_SKIPPED: usize = 43;
    /// Connections closed by ringway (`upstream_cx_destroy` splits as Envoy's: by who
    /// closed it, and whether a request was in flight on it).
    pub const UPSTREAM_CX_DESTROY_LOCAL: usize = 44;
    /// Connections the endpoint closed (or reset, or refused).
    pub const UPSTREAM_CX_DESTROY_REMOTE: usize = 45;
    /// Connections closed with a request in flight on them, by either side.
    pub const UPSTREAM_CX_DESTROY_WITH_ACTIVE_RQ: usize = 46;
    pub const UPSTREAM_CX_DESTROY_LOCAL_WITH_ACTIVE_RQ: usize = 47;
    pub const UPSTREAM_CX_DESTROY_REMOTE_WITH_ACTIVE_RQ: usize = 48;
    /// Responses that asked to end their connection (`http1::Response::ends_connection`).
    pub const UPSTREAM_CX_CLOSE_NOTIFY: usize = 49;
    /// Bytes read from endpoints (after TLS: the HTTP bytes), counted as they arrive.
    pub const UPSTREAM_CX_RX_BYTES_TOTAL: usize = 50;
    /// Bytes written to endpoints.
    pub const UPSTREAM_CX_TX_BYTES_TOTAL: usize = 51;
    /// Pooled connections closed because they stayed idle past their time.
    pub const UPSTREAM_CX_IDLE_TIMEOUT: usize = 52;
    /// Requests (and retries) that found no endpoint to send to.
    pub const UPSTREAM_CX_NONE_HEALTHY: usize = 53;
    /// Requests failed because the connection they waited for did not open (Envoy's
    /// pool purges its pending requests when a connect fails or times out).
    pub const UPSTREAM_RQ_PENDING_FAILURE_EJECT: usize = 54;
    /// The largest weight among the cluster's endpoints (the control thread's cell,
    /// set with the membership gauges).
    pub const MAX_HOST_WEIGHT: usize = 55;
    /// Envoy's HTTP/2 pool counts, 0 on HTTP/1.1 as in Envoy (its HTTP/1 pool closes
    /// the connection rather than resetting a stream): HTTP/2 connections, and streams
    /// reset by the endpoint and by the proxy.
    pub const UPSTREAM_CX_HTTP2_TOTAL: usize = 56;
    pub const UPSTREAM_RQ_RX_RESET: usize = 57;
    pub const UPSTREAM_RQ_TX_RESET: usize = 58;
    /// Requests whose retries and shadows were given up because their body was not
    /// held whole for replay (over the route's `buffer_limit`, chunked, or awaited with
    /// `Expect: 100-continue`).
    pub const RETRY_OR_SHADOW_ABANDONED: usize = 59;
    /// Connections closed after the cluster's `max_requests_per_connection` requests.
    pub const UPSTREAM_CX_MAX_REQUESTS: usize = 60;
    /// DNS resolutions that succeeded and changed no endpoint (Envoy's strict DNS
    /// cluster counts these instead of rebuilding its hosts).
    pub const UPDATE_NO_REBUILD: usize = 61;
    /// Requests whose wait for a pooled connection ended before one was theirs (the
    /// route's timeout): Envoy's pool counts a pending stream it cancels.
    pub const UPSTREAM_RQ_CANCELLED: usize = 62;
    /// Envoy's counters of what ringway's clusters cannot do, always 0 here as on an
    /// Envoy cluster without the feature: `max_connection_pools` (refused by name), an
    /// `upstream_bind_config` (none), runtime maintenance mode (no runtime), an
    /// `ORIGINAL_DST` cluster (refused), the cluster's `max_connection_duration` and
    /// `max_stream_duration` (refused by name).
    pub const UPSTREAM_CX_POOL_OVERFLOW: usize = 63;
    pub const BIND_ERRORS: usize = 64;
    pub const UPSTREAM_RQ_MAINTENANCE_MODE: usize = 65;
    pub const ORIGINAL_DST_HOST_INVALID: usize = 66;
    pub const UPSTREAM_CX_MAX_DURATION_REACHED: usize = 67;
    pub const UPSTREAM_RQ_MAX_DURATION_REACHED: usize = 68;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 69] = [
        counter("upstream_cx_total"),
        counter("upstream_cx_connect_fail"),
        counter("upstream_cx_connect_timeout"),
        counter("upstream_cx_protocol_error"),
        counter("upstream_rq_total"),
        counter("upstream_rq_1xx"),
        counter("upstream_rq_2xx"),
        counter("upstream_rq_3xx"),
        counter("upstream_rq_4xx"),
        counter("upstream_rq_5xx"),
        counter("upstream_rq_pending_overflow"),
        counter("upstream_rq_timeout"),
        counter("upstream_rq_retry"),
        counter("upstream_cx_pool_reuse"),
        counter("update_attempt"),
        counter("update_success"),
        counter("update_failure"),
        counter("membership_change"),
        gauge("membership_total"),
        counter("upstream_rq_completed"),
        gauge("upstream_rq_active"),
        gauge("upstream_cx_active"),
        counter("upstream_cx_http1_total"),
        counter("upstream_cx_destroy"),
        counter("ssl.handshake"),
        counter("ssl.session_reused"),
        counter("ssl.connection_error"),
        counter("ssl.fail_verify_error"),
        counter("ssl.fail_verify_san"),
        counter("lb_healthy_panic"),
        gauge("membership_healthy"),
        gauge("membership_degraded"),
        gauge("membership_excluded"),
        counter("upstream_rq_retry_success"),
        counter("upstream_rq_retry_overflow"),
        counter("upstream_rq_retry_limit_exceeded"),
        counter("upstream_rq_retry_backoff_exponential"),
        counter("upstream_rq_retry_backoff_ratelimited"),
        counter("upstream_rq_per_try_timeout"),
        counter("upstream_cx_overflow"),
        counter("upstream_rq_pending_total"),
        gauge("upstream_rq_pending_active"),
        counter("upstream_rq_per_try_idle_timeout"),
        counter("upstream_rq_shadow_skipped"),
        counter("upstream_cx_destroy_local"),
        counter("upstream_cx_destroy_remote"),
        counter("upstream_cx_destroy_with_active_rq"),
        counter("upstream_cx_destroy_local_with_active_rq"),
        counter("upstream_cx_destroy_remote_with_active_rq"),
        counter("upstream_cx_close_notify"),
        counter("upstream_cx_rx_bytes_total"),
        counter("upstream_cx_tx_bytes_total"),
        counter("upstream_cx_idle_timeout"),
        counter("upstream_cx_none_healthy"),
        counter("upstream_rq_pending_failure_eject"),
        gauge("max_host_weight"),
        counter("upstream_cx_http2_total"),
        counter("upstream_rq_rx_reset"),
        counter("upstream_rq_tx_reset"),
        counter("retry_or_shadow_abandoned"),
        counter("upstream_cx_max_requests"),
        counter("update_no_rebuild"),
        counter("upstream_rq_cancelled"),
        counter("upstream_cx_pool_overflow"),
        counter("bind_errors"),
        counter("upstream_rq_maintenance_mode"),
        counter("original_dst_host_invalid"),
        counter("upstream_cx_max_duration_reached"),
        counter("upstream_rq_max_duration_reached"),
    ];

    /// The index of the status-class counter for `status` (100..=599).
    #[inline]
    pub fn status_class(status: u16) -> usize {
        UPSTREAM_RQ_1XX + class_offset(status)
    }
}

/// `cluster.<name>.circuit_breakers.<default|high>.`: Envoy's breaker gauges. Each
/// worker writes its own cells: an `_open` flag is 1 in a worker's cell while its last
/// try at that resource was refused (shown as 1 when any worker's is); a `remaining_`
/// gauge is the limit (the control thread's slot) minus the units each worker uses.
pub mod breakers {
    use super::*;

    pub const CX_OPEN: usize = 0;
    pub const RQ_PENDING_OPEN: usize = 1;
    pub const RQ_OPEN: usize = 2;
    pub const RQ_RETRY_OPEN: usize = 3;
    pub const REMAINING_CX: usize = 4;
    pub const REMAINING_PENDING: usize = 5;
    pub const REMAINING_RQ: usize = 6;
    pub const REMAINING_RETRIES: usize = 7;

    /// Always shown.
    pub static OPEN_DEFS: [StatDef; 4] = [
        flag("cx_open"),
        flag("rq_pending_open"),
        flag("rq_open"),
        flag("rq_retry_open"),
    ];

    /// With `track_remaining`.
    pub static TRACKED_DEFS: [StatDef; 8] = [
        flag("cx_open"),
        flag("rq_pending_open"),
        flag("rq_open"),
        flag("rq_retry_open"),
        gauge("remaining_cx"),
        gauge("remaining_pending"),
        gauge("remaining_rq"),
        gauge("remaining_retries"),
    ];
}

/// `http1.`: Envoy's HTTP/1 codec stats (`ALL_HTTP1_CODEC_STATS` in
/// source/common/http/http1/codec_stats.h), one scope for every listener, as Envoy
/// roots them. ringway sends no metadata and reads no response flood (each response is
/// written before the next request is read), so those two stay 0.
pub mod http1 {
    use super::*;

    /// Request fields dropped for an underscore in their names (`DROP_HEADER`).
    pub const DROPPED_HEADERS_WITH_UNDERSCORES: usize = 0;
    /// Requests refused for an underscore in a field name (`REJECT_REQUEST`).
    pub const REQUESTS_REJECTED_WITH_UNDERSCORES_IN_HEADERS: usize = 2;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 4] = [
        counter("dropped_headers_with_underscores"),
        counter("metadata_not_supported_error"),
        counter("requests_rejected_with_underscores_in_headers"),
        counter("response_flood"),
    ];
}

/// `server.`: process-wide figures each worker writes for itself. Registered only with
/// the `alloc-count` feature (the only stat in it so far).
pub mod server {
    use super::*;

    /// Heap allocations made by the worker's thread since it started (alloc,
    /// alloc_zeroed, realloc), published at the end of every request.
    pub const HEAP_ALLOCATIONS: usize = 0;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 1] = [per_worker(counter("heap_allocations"))];
}

/// `http.<prefix>.jwt_authn.`: Envoy's JWT authentication filter stats, per listener.
/// The fetch counters are written by the control thread (the slot after the workers').
pub mod jwt_authn {
    use super::*;

    pub const ALLOWED: usize = 0;
    pub const DENIED: usize = 1;
    pub const CORS_PREFLIGHT_BYPASSED: usize = 2;
    pub const JWT_CACHE_HIT: usize = 3;
    pub const JWT_CACHE_MISS: usize = 4;
    pub const JWKS_FETCH_SUCCESS: usize = 5;
    pub const JWKS_FETCH_FAILED: usize = 6;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 7] = [
        counter("allowed"),
        counter("denied"),
        counter("cors_preflight_bypassed"),
        counter("jwt_cache_hit"),
        counter("jwt_cache_miss"),
        counter("jwks_fetch_success"),
        counter("jwks_fetch_failed"),
    ];
}

/// `http.<prefix>.rbac.`: Envoy's RBAC filter stats, per listener (the shadow pair
/// under `http.<prefix>.rbac.<shadow_rules_stat_prefix>` when that is set).
pub mod rbac {
    use super::*;

    pub const ALLOWED: usize = 0;
    pub const DENIED: usize = 1;
    pub const SHADOW_ALLOWED: usize = 2;
    pub const SHADOW_DENIED: usize = 3;
    pub const LOGGED: usize = 4;
    pub const NOT_LOGGED: usize = 5;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 6] = [
        counter("allowed"),
        counter("denied"),
        counter("shadow_allowed"),
        counter("shadow_denied"),
        counter("logged"),
        counter("not_logged"),
    ];
}

/// `http.<prefix>.rate_limit.<limit>.`: one rate limit's decisions (both formats), and
/// the bucket-table evictions the workers caused.
pub mod rate_limit {
    use super::*;

    /// Requests the limit checked and allowed.
    pub const ALLOWED: usize = 0;
    /// Requests refused (429).
    pub const LIMITED: usize = 1;
    /// Requests over the limit that passed: a shadow limit, or Envoy's enabled but not
    /// enforced share.
    pub const SHADOW_LIMITED: usize = 2;
    /// A key took over the cell of a full (idle) bucket: nothing lost.
    pub const EVICTED_IDLE: usize = 3;
    /// A key took over the cell of a bucket that was not full: that key, if it comes
    /// back, starts full (the over-admission a key flood can cause).
    pub const EVICTED_ACTIVE: usize = 4;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 5] = [
        counter("allowed"),
        counter("limited"),
        counter("shadow_limited"),
        counter("evicted_idle"),
        counter("evicted_active"),
    ];
}

/// `<stat_prefix>.http_local_rate_limit.`: Envoy's local rate limit filter stats.
pub mod local_rate_limit {
    use super::*;

    /// Requests the filter was enabled for.
    pub const ENABLED: usize = 0;
    /// Requests refused (rate limited and enforced).
    pub const ENFORCED: usize = 1;
    /// Requests under the limit.
    pub const OK: usize = 2;
    /// Requests over the limit, enforced or not.
    pub const RATE_LIMITED: usize = 3;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 4] = [
        counter("enabled"),
        counter("enforced"),
        counter("ok"),
        counter("rate_limited"),
    ];
}

/// New connections refused by a connection-rate limit: `local_rate_limit.<stat_prefix>.`
/// (Envoy's network `local_ratelimit`) or `listener.<prefix>.connection_rate.` (native).
pub mod connection_rate {
    use super::*;

    pub const RATE_LIMITED: usize = 0;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 1] = [counter("rate_limited")];
}

/// `consumer.<name>.`: usage of one API consumer (requests, status classes, bytes), for
/// usage and billing reports.
///
/// The name in the prefix is the consumer's name as configured, dots included (config
/// names are `[A-Za-z0-9_.-]`): every stat here is one dot-free segment, so
/// `consumer.<name>.<stat>` is one consumer's stat and no other's (`a.b` and `a_b` are two
/// consumers, `consumer.a.b.rq_total` and `consumer.a_b.rq_total`). Prometheus gets the
/// name as a label, `envoy_consumer_<stat>{envoy_consumer_name="<name>"}`
/// (`render::prometheus_labelled`), since no tag extractor can split a dotted name.
pub mod consumer {
    use super::*;

    /// The stats' prefix: `consumer.<name>.`.
    pub fn prefix(name: &str) -> String {
        format!("consumer.{name}.")
    }

    /// The consumer's name and the stat of a full stat name `consumer.<name>.<stat>`,
    /// when `<stat>` is one of [`DEFS`] (whether such a consumer exists is the caller's
    /// question).
    pub fn split(full: &str) -> Option<(&str, &str)> {
        let (name, stat) = full.strip_prefix("consumer.")?.rsplit_once('.')?;
        (!name.is_empty() && DEFS.iter().any(|d| d.name == stat)).then_some((name, stat))
    }

    pub const RQ_TOTAL: usize = 0;
    pub const RQ_1XX: usize = 1;
    pub const RX_BYTES: usize = 6;
    pub const TX_BYTES: usize = 7;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 8] = [
        counter("rq_total"),
        counter("rq_1xx"),
        counter("rq_2xx"),
        counter("rq_3xx"),
        counter("rq_4xx"),
        counter("rq_5xx"),
        counter("rx_bytes"),
        counter("tx_bytes"),
    ];

    /// The index of the status-class counter for `status`.
    #[inline]
    pub fn status_class(status: u16) -> usize {
        RQ_1XX + class_offset(status)
    }
}

/// `access_log.`: the access log. Workers write `dropped_lines` for lines they could not
/// hand to the writer (its queue was full); the writer thread owns one extra cell slot
/// (index `workers`) for the lines it wrote and the ones it lost to write errors.
pub mod access_log {
    use super::*;

    /// Lines dropped: by a worker when the writer's queue was full, by the writer when a
    /// write (or opening the file) failed.
    pub const DROPPED_LINES: usize = 0;
    /// Lines written to the log (counted by the writer thread).
    pub const WRITTEN_LINES: usize = 1;
    /// Failed writes or opens of the log file (counted by the writer thread).
    pub const WRITE_ERRORS: usize = 2;
    /// Successful reopens on SIGUSR1 (counted by the writer thread).
    pub const REOPENS: usize = 3;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 4] = [
        counter("dropped_lines"),
        counter("written_lines"),
        counter("write_errors"),
        counter("reopens"),
    ];
}

/// `tracing.zipkin.` and `tracing.opentelemetry.`: span export, one scope per provider
/// (Envoy's `ZIPKIN_TRACER_STATS` in source/extensions/tracers/zipkin/zipkin_tracer_impl.h
/// and `OPENTELEMETRY_TRACER_STATS` in source/extensions/tracers/opentelemetry/
/// tracer_stats.h). Workers write their cells (`timer_flushed`, `spans_dropped`,
/// `spans_rate_limited`), the exporter thread the extra slot (the rest). The first four
/// indices are the same in both, so the sinks count without knowing the provider.
pub mod trace {
    use super::*;

    /// Spans handed to an export request (Envoy's).
    pub const SPANS_SENT: usize = 0;
    /// Batches a worker handed over because their flush interval passed (Envoy's).
    pub const TIMER_FLUSHED: usize = 1;
    /// ringway's: spans a worker dropped because the exporter's queue was full (a slow
    /// or down collector), or because a reload changed their tracer.
    pub const SPANS_DROPPED: usize = 2;
    /// ringway's: spans not recorded because the worker's share of
    /// `max_spans_per_second` was used up.
    pub const SPANS_RATE_LIMITED: usize = 3;

    /// Zipkin: export requests not sent because the collector cluster has no address.
    pub const REPORTS_SKIPPED_NO_CLUSTER: usize = 4;
    /// Zipkin: requests the collector accepted (202, as Envoy checks).
    pub const REPORTS_SENT: usize = 5;
    /// Zipkin: requests answered with another status.
    pub const REPORTS_DROPPED: usize = 6;
    /// Zipkin: requests that got no answer (connect failure, timeout, reset).
    pub const REPORTS_FAILED: usize = 7;

    /// OpenTelemetry: export requests sent.
    pub const HTTP_REPORTS_SENT: usize = 4;
    /// OpenTelemetry: requests answered 2xx.
    pub const HTTP_REPORTS_SUCCESS: usize = 5;
    /// OpenTelemetry: requests that failed (another status, or no answer).
    pub const HTTP_REPORTS_FAILED: usize = 6;

    /// `tracing.zipkin.`, in index order.
    pub static ZIPKIN_DEFS: [StatDef; 8] = [
        counter("spans_sent"),
        counter("timer_flushed"),
        counter("spans_dropped"),
        counter("spans_rate_limited"),
        counter("reports_skipped_no_cluster"),
        counter("reports_sent"),
        counter("reports_dropped"),
        counter("reports_failed"),
    ];

    /// `tracing.opentelemetry.`, in index order.
    pub static OPENTELEMETRY_DEFS: [StatDef; 7] = [
        counter("spans_sent"),
        counter("timer_flushed"),
        counter("spans_dropped"),
        counter("spans_rate_limited"),
        counter("http_reports_sent"),
        counter("http_reports_success"),
        counter("http_reports_failed"),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_cells_follow_the_name_tables() {
        use crate::tls::names::{CIPHERS, CURVES};
        for (i, (name, _)) in CIPHERS.iter().enumerate() {
            let def = &listener_tls::DEFS[listener_tls::CIPHERS + i];
            assert_eq!(def.name, format!("ciphers.{name}"));
        }
        for (i, (name, _)) in CURVES.iter().enumerate() {
            let def = &listener_tls::DEFS[listener_tls::CURVES + i];
            assert_eq!(def.name, format!("curves.{name}"));
        }
        assert_eq!(listener_tls::DEFS.len(), CIPHERS.len() + CURVES.len());
    }

    #[test]
    fn status_classes_map_to_their_counters() {
        assert_eq!(http::status_class(101), http::DOWNSTREAM_RQ_1XX);
        assert_eq!(http::status_class(204), http::DOWNSTREAM_RQ_2XX);
        assert_eq!(http::status_class(404), http::DOWNSTREAM_RQ_4XX);
        assert_eq!(http::status_class(599), http::DOWNSTREAM_RQ_5XX);
        // Out of range: the nearest class.
        assert_eq!(http::status_class(42), http::DOWNSTREAM_RQ_1XX);
        assert_eq!(http::status_class(700), http::DOWNSTREAM_RQ_5XX);
        for (status, name) in [(100, "1xx"), (302, "3xx"), (503, "5xx"), (999, "5xx")] {
            let index = listener_http::status_class(status);
            assert_eq!(
                listener_http::DEFS[index].name,
                format!("downstream_rq_{name}")
            );
            let index = cluster::status_class(status);
            assert_eq!(cluster::DEFS[index].name, format!("upstream_rq_{name}"));
        }
        assert_eq!(
            http::DEFS[http::DOWNSTREAM_RQ_5XX].name,
            "downstream_rq_5xx"
        );
        assert_eq!(
            http::DEFS[http::DOWNSTREAM_CX_IDLE_TIMEOUT].name,
            "downstream_cx_idle_timeout"
        );
        assert_eq!(
            listener::DEFS[listener::DOWNSTREAM_CX_DESTROY].name,
            "downstream_cx_destroy"
        );
        assert_eq!(
            cluster::DEFS[cluster::status_class(503)].name,
            "upstream_rq_5xx"
        );
        assert_eq!(
            cluster::DEFS[cluster::UPSTREAM_CX_POOL_REUSE].name,
            "upstream_cx_pool_reuse"
        );
    }

    #[test]
    fn consumer_stat_names_keep_the_name_and_split_back_to_it() {
        assert!(consumer::DEFS.iter().all(|d| !d.name.contains('.')));
        // Dots, underscores and dashes stay as configured: four names, four prefixes.
        let names = ["acme-corp", "a.b", "a_b", "acme_corp"];
        let prefixes: std::collections::BTreeSet<String> =
            names.iter().map(|n| consumer::prefix(n)).collect();
        assert_eq!(prefixes.len(), names.len());
        assert_eq!(consumer::prefix("a.b"), "consumer.a.b.");
        for name in names {
            for def in &consumer::DEFS {
                let full = format!("{}{}", consumer::prefix(name), def.name);
                assert_eq!(consumer::split(&full), Some((name, def.name)), "{full}");
            }
        }
        assert_eq!(
            consumer::split("consumer.a.b.c.tx_bytes"),
            Some(("a.b.c", "tx_bytes"))
        );
        // Not a consumer stat: another stat name, no name, another scope.
        assert_eq!(consumer::split("consumer.a.b.rate_limited"), None);
        assert_eq!(consumer::split("consumer.rq_total"), None);
        assert_eq!(consumer::split("consumer..rq_total"), None);
        assert_eq!(consumer::split("cluster.a.rq_total"), None);
    }
}

/// Per host of a cluster (`/clusters` shows them; `/stats` does not, as in Envoy):
/// Envoy's host stats, in the order `/clusters` prints them.
pub mod host {
    use super::*;

    /// Connections open to the host now.
    pub const CX_ACTIVE: usize = 0;
    /// Connects that failed or timed out.
    pub const CX_CONNECT_FAIL: usize = 1;
    /// Connections opened.
    pub const CX_TOTAL: usize = 2;
    /// Requests in flight to the host now.
    pub const RQ_ACTIVE: usize = 3;
    /// Requests that failed: a 5xx answer, or no answer (timeouts apart).
    pub const RQ_ERROR: usize = 4;
    /// Requests answered below 500.
    pub const RQ_SUCCESS: usize = 5;
    /// Requests that timed out.
    pub const RQ_TIMEOUT: usize = 6;
    /// Requests sent (retries included).
    pub const RQ_TOTAL: usize = 7;

    /// The definitions, in index order.
    pub static DEFS: [StatDef; 8] = [
        gauge("cx_active"),
        counter("cx_connect_fail"),
        counter("cx_total"),
        gauge("rq_active"),
        counter("rq_error"),
        counter("rq_success"),
        counter("rq_timeout"),
        counter("rq_total"),
    ];
}
