//! Schema of the native tracing keys onto `config::observability`: the top-level
//! `tracing` (the process's tracer), a listener's `tracing` (which requests are traced
//! and how context travels) and a route's `tracing` (its span name and sampling).
//!
//! ```yaml
//! tracing:
//!   provider: otlp                    # or zipkin
//!   collector: { cluster: otel, path: /v1/traces, authority: otel.example, timeout: 5s,
//!                headers: { authorization: "Bearer x" } }
//!   service_name: edge
//! listeners:
//!   - name: edge
//!     tracing: { sampling: 1%, propagation: [w3c, b3] }   # or `tracing: true`
//!     routes:
//!       - match: { prefix: /orders }
//!         cluster: app
//!         tracing: { operation: getOrders, sampling: 100% }
//! ```
//!
//! Design: one tracer per native file (Envoy's connection managers may each name their
//! own; `Config::tracers` holds them all), so a listener's `tracing` names none: it uses
//! index 0, and a listener `tracing` without the top-level section is an error at the
//! listener's key, checked once the file is read (`check_tracing`). Native defaults
//! differ from Envoy's where the proxy is its own hop: a client span per upstream
//! attempt (`upstream_spans: true`), 128-bit Zipkin trace ids (a 64-bit id cannot be
//! written as a W3C `traceparent`), no Zipkin shared spans, and a decision drawn from
//! the worker's generator rather than from `x-request-id`. Shares are Envoy's three
//! (random, client, overall), each 100 % by default as in Envoy; `sampling` sets the
//! random one. Percentages use the rule of mirrors and faults (`decode_resilience`:
//! 0 to 100, four decimals at most), written as a number or as text with `%`.

use super::decode_headers::check_field_name;
use super::decode_resilience::percent_millionths;
use super::error::Diagnostics;
use super::fields::{choice, duration, list, optional_bool, Marks};
use super::node::{Map, Node};
use super::observability::{
    Collector, CustomTag, ListenerTracing, Propagation, Reads, RouteTracing, Sampling, SpanKind,
    TagValue, TraceProvider, Tracer,
};
use super::resilience::Fraction;

const TRACER_KEYS: &[&str] = &[
    "provider",
    "collector",
    "service_name",
    "max_spans_per_second",
    "batch",
    "flush_interval",
    "queue",
    "trace_id_128bit",
    "shared_span_context",
];
const COLLECTOR_KEYS: &[&str] = &["cluster", "path", "authority", "timeout", "headers"];
const LISTENER_TRACING_KEYS: &[&str] = &[
    "sampling",
    "propagation",
    "custom_tags",
    "tag_headers",
    "max_path_tag_length",
    "upstream_spans",
];
const ROUTE_TRACING_KEYS: &[&str] = &["operation", "sampling", "custom_tags", "tag_headers"];

/// The most spans one export request may carry, and the most batches waiting: bounds
/// on what a worker and the exporter hold (each batch is allocated once and reused).
const MAX_BATCH: i64 = 65_536;
const MAX_QUEUE: i64 = 4_096;

/// Native Zipkin defaults (see the module's design note).
const NATIVE_TRACE_ID_128BIT: bool = true;
const NATIVE_SHARED_SPAN_CONTEXT: bool = false;

#[derive(Clone, Copy)]
enum Provider {
    Otlp,
    Zipkin,
    OtlpGrpc,
}

