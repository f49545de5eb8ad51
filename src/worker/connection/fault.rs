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

use std::time::Duration;

use super::Connection;
use crate::{
    access_log::ResponseFlags,
    filter::fault::{self, Decision, Fault},
    local_reply::Reply,
    stats::names::http as rq,
};

/// What the fault filter left the request to do: wait this long first (then forward
/// it, or answer with the abort's reply).
pub(super) type Injected<'f> = (Option<Duration>, Option<&'f Reply>);

impl Connection<'_> {
    /// Decides the request's faults (the caller sleeps the delay: an await here would
    /// make every connection's future larger).
    #[inline(never)]
    pub(super) fn inject_fault<'f>(
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
            Decision::Pass => return (None, None),
            Decision::Overflow => {
                l.http_stats.get(rq::FAULT_FAULTS_OVERFLOW).inc();
                return (None, None);
            }
            Decision::Inject(injection) => injection,
        };
        l.http_stats.get(rq::FAULT_ACTIVE_FAULTS).inc();
        self.filters.fault_active = true;
        if injection.delay.is_some() {
            l.http_stats.get(rq::FAULT_DELAYS_INJECTED).inc();
            self.filters.fault_flags |= ResponseFlags::DELAY_INJECTED;
        }
        if let Some(status) = injection.abort {
            l.http_stats.get(rq::FAULT_ABORTS_INJECTED).inc();
            self.filters.fault_flags |= ResponseFlags::FAULT_INJECTED;
            return (injection.delay, Some(fault.abort_reply(status, &l.replies)));
        }
        if let Some(rate) = injection.rate {
            l.http_stats.get(rq::FAULT_RESPONSE_RL_INJECTED).inc();
            self.filters.pace_response(rate);
        }
        (injection.delay, None)
    }

    /// Waits, for a paced response, until the bytes written reach `total` within the
    /// rate; returns at once otherwise.
    #[inline]
    pub(super) async fn pace(&mut self, total: u64) {
        if let Some(wait) = self.filters.pace(total) {
            // Boxed: the sleep would otherwise make every response's future larger.
            Box::pin(monoio::time::sleep(wait)).await;
        }
    }
}
