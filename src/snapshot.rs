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
    auth::{
        consumers::ConsumerTable,
        runtime::{Providers, WorkerKeys},
    },
    config::{self, Config, Endpoints},
    filter::authn::ApiKeyRuntime,
    filter::Chain,
    http1,
    limit::OpenConnections,
    local_reply::LocalReplies,
    router::{auth::AuthContext, HostRouter, RouteDefaults},
    stats::{names, Histogram, Scope, StatsStore, WorkerHistogram, WorkerScope},
    upstream::{
        static_members, ClusterSnapshot, ClusterStats, HostSet, HostSets, Members, PoolRegistry,
    },
};

/// The stats scopes of one listener, shared by all workers (each writes its own cells).
#[derive(Debug, Clone)]
pub struct ListenerScopes {
    /// `listener.<name>.`
    pub listener: Arc<Scope>,
    /// `http.<name>.`
    pub http: Arc<Scope>,
    /// `listener.<name>.http.<name>.`: the responses of this listener's connection
    /// manager.
    pub listener_http: Arc<Scope>,
    /// `listener.<name>.ssl.`: handshakes by cipher and curve (TLS listeners).
    pub listener_tls: Option<Arc<Scope>>,
    /// `http.<name>.jwt_authn.`, when the listener authenticates (one extra cell slot:
    /// the control thread counts key fetches).
    pub jwt_authn: Option<Arc<Scope>>,
    /// `http.<name>.rbac.`, and the shadow rules' own scope when they have a stat
    /// prefix, when the listener authorizes.
    pub rbac: Option<(Arc<Scope>, Option<Arc<Scope>>)>,
    /// `http.<name>.rate_limit.<limit>.`, by limit name.
    pub rate_limits: HashMap<String, Arc<Scope>>,
    /// `<stat_prefix>.http_local_rate_limit.`, by Envoy stat prefix.
    pub local_rate_limits: HashMap<String, Arc<Scope>>,
    /// The scope counting connections its `connection_rate` refused.
    pub connection_rate: Option<Arc<Scope>>,
    /// The listener's connections, for its `connection_limit`.
    pub open: Arc<OpenConnections>,
    /// `http.<name>.downstream_rq_time`.
    pub rq_time: Arc<Histogram>,
    /// `http1.`: the HTTP/1 codec's, one scope for every listener (Envoy's root).
    pub http1: Arc<Scope>,
    /// `listener.<name>.downstream_cx_length_ms` and `http.<name>.downstream_cx_length_ms`.
    pub cx_length: [Arc<Histogram>; 2],
    /// Opted-in route and virtual-cluster scopes (`vhost.<vh>.route.<prefix>.`,
    /// `vhost.<vh>.vcluster.<name>.`), by prefix.
    pub route_stats: HashMap<String, crate::stats::route::RouteScopes>,
}

