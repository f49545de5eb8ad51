//! What the control thread's tasks share: the server state `/ready` reports, the reload
//! counters, the stats store, and the admin handlers' queue to the control loop; and the
//! rendering of `/stats` from them.

use std::collections::HashMap;

use super::*;
use crate::stats::{tags::TagExtractors, StatLine};

/// The server's state, as `/ready` reports it (Envoy's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Workers are starting.
    PreInitializing,
    /// Serving, but waiting for what must come first (JWT keys of providers with
    /// `fast_listener: false`): `/ready` answers 503.
    Initializing,
    /// Serving.
    Live,
    /// Shutting down.
    Draining,
}

impl ServerState {
    /// The name `/ready` answers with.
    pub fn name(self) -> &'static str {
        match self {
            ServerState::PreInitializing => "PRE_INITIALIZING",
            ServerState::Initializing => "INITIALIZING",
            ServerState::Live => "LIVE",
            ServerState::Draining => "DRAINING",
        }
    }

    /// Envoy's `server.state` gauge value.
    pub(super) fn gauge(self) -> u64 {
        match self {
            ServerState::Live => 0,
            ServerState::Draining => 1,
            ServerState::PreInitializing => 2,
            ServerState::Initializing => 3,
        }
    }
}

/// What an admin request asks of the control loop.
#[derive(Debug)]
pub enum AdminRequest {
    /// Reload the config; the answer is the new version or the error text.
    Reload(flume::Sender<Result<u64, String>>),
    /// Stop accepting on every listener, keep serving.
    DrainListeners,
    /// Drain and exit 0.
    Quit,
    /// Reopen the access log's file (as SIGUSR1).
    ReopenLogs,
}

/// Reload counters (Envoy has no single equivalent; names are ringway's, under `server.`),
/// and Envoy's listener and cluster manager counters, which the first load and each
/// reload move ([`ReloadStats::count_changes`]).
#[derive(Debug, Default)]
pub(super) struct ReloadStats {
    pub(super) attempts: Cell<u64>,
    pub(super) successes: Cell<u64>,
    pub(super) failures: Cell<u64>,
    pub(super) version: Cell<u64>,
    /// `listener_manager.listener_added`, `_modified`, `_removed`,
    /// `listener_create_success` (a listener added or changed, once per worker, as
    /// Envoy counts a listener made on each worker) and `listener_stopped`.
    pub(super) listeners: [Cell<u64>; 5],
    /// `cluster_manager.cluster_added`, `_modified`, `_removed`.
    pub(super) clusters: [Cell<u64>; 3],
}

impl ReloadStats {
    /// Counts what changed from `old` (`None`: the first load, everything added) to
    /// `new`, matching listeners and clusters by name, as Envoy's managers do.
    pub(super) fn count_changes(
        &self,
        old: Option<&crate::config::Config>,
        new: &crate::config::Config,
        workers: usize,
    ) {
        let add = |cell: &Cell<u64>, n: usize| cell.set(cell.get() + n as u64);
        let listeners = diff(
            old.map_or(&[][..], |c| &c.listeners[..]),
            &new.listeners,
            |l| l.name.as_str(),
        );
        let clusters = diff(
            old.map_or(&[][..], |c| &c.clusters[..]),
            &new.clusters,
            |c| c.name.as_str(),
        );
        for (i, n) in listeners.into_iter().enumerate() {
            add(&self.listeners[i], n);
        }
        add(&self.listeners[3], (listeners[0] + listeners[1]) * workers);
        for (i, n) in clusters.into_iter().enumerate() {
            add(&self.clusters[i], n);
        }
    }

    /// `/drain_listeners` stopped `n` listeners.
    pub(super) fn count_stopped(&self, n: usize) {
        let cell = &self.listeners[4];
        cell.set(cell.get() + n as u64);
    }
}

