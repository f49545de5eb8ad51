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
    access_log::{Captured, Details, LogEntry, ResponseFlags, WorkerLog},
    http1::{BodyFraming, Request, Version},
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
    /// Of which the head's (Envoy's byte counts are bodies').
    head_received: u64,
    /// Method bytes then target bytes of the current request.
    request_line: Vec<u8>,
    method_len: usize,
    /// `None` until the head parsed.
    protocol: Option<Version>,
    /// The current request's route name.
    route: Option<&'l str>,
    /// What only Envoy format strings print; boxed (one allocation per connection, for
    /// those formats only) to keep the connection task small.
    envoy: Option<Box<EnvoyParts<'l>>>,
}

/// The request's parts an Envoy format string may print beyond the native line's.
#[derive(Debug)]
struct EnvoyParts<'l> {
    /// The TCP peer and its port.
    direct: (Peer, u16),
    /// The connection's client and port (the peer, or a PROXY protocol header's).
    connection_client: (Peer, u16),
    /// The current request's client as the trust policy resolved it (port 0 from
    /// `x-forwarded-for`).
    remote: (Peer, u16),
    /// The connection's local address, when the format prints it.
    local: Option<std::net::SocketAddr>,
    /// The request header values the format prints.
    captured: Captured,
    /// The response header values it prints.
    response_captured: Captured,
    /// The current request's route name and cluster.
    route: Option<&'l str>,
    cluster: Option<&'l str>,
    /// From the end of the current request to its upstream response head.
    service_time: Option<Duration>,
    /// From the current request's first byte to its upstream response head.
    response_after: Option<Duration>,
    /// From the current request's first byte to its last, when known.
    request_done: Option<Duration>,
    /// The format prints it (`%REQUEST_DURATION%`): a request without a body is
    /// complete when its head is parsed, and the clock is read then.
    request_end: bool,
    /// The connection's TLS facts, on a TLS connection.
    tls: Option<Box<crate::access_log::TlsDetails>>,
    /// The format prints a trace context field (`%REQ(TRACEPARENT)%`, `%REQ(B3)%`…).
    trace_fields: bool,
}

/// The request fields a trace context is written in, lower case.
const TRACE_FIELDS: [&str; 7] = [
    "traceparent",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
];

impl<'l> RequestLog<'l> {
    /// The log state of a connection from `client` (`port`). Out of line: once per
    /// connection, and inlined it kept `serve` from being inlined into the accept loop.
    #[inline(never)]
    pub fn new(log: &'l WorkerLog, (client, port): (Peer, u16)) -> Self {
        RequestLog {
            log,
            client,
            began: None,
            received: 0,
            head_received: 0,
            request_line: Vec::new(),
            method_len: 0,
            protocol: None,
            route: None,
            envoy: log.is_envoy_format().then(|| {
                Box::new(EnvoyParts {
                    direct: (client, port),
                    connection_client: (client, port),
                    remote: (client, port),
                    local: None,
                    captured: Captured::default(),
                    response_captured: Captured::default(),
                    route: None,
                    cluster: None,
                    service_time: None,
                    response_after: None,
                    request_done: None,
                    request_end: log.needs_request_end(),
                    tls: None,
                    trace_fields: log
                        .headers()
                        .iter()
                        .any(|name| TRACE_FIELDS.contains(&name.as_str())),
                })
            }),
        }
    }

    /// Whether lines are an Envoy format string (which prints more: the request id and
    /// client Envoy's connection manager gives every request, the service time).
    pub fn is_envoy_format(&self) -> bool {
        self.envoy.is_some()
    }

    /// Whether lines print the connection's local address.
    pub fn needs_local_address(&self) -> bool {
        self.envoy.is_some() && self.log.needs_local_address()
    }

    /// The address the client connected to.
    pub fn set_local(&mut self, local: Option<std::net::SocketAddr>) {
        if let Some(envoy) = &mut self.envoy {
            envoy.local = local;
        }
    }

    /// The connection's TLS facts (Envoy formats print them).
    pub fn set_tls(&mut self, tls: crate::access_log::TlsDetails) {
        if let Some(envoy) = &mut self.envoy {
            envoy.tls = Some(Box::new(tls));
        }
    }

    /// The client as a PROXY protocol header named it (for the whole connection).
    pub fn set_client(&mut self, client: Peer, port: u16) {
        self.client = client;
        if let Some(envoy) = &mut self.envoy {
            (envoy.connection_client, envoy.remote) = ((client, port), (client, port));
        }
    }

    /// The request's first byte is in the buffer; later calls keep the first time.
    pub fn begin(&mut self) {
        if self.began.is_none() {
            self.began = Some((SystemTime::now(), Instant::now()));
        }
    }

