//! The loader on byte strings: Envoy's defaults and leniencies, and each kind of error
//! with its exact text and position.

use std::path::Path;
use std::time::Duration;

use crate::config::model::*;
use crate::config::Config;

/// `text` loaded, or a panic with its errors (shared by the filters' test modules).
pub(super) fn load(text: &str) -> Config {
    match Config::parse(text, Path::new("envoy.yaml")) {
        Ok(config) => config,
        Err(errors) => panic!("expected a config, got:\n{errors}"),
    }
}

fn errors_with(text: &str, options: &LoadOptions) -> Vec<String> {
    match Config::parse_with(text, Path::new("envoy.yaml"), options) {
        // Not the loaded config's Debug output: too deep for a test thread's stack.
        Ok(_) => panic!("expected errors, but it loads"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// `text`'s errors, or a panic if it loads.
pub(super) fn errors(text: &str) -> Vec<String> {
    errors_with(text, &LoadOptions::default())
}

/// A bootstrap's one listener whose route table is `routes` (indented for
/// `routes:` inside a virtual host), up to `clusters:`: its clusters come next (shared
/// by the clusters' test module).
pub(super) fn listener(hcm_extra: &str, routes: &str) -> String {
    listener_with(hcm_extra, routes, "")
}

/// [`listener`] with `filters` (HTTP filters before the router, items indented by 10).
pub(super) fn listener_with(hcm_extra: &str, routes: &str, filters: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address: {{ address: 0.0.0.0, port_value: 10000 }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
{hcm_extra}          route_config:
            virtual_hosts:
            - name: local
              domains: ["*"]
              routes:
{routes}          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
"#
    )
}

/// A bootstrap with one listener whose route table is `routes` (indented for
/// `routes:` inside a virtual host) and one STATIC cluster `app`.
fn bootstrap(hcm_extra: &str, routes: &str, cluster_extra: &str) -> String {
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9901 }} }}
{}  - name: app
{cluster_extra}    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: 8080 }}
"#,
        listener(hcm_extra, routes)
    )
}

const ROUTE: &str =
    "              - match: { prefix: \"/\" }\n                route: { cluster: app }\n";

#[test]
fn a_minimal_bootstrap_gets_envoys_defaults() {
    let config = load(&bootstrap("", ROUTE, ""));
    assert_eq!(
        config.format,
        ConfigFormat::Envoy {
            unknown_fields: 0,
            degraded: 0
        }
    );
    assert_eq!(config.admin, Some("127.0.0.1:9901".parse().unwrap()));
    let l = &config.listeners[0];
    assert_eq!(l.name, "listener_0");
    assert_eq!(l.address.to_string(), "0.0.0.0:10000");
    assert_eq!(l.http_stats_prefix(), "ingress_http");
    assert_eq!(l.listener_stats_prefix(), "0.0.0.0_10000");
    assert_eq!(l.idle_timeout, Duration::from_secs(3600));
    assert_eq!(l.stream_idle_timeout, Duration::from_secs(300));
    assert_eq!(l.request_timeout, None);
    assert_eq!(l.max_requests_per_connection, None);
    assert_eq!(l.max_connection_duration, None);
    assert_eq!(l.proxy.server_header.as_deref(), Some("envoy"));
    assert!(l.proxy.request_id);
    assert!(
        l.upgrades.is_empty(),
        "Envoy tunnels no upgrade unless listed"
    );
    assert_eq!(l.http1.max_request_head, 60 * 1024);
    assert_eq!(l.virtual_hosts[0].domains, ["*"]);
    let route = &l.virtual_hosts[0].routes[0];
    assert_eq!(route.matcher, RouteMatch::Prefix("/".into()));
    assert_eq!(route.action, RouteAction::Cluster("app".into()));
    assert_eq!(route.timeout, Duration::from_secs(15));
    let cluster = &config.clusters[0];
    assert_eq!(cluster.connect_timeout, Duration::from_secs(5));
    assert_eq!(
        cluster.endpoints,
        Endpoints::Static(vec![Endpoint::new(
            Address::Tcp("127.0.0.1:8080".parse().unwrap()),
            1
        )])
    );
}

#[test]
fn proto3_json_spellings_are_accepted() {
    // camelCase names, JSON syntax, Duration strings, wrappers as scalars, enums by name
    // and by number, a mapping where a list is expected, YAML null for a message.
    let json = r#"{
      "staticResources": {
        "listeners": {
          "address": {"socketAddress": {"address": "127.0.0.1", "portValue": 10001}},
          "perConnectionBufferLimitBytes": 32768,
          "filterChains": [{
            "filterChainMatch": null,
            "filters": {
              "name": "hcm",
              "typedConfig": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "statPrefix": "x",
                "codecType": 1,
                "streamIdleTimeout": "0.25s",
                "commonHttpProtocolOptions": {"idleTimeout": "0s", "maxHeadersCount": 50},
                "routeConfig": {"virtualHosts": [{"name": "v", "domains": ["A.example.com"],
                  "routes": [{"match": {"path": "/x"}, "directResponse": {"status": 204}}]}]},
                "httpFilters": [{"name": "r", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
              }
            }
          }]
        }
      }
    }"#;
    let config = load(json);
    let l = &config.listeners[0];
    assert_eq!(l.name, "listener_0_127.0.0.1_10001");
    assert_eq!(l.proxy.buffer_limit, 32768);
    assert_eq!(l.stream_idle_timeout, Duration::from_millis(250));
    assert_eq!(l.idle_timeout, super::DISABLED, "0 disables, as in Envoy");
    assert_eq!(l.http1.max_headers, 50);
    assert_eq!(l.virtual_hosts[0].domains, ["a.example.com"]);
    assert_eq!(
        l.virtual_hosts[0].routes[0].action,
        RouteAction::DirectResponse(DirectResponse {
            status: 204,
            body: Default::default(),
            content_type: "text/plain".into()
        })
    );
}

#[test]
fn unknown_fields_are_refused_with_type_and_position() {
    let text = bootstrap("", ROUTE, "    hosts: []\n");
    assert_eq!(
        errors(&text),
        ["envoy.yaml:27:5: static_resources.clusters[0].hosts: unknown field `hosts` in envoy.config.cluster.v3.Cluster"]
    );
    let text = bootstrap("          stat_prefx: y\n", ROUTE, "");
    assert_eq!(
        errors(&text),
        ["envoy.yaml:14:11: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefx: unknown field `stat_prefx` in envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager; did you mean `stat_prefix`?"]
    );
}

#[test]
fn allow_unknown_static_fields_counts_them() {
    let text = bootstrap("          future_field: 1\n", ROUTE, "    hosts: []\n");
    let options = LoadOptions {
        allow_unknown_static_fields: true,
        ..LoadOptions::default()
    };
    let config = Config::parse_with(&text, Path::new("envoy.yaml"), &options).expect("loads");
    assert_eq!(
        config.format,
        ConfigFormat::Envoy {
            unknown_fields: 2,
            degraded: 0
        }
    );
    // Known fields ringway does not implement stay refused.
    let text = bootstrap("", ROUTE, "    lb_policy: CLUSTER_PROVIDED\n");
    assert_eq!(
        errors_with(&text, &options),
        ["envoy.yaml:27:16: static_resources.clusters[0].lb_policy: lb_policy CLUSTER_PROVIDED is not supported yet (it goes with ORIGINAL_DST clusters, which ringway does not have)"]
    );
}

#[test]
fn unknown_extensions_are_refused_by_type() {
    let text = bootstrap("", ROUTE, "").replace(
        "envoy.extensions.filters.http.router.v3.Router",
        "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
    );
    assert_eq!(
        errors(&text),
        ["envoy.yaml:24:24: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config: unsupported extension `envoy.filters.http.router`: ringway does not implement `@type` envoy.extensions.filters.http.ext_authz.v3.ExtAuthz (yet; docs/envoy.md lists the extensions it does)"]
    );
}

