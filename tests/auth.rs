//! Authentication and authorization through the real binary, under both drivers: JWTs
//! signed by an independent library (`jsonwebtoken`) with keys made in the test,
//! checked against inline, file and remote JWKS (a test server that rotates its keys
//! and goes down); API keys and consumers (a file that revokes one); access policies on
//! claims, consumers, addresses and mTLS identities, enforced and in shadow mode; the
//! native `auth` forms and Envoy's `jwt_authn` and `rbac` filters.

mod common;

use std::{
    io::{BufReader, Write},
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::{jwt::*, upstream::Upstream, *};
use jsonwebtoken::Algorithm;
use serde_json::json;

const ISS: &str = "https://issuer.test";

/// One request with `headers` on a new connection.
fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: api.test\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    let mut conn = connect(addr).unwrap();
    conn.write_all(raw.as_bytes()).unwrap();
    read_response(&mut BufReader::new(conn), method == "HEAD").unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn get_with(addr: SocketAddr, target: &str, token: &str) -> Response {
    request(addr, "GET", target, &[("authorization", &bearer(token))])
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// A native config: `auth` (top-level block, indented two spaces), one listener whose
/// routes (indented six) go to `endpoint`.
fn native(admin: u16, port: u16, auth: &str, routes: &str, endpoint: &str) -> String {
    format!(
        "workers: 2\nadmin: 127.0.0.1:{admin}\nauth:\n{auth}\nlisteners:\n  - name: api\n    address: 127.0.0.1:{port}\n    routes:\n{routes}\nclusters:\n  - name: echo\n    endpoints: [\"{endpoint}\"]\n"
    )
}

fn inline_provider(name: &str, jwks_doc: &str, extra: &str) -> String {
    format!(
        "    - name: {name}\n      issuer: {ISS}\n      audiences: [api]\n      jwks: {{ inline: '{jwks_doc}' }}\n{extra}"
    )
}

#[test]
fn tokens_of_every_algorithm_pass_and_bad_ones_get_envoys_answers() {
    let algs = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    let signers: Vec<Signer> = algs
        .iter()
        .enumerate()
        .map(|(i, alg)| Signer::new(*alg, &format!("k{i}")))
        .collect();
    let doc = jwks(&signers.iter().collect::<Vec<_>>());
    let upstream = Upstream::start(false);
    let auth = format!(
        "  jwt_providers:\n{}",
        inline_provider(
            "main",
            &doc,
            "      claim_to_headers: { x-user: sub, x-tier: plan.tier }\n"
        )
    );
    let routes = "      - match: { prefix: /svc/ }\n        cluster: echo\n        auth: main\n      - match: { prefix: /open/ }\n        cluster: echo\n";
    for driver in drivers() {
        let (rw, addr) = start_on(driver, |port, admin| {
            native(admin, port, &auth, routes, &upstream.endpoint())
        });
        for s in &signers {
            let token = s.sign(&claims(
                ISS,
                "api",
                "alice",
                json!({"plan": {"tier": "gold"}}),
            ));
            let r = get_with(addr, "/svc/a", &token);
            assert_eq!(r.status, 200, "{:?} under {driver}: {}", s.alg, body(&r));
            let seen = upstream.next_seen();
            assert_eq!(
                seen.header("authorization"),
                None,
                "the token is not forwarded"
            );
            assert_eq!(seen.header("x-user").as_deref(), Some("alice"));
            assert_eq!(seen.header("x-tier").as_deref(), Some("gold"));
        }
        let rs = &signers[3];

        // Missing: 401, a challenge without an error code (RFC 6750 3.1).
        let r = request(addr, "GET", "/svc/a?x=1", &[]);
        assert_eq!(r.status, 401);
        assert_eq!(body(&r), "Jwt is missing\n");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"http://api.test/svc/a?x=1\"")
        );

        let invalid = |token: &str, status: u16, text: &str| {
            let r = get_with(addr, "/svc/a", token);
            assert_eq!(r.status, status, "{token}: {}", body(&r));
            assert_eq!(body(&r), format!("{text}\n"));
            let challenge = r.header("www-authenticate").unwrap();
            assert!(
                challenge.ends_with(", error=\"invalid_token\""),
                "{challenge}"
            );
        };
        let mut expired = claims(ISS, "api", "alice", json!({}));
        expired["exp"] = json!(now() - 3600);
        invalid(&rs.sign(&expired), 401, "Jwt is expired");
        let mut early = claims(ISS, "api", "alice", json!({}));
        early["nbf"] = json!(now() + 3600);
        invalid(&rs.sign(&early), 401, "Jwt not yet valid");
        invalid(
            &rs.sign(&claims("https://other.test", "api", "a", json!({}))),
            401,
            "Jwt issuer is not configured",
        );
        // A valid token for another audience: 403 (Envoy's rule).
        invalid(
            &rs.sign(&claims(ISS, "other", "a", json!({}))),
            403,
            "Audiences in Jwt are not allowed",
        );
        // A signature that does not verify.
        let good = rs.sign(&claims(ISS, "api", "a", json!({})));
        let (head, _) = good.rsplit_once('.').unwrap();
        let forged = format!("{head}.{}", "A".repeat(342));
        invalid(&forged, 401, "Jwt verification fails");
        // `alg: none`.
        let r = get_with(
            addr,
            "/svc/a",
            &unsigned(&claims(ISS, "api", "a", json!({}))),
        );
        assert_eq!(r.status, 401);
        // Not a JWT at all.
        let r = get_with(addr, "/svc/a", "not-a-token");
        assert_eq!(r.status, 401);
        assert!(body(&r).starts_with("Jwt is not in the form of Header.Payload.Signature"));
        // Routes without `auth` are open.
        assert_eq!(request(addr, "GET", "/open/x", &[]).status, 200);
        upstream.next_seen();

        let stats = rw.stats();
        assert!(stats["http.api.jwt_authn.allowed"] >= 12, "{stats:?}");
        assert!(stats["http.api.jwt_authn.denied"] >= 7);
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // An HS256 token whose secret is the RSA public key's bytes, against a JWKS that
    // holds only that RSA key: it must never verify.
    let rsa = Signer::new(Algorithm::RS256, "rsa");
    let n = rsa.jwk["n"].as_str().unwrap().to_owned();
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("rsa".into()),
            ..jsonwebtoken::Header::new(Algorithm::HS256)
        },
        &claims(ISS, "api", "mallory", json!({})),
        &jsonwebtoken::EncodingKey::from_secret(n.as_bytes()),
    )
    .unwrap();
    let upstream = Upstream::start(false);
    let auth = format!(
        "  jwt_providers:\n{}",
        inline_provider("main", &jwks(&[&rsa]), "")
    );
    let routes = "      - match: { prefix: / }\n        cluster: echo\n        auth: jwt\n";
    for driver in drivers() {
        let (_rw, addr) = start_on(driver, |port, admin| {
            native(admin, port, &auth, routes, &upstream.endpoint())
        });
        let r = get_with(addr, "/x", &forged);
        assert_eq!(r.status, 401, "{}", body(&r));
        assert_ne!(r.status, 200);
        let ok = rsa.sign(&claims(ISS, "api", "alice", json!({})));
        assert_eq!(get_with(addr, "/x", &ok).status, 200);
        upstream.next_seen();
    }
}

