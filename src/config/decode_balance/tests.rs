//! Native `load_balancing`, `health_check`, `outlier_detection`, endpoint settings and
//! `hash_on`: every key mapped, the defaults, and each refusal at its position.

use std::path::Path;
use std::time::Duration;

use crate::config::model::*;
use crate::config::Config;

fn parse(text: &str) -> Result<Config, Vec<String>> {
    Config::parse(text, Path::new("t.yaml"))
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

/// A file with one listener routing `/` to cluster `api` (route keys `route`, indented
/// by 8) and cluster `api` with `keys` (indented by 4) after its endpoints.
fn file(endpoints: &str, keys: &str, route: &str) -> String {
    format!(
        "listeners:\n  - name: l\n    address: 127.0.0.1:8080\n    routes:\n      - match: {{ prefix: / }}\n        cluster: api\n{route}clusters:\n  - name: api\n    endpoints: {endpoints}\n{keys}"
    )
}

fn cluster(keys: &str) -> Cluster {
    let text = file("[10.0.0.1:80]", keys, "");
    match parse(&text) {
        Ok(mut c) => c.clusters.remove(0),
        Err(e) => panic!("{e:?}"),
    }
}

fn errors_of(endpoints: &str, keys: &str, route: &str) -> Vec<String> {
    match parse(&file(endpoints, keys, route)) {
        Ok(_) => panic!("expected errors, but it loads"),
        Err(e) => e,
    }
}

/// The one error of a cluster with `keys`.
fn refused(keys: &str) -> String {
    let e = errors_of("[10.0.0.1:80]", keys, "");
    assert_eq!(e.len(), 1, "{e:?}");
    e[0].clone()
}

#[test]
fn defaults_are_envoys() {
    let c = cluster("");
    assert_eq!(c.balancing, Balancing::default());
    assert_eq!(c.balancing.policy, LbPolicy::RoundRobin);
    assert_eq!(c.balancing.panic_threshold, 50.0);
    assert_eq!(c.balancing.overprovisioning_factor, 140);
    assert!(!c.balancing.locality_weighted);
    assert_eq!(c.health_check, None);
    assert_eq!(c.outlier_detection, None);
    let Endpoints::Static(e) = &c.endpoints else {
        panic!("static")
    };
    assert_eq!(
        e[0],
        Endpoint::new(Address::Tcp("10.0.0.1:80".parse().unwrap()), 1)
    );
}

#[test]
fn policies_map_with_their_keys() {
    let policy = |keys: &str| {
        cluster(&format!("    load_balancing: {{ {keys} }}\n"))
            .balancing
            .policy
    };
    assert_eq!(policy("policy: random"), LbPolicy::Random);
    assert_eq!(policy("policy: round_robin"), LbPolicy::RoundRobin);
    assert_eq!(
        policy("policy: least_request"),
        LbPolicy::LeastRequest {
            choice_count: 2,
            active_request_bias: 1.0
        }
    );
    assert_eq!(
        policy("policy: least_request, choice_count: 3, active_request_bias: 0.5"),
        LbPolicy::LeastRequest {
            choice_count: 3,
            active_request_bias: 0.5
        }
    );
    assert_eq!(
        policy("policy: ring_hash"),
        LbPolicy::RingHash {
            min_ring_size: 1024,
            max_ring_size: 8_388_608
        }
    );
    assert_eq!(
        policy("policy: ring_hash, min_ring_size: 16, max_ring_size: 4096"),
        LbPolicy::RingHash {
            min_ring_size: 16,
            max_ring_size: 4096
        }
    );
    assert_eq!(
        policy("policy: maglev"),
        LbPolicy::Maglev { table_size: 65537 }
    );
    assert_eq!(
        policy("policy: maglev, table_size: 251"),
        LbPolicy::Maglev { table_size: 251 }
    );
    let b = cluster("    load_balancing: { panic_threshold: 12.5%, overprovisioning_factor: 100, locality_weighted: true }\n").balancing;
    assert_eq!(
        (
            b.panic_threshold,
            b.overprovisioning_factor,
            b.locality_weighted
        ),
        (12.5, 100, true)
    );
    assert_eq!(
        cluster("    load_balancing: { panic_threshold: 0 }\n")
            .balancing
            .panic_threshold,
        0.0
    );
    assert_eq!(
        cluster("    load_balancing: { panic_threshold: \"30%\" }\n")
            .balancing
            .panic_threshold,
        30.0
    );
}

#[test]
fn balancing_refusals_are_positioned() {
    assert_eq!(
        refused("    load_balancing: { policy: maglev, choice_count: 3 }\n"),
        "t.yaml:10:53: clusters[0].load_balancing.choice_count: `choice_count` applies only to `policy: least_request`"
    );
    assert_eq!(
        refused("    load_balancing: { policy: maglev, table_size: 65536 }\n"),
        "t.yaml:10:51: clusters[0].load_balancing.table_size: table_size 65536 is not a prime number"
    );
    assert!(refused(
        "    load_balancing: { policy: ring_hash, min_ring_size: 4096, max_ring_size: 1024 }\n"
    )
    .contains(
        "clusters[0].load_balancing: min_ring_size (4096) is greater than max_ring_size (1024)"
    ));
    assert!(
        refused("    load_balancing: { policy: maglev, table_size: 5000012 }\n")
            .contains("expected a table size from 2 to 5000011")
    );
    assert!(
        refused("    load_balancing: { policy: least_request, choice_count: 1 }\n")
            .contains("expected a choice count from 2 to")
    );
    assert!(
        refused("    load_balancing: { policy: least_request, active_request_bias: -1 }\n")
            .contains("active_request_bias: expected a number of at least 0, found -1")
    );
    assert!(refused("    load_balancing: { panic_threshold: 101% }\n")
        .contains("panic_threshold: expected a percentage from 0 to 100, found 101"));
    assert!(refused("    load_balancing: { policy: maglve }\n")
        .contains("policy: unknown value \"maglve\": expected one of `round_robin`, `least_request`, `random`, `ring_hash`, `maglev`; did you mean `maglev`?"));
    assert!(refused("    load_balancing: { polcy: maglev }\n")
        .contains("unknown key `polcy`; did you mean `policy`?"));
    assert!(
        refused("    load_balancing: { overprovisioning_factor: 0 }\n")
            .contains("overprovisioning_factor: expected a percentage from 1 to")
    );
}

#[test]
fn endpoints_carry_priority_locality_and_health() {
    let text = file(
        "\n      - { address: 10.0.0.1:80, weight: 2, priority: 0, locality: eu-west/eu-west-1a, locality_weight: 3, health: draining, hostname: api-1, health_check_port: 8081 }\n      - { address: 10.0.0.2:80, priority: 1, health: degraded }\n      - { address: 10.0.0.3:80, priority: 1, health: unhealthy, locality: us/a/rack1 }\n      - { address: 10.0.0.4:80, priority: 1, health: healthy }",
        "",
        "",
    );
    let config = parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let Endpoints::Static(e) = &config.clusters[0].endpoints else {
        panic!("static")
    };
    assert_eq!(
        e[0],
        Endpoint {
            address: Address::Tcp("10.0.0.1:80".parse().unwrap()),
            weight: 2,
            priority: 0,
            locality: Locality {
                region: "eu-west".into(),
                zone: "eu-west-1a".into(),
                sub_zone: String::new()
            },
            locality_weight: Some(3),
            health: DeclaredHealth::Draining,
            hostname: Some("api-1".into()),
            health_check_port: Some(8081),
        }
    );
    let rest: Vec<_> = e[1..]
        .iter()
        .map(|e| (e.priority, e.health, e.locality.sub_zone.as_str()))
        .collect();
    assert_eq!(
        rest,
        [
            (1, DeclaredHealth::Degraded, ""),
            (1, DeclaredHealth::Unhealthy, "rack1"),
            (1, DeclaredHealth::Healthy, ""),
        ]
    );
    // DNS names take the same settings but `health` and `hostname`.
    let text = file(
        "\n      - { address: api.internal:80, priority: 0, locality: eu, locality_weight: 2, health_check_port: 9000 }\n      - { address: api-b.internal:80, priority: 1 }",
        "    respect_dns_ttl: true\n",
        "",
    );
    let config = parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let Endpoints::Dns(dns) = &config.clusters[0].endpoints else {
        panic!("dns")
    };
    assert!(dns.respect_dns_ttl);
    assert_eq!(
        dns.names[0],
        DnsName {
            host: "api.internal".into(),
            port: 80,
            weight: 1,
            priority: 0,
            locality: Locality {
                region: "eu".into(),
                ..Locality::default()
            },
            locality_weight: Some(2),
            health_check_port: Some(9000),
        }
    );
    assert_eq!(dns.names[1].priority, 1);
    let Endpoints::Dns(dns) = &cluster_with_endpoints("[api.internal:80]").endpoints else {
        panic!("dns")
    };
    assert!(!dns.respect_dns_ttl);
}

fn cluster_with_endpoints(endpoints: &str) -> Cluster {
    match parse(&file(endpoints, "", "")) {
        Ok(mut c) => c.clusters.remove(0),
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn endpoint_refusals_are_positioned() {
    let one = |endpoints: &str, keys: &str| {
        let e = errors_of(endpoints, keys, "");
        assert_eq!(e.len(), 1, "{e:?}");
        e[0].clone()
    };
    assert_eq!(
        one("[{ address: 10.0.0.1:80 }, { address: 10.0.0.2:80, priority: 2 }]", ""),
        "t.yaml:9:16: clusters[0].endpoints: priorities go from 0 without gaps: priority 1 has no endpoints, but priority 2 has"
    );
    assert!(one("[{ address: 10.0.0.1:80, priority: 129 }]", "")
        .contains("priority: expected a priority from 0 to 128, found 129"));
    assert!(one(
        "[{ address: 10.0.0.1:80, locality: a, locality_weight: 1 }, { address: 10.0.0.2:80, locality: a, locality_weight: 2 }]",
        ""
    )
    .contains("clusters[0].endpoints[1].address: locality \"a\" at priority 0 has two weights (1 and 2)"));
    assert!(one("[{ address: 10.0.0.1:80, locality: a/b/c/d }]", "")
        .contains("locality: \"a/b/c/d\": a locality is"));
    assert!(one("[{ address: 10.0.0.1:80, health: sick }]", "")
        .contains("health: unknown value \"sick\""));
    assert!(one("[{ address: 10.0.0.1:80, health_check_port: 0 }]", "")
        .contains("health_check_port: expected a port from 1 to 65535"));
    assert!(one("[{ address: api.internal:80, health: draining }]", "")
        .contains("clusters[0].endpoints[0].health: `health` applies only to the endpoints of `static` clusters"));
    assert!(one("[{ address: api.internal:80, hostname: x }]", "")
        .contains("clusters[0].endpoints[0].hostname: `hostname` applies only to the endpoints of `static` clusters"));
    assert!(one("[10.0.0.1:80]", "    respect_dns_ttl: true\n")
        .contains("`respect_dns_ttl` applies only to `strict_dns` and `logical_dns` clusters"));
    assert!(one("[{ address: 10.0.0.1:80, wieght: 2 }]", "")
        .contains("unknown key `wieght`; did you mean `weight`?"));
}

#[test]
fn hash_rules_map_and_routes_inherit_their_clusters() {
    let text = file(
        "[10.0.0.1:80]",
        "    load_balancing:\n      policy: ring_hash\n      hash_on: [{ header: X-User }, { cookie: { name: sticky, ttl: 1h, path: / }, terminal: true }, { cookie: plain }, { cookie: { name: session, ttl: 0s } }, source_ip, { source_ip: true, terminal: true }, { query: user }]\n",
        "      - match: { prefix: /own }\n        cluster: api\n        hash_on: [source_ip]\n      - match: { prefix: /static }\n        direct_response: { status: 200 }\n",
    );
    let config = parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let expected = vec![
        HashRule {
            source: HashSource::Header("x-user".into()),
            terminal: false,
        },
        HashRule {
            source: HashSource::Cookie {
                name: "sticky".into(),
                ttl: Some(Duration::from_secs(3600)),
                path: Some("/".into()),
            },
            terminal: true,
        },
        HashRule {
            source: HashSource::Cookie {
                name: "plain".into(),
                ttl: None,
                path: None,
            },
            terminal: false,
        },
        HashRule {
            source: HashSource::Cookie {
                name: "session".into(),
                ttl: Some(Duration::ZERO),
                path: None,
            },
            terminal: false,
        },
        HashRule {
            source: HashSource::SourceIp,
            terminal: false,
        },
        HashRule {
            source: HashSource::SourceIp,
            terminal: true,
        },
        HashRule {
            source: HashSource::Query("user".into()),
            terminal: false,
        },
    ];
    assert_eq!(config.clusters[0].balancing.hash_on, expected);
    let routes = &config.listeners[0].routes;
    // Routes are tried in order: `/` first (inherits), `/own` (its own), a direct response.
    assert_eq!(routes[0].hash_policy, expected);
    assert_eq!(
        routes[1].hash_policy,
        [HashRule {
            source: HashSource::SourceIp,
            terminal: false
        }]
    );
    assert_eq!(routes[2].hash_policy, []);
}

#[test]
fn hash_rule_refusals_are_positioned() {
    let one = |rules: &str| {
        let e = errors_of(
            "[10.0.0.1:80]",
            &format!("    load_balancing: {{ hash_on: {rules} }}\n"),
            "",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        e[0].clone()
    };
    assert!(one("[]").contains("hash_on: at least one hash rule is required"));
    assert!(one("[client]").contains("\"client\": a hash rule is `source_ip` or a mapping"));
    assert!(one("[{ header: x, query: y }]")
        .contains("a hash rule has one of `header`, `cookie`, `source_ip` or `query`"));
    assert!(one("[{ source_ip: false }]").contains("`source_ip: false` hashes nothing"));
    assert!(one("[{ header: \"a b\" }]").contains("\"a b\" is not a header name"));
    assert!(one("[{ cookie: { name: c, path: nope } }]")
        .contains("\"nope\": a cookie path starts with `/`"));
    assert!(one("[{ cookie: { ttl: 1h } }]").contains("missing required key `name`"));
    assert!(one("[{ hedaer: x }]").contains("unknown key `hedaer`; did you mean `header`?"));
    let e = errors_of(
        "[10.0.0.1:80]",
        "",
        "      - match: { prefix: /d }\n        direct_response: { status: 200 }\n        hash_on: [source_ip]\n",
    );
    assert_eq!(e, ["t.yaml:9:18: listeners[0].routes[1].hash_on: `hash_on` applies only to routes with a `cluster`"]);
}

#[test]
fn health_checks_map_every_key() {
    let c = cluster("    health_check:\n      http: { path: /healthz, host: api.internal, method: HEAD, expected_statuses: [200, 204-299], retriable_statuses: [503], headers: { X-Probe: \"1\", x-n: 2 }, remove_headers: [User-Agent] }\n      interval: 5s\n      timeout: 1s\n      healthy_threshold: 2\n      unhealthy_threshold: 4\n      interval_jitter: 0s\n      interval_jitter_percent: 10\n      initial_jitter: 1s\n      no_traffic_interval: 30s\n      no_traffic_healthy_interval: 90s\n      unhealthy_interval: 7s\n      unhealthy_edge_interval: 3s\n      healthy_edge_interval: 4s\n      always_log_failures: true\n      reuse_connection: false\n");
    assert_eq!(
        c.health_check,
        Some(HealthCheck {
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(5),
            interval_jitter: Duration::ZERO,
            interval_jitter_percent: 10,
            initial_jitter: Duration::from_secs(1),
            unhealthy_threshold: 4,
            healthy_threshold: 2,
            no_traffic_interval: Duration::from_secs(30),
            no_traffic_healthy_interval: Some(Duration::from_secs(90)),
            unhealthy_interval: Some(Duration::from_secs(7)),
            unhealthy_edge_interval: Some(Duration::from_secs(3)),
            healthy_edge_interval: Some(Duration::from_secs(4)),
            always_log_failures: true,
            reuse_connection: false,
            kind: HealthCheckKind::Http(HttpCheck {
                host: Some("api.internal".into()),
                path: "/healthz".into(),
                method: "HEAD".into(),
                expected_statuses: vec![(200, 201), (204, 300)],
                retriable_statuses: vec![(503, 504)],
                request_headers: vec![("x-probe".into(), "1".into()), ("x-n".into(), "2".into())],
                remove_headers: vec!["user-agent".into()],
            }),
        })
    );
    let c = cluster("    health_check: { tcp: { send: \"50494e47\", expect: [\"504F4E47\"] }, interval: 2s, timeout: 1s }\n");
    let hc = c.health_check.expect("a check");
    assert_eq!(
        (hc.healthy_threshold, hc.unhealthy_threshold),
        (1, 3),
        "native defaults"
    );
    assert_eq!(hc.no_traffic_interval, Duration::from_secs(60));
    assert!(hc.reuse_connection, "kept by default, as Envoy's");
    assert_eq!(
        (
            hc.interval_jitter,
            hc.initial_jitter,
            hc.interval_jitter_percent
        ),
        (Duration::ZERO, Duration::ZERO, 0)
    );
    assert_eq!(
        (hc.unhealthy_interval, hc.always_log_failures),
        (None, false)
    );
    assert_eq!(
        hc.kind,
        HealthCheckKind::Tcp(TcpCheck {
            send: b"PING".to_vec(),
            receive: vec![b"PONG".to_vec()]
        })
    );
    let http = cluster("    health_check: { http: { path: / }, interval: 2s, timeout: 1s }\n");
    let HealthCheckKind::Http(h) = http.health_check.expect("a check").kind else {
        panic!("http")
    };
    assert_eq!(
        (h.method.as_str(), h.expected_statuses.as_slice(), h.host),
        ("GET", &[(200, 201)][..], None)
    );
    let tcp = cluster("    health_check: { tcp: {}, interval: 2s, timeout: 1s }\n");
    assert_eq!(
        tcp.health_check.expect("a check").kind,
        HealthCheckKind::Tcp(TcpCheck::default())
    );
}

#[test]
fn health_check_refusals_are_positioned() {
    let one = |keys: &str| refused(&format!("    health_check: {{ {keys} }}\n"));
    assert_eq!(
        one("http: { path: / }, timeout: 1s"),
        "t.yaml:10:19: clusters[0].health_check: missing required key `interval`"
    );
    assert!(one("http: { path: / }, interval: 1s").contains("missing required key `timeout`"));
    assert!(one("interval: 1s, timeout: 1s").contains("a health check has one of `http` or `tcp`"));
    assert!(one("http: { path: / }, tcp: {}, interval: 1s, timeout: 1s")
        .contains("a health check has one of `http` or `tcp`"));
    assert!(one("http: { path: / }, interval: 0s, timeout: 1s")
        .contains("interval: duration must be greater than zero"));
    assert!(
        one("http: { path: / }, interval: 1s, timeout: 1s, healthy_threshold: 0")
            .contains("healthy_threshold: expected a count from 1 to")
    );
    assert!(
        one("http: { path: / }, interval: 1s, timeout: 1s, interval_jitter_percent: 101")
            .contains("expected a count from 0 to 100")
    );
    assert!(one("http: { path: healthz }, interval: 1s, timeout: 1s")
        .contains("\"healthz\": a health-check path starts with `/`"));
    assert!(
        one("http: { path: /, method: CONNECT }, interval: 1s, timeout: 1s")
            .contains("http.method: a health check cannot use CONNECT")
    );
    assert!(
        one("http: { path: /, method: get }, interval: 1s, timeout: 1s")
            .contains("\"get\" is not an upper-case HTTP method")
    );
    assert!(
        one("http: { path: /, expected_statuses: [299-200] }, interval: 1s, timeout: 1s")
            .contains("expected_statuses[0]: \"299-200\": expected a status")
    );
    assert!(
        one("http: { path: /, expected_statuses: [99] }, interval: 1s, timeout: 1s")
            .contains("99 is not an HTTP status")
    );
    assert!(
        one("http: { path: /, headers: { host: x } }, interval: 1s, timeout: 1s")
            .contains("`host` cannot be edited")
    );
    assert!(one("tcp: { send: PING }, interval: 1s, timeout: 1s")
        .contains("tcp.send: \"PING\" is not hex"));
    assert!(
        one("tcp: { send: 0000 }, interval: 1s, timeout: 1s").contains(
            "tcp.send: expected hex bytes in quotes, such as \"50494e47\", found the integer `0`"
        )
    );
    assert!(one("tcp: { expect: [] }, interval: 1s, timeout: 1s")
        .contains("at least one payload is required"));
    assert!(
        one("http: { path: / }, interval: 1s, timeout: 1s, intervl: 2s")
            .contains("unknown key `intervl`; did you mean `interval`?")
    );
}

#[test]
fn outlier_detection_maps_every_key_with_envoys_defaults() {
    assert_eq!(
        cluster("    outlier_detection: {}\n").outlier_detection,
        Some(OutlierDetection::default())
    );
    let c = cluster("    outlier_detection:\n      consecutive_5xx: 3\n      consecutive_gateway_failure: 2\n      consecutive_local_origin_failure: 6\n      interval: 5s\n      base_ejection_time: 10s\n      max_ejection_time: 100s\n      max_ejection_time_jitter: 1s\n      max_ejection_percent: 50\n      enforcing_consecutive_5xx: 90\n      enforcing_consecutive_gateway_failure: 70\n      enforcing_consecutive_local_origin_failure: 60\n      enforcing_success_rate: 80\n      enforcing_local_origin_success_rate: 50\n      success_rate_minimum_hosts: 4\n      success_rate_request_volume: 60\n      success_rate_stdev_factor: 1500\n      failure_percentage_threshold: 40\n      enforcing_failure_percentage: 30\n      enforcing_failure_percentage_local_origin: 20\n      failure_percentage_minimum_hosts: 3\n      failure_percentage_request_volume: 25\n      split_external_local_origin_errors: true\n      successful_active_health_check_uneject_host: false\n      always_eject_one_host: true\n");
    assert_eq!(
        c.outlier_detection,
        Some(OutlierDetection::every_field_set())
    );
    let long = cluster("    outlier_detection: { base_ejection_time: 10m }\n");
    assert_eq!(
        long.outlier_detection.expect("set").max_ejection_time,
        Duration::from_secs(600)
    );
}

#[test]
fn outlier_detection_refusals_are_positioned() {
    let one = |keys: &str| refused(&format!("    outlier_detection: {{ {keys} }}\n"));
    assert_eq!(
        one("consecutive_5xx: 0"),
        "t.yaml:10:43: clusters[0].outlier_detection.consecutive_5xx: expected a count from 1 to 4294967295, found 0"
    );
    assert!(one("max_ejection_percent: 101")
        .contains("max_ejection_percent: expected a percentage from 0 to 100, found 101"));
    assert!(one("base_ejection_time: 60s, max_ejection_time: 30s")
        .contains("outlier_detection.max_ejection_time: max_ejection_time (30s) cannot be smaller than base_ejection_time (60s)"));
    assert!(one("interval: 0s").contains("interval: duration must be greater than zero"));
    assert!(one("consecutive_5x: 1")
        .contains("unknown key `consecutive_5x`; did you mean `consecutive_5xx`?"));
}

#[test]
fn the_reference_config_spells_out_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/reference.yaml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let orders = config.cluster("orders").expect("orders");
    let b = &orders.balancing;
    assert_eq!(
        b.policy,
        LbPolicy::RingHash {
            min_ring_size: 1024,
            max_ring_size: 8_388_608
        }
    );
    assert_eq!(
        (
            b.panic_threshold,
            b.overprovisioning_factor,
            b.locality_weighted
        ),
        (50.0, 140, false)
    );
    assert_eq!(b.hash_on.len(), 3);
    let hc = orders.health_check.as_ref().expect("a check");
    assert_eq!(
        (hc.healthy_threshold, hc.unhealthy_threshold),
        (
            HealthCheck::DEFAULT_HEALTHY_THRESHOLD,
            HealthCheck::DEFAULT_UNHEALTHY_THRESHOLD
        )
    );
    assert_eq!(
        hc.no_traffic_interval,
        HealthCheck::DEFAULT_NO_TRAFFIC_INTERVAL
    );
    assert_eq!(orders.outlier_detection, Some(OutlierDetection::default()));
    let Endpoints::Static(web) = &config.cluster("web").expect("web").endpoints else {
        panic!("static")
    };
    let last = web
        .iter()
        .find(|e| e.hostname.as_deref() == Some("web-4"))
        .expect("web-4");
    assert_eq!(
        (last.priority, last.health, last.health_check_port),
        (1, DeclaredHealth::Healthy, Some(9204))
    );
    // Routes of `orders` without their own rules inherit the cluster's.
    let routes = &config.listeners[0].routes;
    assert_eq!(
        routes[0].hash_policy,
        [HashRule {
            source: HashSource::Header("x-tenant".into()),
            terminal: false
        }]
    );
    let inherited = config
        .listeners
        .iter()
        .flat_map(|l| {
            l.routes
                .iter()
                .chain(l.virtual_hosts.iter().flat_map(|v| v.routes.iter()))
        })
        .find(|r| r.action == RouteAction::Cluster("orders".into()) && r.hash_policy.len() == 3);
    assert!(
        inherited.is_some(),
        "a route inheriting the cluster's rules"
    );
}
