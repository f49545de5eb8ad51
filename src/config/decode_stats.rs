//! The native stats keys: a route's `stats`, a virtual host's `stats` and
//! `virtual_clusters`, a cluster's `per_endpoint_stats` (docs/observability.md,
//! "Metrics").
//!
//! Design: every scope here is opt-in, because each costs a block of cells per worker
//! (and a route's per-code block is 500 cells); nothing is counted per route unless the
//! config asks. Names are kept as written; `snapshot` turns them into stat-name segments
//! (characters other than `[A-Za-z0-9_-]` as `_`) so a `.` cannot split a name.

use super::error::Diagnostics;
use super::fields::{list, optional_bool};
use super::node::{Map, Node};
use super::observability::{VhostObservability, VirtualCluster};

const VIRTUAL_CLUSTER_KEYS: &[&str] = &["name", "headers"];

/// A route's `stats`: `true` (the route's `name` is the prefix: an error without one),
/// `false` (none, the default) or a prefix.
pub(super) fn route(
    map: &Map<'_>,
    route_name: Option<&str>,
    diag: &mut Diagnostics,
) -> Option<Option<String>> {
    let Some(n) = map.optional("stats") else {
        return Some(None);
    };
    if let Some(on) = n.peek_bool() {
        if !on {
            return Some(None);
        }
        return match route_name {
            Some(name) => Some(Some(name.to_owned())),
            None => {
                n.error(
                    diag,
                    "`stats: true` names the route's stats after the route: give the route a \
                     `name`, or write the prefix (`stats: orders`)",
                );
                None
            }
        };
    }
    let Some(text) = n.peek_str() else {
        n.wrong_type(diag, "true, false or a stat prefix");
        return None;
    };
    if text.is_empty() {
        n.error(diag, "the stat prefix is empty");
        return None;
    }
    Some(Some(text.to_owned()))
}

/// A virtual host's `stats` (count every request under `vcluster.other.`) and
/// `virtual_clusters` (request classes; the unmatched ones under `other`).
pub(super) fn vhost(map: &Map<'_>, diag: &mut Diagnostics) -> Option<VhostObservability> {
    let all = optional_bool(map, "stats", false, diag);
    let virtual_clusters = match map.optional("virtual_clusters") {
        Some(n) => virtual_clusters(&n, diag),
        None => Some(Vec::new()),
    };
    let virtual_clusters = virtual_clusters?;
    let other = all? || !virtual_clusters.is_empty();
    Some(VhostObservability {
        virtual_clusters,
        other,
    })
}

