//! Errors of a forwarded request: what went wrong, on which side, and how far the
//! exchange had got.
//!
//! The two progress flags decide everything that follows a failure: a request whose bytes
//! never reached the upstream may be sent again; a request that reached it may be sent
//! again only if it is idempotent and failed on a reused connection before any response
//! byte (the origin closing an idle keep-alive connection as ringway reused it); and once
//! response bytes went to the client, no local reply is possible, only closing the
//! connection.
//!
//! An error keeps its cause: the errno the kernel gave, or the peer closing, so that a
//! log line says what happened rather than only where.

use std::{fmt, io};

use crate::local_reply::LocalReplyKind;

/// Which peer a failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client (downstream).
    Client,
    /// The upstream.
    Upstream,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The cluster has no endpoint.
    NoHealthyUpstream,
    /// The endpoint's connection limit and pending queue are full.
    Overflow,
    /// Connecting failed (refused, unreachable, no socket file).
    ConnectFailed,
    /// Connecting took longer than the cluster's connect timeout.
    ConnectTimeout,
    /// The upstream reset or closed the connection before the response was complete.
    UpstreamReset,
    /// The upstream's response is not valid HTTP/1.1.
    BadResponse,
    /// The route timeout passed.
    Timeout,
    /// An attempt's `per_try_timeout` (or `per_try_idle_timeout`) passed before its
    /// response started (504 when not retried).
    PerTryTimeout,
    /// The request's `max_stream_duration` passed (408 before the response starts).
    DurationTimeout,
    /// The upstream answered with a response the route's retry policy repeats; it was
    /// not forwarded (never reported: the request is sent again).
    RetriedResponse,
    /// An attempt's per-try timeout passed on a hedging route and a retry goes out
    /// beside it (never reported: the attempt is still awaited).
    Hedged,
    /// The request body did not arrive within `request_timeout` (408).
    RequestTimeout,
    /// No read or write of the exchange completed within `stream_idle_timeout` (408
    /// before the response starts).
    StreamIdleTimeout,
    /// The client's body framing is invalid (status to answer).
    BadRequestBody(u16),
    /// The body is larger than `max_request_body`.
    RequestTooLarge,
    /// The client went away.
    ClientGone,
}

impl ErrorKind {
    /// A short description, for spans and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NoHealthyUpstream => "no healthy upstream",
            ErrorKind::Overflow => "upstream overflow",
            ErrorKind::ConnectFailed => "connection failure",
            ErrorKind::ConnectTimeout => "connection timeout",
            ErrorKind::UpstreamReset => "upstream reset",
            ErrorKind::BadResponse => "protocol error",
            ErrorKind::Timeout => "upstream request timeout",
            ErrorKind::PerTryTimeout => "per try timeout",
            ErrorKind::DurationTimeout => "max stream duration reached",
            ErrorKind::RetriedResponse => "retried response",
            ErrorKind::Hedged => "hedged",
            ErrorKind::RequestTimeout => "request timeout",
            ErrorKind::StreamIdleTimeout => "stream idle timeout",
            ErrorKind::BadRequestBody(_) => "bad request body",
            ErrorKind::RequestTooLarge => "request too large",
            ErrorKind::ClientGone => "downstream disconnect",
        }
    }
}

/// What the kernel or the peer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cause {
    /// Nothing more is known (a timeout, a protocol error found by ringway).
    #[default]
    Unknown,
    /// The peer closed the connection (a read returned 0 bytes).
    Closed,
    /// An errno.
    Os(i32),
}

impl Cause {
    /// The cause of a failed read or write: its errno, or the peer closing when it
    /// returned 0 bytes.
    pub fn of(result: &io::Result<usize>) -> Cause {
        match result {
            Ok(0) => Cause::Closed,
            Ok(_) => Cause::Unknown,
            Err(e) => e.raw_os_error().map_or(Cause::Unknown, Cause::Os),
        }
    }

    /// The cause of an `io::Error`.
    pub fn of_error(e: &io::Error) -> Cause {
        e.raw_os_error().map_or(Cause::Unknown, Cause::Os)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Unknown => Ok(()),
            Cause::Closed => f.write_str(": closed by the peer"),
            Cause::Os(errno) => write!(f, ": {}", io::Error::from_raw_os_error(*errno)),
        }
    }
}

/// A failed exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    /// What happened.
    pub kind: ErrorKind,
    /// Where.
    pub side: Side,
    /// Whether any request byte was written to the upstream.
    pub request_written: bool,
    /// Whether any response byte was forwarded to the client.
    pub response_started: bool,
    /// What the kernel or the peer said.
    pub cause: Cause,
}

impl Error {
    /// An error before anything was sent either way.
    pub fn new(kind: ErrorKind, side: Side) -> Self {
        Error {
            kind,
            side,
            request_written: false,
            response_started: false,
            cause: Cause::Unknown,
        }
    }

    /// The upstream closed or reset the connection.
    pub fn upstream_reset(written: bool, started: bool, cause: Cause) -> Self {
        Error {
            request_written: written,
            response_started: started,
            cause,
            ..Error::new(ErrorKind::UpstreamReset, Side::Upstream)
        }
    }

