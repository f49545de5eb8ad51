//! Regression guard: heap allocations per proxied request in steady state, counted by
//! the real binary (feature `alloc-count`: a counting wrapper around mimalloc, published
//! per worker as `server.worker_<i>.heap_allocations`), under both drivers.
//!
//! Steady state: keep-alive requests routed to a cluster, access log off, the
//! connections (client and upstream) and the worker's buffers already warm, so what is
//! counted is what each request costs, not what each connection costs. Nothing is timed.
//! The issue's case is the small GET; the other shapes (chunked framing, bodies larger
//! than a buffer chunk) keep the body paths allocation-free too.

#![cfg(feature = "alloc-count")]

mod common;

use std::{
    collections::HashMap,
    io::{BufReader, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use common::{upstream::Upstream, *};

/// The most allocations a request of a shape that measures zero may cost: room for the
/// rare allocation a timer wheel or a pool makes in passing, so that a change adding one
/// per request fails. (The performance issue's target was 2; every shape is below it.)
const NONE: f64 = 0.1;
const CONNECTIONS: usize = 4;

/// The tests of this file run one at a time: some shapes count what a wait costs (a
/// wait that goes cold allocates once), and a neighbouring test's load (the traced one
/// exports at 100 %) makes the upstream slow enough that extra waits go cold; measured
/// on this machine with two CPU hogs beside it, the 150 ms shape went from 1.0 to 1.45.
#[allow(clippy::disallowed_types)] // test-only: the proxy's rule is about its own threads
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`ONE_AT_A_TIME`] for a test (a test that failed while holding it does not
/// stop the others).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One request shape, sent on every connection in turn: `warmup` rounds, then
/// `measured` rounds counted, `gap` apart.
struct Shape {
    name: &'static str,
    request: Vec<u8>,
    /// The body the echo upstream sends back.
    response_body: Vec<u8>,
    warmup: usize,
    measured: usize,
    gap: Duration,
    /// The answer's status.
    status: u16,
    /// The most allocations a request of this shape may cost.
    max: f64,
}

impl Shape {
    /// A small request answered without a body, measured in steady state (200 rounds of
    /// warm-up, 500 counted, back to back) and allowed no allocation.
    fn small(name: &'static str, request: &[u8], status: u16) -> Shape {
        Shape {
            name,
            request: request.to_vec(),
            response_body: Vec::new(),
            warmup: 200,
            measured: 500,
            gap: Duration::ZERO,
            status,
            max: NONE,
        }
    }
}

/// The shapes measured, one after the other on the same connections; `token` is a JWT
/// the `/authed/` route accepts.
fn shapes(token: &str) -> Vec<Shape> {
    let big: Vec<u8> = (0..64 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    let mut chunked_big = Vec::new();
    for piece in big.chunks(5000) {
        chunked_big.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked_big.extend_from_slice(piece);
        chunked_big.extend_from_slice(b"\r\n");
    }
    chunked_big.extend_from_slice(b"0\r\n\r\n");
    let with_body = |head: &str, body: &[u8]| [head.as_bytes(), body].concat();
    vec![
        // A regex path rewrite with captures and a literal Host (the routing issue's
        // budget: 0 allocations).
        Shape::small(
            "GET with a regex path rewrite and a host rewrite",
            b"GET /rewritten/orders/42 HTTP/1.1\r\nHost: alloc.test\r\n\r\n",
            200,
        ),
        // A redirect, its location built per request.
        Shape::small(
            "GET answered with a redirect",
            b"GET /moved/item?q=1 HTTP/1.1\r\nHost: alloc.test\r\n\r\n",
            308,
        ),
        // A CORS request from an allowed origin (its origin kept for the response side).
        Shape::small(
            "GET from an allowed CORS origin",
            b"GET /cors/item HTTP/1.1\r\nHost: alloc.test\r\nOrigin: https://app.example.com\r\n\r\n",
            200,
        ),
        // A CORS preflight, answered by ringway.
        Shape::small(
            "CORS preflight",
            b"OPTIONS /cors/item HTTP/1.1\r\nHost: alloc.test\r\nOrigin: https://app.example.com\r\nAccess-Control-Request-Method: PUT\r\n\r\n",
            200,
        ),
        // A route whose filter chain makes five header edits on the request and two on
        // the response (the pipeline issue's budget: at most one allocation).
        Shape::small(
            "GET on a route with five header edits",
            b"GET /edited/item/42 HTTP/1.1\r\nHost: alloc.test\r\nX-Drop: 1\r\nX-Tenant: old\r\n\r\n",
            200,
        ),
        // The auth issue's case: a JWT (one per connection, verified once per core, then
        // cached), two claims to headers and a 10-rule policy deciding on its last rule.
        Shape::small(
            "GET with a cached JWT and a 10-rule policy",
            format!(
                "GET /authed/item HTTP/1.1\r\nHost: alloc.test\r\nAuthorization: Bearer {token}\r\n\r\n"
            )
            .as_bytes(),
            200,
        ),
        // An API key, its consumer counted.
        Shape::small(
            "GET with an API key",
            b"GET /keyed/item HTTP/1.1\r\nHost: alloc.test\r\nX-Api-Key: alloc-key\r\n\r\n",
            200,
        ),
        // A route with its own stats (`vhost.<listener>.route.counted.`).
        Shape::small(
            "GET on a route with its own stats",
            b"GET /counted/item HTTP/1.1\r\nHost: alloc.test\r\n\r\n",
            200,
        ),
        // The rate-limit issue's case: a per-client limit that never trips (a lease in
        // hand on most requests; 0 allocations).
        Shape::small(
            "GET under a per-client rate limit",
            b"GET /limited/item HTTP/1.1\r\nHost: alloc.test\r\n\r\n",
            200,
        ),
        // A per-consumer limit after an API key, with the draft's RateLimit headers.
        Shape::small(
            "GET with an API key, a per-consumer limit and RateLimit headers",
            b"GET /quota/item HTTP/1.1\r\nHost: alloc.test\r\nX-Api-Key: alloc-key\r\n\r\n",
            200,
        ),
        // The balancing issue's case: a 10-endpoint least-request cluster with outlier
        // detection (a pick of two, in-flight counts, outcome streaks: 0 allocations).
        Shape::small(
            "GET to a 10-endpoint least-request cluster",
            b"GET /least/item HTTP/1.1\r\nHost: alloc.test\r\n\r\n",
            200,
        ),
        // A Maglev cluster hashed on a header (the hash, the table lookup).
        Shape::small(
            "GET to a Maglev cluster hashed on a header",
            b"GET /maglev/item HTTP/1.1\r\nHost: alloc.test\r\nX-User: alice\r\n\r\n",
            200,
        ),
        // The resilience issue's case: a route with a retry policy, per-try and stream
        // limits and attempt-count headers, to a cluster with breakers that never trip
        // (leases, permits, the plan: 0 allocations).
        Shape::small(
            "GET on a route with retries and circuit breakers",
            b"GET /retried/item HTTP/1.1\r\nHost: alloc.test\r\n\r\n",
            200,
        ),
        // The performance issue's case: a small keep-alive GET, content-length response.
        Shape::small(
            "GET, content-length response",
            b"GET /svc/item/42?q=1 HTTP/1.1\r\nHost: alloc.test\r\n\r\n",
            200,
        ),
        // The same from a slow client: each connection's next request comes after
        // ringway stopped waiting for it with a read in flight (the hot window).
        Shape {
            name: "GET, content-length response, 150 ms apart",
            request: b"GET /svc/item/42?q=1 HTTP/1.1\r\nHost: alloc.test\r\n\r\n".to_vec(),
            response_body: Vec::new(),
            warmup: 2,
            measured: 10,
            gap: Duration::from_millis(150),
            status: 200,
            max: 1.1,
        },
        // A small body each way, the response chunked with a trailer (re-framed).
        Shape {
            name: "small POST, chunked response with a trailer",
            request: with_body(
                "POST /svc/echo HTTP/1.1\r\nHost: alloc.test\r\nContent-Length: 5\r\nx-respond-chunked: 1\r\n\r\n",
                b"hello",
            ),
            response_body: b"hello".to_vec(),
            warmup: 200,
            measured: 500,
            gap: Duration::ZERO,
            status: 200,
            max: NONE,
        },
        // 64 KiB each way: bodies larger than a chunk stream through the pump loops.
        Shape {
            name: "64 KiB POST, content-length both ways",
            request: with_body(
                "POST /svc/echo HTTP/1.1\r\nHost: alloc.test\r\nContent-Length: 65536\r\n\r\n",
                &big,
            ),
            response_body: big.clone(),
            warmup: 20,
            measured: 100,
            gap: Duration::ZERO,
            status: 200,
            max: NONE,
        },
        Shape {
            name: "64 KiB POST, chunked both ways",
            request: with_body(
                "POST /svc/echo HTTP/1.1\r\nHost: alloc.test\r\nTransfer-Encoding: chunked\r\nx-respond-chunked: 1\r\n\r\n",
                &chunked_big,
            ),
            response_body: big,
            warmup: 20,
            measured: 100,
            gap: Duration::ZERO,
            status: 200,
            max: NONE,
        },
        // Shadow traffic: each request also copied to a second cluster, fire and forget
        // (the copy, which is also the buffer its response is read into, the shadow's
        // task, and its response's header list: `worker::mirror`). Last: its shadows'
        // connections linger in the shadow cluster's pool, whose sweeps would count
        // against the shapes after it.
        Shape {
            max: 3.1,
            ..Shape::small(
                "GET mirrored to a shadow cluster",
                b"GET /mirrored/item HTTP/1.1\r\nHost: alloc.test\r\n\r\n",
                200,
            )
        },
    ]
}

struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        let writer = connect(addr).unwrap();
        let reader = BufReader::new(writer.try_clone().unwrap());
        Client { writer, reader }
    }

    fn send(&mut self, shape: &Shape) {
        self.writer.write_all(&shape.request).unwrap();
        let r = read_response(&mut self.reader, false).unwrap();
        assert_eq!(r.status, shape.status, "{}", shape.name);
        assert_eq!(r.header("connection"), None, "keep-alive expected");
        assert!(
            r.body == shape.response_body,
            "{}: body differs",
            shape.name
        );
    }
}

/// `server.worker_<i>.heap_allocations` for every worker, in worker order.
fn per_worker(stats: &HashMap<String, u64>, workers: usize) -> Vec<u64> {
    (0..workers)
        .map(|w| {
            let name = format!("server.worker_{w}.heap_allocations");
            *stats
                .get(&name)
                .unwrap_or_else(|| panic!("no {name} in /stats"))
        })
        .collect()
}

fn round(clients: &mut [Client], shape: &Shape, per_connection: usize) {
    for _ in 0..per_connection {
        std::thread::sleep(shape.gap);
        for client in clients.iter_mut() {
            client.send(shape);
        }
    }
}

/// How many windows of `measured` rounds a shape may take to come in at its `max`.
/// A change that adds an allocation to every request fails every window; a machine
/// that stalls for a moment (a shared CI runner: the 150 ms shape once read 1.25 there,
/// never above 1.025 here with three CPU hogs on one core) fails one. Every window is
/// printed.
const WINDOWS: usize = 3;

/// The stats once every request sent so far has been completed: a worker publishes its
/// allocation count when a request ends, just after writing the response, so a client
/// can read the response before the count moves.
fn settled_stats(rw: &Ringway) -> HashMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let stats = rw.stats();
        let active: u64 = stats
            .iter()
            .filter(|(name, _)| {
                name.starts_with("http.") && name.ends_with(".downstream_rq_active")
            })
            .map(|(_, value)| value)
            .sum();
        if active == 0 || Instant::now() > deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Allocations per request for `shape` on warm connections, asserted at most its `max`
/// in one of [`WINDOWS`] windows.
fn measure(rw: &Ringway, clients: &mut [Client], shape: &Shape, driver: &str, workers: usize) {
    round(clients, shape, shape.warmup);
    let mut windows = Vec::with_capacity(WINDOWS);
    for window in 1..=WINDOWS {
        let before = settled_stats(rw);
        round(clients, shape, shape.measured);
        let after = settled_stats(rw);

        let (b, a) = (per_worker(&before, workers), per_worker(&after, workers));
        assert!(
            b.iter().sum::<u64>() > 0,
            "{driver}: the counter never moved: {b:?}"
        );
        let requests = (clients.len() * shape.measured) as u64;
        let served =
            after["http.public.downstream_rq_total"] - before["http.public.downstream_rq_total"];
        assert_eq!(served, requests, "{driver}: requests counted");
        let delta: u64 = a.iter().zip(&b).map(|(a, b)| a - b).sum();
        let per_request = delta as f64 / requests as f64;
        eprintln!(
            "{driver}, {}, window {window}: {delta} heap allocations over {requests} proxied keep-alive requests = {per_request:.3} per request (per worker before {b:?}, after {a:?})",
            shape.name
        );
        windows.push(per_request);
        if per_request <= shape.max {
            return;
        }
    }
    panic!(
        "{driver}, {}: heap allocations per request {windows:.3?} in {WINDOWS} windows (at most {})",
        shape.name, shape.max
    );
}

#[test]
fn proxied_keep_alive_requests_stay_within_their_allocation_counts() {
    let _serial = one_at_a_time();
    for driver in drivers() {
        let up = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let workers = 2;
        let edited = r#"    rate_limit_headers: true
    routes:
      - match: { prefix: /authed/ }
        cluster: echo
        auth: main
        authorization:
          rules:
            - deny: { source: [10.0.0.0/8] }
            - deny: { header: { name: x-debug, present: true } }
            - deny: { method: [DELETE] }
            - deny: { path: { prefix: /authed/internal/ } }
            - deny: { claim: { name: groups, any_of: [banned] } }
            - deny: { consumer: nobody }
            - allow: { peer: "spiffe://cluster.local/ns/ops/sa/admin" }
            - allow: { claim: { name: scope, has: [admin] } }
            - allow: { claim: { name: role, exact: superuser } }
            - allow: { claim: { name: scope, has: [orders:read] } }
      - match: { prefix: /keyed/ }
        cluster: echo
        auth: api_key
      - match: { prefix: /limited/ }
        cluster: echo
        rate_limit: 1000000/s
      - match: { prefix: /counted/ }
        cluster: echo
        stats: counted
      - match: { prefix: /least/ }
        cluster: least
      - match: { prefix: /maglev/ }
        cluster: maglev
      - match: { prefix: /retried/ }
        cluster: guarded
        retry: { on: [5xx, reset, connect-failure], retries: 2, per_try_timeout: 5s }
        attempt_count: { request: true, response: true }
        max_stream_duration: 30s
      - match: { prefix: /mirrored/ }
        cluster: echo
        mirror: [{ cluster: shadow }]
      - match: { prefix: /quota/ }
        cluster: echo
        auth: api_key
        rate_limit: { rate: 1000000/s, key: consumer }
      - match: { prefix: /rewritten/ }
        cluster: echo
        regex_rewrite: { pattern: "^/rewritten/([^/]+)/(.*)$", substitution: "/v2/\\2/\\1" }
        host_rewrite_literal: backend.internal
      - match: { prefix: /cors/ }
        cluster: echo
        cors:
          allow_origin: [https://app.example.com]
          allow_methods: [GET, PUT]
          expose_headers: [x-request-id]
          allow_credentials: true
      - match: { prefix: /moved/ }
        redirect: { https_redirect: true, prefix_rewrite: /new/, response_code: 308 }
      - match: { prefix: /edited/ }
        cluster: echo
        request_headers_to_add:
          - { name: x-gateway, value: ringway }
          - { name: x-route, value: edited }
          - { name: x-api-version, value: "1" }
          - { name: x-tenant, value: acme, append: false }
        request_headers_to_remove: [x-drop]
        response_headers_to_add:
          - { name: x-served-by, value: ringway }
        response_headers_to_remove: [x-upstream]
"#;
        let key = common::jwt::Signer::new(jsonwebtoken::Algorithm::RS256, "k");
        let claims = serde_json::json!({"sub": "alice", "scope": "profile orders:read",
            "exp": common::jwt::now() + 3600});
        let token = key.sign(&claims);
        let auth = format!(
            "auth:\n  jwt_providers:\n    - name: main\n      jwks: {{ inline: '{}' }}\n      claim_to_headers: {{ x-user: sub, x-scope: scope }}\n  api_keys:\n    consumers:\n      - name: acme\n        keys: [alloc-key]\n",
            common::jwt::jwks(&[&key])
        );
        // Ten endpoints on one upstream: 127.0.0.1 .. 127.0.0.10 all reach it.
        let wide = Upstream::start_at("0.0.0.0:0").unwrap();
        let ten: Vec<String> = (1..=10)
            .map(|i| format!("127.0.0.{i}:{}", wide.addr.port()))
            .collect();
        let ten = ten.join(", ");
        let balanced = format!(
            "  - name: least\n    endpoints: [{ten}]\n    load_balancing: {{ policy: least_request }}\n    outlier_detection: {{ consecutive_5xx: 5 }}\n  - name: maglev\n    endpoints: [{ten}]\n    load_balancing: {{ policy: maglev, hash_on: [{{ header: x-user }}] }}\n  - name: guarded\n    endpoints: [{0}]\n    circuit_breakers: {{ default: {{ max_requests: 4096, track_remaining: true }} }}\n  - name: shadow\n    endpoints: [{0}]\n",
            up.endpoint()
        );
        let yaml = echo_config(workers, port, admin, &up.endpoint(), &balanced)
            .replacen("    routes:\n", edited, 1)
            .replacen("listeners:\n", &format!("{auth}listeners:\n"), 1);
        assert!(yaml.contains("/edited/"));
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut clients: Vec<Client> = (0..CONNECTIONS).map(|_| Client::new(addr)).collect();
        let shapes = shapes(&token);
        for shape in &shapes {
            measure(&rw, &mut clients, shape, driver, workers);
        }
        // The counter is live: a new connection allocates (at least its task).
        let before: u64 = per_worker(&settled_stats(&rw), workers).iter().sum();
        Client::new(addr).send(&shapes[0]);
        let after: u64 = per_worker(&settled_stats(&rw), workers).iter().sum();
        assert!(
            after > before,
            "{driver}: a new connection allocated nothing?"
        );
    }
}

/// The observability issue's cases, on a listener of their own that traces: a request
/// that is not sampled (its context found, decided and propagated in W3C and B3) costs
/// nothing; a sampled one writes its server and attempt spans into the worker's batch,
/// which goes to the exporter and comes back emptied (the connection's attribute buffer
/// is allocated once, in the warm-up).
#[test]
fn traced_requests_stay_within_their_allocation_counts() {
    let _serial = one_at_a_time();
    for driver in drivers() {
        let up = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let workers = 2;
        let routes = r#"    tracing: { sampling: 0%, propagation: [w3c, b3] }
    routes:
      - match: { prefix: /traced/ }
        cluster: echo
        name: traced
        tracing: { sampling: 100% }
"#;
        let tracer =
            "tracing: { provider: otlp, collector: { cluster: echo }, flush_interval: 100ms }\n";
        let yaml = echo_config(workers, port, admin, &up.endpoint(), "")
            .replacen("    routes:\n", routes, 1)
            .replacen("listeners:\n", &format!("{tracer}listeners:\n"), 1);
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut clients: Vec<Client> = (0..CONNECTIONS).map(|_| Client::new(addr)).collect();
        let shapes = [
            Shape::small(
                "GET on a traced listener, not sampled",
                b"GET /svc/item HTTP/1.1\r\nHost: alloc.test\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\r\n\r\n",
                200,
            ),
            Shape::small(
                "GET on a route whose every request is traced",
                b"GET /traced/item HTTP/1.1\r\nHost: alloc.test\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n",
                200,
            ),
        ];
        for shape in &shapes {
            measure(&rw, &mut clients, shape, driver, workers);
        }
    }
}

/// A hedging route (`hedge: true`) whose per-try timeout never passes: the attempt's
/// head is read in place, cancelably, and only a per-try timeout moves it into the
/// connection's set of attempts out (`worker::connection::hedge`, whose boxes are paid
/// when a hedge happens): 0 allocations per request, as routes without `hedge`.
#[test]
fn hedging_requests_stay_within_their_allocation_count() {
    let _serial = one_at_a_time();
    for driver in drivers() {
        let up = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let workers = 2;
        let routes = r#"    routes:
      - match: { prefix: /hedged/ }
        cluster: echo
        retry: { on: [5xx], retries: 1, per_try_timeout: 5s, hedge: true }
"#;
        let yaml = echo_config(workers, port, admin, &up.endpoint(), "").replacen(
            "    routes:\n",
            routes,
            1,
        );
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut clients: Vec<Client> = (0..CONNECTIONS).map(|_| Client::new(addr)).collect();
        let shape = Shape::small(
            "GET on a hedging route",
            b"GET /hedged/item HTTP/1.1\r\nHost: alloc.test\r\n\r\n",
            200,
        );
        measure(&rw, &mut clients, &shape, driver, workers);
    }
}

/// The most allocations a keep-alive request over TLS may cost: rustls's buffered API
/// allocates for each record it decrypts (the plaintext it queues) and each record it
/// encrypts (the record it queues), so a small request and its answer cost 2 (measured
/// 2.000 on both drivers; docs/tls.md, "Allocations"). ringway's own TLS seam allocates
/// nothing per request.
const TLS_MAX: f64 = 2.1;

#[test]
fn keep_alive_requests_over_tls_stay_within_their_allocation_count() {
    let _serial = one_at_a_time();
    let pki = common::pki::Pki::new("test CA");
    let server = pki.server("server", &["a.test"]);
    for driver in drivers() {
        let up = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let tls = format!(
            "    tls:\n      certificates:\n        - {{ certificate_chain: {}, private_key: {} }}\n",
            server.cert.display(),
            server.key.display()
        );
        let yaml = echo_config(1, port, admin, &up.endpoint(), "").replacen(
            "    routes:\n",
            &format!("{tls}    routes:\n"),
            1,
        );
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let config =
            common::pki::client_config(&pki.ca_file, None, &[&rustls::version::TLS13], &[]);
        let mut conns: Vec<_> = (0..CONNECTIONS)
            .map(|_| common::pki::tls_connect(addr, &config, "a.test").unwrap())
            .collect();
        let request = "GET /svc/a HTTP/1.1\r\nHost: a.test\r\n\r\n";
        let mut round = |n: usize| {
            for _ in 0..n {
                for conn in conns.iter_mut() {
                    let r = common::pki::tls_request(conn, request).unwrap();
                    assert_eq!(r.status, 200, "{driver}");
                }
            }
        };
        round(200);
        let before: u64 = per_worker(&settled_stats(&rw), 1).iter().sum();
        round(500);
        let after: u64 = per_worker(&settled_stats(&rw), 1).iter().sum();
        let requests = (CONNECTIONS * 500) as f64;
        let per_request = (after - before) as f64 / requests;
        eprintln!("{driver}, TLS 1.3 small GET: {per_request:.3} heap allocations per request");
        assert!(
            per_request <= TLS_MAX,
            "{driver}: {per_request:.3} heap allocations per TLS request (at most {TLS_MAX})"
        );
    }
}
