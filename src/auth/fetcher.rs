//! Fetching remote JWKS, off the workers.
//!
//! Design: one background thread of its own (not the control thread, not the admin
//! path) keeps every remote provider's keys fresh: it fetches each at start, again
//! every `cache_duration`, sooner after a failure (`failed_refetch`, doubling up to
//! `cache_duration`), and when a worker met a token whose `kid` the keys lack (at most
//! once per `unknown_kid_refetch` per provider). What it fetched goes to the control
//! thread, which hands it to every worker; a failed fetch changes nothing, so the last
//! good keys keep working. Fetches use the blocking client of [`crate::fetch`], each
//! bounded by the provider's `timeout`; they run one after another, so a provider whose
//! server hangs delays the others by at most its timeout and retries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::jwt::Jwks;
use crate::config::auth::{JwksSource, RemoteJwks};
use crate::config::Config;

/// The largest JWKS document accepted.
const MAX_JWKS: usize = 1 << 20;

/// One remote provider to keep fresh.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: String,
    pub spec: RemoteJwks,
    /// Where to connect, and with what TLS.
    pub via: Via,
}

/// How a fetch reaches the JWKS server (shared with the span exporter).
pub use crate::fetch::Via;

/// A fetch's outcome, for the control thread.
#[derive(Debug)]
pub struct Fetched {
    pub provider: String,
    /// The spec it was fetched for: a reload that changed it makes this stale.
    pub spec: RemoteJwks,
    pub result: Result<Arc<Jwks>, String>,
}

/// The remote providers of `config`, with how to reach each.
pub fn targets(config: &Config) -> Vec<Target> {
    config
        .auth
        .jwt_providers
        .iter()
        .filter_map(|p| {
            let JwksSource::Remote(spec) = &p.jwks else {
                return None;
            };
            let via = spec
                .cluster
                .as_deref()
                .and_then(|name| Via::cluster(config, name, "JWKS fetch"))
                .unwrap_or_default();
            Some(Target {
                provider: p.name.clone(),
                spec: spec.clone(),
                via,
            })
        })
        .collect()
}

/// The fetcher thread's handle: new target lists go to it here.
#[derive(Debug)]
pub struct Fetcher {
    targets: flume::Sender<Vec<Target>>,
}

impl Fetcher {
    /// Starts the thread: it reports to `fetched` and takes refetch requests (provider
    /// names) from `refetch`.
    pub fn start(
        fetched: flume::Sender<Fetched>,
        refetch: flume::Receiver<String>,
    ) -> std::io::Result<Self> {
        let (targets, targets_rx) = flume::unbounded();
        std::thread::Builder::new()
            .name("ringway-jwks".into())
            .spawn(move || run(&targets_rx, &refetch, &fetched))?;
        Ok(Fetcher { targets })
    }

    /// Keeps exactly `targets` fresh from now on.
    pub fn watch(&self, targets: Vec<Target>) {
        let _ = self.targets.send(targets);
    }
}

/// A target's schedule.
struct Scheduled {
    target: Target,
    next: Instant,
    /// The wait after the last failure (0 after a success).
    backoff: Duration,
    last_fetch: Option<Instant>,
}

fn run(
    targets_rx: &flume::Receiver<Vec<Target>>,
    refetch: &flume::Receiver<String>,
    fetched: &flume::Sender<Fetched>,
) {
    let mut schedule: HashMap<String, Scheduled> = HashMap::new();
    loop {
        let now = Instant::now();
        let due: Vec<String> = schedule
            .iter()
            .filter(|(_, s)| s.next <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            let Some(s) = schedule.get_mut(&name) else {
                continue;
            };
            let result = fetch(&s.target);
            let done = Instant::now();
            s.last_fetch = Some(done);
            match &result {
                Ok(_) => {
                    s.backoff = Duration::ZERO;
                    s.next = done + s.target.spec.cache_duration;
                }
                Err(e) => {
                    let spec = &s.target.spec;
                    s.backoff = if s.backoff.is_zero() {
                        spec.failed_refetch
                    } else {
                        (s.backoff * 2).min(spec.cache_duration)
                    };
                    s.next = done + s.backoff;
                    warn!(
                        provider = name,
                        "JWKS fetch failed (keeping the last keys): {e}"
                    );
                }
            }
            let report = Fetched {
                provider: name.clone(),
                spec: s.target.spec.clone(),
                result,
            };
            if fetched.send(report).is_err() {
                return;
            }
        }
        let wait = schedule
            .values()
            .map(|s| s.next.saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        let woke = flume::Selector::new()
            .recv(targets_rx, Wake::Targets)
            .recv(refetch, Wake::Refetch)
            .wait_timeout(wait);
        match woke {
            Ok(Wake::Targets(Ok(list))) => {
                let mut next = HashMap::new();
                for target in list {
                    let kept = schedule
                        .remove(&target.provider)
                        .filter(|s| s.target.spec == target.spec);
                    let entry = match kept {
                        Some(mut s) => {
                            s.target = target;
                            s
                        }
                        None => Scheduled {
                            target,
                            next: Instant::now(),
                            backoff: Duration::ZERO,
                            last_fetch: None,
                        },
                    };
                    next.insert(entry.target.provider.clone(), entry);
                }
                schedule = next;
            }
            Ok(Wake::Refetch(Ok(name))) => {
                if let Some(s) = schedule.get_mut(&name) {
                    let every = s.target.spec.unknown_kid_refetch;
                    let recent = s.last_fetch.is_some_and(|t| t.elapsed() < every);
                    if !every.is_zero() && !recent {
                        debug!(provider = name, "unknown kid: fetching the keys again");
                        s.next = Instant::now();
                    }
                }
            }
            // The control thread is gone.
            Ok(Wake::Targets(Err(_))) => return,
            Ok(Wake::Refetch(Err(_))) | Err(_) => {}
        }
    }
}

enum Wake {
    Targets(Result<Vec<Target>, flume::RecvError>),
    Refetch(Result<String, flume::RecvError>),
}

/// Fetches and parses one provider's keys, with its retries.
fn fetch(target: &Target) -> Result<Arc<Jwks>, String> {
    let mut last = String::new();
    for _ in 0..=target.spec.retries {
        match fetch_once(target) {
            Ok(keys) => return Ok(keys),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn fetch_once(target: &Target) -> Result<Arc<Jwks>, String> {
    let via = &target.via;
    let connect_to = via.connect_to();
    if via.cluster && connect_to.is_empty() {
        // Never the URL's own host instead: the cluster is where the keys must come from.
        return Err(format!(
            "{}: the cluster has no TCP address to fetch from",
            target.spec.url
        ));
    }
    let request = crate::fetch::Request {
        url: &target.spec.url,
        connect_to: (!connect_to.is_empty()).then_some(connect_to),
        tls: via.request_tls().0,
        server_name: via.request_tls().1,
        timeout: target.spec.timeout,
        max_body: MAX_JWKS,
        headers: Vec::new(),
    };
    let response = crate::fetch::get(&request).map_err(|e| e.to_string())?;
    if response.status != 200 {
        return Err(format!(
            "{}: status {} (200 expected)",
            target.spec.url, response.status
        ));
    }
    let text = std::str::from_utf8(&response.body)
        .map_err(|_| format!("{}: the JWKS is not UTF-8", target.spec.url))?;
    Jwks::parse(text)
        .map(Arc::new)
        .map_err(|e| format!("{}: {e}", target.spec.url))
}
