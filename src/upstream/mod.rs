//! Upstreams on one worker: clusters, their balancers, and keep-alive pools.
//!
//! Two steps, kept apart so that HTTP/2 can share a connection between requests behind
//! the same calls: [`ClusterSnapshot::pick`] names an endpoint, whose
//! [`pool::EndpointPool`] is the home of everything known per endpoint on this worker
//! (idle connections, open and in-flight counts); then [`pool::EndpointPool::checkout`]
//! gets a stream to it (an exclusive HTTP/1.1 [`pool::Lease`] today).
//!
//! What a pick chooses among is a [`HostSet`]: a cluster's members, their health flags
//! and the balancing plan built from both (priorities, localities, hash tables), built
//! off the workers — by the control thread, whenever discovery, an active health check
//! or the outlier detector changes something — and handed to every worker by message as
//! one `Arc`. A worker keeps only its own picking state ([`crate::balance::Picker`]:
//! round-robin scores, its random numbers) and reads in-flight counts from its own pools,
//! so nothing a pick reads is written by another core.
//!
//! Pools outlive config snapshots: they live in the worker's [`PoolRegistry`], keyed by
//! endpoint address, and a snapshot's [`ClusterSnapshot`] holds `Rc`s to the pools of its
//! endpoints. A reload that keeps an endpoint keeps its idle connections; a new host set
//! keeps each surviving endpoint's [`Host`] (its outlier streaks). Balancer state is per
//! snapshot and per worker.

pub mod breakers;
pub mod conn;
mod health_flags;
mod host_set;
pub mod outcome;
pub mod pool;

pub use health_flags::HealthFlags;
pub use host_set::{initial_flags, HostSet, HostSets};

use std::{cell::RefCell, collections::HashMap, rc::Rc, sync::Arc, time::Duration};

use crate::{
    balance::Picker,
    config::{self, Address, PoolSettings},
    stats::{Scope, WorkerHistogram, WorkerScope},
};
use pool::EndpointPool;

/// One endpoint of a cluster: written in the config, or found by discovery.
#[derive(Debug, Clone)]
pub struct Member {
    /// Where to connect.
    pub address: Address,
    /// Relative share of requests (at least 1).
    pub weight: u32,
    /// The name it was resolved from (DNS discovery): the Host an endpoint host rewrite
    /// sends, as Envoy's `auto_host_rewrite` does.
    pub hostname: Option<Arc<str>>,
    /// Its host stats (`/clusters`), attached by the control thread.
    pub stats: Option<Arc<Scope>>,
    /// Its priority (0 first): later priorities take traffic as earlier ones lose
    /// healthy endpoints.
    pub priority: u32,
    /// Where it runs, and that locality's weight (Envoy's `LocalityLbEndpoints`).
    pub locality: Arc<config::Locality>,
    pub locality_weight: Option<u32>,
    /// The health the config (or Envoy's EDS `health_status`) declares.
    pub declared: config::DeclaredHealth,
    /// The port active health checks go to, when not the endpoint's own.
    pub check_port: Option<u16>,
}

impl Member {
    /// A member at `address` with weight 1 and nothing else said.
    pub fn plain(address: Address) -> Member {
        Member {
            address,
            weight: 1,
            hostname: None,
            stats: None,
            priority: 0,
            locality: Arc::default(),
            locality_weight: None,
            declared: config::DeclaredHealth::Healthy,
            check_port: None,
        }
    }
}

/// Members are the same endpoint when everything but the stats handle is (it follows
/// from the rest).
impl PartialEq for Member {
    fn eq(&self, other: &Self) -> bool {
        (&self.address, self.weight, &self.hostname, self.priority)
            == (
                &other.address,
                other.weight,
                &other.hostname,
                other.priority,
            )
            && (
                &self.locality,
                self.locality_weight,
                &self.declared,
                self.check_port,
            ) == (
                &other.locality,
                other.locality_weight,
                &other.declared,
                other.check_port,
            )
    }
}

impl Eq for Member {}