impl ListenerScopes {
    /// Finds or creates the scopes of `listener` (`listener.<prefix>.` and
    /// `http.<prefix>.`, which listeners with the same prefixes share).
    pub fn register(store: &mut StatsStore, listener: &crate::config::Listener) -> Self {
        let (l, h) = (
            listener.listener_stats_prefix(),
            listener.http_stats_prefix(),
        );
        let routes = || {
            listener
                .routes
                .iter()
                .chain(listener.virtual_hosts.iter().flat_map(|v| &v.routes))
        };
        let authenticates = listener.auth.is_some() || routes().any(|r| r.auth.is_some());
        let authorizes =
            listener.authorization.is_some() || routes().any(|r| r.authorization.is_some());
        // Envoy's `rules_stat_prefix` and `shadow_rules_stat_prefix` (the listener's
        // policy's; a route's own policy counts under them too).
        let limits = routes().filter_map(|r| r.rate_limit.as_ref());
        let mut rate_limits = HashMap::new();
        let mut local_rate_limits = HashMap::new();
        for policy in limits {
            for limit in &policy.limits {
                rate_limits.entry(limit.name.clone()).or_insert_with(|| {
                    let name = limit_stat_name(&limit.name);
                    store.scope(
                        &format!("http.{h}.rate_limit.{name}."),
                        &names::rate_limit::DEFS,
                    )
                });
            }
            if let Some(envoy) = &policy.envoy {
                local_rate_limits
                    .entry(envoy.stat_prefix.clone())
                    .or_insert_with(|| {
                        store.scope(
                            &format!("{}.http_local_rate_limit.", envoy.stat_prefix),
                            &names::local_rate_limit::DEFS,
                        )
                    });
            }
        }
        let connection_rate = listener.connection_rate.as_ref().map(|rate| {
            let prefix = match &rate.envoy_stat_prefix {
                Some(stat_prefix) => format!("local_rate_limit.{stat_prefix}."),
                None => format!("listener.{l}.connection_rate."),
            };
            store.scope(&prefix, &names::connection_rate::DEFS)
        });
        let route_stats = register_route_stats(store, listener);
        let policy = listener.authorization.as_ref();
        let rules_prefix = policy.map_or("", |p| p.stat_prefix.as_str());
        let shadow_prefix = policy.map_or("", |p| p.shadow_stat_prefix.as_str());
        ListenerScopes {
            listener: store.scope(&format!("listener.{l}."), &names::listener::DEFS),
            http: store.scope(&format!("http.{h}."), &names::http::DEFS),
            listener_http: store.scope(
                &format!("listener.{l}.http.{h}."),
                &names::listener_http::DEFS,
            ),
            listener_tls: listener.tls.is_some().then(|| {
                store.sparse_scope(&format!("listener.{l}.ssl."), &names::listener_tls::DEFS)
            }),
            jwt_authn: authenticates.then(|| {
                store.scope_with_extra(&format!("http.{h}.jwt_authn."), &names::jwt_authn::DEFS, 1)
            }),
            rbac: authorizes.then(|| {
                (
                    store.scope(&format!("http.{h}.rbac.{rules_prefix}"), &names::rbac::DEFS),
                    (shadow_prefix != rules_prefix).then(|| {
                        store.scope(
                            &format!("http.{h}.rbac.{shadow_prefix}"),
                            &names::rbac::DEFS,
                        )
                    }),
                )
            }),
            rate_limits,
            local_rate_limits,
            connection_rate,
            open: store.open_connections(&format!("listener.{}", listener.name)),
            rq_time: store.histogram(&format!("http.{h}.downstream_rq_time")),
            http1: store.scope("http1.", &names::http1::DEFS),
            cx_length: [
                store.histogram(&format!("listener.{l}.downstream_cx_length_ms")),
                store.histogram(&format!("http.{h}.downstream_cx_length_ms")),
            ],
            route_stats,
        }
    }
}

/// The scopes of a listener's routes with a `stat_prefix` and of its virtual hosts'
/// virtual clusters (a listener's own routes count under its name as the host's).
fn register_route_stats(
    store: &mut StatsStore,
    listener: &crate::config::Listener,
) -> HashMap<String, crate::stats::route::RouteScopes> {
    use crate::stats::route::{route_prefix, vcluster_prefix, RouteScopes};
    let mut scopes = HashMap::new();
    let own = std::iter::once((listener.name.as_str(), &listener.routes));
    let hosts = listener
        .virtual_hosts
        .iter()
        .map(|v| (v.name.as_str(), &v.routes));
    for (vhost, routes) in own.chain(hosts) {
        for prefix in routes
            .iter()
            .filter_map(|r| r.observe.stat_prefix.as_deref())
        {
            let prefix = route_prefix(vhost, prefix);
            if let std::collections::hash_map::Entry::Vacant(slot) = scopes.entry(prefix) {
                let registered = RouteScopes::register(store, slot.key());
                slot.insert(registered);
            }
        }
    }
    for host in &listener.virtual_hosts {
        let observe = &host.observe;
        let other = observe.other.then_some("other");
        let names = observe.virtual_clusters.iter().map(|v| v.name.as_str());
        for name in names.chain(other) {
            let prefix = vcluster_prefix(&host.name, name);
            if let std::collections::hash_map::Entry::Vacant(slot) = scopes.entry(prefix) {
                let registered = RouteScopes::register(store, slot.key());
                slot.insert(registered);
            }
        }
    }
    scopes
}