#[test]
fn optional_unknown_http_filters_are_skipped() {
    let filters = "          http_filters:\n          - name: envoy.filters.http.wasm\n            is_optional: true\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n";
    let text = bootstrap("", ROUTE, "").replace("          http_filters:\n", filters);
    let config = load(&text);
    assert_eq!(config.listeners.len(), 1);
}

#[test]
fn typed_struct_is_unwrapped() {
    let text = bootstrap("", ROUTE, "").replace(
        "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n",
        "              \"@type\": type.googleapis.com/udpa.type.v1.TypedStruct\n              type_url: type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n              value: { suppress_envoy_headers: true }\n",
    );
    load(&text);
}

#[test]
fn values_of_the_wrong_type_are_positioned() {
    let text = bootstrap("", ROUTE, "").replace("port_value: 8080", "port_value: eighty");
    assert_eq!(
        errors(&text),
        ["envoy.yaml:33:65: static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: the string \"eighty\": invalid digit found in string"]
    );
    let text = bootstrap("", ROUTE, "    connect_timeout: 5\n");
    assert_eq!(errors(&text).len(), 1);
    assert!(
        errors(&text)[0]
            .starts_with("envoy.yaml:27:22: static_resources.clusters[0].connect_timeout: "),
        "{:?}",
        errors(&text)
    );
    let text = bootstrap("", ROUTE, "    type: SOMETIMES\n");
    assert_eq!(
        errors(&text),
        ["envoy.yaml:27:11: static_resources.clusters[0].type: `type` has no value SOMETIMES (it takes STATIC, STRICT_DNS, LOGICAL_DNS, EDS, ORIGINAL_DST)"]
    );
}

#[test]
fn envoys_validation_rules_apply() {
    let text = bootstrap("", ROUTE, "").replace("stat_prefix: ingress_http", "stat_prefix: \"\"");
    assert_eq!(
        errors(&text),
        ["envoy.yaml:13:24: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix: `stat_prefix` must not be empty"]
    );
    let text = bootstrap("", ROUTE, "    connect_timeout: 0s\n");
    assert_eq!(
        errors(&text),
        ["envoy.yaml:27:22: static_resources.clusters[0].connect_timeout: `connect_timeout` must be longer than 0s, found 0s"]
    );
    let text = bootstrap("", ROUTE, "").replace("port_value: 8080", "port_value: 70000");
    assert_eq!(
        errors(&text),
        ["envoy.yaml:33:65: static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: `port_value` must be at most 65535, found 70000"]
    );
    let text = bootstrap("", ROUTE, "").replace("domains: [\"*\"]", "domains: []");
    assert_eq!(
        errors(&text),
        ["envoy.yaml:17:24: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].domains: `domains` needs at least 1 item"]
    );
}

#[test]
fn routes_map_onto_the_native_model() {
    let routes = r#"              - name: r1
                match:
                  prefix: /api
                  headers:
                  - { name: x-canary, string_match: { exact: "yes" } }
                  - { name: x-debug, present_match: true, invert_match: true }
                  query_parameters:
                  - { name: v, string_match: { exact: "2" } }
                route:
                  cluster: app
                  prefix_rewrite: /v2
                  host_rewrite_literal: backend.internal
                  timeout: 0s
                  idle_timeout: 3s
                request_headers_to_add:
                - header: { key: x-added, value: "%DOWNSTREAM_REMOTE_ADDRESS%" }
                  append_action: OVERWRITE_IF_EXISTS_OR_ADD
                response_headers_to_remove: [x-internal]
              - match: { safe_regex: { regex: "/items/[0-9]+" } }
                route:
                  cluster: app
                  regex_rewrite: { pattern: { regex: "^/items/([0-9]+)$" }, substitution: "/item?id=\\1" }
              - match: { path: /old }
                redirect: { path_redirect: /new, response_code: PERMANENT_REDIRECT, https_redirect: true }
              - match: { prefix: / }
                direct_response: { status: 404, body: { inline_string: "none\n" } }
"#;
    let config = load(&bootstrap("", routes, ""));
    let r = &config.listeners[0].virtual_hosts[0].routes;
    assert_eq!(r[0].name.as_deref(), Some("r1"));
    assert_eq!(r[0].matcher, RouteMatch::Prefix("/api".into()));
    assert_eq!(
        r[0].conditions.headers,
        [
            HeaderMatch {
                name: "x-canary".into(),
                value: ValueMatch::Exact("yes".into())
            },
            HeaderMatch {
                name: "x-debug".into(),
                value: ValueMatch::Present(false)
            },
        ]
    );
    assert_eq!(
        r[0].conditions.query,
        [QueryMatch {
            name: "v".into(),
            value: ValueMatch::Exact("2".into())
        }]
    );
    assert_eq!(r[0].rewrite.path, Some(PathRewrite::Prefix("/v2".into())));
    assert_eq!(
        r[0].rewrite.host,
        Some(HostRewrite::Literal("backend.internal".into()))
    );
    assert_eq!(r[0].timeout, super::DISABLED);
    assert_eq!(r[0].idle_timeout, Some(Duration::from_secs(3)));
    assert_eq!(
        r[0].headers.request_add,
        [HeaderAdd {
            name: "x-added".into(),
            value: "%DOWNSTREAM_REMOTE_ADDRESS%".into(),
            append: false,
            only_if: AddOnlyIf::Always,
        }]
    );
    assert_eq!(r[0].headers.response_remove, ["x-internal"]);
    assert_eq!(r[1].matcher, RouteMatch::Regex("/items/[0-9]+".into()));
    assert!(
        matches!(&r[1].rewrite.path, Some(PathRewrite::Regex { substitution, .. }) if substitution == "/item?id=\\1")
    );
    let RouteAction::Redirect(redirect) = &r[2].action else {
        panic!("{:?}", r[2].action)
    };
    assert_eq!(
        (redirect.status, redirect.scheme.as_deref()),
        (308, Some("https"))
    );
    assert_eq!(redirect.path, Some(RedirectPath::Path("/new".into())));
    let RouteAction::DirectResponse(d) = &r[3].action else {
        panic!()
    };
    assert_eq!((d.status, &d.body[..]), (404, &b"none\n"[..]));
}

#[test]
fn unsupported_route_features_are_named() {
    let routes = "              - match: { prefix: / }\n                route: { cluster: app, retry_policy: { retry_priority: { name: x } } }\n";
    assert_eq!(
        errors(&bootstrap("", routes, "")),
        ["envoy.yaml:20:72: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.retry_policy.retry_priority: unsupported: ringway does not implement `retry_priority` of envoy.config.route.v3.RetryPolicy (yet); remove it or see docs/envoy.md"]
    );
    let routes = "              - match: { prefix: / }\n                route: { cluster: ap }\n";
    assert_eq!(
        errors(&bootstrap("", routes, "")),
        ["envoy.yaml:20:35: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster: unknown cluster \"ap\"; did you mean `app`?"]
    );
    let text = bootstrap("          codec_type: HTTP2\n", ROUTE, "");
    assert!(errors(&text)[0].contains("codec_type HTTP2 is not supported until HTTP/2 exists"));
}

#[test]
fn config_yaml_merges_over_the_file() {
    let options = LoadOptions {
        config_yaml: Some(
            "admin: { address: { socket_address: { port_value: 9902 } } }\nstatic_resources: { clusters: [ { name: extra, load_assignment: { cluster_name: extra, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.2, port_value: 1 } } } } ] } ] } } ] }\n".into(),
        ),
        ..LoadOptions::default()
    };
    let config = Config::parse_with(&bootstrap("", ROUTE, ""), Path::new("envoy.yaml"), &options)
        .expect("loads");
    // Scalars replace, messages merge (the address keeps 127.0.0.1), lists append.
    assert_eq!(config.admin, Some("127.0.0.1:9902".parse().unwrap()));
    let names: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["app", "extra"]);
    // Alone, it is the whole config.
    let only = LoadOptions {
        config_yaml: Some(bootstrap("", ROUTE, "")),
        ..LoadOptions::default()
    };
    let config = Config::load_with(None, &only).expect("loads");
    assert_eq!(config.listeners.len(), 1);
    // Its errors name it.
    let bad = LoadOptions {
        config_yaml: Some("admin: { adress: {} }\n".into()),
        ..LoadOptions::default()
    };
    assert_eq!(
        errors_with(&bootstrap("", ROUTE, ""), &bad),
        ["--config-yaml:1:10: admin.adress: unknown field `adress` in envoy.config.bootstrap.v3.Admin; did you mean `address`?"]
    );
}