/// A member as a worker's balancer holds it: its pool and this worker's cells.
#[derive(Debug)]
pub struct Host {
    /// The endpoint's pool (shared with other clusters listing the same endpoint).
    pub pool: Rc<EndpointPool>,
    /// This worker's cells of the host and of its cluster. An `Rc`, so that a connection
    /// can count itself in `cx_active` and `upstream_cx_active` until it closes without
    /// holding the host (and through it the pool that holds the connection).
    pub cells: Rc<HostCells>,
    /// This worker's consecutive failures of the host, for the outlier detector
    /// (`outcome`).
    pub streaks: std::cell::Cell<outcome::Streaks>,
    /// Its cluster's name when the cluster has active health checks: a response with
    /// `x-envoy-immediate-health-check-fail` then fails the host at once.
    pub checked_in: Option<Arc<str>>,
}

/// The cells a host's requests and connections count in, on one worker.
#[derive(Debug)]
pub struct HostCells {
    /// The host's stats (`/clusters`); none outside a running process.
    pub host: Option<WorkerScope>,
    /// Its cluster's `cluster.<name>.` cells.
    pub cluster: Rc<WorkerScope>,
    /// Its cluster's histograms that connections record when they close.
    pub conns: Rc<ConnHistograms>,
}

/// A cluster's histograms of its connections, on one worker: each records when a
/// connection closes.
#[derive(Debug, Clone)]
pub struct ConnHistograms {
    /// `upstream_cx_length_ms`: how long it was open.
    pub length: WorkerHistogram,
    /// `upstream_rq_per_cx`: the requests sent on it (a count histogram).
    pub rq_per_cx: WorkerHistogram,
}

impl Host {
    /// Adds one to host stat `index` (a `names::host` constant), when there are cells.
    #[inline]
    pub fn count(&self, index: usize) {
        if let Some(stats) = &self.cells.host {
            stats.get(index).inc();
        }
    }

    /// Takes one from gauge `index`.
    #[inline]
    pub fn uncount(&self, index: usize) {
        if let Some(stats) = &self.cells.host {
            stats.get(index).dec();
        }
    }
}

/// A cluster's endpoints as one value, shared by the workers' snapshots.
pub type Members = Arc<[Member]>;

/// The members of a static cluster: its endpoints as written, with their host stats
/// from `stats` (the control thread's store) when given.
pub fn static_members(
    endpoints: &[config::Endpoint],
    mut stats: impl FnMut(&Address, Option<&str>) -> Option<Arc<Scope>>,
) -> Members {
    endpoints
        .iter()
        .map(|e| Member {
            address: e.address.clone(),
            weight: e.weight,
            hostname: e.hostname.as_deref().map(Arc::from),
            stats: stats(&e.address, e.hostname.as_deref()),
            priority: e.priority,
            locality: Arc::new(e.locality.clone()),
            locality_weight: e.locality_weight,
            declared: e.health,
            check_port: e.health_check_port,
        })
        .collect()
}

/// `members` with their host stats from `stats` (a DNS update, on the control thread).
pub fn with_host_stats(
    members: &[Member],
    mut stats: impl FnMut(&Address, Option<&str>) -> Arc<Scope>,
) -> Members {
    members
        .iter()
        .map(|m| Member {
            stats: Some(stats(&m.address, m.hostname.as_deref())),
            ..m.clone()
        })
        .collect()
}

/// The current members of every DNS cluster, by cluster name: what a snapshot is built
/// with. A DNS cluster not in it has no members yet.
pub type Discovered = Arc<HashMap<String, Members>>;

/// What tells two pools apart: the address, and the name it was resolved from (which
/// changes the Host a request may carry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    address: Address,
    hostname: Option<Arc<str>>,
    /// The TLS cluster whose connections these are: a TLS connection is only reused by
    /// its own cluster (its certificate, server name and checks), and never mixed with
    /// plaintext ones to the same endpoint.
    tls: Option<Arc<str>>,
}

/// A worker's pools, by endpoint.
#[derive(Debug, Default)]
pub struct PoolRegistry {
    pools: RefCell<HashMap<PoolKey, Rc<EndpointPool>>>,
}

