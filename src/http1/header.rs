//! Header fields as spans, plus the byte-class and name predicates the parsers share.
//!
//! A [`HeaderEntry`] records where a field's name, value and whole line sit in the
//! buffer. Readers go through [`HeaderEntry::name`] / [`HeaderEntry::value`] rather
//! than the raw spans, so that an HTTP/2 front end (HPACK decodes into owned bytes)
//! can later store its fields in a side arena and have spans index into that arena
//! instead: the accessors take "the bytes the spans point into", whatever owns them.
//!
//! Known names are matched by length first, then ASCII-case-insensitively a word at a
//! time ([`FieldName`]): the codec classifies every field of every head, requests and
//! responses, twice for a request's (parse and hop-by-hop stripping), and a byte loop
//! that lower-cased both sides cost about 340 instructions per proxied request.
//!
//! A request also keeps the set of its field names' lengths ([`NameLengths`]): most
//! lookups on the request path are for fields a request does not carry
//! (`x-forwarded-proto`, `x-request-id`, a trace context…), and a name whose length no
//! field has is then known absent from one bit, without a pass over the fields.

use super::span::Span;

/// The lengths of a head's field names, as a set (bit `min(len, 31)`): filled by the
/// parser, four instructions a field. A length that is not in it means no field of
/// that length, so of any name that long, came; one that is in it says only "maybe"
/// (names of 31 bytes and more share a bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NameLengths(u32);

impl NameLengths {
    pub const EMPTY: NameLengths = NameLengths(0);

    /// The set of `lengths` (for names known at compile time, e.g. a group of fields
    /// to look for: see [`Self::may_have_any`]).
    pub const fn of(lengths: &[usize]) -> NameLengths {
        let mut bits = 0;
        let mut i = 0;
        while i < lengths.len() {
            bits |= NameLengths::bit(lengths[i]);
            i += 1;
        }
        NameLengths(bits)
    }

    #[inline]
    const fn bit(len: usize) -> u32 {
        1 << if len < 31 { len } else { 31 }
    }

    #[inline]
    pub fn insert(&mut self, len: usize) {
        self.0 |= NameLengths::bit(len);
    }

    /// Whether a name `len` bytes long may be among the fields.
    #[inline]
    pub fn may_have(self, len: usize) -> bool {
        self.0 & NameLengths::bit(len) != 0
    }

    /// Whether a name of any of `lengths` may be among the fields.
    #[inline]
    pub fn may_have_any(self, lengths: NameLengths) -> bool {
        self.0 & lengths.0 != 0
    }
}

/// One received header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderEntry {
    /// The field name.
    pub name: Span,
    /// The field value, without leading and trailing whitespace.
    pub value: Span,
    /// The whole field line, CRLF included: what write-back forwards unchanged.
    pub line: Span,
    /// A hop-by-hop field by definition (Connection, Keep-Alive, Proxy-Connection, TE,
    /// Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate, Proxy-Authorization).
    /// Fields named in Connection are only found by `strip_hop_by_hop`.
    pub hop_by_hop: bool,
}

impl HeaderEntry {
    /// The name bytes in `buf`.
    pub fn name<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.name.get(buf)
    }

    /// The value bytes in `buf`.
    pub fn value<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.value.get(buf)
    }

    /// Whether the name equals `name`, ignoring ASCII case.
    pub fn is(&self, buf: &[u8], name: &str) -> bool {
        self.name(buf).eq_ignore_ascii_case(name.as_bytes())
    }
}

/// Header names the codec acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    ContentLength,
    TransferEncoding,
    Host,
    Connection,
    Expect,
    /// `Date`: a proxy adds one to a response that has none (RFC 9110 6.6.1).
    Date,
    /// Hop-by-hop by definition, with no other meaning to the codec.
    HopByHop,
    /// `Upgrade`: hop-by-hop, and what a protocol switch asks for.
    Upgrade,
    Other,
}

pub(crate) fn classify(name: &[u8]) -> Known {
    match name.len() {
        2 if const { FieldName::new("te") }.matches(name) => Known::HopByHop,
        4 if const { FieldName::new("host") }.matches(name) => Known::Host,
        4 if const { FieldName::new("date") }.matches(name) => Known::Date,
        6 if const { FieldName::new("expect") }.matches(name) => Known::Expect,
        7 if const { FieldName::new("trailer") }.matches(name) => Known::HopByHop,
        7 if const { FieldName::new("upgrade") }.matches(name) => Known::Upgrade,
        10 if const { FieldName::new("connection") }.matches(name) => Known::Connection,
        10 if const { FieldName::new("keep-alive") }.matches(name) => Known::HopByHop,
        14 if const { FieldName::new("content-length") }.matches(name) => Known::ContentLength,
        16 if const { FieldName::new("proxy-connection") }.matches(name) => Known::HopByHop,
        17 if const { FieldName::new("transfer-encoding") }.matches(name) => {
            Known::TransferEncoding
        }
        18 if const { FieldName::new("proxy-authenticate") }.matches(name) => Known::HopByHop,
        19 if const { FieldName::new("proxy-authorization") }.matches(name) => Known::HopByHop,
        _ => Known::Other,
    }
}

