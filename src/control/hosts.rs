//! The control thread's side of host sets: every cluster's members and health, the
//! [`HostSet`] built from them, and the health service that checks and judges the
//! endpoints.
//!
//! Design: three things change what a cluster's requests may go to — a reload, DNS
//! discovery, and the health service (active checks, outlier ejections) — and all three
//! arrive here, on the control thread. Each change builds one new [`HostSet`] (the
//! balancing plan with its hash tables included), which the control loop sends to every
//! worker. The health service runs on threads of its own (`health`); it is told which
//! clusters and endpoints exist ([`Hosts::apply`], [`Hosts::set_members`]) and reports
//! each endpoint's flags by address; the flags the config declares (`health:
//! unhealthy`, Envoy's EDS `health_status`) are merged in here. An endpoint keeps its
//! flags across reloads and DNS updates while its cluster's health settings stay the
//! same; a new one starts as the health service would have it (failed and pending its
//! first check when the cluster has active checks).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    balance::Usability,
    config::{self, Address, Config, Endpoints},
    health::{HealthEvent, HealthFlags, HealthService, Reporter, Watched},
    snapshot::{control_cells, StatsHandles},
    stats::{names::cluster as cx, StatsStore, WorkerScope},
    upstream::{initial_flags, Discovered, HostSet, HostSets, Members},
};

/// The longest a start or a reload waits for the first round of health checks of its
/// new clusters (Envoy's cluster warming); endpoints still unchecked then are served in
/// panic mode until their first result.
pub(super) const FIRST_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// A cluster as `/clusters` shows it.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub name: String,
    pub set: Arc<HostSet>,
    /// Whether it has outlier detection (Envoy's `outlier::` lines).
    pub outlier_detection: bool,
    /// Its circuit-breaker thresholds, `[default, high]`.
    pub thresholds: [config::resilience::Thresholds; 2],
}

/// One cluster's state.
struct Book {
    cluster: config::Cluster,
    members: Members,
    /// The health service's verdicts, by address.
    reported: HashMap<Address, HealthFlags>,
    /// The service finished its first round of checks (or the cluster has none).
    warmed: bool,
    set: Arc<HostSet>,
    /// The client configuration of its HTTPS checks (a checked TLS cluster).
    check_tls: Option<Arc<rustls::ClientConfig>>,
    /// The control thread's cells of `cluster.<name>.` (the membership gauges).
    cells: Option<WorkerScope>,
}

impl Book {
    fn new(
        cluster: &config::Cluster,
        members: Members,
        (reported, warmed): (HashMap<Address, HealthFlags>, bool),
        cells: Option<WorkerScope>,
    ) -> Book {
        let book = Book {
            set: host_set(cluster, &members, &reported),
            // Built once per config: checks of a TLS cluster speak TLS with its settings.
            check_tls: cluster
                .tls
                .as_ref()
                .filter(|_| cluster.health_check.is_some())
                .and_then(|tls| crate::tls::client::Connector::new(tls).ok())
                .map(|c| c.client_config()),
            cluster: cluster.clone(),
            members,
            reported,
            warmed,
            cells,
        };
        book.count_membership();
        book
    }

    fn rebuild(&mut self) {
        self.set = host_set(&self.cluster, &self.members, &self.reported);
        self.count_membership();
    }

    /// The membership gauges of the current set.
    fn count_membership(&self) {
        let Some(cells) = &self.cells else { return };
        let count =
            |u: Usability| self.set.flags.iter().filter(|f| f.usability() == u).count() as u64;
        cells
            .get(cx::MEMBERSHIP_HEALTHY)
            .set(count(Usability::Healthy));
        cells
            .get(cx::MEMBERSHIP_DEGRADED)
            .set(count(Usability::Degraded));
        cells
            .get(cx::MEMBERSHIP_EXCLUDED)
            .set(count(Usability::Excluded));
        let heaviest = self.set.members.iter().map(|m| m.weight).max();
        cells
            .get(cx::MAX_HOST_WEIGHT)
            .set(heaviest.unwrap_or(0).into());
    }
}

