//! Replies ringway writes itself: errors, and routes' `direct_response`.
//!
//! Every reply is rendered once, when a worker builds its snapshot, into one buffer per
//! connection disposition (keep-alive or close), so sending one is a reference-count
//! bump and a single write: no formatting on the request path. A HEAD request gets the
//! same buffer cut after the head.
//!
//! The error statuses and body texts live in one per-listener [`LocalReplies`] profile,
//! so that a later Envoy-compatibility profile can swap in Envoy's exact texts.

use bytes::{BufMut, Bytes, BytesMut};

/// A pre-rendered response.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    keep_alive: Bytes,
    close: Bytes,
    keep_alive_head_len: usize,
    close_head_len: usize,
}

impl Reply {
    /// Renders a response with a body. `content_type` may be empty (no header).
    pub fn new(status: u16, content_type: &str, body: &[u8]) -> Self {
        let (keep_alive, keep_alive_head_len) = render(status, content_type, body, false);
        let (close, close_head_len) = render(status, content_type, body, true);
        Reply {
            status,
            keep_alive,
            close,
            keep_alive_head_len,
            close_head_len,
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The bytes to send: with `connection: close` when the connection will be closed
    /// after it, and without the body for a HEAD request.
    pub fn bytes(&self, close: bool, head_only: bool) -> Bytes {
        let (bytes, head_len) = if close {
            (&self.close, self.close_head_len)
        } else {
            (&self.keep_alive, self.keep_alive_head_len)
        };
        if head_only {
            bytes.slice(..head_len)
        } else {
            bytes.clone()
        }
    }
}

fn render(status: u16, content_type: &str, body: &[u8], close: bool) -> (Bytes, usize) {
    let mut out = BytesMut::with_capacity(128 + body.len());
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.to_string().as_bytes());
    out.put_u8(b' ');
    out.put_slice(reason(status).as_bytes());
    out.put_slice(b"\r\n");
    if !content_type.is_empty() {
        out.put_slice(b"content-type: ");
        out.put_slice(content_type.as_bytes());
        out.put_slice(b"\r\n");
    }
    // 1xx, 204 and 304 carry no body and, for 1xx/204, no Content-Length (RFC 9110 8.6).
    let bodyless = matches!(status, 100..=199 | 204 | 304);
    if !matches!(status, 100..=199 | 204) {
        out.put_slice(b"content-length: ");
        out.put_slice(body.len().to_string().as_bytes());
        out.put_slice(b"\r\n");
    }
    if close {
        out.put_slice(b"connection: close\r\n");
    }
    out.put_slice(b"\r\n");
    let head_len = out.len();
    if !bodyless {
        out.put_slice(body);
    }
    (out.freeze(), head_len)
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
    /// The head did not arrive in time (408).
    RequestTimeout,
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
    /// Connecting to the upstream failed or timed out (503).
    UpstreamConnectFailure,
    /// The upstream's connection limit and pending queue are full (503).
    UpstreamOverflow,
    /// The upstream sent something that is not a valid response, or reset before one (502).
    BadGateway,
    /// The upstream did not answer within the route's timeout (504).
    GatewayTimeout,
    /// An HTTP version other than 1.0 and 1.1 (505).
    VersionNotSupported,
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
            LocalReplyKind::RequestTimeout => (408, "request timeout\n"),
            LocalReplyKind::ContentTooLarge => (413, "request body too large\n"),
            LocalReplyKind::UriTooLong => (414, "request line too long\n"),
            LocalReplyKind::HeadersTooLarge => (431, "request headers too large\n"),
            LocalReplyKind::NotImplemented => (501, "transfer coding not implemented\n"),
            LocalReplyKind::NoUpstream => (503, "no healthy upstream\n"),
            LocalReplyKind::UpstreamConnectFailure => (503, "upstream connect error\n"),
            LocalReplyKind::UpstreamOverflow => (503, "upstream overflow\n"),
            LocalReplyKind::BadGateway => (502, "bad upstream response\n"),
            LocalReplyKind::GatewayTimeout => (504, "upstream request timeout\n"),
            LocalReplyKind::VersionNotSupported => (505, "http version not supported\n"),
        }
    }
}

const KINDS: [LocalReplyKind; 13] = [
    LocalReplyKind::BadRequest,
    LocalReplyKind::NoRoute,
    LocalReplyKind::RequestTimeout,
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
];

/// A listener's profile of local replies, rendered once per snapshot.
#[derive(Debug, Clone)]
pub struct LocalReplies {
    replies: Vec<Reply>,
}

impl LocalReplies {
    /// ringway's own texts: short, lower-case, one line.
    pub fn ringway() -> Self {
        LocalReplies {
            replies: KINDS
                .iter()
                .map(|kind| {
                    let (status, body) = kind.status_and_body();
                    Reply::new(status, "text/plain", body.as_bytes())
                })
                .collect(),
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

    #[test]
    fn replies_are_rendered_for_both_dispositions() {
        let reply = Reply::new(200, "text/plain", b"ok\n");
        assert_eq!(
            &reply.bytes(false, false)[..],
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n"
        );
        assert_eq!(
            &reply.bytes(true, true)[..],
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn bodyless_statuses_send_no_body() {
        let reply = Reply::new(204, "", b"ignored");
        assert_eq!(
            &reply.bytes(false, false)[..],
            b"HTTP/1.1 204 No Content\r\n\r\n"
        );
        let reply = Reply::new(304, "", b"ignored");
        assert_eq!(
            &reply.bytes(false, false)[..],
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 7\r\n\r\n"
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
}