/// How many of `new` are not in `old` (by name), are in both but differ, and how many
/// of `old` are gone.
/// By name through a map: a reload of thousands of clusters stays linear.
fn diff<T: PartialEq>(old: &[T], new: &[T], name: fn(&T) -> &str) -> [usize; 3] {
    fn by_name<T>(list: &[T], name: fn(&T) -> &str) -> HashMap<&str, &T> {
        list.iter().map(|item| (name(item), item)).collect()
    }
    let (old_names, new_names) = (by_name(old, name), by_name(new, name));
    let added = new_names
        .keys()
        .filter(|n| !old_names.contains_key(*n))
        .count();
    let modified = new_names
        .iter()
        .filter(|(n, item)| old_names.get(*n).is_some_and(|o| o != *item))
        .count();
    let removed = old_names
        .keys()
        .filter(|n| !new_names.contains_key(*n))
        .count();
    [added, modified, removed]
}

/// What the control thread's tasks share (all on the control thread).
#[derive(Debug)]
pub struct ControlState {
    pub(super) server_state: Cell<ServerState>,
    pub(super) stats: RefCell<StatsStore>,
    pub(super) started: Instant,
    pub(super) workers: usize,
    pub(super) driver: Driver,
    pub(super) reloads: ReloadStats,
    /// Admin handlers' requests to the control loop.
    pub(super) requests: flume::Sender<AdminRequest>,
    /// Set when a successor took the admin socket over: stop serving admin.
    pub(super) admin_stop: Rc<Stop>,
    /// The command line.
    pub(super) options: Options,
    /// `/healthcheck/fail` was called (and not undone by `/healthcheck/ok`).
    pub(super) health_failed: Cell<bool>,
    /// The same, for the workers' health-check filters (they only read it).
    pub(super) health_shared: Arc<std::sync::atomic::AtomicBool>,
    /// What each counter read at the last `/reset_counters`, subtracted when shown
    /// (the workers' cells have one writer each, so a reset does not write them).
    pub(super) counter_offsets: RefCell<HashMap<String, u64>>,
    /// When `/reset_counters` was last called (`/usage`'s `since`; `None`: never, the
    /// counts start with the process).
    pub(super) counters_reset: Cell<Option<std::time::SystemTime>>,
    /// Envoy's tag extractors (each regex compiled when a scrape first needs it).
    pub(super) tags: Arc<TagExtractors>,
    /// Listeners, clusters, ignored unknown fields (`--allow-unknown-static-fields`)
    /// and dropped items (`--accept-degraded`) of the config serving now.
    pub(super) config_counts: Cell<ConfigCounts>,
    /// The serving config's document and when it was loaded (RFC 3339), for
    /// `/config_dump`.
    pub(super) document: RefCell<(crate::config::Document, String)>,
    /// The serving config's certificates, for `/certs` and the expiry gauge.
    pub(super) certs: RefCell<Vec<crate::config::tls::CertContext>>,
    /// Every cluster's host set now, in config order (`/clusters`).
    pub(super) clusters: RefCell<Vec<super::hosts::ClusterView>>,
    /// The log level now (`/logging`).
    pub(super) log_level: RefCell<String>,
    /// Each listener's name and bound address (a configured port 0 as bound), for
    /// `/listeners`.
    pub(super) bound: RefCell<Vec<(String, crate::config::Address)>>,
    /// A JWT provider that must have keys before the server is ready has none yet.
    pub(super) keys_pending: Cell<bool>,
}

/// Envoy's `server.version` is its build's revision as a number; ringway's is its
/// version's, `major * 10,000 + minor * 100 + patch` (0.1.0: 100).
fn version_number() -> u64 {
    let part = |s: &str| s.parse::<u64>().unwrap_or(0);
    let mut parts = env!("CARGO_PKG_VERSION").split(['.', '-', '+']);
    let (major, minor, patch) = (
        parts.next().map_or(0, part),
        parts.next().map_or(0, part),
        parts.next().map_or(0, part),
    );
    major * 10_000 + minor * 100 + patch
}

/// The name and bound address of each listener socket group.
pub(super) fn bound_addresses(groups: &[Group]) -> Vec<(String, crate::config::Address)> {
    groups
        .iter()
        .map(|g| {
            let address = g
                .sockets
                .first()
                .and_then(|s| s.local_address().ok())
                .unwrap_or_else(|| g.address.clone());
            (g.name.clone(), address)
        })
        .collect()
}