    /// The client as the trust policy resolved it for the current request.
    pub fn resolved(&mut self, client: Peer, port: u16) {
        if let Some(envoy) = &mut self.envoy {
            envoy.remote = (client, port);
        }
    }

    /// The current request's route and cluster.
    pub fn routed(&mut self, route: Option<&'l str>, cluster: Option<&'l str>) {
        self.route = route;
        if let Some(envoy) = &mut self.envoy {
            (envoy.route, envoy.cluster) = (route, cluster);
        }
    }

    /// The upstream answered `elapsed` after the request ended.
    pub fn upstream_service_time(&mut self, elapsed: Duration) {
        if let Some(envoy) = &mut self.envoy {
            envoy.service_time = Some(elapsed);
            // The first byte of the upstream's response, from the request's first; the
            // request ended `elapsed` before it.
            if let Some((_, at)) = self.began {
                let after = at.elapsed();
                envoy.response_after = Some(after);
                envoy.request_done = envoy.request_done.or_else(|| after.checked_sub(elapsed));
            }
        }
    }

    /// Keeps the values of the response headers the format prints, from the head as
    /// written to the client (`head`: the status line and fields; a body after the
    /// blank line is not read).
    pub fn capture_response(&mut self, head: &[u8]) {
        let names = self.log.response_headers();
        if let Some(envoy) = self.envoy.as_mut().filter(|_| !names.is_empty()) {
            envoy.response_captured.capture_head(names, head);
        }
    }

    /// Keeps the values of the headers the format prints, as the request now has them
    /// (after ringway's edits once it is forwarded): what Envoy's `%REQ(...)%` prints.
    /// Called once per request: when it is forwarded, or answered by ringway.
    pub fn capture(&mut self, head: &[u8], request: &Request) {
        let names = self.log.headers();
        let Some(envoy) = self.envoy.as_mut().filter(|_| !names.is_empty()) else {
            return;
        };
        envoy.captured.capture(names, head, request);
    }

    /// Whether the format prints a trace context field ([`RequestLog::injected`]).
    pub fn prints_trace_fields(&self) -> bool {
        self.envoy.as_ref().is_some_and(|e| e.trace_fields)
    }

    /// The trace context the request's last attempt carried upstream, as the header
    /// lines written: Envoy's tracer injects it into the request's own headers, so
    /// `%REQ(TRACEPARENT)%`, `%REQ(X-B3-TRACEID)%`… print the new context, not the one
    /// the request came with (nor `-` for a trace started here).
    pub fn injected(&mut self, lines: &[u8]) {
        let names = self.log.headers();
        if let Some(envoy) = self.envoy.as_mut().filter(|e| e.trace_fields) {
            envoy.captured.set_from_lines(names, lines);
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
        self.protocol = Some(request.version);
        self.received = head.len() as u64;
        self.head_received = self.received;
        if let Some(envoy) = self.envoy.as_mut().filter(|e| e.request_end) {
            let whole = matches!(
                request.framing,
                BodyFraming::None | BodyFraming::ContentLength(0)
            );
            envoy.request_done = self.began.filter(|_| whole).map(|(_, at)| at.elapsed());
        }
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
        (bytes_sent, head_sent): (u64, u64),
        upstream: Option<&str>,
        (flags, consumer): (ResponseFlags, Option<&str>),
        (trace, attempts): (Option<crate::access_log::TraceIds>, u32),
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
            protocol: match self.protocol.take() {
                Some(Version::Http10) => "HTTP/1.0",
                Some(Version::Http11) => "HTTP/1.1",
                None => "-",
            },
            status,
            bytes_received: std::mem::take(&mut self.received),
            bytes_sent,
            upstream,
            flags,
            consumer,
            route: self.route.take(),
            trace,
            attempts,
            details: match &mut self.envoy {
                Some(envoy) => Details {
                    remote: Some(envoy.remote),
                    direct: Some(envoy.direct),
                    local: envoy.local,
                    route: envoy.route.take(),
                    cluster: envoy.cluster.take(),
                    request_duration: envoy.request_done.take(),
                    response_duration: envoy.response_after.take(),
                    upstream_service_time: envoy.service_time.take(),
                    headers: Some(&envoy.captured),
                    response_headers: Some(&envoy.response_captured),
                    tls: envoy.tls.as_deref(),
                    heads: (std::mem::take(&mut self.head_received), head_sent),
                },
                None => Details::default(),
            },
        });
        if let Some(envoy) = &mut self.envoy {
            envoy.remote = envoy.connection_client;
            envoy.captured.reset(0);
            envoy.response_captured.reset(0);
        }
    }
}
