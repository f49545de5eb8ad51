//! A blocking HTTP(S)/1.1 client for background jobs: remote JWKS fetches, health
//! checks and the span exporter ([`via`]: how such a job reaches a configured cluster).
//!
//! Design: one request per connection (`connection: close`), on std sockets, from a
//! background thread. It must never run on a worker or the control thread's runtime:
//! every call blocks (for up to the request's `timeout`). That keeps it small: no pool,
//! no runtime, no async, and a job that needs concurrency runs several threads. A
//! caller that sends often to one place (the span exporter) keeps its one connection
//! between requests instead ([`send_kept`], [`kept`]).
//!
//! - The URL is parsed by [`url`] (`http`/`https` only). Addresses come from
//!   [`Request::connect_to`] (a cluster's endpoints) or from the system resolver, on a
//!   short-lived thread so the deadline holds; each is tried in turn.
//! - One deadline covers the whole exchange (resolution, connect, TLS handshake,
//!   request, response): every blocking call gets the time left, never more ([`conn`]).
//! - TLS is rustls with ringway's crypto provider (`config::tls::provider`), driven by
//!   hand over the blocking socket; [`Request::tls`] supplies a configuration (a
//!   cluster's CA, a client certificate), else the system's roots are used, loaded once
//!   per process. [`Request::server_name`] overrides the name sent as SNI and verified.
//! - The response is read with ringway's own codec (`http1`: head scanner, response
//!   parser, chunked decoder), so the client is exactly as strict as the proxy is with
//!   its upstreams ([`read`]); 1xx interim responses are skipped and the body is bounded
//!   by [`Request::max_body`].
//!
//! Errors ([`FetchError`]) carry a kind for the caller's decisions (retry a timeout,
//! not a bad URL) and print the URL (credentials never shown) and what failed.

mod conn;
mod kept;
mod read;
pub mod url;
pub mod via;

pub use kept::{Kept, KEEP_IDLE};
pub use via::Via;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::http1;

use conn::{Deadline, Stream};
use kept::Origin;
use url::{Scheme, Url};

/// What to fetch and how.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `http://host[:port]/path?query` or `https://...`; IPv6 literals in brackets.
    pub url: &'a str,
    /// Connect to these addresses, in order, instead of resolving the URL's host (the
    /// `Host` header and the TLS name still come from the URL).
    pub connect_to: Option<Vec<SocketAddr>>,
    /// The TLS configuration for `https` (a CA of its own, a client certificate);
    /// `None`: the system's trusted roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The name sent as SNI and checked against the certificate; `None`: the URL's host.
    pub server_name: Option<String>,
    /// The whole exchange, from resolving the name to the last body byte.
    pub timeout: Duration,
    /// The largest body accepted (after chunked decoding); a larger one is an error.
    pub max_body: usize,
    /// Extra request headers, sent after the client's own. `host`, `user-agent` and
    /// `accept` given here replace the defaults; `connection`, `content-length`,
    /// `transfer-encoding`, `te`, `upgrade` and `expect` are the client's and refused.
    pub headers: Vec<(String, String)>,
}

impl<'a> Request<'a> {
    /// The default time allowed for one exchange (the remote JWKS default; callers
    /// with a configured timeout set their own).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The default body limit: 1 MiB, far above any JWKS document.
    pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

    /// A request for `url` with the defaults: resolved by the system, system roots,
    /// [`Self::DEFAULT_TIMEOUT`], [`Self::DEFAULT_MAX_BODY`], no extra headers. Change
    /// fields with struct update syntax: `Request { timeout, ..Request::new(url) }`.
    pub fn new(url: &'a str) -> Request<'a> {
        Request {
            url,
            connect_to: None,
            tls: None,
            server_name: None,
            timeout: Self::DEFAULT_TIMEOUT,
            max_body: Self::DEFAULT_MAX_BODY,
            headers: Vec::new(),
        }
    }
}

/// The methods this client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }

    fn codec(self) -> http1::Method {
        match self {
            Method::Get => http1::Method::Get,
            Method::Head => http1::Method::Head,
            Method::Post => http1::Method::Post,
            Method::Put => http1::Method::Put,
            Method::Patch => http1::Method::Patch,
            Method::Delete => http1::Method::Delete,
            Method::Options => http1::Method::Options,
        }
    }
}

