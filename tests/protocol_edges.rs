//! HTTP/1.1 edges a review found wrong, each through the real binary under both drivers:
//! absolute-form targets with an empty path, HTTP/1.0 requests without Host, interim
//! responses and HTTP/1.0 clients, `Date` on every response, and the lingering close
//! after a response that ends the connection.

mod common;

use std::{
    io::{BufReader, Read, Write},
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::{
    scripted::{Scripted, Then},
    upstream::Upstream,
    *,
};

fn start(driver: &str, endpoint: &str) -> (Ringway, SocketAddr) {
    start_on(driver, |port, admin| {
        format!(
            r#"workers: 1
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ path: /direct }}
        direct_response: {{ status: 200, body: "ok\n" }}
      - match: {{ prefix: / }}
        cluster: up
clusters:
  - name: up
    endpoints: ["{endpoint}"]
"#
        )
    })
}

#[test]
fn absolute_form_with_an_empty_path_means_slash() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (_rw, addr) = start(driver, &up.endpoint());
        let r = exchange(
            addr,
            b"GET http://example.test HTTP/1.1\r\nHost: example.test\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
        let seen = up.next_seen();
        assert_eq!(seen.request_line(), "GET / HTTP/1.1", "{driver}");
        assert_eq!(seen.header("host").as_deref(), Some("example.test"));

        let r = exchange(
            addr,
            b"GET http://example.test?q=1 HTTP/1.1\r\nHost: example.test\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
        assert_eq!(
            up.next_seen().request_line(),
            "GET /?q=1 HTTP/1.1",
            "{driver}"
        );
    }
}

#[test]
fn http10_without_host_gets_the_endpoints_host() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (_rw, addr) = start(driver, &up.endpoint());
        let r = exchange(addr, b"GET /x HTTP/1.0\r\n\r\n");
        assert_eq!(r.status, 200, "{driver}");
        let seen = up.next_seen();
        assert_eq!(seen.request_line(), "GET /x HTTP/1.1", "{driver}");
        assert_eq!(seen.header("host"), Some(up.addr.to_string()), "{driver}");
        assert_eq!(
            seen.head.matches("\r\nhost:").count() + seen.head.matches("\r\nHost:").count(),
            1
        );

        // A Host the client sent is kept as it is.
        exchange(addr, b"GET /x HTTP/1.0\r\nHost: mine\r\n\r\n");
        assert_eq!(up.next_seen().header("host").as_deref(), Some("mine"));
    }
}

/// An upstream that sends `103 Early Hints` before its answer.
fn early_hints() -> Scripted {
    Scripted::start(|ex| {
        ex.send(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n");
        ex.send(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n");
        Then::Next
    })
}

#[test]
fn interim_responses_never_reach_http10_clients() {
    for driver in drivers() {
        let up = early_hints();
        let (_rw, addr) = start(driver, &up.addr.to_string());
        let mut conn = connect(addr).unwrap();
        conn.write_all(b"GET /x HTTP/1.0\r\n\r\n").unwrap();
        let mut all = Vec::new();
        conn.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{driver}: {text}");
        assert!(!text.contains("103"), "{driver}: {text}");
        assert!(text.ends_with("\r\n\r\nok\n"), "{driver}: {text}");

        // An HTTP/1.1 client gets the hint first.
        let mut conn = connect(addr).unwrap();
        conn.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(conn);
        let hint = read_response(&mut reader, true).unwrap();
        assert_eq!(hint.status, 103, "{driver}");
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    }
}

fn is_imf_fixdate(value: &str) -> bool {
    // `Sat, 05 Dec 2026 00:06:55 GMT`
    let b = value.as_bytes();
    b.len() == 29
        && value.ends_with(" GMT")
        && ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&&value[..3])
        && &value[3..5] == ", "
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[12..16].iter().all(u8::is_ascii_digit)
        && b[17..19].iter().all(u8::is_ascii_digit)
        && b[19] == b':'
        && b[22] == b':'
}

/// Whether an IMF-fixdate is this machine's time, give or take two seconds (compared as
/// `date(1)` formats the seconds around now).
fn is_about_now(value: &str) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (now - 2..=now + 2).any(|secs| {
        let formatted = std::process::Command::new("date")
            .args([
                "-u",
                "-d",
                &format!("@{secs}"),
                "+%a, %d %b %Y %H:%M:%S GMT",
            ])
            .env("LC_ALL", "C")
            .output()
            .expect("date(1)");
        String::from_utf8_lossy(&formatted.stdout).trim() == value
    })
}

