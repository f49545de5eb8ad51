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
//! Encoding runs on the exporter thread. [`encode`] writes the wire format directly
//! with prost's encoding primitives (keys, varints) into reused buffers: building the
//! derive structs first cost about ten thousand instructions and two dozen
//! allocations per span (every key and value an owned `String`), more than the proxy
//! spends on the request. The structs stay as the reference: the tests decode what
//! [`encode`] wrote with them and compare it with [`request`]'s message.

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

/// The body of the export request: the protobuf encoding of [`request`]'s message,
/// written directly.
pub fn encode(tracer: &Tracer, batches: &[&SpanBatch]) -> Vec<u8> {
    let count: usize = batches.iter().map(|b| b.spans.len()).sum();
    let mut w = Writer {
        // About a kilobyte per span: one allocation for most requests.
        spans: Vec::with_capacity(count * 1024),
        span: Vec::with_capacity(2048),
        flags: Vec::with_capacity(32),
    };
    for batch in batches {
        for record in &batch.spans {
            w.span(&SpanView { batch, record });
            // ScopeSpans.spans (2)
            field_bytes(2, &w.span, &mut w.spans);
        }
    }
    // Resource { attributes (1): service.name }
    let mut resource = Vec::with_capacity(64);
    string_attribute(1, "service.name", &tracer.service_name, &mut resource);
    // ScopeSpans { scope (1), spans (2)… }: the spans are written last, once, after
    // every enclosing message's key and length (computed, not copied into place).
    let mut scope = Vec::with_capacity(32);
    field_bytes(1, b"ringway", &mut scope);
    field_bytes(2, env!("CARGO_PKG_VERSION").as_bytes(), &mut scope);
    let scope_spans = 1 + len_of(scope.len()) + w.spans.len();
    // ResourceSpans { resource (1), scope_spans (2) }
    let resource_spans = 1 + len_of(resource.len()) + 1 + len_of(scope_spans);
    // ExportTraceServiceRequest { resource_spans (1) }
    let mut out = Vec::with_capacity(1 + len_of(resource_spans));
    encode_key(1, WireType::LengthDelimited, &mut out);
    encode_varint(resource_spans as u64, &mut out);
    field_bytes(1, &resource, &mut out);
    encode_key(2, WireType::LengthDelimited, &mut out);
    encode_varint(scope_spans as u64, &mut out);
    field_bytes(1, &scope, &mut out);
    out.extend_from_slice(&w.spans);
    out
}

/// Buffers reused from span to span.
struct Writer {
    /// The spans written so far, each as a `ScopeSpans.spans` field.
    spans: Vec<u8>,
    /// The current span's message.
    span: Vec<u8>,
    /// Response flags as text.
    flags: Vec<u8>,
}

