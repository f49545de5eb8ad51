//! Envoy v3 bootstraps through the real binary: the corpus of real Envoy configs with
//! each file's outcome pinned (tests/envoy/corpus, origins in its LICENSE-NOTE.txt), the
//! same routing from a native config and its Envoy equivalent request by request (both
//! drivers), and Envoy's command-line flags (`--config-yaml`,
//! `--allow-unknown-static-fields`, `--accept-degraded`).

mod common;

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use common::upstream::Upstream;
use common::*;

/// Each corpus file's `--mode validate` outcome: no lines for "loads", else the exact
/// errors (file names relative to the corpus). Update a pin when a later issue makes a
/// file load (TLS, rate limiting, health checks, xDS).
const PINS: &[(&str, &[&str])] = &[
    ("cds.yaml", &[
        "cds.yaml:1:1: resources: this is an xDS DiscoveryResponse (`resources`), not a bootstrap: Envoy reads it through `dynamic_resources` (filesystem xDS), which ringway does not support yet",
    ]),
    ("dynamic-config-fs_envoy.yaml", &[
        "dynamic-config-fs_envoy.yaml:6:3: dynamic_resources: unsupported: ringway does not implement `dynamic_resources` of envoy.config.bootstrap.v3.Bootstrap (yet); remove it or see docs/envoy.md",
    ]),
    ("edge.yaml", &[
        "edge.yaml:6:16: overload_manager.resource_monitors[0].typed_config: unsupported extension `envoy.resource_monitors.fixed_heap`: ringway does not implement `@type` envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig (yet; docs/envoy.md lists the extensions it does)",
    ]),
    ("envoy-demo-tls-client-auth.yaml", &[
        "envoy-demo-tls-client-auth.yaml:38:17: static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.validation_context.trusted_ca: cannot read certs/cacert.pem: No such file or directory (os error 2)",
        "envoy-demo-tls-client-auth.yaml:44:15: static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0]: cannot read certs/servercert.pem: No such file or directory (os error 2)",
        "envoy-demo-tls-client-auth.yaml:69:13: static_resources.clusters[0].transport_socket.typed_config.common_tls_context.tls_certificates[0]: cannot read certs/clientcert.pem: No such file or directory (os error 2)",
    ]),
    ("envoy-demo.yaml", &[
    ]),
    ("envoy-ws.yaml", &[
    ]),
    ("front-proxy_envoy.yaml", &[
    ]),
    // Its jwt_authn filter loads (src/config/envoy/jwt_authn/tests.rs checks it without
    // the cluster's HTTP/2 options).
    ("jwt_authn.yaml", &[
        "jwt_authn.yaml:78:7: static_resources.clusters[0].typed_extension_protocol_options: `auto_sni` and the UpstreamTlsContext's `sni` exclude each other",
        "jwt_authn.yaml:83:11: static_resources.clusters[0].typed_extension_protocol_options[\"envoy.extensions.upstreams.http.v3.HttpProtocolOptions\"].auto_config: unsupported: ringway does not implement `auto_config` of envoy.extensions.upstreams.http.v3.HttpProtocolOptions (yet); remove it or see docs/envoy.md",
    ]),
    ("lds.yaml", &[
        "lds.yaml:1:1: resources: this is an xDS DiscoveryResponse (`resources`), not a bootstrap: Envoy reads it through `dynamic_resources` (filesystem xDS), which ringway does not support yet",
    ]),
    // Its local_ratelimit filters load (src/config/envoy/local_ratelimit/tests.rs checks
    // what they map onto).
    ("local_ratelimit_envoy.yaml", &[
    ]),
    // Priorities, locality weights and an HTTP health check (src/config/envoy/tests.rs
    // checks what they map onto).
    ("locality-load-balancing_envoy.yaml", &[
    ]),
    ("proxy_config.yaml", &[
        "proxy_config.yaml:33:18: static_resources.listeners[0].listener_filters[0].typed_config: unsupported extension `envoy.filters.listener.original_dst`: ringway does not implement `@type` envoy.extensions.filters.listener.original_dst.v3.OriginalDst (yet; docs/envoy.md lists the extensions it does)",
    ]),
    // Its Zipkin tracer and decorators load (src/config/envoy/tracing/tests.rs checks
    // what they map onto).
    ("service1-envoy-jaeger.yaml", &[
    ]),
    ("tls-inspector_envoy.yaml", &[
        "tls-inspector_envoy.yaml:23:20: static_resources.listeners[0].filter_chains[0].filters[0].typed_config: unsupported extension `envoy.filters.network.tcp_proxy`: ringway does not implement `@type` envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy (yet; docs/envoy.md lists the extensions it does)",
        "tls-inspector_envoy.yaml:32:20: static_resources.listeners[0].filter_chains[1].filters[0].typed_config: unsupported extension `envoy.filters.network.tcp_proxy`: ringway does not implement `@type` envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy (yet; docs/envoy.md lists the extensions it does)",
        "tls-inspector_envoy.yaml:39:20: static_resources.listeners[0].filter_chains[2].filters[0].typed_config: unsupported extension `envoy.filters.network.tcp_proxy`: ringway does not implement `@type` envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy (yet; docs/envoy.md lists the extensions it does)",
    ]),
];

