//! The connection's side of tracing: the request's context, its sampling decision, the
//! lines each upstream attempt carries, and the spans recorded when a sampled request
//! ends (its attempts' with its own).
//!
//! Design: on a listener with `tracing`, the common request (no field that bears on the
//! decision, on a native listener's own share) costs a check of each field name's
//! length, a new trace id and one compare: its id's low 64 bits against a bound
//! (`ListenerTrace::native_bound`), as OpenTelemetry's `TraceIdRatioBased` sampler
//! decides; nothing else is built ([`Begin`] is a handful of borrows). A request with
//! trace fields goes the long way (`Decider`): one pass over the parsed head finds the
//! incoming context (`trace::context::Extractor`) and marks the fields the proxy
//! rewrites removed from the forwarded head, and the decision is arithmetic
//! (`trace::sampling`). A sampled request's attributes are copied apart ([`Note`]),
//! after the decision. An unsampled request keeps a few ids in [`TraceState`] (the
//! context still goes upstream, flagged unsampled) and records nothing; its context
//! lines are appended to the forwarded head, or written straight into it
//! (`context::lines_len`, then `context::write_lines` in place). Span times are
//! instants the request path reads anyway (the request's first byte, the attempt's
//! start and end, the response's end), made Unix time through the worker clock's anchor
//! (`CoarseClock::anchor`, taken once per request so that durations are exact). A
//! sampled one copies the request's text attributes into the connection's [`Pending`]
//! (boxed once per connection, reused), because the read buffer may be reused before
//! the request ends, and notes each upstream attempt there. When the request ends, an
//! OTLP tracer's spans (its attempts' and its own) are written in their wire form
//! straight from that text into the worker's span batch (`trace::sink`,
//! `trace::export::otlp::write_span`): what the connection's requests share (route,
//! cluster, authority, peer) was encoded once per connection (`Pending`'s constants)
//! and goes in as one piece, and the exporter thread only puts the batches behind the
//! export request's front matter. A Zipkin tracer's spans are records sharing one copy
//! of the text in the batch, encoded as JSON by the exporter.

use std::time::Instant;

use super::Connection;
use crate::access_log::ResponseFlags;
use crate::config::observability::{SpanKind, TagValue};
use crate::forwarding::IpText;
use crate::http1::{line_value, Edit};
use crate::snapshot::ListenerTrace;
use crate::stats::names::http as rq;
use crate::trace::context::{self, Extractor, Formats, Outgoing};
use crate::trace::export::{otlp, SpanView};
use crate::trace::sampling::{self, Decide, Reason};
use crate::trace::span::{SpanBatch, SpanRecord, Text, TextRef, WINDOW};

/// The current request's trace context (reset per request).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TraceState {
    /// The listener traces: the context goes upstream.
    pub on: bool,
    /// Spans are recorded.
    pub sampled: bool,
    debug: bool,
    short_id: bool,
    /// The request's span is the server half of its B3 caller's span (Zipkin's shared
    /// span: it kept the incoming span id).
    shared: bool,
    /// The trace id, high and low halves (no `u128` field: it would align the whole
    /// connection to 16 bytes).
    trace_id: [u64; 2],
    /// The request's own span; 0 until drawn, when nothing sends it
    /// (`ListenerTrace::lazy_server_span`; read it with [`TraceState::server_span`]).
    span_id: u64,
    /// Its parent (the incoming span), 0 for a root.
    parent_id: u64,
    /// The current attempt's span (equal to `span_id` when attempts spawn none).
    attempt_span: u64,
    /// Unix nanoseconds: the current attempt's start (sampled requests only).
    attempt_start_ns: u64,
    /// Formats written upstream.
    formats: Formats,
    /// An internal peer forced the trace (`x-envoy-force-trace`): Envoy then returns
    /// the request id in the response.
    pub forced: bool,
    /// The field index + 1 of a caller's `x-envoy-decorator-operation` that names an
    /// Envoy ingress listener's span (0: none).
    operation_at: u16,
}

impl TraceState {
    /// A request's state on a listener that traces: its context continues `incoming`
    /// (new ids where it has none).
    #[inline(always)]
    fn begin(
        t: &ListenerTrace,
        sampled: bool,
        incoming: Option<&context::Incoming>,
        rng: &mut fastrand::Rng,
    ) -> TraceState {
        let (trace_id, short_id) = match incoming {
            Some(c) => (c.trace_id, c.short_id),
            None => (new_trace_id(t, rng), t.short_ids),
        };
        let shared =
            incoming.is_some_and(|c| t.shared_spans && (c.formats.b3() || c.formats.b3_single()));
        let (span_id, parent_id) = match incoming {
            // Zipkin's shared span: the server half of the caller's span keeps its id.
            Some(c) if shared => (c.span_id, c.parent_id),
            Some(c) => (context::new_span_id(rng), c.span_id),
            None => (context::new_span_id(rng), 0),
        };
        TraceState {
            on: true,
            sampled,
            debug: incoming.is_some_and(|c| c.debug),
            shared,
            short_id,
            trace_id: [(trace_id >> 64) as u64, trace_id as u64],
            span_id,
            parent_id,
            attempt_span: span_id,
            attempt_start_ns: 0,
            formats: incoming.map_or(t.formats, |c| t.formats.union(c.formats)),
            forced: false,
            operation_at: 0,
        }
    }

    /// A new root trace decided on the listener's native share (`bound`: the
    /// listener's `native_bound`), when nothing the request carries bears on the
    /// decision and the route keeps the listener's sampling: most requests. `None`:
    /// [`Begin::run`] decides. Nothing else is read or built: the ids are drawn, the
    /// trace id's low 64 bits are the draw (OpenTelemetry's `TraceIdRatioBased`
    /// decides by the id, so no draw of its own), and the state is written whole.
    #[inline(always)]
    pub(super) fn native_root(
        t: &ListenerTrace,
        bound: u128,
        route: Option<&crate::router::Route>,
        (request, head): (&crate::http1::Request, &[u8]),
        rng: &mut fastrand::Rng,
    ) -> Option<TraceState> {
        let route_sampling = route
            .and_then(|r| r.tracing.as_deref())
            .is_some_and(|r| r.sampling.is_some());
        if route_sampling || carries_decision_fields(request, head) {
            return None;
        }
        let id = new_trace_id(t, rng);
        let trace_id = [(id >> 64) as u64, id as u64];
        let sampled = u128::from(trace_id[1]) < bound;
        let span_id = if sampled || !t.lazy_server_span {
            context::new_span_id(rng)
        } else {
            0
        };
        Some(TraceState {
            on: true,
            sampled,
            short_id: t.short_ids,
            trace_id,
            span_id,
            attempt_span: span_id,
            formats: t.formats,
            ..TraceState::default()
        })
    }