impl PoolRegistry {
    /// The pool of `member` (for TLS cluster `tls`, when it is one), created on first
    /// use.
    pub fn get(&self, member: &Member, tls: Option<&Arc<str>>) -> Rc<EndpointPool> {
        self.pool(&member.address, member.hostname.as_ref(), tls)
    }

    /// The pool of `address` for server name `name` (a cluster with `auto_sni`: its TLS
    /// connections are reused only for requests to the same name), created on first use.
    pub fn get_named(
        &self,
        address: &Address,
        name: &Arc<str>,
        tls: Option<&Arc<str>>,
    ) -> Rc<EndpointPool> {
        self.pool(address, Some(name), tls)
    }

    fn pool(
        &self,
        address: &Address,
        hostname: Option<&Arc<str>>,
        tls: Option<&Arc<str>>,
    ) -> Rc<EndpointPool> {
        let key = PoolKey {
            address: address.clone(),
            hostname: hostname.cloned(),
            tls: tls.cloned(),
        };
        Rc::clone(
            self.pools
                .borrow_mut()
                .entry(key)
                .or_insert_with(|| EndpointPool::new(address.clone(), hostname.cloned())),
        )
    }

    /// Closes expired idle connections, and those above each pool's cap that were not
    /// needed since the previous sweep, of every pool; forgets the pools of endpoints no
    /// snapshot lists and no request uses any more (closing their idle connections: an
    /// endpoint a reload or a DNS update removed drains this way). Returns how many
    /// connections it closed.
    pub fn sweep(&self, now: std::time::Instant) -> usize {
        let mut closed = 0;
        self.pools.borrow_mut().retain(|_, pool| {
            closed += pool.sweep(now);
            if Rc::strong_count(pool) > 1 {
                return true;
            }
            closed += pool.idle();
            false
        });
        closed
    }

    /// Pools held now (tests and stats).
    pub fn len(&self) -> usize {
        self.pools.borrow().len()
    }

    /// Whether no pool is held.
    pub fn is_empty(&self) -> bool {
        self.pools.borrow().is_empty()
    }
}

/// The endpoints of a cluster on one worker, with this worker's picking state: replaced
/// as a whole when a new host set arrives.
#[derive(Debug)]
struct Balanced {
    /// One per member of `set`, in its order.
    hosts: Vec<Rc<Host>>,
    set: Arc<HostSet>,
    picker: Picker,
}

impl Balanced {
    /// The hosts of `set`, reusing those of `previous` whose endpoint is unchanged (their
    /// streaks; a host whose outlier ejection began or ended starts a new streak).
    fn new(
        set: Arc<HostSet>,
        previous: Option<&Balanced>,
        (registry, tls, checked_in): (&PoolRegistry, Option<&Arc<str>>, Option<&Arc<str>>),
        (seed, worker, cluster, conns): (u64, usize, &Rc<WorkerScope>, &Rc<ConnHistograms>),
    ) -> Self {
        let hosts = set
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let kept = previous.and_then(|p| {
                    let at = p.set.members.iter().position(|o| o == m)?;
                    let ejected = |s: &HostSet, i: usize| {
                        s.flags[i].contains(HealthFlags::FAILED_OUTLIER_CHECK)
                    };
                    if ejected(&p.set, at) != ejected(&set, i) {
                        p.hosts[at].streaks.take();
                    }
                    Some(Rc::clone(&p.hosts[at]))
                });
                kept.unwrap_or_else(|| {
                    let host = m
                        .stats
                        .as_ref()
                        .filter(|s| worker < s.workers())
                        .map(|s| s.for_worker(worker));
                    Rc::new(Host {
                        pool: registry.get(m, tls),
                        cells: Rc::new(HostCells {
                            host,
                            cluster: Rc::clone(cluster),
                            conns: Rc::clone(conns),
                        }),
                        streaks: Default::default(),
                        checked_in: checked_in.cloned(),
                    })
                })
            })
            .collect();
        Balanced {
            picker: Picker::new(&set.plan, seed),
            hosts,
            set,
        }
    }
}

