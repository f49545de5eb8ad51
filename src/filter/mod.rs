//! Filter chains: what a route does to a request and its response on the way through.
//!
//! Design (`../shared/docs/extension-points.md` compares Envoy, Pingora, linkerd2-proxy,
//! Caddy and monolake): a chain is an array of [`Filter`]s, an enum dispatched with a
//! `match` (no trait objects, no allocation per request), compiled once per route when a
//! worker builds its snapshot: the CORS policy and the body limit (each the route's, else
//! the listener's), then the listener's header edits, then the route's. CORS comes first
//! so that a preflight is answered before anything else can refuse it (Envoy's
//! documented placement). Filters keep what a request's response side needs in the
//! connection's [`RequestState`]. A route whose
//! chain is empty pays one length check per request. Filters see the exchange through
//! protocol-neutral views ([`RequestHead`], [`ResponseHead`]) whose edits go to the
//! codec's overlay: HTTP/1.1 keeps its offsets into the read buffer, and HTTP/2 will fill
//! the same views with owned bytes.
//!
//! Order, for every request that goes upstream:
//! 1. the fixed request stage ([`stages::upstream_request`]): hop-by-hop fields removed,
//!    forwarding headers (`x-forwarded-for`, `x-forwarded-proto`, `x-request-id`, `via`)
//!    by the listener's trust policy, `Expect` removed when ringway answers it, and on
//!    TLS listeners `x-forwarded-client-cert` ([`client_cert`]);
//! 2. the chain's request side, in order; a filter may edit the head, answer locally
//!    ([`Verdict::Respond`]; the rest of the chain and the upstream are skipped), or let
//!    the request pass;
//! 3. the upstream exchange; then the chain's response side, in reverse order;
//! 4. the fixed response stage ([`stages::downstream_response`]): hop-by-hop fields
//!    removed, `transfer-encoding`, `connection: close`, `date`, `server`, `via`;
//! 5. completion: once per request on every exit path (answered, replied locally,
//!    failed, timed out, client gone), `Connection::complete` records the request: the
//!    access log and the allocation counter now, per-route stats, spans and outlier
//!    observations as the filters that make them arrive.
//!
//! Request body: each piece of payload (after chunked decoding) passes the chain's
//! request side in order ([`Chain::on_request_body`]) as it streams upstream, with the
//! payload count so far; a filter may fail the request there (the body limit does). The
//! pumps call it only for a chain that has a body filter, so the plain path and header
//! edits pay one flag check per piece. Buffering a body within a limit (Envoy's buffer
//! filter) will hold pieces in the filter's per-request state; response bodies get the
//! same hook with the first filter that reads them (compression).
//!
//! A filter that must wait (a fault delay, a rate-limit lease, keys fetched off the
//! worker) will be an `async` variant awaited on the request's own worker: the request
//! pauses and resumes on the same thread; nothing waits for another thread.

pub mod authn;
pub mod authz;
mod body_limit;
pub mod client_cert;
mod cors;
pub mod fault;
mod head;
mod header_mutation;
pub mod health_check;
pub mod ratelimit;
pub mod stages;
pub mod value_match;

use std::rc::Rc;

pub use body_limit::BodyLimit;
pub use cors::Cors;
pub use head::{RequestHead, ResponseHead};
pub use header_mutation::HeaderMutation;

use crate::{config, error::ErrorKind, local_reply::Reply, peer::Peer};

/// What a filter decided about a request.
#[derive(Debug)]
pub enum Verdict<'c> {
    /// Go on to the next filter (or upstream).
    Continue,
    /// Answer with this reply instead of going upstream.
    Respond(&'c Reply),
    /// Refuse the request as this error (its status and reply come from the listener's
    /// reply profile, as for the same error found anywhere else).
    Fail(ErrorKind),
}

