//! Schema: turns the YAML tree into [`Config`] values, one function per section.
//!
//! Design: each function reads every field of its section even after one has failed, so
//! that all problems in a section are reported together, and only then combines the
//! results (`name?` inside the struct literal). Cross-references (route -> cluster,
//! uniqueness) cannot be checked while reading a single section, so the nodes they need are
//! recorded in [`Marks`] and checked by `validate` once the whole file has been read.
//! Defaults come from the constants on the model types.

use bytes::Bytes;

use crate::http1::Underscores;

use super::addr::{parse_address, parse_socket_addr};
use super::decode_auth;
use super::decode_cluster;
use super::decode_cors;
use super::decode_headers;
use super::decode_proxy;
use super::decode_ratelimit::{self, RouteLimits};
use super::decode_resilience;
use super::decode_rewrite;
use super::decode_short;
use super::error::Diagnostics;
use super::fields::{
    choice, duration, list, marked_name, non_empty_list, optional_count, optional_count_of,
    optional_duration, size, Marks,
};
use super::model::{
    Cluster, Config, DirectResponse, DriverChoice, EscapedSlashes, Http1Settings, Listener,
    PathNormalization, PinWorkers, Route, RouteAction, RouteMatch, VirtualHost, WeightedClusters,
    Workers,
};
use super::node::Node;
use super::route_match::route_match;

const TOP_KEYS: &[&str] = &[
    "workers",
    "pin_workers",
    "driver",
    "admin",
    "listeners",
    "clusters",
    "access_log",
    "max_connections",
    // The process's tracer, decoded in decode_observability.rs.
    "tracing",
    // Authentication, decoded in decode_auth.rs.
    "auth",
    // The short form (decode_short.rs), in a file without `listeners`.
    "routes",
    "listen",
];
const LISTENER_KEYS: &[&str] = &[
    "name",
    "address",
    "routes",
    "virtual_hosts",
    "http1",
    "header_read_timeout",
    "idle_timeout",
    "stream_idle_timeout",
    "request_timeout",
    "connection_limit",
    "max_requests_per_connection",
    "max_connection_duration",
    "cors",
    "upgrades",
    "proxy_protocol",
    "authorization",
    // Header edits, decoded in decode_headers.rs.
    "request_headers_to_add",
    "request_headers_to_remove",
    "response_headers_to_add",
    "response_headers_to_remove",
    // Forwarding policy, decoded in decode_proxy.rs.
    "trusted_proxies",
    "request_id",
    "via",
    "server_header",
    "hide_upstream_identity",
    "max_request_body",
    "expect_continue",
    "buffer_limit",
    "path_normalization",
    // TLS termination, decoded in decode_tls.rs.
    "tls",
    // The default requirement of its routes, decoded in decode_auth.rs.
    "auth",
    // Rate limits, decoded in decode_ratelimit.rs.
    "rate_limit",
    "rate_limit_headers",
    "connection_rate",
    "fault",
    // Tracing, decoded in decode_observability.rs.
    "tracing",
];
const VIRTUAL_HOST_KEYS: &[&str] = &[
    "name",
    "domains",
    "routes",
    "cors",
    // Header edits, decoded in decode_headers.rs.
    "request_headers_to_add",
    "request_headers_to_remove",
    "response_headers_to_add",
    "response_headers_to_remove",
    // Stats, decoded in decode_stats.rs.
    "stats",
    "virtual_clusters",
];
const HTTP1_KEYS: &[&str] = &[
    "max_request_line",
    "max_request_head",
    "max_headers",
    "max_chunk_extension",
    "max_trailer_section",
    "headers_with_underscores",
];
const ROUTE_KEYS: &[&str] = &[
    "name",
    "match",
    "cluster",
    "weighted_clusters",
    "direct_response",
    "redirect",
    "timeout",
    "idle_timeout",
    "max_request_body",
    "cors",
    "upgrades",
    "authorization",
    // Rewrites, decoded in decode_rewrite.rs (its REWRITE_KEYS).
    "prefix_rewrite",
    "regex_rewrite",
    "host_rewrite_literal",
    "host_rewrite_header",
    "auto_host_rewrite",
    "template_rewrite",
    // Header edits, decoded in decode_headers.rs.
    "request_headers_to_add",
    "request_headers_to_remove",
    "response_headers_to_add",
    "response_headers_to_remove",
    // What the route requires, decoded in decode_auth.rs.
    "auth",
    // Rate limits, decoded in decode_ratelimit.rs.
    "rate_limit",
    // Hash rules (ring hash, Maglev), decoded in decode_balance.rs.
    "hash_on",
    // Retries, mirrors, stream duration, priority, attempt count: decode_resilience.rs
    // (its ROUTE_KEYS).
    "retry",
    "mirror",
    "max_stream_duration",
    "priority",
    "attempt_count",
    // Fault injection, decoded in decode_fault.rs.
    "fault",
    // Span name and sampling, decoded in decode_observability.rs.
    "tracing",
    // Per-route stats, decoded in decode_stats.rs.
    "stats",
];
const PATH_NORMALIZATION_KEYS: &[&str] = &["merge_slashes", "escaped_slashes"];
const DIRECT_RESPONSE_KEYS: &[&str] = &["status", "body", "content_type"];

