//! Envoy's `Listener` with one `http_connection_manager` onto ringway's listeners, and
//! the HCM's access loggers onto ringway's access log.
//!
//! Design: a listener's filter chains all have the same network filters: the HTTP
//! connection manager, whose HTTP filters end with the router, optionally after
//! `envoy.filters.network.local_ratelimit` (the listener's connection rate,
//! `local_ratelimit.rs`); the chains may differ only in TLS (`tls.rs`: certificates chosen by `server_names`, a plaintext
//! chain beside TLS ones). Envoy's defaults apply where a field is
//! absent: `server: envoy` on responses, a 1 h connection idle timeout, a 5 min stream
//! idle timeout, 60 KiB of request headers, WebSocket upgrades off unless listed.

use std::time::Duration;

use super::cursor::{Loc, Msg};
use super::route;
use super::{schema, DISABLED};
use crate::config::error::Diagnostics;
use crate::config::log_format;
use crate::config::model::{
    AccessLogConfig, AccessLogFormat, AccessLogPath, Address, Cidr, EnvoyForwarding,
    EscapedSlashes, ExpectContinue, HealthCheckFilter, Http1Settings, Listener, PathNormalization,
    ProxyProtocol, ProxySettings, TrustedProxies,
};
use crate::config::tls::ForwardClientCert;
use crate::http1::Underscores;

/// Envoy's HCM defaults that differ from ringway's native ones.
const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// A decoded listener, and the access log its HCM asks for.
pub(crate) struct Mapped {
    pub listener: Listener,
    pub access_log: Option<AccessLogConfig>,
    /// The providers of its jwt_authn filter (names not yet qualified: see
    /// `jwt_authn::merge`).
    pub jwt_providers: Vec<crate::config::auth::JwtProvider>,
    /// The tracer its connection manager's `tracing` uses; the caller interns it into
    /// `Config::tracers` and sets `listener.tracing`'s index.
    pub tracer: Option<crate::config::observability::Tracer>,
}

