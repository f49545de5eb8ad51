//! Response heads from upstreams: parse into a reusable [`Response`], decide framing.
//!
//! Same machinery as requests (CRLF-only lines, spans, overlay write-back), with the
//! response framing rules of RFC 9112 6.3: 1xx, 204 and 304 responses and responses
//! to HEAD have no body whatever their headers say (the headers are still checked, so
//! a malformed Content-Length is never forwarded), a 2xx to CONNECT starts a tunnel
//! (framing `None`; the proxy handles tunnels), Transfer-Encoding must be exactly
//! `chunked`, and a response with neither header is delimited by the connection
//! closing. Errors reuse [`ParseError`]; the proxy answers 502 for any of them.

use core::mem::MaybeUninit;

use super::error::{ErrorKind, ParseError};
use super::framing::{BodyFraming, FramingHeaders};
use super::header::{
    classify, collect_fields, ends_with_crlf, is_field_vchar, is_token, list_items, only_crlfs,
    HeaderEntry, Known,
};
use super::limits::{Limits, HARD_MAX_HEADERS};
use super::overlay::Overlay;
use super::request::{map_error, strip_hop_by_hop, Method, Version};
use super::serialize::{write_head, ByteSink, Segment};
use super::span::{span_of, Span};

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseFraming {
    /// No body.
    #[default]
    None,
    /// Exactly this many bytes.
    ContentLength(u64),
    /// Chunked.
    Chunked,
    /// Until the upstream closes the connection.
    CloseDelimited,
}

/// A parsed response head. Reusable: `parse_response` clears it first.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub version: Version,
    pub reason: Span,
    pub headers: Vec<HeaderEntry>,
    pub framing: ResponseFraming,
    /// Whether the upstream connection may be reused after this response.
    pub keep_alive: bool,
    /// The response asks to end the connection: HTTP/1.1 with `Connection: close`,
    /// HTTP/1.0 without `keep-alive`, either with `Proxy-Connection: close` (Envoy's
    /// `upstream_cx_close_notify`). A body delimited by the close alone ends it too,
    /// unasked (`keep_alive` is then false, this not).
    pub ends_connection: bool,
    /// Whether the upstream sent a `Date` (a proxy adds one otherwise).
    pub has_date: bool,
    pub head_len: usize,
    pub overlay: Overlay,
    status_line: Span,
}

impl Response {
    /// An empty response.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resets every field, keeping the capacity of `headers` and `overlay`.
    pub fn clear(&mut self) {
        let mut headers = core::mem::take(&mut self.headers);
        let mut overlay = core::mem::take(&mut self.overlay);
        headers.clear();
        overlay.clear();
        *self = Response {
            headers,
            overlay,
            ..Response::default()
        };
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.is(buf, name))
            .map(|h| h.value(buf))
    }

    /// The status line, CRLF included.
    pub fn status_line(&self) -> Span {
        self.status_line
    }

    /// As [`super::Request::strip_hop_by_hop`].
    pub fn strip_hop_by_hop(&mut self, buf: &[u8]) {
        strip_hop_by_hop(&self.headers, buf, &mut self.overlay);
    }

    /// As [`super::Request::write_head`].
    pub fn write_head<'s>(&'s self, out: &mut Vec<Segment<'s>>) {
        let end = Span::new(self.head_len.saturating_sub(2), self.head_len);
        write_head(self.status_line, &self.headers, end, &self.overlay, out);
    }

    /// Like [`Response::append_fields`], with the lines `extra` appends written after
    /// the fields and before the blank line that ends the head.
    pub fn append_fields_then(
        &self,
        buf: &[u8],
        out: &mut Vec<u8>,
        extra: impl FnOnce(&mut Vec<u8>),
    ) {
        let after_line = self.status_line.end as usize;
        let end = self.head_len.saturating_sub(2);
        {
            let mut sink = ByteSink { buf, out };
            let empty = Span::new(after_line, after_line);
            write_head(
                empty,
                &self.headers,
                Span::new(end, end),
                &self.overlay,
                &mut sink,
            );
        }
        extra(out);
        out.extend_from_slice(b"\r\n");
    }

    /// As [`super::Request::append_fields`]: the header section without the status line.
    pub fn append_fields(&self, buf: &[u8], out: &mut Vec<u8>) {
        self.append_fields_then(buf, out, |_| {});
    }
}