/// Decodes the document. Returns `None` if anything was reported.
pub(crate) fn config<'a>(
    root: &Node<'a>,
    source: &std::path::Path,
    diag: &mut Diagnostics,
    marks: &mut Marks<'a>,
) -> Option<Config> {
    marks.base_dir = source
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    if root.is_empty_document() {
        // At 1:1 rather than at the empty node, which saphyr puts after any comments or `---`.
        let start = super::error::Pos { line: 1, column: 1 };
        diag.error(
            start,
            "",
            "the config is empty; it needs at least `listeners`, or the short form's `routes` (see config/reference.yaml and docs/configuration.md)",
        );
        return None;
    }
    let map = root.map(diag, TOP_KEYS)?;
    // Before the listeners: their routes' `auth` name what it declares.
    let auth = match map.optional("auth") {
        Some(n) => decode_auth::auth(&n, diag, marks),
        None => {
            marks.auth = Some(decode_auth::no_auth());
            Some(Default::default())
        }
    };
    let workers = map.optional("workers").map(|n| workers(&n, diag));
    let pin_workers = map.optional("pin_workers").map(|n| pin_workers(&n, diag));
    let driver = map.optional("driver").map(|n| driver(&n, diag));
    let admin = map.optional("admin").map(|n| {
        let addr = n.parse_str(diag, parse_socket_addr);
        if let Some(addr) = addr {
            marks.admin = Some((addr, n));
        }
        addr
    });
    let short = match (map.optional("routes"), map.optional("listeners")) {
        (Some(routes), None) => Some(decode_short::short_form(
            &routes,
            map.optional("listen").as_ref(),
            marks.auth.as_ref(),
            diag,
        )),
        (Some(routes), Some(_)) => {
            routes.error(
                diag,
                "top-level `routes` is the short form, for a file without `listeners`; \
                 move these routes into a listener's `routes`",
            );
            Some(None)
        }
        (None, _) => {
            if let Some(listen) = map.optional("listen") {
                listen.error(
                    diag,
                    "`listen` is the short form's listener address; it needs top-level `routes` \
                     (with `listeners`, each listener has its `address`)",
                );
            }
            None
        }
    };
    let listeners = match short {
        Some(_) => Some(Vec::new()),
        None => map.field(diag, "listeners").and_then(|n| {
            non_empty_list(&n, diag, "listener", |item, diag| {
                listener(item, diag, marks)
            })
        }),
    };
    let mut clusters = match map.optional("clusters") {
        Some(n) => list(&n, diag, |item, diag| {
            decode_cluster::cluster(item, diag, marks)
        }),
        None => Some(Vec::new()),
    };
    let mut listeners = listeners;
    let mut expansion = None;
    if let Some(short) = short {
        let expanded = short.and_then(|short| {
            let text = decode_short::expand(&short, clusters.as_deref()?, diag)?;
            let (l, c) = expanded(&text, source, &marks.base_dir, marks.auth.clone(), diag)?;
            Some((text, l, c))
        });
        match (expanded, clusters.as_mut()) {
            (Some((text, l, c)), Some(clusters)) => {
                listeners = Some(l);
                clusters.extend(c);
                expansion = Some(text);
            }
            _ => listeners = None,
        }
    }
    if let (Some(listeners), Some(clusters)) = (listeners.as_mut(), clusters.as_ref()) {
        super::decode_balance::inherit_hash_policies(listeners, clusters);
    }
    let access_log = map
        .optional("access_log")
        .map(|n| super::decode_log::access_log(&n, diag));
    let max_connections = optional_count(&map, "max_connections", diag);
    let tracer = map
        .optional("tracing")
        .map(|n| super::decode_observability::tracer(&n, diag, marks));
    super::decode_observability::check_listeners(tracer.is_some(), &marks.listener_tracing, diag);
    Some(Config {
        tracers: tracer.map_or(Some(Vec::new()), |t| t.map(|t| vec![t]))?,
        auth: auth?,
        source: source.to_path_buf(),
        workers: workers.unwrap_or(Some(Workers::Auto))?,
        pin_workers: pin_workers.unwrap_or(Some(PinWorkers::Auto))?,
        driver: driver.unwrap_or(Some(DriverChoice::Auto))?,
        admin: admin.map_or(Some(None), |a| a.map(Some))?,
        listeners: listeners?,
        clusters: clusters?,
        access_log: access_log.map_or(Some(None), |a| a.map(Some))?,
        max_connections: max_connections?,
        expansion,
        load_options: Default::default(),
        document: Default::default(),
        format: Default::default(),
    })
}

