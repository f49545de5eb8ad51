//! Envoy's tracing onto `config::observability`: the connection manager's `tracing`
//! (its provider, sampling shares, custom tags, `spawn_upstream_span`), the bootstrap's
//! `tracing.http` (the provider of connection managers without their own), the HCM's
//! `request_id_extension` (`UuidRequestIdConfig`), and a route's `decorator` and
//! `tracing`.
//!
//! Providers: `envoy.tracers.zipkin` (`ZipkinConfig`: v2 JSON over HTTP, B3
//! propagation, plus W3C with `USE_B3_WITH_W3C_PROPAGATION`) and
//! `envoy.tracers.opentelemetry` (`OpenTelemetryConfig` with `http_service`: OTLP over
//! HTTP, W3C propagation). Each distinct provider becomes one `Config::tracers` entry
//! ([`intern`]); a listener names its tracer by index.
//!
//! Defaults are Envoy's: shares of 100 % (`random_sampling` and `overall_sampling`
//! rounded to hundredths of a percent, over 10,000, and `client_sampling` a whole
//! percent, its decimals dropped, as Envoy's connection manager reads them); a path tag
//! of 256 bytes; one span per request (`spawn_upstream_span` false); the sampling
//! decision taken from `x-request-id` with the reason packed into it (the UUID
//! extension's defaults); spans flushed every 5 s or every 5 spans (Envoy's
//! `tracing.{zipkin,opentelemetry}.flush_interval_ms` and `min_flush_spans` runtime
//! defaults); a Zipkin report bounded by 5 s (`tracing.zipkin.request_timeout`). The
//! span kind follows the listener's `traffic_direction` (OUTBOUND: client). The Zipkin
//! service name is the local service cluster (`--service-cluster`, else the node's
//! `cluster`, else `envoy`); OpenTelemetry's is its `service_name`, else
//! `unknown_service:envoy`. `verbose` is accepted and has no effect (ringway's spans
//! carry no stream-event logs).
//!
//! Refused by name: OTLP over gRPC (`grpc_service`: it needs HTTP/2), Zipkin
//! `HTTP_PROTO` and `GRPC` endpoints and its default (the removed v1 JSON, which Envoy
//! refuses too), `split_spans_for_request: true` (use `spawn_upstream_span`), custom tags
//! from `metadata` or a formatter `value`, format-string operation names, and every
//! field outside the lists below (`only`).

use super::cursor::Msg;
use super::schema;
use crate::config::error::Diagnostics;
use crate::config::format::Side;
use crate::config::observability::{
    Collector, CustomTag, ListenerTracing, Propagation, Reads, RouteTracing, Sampling, SpanKind,
    TagValue, TraceProvider, Tracer,
};
use crate::config::resilience::Fraction;

/// Envoy's `tracing.{zipkin,opentelemetry}.min_flush_spans` default: a worker hands
/// over its spans once it holds this many.
const ENVOY_BATCH_SPANS: usize = 5;
/// Envoy's `tracing.{zipkin,opentelemetry}.flush_interval_ms` default.
const ENVOY_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// OpenTelemetry's `service_name` default, as Envoy documents it.
const OTEL_SERVICE_NAME: &str = "unknown_service:envoy";
/// The Zipkin service name when the node has no `cluster`.
const ZIPKIN_SERVICE_NAME: &str = "envoy";

/// A decoded provider: its tracer and the context formats its spans propagate.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    pub tracer: Tracer,
    pub propagation: Propagation,
    /// The formats its tracer reads (Zipkin: B3, W3C as a fallback with
    /// `USE_B3_WITH_W3C_PROPAGATION`; OpenTelemetry: W3C alone).
    pub reads: Reads,
}

/// The index of `tracer` in `tracers`, added when no equal one is there.
pub(crate) fn intern(tracers: &mut Vec<Tracer>, tracer: Tracer) -> usize {
    match tracers.iter().position(|t| *t == tracer) {
        Some(i) => i,
        None => {
            tracers.push(tracer);
            tracers.len() - 1
        }
    }
}

