//! Zipkin v2 JSON: a list of spans (`POST /api/v2/spans`, openzipkin/zipkin-api's
//! `zipkin2-api.yaml`).
//!
//! Design: one JSON object per span, built with serde_json. Ids are lower hex (a trace
//! id with a zero high half is written as 16 characters, as B3's 64-bit ids are),
//! times are microseconds (a duration under 1 µs is 1, as Zipkin asks), tags are
//! strings with Envoy's Zipkin tag names (`http.method`, `http.url`,
//! `http.status_code`, `upstream_cluster`, `response_flags`, `guid:x-request-id`,
//! `error`...). The remote endpoint is the client for a server span and the upstream
//! for a client span, when it is an IP address.

use std::net::{IpAddr, SocketAddr};

use serde_json::{json, Map, Value};

use super::{flags_text, is_error, SpanView};
use crate::config::observability::{SpanKind, Tracer};
use crate::trace::span::SpanBatch;

/// The body of the export request: a JSON array of the batches' spans.
pub fn encode(tracer: &Tracer, batches: &[&SpanBatch]) -> Vec<u8> {
    let spans: Vec<Value> = SpanView::all(batches)
        .map(|view| span(tracer, &view))
        .collect();
    serde_json::to_vec(&spans).unwrap_or_else(|_| b"[]".to_vec())
}

fn hex64(id: u64) -> String {
    format!("{id:016x}")
}

fn trace_hex(id: u128) -> String {
    if id >> 64 == 0 {
        format!("{id:016x}")
    } else {
        format!("{id:032x}")
    }
}

fn span(tracer: &Tracer, view: &SpanView<'_>) -> Value {
    let r = view.record;
    let text = |t| view.text.text(t);
    let mut tags = Map::new();
    let mut tag = |key: &str, value: String| {
        if !value.is_empty() {
            tags.insert(key.to_owned(), Value::String(value));
        }
    };
    tag("component", "proxy".to_owned());
    tag("http.method", text(r.method).to_owned());
    let path = text(r.path);
    // An attempt to a Unix socket (an endpoint without a port) has no URL to give.
    let unix = r.upstream_attempt && r.server_port == 0;
    if !path.is_empty() && !unix {
        let scheme = r.scheme.unwrap_or("http");
        let query = text(r.query);
        // An attempt's URL names the endpoint it went to.
        let authority = text(if r.upstream_attempt {
            r.origin
        } else {
            r.authority
        });
        let url = if query.is_empty() {
            format!("{scheme}://{authority}{path}")
        } else {
            format!("{scheme}://{authority}{path}?{query}")
        };
        tag("http.url", url);
    }
    if r.status != 0 {
        tag("http.status_code", r.status.to_string());
    }
    tag("http.route", text(r.route).to_owned());
    tag("user_agent", text(r.user_agent).to_owned());
    tag("peer.address", text(r.peer).to_owned());
    tag("upstream_cluster", text(r.cluster).to_owned());
    // Envoy's second name for it (the cluster's observability name).
    tag("upstream_cluster.name", text(r.cluster).to_owned());
    tag("upstream_address", text(r.upstream).to_owned());
    tag("guid:x-request-id", text(r.request_id).to_owned());
    tag("enduser.id", text(r.consumer).to_owned());
    tag("response_flags", flags_text(r.flags));
    if !r.upstream_attempt {
        tag("request_size", r.bytes_received.to_string());
        tag("response_size", r.bytes_sent.to_string());
    }
    if r.kind == SpanKind::Client && r.attempt > 1 {
        tag("retry.count", (r.attempt - 1).to_string());
    }
    if is_error(view) {
        let why = text(r.error);
        tag(
            "error",
            if why.is_empty() { "true" } else { why }.to_owned(),
        );
    }
    for (key, value) in view.custom_tags() {
        tag(key, value.to_owned());
    }
    let duration_us = (r.end_ns.saturating_sub(r.start_ns) / 1000).max(1);
    let mut span = json!({
        "traceId": trace_hex(r.trace_id),
        "id": hex64(r.span_id),
        "kind": match r.kind { SpanKind::Server => "SERVER", SpanKind::Client => "CLIENT" },
        "name": text(r.name),
        "timestamp": r.start_ns / 1000,
        "duration": duration_us,
        "localEndpoint": { "serviceName": tracer.service_name },
        "tags": tags,
    });
    let object = span.as_object_mut().expect("a JSON object");
    if r.parent_id != 0 {
        object.insert("parentId".into(), Value::String(hex64(r.parent_id)));
    }
    if let Some(remote) = remote_endpoint(view) {
        object.insert("remoteEndpoint".into(), remote);
    }
    if r.debug {
        object.insert("debug".into(), Value::Bool(true));
    }
    if r.shared {
        // The server half of a span its client started (same id): Zipkin joins them.
        object.insert("shared".into(), Value::Bool(true));
    }
    span
}