/// The stats scopes of every listener and cluster in a config, by name.
#[derive(Debug, Clone, Default)]
pub struct StatsHandles {
    /// By listener name.
    pub listeners: HashMap<String, ListenerScopes>,
    /// `cluster.<name>.`, by cluster name.
    pub clusters: HashMap<String, Arc<Scope>>,
    /// `cluster.<name>.upstream_rq_<code>`, and the response stats under
    /// `cluster.<name>.retry.`, `external.` and `internal.` (all sparse: a stat is shown
    /// once used, as Envoy creates it), by cluster name.
    pub cluster_codes: HashMap<String, [Arc<Scope>; 4]>,
    /// The circuit-breaker limits of each cluster (`[default, high]`), by cluster name.
    pub breakers: HashMap<String, [Arc<crate::upstream::breakers::PriorityLimits>; 2]>,
    /// `cluster.<name>.upstream_rq_time`, `upstream_cx_connect_ms`,
    /// `upstream_cx_length_ms`, `external.upstream_rq_time`,
    /// `internal.upstream_rq_time` and `upstream_rq_per_cx`, by cluster name.
    pub cluster_histograms: HashMap<String, [Arc<Histogram>; 6]>,
    /// The members of each static cluster, with their host stats.
    pub static_members: HashMap<String, Members>,
    /// Every listener's connections, for `max_connections`.
    pub open_global: Arc<OpenConnections>,
    /// `consumer.<name>.`, by consumer name as configured (the first
    /// [`MAX_CONSUMER_STATS`]).
    pub consumers: HashMap<String, Arc<Scope>>,
    /// The process-wide bucket tables of rate limits, by limit id (kept across reloads
    /// where a limit is unchanged: `ratelimit::runtime`).
    pub rate_pools: HashMap<String, Arc<crate::ratelimit::Pool>>,
    /// The number of workers.
    pub workers: usize,
    /// `tracing.zipkin.` / `tracing.opentelemetry.` of each tracer, by tracer index
    /// (`trace::export::register_stats`).
    pub tracers: Vec<Arc<Scope>>,
}

/// Consumers with stats of their own; the rest are counted nowhere per consumer, so a
/// file of a million keys cannot make a million scopes.
pub const MAX_CONSUMER_STATS: usize = 1000;

/// A rate limit's name in stat names: characters other than `[A-Za-z0-9_.-]` become
/// `_` (native names are already such; Envoy's descriptor names may not be).
pub fn limit_stat_name(name: &str) -> String {
    stat_segment(name, '.')
}

