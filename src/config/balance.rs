//! How a cluster spreads requests and judges its endpoints: the load-balancing policy,
//! priorities and localities, request hashing, active health checks and outlier
//! detection (Envoy's `lb_policy` and its configs, `common_lb_config`, `health_checks`,
//! `outlier_detection` and a route's `hash_policy`).
//!
//! Design: plain data, decoded from either format (`decode_balance` for native files,
//! `envoy::cluster`, `envoy::health` and `envoy::outlier` for Envoy's) and read by the
//! balancer and the health service. Every default is Envoy's documented one and lives
//! next to its type, so both decoders and the docs agree. Percentages that Envoy keeps
//! as doubles (`healthy_panic_threshold`, `active_request_bias`) stay `f64`, which is
//! why [`Balancing`] (and so `Cluster`) is `PartialEq` but not `Eq`.

use std::time::Duration;

/// A cluster's load balancing.
#[derive(Debug, Clone, PartialEq)]
pub struct Balancing {
    pub policy: LbPolicy,
    /// Percent of healthy hosts (0 to 100) under which a priority is in panic and is
    /// balanced over all its hosts (Envoy's `healthy_panic_threshold`); 0 disables panic.
    pub panic_threshold: f64,
    /// Percent (Envoy's `overprovisioning_factor`): a priority or locality counts as
    /// fully healthy while `healthy share x factor / 100` is at least 1.
    pub overprovisioning_factor: u32,
    /// Split each priority's load over its localities by their weights and health
    /// (Envoy's `common_lb_config.locality_weighted_lb_config`).
    pub locality_weighted: bool,
    /// The hash rules of the cluster's routes that have none of their own (native only;
    /// Envoy has no cluster-level hash policy). Meaningful with `RingHash` and `Maglev`;
    /// accepted and unused with the others, as Envoy does.
    pub hash_on: Vec<HashRule>,
}

impl Balancing {
    /// Envoy's default `healthy_panic_threshold`.
    pub const DEFAULT_PANIC_THRESHOLD: f64 = 50.0;
    /// Envoy's default `overprovisioning_factor` (1.4).
    pub const DEFAULT_OVERPROVISIONING_FACTOR: u32 = 140;
}

impl Default for Balancing {
    fn default() -> Self {
        Balancing {
            policy: LbPolicy::RoundRobin,
            panic_threshold: Self::DEFAULT_PANIC_THRESHOLD,
            overprovisioning_factor: Self::DEFAULT_OVERPROVISIONING_FACTOR,
            locality_weighted: false,
            hash_on: Vec::new(),
        }
    }
}

/// Which endpoint of the chosen priority (and locality) gets a request.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum LbPolicy {
    /// Weighted round robin (Envoy's `ROUND_ROBIN`).
    #[default]
    RoundRobin,
    /// The endpoint with the fewest active requests of `choice_count` random ones (equal
    /// weights); with unequal weights, weight / (active + 1) ^ `active_request_bias`.
    LeastRequest {
        /// At least 2 (default 2).
        choice_count: u32,
        /// At least 0 (default 1.0).
        active_request_bias: f64,
    },
    /// Uniformly at random.
    Random,
    /// Consistent hashing on a ring (Ketama): a request's hash picks the endpoint.
    RingHash {
        /// Entries in the ring, at least (default 1024); at most `max_ring_size`.
        min_ring_size: u64,
        /// At most (default and bound 8,388,608).
        max_ring_size: u64,
    },
    /// Consistent hashing through a Maglev lookup table.
    Maglev {
        /// A prime below 5,000,011 (default 65,537).
        table_size: u64,
    },
}

impl LbPolicy {
    pub const DEFAULT_CHOICE_COUNT: u32 = 2;
    pub const DEFAULT_ACTIVE_REQUEST_BIAS: f64 = 1.0;
    pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;
    /// Envoy's default and upper bound for both ring sizes.
    pub const MAX_RING_SIZE: u64 = 8_388_608;
    pub const DEFAULT_TABLE_SIZE: u64 = 65_537;
    /// Envoy's upper bound for the Maglev table (itself a prime).
    pub const MAX_TABLE_SIZE: u64 = 5_000_011;