/// Decodes the full-form document the short form expanded to: its listener and its
/// implicit clusters. Errors (which would be ringway's bug: the short routes were
/// checked) name the expansion.
fn expanded(
    text: &str,
    source: &std::path::Path,
    base_dir: &std::path::Path,
    auth: Option<super::fields::AuthMarks>,
    diag: &mut Diagnostics,
) -> Option<(Vec<Listener>, Vec<Cluster>)> {
    let name = format!("{} (short form, expanded)", source.display());
    let mut inner = Diagnostics::new(std::path::Path::new(&name));
    let decoded = super::yaml::load(text, &mut inner).and_then(|tree| {
        let root = Node::root(&tree);
        let mut marks = Marks {
            base_dir: base_dir.to_path_buf(),
            auth,
            ..Marks::default()
        };
        let map = root.map(&mut inner, &["listeners", "clusters"])?;
        let listeners = map.field(&mut inner, "listeners").and_then(|n| {
            list(&n, &mut inner, |item, diag| {
                listener(item, diag, &mut marks)
            })
        });
        let clusters = match map.optional("clusters") {
            Some(n) => list(&n, &mut inner, |item, diag| {
                decode_cluster::cluster(item, diag, &mut marks)
            }),
            None => Some(Vec::new()),
        };
        Some((listeners?, clusters?))
    });
    let failed = inner.has_errors();
    diag.absorb(inner);
    decoded.filter(|_| !failed)
}

