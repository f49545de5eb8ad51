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

mod lookup;
mod schedule;

use std::{net::IpAddr, sync::Arc};

pub use lookup::{choose, system_lookup};

use crate::{config::DnsDiscovery, stats::WorkerScope, upstream::Members};

/// Resolves `(host, port)` to addresses, blocking: getaddrinfo in production, a table
/// in tests.
pub type Lookup = Arc<dyn Fn(&str, u16) -> std::io::Result<Vec<IpAddr>> + Send + Sync>;

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
    /// Starts the scheduler and lookup threads; updates go to `updates`.
    pub fn start(updates: flume::Sender<Update>, lookup: Lookup) -> std::io::Result<Resolver> {
        let inbox = schedule::start(updates, lookup, LOOKUP_THREADS)?;
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
