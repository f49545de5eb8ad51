//! The registry of scopes, owned by the control thread.
//!
//! Scopes are created here (never by workers) and kept under their prefix, so a reload
//! that keeps a listener's name hands the new snapshot the same cells: counts survive.
//! Rendering is Envoy's plain `/stats` format: `name: value`, sorted by name.

use std::{collections::BTreeMap, sync::Arc};

use super::{histogram::Histogram, Kind, Scope, StatDef};

/// All scopes of the process, by prefix, and the process-wide connection counters.
#[derive(Debug)]
pub struct StatsStore {
    workers: usize,
    scopes: BTreeMap<Box<str>, Arc<Scope>>,
    open_connections: BTreeMap<Box<str>, Arc<crate::limit::OpenConnections>>,
    histograms: BTreeMap<Box<str>, Arc<Histogram>>,
    /// Per-host scopes, by cluster name and host address (`/clusters` only).
    hosts: BTreeMap<(String, String), Arc<Scope>>,
    /// The hostname of each host that has one (the endpoint's `hostname`, or the DNS
    /// name it was resolved from): Envoy's `envoy_endpoint_hostname` label.
    hostnames: BTreeMap<(String, String), String>,
    /// Health-check and outlier-detection scopes, by cluster name (one cell each).
    health: BTreeMap<String, Arc<Scope>>,
    /// Scopes rendered only where non-zero (a route's per-code counters), by prefix:
    /// apart from `scopes`, since they share their prefix with a regular scope.
    sparse: BTreeMap<Box<str>, Arc<Scope>>,
    /// Clusters whose endpoints' stats `/stats` shows (`per_endpoint_stats`), set at
    /// every registration.
    per_endpoint: std::collections::BTreeSet<String>,
    /// API consumers' usage scopes (`consumer.<name>.`), by the consumer's name as
    /// configured: apart from `scopes`, so `/usage` and Prometheus' labels get the name
    /// itself rather than split it out of stat names.
    consumers: BTreeMap<String, Arc<Scope>>,
    /// Rate limits' bucket tables, by limit id: like the connection counters, they outlive
    /// snapshots (`ratelimit::runtime`).
    pub rate_pools: crate::ratelimit::runtime::PoolTable,
    /// The clusters' circuit-breaker limits, kept across reloads.
    pub breaker_limits: crate::upstream::breakers::LimitRegistry,
}

impl StatsStore {
    /// A store for a process with `workers` workers.
    pub fn new(workers: usize) -> Self {
        StatsStore {
            workers,
            scopes: BTreeMap::new(),
            open_connections: BTreeMap::new(),
            histograms: BTreeMap::new(),
            hosts: BTreeMap::new(),
            hostnames: BTreeMap::new(),
            health: BTreeMap::new(),
            sparse: BTreeMap::new(),
            per_endpoint: Default::default(),
            consumers: BTreeMap::new(),
            rate_pools: Default::default(),
            breaker_limits: Default::default(),
        }
    }

    /// The sum over every listener scope of its `downstream_cx_active`: the connections
    /// open now (Envoy's `server.total_connections`).
    pub fn open_connection_total(&self) -> u64 {
        self.scopes
            .iter()
            .filter(|(prefix, scope)| {
                prefix.starts_with("listener.")
                    && std::ptr::eq(scope.defs(), &super::names::listener::DEFS[..])
            })
            .map(|(_, scope)| scope.sum(super::names::listener::DOWNSTREAM_CX_ACTIVE))
            .sum()
    }

    /// The number of workers whose cells each scope has.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The scope with this prefix, created on first use.
    pub fn scope(&mut self, prefix: &str, defs: &'static [StatDef]) -> Arc<Scope> {
        let workers = self.workers;
        Arc::clone(
            self.scopes
                .entry(prefix.into())
                .or_insert_with(|| Arc::new(Scope::new(prefix, defs, workers))),
        )
    }

