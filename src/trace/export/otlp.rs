//! OTLP/HTTP protobuf: an `ExportTraceServiceRequest` of the batches' spans.
//!
//! Design: the messages are prost derive structs that mirror opentelemetry-proto
//! (`opentelemetry/proto/collector/trace/v1/trace_service.proto`, `trace/v1/trace.proto`,
//! `resource/v1/resource.proto`, `common/v1/common.proto`) field for field, with the same
//! numbers and wire types, for the fields ringway sends; a field left out is simply
//! never written, which protobuf readers take as its default. No `.proto` files and no
//! code generation at build time. Attribute names follow the OpenTelemetry HTTP
//! semantic conventions, plus Envoy's tag names where the conventions have none
//! (`upstream_cluster`, `upstream_address`, `response_flags`, `guid:x-request-id`).
//! Encoding runs on the exporter thread and may allocate.

use prost::Message;

use super::{flags_text, is_error, SpanView};
use crate::config::observability::{SpanKind, Tracer};
use crate::trace::span::SpanBatch;

/// `ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "2")]
    pub dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Span {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "3")]
    pub trace_state: String,
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    pub name: String,
    /// `Span.SpanKind`: 2 SERVER, 3 CLIENT.
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
    /// W3C trace flags in bits 0-7 (01: sampled).
    #[prost(fixed32, tag = "16")]
    pub flags: u32,
}

/// `Span.SpanKind` values.
pub const SPAN_KIND_SERVER: i32 = 2;
pub const SPAN_KIND_CLIENT: i32 = 3;
/// `Status.StatusCode` ERROR.
pub const STATUS_CODE_ERROR: i32 = 2;

#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(int32, tag = "3")]
    pub code: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3")]
    pub value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(string, tag = "1")]
    StringValue(String),
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    #[prost(int64, tag = "3")]
    IntValue(i64),
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.to_owned())),
        }),
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
    }
}

fn boolean(key: &str, value: bool) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::BoolValue(value)),
        }),
    }
}

/// The request for `batches` (all of one tracer), as a message.
pub fn request(tracer: &Tracer, batches: &[&SpanBatch]) -> ExportTraceServiceRequest {
    let spans = batches
        .iter()
        .flat_map(|batch| {
            batch
                .spans
                .iter()
                .map(move |record| SpanView { batch, record })
        })
        .map(|view| span(&view))
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string("service.name", &tracer.service_name)],
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "ringway".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The body of the export request: the protobuf encoding of [`request`].
pub fn encode(tracer: &Tracer, batches: &[&SpanBatch]) -> Vec<u8> {
    request(tracer, batches).encode_to_vec()
}

fn span(view: &SpanView<'_>) -> Span {
    let r = view.record;
    let text = |t| view.batch.text(t);
    let mut attributes = Vec::with_capacity(24);
    let mut add_text = |key: &str, value: &str| {
        if !value.is_empty() {
            attributes.push(string(key, value));
        }
    };
    add_text("http.request.method", text(r.method));
    add_text("url.path", text(r.path));
    add_text("url.query", text(r.query));
    add_text("url.scheme", text(r.scheme));
    add_text("http.route", text(r.route));
    add_text("server.address", text(r.authority));
    add_text("client.address", text(r.peer));
    add_text("network.peer.address", text(r.peer));
    add_text("user_agent.original", text(r.user_agent));
    add_text("upstream_cluster", text(r.cluster));
    add_text("upstream_address", text(r.upstream));
    add_text("enduser.id", text(r.consumer));
    add_text("guid:x-request-id", text(r.request_id));
    for (tag, value) in view.tags() {
        add_text(tag, value);
    }
    if r.status != 0 {
        attributes.push(int("http.response.status_code", i64::from(r.status)));
    }
    if r.peer_port != 0 {
        attributes.push(int("network.peer.port", i64::from(r.peer_port)));
    }
    attributes.push(string("response_flags", &flags_text(r.flags)));
    attributes.push(int("http.request.body.size", saturate(r.bytes_received)));
    attributes.push(int("http.response.body.size", saturate(r.bytes_sent)));
    if r.kind == SpanKind::Client && r.attempt > 1 {
        attributes.push(int("http.request.resend_count", i64::from(r.attempt - 1)));
    }
    let error = is_error(view);
    if error {
        attributes.push(boolean("error", true));
    }
    Span {
        trace_id: r.trace_id.to_be_bytes().to_vec(),
        span_id: r.span_id.to_be_bytes().to_vec(),
        trace_state: text(r.trace_state).to_owned(),
        parent_span_id: if r.parent_id == 0 {
            Vec::new()
        } else {
            r.parent_id.to_be_bytes().to_vec()
        },
        name: text(r.name).to_owned(),
        kind: match r.kind {
            SpanKind::Server => SPAN_KIND_SERVER,
            SpanKind::Client => SPAN_KIND_CLIENT,
        },
        start_time_unix_nano: r.start_ns,
        end_time_unix_nano: r.end_ns.max(r.start_ns),
        attributes,
        status: error.then(|| Status {
            message: text(r.error).to_owned(),
            code: STATUS_CODE_ERROR,
        }),
        flags: 0x01,
    }
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::export::tests::{sample_batch, tracer};

    fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    #[test]
    fn spans_round_trip_through_the_protobuf_encoding() {
        let batch = sample_batch();
        let tracer = tracer(crate::config::observability::TraceProvider::Otlp);
        let body = encode(&tracer, &[&batch]);
        let decoded = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        assert_eq!(decoded, request(&tracer, &[&batch]));
        let rs = &decoded.resource_spans[0];
        assert_eq!(
            rs.resource.as_ref().unwrap().attributes[0],
            string("service.name", "edge")
        );
        let spans = &rs.scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        let server = &spans[0];
        assert_eq!(
            server.trace_id,
            0x4bf92f3577b34da6a3ce929d0e0e4736u128.to_be_bytes()
        );
        assert_eq!(server.span_id, 0x00f067aa0ba902b7u64.to_be_bytes());
        assert!(server.parent_span_id.is_empty());
        assert_eq!(server.kind, SPAN_KIND_SERVER);
        assert_eq!(server.name, "GET /orders");
        assert_eq!(
            (server.start_time_unix_nano, server.end_time_unix_nano),
            (1_700_000_000_000_000_000, 1_700_000_000_002_500_000)
        );
        assert_eq!(
            attribute(server, "http.request.method"),
            Some(&Value::StringValue("GET".into()))
        );
        assert_eq!(
            attribute(server, "http.response.status_code"),
            Some(&Value::IntValue(200))
        );
        assert_eq!(
            attribute(server, "response_flags"),
            Some(&Value::StringValue("-".into()))
        );
        assert_eq!(
            attribute(server, "env"),
            Some(&Value::StringValue("prod".into()))
        );
        assert!(attribute(server, "url.query").is_none(), "empty: left out");
        assert!(server.status.is_none());
        let client = &spans[1];
        assert_eq!(client.kind, SPAN_KIND_CLIENT);
        assert_eq!(client.parent_span_id, 0x00f067aa0ba902b7u64.to_be_bytes());
        assert_eq!(
            attribute(client, "http.request.resend_count"),
            Some(&Value::IntValue(1))
        );
        assert_eq!(attribute(client, "error"), Some(&Value::BoolValue(true)));
        assert_eq!(
            attribute(client, "response_flags"),
            Some(&Value::StringValue("UF,URX".into()))
        );
        let status = client.status.as_ref().unwrap();
        assert_eq!(
            (status.code, status.message.as_str()),
            (STATUS_CODE_ERROR, "connect failure")
        );
    }
}
