//! Replies ringway writes itself: errors, and routes' `direct_response`.
//!
//! What does not change between requests (the status line, `content-type`,
//! `content-length` and the body) is rendered once, when a worker builds its snapshot.
//! Each answer is then assembled into one of the worker's pooled chunks: that part, the
//! worker's current `date`, any headers the request adds (a 401's `www-authenticate`, a
//! 429's `retry-after`), `connection: close` when the connection ends after it, and the
//! body unless the request was HEAD. A copy of a hundred bytes or so and one write; no
//! formatting and no allocation on the request path.
//!
//! The error statuses and body texts live in one per-listener [`LocalReplies`] profile,
//! so that a later Envoy-compatibility profile can swap in Envoy's exact texts.

use bytes::{BufMut, Bytes, BytesMut};

/// A local reply: the parts rendered once.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    /// Status line and the content headers, each line with its CRLF, without the blank
    /// line that ends the head.
    head: Bytes,
    /// Empty for statuses that carry no body.
    body: Bytes,
}

impl Reply {
    /// Renders a response with a body. `content_type` may be empty (no header).
    pub fn new(status: u16, content_type: &str, body: &[u8]) -> Self {
        let mut head = BytesMut::with_capacity(128);
        head.put_slice(b"HTTP/1.1 ");
        head.put_slice(status.to_string().as_bytes());
        head.put_u8(b' ');
        head.put_slice(reason(status).as_bytes());
        head.put_slice(b"\r\n");
        if !content_type.is_empty() {
            head.put_slice(b"content-type: ");
            head.put_slice(content_type.as_bytes());
            head.put_slice(b"\r\n");
        }
        // 1xx, 204 and 304 carry no body and, for 1xx/204, no Content-Length (RFC 9110 8.6).
        let bodyless = matches!(status, 100..=199 | 204 | 304);
        if !matches!(status, 100..=199 | 204) {
            head.put_slice(b"content-length: ");
            head.put_slice(body.len().to_string().as_bytes());
            head.put_slice(b"\r\n");
        }
        Reply {
            status,
            head: head.freeze(),
            body: if bodyless {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(body)
            },
        }
    }

