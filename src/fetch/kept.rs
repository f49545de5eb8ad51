//! A connection kept between fetches by one caller: HTTP/1.1 keep-alive for the span
//! exporter, which under load POSTs a batch every few milliseconds to the same
//! collector (a new TCP connection per batch, and a TLS handshake per batch to a TLS
//! collector, cost more than the batch, and leave a socket in TIME_WAIT each), and for
//! HTTP health checks (Envoy's `reuse_connection`: one connection per checked host).
//!
//! Design: at most one idle connection per [`Kept`], owned by its caller (no pool,
//! nothing shared). It is reused for the next request to the same [`Origin`] (the
//! URL's scheme, host and port, the TLS name and configuration) when its address is
//! still one the request may connect to, it has been idle less than its caller's limit
//! ([`KEEP_IDLE`] unless [`Kept::idle_for`] says otherwise) and the server's
//! `keep-alive: timeout`, if any, and a non-blocking peek finds nothing arrived on it
//! (a server that closed it, or sent a 408, makes it unfit). A server may still close
//! it while the request goes out, the race every keep-alive client has: the caller
//! ([`super::send_kept`]) sends a request that failed on a reused connection before
//! any byte of an answer once more, on a new connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use super::conn::Stream;

/// How long a connection may stay idle before it is not reused: below the shortest
/// idle timeout of common servers (Node.js closes after 5 s; nginx, Go and Envoy wait
/// far longer), so that the server rarely closes it first.
pub const KEEP_IDLE: Duration = Duration::from_secs(4);

/// The idle connection a caller keeps between its fetches (start with
/// `Kept::default()`, or [`Kept::idle_for`]; dropping it closes the connection).
#[derive(Debug)]
pub struct Kept {
    idle: Option<Idle>,
    /// The longest a connection is kept idle (before the server's own limit).
    most: Duration,
}

impl Default for Kept {
    fn default() -> Kept {
        Kept::idle_for(KEEP_IDLE)
    }
}

#[derive(Debug)]
struct Idle {
    stream: Stream,
    origin: Origin,
    since: Instant,
    limit: Duration,
}

/// Where a connection goes, as far as reusing it is concerned.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    /// `scheme://host:port` of the URL.
    pub authority: String,
    /// The name sent as SNI and verified (TLS only).
    pub server_name: Option<String>,
    /// The TLS configuration the connection was made with (compared by identity).
    pub tls: Option<Arc<ClientConfig>>,
}

impl PartialEq for Origin {
    fn eq(&self, other: &Origin) -> bool {
        let same_tls = match (&self.tls, &other.tls) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        same_tls && self.authority == other.authority && self.server_name == other.server_name
    }
}

impl Kept {
    /// Keeps connections idle for up to `most` (or the server's `keep-alive: timeout`,
    /// if shorter). Health checks keep theirs for good (`Duration::MAX`), as Envoy's
    /// `reuse_connection` does: a check runs every few seconds, past [`KEEP_IDLE`], and
    /// a server that closes the connection meanwhile is seen by the peek before the
    /// next request.
    pub fn idle_for(most: Duration) -> Kept {
        Kept { idle: None, most }
    }

    /// The kept connection, if it may carry a request to `origin` (connecting only to
    /// `allowed`, when given) now. Whatever the answer, the kept connection is taken:
    /// one that does not fit is closed.
    pub(super) fn take(
        &mut self,
        origin: &Origin,
        allowed: Option<&[SocketAddr]>,
    ) -> Option<Stream> {
        let mut idle = self.idle.take()?;
        let fits = idle.origin == *origin
            && idle.since.elapsed() < idle.limit
            && allowed.is_none_or(|addrs| idle.stream.peer().is_some_and(|p| addrs.contains(&p)))
            && idle.stream.is_quiet();
        fits.then_some(idle.stream)
    }

    /// Keeps `stream` for the next request to `origin`, for at most `limit` (the
    /// server's `keep-alive: timeout`, if it gave one) and this `Kept`'s own limit.
    pub(super) fn keep(&mut self, stream: Stream, origin: Origin, limit: Option<Duration>) {
        let limit = limit.map_or(self.most, |l| l.min(self.most));
        if limit.is_zero() {
            return;
        }
        self.idle = Some(Idle {
            stream,
            origin,
            since: Instant::now(),
            limit,
        });
    }

    /// Whether a connection is kept (for tests).
    pub fn holds_one(&self) -> bool {
        self.idle.is_some()
    }
}

/// The server's `keep-alive: timeout=N`, if its value has one.
pub(super) fn keep_alive_timeout(value: &str) -> Option<Duration> {
    crate::http1::header::keep_alive_timeout(value.as_bytes()).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_keep_alive_timeout_is_read() {
        assert_eq!(
            keep_alive_timeout("timeout=5, max=100"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            keep_alive_timeout("max=100, Timeout = 2"),
            Some(Duration::from_secs(2))
        );
        assert_eq!(keep_alive_timeout("max=100"), None);
        assert_eq!(keep_alive_timeout("timeout=soon"), None);
    }
}
