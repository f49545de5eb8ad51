//! Filter chains: what a route does to a request and its response on the way through.
//!
//! Design (`../shared/docs/extension-points.md` compares Envoy, Pingora, linkerd2-proxy,
//! Caddy and monolake): a chain is an array of [`Filter`]s, an enum dispatched with a
//! `match` (no trait objects, no allocation per request), compiled once per route when a
//! worker builds its snapshot: the listener's filters, then the route's. A route whose
//! chain is empty pays one length check per request. Filters see the exchange through
//! protocol-neutral views ([`RequestHead`], [`ResponseHead`]) whose edits go to the
//! codec's overlay: HTTP/1.1 keeps its offsets into the read buffer, and HTTP/2 will fill
//! the same views with owned bytes.
//!
//! Order, for every request that goes upstream:
//! 1. the fixed request stage ([`stages::upstream_request`]): hop-by-hop fields removed,
//!    forwarding headers (`x-forwarded-for`, `x-forwarded-proto`, `x-request-id`, `via`)
//!    by the listener's trust policy, `Expect` removed when ringway answers it;
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
//! A filter that must wait (a fault delay, a rate-limit lease, keys fetched off the
//! worker) will be an `async` variant awaited on the request's own worker: the request
//! pauses and resumes on the same thread; nothing waits for another thread. Body hooks
//! (observe or buffer within a limit) come with the first filter that needs them; the
//! plain path never buffers.

mod head;
mod header_mutation;
pub mod stages;

use std::rc::Rc;

pub use head::{RequestHead, ResponseHead};
pub use header_mutation::HeaderMutation;

use crate::{config, local_reply::Reply};

/// What a filter decided about a request.
#[derive(Debug)]
pub enum Verdict<'c> {
    /// Go on to the next filter (or upstream).
    Continue,
    /// Answer with this reply instead of going upstream.
    Respond(&'c Reply),
}

/// One filter of a chain, with its compiled configuration.
#[derive(Debug)]
pub enum Filter {
    /// Adds, replaces and removes header fields on the request and the response.
    Headers(HeaderMutation),
}

impl Filter {
    fn on_request(&self, head: &mut RequestHead<'_>) -> Verdict<'_> {
        match self {
            Filter::Headers(h) => {
                h.on_request(head);
                Verdict::Continue
            }
        }
    }

    fn on_response(&self, head: &mut ResponseHead<'_>) {
        match self {
            Filter::Headers(h) => h.on_response(head),
        }
    }

    fn local_reply_headers(&self, out: &mut Vec<u8>) {
        match self {
            Filter::Headers(h) => h.local_reply_headers(out),
        }
    }
}

/// The filters of one route, listener's first, compiled for one worker.
#[derive(Debug, Clone)]
pub struct Chain(Rc<[Filter]>);

impl Default for Chain {
    fn default() -> Self {
        Chain(Rc::from(Vec::new()))
    }
}

impl Chain {
    /// Compiles the listener's and the route's filters, in that order.
    pub fn build(listener: &config::HeaderMutations, route: &config::HeaderMutations) -> Chain {
        let filters: Vec<Filter> = [listener, route]
            .into_iter()
            .filter(|m| !m.is_empty())
            .map(|m| Filter::Headers(HeaderMutation::compile(m)))
            .collect();
        Chain(Rc::from(filters))
    }

    /// Whether the chain has no filter (the plain path).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs the request side, in order, until a filter answers.
    pub fn on_request(&self, head: &mut RequestHead<'_>) -> Verdict<'_> {
        for filter in self.0.iter() {
            if let Verdict::Respond(reply) = filter.on_request(head) {
                return Verdict::Respond(reply);
            }
        }
        Verdict::Continue
    }

    /// Runs the response side, in reverse order.
    pub fn on_response(&self, head: &mut ResponseHead<'_>) {
        for filter in self.0.iter().rev() {
            filter.on_response(head);
        }
    }

    /// Appends the header lines the response side adds to a reply ringway writes
    /// itself (a direct response, an error), in reverse order, as for a response.
    pub fn local_reply_headers(&self, out: &mut Vec<u8>) {
        for filter in self.0.iter().rev() {
            filter.local_reply_headers(out);
        }
    }
}
