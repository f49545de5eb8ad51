//! Lifecycle under load, through the real binary, under both drivers: hot reload
//! (alternating configs and a bad one), SIGTERM with slow requests in flight, a binary
//! upgrade by hot restart, and the admin drain commands. The load clients never retry
//! (tests/common/load.rs), so a single lost request fails a test.
//!
//! The issue's 30 s load runs are scaled down to keep the file under ~30 s of wall time
//! on two cores: ~3 s of reloads every ~400 ms per driver, and ~1.5 s around the
//! upgrade; the structure (load, changes in the middle, count every failure) is kept.

mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::{
    load::{Load, OnClose, Outcome},
    upstream::Upstream,
    *,
};

fn variant(port: u16, admin: u16, body: &str) -> String {
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ prefix: / }}
        direct_response: {{ status: 200, body: "{body}" }}
"#
    )
}

fn assert_no_failures(driver: &str, outcomes: &[Outcome]) {
    for (i, o) in outcomes.iter().enumerate() {
        assert!(
            o.failures.is_empty(),
            "{driver}: client {i}: {} failures ({} refused) after {} ok: {:?}",
            o.failures.len(),
            o.refused,
            o.ok,
            &o.failures[..o.failures.len().min(5)]
        );
    }
}

#[test]
fn reloads_under_load_lose_no_request_and_a_bad_config_changes_nothing() {
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let rw = Ringway::start(&variant(port, admin, "A 1"), admin, &["--driver", driver]);
        let load = Load::start(addr, 4, "/", "", OnClose::Reconnect);
        // Version 1 serves "A 1"; each good reload serves "<A|B> <version>".
        let steps = ["B", "bad", "A", "B", "bad", "A", "B"];
        let mut version = 1;
        for step in steps {
            std::thread::sleep(Duration::from_millis(400));
            let yaml = if step == "bad" {
                variant(port, admin, "x").replace("direct_response", "direct_respons")
            } else {
                variant(port, admin, &format!("{step} {}", version + 1))
            };
            std::fs::write(rw.config_path(), yaml).unwrap();
            let r = post(rw.admin, "/reload").unwrap();
            let text = String::from_utf8_lossy(&r.body).into_owned();
            if step == "bad" {
                assert_eq!(r.status, 400, "{driver}: {text}");
                // File, line, column and field of the error.
                let expected =
                    format!("{}:8:9: listeners[0].routes[0]", rw.config_path().display());
                assert!(text.contains(&expected), "{driver}: {text}");
                assert!(text.contains("direct_respons"), "{driver}: {text}");
            } else {
                version += 1;
                assert_eq!(r.status, 200, "{driver}: {text}");
                assert_eq!(text, format!("reloaded: config version {version}\n"));
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let outcomes = load.finish();
        assert_no_failures(driver, &outcomes);
        let mut seen = std::collections::BTreeSet::new();
        for (i, o) in outcomes.iter().enumerate() {
            // Per client, versions only go forward: a connection accepted before a swap
            // gets at most its current answer from the old config, then reconnects.
            let versions: Vec<u64> = o
                .bodies
                .iter()
                .map(|b| b.split(' ').nth(1).unwrap().parse().unwrap())
                .collect();
            assert!(
                versions.windows(2).all(|w| w[0] <= w[1]),
                "{driver}: client {i} went back: {versions:?}"
            );
            seen.extend(o.bodies.iter().cloned());
        }
        for expected in ["A 1", "B 2", "A 3", "B 4", "A 5", "B 6"] {
            assert!(
                seen.contains(expected),
                "{driver}: never saw {expected:?}: {seen:?}"
            );
        }
        let stats = rw.stats();
        assert_eq!(stats["server.config_version"], 6, "{driver}");
        assert_eq!(stats["server.reload_attempts"], 7, "{driver}");
        assert_eq!(stats["server.reload_successes"], 5, "{driver}");
        assert_eq!(stats["server.reload_failures"], 2, "{driver}");
        // SIGHUP reloads too.
        std::fs::write(rw.config_path(), variant(port, admin, "A 7")).unwrap();
        signal(rw.pid(), "HUP");
        let deadline = Instant::now() + Duration::from_secs(5);
        while rw.stats()["server.config_version"] != 7 {
            assert!(Instant::now() < deadline, "{driver}: SIGHUP did not reload");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(get(addr, "/").unwrap().body, b"A 7");
        assert!(rw.terminate().success(), "{driver}");
    }
}

#[test]
fn a_reload_adds_and_removes_listeners_and_refuses_a_worker_count_change() {
    for driver in drivers() {
        let (p1, p2, admin) = (free_port(), free_port(), free_port());
        let rw = Ringway::start(&variant(p1, admin, "one"), admin, &["--driver", driver]);
        let both = format!(
            "{}  - name: second\n    address: 127.0.0.1:{p2}\n    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200, body: \"two\" }}\n",
            variant(p1, admin, "one")
        );
        std::fs::write(rw.config_path(), &both).unwrap();
        let managers = |rw: &Ringway| {
            let stats = rw.stats();
            [
                "listener_manager.listener_added",
                "listener_manager.listener_modified",
                "listener_manager.listener_removed",
                "listener_manager.listener_create_success",
            ]
            .map(|name| stats[name])
        };
        // The first load adds its listener, made on each of the two workers.
        assert_eq!(managers(&rw), [1, 0, 0, 2], "{driver}");
        assert_eq!(post(rw.admin, "/reload").unwrap().status, 200, "{driver}");
        assert_eq!(managers(&rw), [2, 0, 0, 4], "{driver}");
        let second = SocketAddr::from(([127, 0, 0, 1], p2));
        assert_eq!(get(second, "/").unwrap().body, b"two", "{driver}");
        // A keep-alive connection on the listener about to go away.
        let mut kept = std::io::BufReader::new(connect(second).unwrap());
        std::fs::write(rw.config_path(), both.replace("workers: 2", "workers: 3")).unwrap();
        let r = post(rw.admin, "/reload").unwrap();
        assert_eq!(r.status, 400, "{driver}");
        assert!(String::from_utf8_lossy(&r.body).contains("workers cannot change"));
        // The refused reload changed nothing.
        assert_eq!(managers(&rw), [2, 0, 0, 4], "{driver}");
        // The second listener goes; the first changes (its answer).
        std::fs::write(rw.config_path(), variant(p1, admin, "uno")).unwrap();
        assert_eq!(post(rw.admin, "/reload").unwrap().status, 200, "{driver}");
        assert_eq!(managers(&rw), [2, 1, 1, 6], "{driver}");
        // The removed listener's open connection finishes its request, then closes.
        use std::io::Write;
        kept.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let r = read_response(&mut kept, false).unwrap();
        assert_eq!((r.status, r.header("connection")), (200, Some("close")));
        // Closed for the drain after a response that would have kept it.
        let drained = rw.wait_for_stat("http.second.downstream_cx_drain_close", 1);
        assert_eq!(drained, 1, "{driver}");
        assert!(
            connect(second).is_err(),
            "{driver}: removed listener still accepts"
        );
        assert_eq!(
            get(SocketAddr::from(([127, 0, 0, 1], p1)), "/")
                .unwrap()
                .body,
            b"uno"
        );
        assert!(rw.terminate().success(), "{driver}");
    }
}

#[test]
fn sigterm_lets_slow_requests_in_flight_finish() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let yaml = format!(
            "workers: 2\nadmin: 127.0.0.1:{admin}\nlisteners:\n  - name: public\n    address: 127.0.0.1:{port}\n    routes:\n      - match: {{ prefix: / }}\n        cluster: slow\nclusters:\n  - name: slow\n    endpoints: [\"{}\"]\n",
            upstream.endpoint()
        );
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let load = Load::start(
            addr,
            4,
            "/slow",
            "x-delay-ms: 500\r\n",
            OnClose::StopOnClose,
        );
        // Every client has had one answer and is 100 ms into its next 500 ms request.
        load.wait_until_each_has(1, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let status = rw.terminate();
        let outcomes = load.finish();
        assert!(status.success(), "{driver}: {status}");
        assert_no_failures(driver, &outcomes);
        for (i, o) in outcomes.iter().enumerate() {
            // Each client had a request in flight at SIGTERM; it was answered, with
            // `connection: close`.
            assert!(o.ok >= 2 && o.last_closed, "{driver}: client {i}: {o:?}");
        }
        assert!(started.elapsed() < Duration::from_secs(3), "{driver}");
    }
}

#[test]
fn a_binary_upgrade_under_load_loses_no_request() {
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("hot-restart.sock");
        let socket = socket.to_str().unwrap();
        let yaml = variant(port, admin, "served");
        let mut old = Ringway::start(
            &yaml,
            admin,
            &[
                "--driver",
                driver,
                "--concurrency",
                "2",
                "--hot-restart-socket",
                socket,
            ],
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let load = Load::start(addr, 4, "/", "", OnClose::Reconnect);
        std::thread::sleep(Duration::from_millis(400));
        let new = Ringway::spawn(
            &yaml,
            admin,
            &[
                "--driver",
                driver,
                "--concurrency",
                "3",
                "--hot-restart-socket",
                socket,
                "--restart-epoch",
                "1",
            ],
        );
        let status = old
            .wait_exit(Duration::from_secs(10))
            .expect("the old process did not exit");
        assert!(status.success(), "{driver}: old process: {status}");
        std::thread::sleep(Duration::from_millis(400));
        let outcomes = load.finish();
        assert_no_failures(driver, &outcomes);
        assert!(outcomes.iter().all(|o| o.ok > 10), "{driver}");
        // The new process serves, with its own worker count, and took the admin socket.
        let stats = new.stats();
        assert_eq!(stats["server.concurrency"], 3, "{driver}");
        assert_eq!(get(rw_admin(&new), "/ready").unwrap().status, 200);
        assert_eq!(get(addr, "/").unwrap().body, b"served");
        assert!(new.terminate().success(), "{driver}");
    }
}

fn rw_admin(rw: &Ringway) -> SocketAddr {
    rw.admin
}

#[test]
fn drain_listeners_stops_accepting_and_quitquitquit_exits_zero() {
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        let mut rw = Ringway::start(&variant(port, admin, "x"), admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut open = std::io::BufReader::new(connect(addr).unwrap());
        assert_eq!(get(rw.admin, "/reload").unwrap().status, 400);
        assert_eq!(post(rw.admin, "/drain_listeners").unwrap().status, 200);
        let deadline = Instant::now() + Duration::from_secs(2);
        while connect(addr).is_ok() {
            assert!(Instant::now() < deadline, "{driver}: still accepting");
            std::thread::sleep(Duration::from_millis(10));
        }
        use std::io::Write;
        open.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut open, false).unwrap().status, 200);
        assert_eq!(get(rw.admin, "/ready").unwrap().status, 200);
        // Envoy's `listener_manager.listener_stopped`: every listener, each call.
        assert_eq!(post(rw.admin, "/drain_listeners").unwrap().status, 200);
        let stopped = rw.stats()["listener_manager.listener_stopped"];
        assert_eq!(stopped, 2, "{driver}");
        assert_eq!(post(rw.admin, "/quitquitquit").unwrap().status, 200);
        let status = rw.wait_exit(Duration::from_secs(5)).expect("did not exit");
        assert!(status.success(), "{driver}: {status}");
    }
}
