//! One client connection: read a head, route it, answer or forward, repeat.
//!
//! The connection owns one reusable parsed [`Request`] and [`Response`] and a few scratch
//! buffers; a keep-alive request in steady state allocates nothing. Heads are found
//! incrementally (only newly read bytes are scanned) and parsed in place; bytes of a
//! following pipelined request stay in the buffer and are parsed next, in order, so at
//! most one request is in flight and the bytes queued behind it are bounded by the
//! listener's `buffer_limit`.
//!
//! Waiting for the next request, in two stages. Hot: for `HOT_WAIT` after a request (or
//! after accept) the connection keeps a chunk and has a read in flight, because a busy
//! keep-alive client sends its next request soon; on io_uring that is one recv the
//! kernel arms itself, where a poll followed by a read costs a second submission, a
//! second completion and a second wake of the task per request. Cold: once the window
//! passes with nothing read, the read is cancelled (its outcome is still awaited, so
//! bytes that raced the cancel are kept), the chunk goes back to the worker's pool, and
//! the connection waits for readability holding no buffer. 10,000 idle keep-alive
//! connections therefore cost their sockets and this struct, not 10,000 buffers. On
//! epoll both stages are the same readiness wait.
//!
//! Routing: the target's path is normalised (`router::normalize`) into a scratch buffer
//! the connection owns; a path that cannot be normalised is a 400 and closes the
//! connection, like any other malformed request.
//!
//! Timeouts: `idle_timeout` while waiting for the first byte of a request (then the
//! connection just closes), `header_read_timeout` from then until the head is complete
//! (then 408). Waiting for a request also watches the worker's stop signal, so a drain
//! closes idle keep-alive connections between requests, never in the middle of one: a
//! connection is closed once it has been quiet for `DRAIN_IDLE_GRACE` (a client that is
//! about to send gets its request answered with `connection: close` instead of racing a
//! close), and bytes already received are always served first.
//! A connection whose listener snapshot a reload retired answers its current request
//! with `connection: close`, so the client's next connection gets the new rules.
//!
//! Bodies of requests answered locally are read and discarded up to a bound so the
//! connection can stay open; a larger body, or one the client holds back for
//! `Expect: 100-continue`, gets the answer with `connection: close` followed by a
//! lingering close that reads (a bounded amount) until the client is done, so the kernel
//! does not reset the connection over unread bytes and lose the answer.
//!
//! Completion: every request ends in `complete` (the one place a log line is made), with
//! Envoy's response flags for what went wrong. Without an access log the connection
//! carries `None` and reads no clock.

use std::time::{Duration, Instant};

use monoio::{
    buf::IoBufMut,
    io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelableAsyncReadRent, Canceller},
};

use tracing::debug;

mod body;
mod exchange;
mod fault;
mod forward;
mod hash;
mod hedge;
mod outcome;
mod retry;
mod route_stats;
mod trace;

use super::{
    deadline::Deadline, downstream::Downstream, lookup::Http1Headers, request_log::RequestLog,
    stop::Stop, tunnel, WorkerContext,
};
use crate::{
    access_log::{ResponseFlags, WorkerLog},
    config::ProxyProtocol,
    error::{Cause, Error, ErrorKind, Side},
    filter::{stages, Chain, LocalAddress, RequestFacts, RequestHead, RequestState, Verdict},
    forwarding::IpText,
    http1::{
        self, BodyFraming, ChunkEvent, ChunkedDecoder, HeadScanner, Method, Request, Response,
        Version,
    },
    local_reply::{LocalReplyKind, Reply},
    peer::Peer,
    proxy_protocol,
    router::{normalize::normalize, rewrite, Action, RouteInput},
    snapshot::ListenerSnapshot,
    stats::names::{http as rq, http1 as h1, listener as cx},
    upstream::conn::UpstreamConn,
};
use outcome::Next;

/// The largest request body (wire bytes) read and discarded to keep a connection open
/// after a local reply.
const MAX_DISCARD: u64 = 64 * 1024;
/// How long a TLS connection's close_notify may take to send before the socket closes.
const CLOSE_NOTIFY_TIME: Duration = Duration::from_millis(200);
/// Lingering close: how long and how much to keep reading after the last answer.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;
/// While draining, how long a keep-alive connection may stay quiet before it is closed:
/// long enough for a client in the middle of a request loop to send its next request,
/// short enough that idle connections do not hold a drain for long.
const DRAIN_IDLE_GRACE: Duration = Duration::from_millis(300);
/// How long a connection waits for its next request with a chunk and a read in flight
/// before it gives the chunk back and waits for readability instead. Long enough to
/// cover the gaps of a client that is busy (a request loop, a pooled client under load),
/// short enough that buffers held by quiet connections are bounded by the connections
/// active in the last fraction of a second.
const HOT_WAIT: Duration = Duration::from_millis(100);

/// Serves one accepted connection until it closes.
pub async fn serve(
    stream: Downstream,
    (peer, peer_port): (Peer, u16),
    listener: &ListenerSnapshot,
    worker: &WorkerContext,
    stop: &Stop,
    log: Option<&WorkerLog>,
) -> Ended {
    let mut conn = Connection {
        stream,
        peer,
        peer_port,
        peer_text: peer.ip().map_or(IpText::EMPTY, IpText::new),
        client_ip: peer,
        internal: false,
        buf: Vec::new(),
        start: 0,
        scanner: HeadScanner::new(),
        request: Request::new(),
        response: Response::new(),
        request_decoder: ChunkedDecoder::new(&listener.limits),
        response_decoder: ChunkedDecoder::new(&listener.limits),
        path: Vec::new(),
        target: Vec::new(),
        scratch: String::new(),
        random: fastrand::Rng::with_seed(worker.seed()),
        listener,
        worker,
        log: log.map(|log| RequestLog::new(log, (peer, peer_port))),
        upstream: None,
        rq_start: None,
        rq_active: false,
        closed_by_client: false,
        cut_short: false,
        health_check: false,
        request_whole: true,
        // Boxed: only a listener with caps pays for their state (one allocation a
        // connection), and every connection's task keeps its size.
        caps: listener.connection_caps.map(|limits| {
            Box::new(CapsState {
                limits,
                born: Instant::now(),
                served: 0,
                aged: false,
            })
        }),
        filters: RequestState::default(),
        upgrading: false,
        upgraded: None,
        canceller: Some(Canceller::new()),
        retry: Default::default(),
        trace: Default::default(),
        pending: None,
        head_sent: 0,
        hedges: None,
        route_stats: Default::default(),
    };
    conn.note_local_address();
    conn.note_tls(listener);
    conn.run(stop).await;
    let Connection {
        stream,
        buf,
        start,
        upgraded,
        closed_by_client,
        cut_short,
        ..
    } = conn;
    match upgraded {
        // Boxed: only upgraded connections pay for the tunnel's state (`tunnel`).
        Some(upstream) => {
            Box::pin(tunnel::run(
                stream,
                *upstream,
                (buf, start),
                listener,
                worker,
            ))
            .await
        }
        None => {
            let ended = Ended {
                by_client: closed_by_client,
                active_rq: cut_short,
            };
            worker.bufs.give(buf);
            if stream.is_tls() {
                // A TLS connection ends with a close_notify (and any alert the session
                // queued, which tells the client why), sent by a task of its own so
                // that plaintext connections do not carry its state.
                let mut stream = stream;
                monoio::spawn(async move {
                    let _ = monoio::time::timeout(CLOSE_NOTIFY_TIME, stream.shutdown()).await;
                });
            }
            ended
        }
    }
}

