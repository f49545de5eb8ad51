//! The short form: what a gateway user writes first.
//!
//! ```yaml
//! routes:
//!   - path: /api/orders/**
//!     upstream: order-service
//!   - path: /api/customers/**
//!     upstream: customer-service:8080
//! ```
//!
//! Design: a file without `listeners` may have top-level `routes` (and `listen`, the
//! default listener's address, `0.0.0.0:8080` unless given). Each short route is checked
//! here, at its own line and column; then the whole short form is written out as the one
//! full-form document it means ([`expand`]) and that text is decoded like any other
//! file, so the short form cannot mean anything the full form does not, and
//! `--mode validate` prints exactly what runs. The rest of the file (`admin`, `workers`,
//! `clusters`, `access_log`...) applies unchanged.
//!
//! What each key becomes: `path` is a path pattern (`/api/orders/**`, `/users/*/orders`,
//! `/api/{id}`: `match.template`, with Envoy's `uri_template` meaning, so `/api/orders/**`
//! does not match `/api/orders`); a path without `*` or `{` matches exactly that path
//! (`match.path`). `upstream` names a cluster of the file's `clusters` if one has that
//! name; otherwise it is `host[:port]` (port 80 by default) or `ip:port`, and becomes a
//! cluster of its own (`strict_dns` for a name, `static` for an address) named after it,
//! shared by every route naming the same upstream. `methods` is `match.methods`. `auth`
//! takes the full form's requirement syntax (`jwt`, a provider's name, `api_key`,
//! `none`, `{any: [...]}`, ...), resolved against the file's top-level `auth` where it is
//! written, and becomes the route's `auth` in the expansion (`jwt` written as the
//! provider's name); the top-level `auth` applies unchanged. `rate_limit` takes the full
//! form's values (`100/min`, a limit mapping, a list of them, `none`; see
//! `decode_ratelimit`), is checked where it is written (names unique among the short
//! routes, which share the default listener) and is written into the expansion as the
//! route's `rate_limit`, in flow style.

use std::fmt::Write;

use super::addr::{check_name, parse_host_port, parse_socket_addr};
use super::error::{Diagnostics, Pos};
use super::fields::{non_empty_list, AuthMarks};
use super::model::Cluster;
use super::node::Node;
use super::route_match::methods;

const SHORT_ROUTE_KEYS: &[&str] = &["path", "upstream", "methods", "auth", "rate_limit"];

/// The default listener's name and address.
pub(crate) const DEFAULT_LISTENER: &str = "default";
pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// One short route, checked.
#[derive(Debug)]
pub(super) struct ShortRoute {
    path: String,
    methods: Vec<String>,
    upstream: Upstream,
    /// The route's `auth`, as full-form YAML text.
    auth: Option<String>,
    /// The route's `rate_limit`, as full-form YAML text.
    rate_limit: Option<String>,
    /// Where `upstream` is written, for errors found once the clusters are known.
    upstream_at: (Pos, String),
}

/// What `upstream` names, before the file's clusters are known.
#[derive(Debug)]
struct Upstream {
    /// As written (a cluster of that name wins).
    text: String,
    /// The host (an IP without brackets) and port, when it is not a cluster's name.
    target: Result<(String, u16), String>,
}

/// The short form's keys, decoded: its routes and the default listener's address.
#[derive(Debug)]
pub(super) struct ShortForm {
    routes: Vec<ShortRoute>,
    listen: String,
}

/// Decodes top-level `routes` and `listen`.
pub(super) fn short_form<'a>(
    routes: &Node<'a>,
    listen: Option<&Node<'_>>,
    auth: Option<&AuthMarks>,
    diag: &mut Diagnostics,
) -> Option<ShortForm> {
    let listen = match listen {
        Some(n) => {
            let text = n.str(diag)?;
            if let Err(message) = parse_socket_addr(text) {
                n.error(diag, message);
                return None;
            }
            text.to_owned()
        }
        None => DEFAULT_LISTEN.to_owned(),
    };
    let mut names = Vec::new();
    let routes = non_empty_list(routes, diag, "route", |item, diag| {
        short_route(item, auth, &mut names, diag)
    });
    let unique = super::decode_ratelimit::unique_names(&mut names, diag);
    let routes = routes?;
    unique.then_some(())?;
    Some(ShortForm { routes, listen })
}