#[test]
fn runtime_keys_set_connection_limits() {
    let text = bootstrap("", ROUTE, "") + "layered_runtime:\n  layers:\n  - name: static_layer_0\n    static_layer:\n      envoy:\n        resource_limits:\n          listener:\n            listener_0:\n              connection_limit: 100\n      overload:\n        global_downstream_max_connections: 5000\n";
    let config = load(&text);
    assert_eq!(config.listeners[0].connection_limit, Some(100));
    assert_eq!(config.max_connections, Some(5000));
    let text = bootstrap("", ROUTE, "") + "layered_runtime:\n  layers:\n  - name: l\n    static_layer: { envoy.reloadable_features.foo: false }\n";
    assert!(errors(&text)[0].contains("runtime key envoy.reloadable_features.foo is not supported"));
}

/// `/runtime` shows the layers and, per key, each layer's value and the last one's.
#[test]
fn the_runtime_dump_lists_layers_and_their_values() {
    let text = bootstrap("", ROUTE, "") + "layered_runtime:\n  layers:\n  - name: base\n    static_layer:\n      overload: { global_downstream_max_connections: 5000 }\n  - name: site\n    static_layer:\n      overload.global_downstream_max_connections: 7000\n      envoy.resource_limits.listener.listener_0.connection_limit: 100\n  - name: admin\n    admin_layer: {}\n";
    let config = load(&text);
    assert_eq!(config.max_connections, Some(7000), "the last layer wins");
    let dump: serde_json::Value =
        serde_json::from_str(&crate::config::runtime_dump(&config.document)).unwrap();
    assert_eq!(dump["layers"], serde_json::json!(["base", "site", "admin"]));
    let global = &dump["entries"]["overload.global_downstream_max_connections"];
    assert_eq!(
        global["layer_values"],
        serde_json::json!(["5000", "7000", ""])
    );
    assert_eq!(global["final_value"], "7000");
    let limit = &dump["entries"]["envoy.resource_limits.listener.listener_0.connection_limit"];
    assert_eq!(limit["layer_values"], serde_json::json!(["", "100", ""]));
    assert_eq!(limit["final_value"], "100");
    for (value, text) in [
        (5000.0, "5000"),
        (1e6, "1e+06"),
        (1_500_000.0, "1.5e+06"),
        (123_456.0, "123456"),
        (1_234_567.0, "1.23457e+06"),
        (0.25, "0.25"),
        (0.000_015, "1.5e-05"),
        (-2.5, "-2.5"),
        (9_999_995.0, "1e+07"),
        (0.0, "0"),
    ] {
        assert_eq!(super::dump::six_digits(value), text, "{value}");
    }
    // None: no layers.
    let bare = crate::config::runtime_dump(&load(&bootstrap("", ROUTE, "")).document);
    let bare: serde_json::Value = serde_json::from_str(&bare).unwrap();
    assert_eq!(bare, serde_json::json!({ "layers": [], "entries": {} }));
}

#[test]
fn xds_resource_files_are_not_bootstraps() {
    assert_eq!(
        errors("resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: x\n"),
        ["envoy.yaml:1:1: resources: this is an xDS DiscoveryResponse (`resources`), not a bootstrap: Envoy reads it through `dynamic_resources` (filesystem xDS), which ringway does not support yet"]
    );
}

#[test]
fn malformed_documents_are_errors_not_panics() {
    for text in [
        "static_resources: 3\n",
        "static_resources: { listeners: [3] }\n",
        "static_resources: { listeners: [ { filter_chains: [ { filters: [ { typed_config: {} } ] } ] } ] }\n",
        "static_resources: { listeners: [ { filter_chains: [ { filters: [ { typed_config: { \"@type\": 7 } } ] } ] } ] }\n",
        "node: { id: [] }\n",
        "admin: { address: { pipe: { path: /x } } }\n",
        "static_resources: { clusters: [ { name: a, type: STRICT_DNS, load_assignment: {} } ] }\n",
    ] {
        let _ = Config::parse(text, Path::new("envoy.yaml"));
    }
}

#[test]
fn access_loggers_keep_envoys_formats() {
    let logger = |config: &str| {
        let hcm = format!(
            "          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: /tmp/access.log\n{config}"
        );
        load(&bootstrap(&hcm, ROUTE, ""))
            .access_log
            .expect("an access log")
    };
    // No format: Envoy's default.
    let log = logger("");
    assert_eq!(log.path, AccessLogPath::File("/tmp/access.log".into()));
    assert_eq!(
        log.format,
        AccessLogFormat::EnvoyText {
            format: crate::config::log_format::DEFAULT.into(),
            omit_empty_values: false
        }
    );
    let log = logger("              log_format:\n                text_format: \"%RESPONSE_CODE% %REQ(:PATH)%\\n\"\n                omit_empty_values: true\n");
    assert_eq!(
        log.format,
        AccessLogFormat::EnvoyText {
            format: "%RESPONSE_CODE% %REQ(:PATH)%\n".into(),
            omit_empty_values: true
        }
    );
    // JSON keeps the document's key order.
    let log = logger("              log_format:\n                json_format: { status: \"%RESPONSE_CODE%\", agent: \"%REQ(USER-AGENT)%\" }\n");
    assert_eq!(
        log.format,
        AccessLogFormat::EnvoyJson {
            fields: vec![
                ("status".into(), "%RESPONSE_CODE%".into()),
                ("agent".into(), "%REQ(USER-AGENT)%".into())
            ],
            omit_empty_values: false
        }
    );
    // Operators ringway cannot fill are refused by name.
    let hcm = "          access_log:\n          - name: envoy.access_loggers.stdout\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog\n              log_format: { text_format: \"%RESPONSE_CODE_DETAILS%\" }\n";
    assert_eq!(
        errors(&bootstrap(hcm, ROUTE, "")),
        ["envoy.yaml:18:42: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.access_log[0].typed_config.log_format.text_format: \"%RESPONSE_CODE_DETAILS%\": %RESPONSE_CODE_DETAILS% is not supported yet"]
    );
}

#[test]
fn config_dumps_redact_sensitive_fields() {
    let pool = super::schema::pool().unwrap();
    assert!(
        pool.get_extension_by_name("udpa.annotations.sensitive")
            .is_some(),
        "the schema carries Envoy's sensitive annotation"
    );
    let config = load(&bootstrap("", ROUTE, ""));
    let dump = crate::config::config_dump(&config.document, "2026-12-05T00:00:00.000Z");
    let value: serde_json::Value = serde_json::from_str(&dump).unwrap();
    assert_eq!(
        value["configs"][0]["bootstrap"]["admin"]["address"]["socket_address"]["port_value"],
        9901
    );
    // A sensitive field (a TLS private key in a static secret) prints `[redacted]`.
    let mut secret = prost_reflect::DynamicMessage::new(
        pool.get_message_by_name("envoy.extensions.transport_sockets.tls.v3.TlsCertificate")
            .unwrap(),
    );
    let mut key = prost_reflect::DynamicMessage::new(
        pool.get_message_by_name("envoy.config.core.v3.DataSource")
            .unwrap(),
    );
    key.set_field_by_name(
        "inline_string",
        prost_reflect::Value::String("-----BEGIN PRIVATE KEY-----".into()),
    );
    secret.set_field_by_name("private_key", prost_reflect::Value::Message(key));
    super::dump::redact(&mut secret);
    let key = secret.get_field_by_name("private_key").unwrap();
    let inline = key
        .as_message()
        .unwrap()
        .get_field_by_name("inline_string")
        .unwrap();
    assert_eq!(inline.as_str(), Some("[redacted]"));
}

