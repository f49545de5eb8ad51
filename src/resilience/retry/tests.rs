//! The retry conditions one by one (Envoy's `retry_state_impl.cc` cases), the request
//! controls and their merge with the route's policy, and the method rule.

use std::time::Duration;

use super::*;
use crate::config::{HeaderMatch, ValueMatch};

type Headers<'a> = &'a [(&'a str, &'a str)];

fn lookup<'a>(headers: Headers<'a>) -> impl Fn(&str) -> Option<&'a [u8]> {
    move |name| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_bytes())
    }
}

fn on(list: &str) -> RetryOn {
    RetryOn::parse_list(list).expect("known names")
}

fn plan(list: &str) -> Plan {
    Plan {
        retry_on: on(list),
        retries_left: 1,
        per_try_timeout: None,
        per_try_idle_timeout: None,
        methods: RetryMethods::Any,
        hedge: false,
    }
}

fn rules(policy: RetryPolicy) -> RetryRules {
    RetryRules::compile(&policy)
}

/// The verdict on a response `status` with `headers`.
fn on_response(plan: &Plan, rules: Option<&RetryRules>, status: u16, headers: Headers) -> Verdict {
    // An inline closure, so that the values' lifetime can shrink to the borrow's (what
    // `AttemptEnd::Response` ties them to), as the connection task's will.
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_bytes())
    };
    plan.judge(
        rules,
        &AttemptEnd::Response {
            status,
            headers: &get,
        },
        true,
    )
}

fn judge(plan: &Plan, end: AttemptEnd<'_>) -> Verdict {
    plan.judge(None, &end, true)
}

use Verdict::{Final, Retry};

const RESET_WRITTEN: AttemptEnd<'static> = AttemptEnd::Reset {
    written: true,
    reused: false,
};
const RESET_UNWRITTEN: AttemptEnd<'static> = AttemptEnd::Reset {
    written: false,
    reused: false,
};
const RESET_REUSED: AttemptEnd<'static> = AttemptEnd::Reset {
    written: true,
    reused: true,
};
const TIMEOUT_WRITTEN: AttemptEnd<'static> = AttemptEnd::PerTryTimeout { written: true };
const TIMEOUT_UNWRITTEN: AttemptEnd<'static> = AttemptEnd::PerTryTimeout { written: false };

#[test]
fn five_xx_is_any_5xx_and_every_ending_without_a_head() {
    let p = plan("5xx");
    for status in [500, 501, 502, 503, 504, 599] {
        assert_eq!(on_response(&p, None, status, &[]), Retry, "{status}");
    }
    for status in [200, 404, 409, 429, 499] {
        assert_eq!(on_response(&p, None, status, &[]), Final, "{status}");
    }
    for end in [
        AttemptEnd::ConnectFailure,
        RESET_WRITTEN,
        RESET_UNWRITTEN,
        TIMEOUT_WRITTEN,
    ] {
        assert_eq!(judge(&p, end), Retry);
    }
}

#[test]
fn gateway_error_is_502_503_504_and_no_head() {
    let p = plan("gateway-error");
    for status in [502, 503, 504] {
        assert_eq!(on_response(&p, None, status, &[]), Retry, "{status}");
    }
    for status in [500, 501, 505, 409] {
        assert_eq!(on_response(&p, None, status, &[]), Final, "{status}");
    }
    assert_eq!(judge(&p, AttemptEnd::ConnectFailure), Retry);
    assert_eq!(judge(&p, RESET_WRITTEN), Retry);
    assert_eq!(judge(&p, TIMEOUT_WRITTEN), Retry);
}

#[test]
fn reset_is_every_ending_without_a_head_and_no_status() {
    let p = plan("reset");
    assert_eq!(judge(&p, RESET_WRITTEN), Retry);
    assert_eq!(judge(&p, TIMEOUT_WRITTEN), Retry);
    assert_eq!(judge(&p, AttemptEnd::ConnectFailure), Retry);
    assert_eq!(on_response(&p, None, 503, &[]), Final);
}

#[test]
fn reset_before_request_needs_nothing_written() {
    let p = plan("reset-before-request");
    assert_eq!(judge(&p, RESET_UNWRITTEN), Retry);
    assert_eq!(judge(&p, TIMEOUT_UNWRITTEN), Retry);
    assert_eq!(judge(&p, AttemptEnd::ConnectFailure), Retry);
    assert_eq!(judge(&p, RESET_WRITTEN), Final);
    assert_eq!(judge(&p, TIMEOUT_WRITTEN), Final);
    assert_eq!(on_response(&p, None, 503, &[]), Final);
}