    /// Like [`StatsStore::scope`], for a scope whose zero stats are not rendered.
    pub fn sparse_scope(&mut self, prefix: &str, defs: &'static [StatDef]) -> Arc<Scope> {
        let workers = self.workers;
        Arc::clone(
            self.sparse
                .entry(prefix.into())
                .or_insert_with(|| Arc::new(Scope::new_sparse(prefix, defs, workers))),
        )
    }

    /// The usage stats of API consumer `name` (`consumer.<name>.`, the name as
    /// configured: two names never share a scope), created on first use and kept across
    /// reloads, as scopes are.
    pub fn consumer(&mut self, name: &str) -> Arc<Scope> {
        let workers = self.workers;
        Arc::clone(self.consumers.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(Scope::new(
                super::names::consumer::prefix(name),
                &super::names::consumer::DEFS,
                workers,
            ))
        }))
    }

    /// Every consumer's usage scope with the consumer's name, sorted by name (`/usage`).
    pub fn consumers(&self) -> impl Iterator<Item = (&str, &Arc<Scope>)> {
        self.consumers
            .iter()
            .map(|(name, scope)| (name.as_str(), scope))
    }

    /// Sets the clusters whose endpoints' stats `/stats` shows (Envoy's
    /// `per_endpoint_stats`), replacing the previous config's.
    pub fn set_per_endpoint(&mut self, clusters: impl IntoIterator<Item = String>) {
        self.per_endpoint = clusters.into_iter().collect();
    }

    /// Whether `/stats` shows `cluster`'s endpoints (`per_endpoint_stats`).
    pub fn per_endpoint(&self, cluster: &str) -> bool {
        self.per_endpoint.contains(cluster)
    }

    /// The histogram with this full name, created on first use (kept across reloads,
    /// as scopes are).
    pub fn histogram(&mut self, name: &str) -> Arc<Histogram> {
        self.histogram_made(name, Histogram::new)
    }

    /// A histogram that `/stats` shows only once it holds a value, created on first use
    /// like [`Self::histogram`] (a name made either way keeps its first kind).
    pub fn sparse_histogram(&mut self, name: &str) -> Arc<Histogram> {
        self.histogram_made(name, Histogram::sparse)
    }

    /// A histogram of counts (Envoy's unitless histograms: `upstream_rq_per_cx`),
    /// created on first use like [`Self::histogram`].
    pub fn count_histogram(&mut self, name: &str) -> Arc<Histogram> {
        self.histogram_made(name, Histogram::counts)
    }

    fn histogram_made(&mut self, name: &str, make: fn(&str, usize) -> Histogram) -> Arc<Histogram> {
        let workers = self.workers;
        Arc::clone(
            self.histograms
                .entry(name.into())
                .or_insert_with(|| Arc::new(make(name, workers))),
        )
    }

    /// The host stats of `address` in `cluster`, created on first use (kept across
    /// reloads and DNS changes, as scopes are); `hostname` is the host's name as it is
    /// now (the latest registration's).
    pub fn host(&mut self, cluster: &str, address: &str, hostname: Option<&str>) -> Arc<Scope> {
        let workers = self.workers;
        let key = (cluster.to_owned(), address.to_owned());
        match hostname.filter(|h| !h.is_empty()) {
            Some(h) => {
                self.hostnames.insert(key, h.to_owned());
            }
            None => {
                self.hostnames.remove(&key);
            }
        }
        Arc::clone(
            self.hosts
                .entry((cluster.to_owned(), address.to_owned()))
                .or_insert_with(|| {
                    Arc::new(Scope::new(
                        format!("cluster.{cluster}.{address}."),
                        &super::names::host::DEFS,
                        workers,
                    ))
                }),
        )
    }

    /// The health-check and outlier-detection stats of `cluster` (under its
    /// `cluster.<name>.` prefix, beside the workers' scope), with one cell: the health
    /// thread writes them. Created on first use and kept across reloads.
    pub fn health(&mut self, cluster: &str, defs: &'static [StatDef]) -> Arc<Scope> {
        Arc::clone(
            self.health
                .entry(cluster.to_owned())
                .or_insert_with(|| Arc::new(Scope::new(format!("cluster.{cluster}."), defs, 1))),
        )
    }

    /// The open-connection counter under `name` (a listener's, or `""` for the
    /// process's), created on first use and kept across reloads (`limit`).
    pub fn open_connections(&mut self, name: &str) -> Arc<crate::limit::OpenConnections> {
        Arc::clone(self.open_connections.entry(name.into()).or_default())
    }

    /// Like [`StatsStore::scope`], with `extra` cell slots after the workers' (indices
    /// `workers..workers + extra`) for threads other than workers that count into the
    /// scope, each writing only its own slot (the access-log writer).
    pub fn scope_with_extra(
        &mut self,
        prefix: &str,
        defs: &'static [StatDef],
        extra: usize,
    ) -> Arc<Scope> {
        let slots = self.workers + extra;
        Arc::clone(
            self.scopes
                .entry(prefix.into())
                .or_insert_with(|| Arc::new(Scope::new(prefix, defs, slots))),
        )
    }

    /// The scopes and histograms as they are now, to read on another thread (the admin
    /// endpoint renders there, so `/ready` never waits behind a large scrape).
    pub fn view(&self) -> StoreView {
        StoreView {
            workers: self.workers,
            scopes: self
                .scopes
                .values()
                .chain(self.health.values())
                .chain(self.sparse.values())
                .chain(self.consumers.values())
                .cloned()
                .collect(),
            consumers: self.consumers.keys().cloned().collect(),
            histograms: self.histograms.values().cloned().collect(),
            endpoints: self
                .hosts
                .iter()
                .filter(|((cluster, _), _)| self.per_endpoint.contains(cluster))
                .map(|(key, scope)| Endpoint {
                    labels: EndpointLabels {
                        prefix: endpoint_prefix(&key.0, &key.1),
                        cluster: key.0.clone(),
                        address: key.1.clone(),
                        hostname: self.hostnames.get(key).cloned(),
                    },
                    scope: Arc::clone(scope),
                })
                .collect(),
        }
    }

    /// Every stat with its value, sorted by name (see [`StoreView::lines`]).
    pub fn lines(&self, extra: Vec<StatLine>) -> Vec<StatLine> {
        self.view().lines(extra)
    }
}

