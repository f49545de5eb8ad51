//! HTTP/1.1 for the load generator: URLs, pre-rendered requests, and a strict sans-IO
//! response parser (plus the small request-framing reader `serve` uses).
//!
//! Nothing here does I/O, so every rule is unit-tested on byte slices. The parser is
//! incremental: the caller hands it the unconsumed bytes; it answers how many it consumed
//! and whether a response is complete. Body bytes are consumed and dropped as they
//! arrive, so a large body never accumulates in the connection's buffer; only a head has
//! to be contiguous (at most [`MAX_HEAD`] bytes). The head scan resumes where it stopped,
//! so a head trickled one byte per read costs linear work.
//!
//! Strictness is the point: a load generator that accepts anything hides a broken
//! upstream. Bare LF line ends, obsolete line folding, a bad status line, a bad or
//! conflicting Content-Length, Content-Length together with Transfer-Encoding, bad chunk
//! sizes and missing chunk CRLFs are all [`Malformed`], which the engine counts as an
//! error kind of its own. A response without framing (no length, not chunked) is read
//! until the server closes, as HTTP/1.1 allows.
//!
//! Requests are rendered once per URL at start (a keep-alive and a closing variant), so
//! sending one is a write of a shared buffer: no formatting or allocation per request.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// The largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// A response the peer got wrong; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed response: {}", self.0)
    }
}

/// A target URL: `http[s]://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https://`: TLS, the certificate checked against `host`.
    pub tls: bool,
    /// The host without port or IPv6 brackets (TLS server name).
    pub host: String,
    /// The host as written (for the Host header).
    pub authority: String,
    /// Resolved once at start: the run measures the upstream, not DNS.
    pub addr: SocketAddr,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Url {
    /// Parses and resolves `text`.
    pub fn parse(text: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(format!("{text}: a URL must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{text}: no host"));
        }
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!("{text}: the path has spaces or control characters"));
        }
        let (with_port, host) = if has_port(authority) {
            let colon = authority.rfind(':').unwrap_or(authority.len());
            (authority.to_string(), &authority[..colon])
        } else {
            let port = if tls { 443 } else { 80 };
            (format!("{authority}:{port}"), authority)
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{text}: cannot resolve {with_port}: {e}"))?
            .next()
            .ok_or_else(|| format!("{text}: {with_port} resolves to no address"))?;
        Ok(Url {
            tls,
            host: host.to_string(),
            authority: authority.to_string(),
            addr,
            path: path.to_string(),
        })
    }
}

fn has_port(authority: &str) -> bool {
    match authority.rfind(':') {
        // `[::1]` has colons but no port; `[::1]:8080` has one after the bracket.
        Some(i) => !authority[i..].contains(']'),
        None => false,
    }
}

/// What every request of a run carries besides its URL.
#[derive(Debug, Clone, Default)]
pub struct RequestSpec {
    /// The method token, e.g. `GET`.
    pub method: String,
    /// Extra header lines, `name: value`.
    pub headers: Vec<(String, String)>,
    /// Body size in bytes (filled with `x`).
    pub body_size: usize,
}

/// A request rendered once: the bytes to write with and without `connection: close`.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub keep_alive: Vec<u8>,
    pub close: Vec<u8>,
    /// HEAD responses have no body whatever their headers say.
    pub is_head: bool,
}

/// Renders the request for `url`. Header names and values were validated by the CLI.
pub fn render(url: &Url, spec: &RequestSpec) -> Rendered {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\n",
        spec.method, url.path, url.authority
    );
    for (name, value) in &spec.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    let sends_body = spec.body_size > 0 || matches!(spec.method.as_str(), "POST" | "PUT" | "PATCH");
    if sends_body {
        head.push_str(&format!("content-length: {}\r\n", spec.body_size));
    }
    let finish = |extra: &str| {
        let mut bytes = Vec::with_capacity(head.len() + extra.len() + 2 + spec.body_size);
        bytes.extend_from_slice(head.as_bytes());
        bytes.extend_from_slice(extra.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        bytes.resize(bytes.len() + spec.body_size, b'x');
        bytes
    };
    Rendered {
        keep_alive: finish(""),
        close: finish("connection: close\r\n"),
        is_head: spec.method == "HEAD",
    }
}

