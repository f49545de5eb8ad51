//! Chunked transfer coding (RFC 9112 7.1): a decoder that never buffers payload and an
//! encoder that only generates size lines.
//!
//! The decoder is a byte-level state machine over the framing bytes (size lines,
//! CRLFs, trailers) and reports payload as ranges of the input slice, so the proxy
//! forwards body bytes straight out of its receive buffers. `httparse` has a chunk-size
//! parser, but it accepts bare LF and any bytes in extensions; smuggling attacks live
//! exactly there, so extensions are checked against the grammar here:
//! `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`. Whitespace
//! after the size is allowed only before a `;`. Sizes are at most 16 hex digits.
//! Extensions are dropped on re-framing (their meaning is hop-by-hop).
//!
//! Trailers are the one thing the decoder stores: the trailer section may straddle
//! reads and is small and rare, so valid lines are copied into an owned buffer
//! (capacity kept across `reset`), at most `max_trailer_section` bytes. Fields that
//! must not appear in trailers (framing, routing, auth, content metadata: RFC 9110
//! 6.5.1) are dropped; the rest are kept verbatim, each ending in CRLF, readable with
//! [`ChunkedDecoder::trailers`] once [`ChunkEvent::Trailers`] or `Done` is reported.

use core::ops::Range;

use super::error::{ErrorKind, ParseError};
use super::head::find_lf;
use super::header::{is_field_vchar, is_tchar, is_token, trim_ows};
use super::limits::Limits;

/// What one `decode` call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkEvent {
    /// Payload bytes: this range of the input slice passed to `decode`.
    Data(Range<usize>),
    /// The trailer section ended and kept at least one field: see
    /// [`ChunkedDecoder::trailers`]. `Done` follows on the next call.
    Trailers,
    /// The body is complete; the input after `consumed` is the next message.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of the chunk size.
    Size,
    /// Whitespace after the size or a value: only `;` may follow.
    ExtBws,
    /// After `;`: whitespace, then a name.
    ExtNameStart,
    ExtName,
    /// Whitespace after a name: `=` or `;` must follow.
    ExtAfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtValueStart,
    ExtToken,
    ExtQuoted,
    ExtQuotedEscape,
    /// After a closing quote.
    ExtAfterQuoted,
    /// CR of the size line seen.
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// Inside the trailer section.
    Trailer,
    /// Trailers reported; `Done` next.
    TrailersReported,
    Done,
}

