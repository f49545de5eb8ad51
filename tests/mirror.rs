//! Shadow traffic through the real binary: a route's `mirror` copies requests to another
//! cluster with Host suffixed `-shadow` (or kept), with the same method, path and body;
//! the client always gets the primary's answer, and a shadow that hangs or is down
//! neither slows nor fails it; a share is mirrored at its proportion; a request whose
//! body streams is not mirrored but counted. Both drivers.

mod common;

use std::{
    io::{BufReader, Write},
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::faulty::{Faulty, Mode};
use common::upstream::Upstream;
use common::{connect, drivers, exchange, free_port, read_response, Ringway};

fn config(port: u16, admin: u16, (primary, shadow): (&str, &str), percent: &str) -> String {
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ prefix: /keep/ }}
        cluster: primary
        mirror: [{{ cluster: shadow, keep_host: true }}]
      - match: {{ prefix: / }}
        cluster: primary
        timeout: 1s
        mirror: [{{ cluster: shadow, percent: {percent} }}]
clusters:
  - name: primary
    endpoints: [{primary}]
  - name: shadow
    endpoints: [{shadow}]
"#
    )
}

fn start(driver: &str, upstreams: (&str, &str), percent: &str) -> (Ringway, SocketAddr) {
    let (port, admin) = (free_port(), free_port());
    let rw = Ringway::start(
        &config(port, admin, upstreams, percent),
        admin,
        &["--driver", driver],
    );
    (rw, ([127, 0, 0, 1], port).into())
}

/// One GET on a new connection: the status and body.
fn get(addr: SocketAddr) -> (u16, String) {
    let r = exchange(addr, b"GET /app/x HTTP/1.1\r\nHost: test\r\n\r\n");
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

#[test]
fn the_shadow_gets_each_request_with_its_host_suffixed_and_the_client_the_primarys_answer() {
    for driver in drivers() {
        let (primary, shadow) = (Upstream::start(false), Upstream::start(false));
        let (rw, addr) = start(driver, (&primary.endpoint(), &shadow.endpoint()), "100");
        let requests: [&[u8]; 4] = [
            b"GET /app/a?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
            b"POST /app/b HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\r\nhello world",
            b"PUT /app/c HTTP/1.1\r\nHost: [::1]:80\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"POST /keep/d HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 2\r\n\r\nok",
        ];
        let hosts = [
            "example.com-shadow:8080",
            "example.com-shadow",
            "[::1]-shadow:80",
            "example.com:8080",
        ];
        for (raw, host) in requests.iter().zip(hosts) {
            let r = exchange(addr, raw);
            assert_eq!(r.status, 200, "{driver}");
            let (sent, copied) = (primary.next_seen(), shadow.next_seen());
            assert_eq!(copied.request_line(), sent.request_line(), "{driver}");
            assert_eq!(copied.body, sent.body, "{driver}");
            // The client got the primary's echo of its body.
            assert_eq!(r.body, sent.body, "{driver}");
            assert_eq!(copied.header("host").as_deref(), Some(host), "{driver}");
            assert!(
                !sent.header("host").unwrap().contains("-shadow"),
                "{driver}"
            );
        }
        assert_eq!(
            rw.wait_for_stat("cluster.shadow.upstream_rq_2xx", 4),
            4,
            "{driver}"
        );
        assert_eq!(
            rw.wait_for_stat("cluster.shadow.upstream_rq_completed", 4),
            4
        );

        // A body that arrived with its head but did not fit beside the upstream head in
        // the write chunk (held in the read buffer) is mirrored whole. Should the kernel
        // have split the write, it streamed and was skipped (counted) instead.
        let big = vec![b'x'; 16_300];
        let mut raw = format!(
            "POST /app/big HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            big.len()
        )
        .into_bytes();
        raw.extend_from_slice(&big);
        let r = exchange(addr, &raw);
        assert_eq!((r.status, r.body.len()), (200, big.len()), "{driver}");
        assert_eq!(primary.next_seen().body, big);
        let (mirrored, skipped_before) = match shadow.seen.recv_timeout(Duration::from_secs(2)) {
            Ok(copied) => {
                assert!(copied.body == big, "{driver}: the held body differs");
                (5, 0)
            }
            Err(_) => (4, 1),
        };

        // A body that streams after its head is forwarded but not mirrored: counted.
        let mut conn = connect(addr).unwrap();
        conn.write_all(b"POST /app/e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(150));
        conn.write_all(b"later").unwrap();
        let r = read_response(&mut BufReader::new(conn), false).unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"later"[..]), "{driver}");
        assert_eq!(primary.next_seen().body, b"later");
        let skipped = "cluster.shadow.upstream_rq_shadow_skipped";
        let skipped_now = skipped_before + 1;
        assert_eq!(
            rw.wait_for_stat(skipped, skipped_now),
            skipped_now,
            "{driver}"
        );
        assert!(
            shadow
                .seen
                .recv_timeout(Duration::from_millis(300))
                .is_err(),
            "{driver}: a streamed body was mirrored"
        );
        let total = rw.stats()["cluster.shadow.upstream_rq_total"];
        assert_eq!(total, mirrored, "{driver}");
    }
}

