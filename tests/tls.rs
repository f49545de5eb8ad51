//! TLS termination on listeners, under both drivers, with real clients: rustls (both
//! versions, SNI, ALPN, resumption across workers, client certificates), curl and
//! `openssl s_client` (skipped with a printed reason where missing). Certificates are
//! made by the tests (`common::pki`).

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{pki::*, upstream::Upstream, *};
use rustls::version::{TLS12, TLS13};

/// A listener block with `tls` (indented YAML) routing `/direct` to a direct response
/// and everything else to `endpoint`.
fn config(admin: u16, port: u16, tls: &str, endpoint: &str, workers: usize) -> String {
    format!(
        "workers: {workers}\nadmin: 127.0.0.1:{admin}\nlisteners:\n  - name: secure\n    address: 127.0.0.1:{port}\n    tls:\n{tls}\n    routes:\n      - match: {{ path: /direct }}\n        direct_response: {{ status: 200, body: hello }}\n      - match: {{ prefix: / }}\n        cluster: up\nclusters:\n  - name: up\n    endpoints: [\"{endpoint}\"]\n"
    )
}

fn cert_entry(issued: &Issued) -> String {
    format!(
        "        - certificate_chain: {}\n          private_key: {}\n",
        issued.cert.display(),
        issued.key.display()
    )
}

fn start(driver: &str, tls: &str, endpoint: &str, workers: usize) -> (Ringway, SocketAddr) {
    start_on(driver, |port, admin| {
        config(admin, port, tls, endpoint, workers)
    })
}

/// The SANs of the certificate the server presented.
fn peer_names(conn: &TlsConn) -> Vec<String> {
    let chain = conn.conn.peer_certificates().unwrap();
    ringway::config::tls::CertificateInfo::parse(&chain[0])
        .unwrap()
        .dns_names
}

/// `config` without session resumption: each handshake shows the certificate served now
/// (a resumed session keeps the one it was made with).
fn no_resumption(config: Arc<rustls::ClientConfig>) -> Arc<rustls::ClientConfig> {
    let mut config = (*config).clone();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

const GET_DIRECT: &str = "GET /direct HTTP/1.1\r\nHost: a.test\r\n\r\n";

#[test]
fn certificates_are_chosen_by_sni_over_both_versions_with_alpn() {
    let pki = Pki::new("test CA");
    let default = pki.server("default", &["default.test"]);
    let exact = pki.server("exact", &["a.test"]);
    let wildcard = pki.server("wildcard", &["*.w.test"]);
    let tls = format!(
        "      certificates:\n{}{}{}",
        cert_entry(&default),
        cert_entry(&exact),
        cert_entry(&wildcard)
    );
    for driver in drivers() {
        let up = Upstream::start(false);
        let (rw, addr) = start(driver, &tls, &up.endpoint(), 1);
        // What the clients agreed on, as they saw it, by BoringSSL's names.
        let mut agreed: std::collections::HashMap<String, u64> = Default::default();
        let mut note = |conn: &TlsConn| {
            let suite = conn.conn.negotiated_cipher_suite().unwrap().suite();
            let cipher = match format!("{suite:?}").as_str() {
                "TLS13_AES_128_GCM_SHA256" => "TLS_AES_128_GCM_SHA256",
                "TLS13_AES_256_GCM_SHA384" => "TLS_AES_256_GCM_SHA384",
                "TLS13_CHACHA20_POLY1305_SHA256" => "TLS_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => "ECDHE-ECDSA-AES128-GCM-SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => "ECDHE-ECDSA-AES256-GCM-SHA384",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => "ECDHE-ECDSA-CHACHA20-POLY1305",
                other => panic!("unexpected suite {other}"),
            };
            let mut names = vec![format!("ciphers.{cipher}")];
            // A resumed TLS 1.2 session exchanges no key: no curve.
            if let Some(group) = conn.conn.negotiated_key_exchange_group() {
                let curve = match format!("{:?}", group.name()).as_str() {
                    "X25519MLKEM768" => "X25519MLKEM768",
                    "X25519" => "X25519",
                    "secp256r1" => "P-256",
                    "secp384r1" => "P-384",
                    other => panic!("unexpected group {other}"),
                };
                names.push(format!("curves.{curve}"));
            }
            for name in names {
                *agreed
                    .entry(format!("listener.secure.ssl.{name}"))
                    .or_default() += 1;
            }
        };
        for version in [&TLS13, &TLS12] {
            let config = client_config(&pki.ca_file, None, &[version], &["h2", "http/1.1"]);
            // Without SNI (rustls sends none when told not to): the default certificate.
            let mut no_sni = (*config).clone();
            no_sni.enable_sni = false;
            let no_sni = Arc::new(no_sni);
            for (sni, expected, config) in [
                ("a.test", "a.test", &config),
                ("x.w.test", "*.w.test", &config),
                ("default.test", "default.test", &no_sni),
            ] {
                let mut conn = tls_connect(addr, config, sni).unwrap();
                note(&conn);
                assert_eq!(peer_names(&conn), [expected], "{driver} {sni}");
                assert_eq!(conn.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
                assert_eq!(conn.conn.protocol_version(), Some(version.version));
                let r = tls_request(&mut conn, GET_DIRECT).unwrap();
                assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]), "{driver}");
                // Keep-alive: a second request on the same session.
                let r = tls_request(&mut conn, GET_DIRECT).unwrap();
                assert_eq!(r.status, 200);
            }
            // Forwarded: the upstream hears that the client came over TLS.
            let mut conn = tls_connect(addr, &config, "a.test").unwrap();
            note(&conn);
            let r = tls_request(&mut conn, "GET /fwd HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
            assert_eq!(r.status, 200, "{driver}");
            let seen = up.next_seen();
            assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
        }
        // ALPN: a client that offers only h2 gets no protocol it can speak: refused.
        let h2_only = client_config(&pki.ca_file, None, &[&TLS13], &["h2"]);
        assert!(tls_connect(addr, &h2_only, "a.test").is_err(), "{driver}");
        // The worker counts the refused handshake after sending its alert: the client
        // can see the refusal first.
        let refused = rw.wait_for_stat("listener.secure.ssl.connection_error", 1);
        let stats = rw.stats();
        assert_eq!(stats["listener.secure.ssl.handshake"], 8, "{driver}");
        assert_eq!(stats["listener.secure.ssl.versions.TLSv1.3"], 4, "{driver}");
        assert_eq!(stats["listener.secure.ssl.versions.TLSv1.2"], 4, "{driver}");
        // Envoy's `ssl.ciphers.<name>` and `ssl.curves.<name>`: only those used, each
        // as often as the clients saw it agreed.
        let counted: std::collections::HashMap<String, u64> = stats
            .iter()
            .filter(|(k, _)| k.contains(".ssl.ciphers.") || k.contains(".ssl.curves."))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        assert_eq!(counted, agreed, "{driver}");
        let ciphers: u64 = (agreed.iter())
            .filter(|(k, _)| k.contains(".ciphers."))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(ciphers, 8, "{driver}: one cipher per handshake");
        assert_eq!(refused, 1, "{driver}");
        assert_eq!(stats["listener.secure.ssl.connection_error"], 1, "{driver}");
    }
}

