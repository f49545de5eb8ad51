//! Load balancing, active health checks and outlier detection through the real binary,
//! against upstreams that fail on demand (`common::faulty`): they die, hang, answer 503,
//! reset mid-response and come back. Every share and ejection is asserted from counts,
//! over requests on new connections (which the kernel spreads across both workers).
//! Both drivers.

mod common;

use std::{
    collections::HashMap,
    io::{BufReader, Write},
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::faulty::{Faulty, Mode};
use common::{connect, drivers, free_port, read_response, Ringway};

/// One GET on a new connection with extra header lines; the status and the body text
/// (the upstream's name when one answered), or status 0 when the response broke off
/// (an upstream that reset mid-response: ringway can only close the connection).
fn send(addr: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    let mut stream = connect(addr).expect("connect to ringway");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n").unwrap();
    match read_response(&mut BufReader::new(stream), false) {
        Ok(response) => (
            response.status,
            String::from_utf8_lossy(&response.body).into_owned(),
        ),
        Err(_) => (0, String::new()),
    }
}

/// Sends `n` requests and counts the answers by body (the upstream's name) or, for
/// ringway's own answers, by `status:<code>`.
fn spread(addr: SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let (status, body) = send(addr, "/svc/x", "");
        let key = if status == 200 {
            body
        } else {
            format!("status:{status}")
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}

fn count(counts: &HashMap<String, usize>, key: &str) -> usize {
    counts.get(key).copied().unwrap_or(0)
}

/// `/clusters` as text.
fn clusters(rw: &Ringway) -> String {
    let r = common::get(rw_admin(rw), "/clusters").expect("GET /clusters");
    String::from_utf8_lossy(&r.body).into_owned()
}

fn rw_admin(rw: &Ringway) -> SocketAddr {
    rw.admin_addr()
}

/// The `health_flags` line of `endpoint` in cluster `cluster`.
fn flags(rw: &Ringway, cluster: &str, endpoint: &str) -> String {
    let prefix = format!("{cluster}::{endpoint}::health_flags::");
    clusters(rw)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no health_flags line for {endpoint}"))
}

/// Waits up to 3 s for the health flags of `endpoint` in `cluster` to satisfy `want`.
fn flags_become(rw: &Ringway, cluster: &str, endpoint: &str, want: impl Fn(&str) -> bool) -> bool {
    wait_until(Duration::from_secs(3), || {
        want(&flags(rw, cluster, endpoint))
    })
}

/// Waits up to `limit` for `check` to hold, polling.
fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// A config routing `/svc/` to cluster `svc` whose cluster body is `cluster` (indented
/// lines after `- name: svc`).
fn config(port: u16, admin: u16, cluster: &str) -> String {
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ prefix: /svc/ }}
        cluster: svc
        timeout: 1s
clusters:
  - name: svc
{cluster}"#
    )
}

fn start(driver: &str, cluster: &str) -> (Ringway, SocketAddr) {
    let (port, admin) = (free_port(), free_port());
    let rw = Ringway::start(&config(port, admin, cluster), admin, &["--driver", driver]);
    (rw, ([127, 0, 0, 1], port).into())
}

