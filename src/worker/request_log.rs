//! A connection's access-log state: what one line needs that the request loop does not
//! keep on its own.
//!
//! Design: kept out of `connection.rs` so the request loop only calls `begin`, `parsed`,
//! `add_received` and (through `Connection::complete`) `finish`, and a connection
//! without an access log carries `None` and reads no clock. The method and target are
//! copied at parse time into a per-connection `Vec` because reading a body may compact
//! the read buffer and move the head; that `Vec` is allocated on the connection's first
//! logged request and reused after (one allocation per connection, none per request).
//! Time: the wall clock (`SystemTime`) for the line's timestamp, and the monotonic clock
//! for the duration, so a clock step during a request cannot make it negative or huge.

use std::time::{Duration, Instant, SystemTime};

use crate::{
    access_log::{LogEntry, ResponseFlags, WorkerLog},
    http1::{Request, Version},
    peer::Peer,
};

/// One connection's view of the worker's access log.
#[derive(Debug)]
pub struct RequestLog<'l> {
    log: &'l WorkerLog,
    client: Peer,
    /// When the current request's first byte was seen.
    began: Option<(SystemTime, Instant)>,
    /// Head and body bytes of the current request read so far.
    received: u64,
    /// Method bytes then target bytes of the current request.
    request_line: Vec<u8>,
    method_len: usize,
    /// `None` until the head parsed.
    protocol: Option<&'static str>,
}

impl<'l> RequestLog<'l> {
    /// The log state of a connection from `client`.
    pub fn new(log: &'l WorkerLog, client: Peer) -> Self {
        RequestLog {
            log,
            client,
            began: None,
            received: 0,
            request_line: Vec::new(),
            method_len: 0,
            protocol: None,
        }
    }

    /// The request's first byte is in the buffer; later calls keep the first time.
    /// The client as a PROXY protocol header named it.
    pub fn set_client(&mut self, client: Peer) {
        self.client = client;
    }

    pub fn begin(&mut self) {
        if self.began.is_none() {
            self.began = Some((SystemTime::now(), Instant::now()));
        }
    }

    /// The head parsed: keep its method and target, and count its bytes.
    pub fn parsed(&mut self, head: &[u8], request: &Request) {
        let method = request.method_span.get(head);
        let target = request.target.get(head);
        self.request_line.clear();
        self.request_line.extend_from_slice(method);
        self.request_line.extend_from_slice(target);
        self.method_len = method.len();
        self.protocol = Some(match request.version {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        });
        self.received = head.len() as u64;
    }

    /// Body bytes read for the current request.
    pub fn add_received(&mut self, bytes: u64) {
        self.received += bytes;
    }

    /// For a request rejected before its head parsed: the bytes it had sent.
    pub fn unparsed(&mut self, buffered: u64) {
        if self.protocol.is_none() {
            self.received = buffered;
        }
    }

    /// Records the current request's line and resets for the next request.
    pub fn finish(
        &mut self,
        listener: &str,
        status: u16,
        bytes_sent: u64,
        upstream: Option<&str>,
        flags: ResponseFlags,
    ) {
        let (start, duration) = match self.began.take() {
            Some((start, at)) => (start, at.elapsed()),
            None => (SystemTime::now(), Duration::ZERO),
        };
        let parsed = self.protocol.is_some();
        let (method, path) = if parsed {
            self.request_line.split_at(self.method_len)
        } else {
            (&[][..], &[][..])
        };
        self.log.record(&LogEntry {
            start,
            duration,
            listener,
            client: self.client,
            method,
            path,
            protocol: self.protocol.take().unwrap_or("-"),
            status,
            bytes_received: std::mem::take(&mut self.received),
            bytes_sent,
            upstream,
            flags,
        });
    }
}
