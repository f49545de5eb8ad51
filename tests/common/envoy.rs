//! Envoy v3 bootstraps for the tests: one listener with an HTTP connection manager whose
//! one virtual host and HTTP filters the test writes, and static clusters on loopback.

/// A bootstrap with the admin listener on `admin`, the listener `ingress` on `port`,
/// `virtual_host` (the host's keys after `domains`, `routes:` included, indented by 14),
/// `filters` (HTTP filters before the router, items indented by 10) and `clusters`
/// (name, port on 127.0.0.1).
pub fn bootstrap(
    (admin, port): (u16, u16),
    virtual_host: &str,
    filters: &str,
    clusters: &[(&str, u16)],
) -> String {
    let mut yaml = format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
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
{virtual_host}          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
"#
    );
    for (name, port) in clusters {
        yaml.push_str(&format!(
            "  - name: {name}\n    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}\n"
        ));
    }
    yaml
}