/// Parses the complete response head at the start of `buf`. `request_method` is the
/// method of the request this answers (HEAD and CONNECT change the framing).
pub fn parse_response(
    buf: &[u8],
    request_method: Method,
    limits: &Limits,
    out: &mut Response,
) -> Result<(), ParseError> {
    out.clear();
    let window = buf.get(..buf.len().min(limits.head())).unwrap_or_default();
    let mut scratch = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HARD_MAX_HEADERS];
    let slots = scratch.get_mut(..limits.headers()).unwrap_or_default();
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, window, slots);
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial)
            if window.len() < buf.len() || window.len() == limits.head() =>
        {
            return Err(ErrorKind::HeadTooLarge.into())
        }
        Ok(httparse::Status::Partial) => return Err(ErrorKind::Incomplete.into()),
        Err(httparse::Error::Version) => return Err(ErrorKind::InvalidVersion.into()),
        Err(e) => return Err(map_error(e, true, window)),
    };
    let (Some(minor), Some(code)) = (resp.version, resp.code) else {
        return Err(ErrorKind::Incomplete.into());
    };
    let line_start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let fields_end = head_len.saturating_sub(2);
    let line_end = resp.headers.first().map_or(fields_end, |h| {
        super::span::offset_in(buf, h.name.as_bytes())
    });
    if !only_crlfs(buf, line_start)
        || !ends_with_crlf(buf, line_end)
        || !ends_with_crlf(buf, head_len)
    {
        return Err(ErrorKind::LineEnding.into());
    }
    let line = buf.get(line_start..line_end - 2).unwrap_or_default();
    if !(100..=999).contains(&code) || !line.iter().all(|&b| is_field_vchar(b)) {
        return Err(ErrorKind::InvalidStatus.into());
    }
    out.status = code;
    out.version = Version::from_minor(minor);
    // httparse yields "" for a missing reason; point that at the end of the line.
    out.reason = match resp.reason {
        Some(r) if !r.is_empty() => span_of(buf, r.as_bytes()),
        _ => Span::new(line_end - 2, line_end - 2),
    };
    out.status_line = Span::new(line_start, line_end);
    out.head_len = head_len;
    collect_fields(buf, resp.headers, fields_end, &mut out.headers)?;
    apply_fields(buf, request_method, out)
}

