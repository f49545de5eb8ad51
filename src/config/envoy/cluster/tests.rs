//! Envoy clusters' load balancing and health on byte strings: the corpus example, every
//! field mapped, Envoy's defaults, and each refusal naming its field.

use std::time::Duration;

use crate::config::model::*;
use crate::config::Config;

use crate::config::envoy::tests::{errors, listener, load};

/// One listener routing `/` to cluster `app` (its route action gets `action`, fields
/// indented by 16), whose fields after its name are `cluster` (indented by 4).
fn bootstrap(cluster: &str, action: &str) -> String {
    let route = format!(
        "              - match: {{ prefix: \"/\" }}\n                route:\n                  cluster: app\n{action}"
    );
    format!("{}  - name: app\n{cluster}", listener("", &route))
}

/// A load assignment with one endpoint (indented for a cluster field).
const LA: &str = "    load_assignment: { cluster_name: app, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } } }] }] }\n";

fn cluster(fields: &str) -> Cluster {
    let config = load(&bootstrap(&format!("{fields}{LA}"), ""));
    config.clusters.into_iter().next().expect("a cluster")
}

/// The errors of a cluster with these fields (and the one-endpoint assignment).
fn cluster_errors(fields: &str) -> Vec<String> {
    errors(&bootstrap(&format!("{fields}{LA}"), ""))
}

/// The one error of a cluster with these fields, which must contain `needle`.
fn refused(fields: &str, needle: &str) {
    let e = cluster_errors(fields);
    assert!(
        e.len() == 1 && e[0].contains(needle),
        "expected one error with {needle:?}, got {e:?}"
    );
}

fn route_hash(action: &str) -> Vec<HashRule> {
    let config = load(&bootstrap(LA, action));
    config.listeners[0].virtual_hosts[0].routes[0]
        .hash_policy
        .clone()
}