/// `name` with characters other than `[A-Za-z0-9_-]` and `also` as `_`.
fn stat_segment(name: &str, also: char) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == also {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Registers the scopes for every listener and cluster of `config`.
pub fn register_stats(store: &mut StatsStore, config: &Config) -> StatsHandles {
    // Envoy's `per_endpoint_stats`: which clusters' host scopes `/stats` shows.
    store.set_per_endpoint(
        config
            .clusters
            .iter()
            .filter(|c| c.per_endpoint_stats)
            .map(|c| c.name.clone()),
    );
    StatsHandles {
        rate_pools: store.rate_pools.register(config),
        workers: store.workers(),
        tracers: crate::trace::export::register_stats(store, config),
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
        breakers: config
            .clusters
            .iter()
            .map(|c| {
                let limits = crate::upstream::breakers::register(
                    store,
                    &c.name,
                    &c.circuit_breakers.thresholds,
                );
                (c.name.clone(), limits)
            })
            .collect(),
        cluster_codes: config
            .clusters
            .iter()
            .map(|c| {
                let prefix = format!("cluster.{}.", c.name);
                let codes = store.sparse_scope(&prefix, crate::stats::route::code_defs());
                let [retried, external, internal] =
                    ["retry.", "external.", "internal."].map(|category| {
                        store.sparse_scope(
                            &format!("{prefix}{category}"),
                            crate::stats::route::response_defs(),
                        )
                    });
                (c.name.clone(), [codes, retried, external, internal])
            })
            .collect(),
        cluster_histograms: config
            .clusters
            .iter()
            .map(|c| {
                let name = &c.name;
                // Made on first use in Envoy (its code stats'): shown once it has a value;
                // the connection histograms are in Envoy's cluster stats, always shown.
                let rq_time = store.sparse_histogram(&format!("cluster.{name}.upstream_rq_time"));
                let connect = store.histogram(&format!("cluster.{name}.upstream_cx_connect_ms"));
                let length = store.histogram(&format!("cluster.{name}.upstream_cx_length_ms"));
                let [external, internal] = ["external", "internal"].map(|origin| {
                    store.sparse_histogram(&format!("cluster.{name}.{origin}.upstream_rq_time"))
                });
                let per_cx = store.count_histogram(&format!("cluster.{name}.upstream_rq_per_cx"));
                (
                    name.clone(),
                    [rq_time, connect, length, external, internal, per_cx],
                )
            })
            .collect(),
        static_members: config
            .clusters
            .iter()
            .filter_map(|c| match &c.endpoints {
                Endpoints::Static(endpoints) => {
                    let members = static_members(endpoints, |address, hostname| {
                        Some(store.host(&c.name, &address.to_string(), hostname))
                    });
                    Some((c.name.clone(), members))
                }
                Endpoints::Dns(_) => None,
            })
            .collect(),
        open_global: store.open_connections(""),
        consumers: config
            .auth
            .api_keys
            .iter()
            .flat_map(|k| {
                let file = k.file.iter().flat_map(|(_, c)| c);
                k.consumers.iter().chain(file)
            })
            .take(MAX_CONSUMER_STATS)
            // Under the name as configured (`StatsStore::consumer`): `a.b` and `a_b`
            // are two consumers with two scopes.
            .map(|c| (c.name.clone(), store.consumer(&c.name)))
            .collect(),
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
    /// A connection's request cap and age limit (`max_requests_per_connection`,
    /// `max_connection_duration`); `None` for both on most listeners.
    pub connection_caps: Option<ConnectionCaps>,
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
    /// This worker's `listener.<name>.http.<name>.` cells.
    pub listener_http_stats: WorkerScope,
    /// This worker's `http1.` cells.
    pub http1_stats: WorkerScope,
    /// This worker's `listener.<name>.ssl.` cipher and curve cells (TLS listeners).
    pub tls_stats: Option<WorkerScope>,
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
    /// The listener's `connection_rate`, when it has one.
    connection_rate: Option<ConnectionRate>,
    /// Tracing, when the listener traces (boxed: most listeners do not).
    pub tracing: Option<Box<ListenerTrace>>,
    /// Set by the worker when a reload replaces or removes this listener: connections
    /// still on it finish their current request and then close (`connection: close`),
    /// so clients reconnect onto the new snapshot instead of keeping the old rules for
    /// the life of a keep-alive connection.
    retired: Cell<bool>,
}

/// A listener's tracing, with what its tracer's provider implies.
#[derive(Debug)]
pub struct ListenerTrace {
    /// Index of the tracer (`Config::tracers`) its spans go to.
    pub tracer: usize,
    pub config: config::observability::ListenerTracing,
    /// The formats written upstream (the request's own are written too).
    pub formats: crate::trace::context::Formats,
    /// Zipkin's shared spans: a server span keeps the incoming B3 span id.
    pub shared_spans: bool,
    /// New traces get 64-bit ids (Zipkin without `trace_id_128bit`).
    pub short_ids: bool,
    /// The tracer is Zipkin (an Envoy listener's default span name is then the host).
    pub zipkin: bool,
    /// The native decision for a request that carries no trace fields, as a bound on
    /// its new trace id's low 64 bits (`trace::sampling::native_bound`); `None` for
    /// Envoy's request-id decision and shares the bound cannot express.
    pub native_bound: Option<u128>,
    /// An unsampled new trace's own span id is sent nowhere: each attempt has its own
    /// span and W3C alone goes upstream (B3 would carry it as the parent). It is then
    /// drawn only if something asks for it (the access log).
    pub lazy_server_span: bool,
}

impl ListenerTrace {
    fn compile(config: &Config, listener: &config::Listener) -> Option<Box<ListenerTrace>> {
        use config::observability::{SpanKind, TraceProvider};
        let tracing = listener.tracing.as_ref()?;
        let tracer = config.tracers.get(tracing.tracer)?;
        let (shared_spans, short_ids) = match tracer.provider {
            TraceProvider::Zipkin {
                trace_id_128bit,
                shared_span_context,
            } => (
                shared_span_context && tracing.kind == SpanKind::Server,
                !trace_id_128bit,
            ),
            TraceProvider::Otlp => (false, false),
        };
        let p = tracing.propagation;
        Some(Box::new(ListenerTrace {
            tracer: tracing.tracer,
            config: tracing.clone(),
            formats: crate::trace::context::Formats::new(p.w3c, p.b3, p.b3_single),
            shared_spans,
            short_ids,
            zipkin: matches!(tracer.provider, TraceProvider::Zipkin { .. }),
            lazy_server_span: tracing.upstream_spans && !p.b3 && !p.b3_single,
            native_bound: if tracing.request_id_sampling {
                None
            } else {
                crate::trace::sampling::native_bound(&tracing.sampling)
            },
        }))
    }
}

/// A listener's limit on new connections, on this worker.
#[derive(Debug)]
struct ConnectionRate {
    shard: Rc<std::cell::RefCell<crate::ratelimit::Shard>>,
    rate: crate::ratelimit::Rate,
    stats: WorkerScope,
}

/// What a listener's rate limits are compiled from on one worker: the process's pools,
/// this worker's shards over them, and the listener's stats.
#[derive(Debug)]
struct ListenerLimits<'a> {
    scopes: &'a ListenerScopes,
    pools: &'a HashMap<String, Arc<crate::ratelimit::Pool>>,
    shards: &'a crate::ratelimit::runtime::Shards,
    worker: usize,
    workers: usize,
}

impl crate::router::stats::StatsSource for ListenerLimits<'_> {
    fn route(&self, vhost: &str, prefix: &str) -> Option<crate::stats::route::RouteCells> {
        let prefix = crate::stats::route::route_prefix(vhost, prefix);
        Some(
            self.scopes
                .route_stats
                .get(&prefix)?
                .for_worker(self.worker),
        )
    }

    fn vcluster(&self, vhost: &str, name: &str) -> Option<crate::stats::route::RouteCells> {
        let prefix = crate::stats::route::vcluster_prefix(vhost, name);
        Some(
            self.scopes
                .route_stats
                .get(&prefix)?
                .for_worker(self.worker),
        )
    }
}