    /// Whether the policy picks by the request's hash (Envoy's thread-aware balancers).
    pub fn is_hashing(&self) -> bool {
        matches!(self, LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. })
    }
}

/// One input of a request's hash (Envoy's `hash_policy` entry). Rules are evaluated in
/// order and their hashes combined; a rule that finds nothing adds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashRule {
    pub source: HashSource,
    /// When this rule produced a hash, the rules after it are skipped.
    pub terminal: bool,
}

/// What a hash rule hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashSource {
    /// A request header's value (the name lower-cased).
    Header(String),
    /// A cookie's value. With a `ttl`, a request without the cookie gets one generated
    /// (set on the response; a zero `ttl` makes it a session cookie), as Envoy does.
    Cookie {
        name: String,
        ttl: Option<Duration>,
        path: Option<String>,
    },
    /// The client's IP address.
    SourceIp,
    /// A query parameter's value.
    Query(String),
}

/// Where an endpoint runs (Envoy's `Locality`); parts not given are empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Locality {
    pub region: String,
    pub zone: String,
    pub sub_zone: String,
}

/// An endpoint's health as the config declares it (Envoy's EDS `health_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeclaredHealth {
    /// `UNKNOWN` (the default) and `HEALTHY`.
    #[default]
    Healthy,
    /// `UNHEALTHY` and `TIMEOUT`.
    Unhealthy,
    /// `DRAINING`: excluded from balancing.
    Draining,
    /// `DEGRADED`: used once the healthy endpoints are not enough.
    Degraded,
}

/// A cluster's active health check (Envoy's `HealthCheck`): every endpoint is probed
/// every `interval`; `unhealthy_threshold` failures in a row make it unhealthy and
/// `healthy_threshold` successes in a row healthy again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// A probe that has not succeeded within this long has failed.
    pub timeout: Duration,
    pub interval: Duration,
    /// Up to this much random time is added to each interval.
    pub interval_jitter: Duration,
    /// Up to this percent of the interval is added to each one.
    pub interval_jitter_percent: u32,
    /// Up to this much random time before the first probe.
    pub initial_jitter: Duration,
    /// At least 1.
    pub unhealthy_threshold: u32,
    /// At least 1.
    pub healthy_threshold: u32,
    /// The interval while the cluster has had no traffic (default 60 s, Envoy's).
    pub no_traffic_interval: Duration,
    /// The interval while the cluster has had no traffic and the endpoint is healthy;
    /// `None`: `no_traffic_interval`.
    pub no_traffic_healthy_interval: Option<Duration>,
    /// The interval for unhealthy endpoints; `None`: `interval`.
    pub unhealthy_interval: Option<Duration>,
    /// The interval right after an endpoint became unhealthy; `None`: `unhealthy_interval`.
    pub unhealthy_edge_interval: Option<Duration>,
    /// The interval right after an endpoint became healthy; `None`: `interval`.
    pub healthy_edge_interval: Option<Duration>,
    /// Log every failed probe, not only the transitions
    /// (`always_log_health_check_failures`).
    pub always_log_failures: bool,
    /// Keep each host's check connection from one check to the next (Envoy's
    /// `reuse_connection`, default true): HTTP checks over keep-alive, TCP checks that
    /// send and expect bytes on the same connection. A TCP check with nothing to expect
    /// only tests that a connection opens, so it opens one every time, as Envoy's does;
    /// one that expects a greeting without sending connects every time too.
    pub reuse_connection: bool,
    pub kind: HealthCheckKind,
}

