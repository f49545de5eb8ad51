//! Envoy tracing on byte strings: both providers field by field, Envoy's defaults and
//! share rounding, the bootstrap's provider, the UUID request ID extension, route
//! decorators and tracing, one tracer per distinct provider, each refusal naming its
//! field with its position, and the jaeger sandbox file mapped whole.

use std::time::Duration;

use crate::config::envoy::tests::{errors, listener, load};
use crate::config::observability::*;
use crate::config::resilience::Fraction;
use crate::config::Config;

const ZIPKIN: &str = r#"          tracing:
            provider:
              name: envoy.tracers.zipkin
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                collector_cluster: zipkin
                collector_endpoint: /api/v2/spans
                collector_endpoint_version: HTTP_JSON
"#;

/// A bootstrap with `top` before `static_resources`, one listener whose connection
/// manager has `hcm_extra` (indented by 10) and one route to `app` with `route_extra`
/// (indented by 16), and clusters `app`, `zipkin` and `otel`.
fn bootstrap(top: &str, hcm_extra: &str, route_extra: &str) -> String {
    let routes = format!(
        "              - match: {{ prefix: / }}\n                route: {{ cluster: app }}\n{route_extra}"
    );
    let cluster = |name: &str| {
        format!("  - name: {name}\n    load_assignment: {{ cluster_name: {name}, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9411 }} }} }} }}] }}] }}\n")
    };
    format!(
        "{top}{}{}{}{}",
        listener(hcm_extra, &routes),
        cluster("app"),
        cluster("zipkin"),
        cluster("otel")
    )
}

fn config(hcm_extra: &str) -> Config {
    load(&bootstrap("", hcm_extra, ""))
}

fn tracing(config: &Config) -> &ListenerTracing {
    config.listeners[0].tracing.as_ref().expect("tracing")
}

/// The tags every Envoy listener's span carries ahead of its configured ones.
fn node_tags(node_id: &str, zone: &str) -> Vec<CustomTag> {
    vec![
        CustomTag {
            tag: "node_id".into(),
            value: TagValue::Literal(node_id.into()),
        },
        CustomTag {
            tag: "zone".into(),
            value: TagValue::Literal(zone.into()),
        },
        CustomTag {
            tag: "downstream_cluster".into(),
            value: TagValue::RequestHeader {
                name: "x-envoy-downstream-service-cluster".into(),
                default: Some("-".into()),
            },
        },
    ]
}

/// The errors of a connection manager with `hcm_extra`: exactly one, containing every
/// needle and a position.
fn refused(top: &str, hcm_extra: &str, route_extra: &str, needles: &[&str]) {
    let e = errors(&bootstrap(top, hcm_extra, route_extra));
    assert!(
        e.len() == 1 && e[0].starts_with("envoy.yaml:") && needles.iter().all(|n| e[0].contains(n)),
        "expected one error with {needles:?}, got {e:?}"
    );
}

/// ZIPKIN with `extra` fields in its typed_config (indented by 16).
fn zipkin_with(extra: &str) -> String {
    format!("{ZIPKIN}{extra}")
}

