//! Connection caps through the real binary under both drivers: a listener's
//! `connection_limit` and the process's `max_connections`, each over every worker;
//! a connection over a cap is closed at once and counted, and connections are
//! admitted again once others close.

mod common;

use std::{
    io::{BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use common::*;

fn start(driver: &str, top_keys: &str, limit: &str) -> (Ringway, SocketAddr, SocketAddr) {
    let (a, b, admin) = (free_port(), free_port(), free_port());
    let yaml = format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
{top_keys}listeners:
  - name: a
    address: 127.0.0.1:{a}
{limit}    routes:
      - match: {{ prefix: / }}
        direct_response: {{ status: 200, body: "ok\n" }}
  - name: b
    address: 127.0.0.1:{b}
    routes:
      - match: {{ prefix: / }}
        direct_response: {{ status: 200, body: "ok\n" }}
"#
    );
    let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
    (rw, ([127, 0, 0, 1], a).into(), ([127, 0, 0, 1], b).into())
}

/// A keep-alive connection that was served once (so it is surely accepted and counted).
fn held(addr: SocketAddr) -> TcpStream {
    let mut conn = connect(addr).unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut BufReader::new(conn.try_clone().unwrap()), false).unwrap();
    assert_eq!(r.status, 200);
    conn
}

/// Whether a new connection is closed without an answer.
fn refused(addr: SocketAddr) -> bool {
    let mut conn = connect(addr).unwrap();
    let _ = conn.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut buf = [0u8; 64];
    matches!(conn.read(&mut buf), Ok(0) | Err(_))
}

/// Retries `check` for up to 2 s (a closed connection is counted off asynchronously).
fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_listener_admits_up_to_its_connection_limit_over_every_worker() {
    for driver in drivers() {
        let (rw, a, b) = start(driver, "", "    connection_limit: 3\n");
        // Enough connections that both workers get some.
        let mut open: Vec<_> = (0..3).map(|_| held(a)).collect();
        assert!(refused(a), "{driver}: a fourth connection was served");
        assert!(refused(a), "{driver}");
        // Another listener is not affected.
        drop(held(b));
        let stats = rw.stats();
        assert_eq!(stats["listener.a.downstream_cx_overflow"], 2, "{driver}");
        assert_eq!(stats["listener.b.downstream_cx_overflow"], 0, "{driver}");
        // One closes: a new one is admitted again.
        open.pop();
        assert!(
            eventually(|| !refused(a)),
            "{driver}: not admitted after a close"
        );
    }
}

#[test]
fn max_connections_caps_every_listener_together() {
    for driver in drivers() {
        let (rw, a, b) = start(driver, "max_connections: 2\n", "");
        let first = held(a);
        let _second = held(b);
        assert!(refused(b), "{driver}");
        assert!(refused(a), "{driver}");
        let stats = rw.stats();
        assert_eq!(
            stats["listener.b.downstream_global_cx_overflow"], 1,
            "{driver}"
        );
        assert_eq!(
            stats["listener.a.downstream_global_cx_overflow"], 1,
            "{driver}"
        );
        drop(first);
        assert!(
            eventually(|| !refused(a)),
            "{driver}: not admitted after a close"
        );
    }
}

/// Sends `GET /` on `conn` and reads the answer: its status and `connection` header.
fn ask(conn: &mut TcpStream) -> (u16, Option<String>) {
    conn.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut BufReader::new(conn.try_clone().unwrap()), false).unwrap();
    (r.status, r.header("connection").map(str::to_owned))
}

/// Whether the server closes `conn` within `within`.
fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    conn.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 16];
    matches!(conn.read(&mut buf), Ok(0))
}

#[test]
fn a_connection_ends_after_its_request_cap_and_at_its_age_limit() {
    for driver in drivers() {
        let (rw, a, b) = start(
            driver,
            "",
            "    max_requests_per_connection: 3\n    max_connection_duration: 400ms\n",
        );
        // The third request is the last: answered with `connection: close`, then closed.
        let mut conn = connect(a).unwrap();
        assert_eq!(ask(&mut conn), (200, None), "{driver}");
        assert_eq!(ask(&mut conn), (200, None), "{driver}");
        assert_eq!(ask(&mut conn), (200, Some("close".into())), "{driver}");
        assert!(closed_within(&mut conn, Duration::from_secs(2)), "{driver}");
        let name = "http.a.downstream_cx_max_requests_reached";
        assert_eq!(rw.wait_for_stat(name, 1), 1, "{driver}");
        // An idle connection is closed when it reaches its age, not at the idle timeout
        // (60 s), and counted as such.
        let opened = Instant::now();
        let mut idle = connect(a).unwrap();
        assert_eq!(ask(&mut idle), (200, None), "{driver}");
        assert!(closed_within(&mut idle, Duration::from_secs(3)), "{driver}");
        let waited = opened.elapsed();
        assert!(
            waited >= Duration::from_millis(350) && waited < Duration::from_secs(2),
            "{driver}: closed after {waited:?}"
        );
        // So is one that never sent a request.
        let mut quiet = connect(a).unwrap();
        assert!(
            closed_within(&mut quiet, Duration::from_secs(3)),
            "{driver}"
        );
        let name = "http.a.downstream_cx_max_duration_reached";
        assert_eq!(rw.wait_for_stat(name, 2), 2, "{driver}");
        let stats = rw.stats();
        assert_eq!(stats["http.a.downstream_cx_idle_timeout"], 0, "{driver}");
        // The other listener has no caps.
        let mut other = connect(b).unwrap();
        for _ in 0..4 {
            assert_eq!(ask(&mut other), (200, None), "{driver}");
        }
    }
}