fn validate(file: &Path, extra: &[&str]) -> (bool, Vec<String>) {
    let output = Command::new(bin())
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(file)
        .args(extra)
        .output()
        .expect("run ringway");
    let text = String::from_utf8_lossy(&output.stderr).replace("tests/envoy/corpus/", "");
    let lines = text
        .lines()
        .filter(|l| !l.ends_with("' OK"))
        .map(str::to_owned)
        .collect();
    (output.status.success(), lines)
}

#[test]
fn every_corpus_file_has_its_pinned_outcome() {
    let dir = Path::new("tests/envoy/corpus");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("corpus")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let pinned: Vec<&str> = PINS.iter().map(|(f, _)| *f).collect();
    assert_eq!(files, pinned, "every corpus file is pinned, and only those");
    for (file, expected) in PINS {
        let (ok, errors) = validate(&dir.join(file), &[]);
        assert_eq!(errors, *expected, "{file}");
        assert_eq!(ok, expected.is_empty(), "{file}: exit status");
    }
    // `tracing` was a degradable group before tracing existed: a command line that
    // still names it loads (nothing is dropped).
    let (ok, errors) = validate(
        &dir.join("service1-envoy-jaeger.yaml"),
        &["--accept-degraded", "tracing"],
    );
    assert!(ok, "{errors:?}");
    let (ok, errors) = validate(
        &dir.join("service1-envoy-jaeger.yaml"),
        &["--accept-degraded", "tracer"],
    );
    assert!(
        !ok && errors
            .iter()
            .any(|e| e.contains("unknown group \"tracer\"")),
        "{errors:?}"
    );
}

/// envoy-ws.yaml as the sandbox runs it, with its addresses remapped to this machine.
fn remapped_ws(port: u16, upstream: SocketAddr) -> String {
    std::fs::read_to_string("tests/envoy/corpus/envoy-ws.yaml")
        .expect("corpus")
        .replace(
            "address: 0.0.0.0\n        port_value: 10000",
            &format!("address: 127.0.0.1\n        port_value: {port}"),
        )
        .replace(
            "address: service-ws\n                port_value: 80",
            &format!(
                "address: 127.0.0.1\n                port_value: {}",
                upstream.port()
            ),
        )
}

fn admin_overlay(admin: u16) -> String {
    format!(
        "admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}"
    )
}

#[test]
fn a_corpus_file_serves_as_envoy_would() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let yaml = remapped_ws(port, upstream.addr);
        // The sandbox file has no admin: `--config-yaml` adds one, as pilot-agent does.
        let overlay = admin_overlay(admin);
        let rw = Ringway::start(
            &yaml,
            admin,
            &["--driver", driver, "--config-yaml", &overlay],
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let r = get(addr, "/chat?room=1").expect("response");
        assert_eq!(r.status, 200, "{driver}");
        // Envoy's default `server_name`, on every response.
        assert_eq!(r.header("server"), Some("envoy"), "{driver}");
        let seen = upstream.next_seen();
        assert_eq!(seen.request_line(), "GET /chat?room=1 HTTP/1.1");
        // Envoy's stat names: `http.<stat_prefix>.`, `listener.<address>.`.
        assert_eq!(
            rw.wait_for_stat("http.ingress_ws_to_ws.downstream_rq_2xx", 1),
            1
        );
        let listener = format!("listener.127.0.0.1_{port}.downstream_cx_total");
        assert!(
            rw.stats().get(&listener).copied().unwrap_or(0) >= 1,
            "{driver}: {listener}"
        );
        // `codec_type: AUTO` before HTTP/2 exists: a clear refusal of a prior-knowledge
        // HTTP/2 connection, not a hang or a reset.
        let r = exchange(addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(r.status, 505, "{driver}");
        let info = get(rw.admin, "/server_info").expect("server_info");
        let body = String::from_utf8_lossy(&info.body);
        assert!(body.contains("\"config_yaml\": \"admin:"), "{body}");
    }
}

/// The same routing table in both formats.
fn native_config(port: u16, admin: u16, upstream: SocketAddr) -> String {
    format!(
        r#"workers: 1
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    server_header: envoy
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: {{ prefix: /api, headers: [{{ name: x-canary, exact: "yes" }}] }}
            cluster: app
            prefix_rewrite: /canary
            response_headers_to_add: [{{ name: x-route, value: canary }}]
          - match: {{ prefix: /api }}
            cluster: app
            host_rewrite_literal: backend.internal
            response_headers_to_add: [{{ name: x-route, value: api }}]
          - match: {{ regex: "/items/[0-9]+" }}
            cluster: app
            regex_rewrite: {{ pattern: "^/items/([0-9]+)$", substitution: "/item/\\1" }}
          - match: {{ path: /old }}
            redirect: {{ path_redirect: /new, response_code: 302 }}
          - match: {{ prefix: /q, query: [{{ name: v, exact: "2" }}] }}
            direct_response: {{ status: 200, body: "v2" }}
          - match: {{ prefix: / }}
            direct_response: {{ status: 404, body: "none" }}
clusters:
  - name: app
    endpoints: [{upstream}]
"#
    )
}