/// Decodes a chunked body. Reusable via [`ChunkedDecoder::reset`].
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Current chunk size, then the payload bytes still to come.
    size: u64,
    digits: u8,
    ext_total: usize,
    max_ext: usize,
    max_trailers: usize,
    trailer_total: usize,
    /// Kept trailer lines, then (from `line_start`) the line being received.
    trailers: Vec<u8>,
    line_start: usize,
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            ext_total: 0,
            max_ext: limits.max_chunk_extension,
            max_trailers: limits.max_trailer_section,
            trailer_total: 0,
            trailers: Vec::new(),
            line_start: 0,
        }
    }

    /// Back to the start of a body, keeping the trailer buffer's capacity.
    pub fn reset(&mut self) {
        let mut trailers = core::mem::take(&mut self.trailers);
        trailers.clear();
        *self = ChunkedDecoder {
            trailers,
            ..ChunkedDecoder::new(&Limits {
                max_chunk_extension: self.max_ext,
                max_trailer_section: self.max_trailers,
                ..Limits::default()
            })
        };
    }

    /// Whether the whole body, trailers included, was decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The kept trailer lines (each `name: value\r\n`), complete once `Trailers` or
    /// `Done` was reported. Empty if there were none.
    pub fn trailers(&self) -> &[u8] {
        if matches!(self.state, State::Done | State::TrailersReported) {
            &self.trailers
        } else {
            &[]
        }
    }

    /// Decodes from the start of `input`, stopping at the first event. Returns the
    /// bytes consumed (always all of `input` when the event is `None`) and the event.
    /// Call again with the unconsumed rest while events come back.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<ChunkEvent>), ParseError> {
        let mut pos = 0;
        while pos < input.len() || matches!(self.state, State::Done | State::TrailersReported) {
            match self.state {
                State::Done => return Ok((pos, Some(ChunkEvent::Done))),
                State::TrailersReported => {
                    self.state = State::Done;
                    return Ok((pos, Some(ChunkEvent::Done)));
                }
                State::Data => {
                    let available = (input.len() - pos) as u64;
                    let n = self.size.min(available) as usize;
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok((pos + n, Some(ChunkEvent::Data(pos..pos + n))));
                }
                State::Trailer => {
                    let (used, event) = self.trailer(input.get(pos..).unwrap_or_default())?;
                    pos += used;
                    if event.is_some() {
                        return Ok((pos, event));
                    }
                }
                _ => {
                    let b = input.get(pos).copied().unwrap_or_default();
                    pos += 1;
                    self.framing_byte(b)?;
                }
            }
        }
        Ok((pos, None))
    }

    /// One byte of a size line or of the CRLF after data.
    fn framing_byte(&mut self, b: u8) -> Result<(), ParseError> {
        use State::*;
        let ws = b == b' ' || b == b'\t';
        if matches!(
            self.state,
            ExtBws
                | ExtNameStart
                | ExtName
                | ExtAfterName
                | ExtValueStart
                | ExtToken
                | ExtQuoted
                | ExtQuotedEscape
                | ExtAfterQuoted
        ) || (self.state == Size && (ws || b == b';'))
        {
            self.ext_total += 1;
            if self.ext_total > self.max_ext {
                return Err(ErrorKind::ChunkExtensionTooLong.into());
            }
        }
        let bad_ext = ParseError::new(ErrorKind::InvalidChunkExtension);
        self.state = match (self.state, b) {
            (Size, _) if b.is_ascii_hexdigit() => {
                if self.digits == 16 {
                    return Err(ErrorKind::InvalidChunkSize.into());
                }
                self.digits += 1;
                // 16 digits cannot overflow a u64.
                self.size = (self.size << 4) | u64::from(hex_value(b));
                Size
            }
            (Size, _) if self.digits == 0 => return Err(ErrorKind::InvalidChunkSize.into()),
            (Size, b'\r') => SizeLf,
            (Size, b';') => ExtNameStart,
            (Size, _) if ws => ExtBws,
            (Size, _) => return Err(ErrorKind::InvalidChunkSize.into()),
            (ExtBws, b';')
            | (ExtName, b';')
            | (ExtAfterName, b';')
            | (ExtToken, b';')
            | (ExtAfterQuoted, b';') => ExtNameStart,
            (ExtBws | ExtNameStart | ExtAfterName | ExtValueStart, _) if ws => self.state,
            (ExtNameStart | ExtName, _) if is_tchar(b) => ExtName,
            (ExtName, _) if ws => ExtAfterName,
            (ExtName | ExtAfterName, b'=') => ExtValueStart,
            (ExtValueStart, b'"') => ExtQuoted,
            (ExtValueStart | ExtToken, _) if is_tchar(b) => ExtToken,
            (ExtToken | ExtAfterQuoted, _) if ws => ExtBws,
            (ExtName | ExtToken | ExtAfterQuoted, b'\r') => SizeLf,
            (ExtQuoted, b'"') => ExtAfterQuoted,
            (ExtQuoted, b'\\') => ExtQuotedEscape,
            (ExtQuoted | ExtQuotedEscape, _) if is_field_vchar(b) => ExtQuoted,
            (
                ExtBws | ExtNameStart | ExtName | ExtAfterName | ExtValueStart | ExtToken
                | ExtQuoted | ExtQuotedEscape | ExtAfterQuoted,
                _,
            ) => return Err(bad_ext),
            (SizeLf, b'\n') if self.size == 0 => Trailer,
            (SizeLf, b'\n') => Data,
            (SizeLf, _) => return Err(ErrorKind::LineEnding.into()),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => {
                self.digits = 0;
                Size
            }
            (DataCr | DataLf, _) => return Err(ErrorKind::InvalidChunkData.into()),
            (Data | Trailer | TrailersReported | Done, _) => self.state,
        };
        Ok(())
    }

    /// Trailer section bytes: collects up to the next LF, then judges the line.
    fn trailer(&mut self, input: &[u8]) -> Result<(usize, Option<ChunkEvent>), ParseError> {
        let (take, complete) = match find_lf(input) {
            Some(i) => (i + 1, true),
            None => (input.len(), false),
        };
        self.trailer_total += take;
        if self.trailer_total > self.max_trailers {
            return Err(ErrorKind::TrailersTooLarge.into());
        }
        // The blank line that ends the section, whole in `input` with nothing pending: it
        // is judged in place, so a body without trailers never grows the trailer buffer.
        if complete && self.trailers.len() == self.line_start && input.starts_with(b"\r\n") {
            return Ok((take, Some(self.end_of_trailers())));
        }
        self.trailers
            .extend_from_slice(input.get(..take).unwrap_or_default());
        if !complete {
            return Ok((take, None));
        }
        let line = self.trailers.get(self.line_start..).unwrap_or_default();
        let Some(content) = line.strip_suffix(b"\r\n") else {
            return Err(ErrorKind::LineEnding.into());
        };
        if content.is_empty() {
            return Ok((take, Some(self.end_of_trailers())));
        }
        let colon = content.iter().position(|&b| b == b':');
        let (name, value) = match colon {
            Some(c) => (
                content.get(..c).unwrap_or_default(),
                content.get(c + 1..).unwrap_or_default(),
            ),
            None => return Err(ErrorKind::InvalidTrailer.into()),
        };
        if !is_token(name) || !trim_ows(value).iter().all(|&b| is_field_vchar(b)) {
            return Err(ErrorKind::InvalidTrailer.into());
        }
        if is_forbidden_trailer(name) {
            self.trailers.truncate(self.line_start);
        }
        self.line_start = self.trailers.len();
        Ok((take, None))
    }

    /// The blank line after the trailers: `Done` without kept trailers, else
    /// `Trailers` (then `Done` on the next call).
    fn end_of_trailers(&mut self) -> ChunkEvent {
        self.trailers.truncate(self.line_start);
        if self.trailers.is_empty() {
            self.state = State::Done;
            ChunkEvent::Done
        } else {
            self.state = State::TrailersReported;
            ChunkEvent::Trailers
        }
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// Fields a trailer must not carry (RFC 9110 6.5.1), or that are hop-by-hop.
fn is_forbidden_trailer(name: &[u8]) -> bool {
    const FORBIDDEN: &[&str] = &[
        "content-length",
        "transfer-encoding",
        "host",
        "trailer",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "expect",
        "max-forwards",
        "cache-control",
        "range",
        "authorization",
        "proxy-authorization",
        "proxy-authenticate",
        "www-authenticate",
        "set-cookie",
        "cookie",
        "content-encoding",
        "content-type",
        "content-range",
        "age",
        "expires",
        "date",
        "location",
        "retry-after",
        "vary",
        "warning",
        "pragma",
    ];
    let lower_prefix = name
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"if-"));
    lower_prefix
        || FORBIDDEN
            .iter()
            .any(|f| name.eq_ignore_ascii_case(f.as_bytes()))
}