/// A worker's stat handles of one cluster.
#[derive(Debug, Clone)]
pub struct ClusterStats {
    /// The worker's index (for its cells of each host's stats).
    pub worker: usize,
    /// `cluster.<name>.` cells.
    pub scope: WorkerScope,
    /// `cluster.<name>.upstream_rq_<code>` cells (`stats::route::code_defs`).
    pub codes: WorkerScope,
    /// `cluster.<name>.retry.` cells (`stats::route::response_defs`).
    pub retried: WorkerScope,
    /// `cluster.<name>.external.` and `internal.` cells (`stats::route::response_defs`).
    pub origins: [WorkerScope; 2],
    /// `cluster.<name>.upstream_rq_time`.
    pub rq_time: WorkerHistogram,
    /// `cluster.<name>.external.upstream_rq_time` and `internal.upstream_rq_time`.
    pub origin_rq_time: [WorkerHistogram; 2],
    /// `cluster.<name>.upstream_cx_connect_ms`.
    pub connect_ms: WorkerHistogram,
    /// `cluster.<name>.upstream_cx_length_ms` and `upstream_rq_per_cx`.
    pub conns: ConnHistograms,
    /// The circuit-breaker limits, `[default, high]`.
    pub breakers: [Arc<breakers::PriorityLimits>; 2],
}

/// One cluster, compiled for one worker.
#[derive(Debug)]
pub struct ClusterSnapshot {
    /// The cluster's name (an `Arc`: outlier reports carry it off the worker).
    pub name: Arc<str>,
    members: RefCell<Balanced>,
    /// The picker's seed (per worker), kept for host-set updates.
    seed: u64,
    /// The worker's index (its host cells).
    worker: usize,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Pool limits.
    pub pool: PoolSettings,
    /// This worker's `cluster.<name>.` cells (an `Rc`: connections count themselves in
    /// `upstream_cx_active` until they close).
    pub stats: Rc<WorkerScope>,
    /// This worker's `cluster.<name>.upstream_rq_<code>` cells.
    codes: WorkerScope,
    /// This worker's `cluster.<name>.retry.` cells: the responses a retry replaced.
    retried: WorkerScope,
    /// This worker's `cluster.<name>.external.` and `internal.` cells.
    origins: [WorkerScope; 2],
    /// This worker's `cluster.<name>.upstream_rq_time`.
    rq_time: WorkerHistogram,
    /// This worker's `cluster.<name>.external.upstream_rq_time` and
    /// `internal.upstream_rq_time`.
    origin_rq_time: [WorkerHistogram; 2],
    /// This worker's `cluster.<name>.upstream_cx_connect_ms`.
    pub connect_ms: WorkerHistogram,
    /// This worker's histograms of its connections, shared with its hosts.
    conns: Rc<ConnHistograms>,
    /// PROXY protocol version sent first on every connection (its connections are then
    /// not reused: each carries one client's address).
    pub proxy_protocol: Option<u8>,
    /// TLS to the endpoints: this worker's client configuration (or why it could not be
    /// built: then no connection is opened), and the pool scope it keys by.
    pub tls: Option<(Result<crate::tls::client::Connector, String>, Arc<str>)>,
    /// The server name is the request's host, with a pool per name (`auto_sni`).
    pub auto_sni: bool,
    /// What the outlier detector is told of each request's outcome; `None` without
    /// outlier detection (nothing is counted then).
    pub outlier: Option<outcome::OutlierPolicy>,
    /// The policy hashes requests (ring hash, Maglev): the route's hash rules apply.
    pub hashes: bool,
    /// The cluster's name when it has active health checks (its hosts carry it).
    checked_in: Option<Arc<str>>,
    /// This worker's side of the circuit breakers, `[default, high]`.
    pub breakers: [Rc<breakers::WorkerBreakers>; 2],
}