fn envoy_config(port: u16, admin: u16, upstream: SocketAddr) -> String {
    let route = |m: &str, action: &str| format!("              - match: {m}\n{action}");
    let routes = [
        route(
            "{ prefix: /api, headers: [ { name: x-canary, string_match: { exact: \"yes\" } } ] }",
            "                route: { cluster: app, prefix_rewrite: /canary }\n                response_headers_to_add: [ { header: { key: x-route, value: canary } } ]\n",
        ),
        route(
            "{ prefix: /api }",
            "                route: { cluster: app, host_rewrite_literal: backend.internal }\n                response_headers_to_add: [ { header: { key: x-route, value: api } } ]\n",
        ),
        route(
            "{ safe_regex: { regex: \"/items/[0-9]+\" } }",
            "                route: { cluster: app, regex_rewrite: { pattern: { regex: \"^/items/([0-9]+)$\" }, substitution: \"/item/\\\\1\" } }\n",
        ),
        route(
            "{ path: /old }",
            "                redirect: { path_redirect: /new, response_code: FOUND }\n",
        ),
        route(
            "{ prefix: /q, query_parameters: [ { name: v, string_match: { exact: \"2\" } } ] }",
            "                direct_response: { status: 200, body: { inline_string: v2 } }\n",
        ),
        route(
            "{ prefix: / }",
            "                direct_response: { status: 404, body: { inline_string: none } }\n",
        ),
    ]
    .concat();
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: public
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: public
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
{routes}          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    connect_timeout: 1s
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{ socket_address: {{ address: {}, port_value: {} }} }}
"#,
        upstream.ip(),
        upstream.port()
    )
}

/// What a client and the upstream see of one request: status, body, the headers the
/// routes set, and (when it was forwarded) the upstream's request line and Host.
fn observe(addr: SocketAddr, upstream: &Upstream, raw: &str) -> String {
    let r = exchange(addr, raw.as_bytes());
    let forwarded = if r.status == 200 && r.header("x-route").is_some() || raw.contains("/items/") {
        let seen = upstream.next_seen();
        format!("{} host={:?}", seen.request_line(), seen.header("host"))
    } else {
        String::new()
    };
    format!(
        "{} {:?} location={:?} x-route={:?} server={:?} {forwarded}",
        r.status,
        String::from_utf8_lossy(&r.body),
        r.header("location"),
        r.header("x-route"),
        r.header("server"),
    )
}

#[test]
fn a_native_config_and_its_envoy_equivalent_route_alike() {
    let requests = [
        "GET /api/users HTTP/1.1\r\nHost: a.test\r\nx-canary: yes\r\n\r\n",
        "GET /api/users?page=2 HTTP/1.1\r\nHost: a.test\r\n\r\n",
        "GET /items/42 HTTP/1.1\r\nHost: a.test\r\n\r\n",
        "GET /old HTTP/1.1\r\nHost: a.test\r\n\r\n",
        "GET /q?v=2 HTTP/1.1\r\nHost: a.test\r\n\r\n",
        "GET /q?v=3 HTTP/1.1\r\nHost: a.test\r\n\r\n",
        "GET /elsewhere HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ];
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let mut seen = Vec::new();
        for config in [native_config, envoy_config] {
            let (port, admin) = (free_port(), free_port());
            let _rw = Ringway::start(
                &config(port, admin, upstream.addr),
                admin,
                &["--driver", driver],
            );
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            seen.push(
                requests
                    .iter()
                    .map(|raw| observe(addr, &upstream, raw))
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(
            seen[0], seen[1],
            "{driver}: native (left) and Envoy (right)"
        );
        // And the table did what it says (so the two cannot agree by both failing).
        assert!(
            seen[1][0].contains("GET /canary/users HTTP/1.1"),
            "{:?}",
            seen[1][0]
        );
        assert!(
            seen[1][1].contains("host=Some(\"backend.internal\")"),
            "{:?}",
            seen[1][1]
        );
        assert!(
            seen[1][2].contains("GET /item/42 HTTP/1.1"),
            "{:?}",
            seen[1][2]
        );
        assert!(
            seen[1][3].starts_with("302 ") && seen[1][3].contains("/new"),
            "{:?}",
            seen[1][3]
        );
        assert!(seen[1][4].starts_with("200 \"v2\""), "{:?}", seen[1][4]);
        assert!(seen[1][5].starts_with("404 \"none\""), "{:?}", seen[1][5]);
    }
}

#[test]
fn envoy_flags_act_as_in_envoy() {
    let (port, admin) = (free_port(), free_port());
    let upstream = Upstream::start(false);
    // Unknown fields: refused by default, counted under the flag.
    let yaml = envoy_config(port, admin, upstream.addr).replace(
        "    connect_timeout: 1s\n",
        "    connect_timeout: 1s\n    future_option: 3\n",
    );
    let file = write_config(&yaml);
    let (ok, errors) = validate(&file.path, &[]);
    assert!(!ok);
    assert!(errors[0].ends_with("static_resources.clusters[0].future_option: unknown field `future_option` in envoy.config.cluster.v3.Cluster"), "{errors:?}");
    // Envoy's older name for the flag.
    let (ok, errors) = validate(&file.path, &["--allow-unknown-fields"]);
    assert!(ok, "{errors:?}");
    for driver in drivers() {
        let args = ["--driver", driver, "--allow-unknown-static-fields"];
        let rw = Ringway::start(&yaml, admin, &args);
        assert_eq!(rw.stats().get("server.static_unknown_fields"), Some(&1));
    }
    // `--base-id-path`: the base id written at start, as Envoy writes it.
    let dir = tempfile::tempdir().unwrap();
    let base_id = dir.path().join("base-id");
    let path = base_id.to_str().unwrap();
    let args = [
        "--base-id",
        "7",
        "--base-id-path",
        path,
        "--allow-unknown-fields",
    ];
    let _rw = Ringway::start(&yaml, admin, &args);
    assert_eq!(std::fs::read_to_string(&base_id).unwrap(), "7");
    // `--config-yaml` alone is the whole config.
    let yaml = envoy_config(port, admin, upstream.addr);
    let output = Command::new(bin())
        .args(["--mode", "validate", "--config-yaml", &yaml])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Envoy-only flags on a native config are a mistake, said so.
    let native = write_config(&native_config(port, admin, upstream.addr));
    let (ok, errors) = validate(&native.path, &["--allow-unknown-static-fields"]);
    assert!(!ok);
    assert!(
        errors[0].ends_with(
            "--allow-unknown-static-fields applies to Envoy bootstraps; this is a native config"
        ),
        "{errors:?}"
    );
}

#[test]
fn an_envoy_config_reloads() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let yaml = envoy_config(port, admin, upstream.addr);
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(get(addr, "/elsewhere").unwrap().status, 404);
        std::fs::write(rw.config_path(), yaml.replace("status: 404", "status: 410")).unwrap();
        let r = post(rw.admin, "/reload").expect("reload");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(get(addr, "/elsewhere").unwrap().status, 410);
        // A bad edit keeps the old config, and says where.
        std::fs::write(
            rw.config_path(),
            yaml.replace("stat_prefix: public", "stat_prefix: \"\""),
        )
        .unwrap();
        let r = post(rw.admin, "/reload").expect("reload");
        assert_ne!(r.status, 200);
        assert!(String::from_utf8_lossy(&r.body).contains("`stat_prefix` must not be empty"));
        assert_eq!(get(addr, "/elsewhere").unwrap().status, 410);
    }
}