/// Whether a response closes its connection because ringway is draining (it is
/// stopping, or a reload retired the listener): counted in Envoy's
/// `downstream_cx_drain_close` when so, as Envoy counts a response head encoded while
/// its connection manager drains (whether or not the connection would have closed
/// anyway; idle connections closed by the drain are not counted).
#[inline(always)]
fn drain_closes(l: &ListenerSnapshot, stop: &Stop) -> bool {
    let draining = stop.is_stopped() || l.is_retired();
    if draining {
        l.http_stats.get(rq::DOWNSTREAM_CX_DRAIN_CLOSE).inc();
    }
    draining
}

/// A connection's use against its listener's `max_requests_per_connection` and
/// `max_connection_duration`.
#[derive(Debug)]
struct CapsState {
    limits: crate::snapshot::ConnectionCaps,
    /// When it was served from.
    born: Instant,
    /// Requests it has had.
    served: u64,
    /// Found past its duration (counted once).
    aged: bool,
}

impl CapsState {
    /// Envoy's `max_requests_per_connection`: the request that reaches it is the
    /// connection's last (answered with `connection: close`, as if the client had
    /// asked).
    #[cold]
    fn count_request(&mut self, keep_alive: &mut bool, l: &ListenerSnapshot) {
        self.served += 1;
        if self
            .limits
            .max_requests
            .is_some_and(|max| self.served >= max)
        {
            *keep_alive = false;
            l.http_stats
                .get(rq::DOWNSTREAM_CX_MAX_REQUESTS_REACHED)
                .inc();
        }
    }

    /// Envoy's `max_connection_duration`: whether the connection is that old, counted
    /// in `downstream_cx_max_duration_reached` the first time it is found so.
    #[cold]
    fn aged(&mut self, l: &ListenerSnapshot) -> bool {
        let Some(age) = self.limits.max_duration else {
            return false;
        };
        if self.aged || self.born.elapsed() < age {
            return self.aged;
        }
        self.aged = true;
        l.http_stats
            .get(rq::DOWNSTREAM_CX_MAX_DURATION_REACHED)
            .inc();
        true
    }

    /// What is left of the connection's time, if it is limited.
    fn time_left(&self) -> Option<Duration> {
        let age = self.limits.max_duration?;
        Some(age.saturating_sub(self.born.elapsed()))
    }
}

/// How a connection ended, for Envoy's `downstream_cx_destroy_*` split.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    /// The client closed or reset it; else ringway closed it.
    pub by_client: bool,
    /// A request on it was unanswered, or its response cut short, when it closed.
    pub active_rq: bool,
}

/// `x-forwarded-client-cert` on a TLS listener. Out of line: plaintext connections do
/// not carry its state.
#[inline(never)]
fn forward_client_cert(
    mut view: RequestHead<'_>,
    tls: &crate::tls::server::Acceptor,
    client: Option<&crate::tls::identity::PeerIdentity>,
    scratch: &mut String,
) {
    let settings = tls.settings();
    crate::filter::client_cert::apply(
        &mut view,
        (settings.forward_client_cert, settings.client_cert_details),
        client,
        tls.by(),
        scratch,
    );
}

/// What to do with a request's `Upgrade`.
enum Upgrade {
    /// Forward it and tunnel after a `101`.
    Tunnel,
    /// Serve the request as HTTP/1.1 (the fields were removed as hop-by-hop): a
    /// cleartext HTTP/2 upgrade (`h2c`), which Envoy ignores the same way.
    Ignore,
    /// The route does not allow it: 403, as Envoy answers.
    Refuse,
}

/// `x-envoy-original-path`: the path a rewrite replaced, with the query the upstream
/// gets (after the filters took what they take from it). A normalised target: checked
/// bytes (`http1::target`).
#[inline(never)]
fn original_path(mut view: RequestHead<'_>, path: &[u8], upstream_target: &[u8]) {
    view.remove(b"x-envoy-original-path");
    let query = upstream_target
        .iter()
        .position(|&b| b == b'?')
        .map_or(&b""[..], |at| &upstream_target[at..]);
    view.append_checked_parts(b"x-envoy-original-path", &[path, query]);
}

fn upgrade_decision(route: &crate::router::Route, value: &[u8]) -> Upgrade {
    // The first protocol offered, without its version (`websocket`, `h2c`).
    let first = value.split(|&b| b == b',').next().unwrap_or(value);
    let protocol = first
        .split(|&b| b == b'/')
        .next()
        .unwrap_or(first)
        .trim_ascii();
    if protocol.eq_ignore_ascii_case(b"h2c") {
        Upgrade::Ignore
    } else if route.allows_upgrade(protocol) {
        Upgrade::Tunnel
    } else {
        Upgrade::Refuse
    }
}

/// The size of a connection's state, for the memory test in `worker`.
#[cfg(test)]
pub(super) const CONNECTION_SIZE: usize = std::mem::size_of::<Connection<'static>>();

enum Read {
    Bytes,
    Closed,
    TimedOut,
    Stopped,
}

/// How the hot stage of waiting for a request ended.
enum Hot {
    /// Bytes were read (or the connection ended).
    Read(Read),
    /// Nothing came within the window, or the worker is stopping: wait cold, counting
    /// idleness from this instant.
    Quiet(Instant),
}

enum Body {
    /// Read to its end; the next request follows in the buffer.
    Consumed,
    /// Not read: answer, then close.
    Left,
    /// The client went away or broke the framing (with the reply to send, if any).
    Failed(Option<LocalReplyKind>),
}

