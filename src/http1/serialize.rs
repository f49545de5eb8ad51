//! Head write-back as segments for one vectored write.
//!
//! A forwarded head is the received start line and field lines (spans of the receive
//! buffer) interleaved with the overlay's owned lines. Adjacent untouched spans are
//! merged, so an unmodified head is exactly one segment and each removal or
//! replacement adds at most two: the iovec count stays proportional to the number of
//! changes, not of headers. Output goes into a caller-owned `Vec<Segment>` that
//! borrows the overlay; a `Segment::Original` is resolved against the buffer with
//! [`Segment::bytes`] when the iovecs are built.
//!
//! Because the parsers only accept CRLF line endings (bare LF is rejected, never
//! rewritten), an empty overlay reproduces the received head byte for byte, minus any
//! leading empty lines before the request line.

use super::header::HeaderEntry;
use super::overlay::{Edit, Overlay};
use super::span::Span;

/// One piece of a head being written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Bytes of the receive buffer, relative to the start of the head.
    Original(Span),
    /// Bytes the overlay owns.
    Owned(&'a [u8]),
}

impl<'a> Segment<'a> {
    /// The bytes of this segment; `buf` is the buffer the head was parsed from.
    pub fn bytes<'s>(&self, buf: &'s [u8]) -> &'s [u8]
    where
        'a: 's,
    {
        match self {
            Segment::Original(span) => span.get(buf),
            Segment::Owned(bytes) => bytes,
        }
    }
}

/// Appends the bytes of `segments` to `out` (for tests and for callers that want one
/// contiguous head rather than a vectored write).
pub fn concat(segments: &[Segment<'_>], buf: &[u8], out: &mut Vec<u8>) {
    for s in segments {
        out.extend_from_slice(s.bytes(buf));
    }
}

/// Emits `start_line`, the headers with `overlay` applied, added lines, and the blank
/// line `end` (the head's final CRLF).
pub(crate) fn write_head<'a>(
    start_line: Span,
    headers: &[HeaderEntry],
    end: Span,
    overlay: &'a Overlay,
    out: &mut impl Sink<'a>,
) {
    let mut run: Option<Span> = None;
    original(out, &mut run, start_line);
    for (i, h) in headers.iter().enumerate() {
        match overlay.edit(i) {
            None => original(out, &mut run, h.line),
            Some(Edit::Remove) => {}
            Some(Edit::Replace(line)) => {
                flush(&mut run, out);
                out.push(Segment::Owned(overlay.line(line)));
            }
        }
    }
    for line in overlay.added() {
        flush(&mut run, out);
        out.push(Segment::Owned(line));
    }
    original(out, &mut run, end);
    flush(&mut run, out);
}

/// Where write-back goes: a list of segments (for a vectored write), or straight into
/// a byte buffer (for a proxy that copies the head into its write chunk).
pub(crate) trait Sink<'a> {
    fn push(&mut self, segment: Segment<'a>);
}

impl<'a> Sink<'a> for Vec<Segment<'a>> {
    fn push(&mut self, segment: Segment<'a>) {
        Vec::push(self, segment);
    }
}

/// Appends each segment's bytes, resolved against `buf`, to `out`.
pub(crate) struct ByteSink<'b> {
    pub buf: &'b [u8],
    pub out: &'b mut Vec<u8>,
}

impl<'a> Sink<'a> for ByteSink<'_> {
    fn push(&mut self, segment: Segment<'a>) {
        self.out.extend_from_slice(segment.bytes(self.buf));
    }
}

/// Extends the current run of original bytes, or starts a new one.
fn original<'a>(out: &mut impl Sink<'a>, run: &mut Option<Span>, span: Span) {
    match run {
        Some(r) if r.end == span.start => r.end = span.end,
        _ => {
            if let Some(r) = run.replace(span) {
                out.push(Segment::Original(r));
            }
        }
    }
}

fn flush<'a>(run: &mut Option<Span>, out: &mut impl Sink<'a>) {
    if let Some(r) = run.take() {
        out.push(Segment::Original(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(start: usize, end: usize) -> HeaderEntry {
        HeaderEntry {
            line: Span::new(start, end),
            ..HeaderEntry::default()
        }
    }

    const HEAD: &[u8] = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";

    fn run(overlay: &Overlay) -> (Vec<Segment<'_>>, Vec<u8>) {
        let headers = [entry(16, 22), entry(22, 28), entry(28, 34)];
        let mut segs = Vec::new();
        write_head(
            Span::new(0, 16),
            &headers,
            Span::new(34, 36),
            overlay,
            &mut segs,
        );
        let mut out = Vec::new();
        concat(&segs, HEAD, &mut out);
        (segs, out)
    }

    #[test]
    fn unchanged_head_is_one_segment() {
        let o = Overlay::new();
        let (segs, out) = run(&o);
        assert_eq!(segs, vec![Segment::Original(Span::new(0, 36))]);
        assert_eq!(out, HEAD);
    }

    #[test]
    fn a_byte_sink_writes_the_same_bytes() {
        let mut o = Overlay::new();
        o.remove(0);
        o.add(b"D", b"4").unwrap();
        let headers = [entry(16, 22), entry(22, 28), entry(28, 34)];
        let mut out = b"POST /x HTTP/1.1\r\n".to_vec();
        let mut sink = ByteSink {
            buf: HEAD,
            out: &mut out,
        };
        write_head(
            Span::new(16, 16),
            &headers,
            Span::new(34, 36),
            &o,
            &mut sink,
        );
        assert_eq!(out, b"POST /x HTTP/1.1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
    }

    #[test]
    fn changes_are_interleaved() {
        let mut o = Overlay::new();
        o.remove(1);
        o.replace(2, b"C", b"33").unwrap();
        o.add(b"D", b"4").unwrap();
        let (segs, out) = run(&o);
        assert_eq!(out, b"GET / HTTP/1.1\r\nA: 1\r\nC: 33\r\nD: 4\r\n\r\n");
        assert_eq!(segs.len(), 4);
    }
}