impl crate::filter::ratelimit::LimitSource for ListenerLimits<'_> {
    fn shard(&self, id: &str) -> Option<Rc<std::cell::RefCell<crate::ratelimit::Shard>>> {
        let pool = self.pools.get(id)?;
        Some(self.shards.get(id, pool, self.workers))
    }

    fn limit_stats(&self, name: &str) -> Option<WorkerScope> {
        Some(self.scopes.rate_limits.get(name)?.for_worker(self.worker))
    }

    fn envoy_stats(&self, stat_prefix: &str) -> Option<WorkerScope> {
        Some(
            self.scopes
                .local_rate_limits
                .get(stat_prefix)?
                .for_worker(self.worker),
        )
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The listener's `connection_limit`.
    Listener,
    /// The process's `max_connections`.
    Global,
}

/// How much one client connection may be used: requests, and time since it opened.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionCaps {
    pub max_requests: Option<u64>,
    pub max_duration: Option<Duration>,
}

impl ConnectionCaps {
    fn of(listener: &config::Listener) -> Option<Self> {
        let caps = ConnectionCaps {
            max_requests: listener.max_requests_per_connection,
            max_duration: listener.max_connection_duration,
        };
        (caps.max_requests.is_some() || caps.max_duration.is_some()).then_some(caps)
    }
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

