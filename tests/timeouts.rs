//! The limits of a request after its head, through the real binary under both drivers:
//! `request_timeout` (the whole body), `stream_idle_timeout` (any read or write that
//! makes no progress, on either side), and the route timeout, which runs from the end of
//! the request to the end of the response, as Envoy's does.

mod common;

use std::{
    io::{BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use common::{
    scripted::{Scripted, Then},
    upstream::Upstream,
    *,
};

/// ringway with `listener_keys` on its listener; `/svc/` goes to `endpoint` with the
/// route timeout `route_timeout`, `/direct` is answered locally.
fn start(
    driver: &str,
    endpoint: &str,
    listener_keys: &str,
    route_timeout: &str,
) -> (Ringway, SocketAddr) {
    start_on(driver, |port, admin| {
        format!(
            r#"workers: 1
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
{listener_keys}    routes:
      - match: {{ path: /direct }}
        direct_response: {{ status: 200, body: "ok\n" }}
      - match: {{ prefix: /svc/ }}
        cluster: up
        timeout: {route_timeout}
clusters:
  - name: up
    endpoints: ["{endpoint}"]
"#
        )
    })
}

/// Sends `head` and then one body byte every `every` until `bytes` are sent or the
/// connection fails; returns the response (if any) and when it came.
fn trickle(
    addr: SocketAddr,
    head: &str,
    bytes: usize,
    every: Duration,
) -> (Option<Response>, Duration) {
    let mut conn = connect(addr).unwrap();
    let began = Instant::now();
    conn.write_all(head.as_bytes()).unwrap();
    let reader = conn.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        let r = read_response(&mut BufReader::new(reader), false).ok();
        (r, began.elapsed())
    });
    for _ in 0..bytes {
        std::thread::sleep(every);
        if conn.write_all(b"x").is_err() || answer.is_finished() {
            break;
        }
    }
    answer.join().unwrap()
}

#[test]
fn a_trickled_body_is_bounded_by_the_request_timeout() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let keys = "    request_timeout: 1s\n    stream_idle_timeout: 10s\n";
        let (rw, addr) = start(driver, &up.endpoint(), keys, "15s");
        for path in ["/svc/upload", "/direct"] {
            let head = format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n");
            let (r, took) = trickle(addr, &head, 100, Duration::from_millis(100));
            let r = r.unwrap_or_else(|| panic!("{driver} {path}: no answer"));
            assert_eq!(r.status, 408, "{driver} {path}");
            assert_eq!(r.header("connection"), Some("close"), "{driver} {path}");
            assert!(
                took < Duration::from_secs(4),
                "{driver} {path}: took {took:?}"
            );
        }
        assert!(
            rw.stats()["http.public.downstream_rq_timeout"] >= 1,
            "{driver}"
        );
    }
}

#[test]
fn a_stalled_body_is_bounded_by_the_stream_idle_timeout() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let keys = "    stream_idle_timeout: 1s\n";
        let (rw, addr) = start(driver, &up.endpoint(), keys, "15s");
        for path in ["/svc/upload", "/direct"] {
            let head =
                format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nhalf");
            // Nothing after the first bytes.
            let (r, took) = trickle(addr, &head, 0, Duration::ZERO);
            let r = r.unwrap_or_else(|| panic!("{driver} {path}: no answer"));
            assert_eq!(r.status, 408, "{driver} {path}");
            assert!(
                (Duration::from_millis(900)..Duration::from_secs(4)).contains(&took),
                "{driver} {path}: took {took:?}"
            );
        }
        assert!(
            rw.stats()["http.public.downstream_rq_idle_timeout"] >= 1,
            "{driver}"
        );
    }
}

#[test]
fn the_route_timeout_starts_when_the_request_is_complete() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (_rw, addr) = start(driver, &up.endpoint(), "", "1s");
        // A 2.5 s upload under a 1 s route timeout: the upload is not cut.
        let head = "POST /svc/upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n";
        let (r, took) = trickle(addr, head, 5, Duration::from_millis(500));
        let r = r.unwrap_or_else(|| panic!("{driver}: no answer"));
        assert_eq!(r.status, 200, "{driver}: after {took:?}");
        assert_eq!(r.body, b"xxxxx", "{driver}");
    }
}

/// An upstream that answers every request with `size` bytes.
fn big_answers(size: usize) -> Scripted {
    Scripted::start(move |ex| {
        ex.send(format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n").as_bytes());
        let chunk = vec![b'b'; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            if ex.writer.write_all(&chunk[..n]).is_err() {
                return Then::Close;
            }
            left -= n;
        }
        Then::Next
    })
}

/// Sends a GET, reads only the response's first bytes and stops reading. Once ringway
/// let go of the upstream connection (within `limit`), drains the socket: true when
/// ringway closed it too. False when the upstream connection was still open after
/// `limit` (the client's would then be too, and draining would let the response go on).
fn stop_reading(addr: SocketAddr, up: &Scripted, limit: Duration) -> bool {
    let mut conn: TcpStream = connect(addr).unwrap();
    conn.write_all(b"GET /svc/big HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 16];
    conn.read_exact(&mut first).unwrap();
    assert_eq!(&first[..12], b"HTTP/1.1 200");
    let deadline = Instant::now() + limit;
    while up.closed.load(Ordering::SeqCst) < 1 {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    loop {
        match conn.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false, // still open: the read timed out
        }
    }
}

#[test]
fn a_client_that_stops_reading_is_closed_by_the_route_timeout() {
    for driver in drivers() {
        let up = big_answers(64 << 20);
        let (_rw, addr) = start(driver, &up.addr.to_string(), "", "2s");
        let began = Instant::now();
        assert!(
            stop_reading(addr, &up, Duration::from_secs(5)),
            "{driver}: still open"
        );
        assert!(
            began.elapsed() > Duration::from_millis(1900),
            "{driver}: closed early"
        );
    }
}

#[test]
fn a_client_that_stops_reading_is_closed_by_the_stream_idle_timeout() {
    for driver in drivers() {
        let up = big_answers(64 << 20);
        let keys = "    stream_idle_timeout: 1s\n";
        let (rw, addr) = start(driver, &up.addr.to_string(), keys, "60s");
        let began = Instant::now();
        assert!(
            stop_reading(addr, &up, Duration::from_secs(4)),
            "{driver}: still open"
        );
        assert!(
            began.elapsed() > Duration::from_millis(900),
            "{driver}: closed early"
        );
        assert_eq!(
            rw.stats()["http.public.downstream_rq_idle_timeout"],
            1,
            "{driver}"
        );
    }
}