    /// The context the current attempt carries upstream: its own span (a child of
    /// the request's) when the listener spawns upstream spans, else the request's.
    #[inline(always)]
    fn outgoing(&self, upstream_spans: bool) -> Outgoing {
        let (span_id, parent_id) = if upstream_spans {
            (self.attempt_span, self.span_id)
        } else {
            (self.span_id, self.parent_id)
        };
        Outgoing {
            trace_id: self.trace_id(),
            short_id: self.short_id,
            span_id,
            parent_id,
            sampled: self.sampled,
            debug: self.debug,
        }
    }

    /// The request's own span id, drawn now if it was left for later (an unsampled
    /// new trace whose span id nothing sent: `ListenerTrace::lazy_server_span`).
    pub(super) fn server_span(&mut self, rng: &mut fastrand::Rng) -> u64 {
        if self.span_id == 0 {
            self.span_id = context::new_span_id(rng);
        }
        self.span_id
    }

    pub fn trace_id(&self) -> u128 {
        (u128::from(self.trace_id[0]) << 64) | u128::from(self.trace_id[1])
    }

    pub fn short_id(&self) -> bool {
        self.short_id
    }

    /// The index of the caller's `x-envoy-decorator-operation` that names the span.
    pub fn operation_at(&self) -> Option<usize> {
        usize::from(self.operation_at).checked_sub(1)
    }
}

/// A sampled request's text attributes, copied when it starts (the read buffer may be
/// reused before it ends), and its upstream attempts, kept until it ends. One per
/// connection, kept across requests.
///
/// The text is one block of bytes as received (pieces are `(start, len)` in it): when
/// the request ends, the block is copied into the span batch once and every span of
/// the request refers into it; nothing is validated or copied piece by piece here.
#[derive(Debug, Default)]
pub(super) struct Pending {
    text: Vec<u8>,
    start_ns: u64,
    /// When the response's last byte went out, as the forwarding read it (its
    /// `downstream_rq_time`); `None`: read when the request ends.
    end: Option<Instant>,
    /// Maps the request's instants onto Unix time: one per request, so that its spans'
    /// durations are the monotonic clock's.
    anchor: Option<crate::clock::UnixAnchor>,
    method: (u32, u32),
    path: (u32, u32),
    query: (u32, u32),
    authority: (u32, u32),
    user_agent: (u32, u32),
    request_id: (u32, u32),
    trace_state: (u32, u32),
    name: (u32, u32),
    route: (u32, u32),
    cluster: (u32, u32),
    /// Envoy's name for an upstream span: `router <cluster> egress`.
    attempt_name: (u32, u32),
    /// The target as forwarded (after the route's rewrite and the filters), cut as
    /// the path is: the attempts' `url.full`. Copied when the first attempt ends.
    forwarded: (u32, u32),
    /// The route, cluster and listener the pieces at the start of `text` (`route`,
    /// `cluster`, `attempt_name`) were copied for, by address, and where they end: the
    /// next request of the connection to the same route and cluster keeps them rather
    /// than copying them again. (Addresses are safe keys: the route, the cluster's name
    /// and the listener live in the snapshot the connection holds for its lifetime.)
    constants_for: Option<ConstantsKey>,
    constants_len: usize,
    /// An OTLP tracer's: the attributes the connection's requests share, in wire form
    /// (`otlp::constant_attributes`), the part of them an attempt's span carries (its
    /// cluster), whether they hold the client's address, and the authority they were
    /// made for (as received: compared with each request's).
    encoded: (u32, u32),
    encoded_cluster: (u32, u32),
    encoded_peer: bool,
    encoded_authority: (u32, u32),
    /// Body bytes read for the request (its span's size is the head and these).
    received: u64,
    /// Custom tags: name and value pieces of `text`.
    tags: Vec<(TextRef, TextRef)>,
    /// The request's upstream attempts (listeners that spawn upstream spans).
    attempts: Vec<Attempt>,
}

/// What a connection's constant span text was copied for: the route, the cluster's
/// name and the listener's tracing, by address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConstantsKey {
    route: usize,
    cluster: (usize, usize),
    listener: usize,
    /// The request's client is the connection's peer (an OTLP tracer's constants then
    /// hold its address).
    client_is_peer: bool,
}

/// One upstream attempt, recorded as a span when its request ends.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    span_id: u64,
    start_ns: u64,
    end_ns: u64,
    /// 0: no response.
    status: u16,
    number: u32,
    /// The endpoint's address; its host (its domain name when it has one) and port
    /// apart; `host:port`, the authority of the attempt's URL.
    upstream: (u32, u32),
    host: (u32, u32),
    origin: (u32, u32),
    port: u16,
    /// The connection to the endpoint is TLS (the attempt's URL is `https`).
    tls: bool,
    error: (u32, u32),
}

impl Pending {
    /// The anchor the request took when it began (every sampled request has one),
    /// else the clock's.
    fn anchor(&self, clock: &crate::clock::CoarseClock) -> crate::clock::UnixAnchor {
        self.anchor.unwrap_or_else(|| clock.anchor())
    }

    fn push(&mut self, s: &[u8]) -> (u32, u32) {
        let start = self.text.len() as u32;
        self.text.extend_from_slice(s);
        (start, s.len() as u32)
    }

    /// The concatenation of `parts`, as one piece.
    fn push_parts(&mut self, parts: &[&[u8]]) -> (u32, u32) {
        let start = self.text.len() as u32;
        for part in parts {
            self.text.extend_from_slice(part);
        }
        (start, self.text.len() as u32 - start)
    }

    /// Forgets the last request, keeping the constant pieces when they were made for
    /// `key` and, for an OTLP tracer, for `authority` (else they are made again:
    /// `constants_for` is `None`).
    fn clear(&mut self, key: ConstantsKey, authority: Option<&[u8]>) {
        self.end = None;
        self.received = 0;
        self.forwarded = (0, 0);
        let same_authority = || {
            let (at, len) = self.encoded_authority;
            authority.is_none_or(|a| self.text.get(at as usize..(at + len) as usize) == Some(a))
        };
        if self.constants_for == Some(key) && same_authority() {
            self.text.truncate(self.constants_len);
        } else {
            self.text.clear();
            self.constants_for = None;
        }
        self.tags.clear();
        self.attempts.clear();
    }
}

