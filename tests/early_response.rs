//! Upstreams that answer before they have read the request body, through the real
//! binary under both drivers: an early final response is forwarded at once (not a 502
//! after the route timeout), and with `expect_continue: forward` the upstream's
//! `100 Continue` reaches the client before ringway waits for the body.

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::{
    scripted::{Exchange, Scripted, Then},
    *,
};

fn start(driver: &str, upstream: SocketAddr, listener_keys: &str) -> (Ringway, SocketAddr) {
    start_on(driver, |port, admin| {
        format!(
            r#"workers: 1
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
{listener_keys}    routes:
      - match: {{ prefix: / }}
        cluster: up
clusters:
  - name: up
    endpoints: ["{upstream}"]
"#
        )
    })
}

fn content_length(ex: &Exchange<'_>) -> usize {
    ex.head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

fn expects_continue(ex: &Exchange<'_>) -> bool {
    ex.head
        .to_ascii_lowercase()
        .contains("\r\nexpect: 100-continue")
}

/// Answers 401 at once, without reading the body, and keeps the connection a while.
fn refuses_uploads() -> Scripted {
    Scripted::start(|ex| {
        ex.send(b"HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer\r\ncontent-length: 5\r\n\r\nnope\n");
        std::thread::sleep(Duration::from_secs(3));
        Then::Close
    })
}

#[test]
fn an_upstream_that_answers_before_reading_the_body_is_heard_at_once() {
    for driver in drivers() {
        let up = refuses_uploads();
        let (rw, addr) = start(driver, up.addr, "");
        let mut conn = connect(addr).unwrap();
        let size = 5 << 20;
        let began = Instant::now();
        conn.write_all(
            format!("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        // The body goes out from another thread; it may be cut off once ringway closes.
        let mut writer = conn.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let piece = vec![b'u'; 64 * 1024];
            for _ in 0..size / piece.len() {
                if writer.write_all(&piece).is_err() {
                    break;
                }
            }
        });
        let r = read_response(&mut BufReader::new(conn), false)
            .unwrap_or_else(|e| panic!("{driver}: no answer: {e}"));
        assert_eq!(r.status, 401, "{driver}");
        assert_eq!(r.body, b"nope\n", "{driver}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{driver}");
        assert_eq!(r.header("connection"), Some("close"), "{driver}");
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "{driver}: took {:?}",
            began.elapsed()
        );
        sender.join().unwrap();
        // The upstream connection closes with the request unfinished on it: Envoy's
        // local close with an active request.
        let name = "cluster.up.upstream_cx_destroy_local_with_active_rq";
        assert_eq!(rw.wait_for_stat(name, 1), 1, "{driver}");
        // Envoy's count of responses sent before their request was whole.
        let name = "http.public.downstream_rq_response_before_rq_complete";
        assert_eq!(rw.wait_for_stat(name, 1), 1, "{driver}");
        // Envoy resets a request answered before it was whole once its response is out.
        assert_eq!(
            rw.stats()["http.public.downstream_rq_rx_reset"],
            1,
            "{driver}"
        );
    }
}

/// With Expect, sends `100 Continue` (or `refuse` at once), then reads the body and
/// echoes its length; without, reads the body and echoes.
fn continues(refuse: Option<&'static [u8]>, send_continue: bool) -> Scripted {
    Scripted::start(move |ex| {
        if expects_continue(ex) {
            if let Some(answer) = refuse {
                ex.send(answer);
                return Then::Close;
            }
            if send_continue {
                ex.send(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
        }
        let mut body = vec![0u8; content_length(ex)];
        if ex.reader.read_exact(&mut body).is_err() {
            return Then::Close;
        }
        ex.send(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes());
        ex.send(&body);
        Then::Next
    })
}

const FORWARD: &str = "    expect_continue: forward\n";

/// Sends a head with `Expect: 100-continue` and returns the first status line that
/// comes back within `wait` (None if none did), with the reader.
fn expect_head(
    addr: SocketAddr,
    wait: Duration,
) -> (
    Option<String>,
    BufReader<std::net::TcpStream>,
    std::net::TcpStream,
) {
    let mut conn = connect(addr).unwrap();
    conn.write_all(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let writer = conn.try_clone().unwrap();
    conn.set_read_timeout(Some(wait)).unwrap();
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    let first = reader
        .read_line(&mut line)
        .ok()
        .filter(|&n| n > 0)
        .map(|_| line.trim_end().to_owned());
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (first, reader, writer)
}

#[test]
fn a_forwarded_expect_gets_the_upstreams_continue_before_the_body() {
    for driver in drivers() {
        let up = continues(None, true);
        let (rw, addr) = start(driver, up.addr, FORWARD);
        let (first, mut reader, mut writer) = expect_head(addr, Duration::from_millis(800));
        assert_eq!(first.as_deref(), Some("HTTP/1.1 100 Continue"), "{driver}");
        let mut blank = String::new();
        reader.read_line(&mut blank).unwrap();
        writer.write_all(b"hello").unwrap();
        let r = read_response(&mut reader, false).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"hello"[..]),
            "{driver}"
        );
        // The relayed 100 is charged as Envoy's `encode1xxHeaders` charges it: its
        // class and a completed request, then the final response again.
        assert_eq!(rw.wait_for_stat("http.public.downstream_rq_2xx", 1), 1);
        let stats = rw.stats();
        for (name, value) in [
            ("http.public.downstream_rq_1xx", 1),
            ("http.public.downstream_rq_completed", 2),
            ("listener.public.http.public.downstream_rq_1xx", 1),
            ("http.public.downstream_rq_response_before_rq_complete", 0),
        ] {
            assert_eq!(stats[name], value, "{driver}: {name}");
        }
    }
}

#[test]
fn a_forwarded_expect_refused_by_the_upstream_is_answered_without_the_body() {
    for driver in drivers() {
        let up = continues(
            Some(b"HTTP/1.1 417 Expectation Failed\r\ncontent-length: 0\r\n\r\n"),
            false,
        );
        let (rw, addr) = start(driver, up.addr, FORWARD);
        let (first, _reader, _writer) = expect_head(addr, Duration::from_millis(800));
        assert_eq!(
            first.as_deref(),
            Some("HTTP/1.1 417 Expectation Failed"),
            "{driver}"
        );
        // Answered with the body never sent.
        let name = "http.public.downstream_rq_response_before_rq_complete";
        assert_eq!(rw.wait_for_stat(name, 1), 1, "{driver}");
        // Envoy resets a request answered before it was whole once its response is out.
        assert_eq!(
            rw.stats()["http.public.downstream_rq_rx_reset"],
            1,
            "{driver}"
        );
    }
}

#[test]
fn a_forwarded_expect_to_an_upstream_that_ignores_it_still_goes_through() {
    for driver in drivers() {
        // The upstream never sends 100; the client sends its body after a while anyway.
        let up = continues(None, false);
        let (_rw, addr) = start(driver, up.addr, FORWARD);
        let (first, mut reader, mut writer) = expect_head(addr, Duration::from_millis(300));
        assert_eq!(first, None, "{driver}");
        writer.write_all(b"hello").unwrap();
        let r = read_response(&mut reader, false).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"hello"[..]),
            "{driver}"
        );
    }
}