/// Re-framing: the bytes the proxy writes around forwarded payload ranges. For each
/// `Data` range of n bytes: `size_line(n)`, the payload, [`ChunkedEncoder::CHUNK_END`];
/// at the end: [`ChunkedEncoder::LAST_CHUNK`], the decoder's trailers, and
/// [`ChunkedEncoder::END`]. Stateless, so it is a unit struct of associated items.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChunkedEncoder;

impl ChunkedEncoder {
    /// After each chunk's payload.
    pub const CHUNK_END: &'static [u8] = b"\r\n";
    /// The zero-size chunk that starts the trailer section.
    pub const LAST_CHUNK: &'static [u8] = b"0\r\n";
    /// After the trailer lines.
    pub const END: &'static [u8] = b"\r\n";

    /// `"{n:x}\r\n"` on the stack. `n` must not be 0 (that is the last chunk).
    pub fn size_line(n: u64) -> SizeLine {
        let mut line = SizeLine {
            buf: [0; 18],
            len: 0,
        };
        let digits = (16 - n.leading_zeros() / 4).max(1) as usize;
        for (i, slot) in line.buf.iter_mut().take(digits).enumerate() {
            let shift = 4 * (digits - 1 - i);
            *slot = b"0123456789abcdef"[((n >> shift) & 0xf) as usize];
        }
        if let Some(end) = line.buf.get_mut(digits..digits + 2) {
            end.copy_from_slice(b"\r\n");
        }
        line.len = (digits + 2) as u8;
        line
    }
}

/// A chunk size line, `hex CRLF`, at most 18 bytes, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLine {
    buf: [u8; 18],
    len: u8,
}

impl AsRef<[u8]> for SizeLine {
    fn as_ref(&self) -> &[u8] {
        self.buf.get(..self.len as usize).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes: payload, trailers, bytes used.
    fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>, usize), ErrorKind> {
        crate::http1::fuzzing::decode_all(input, step, &Limits::default())
    }

    #[test]
    fn decodes_whatever_the_split() {
        let body = b"5\r\nhello\r\n6;a=b ; c=\"x\\\"y\"\r\n world\r\n0\r\nX-Sum: 1\r\nContent-Length: 9\r\n\r\nNEXT";
        for step in 1..=body.len() {
            let (payload, trailers, used) = decode(body, step).unwrap();
            assert_eq!(payload, b"hello world", "step {step}");
            assert_eq!(trailers, b"X-Sum: 1\r\n");
            assert_eq!(&body[used..], b"NEXT");
        }
    }