/// A response, whatever its status (a 404 is a response, not an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The header fields as received, in order (bytes that are not UTF-8 are replaced).
    pub headers: Vec<(String, String)>,
    /// The body, chunked coding removed.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What kind of step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FetchErrorKind {
    /// The URL is not one this client fetches.
    Url,
    /// The request cannot be sent as given (a header name or value, a header the client
    /// sets itself).
    Request,
    /// The host's name did not resolve.
    Resolve,
    /// No address accepted the connection.
    Connect,
    /// The TLS handshake failed (the certificate did not verify, among others).
    Tls,
    /// The whole exchange took longer than the request's `timeout`.
    Timeout,
    /// A socket error after the connection was made.
    Io,
    /// The server's answer is not valid HTTP/1.x, or it ended early.
    Protocol,
    /// The body is larger than the request's `max_body`.
    BodyTooLarge,
}

impl FetchErrorKind {
    fn describe(self) -> &'static str {
        match self {
            FetchErrorKind::Url => "invalid URL",
            FetchErrorKind::Request => "invalid request",
            FetchErrorKind::Resolve => "cannot resolve",
            FetchErrorKind::Connect => "cannot connect",
            FetchErrorKind::Tls => "TLS failed",
            FetchErrorKind::Timeout => "timed out",
            FetchErrorKind::Io => "I/O error",
            FetchErrorKind::Protocol => "bad response",
            FetchErrorKind::BodyTooLarge => "body too large",
        }
    }
}

/// A failed fetch: its kind, the URL and the cause, printed as
/// `GET https://idp.example/jwks: timed out: no result within 5s (reading the body)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    kind: FetchErrorKind,
    method: Method,
    url: String,
    cause: String,
}

impl FetchError {
    /// What kind of step failed.
    pub fn kind(&self) -> FetchErrorKind {
        self.kind
    }

    /// The URL, as printed (credentials hidden, control characters escaped).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What failed, without the URL.
    pub fn cause(&self) -> &str {
        &self.cause
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}: {}",
            self.method.as_str(),
            self.url,
            self.kind.describe(),
            self.cause
        )
    }
}

impl std::error::Error for FetchError {}

/// A failure before the URL is attached.
#[derive(Debug)]
struct Failure {
    kind: FetchErrorKind,
    cause: String,
}

impl Failure {
    fn new(kind: FetchErrorKind, cause: String) -> Failure {
        Failure { kind, cause }
    }
}

/// `GET` the request's URL. Blocks for up to `request.timeout`: background threads only.
pub fn get(request: &Request<'_>) -> Result<Response, FetchError> {
    send(Method::Get, None, request)
}

/// Sends `method` with `body` (a `content-length` is added when there is one; a
/// `content-type` is the caller's header). Blocks for up to `request.timeout`:
/// background threads only.
pub fn send(
    method: Method,
    body: Option<&[u8]>,
    request: &Request<'_>,
) -> Result<Response, FetchError> {
    exchange(method, body.as_ref().map(std::slice::from_ref), request).map_err(|f| FetchError {
        kind: f.kind,
        method,
        url: url::shown(request.url),
        cause: f.cause,
    })
}

/// Sends `method` with `body` as [`send`] does, on the connection `kept` holds for the
/// request's origin when it is still fit (a new one otherwise), and keeps the
/// connection afterwards when the server allows it ([`kept`]). A request that fails on
/// a reused connection before any byte of an answer arrived (the server closed it as
/// the request went out) is sent once more, on a new connection. Blocks for up to
/// `request.timeout`: background threads only.
pub fn send_kept(
    method: Method,
    body: Option<&[u8]>,
    request: &Request<'_>,
    kept: &mut Kept,
) -> Result<Response, FetchError> {
    send_kept_parts(
        method,
        body.as_ref().map(std::slice::from_ref),
        request,
        kept,
    )
}

/// [`send_kept`] with a body in parts, written one after the other (the span
/// exporter's batches, sent as the workers wrote them rather than copied together
/// first).
pub fn send_kept_parts(
    method: Method,
    body: Option<&[&[u8]]>,
    request: &Request<'_>,
    kept: &mut Kept,
) -> Result<Response, FetchError> {
    exchange_kept(method, body, request, kept).map_err(|f| FetchError {
        kind: f.kind,
        method,
        url: url::shown(request.url),
        cause: f.cause,
    })
}

fn exchange(
    method: Method,
    body: Option<&[&[u8]]>,
    request: &Request<'_>,
) -> Result<Response, Failure> {
    let prepared = Prepared::new(method, body, request, true)?;
    let mut stream = prepared.connect(request)?;
    prepared
        .talk(&mut stream, body)
        .map(|(response, _)| response)
        .map_err(|(failure, _)| failure)
}