/// The host set of `cluster`'s `members`: each one's reported verdict with what the
/// config declares, or its initial flags when none came yet.
fn host_set(
    cluster: &config::Cluster,
    members: &Members,
    reported: &HashMap<Address, HealthFlags>,
) -> Arc<HostSet> {
    let checked = cluster.health_check.is_some();
    let flags: Arc<[HealthFlags]> = members
        .iter()
        .map(|m| {
            let declared = HealthFlags::declared(&m.declared);
            let mut flags = match reported.get(&m.address) {
                Some(flags) => flags.union(declared),
                None => initial_flags(m, checked),
            };
            // The health service marks an endpoint pending until its first check (how
            // it knows a round is done); Envoy excludes pending endpoints only with
            // `ignore_new_hosts_until_first_hc`, so here it is just failed.
            flags.remove(HealthFlags::PENDING_ACTIVE_HC);
            flags
        })
        .collect();
    Arc::new(HostSet::build(
        Members::clone(members),
        flags,
        &cluster.balancing,
    ))
}

/// Every cluster's host set, and the health service.
pub(super) struct Hosts {
    service: HealthService,
    /// Verdicts from the health service.
    pub(super) events: flume::Receiver<HealthEvent>,
    books: HashMap<String, Book>,
    /// Cluster names in config order (`/clusters`).
    order: Vec<String>,
}

impl Hosts {
    /// Starts the health service (its threads wait idle until a cluster needs them).
    pub(super) fn start() -> Result<Hosts, String> {
        let (tx, events) = flume::unbounded();
        let service =
            HealthService::start(tx).map_err(|e| format!("starting the health checker: {e}"))?;
        Ok(Hosts {
            service,
            events,
            books: HashMap::new(),
            order: Vec::new(),
        })
    }

    /// Where workers report failures for the outlier detector.
    pub(super) fn reporter(&self) -> Reporter {
        self.service.reporter()
    }

    /// Takes `config`'s clusters, with the members DNS found (`discovered`); returns
    /// the names of clusters whose first round of checks is still to come.
    pub(super) fn apply(
        &mut self,
        config: &Config,
        stats: &StatsHandles,
        discovered: &Discovered,
        store: &mut StatsStore,
    ) -> Vec<String> {
        let mut books = HashMap::with_capacity(config.clusters.len());
        let mut pending = Vec::new();
        for cluster in &config.clusters {
            let members = match &cluster.endpoints {
                Endpoints::Static(endpoints) => match stats.static_members.get(&cluster.name) {
                    Some(members) => Members::clone(members),
                    None => crate::upstream::static_members(endpoints, |_, _| None),
                },
                Endpoints::Dns(_) => discovered.get(&cluster.name).cloned().unwrap_or_default(),
            };
            // The health service keeps an endpoint's state while its cluster stays
            // checked (or unchecked), whatever else changed; so do the books. A check
            // that appears starts every endpoint over.
            let kept = self
                .books
                .remove(&cluster.name)
                .filter(|old| old.cluster.health_check.is_some() == cluster.health_check.is_some());
            let (mut reported, warmed) = match kept {
                Some(old) => (old.reported, old.warmed),
                None => (HashMap::new(), cluster.health_check.is_none()),
            };
            reported.retain(|address, _| members.iter().any(|m| m.address == *address));
            if !warmed && !members.is_empty() {
                pending.push(cluster.name.clone());
            }
            let cells = stats.clusters.get(&cluster.name).map(control_cells);
            let book = Book::new(cluster, members, (reported, warmed), cells);
            books.insert(cluster.name.clone(), book);
        }
        self.books = books;
        self.order = config.clusters.iter().map(|c| c.name.clone()).collect();
        self.watch(store);
        pending
    }