struct Connection<'l> {
    stream: Downstream,
    peer: Peer,
    /// The peer's port (0 on a Unix socket), for a PROXY header sent upstream.
    peer_port: u16,
    /// The peer's address as text, rendered once for the forwarding headers.
    peer_text: IpText,
    /// The client's address as the trust policy resolved it (the peer by default).
    client_ip: Peer,
    /// The forwarded request is internal (Envoy's rules; its code stats go under
    /// `internal.`, the others' under `external.`).
    internal: bool,
    /// Bytes received; `buf[start..]` are not yet consumed. Empty with no capacity while
    /// the connection is idle.
    buf: Vec<u8>,
    start: usize,
    scanner: HeadScanner,
    request: Request,
    response: Response,
    /// Chunked request bodies are decoded here and response bodies in the other one: one
    /// each per connection, reset per body, so a chunked body allocates nothing (the
    /// trailer buffer keeps its capacity).
    request_decoder: ChunkedDecoder,
    response_decoder: ChunkedDecoder,
    /// Scratch for normalised paths.
    path: Vec<u8>,
    /// The target forwarded upstream (normalised path and query).
    target: Vec<u8>,
    /// Scratch for forwarding header values.
    scratch: String,
    random: fastrand::Rng,
    listener: &'l ListenerSnapshot,
    worker: &'l WorkerContext,
    /// The access log's per-request state; `None` without an access log.
    log: Option<RequestLog<'l>>,
    /// The endpoint the current request went to (for the access log).
    upstream: Option<std::rc::Rc<crate::upstream::Host>>,
    /// What the route's filters keep for the current request (cleared per request).
    filters: RequestState,
    /// The current request asks for an upgrade its route allows.
    upgrading: bool,
    /// The upstream connection of a tunnel, once the upstream switched protocols.
    /// Boxed (one allocation an upgrade, beside the tunnel's own): every connection's
    /// task would otherwise carry its 80 bytes.
    upgraded: Option<Box<UpstreamConn>>,
    /// Cancels the hot read when its window passes (one per connection, reused).
    ///
    /// An `Option` so that it can be moved out to `cancel` without building a default
    /// one in its place: monoio's `Canceller::cancel` consumes it and allocates the next
    /// (one allocation per hot wait that goes cold; `mem::take` made that two).
    canceller: Option<Canceller>,
    /// When the current request's first byte was seen (`downstream_rq_time`).
    rq_start: Option<Instant>,
    /// The current request is counted in `downstream_rq_active`.
    rq_active: bool,
    /// How the connection ended, for `downstream_cx_destroy_*`: the client closed or
    /// reset it (else ringway closed it), and the last request was left unanswered
    /// or its response cut short.
    closed_by_client: bool,
    cut_short: bool,
    /// The current request is a health check (the health-check filter matched it,
    /// answered or passed on): its response is not charged.
    health_check: bool,
    /// The current request has been wholly received (its head, and its body if it has
    /// one): a response head sent before is Envoy's early response.
    request_whole: bool,
    /// The connection's use against its listener's caps, if it has any.
    caps: Option<Box<CapsState>>,
    /// The current request's retry plan and attempt (`retry`).
    retry: retry::RetryState,
    /// The current request's trace context (`trace`).
    trace: trace::TraceState,
    /// A sampled request's attributes, kept until its span is recorded (boxed: only
    /// connections that carried a sampled request pay for it).
    pending: Option<Box<trace::Pending>>,
    /// The current response's head bytes (within what `complete` is told was sent):
    /// Envoy's byte counts, and a span's, are bodies'.
    head_sent: u64,
    /// A hedging request's attempts still out (boxed and kept across requests: only
    /// connections that carried a hedging request pay for it).
    hedges: Option<Box<hedge::Outstanding>>,
    /// The current request's route and virtual-cluster stats (`route_stats`).
    route_stats: route_stats::RouteCounting<'l>,
}