#[test]
fn connect_failure_is_only_connect_failures() {
    let p = plan("connect-failure");
    assert_eq!(judge(&p, AttemptEnd::ConnectFailure), Retry);
    assert_eq!(judge(&p, RESET_UNWRITTEN), Final);
    assert_eq!(judge(&p, TIMEOUT_UNWRITTEN), Final);
    assert_eq!(on_response(&p, None, 503, &[]), Final);
}

#[test]
fn refused_stream_is_a_reset_on_a_reused_connection() {
    let p = plan("refused-stream");
    assert_eq!(judge(&p, RESET_REUSED), Retry);
    let unwritten_reused = AttemptEnd::Reset {
        written: false,
        reused: true,
    };
    assert_eq!(judge(&p, unwritten_reused), Retry);
    assert_eq!(judge(&p, RESET_WRITTEN), Final, "a fresh connection");
    assert_eq!(judge(&p, TIMEOUT_WRITTEN), Final);
    assert_eq!(judge(&p, AttemptEnd::ConnectFailure), Final);
}

#[test]
fn retriable_4xx_is_409_only() {
    let p = plan("retriable-4xx");
    assert_eq!(on_response(&p, None, 409, &[]), Retry);
    for status in [400, 404, 408, 429, 503] {
        assert_eq!(on_response(&p, None, status, &[]), Final, "{status}");
    }
    assert_eq!(judge(&p, RESET_WRITTEN), Final);
}

#[test]
fn retriable_status_codes_come_from_the_policy() {
    let mut policy = RetryPolicy::new(on("retriable-status-codes"));
    policy.status_codes = vec![429, 418];
    let r = rules(policy);
    let p = RetryRules::for_request(Some(&r), &Controls::default()).expect("a plan");
    assert_eq!(on_response(&p, Some(&r), 429, &[]), Retry);
    assert_eq!(on_response(&p, Some(&r), 418, &[]), Retry);
    assert_eq!(on_response(&p, Some(&r), 503, &[]), Final);
    // The list alone does nothing without the condition.
    let mut policy = RetryPolicy::new(on("connect-failure"));
    policy.status_codes = vec![429];
    let r = rules(policy);
    let p = RetryRules::for_request(Some(&r), &Controls::default()).expect("a plan");
    assert_eq!(on_response(&p, Some(&r), 429, &[]), Final);
}

#[test]
fn retriable_headers_match_any_one_matcher() {
    let mut policy = RetryPolicy::new(on("retriable-headers"));
    policy.response_headers = vec![
        HeaderMatch {
            name: "X-Upstream-Retry".into(),
            value: ValueMatch::Exact("yes".into()),
        },
        HeaderMatch {
            name: "x-busy".into(),
            value: ValueMatch::Present(true),
        },
    ];
    let r = rules(policy);
    let p = RetryRules::for_request(Some(&r), &Controls::default()).expect("a plan");
    assert_eq!(
        on_response(&p, Some(&r), 200, &[("x-upstream-retry", "yes")]),
        Retry
    );
    assert_eq!(on_response(&p, Some(&r), 200, &[("x-busy", "")]), Retry);
    assert_eq!(
        on_response(&p, Some(&r), 200, &[("x-upstream-retry", "no")]),
        Final
    );
    assert_eq!(on_response(&p, Some(&r), 500, &[]), Final);
}

#[test]
fn envoy_ratelimited_answers_retry_only_under_its_condition() {
    let limited: Headers = &[("x-envoy-ratelimited", "true")];
    assert_eq!(
        on_response(&plan("envoy-ratelimited"), None, 429, limited),
        Retry
    );
    // Envoy returns early: 5xx does not retry a rate-limited 503.
    assert_eq!(on_response(&plan("5xx"), None, 503, limited), Final);
    assert_eq!(
        on_response(&plan("5xx,envoy-ratelimited"), None, 503, limited),
        Retry
    );
    assert_eq!(
        on_response(&plan("envoy-ratelimited"), None, 429, &[]),
        Final
    );
}

#[test]
fn grpc_conditions_read_the_grpc_status_header() {
    let cases = [
        ("cancelled", "1"),
        ("deadline-exceeded", "4"),
        ("resource-exhausted", "8"),
        ("internal", "13"),
        ("unavailable", "14"),
    ];
    for (name, code) in cases {
        let p = plan(name);
        assert_eq!(
            on_response(&p, None, 200, &[("grpc-status", code)]),
            Retry,
            "{name}"
        );
        assert_eq!(
            on_response(&p, None, 200, &[("grpc-status", "0")]),
            Final,
            "{name}"
        );
        assert_eq!(on_response(&p, None, 200, &[]), Final, "{name}");
    }
    let p = plan("unavailable");
    assert_eq!(
        on_response(&p, None, 200, &[("grpc-status", "13")]),
        Final,
        "another code"
    );
    assert_eq!(on_response(&p, None, 200, &[("grpc-status", "x")]), Final);
}

