//! Native `retry`, `mirror`, `max_stream_duration`, `priority`, `attempt_count` and
//! `circuit_breakers`: every key mapped, the defaults, and each refusal at its position.

use std::path::Path;
use std::time::Duration;

use crate::config::model::*;
use crate::config::resilience::*;
use crate::config::Config;

fn parse(text: &str) -> Result<Config, Vec<String>> {
    Config::parse(text, Path::new("t.yaml"))
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

/// One listener routing `/` to cluster `api` (route keys `route`, indented by 8), and
/// clusters `api` (with `keys`, indented by 4) and `shadow`.
fn file(route: &str, keys: &str) -> String {
    format!(
        "listeners:\n  - name: l\n    address: 127.0.0.1:8080\n    routes:\n      - match: {{ prefix: / }}\n        cluster: api\n{route}clusters:\n  - name: api\n    endpoints: [10.0.0.1:80]\n{keys}  - name: shadow\n    endpoints: [10.0.0.2:80]\n"
    )
}

fn route(keys: &str) -> Route {
    match parse(&file(keys, "")) {
        Ok(mut c) => c.listeners.remove(0).routes.remove(0),
        Err(e) => panic!("{e:?}"),
    }
}

fn cluster(keys: &str) -> Cluster {
    match parse(&file("", keys)) {
        Ok(mut c) => c.clusters.remove(0),
        Err(e) => panic!("{e:?}"),
    }
}

/// The one error of a file with these route and cluster keys, which must contain
/// every needle.
fn refused(route: &str, keys: &str, needles: &[&str]) {
    let e = match parse(&file(route, keys)) {
        Ok(_) => panic!("expected an error, but it loads"),
        Err(e) => e,
    };
    assert!(
        e.len() == 1 && needles.iter().all(|n| e[0].contains(n)),
        "expected one error with {needles:?}, got {e:?}"
    );
}

#[test]
fn a_route_without_the_keys_has_no_retry_mirror_or_limit() {
    let r = route("");
    assert_eq!(r.retry, None);
    assert!(r.mirrors.is_empty());
    assert_eq!(r.max_stream_duration, None);
    assert_eq!(r.priority, Priority::Default);
    assert_eq!(r.attempt_count, AttemptCount::default());
    assert_eq!(cluster("").circuit_breakers, CircuitBreakers::default());
}

#[test]
fn a_minimal_retry_gets_the_native_defaults() {
    let r = route("        retry: { on: [connect-failure, 5xx] }\n");
    let p = r.retry.expect("a retry policy");
    assert_eq!(
        p,
        RetryPolicy {
            other_host: true,
            host_selection_attempts: 3,
            methods: RetryMethods::Idempotent,
            ..RetryPolicy::new(RetryOn::CONNECT_FAILURE | RetryOn::FIVE_XX)
        }
    );
    assert_eq!(p.num_retries, 1);
    assert_eq!(
        p.backoff,
        Backoff {
            base: Duration::from_millis(25),
            max: Duration::from_millis(250)
        }
    );
    assert_eq!(p.rate_limited, None);
}

#[test]
fn every_retry_key_maps() {
    let r = route(concat!(
        "        retry:\n",
        "          on: \"reset, gateway-error,retriable-4xx\"\n",
        "          retries: 4\n",
        "          per_try_timeout: 2s\n",
        "          per_try_idle_timeout: 500ms\n",
        "          status_codes: [503, 429]\n",
        "          response_headers: [{ name: X-Retry, exact: yes }]\n",
        "          request_headers: [{ name: x-idem, present: true }]\n",
        "          backoff: { base: 10ms, max: 1s }\n",
        "          retry_after:\n",
        "            headers: [{ name: Retry-After }, { name: x-ratelimit-reset, format: unix_timestamp }]\n",
        "            max_interval: 1m\n",
        "          other_host: false\n",
        "          host_selection_attempts: 5\n",
        "          retry_non_idempotent: true\n",
        "          hedge: true\n",
    ));
    let p = r.retry.expect("a retry policy");
    assert_eq!(
        p,
        RetryPolicy {
            retry_on: RetryOn::RESET
                | RetryOn::GATEWAY_ERROR
                | RetryOn::RETRIABLE_4XX
                | RetryOn::RETRIABLE_STATUS_CODES
                | RetryOn::RETRIABLE_HEADERS,
            num_retries: 4,
            per_try_timeout: Some(Duration::from_secs(2)),
            per_try_idle_timeout: Some(Duration::from_millis(500)),
            hedge_on_per_try_timeout: true,
            status_codes: vec![503, 429],
            response_headers: vec![HeaderMatch {
                name: "x-retry".into(),
                value: ValueMatch::Exact("yes".into())
            }],
            request_headers: vec![HeaderMatch {
                name: "x-idem".into(),
                value: ValueMatch::Present(true)
            }],
            backoff: Backoff {
                base: Duration::from_millis(10),
                max: Duration::from_secs(1)
            },
            rate_limited: Some(RateLimitedBackoff {
                reset_headers: vec![
                    ResetHeader {
                        name: "retry-after".into(),
                        format: ResetFormat::Seconds
                    },
                    ResetHeader {
                        name: "x-ratelimit-reset".into(),
                        format: ResetFormat::UnixTimestamp
                    },
                ],
                max_interval: Duration::from_secs(60),
            }),
            other_host: false,
            host_selection_attempts: 5,
            methods: RetryMethods::Any,
            buffer_limit: RetryPolicy::DEFAULT_BUFFER_LIMIT,
        }
    );
}

#[test]
fn retry_after_true_reads_retry_after_up_to_300s() {
    let p = route("        retry: { on: [5xx], retry_after: true }\n")
        .retry
        .expect("retry");
    assert_eq!(
        p.rate_limited,
        Some(RateLimitedBackoff {
            reset_headers: vec![ResetHeader {
                name: "retry-after".into(),
                format: ResetFormat::Seconds
            }],
            max_interval: Duration::from_secs(300),
        })
    );
    let p = route("        retry: { on: [5xx], retry_after: false }\n")
        .retry
        .expect("retry");
    assert_eq!(p.rate_limited, None);
    let p = route("        retry: { on: [5xx], retry_after: { max_interval: 5s } }\n")
        .retry
        .expect("retry");
    let rl = p.rate_limited.expect("rate limited");
    assert_eq!(rl.reset_headers[0].name, "retry-after");
    assert_eq!(rl.max_interval, Duration::from_secs(5));
}

#[test]
fn status_codes_alone_imply_their_condition_and_backoff_max_defaults_to_ten_bases() {
    let p = route("        retry: { status_codes: [503], backoff: { base: 100ms } }\n")
        .retry
        .expect("retry");
    assert_eq!(p.retry_on, RetryOn::RETRIABLE_STATUS_CODES);
    assert_eq!(p.backoff.max, Duration::from_secs(1));
    let p = route("        retry: { on: [connect-failure], retries: 0 }\n")
        .retry
        .expect("retry");
    assert_eq!(p.num_retries, 0);
}

#[test]
fn retry_refusals_name_the_key() {
    let cases: &[(&str, &[&str])] = &[
        ("retry: {}", &["needs `on`"]),
        (
            "retry: { on: [5xy] }",
            &["unknown retry condition \"5xy\"", "5xx"],
        ),
        ("retry: { on: \"5xx,bogus\" }", &["\"bogus\""]),
        (
            "retry: { on: [5xx], retries: 101 }",
            &["retries", "0 to 100"],
        ),
        ("retry: { on: [5xx], retries: -1 }", &["0 to 100"]),
        (
            "retry: { on: [5xx], per_try_timeout: 0s }",
            &["greater than zero"],
        ),
        ("retry: { on: [5xx], status_codes: [99] }", &["100 to 599"]),
        ("retry: { on: [5xx], status_codes: [600] }", &["100 to 599"]),
        (
            "retry: { on: [5xx], response_headers: [{ name: x }] }",
            &["needs one of"],
        ),
        (
            "retry: { on: [5xx], request_headers: [{ name: \"a b\", present: true }] }",
            &["not a valid header name"],
        ),
        (
            "retry: { on: [5xx], backoff: { base: 0ms } }",
            &["greater than zero"],
        ),
        (
            "retry: { on: [5xx], backoff: { base: 1s, max: 10ms } }",
            &["shorter than `base`"],
        ),
        ("retry: { on: [5xx], backoff: { min: 1s } }", &["min"]),
        (
            "retry: { on: [5xx], retry_after: yes }",
            &["true, false, or a mapping"],
        ),
        (
            "retry: { on: [5xx], retry_after: { headers: [] } }",
            &["at least one header"],
        ),
        (
            "retry: { on: [5xx], retry_after: { headers: [{ name: x, format: ms }] } }",
            &["unknown value \"ms\""],
        ),
        ("retry: { on: [5xx], other_host: 1 }", &["true or false"]),
        (
            "retry: { on: [5xx], host_selection_attempts: 0 }",
            &["1 to 100"],
        ),
        (
            "retry: { on: [5xx], retry_non_idempotent: maybe }",
            &["true or false"],
        ),
        ("retry: { on: [5xx], retry_on: [5xx] }", &["retry_on"]),
    ];
    for (keys, needles) in cases {
        refused(&format!("        {keys}\n"), "", needles);
    }
}

#[test]
fn a_match_condition_in_response_headers_is_checked_like_a_routes() {
    let p = route("        retry: { on: [retriable-headers], response_headers: [{ name: x-a, regex: \"re.*\" }, { name: x-b, prefix: p }] }\n")
        .retry
        .expect("retry");
    assert_eq!(
        p.response_headers[0].value,
        ValueMatch::Regex("re.*".into())
    );
    assert_eq!(p.response_headers[1].value, ValueMatch::Prefix("p".into()));
}

#[test]
fn mirrors_map_with_whole_and_decimal_percentages() {
    let r = route(concat!(
        "        mirror:\n",
        "          - cluster: shadow\n",
        "          - { cluster: shadow, percent: 25, keep_host: true }\n",
        "          - { cluster: shadow, percent: 0.5 }\n",
        "          - { cluster: shadow, percent: 12.3456 }\n",
    ));
    assert_eq!(
        r.mirrors,
        vec![
            Mirror {
                cluster: "shadow".into(),
                fraction: Fraction::ALL,
                keep_host: false
            },
            Mirror {
                cluster: "shadow".into(),
                fraction: Fraction {
                    numerator: 25,
                    denominator: 100
                },
                keep_host: true
            },
            Mirror {
                cluster: "shadow".into(),
                fraction: Fraction {
                    numerator: 5_000,
                    denominator: 1_000_000
                },
                keep_host: false
            },
            Mirror {
                cluster: "shadow".into(),
                fraction: Fraction {
                    numerator: 123_456,
                    denominator: 1_000_000
                },
                keep_host: false
            },
        ]
    );
}

#[test]
fn mirror_refusals_name_the_key() {
    let cases: &[(&str, &[&str])] = &[
        ("mirror: [{ cluster: shadw }]", &["shadw", "shadow"]),
        ("mirror: [{ percent: 5 }]", &["cluster"]),
        ("mirror: [{ cluster: shadow, percent: 101 }]", &["0 to 100"]),
        (
            "mirror: [{ cluster: shadow, percent: -0.5 }]",
            &["0 to 100"],
        ),
        (
            "mirror: [{ cluster: shadow, percent: 0.00001 }]",
            &["4 decimals"],
        ),
        (
            "mirror: [{ cluster: shadow, percent: half }]",
            &["a percentage"],
        ),
        (
            "mirror: [{ cluster: shadow, keep_host: 1 }]",
            &["true or false"],
        ),
        ("mirror: [{ cluster: shadow, host: x }]", &["host"]),
    ];
    for (keys, needles) in cases {
        refused(&format!("        {keys}\n"), "", needles);
    }
}

#[test]
fn stream_duration_priority_and_attempt_count_map() {
    let r = route(concat!(
        "        max_stream_duration: 30s\n",
        "        priority: high\n",
        "        attempt_count: { request: true, response: true }\n",
    ));
    assert_eq!(r.max_stream_duration, Some(Duration::from_secs(30)));
    assert_eq!(r.priority, Priority::High);
    assert_eq!(
        r.attempt_count,
        AttemptCount {
            request: true,
            response: true
        }
    );
    let r = route("        attempt_count: { response: true }\n        priority: default\n");
    assert_eq!(
        r.attempt_count,
        AttemptCount {
            request: false,
            response: true
        }
    );
    assert_eq!(r.priority, Priority::Default);
    for (keys, needles) in [
        ("max_stream_duration: 0s", &["greater than zero"][..]),
        ("priority: urgent", &["\"urgent\"", "`high`"]),
        ("attempt_count: { upstream: true }", &["upstream"]),
        ("attempt_count: { request: yes }", &["true or false"]),
    ] {
        refused(&format!("        {keys}\n"), "", needles);
    }
}

#[test]
fn the_keys_apply_only_to_routes_with_a_cluster() {
    let text = "listeners:\n  - name: l\n    address: 127.0.0.1:8080\n    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n        retry: { on: [5xx] }\n        priority: high\n";
    let e = parse(text).expect_err("refused");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].contains("`retry` applies only to routes with a `cluster`"));
    assert!(e[1].contains("`priority` applies only"));
}

