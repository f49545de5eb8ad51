//! Envoy retry, hedge and mirror policies, stream duration, priority, attempt-count
//! flags and circuit breakers on byte strings: every field mapped, Envoy's defaults,
//! the virtual host's policies reaching its routes, each refusal naming its field, and
//! the load-time warning about non-idempotent retries.

use std::time::Duration;

use crate::config::envoy::retry::unsafe_retry_warnings;
use crate::config::envoy::tests::{errors, listener, load};
use crate::config::model::*;
use crate::config::resilience::*;

/// A bootstrap whose virtual host has `routes` (indented by 14, virtual-host fields
/// may follow them at that indentation) and clusters `app` (with `cluster`, fields
/// indented by 4) and `shadow`.
fn bootstrap(hcm_extra: &str, routes: &str, cluster: &str) -> String {
    let endpoint = |name: &str| {
        format!("    load_assignment: {{ cluster_name: {name}, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8080 }} }} }} }}] }}] }}\n")
    };
    format!(
        "{}  - name: app\n{cluster}{}  - name: shadow\n{}",
        listener(hcm_extra, routes),
        endpoint("app"),
        endpoint("shadow")
    )
}

/// One route to `app` whose route action also has `action` (a flow mapping's fields).
fn action(action: &str) -> String {
    format!("              - match: {{ prefix: / }}\n                route: {{ cluster: app, {action} }}\n")
}

fn routes(hcm_extra: &str, routes: &str) -> Vec<Route> {
    let mut config = load(&bootstrap(hcm_extra, routes, ""));
    let vh = config.listeners.remove(0).virtual_hosts.remove(0);
    vh.routes
}

fn route(action_fields: &str) -> Route {
    routes("", &action(action_fields)).remove(0)
}

fn retry(policy: &str) -> RetryPolicy {
    route(&format!("retry_policy: {{ {policy} }}"))
        .retry
        .expect("a retry policy")
}

/// The one error of a route action with these fields, which must contain every needle.
fn refused(action_fields: &str, needles: &[&str]) {
    let e = errors(&bootstrap("", &action(action_fields), ""));
    assert!(
        e.len() == 1 && needles.iter().all(|n| e[0].contains(n)),
        "expected one error with {needles:?}, got {e:?}"
    );
}

#[test]
fn a_route_without_policies_has_none() {
    let r = route("timeout: 1s");
    assert_eq!(r.retry, None);
    assert!(r.mirrors.is_empty());
    assert_eq!(r.max_stream_duration, None);
    assert_eq!(r.priority, Priority::Default);
    assert_eq!(r.attempt_count, AttemptCount::default());
}

#[test]
fn an_empty_retry_policy_gets_envoys_defaults() {
    assert_eq!(
        retry(""),
        RetryPolicy {
            retry_on: RetryOn::NONE,
            ..RetryPolicy::new(RetryOn::NONE)
        }
    );
    let p = retry("retry_on: 5xx");
    assert_eq!(p.num_retries, 1);
    assert_eq!(p.methods, RetryMethods::Any);
    assert!(!p.other_host);
    assert_eq!(
        p.host_selection_attempts, 2,
        "the first pick and one re-pick"
    );
    assert_eq!(
        p.backoff,
        Backoff {
            base: Duration::from_millis(25),
            max: Duration::from_millis(250)
        }
    );
}