/// What the field pass found for a sampled request's span.
struct Fields<'h> {
    trace_state: Option<&'h [u8]>,
    user_agent: Option<&'h [u8]>,
    /// The last `x-request-id` field the proxy keeps.
    request_id_at: Option<usize>,
}

/// The context an upstream attempt carries, as the connection's state and the
/// listener's choice of spans: the ids are read from the state where the attempt's
/// lines are written (`forward::attempt_lines`), not copied out ahead of it.
#[derive(Clone, Copy)]
pub(super) struct AttemptContext<'a> {
    state: &'a TraceState,
    upstream_spans: bool,
}

impl super::forward::OutgoingSource for AttemptContext<'_> {
    #[inline(always)]
    fn outgoing(self) -> Outgoing {
        self.state.outgoing(self.upstream_spans)
    }
}

/// A new trace's id: 64 bits for a Zipkin tracer without `trace_id_128bit`, else 128.
#[inline(always)]
fn new_trace_id(t: &ListenerTrace, rng: &mut fastrand::Rng) -> u128 {
    if t.short_ids {
        context::new_short_trace_id(rng)
    } else {
        context::new_trace_id(rng)
    }
}

/// Whether a field of `request` bears on its sampling decision: none when no field
/// name has the length of one that can (one bit test, most requests), else by each
/// name's length before its bytes.
#[inline(always)]
fn carries_decision_fields(request: &crate::http1::Request, head: &[u8]) -> bool {
    request
        .name_lengths()
        .may_have_any(context::DECISION_NAME_LENGTHS)
        && request.headers.iter().any(|h| {
            context::may_bear_on_decision(h.name.len()) && context::bears_on_decision(h.name(head))
        })
}

/// The parts of a connection that starting a trace reads and writes (borrowed apart
/// from the rest, which the routing step still holds). Small on purpose: the common
/// request reads a few of them and builds nothing else.
pub(super) struct Begin<'a> {
    pub head: &'a [u8],
    pub request: &'a mut crate::http1::Request,
    pub random: &'a mut fastrand::Rng,
    pub trace: &'a mut TraceState,
    pub listener: &'a crate::snapshot::ListenerSnapshot,
    pub peer: &'a crate::peer::Peer,
    /// Lines added to the response (an ingress listener's decorator operation).
    pub reply_lines: &'a mut Vec<u8>,
}

/// What a sampled request's attributes are copied with ([`Note::run`], after
/// [`Begin::run`] said the request is sampled).
pub(super) struct Note<'a> {
    /// The caller's `x-envoy-decorator-operation` naming the span (`Begin` found it).
    pub operation_at: Option<usize>,
    pub head: &'a [u8],
    pub request: &'a crate::http1::Request,
    pub pending: &'a mut Option<Box<Pending>>,
    pub listener: &'a crate::snapshot::ListenerSnapshot,
    pub rq_start: Option<Instant>,
    pub clock: &'a crate::clock::CoarseClock,
    /// The client's address and port when the client is the connection's peer (no
    /// trusted proxy named another), and whether the connection is TLS: what an OTLP
    /// tracer's spans encode once per connection (`otlp::constant_attributes`).
    pub peer: Option<(&'a [u8], u16)>,
    pub https: bool,
}

impl Begin<'_> {
    /// Finds the request's context, decides whether it is sampled and marks the context
    /// fields removed from the forwarded head (when it is forwarded, to `cluster`): run
    /// after the forwarding stage set `x-request-id`, before the route's filters.
    /// Returns whether the request is sampled (its attributes are then copied with
    /// [`Note::run`]).
    pub(super) fn run(
        self,
        (route, cluster): (Option<&crate::router::Route>, Option<&str>),
    ) -> bool {
        let forwarding = cluster.is_some();
        let Some(t) = self.listener.tracing.as_deref() else {
            self.trace.on = false;
            return false;
        };
        let route_tracing = route.and_then(|r| r.tracing.as_deref());
        let fast = t.native_bound.and_then(|bound| {
            TraceState::native_root(t, bound, route, (&*self.request, self.head), self.random)
        });
        *self.trace = match fast {
            Some(state) => state,
            None => {
                let mut decider = Decider {
                    head: self.head,
                    request: &mut *self.request,
                    random: &mut *self.random,
                    listener: self.listener,
                    peer: *self.peer,
                    forced: false,
                };
                let (sampled, incoming, alone) = decider.decide(t, route_tracing, forwarding);
                let forced = decider.forced;
                let mut state = TraceState::begin(t, sampled, incoming.as_ref(), self.random);
                state.forced = forced;
                // A decision that came without ids (`b3: 0`, `x-b3-sampled: d`…): its
                // format is written back too, with its debug flag.
                if let Some((formats, debug)) = alone {
                    state.formats = state.formats.union(formats);
                    state.debug |= debug;
                }
                state
            }
        };
        let sampled = self.trace.sampled;
        if self.listener.proxy.envoy.is_some() {
            let operation = route_tracing
                .filter(|r| r.propagate_operation)
                .and_then(|r| r.operation.as_deref());
            self.decorator_operation(t.config.kind, operation, forwarding);
        }
        sampled
    }

    /// Envoy's `x-envoy-decorator-operation` (its connection manager's `traceRequest`):
    /// an egress listener sends the route's operation upstream in place of any the
    /// request carried; an ingress one takes a non-empty one the request carried as
    /// its span's name (`Note::run`) and does not forward it, else returns the route's
    /// operation to the client in the response (`reply_lines`).
    fn decorator_operation(self, kind: SpanKind, operation: Option<&str>, forwarding: bool) {
        let head = self.head;
        let mut carried = false;
        for (index, h) in self.request.headers.iter().enumerate() {
            // An edge request's was removed already (Envoy's `cleanInternalHeaders`).
            let named = h.name.len() == DECORATOR.len() && h.is(head, DECORATOR_NAME);
            if !named || self.request.overlay.is_removed(index) {
                continue;
            }
            if kind == SpanKind::Server && !h.value(head).is_empty() {
                carried = true;
                self.trace.operation_at = u16::try_from(index + 1).unwrap_or(0);
            }
            if kind == SpanKind::Server || operation.is_some() {
                self.request.overlay.remove(index);
            }
        }
        match (kind, operation) {
            (SpanKind::Client, Some(op)) if forwarding => {
                let _ = self.request.overlay.add(DECORATOR, op.as_bytes());
            }
            (SpanKind::Server, Some(op)) if !carried => {
                let lines = &mut *self.reply_lines;
                lines.extend_from_slice(DECORATOR);
                lines.extend_from_slice(b": ");
                lines.extend_from_slice(op.as_bytes());
                lines.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
    }
}

/// The `x-request-id` a request goes upstream with: a fresh or repacked one is the
/// overlay's, else the last received one the proxy keeps (as it may have replaced it).
pub(super) fn forwarded_request_id<'h>(
    request: &'h crate::http1::Request,
    head: &'h [u8],
) -> Option<&'h [u8]> {
    let overlay = &request.overlay;
    if let Some(id) = overlay.added_value(b"x-request-id") {
        return Some(id);
    }
    let (index, h) = request.headers.iter().enumerate().rev().find(|(i, h)| {
        h.name.len() == 12 && h.is(head, "x-request-id") && !overlay.is_removed(*i)
    })?;
    match overlay.edit(index) {
        Some(Edit::Replace(line)) => Some(line_value(overlay.line(line))),
        Some(Edit::Remove) => None,
        None => Some(h.value(head)),
    }
}

