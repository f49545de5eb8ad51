//! Envoy's `Cluster` onto ringway's clusters: `STATIC`, `STRICT_DNS` and `LOGICAL_DNS`
//! with a `load_assignment` (priorities, localities, declared health), the load
//! balancers and their configs, `health_checks` (`health.rs`), `outlier_detection`
//! (`outlier.rs`), and the HTTP/1.1 protocol options.
//!
//! Design: what a cluster needs from the later issues (zone aware routing, typed
//! load-balancing policies) is refused by name until it exists.
//! A `*_lb_config` of another policy than `lb_policy` is refused rather than ignored.
//! `common_lb_config.update_merge_window` is accepted and has no effect: it batches EDS
//! updates, and a static bootstrap has none (DNS answers and health changes are applied
//! as they come). A DNS cluster's endpoints take no `health_status` but the default
//! (their health is what checks find) and a `hostname` only equal to the name resolved
//! (which is what Envoy gives its hosts).
//! A `transport_socket` is TLS (`UpstreamTlsContext`, mapped in `tls.rs`) or
//! `raw_buffer`. `circuit_breakers` are mapped in `resilience.rs`.

use std::net::{IpAddr, SocketAddr};

use super::cursor::{Loc, Msg};
use super::{schema, DISABLED};
use crate::config::addr::parse_host_port;
use crate::config::balance::{
    check_locality_weights, check_priorities, is_prime, Balancing, DeclaredHealth, LbPolicy,
    Locality,
};
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
            "least_request_lb_config",
            "ring_hash_lb_config",
            "maglev_lb_config",
            "round_robin_lb_config",
            "common_lb_config",
            "health_checks",
            "outlier_detection",
            "respect_dns_ttl",
            "load_assignment",
            "dns_lookup_family",
            "dns_refresh_rate",
            "typed_extension_protocol_options",
            "circuit_breakers",
            "http_protocol_options",
            "common_http_protocol_options",
            "max_requests_per_connection",
            "transport_socket",
            "track_cluster_stats",
        ],
    );
    // `track_cluster_stats`: per-endpoint stats; the timeout-budget and request/response
    // size histograms are not kept (`only` refuses them by name when turned on).
    if let Some(t) = c.child("track_cluster_stats") {
        t.only(diag, &["per_endpoint_stats"]);
    }
    let per_endpoint_stats = c
        .child("track_cluster_stats")
        .is_some_and(|t| t.bool("per_endpoint_stats"));
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
    let mut balancing = Balancing {
        policy: lb_policy(c, diag).unwrap_or_default(),
        ..Balancing::default()
    };
    if let Some(common) = c.child("common_lb_config") {
        common_lb_config(&common, &mut balancing, diag);
    }
    let checks = c.children("health_checks");
    if let Some(second) = checks.get(1) {
        diag.error(
            second.loc.pos,
            &second.loc.path,
            "more than one health check is not supported yet (ringway runs one per cluster)",
        );
    }
    let health_check = checks
        .first()
        .and_then(|hc| super::health::health_check(hc, diag));
    let outlier_detection = c
        .child("outlier_detection")
        .and_then(|o| super::outlier::outlier_detection(&o, diag));
    let circuit_breakers = c
        .child("circuit_breakers")
        .map(|cb| super::resilience::circuit_breakers(&cb, diag))
        .unwrap_or_default();
    let mut pool = PoolSettings::default();
    // The cluster's own (deprecated) field; the protocol options' take precedence.
    if let Some(n) = c.wrapped_uint("max_requests_per_connection") {
        pool.max_requests_per_connection = requests_per_connection(n);
    }
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
    let hosts = match c.child("load_assignment") {
        Some(la) => load_assignment(&la, &mut balancing, diag),
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
            let mut endpoints = Vec::with_capacity(hosts.len());
            for h in hosts {
                match h.host.parse::<IpAddr>() {
                    Ok(ip) => endpoints.push(Endpoint {
                        address: Address::Tcp(SocketAddr::new(ip, h.port)),
                        weight: h.weight,
                        priority: h.priority,
                        locality: h.locality,
                        locality_weight: h.locality_weight,
                        health: h.health,
                        hostname: h.hostname,
                        health_check_port: h.health_check_port,
                    }),
                    Err(_) => diag.error(
                        h.at.pos,
                        &h.at.path,
                        format!("a STATIC cluster's endpoints are IP addresses; {:?} is a name (use type: STRICT_DNS)", h.host),
                    ),
                }
            }
            Endpoints::Static(endpoints)
        }
        Some(kind) => {
            if kind == DnsKind::Logical && hosts.len() != 1 {
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
                names: hosts.into_iter().map(|h| dns_name(h, diag)).collect(),
                respect_dns_ttl: c.bool("respect_dns_ttl"),
            })
        }
    };
    Some(Cluster {
        per_endpoint_stats,
        circuit_breakers,
        name,
        endpoints,
        connect_timeout,
        pool,
        proxy_protocol: None,
        // A TLS error is recorded; the cluster stays known so that routes naming it do
        // not add "unknown cluster" errors.
        tls: tls.flatten(),
        balancing,
        health_check,
        outlier_detection,
    })
}