#[test]
fn every_retry_field_maps() {
    let p = retry(concat!(
        "retry_on: \"5xx, gateway-error,reset,connect-failure,retriable-4xx,refused-stream,",
        "retriable-status-codes,retriable-headers,reset-before-request,envoy-ratelimited,",
        "http3-post-connect-failure,cancelled,deadline-exceeded,internal,resource-exhausted,unavailable\", ",
        "num_retries: 3, per_try_timeout: 0.25s, per_try_idle_timeout: 1s, ",
        "retriable_status_codes: [503, 429], ",
        "retriable_headers: [{ name: X-Upstream-Retry, string_match: { exact: yes } }], ",
        "retriable_request_headers: [{ name: \":method\", string_match: { exact: GET } }], ",
        "retry_back_off: { base_interval: 0.1s, max_interval: 2s }, ",
        "rate_limited_retry_back_off: { reset_headers: [{ name: Retry-After, format: SECONDS }, { name: x-ratelimit-reset, format: UNIX_TIMESTAMP }], max_interval: 60s }, ",
        "retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate } }], ",
        "host_selection_retry_max_attempts: 5"
    ));
    assert_eq!(
        p,
        RetryPolicy {
            retry_on: RetryOn((1 << 16) - 1),
            num_retries: 3,
            per_try_timeout: Some(Duration::from_millis(250)),
            per_try_idle_timeout: Some(Duration::from_secs(1)),
            hedge_on_per_try_timeout: false,
            status_codes: vec![503, 429],
            response_headers: vec![HeaderMatch {
                name: "x-upstream-retry".into(),
                value: ValueMatch::Exact("yes".into())
            }],
            request_headers: vec![HeaderMatch {
                name: ":method".into(),
                value: ValueMatch::Exact("GET".into())
            }],
            backoff: Backoff {
                base: Duration::from_millis(100),
                max: Duration::from_secs(2)
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
            other_host: true,
            host_selection_attempts: 6,
            methods: RetryMethods::Any,
            buffer_limit: RetryPolicy::DEFAULT_BUFFER_LIMIT,
        }
    );
}

#[test]
fn retry_defaults_inside_the_fields() {
    let p = retry("retry_on: reset, per_try_timeout: 0s, retry_back_off: { base_interval: 0.5s }, rate_limited_retry_back_off: { reset_headers: [{ name: retry-after }] }");
    assert_eq!(p.per_try_timeout, None, "zero: none, as in Envoy");
    assert_eq!(p.backoff.max, Duration::from_secs(5));
    let rl = p.rate_limited.expect("rate limited");
    assert_eq!(rl.max_interval, Duration::from_secs(300));
    assert_eq!(rl.reset_headers[0].format, ResetFormat::Seconds);
    // A predicate named without typed_config.
    let p = retry("retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts }]");
    assert!(p.other_host);
    let p = retry("num_retries: 0");
    assert_eq!(p.num_retries, 0);
    let p = retry("retry_back_off: { base_interval: 0.0005s }");
    assert_eq!(p.backoff.base, Duration::from_millis(1), "Envoy's floor");
}

#[test]
fn retry_refusals_name_the_field() {
    let cases: &[(&str, &[&str])] = &[
        (
            "retry_on: \"5xx,bogus\"",
            &["retry_policy.retry_on", "unknown retry condition \"bogus\""],
        ),
        ("retry_on: 5xy", &["\"5xy\"", "`5xx`"]),
        (
            "retriable_status_codes: [503, 99]",
            &["retriable_status_codes[1]", "99 is not an HTTP status code"],
        ),
        ("retriable_status_codes: [600]", &["600"]),
        ("retry_back_off: { max_interval: 1s }", &["base_interval"]),
        (
            "retry_back_off: { base_interval: 1s, max_interval: 0.5s }",
            &["retry_back_off.max_interval", "at least base_interval"],
        ),
        (
            "retry_priority: { name: envoy.retry_priorities.previous_priorities }",
            &["`retry_priority` of envoy.config.route.v3.RetryPolicy"],
        ),
        (
            "retry_options_predicates: [{ name: x, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate } }]",
            &["`retry_options_predicates`"],
        ),
        (
            "refresh_cluster_on_retry: true",
            &["`refresh_cluster_on_retry`"],
        ),
        (
            "retry_host_predicate: [{ name: envoy.retry_host_predicates.omit_canary_hosts }]",
            &["omit_canary_hosts", "not supported"],
        ),
        (
            "host_selection_retry_max_attempts: -1",
            &["host_selection_retry_max_attempts", "-1"],
        ),
        (
            "rate_limited_retry_back_off: { reset_headers: [{ name: \"a b\" }] }",
            &["reset_headers[0].name"],
        ),
    ];
    for (policy, needles) in cases {
        refused(&format!("retry_policy: {{ {policy} }}"), needles);
    }
    refused(
        "retry_policy_typed_config: { \"@type\": type.googleapis.com/envoy.config.route.v3.RetryPolicy }",
        &["retry_policy_typed_config"],
    );
}

#[test]
fn a_hosts_retry_policy_reaches_its_routes_and_a_routes_own_replaces_it() {
    let text = format!(
        "{}{}              retry_policy: {{ retry_on: connect-failure, num_retries: 4 }}\n              include_request_attempt_count: true\n              include_attempt_count_in_response: true\n",
        action("retry_policy: { retry_on: 5xx }"),
        "              - match: { prefix: /b }\n                route: { cluster: app }\n              - match: { prefix: /c }\n                direct_response: { status: 200 }\n",
    );
    let r = routes("", &text);
    let own = r[0].retry.as_ref().expect("own");
    assert_eq!((own.retry_on, own.num_retries), (RetryOn::FIVE_XX, 1));
    let host = r[1].retry.as_ref().expect("the host's");
    assert_eq!(
        (host.retry_on, host.num_retries),
        (RetryOn::CONNECT_FAILURE, 4)
    );
    let both = AttemptCount {
        request: true,
        response: true,
    };
    assert_eq!((r[0].attempt_count, r[1].attempt_count), (both, both));
    assert_eq!(r[2].retry, None, "a direct response forwards nothing");
    assert_eq!(r[2].attempt_count, AttemptCount::default());
}

#[test]
fn a_hedge_policy_sets_hedging_on_the_retry_policy() {
    route("hedge_policy: { initial_requests: 1, additional_request_chance: { numerator: 0 }, hedge_on_per_try_timeout: false }");
    let policy = "retry_policy: { retry_on: 5xx, per_try_timeout: 0.2s }";
    let r = route(&format!(
        "{policy}, hedge_policy: {{ hedge_on_per_try_timeout: true }}"
    ));
    assert!(r.retry.expect("a policy").hedge_on_per_try_timeout);
    assert!(
        !route(policy)
            .retry
            .expect("a policy")
            .hedge_on_per_try_timeout
    );
    // The host's hedge policy applies to its routes' retry policies, the route
    // action's replaces it.
    let with_host_hedge = |fields: &str| {
        let vh = format!(
            "{}              hedge_policy: {{ hedge_on_per_try_timeout: true }}\n",
            action(fields)
        );
        routes("", &vh).remove(0).retry.expect("a policy")
    };
    assert!(with_host_hedge(policy).hedge_on_per_try_timeout);
    let own = format!("{policy}, hedge_policy: {{ hedge_on_per_try_timeout: false }}");
    assert!(!with_host_hedge(&own).hedge_on_per_try_timeout);
    // Without a retry policy a hedge policy has nothing to act on (as in Envoy).
    assert_eq!(
        route("hedge_policy: { hedge_on_per_try_timeout: true }").retry,
        None
    );
    // What Envoy does not implement either is refused unless left at its default.
    refused(
        "hedge_policy: { initial_requests: 2 }",
        &["hedge_policy.initial_requests", "not supported"],
    );
    refused(
        "hedge_policy: { additional_request_chance: { numerator: 5 } }",
        &["additional_request_chance"],
    );
    let vh = format!(
        "{}              hedge_policy: {{ initial_requests: 3 }}\n",
        action("timeout: 1s")
    );
    let e = errors(&bootstrap("", &vh, ""));
    assert!(
        e.len() == 1 && e[0].contains("virtual_hosts[0].hedge_policy.initial_requests"),
        "{e:?}"
    );
}

#[test]
fn mirror_policies_map_with_their_fractions() {
    let r = route(concat!(
        "request_mirror_policies: [",
        "{ cluster: shadow }, ",
        "{ cluster: shadow, runtime_fraction: { default_value: { numerator: 25 } }, disable_shadow_host_suffix_append: true }, ",
        "{ cluster: shadow, runtime_fraction: { runtime_key: mirror.share, default_value: { numerator: 5, denominator: TEN_THOUSAND } }, trace_sampled: false }, ",
        "{ cluster: shadow, runtime_fraction: { default_value: { numerator: 2000000, denominator: MILLION } } }",
        "]"
    ));
    let fraction = |numerator, denominator| Fraction {
        numerator,
        denominator,
    };
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
                fraction: fraction(25, 100),
                keep_host: true
            },
            Mirror {
                cluster: "shadow".into(),
                fraction: fraction(5, 10_000),
                keep_host: false
            },
            Mirror {
                cluster: "shadow".into(),
                fraction: fraction(1_000_000, 1_000_000),
                keep_host: false
            },
        ]
    );
}

