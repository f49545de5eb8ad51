//! Per-route and per-virtual-cluster stats (Envoy's route `stat_prefix` and virtual
//! clusters): the scope names, the control thread's registration and the worker's cells.
//!
//! One opted-in scope is three things, created on the control thread and kept across
//! reloads by prefix like every scope: the counters below (`vhost.<vh>.route.<p>.` or
//! `vhost.<vh>.vcluster.<name>.`), one counter per response code 100..=599
//! (`upstream_rq_<code>`: a dense array of 500 cells, so recording is an index, never a
//! lookup; rendered only when non-zero, as Envoy creates a code's counter on first use),
//! and the `upstream_rq_time` histogram. A worker writes only its own cells, so
//! recording is a few relaxed load/store pairs with no allocation and no lock.
//!
//! What is counted, as Envoy counts it: `upstream_rq_total` per attempt that got its
//! connection (retries too; not an attempt whose connect failed); per request, so that
//! the numbers add up to the requests sent: the final upstream
//! response's code, class, `upstream_rq_completed` and `upstream_rq_time` (from routing
//! to its last byte); `upstream_rq_timeout` when the route or try timeout ended it;
//! `upstream_rq_retry` per retry made, `_retry_success` when a retried request got its
//! answer, `_retry_limit_exceeded` and `_retry_overflow` when a wanted retry was not
//! made. ringway's own (not Envoy's): `downstream_rq_<class>` of every answer the
//! route's requests got, local replies included (401, 429, a direct response), and
//! `rq_rx_bytes`/`rq_tx_bytes`, the bytes received from and sent to clients.

use std::sync::{Arc, OnceLock};

use super::{Histogram, Kind, Scope, StatDef, StatsStore, WorkerHistogram, WorkerScope};

pub const UPSTREAM_RQ_TOTAL: usize = 0;
pub const UPSTREAM_RQ_COMPLETED: usize = 1;
/// `upstream_rq_1xx`; the classes follow in order.
pub const UPSTREAM_RQ_1XX: usize = 2;
pub const UPSTREAM_RQ_TIMEOUT: usize = 7;
pub const UPSTREAM_RQ_RETRY: usize = 8;
pub const UPSTREAM_RQ_RETRY_LIMIT_EXCEEDED: usize = 9;
pub const UPSTREAM_RQ_RETRY_OVERFLOW: usize = 10;
pub const UPSTREAM_RQ_RETRY_SUCCESS: usize = 11;
/// `downstream_rq_1xx`; the classes follow in order.
pub const DOWNSTREAM_RQ_1XX: usize = 12;
pub const RQ_RX_BYTES: usize = 17;
pub const RQ_TX_BYTES: usize = 18;

const fn counter(name: &'static str) -> StatDef {
    StatDef {
        name,
        kind: Kind::Counter,
        per_worker: false,
        any: false,
    }
}

/// The definitions, in index order.
pub static DEFS: [StatDef; 19] = [
    counter("upstream_rq_total"),
    counter("upstream_rq_completed"),
    counter("upstream_rq_1xx"),
    counter("upstream_rq_2xx"),
    counter("upstream_rq_3xx"),
    counter("upstream_rq_4xx"),
    counter("upstream_rq_5xx"),
    counter("upstream_rq_timeout"),
    counter("upstream_rq_retry"),
    counter("upstream_rq_retry_limit_exceeded"),
    counter("upstream_rq_retry_overflow"),
    counter("upstream_rq_retry_success"),
    counter("downstream_rq_1xx"),
    counter("downstream_rq_2xx"),
    counter("downstream_rq_3xx"),
    counter("downstream_rq_4xx"),
    counter("downstream_rq_5xx"),
    counter("rq_rx_bytes"),
    counter("rq_tx_bytes"),
];

/// The lowest and highest code with a counter of its own.
const FIRST_CODE: u16 = 100;
const LAST_CODE: u16 = 599;

/// `upstream_rq_100` ..= `upstream_rq_599`: built once per process (names must be
/// `'static`: scopes keep `&'static [StatDef]`).
pub fn code_defs() -> &'static [StatDef] {
    static DEFS: OnceLock<Box<[StatDef]>> = OnceLock::new();
    DEFS.get_or_init(|| {
        (FIRST_CODE..=LAST_CODE)
            .map(|code| {
                let name: &'static str = Box::leak(format!("upstream_rq_{code}").into_boxed_str());
                counter(name)
            })
            .collect()
    })
}

