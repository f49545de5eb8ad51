//! Trace context in and out of a hop: W3C `traceparent` and Zipkin's B3 (single `b3`
//! header and the `x-b3-*` multi-header form).
//!
//! Design: the worker feeds every request field to [`Extractor::observe`] once, in the
//! pass it already makes over the head; a field is compared by length and first byte
//! before its name is compared, so the common field costs two comparisons. Values are
//! parsed on the spot into integers (the extractor borrows nothing and allocates
//! nothing), and [`Extractor::finish`] applies the precedence: a valid `traceparent`,
//! else a `b3` header with ids, else `x-b3-traceid` + `x-b3-spanid`. Malformed values
//! are ignored, never an error: a bad parent starts a new trace, as the W3C spec and
//! Envoy do. On the way out [`write_lines`] writes the header lines of each format into
//! the caller's buffer with hand-written hex (no `fmt`, no allocation): the proxy drops
//! the fields `observe` claimed and writes these instead. The W3C line alone, what most
//! listeners write, is built by value at fixed offsets ([`traceparent_line`]), its 48
//! digits by SSE2 on x86-64 (`hex`).

use crate::config::observability::{Propagation, Reads};

use crate::hex;
use crate::http1::NameLengths;

/// Which formats a request carried, or a hop writes: a set of three bits. One byte,
/// so that copying it or comparing it with a set is one instruction (as three `bool`s
/// it was taken apart into bytes and put back together around every copy).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Formats(u8);

impl Formats {
    const W3C_BIT: u8 = 1;
    const B3_BIT: u8 = 2;
    const B3_SINGLE_BIT: u8 = 4;

    pub const NONE: Formats = Formats(0);
    /// W3C alone.
    pub const W3C: Formats = Formats(Formats::W3C_BIT);
    /// B3's multiple headers alone.
    pub const B3: Formats = Formats(Formats::B3_BIT);
    /// B3's single header alone.
    pub const B3_SINGLE: Formats = Formats(Formats::B3_SINGLE_BIT);

    pub const fn new(w3c: bool, b3: bool, b3_single: bool) -> Formats {
        let mut bits = 0;
        if w3c {
            bits |= Formats::W3C_BIT;
        }
        if b3 {
            bits |= Formats::B3_BIT;
        }
        if b3_single {
            bits |= Formats::B3_SINGLE_BIT;
        }
        Formats(bits)
    }

    /// W3C `traceparent` (and `tracestate`).
    pub fn w3c(self) -> bool {
        self.0 & Formats::W3C_BIT != 0
    }

    /// B3's multiple headers (`x-b3-traceid`…).
    pub fn b3(self) -> bool {
        self.0 & Formats::B3_BIT != 0
    }

    /// B3's single header (`b3`).
    pub fn b3_single(self) -> bool {
        self.0 & Formats::B3_SINGLE_BIT != 0
    }

    /// The formats a listener writes (its `propagation`).
    pub fn from_propagation(p: Propagation) -> Formats {
        Formats::new(p.w3c, p.b3, p.b3_single)
    }

    /// Both sets together: what a hop writes is the request's own formats plus the
    /// listener's.
    pub fn union(self, other: Formats) -> Formats {
        Formats(self.0 | other.0)
    }
}

impl std::fmt::Debug for Formats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Formats")
            .field("w3c", &self.w3c())
            .field("b3", &self.b3())
            .field("b3_single", &self.b3_single())
            .finish()
    }
}

/// The trace context a request carried (the parent of the request's span).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// Never 0.
    pub trace_id: u128,
    /// A B3 64-bit trace id (16 hex): written back as 16 hex in B3.
    pub short_id: bool,
    /// The parent span (never 0).
    pub span_id: u64,
    /// B3 `x-b3-parentspanid` / the 4th field of `b3`, else 0 (Zipkin shared spans need
    /// it).
    pub parent_id: u64,
    /// W3C flags bit 0 (always `Some`); B3 sampled `1`/`0`/`true`/`false`/`d`; `None`:
    /// deferred to this hop.
    pub sampled: Option<bool>,
    /// B3 `x-b3-flags: 1` or `b3` single `d` (implies `sampled == Some(true)`).
    pub debug: bool,
    /// Every valid format seen.
    pub formats: Formats,
}

