//! DNS discovery: the endpoints of `strict_dns` and `logical_dns` clusters, resolved off
//! the workers.
//!
//! Design: resolving a name blocks (getaddrinfo, which honours `/etc/hosts`,
//! `nsswitch.conf` and `resolv.conf` as every other program on the host does), so it
//! never runs on a worker, nor on the control thread. A [`Resolver`] is one scheduler
//! thread (`schedule`) that keeps, per cluster, when its names are due and their last
//! good addresses, and a few lookup threads (`lookup`) that run the blocking calls, so a
//! name whose DNS server hangs delays only itself. When a round changes a cluster's
//! members the scheduler sends an [`Update`] to the control thread, which keeps the
//! latest members for new snapshots and forwards them to every worker by message
//! (`worker::Command::Members`); a worker swaps the cluster's balancer between two
//! requests, and pools of endpoints that left drain (`upstream::PoolRegistry::sweep`).
//!
//! Envoy's semantics: a strict cluster's endpoints are every address of every name
//! (each with its name's weight and port); a logical cluster's one endpoint is the first
//! address of its one name; every name is resolved again `refresh_rate` after its last
//! answer; a name that fails keeps its last good addresses (an answer with no address of
//! the wanted family counts as a failure); `dns_lookup_family` chooses among the
//! addresses (`lookup::choose`). The first round of every cluster is reported even when
//! it failed, so the control thread can wait for it before serving (Envoy's cluster
//! warming).
//!
//! `respect_dns_ttl` (Envoy's field): getaddrinfo reports no TTL, so such a cluster's
//! names are resolved by [`DnsClient`] (`ttl`), which asks the `resolv.conf` nameservers
//! itself after the hosts file, on the same lookup threads. Its next round is due after
//! the TTL of the answer instead of `refresh_rate`, as Envoy documents ("the cluster's DNS
//! refresh rate will be set to the resource record's TTL"): the smallest TTL of the
//! records used, whether shorter or longer than `refresh_rate`, with no floor (Envoy's
//! `dns_min_refresh_rate` belongs to the dynamic forward proxy's cache, not to clusters).
//! A TTL of 0, an answer from the hosts file or an IP literal (no TTL), and a failure use
//! `refresh_rate` (Envoy: a zero TTL keeps the refresh rate, and
//! `dns_failure_refresh_rate` defaults to it). A cluster's names are resolved together
//! in one round, so a cluster with several names is resolved again at the smallest of
//! their refresh times (Envoy times each name alone; resolving a name early is harmless).

mod hosts;
mod lookup;
mod schedule;
mod ttl;

#[cfg(test)]
mod test_server;

use std::{net::IpAddr, sync::Arc, time::Duration};

pub use lookup::{choose, system_lookup};
pub use ttl::DnsClient;

use crate::{
    config::{DnsDiscovery, LookupFamily},
    stats::WorkerScope,
    upstream::Members,
};

/// Resolves `(host, port)` to addresses, blocking: getaddrinfo in production, a table
/// in tests.
pub type Lookup = Arc<dyn Fn(&str, u16) -> std::io::Result<Vec<IpAddr>> + Send + Sync>;

/// Resolves a host for a lookup family with the answer's TTL, blocking: for clusters with
/// `respect_dns_ttl` ([`DnsClient`] in production, a table in tests).
pub type TtlLookup = Arc<dyn Fn(&str, LookupFamily) -> std::io::Result<Answer> + Send + Sync>;

/// A name's addresses, and how long they may be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub addresses: Vec<IpAddr>,
    /// The smallest TTL of the records the answer was made of; `None` when it had none
    /// (the hosts file, an IP literal). `None` and zero mean `refresh_rate`.
    pub ttl: Option<Duration>,
}

impl Answer {
    /// Addresses without a TTL.
    pub fn untimed(addresses: Vec<IpAddr>) -> Answer {
        Answer {
            addresses,
            ttl: None,
        }
    }
}

/// The two ways of resolving: getaddrinfo for most clusters, the TTL-aware one for
/// clusters with `respect_dns_ttl`.
#[derive(Clone)]
pub struct Lookups {
    pub plain: Lookup,
    pub with_ttl: TtlLookup,
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookups").finish_non_exhaustive()
    }
}

impl Lookups {
    /// `plain` for clusters without `respect_dns_ttl`; the system's files
    /// ([`DnsClient::system`]) for those with it.
    pub fn system(plain: Lookup) -> Lookups {
        Lookups {
            plain,
            with_ttl: DnsClient::system().into_lookup(),
        }
    }
}

/// A DNS cluster to keep resolved.
#[derive(Debug, Clone)]
pub struct Target {
    /// The cluster's name.
    pub cluster: String,
    /// What to resolve, and how.
    pub spec: DnsDiscovery,
    /// The cluster's cells that discovery writes (`update_*`, `membership_*`).
    pub stats: WorkerScope,
}

/// New members for a cluster, from the resolver.
#[derive(Debug, Clone)]
pub struct Update {
    /// The cluster's name.
    pub cluster: String,
    /// The spec they were resolved for (a reload may have changed it since).
    pub spec: DnsDiscovery,
    /// All its endpoints now.
    pub members: Members,
}

/// The handle of the resolver threads; they stop when it is dropped.
#[derive(Debug)]
pub struct Resolver {
    inbox: flume::Sender<schedule::Message>,
}

/// How many blocking lookups may run at once.
const LOOKUP_THREADS: usize = 2;

impl Resolver {
    /// Starts the scheduler and lookup threads; updates go to `updates`. Clusters with
    /// `respect_dns_ttl` are resolved by [`DnsClient::system`], the others by `lookup`.
    pub fn start(updates: flume::Sender<Update>, lookup: Lookup) -> std::io::Result<Resolver> {
        Resolver::start_with(updates, Lookups::system(lookup))
    }

    /// As [`Resolver::start`], with both ways of resolving given (tests).
    pub fn start_with(
        updates: flume::Sender<Update>,
        lookups: Lookups,
    ) -> std::io::Result<Resolver> {
        let inbox = schedule::start(updates, lookups, LOOKUP_THREADS)?;
        Ok(Resolver { inbox })
    }

    /// Keeps exactly `targets` resolved from now on. A target whose spec is unchanged
    /// keeps its schedule and last good addresses; a new or changed one is resolved at
    /// once, and its first round is reported whatever the outcome.
    pub fn watch(&self, targets: Vec<Target>) {
        let _ = self.inbox.send(schedule::Message::Watch(targets));
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = self.inbox.send(schedule::Message::Stop);
    }
}