/// A lower-case field name (at most 24 bytes) prepared at compile time for comparisons
/// that ignore ASCII case: its bytes as up to three little-endian words, read at fixed
/// offsets (the last one overlapping), and per word a mask with the case bit (0x20)
/// at each letter. A name compared is read at the same offsets, the mask or-ed in, and
/// the words compared: `b | 0x20 == c` holds for a letter `c` exactly when `b` is `c`
/// or its upper case, and every other byte is compared as it is. A few loads and
/// compares, where a byte loop lower-casing both sides took four instructions a byte.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldName {
    len: usize,
    words: [u64; 3],
    fold: [u64; 3],
}

impl FieldName {
    /// `lower`: lower-case letters, digits and token characters, 1 to 24 bytes (a
    /// longer or upper-case one fails the build where it is a constant).
    pub(crate) const fn new(lower: &str) -> FieldName {
        let bytes = lower.as_bytes();
        let len = bytes.len();
        assert!(len >= 1 && len <= 24, "a field name of 1 to 24 bytes");
        let at = word_offsets(len);
        let mut words = [0u64; 3];
        let mut fold = [0u64; 3];
        let mut w = 0;
        while w < 3 {
            let mut i = 0;
            while i < 8 && at[w] + i < len {
                let c = bytes[at[w] + i];
                assert!(!c.is_ascii_uppercase(), "a lower-case field name");
                words[w] |= (c as u64) << (8 * i);
                if c.is_ascii_lowercase() {
                    fold[w] |= 0x20 << (8 * i);
                }
                i += 1;
            }
            w += 1;
        }
        FieldName { len, words, fold }
    }

    /// Whether `name` is this name, ignoring ASCII case (`eq_ignore_ascii_case`).
    #[inline(always)]
    pub(crate) fn matches(&self, name: &[u8]) -> bool {
        if name.len() != self.len {
            return false;
        }
        let words = word_offsets(self.len)
            .into_iter()
            .zip(self.fold)
            .zip(self.words);
        words.fold(0, |differ, ((at, fold), word)| {
            differ | ((word_at(name, at) | fold) ^ word)
        }) == 0
    }
}

/// Where a name of `len` bytes is read as words: the first eight bytes, the next eight
/// (past 16), and the last eight (overlapping the others; a shorter name is one word).
const fn word_offsets(len: usize) -> [usize; 3] {
    if len <= 8 {
        [0, 0, 0]
    } else if len <= 16 {
        [0, len - 8, len - 8]
    } else {
        [0, 8, len - 8]
    }
}

/// Up to eight bytes of `name` from `at`, little-endian, zero past its end.
#[inline(always)]
fn word_at(name: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    let end = name.len().min(at + 8);
    if let Some(bytes) = name.get(at..end) {
        if let Some(slot) = word.get_mut(..bytes.len()) {
            slot.copy_from_slice(bytes);
        }
    }
    u64::from_le_bytes(word)
}

/// Whether a field named `name` must never be removed because a Connection header
/// lists it: the framing and routing decisions were already made from them.
pub(crate) fn is_protected(name: &[u8]) -> bool {
    matches!(
        classify(name),
        Known::ContentLength | Known::TransferEncoding | Known::Host
    )
}

/// RFC 9110 5.6.2 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] & TCHAR != 0
}

/// Byte classes by table: the per-byte checks run over every header name and value the
/// proxy adds, and one load beats a chain of range comparisons.
const TCHAR: u8 = 1;
const FIELD_VCHAR: u8 = 2;
const BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let tchar = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        let vchar = c == b'\t' || c == b' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80;
        table[b] = (if tchar { TCHAR } else { 0 }) | (if vchar { FIELD_VCHAR } else { 0 });
        b += 1;
    }
    table
};

/// A non-empty token.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// RFC 9110 5.5 field-value bytes: VCHAR, SP, HTAB, obs-text. No NUL, CR, LF, DEL.
pub(crate) fn is_field_vchar(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] & FIELD_VCHAR != 0
}

/// A field value as the proxy may emit it: field bytes, no surrounding whitespace.
pub(crate) fn is_field_value(v: &[u8]) -> bool {
    v.iter().all(|&b| is_field_vchar(b))
        && !v.first().is_some_and(|b| *b == b' ' || *b == b'\t')
        && !v.last().is_some_and(|b| *b == b' ' || *b == b'\t')
}

/// Splits a comma-separated list value into trimmed elements, skipping empty ones
/// (RFC 9110 5.6.1.2: recipients ignore empty list elements).
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty())
}