/// Adds `x-request-id: <the forwarded id>` to the response's lines (Envoy's
/// `setInResponse`), when the request has one.
pub(super) fn request_id_line(request: &crate::http1::Request, head: &[u8], lines: &mut Vec<u8>) {
    if let Some(id) = forwarded_request_id(request, head) {
        lines.extend_from_slice(b"x-request-id: ");
        lines.extend_from_slice(id);
        lines.extend_from_slice(b"\r\n");
    }
}

/// Envoy's header naming a span's operation.
const DECORATOR: &[u8] = b"x-envoy-decorator-operation";
const DECORATOR_NAME: &str = "x-envoy-decorator-operation";

/// What the decision for a request with trace fields reads and writes (borrowed from
/// [`Begin`] on that path alone, so that the common request never builds it).
struct Decider<'a> {
    head: &'a [u8],
    request: &'a mut crate::http1::Request,
    random: &'a mut fastrand::Rng,
    listener: &'a crate::snapshot::ListenerSnapshot,
    peer: crate::peer::Peer,
    /// Set by [`Decider::decide`]: a trusted peer's `x-envoy-force-trace` came.
    forced: bool,
}

impl Decider<'_> {
    /// The decision for a request that carries trace fields, or on a listener or route
    /// whose share is not a plain bound (Envoy's request-id decision, a route's own
    /// sampling): extracts the incoming context and marks its fields removed from the
    /// forwarded head. Out of line: the common request never comes here.
    #[inline(never)]
    fn decide(
        &mut self,
        t: &ListenerTrace,
        route_tracing: Option<&crate::config::observability::RouteTracing>,
        forwarding: bool,
    ) -> (bool, Option<context::Incoming>, Option<(Formats, bool)>) {
        let head = self.head;
        let mut extractor = Extractor::reading(t.config.reads);
        let (mut client_trace_id, mut force_trace, mut request_id_at) = (false, false, None);
        for (index, h) in self.request.headers.iter().enumerate() {
            let (name, value) = (h.name(head), h.value(head));
            if extractor.observe(name, value) {
                if forwarding {
                    self.request.overlay.remove(index);
                }
            } else if name.eq_ignore_ascii_case(context::CLIENT_TRACE_ID) {
                client_trace_id = !value.is_empty();
            } else if name.eq_ignore_ascii_case(context::FORCE_TRACE) {
                force_trace = true;
            } else if name.len() == 12
                && name.eq_ignore_ascii_case(b"x-request-id")
                && !self.request.overlay.is_removed(index)
            {
                request_id_at = Some(index);
            }
        }
        // Only a trusted peer (an internal one for Envoy listeners) forces a trace.
        if force_trace {
            force_trace = self.trusted_peer(head);
            self.forced = force_trace;
        }
        let extracted = extractor.finish();
        let incoming = extracted.context;
        let alone = extracted
            .sampled_only
            .map(|_| (extracted.formats, extracted.debug));
        let parent = incoming
            .map(|c| if c.debug { Some(true) } else { c.sampled })
            .unwrap_or(extracted.sampled_only);
        let sampling = route_tracing
            .and_then(|r| r.sampling.as_ref())
            .unwrap_or(&t.config.sampling);
        let decision = if t.config.request_id_sampling {
            let inputs = (sampling, parent, client_trace_id, force_trace);
            self.envoy_decision(t, inputs, request_id_at, forwarding)
        } else {
            sampling::decide(&Decide {
                sampling,
                parent,
                client_trace_id,
                force_trace,
                request_id: None,
                draw: self.random.u64(..),
            })
        };
        (decision.sampled, incoming, alone)
    }
}

/// The fields a sampled request's span reads from its head: the last `tracestate`,
/// the last `user-agent` and the last `x-request-id` the proxy keeps (a second pass
/// over the head, for sampled requests alone).
fn head_fields<'h>(request: &crate::http1::Request, head: &'h [u8]) -> Fields<'h> {
    let mut fields = Fields {
        trace_state: None,
        user_agent: None,
        request_id_at: None,
    };
    for (index, h) in request.headers.iter().enumerate() {
        let name = h.name(head);
        match name.len() {
            10 if name.eq_ignore_ascii_case(b"tracestate") => {
                fields.trace_state = Some(h.value(head));
            }
            10 if name.eq_ignore_ascii_case(b"user-agent") => {
                fields.user_agent = Some(h.value(head));
            }
            12 if name.eq_ignore_ascii_case(b"x-request-id")
                && !request.overlay.is_removed(index) =>
            {
                fields.request_id_at = Some(index);
            }
            _ => {}
        }
    }
    fields
}

