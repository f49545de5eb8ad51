//! Envoy's `Cluster` onto ringway's clusters: `STATIC`, `STRICT_DNS` and `LOGICAL_DNS`
//! with a `load_assignment`, round robin, and the HTTP/1.1 protocol options.
//!
//! Design: what a cluster needs from the later issues (other balancers, health checks,
//! outlier detection, circuit-breaker thresholds) is refused by name until it exists.
//! A `transport_socket` is TLS (`UpstreamTlsContext`, mapped in `tls.rs`) or
//! `raw_buffer`. Envoy's circuit breakers are process-wide per cluster while ringway's pool
//! limits are per worker and endpoint, so only Envoy's default thresholds are accepted.

use std::net::{IpAddr, SocketAddr};

use super::cursor::Msg;
use super::{schema, DISABLED};
use crate::config::addr::parse_host_port;
use crate::config::error::Diagnostics;
use crate::config::model::{
    Address, Cluster, DnsDiscovery, DnsKind, DnsName, Endpoint, Endpoints, LookupFamily,
    PoolSettings,
};

/// Most requests one endpoint gets relative to another (the native format's bound).
const MAX_WEIGHT: u64 = 1000;

pub(crate) fn cluster(c: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Cluster> {
    c.only(
        diag,
        &[
            "name",
            "type",
            "connect_timeout",
            "lb_policy",
            "load_assignment",
            "dns_lookup_family",
            "dns_refresh_rate",
            "typed_extension_protocol_options",
            "circuit_breakers",
            "http_protocol_options",
            "common_http_protocol_options",
            "transport_socket",
        ],
    );
    let name = c.str("name")?.to_owned();
    if let Err(message) = crate::config::addr::check_name(&name) {
        c.error(diag, "name", message);
    }
    let kind = match c.enum_name("type").as_deref() {
        None | Some("STATIC") => None,
        Some("STRICT_DNS") => Some(DnsKind::Strict),
        Some("LOGICAL_DNS") => Some(DnsKind::Logical),
        Some(other) => {
            c.error(
                diag,
                "type",
                format!("cluster type {other} is not supported yet (STATIC, STRICT_DNS and LOGICAL_DNS are)"),
            );
            return None;
        }
    };
    match c.enum_name("lb_policy").as_deref() {
        None | Some("ROUND_ROBIN") => {}
        Some(other) => c.error(
            diag,
            "lb_policy",
            format!("lb_policy {other} is not supported yet (ROUND_ROBIN is)"),
        ),
    }
    if let Some(cb) = c.child("circuit_breakers") {
        circuit_breakers(&cb, diag);
    }
    let mut pool = PoolSettings::default();
    if let Some(options) = c.child("common_http_protocol_options") {
        common_options(&options, &mut pool, diag);
    }
    if let Some(h1) = c.child("http_protocol_options") {
        h1.only(diag, &[]);
    }
    let (auto_sni, auto_san_validation) = protocol_options(c, &mut pool, diag);
    let mut tls = match c.child("transport_socket") {
        Some(ts) => super::tls::cluster_socket(&ts, &name, diag),
        None => Some(None),
    };
    if auto_sni {
        match &mut tls {
            Some(Some(t)) if t.sni.is_none() => {
                t.auto_sni = true;
                // The server's certificate is then checked against the name sent.
                t.verify_name |= auto_san_validation && t.validation.is_some();
            }
            Some(Some(_)) => c.error(
                diag,
                "typed_extension_protocol_options",
                "`auto_sni` and the UpstreamTlsContext's `sni` exclude each other",
            ),
            Some(None) => c.error(
                diag,
                "typed_extension_protocol_options",
                "`auto_sni` needs a TLS transport socket",
            ),
            None => {}
        }
    }
    let connect_timeout = c
        .duration("connect_timeout")
        .unwrap_or(Cluster::DEFAULT_CONNECT_TIMEOUT);
    let names = match c.child("load_assignment") {
        Some(la) => load_assignment(&la, diag),
        None => {
            c.error(
                diag,
                "load_assignment",
                "a cluster needs `load_assignment` with its endpoints",
            );
            return None;
        }
    };
    let endpoints = match kind {
        None => {
            let mut endpoints = Vec::with_capacity(names.len());
            for (host, port, weight, at) in names {
                match host.parse::<IpAddr>() {
                    Ok(ip) => endpoints.push(Endpoint {
                        address: Address::Tcp(SocketAddr::new(ip, port)),
                        weight,
                    }),
                    Err(_) => diag.error(
                        at.pos,
                        &at.path,
                        format!("a STATIC cluster's endpoints are IP addresses; {host:?} is a name (use type: STRICT_DNS)"),
                    ),
                }
            }
            Endpoints::Static(endpoints)
        }
        Some(kind) => {
            if kind == DnsKind::Logical && names.len() != 1 {
                c.error(
                    diag,
                    "load_assignment",
                    "a LOGICAL_DNS cluster has exactly one endpoint",
                );
            }
            let family = match c.enum_name("dns_lookup_family").as_deref() {
                None | Some("AUTO") => LookupFamily::Auto,
                Some("V4_ONLY") => LookupFamily::V4Only,
                Some("V6_ONLY") => LookupFamily::V6Only,
                Some("V4_PREFERRED") => LookupFamily::V4Preferred,
                Some(_) => LookupFamily::All,
            };
            Endpoints::Dns(DnsDiscovery {
                kind,
                refresh_rate: c
                    .duration("dns_refresh_rate")
                    .unwrap_or(DnsDiscovery::DEFAULT_REFRESH_RATE),
                family,
                names: names
                    .into_iter()
                    .map(|(host, port, weight, _)| DnsName { host, port, weight })
                    .collect(),
                respect_dns_ttl: false,
            })
        }
    };
    Some(Cluster {
        name,
        endpoints,
        connect_timeout,
        pool,
        proxy_protocol: None,
        // A TLS error is recorded; the cluster stays known so that routes naming it do
        // not add "unknown cluster" errors.
        tls: tls.flatten(),
    })
}

/// `(host, port, weight, where)` of each endpoint.
fn load_assignment<'t>(
    la: &Msg<'_, 't>,
    diag: &mut Diagnostics,
) -> Vec<(String, u16, u32, super::cursor::Loc<'t>)> {
    la.only(diag, &["cluster_name", "endpoints"]);
    let mut out = Vec::new();
    for locality in la.children("endpoints") {
        locality.only(diag, &["locality", "lb_endpoints", "priority"]);
        if locality.uint("priority") != 0 {
            locality.error(
                diag,
                "priority",
                "endpoint priorities are not supported yet",
            );
        }
        for lb in locality.children("lb_endpoints") {
            lb.only(
                diag,
                &["endpoint", "load_balancing_weight", "health_status"],
            );
            if let Some(status) = lb.enum_name("health_status") {
                if status != "UNKNOWN" && status != "HEALTHY" {
                    lb.error(
                        diag,
                        "health_status",
                        format!("health_status {status} is not supported yet"),
                    );
                }
            }
            let weight = lb.wrapped_uint("load_balancing_weight").unwrap_or(1);
            if weight > MAX_WEIGHT {
                lb.error(
                    diag,
                    "load_balancing_weight",
                    format!("ringway's weights go up to {MAX_WEIGHT}, found {weight}"),
                );
            }
            let Some(endpoint) = lb.child("endpoint") else {
                lb.error(diag, "endpoint", "`endpoint` is required");
                continue;
            };
            endpoint.only(diag, &["address"]);
            let Some(address) = endpoint.child("address") else {
                endpoint.error(diag, "address", "`address` is required");
                continue;
            };
            if let Some((host, port)) = socket_address(&address, diag, false) {
                let at = address.loc.clone();
                out.push((host, port, u32::try_from(weight.max(1)).unwrap_or(1), at));
            }
        }
    }
    out
}