impl HealthCheck {
    /// Envoy's default `no_traffic_interval`.
    pub const DEFAULT_NO_TRAFFIC_INTERVAL: Duration = Duration::from_secs(60);
    /// The native format's default `healthy_threshold` (Envoy requires it).
    pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 1;
    /// The native format's default `unhealthy_threshold` (Envoy requires it).
    pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 3;
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    Http(HttpCheck),
    Tcp(TcpCheck),
}

/// An HTTP/1.1 request whose response status decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// The `Host` sent; `None`: the cluster's name (Envoy's default).
    pub host: Option<String>,
    /// Starts with `/`.
    pub path: String,
    /// An HTTP token in upper case (default `GET`; never `CONNECT`).
    pub method: String,
    /// Healthy statuses as half-open ranges `[start, end)`; default `[(200, 201)]`.
    pub expected_statuses: Vec<(u16, u16)>,
    /// Statuses that count as a failure without making the endpoint unhealthy at once
    /// (they count towards `unhealthy_threshold`); half-open ranges.
    pub retriable_statuses: Vec<(u16, u16)>,
    /// Fields added to the probe, literal values (Envoy's `request_headers_to_add`).
    pub request_headers: Vec<(String, String)>,
    /// Lower-cased field names removed from the probe (`request_headers_to_remove`).
    pub remove_headers: Vec<String>,
}

impl HttpCheck {
    /// Envoy's default expected statuses: 200 only.
    pub const DEFAULT_EXPECTED_STATUSES: [(u16, u16); 1] = [(200, 201)];
}

/// A TCP connection, optionally with bytes sent and bytes expected back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpCheck {
    /// Written once connected; empty: connecting is the check.
    pub send: Vec<u8>,
    /// Each must be found in the response (Envoy's `receive` payloads).
    pub receive: Vec<Vec<u8>>,
}

/// Passive health checking: endpoints that fail requests are ejected for a while
/// (Envoy's `OutlierDetection`, every field; see its documentation for the meaning).
/// `enforcing_*` and the `*_percent`/`*_threshold` values are percents (0 to 100).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierDetection {
    pub consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    pub consecutive_local_origin_failure: u32,
    /// Time between analysis sweeps (ejections by rate, un-ejections).
    pub interval: Duration,
    /// An ejection lasts this long times the number of times the host was ejected...
    pub base_ejection_time: Duration,
    /// ...capped by this (default 300 s, or `base_ejection_time` when that is longer).
    pub max_ejection_time: Duration,
    /// Up to this much random time is added to an ejection.
    pub max_ejection_time_jitter: Duration,
    pub max_ejection_percent: u32,
    pub enforcing_consecutive_5xx: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    pub enforcing_consecutive_local_origin_failure: u32,
    pub enforcing_success_rate: u32,
    pub enforcing_local_origin_success_rate: u32,
    pub success_rate_minimum_hosts: u32,
    pub success_rate_request_volume: u32,
    /// The success-rate ejection bar is `mean - stdev x factor / 1000`.
    pub success_rate_stdev_factor: u32,
    pub failure_percentage_threshold: u32,
    pub enforcing_failure_percentage: u32,
    pub enforcing_failure_percentage_local_origin: u32,
    pub failure_percentage_minimum_hosts: u32,
    pub failure_percentage_request_volume: u32,
    /// Count connection failures and timeouts (local origin) apart from the
    /// upstream's 5xx answers.
    pub split_external_local_origin_errors: bool,
    /// A successful active health check un-ejects the host.
    pub successful_active_health_check_uneject_host: bool,
    /// One host may be ejected even when `max_ejection_percent` would round it away.
    pub always_eject_one_host: bool,
}

impl OutlierDetection {
    /// Envoy's default `max_ejection_time` (raised to `base_ejection_time` when that is
    /// longer, as Envoy does).
    pub const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
}