#[test]
fn a_shadow_that_hangs_or_is_down_neither_slows_nor_fails_the_client() {
    for driver in drivers() {
        let (primary, shadow) = (Faulty::start("primary"), Faulty::start("shadow"));
        shadow.set(Mode::Hang);
        let (rw, addr) = start(driver, (&primary.endpoint(), &shadow.endpoint()), "100");
        let n = 100;
        let started = Instant::now();
        for _ in 0..n {
            assert_eq!(get(addr), (200, "primary".to_string()), "{driver}");
        }
        // Each shadow hangs for the route's 1 s timeout: a client that waited for them
        // would take 100 s; it waited for none.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "{driver}: {took:?}");
        assert_eq!(rw.wait_for_stat("cluster.shadow.upstream_rq_total", n), n);
        let timeouts = "cluster.shadow.upstream_rq_timeout";
        let deadline = Instant::now() + Duration::from_secs(5);
        while rw.stats()[timeouts] < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(rw.stats()[timeouts], n, "{driver}");
        assert_eq!(
            rw.stats()["cluster.shadow.upstream_rq_active"],
            0,
            "{driver}"
        );
        // Each hung shadow's connection was closed by ringway with the shadow on it.
        let stats = rw.stats();
        let opened = stats["cluster.shadow.upstream_cx_total"];
        assert!(opened > 0, "{driver}");
        let local = "cluster.shadow.upstream_cx_destroy_local_with_active_rq";
        assert_eq!(rw.wait_for_stat(local, opened), opened, "{driver}");
        assert_eq!(
            stats["cluster.shadow.upstream_cx_destroy_remote"], 0,
            "{driver}"
        );

        // Down: its port refuses connections.
        shadow.kill();
        let started = Instant::now();
        for _ in 0..n {
            assert_eq!(get(addr), (200, "primary".to_string()), "{driver}");
        }
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "{driver}: {took:?}");
        let fails = "cluster.shadow.upstream_cx_connect_fail";
        assert_eq!(rw.wait_for_stat(fails, n), n, "{driver}");
        // Refused: the endpoint's answer, a remote close each.
        let remote = "cluster.shadow.upstream_cx_destroy_remote";
        assert_eq!(rw.wait_for_stat(remote, n), n, "{driver}");
        assert_eq!(
            rw.stats()["cluster.primary.upstream_rq_2xx"],
            2 * n,
            "{driver}"
        );
    }
}

#[test]
fn a_fifty_percent_mirror_copies_about_half_of_the_requests() {
    for driver in drivers() {
        let (primary, shadow) = (Faulty::start("primary"), Faulty::start("shadow"));
        let (rw, addr) = start(driver, (&primary.endpoint(), &shadow.endpoint()), "50");
        for _ in 0..400 {
            assert_eq!(get(addr).0, 200, "{driver}");
        }
        // The last shadows are sent after their clients had their answers.
        std::thread::sleep(Duration::from_millis(300));
        let mirrored = rw.stats()["cluster.shadow.upstream_rq_total"];
        // 50% of 400: a standard deviation of 10; 60 is far outside chance.
        assert!((140..=260).contains(&mirrored), "{driver}: {mirrored}");
        assert_eq!(
            rw.wait_for_stat("cluster.shadow.upstream_rq_2xx", mirrored),
            mirrored
        );
        assert_eq!(shadow.requests() as u64, mirrored, "{driver}");
        assert_eq!(primary.requests(), 400, "{driver}");
    }
}

#[test]
fn the_mirror_key_reaches_the_route() {
    let yaml = |mirror: &str| {
        format!(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: {{ prefix: / }}\n        cluster: a\n        mirror: {mirror}\nclusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n  - name: b\n    endpoints: [127.0.0.1:2]\n"
        )
    };
    let path = std::path::Path::new("t.yaml");
    let config = ringway::config::Config::parse(
        &yaml("[{ cluster: b, percent: 12.5, keep_host: true }, { cluster: a }]"),
        path,
    )
    .unwrap();
    let mirrors = &config.listeners[0].routes[0].mirrors;
    assert_eq!(mirrors.len(), 2);
    assert_eq!(mirrors[0].cluster, "b");
    assert_eq!(
        (
            mirrors[0].fraction.numerator,
            mirrors[0].fraction.denominator
        ),
        (125_000, 1_000_000)
    );
    assert!(mirrors[0].keep_host);
    assert!(mirrors[1].fraction.hits(u64::MAX), "100 % by default");
    assert!(!mirrors[1].keep_host);

    let unknown = common::refused_config(&yaml("[{ cluster: nope }]"));
    assert!(unknown.contains("unknown cluster \"nope\""), "{unknown}");
    let over = common::refused_config(&yaml("[{ cluster: b, percent: 100.5 }]"));
    assert!(over.contains("from 0 to 100"), "{over}");
    let typo = common::refused_config(&yaml("[{ cluster: b, keephost: true }]"));
    assert!(typo.contains("keephost"), "{typo}");
}
