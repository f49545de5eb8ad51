//! Request heads: parse into a reusable [`Request`], strip hop-by-hop fields, write back.
//!
//! `httparse` does the tokenising (it is fast and well fuzzed); this module adds what
//! a proxy needs and `httparse` leaves out: CRLF-only line endings, framing rules
//! (`framing.rs`), Host and target validation (`target.rs`), version classification,
//! and span bookkeeping. Every field is an offset into the caller's buffer; the header
//! vector and the overlay keep their capacity across `clear`, so a connection that
//! owns one `Request` parses without allocating once warmed up.
//!
//! Version policy: `HTTP/1.0` and `HTTP/1.1` are accepted; any other well-formed
//! `HTTP/<digit>.<digit>` (0.9, 1.2, 2.0) is 505, anything else is 400.

use core::mem::MaybeUninit;

use super::error::{ErrorKind, ParseError};
use super::framing::{BodyFraming, FramingHeaders};
use super::header::{
    classify, collect_fields, is_protected, is_token, list_items, only_crlfs, HeaderEntry, Known,
    NameLengths,
};
use super::limits::{Limits, Underscores, HARD_MAX_HEADERS};
use super::overlay::Overlay;
use super::serialize::{write_head, ByteSink, Segment};
use super::span::{offset_in, span_of, Span};
use super::target::{is_authority, parse_target};

/// Request method. `Other` means an extension method: read `method_span`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    Other,
}

impl Method {
    /// Methods are case-sensitive (RFC 9110 9.1): `get` is `Other`.
    pub fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// Protocol version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    Http10,
    #[default]
    Http11,
}

impl Version {
    pub(crate) fn from_minor(minor: u8) -> Version {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

/// A parsed request head. Reusable: `parse_request` clears it first.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: Method,
    pub method_span: Span,
    pub target: Span,
    pub version: Version,
    /// In order, as received.
    pub headers: Vec<HeaderEntry>,
    pub framing: BodyFraming,
    /// The authority: from an absolute-form (or CONNECT) target when present, which
    /// overrides Host (RFC 9112 3.2.2), else the Host header. `None` only for an
    /// HTTP/1.0 request without Host.
    pub host: Option<Span>,
    /// Path and query. For an absolute-form target, the part after the authority,
    /// which may be empty (meaning `/`); for CONNECT, empty.
    pub path: Span,
    /// Whether the connection may carry another request (version + Connection).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1.
    pub expect_continue: bool,
    /// The `Upgrade` value of an HTTP/1.1 request whose `Connection` names `upgrade`.
    upgrade: Option<Span>,
    /// Length of the head, leading empty lines and the final CRLF included.
    pub head_len: usize,
    /// Header changes to apply on write-back.
    pub overlay: Overlay,
    /// The request line, CRLF included.
    request_line: Span,
    /// The lengths of the received field names, as a set: bit `min(len, 31)`.
    name_lengths: NameLengths,
    /// Fields dropped because their names hold an underscore (`Underscores::Drop`).
    pub dropped_underscored: u32,
}

impl Request {
    /// An empty request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resets every field, keeping the capacity of `headers` and `overlay`.
    pub fn clear(&mut self) {
        let mut headers = core::mem::take(&mut self.headers);
        let mut overlay = core::mem::take(&mut self.overlay);
        headers.clear();
        overlay.clear();
        *self = Request {
            headers,
            overlay,
            ..Request::default()
        };
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        if !self.may_have(name.len()) {
            return None;
        }
        self.headers
            .iter()
            .find(|h| h.is(buf, name))
            .map(|h| h.value(buf))
    }

    /// Whether a received field's name may be `len` bytes long: false means no field
    /// of that name length came, so a lookup by a name of that length can stop here
    /// (one bit test instead of a pass over the fields; most lookups are for fields a
    /// request does not carry).
    #[inline]
    pub fn may_have(&self, len: usize) -> bool {
        self.name_lengths.may_have(len)
    }

    /// The set of the received field names' lengths (see [`NameLengths`]).
    #[inline]
    pub fn name_lengths(&self) -> NameLengths {
        self.name_lengths
    }

    /// The request line, CRLF included.
    pub fn request_line(&self) -> Span {
        self.request_line
    }