fn workers(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Workers> {
    let max = Workers::MAX;
    let expected = format!("`auto` or a worker count from 1 to {max}");
    if node.peek_str() == Some("auto") {
        return Some(Workers::Auto);
    }
    match node.peek_int().map(usize::try_from) {
        Some(Ok(n)) if (1..=max).contains(&n) => Some(Workers::Count(n)),
        Some(_) => {
            let found = node.peek_int().unwrap_or_default();
            node.error(diag, format!("expected {expected}, found {found}"));
            None
        }
        None => {
            node.wrong_type(diag, &expected);
            None
        }
    }
}

fn pin_workers(node: &Node<'_>, diag: &mut Diagnostics) -> Option<PinWorkers> {
    match node.peek_bool() {
        Some(true) => Some(PinWorkers::On),
        Some(false) => Some(PinWorkers::Off),
        None if node.peek_str() == Some("auto") => Some(PinWorkers::Auto),
        None => {
            node.wrong_type(diag, "`auto`, `true` or `false`");
            None
        }
    }
}

fn driver(node: &Node<'_>, diag: &mut Diagnostics) -> Option<DriverChoice> {
    choice(
        node,
        diag,
        &[
            ("auto", DriverChoice::Auto),
            ("io_uring", DriverChoice::IoUring),
            ("epoll", DriverChoice::Epoll),
        ],
    )
}

fn listener<'a>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    marks: &mut Marks<'a>,
) -> Option<Listener> {
    let map = node.map(diag, LISTENER_KEYS)?;
    marks.rate_limit_names.clear();
    marks.route_tracing.clear();
    let name = marked_name(&map, diag, &mut marks.listener_names);
    let address = map.field(diag, "address").and_then(|n| {
        let addr = n.parse_str(diag, parse_address);
        if let Some(addr) = &addr {
            marks.listener_addresses.push((addr.clone(), n));
        }
        addr
    });
    // `routes` (for every authority) or `virtual_hosts`, not both.
    let (routes, virtual_hosts) = match (map.optional("routes"), map.optional("virtual_hosts")) {
        (Some(n), None) => (
            non_empty_list(&n, diag, "route", |item, diag| route(item, diag, marks))
                .map(|routes| routes.into_iter().unzip()),
            Some((Vec::new(), Vec::new())),
        ),
        (None, Some(n)) => (
            Some((Vec::new(), Vec::new())),
            virtual_hosts(&n, diag, marks),
        ),
        (Some(_), Some(n)) => {
            n.error(
                diag,
                "a listener has `routes` or `virtual_hosts`, not both (put the routes in a \
                 virtual host with `domains: [\"*\"]`)",
            );
            (None, None)
        }
        (None, None) => {
            map.error(diag, "a listener needs `routes` or `virtual_hosts`");
            (None, None)
        }
    };
    let http1 = match map.optional("http1") {
        Some(n) => http1(&n, diag),
        None => Some(Http1Settings::default()),
    };
    let header_read_timeout = optional_duration(
        &map,
        "header_read_timeout",
        Listener::DEFAULT_HEADER_READ_TIMEOUT,
        diag,
    );
    let idle_timeout =
        optional_duration(&map, "idle_timeout", Listener::DEFAULT_IDLE_TIMEOUT, diag);
    let stream_idle_timeout = optional_duration(
        &map,
        "stream_idle_timeout",
        Listener::DEFAULT_STREAM_IDLE_TIMEOUT,
        diag,
    );
    let request_timeout = match map.optional("request_timeout") {
        Some(n) => duration(&n, diag).map(Some),
        None => Some(None),
    };
    let connection_limit = optional_count(&map, "connection_limit", diag);
    let max_requests_per_connection = optional_count_of(
        &map,
        "max_requests_per_connection",
        "a number of requests",
        diag,
    );
    let max_connection_duration = match map.optional("max_connection_duration") {
        Some(n) => duration(&n, diag).map(Some),
        None => Some(None),
    };
    let headers = decode_headers::mutations(&map, diag);
    let cors = match map.optional("cors") {
        Some(n) => decode_cors::policy(&n, diag).map(Some),
        None => Some(None),
    };
    let upgrades = match map.optional("upgrades") {
        Some(n) => upgrade_list(&n, diag),
        None => Some(vec!["websocket".to_owned()]),
    };
    let proxy_protocol = match map.optional("proxy_protocol") {
        Some(n) => decode_proxy::proxy_protocol(&n, diag).map(Some),
        None => Some(None),
    };
    let proxy = decode_proxy::proxy_settings(&map, diag);
    let tls = match map.optional("tls") {
        Some(n) => {
            let tls = super::decode_tls::server(&n, diag, &marks.base_dir).map(Some);
            if matches!(address, Some(super::model::Address::Unix(_))) {
                n.error(
                    diag,
                    "TLS is served on TCP listeners only (a Unix socket's peer is a local process)",
                );
                None
            } else if map.has("proxy_protocol") {
                n.error(
                    diag,
                    "`proxy_protocol` together with `tls` is not supported yet (the PROXY \
                     header would have to be read before the handshake)",
                );
                None
            } else {
                tls
            }
        }
        None => Some(None),
    };
    if let (Some(h), Some(p)) = (&http1, &proxy) {
        // A head must fit in the buffer it is read into; a larger limit could never be
        // reached, and such heads would be dropped as if the client had closed.
        if h.max_request_head > p.buffer_limit {
            let at = map
                .optional("http1")
                .and_then(|n| n.map(diag, HTTP1_KEYS))
                .and_then(|m| m.optional("max_request_head"))
                .or_else(|| map.optional("buffer_limit"))
                .unwrap_or_else(|| node.clone());
            at.error(
                diag,
                format!(
                    "max_request_head ({}) is larger than buffer_limit ({}), which must hold the whole head",
                    h.max_request_head, p.buffer_limit
                ),
            );
            return None;
        }
    }
    let authorization = super::decode_authz::listener(&map, diag);
    let path_normalization = match map.optional("path_normalization") {
        Some(n) => path_normalization(&n, diag),
        None => Some(PathNormalization::default()),
    };
    let auth = decode_auth::listener_auth(
        &map,
        routes.as_ref().map(|(r, _)| r.as_slice()),
        virtual_hosts.as_ref().map(|(h, _)| h.as_slice()),
        diag,
        marks,
    );
    let rate_limits =
        decode_ratelimit::listener(&map, diag, &mut marks.rate_limit_names, marks.auth.as_ref());
    let connection_rate = decode_ratelimit::connection_rate(&map, name, diag);
    let fault = match map.optional("fault") {
        Some(n) => super::decode_fault::policy(&n, diag, &mut marks.cluster_refs).map(Some),
        None => Some(None),
    };
    let tracing = match map.optional("tracing") {
        Some(n) => {
            marks.listener_tracing.push(n.clone());
            super::decode_observability::listener(&n, diag)
        }
        None => Some(None),
    };
    if let Some(None) = tracing {
        super::decode_observability::check_routes(&marks.route_tracing, diag);
    }
    let mut names = std::mem::take(&mut marks.rate_limit_names);
    let unique_names = decode_ratelimit::unique_names(&mut names, diag);
    let (mut routes, route_limits) = routes?;
    let (mut virtual_hosts, host_limits) = virtual_hosts?;
    let name = name?;
    let in_hosts = virtual_hosts.iter_mut().zip(host_limits).flat_map(
        |(VirtualHost { name, routes, .. }, limits)| {
            let host = Some(name.as_str());
            routes
                .iter_mut()
                .zip(limits)
                .map(move |(r, l)| (host, r, l))
        },
    );
    if unique_names {
        decode_ratelimit::resolve(
            name,
            rate_limits?,
            routes
                .iter_mut()
                .zip(route_limits)
                .map(|(r, l)| (None, r, l))
                .chain(in_hosts),
        );
    }
    unique_names.then_some(())?;
    if let Some(fault) = fault? {
        // The listener's fault, for its forwarding routes without their own.
        let hosts = virtual_hosts.iter_mut().flat_map(|h| h.routes.iter_mut());
        for route in routes.iter_mut().chain(hosts) {
            let forwards = matches!(
                route.action,
                RouteAction::Cluster(_) | RouteAction::Weighted(_)
            );
            if forwards && route.fault.is_none() {
                route.fault = Some(fault.clone());
            }
        }
    }
    Some(Listener {
        tracing: tracing?,
        auth: auth?,
        authorization: authorization?,
        connection_rate: connection_rate?,
        name: name.to_owned(),
        address: address?,
        routes,
        virtual_hosts,
        http1: http1?,
        header_read_timeout: header_read_timeout?,
        idle_timeout: idle_timeout?,
        stream_idle_timeout: stream_idle_timeout?,
        request_timeout: request_timeout?,
        connection_limit: connection_limit?,
        max_requests_per_connection: max_requests_per_connection?,
        max_connection_duration: max_connection_duration?,
        headers: headers?,
        cors: cors?,
        upgrades: upgrades?,
        proxy_protocol: proxy_protocol?,
        proxy: proxy?,
        path_normalization: path_normalization?,
        http_stat_prefix: None,
        listener_stat_prefix: None,
        health_check: None,
        tls: tls?,
    })
}