/// A core `Address` that must be a `socket_address`: its host text and port.
/// `zero_port_ok` for listeners (the system picks).
pub(crate) fn socket_address(
    address: &Msg<'_, '_>,
    diag: &mut Diagnostics,
    zero_port_ok: bool,
) -> Option<(String, u16)> {
    address.only(diag, &["socket_address"]);
    let Some(sa) = address.child("socket_address") else {
        address.error(
            diag,
            "socket_address",
            "only `socket_address` addresses are supported (not pipe or envoy_internal_address)",
        );
        return None;
    };
    sa.only(diag, &["address", "port_value", "protocol", "ipv4_compat"]);
    if sa.enum_name("protocol").is_some_and(|p| p != "TCP") {
        sa.error(diag, "protocol", "only TCP is supported");
    }
    let host = sa.str("address").unwrap_or_default();
    let port = sa.uint("port_value");
    let Ok(port) = u16::try_from(port) else {
        sa.error(
            diag,
            "port_value",
            format!("{port} is not a port (0..65535)"),
        );
        return None;
    };
    if port == 0 && !zero_port_ok {
        sa.error(diag, "port_value", "an endpoint needs a port");
        return None;
    }
    let text = if host.contains(':') {
        format!("[{host}]:{}", port.max(1))
    } else {
        format!("{host}:{}", port.max(1))
    };
    match parse_host_port(&text, None) {
        Ok((host, _)) => Some((host, port)),
        Err(message) => {
            sa.error(diag, "address", message);
            None
        }
    }
}