/// The bootstrap's `tracing` (`envoy.config.trace.v3.Tracing`): the provider of
/// connection managers whose `tracing` has none.
pub(crate) fn bootstrap(
    t: &Msg<'_, '_>,
    clusters: &[String],
    node_cluster: Option<&str>,
    diag: &mut Diagnostics,
) -> Option<Provider> {
    t.only(diag, &["http"]);
    provider(&t.child("http")?, clusters, node_cluster, diag)
}

/// A `Tracing.Http`: `name` (a label) and `typed_config`, the provider's config.
fn provider(
    http: &Msg<'_, '_>,
    clusters: &[String],
    node_cluster: Option<&str>,
    diag: &mut Diagnostics,
) -> Option<Provider> {
    http.only(diag, &["name", "typed_config"]);
    let Some((type_name, payload)) = http.any("typed_config") else {
        http.error(
            diag,
            "typed_config",
            "a tracing provider needs a `typed_config` (envoy.tracers.zipkin or envoy.tracers.opentelemetry)",
        );
        return None;
    };
    let m = Msg::new(&payload, http.at("typed_config"));
    match type_name.as_str() {
        schema::ZIPKIN => zipkin(&m, clusters, node_cluster, diag),
        schema::OPENTELEMETRY => opentelemetry(&m, clusters, diag),
        other => {
            http.error(
                diag,
                "typed_config",
                format!(
                    "`@type` {other} is not a tracing provider (ringway's: {} and {})",
                    schema::ZIPKIN,
                    schema::OPENTELEMETRY
                ),
            );
            None
        }
    }
}

/// `envoy.config.trace.v3.ZipkinConfig`.
fn zipkin(
    m: &Msg<'_, '_>,
    clusters: &[String],
    node_cluster: Option<&str>,
    diag: &mut Diagnostics,
) -> Option<Provider> {
    m.only(
        diag,
        &[
            "collector_cluster",
            "collector_endpoint",
            "trace_id_128bit",
            "shared_span_context",
            "collector_endpoint_version",
            "collector_hostname",
            "split_spans_for_request",
            "trace_context_option",
            "collector_service",
        ],
    );
    let mut ok = true;
    match m.enum_name("collector_endpoint_version").as_deref() {
        Some("HTTP_JSON") => {}
        Some("HTTP_PROTO") => {
            m.error(
                diag,
                "collector_endpoint_version",
                "HTTP_PROTO is not supported: ringway exports Zipkin v2 JSON (use HTTP_JSON)",
            );
            ok = false;
        }
        Some("GRPC") => {
            m.error(
                diag,
                "collector_endpoint_version",
                "GRPC is not supported (it needs HTTP/2): use HTTP_JSON",
            );
            ok = false;
        }
        _ => {
            m.error(
                diag,
                "collector_endpoint_version",
                "`collector_endpoint_version` is required: its default, Zipkin v1 JSON, is deprecated and unavailable (Envoy refuses it too); use HTTP_JSON",
            );
            ok = false;
        }
    }
    if m.bool("split_spans_for_request") {
        m.error(
            diag,
            "split_spans_for_request",
            "`split_spans_for_request: true` is not supported: set the connection manager's `tracing.spawn_upstream_span: true` instead (what Envoy deprecated it for)",
        );
        ok = false;
    }
    let collector = match m.child("collector_service") {
        // Envoy: the service takes precedence over the legacy fields.
        Some(service) => http_service(&service, clusters, diag),
        None => legacy_collector(m, clusters, diag),
    };
    let w3c_too =
        m.enum_name("trace_context_option").as_deref() == Some("USE_B3_WITH_W3C_PROPAGATION");
    let propagation = Propagation {
        b3: true,
        w3c: w3c_too,
        b3_single: false,
    };
    let reads = Reads {
        ignore_w3c: !w3c_too,
        ignore_b3: false,
        b3_first: true,
    };
    let tracer = Tracer {
        provider: TraceProvider::Zipkin {
            trace_id_128bit: m.bool("trace_id_128bit"),
            shared_span_context: m.wrapped_bool("shared_span_context").unwrap_or(true),
        },
        collector: collector?,
        service_name: node_cluster
            .filter(|c| !c.is_empty())
            .unwrap_or(ZIPKIN_SERVICE_NAME)
            .to_owned(),
        max_spans_per_second: None,
        batch_spans: ENVOY_BATCH_SPANS,
        flush_interval: ENVOY_FLUSH_INTERVAL,
        queue_batches: Tracer::DEFAULT_QUEUE_BATCHES,
    };
    ok.then_some(Provider {
        tracer,
        propagation,
        reads,
    })
}