/// What [`Extractor::finish`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Extracted {
    /// The parent context, or `None` when no valid ids came.
    pub context: Option<Incoming>,
    /// A sampling decision without ids (`b3: 0|1|d`, or `x-b3-sampled`/`x-b3-flags`
    /// without valid ids); `None` whenever `context` is `Some`.
    pub sampled_only: Option<bool>,
    /// `sampled_only` came with debug (`b3: d`, `x-b3-flags: 1`).
    pub debug: bool,
    /// A `tracestate` field was seen (it is forwarded untouched; the W3C spec says it
    /// means nothing without a valid `traceparent`).
    pub tracestate: bool,
    /// Every format read, ids or not (a `b3: 0` alone is B3 single's).
    pub formats: Formats,
}

/// A parsed `b3` single header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Single {
    #[default]
    Absent,
    /// Only a sampling state (`0`, `1`, `d`).
    State { sampled: bool, debug: bool },
    Ids {
        trace_id: u128,
        short_id: bool,
        span_id: u64,
        parent_id: u64,
        sampled: Option<bool>,
        debug: bool,
    },
}

/// One pass over a request's header fields; see [`Extractor::observe`].
#[derive(Default, Debug, Clone)]
pub struct Extractor {
    reads: Reads,
    /// Valid traceparent: (trace id, span id, sampled).
    w3c: Option<(u128, u64, bool)>,
    w3c_seen: bool,
    /// More than one traceparent field: invalid (W3C: there can be only one).
    w3c_repeated: bool,
    tracestate: bool,
    single: Single,
    /// x-b3-traceid: (id, 16 hex).
    b3_trace: Option<(u128, bool)>,
    b3_span: Option<u64>,
    b3_parent: u64,
    b3_sampled: Option<bool>,
    b3_debug: bool,
}

/// Field names the extractor claims, and what each is.
#[derive(Clone, Copy)]
enum Field {
    TraceParent,
    TraceState,
    B3,
    TraceId,
    SpanId,
    ParentSpanId,
    Sampled,
    Flags,
}

/// Whether a field whose name is `len` bytes long may bear on a request's sampling
/// decision (see [`bears_on_decision`]): a bit test, before the name's bytes are read.
#[inline]
pub fn may_bear_on_decision(len: usize) -> bool {
    DECISION_NAME_LENGTHS.may_have(len)
}

/// The lengths of the names [`bears_on_decision`] can accept (`b3`; `tracestate`,
/// `x-b3-flags`; `traceparent`, `x-b3-spanid`; `x-b3-traceid`, `x-b3-sampled`;
/// `x-b3-parentspanid`, `x-client-trace-id`; `x-envoy-force-trace`): a request none of
/// whose field names has one of them (`Request::name_lengths`) carries nothing that
/// bears on its decision, known without a pass over its fields.
pub const DECISION_NAME_LENGTHS: NameLengths = NameLengths::of(&[2, 10, 11, 12, 17, 19]);

/// A client's request to trace (Envoy's `x-client-trace-id`).
pub const CLIENT_TRACE_ID: &[u8] = b"x-client-trace-id";

/// A trusted peer's order to trace (Envoy's `x-envoy-force-trace`).
pub const FORCE_TRACE: &[u8] = b"x-envoy-force-trace";

/// Whether a field named `name` bears on a request's sampling decision: a context
/// field [`Extractor::observe`] claims (not `tracestate`, which means nothing alone),
/// `x-client-trace-id` or `x-envoy-force-trace`. By length first: an ordinary field
/// costs a compare or two.
#[inline]
pub fn bears_on_decision(name: &[u8]) -> bool {
    match name.len() {
        2 | 10 | 11 | 12 => field(name).is_some_and(|f| !matches!(f, Field::TraceState)),
        17 => field(name).is_some() || name.eq_ignore_ascii_case(CLIENT_TRACE_ID),
        19 => name.eq_ignore_ascii_case(FORCE_TRACE),
        _ => false,
    }
}

