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
//! into one buffer: building the derive structs first cost about ten thousand
//! instructions and two dozen allocations per span (every key and value an owned
//! `String`), more than the proxy spends on the request. Each span is written once, in
//! place, behind a two-byte length filled in after it; the enclosing messages' keys and
//! lengths go into room left in front of the spans, so the body is never copied
//! (copies of a few hundred kilobytes per export showed as thousands of instructions per
//! request). Attributes whose lengths all fit in a byte (nearly all) are written as two
//! small fixed arrays around the name and the value, names unrolled as literals; the
//! batch's text is checked as UTF-8 once per batch, not once per piece. The structs stay
//! as the reference: the tests decode what [`encode`] wrote with them and compare it
//! with [`request`]'s message.

use prost::Message;

use super::{flags_text, is_error, Body, SpanView};
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
pub fn encode(tracer: &Tracer, batches: &[&SpanBatch]) -> Body {
    let count: usize = batches.iter().map(|b| b.spans.len()).sum();
    // Resource { attributes (1): service.name }
    let mut resource = Vec::with_capacity(64);
    string_attribute(
        1,
        "service.name",
        tracer.service_name.as_bytes(),
        &mut resource,
    );
    let mut scope = Vec::with_capacity(32);
    field_bytes(1, b"ringway", &mut scope);
    field_bytes(2, env!("CARGO_PKG_VERSION").as_bytes(), &mut scope);
    // The enclosing messages' keys and lengths go in front of the spans, once the
    // spans' length is known: room for them is left first (the longest varints), so
    // the spans are written once and never copied.
    // key + length (at most 10 bytes) + the resource, key + length + the scope.
    let front = (1 + 10) + (1 + len_of(resource.len())) + (1 + 10) + (1 + len_of(scope.len()));
    let mut w = Writer {
        // About a kilobyte per span: one allocation for most requests.
        spans: Vec::with_capacity(front + count * 1024),
        flags: Vec::with_capacity(32),
    };
    w.spans.resize(front, 0);
    for batch in batches {
        let utf8 = batch.is_utf8();
        for record in &batch.spans {
            w.span(&SpanView { batch, record }, utf8);
        }
    }
    let spans = w.spans.len() - front;
    // ScopeSpans { scope (1), spans (2)… }
    let scope_spans = 1 + len_of(scope.len()) + spans;
    // ResourceSpans { resource (1), scope_spans (2) }
    let resource_spans = 1 + len_of(resource.len()) + 1 + len_of(scope_spans);
    // ExportTraceServiceRequest { resource_spans (1) }
    let mut head = Vec::with_capacity(front);
    key(1, LEN, &mut head);
    varint(resource_spans, &mut head);
    field_bytes(1, &resource, &mut head);
    key(2, LEN, &mut head);
    varint(scope_spans, &mut head);
    field_bytes(1, &scope, &mut head);
    let start = front - head.len();
    w.spans[start..front].copy_from_slice(&head);
    Body::new(w.spans, start)
}

/// Buffers reused from span to span.
struct Writer {
    /// The spans written so far, each as a `ScopeSpans.spans` field.
    spans: Vec<u8>,
    /// Response flags as text.
    flags: Vec<u8>,
}