/// Zipkin's `collector_cluster`, `collector_endpoint` and `collector_hostname`.
fn legacy_collector(
    m: &Msg<'_, '_>,
    clusters: &[String],
    diag: &mut Diagnostics,
) -> Option<Collector> {
    let Some(cluster) = m.str("collector_cluster") else {
        m.error(
            diag,
            "collector_cluster",
            "a Zipkin provider needs `collector_cluster` (with `collector_endpoint`) or `collector_service`",
        );
        return None;
    };
    super::route::known_cluster(m, "collector_cluster", cluster, clusters, diag);
    let Some(endpoint) = m.str("collector_endpoint") else {
        m.error(
            diag,
            "collector_endpoint",
            "`collector_endpoint` is required with `collector_cluster` (Zipkin's is /api/v2/spans)",
        );
        return None;
    };
    if let Err(message) = crate::config::decode_rewrite::check_uri_path(endpoint, false) {
        m.error(diag, "collector_endpoint", message);
        return None;
    }
    let authority = match m.str("collector_hostname") {
        Some(host) => match crate::config::decode_rewrite::check_authority(host) {
            Ok(host) => Some(host),
            Err(message) => {
                m.error(diag, "collector_hostname", message);
                return None;
            }
        },
        None => None,
    };
    Some(Collector {
        cluster: cluster.to_owned(),
        path: endpoint.to_owned(),
        authority,
        headers: Vec::new(),
        timeout: Collector::DEFAULT_TIMEOUT,
    })
}

/// A `core.v3.HttpService`: `http_uri` (`uri`: a full URI, whose host becomes the
/// `Host`, or a path; `cluster`; `timeout`) and `request_headers_to_add`.
fn http_service(s: &Msg<'_, '_>, clusters: &[String], diag: &mut Diagnostics) -> Option<Collector> {
    s.only(diag, &["http_uri", "request_headers_to_add"]);
    let Some(uri) = s.child("http_uri") else {
        s.error(diag, "http_uri", "`http_uri` is required");
        return None;
    };
    uri.only(diag, &["uri", "cluster", "timeout"]);
    let cluster = uri.str("cluster").unwrap_or_default();
    super::route::known_cluster(&uri, "cluster", cluster, clusters, diag);
    let text = uri.str("uri").unwrap_or_default();
    let (host, path) = match text.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        },
        None => ("", text),
    };
    if let Err(message) = crate::config::decode_rewrite::check_uri_path(path, false) {
        uri.error(
            diag,
            "uri",
            format!("{message} (a full URI, http://host/path, or a path)"),
        );
        return None;
    }
    let authority = if host.is_empty() {
        None
    } else {
        match crate::config::decode_rewrite::check_authority(host) {
            Ok(host) => Some(host),
            Err(message) => {
                uri.error(diag, "uri", message);
                return None;
            }
        }
    };
    // A zero timeout (which the schema allows) would fail every export; the default
    // applies instead.
    let timeout = uri
        .duration("timeout")
        .filter(|t| !t.is_zero())
        .unwrap_or(Collector::DEFAULT_TIMEOUT);
    let mut headers = Vec::new();
    for o in s.children("request_headers_to_add") {
        let Some(add) = super::route::header_add(&o, Side::Request, diag) else {
            continue;
        };
        if add.value.contains('%') {
            o.error(
                diag,
                "header",
                "substitution formatters in collector headers are not supported: give the value itself",
            );
            continue;
        }
        headers.push((add.name, add.value));
    }
    Some(Collector {
        cluster: cluster.to_owned(),
        path: path.to_owned(),
        authority,
        headers,
        timeout,
    })
}

