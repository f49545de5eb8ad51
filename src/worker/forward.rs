//! Forwarding one request to a cluster and relaying the response.
//!
//! The exchange, in order: pick an endpoint (weighted round robin), take a pooled
//! connection or connect, send the head and the body bytes already received in one
//! write, stream the rest of the body, read the response head (relaying 1xx), send it
//! on, stream the response body, and give the connection back to the pool only when the
//! response was read to its end.
//!
//! - **Heads** are rebuilt into the connection's write chunk: ringway's own request or
//!   status line (`HTTP/1.1`, the normalised path), then the received header lines as
//!   spans of the read buffer with the overlay's changes (hop-by-hop fields removed,
//!   forwarding headers added). The body bytes that arrived with the head go in the same
//!   write, so a small request or response costs one write each way.
//! - **Bodies** stream through one chunk per direction: read, then write the slice that
//!   was read (the chunk is lent to the kernel and comes back; payload bytes are not
//!   copied). One write is in flight per direction and reading resumes only when it
//!   completes, which is the backpressure. Chunked bodies are always re-framed (new size
//!   lines, extensions dropped, trailers only when valid), so their payload is copied
//!   into the write chunk next to the size lines.
//! - **Retry**: a request that fails on a reused connection before any response byte is
//!   sent once more on a fresh connection when it is idempotent or never reached the
//!   upstream, and its body is still held (`error::Error::retryable`).
//! - **Timeouts**: the route timeout bounds the exchange from the end of the request head
//!   (504 before the response starts, a closed connection after); the cluster's connect
//!   timeout bounds connecting (503).

use std::time::{Duration, Instant};

use monoio::{
    buf::{IoBuf, IoBufMut},
    io::{AsyncReadRent, AsyncWriteRentExt},
};

use super::connection::{Connection, Read};
use crate::{
    config::ExpectContinue,
    error::{Error, ErrorKind, Side},
    forwarding,
    http1::{
        self, BodyFraming, ChunkEvent, ChunkedDecoder, ChunkedEncoder, HeadScanner, Method,
        ResponseFraming, Segment, Version,
    },
    stats::names::{cluster as cx, http as rq},
    upstream::{
        conn::{ConnectError, UpstreamConn},
        pool::Lease,
        ClusterSnapshot,
    },
};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How the client connection goes on after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close (after a lingering close when a reply was sent).
    Close,
}

/// Where the request body stands.
#[derive(Debug)]
enum RequestBody {
    /// Fully in the write chunk (or there is none).
    Complete,
    /// `remaining` bytes still to come from the client.
    Length { remaining: u64 },
    /// More chunks to come from the client.
    Chunked(Box<ChunkedDecoder>),
}

/// Outcome of the exchange, for stats and the caller.
#[derive(Debug)]
pub(super) struct Forwarded {
    pub next: Next,
    pub status: u16,
}

impl Connection<'_> {
    /// Forwards the request whose head is `buf[start..start + head_len]` to `cluster`.
    pub(super) async fn forward(
        &mut self,
        head_len: usize,
        route_timeout: Duration,
        cluster: &ClusterSnapshot,
        path: &[u8],
    ) -> Result<Forwarded, Error> {
        let l = self.listener;
        let deadline = Instant::now() + route_timeout;
        if let (Some(max), BodyFraming::ContentLength(n)) =
            (l.proxy.max_request_body, self.request.framing)
        {
            if n > max {
                return Err(Error::new(ErrorKind::RequestTooLarge, Side::Client));
            }
        }
        let idempotent = matches!(
            self.request.method,
            Method::Get | Method::Head | Method::Options | Method::Trace | Method::Put | Method::Delete
        );
        let answer_continue = self.request.expect_continue
            && l.proxy.expect_continue == ExpectContinue::Answer;

        // The upstream head, and whatever body arrived with it, in one write chunk.
        let mut out = self.worker.bufs.take();
        self.build_request_head(head_len, path, answer_continue, &mut out);
        self.start += head_len;
        let mut body = self.buffered_request_body(&mut out)?;
        let replayable = matches!(body, RequestBody::Complete);

        let mut retried = false;
        loop {
            let mut lease = self.acquire(cluster, deadline, retried).await?;
            cluster.stats.get(cx::UPSTREAM_RQ_TOTAL).inc();
            if lease.reused {
                cluster.stats.get(cx::UPSTREAM_CX_POOL_REUSE).inc();
            }
            let result = self
                .exchange(&mut lease, &mut out, &mut body, deadline, answer_continue)
                .await;
            match result {
                Ok((forwarded, reusable, keep_alive)) => {
                    cluster.stats.get(cx::status_class(forwarded.status)).inc();
                    if reusable {
                        lease.release(keep_alive);
                    }
                    self.worker.bufs.give(out);
                    return Ok(forwarded);
                }
                Err(e) if !retried && e.retryable(lease.reused, idempotent, replayable) => {
                    cluster.stats.get(cx::UPSTREAM_RQ_RETRY).inc();
                    retried = true;
                }
                Err(e) => {
                    match e.kind {
                        ErrorKind::Timeout => cluster.stats.get(cx::UPSTREAM_RQ_TIMEOUT).inc(),
                        ErrorKind::BadResponse => {
                            cluster.stats.get(cx::UPSTREAM_CX_PROTOCOL_ERROR).inc()
                        }
                        _ => {}
                    }
                    self.worker.bufs.give(out);
                    return Err(e);
                }
            }
        }
    }

    /// The request line ringway sends (`HTTP/1.1`, the routed path), then the received
    /// header lines with the overlay applied.
    fn build_request_head(&mut self, head_len: usize, path: &[u8], answer_continue: bool, out: &mut Vec<u8>) {
        let l = self.listener;
        let head = &self.buf[self.start..self.start + head_len];
        let request = &mut self.request;
        request.strip_hop_by_hop(head);
        self.client_ip = forwarding::apply(
            request,
            head,
            self.peer.ip(),
            &l.proxy,
            &self.worker.random,
            &mut self.scratch,
        );
        if answer_continue {
            for (index, header) in request.headers.iter().enumerate() {
                if header.is(head, "expect") {
                    request.overlay.remove(index);
                }
            }
        }
        if request.framing == BodyFraming::Chunked {
            // Transfer-Encoding is hop-by-hop: the body is re-framed, so say so anew.
            let _ = request.overlay.add(b"transfer-encoding", b"chunked");
        }
        out.clear();
        out.extend_from_slice(request.method_span.get(head));
        out.push(b' ');
        out.extend_from_slice(path);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let skip = request.request_line().len();
        self.segments.clear();
        let mut segments = std::mem::take(&mut self.segments);
        {
            // SAFETY of lifetimes only: the segments borrow the overlay for this block.
            let mut borrowed: Vec<Segment<'_>> = Vec::new();
            std::mem::swap(&mut borrowed, &mut segments_as(&mut segments));
            request.write_head(&mut borrowed);
            append_skipping(&borrowed, head, skip, out);
            borrowed.clear();
            std::mem::swap(&mut borrowed, &mut segments_as(&mut segments));
        }
        self.segments = segments;
    }
}
