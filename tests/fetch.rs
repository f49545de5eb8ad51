//! The background HTTP(S) client (`ringway::fetch`) against servers started by each
//! test on loopback: framings, statuses, timeouts, limits, address fallback and TLS
//! verification with certificates made here.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::pki::{Issued, Pki};
use ringway::fetch::{self, FetchErrorKind, Method, Request};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

/// Reads one request (head, then a `content-length` body) from `stream`.
fn read_request(stream: &mut impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => return got,
        }
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    got.extend_from_slice(&body);
    got
}

/// A server that takes one connection, reads its request, writes `answer` and closes;
/// the thread returns the request it read.
fn serve_once(answer: &[u8]) -> (SocketAddr, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = answer.to_vec();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request = read_request(&mut stream);
        stream.write_all(&answer).unwrap();
        String::from_utf8(request).unwrap()
    });
    (addr, server)
}

/// An address on which nothing listens (a port just released).
fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

#[test]
fn content_length_body_and_the_request_sent() {
    let (addr, server) =
        serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: keys\r\n\r\nhello");
    let target = url(addr, "/jwks.json?v=2");
    let response = fetch::get(&Request {
        headers: vec![("x-request-id".to_owned(), "abc".to_owned())],
        ..Request::new(&target)
    })
    .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    assert_eq!(response.header("X-KIND"), Some("keys"));
    let request = server.join().unwrap();
    assert_eq!(
        request,
        format!(
            "GET /jwks.json?v=2 HTTP/1.1\r\nhost: {addr}\r\nuser-agent: ringway/{}\r\naccept: */*\r\nconnection: close\r\nx-request-id: abc\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn chunked_body_is_decoded() {
    let (addr, server) = serve_once(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"ke\r\na;ext=1\r\nys\":[]}   \r\n0\r\nx-trailer: 1\r\n\r\n",
    );
    let response = fetch::get(&Request::new(&url(addr, "/"))).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"{\"keys\":[]}   ");
    server.join().unwrap();
}

#[test]
fn close_delimited_body_is_read_to_the_end() {
    let (addr, server) =
        serve_once(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it");
    let response = fetch::get(&Request::new(&url(addr, "/"))).unwrap();
    assert_eq!(response.body, b"all of it");
    server.join().unwrap();
}

#[test]
fn an_error_status_is_a_response() {
    let (addr, server) = serve_once(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
    );
    let response = fetch::get(&Request::new(&url(addr, "/missing"))).unwrap();
    assert_eq!(response.status, 404);
    assert_eq!(response.body, b"not found");
    server.join().unwrap();
}

#[test]
fn post_sends_its_body() {
    let (addr, server) = serve_once(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
    let response = fetch::send(
        Method::Post,
        Some(b"{\"spans\":[]}"),
        &Request {
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            ..Request::new(&url(addr, "/v1/traces"))
        },
    )
    .unwrap();
    assert_eq!(response.status, 202);
    let request = server.join().unwrap();
    assert!(
        request.starts_with("POST /v1/traces HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.contains("\r\ncontent-length: 12\r\n"), "{request}");
    assert!(
        request.ends_with("content-type: application/json\r\n\r\n{\"spans\":[]}"),
        "{request}"
    );
}

#[test]
fn a_server_that_never_answers_times_out() {
    // Connections complete in the backlog; nothing ever reads or answers them.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = url(listener.local_addr().unwrap(), "/");
    let started = Instant::now();
    let e = fetch::get(&Request {
        timeout: Duration::from_millis(300),
        ..Request::new(&target)
    })
    .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), FetchErrorKind::Timeout, "{e}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("GET {target}: timed out: no result within 300ms (waiting for the response head)")
    );
    drop(listener);
}

#[test]
fn the_timeout_covers_the_whole_exchange() {
    // A byte every 50 ms: each read succeeds, the whole never finishes in time.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        while stream.write_all(b"x").is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let started = Instant::now();
    let e = fetch::get(&Request {
        timeout: Duration::from_millis(400),
        ..Request::new(&url(addr, "/"))
    })
    .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), FetchErrorKind::Timeout, "{e}");
    assert!(e.cause().contains("reading the body"), "{e}");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    server.join().unwrap();
}

#[test]
fn a_body_over_the_limit_fails() {
    let (addr, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
    let e = fetch::get(&Request {
        max_body: 10,
        ..Request::new(&url(addr, "/"))
    })
    .unwrap_err();
    assert_eq!(e.kind(), FetchErrorKind::BodyTooLarge, "{e}");
    assert!(
        e.to_string().contains("larger than the 10 bytes allowed"),
        "{e}"
    );
    server.join().unwrap();

    let (addr, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello worl");
    let response = fetch::get(&Request {
        max_body: 10,
        ..Request::new(&url(addr, "/"))
    })
    .unwrap();
    assert_eq!(response.body, b"hello worl");
    server.join().unwrap();
}

#[test]
fn a_refused_address_is_followed_by_the_next() {
    let closed = closed_port();
    let (live, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let response = fetch::get(&Request {
        connect_to: Some(vec![closed, live]),
        ..Request::new("http://jwks.internal/keys")
    })
    .unwrap();
    assert_eq!(response.body, b"ok");
    // The URL still names the host.
    let request = server.join().unwrap();
    assert!(request.contains("\r\nhost: jwks.internal\r\n"), "{request}");

    let other = closed_port();
    let e = fetch::get(&Request {
        connect_to: Some(vec![closed, other]),
        ..Request::new("http://jwks.internal/keys")
    })
    .unwrap_err();
    assert_eq!(e.kind(), FetchErrorKind::Connect, "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("GET http://jwks.internal/keys: cannot connect: 127.0.0.1:")
            && text.contains(&closed.to_string())
            && text.contains(&other.to_string()),
        "{text}"
    );
}

#[test]
fn host_names_are_resolved() {
    let (addr, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    // `localhost` may resolve to ::1 first, where nothing listens: the next address works.
    let target = format!("http://localhost:{}/", addr.port());
    let response = fetch::get(&Request::new(&target)).unwrap();
    assert_eq!(response.body, b"ok");
    let request = server.join().unwrap();
    assert!(request.contains(&format!("\r\nhost: localhost:{}\r\n", addr.port())));

    let e = fetch::get(&Request {
        timeout: Duration::from_secs(3),
        ..Request::new("http://no-such-host.invalid/")
    })
    .unwrap_err();
    // RFC 6761: `.invalid` never resolves; a resolver that cannot be reached times out.
    assert!(
        matches!(e.kind(), FetchErrorKind::Resolve | FetchErrorKind::Timeout),
        "{e}"
    );
    assert!(e.cause().contains("resolving no-such-host.invalid"), "{e}");
}

#[test]
fn ipv6_literals_connect() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("SKIP ipv6_literals_connect: no IPv6 loopback here");
        return;
    };
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let request = String::from_utf8(read_request(&mut stream)).unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6")
            .unwrap();
        request
    });
    let response = fetch::get(&Request::new(&format!("http://[::1]:{}/", addr.port()))).unwrap();
    assert_eq!(response.body, b"v6");
    let request = server.join().unwrap();
    assert!(request.contains(&format!("\r\nhost: [::1]:{}\r\n", addr.port())));
}

// --- TLS ---

fn server_config(issued: &Issued) -> Arc<rustls::ServerConfig> {
    let chain = CertificateDer::pem_file_iter(&issued.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&issued.key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

/// A TLS server for one connection: reads the request and writes `answer`, then ends
/// with `close_notify` when `notify`, else just drops the TCP connection. The thread
/// returns the request, or the handshake's error.
fn serve_tls_once(
    config: Arc<rustls::ServerConfig>,
    answer: &[u8],
    notify: bool,
) -> (SocketAddr, JoinHandle<Result<String, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = answer.to_vec();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| e.to_string())?;
        }
        let request = read_request(&mut tls);
        tls.write_all(&answer).map_err(|e| e.to_string())?;
        if notify {
            tls.conn.send_close_notify();
        }
        tls.flush().map_err(|e| e.to_string())?;
        Ok(String::from_utf8(request).unwrap())
    });
    (addr, server)
}