/// `envoy.config.trace.v3.OpenTelemetryConfig` with `http_service`.
fn opentelemetry(m: &Msg<'_, '_>, clusters: &[String], diag: &mut Diagnostics) -> Option<Provider> {
    m.only(diag, &["http_service", "grpc_service", "service_name"]);
    if m.has("grpc_service") {
        m.error(
            diag,
            "grpc_service",
            "OTLP over gRPC needs HTTP/2, which ringway's upstreams do not speak yet: use `http_service` (OTLP over HTTP)",
        );
        return None;
    }
    let Some(service) = m.child("http_service") else {
        m.error(
            diag,
            "http_service",
            "an OpenTelemetry provider needs `http_service` (OTLP over HTTP)",
        );
        return None;
    };
    let collector = http_service(&service, clusters, diag)?;
    Some(Provider {
        tracer: Tracer {
            provider: TraceProvider::Otlp,
            collector,
            service_name: m
                .str("service_name")
                .unwrap_or(OTEL_SERVICE_NAME)
                .to_owned(),
            max_spans_per_second: None,
            batch_spans: ENVOY_BATCH_SPANS,
            flush_interval: ENVOY_FLUSH_INTERVAL,
            queue_batches: Tracer::DEFAULT_QUEUE_BATCHES,
        },
        propagation: Propagation {
            w3c: true,
            ..Propagation::default()
        },
        reads: Reads {
            ignore_w3c: false,
            ignore_b3: true,
            b3_first: false,
        },
    })
}

/// The HCM's `request_id_extension`: the UUID extension's `pack_trace_reason` and
/// `use_request_id_for_trace_sampling` (both default true, also without the field).
fn request_id(hcm: &Msg<'_, '_>, diag: &mut Diagnostics) -> (bool, bool) {
    let Some(ext) = hcm.child("request_id_extension") else {
        return (true, true);
    };
    ext.only(diag, &["typed_config"]);
    match ext.any("typed_config") {
        Some((type_name, payload)) if type_name == schema::UUID_REQUEST_ID => {
            let uuid = Msg::new(&payload, ext.at("typed_config"));
            uuid.only(
                diag,
                &["pack_trace_reason", "use_request_id_for_trace_sampling"],
            );
            (
                uuid.wrapped_bool("pack_trace_reason").unwrap_or(true),
                uuid.wrapped_bool("use_request_id_for_trace_sampling")
                    .unwrap_or(true),
            )
        }
        Some((other, _)) => {
            ext.error(
                diag,
                "typed_config",
                format!(
                    "`@type` {other} is not a request ID extension (ringway's: {})",
                    schema::UUID_REQUEST_ID
                ),
            );
            (true, true)
        }
        None => (true, true),
    }
}

