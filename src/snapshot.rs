//! A worker's immutable view of the config, built by the worker itself.
//!
//! The control thread validates a config once and sends each worker the same
//! `Arc<Config>`; each worker then compiles its own [`Snapshot`] from it: its own route
//! tables, rendered replies and codec limits, reached through `Rc`, so nothing a request
//! touches is shared with another core and no request clones an `Arc`. Connections hold
//! an `Rc<ListenerSnapshot>` taken when they were accepted, so a later swap leaves
//! connections already open on the snapshot they started with.
//!
//! What must outlive a snapshot (stats cells now; pools, health and rate-limit shards
//! later) is created by the control thread under stable names and handed in.

use std::{cell::Cell, collections::HashMap, rc::Rc, sync::Arc, time::Duration};

use crate::{
    config::{self, Config, Endpoints},
    filter::Chain,
    http1,
    limit::OpenConnections,
    local_reply::LocalReplies,
    router::{HostRouter, RouteDefaults},
    stats::{names, Histogram, Scope, StatsStore, WorkerHistogram, WorkerScope},
    upstream::{static_members, ClusterSnapshot, ClusterStats, Discovered, Members, PoolRegistry},
};

/// The stats scopes of one listener, shared by all workers (each writes its own cells).
#[derive(Debug, Clone)]
pub struct ListenerScopes {
    /// `listener.<name>.`
    pub listener: Arc<Scope>,
    /// `http.<name>.`
    pub http: Arc<Scope>,
    /// The listener's connections, for its `connection_limit`.
    pub open: Arc<OpenConnections>,
    /// `http.<name>.downstream_rq_time`.
    pub rq_time: Arc<Histogram>,
    /// `listener.<name>.downstream_cx_length_ms` and `http.<name>.downstream_cx_length_ms`.
    pub cx_length: [Arc<Histogram>; 2],
}

impl ListenerScopes {
    /// Finds or creates the scopes of `listener` (`listener.<prefix>.` and
    /// `http.<prefix>.`, which listeners with the same prefixes share).
    pub fn register(store: &mut StatsStore, listener: &crate::config::Listener) -> Self {
        let (l, h) = (
            listener.listener_stats_prefix(),
            listener.http_stats_prefix(),
        );
        ListenerScopes {
            listener: store.scope(&format!("listener.{l}."), &names::listener::DEFS),
            http: store.scope(&format!("http.{h}."), &names::http::DEFS),
            open: store.open_connections(&format!("listener.{}", listener.name)),
            rq_time: store.histogram(&format!("http.{h}.downstream_rq_time")),
            cx_length: [
                store.histogram(&format!("listener.{l}.downstream_cx_length_ms")),
                store.histogram(&format!("http.{h}.downstream_cx_length_ms")),
            ],
        }
    }
}

/// The stats scopes of every listener and cluster in a config, by name.
#[derive(Debug, Clone, Default)]
pub struct StatsHandles {
    /// By listener name.
    pub listeners: HashMap<String, ListenerScopes>,
    /// `cluster.<name>.`, by cluster name.
    pub clusters: HashMap<String, Arc<Scope>>,
    /// `cluster.<name>.upstream_rq_time`, `upstream_cx_connect_ms` and
    /// `upstream_cx_length_ms`, by cluster name.
    pub cluster_histograms: HashMap<String, [Arc<Histogram>; 3]>,
    /// The members of each static cluster, with their host stats.
    pub static_members: HashMap<String, Members>,
    /// Every listener's connections, for `max_connections`.
    pub open_global: Arc<OpenConnections>,
}

/// Registers the scopes for every listener and cluster of `config`.
pub fn register_stats(store: &mut StatsStore, config: &Config) -> StatsHandles {
    StatsHandles {
        listeners: config
            .listeners
            .iter()
            .map(|l| (l.name.clone(), ListenerScopes::register(store, l)))
            .collect(),
        clusters: config
            .clusters
            .iter()
            .map(|c| {
                // One extra cell slot, after the workers': the control and resolver
                // threads' (membership).
                let prefix = format!("cluster.{}.", c.name);
                let scope = store.scope_with_extra(&prefix, &names::cluster::DEFS, 1);
                if let Endpoints::Static(endpoints) = &c.endpoints {
                    control_cells(&scope)
                        .get(names::cluster::MEMBERSHIP_TOTAL)
                        .set(endpoints.len() as u64);
                }
                (c.name.clone(), scope)
            })
            .collect(),
        cluster_histograms: config
            .clusters
            .iter()
            .map(|c| {
                let name = &c.name;
                let rq_time = store.histogram(&format!("cluster.{name}.upstream_rq_time"));
                let connect = store.histogram(&format!("cluster.{name}.upstream_cx_connect_ms"));
                let length = store.histogram(&format!("cluster.{name}.upstream_cx_length_ms"));
                (name.clone(), [rq_time, connect, length])
            })
            .collect(),
        static_members: config
            .clusters
            .iter()
            .filter_map(|c| match &c.endpoints {
                Endpoints::Static(endpoints) => {
                    let members = static_members(endpoints, |address| {
                        Some(store.host(&c.name, &address.to_string()))
                    });
                    Some((c.name.clone(), members))
                }
                Endpoints::Dns(_) => None,
            })
            .collect(),
        open_global: store.open_connections(""),
    }
}