/// Which trace field `name` is, by length first, then one byte, then the whole name
/// (ASCII case-insensitive): an ordinary field costs a length compare.
#[inline]
fn field(name: &[u8]) -> Option<Field> {
    let (want, f): (&[u8], Field) = match name.len() {
        2 => (b"b3", Field::B3),
        10 => match name[0] | 0x20 {
            b't' => (b"tracestate", Field::TraceState),
            b'x' => (b"x-b3-flags", Field::Flags),
            _ => return None,
        },
        11 => match name[0] | 0x20 {
            b't' => (b"traceparent", Field::TraceParent),
            b'x' => (b"x-b3-spanid", Field::SpanId),
            _ => return None,
        },
        12 => {
            if name[0] | 0x20 != b'x' {
                return None;
            }
            match name.get(5).map(|b| b | 0x20) {
                Some(b't') => (b"x-b3-traceid", Field::TraceId),
                Some(b's') => (b"x-b3-sampled", Field::Sampled),
                _ => return None,
            }
        }
        17 => (b"x-b3-parentspanid", Field::ParentSpanId),
        _ => return None,
    };
    name.eq_ignore_ascii_case(want).then_some(f)
}

impl Extractor {
    /// Called with every request field in order (name as received, any case; value
    /// without OWS). Returns whether the field is trace context the proxy rewrites
    /// (`traceparent`, `b3`, `x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`,
    /// `x-b3-sampled`, `x-b3-flags`): the caller drops it from the forwarded head and
    /// writes fresh lines with [`write_lines`]. `tracestate` answers false (it is passed
    /// on) but is remembered. A repeated B3 field keeps its first valid value.
    #[inline]
    pub fn observe(&mut self, name: &[u8], value: &[u8]) -> bool {
        let Some(f) = field(name) else {
            return false;
        };
        let w3c = matches!(f, Field::TraceParent | Field::TraceState);
        if (w3c && self.reads.ignore_w3c) || (!w3c && self.reads.ignore_b3) {
            return false;
        }
        let value = trim(value);
        match f {
            Field::TraceParent => {
                // W3C: there can be only one; a second field (even after an invalid
                // one) makes the context invalid.
                if self.w3c_seen {
                    self.w3c_repeated = true;
                } else {
                    self.w3c_seen = true;
                    self.w3c = parse_traceparent(value);
                }
            }
            Field::TraceState => {
                self.tracestate = true;
                return false;
            }
            Field::B3 => {
                if self.single == Single::Absent {
                    self.single = parse_b3_single(value);
                }
            }
            Field::TraceId => {
                if self.b3_trace.is_none() {
                    self.b3_trace = parse_trace_id(value);
                }
            }
            Field::SpanId => {
                if self.b3_span.is_none() {
                    self.b3_span = parse_span_id(value);
                }
            }
            Field::ParentSpanId => {
                if self.b3_parent == 0 {
                    // A bad parent is dropped alone: the trace and span ids still hold.
                    self.b3_parent = parse_span_id(value).unwrap_or(0);
                }
            }
            Field::Sampled => {
                if self.b3_sampled.is_none() {
                    match value {
                        b"1" | b"true" => self.b3_sampled = Some(true),
                        b"0" | b"false" => self.b3_sampled = Some(false),
                        b"d" => {
                            self.b3_sampled = Some(true);
                            self.b3_debug = true;
                        }
                        _ => {}
                    }
                }
            }
            Field::Flags => {
                if value == b"1" {
                    self.b3_debug = true;
                }
            }
        }
        true
    }

    /// An extractor that reads what `reads` says.
    pub fn reading(reads: Reads) -> Extractor {
        Extractor {
            reads,
            ..Extractor::default()
        }
    }

