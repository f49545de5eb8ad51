//! The control thread's side of JWT keys: the keys every provider has now (what a new
//! snapshot is built with), the fetcher thread that keeps remote ones fresh, and
//! whether the server may call itself ready.
//!
//! Inline and file keys are parsed here, once per config (a file's change triggers a
//! reload through the certificate watcher, which re-reads it). Remote keys come from
//! the fetcher ([`crate::auth::fetcher`]); an answer is taken only if it was fetched
//! for the provider's current spec (a reload that changed the URL drops the old one),
//! and a failed fetch changes nothing: the last good keys keep working. The fetch
//! counters (`http.<prefix>.jwt_authn.jwks_fetch_success` / `_failed`) are written
//! here, in the control thread's own cell slot of each listener that uses the provider.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::info;

use crate::auth::fetcher::{self, Fetched, Fetcher};
use crate::auth::jwt::Jwks;
use crate::auth::runtime::{self, WorkerKeys};
use crate::config::auth::{JwksSource, RemoteJwks, Requirement, RouteAuth};
use crate::config::Config;
use crate::snapshot::{control_cells, StatsHandles};
use crate::stats::names::jwt_authn as st;

/// Refetch requests queued at once (workers drop theirs when it is full).
const REFETCH_QUEUE: usize = 64;

/// The longest a start waits for the first fetches.
const FIRST_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub(super) struct JwtKeys {
    fetcher: Option<Fetcher>,
    fetched_tx: flume::Sender<Fetched>,
    /// Fetch outcomes.
    pub(super) fetched: flume::Receiver<Fetched>,
    refetch_tx: flume::Sender<String>,
    refetch_rx: flume::Receiver<String>,
    /// Keys from the config itself.
    local: HashMap<String, Arc<Jwks>>,
    /// Remote providers: the spec fetched, its keys once a fetch succeeded, and
    /// whether a fetch for this spec has completed at all.
    remote: HashMap<String, (RemoteJwks, Option<Arc<Jwks>>, bool)>,
    /// Per provider: the listeners' `jwt_authn.` scopes that use it, for the fetch
    /// counters.
    scopes: HashMap<String, Vec<Arc<crate::stats::Scope>>>,
}

impl JwtKeys {
    pub(super) fn new() -> Self {
        let (fetched_tx, fetched) = flume::unbounded();
        let (refetch_tx, refetch_rx) = flume::bounded(REFETCH_QUEUE);
        JwtKeys {
            fetcher: None,
            fetched_tx,
            fetched,
            refetch_tx,
            refetch_rx,
            local: HashMap::new(),
            remote: HashMap::new(),
            scopes: HashMap::new(),
        }
    }

    /// Keeps exactly the providers of `config` from now on.
    pub(super) fn watch(&mut self, config: &Config, stats: &StatsHandles) -> Result<(), String> {
        self.local = runtime::local_keys(&config.auth.jwt_providers);
        let mut remote = HashMap::new();
        for p in &config.auth.jwt_providers {
            if let JwksSource::Remote(spec) = &p.jwks {
                let (keys, tried) = match self.remote.remove(&p.name) {
                    Some((old, keys, tried)) if old == *spec => (keys, tried),
                    _ => (None, false),
                };
                remote.insert(p.name.clone(), (spec.clone(), keys, tried));
            }
        }
        self.remote = remote;
        self.scopes = provider_scopes(config, stats);
        let targets = fetcher::targets(config);
        if self.fetcher.is_none() && !targets.is_empty() {
            let started = Fetcher::start(self.fetched_tx.clone(), self.refetch_rx.clone())
                .map_err(|e| format!("starting the JWKS fetcher: {e}"))?;
            self.fetcher = Some(started);
        }
        if let Some(fetcher) = &self.fetcher {
            fetcher.watch(targets);
        }
        Ok(())
    }