#[test]
fn every_circuit_breaker_key_maps_and_unset_ones_keep_envoys_defaults() {
    let c = cluster(concat!(
        "    circuit_breakers:\n",
        "      default:\n",
        "        max_connections: 10\n",
        "        max_pending_requests: 0\n",
        "        max_requests: 30\n",
        "        max_retries: 4\n",
        "        retry_budget: { percent: 12.5, min_concurrency: 1 }\n",
        "        track_remaining: true\n",
        "      high: { max_requests: 5000, retry_budget: {} }\n",
    ));
    assert_eq!(
        c.circuit_breakers.thresholds,
        [
            Thresholds::every_field_set(),
            Thresholds {
                max_requests: 5000,
                retry_budget: Some(RetryBudget::default()),
                ..Thresholds::default()
            },
        ]
    );
    let c = cluster("    circuit_breakers: { high: { max_retries: 9 } }\n");
    assert_eq!(c.circuit_breakers.thresholds[0], Thresholds::default());
    assert_eq!(c.circuit_breakers.thresholds[1].max_retries, 9);
}

#[test]
fn circuit_breaker_refusals_name_the_key() {
    for (keys, needles) in [
        ("{ low: {} }", &["low"][..]),
        ("{ default: { max_connections: 0 } }", &["1 to 4294967295"]),
        ("{ default: { max_requests: 0 } }", &["1 to 4294967295"]),
        (
            "{ default: { max_pending_requests: -1 } }",
            &["0 to 4294967295"],
        ),
        (
            "{ default: { max_retries: 4294967296 } }",
            &["0 to 4294967295"],
        ),
        (
            "{ default: { retry_budget: { percent: 101 } } }",
            &["0 to 100"],
        ),
        (
            "{ default: { retry_budget: { percent: x } } }",
            &["a percentage"],
        ),
        (
            "{ default: { retry_budget: { min_concurrency: -1 } } }",
            &["0 to"],
        ),
        (
            "{ default: { retry_budget: { interval: 1s } } }",
            &["interval"],
        ),
        ("{ default: { track_remaining: 1 } }", &["true or false"]),
        (
            "{ high: { max_connection_pools: 1 } }",
            &["max_connection_pools"],
        ),
    ] {
        refused("", &format!("    circuit_breakers: {keys}\n"), needles);
    }
}

