//! The fault filter on the worker (`filter::fault` decides): a delayed request sleeps on
//! its own worker before it is forwarded, an aborted one is answered locally (after its
//! delay, if it has one), a paced one has its response writes paced (`pace`, called
//! where response bytes go to the client). Runs just before forwarding, after the
//! route's other filters: a request they refuse is never faulted (Envoy runs the fault
//! filter where it sits in the chain, usually first).
//!
//! `fault.active_faults` counts this worker's faulted requests on the listener until
//! they complete; `max_active` is checked against that count (per worker; Envoy's is
//! process-wide).

use super::Connection;
use crate::{
    access_log::ResponseFlags,
    filter::fault::{self, Decision, Fault},
    local_reply::Reply,
    stats::names::http as rq,
};

/// What the fault filter left the request to do.
pub(super) enum Injected<'f> {
    /// Forward it (perhaps after a delay, perhaps with its response paced).
    Forward,
    /// Answer with this reply: the route's fixed abort reply, or one made for a status a
    /// header chose.
    Abort(&'f Reply),
    AbortWith(Box<Reply>),
}

impl Connection<'_> {
    /// Decides the request's faults and sleeps its delay.
    #[inline(never)]
    pub(super) async fn inject_fault<'f>(
        &mut self,
        fault: &'f Fault,
        head_len: usize,
        cluster: &str,
    ) -> Injected<'f> {
        let l = self.listener;
        let head = &self.buf[self.start..self.start + head_len];
        let trusted = fault.header_controlled()
            && match &l.proxy.envoy {
                Some(envoy) => crate::forwarding_envoy::internal(
                    &self.request,
                    head,
                    self.peer,
                    l.proxy.trusted_proxies.hops,
                    envoy,
                ),
                None => crate::forwarding::peer_trusted(&l.proxy.trusted_proxies, self.peer),
            };
        let request = &self.request;
        let header = |name: &str| request.header(head, name);
        let request = fault::Request {
            header: &header,
            cluster,
            trusted,
        };
        let active = l.http_stats.get(rq::FAULT_ACTIVE_FAULTS).get();
        let random = &mut self.random;
        let decision = fault.decide(
            &request,
            u32::try_from(active).unwrap_or(u32::MAX),
            &mut || random.u64(..),
        );
        let injection = match decision {
            Decision::Pass => return Injected::Forward,
            Decision::Overflow => {
                l.http_stats.get(rq::FAULT_FAULTS_OVERFLOW).inc();
                return Injected::Forward;
            }
            Decision::Inject(injection) => injection,
        };
        l.http_stats.get(rq::FAULT_ACTIVE_FAULTS).inc();
        self.filters.fault_active = true;
        if let Some(delay) = injection.delay {
            l.http_stats.get(rq::FAULT_DELAYS_INJECTED).inc();
            self.filters.fault_flags |= ResponseFlags::DELAY_INJECTED;
            monoio::time::sleep(delay).await;
        }
        if let Some(status) = injection.abort {
            l.http_stats.get(rq::FAULT_ABORTS_INJECTED).inc();
            self.filters.fault_flags |= ResponseFlags::FAULT_INJECTED;
            return match fault.fixed_abort_reply(status) {
                Some(reply) => Injected::Abort(reply),
                None => Injected::AbortWith(Box::new(fault.abort_reply(status, &l.replies))),
            };
        }
        if let Some(rate) = injection.rate {
            l.http_stats.get(rq::FAULT_RESPONSE_RL_INJECTED).inc();
            self.filters.pace_response(rate);
        }
        Injected::Forward
    }

    /// Waits, for a paced response, until the bytes written reach `total` within the
    /// rate; returns at once otherwise.
    #[inline]
    pub(super) async fn pace(&mut self, total: u64) {
        if let Some(wait) = self.filters.pace(total) {
            monoio::time::sleep(wait).await;
        }
    }
}