/// The listener's virtual hosts, with what each of their routes' `rate_limit` said.
fn virtual_hosts<'a>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    marks: &mut Marks<'a>,
) -> Option<(Vec<VirtualHost>, Vec<Vec<RouteLimits>>)> {
    let (hosts, limits): (Vec<_>, Vec<_>) =
        non_empty_list(node, diag, "virtual host", |item, diag| {
            virtual_host(item, diag, marks)
        })?
        .into_iter()
        .unzip();
    // Names and domains are unique in a listener (Envoy refuses a repeated domain: which
    // host would serve it?).
    let items = node.seq(diag)?;
    let mut ok = true;
    let mut names: Vec<(&str, usize)> = Vec::new();
    let mut domains: Vec<(&str, usize)> = Vec::new();
    for (i, (host, item)) in hosts.iter().zip(&items).enumerate() {
        if let Some((_, first)) = names.iter().find(|(n, _)| *n == host.name) {
            item.error(
                diag,
                format!(
                    "duplicate virtual host name {:?} (first is host {first})",
                    host.name
                ),
            );
            ok = false;
        }
        names.push((&host.name, i));
        for d in &host.domains {
            if let Some((_, first)) = domains.iter().find(|(x, _)| x == d) {
                item.error(
                    diag,
                    format!("domain {d:?} is already served by virtual host {first}"),
                );
                ok = false;
            }
            domains.push((d, i));
        }
    }
    ok.then_some((hosts, limits))
}

fn virtual_host<'a>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    marks: &mut Marks<'a>,
) -> Option<(VirtualHost, Vec<RouteLimits>)> {
    let map = node.map(diag, VIRTUAL_HOST_KEYS)?;
    let name = map
        .field(diag, "name")
        .and_then(|n| super::fields::name(&n, diag));
    let domains = map
        .field(diag, "domains")
        .and_then(|n| non_empty_list(&n, diag, "domain", |item, diag| domain(item, diag)));
    let routes = map.field(diag, "routes").and_then(|n| {
        non_empty_list(&n, diag, "route", |item, diag| route(item, diag, marks))
            .map(|routes| routes.into_iter().unzip())
    });
    let headers = decode_headers::mutations(&map, diag);
    let cors = match map.optional("cors") {
        Some(n) => decode_cors::policy(&n, diag).map(Some),
        None => Some(None),
    };
    let observe = super::decode_stats::vhost(&map, diag);
    let (routes, limits) = routes?;
    Some((
        VirtualHost {
            observe: observe?,
            name: name?.to_owned(),
            domains: domains?,
            routes,
            headers: headers?,
            cors: cors?,
        },
        limits,
    ))
}

/// A domain pattern: `*`, a name with at most one leading or trailing `*`, an optional
/// `:port`.
fn domain(node: &Node<'_>, diag: &mut Diagnostics) -> Option<String> {
    let text = node.str(diag)?;
    let bare = text
        .strip_prefix('*')
        .or_else(|| text.strip_suffix('*'))
        .unwrap_or(text);
    let valid = text == "*"
        || (!bare.is_empty()
            && bare.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']')
            }));
    if !valid {
        node.error(
            diag,
            format!(
                "{text:?} is not a domain: a host name (with `:port` to serve only that port), \
                 a leading `*` (`*.example.com`), a trailing `*` (`api.*`), or `*`"
            ),
        );
        return None;
    }
    Some(text.to_ascii_lowercase())
}