fn exchange_kept(
    method: Method,
    body: Option<&[&[u8]]>,
    request: &Request<'_>,
    kept: &mut Kept,
) -> Result<Response, Failure> {
    let prepared = Prepared::new(method, body, request, false)?;
    let allowed = request.connect_to.as_deref();
    if let Some(mut stream) = kept.take(&prepared.origin, allowed) {
        match prepared.talk(&mut stream, body) {
            Ok((response, reusable)) => {
                prepared.keep(stream, &response, reusable, kept);
                return Ok(response);
            }
            // Closed under the request: once more on a new connection.
            Err((_, true)) => {}
            Err((failure, false)) => return Err(failure),
        }
    }
    let mut stream = prepared.connect(request)?;
    let (response, reusable) = prepared
        .talk(&mut stream, body)
        .map_err(|(failure, _)| failure)?;
    prepared.keep(stream, &response, reusable, kept);
    Ok(response)
}

/// A request ready to go: its deadline, URL, head and origin.
struct Prepared {
    deadline: Deadline,
    url: Url,
    head: String,
    method: Method,
    max_body: usize,
    origin: Origin,
}

impl Prepared {
    fn new(
        method: Method,
        body: Option<&[&[u8]]>,
        request: &Request<'_>,
        close: bool,
    ) -> Result<Prepared, Failure> {
        let deadline = Deadline::after(request.timeout);
        let url = Url::parse(request.url).map_err(|why| Failure::new(FetchErrorKind::Url, why))?;
        let head = request_head(method, body, &url, &request.headers, close)?;
        let tls = match (url.scheme, &request.tls) {
            (Scheme::Http, _) => None,
            (Scheme::Https, Some(config)) => Some(Arc::clone(config)),
            (Scheme::Https, None) => Some(conn::system_config()?),
        };
        let origin = Origin {
            authority: format!("{:?}://{}", url.scheme, url.host_header()),
            server_name: tls.as_ref().map(|_| {
                request
                    .server_name
                    .clone()
                    .unwrap_or_else(|| url.host.clone())
            }),
            tls,
        };
        Ok(Prepared {
            deadline,
            url,
            head,
            method,
            max_body: request.max_body,
            origin,
        })
    }

    /// A new connection (and its TLS handshake) to the request's addresses.
    fn connect(&self, request: &Request<'_>) -> Result<Stream, Failure> {
        let url = &self.url;
        let addrs = match (&request.connect_to, url.ip) {
            (Some(addrs), _) => addrs.clone(),
            (None, Some(ip)) => vec![SocketAddr::new(ip, url.port)],
            (None, None) => conn::resolve(&url.host, url.port, &self.deadline)?,
        };
        if addrs.is_empty() {
            return Err(Failure::new(
                FetchErrorKind::Connect,
                "connect_to lists no address".to_owned(),
            ));
        }
        let tcp = conn::connect(&addrs, &self.deadline)?;
        match (&self.origin.tls, &self.origin.server_name) {
            (Some(config), Some(name)) => {
                Stream::tls(tcp, Arc::clone(config), name, &self.deadline)
            }
            _ => Ok(Stream::Plain(tcp)),
        }
    }

    /// Sends the request on `stream` and reads the answer, and whether the connection
    /// can carry another request. A failure says whether no byte of an answer had
    /// arrived (and the cause was not the deadline): on a reused connection, the server
    /// closed it under the request, which is then worth sending again.
    fn talk(
        &self,
        stream: &mut Stream,
        body: Option<&[&[u8]]>,
    ) -> Result<(Response, bool), (Failure, bool)> {
        let deadline = &self.deadline;
        let unanswered = |f: Failure| {
            let again = f.kind != FetchErrorKind::Timeout;
            (f, again)
        };
        // Head and body written apart (the socket has TCP_NODELAY): a body of hundreds
        // of kilobytes (a span batch) is not copied behind the head first.
        stream
            .write_all(self.head.as_bytes(), deadline)
            .map_err(unanswered)?;
        for part in body.unwrap_or_default() {
            if !part.is_empty() {
                stream.write_all(part, deadline).map_err(unanswered)?;
            }
        }
        let mut answered = 0;
        read::read_response(self.method.codec(), self.max_body, |buf, doing| {
            let n = stream.read(buf, deadline, doing)?;
            answered += n;
            Ok(n)
        })
        .map_err(|f| {
            let again = answered == 0 && f.kind != FetchErrorKind::Timeout;
            (f, again)
        })
    }

    /// Keeps `stream` in `kept` when the answer allows it.
    fn keep(&self, stream: Stream, response: &Response, reusable: bool, kept: &mut Kept) {
        if reusable {
            let limit = response
                .header("keep-alive")
                .and_then(kept::keep_alive_timeout);
            kept.keep(stream, self.origin.clone(), limit);
        }
    }
}