/// The connection manager's `tracing`, with `default` (the bootstrap's provider) for a
/// `tracing` without its own: the listener's tracing and its tracer (the caller
/// interns it and sets the index). `None` without `tracing`, or without any provider
/// (Envoy then traces nothing).
pub(crate) fn listener(
    hcm: &Msg<'_, '_>,
    direction: Option<&str>,
    default: Option<&Provider>,
    (clusters, node_cluster): (&[String], Option<&str>),
    diag: &mut Diagnostics,
) -> Option<(ListenerTracing, Tracer)> {
    let (pack_trace_reason, request_id_sampling) = request_id(hcm, diag);
    let t = hcm.child("tracing")?;
    t.only(
        diag,
        &[
            "client_sampling",
            "random_sampling",
            "overall_sampling",
            "verbose",
            "max_path_tag_length",
            "custom_tags",
            "provider",
            "spawn_upstream_span",
        ],
    );
    let provider = match t.child("provider") {
        Some(p) => provider(&p, clusters, node_cluster, diag)?,
        None => match default {
            Some(p) => p.clone(),
            None => {
                tracing::warn!(
                    "{}: no provider here or in the bootstrap's `tracing`: no spans (as in Envoy)",
                    t.loc.path
                );
                return None;
            }
        },
    };
    let sampling = Sampling {
        // Envoy reads the client share as a whole percent (its numerator over 100).
        client: t.child("client_sampling").map_or(Fraction::ALL, |p| {
            let value = p.double("value").clamp(0.0, 100.0);
            Fraction {
                numerator: value.trunc() as u32,
                denominator: 100,
            }
        }),
        random: t
            .child("random_sampling")
            .map_or(Fraction::ALL, |p| percent(&p)),
        overall: t
            .child("overall_sampling")
            .map_or(Fraction::ALL, |p| percent(&p)),
    };
    let custom_tags = custom_tags(&t, diag)?;
    let kind = match direction {
        Some("OUTBOUND") => SpanKind::Client,
        _ => SpanKind::Server,
    };
    let tracing = ListenerTracing {
        tracer: 0,
        sampling,
        propagation: provider.propagation,
        reads: provider.reads,
        request_id_sampling,
        pack_trace_reason,
        upstream_spans: t.wrapped_bool("spawn_upstream_span").unwrap_or(false),
        kind,
        custom_tags,
        max_path_tag_length: t
            .wrapped_uint("max_path_tag_length")
            .map_or(ListenerTracing::DEFAULT_MAX_PATH_TAG_LENGTH, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            }),
    };
    Some((tracing, provider.tracer))
}

/// The tags Envoy's tracer puts on every request's span, ahead of the configured
/// ones: `node_id` and `zone` (the node's; `TracerImpl::startSpan`) and
/// `downstream_cluster` (the `x-envoy-downstream-service-cluster` the request came
/// with, else `-`; `HttpTracerUtility::finalizeDownstreamSpan`). Empty values are not
/// exported.
pub(crate) fn node_tags(tracing: &mut ListenerTracing, (node_id, zone): (&str, &str)) {
    let tags = [
        CustomTag {
            tag: "node_id".to_owned(),
            value: TagValue::Literal(node_id.to_owned()),
        },
        CustomTag {
            tag: "zone".to_owned(),
            value: TagValue::Literal(zone.to_owned()),
        },
        CustomTag {
            tag: "downstream_cluster".to_owned(),
            value: TagValue::RequestHeader {
                name: "x-envoy-downstream-service-cluster".to_owned(),
                default: Some("-".to_owned()),
            },
        },
    ];
    tracing.custom_tags.splice(0..0, tags);
}

/// A `type.v3.Percent` over 10,000, rounded, as Envoy's connection manager reads its
/// random and overall shares.
fn percent(p: &Msg<'_, '_>) -> Fraction {
    let value = p.double("value").clamp(0.0, 100.0);
    Fraction {
        numerator: (value * 100.0).round() as u32,
        denominator: 10_000,
    }
}

/// A `type.v3.FractionalPercent` (a route's shares).
fn fractional(p: &Msg<'_, '_>, diag: &mut Diagnostics) -> Fraction {
    p.only(diag, &["numerator", "denominator"]);
    let denominator = match p.enum_name("denominator").as_deref() {
        Some("TEN_THOUSAND") => 10_000,
        Some("MILLION") => 1_000_000,
        _ => 100,
    };
    Fraction {
        numerator: u32::try_from(p.uint("numerator")).unwrap_or(u32::MAX),
        denominator,
    }
}