impl ClusterSnapshot {
    /// Compiles `cluster` with the host set `set` for a worker; `seed` (random per
    /// worker) staggers the balancers.
    pub fn build(
        cluster: &config::Cluster,
        set: Arc<HostSet>,
        registry: &PoolRegistry,
        stats: ClusterStats,
        seed: u64,
    ) -> Self {
        let cells = Rc::new(stats.scope);
        let conns = Rc::new(stats.conns);
        let tls = cluster.tls.as_ref().map(|tls| {
            let connector = crate::tls::client::Connector::new(tls).inspect_err(|e| {
                tracing::error!(cluster = cluster.name, "TLS: {e}; no connection is opened");
            });
            (connector, Arc::<str>::from(cluster.name.as_str()))
        });
        let name: Arc<str> = cluster.name.as_str().into();
        let checked_in = cluster.health_check.is_some().then(|| Arc::clone(&name));
        ClusterSnapshot {
            members: RefCell::new(Balanced::new(
                set,
                None,
                (registry, tls.as_ref().map(|t| &t.1), checked_in.as_ref()),
                (seed, stats.worker, &cells, &conns),
            )),
            name,
            checked_in,
            auto_sni: cluster.tls.as_ref().is_some_and(|t| t.auto_sni),
            outlier: cluster
                .outlier_detection
                .as_ref()
                .map(outcome::OutlierPolicy::new),
            hashes: cluster.balancing.policy.is_hashing(),
            tls,
            conns,
            seed,
            worker: stats.worker,
            connect_timeout: cluster.connect_timeout,
            pool: cluster.pool,
            breakers: stats.breakers.map(|limits| {
                Rc::new(breakers::WorkerBreakers::new(
                    limits,
                    stats.worker,
                    Rc::clone(&cells),
                ))
            }),
            stats: cells,
            codes: stats.codes,
            retried: stats.retried,
            origins: stats.origins,
            rq_time: stats.rq_time,
            origin_rq_time: stats.origin_rq_time,
            connect_ms: stats.connect_ms,
            proxy_protocol: cluster.proxy_protocol,
        }
    }

    /// Counts the upstream's answer to a request (`status`), or the answer the router
    /// made for it in the upstream's place (a connect failure's 503, a timeout's 504):
    /// `upstream_rq_completed`, the class and the code, and the same under `internal.`
    /// or `external.` (`internal`: the request carried `x-envoy-internal: true`), as
    /// Envoy's code stats charge a cluster (`chargeUpstreamCode`, `chargeUpstreamAbort`).
    #[inline]
    pub fn charge(&self, status: u16, internal: bool) {
        use crate::stats::names::cluster as cx;
        self.stats.get(cx::UPSTREAM_RQ_COMPLETED).inc();
        self.stats.get(cx::status_class(status)).inc();
        if let Some(code) = crate::stats::route::code_index(status) {
            self.codes.get(code).inc();
        }
        crate::stats::route::count_response(&self.origins[usize::from(internal)], status);
    }

    /// Records a request's `upstream_rq_time`, from routing to the end of its response,
    /// and the same under `internal.` or `external.` (Envoy's `chargeResponseTiming`;
    /// `internal`: the request carried `x-envoy-internal: true`).
    #[inline]
    pub fn record_rq_time(&self, elapsed: Duration, internal: bool) {
        let us = crate::stats::histogram::micros(elapsed);
        self.rq_time.record_micros(us);
        self.origin_rq_time[usize::from(internal)].record_micros(us);
    }

    /// Counts a connection to `host` as it is made, whether it then opens or not:
    /// `upstream_cx_total`, `upstream_cx_http1_total` and the endpoint's `cx_total`
    /// (Envoy's pool counts a client when it creates it).
    pub fn count_connect_start(&self, host: Option<&Host>) {
        use crate::stats::names::{cluster as cx, host as hx};
        self.stats.get(cx::UPSTREAM_CX_TOTAL).inc();
        self.stats.get(cx::UPSTREAM_CX_HTTP1_TOTAL).inc();
        if let Some(host) = host {
            host.count(hx::CX_TOTAL);
        }
    }

