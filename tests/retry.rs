//! Retries through the real binary against upstreams that fail on demand
//! (`common::faulty`): each `retry_on` condition with an upstream that produces it, the
//! method rule of native routes, retries used up (`URX`), `Retry-After`, per-try
//! timeouts, back-off bounds, trusted request controls, `x-envoy-attempt-count`, the
//! retry breaker, and hedging on per-try timeouts. Both drivers.

mod common;

use std::{
    io::{BufReader, Write},
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::faulty::{Faulty, Mode};
use common::{connect, drivers, read_response, start_on, Response};

/// One request on a new connection.
fn send(addr: SocketAddr, method: &str, headers: &str) -> Response {
    let mut stream = connect(addr).expect("connect to ringway");
    let body = if method == "POST" {
        "content-length: 4\r\n\r\nbody"
    } else {
        "\r\n"
    };
    write!(
        stream,
        "{method} /app/x HTTP/1.1\r\nHost: test\r\n{headers}{body}"
    )
    .unwrap();
    read_response(&mut BufReader::new(stream), false).expect("a response")
}

/// A native config: one route to cluster `app` (`route` adds keys to the route,
/// `cluster` to the cluster), two workers.
fn config(port: u16, admin: u16, route: &str, cluster: &str, endpoints: &str) -> String {
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ prefix: /app/ }}
        cluster: app
{route}clusters:
  - name: app
    endpoints: [{endpoints}]
{cluster}"#
    )
}

#[test]
fn a_5xx_is_retried_and_the_client_sees_the_retry_s_answer() {
    for driver in drivers() {
        let app = Faulty::start("app");
        let heads = app.heads();
        let route = "        retry: { on: [5xx], retries: 2, backoff: { base: 5ms } }\n        attempt_count: { request: true, response: true }\n";
        let (rw, addr) = start_on(driver, |p, a| config(p, a, route, "", &app.endpoint()));
        app.fail_next(1, Mode::Status(503));
        let r = send(addr, "GET", "");
        assert_eq!(r.status, 200, "{driver}: the retry's answer");
        assert_eq!(r.header("x-envoy-attempt-count"), Some("2"), "{driver}");
        let first = heads.recv_timeout(Duration::from_secs(5)).unwrap();
        let second = heads.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(first.contains("x-envoy-attempt-count: 1\r\n"), "{first}");
        assert!(second.contains("x-envoy-attempt-count: 2\r\n"), "{second}");
        assert_eq!(rw.stat("cluster.app.upstream_rq_retry"), 1, "{driver}");
        assert_eq!(rw.stat("cluster.app.upstream_rq_retry_success"), 1);
        assert_eq!(
            rw.stat("cluster.app.upstream_rq_retry_backoff_exponential"),
            1
        );
        // The retried 503 under Envoy's `retry.` prefix, the answer under the cluster's.
        let stats = rw.stats();
        for (name, n) in [
            ("cluster.app.retry.upstream_rq_503", 1),
            ("cluster.app.retry.upstream_rq_5xx", 1),
            ("cluster.app.retry.upstream_rq_completed", 1),
            ("cluster.app.upstream_rq_200", 1),
            ("cluster.app.upstream_rq_completed", 1),
        ] {
            assert_eq!(stats.get(name), Some(&n), "{driver}: {name}");
        }
        for name in [
            "cluster.app.upstream_rq_503",
            "cluster.app.retry.upstream_rq_200",
        ] {
            assert!(!stats.contains_key(name), "{driver}: {name} shown unused");
        }
        // A 4xx is not a 5xx: forwarded as it came, once.
        app.fail_next(1, Mode::Status(404));
        assert_eq!(send(addr, "GET", "").status, 404);
        assert_eq!(rw.stat("cluster.app.upstream_rq_retry"), 1, "{driver}");
    }
}