    /// Marks hop-by-hop fields as removed in the overlay: the fixed set (see
    /// `HeaderEntry::hop_by_hop`; Transfer-Encoding included, since the proxy
    /// re-frames the body) and every field the Connection header names, except
    /// Content-Length, Transfer-Encoding and Host, whose framing and routing effects
    /// were already decided and must not be undone by a peer.
    pub fn strip_hop_by_hop(&mut self, buf: &[u8]) {
        strip_hop_by_hop(&self.headers, buf, &mut self.overlay);
    }

    /// The `Upgrade` field's value when the request asks to switch protocols: HTTP/1.1,
    /// `Connection` naming `upgrade`, and an `Upgrade` field (RFC 9110 7.8).
    /// Found while parsing, so asking costs nothing.
    pub fn upgrade<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        self.upgrade.map(|s| s.get(buf))
    }

    /// Appends the forwarded head as segments for one vectored write (see
    /// `serialize.rs`): the request line and untouched header lines as spans of the
    /// buffer, changed and added lines as bytes owned by the overlay.
    pub fn write_head<'s>(&'s self, out: &mut Vec<Segment<'s>>) {
        let end = Span::new(self.head_len.saturating_sub(2), self.head_len);
        write_head(self.request_line, &self.headers, end, &self.overlay, out);
    }

    /// Appends the header section (field lines with the overlay applied, then the
    /// blank line) to `out`, without the request line: for a proxy that writes its own
    /// request line and copies the head into one write buffer. `buf` is the buffer the
    /// head was parsed from. Allocates nothing beyond `out`'s growth.
    pub fn append_fields(&self, buf: &[u8], out: &mut Vec<u8>) {
        let after_line = self.request_line.end as usize;
        let end = Span::new(self.head_len.saturating_sub(2), self.head_len);
        let mut sink = ByteSink { buf, out };
        let empty = Span::new(after_line, after_line);
        write_head(empty, &self.headers, end, &self.overlay, &mut sink);
    }
}

pub(crate) fn strip_hop_by_hop(headers: &[HeaderEntry], buf: &[u8], overlay: &mut Overlay) {
    for (i, h) in headers.iter().enumerate() {
        if h.hop_by_hop {
            overlay.remove(i);
        }
        if classify(h.name(buf)) != Known::Connection {
            continue;
        }
        for token in list_items(h.value(buf)) {
            if is_protected(token) {
                continue;
            }
            for (j, other) in headers.iter().enumerate() {
                if other.name(buf).eq_ignore_ascii_case(token) {
                    overlay.remove(j);
                }
            }
        }
    }
}

/// Parses the complete head at the start of `buf` (as found by `HeadScanner`; bytes
/// after it are ignored) into `out`, which is cleared first.
pub fn parse_request(buf: &[u8], limits: &Limits, out: &mut Request) -> Result<(), ParseError> {
    out.clear();
    let window = buf.get(..buf.len().min(limits.head())).unwrap_or_default();
    let mut scratch = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HARD_MAX_HEADERS];
    let slots = scratch.get_mut(..limits.headers()).unwrap_or_default();
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(window, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial)
            if window.len() < buf.len() || window.len() == limits.head() =>
        {
            return Err(ErrorKind::HeadTooLarge.into())
        }
        Ok(httparse::Status::Partial) => return Err(ErrorKind::Incomplete.into()),
        Err(e) => return Err(map_error(e, req.method.is_some(), window)),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(ErrorKind::Incomplete.into());
    };

    // Request line: only CRLF pairs before it, CRLF after it, within its limit.
    let line_start = offset_in(buf, method.as_bytes());
    let fields_end = head_len.saturating_sub(2);
    let line_end = req
        .headers
        .first()
        .map_or(fields_end, |h| offset_in(buf, h.name.as_bytes()));
    if !only_crlfs(buf, line_start)
        || !super::header::ends_with_crlf(buf, line_end)
        || !super::header::ends_with_crlf(buf, head_len)
    {
        return Err(ErrorKind::LineEnding.into());
    }
    if line_end.saturating_sub(line_start + 2) > limits.max_request_line {
        return Err(ErrorKind::RequestLineTooLong.into());
    }
    out.request_line = Span::new(line_start, line_end);
    out.head_len = head_len;
    out.method_span = span_of(buf, method.as_bytes());
    out.method = Method::from_bytes(method.as_bytes());
    out.target = span_of(buf, target.as_bytes());
    out.version = Version::from_minor(minor);
    out.name_lengths = collect_fields(buf, req.headers, fields_end, &mut out.headers)?;
    if limits.underscores != Underscores::Allow {
        underscored_fields(buf, limits.underscores, out)?;
    }
    apply_fields(buf, out)
}