    /// The context, or none. Precedence: a valid W3C `traceparent` (exactly one field),
    /// else a `b3` single header with ids, else `x-b3-traceid` + `x-b3-spanid` (both
    /// valid); with [`Reads::b3_first`], the B3 forms first and W3C last. A sampling
    /// decision without ids comes back as `sampled_only`.
    pub fn finish(self) -> Extracted {
        let multi_ids = match (self.b3_trace, self.b3_span) {
            (Some(t), Some(s)) => Some((t, s)),
            _ => None,
        };
        let multi_sampled = if self.b3_debug {
            Some(true)
        } else {
            self.b3_sampled
        };
        let (single_sampled, single_debug) = match self.single {
            Single::Absent => (None, false),
            Single::State { sampled, debug } => (Some(sampled), debug),
            Single::Ids { sampled, debug, .. } => (sampled, debug),
        };
        let w3c = if self.w3c_repeated { None } else { self.w3c };
        let formats = Formats::new(
            w3c.is_some(),
            multi_ids.is_some() || multi_sampled.is_some(),
            self.single != Single::Absent,
        );
        // B3 first: W3C only when no B3 ids came (Envoy's Zipkin fallback).
        let b3_ids = multi_ids.is_some() || matches!(self.single, Single::Ids { .. });
        let w3c = w3c.filter(|_| !(self.reads.b3_first && b3_ids));
        let context = if let Some((trace_id, span_id, sampled)) = w3c {
            Some(Incoming {
                trace_id,
                short_id: false,
                span_id,
                parent_id: 0,
                sampled: Some(sampled),
                debug: false,
                formats,
            })
        } else if let Single::Ids {
            trace_id,
            short_id,
            span_id,
            parent_id,
            sampled,
            debug,
        } = self.single
        {
            Some(Incoming {
                trace_id,
                short_id,
                span_id,
                parent_id,
                sampled: sampled.or(multi_sampled),
                debug: debug || (sampled.is_none() && self.b3_debug),
                formats,
            })
        } else {
            multi_ids.map(|((trace_id, short_id), span_id)| Incoming {
                trace_id,
                short_id,
                span_id,
                parent_id: self.b3_parent,
                sampled: multi_sampled.or(single_sampled),
                debug: self.b3_debug || (multi_sampled.is_none() && single_debug),
                formats,
            })
        };
        let (sampled_only, debug) = if context.is_some() {
            (None, false)
        } else if single_sampled.is_some() {
            (single_sampled, single_debug)
        } else {
            (multi_sampled, self.b3_debug)
        };
        Extracted {
            context,
            sampled_only,
            debug,
            tracestate: self.tracestate,
            formats,
        }
    }
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Hex digit values; 0xff: not a digit. `LOWER` takes only lowercase (W3C).
const fn hex_table(upper: bool) -> [u8; 256] {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        if upper {
            t[b'A' as usize + i] = 10 + i as u8;
        }
        i += 1;
    }
    t
}

static LOWER: [u8; 256] = hex_table(false);
static ANY: [u8; 256] = hex_table(true);

/// A run of hex digits as an integer (at most 32 digits), or None on any non-digit.
#[inline]
fn hex_u128(s: &[u8], table: &[u8; 256]) -> Option<u128> {
    let mut hi = 0u64;
    let mut lo = 0u64;
    let mut bad = 0u8;
    // Two u64 halves: cheaper than shifting a u128 per digit.
    let split = s.len().saturating_sub(16);
    for &b in &s[..split] {
        let d = table[usize::from(b)];
        bad |= d;
        hi = (hi << 4) | u64::from(d & 0xf);
    }
    for &b in &s[split..] {
        let d = table[usize::from(b)];
        bad |= d;
        lo = (lo << 4) | u64::from(d & 0xf);
    }
    // A digit is < 16; 0xff has the high bit set.
    (bad & 0x80 == 0).then_some((u128::from(hi) << 64) | u128::from(lo))
}