#[test]
fn the_corpus_example_maps_priorities_localities_and_its_check() {
    let text = include_str!("../../../../tests/envoy/corpus/locality-load-balancing_envoy.yaml");
    let config = load(text);
    let c = &config.clusters[0];
    assert!(c.balancing.locality_weighted);
    assert_eq!(c.balancing.policy, LbPolicy::RoundRobin);
    assert_eq!(c.balancing.overprovisioning_factor, 140);
    assert_eq!(c.balancing.panic_threshold, 50.0);
    let Endpoints::Dns(dns) = &c.endpoints else {
        panic!("a STRICT_DNS cluster: {:?}", c.endpoints)
    };
    let seen: Vec<_> = dns
        .names
        .iter()
        .map(|n| {
            (
                n.host.as_str(),
                n.priority,
                n.locality.region.as_str(),
                n.locality.zone.as_str(),
                n.locality_weight,
                n.health_check_port,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("backend-local-1", 0, "local", "zone-1", Some(1), Some(8080)),
            ("backend-local-2", 1, "local", "zone-2", Some(1), Some(8080)),
            (
                "backend-remote-1",
                1,
                "remote",
                "zone-1",
                Some(1),
                Some(8080)
            ),
            (
                "backend-remote-2",
                2,
                "remote",
                "zone-2",
                Some(1),
                Some(8080)
            ),
        ]
    );
    assert!(!dns.respect_dns_ttl);
    let hc = c.health_check.as_ref().expect("a health check");
    assert_eq!(hc.interval, Duration::from_secs(2));
    assert_eq!(hc.timeout, Duration::from_secs(3));
    assert_eq!(hc.no_traffic_interval, Duration::from_secs(4));
    assert_eq!(hc.no_traffic_healthy_interval, Some(Duration::from_secs(4)));
    assert_eq!((hc.unhealthy_threshold, hc.healthy_threshold), (1, 1));
    assert_eq!(
        hc.kind,
        HealthCheckKind::Http(HttpCheck {
            host: None,
            path: "/".into(),
            method: "GET".into(),
            expected_statuses: vec![(200, 201)],
            retriable_statuses: vec![],
            request_headers: vec![],
            remove_headers: vec![],
        })
    );
    assert_eq!(c.outlier_detection, None);
}

#[test]
fn a_plain_cluster_gets_envoys_defaults() {
    let c = cluster("");
    assert_eq!(c.balancing, Balancing::default());
    assert_eq!(c.balancing.panic_threshold, 50.0);
    assert_eq!(c.balancing.overprovisioning_factor, 140);
    assert!(c.balancing.hash_on.is_empty());
    assert_eq!(c.health_check, None);
    assert_eq!(c.outlier_detection, None);
    let Endpoints::Static(endpoints) = &c.endpoints else {
        panic!("static")
    };
    assert_eq!(
        endpoints[0],
        Endpoint::new(Address::Tcp("127.0.0.1:8080".parse().unwrap()), 1)
    );
    assert_eq!(route_hash(""), []);
}

#[test]
fn policies_and_their_configs_map() {
    assert_eq!(
        cluster("    lb_policy: RANDOM\n").balancing.policy,
        LbPolicy::Random
    );
    assert_eq!(
        cluster("    lb_policy: ROUND_ROBIN\n    round_robin_lb_config: {}\n")
            .balancing
            .policy,
        LbPolicy::RoundRobin
    );
    assert_eq!(
        cluster("    lb_policy: LEAST_REQUEST\n").balancing.policy,
        LbPolicy::LeastRequest {
            choice_count: 2,
            active_request_bias: 1.0
        }
    );
    assert_eq!(
        cluster("    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { choice_count: 3, active_request_bias: { default_value: 0.5, runtime_key: lr.bias } }\n")
            .balancing
            .policy,
        LbPolicy::LeastRequest {
            choice_count: 3,
            active_request_bias: 0.5
        }
    );
    assert_eq!(
        cluster("    lb_policy: RING_HASH\n").balancing.policy,
        LbPolicy::RingHash {
            min_ring_size: 1024,
            max_ring_size: 8_388_608
        }
    );
    assert_eq!(
        cluster("    lb_policy: RING_HASH\n    ring_hash_lb_config: { minimum_ring_size: 64, maximum_ring_size: 4096, hash_function: XX_HASH }\n")
            .balancing
            .policy,
        LbPolicy::RingHash {
            min_ring_size: 64,
            max_ring_size: 4096
        }
    );
    assert_eq!(
        cluster("    lb_policy: MAGLEV\n").balancing.policy,
        LbPolicy::Maglev { table_size: 65537 }
    );
    assert_eq!(
        cluster("    lb_policy: MAGLEV\n    maglev_lb_config: { table_size: 251 }\n")
            .balancing
            .policy,
        LbPolicy::Maglev { table_size: 251 }
    );
    let common = cluster(
        "    common_lb_config: { healthy_panic_threshold: { value: 25.5 }, locality_weighted_lb_config: {}, update_merge_window: 2s }\n",
    );
    assert_eq!(common.balancing.panic_threshold, 25.5);
    assert!(common.balancing.locality_weighted);
    assert_eq!(
        cluster("    common_lb_config: { healthy_panic_threshold: {} }\n")
            .balancing
            .panic_threshold,
        0.0,
        "an empty Percent is 0: panic mode off"
    );
}

#[test]
fn policy_refusals_name_the_field() {
    refused(
        "    lb_policy: LOAD_BALANCING_POLICY_CONFIG\n",
        "clusters[0].lb_policy: lb_policy LOAD_BALANCING_POLICY_CONFIG is not supported yet",
    );
    refused(
        "    lb_policy: RING_HASH\n    ring_hash_lb_config: { hash_function: MURMUR_HASH_2 }\n",
        "ring_hash_lb_config.hash_function: hash_function MURMUR_HASH_2 is not supported yet (XX_HASH is)",
    );
    refused(
        "    lb_policy: RING_HASH\n    ring_hash_lb_config: { minimum_ring_size: 4096, maximum_ring_size: 1024 }\n",
        "ring_hash_lb_config.minimum_ring_size: minimum_ring_size (4096) > maximum_ring_size (1024)",
    );
    refused(
        "    lb_policy: MAGLEV\n    maglev_lb_config: { table_size: 65536 }\n",
        "maglev_lb_config.table_size: the Maglev table_size must be a prime number, found 65536",
    );
    refused(
        "    lb_policy: MAGLEV\n    least_request_lb_config: { choice_count: 3 }\n",
        "clusters[0].least_request_lb_config: `least_request_lb_config` does not apply to lb_policy MAGLEV",
    );
    refused(
        "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { active_request_bias: { default_value: -1, runtime_key: k } }\n",
        "active_request_bias.default_value: active_request_bias must be at least 0",
    );
    refused(
        "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { slow_start_config: {} }\n",
        "`slow_start_config`",
    );
    refused(
        "    common_lb_config: { zone_aware_lb_config: {} }\n",
        "common_lb_config.zone_aware_lb_config: zone_aware_lb_config is not supported yet",
    );
    refused(
        "    common_lb_config: { consistent_hashing_lb_config: { use_hostname_for_hashing: true } }\n",
        "common_lb_config.consistent_hashing_lb_config: consistent_hashing_lb_config is not supported yet",
    );
    refused(
        "    common_lb_config: { ignore_new_hosts_until_first_hc: true }\n",
        "`ignore_new_hosts_until_first_hc`",
    );
    // Envoy's validation rules.
    refused(
        "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { choice_count: 1 }\n",
        "choice_count",
    );
    refused(
        "    common_lb_config: { healthy_panic_threshold: { value: 101 } }\n",
        "healthy_panic_threshold.value",
    );
    refused(
        "    lb_policy: MAGLEV\n    maglev_lb_config: { table_size: 5000012 }\n",
        "table_size",
    );
}

/// A STATIC cluster with these `endpoints` items (LocalityLbEndpoints, indented by 6).
fn assignment(groups: &str) -> String {
    bootstrap(
        &format!("    load_assignment:\n      cluster_name: app\n{groups}"),
        "",
    )
}

fn ep(ip: &str) -> String {
    format!(
        "{{ endpoint: {{ address: {{ socket_address: {{ address: {ip}, port_value: 80 }} }} }} }}"
    )
}

#[test]
fn endpoints_carry_priority_locality_health_hostname_and_check_port() {
    let text = assignment(&format!(
        "      policy: {{ overprovisioning_factor: 100 }}\n      endpoints:\n      - locality: {{ region: eu, zone: eu-1, sub_zone: rack-2 }}\n        load_balancing_weight: 3\n        lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: 10.0.0.1, port_value: 80 }} }}, hostname: web-1, health_check_config: {{ port_value: 8081 }} }}\n          load_balancing_weight: 7\n          health_status: DRAINING\n        - {}\n      - priority: 1\n        lb_endpoints:\n        - {{ endpoint: {{ address: {{ socket_address: {{ address: 10.0.0.3, port_value: 80 }} }} }}, health_status: UNHEALTHY }}\n        - {{ endpoint: {{ address: {{ socket_address: {{ address: 10.0.0.4, port_value: 80 }} }} }}, health_status: TIMEOUT }}\n        - {{ endpoint: {{ address: {{ socket_address: {{ address: 10.0.0.5, port_value: 80 }} }} }}, health_status: DEGRADED }}\n        - {{ endpoint: {{ address: {{ socket_address: {{ address: 10.0.0.6, port_value: 80 }} }} }}, health_status: HEALTHY }}\n        - {{ endpoint: {{ address: {{ socket_address: {{ address: 10.0.0.7, port_value: 80 }} }} }}, health_status: UNKNOWN }}\n",
        ep("10.0.0.2")
    ));
    let config = load(&text);
    let c = &config.clusters[0];
    assert_eq!(c.balancing.overprovisioning_factor, 100);
    let Endpoints::Static(e) = &c.endpoints else {
        panic!("static")
    };
    let eu = Locality {
        region: "eu".into(),
        zone: "eu-1".into(),
        sub_zone: "rack-2".into(),
    };
    assert_eq!(
        e[0],
        Endpoint {
            address: Address::Tcp("10.0.0.1:80".parse().unwrap()),
            weight: 7,
            priority: 0,
            locality: eu.clone(),
            locality_weight: Some(3),
            health: DeclaredHealth::Draining,
            hostname: Some("web-1".into()),
            health_check_port: Some(8081),
        }
    );
    assert_eq!(
        (e[1].locality.clone(), e[1].locality_weight, e[1].weight),
        (eu, Some(3), 1)
    );
    let p1: Vec<_> = e[2..].iter().map(|e| (e.priority, e.health)).collect();
    assert_eq!(
        p1,
        [
            (1, DeclaredHealth::Unhealthy),
            (1, DeclaredHealth::Unhealthy),
            (1, DeclaredHealth::Degraded),
            (1, DeclaredHealth::Healthy),
            (1, DeclaredHealth::Healthy),
        ]
    );
    assert_eq!(
        (e[2].locality.clone(), e[2].locality_weight),
        (Locality::default(), None)
    );
}

#[test]
fn endpoint_refusals_name_the_field() {
    let gap = assignment(&format!(
        "      endpoints:\n      - lb_endpoints: [{}]\n      - priority: 2\n        lb_endpoints: [{}]\n",
        ep("10.0.0.1"),
        ep("10.0.0.2")
    ));
    assert_eq!(
        errors(&gap),
        ["envoy.yaml:29:9: static_resources.clusters[0].load_assignment.endpoints: priorities go from 0 without gaps: priority 1 has no endpoints, but priority 2 has"]
    );
    let weights = assignment(&format!(
        "      endpoints:\n      - locality: {{ zone: a }}\n        load_balancing_weight: 1\n        lb_endpoints: [{}]\n      - locality: {{ zone: a }}\n        load_balancing_weight: 2\n        lb_endpoints: [{}]\n",
        ep("10.0.0.1"),
        ep("10.0.0.2")
    ));
    let e = errors(&weights);
    assert!(
        e.len() == 1 && e[0].contains("endpoints[1].lb_endpoints[0].endpoint.address: locality \"/a\" at priority 0 has two weights (1 and 2)"),
        "{e:?}"
    );
    let hc_host = assignment(
        "      endpoints:\n      - lb_endpoints:\n        - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } }, health_check_config: { hostname: probe.local } }\n",
    );
    let e = errors(&hc_host);
    assert!(
        e.len() == 1
            && e[0].contains("health_check_config.hostname: unsupported")
            && e[0].contains("`hostname`"),
        "{e:?}"
    );
    let stale = assignment(&format!(
        "      policy: {{ endpoint_stale_after: 5s }}\n      endpoints:\n      - lb_endpoints: [{}]\n",
        ep("10.0.0.1")
    ));
    assert!(errors(&stale)[0].contains("`endpoint_stale_after`"));
    // Envoy's validation rules: at most 128.
    let high = assignment(&format!(
        "      endpoints:\n      - priority: 129\n        lb_endpoints: [{}]\n",
        ep("10.0.0.1")
    ));
    assert!(errors(&high)[0].contains("endpoints[0].priority"));
}

const DNS_LA: &str = "    type: STRICT_DNS\n    load_assignment:\n      cluster_name: app\n      endpoints:\n      - lb_endpoints:\n";

#[test]
fn dns_clusters_take_no_declared_health_or_other_hostname() {
    let config = load(&bootstrap(
        &format!("    respect_dns_ttl: true\n{DNS_LA}        - endpoint: {{ address: {{ socket_address: {{ address: web.internal, port_value: 80 }} }}, hostname: web.internal }}\n          health_status: HEALTHY\n"),
        "",
    ));
    let Endpoints::Dns(dns) = &config.clusters[0].endpoints else {
        panic!("dns")
    };
    assert!(dns.respect_dns_ttl);
    assert_eq!(dns.names, [DnsName::new("web.internal".into(), 80, 1)]);
    let e = errors(&bootstrap(
        &format!("{DNS_LA}        - endpoint: {{ address: {{ socket_address: {{ address: web.internal, port_value: 80 }} }}, hostname: other }}\n          health_status: DRAINING\n"),
        "",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains(
            "lb_endpoints[0].endpoint.hostname: a DNS cluster's endpoint is named by its address"
        ),
        "{e:?}"
    );
    assert!(e[1].contains("lb_endpoints[0].health_status: health_status other than UNKNOWN and HEALTHY is not supported yet on STRICT_DNS"), "{e:?}");
}

const HC: &str = "    health_checks:\n    - timeout: 1s\n      interval: 5s\n      unhealthy_threshold: 3\n      healthy_threshold: 2\n";

#[test]
fn health_checks_map_every_field() {
    let c = cluster(&format!(
        "{HC}      interval_jitter: 1s\n      interval_jitter_percent: 10\n      initial_jitter: 2s\n      no_traffic_interval: 30s\n      no_traffic_healthy_interval: 90s\n      unhealthy_interval: 7s\n      unhealthy_edge_interval: 3s\n      healthy_edge_interval: 4s\n      always_log_health_check_failures: true\n      reuse_connection: false\n      http_health_check:\n        host: health.local\n        path: /healthz\n        method: HEAD\n        response_buffer_size: 1024\n        codec_client_type: HTTP1\n        expected_statuses: [{{ start: 200, end: 300 }}, {{ start: 404, end: 405 }}]\n        retriable_statuses: [{{ start: 503, end: 504 }}]\n        request_headers_to_add: [{{ header: {{ key: X-Probe, value: \"1\" }}, append_action: OVERWRITE_IF_EXISTS_OR_ADD }}]\n        request_headers_to_remove: [User-Agent]\n"
    ));
    assert_eq!(
        c.health_check,
        Some(HealthCheck {
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(5),
            interval_jitter: Duration::from_secs(1),
            interval_jitter_percent: 10,
            initial_jitter: Duration::from_secs(2),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            no_traffic_interval: Duration::from_secs(30),
            no_traffic_healthy_interval: Some(Duration::from_secs(90)),
            unhealthy_interval: Some(Duration::from_secs(7)),
            unhealthy_edge_interval: Some(Duration::from_secs(3)),
            healthy_edge_interval: Some(Duration::from_secs(4)),
            always_log_failures: true,
            reuse_connection: false,
            kind: HealthCheckKind::Http(HttpCheck {
                host: Some("health.local".into()),
                path: "/healthz".into(),
                method: "HEAD".into(),
                expected_statuses: vec![(200, 300), (404, 405)],
                retriable_statuses: vec![(503, 504)],
                request_headers: vec![("x-probe".into(), "1".into())],
                remove_headers: vec!["user-agent".into()],
            }),
        })
    );
    let tcp = cluster(&format!(
        "{HC}      tcp_health_check: {{ send: {{ text: \"50494E47\" }}, receive: [{{ text: 504f4e47 }}, {{ binary: T0s= }}] }}\n"
    ));
    let hc = tcp.health_check.expect("a check");
    assert_eq!(hc.no_traffic_interval, Duration::from_secs(60));
    assert!(hc.reuse_connection, "Envoy's default");
    assert_eq!(hc.interval_jitter, Duration::ZERO);
    assert_eq!(
        hc.kind,
        HealthCheckKind::Tcp(TcpCheck {
            send: b"PING".to_vec(),
            receive: vec![b"PONG".to_vec(), b"OK".to_vec()],
        })
    );
    let connect_only = cluster(&format!("{HC}      tcp_health_check: {{}}\n"));
    assert_eq!(
        connect_only.health_check.expect("a check").kind,
        HealthCheckKind::Tcp(TcpCheck::default())
    );
}

#[test]
fn health_check_refusals_name_the_field() {
    let http = "      http_health_check: { path: /h }\n";
    refused(
        &format!("{HC}      grpc_health_check: {{}}\n"),
        "health_checks[0].grpc_health_check: gRPC health checks are not supported yet",
    );
    refused(
        &format!("{HC}      custom_health_check: {{ name: x }}\n"),
        "health_checks[0].custom_health_check: custom health checkers are not supported yet",
    );
    refused(
        &format!("{HC}{http}      alt_port: 9000\n"),
        "health_checks[0].alt_port: alt_port is not supported yet",
    );
    refused(
        &format!("{HC}{http}      event_log_path: /tmp/hc.log\n"),
        "health_checks[0].event_log_path: event_log_path is not supported yet",
    );
    refused(
        &format!("{HC}{http}      transport_socket_match_criteria: {{ a: b }}\n"),
        "health_checks[0].transport_socket_match_criteria: transport_socket_match_criteria is not supported yet",
    );
    refused(
        &format!("{HC}{http}    - timeout: 1s\n      interval: 1s\n      unhealthy_threshold: 1\n      healthy_threshold: 1\n{http}"),
        "health_checks[1]: more than one health check is not supported yet",
    );
    refused(
        &format!("{HC}      http_health_check: {{ path: /h, codec_client_type: HTTP2 }}\n"),
        "http_health_check.codec_client_type: codec_client_type HTTP2 is not supported yet",
    );
    refused(
        &format!(
            "{HC}      http_health_check: {{ path: /h, service_name_matcher: {{ exact: a }} }}\n"
        ),
        "`service_name_matcher`",
    );
    refused(
        &format!("{HC}      http_health_check: {{ path: /h, receive: [{{ text: 4f4b }}] }}\n"),
        "`receive`",
    );
    refused(
        &format!("{HC}      http_health_check: {{ path: /h, expected_statuses: [{{ start: 200, end: 200 }}] }}\n"),
        "expected_statuses[0].start: a status range is [start, end) with 100 <= start < end <= 600, found [200, 200)",
    );
    refused(
        &format!("{HC}      http_health_check: {{ path: /h, request_headers_to_add: [{{ header: {{ key: x-node, value: \"%HOSTNAME%\" }} }}] }}\n"),
        "request_headers_to_add[0].header.value: `%` formatters in health-check headers are not supported yet",
    );
    refused(
        &format!("{HC}      tcp_health_check: {{ send: {{ text: xyz1 }} }}\n"),
        "tcp_health_check.send.text: \"xyz1\" is not hex",
    );
    refused(
        "    health_checks:\n    - timeout: 1s\n      interval: 5s\n      unhealthy_threshold: 0\n      healthy_threshold: 1\n      tcp_health_check: {}\n",
        "health_checks[0].unhealthy_threshold: unhealthy_threshold must be at least 1",
    );
    // Envoy's validation rules: the four required fields, a checker, no CONNECT.
    let required = [
        ("timeout", "1s"),
        ("interval", "5s"),
        ("unhealthy_threshold", "3"),
        ("healthy_threshold", "2"),
    ];
    for (missing, _) in required {
        let fields: String = required
            .iter()
            .filter(|(k, _)| *k != missing)
            .map(|(k, v)| format!("{k}: {v}, "))
            .collect();
        let e = cluster_errors(&format!(
            "    health_checks: [{{ {fields}http_health_check: {{ path: /h }} }}]\n"
        ));
        assert!(
            e.len() == 1 && e[0].contains(&format!("health_checks[0].{missing}")),
            "{missing}: {e:?}"
        );
    }
    refused(HC, "one of `http_health_check`, `tcp_health_check`");
    refused(
        &format!("{HC}      http_health_check: {{ path: /h, method: CONNECT }}\n"),
        "http_health_check.method: a health check cannot use CONNECT",
    );
}

#[test]
fn outlier_detection_maps_every_field_with_envoys_defaults() {
    let c = cluster("    outlier_detection: {}\n");
    assert_eq!(c.outlier_detection, Some(OutlierDetection::default()));
    let c = cluster(
        "    outlier_detection:\n      consecutive_5xx: 3\n      interval: 5s\n      base_ejection_time: 10s\n      max_ejection_percent: 50\n      enforcing_consecutive_5xx: 90\n      enforcing_success_rate: 80\n      success_rate_minimum_hosts: 4\n      success_rate_request_volume: 60\n      success_rate_stdev_factor: 1500\n      consecutive_gateway_failure: 2\n      enforcing_consecutive_gateway_failure: 70\n      split_external_local_origin_errors: true\n      consecutive_local_origin_failure: 6\n      enforcing_consecutive_local_origin_failure: 60\n      enforcing_local_origin_success_rate: 50\n      failure_percentage_threshold: 40\n      enforcing_failure_percentage: 30\n      enforcing_failure_percentage_local_origin: 20\n      failure_percentage_minimum_hosts: 3\n      failure_percentage_request_volume: 25\n      max_ejection_time: 100s\n      max_ejection_time_jitter: 1s\n      successful_active_health_check_uneject_host: false\n      always_eject_one_host: true\n",
    );
    assert_eq!(
        c.outlier_detection,
        Some(OutlierDetection::every_field_set())
    );
    // Without max_ejection_time: the larger of 300 s and base_ejection_time.
    let long = cluster("    outlier_detection: { base_ejection_time: 600s }\n");
    assert_eq!(
        long.outlier_detection.expect("set").max_ejection_time,
        Duration::from_secs(600)
    );
}

#[test]
fn outlier_detection_refusals_name_the_field() {
    // `consecutive_5xx: 0` is accepted (it never fires, as in Envoy; Istio writes it).
    refused(
        "    outlier_detection: { base_ejection_time: 60s, max_ejection_time: 30s }\n",
        "outlier_detection.max_ejection_time: max_ejection_time (30s) cannot be smaller than base_ejection_time (60s)",
    );
    refused(
        "    outlier_detection: { detect_degraded_hosts: true }\n",
        "`detect_degraded_hosts`",
    );
    // Envoy's validation rules.
    refused(
        "    outlier_detection: { max_ejection_percent: 101 }\n",
        "max_ejection_percent",
    );
}

#[test]
fn route_hash_policies_map() {
    let rules = route_hash(
        "                  hash_policy:\n                  - header: { header_name: X-User }\n                  - cookie: { name: sticky, ttl: 3600s, path: /app }\n                    terminal: true\n                  - cookie: { name: plain }\n                  - connection_properties: { source_ip: true }\n                  - connection_properties: { source_ip: false }\n                  - query_parameter: { name: user }\n                  - header: { header_name: \":authority\" }\n",
    );
    assert_eq!(
        rules,
        [
            HashRule {
                source: HashSource::Header("x-user".into()),
                terminal: false
            },
            HashRule {
                source: HashSource::Cookie {
                    name: "sticky".into(),
                    ttl: Some(Duration::from_secs(3600)),
                    path: Some("/app".into())
                },
                terminal: true
            },
            HashRule {
                source: HashSource::Cookie {
                    name: "plain".into(),
                    ttl: None,
                    path: None
                },
                terminal: false
            },
            HashRule {
                source: HashSource::SourceIp,
                terminal: false
            },
            HashRule {
                source: HashSource::Query("user".into()),
                terminal: false
            },
            HashRule {
                source: HashSource::Header("host".into()),
                terminal: false
            },
        ]
    );
}

#[test]
fn route_hash_refusals_name_the_field() {
    let one = |policy: &str| {
        let e = errors(&bootstrap(
            LA,
            &format!("                  hash_policy: [{policy}]\n"),
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        e[0].clone()
    };
    assert!(one("{ filter_state: { key: k } }")
        .contains("hash_policy[0].filter_state: hash_policy filter_state is not supported yet"));
    assert!(one("{ cookie: { name: c, attributes: [{ name: a }] } }")
        .contains("hash_policy[0].cookie.attributes: unsupported"));
    assert!(one(
        "{ header: { header_name: x, regex_rewrite: { pattern: { regex: a }, substitution: b } } }"
    )
    .contains("hash_policy[0].header.regex_rewrite: unsupported"));
    assert!(one("{ header: { header_name: \":path\" } }")
        .contains("hash_policy[0].header.header_name: hashing on the pseudo-header :path is not supported yet"));
}

#[test]
fn config_parse_keeps_envoy_format() {
    // The cluster settings survive a round trip through the public loader.
    let text = bootstrap(&format!("    lb_policy: RANDOM\n{LA}"), "");
    let config = Config::parse(&text, std::path::Path::new("envoy.yaml")).expect("loads");
    assert_eq!(config.clusters[0].balancing.policy, LbPolicy::Random);
}