#[test]
fn an_http_health_check_takes_a_failing_endpoint_out_and_brings_it_back() {
    for driver in drivers() {
        let (a, b) = (Faulty::start("a"), Faulty::start("b"));
        let cluster = format!(
            r#"    endpoints: [{}, {}]
    health_check:
      http: {{ path: /healthz }}
      interval: 100ms
      no_traffic_interval: 100ms
      timeout: 500ms
      healthy_threshold: 2
      unhealthy_threshold: 2
"#,
            a.endpoint(),
            b.endpoint()
        );
        let (rw, addr) = start(driver, &cluster);
        assert_eq!(flags(&rw, "svc", &a.endpoint()), "healthy", "{driver}");
        let counts = spread(addr, 40);
        assert!(
            count(&counts, "a") > 5 && count(&counts, "b") > 5,
            "{driver}: {counts:?}"
        );

        // A failing check (traffic itself would still work): out at once, as Envoy
        // takes an HTTP check answered outside `expected_statuses` (the threshold
        // counts network failures and timeouts).
        a.set_health(Mode::Status(503));
        assert!(
            flags_become(&rw, "svc", &a.endpoint(), |f| f == "/failed_active_hc"),
            "{driver}: {}",
            clusters(&rw)
        );
        a.reset_counts();
        let counts = spread(addr, 40);
        assert_eq!(count(&counts, "b"), 40, "{driver}: {counts:?}");
        assert_eq!(a.requests(), 0, "{driver}");
        let stats = rw.stats();
        let hc = |name: &str| stats[&format!("cluster.svc.health_check.{name}")];
        assert!(hc("failure") >= 1, "{driver}: {} failures", hc("failure"));
        assert!(hc("attempt") >= 2, "{driver}: {} attempts", hc("attempt"));
        assert_eq!(hc("healthy"), 1, "{driver}");

        // Back after two good checks.
        a.set_health(Mode::Ok);
        assert!(
            flags_become(&rw, "svc", &a.endpoint(), |f| f == "healthy"),
            "{driver}"
        );
        let counts = spread(addr, 40);
        assert!(count(&counts, "a") > 5, "{driver}: {counts:?}");
    }
}

#[test]
fn a_tcp_health_check_follows_an_endpoint_that_dies_and_comes_back() {
    for driver in drivers() {
        let (a, b) = (Faulty::start("a"), Faulty::start("b"));
        let cluster = format!(
            r#"    endpoints: [{}, {}]
    health_check:
      tcp: {{}}
      interval: 100ms
      no_traffic_interval: 100ms
      timeout: 300ms
      unhealthy_threshold: 1
      healthy_threshold: 1
"#,
            a.endpoint(),
            b.endpoint()
        );
        let (rw, addr) = start(driver, &cluster);
        a.kill();
        assert!(
            flags_become(&rw, "svc", &a.endpoint(), |f| f
                .contains("/failed_active_hc")),
            "{driver}: {}",
            clusters(&rw)
        );
        let counts = spread(addr, 30);
        assert_eq!(count(&counts, "b"), 30, "{driver}: {counts:?}");
        a.revive();
        assert!(
            flags_become(&rw, "svc", &a.endpoint(), |f| f == "healthy"),
            "{driver}"
        );
        let counts = spread(addr, 40);
        assert!(count(&counts, "a") > 5, "{driver}: {counts:?}");
    }
}

/// Outlier detection: consecutive 5xx, then a reset mid-response and a hang (local
/// failures counted as Envoy's 503/504): each ejects the endpoint after `consecutive_5xx`
/// failures summed over both workers, and the endpoint returns after the ejection time.
#[test]
fn consecutive_failures_eject_an_endpoint_for_the_ejection_time() {
    for driver in drivers() {
        for mode in [Mode::Status(503), Mode::Reset, Mode::Hang] {
            let (a, b, c) = (Faulty::start("a"), Faulty::start("b"), Faulty::start("c"));
            let cluster = format!(
                r#"    endpoints: [{}, {}, {}]
    outlier_detection:
      consecutive_5xx: 3
      interval: 100ms
      base_ejection_time: 1s
      max_ejection_percent: 50
"#,
                a.endpoint(),
                b.endpoint(),
                c.endpoint()
            );
            let (rw, addr) = start(driver, &cluster);
            a.set(mode);
            let started = Instant::now();
            // Until the ejection, a third of the requests reach `a` and fail.
            let mut failed = 0;
            for _ in 0..60 {
                let (status, _) = send(addr, "/svc/x", "");
                if status != 200 {
                    failed += 1;
                }
                if flags(&rw, "svc", &a.endpoint()) == "/failed_outlier_check" {
                    break;
                }
            }
            assert_eq!(
                flags(&rw, "svc", &a.endpoint()),
                "/failed_outlier_check",
                "{driver} {mode:?}: {}",
                clusters(&rw)
            );
            // The detector sums both workers' streaks: three failures eject, and a
            // request or two already on its way may fail besides.
            assert!(
                (3..=5).contains(&failed),
                "{driver} {mode:?}: {failed} failed"
            );
            let stats = rw.stats();
            assert_eq!(
                stats["cluster.svc.outlier_detection.ejections_active"], 1,
                "{driver} {mode:?}"
            );
            assert_eq!(
                stats["cluster.svc.outlier_detection.ejections_enforced_consecutive_5xx"], 1,
                "{driver} {mode:?}"
            );
            a.reset_counts();
            let counts = spread(addr, 30);
            assert_eq!(a.requests(), 0, "{driver} {mode:?}: {counts:?}");
            assert_eq!(
                count(&counts, "b") + count(&counts, "c"),
                30,
                "{driver} {mode:?}"
            );

            // Back after the ejection time (and the next interval), healthy again.
            a.set(Mode::Ok);
            assert!(
                flags_become(&rw, "svc", &a.endpoint(), |f| f == "healthy"),
                "{driver} {mode:?}"
            );
            assert!(
                started.elapsed() >= Duration::from_secs(1),
                "{driver} {mode:?}"
            );
            let counts = spread(addr, 30);
            assert!(count(&counts, "a") > 3, "{driver} {mode:?}: {counts:?}");
        }
    }
}