#[test]
fn sessions_resume_on_every_worker() {
    let pki = Pki::new("test CA");
    let server = pki.server("server", &["a.test"]);
    let tls = format!("      certificates:\n{}", cert_entry(&server));
    for driver in drivers() {
        let (rw, addr) = start(driver, &tls, "127.0.0.1:9", 2);
        for version in [&TLS13, &TLS12] {
            // One client configuration: its session store carries tickets across
            // connections, which SO_REUSEPORT spreads over both workers.
            let config = client_config(&pki.ca_file, None, &[version], &["http/1.1"]);
            let mut resumed = 0;
            const CONNECTIONS: usize = 40;
            for _ in 0..CONNECTIONS {
                let mut conn = tls_connect(addr, &config, "a.test").unwrap();
                assert_eq!(tls_request(&mut conn, GET_DIRECT).unwrap().status, 200);
                if conn.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                    resumed += 1;
                }
            }
            // Every connection but the first resumes, whichever worker took it.
            assert_eq!(resumed, CONNECTIONS - 1, "{driver} {version:?}");
        }
        let stats = rw.stats();
        assert_eq!(stats["listener.secure.ssl.session_reused"], 78, "{driver}");
        for worker in 0..2 {
            let accepted = stats[&format!("listener.secure.worker_{worker}.downstream_cx_total")];
            assert!(accepted > 0, "{driver}: worker {worker} took no connection");
        }
    }
}