fn virtual_clusters(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<VirtualCluster>> {
    let items = node.seq(diag)?;
    let clusters = list(node, diag, |item, diag| {
        let map = item.map(diag, VIRTUAL_CLUSTER_KEYS)?;
        let name = map.field(diag, "name").and_then(|n| {
            let text = n.str(diag)?;
            // `other` counts the requests no class matched (Envoy's name).
            if text.is_empty() || text == "other" {
                n.error(
                    diag,
                    format!("{text:?} cannot name a virtual cluster (`other` counts the rest)"),
                );
                return None;
            }
            Some(text.to_owned())
        });
        let headers = match map.optional("headers") {
            Some(n) => super::route_match::headers(&n, diag),
            None => Some(Vec::new()),
        };
        Some(VirtualCluster {
            name: name?,
            headers: headers?,
        })
    })?;
    for (i, c) in clusters.iter().enumerate() {
        if let Some(first) = clusters[..i].iter().position(|d| d.name == c.name) {
            items[i].error(
                diag,
                format!(
                    "duplicate virtual cluster {:?} (first is item {first})",
                    c.name
                ),
            );
            return None;
        }
    }
    Some(clusters)
}

#[cfg(test)]
mod tests {
    use crate::config::{observability::VhostObservability, ValueMatch};

    fn load(yaml: &str) -> Result<crate::config::Config, String> {
        // A bootstrap is named like Envoy's, so errors read `envoy.yaml:line:col`.
        let name = if yaml.starts_with("static_resources") {
            "envoy.yaml"
        } else {
            "t.yaml"
        };
        crate::config::Config::parse(yaml, std::path::Path::new(name)).map_err(|e| e.to_string())
    }

    fn config(route: &str, vhost: &str) -> String {
        format!(
            "listeners:\n- name: l\n  address: 127.0.0.1:0\n  virtual_hosts:\n  - name: api\n    \
             domains: ['*']\n{vhost}    routes:\n    - match: {{prefix: /}}\n      cluster: c\n{route}\
             clusters:\n- name: c\n  endpoints: [127.0.0.1:1]\n  per_endpoint_stats: true\n"
        )
    }

    #[test]
    fn route_stats_take_a_prefix_or_the_route_name() {
        let c = load(&config("      name: orders\n      stats: true\n", "")).unwrap();
        let vh = &c.listeners[0].virtual_hosts[0];
        assert_eq!(vh.routes[0].observe.stat_prefix.as_deref(), Some("orders"));
        assert!(c.clusters[0].per_endpoint_stats);
        let c = load(&config("      stats: o2\n", "")).unwrap();
        let vh = &c.listeners[0].virtual_hosts[0];
        assert_eq!(vh.routes[0].observe.stat_prefix.as_deref(), Some("o2"));
        let c = load(&config("      stats: false\n", "")).unwrap();
        assert_eq!(
            c.listeners[0].virtual_hosts[0].routes[0]
                .observe
                .stat_prefix,
            None
        );
        let e = load(&config("      stats: true\n", "")).unwrap_err();
        assert!(
            e.contains("give the route a `name`") && e.contains("t.yaml:"),
            "{e}"
        );
        let e = load(&config("      stats: 3\n", "")).unwrap_err();
        assert!(e.contains("stats"), "{e}");
    }

    #[test]
    fn virtual_hosts_count_classes_and_the_rest() {
        let vh = "    stats: true\n";
        let c = load(&config("", vh)).unwrap();
        let o = &c.listeners[0].virtual_hosts[0].observe;
        assert_eq!(
            *o,
            VhostObservability {
                virtual_clusters: vec![],
                other: true
            }
        );
        let vh = "    virtual_clusters:\n    - name: writes\n      headers: [{name: ':method', exact: POST}]\n";
        let c = load(&config("", vh)).unwrap();
        let o = &c.listeners[0].virtual_hosts[0].observe;
        assert!(o.other);
        assert_eq!(o.virtual_clusters[0].name, "writes");
        assert_eq!(o.virtual_clusters[0].headers[0].name, ":method");
        assert_eq!(
            o.virtual_clusters[0].headers[0].value,
            ValueMatch::Exact("POST".into())
        );
        let dup = "    virtual_clusters:\n    - name: a\n    - name: a\n";
        let e = load(&config("", dup)).unwrap_err();
        assert!(e.contains("duplicate virtual cluster"), "{e}");
        let other = "    virtual_clusters:\n    - name: other\n";
        let e = load(&config("", other)).unwrap_err();
        assert!(e.contains("`other`"), "{e}");
        let unknown = "    virtual_clusters:\n    - name: a\n      pattern: /x\n";
        let e = load(&config("", unknown)).unwrap_err();
        assert!(e.contains("pattern"), "{e}");
    }

    /// An Envoy bootstrap: `vhost` after the host's `domains` (indented 14), `cluster`
    /// keys (indented 4).
    fn envoy(vhost: &str, cluster: &str) -> String {
        format!(
            r#"static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
{vhost}          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: echo
{cluster}    load_assignment:
      cluster_name: echo
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 1 }} }} }}
"#
        )
    }

    const ROUTES: &str = "              routes:\n              - match: { prefix: / }\n                stat_prefix: everything\n                route: { cluster: echo }\n";

    #[test]
    fn envoy_stat_prefix_virtual_clusters_and_per_endpoint_stats() {
        let vhost = format!(
            "              virtual_clusters:\n              - name: reads\n                headers: [{{ name: ':method', string_match: {{ exact: GET }} }}]\n{ROUTES}"
        );
        let c = load(&envoy(
            &vhost,
            "    track_cluster_stats: { per_endpoint_stats: true }\n",
        ))
        .unwrap();
        let vh = &c.listeners[0].virtual_hosts[0];
        assert_eq!(
            vh.routes[0].observe.stat_prefix.as_deref(),
            Some("everything")
        );
        assert!(vh.observe.other);
        assert_eq!(vh.observe.virtual_clusters[0].name, "reads");
        assert_eq!(
            vh.observe.virtual_clusters[0].headers[0].value,
            ValueMatch::Exact("GET".into())
        );
        assert!(c.clusters[0].per_endpoint_stats);
        let c = load(&envoy(ROUTES, "")).unwrap();
        assert!(!c.clusters[0].per_endpoint_stats);
        assert_eq!(
            c.listeners[0].virtual_hosts[0].observe,
            VhostObservability::default()
        );
    }

    #[test]
    fn envoy_refusals_name_the_field() {
        let e = load(&envoy(
            ROUTES,
            "    track_cluster_stats: { timeout_budgets: true }\n",
        ))
        .unwrap_err();
        assert!(
            e.contains("timeout_budgets") && e.contains("envoy.yaml:"),
            "{e}"
        );
        let other =
            format!("              virtual_clusters:\n              - name: other\n{ROUTES}");
        let e = load(&envoy(&other, "")).unwrap_err();
        assert!(e.contains("`other`"), "{e}");
        // v2's `pattern` is gone from v3's VirtualCluster: refused by name.
        let v2 = format!(
            "              virtual_clusters:\n              - name: a\n                pattern: /x\n{ROUTES}"
        );
        let e = load(&envoy(&v2, "")).unwrap_err();
        assert!(e.contains("pattern"), "{e}");
    }
}