#[test]
fn a_zipkin_provider_gets_envoys_defaults() {
    let c = config(ZIPKIN);
    assert_eq!(c.tracers.len(), 1);
    let tracer = &c.tracers[0];
    assert_eq!(
        tracer.provider,
        TraceProvider::Zipkin {
            trace_id_128bit: false,
            shared_span_context: true
        }
    );
    assert_eq!(
        tracer.collector,
        Collector {
            cluster: "zipkin".into(),
            path: "/api/v2/spans".into(),
            authority: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    );
    // No node cluster in the file.
    assert_eq!(tracer.service_name, "envoy");
    assert_eq!(tracer.max_spans_per_second, None);
    assert_eq!(
        (tracer.batch_spans, tracer.flush_interval),
        (5, Duration::from_secs(5))
    );
    let t = tracing(&c);
    assert_eq!(t.tracer, 0);
    assert_eq!(t.sampling, Sampling::ALL);
    assert_eq!(
        t.propagation,
        Propagation {
            b3: true,
            ..Propagation::default()
        }
    );
    assert!(t.request_id_sampling && t.pack_trace_reason);
    assert!(!t.upstream_spans);
    assert_eq!(t.kind, SpanKind::Server);
    assert_eq!(t.custom_tags, node_tags("", ""), "no node in the file");
    assert_eq!(
        t.reads,
        Reads {
            ignore_w3c: true,
            ignore_b3: false,
            b3_first: true
        },
        "Zipkin reads B3 alone"
    );
    assert_eq!(t.max_path_tag_length, 256);
    // Routes without a decorator or tracing keep the listener's.
    assert_eq!(
        c.listeners[0].virtual_hosts[0].routes[0].observe.tracing,
        None
    );
}

#[test]
fn the_service_cluster_flag_names_the_zipkin_service_over_the_node() {
    use crate::config::model::LoadOptions;
    let text = bootstrap("node: { id: n1, cluster: front }\n", ZIPKIN, "");
    let path = std::path::Path::new("envoy.yaml");
    let flag = LoadOptions {
        service_cluster: "from-flag".into(),
        ..LoadOptions::default()
    };
    let c = Config::parse_with(&text, path, &flag).expect("loads");
    assert_eq!(c.tracers[0].service_name, "from-flag");
    let c = Config::parse_with(&text, path, &LoadOptions::default()).expect("loads");
    assert_eq!(c.tracers[0].service_name, "front");
}

/// Envoy's `node_id` and `zone` span tags: the node's `id` and `locality.zone`, under
/// `--service-node` and `--service-zone`.
#[test]
fn the_node_names_every_span() {
    use crate::config::model::LoadOptions;
    let top = "node: { id: n1, cluster: front, locality: { region: r, zone: z1 } }\n";
    let text = bootstrap(top, ZIPKIN, "");
    let path = std::path::Path::new("envoy.yaml");
    let c = Config::parse_with(&text, path, &LoadOptions::default()).expect("loads");
    assert_eq!(tracing(&c).custom_tags, node_tags("n1", "z1"));
    let flags = LoadOptions {
        service_node: "node-flag".into(),
        service_zone: "zone-flag".into(),
        ..LoadOptions::default()
    };
    let c = Config::parse_with(&text, path, &flags).expect("loads");
    assert_eq!(tracing(&c).custom_tags, node_tags("node-flag", "zone-flag"));
}

#[test]
fn zipkin_fields_map_onto_the_tracer() {
    let c = load(&bootstrap(
        "node: { id: n1, cluster: front }\n",
        &zipkin_with(
            "                trace_id_128bit: true\n                shared_span_context: false\n                collector_hostname: zipkin.example:9411\n                trace_context_option: USE_B3_WITH_W3C_PROPAGATION\n                split_spans_for_request: false\n",
        ),
        "",
    ));
    let tracer = &c.tracers[0];
    assert_eq!(
        tracer.provider,
        TraceProvider::Zipkin {
            trace_id_128bit: true,
            shared_span_context: false
        }
    );
    assert_eq!(
        tracing(&c).reads,
        Reads {
            ignore_w3c: false,
            ignore_b3: false,
            b3_first: true
        },
        "B3, then W3C as a fallback"
    );
    assert_eq!(
        tracer.collector.authority.as_deref(),
        Some("zipkin.example:9411")
    );
    assert_eq!(tracer.service_name, "front");
    let p = tracing(&c).propagation;
    assert!(p.b3 && p.w3c && !p.b3_single);
}

#[test]
fn a_collector_service_takes_precedence() {
    let c = config(&zipkin_with(
        "                collector_service:\n                  http_uri: { uri: \"https://Zipkin.Example/api/v2/spans\", cluster: otel, timeout: 2s }\n                  request_headers_to_add: [{ header: { key: X-Token, value: secret } }]\n",
    ));
    let collector = &c.tracers[0].collector;
    assert_eq!(collector.cluster, "otel");
    assert_eq!(collector.path, "/api/v2/spans");
    assert_eq!(collector.authority.as_deref(), Some("zipkin.example"));
    assert_eq!(collector.timeout, Duration::from_secs(2));
    assert_eq!(
        collector.headers,
        [("x-token".to_owned(), "secret".to_owned())]
    );
}

const OTEL: &str = r#"          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                http_service:
                  http_uri: { uri: /v1/traces, cluster: otel, timeout: 0.25s }
"#;

#[test]
fn an_opentelemetry_provider_exports_otlp_over_http() {
    let c = config(OTEL);
    let tracer = &c.tracers[0];
    assert_eq!(tracer.provider, TraceProvider::Otlp);
    assert_eq!(tracer.service_name, "unknown_service:envoy");
    assert_eq!(
        tracer.collector,
        Collector {
            cluster: "otel".into(),
            path: "/v1/traces".into(),
            authority: None,
            headers: Vec::new(),
            timeout: Duration::from_millis(250),
        }
    );
    assert_eq!(
        tracing(&c).propagation,
        Propagation {
            w3c: true,
            ..Propagation::default()
        }
    );
    assert_eq!(
        tracing(&c).reads,
        Reads {
            ignore_w3c: false,
            ignore_b3: true,
            b3_first: false
        },
        "OpenTelemetry reads W3C alone"
    );
    let named = config(&format!("{OTEL}                service_name: checkout\n"));
    assert_eq!(named.tracers[0].service_name, "checkout");
    // A zero timeout would fail every export: the default applies.
    let zero = config(&OTEL.replace("0.25s", "0s"));
    assert_eq!(zero.tracers[0].collector.timeout, Duration::from_secs(5));
}

#[test]
fn connection_manager_fields_map_onto_the_listener() {
    let hcm = format!(
        "{ZIPKIN}            random_sampling: {{ value: 12.345 }}\n            client_sampling: {{ value: 50.9 }}\n            overall_sampling: {{ value: 0.001 }}\n            max_path_tag_length: 64\n            verbose: true\n            spawn_upstream_span: true\n            custom_tags:\n            - {{ tag: env, literal: {{ value: prod }} }}\n            - {{ tag: tenant, request_header: {{ name: X-Tenant, default_value: none }} }}\n            - {{ tag: home, environment: {{ name: RINGWAY_TEST_SURELY_UNSET_VAR, default_value: fallback }} }}\n            - {{ tag: gone, environment: {{ name: RINGWAY_TEST_SURELY_UNSET_VAR }} }}\n          request_id_extension:\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig\n              pack_trace_reason: false\n              use_request_id_for_trace_sampling: false\n"
    );
    let c = config(&hcm);
    let t = tracing(&c);
    // Random and overall: rounded, over 10,000; client: a whole percent, as Envoy.
    assert_eq!(
        t.sampling,
        Sampling {
            random: Fraction {
                numerator: 1235,
                denominator: 10_000
            },
            client: Fraction {
                numerator: 50,
                denominator: 100
            },
            overall: Fraction {
                numerator: 0,
                denominator: 10_000
            },
        }
    );
    assert_eq!(t.max_path_tag_length, 64);
    assert!(t.upstream_spans);
    assert!(!t.request_id_sampling && !t.pack_trace_reason);
    assert_eq!(
        t.custom_tags[..3],
        node_tags("", "")[..],
        "{:?}",
        t.custom_tags
    );
    assert_eq!(
        t.custom_tags[3..],
        [
            CustomTag {
                tag: "env".into(),
                value: TagValue::Literal("prod".into())
            },
            CustomTag {
                tag: "tenant".into(),
                value: TagValue::RequestHeader {
                    name: "x-tenant".into(),
                    default: Some("none".into())
                }
            },
            CustomTag {
                tag: "home".into(),
                value: TagValue::Literal("fallback".into())
            },
        ]
    );
}

#[test]
fn outbound_listeners_make_client_spans() {
    let text = bootstrap("", ZIPKIN, "").replace(
        "  - name: listener_0\n",
        "  - name: listener_0\n    traffic_direction: OUTBOUND\n",
    );
    assert_eq!(tracing(&load(&text)).kind, SpanKind::Client);
}

#[test]
fn the_bootstrap_provider_serves_connection_managers_without_one() {
    let top = "tracing:\n  http:\n    name: envoy.tracers.opentelemetry\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig\n      http_service: { http_uri: { uri: \"http://otel:4318/v1/traces\", cluster: otel, timeout: 1s } }\n";
    let c = load(&bootstrap(
        top,
        "          tracing: { random_sampling: { value: 1 } }\n",
        "",
    ));
    assert_eq!(c.tracers.len(), 1);
    assert_eq!(c.tracers[0].provider, TraceProvider::Otlp);
    assert_eq!(
        c.tracers[0].collector.authority.as_deref(),
        Some("otel:4318")
    );
    assert_eq!(tracing(&c).sampling.random.numerator, 100);
    // Its own provider wins over the bootstrap's.
    let c = load(&bootstrap(top, ZIPKIN, ""));
    assert_eq!(c.tracers.len(), 1);
    assert!(matches!(
        c.tracers[0].provider,
        TraceProvider::Zipkin { .. }
    ));
    // No `tracing` in the connection manager: nothing traced, as in Envoy.
    let c = load(&bootstrap(top, "", ""));
    assert!(c.tracers.is_empty() && c.listeners[0].tracing.is_none());
}

#[test]
fn no_provider_anywhere_traces_nothing() {
    let c = config("          tracing: { verbose: true }\n");
    assert!(c.tracers.is_empty() && c.listeners[0].tracing.is_none());
}

#[test]
fn routes_map_decorators_and_tracing() {
    let route_extra = "                decorator: { operation: checkAvailability }\n              - match: { prefix: /quiet }\n                route: { cluster: app }\n                decorator: { operation: quiet, propagate: false }\n                tracing:\n                  random_sampling: { numerator: 5, denominator: TEN_THOUSAND }\n                  custom_tags: [{ tag: route, literal: { value: quiet } }]\n              - match: { prefix: /named }\n                route: { cluster: app }\n                tracing: { operation: named }\n";
    let c = load(&bootstrap("", ZIPKIN, route_extra));
    let routes = &c.listeners[0].virtual_hosts[0].routes;
    assert_eq!(
        routes[0].observe.tracing,
        Some(RouteTracing {
            operation: Some("checkAvailability".into()),
            propagate_operation: true,
            sampling: None,
            custom_tags: Vec::new(),
        })
    );
    // A route's `tracing` replaces all three shares, 100 % where unset.
    assert_eq!(
        routes[1].observe.tracing,
        Some(RouteTracing {
            operation: Some("quiet".into()),
            propagate_operation: false,
            sampling: Some(Sampling {
                random: Fraction {
                    numerator: 5,
                    denominator: 10_000
                },
                ..Sampling::ALL
            }),
            custom_tags: vec![CustomTag {
                tag: "route".into(),
                value: TagValue::Literal("quiet".into())
            }],
        })
    );
    let named = routes[2].observe.tracing.as_ref().unwrap();
    assert_eq!(named.operation.as_deref(), Some("named"));
    assert!(!named.propagate_operation);
}

#[test]
fn equal_providers_share_one_tracer() {
    let text = bootstrap("", ZIPKIN, "");
    let second = text
        .split("  clusters:\n")
        .next()
        .unwrap()
        .split("  listeners:\n")
        .nth(1)
        .unwrap()
        .replace("listener_0", "listener_1")
        .replace("port_value: 10000", "port_value: 10001");
    let two = text.replace("  clusters:\n", &format!("{second}  clusters:\n"));
    let c = load(&two);
    assert_eq!(c.tracers.len(), 1);
    assert_eq!(c.listeners[1].tracing.as_ref().unwrap().tracer, 0);
    let other = two.replacen("collector_cluster: zipkin", "collector_cluster: otel", 1);
    let c = load(&other);
    assert_eq!(c.tracers.len(), 2);
    let indices: Vec<usize> = c
        .listeners
        .iter()
        .map(|l| l.tracing.as_ref().unwrap().tracer)
        .collect();
    assert_eq!(indices, [0, 1]);
}

#[test]
fn unsupported_tracing_is_refused_by_name() {
    let provider_cases: &[(&str, &[&str])] = &[
        (
            "                timestamp_trace_ids: true\n",
            &["timestamp_trace_ids"],
        ),
        (
            "                split_spans_for_request: true\n",
            &["split_spans_for_request", "spawn_upstream_span"],
        ),
    ];
    for (extra, needles) in provider_cases {
        refused("", &zipkin_with(extra), "", needles);
    }
    refused(
        "",
        &ZIPKIN.replace("HTTP_JSON", "HTTP_PROTO"),
        "",
        &["collector_endpoint_version", "HTTP_PROTO"],
    );
    refused(
        "",
        &ZIPKIN.replace("HTTP_JSON", "GRPC"),
        "",
        &["collector_endpoint_version", "GRPC", "HTTP/2"],
    );
    refused(
        "",
        &ZIPKIN.replace(
            "                collector_endpoint_version: HTTP_JSON\n",
            "",
        ),
        "",
        &["collector_endpoint_version", "is required"],
    );
    refused(
        "",
        &ZIPKIN.replace("collector_cluster: zipkin", "collector_cluster: nope"),
        "",
        &["collector_cluster", "unknown cluster \"nope\""],
    );
    refused(
        "",
        &ZIPKIN.replace("                collector_endpoint: /api/v2/spans\n", ""),
        "",
        &["collector_endpoint", "required"],
    );
    let grpc = OTEL.replace(
        "                http_service:\n                  http_uri: { uri: /v1/traces, cluster: otel, timeout: 0.25s }\n",
        "                grpc_service: { envoy_grpc: { cluster_name: otel } }\n",
    );
    refused("", &grpc, "", &["grpc_service", "HTTP/2"]);
    for (field, value) in [
        (
            "sampler",
            "{ name: s, typed_config: { \"@type\": type.googleapis.com/google.protobuf.Empty } }",
        ),
        (
            "resource_detectors",
            "[{ name: r, typed_config: { \"@type\": type.googleapis.com/google.protobuf.Empty } }]",
        ),
        ("max_cache_size", "10"),
    ] {
        let text = bootstrap("", &format!("{OTEL}                {field}: {value}\n"), "");
        let e = errors(&text);
        assert!(
            e.iter()
                .any(|x| x.contains(field) && x.starts_with("envoy.yaml:")),
            "{field}: {e:?}"
        );
    }
    refused(
        "",
        &OTEL.replace("uri: /v1/traces", "uri: v1/traces"),
        "",
        &["http_service.http_uri.uri", "must start with `/`"],
    );
    let hcm_cases: &[(&str, &[&str])] = &[
        ("            operation: \"%REQ(:PATH)%\"\n", &["operation"]),
        ("            upstream_operation: up\n", &["upstream_operation"]),
        ("            no_context_propagation: true\n", &["no_context_propagation"]),
        (
            "            custom_tags: [{ tag: m, metadata: { kind: { request: {} }, metadata_key: { key: k, path: [{ key: p }] } } }]\n",
            &["custom_tags[0].metadata"],
        ),
        (
            "            custom_tags: [{ tag: a, literal: { value: x } }, { tag: a, literal: { value: y } }]\n",
            &["custom_tags[1].tag", "given twice"],
        ),
    ];
    for (extra, needles) in hcm_cases {
        refused("", &format!("{ZIPKIN}{extra}"), "", needles);
    }
    refused(
        "",
        &format!("{ZIPKIN}          request_id_extension:\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig\n"),
        "",
        &["request_id_extension.typed_config", "not a request ID extension"],
    );
    let route_cases: &[(&str, &[&str])] = &[
        (
            "                tracing: { operation: \"%REQ(:PATH)%\" }\n",
            &["routes[0].tracing.operation", "format-string"],
        ),
        (
            "                decorator: { operation: a }\n                tracing: { operation: b }\n",
            &["routes[0].tracing.operation", "decorator.propagate: false"],
        ),
        (
            "                tracing: { upstream_operation: up }\n",
            &["routes[0].tracing.upstream_operation"],
        ),
        (
            "                decorator: { operation: \"\" }\n",
            &["routes[0].decorator.operation"],
        ),
    ];
    for (extra, needles) in route_cases {
        refused("", ZIPKIN, extra, needles);
    }
    refused(
        "tracing:\n  http:\n    name: x\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig\n",
        "          tracing: {}\n",
        "",
        &["tracing.http.typed_config", "not a tracing provider"],
    );
}

#[test]
fn the_jaeger_sandbox_file_maps_whole() {
    let text = include_str!("../../../../tests/envoy/corpus/service1-envoy-jaeger.yaml");
    let c = Config::parse(text, std::path::Path::new("service1-envoy-jaeger.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.format,
        crate::config::model::ConfigFormat::Envoy {
            unknown_fields: 0,
            degraded: 0
        }
    );
    // Both connection managers have the same provider: one tracer.
    assert_eq!(
        c.tracers,
        [Tracer {
            provider: TraceProvider::Zipkin {
                trace_id_128bit: false,
                shared_span_context: false
            },
            collector: Collector {
                cluster: "jaeger".into(),
                path: "/api/v2/spans".into(),
                authority: None,
                headers: Vec::new(),
                timeout: Duration::from_secs(5),
            },
            service_name: "envoy".into(),
            max_spans_per_second: None,
            batch_spans: 5,
            flush_interval: Duration::from_secs(5),
            queue_batches: Tracer::DEFAULT_QUEUE_BATCHES,
        }]
    );
    let expect = [
        (SpanKind::Server, "checkAvailability"),
        (SpanKind::Client, "checkStock"),
    ];
    for (listener, (kind, operation)) in c.listeners.iter().zip(expect) {
        let t = listener.tracing.as_ref().expect("tracing");
        assert_eq!(t.tracer, 0);
        assert_eq!(t.kind, kind, "{}", listener.name);
        assert_eq!(
            t.propagation,
            Propagation {
                b3: true,
                ..Propagation::default()
            }
        );
        assert_eq!(t.sampling, Sampling::ALL);
        assert!(t.request_id_sampling && t.pack_trace_reason && !t.upstream_spans);
        let route = &listener.virtual_hosts[0].routes[0];
        assert_eq!(
            route.observe.tracing,
            Some(RouteTracing {
                operation: Some(operation.into()),
                propagate_operation: true,
                sampling: None,
                custom_tags: Vec::new(),
            })
        );
    }
}

#[test]
fn the_retired_tracing_group_drops_nothing_and_others_still_degrade() {
    use crate::config::model::{ConfigFormat, LoadOptions};
    let options = |groups: &[&str]| LoadOptions {
        accept_degraded: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..LoadOptions::default()
    };
    let text = bootstrap("stats_flush_interval: 5s\n", ZIPKIN, "");
    let path = std::path::Path::new("envoy.yaml");
    let c = Config::parse_with(&text, path, &options(&["tracing", "stats_sinks"]))
        .unwrap_or_else(|e| panic!("{e}"));
    // The tracer is kept; only the stats flush interval is dropped.
    assert_eq!(c.tracers.len(), 1);
    assert_eq!(
        c.format,
        ConfigFormat::Envoy {
            unknown_fields: 0,
            degraded: 1
        }
    );
    let e = Config::parse_with(&text, path, &options(&["tracer"])).unwrap_err();
    assert!(e.to_string().contains("unknown group \"tracer\""), "{e}");
}