/// `envoy_config` with a file access logger (`log_format` as given, or none).
fn with_access_log(
    port: u16,
    admin: u16,
    upstream: SocketAddr,
    path: &Path,
    format: &str,
) -> String {
    envoy_config(port, admin, upstream).replace(
        "          stat_prefix: public\n",
        &format!(
            "          stat_prefix: public\n          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n{format}",
            path.display()
        ),
    )
}

#[test]
fn access_logs_in_envoys_formats() {
    let direct_line = regex::Regex::new(
            r#"^\[[^\]]+\] "GET /elsewhere HTTP/1\.1" 404 - 0 \d+ \d+ - "-" "-" "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}" "test" "-"$"#,
        )
        .unwrap();
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let dir = tempfile::tempdir().unwrap();
        // Envoy's default format.
        let path = dir.path().join("default.log");
        let (port, admin) = (free_port(), free_port());
        let yaml = with_access_log(port, admin, upstream.addr, &path, "");
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let r = exchange(
            addr,
            b"GET /api/users?page=2 HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: curl/8.5.0\r\nX-Request-Id: fixed-id\r\n\r\n",
        );
        assert_eq!(r.status, 200);
        // The router's header, as Envoy adds it.
        let service_time = r
            .header("x-envoy-upstream-service-time")
            .expect("x-envoy-upstream-service-time");
        assert!(service_time.parse::<u64>().is_ok(), "{service_time}");
        upstream.next_seen();
        assert_eq!(get(addr, "/elsewhere").unwrap().status, 404);
        // Lines of different workers are ordered per worker only.
        let mut lines = wait_for_lines(&path, 2);
        lines.sort_by_key(|l| l.contains("/elsewhere"));
        // `use_remote_address: false` (Envoy's default) leaves x-forwarded-for alone (the
        // client sent none) and keeps the client's request id (not an edge request).
        // [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
        // %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
        // %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%"
        // "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
        let pattern = regex::Regex::new(&format!(
            r#"^\[\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\] "GET /api/users\?page=2 HTTP/1\.1" 200 - 0 {} \d+ {service_time} "-" "curl/8\.5\.0" "fixed-id" "backend\.internal" "{}"$"#,
            // Envoy's byte counts are the bodies': none came, the answer's went.
            r.body.len(),
            regex::escape(&upstream.addr.to_string())
        ))
        .unwrap();
        assert!(pattern.is_match(&lines[0]), "{driver}: {}", lines[0]);
        // A direct response: no upstream, no service time; a generated request id.
        let pattern = &direct_line;
        assert!(pattern.is_match(&lines[1]), "{driver}: {}", lines[1]);
        drop(rw);

        // JSON, typed.
        let path = dir.path().join("json.log");
        let (port, admin) = (free_port(), free_port());
        let format = "              log_format:\n                json_format:\n                  code: \"%RESPONSE_CODE%\"\n                  route: \"%REQ(:METHOD)% %REQ(:PATH)%\"\n                  agent: \"%REQ(USER-AGENT)%\"\n                  cluster: \"%UPSTREAM_CLUSTER%\"\n                  client: \"%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%\"\n";
        let yaml = with_access_log(port, admin, upstream.addr, &path, format);
        let _rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(get(addr, "/api/x").unwrap().status, 200);
        upstream.next_seen();
        let lines = wait_for_lines(&path, 1);
        let value: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON");
        assert_eq!(
            value,
            serde_json::json!({"code": 200, "route": "GET /api/x", "agent": null, "cluster": "app", "client": "127.0.0.1"}),
            "{driver}"
        );
    }
}