/// The top-level `tracing`: the process's tracer. Its collector cluster goes to
/// `marks.cluster_refs`, which `validate` checks.
pub(super) fn tracer<'a>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    marks: &mut Marks<'a>,
) -> Option<Tracer> {
    let map = node.map(diag, TRACER_KEYS)?;
    let provider = map.field(diag, "provider").and_then(|n| {
        let provider = choice(
            &n,
            diag,
            &[
                ("otlp", Provider::Otlp),
                ("zipkin", Provider::Zipkin),
                ("otlp_grpc", Provider::OtlpGrpc),
            ],
        )?;
        if let Provider::OtlpGrpc = provider {
            n.error(
                diag,
                "`otlp_grpc` waits for HTTP/2 (ringway's upstreams speak HTTP/1.1); use `otlp` (OTLP over HTTP, protobuf)",
            );
            return None;
        }
        Some(provider)
    });
    let zipkin_only = |key: &str, default: bool, diag: &mut Diagnostics| match map.optional(key) {
        Some(n) if matches!(provider, Some(Provider::Otlp)) => {
            n.error(
                diag,
                format!("`{key}` applies to the `zipkin` provider only (OTLP trace ids are 128-bit, its spans never shared)"),
            );
            None
        }
        _ => optional_bool(&map, key, default, diag),
    };
    let trace_id_128bit = zipkin_only("trace_id_128bit", NATIVE_TRACE_ID_128BIT, diag);
    let shared_span_context = zipkin_only("shared_span_context", NATIVE_SHARED_SPAN_CONTEXT, diag);
    let default_path = match provider {
        Some(Provider::Zipkin) => Collector::ZIPKIN_PATH,
        _ => Collector::OTLP_PATH,
    };
    let collector = map
        .field(diag, "collector")
        .and_then(|n| collector(&n, default_path, diag, marks));
    let service_name = match map.optional("service_name") {
        Some(n) => n.str(diag).and_then(|text| {
            if text.trim().is_empty() || text.chars().any(char::is_control) {
                n.error(
                    diag,
                    format!("{text:?}: a service name is printable text, not empty"),
                );
                return None;
            }
            Some(text.to_owned())
        }),
        None => Some(Tracer::DEFAULT_SERVICE_NAME.to_owned()),
    };
    let max_spans_per_second = match map.optional("max_spans_per_second") {
        Some(n) => n
            .int_in(diag, "a number of spans", 1..=i64::from(u32::MAX))
            .and_then(|v| u32::try_from(v).ok())
            .map(Some),
        None => Some(None),
    };
    let count = |key: &str, what: &str, max: i64, default: usize, diag: &mut Diagnostics| match map
        .optional(key)
    {
        Some(n) => n
            .int_in(diag, what, 1..=max)
            .and_then(|v| usize::try_from(v).ok()),
        None => Some(default),
    };
    let batch_spans = count(
        "batch",
        "a number of spans",
        MAX_BATCH,
        Tracer::DEFAULT_BATCH_SPANS,
        diag,
    );
    let queue_batches = count(
        "queue",
        "a number of batches",
        MAX_QUEUE,
        Tracer::DEFAULT_QUEUE_BATCHES,
        diag,
    );
    let flush_interval = match map.optional("flush_interval") {
        Some(n) => duration(&n, diag),
        None => Some(Tracer::DEFAULT_FLUSH_INTERVAL),
    };
    let provider = match provider? {
        Provider::Zipkin => TraceProvider::Zipkin {
            trace_id_128bit: trace_id_128bit?,
            shared_span_context: shared_span_context?,
        },
        _ => {
            trace_id_128bit?;
            shared_span_context?;
            TraceProvider::Otlp
        }
    };
    Some(Tracer {
        provider,
        collector: collector?,
        service_name: service_name?,
        max_spans_per_second: max_spans_per_second?,
        batch_spans: batch_spans?,
        flush_interval: flush_interval?,
        queue_batches: queue_batches?,
    })
}

/// `collector: {cluster, path, authority, timeout, headers}`.
fn collector<'a>(
    node: &Node<'a>,
    default_path: &str,
    diag: &mut Diagnostics,
    marks: &mut Marks<'a>,
) -> Option<Collector> {
    let map = node.map(diag, COLLECTOR_KEYS)?;
    let cluster = map.field(diag, "cluster").and_then(|n| {
        let cluster = n.str(diag)?;
        // Existence is checked once all clusters are known (validate).
        marks.cluster_refs.push((cluster, n.clone()));
        Some(cluster.to_owned())
    });
    let path = match map.optional("path") {
        Some(n) => n.parse_str(diag, |text| {
            super::decode_rewrite::check_uri_path(text, false).map(|()| text.to_owned())
        }),
        None => Some(default_path.to_owned()),
    };
    let authority = match map.optional("authority") {
        Some(n) => n
            .parse_str(diag, super::decode_rewrite::check_authority)
            .map(Some),
        None => Some(None),
    };
    let timeout = match map.optional("timeout") {
        Some(n) => duration(&n, diag),
        None => Some(Collector::DEFAULT_TIMEOUT),
    };
    let headers = match map.optional("headers") {
        Some(n) => headers(&n, diag),
        None => Some(Vec::new()),
    };
    Some(Collector {
        cluster: cluster?,
        path: path?,
        authority: authority?,
        headers: headers?,
        timeout: timeout?,
    })
}

