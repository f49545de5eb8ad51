//! Authorization: a route's access policy, decided on who the client is.
//!
//! Design: the policy is compiled once per snapshot (`auth::policy`); a request is
//! judged on a read-only view ([`View`]) of its head, the connection's facts (peer
//! certificate, addresses) and what authentication found ([`super::authn::Identity`]):
//! nothing is copied or allocated. Shadow rules are judged too and only counted (a
//! policy's dry run before it is enforced). A denied request is answered 403 with the
//! reply profile's text (Envoy's `RBAC: access denied`).

use std::net::IpAddr;

use crate::auth::policy::{AuthzInput, Policy};
use crate::config::auth::Consumer;
use crate::local_reply::{LocalReplies, Reply};
use crate::peer::Peer;
use crate::stats::names::rbac as st;
use crate::stats::WorkerScope;

use super::{RequestFacts, RequestHead, RequestState, Verdict};

/// The authorization filter of one route.
#[derive(Debug)]
pub struct Authz {
    policy: std::rc::Rc<Policy>,
    /// `http.<prefix>.rbac.`, and the scope of the shadow pair when it has a prefix of
    /// its own (`shadow_rules_stat_prefix`).
    stats: Option<(WorkerScope, Option<WorkerScope>)>,
    denied: Reply,
}

impl Authz {
    pub fn new(
        policy: std::rc::Rc<Policy>,
        stats: Option<(WorkerScope, Option<WorkerScope>)>,
        profile: &LocalReplies,
    ) -> Self {
        Authz {
            policy,
            stats,
            denied: profile.custom(403, "RBAC: access denied"),
        }
    }

    pub(super) fn on_request(
        &self,
        head: &mut RequestHead<'_>,
        facts: &mut RequestFacts<'_>,
        state: &mut RequestState,
    ) -> Verdict<'_> {
        let view = View { head, facts, state };
        let decision = self.policy.evaluate(&view);
        if let Some((stats, shadow_stats)) = &self.stats {
            if let Some((allowed, _)) = decision.shadow {
                let scope = shadow_stats.as_ref().unwrap_or(stats);
                scope
                    .get(if allowed {
                        st::SHADOW_ALLOWED
                    } else {
                        st::SHADOW_DENIED
                    })
                    .inc();
            }
            if self.policy.log_only() {
                let logged = decision.matched.is_some();
                stats
                    .get(if logged { st::LOGGED } else { st::NOT_LOGGED })
                    .inc();
            } else if self.policy.enforces() {
                stats
                    .get(if decision.allowed {
                        st::ALLOWED
                    } else {
                        st::DENIED
                    })
                    .inc();
            }
        }
        if decision.allowed {
            Verdict::Continue
        } else {
            tracing::debug!(rule = decision.matched, "authorization denied a request");
            Verdict::Respond(&self.denied)
        }
    }
}

/// A request as a policy sees it.
struct View<'v, 'a, 'f> {
    head: &'v RequestHead<'a>,
    facts: &'v RequestFacts<'f>,
    state: &'v RequestState,
}

fn ip(peer: Peer) -> Option<IpAddr> {
    match peer {
        Peer::Ip(ip) => Some(ip),
        Peer::Unix => None,
    }
}

impl AuthzInput for View<'_, '_, '_> {
    fn method(&self) -> &[u8] {
        self.head.method_bytes()
    }

    fn path(&self) -> &[u8] {
        self.facts.path
    }

    /// Header fields by name, and Envoy's pseudo-headers: `:method`, `:path` (with its
    /// query), `:authority`, `:scheme`.
    fn header(&self, name: &str) -> Option<&[u8]> {
        match name {
            ":method" => Some(self.head.method_bytes()),
            // Envoy's `:path` is normalised before RBAC sees it: the target as received
            // when normalising left its path alone, else the normalised path (without
            // the query: it is not kept beside it), so `//admin` or `/./admin` cannot
            // get past a rule on `/admin`.
            ":path" => {
                let target = self.head.target();
                let unchanged = target.starts_with(self.facts.path)
                    && matches!(target.get(self.facts.path.len()), None | Some(b'?'));
                Some(if unchanged { target } else { self.facts.path })
            }
            ":authority" => Some(self.facts.authority),
            ":scheme" => Some(if self.facts.https { b"https" } else { b"http" }),
            _ => self.head.header(name),
        }
    }

    fn remote_ip(&self) -> Option<IpAddr> {
        ip(self.state.client)
    }

    fn direct_remote_ip(&self) -> Option<IpAddr> {
        ip(self.facts.direct)
    }

    fn destination_port(&self) -> Option<u16> {
        self.facts.local_address.get().map(|a| a.port())
    }

    fn destination_ip(&self) -> Option<IpAddr> {
        self.facts.local_address.get().map(|a| a.ip())
    }

    fn server_name(&self) -> Option<&[u8]> {
        self.facts.server_name.map(str::as_bytes)
    }

    fn peer(&self) -> Option<&crate::tls::identity::PeerIdentity> {
        self.facts.peer
    }

    fn claim(&self, dotted_path: &str) -> Option<&serde_json::Value> {
        self.state.identity()?.claim(dotted_path)
    }

    fn jwt_payload(&self, metadata_key: &str) -> Option<&serde_json::Value> {
        self.state.identity()?.payload(metadata_key)
    }

    fn consumer(&self) -> Option<&Consumer> {
        self.state
            .identity()?
            .consumer
            .as_ref()
            .map(|c| &c.consumer)
    }
}