impl Decider<'_> {
    /// Envoy's decision, from the request id as it goes upstream (a fresh one is the
    /// overlay's last `x-request-id` line, a kept one the received field), counted in
    /// the listener's `tracing.*` stats; the decision travels in the forwarded id
    /// (Envoy's UUID extension packs the reason into it).
    fn envoy_decision(
        &mut self,
        t: &ListenerTrace,
        (sampling, parent, client_trace_id, force_trace): (
            &crate::config::observability::Sampling,
            Option<bool>,
            bool,
            bool,
        ),
        request_id_at: Option<usize>,
        forwarding: bool,
    ) -> sampling::Decision {
        let head = self.head;
        let mut id = [0u8; 64];
        let mut id_len = 0;
        let value = match self.request.overlay.added_value(b"x-request-id") {
            Some(v) => Some(v),
            None => request_id_at.map(|i| self.request.headers[i].value(head)),
        };
        if let Some(v) = value.filter(|v| v.len() <= id.len()) {
            id[..v.len()].copy_from_slice(v);
            id_len = v.len();
        }
        // No usable id: the empty id, which Envoy does not trace.
        let decision = sampling::decide(&Decide {
            sampling,
            parent,
            client_trace_id,
            force_trace,
            request_id: Some(&id[..id_len]),
            draw: self.random.u64(..),
        });
        let stat = match decision.reason {
            Reason::Sampling => rq::TRACING_RANDOM_SAMPLING,
            Reason::ServiceForced => rq::TRACING_SERVICE_FORCED,
            Reason::ClientForced => rq::TRACING_CLIENT_ENABLED,
            Reason::NotTraceable => rq::TRACING_NOT_TRACEABLE,
        };
        self.listener.http_stats.get(stat).inc();
        if t.config.pack_trace_reason && id_len > 0 && forwarding {
            let before = sampling::packed_reason(&id[..id_len]);
            if before != decision.reason {
                sampling::pack_reason(&mut id[..id_len], decision.reason);
                let packed = &id[..id_len];
                if !self
                    .request
                    .overlay
                    .set_added_value(b"x-request-id", packed)
                {
                    if let Some(index) = request_id_at {
                        let _ = self.request.overlay.replace(index, b"x-request-id", packed);
                    }
                }
            }
        }
        decision
    }
}

impl Decider<'_> {
    /// Whether the peer may force a trace (`x-envoy-force-trace`): internal for Envoy
    /// listeners, a trusted proxy for native ones.
    fn trusted_peer(&self, head: &[u8]) -> bool {
        let proxy = &self.listener.proxy;
        match &proxy.envoy {
            Some(envoy) => crate::forwarding_envoy::internal(
                self.request,
                head,
                self.peer,
                proxy.trusted_proxies.hops,
                envoy,
            ),
            None => crate::forwarding::peer_trusted(&proxy.trusted_proxies, self.peer),
        }
    }
}

impl Note<'_> {
    /// Copies a sampled request's attributes (out of line: unsampled requests never
    /// come here).
    #[inline(never)]
    pub(super) fn run(self, (route, cluster): (Option<&crate::router::Route>, Option<&str>)) {
        let Some(t) = self.listener.tracing.as_deref() else {
            return;
        };
        let head = self.head;
        let fields = head_fields(self.request, head);
        let p = self.pending.get_or_insert_with(Default::default);
        let route_name = route.and_then(|r| r.name.as_deref()).unwrap_or("");
        let cluster = cluster.unwrap_or("").as_bytes();
        let key = ConstantsKey {
            route: route.map_or(0, |r| std::ptr::from_ref(r) as usize),
            cluster: (cluster.as_ptr() as usize, cluster.len()),
            listener: std::ptr::from_ref(t) as usize,
            client_is_peer: self.peer.is_some(),
        };
        let authority = self.request.host.map_or(&b""[..], |h| h.get(head));
        // An OTLP tracer's constants hold the authority too: made again when it is not
        // the one they were made for.
        let otlp = !t.zipkin;
        p.clear(key, otlp.then_some(authority));
        if p.constants_for.is_none() {
            p.route = p.push(route_name.as_bytes());
            p.cluster = p.push(cluster);
            // Envoy's router names an upstream span after its cluster.
            p.attempt_name = if t.config.upstream_spans && !cluster.is_empty() {
                p.push_parts(&[b"router ", cluster, b" egress"])
            } else {
                (0, 0)
            };
            if otlp {
                p.encoded_authority = p.push(authority);
                let at = p.text.len() as u32;
                let constants = otlp::Constants {
                    route: route_name,
                    cluster: std::str::from_utf8(cluster).unwrap_or_default(),
                    authority,
                    https: self.https,
                    peer: self.peer,
                };
                let layout = otlp::constant_attributes(&mut p.text, &constants);
                p.encoded = (at, layout.len);
                p.encoded_cluster = (at + layout.cluster.0, layout.cluster.1);
                p.encoded_peer = self.peer.is_some();
            }
            p.constants_for = Some(key);
            p.constants_len = p.text.len();
        }
        // The request's first byte, in Unix time, from the instant already read.
        let anchor = self.clock.anchor();
        p.anchor = Some(anchor);
        p.start_ns = anchor.unix_ns(self.rq_start.unwrap_or_else(Instant::now));
        let (method_span, target_span) = (self.request.method_span, self.request.path);
        let (method, target) = (method_span.get(head), target_span.get(head));
        // The method and the target are one run of the request line: copied as one
        // piece when they are (always, from the codec), else one piece each.
        let line_at = (method_span.end <= target_span.start)
            .then(|| head.get(method_span.start as usize..target_span.end as usize))
            .flatten();
        let (method_at, target_at) = match line_at {
            Some(line) => {
                let (at, _) = p.push(line);
                (at, at + (target_span.start - method_span.start))
            }
            None => (p.push(method).0, p.push(target).0),
        };
        p.method = (method_at, method.len() as u32);
        let (path, query) = match target.iter().position(|&b| b == b'?') {
            Some(q) => (&target[..q], &target[q + 1..]),
            None => (target, &b""[..]),
        };
        p.path = (
            target_at,
            cut_at_char(path, t.config.max_path_tag_length) as u32,
        );
        p.query = match query.len() {
            0 => (0, 0),
            n => (target_at + (path.len() + 1) as u32, n as u32),
        };
        // An OTLP tracer's spans have it among the constants.
        p.authority = if otlp { (0, 0) } else { p.push(authority) };
        p.user_agent = fields.user_agent.map_or((0, 0), |v| p.push(v));
        // The request id as forwarded: a fresh or repacked one is the overlay's; a kept
        // one whose trace reason was packed is replaced.
        let overlay = &self.request.overlay;
        p.request_id = match overlay.added_value(b"x-request-id") {
            Some(id) => p.push(id),
            None => match fields.request_id_at.map(|i| (i, overlay.edit(i))) {
                Some((_, Some(Edit::Replace(line)))) => p.push(line_value(overlay.line(line))),
                Some((i, None)) => p.push(self.request.headers[i].value(head)),
                Some((_, Some(Edit::Remove))) | None => (0, 0),
            },
        };
        p.trace_state = fields.trace_state.map_or((0, 0), |s| p.push(s));
        let operation = route
            .and_then(|r| r.tracing.as_deref())
            .and_then(|r| r.operation.as_deref());
        // `<method> <path>` is the request line's start when one space parts them.
        let spaced = line_at.is_some()
            && target_span.start == method_span.end + 1
            && head.get(method_span.end as usize) == Some(&b' ');
        let envoy = self.listener.proxy.envoy.is_some();
        // An ingress Envoy listener names the span as the caller asked
        // (`x-envoy-decorator-operation`, not forwarded), over the route's decorator.
        let carried = self
            .operation_at
            .and_then(|i| self.request.headers.get(i))
            .map(|h| h.value(head));
        p.name = match (carried, operation) {
            (Some(op), _) => p.push(op),
            (None, Some(op)) => p.push(op.as_bytes()),
            // Envoy's tracers' default names: Zipkin's the host; OpenTelemetry's the
            // direction (`ingress`, or `egress <host>`).
            (None, None) if envoy && t.zipkin => p.push(authority),
            (None, None) if envoy && t.config.kind == SpanKind::Client => {
                p.push_parts(&[b"egress ", authority])
            }
            (None, None) if envoy => p.push(b"ingress"),
            (None, None) if route_name.is_empty() && spaced => {
                (method_at, method.len() as u32 + 1 + path.len() as u32)
            }
            (None, None) if route_name.is_empty() => p.push_parts(&[method, b" ", path]),
            (None, None) => p.push_parts(&[method, b" ", route_name.as_bytes()]),
        };
        let route_tags = route
            .and_then(|r| r.tracing.as_deref())
            .map_or(&[][..], |r| &r.custom_tags[..]);
        for tag in t.config.custom_tags.iter().chain(route_tags) {
            let value = match &tag.value {
                TagValue::Literal(v) => Some(v.as_bytes()),
                // As forwarded: a field the proxy removed (an edge request's
                // `x-envoy-*`) is not read.
                TagValue::RequestHeader { name, default } => self
                    .request
                    .headers
                    .iter()
                    .enumerate()
                    .find(|(i, h)| h.is(head, name) && !self.request.overlay.is_removed(*i))
                    .map(|(_, h)| h.value(head))
                    .or(default.as_deref().map(str::as_bytes)),
            };
            if let Some(value) = value {
                let name = p.push(tag.tag.as_bytes());
                let value = p.push(value);
                p.tags
                    .push((TextRef::in_block(0, name), TextRef::in_block(0, value)));
            }
        }
    }
}