    #[test]
    fn a_body_without_trailers_keeps_no_trailer_bytes() {
        let body = b"3\r\nabc\r\n0\r\n\r\nNEXT";
        let mut d = ChunkedDecoder::new(&Limits::default());
        let mut pos = 0;
        while !d.is_done() {
            let (used, _) = d.decode(&body[pos..]).unwrap();
            pos += used;
        }
        assert_eq!(&body[pos..], b"NEXT");
        assert!(d.trailers().is_empty());
        assert_eq!(d.trailers.capacity(), 0, "the blank line was copied");
        // Split before the blank line's LF: it is collected like any partial line.
        for step in 1..body.len() {
            let (payload, trailers, used) = decode(body, step).unwrap();
            assert_eq!(
                (payload.as_slice(), trailers.as_slice()),
                (&b"abc"[..], &b""[..])
            );
            assert_eq!(&body[used..], b"NEXT", "step {step}");
        }
    }

    #[test]
    fn extensions() {
        for ok in [
            "1;a\r\nx\r\n0\r\n\r\n",
            "1 ;a\r\nx\r\n0\r\n\r\n",
            "1;a=b;c\r\nx\r\n0\r\n\r\n",
            "1; a = \"b c\"\r\nx\r\n0\r\n\r\n",
        ] {
            assert!(decode(ok.as_bytes(), 1).is_ok(), "{ok:?}");
        }
        for bad in [
            "1 \r\nx\r\n0\r\n\r\n",
            "1;\r\nx\r\n",
            "1;a=\r\nx\r\n",
            "1;a b\r\n",
            "1;a=\"b\r\n",
            "1;a=b \r\n",
            "1;a\nx",
            "1;a=\"\x01\"\r\n",
        ] {
            let e = decode(bad.as_bytes(), 1).unwrap_err();
            assert!(
                matches!(e, ErrorKind::InvalidChunkExtension | ErrorKind::LineEnding),
                "{bad:?}: {e:?}"
            );
        }
    }

    #[test]
    fn sizes_and_data() {
        assert_eq!(
            decode(b"g\r\n", 1).unwrap_err(),
            ErrorKind::InvalidChunkSize
        );
        assert_eq!(decode(b"\r\n", 1).unwrap_err(), ErrorKind::InvalidChunkSize);
        assert_eq!(
            decode(b"-1\r\n", 1).unwrap_err(),
            ErrorKind::InvalidChunkSize
        );
        assert_eq!(
            decode(b"0x1\r\n", 1).unwrap_err(),
            ErrorKind::InvalidChunkSize
        );
        assert_eq!(
            decode(b"10000000000000000\r\n", 1).unwrap_err(),
            ErrorKind::InvalidChunkSize
        );
        assert_eq!(
            decode(b"1\nx\r\n", 1).unwrap_err(),
            ErrorKind::InvalidChunkSize
        );
        assert_eq!(
            decode(b"1\r\nxy\r\n0\r\n\r\n", 1).unwrap_err(),
            ErrorKind::InvalidChunkData
        );
        assert_eq!(decode(b"0\r\n\n", 1).unwrap_err(), ErrorKind::LineEnding);
        assert_eq!(
            decode(b"0\r\nbad line\r\n\r\n", 1).unwrap_err(),
            ErrorKind::InvalidTrailer
        );
        assert_eq!(
            decode(b"0\r\n folded: x\r\n\r\n", 1).unwrap_err(),
            ErrorKind::InvalidTrailer
        );
        let mut d = ChunkedDecoder::new(&Limits::default());
        let (n, ev) = d.decode(b"FfFfFfFfFfFfFfFf\r\nab").unwrap();
        assert_eq!((n, ev), (20, Some(ChunkEvent::Data(18..20))));
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_chunk_extension: 4,
            max_trailer_section: 10,
            ..Limits::default()
        };
        let mut d = ChunkedDecoder::new(&limits);
        assert_eq!(
            d.decode(b"1;abcd").unwrap_err().kind(),
            ErrorKind::ChunkExtensionTooLong
        );
        let mut d = ChunkedDecoder::new(&limits);
        assert_eq!(
            d.decode(b"0\r\nX-Long: 12345\r\n").unwrap_err().kind(),
            ErrorKind::TrailersTooLarge
        );
    }

    #[test]
    fn reset_keeps_limits() {
        let limits = Limits {
            max_chunk_extension: 4,
            ..Limits::default()
        };
        let mut d = ChunkedDecoder::new(&limits);
        assert_eq!(d.decode(b"0\r\n\r\n").unwrap(), (5, Some(ChunkEvent::Done)));
        assert!(d.is_done());
        d.reset();
        assert!(!d.is_done());
        assert_eq!(
            d.decode(b"1;abcd").unwrap_err().kind(),
            ErrorKind::ChunkExtensionTooLong
        );
    }

    #[test]
    fn size_lines() {
        let s = |n| ChunkedEncoder::size_line(n).as_ref().to_vec();
        assert_eq!(s(1), b"1\r\n");
        assert_eq!(s(0x1000), b"1000\r\n");
        assert_eq!(s(255), b"ff\r\n");
        assert_eq!(s(u64::MAX), b"ffffffffffffffff\r\n");
    }
}
