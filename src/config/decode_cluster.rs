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
//!
//! An endpoint written as a mapping may also say its `priority`, `locality` (with its
//! `locality_weight`), `health_check_port`, and on a static cluster its declared
//! `health` and `hostname`; priorities must go from 0 without gaps. How the cluster
//! balances over them and checks them (`load_balancing`, `health_check`,
//! `outlier_detection`) is decoded in `decode_balance`, its `circuit_breakers` in
//! `decode_resilience`.

use super::addr::{parse_address, parse_host_port};
use super::balance::{check_locality_weights, check_priorities, DeclaredHealth, Locality};
use super::decode_balance;
use super::error::Diagnostics;
use super::fields::{
    choice, duration, marked_name, non_empty_list, optional_count_of, optional_duration, Marks,
};
use super::model::{
    Address, Cluster, DnsDiscovery, DnsKind, DnsName, Endpoint, Endpoints, LookupFamily,
    PoolSettings, MAX_PRIORITY,
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
    "respect_dns_ttl",
    // TLS origination, decoded in decode_tls.rs.
    "tls",
    // Decoded in decode_balance.rs.
    "load_balancing",
    "health_check",
    "outlier_detection",
    // Decoded in decode_resilience.rs.
    "circuit_breakers",
    // Per-endpoint stats (decode_stats.rs has the rest of the stats keys).
    "per_endpoint_stats",
];
const ENDPOINT_KEYS: &[&str] = &[
    "address",
    "weight",
    "priority",
    "locality",
    "locality_weight",
    "health",
    "hostname",
    "health_check_port",
];
const POOL_KEYS: &[&str] = &[
    "max_idle_per_endpoint",
    "idle_timeout",
    "max_connections_per_endpoint",
    "max_pending",
    "max_requests_per_connection",
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
    let respect_dns_ttl = map.optional("respect_dns_ttl").map(|n| {
        let value = n.peek_bool();
        if value.is_none() {
            n.wrong_type(diag, "true or false");
        }
        (n, value)
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
    let balancing = match map.optional("load_balancing") {
        Some(n) => decode_balance::balancing(&n, diag),
        None => Some(Default::default()),
    };
    let health_check = match map.optional("health_check") {
        Some(n) => decode_balance::health_check(&n, diag).map(Some),
        None => Some(None),
    };
    let outlier_detection = match map.optional("outlier_detection") {
        Some(n) => decode_balance::outlier_detection(&n, diag).map(Some),
        None => Some(None),
    };
    let circuit_breakers = match map.optional("circuit_breakers") {
        Some(n) => super::decode_resilience::circuit_breakers(&n, diag),
        None => Some(Default::default()),
    };

    let written = written?;
    endpoint_groups(&written, endpoints_node.as_ref(), diag);
    let any_name = written
        .iter()
        .any(|(e, _, _)| matches!(e, Written::Name(..)));
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
                respect_dns_ttl
                    .as_ref()
                    .map(|(n, _)| (n, "respect_dns_ttl")),
            ];
            for (node, key) in dns_keys.into_iter().flatten() {
                node.error(
                    diag,
                    format!("`{key}` applies only to `strict_dns` and `logical_dns` clusters"),
                );
            }
            let mut endpoints = Vec::with_capacity(written.len());
            for (endpoint, extra, node) in written {
                match endpoint {
                    Written::Address(address) => endpoints.push(Endpoint {
                        address,
                        weight: extra.weight,
                        priority: extra.priority,
                        locality: extra.locality,
                        locality_weight: extra.locality_weight,
                        health: extra.health.map_or(DeclaredHealth::Healthy, |(h, _)| h),
                        hostname: extra.hostname.map(|(h, _)| h),
                        health_check_port: extra.health_check_port,
                    }),
                    Written::Name(host, _) => node.error(
                        diag,
                        format!(
                            "{host:?} is a host name: `discovery: static` takes IP addresses \
                             (use `strict_dns` or `logical_dns`, or leave `discovery` out)",
                        ),
                    ),
                }
            }
            Endpoints::Static(endpoints)
        }
        Discovery::Dns(kind) => {
            let count = written.len();
            let mut names = Vec::with_capacity(count);
            for (endpoint, extra, node) in written {
                let (host, port) = match endpoint {
                    Written::Name(host, port) => (host, port),
                    Written::Address(Address::Tcp(addr)) => (addr.ip().to_string(), addr.port()),
                    Written::Address(Address::Unix(_)) => {
                        node.error(
                            diag,
                            "a Unix socket cannot be resolved: DNS clusters take `host:port`",
                        );
                        continue;
                    }
                };
                // A DNS endpoint's host name is its name, and its health is what checks
                // find: its addresses change with each answer.
                for (key, at) in [
                    ("health", extra.health.as_ref().map(|(_, n)| n)),
                    ("hostname", extra.hostname.as_ref().map(|(_, n)| n)),
                ] {
                    if let Some(at) = at {
                        at.error(
                            diag,
                            format!("`{key}` applies only to the endpoints of `static` clusters"),
                        );
                    }
                }
                names.push(DnsName {
                    host,
                    port,
                    weight: extra.weight,
                    priority: extra.priority,
                    locality: extra.locality,
                    locality_weight: extra.locality_weight,
                    health_check_port: extra.health_check_port,
                });
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
                respect_dns_ttl: match respect_dns_ttl {
                    Some((_, value)) => value?,
                    None => false,
                },
            })
        }
    };
    let per_endpoint_stats = super::fields::optional_bool(&map, "per_endpoint_stats", false, diag);
    Some(Cluster {
        per_endpoint_stats: per_endpoint_stats?,
        circuit_breakers: circuit_breakers?,
        name: name?.to_owned(),
        endpoints,
        connect_timeout: connect_timeout?,
        pool: pool?,
        proxy_protocol: proxy_protocol?,
        tls: tls?,
        balancing: balancing?,
        health_check: health_check?,
        outlier_detection: outlier_detection?,
    })
}