#[test]
fn the_reference_config_spells_out_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/reference.yaml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.cluster("orders").expect("orders").circuit_breakers,
        CircuitBreakers::default()
    );
    let r = config.listeners[0]
        .routes
        .iter()
        .find(|r| r.retry.is_some())
        .expect("a route with a retry policy");
    let p = r.retry.as_ref().expect("retry");
    let on = RetryOn::CONNECT_FAILURE
        | RetryOn::REFUSED_STREAM
        | RetryOn::FIVE_XX
        | RetryOn::RETRIABLE_STATUS_CODES;
    let defaults = route("        retry: { on: [5xx] }\n")
        .retry
        .expect("retry");
    assert_eq!(
        *p,
        RetryPolicy {
            retry_on: on,
            per_try_timeout: Some(Duration::from_secs(1)),
            per_try_idle_timeout: Some(Duration::from_millis(500)),
            status_codes: vec![503],
            ..defaults
        }
    );
    assert_eq!(r.max_stream_duration, Some(Duration::from_secs(300)));
    assert_eq!(r.priority, Priority::Default);
    assert_eq!(r.attempt_count, AttemptCount::default());
    assert!(!r.mirrors[0].keep_host);
}

#[test]
fn errors_carry_the_position_and_path() {
    let e = parse(&file("        retry: { on: [reset, 5xy] }\n", "")).expect_err("refused");
    assert_eq!(
        e,
        ["t.yaml:7:30: listeners[0].routes[0].retry.on[1]: unknown retry condition \"5xy\"; did you mean `5xx`? (Envoy's `retry_on` names)"]
    );
}