#[test]
fn cors_policies_and_the_proxy_protocol_filter() {
    let routes = "              - match: { prefix: \"/\" }\n                route: { cluster: app }\n                typed_per_filter_config:\n                  envoy.filters.http.cors:\n                    \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy\n                    allow_origin_string_match: [ { exact: \"https://app.test\" }, { suffix: \".example.com\" } ]\n                    allow_methods: \"GET, POST\"\n                    allow_headers: \"content-type,authorization\"\n                    max_age: \"600\"\n                    allow_credentials: true\n";
    let filters = "          http_filters:\n          - name: envoy.filters.http.cors\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors\n";
    let text = bootstrap("", routes, "").replace("          http_filters:\n", filters).replace(
        "    filter_chains:\n",
        "    listener_filters:\n    - name: envoy.filters.listener.proxy_protocol\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol\n        allow_requests_without_proxy_protocol: true\n    filter_chains:\n",
    );
    let config = load(&text);
    let l = &config.listeners[0];
    let pp = l.proxy_protocol.as_ref().expect("PROXY protocol");
    assert!(!pp.required);
    assert!(pp
        .trusted_sources
        .iter()
        .any(|c| c.contains("203.0.113.1".parse().unwrap())));
    let cors = l.virtual_hosts[0].routes[0]
        .cors
        .as_ref()
        .expect("a CORS policy");
    assert_eq!(
        cors.allow_origins,
        [
            OriginMatch::Exact("https://app.test".into()),
            OriginMatch::Suffix(".example.com".into())
        ]
    );
    assert_eq!(cors.allow_methods, ["GET", "POST"]);
    assert_eq!(cors.allow_headers, ["content-type", "authorization"]);
    assert_eq!(cors.max_age, Some(Duration::from_secs(600)));
    assert!(cors.allow_credentials);
    // Without the CORS filter in the chain, the policy would do nothing: refused.
    let errors = errors(&bootstrap("", routes, ""));
    assert!(
        errors[0].contains("needs a CORS filter of that name in http_filters"),
        "{errors:?}"
    );
}

// TLS: `DownstreamTlsContext` on filter chains, `UpstreamTlsContext` on clusters.

/// A self-signed certificate for `names` written to `dir` as `<stem>.pem` and
/// `<stem>-key.pem`: the two paths.
fn cert_files(dir: &Path, stem: &str, names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let made = rcgen::generate_simple_self_signed(names).expect("a certificate");
    let chain = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}-key.pem"));
    std::fs::write(&chain, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (chain.display().to_string(), key.display().to_string())
}

/// A `tls_certificates` item (flow style).
fn cert_item((chain, key): &(String, String)) -> String {
    format!("{{ certificate_chain: {{ filename: \"{chain}\" }}, private_key: {{ filename: \"{key}\" }} }}")
}

/// A filter chain: its fields other than `filters` (indented for a chain item), then
/// the same HTTP connection manager as every other chain, with `hcm_extra` in it.
fn chain(fields: &str, hcm_extra: &str) -> String {
    format!(
        r#"    - name: chain
{fields}      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_https
{hcm_extra}          route_config:
            virtual_hosts:
            - {{ name: local, domains: ["*"], routes: [ {{ match: {{ prefix: "/" }}, route: {{ cluster: app }} }} ] }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
    )
}

/// A chain's `transport_socket` with a `DownstreamTlsContext` whose fields are `ctx`
/// (indented for the context).
fn downstream(ctx: &str) -> String {
    format!("      transport_socket:\n        name: envoy.transport_sockets.tls\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n{ctx}")
}

/// A bootstrap with one listener (`listener_extra`, then `chains`) and a cluster `app`
/// (with `cluster_extra`).
fn tls_bootstrap(listener_extra: &str, chains: &[String], cluster_extra: &str) -> String {
    format!(
        "static_resources:\n  listeners:\n  - name: tls\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10443 }} }}\n{listener_extra}    filter_chains:\n{}  clusters:\n  - name: app\n{cluster_extra}    load_assignment: {{ cluster_name: app, endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8080 }} }} }} }} ] }} ] }}\n",
        chains.concat()
    )
}

const INSPECTOR: &str = "    listener_filters:\n    - name: envoy.filters.listener.tls_inspector\n      typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector, initial_read_buffer_size: 4096 }\n";

fn listener_tls(config: &Config) -> &crate::config::tls::ServerTls {
    config.listeners[0].tls.as_ref().expect("a TLS listener")
}

#[test]
fn a_downstream_tls_context_maps_onto_server_tls() {
    use crate::config::tls::*;
    let dir = tempfile::tempdir().unwrap();
    let server = cert_files(dir.path(), "server", &["example.com"]);
    let (ca, _) = cert_files(dir.path(), "ca", &["ca.example.com"]);
    let ctx = format!(
        r#"          require_client_certificate: true
          disable_stateless_session_resumption: true
          disable_stateful_session_resumption: true
          full_scan_certs_on_sni_mismatch: true
          ocsp_staple_policy: LENIENT_STAPLING
          common_tls_context:
            tls_certificates: [ {} ]
            alpn_protocols: ["http/1.1,http/1.0"]
            tls_params:
              tls_minimum_protocol_version: TLSv1_3
              tls_maximum_protocol_version: TLS_AUTO
              cipher_suites: ["[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]", ECDHE-RSA-AES256-GCM-SHA384]
              ecdh_curves: [X25519, P-256]
            validation_context:
              trusted_ca: {{ filename: "{ca}" }}
              match_typed_subject_alt_names:
              - {{ san_type: DNS, matcher: {{ exact: client.example.com }} }}
              - {{ san_type: URI, matcher: {{ prefix: "spiffe://cluster.local/" }} }}
              - {{ san_type: DNS, matcher: {{ suffix: ".Example.COM", ignore_case: true }} }}
              match_subject_alt_names: [ {{ exact: legacy.example.com }} ]
"#,
        cert_item(&server)
    );
    let fields = format!(
        "      transport_socket_connect_timeout: 3s\n{}",
        downstream(&ctx)
    );
    let hcm = "          forward_client_cert_details: SANITIZE_SET\n          set_current_client_cert_details: { subject: true, uri: true, chain: true }\n";
    let config = load(&tls_bootstrap("", &[chain(&fields, hcm)], ""));
    let tls = listener_tls(&config);
    assert_eq!(tls.certificates.len(), 1);
    assert_eq!(tls.certificates[0].names, ["example.com"]);
    assert_eq!(
        tls.certificates[0].sources,
        [
            PemSource::File(server.0.clone().into()),
            PemSource::File(server.1.clone().into())
        ]
    );
    assert_eq!(tls.alpn, [b"http/1.1".to_vec(), b"http/1.0".to_vec()]);
    assert_eq!(
        tls.versions,
        Versions {
            tls12: false,
            tls13: true
        }
    );
    let auth = tls.client_auth.as_ref().expect("client certificates");
    assert!(auth.required);
    assert_eq!(auth.validation.ca.as_ref().map(Vec::len), Some(1));
    assert_eq!(auth.validation.ca_source, Some(PemSource::File(ca.into())));
    assert_eq!(
        auth.validation.subject_alt_names,
        [
            typed(
                SanKind::Dns,
                SanMatch::Exact("client.example.com".into()),
                false
            ),
            typed(
                SanKind::Uri,
                SanMatch::Prefix("spiffe://cluster.local/".into()),
                false
            ),
            typed(SanKind::Dns, SanMatch::Suffix(".Example.COM".into()), true),
            // The deprecated `match_subject_alt_names`: any kind.
            SanMatch::Exact("legacy.example.com".into()),
        ]
    );
    assert_eq!(tls.handshake_timeout, Duration::from_secs(3));
    assert_eq!(tls.max_handshakes, ServerTls::DEFAULT_MAX_HANDSHAKES);
    assert!(!tls.session_tickets);
    assert!(!tls.allow_plaintext);
    assert_eq!(tls.forward_client_cert, ForwardClientCert::SanitizeSet);
    assert_eq!(
        tls.client_cert_details,
        ClientCertDetails {
            subject: true,
            uri: true,
            chain: true,
            ..ClientCertDetails::default()
        }
    );

    // Envoy's defaults: no ALPN, TLS 1.2 and 1.3, no client certificates, tickets on.
    // PEM inline as text and as (base64) bytes.
    let pem = std::fs::read_to_string(&server.0).unwrap();
    let key_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&server.1).unwrap())
    };
    let ctx = format!(
        "          common_tls_context:\n            tls_certificates:\n            - certificate_chain: {{ inline_string: {pem:?} }}\n              private_key: {{ inline_bytes: \"{key_b64}\" }}\n"
    );
    let config = load(&tls_bootstrap("", &[chain(&downstream(&ctx), "")], ""));
    let tls = listener_tls(&config);
    assert_eq!(
        tls.certificates[0].sources[0],
        PemSource::Inline(pem.clone())
    );
    assert!(tls.alpn.is_empty(), "Envoy offers no ALPN unless listed");
    assert_eq!(tls.versions, Versions::default());
    assert_eq!(tls.client_auth, None);
    assert_eq!(tls.handshake_timeout, ServerTls::DEFAULT_HANDSHAKE_TIMEOUT);
    assert!(tls.session_tickets);
    assert_eq!(tls.forward_client_cert, ForwardClientCert::Sanitize);

    // A validation context alone asks for a certificate without requiring one.
    let ctx = format!(
        "          common_tls_context:\n            tls_certificates: [ {} ]\n            validation_context: {{ trusted_ca: {{ filename: \"{}\" }} }}\n",
        cert_item(&server),
        dir.path().join("ca.pem").display()
    );
    let config = load(&tls_bootstrap("", &[chain(&downstream(&ctx), "")], ""));
    let auth = listener_tls(&config)
        .client_auth
        .as_ref()
        .expect("asked for");
    assert!(!auth.required);
    assert!(auth.validation.subject_alt_names.is_empty());
}

