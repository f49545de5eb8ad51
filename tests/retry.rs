//! Retries through the real binary against upstreams that fail on demand
//! (`common::faulty`): each `retry_on` condition with an upstream that produces it, the
//! method rule of native routes, retries used up (`URX`), `Retry-After`, per-try
//! timeouts, back-off bounds, trusted request controls, `x-envoy-attempt-count`, and the
//! retry breaker. Both drivers.

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
        // Over the limit, the body streams: once sent, it cannot be sent again.
        app.reset_counts();
        app.fail_next(1, Mode::Drop);
        assert_ne!(put(100_000).status, 200, "{driver}: streamed, not retried");
        assert_eq!(app.requests(), 1, "{driver}");
    }
}