/// The store's scopes and histograms at one moment: `Arc`s to the same cells, so the
/// values read are current; `Send`, to be read off the control thread.
#[derive(Debug, Clone)]
pub struct StoreView {
    workers: usize,
    scopes: Vec<Arc<Scope>>,
    histograms: Vec<Arc<Histogram>>,
    /// The host scopes of clusters with `per_endpoint_stats`, under Envoy's names.
    endpoints: Vec<Endpoint>,
    /// The API consumers with usage stats, sorted (their scopes are in `scopes`).
    consumers: Vec<String>,
}

/// One endpoint's stats as `/stats` shows them: `cluster.<c>.endpoint.<address>.<stat>`
/// (the address with `:` as `_`, as Envoy's `sanitizeStatsName` writes it); Prometheus
/// gets `envoy_cluster_endpoint_<stat>{envoy_cluster_name, envoy_endpoint_address}`,
/// and `envoy_endpoint_hostname` when the host has a name.
#[derive(Debug, Clone)]
struct Endpoint {
    labels: EndpointLabels,
    scope: Arc<Scope>,
}

/// What names one endpoint's stats: their prefix in `/stats`, and the Prometheus labels
/// (cluster, address, hostname as they are, not sanitised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointLabels {
    pub prefix: String,
    pub cluster: String,
    pub address: String,
    pub hostname: Option<String>,
}

/// `cluster.<cluster>.endpoint.<address>.`, the address sanitised as Envoy's
/// `sanitizeStatsName` does (`:` as `_`).
pub fn endpoint_prefix(cluster: &str, address: &str) -> String {
    format!("cluster.{cluster}.endpoint.{}.", address.replace(':', "_"))
}