/// `default_tracer`: the bootstrap's `tracing` provider, for a connection manager
/// whose `tracing` names none.
pub(crate) fn listener(
    l: &Msg<'_, '_>,
    index: usize,
    (clusters, node_cluster): (&[String], Option<&str>),
    default_tracer: Option<&super::tracing::Provider>,
    diag: &mut Diagnostics,
) -> Option<Mapped> {
    l.only(
        diag,
        &[
            "name",
            "address",
            "stat_prefix",
            "filter_chains",
            "per_connection_buffer_limit_bytes",
            "traffic_direction",
            "enable_reuse_port",
            "drain_type",
            "listener_filters",
            "listener_filters_timeout",
            "bind_to_port",
            "metadata",
        ],
    );
    if l.wrapped_bool("enable_reuse_port") == Some(false) {
        l.error(
            diag,
            "enable_reuse_port",
            "ringway always listens with SO_REUSEPORT (one socket per worker)",
        );
    }
    if l.wrapped_bool("bind_to_port") == Some(false) {
        l.error(
            diag,
            "bind_to_port",
            "`bind_to_port: false` (original-destination hand-off) is not supported yet",
        );
    }
    if l.enum_name("drain_type").is_some_and(|d| d != "DEFAULT") {
        l.error(
            diag,
            "drain_type",
            "only the DEFAULT drain type is supported",
        );
    }
    let address_msg = l.child("address");
    let Some(address_msg) = address_msg else {
        l.error(diag, "address", "a listener needs an `address`");
        return None;
    };
    let (host, port) = super::cluster::socket_address(&address_msg, diag, true)?;
    let Ok(ip) = host.parse::<std::net::IpAddr>() else {
        address_msg.error(
            diag,
            "socket_address",
            format!("a listener's address is an IP address, found {host:?}"),
        );
        return None;
    };
    let address = std::net::SocketAddr::new(ip, port);
    let name = match l.str("name") {
        Some(name) => {
            if let Err(message) = crate::config::addr::check_name(name) {
                l.error(diag, "name", message);
            }
            name.to_owned()
        }
        // Envoy names an unnamed listener with a UUID; its address is as unique and
        // says more in logs and /listeners.
        None => format!(
            "listener_{index}_{}",
            address.to_string().replace([':', '[', ']'], "_")
        ),
    };
    let listener_stat_prefix = Some(
        l.str("stat_prefix")
            .map_or_else(|| address.to_string().replace(':', "_"), str::to_owned),
    );
    let chains = l.children("filter_chains");
    if chains.is_empty() {
        l.error(diag, "filter_chains", "a listener needs a filter chain");
        return None;
    }
    // Each chain's network filters; they must all be the same (ringway's listener has
    // one HTTP connection manager and one connection rate), and chains differ only in
    // TLS (see `tls::filter_chains`).
    let mut hcms = Vec::with_capacity(chains.len());
    for chain in &chains {
        chain.only(
            diag,
            &[
                "filters",
                "name",
                "filter_chain_match",
                "transport_socket",
                "transport_socket_connect_timeout",
            ],
        );
        hcms.push(chain_filters(chain, diag));
    }
    let hcms: Vec<_> = hcms.into_iter().collect::<Option<_>>()?;
    let first = &hcms[0];
    for (i, other) in hcms.iter().enumerate().skip(1) {
        if !super::tls::same_message(&first.hcm.0, &other.hcm.0) {
            let at = &other.hcm.1;
            diag.error(
                at.pos,
                &at.path,
                format!("filter chains with different network filters are not supported: ringway's listener has one HTTP connection manager (filter_chains[{i}]'s differs from filter_chains[0]'s)"),
            );
            return None;
        }
        let same_rate = match (&first.rate, &other.rate) {
            (None, None) => true,
            (Some(a), Some(b)) => super::tls::same_message(&a.0, &b.0),
            _ => false,
        };
        if !same_rate {
            let at = other.rate.as_ref().map_or(&other.hcm.1, |r| &r.1);
            diag.error(
                at.pos,
                &at.path,
                format!("filter chains with different network filters are not supported: ringway's listener has one connection rate limit (filter_chains[{i}]'s envoy.filters.network.local_ratelimit differs from filter_chains[0]'s)"),
            );
            return None;
        }
    }
    if let (true, Some((rate, at))) = (hcms.len() > 1, &first.rate) {
        // Envoy gives each filter chain its own bucket unless `share_key` names one;
        // ringway's listener has one.
        let shared = Msg::new(rate, at.clone())
            .str("share_key")
            .is_some_and(|k| !k.is_empty());
        if !shared {
            diag.error(
                at.pos,
                &at.path,
                "envoy.filters.network.local_ratelimit in several filter chains is supported only with `share_key` (Envoy keeps a bucket per chain without it; ringway keeps one per listener)",
            );
            return None;
        }
    }
    let hcm = Msg::new(&first.hcm.0, first.hcm.1.clone());
    let buffer_limit = l
        .wrapped_uint("per_connection_buffer_limit_bytes")
        .map_or(ProxySettings::DEFAULT_BUFFER_LIMIT, |b| {
            usize::try_from(b).unwrap_or(usize::MAX)
        });
    let filters = listener_filters(l, diag);
    let tls = super::tls::filter_chains(&chains, filters.tls_inspector, diag);
    let (forward, details) = super::tls::client_cert_forwarding(&hcm, diag);
    let connection_rate = first.rate.as_ref().and_then(|(rate, at)| {
        super::local_ratelimit::connection_rate(&Msg::new(rate, at.clone()), &name, diag)
    });
    let mut mapped = connection_manager(&hcm, clusters, (&name, node_cluster), diag)?;
    let direction = l.enum_name("traffic_direction");
    if let Some((tracing, tracer)) = super::tracing::listener(
        &hcm,
        direction.as_deref(),
        default_tracer,
        (clusters, node_cluster),
        diag,
    ) {
        mapped.listener.tracing = Some(tracing);
        mapped.tracer = Some(tracer);
    }
    let mut tls = tls?;
    match &mut tls {
        Some(tls) => {
            tls.forward_client_cert = forward;
            tls.client_cert_details = details;
            if let Some(at) = &filters.proxy_protocol_at {
                diag.error(
                    at.pos,
                    &at.path,
                    "the proxy_protocol listener filter together with TLS is not supported yet (the PROXY header would have to be read before the handshake)",
                );
                return None;
            }
        }
        None if forward != ForwardClientCert::Sanitize => {
            hcm.error(
                diag,
                "forward_client_cert_details",
                "on a plaintext listener only SANITIZE is supported: ringway handles x-forwarded-client-cert on TLS listeners",
            );
            return None;
        }
        None => {}
    }
    mapped.listener.connection_rate = connection_rate;
    mapped.listener.name = name;
    mapped.listener.address = Address::Tcp(address);
    mapped.listener.listener_stat_prefix = listener_stat_prefix;
    mapped.listener.proxy.buffer_limit = buffer_limit;
    mapped.listener.proxy_protocol = filters.proxy_protocol;
    mapped.listener.tls = tls;
    Some(mapped)
}

/// A decoded network filter and where its `typed_config` is.
type NetworkFilter<'t> = (prost_reflect::DynamicMessage, Loc<'t>);