#[test]
fn http3_post_connect_failure_never_holds() {
    let p = plan("http3-post-connect-failure");
    assert_eq!(judge(&p, AttemptEnd::ConnectFailure), Final);
    assert_eq!(judge(&p, RESET_WRITTEN), Final);
    assert_eq!(on_response(&p, None, 503, &[]), Final);
}

#[test]
fn idempotent_methods_only_retry_a_non_idempotent_request_before_it_was_written() {
    let mut p = plan("5xx,reset-before-request,connect-failure");
    p.methods = RetryMethods::Idempotent;
    let post = |end: AttemptEnd<'_>| p.judge(None, &end, false);
    assert_eq!(post(AttemptEnd::ConnectFailure), Retry);
    assert_eq!(post(RESET_UNWRITTEN), Retry);
    assert_eq!(post(TIMEOUT_UNWRITTEN), Retry);
    assert_eq!(post(RESET_WRITTEN), Final);
    assert_eq!(post(TIMEOUT_WRITTEN), Final);
    let get = |_: &str| None;
    let response = AttemptEnd::Response {
        status: 503,
        headers: &get,
    };
    assert_eq!(p.judge(None, &response, false), Final);
    // The same ends on an idempotent request.
    assert_eq!(p.judge(None, &RESET_WRITTEN, true), Retry);
    assert_eq!(p.judge(None, &response, true), Retry);
    // Envoy's meaning: any method.
    p.methods = RetryMethods::Any;
    assert_eq!(p.judge(None, &RESET_WRITTEN, false), Retry);
    assert_eq!(p.judge(None, &response, false), Retry);
}

#[test]
fn no_retries_left_is_final() {
    let mut p = plan("5xx");
    p.retries_left = 0;
    assert_eq!(judge(&p, RESET_WRITTEN), Final);
    assert_eq!(on_response(&p, None, 503, &[]), Final);
}

#[test]
fn controls_read_envoy_headers_and_ignore_what_does_not_parse() {
    let get = lookup(&[
        ("x-envoy-retry-on", " 5xx, bogus ,reset,,unavailable"),
        ("x-envoy-retry-grpc-on", "cancelled,5xx,nope"),
        ("x-envoy-max-retries", " 4 "),
        ("x-envoy-upstream-rq-per-try-timeout-ms", "250"),
        ("x-envoy-hedge-on-per-try-timeout", " TRUE"),
    ]);
    let c = Controls::read(&get);
    assert_eq!(c.hedge, Some(true));
    // gRPC names count only in the gRPC header and HTTP names only in the other.
    assert_eq!(c.retry_on, on("5xx,reset,cancelled"));
    assert_eq!(c.max_retries, Some(4));
    assert_eq!(c.per_try_timeout, Some(Duration::from_millis(250)));

    let get = lookup(&[
        ("x-envoy-max-retries", "-1"),
        ("x-envoy-upstream-rq-per-try-timeout-ms", "1.5"),
        ("x-envoy-retry-on", "\u{fffd}"),
        ("x-envoy-hedge-on-per-try-timeout", "maybe"),
    ]);
    assert_eq!(Controls::read(&get), Controls::default());
    let get = lookup(&[("x-envoy-max-retries", "99999999999")]);
    assert_eq!(Controls::read(&get).max_retries, None, "past u32");
    assert_eq!(Controls::read(&lookup(&[])), Controls::default());
    let grpc_only = lookup(&[("x-envoy-retry-grpc-on", "unavailable,internal")]);
    assert_eq!(
        Controls::read(&grpc_only).retry_on,
        on("unavailable,internal")
    );
}