#[test]
fn the_most_specific_mirror_list_applies() {
    let text = format!(
        "{}{}{}{}",
        action("request_mirror_policies: [{ cluster: shadow }]"),
        "              - match: { prefix: /b }\n                route: { cluster: app }\n",
        "              request_mirror_policies: [{ cluster: app }]\n            - name: other\n              domains: [other]\n              routes:\n",
        "              - match: { prefix: / }\n                route: { cluster: app }\n            request_mirror_policies: [{ cluster: shadow, disable_shadow_host_suffix_append: true }]\n",
    );
    let config = load(&bootstrap("", &text, ""));
    let hosts = &config.listeners[0].virtual_hosts;
    let clusters = |r: &Route| -> Vec<(String, bool)> {
        r.mirrors
            .iter()
            .map(|m| (m.cluster.clone(), m.keep_host))
            .collect()
    };
    assert_eq!(clusters(&hosts[0].routes[0]), [("shadow".into(), false)]);
    assert_eq!(clusters(&hosts[0].routes[1]), [("app".into(), false)]);
    assert_eq!(clusters(&hosts[1].routes[0]), [("shadow".into(), true)]);
}

#[test]
fn mirror_refusals_name_the_field() {
    refused(
        "request_mirror_policies: [{ cluster: shadw }]",
        &[
            "request_mirror_policies[0].cluster",
            "unknown cluster \"shadw\"",
        ],
    );
    refused(
        "request_mirror_policies: [{ cluster_header: x-mirror }]",
        &["`cluster_header`"],
    );
    refused(
        "request_mirror_policies: [{ cluster: shadow, trace_sampled: true }]",
        &["trace_sampled"],
    );
    refused(
        "request_mirror_policies: [{ cluster: shadow, host_rewrite_literal: x }]",
        &["`host_rewrite_literal`"],
    );
    refused("request_mirror_policies: [{ cluster: shadow, request_headers_mutations: [{ remove: x }] }]", &["`request_headers_mutations`"]);
}