#[test]
fn retries_used_up_return_the_last_answer_with_urx() {
    for driver in drivers() {
        let app = Faulty::start("app");
        app.set(Mode::Status(503));
        let route = "        retry: { on: [gateway-error], retries: 2, backoff: { base: 1ms } }\n";
        let (rw, addr) = start_on(driver, |p, a| config(p, a, route, "", &app.endpoint()));
        let r = send(addr, "GET", "");
        assert_eq!(r.status, 503, "{driver}");
        assert_eq!(
            r.body, b"app",
            "{driver}: the upstream's own answer, not a local one"
        );
        assert_eq!(
            app.requests(),
            3,
            "{driver}: the first attempt and two retries"
        );
        assert_eq!(rw.stat("cluster.app.upstream_rq_retry"), 2);
        assert_eq!(rw.stat("cluster.app.upstream_rq_retry_limit_exceeded"), 1);
        // Two answers retried, the third returned.
        assert_eq!(rw.stat("cluster.app.retry.upstream_rq_503"), 2, "{driver}");
        assert_eq!(rw.stat("cluster.app.upstream_rq_503"), 1, "{driver}");
    }
}

#[test]
fn retriable_status_codes_and_409() {
    for driver in drivers() {
        let app = Faulty::start("app");
        let route = "        retry: { on: [retriable-status-codes, retriable-4xx], status_codes: [418], retries: 1, backoff: { base: 1ms } }\n";
        let (_rw, addr) = start_on(driver, |p, a| config(p, a, route, "", &app.endpoint()));
        for status in [418, 409] {
            app.fail_next(1, Mode::Status(status));
            assert_eq!(send(addr, "GET", "").status, 200, "{driver}: {status}");
        }
        // 503 is in neither condition.
        app.fail_next(1, Mode::Status(503));
        assert_eq!(send(addr, "GET", "").status, 503, "{driver}");
    }
}

#[test]
fn resets_are_retried_for_idempotent_requests_and_posts_only_when_the_route_says_so() {
    for driver in drivers() {
        let app = Faulty::start("app");
        let safe = "        retry: { on: [reset], retries: 1, backoff: { base: 1ms } }\n";
        let (_rw, addr) = start_on(driver, |p, a| config(p, a, safe, "", &app.endpoint()));
        app.fail_next(1, Mode::Drop);
        assert_eq!(send(addr, "GET", "").status, 200, "{driver}: GET retried");
        // The POST reached the upstream before the reset: it may have taken effect.
        app.reset_counts();
        app.fail_next(1, Mode::Drop);
        assert_ne!(
            send(addr, "POST", "").status,
            200,
            "{driver}: POST not retried"
        );
        assert_eq!(app.requests(), 1, "{driver}: sent once");
        drop(_rw);

        let unsafe_ = "        retry: { on: [reset], retries: 1, retry_non_idempotent: true, backoff: { base: 1ms } }\n";
        let (_rw, addr) = start_on(driver, |p, a| config(p, a, unsafe_, "", &app.endpoint()));
        app.reset_counts();
        app.fail_next(1, Mode::Drop);
        assert_eq!(send(addr, "POST", "").status, 200, "{driver}: POST retried");
        assert_eq!(app.requests(), 2);
    }
}

#[test]
fn a_connect_failure_moves_to_another_endpoint() {
    for driver in drivers() {
        let app = Faulty::start("app");
        let dead = Faulty::start("dead");
        dead.kill();
        let route =
            "        retry: { on: [connect-failure], retries: 2, backoff: { base: 1ms } }\n";
        let endpoints = format!("{}, {}", app.endpoint(), dead.endpoint());
        let (rw, addr) = start_on(driver, |p, a| config(p, a, route, "", &endpoints));
        for _ in 0..40 {
            // Even POSTs: nothing of them was written.
            assert_eq!(send(addr, "POST", "").status, 200, "{driver}");
        }
        assert!(rw.stat("cluster.app.upstream_rq_retry") > 0, "{driver}");
    }
}