impl Connection<'_> {
    /// An upstream's answer on an egress Envoy listener: its
    /// `x-envoy-decorator-operation` names the request's span and is not passed on to
    /// the client (Envoy's connection manager, `encodeHeaders`).
    #[inline]
    pub(super) fn trace_response_head(&mut self, head: &[u8]) {
        if self.trace.on && self.listener.proxy.envoy.is_some() {
            self.envoy_response_operation(head);
        }
    }

    #[inline(never)]
    fn envoy_response_operation(&mut self, head: &[u8]) {
        let egress = self
            .listener
            .tracing
            .as_deref()
            .is_some_and(|t| t.config.kind == SpanKind::Client);
        if !egress {
            return;
        }
        for (index, h) in self.response.headers.iter().enumerate() {
            if h.name.len() == DECORATOR.len() && h.is(head, DECORATOR_NAME) {
                self.response.overlay.remove(index);
                let value = h.value(head);
                if let Some(p) = self.pending.as_deref_mut().filter(|_| self.trace.sampled) {
                    if !value.is_empty() {
                        p.name = p.push(value);
                    }
                }
            }
        }
    }

    /// Upstream response fields that this request's own lines replace (Envoy sets
    /// `x-request-id` and `x-envoy-decorator-operation` in the response, not adds
    /// them): removed before the lines are added.
    pub(super) fn drop_replaced_response_fields(&mut self, head: &[u8]) {
        for name in [&b"x-request-id"[..], DECORATOR] {
            let named = |line: &[u8]| {
                line.len() > name.len()
                    && line[name.len()] == b':'
                    && line[..name.len()].eq_ignore_ascii_case(name)
            };
            let lines = &self.filters.reply_lines;
            if !lines.split(|&b| b == b'\n').any(named) {
                continue;
            }
            for (index, h) in self.response.headers.iter().enumerate() {
                if h.name(head).eq_ignore_ascii_case(name) {
                    self.response.overlay.remove(index);
                }
            }
        }
    }

    /// Counts body bytes read for a sampled request (its span's request size).
    pub(super) fn trace_received(&mut self, bytes: u64) {
        if self.trace.on && self.trace.sampled {
            if let Some(p) = self.pending.as_deref_mut() {
                p.received += bytes;
            }
        }
    }

    /// Notes when a sampled request's response ended (the instant its
    /// `downstream_rq_time` was read), for its span's end.
    pub(super) fn trace_response_end(&mut self, end: Instant) {
        if self.trace.sampled {
            if let Some(p) = self.pending.as_deref_mut() {
                p.end = Some(end);
            }
        }
    }

    /// The context the next upstream attempt carries, and in which formats (`None`:
    /// the listener does not trace). A new span per attempt when the listener spawns
    /// upstream spans. `started`: the attempt's start when the caller read it (the
    /// first attempt's), else it is read here (sampled requests only).
    pub(super) fn trace_attempt_context(
        &mut self,
        started: Option<Instant>,
    ) -> Option<(AttemptContext<'_>, Formats)> {
        let t = self.listener.tracing.as_deref().filter(|_| self.trace.on)?;
        let s = &mut self.trace;
        if t.config.upstream_spans {
            s.attempt_span = context::new_span_id(&mut self.random);
        }
        if s.sampled && t.config.upstream_spans {
            let clock = &self.worker.clock;
            let anchor = self
                .pending
                .as_deref()
                .map_or_else(|| clock.anchor(), |p| p.anchor(clock));
            s.attempt_start_ns = anchor.unix_ns(started.unwrap_or_else(Instant::now));
        }
        let upstream_spans = t.config.upstream_spans;
        Some((
            AttemptContext {
                state: s,
                upstream_spans,
            },
            s.formats,
        ))
    }

    /// Hands the access log the context the current attempt carries upstream, when its
    /// format prints a trace field (`RequestLog::injected`): called once the attempt
    /// has its connection, as Envoy injects in `onPoolReady` (an attempt whose connect
    /// failed writes nothing).
    pub(super) fn trace_injected_for_log(&mut self) {
        let Some(log) = self.log.as_mut().filter(|l| l.prints_trace_fields()) else {
            return;
        };
        let Some(t) = self.listener.tracing.as_deref().filter(|_| self.trace.on) else {
            return;
        };
        // Drawn if it was left for later: the lines may carry it (B3's parent).
        self.trace.server_span(&mut self.random);
        let ctx = self.trace.outgoing(t.config.upstream_spans);
        let mut lines = [0u8; context::MAX_LINES];
        let n = context::write_lines(&ctx, self.trace.formats, &mut lines);
        log.injected(&lines[..n]);
    }

    /// Notes an upstream attempt's end at `ended` (sampled requests on listeners that
    /// spawn upstream spans): `status` 0 when no response came, `error` the failure's
    /// text, `tls` whether the cluster connects over TLS. Its span is recorded with the
    /// request's, when the request ends.
    pub(super) fn trace_attempt_end(
        &mut self,
        (upstream, tls): (&crate::upstream::Host, bool),
        (status, error): (u16, Option<&str>),
        (number, ended): (u32, Instant),
    ) {
        let Some(t) = self.listener.tracing.as_deref() else {
            return;
        };
        if !(self.trace.sampled && t.config.upstream_spans) {
            return;
        }
        let s = self.trace;
        let Some(p) = self.pending.as_deref_mut() else {
            return;
        };
        let anchor = p.anchor(&self.worker.clock);
        if p.forwarded.1 == 0 {
            let target = &self.target[..cut_at_char(&self.target, t.config.max_path_tag_length)];
            p.forwarded = p.push(target);
        }
        let pool = &upstream.pool;
        let ((host_at, host_len), port) = pool.host_and_port();
        let address = pool.address_text();
        let upstream = p.push(address.as_bytes());
        // The endpoint by its domain name when it has one (a DNS cluster's, or the
        // server name its TLS connections carry), as the conventions prefer; else by
        // its address.
        let (host, origin) = match pool.name().filter(|_| port != 0) {
            Some(name) => {
                let port_text = address.rsplit(':').next().unwrap_or_default();
                let origin = p.push_parts(&[name.as_bytes(), b":", port_text.as_bytes()]);
                ((origin.0, name.len() as u32), origin)
            }
            None => ((upstream.0 + host_at, host_len), upstream),
        };
        let error = error.map_or((0, 0), |e| p.push(e.as_bytes()));
        p.attempts.push(Attempt {
            span_id: s.attempt_span,
            start_ns: s.attempt_start_ns,
            end_ns: anchor.unix_ns(ended),
            status,
            number,
            upstream,
            host,
            origin,
            port,
            tls,
            error,
        });
    }

    /// Records the spans of a sampled request (from `complete`): its attempts' and its
    /// own. An OTLP tracer's are written in wire form straight from the request's text
    /// (`otlp::write_span`); a Zipkin tracer's are records sharing one copy of that
    /// text in the batch.
    pub(super) fn trace_finish(
        &self,
        p: &mut Pending,
        (status, bytes_sent): (u16, u64),
        flags: ResponseFlags,
        (upstream, consumer): (Option<&str>, Option<&str>),
    ) {
        let Some(t) = self.listener.tracing.as_deref().filter(|_| self.trace.on) else {
            return;
        };
        if !self.trace.sampled {
            return;
        }
        let anchor = p.anchor(&self.worker.clock);
        let end_ns = anchor.unix_ns(p.end.unwrap_or_else(Instant::now));
        let (client, port) = if self.client_ip == self.peer {
            (self.peer_text, self.peer_port)
        } else {
            (self.client_ip.ip().map_or(IpText::EMPTY, IpText::new), 0)
        };
        let own = OwnSpan {
            status,
            end_ns,
            bytes_sent,
            flags,
            https: self.stream.is_tls(),
            peer_port: port,
            attempts: self.retry.attempt,
        };
        let mut sinks = self.worker.spans.borrow_mut();
        // The request's text was kept for its listener's provider; a reload since may
        // have given the tracer's index another (its open spans were dropped, counted,
        // when it did): these are dropped and counted too.
        if sinks.wire_form(t.tracer) != Some(!t.zipkin) {
            sinks.drop_spans(t.tracer, p.attempts.len() + 1);
            return;
        }
        if t.zipkin {
            return self.trace_records(
                &mut sinks,
                t,
                p,
                &own,
                (client.as_bytes(), upstream, consumer),
            );
        }
        // The text the server span adds goes after the request's; then every piece is
        // in one text. What follows the constants is checked as UTF-8 once (the
        // constants are the config's text and attributes encoded from checked text).
        let peer = if p.encoded_peer {
            TextRef::EMPTY
        } else {
            TextRef::in_block(0, p.push(client.as_bytes()))
        };
        let upstream = TextRef::in_block(0, upstream.map_or((0, 0), |u| p.push(u.as_bytes())));
        let consumer = TextRef::in_block(0, consumer.map_or((0, 0), |c| p.push(c.as_bytes())));
        let utf8 = Text(p.text.get(p.constants_len..).unwrap_or_default()).is_utf8();
        // Room after the last piece for its window (`Text::short`).
        p.text.resize(p.text.len() + WINDOW, 0);
        let p = &*p;
        let text = Text(&p.text);
        let s = &self.trace;
        for a in &p.attempts {
            let Some((batch, scratch)) = sinks.batch_and_scratch(t.tracer) else {
                continue;
            };
            let mut record = attempt_record(s, p, a, |r| TextRef::in_block(0, r));
            record.cluster = TextRef::EMPTY;
            record.encoded = TextRef::in_block(0, p.encoded_cluster);
            let view = SpanView {
                text,
                tags: &[],
                record: &record,
            };
            otlp::write_span(batch, &view, utf8, scratch);
            sinks.pushed(t.tracer);
        }
        let Some((batch, scratch)) = sinks.batch_and_scratch(t.tracer) else {
            return;
        };
        let mut record = own_record(
            s,
            t,
            p,
            &own,
            |r| TextRef::in_block(0, r),
            (peer, upstream, consumer),
        );
        // Encoded among the constants.
        record.route = TextRef::EMPTY;
        record.cluster = TextRef::EMPTY;
        record.scheme = None;
        record.encoded = TextRef::in_block(0, p.encoded);
        if p.encoded_peer {
            record.peer_port = 0;
        }
        let view = SpanView {
            text,
            tags: &p.tags,
            record: &record,
        };
        otlp::write_span(batch, &view, utf8, scratch);
        sinks.pushed(t.tracer);
    }

    /// A Zipkin tracer's spans: records in the batch, the request's text copied into
    /// its arena once for all of them.
    fn trace_records(
        &self,
        sinks: &mut crate::trace::sink::SpanSinks,
        t: &ListenerTrace,
        p: &Pending,
        own: &OwnSpan,
        (client, upstream, consumer): (&[u8], Option<&str>, Option<&str>),
    ) {
        let s = &self.trace;
        // Where the request's text block is in the current batch (none yet, or the
        // batch was handed over after the last span).
        let mut base = None;
        for a in &p.attempts {
            let Some(batch) = sinks.batch(t.tracer) else {
                continue;
            };
            let at = block(batch, p, &mut base);
            batch
                .spans
                .push(attempt_record(s, p, a, |r| TextRef::in_block(at, r)));
            if sinks.pushed(t.tracer) {
                base = None;
            }
        }
        let Some(batch) = sinks.batch(t.tracer) else {
            return;
        };
        let at = block(batch, p, &mut base);
        let tags_start = batch.tags.len() as u32;
        for &(name, value) in &p.tags {
            batch.tags.push((name.rebased(at), value.rebased(at)));
        }
        let added = (
            batch.push_bytes(client),
            upstream.map_or(TextRef::EMPTY, |u| batch.push_text(u)),
            consumer.map_or(TextRef::EMPTY, |c| batch.push_text(c)),
        );
        let mut span = own_record(s, t, p, own, |r| TextRef::in_block(at, r), added);
        span.tags_start = tags_start;
        batch.spans.push(span);
        sinks.pushed(t.tracer);
    }
}