#[test]
fn max_ejection_percent_keeps_endpoints_in_rotation() {
    for driver in drivers() {
        let (a, b, c) = (Faulty::start("a"), Faulty::start("b"), Faulty::start("c"));
        let cluster = format!(
            r#"    endpoints: [{}, {}, {}]
    outlier_detection:
      consecutive_5xx: 2
      interval: 10s
      base_ejection_time: 30s
      max_ejection_percent: 34
"#,
            a.endpoint(),
            b.endpoint(),
            c.endpoint()
        );
        let (rw, addr) = start(driver, &cluster);
        a.set(Mode::Status(500));
        b.set(Mode::Status(500));
        spread(addr, 60);
        let text = clusters(&rw);
        let ejected = [&a, &b]
            .iter()
            .filter(|u| flags(&rw, "svc", &u.endpoint()) == "/failed_outlier_check")
            .count();
        assert_eq!(ejected, 1, "{driver}: one of three is 33%: {text}");
        let stats = rw.stats();
        assert!(
            stats["cluster.svc.outlier_detection.ejections_overflow"] >= 1,
            "{driver}"
        );
    }
}

#[test]
fn least_request_sends_fewer_requests_to_a_slow_endpoint() {
    for driver in drivers() {
        let fast: Vec<Faulty> = (0..3).map(|_| Faulty::start("fast")).collect();
        let slow = Faulty::start("slow");
        slow.set(Mode::Slow(Duration::from_millis(200)));
        let cluster = format!(
            r#"    endpoints: [{}, {}, {}, {}]
    load_balancing: {{ policy: least_request }}
"#,
            fast[0].endpoint(),
            fast[1].endpoint(),
            fast[2].endpoint(),
            slow.endpoint()
        );
        let (_rw, addr) = start(driver, &cluster);
        // Eight clients at once: the slow endpoint holds requests longer, so its
        // in-flight count is higher whenever a pick compares the two.
        let handles: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(move || spread(addr, 40)))
            .collect();
        let mut total = HashMap::new();
        for h in handles {
            for (k, v) in h.join().unwrap() {
                *total.entry(k).or_insert(0) += v;
            }
        }
        let (f, s) = (count(&total, "fast"), count(&total, "slow"));
        assert_eq!(f + s, 320, "{driver}: {total:?}");
        // A fair share would be 80 of 320: the slow endpoint is picked only when both
        // choices fall on it (1 in 16) or while it has nothing in flight. On a loaded
        // 2-core machine the clients keep fewer requests in flight, more picks are ties
        // between empty endpoints, and the count reached 40 (a CI run on 36e1eed): the
        // bound is three quarters of the fair share, which round robin cannot pass.
        assert!(s < 60, "{driver}: fast {f}, slow {s}");
    }
}

