//! Finished spans as workers record them and the exporter reads them.
//!
//! Design: a worker writes spans into a [`SpanBatch`] it owns: fixed-size records whose
//! text (names, addresses, tags) lives in one byte arena of the batch, so recording
//! a span copies a few hundred bytes and allocates nothing once the batch's vectors
//! have grown to their capacity. A request's text goes in as one block
//! ([`SpanBatch::push_block`]) that its spans share; the arena holds bytes as received
//! (a header value need not be UTF-8) and the exporter reads each piece as UTF-8, an
//! invalid one as absent ([`SpanBatch::text`]), so the worker validates nothing. A
//! full or timed-out batch goes to the exporter thread whole (one channel send); the
//! exporter hands the emptied batch back, so batches circulate instead of being
//! reallocated. Nothing here refers to the worker's
//! snapshot: a batch is `Send`.

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
        }
    }

    /// The text of `r`: empty for a piece that is not UTF-8, or for a reference from
    /// another batch's arena that does not fit this one.
    pub fn text(&self, r: TextRef) -> &str {
        let start = r.start as usize;
        self.text
            .get(start..start + r.len as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    /// The bytes of `r`, as pushed (the exporter takes them as they are once
    /// [`Self::is_utf8`] said the whole arena is UTF-8).
    pub fn bytes(&self, r: TextRef) -> &[u8] {
        let start = r.start as usize;
        self.text
            .get(start..start + r.len as usize)
            .unwrap_or_default()
    }

    /// A piece of 1 to 16 bytes with the 16 bytes of the arena from its start (its
    /// bytes and whatever follows them), when there are 16: the exporter copies it as
    /// one fixed-size move of the window, after one lookup.
    #[inline]
    pub fn short(&self, r: TextRef) -> Option<(&[u8; 16], usize)> {
        let len = r.len as usize;
        if !(1..=16).contains(&len) {
            return None;
        }
        let start = r.start as usize;
        let window = self.text.get(start..start + 16)?.try_into().ok()?;
        Some((window, len))
    }

    /// Whether the whole arena is UTF-8, so that every piece is (pieces are whole
    /// fields, or cut at a character boundary): one pass over the batch instead of one
    /// per piece.
    pub fn is_utf8(&self) -> bool {
        // ASCII first (nearly every batch: header values and names): std's check is
        // about half the instructions a byte of `from_utf8`'s.
        self.text.is_ascii() || std::str::from_utf8(&self.text).is_ok()
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

    /// Whether another span may not fit: `spans` records, or the arena three quarters
    /// full.
    pub fn is_full(&self, spans: usize) -> bool {
        self.spans.len() >= spans || self.text.len() * 4 >= self.text.capacity() * 3
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Forgets the spans, keeping the capacity.
    pub fn clear(&mut self) {
        self.spans.clear();
        self.tags.clear();
        self.text.clear();
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
            assert!(batch.is_utf8());
            batch.text[at] = 0xC3;
            assert!(!batch.is_utf8(), "{at}");
        }
        let mut batch = SpanBatch::with_capacity(0, 1, 64);
        batch.push_text("caf\u{e9}");
        assert!(batch.is_utf8(), "UTF-8 beyond ASCII");
        batch.push_bytes(b"\xff");
        assert!(!batch.is_utf8());
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
        assert_eq!(batch.short(lost), None);
        let mut wide = SpanBatch::with_capacity(0, 1, 64);
        let a = wide.push_text("GET");
        assert_eq!(wide.short(a), None, "fewer than 16 bytes from its start");
        let b = wide.push_text(&"x".repeat(20));
        assert_eq!(wide.short(a).map(|(w, n)| &w[..n]), Some(&b"GET"[..]));
        assert_eq!(wide.short(b), None, "longer than 16");
        assert_eq!(wide.short(TextRef::EMPTY), None);
        assert_eq!(batch.push_text("far too long for it"), TextRef::EMPTY);
        assert_eq!(batch.push_block(b"far too long for it"), None);
        assert_eq!(batch.text.capacity(), 16);
        assert!(batch.is_full(4) == (batch.text.len() * 4 >= 48));
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(batch.text(a), "");
    }
}