/// What the filters of one request keep between its request and its response side, and
/// hand to the connection for a reply they chose. Owned by the connection and cleared per
/// request: its buffers keep their capacity, so using it allocates nothing in steady
/// state.
#[derive(Debug)]
pub struct RequestState {
    /// Header lines for the local reply a filter answered with (a preflight's CORS
    /// headers); for a forwarded request, the lines the response gains besides the
    /// filters' edits (a hash-policy cookie ringway made for the client).
    pub reply_lines: Vec<u8>,
    /// The request's `Origin` when a CORS policy allowed it; empty otherwise.
    cors_origin: Vec<u8>,
    /// The client as the trust policy resolved it (`%DOWNSTREAM_REMOTE_ADDRESS...%`), and
    /// its port (0 when unknown).
    pub client: Peer,
    pub client_port: u16,
    /// The request's protocol (`HTTP/1.1`), for `%PROTOCOL%` on the response side.
    pub protocol: &'static [u8],
    /// The endpoint the request went to (`%UPSTREAM_REMOTE_ADDRESS%`); empty before.
    pub upstream: Vec<u8>,
    /// Scratch for values with variables, and where each one ends in it.
    render: Vec<u8>,
    render_ends: Vec<usize>,
    /// Who the authentication filter found the client to be (for authorization, the
    /// access log and header variables); boxed on a connection's first authenticated
    /// request, so connections that never authenticate stay small.
    auth: Option<Box<authn::Identity>>,
    /// A rate limit refused the request (the access log's `RL`).
    pub rate_limited: bool,
    /// Rate-limit headers' numbers and per-connection buckets, boxed on first use.
    limits: Option<Box<ratelimit::LimitState>>,
    /// The access log's `DI`/`FI` for this request, and whether it counts in
    /// `fault.active_faults` (both taken when the request completes).
    pub fault_flags: crate::access_log::ResponseFlags,
    pub fault_active: bool,
}

impl Default for RequestState {
    fn default() -> Self {
        RequestState {
            reply_lines: Vec::new(),
            cors_origin: Vec::new(),
            client: Peer::Unix,
            client_port: 0,
            protocol: b"HTTP/1.1",
            upstream: Vec::new(),
            render: Vec::new(),
            render_ends: Vec::new(),
            auth: None,
            rate_limited: false,
            limits: None,
            fault_flags: crate::access_log::ResponseFlags::NONE,
            fault_active: false,
        }
    }
}

impl RequestState {
    /// Forgets the last request; `client` and `protocol` are the next one's.
    pub fn clear(&mut self, (client, port): (Peer, u16), protocol: &'static [u8]) {
        self.reply_lines.clear();
        self.cors_origin.clear();
        self.upstream.clear();
        if let Some(auth) = &mut self.auth {
            auth.clear();
        }
        self.rate_limited = false;
        self.forget_limit();
        if let Some(limits) = &mut self.limits {
            limits.pacer = fault::Pacer::default();
        }
        (self.client, self.client_port, self.protocol) = (client, port, protocol);
    }
}

impl RequestState {
    /// Sends this request's response at `bytes_per_second` (a fault).
    pub fn pace_response(&mut self, bytes_per_second: u64) {
        let limits = self.limits.get_or_insert_with(Default::default);
        limits.pacer = fault::Pacer::new(bytes_per_second);
    }

    /// How long to wait before the write that brings the response's bytes to `total`
    /// (`None` at once: not paced, or within the rate).
    #[inline]
    pub fn pace(&mut self, total: u64) -> Option<std::time::Duration> {
        match &mut self.limits {
            Some(l) if l.pacer.is_on() => l.pacer.wait(total, std::time::Instant::now()),
            _ => None,
        }
    }

    /// Who authentication found the client to be, if it ran.
    pub fn identity(&self) -> Option<&authn::Identity> {
        self.auth.as_deref()
    }

    /// Forgets who the last request's client was (the completion stage, once it counted
    /// and logged it: a next request that fails before routing must not inherit it).
    pub fn forget_identity(&mut self) {
        if let Some(auth) = &mut self.auth {
            auth.clear();
        }
    }

    fn identity_mut(&mut self) -> &mut authn::Identity {
        self.auth.get_or_insert_with(Default::default)
    }
}

/// What the connection knows about a request beyond its head, for the filters that
/// need it (authentication and authorization); built only for a chain that has them.
#[derive(Debug)]
pub struct RequestFacts<'a> {
    /// The normalised path, without query.
    pub path: &'a [u8],
    /// The query, without `?`.
    pub query: &'a [u8],
    /// The authority (Host).
    pub authority: &'a [u8],
    /// Whether the client's connection is TLS.
    pub https: bool,
    /// The TCP peer (the direct client).
    pub direct: Peer,
    /// The address the client connected to, read from the socket only when asked
    /// (a policy on the destination).
    pub local_address: LocalAddress<'a>,
    /// The client's verified certificate.
    pub peer: Option<&'a crate::tls::identity::PeerIdentity>,
    /// The server name the client sent in its TLS handshake.
    pub server_name: Option<&'a str>,
    /// The target sent upstream (path and query), on forwarded requests: a token or key
    /// taken from the query is removed from it.
    pub upstream_target: Option<&'a mut Vec<u8>>,
    /// The listener's authentication rule this request matched (Envoy's `jwt_authn`
    /// rules), as the connection found it while routing.
    pub auth_rule: Option<usize>,
    /// Seconds since the Unix epoch (the worker's coarse clock).
    pub now: u64,
}