/// What the request's own span takes from its end.
struct OwnSpan {
    status: u16,
    end_ns: u64,
    bytes_sent: u64,
    flags: ResponseFlags,
    /// The client connection is TLS (`url.scheme`).
    https: bool,
    peer_port: u16,
    /// Attempts made.
    attempts: u32,
}

/// An upstream attempt's span: what is its own, the request's method and id (Envoy's
/// upstream span tags) and the target as forwarded (its URL); the rest is on the
/// request's span. `piece` maps the request's text pieces to where the span reads
/// them.
#[inline(always)]
fn attempt_record(
    s: &TraceState,
    p: &Pending,
    a: &Attempt,
    piece: impl Fn((u32, u32)) -> TextRef,
) -> SpanRecord {
    SpanRecord {
        trace_id: s.trace_id(),
        span_id: a.span_id,
        parent_id: s.span_id,
        kind: SpanKind::Client,
        start_ns: a.start_ns,
        end_ns: a.end_ns,
        name: piece(p.attempt_name),
        method: piece(p.method),
        path: piece(p.forwarded),
        scheme: Some(if a.tls { "https" } else { "http" }),
        authority: piece(a.host),
        server_port: a.port,
        origin: piece(a.origin),
        request_id: piece(p.request_id),
        cluster: piece(p.cluster),
        upstream: piece(a.upstream),
        error: piece(a.error),
        status: a.status,
        attempt: a.number,
        // The context it went upstream with carries the caller's `tracestate`.
        trace_state: piece(p.trace_state),
        debug: s.debug,
        upstream_attempt: true,
        ..SpanRecord::default()
    }
}