/// `lb_policy` with its config; `None` (an error recorded) when refused.
fn lb_policy(c: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<LbPolicy> {
    let name = c.enum_name("lb_policy");
    let name = name.as_deref().unwrap_or("ROUND_ROBIN");
    let own = match name {
        "ROUND_ROBIN" => "round_robin_lb_config",
        "LEAST_REQUEST" => "least_request_lb_config",
        "RING_HASH" => "ring_hash_lb_config",
        "MAGLEV" => "maglev_lb_config",
        _ => "",
    };
    for config in [
        "round_robin_lb_config",
        "least_request_lb_config",
        "ring_hash_lb_config",
        "maglev_lb_config",
    ] {
        if config != own && c.has(config) {
            c.error(
                diag,
                config,
                format!("`{config}` does not apply to lb_policy {name}"),
            );
        }
    }
    match name {
        "ROUND_ROBIN" => {
            if let Some(rr) = c.child("round_robin_lb_config") {
                rr.only(diag, &[]);
            }
            Some(LbPolicy::RoundRobin)
        }
        "RANDOM" => Some(LbPolicy::Random),
        "LEAST_REQUEST" => {
            let mut choice_count = LbPolicy::DEFAULT_CHOICE_COUNT;
            let mut active_request_bias = LbPolicy::DEFAULT_ACTIVE_REQUEST_BIAS;
            if let Some(lr) = c.child("least_request_lb_config") {
                lr.only(diag, &["choice_count", "active_request_bias"]);
                // At least 2 by Envoy's validation rules.
                if let Some(n) = lr.wrapped_uint("choice_count") {
                    choice_count = u32::try_from(n).unwrap_or(u32::MAX);
                }
                // A RuntimeDouble: ringway's runtime has no such key, so its default
                // applies, as in Envoy without a runtime override.
                if let Some(bias) = lr.child("active_request_bias") {
                    bias.only(diag, &["default_value", "runtime_key"]);
                    active_request_bias = bias.double("default_value");
                    if !(active_request_bias >= 0.0 && active_request_bias.is_finite()) {
                        bias.error(
                            diag,
                            "default_value",
                            format!("active_request_bias must be at least 0, found {active_request_bias}"),
                        );
                        return None;
                    }
                }
            }
            Some(LbPolicy::LeastRequest {
                choice_count,
                active_request_bias,
            })
        }
        "RING_HASH" => {
            let (mut min, mut max) = (LbPolicy::DEFAULT_MIN_RING_SIZE, LbPolicy::MAX_RING_SIZE);
            if let Some(rh) = c.child("ring_hash_lb_config") {
                rh.only(
                    diag,
                    &["minimum_ring_size", "maximum_ring_size", "hash_function"],
                );
                if let Some(f) = rh.enum_name("hash_function").filter(|f| f != "XX_HASH") {
                    rh.error(
                        diag,
                        "hash_function",
                        format!("hash_function {f} is not supported yet (XX_HASH is)"),
                    );
                }
                // Both at most 8M by Envoy's validation rules.
                min = rh.wrapped_uint("minimum_ring_size").unwrap_or(min);
                max = rh.wrapped_uint("maximum_ring_size").unwrap_or(max);
                if max == 0 {
                    rh.error(
                        diag,
                        "maximum_ring_size",
                        "maximum_ring_size must be at least 1",
                    );
                    return None;
                }
                if min > max {
                    rh.error(
                        diag,
                        "minimum_ring_size",
                        format!("minimum_ring_size ({min}) > maximum_ring_size ({max})"),
                    );
                    return None;
                }
            }
            Some(LbPolicy::RingHash {
                min_ring_size: min,
                max_ring_size: max,
            })
        }
        "MAGLEV" => {
            let mut table_size = LbPolicy::DEFAULT_TABLE_SIZE;
            if let Some(m) = c.child("maglev_lb_config") {
                m.only(diag, &["table_size"]);
                // At most 5,000,011 by Envoy's validation rules.
                table_size = m.wrapped_uint("table_size").unwrap_or(table_size);
                if !is_prime(table_size) {
                    m.error(
                        diag,
                        "table_size",
                        format!("the Maglev table_size must be a prime number, found {table_size}"),
                    );
                    return None;
                }
            }
            Some(LbPolicy::Maglev { table_size })
        }
        "CLUSTER_PROVIDED" => {
            c.error(
                diag,
                "lb_policy",
                "lb_policy CLUSTER_PROVIDED is not supported yet (it goes with ORIGINAL_DST clusters, which ringway does not have)",
            );
            None
        }
        "LOAD_BALANCING_POLICY_CONFIG" => {
            c.error(
                diag,
                "lb_policy",
                "lb_policy LOAD_BALANCING_POLICY_CONFIG is not supported yet (typed `load_balancing_policy` extensions are not implemented; use lb_policy)",
            );
            None
        }
        other => {
            c.error(
                diag,
                "lb_policy",
                format!("lb_policy {other} is not supported yet (ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH and MAGLEV are)"),
            );
            None
        }
    }
}

/// `common_lb_config`: the panic threshold and locality weighting.
fn common_lb_config(cc: &Msg<'_, '_>, balancing: &mut Balancing, diag: &mut Diagnostics) {
    cc.only(
        diag,
        &[
            "healthy_panic_threshold",
            "locality_weighted_lb_config",
            "update_merge_window",
            "zone_aware_lb_config",
            "consistent_hashing_lb_config",
        ],
    );
    if cc.has("zone_aware_lb_config") {
        cc.error(
            diag,
            "zone_aware_lb_config",
            "zone_aware_lb_config is not supported yet (it needs a local cluster, `cluster_manager.local_cluster_name`, which ringway does not have)",
        );
    }
    if cc.has("consistent_hashing_lb_config") {
        cc.error(
            diag,
            "consistent_hashing_lb_config",
            "consistent_hashing_lb_config is not supported yet (ring hash and Maglev hash each endpoint's address, without bounded load)",
        );
    }
    if let Some(p) = cc.child("healthy_panic_threshold") {
        // From 0 to 100 by Envoy's validation rules.
        p.only(diag, &["value"]);
        balancing.panic_threshold = p.double("value");
    }
    if let Some(l) = cc.child("locality_weighted_lb_config") {
        l.only(diag, &[]);
        balancing.locality_weighted = true;
    }
}

/// An endpoint of a `load_assignment`, with where it and some of its fields are.
struct LbHost<'t> {
    host: String,
    port: u16,
    weight: u32,
    priority: u32,
    locality: Locality,
    locality_weight: Option<u32>,
    health: DeclaredHealth,
    hostname: Option<String>,
    health_check_port: Option<u16>,
    at: Loc<'t>,
    health_at: Loc<'t>,
    hostname_at: Loc<'t>,
}