/// `upstream_rq_completed`, `upstream_rq_1xx` ..= `_5xx`, then `upstream_rq_100` ..=
/// `_599`: Envoy's basic response stats (`chargeBasicResponseStat`), the set a cluster's
/// `retry.` scope counts retried responses in. Built once per process.
pub fn response_defs() -> &'static [StatDef] {
    static DEFS: OnceLock<Box<[StatDef]>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let classes = (1..=5).map(|class| {
            let name: &'static str = Box::leak(format!("upstream_rq_{class}xx").into_boxed_str());
            counter(name)
        });
        std::iter::once(counter("upstream_rq_completed"))
            .chain(classes)
            .chain(code_defs().iter().copied())
            .collect()
    })
}

/// The index of `status`'s counter in [`code_defs`] (`None` outside 100..=599).
#[inline]
pub fn code_index(status: u16) -> Option<usize> {
    (FIRST_CODE..=LAST_CODE)
        .contains(&status)
        .then(|| usize::from(status - FIRST_CODE))
}

/// The index of `status`'s code in [`response_defs`] (`None` outside 100..=599).
#[inline]
pub fn response_code(status: u16) -> Option<usize> {
    code_index(status).map(|i| 6 + i)
}

/// Counts `status` in a worker's cells of a [`response_defs`] scope: completed, the
/// class, the code.
#[inline]
pub fn count_response(cells: &WorkerScope, status: u16) {
    cells.get(0).inc();
    cells.get(class(1, status)).inc();
    if let Some(code) = response_code(status) {
        cells.get(code).inc();
    }
}

/// One opted-in scope's parts, shared by the workers.
#[derive(Debug, Clone)]
pub struct RouteScopes {
    cells: Arc<Scope>,
    codes: Arc<Scope>,
    rq_time: Arc<Histogram>,
}

impl RouteScopes {
    /// Finds or creates the scope under `prefix` (ending with a dot).
    pub fn register(store: &mut StatsStore, prefix: &str) -> Self {
        RouteScopes {
            cells: store.scope(prefix, &DEFS),
            codes: store.sparse_scope(prefix, code_defs()),
            rq_time: store.histogram(&format!("{prefix}upstream_rq_time")),
        }
    }

    /// Worker `worker`'s cells.
    pub fn for_worker(&self, worker: usize) -> RouteCells {
        RouteCells {
            cells: self.cells.for_worker(worker),
            codes: self.codes.for_worker(worker),
            rq_time: self.rq_time.for_worker(worker),
        }
    }
}

/// A worker's cells of one route or virtual-cluster scope.
#[derive(Debug, Clone)]
pub struct RouteCells {
    cells: WorkerScope,
    codes: WorkerScope,
    rq_time: WorkerHistogram,
}

/// How a request ended, as its route's stats count it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestEnd {
    /// The answer's status (0: none was sent).
    pub status: u16,
    /// Bytes received from the client and sent to it.
    pub bytes: (u64, u64),
    /// Forwarded to a cluster (at least one attempt was wanted).
    pub forwarded: bool,
    /// Retries made.
    pub retries: u32,
    /// The route or try timeout ended it.
    pub timeout: bool,
    /// A retry was wanted and the policy's retries were used up / the breaker said no.
    pub retry_limit_exceeded: bool,
    pub retry_overflow: bool,
}

impl RouteCells {
    /// Counts the final upstream response of a request: its code and class, the time
    /// from routing to its end, and a retry's success.
    #[inline]
    pub fn upstream_response(&self, status: u16, elapsed: std::time::Duration, retried: bool) {
        self.cells.get(UPSTREAM_RQ_COMPLETED).inc();
        if retried {
            self.cells.get(UPSTREAM_RQ_RETRY_SUCCESS).inc();
        }
        self.cells.get(class(UPSTREAM_RQ_1XX, status)).inc();
        if let Some(code) = code_index(status) {
            self.codes.get(code).inc();
        }
        self.rq_time.record(elapsed);
    }

    /// A router-made answer for an upstream request that got no response (a connect
    /// failure, an overflow, a reset, a timeout): charged as the upstream's code, as
    /// Envoy's router charges an abort (`chargeUpstreamAbort`); no time is recorded.
    pub fn upstream_abort(&self, status: u16) {
        self.cells.get(UPSTREAM_RQ_COMPLETED).inc();
        self.cells.get(class(UPSTREAM_RQ_1XX, status)).inc();
        if let Some(code) = code_index(status) {
            self.codes.get(code).inc();
        }
    }

    /// Counts an upstream attempt that got its connection (Envoy counts a route's and a
    /// virtual cluster's `upstream_rq_total` when the pool is ready: each attempt, not
    /// one whose connect failed).
    #[inline]
    pub fn attempt(&self) {
        self.cells.get(UPSTREAM_RQ_TOTAL).inc();
    }

    /// Counts request body bytes as they arrive.
    #[inline]
    pub fn received(&self, bytes: u64) {
        self.cells.get(RQ_RX_BYTES).add(bytes);
    }