impl StoreView {
    /// Every stat with its value, sorted by name: each scope's values summed over its
    /// cells, plus per-worker lines (`<prefix>worker_<i>.<name>`) for stats marked
    /// `per_worker`, plus `extra` (the control thread's own figures).
    pub fn lines(&self, extra: Vec<StatLine>) -> Vec<StatLine> {
        let mut lines = extra;
        for scope in &self.scopes {
            for (index, def) in scope.defs().iter().enumerate() {
                let sum = scope.sum(index);
                if sum == 0 && scope.is_sparse() {
                    continue;
                }
                lines.push(StatLine {
                    name: format!("{}{}", scope.prefix(), def.name),
                    value: if def.any { u64::from(sum != 0) } else { sum },
                    kind: def.kind,
                });
                if def.per_worker {
                    for worker in 0..self.workers.min(scope.workers()) {
                        lines.push(StatLine {
                            name: format!("{}worker_{worker}.{}", scope.prefix(), def.name),
                            value: scope.value(worker, index),
                            kind: def.kind,
                        });
                    }
                }
            }
        }
        for endpoint in &self.endpoints {
            let scope = &endpoint.scope;
            for (index, def) in scope.defs().iter().enumerate() {
                lines.push(StatLine {
                    name: format!("{}{}", endpoint.labels.prefix, def.name),
                    value: scope.sum(index),
                    kind: def.kind,
                });
            }
        }
        lines.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        lines
    }

    /// The Prometheus labels of per-endpoint stats, for
    /// `render::prometheus_labelled`.
    pub fn endpoint_labels(&self) -> Vec<EndpointLabels> {
        self.endpoints.iter().map(|e| e.labels.clone()).collect()
    }

    /// The names of the API consumers with usage stats, sorted: Prometheus'
    /// `envoy_consumer_name` label (`render::Owners`).
    pub fn consumer_names(&self) -> &[String] {
        &self.consumers
    }

    /// Every histogram, merged over workers, sorted by name.
    pub fn histograms(&self) -> Vec<super::render::HistogramLine> {
        self.histograms
            .iter()
            .map(|h| (h, h.merged()))
            .filter(|(h, merged)| !h.is_sparse() || merged.count() > 0)
            .map(|(h, merged)| super::render::HistogramLine {
                name: h.name().to_owned(),
                merged,
            })
            .collect()
    }
}

/// One stat as the admin endpoint shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatLine {
    /// The full dotted name.
    pub name: String,
    /// Summed over workers (or one worker's, for a per-worker line).
    pub value: u64,
    /// Counter or gauge.
    pub kind: Kind,
}