#[test]
fn retry_after_is_honoured_and_a_long_one_ends_the_retries() {
    for driver in drivers() {
        let app = Faulty::start("app");
        let route = "        retry: { on: [5xx], retries: 1, retry_after: { headers: [{ name: retry-after, format: seconds }], max_interval: 2s } }\n";
        let (rw, addr) = start_on(driver, |p, a| config(p, a, route, "", &app.endpoint()));
        app.fail_next(1, Mode::RetryAfter(1));
        let started = Instant::now();
        assert_eq!(send(addr, "GET", "").status, 200, "{driver}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(950),
            "{driver}: waited {took:?}"
        );
        assert!(took < Duration::from_secs(3), "{driver}: waited {took:?}");
        assert_eq!(
            rw.stat("cluster.app.upstream_rq_retry_backoff_ratelimited"),
            1
        );
        // Longer than max_interval: the answer is final.
        app.fail_next(1, Mode::RetryAfter(30));
        let started = Instant::now();
        let r = send(addr, "GET", "");
        assert_eq!(r.status, 503, "{driver}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

#[test]
fn a_per_try_timeout_retries_a_slow_attempt() {
    for driver in drivers() {
        let app = Faulty::start("app");
        let route = "        retry: { on: [5xx], retries: 1, per_try_timeout: 200ms, backoff: { base: 1ms } }\n";
        let (rw, addr) = start_on(driver, |p, a| config(p, a, route, "", &app.endpoint()));
        app.fail_next(1, Mode::Slow(Duration::from_secs(3)));
        let started = Instant::now();
        assert_eq!(send(addr, "GET", "").status, 200, "{driver}");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(190), "{driver}: {took:?}");
        assert!(took < Duration::from_millis(1500), "{driver}: {took:?}");
        assert_eq!(rw.stat("cluster.app.upstream_rq_per_try_timeout"), 1);
        // Both attempts slow: 504 after the second, well before the route timeout.
        app.fail_next(2, Mode::Slow(Duration::from_secs(3)));
        let started = Instant::now();
        let r = send(addr, "GET", "");
        assert_eq!(r.status, 504, "{driver}");
        assert!(started.elapsed() < Duration::from_millis(1500));
    }
}

#[test]
fn backoff_waits_stay_within_their_bounds() {
    for driver in drivers() {
        let app = Faulty::start("app");
        app.set(Mode::Status(503));
        // Full jitter: each wait in [0, min(max, base * 2^(n-1))]: at most 100 + 200 + 200.
        let route =
            "        retry: { on: [5xx], retries: 3, backoff: { base: 100ms, max: 200ms } }\n";
        let (_rw, addr) = start_on(driver, |p, a| config(p, a, route, "", &app.endpoint()));
        for _ in 0..5 {
            let started = Instant::now();
            assert_eq!(send(addr, "GET", "").status, 503);
            let took = started.elapsed();
            assert!(
                took < Duration::from_millis(500 + 300),
                "{driver}: {took:?}"
            );
        }
        assert_eq!(app.requests(), 20, "{driver}: four attempts each");
    }
}

#[test]
fn request_controls_count_only_from_trusted_peers() {
    for driver in drivers() {
        let app = Faulty::start("app");
        let controls = "x-envoy-retry-on: 5xx\r\nx-envoy-max-retries: 1\r\n";
        // Untrusted: a route without a policy does not retry.
        let (rw, addr) = start_on(driver, |p, a| config(p, a, "", "", &app.endpoint()));
        app.fail_next(1, Mode::Status(503));
        assert_eq!(send(addr, "GET", controls).status, 503, "{driver}");
        drop(rw);
        let trusting = |p, a| {
            config(p, a, "", "", &app.endpoint()).replace(
                "    routes:",
                "    trusted_proxies: { cidrs: [127.0.0.1/32] }\n    routes:",
            )
        };
        let (rw, addr) = start_on(driver, trusting);
        app.fail_next(1, Mode::Status(503));
        assert_eq!(send(addr, "GET", controls).status, 200, "{driver}");
        assert_eq!(rw.stat("cluster.app.upstream_rq_retry"), 1);
    }
}

#[test]
fn the_retry_breaker_skips_retries_and_returns_the_answer() {
    for driver in drivers() {
        let app = Faulty::start("app");
        app.set(Mode::Status(503));
        let route = "        retry: { on: [5xx], retries: 3, backoff: { base: 1ms } }\n";
        let cluster = "    circuit_breakers: { default: { max_retries: 0 } }\n";
        let (rw, addr) = start_on(driver, |p, a| config(p, a, route, cluster, &app.endpoint()));
        let r = send(addr, "GET", "");
        assert_eq!(r.status, 503, "{driver}");
        assert_eq!(r.body, b"app");
        assert_eq!(app.requests(), 1, "{driver}: no retry");
        assert_eq!(rw.stat("cluster.app.upstream_rq_retry_overflow"), 1);
        assert_eq!(
            rw.stat("cluster.app.circuit_breakers.default.rq_retry_open"),
            1
        );
    }
}

#[test]
fn a_retry_budget_caps_retries_under_total_failure() {
    for driver in drivers() {
        let app = Faulty::start("app");
        // Every attempt fails after 200 ms: the first attempts of eight requests end
        // together, while the retries the budget allowed are still under way.
        app.set(Mode::SlowFailure(Duration::from_millis(200)));
        let route = "        retry: { on: [5xx], retries: 5, backoff: { base: 1ms, max: 2ms } }\n";
        // 0 %: only the minimum, one retry at a time (per worker: ceil(1 / 2) = 1).
        let cluster =
            "    circuit_breakers: { default: { retry_budget: { percent: 0, min_concurrency: 1 } } }\n";
        let (rw, addr) = start_on(driver, |p, a| config(p, a, route, cluster, &app.endpoint()));
        let threads: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(move || send(addr, "GET", "").status))
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), 503);
        }
        let retries = rw.stat("cluster.app.upstream_rq_retry");
        let overflow = rw.stat("cluster.app.upstream_rq_retry_overflow");
        // Without the budget: 8 x 5 = 40 retries. With it, at most two at a time (one
        // per worker), each taking one slot of 200 ms of the requests' 1.2 s.
        assert!(overflow >= 6, "{driver}: {overflow} retries refused");
        assert!(retries <= 2 * 6, "{driver}: {retries} retries");
        assert_eq!(app.requests() as u64, 8 + retries, "{driver}");
    }
}