impl Connection<'_> {
    async fn run(&mut self, stop: &Stop) {
        let l = self.listener;
        // A connection taken from the backlog by a drain's last accept pass was accepted
        // while stopping: its first request is still awaited and served (the client has
        // done nothing wrong), instead of closing it as an idle keep-alive connection.
        let never = Stop::default();
        let mut first_wait = if stop.is_stopped() { &never } else { stop };
        if let Some(pp) = &l.proxy_protocol {
            if !self.accept_proxy_header(pp).await {
                l.cx_stats.get(cx::DOWNSTREAM_CX_PROXY_PROTO_ERROR).inc();
                return;
            }
        }
        loop {
            // The last request's health check exempts no answer of this one.
            self.health_check = false;
            let head_len = match self.read_head(first_wait).await {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(kind) => return self.fail(kind).await,
            };
            first_wait = stop;
            let head = &self.buf[self.start..self.start + head_len];
            self.request.clear();
            if let Err(e) = http1::parse_request(head, &l.limits, &mut self.request) {
                if e.kind() == http1::ErrorKind::UnderscoreInName {
                    l.http1_stats
                        .get(h1::REQUESTS_REJECTED_WITH_UNDERSCORES_IN_HEADERS)
                        .inc();
                }
                return self.fail(LocalReplyKind::for_status(e.status())).await;
            }
            if self.request.dropped_underscored != 0 {
                l.http1_stats
                    .get(h1::DROPPED_HEADERS_WITH_UNDERSCORES)
                    .add(u64::from(self.request.dropped_underscored));
            }
            if let Some(log) = &mut self.log {
                log.parsed(head, &self.request);
            }
            l.http_stats.get(rq::DOWNSTREAM_RQ_TOTAL).inc();
            l.http_stats.get(rq::DOWNSTREAM_RQ_HTTP1_TOTAL).inc();
            l.http_stats.get(rq::DOWNSTREAM_RQ_ACTIVE).inc();
            self.rq_active = true;
            if let Some(caps) = &mut self.caps {
                caps.count_request(&mut self.request.keep_alive, l);
            }
            // A request without a body is whole once its head is in.
            self.request_whole = matches!(
                self.request.framing,
                BodyFraming::None | BodyFraming::ContentLength(0)
            );
            let target = self.request.path.get(head);
            let Ok(target) = normalize(target, &l.path_normalization, &mut self.path) else {
                return self.fail(LocalReplyKind::BadRequest).await;
            };
            let authority = self.request.host.map_or(&b""[..], |h| h.get(head));
            let input = RouteInput {
                host: authority,
                path: target.path,
                query: target.query,
                headers: &Http1Headers {
                    request: &self.request,
                    head,
                    client: self.stream.peer_identity(),
                },
            };
            let route = l.router.route(&input);
            self.route_stats = route_stats::RouteCounting::begin(route, input.headers);
            // The listener's authentication rule for this request (Envoy's `jwt_authn`
            // rules), found like its route.
            let auth_rule = route
                .and_then(|r| r.auth_rules.as_deref())
                .and_then(|rules| rules.route(&input))
                .map(|rule| rule.index);
            let mut flags = ResponseFlags::NONE;
            let protocol: &'static [u8] = match self.request.version {
                Version::Http10 => b"HTTP/1.0",
                Version::Http11 => b"HTTP/1.1",
            };
            self.filters.clear((self.peer, self.peer_port), protocol);
            // A redirect's `location` is written once the filters let the request pass.
            let mut redirect_to = None;
            let (reply, cluster) = match route {
                Some(route) => match &route.action {
                    Action::Direct(reply) => {
                        l.http_stats.get(rq::RQ_DIRECT_RESPONSE).inc();
                        (reply, None)
                    }
                    Action::Redirect(redirect) => {
                        redirect_to = Some(&**redirect);
                        (&redirect.reply, None)
                    }
                    action @ (Action::Cluster(_) | Action::Weighted(_)) => {
                        match l.clusters.get(match action {
                            Action::Weighted(split) => {
                                // Sticky: by the request's hash when the rules find one.
                                let parts =
                                    (&self.request, head, self.filters.client, target.query);
                                let hash = split
                                    .sticky
                                    .then(|| hash::found_hash(parts, &route.hash_policy))
                                    .flatten();
                                split.pick(hash.unwrap_or_else(|| self.worker.random_u64()))
                            }
                            Action::Cluster(index) => *index,
                            _ => usize::MAX,
                        }) {
                            Some(cluster) => {
                                self.target.clear();
                                match &route.path_rewrite {
                                    None => self.target.extend_from_slice(target.path),
                                    Some(rewrite) => {
                                        // The upstream gets the rewritten path and, as from
                                        // Envoy, the one it replaced (`x-envoy-original-path`,
                                        // written once the filters ran: a token they take
                                        // from the query must not reach the upstream there).
                                        let matched = route.matched_len(target.path);
                                        rewrite.apply(target.path, matched, &mut self.target);
                                    }
                                }
                                if !target.query.is_empty() {
                                    self.target.push(b'?');
                                    self.target.extend_from_slice(target.query);
                                }
                                (l.replies.get(LocalReplyKind::NoUpstream), Some(cluster))
                            }
                            None => {
                                flags = ResponseFlags::NO_HEALTHY_UPSTREAM;
                                (l.replies.get(LocalReplyKind::NoUpstream), None)
                            }
                        }
                    }
                },
                None => {
                    l.http_stats.get(rq::RQ_NO_ROUTE).inc();
                    flags = ResponseFlags::NO_ROUTE;
                    (l.replies.get(LocalReplyKind::NoRoute), None)
                }
            };

            if let Some(log) = &mut self.log {
                log.routed(
                    route.and_then(|r| r.name.as_deref()),
                    cluster.map(|c| &*c.name),
                );
            }
            let chain = route.map(|r| &r.filters);
            let (mut reply, mut cluster) = (reply, cluster);
            // Envoy's health-check filter, before anything is forwarded.
            if let Some(hc) = &l.health_check {
                use crate::filter::health_check::Verdict as Health;
                let verdict = hc.check(&self.request, head, &self.worker.health_failed);
                // Envoy's connection manager does not charge a health check's response.
                self.health_check = verdict != Health::Continue;
                if !matches!(verdict, Health::Continue | Health::PassThrough) {
                    (reply, cluster, redirect_to) = (hc.reply(verdict), None, None);
                    if verdict == Health::Failing {
                        flags = ResponseFlags::FAILED_LOCAL_HEALTH_CHECK;
                    }
                }
            }
            // A filter refused the request for its body: answer without reading it.
            let mut refused_body = false;
            self.upgrading = false;
            if let (Some(_), Some(route)) = (cluster, route) {
                // The fixed request stage, then the route's filters (`filter`).
                (self.client_ip, self.internal) = stages::upstream_request(
                    &mut self.request,
                    head,
                    (self.peer, &self.peer_text, self.stream.is_tls()),
                    &l.proxy,
                    &mut self.random,
                    &mut self.scratch,
                );
                if let Some(Ok(tls)) = &l.tls {
                    forward_client_cert(
                        RequestHead::new(&mut self.request, head),
                        tls,
                        self.stream.peer_identity(),
                        &mut self.scratch,
                    );
                }
                if self.client_ip != self.peer {
                    // From `x-forwarded-for`: no port known.
                    (self.filters.client, self.filters.client_port) = (self.client_ip, 0);
                    if let Some(log) = &mut self.log {
                        log.resolved(self.client_ip, 0);
                    }
                }
                if let Some(protocol) = self.request.upgrade(head) {
                    match upgrade_decision(route, protocol) {
                        Upgrade::Tunnel => {
                            // The stage removed them as hop-by-hop; the switch needs them.
                            self.upgrading = true;
                            let mut view = RequestHead::new(&mut self.request, head);
                            view.append_line(b"connection: upgrade\r\n");
                            view.append_checked(b"upgrade", protocol);
                        }
                        Upgrade::Ignore => {}
                        Upgrade::Refuse => {
                            l.http_stats.get(rq::DOWNSTREAM_RQ_WS_ON_NON_WS_ROUTE).inc();
                            reply = l.replies.get(LocalReplyKind::UpgradeRefused);
                            cluster = None;
                        }
                    }
                }
            } else if let (Some(envoy), true) = (
                &l.proxy.envoy,
                self.log.as_ref().is_some_and(|l| l.is_envoy_format())
                    || l.tracing.is_some()
                    || l.proxy
                        .envoy
                        .as_ref()
                        .is_some_and(|e| e.request_id_in_response),
            ) {
                // Envoy's connection manager gives every request its id and client, which
                // its access log prints and its tracing decides by, also for the routes
                // that answer directly.
                let client = crate::forwarding_envoy::apply(
                    &mut self.request,
                    head,
                    (self.peer, &self.peer_text, self.stream.is_tls()),
                    (&l.proxy, envoy),
                    &mut self.random,
                    &mut self.scratch,
                );
                if let Some(log) = &mut self.log {
                    let port = if client == self.peer {
                        self.peer_port
                    } else {
                        0
                    };
                    log.resolved(client, port);
                }
            }
            if let Some(t) = l.tracing.as_deref() {
                // Read only where used (the slow decision, a sampled request).
                let route_and_cluster = || (route, cluster.map(|c| &*c.name));
                // Most requests on a native listener: a new root trace decided by its
                // id, nothing else read (an Envoy listener's request may also name its
                // span: `Begin` for those).
                let root = t.native_bound.filter(|_| l.proxy.envoy.is_none());
                let root = root.and_then(|bound| {
                    let request = (&self.request, head);
                    trace::TraceState::native_root(t, bound, route, request, &mut self.random)
                });
                let sampled = match root {
                    Some(state) => {
                        self.trace = state;
                        state.sampled
                    }
                    None => trace::Begin {
                        head,
                        request: &mut self.request,
                        random: &mut self.random,
                        trace: &mut self.trace,
                        listener: l,
                        peer: &self.peer,
                        reply_lines: &mut self.filters.reply_lines,
                    }
                    .run(route_and_cluster()),
                };
                if sampled {
                    let note = trace::Note {
                        operation_at: self.trace.operation_at(),
                        head,
                        request: &self.request,
                        pending: &mut self.pending,
                        listener: l,
                        rq_start: self.rq_start,
                        clock: &self.worker.clock,
                        peer: (self.client_ip == self.peer)
                            .then(|| (self.peer_text.as_bytes(), self.peer_port)),
                        https: self.stream.is_tls(),
                    };
                    note.run(route_and_cluster());
                }
            }
            // Envoy returns the request id when configured to, or when an internal peer
            // forced the trace.
            let forced = self.trace.on && self.trace.forced && l.proxy.envoy.is_some();
            if forced
                || l.proxy
                    .envoy
                    .as_ref()
                    .is_some_and(|e| e.request_id_in_response)
            {
                trace::request_id_line(&self.request, head, &mut self.filters.reply_lines);
            }
            // The route's filters run for whatever the route does (a CORS preflight is
            // answered on any route).
            if let Some(chain) = chain.filter(|c| !c.is_empty()) {
                let mut view = RequestHead::new(&mut self.request, head);
                let mut facts = RequestFacts {
                    path: target.path,
                    query: target.query,
                    authority,
                    https: self.stream.is_tls(),
                    direct: self.peer,
                    local_address: LocalAddress(&|| self.stream.local_addr()),
                    peer: self.stream.peer_identity(),
                    server_name: self.stream.server_name(),
                    upstream_target: cluster.is_some().then_some(&mut self.target),
                    auth_rule,
                    now: self.worker.clock.unix_seconds(),
                };
                match chain.on_request(&mut view, &mut facts, &mut self.filters) {
                    Verdict::Continue => {}
                    Verdict::Respond(answer) => {
                        (reply, cluster, redirect_to) = (answer, None, None);
                        if self.filters.rate_limited {
                            flags = ResponseFlags::RATE_LIMITED;
                        }
                    }
                    Verdict::Fail(kind) => {
                        if kind == ErrorKind::RequestTooLarge {
                            l.http_stats.get(rq::DOWNSTREAM_RQ_TOO_LARGE).inc();
                        }
                        flags = error_flags(kind);
                        let kind = Error::new(kind, Side::Client).reply();
                        let kind = kind.unwrap_or(LocalReplyKind::BadRequest);
                        (reply, cluster, refused_body) = (l.replies.get(kind), None, true);
                        redirect_to = None;
                    }
                }
            }
            if let (Some(_), Some(route)) = (cluster, route) {
                if route.path_rewrite.is_some() {
                    original_path(
                        RequestHead::new(&mut self.request, head),
                        target.path,
                        &self.target,
                    );
                }
            }
            if let (Some(redirect), Some(route)) = (redirect_to, route) {
                l.http_stats.get(rq::RQ_REDIRECT).inc();
                let origin = rewrite::Origin {
                    scheme: if self.stream.is_tls() {
                        b"https"
                    } else {
                        b"http"
                    },
                    authority,
                    path: target.path,
                    matched: route.matched_len(target.path),
                    query: target.query,
                };
                let lines = &mut self.filters.reply_lines;
                lines.extend_from_slice(b"location: ");
                redirect.redirect.location(&origin, lines);
                lines.extend_from_slice(b"\r\n");
            }

            // The route's faults, just before forwarding (`fault`).
            if let (Some(c), Some(fault)) = (cluster, route.and_then(|r| r.fault.as_deref())) {
                let (delay, abort) = self.inject_fault(fault, head_len, &c.name);
                if let Some(answer) = abort {
                    (reply, cluster) = (answer, None);
                }
                if let Some(delay) = delay {
                    // Boxed: only a delayed request pays for the sleep's state.
                    Box::pin(monoio::time::sleep(delay)).await;
                }
            }
            let head = &self.buf[self.start..self.start + head_len];

            if let (Some(cluster), Some(route)) = (cluster, route) {
                let chain = &route.filters;
                match self.forward(head_len, route, cluster, stop).await {
                    Ok(forwarded) => {
                        self.charge_response(forwarded.status);
                        let flags = self.retry.flags;
                        self.complete(forwarded.status, forwarded.sent, flags);
                        if forwarded.next == Next::Tunnel {
                            // `serve` takes the connection on as a tunnel.
                            return;
                        }
                        if forwarded.next == Next::Close {
                            // Late pipelined bytes must not make the kernel reset the
                            // connection under the response (RFC 9112 9.6).
                            return self.linger().await;
                        }
                    }
                    Err(e) => {
                        match e.kind {
                            ErrorKind::RequestTimeout => {
                                l.http_stats.get(rq::DOWNSTREAM_RQ_TIMEOUT).inc()
                            }
                            ErrorKind::StreamIdleTimeout => {
                                l.http_stats.get(rq::DOWNSTREAM_RQ_IDLE_TIMEOUT).inc()
                            }
                            ErrorKind::DurationTimeout => l
                                .http_stats
                                .get(rq::DOWNSTREAM_RQ_MAX_DURATION_REACHED)
                                .inc(),
                            ErrorKind::RequestTooLarge => {
                                l.http_stats.get(rq::DOWNSTREAM_RQ_TOO_LARGE).inc()
                            }
                            _ => {}
                        }
                        debug!(
                            listener = &*l.name,
                            upstream = self.upstream.as_ref().map(|u| u.pool.address_text()),
                            error = %e,
                            "request failed"
                        );
                        let flags = error_flags(e.kind) | self.retry.flags;
                        match e.reply() {
                            Some(kind) => {
                                let reply = l.replies.get(kind);
                                if e.charged_upstream() {
                                    cluster.charge(reply.status(), self.internal);
                                    self.route_stats.upstream_abort(reply.status());
                                }
                                // Its head goes out while draining, as any other.
                                drain_closes(l, stop);
                                if self.respond(reply, true, false, flags, Some(chain)).await {
                                    self.linger().await;
                                }
                            }
                            None => {
                                // Its head went out: charged, as Envoy charges a
                                // response when it encodes the head.
                                if e.response_started {
                                    self.charge_response(self.response.status);
                                }
                                self.count_reset(e.kind == ErrorKind::ClientGone);
                                self.complete(0, 0, flags)
                            }
                        }
                        return;
                    }
                }
            } else {
                // A forwarded request's headers are kept once forwarded (`forward`).
                if let Some(log) = &mut self.log {
                    log.capture(head, &self.request);
                }
                self.start += head_len;
                let draining = stop.is_stopped() || l.is_retired();
                let mut close = !self.request.keep_alive
                    || self.request.version == Version::Http10
                    || draining
                    || self.aged();
                match self.discard_body(refused_body).await {
                    Body::Consumed => self.request_whole = true,
                    Body::Left => close = true,
                    Body::Failed(None) => {
                        // The client left (or stalled) mid-body: nothing was answered.
                        self.count_reset(true);
                        let gone = ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION;
                        return self.complete(0, 0, gone);
                    }
                    Body::Failed(Some(kind)) => return self.fail(kind).await,
                }
                let head_only = self.request.method == Method::Head;
                if draining {
                    l.http_stats.get(rq::DOWNSTREAM_CX_DRAIN_CLOSE).inc();
                }
                if !self.respond(reply, close, head_only, flags, chain).await {
                    return;
                }
                if close {
                    return self.linger().await;
                }
            }
            self.scanner.reset();
            if self.start == self.buf.len() {
                self.buf.clear();
                self.start = 0;
            }
        }
    }

    /// Gives an Envoy-format access log the connection's TLS facts (once per
    /// connection, only on TLS connections). Out of line: `serve` stays small.
    #[inline(never)]
    fn note_tls(&mut self, listener: &ListenerSnapshot) {
        let Some(log) = &mut self.log else { return };
        if !log.is_envoy_format() {
            return;
        }
        let by = match &listener.tls {
            Some(Ok(tls)) => tls.by(),
            _ => None,
        };
        if let Some(details) = self.stream.tls_details(by) {
            log.set_tls(details);
        }
    }

    /// Gives the access log the connection's local address, for formats that print it
    /// (a `getsockname` per connection, only then). Out of line: `serve` stays small.
    #[inline(never)]
    fn note_local_address(&mut self) {
        if let Some(log) = &mut self.log {
            if log.needs_local_address() {
                log.set_local(self.stream.local_addr());
            }
        }
    }

    /// Waits for a complete head in `buf[start..]`. `Ok(None)`: the connection ended
    /// quietly (closed, idle, or stopped between requests).
    async fn read_head(&mut self, stop: &Stop) -> Result<Option<usize>, LocalReplyKind> {
        let l = self.listener;
        let mut deadline = None;
        loop {
            if self.start < self.buf.len() {
                self.rq_start.get_or_insert_with(Instant::now);
                if let Some(log) = &mut self.log {
                    log.begin();
                }
                match self.scanner.scan(&self.buf[self.start..], &l.limits) {
                    Ok(Some(head_len)) => return Ok(Some(head_len)),
                    Ok(None) => {}
                    Err(e) => return Err(LocalReplyKind::for_status(e.status())),
                }
            } else {
                let idle_since = match self.read_hot(stop).await {
                    Hot::Read(Read::Bytes) => continue,
                    Hot::Read(read) => {
                        self.closed_by_client = matches!(read, Read::Closed);
                        return Ok(None);
                    }
                    Hot::Quiet(since) => since,
                };
                // Idle: hold no buffer while waiting for the next request.
                match self.wait_readable(stop, idle_since).await {
                    Read::Bytes => {}
                    Read::Closed => {
                        self.closed_by_client = true;
                        return Ok(None);
                    }
                    Read::Stopped => return Ok(None),
                    Read::TimedOut => {
                        // The wait ends at the connection's age limit too.
                        if !self.aged() {
                            l.http_stats.get(rq::DOWNSTREAM_CX_IDLE_TIMEOUT).inc();
                        }
                        return Ok(None);
                    }
                }
            }
            // The head clock starts with its first byte and is not reset by reads.
            let d = *deadline.get_or_insert_with(|| Instant::now() + l.header_read_timeout);
            match self
                .read_more(d.saturating_duration_since(Instant::now()))
                .await
            {
                Read::Bytes => {}
                Read::Closed => {
                    self.closed_by_client = true;
                    // Part of a head came: a request was begun (Envoy's codec opens
                    // its stream at the first byte). An idle connection's close also
                    // ends here (its wait saw the end as readable), with nothing read.
                    if self.buf.len() > self.start {
                        self.cut_short = true;
                        l.http_stats.get(rq::DOWNSTREAM_RQ_RX_RESET).inc();
                    }
                    return Ok(None);
                }
                Read::Stopped => return Ok(None),
                Read::TimedOut => {
                    l.http_stats.get(rq::DOWNSTREAM_RQ_HEADER_TIMEOUT).inc();
                    return Err(LocalReplyKind::RequestTimeout);
                }
            }
        }
    }

    /// The hot stage of waiting for the next request: a read into a chunk, in flight for
    /// at most `HOT_WAIT`. `Hot::Quiet` (with when the wait began) when nothing came
    /// in that time or the worker began to stop; the chunk is then empty.
    async fn read_hot(&mut self, stop: &Stop) -> Hot {
        if stop.is_stopped() {
            return Hot::Quiet(Instant::now());
        }
        self.buf.clear();
        self.start = 0;
        if self.buf.capacity() == 0 {
            self.buf = self.worker.bufs.take();
        }
        let window = HOT_WAIT.min(self.listener.idle_timeout);
        let sleep = monoio::time::sleep(window);
        // The sleep read the clock; the wait began one window before its deadline.
        let began = sleep.deadline().into_std() - window;
        let buf = std::mem::take(&mut self.buf);
        let handle = self.canceller.get_or_insert_with(Canceller::new).handle();
        let mut read = std::pin::pin!(self.stream.cancelable_read(buf, handle));
        let finished = monoio::select! {
            r = &mut read => Some(r),
            _ = sleep => None,
            _ = stop.wait() => None,
        };
        let (result, buf) = match finished {
            Some(r) => r,
            None => {
                // Cancel, then take the read's outcome: bytes that arrived in the
                // meantime are in `buf`, not lost with the operation.
                self.canceller = self.canceller.take().map(Canceller::cancel);
                read.await
            }
        };
        self.buf = buf;
        match result {
            Ok(0) => Hot::Read(Read::Closed),
            Ok(n) => {
                let stats = &self.listener.http_stats;
                stats.get(rq::DOWNSTREAM_CX_RX_BYTES_TOTAL).add(n as u64);
                Hot::Read(Read::Bytes)
            }
            // Cancelled before it completed (both drivers report ECANCELED).
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ECANCELED as i32) => {
                Hot::Quiet(began)
            }
            Err(_) => Hot::Read(Read::Closed),
        }
    }

    /// Gives the (empty) read buffer back and waits until the socket is readable, the
    /// idle timeout (counted from `idle_since`) passes, or the worker stops.
    async fn wait_readable(&mut self, stop: &Stop, idle_since: Instant) -> Read {
        self.buf.clear();
        self.start = 0;
        if self.buf.capacity() > 0 {
            let buf = std::mem::take(&mut self.buf);
            self.worker.bufs.give(buf);
        }
        let mut idle = self
            .listener
            .idle_timeout
            .saturating_sub(idle_since.elapsed());
        if let Some(left) = self.caps.as_ref().and_then(|c| c.time_left()) {
            idle = idle.min(left);
        }
        let ready = monoio::select! {
            r = monoio::time::timeout(idle, self.stream.readable(false)) => r,
            _ = stop.wait() => {
                // Draining. Closing a keep-alive connection races with a request the client
                // may be sending right now, which would then fail. So a connection that was
                // just used gets a grace period to send its next request (answered with
                // `connection: close`); only one quiet for DRAIN_IDLE_GRACE is closed, and a
                // request already received is still served.
                let grace = DRAIN_IDLE_GRACE.saturating_sub(idle_since.elapsed());
                let waited = monoio::time::timeout(grace.min(idle), self.stream.readable(false)).await;
                match waited {
                    Ok(r) => Ok(r),
                    Err(_) if self.has_pending_bytes() => Ok(Ok(())),
                    Err(_) => return Read::Stopped,
                }
            }
        };
        match ready {
            Ok(Ok(())) => {
                self.buf = self.worker.bufs.take();
                Read::Bytes
            }
            Ok(Err(_)) => Read::Closed,
            Err(_) => Read::TimedOut,
        }
    }

    /// Whether request bytes are waiting in the socket (a non-blocking peek).
    fn has_pending_bytes(&self) -> bool {
        let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
        let mut probe = [0u8; 1];
        matches!(
            nix::sys::socket::recv(self.stream.raw_fd(), &mut probe, flags),
            Ok(n) if n > 0
        )
    }

    /// Takes the PROXY protocol header a load balancer sends first (`proxy_protocol`),
    /// within `header_read_timeout`: the client it names becomes the connection's peer
    /// for the forwarding headers, the trust policy and the access log. False: close the
    /// connection (a required header missing or malformed, or one from a peer outside
    /// `trusted_sources`). A peer on a Unix socket is a local process and trusted.
    async fn accept_proxy_header(&mut self, pp: &ProxyProtocol) -> bool {
        let trusted = self
            .peer
            .ip()
            .is_none_or(|ip| pp.trusted_sources.iter().any(|c| c.contains(ip)));
        if !trusted {
            // Optional: an untrusted peer's bytes are its own (a header is then a 400).
            return !pp.required;
        }
        let deadline = Instant::now() + self.listener.header_read_timeout;
        loop {
            let unread = &self.buf[self.start..];
            if !unread.is_empty() {
                if !pp.required && !proxy_protocol::may_start_header(unread) {
                    return true;
                }
                match proxy_protocol::parse(unread) {
                    Ok(Some((consumed, header))) => {
                        self.start += consumed;
                        if let Some(source) = header.source {
                            let peer = Peer::Ip(source.ip());
                            (self.peer, self.client_ip) = (peer, peer);
                            self.peer_port = source.port();
                            self.peer_text = IpText::new(source.ip());
                            if let Some(log) = &mut self.log {
                                log.set_client(peer, source.port());
                            }
                        }
                        return true;
                    }
                    Ok(None) => {}
                    Err(_) => return false,
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !matches!(self.read_more(left).await, Read::Bytes) {
                return false;
            }
        }
    }

    /// Reads more bytes after `buf[start..]`, moving unconsumed bytes to the front first.
    async fn read_more(&mut self, timeout: Duration) -> Read {
        let Some(buf) = self.read_buffer() else {
            return Read::Closed;
        };
        let len = buf.len();
        let read = monoio::time::timeout(timeout, self.stream.read(buf.slice_mut(len..))).await;
        match read {
            Err(_elapsed) => Read::TimedOut,
            Ok((result, slice)) => match self.read_done(result, slice.into_inner()) {
                Ok(()) => Read::Bytes,
                Err(_) => Read::Closed,
            },
        }
    }

    /// Reads more request body bytes, like [`Connection::read_more`], within the
    /// exchange's limits.
    async fn read_body(&mut self, deadline: &mut Deadline<'_>) -> Result<(), Error> {
        let gone = |cause| {
            Error {
                request_written: true,
                ..Error::new(ErrorKind::ClientGone, Side::Client)
            }
            .because(cause)
        };
        let Some(buf) = self.read_buffer() else {
            // More than buffer_limit unconsumed: cannot happen while a body streams.
            return Err(gone(Cause::Unknown));
        };
        let len = buf.len();
        match deadline
            .within(self.stream.read(buf.slice_mut(len..)))
            .await
        {
            Err(expired) => Err(deadline.error(expired, true, false)),
            Ok((result, slice)) => self.read_done(result, slice.into_inner()).map_err(gone),
        }
    }

    /// The buffer to read into, taken out of `self` (it is lent to the kernel for the
    /// read; on a timeout it stays with the cancelled operation, and the connection
    /// closes): unconsumed bytes moved to the front, room made. `None` when
    /// `buffer_limit` bytes are waiting.
    fn read_buffer(&mut self) -> Option<Vec<u8>> {
        if self.start > 0 {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(self.buf.len() - self.start);
            self.start = 0;
        }
        if self.buf.len() >= self.listener.proxy.buffer_limit {
            return None;
        }
        if self.buf.capacity() == 0 {
            self.buf = self.worker.bufs.take();
        } else if self.buf.len() == self.buf.capacity() {
            self.buf.reserve(crate::buffers::CHUNK);
        }
        Some(std::mem::take(&mut self.buf))
    }

    /// Takes the buffer back after a read and counts what it brought.
    fn read_done(&mut self, result: std::io::Result<usize>, buf: Vec<u8>) -> Result<(), Cause> {
        self.buf = buf;
        match result {
            Ok(0) | Err(_) => Err(Cause::of(&result)),
            Ok(n) => {
                let stats = &self.listener.http_stats;
                stats.get(rq::DOWNSTREAM_CX_RX_BYTES_TOTAL).add(n as u64);
                Ok(())
            }
        }
    }

    /// Reads and drops the request's body, if it is small enough to be worth it, within
    /// the same limits as a forwarded body (`request_timeout`, `stream_idle_timeout`).
    async fn discard_body(&mut self, refused: bool) -> Body {
        if matches!(
            self.request.framing,
            BodyFraming::None | BodyFraming::ContentLength(0)
        ) {
            return Body::Consumed;
        }
        if refused {
            // Refused for its body (too large): not worth reading.
            return Body::Left;
        }
        let l = self.listener;
        let now = Instant::now();
        let at = l.request_timeout.map(|t| now + t);
        let (clock, idle) = (&self.worker.clock, l.stream_idle_timeout);
        let first = Deadline::first_check(at, idle, now);
        let timer = std::pin::pin!(monoio::time::sleep_until(first.into()));
        let mut deadline = Deadline::new(now, at, true, idle, clock, timer);
        let deadline = &mut deadline;
        let failed = |e: Error| match e.kind {
            ErrorKind::ClientGone => Body::Failed(None),
            _ => Body::Failed(Some(LocalReplyKind::RequestTimeout)),
        };
        match self.request.framing {
            BodyFraming::None => Body::Consumed,
            BodyFraming::ContentLength(0) => Body::Consumed,
            BodyFraming::ContentLength(length) => {
                let buffered = (self.buf.len() - self.start) as u64;
                if length > MAX_DISCARD || (self.request.expect_continue && buffered < length) {
                    return Body::Left;
                }
                let mut remaining = length;
                loop {
                    let take = remaining.min((self.buf.len() - self.start) as u64);
                    self.start += take as usize;
                    remaining -= take;
                    self.count_received(take);
                    if remaining == 0 {
                        return Body::Consumed;
                    }
                    if let Err(e) = self.read_body(deadline).await {
                        return failed(e);
                    }
                }
            }
            BodyFraming::Chunked => {
                self.request_decoder.reset();
                let mut wire = 0u64;
                loop {
                    match self.request_decoder.decode(&self.buf[self.start..]) {
                        Ok((consumed, event)) => {
                            self.start += consumed;
                            wire += consumed as u64;
                            if let Some(ChunkEvent::Data(data)) = &event {
                                // The payload, not its framing (Envoy's body bytes).
                                self.count_received(data.len() as u64);
                            }
                            if self.request_decoder.is_done() {
                                return Body::Consumed;
                            }
                            if consumed > 0 || event.is_some() {
                                continue;
                            }
                        }
                        Err(e) => {
                            return Body::Failed(Some(LocalReplyKind::for_status(e.status())))
                        }
                    }
                    if wire > MAX_DISCARD || self.request.expect_continue {
                        return Body::Left;
                    }
                    if let Err(e) = self.read_body(deadline).await {
                        return failed(e);
                    }
                }
            }
        }
    }

    /// Sends a reply and logs the request; false when the connection is gone.
    async fn respond(
        &mut self,
        reply: &Reply,
        close: bool,
        head_only: bool,
        flags: ResponseFlags,
        chain: Option<&Chain>,
    ) -> bool {
        let stats = &self.listener.http_stats;
        let mut out = self.worker.bufs.take();
        let date_line = self.worker.clock.date_line();
        let filters = &self.filters;
        reply.render(&mut out, close, head_only, &date_line, |out| {
            // This answer's own lines (a redirect's `location`, a preflight's CORS
            // headers), then the route's response-side additions, which apply to
            // ringway's own answers too, as Envoy applies them to direct responses.
            out.extend_from_slice(&filters.reply_lines);
            if let Some(chain) = chain {
                chain.local_reply_headers(out, filters);
            }
        });
        if let Some(log) = &mut self.log {
            log.capture_response(&out);
        }
        let len = out.len() as u64;
        self.head_sent = len
            - if head_only {
                0
            } else {
                reply.body_len() as u64
            };
        let (result, out) = self.stream.write_all(out).await;
        self.worker.bufs.give(out);
        self.charge_response(reply.status());
        if result.is_err() {
            // The answer was whole when it failed to go out: the client's close ends a
            // connection with no request open (Envoy's reply is complete once encoded).
            self.closed_by_client = true;
            let gone = flags | ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION;
            self.complete(reply.status(), 0, gone);
            return false;
        }
        stats.get(rq::DOWNSTREAM_CX_TX_BYTES_TOTAL).add(len);
        self.complete(reply.status(), len, flags);
        true
    }

    /// Body bytes read for the current request, a chunked body's payload without its
    /// framing (for the access log, the route's stats and a sampled request's span).
    fn count_received(&mut self, bytes: u64) {
        self.route_stats.received(bytes);
        self.trace_received(bytes);
        if let Some(log) = &mut self.log {
            log.add_received(bytes);
        }
    }

    /// A request that ended in a reset, as Envoy's connection manager counts one on
    /// HTTP/1.1: the client went away with it open (`downstream_rq_rx_reset`; the
    /// connection then closes remotely with a request on it), or ringway cut its
    /// response short (`downstream_rq_tx_reset`, and `rx_reset` too: Envoy's stream
    /// hears its own reset; the stream ends before ringway closes the connection, so
    /// that close has no request on it).
    fn count_reset(&mut self, client_gone: bool) {
        let stats = &self.listener.http_stats;
        stats.get(rq::DOWNSTREAM_RQ_RX_RESET).inc();
        if client_gone {
            (self.closed_by_client, self.cut_short) = (true, true);
        } else {
            stats.get(rq::DOWNSTREAM_RQ_TX_RESET).inc();
        }
    }

    /// Charges a response to the client as Envoy's connection manager does when it
    /// sends response headers (`chargeStats`): its status class and
    /// `downstream_rq_completed`, in the `http.` scope and the listener's.
    #[inline(always)]
    fn charge_response(&self, status: u16) {
        use crate::stats::names::listener_http;
        if self.health_check {
            return;
        }
        let l = self.listener;
        // A final head before the request was whole; a 1xx head goes out before it by
        // nature (Envoy checks in `encodeHeaders`, not `encode1xxHeaders`).
        if !self.request_whole && status >= 200 {
            self.count_early_response();
        }
        l.http_stats.get(rq::status_class(status)).inc();
        l.http_stats.get(rq::DOWNSTREAM_RQ_COMPLETED).inc();
        let own = &l.listener_http_stats;
        own.get(listener_http::status_class(status)).inc();
        own.get(listener_http::DOWNSTREAM_RQ_COMPLETED).inc();
    }

    /// Envoy's `max_connection_duration`: whether the connection is that old, counted in
    /// `downstream_cx_max_duration_reached` the first time it is found so. The response
    /// in progress then closes the connection, as Envoy's drain closes an HTTP/1.1 one.
    #[inline(always)]
    fn aged(&mut self) -> bool {
        // Most listeners have no caps: one test, no call.
        match &mut self.caps {
            Some(caps) => caps.aged(self.listener),
            None => false,
        }
    }

    /// Envoy's `downstream_rq_response_before_rq_complete`: this request's response head
    /// goes out before the request was wholly received. Envoy's HTTP/1 codec then keeps
    /// the request to reset it once the response is done (`onEncodeComplete`), and its
    /// connection manager resets a stream whose request is incomplete (`doEndStream`):
    /// a `downstream_rq_rx_reset` too.
    #[cold]
    fn count_early_response(&self) {
        let stats = &self.listener.http_stats;
        stats
            .get(rq::DOWNSTREAM_RQ_RESPONSE_BEFORE_RQ_COMPLETE)
            .inc();
        stats.get(rq::DOWNSTREAM_RQ_RX_RESET).inc();
    }

    /// The completion stage: every request ends here, exactly once, on every exit path
    /// (answered, replied locally, failed, timed out, client gone). Publishes the
    /// allocation counter and records the request in the access log, if there is one: its
    /// status, the bytes sent to the client, the upstream endpoint it went to, and the
    /// flags. Per-route stats, spans and outlier observations belong here too.
    fn complete(&mut self, status: u16, bytes_sent: u64, flags: ResponseFlags) {
        self.worker.publish_allocations();
        let flags = flags | std::mem::take(&mut self.filters.fault_flags);
        if std::mem::take(&mut self.filters.fault_active) {
            self.listener.http_stats.get(rq::FAULT_ACTIVE_FAULTS).dec();
        }
        // Only a parsed request was counted in `downstream_rq_active`.
        if std::mem::take(&mut self.rq_active) {
            self.listener.http_stats.get(rq::DOWNSTREAM_RQ_ACTIVE).dec();
        }
        self.count_route_request(status, bytes_sent, flags);
        if let Some(start) = self.rq_start.take() {
            // From the request's first byte to its last response byte written.
            self.listener.rq_time.record(start.elapsed());
        }
        let upstream = self.upstream.take();
        // An unsampled request records no span.
        if self.trace.on && self.trace.sampled {
            if let Some(mut pending) = self.pending.take() {
                let address = upstream.as_ref().map(|u| u.pool.address_text());
                let consumer = self.filters.identity().and_then(|a| a.principal());
                let body_sent = bytes_sent.saturating_sub(self.head_sent);
                let ends = (address, consumer);
                self.trace_finish(&mut pending, (status, body_sent), flags, ends);
                self.pending = Some(pending);
            }
        }
        let auth = self.filters.identity();
        if let Some(auth) = auth {
            auth.count_usage(status, (self.request.head_len as u64, bytes_sent));
        }
        if let Some(log) = &mut self.log {
            let address = upstream.as_ref().map(|u| u.pool.address_text());
            let who = (flags, auth.and_then(|a| a.principal()));
            let trace = self.trace.on.then(|| crate::access_log::TraceIds {
                trace_id: self.trace.trace_id(),
                short: self.trace.short_id(),
                span_id: self.trace.server_span(&mut self.random),
            });
            let attempts = if upstream.is_some() {
                self.retry.attempt
            } else {
                0
            };
            let tracing = (trace, attempts);
            log.finish(
                &self.listener.name,
                status,
                (bytes_sent, self.head_sent),
                address,
                who,
                tracing,
            );
        }
        self.filters.forget_identity();
        // Lines meant for this request's answer must not reach the next one's (an
        // error answer to a head that does not parse is written without a clear).
        self.filters.reply_lines.clear();
        self.trace.on = false;
    }

    /// Answers a request ringway cannot serve and closes the connection.
    async fn fail(&mut self, kind: LocalReplyKind) {
        let l = self.listener;
        if kind != LocalReplyKind::RequestTimeout {
            l.http_stats.get(rq::DOWNSTREAM_CX_PROTOCOL_ERROR).inc();
        }
        // Everything but a slow head is the client breaking the protocol.
        let flags = if kind == LocalReplyKind::RequestTimeout {
            ResponseFlags::NONE
        } else {
            ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR
        };
        if let Some(log) = &mut self.log {
            log.unparsed((self.buf.len() - self.start) as u64);
        }
        let reply = l.replies.get(kind);
        if self.respond(reply, true, false, flags, None).await {
            self.linger().await;
        }
    }

    /// Half-closes and reads what the client still sends, for a bounded time and size,
    /// so the kernel does not answer unread bytes with a reset that destroys the reply.
    async fn linger(&mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER_TIME;
        let mut total = 0;
        while total < LINGER_BYTES {
            self.buf.clear();
            self.start = 0;
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_more(left).await {
                Read::Bytes => total += self.buf.len(),
                _ => return,
            }
        }
    }
}

/// Envoy's response flag for a failed exchange.
fn error_flags(kind: ErrorKind) -> ResponseFlags {
    match kind {
        ErrorKind::NoHealthyUpstream => ResponseFlags::NO_HEALTHY_UPSTREAM,
        ErrorKind::Overflow => ResponseFlags::UPSTREAM_OVERFLOW,
        ErrorKind::ConnectFailed | ErrorKind::ConnectTimeout => {
            ResponseFlags::UPSTREAM_CONNECTION_FAILURE
        }
        ErrorKind::UpstreamReset => ResponseFlags::UPSTREAM_CONNECTION_TERMINATION,
        ErrorKind::BadResponse => ResponseFlags::UPSTREAM_PROTOCOL_ERROR,
        ErrorKind::Timeout | ErrorKind::PerTryTimeout => ResponseFlags::UPSTREAM_REQUEST_TIMEOUT,
        ErrorKind::DurationTimeout => ResponseFlags::DURATION_TIMEOUT,
        ErrorKind::RetriedResponse | ErrorKind::Hedged => ResponseFlags::NONE,
        ErrorKind::RequestTimeout => ResponseFlags::NONE,
        ErrorKind::StreamIdleTimeout => ResponseFlags::STREAM_IDLE_TIMEOUT,
        ErrorKind::ClientGone => ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION,
        ErrorKind::BadRequestBody(_) => ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
        ErrorKind::RequestTooLarge => ResponseFlags::NONE,
    }
}