/// A filter chain's network filters: optionally `envoy.filters.network.local_ratelimit`,
/// then the HTTP connection manager, last.
struct ChainFilters<'t> {
    hcm: NetworkFilter<'t>,
    rate: Option<NetworkFilter<'t>>,
}

/// A filter chain's network filters, decoded.
fn chain_filters<'t>(chain: &Msg<'_, 't>, diag: &mut Diagnostics) -> Option<ChainFilters<'t>> {
    let filters = chain.children("filters");
    let Some((last, before)) = filters.split_last() else {
        chain.error(
            diag,
            "filters",
            "a filter chain needs a network filter, the http_connection_manager",
        );
        return None;
    };
    let mut rate = None;
    for filter in before {
        filter.only(diag, &["name", "typed_config"]);
        match filter.any("typed_config") {
            Some((type_name, _)) if type_name == schema::HCM => filter.error(
                diag,
                "typed_config",
                "the http_connection_manager must be the last network filter",
            ),
            Some((type_name, limit)) if type_name == schema::NETWORK_LOCAL_RATELIMIT => {
                if rate.is_some() {
                    filter.error(
                        diag,
                        "typed_config",
                        "one envoy.filters.network.local_ratelimit per filter chain is supported",
                    );
                }
                rate = Some((limit, filter.at("typed_config")));
            }
            Some((type_name, _)) => filter.error(
                diag,
                "typed_config",
                format!("{type_name} is not supported before the http_connection_manager (envoy.filters.network.local_ratelimit is)"),
            ),
            None => filter.error(
                diag,
                "typed_config",
                "the network filter needs a `typed_config`",
            ),
        }
    }
    let filter = last;
    filter.only(diag, &["name", "typed_config"]);
    let Some((type_name, hcm_msg)) = filter.any("typed_config") else {
        filter.error(
            diag,
            "typed_config",
            "the network filter needs a `typed_config` (`@type` ...HttpConnectionManager)",
        );
        return None;
    };
    if type_name == schema::NETWORK_LOCAL_RATELIMIT {
        filter.error(
            diag,
            "typed_config",
            "the last network filter must be the http_connection_manager",
        );
        return None;
    }
    if type_name != schema::HCM {
        filter.error(diag, "typed_config", format!("{type_name} is not a network filter; a listener's filter is the http_connection_manager"));
        return None;
    }
    Some(ChainFilters {
        hcm: (hcm_msg, filter.at("typed_config")),
        rate,
    })
}

/// What the listener filters ask for.
struct ListenerFilters<'t> {
    proxy_protocol: Option<ProxyProtocol>,
    /// Where the proxy_protocol filter is (refused with TLS).
    proxy_protocol_at: Option<Loc<'t>>,
    tls_inspector: bool,
}

/// The listener filters: `envoy.filters.listener.proxy_protocol` (a PROXY protocol
/// header, v1 or v2, from any peer, required unless
/// `allow_requests_without_proxy_protocol`) and `envoy.filters.listener.tls_inspector`
/// (which lets filter chains match on the server name and the transport protocol).
fn listener_filters<'t>(l: &Msg<'_, 't>, diag: &mut Diagnostics) -> ListenerFilters<'t> {
    let mut result = ListenerFilters {
        proxy_protocol: None,
        proxy_protocol_at: None,
        tls_inspector: false,
    };
    for f in l.children("listener_filters") {
        f.only(diag, &["name", "typed_config"]);
        match f.any("typed_config") {
            Some((type_name, pp)) if type_name == schema::PROXY_PROTOCOL => {
                let pp = Msg::new(&pp, f.at("typed_config"));
                pp.only(
                    diag,
                    &["allow_requests_without_proxy_protocol", "stat_prefix"],
                );
                let any = |network: &str, prefix_len| Cidr {
                    network: network
                        .parse()
                        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
                    prefix_len,
                };
                result.proxy_protocol = Some(ProxyProtocol {
                    required: !pp.bool("allow_requests_without_proxy_protocol"),
                    // Envoy takes a header from any peer.
                    trusted_sources: vec![any("0.0.0.0", 0), any("::", 0)],
                });
                result.proxy_protocol_at = Some(f.loc.clone());
            }
            Some((type_name, inspector)) if type_name == schema::TLS_INSPECTOR => {
                super::tls::tls_inspector(&Msg::new(&inspector, f.at("typed_config")), diag);
                result.tls_inspector = true;
            }
            Some((type_name, _)) => f.error(
                diag,
                "typed_config",
                format!("{type_name} is not a listener filter"),
            ),
            None => f.error(
                diag,
                "typed_config",
                "a listener filter needs a `typed_config`",
            ),
        }
    }
    result
}

