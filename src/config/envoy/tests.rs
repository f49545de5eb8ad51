//! The loader on byte strings: Envoy's defaults and leniencies, and each kind of error
//! with its exact text and position.

use std::path::Path;
use std::time::Duration;

use crate::config::model::*;
use crate::config::Config;

fn load(text: &str) -> Config {
    match Config::parse(text, Path::new("envoy.yaml")) {
        Ok(config) => config,
        Err(errors) => panic!("expected a config, got:\n{errors}"),
    }
}

fn errors_with(text: &str, options: &LoadOptions) -> Vec<String> {
    match Config::parse_with(text, Path::new("envoy.yaml"), options) {
        Ok(config) => panic!("expected errors, loaded {config:?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn errors(text: &str) -> Vec<String> {
    errors_with(text, &LoadOptions::default())
}

/// A bootstrap with one listener whose route table is `routes` (indented for
/// `routes:` inside a virtual host) and one STATIC cluster `app`.
fn bootstrap(hcm_extra: &str, routes: &str, cluster_extra: &str) -> String {
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9901 }} }}
static_resources:
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
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
{cluster_extra}    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: 8080 }}
"#
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
        Endpoints::Static(vec![Endpoint {
            address: Address::Tcp("127.0.0.1:8080".parse().unwrap()),
            weight: 1
        }])
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
    let text = bootstrap("", ROUTE, "    lb_policy: MAGLEV\n");
    assert_eq!(
        errors_with(&text, &options),
        ["envoy.yaml:27:16: static_resources.clusters[0].lb_policy: lb_policy MAGLEV is not supported yet (ROUND_ROBIN is)"]
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
            append: false
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
    let routes = "              - match: { prefix: / }\n                route: { cluster: app, retry_policy: { num_retries: 2 } }\n";
    assert_eq!(
        errors(&bootstrap("", routes, "")),
        ["envoy.yaml:20:54: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.retry_policy: unsupported: ringway does not implement `retry_policy` of envoy.config.route.v3.RouteAction (yet); remove it or see docs/envoy.md"]
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
    let hcm = "          access_log:\n          - name: envoy.access_loggers.stdout\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog\n              log_format: { text_format: \"%RESPONSE_DURATION%\" }\n";
    assert_eq!(
        errors(&bootstrap(hcm, ROUTE, "")),
        ["envoy.yaml:18:42: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.access_log[0].typed_config.log_format.text_format: \"%RESPONSE_DURATION%\": %RESPONSE_DURATION% is not supported yet"]
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