#[test]
fn client_certificates_are_verified_by_ca_and_name_and_forwarded() {
    let pki = Pki::new("mesh CA");
    let other = Pki::new("another CA");
    let server = pki.server("server", &["b.test"]);
    let good = pki.client("good", &["spiffe://cluster.local/ns/a/sa/web"]);
    let wrong_name = pki.client("wrong", &["spiffe://cluster.local/ns/b/sa/web"]);
    let foreign = other.client("foreign", &["spiffe://cluster.local/ns/a/sa/web"]);
    for required in [true, false] {
        let tls = format!(
            "      certificates:\n{}      client_certificate:\n        ca: {}\n        required: {required}\n        subject_alt_names: [{{ prefix: \"spiffe://cluster.local/ns/a/\" }}]\n      forward_client_cert: sanitize_set\n      client_cert_details: {{ uri: true, subject: true }}",
            cert_entry(&server),
            pki.ca_file.display()
        );
        for driver in drivers() {
            let up = Upstream::start(false);
            let (rw, addr) = start(driver, &tls, &up.endpoint(), 1);
            let request = "GET /x HTTP/1.1\r\nHost: b.test\r\nx-forwarded-client-cert: By=forged;URI=spiffe://evil\r\n\r\n";

            let config = client_config(&pki.ca_file, Some(&good), &[&TLS13], &[]);
            let mut conn = tls_connect(addr, &config, "b.test").unwrap();
            assert_eq!(
                tls_request(&mut conn, request).unwrap().status,
                200,
                "{driver}"
            );
            let xfcc = up.next_seen().header("x-forwarded-client-cert").unwrap();
            let der = std::fs::read_to_string(&good.cert).unwrap();
            let der = rustls::pki_types::pem::PemObject::from_pem_slice(der.as_bytes())
                .map(|c: rustls::pki_types::CertificateDer<'_>| c.to_vec())
                .unwrap();
            let hash: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(
                xfcc,
                format!(
                    "Hash={hash};Subject=\"CN=spiffe://cluster.local/ns/a/sa/web\";URI=spiffe://cluster.local/ns/a/sa/web"
                ),
                "{driver}"
            );

            // A certificate with another name, from another CA, or none at all.
            let refused = |client: Option<&Issued>| {
                let config = client_config(&pki.ca_file, client, &[&TLS13], &[]);
                // TLS 1.3 clients learn of a refused certificate on their first read.
                match tls_connect(addr, &config, "b.test") {
                    Err(_) => true,
                    Ok(mut conn) => tls_request(&mut conn, request).is_err(),
                }
            };
            assert!(refused(Some(&wrong_name)), "{driver}");
            assert!(refused(Some(&foreign)), "{driver}");
            if required {
                assert!(refused(None), "{driver}");
            } else {
                // Optional: served, and a forged header does not reach the upstream.
                let config = client_config(&pki.ca_file, None, &[&TLS13], &[]);
                let mut conn = tls_connect(addr, &config, "b.test").unwrap();
                assert_eq!(tls_request(&mut conn, request).unwrap().status, 200);
                assert_eq!(up.next_seen().header("x-forwarded-client-cert"), None);
            }
            let stats = rw.stats();
            assert_eq!(stats["listener.secure.ssl.fail_verify_san"], 1, "{driver}");
            assert_eq!(
                stats["listener.secure.ssl.fail_verify_error"], 1,
                "{driver}"
            );
            let (no_cert, failed) = if required { (0, 1) } else { (1, 0) };
            assert_eq!(
                stats["listener.secure.ssl.no_certificate"], no_cert,
                "{driver}"
            );
            assert_eq!(
                stats["listener.secure.ssl.fail_verify_no_cert"], failed,
                "{driver}"
            );
        }
    }
}

#[test]
fn an_expired_certificate_is_refused_by_clients_and_reported() {
    let pki = Pki::new("test CA");
    let expired = pki.expired_server("expired", &["a.test"]);
    let tls = format!("      certificates:\n{}", cert_entry(&expired));
    for driver in drivers() {
        let (rw, addr) = start(driver, &tls, "127.0.0.1:9", 1);
        let config = client_config(&pki.ca_file, None, &[&TLS13], &[]);
        let error = tls_connect(addr, &config, "a.test").unwrap_err();
        assert!(error.to_string().contains("expired"), "{driver}: {error}");
        let stats = rw.stats();
        assert_eq!(stats["server.days_until_first_cert_expiring"], 0);
        let certs = get(rw.admin, "/certs").unwrap();
        let body = String::from_utf8(certs.body).unwrap();
        assert!(body.contains("\"days_until_expiration\": \"0\""), "{body}");
        assert!(body.contains(&expired.cert.display().to_string()), "{body}");
    }
}

#[test]
fn certs_lists_every_certificate_with_its_expiry() {
    let pki = Pki::new("test CA");
    let server = pki.server("server", &["a.test", "spiffe://td/ns/x/sa/y"]);
    let tls = format!(
        "      certificates:\n{}      client_certificate: {{ ca: {}, required: false }}",
        cert_entry(&server),
        pki.ca_file.display()
    );
    let (rw, _) = start("epoll", &tls, "127.0.0.1:9", 1);
    let body = String::from_utf8(get(rw.admin, "/certs").unwrap().body).unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let context = &json["certificates"][0];
    let leaf = &context["cert_chain"][0];
    assert_eq!(leaf["path"], server.cert.display().to_string());
    assert_eq!(leaf["subject_alt_names"][0]["dns"], "a.test");
    assert_eq!(leaf["subject_alt_names"][1]["uri"], "spiffe://td/ns/x/sa/y");
    let days: u64 = leaf["days_until_expiration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((28..=30).contains(&days), "{days}");
    assert_eq!(
        context["ca_cert"][0]["path"],
        pki.ca_file.display().to_string()
    );
    let gauge = rw.stats()["server.days_until_first_cert_expiring"];
    assert!((28..=30).contains(&gauge), "{gauge}");
}

#[test]
fn a_handshake_flood_is_capped_and_timed_out_while_established_connections_are_served() {
    let pki = Pki::new("test CA");
    let server = pki.server("server", &["a.test"]);
    let tls = format!(
        "      certificates:\n{}      max_handshakes: 2\n      handshake_timeout: 600ms",
        cert_entry(&server)
    );
    for driver in drivers() {
        let (rw, addr) = start(driver, &tls, "127.0.0.1:9", 1);
        let config = client_config(&pki.ca_file, None, &[&TLS13], &[]);
        let mut established = tls_connect(addr, &config, "a.test").unwrap();
        // The server is done with this handshake once it has answered a request.
        assert_eq!(
            tls_request(&mut established, GET_DIRECT).unwrap().status,
            200
        );
        // Six clients that start a handshake record and stall, and two that connect and
        // say nothing (they hold no handshake slot; they only wait out the timeout).
        let mut silent: Vec<_> = (0..6)
            .map(|_| {
                let mut c = connect(addr).unwrap();
                c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
                c
            })
            .collect();
        silent.extend((0..2).map(|_| connect(addr).unwrap()));
        std::thread::sleep(Duration::from_millis(100));
        // The established connection is served while the cap holds the others off.
        for _ in 0..5 {
            assert_eq!(
                tls_request(&mut established, GET_DIRECT).unwrap().status,
                200
            );
        }
        let started = Instant::now();
        for mut conn in silent {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut byte = [0u8; 1];
            // Closed: at once over the cap, after the timeout within it.
            assert!(matches!(conn.read(&mut byte), Ok(0) | Err(_)), "{driver}");
        }
        assert!(started.elapsed() < Duration::from_secs(3), "{driver}");
        let stats = rw.stats();
        assert_eq!(
            stats["listener.secure.ssl.handshake_overflow"], 4,
            "{driver}"
        );
        assert_eq!(
            stats["listener.secure.ssl.handshake_timeout"], 4,
            "{driver}"
        );
        // Envoy's name for the same.
        let name = "listener.secure.downstream_cx_transport_socket_connect_timeout";
        assert_eq!(stats[name], 4, "{driver}");
        // Every connection to a TLS-only listener is a TLS connection from the start,
        // as in Envoy, its handshake's outcome aside; only the established one is open.
        assert_eq!(stats["http.secure.downstream_cx_ssl_total"], 9, "{driver}");
        let open = rw.wait_for_stat("http.secure.downstream_cx_ssl_active", 1);
        assert_eq!(open, 1, "{driver}");
        assert_eq!(
            tls_request(&mut established, GET_DIRECT).unwrap().status,
            200
        );
    }
}

#[test]
fn plaintext_and_tls_share_a_port_when_allowed() {
    let pki = Pki::new("test CA");
    let server = pki.server("server", &["a.test"]);
    let tls = format!(
        "      certificates:\n{}      allow_plaintext: true",
        cert_entry(&server)
    );
    for driver in drivers() {
        let (_rw, addr) = start(driver, &tls, "127.0.0.1:9", 1);
        let plain = get(addr, "/direct").unwrap();
        assert_eq!(
            (plain.status, &plain.body[..]),
            (200, &b"hello"[..]),
            "{driver}"
        );
        let config = client_config(&pki.ca_file, None, &[&TLS12], &[]);
        let mut conn = tls_connect(addr, &config, "a.test").unwrap();
        assert_eq!(
            tls_request(&mut conn, GET_DIRECT).unwrap().status,
            200,
            "{driver}"
        );
    }
}

#[test]
fn a_websocket_tunnel_runs_over_tls() {
    let pki = Pki::new("test CA");
    let server = pki.server("server", &["a.test"]);
    let tls = format!("      certificates:\n{}", cert_entry(&server));
    // An upstream that switches protocols, then echoes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                );
                let mut buf = [0u8; 1024];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    for driver in drivers() {
        let (_rw, addr) = start(driver, &tls, &endpoint, 1);
        let config = client_config(&pki.ca_file, None, &[&TLS13], &[]);
        let mut conn = tls_connect(addr, &config, "a.test").unwrap();
        conn.write_all(
            b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            conn.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{driver}");
        for message in [&b"ping"[..], &[7u8; 20_000][..]] {
            conn.write_all(message).unwrap();
            let mut echoed = vec![0u8; message.len()];
            conn.read_exact(&mut echoed).unwrap();
            assert_eq!(echoed, message, "{driver}");
        }
    }
}

/// Whether a command runs here; prints why a test part is skipped otherwise.
fn have(tool: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        || std::process::Command::new(tool)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIP {tool} checks: `{tool}` is not installed");
    }
    found
}

#[test]
fn curl_and_openssl_handshake_with_each_version() {
    let pki = Pki::new("test CA");
    let server = pki.server("server", &["a.test"]);
    let tls = format!("      certificates:\n{}", cert_entry(&server));
    let (curl, openssl) = (have("curl"), have("openssl"));
    for driver in drivers() {
        let (_rw, addr) = start(driver, &tls, "127.0.0.1:9", 2);
        let port = addr.port();
        if curl {
            for version in [
                ["--tlsv1.2", "--tls-max", "1.2"],
                ["--tlsv1.3", "--tls-max", "1.3"],
            ] {
                let out = std::process::Command::new("curl")
                    .args(["-sS", "--http1.1", "--cacert"])
                    .arg(&pki.ca_file)
                    .args(["--resolve", &format!("a.test:{port}:127.0.0.1")])
                    .args(version)
                    .arg(format!("https://a.test:{port}/direct"))
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{driver}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(out.stdout, b"hello", "{driver}");
            }
        }
        if openssl {
            let session = pki.path("openssl.session");
            // A request and the whole answer (`-ign_eof`: read until ringway closes), so
            // the TLS 1.3 tickets that follow the handshake are received and saved.
            let s_client = |version: &str, session_arg: &str| {
                let mut child = std::process::Command::new("openssl")
                    .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
                    .args(["-servername", "a.test", "-alpn", "http/1.1", version])
                    .args(["-verify_return_error", "-ign_eof", "-CAfile"])
                    .arg(&pki.ca_file)
                    .arg(session_arg)
                    .arg(&session)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(b"GET /direct HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let out = child.wait_with_output().unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            for version in ["-tls1_2", "-tls1_3"] {
                let text = s_client(version, "-sess_out");
                assert!(
                    text.contains("ALPN protocol: http/1.1"),
                    "{driver} {version}: {text}"
                );
                assert!(
                    text.contains("Verify return code: 0 (ok)"),
                    "{driver}: {text}"
                );
                assert!(text.contains("\r\n\r\nhello"), "{driver}: {text}");
                // The saved session resumes, whichever of the two workers answers.
                for _ in 0..4 {
                    let text = s_client(version, "-sess_in");
                    assert!(
                        text.contains("\nReused, TLSv1."),
                        "{driver} {version}: {text}"
                    );
                }
            }
        }
    }
}

#[test]
fn rsa_and_ecdsa_certificates_serve_side_by_side() {
    let pki = Pki::new("test CA");
    let ecdsa = pki.server("ecdsa", &["a.test"]);
    let rsa = pki.server_rsa("rsa", &["a.test"]);
    if !have("openssl") {
        return;
    }
    let tls = format!(
        "      certificates:\n{}{}",
        cert_entry(&rsa),
        cert_entry(&ecdsa)
    );
    for driver in drivers() {
        let (_rw, addr) = start(driver, &tls, "127.0.0.1:9", 1);
        for (sigalgs, expected) in [
            ("ECDSA+SHA256", "ECDSA"),
            ("RSA-PSS+SHA256", "RSA-PSS"),
            ("ECDSA+SHA256:RSA-PSS+SHA256", "ECDSA"),
        ] {
            let out = std::process::Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &addr.to_string(),
                    "-servername",
                    "a.test",
                ])
                .args(["-tls1_3", "-sigalgs", sigalgs])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(&format!("Peer signature type: {expected}\n")),
                "{driver} {sigalgs}: {text}"
            );
        }
    }
}