#[test]
fn tokens_are_found_in_a_header_a_query_parameter_and_a_cookie() {
    let key = Signer::new(Algorithm::ES256, "e1");
    let upstream = Upstream::start(false);
    let auth = format!(
        "  jwt_providers:\n{}",
        inline_provider(
            "main",
            &jwks(&[&key]),
            "      from: [ { header: x-token, prefix: \"Token \" }, { query: jwt }, { cookie: session } ]\n",
        )
    );
    let routes = "      - match: { prefix: / }\n        cluster: echo\n        auth: main\n";
    let token = key.sign(&claims(ISS, "api", "alice", json!({})));
    for driver in drivers() {
        let (_rw, addr) = start_on(driver, |port, admin| {
            native(admin, port, &auth, routes, &upstream.endpoint())
        });
        let r = request(addr, "GET", "/a", &[("x-token", &format!("Token {token}"))]);
        assert_eq!(r.status, 200);
        assert_eq!(upstream.next_seen().header("x-token"), None);

        // From the query: removed before the upstream, the other parameters kept.
        let r = request(addr, "GET", &format!("/a?x=1&jwt={token}&y=2"), &[]);
        assert_eq!(r.status, 200);
        assert_eq!(
            upstream.next_seen().request_line(),
            "GET /a?x=1&y=2 HTTP/1.1"
        );
        let r = request(addr, "GET", &format!("/a?jwt={token}"), &[]);
        assert_eq!(r.status, 200);
        assert_eq!(upstream.next_seen().request_line(), "GET /a HTTP/1.1");

        let cookie = format!("theme=dark; session={token}");
        let r = request(addr, "GET", "/a", &[("cookie", &cookie)]);
        assert_eq!(r.status, 200);
        upstream.next_seen();

        // The Authorization header is not a source here.
        assert_eq!(get_with(addr, "/a", &token).status, 401);
    }
}