/// Checks a `-H` header line and splits it into name and value.
pub fn parse_header_arg(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("header {text:?}: expected \"name: value\""))?;
    let value = value.trim();
    if name.is_empty() || !name.bytes().all(is_token) {
        return Err(format!("header {text:?}: the name is not an HTTP token"));
    }
    if value.bytes().any(|b| b < b' ' && b != b'\t' || b == 0x7f) {
        return Err(format!("header {text:?}: the value has control characters"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Checks an HTTP method token.
pub fn check_method(method: &str) -> Result<(), String> {
    if !method.is_empty() && method.bytes().all(is_token) {
        Ok(())
    } else {
        Err(format!("method {method:?} is not an HTTP token"))
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// False when the server said `connection: close`, spoke HTTP/1.0, or framed the
    /// body by closing.
    pub keep_alive: bool,
}

/// Progress of [`ResponseParser::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// Needs more bytes; the first `consumed` may be dropped.
    Partial { consumed: usize },
    /// A response ended after `consumed` bytes.
    Complete { consumed: usize, response: Response },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    Chunked,
    UntilClose,
}

/// The incremental response parser; one per connection, reused across responses.
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    /// Bytes of the head already scanned for its end.
    scanned: usize,
    chunked: ChunkedDecoder,
    status: u16,
    keep_alive: bool,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseParser {
    pub fn new() -> Self {
        ResponseParser {
            state: State::Head,
            scanned: 0,
            chunked: ChunkedDecoder::default(),
            status: 0,
            keep_alive: true,
        }
    }

    /// Forgets a partial response (after an error the connection is closed anyway).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// True between responses: no byte of the next response has been consumed.
    pub fn is_idle(&self) -> bool {
        self.state == State::Head && self.scanned == 0
    }

    /// Feeds the unconsumed bytes. `is_head` says the request was HEAD.
    pub fn parse(&mut self, buf: &[u8], is_head: bool) -> Result<Parse, Malformed> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match self.state {
                State::Head => {
                    let from = self.scanned.saturating_sub(3);
                    let Some(end) = find(&rest[from..], b"\r\n\r\n").map(|i| from + i + 4) else {
                        if rest.len() > MAX_HEAD {
                            return Err(Malformed("head larger than 64 KiB"));
                        }
                        self.scanned = rest.len();
                        return Ok(Parse::Partial { consumed: pos });
                    };
                    if end > MAX_HEAD {
                        return Err(Malformed("head larger than 64 KiB"));
                    }
                    self.scanned = 0;
                    let head = parse_head(&rest[..end])?;
                    pos += end;
                    self.status = head.status;
                    self.keep_alive = head.keep_alive;
                    if (100..200).contains(&head.status) && head.status != 101 {
                        // An interim answer (100 Continue, 103 Early Hints): the final
                        // response follows on the same connection.
                        continue;
                    }
                    let bodyless = is_head
                        || (100..200).contains(&head.status)
                        || head.status == 204
                        || head.status == 304;
                    self.state = match head.framing {
                        _ if bodyless => return Ok(self.complete(pos)),
                        Framing::Chunked => {
                            self.chunked = ChunkedDecoder::default();
                            State::Chunked
                        }
                        Framing::Length(0) => return Ok(self.complete(pos)),
                        Framing::Length(n) => State::Length(n),
                        Framing::UntilClose => {
                            self.keep_alive = false;
                            State::UntilClose
                        }
                    };
                }
                State::Length(remaining) => {
                    let take = remaining.min(rest.len() as u64);
                    pos += take as usize;
                    if take == remaining {
                        return Ok(self.complete(pos));
                    }
                    self.state = State::Length(remaining - take);
                    return Ok(Parse::Partial { consumed: pos });
                }
                State::Chunked => {
                    let (used, done) = self.chunked.advance(rest)?;
                    pos += used;
                    if done {
                        return Ok(self.complete(pos));
                    }
                    return Ok(Parse::Partial { consumed: pos });
                }
                State::UntilClose => {
                    return Ok(Parse::Partial {
                        consumed: buf.len(),
                    })
                }
            }
        }
    }

    /// The peer closed. A body framed by the close is complete; anything else that was
    /// started is cut off (the caller counts a read error).
    pub fn eof(&mut self) -> Option<Response> {
        if self.state == State::UntilClose {
            let response = Response {
                status: self.status,
                keep_alive: false,
            };
            self.reset();
            Some(response)
        } else {
            None
        }
    }

    fn complete(&mut self, consumed: usize) -> Parse {
        let response = Response {
            status: self.status,
            keep_alive: self.keep_alive,
        };
        self.state = State::Head;
        self.scanned = 0;
        Parse::Complete { consumed, response }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

#[derive(Debug)]
struct Head {
    status: u16,
    keep_alive: bool,
    framing: Framing,
}

/// Parses a complete response head (ending in the blank line).
fn parse_head(head: &[u8]) -> Result<Head, Malformed> {
    let mut lines = head_lines(head)?;
    let status_line = lines.next().unwrap_or_default();
    let (minor, status) = parse_status_line(status_line)?;
    let fields = parse_fields(lines)?;
    let keep_alive = match fields.connection {
        Connection::Close => false,
        Connection::KeepAlive => true,
        Connection::Unspecified => minor == 1,
    };
    Ok(Head {
        status,
        keep_alive,
        framing: fields.framing,
    })
}

/// The lines of a complete head (which ends in CRLF CRLF), without their CRLFs. A bare
/// CR or LF anywhere is malformed.
fn head_lines(head: &[u8]) -> Result<Lines<'_>, Malformed> {
    let body = head
        .strip_suffix(b"\r\n\r\n")
        .ok_or(Malformed("head not ended by CRLF CRLF"))?;
    for (i, &b) in body.iter().enumerate() {
        let paired = match b {
            b'\r' => body.get(i + 1) == Some(&b'\n'),
            b'\n' => i > 0 && body[i - 1] == b'\r',
            _ => true,
        };
        if !paired {
            return Err(Malformed("line not ended by CRLF"));
        }
    }
    Ok(Lines { rest: Some(body) })
}

/// Lines split at CRLF, without allocating (this runs once per response).
#[derive(Debug)]
struct Lines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match find(rest, b"\r\n") {
            Some(i) => {
                self.rest = Some(&rest[i + 2..]);
                Some(&rest[..i])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

fn parse_status_line(line: &[u8]) -> Result<(u8, u16), Malformed> {
    let bad = Malformed("bad status line");
    let rest = line.strip_prefix(b"HTTP/1.").ok_or(bad.clone())?;
    let minor = match rest.first().copied() {
        Some(b'0') => 0,
        Some(b'1') => 1,
        _ => return Err(bad),
    };
    let rest = &rest[1..];
    if rest.len() < 4 || rest[0] != b' ' || !rest[1..4].iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    if rest.len() > 4 && rest[4] != b' ' {
        return Err(bad);
    }
    if rest[4..]
        .iter()
        .any(|&b| b < b' ' && b != b'\t' || b == 0x7f)
    {
        return Err(bad);
    }
    let status = rest[1..4]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) {
        return Err(Malformed("status code outside 100..=599"));
    }
    Ok((minor, status))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connection {
    Unspecified,
    Close,
    KeepAlive,
}

#[derive(Debug)]
struct Fields {
    framing: Framing,
    connection: Connection,
}

/// Reads header lines: the framing headers and `connection`; other fields are checked
/// for syntax only.
fn parse_fields<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Result<Fields, Malformed> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut other_coding = false;
    let mut connection = Connection::Unspecified;
    for line in lines {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Err(Malformed("obsolete line folding"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Malformed("header line without a colon"))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(Malformed("header name is not a token"));
        }
        let value = line[colon + 1..].trim_ascii();
        if value.iter().any(|&b| b < b' ' && b != b'\t' || b == 0x7f) {
            return Err(Malformed("control character in a header value"));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_decimal(value).ok_or(Malformed("bad content-length"))?;
            if length.is_some_and(|m| m != n) {
                return Err(Malformed("conflicting content-length values"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            for coding in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if chunked {
                    return Err(Malformed("a coding after chunked"));
                }
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else if coding.is_empty() {
                    continue;
                } else {
                    other_coding = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if option.eq_ignore_ascii_case(b"close") {
                    connection = Connection::Close;
                } else if option.eq_ignore_ascii_case(b"keep-alive")
                    && connection != Connection::Close
                {
                    connection = Connection::KeepAlive;
                }
            }
        }
    }
    let framing = match (length, chunked || other_coding) {
        (Some(_), true) => {
            return Err(Malformed("both content-length and transfer-encoding"));
        }
        (Some(n), false) => Framing::Length(n),
        (None, true) if chunked => Framing::Chunked,
        (None, _) => Framing::UntilClose,
    };
    Ok(Fields {
        framing,
        connection,
    })
}

/// Digits only, no sign, no overflow.
fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 {
        return None;
    }
    text.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailer,
}

/// A chunked-body decoder that drops the data; shared by the response parser and by
/// `serve`, which discards chunked request bodies.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl ChunkedDecoder {
    /// Consumes what it can of `buf`; returns bytes consumed and whether the body ended
    /// (after the last chunk's trailer section).
    pub fn advance(&mut self, buf: &[u8]) -> Result<(usize, bool), Malformed> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match self.state {
                ChunkState::Size => {
                    let Some(line) = take_line(rest)? else {
                        return Ok((pos, false));
                    };
                    pos += line.len() + 2;
                    let size = parse_chunk_size(line)?;
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(remaining) => {
                    let take = remaining.min(rest.len() as u64);
                    pos += take as usize;
                    if take < remaining {
                        self.state = ChunkState::Data(remaining - take);
                        return Ok((pos, false));
                    }
                    self.state = ChunkState::DataEnd;
                }
                ChunkState::DataEnd => {
                    if rest.len() < 2 {
                        return Ok((pos, false));
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(Malformed("chunk data not followed by CRLF"));
                    }
                    pos += 2;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    let Some(line) = take_line(rest)? else {
                        return Ok((pos, false));
                    };
                    pos += line.len() + 2;
                    if line.is_empty() {
                        self.state = ChunkState::Size;
                        return Ok((pos, true));
                    }
                    if !line.contains(&b':') {
                        return Err(Malformed("trailer line without a colon"));
                    }
                }
            }
        }
    }
}

/// The next CRLF-terminated line (without the CRLF), or None if it is not all here.
fn take_line(buf: &[u8]) -> Result<Option<&[u8]>, Malformed> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && buf[i - 1] == b'\r' => Ok(Some(&buf[..i - 1])),
        Some(_) => Err(Malformed("line not ended by CRLF")),
        None if buf.len() > MAX_LINE => Err(Malformed("chunk line too long")),
        None => Ok(None),
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, Malformed> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(Malformed("bad chunk size"));
    }
    let ext = line[digits..].trim_ascii_start();
    if !ext.is_empty() && ext[0] != b';' {
        return Err(Malformed("bad chunk size"));
    }
    let size = line[..digits].iter().fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16).unwrap_or(0);
        n * 16 + u64::from(v)
    });
    Ok(size)
}