/// The checks over all of a cluster's endpoints: priorities from 0 without gaps, one
/// weight per locality and priority.
fn endpoint_groups(
    written: &[(Written, Extra<'_>, Node<'_>)],
    list: Option<&Node<'_>>,
    diag: &mut Diagnostics,
) {
    if let Err(message) = check_priorities(written.iter().map(|(_, e, _)| e.priority)) {
        if let Some(list) = list {
            list.error(diag, message);
        }
    }
    let groups = written
        .iter()
        .map(|(_, e, _)| (e.priority, &e.locality, e.locality_weight));
    if let Some((i, message)) = check_locality_weights(groups) {
        if let Some((_, _, node)) = written.get(i) {
            node.error(diag, message);
        }
    }
}

/// An endpoint's address as written, before the cluster's discovery type is known.
enum Written {
    Address(Address),
    /// A host name and port.
    Name(String, u16),
}

/// What an endpoint says besides its address.
struct Extra<'a> {
    weight: u32,
    priority: u32,
    locality: Locality,
    locality_weight: Option<u32>,
    health_check_port: Option<u16>,
    /// Static clusters only, so with their nodes for the error on others.
    health: Option<(DeclaredHealth, Node<'a>)>,
    hostname: Option<(String, Node<'a>)>,
}

impl Extra<'_> {
    fn plain() -> Self {
        Extra {
            weight: 1,
            priority: 0,
            locality: Locality::default(),
            locality_weight: None,
            health_check_port: None,
            health: None,
            hostname: None,
        }
    }
}

/// `ip:port`, `host:port`, `unix:/path`, or a map `{ address, weight, ... }`; with the
/// node, for errors that depend on the cluster's type.
fn endpoint<'a>(node: &Node<'a>, diag: &mut Diagnostics) -> Option<(Written, Extra<'a>, Node<'a>)> {
    if node.peek_str().is_some() {
        let written = endpoint_address(node, diag)?;
        return Some((written, Extra::plain(), node.clone()));
    }
    let map = node.map(diag, ENDPOINT_KEYS)?;
    let number =
        |key: &str, what: &str, range: std::ops::RangeInclusive<i64>, diag: &mut Diagnostics| {
            match map.optional(key) {
                Some(n) => n
                    .int_in(diag, what, range)
                    .and_then(|w| u32::try_from(w).ok())
                    .map(Some),
                None => Some(None),
            }
        };
    let weight = number("weight", "a weight", 1..=MAX_WEIGHT, diag);
    let priority = number("priority", "a priority", 0..=i64::from(MAX_PRIORITY), diag);
    let locality_weight = number("locality_weight", "a weight", 1..=MAX_WEIGHT, diag);
    let health_check_port = number("health_check_port", "a port", 1..=65535, diag);
    let locality = match map.optional("locality") {
        Some(n) => decode_balance::locality(&n, diag),
        None => Some(Locality::default()),
    };
    let health = match map.optional("health") {
        Some(n) => decode_balance::declared_health(&n, diag).map(|h| Some((h, n))),
        None => Some(None),
    };
    let hostname = match map.optional("hostname") {
        Some(n) => n
            .str(diag)
            .and_then(|h| match decode_balance::check_host(h) {
                Ok(()) => Some(Some((h.to_owned(), n.clone()))),
                Err(message) => {
                    n.error(diag, message);
                    None
                }
            }),
        None => Some(None),
    };
    let address = map.field(diag, "address")?;
    let written = endpoint_address(&address, diag)?;
    let extra = Extra {
        weight: weight?.unwrap_or(1),
        priority: priority?.unwrap_or(0),
        locality: locality?,
        locality_weight: locality_weight?,
        health_check_port: health_check_port?.and_then(|p| u16::try_from(p).ok()),
        health: health?,
        hostname: hostname?,
    };
    Some((written, extra, address))
}

fn endpoint_address(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Written> {
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
                Ok((host, port)) if !looks_numeric => Some(Written::Name(host, port)),
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
    Some(Written::Address(address))
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
    let max_requests = optional_count_of(
        &map,
        "max_requests_per_connection",
        "a number of requests",
        diag,
    );
    Some(PoolSettings {
        max_idle_per_endpoint: max_idle?,
        idle_timeout: idle_timeout?,
        max_connections_per_endpoint: max_connections?,
        max_pending: max_pending?,
        max_requests_per_connection: max_requests?,
    })
}