fn trusting(pki: &Pki) -> Option<Arc<rustls::ClientConfig>> {
    Some(common::pki::client_config(
        &pki.ca_file,
        None,
        rustls::DEFAULT_VERSIONS,
        &[],
    ))
}

#[test]
fn tls_verifies_the_server_against_the_given_roots() {
    let pki = Pki::new("fetch-ca");
    let config = server_config(&pki.server("jwks", &["jwks.test"]));
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"keys\":[]}";

    // The name from the URL, the address from connect_to.
    let (addr, server) = serve_tls_once(Arc::clone(&config), answer, true);
    let target = format!("https://jwks.test:{}/keys", addr.port());
    let response = fetch::get(&Request {
        connect_to: Some(vec![addr]),
        tls: trusting(&pki),
        ..Request::new(&target)
    })
    .unwrap();
    assert_eq!(response.body, b"{\"keys\":[]}");
    let request = server.join().unwrap().unwrap();
    assert!(request.contains(&format!("\r\nhost: jwks.test:{}\r\n", addr.port())));

    // An address URL with the certificate's name given as server_name.
    let (addr, server) = serve_tls_once(Arc::clone(&config), answer, true);
    let response = fetch::get(&Request {
        server_name: Some("jwks.test".to_owned()),
        tls: trusting(&pki),
        ..Request::new(&format!("https://{addr}/keys"))
    })
    .unwrap();
    assert_eq!(response.status, 200);
    server.join().unwrap().unwrap();
}