    /// Waits (blocking: before the workers start) for the first fetch of every remote
    /// provider, each bounded by its timeout and retries, at most 10 s in all.
    pub(super) fn wait_first_fetch(&mut self, config: &Config) {
        let longest = config
            .auth
            .jwt_providers
            .iter()
            .filter_map(|p| match &p.jwks {
                JwksSource::Remote(r) => Some(r.timeout * (r.retries + 1)),
                _ => None,
            })
            .max();
        let Some(longest) = longest else {
            return;
        };
        let deadline = std::time::Instant::now()
            + (longest + std::time::Duration::from_millis(200)).min(FIRST_FETCH_TIMEOUT);
        let mut answered = std::collections::HashSet::new();
        while answered.len() < self.remote.len() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.fetched.recv_timeout(left) {
                Ok(fetched) => {
                    answered.insert(fetched.provider.clone());
                    self.take(fetched);
                }
                Err(_) => break,
            }
        }
    }

    /// What workers build their providers with.
    pub(super) fn worker_keys(&self) -> WorkerKeys {
        let mut keys = self.local.clone();
        for (name, (_, fetched, _)) in &self.remote {
            if let Some(k) = fetched {
                keys.insert(name.clone(), Arc::clone(k));
            }
        }
        WorkerKeys {
            keys: Arc::new(keys),
            refetch: (!self.remote.is_empty()).then(|| self.refetch_tx.clone()),
        }
    }

    /// Takes a fetch's outcome: the new keys to hand to the workers, if any.
    pub(super) fn take(&mut self, fetched: Fetched) -> Option<(String, Arc<Jwks>)> {
        let (spec, keys, tried) = self.remote.get_mut(&fetched.provider)?;
        if *spec != fetched.spec {
            return None;
        }
        *tried = true;
        let index = if fetched.result.is_ok() {
            st::JWKS_FETCH_SUCCESS
        } else {
            st::JWKS_FETCH_FAILED
        };
        for scope in self.scopes.get(&fetched.provider).into_iter().flatten() {
            control_cells(scope).get(index).inc();
        }
        let new = fetched.result.ok()?;
        if keys.is_none() {
            info!(provider = fetched.provider, "JWKS fetched");
        }
        *keys = Some(Arc::clone(&new));
        Some((fetched.provider, new))
    }

    /// Whether a provider that must have keys before the server is ready
    /// (`fast_listener: false`) has none yet (Envoy configs: has not finished its first
    /// fetch, whatever its outcome).
    pub(super) fn pending(&self) -> bool {
        self.remote.values().any(|(spec, keys, tried)| {
            !spec.fast_listener && keys.is_none() && !(spec.ready_after_failed_fetch && *tried)
        })
    }
}

/// Each provider's users: the `jwt_authn.` scope of every listener whose rules or
/// routes name it.
fn provider_scopes(
    config: &Config,
    stats: &StatsHandles,
) -> HashMap<String, Vec<Arc<crate::stats::Scope>>> {
    let mut out: HashMap<String, Vec<Arc<crate::stats::Scope>>> = HashMap::new();
    for listener in &config.listeners {
        let Some(scope) = stats
            .listeners
            .get(&listener.name)
            .and_then(|s| s.jwt_authn.as_ref())
        else {
            continue;
        };
        let mut names = Vec::new();
        for rule in listener.auth.iter().flat_map(|a| &a.rules) {
            if let Some(r) = &rule.requires {
                provider_names(r, &mut names);
            }
        }
        let routes = listener
            .routes
            .iter()
            .chain(listener.virtual_hosts.iter().flat_map(|h| &h.routes));
        for route in routes {
            if let Some(RouteAuth::Requires(r)) = &route.auth {
                provider_names(r, &mut names);
            }
        }
        names.sort();
        names.dedup();
        for name in names {
            let list = out.entry(name).or_default();
            if !list.iter().any(|s| Arc::ptr_eq(s, scope)) {
                list.push(Arc::clone(scope));
            }
        }
    }
    out
}

fn provider_names(requirement: &Requirement, out: &mut Vec<String>) {
    match requirement {
        Requirement::Provider { name, .. } => out.push(name.clone()),
        Requirement::Any(items) | Requirement::All(items) => {
            items.iter().for_each(|r| provider_names(r, out));
        }
        Requirement::ApiKey | Requirement::AllowMissing | Requirement::AllowMissingOrFailed => {}
    }
}
