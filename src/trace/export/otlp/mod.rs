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
//! A worker writes each of its sampled requests' spans in wire form once, into its
//! batch ([`write_span`]); the exporter thread only writes the export request's front
//! matter (and the spans of any records a batch carries) and sends the batches' bytes
//! behind it as they are ([`encode_into`], [`body_parts`]). Encoding a span costs about
//! as much wherever it runs; writing it where its text already is saves recording it,
//! copying its text into the batch and reading it back (docs/performance.md), and
//! sending the batches in parts saves copying them into one body (a copy counts as one
//! instruction a byte). What a connection's requests share (route, cluster, authority,
//! peer) is encoded once per connection ([`constant_attributes`]) and put into each
//! span as one piece (`SpanRecord::encoded`). Building the derive structs instead cost
//! about ten thousand instructions and two dozen allocations per span (every key and
//! value an owned `String`), more than the proxy spends on the request. Each span is
//! written once, in place, behind a two-byte length filled in after it; the enclosing
//! messages' keys and lengths go into room left in front of the records' spans, so
//! nothing is copied. The writes go through a position that never panics ([`wire`]): a
//! span that does not fit is written again once the buffer has grown. A worker's span
//! is first written into a fixed 2 KiB window whose positions are masked, so that no
//! write of a known length needs a bounds check (`wire::Fixed`), and again with checks
//! (`wire::Out`) only when it ends past 1 KiB. Attributes whose lengths all fit in a
//! byte (nearly all) are written as fixed arrays around the name and the value, names
//! unrolled as literals, values short enough copied as a fixed-size window (found with
//! one lookup, `Text::short`); the text is checked once (as ASCII, else as UTF-8), not
//! once per piece.
//! The structs stay as the reference: the tests decode what [`encode`] wrote with them
//! and compare it with [`request`]'s message.

use prost::Message;

mod wire;

use super::{flags_text, is_otel_error, server_of, SpanView};
use crate::config::observability::{SpanKind, Tracer};
use crate::trace::span::{write_growing, SpanBatch};
use wire::{key, len_of, Fixed, Out, Wire, FAST_ROOM, I32, I64, LEN, VARINT};

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
    let spans = SpanView::all(batches).map(|view| span(&view)).collect();
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
/// written directly (into a buffer of its own: [`encode_into`] and [`body_parts`]).
pub fn encode(tracer: &Tracer, batches: &[&SpanBatch]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let range = encode_into(tracer, batches, &mut bytes);
    body_parts(&bytes, range, batches).concat()
}

/// Writes the body's front matter and the spans of `batches`' records into `buf`, the
/// exporter's buffer, kept from export to export, and returns where in it they are;
/// the batches' spans in wire form follow them in the body as they are
/// ([`body_parts`]), counted in the front matter's lengths, never copied. `buf`'s
/// length only grows (new room is zeroed once, when it grows): what an earlier export
/// left there is written over, never cleared. (Zeroing fresh room for every export
/// counted as one instruction a byte, more than the encoding itself.)
pub fn encode_into(
    tracer: &Tracer,
    batches: &[&SpanBatch],
    buf: &mut Vec<u8>,
) -> std::ops::Range<usize> {
    let records: usize = batches.iter().map(|b| b.spans.len()).sum();
    let wire: usize = batches.iter().map(|b| b.wire().len()).sum();
    let (resource, scope, front) = front_matter(tracer);
    // About a kilobyte a record: enough for most.
    let room = front + records * SPAN_ROOM;
    if buf.len() < room {
        buf.resize(room, 0);
    }
    let mut at = front;
    let mut flags = Vec::with_capacity(32);
    for batch in batches.iter().filter(|b| !b.spans.is_empty()) {
        let utf8 = batch.arena().is_utf8();
        for record in &batch.spans {
            let view = SpanView::of(batch, record);
            at = write_growing(buf, at, |room, at| {
                span_bytes(room, at, &view, utf8, &mut flags)
            });
        }
    }
    let spans = at - front + wire;
    // ScopeSpans { scope (1), spans (2)… }
    let scope_spans = 1 + len_of(scope.len()) + spans;
    // ResourceSpans { resource (1), scope_spans (2) }
    let resource_spans = 1 + len_of(resource.len()) + 1 + len_of(scope_spans);
    // ExportTraceServiceRequest { resource_spans (1) }
    let head = small(|o| {
        o.varint(key(1, LEN));
        o.varint(resource_spans);
        o.field_bytes(1, &resource);
        o.varint(key(2, LEN));
        o.varint(scope_spans);
        o.field_bytes(1, &scope);
    });
    let start = front - head.len();
    buf[start..front].copy_from_slice(&head);
    start..at
}