    /// Counts a connection to `host` that never opened (refused, timed out, its TLS
    /// failed or could not be set up): `upstream_cx_connect_fail` and the endpoint's
    /// `cx_connect_fail`, `upstream_rq_pending_failure_eject`, and
    /// `upstream_cx_destroy`, as Envoy's pool reports every
    /// connection it closes, opened or not (`onConnectionEvent`:
    /// `reportUpstreamCxDestroy` before the connect-failure count), so that
    /// `upstream_cx_total` less `upstream_cx_destroy` stays `upstream_cx_active`.
    /// `closer`: the side that ended it (`ConnectError::closer`; `Local` for a TLS
    /// setup that could not start).
    pub fn count_connect_failure(&self, host: Option<&Host>, closer: conn::Closer) {
        use crate::stats::names::{cluster as cx, host as hx};
        self.stats.get(cx::UPSTREAM_CX_CONNECT_FAIL).inc();
        // The request that waited for it fails with it (Envoy's pool purges its pending
        // requests on a connect failure).
        self.stats.get(cx::UPSTREAM_RQ_PENDING_FAILURE_EJECT).inc();
        conn::count_destroy(&self.stats, closer, false);
        if let Some(host) = host {
            host.count(hx::CX_CONNECT_FAIL);
        }
    }

    /// Counts a response the retry policy retried (it is not the request's answer):
    /// `retry.upstream_rq_completed`, `_<class>` and `_<code>`, as Envoy's router
    /// charges one under the `retry` prefix.
    pub fn charge_retried(&self, status: u16) {
        crate::stats::route::count_response(&self.retried, status);
    }

    /// Takes a new host set (discovery, health or an ejection changed it). Requests
    /// under way keep their endpoint; pools no longer listed drain
    /// (`PoolRegistry::sweep`).
    pub fn set_hosts(&self, set: Arc<HostSet>, registry: &PoolRegistry) {
        let next = Balanced::new(
            set,
            Some(&self.members.borrow()),
            (
                registry,
                self.tls.as_ref().map(|t| &t.1),
                self.checked_in.as_ref(),
            ),
            (self.seed, self.worker, &self.stats, &self.conns),
        );
        *self.members.borrow_mut() = next;
    }

    /// The endpoint for the next request, `hash` the request's hash when the policy
    /// hashes (`None`: a random one); `None` when no endpoint can be picked.
    #[inline]
    pub fn pick(&self, hash: Option<u64>) -> Option<Rc<Host>> {
        let members = &mut *self.members.borrow_mut();
        let hosts = &members.hosts;
        let index = members
            .picker
            .pick(&members.set.plan, hash, &|i| hosts[i].pool.in_flight())?;
        if members.picker.panicked() {
            self.stats
                .get(crate::stats::names::cluster::LB_HEALTHY_PANIC)
                .inc();
        }
        hosts.get(index).cloned()
    }

    /// The host set picks choose from now.
    pub fn host_set(&self) -> Arc<HostSet> {
        Arc::clone(&self.members.borrow().set)
    }

