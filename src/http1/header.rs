//! Header fields as spans, plus the byte-class and name predicates the parsers share.
//!
//! A [`HeaderEntry`] records where a field's name, value and whole line sit in the
//! buffer. Readers go through [`HeaderEntry::name`] / [`HeaderEntry::value`] rather
//! than the raw spans, so that an HTTP/2 front end (HPACK decodes into owned bytes)
//! can later store its fields in a side arena and have spans index into that arena
//! instead: the accessors take "the bytes the spans point into", whatever owns them.
//!
//! Known names are matched by length first, then ASCII-case-insensitively; that is
//! cheaper than lower-casing and never allocates.

use super::span::Span;

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
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    match name.len() {
        2 if is("te") => Known::HopByHop,
        4 if is("host") => Known::Host,
        4 if is("date") => Known::Date,
        6 if is("expect") => Known::Expect,
        7 if is("trailer") => Known::HopByHop,
        7 if is("upgrade") => Known::Upgrade,
        10 if is("connection") => Known::Connection,
        10 if is("keep-alive") => Known::HopByHop,
        14 if is("content-length") => Known::ContentLength,
        16 if is("proxy-connection") => Known::HopByHop,
        17 if is("transfer-encoding") => Known::TransferEncoding,
        18 if is("proxy-authenticate") => Known::HopByHop,
        19 if is("proxy-authorization") => Known::HopByHop,
        _ => Known::Other,
    }
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
/// (with `ignore_invalid_headers` off) skips nothing between them.
pub(crate) fn collect_fields(
    buf: &[u8],
    parsed: &[httparse::Header<'_>],
    fields_end: usize,
    out: &mut Vec<HeaderEntry>,
) -> Result<(), super::error::ParseError> {
    use super::span::{offset_in, span_of};
    for (i, h) in parsed.iter().enumerate() {
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
    Ok(())
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