/// The other side: the client of a server span, the upstream of a client span.
fn remote_endpoint(view: &SpanView<'_>) -> Option<Value> {
    let r = view.record;
    let peer = || {
        let ip: IpAddr = view.text.text(r.peer).parse().ok()?;
        Some((ip, r.peer_port))
    };
    let (ip, port) = match r.kind {
        SpanKind::Client => match view.text.text(r.upstream).parse::<SocketAddr>() {
            Ok(a) => (a.ip(), a.port()),
            Err(_) => peer()?,
        },
        SpanKind::Server => peer()?,
    };
    let mut endpoint = Map::new();
    match ip {
        IpAddr::V4(v4) => endpoint.insert("ipv4".into(), Value::String(v4.to_string())),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // Zipkin prefers the ipv4 field for mapped addresses.
            Some(v4) => endpoint.insert("ipv4".into(), Value::String(v4.to_string())),
            None => endpoint.insert("ipv6".into(), Value::String(v6.to_string())),
        },
    };
    if port != 0 {
        endpoint.insert("port".into(), Value::from(port));
    }
    Some(Value::Object(endpoint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::observability::TraceProvider;
    use crate::trace::export::tests::{sample_batch, tracer};

    #[test]
    fn spans_are_zipkin_v2_json() {
        let batch = sample_batch();
        let tracer = tracer(TraceProvider::Zipkin {
            trace_id_128bit: true,
            shared_span_context: true,
        });
        let body = encode(&tracer, &[&batch]);
        let spans: Value = serde_json::from_slice(&body).unwrap();
        let server = &spans[0];
        assert_eq!(server["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(server["id"], "00f067aa0ba902b7");
        assert!(server.get("parentId").is_none());
        assert_eq!(server["kind"], "SERVER");
        assert_eq!(server["name"], "GET /orders");
        assert_eq!(server["timestamp"], 1_700_000_000_000_000u64);
        assert_eq!(server["duration"], 2500);
        assert_eq!(server["localEndpoint"]["serviceName"], "edge");
        assert_eq!(server["remoteEndpoint"]["ipv4"], "10.0.0.7");
        assert_eq!(server["remoteEndpoint"]["port"], 51000);
        let tags = &server["tags"];
        assert_eq!(tags["http.method"], "GET");
        assert_eq!(tags["http.url"], "https://shop.example/orders");
        assert_eq!(tags["http.status_code"], "200");
        assert_eq!(tags["response_flags"], "-");
        assert_eq!(tags["guid:x-request-id"], "req-1");
        assert_eq!(tags["env"], "prod");
        assert!(tags.get("error").is_none());
        assert_eq!(server["debug"], true);
        let client = &spans[1];
        assert_eq!(client["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(client["parentId"], "00f067aa0ba902b7");
        assert_eq!(client["kind"], "CLIENT");
        assert_eq!(client["duration"], 1, "under 1 µs rounds up");
        assert_eq!(client["remoteEndpoint"]["ipv6"], "2001:db8::1");
        assert_eq!(client["remoteEndpoint"]["port"], 8080);
        assert_eq!(client["tags"]["error"], "connect failure");
        assert_eq!(client["tags"]["response_flags"], "UF,URX");
        assert_eq!(client["tags"]["retry.count"], "1");
        assert!(client["tags"].get("response_size").is_none());
        assert!(client.get("debug").is_none());
    }

    #[test]
    fn sixty_four_bit_trace_ids_are_sixteen_characters() {
        assert_eq!(trace_hex(0xabc), "0000000000000abc");
        assert_eq!(trace_hex(1 << 64), "00000000000000010000000000000000");
    }
}