/// What `serve` needs to know about a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    pub framing: Framing,
    pub keep_alive: bool,
}

/// Reads a complete request head for its framing (`serve` answers every request the
/// same, so it ignores the method and target). A request without framing has no body.
pub fn parse_request_head(head: &[u8]) -> Result<RequestHead, Malformed> {
    if head.len() < 4 {
        return Err(Malformed("short request head"));
    }
    let mut lines = head_lines(head)?;
    let line = lines.next().unwrap_or_default();
    let version = line
        .rsplit(|&b| b == b' ')
        .next()
        .ok_or(Malformed("bad request line"))?;
    let minor = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        _ => return Err(Malformed("bad request line")),
    };
    let fields = parse_fields(lines)?;
    Ok(RequestHead {
        framing: match fields.framing {
            Framing::UntilClose => Framing::Length(0),
            other => other,
        },
        keep_alive: match fields.connection {
            Connection::Close => false,
            Connection::KeepAlive => true,
            Connection::Unspecified => minor == 1,
        },
    })
}

/// Finds the end of a head in `buf`, scanning from `scanned` (bytes already looked at).
pub fn find_head_end(buf: &[u8], scanned: usize) -> Option<usize> {
    let from = scanned.saturating_sub(3).min(buf.len());
    find(&buf[from..], b"\r\n\r\n").map(|i| from + i + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Result<Parse, Malformed> {
        ResponseParser::new().parse(bytes, false)
    }

    fn complete(status: u16, keep_alive: bool, consumed: usize) -> Parse {
        Parse::Complete {
            consumed,
            response: Response { status, keep_alive },
        }
    }

    #[test]
    fn content_length_response() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(parse_all(r), Ok(complete(200, true, r.len())));
    }

    #[test]
    fn pipelined_bytes_are_left_over() {
        let r = b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n";
        assert_eq!(parse_all(r), Ok(complete(204, true, 27)));
    }

    #[test]
    fn every_split_point_gives_the_same_answer() {
        let r: &[u8] = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nt: v\r\n\r\n";
        for split in 0..r.len() {
            let mut p = ResponseParser::new();
            let mut buf = r[..split].to_vec();
            let mut done = None;
            let first = p.parse(&buf, false).unwrap();
            if let Parse::Partial { consumed } = first {
                buf.drain(..consumed);
                buf.extend_from_slice(&r[split..]);
                if let Parse::Complete { response, consumed } = p.parse(&buf, false).unwrap() {
                    assert_eq!(consumed, buf.len());
                    done = Some(response);
                }
            } else if let Parse::Complete { response, .. } = first {
                done = Some(response);
            }
            assert_eq!(done.map(|r| r.status), Some(201), "split at {split}");
        }
    }

    #[test]
    fn byte_at_a_time() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc";
        let mut p = ResponseParser::new();
        let mut buf = Vec::new();
        for (i, &b) in r.iter().enumerate() {
            buf.push(b);
            match p.parse(&buf, false).unwrap() {
                Parse::Partial { consumed } => {
                    buf.drain(..consumed);
                }
                Parse::Complete { response, .. } => {
                    assert_eq!(i, r.len() - 1);
                    assert_eq!(response.status, 200);
                    return;
                }
            }
        }
        panic!("never completed");
    }

    #[test]
    fn connection_close_and_http10() {
        let r = b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse_all(r), Ok(complete(200, false, r.len())));
        let r = b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse_all(r), Ok(complete(200, false, r.len())));
        let r = b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse_all(r), Ok(complete(200, true, r.len())));
    }

    #[test]
    fn body_until_close() {
        let mut p = ResponseParser::new();
        let r = b"HTTP/1.1 200 OK\r\n\r\nsome body";
        assert_eq!(p.parse(r, false), Ok(Parse::Partial { consumed: r.len() }));
        assert_eq!(
            p.eof(),
            Some(Response {
                status: 200,
                keep_alive: false
            })
        );
        // Cut off inside a length-framed body: no response.
        let mut p = ResponseParser::new();
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc";
        assert!(matches!(p.parse(r, false), Ok(Parse::Partial { .. })));
        assert_eq!(p.eof(), None);
    }

    #[test]
    fn head_and_bodyless_statuses() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n";
        assert_eq!(
            ResponseParser::new().parse(r, true),
            Ok(complete(200, true, r.len()))
        );
        let r = b"HTTP/1.1 304 Not Modified\r\ncontent-length: 100\r\n\r\n";
        assert_eq!(parse_all(r), Ok(complete(304, true, r.len())));
    }

    #[test]
    fn interim_responses_are_skipped() {
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse_all(r), Ok(complete(200, true, r.len())));
    }

    #[test]
    fn malformed_responses() {
        let cases: &[&[u8]] = &[
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 099 OK\r\n\r\n",
            b"HTTP/1.1 200OK\r\n\r\n",
            b"garbage\r\n\r\n",
            b"HTTP/1.1 200 OK\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n folded\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbad name: v\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 1, 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nab\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\nab\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        ];
        for case in cases {
            assert!(
                parse_all(case).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn oversized_head_is_malformed() {
        let mut r = b"HTTP/1.1 200 OK\r\n".to_vec();
        r.resize(MAX_HEAD + 10, b'a');
        assert!(parse_all(&r).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every prefix of a mix of valid and invalid pieces.
        let pieces: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\n",
            b"content-length: 3\r\n",
            b"transfer-encoding: chunked\r\n",
            b"\r\n",
            b"3\r\nabc\r\n",
            b"0\r\n\r\n",
            b"\n",
            b"\xff\x00",
        ];
        let mut seed = 12345u64;
        for _ in 0..2000 {
            let mut buf = Vec::new();
            for _ in 0..6 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                buf.extend_from_slice(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            let mut p = ResponseParser::new();
            let _ = p.parse(&buf, false);
            let _ = p.eof();
            let _ = parse_request_head(&buf);
        }
    }

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:8080/a?b=c").unwrap();
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.path, "/a?b=c");
        assert_eq!(u.addr, "127.0.0.1:8080".parse().unwrap());
        let u = Url::parse("http://[::1]:9000").unwrap();
        assert_eq!(u.path, "/");
        assert_eq!(u.addr.port(), 9000);
        assert!(!u.tls);
        assert_eq!(u.host, "::1");
        let u = Url::parse("https://127.0.0.1/x").unwrap();
        assert!(u.tls);
        assert_eq!((u.host.as_str(), u.addr.port()), ("127.0.0.1", 443));
        let u = Url::parse("https://localhost:8443").unwrap();
        assert_eq!(
            (u.host.as_str(), u.authority.as_str()),
            ("localhost", "localhost:8443")
        );
        assert!(Url::parse("ftp://x").is_err());
        assert!(Url::parse("http:///x").is_err());
        assert!(Url::parse("http://127.0.0.1:1/a b").is_err());
    }

    #[test]
    fn rendering() {
        let u = Url::parse("http://127.0.0.1:1/p").unwrap();
        let spec = RequestSpec {
            method: "POST".into(),
            headers: vec![("x-a".into(), "1".into())],
            body_size: 3,
        };
        let r = render(&u, &spec);
        assert_eq!(
            r.keep_alive,
            b"POST /p HTTP/1.1\r\nhost: 127.0.0.1:1\r\nx-a: 1\r\ncontent-length: 3\r\n\r\nxxx"
        );
        assert!(r.close.ends_with(b"connection: close\r\n\r\nxxx"));
        assert!(parse_header_arg("a b: c").is_err());
        assert_eq!(
            parse_header_arg("x-y:  z ").unwrap(),
            ("x-y".into(), "z".into())
        );
    }

    #[test]
    fn request_heads() {
        let h = parse_request_head(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::Length(0));
        assert!(h.keep_alive);
        let h = parse_request_head(
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.keep_alive);
        assert!(parse_request_head(b"GET / HTTP/2\r\n\r\n").is_err());
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nX", 0), Some(18));
    }
}
