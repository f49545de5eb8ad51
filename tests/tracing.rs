//! Tracing through the real binary: trace context in and out of each hop (W3C, B3 multi
//! and single, both, none, malformed) as an upstream that records headers sees it; the
//! parent's sampling decision; parent/child ids across two ringway processes (gateway →
//! sidecar → service); Envoy's decision packed into `x-request-id`; the access log's
//! trace fields; and spans exported to a collector (OTLP and Zipkin), a collector that
//! is down costing nothing but counted drops. Both drivers.

mod common;

use std::net::SocketAddr;

use common::upstream::{Seen, Upstream};
use common::{drivers, exchange, free_port, Ringway};

/// A native config: one listener tracing with `listener_tracing`, routing `/` to
/// `endpoint`; the tracer exports to `collector` (an address that may be down).
fn config(
    (port, admin): (u16, u16),
    endpoint: &str,
    listener_tracing: &str,
    (provider, collector): (&str, &str),
    extra: &str,
) -> String {
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
tracing:
  provider: {provider}
  collector: {{ cluster: collector }}
  service_name: edge
  flush_interval: 100ms
listeners:
  - name: public
    address: 127.0.0.1:{port}
    tracing: {listener_tracing}
    routes:
      - match: {{ prefix: /named }}
        name: orders
        cluster: app
        tracing: {{ operation: listOrders }}
      - match: {{ prefix: /local }}
        direct_response: {{ status: 403, body: "no\n" }}
      - match: {{ prefix: /retry }}
        cluster: app
        prefix_rewrite: /v2
        retry: {{ on: [connect-failure], retries: 1, backoff: {{ base: 1ms }} }}
      - match: {{ prefix: / }}
        cluster: app
{extra}clusters:
  - name: app
    endpoints: ["{endpoint}"]
  - name: collector
    endpoints: ["{collector}"]
"#
    )
}

fn start(driver: &str, yaml: impl FnOnce(u16, u16) -> String) -> (Ringway, SocketAddr) {
    let (port, admin) = (free_port(), free_port());
    let rw = Ringway::start(&yaml(port, admin), admin, &["--driver", driver]);
    (rw, ([127, 0, 0, 1], port).into())
}

/// [`start`] with [`config`]'s listener tracing as `listener_tracing`, routing to `app`,
/// spans to a collector that is down, and a JSON access log (its directory, kept while
/// the test runs, and its path).
fn start_logging(
    driver: &str,
    app: &Upstream,
    listener_tracing: &str,
) -> (Ringway, SocketAddr, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("access.json");
    let log = format!(
        "access_log:\n  path: {}\n  format: json\n  flush_interval: 10ms\n",
        path.display()
    );
    let (rw, addr) = start(driver, |port, admin| {
        config(
            (port, admin),
            &app.endpoint(),
            listener_tracing,
            ("otlp", "127.0.0.1:9"),
            &log,
        )
    });
    (rw, addr, dir, path)
}

/// Sends `GET <path>` with `headers` (lines ending in CRLF) and returns what the upstream
/// received.
fn through(addr: SocketAddr, upstream: &Upstream, path: &str, headers: &str) -> Seen {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n");
    let r = exchange(addr, raw.as_bytes());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    upstream.next_seen()
}

