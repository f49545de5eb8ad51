//! Schema for clusters: endpoints (addresses, Unix sockets or host names) with weights,
//! how they are discovered, and pool settings.
//!
//! Design: a cluster's `discovery` says where its endpoints come from, with Envoy's
//! cluster types: `static` (the addresses written), `strict_dns` (every address of every
//! name) and `logical_dns` (one name; new connections go to its first address). When the
//! key is absent the endpoints decide: all numeric means `static`, any host name means
//! `strict_dns`, so `orders:8080` simply works. What does not fit the type is refused at
//! the value that is wrong: a host name in a `static` cluster, a Unix socket in a DNS
//! one, a second name in a logical one, DNS settings on a static cluster.

use super::addr::{parse_address, parse_host_port};
use super::error::Diagnostics;
use super::fields::{choice, duration, marked_name, non_empty_list, optional_duration, Marks};
use super::model::{
    Address, Cluster, DnsDiscovery, DnsKind, DnsName, Endpoint, Endpoints, LookupFamily,
    PoolSettings,
};
use super::node::Node;

const CLUSTER_KEYS: &[&str] = &[
    "name",
    "endpoints",
    "discovery",
    "dns_refresh_rate",
    "dns_lookup_family",
    "connect_timeout",
    "pool",
    "proxy_protocol",
    // TLS origination, decoded in decode_tls.rs.
    "tls",
];
const ENDPOINT_KEYS: &[&str] = &["address", "weight"];
const POOL_KEYS: &[&str] = &[
    "max_idle_per_endpoint",
    "idle_timeout",
    "max_connections_per_endpoint",
    "max_pending",
];
const MAX_WEIGHT: i64 = 1000;
/// Envoy's floor for `dns_refresh_rate` is 1 ms; ringway's is 10 ms, so a typo cannot
/// turn the resolver into a busy loop.
const MIN_REFRESH_RATE: std::time::Duration = std::time::Duration::from_millis(10);

/// The `discovery` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discovery {
    Static,
    Dns(DnsKind),
}

pub(super) fn cluster<'a>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    marks: &mut Marks<'a>,
) -> Option<Cluster> {
    let map = node.map(diag, CLUSTER_KEYS)?;
    let name = marked_name(&map, diag, &mut marks.cluster_names);
    let endpoints_node = map.field(diag, "endpoints");
    let written = endpoints_node
        .as_ref()
        .and_then(|n| non_empty_list(n, diag, "endpoint", endpoint));
    let discovery = match map.optional("discovery") {
        Some(n) => choice(
            &n,
            diag,
            &[
                ("static", Discovery::Static),
                ("strict_dns", Discovery::Dns(DnsKind::Strict)),
                ("logical_dns", Discovery::Dns(DnsKind::Logical)),
            ],
        )
        .map(Some),
        None => Some(None),
    };
    let refresh_rate = map.optional("dns_refresh_rate").map(|n| {
        let rate = duration(&n, diag).filter(|rate| {
            let ok = *rate >= MIN_REFRESH_RATE;
            if !ok {
                n.error(diag, "dns_refresh_rate must be at least 10ms");
            }
            ok
        });
        (n, rate)
    });
    let family = map.optional("dns_lookup_family").map(|n| {
        let family = choice(
            &n,
            diag,
            &[
                ("auto", LookupFamily::Auto),
                ("v4_preferred", LookupFamily::V4Preferred),
                ("v4_only", LookupFamily::V4Only),
                ("v6_only", LookupFamily::V6Only),
                ("all", LookupFamily::All),
            ],
        );
        (n, family)
    });
    let connect_timeout = optional_duration(
        &map,
        "connect_timeout",
        Cluster::DEFAULT_CONNECT_TIMEOUT,
        diag,
    );
    let pool = match map.optional("pool") {
        Some(n) => pool(&n, diag),
        None => Some(PoolSettings::default()),
    };
    // `v1` or `v2` (Envoy's upstream_proxy_protocol transport socket, V1 / V2).
    let proxy_protocol = match map.optional("proxy_protocol") {
        Some(n) => choice(&n, diag, &[("v1", 1u8), ("v2", 2u8)]).map(Some),
        None => Some(None),
    };
    let tls = match map.optional("tls") {
        Some(n) if map.has("proxy_protocol") => {
            n.error(
                diag,
                "`proxy_protocol` together with `tls` is not supported yet (the PROXY \
                 header would have to go before the handshake)",
            );
            None
        }
        Some(n) => super::decode_tls::client(&n, diag, &marks.base_dir).map(Some),
        None => Some(None),
    };

    let written = written?;
    let any_name = written.iter().any(|(e, _)| matches!(e, Written::Name(_)));
    let discovery = discovery?.unwrap_or(if any_name {
        Discovery::Dns(DnsKind::Strict)
    } else {
        Discovery::Static
    });
    let endpoints = match discovery {
        Discovery::Static => {
            let dns_keys = [
                refresh_rate.as_ref().map(|(n, _)| (n, "dns_refresh_rate")),
                family.as_ref().map(|(n, _)| (n, "dns_lookup_family")),
            ];
            for (node, key) in dns_keys.into_iter().flatten() {
                node.error(
                    diag,
                    format!("`{key}` applies only to `strict_dns` and `logical_dns` clusters"),
                );
            }
            let mut endpoints = Vec::with_capacity(written.len());
            for (endpoint, node) in written {
                match endpoint {
                    Written::Address(address, weight) => {
                        endpoints.push(Endpoint { address, weight })
                    }
                    Written::Name(name) => node.error(
                        diag,
                        format!(
                            "{:?} is a host name: `discovery: static` takes IP addresses \
                             (use `strict_dns` or `logical_dns`, or leave `discovery` out)",
                            name.host
                        ),
                    ),
                }
            }
            Endpoints::Static(endpoints)
        }
        Discovery::Dns(kind) => {
            let count = written.len();
            let mut names = Vec::with_capacity(count);
            for (endpoint, node) in written {
                match endpoint {
                    Written::Name(name) => names.push(name),
                    Written::Address(Address::Tcp(addr), weight) => names.push(DnsName {
                        host: addr.ip().to_string(),
                        port: addr.port(),
                        weight,
                    }),
                    Written::Address(Address::Unix(_), _) => node.error(
                        diag,
                        "a Unix socket cannot be resolved: DNS clusters take `host:port`",
                    ),
                }
            }
            if kind == DnsKind::Logical && count > 1 {
                if let Some(n) = &endpoints_node {
                    n.error(
                        diag,
                        format!(
                            "a `logical_dns` cluster has exactly one endpoint (this one has {count})"
                        ),
                    );
                }
            }
            Endpoints::Dns(DnsDiscovery {
                kind,
                refresh_rate: match refresh_rate {
                    Some((_, rate)) => rate?,
                    None => DnsDiscovery::DEFAULT_REFRESH_RATE,
                },
                family: match family {
                    Some((_, family)) => family?,
                    None => LookupFamily::V4Preferred,
                },
                names,
                respect_dns_ttl: false,
            })
        }
    };
    Some(Cluster {
        name: name?.to_owned(),
        endpoints,
        connect_timeout: connect_timeout?,
        pool: pool?,
        proxy_protocol: proxy_protocol?,
        tls: tls?,
    })
}