/// The cells of a cluster scope that the control and resolver threads write (the slot
/// after the workers').
pub fn control_cells(scope: &Arc<Scope>) -> WorkerScope {
    scope.for_worker(scope.workers() - 1)
}

/// Everything a connection on one listener needs, compiled for one worker.
#[derive(Debug)]
pub struct ListenerSnapshot {
    /// The listener's name.
    pub name: Box<str>,
    /// Its route tables, by authority.
    pub router: HostRouter,
    /// How paths are normalised before routing.
    pub path_normalization: config::PathNormalization,
    /// Codec limits.
    pub limits: http1::Limits,
    /// Time allowed from a request's first byte to the end of its head.
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Time any read or write of an exchange may take without completing.
    pub stream_idle_timeout: Duration,
    /// Time the whole request body may take, if limited.
    pub request_timeout: Option<Duration>,
    /// The chain of a forwarded request whose route has none to lend.
    pub no_filters: Chain,
    /// This listener's cap and count, and the process's (`limit`).
    caps: [(Option<u64>, Arc<OpenConnections>); 2],
    /// Local reply texts.
    pub replies: LocalReplies,
    /// This worker's `listener.<name>.` cells.
    pub cx_stats: WorkerScope,
    /// This worker's `http.<name>.` cells.
    pub http_stats: WorkerScope,
    /// This worker's `http.<name>.downstream_rq_time`.
    pub rq_time: WorkerHistogram,
    /// Envoy's health-check filter, when the listener has one.
    pub health_check: Option<crate::filter::health_check::HealthCheck>,
    /// This worker's `listener.<name>.downstream_cx_length_ms`.
    pub cx_length: WorkerHistogram,
    /// This worker's `http.<name>.downstream_cx_length_ms`.
    pub http_cx_length: WorkerHistogram,
    /// Forwarding policy.
    pub proxy: config::ProxySettings,
    /// PROXY protocol before the client's bytes, if the listener takes it.
    pub proxy_protocol: Option<config::ProxyProtocol>,
    /// TLS termination, when the listener has it: this worker's rustls configuration, or
    /// why it could not be built (then every connection is closed, never served in
    /// plaintext).
    pub tls: Option<Result<crate::tls::server::Acceptor, String>>,
    /// The snapshot's clusters, indexed by `router::Action::Cluster`.
    pub clusters: Rc<[ClusterSnapshot]>,
    /// Set by the worker when a reload replaces or removes this listener: connections
    /// still on it finish their current request and then close (`connection: close`),
    /// so clients reconnect onto the new snapshot instead of keeping the old rules for
    /// the life of a keep-alive connection.
    retired: Cell<bool>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The listener's `connection_limit`.
    Listener,
    /// The process's `max_connections`.
    Global,
}

impl ListenerSnapshot {
    /// Counts a new connection against the listener's and the process's caps (`limit`);
    /// release it with [`ListenerSnapshot::release`] on this same snapshot.
    pub fn admit(&self) -> Result<(), Overflow> {
        let [(listener_cap, listener), (global_cap, global)] = &self.caps;
        if let Some(cap) = global_cap {
            if !global.try_open(*cap) {
                return Err(Overflow::Global);
            }
        }
        if let Some(cap) = listener_cap {
            if !listener.try_open(*cap) {
                if global_cap.is_some() {
                    global.close();
                }
                return Err(Overflow::Listener);
            }
        }
        Ok(())
    }

    /// A connection [`ListenerSnapshot::admit`] counted closed.
    pub fn release(&self) {
        for (cap, open) in &self.caps {
            if cap.is_some() {
                open.close();
            }
        }
    }