impl ControlState {
    /// The state `/ready`, `/server_info` and `server.state` report: `DRAINING` while
    /// `/healthcheck/fail` holds, as in Envoy.
    pub(super) fn effective_state(&self) -> ServerState {
        match self.server_state.get() {
            ServerState::Live if self.health_failed.get() => ServerState::Draining,
            ServerState::Live if self.keys_pending.get() => ServerState::Initializing,
            state => state,
        }
    }

    /// The control thread's own figures (Envoy's `server.`, `listener_manager.` and
    /// `cluster_manager.` names, and ringway's reload counters), to go with the store's.
    pub(super) fn own_lines(&self) -> Vec<StatLine> {
        use crate::stats::Kind::{Counter, Gauge};
        let state = self.effective_state();
        let ConfigCounts {
            listeners,
            clusters,
            unknown_fields,
            degraded,
        } = self.config_counts.get();
        let started = u64::from(self.server_state.get() != ServerState::PreInitializing);
        let memory = crate::allocator::memory();
        let r = &self.reloads;
        vec![
            StatLine::new("server.concurrency", self.workers as u64, Gauge),
            StatLine::new("server.memory_allocated", memory.committed, Gauge),
            StatLine::new("server.memory_heap_size", memory.committed, Gauge),
            StatLine::new("server.memory_physical_size", memory.resident, Gauge),
            StatLine::new(
                "server.driver_io_uring",
                u64::from(matches!(self.driver, Driver::IoUring(_))),
                Gauge,
            ),
            StatLine::new("server.live", u64::from(state == ServerState::Live), Gauge),
            StatLine::new("server.state", state.gauge(), Gauge),
            StatLine::new("server.uptime", self.started.elapsed().as_secs(), Gauge),
            // Envoy reports INT32_MAX when no certificate is configured.
            StatLine::new(
                "server.days_until_first_cert_expiring",
                super::admin::days_until_first_cert_expiring(self).unwrap_or(i32::MAX as u64),
                Gauge,
            ),
            StatLine::new(
                "server.hot_restart_epoch",
                u64::from(self.options.restart_epoch),
                Gauge,
            ),
            StatLine::new("listener_manager.workers_started", started, Gauge),
            StatLine::new(
                "listener_manager.total_listeners_active",
                listeners as u64,
                Gauge,
            ),
            StatLine::new("cluster_manager.active_clusters", clusters as u64, Gauge),
            // Without xDS nothing dynamic is ever loaded; Envoy's gauge of its
            // `cds`/`lds` fields unknown to it stays 0 likewise.
            StatLine::new("server.dynamic_unknown_fields", 0, Counter),
            StatLine::new("server.version", version_number(), Gauge),
            StatLine::new(
                "listener_manager.listener_added",
                r.listeners[0].get(),
                Counter,
            ),
            StatLine::new(
                "listener_manager.listener_modified",
                r.listeners[1].get(),
                Counter,
            ),
            StatLine::new(
                "listener_manager.listener_removed",
                r.listeners[2].get(),
                Counter,
            ),
            StatLine::new(
                "listener_manager.listener_create_success",
                r.listeners[3].get(),
                Counter,
            ),
            StatLine::new(
                "listener_manager.listener_stopped",
                r.listeners[4].get(),
                Counter,
            ),
            StatLine::new(
                "cluster_manager.cluster_added",
                r.clusters[0].get(),
                Counter,
            ),
            StatLine::new(
                "cluster_manager.cluster_modified",
                r.clusters[1].get(),
                Counter,
            ),
            StatLine::new(
                "cluster_manager.cluster_removed",
                r.clusters[2].get(),
                Counter,
            ),
            StatLine::new("server.static_unknown_fields", unknown_fields, Counter),
            StatLine::new(
                "server.total_connections",
                self.stats.borrow().open_connection_total(),
                Gauge,
            ),
            StatLine::new("server.degraded_config_items", degraded, Gauge),
            // Envoy's counts of what cannot happen here, 0 as in an Envoy without it: a
            // release build has no debug assertions (a debug one panics on a failed
            // one), ringway has no ENVOY_BUG or deprecation notices, no stats sinks to
            // drop a flush of, no lookup tracking (Envoy's is off by default), and no
            // CDS (static clusters do not warm, update or merge).
            StatLine::new("server.debug_assertion_failures", 0, Counter),
            StatLine::new("server.envoy_bug_failures", 0, Counter),
            StatLine::new("server.envoy_notifications", 0, Counter),
            StatLine::new("server.dropped_stat_flushes", 0, Counter),
            StatLine::new("server.stats_recent_lookups", 0, Gauge),
            StatLine::new("cluster_manager.warming_clusters", 0, Gauge),
            StatLine::new("cluster_manager.cluster_updated", 0, Counter),
            StatLine::new("cluster_manager.cluster_updated_via_merge", 0, Counter),
            StatLine::new("cluster_manager.update_merge_cancelled", 0, Counter),
            StatLine::new("cluster_manager.update_out_of_merge_window", 0, Counter),
            StatLine::new("server.config_version", self.reloads.version.get(), Gauge),
            StatLine::new(
                "server.reload_attempts",
                self.reloads.attempts.get(),
                Counter,
            ),
            StatLine::new(
                "server.reload_failures",
                self.reloads.failures.get(),
                Counter,
            ),
            StatLine::new(
                "server.reload_successes",
                self.reloads.successes.get(),
                Counter,
            ),
        ]
    }