/// Envoy's defaults per priority (1024 connections, pending and requests, 3 retries)
/// are what ringway's per-worker pools allow; other values wait for the resilience
/// issue, where breakers become process-wide as in Envoy.
fn circuit_breakers(cb: &Msg<'_, '_>, diag: &mut Diagnostics) {
    cb.only(diag, &["thresholds"]);
    for t in cb.children("thresholds") {
        t.only(
            diag,
            &[
                "priority",
                "max_connections",
                "max_pending_requests",
                "max_requests",
                "max_retries",
            ],
        );
        for (field, default) in [
            ("max_connections", 1024),
            ("max_pending_requests", 1024),
            ("max_requests", 1024),
            ("max_retries", 3),
        ] {
            if let Some(v) = t.wrapped_uint(field) {
                if v != default {
                    t.error(
                        diag,
                        field,
                        format!("circuit-breaker thresholds other than Envoy's defaults are not supported yet ({field} is {default})"),
                    );
                }
            }
        }
    }
}

fn common_options(o: &Msg<'_, '_>, pool: &mut PoolSettings, diag: &mut Diagnostics) {
    o.only(diag, &["idle_timeout"]);
    if let Some(t) = o.duration("idle_timeout") {
        pool.idle_timeout = if t.is_zero() { DISABLED } else { t };
    }
}

/// `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]`:
/// HTTP/1.1 (explicitly, or as the default) and the common options.
/// Returns `upstream_http_protocol_options`' `auto_sni` and `auto_san_validation`.
fn protocol_options(
    c: &Msg<'_, '_>,
    pool: &mut PoolSettings,
    diag: &mut Diagnostics,
) -> (bool, bool) {
    let mut auto = (false, false);
    for (_, at, type_name, options) in c.any_map("typed_extension_protocol_options") {
        if type_name != schema::HTTP_OPTIONS {
            diag.error(
                at.pos,
                &at.path,
                format!("unsupported protocol options {type_name}"),
            );
            continue;
        }
        let o = Msg::new(&options, at);
        o.only(
            diag,
            &[
                "explicit_http_config",
                "common_http_protocol_options",
                "upstream_http_protocol_options",
            ],
        );
        if let Some(u) = o.child("upstream_http_protocol_options") {
            u.only(diag, &["auto_sni", "auto_san_validation"]);
            auto = (u.bool("auto_sni"), u.bool("auto_san_validation"));
        }
        if let Some(explicit) = o.child("explicit_http_config") {
            explicit.only(diag, &["http_protocol_options"]);
            if !explicit.has("http_protocol_options") {
                explicit.error(
                    diag,
                    "http_protocol_options",
                    "only HTTP/1.1 upstreams are supported until HTTP/2 exists",
                );
            }
            if let Some(h1) = explicit.child("http_protocol_options") {
                h1.only(diag, &[]);
            }
        }
        if let Some(common) = o.child("common_http_protocol_options") {
            common_options(&common, pool, diag);
        }
    }
    auto
}