    fn build(
        listener: &config::Listener,
        clusters: &[config::Cluster],
        compiled: &Rc<[ClusterSnapshot]>,
        (scopes, global): (&ListenerScopes, (Option<u64>, Arc<OpenConnections>)),
        worker: usize,
        ticket_keys: &crate::tls::ticket::TicketKeys,
    ) -> Self {
        let h = &listener.http1;
        ListenerSnapshot {
            name: listener.name.as_str().into(),
            router: HostRouter::build(
                listener,
                RouteDefaults {
                    headers: [Some(&listener.headers), None],
                    cors: listener.cors.as_ref(),
                    max_request_body: listener.proxy.max_request_body,
                    upgrades: &listener.upgrades,
                },
                |name| clusters.iter().position(|c| c.name == name),
            ),
            path_normalization: listener.path_normalization,
            limits: http1::Limits {
                max_request_line: h.max_request_line,
                max_head: h.max_request_head,
                max_headers: h.max_headers,
                max_chunk_extension: h.max_chunk_extension,
                max_trailer_section: h.max_trailer_section,
            },
            header_read_timeout: listener.header_read_timeout,
            idle_timeout: listener.idle_timeout,
            stream_idle_timeout: listener.stream_idle_timeout,
            request_timeout: listener.request_timeout,
            no_filters: Chain::default(),
            caps: [
                (listener.connection_limit, Arc::clone(&scopes.open)),
                global,
            ],
            // Listeners loaded from Envoy configs answer with Envoy's texts.
            replies: if listener.proxy.envoy.is_some() {
                LocalReplies::envoy(listener.proxy.server_header.as_deref())
            } else {
                LocalReplies::ringway()
            },
            cx_stats: scopes.listener.for_worker(worker),
            http_stats: scopes.http.for_worker(worker),
            rq_time: scopes.rq_time.for_worker(worker),
            health_check: listener.health_check.as_ref().map(|hc| {
                let server = listener.proxy.server_header.as_deref();
                crate::filter::health_check::HealthCheck::new(hc, server)
            }),
            cx_length: scopes.cx_length[0].for_worker(worker),
            http_cx_length: scopes.cx_length[1].for_worker(worker),
            proxy: listener.proxy.clone(),
            proxy_protocol: listener.proxy_protocol.clone(),
            tls: listener.tls.as_ref().map(|tls| {
                crate::tls::server::Acceptor::new(tls, ticket_keys).inspect_err(|e| {
                    tracing::error!(
                        listener = listener.name,
                        "TLS: {e}; closing its connections"
                    );
                })
            }),
            clusters: Rc::clone(compiled),
            retired: Cell::new(false),
        }
    }

    /// Marks this snapshot as replaced (see `retired`).
    pub fn retire(&self) {
        self.retired.set(true);
    }

    /// Whether a reload replaced or removed this listener.
    pub fn is_retired(&self) -> bool {
        self.retired.get()
    }
}

/// A worker's compiled config.
#[derive(Debug)]
pub struct Snapshot {
    /// Listeners by name.
    pub listeners: HashMap<String, Rc<ListenerSnapshot>>,
    /// Every cluster, shared by the listeners (DNS updates reach them here).
    pub clusters: Rc<[ClusterSnapshot]>,
}

impl Snapshot {
    /// Compiles `config` for worker `worker`, DNS clusters with the members in
    /// `discovered`. Listeners without registered scopes (which the control thread always
    /// registers first) are skipped.
    pub fn build(
        config: &Config,
        (stats, discovered): (&StatsHandles, &Discovered),
        worker: usize,
        (pools, ticket_keys): (&PoolRegistry, &crate::tls::ticket::TicketKeys),
        seed: u64,
    ) -> Self {
        let random = fastrand::Rng::with_seed(seed);
        let clusters: Rc<[ClusterSnapshot]> = config
            .clusters
            .iter()
            .filter_map(|c| {
                let scope = stats.clusters.get(&c.name)?;
                let [rq_time, connect, length] = stats.cluster_histograms.get(&c.name)?;
                let members = match &c.endpoints {
                    Endpoints::Static(endpoints) => match stats.static_members.get(&c.name) {
                        Some(members) => Members::clone(members),
                        None => static_members(endpoints, |_| None),
                    },
                    Endpoints::Dns(_) => discovered.get(&c.name).cloned().unwrap_or_default(),
                };
                Some(ClusterSnapshot::build(
                    c,
                    &members,
                    pools,
                    ClusterStats {
                        worker,
                        scope: scope.for_worker(worker),
                        rq_time: rq_time.for_worker(worker),
                        connect_ms: connect.for_worker(worker),
                        cx_length: length.for_worker(worker),
                    },
                    random.clone().u64(..),
                ))
            })
            .collect();
        let listeners = config
            .listeners
            .iter()
            .filter_map(|l| {
                let scopes = stats.listeners.get(&l.name)?;
                let global = (config.max_connections, Arc::clone(&stats.open_global));
                let snapshot = ListenerSnapshot::build(
                    l,
                    &config.clusters,
                    &clusters,
                    (scopes, global),
                    worker,
                    ticket_keys,
                );
                Some((l.name.clone(), Rc::new(snapshot)))
            })
            .collect();
        Snapshot {
            listeners,
            clusters,
        }
    }
}