    /// The client went away.
    pub fn client_gone(written: bool, started: bool, cause: Cause) -> Self {
        Error {
            request_written: written,
            response_started: started,
            cause,
            ..Error::new(ErrorKind::ClientGone, Side::Client)
        }
    }

    /// The upstream's response broke HTTP/1.1.
    pub fn bad_response(started: bool) -> Self {
        Error {
            request_written: true,
            response_started: started,
            ..Error::new(ErrorKind::BadResponse, Side::Upstream)
        }
    }

    /// The same error, with `cause`.
    pub fn because(self, cause: Cause) -> Self {
        Error { cause, ..self }
    }

    /// Whether to send the request again on a fresh connection: only for an upstream reset
    /// before any response byte, on a connection taken from the pool, for a request that
    /// is idempotent or never reached the upstream, and whose body ringway still holds.
    pub fn retryable(&self, reused: bool, idempotent: bool, replayable: bool) -> bool {
        self.kind == ErrorKind::UpstreamReset
            && !self.response_started
            && reused
            && replayable
            && (idempotent || !self.request_written)
    }

    /// Whether the answer ringway makes for this error stands for the upstream's, and
    /// is charged to the cluster's and the route's `upstream_rq_<code>` (Envoy's
    /// router charges an abort: a connect failure, an overflow, a reset, a timeout;
    /// and its "no healthy upstream" 503, `sendNoHealthyUpstreamResponse`; not the
    /// client's faults).
    pub fn charged_upstream(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::NoHealthyUpstream
                | ErrorKind::ConnectFailed
                | ErrorKind::ConnectTimeout
                | ErrorKind::Overflow
                | ErrorKind::UpstreamReset
                | ErrorKind::BadResponse
                | ErrorKind::Timeout
                | ErrorKind::PerTryTimeout
        )
    }

    /// The local reply to send, or `None` when response bytes already went out (the
    /// connection is then closed mid-response) or the client is gone.
    pub fn reply(&self) -> Option<LocalReplyKind> {
        if self.response_started {
            return None;
        }
        Some(match self.kind {
            ErrorKind::NoHealthyUpstream => LocalReplyKind::NoUpstream,
            ErrorKind::Overflow => LocalReplyKind::UpstreamOverflow,
            ErrorKind::ConnectFailed => LocalReplyKind::UpstreamConnectFailure,
            ErrorKind::ConnectTimeout => LocalReplyKind::UpstreamConnectTimeout,
            ErrorKind::UpstreamReset => LocalReplyKind::UpstreamReset,
            ErrorKind::BadResponse => LocalReplyKind::BadGateway,
            ErrorKind::Timeout | ErrorKind::PerTryTimeout => LocalReplyKind::GatewayTimeout,
            ErrorKind::DurationTimeout => LocalReplyKind::DurationTimeout,
            ErrorKind::RetriedResponse => LocalReplyKind::BadGateway,
            ErrorKind::Hedged => LocalReplyKind::GatewayTimeout,
            ErrorKind::RequestTimeout => LocalReplyKind::RequestTimeout,
            ErrorKind::StreamIdleTimeout => LocalReplyKind::StreamIdleTimeout,
            ErrorKind::BadRequestBody(status) => LocalReplyKind::for_status(status),
            ErrorKind::RequestTooLarge => LocalReplyKind::ContentTooLarge,
            ErrorKind::ClientGone => return None,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}{} ({:?} side; request written: {}, response started: {})",
            self.kind, self.cause, self.side, self.request_written, self.response_started
        )
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_resets_before_the_response_on_reused_connections_retry() {
        let mut e = Error::new(ErrorKind::UpstreamReset, Side::Upstream);
        e.request_written = true;
        assert!(e.retryable(true, true, true));
        assert!(!e.retryable(false, true, true), "fresh connection");
        assert!(
            !e.retryable(true, false, true),
            "POST that reached the upstream"
        );
        assert!(!e.retryable(true, true, false), "body no longer held");
        e.request_written = false;
        assert!(e.retryable(true, false, true), "never written");
        e.response_started = true;
        assert!(!e.retryable(true, true, true));
        assert_eq!(e.reply(), None);
        let timeout = Error::new(ErrorKind::Timeout, Side::Upstream);
        assert!(!timeout.retryable(true, true, true));
        assert_eq!(timeout.reply(), Some(LocalReplyKind::GatewayTimeout));
    }

    #[test]
    fn the_cause_is_in_the_message() {
        let reset = Error::new(ErrorKind::UpstreamReset, Side::Upstream)
            .because(Cause::of(&Err(io::Error::from_raw_os_error(104))));
        let text = reset.to_string();
        assert!(
            text.starts_with("UpstreamReset: Connection reset by peer (os error 104)"),
            "{text}"
        );
        let closed =
            Error::new(ErrorKind::UpstreamReset, Side::Upstream).because(Cause::of(&Ok(0)));
        assert!(closed.to_string().contains("closed by the peer"));
    }
}