#[test]
fn weighted_round_robin_follows_the_weights() {
    for driver in drivers() {
        let (a, b) = (Faulty::start("a"), Faulty::start("b"));
        let cluster = format!(
            r#"    endpoints: [{{ address: "{}", weight: 3 }}, "{}"]
"#,
            a.endpoint(),
            b.endpoint()
        );
        let (rw, addr) = start(driver, &cluster);
        let counts = spread(addr, 200);
        let (ca, cb) = (count(&counts, "a"), count(&counts, "b"));
        // Each worker's smooth round robin is exact over its cycle; two workers each
        // take their share of 200 requests: 150/50 within a cycle per worker.
        assert_eq!(ca + cb, 200, "{driver}");
        assert!((140..=160).contains(&ca), "{driver}: {counts:?}");
        // Envoy's gauge of the heaviest endpoint.
        assert_eq!(rw.stats()["cluster.svc.max_host_weight"], 3, "{driver}");
    }
}

#[test]
fn priorities_fail_over_and_panic_mode_uses_every_endpoint() {
    for driver in drivers() {
        let (p0, p1) = (Faulty::start("p0"), Faulty::start("p1"));
        let cluster = format!(
            r#"    endpoints:
      - {{ address: "{}", priority: 0 }}
      - {{ address: "{}", priority: 1 }}
    health_check:
      http: {{ path: /healthz }}
      interval: 100ms
      no_traffic_interval: 100ms
      timeout: 500ms
      unhealthy_threshold: 1
      healthy_threshold: 1
"#,
            p0.endpoint(),
            p1.endpoint()
        );
        let (rw, addr) = start(driver, &cluster);
        let counts = spread(addr, 30);
        assert_eq!(
            count(&counts, "p0"),
            30,
            "{driver}: all to P0 while healthy"
        );

        p0.set_health(Mode::Status(503));
        assert!(flags_become(&rw, "svc", &p0.endpoint(), |f| f != "healthy"));
        let counts = spread(addr, 30);
        assert_eq!(
            count(&counts, "p1"),
            30,
            "{driver}: P1 takes over: {counts:?}"
        );

        // Both unhealthy: every priority is in panic, and Envoy then shares the load
        // by the priorities' host counts (one each here) over all their endpoints.
        p1.set_health(Mode::Status(503));
        assert!(flags_become(&rw, "svc", &p1.endpoint(), |f| f != "healthy"));
        let counts = spread(addr, 60);
        let (c0, c1) = (count(&counts, "p0"), count(&counts, "p1"));
        assert_eq!(c0 + c1, 60, "{driver}: {counts:?}");
        assert!(
            c0 >= 15 && c1 >= 15,
            "{driver}: total panic, 1:1 by host counts: {counts:?}"
        );
        assert!(rw.stats()["cluster.svc.lb_healthy_panic"] > 0, "{driver}");
    }
}

#[test]
fn maglev_and_ring_hash_keep_a_key_on_one_endpoint() {
    for driver in drivers() {
        for policy in ["maglev", "ring_hash"] {
            let ups: Vec<Faulty> = (0..4).map(|i| Faulty::start(&format!("u{i}"))).collect();
            let list: Vec<String> = ups
                .iter()
                .map(|u| format!("\"{}\"", u.endpoint()))
                .collect();
            let cluster = format!(
                r#"    endpoints: [{}]
    load_balancing:
      policy: {policy}
      hash_on: [{{ header: x-user }}]
"#,
                list.join(", ")
            );
            let (_rw, addr) = start(driver, &cluster);
            let mut owners = HashMap::new();
            for user in 0..40 {
                let header = format!("x-user: user-{user}\r\n");
                let (_, first) = send(addr, "/svc/x", &header);
                for _ in 0..3 {
                    let (_, again) = send(addr, "/svc/x", &header);
                    assert_eq!(again, first, "{driver} {policy}: user-{user} moved");
                }
                *owners.entry(first).or_insert(0) += 1;
            }
            assert!(owners.len() >= 3, "{driver} {policy}: {owners:?}");
        }
    }
}