#[test]
fn the_access_log_tells_urx_uo_and_dt() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    for driver in drivers() {
        let _ = std::fs::remove_file(&log);
        let app = Faulty::start("app");
        let routes = "        retry: { on: [5xx], retries: 1, backoff: { base: 1ms } }\n      - match: { prefix: /short/ }\n        cluster: app\n        max_stream_duration: 100ms\n";
        let (_rw, addr) = start_on(driver, |p, a| {
            let yaml = config(p, a, routes, "", &app.endpoint());
            format!(
                "access_log:\n  path: {}\n  format: '%RESPONSE_CODE% %RESPONSE_FLAGS%'\n{yaml}",
                log.display()
            )
        });
        app.fail_next(2, Mode::Status(503));
        assert_eq!(send(addr, "GET", "").status, 503);
        app.fail_next(1, Mode::Slow(Duration::from_secs(1)));
        let mut stream = connect(addr).unwrap();
        write!(stream, "GET /short/x HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        let r = read_response(&mut BufReader::new(stream), false).unwrap();
        assert_eq!(r.status, 408, "{driver}");
        let lines = common::wait_for_lines(&log, 2);
        assert_eq!(lines[0], "503 URX", "{driver}");
        assert_eq!(lines[1], "408 DT", "{driver}");
    }
}

#[test]
fn retriable_headers_and_envoy_ratelimited() {
    for driver in drivers() {
        let app = Faulty::start("app");
        // A 200 carrying the header the policy names is retried, the next one is not.
        let route = "        retry: { response_headers: [{ name: x-retry, exact: \"yes\" }], retries: 1, backoff: { base: 1ms } }\n";
        let (rw, addr) = start_on(driver, |p, a| config(p, a, route, "", &app.endpoint()));
        app.fail_next(1, Mode::Flagged);
        let r = send(addr, "GET", "");
        assert_eq!((r.status, r.header("x-retry")), (200, None), "{driver}");
        assert_eq!(rw.stat("cluster.app.upstream_rq_retry"), 1, "{driver}");
        drop(rw);
        // An upstream Envoy's rate-limit answer: `5xx` does not retry it (Envoy's rule),
        // `envoy-ratelimited` does.
        for (on, expected) in [("5xx", 503), ("envoy-ratelimited", 200)] {
            let route =
                format!("        retry: {{ on: [{on}], retries: 1, backoff: {{ base: 1ms }} }}\n");
            let (_rw, addr) = start_on(driver, |p, a| config(p, a, &route, "", &app.endpoint()));
            app.fail_next(1, Mode::RateLimited);
            assert_eq!(send(addr, "GET", "").status, expected, "{driver}: {on}");
        }
    }
}