/// The body [`encode_into`] began in `buf[range]`, in the parts it is sent in: that,
/// then each batch's spans in wire form (a worker wrote them once; the body points at
/// them rather than copying them: a copy counted as one instruction a byte).
pub fn body_parts<'a>(
    buf: &'a [u8],
    range: std::ops::Range<usize>,
    batches: &[&'a SpanBatch],
) -> Vec<&'a [u8]> {
    let mut parts = Vec::with_capacity(1 + batches.len());
    parts.push(&buf[range]);
    parts.extend(batches.iter().map(|b| b.wire()).filter(|w| !w.is_empty()));
    parts
}

/// [`span_into`] as the text asks: pieces taken as they are when it is all UTF-8
/// (nearly always), each checked when not.
#[inline]
fn span_bytes(
    buf: &mut [u8],
    at: usize,
    view: &SpanView<'_>,
    utf8: bool,
    flags: &mut Vec<u8>,
) -> usize {
    if !utf8 {
        return span_into::<false, _>(Out { buf, at }, view, flags);
    }
    // Nearly every span: written with no bounds checks into a fixed window.
    if let Some(window) = buf
        .get_mut(at..)
        .and_then(|b| b.first_chunk_mut::<FAST_ROOM>())
    {
        let end = span_into::<true, _>(Fixed { buf: window, at: 0 }, view, flags);
        if Fixed::fits(end) {
            return at + end;
        }
    }
    span_into::<true, _>(Out { buf, at }, view, flags)
}

/// A worker's span, written in wire form into its batch (an OTLP tracer's): the
/// exporter puts it into the request as it is. `flags` is scratch for the response
/// flags' text.
pub fn write_span(batch: &mut SpanBatch, view: &SpanView<'_>, utf8: bool, flags: &mut Vec<u8>) {
    batch.write_wire(FAST_ROOM, |room, at| {
        span_bytes(room, at, view, utf8, flags)
    });
}

/// The resource and the scope of `tracer`'s exports, and the room left in front of the
/// spans: the enclosing messages' keys and lengths go there once the spans' length is
/// known (room for the longest varints is left first), so the spans are written once
/// and never copied.
fn front_matter(tracer: &Tracer) -> (Vec<u8>, Vec<u8>, usize) {
    // Resource { attributes (1): service.name }
    let service = tracer.service_name.as_bytes();
    let resource = small(|o| o.string_attribute(1, "service.name", service));
    let scope = small(|o| {
        o.field_bytes(1, b"ringway");
        o.field_bytes(2, env!("CARGO_PKG_VERSION").as_bytes());
    });
    // key + length (at most 10 bytes) + the resource, key + length + the scope.
    let front = (1 + 10) + (1 + len_of(resource.len())) + (1 + 10) + (1 + len_of(scope.len()));
    (resource, scope, front)
}