/// Reads the connection's local address (a `getsockname`), only when called.
pub struct LocalAddress<'a>(pub &'a dyn Fn() -> Option<std::net::SocketAddr>);

impl LocalAddress<'_> {
    pub fn get(&self) -> Option<std::net::SocketAddr> {
        (self.0)()
    }
}

impl std::fmt::Debug for LocalAddress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalAddress")
    }
}

impl RequestFacts<'static> {
    /// The facts of a request known only by its head (tests and benches): no path,
    /// no peer, no upstream target.
    pub fn none() -> Self {
        RequestFacts {
            path: b"",
            query: b"",
            authority: b"",
            https: false,
            direct: Peer::Unix,
            local_address: LocalAddress(&|| None),
            peer: None,
            server_name: None,
            upstream_target: None,
            auth_rule: None,
            now: 0,
        }
    }
}

/// One filter of a chain, with its compiled configuration.
#[derive(Debug)]
pub enum Filter {
    /// Answers CORS preflights and adds CORS headers to responses.
    Cors(Cors),
    /// Refuses request bodies over a size (413).
    BodyLimit(BodyLimit),
    /// Adds, replaces and removes header fields on the request and the response.
    Headers(HeaderMutation),
    /// JWT and API-key authentication.
    Authn(Box<authn::Authn>),
    /// An access policy.
    Authz(Box<authz::Authz>),
    /// Rate limits.
    RateLimit(Box<ratelimit::RateLimit>),
}

impl Filter {
    fn on_request(
        &self,
        head: &mut RequestHead<'_>,
        facts: &mut RequestFacts<'_>,
        state: &mut RequestState,
    ) -> Verdict<'_> {
        match self {
            Filter::Authn(a) => a.on_request(head, facts, state),
            Filter::Authz(a) => a.on_request(head, facts, state),
            Filter::RateLimit(r) => r.on_request(head, facts, state),
            Filter::Cors(c) => match c.on_request(head, state) {
                Some(preflight) => Verdict::Respond(preflight),
                None => Verdict::Continue,
            },
            Filter::BodyLimit(b) => match b.on_request(head) {
                Ok(()) => Verdict::Continue,
                Err(kind) => Verdict::Fail(kind),
            },
            Filter::Headers(h) => {
                h.on_request(head, state);
                Verdict::Continue
            }
        }
    }

    fn on_request_body(&self, _piece: &[u8], received: u64) -> Result<(), ErrorKind> {
        match self {
            Filter::BodyLimit(b) => b.on_request_body(received),
            Filter::Cors(_)
            | Filter::Headers(_)
            | Filter::Authn(_)
            | Filter::Authz(_)
            | Filter::RateLimit(_) => Ok(()),
        }
    }

    fn reads_request_body(&self) -> bool {
        match self {
            Filter::BodyLimit(_) => true,
            Filter::Cors(_)
            | Filter::Headers(_)
            | Filter::Authn(_)
            | Filter::Authz(_)
            | Filter::RateLimit(_) => false,
        }
    }

    fn edits_responses(&self) -> bool {
        match self {
            Filter::Cors(_) => true,
            Filter::BodyLimit(_) | Filter::Authn(_) | Filter::Authz(_) => false,
            Filter::Headers(h) => h.edits_responses(),
            Filter::RateLimit(r) => r.edits_responses(),
        }
    }

    fn on_response(&self, head: &mut ResponseHead<'_>, state: &mut RequestState) {
        match self {
            Filter::Cors(c) => c.on_response(head, state),
            Filter::BodyLimit(_) | Filter::Authn(_) | Filter::Authz(_) => {}
            Filter::Headers(h) => h.on_response(head, state),
            Filter::RateLimit(r) => r.on_response(head, state),
        }
    }

    fn local_reply_headers(&self, out: &mut Vec<u8>, state: &RequestState) {
        match self {
            Filter::Cors(c) => c.local_reply_headers(out, state),
            Filter::BodyLimit(_) | Filter::Authn(_) | Filter::Authz(_) => {}
            Filter::Headers(h) => h.local_reply_headers(out, state),
            Filter::RateLimit(r) => r.local_reply_headers(out, state),
        }
    }
}