impl Writer {
    /// Writes one `Span` message as a `ScopeSpans.spans` field (2): the fields [`span`]
    /// builds, in field order, empty strings left out as protobuf does. The span is
    /// written in place behind a two-byte length (the common size, 128 bytes to 16
    /// KiB), moved only in the rare case its length takes another size.
    fn span(&mut self, view: &SpanView<'_>, utf8: bool) {
        let r = view.record;
        // A piece that is not UTF-8 (only possible when the arena is not) is left out.
        let text = |t| {
            if utf8 {
                view.batch.bytes(t)
            } else {
                view.batch.text(t).as_bytes()
            }
        };
        let out = &mut self.spans;
        out.reserve(1024);
        key(2, LEN, out);
        let len_at = out.len();
        out.extend_from_slice(&[0, 0]);
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
        key(6, VARINT, out);
        varint(kind as usize, out);
        key(7, I64, out);
        out.extend_from_slice(&r.start_ns.to_le_bytes());
        key(8, I64, out);
        out.extend_from_slice(&r.end_ns.max(r.start_ns).to_le_bytes());
        // Unrolled, each with its name as a literal: the name's copy is then a few
        // moves, not a call.
        macro_rules! strings {
            ($($name:literal => $value:expr),* $(,)?) => {$(
                let value = text($value);
                if !value.is_empty() {
                    string_attribute(9, $name, value, out);
                }
            )*};
        }
        strings! {
            "http.request.method" => r.method,
            "url.path" => r.path,
            "url.query" => r.query,
            "url.scheme" => r.scheme,
            "http.route" => r.route,
            "server.address" => r.authority,
            "client.address" => r.peer,
            "network.peer.address" => r.peer,
            "user_agent.original" => r.user_agent,
            "upstream_cluster" => r.cluster,
            "upstream_address" => r.upstream,
            "enduser.id" => r.consumer,
            "guid:x-request-id" => r.request_id,
        }
        for (tag, value) in view.tags() {
            if !value.is_empty() {
                string_attribute(9, tag, value.as_bytes(), out);
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
        string_attribute(9, "response_flags", &self.flags, out);
        int_attribute("http.request.body.size", saturate(r.bytes_received), out);
        int_attribute("http.response.body.size", saturate(r.bytes_sent), out);
        if r.kind == SpanKind::Client && r.attempt > 1 {
            int_attribute("http.request.resend_count", i64::from(r.attempt - 1), out);
        }
        if is_error(view) {
            // AnyValue { bool_value (2): true }
            varint_attribute("error", 2, 1, out);
            // Status { message (2), code (3) }
            let message = text(r.error);
            let status = if message.is_empty() {
                0
            } else {
                len_of(message.len()) + 1
            } + 2;
            key(15, LEN, out);
            varint(status, out);
            field_str(2, message, out);
            key(3, VARINT, out);
            varint(STATUS_CODE_ERROR as usize, out);
        }
        key(16, I32, out);
        out.extend_from_slice(&0x01u32.to_le_bytes());
        close_length(out, len_at);
    }
}

/// Writes the length of the message after the two-byte placeholder at `len_at` (to the
/// end of `out`), moving the message when its length takes other than two bytes.
fn close_length(out: &mut Vec<u8>, len_at: usize) {
    let body = len_at + 2;
    let n = out.len() - body;
    let mut prefix = [0u8; 10];
    let width = varint_into(n, &mut prefix);
    if width < 2 {
        out.copy_within(body.., len_at + width);
        out.truncate(len_at + width + n);
    } else if width > 2 {
        out.resize(out.len() + width - 2, 0);
        out.copy_within(body..body + n, len_at + width);
    }
    out[len_at..len_at + width].copy_from_slice(&prefix[..width]);
}

/// Wire types, as the low three bits of a field key.
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// A field's key: its number and wire type as a varint.
#[inline]
fn key(tag: u32, wire_type: u8, out: &mut Vec<u8>) {
    varint(((tag as usize) << 3) | usize::from(wire_type), out);
}

/// A base-128 varint, low group first. Inline and on a `Vec` directly: the generic
/// `BufMut` version cost a quarter of the exporter's time.
#[inline]
fn varint(mut v: usize, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// [`varint`] into `out`; returns its width.
fn varint_into(mut v: usize, out: &mut [u8; 10]) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = v as u8 | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// The bytes of a varint.
#[inline]
fn varint_len(v: usize) -> usize {
    // Seven bits a byte: 1 for 0..128, 2 up to 16 Ki, ...
    let bits = usize::BITS - (v | 1).leading_zeros();
    (bits as usize).div_ceil(7)
}

/// The bytes of a length-delimited field's length prefix and body of `n` bytes.
#[inline]
fn len_of(n: usize) -> usize {
    varint_len(n) + n
}

/// A length-delimited field (bytes, string or message) with its tag.
#[inline]
fn field_bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    key(tag, LEN, out);
    varint(value.len(), out);
    out.extend_from_slice(value);
}

/// A string field, left out when empty (proto3's default).
#[inline]
fn field_str(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    if !value.is_empty() {
        field_bytes(tag, value, out);
    }
}

/// A `KeyValue` with a string value, as field `tag` (below 16) of the enclosing
/// message. When every length fits in one byte (nearly always), the fixed bytes go in
/// as two small arrays around the name and the value.
#[inline(always)]
fn string_attribute(tag: u32, name: &str, value: &[u8], out: &mut Vec<u8>) {
    let (n, v) = (name.len(), value.len());
    if tag < 16 && n + v <= 120 {
        // KeyValue { key (1), value (2): AnyValue { string_value (1) } }
        let any = 2 + v;
        let kv = 2 + n + 2 + any;
        out.reserve(2 + kv);
        out.extend_from_slice(&[((tag as u8) << 3) | LEN, kv as u8, 0x0a, n as u8]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&[0x12, any as u8, 0x0a, v as u8]);
        out.extend_from_slice(value);
        return;
    }
    let any = 1 + len_of(v);
    let kv = 1 + len_of(n) + 1 + len_of(any);
    key(tag, LEN, out);
    varint(kv, out);
    field_bytes(1, name.as_bytes(), out);
    key(2, LEN, out);
    varint(any, out);
    field_bytes(1, value, out);
}

/// A `KeyValue` with an int value, as a span's attribute (field 9).
#[inline(always)]
fn int_attribute(name: &str, value: i64, out: &mut Vec<u8>) {
    // AnyValue { int_value (3) }: a oneof member is written even when zero.
    varint_attribute(name, 3, value as u64 as usize, out);
}

/// A `KeyValue` whose `AnyValue` member `field` is a varint (`bool_value` 2,
/// `int_value` 3), as a span's attribute (field 9).
#[inline(always)]
fn varint_attribute(name: &str, field: u8, value: usize, out: &mut Vec<u8>) {
    let n = name.len();
    let any = 1 + varint_len(value);
    let kv = 1 + len_of(n) + 1 + len_of(any);
    if kv < 128 {
        out.reserve(2 + kv);
        out.extend_from_slice(&[(9 << 3) | LEN, kv as u8, 0x0a, n as u8]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&[0x12, any as u8, field << 3]);
        varint(value, out);
        return;
    }
    key(9, LEN, out);
    varint(kv, out);
    field_bytes(1, name.as_bytes(), out);
    key(2, LEN, out);
    varint(any, out);
    key(u32::from(field), VARINT, out);
    varint(value, out);
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
    fn a_length_placeholder_fits_any_length() {
        for n in [0usize, 5, 127, 128, 200, 16_383, 16_384, 20_000, 3_000_000] {
            let mut out = vec![9u8, 0, 0];
            out.extend((0..n).map(|i| i as u8));
            close_length(&mut out, 1);
            let mut want = vec![9u8];
            prost::encoding::encode_varint(n as u64, &mut want);
            want.extend((0..n).map(|i| i as u8));
            assert!(out == want, "{n}");
            assert_eq!(varint_len(n), prost::encoding::encoded_len_varint(n as u64));
        }
    }

    #[test]
    fn a_span_over_16_kib_round_trips() {
        let mut batch = SpanBatch::with_capacity(0, 4, 65_536);
        crate::trace::export::tests::sample(&mut batch);
        let tracer = tracer(crate::config::observability::TraceProvider::Otlp);
        let long = "a".repeat(20_000);
        batch.spans[0].path = batch.push_text(&long);
        let body = encode(&tracer, &[&batch]);
        let decoded = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        assert_eq!(decoded, request(&tracer, &[&batch]));
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