/// A small message written through an [`Out`] into a vector of its own (the export's
/// front matter, a few per export).
fn small(write: impl Fn(&mut Out<'_>)) -> Vec<u8> {
    let mut buf = Vec::new();
    let end = write_growing(&mut buf, 0, |room, at| {
        let mut out = Out { buf: room, at };
        write(&mut out);
        out.at
    });
    buf.truncate(end);
    buf
}

/// The `response_flags` attribute of a response with none: Envoy's `-`, as
/// `string_attribute` writes it (`KeyValue { key, value: AnyValue { string_value } }`).
const NO_RESPONSE_FLAGS: [u8; 23] = {
    const NAME: &[u8; 14] = b"response_flags";
    let mut kv = [0u8; 23];
    kv[0] = (9 << 3) | LEN;
    kv[1] = 21;
    kv[2] = 0x0a;
    kv[3] = NAME.len() as u8;
    let mut i = 0;
    while i < NAME.len() {
        kv[4 + i] = NAME[i];
        i += 1;
    }
    kv[18] = 0x12;
    kv[19] = 3;
    kv[20] = 0x0a;
    kv[21] = 1;
    kv[22] = b'-';
    kv
};

/// Room left per span before the first one is written.
const SPAN_ROOM: usize = 1024;

/// Writes one `Span` message at `out`'s position as a `ScopeSpans.spans` field (2): the
/// fields [`span`] builds, in field order, empty strings left out as protobuf does.
/// Returns the position after it, past the end when it did not fit. The span is
/// written in place behind a two-byte length (the common size, 128 bytes to 16 KiB),
/// moved only in the rare case its length takes another size. `UTF8`: the batch's
/// arena is UTF-8 (nearly always), so pieces are taken as they are.
fn span_into<const UTF8: bool, W: Wire>(
    mut out: W,
    view: &SpanView<'_>,
    flags: &mut Vec<u8>,
) -> usize {
    // By value, and only the position returned, so that the position stays in a
    // register (behind a reference, or in a returned writer, any byte stored may alias
    // it: it was reloaded after every write).
    let r = view.record;
    // A piece that is not UTF-8 (only possible when the arena is not) is left out.
    let text = |t| {
        if UTF8 {
            view.text.bytes(t)
        } else {
            view.text.text(t).as_bytes()
        }
    };
    // The field's key, the two-byte length placeholder, trace_id (1) and span_id (2):
    // one fixed block, one bounds check.
    let mut front = [0u8; 31];
    front[0] = key(2, LEN) as u8;
    front[3..5].copy_from_slice(&[0x0a, 16]);
    front[5..21].copy_from_slice(&r.trace_id.to_be_bytes());
    front[21..23].copy_from_slice(&[0x12, 8]);
    front[23..].copy_from_slice(&r.span_id.to_be_bytes());
    let len_at = out.at() + 1;
    out.put(&front);
    out.field_str(3, text(r.trace_state));
    if r.parent_id != 0 {
        let mut parent = [0x22, 8, 0, 0, 0, 0, 0, 0, 0, 0];
        parent[2..].copy_from_slice(&r.parent_id.to_be_bytes());
        out.put(&parent);
    }
    match view.text.short(r.name).filter(|_| UTF8) {
        Some((window, len)) => out.short_field(5, window, len),
        None => out.field_str(5, text(r.name)),
    }
    let kind = match r.kind {
        SpanKind::Server => SPAN_KIND_SERVER,
        SpanKind::Client => SPAN_KIND_CLIENT,
    };
    // kind (6) a varint, start (7) and end (8) fixed64: one block.
    let mut times = [0u8; 20];
    times[..3].copy_from_slice(&[(6 << 3) | VARINT, kind as u8, (7 << 3) | I64]);
    times[3..11].copy_from_slice(&r.start_ns.to_le_bytes());
    times[11] = (8 << 3) | I64;
    times[12..].copy_from_slice(&r.end_ns.max(r.start_ns).to_le_bytes());
    out.put(&times);
    // What the connection's requests share, encoded once.
    out.put(view.text.bytes(r.encoded));
    // Unrolled, each with its name as a literal: the name's copy is then a few
    // moves, not a call.
    macro_rules! strings {
        ($($name:literal => $value:expr),* $(,)?) => {$(
            let piece = $value;
            match view.text.short(piece).filter(|_| UTF8) {
                // Most values: one lookup, one bounds check, fixed-size moves.
                Some((window, len)) => out.short_attribute($name, window, len),
                None => {
                    let value = text(piece);
                    if !value.is_empty() {
                        out.string_attribute(9, $name, value);
                    }
                }
            }
        )*};
    }
    strings! {
        "http.request.method" => r.method,
    }
    // A server span's path and query; an attempt's target goes into its `url.full`.
    if !r.upstream_attempt {
        strings! {
            "url.path" => r.path,
            "url.query" => r.query,
        }
    }
    let (server, port) = server_of(r, text);
    strings! {
        "server.address" => server,
    }
    if let Some(port) = port {
        out.int_attribute("server.port", i64::from(port));
    }
    match r.scheme {
        Some(scheme) if !r.upstream_attempt => {
            out.string_attribute(9, "url.scheme", scheme.as_bytes());
        }
        // An attempt's URL: its scheme, its endpoint, the target as forwarded (when
        // the endpoint has a port, not a Unix socket's path, and the target was
        // readable: only a batch that is not UTF-8 has pieces that read as empty).
        Some(scheme) if port.is_some() && (UTF8 || !text(r.path).is_empty()) => {
            // As an eight-byte block and its length (a fixed-size move).
            let (block, len): (&[u8; 8], usize) = if scheme == "https" {
                (b"https://", 8)
            } else {
                (b"http://\0", 7)
            };
            let windows = (view.text.short(r.origin), view.text.short(r.path));
            match windows {
                (Some(host), Some(target)) if UTF8 => out.url_attribute((block, len), host, target),
                _ => {
                    let origin = &block[..len];
                    out.string_attribute_parts("url.full", &[origin, text(r.origin), text(r.path)])
                }
            }
        }
        _ => {}
    }
    strings! {
        "http.route" => r.route,
        "client.address" => r.peer,
        "network.peer.address" => r.peer,
        "user_agent.original" => r.user_agent,
        "upstream_cluster" => r.cluster,
        "upstream_address" => r.upstream,
        "enduser.id" => r.consumer,
        "guid:x-request-id" => r.request_id,
    }
    for (tag, value) in view.custom_tags() {
        if !value.is_empty() {
            out.string_attribute(9, tag, value.as_bytes());
        }
    }
    if r.status != 0 {
        out.int_attribute("http.response.status_code", i64::from(r.status));
    }
    if r.peer_port != 0 {
        out.int_attribute("network.peer.port", i64::from(r.peer_port));
    }
    if r.flags == 0 {
        // Envoy's text for none: one block of known length.
        out.put(&NO_RESPONSE_FLAGS);
    } else {
        flags.clear();
        crate::access_log::ResponseFlags::from_bits(r.flags).append_to(flags);
        out.string_attribute(9, "response_flags", flags);
    }
    if !r.upstream_attempt {
        out.int_attribute("http.request.body.size", saturate(r.bytes_received));
        out.int_attribute("http.response.body.size", saturate(r.bytes_sent));
    }
    if r.kind == SpanKind::Client && r.attempt > 1 {
        out.int_attribute("http.request.resend_count", i64::from(r.attempt - 1));
    }
    if is_otel_error(view) {
        // AnyValue { bool_value (2): true }
        out.varint_attribute("error", 2, 1);
        let message = text(r.error);
        // `error.type`: the failure's kind, else the status code.
        if message.is_empty() {
            let mut digits = [0; 5];
            out.string_attribute(9, "error.type", status_digits(r.status, &mut digits));
        } else {
            out.string_attribute(9, "error.type", message);
        }
        // Status { message (2), code (3) }
        let status = if message.is_empty() {
            0
        } else {
            len_of(message.len()) + 1
        } + 2;
        out.varint(key(15, LEN));
        out.varint(status);
        out.field_str(2, message);
        out.put(&[(3 << 3) | VARINT, STATUS_CODE_ERROR as u8]);
    }
    // flags (16): fixed32 0x01 (sampled).
    out.varint(key(16, I32));
    out.put(&0x01u32.to_le_bytes());
    out.close_length(len_at);
    out.at()
}

fn span(view: &SpanView<'_>) -> Span {
    let r = view.record;
    let text = |t| view.text.text(t);
    let mut attributes = Vec::with_capacity(24);
    let mut add_text = |key: &str, value: &str| {
        if !value.is_empty() {
            attributes.push(string(key, value));
        }
    };
    add_text("http.request.method", text(r.method));
    if !r.upstream_attempt {
        add_text("url.path", text(r.path));
        add_text("url.query", text(r.query));
    }
    let (server, port) = server_of(r, |t| text(t).as_bytes());
    add_text("server.address", text(server));
    if let Some(port) = port {
        attributes.push(int("server.port", i64::from(port)));
    }
    let mut add_text = |key: &str, value: &str| {
        if !value.is_empty() {
            attributes.push(string(key, value));
        }
    };
    match r.scheme {
        Some(scheme) if !r.upstream_attempt => add_text("url.scheme", scheme),
        Some(scheme) if port.is_some() => {
            let url = format!("{scheme}://{}{}", text(r.origin), text(r.path));
            add_text("url.full", &url);
        }
        _ => {}
    }
    add_text("http.route", text(r.route));
    add_text("client.address", text(r.peer));
    add_text("network.peer.address", text(r.peer));
    add_text("user_agent.original", text(r.user_agent));
    add_text("upstream_cluster", text(r.cluster));
    add_text("upstream_address", text(r.upstream));
    add_text("enduser.id", text(r.consumer));
    add_text("guid:x-request-id", text(r.request_id));
    for (tag, value) in view.custom_tags() {
        add_text(tag, value);
    }
    if r.status != 0 {
        attributes.push(int("http.response.status_code", i64::from(r.status)));
    }
    if r.peer_port != 0 {
        attributes.push(int("network.peer.port", i64::from(r.peer_port)));
    }
    attributes.push(string("response_flags", &flags_text(r.flags)));
    if !r.upstream_attempt {
        attributes.push(int("http.request.body.size", saturate(r.bytes_received)));
        attributes.push(int("http.response.body.size", saturate(r.bytes_sent)));
    }
    if r.kind == SpanKind::Client && r.attempt > 1 {
        attributes.push(int("http.request.resend_count", i64::from(r.attempt - 1)));
    }
    let error = is_otel_error(view);
    if error {
        attributes.push(boolean("error", true));
        let kind = match text(r.error) {
            "" => r.status.to_string(),
            kind => kind.to_owned(),
        };
        attributes.push(string("error.type", &kind));
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

/// A status code's digits (`0` for none), for `error.type`, written into `out`.
fn status_digits(status: u16, out: &mut [u8; 5]) -> &[u8] {
    let (mut n, mut at) = (status, out.len());
    loop {
        at -= 1;
        out[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &out[at..];
        }
    }
}

/// What a connection's sampled requests share, for [`constant_attributes`].
#[derive(Debug, Clone, Copy)]
pub struct Constants<'a> {
    pub route: &'a str,
    pub cluster: &'a str,
    /// The request's authority (`server.address`, `server.port`), as received.
    pub authority: &'a [u8],
    /// The client connection is TLS (the port when the authority names none).
    pub https: bool,
    /// The client's address and port, when the client is the connection's peer.
    pub peer: Option<(&'a [u8], u16)>,
}

/// Where [`constant_attributes`] put each part, from the start of what it wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConstantsLayout {
    /// The `upstream_cluster` attribute (an attempt's span carries it alone).
    pub cluster: (u32, u32),
    /// All of it (the request's span).
    pub len: u32,
}

/// Appends to `out` the span attributes (field 9) of [`Constants`], as [`span_into`]
/// would write them from a record's fields: `http.route`, `upstream_cluster`,
/// `url.scheme`, `server.address` and `server.port`, `client.address`,
/// `network.peer.address` and `network.peer.port`; left out when empty, the
/// authority's when it is not UTF-8. A worker encodes them once per connection (and
/// again when one of them changes) and its spans carry them as
/// `SpanRecord::encoded`, their own fields empty (the request's span's `scheme`
/// `None`).
pub fn constant_attributes(out: &mut Vec<u8>, c: &Constants<'_>) -> ConstantsLayout {
    let start = out.len();
    let mut cluster = (0, 0);
    // Written twice (the first time, nothing fits): the first pass measures it.
    let end = write_growing(out, start, |room, at| {
        let mut o = Out { buf: room, at };
        if !c.route.is_empty() {
            o.string_attribute(9, "http.route", c.route.as_bytes());
        }
        let route_end = o.at;
        if !c.cluster.is_empty() {
            o.string_attribute(9, "upstream_cluster", c.cluster.as_bytes());
        }
        cluster = ((route_end - start) as u32, (o.at - route_end) as u32);
        // The request's span's (an attempt's scheme is its URL's).
        o.string_attribute(9, "url.scheme", if c.https { b"https" } else { b"http" });
        if std::str::from_utf8(c.authority).is_ok() {
            // As `server_of` reads a request's authority.
            let (host, port) = super::host_port(c.authority);
            if !host.is_empty() {
                o.string_attribute(9, "server.address", host);
            }
            let default = if c.https { 443 } else { 80 };
            let port = port
                .filter(|&p| p != 0)
                .or_else(|| (!host.is_empty()).then_some(default));
            if let Some(port) = port {
                o.int_attribute("server.port", i64::from(port));
            }
        }
        if let Some((address, port)) = c.peer {
            if !address.is_empty() {
                o.string_attribute(9, "client.address", address);
                o.string_attribute(9, "network.peer.address", address);
            }
            if port != 0 {
                o.int_attribute("network.peer.port", i64::from(port));
            }
        }
        o.at
    });
    out.truncate(end);
    ConstantsLayout {
        cluster,
        len: (end - start) as u32,
    }
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::export::tests::{sample_batch, tracer};
    use crate::trace::span::{TextRef, WINDOW};

    fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    /// Spans that need more than the room left for them are written again into a
    /// grown buffer; a buffer kept from a bigger export is written over, not cleared.
    #[test]
    fn spans_bigger_than_their_room_are_written_again() {
        let mut batch = SpanBatch::with_capacity(0, 64, 1 << 20);
        crate::trace::export::tests::sample(&mut batch);
        let tracer = tracer(crate::config::observability::TraceProvider::Otlp);
        let agent = "b".repeat(SPAN_ROOM * 3);
        for i in 0..batch.spans.len() {
            batch.spans[i].user_agent = batch.push_text(&agent);
        }
        let mut buf = Vec::new();
        let range = encode_into(&tracer, &[&batch], &mut buf);
        let decoded = ExportTraceServiceRequest::decode(&buf[range]).unwrap();
        assert_eq!(decoded, request(&tracer, &[&batch]));
        // The same buffer, now longer than needed and full of the last body's bytes.
        let small = sample_batch();
        let range = encode_into(&tracer, &[&small], &mut buf);
        assert!(range.end < buf.len());
        let decoded = ExportTraceServiceRequest::decode(&buf[range]).unwrap();
        assert_eq!(decoded, request(&tracer, &[&small]));
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
    fn urls_around_the_one_byte_length_limit_round_trip() {
        use crate::trace::span::SpanRecord;
        let tracer = tracer(crate::config::observability::TraceProvider::Otlp);
        // `url.full` (8 bytes of name) with values of 91 to 150 bytes: its lengths go
        // from one byte to two across the fast path's limit (name and value 120);
        // shorter ones, with text after them, are written from their windows.
        for len in (0..WINDOW).chain(70..130) {
            let mut batch = SpanBatch::with_capacity(0, 1, 4096);
            let path = format!("/{}", "a".repeat(len));
            let record = SpanRecord {
                trace_id: 7,
                span_id: 9,
                kind: SpanKind::Client,
                upstream_attempt: true,
                scheme: Some("http"),
                authority: batch.push_text("10.0.0.1"),
                server_port: 8080,
                origin: batch.push_text("10.0.0.1:8080"),
                upstream: batch.push_text("10.0.0.1:8080"),
                path: batch.push_text(&path),
                ..SpanRecord::default()
            };
            batch.push_text(&"z".repeat(WINDOW));
            batch.spans.push(record);
            let body = encode(&tracer, &[&batch]);
            let decoded = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
            assert_eq!(decoded, request(&tracer, &[&batch]), "{len}");
            let span = &decoded.resource_spans[0].scope_spans[0].spans[0];
            let Some(Value::StringValue(url)) = attribute(span, "url.full") else {
                panic!("{len}: no url.full");
            };
            assert_eq!(*url, format!("http://10.0.0.1:8080{path}"));
        }
    }

    /// OpenTelemetry's status rule: a 4xx fails a client span, not a server span; a
    /// failed span says why in `error.type` (the failure's kind, else the status).
    #[test]
    fn a_4xx_fails_a_client_span_only() {
        let tracer = tracer(crate::config::observability::TraceProvider::Otlp);
        let mut batch = sample_batch();
        for span in &mut batch.spans {
            span.status = 404;
            span.error = crate::trace::span::TextRef::EMPTY;
        }
        let body = encode(&tracer, &[&batch]);
        let decoded = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        assert_eq!(decoded, request(&tracer, &[&batch]));
        let spans = &decoded.resource_spans[0].scope_spans[0].spans;
        let (server, client) = (&spans[0], &spans[1]);
        assert_eq!(server.kind, SPAN_KIND_SERVER);
        assert!(server.status.is_none(), "a server's 4xx is unset");
        assert!(attribute(server, "error.type").is_none());
        assert_eq!(client.kind, SPAN_KIND_CLIENT);
        assert_eq!(
            client.status.as_ref().map(|s| s.code),
            Some(STATUS_CODE_ERROR)
        );
        assert_eq!(
            attribute(client, "error.type"),
            Some(&Value::StringValue("404".into()))
        );
        let mut digits = [0; 5];
        for (status, text) in [(0, "0"), (7, "7"), (404, "404"), (65535, "65535")] {
            assert_eq!(status_digits(status, &mut digits), text.as_bytes());
        }
    }

    /// A span's attributes, sorted: the same set whatever order they were written in.
    fn attribute_set(span: &Span) -> Vec<(String, Option<AnyValue>)> {
        let mut set: Vec<_> = span
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        set.sort_by(|a, b| a.0.cmp(&b.0));
        set
    }

    /// The spans of `batches`, as a collector decodes them.
    fn decoded(tracer: &Tracer, batches: &[&SpanBatch]) -> Vec<Span> {
        let body = encode(tracer, batches);
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        request.resource_spans[0].scope_spans[0].spans.clone()
    }

    /// A connection's constants encoded once and carried as `encoded` give a span the
    /// attributes its fields would have: for the request's span and for an attempt's
    /// (which carries only the cluster's part), with the client's address among them
    /// or not, on a TLS connection or not, and with an authority that names a port or
    /// does not.
    #[test]
    fn constants_encoded_once_are_the_attributes_the_fields_give() {
        let tracer = tracer(crate::config::observability::TraceProvider::Otlp);
        for (authority, https, with_peer) in [
            ("shop.example", true, true),
            ("shop.example:8443", false, true),
            ("[2001:db8::1]:80", false, false),
            ("", true, true),
        ] {
            let mut plain = sample_batch();
            let mut encoded = sample_batch();
            let a = plain.push_text(authority);
            let scheme = Some(if https { "https" } else { "http" });
            for r in &mut plain.spans {
                if r.upstream_attempt {
                    // A worker's attempt spans carry no route.
                    r.route = TextRef::EMPTY;
                } else {
                    r.authority = a;
                    r.scheme = scheme;
                }
            }
            // The constants, encoded into the arena as a worker encodes them into the
            // request's text.
            let mut bytes = Vec::new();
            let layout = constant_attributes(
                &mut bytes,
                &Constants {
                    route: "orders",
                    cluster: "shop",
                    authority: authority.as_bytes(),
                    https,
                    peer: with_peer.then_some((&b"10.0.0.7"[..], 51000)),
                },
            );
            assert_eq!(layout.len as usize, bytes.len());
            let base = encoded.push_block(&bytes).unwrap();
            for r in &mut encoded.spans {
                r.route = TextRef::EMPTY;
                r.cluster = TextRef::EMPTY;
                if r.upstream_attempt {
                    r.encoded = TextRef::in_block(base, layout.cluster);
                } else {
                    r.scheme = None;
                    r.authority = TextRef::EMPTY;
                    r.encoded = TextRef::in_block(base, (0, layout.len));
                    if with_peer {
                        r.peer = TextRef::EMPTY;
                        r.peer_port = 0;
                    }
                }
            }
            let want = decoded(&tracer, &[&plain]);
            let got = decoded(&tracer, &[&encoded]);
            assert_eq!(want.len(), 2);
            for (want, got) in want.iter().zip(&got) {
                assert_eq!(attribute_set(want), attribute_set(got), "{authority}");
                assert_eq!((&want.name, want.kind), (&got.name, got.kind));
            }
        }
    }

    /// The constant `response_flags` attribute is the one `string_attribute` writes.
    #[test]
    fn no_response_flags_is_the_attribute_written_for_dash() {
        let mut buf = [0u8; 64];
        let mut out = Out {
            buf: &mut buf,
            at: 0,
        };
        out.string_attribute(9, "response_flags", b"-");
        let at = out.at;
        assert_eq!(&buf[..at], &NO_RESPONSE_FLAGS[..]);
    }

    /// A worker's spans written in wire form go into the request as they are, beside a
    /// batch of records; the batch's room grows for a span bigger than it.
    #[test]
    fn spans_written_in_wire_form_are_exported_as_written() {
        let tracer = tracer(crate::config::observability::TraceProvider::Otlp);
        let records = sample_batch();
        let mut wire = SpanBatch::with_capacity(0, 1, 64);
        let mut flags = Vec::new();
        for record in &records.spans {
            write_span(&mut wire, &SpanView::of(&records, record), true, &mut flags);
        }
        // Bigger than the room a batch of one span makes.
        let mut big = sample_batch();
        let agent = "b".repeat(SPAN_ROOM * 3);
        big.spans[0].user_agent = big.push_text(&agent);
        write_span(
            &mut wire,
            &SpanView::of(&big, &big.spans[0]),
            true,
            &mut flags,
        );
        assert_eq!(wire.span_count(), 3);
        assert!(wire.spans.is_empty() && !wire.is_empty());
        // The records' spans first, then the wire form's as written.
        let spans = decoded(&tracer, &[&wire, &records]);
        let want = decoded(&tracer, &[&records, &records, &big]);
        assert_eq!(spans.len(), 5);
        assert!(spans[..] == want[..5], "the same spans in the same order");
        wire.clear();
        assert!(wire.is_empty() && wire.wire().is_empty());
        assert!(decoded(&tracer, &[&wire]).is_empty());
    }

    /// Spans of every size around the fixed window's limit (1 KiB), with values short
    /// and long, ASCII and not, written by a worker (`write_span`: the fixed window
    /// first, the checked writer when a span does not fit it) decode to the message
    /// the reference structs build.
    #[test]
    fn worker_spans_around_the_fixed_window_decode_as_the_reference() {
        use crate::trace::span::SpanRecord;
        let tracer = tracer(crate::config::observability::TraceProvider::Otlp);
        let mut rng = fastrand::Rng::with_seed(23);
        let mut sizes = std::collections::BTreeSet::new();
        for round in 0..400 {
            let mut text = SpanBatch::with_capacity(0, 1, 1 << 16);
            let value = |rng: &mut fastrand::Rng, batch: &mut SpanBatch| {
                let len = match rng.u8(..4) {
                    0 => 0,
                    1 => rng.usize(1..=WINDOW),
                    2 => rng.usize(WINDOW..200),
                    _ => rng.usize(200..700),
                };
                let s: String = (0..len)
                    .map(|_| {
                        if rng.u8(..20) == 0 {
                            'é'
                        } else {
                            rng.alphanumeric()
                        }
                    })
                    .collect();
                batch.push_text(&s)
            };
            let attempt = round % 2 == 1;
            let record = SpanRecord {
                trace_id: rng.u128(..),
                span_id: rng.u64(1..),
                parent_id: rng.u64(..),
                kind: if attempt {
                    SpanKind::Client
                } else {
                    SpanKind::Server
                },
                start_ns: rng.u64(..1 << 62),
                end_ns: rng.u64(..1 << 62),
                name: value(&mut rng, &mut text),
                method: value(&mut rng, &mut text),
                path: value(&mut rng, &mut text),
                query: value(&mut rng, &mut text),
                authority: value(&mut rng, &mut text),
                server_port: if attempt { rng.u16(1..) } else { 0 },
                origin: value(&mut rng, &mut text),
                scheme: Some(if rng.bool() { "https" } else { "http" }),
                route: value(&mut rng, &mut text),
                status: rng.u16(..600),
                peer: value(&mut rng, &mut text),
                peer_port: rng.u16(..),
                user_agent: value(&mut rng, &mut text),
                request_id: value(&mut rng, &mut text),
                cluster: value(&mut rng, &mut text),
                upstream: value(&mut rng, &mut text),
                flags: rng.u32(..4),
                bytes_received: rng.u64(..1 << 40),
                bytes_sent: rng.u64(..1 << 40),
                attempt: rng.u32(1..4),
                error: value(&mut rng, &mut text),
                trace_state: value(&mut rng, &mut text),
                upstream_attempt: attempt,
                ..SpanRecord::default()
            };
            // Room for the last piece's window.
            text.push_text(&"z".repeat(WINDOW));
            text.spans.push(record);
            let view = SpanView::of(&text, &text.spans[0]);
            let mut wire = SpanBatch::with_capacity(0, 1, 64);
            let utf8 = text.arena().is_utf8();
            write_span(&mut wire, &view, utf8, &mut Vec::new());
            sizes.insert(wire.wire().len() / 256);
            assert_eq!(
                decoded(&tracer, &[&wire]),
                decoded(&tracer, &[&text]),
                "round {round}"
            );
            let want = request(&tracer, &[&text]).resource_spans[0].scope_spans[0].spans[0].clone();
            assert_eq!(decoded(&tracer, &[&wire])[0], want, "round {round}");
        }
        // Spans below, at and past the fixed window's limit were written.
        assert!(
            sizes.range(..4).count() > 0 && sizes.range(4..).count() > 0,
            "{sizes:?}"
        );
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
        assert!(attribute(client, "http.response.body.size").is_none());
        assert_eq!(
            attribute(server, "http.response.body.size"),
            Some(&Value::IntValue(3400))
        );
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