#[test]
fn stream_duration_comes_from_the_route_else_the_connection_manager() {
    let hcm = "          common_http_protocol_options: { max_stream_duration: 30s }\n";
    let text = format!(
        "{}{}{}",
        action("max_stream_duration: { max_stream_duration: 5s }"),
        "              - match: { prefix: /b }\n                route: { cluster: app, max_stream_duration: { max_stream_duration: 0s } }\n",
        "              - match: { prefix: /c }\n                route: { cluster: app }\n",
    );
    let r = routes(hcm, &text);
    assert_eq!(r[0].max_stream_duration, Some(Duration::from_secs(5)));
    assert_eq!(
        r[1].max_stream_duration, None,
        "zero: no limit on the route"
    );
    assert_eq!(r[2].max_stream_duration, Some(Duration::from_secs(30)));
    let r = routes("", &text);
    assert_eq!(r[2].max_stream_duration, None);
    refused(
        "max_stream_duration: { grpc_timeout_header_max: 1s }",
        &["`grpc_timeout_header_max`"],
    );
    refused(
        "max_stream_duration: { grpc_timeout_header_offset: 1s }",
        &["`grpc_timeout_header_offset`"],
    );
}

#[test]
fn priority_maps() {
    assert_eq!(route("priority: HIGH").priority, Priority::High);
    assert_eq!(route("priority: DEFAULT").priority, Priority::Default);
}

fn breakers(fields: &str) -> CircuitBreakers {
    let config = load(&bootstrap("", &action("timeout: 1s"), fields));
    config.clusters[0].circuit_breakers.clone()
}