#[inline]
fn hex_u64(s: &[u8], table: &[u8; 256]) -> Option<u64> {
    let mut v = 0u64;
    let mut bad = 0u8;
    for &b in s {
        let d = table[usize::from(b)];
        bad |= d;
        v = (v << 4) | u64::from(d & 0xf);
    }
    (bad & 0x80 == 0).then_some(v)
}

/// `traceparent`: `<version>-<trace-id>-<parent-id>-<flags>`, lowercase hex only.
/// Version `ff` is invalid; version 00 is exactly 55 chars; a later version is read by
/// its first 55 chars when the next one is `-` (or there is none), as the spec says.
fn parse_traceparent(v: &[u8]) -> Option<(u128, u64, bool)> {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex_u64(&v[..2], &LOWER)?;
    match version {
        0xff => return None,
        0 if v.len() != 55 => return None,
        _ if v.len() > 55 && v[55] != b'-' => return None,
        _ => {}
    }
    let trace = hex_u128(&v[3..35], &LOWER)?;
    let span = hex_u64(&v[36..52], &LOWER)?;
    let flags = hex_u64(&v[53..55], &LOWER)?;
    if trace == 0 || span == 0 {
        return None;
    }
    Some((trace, span, flags & 1 == 1))
}

/// A B3 trace id: 16 or 32 hex (upper case accepted), not all zero.
fn parse_trace_id(v: &[u8]) -> Option<(u128, bool)> {
    if v.len() != 16 && v.len() != 32 {
        return None;
    }
    let id = hex_u128(v, &ANY)?;
    (id != 0).then_some((id, v.len() == 16))
}

/// A B3 span id: 16 hex, not all zero.
fn parse_span_id(v: &[u8]) -> Option<u64> {
    if v.len() != 16 {
        return None;
    }
    hex_u64(v, &ANY).filter(|id| *id != 0)
}

/// `b3`: `<trace>-<span>[-<state>[-<parent>]]` or a lone `<state>` (`0`, `1`, `d`).
fn parse_b3_single(v: &[u8]) -> Single {
    let state = |b: u8| match b {
        b'0' => Some((false, false)),
        b'1' => Some((true, false)),
        b'd' => Some((true, true)),
        _ => None,
    };
    if v.len() == 1 {
        return match state(v[0]) {
            Some((sampled, debug)) => Single::State { sampled, debug },
            None => Single::Absent,
        };
    }
    let tlen = match v.iter().position(|b| *b == b'-') {
        Some(n @ (16 | 32)) => n,
        _ => return Single::Absent,
    };
    let Some((trace_id, short_id)) = parse_trace_id(&v[..tlen]) else {
        return Single::Absent;
    };
    let rest = &v[tlen + 1..];
    if rest.len() < 16 {
        return Single::Absent;
    }
    let Some(span_id) = parse_span_id(&rest[..16]) else {
        return Single::Absent;
    };
    let rest = &rest[16..];
    let (sampled, debug, parent_id) = match rest {
        [] => (None, false, 0),
        [b'-', s] => match state(*s) {
            Some((sampled, debug)) => (Some(sampled), debug, 0),
            None => return Single::Absent,
        },
        [b'-', s, b'-', parent @ ..] => match (state(*s), parse_span_id(parent)) {
            (Some((sampled, debug)), Some(parent)) => (Some(sampled), debug, parent),
            _ => return Single::Absent,
        },
        _ => return Single::Absent,
    };
    Single::Ids {
        trace_id,
        short_id,
        span_id,
        parent_id,
        sampled,
        debug,
    }
}

/// What a hop writes upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub trace_id: u128,
    /// Write the trace id as 16 hex in B3 (its high half is zero).
    pub short_id: bool,
    /// The span the upstream's span will be a child of.
    pub span_id: u64,
    /// That span's parent (B3 `x-b3-parentspanid`); 0: none.
    pub parent_id: u64,
    pub sampled: bool,
    /// B3 debug (written as `x-b3-flags: 1` / `b3` state `d`; implies sampled).
    pub debug: bool,
}