fn short_route<'a>(
    node: &Node<'a>,
    auth: Option<&AuthMarks>,
    names: &mut Vec<(&'a str, Node<'a>)>,
    diag: &mut Diagnostics,
) -> Option<ShortRoute> {
    let map = node.map(diag, SHORT_ROUTE_KEYS)?;
    let path = map.field(diag, "path").and_then(|n| {
        let text = n.str(diag)?;
        let checked = if text.contains(['*', '{']) {
            crate::config::pattern::template(text).map(|_| ())
        } else if !text.starts_with('/') {
            Err(format!("a path starts with `/`, e.g. `/{text}`"))
        } else {
            crate::config::pattern::template(text).map(|_| ())
        };
        match checked {
            Ok(()) => Some(text.to_owned()),
            Err(message) => {
                n.error(diag, message);
                None
            }
        }
    });
    let upstream_node = map.field(diag, "upstream");
    let upstream = upstream_node.as_ref().and_then(|n| {
        let text = n.str(diag)?;
        Some(Upstream {
            text: text.to_owned(),
            target: parse_host_port(text, Some(80)),
        })
    });
    let methods = match map.optional("methods") {
        Some(n) => methods(&n, diag),
        None => Some(Vec::new()),
    };
    let rate_limit = match map.optional("rate_limit") {
        Some(n) => super::decode_ratelimit::short_route(&n, diag, names, auth).map(Some),
        None => Some(None),
    };
    let auth = match map.optional("auth") {
        Some(n) => super::decode_auth::short_route_auth(&n, diag, auth).map(Some),
        None => Some(None),
    };
    let upstream_node = upstream_node?;
    Some(ShortRoute {
        path: path?,
        methods: methods?,
        upstream: upstream?,
        auth: auth?,
        rate_limit: rate_limit?,
        upstream_at: (upstream_node.pos(), upstream_node.path().to_owned()),
    })
}

/// The full-form document the short form means, given the file's own clusters; an
/// error names the route whose upstream cannot become a cluster.
pub(super) fn expand(
    short: &ShortForm,
    clusters: &[Cluster],
    diag: &mut Diagnostics,
) -> Option<String> {
    let mut out = String::new();
    let _ = writeln!(out, "listeners:");
    let _ = writeln!(out, "  - name: {DEFAULT_LISTENER}");
    let _ = writeln!(out, "    address: {}", quote(&short.listen));
    let _ = writeln!(out, "    routes:");
    // Implicit clusters, in order of first use: (name, endpoint).
    let mut implicit: Vec<(String, String)> = Vec::new();
    let mut failed = false;
    for route in &short.routes {
        let (pos, path) = &route.upstream_at;
        let key = if route.path.contains(['*', '{']) {
            "template"
        } else {
            "path"
        };
        let _ = write!(out, "      - match: {{ {key}: {}", quote(&route.path));
        if !route.methods.is_empty() {
            let methods: Vec<String> = route.methods.iter().map(|m| quote(m)).collect();
            let _ = write!(out, ", methods: [{}]", methods.join(", "));
        }
        let _ = writeln!(out, " }}");
        let upstream = &route.upstream;
        let cluster = if clusters.iter().any(|c| c.name == upstream.text) {
            upstream.text.clone()
        } else {
            match &upstream.target {
                Ok((host, port)) => {
                    let endpoint = if host.contains(':') {
                        format!("[{host}]:{port}")
                    } else {
                        format!("{host}:{port}")
                    };
                    let name = cluster_name(host, *port);
                    if clusters.iter().any(|c| c.name == name) {
                        diag.error(
                            *pos,
                            path,
                            format!(
                                "upstream {:?} would be cluster {name:?}, which the file's `clusters` already define; name that cluster here instead",
                                upstream.text
                            ),
                        );
                        failed = true;
                    } else if !implicit.iter().any(|(n, _)| *n == name) {
                        implicit.push((name.clone(), endpoint));
                    }
                    name
                }
                Err(message) => {
                    diag.error(
                        *pos,
                        path,
                        format!("{message} (nor is it the name of a cluster in `clusters`)"),
                    );
                    failed = true;
                    continue;
                }
            }
        };
        let _ = writeln!(out, "        cluster: {}", quote(&cluster));
        if let Some(auth) = &route.auth {
            let _ = writeln!(out, "        auth: {auth}");
        }
        if let Some(rate_limit) = &route.rate_limit {
            let _ = writeln!(out, "        rate_limit: {rate_limit}");
        }
    }
    if !implicit.is_empty() {
        let _ = writeln!(out, "clusters:");
        for (name, endpoint) in &implicit {
            let _ = writeln!(out, "  - name: {}", quote(name));
            let _ = writeln!(out, "    endpoints: [{}]", quote(endpoint));
        }
    }
    (!failed).then_some(out)
}

/// The implicit cluster of `host:port`: the host alone for port 80, else `host_port`;
/// characters a cluster name cannot have become `_`.
fn cluster_name(host: &str, port: u16) -> String {
    let base = if port == 80 {
        host.to_owned()
    } else {
        format!("{host}_{port}")
    };
    let name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    debug_assert!(check_name(&name).is_ok());
    name
}

/// A YAML double-quoted scalar (JSON string syntax).
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_cluster_names() {
        assert_eq!(cluster_name("order-service", 80), "order-service");
        assert_eq!(cluster_name("order-service", 8080), "order-service_8080");
        assert_eq!(cluster_name("127.0.0.1", 9001), "127.0.0.1_9001");
        assert_eq!(cluster_name("::1", 9001), "__1_9001");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("/a/{b}/**"), "\"/a/{b}/**\"");
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