/// A DNS cluster's name: its endpoints' health is what checks find, and their host name
/// is the name resolved.
fn dns_name(h: LbHost<'_>, diag: &mut Diagnostics) -> DnsName {
    if h.health != DeclaredHealth::Healthy {
        diag.error(
            h.health_at.pos,
            &h.health_at.path,
            "health_status other than UNKNOWN and HEALTHY is not supported yet on STRICT_DNS and LOGICAL_DNS clusters (their endpoints change with each answer)",
        );
    }
    if let Some(name) = h
        .hostname
        .as_ref()
        .filter(|n| !n.eq_ignore_ascii_case(&h.host))
    {
        diag.error(
            h.hostname_at.pos,
            &h.hostname_at.path,
            format!("a DNS cluster's endpoint is named by its address ({:?}); another hostname ({name:?}) is not supported yet", h.host),
        );
    }
    DnsName {
        host: h.host,
        port: h.port,
        weight: h.weight,
        priority: h.priority,
        locality: h.locality,
        locality_weight: h.locality_weight,
        health_check_port: h.health_check_port,
    }
}

/// Every endpoint of a `load_assignment`; its `policy` goes into `balancing`.
fn load_assignment<'t>(
    la: &Msg<'_, 't>,
    balancing: &mut Balancing,
    diag: &mut Diagnostics,
) -> Vec<LbHost<'t>> {
    la.only(diag, &["cluster_name", "endpoints", "policy"]);
    if let Some(policy) = la.child("policy") {
        policy.only(diag, &["overprovisioning_factor"]);
        // At least 1 by Envoy's validation rules.
        if let Some(factor) = policy.wrapped_uint("overprovisioning_factor") {
            balancing.overprovisioning_factor = u32::try_from(factor).unwrap_or(u32::MAX);
        }
    }
    let mut out = Vec::new();
    for group in la.children("endpoints") {
        group.only(
            diag,
            &[
                "locality",
                "lb_endpoints",
                "priority",
                "load_balancing_weight",
            ],
        );
        // At most 128 by Envoy's validation rules.
        let priority = u32::try_from(group.uint("priority")).unwrap_or(u32::MAX);
        // At least 1 by Envoy's validation rules.
        let locality_weight = group
            .wrapped_uint("load_balancing_weight")
            .map(|w| u32::try_from(w).unwrap_or(u32::MAX));
        let locality = group.child("locality").map_or_else(Locality::default, |l| {
            l.only(diag, &["region", "zone", "sub_zone"]);
            let part = |name: &str| l.str(name).unwrap_or_default().to_owned();
            Locality {
                region: part("region"),
                zone: part("zone"),
                sub_zone: part("sub_zone"),
            }
        });
        for lb in group.children("lb_endpoints") {
            lb.only(
                diag,
                &["endpoint", "load_balancing_weight", "health_status"],
            );
            let health = match lb.enum_name("health_status").as_deref() {
                None | Some("UNKNOWN" | "HEALTHY") => DeclaredHealth::Healthy,
                Some("DRAINING") => DeclaredHealth::Draining,
                Some("DEGRADED") => DeclaredHealth::Degraded,
                // UNHEALTHY, TIMEOUT (and a number outside the enum, which the
                // validation rules refuse).
                Some(_) => DeclaredHealth::Unhealthy,
            };
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
            endpoint.only(diag, &["address", "hostname", "health_check_config"]);
            let hostname = endpoint.str("hostname").map(str::to_owned);
            if let Some(h) = &hostname {
                if let Err(message) = crate::config::decode_balance::check_host(h) {
                    endpoint.error(diag, "hostname", message);
                }
            }
            let health_check_port = endpoint.child("health_check_config").and_then(|hc| {
                // `hostname` (a per-endpoint Host for checks), `address` and
                // `disable_active_health_check` are refused by name.
                hc.only(diag, &["port_value"]);
                // At most 65535 by Envoy's validation rules; 0 is "the endpoint's".
                u16::try_from(hc.uint("port_value"))
                    .ok()
                    .filter(|p| *p != 0)
            });
            let Some(address) = endpoint.child("address") else {
                endpoint.error(diag, "address", "`address` is required");
                continue;
            };
            if let Some((host, port)) = socket_address(&address, diag, false) {
                out.push(LbHost {
                    host,
                    port,
                    weight: u32::try_from(weight.max(1)).unwrap_or(1),
                    priority,
                    locality: locality.clone(),
                    locality_weight,
                    health,
                    hostname,
                    health_check_port,
                    at: address.loc.clone(),
                    health_at: lb.at("health_status"),
                    hostname_at: endpoint.at("hostname"),
                });
            }
        }
    }
    if let Err(message) = check_priorities(out.iter().map(|h| h.priority)) {
        la.error(diag, "endpoints", message);
    }
    let groups = out
        .iter()
        .map(|h| (h.priority, &h.locality, h.locality_weight));
    if let Some((i, message)) = check_locality_weights(groups) {
        if let Some(h) = out.get(i) {
            diag.error(h.at.pos, &h.at.path, message);
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

fn common_options(o: &Msg<'_, '_>, pool: &mut PoolSettings, diag: &mut Diagnostics) {
    o.only(diag, &["idle_timeout", "max_requests_per_connection"]);
    if let Some(t) = o.duration("idle_timeout") {
        pool.idle_timeout = if t.is_zero() { DISABLED } else { t };
    }
    if let Some(n) = o.wrapped_uint("max_requests_per_connection") {
        pool.max_requests_per_connection = requests_per_connection(n);
    }
}

/// A `max_requests_per_connection`: zero is no limit, as in Envoy's pools; the field
/// is a `UInt32Value`.
fn requests_per_connection(n: u64) -> Option<u64> {
    Some(n).filter(|&n| n > 0)
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

#[cfg(test)]
mod tests;