    /// How many endpoints the cluster has now.
    pub fn member_count(&self) -> usize {
        self.members.borrow().hosts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(address: &str, hostname: Option<&str>) -> Member {
        Member {
            hostname: hostname.map(Into::into),
            ..Member::plain(Address::Tcp(address.parse().unwrap()))
        }
    }

    #[test]
    fn pools_are_kept_while_listed_and_forgotten_once_no_cluster_lists_them() {
        let registry = PoolRegistry::default();
        let a = registry.get(&member("10.0.0.1:80", None), None);
        assert!(Rc::ptr_eq(
            &a,
            &registry.get(&member("10.0.0.1:80", None), None)
        ));
        // The same address resolved from a name is another pool: its Host differs.
        let named = registry.get(&member("10.0.0.1:80", Some("orders")), None);
        assert_eq!(named.host(), "orders");
        assert_eq!(a.host(), "10.0.0.1:80");
        assert_eq!(registry.len(), 2);
        drop(named);
        registry.sweep(std::time::Instant::now());
        assert_eq!(registry.len(), 1, "the unlisted pool is forgotten");
        drop(a);
        registry.sweep(std::time::Instant::now());
        assert!(registry.is_empty());
    }

    #[test]
    fn a_member_update_replaces_the_balanced_endpoints() {
        let registry = PoolRegistry::default();
        let cluster = config::Cluster {
            per_endpoint_stats: false,
            name: "c".into(),
            endpoints: config::Endpoints::Static(Vec::new()),
            connect_timeout: Duration::from_secs(1),
            pool: PoolSettings::default(),
            proxy_protocol: None,
            tls: None,
            balancing: Default::default(),
            health_check: None,
            outlier_detection: None,
            circuit_breakers: Default::default(),
        };
        let scope = Arc::new(crate::stats::Scope::new(
            "cluster.c.",
            &crate::stats::names::cluster::DEFS,
            1,
        ));
        let histogram = Arc::new(crate::stats::Histogram::new("h", 1));
        let stats = ClusterStats {
            worker: 0,
            scope: scope.for_worker(0),
            codes: Arc::new(crate::stats::Scope::new(
                "cluster.c.",
                crate::stats::route::code_defs(),
                1,
            ))
            .for_worker(0),
            retried: Arc::new(crate::stats::Scope::new(
                "cluster.c.retry.",
                crate::stats::route::response_defs(),
                1,
            ))
            .for_worker(0),
            origins: ["cluster.c.external.", "cluster.c.internal."].map(|prefix| {
                Arc::new(crate::stats::Scope::new(
                    prefix,
                    crate::stats::route::response_defs(),
                    1,
                ))
                .for_worker(0)
            }),
            rq_time: histogram.for_worker(0),
            origin_rq_time: [histogram.for_worker(0), histogram.for_worker(0)],
            connect_ms: histogram.for_worker(0),
            conns: ConnHistograms {
                length: histogram.for_worker(0),
                rq_per_cx: histogram.for_worker(0),
            },
            breakers: breakers::register(
                &mut crate::stats::StatsStore::new(1),
                "c",
                &Default::default(),
            ),
        };
        let snapshot = ClusterSnapshot::build(
            &cluster,
            Arc::new(HostSet::initial(Members::default(), &cluster)),
            &registry,
            stats,
            0,
        );
        assert!(snapshot.pick(None).is_none());
        let members: Members = [member("10.0.0.1:80", None), member("10.0.0.2:80", None)]
            .into_iter()
            .collect();
        snapshot.set_hosts(
            Arc::new(HostSet::initial(Members::clone(&members), &cluster)),
            &registry,
        );
        let picks: Vec<String> = (0..4)
            .map(|_| snapshot.pick(None).unwrap().pool.address_text().to_owned())
            .collect();
        assert_ne!(picks[0], picks[1], "round robin alternates: {picks:?}");
        assert_eq!(picks[0], picks[2]);
        assert_eq!(picks[1], picks[3]);
        assert_eq!(snapshot.member_count(), 2);

        // A host keeps its streaks across host sets, until its ejection starts.
        let first = snapshot.pick(None).unwrap();
        let host = |address: &str| {
            let set = snapshot.members.borrow();
            let at = set
                .set
                .members
                .iter()
                .position(|m| m.address.to_string() == address);
            Rc::clone(&set.hosts[at.unwrap()])
        };
        let a = host("10.0.0.1:80");
        let mut streaks = outcome::Streaks::default();
        let policy = outcome::OutlierPolicy::new(&config::OutlierDetection::default());
        policy.observe(&mut streaks, outcome::Outcome::Response(500));
        a.streaks.set(streaks);
        let flags = |a: HealthFlags| -> Arc<[HealthFlags]> { [a, HealthFlags::empty()].into() };
        let same = HostSet::build(
            Members::clone(&members),
            flags(HealthFlags::empty()),
            &cluster.balancing,
        );
        snapshot.set_hosts(Arc::new(same), &registry);
        assert!(Rc::ptr_eq(&a, &host("10.0.0.1:80")));
        assert_eq!(a.streaks.get(), streaks);
        let ejected = HostSet::build(
            Members::clone(&members),
            flags(HealthFlags::FAILED_OUTLIER_CHECK),
            &cluster.balancing,
        );
        snapshot.set_hosts(Arc::new(ejected), &registry);
        assert_eq!(a.streaks.get(), outcome::Streaks::default());
        // An ejected host is not picked.
        for _ in 0..4 {
            assert_eq!(
                snapshot.pick(None).unwrap().pool.address_text(),
                "10.0.0.2:80"
            );
        }
        drop(first);
        assert_eq!(snapshot.member_count(), 2);
    }
}