fn path_normalization(node: &Node<'_>, diag: &mut Diagnostics) -> Option<PathNormalization> {
    let map = node.map(diag, PATH_NORMALIZATION_KEYS)?;
    let merge_slashes = match map.optional("merge_slashes") {
        Some(n) => {
            let value = n.peek_bool();
            if value.is_none() {
                n.wrong_type(diag, "`true` or `false`");
            }
            value
        }
        None => Some(false),
    };
    let escaped_slashes = match map.optional("escaped_slashes") {
        Some(n) => choice(
            &n,
            diag,
            &[
                ("keep", EscapedSlashes::Keep),
                ("reject", EscapedSlashes::Reject),
                ("unescape", EscapedSlashes::Unescape),
            ],
        ),
        None => Some(EscapedSlashes::default()),
    };
    Some(PathNormalization {
        merge_slashes: merge_slashes?,
        escaped_slashes: escaped_slashes?,
    })
}

fn http1(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Http1Settings> {
    let map = node.map(diag, HTTP1_KEYS)?;
    let defaults = Http1Settings::default();
    let size_or = |key: &str, default: usize, diag: &mut Diagnostics| match map.optional(key) {
        Some(n) => size(&n, diag),
        None => Some(default),
    };
    let max_request_line = size_or("max_request_line", defaults.max_request_line, diag);
    let max_request_head = size_or("max_request_head", defaults.max_request_head, diag);
    let max_chunk_extension = size_or("max_chunk_extension", defaults.max_chunk_extension, diag);
    let max_trailer_section = size_or("max_trailer_section", defaults.max_trailer_section, diag);
    let limit = i64::try_from(Http1Settings::MAX_HEADERS_LIMIT).unwrap_or(i64::MAX);
    let max_headers = match map.optional("max_headers") {
        Some(n) => n
            .int_in(diag, "a header count", 1..=limit)
            .and_then(|n| usize::try_from(n).ok()),
        None => Some(defaults.max_headers),
    };
    let underscores = match map.optional("headers_with_underscores") {
        Some(n) => choice(
            &n,
            diag,
            &[
                ("allow", Underscores::Allow),
                ("drop", Underscores::Drop),
                ("reject", Underscores::Reject),
            ],
        ),
        None => Some(Underscores::Allow),
    };
    let settings = Http1Settings {
        max_request_line: max_request_line?,
        max_request_head: max_request_head?,
        max_headers: max_headers?,
        max_chunk_extension: max_chunk_extension?,
        max_trailer_section: max_trailer_section?,
        underscores: underscores?,
    };
    // The request line is part of the head, so a larger line limit could never be reached.
    if settings.max_request_line > settings.max_request_head {
        let at = map
            .optional("max_request_line")
            .unwrap_or_else(|| node.clone());
        at.error(
            diag,
            format!(
                "max_request_line ({}) is larger than max_request_head ({}), which includes it",
                settings.max_request_line, settings.max_request_head
            ),
        );
        return None;
    }
    Some(settings)
}

const WEIGHTED_KEYS: &[&str] = &["clusters", "sticky"];
const CLUSTER_WEIGHT_KEYS: &[&str] = &["name", "weight"];

/// `weighted_clusters: {clusters: [{name, weight}, ...], sticky}`: a canary split.
fn weighted_clusters<'a>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    marks: &mut Marks<'a>,
) -> Option<RouteAction> {
    let map = node.map(diag, WEIGHTED_KEYS)?;
    let sticky = super::fields::optional_bool(&map, "sticky", false, diag);
    let list = map.field(diag, "clusters")?;
    let clusters = super::fields::non_empty_list(&list, diag, "cluster", |item, diag| {
        let entry = item.map(diag, CLUSTER_WEIGHT_KEYS)?;
        let name_node = entry.field(diag, "name")?;
        let name = name_node.str(diag)?;
        // Existence is checked once all clusters are known (validate).
        marks.cluster_refs.push((name, name_node.clone()));
        let max = WeightedClusters::MAX_TOTAL as i64;
        let weight = entry
            .field(diag, "weight")?
            .int_in(diag, "a weight", 0..=max)?;
        Some((name.to_owned(), u32::try_from(weight).ok()?))
    })?;
    let total: u64 = clusters.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 || total > WeightedClusters::MAX_TOTAL {
        list.error(
            diag,
            format!(
                "the weights add up to {total}; they must add up to 1 .. {}",
                WeightedClusters::MAX_TOTAL
            ),
        );
        return None;
    }
    Some(RouteAction::Weighted(WeightedClusters {
        clusters,
        sticky: sticky?,
    }))
}