/// The most bytes [`write_lines`] writes (all three formats, a parent, 128-bit ids:
/// 277).
pub const MAX_LINES: usize = 320;

#[inline]
fn put(out: &mut [u8], at: &mut usize, s: &[u8]) {
    out[*at..*at + s.len()].copy_from_slice(s);
    *at += s.len();
}

/// The 8 nibbles of `x` as 8 lower hex digits in the bytes of a u64, most significant
/// first once written big-endian, without a loop or a table: each nibble is spread into
/// its own byte (SWAR, three shift-and-mask steps), then turned into ASCII in one add
/// (`'0' + n`, plus 39 where `n >= 10`: `n + 6` carries into bit 4 exactly then, and no
/// byte overflows into the next). u64 halves, not one u128: x86-64 has no 128-bit
/// shifts, and the u128 form cost half as much again.
#[inline]
fn hex8(x: u32) -> u64 {
    const LOW16: u64 = 0x0000_ffff_0000_ffff;
    const LOW8: u64 = 0x00ff_00ff_00ff_00ff;
    const LOW4: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut v = u64::from(x);
    v = (v | (v << 16)) & LOW16;
    v = (v | (v << 8)) & LOW8;
    v = (v | (v << 4)) & LOW4;
    let letters = ((v + ONES * 6) >> 4) & ONES;
    v + ONES * u64::from(b'0') + letters * u64::from(b'a' - b'0' - 10)
}

/// `id` as 16 lower hex digits, most significant first.
#[inline]
fn put_hex64(out: &mut [u8], at: &mut usize, id: u64) {
    out[*at..*at + 8].copy_from_slice(&hex8((id >> 32) as u32).to_be_bytes());
    out[*at + 8..*at + 16].copy_from_slice(&hex8(id as u32).to_be_bytes());
    *at += 16;
}

/// The bytes of a `traceparent` line.
pub const TRACEPARENT_LINE: usize = 70;

/// `traceparent: 00-<32 hex>-<16 hex>-<01|00>\r\n`, built by value: every byte is at a
/// fixed place, so it compiles to stores (no zeroing, no bounds checks). W3C alone is
/// what most listeners write, and this is all an unsampled request of theirs costs to
/// write.
#[inline]
pub fn traceparent_line(ctx: &Outgoing) -> [u8; TRACEPARENT_LINE] {
    let sampled = ctx.sampled || ctx.debug;
    let trace_id = [(ctx.trace_id >> 64) as u64, ctx.trace_id as u64];
    let (trace, span) = hex::ids(trace_id, ctx.span_id);
    let mut line = [0u8; TRACEPARENT_LINE];
    line[..16].copy_from_slice(b"traceparent: 00-");
    line[16..48].copy_from_slice(&trace);
    line[48] = b'-';
    line[49..65].copy_from_slice(&span);
    // The flags' last digit by arithmetic: no branch, no second constant.
    line[65..].copy_from_slice(b"-00\r\n");
    line[67] += u8::from(sampled);
    line
}

/// Appends what [`write_lines`] writes to `out`, and the head's last line (`\r\n`):
/// W3C alone as one piece ([`append_traceparent_ending_head`]).
pub fn append_lines_ending_head(ctx: &Outgoing, formats: Formats, out: &mut Vec<u8>) {
    if formats == Formats::W3C {
        return append_traceparent_ending_head(ctx, out);
    }
    let at = out.len();
    let len = lines_len(ctx, formats);
    out.resize(at + len + 2, 0);
    write_lines(ctx, formats, &mut out[at..at + len]);
    out[at + len..].copy_from_slice(b"\r\n");
}

/// Appends the `traceparent` line and the head's last line (`\r\n`) as one piece,
/// built in place (one capacity check, no buffer between): what most listeners
/// write. Its own function, so that a caller that builds `ctx` for it alone keeps the
/// ids in registers.
#[inline]
pub fn append_traceparent_ending_head(ctx: &Outgoing, out: &mut Vec<u8>) {
    let line = traceparent_line(ctx);
    let mut lines = [0u8; TRACEPARENT_LINE + 2];
    lines[..TRACEPARENT_LINE].copy_from_slice(&line);
    lines[TRACEPARENT_LINE..].copy_from_slice(b"\r\n");
    out.extend_from_slice(&lines);
}