#[test]
fn a_body_within_the_route_s_buffer_is_held_and_replayed() {
    for driver in drivers() {
        let app = Faulty::start("app");
        let route =
            "        retry: { on: [reset], retries: 1, backoff: { base: 1ms }, buffer: 64KiB }\n";
        let (rw, addr) = start_on(driver, |p, a| config(p, a, route, "", &app.endpoint()));
        // The body comes after the head, in its own writes: it is not in the head's read.
        let put = |size: usize| {
            let mut stream = connect(addr).unwrap();
            write!(
                stream,
                "PUT /app/x HTTP/1.1\r\nHost: test\r\ncontent-length: {size}\r\n\r\n"
            )
            .unwrap();
            std::thread::sleep(Duration::from_millis(50));
            stream.write_all(&vec![b'x'; size]).unwrap();
            read_response(&mut BufReader::new(stream), false).unwrap()
        };
        app.fail_next(1, Mode::Drop);
        assert_eq!(
            put(40_000).status,
            200,
            "{driver}: held whole and sent again"
        );
        assert_eq!(app.requests(), 2);
        assert_eq!(rw.stat("cluster.app.upstream_rq_retry"), 1);
        assert_eq!(rw.stat("cluster.app.retry_or_shadow_abandoned"), 0);
        // Over the limit, the body streams: once sent, it cannot be sent again
        // (Envoy's `retry_or_shadow_abandoned`).
        app.reset_counts();
        app.fail_next(1, Mode::Drop);
        assert_ne!(put(100_000).status, 200, "{driver}: streamed, not retried");
        assert_eq!(app.requests(), 1, "{driver}");
        assert_eq!(rw.stat("cluster.app.retry_or_shadow_abandoned"), 1);
    }
}

/// A GET's status and how long it took.
fn timed_get(addr: SocketAddr) -> (u16, Duration) {
    let started = Instant::now();
    let status = send(addr, "GET", "").status;
    (status, started.elapsed())
}

/// A hedging route: one retry (or `retries`), 200 ms per try, 1 ms back-off.
fn hedging_route(retries: u32) -> String {
    format!("        retry: {{ on: [5xx], retries: {retries}, per_try_timeout: 200ms, hedge: true, backoff: {{ base: 1ms }} }}\n")
}

#[test]
fn a_hedged_attempt_that_answers_first_wins() {
    for driver in drivers() {
        let app = Faulty::start("app");
        let route = hedging_route(1);
        let (rw, addr) = start_on(driver, |p, a| config(p, a, &route, "", &app.endpoint()));
        // Both attempts take 500 ms: the first, hedged at 200 ms, answers at 500 ms
        // (without hedging it would have been cut at 200 ms, the retry at 400 ms: 504).
        app.fail_next(2, Mode::Slow(Duration::from_millis(500)));
        let (status, took) = timed_get(addr);
        assert_eq!(status, 200, "{driver}");
        assert!(took >= Duration::from_millis(480), "{driver}: {took:?}");
        assert!(took < Duration::from_millis(680), "{driver}: {took:?}");
        assert_eq!(app.requests(), 2, "{driver}: the attempt and its hedge");
        assert_eq!(rw.stat("cluster.app.upstream_rq_retry"), 1, "{driver}");
        // Not ended by its per-try timeout (Envoy does not count a hedge as one).
        assert_eq!(rw.stat("cluster.app.upstream_rq_per_try_timeout"), 0);
        // The hedge answers first: 200 at about 200 + 100 ms.
        app.fail_next(1, Mode::Slow(Duration::from_secs(2)));
        let (status, took) = timed_get(addr);
        assert_eq!(status, 200, "{driver}");
        assert!(took < Duration::from_millis(1000), "{driver}: {took:?}");
        // Served normally afterwards, on the pool's connections.
        for _ in 0..3 {
            assert_eq!(send(addr, "GET", "").status, 200, "{driver}");
        }
    }
}