impl Default for OutlierDetection {
    /// Envoy's defaults (`outlier_detection.proto`).
    fn default() -> Self {
        OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            consecutive_local_origin_failure: 5,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Self::DEFAULT_MAX_EJECTION_TIME,
            max_ejection_time_jitter: Duration::ZERO,
            max_ejection_percent: 10,
            enforcing_consecutive_5xx: 100,
            enforcing_consecutive_gateway_failure: 0,
            enforcing_consecutive_local_origin_failure: 100,
            enforcing_success_rate: 100,
            enforcing_local_origin_success_rate: 100,
            success_rate_minimum_hosts: 5,
            success_rate_request_volume: 100,
            success_rate_stdev_factor: 1900,
            failure_percentage_threshold: 85,
            enforcing_failure_percentage: 0,
            enforcing_failure_percentage_local_origin: 0,
            failure_percentage_minimum_hosts: 5,
            failure_percentage_request_volume: 50,
            split_external_local_origin_errors: false,
            successful_active_health_check_uneject_host: true,
            always_eject_one_host: false,
        }
    }
}

/// The highest priority number an endpoint may have (Envoy's bound).
pub const MAX_PRIORITY: u32 = 128;

/// Checks that the priorities used start at 0 and skip none (Envoy's documented rule,
/// which ringway enforces: a gap would be an empty priority that only takes load when
/// everything above it fails). Returns the message for the first missing one.
pub(crate) fn check_priorities(priorities: impl IntoIterator<Item = u32>) -> Result<(), String> {
    let mut used: Vec<u32> = priorities.into_iter().collect();
    used.sort_unstable();
    used.dedup();
    for (expected, &p) in (0u32..).zip(&used) {
        if p != expected {
            return Err(format!(
                "priorities go from 0 without gaps: priority {expected} has no endpoints, \
                 but priority {p} has"
            ));
        }
    }
    Ok(())
}

/// Checks that the endpoints of a locality at a priority agree on its weight (Envoy
/// writes it once per locality; the native format on each endpoint). Returns the index
/// of the first endpoint that disagrees, with the message.
pub(crate) fn check_locality_weights<'a>(
    endpoints: impl IntoIterator<Item = (u32, &'a Locality, Option<u32>)>,
) -> Option<(usize, String)> {
    let mut seen: Vec<(u32, &Locality, Option<u32>)> = Vec::new();
    for (i, (priority, locality, weight)) in endpoints.into_iter().enumerate() {
        match seen
            .iter()
            .find(|(p, l, _)| *p == priority && *l == locality)
        {
            Some((_, _, first)) if *first != weight => {
                let shown = |w: Option<u32>| w.map_or_else(|| "none".to_owned(), |w| w.to_string());
                return Some((
                    i,
                    format!(
                        "locality {:?} at priority {priority} has two weights ({} and {}): \
                         its endpoints must agree",
                        locality_text(locality),
                        shown(*first),
                        shown(weight)
                    ),
                ));
            }
            Some(_) => {}
            None => seen.push((priority, locality, weight)),
        }
    }
    None
}

/// `region/zone/sub_zone`, as written natively.
pub fn locality_text(l: &Locality) -> String {
    let text = format!("{}/{}/{}", l.region, l.zone, l.sub_zone);
    text.trim_end_matches('/').to_owned()
}

/// Whether `n` is prime (Maglev's table size); trial division, `n` is at most
/// [`LbPolicy::MAX_TABLE_SIZE`].
pub(crate) fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d.saturating_mul(d) <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

/// Parses Envoy's `region/zone/sub_zone` locality text (the native form); parts not
/// written are empty.
pub(crate) fn parse_locality(text: &str) -> Result<Locality, String> {
    let mut parts = text.split('/');
    let mut next = || parts.next().unwrap_or("").to_owned();
    let locality = Locality {
        region: next(),
        zone: next(),
        sub_zone: next(),
    };
    if text.split('/').count() > 3 {
        return Err(format!(
            "{text:?}: a locality is `region`, `region/zone` or `region/zone/sub_zone`"
        ));
    }
    Ok(locality)
}