#[inline]
fn put_trace(out: &mut [u8], at: &mut usize, id: u128, short: bool) {
    if !short {
        put_hex64(out, at, (id >> 64) as u64);
    }
    put_hex64(out, at, id as u64);
}

/// The bytes [`write_lines`] writes for `ctx` in `formats` (so that the caller can make
/// room for them in place and have them written there, with no buffer between).
pub fn lines_len(ctx: &Outgoing, formats: Formats) -> usize {
    let trace = |short: bool| if short { 16 } else { 32 };
    let parent = ctx.parent_id != 0;
    let mut n = 0;
    if formats.w3c() {
        // `traceparent: 00-` 32 `-` 16 `-01\r\n`
        n += TRACEPARENT_LINE;
    }
    if formats.b3() {
        // `x-b3-traceid: ` id `\r\nx-b3-spanid: ` 16 `\r\n`
        n += 14 + trace(ctx.short_id) + 15 + 16 + 2;
        if parent {
            n += 19 + 16 + 2;
        }
        // `x-b3-flags: 1\r\n` or `x-b3-sampled: 0\r\n`
        n += if ctx.debug { 15 } else { 17 };
    }
    if formats.b3_single() {
        // `b3: ` id `-` 16 `-1` [`-` 16] `\r\n`
        n += 4 + trace(ctx.short_id) + 1 + 16 + 2 + 2;
        if parent {
            n += 17;
        }
    }
    n
}

/// Writes header lines `name: value\r\n` for each format in `formats`: W3C
/// `traceparent: 00-<32 hex>-<16 hex>-<01|00>`; B3 multi `x-b3-traceid`,
/// `x-b3-spanid`, `x-b3-parentspanid` (only when `parent_id != 0`), `x-b3-sampled: 1|0`
/// (with debug: `x-b3-flags: 1` instead); B3 single `b3: <trace>-<span>-<1|0|d>[-<parent>]`.
/// Returns the bytes written. Panics when `out` is shorter than what it writes
/// ([`MAX_LINES`] is always enough).
pub fn write_lines(ctx: &Outgoing, formats: Formats, out: &mut [u8]) -> usize {
    let mut at = 0;
    let sampled = ctx.sampled || ctx.debug;
    if formats.w3c() {
        put(out, &mut at, &traceparent_line(ctx));
    }
    if formats.b3() {
        put(out, &mut at, b"x-b3-traceid: ");
        put_trace(out, &mut at, ctx.trace_id, ctx.short_id);
        put(out, &mut at, b"\r\nx-b3-spanid: ");
        put_hex64(out, &mut at, ctx.span_id);
        put(out, &mut at, b"\r\n");
        if ctx.parent_id != 0 {
            put(out, &mut at, b"x-b3-parentspanid: ");
            put_hex64(out, &mut at, ctx.parent_id);
            put(out, &mut at, b"\r\n");
        }
        put(
            out,
            &mut at,
            match (ctx.debug, sampled) {
                (true, _) => b"x-b3-flags: 1\r\n",
                (false, true) => b"x-b3-sampled: 1\r\n",
                (false, false) => b"x-b3-sampled: 0\r\n",
            },
        );
    }
    if formats.b3_single() {
        put(out, &mut at, b"b3: ");
        put_trace(out, &mut at, ctx.trace_id, ctx.short_id);
        put(out, &mut at, b"-");
        put_hex64(out, &mut at, ctx.span_id);
        put(
            out,
            &mut at,
            match (ctx.debug, sampled) {
                (true, _) => b"-d",
                (false, true) => b"-1",
                (false, false) => b"-0",
            },
        );
        if ctx.parent_id != 0 {
            put(out, &mut at, b"-");
            put_hex64(out, &mut at, ctx.parent_id);
        }
        put(out, &mut at, b"\r\n");
    }
    at
}