#[test]
fn with_no_retry_left_a_hedging_request_waits_for_its_attempts() {
    for driver in drivers() {
        let app = Faulty::start("app");
        let route = hedging_route(1);
        let (rw, addr) = start_on(driver, |p, a| config(p, a, &route, "", &app.endpoint()));
        // The first answers at 900 ms, its hedge (sent at 200 ms) at 1,100 ms; the
        // hedge's own per-try timeout (400 ms) finds no retry left: both are waited for.
        app.fail_next(2, Mode::Slow(Duration::from_millis(900)));
        let (status, took) = timed_get(addr);
        assert_eq!(status, 200, "{driver}");
        assert!(took >= Duration::from_millis(880), "{driver}: {took:?}");
        assert!(took < Duration::from_millis(1080), "{driver}: {took:?}");
        assert_eq!(app.requests(), 2, "{driver}");
        drop(rw);
        // The route timeout still bounds them all: 504 at 700 ms.
        let route = format!("{}        timeout: 700ms\n", hedging_route(3));
        let (rw, addr) = start_on(driver, |p, a| config(p, a, &route, "", &app.endpoint()));
        app.fail_next(10, Mode::Slow(Duration::from_secs(3)));
        let (status, took) = timed_get(addr);
        assert_eq!(status, 504, "{driver}");
        assert!(took >= Duration::from_millis(680), "{driver}: {took:?}");
        assert!(took < Duration::from_millis(1500), "{driver}: {took:?}");
        // One hedge per per-try timeout before the route's ran out: 0.2, 0.4, 0.6 s.
        assert_eq!(rw.stat("cluster.app.upstream_rq_retry"), 3, "{driver}");
        assert_eq!(rw.stat("cluster.app.upstream_rq_timeout"), 1, "{driver}");
    }
}

#[test]
fn a_hedged_attempt_s_retriable_answer_is_dropped_while_another_is_out() {
    for driver in drivers() {
        // `a` answers 503 after 400 ms, `b` 200 after 300 ms: whichever goes first, the
        // client gets `b`'s answer (a 503 of an attempt already hedged is not forwarded
        // while the hedge may still answer).
        let a = Faulty::start("a");
        let b = Faulty::start("b");
        a.set(Mode::SlowFailure(Duration::from_millis(400)));
        b.set(Mode::Slow(Duration::from_millis(300)));
        let endpoints = format!("{}, {}", a.endpoint(), b.endpoint());
        let route = hedging_route(1);
        let (_rw, addr) = start_on(driver, |p, a| config(p, a, &route, "", &endpoints));
        for _ in 0..4 {
            let r = send(addr, "GET", "");
            assert_eq!((r.status, &r.body[..]), (200, &b"b"[..]), "{driver}");
        }
        assert!(a.requests() >= 1 && b.requests() >= 4, "{driver}");
    }
}