#[test]
fn server_names_choose_certificates_as_filter_chains() {
    let dir = tempfile::tempdir().unwrap();
    let a = cert_files(dir.path(), "a", &["a.example.com"]);
    let b = cert_files(
        dir.path(),
        "b",
        &["b.example.com", "a.example.com", "x.shop.test"],
    );
    let tls_ctx = |cert: &(String, String)| {
        downstream(&format!(
            "          common_tls_context:\n            tls_certificates: [ {} ]\n            alpn_protocols: [http/1.1]\n",
            cert_item(cert)
        ))
    };
    let named = format!(
        "      filter_chain_match: {{ server_names: [A.Example.com, \"*.shop.test\"], transport_protocol: tls }}\n{}",
        tls_ctx(&a)
    );
    let config = load(&tls_bootstrap(
        INSPECTOR,
        &[chain(&named, ""), chain(&tls_ctx(&b), "")],
        "",
    ));
    assert_eq!(config.listeners.len(), 1, "one ringway listener");
    let tls = listener_tls(&config);
    // The chain without server names first: Envoy's choice for every other name; the
    // names another chain claims are that chain's.
    assert_eq!(tls.certificates.len(), 2);
    assert_eq!(tls.certificates[0].names, ["b.example.com"]);
    assert_eq!(tls.certificates[1].names, ["a.example.com", "*.shop.test"]);
    assert!(!tls.allow_plaintext);
    assert!(!tls.names_only, "the unnamed chain takes every other name");

    // Only named chains: other names, and none, match no chain (Envoy closes them).
    let config = load(&tls_bootstrap(INSPECTOR, &[chain(&named, "")], ""));
    let tls = listener_tls(&config);
    assert_eq!(tls.certificates[0].names, ["a.example.com", "*.shop.test"]);
    assert!(tls.names_only);

    // Without the tls_inspector Envoy never sees the server name.
    let found = errors(&tls_bootstrap(
        "",
        &[chain(&named, ""), chain(&tls_ctx(&b), "")],
        "",
    ));
    assert_eq!(
        found,
        ["envoy.yaml:7:43: static_resources.listeners[0].filter_chains[0].filter_chain_match.server_names: matching on `server_names` or `transport_protocol: tls` needs the envoy.filters.listener.tls_inspector listener filter (without it Envoy never sees them and never selects this chain)"]
    );

    // Chains whose TLS settings differ (here client certificates) cannot be merged.
    let mtls = downstream(&format!(
        "          require_client_certificate: true\n          common_tls_context:\n            tls_certificates: [ {} ]\n            alpn_protocols: [http/1.1]\n            validation_context: {{ trusted_ca: {{ filename: \"{}\" }} }}\n",
        cert_item(&b),
        b.0
    ));
    let found = errors(&tls_bootstrap(
        INSPECTOR,
        &[chain(&named, ""), chain(&mtls, "")],
        "",
    ));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].contains("filter_chains[1].transport_socket: TLS filter chains that differ in more than their certificates"),
        "{found:?}"
    );

    // The same name in two chains, and two catch-all chains: Envoy refuses both.
    let twice = format!(
        "      filter_chain_match: {{ server_names: [a.example.com] }}\n{}",
        tls_ctx(&b)
    );
    let found = errors(&tls_bootstrap(
        INSPECTOR,
        &[chain(&named, ""), chain(&twice, "")],
        "",
    ));
    assert!(
        found[0].contains("server name \"a.example.com\" is in two filter chains"),
        "{found:?}"
    );
    let found = errors(&tls_bootstrap(
        INSPECTOR,
        &[chain(&tls_ctx(&a), ""), chain(&tls_ctx(&b), "")],
        "",
    ));
    assert!(
        found[0].contains("two TLS filter chains without `server_names`"),
        "{found:?}"
    );
}

#[test]
fn a_plaintext_chain_beside_tls_allows_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let cert = cert_files(dir.path(), "s", &["example.com"]);
    let tls = format!(
        "      filter_chain_match: {{ transport_protocol: tls }}\n{}",
        downstream(&format!(
            "          common_tls_context: {{ tls_certificates: [ {} ] }}\n",
            cert_item(&cert)
        ))
    );
    let plain = "      filter_chain_match: { transport_protocol: raw_buffer }\n      transport_socket:\n        name: envoy.transport_sockets.raw_buffer\n        typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer }\n";
    let config = load(&tls_bootstrap(
        INSPECTOR,
        &[chain(&tls, ""), chain(plain, "")],
        "",
    ));
    assert!(listener_tls(&config).allow_plaintext);
    // Order does not matter, nor does the plaintext chain need a match.
    let config = load(&tls_bootstrap(
        INSPECTOR,
        &[chain("", ""), chain(&tls, "")],
        "",
    ));
    assert!(listener_tls(&config).allow_plaintext);
    // A plaintext chain alone is a plaintext listener.
    let config = load(&tls_bootstrap("", &[chain(plain, "")], ""));
    assert_eq!(config.listeners[0].tls, None);

    // Without the tls_inspector Envoy could not tell them apart.
    let tls_no_match = downstream(&format!(
        "          common_tls_context: {{ tls_certificates: [ {} ] }}\n",
        cert_item(&cert)
    ));
    let errors = errors(&tls_bootstrap(
        "",
        &[chain(&tls_no_match, ""), chain(plain, "")],
        "",
    ));
    assert_eq!(
        errors,
        ["envoy.yaml:23:7: static_resources.listeners[0].filter_chains[1]: a plaintext filter chain beside TLS ones needs the envoy.filters.listener.tls_inspector listener filter: without it Envoy cannot tell TLS from plaintext"]
    );
}