/// `headers: {name: value, ...}`: the collector's request headers, in order.
fn headers(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<(String, String)>> {
    let mut ok = true;
    let mut out = Vec::new();
    for (key, key_node, value) in node.entries(diag)? {
        if let Err(message) = check_field_name(key) {
            key_node.error(diag, message);
            ok = false;
            continue;
        }
        let Some(text) = value.peek_str() else {
            value.wrong_type(diag, "a header value (a string)");
            ok = false;
            continue;
        };
        if let Err(message) = check_value(text) {
            value.error(diag, message);
            ok = false;
            continue;
        }
        out.push((key.to_ascii_lowercase(), text.to_owned()));
    }
    ok.then_some(out)
}

/// A header or tag value: no CR, LF or other controls (header injection).
fn check_value(text: &str) -> Result<(), String> {
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "{text:?} is not a valid header value (no control characters)"
        ));
    }
    Ok(())
}

/// A listener's `tracing`: `true` (the defaults), `false` (none: context is passed
/// through untouched) or a mapping. `Some(None)` when off.
pub(super) fn listener(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Option<ListenerTracing>> {
    let defaults = ListenerTracing {
        tracer: 0,
        sampling: Sampling::ALL,
        propagation: Propagation {
            w3c: true,
            ..Propagation::default()
        },
        reads: Reads::ALL,
        request_id_sampling: false,
        pack_trace_reason: false,
        upstream_spans: true,
        kind: SpanKind::Server,
        custom_tags: Vec::new(),
        max_path_tag_length: ListenerTracing::DEFAULT_MAX_PATH_TAG_LENGTH,
    };
    if let Some(on) = node.peek_bool() {
        return Some(on.then_some(defaults));
    }
    if node.peek_str().is_some() || node.is_seq() || node.peek_number().is_some() {
        node.wrong_type(diag, "`true`, `false` or a mapping");
        return None;
    }
    let map = node.map(diag, LISTENER_TRACING_KEYS)?;
    let sampling = match map.optional("sampling") {
        Some(n) => share(&n, diag).map(|random| Sampling {
            random,
            ..Sampling::ALL
        }),
        None => Some(defaults.sampling),
    };
    let propagation = match map.optional("propagation") {
        Some(n) => propagation(&n, diag),
        None => Some(defaults.propagation),
    };
    let tags = tags(&map, diag);
    let max_path_tag_length = match map.optional("max_path_tag_length") {
        Some(n) => n
            .int_in(diag, "a length in bytes", 1..=65_536)
            .and_then(|v| usize::try_from(v).ok()),
        None => Some(defaults.max_path_tag_length),
    };
    let upstream_spans = optional_bool(&map, "upstream_spans", defaults.upstream_spans, diag);
    Some(Some(ListenerTracing {
        sampling: sampling?,
        propagation: propagation?,
        custom_tags: tags?,
        max_path_tag_length: max_path_tag_length?,
        upstream_spans: upstream_spans?,
        ..defaults
    }))
}

/// `propagation: [w3c, b3, b3_single]`: at least one, each once.
fn propagation(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Propagation> {
    #[derive(Clone, Copy, PartialEq)]
    enum Format {
        W3c,
        B3,
        B3Single,
    }
    let formats = list(node, diag, |item, diag| {
        choice(
            item,
            diag,
            &[
                ("w3c", Format::W3c),
                ("b3", Format::B3),
                ("b3_single", Format::B3Single),
            ],
        )
    })?;
    if formats.is_empty() {
        node.error(
            diag,
            "at least one format is required (`w3c`, `b3`, `b3_single`); to pass context through untouched, leave the listener's `tracing` out",
        );
        return None;
    }
    let mut out = Propagation::default();
    for (i, format) in formats.iter().enumerate() {
        if formats[..i].contains(format) {
            node.error(diag, "a format is listed twice");
            return None;
        }
        match format {
            Format::W3c => out.w3c = true,
            Format::B3 => out.b3 = true,
            Format::B3Single => out.b3_single = true,
        }
    }
    Some(out)
}

/// `custom_tags: {tag: value}` (literal values) and `tag_headers: {tag: header}` (a
/// request header's value, no tag when absent); a tag is named once.
fn tags(map: &Map<'_>, diag: &mut Diagnostics) -> Option<Vec<CustomTag>> {
    let mut ok = true;
    let mut out: Vec<CustomTag> = Vec::new();
    for key in ["custom_tags", "tag_headers"] {
        let Some(node) = map.optional(key) else {
            continue;
        };
        let Some(entries) = node.entries(diag) else {
            ok = false;
            continue;
        };
        for (tag, key_node, value) in entries {
            if tag.trim().is_empty() || tag.chars().any(char::is_control) {
                key_node.error(diag, format!("{tag:?}: a tag name is printable text"));
                ok = false;
                continue;
            }
            if out.iter().any(|t| t.tag == tag) {
                key_node.error(diag, format!("tag {tag:?} is given twice"));
                ok = false;
                continue;
            }
            let Some(text) = value.peek_str() else {
                value.wrong_type(diag, "a string");
                ok = false;
                continue;
            };
            let value = if key == "custom_tags" {
                if let Err(message) = check_value(text) {
                    value.error(diag, message);
                    ok = false;
                    continue;
                }
                TagValue::Literal(text.to_owned())
            } else {
                if let Err(message) = check_field_name(text) {
                    value.error(diag, message);
                    ok = false;
                    continue;
                }
                TagValue::RequestHeader {
                    name: text.to_ascii_lowercase(),
                    default: None,
                }
            };
            out.push(CustomTag {
                tag: tag.to_owned(),
                value,
            });
        }
    }
    ok.then_some(out)
}

/// A route's `tracing: {operation, sampling, custom_tags, tag_headers}`.
pub(super) fn route(node: &Node<'_>, diag: &mut Diagnostics) -> Option<RouteTracing> {
    let map = node.map(diag, ROUTE_TRACING_KEYS)?;
    let operation = match map.optional("operation") {
        Some(n) => n.str(diag).and_then(|text| {
            if text.trim().is_empty() || text.chars().any(char::is_control) {
                n.error(
                    diag,
                    format!("{text:?}: an operation name is printable text, not empty"),
                );
                return None;
            }
            Some(Some(text.to_owned()))
        }),
        None => Some(None),
    };
    let sampling = match map.optional("sampling") {
        Some(n) => share(&n, diag).map(|random| {
            Some(Sampling {
                random,
                ..Sampling::ALL
            })
        }),
        None => Some(None),
    };
    let custom_tags = tags(&map, diag);
    Some(RouteTracing {
        operation: operation?,
        // `x-envoy-decorator-operation` is Envoy's; native routes do not send it.
        propagate_operation: false,
        sampling: sampling?,
        custom_tags: custom_tags?,
    })
}

/// A share of requests: `1%`, `0.5%`, or a bare number of percent (`1`).
fn share(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Fraction> {
    let expected = "a percentage such as `1%` or `0.25%`";
    let value = match node.peek_str() {
        Some(text) => text
            .trim()
            .strip_suffix('%')
            .and_then(|number| number.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite()),
        None => node.peek_number(),
    };
    let Some(value) = value else {
        node.wrong_type(diag, expected);
        return None;
    };
    let Some(millionths) = percent_millionths(value) else {
        node.error(
            diag,
            format!("expected a percentage from 0 to 100 with at most 4 decimals, found {value}%"),
        );
        return None;
    };
    // A whole percent keeps the denominator 100, as Envoy's `FractionalPercent` would.
    Some(if millionths % 10_000 == 0 {
        Fraction {
            numerator: millionths / 10_000,
            denominator: 100,
        }
    } else {
        Fraction {
            numerator: millionths,
            denominator: 1_000_000,
        }
    })
}

/// After the whole file is read: a listener's `tracing` (other than `false`) needs the
/// top-level one (`have_tracer`: it is there, whether it decoded or not).
pub(super) fn check_listeners(have_tracer: bool, listeners: &[Node<'_>], diag: &mut Diagnostics) {
    if have_tracer {
        return;
    }
    for n in listeners {
        if n.peek_bool() != Some(false) {
            n.error(
                diag,
                "a listener's `tracing` needs the top-level `tracing` (the provider and collector its spans go to)",
            );
        }
    }
}

/// The `tracing` of routes whose listener has none: each is an error (nothing would
/// ever read it).
pub(super) fn check_routes(routes: &[Node<'_>], diag: &mut Diagnostics) {
    for n in routes {
        n.error(
            diag,
            "a route's `tracing` needs its listener's `tracing` (which requests are traced, and how context is propagated)",
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    const CLUSTERS: &str = "clusters:\n  - name: otel\n    endpoints: [127.0.0.1:4318]\n  - name: app\n    endpoints: [127.0.0.1:8080]\n";

    /// A file with top-level `top`, one listener with `listener_extra` (indented by 4) and
    /// one route with `route_extra` (indented by 8).
    fn parse(top: &str, listener_extra: &str, route_extra: &str) -> Result<Config, Vec<String>> {
        let text = format!(
            "{top}listeners:\n  - name: edge\n    address: 127.0.0.1:0\n{listener_extra}    routes:\n      - match: {{ prefix: / }}\n        cluster: app\n{route_extra}{CLUSTERS}"
        );
        Config::parse(&text, Path::new("t.yaml"))
            .map_err(|errors| errors.iter().map(|e| e.to_string()).collect())
    }

    const OTLP: &str = "tracing: { provider: otlp, collector: { cluster: otel } }\n";

    #[test]
    fn a_tracer_gets_the_native_defaults() {
        let c = parse(OTLP, "    tracing: true\n", "").expect("parses");
        assert_eq!(
            c.tracers,
            [Tracer {
                provider: TraceProvider::Otlp,
                collector: Collector {
                    cluster: "otel".into(),
                    path: "/v1/traces".into(),
                    authority: None,
                    headers: Vec::new(),
                    timeout: Duration::from_secs(5),
                },
                service_name: "ringway".into(),
                max_spans_per_second: None,
                batch_spans: 512,
                flush_interval: Duration::from_secs(1),
                queue_batches: 64,
            }]
        );
        assert_eq!(
            c.listeners[0].tracing,
            Some(ListenerTracing {
                tracer: 0,
                sampling: Sampling::ALL,
                propagation: Propagation {
                    w3c: true,
                    b3: false,
                    b3_single: false
                },
                reads: Reads::ALL,
                request_id_sampling: false,
                pack_trace_reason: false,
                upstream_spans: true,
                kind: SpanKind::Server,
                custom_tags: Vec::new(),
                max_path_tag_length: 256,
            })
        );
        assert_eq!(c.listeners[0].routes[0].observe.tracing, None);
        // A tracer alone traces nothing; `tracing: false` is the same as no key.
        let c = parse(OTLP, "", "").expect("parses");
        assert_eq!(
            (c.tracers.len(), c.listeners[0].tracing.as_ref()),
            (1, None)
        );
        let c = parse(OTLP, "    tracing: false\n", "").expect("parses");
        assert!(c.listeners[0].tracing.is_none());
        assert!(parse("", "", "").expect("parses").tracers.is_empty());
    }

    #[test]
    fn every_key_is_read() {
        let top = "tracing:\n  provider: zipkin\n  collector:\n    cluster: otel\n    path: /zipkin/spans\n    authority: Collector.Example:9411\n    timeout: 2s\n    headers: { Authorization: \"Bearer x\", x-scope: edge }\n  service_name: edge\n  max_spans_per_second: 1000\n  batch: 100\n  flush_interval: 500ms\n  queue: 8\n  trace_id_128bit: false\n  shared_span_context: true\n";
        let listener = "    tracing:\n      sampling: 1%\n      propagation: [b3_single, w3c, b3]\n      custom_tags: { env: prod }\n      tag_headers: { tenant: X-Tenant }\n      max_path_tag_length: 64\n      upstream_spans: false\n";
        let route = "        tracing: { operation: getOrders, sampling: 0.25, custom_tags: { route: orders } }\n";
        let c = parse(top, listener, route).expect("parses");
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
                cluster: "otel".into(),
                path: "/zipkin/spans".into(),
                authority: Some("collector.example:9411".into()),
                headers: vec![
                    ("authorization".into(), "Bearer x".into()),
                    ("x-scope".into(), "edge".into())
                ],
                timeout: Duration::from_secs(2),
            }
        );
        assert_eq!(tracer.service_name, "edge");
        assert_eq!(tracer.max_spans_per_second, Some(1000));
        assert_eq!(
            (
                tracer.batch_spans,
                tracer.flush_interval,
                tracer.queue_batches
            ),
            (100, Duration::from_millis(500), 8)
        );
        let t = c.listeners[0].tracing.as_ref().expect("tracing");
        assert_eq!(
            t.sampling,
            Sampling {
                random: Fraction {
                    numerator: 1,
                    denominator: 100
                },
                ..Sampling::ALL
            }
        );
        assert_eq!(
            t.propagation,
            Propagation {
                w3c: true,
                b3: true,
                b3_single: true
            }
        );
        assert_eq!(
            t.custom_tags,
            [
                CustomTag {
                    tag: "env".into(),
                    value: TagValue::Literal("prod".into())
                },
                CustomTag {
                    tag: "tenant".into(),
                    value: TagValue::RequestHeader {
                        name: "x-tenant".into(),
                        default: None
                    }
                },
            ]
        );
        assert_eq!(t.max_path_tag_length, 64);
        assert!(!t.upstream_spans);
        assert_eq!(
            c.listeners[0].routes[0].observe.tracing,
            Some(RouteTracing {
                operation: Some("getOrders".into()),
                propagate_operation: false,
                sampling: Some(Sampling {
                    random: Fraction {
                        numerator: 2500,
                        denominator: 1_000_000
                    },
                    ..Sampling::ALL
                }),
                custom_tags: vec![CustomTag {
                    tag: "route".into(),
                    value: TagValue::Literal("orders".into())
                }],
            })
        );
        // Zipkin's native defaults: 128-bit ids, no shared spans; its own path.
        let c = parse(
            "tracing: { provider: zipkin, collector: { cluster: otel } }\n",
            "",
            "",
        )
        .expect("parses");
        assert_eq!(
            c.tracers[0].provider,
            TraceProvider::Zipkin {
                trace_id_128bit: true,
                shared_span_context: false
            }
        );
        assert_eq!(c.tracers[0].collector.path, "/api/v2/spans");
    }

    #[test]
    fn shares_are_percentages() {
        let share = |text: &str| {
            let listener = format!("    tracing: {{ sampling: {text} }}\n");
            parse(OTLP, &listener, "")
                .map(|c| c.listeners[0].tracing.clone().unwrap().sampling.random)
        };
        let f = |numerator, denominator| Fraction {
            numerator,
            denominator,
        };
        assert_eq!(share("100%"), Ok(f(100, 100)));
        assert_eq!(share("0%"), Ok(f(0, 100)));
        assert_eq!(share("\"12.5 %\""), Ok(f(125_000, 1_000_000)));
        assert_eq!(share("0.0001%"), Ok(f(1, 1_000_000)));
        assert_eq!(share("7"), Ok(f(7, 100)));
        assert_eq!(share("2.0"), Ok(f(2, 100)));
        let refusals = [
            (
                "101%",
                "expected a percentage from 0 to 100 with at most 4 decimals, found 101%",
            ),
            ("0.00001%", "at most 4 decimals"),
            ("-1%", "found -1%"),
            (
                "half",
                "expected a percentage such as `1%` or `0.25%`, found the string \"half\"",
            ),
        ];
        for (text, message) in refusals {
            let e = share(text).unwrap_err();
            assert!(
                e.len() == 1
                    && e[0].starts_with("t.yaml:5:26: listeners[0].tracing.sampling: ")
                    && e[0].contains(message),
                "{text}: {e:?}"
            );
        }
    }

    #[test]
    fn mistakes_are_reported_where_they_are() {
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "tracing: { provider: otlp_grpc, collector: { cluster: otel } }\n",
                "",
                "",
                "t.yaml:1:22: tracing.provider: `otlp_grpc` waits for HTTP/2",
            ),
            (
                "tracing: { provider: otlpp, collector: { cluster: otel } }\n",
                "",
                "",
                "t.yaml:1:22: tracing.provider: unknown value \"otlpp\": expected one of `otlp`, `zipkin`, `otlp_grpc`; did you mean `otlp`?",
            ),
            (
                "tracing: { provider: otlp, collector: { cluster: nope } }\n",
                "",
                "",
                "t.yaml:1:50: tracing.collector.cluster: unknown cluster \"nope\"",
            ),
            (
                "tracing: { provider: otlp }\n",
                "",
                "",
                "t.yaml:1:10: tracing: missing required key `collector`",
            ),
            (
                "tracing: { provider: otlp, collector: { cluster: otel }, trace_id_128bit: true }\n",
                "",
                "",
                "t.yaml:1:75: tracing.trace_id_128bit: `trace_id_128bit` applies to the `zipkin` provider only",
            ),
            (
                "tracing: { provider: otlp, collector: { cluster: otel, path: v1 } }\n",
                "",
                "",
                "t.yaml:1:62: tracing.collector.path: \"v1\" must start with `/`",
            ),
            (
                "tracing: { provider: otlp, collector: { cluster: otel, headers: { \"bad name\": x } } }\n",
                "",
                "",
                "tracing.collector.headers.bad name: \"bad name\" is not a header name",
            ),
            (
                "tracing: { provider: otlp, collector: { cluster: otel }, batch: 0, queue: 5000 }\n",
                "",
                "",
                "tracing.batch: expected a number of spans from 1 to 65536, found 0",
            ),
            (
                "tracing: { provider: otlp, collector: { cluster: otel }, sample: 1 }\n",
                "",
                "",
                "t.yaml:1:58: tracing.sample: unknown key `sample`",
            ),
            (
                "",
                "    tracing: true\n",
                "",
                "t.yaml:4:14: listeners[0].tracing: a listener's `tracing` needs the top-level `tracing`",
            ),
            (
                OTLP,
                "",
                "        tracing: { operation: x }\n",
                "t.yaml:8:18: listeners[0].routes[0].tracing: a route's `tracing` needs its listener's `tracing`",
            ),
            (
                OTLP,
                "    tracing: { propagation: [w3c, w3c] }\n",
                "",
                "listeners[0].tracing.propagation: a format is listed twice",
            ),
            (
                OTLP,
                "    tracing: { propagation: [] }\n",
                "",
                "listeners[0].tracing.propagation: at least one format is required",
            ),
            (
                OTLP,
                "    tracing: { propagation: [jaeger] }\n",
                "",
                "listeners[0].tracing.propagation[0]: unknown value \"jaeger\"",
            ),
            (
                OTLP,
                "    tracing: { custom_tags: { a: x }, tag_headers: { a: x-a } }\n",
                "",
                "listeners[0].tracing.tag_headers.a: tag \"a\" is given twice",
            ),
            (
                OTLP,
                "    tracing: { sampling: 1%, sampled: 2% }\n",
                "",
                "listeners[0].tracing.sampled: unknown key `sampled`; did you mean `sampling`?",
            ),
            (
                OTLP,
                "    tracing: yes\n",
                "",
                "listeners[0].tracing: expected `true`, `false` or a mapping",
            ),
            (
                OTLP,
                "    tracing: true\n",
                "        tracing: { operation: \"\" }\n",
                "listeners[0].routes[0].tracing.operation: \"\": an operation name is printable text",
            ),
        ];
        for (top, listener, route, expected) in cases {
            let e = parse(top, listener, route).unwrap_err();
            assert!(
                e.iter().any(|x| x.contains(expected))
                    && e.iter().all(|x| x.starts_with("t.yaml:")),
                "{expected}: {e:?}"
            );
        }
    }

    #[test]
    fn the_reference_config_traces() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/reference.yaml");
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.tracers.len(), 1);
        assert!(config.listeners.iter().any(|l| l.tracing.is_some()));
    }
}