/// `custom_tags` (`type.tracing.v3.CustomTag`): `literal`, `environment` (read now; no
/// tag when the variable is unset and there is no default, as in Envoy) and
/// `request_header`. Tag names are unique, as the API requires.
fn custom_tags(m: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Vec<CustomTag>> {
    let mut ok = true;
    let mut tags: Vec<CustomTag> = Vec::new();
    for (i, c) in m.children("custom_tags").iter().enumerate() {
        c.only(diag, &["tag", "literal", "environment", "request_header"]);
        let tag = c.str("tag").unwrap_or_default();
        if tags.iter().any(|t| t.tag == tag) {
            c.error(
                diag,
                "tag",
                format!("custom tag {tag:?} is given twice (custom_tags[{i}])"),
            );
            ok = false;
            continue;
        }
        let value = if let Some(literal) = c.child("literal") {
            literal.only(diag, &["value"]);
            TagValue::Literal(literal.str("value").unwrap_or_default().to_owned())
        } else if let Some(env) = c.child("environment") {
            env.only(diag, &["name", "default_value"]);
            let name = env.str("name").unwrap_or_default();
            match std::env::var(name)
                .ok()
                .or_else(|| env.str("default_value").map(str::to_owned))
            {
                Some(value) => TagValue::Literal(value),
                None => continue,
            }
        } else if let Some(header) = c.child("request_header") {
            header.only(diag, &["name", "default_value"]);
            let name = header.str("name").unwrap_or_default();
            if let Err(message) = crate::config::decode_headers::check_field_name(name) {
                header.error(diag, "name", message);
                ok = false;
                continue;
            }
            TagValue::RequestHeader {
                name: name.to_ascii_lowercase(),
                default: header.str("default_value").map(str::to_owned),
            }
        } else {
            // `metadata` and `value` were refused by `only`; the schema requires one.
            ok = false;
            continue;
        };
        tags.push(CustomTag {
            tag: tag.to_owned(),
            value,
        });
    }
    ok.then_some(tags)
}

/// A route's `decorator` and `tracing`; `None` when it has neither.
pub(crate) fn route(r: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<RouteTracing> {
    let decorator = r.child("decorator");
    let tracing = r.child("tracing");
    if decorator.is_none() && tracing.is_none() {
        return None;
    }
    let mut result = RouteTracing::default();
    if let Some(d) = &decorator {
        d.only(diag, &["operation", "propagate"]);
        result.operation = d.str("operation").map(str::to_owned);
        result.propagate_operation = d.wrapped_bool("propagate").unwrap_or(true);
    }
    if let Some(t) = &tracing {
        t.only(
            diag,
            &[
                "client_sampling",
                "random_sampling",
                "overall_sampling",
                "custom_tags",
                "operation",
            ],
        );
        // Envoy: a route's `tracing` replaces all three shares, 100 % where unset.
        let share = |field: &str, diag: &mut Diagnostics| {
            t.child(field)
                .map_or(Fraction::ALL, |p| fractional(&p, diag))
        };
        result.sampling = Some(Sampling {
            client: share("client_sampling", diag),
            random: share("random_sampling", diag),
            overall: share("overall_sampling", diag),
        });
        result.custom_tags = custom_tags(t, diag).unwrap_or_default();
        if let Some(operation) = t.str("operation") {
            if operation.contains('%') {
                t.error(
                    diag,
                    "operation",
                    "a format-string operation name is not supported: give the name itself (or use `decorator.operation`)",
                );
            } else if result.propagate_operation {
                // The span's name would differ from the propagated decorator's.
                t.error(
                    diag,
                    "operation",
                    "`tracing.operation` together with a propagated `decorator` is not supported: set `decorator.propagate: false`, or keep one of them",
                );
            } else {
                // Envoy: it takes precedence over the decorator.
                result.operation = Some(operation.to_owned());
            }
        }
    }
    Some(result)
}

#[cfg(test)]
mod tests;