/// Envoy's timing operators: the request's end, the upstream's first byte and the
/// client's last, from the request's first; the upstream protocol and attempt count;
/// response fields as sent (`%RESP(...)%`). A direct response has no upstream: `-`
/// where Envoy prints none.
#[test]
fn access_logs_print_envoys_timings() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timing.log");
        let (port, admin) = (free_port(), free_port());
        let format = "              log_format:\n                text_format_source:\n                  inline_string: \"%REQ(:PATH)% %REQUEST_DURATION% %RESPONSE_DURATION% %RESPONSE_TX_DURATION% %DURATION% %UPSTREAM_PROTOCOL% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %RESP(X-UPSTREAM)% %RESP(CONTENT-LENGTH)%\\n\"\n";
        let yaml = with_access_log(port, admin, upstream.addr, &path, format);
        let _rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // The upstream answers 150 ms late.
        let r = exchange(
            addr,
            b"GET /api/slow HTTP/1.1\r\nHost: a\r\nX-Delay-Ms: 150\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
        upstream.next_seen();
        let lines = wait_for_lines(&path, 1);
        let f: Vec<&str> = lines[0].split(' ').collect();
        assert_eq!(f.len(), 9, "{driver}: {}", lines[0]);
        let ms = |s: &str| {
            s.parse::<u64>()
                .unwrap_or_else(|_| panic!("{driver}: {}", lines[0]))
        };
        let (request, response, tx, total) = (ms(f[1]), ms(f[2]), ms(f[3]), ms(f[4]));
        assert!(request < 100, "{driver}: {}", lines[0]);
        assert!((150..1000).contains(&response), "{driver}: {}", lines[0]);
        assert!(
            response + tx <= total + 1 && total <= response + tx + 1,
            "{driver}: {}",
            lines[0]
        );
        // Response fields as the client got them.
        let length = r.body.len().to_string();
        assert_eq!(&f[5..], ["HTTP/1.1", "1", "echo", &length], "{driver}");
        // No upstream: the request's end is known, nothing after it is.
        let r = get(addr, "/elsewhere").unwrap();
        assert_eq!(r.status, 404);
        let length = r.body.len().to_string();
        let lines = wait_for_lines(&path, 2);
        let f: Vec<&str> = lines[1].split(' ').collect();
        assert_eq!(f[0], "/elsewhere", "{driver}: {}", lines[1]);
        assert!(ms(f[1]) < 100, "{driver}: {}", lines[1]);
        assert_eq!(&f[2..4], ["-", "-"], "{driver}: {}", lines[1]);
        // The direct response's own length; no upstream field.
        assert_eq!(&f[5..], ["-", "0", "-", &length], "{driver}: {}", lines[1]);
    }
}

/// `%BYTES_RECEIVED%` and `%BYTES_SENT%` are body bytes (Envoy's "body bytes received",
/// "body bytes sent"): a chunked body counts its payload, not its chunk sizes, line
/// ends and trailers, whichever way it goes.
#[test]
fn envoy_byte_counts_leave_out_chunk_framing() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes.log");
        let (port, admin) = (free_port(), free_port());
        let format = "              log_format:\n                text_format_source:\n                  inline_string: \"%REQ(:PATH)% %BYTES_RECEIVED% %BYTES_SENT%\\n\"\n";
        let yaml = with_access_log(port, admin, upstream.addr, &path, format);
        let _rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // 11 bytes in two chunks (one with an extension, then a trailer) up; the
        // upstream echoes them back chunked, with an extension and a trailer of its own.
        let raw = b"POST /api/chunked HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\nX-Respond-Chunked: 1\r\n\r\n5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 1\r\n\r\n";
        let r = exchange(addr, raw);
        assert_eq!(
            (r.status, &r.body[..]),
            (200, &b"hello world"[..]),
            "{driver}"
        );
        assert_eq!(upstream.next_seen().body, b"hello world", "{driver}");
        // The same answer to a body sent with a length: the counts match.
        let raw = b"POST /api/length HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 11\r\n\r\nhello world";
        assert_eq!(exchange(addr, raw).status, 200, "{driver}");
        upstream.next_seen();
        // A body ringway reads and discards (a direct response) counts alike.
        let raw = b"POST /elsewhere HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let r = exchange(addr, raw);
        assert_eq!((r.status, &r.body[..]), (404, &b"none"[..]), "{driver}");
        let mut lines = wait_for_lines(&path, 3);
        lines.sort();
        assert_eq!(
            lines,
            ["/api/chunked 11 11", "/api/length 11 11", "/elsewhere 11 4"],
            "{driver}"
        );
    }
}