fn dates(r: &Response) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("date"))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn every_response_carries_one_date() {
    let dated = Scripted::start(|ex| {
        ex.send(
            b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-length: 0\r\n\r\n",
        );
        Then::Next
    });
    for driver in drivers() {
        // The echo upstream sends no Date: ringway adds one.
        let up = Upstream::start(false);
        let (_rw, addr) = start(driver, &up.endpoint());
        let forwarded = exchange(addr, b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
        let direct = exchange(addr, b"GET /direct HTTP/1.1\r\nHost: t\r\n\r\n");
        let bad = exchange(addr, b"GET /x HTTP/1.1\r\n\r\n");
        assert_eq!(
            (forwarded.status, direct.status, bad.status),
            (200, 200, 400)
        );
        for r in [&forwarded, &direct, &bad] {
            let d = dates(r);
            assert_eq!(d.len(), 1, "{driver}: {r:?}");
            assert!(is_imf_fixdate(d[0]), "{driver}: {:?}", d[0]);
        }
        // The current second, by this machine's clock.
        assert!(
            is_about_now(dates(&direct)[0]),
            "{driver}: {:?}",
            dates(&direct)
        );

        // An upstream's own Date is kept, and not doubled.
        let (_rw2, addr2) = start(driver, &dated.addr.to_string());
        let r = exchange(addr2, b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(dates(&r), ["Sun, 06 Nov 1994 08:49:37 GMT"], "{driver}");
    }
}

#[test]
fn the_date_moves_with_the_clock() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (_rw, addr) = start(driver, &up.endpoint());
        let first = exchange(addr, b"GET /direct HTTP/1.1\r\nHost: t\r\n\r\n");
        std::thread::sleep(Duration::from_millis(2100));
        let second = exchange(addr, b"GET /direct HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_ne!(dates(&first), dates(&second), "{driver}");
    }
}

#[test]
fn a_closing_response_is_not_destroyed_by_late_bytes() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (_rw, addr) = start(driver, &up.endpoint());
        for _ in 0..3 {
            let body = vec![b'x'; 2 << 20];
            let mut raw = format!(
                "POST /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            raw.extend_from_slice(&body);
            // Bytes after the request that ringway will never read: closing with them
            // unread makes the kernel send a reset, which discards the response in flight.
            raw.extend_from_slice(&vec![b'j'; 64 * 1024]);
            let mut conn = connect(addr).unwrap();
            conn.write_all(&raw).unwrap();
            let r = read_response(&mut BufReader::new(conn), false)
                .unwrap_or_else(|e| panic!("{driver}: the response was lost: {e}"));
            assert_eq!(r.status, 200, "{driver}");
            assert_eq!(r.body.len(), body.len(), "{driver}");
        }
    }
}

#[test]
fn an_admin_client_that_sends_nothing_is_closed() {
    let (port, admin) = (free_port(), free_port());
    let _rw = Ringway::start(&direct_config(port, admin), admin, &[]);
    let mut silent = connect(([127, 0, 0, 1], admin).into()).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let began = Instant::now();
    let mut byte = [0u8; 1];
    let n = silent.read(&mut byte).unwrap_or(0);
    assert_eq!(n, 0, "the admin listener answered a request never sent");
    let waited = began.elapsed();
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(15)).contains(&waited),
        "closed after {waited:?}, expected the 10 s admin timeout"
    );
}
