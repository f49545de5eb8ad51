//! Finished spans as workers record them and the exporter reads them.
//!
//! Design: a worker writes a span into a [`SpanBatch`] it owns, in one of two forms,
//! by its tracer. An OTLP tracer's span is written once, in its wire form (a
//! `ScopeSpans.spans` field, `export::otlp::write_span`), into the batch's `wire`
//! bytes: the exporter then only puts the batches' bytes behind the request's front
//! matter. A Zipkin tracer's span is a fixed-size record whose text (names,
//! addresses, tags) lives in one byte arena of the batch, encoded as JSON by the
//! exporter. Either way recording a span copies a few hundred bytes and allocates
//! nothing once the batch's vectors have grown to their capacity. A request's text
//! goes into the arena as one block ([`SpanBatch::push_block`]) that its spans share.
//! Text is kept as received (a header value need not be UTF-8) and checked once, a
//! request's by the worker that writes its spans in wire form, a batch's arena by the
//! exporter; a piece that is not UTF-8 reads as absent ([`Text::text`]). A full or timed-out batch goes to the exporter
//! thread whole (one channel send); the exporter hands the emptied batch back, so
//! batches circulate instead of being reallocated. Nothing here refers to the
//! worker's snapshot: a batch is `Send`.

use crate::config::observability::SpanKind;

/// A piece of a batch's text arena; [`TextRef::EMPTY`] is the empty string (and
/// "absent": attributes with empty text are not exported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TextRef {
    start: u32,
    len: u32,
}

impl TextRef {
    pub const EMPTY: TextRef = TextRef { start: 0, len: 0 };

    /// The piece `(start, len)` of a block that [`SpanBatch::push_block`] put at `base`;
    /// with [`TextRef::NO_BLOCK`] as `base` (the block did not fit), a piece that reads as
    /// empty. Two instructions: a request's spans map a dozen pieces each.
    #[inline]
    pub fn in_block(base: u32, (start, len): (u32, u32)) -> TextRef {
        TextRef {
            start: base.saturating_add(start),
            len,
        }
    }

    /// This piece of a block that starts at 0, in the same block put at `base`.
    #[inline]
    pub fn rebased(self, base: u32) -> TextRef {
        TextRef::in_block(base, (self.start, self.len))
    }

    /// A block base past the end of any arena (pieces in it read as empty).
    pub const NO_BLOCK: u32 = u32::MAX;

    /// The part of this piece `len` bytes long from `offset` in it (clamped to it).
    pub fn part(self, offset: usize, len: usize) -> TextRef {
        let offset = (offset as u32).min(self.len);
        TextRef {
            start: self.start.saturating_add(offset),
            len: (len as u32).min(self.len - offset),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len == 0
    }
}

/// The longest piece an encoder copies as a fixed-size window ([`Text::short`]): a
/// request id (36 bytes) and most header values fit. A worker leaves this many bytes
/// after a request's text, so that its last pieces have their windows too.
pub const WINDOW: usize = 48;

/// Bytes that [`TextRef`]s point into: a batch's arena, or the text a worker kept for
/// a request (its spans written in wire form straight from it).
#[derive(Debug, Clone, Copy)]
pub struct Text<'a>(pub &'a [u8]);

impl<'a> Text<'a> {
    /// The text of `r`: empty for a piece that is not UTF-8, or for a reference that
    /// does not fit these bytes.
    pub fn text(self, r: TextRef) -> &'a str {
        std::str::from_utf8(self.bytes(r)).unwrap_or_default()
    }

    /// The bytes of `r`, as pushed (encoders take them as they are once
    /// [`Self::is_utf8`] said the whole text is UTF-8).
    pub fn bytes(self, r: TextRef) -> &'a [u8] {
        let start = r.start as usize;
        self.0
            .get(start..start + r.len as usize)
            .unwrap_or_default()
    }

    /// A piece of 1 to [`WINDOW`] bytes with the [`WINDOW`] bytes of the text from its
    /// start (its bytes and whatever follows them), when there are that many: an
    /// encoder copies it as a few fixed-size moves of the window, after one lookup,
    /// instead of a call to copy a length it does not know.
    #[inline]
    pub fn short(self, r: TextRef) -> Option<(&'a [u8; WINDOW], usize)> {
        let len = r.len as usize;
        if !(1..=WINDOW).contains(&len) {
            return None;
        }
        let start = r.start as usize;
        let window = self.0.get(start..start + WINDOW)?.try_into().ok()?;
        Some((window, len))
    }

    /// Whether all of it is UTF-8, so that every piece is (pieces are whole fields,
    /// or cut at a character boundary): one pass instead of one per piece.
    pub fn is_utf8(self) -> bool {
        // ASCII first (nearly always: header values and names), as one OR of every
        // byte: no early exit, so the compiler does it 16 bytes an instruction (std's
        // `is_ascii` goes a word at a time, a few hundred instructions for a
        // request's text, checked per request when its spans are written in wire
        // form).
        let high = self.0.iter().fold(0u8, |all, &b| all | b);
        high < 0x80 || std::str::from_utf8(self.0).is_ok()
    }
}