    /// `/reset_counters`: every counter reads 0 from now on.
    pub(super) fn reset_counters(&self) {
        let lines = self.stats.borrow().lines(self.own_lines());
        let mut offsets = self.counter_offsets.borrow_mut();
        self.counters_reset.set(Some(std::time::SystemTime::now()));
        offsets.clear();
        offsets.extend(
            lines
                .into_iter()
                .filter(|l| l.kind == crate::stats::Kind::Counter)
                .map(|l| (l.name, l.value)),
        );
    }
}

/// `config`'s document, loaded now: what `ControlState::document` holds.
pub(super) fn document(config: &crate::config::Config) -> (crate::config::Document, String) {
    let mut now = Vec::new();
    crate::access_log::timestamp::append_rfc3339_millis(std::time::SystemTime::now(), &mut now);
    (
        config.document.clone(),
        String::from_utf8(now).unwrap_or_default(),
    )
}

/// Counts of the config serving now, for the control thread's own stats.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ConfigCounts {
    pub listeners: usize,
    pub clusters: usize,
    pub unknown_fields: u64,
    pub degraded: u64,
}

/// What `ControlState::config_counts` holds for `config`.
pub(super) fn config_counts(config: &crate::config::Config) -> ConfigCounts {
    let (unknown_fields, degraded) = match config.format {
        crate::config::ConfigFormat::Envoy {
            unknown_fields,
            degraded,
        } => (unknown_fields, degraded),
        crate::config::ConfigFormat::Native => (0, 0),
    };
    ConfigCounts {
        listeners: config.listeners.len(),
        clusters: config.clusters.len(),
        unknown_fields,
        degraded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_matched_by_name() {
        let item = |name: &str, value: u32| (name.to_string(), value);
        let name: fn(&(String, u32)) -> &str = |i| &i.0;
        let old = [item("a", 1), item("b", 1), item("c", 1)];
        let new = [item("a", 1), item("b", 2), item("d", 1), item("e", 1)];
        // d, e added; b changed; c removed; a kept as it was.
        assert_eq!(diff(&old, &new, name), [2, 1, 1]);
        assert_eq!(diff(&[], &new, name), [4, 0, 0]);
        assert_eq!(diff(&new, &new, name), [0, 0, 0]);
    }

    #[test]
    fn the_version_number_is_the_packages() {
        let v: Vec<u64> = env!("CARGO_PKG_VERSION")
            .split(['.', '-', '+'])
            .take(3)
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(version_number(), v[0] * 10_000 + v[1] * 100 + v[2]);
    }
}