/// An endpoint as written, before the cluster's discovery type is known.
enum Written {
    Address(Address, u32),
    Name(DnsName),
}

/// `ip:port`, `host:port`, `unix:/path`, or a map `{ address, weight }`; with the node,
/// for errors that depend on the cluster's type.
fn endpoint<'a>(node: &Node<'a>, diag: &mut Diagnostics) -> Option<(Written, Node<'a>)> {
    if node.peek_str().is_some() {
        let written = endpoint_address(node, 1, diag)?;
        return Some((written, node.clone()));
    }
    let map = node.map(diag, ENDPOINT_KEYS)?;
    let weight = match map.optional("weight") {
        Some(n) => n
            .int_in(diag, "a weight", 1..=MAX_WEIGHT)
            .and_then(|w| u32::try_from(w).ok()),
        None => Some(1),
    };
    let address = map.field(diag, "address")?;
    let written = endpoint_address(&address, weight?, diag)?;
    Some((written, address))
}

fn endpoint_address(node: &Node<'_>, weight: u32, diag: &mut Diagnostics) -> Option<Written> {
    let Some(text) = node.peek_str() else {
        node.wrong_type(diag, "an `ip:port`, `host:port` or `unix:/path` string");
        return None;
    };
    let address = match parse_address(text) {
        Ok(address) => address,
        Err(numeric) => {
            let looks_numeric = text.starts_with('[')
                || text.starts_with("unix:")
                || text
                    .rsplit_once(':')
                    .map_or(text, |(host, _)| host)
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b':');
            return match parse_host_port(text, None) {
                Ok((host, port)) if !looks_numeric => {
                    Some(Written::Name(DnsName { host, port, weight }))
                }
                Ok(_) => {
                    node.error(diag, numeric);
                    None
                }
                Err(message) => {
                    node.error(diag, if looks_numeric { numeric } else { message });
                    None
                }
            };
        }
    };
    if let Address::Tcp(addr) = address {
        if addr.port() == 0 || addr.ip().is_unspecified() {
            node.error(
                diag,
                format!(
                    "{text:?} cannot be connected to: an endpoint needs a real IP and a non-zero port"
                ),
            );
            return None;
        }
    }
    Some(Written::Address(address, weight))
}

fn pool(node: &Node<'_>, diag: &mut Diagnostics) -> Option<PoolSettings> {
    let map = node.map(diag, POOL_KEYS)?;
    let defaults = PoolSettings::default();
    let count =
        |key: &str, default: usize, min: i64, diag: &mut Diagnostics| match map.optional(key) {
            Some(n) => n
                .int_in(diag, "a count", min..=1_000_000)
                .and_then(|v| usize::try_from(v).ok()),
            None => Some(default),
        };
    let max_idle = count(
        "max_idle_per_endpoint",
        defaults.max_idle_per_endpoint,
        0,
        diag,
    );
    let max_connections = count(
        "max_connections_per_endpoint",
        defaults.max_connections_per_endpoint,
        1,
        diag,
    );
    let max_pending = count("max_pending", defaults.max_pending, 0, diag);
    let idle_timeout = optional_duration(&map, "idle_timeout", defaults.idle_timeout, diag);
    Some(PoolSettings {
        max_idle_per_endpoint: max_idle?,
        idle_timeout: idle_timeout?,
        max_connections_per_endpoint: max_connections?,
        max_pending: max_pending?,
    })
}