#[test]
fn for_request_merges_route_and_headers_as_envoy_does() {
    let mut policy = RetryPolicy::new(on("connect-failure"));
    policy.num_retries = 3;
    policy.per_try_timeout = Some(Duration::from_secs(2));
    policy.per_try_idle_timeout = Some(Duration::from_secs(1));
    policy.methods = RetryMethods::Idempotent;
    let r = rules(policy);

    let plain = RetryRules::for_request(Some(&r), &Controls::default()).expect("a plan");
    assert_eq!(plain.retry_on, on("connect-failure"));
    assert_eq!(plain.retries_left, 3);
    assert_eq!(plain.per_try_timeout, Some(Duration::from_secs(2)));
    assert_eq!(plain.per_try_idle_timeout, Some(Duration::from_secs(1)));
    assert_eq!(plain.methods, RetryMethods::Idempotent);

    let controls = Controls {
        retry_on: on("5xx"),
        max_retries: Some(7),
        per_try_timeout: Some(Duration::from_millis(300)),
        hedge: None,
    };
    let merged = RetryRules::for_request(Some(&r), &controls).expect("a plan");
    assert_eq!(merged.retry_on, on("connect-failure,5xx"), "OR'ed");
    assert_eq!(merged.retries_left, 7, "replaced");
    assert_eq!(merged.per_try_timeout, Some(Duration::from_millis(300)));
    assert_eq!(merged.methods, RetryMethods::Idempotent);

    // A zero per-try header disables the per-try timeout (Envoy: 0 means none).
    let zero = Controls {
        per_try_timeout: Some(Duration::ZERO),
        ..Controls::default()
    };
    let p = RetryRules::for_request(Some(&r), &zero).expect("a plan");
    assert_eq!(p.per_try_timeout, None);

    // x-envoy-max-retries: 0 keeps the plan but leaves no retry.
    let none_left = Controls {
        max_retries: Some(0),
        ..Controls::default()
    };
    let p = RetryRules::for_request(Some(&r), &none_left).expect("a plan");
    assert_eq!(p.retries_left, 0);
    assert_eq!(judge(&p, AttemptEnd::ConnectFailure), Final);
}

#[test]
fn for_request_without_a_policy_needs_a_header_condition() {
    assert_eq!(RetryRules::for_request(None, &Controls::default()), None);
    let only_count = Controls {
        max_retries: Some(5),
        ..Controls::default()
    };
    assert_eq!(RetryRules::for_request(None, &only_count), None);
    let header = Controls {
        retry_on: on("5xx"),
        ..Controls::default()
    };
    let p = RetryRules::for_request(None, &header).expect("a plan");
    assert_eq!(p.retries_left, 1, "Envoy's default num_retries");
    assert_eq!(p.methods, RetryMethods::Any);
    assert_eq!(p.per_try_timeout, None);
    // A policy without conditions and no header: nothing to retry on.
    let r = rules(RetryPolicy::new(RetryOn::NONE));
    assert_eq!(
        RetryRules::for_request(Some(&r), &Controls::default()),
        None
    );
    assert!(RetryRules::for_request(Some(&r), &header).is_some());
}

#[test]
fn request_allowed_needs_every_request_matcher() {
    let r = rules(RetryPolicy::new(on("5xx")));
    assert!(r.request_allowed(&lookup(&[])), "none configured");
    let mut policy = RetryPolicy::new(on("5xx"));
    policy.request_headers = vec![
        HeaderMatch {
            name: "x-retry-me".into(),
            value: ValueMatch::Present(true),
        },
        HeaderMatch {
            name: "x-tier".into(),
            value: ValueMatch::Prefix("gold".into()),
        },
    ];
    let r = rules(policy);
    assert!(r.request_allowed(&lookup(&[("x-retry-me", "1"), ("x-tier", "gold-2")])));
    assert!(!r.request_allowed(&lookup(&[("x-retry-me", "1")])));
    assert!(!r.request_allowed(&lookup(&[("x-tier", "gold")])));
}

#[test]
fn hedging_follows_the_route_unless_a_trusted_header_says_otherwise() {
    let mut policy = RetryPolicy::new(on("5xx"));
    policy.hedge_on_per_try_timeout = true;
    let hedged = rules(policy);
    let plain = rules(RetryPolicy::new(on("5xx")));
    let with = |hedge| Controls {
        hedge,
        ..Controls::default()
    };
    let hedge = |r: &RetryRules, c: Controls| RetryRules::for_request(Some(r), &c).unwrap().hedge;
    assert!(hedge(&hedged, with(None)));
    assert!(!hedge(&plain, with(None)));
    assert!(hedge(&plain, with(Some(true))));
    assert!(!hedge(&hedged, with(Some(false))));
    for (text, value) in [
        ("true", Some(true)),
        ("Y", Some(true)),
        ("0", Some(false)),
        ("no", Some(false)),
        ("", None),
        ("2", None),
    ] {
        assert_eq!(boolean(text.as_bytes()), value, "{text:?}");
    }
}