/// A route, with what its `rate_limit` says (resolved by the listener: its
/// `rate_limit` is `None` until then).
fn route<'a>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    marks: &mut Marks<'a>,
) -> Option<(Route, RouteLimits)> {
    let map = node.map(diag, ROUTE_KEYS)?;
    let matched = map.field(diag, "match").and_then(|n| route_match(&n, diag));
    let actions: Vec<_> = [
        "cluster",
        "weighted_clusters",
        "direct_response",
        "redirect",
    ]
    .into_iter()
    .filter_map(|key| map.optional(key).map(|n| (key, n)))
    .collect();
    let action = match actions.as_slice() {
        [("cluster", cluster)] => cluster.str(diag).map(|name| {
            // Existence is checked once all clusters are known (validate).
            marks.cluster_refs.push((name, cluster.clone()));
            RouteAction::Cluster(name.to_owned())
        }),
        [("weighted_clusters", split)] => weighted_clusters(split, diag, marks),
        [("direct_response", direct)] => {
            direct_response(direct, diag, &marks.base_dir).map(RouteAction::DirectResponse)
        }
        [(_, redirect)] => decode_rewrite::redirect(redirect, diag).map(RouteAction::Redirect),
        [] => {
            map.error(
                diag,
                "a route needs one of `cluster`, `weighted_clusters`, `direct_response` or `redirect`",
            );
            None
        }
        [_, (_, second), ..] => {
            second.error(
                diag,
                "a route has exactly one of `cluster`, `weighted_clusters`, `direct_response` or `redirect`",
            );
            None
        }
    };
    // Keys that only a forwarding route takes are refused on the others (a route without
    // any action already has its error).
    let forwards = !map.has("direct_response") && !map.has("redirect");
    let timeout = match map.optional("timeout") {
        // A direct response never waits on an upstream: a timeout there is a mistake
        // (usually a route that lost its `cluster`), not something to silently ignore.
        Some(n) if !forwards => {
            n.error(diag, "`timeout` applies only to routes with a `cluster`");
            None
        }
        Some(n) => duration(&n, diag),
        None => Some(Route::DEFAULT_TIMEOUT),
    };
    let headers = decode_headers::mutations(&map, diag);
    let max_request_body = match map.optional("max_request_body") {
        // Like `timeout`: a direct response reads no body to limit.
        Some(n) if !forwards => {
            n.error(
                diag,
                "`max_request_body` applies only to routes with a `cluster`",
            );
            None
        }
        Some(n) => size(&n, diag).map(|s| Some(s as u64)),
        None => Some(None),
    };
    let template = match &matched {
        Some((RouteMatch::Template(t), _)) => Some(t.as_str()),
        _ => None,
    };
    let rewrite = decode_rewrite::rewrite(&map, (forwards, template), diag);
    let cors = match map.optional("cors") {
        Some(n) => decode_cors::policy(&n, diag).map(Some),
        None => Some(None),
    };
    let idle_timeout = match map.optional("idle_timeout") {
        Some(n) if !forwards => {
            n.error(
                diag,
                "`idle_timeout` applies only to routes with a `cluster`",
            );
            None
        }
        Some(n) => duration(&n, diag).map(Some),
        None => Some(None),
    };
    let upgrades = match map.optional("upgrades") {
        Some(n) if !forwards => {
            n.error(diag, "`upgrades` applies only to routes with a `cluster`");
            None
        }
        Some(n) => upgrade_list(&n, diag).map(Some),
        None => Some(None),
    };
    let name = match map.optional("name") {
        Some(n) => n.str(diag).and_then(|text| {
            let ok = !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
            if !ok {
                n.error(diag, format!("{text:?}: a route name is printable ASCII"));
                return None;
            }
            Some(Some(text.to_owned()))
        }),
        None => Some(None),
    };
    let hash_policy = match map.optional("hash_on") {
        Some(n) if !forwards => {
            n.error(diag, "`hash_on` applies only to routes with a `cluster`");
            None
        }
        // Empty until then: the cluster's rules are given once clusters are read.
        Some(n) => super::decode_balance::hash_rules(&n, diag),
        None => Some(Vec::new()),
    };
    let fault = match map.optional("fault") {
        Some(n) if !forwards => {
            n.error(diag, "`fault` applies only to routes with a `cluster`");
            None
        }
        Some(n) => super::decode_fault::policy(&n, diag, &mut marks.cluster_refs).map(Some),
        None => Some(None),
    };
    let auth = decode_auth::route_auth(&map, diag, marks);
    let authorization = super::decode_authz::route(&map, diag);
    let rate_limit =
        decode_ratelimit::route(&map, diag, &mut marks.rate_limit_names, marks.auth.as_ref());
    let resilience = decode_resilience::route(&map, forwards, diag, marks);
    let tracing = match map.optional("tracing") {
        Some(n) => {
            marks.route_tracing.push(n.clone());
            super::decode_observability::route(&n, diag).map(Some)
        }
        None => Some(None),
    };
    let name = name?;
    let stat_prefix = super::decode_stats::route(&map, name.as_deref(), diag);
    let (matcher, conditions) = matched?;
    let resilience = resilience?;
    let route = Route {
        observe: super::observability::RouteObservability {
            tracing: tracing?,
            stat_prefix: stat_prefix?,
        },
        retry: resilience.retry,
        mirrors: resilience.mirrors,
        fault: fault?,
        max_stream_duration: resilience.max_stream_duration,
        priority: resilience.priority,
        attempt_count: resilience.attempt_count,
        auth: auth?,
        authorization: authorization?,
        rate_limit: None,
        hash_policy: hash_policy?,
        name,
        matcher,
        action: action?,
        timeout: timeout?,
        conditions,
        headers: headers?,
        max_request_body: max_request_body?,
        rewrite: rewrite?,
        cors: cors?,
        upgrades: upgrades?,
        idle_timeout: idle_timeout?,
    };
    Some((route, rate_limit?))
}