#[test]
fn native_listeners_add_no_envoy_headers() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let _rw = Ringway::start(
            &native_config(port, admin, upstream.addr),
            admin,
            &["--driver", driver],
        );
        let r = get(SocketAddr::from(([127, 0, 0, 1], port)), "/api/x").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-envoy-upstream-service-time"), None);
        assert_eq!(
            upstream
                .next_seen()
                .header("x-envoy-expected-rq-timeout-ms"),
            None
        );
    }
}

#[test]
fn envoy_listeners_forward_as_envoy_does() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let yaml = envoy_config(port, admin, upstream.addr).replace(
            "          stat_prefix: public\n",
            "          stat_prefix: public\n          use_remote_address: true\n          via: edge-1\n",
        );
        let _rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let r = exchange(
            addr,
            b"GET /api/x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.9\r\nX-Envoy-Retry-On: 5xx\r\nX-Envoy-Internal: true\r\nX-Request-Id: chosen\r\n\r\n",
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("via"), Some("edge-1"), "{driver}");
        let seen = upstream.next_seen();
        // An edge request: the peer appended, the client's control headers gone, a
        // fresh request id, the external address set.
        assert_eq!(
            seen.header("x-forwarded-for").as_deref(),
            Some("203.0.113.9, 127.0.0.1"),
            "{driver}"
        );
        assert_eq!(
            seen.header("x-envoy-external-address").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(seen.header("x-envoy-retry-on"), None);
        assert_eq!(seen.header("x-envoy-internal"), None);
        assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(seen.header("via").as_deref(), Some("edge-1"));
        // The router's: the route timeout (Envoy's default 15 s) the upstream may count on.
        assert_eq!(
            seen.header("x-envoy-expected-rq-timeout-ms").as_deref(),
            Some("15000")
        );
        let id = seen.header("x-request-id").unwrap();
        assert!(id != "chosen" && id.len() == 36, "{id}");
    }
}

/// `headers_with_underscores_action`: `DROP_HEADER` forwards the request without the
/// fields whose names hold an underscore (route matching does not see them either) and
/// counts them; `REJECT_REQUEST` answers 400 and closes; both in Envoy's `http1.` stats.
#[test]
fn envoy_listeners_drop_or_refuse_underscored_fields() {
    for driver in drivers() {
        for action in ["DROP_HEADER", "REJECT_REQUEST"] {
            let upstream = Upstream::start(false);
            let (port, admin) = (free_port(), free_port());
            let yaml = envoy_config(port, admin, upstream.addr).replace(
                "          stat_prefix: public\n",
                &format!("          stat_prefix: public\n          common_http_protocol_options: {{ headers_with_underscores_action: {action} }}\n"),
            );
            let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            // A plain request passes under either action.
            let r = exchange(addr, b"GET /api/x HTTP/1.1\r\nHost: a\r\nX-Kept: 1\r\n\r\n");
            assert_eq!(r.status, 200, "{driver} {action}");
            assert_eq!(upstream.next_seen().header("x-kept").as_deref(), Some("1"));
            // `x_canary: yes` would pick the canary route if it were read as `x-canary`.
            let raw = b"GET /api/x HTTP/1.1\r\nHost: a\r\nx_canary: yes\r\nX-Kept: 2\r\nx_user_id: 7\r\n\r\n";
            let mut stream = connect(addr).unwrap();
            stream.write_all(raw).unwrap();
            let mut reader = BufReader::new(stream);
            let r = read_response(&mut reader, false).unwrap();
            if action == "DROP_HEADER" {
                assert_eq!(r.status, 200, "{driver}");
                assert_eq!(r.header("x-route"), Some("api"), "{driver}");
                let seen = upstream.next_seen();
                assert_eq!(seen.header("x-kept").as_deref(), Some("2"));
                assert_eq!(seen.header("x_canary"), None, "{driver}");
                assert_eq!(seen.header("x_user_id"), None, "{driver}");
                assert_eq!(
                    rw.wait_for_stat("http1.dropped_headers_with_underscores", 2),
                    2
                );
                assert_eq!(
                    rw.stat("http1.requests_rejected_with_underscores_in_headers"),
                    0
                );
            } else {
                assert_eq!(r.status, 400, "{driver}");
                assert_eq!(r.header("connection"), Some("close"), "{driver}");
                // Closed after the answer.
                let mut rest = Vec::new();
                let _ = std::io::Read::read_to_end(&mut reader, &mut rest);
                assert!(rest.is_empty());
                assert_eq!(
                    rw.wait_for_stat("http1.requests_rejected_with_underscores_in_headers", 1),
                    1
                );
                assert_eq!(rw.stat("http1.dropped_headers_with_underscores"), 0);
                assert_eq!(rw.stat("http.public.downstream_cx_protocol_error"), 1);
            }
        }
    }
}