    /// Whether the listener's `connection_rate` lets one more connection in (counted
    /// when not).
    pub fn admits_connection(&self) -> bool {
        let Some(limit) = &self.connection_rate else {
            return true;
        };
        let now = crate::ratelimit::now_micros();
        let allowed = limit.shard.borrow_mut().decide(1, &limit.rate, now).allowed;
        if !allowed {
            limit.stats.get(names::connection_rate::RATE_LIMITED).inc();
        }
        allowed
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
        (ticket_keys, auth): (&crate::tls::ticket::TicketKeys, AuthParts<'_>),
        limits: ListenerLimits<'_>,
    ) -> Self {
        let h = &listener.http1;
        // Listeners loaded from Envoy configs answer with Envoy's texts.
        let replies = if listener.proxy.envoy.is_some() {
            LocalReplies::envoy(listener.proxy.server_header.as_deref())
        } else {
            LocalReplies::ringway()
        };
        let auth = AuthContext::build(
            listener,
            auth,
            (
                scopes.jwt_authn.as_ref().map(|s| s.for_worker(worker)),
                scopes.rbac.as_ref().map(|(s, shadow)| {
                    (
                        s.for_worker(worker),
                        shadow.as_ref().map(|s| s.for_worker(worker)),
                    )
                }),
            ),
            &replies,
        );
        let connection_rate = listener.connection_rate.as_ref().and_then(|rate| {
            let pool = limits.pools.get(&rate.id)?;
            Some(ConnectionRate {
                shard: limits.shards.get(&rate.id, pool, limits.workers),
                rate: crate::ratelimit::Rate::new(&rate.bucket),
                stats: scopes.connection_rate.as_ref()?.for_worker(worker),
            })
        });
        ListenerSnapshot {
            connection_rate,
            name: listener.name.as_str().into(),
            router: HostRouter::build(
                listener,
                RouteDefaults {
                    headers: [Some(&listener.headers), None],
                    cors: listener.cors.as_ref(),
                    max_request_body: listener.proxy.max_request_body,
                    upgrades: &listener.upgrades,
                    auth: auth.as_ref(),
                    limits: Some((&limits, &replies)),
                    stats: Some(&limits),
                    vhost: ("", None),
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
                underscores: h.underscores,
            },
            header_read_timeout: listener.header_read_timeout,
            idle_timeout: listener.idle_timeout,
            connection_caps: ConnectionCaps::of(listener),
            stream_idle_timeout: listener.stream_idle_timeout,
            request_timeout: listener.request_timeout,
            no_filters: Chain::default(),
            caps: [
                (listener.connection_limit, Arc::clone(&scopes.open)),
                global,
            ],
            replies,
            cx_stats: scopes.listener.for_worker(worker),
            http_stats: scopes.http.for_worker(worker),
            listener_http_stats: scopes.listener_http.for_worker(worker),
            http1_stats: scopes.http1.for_worker(worker),
            tls_stats: scopes.listener_tls.as_ref().map(|s| s.for_worker(worker)),
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
            tracing: None,
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

/// A worker's providers and API keys, for a listener's filters.
type AuthParts<'a> = (&'a Rc<Providers>, Option<&'a Rc<ApiKeyRuntime>>);

/// A worker's compiled config.
#[derive(Debug)]
pub struct Snapshot {
    /// Listeners by name.
    pub listeners: HashMap<String, Rc<ListenerSnapshot>>,
    /// Every cluster, shared by the listeners (DNS updates reach them here).
    pub clusters: Rc<[ClusterSnapshot]>,
    /// Every JWT provider, shared by the listeners (fetched keys reach them here).
    pub providers: Rc<Providers>,
}

impl Snapshot {
    /// Compiles `config` for worker `worker`, clusters with their host sets in `hosts`
    /// (a cluster missing there starts from its static endpoints, or none). Listeners without registered scopes (which the control thread always
    /// registers first) are skipped.
    pub fn build(
        config: &Config,
        (stats, hosts, keys): (&StatsHandles, &HostSets, &WorkerKeys),
        worker: usize,
        (pools, ticket_keys, shards): (
            &PoolRegistry,
            &crate::tls::ticket::TicketKeys,
            &crate::ratelimit::runtime::Shards,
        ),
        seed: u64,
    ) -> Self {
        let random = fastrand::Rng::with_seed(seed);
        let providers = Rc::new(Providers::build(
            &config.auth.jwt_providers,
            &keys.keys,
            keys.refetch.as_ref(),
        ));
        let api_keys = config.auth.api_keys.as_ref().map(|k| {
            Rc::new(ApiKeyRuntime {
                table: ConsumerTable::build(k, |name| {
                    stats.consumers.get(name).map(|s| s.for_worker(worker))
                }),
                from: k.from.clone(),
                forward: k.forward,
            })
        });
        let clusters: Rc<[ClusterSnapshot]> = config
            .clusters
            .iter()
            .filter_map(|c| {
                let scope = stats.clusters.get(&c.name)?;
                let [rq_time, connect, length, external_time, internal_time, per_cx] =
                    stats.cluster_histograms.get(&c.name)?;
                let [codes, retried, external, internal] = stats.cluster_codes.get(&c.name)?;
                let breakers = stats.breakers.get(&c.name)?.clone();
                let set = hosts.get(&c.name).cloned().unwrap_or_else(|| {
                    let members = match &c.endpoints {
                        Endpoints::Static(endpoints) => match stats.static_members.get(&c.name) {
                            Some(members) => Members::clone(members),
                            None => static_members(endpoints, |_, _| None),
                        },
                        Endpoints::Dns(_) => Members::default(),
                    };
                    Arc::new(HostSet::initial(members, c))
                });
                Some(ClusterSnapshot::build(
                    c,
                    set,
                    pools,
                    ClusterStats {
                        worker,
                        scope: scope.for_worker(worker),
                        codes: codes.for_worker(worker),
                        retried: retried.for_worker(worker),
                        origins: [external.for_worker(worker), internal.for_worker(worker)],
                        rq_time: rq_time.for_worker(worker),
                        origin_rq_time: [
                            external_time.for_worker(worker),
                            internal_time.for_worker(worker),
                        ],
                        connect_ms: connect.for_worker(worker),
                        conns: crate::upstream::ConnHistograms {
                            length: length.for_worker(worker),
                            rq_per_cx: per_cx.for_worker(worker),
                        },
                        breakers,
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
                    (ticket_keys, (&providers, api_keys.as_ref())),
                    ListenerLimits {
                        scopes,
                        pools: &stats.rate_pools,
                        shards,
                        worker,
                        workers: stats.workers,
                    },
                );
                let snapshot = ListenerSnapshot {
                    tracing: ListenerTrace::compile(config, l),
                    ..snapshot
                };
                Some((l.name.clone(), Rc::new(snapshot)))
            })
            .collect();
        shards.retain(&stats.rate_pools);
        Snapshot {
            listeners,
            clusters,
            providers,
        }
    }
}