#[test]
fn bad_tls_settings_are_refused_with_their_position() {
    let pki = Pki::new("test CA");
    let one = pki.server("one", &["a.test"]);
    let two = pki.server("two", &["b.test"]);
    let listener = |tls: &str, extra: &str| {
        format!(
            "listeners:\n  - name: l\n    address: 127.0.0.1:1\n{extra}    tls:\n{tls}\n    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200 }}\n"
        )
    };
    // A key that belongs to another certificate.
    let mismatched = format!(
        "      certificates:\n        - certificate_chain: {}\n          private_key: {}",
        one.cert.display(),
        two.key.display()
    );
    let error = refused_config(&listener(&mismatched, ""));
    assert!(
        error.contains(":6:11: listeners[0].tls.certificates[0]"),
        "{error}"
    );
    assert!(
        error.contains("the key does not fit the certificate"),
        "{error}"
    );
    let missing = format!(
        "      certificates:\n        - certificate_chain: /nonexistent/cert.pem\n          private_key: {}",
        one.key.display()
    );
    let error = refused_config(&listener(&missing, ""));
    assert!(
        error.contains("cannot read /nonexistent/cert.pem"),
        "{error}"
    );
    let good = format!("      certificates:\n{}", cert_entry(&one));
    let error = refused_config(&listener(&format!("{good}      alpn: [h2]"), ""));
    assert!(error.contains("`h2` cannot be offered"), "{error}");
    let error = refused_config(&listener(
        &good,
        "    proxy_protocol: { trusted_sources: [10.0.0.0/8] }\n",
    ));
    assert!(
        error.contains("`proxy_protocol` together with `tls`"),
        "{error}"
    );
    let error = refused_config(&listener(&format!("{good}      min_version: \"1.1\""), ""));
    assert!(error.contains("min_version"), "{error}");
}