    /// Tells the health service what to watch now.
    fn watch(&self, store: &mut StatsStore) {
        let watched = self
            .order
            .iter()
            .filter_map(|name| self.books.get(name))
            .filter(|b| b.cluster.health_check.is_some() || b.cluster.outlier_detection.is_some())
            .map(|b| Watched {
                check: b.cluster.health_check.clone(),
                outlier: b.cluster.outlier_detection.clone(),
                stats: Some(
                    store
                        .health(&b.cluster.name, &crate::health::stats::DEFS)
                        .for_worker(0),
                ),
                tls: b.check_tls.clone(),
                server_name: b.cluster.tls.as_ref().and_then(|t| t.sni.clone()),
                check_ports: unique(&b.members).map(|m| m.check_port).collect(),
                // One per address: verdicts are by address, and two members at one
                // address (two names resolving to one IP) are one endpoint to check.
                ..Watched::new(
                    b.cluster.name.clone(),
                    unique(&b.members).cloned().collect(),
                )
            })
            .collect();
        self.service.watch(watched);
    }

    /// New members for `cluster` (DNS); returns its new host set.
    pub(super) fn set_members(
        &mut self,
        cluster: &str,
        members: Members,
        store: &mut StatsStore,
    ) -> Option<Arc<HostSet>> {
        let book = self.books.get_mut(cluster)?;
        // An endpoint that leaves and comes back starts over (its verdict is stale).
        book.reported
            .retain(|address, _| members.iter().any(|m| m.address == *address));
        book.members = members;
        book.rebuild();
        let set = Arc::clone(&book.set);
        self.watch(store);
        Some(set)
    }

    /// Takes the health service's verdict; returns the cluster's new host set when it
    /// changes what the workers balance over.
    pub(super) fn take(&mut self, event: HealthEvent) -> Option<(String, Arc<HostSet>, Instant)> {
        let HealthEvent::Flags {
            cluster,
            flags,
            at,
            first_round_done,
        } = event;
        let book = self.books.get_mut(&cluster)?;
        book.warmed |= first_round_done;
        let before = Arc::clone(&book.set.flags);
        for (address, flags) in flags {
            book.reported.insert(address, flags);
        }
        book.rebuild();
        (book.set.flags != before).then(|| (cluster, Arc::clone(&book.set), at))
    }

    /// Whether every cluster in `pending` finished its first round of checks.
    pub(super) fn warmed(&self, pending: &[String]) -> bool {
        pending
            .iter()
            .all(|name| self.books.get(name).is_none_or(|b| b.warmed))
    }

    /// Blocks until the clusters in `pending` finished their first round of checks, or
    /// the timeout (at start, before any worker exists).
    pub(super) fn wait_first_round(&mut self, pending: &[String]) {
        let deadline = Instant::now() + FIRST_CHECK_TIMEOUT;
        while !self.warmed(pending) {
            match self.events.recv_deadline(deadline) {
                Ok(event) => {
                    self.take(event);
                }
                Err(_) => break,
            }
        }
        self.warn_unwarmed(pending);
    }

    /// Logs the clusters of `pending` still waiting for their first checks.
    pub(super) fn warn_unwarmed(&self, pending: &[String]) {
        for name in pending {
            if self.books.get(name).is_some_and(|b| !b.warmed) {
                tracing::warn!(
                    cluster = name.as_str(),
                    "health checks did not finish a round within {FIRST_CHECK_TIMEOUT:?}; unchecked endpoints count as unhealthy until checked"
                );
            }
        }
    }

    /// Every cluster's host set, for a snapshot.
    pub(super) fn sets(&self) -> HostSets {
        Arc::new(
            self.books
                .iter()
                .map(|(name, book)| (name.clone(), Arc::clone(&book.set)))
                .collect(),
        )
    }

    /// Every cluster as `/clusters` shows it, in config order.
    pub(super) fn view(&self) -> Vec<ClusterView> {
        self.order
            .iter()
            .filter_map(|name| {
                let book = self.books.get(name)?;
                Some(ClusterView {
                    name: name.clone(),
                    set: Arc::clone(&book.set),
                    outlier_detection: book.cluster.outlier_detection.is_some(),
                    thresholds: book.cluster.circuit_breakers.thresholds.clone(),
                })
            })
            .collect()
    }
}

/// `members` without the repeats of an address already listed.
fn unique(members: &Members) -> impl Iterator<Item = &crate::upstream::Member> {
    members
        .iter()
        .enumerate()
        .filter(|(i, m)| !members[..*i].iter().any(|o| o.address == m.address))
        .map(|(_, m)| m)
}