    /// The same reply with one more header line (`name: value\r\n`).
    pub fn with_header(self, line: &[u8]) -> Self {
        let mut head = BytesMut::from(&self.head[..]);
        head.put_slice(line);
        Reply {
            head: head.freeze(),
            ..self
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body's bytes (what [`Self::render`] writes after the head).
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// Appends the whole answer to `out`: with `date_line` (a whole `date: ...\r\n` line,
    /// as `clock` keeps it), the header
    /// lines `extra` appends (each `name: value\r\n`), `connection: close` when the
    /// connection will be closed after it, and without the body for a HEAD request.
    pub fn render(
        &self,
        out: &mut Vec<u8>,
        close: bool,
        head_only: bool,
        date_line: &[u8],
        extra: impl FnOnce(&mut Vec<u8>),
    ) {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(date_line);
        extra(out);
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

/// The reason phrase for a status code (informational only; clients ignore it).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

/// Why ringway answers a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalReplyKind {
    /// The codec rejected the request (400).
    BadRequest,
    /// No route matched (404).
    NoRoute,
    /// The head did not arrive in time, or the body within `request_timeout` (408).
    RequestTimeout,
    /// No read or write of the exchange completed within `stream_idle_timeout` (408).
    StreamIdleTimeout,
    /// The body is larger than ringway will read for a local reply (413).
    ContentTooLarge,
    /// The request line is too long (414).
    UriTooLong,
    /// The head or a header section is too large (431).
    HeadersTooLarge,
    /// An unknown transfer coding (501).
    NotImplemented,
    /// The route's cluster has no endpoint to send to (503).
    NoUpstream,
    /// Connecting to the upstream failed (503).
    UpstreamConnectFailure,
    /// Connecting to the upstream timed out (503).
    UpstreamConnectTimeout,
    /// The upstream closed or reset its connection before a response (502; Envoy: 503).
    UpstreamReset,
    /// The upstream's connection limit and pending queue are full (503).
    UpstreamOverflow,
    /// The upstream sent something that is not a valid response (502).
    BadGateway,
    /// The upstream did not answer within the route's timeout (504).
    GatewayTimeout,
    /// An HTTP version other than 1.0 and 1.1 (505).
    VersionNotSupported,
    /// The request's `max_stream_duration` passed before its response started (408).
    DurationTimeout,
    /// An `Upgrade` the route does not allow (403, as Envoy answers it).
    UpgradeRefused,
}

impl LocalReplyKind {
    /// The kind for a codec rejection status.
    pub fn for_status(status: u16) -> Self {
        match status {
            408 => LocalReplyKind::RequestTimeout,
            413 => LocalReplyKind::ContentTooLarge,
            414 => LocalReplyKind::UriTooLong,
            431 => LocalReplyKind::HeadersTooLarge,
            501 => LocalReplyKind::NotImplemented,
            505 => LocalReplyKind::VersionNotSupported,
            _ => LocalReplyKind::BadRequest,
        }
    }

    fn status_and_body(self) -> (u16, &'static str) {
        match self {
            LocalReplyKind::BadRequest => (400, "bad request\n"),
            LocalReplyKind::NoRoute => (404, "no route\n"),
            LocalReplyKind::RequestTimeout | LocalReplyKind::StreamIdleTimeout => {
                (408, "request timeout\n")
            }
            LocalReplyKind::ContentTooLarge => (413, "request body too large\n"),
            LocalReplyKind::UriTooLong => (414, "request line too long\n"),
            LocalReplyKind::HeadersTooLarge => (431, "request headers too large\n"),
            LocalReplyKind::NotImplemented => (501, "transfer coding not implemented\n"),
            LocalReplyKind::NoUpstream => (503, "no healthy upstream\n"),
            LocalReplyKind::UpstreamConnectFailure | LocalReplyKind::UpstreamConnectTimeout => {
                (503, "upstream connect error\n")
            }
            LocalReplyKind::UpstreamOverflow => (503, "upstream overflow\n"),
            LocalReplyKind::BadGateway | LocalReplyKind::UpstreamReset => {
                (502, "bad upstream response\n")
            }
            LocalReplyKind::GatewayTimeout => (504, "upstream request timeout\n"),
            LocalReplyKind::DurationTimeout => (408, "request duration limit reached\n"),
            LocalReplyKind::VersionNotSupported => (505, "http version not supported\n"),
            LocalReplyKind::UpgradeRefused => (403, "upgrade not allowed on this route\n"),
        }
    }
}

const KINDS: [LocalReplyKind; 18] = [
    LocalReplyKind::BadRequest,
    LocalReplyKind::NoRoute,
    LocalReplyKind::RequestTimeout,
    LocalReplyKind::StreamIdleTimeout,
    LocalReplyKind::UpstreamConnectTimeout,
    LocalReplyKind::UpstreamReset,
    LocalReplyKind::ContentTooLarge,
    LocalReplyKind::UriTooLong,
    LocalReplyKind::HeadersTooLarge,
    LocalReplyKind::NotImplemented,
    LocalReplyKind::NoUpstream,
    LocalReplyKind::UpstreamConnectFailure,
    LocalReplyKind::UpstreamOverflow,
    LocalReplyKind::BadGateway,
    LocalReplyKind::GatewayTimeout,
    LocalReplyKind::VersionNotSupported,
    LocalReplyKind::UpgradeRefused,
    LocalReplyKind::DurationTimeout,
];

/// A listener's profile of local replies, rendered once per snapshot.
#[derive(Debug, Clone)]
pub struct LocalReplies {
    replies: Vec<Reply>,
    /// Envoy's profile: its `server` header (when the listener sets one) on every reply.
    envoy: Option<Option<Box<str>>>,
}

impl LocalReplies {
    /// ringway's own texts: short, lower-case, one line.
    pub fn ringway() -> Self {
        LocalReplies {
            replies: KINDS
                .iter()
                .map(|kind| {
                    let (status, body) = kind.status_and_body();
                    let reply = Reply::new(status, "text/plain", body.as_bytes());
                    // A circuit breaker said no: the client may tell it from a failure
                    // (the header Envoy sets, also on native listeners).
                    if *kind == LocalReplyKind::UpstreamOverflow {
                        reply.with_header(b"x-envoy-overloaded: true\r\n")
                    } else {
                        reply
                    }
                })
                .collect(),
            envoy: None,
        }
    }

    /// Envoy's local replies (`shared/docs/envoy-compat.md` 3.6, from `router.cc` and
    /// the connection manager), for listeners loaded from Envoy configs: an empty body
    /// (`content-length: 0`, no type) where Envoy sends none, Envoy's texts byte for byte
    /// where it sends one (clients match `upstream connect error or disconnect/reset
    /// before headers`), and `x-envoy-overloaded: true` on an overflow. `server` is the
    /// listener's `server` value (Envoy sets it on local replies too).
    pub fn envoy(server: Option<&str>) -> Self {
        const RESET: &str =
            "upstream connect error or disconnect/reset before headers. reset reason: ";
        LocalReplies {
            replies: KINDS
                .iter()
                .map(|kind| {
                    let (status, body) = match kind {
                        LocalReplyKind::BadRequest => (400, String::new()),
                        LocalReplyKind::NoRoute => (404, String::new()),
                        LocalReplyKind::RequestTimeout => (408, "request timeout".into()),
                        LocalReplyKind::StreamIdleTimeout => (408, "stream timeout".into()),
                        LocalReplyKind::ContentTooLarge => (413, "Payload Too Large".into()),
                        LocalReplyKind::UriTooLong => (414, String::new()),
                        LocalReplyKind::HeadersTooLarge => (431, String::new()),
                        LocalReplyKind::NotImplemented => (501, String::new()),
                        LocalReplyKind::NoUpstream => (503, "no healthy upstream".into()),
                        LocalReplyKind::UpstreamConnectFailure => {
                            (503, format!("{RESET}remote connection failure"))
                        }
                        LocalReplyKind::UpstreamConnectTimeout => {
                            (503, format!("{RESET}connection timeout"))
                        }
                        LocalReplyKind::UpstreamOverflow => (503, format!("{RESET}overflow")),
                        LocalReplyKind::UpstreamReset => {
                            (503, format!("{RESET}connection termination"))
                        }
                        LocalReplyKind::BadGateway => (502, format!("{RESET}protocol error")),
                        LocalReplyKind::GatewayTimeout => (504, "upstream request timeout".into()),
                        LocalReplyKind::DurationTimeout => {
                            (408, "downstream duration timeout".into())
                        }
                        LocalReplyKind::VersionNotSupported => (505, String::new()),
                        LocalReplyKind::UpgradeRefused => (403, String::new()),
                    };
                    let content_type = if body.is_empty() { "" } else { "text/plain" };
                    let mut reply = Reply::new(status, content_type, body.as_bytes());
                    if *kind == LocalReplyKind::UpstreamOverflow {
                        reply = reply.with_header(b"x-envoy-overloaded: true\r\n");
                    }
                    if let Some(server) = server {
                        reply = reply.with_header(format!("server: {server}\r\n").as_bytes());
                    }
                    reply
                })
                .collect(),
            envoy: Some(server.map(Into::into)),
        }
    }

    /// Whether this is Envoy's profile.
    pub fn is_envoy(&self) -> bool {
        self.envoy.is_some()
    }

    /// A filter's own reply in this profile: `envoy_text` as Envoy writes it (no line
    /// end, with the listener's `server`) or, in ringway's, followed by a newline.
    pub fn custom(&self, status: u16, envoy_text: &str) -> Reply {
        match &self.envoy {
            Some(server) => {
                let reply = Reply::new(status, "text/plain", envoy_text.as_bytes());
                match server {
                    Some(server) => reply.with_header(format!("server: {server}\r\n").as_bytes()),
                    None => reply,
                }
            }
            None => Reply::new(status, "text/plain", format!("{envoy_text}\n").as_bytes()),
        }
    }

    /// The reply for `kind`.
    pub fn get(&self, kind: LocalReplyKind) -> &Reply {
        let index = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        &self.replies[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8] = b"date: Sat, 05 Dec 2026 00:00:00 GMT\r\n";

    fn rendered(reply: &Reply, close: bool, head_only: bool, extra: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        reply.render(&mut out, close, head_only, DATE, |out| {
            for (name, value) in extra {
                out.extend_from_slice(name);
                out.extend_from_slice(b": ");
                out.extend_from_slice(value);
                out.extend_from_slice(b"\r\n");
            }
        });
        out
    }

    #[test]
    fn replies_are_rendered_for_both_dispositions() {
        let reply = Reply::new(200, "text/plain", b"ok\n");
        assert_eq!(
            rendered(&reply, false, false, &[]),
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\ndate: Sat, 05 Dec 2026 00:00:00 GMT\r\n\r\nok\n"
        );
        assert_eq!(
            rendered(&reply, true, true, &[]),
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\ndate: Sat, 05 Dec 2026 00:00:00 GMT\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn per_request_headers_go_before_the_end_of_the_head() {
        let reply = Reply::new(401, "text/plain", b"no\n");
        let out = rendered(
            &reply,
            false,
            false,
            &[(b"www-authenticate", b"Bearer realm=\"api\"")],
        );
        assert_eq!(
            out,
            b"HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\ncontent-length: 3\r\ndate: Sat, 05 Dec 2026 00:00:00 GMT\r\nwww-authenticate: Bearer realm=\"api\"\r\n\r\nno\n"
        );
    }

    #[test]
    fn bodyless_statuses_send_no_body() {
        let reply = Reply::new(204, "", b"ignored");
        assert_eq!(
            rendered(&reply, false, false, &[]),
            b"HTTP/1.1 204 No Content\r\ndate: Sat, 05 Dec 2026 00:00:00 GMT\r\n\r\n"
        );
        let reply = Reply::new(304, "", b"ignored");
        assert_eq!(
            rendered(&reply, false, false, &[]),
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 7\r\ndate: Sat, 05 Dec 2026 00:00:00 GMT\r\n\r\n"
        );
    }

    #[test]
    fn every_kind_has_its_status() {
        let profile = LocalReplies::ringway();
        for kind in KINDS {
            assert_eq!(profile.get(kind).status(), kind.status_and_body().0);
        }
        assert_eq!(
            LocalReplyKind::for_status(431),
            LocalReplyKind::HeadersTooLarge
        );
        assert_eq!(LocalReplyKind::for_status(400), LocalReplyKind::BadRequest);
    }

    #[test]
    fn envoys_profile_has_envoys_texts() {
        let replies = LocalReplies::envoy(Some("envoy"));
        let render = |kind| {
            let mut out = Vec::new();
            replies
                .get(kind)
                .render(&mut out, false, false, b"date: x\r\n", |_| {});
            String::from_utf8(out).unwrap()
        };
        let overflow = render(LocalReplyKind::UpstreamOverflow);
        assert!(
            overflow.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{overflow}"
        );
        assert!(
            overflow.contains("x-envoy-overloaded: true\r\n"),
            "{overflow}"
        );
        assert!(overflow.contains("server: envoy\r\n"), "{overflow}");
        assert!(overflow.ends_with("\r\n\r\nupstream connect error or disconnect/reset before headers. reset reason: overflow"), "{overflow}");
        let no_route = render(LocalReplyKind::NoRoute);
        assert!(
            no_route.contains("content-length: 0\r\n") && !no_route.contains("content-type"),
            "{no_route}"
        );
        assert!(render(LocalReplyKind::UpstreamReset).starts_with("HTTP/1.1 503 "));
        assert!(render(LocalReplyKind::BadGateway).ends_with("reset reason: protocol error"));
        assert!(render(LocalReplyKind::StreamIdleTimeout).ends_with("\r\n\r\nstream timeout"));
    }
}