#[test]
fn tls_refuses_a_certificate_for_another_name() {
    let pki = Pki::new("fetch-ca");
    let config = server_config(&pki.server("jwks", &["jwks.test"]));
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    for server_name in [Some("other.test"), None] {
        let (addr, server) = serve_tls_once(Arc::clone(&config), answer, true);
        let e = fetch::get(&Request {
            server_name: server_name.map(str::to_owned),
            tls: trusting(&pki),
            ..Request::new(&format!("https://{addr}/keys"))
        })
        .unwrap_err();
        assert_eq!(e.kind(), FetchErrorKind::Tls, "{e}");
        assert!(e.cause().contains("certificate"), "{e}");
        assert!(server.join().unwrap().is_err());
    }
}

#[test]
fn tls_without_roots_of_its_own_uses_the_systems() {
    // The test CA is in no system store: verification must fail.
    let pki = Pki::new("fetch-ca");
    let config = server_config(&pki.server("jwks", &["jwks.test"]));
    let (addr, server) = serve_tls_once(config, b"HTTP/1.1 200 OK\r\n\r\n", true);
    let e = fetch::get(&Request {
        connect_to: Some(vec![addr]),
        ..Request::new("https://jwks.test/keys")
    })
    .unwrap_err();
    assert_eq!(e.kind(), FetchErrorKind::Tls, "{e}");
    // Without system roots the client never connects: the server is not waited for.
    drop(server);
}

