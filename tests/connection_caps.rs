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