    /// Counts a finished request (`bytes.0`: what was received and not yet counted).
    #[inline]
    pub fn request(&self, end: &RequestEnd) {
        let c = &self.cells;
        if end.status != 0 {
            c.get(class(DOWNSTREAM_RQ_1XX, end.status)).inc();
        }
        c.get(RQ_RX_BYTES).add(end.bytes.0);
        c.get(RQ_TX_BYTES).add(end.bytes.1);
        if !end.forwarded {
            return;
        }
        c.get(UPSTREAM_RQ_RETRY).add(u64::from(end.retries));
        if end.timeout {
            c.get(UPSTREAM_RQ_TIMEOUT).inc();
        }
        if end.retry_limit_exceeded {
            c.get(UPSTREAM_RQ_RETRY_LIMIT_EXCEEDED).inc();
        }
        if end.retry_overflow {
            c.get(UPSTREAM_RQ_RETRY_OVERFLOW).inc();
        }
    }
}

/// The index of `status`'s class counter in a run of five starting at `first`.
#[inline]
fn class(first: usize, status: u16) -> usize {
    first + usize::from(status / 100).clamp(1, 5) - 1
}

/// `vhost.<vhost>.route.<prefix>.`, names made stat-name segments.
pub fn route_prefix(vhost: &str, prefix: &str) -> String {
    format!("vhost.{}.route.{}.", segment(vhost), segment(prefix))
}

/// `vhost.<vhost>.vcluster.<name>.` (`other` for the unmatched requests).
pub fn vcluster_prefix(vhost: &str, name: &str) -> String {
    format!("vhost.{}.vcluster.{}.", segment(vhost), segment(name))
}

/// `name` with characters other than `[A-Za-z0-9_-]` as `_`: a `.` would split it
/// (and the tag extraction of `envoy.virtual_host`, `envoy.route`, ...).
pub fn segment(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_classes_line_up() {
        assert_eq!(DEFS[UPSTREAM_RQ_1XX + 4].name, "upstream_rq_5xx");
        assert_eq!(DEFS[DOWNSTREAM_RQ_1XX + 1].name, "downstream_rq_2xx");
        assert_eq!(DEFS[RQ_TX_BYTES].name, "rq_tx_bytes");
        assert_eq!(
            DEFS[UPSTREAM_RQ_RETRY_SUCCESS].name,
            "upstream_rq_retry_success"
        );
        assert_eq!(code_defs()[0].name, "upstream_rq_100");
        assert_eq!(code_defs()[499].name, "upstream_rq_599");
        let response = response_defs();
        assert_eq!(response[0].name, "upstream_rq_completed");
        assert_eq!(response[class(1, 503)].name, "upstream_rq_5xx");
        assert_eq!(
            response[response_code(100).unwrap()].name,
            "upstream_rq_100"
        );
        assert_eq!(
            response[response_code(599).unwrap()].name,
            "upstream_rq_599"
        );
        assert_eq!(response.len(), 506);
        assert_eq!(response_code(600), None);
        assert_eq!(
            route_prefix("api.x", "get orders"),
            "vhost.api_x.route.get_orders."
        );
    }

    #[test]
    fn counts_land_in_their_cells_and_zero_codes_are_not_rendered() {
        let mut store = StatsStore::new(2);
        let scopes = RouteScopes::register(&mut store, "vhost.a.route.r.");
        let w1 = scopes.for_worker(1);
        w1.upstream_response(201, std::time::Duration::from_millis(3), true);
        let end = RequestEnd {
            status: 201,
            bytes: (10, 20),
            forwarded: true,
            retries: 1,
            ..Default::default()
        };
        w1.attempt();
        w1.request(&end);
        let lines = store.lines(Vec::new());
        let get = |name: &str| lines.iter().find(|l| l.name == name).map(|l| l.value);
        assert_eq!(get("vhost.a.route.r.upstream_rq_201"), Some(1));
        assert_eq!(get("vhost.a.route.r.upstream_rq_200"), None);
        assert_eq!(get("vhost.a.route.r.upstream_rq_2xx"), Some(1));
        assert_eq!(get("vhost.a.route.r.downstream_rq_2xx"), Some(1));
        assert_eq!(get("vhost.a.route.r.upstream_rq_total"), Some(1));
        assert_eq!(get("vhost.a.route.r.upstream_rq_retry"), Some(1));
        assert_eq!(get("vhost.a.route.r.upstream_rq_retry_success"), Some(1));
        assert_eq!(get("vhost.a.route.r.rq_tx_bytes"), Some(20));
        assert_eq!(get("vhost.a.route.r.upstream_rq_timeout"), Some(0));
    }
}