/// Drops or refuses the fields whose names hold an underscore, as the listener says,
/// before anything reads them (Envoy's codec does it as it parses each name). A
/// dropped field is gone from `headers`, so write-back, routing and filters never see
/// it.
fn underscored_fields(
    buf: &[u8],
    action: Underscores,
    out: &mut Request,
) -> Result<(), ParseError> {
    let underscored = |h: &HeaderEntry| h.name.get(buf).contains(&b'_');
    match action {
        Underscores::Allow => {}
        Underscores::Reject => {
            if out.headers.iter().any(underscored) {
                return Err(ErrorKind::UnderscoreInName.into());
            }
        }
        Underscores::Drop => {
            let before = out.headers.len();
            out.headers.retain(|h| !underscored(h));
            out.dropped_underscored = (before - out.headers.len()) as u32;
        }
    }
    Ok(())
}

/// Interprets the fields and the target: framing, Host, Connection, Expect.
fn apply_fields(buf: &[u8], out: &mut Request) -> Result<(), ParseError> {
    let http10 = out.version == Version::Http10;
    let mut framing = FramingHeaders::default();
    let mut host: Option<Span> = None;
    let (mut close, mut keep_alive) = (false, false);
    let (mut upgrade_asked, mut upgrade) = (false, None);
    for h in &mut out.headers {
        let value = h.value.get(buf);
        match classify(h.name.get(buf)) {
            Known::ContentLength => framing.content_length(value)?,
            Known::TransferEncoding => {
                h.hop_by_hop = true;
                framing.transfer_encoding(value)?;
            }
            Known::Host => {
                if host.is_some() {
                    return Err(ErrorKind::MultipleHost.into());
                }
                if !is_authority(value) {
                    return Err(ErrorKind::InvalidHost.into());
                }
                host = Some(h.value);
            }
            Known::Connection => {
                h.hop_by_hop = true;
                for token in list_items(value).filter(|t| is_token(t)) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                    upgrade_asked |= token.eq_ignore_ascii_case(b"upgrade");
                }
            }
            Known::Expect => {
                out.expect_continue = !http10 && value.eq_ignore_ascii_case(b"100-continue");
            }
            Known::HopByHop => h.hop_by_hop = true,
            Known::Upgrade => {
                h.hop_by_hop = true;
                upgrade = Some(h.value).filter(|_| !value.is_empty());
            }
            Known::Date | Known::Other => {}
        }
    }
    out.upgrade = upgrade.filter(|_| upgrade_asked && out.version == Version::Http11);
    out.framing = framing.finish(http10)?.unwrap_or(BodyFraming::None);
    out.keep_alive = !close && (!http10 || keep_alive);

    let target = parse_target(
        out.target.get(buf),
        out.target,
        out.method == Method::Connect,
        out.method == Method::Options,
    )
    .ok_or(ParseError::new(ErrorKind::InvalidTarget))?;
    if host.is_none() && !http10 {
        return Err(ErrorKind::MissingHost.into());
    }
    out.host = target.authority.or(host);
    out.path = target.path;
    Ok(())
}

/// Maps an `httparse` error to our classes. `after_method`: the method parsed, so a
/// token error is in the target.
pub(crate) fn map_error(e: httparse::Error, after_method: bool, buf: &[u8]) -> ParseError {
    use httparse::Error as E;
    let kind = match e {
        E::HeaderName => ErrorKind::InvalidHeaderName,
        E::HeaderValue => ErrorKind::InvalidHeaderValue,
        E::NewLine => ErrorKind::LineEnding,
        E::Status => ErrorKind::InvalidStatus,
        E::TooManyHeaders => ErrorKind::TooManyHeaders,
        E::Token if after_method => ErrorKind::InvalidTarget,
        E::Token => ErrorKind::InvalidMethod,
        E::Version => classify_version(buf),
    };
    kind.into()
}