#[test]
fn rotated_certificate_files_are_served_without_a_failed_request() {
    let pki = Pki::new("test CA");
    let first = pki.server("first", &["a.test"]);
    let live = Issued {
        cert: pki.path("live.pem"),
        key: pki.path("live.key"),
    };
    std::fs::copy(&first.cert, &live.cert).unwrap();
    std::fs::copy(&first.key, &live.key).unwrap();
    let tls = format!("      certificates:\n{}", cert_entry(&live));
    for driver in drivers() {
        let (rw, addr) = start(driver, &tls, "127.0.0.1:9", 2);
        let config = no_resumption(client_config(&pki.ca_file, None, &[&TLS13], &[]));
        let serial = |conn: &TlsConn| {
            let chain = conn.conn.peer_certificates().unwrap();
            ringway::config::tls::CertificateInfo::parse(&chain[0])
                .unwrap()
                .serial
        };
        let first_serial = serial(&tls_connect(addr, &config, "a.test").unwrap());
        // A client that keeps making requests on new connections while the files turn.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = {
            let (stop, config) = (Arc::clone(&stop), Arc::clone(&config));
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0, 0);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match tls_connect(addr, &config, "a.test")
                        .and_then(|mut c| tls_request(&mut c, GET_DIRECT))
                    {
                        Ok(r) if r.status == 200 => ok += 1,
                        _ => failed += 1,
                    }
                }
                (ok, failed)
            })
        };
        // A bad pair first (a key that does not fit): the old certificate keeps serving.
        let stranger = pki.server("stranger", &["a.test"]);
        let failures = rw.stats()["server.reload_failures"];
        std::fs::copy(&stranger.key, &live.key).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while rw.stats()["server.reload_failures"] == failures {
            assert!(
                Instant::now() < deadline,
                "{driver}: the bad pair was not noticed"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            serial(&tls_connect(addr, &config, "a.test").unwrap()),
            first_serial
        );
        // Then a good pair, each file replaced atomically (rename), the way cert-manager
        // and most tools write.
        let second = pki.server("second", &["a.test"]);
        for (from, to) in [(&second.cert, &live.cert), (&second.key, &live.key)] {
            let staging = to.with_extension("new");
            std::fs::copy(from, &staging).unwrap();
            std::fs::rename(&staging, to).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let second_serial = loop {
            let now = serial(&tls_connect(addr, &config, "a.test").unwrap());
            if now != first_serial {
                break now;
            }
            assert!(
                Instant::now() < deadline,
                "{driver}: the new certificate was not picked up"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_ne!(second_serial, first_serial);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (ok, failed) = load.join().unwrap();
        assert!(ok > 10, "{driver}: {ok}");
        assert_eq!(
            failed, 0,
            "{driver}: {failed} requests failed during the rotation"
        );
        // Put the first pair back for the next driver's run.
        std::fs::copy(&first.cert, &live.cert).unwrap();
        std::fs::copy(&first.key, &live.key).unwrap();
    }
}

#[test]
fn kubernetes_secret_volumes_are_followed_through_their_data_symlink() {
    // A secret volume: `tls.crt -> ..data/tls.crt`, `..data -> ..2026_a`; the update
    // writes `..2026_b` and swaps `..data` atomically.
    let pki = Pki::new("test CA");
    let dir = pki.path("secret");
    let version = |name: &str, issued: &Issued| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(&issued.cert, d.join("tls.crt")).unwrap();
        std::fs::copy(&issued.key, d.join("tls.key")).unwrap();
    };
    std::fs::create_dir_all(&dir).unwrap();
    version("..2026_a", &pki.server("a", &["a.test"]));
    std::os::unix::fs::symlink("..2026_a", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/tls.crt", dir.join("tls.crt")).unwrap();
    std::os::unix::fs::symlink("..data/tls.key", dir.join("tls.key")).unwrap();
    let tls = format!(
        "      certificates:\n        - certificate_chain: {}\n          private_key: {}\n",
        dir.join("tls.crt").display(),
        dir.join("tls.key").display()
    );
    let (_rw, addr) = start("epoll", &tls, "127.0.0.1:9", 1);
    let config = no_resumption(client_config(&pki.ca_file, None, &[&TLS13], &[]));
    let serial = || {
        let conn = tls_connect(addr, &config, "a.test").unwrap();
        let chain = conn.conn.peer_certificates().unwrap();
        ringway::config::tls::CertificateInfo::parse(&chain[0])
            .unwrap()
            .serial
    };
    let before = serial();
    version("..2026_b", &pki.server("b", &["a.test"]));
    std::os::unix::fs::symlink("..2026_b", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while serial() == before {
        assert!(
            Instant::now() < deadline,
            "the swapped secret was not picked up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sessions_resume_across_a_hot_restart() {
    let pki = Pki::new("test CA");
    let server = pki.server("server", &["a.test"]);
    let tls = format!("      certificates:\n{}", cert_entry(&server));
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hot-restart.sock");
    let socket = socket.to_str().unwrap();
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        let yaml = config(admin, port, &tls, "127.0.0.1:9", 2);
        let args = ["--driver", driver, "--hot-restart-socket", socket];
        let mut old = Ringway::start(&yaml, admin, &args);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let config = client_config(&pki.ca_file, None, &[&TLS13], &[]);
        // A session (and its tickets) from the old process.
        let mut conn = tls_connect(addr, &config, "a.test").unwrap();
        assert_eq!(tls_request(&mut conn, GET_DIRECT).unwrap().status, 200);
        drop(conn);
        let new = Ringway::spawn(
            &yaml,
            admin,
            &[&args[..], &["--restart-epoch", "1"]].concat(),
        );
        let status = old
            .wait_exit(Duration::from_secs(10))
            .expect("old process exits");
        assert!(status.success(), "{driver}: {status}");
        // The new process took the keys with the sockets: the old session resumes.
        let mut conn = tls_connect(addr, &config, "a.test").unwrap();
        assert_eq!(tls_request(&mut conn, GET_DIRECT).unwrap().status, 200);
        assert_eq!(
            conn.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed),
            "{driver}"
        );
        assert_eq!(
            new.stats()["listener.secure.ssl.session_reused"],
            1,
            "{driver}"
        );
        drop(new);
    }
}

#[test]
fn routes_match_on_the_client_certificate() {
    let pki = Pki::new("mesh CA");
    let server = pki.server("server", &["b.test"]);
    let web = pki.client("web", &["spiffe://cluster.local/ns/a/sa/web"]);
    let batch = pki.client("batch", &["spiffe://cluster.local/ns/batch/sa/job"]);
    for driver in drivers() {
        let (_rw, addr) = start_on(driver, |port, admin| {
            format!(
                "admin: 127.0.0.1:{admin}\nlisteners:\n  - name: secure\n    address: 127.0.0.1:{port}\n    tls:\n      certificates:\n{}      client_certificate: {{ ca: {}, required: false }}\n    routes:\n      - match: {{ prefix: /, client_certificate: {{ subject_alt_names: [{{ prefix: \"spiffe://cluster.local/ns/a/\" }}] }} }}\n        direct_response: {{ status: 200, body: namespace-a }}\n      - match: {{ prefix: /, client_certificate: {{ presented: true }} }}\n        direct_response: {{ status: 200, body: other-workload }}\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 401, body: anonymous }}\n",
                cert_entry(&server),
                pki.ca_file.display()
            )
        });
        for (client, body) in [
            (Some(&web), "namespace-a"),
            (Some(&batch), "other-workload"),
            (None, "anonymous"),
        ] {
            let config = client_config(&pki.ca_file, client, &[&TLS13], &[]);
            let mut conn = tls_connect(addr, &config, "b.test").unwrap();
            let r = tls_request(&mut conn, "GET / HTTP/1.1\r\nHost: b.test\r\n\r\n").unwrap();
            assert_eq!(String::from_utf8_lossy(&r.body), body, "{driver}");
        }
    }
}

#[test]
fn a_configured_ocsp_response_is_stapled() {
    if !have("openssl") {
        return;
    }
    let pki = Pki::new("test CA");
    let server = pki.server("server", &["a.test"]);
    // An OCSP response for the certificate, signed by the CA (openssl's own responder).
    let cert_pem = std::fs::read_to_string(&server.cert).unwrap();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer<'_>| c.to_vec())
        .unwrap();
    let serial = ringway::config::tls::CertificateInfo::parse(&der)
        .unwrap()
        .serial
        .to_ascii_uppercase();
    std::fs::write(
        pki.path("index.txt"),
        format!("V\t351231000000Z\t\t{serial}\tunknown\t/CN=a.test\n"),
    )
    .unwrap();
    let made = std::process::Command::new("openssl")
        .args(["ocsp", "-index"])
        .arg(pki.path("index.txt"))
        .arg("-rsigner")
        .arg(&pki.ca_file)
        .arg("-rkey")
        .arg(pki.path("ca.key"))
        .arg("-CA")
        .arg(&pki.ca_file)
        .arg("-issuer")
        .arg(&pki.ca_file)
        .arg("-cert")
        .arg(&server.cert)
        .arg("-respout")
        .arg(pki.path("ocsp.der"))
        .args(["-ndays", "1"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let tls = format!(
        "      certificates:\n{}          ocsp_staple: {}\n",
        cert_entry(&server),
        pki.path("ocsp.der").display()
    );
    for driver in drivers() {
        let (_rw, addr) = start(driver, &tls, "127.0.0.1:9", 1);
        let out = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr.to_string(),
                "-servername",
                "a.test",
            ])
            .arg("-status")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("OCSP Response Status: successful"),
            "{driver}: {text}"
        );
        assert!(text.contains("Cert Status: good"), "{driver}: {text}");
    }
}

#[test]
fn a_ticket_from_a_listener_without_client_certificates_cannot_skip_them_elsewhere() {
    let pki = Pki::new("test CA");
    let server = pki.server("server", &["a.test"]);
    for driver in drivers() {
        let (open_port, mtls_port, admin) = (free_port(), free_port(), free_port());
        let listener = |name: &str, port: u16, extra: &str| {
            format!(
                "  - name: {name}\n    address: 127.0.0.1:{port}\n    tls:\n      certificates:\n{}{extra}    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200, body: {name} }}\n",
                cert_entry(&server)
            )
        };
        let yaml = format!(
            "admin: 127.0.0.1:{admin}\nlisteners:\n{}{}",
            listener("open", open_port, ""),
            listener(
                "mtls",
                mtls_port,
                &format!(
                    "      client_certificate: {{ ca: {} }}\n",
                    pki.ca_file.display()
                )
            )
        );
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        // One client session store for both ports (the same server name): the session
        // from the open listener is offered to the one that requires a certificate.
        let config = client_config(&pki.ca_file, None, &[&TLS13], &[]);
        let open: SocketAddr = ([127, 0, 0, 1], open_port).into();
        let mut conn = tls_connect(open, &config, "a.test").unwrap();
        assert_eq!(tls_request(&mut conn, GET_DIRECT).unwrap().status, 200);
        let mtls: SocketAddr = ([127, 0, 0, 1], mtls_port).into();
        let refused = match tls_connect(mtls, &config, "a.test") {
            Err(_) => true,
            Ok(mut conn) => tls_request(&mut conn, GET_DIRECT).is_err(),
        };
        assert!(
            refused,
            "{driver}: a resumed session skipped the client certificate"
        );
        let stats = rw.stats();
        assert_eq!(stats["listener.mtls.ssl.session_reused"], 0, "{driver}");
        assert_eq!(
            stats["listener.mtls.ssl.fail_verify_no_cert"], 1,
            "{driver}"
        );
    }
}

#[test]
fn envoy_format_access_logs_print_the_tls_facts() {
    let pki = Pki::new("mesh CA");
    let server = pki.server("server", &["b.test", "spiffe://td/ns/b/sa/api"]);
    let web = pki.client("web", &["spiffe://td/ns/a/sa/web"]);
    for driver in drivers() {
        let log = pki.path(&format!("access-{driver}.log"));
        let tls = format!(
            "      certificates:\n{}      client_certificate: {{ ca: {}, required: false }}",
            cert_entry(&server),
            pki.ca_file.display()
        );
        let (_rw, addr) = start_on(driver, |port, admin| {
            format!(
                "{}access_log:\n  path: {}\n  format: \"%REQUESTED_SERVER_NAME% %DOWNSTREAM_TLS_VERSION% %DOWNSTREAM_PEER_URI_SAN% %DOWNSTREAM_LOCAL_URI_SAN%\"\n",
                config(admin, port, &tls, "127.0.0.1:9", 1),
                log.display()
            )
        });
        for client in [Some(&web), None] {
            let config = client_config(&pki.ca_file, client, &[&TLS13], &[]);
            let mut conn = tls_connect(addr, &config, "b.test").unwrap();
            assert_eq!(tls_request(&mut conn, GET_DIRECT).unwrap().status, 200);
        }
        let lines = wait_for_lines(&log, 2);
        assert_eq!(
            lines,
            [
                "b.test TLSv1.3 spiffe://td/ns/a/sa/web spiffe://td/ns/b/sa/api",
                "b.test TLSv1.3 - spiffe://td/ns/b/sa/api",
            ],
            "{driver}"
        );
    }
}

/// An Envoy listener whose TLS filter chains all have `server_names` (`chains`: each
/// chain's names and certificate): `/direct` answered directly.
fn envoy_named_chains(port: u16, admin: u16, chains: &[(&[&str], &Issued)]) -> String {
    let mut yaml = format!(
        "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}\nstatic_resources:\n  listeners:\n  - name: named\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}\n    listener_filters:\n    - name: envoy.filters.listener.tls_inspector\n      typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }}\n    filter_chains:\n"
    );
    for (names, cert) in chains {
        yaml.push_str(&format!(
            "    - filter_chain_match: {{ server_names: {names:?} }}\n      transport_socket:\n        name: envoy.transport_sockets.tls\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n          common_tls_context:\n            tls_certificates:\n            - certificate_chain: {{ filename: {} }}\n              private_key: {{ filename: {} }}\n      filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          stat_prefix: named\n          route_config:\n            virtual_hosts:\n            - name: all\n              domains: [\"*\"]\n              routes:\n              - match: {{ path: /direct }}\n                direct_response: {{ status: 200, body: {{ inline_string: hello }} }}\n          http_filters:\n          - name: envoy.filters.http.router\n            typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}\n",
            cert.cert.display(),
            cert.key.display()
        ));
    }
    yaml
}

#[test]
fn envoy_named_filter_chains_refuse_other_server_names_as_no_filter_chain_match() {
    let pki = Pki::new("sni CA");
    let a = pki.server("a", &["a.test"]);
    let shop = pki.server("shop", &["*.shop.test", "x.y.shop.test"]);
    let config = no_resumption(client_config(&pki.ca_file, None, &[&TLS13, &TLS12], &[]));
    for driver in drivers() {
        let (rw, addr) = start_on(driver, |port, admin| {
            envoy_named_chains(port, admin, &[(&["a.test"], &a), (&["*.shop.test"], &shop)])
        });
        // A named chain's wildcard takes any depth, as Envoy's chain match walks up the
        // name.
        for (name, served) in [("a.test", "a.test"), ("x.y.shop.test", "*.shop.test")] {
            let mut conn =
                tls_connect(addr, &config, name).unwrap_or_else(|e| panic!("{driver} {name}: {e}"));
            assert_eq!(peer_names(&conn)[0], served, "{driver} {name}");
            assert_eq!(tls_request(&mut conn, GET_DIRECT).unwrap().status, 200);
        }
        // Another name, and none (an address sends no SNI): no chain, closed.
        for name in ["other.test", "127.0.0.1"] {
            assert!(
                tls_connect(addr, &config, name).is_err(),
                "{driver}: {name} was served"
            );
        }
        // Envoy's listener stats are named by the address.
        let scope = format!("listener.127.0.0.1_{}.", addr.port());
        let refused = rw.wait_for_stat(&format!("{scope}no_filter_chain_match"), 2);
        assert_eq!(refused, 2, "{driver}");
        let stats = rw.stats();
        assert_eq!(
            stats[&format!("{scope}ssl.connection_error")],
            0,
            "{driver}"
        );
        assert_eq!(stats[&format!("{scope}ssl.handshake")], 2, "{driver}");
    }
}