/// Headers a caller may not set: the client frames the message and owns the connection.
const OWN_HEADERS: [&str; 6] = [
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "expect",
];

/// The request line and header section.
fn request_head(
    method: Method,
    body: Option<&[&[u8]]>,
    url: &Url,
    extra: &[(String, String)],
    close: bool,
) -> Result<String, Failure> {
    let bad = |why: String| Failure::new(FetchErrorKind::Request, why);
    for (name, value) in extra {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(bad(format!("header name {name:?} is not a token")));
        }
        if OWN_HEADERS.iter().any(|own| name.eq_ignore_ascii_case(own)) {
            return Err(bad(format!("header {name:?} is set by the client itself")));
        }
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f)
            || value.starts_with([' ', '\t'])
            || value.ends_with([' ', '\t'])
        {
            return Err(bad(format!(
                "header {name:?} has a value with control characters or surrounding whitespace"
            )));
        }
    }
    let given = |name: &str| extra.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut head = format!("{} {} HTTP/1.1\r\n", method.as_str(), url.target);
    if !given("host") {
        head.push_str(&format!("host: {}\r\n", url.host_header()));
    }
    if !given("user-agent") {
        head.push_str(concat!(
            "user-agent: ringway/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
    }
    if !given("accept") {
        head.push_str("accept: */*\r\n");
    }
    if close {
        head.push_str("connection: close\r\n");
    }
    if let Some(parts) = body {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        head.push_str(&format!("content-length: {len}\r\n"));
    }
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    Ok(head)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(
        method: Method,
        body: Option<&[u8]>,
        url: &str,
        extra: &[(&str, &str)],
    ) -> Result<String, Failure> {
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        let body = body.as_ref().map(std::slice::from_ref);
        request_head(method, body, &Url::parse(url).unwrap(), &extra, true)
    }

    #[test]
    fn the_head_has_the_defaults_and_the_callers_headers() {
        let h = head(
            Method::Get,
            None,
            "http://h:8080/keys?a=1",
            &[("x-trace", "1")],
        )
        .unwrap();
        assert_eq!(
            h,
            format!(
                "GET /keys?a=1 HTTP/1.1\r\nhost: h:8080\r\nuser-agent: ringway/{}\r\naccept: */*\r\nconnection: close\r\nx-trace: 1\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        let h = head(
            Method::Post,
            Some(b"{}"),
            "https://h/",
            &[
                ("Accept", "application/json"),
                ("Host", "other"),
                ("User-Agent", "me"),
            ],
        )
        .unwrap();
        assert_eq!(
            h,
            "POST / HTTP/1.1\r\nconnection: close\r\ncontent-length: 2\r\nAccept: application/json\r\nHost: other\r\nUser-Agent: me\r\n\r\n"
        );
    }

    #[test]
    fn headers_that_would_break_the_message_are_refused() {
        let kind = |extra: &[(&str, &str)]| {
            head(Method::Get, None, "http://h/", extra)
                .err()
                .map(|f| f.kind)
        };
        let refused = Some(FetchErrorKind::Request);
        assert_eq!(kind(&[("x", "a\r\nevil: 1")]), refused);
        assert_eq!(kind(&[("x y", "1")]), refused);
        assert_eq!(kind(&[("", "1")]), refused);
        assert_eq!(kind(&[("Connection", "keep-alive")]), refused);
        assert_eq!(kind(&[("transfer-encoding", "chunked")]), refused);
        assert_eq!(kind(&[("x", " padded")]), refused);
        assert_eq!(kind(&[("x", "tab\tinside ok")]), None);
    }

    #[test]
    fn errors_name_the_url_and_the_cause() {
        let e = get(&Request::new("ftp://user:pw@h/x")).unwrap_err();
        assert_eq!(e.kind(), FetchErrorKind::Url);
        assert_eq!(e.url(), "ftp://***@h/x");
        assert_eq!(
            e.to_string(),
            "GET ftp://***@h/x: invalid URL: scheme \"ftp\" is not supported (only http and https)"
        );
        let e = get(&Request {
            connect_to: Some(Vec::new()),
            ..Request::new("http://h/")
        })
        .unwrap_err();
        assert_eq!(e.kind(), FetchErrorKind::Connect);
        let e = get(&Request {
            timeout: Duration::ZERO,
            ..Request::new("http://127.0.0.1:9/")
        })
        .unwrap_err();
        assert_eq!(e.kind(), FetchErrorKind::Timeout, "{e}");
    }
}