#[test]
fn circuit_breakers_map_every_field_with_envoys_defaults() {
    let cb = breakers(concat!(
        "    circuit_breakers:\n",
        "      thresholds:\n",
        "      - { max_connections: 10, max_pending_requests: 0, max_requests: 30, max_retries: 4, retry_budget: { budget_percent: { value: 12.5 }, min_retry_concurrency: 1 }, track_remaining: true }\n",
        "      - { priority: HIGH, max_requests: 5000, retry_budget: {} }\n",
    ));
    assert_eq!(
        cb.thresholds,
        [
            Thresholds::every_field_set(),
            Thresholds {
                max_requests: 5000,
                retry_budget: Some(RetryBudget::default()),
                ..Thresholds::default()
            },
        ]
    );
    assert_eq!(
        breakers("    circuit_breakers: {}\n"),
        CircuitBreakers::default()
    );
    let cb =
        breakers("    circuit_breakers: { thresholds: [{ priority: HIGH, max_retries: 9 }] }\n");
    assert_eq!(cb.thresholds[0], Thresholds::default());
    assert_eq!(cb.thresholds[1].max_retries, 9);
}

#[test]
fn circuit_breaker_refusals_name_the_field() {
    for (fields, needle) in [
        (
            "{ thresholds: [{ max_retries: 1 }, { priority: DEFAULT, max_retries: 2 }] }",
            "thresholds[1].priority: a second thresholds entry for priority DEFAULT",
        ),
        (
            "{ per_host_thresholds: [{ max_connections: 1 }] }",
            "`per_host_thresholds`",
        ),
        (
            "{ thresholds: [{ max_connection_pools: 1 }] }",
            "`max_connection_pools`",
        ),
        (
            "{ thresholds: [{ retry_budget: { budget_interval: 1s } }] }",
            "`budget_interval`",
        ),
    ] {
        let e = errors(&bootstrap(
            "",
            &action("timeout: 1s"),
            &format!("    circuit_breakers: {fields}\n"),
        ));
        assert!(e.len() == 1 && e[0].contains(needle), "{needle:?}: {e:?}");
    }
}

#[test]
fn routes_that_may_retry_non_idempotent_requests_are_named_once() {
    let text = format!(
        "{}{}{}{}",
        "              - name: orders\n                match: { prefix: /orders }\n                route: { cluster: app, retry_policy: { retry_on: \"5xx,connect-failure\" } }\n",
        "              - match: { prefix: /safe }\n                route: { cluster: app, retry_policy: { retry_on: \"connect-failure,reset-before-request\", num_retries: 3 } }\n",
        "              - match: { path: /none }\n                route: { cluster: app, retry_policy: { retry_on: reset, num_retries: 0 } }\n",
        "              - match: { path: /x }\n                route: { cluster: app, retry_policy: { retry_on: \"refused-stream,retriable-status-codes\" } }\n",
    );
    let config = load(&bootstrap("", &text, ""));
    assert_eq!(
        unsafe_retry_warnings(&config.listeners),
        [
            "listener \"listener_0\", virtual host \"local\", route \"orders\": retry_on 5xx may retry non-idempotent requests (POST, PATCH, ...) after they were sent, as Envoy does; the native format retries those only before sending unless `retry_non_idempotent: true`",
            "listener \"listener_0\", virtual host \"local\", route matching path \"/x\": retry_on refused-stream,retriable-status-codes may retry non-idempotent requests (POST, PATCH, ...) after they were sent, as Envoy does; the native format retries those only before sending unless `retry_non_idempotent: true`",
        ]
    );
}

#[test]
fn a_zero_connection_manager_limit_is_none() {
    let hcm = "          common_http_protocol_options: { max_stream_duration: 0s }\n";
    let r = routes(hcm, &action("timeout: 1s"));
    assert_eq!(r[0].max_stream_duration, None);
}

#[test]
fn the_buffer_limit_comes_from_the_route_else_its_host() {
    let text = format!(
        "{}                per_request_buffer_limit_bytes: 1000\n{}              per_request_buffer_limit_bytes: 5000\n",
        action("retry_policy: { retry_on: 5xx }"),
        "              - match: { prefix: /b }\n                route: { cluster: app, retry_policy: { retry_on: 5xx } }\n",
    );
    let r = routes("", &text);
    let limits: Vec<u64> = r
        .iter()
        .map(|r| r.retry.as_ref().expect("a policy").buffer_limit)
        .collect();
    assert_eq!(limits, [1000, 5000]);
    assert_eq!(
        retry("retry_on: 5xx").buffer_limit,
        RetryPolicy::DEFAULT_BUFFER_LIMIT
    );
}