/// `id` in lower hex: 32 chars, or 16 (its low half) when `short` (a B3 64-bit id).
/// For the access log (`%TRACE_ID%`) and the exporters.
pub fn trace_id_hex(id: u128, short: bool, out: &mut [u8; 32]) -> &str {
    let mut at = 0;
    put_trace(out, &mut at, id, short);
    // Only ASCII digits were written.
    std::str::from_utf8(&out[..at]).unwrap_or_default()
}

/// `id` as 16 lower hex chars.
pub fn span_id_hex(id: u64, out: &mut [u8; 16]) -> &str {
    let mut at = 0;
    put_hex64(out, &mut at, id);
    std::str::from_utf8(&out[..]).unwrap_or_default()
}

/// A new 128-bit trace id from the worker's generator: never 0.
pub fn new_trace_id(rng: &mut fastrand::Rng) -> u128 {
    loop {
        // Two draws, tested together (a `u128` compare costs more than an `or`).
        let (high, low) = (rng.u64(..), rng.u64(..));
        if high | low != 0 {
            return u128::from(high) << 64 | u128::from(low);
        }
    }
}

/// A new 64-bit trace id (high half zero, never 0): Zipkin tracers without
/// `trace_id_128bit`.
pub fn new_short_trace_id(rng: &mut fastrand::Rng) -> u128 {
    u128::from(new_span_id(rng))
}

/// A new span id from the worker's generator: never 0.
pub fn new_span_id(rng: &mut fastrand::Rng) -> u64 {
    loop {
        let id = rng.u64(..);
        if id != 0 {
            return id;
        }
    }
}

/// Fuzz entry (fuzz/fuzz_targets/trace_context.rs and tests/fuzz_corpus.rs): `data` is
/// `name: value` lines; whatever is extracted must have non-zero ids and survive a
/// write and a second extraction unchanged.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let mut ex = Extractor::default();
    for line in data.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let claimed = ex.observe(&line[..colon], trim(&line[colon + 1..]));
        assert_eq!(
            claimed,
            field(&line[..colon]).is_some_and(|f| !matches!(f, Field::TraceState))
        );
    }
    let got = ex.finish();
    assert!(got.context.is_none() || got.sampled_only.is_none());
    let Some(ctx) = got.context else {
        return;
    };
    assert!(ctx.trace_id != 0 && ctx.span_id != 0);
    assert!(!ctx.short_id || ctx.trace_id >> 64 == 0);
    assert!(!ctx.debug || ctx.sampled == Some(true));
    let out = Outgoing {
        trace_id: ctx.trace_id,
        short_id: ctx.short_id,
        span_id: ctx.span_id,
        parent_id: ctx.parent_id,
        sampled: ctx.sampled.unwrap_or(false),
        debug: ctx.debug,
    };
    for formats in [Formats::W3C, Formats::B3, Formats::B3_SINGLE] {
        let mut buf = [0u8; MAX_LINES];
        let n = write_lines(&out, formats, &mut buf);
        assert_eq!(n, lines_len(&out, formats));
        let back = extract_lines(&buf[..n])
            .context
            .expect("written context parses");
        assert_eq!(back.trace_id, out.trace_id);
        assert_eq!(back.span_id, out.span_id);
        assert_eq!(back.sampled, Some(out.sampled || out.debug));
        assert_eq!(back.formats, formats);
        if !formats.w3c() {
            assert_eq!(back.short_id, out.short_id);
            assert_eq!(back.parent_id, out.parent_id);
            assert_eq!(back.debug, out.debug);
        }
    }
}

/// Extracts from `name: value\r\n` lines (tests, fuzzing).
fn extract_lines(lines: &[u8]) -> Extracted {
    let mut ex = Extractor::default();
    for line in lines.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(colon) = line.iter().position(|b| *b == b':') {
            ex.observe(&line[..colon], trim(&line[colon + 1..]));
        }
    }
    ex.finish()
}

#[cfg(test)]
mod tests;