#[test]
fn tls_body_to_the_close_needs_close_notify() {
    let pki = Pki::new("fetch-ca");
    let config = server_config(&pki.server("jwks", &["jwks.test"]));
    let answer = b"HTTP/1.1 200 OK\r\n\r\nto the close";
    let fetch_it = |addr: SocketAddr| {
        fetch::get(&Request {
            connect_to: Some(vec![addr]),
            tls: trusting(&pki),
            ..Request::new("https://jwks.test/")
        })
    };

    let (addr, server) = serve_tls_once(Arc::clone(&config), answer, true);
    assert_eq!(fetch_it(addr).unwrap().body, b"to the close");
    server.join().unwrap().unwrap();

    // Without close_notify the end may be an attacker's cut.
    let (addr, server) = serve_tls_once(Arc::clone(&config), answer, false);
    let e = fetch_it(addr).unwrap_err();
    assert_eq!(e.kind(), FetchErrorKind::Protocol, "{e}");
    assert!(e.cause().contains("close_notify"), "{e}");
    server.join().unwrap().unwrap();

    // A framed body does not need it.
    let (addr, server) = serve_tls_once(
        config,
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nframed",
        false,
    );
    assert_eq!(fetch_it(addr).unwrap().body, b"framed");
    server.join().unwrap().unwrap();
}

// --- Keep-alive (`fetch::send_kept`) ---

/// What a keep-alive test server does with one request of a connection.
#[derive(Debug, Clone, Copy)]
enum Then {
    /// Answers 200 and waits for the next request.
    Answer,
    /// Answers 200 with `connection: close`, then closes.
    AnswerAndClose,
    /// Answers 200 (keep-alive) and then closes at once, as an idle timeout would.
    AnswerThenHangUp,
    /// Reads the request and closes without answering (the server's idle timeout
    /// racing the request).
    CloseUnanswered,
}

/// A server whose `i`-th connection follows `plans[i]`, a step per request, then waits
/// for the client to close it. `wrap` makes the stream (plain or TLS). The thread
/// returns the requests each connection read.
fn serve_plans<S: Read + Write>(
    plans: Vec<Vec<Then>>,
    wrap: impl Fn(std::net::TcpStream) -> S + Send + 'static,
) -> (SocketAddr, JoinHandle<Vec<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for plan in plans {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut stream = wrap(tcp);
            let mut requests = Vec::new();
            let mut open = true;
            for step in plan {
                let request = read_request(&mut stream);
                if request.is_empty() {
                    open = false;
                    break;
                }
                requests.push(String::from_utf8(request).unwrap());
                let (answer, close): (&[u8], bool) = match step {
                    Then::Answer => (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false),
                    Then::AnswerAndClose => (
                        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
                        true,
                    ),
                    Then::AnswerThenHangUp => {
                        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", true)
                    }
                    Then::CloseUnanswered => (b"", true),
                };
                stream.write_all(answer).unwrap();
                stream.flush().unwrap();
                if close {
                    open = false;
                    break;
                }
            }
            // Planned requests served: wait for the client to close (or the next one).
            while open && !read_request(&mut stream).is_empty() {}
            seen.push(requests);
        }
        seen
    });
    (addr, server)
}

/// A POST of `body` through `kept`, answered 200.
fn post_kept(addr: SocketAddr, body: &[u8], kept: &mut fetch::Kept) -> fetch::Response {
    let target = url(addr, "/v1/traces");
    fetch::send_kept(Method::Post, Some(body), &Request::new(&target), kept).unwrap()
}

#[test]
fn a_kept_connection_carries_the_next_requests() {
    let plan = vec![vec![Then::Answer, Then::Answer, Then::Answer]];
    let (addr, server) = serve_plans(plan, |tcp| tcp);
    let mut kept = fetch::Kept::default();
    for body in [&b"one"[..], b"two", b"three"] {
        let response = post_kept(addr, body, &mut kept);
        assert_eq!((response.status, &response.body[..]), (200, &b"ok"[..]));
        assert!(kept.holds_one());
    }
    drop(kept);
    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 1, "one connection for three requests");
    assert_eq!(seen[0].len(), 3);
    for request in &seen[0] {
        assert!(
            !request.to_ascii_lowercase().contains("connection: close"),
            "{request}"
        );
    }
    assert!(seen[0][2].ends_with("three"));
}