/// `server_header_transformation`: the upstream's `server` replaced (`OVERWRITE`, the
/// default), kept with ours added only when it has none (`APPEND_IF_ABSENT`), or passed
/// as it is (`PASS_THROUGH`).
#[test]
fn envoy_listeners_transform_the_server_header() {
    for driver in drivers() {
        for (mode, with, without) in [
            ("OVERWRITE", "envoy", Some("envoy")),
            ("APPEND_IF_ABSENT", "up/1", Some("envoy")),
            ("PASS_THROUGH", "up/1", None),
        ] {
            let upstream = Upstream::start(false);
            let (port, admin) = (free_port(), free_port());
            let yaml = envoy_config(port, admin, upstream.addr).replace(
                "          stat_prefix: public\n",
                &format!("          stat_prefix: public\n          server_header_transformation: {mode}\n"),
            );
            let _rw = Ringway::start(&yaml, admin, &["--driver", driver]);
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let r = exchange(
                addr,
                b"GET /api/x HTTP/1.1\r\nHost: a\r\nX-Respond-Header: Server: up/1\r\n\r\n",
            );
            assert_eq!(r.status, 200, "{driver} {mode}");
            let servers: Vec<_> = r
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("server"))
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(servers, [with], "{driver} {mode}");
            let r = exchange(addr, b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(r.header("server"), without, "{driver} {mode}");
        }
    }
}

#[test]
fn envoy_listeners_answer_with_envoys_local_replies() {
    for driver in drivers() {
        // An endpoint nothing listens on, and a route table without a catch-all.
        let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let (port, admin) = (free_port(), free_port());
        let yaml = envoy_config(port, admin, dead);
        let routes_end = yaml.find("              - match: { safe_regex").unwrap();
        let filters = yaml.find("          http_filters:").unwrap();
        let yaml = format!("{}{}", &yaml[..routes_end], &yaml[filters..]);
        let _rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // No route: 404, no body, Envoy's server header.
        let r = get(addr, "/nowhere").unwrap();
        assert_eq!((r.status, r.body.len()), (404, 0), "{driver}");
        assert_eq!(r.header("content-length"), Some("0"));
        assert_eq!(r.header("content-type"), None);
        assert_eq!(r.header("server"), Some("envoy"));
        // The upstream refuses the connection: Envoy's text, byte for byte.
        let r = get(addr, "/api/x").unwrap();
        assert_eq!(r.status, 503, "{driver}");
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
        );
        assert_eq!(r.header("content-type"), Some("text/plain"));
    }
}

#[test]
fn config_dump_shows_the_serving_config() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let yaml = envoy_config(port, admin, upstream.addr);
        let overlay = "node: { id: sidecar-1, cluster: shop }";
        let rw = Ringway::start(
            &yaml,
            admin,
            &["--driver", driver, "--config-yaml", overlay],
        );
        let r = get(rw.admin, "/config_dump").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let dump: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        let configs = dump["configs"].as_array().unwrap();
        let types: Vec<&str> = configs
            .iter()
            .map(|c| c["@type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
                "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"
            ]
        );
        // The bootstrap as served: the file merged with --config-yaml, proto field names.
        let bootstrap = &configs[0]["bootstrap"];
        assert_eq!(bootstrap["node"]["id"], "sidecar-1");
        assert_eq!(
            bootstrap["static_resources"]["clusters"][0]["connect_timeout"],
            "1s"
        );
        let cluster = &configs[1]["static_clusters"][0]["cluster"];
        assert_eq!(
            cluster["@type"],
            "type.googleapis.com/envoy.config.cluster.v3.Cluster"
        );
        assert_eq!(cluster["name"], "app");
        let listener = &configs[2]["static_listeners"][0];
        assert_eq!(listener["name"], "public");
        assert_eq!(
            listener["active_state"]["listener"]["filter_chains"][0]["filters"][0]["typed_config"]["@type"],
            "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
        );
        let routes = &configs[3]["static_route_configs"][0]["route_config"];
        assert_eq!(routes["virtual_hosts"][0]["name"], "all");
        assert!(configs[0]["last_updated"].as_str().unwrap().ends_with('Z'));
        // Envoy's filters on the dump are refused, not ignored.
        assert_eq!(
            get(rw.admin, "/config_dump?resource=dynamic_listeners")
                .unwrap()
                .status,
            400
        );
        drop(rw);

        // A native config is dumped under ringway's own type.
        let (port, admin) = (free_port(), free_port());
        let rw = Ringway::start(
            &native_config(port, admin, upstream.addr),
            admin,
            &["--driver", driver],
        );
        let dump: serde_json::Value =
            serde_json::from_slice(&get(rw.admin, "/config_dump").unwrap().body).unwrap();
        assert_eq!(
            dump["configs"][0]["@type"],
            "type.googleapis.com/ringway.config.Native"
        );
        assert_eq!(
            dump["configs"][0]["config"]["listeners"][0]["name"],
            "public"
        );
    }
}