/// Decodes hex text (Envoy's `Payload.text`), either case, an even number of digits.
pub(crate) fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digit = |b: u8| char::from(b).to_digit(16);
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() % 2 != 0 {
        return Err(format!(
            "{text:?}: expected hex bytes such as `50494e47` (an even number of digits)"
        ));
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => match (digit(*hi), digit(*lo)) {
                (Some(hi), Some(lo)) => u8::try_from(hi * 16 + lo).map_err(|e| e.to_string()),
                _ => Err(format!("{text:?} is not hex (digits 0-9 and a-f)")),
            },
            _ => Err(format!("{text:?} is not hex")),
        })
        .collect()
}

#[cfg(test)]
impl OutlierDetection {
    /// Every field away from its default: what the decoders' tests of both formats
    /// write and expect back.
    pub(crate) fn every_field_set() -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 3,
            consecutive_gateway_failure: 2,
            consecutive_local_origin_failure: 6,
            interval: Duration::from_secs(5),
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(100),
            max_ejection_time_jitter: Duration::from_secs(1),
            max_ejection_percent: 50,
            enforcing_consecutive_5xx: 90,
            enforcing_consecutive_gateway_failure: 70,
            enforcing_consecutive_local_origin_failure: 60,
            enforcing_success_rate: 80,
            enforcing_local_origin_success_rate: 50,
            success_rate_minimum_hosts: 4,
            success_rate_request_volume: 60,
            success_rate_stdev_factor: 1500,
            failure_percentage_threshold: 40,
            enforcing_failure_percentage: 30,
            enforcing_failure_percentage_local_origin: 20,
            failure_percentage_minimum_hosts: 3,
            failure_percentage_request_volume: 25,
            split_external_local_origin_errors: true,
            successful_active_health_check_uneject_host: false,
            always_eject_one_host: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_start_at_zero_without_gaps() {
        assert!(check_priorities([]).is_ok());
        assert!(check_priorities([0, 1, 1, 2, 0]).is_ok());
        assert_eq!(
            check_priorities([0, 2]).unwrap_err(),
            "priorities go from 0 without gaps: priority 1 has no endpoints, but priority 2 has"
        );
        assert!(check_priorities([1]).is_err());
    }

    #[test]
    fn primes() {
        assert!(is_prime(2) && is_prime(65_537) && is_prime(LbPolicy::MAX_TABLE_SIZE));
        assert!(!is_prime(0) && !is_prime(1) && !is_prime(65_536) && !is_prime(5_000_001));
    }

    #[test]
    fn localities() {
        let l = parse_locality("eu-west/eu-west-1a").unwrap();
        assert_eq!(
            (l.region.as_str(), l.zone.as_str(), l.sub_zone.as_str()),
            ("eu-west", "eu-west-1a", "")
        );
        assert_eq!(parse_locality("a/b/c").unwrap().sub_zone, "c");
        assert!(parse_locality("a/b/c/d").is_err());
    }

    #[test]
    fn hex_payloads() {
        assert_eq!(decode_hex("50494e47").unwrap(), b"PING");
        assert_eq!(decode_hex("00fF").unwrap(), [0, 255]);
        assert!(decode_hex("abc").is_err());
        assert!(decode_hex("zz").is_err());
        assert!(decode_hex("").is_err());
    }

    #[test]
    fn outlier_defaults_are_envoys() {
        let o = OutlierDetection::default();
        assert_eq!(o.consecutive_5xx, 5);
        assert_eq!(o.interval, Duration::from_secs(10));
        assert_eq!(o.base_ejection_time, Duration::from_secs(30));
        assert_eq!(o.max_ejection_time, Duration::from_secs(300));
        assert_eq!(o.max_ejection_percent, 10);
        assert_eq!(o.enforcing_consecutive_gateway_failure, 0);
        assert_eq!(o.success_rate_stdev_factor, 1900);
        assert_eq!(o.failure_percentage_threshold, 85);
        assert!(o.successful_active_health_check_uneject_host);
        assert!(!o.always_eject_one_host);
    }
}
