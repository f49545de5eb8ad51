//! The mesh pattern of `config/mesh/`: two ringway sidecars in front of two services,
//! plaintext on the host's loopback, mutual TLS between the sidecars; and upstream TLS
//! on its own (a server that requires a client certificate, a server whose name is
//! wrong, an Envoy-style cluster that does not verify). Both drivers.

mod common;

use std::net::SocketAddr;

use common::{pki::*, upstream::Upstream, *};

/// The example file, with the test's ports and certificate files.
fn example(name: &str, replacements: &[(&str, String)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/mesh")
        .join(name);
    let mut text = std::fs::read_to_string(path).unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from), "{name} has no {from}");
        text = text.replace(from, to);
    }
    text
}

struct Mesh {
    a: Ringway,
    b: Ringway,
    outbound: SocketAddr,
}

fn mesh(driver: &str, pki: &Pki, service_b: &str, expect_b: &str) -> Mesh {
    let a_cert = pki.client("a", &["spiffe://mesh.internal/ns/default/sa/service-a"]);
    let b_cert = pki.server(
        "b",
        &[
            "service-b.mesh.internal",
            "spiffe://mesh.internal/ns/default/sa/service-b",
        ],
    );
    let (a_admin, a_port, b_admin, b_port) = (free_port(), free_port(), free_port(), free_port());
    let dir = pki.dir.path().display().to_string();
    let files = |text: String| text.replace("/etc/ringway/mesh", &dir);
    let b_yaml = files(example(
        "sidecar-b.yaml",
        &[
            ("127.0.0.1:15100", format!("127.0.0.1:{b_admin}")),
            ("127.0.0.1:15443", format!("127.0.0.1:{b_port}")),
            ("127.0.0.1:8080", service_b.to_owned()),
        ],
    ));
    let a_yaml = files(example(
        "sidecar-a.yaml",
        &[
            ("127.0.0.1:15000", format!("127.0.0.1:{a_admin}")),
            ("127.0.0.1:15001", format!("127.0.0.1:{a_port}")),
            ("127.0.0.1:15443", format!("127.0.0.1:{b_port}")),
            (
                "spiffe://mesh.internal/ns/default/sa/service-b",
                expect_b.to_owned(),
            ),
        ],
    ));
    // The example's file names are the ones the test's PKI wrote.
    assert!(a_cert.cert.ends_with("a.pem") && b_cert.key.ends_with("b.key"));
    let args = ["--driver", driver];
    let b = Ringway::start(&b_yaml, b_admin, &args);
    let a = Ringway::start(&a_yaml, a_admin, &args);
    Mesh {
        a,
        b,
        outbound: ([127, 0, 0, 1], a_port).into(),
    }
}

#[test]
fn two_sidecars_carry_plaintext_over_mutual_tls() {
    let pki = Pki::new("mesh CA");
    for driver in drivers() {
        let service_b = Upstream::start(false);
        let m = mesh(
            driver,
            &pki,
            &service_b.endpoint(),
            "spiffe://mesh.internal/ns/default/sa/service-b",
        );
        for _ in 0..5 {
            assert_eq!(get(m.outbound, "/orders").unwrap().status, 200, "{driver}");
            // Service B learns who called, from the verified certificate.
            let xfcc = service_b
                .next_seen()
                .header("x-forwarded-client-cert")
                .unwrap();
            assert!(
                xfcc.ends_with(";URI=spiffe://mesh.internal/ns/default/sa/service-a"),
                "{driver}: {xfcc}"
            );
        }
        // Sidecar-to-sidecar connections are pooled: at most one handshake per worker of
        // sidecar A (each worker has its own pool), the other requests reuse them.
        let (a, b) = (m.a.stats(), m.b.stats());
        let handshakes = a["cluster.service-b.ssl.handshake"];
        assert!((1..=2).contains(&handshakes), "{driver}: {handshakes}");
        assert_eq!(
            a["cluster.service-b.upstream_cx_total"], handshakes,
            "{driver}"
        );
        assert_eq!(
            a["cluster.service-b.upstream_cx_pool_reuse"],
            5 - handshakes,
            "{driver}"
        );
        assert_eq!(b["listener.inbound.ssl.handshake"], handshakes, "{driver}");
    }
}

#[test]
fn a_peer_without_the_expected_identity_is_refused() {
    let pki = Pki::new("mesh CA");
    for driver in drivers() {
        let service_b = Upstream::start(false);
        // Sidecar A expects another service behind B's address.
        let m = mesh(
            driver,
            &pki,
            &service_b.endpoint(),
            "spiffe://mesh.internal/ns/default/sa/payments",
        );
        assert_eq!(get(m.outbound, "/orders").unwrap().status, 503, "{driver}");
        let a = m.a.stats();
        assert_eq!(a["cluster.service-b.ssl.fail_verify_san"], 1, "{driver}");
        assert_eq!(
            a["cluster.service-b.upstream_cx_connect_fail"], 1,
            "{driver}"
        );
    }
}