/// `traceparent` split into (trace id, parent id, flags), checked for W3C's shape.
fn traceparent(seen: &Seen) -> (String, String, String) {
    let value = seen
        .header("traceparent")
        .unwrap_or_else(|| panic!("no traceparent in {}", seen.head));
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00", "{value}");
    assert_eq!(
        (parts[1].len(), parts[2].len(), parts[3].len()),
        (32, 16, 2)
    );
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    assert!(parts[1..].iter().all(|p| hex(p)), "{value}");
    assert_ne!(parts[1], "0".repeat(32));
    assert_ne!(parts[2], "0".repeat(16));
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// How many times `name` appears among the upstream's header lines.
fn count(seen: &Seen, name: &str) -> usize {
    seen.head
        .lines()
        .skip(1)
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
        .count()
}

const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const P: &str = "00f067aa0ba902b7";

#[test]
fn context_is_continued_with_a_new_span_per_hop_in_every_format_that_came_and_w3c() {
    for driver in drivers() {
        let app = Upstream::start(false);
        let (rw, addr) = start(driver, |port, admin| {
            let tracing = "{ sampling: 100%, propagation: [w3c] }";
            config(
                (port, admin),
                &app.endpoint(),
                tracing,
                ("otlp", "127.0.0.1:9"),
                "",
            )
        });

        // None: a trace starts here, sampled at 100 %.
        let seen = through(addr, &app, "/a", "");
        let (trace, span, flags) = traceparent(&seen);
        assert_eq!(flags, "01", "{driver}");
        let again = traceparent(&through(addr, &app, "/a", "")).0;
        assert_ne!(trace, again, "{driver}: each request starts its own trace");
        assert_eq!(
            count(&seen, "x-b3-traceid"),
            0,
            "{driver}: only configured formats"
        );
        let _ = span;

        // W3C: the trace continues, with a span of ours as the parent; tracestate passes.
        let seen = through(
            addr,
            &app,
            "/a",
            &format!("traceparent: 00-{T}-{P}-01\r\ntracestate: congo=t61rcWkgMzE\r\n"),
        );
        let (trace, span, flags) = traceparent(&seen);
        assert_eq!((trace.as_str(), flags.as_str()), (T, "01"), "{driver}");
        assert_ne!(span, P, "{driver}: a new span id per hop");
        assert_eq!(count(&seen, "traceparent"), 1, "{driver}");
        assert_eq!(
            seen.header("tracestate").as_deref(),
            Some("congo=t61rcWkgMzE"),
            "{driver}"
        );

        // B3 multi: written back in B3 with the new span, and in W3C with the same ids.
        let seen = through(
            addr,
            &app,
            "/a",
            &format!("x-b3-traceid: {T}\r\nx-b3-spanid: {P}\r\nx-b3-sampled: 1\r\n"),
        );
        let (trace, span, _) = traceparent(&seen);
        assert_eq!(trace, T, "{driver}");
        assert_eq!(seen.header("x-b3-traceid").as_deref(), Some(T), "{driver}");
        assert_eq!(seen.header("x-b3-spanid"), Some(span.clone()), "{driver}");
        assert_ne!(span, P, "{driver}");
        let parent = seen.header("x-b3-parentspanid").expect("parent span id");
        assert_eq!(parent.len(), 16, "{driver}");
        assert_ne!(parent, P, "{driver}: the parent is our server span");
        assert_eq!(
            seen.header("x-b3-sampled").as_deref(),
            Some("1"),
            "{driver}"
        );
        assert_eq!(count(&seen, "x-b3-spanid"), 1, "{driver}");

        // 64-bit B3 trace id: kept 64-bit in B3, zero-padded in W3C.
        let short = "a3ce929d0e0e4736";
        let seen = through(
            addr,
            &app,
            "/a",
            &format!("x-b3-traceid: {short}\r\nx-b3-spanid: {P}\r\n"),
        );
        assert_eq!(
            seen.header("x-b3-traceid").as_deref(),
            Some(short),
            "{driver}"
        );
        assert_eq!(traceparent(&seen).0, format!("{}{short}", "0".repeat(16)));

        // B3 single: written back as `b3`, its decision kept.
        let seen = through(addr, &app, "/a", &format!("b3: {T}-{P}-0\r\n"));
        let (trace, span, flags) = traceparent(&seen);
        assert_eq!((trace.as_str(), flags.as_str()), (T, "00"), "{driver}");
        let b3 = seen.header("b3").expect("b3");
        let parts: Vec<&str> = b3.split('-').collect();
        assert_eq!(
            (parts[0], parts[1], parts[2]),
            (T, span.as_str(), "0"),
            "{driver}"
        );

        // Both: W3C wins; both are written with its ids.
        let other = "11111111111111111111111111111111";
        let seen = through(
            addr,
            &app,
            "/a",
            &format!("x-b3-traceid: {other}\r\nx-b3-spanid: {P}\r\ntraceparent: 00-{T}-{P}-01\r\n"),
        );
        let (trace, span, _) = traceparent(&seen);
        assert_eq!(trace, T, "{driver}");
        assert_eq!(seen.header("x-b3-traceid").as_deref(), Some(T), "{driver}");
        assert_eq!(seen.header("x-b3-spanid"), Some(span), "{driver}");

        // Malformed: ignored, a new trace started, the bad field not forwarded.
        for bad in [
            format!("traceparent: 00-{}-{P}-01", "0".repeat(32)),
            format!("traceparent: 00-{}-{P}-01", T.to_uppercase()),
            format!("traceparent: ff-{T}-{P}-01"),
            format!("traceparent: 00-{T}-{P}"),
            "x-b3-traceid: xyz\r\nx-b3-spanid: 1".to_string(),
        ] {
            let seen = through(addr, &app, "/a", &format!("{bad}\r\n"));
            let (trace, _, flags) = traceparent(&seen);
            assert_ne!(trace, T, "{driver}: {bad}");
            assert_eq!(flags, "01", "{driver}: {bad}");
            assert_eq!(count(&seen, "traceparent"), 1, "{driver}: {bad}");
        }
        drop(rw);
    }
}

#[test]
fn the_parents_decision_is_kept_and_only_trusted_peers_force_a_trace() {
    for driver in drivers() {
        let app = Upstream::start(false);
        let (rw, addr) = start(driver, |port, admin| {
            config(
                (port, admin),
                &app.endpoint(),
                "{ sampling: 0% }",
                ("zipkin", "127.0.0.1:9"),
                "",
            )
        });
        // No parent at 0 %: propagated unsampled.
        assert_eq!(
            traceparent(&through(addr, &app, "/a", "")).2,
            "00",
            "{driver}"
        );
        // A sampled parent wins over the rate.
        let seen = through(addr, &app, "/a", &format!("traceparent: 00-{T}-{P}-01\r\n"));
        assert_eq!(traceparent(&seen).2, "01", "{driver}");
        // An untrusted client cannot force a trace.
        let seen = through(addr, &app, "/a", "x-envoy-force-trace: true\r\n");
        assert_eq!(traceparent(&seen).2, "00", "{driver}");
        drop(rw);
    }
}

#[test]
fn a_listener_without_tracing_passes_context_through_untouched() {
    for driver in drivers() {
        let app = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let yaml = common::echo_config(2, port, admin, &app.endpoint(), "");
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let header = format!("traceparent: 00-{T}-{P}-01\r\nb3: garbage\r\n");
        let seen = through(addr, &app, "/svc/a", &header);
        assert_eq!(
            seen.header("traceparent"),
            Some(format!("00-{T}-{P}-01")),
            "{driver}"
        );
        assert_eq!(seen.header("b3").as_deref(), Some("garbage"), "{driver}");
        drop(rw);
    }
}

/// An Envoy bootstrap: one HCM with a Zipkin tracer at `random` percent, routing to
/// `app_port`, its collector cluster at `zipkin_port`.
fn envoy_config(
    (admin, port): (u16, u16),
    (app_port, zipkin_port): (u16, u16),
    random: &str,
) -> String {
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    traffic_direction: INBOUND
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          tracing:
            random_sampling: {{ value: {random} }}
            provider:
              name: envoy.tracers.zipkin
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                collector_cluster: zipkin
                collector_endpoint: /api/v2/spans
                collector_endpoint_version: HTTP_JSON
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: app }}
                decorator: {{ operation: checkAvailability }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {app_port} }} }} }}
  - name: zipkin
    load_assignment:
      cluster_name: zipkin
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {zipkin_port} }} }} }}
"#
    )
}

/// The trace-reason digit of a UUID request id.
fn reason(seen: &Seen) -> char {
    let id = seen.header("x-request-id").expect("x-request-id");
    assert_eq!(id.len(), 36, "{id}");
    id.as_bytes()[14] as char
}

#[test]
fn envoy_listeners_decide_by_the_request_id_and_pack_the_reason_into_it() {
    for driver in drivers() {
        let app = Upstream::start(false);
        let app_port = app.addr.port();
        let (rw, addr) = start(driver, |port, admin| {
            envoy_config((admin, port), (app_port, 9), "1")
        });
        // The first 8 hex digits modulo 10,000 against 1 % (100 of 10,000).
        let (low, high) = (
            "00000063-0000-4000-8000-000000000000", // 99: sampled
            "0000ffff-0000-4000-8000-000000000000", // 5,535: not
        );
        let seen = through(addr, &app, "/a", &format!("x-request-id: {low}\r\n"));
        assert_eq!(reason(&seen), '9', "{driver}: {}", seen.head);
        assert_eq!(
            seen.header("x-b3-sampled").as_deref(),
            Some("1"),
            "{driver}"
        );
        let trace = seen
            .header("x-b3-traceid")
            .expect("B3 from the Zipkin tracer");
        assert_eq!(
            trace.len(),
            16,
            "{driver}: 64-bit ids without trace_id_128bit"
        );
        assert_eq!(
            seen.header("x-envoy-decorator-operation"),
            None,
            "{driver}: an ingress listener returns its operation to the client"
        );
        let seen = through(addr, &app, "/a", &format!("x-request-id: {high}\r\n"));
        assert_eq!(reason(&seen), '4', "{driver}");
        assert_eq!(
            seen.header("x-b3-sampled").as_deref(),
            Some("0"),
            "{driver}"
        );
        // A client's x-client-trace-id forces it (client_sampling defaults to 100 %).
        let seen = through(
            addr,
            &app,
            "/a",
            &format!("x-request-id: {high}\r\nx-client-trace-id: abc\r\n"),
        );
        assert_eq!(reason(&seen), 'b', "{driver}");
        assert_eq!(
            seen.header("x-b3-sampled").as_deref(),
            Some("1"),
            "{driver}"
        );
        // A reason already in the id is kept: every hop agrees.
        let packed = "0000ffff-0000-9000-8000-000000000000";
        let seen = through(addr, &app, "/a", &format!("x-request-id: {packed}\r\n"));
        assert_eq!(reason(&seen), '9', "{driver}");
        assert_eq!(
            seen.header("x-b3-sampled").as_deref(),
            Some("1"),
            "{driver}"
        );
        let stats = rw.stats();
        assert_eq!(
            stats["http.ingress_http.tracing.random_sampling"], 2,
            "{driver}"
        );
        assert_eq!(
            stats["http.ingress_http.tracing.not_traceable"], 1,
            "{driver}"
        );
        assert_eq!(
            stats["http.ingress_http.tracing.client_enabled"], 1,
            "{driver}"
        );
        drop(rw);
    }
}