fn apply_fields(buf: &[u8], request_method: Method, out: &mut Response) -> Result<(), ParseError> {
    let http10 = out.version == Version::Http10;
    let mut framing = FramingHeaders::default();
    let (mut close, mut keep_alive, mut proxy_close) = (false, false, false);
    let mut out_has_date = false;
    for h in &mut out.headers {
        let value = h.value.get(buf);
        match classify(h.name.get(buf)) {
            Known::ContentLength => framing.content_length(value)?,
            Known::TransferEncoding => {
                h.hop_by_hop = true;
                framing.transfer_encoding(value)?;
            }
            Known::Connection => {
                h.hop_by_hop = true;
                for token in list_items(value).filter(|t| is_token(t)) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            Known::HopByHop | Known::Upgrade => {
                h.hop_by_hop = true;
                // `Proxy-Connection: close` ends the connection too (as Envoy reads it).
                if h.name.len() == 16 && h.name.get(buf).eq_ignore_ascii_case(b"proxy-connection") {
                    proxy_close |= list_items(value).any(|t| t.eq_ignore_ascii_case(b"close"));
                }
            }
            Known::Date => out_has_date = true,
            Known::Host | Known::Expect | Known::Other => {}
        }
    }
    out.has_date = out_has_date;
    let declared = framing.finish(http10)?;
    let bodiless = request_method == Method::Head
        || out.status < 200
        || out.status == 204
        || out.status == 304
        || (request_method == Method::Connect && (200..300).contains(&out.status));
    out.framing = match declared {
        _ if bodiless => ResponseFraming::None,
        Some(BodyFraming::Chunked) => ResponseFraming::Chunked,
        Some(BodyFraming::ContentLength(n)) => ResponseFraming::ContentLength(n),
        Some(BodyFraming::None) | None => ResponseFraming::CloseDelimited,
    };
    // As Envoy's `shouldCloseConnection` reads it: HTTP/1.0 by the absent keep-alive,
    // HTTP/1.1 by `close`.
    out.ends_connection = (if http10 { !keep_alive } else { close }) || proxy_close;
    out.keep_alive = !close
        && !proxy_close
        && (!http10 || keep_alive)
        && out.framing != ResponseFraming::CloseDelimited;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], m: Method) -> Result<Response, ParseError> {
        let mut r = Response::new();
        parse_response(raw, m, &Limits::default(), &mut r).map(|()| r)
    }

    #[test]
    fn a_date_header_is_noticed() {
        let with = parse(
            b"HTTP/1.1 200 OK\r\ndate: Sat, 05 Dec 2026 00:00:00 GMT\r\n\r\n",
            Method::Get,
        );
        assert!(with.unwrap().has_date);
        let without = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", Method::Get);
        assert!(!without.unwrap().has_date);
    }

    #[test]
    fn a_response_that_asks_to_end_its_connection_says_so() {
        let ends = |raw: &[u8]| {
            let r = parse(raw, Method::Get).unwrap();
            (r.ends_connection, r.keep_alive)
        };
        let cl = "content-length: 0\r\n";
        let http11 = |fields: &str| format!("HTTP/1.1 200 OK\r\n{fields}\r\n");
        let http10 = |fields: &str| format!("HTTP/1.0 200 OK\r\n{fields}\r\n");
        assert_eq!(ends(http11(cl).as_bytes()), (false, true));
        let close = format!("{cl}Connection: keep-alive, Close\r\n");
        assert_eq!(ends(http11(&close).as_bytes()), (true, false));
        assert_eq!(ends(http10(cl).as_bytes()), (true, false));
        let kept = format!("{cl}connection: keep-alive\r\n");
        assert_eq!(ends(http10(&kept).as_bytes()), (false, true));
        // Envoy reads an HTTP/1.0 answer by its keep-alive alone; ringway still does
        // not reuse a connection its answer said to close.
        let both = format!("{cl}connection: keep-alive, close\r\n");
        assert_eq!(ends(http10(&both).as_bytes()), (false, false));
        let proxy = format!("{cl}Proxy-Connection: Close\r\n");
        assert_eq!(ends(http11(&proxy).as_bytes()), (true, false));
        let kept = format!("{cl}proxy-connection: keep-alive\r\n");
        assert_eq!(ends(http11(&kept).as_bytes()), (false, true));
        // Delimited by the close, unasked: not reusable, not a notice.
        assert_eq!(ends(http11("").as_bytes()), (false, false));
    }

    #[test]
    fn framing_rules() {
        let f = |raw: &[u8], m| parse(raw, m).unwrap().framing;
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::Get),
            ResponseFraming::ContentLength(5)
        );
        assert_eq!(
            f(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Method::Head
            ),
            ResponseFraming::None
        );
        assert_eq!(
            f(b"HTTP/1.1 204 No Content\r\n\r\n", Method::Get),
            ResponseFraming::None
        );
        assert_eq!(
            f(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                Method::Get
            ),
            ResponseFraming::None
        );
        assert_eq!(
            f(b"HTTP/1.1 100 Continue\r\n\r\n", Method::Post),
            ResponseFraming::None
        );
        assert_eq!(
            f(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Method::Get
            ),
            ResponseFraming::Chunked
        );
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\n\r\n", Method::Get),
            ResponseFraming::CloseDelimited
        );
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\n\r\n", Method::Connect),
            ResponseFraming::None
        );
    }

    #[test]
    fn fields_and_keep_alive() {
        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let r = parse(raw, Method::Get).unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.reason.get(raw), b"Not Found");
        assert!(!r.keep_alive);
        assert!(
            !parse(b"HTTP/1.1 200 OK\r\n\r\n", Method::Get)
                .unwrap()
                .keep_alive
        );
        assert!(
            parse(
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
                Method::Get
            )
            .unwrap()
            .keep_alive
        );
        let r = parse(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", Method::Get).unwrap();
        assert!(r.reason.is_empty());
    }

    #[test]
    fn rejections() {
        let k = |raw: &[u8]| parse(raw, Method::Get).unwrap_err().kind();
        assert_eq!(
            k(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            ErrorKind::MultipleContentLength
        );
        assert_eq!(
            k(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ErrorKind::ContentLengthWithTransferEncoding
        );
        assert_eq!(
            k(b"HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n"),
            ErrorKind::LineEnding
        );
        assert_eq!(k(b"HTTP/1.1 099 X\r\n\r\n"), ErrorKind::InvalidStatus);
        assert_eq!(
            k(b"HTTP/1.1 200 OK\r\nX : 1\r\n\r\n"),
            ErrorKind::InvalidHeaderName
        );
        assert_eq!(k(b"HTTP/2.0 200 OK\r\n\r\n"), ErrorKind::InvalidVersion);
    }

    #[test]
    fn write_back_round_trips() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: b\r\n\r\n";
        let r = parse(raw, Method::Get).unwrap();
        let mut segs = Vec::new();
        r.write_head(&mut segs);
        let mut out = Vec::new();
        super::super::serialize::concat(&segs, raw, &mut out);
        assert_eq!(out, raw);
    }
}