#[test]
fn a_connection_the_server_ends_is_not_reused() {
    // The server says `connection: close`: nothing is kept.
    let plan = vec![vec![Then::AnswerAndClose], vec![Then::Answer]];
    let (addr, server) = serve_plans(plan, |tcp| tcp);
    let mut kept = fetch::Kept::default();
    post_kept(addr, b"a", &mut kept);
    assert!(!kept.holds_one());
    post_kept(addr, b"b", &mut kept);
    drop(kept);
    let seen = server.join().unwrap();
    assert_eq!((seen[0].len(), seen[1].len()), (1, 1));

    // The server closes an idle connection silently: the check before reuse sees it.
    let plan = vec![vec![Then::AnswerThenHangUp], vec![Then::Answer]];
    let (addr, server) = serve_plans(plan, |tcp| tcp);
    let mut kept = fetch::Kept::default();
    post_kept(addr, b"a", &mut kept);
    assert!(kept.holds_one());
    std::thread::sleep(Duration::from_millis(100));
    post_kept(addr, b"b", &mut kept);
    drop(kept);
    let seen = server.join().unwrap();
    assert_eq!((seen[0].len(), seen[1].len()), (1, 1));
    assert!(seen[1][0].ends_with("\r\n\r\nb"));
}

#[test]
fn a_request_the_server_closed_under_is_sent_again_once() {
    // The second request reaches the kept connection as the server closes it: it goes
    // again on a new connection, and the caller sees only the answer.
    let plan = vec![
        vec![Then::Answer, Then::CloseUnanswered],
        vec![Then::Answer],
    ];
    let (addr, server) = serve_plans(plan, |tcp| tcp);
    let mut kept = fetch::Kept::default();
    post_kept(addr, b"first", &mut kept);
    let response = post_kept(addr, b"second", &mut kept);
    assert_eq!(response.status, 200);
    drop(kept);
    let seen = server.join().unwrap();
    assert_eq!((seen[0].len(), seen[1].len()), (2, 1));
    assert!(seen[0][1].ends_with("second") && seen[1][0].ends_with("second"));

    // On a new connection the same failure is the caller's: no second try.
    let plan = vec![vec![Then::CloseUnanswered]];
    let (addr, server) = serve_plans(plan, |tcp| tcp);
    let mut kept = fetch::Kept::default();
    let target = url(addr, "/v1/traces");
    let e =
        fetch::send_kept(Method::Post, Some(b"x"), &Request::new(&target), &mut kept).unwrap_err();
    assert_eq!(e.kind(), FetchErrorKind::Protocol, "{e}");
    assert_eq!(server.join().unwrap()[0].len(), 1);
}

#[test]
fn a_kept_tls_connection_carries_the_next_requests_without_a_handshake() {
    let pki = Pki::new("fetch-ca");
    let config = server_config(&pki.server("collector", &["collector.test"]));
    let plan = vec![vec![Then::Answer, Then::Answer]];
    let (addr, server) = serve_plans(plan, move |tcp| {
        let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).unwrap();
        }
        tls
    });
    let target = format!("https://collector.test:{}/v1/traces", addr.port());
    let request = Request {
        connect_to: Some(vec![addr]),
        tls: trusting(&pki),
        ..Request::new(&target)
    };
    let mut kept = fetch::Kept::default();
    for body in [&b"one"[..], b"two"] {
        let response = fetch::send_kept(Method::Post, Some(body), &request, &mut kept).unwrap();
        assert_eq!(response.status, 200);
    }
    // An address list without the connection's address: the connection is not used.
    assert!(kept.holds_one());
    let elsewhere = Request {
        connect_to: Some(vec![closed_port()]),
        ..request.clone()
    };
    let e = fetch::send_kept(Method::Post, Some(b"x"), &elsewhere, &mut kept).unwrap_err();
    assert_eq!(e.kind(), FetchErrorKind::Connect, "{e}");
    assert!(!kept.holds_one());
    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].len(), 2);
}