#[test]
fn upstream_tls_verifies_the_server_name_and_resumes_sessions() {
    let pki = Pki::new("test CA");
    let server = pki.server("server", &["origin.test"]);
    for driver in drivers() {
        let up = Upstream::start(false);
        // The origin: a ringway terminating TLS in front of a plaintext upstream.
        let (origin, origin_addr) = start_on(driver, |port, admin| {
            format!(
                "workers: 1\nadmin: 127.0.0.1:{admin}\nlisteners:\n  - name: tls\n    address: 127.0.0.1:{port}\n    idle_timeout: 100ms\n    tls:\n      certificates:\n        - {{ certificate_chain: {}, private_key: {} }}\n    routes:\n      - match: {{ prefix: / }}\n        cluster: up\nclusters:\n  - name: up\n    endpoints: [\"{}\"]\n",
                server.cert.display(),
                server.key.display(),
                up.endpoint()
            )
        });
        let proxy = |sni: &str| {
            start_on(driver, |port, admin| {
                format!(
                    "workers: 1\nadmin: 127.0.0.1:{admin}\nlisteners:\n  - name: plain\n    address: 127.0.0.1:{port}\n    routes:\n      - match: {{ prefix: / }}\n        cluster: origin\nclusters:\n  - name: origin\n    endpoints: [\"{origin_addr}\"]\n    tls: {{ sni: {sni}, ca: {} }}\n",
                    pki.ca_file.display()
                )
            })
        };
        // The right name: served. The origin closes idle connections after 100 ms, so
        // each request after a pause opens a new connection, which resumes the session.
        let (rw, addr) = proxy("origin.test");
        for _ in 0..4 {
            assert_eq!(get(addr, "/").unwrap().status, 200, "{driver}");
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        let stats = rw.stats();
        assert_eq!(stats["cluster.origin.ssl.handshake"], 4, "{driver}");
        assert_eq!(stats["cluster.origin.ssl.session_reused"], 3, "{driver}");
        assert_eq!(
            origin.stats()["listener.tls.ssl.session_reused"],
            3,
            "{driver}"
        );
        drop(rw);
        // A name the certificate does not carry: refused, counted, 503.
        let (rw, addr) = proxy("other.test");
        assert_eq!(get(addr, "/").unwrap().status, 503, "{driver}");
        assert_eq!(
            rw.stats()["cluster.origin.ssl.fail_verify_san"],
            1,
            "{driver}"
        );
    }
}

#[test]
fn auto_sni_sends_the_requests_host_and_pools_per_name() {
    let pki = Pki::new("test CA");
    let a = pki.server("a", &["a.test"]);
    let b = pki.server("b", &["b.test"]);
    for driver in drivers() {
        let up = Upstream::start(false);
        // The origin chooses its certificate by SNI (a.test is its default).
        let (origin, origin_addr) = start_on(driver, |port, admin| {
            format!(
                "workers: 1\nadmin: 127.0.0.1:{admin}\nlisteners:\n  - name: tls\n    address: 127.0.0.1:{port}\n    tls:\n      certificates:\n        - {{ certificate_chain: {}, private_key: {} }}\n        - {{ certificate_chain: {}, private_key: {} }}\n    routes:\n      - match: {{ prefix: / }}\n        cluster: up\nclusters:\n  - name: up\n    endpoints: [\"{}\"]\n",
                a.cert.display(),
                a.key.display(),
                b.cert.display(),
                b.key.display(),
                up.endpoint()
            )
        });
        let (rw, addr) = start_on(driver, |port, admin| {
            format!(
                "workers: 1\nadmin: 127.0.0.1:{admin}\nlisteners:\n  - name: plain\n    address: 127.0.0.1:{port}\n    routes:\n      - match: {{ prefix: / }}\n        cluster: origin\nclusters:\n  - name: origin\n    endpoints: [\"{origin_addr}\"]\n    tls: {{ auto_sni: true, ca: {} }}\n",
                pki.ca_file.display()
            )
        });
        // Each name is verified against the certificate the origin chose for it: b.test
        // would fail if the name were not sent (the origin's default is a.test).
        for host in ["a.test", "b.test", "a.test:8443", "b.test"] {
            let r = exchange(
                addr,
                format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
            );
            assert_eq!(r.status, 200, "{driver}: {host}");
        }
        // One connection (and handshake) per name, reused.
        let stats = rw.stats();
        assert_eq!(stats["cluster.origin.ssl.handshake"], 2, "{driver}");
        assert_eq!(
            stats["cluster.origin.upstream_cx_pool_reuse"], 2,
            "{driver}"
        );
        assert_eq!(origin.stats()["listener.tls.ssl.handshake"], 2, "{driver}");
    }
}