#[test]
fn filter_chains_with_different_connection_managers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cert = cert_files(dir.path(), "s", &["example.com"]);
    let tls = format!(
        "      filter_chain_match: {{ server_names: [a.example.com] }}\n{}",
        downstream(&format!(
            "          common_tls_context: {{ tls_certificates: [ {} ] }}\n",
            cert_item(&cert)
        ))
    );
    let errors = errors(&tls_bootstrap(
        INSPECTOR,
        &[
            chain(&tls, ""),
            chain("", "          use_remote_address: true\n"),
        ],
        "",
    ));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("filter_chains[1].filters[0].typed_config: filter chains with different network filters are not supported: ringway's listener has one HTTP connection manager (filter_chains[1]'s differs from filter_chains[0]'s)"),
        "{errors:?}"
    );
}

#[test]
fn tls_features_ringway_lacks_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cert = cert_files(dir.path(), "s", &["example.com"]);
    let item = cert_item(&cert);
    let refused = |ctx: &str, expected: &str| {
        let text = tls_bootstrap("", &[chain(&downstream(ctx), "")], "");
        let errors = errors(&text);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{expected:?} not in {errors:?}"
        );
    };
    refused(
        &format!("          common_tls_context:\n            tls_certificates: [ {item} ]\n            tls_certificate_sds_secret_configs: [ {{ name: server_cert }} ]\n"),
        "common_tls_context.tls_certificate_sds_secret_configs: SDS is not supported yet; use files",
    );
    refused(
        "          common_tls_context:\n            validation_context_sds_secret_config: { name: ca }\n",
        "validation_context_sds_secret_config: SDS is not supported yet",
    );
    refused(
        &format!("          session_ticket_keys: {{ keys: [ {{ inline_string: x }} ] }}\n          common_tls_context: {{ tls_certificates: [ {item} ] }}\n"),
        "ringway generates and rotates its own session-ticket keys",
    );
    refused(
        &format!("          session_timeout: 60s\n          common_tls_context: {{ tls_certificates: [ {item} ] }}\n"),
        "`session_timeout` is not supported yet",
    );
    refused(
        &format!("          ocsp_staple_policy: MUST_STAPLE\n          common_tls_context: {{ tls_certificates: [ {item} ] }}\n"),
        "ocsp_staple_policy MUST_STAPLE is not supported",
    );
    refused(
        &format!("          common_tls_context: {{ tls_certificates: [ {item} ], alpn_protocols: [\"h2,http/1.1\"] }}\n"),
        "`h2` cannot be offered: HTTP/2 is not served yet",
    );
    refused(
        &format!("          common_tls_context: {{ tls_certificates: [ {item} ], tls_params: {{ tls_minimum_protocol_version: TLSv1_1 }} }}\n"),
        "TLSv1_1 is not supported: ringway speaks TLS 1.2 and 1.3 only",
    );
    refused(
        &format!("          common_tls_context: {{ tls_certificates: [ {item} ], tls_params: {{ cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256, AES128-SHA, \"[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-PSK-CHACHA20-POLY1305]\"] }} }}\n"),
        "cipher suites ringway does not have: AES128-SHA, ECDHE-PSK-CHACHA20-POLY1305",
    );
    refused(
        &format!("          common_tls_context: {{ tls_certificates: [ {item} ], tls_params: {{ ecdh_curves: [P-256, P-521] }} }}\n"),
        "curves ringway does not have: P-521",
    );
    refused(
        &format!("          common_tls_context: {{ tls_certificates: [ {item} ], tls_params: {{ signature_algorithms: [ed25519] }} }}\n"),
        "`signature_algorithms` is not supported",
    );
    refused(
        &format!("          common_tls_context: {{ tls_certificates: [ {item} ], validation_context: {{ trusted_ca: {{ filename: \"{}\" }}, allow_expired_certificate: true }} }}\n", cert.0),
        "ringway does not implement `allow_expired_certificate` of envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
    );
    refused(
        &format!("          common_tls_context: {{ tls_certificates: [ {item} ], validation_context: {{ trusted_ca: {{ filename: \"{}\" }}, match_typed_subject_alt_names: [ {{ san_type: EMAIL, matcher: {{ exact: a@b.c }} }} ] }} }}\n", cert.0),
        "san_type EMAIL is not supported yet",
    );
    refused(
        &format!("          common_tls_context: {{ tls_certificates: [ {item} ], validation_context: {{ trusted_ca: {{ filename: \"{}\" }}, match_typed_subject_alt_names: [ {{ san_type: DNS, matcher: {{ safe_regex: {{ regex: \".*\" }} }} }} ] }} }}\n", cert.0),
        "`safe_regex` is not supported for subject alt names",
    );
    refused(
        &format!("          common_tls_context: {{ tls_certificates: [ {item} ], validation_context: {{ match_typed_subject_alt_names: [ {{ san_type: DNS, matcher: {{ exact: a }} }} ] }} }}\n"),
        "a validation_context without `trusted_ca`",
    );
    refused(
        &format!("          require_client_certificate: true\n          common_tls_context: {{ tls_certificates: [ {item} ] }}\n"),
        "`require_client_certificate` needs `common_tls_context.validation_context`",
    );
    refused(
        "          common_tls_context: { alpn_protocols: [http/1.1] }\n",
        "a TLS listener needs at least one certificate",
    );
    // A certificate that does not load is reported at its entry.
    refused(
        &format!("          common_tls_context: {{ tls_certificates: [ {{ certificate_chain: {{ filename: \"{}\" }}, private_key: {{ inline_string: nokey }} }} ] }}\n", cert.0),
        "common_tls_context.tls_certificates[0]: <inline>: no PEM private key in it",
    );
    // Other filter_chain_match criteria and a default chain.
    let tls = downstream(&format!(
        "          common_tls_context: {{ tls_certificates: [ {item} ] }}\n"
    ));
    let text = tls_bootstrap(
        INSPECTOR,
        &[chain(
            &format!("      filter_chain_match: {{ destination_port: 443 }}\n{tls}"),
            "",
        )],
        "",
    );
    assert!(errors(&text)[0].contains("filter_chain_match.destination_port: unsupported: ringway does not implement `destination_port` of envoy.config.listener.v3.FilterChainMatch"));
    let text = tls_bootstrap(INSPECTOR, &[chain(&tls, "")], "").replace(
        "    filter_chains:\n",
        "    default_filter_chain: { filters: [] }\n    filter_chains:\n",
    );
    assert!(errors(&text)[0].contains("ringway does not implement `default_filter_chain`"));
    // The PROXY protocol before a handshake, and JA3.
    let pp = "    listener_filters:\n    - name: envoy.filters.listener.proxy_protocol\n      typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol }\n";
    assert_eq!(
        errors(&tls_bootstrap(pp, &[chain(&tls, "")], "")),
        ["envoy.yaml:6:7: static_resources.listeners[0].listener_filters[0]: the proxy_protocol listener filter together with TLS is not supported yet (the PROXY header would have to be read before the handshake)"]
    );
    let ja3 = INSPECTOR.replace(
        "initial_read_buffer_size: 4096",
        "enable_ja3_fingerprinting: true",
    );
    assert!(errors(&tls_bootstrap(&ja3, &[chain(&tls, "")], ""))[0]
        .contains("enable_ja3_fingerprinting: JA3 fingerprinting is not supported yet"));
    // x-forwarded-client-cert on a plaintext listener.
    let errors = errors(&tls_bootstrap(
        "",
        &[chain(
            "",
            "          forward_client_cert_details: ALWAYS_FORWARD_ONLY\n",
        )],
        "",
    ));
    assert!(
        errors[0].contains(
            "forward_client_cert_details: on a plaintext listener only SANITIZE is supported"
        ),
        "{errors:?}"
    );
}