#[test]
fn a_hash_cookie_is_set_when_absent_and_then_followed() {
    for driver in drivers() {
        let ups: Vec<Faulty> = (0..3).map(|i| Faulty::start(&format!("u{i}"))).collect();
        let list: Vec<String> = ups
            .iter()
            .map(|u| format!("\"{}\"", u.endpoint()))
            .collect();
        let cluster = format!(
            r#"    endpoints: [{}]
    load_balancing:
      policy: ring_hash
      hash_on: [{{ cookie: {{ name: sticky, ttl: 1h, path: / }} }}]
"#,
            list.join(", ")
        );
        let (_rw, addr) = start(driver, &cluster);
        let mut stream = connect(addr).unwrap();
        write!(stream, "GET /svc/x HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        let response = read_response(&mut BufReader::new(stream), false).unwrap();
        let cookie = response
            .header("set-cookie")
            .expect("a Set-Cookie")
            .to_owned();
        assert!(
            cookie.starts_with("sticky=\"") && cookie.contains("; Max-Age=3600; Path=/; HttpOnly"),
            "{driver}: {cookie}"
        );
        let value = cookie.split(';').next().unwrap().to_owned();
        let header = format!("cookie: {value}\r\n");
        let (_, first) = send(addr, "/svc/x", &header);
        for _ in 0..10 {
            assert_eq!(send(addr, "/svc/x", &header).1, first, "{driver}");
        }
    }
}

#[test]
fn an_endpoint_draining_itself_with_the_immediate_fail_header_leaves_at_once() {
    for driver in drivers() {
        let (a, b) = (Faulty::start("a"), Faulty::start("b"));
        let cluster = format!(
            r#"    endpoints: [{}, {}]
    health_check:
      http: {{ path: /healthz }}
      interval: 30s
      no_traffic_interval: 30s
      timeout: 1s
"#,
            a.endpoint(),
            b.endpoint()
        );
        let (rw, addr) = start(driver, &cluster);
        a.set(Mode::Draining);
        spread(addr, 10);
        assert!(
            wait_until(Duration::from_secs(2), || flags(&rw, "svc", &a.endpoint())
                .contains("/excluded_via_immediate_hc_fail")),
            "{driver}: {}",
            clusters(&rw)
        );
        a.reset_counts();
        let counts = spread(addr, 20);
        assert_eq!(a.requests(), 0, "{driver}: {counts:?}");
    }
}

/// envoyproxy/examples:locality-load-balancing/envoy.yaml @ bc4dd4a2 (tests/envoy/corpus):
/// priorities 0..2, two localities in priority 1, active HTTP checks on `/`. Its DNS
/// names become the addresses of local upstreams and its intervals are shortened; the
/// balancing is the file's. The sandbox's expectations, from counts: all to P0 while it
/// is healthy; when it fails, P1's two localities share (weights 1:1); when one of
/// those fails too, P1 is 50% healthy, × 1.4 overprovisioning = 70% of the traffic
/// (all to its healthy locality), and P2 takes the other 30%.
#[test]
fn envoys_locality_example_fails_over_by_priority_and_locality() {
    for driver in drivers() {
        let names = [
            "backend-local-1",
            "backend-local-2",
            "backend-remote-1",
            "backend-remote-2",
        ];
        let ups: Vec<Faulty> = names.iter().map(|n| Faulty::start(n)).collect();
        let (port, admin) = (free_port(), free_port());
        let mut yaml =
            std::fs::read_to_string("tests/envoy/corpus/locality-load-balancing_envoy.yaml")
                .unwrap()
                .replace("port_value: 8001", &format!("port_value: {admin}"))
                .replace("address: 0.0.0.0", "address: 127.0.0.1")
                .replace("port_value: 3000", &format!("port_value: {port}"))
                .replace("type: STRICT_DNS", "type: STATIC")
                .replace("interval: 2s", "interval: 0.1s")
                .replace("no_traffic_interval: 4s", "no_traffic_interval: 0.1s")
                .replace(
                    "no_traffic_healthy_interval: 4s",
                    "no_traffic_healthy_interval: 0.1s",
                );
        for (name, up) in names.iter().zip(&ups) {
            let port = up.addr.port();
            yaml = yaml
                .replace(
                    &format!("address: {name}\n                port_value: 8080"),
                    &format!("address: 127.0.0.1\n                port_value: {port}"),
                )
                .replace(
                    &format!("port_value: 8080\n            hostname: {name}"),
                    &format!("port_value: {port}\n            hostname: {name}"),
                );
        }
        assert!(!yaml.contains("8080"), "every endpoint rewritten:\n{yaml}");
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let share = |n: usize| {
            let mut counts = HashMap::new();
            for _ in 0..n {
                let (_, body) = send(addr, "/", "");
                *counts.entry(body).or_insert(0usize) += 1;
            }
            counts
        };
        let endpoint = |i: usize| ups[i].endpoint();
        let counts = share(40);
        assert_eq!(
            count(&counts, "backend-local-1"),
            40,
            "{driver}: {counts:?}"
        );

        // Fails endpoint `i`'s checks and traffic, and waits for the checks to say so.
        let fail = |i: usize| {
            ups[i].set_all(Mode::Status(503));
            assert!(
                flags_become(&rw, "backend", &endpoint(i), |f| f
                    .contains("failed_active_hc")),
                "{driver}: {}",
                clusters(&rw)
            );
        };
        fail(0);
        let counts = share(200);
        let (l2, r1) = (
            count(&counts, "backend-local-2"),
            count(&counts, "backend-remote-1"),
        );
        assert_eq!(l2 + r1, 200, "{driver}: {counts:?}");
        assert!(
            (70..=130).contains(&l2),
            "{driver}: 1:1 localities: {counts:?}"
        );

        fail(1);
        let counts = share(400);
        let (r1, r2) = (
            count(&counts, "backend-remote-1"),
            count(&counts, "backend-remote-2"),
        );
        assert_eq!(r1 + r2, 400, "{driver}: {counts:?}");
        // 70% / 30% of 400, with room for chance (the priority is drawn per request).
        assert!((240..=320).contains(&r1), "{driver}: {counts:?}");
    }
}

/// A reload that changes a checked cluster's check keeps its endpoints' verdicts (no
/// outage while the new settings start); an outlier ejection survives a reload that keeps
/// the cluster's settings. Two members at one address are one endpoint to check: the
/// start does not wait for a round that cannot finish.
#[test]
fn reloads_keep_verdicts_and_one_address_twice_is_checked_once() {
    for driver in drivers() {
        let (a, b) = (Faulty::start("a"), Faulty::start("b"));
        let cluster = |interval: &str| {
            format!(
                r#"    endpoints: [{a}, {a}, {b}]
    health_check:
      http: {{ path: /healthz }}
      interval: {interval}
      no_traffic_interval: {interval}
      timeout: 1s
    outlier_detection: {{ consecutive_5xx: 2, base_ejection_time: 30s, max_ejection_percent: 50 }}
"#,
                a = a.endpoint(),
                b = b.endpoint()
            )
        };
        let started = Instant::now();
        let (rw, addr) = start(driver, &cluster("100ms"));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{driver}: the start waited {:?} for its first round",
            started.elapsed()
        );
        assert_eq!(flags(&rw, "svc", &a.endpoint()), "healthy", "{driver}");
        assert_eq!(flags(&rw, "svc", &b.endpoint()), "healthy", "{driver}");
        // Eject b (its traffic fails; its checks still pass).
        b.set(Mode::Status(500));
        assert!(
            wait_until(Duration::from_secs(3), || {
                spread(addr, 5);
                flags(&rw, "svc", &b.endpoint()) == "/failed_outlier_check"
            }),
            "{driver}: {}",
            clusters(&rw)
        );
        // A new interval: the cluster stays checked, nothing starts over.
        let yaml = std::fs::read_to_string(rw.config_path())
            .unwrap()
            .replace("interval: 100ms", "interval: 200ms");
        std::fs::write(rw.config_path(), yaml).unwrap();
        let reload = common::post(rw.admin_addr(), "/reload").unwrap();
        assert_eq!(reload.status, 200, "{driver}");
        assert_eq!(flags(&rw, "svc", &a.endpoint()), "healthy", "{driver}");
        assert_eq!(
            flags(&rw, "svc", &b.endpoint()),
            "/failed_outlier_check",
            "{driver}: the ejection survives"
        );
        let counts = spread(addr, 20);
        assert_eq!(count(&counts, "a"), 20, "{driver}: {counts:?}");
    }
}