#[test]
fn a_remote_jwks_rotates_on_an_unknown_kid_and_old_keys_survive_an_outage() {
    let (k1, k2) = (
        Signer::new(Algorithm::RS256, "k1"),
        Signer::new(Algorithm::RS256, "k2"),
    );
    let server = JwksServer::start(Some(jwks(&[&k1])));
    let upstream = Upstream::start(false);
    let auth = format!(
        "  jwt_providers:\n    - name: remote\n      issuer: {ISS}\n      jwks: {{ url: \"http://{}/jwks.json\", timeout: 1s, cache_duration: 10m, refetch_unknown_kid: 200ms }}\n",
        server.addr
    );
    let routes = "      - match: { prefix: / }\n        cluster: echo\n        auth: remote\n";
    for driver in drivers() {
        server.serve(Some(jwks(&[&k1])));
        let (_rw, addr) = start_on(driver, |port, admin| {
            native(admin, port, &auth, routes, &upstream.endpoint())
        });
        let t1 = k1.sign(&claims(ISS, "api", "alice", json!({})));
        assert_eq!(get_with(addr, "/a", &t1).status, 200);
        upstream.next_seen();

        // The issuer rotates to k2: the first k2 token finds no key and asks for a
        // refetch; soon after, k2 tokens pass.
        server.serve(Some(jwks(&[&k1, &k2])));
        let t2 = k2.sign(&claims(ISS, "api", "bob", json!({})));
        let r = get_with(addr, "/a", &t2);
        assert_eq!(r.status, 401);
        assert_eq!(
            body(&r),
            "Jwks doesn't have key to match kid or alg from Jwt\n"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Each worker asks on its own; any request may land on either.
            let r = get_with(addr, "/a", &t2);
            if r.status == 200 {
                upstream.next_seen();
                break;
            }
            assert!(Instant::now() < deadline, "k2 never accepted: {}", body(&r));
            std::thread::sleep(Duration::from_millis(100));
        }

        // The JWKS server fails: the keys fetched last keep working.
        server.serve(None);
        let k3 = Signer::new(Algorithm::RS256, "k3");
        let t3 = k3.sign(&claims(ISS, "api", "carol", json!({})));
        assert_eq!(get_with(addr, "/a", &t3).status, 401);
        std::thread::sleep(Duration::from_millis(500));
        for token in [&t1, &t2] {
            assert_eq!(get_with(addr, "/a", token).status, 200);
            upstream.next_seen();
        }
    }
}

