//! The control thread's side of DNS discovery: which clusters to keep resolved, their
//! latest members (what a new snapshot is built with), and the first round a start or a
//! reload waits for.
//!
//! The resolver threads start with the first config that has a DNS cluster. An update
//! is taken only if it was resolved for the cluster's current spec: one that a reload
//! overtook is dropped (the resolver starts the changed cluster over). Waiting for the
//! first round of new clusters (Envoy's cluster warming) is bounded by
//! [`FIRST_ROUND_TIMEOUT`]; a cluster still unanswered then serves 503 until its answer
//! comes.

use std::{collections::HashMap, sync::Arc, time::Duration};

use tracing::warn;

use crate::{
    config::{Config, DnsDiscovery, Endpoints},
    discovery::{system_lookup, Resolver, Target, Update},
    snapshot::{control_cells, StatsHandles},
    stats::StatsStore,
    upstream::{with_host_stats, Discovered, Members},
};

/// How long a start or a reload waits for the first resolution of its new DNS clusters.
pub(super) const FIRST_ROUND_TIMEOUT: Duration = Duration::from_secs(5);

/// DNS clusters of the config serving now, and what they resolved to.
pub(super) struct Dns {
    resolver: Option<Resolver>,
    updates_tx: flume::Sender<Update>,
    /// Updates from the resolver.
    pub(super) updates: flume::Receiver<Update>,
    /// By cluster name: the spec being resolved and, once answered, its members.
    current: HashMap<String, (DnsDiscovery, Option<Members>)>,
}

impl Dns {
    pub(super) fn new() -> Self {
        let (updates_tx, updates) = flume::unbounded();
        Dns {
            resolver: None,
            updates_tx,
            updates,
            current: HashMap::new(),
        }
    }

    /// Resolves exactly the DNS clusters of `config` from now on; returns the names of
    /// those whose first answer is still to come.
    pub(super) fn watch(
        &mut self,
        config: &Config,
        stats: &StatsHandles,
    ) -> Result<Vec<String>, String> {
        let mut targets = Vec::new();
        let mut current = HashMap::new();
        let mut pending = Vec::new();
        for cluster in &config.clusters {
            let (Endpoints::Dns(spec), Some(scope)) =
                (&cluster.endpoints, stats.clusters.get(&cluster.name))
            else {
                continue;
            };
            let members = match self.current.remove(&cluster.name) {
                Some((old, members)) if old == *spec => members,
                _ => None,
            };
            if members.is_none() {
                pending.push(cluster.name.clone());
            }
            current.insert(cluster.name.clone(), (spec.clone(), members));
            targets.push(Target {
                cluster: cluster.name.clone(),
                spec: spec.clone(),
                stats: control_cells(scope),
            });
        }
        self.current = current;
        if self.resolver.is_none() && !targets.is_empty() {
            let resolver = Resolver::start(self.updates_tx.clone(), system_lookup())
                .map_err(|e| format!("starting the DNS resolver threads: {e}"))?;
            self.resolver = Some(resolver);
        }
        if let Some(resolver) = &self.resolver {
            resolver.watch(targets);
        }
        Ok(pending)
    }

    /// Takes an update; returns it when it is for a cluster's current spec (to forward
    /// to the workers), its members with their host stats from `store`.
    pub(super) fn accept(
        &mut self,
        update: Update,
        store: &mut StatsStore,
    ) -> Option<(String, Members)> {
        let (spec, members) = self.current.get_mut(&update.cluster)?;
        if *spec != update.spec {
            return None;
        }
        let cluster = update.cluster;
        let with_stats = with_host_stats(&update.members, |address, hostname| {
            store.host(&cluster, &address.to_string(), hostname)
        });
        *members = Some(Members::clone(&with_stats));
        Some((cluster, with_stats))
    }

    /// Whether every cluster in `pending` has its first answer.
    pub(super) fn answered(&self, pending: &[String]) -> bool {
        pending
            .iter()
            .all(|name| self.current.get(name).is_none_or(|(_, m)| m.is_some()))
    }

    /// Blocks until the clusters in `pending` have answered, or the timeout (at start,
    /// before any worker exists).
    pub(super) fn wait_first_round(&mut self, pending: &[String], store: &mut StatsStore) {
        let deadline = std::time::Instant::now() + FIRST_ROUND_TIMEOUT;
        while !self.answered(pending) {
            match self.updates.recv_deadline(deadline) {
                Ok(update) => {
                    self.accept(update, store);
                }
                Err(_) => break,
            }
        }
        self.warn_unanswered(pending);
    }

    /// Logs the clusters of `pending` still without an answer.
    pub(super) fn warn_unanswered(&self, pending: &[String]) {
        for name in pending {
            if self.current.get(name).is_some_and(|(_, m)| m.is_none()) {
                warn!(
                    cluster = name.as_str(),
                    "no DNS answer within {FIRST_ROUND_TIMEOUT:?}: the cluster has no endpoints (503) until one comes"
                );
            }
        }
    }

    /// The members of every DNS cluster, for a snapshot.
    pub(super) fn discovered(&self) -> Discovered {
        Arc::new(
            self.current
                .iter()
                .filter_map(|(name, (_, members))| Some((name.clone(), members.clone()?)))
                .collect(),
        )
    }
}