/// The request's own span; `(peer, upstream, consumer)` are where the span reads the
/// client's address, the endpoint's and the consumer. Its custom tags are the first
/// `p.tags.len()` from `tags_start` (0 here).
#[inline(always)]
fn own_record(
    s: &TraceState,
    t: &ListenerTrace,
    p: &Pending,
    own: &OwnSpan,
    piece: impl Fn((u32, u32)) -> TextRef,
    (peer, upstream, consumer): (TextRef, TextRef, TextRef),
) -> SpanRecord {
    SpanRecord {
        trace_id: s.trace_id(),
        span_id: s.span_id,
        parent_id: s.parent_id,
        kind: t.config.kind,
        start_ns: p.start_ns,
        end_ns: own.end_ns,
        name: piece(p.name),
        method: piece(p.method),
        path: piece(p.path),
        query: piece(p.query),
        authority: piece(p.authority),
        server_port: 0,
        origin: TextRef::EMPTY,
        scheme: Some(if own.https { "https" } else { "http" }),
        route: piece(p.route),
        status: own.status,
        peer,
        peer_port: own.peer_port,
        user_agent: piece(p.user_agent),
        request_id: piece(p.request_id),
        cluster: piece(p.cluster),
        upstream,
        consumer,
        flags: own.flags.bits(),
        bytes_received: p.received,
        bytes_sent: own.bytes_sent,
        attempt: own.attempts,
        error: TextRef::EMPTY,
        trace_state: piece(p.trace_state),
        debug: s.debug,
        shared: s.shared,
        upstream_attempt: false,
        encoded: TextRef::EMPTY,
        tags_start: 0,
        tags_len: p.tags.len() as u32,
    }
}

/// Where the request's text block starts in `batch`: copied on the first span that
/// needs it (`TextRef::NO_BLOCK`: it did not fit, and the spans go without their text).
fn block(batch: &mut SpanBatch, p: &Pending, base: &mut Option<u32>) -> u32 {
    *base.get_or_insert_with(|| batch.push_block(&p.text).unwrap_or(TextRef::NO_BLOCK))
}

/// Where to cut `text` to at most `max` bytes without splitting a UTF-8 character
/// (Envoy's `max_path_tag_length`).
fn cut_at_char(text: &[u8], max: usize) -> usize {
    let mut cut = text.len().min(max);
    while cut > 0 && cut < text.len() && (text[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    cut
}
