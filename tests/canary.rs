//! Canary traffic shifting through the real binary: routes split by weight over clusters
//! (native `weighted_clusters`, Envoy's `weighted_clusters`), sticky splits by a hash of
//! the request, and a reload shifting the split under load without a failed request.
//! Shares are asserted from counts over requests on new connections (spread across both
//! workers). Both drivers.

mod common;

use std::{
    collections::HashMap,
    io::{BufReader, Write},
    net::SocketAddr,
    time::Duration,
};

use common::faulty::Faulty;
use common::load::{Load, OnClose};
use common::{connect, drivers, free_port, read_response, Ringway};

/// One GET on a new connection: the body (the upstream's name) or `status:<code>`.
fn send(addr: SocketAddr, headers: &str) -> String {
    let mut stream = connect(addr).expect("connect to ringway");
    write!(stream, "GET /app/x HTTP/1.1\r\nHost: test\r\n{headers}\r\n").unwrap();
    let r = read_response(&mut BufReader::new(stream), false).expect("a response");
    if r.status == 200 {
        String::from_utf8_lossy(&r.body).into_owned()
    } else {
        format!("status:{}", r.status)
    }
}

fn shares(addr: SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        *counts.entry(send(addr, "")).or_insert(0) += 1;
    }
    counts
}

fn count(counts: &HashMap<String, usize>, key: &str) -> usize {
    counts.get(key).copied().unwrap_or(0)
}

fn native(port: u16, admin: u16, split: &str, stable: &Faulty, canary: &Faulty) -> String {
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ prefix: /app/ }}
{split}clusters:
  - name: stable
    endpoints: [{}]
  - name: canary
    endpoints: [{}]
"#,
        stable.endpoint(),
        canary.endpoint()
    )
}

fn weights(stable: u32, canary: u32) -> String {
    format!(
        "        weighted_clusters:\n          clusters: [{{ name: stable, weight: {stable} }}, {{ name: canary, weight: {canary} }}]\n"
    )
}

#[test]
fn a_route_splits_by_weight_and_a_reload_shifts_it_without_a_failure() {
    for driver in drivers() {
        let (stable, canary) = (Faulty::start("stable"), Faulty::start("canary"));
        let (port, admin) = (free_port(), free_port());
        let yaml = native(port, admin, &weights(90, 10), &stable, &canary);
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let counts = shares(addr, 1000);
        assert_eq!(count(&counts, "stable") + count(&counts, "canary"), 1000);
        // 10% of 1000: the standard deviation is under 1 point; 4 is far outside chance.
        assert!(
            (60..=140).contains(&count(&counts, "canary")),
            "{driver}: {counts:?}"
        );

        // Shift to 50/50 under load: no request fails.
        let load = Load::start(addr, 4, "/app/x", "", OnClose::Reconnect);
        load.wait_until_each_has(20, Duration::from_secs(10));
        std::fs::write(
            rw.config_path(),
            native(port, admin, &weights(50, 50), &stable, &canary),
        )
        .unwrap();
        assert_eq!(
            common::post(rw.admin_addr(), "/reload").unwrap().status,
            200
        );
        std::thread::sleep(Duration::from_millis(200));
        for outcome in load.finish() {
            assert!(
                outcome.failures.is_empty(),
                "{driver}: {:?}",
                outcome.failures
            );
            assert!(outcome.ok > 0, "{driver}");
        }
        let counts = shares(addr, 1000);
        assert!(
            (430..=570).contains(&count(&counts, "canary")),
            "{driver}: {counts:?}"
        );
    }
}

#[test]
fn a_sticky_split_keeps_each_user_on_one_cluster_at_the_same_proportions() {
    for driver in drivers() {
        let (stable, canary) = (Faulty::start("stable"), Faulty::start("canary"));
        let (port, admin) = (free_port(), free_port());
        let split = format!(
            "{}          sticky: true\n        hash_on: [{{ header: x-user }}]\n",
            weights(80, 20)
        );
        let rw = Ringway::start(
            &native(port, admin, &split, &stable, &canary),
            admin,
            &["--driver", driver],
        );
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut on_canary = 0;
        for user in 0..300 {
            let header = format!("x-user: user-{user}\r\n");
            let first = send(addr, &header);
            for _ in 0..2 {
                assert_eq!(send(addr, &header), first, "{driver}: user-{user} moved");
            }
            on_canary += usize::from(first == "canary");
        }
        // 20% of 300 users.
        assert!((30..=90).contains(&on_canary), "{driver}: {on_canary}");
        // Without the header, requests are split at random (both clusters answer).
        let counts = shares(addr, 200);
        assert!(count(&counts, "canary") > 10, "{driver}: {counts:?}");
        drop(rw);
    }
}

#[test]
fn envoys_weighted_clusters_split_and_refuse_what_they_cannot_do() {
    for driver in drivers() {
        let (stable, canary) = (Faulty::start("stable"), Faulty::start("canary"));
        let (port, admin) = (free_port(), free_port());
        let route = |extra: &str| {
            format!(
                "              routes:\n              - match: {{ prefix: /app/ }}\n                route:\n                  weighted_clusters:\n                    clusters:\n                    - {{ name: stable, weight: 70 }}\n                    - {{ name: canary, weight: 30 }}\n{extra}"
            )
        };
        let clusters = [
            ("stable", stable.addr.port()),
            ("canary", canary.addr.port()),
        ];
        let yaml = common::envoy::bootstrap((admin, port), &route(""), "", &clusters);
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let counts = shares(addr, 1000);
        assert!(
            (230..=370).contains(&count(&counts, "canary")),
            "{driver}: {counts:?}"
        );
        drop(rw);
        // A total_weight that is not the sum, and per-cluster header edits, are refused.
        let bad = common::envoy::bootstrap(
            (admin, port),
            &route("                    total_weight: 90\n"),
            "",
            &clusters,
        );
        let text = common::refused_config(&bad);
        assert!(
            text.contains("total_weight is 90 but the weights add up to 100"),
            "{text}"
        );
    }
}
