//! https targets: a small rustls server here (std TcpListener, a thread per connection,
//! rustls `ServerConnection` in a `StreamOwned`) with an rcgen self-signed certificate
//! for 127.0.0.1, answering every request head with a fixed response.
mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use ringway_load::http::Url;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

const SHORT: Duration = Duration::from_millis(500);
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// Starts the TLS server; returns its URL and the certificate's PEM.
fn tls_server() -> (Url, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let pem = certified.cert.pem();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(tcp) = stream else { continue };
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let _ = tcp.set_nodelay(true);
                let conn = ServerConnection::new(config).unwrap();
                serve_connection(StreamOwned::new(conn, tcp));
            });
        }
    });
    (Url::parse(&format!("https://{addr}/")).unwrap(), pem)
}

/// Answers request heads (no request bodies in these tests) until the client closes.
fn serve_connection(mut tls: StreamOwned<ServerConnection, std::net::TcpStream>) {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..i]).to_ascii_lowercase();
            pending.drain(..i + 4);
            if tls.write_all(ANSWER).and_then(|()| tls.flush()).is_err() {
                return;
            }
            if head.contains("connection: close") {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                return;
            }
        }
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn insecure_accepts_a_self_signed_certificate() {
    let (url, _) = tls_server();
    let mut p = common::params(url, 2, SHORT);
    p.tls.insecure = true;
    let r = ringway_load::run::run(p).unwrap();
    assert!(r.counts.completed > 20, "{:?}", r.counts);
    assert_eq!(r.counts.errors.total(), 0, "{:?}", r.first_errors);
    // Keep-alive: one handshake per connection.
    assert_eq!(r.counts.connections_opened, 2);
    assert_eq!(r.counts.status[1], r.counts.completed);
}

#[test]
fn a_self_signed_certificate_is_a_connect_error_without_insecure() {
    let (url, _) = tls_server();
    let r = ringway_load::run::run(common::params(url, 1, Duration::from_millis(300))).unwrap();
    assert_eq!(r.counts.completed, 0);
    assert!(r.counts.errors.connect > 0, "{:?}", r.counts);
    assert_eq!(r.counts.errors.total(), r.counts.errors.connect);
    let first = r.first_errors.join("\n");
    assert!(
        first.contains("connect: TLS: invalid peer certificate: UnknownIssuer"),
        "{first}"
    );
    let summary = ringway_load::report::summary(&r);
    assert!(summary.contains("invalid peer certificate"), "{summary}");
}

#[test]
fn a_trusted_ca_file_verifies_the_certificate() {
    let (url, pem) = tls_server();
    let file = std::env::temp_dir().join(format!("ringway-load-tls-{}.pem", std::process::id()));
    std::fs::write(&file, pem).unwrap();
    let mut p = common::params(url, 1, SHORT);
    p.tls.ca_files = vec![file.clone()];
    let r = ringway_load::run::run(p);
    let _ = std::fs::remove_file(&file);
    let r = r.unwrap();
    assert!(r.counts.completed > 10, "{:?}", r.counts);
    assert_eq!(r.counts.errors.total(), 0, "{:?}", r.first_errors);
}

#[test]
fn connection_rate_mode_loads_handshakes() {
    let (url, _) = tls_server();
    let mut p = common::params(url, 4, SHORT);
    p.tls.insecure = true;
    p.rate = Some(200);
    p.requests_per_connection = Some(1);
    let r = ringway_load::run::run(p).unwrap();
    assert_eq!(r.counts.errors.total(), 0, "{:?}", r.first_errors);
    assert!(r.counts.completed >= 50, "{:?}", r.counts);
    // Every counted request had its own connection and so its own full handshake.
    assert!(r.counts.connections_opened >= r.counts.completed);
}
