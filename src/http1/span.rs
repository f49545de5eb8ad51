//! Byte ranges into the receive buffer.
//!
//! Parsed messages hold offsets, never copies: a `Span` is two `u32`s (8 bytes, versus
//! 16 for a `Range<usize>`), which keeps `HeaderEntry` at 28 bytes and the header
//! vector small. Offsets are relative to the first byte of the head, so the buffer
//! may move (e.g. be compacted) between parsing and use as long as the head bytes are
//! kept together. Heads are capped far below 4 GiB (`limits::HARD_MAX_HEAD`).

use core::ops::Range;

/// A half-open byte range `start..end` relative to the start of the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// The empty span at 0.
    pub const EMPTY: Span = Span { start: 0, end: 0 };

    /// A span from `usize` offsets. Callers guarantee `end <= HARD_MAX_HEAD`; anything
    /// larger saturates, so `get` then yields `b""` rather than panicking.
    pub(crate) fn new(start: usize, end: usize) -> Span {
        let start = u32::try_from(start).unwrap_or(u32::MAX);
        let end = u32::try_from(end).unwrap_or(u32::MAX);
        Span { start, end }
    }

    /// The bytes of this span in `buf`, or `b""` if it is out of range (never panics).
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    /// Length in bytes (0 for an inverted span).
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    /// Whether the span covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// As a `Range<usize>`.
    pub fn range(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Offset of `part` inside `whole`, for slices `httparse` returned out of `whole`.
/// Pointer arithmetic on addresses only (no unsafe): `part` always lies within `whole`.
pub(crate) fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

/// The span of `part` (a subslice of `whole`) inside `whole`.
pub(crate) fn span_of(whole: &[u8], part: &[u8]) -> Span {
    let start = offset_in(whole, part);
    Span::new(start, start.saturating_add(part.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_never_panics() {
        let buf = b"hello";
        assert_eq!(Span::new(1, 3).get(buf), b"el");
        assert_eq!(Span::new(3, 10).get(buf), b"");
        assert_eq!(Span { start: 4, end: 2 }.get(buf), b"");
        assert_eq!(Span { start: 4, end: 2 }.len(), 0);
        assert!(Span::EMPTY.is_empty());
    }

    #[test]
    fn span_of_subslice() {
        let buf = b"GET / HTTP/1.1";
        let part = &buf[4..5];
        assert_eq!(span_of(buf, part), Span::new(4, 5));
        assert_eq!(span_of(buf, part).get(buf), b"/");
    }
}