#[test]
fn envoys_connection_and_server_stats() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let rw = Ringway::start(
            &envoy_config(port, admin, upstream.addr),
            admin,
            &["--driver", driver],
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // One connection open while the stats are read, one closed before.
        assert_eq!(get(addr, "/api/x").unwrap().status, 200);
        let mut open = connect(addr).unwrap();
        std::io::Write::write_all(&mut open, b"GET /q?v=2 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        let mut reader = std::io::BufReader::new(open.try_clone().unwrap());
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
        assert_eq!(rw.wait_for_stat("http.public.downstream_cx_destroy", 1), 1);
        let stats = rw.stats();
        let stat = |name: &str| *stats.get(name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(stat("http.public.downstream_cx_total"), 2);
        assert_eq!(stat("http.public.downstream_cx_http1_total"), 2);
        assert_eq!(stat("http.public.downstream_cx_active"), 1);
        assert_eq!(stat("http.public.downstream_rq_http1_total"), 2);
        assert_eq!(stat("http.public.downstream_rq_active"), 0);
        assert_eq!(stat("http.public.rq_total"), 1, "routed to a cluster");
        assert_eq!(stat("cluster.app.upstream_cx_http1_total"), 1);
        assert_eq!(stat("server.total_connections"), 1);
        assert!(stat("server.memory_allocated") > 0 && stat("server.memory_physical_size") > 0);
        let text = String::from_utf8(get(rw.admin, "/stats").unwrap().body).unwrap();
        let port_prefix = format!("listener.127.0.0.1_{port}.downstream_cx_length_ms: P0(");
        assert!(text.contains(&port_prefix), "{text}");
        assert!(
            text.contains("http.public.downstream_cx_length_ms: P0("),
            "{text}"
        );
        drop(open);
    }
}

#[test]
fn envoys_cors_filter_answers_preflights() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let yaml = envoy_config(port, admin, upstream.addr)
            .replace(
                "          http_filters:\n",
                "          http_filters:\n          - name: envoy.filters.http.cors\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors\n",
            )
            .replace(
                "            - name: all\n              domains: [\"*\"]\n",
                "            - name: all\n              domains: [\"*\"]\n              typed_per_filter_config:\n                envoy.filters.http.cors:\n                  \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy\n                  allow_origin_string_match: [ { exact: \"https://app.test\" } ]\n                  allow_methods: \"GET,PUT\"\n",
            );
        let _rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let r = exchange(
            addr,
            b"OPTIONS /api/x HTTP/1.1\r\nHost: a\r\nOrigin: https://app.test\r\nAccess-Control-Request-Method: PUT\r\n\r\n",
        );
        assert!(matches!(r.status, 200 | 204), "{}", r.status);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://app.test")
        );
        assert_eq!(r.header("access-control-allow-methods"), Some("GET,PUT"));
        // An actual request from that origin is forwarded and gets the origin back.
        let r = exchange(
            addr,
            b"GET /api/x HTTP/1.1\r\nHost: a\r\nOrigin: https://app.test\r\n\r\n",
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://app.test")
        );
        upstream.next_seen();
    }
}

#[test]
fn the_health_check_filter_follows_healthcheck_fail() {
    let upstream = Upstream::start(false);
    let (port, admin) = (free_port(), free_port());
    let yaml = envoy_config(port, admin, upstream.addr).replace(
        "          http_filters:\n",
        "          http_filters:\n          - name: envoy.filters.http.health_check\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck\n              pass_through_mode: false\n              headers: [ { name: \":path\", string_match: { exact: /healthz } } ]\n",
    );
    for driver in drivers() {
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // Answered by ringway itself, not the routes (whose catch-all answers 404).
        let r = get(addr, "/healthz").unwrap();
        assert_eq!(
            (r.status, r.header("server")),
            (200, Some("envoy")),
            "{driver}"
        );
        assert_eq!(get(addr, "/healthz/other").unwrap().status, 404);
        assert_eq!(post(rw.admin, "/healthcheck/fail").unwrap().status, 200);
        let r = get(addr, "/healthz").unwrap();
        assert_eq!(r.status, 503, "{driver}");
        assert_eq!(
            r.header("x-envoy-immediate-health-check-fail"),
            Some("true")
        );
        // Other requests are still served while failing (Envoy drains, it does not refuse).
        assert_eq!(get(addr, "/q?v=2").unwrap().status, 200);
        assert_eq!(post(rw.admin, "/healthcheck/ok").unwrap().status, 200);
        assert_eq!(get(addr, "/healthz").unwrap().status, 200);
        // Envoy's connection manager charges no health check's response: only the 404
        // and the 200 of the routed requests.
        // A health check does not exempt the next request on its connection: its 400
        // (a malformed head) is charged.
        let mut conn = connect(addr).unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /other HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(conn);
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
        assert_eq!(read_response(&mut reader, false).unwrap().status, 400);
        assert_eq!(rw.wait_for_stat("http.public.downstream_rq_4xx", 2), 2);
        let stats = rw.stats();
        for (name, n) in [
            ("downstream_rq_completed", 3),
            ("downstream_rq_2xx", 1),
            ("downstream_rq_4xx", 2),
            ("downstream_rq_5xx", 0),
        ] {
            assert_eq!(stats[&format!("http.public.{name}")], n, "{driver}: {name}");
        }
        drop(rw);
    }
}