/// Health checks keep each endpoint's connection between checks (Envoy's
/// `reuse_connection`, default true), native and Envoy configs alike; with
/// `reuse_connection: false` every check opens its own. TCP checks that expect bytes
/// keep theirs too.
#[test]
fn health_checks_reuse_their_connection_unless_told_not_to() {
    let checked = |a: &Faulty, n: usize| wait_until(Duration::from_secs(5), || a.checks() >= n);
    for driver in drivers() {
        // Native, HTTP: one connection for every check.
        let a = Faulty::start("a");
        let cluster = format!(
            "    endpoints: [{}]\n    health_check:\n      http: {{ path: /healthz }}\n      interval: 50ms\n      no_traffic_interval: 50ms\n      timeout: 1s\n",
            a.endpoint()
        );
        let (rw, _) = start(driver, &cluster);
        assert!(checked(&a, 6), "{driver}: {} checks", a.checks());
        assert_eq!(a.connections(), 1, "{driver}: {} checks", a.checks());
        assert_eq!(flags(&rw, "svc", &a.endpoint()), "healthy", "{driver}");
        drop(rw);

        // Native, `reuse_connection: false`: a connection per check.
        let b = Faulty::start("b");
        let cluster = format!(
            "    endpoints: [{}]\n    health_check:\n      http: {{ path: /healthz }}\n      interval: 50ms\n      no_traffic_interval: 50ms\n      timeout: 1s\n      reuse_connection: false\n",
            b.endpoint()
        );
        let (rw, _) = start(driver, &cluster);
        assert!(checked(&b, 6), "{driver}");
        let (checks, connections) = (b.checks(), b.connections());
        assert!(
            connections >= checks,
            "{driver}: {connections} connections for {checks} checks"
        );
        drop(rw);

        // Envoy: the default keeps it, `reuse_connection: false` does not; a TCP check
        // with `send` and `receive` keeps it too.
        for (reuse, check) in [
            ("", "http_health_check: { path: /healthz }"),
            ("reuse_connection: false, ", "http_health_check: { path: /healthz }"),
            ("", "tcp_health_check: { send: { text: \"474554202f6865616c74687a20485454502f312e310d0a0d0a\" }, receive: [{ text: \"323030\" }] }"),
        ] {
            let app = Faulty::start("app");
            let (port, admin) = (free_port(), free_port());
            let routes = "              routes:\n              - match: { prefix: / }\n                route: { cluster: app }\n";
            let yaml = common::envoy::bootstrap((admin, port), routes, "", &[("app", app.addr.port())])
                .replace(
                    "  - name: app\n    load_assignment:",
                    &format!("  - name: app\n    health_checks: [{{ timeout: 1s, interval: 0.05s, no_traffic_interval: 0.05s, unhealthy_threshold: 2, healthy_threshold: 1, {reuse}{check} }}]\n    load_assignment:"),
                );
            let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
            assert!(checked(&app, 6), "{driver} {reuse}{check}: {} checks", app.checks());
            let (checks, connections) = (app.checks(), app.connections());
            if reuse.is_empty() {
                assert_eq!(connections, 1, "{driver} {check}: {checks} checks");
            } else {
                assert!(connections >= checks, "{driver}: {connections} connections for {checks} checks");
            }
            let stats = rw.stats();
            assert_eq!(stats["cluster.app.health_check.failure"], 0, "{driver} {reuse}{check}");
            drop(rw);
        }
    }
}