#[test]
fn ready_waits_for_keys_when_told_to_and_requests_get_401_until_then() {
    let key = Signer::new(Algorithm::ES256, "e1");
    let server = JwksServer::start(None);
    let upstream = Upstream::start(false);
    let auth = format!(
        "  jwt_providers:\n    - name: remote\n      jwks: {{ url: \"http://{}/jwks\", timeout: 1s, failed_refetch: 200ms, wait_for_keys: true }}\n",
        server.addr
    );
    let routes = "      - match: { prefix: / }\n        cluster: echo\n        auth: remote\n";
    for driver in drivers() {
        server.serve(None);
        let (port, admin) = (free_port(), free_port());
        let yaml = native(admin, port, &auth, routes, &upstream.endpoint());
        let _rw = Ringway::spawn(&yaml, admin, &["--driver", driver]);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let admin_addr: SocketAddr = ([127, 0, 0, 1], admin).into();
        let token = key.sign(&claims(ISS, "api", "alice", json!({})));
        // Keys never came: not ready, and tokens cannot be checked.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            // PRE_INITIALIZING while the first fetch is waited for, then INITIALIZING
            // while serving without the keys; never ready.
            if let Ok(r) = get(admin_addr, "/ready") {
                assert_eq!(r.status, 503, "{}", body(&r));
                if body(&r) == "INITIALIZING\n" {
                    break;
                }
                assert_eq!(body(&r), "PRE_INITIALIZING\n");
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(50));
        }
        let r = get_with(addr, "/a", &token);
        assert_eq!(r.status, 401);
        assert_eq!(body(&r), "Jwks remote fetch is failed\n");
        // The keys come: ready, and the token passes.
        server.serve(Some(jwks(&[&key])));
        let deadline = Instant::now() + Duration::from_secs(10);
        while get(admin_addr, "/ready").map(|r| r.status).ok() != Some(200) {
            assert!(Instant::now() < deadline, "never ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(get_with(addr, "/a", &token).status, 200);
        upstream.next_seen();
    }
}

#[test]
fn a_jwks_file_is_reloaded_when_it_changes() {
    let (k1, k2) = (
        Signer::new(Algorithm::EdDSA, "a"),
        Signer::new(Algorithm::EdDSA, "b"),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    let upstream = Upstream::start(false);
    let auth = format!(
        "  jwt_providers:\n    - name: f\n      jwks: {{ file: {} }}\n",
        file.display()
    );
    let routes = "      - match: { prefix: / }\n        cluster: echo\n        auth: f\n";
    for driver in drivers() {
        std::fs::write(&file, jwks(&[&k1])).unwrap();
        let (_rw, addr) = start_on(driver, |port, admin| {
            native(admin, port, &auth, routes, &upstream.endpoint())
        });
        let (t1, t2) = (
            k1.sign(&claims(ISS, "api", "a", json!({}))),
            k2.sign(&claims(ISS, "api", "b", json!({}))),
        );
        assert_eq!(get_with(addr, "/", &t1).status, 200);
        upstream.next_seen();
        assert_eq!(get_with(addr, "/", &t2).status, 401);
        std::fs::write(&file, jwks(&[&k2])).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while get_with(addr, "/", &t2).status != 200 {
            assert!(Instant::now() < deadline, "the new file was never used");
            std::thread::sleep(Duration::from_millis(100));
        }
        upstream.next_seen();
        assert_eq!(get_with(addr, "/", &t1).status, 401);
        // A file that does not parse keeps the keys before it.
        std::fs::write(&file, "{ not json").unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        assert_eq!(get_with(addr, "/", &t2).status, 200);
        upstream.next_seen();
    }
}

#[test]
fn api_keys_name_their_consumer_and_a_file_change_revokes_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("consumers.yaml");
    let digest = |key: &str| {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let upstream = Upstream::start(false);
    let auth = format!(
        "  api_keys:\n    from: [ {{ header: x-api-key }}, {{ query: api_key }} ]\n    consumers:\n      - name: acme\n        keys: [ \"acme-key-1\" ]\n        metadata: {{ plan: gold }}\n    file: {}\n",
        file.display()
    );
    let routes = "      - match: { prefix: / }\n        cluster: echo\n        auth: api_key\n        request_headers_to_add:\n          - { name: x-consumer, value: \"%CONSUMER%\" }\n";
    for driver in drivers() {
        std::fs::write(
            &file,
            format!(
                "consumers:\n  - name: globex\n    key_sha256: [ \"{}\" ]\n",
                digest("globex-key")
            ),
        )
        .unwrap();
        let (rw, addr) = start_on(driver, |port, admin| {
            native(admin, port, &auth, routes, &upstream.endpoint())
        });
        let r = request(addr, "GET", "/a", &[("x-api-key", "acme-key-1")]);
        assert_eq!(r.status, 200);
        let seen = upstream.next_seen();
        assert_eq!(seen.header("x-api-key"), None, "the key is not forwarded");
        assert_eq!(seen.header("x-consumer").as_deref(), Some("acme"));
        let r = request(addr, "GET", "/a?api_key=globex-key&q=1", &[]);
        assert_eq!(r.status, 200);
        let seen = upstream.next_seen();
        assert_eq!(seen.request_line(), "GET /a?q=1 HTTP/1.1");
        assert_eq!(seen.header("x-consumer").as_deref(), Some("globex"));

        let r = request(addr, "GET", "/a", &[]);
        assert_eq!(r.status, 401);
        assert_eq!(body(&r), "API key is missing\n");
        let r = request(addr, "GET", "/a", &[("x-api-key", "guess")]);
        assert_eq!(r.status, 401);
        assert_eq!(body(&r), "API key is not valid\n");

        // Revoked by the file.
        std::fs::write(&file, "consumers: []\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while request(addr, "GET", "/a", &[("x-api-key", "globex-key")]).status != 401 {
            upstream.next_seen();
            assert!(Instant::now() < deadline, "the key was never revoked");
            std::thread::sleep(Duration::from_millis(100));
        }
        let stats = rw.stats();
        assert!(stats["consumer.acme.rq_total"] >= 1, "{stats:?}");
        assert!(stats["consumer.acme.rq_2xx"] >= 1);
    }
}

#[test]
fn policies_decide_on_claims_consumers_and_addresses_with_a_shadow_mode() {
    let key = Signer::new(Algorithm::RS256, "r");
    let upstream = Upstream::start(false);
    let auth = format!(
        "  jwt_providers:\n{}",
        inline_provider("main", &jwks(&[&key]), "")
    );
    let routes = "      - match: { prefix: /orders }\n        cluster: echo\n        auth: main\n        authorization:\n          rules:\n            - name: readers\n              allow: { claim: { name: scope, has: [orders:read] } }\n            - name: admins\n              allow: { claim: { name: groups, any_of: [admins] } }\n      - match: { prefix: /local }\n        cluster: echo\n        authorization:\n          rules:\n            - allow: { source: [127.0.0.0/8] }\n      - match: { prefix: /elsewhere }\n        cluster: echo\n        authorization:\n          rules:\n            - allow: { source: [10.0.0.0/8] }\n      - match: { prefix: /shadow }\n        cluster: echo\n        authorization:\n          shadow: true\n          rules:\n            - allow: { source: [10.0.0.0/8] }\n";
    for driver in drivers() {
        let (rw, addr) = start_on(driver, |port, admin| {
            native(admin, port, &auth, routes, &upstream.endpoint())
        });
        let reader = key.sign(&claims(
            ISS,
            "api",
            "a",
            json!({"scope": "profile orders:read"}),
        ));
        let admin = key.sign(&claims(
            ISS,
            "api",
            "b",
            json!({"groups": ["ops", "admins"]}),
        ));
        let nobody = key.sign(&claims(ISS, "api", "c", json!({"scope": "orders:readx"})));
        for token in [&reader, &admin] {
            assert_eq!(get_with(addr, "/orders", token).status, 200);
            upstream.next_seen();
        }
        let r = get_with(addr, "/orders", &nobody);
        assert_eq!(r.status, 403);
        assert_eq!(body(&r), "RBAC: access denied\n");
        assert_eq!(request(addr, "GET", "/local", &[]).status, 200);
        upstream.next_seen();
        assert_eq!(request(addr, "GET", "/elsewhere", &[]).status, 403);
        // Shadow: denied in the stats, served all the same.
        assert_eq!(request(addr, "GET", "/shadow", &[]).status, 200);
        upstream.next_seen();
        let stats = rw.stats();
        assert!(stats["http.api.rbac.allowed"] >= 3, "{stats:?}");
        assert!(stats["http.api.rbac.denied"] >= 2);
        assert!(stats["http.api.rbac.shadow_denied"] >= 1);
    }
}

#[test]
fn cors_preflights_pass_without_a_token() {
    let key = Signer::new(Algorithm::HS256, "h");
    let upstream = Upstream::start(false);
    let auth = format!(
        "  jwt_providers:\n{}",
        inline_provider("main", &jwks(&[&key]), "")
    );
    let routes = "      - match: { prefix: / }\n        cluster: echo\n        auth: main\n";
    for driver in drivers() {
        let (_rw, addr) = start_on(driver, |port, admin| {
            native(admin, port, &auth, routes, &upstream.endpoint())
        });
        let preflight = [
            ("origin", "https://app.test"),
            ("access-control-request-method", "POST"),
        ];
        let r = request(addr, "OPTIONS", "/a", &preflight);
        assert_eq!(r.status, 200, "{}", body(&r));
        upstream.next_seen();
        // An OPTIONS that is not a preflight still needs a token.
        assert_eq!(request(addr, "OPTIONS", "/a", &[]).status, 401);
    }
}

/// Envoy's `jwt_authn` and `rbac` filters, as an Envoy bootstrap writes them.
#[test]
fn envoy_jwt_authn_and_rbac_filters_with_rules_and_per_route_config() {
    let key = Signer::new(Algorithm::RS256, "r");
    let upstream = Upstream::start(false);
    let doc = jwks(&[&key]).replace('"', "\\\"");
    for driver in drivers() {
        let (rw, addr) = start_on(driver, |port, admin| {
            let routes = r#"              - match: { prefix: "/public" }
                route: { cluster: echo }
                typed_per_filter_config:
                  envoy.filters.http.jwt_authn:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
                    disabled: true
                  envoy.filters.http.rbac:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
              - match: { prefix: "/" }
                route: { cluster: echo }
"#;
            let filters = format!(
                r#"          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                issuer1:
                  issuer: {ISS}
                  audiences: [api]
                  local_jwks: {{ inline_string: "{doc}" }}
                  payload_in_metadata: jwt
              rules:
              - match: {{ prefix: "/optional" }}
                requires: {{ allow_missing: {{}} }}
              - match: {{ prefix: "/" }}
                requires: {{ provider_name: issuer1 }}
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  admins:
                    permissions: [ {{ any: true }} ]
                    principals:
                    - metadata:
                        filter: envoy.filters.http.jwt_authn
                        path: [ {{ key: jwt }}, {{ key: role }} ]
                        value: {{ string_match: {{ exact: admin }} }}
"#
            );
            let clusters = [("echo", upstream.addr.port())];
            common::envoy::bootstrap(
                (admin, port),
                &format!("              routes:\n{routes}"),
                &filters,
                &clusters,
            )
        });
        let admin = key.sign(&claims(ISS, "api", "a", json!({"role": "admin"})));
        let user = key.sign(&claims(ISS, "api", "u", json!({"role": "user"})));
        assert_eq!(get_with(addr, "/x", &admin).status, 200);
        upstream.next_seen();
        let r = get_with(addr, "/x", &user);
        assert_eq!(r.status, 403);
        assert_eq!(body(&r), "RBAC: access denied");
        let r = request(addr, "GET", "/x", &[]);
        assert_eq!(r.status, 401);
        assert_eq!(body(&r), "Jwt is missing");
        assert_eq!(request(addr, "GET", "/public", &[]).status, 200);
        upstream.next_seen();
        // Alone, `allow_missing` verifies what any provider finds: none passes, a bad
        // token does not (the RBAC policy then decides: `admin` passes it).
        let mut bad = admin.clone().into_bytes();
        let at = bad.len() - 10;
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(get_with(addr, "/optional", &bad).status, 401);
        assert_eq!(get_with(addr, "/optional", &admin).status, 200);
        upstream.next_seen();
        let stats = rw.stats();
        assert!(
            stats["http.ingress_http.jwt_authn.allowed"] >= 2,
            "{stats:?}"
        );
        assert!(stats["http.ingress_http.jwt_authn.denied"] >= 1);
        assert!(stats["http.ingress_http.rbac.denied"] >= 1);
    }
}

/// The mesh case: a sidecar authorizes calls by the caller's mTLS identity (its SPIFFE
/// ID), with a listener-wide policy and a route that replaces it.
#[test]
fn policies_decide_on_the_callers_mtls_identity() {
    use common::pki::*;
    let pki = Pki::new("mesh CA");
    let server = pki.server("orders", &["orders.mesh"]);
    let web = pki.client("web", &["spiffe://cluster.local/ns/shop/sa/web"]);
    let batch = pki.client("batch", &["spiffe://cluster.local/ns/jobs/sa/batch"]);
    let upstream = Upstream::start(false);
    for driver in drivers() {
        let (_rw, addr) = start_on(driver, |port, admin| {
            format!(
                "workers: 2\nadmin: 127.0.0.1:{admin}\nlisteners:\n  - name: sidecar\n    address: 127.0.0.1:{port}\n    tls:\n      certificates:\n        - certificate_chain: {}\n          private_key: {}\n      client_certificate: {{ ca: {}, required: true }}\n    authorization:\n      rules:\n        - allow: {{ peer: {{ uri: {{ prefix: \"spiffe://cluster.local/ns/shop/\" }} }} }}\n    routes:\n      - match: {{ prefix: /batch/ }}\n        cluster: echo\n        authorization:\n          rules:\n            - allow: {{ all: [ {{ peer: \"spiffe://cluster.local/ns/jobs/sa/batch\" }}, {{ method: [POST] }} ] }}\n            - allow: {{ server_name: orders.mesh, peer: \"spiffe://cluster.local/ns/shop/sa/web\", method: [GET] }}\n      - match: {{ prefix: / }}\n        cluster: echo\nclusters:\n  - name: echo\n    endpoints: [\"{}\"]\n",
                server.cert.display(),
                server.key.display(),
                pki.ca_file.display(),
                upstream.endpoint()
            )
        });
        let call = |client: &Issued, raw: &str| {
            let config = client_config(&pki.ca_file, Some(client), &[&rustls::version::TLS13], &[]);
            let mut conn = tls_connect(addr, &config, "orders.mesh").unwrap();
            tls_request(&mut conn, raw).unwrap()
        };
        let get = "GET /orders HTTP/1.1\r\nHost: orders.mesh\r\n\r\n";
        assert_eq!(call(&web, get).status, 200);
        upstream.next_seen();
        let r = call(&batch, get);
        assert_eq!(r.status, 403);
        assert_eq!(body(&r), "RBAC: access denied\n");
        let post = "POST /batch/run HTTP/1.1\r\nHost: orders.mesh\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(call(&batch, post).status, 200);
        upstream.next_seen();
        assert_eq!(call(&web, post).status, 403);
        let get_batch = "GET /batch/status HTTP/1.1\r\nHost: orders.mesh\r\n\r\n";
        assert_eq!(call(&web, get_batch).status, 200);
        upstream.next_seen();
    }
}

/// Several providers on one route, combined as Envoy's `requires_any` / `requires_all`
/// combine them, with `allow_missing`; identity headers never come from the client.
#[test]
fn requirements_combine_providers_and_keys() {
    let (a, b) = (
        Signer::new(Algorithm::ES256, "a"),
        Signer::new(Algorithm::RS256, "b"),
    );
    let upstream = Upstream::start(false);
    let auth = format!(
        "  jwt_providers:\n    - name: a\n      issuer: https://a.test\n      jwks: {{ inline: '{}' }}\n      claim_to_headers: {{ x-user: sub }}\n    - name: b\n      issuer: https://b.test\n      jwks: {{ inline: '{}' }}\n  api_keys:\n    consumers:\n      - name: acme\n        keys: [k1]\n",
        jwks(&[&a]),
        jwks(&[&b])
    );
    let routes = "      - match: { prefix: /either }\n        cluster: echo\n        auth: { any: [a, b] }\n      - match: { prefix: /optional }\n        cluster: echo\n        auth: { any: [a, allow_missing] }\n      - match: { prefix: /both }\n        cluster: echo\n        auth: { all: [a, api_key] }\n      - match: { prefix: /anything }\n        cluster: echo\n        auth: { any: [allow_missing_or_failed, a] }\n      - match: { prefix: /key-or-none }\n        cluster: echo\n        auth: { any: [api_key, allow_missing] }\n      - match: { prefix: /rewritten/ }\n        cluster: echo\n        prefix_rewrite: /v2/\n        auth: { any: [a, allow_missing] }\n";
    let ta = a.sign(&claims("https://a.test", "api", "alice", json!({})));
    let tb = b.sign(&claims("https://b.test", "api", "bob", json!({})));
    // The signature with one of its characters changed (not the last: its low bits
    // are padding).
    let mut forged = ta.clone().into_bytes();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for driver in drivers() {
        let (_rw, addr) = start_on(driver, |port, admin| {
            native(admin, port, &auth, routes, &upstream.endpoint())
        });
        for token in [&ta, &tb] {
            assert_eq!(get_with(addr, "/either", token).status, 200);
            upstream.next_seen();
        }
        assert_eq!(request(addr, "GET", "/either", &[]).status, 401);

        // Optional: no token passes, without the client's own `x-user`; a bad token
        // does not; a token of another issuer counts as none (Envoy's rule).
        let r = request(addr, "GET", "/optional", &[("x-user", "admin")]);
        assert_eq!(r.status, 200);
        assert_eq!(upstream.next_seen().header("x-user"), None);
        let r = request(
            addr,
            "GET",
            "/optional",
            &[("authorization", &bearer(&ta)), ("x-user", "admin")],
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            upstream.next_seen().header("x-user").as_deref(),
            Some("alice")
        );
        assert_eq!(get_with(addr, "/optional", &forged).status, 401);
        assert_eq!(get_with(addr, "/optional", &tb).status, 200);
        upstream.next_seen();

        // Both a token and a key.
        assert_eq!(get_with(addr, "/both", &ta).status, 401);
        let r = request(
            addr,
            "GET",
            "/both",
            &[("authorization", &bearer(&ta)), ("x-api-key", "k1")],
        );
        assert_eq!(r.status, 200);
        upstream.next_seen();

        // `allow_missing_or_failed` first in the list: the token is still verified and
        // its claims forwarded; a client's own identity header never passes.
        let spoof = ("x-user", "admin");
        let r = request(addr, "GET", "/anything", &[spoof]);
        assert_eq!(r.status, 200);
        assert_eq!(upstream.next_seen().header("x-user"), None);
        let r = request(
            addr,
            "GET",
            "/anything",
            &[("authorization", &bearer(&forged)), spoof],
        );
        assert_eq!(r.status, 200);
        assert_eq!(upstream.next_seen().header("x-user"), None);
        let r = request(
            addr,
            "GET",
            "/anything",
            &[("authorization", &bearer(&ta)), spoof],
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            upstream.next_seen().header("x-user").as_deref(),
            Some("alice")
        );
        // A missing API key is a missing credential, which `allow_missing` lets pass.
        assert_eq!(request(addr, "GET", "/key-or-none", &[]).status, 200);
        upstream.next_seen();
        assert_eq!(
            request(addr, "GET", "/key-or-none", &[("x-api-key", "nope")]).status,
            401
        );
        // A token taken from the query reaches the upstream neither in the target nor in
        // `x-envoy-original-path`.
        let r = request(
            addr,
            "GET",
            &format!("/rewritten/x?access_token={ta}&q=1"),
            &[],
        );
        assert_eq!(r.status, 200);
        let seen = upstream.next_seen();
        assert_eq!(seen.request_line(), "GET /v2/x?q=1 HTTP/1.1");
        assert_eq!(
            seen.header("x-envoy-original-path").as_deref(),
            Some("/rewritten/x?q=1")
        );
    }
}

/// Envoy's `async_fetch.fast_listener: false`: the listener waits for the first fetch
/// to *complete*, successful or not (Envoy's documented rule), then serves; a provider
/// whose fetch failed answers 401 until a later fetch succeeds.
#[test]
fn envoy_remote_jwks_through_a_cluster_with_fast_listener_false() {
    let key = Signer::new(Algorithm::ES256, "e");
    let server = JwksServer::start(None);
    let upstream = Upstream::start(false);
    for driver in drivers() {
        server.serve(None);
        let (_rw, addr) = start_on(driver, |port, admin| {
            let routes = "              - match: { prefix: \"/\" }\n                route: { cluster: echo }\n";
            let filters = r#"          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                idp:
                  remote_jwks:
                    http_uri: { uri: "http://idp.test/keys", cluster: jwks, timeout: 1s }
                    async_fetch: { fast_listener: false, failed_refetch_duration: 0.2s }
              rules:
              - match: { prefix: "/" }
                requires: { provider_name: idp }
"#;
            let clusters = [("echo", upstream.addr.port()), ("jwks", server.addr.port())];
            common::envoy::bootstrap(
                (admin, port),
                &format!("              routes:\n{routes}"),
                filters,
                &clusters,
            )
        });
        // Ready (start_on waited for /ready) although the first fetch failed.
        let token = key.sign(&claims(ISS, "api", "alice", json!({})));
        let r = get_with(addr, "/a", &token);
        assert_eq!(r.status, 401);
        assert_eq!(body(&r), "Jwks remote fetch is failed");
        server.serve(Some(jwks(&[&key])));
        let deadline = Instant::now() + Duration::from_secs(10);
        while get_with(addr, "/a", &token).status != 200 {
            assert!(Instant::now() < deadline, "the keys never came");
            std::thread::sleep(Duration::from_millis(100));
        }
        upstream.next_seen();
        assert!(server.fetches() >= 2);
    }
}