/// The HTTP connection manager of listener `name` (`node_cluster`: the bootstrap's
/// `node.cluster`).
fn connection_manager(
    hcm: &Msg<'_, '_>,
    clusters: &[String],
    (name, node_cluster): (&str, Option<&str>),
    diag: &mut Diagnostics,
) -> Option<Mapped> {
    hcm.only(
        diag,
        &[
            "stat_prefix",
            "codec_type",
            "route_config",
            "http_filters",
            "access_log",
            "use_remote_address",
            "xff_num_trusted_hops",
            "skip_xff_append",
            "internal_address_config",
            "preserve_external_request_id",
            "via",
            "generate_request_id",
            "always_set_request_id_in_response",
            "server_name",
            "server_header_transformation",
            "common_http_protocol_options",
            "http_protocol_options",
            "max_request_headers_kb",
            "stream_idle_timeout",
            "request_timeout",
            "request_headers_timeout",
            "drain_timeout",
            "delayed_close_timeout",
            "upgrade_configs",
            "normalize_path",
            "merge_slashes",
            "path_with_escaped_slashes_action",
            "proxy_100_continue",
            // Read by `tls::client_cert_forwarding`.
            "forward_client_cert_details",
            "set_current_client_cert_details",
            // Read by `tracing::listener`.
            "tracing",
            "request_id_extension",
        ],
    );
    match hcm.enum_name("codec_type").as_deref() {
        None | Some("AUTO") | Some("HTTP1") => {}
        Some(other) => hcm.error(
            diag,
            "codec_type",
            format!(
                "codec_type {other} is not supported until HTTP/2 exists (AUTO serves HTTP/1.1)"
            ),
        ),
    }
    let filters = http_filters(hcm, clusters, (name, node_cluster), diag);
    let internal = internal_addresses(hcm, diag);
    if let Some(h1) = hcm.child("http_protocol_options") {
        h1.only(diag, &[]);
    }
    let mut http1 = Http1Settings::default();
    if let Some(kb) = hcm.wrapped_uint("max_request_headers_kb") {
        http1.max_request_head = usize::try_from(kb * 1024).unwrap_or(usize::MAX);
    }
    // Envoy has no separate request-line limit: the line counts towards the headers'.
    http1.max_request_line = http1.max_request_head;
    let mut idle_timeout = IDLE_TIMEOUT;
    // Every route's limit unless it sets its own (zero: none).
    let mut stream_limit = None;
    let (mut max_requests_per_connection, mut max_connection_duration) = (None, None);
    if let Some(common) = hcm.child("common_http_protocol_options") {
        common.only(
            diag,
            &[
                "idle_timeout",
                "max_headers_count",
                "headers_with_underscores_action",
                "max_stream_duration",
                "max_requests_per_connection",
                "max_connection_duration",
            ],
        );
        // Zero (or unset): no limit, as in Envoy.
        max_requests_per_connection = common
            .wrapped_uint("max_requests_per_connection")
            .filter(|n| *n > 0);
        max_connection_duration = common
            .duration("max_connection_duration")
            .filter(|d| !d.is_zero());
        stream_limit = common
            .duration("max_stream_duration")
            .filter(|d| !d.is_zero());
        if let Some(t) = common.duration("idle_timeout") {
            idle_timeout = if t.is_zero() { DISABLED } else { t };
        }
        if let Some(n) = common.wrapped_uint("max_headers_count") {
            let max = Http1Settings::MAX_HEADERS_LIMIT as u64;
            if n > max {
                common.error(
                    diag,
                    "max_headers_count",
                    format!("at most {max} headers are supported, found {n}"),
                );
            }
            http1.max_headers = usize::try_from(n.min(max)).unwrap_or(100);
        }
        http1.underscores = match common
            .enum_name("headers_with_underscores_action")
            .as_deref()
        {
            None | Some("ALLOW") => Underscores::Allow,
            Some("DROP_HEADER") => Underscores::Drop,
            Some("REJECT_REQUEST") => Underscores::Reject,
            Some(other) => {
                common.error(
                    diag,
                    "headers_with_underscores_action",
                    format!("unknown action {other} (ALLOW, REJECT_REQUEST, DROP_HEADER)"),
                );
                Underscores::Allow
            }
        };
    }
    let stream_idle_timeout =
        hcm.duration("stream_idle_timeout")
            .map_or(
                STREAM_IDLE_TIMEOUT,
                |t| if t.is_zero() { DISABLED } else { t },
            );
    let request_timeout = hcm.duration("request_timeout").filter(|t| !t.is_zero());
    // Envoy has no head timeout unless `request_headers_timeout` is set; the stream idle
    // timeout bounds a stalled head.
    let header_read_timeout = hcm
        .duration("request_headers_timeout")
        .filter(|t| !t.is_zero())
        .unwrap_or(stream_idle_timeout);
    let escaped_slashes = match hcm.enum_name("path_with_escaped_slashes_action").as_deref() {
        None | Some("KEEP_UNCHANGED") | Some("IMPLEMENTATION_SPECIFIC_DEFAULT") => {
            EscapedSlashes::Keep
        }
        Some("REJECT_REQUEST") => EscapedSlashes::Reject,
        Some("UNESCAPE_AND_FORWARD") => EscapedSlashes::Unescape,
        Some(other) => {
            hcm.error(
                diag,
                "path_with_escaped_slashes_action",
                format!("{other} is not supported yet"),
            );
            EscapedSlashes::Keep
        }
    };
    let server_name = || Some(hcm.str("server_name").unwrap_or("envoy").to_owned());
    let transformation = hcm.enum_name("server_header_transformation");
    let (server_header, server_header_if_absent) = match transformation.as_deref() {
        None | Some("OVERWRITE") => (server_name(), false),
        Some("APPEND_IF_ABSENT") => (server_name(), true),
        Some("PASS_THROUGH") => (None, false),
        Some(other) => {
            hcm.error(
                diag,
                "server_header_transformation",
                format!("unknown {other} (OVERWRITE, APPEND_IF_ABSENT, PASS_THROUGH)"),
            );
            (None, false)
        }
    };
    let proxy = ProxySettings {
        trusted_proxies: TrustedProxies {
            hops: u32::try_from(hcm.uint("xff_num_trusted_hops")).unwrap_or(u32::MAX),
            cidrs: Vec::new(),
        },
        request_id: hcm.wrapped_bool("generate_request_id").unwrap_or(true),
        // Envoy appends `via` as written: `envoy.via`, not ringway's `1.1 <name>`.
        via: None,
        server_header,
        server_header_if_absent,
        expect_continue: if hcm.bool("proxy_100_continue") {
            ExpectContinue::Forward
        } else {
            ExpectContinue::Answer
        },
        envoy_headers: !filters.suppress_envoy_headers,
        envoy: Some(EnvoyForwarding {
            use_remote_address: hcm.wrapped_bool("use_remote_address") == Some(true),
            skip_xff_append: hcm.bool("skip_xff_append"),
            internal,
            preserve_external_request_id: hcm.bool("preserve_external_request_id"),
            via: hcm.str("via").map(str::to_owned),
            request_id_in_response: hcm.bool("always_set_request_id_in_response"),
        }),
        ..ProxySettings::default()
    };
    let (virtual_hosts, headers) = match hcm.child("route_config") {
        Some(rc) => route::route_config(&rc, clusters, &filters, stream_limit, diag),
        None => {
            hcm.error(diag, "route_config", "an http_connection_manager needs a static `route_config` (RDS is not supported yet)");
            return None;
        }
    };
    let access_log = access_logs(hcm, diag);
    let listener = Listener {
        tracing: None,
        auth: filters
            .jwt_authn
            .as_ref()
            .map(super::jwt_authn::listener_auth),
        authorization: filters.authorization.clone(),
        connection_rate: None,
        name: String::new(),
        address: Address::Tcp(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
        routes: Vec::new(),
        virtual_hosts,
        http1,
        header_read_timeout,
        idle_timeout,
        stream_idle_timeout,
        request_timeout,
        connection_limit: None,
        max_requests_per_connection,
        max_connection_duration,
        headers,
        cors: None,
        // Envoy tunnels no upgrade unless `upgrade_configs` lists it.
        upgrades: route::upgrade_types(hcm, diag),
        proxy_protocol: None,
        proxy,
        path_normalization: PathNormalization {
            merge_slashes: hcm.bool("merge_slashes"),
            escaped_slashes,
        },
        http_stat_prefix: hcm.str("stat_prefix").map(str::to_owned),
        listener_stat_prefix: None,
        tls: None,
        health_check: filters.health_check,
    };
    Some(Mapped {
        listener,
        access_log,
        jwt_providers: filters.jwt_authn.map(|f| f.providers).unwrap_or_default(),
        tracer: None,
    })
}

/// `internal_address_config.cidr_ranges`: the peers whose requests are internal.
fn internal_addresses(hcm: &Msg<'_, '_>, diag: &mut Diagnostics) -> Vec<Cidr> {
    let mut internal = Vec::new();
    let Some(config) = hcm.child("internal_address_config") else {
        return internal;
    };
    config.only(diag, &["cidr_ranges"]);
    for range in config.children("cidr_ranges") {
        range.only(diag, &["address_prefix", "prefix_len"]);
        let prefix = range.str("address_prefix").unwrap_or_default();
        let len = range.wrapped_uint("prefix_len").unwrap_or(0);
        let Ok(network) = prefix.parse::<std::net::IpAddr>() else {
            range.error(
                diag,
                "address_prefix",
                format!("{prefix:?} is not an IP address"),
            );
            continue;
        };
        let max = if network.is_ipv4() { 32 } else { 128 };
        match u8::try_from(len) {
            Ok(prefix_len) if len <= max => internal.push(Cidr {
                network,
                prefix_len,
            }),
            _ => range.error(
                diag,
                "prefix_len",
                format!("{len} is longer than the address ({max} bits)"),
            ),
        }
    }
    internal
}

/// What the HTTP filters configure beyond the router itself.
#[derive(Debug, Default)]
pub(crate) struct HttpFilters {
    /// The router's `suppress_envoy_headers`.
    pub suppress_envoy_headers: bool,
    /// The CORS filter's name, when the chain has one: per-route and per-host
    /// `typed_per_filter_config` entries under it hold `CorsPolicy`s.
    pub cors: Option<String>,
    /// The health-check filter, when the chain has one.
    pub health_check: Option<HealthCheckFilter>,
    /// The jwt_authn filter, when the chain has one: per-route and per-host entries
    /// under its name hold `PerRouteConfig`s.
    pub jwt_authn: Option<super::jwt_authn::JwtFilter>,
    /// The RBAC filter's name, when the chain has one: per-route and per-host
    /// `typed_per_filter_config` entries under it hold `RBACPerRoute`s.
    pub rbac: Option<String>,
    /// The RBAC filter's policy (`None`: no filter, or one without rules).
    pub authorization: Option<crate::config::authz::AuthzPolicy>,
    /// The local_ratelimit filter, when the chain has one: per-route and per-host
    /// entries under its name hold `LocalRateLimit`s, and routes get its policy.
    pub local_ratelimit: Option<super::local_ratelimit::LocalRateLimitFilter>,
    /// The fault filter, when the chain has one: per-route and per-host entries under
    /// its name hold `HTTPFault`s, which replace its own.
    pub fault: Option<super::fault::FaultFilter>,
}

/// The HTTP filters: optionally the CORS, health-check, jwt_authn, RBAC and
/// local_ratelimit filters, then the router, last.
fn http_filters(
    hcm: &Msg<'_, '_>,
    clusters: &[String],
    (listener, node_cluster): (&str, Option<&str>),
    diag: &mut Diagnostics,
) -> HttpFilters {
    let mut result = HttpFilters::default();
    let filters = hcm.children("http_filters");
    if filters.is_empty() {
        hcm.error(
            diag,
            "http_filters",
            "`http_filters` needs the router (envoy.filters.http.router), last",
        );
        return result;
    }
    let last = filters.len() - 1;
    // Where the local_ratelimit filter sits among those ringway orders itself.
    let (mut cors_at, mut auth_at, mut limit_at) = (None, None, None);
    for (i, f) in filters.iter().enumerate() {
        match f.any("typed_config").map(|(t, _)| t) {
            Some(t) if t == schema::CORS => {
                cors_at.get_or_insert(i);
            }
            Some(t) if t == schema::JWT_AUTHN || t == schema::RBAC => {
                auth_at.get_or_insert(i);
            }
            Some(t) if t == schema::LOCAL_RATELIMIT => {
                limit_at.get_or_insert(i);
            }
            _ => {}
        }
    }
    for (i, f) in filters.iter().enumerate() {
        f.only(diag, &["name", "typed_config", "is_optional"]);
        let is_router = match f.any("typed_config") {
            Some((type_name, router)) if type_name == schema::ROUTER => {
                let router = Msg::new(&router, f.at("typed_config"));
                router.only(diag, &["dynamic_stats", "suppress_envoy_headers"]);
                result.suppress_envoy_headers |= router.bool("suppress_envoy_headers");
                if router.wrapped_bool("dynamic_stats") == Some(false) {
                    router.error(
                        diag,
                        "dynamic_stats",
                        "`dynamic_stats: false` is not supported: ringway always counts per-cluster response codes",
                    );
                }
                true
            }
            Some((type_name, cors)) if type_name == schema::CORS => {
                Msg::new(&cors, f.at("typed_config")).only(diag, &[]);
                let name = f.str("name").unwrap_or("envoy.filters.http.cors");
                result.cors = Some(name.to_owned());
                false
            }
            Some((type_name, jwt)) if type_name == schema::JWT_AUTHN => {
                let name = f.str("name").unwrap_or("envoy.filters.http.jwt_authn");
                let jwt = Msg::new(&jwt, f.at("typed_config"));
                let decoded = super::jwt_authn::filter(&jwt, name, clusters, diag);
                if result.jwt_authn.is_some() {
                    f.error(
                        diag,
                        "typed_config",
                        "one jwt_authn filter per connection manager is supported",
                    );
                } else {
                    result.jwt_authn = Some(decoded);
                }
                false
            }
            Some((type_name, rbac)) if type_name == schema::RBAC => {
                if result.rbac.is_some() {
                    f.error(
                        diag,
                        "typed_config",
                        "one RBAC filter per connection manager is supported for now",
                    );
                }
                let name = f.str("name").unwrap_or("envoy.filters.http.rbac");
                result.rbac = Some(name.to_owned());
                result.authorization =
                    super::rbac::filter(&Msg::new(&rbac, f.at("typed_config")), diag);
                false
            }
            Some((type_name, limit)) if type_name == schema::LOCAL_RATELIMIT => {
                let name = f.str("name").unwrap_or(super::local_ratelimit::FILTER);
                let limit = Msg::new(&limit, f.at("typed_config"));
                let decoded =
                    super::local_ratelimit::filter(&limit, name, listener, node_cluster, diag);
                if result.local_ratelimit.is_some() {
                    f.error(
                        diag,
                        "typed_config",
                        "one local_ratelimit filter per connection manager is supported",
                    );
                } else {
                    result.local_ratelimit = Some(decoded);
                }
                false
            }
            Some((type_name, fault)) if type_name == schema::FAULT => {
                let name = f.str("name").unwrap_or(super::fault::FILTER);
                let fault = Msg::new(&fault, f.at("typed_config"));
                let decoded = super::fault::filter(&fault, name, clusters, diag);
                if result.fault.is_some() {
                    f.error(
                        diag,
                        "typed_config",
                        "one fault filter per connection manager is supported",
                    );
                } else {
                    result.fault = Some(decoded);
                }
                false
            }
            Some((type_name, hc)) if type_name == schema::HEALTH_CHECK => {
                let hc = Msg::new(&hc, f.at("typed_config"));
                hc.only(diag, &["pass_through_mode", "headers", "cache_time"]);
                result.health_check = Some(HealthCheckFilter {
                    pass_through: hc.wrapped_bool("pass_through_mode") == Some(true),
                    headers: hc
                        .children("headers")
                        .iter()
                        .filter_map(|h| route::header_matcher(h, diag))
                        .collect(),
                });
                false
            }
            Some((type_name, _)) => {
                f.error(
                    diag,
                    "typed_config",
                    format!("{type_name} is not an HTTP filter"),
                );
                false
            }
            // Envoy >= 1.22 requires `typed_config`; older files name the router only,
            // and this one filter is accepted that way (with a warning).
            None if f.str("name") == Some("envoy.filters.http.router") => {
                tracing::warn!(
                    "{}: the router filter has no typed_config; Envoy >= 1.22 refuses that",
                    f.loc.path
                );
                true
            }
            None => {
                f.error(
                    diag,
                    "typed_config",
                    format!(
                        "Didn't find a registered implementation for '{}' with type URL: ''",
                        f.str("name").unwrap_or_default()
                    ),
                );
                false
            }
        };
        if i == last && !is_router {
            f.error(
                diag,
                "typed_config",
                "the last HTTP filter must be the router",
            );
        } else if i != last && is_router {
            f.error(
                diag,
                "typed_config",
                "the router must be the last HTTP filter",
            );
        }
    }
    if let (Some(limit), Some(at)) = (&mut result.local_ratelimit, limit_at) {
        use crate::config::ratelimit::FilterPosition;
        limit.position = if cors_at.is_some_and(|c| at < c) {
            FilterPosition::BeforeCors
        } else if auth_at.is_some_and(|a| at > a) {
            FilterPosition::AfterAuth
        } else {
            FilterPosition::BeforeAuth
        };
    }
    result
}

/// The HCM's access loggers: file and stdout/stderr loggers, with Envoy's default format
/// or the logger's own (`log_format`, or the deprecated `format` / `json_format`).
fn access_logs(hcm: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<AccessLogConfig> {
    let mut result = None;
    for log in hcm.children("access_log") {
        log.only(diag, &["name", "typed_config"]);
        let Some((type_name, payload)) = log.any("typed_config") else {
            log.error(
                diag,
                "typed_config",
                "an access logger needs a `typed_config`",
            );
            continue;
        };
        let logger = Msg::new(&payload, log.at("typed_config"));
        let (path, format) = match type_name.as_str() {
            schema::FILE_LOG => {
                logger.only(
                    diag,
                    &[
                        "path",
                        "log_format",
                        "format",
                        "json_format",
                        "typed_json_format",
                    ],
                );
                let format = if let Some(text) = logger.str("format") {
                    checked_text(&logger, "format", text, false, diag)
                } else if logger.has("json_format") || logger.has("typed_json_format") {
                    let field = if logger.has("json_format") {
                        "json_format"
                    } else {
                        "typed_json_format"
                    };
                    json_format(&logger, field, false, diag)
                } else {
                    log_format(&logger, diag)
                };
                let path = match logger.str("path") {
                    Some("/dev/stdout") => AccessLogPath::Stdout,
                    Some(path) => AccessLogPath::File(path.into()),
                    None => continue,
                };
                (path, format)
            }
            schema::STDOUT_LOG | schema::STDERR_LOG => {
                logger.only(diag, &["log_format"]);
                let path = if type_name == schema::STDOUT_LOG {
                    AccessLogPath::Stdout
                } else {
                    AccessLogPath::File("/dev/stderr".into())
                };
                (path, log_format(&logger, diag))
            }
            other => {
                log.error(
                    diag,
                    "typed_config",
                    format!("{other} is not an access logger"),
                );
                continue;
            }
        };
        let Some(format) = format else {
            continue;
        };
        if result.is_some() {
            log.error(
                diag,
                "typed_config",
                "one access logger per listener is supported for now",
            );
            continue;
        }
        result = Some(AccessLogConfig {
            path,
            format,
            buffer: AccessLogConfig::DEFAULT_BUFFER,
            flush_interval: AccessLogConfig::DEFAULT_FLUSH_INTERVAL,
        });
    }
    result
}

/// A logger's `log_format` (`SubstitutionFormatString`), or Envoy's default format.
fn log_format(logger: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<AccessLogFormat> {
    let Some(f) = logger.child("log_format") else {
        return Some(AccessLogFormat::EnvoyText {
            format: log_format::DEFAULT.to_owned(),
            omit_empty_values: false,
        });
    };
    f.only(
        diag,
        &[
            "text_format",
            "text_format_source",
            "json_format",
            "omit_empty_values",
        ],
    );
    let omit = f.bool("omit_empty_values");
    if let Some(text) = f.str("text_format") {
        return checked_text(&f, "text_format", text, omit, diag);
    }
    if let Some(source) = f.child("text_format_source") {
        let bytes = super::data_source(&source, diag)?;
        let Ok(text) = String::from_utf8(bytes) else {
            f.error(diag, "text_format_source", "the format is not UTF-8");
            return None;
        };
        return checked_text(&f, "text_format_source", &text, omit, diag);
    }
    if f.has("json_format") {
        return json_format(&f, "json_format", omit, diag);
    }
    // An empty SubstitutionFormatString: Envoy's default.
    Some(AccessLogFormat::EnvoyText {
        format: log_format::DEFAULT.to_owned(),
        omit_empty_values: omit,
    })
}

/// A text format, checked (Envoy prints it as it is: its own newline ends the line).
fn checked_text(
    m: &Msg<'_, '_>,
    field: &str,
    text: &str,
    omit_empty_values: bool,
    diag: &mut Diagnostics,
) -> Option<AccessLogFormat> {
    match log_format::parse(text) {
        Ok(_) => Some(AccessLogFormat::EnvoyText {
            format: text.to_owned(),
            omit_empty_values,
        }),
        Err(message) => {
            m.error(diag, field, message);
            None
        }
    }
}

/// A `json_format` Struct, read from the document to keep its key order: each value a
/// format string (nested objects and non-string values are not supported yet).
fn json_format(
    m: &Msg<'_, '_>,
    field: &str,
    omit_empty_values: bool,
    diag: &mut Diagnostics,
) -> Option<AccessLogFormat> {
    let at = m.at(field);
    let Some(super::tree::Value::Map(entries)) = at.tree.map(|t| &t.value) else {
        m.error(
            diag,
            field,
            "`json_format` must be a mapping of keys to format strings",
        );
        return None;
    };
    let mut fields = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(text) = entry.value.as_str() else {
            let path = format!("{}.{}", at.path, entry.key);
            diag.error(
                entry.value.pos,
                &path,
                format!(
                    "`json_format` values other than format strings (here {}) are not supported yet",
                    entry.value.describe()
                ),
            );
            continue;
        };
        if let Err(message) = log_format::parse(text) {
            let path = format!("{}.{}", at.path, entry.key);
            diag.error(entry.value.pos, &path, message);
            continue;
        }
        fields.push((entry.key.clone(), text.to_owned()));
    }
    Some(AccessLogFormat::EnvoyJson {
        fields,
        omit_empty_values,
    })
}