#[test]
fn upstream_tls_contexts_map_onto_client_tls() {
    use crate::config::tls::*;
    let dir = tempfile::tempdir().unwrap();
    let client = cert_files(dir.path(), "client", &["client.example.com"]);
    let (ca, _) = cert_files(dir.path(), "ca", &["ca.example.com"]);
    let upstream = |ctx: &str| {
        format!("    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n{ctx}")
    };
    let ctx = format!(
        "        sni: api.example.com\n        max_session_keys: 0\n        common_tls_context:\n          tls_certificates: [ {} ]\n          alpn_protocols: [http/1.1]\n          tls_params: {{ tls_maximum_protocol_version: TLSv1_3 }}\n          validation_context:\n            trusted_ca: {{ filename: \"{ca}\" }}\n            match_typed_subject_alt_names: [ {{ san_type: URI, matcher: {{ exact: \"spiffe://example.com/api\" }} }} ]\n",
        cert_item(&client)
    );
    // `auto_sni` with `auto_san_validation`: the request's host is sent and checked.
    let auto = format!(
        "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: {{ http_protocol_options: {{}} }}\n        upstream_http_protocol_options: {{ auto_sni: true, auto_san_validation: true }}\n{}",
        upstream(&format!(
            "        common_tls_context:\n          validation_context:\n            trusted_ca: {{ filename: \"{ca}\" }}\n"
        ))
    );
    let config = load(&tls_bootstrap("", &[chain("", "")], &auto));
    let tls = config.clusters[0].tls.as_ref().expect("upstream TLS");
    assert!(tls.auto_sni && tls.verify_name && tls.sni.is_none());

    let config = load(&tls_bootstrap("", &[chain("", "")], &upstream(&ctx)));
    let tls = config.clusters[0].tls.as_ref().expect("upstream TLS");
    assert_eq!(tls.sni.as_deref(), Some("api.example.com"));
    let validation = tls.validation.as_ref().expect("verified");
    assert_eq!(validation.ca.as_ref().map(Vec::len), Some(1));
    assert_eq!(
        validation.subject_alt_names,
        [typed(
            SanKind::Uri,
            SanMatch::Exact("spiffe://example.com/api".into()),
            false
        )]
    );
    assert!(
        !tls.verify_name,
        "Envoy checks names only through the matchers"
    );
    assert_eq!(
        tls.certificate.as_ref().map(|c| c.names.clone()),
        Some(vec!["client.example.com".to_owned()])
    );
    assert_eq!(tls.alpn, [b"http/1.1".to_vec()]);
    assert_eq!(tls.versions, Versions::default());
    assert!(!tls.session_resumption);

    // Without a validation context Envoy does not verify the server (a warning says so);
    // a client's default highest version is TLS 1.2.
    let config = load(&tls_bootstrap(
        "",
        &[chain("", "")],
        &upstream("        sni: api.example.com\n"),
    ));
    let tls = config.clusters[0].tls.as_ref().expect("upstream TLS");
    assert_eq!(tls.validation, None);
    assert_eq!(tls.certificate, None);
    assert!(tls.alpn.is_empty());
    assert_eq!(
        tls.versions,
        Versions {
            tls12: true,
            tls13: false
        }
    );
    assert!(tls.session_resumption);

    // raw_buffer is plaintext.
    let raw = "    transport_socket: { name: envoy.transport_sockets.raw_buffer }\n";
    let config = load(&tls_bootstrap("", &[chain("", "")], raw));
    assert_eq!(config.clusters[0].tls, None);

    // Refused by name.
    for (ctx, expected) in [
        (
            "        allow_renegotiation: true\n",
            "allow_renegotiation: TLS renegotiation is not supported",
        ),
        (
            "        auto_host_sni: true\n",
            "ringway does not implement `auto_host_sni`",
        ),
        (
            &*format!(
                "        common_tls_context: {{ tls_certificates: [ {0}, {0} ] }}\n",
                cert_item(&client)
            ),
            "common_tls_context.tls_certificates: a client context has at most one certificate",
        ),
        (
            "        common_tls_context: { alpn_protocols: [h2] }\n",
            "`h2` to upstreams is not supported until HTTP/2 exists",
        ),
    ] {
        let errors = errors(&tls_bootstrap("", &[chain("", "")], &upstream(ctx)));
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{expected:?} not in {errors:?}"
        );
    }
    let matches = "    transport_socket_matches: [ { name: plain, transport_socket: { name: envoy.transport_sockets.raw_buffer } } ]\n";
    assert!(errors(&tls_bootstrap("", &[chain("", "")], matches))[0]
        .contains("ringway does not implement `transport_socket_matches`"));
    // `auto_sni` without a TLS transport socket.
    let auto_sni = "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: { http_protocol_options: {} }\n        upstream_http_protocol_options: { auto_sni: true, auto_san_validation: true }\n";
    assert!(errors(&tls_bootstrap("", &[chain("", "")], auto_sni))[0]
        .contains("`auto_sni` needs a TLS transport socket"));
}

#[test]
fn corpus_configs_with_tls_load() {
    // envoyproxy/examples:front-proxy/envoy.yaml @ bc4dd4a2 (tests/envoy/corpus): its
    // inline certificate is X.509 v1, which rustls (webpki) would not take; ringway
    // checks the key against it itself, so it loads as it does in Envoy.
    let front = include_str!("../../../tests/envoy/corpus/front-proxy_envoy.yaml");
    let config = load(front);
    assert!(config.listeners.iter().any(|l| l.tls.is_some()));

    // envoyproxy/envoy:docs/root/start/quick-start/_include/envoy-demo-tls-client-auth.yaml
    // @ ee2107ff: downstream mTLS and an upstream client certificate, its certs/*.pem
    // made here.
    let dir = tempfile::tempdir().unwrap();
    let server = cert_files(dir.path(), "server", &["proxy.example.com"]);
    let client = cert_files(
        dir.path(),
        "client",
        &["proxy-postgres-backend.example.com"],
    );
    let (ca, _) = cert_files(dir.path(), "ca", &["ca.example.com"]);
    let text = include_str!("../../../tests/envoy/corpus/envoy-demo-tls-client-auth.yaml")
        .replace("certs/cacert.pem", &ca)
        .replace("certs/servercert.pem", &server.0)
        .replace("certs/serverkey.pem", &server.1)
        .replace("certs/clientcert.pem", &client.0)
        .replace("certs/clientkey.pem", &client.1);
    let config = load(&text);
    let tls = listener_tls(&config);
    let auth = tls.client_auth.as_ref().expect("mTLS");
    assert!(auth.required);
    assert_eq!(
        auth.validation.subject_alt_names,
        [typed(
            crate::config::tls::SanKind::Dns,
            crate::config::tls::SanMatch::Exact("proxy-postgres-frontend.example.com".into()),
            false
        )]
    );
    let upstream = config.clusters[0].tls.as_ref().expect("upstream TLS");
    assert!(upstream.certificate.is_some());
    assert_eq!(upstream.validation, None);

    // envoyproxy/envoy:configs/envoy-demo.yaml @ 8b9304c6: TLS origination with `sni`.
    let config = load(include_str!("../../../tests/envoy/corpus/envoy-demo.yaml"));
    let upstream = config.clusters[0].tls.as_ref().expect("upstream TLS");
    assert_eq!(upstream.sni.as_deref(), Some("www.envoyproxy.io"));
}

