//! Upstream health: active health checks and outlier detection, off the workers.
//!
//! Design: one "health" thread (`service.rs`) owns every watched cluster's state (its
//! hosts' flags, check counters and schedules, outlier streaks and ejections), so
//! nothing here is shared: the control thread tells it which clusters to watch
//! ([`HealthService::watch`]), workers report what they see on the request path
//! through a [`Reporter`] (a channel send, only after failures and the success that
//! ends a streak), and the probes run on a few prober threads (`probe.rs`) so that a
//! hanging endpoint delays only its own check. Whenever a cluster's flags change the
//! thread sends a [`HealthEvent`] with every member's flags; the control thread builds
//! the read-only host sets the workers balance over from it and sends them by message.
//! The decisions themselves are sans-IO state machines tested on plain values:
//! `checker.rs` (Envoy's active health checking) and `outlier.rs` (Envoy's outlier
//! detection, with how per-core observation differs from Envoy's shared counters);
//! Envoy's health flags and what they mean to the balancer (`upstream::HealthFlags`),
//! and what a worker reports (`upstream::outcome::Observed`), live in `upstream`, which
//! the workers share with this module: `health` imports `upstream`, never the reverse.
//!
//! Envoy's documents: arch_overview/upstream/health_checking, outlier, and the
//! HealthCheck and OutlierDetection protos; each file's note names the rules it keeps.

pub mod checker;
pub mod outlier;
pub mod probe;
mod service;
pub mod stats;

use std::sync::Arc;
use std::time::Instant;

use crate::config::Address;
use crate::config::{HealthCheck, HealthCheckKind, HttpCheck, OutlierDetection, TcpCheck};
use crate::stats::WorkerScope;
use crate::upstream::Members;

pub use crate::upstream::{outcome::Observed, HealthFlags};
pub use service::HealthService;

/// A cluster to keep an eye on.
#[derive(Debug, Clone)]
pub struct Watched {
    /// The cluster's name.
    pub name: String,
    /// Its endpoints now (their host stats feed no-traffic detection and outlier
    /// detection's success rate and failure percentage).
    pub members: Members,
    /// Its active health check, if any.
    pub check: Option<HealthCheck>,
    /// Its outlier detection, if any.
    pub outlier: Option<OutlierDetection>,
    /// A scope whose definitions are exactly [`stats::DEFS`] (prefix `cluster.<name>.`),
    /// written by the health thread only.
    pub stats: Option<WorkerScope>,
    /// The cluster's TLS configuration: checks of TCP endpoints use https with it.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The cluster's TLS server name (`sni`); without one, an endpoint's is the name it
    /// was resolved from, else its address (as the workers choose).
    pub server_name: Option<String>,
    /// Per member, in the same order: the port checks go to instead of the address's
    /// (Envoy's `health_check_config.port_value`). Empty or shorter: none.
    pub check_ports: Vec<Option<u16>>,
    /// Per member, in the same order: its declared health
    /// ([`HealthFlags::declared`]), included in the flags reported. Empty or shorter:
    /// healthy.
    pub declared: Vec<HealthFlags>,
}

impl Watched {
    /// A cluster with neither check nor outlier detection nor extras: fill in what
    /// applies with struct update syntax.
    pub fn new(name: impl Into<String>, members: Members) -> Watched {
        Watched {
            name: name.into(),
            members,
            check: None,
            outlier: None,
            stats: None,
            tls: None,
            server_name: None,
            check_ports: Vec::new(),
            declared: Vec::new(),
        }
    }
}

/// What the health thread tells the control thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// A cluster's flags changed (or it was just watched, or its first round just
    /// finished): every member's flags now, by address, in the members' order.
    /// `at`: when the earliest change it carries was detected (a worker's observation
    /// time for an ejection by consecutive errors). `first_round_done`: no member is
    /// waiting for its first active check (always true without a check).
    Flags {
        cluster: String,
        flags: Vec<(Address, HealthFlags)>,
        at: Instant,
        first_round_done: bool,
    },
}

/// What a worker saw on the request path, for outlier detection and immediate fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub cluster: Arc<str>,
    pub address: Address,
    /// The reporting worker's index (its streaks are summed with the others').
    pub worker: usize,
    pub what: Observed,
    pub at: Instant,
}

/// A worker's handle for reporting observations; never blocks.
#[derive(Debug, Clone)]
pub struct Reporter {
    inbox: flume::Sender<service::Message>,
}

impl Reporter {
    /// Hands `o` to the health thread (an unbounded channel: never blocks; dropped
    /// when the thread is gone).
    pub fn report(&self, o: Observation) {
        let _ = self.inbox.send(service::Message::Observed(o));
    }

    /// A reporter whose observations go nowhere (a worker built outside a running
    /// process, in tests).
    pub fn detached() -> Reporter {
        let (inbox, _) = flume::unbounded();
        Reporter { inbox }
    }
}
