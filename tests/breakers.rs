//! Circuit breakers, stream duration and Envoy's retry policy through the real binary:
//! the process-wide limits of requests, connections and pending requests hold across
//! both workers (every worker takes part), refuse with 503, `UO` and
//! `x-envoy-overloaded`, and close again; `track_remaining` gauges; a route's
//! `max_stream_duration` (408, `DT`); an Envoy `retry_policy` and its circuit breakers.
//! Both drivers.

mod common;

use std::{
    io::{BufReader, Write},
    net::SocketAddr,
    time::Duration,
};

use common::faulty::{Faulty, Mode};
use common::{connect, drivers, free_port, read_response, start_on, Response, Ringway};

fn send(addr: SocketAddr) -> Response {
    let mut stream = connect(addr).expect("connect to ringway");
    write!(stream, "GET /app/x HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    read_response(&mut BufReader::new(stream), false).expect("a response")
}

/// `n` requests at once, each on its own connection.
fn burst(addr: SocketAddr, n: usize) -> Vec<Response> {
    let threads: Vec<_> = (0..n)
        .map(|_| std::thread::spawn(move || send(addr)))
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn config(port: u16, admin: u16, route: &str, cluster: &str, upstream: &Faulty) -> String {
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
    endpoints: [{}]
{cluster}"#,
        upstream.endpoint()
    )
}

fn overloaded(responses: &[Response]) -> usize {
    responses
        .iter()
        .filter(|r| r.status == 503 && r.header("x-envoy-overloaded") == Some("true"))
        .count()
}

#[test]
fn max_requests_holds_across_workers_and_closes_again() {
    for driver in drivers() {
        let app = Faulty::start("app");
        app.set(Mode::Slow(Duration::from_millis(500)));
        let cluster =
            "    circuit_breakers: { default: { max_requests: 2, track_remaining: true } }\n";
        let (rw, addr) = start_on(driver, |p, a| config(p, a, "", cluster, &app));
        let responses = burst(addr, 12);
        let ok = responses.iter().filter(|r| r.status == 200).count();
        // Two at a time in the whole process, whichever worker took each.
        assert!((1..=4).contains(&ok), "{driver}: {ok} answered");
        assert_eq!(overloaded(&responses), 12 - ok, "{driver}");
        let stats = rw.stats();
        for worker in 0..2 {
            let name = format!("http.public.worker_{worker}.downstream_rq_total");
            assert!(
                stats.get(&name).copied().unwrap_or(0) > 0,
                "{driver}: {name}"
            );
        }
        assert!(rw.stat("cluster.app.upstream_rq_pending_overflow") >= 8);
        assert_eq!(
            rw.stat("cluster.app.circuit_breakers.default.remaining_rq"),
            2,
            "{driver}: all units back"
        );
        // Closed again: requests one at a time all pass.
        app.set(Mode::Ok);
        for _ in 0..10 {
            assert_eq!(send(addr).status, 200, "{driver}");
        }
    }
}

#[test]
fn past_max_connections_requests_wait_and_past_max_pending_they_are_refused() {
    for driver in drivers() {
        let app = Faulty::start("app");
        app.set(Mode::Slow(Duration::from_millis(400)));
        // One connection per process (each worker's pool may still open its first one,
        // as Envoy's pools do), one request waiting.
        let cluster =
            "    circuit_breakers: { default: { max_connections: 1, max_pending_requests: 1 } }\n";
        let (rw, addr) = start_on(driver, |p, a| config(p, a, "", cluster, &app));
        let responses = burst(addr, 10);
        let ok = responses.iter().filter(|r| r.status == 200).count();
        assert!((1..=4).contains(&ok), "{driver}: {ok} answered");
        assert_eq!(overloaded(&responses), 10 - ok, "{driver}");
        assert!(rw.stat("cluster.app.upstream_cx_overflow") > 0, "{driver}");
        assert!(rw.stat("cluster.app.upstream_rq_pending_overflow") > 0);
        assert_eq!(rw.stat("cluster.app.upstream_rq_pending_active"), 0);
        app.set(Mode::Ok);
        for _ in 0..10 {
            assert_eq!(send(addr).status, 200, "{driver}");
        }
    }
}

/// A request that gives up waiting for a connection (here its route timeout passes
/// while the one connection the breaker allows is busy) is Envoy's
/// `upstream_rq_cancelled`: its pool counts a pending stream it cancels.
#[test]
fn a_request_that_stops_waiting_for_a_connection_is_counted_cancelled() {
    for driver in drivers() {
        let app = Faulty::start("app");
        app.set(Mode::Slow(Duration::from_millis(800)));
        // The first request's route waits longer than the second's.
        let route = "        timeout: 3s\n      - match: { prefix: /quick/ }\n        cluster: app\n        timeout: 200ms\n";
        let cluster =
            "    circuit_breakers: { default: { max_connections: 1, max_pending_requests: 4 } }\n";
        // One worker: the waiting request waits in the busy connection's pool.
        let (rw, addr) = start_on(driver, |p, a| {
            config(p, a, route, cluster, &app).replace("workers: 2", "workers: 1")
        });
        let first = std::thread::spawn(move || send(addr));
        assert_eq!(
            rw.wait_for_stat("cluster.app.upstream_rq_active", 1),
            1,
            "{driver}"
        );
        let mut stream = connect(addr).expect("connect to ringway");
        write!(stream, "GET /quick/x HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        let waited = read_response(&mut BufReader::new(stream), false).expect("a response");
        assert_eq!(waited.status, 504, "{driver}");
        assert_eq!(
            rw.stat("cluster.app.upstream_rq_pending_total"),
            1,
            "{driver}"
        );
        assert_eq!(rw.stat("cluster.app.upstream_rq_cancelled"), 1, "{driver}");
        assert_eq!(
            rw.stat("cluster.app.upstream_rq_pending_active"),
            0,
            "{driver}"
        );
        // The first one had its connection: answered, not cancelled.
        assert_eq!(first.join().unwrap().status, 200, "{driver}");
        assert_eq!(rw.stat("cluster.app.upstream_rq_cancelled"), 1, "{driver}");
        // Envoy's counters of what ringway's clusters cannot do are there, at 0.
        for name in [
            "upstream_cx_pool_overflow",
            "bind_errors",
            "upstream_rq_maintenance_mode",
            "original_dst_host_invalid",
            "upstream_cx_max_duration_reached",
            "upstream_rq_max_duration_reached",
        ] {
            let stats = rw.stats();
            assert_eq!(
                stats.get(&format!("cluster.app.{name}")),
                Some(&0),
                "{driver}: {name}"
            );
        }
    }
}

#[test]
fn a_stream_longer_than_its_max_duration_gets_408() {
    for driver in drivers() {
        let app = Faulty::start("app");
        app.set(Mode::Slow(Duration::from_secs(2)));
        let route = "        max_stream_duration: 300ms\n";
        let (rw, addr) = start_on(driver, |p, a| config(p, a, route, "", &app));
        let started = std::time::Instant::now();
        let r = send(addr);
        assert_eq!(r.status, 408, "{driver}");
        assert!(started.elapsed() < Duration::from_millis(1500), "{driver}");
        assert_eq!(rw.stat("http.public.downstream_rq_max_duration_reached"), 1);
    }
}

#[test]
fn envoy_retry_policy_and_circuit_breakers() {
    for driver in drivers() {
        let app = Faulty::start("app");
        let (port, admin) = (free_port(), free_port());
        let routes = "              routes:\n              - match: { prefix: /app/ }\n                route:\n                  cluster: app\n                  retry_policy: { retry_on: \"5xx,reset\", num_retries: 2, retry_back_off: { base_interval: 0.005s } }\n";
        let yaml = common::envoy::bootstrap((admin, port), routes, "", &[("app", app.addr.port())])
            .replace(
                "  - name: app\n    load_assignment:",
                "  - name: app\n    circuit_breakers: { thresholds: [ { max_requests: 1 } ] }\n    load_assignment:",
            );
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        app.fail_next(2, Mode::Status(503));
        assert_eq!(
            send(addr).status,
            200,
            "{driver}: the third attempt's answer"
        );
        assert_eq!(rw.stat("cluster.app.upstream_rq_retry"), 2);
        app.set(Mode::Slow(Duration::from_millis(400)));
        let responses = burst(addr, 6);
        let refused: Vec<_> = responses.iter().filter(|r| r.status == 503).collect();
        assert!(!refused.is_empty(), "{driver}");
        for r in refused {
            assert_eq!(r.header("x-envoy-overloaded"), Some("true"));
            assert_eq!(
                String::from_utf8_lossy(&r.body),
                "upstream connect error or disconnect/reset before headers. reset reason: overflow"
            );
        }
    }
}