/// The filters of one route, listener's first, compiled for one worker.
#[derive(Debug, Clone)]
pub struct Chain {
    filters: Rc<[Filter]>,
    /// Some filter reads request body pieces (the pumps skip the chain otherwise).
    reads_request_body: bool,
    /// Some filter edits responses (their side is skipped otherwise).
    edits_responses: bool,
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new(Vec::new())
    }
}

impl Chain {
    fn new(filters: Vec<Filter>) -> Chain {
        Chain {
            reads_request_body: filters.iter().any(Filter::reads_request_body),
            edits_responses: filters.iter().any(Filter::edits_responses),
            filters: Rc::from(filters),
        }
    }

    /// Compiles a route's chain: its CORS policy (the route's, else its virtual host's,
    /// else the listener's), the rate limits keyed by the head alone, authentication and
    /// authorization (`auth`, when the listener or the route has them), the rate limits
    /// keyed by who the client is, the body limit (the route's, else the
    /// listener's), then the header edits of the listener, the virtual host and the
    /// route, in that order. CORS comes first so a preflight is answered before
    /// authentication can refuse it; authentication before the header edits so that
    /// edits may use who the client is.
    pub fn build(
        ([listener, host], route): ([&config::HeaderMutations; 2], &config::HeaderMutations),
        (cors, max_request_body): (Option<&config::CorsPolicy>, Option<u64>),
        route_name: &str,
        (auth, [limit_first, limit_before, limit_after]): (
            [Option<Filter>; 2],
            [Option<Filter>; 3],
        ),
    ) -> Chain {
        let cors = cors.map(|p| Filter::Cors(Cors::compile(p)));
        let limit = max_request_body.map(|max| Filter::BodyLimit(BodyLimit::new(max)));
        let headers = [listener, host, route]
            .into_iter()
            .filter(|m| !m.is_empty())
            .map(|m| Filter::Headers(HeaderMutation::compile(m, route_name)));
        let auth = auth.into_iter().flatten();
        Chain::new(
            limit_first
                .into_iter()
                .chain(cors)
                .chain(limit_before)
                .chain(auth)
                .chain(limit_after)
                .chain(limit)
                .chain(headers)
                .collect(),
        )
    }

    /// Whether the chain has no filter (the plain path).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Whether some filter edits responses (or the replies ringway writes); the
    /// response side may be skipped otherwise.
    #[inline]
    pub fn edits_responses(&self) -> bool {
        self.edits_responses
    }

    /// Whether request body pieces must be shown to the chain.
    #[inline]
    pub fn reads_request_body(&self) -> bool {
        self.reads_request_body
    }

    /// Runs the request side, in order, until a filter answers or fails the request.
    pub fn on_request(
        &self,
        head: &mut RequestHead<'_>,
        facts: &mut RequestFacts<'_>,
        state: &mut RequestState,
    ) -> Verdict<'_> {
        for filter in self.filters.iter() {
            match filter.on_request(head, facts, state) {
                Verdict::Continue => {}
                decided => return decided,
            }
        }
        Verdict::Continue
    }

    /// Shows one piece of request payload to the request side, in order; `received`
    /// counts the payload so far, this piece included. An error fails the request.
    pub fn on_request_body(&self, piece: &[u8], received: u64) -> Result<(), ErrorKind> {
        for filter in self.filters.iter() {
            filter.on_request_body(piece, received)?;
        }
        Ok(())
    }

    /// Runs the response side, in reverse order.
    pub fn on_response(&self, head: &mut ResponseHead<'_>, state: &mut RequestState) {
        if !self.edits_responses {
            return;
        }
        for filter in self.filters.iter().rev() {
            filter.on_response(head, state);
        }
    }

    /// Appends the header lines the response side adds to a reply ringway writes
    /// itself (a direct response, an error), in reverse order, as for a response.
    pub fn local_reply_headers(&self, out: &mut Vec<u8>, state: &RequestState) {
        if !self.edits_responses {
            return;
        }
        for filter in self.filters.iter().rev() {
            filter.local_reply_headers(out, state);
        }
    }
}