/// The `timeout=N` parameter of a `Keep-Alive` field value (as nginx and Node.js send
/// it: how long the server keeps an idle connection), in whole seconds.
pub(crate) fn keep_alive_timeout(value: &[u8]) -> Option<u64> {
    list_items(value).find_map(|param| {
        let eq = param.iter().position(|&b| b == b'=')?;
        let (name, secs) = param.split_at(eq);
        if !trim_ows(name).eq_ignore_ascii_case(b"timeout") {
            return None;
        }
        std::str::from_utf8(trim_ows(secs.get(1..)?))
            .ok()?
            .parse()
            .ok()
    })
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Builds `out` from the fields `httparse` found, checking what it lets through: every
/// line must end in CRLF (it also accepts bare LF). `fields_end` is where the blank line
/// starts. Field lines run from one name to the next, which holds because httparse
/// (with `ignore_invalid_headers` off) skips nothing between them. Returns the set of
/// the names' lengths.
pub(crate) fn collect_fields(
    buf: &[u8],
    parsed: &[httparse::Header<'_>],
    fields_end: usize,
    out: &mut Vec<HeaderEntry>,
) -> Result<NameLengths, super::error::ParseError> {
    use super::span::{offset_in, span_of};
    let mut lengths = NameLengths::EMPTY;
    for (i, h) in parsed.iter().enumerate() {
        lengths.insert(h.name.len());
        let name = span_of(buf, h.name.as_bytes());
        let line_end = match parsed.get(i + 1) {
            Some(next) => offset_in(buf, next.name.as_bytes()),
            None => fields_end,
        };
        let line = Span::new(name.start as usize, line_end);
        if !ends_with_crlf(buf, line_end) {
            return Err(super::error::ErrorKind::LineEnding.into());
        }
        let value = span_of(buf, h.value);
        out.push(HeaderEntry {
            name,
            value,
            line,
            hop_by_hop: false,
        });
    }
    Ok(lengths)
}

/// Whether `buf[..end]` ends in CRLF.
pub(crate) fn ends_with_crlf(buf: &[u8], end: usize) -> bool {
    end >= 2 && buf.get(end - 2..end) == Some(b"\r\n")
}

/// Whether `buf[..end]` is only CRLF pairs (the empty lines allowed before a start line).
pub(crate) fn only_crlfs(buf: &[u8], end: usize) -> bool {
    buf.get(..end)
        .is_some_and(|s| s.len() % 2 == 0 && s.chunks_exact(2).all(|p| p == b"\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_classes_match_the_rfc_grammar() {
        for b in 0..=255u8 {
            let tchar = matches!(b,
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
                | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
                | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
            let vchar = b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80;
            assert_eq!(is_tchar(b), tchar, "{b:#x}");
            assert_eq!(is_field_vchar(b), vchar, "{b:#x}");
        }
    }

    #[test]
    fn classify_is_case_insensitive() {
        assert_eq!(classify(b"CONTENT-length"), Known::ContentLength);
        assert_eq!(classify(b"Transfer-Encoding"), Known::TransferEncoding);
        assert_eq!(classify(b"hOsT"), Known::Host);
        assert_eq!(classify(b"DATE"), Known::Date);
        assert_eq!(classify(b"TE"), Known::HopByHop);
        assert_eq!(classify(b"Keep-Alive"), Known::HopByHop);
        assert_eq!(classify(b"X-Foo"), Known::Other);
        assert!(is_protected(b"content-length"));
        assert!(!is_protected(b"x-foo"));
    }

    /// Every name `classify` knows, against every one-byte change of it in every
    /// position and case: `FieldName::matches` agrees with `eq_ignore_ascii_case`.
    #[test]
    fn field_names_match_as_eq_ignore_ascii_case_does() {
        for lower in [
            "te",
            "host",
            "expect",
            "trailer",
            "keep-alive",
            "content-length",
            "proxy-connection",
            "transfer-encoding",
            "proxy-authorization",
            "x-forwarded-for-24-bytes",
            "a",
        ] {
            let name = FieldName::new(lower);
            let upper = lower.to_ascii_uppercase();
            assert!(name.matches(lower.as_bytes()), "{lower}");
            assert!(name.matches(upper.as_bytes()), "{lower}");
            for i in 0..lower.len() {
                for b in 0..=255u8 {
                    for base in [lower.as_bytes(), upper.as_bytes()] {
                        let mut other = base.to_vec();
                        other[i] = b;
                        assert_eq!(
                            name.matches(&other),
                            other.eq_ignore_ascii_case(lower.as_bytes()),
                            "{lower} {other:?}"
                        );
                    }
                }
            }
            assert!(!name.matches(&lower.as_bytes()[1..]), "{lower}");
            assert!(!name.matches(format!("{lower}x").as_bytes()), "{lower}");
        }
    }

    #[test]
    fn lists_and_values() {
        let items: Vec<&[u8]> = list_items(b" a ,, b\t,c").collect();
        assert_eq!(items, vec![&b"a"[..], b"b", b"c"]);
        assert!(is_token(b"chunked"));
        assert!(!is_token(b"chun ked"));
        assert!(!is_token(b""));
        assert!(is_field_value(b"a b\x80"));
        assert!(!is_field_value(b"a\r\nb"));
        assert!(!is_field_value(b" a"));
        assert!(!is_field_value(b"a\0"));
    }
}
