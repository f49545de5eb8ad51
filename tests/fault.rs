//! Fault injection through the real binary (native `fault:` and Envoy's
//! `envoy.filters.http.fault`): aborts with their status, body, access-log flag and
//! stats, a share of aborts, a measured delay, faults a trusted peer asks for by header
//! (and the same headers ignored from anyone else), a paced response, and an Envoy
//! route overriding its filter's faults. Both drivers.

mod common;

use std::{
    io::{BufReader, Write},
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::upstream::Upstream;
use common::{connect, drivers, read_response, start_on, wait_for_lines, Response};

/// One request with `headers` (each line with its CRLF) and `body`, on a new connection.
fn send(addr: SocketAddr, path: &str, headers: &str, body: &[u8]) -> Response {
    let mut stream = connect(addr).expect("connect to ringway");
    let method = if body.is_empty() { "GET" } else { "POST" };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\ncontent-length: {}\r\n{headers}\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    read_response(&mut BufReader::new(stream), false).expect("a response")
}

/// A native config: listener `public` (no trusted peer) and `trusted` (loopback
/// trusted), both with `routes`, cluster `backend` at `upstream`.
fn native(
    (port, trusted, admin): (u16, u16, u16),
    routes: &str,
    upstream: &Upstream,
    extra: &str,
) -> String {
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
{routes}  - name: trusted
    address: 127.0.0.1:{trusted}
    trusted_proxies: {{ cidrs: [127.0.0.1/32] }}
    routes:
{routes}clusters:
  - name: backend
    endpoints: [{}]
{extra}"#,
        upstream.endpoint()
    )
}

/// Ringway with [`native`]'s config: the public listener's address and the trusted one's.
fn start(
    driver: &str,
    routes: &str,
    upstream: &Upstream,
    extra: &str,
) -> (common::Ringway, SocketAddr, SocketAddr) {
    let ports = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let yaml = native(ports, routes, upstream, extra);
    let rw = common::Ringway::start(&yaml, ports.2, &["--driver", driver]);
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    (rw, at(ports.0), at(ports.1))
}

#[test]
fn every_request_aborted_gets_the_status_the_body_and_the_flag() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let routes =
            "      - match: { prefix: / }\n        cluster: backend\n        fault: { abort: { status: 503 } }\n";
        let extra = format!(
            "access_log:\n  path: {}\n  flush_interval: 10ms\n",
            log.display()
        );
        let (rw, addr, _) = start(driver, routes, &upstream, &extra);
        let r = send(addr, "/x", "", b"");
        assert_eq!(r.status, 503, "{driver}");
        assert_eq!(r.body, b"fault filter abort\n", "{driver}");
        let lines = wait_for_lines(&log, 1);
        assert!(lines[0].contains(" FI "), "{driver}: {}", lines[0]);
        assert_eq!(rw.wait_for_stat("http.public.fault.aborts_injected", 1), 1);
        assert_eq!(rw.wait_for_stat("http.public.fault.active_faults", 0), 0);
        let sent = rw.stats().get("cluster.backend.upstream_rq_total").copied();
        assert_eq!(
            sent.unwrap_or(0),
            0,
            "{driver}: an aborted request reached the upstream"
        );
    }
}

#[test]
fn half_the_requests_are_aborted() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let routes = "      - match: { prefix: / }\n        cluster: backend\n        fault: { abort: { status: 502, percent: 50 } }\n";
        let (_rw, addr, _) = start(driver, routes, &upstream, "");
        let aborted = (0..400)
            .filter(|_| send(addr, "/x", "", b"").status == 502)
            .count();
        // 200 expected; the standard deviation is 10: 60 is six of them.
        assert!((140..=260).contains(&aborted), "{driver}: {aborted} of 400");
    }
}

#[test]
fn a_delay_holds_the_request_that_long() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let routes = "      - match: { prefix: / }\n        cluster: backend\n        fault: { delay: { fixed: 200ms } }\n";
        let (rw, addr, _) = start(driver, routes, &upstream, "");
        // A first request warms the upstream pool.
        send(addr, "/warm", "", b"");
        let started = Instant::now();
        let r = send(addr, "/x", "", b"");
        let took = started.elapsed();
        assert_eq!(r.status, 200, "{driver}");
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_millis(600),
            "{driver}: {took:?}"
        );
        assert_eq!(rw.wait_for_stat("http.public.fault.delays_injected", 2), 2);
    }
}

#[test]
fn header_controlled_faults_come_only_from_trusted_peers() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let routes = "      - match: { prefix: / }\n        cluster: backend\n        fault: { delay: { header: true }, abort: { header: true } }\n";
        let (_rw, addr, trusted) = start(driver, routes, &upstream, "");
        let abort = "x-envoy-fault-abort-request: 429\r\n";
        assert_eq!(send(trusted, "/x", abort, b"").status, 429, "{driver}");
        assert_eq!(send(addr, "/x", abort, b"").status, 200, "{driver}");
        let delay = "x-envoy-fault-delay-request: 300\r\n";
        for (to, delayed) in [(trusted, true), (addr, false)] {
            let started = Instant::now();
            assert_eq!(send(to, "/x", delay, b"").status, 200, "{driver}");
            let took = started.elapsed();
            assert_eq!(
                took >= Duration::from_millis(300),
                delayed,
                "{driver}: {took:?}"
            );
        }
        // Without the header, nothing happens.
        assert_eq!(send(trusted, "/x", "", b"").status, 200, "{driver}");
    }
}

#[test]
fn a_paced_response_takes_its_time() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let routes = "      - match: { prefix: / }\n        cluster: backend\n        fault: { response_rate: { kibps: 50 } }\n";
        let (rw, addr, _) = start(driver, routes, &upstream, "");
        let body = vec![b'x'; 100 * 1024];
        let started = Instant::now();
        let r = send(addr, "/x", "", &body);
        let took = started.elapsed();
        assert_eq!((r.status, r.body.len()), (200, body.len()), "{driver}");
        // 100 KiB at 50 KiB/s: 2 s (less what the first write may carry early).
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
            "{driver}: {took:?}"
        );
        assert_eq!(
            rw.wait_for_stat("http.public.fault.response_rl_injected", 1),
            1
        );
    }
}

#[test]
fn an_envoy_route_overrides_its_filters_faults() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let (_rw, addr) = start_on(driver, |port, admin| {
            let host = r#"              routes:
              - match: { prefix: /calm }
                route: { cluster: backend }
                typed_per_filter_config:
                  envoy.filters.http.fault:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
                    delay:
                      fixed_delay: 0.05s
                      percentage: { numerator: 100 }
              - match: { prefix: / }
                route: { cluster: backend }
"#;
            let filters = r#"          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort:
                http_status: 418
                percentage: { numerator: 100 }
"#;
            let port_of = upstream.endpoint();
            let upstream_port: u16 = port_of.rsplit(':').next().unwrap().parse().unwrap();
            common::envoy::bootstrap((admin, port), host, filters, &[("backend", upstream_port)])
        });
        let r = send(addr, "/x", "", b"");
        assert_eq!(r.status, 418, "{driver}");
        assert_eq!(r.body, b"fault filter abort", "{driver}");
        assert_eq!(send(addr, "/calm/x", "", b"").status, 200, "{driver}");
    }
}
