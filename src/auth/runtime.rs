//! A worker's JWT providers: the keys each one has now, its cache of verified tokens,
//! and how it asks for fresh keys.
//!
//! Design: the keys are an `Arc<Jwks>` parsed once, off the request path (by the control
//! thread for inline and file keys, by the fetcher thread for remote ones), handed to
//! every worker by message, and swapped into this worker's slot between requests; a
//! request reads the slot without any lock. Each provider keeps its own cache of
//! verified tokens, bounded, cleared whenever its keys change (a token verified with a
//! key that is gone must be checked again). A token naming a `kid` the keys lack asks
//! the fetcher (a message on a bounded queue, never waited on) for fresh keys, at most
//! once per `unknown_kid_refetch` from this worker; the fetcher rate-limits again across
//! workers.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::jwt::{self, Checks, Jwks, JwtError, TokenCache, Verified};
use crate::config::auth::{JwksSource, JwtProvider};

/// The keys of every provider, by provider name, as the control thread last sent them.
pub type KeySets = Arc<HashMap<String, Arc<Jwks>>>;

/// Asks the fetcher for a provider's keys again (by name).
pub type RefetchQueue = flume::Sender<String>;

/// What a worker builds its providers with: the keys now, and where to ask for more.
#[derive(Debug, Clone, Default)]
pub struct WorkerKeys {
    pub keys: KeySets,
    pub refetch: Option<RefetchQueue>,
}

/// What verifying a token found, and whether the cache answered.
#[derive(Debug)]
pub struct Checked {
    pub result: Result<Rc<Verified>, JwtError>,
    pub cached: bool,
}

/// One provider on one worker.
#[derive(Debug)]
pub struct ProviderRuntime {
    /// The provider's settings.
    pub config: JwtProvider,
    /// Its checks, without audiences: a requirement may name its own, so the filter
    /// checks audiences per request on the verified token (`Checks::recheck`).
    checks: Checks,
    keys: RefCell<Option<Arc<Jwks>>>,
    cache: RefCell<TokenCache>,
    /// Remote keys: where to ask for a refetch, how often, and when this worker last did.
    refetch: Option<(RefetchQueue, Duration, Cell<Option<Instant>>)>,
}

impl ProviderRuntime {
    fn new(config: &JwtProvider, keys: Option<Arc<Jwks>>, refetch: Option<&RefetchQueue>) -> Self {
        let refetch = match (&config.jwks, refetch) {
            (JwksSource::Remote(remote), Some(queue)) if !remote.unknown_kid_refetch.is_zero() => {
                Some((queue.clone(), remote.unknown_kid_refetch, Cell::new(None)))
            }
            _ => None,
        };
        ProviderRuntime {
            checks: checks(config, Some(&[])),
            cache: RefCell::new(TokenCache::new(config.cache_size)),
            config: config.clone(),
            keys: RefCell::new(keys),
            refetch,
        }
    }

    /// Checks `token` at `now` (Unix seconds): from the cache when it has it, else by
    /// verifying it with the keys now (and caching it when valid).
    pub fn check(&self, token: &[u8], now: u64) -> Checked {
        if let Some(hit) = self.cache.borrow_mut().get(token, now) {
            return Checked {
                result: Ok(hit),
                cached: true,
            };
        }
        let keys = self.keys.borrow();
        let Some(keys) = keys.as_ref() else {
            return Checked {
                result: Err(JwtError::JwksFetchFail),
                cached: false,
            };
        };
        let result = match jwt::verify(token, keys, &self.checks, now) {
            Ok(verified) => {
                let verified = Rc::new(verified);
                if self.config.cache_size > 0 {
                    self.cache.borrow_mut().insert(token, Rc::clone(&verified));
                }
                Ok(verified)
            }
            Err(e) => {
                if e.is_unknown_kid() {
                    self.ask_for_keys();
                }
                Err(e)
            }
        };
        Checked {
            result,
            cached: false,
        }
    }

    /// New keys: tokens verified with the old ones are checked again.
    pub fn set_keys(&self, keys: Arc<Jwks>) {
        *self.keys.borrow_mut() = Some(keys);
        self.cache.borrow_mut().clear();
    }

    fn ask_for_keys(&self) {
        let Some((queue, every, last)) = &self.refetch else {
            return;
        };
        let now = Instant::now();
        if last.get().is_some_and(|t| now.duration_since(t) < *every) {
            return;
        }
        last.set(Some(now));
        // A full queue means a refetch is already asked for.
        let _ = queue.try_send(self.config.name.clone());
    }
}

/// The checks of a provider (`auth::jwt` knows nothing of the config); `audiences`
/// replaces the provider's when given (Envoy's `provider_and_audiences` requirement).
pub fn checks(provider: &JwtProvider, audiences: Option<&[String]>) -> Checks {
    Checks {
        issuer: provider.issuer.clone().filter(|i| !i.is_empty()),
        audiences: audiences.unwrap_or(&provider.audiences).to_vec(),
        clock_skew: provider.clock_skew.as_secs(),
        require_expiration: provider.require_expiration,
        max_lifetime: provider.max_lifetime,
        required_claims: provider.required_claims.clone(),
    }
}

/// Every provider of a config on one worker, by name.
#[derive(Debug, Default)]
pub struct Providers {
    by_name: HashMap<String, Rc<ProviderRuntime>>,
}

impl Providers {
    /// The config's providers with the keys the control thread sent (`keys`; a provider
    /// without keys there answers 401 until they come).
    pub fn build(
        providers: &[JwtProvider],
        keys: &HashMap<String, Arc<Jwks>>,
        refetch: Option<&RefetchQueue>,
    ) -> Self {
        Providers {
            by_name: providers
                .iter()
                .map(|p| {
                    let runtime = ProviderRuntime::new(p, keys.get(&p.name).cloned(), refetch);
                    (p.name.clone(), Rc::new(runtime))
                })
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Rc<ProviderRuntime>> {
        self.by_name.get(name)
    }

    /// Every provider, by name.
    pub fn all(&self) -> Vec<&Rc<ProviderRuntime>> {
        let mut all: Vec<_> = self.by_name.values().collect();
        all.sort_by(|a, b| a.config.name.cmp(&b.config.name));
        all
    }

    /// New keys for `provider` (a fetch, or a reload of its file).
    pub fn set_keys(&self, provider: &str, keys: Arc<Jwks>) {
        if let Some(p) = self.by_name.get(provider) {
            p.set_keys(keys);
        }
    }
}

/// The keys written in `providers`' config (inline, or read from a file at load),
/// parsed; remote providers are left to the fetcher. Called off the workers.
pub fn local_keys(providers: &[JwtProvider]) -> HashMap<String, Arc<Jwks>> {
    providers
        .iter()
        .filter_map(|p| {
            let text = match &p.jwks {
                JwksSource::Inline(text) | JwksSource::File { text, .. } => text,
                JwksSource::Remote(_) => return None,
            };
            match Jwks::parse(text) {
                Ok(keys) => Some((p.name.clone(), Arc::new(keys))),
                Err(e) => {
                    // Checked at load: only a bug gets here.
                    tracing::error!(provider = p.name, "JWKS: {e}");
                    None
                }
            }
        })
        .collect()
}