impl StatLine {
    /// A control-thread figure.
    pub fn new(name: &str, value: u64, kind: Kind) -> Self {
        StatLine {
            name: name.to_owned(),
            value,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::names::listener;

    #[test]
    fn endpoint_stats_carry_envoys_labels_and_the_hostname_when_there_is_one() {
        let mut store = StatsStore::new(1);
        store.set_per_endpoint(["web".to_owned()]);
        let named = store.host("web", "10.0.0.1:80", Some("web-1.example"));
        named.for_worker(0).get(0).add(3);
        store.host("web", "10.0.0.2:80", None);
        let view = store.view();
        let labels = view.endpoint_labels();
        assert_eq!(labels.len(), 2);
        assert_eq!(labels[0].hostname.as_deref(), Some("web-1.example"));
        assert_eq!(labels[1].hostname, None);
        let mut out = String::new();
        let tags = crate::stats::tags::TagExtractors::envoy_defaults();
        let owners = super::super::render::Owners {
            endpoints: &labels,
            consumers: view.consumer_names(),
        };
        super::super::render::prometheus_labelled(
            &view.lines(Vec::new()),
            &[],
            &tags,
            owners,
            &mut out,
        );
        assert!(
            out.contains("{envoy_cluster_name=\"web\",envoy_endpoint_address=\"10.0.0.1:80\",envoy_endpoint_hostname=\"web-1.example\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("{envoy_cluster_name=\"web\",envoy_endpoint_address=\"10.0.0.2:80\"} 0"),
            "{out}"
        );
        // A later registration without a name (DNS moved on) drops it.
        store.host("web", "10.0.0.1:80", None);
        assert_eq!(store.view().endpoint_labels()[0].hostname, None);
    }

    #[test]
    fn consumers_keep_their_names_and_scopes_of_their_own() {
        use crate::stats::names::consumer;
        let mut store = StatsStore::new(2);
        let dotted = store.consumer("a.b");
        let underscored = store.consumer("a_b");
        assert!(!Arc::ptr_eq(&dotted, &underscored));
        assert!(Arc::ptr_eq(&dotted, &store.consumer("a.b")));
        dotted.for_worker(0).get(consumer::RQ_TOTAL).add(2);
        underscored.for_worker(1).get(consumer::RQ_TOTAL).inc();
        let view = store.view();
        assert_eq!(view.consumer_names(), ["a.b", "a_b"]);
        let lines = view.lines(Vec::new());
        let value = |name: &str| lines.iter().find(|l| l.name == name).map(|l| l.value);
        assert_eq!(value("consumer.a.b.rq_total"), Some(2));
        assert_eq!(value("consumer.a_b.rq_total"), Some(1));
        assert_eq!(value("consumer.a_b.tx_bytes"), Some(0));
        let names: Vec<&str> = store.consumers().map(|(name, _)| name).collect();
        assert_eq!(names, ["a.b", "a_b"]);
    }

    #[test]
    fn a_sparse_histogram_is_shown_once_it_holds_a_value() {
        let mut store = StatsStore::new(2);
        let plain = store.histogram("cluster.a.upstream_rq_time");
        let sparse = store.sparse_histogram("cluster.a.internal.upstream_rq_time");
        assert!(Arc::ptr_eq(
            &sparse,
            &store.sparse_histogram("cluster.a.internal.upstream_rq_time")
        ));
        let names = |store: &StatsStore| -> Vec<String> {
            store
                .view()
                .histograms()
                .into_iter()
                .map(|h| h.name)
                .collect()
        };
        assert_eq!(names(&store), ["cluster.a.upstream_rq_time"]);
        sparse
            .for_worker(1)
            .record(std::time::Duration::from_millis(3));
        assert_eq!(
            names(&store),
            [
                "cluster.a.internal.upstream_rq_time",
                "cluster.a.upstream_rq_time"
            ]
        );
        assert_eq!(plain.merged().count(), 0);
    }

    #[test]
    fn scopes_are_kept_by_prefix_and_rendered_sorted() {
        let mut store = StatsStore::new(2);
        let a = store.scope("listener.public.", &listener::DEFS);
        let b = store.scope("listener.public.", &listener::DEFS);
        assert!(Arc::ptr_eq(&a, &b));
        a.for_worker(1).get(listener::DOWNSTREAM_CX_TOTAL).add(3);
        a.for_worker(0).get(listener::DOWNSTREAM_CX_TOTAL).inc();
        let mut out = String::new();
        let live = StatLine::new("server.live", 1, crate::stats::Kind::Gauge);
        crate::stats::render::text(&store.lines(vec![live]), &mut out);
        assert!(
            out.contains("listener.public.downstream_cx_total: 4\n"),
            "{out}"
        );
        assert!(
            out.contains("listener.public.worker_1.downstream_cx_total: 3\n"),
            "{out}"
        );
        assert!(
            out.contains("listener.public.worker_0.downstream_cx_total: 1\n"),
            "{out}"
        );
        assert!(out.starts_with("listener."), "{out}");
        assert!(out.ends_with("server.live: 1\n"), "{out}");
    }
}