#[test]
fn the_access_log_prints_the_trace_the_route_and_the_attempts() {
    for driver in drivers() {
        let app = Upstream::start(false);
        let (rw, addr, _dir, path) = start_logging(driver, &app, "{ sampling: 100% }");
        let seen = through(
            addr,
            &app,
            "/named",
            &format!("traceparent: 00-{T}-{P}-01\r\n"),
        );
        let _ = seen;
        let lines = common::wait_for_lines(&path, 1);
        let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON");
        assert_eq!(line["trace_id"], T, "{driver}: {line}");
        assert_eq!(line["route"], "orders", "{driver}");
        assert_eq!(line["attempts"], 1, "{driver}");
        let span = line["span_id"].as_str().expect("span id");
        assert_eq!(span.len(), 16, "{driver}");
        assert_ne!(span, P, "{driver}");
        drop(rw);
    }
}

/// An unsampled new trace on a W3C listener sends only its attempt's span upstream; its
/// own span id, left undrawn on the request path, is still there for the access log (a
/// non-zero id, not the attempt's), and a listener that also writes B3 still sends it
/// upstream as the attempt's parent.
#[test]
fn an_unsampled_request_still_has_its_own_span_for_the_log_and_b3() {
    for driver in drivers() {
        let app = Upstream::start(false);
        let (rw, addr, _dir, path) = start_logging(driver, &app, "{ sampling: 0% }");
        let seen = through(addr, &app, "/a", "");
        let (trace, attempt, flags) = traceparent(&seen);
        assert_eq!(flags, "00", "{driver}");
        let lines = common::wait_for_lines(&path, 1);
        let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON");
        assert_eq!(line["trace_id"], trace.as_str(), "{driver}: {line}");
        let span = line["span_id"].as_str().expect("span id");
        assert_eq!(span.len(), 16, "{driver}: {line}");
        assert!(
            span.bytes().all(|b| b.is_ascii_hexdigit()),
            "{driver}: {line}"
        );
        assert_ne!(span, "0".repeat(16), "{driver}: {line}");
        assert_ne!(
            span, attempt,
            "{driver}: the request's span, not its attempt's"
        );
        drop(rw);

        let (rw, addr) = start(driver, |port, admin| {
            config(
                (port, admin),
                &app.endpoint(),
                "{ sampling: 0%, propagation: [w3c, b3] }",
                ("otlp", "127.0.0.1:9"),
                "",
            )
        });
        let seen = through(addr, &app, "/a", "");
        let (trace, attempt, _) = traceparent(&seen);
        assert_eq!(seen.header("x-b3-traceid"), Some(trace), "{driver}");
        assert_eq!(
            seen.header("x-b3-spanid"),
            Some(attempt.clone()),
            "{driver}"
        );
        assert_eq!(
            seen.header("x-b3-sampled").as_deref(),
            Some("0"),
            "{driver}"
        );
        let parent = seen
            .header("x-b3-parentspanid")
            .expect("the request's span");
        assert_eq!(parent.len(), 16, "{driver}");
        assert_ne!(parent, "0".repeat(16), "{driver}");
        assert_ne!(parent, attempt, "{driver}");
        drop(rw);
    }
}

/// Zipkin spans the collector received (each POST is a JSON array).
fn zipkin_spans(collector: &common::collector::Collector) -> Vec<serde_json::Value> {
    collector
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v2/spans")
        .flat_map(|r| {
            let spans: Vec<serde_json::Value> =
                serde_json::from_slice(&r.body).expect("a JSON array of spans");
            spans
        })
        .collect()
}