/// Upgrade protocol names (`websocket`), lower-cased. `h2c` is refused: a cleartext
/// HTTP/2 upgrade is not tunnelled (its request is served as HTTP/1.1).
fn upgrade_list(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<String>> {
    list(node, diag, |item, diag| {
        let name = item.str(diag)?;
        if name.is_empty() || !name.bytes().all(super::fields::token_byte) {
            item.error(
                diag,
                format!("{name:?} is not a protocol name (an HTTP token)"),
            );
            return None;
        }
        if name.eq_ignore_ascii_case("h2c") {
            item.error(
                diag,
                "`h2c` cannot be tunnelled; cleartext HTTP/2 upgrades are served as HTTP/1.1",
            );
            return None;
        }
        Some(name.to_ascii_lowercase())
    })
}

fn direct_response(
    node: &Node<'_>,
    diag: &mut Diagnostics,
    base_dir: &std::path::Path,
) -> Option<DirectResponse> {
    let map = node.map(diag, DIRECT_RESPONSE_KEYS)?;
    let status = map
        .field(diag, "status")
        .and_then(|n| n.int_in(diag, "a status code", 200..=599))
        .and_then(|s| u16::try_from(s).ok());
    let body = match map.optional("body") {
        Some(n) if n.peek_str().is_some() => {
            n.str(diag).map(|s| Bytes::copy_from_slice(s.as_bytes()))
        }
        Some(n) if n.peek_int().is_some() || n.peek_bool().is_some() => {
            n.wrong_type(
                diag,
                "a string, or a mapping with `inline_string` or `filename`",
            );
            None
        }
        Some(n) => body_source(&n, diag, base_dir),
        None => Some(Bytes::new()),
    };
    let content_type = match map.optional("content_type") {
        Some(n) => content_type(&n, diag),
        None => Some(DirectResponse::DEFAULT_CONTENT_TYPE.to_owned()),
    };
    Some(DirectResponse {
        status: status?,
        body: body?,
        content_type: content_type?,
    })
}

/// The largest direct-response body read from a file (Envoy's default cap is 4 KiB,
/// `max_direct_response_body_size_bytes`; ringway's bodies live in every worker's
/// snapshot, so a larger one is refused rather than silently truncated).
const MAX_BODY_FILE: u64 = 1 << 20;

/// Envoy's `DataSource`: `{inline_string: text}` or `{filename: path}` (relative names
/// from the config file's directory, read at load and at every reload).
fn body_source(
    node: &Node<'_>,
    diag: &mut Diagnostics,
    base_dir: &std::path::Path,
) -> Option<Bytes> {
    let map = node.map(diag, &["inline_string", "filename"])?;
    match (map.optional("inline_string"), map.optional("filename")) {
        (Some(n), None) => n.str(diag).map(|s| Bytes::copy_from_slice(s.as_bytes())),
        (None, Some(n)) => {
            let name = n.str(diag)?;
            let path = base_dir.join(name);
            // A regular file, read up to the limit: a device (`/dev/zero`) or a FIFO
            // would otherwise stall the load for ever (their length reads 0).
            let read = std::fs::metadata(&path).and_then(|meta| {
                if !meta.is_file() {
                    return Err(std::io::Error::other("not a regular file"));
                }
                use std::io::Read as _;
                let mut bytes = Vec::new();
                std::fs::File::open(&path)?
                    .take(MAX_BODY_FILE + 1)
                    .read_to_end(&mut bytes)?;
                if bytes.len() as u64 > MAX_BODY_FILE {
                    return Err(std::io::Error::other(format!(
                        "over {MAX_BODY_FILE} bytes; a direct response body is at most that"
                    )));
                }
                Ok(bytes)
            });
            match read {
                Ok(bytes) => Some(Bytes::from(bytes)),
                Err(e) => {
                    n.error(diag, format!("cannot read {}: {e}", path.display()));
                    None
                }
            }
        }
        _ => {
            map.error(diag, "a body has one of `inline_string` or `filename`");
            None
        }
    }
}

/// Must be a valid, non-empty header value: no CR/LF (header injection) or other controls.
fn content_type(node: &Node<'_>, diag: &mut Diagnostics) -> Option<String> {
    let text = node.str(diag)?;
    let valid = !text.trim().is_empty() && text.chars().all(|c| c == ' ' || c.is_ascii_graphic());
    if !valid {
        node.error(
            diag,
            format!("{text:?} is not a valid header value (printable ASCII, not empty)"),
        );
        return None;
    }
    Some(text.to_owned())
}