/// Writes through `write(room, at)`, which writes at `at` in `room` and returns where
/// it ended: past `room`'s end when it did not fit (a writer through a position over a
/// slice drops what does not fit and moves on, so the end is what it needs). Then
/// `buf` grows (at least doubling; the new room zeroed) and it writes again. Returns
/// the end.
pub fn write_growing(
    buf: &mut Vec<u8>,
    at: usize,
    mut write: impl FnMut(&mut [u8], usize) -> usize,
) -> usize {
    loop {
        let end = write(&mut buf[..], at);
        if end <= buf.len() {
            return end;
        }
        buf.resize(end.max(buf.len() * 2), 0);
    }
}

/// One finished span: the request's own (`kind` as the listener says) or one upstream
/// attempt's (`Client`).
#[derive(Debug, Clone, Default)]
pub struct SpanRecord {
    /// 128 bits; a 64-bit id (B3) has the high half zero.
    pub trace_id: u128,
    pub span_id: u64,
    /// 0: a root span.
    pub parent_id: u64,
    pub kind: SpanKind,
    /// Unix time in nanoseconds: the request's first byte (an attempt: its start).
    pub start_ns: u64,
    /// Unix time in nanoseconds: the last response byte written (an attempt: its end).
    pub end_ns: u64,
    /// The span's name (Envoy's operation).
    pub name: TextRef,
    /// `http.request.method`.
    pub method: TextRef,
    /// `url.path` (cut to the listener's `max_path_tag_length`) and `url.query`; an
    /// upstream attempt's `path` is the whole target as forwarded (path and query,
    /// after rewrites, cut alike), the end of its `url.full`, and `query` is empty.
    pub path: TextRef,
    pub query: TextRef,
    /// `server.address`: the request's authority, whose port (if any) is its
    /// `server.port`; an upstream attempt's: its endpoint's host alone, the port being
    /// `server_port`.
    pub authority: TextRef,
    /// An upstream attempt's endpoint port (0: none, a Unix socket).
    pub server_port: u16,
    /// An upstream attempt's URL authority (`host:port`, by the endpoint's domain name
    /// when it has one): the start of its `url.full` after the scheme.
    pub origin: TextRef,
    /// `url.scheme`: `http` or `https` (a constant: nothing copied); an upstream
    /// attempt's: its connection's, for its `url.full` (`None`: not known).
    pub scheme: Option<&'static str>,
    /// `http.route`: the route's name (or its match text).
    pub route: TextRef,
    /// `http.response.status_code`; 0: no response.
    pub status: u16,
    /// `client.address` / `network.peer.address` and port (0: none).
    pub peer: TextRef,
    pub peer_port: u16,
    /// `user_agent.original`.
    pub user_agent: TextRef,
    /// `guid:x-request-id` (Envoy's tag).
    pub request_id: TextRef,
    /// The upstream cluster and endpoint (`upstream_cluster`, `upstream_address`).
    pub cluster: TextRef,
    pub upstream: TextRef,
    /// The authenticated consumer or principal.
    pub consumer: TextRef,
    /// Envoy's response flags (`access_log::ResponseFlags` bits).
    pub flags: u32,
    /// `http.request.body.size`, `http.response.body.size`: the bodies' payload, no
    /// heads and no chunk framing, as Envoy's `%BYTES_RECEIVED%`/`%BYTES_SENT%` count
    /// them (its `request_size`, `response_size`); left out of an upstream attempt's
    /// span, whose bytes are not counted apart from its request's.
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// The span is an upstream attempt's (not its request's, whatever its kind).
    pub upstream_attempt: bool,
    /// An attempt's number (1 for the first); the request's span: attempts made.
    pub attempt: u32,
    /// Why the span failed (an error's kind, e.g. `connect failure`); empty: no error
    /// beyond a 5xx status.
    pub error: TextRef,
    /// W3C `tracestate` as received.
    pub trace_state: TextRef,
    /// `sampled` was forced by a header (Envoy's debug flag for B3).
    pub debug: bool,
    /// A server span that kept its B3 caller's span id (Zipkin's `shared`).
    pub shared: bool,
    /// Attributes already in wire form (OTLP span attributes, field 9), put into the
    /// span as they are: what a connection's requests share, encoded once for all of
    /// them (`export::otlp::constant_attributes`); the fields they stand for are left
    /// empty. Empty for a record in a batch (a Zipkin tracer's).
    pub encoded: TextRef,
    /// Custom tags: `tags_len` pairs from `SpanBatch::tags[tags_start..]`.
    pub tags_start: u32,
    pub tags_len: u32,
}