/// Waits until the collector holds at least `n` Zipkin spans.
fn wait_spans(collector: &common::collector::Collector, n: usize) -> Vec<serde_json::Value> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let spans = zipkin_spans(collector);
        if spans.len() >= n || std::time::Instant::now() > until {
            return spans;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A ringway in front of `endpoint` that samples every request and sends its spans to
/// `collector` as Zipkin JSON.
fn all_traced(
    driver: &str,
    endpoint: &str,
    collector: &common::collector::Collector,
) -> (Ringway, SocketAddr) {
    all_traced_by("zipkin", driver, endpoint, collector)
}

/// [`all_traced`] with the spans sent by `provider` (`zipkin` or `otlp`).
fn all_traced_by(
    provider: &str,
    driver: &str,
    endpoint: &str,
    collector: &common::collector::Collector,
) -> (Ringway, SocketAddr) {
    let to = (provider, &*collector.addr().to_string());
    start(driver, |port, admin| {
        config((port, admin), endpoint, "{ sampling: 100% }", to, "")
    })
}

#[test]
fn two_hops_export_a_chain_of_spans_with_their_attributes_and_timings() {
    use common::collector::{Collector, Mode};
    for driver in drivers() {
        let collector = Collector::start(Mode::Normal);
        let service = Upstream::start(false);
        // The sidecar, in front of the service…
        let (sidecar, sidecar_addr) = all_traced(driver, &service.endpoint(), &collector);
        // … and the gateway, in front of the sidecar.
        let (gateway, gateway_addr) = all_traced(driver, &sidecar_addr.to_string(), &collector);
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_micros() as u64;
        let raw = format!(
            "GET /named/7?x=1 HTTP/1.1\r\nHost: shop\r\nUser-Agent: probe/1\r\ntraceparent: 00-{T}-{P}-01\r\n\r\n"
        );
        let r = exchange(gateway_addr, raw.as_bytes());
        assert_eq!(r.status, 200, "{driver}");
        let seen = service.next_seen();
        let (trace, service_parent, _) = traceparent(&seen);
        assert_eq!(trace, T, "{driver}");
        // Gateway: server + client; sidecar: server + client.
        let spans = wait_spans(&collector, 4);
        let of = |kind: &str, service_port: u16| -> Vec<&serde_json::Value> {
            spans
                .iter()
                .filter(|s| {
                    s["kind"] == kind
                        && s["tags"]["upstream_address"]
                            .as_str()
                            .is_some_and(|a| a.ends_with(&format!(":{service_port}")))
                })
                .collect()
        };
        let (g_server, g_client) = (
            of("SERVER", sidecar_addr.port()),
            of("CLIENT", sidecar_addr.port()),
        );
        let (s_server, s_client) = (
            of("SERVER", service.addr.port()),
            of("CLIENT", service.addr.port()),
        );
        assert_eq!(
            (
                g_server.len(),
                g_client.len(),
                s_server.len(),
                s_client.len()
            ),
            (1, 1, 1, 1),
            "{driver}: {spans:#?}"
        );
        let (gs, gc, ss, sc) = (g_server[0], g_client[0], s_server[0], s_client[0]);
        for span in [gs, gc, ss, sc] {
            assert_eq!(span["traceId"], T, "{driver}");
            assert_eq!(span["localEndpoint"]["serviceName"], "edge", "{driver}");
            let start = span["timestamp"].as_u64().expect("timestamp");
            assert!(
                start >= before && start < before + 10_000_000,
                "{driver}: {span}"
            );
            assert!(span["duration"].as_u64().is_some(), "{driver}");
        }
        // The chain: client → gateway server → gateway attempt → sidecar server →
        // sidecar attempt → service.
        assert_eq!(gs["parentId"], P, "{driver}");
        assert_eq!(gc["parentId"], gs["id"], "{driver}");
        assert_eq!(ss["parentId"], gc["id"], "{driver}");
        assert_eq!(sc["parentId"], ss["id"], "{driver}");
        assert_eq!(sc["id"], service_parent.as_str(), "{driver}");
        // The server span contains its attempt.
        let (s0, s1) = (
            gs["timestamp"].as_u64().unwrap(),
            gs["duration"].as_u64().unwrap(),
        );
        let (c0, c1) = (
            gc["timestamp"].as_u64().unwrap(),
            gc["duration"].as_u64().unwrap(),
        );
        assert!(s0 <= c0 && c0 + c1 <= s0 + s1 + 1, "{driver}: {gs} {gc}");
        // Attributes.
        assert_eq!(gs["name"], "listOrders", "{driver}");
        assert_eq!(gc["name"], "router app egress", "{driver}");
        let tags = &gs["tags"];
        assert_eq!(tags["http.method"], "GET", "{driver}");
        assert_eq!(tags["http.status_code"], "200", "{driver}");
        assert_eq!(tags["http.route"], "orders", "{driver}");
        assert_eq!(tags["upstream_cluster"], "app", "{driver}");
        assert_eq!(tags["user_agent"], "probe/1", "{driver}");
        assert_eq!(tags["response_flags"], "-", "{driver}");
        assert!(
            tags["http.url"]
                .as_str()
                .is_some_and(|u| u.contains("/named/7")),
            "{driver}: {tags}"
        );
        assert_eq!(tags["peer.address"], "127.0.0.1", "{driver}");
        // The attempt's URL names the endpoint it went to.
        assert_eq!(
            gc["tags"]["http.url"],
            format!("http://{sidecar_addr}/named/7?x=1"),
            "{driver}"
        );
        drop((gateway, sidecar));
    }
}

#[test]
fn local_answers_and_each_retry_have_spans() {
    use common::collector::{Collector, Mode};
    for driver in drivers() {
        let collector = Collector::start(Mode::Normal);
        let zipkin = ("zipkin", &*collector.addr().to_string());
        // The app cluster points at a closed port: every attempt fails to connect.
        let (rw, addr) = start(driver, |port, admin| {
            config(
                (port, admin),
                "127.0.0.1:9",
                "{ sampling: 100% }",
                zipkin,
                "",
            )
        });
        let local = exchange(addr, b"GET /local HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(local.status, 403, "{driver}");
        let failed = exchange(addr, b"GET /named HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(failed.status, 503, "{driver}");
        let retried = exchange(addr, b"GET /retry/1?a=b HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(retried.status, 503, "{driver}");
        // 403; 503 with one attempt; 503 with two attempts.
        let spans = wait_spans(&collector, 6);
        let local = spans
            .iter()
            .find(|s| s["tags"]["http.status_code"] == "403")
            .unwrap_or_else(|| panic!("{driver}: no span for the local answer: {spans:#?}"));
        assert_eq!(local["kind"], "SERVER", "{driver}");
        let servers: Vec<_> = spans
            .iter()
            .filter(|s| s["kind"] == "SERVER" && s["tags"]["http.status_code"] == "503")
            .collect();
        assert_eq!(servers.len(), 2, "{driver}: {spans:#?}");
        let attempts_of = |server: &serde_json::Value| -> Vec<&serde_json::Value> {
            spans
                .iter()
                .filter(|s| s["kind"] == "CLIENT" && s["parentId"] == server["id"])
                .collect()
        };
        let mut counts: Vec<usize> = servers.iter().map(|s| attempts_of(s).len()).collect();
        counts.sort_unstable();
        assert_eq!(
            counts,
            [1, 2],
            "{driver}: retries are separate spans: {spans:#?}"
        );
        // The unnamed route's span is named by the method and the path (no query);
        // the URL keeps the query.
        let retried = servers
            .iter()
            .find(|s| attempts_of(s).len() == 2)
            .expect("the retried request");
        assert_eq!(retried["name"], "GET /retry/1", "{driver}: {retried}");
        assert_eq!(
            retried["tags"]["http.url"], "http://t/retry/1?a=b",
            "{driver}"
        );
        assert_eq!(retried["tags"]["http.method"], "GET", "{driver}");
        // Each attempt's URL: its endpoint and the target it sent (the route rewrites).
        for attempt in attempts_of(retried) {
            assert_eq!(
                attempt["tags"]["http.url"], "http://127.0.0.1:9/v2/1?a=b",
                "{driver}"
            );
        }
        for server in &servers {
            assert!(
                server["tags"]["response_flags"]
                    .as_str()
                    .is_some_and(|f| f.contains("UF")),
                "{driver}: {server}"
            );
            for attempt in attempts_of(server) {
                assert_eq!(attempt["tags"]["error"], "connection failure", "{driver}");
                assert_eq!(attempt["traceId"], server["traceId"], "{driver}");
                assert_eq!(attempt["name"], "router app egress", "{driver}");
                assert!(
                    attempt["tags"].get("response_size").is_none(),
                    "{driver}: an attempt's bytes are its request's: {attempt}"
                );
            }
            assert!(server["tags"]["response_size"].is_string(), "{driver}");
        }
        drop(rw);
    }
}

#[test]
fn a_collector_that_is_down_costs_requests_nothing_and_drops_are_counted() {
    use common::collector::{Collector, Mode};
    for driver in drivers() {
        let collector = Collector::start(Mode::Slow(std::time::Duration::from_secs(3)));
        let app = Upstream::start(false);
        // One batch of 4 spans may wait for the exporter, which waits for the collector.
        let zipkin = (
            "zipkin\n  queue: 1\n  batch: 4",
            &*collector.addr().to_string(),
        );
        let (rw, addr) = start(driver, |port, admin| {
            config(
                (port, admin),
                &app.endpoint(),
                "{ sampling: 100% }",
                zipkin,
                "",
            )
        });
        let started = std::time::Instant::now();
        for _ in 0..200 {
            let r = exchange(addr, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(r.status, 200, "{driver}");
            let _ = app.next_seen();
        }
        // 200 requests on new connections: no request waited for the collector.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{driver}: {:?}",
            started.elapsed()
        );
        let dropped = rw.stat("tracing.zipkin.spans_dropped");
        let sent = rw.stat("tracing.zipkin.spans_sent");
        assert!(
            dropped > 0,
            "{driver}: spans beyond the queue are dropped and counted"
        );
        assert!(dropped + sent <= 400, "{driver}: {dropped} + {sent}");
        drop(rw);
        let _ = collector;
    }
}

#[test]
fn an_envoy_span_records_the_request_id_as_forwarded_with_its_reason_packed() {
    use common::collector::{Collector, Mode};
    for driver in drivers() {
        let collector = Collector::start(Mode::Normal);
        let app = Upstream::start(false);
        let ports = (app.addr.port(), collector.addr().port());
        let (rw, addr) = start(driver, |port, admin| {
            envoy_config((admin, port), ports, "0")
        });
        // A kept id, forced by the client: forwarded (and recorded) with reason `b`.
        let id = "0000ffff-0000-4000-8000-000000000000";
        let seen = through(
            addr,
            &app,
            "/a",
            &format!("x-request-id: {id}\r\nx-client-trace-id: abc\r\n"),
        );
        let forwarded = seen.header("x-request-id").expect("x-request-id");
        assert_eq!(
            forwarded, "0000ffff-0000-b000-8000-000000000000",
            "{driver}"
        );
        let spans = wait_spans(&collector, 1);
        assert!(!spans.is_empty(), "{driver}: no span exported");
        assert_eq!(
            spans[0]["tags"]["guid:x-request-id"],
            forwarded.as_str(),
            "{driver}"
        );
        drop(rw);
    }
}

/// A request's span counts its bodies' payload (not the heads, nor a chunked body's
/// framing), as Envoy's `request_size`/`response_size` do; its attempt's span counts
/// none.
#[test]
fn a_request_span_counts_the_body_it_carried() {
    use common::collector::{Collector, Mode};
    for driver in drivers() {
        let collector = Collector::start(Mode::Normal);
        let service = Upstream::start(false);
        let (rw, addr) = all_traced(driver, &service.endpoint(), &collector);
        let raw = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world";
        let r = exchange(addr, raw);
        assert_eq!(r.status, 200, "{driver}");
        let spans = wait_spans(&collector, 2);
        let server = spans
            .iter()
            .find(|s| s["kind"] == "SERVER")
            .unwrap_or_else(|| panic!("{driver}: {spans:#?}"));
        assert_eq!(server["name"], "POST /upload", "{driver}");
        // Envoy's `request_size` (and OpenTelemetry's body size) is the body's.
        assert_eq!(server["tags"]["request_size"], "11", "{driver}");
        let sent = r.body.len().to_string();
        assert_eq!(server["tags"]["response_size"], sent.as_str(), "{driver}");
        let client = spans
            .iter()
            .find(|s| s["kind"] == "CLIENT")
            .unwrap_or_else(|| panic!("{driver}: {spans:#?}"));
        assert!(client["tags"].get("request_size").is_none(), "{driver}");
        // A chunked body both ways counts its payload, not its framing.
        let raw = b"POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nX-Respond-Chunked: 1\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let r = exchange(addr, raw);
        assert_eq!(
            (r.status, &r.body[..]),
            (200, &b"hello world"[..]),
            "{driver}"
        );
        let spans = wait_spans(&collector, 4);
        let server = spans
            .iter()
            .find(|s| s["kind"] == "SERVER" && s["name"] == "POST /chunked")
            .unwrap_or_else(|| panic!("{driver}: {spans:#?}"));
        assert_eq!(server["tags"]["request_size"], "11", "{driver}");
        assert_eq!(server["tags"]["response_size"], "11", "{driver}");
        drop(rw);
    }
}

/// The requests of one keep-alive connection each carry their own route's text (the
/// connection keeps its route's text between requests to the same route).
#[test]
fn each_request_of_a_connection_names_its_own_route() {
    use common::collector::{Collector, Mode};
    use std::io::{BufReader, Write};
    for driver in drivers() {
        let collector = Collector::start(Mode::Normal);
        let service = Upstream::start(false);
        let (rw, addr) = all_traced(driver, &service.endpoint(), &collector);
        let conn = common::connect(addr).unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut conn = conn;
        for path in ["/named/1", "/plain/2", "/named/3", "/named/4"] {
            let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
            conn.write_all(raw.as_bytes()).unwrap();
            let r = common::read_response(&mut reader, false).unwrap();
            assert_eq!(r.status, 200, "{driver} {path}");
        }
        let spans = wait_spans(&collector, 8);
        let mut servers: Vec<(String, String, String)> = spans
            .iter()
            .filter(|s| s["kind"] == "SERVER")
            .map(|s| {
                let tag = |k: &str| s["tags"][k].as_str().unwrap_or("").to_owned();
                (
                    tag("http.url"),
                    s["name"].as_str().unwrap_or("").to_owned(),
                    tag("http.route"),
                )
            })
            .collect();
        servers.sort();
        let want = |path: &str, name: &str, route: &str| {
            (format!("http://t{path}"), name.to_owned(), route.to_owned())
        };
        assert_eq!(
            servers,
            [
                want("/named/1", "listOrders", "orders"),
                want("/named/3", "listOrders", "orders"),
                want("/named/4", "listOrders", "orders"),
                want("/plain/2", "GET /plain/2", ""),
            ],
            "{driver}"
        );
        for attempt in spans.iter().filter(|s| s["kind"] == "CLIENT") {
            assert_eq!(attempt["name"], "router app egress", "{driver}");
            assert_eq!(attempt["tags"]["upstream_cluster"], "app", "{driver}");
        }
        drop(rw);
    }
}

/// Envoy's `x-envoy-decorator-operation`: an ingress listener returns the route's
/// operation to the client and takes one the caller sent as its span's name (not
/// forwarding it); an egress listener sends the route's upstream, in place of the
/// caller's, and takes the upstream's answer's as its span's name (not passed back).
/// The spans carry Envoy's node tags and, with no decorator, Zipkin's default name (the
/// host).
#[test]
fn the_decorator_operation_goes_back_on_ingress_and_upstream_on_egress() {
    use common::collector::{Collector, Mode};
    use common::scripted::{Scripted, Then};
    for driver in drivers() {
        let collector = Collector::start(Mode::Normal);
        let zipkin_port = collector.addr().port();
        let app = Upstream::start(false);
        let app_port = app.addr.port();
        let ingress = |port, admin| {
            let node = "node: { id: node-1, cluster: front, locality: { zone: zone-a } }\n";
            let config = envoy_config((admin, port), (app_port, zipkin_port), "100");
            let plain_route = "              - match: { prefix: \"/plain\" }\n                route: { cluster: app }\n              - match: { prefix: \"/\" }";
            format!(
                "{node}{}",
                config.replacen("              - match: { prefix: \"/\" }", plain_route, 1)
            )
        };
        let (rw, addr) = start(driver, ingress);
        let r = exchange(addr, b"GET /a HTTP/1.1\r\nHost: shop\r\n\r\n");
        assert_eq!(r.status, 200, "{driver}");
        assert_eq!(
            r.header("x-envoy-decorator-operation"),
            Some("checkAvailability"),
            "{driver}"
        );
        let seen = app.next_seen();
        assert_eq!(count(&seen, "x-envoy-decorator-operation"), 0, "{driver}");
        let raw =
            b"GET /b HTTP/1.1\r\nHost: shop\r\nx-envoy-decorator-operation: fromCaller\r\n\r\n";
        let r = exchange(addr, raw);
        assert_eq!(r.header("x-envoy-decorator-operation"), None, "{driver}");
        let seen = app.next_seen();
        assert_eq!(count(&seen, "x-envoy-decorator-operation"), 0, "{driver}");
        let r = exchange(addr, b"GET /plain/1 HTTP/1.1\r\nHost: shop:8080\r\n\r\n");
        assert_eq!(r.status, 200, "{driver}");
        let _ = app.next_seen();
        let spans = wait_spans(&collector, 3);
        let mut names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["checkAvailability", "fromCaller", "shop:8080"],
            "{driver}: without a decorator, the host: {spans:#?}"
        );
        for span in &spans {
            assert_eq!(span["tags"]["node_id"], "node-1", "{driver}: {span}");
            assert_eq!(span["tags"]["zone"], "zone-a", "{driver}");
            assert_eq!(span["tags"]["downstream_cluster"], "-", "{driver}");
            assert_eq!(span["tags"]["upstream_cluster.name"], "app", "{driver}");
        }
        drop(rw);

        // Egress: the upstream answers with its own operation.
        let answering = Scripted::start(|ex| {
            ex.send(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-envoy-decorator-operation: fromUpstream\r\n\r\n");
            Then::Next
        });
        let scripted_port = answering.addr.port();
        let egress_collector = Collector::start(Mode::Normal);
        let egress_port = egress_collector.addr().port();
        let (rw, addr) = start(driver, |port, admin| {
            envoy_config((admin, port), (scripted_port, egress_port), "100")
                .replace("traffic_direction: INBOUND", "traffic_direction: OUTBOUND")
        });
        let r = exchange(addr, raw);
        assert_eq!(r.status, 200, "{driver}");
        assert_eq!(
            r.header("x-envoy-decorator-operation"),
            None,
            "{driver}: not passed back"
        );
        let spans = wait_spans(&egress_collector, 1);
        assert_eq!(spans[0]["kind"], "CLIENT", "{driver}");
        assert_eq!(spans[0]["name"], "fromUpstream", "{driver}: {spans:#?}");
        drop(rw);
        // What the upstream received: the route's operation alone.
        let app2 = Upstream::start(false);
        let app2_port = app2.addr.port();
        let (rw, addr) = start(driver, |port, admin| {
            envoy_config((admin, port), (app2_port, 9), "100")
                .replace("traffic_direction: INBOUND", "traffic_direction: OUTBOUND")
        });
        let seen = through(
            addr,
            &app2,
            "/c",
            "x-envoy-decorator-operation: fromCaller\r\n",
        );
        assert_eq!(
            count(&seen, "x-envoy-decorator-operation"),
            1,
            "{driver}: {}",
            seen.head
        );
        assert_eq!(
            seen.header("x-envoy-decorator-operation").as_deref(),
            Some("checkAvailability"),
            "{driver}"
        );
        drop(rw);
    }
}

/// Envoy's Zipkin tracer reads B3 alone (W3C only with `USE_B3_WITH_W3C_PROPAGATION`):
/// a `traceparent` is neither read nor touched. A native listener writes back a B3
/// decision that came without ids (`b3: 0`), in its format.
#[test]
fn each_tracer_reads_its_own_formats() {
    for driver in drivers() {
        let app = Upstream::start(false);
        let app_port = app.addr.port();
        let (rw, addr) = start(driver, |port, admin| {
            envoy_config((admin, port), (app_port, 9), "100")
        });
        let tp = format!("00-{T}-{P}-00");
        let seen = through(addr, &app, "/a", &format!("traceparent: {tp}\r\n"));
        assert_eq!(
            seen.header("traceparent").as_deref(),
            Some(&*tp),
            "{driver}: untouched"
        );
        let b3_trace = seen.header("x-b3-traceid").expect("B3 written");
        assert_ne!(b3_trace, T[16..], "{driver}: a new trace");
        assert_eq!(
            seen.header("x-b3-sampled").as_deref(),
            Some("1"),
            "{driver}"
        );
        drop(rw);

        let (rw, addr) = start(driver, |port, admin| {
            config(
                (port, admin),
                &app.endpoint(),
                "{ sampling: 100% }",
                ("zipkin", "127.0.0.1:9"),
                "",
            )
        });
        let seen = through(addr, &app, "/", "b3: 0\r\n");
        let b3 = seen
            .header("b3")
            .unwrap_or_else(|| panic!("{driver}: no b3 in {}", seen.head));
        assert_eq!(
            b3.split('-').nth(2),
            Some("0"),
            "{driver}: the decision kept: {b3}"
        );
        let (_, _, flags) = traceparent(&seen);
        assert_eq!(flags, "00", "{driver}");
        let seen = through(addr, &app, "/", "x-b3-flags: 1\r\n");
        assert_eq!(
            seen.header("x-b3-flags").as_deref(),
            Some("1"),
            "{driver}: debug kept: {}",
            seen.head
        );
        drop(rw);
    }
}

/// Retries on a status number their attempts' spans as they happened (the decision to
/// retry counts the next attempt before the answered one's span is noted).
#[test]
fn retries_on_a_status_number_their_attempts() {
    use common::collector::{Collector, Mode};
    use common::scripted::{Scripted, Then};
    for driver in drivers() {
        let collector = Collector::start(Mode::Normal);
        let failing = Scripted::start(|ex| {
            ex.send(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
            Then::Next
        });
        let zipkin = ("zipkin", &*collector.addr().to_string());
        let retry = "        retry: { on: [5xx], retries: 2, backoff: { base: 1ms } }\n";
        let (rw, addr) = start(driver, |port, admin| {
            config(
                (port, admin),
                &failing.addr.to_string(),
                "{ sampling: 100% }",
                zipkin,
                "",
            )
            .replacen(
                "      - match: { prefix: / }\n        cluster: app\n",
                &format!("      - match: {{ prefix: / }}\n        cluster: app\n{retry}"),
                1,
            )
        });
        let r = exchange(addr, b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 503, "{driver}");
        let spans = wait_spans(&collector, 4);
        let mut counts: Vec<Option<&str>> = spans
            .iter()
            .filter(|s| s["kind"] == "CLIENT")
            .map(|s| s["tags"]["retry.count"].as_str())
            .collect();
        counts.sort_unstable();
        assert_eq!(counts, [None, Some("1"), Some("2")], "{driver}: {spans:#?}");
        drop(rw);
    }
}

/// Envoy returns the request id in the response when configured to
/// (`always_set_request_id_in_response`) and when an internal peer forced the trace.
#[test]
fn the_request_id_comes_back_when_asked_for_or_forced() {
    for driver in drivers() {
        let app = Upstream::start(false);
        let app_port = app.addr.port();
        let internal = "          use_remote_address: true\n          internal_address_config: { cidr_ranges: [{ address_prefix: 127.0.0.1, prefix_len: 32 }] }\n          tracing:";
        let (rw, addr) = start(driver, |port, admin| {
            envoy_config((admin, port), (app_port, 9), "0").replacen(
                "          tracing:",
                internal,
                1,
            )
        });
        let plain = exchange(addr, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(plain.header("x-request-id"), None, "{driver}");
        let _ = app.next_seen();
        let forced = exchange(
            addr,
            b"GET /a HTTP/1.1\r\nHost: t\r\nx-envoy-force-trace: true\r\n\r\n",
        );
        let seen = app.next_seen();
        assert_eq!(reason(&seen), 'a', "{driver}: forced by the service");
        assert_eq!(
            forced.header("x-request-id").map(str::to_owned),
            seen.header("x-request-id"),
            "{driver}: the id as forwarded"
        );
        drop(rw);
        let always = "          always_set_request_id_in_response: true\n          tracing:";
        let (rw, addr) = start(driver, |port, admin| {
            envoy_config((admin, port), (app_port, 9), "0").replacen(
                "          tracing:",
                always,
                1,
            )
        });
        let r = exchange(addr, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
        let seen = app.next_seen();
        assert_eq!(
            r.header("x-request-id").map(str::to_owned),
            seen.header("x-request-id"),
            "{driver}"
        );
        assert!(r.header("x-request-id").is_some(), "{driver}");
        drop(rw);
        // An upstream that answers with its own id: the response carries one, the
        // forwarded one (Envoy sets the field, it does not add one).
        let echoing = common::scripted::Scripted::start(|ex| {
            ex.send(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-request-id: from-upstream\r\n\r\n");
            common::scripted::Then::Next
        });
        let echoing_port = echoing.addr.port();
        let (rw, addr) = start(driver, |port, admin| {
            envoy_config((admin, port), (echoing_port, 9), "0").replacen(
                "          tracing:",
                always,
                1,
            )
        });
        let r = exchange(
            addr,
            b"GET /a HTTP/1.1\r\nHost: t\r\nx-request-id: from-client\r\n\r\n",
        );
        let ids: Vec<&str> = r
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("x-request-id"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(ids.len(), 1, "{driver}: {ids:?}");
        assert_ne!(ids[0], "from-upstream", "{driver}");
        drop(rw);
    }
}

/// OTLP through the binary: an upstream attempt's span carries the `tracestate` its
/// context went upstream with, as the request's span does.
#[test]
fn an_attempt_span_carries_the_callers_tracestate() {
    use common::collector::{Collector, Mode};
    use prost::Message as _;
    use ringway::trace::export::otlp;
    for driver in drivers() {
        let collector = Collector::start(Mode::Normal);
        let service = Upstream::start(false);
        let (rw, addr) = all_traced_by("otlp", driver, &service.endpoint(), &collector);
        let tp = format!("00-{T}-{P}-01");
        let seen = through(
            addr,
            &service,
            "/s",
            &format!("traceparent: {tp}\r\ntracestate: vendor=1\r\n"),
        );
        assert_eq!(
            seen.header("tracestate").as_deref(),
            Some("vendor=1"),
            "{driver}"
        );
        let posts = collector.wait_for(1, std::time::Duration::from_secs(5));
        let mut states = Vec::new();
        for post in &posts {
            let body = otlp::ExportTraceServiceRequest::decode(post.body.as_slice()).unwrap();
            for rs in &body.resource_spans {
                for ss in &rs.scope_spans {
                    states.extend(ss.spans.iter().map(|s| (s.kind, s.trace_state.clone())));
                }
            }
        }
        states.sort();
        assert_eq!(
            states,
            [
                (otlp::SPAN_KIND_SERVER, "vendor=1".to_owned()),
                (otlp::SPAN_KIND_CLIENT, "vendor=1".to_owned())
            ],
            "{driver}"
        );
        drop(rw);
    }
}

/// An edge request's `x-envoy-decorator-operation` is an outsider's (Envoy removes it
/// before tracing): it neither names the span nor keeps the route's operation from
/// the response.
#[test]
fn an_edge_callers_operation_is_ignored() {
    use common::collector::{Collector, Mode};
    for driver in drivers() {
        let collector = Collector::start(Mode::Normal);
        let zipkin_port = collector.addr().port();
        let app = Upstream::start(false);
        let app_port = app.addr.port();
        let edge = "          use_remote_address: true\n          tracing:";
        let (rw, addr) = start(driver, |port, admin| {
            envoy_config((admin, port), (app_port, zipkin_port), "100").replacen(
                "          tracing:",
                edge,
                1,
            )
        });
        let raw = b"GET /b HTTP/1.1\r\nHost: shop\r\nx-envoy-decorator-operation: outsider\r\n\r\n";
        let r = exchange(addr, raw);
        assert_eq!(r.status, 200, "{driver}");
        assert_eq!(
            r.header("x-envoy-decorator-operation"),
            Some("checkAvailability"),
            "{driver}"
        );
        let seen = app.next_seen();
        assert_eq!(count(&seen, "x-envoy-decorator-operation"), 0, "{driver}");
        let spans = wait_spans(&collector, 1);
        assert_eq!(
            spans[0]["name"], "checkAvailability",
            "{driver}: {spans:#?}"
        );
        drop(rw);
    }
}

/// Envoy's tracer writes the context into the request's own headers, so an access log's
/// `%REQ(X-B3-TRACEID)%`… print what went upstream: a trace started here, and the new
/// span of a continued one (they printed `-`, or the caller's ids).
#[test]
fn the_access_log_prints_the_context_as_it_went_upstream() {
    for driver in drivers() {
        let app = Upstream::start(false);
        let app_port = app.addr.port();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("access.log");
        let log = format!(
            "          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n              log_format:\n                text_format_source:\n                  inline_string: \"%REQ(:PATH)% %REQ(X-B3-TRACEID)% %REQ(X-B3-SPANID)% %REQ(X-B3-PARENTSPANID)% %REQ(X-B3-SAMPLED)% %REQ(TRACEPARENT)%\\n\"\n          tracing:",
            path.display()
        );
        let (rw, addr) = start(driver, |port, admin| {
            envoy_config((admin, port), (app_port, 9), "0").replacen("          tracing:", &log, 1)
        });
        // No context came: the trace started here.
        let r = exchange(addr, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 200, "{driver}");
        let first = app.next_seen();
        // A caller's B3 context (Zipkin's shared span: the same span id goes on).
        let caller = "x-b3-traceid: 463ac35c9f6413ad48485a3953bb6124\r\nx-b3-spanid: a2fb4a1d1a96d312\r\nx-b3-sampled: 0\r\n";
        let r = exchange(
            addr,
            format!("GET /b HTTP/1.1\r\nHost: t\r\n{caller}\r\n").as_bytes(),
        );
        assert_eq!(r.status, 200, "{driver}");
        let second = app.next_seen();
        let mut lines = common::wait_for_lines(&path, 2);
        // Each request came on its own connection: the workers' lines may come in
        // either order.
        lines.sort();
        for (line, (seen, path)) in lines.iter().zip([(&first, "/a"), (&second, "/b")]) {
            let field = |name: &str| seen.header(name).unwrap_or_else(|| "-".into());
            let expected = format!(
                "{path} {} {} {} {} -",
                field("x-b3-traceid"),
                field("x-b3-spanid"),
                field("x-b3-parentspanid"),
                field("x-b3-sampled")
            );
            assert_eq!(line, &expected, "{driver}: {seen:?}");
            assert_ne!(field("x-b3-traceid"), "-", "{driver}");
        }
        assert!(
            lines[1].starts_with("/b 463ac35c9f6413ad48485a3953bb6124 "),
            "{driver}: {}",
            lines[1]
        );
        assert!(lines[0].ends_with(" 0 -"), "{driver}: {}", lines[0]);
        drop(rw);
    }
}

/// OTLP through the binary, on one keep-alive connection: what a connection's requests
/// share (route, cluster, authority, the client's address and port) is encoded once and
/// reused, and made again when the route or the authority changes; every request's
/// spans carry their own.
#[test]
fn each_request_of_a_connection_carries_its_own_shared_attributes_in_otlp() {
    use common::collector::{Collector, Mode};
    use prost::Message as _;
    use ringway::trace::export::otlp;
    use std::io::{BufReader, Write};
    for driver in drivers() {
        let collector = Collector::start(Mode::Normal);
        let service = Upstream::start(false);
        let (rw, addr) = all_traced_by("otlp", driver, &service.endpoint(), &collector);
        let conn = common::connect(addr).unwrap();
        let local_port = conn.local_addr().unwrap().port();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut conn = conn;
        // The last one's user agent is not UTF-8: left out of its span, the rest kept
        // (the test's upstream reads heads as UTF-8 and drops that one: a 502, whose
        // spans are recorded all the same).
        let requests = [
            ("/named/1", "t", &b"probe/1"[..]),
            ("/plain/2", "t", b"probe/1"),
            ("/named/3", "shop.example:8443", b"probe/1"),
            ("/named/4", "shop.example:8443", b"probe/1"),
            ("/named/5", "[::1]", b"probe/1"),
            ("/named/6", "[::1]", b"caf\xe9"),
        ];
        for (path, host, agent) in requests {
            let mut raw =
                format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ").into_bytes();
            raw.extend_from_slice(agent);
            raw.extend_from_slice(b"\r\n\r\n");
            conn.write_all(&raw).unwrap();
            let r = common::read_response(&mut reader, false).unwrap();
            let want = if agent.is_ascii() { 200 } else { 502 };
            assert_eq!(r.status, want, "{driver} {path}");
        }
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let spans = loop {
            let spans: Vec<otlp::Span> = collector
                .requests()
                .iter()
                .filter(|r| r.path == "/v1/traces")
                .flat_map(|post| {
                    let body = otlp::ExportTraceServiceRequest::decode(post.body.as_slice());
                    body.unwrap().resource_spans[0].scope_spans[0].spans.clone()
                })
                .collect();
            let servers = spans.iter().filter(|s| s.kind == otlp::SPAN_KIND_SERVER);
            if servers.count() >= 6 || std::time::Instant::now() > until {
                break spans;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let servers = spans.iter().filter(|s| s.kind == otlp::SPAN_KIND_SERVER);
        assert_eq!(servers.count(), 6, "{driver}: a server span each");
        let attribute = |span: &otlp::Span, key: &str| {
            let found: Vec<_> = span.attributes.iter().filter(|kv| kv.key == key).collect();
            assert!(found.len() <= 1, "{driver}: {key} twice");
            found
                .first()
                .and_then(|kv| kv.value.clone())
                .and_then(|v| v.value)
        };
        let text = |v: &str| Some(otlp::Value::StringValue(v.to_owned()));
        let int = |v: i64| Some(otlp::Value::IntValue(v));
        for (path, host, agent) in requests {
            let server = spans
                .iter()
                .find(|s| {
                    s.kind == otlp::SPAN_KIND_SERVER && attribute(s, "url.path") == text(path)
                })
                .unwrap_or_else(|| panic!("{driver}: no span for {path}"));
            let route = path.starts_with("/named").then(|| text("orders")).flatten();
            assert_eq!(attribute(server, "http.route"), route, "{driver} {path}");
            assert_eq!(
                attribute(server, "upstream_cluster"),
                text("app"),
                "{driver}"
            );
            let (address, port) = match host {
                "t" => ("t", 80),
                "[::1]" => ("::1", 80),
                _ => ("shop.example", 8443),
            };
            assert_eq!(
                attribute(server, "server.address"),
                text(address),
                "{driver} {path}"
            );
            assert_eq!(
                attribute(server, "server.port"),
                int(port),
                "{driver} {path}"
            );
            assert_eq!(
                attribute(server, "client.address"),
                text("127.0.0.1"),
                "{driver}"
            );
            assert_eq!(
                attribute(server, "network.peer.address"),
                text("127.0.0.1"),
                "{driver}"
            );
            assert_eq!(
                attribute(server, "network.peer.port"),
                int(i64::from(local_port)),
                "{driver}"
            );
            assert_eq!(attribute(server, "url.scheme"), text("http"), "{driver}");
            let agent = std::str::from_utf8(agent).ok().and_then(text);
            assert_eq!(
                attribute(server, "user_agent.original"),
                agent,
                "{driver} {path}"
            );
            let attempts: Vec<&otlp::Span> = spans
                .iter()
                .filter(|s| s.kind == otlp::SPAN_KIND_CLIENT && s.parent_span_id == server.span_id)
                .collect();
            assert!(!attempts.is_empty(), "{driver}: no attempt for {path}");
            for attempt in attempts {
                assert_eq!(
                    attribute(attempt, "upstream_cluster"),
                    text("app"),
                    "{driver}"
                );
                assert_eq!(attribute(attempt, "http.route"), None, "{driver}");
                assert_eq!(attribute(attempt, "client.address"), None, "{driver}");
                assert_eq!(
                    attribute(attempt, "url.full"),
                    text(&format!("http://{}{path}", service.endpoint())),
                    "{driver}"
                );
                assert_eq!(
                    attribute(attempt, "server.address"),
                    text("127.0.0.1"),
                    "{driver}"
                );
            }
        }
        drop(rw);
    }
}