#[test]
fn config_dumps_redact_inline_private_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (chain_file, key_file) = cert_files(dir.path(), "s", &["example.com"]);
    let pem = std::fs::read_to_string(&chain_file).unwrap();
    let key = std::fs::read_to_string(&key_file).unwrap();
    let ctx = format!(
        "          common_tls_context:\n            tls_certificates:\n            - certificate_chain: {{ inline_string: {pem:?} }}\n              private_key: {{ inline_string: {key:?} }}\n"
    );
    let config = load(&tls_bootstrap("", &[chain(&downstream(&ctx), "")], ""));
    let dump = crate::config::config_dump(&config.document, "2026-12-05T00:00:00.000Z");
    assert!(!dump.contains("PRIVATE KEY"), "a private key in the dump");
    let value: serde_json::Value = serde_json::from_str(&dump).unwrap();
    for socket in [
        &value["configs"][0]["bootstrap"]["static_resources"]["listeners"][0]["filter_chains"][0]
            ["transport_socket"]["typed_config"],
        &value["configs"][2]["static_listeners"][0]["active_state"]["listener"]["filter_chains"][0]
            ["transport_socket"]["typed_config"],
    ] {
        let cert = &socket["common_tls_context"]["tls_certificates"][0];
        assert_eq!(
            cert["private_key"]["inline_string"], "[redacted]",
            "{socket}"
        );
        assert_eq!(cert["certificate_chain"]["inline_string"], pem.as_str());
    }
}

#[test]
fn a_routes_tls_context_becomes_a_client_certificate_condition() {
    let routes = "              - match: { prefix: /, tls_context: { presented: true, validated: true } }\n                route: { cluster: app }\n";
    let config = load(&bootstrap("", routes, ""));
    let route = &config.listeners[0].virtual_hosts[0].routes[0];
    assert_eq!(
        route.conditions.client_certificate,
        Some(crate::config::ClientCertMatch {
            presented: Some(true),
            validated: Some(true),
            subject_alt_names: Vec::new(),
        })
    );
}

/// A matcher of `match_typed_subject_alt_names`.
fn typed(
    kind: crate::config::tls::SanKind,
    pattern: crate::config::tls::SanMatch,
    ignore_case: bool,
) -> crate::config::tls::SanMatch {
    crate::config::tls::SanMatch::Typed {
        kind: Some(kind),
        pattern: Box::new(pattern),
        ignore_case,
    }
}

#[test]
fn connection_caps_come_from_common_http_protocol_options() {
    let hcm = "          common_http_protocol_options: { max_requests_per_connection: 100, max_connection_duration: 300s }\n";
    let config = load(&bootstrap(hcm, ROUTE, ""));
    let l = &config.listeners[0];
    assert_eq!(l.max_requests_per_connection, Some(100));
    assert_eq!(l.max_connection_duration, Some(Duration::from_secs(300)));
    // Zero: no limit, as in Envoy.
    let hcm = "          common_http_protocol_options: { max_requests_per_connection: 0, max_connection_duration: 0s }\n";
    let config = load(&bootstrap(hcm, ROUTE, ""));
    let l = &config.listeners[0];
    assert_eq!(l.max_requests_per_connection, None);
    assert_eq!(l.max_connection_duration, None);
}

#[test]
fn a_clusters_request_cap_comes_from_its_protocol_options_or_its_own_field() {
    let typed = |n: u32| {
        format!(
            "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: {{ http_protocol_options: {{}} }}\n        common_http_protocol_options: {{ max_requests_per_connection: {n} }}\n"
        )
    };
    let cap = |cluster_extra: &str| {
        let config = load(&bootstrap("", ROUTE, cluster_extra));
        config.clusters[0].pool.max_requests_per_connection
    };
    assert_eq!(cap(""), None);
    assert_eq!(cap(&typed(3)), Some(3));
    // The cluster's deprecated field, and the protocol options' over it (0: none).
    assert_eq!(cap("    max_requests_per_connection: 5\n"), Some(5));
    let both = format!("    max_requests_per_connection: 5\n{}", typed(0));
    assert_eq!(cap(&both), None);
    let both = format!("    max_requests_per_connection: 5\n{}", typed(2));
    assert_eq!(cap(&both), Some(2));
    assert_eq!(
        cap("    common_http_protocol_options: { max_requests_per_connection: 7 }\n"),
        Some(7)
    );
}

/// `append_action`'s four values, and `headers_with_underscores_action`'s three.
#[test]
fn append_actions_and_underscore_actions_map_onto_the_native_ones() {
    let routes = r#"              - match: { prefix: "/" }
                route: { cluster: app }
                request_headers_to_add:
                - header: { key: x-a, value: "1" }
                - header: { key: x-b, value: "2" }
                  append_action: ADD_IF_ABSENT
                - header: { key: x-c, value: "3" }
                  append_action: OVERWRITE_IF_EXISTS_OR_ADD
                - header: { key: x-d, value: "4" }
                  append_action: OVERWRITE_IF_EXISTS
"#;
    let config = load(&bootstrap("", routes, ""));
    let adds = &config.listeners[0].virtual_hosts[0].routes[0]
        .headers
        .request_add;
    let got: Vec<_> = adds.iter().map(|a| (a.append, a.only_if)).collect();
    assert_eq!(
        got,
        [
            (true, AddOnlyIf::Always),
            (true, AddOnlyIf::Absent),
            (false, AddOnlyIf::Always),
            (false, AddOnlyIf::Present),
        ]
    );
    for (action, want) in [
        ("ALLOW", crate::http1::Underscores::Allow),
        ("DROP_HEADER", crate::http1::Underscores::Drop),
        ("REJECT_REQUEST", crate::http1::Underscores::Reject),
    ] {
        let hcm = format!(
            "          common_http_protocol_options: {{ headers_with_underscores_action: {action} }}\n"
        );
        let config = load(&bootstrap(&hcm, ROUTE, ""));
        assert_eq!(config.listeners[0].http1.underscores, want, "{action}");
    }
}

/// `case_sensitive: false` on a prefix or a path; ignored on `safe_regex`, as in Envoy.
#[test]
fn case_insensitive_route_matches_map_onto_any_case_matchers() {
    let routes = r#"              - match: { prefix: "/API", case_sensitive: false }
                route: { cluster: app }
              - match: { path: "/Health", case_sensitive: false }
                route: { cluster: app }
              - match: { safe_regex: { regex: "/x.*" }, case_sensitive: false }
                route: { cluster: app }
              - match: { prefix: "/", case_sensitive: true }
                route: { cluster: app }
"#;
    let config = load(&bootstrap("", routes, ""));
    let matchers: Vec<_> = config.listeners[0].virtual_hosts[0]
        .routes
        .iter()
        .map(|r| r.matcher.clone())
        .collect();
    assert_eq!(
        matchers,
        [
            RouteMatch::PrefixAnyCase("/API".into()),
            RouteMatch::PathAnyCase("/Health".into()),
            RouteMatch::Regex("/x.*".into()),
            RouteMatch::Prefix("/".into()),
        ]
    );
}

/// HeaderMatcher's `invert_match` on any test, `range_match` and
/// `treat_missing_header_as_empty`.
#[test]
fn header_matchers_invert_range_and_read_missing_as_empty() {
    let routes = r#"              - match:
                  prefix: "/"
                  headers:
                  - { name: x-a, string_match: { exact: "1" }, invert_match: true }
                  - { name: x-b, range_match: { start: 0, end: 10 } }
                  - { name: x-c, range_match: { start: 5, end: 6 }, invert_match: true, treat_missing_header_as_empty: true }
                  - { name: x-d, present_match: true, invert_match: true }
                route: { cluster: app }
"#;
    let config = load(&bootstrap("", routes, ""));
    let headers = &config.listeners[0].virtual_hosts[0].routes[0]
        .conditions
        .headers;
    let values: Vec<_> = headers.iter().map(|h| h.value.clone()).collect();
    assert_eq!(
        values,
        [
            ValueMatch::Inverted(Box::new(ValueMatch::Exact("1".into()))),
            ValueMatch::Range(0, 10),
            ValueMatch::MissingAsEmpty(Box::new(ValueMatch::Inverted(Box::new(
                ValueMatch::Range(5, 6)
            )))),
            ValueMatch::Present(false),
        ]
    );
}