impl Writer {
    /// Writes one `Span` message into `self.span`: the fields [`span`] builds, in
    /// field order, empty strings left out as protobuf does.
    fn span(&mut self, view: &SpanView<'_>) {
        let r = view.record;
        let text = |t| view.batch.text(t);
        let out = &mut self.span;
        out.clear();
        field_bytes(1, &r.trace_id.to_be_bytes(), out);
        field_bytes(2, &r.span_id.to_be_bytes(), out);
        field_str(3, text(r.trace_state), out);
        if r.parent_id != 0 {
            field_bytes(4, &r.parent_id.to_be_bytes(), out);
        }
        field_str(5, text(r.name), out);
        let kind = match r.kind {
            SpanKind::Server => SPAN_KIND_SERVER,
            SpanKind::Client => SPAN_KIND_CLIENT,
        };
        encode_key(6, WireType::Varint, out);
        encode_varint(kind as u64, out);
        encode_key(7, WireType::SixtyFourBit, out);
        out.extend_from_slice(&r.start_ns.to_le_bytes());
        encode_key(8, WireType::SixtyFourBit, out);
        out.extend_from_slice(&r.end_ns.max(r.start_ns).to_le_bytes());
        let strings = [
            ("http.request.method", r.method),
            ("url.path", r.path),
            ("url.query", r.query),
            ("url.scheme", r.scheme),
            ("http.route", r.route),
            ("server.address", r.authority),
            ("client.address", r.peer),
            ("network.peer.address", r.peer),
            ("user_agent.original", r.user_agent),
            ("upstream_cluster", r.cluster),
            ("upstream_address", r.upstream),
            ("enduser.id", r.consumer),
            ("guid:x-request-id", r.request_id),
        ];
        for (key, value) in strings {
            let value = text(value);
            if !value.is_empty() {
                string_attribute(9, key, value, out);
            }
        }
        for (tag, value) in view.tags() {
            if !value.is_empty() {
                string_attribute(9, tag, value, out);
            }
        }
        if r.status != 0 {
            int_attribute("http.response.status_code", i64::from(r.status), out);
        }
        if r.peer_port != 0 {
            int_attribute("network.peer.port", i64::from(r.peer_port), out);
        }
        self.flags.clear();
        crate::access_log::ResponseFlags::from_bits(r.flags).append_to(&mut self.flags);
        let flags = std::str::from_utf8(&self.flags).unwrap_or("-");
        string_attribute(9, "response_flags", flags, out);
        int_attribute("http.request.body.size", saturate(r.bytes_received), out);
        int_attribute("http.response.body.size", saturate(r.bytes_sent), out);
        if r.kind == SpanKind::Client && r.attempt > 1 {
            int_attribute("http.request.resend_count", i64::from(r.attempt - 1), out);
        }
        let error = is_error(view);
        if error {
            // KeyValue { key, value: AnyValue { bool_value (2): true } }
            let key = "error";
            let any = 2;
            let kv = 1 + len_of(key.len()) + 1 + len_of(any);
            encode_key(9, WireType::LengthDelimited, out);
            encode_varint(kv as u64, out);
            field_str(1, key, out);
            encode_key(2, WireType::LengthDelimited, out);
            encode_varint(any as u64, out);
            encode_key(2, WireType::Varint, out);
            encode_varint(1, out);
            // Status { message (2), code (3) }
            let message = text(r.error);
            let status = if message.is_empty() {
                0
            } else {
                len_of(message.len()) + 1
            } + 2;
            encode_key(15, WireType::LengthDelimited, out);
            encode_varint(status as u64, out);
            field_str(2, message, out);
            encode_key(3, WireType::Varint, out);
            encode_varint(STATUS_CODE_ERROR as u64, out);
        }
        encode_key(16, WireType::ThirtyTwoBit, out);
        out.extend_from_slice(&0x01u32.to_le_bytes());
    }
}

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

/// The bytes of a length-delimited field's length prefix and body of `n` bytes.
fn len_of(n: usize) -> usize {
    encoded_len_varint(n as u64) + n
}

/// A length-delimited field (bytes, string or message) with its tag.
fn field_bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

/// A string field, left out when empty (proto3's default).
fn field_str(tag: u32, value: &str, out: &mut Vec<u8>) {
    if !value.is_empty() {
        field_bytes(tag, value.as_bytes(), out);
    }
}

/// A `KeyValue` with a string value, as field `tag` of the enclosing message.
fn string_attribute(tag: u32, key: &str, value: &str, out: &mut Vec<u8>) {
    // AnyValue { string_value (1) }
    let any = 1 + len_of(value.len());
    let kv = 1 + len_of(key.len()) + 1 + len_of(any);
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(kv as u64, out);
    field_bytes(1, key.as_bytes(), out);
    encode_key(2, WireType::LengthDelimited, out);
    encode_varint(any as u64, out);
    field_bytes(1, value.as_bytes(), out);
}

/// A `KeyValue` with an int value, as a span's attribute (field 9).
fn int_attribute(key: &str, value: i64, out: &mut Vec<u8>) {
    // AnyValue { int_value (3) }: a oneof member is written even when zero.
    let any = 1 + encoded_len_varint(value as u64);
    let kv = 1 + len_of(key.len()) + 1 + len_of(any);
    encode_key(9, WireType::LengthDelimited, out);
    encode_varint(kv as u64, out);
    field_bytes(1, key.as_bytes(), out);
    encode_key(2, WireType::LengthDelimited, out);
    encode_varint(any as u64, out);
    encode_key(3, WireType::Varint, out);
    encode_varint(value as u64, out);
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
        let mut batch = sample_batch();
        let tracer = tracer(crate::config::observability::TraceProvider::Otlp);
        // A zero int attribute is still written (a oneof member), as prost writes it.
        batch.spans[1].bytes_sent = 0;
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