#[test]
fn hedging_comes_from_envoy_s_hedge_policy_and_trusted_headers() {
    for driver in drivers() {
        let app = Faulty::start("app");
        let host = "              hedge_policy: { hedge_on_per_try_timeout: true }\n              routes:\n              - match: { prefix: / }\n                route: { cluster: app, retry_policy: { retry_on: 5xx, num_retries: 1, per_try_timeout: 0.2s, retry_back_off: { base_interval: 0.001s } } }\n";
        let (_rw, addr) = start_on(driver, |port, admin| {
            // Loopback peers internal, so that their `x-envoy-*` controls count.
            common::envoy::bootstrap((admin, port), host, "", &[("app", app.addr.port())]).replace(
                "          stat_prefix: ingress_http\n",
                "          stat_prefix: ingress_http\n          use_remote_address: true\n          internal_address_config: { cidr_ranges: [{ address_prefix: 127.0.0.1, prefix_len: 32 }] }\n",
            )
        });
        app.fail_next(2, Mode::Slow(Duration::from_millis(500)));
        let started = Instant::now();
        assert_eq!(send(addr, "GET", "").status, 200, "{driver}: hedged");
        assert!(started.elapsed() < Duration::from_millis(680), "{driver}");
        // A trusted peer turns it off for its request (Envoy's header): the retry's
        // per-try timeout ends the request with 504.
        app.fail_next(2, Mode::Slow(Duration::from_millis(500)));
        let off = "x-envoy-hedge-on-per-try-timeout: false\r\n";
        assert_eq!(send(addr, "GET", off).status, 504, "{driver}: not hedged");
        drop(_rw);
        // And turns it on where the route does not hedge; an untrusted peer cannot.
        let route = "        retry: { on: [5xx], retries: 1, per_try_timeout: 200ms, backoff: { base: 1ms } }\n";
        let trusting = |p, a| {
            config(p, a, route, "", &app.endpoint()).replace(
                "    routes:",
                "    trusted_proxies: { cidrs: [127.0.0.1/32] }\n    routes:",
            )
        };
        let on = "x-envoy-hedge-on-per-try-timeout: true\r\n";
        let (_rw, addr) = start_on(driver, trusting);
        app.fail_next(2, Mode::Slow(Duration::from_millis(500)));
        assert_eq!(send(addr, "GET", on).status, 200, "{driver}: trusted");
        drop(_rw);
        let (_rw, addr) = start_on(driver, |p, a| config(p, a, route, "", &app.endpoint()));
        app.fail_next(2, Mode::Slow(Duration::from_millis(500)));
        assert_eq!(send(addr, "GET", on).status, 504, "{driver}: untrusted");
    }
}

#[test]
fn a_per_try_idle_timeout_still_ends_a_hedged_attempt() {
    for driver in drivers() {
        let app = Faulty::start("app");
        // The idle limit is checked on the coarse clock: it passes within a second
        // after its 150 ms, well before the 3 s per-try timeout.
        let route = "        retry: { on: [5xx], retries: 1, per_try_timeout: 3s, per_try_idle_timeout: 150ms, hedge: true, backoff: { base: 1ms } }\n";
        let (rw, addr) = start_on(driver, |p, a| config(p, a, route, "", &app.endpoint()));
        app.fail_next(1, Mode::Slow(Duration::from_secs(5)));
        let (status, took) = timed_get(addr);
        assert_eq!(status, 200, "{driver}");
        assert!(took < Duration::from_millis(2500), "{driver}: {took:?}");
        // Ended and retried (Envoy resets an idle attempt, hedging or not).
        assert_eq!(
            rw.stat("cluster.app.upstream_rq_per_try_timeout"),
            1,
            "{driver}"
        );
        assert_eq!(rw.stat("cluster.app.upstream_rq_retry"), 1, "{driver}");
    }
}

#[test]
fn refused_stream_retries_a_request_a_reused_connection_dropped() {
    // On HTTP/1.1 `refused-stream` is a pooled connection closed after the request was
    // written, before any response byte. A POST on an Envoy route (Envoy's meaning: any
    // method) shows it apart from the stale-connection retry, which repeats only
    // idempotent or unwritten requests.
    for driver in drivers() {
        for (retry_on, status) in [("refused-stream", 200), ("connect-failure", 503)] {
            let app = Faulty::start("app");
            let host = format!("              routes:\n              - match: {{ prefix: / }}\n                route: {{ cluster: app, retry_policy: {{ retry_on: {retry_on}, num_retries: 1 }} }}\n");
            let (rw, addr) = start_on(driver, |port, admin| {
                common::envoy::bootstrap((admin, port), &host, "", &[("app", app.addr.port())])
            });
            // Every worker gets pooled connections (one client connection each request).
            for _ in 0..16 {
                assert_eq!(send(addr, "GET", "").status, 200, "{driver}");
            }
            let before = app.requests();
            app.fail_next(1, Mode::Drop);
            let r = send(addr, "POST", "");
            assert_eq!(r.status, status, "{driver}: {retry_on}");
            let sent = app.requests() - before;
            let retries = rw.stat("cluster.app.upstream_rq_retry");
            if status == 200 {
                assert_eq!((sent, retries), (2, 1), "{driver}: dropped, then retried");
            } else {
                assert_eq!((sent, retries), (1, 0), "{driver}: not retried");
            }
        }
    }
}