/// On a version error: a request line of exactly three parts whose last is a
/// well-formed `HTTP/x.y` is 505; more parts mean a space in the target (400).
fn classify_version(buf: &[u8]) -> ErrorKind {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let rest = buf.get(start..).unwrap_or_default();
    let end = rest
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(rest.len());
    let line = rest.get(..end).unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (_, _, version, extra) = (parts.next(), parts.next(), parts.next(), parts.next());
    match (version, extra) {
        (_, Some(_)) => ErrorKind::InvalidTarget,
        (Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor]), None)
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            ErrorKind::UnsupportedVersion
        }
        _ => ErrorKind::InvalidVersion,
    }
}

/// The value of a `name: value` line (CRLF and surrounding whitespace removed).
pub fn line_value(line: &[u8]) -> &[u8] {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .map_or(line.len(), |c| c + 1);
    line.get(colon..).unwrap_or_default().trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Request, ParseError> {
        let mut r = Request::new();
        parse_request(raw, &Limits::default(), &mut r).map(|()| r)
    }

    fn kind(raw: &[u8]) -> ErrorKind {
        parse(raw).unwrap_err().kind()
    }

    /// The set of name lengths lets a lookup stop early only where no field has the
    /// name's length: every field of every length (31 and over share a bit) is still
    /// found, and a name of a length no field has is absent without a pass.
    #[test]
    fn lookups_by_name_find_every_field_the_lengths_let_through() {
        let names: Vec<String> = (1..=40)
            .map(|n| format!("x{}", "a".repeat(n - 1)))
            .collect();
        for skip in 0..names.len() {
            let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
            for (i, name) in names.iter().enumerate().filter(|(i, _)| *i != skip) {
                raw.extend_from_slice(format!("{}: v{i}\r\n", name.to_uppercase()).as_bytes());
            }
            raw.extend_from_slice(b"\r\n");
            let r = parse(&raw).unwrap();
            for (i, name) in names.iter().enumerate() {
                let want = format!("v{i}");
                let found = r.header(&raw, name);
                let by_scan = r
                    .headers
                    .iter()
                    .find(|h| h.is(&raw, name))
                    .map(|h| h.value(&raw));
                assert_eq!(found, by_scan, "{name}");
                assert_eq!(found.is_some(), i != skip, "{name}");
                if i != skip {
                    assert_eq!(found, Some(want.as_bytes()));
                    assert!(r.may_have(name.len()));
                }
            }
            let len = names[skip].len();
            // A length shared with no other field (under 31) is known absent.
            assert_eq!(r.may_have(len), len >= 31 || len == 4, "{len}");
        }
        let r = parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert!(r.may_have(4) && !r.may_have(15) && !r.may_have(0));
        assert_eq!(
            r.header(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", "x-forwarded-for"),
            None
        );
        let lengths = NameLengths::of(&[2, 40]);
        assert!(lengths.may_have(2) && lengths.may_have(31) && lengths.may_have(99));
        assert!(!lengths.may_have(3) && !lengths.may_have_any(NameLengths::of(&[3, 30])));
        assert!(lengths.may_have_any(NameLengths::of(&[3, 2])));
    }

    #[test]
    fn an_upgrade_needs_connection_upgrade_and_http11() {
        let up = |raw: &[u8]| parse(raw).unwrap().upgrade(raw).map(<[u8]>::to_vec);
        assert_eq!(
            up(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"),
            Some(b"websocket".to_vec())
        );
        assert_eq!(
            up(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"),
            None
        );
        assert_eq!(
            up(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n"),
            None
        );
        assert_eq!(
            up(b"GET / HTTP/1.0\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
            None
        );
    }

    #[test]
    fn simple_get() {
        let raw = b"GET /a?b HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\nrest";
        let r = parse(raw).unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.target.get(raw), b"/a?b");
        assert_eq!(r.path.get(raw), b"/a?b");
        assert_eq!(r.host.unwrap().get(raw), b"example.com");
        assert_eq!(r.version, Version::Http11);
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.headers[1].line.get(raw), b"Accept: */*\r\n");
        assert_eq!(r.header(raw, "ACCEPT"), Some(&b"*/*"[..]));
        assert_eq!(r.head_len, raw.len() - 4);
        assert_eq!(r.framing, BodyFraming::None);
        assert!(r.keep_alive);
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            !parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x, close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn versions() {
        assert_eq!(
            kind(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
            ErrorKind::UnsupportedVersion
        );
        assert_eq!(
            kind(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
            ErrorKind::UnsupportedVersion
        );
        assert_eq!(
            kind(b"GET / HTTP/0.9\r\n\r\n"),
            ErrorKind::UnsupportedVersion
        );
        assert_eq!(kind(b"GET / HTTX/1.1\r\n\r\n"), ErrorKind::InvalidVersion);
        assert_eq!(
            kind(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"),
            ErrorKind::InvalidTarget
        );
    }

    #[test]
    fn rejections() {
        assert_eq!(kind(b"GET / HTTP/1.1\r\n\r\n"), ErrorKind::MissingHost);
        assert_eq!(
            kind(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            ErrorKind::MultipleHost
        );
        assert_eq!(
            kind(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            ErrorKind::InvalidHost
        );
        assert_eq!(
            kind(b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
            ErrorKind::LineEnding
        );
        assert_eq!(
            kind(b"GET / HTTP/1.1\r\nHost: a\n\r\n"),
            ErrorKind::LineEnding
        );
        assert_eq!(
            kind(b"GET / HTTP/1.1\r\nHost: a\r\n\n"),
            ErrorKind::LineEnding
        );
        assert_eq!(
            kind(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            ErrorKind::LineEnding
        );
        assert_eq!(
            kind(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
            ErrorKind::InvalidHeaderName
        );
        assert_eq!(
            kind(b"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n"),
            ErrorKind::InvalidHeaderName
        );
        assert_eq!(
            kind(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n"),
            ErrorKind::InvalidMethod
        );
        assert_eq!(kind(b"GET / HTTP/1.1\r\nHost: a"), ErrorKind::Incomplete);
    }

    #[test]
    fn absolute_form_overrides_host() {
        let raw = b"GET http://b.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n";
        let r = parse(raw).unwrap();
        assert_eq!(r.host.unwrap().get(raw), b"b.example");
        assert_eq!(r.path.get(raw), b"/x");
    }

    /// Fields whose names hold an underscore: kept by default, dropped from the table
    /// (and from the written-back head) or refused, as the limits say.
    #[test]
    fn underscored_field_names_are_kept_dropped_or_refused() {
        let raw = b"GET / HTTP/1.1\r\nx_a: 1\r\nHost: h\r\nX-B: 2\r\nx_c_: 3\r\n\r\n";
        let mut r = Request::new();
        let with = |underscores| Limits {
            underscores,
            ..Limits::default()
        };
        parse_request(raw, &with(Underscores::Allow), &mut r).unwrap();
        assert_eq!((r.headers.len(), r.dropped_underscored), (4, 0));
        parse_request(raw, &with(Underscores::Drop), &mut r).unwrap();
        assert_eq!((r.headers.len(), r.dropped_underscored), (2, 2));
        assert_eq!(r.header(raw, "x_a"), None);
        assert_eq!(r.host.map(|h| h.get(raw)), Some(&b"h"[..]));
        let mut head = Vec::new();
        r.append_fields(raw, &mut head);
        assert_eq!(head, b"Host: h\r\nX-B: 2\r\n\r\n");
        let e = parse_request(raw, &with(Underscores::Reject), &mut r).unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::UnderscoreInName, 400));
        // Nothing to refuse: parsed as ever, and a later request's count starts anew.
        let plain = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        parse_request(plain, &with(Underscores::Reject), &mut r).unwrap();
        parse_request(plain, &with(Underscores::Drop), &mut r).unwrap();
        assert_eq!(r.dropped_underscored, 0);
    }

    #[test]
    fn clear_keeps_capacity() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
        let mut r = Request::new();
        parse_request(raw, &Limits::default(), &mut r).unwrap();
        let cap = r.headers.capacity();
        r.clear();
        assert!(r.headers.is_empty());
        assert_eq!(r.headers.capacity(), cap);
    }

    #[test]
    fn strip_keeps_protected_fields() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nConnection: content-length, host, x-a\r\nX-A: 1\r\nKeep-Alive: 5\r\n\r\n";
        let mut r = parse(raw).unwrap();
        r.strip_hop_by_hop(raw);
        let mut segs = Vec::new();
        r.write_head(&mut segs);
        let mut out = Vec::new();
        super::super::serialize::concat(&segs, raw, &mut out);
        assert_eq!(
            out,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n"
        );
    }
}