/// Spans of one worker for one tracer, with their text.
#[derive(Debug, Default)]
pub struct SpanBatch {
    /// Index of the tracer (`Config::tracers`) the spans go to.
    pub tracer: usize,
    pub spans: Vec<SpanRecord>,
    pub tags: Vec<(TextRef, TextRef)>,
    text: Vec<u8>,
    /// Spans in wire form (an OTLP tracer's), `wire_len` bytes of them: the vector is
    /// zeroed room, written over (written through a position over a slice, as the
    /// encoder wants; grown, rarely, when a span does not fit).
    wire: Vec<u8>,
    wire_len: usize,
    wire_spans: usize,
}

impl SpanBatch {
    /// An empty batch whose vectors can hold `spans` spans and `text` bytes without
    /// growing.
    pub fn with_capacity(tracer: usize, spans: usize, text: usize) -> SpanBatch {
        SpanBatch {
            tracer,
            spans: Vec::with_capacity(spans),
            tags: Vec::with_capacity(spans),
            text: Vec::with_capacity(text),
            wire: Vec::new(),
            wire_len: 0,
            wire_spans: 0,
        }
    }

    /// The arena that the records' pieces point into.
    pub fn arena(&self) -> Text<'_> {
        Text(&self.text)
    }

    /// [`Text::text`] of the arena.
    pub fn text(&self, r: TextRef) -> &str {
        self.arena().text(r)
    }

    /// [`Text::bytes`] of the arena.
    pub fn bytes(&self, r: TextRef) -> &[u8] {
        self.arena().bytes(r)
    }

    /// The spans in wire form, one after the other.
    pub fn wire(&self) -> &[u8] {
        self.wire.get(..self.wire_len).unwrap_or_default()
    }

    /// Spans in the batch, in either form.
    pub fn span_count(&self) -> usize {
        self.spans.len() + self.wire_spans
    }

    /// Writes one span in wire form after the others with `write`, as
    /// [`write_growing`] calls it, with at least `room_per_span` bytes of room (the
    /// encoder's fast path needs a whole window). The room starts at 16 times
    /// `room_per_span` and doubles when it runs short or a span does not fit: zeroed
    /// when it grows, which happens in the first few fillings of a batch's life
    /// (batches circulate).
    pub fn write_wire(
        &mut self,
        room_per_span: usize,
        write: impl FnMut(&mut [u8], usize) -> usize,
    ) {
        let need = self.wire_len.saturating_add(room_per_span);
        if self.wire.len() < need {
            let grown = need
                .max(self.wire.len().saturating_mul(2))
                .max(room_per_span.saturating_mul(16));
            self.wire.resize(grown, 0);
        }
        self.wire_len = write_growing(&mut self.wire, self.wire_len, write);
        self.wire_spans += 1;
    }

    /// Spans in wire form in the batch.
    pub fn wire_spans(&self) -> usize {
        self.wire_spans
    }

    /// Copies `block` into the arena in one piece and returns where it starts; `None`
    /// past the arena's capacity (the arena never grows on the request path).
    pub fn push_block(&mut self, block: &[u8]) -> Option<u32> {
        if self.text.len() + block.len() > self.text.capacity() {
            return None;
        }
        let start = self.text.len() as u32;
        self.text.extend_from_slice(block);
        Some(start)
    }

    /// Copies `s` into the arena. Past the arena's capacity the text is not kept (an
    /// empty reference) rather than growing the arena on the request path; `s` is cut
    /// to 64 KiB.
    pub fn push_bytes(&mut self, s: &[u8]) -> TextRef {
        let s = &s[..s.len().min(u16::MAX as usize)];
        match self.push_block(s) {
            Some(start) if !s.is_empty() => TextRef {
                start,
                len: s.len() as u32,
            },
            _ => TextRef::EMPTY,
        }
    }

    /// [`Self::push_bytes`] of a string.
    pub fn push_text(&mut self, s: &str) -> TextRef {
        self.push_bytes(s.as_bytes())
    }

    /// Whether another span may not fit: `spans` spans, or the arena three quarters
    /// full (the wire room grows as its spans need).
    pub fn is_full(&self, spans: usize) -> bool {
        self.span_count() >= spans || self.text.len() * 4 >= self.text.capacity() * 3
    }

    pub fn is_empty(&self) -> bool {
        self.span_count() == 0
    }

    /// Forgets the spans, keeping the capacity (the wire room is written over).
    pub fn clear(&mut self) {
        self.spans.clear();
        self.tags.clear();
        self.text.clear();
        self.wire_len = 0;
        self.wire_spans = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_utf8_unless_a_byte_anywhere_says_otherwise() {
        let text: String = (0..100u8).map(|i| char::from(b'a' + i % 26)).collect();
        for at in [0, 31, 32, 63, 64, 95, 96, 99] {
            let mut batch = SpanBatch::with_capacity(0, 1, 128);
            batch.push_text(&text);
            assert!(batch.arena().is_utf8());
            batch.text[at] = 0xC3;
            assert!(!batch.arena().is_utf8(), "{at}");
        }
        let mut batch = SpanBatch::with_capacity(0, 1, 64);
        batch.push_text("caf\u{e9}");
        assert!(batch.arena().is_utf8(), "UTF-8 beyond ASCII");
        batch.push_bytes(b"\xff");
        assert!(!batch.arena().is_utf8());
    }

    #[test]
    fn a_part_of_a_piece_stays_within_it() {
        let mut batch = SpanBatch::with_capacity(0, 1, 64);
        batch.push_text("x");
        let authority = batch.push_text("[::1]:8080");
        assert_eq!(batch.text(authority.part(1, 3)), "::1");
        assert_eq!(batch.text(authority.part(6, 99)), "8080", "clamped");
        assert!(authority.part(99, 1).is_empty());
        assert!(TextRef::EMPTY.part(0, 5).is_empty());
    }

    #[test]
    fn text_is_kept_within_the_arena_and_never_grows_it() {
        let mut batch = SpanBatch::with_capacity(0, 4, 16);
        let a = batch.push_text("GET");
        let b = batch.push_bytes(b"/orders");
        assert_eq!((batch.text(a), batch.text(b)), ("GET", "/orders"));
        let base = batch.push_block(b"ab\xff").unwrap();
        assert_eq!(batch.text(TextRef::in_block(base, (0, 2))), "ab");
        assert_eq!(batch.text(TextRef::in_block(base, (1, 2))), "", "not UTF-8");
        assert!(TextRef::in_block(base, (2, 0)).is_empty());
        let lost = TextRef::in_block(TextRef::NO_BLOCK, (1, 2));
        assert_eq!((batch.text(lost), batch.bytes(lost)), ("", &b""[..]));
        assert_eq!(batch.arena().short(lost), None);
        let mut wide = SpanBatch::with_capacity(0, 1, 256);
        let a = wide.push_text("GET");
        let b = wide.push_text(&"x".repeat(20));
        assert_eq!(
            wide.arena().short(a),
            None,
            "fewer than WINDOW bytes from its start"
        );
        let c = wide.push_text(&"y".repeat(WINDOW + 1));
        assert_eq!(
            wide.arena().short(a).map(|(w, n)| &w[..n]),
            Some(&b"GET"[..])
        );
        assert_eq!(wide.arena().short(b).map(|(_, n)| n), Some(20));
        assert_eq!(wide.arena().short(c), None, "longer than WINDOW");
        assert_eq!(wide.arena().short(TextRef::EMPTY), None);
        assert_eq!(batch.push_text("far too long for it"), TextRef::EMPTY);
        assert_eq!(batch.push_block(b"far too long for it"), None);
        assert_eq!(batch.text.capacity(), 16);
        assert!(batch.is_full(4) == (batch.text.len() * 4 >= 48));
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(batch.text(a), "");
    }
}
