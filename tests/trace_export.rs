//! Span export, checked by independent readers: the OTLP body decoded by the Python
//! `opentelemetry-proto` package (the official generated classes), the Zipkin body
//! validated against a JSON Schema of zipkin-api's Span (tests/data), and the exporter
//! thread POSTing through a cluster to the test collector (tests/common/collector.rs),
//! with its stats, when the collector is down and when it is slow.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::collector::{Collector, Mode};
use ringway::access_log::ResponseFlags;
use ringway::config::observability::{
    Collector as CollectorConfig, SpanKind, TraceProvider, Tracer,
};
use ringway::config::Config;
use ringway::stats::{names::trace as stat, StatsStore};
use ringway::trace::export::{self, otlp, zipkin, Exporter};
use ringway::trace::sink::SpanSinks;
use ringway::trace::span::{SpanBatch, SpanRecord, TextRef};

const TRACE_ID: u128 = 0x4bf92f3577b34da6a3ce929d0e0e4736;
const START: u64 = 1_700_000_000_123_456_789;

/// A server span (with a custom tag) and its failed second attempt.
fn fill(b: &mut SpanBatch) {
    let tag = (b.push_text("env"), b.push_text("prod"));
    b.tags.push(tag);
    let server = SpanRecord {
        trace_id: TRACE_ID,
        span_id: 0x00f067aa0ba902b7,
        parent_id: 0x1234567890abcdef,
        kind: SpanKind::Server,
        start_ns: START,
        end_ns: START + 2_500_000,
        name: b.push_text("GET /orders"),
        method: b.push_text("GET"),
        path: b.push_text("/orders"),
        query: b.push_text("page=2"),
        authority: b.push_text("shop.example:8443"),
        scheme: Some("https"),
        route: b.push_text("orders"),
        status: 503,
        peer: b.push_text("10.0.0.7"),
        peer_port: 51000,
        user_agent: b.push_text("curl/8"),
        request_id: b.push_text("5f4a3c2e-1b0d-4e9f-8a7b-6c5d4e3f2a1b"),
        cluster: b.push_text("shop"),
        upstream: b.push_text("127.0.0.1:8080"),
        consumer: b.push_text("alice"),
        flags: ResponseFlags::UPSTREAM_CONNECTION_FAILURE.bits(),
        bytes_received: 120,
        bytes_sent: 3400,
        attempt: 2,
        trace_state: b.push_text("vendor=1"),
        tags_start: 0,
        tags_len: 1,
        ..SpanRecord::default()
    };
    let client = SpanRecord {
        span_id: 0x1111222233334444,
        parent_id: 0x00f067aa0ba902b7,
        kind: SpanKind::Client,
        start_ns: START + 100_000,
        end_ns: START + 900_000,
        status: 0,
        error: b.push_text("connect failure"),
        tags_len: 0,
        // The endpoint's host and port, and the target as forwarded (rewritten), as
        // the worker records them for an attempt.
        authority: b.push_text("127.0.0.1"),
        server_port: 8080,
        origin: b.push_text("127.0.0.1:8080"),
        path: b.push_text("/v2/orders?page=2"),
        query: TextRef::EMPTY,
        upstream_attempt: true,
        ..server.clone()
    };
    b.spans.push(server);
    b.spans.push(client);
}

fn batch() -> SpanBatch {
    let mut b = SpanBatch::with_capacity(0, 8, 8192);
    fill(&mut b);
    b
}

fn tracer(provider: TraceProvider, cluster: &str, path: &str) -> Tracer {
    Tracer {
        provider,
        collector: CollectorConfig {
            cluster: cluster.into(),
            path: path.into(),
            authority: Some("collector.example".into()),
            headers: vec![("authorization".into(), "Bearer t0ken".into())],
            timeout: Duration::from_millis(500),
        },
        service_name: "edge".into(),
        max_spans_per_second: None,
        batch_spans: 2,
        flush_interval: Duration::from_secs(1),
        queue_batches: 2,
    }
}

/// Runs `script` with `input` on stdin; its stdout, or None (with a printed reason)
/// when python3 or the module is missing.
fn python(modules: &[(&str, &str)], script: &str, input: &[u8]) -> Option<String> {
    for (module, package) in modules {
        if !common::python_module(module, package) {
            eprintln!("SKIP: python3 cannot import {module} and pip could not install {package}");
            return None;
        }
    }
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

const DECODE_OTLP: &str = r#"
import sys, json
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from google.protobuf.json_format import MessageToDict
req = ExportTraceServiceRequest()
req.ParseFromString(sys.stdin.buffer.read())
out = []
for rs in req.resource_spans:
    res = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
    for ss in rs.scope_spans:
        for s in ss.spans:
            attrs = {}
            for kv in s.attributes:
                which = kv.value.WhichOneof("value")
                attrs[kv.key] = getattr(kv.value, which)
            out.append({
                "service": res.get("service.name"),
                "scope": ss.scope.name,
                "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                "parent": s.parent_span_id.hex(), "name": s.name, "kind": s.kind,
                "start": s.start_time_unix_nano, "end": s.end_time_unix_nano,
                "trace_state": s.trace_state, "flags": s.flags,
                "status_code": s.status.code, "status_message": s.status.message,
                "attrs": attrs,
            })
print(json.dumps(out))
"#;

#[test]
fn otlp_is_decoded_by_the_official_protobuf_classes() {
    let b = batch();
    let t = tracer(TraceProvider::Otlp, "otel", "/v1/traces");
    let body = otlp::encode(&t, &[&b]);
    let Some(out) = python(
        &[
            ("opentelemetry.proto", "opentelemetry-proto==1.29.0"),
            ("google.protobuf", "protobuf"),
        ],
        DECODE_OTLP,
        body.as_slice(),
    ) else {
        return;
    };
    let spans: serde_json::Value = serde_json::from_str(&out).unwrap();
    let server = &spans[0];
    assert_eq!(server["service"], "edge");
    assert_eq!(server["scope"], "ringway");
    assert_eq!(server["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(server["span_id"], "00f067aa0ba902b7");
    assert_eq!(server["parent"], "1234567890abcdef");
    assert_eq!(server["name"], "GET /orders");
    assert_eq!(server["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(server["start"], START);
    assert_eq!(server["end"], START + 2_500_000);
    assert_eq!(server["trace_state"], "vendor=1");
    assert_eq!(server["flags"], 1);
    assert_eq!(server["status_code"], 2, "STATUS_CODE_ERROR: a 503");
    let attrs = &server["attrs"];
    for (key, value) in [
        ("http.request.method", "GET"),
        ("url.path", "/orders"),
        ("url.query", "page=2"),
        ("url.scheme", "https"),
        ("http.route", "orders"),
        ("server.address", "shop.example"),
        ("client.address", "10.0.0.7"),
        ("network.peer.address", "10.0.0.7"),
        ("user_agent.original", "curl/8"),
        ("upstream_cluster", "shop"),
        ("upstream_address", "127.0.0.1:8080"),
        ("response_flags", "UF"),
        ("enduser.id", "alice"),
        ("guid:x-request-id", "5f4a3c2e-1b0d-4e9f-8a7b-6c5d4e3f2a1b"),
        ("env", "prod"),
    ] {
        assert_eq!(attrs[key], value, "{key}");
    }
    assert_eq!(attrs["http.response.status_code"], 503);
    assert_eq!(attrs["network.peer.port"], 51000);
    assert_eq!(attrs["server.port"], 8443, "the authority's port");
    assert!(attrs.get("url.full").is_none(), "server span");
    assert_eq!(attrs["http.request.body.size"], 120);
    assert_eq!(attrs["http.response.body.size"], 3400);
    assert_eq!(attrs["error"], true);
    assert_eq!(
        attrs["error.type"], "503",
        "the status, with no failure's kind"
    );
    assert!(
        attrs.get("http.request.resend_count").is_none(),
        "server span"
    );
    let client = &spans[1];
    assert_eq!(client["kind"], 3, "SPAN_KIND_CLIENT");
    assert_eq!(client["parent"], "00f067aa0ba902b7");
    assert_eq!(client["status_message"], "connect failure");
    assert_eq!(client["attrs"]["error.type"], "connect failure");
    assert_eq!(client["attrs"]["http.request.resend_count"], 1);
    // OpenTelemetry's required attributes of an HTTP client span: where it went.
    assert_eq!(client["attrs"]["server.address"], "127.0.0.1");
    assert_eq!(client["attrs"]["server.port"], 8080);
    assert_eq!(
        client["attrs"]["url.full"],
        "https://127.0.0.1:8080/v2/orders?page=2"
    );
    for server_only in ["url.scheme", "url.path", "url.query"] {
        assert!(client["attrs"].get(server_only).is_none(), "{server_only}");
    }
    assert!(
        client["attrs"].get("http.request.body.size").is_none(),
        "an attempt's bytes are its request's"
    );
    assert!(client["attrs"].get("env").is_none());
}

const VALIDATE_ZIPKIN: &str = r#"
import sys, json, jsonschema
schema = json.load(open(sys.argv[1]))
spans = json.load(sys.stdin)
jsonschema.validate(spans, schema, format_checker=jsonschema.FormatChecker())
print(len(spans))
"#;

#[test]
fn zipkin_json_matches_the_zipkin2_span_schema() {
    let mut b = batch();
    // A 64-bit trace (B3), an IPv6 client and a root span too.
    let (method, name) = (b.push_text("POST"), b.push_text("post /x"));
    let peer = b.push_text("2001:db8::5");
    b.spans.push(SpanRecord {
        trace_id: 0xabcdef,
        span_id: 7,
        kind: SpanKind::Server,
        start_ns: START,
        end_ns: START,
        method,
        name,
        peer,
        peer_port: 443,
        debug: true,
        shared: true,
        ..SpanRecord::default()
    });
    let t = tracer(
        TraceProvider::Zipkin {
            trace_id_128bit: false,
            shared_span_context: true,
        },
        "zipkin",
        "/api/v2/spans",
    );
    let body = zipkin::encode(&t, &[&b]);
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/zipkin2-span.schema.json"
    );
    let script = VALIDATE_ZIPKIN.replace("sys.argv[1]", &format!("{schema:?}"));
    let Some(out) = python(&[("jsonschema", "jsonschema")], &script, &body) else {
        return;
    };
    assert_eq!(out.trim(), "3");
    let spans: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(spans[2]["traceId"], "0000000000abcdef");
    assert_eq!(spans[2]["duration"], 1);
    assert_eq!(spans[2]["remoteEndpoint"]["ipv6"], "2001:db8::5");
    assert_eq!(
        spans[2]["shared"], true,
        "the schema allows Zipkin's shared flag"
    );
    assert!(spans[0].get("shared").is_none());
    assert_eq!(
        spans[0]["tags"]["http.url"],
        "https://shop.example:8443/orders?page=2"
    );
    assert_eq!(
        spans[1]["tags"]["http.url"], "https://127.0.0.1:8080/v2/orders?page=2",
        "an attempt's URL names its endpoint and the target as forwarded"
    );
    assert_eq!(spans[0]["tags"]["error"], "true");
    assert_eq!(spans[1]["tags"]["error"], "connect failure");
    // The schema really rejects: a non-hex id fails.
    let bad = String::from_utf8(body)
        .unwrap()
        .replace("00f067aa0ba902b7", "00F067AA0BA902B7");
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(bad.as_bytes())
        .unwrap();
    assert!(!child.wait().unwrap().success(), "upper-case ids must fail");
}

/// A config with one cluster `sink` at `addr`, and `tracer`.
fn config(addr: std::net::SocketAddr, tracer: Tracer) -> Config {
    let mut config = Config::parse(
        &format!(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200 }}\nclusters:\n  - name: sink\n    endpoints: [\"{addr}\"]\n"
        ),
        std::path::Path::new("t.yaml"),
    )
    .unwrap();
    config.tracers = vec![tracer];
    config
}

/// Records two spans (one full batch of 2) on a worker's sinks.
fn record(sinks: &mut SpanSinks) {
    let mut one = batch();
    for span in one.spans.drain(..) {
        let b = sinks.batch(0).expect("not rate limited");
        let name = b.push_text("GET /orders");
        b.spans.push(SpanRecord { name, ..span });
        sinks.pushed(0);
    }
}

#[test]
fn the_exporter_posts_batches_to_the_collector_cluster() {
    let collector = Collector::start(Mode::Normal);
    for (provider, path, content_type, scope) in [
        (
            TraceProvider::Otlp,
            "/v1/traces",
            "application/x-protobuf",
            "tracing.opentelemetry.",
        ),
        (
            TraceProvider::Zipkin {
                trace_id_128bit: true,
                shared_span_context: true,
            },
            "/api/v2/spans",
            "application/json",
            "tracing.zipkin.",
        ),
    ] {
        let config = config(collector.addr(), tracer(provider, "sink", path));
        let mut store = StatsStore::new(1);
        let scopes = export::register_stats(&mut store, &config);
        let exporter = Exporter::start(1).unwrap();
        exporter.update(&config, &scopes);
        let mut sinks = SpanSinks::new(exporter.worker_setup(0));
        sinks.configure(&config, &scopes);
        let before = collector.requests().len();
        let connections = collector.connections();
        record(&mut sinks);
        let got = collector.wait_for(before + 1, Duration::from_secs(5));
        assert_eq!(
            got.len(),
            before + 1,
            "{scope}: one POST; stats: {:?}",
            store
                .lines(Vec::new())
                .into_iter()
                .map(|l| (l.name, l.value))
                .collect::<Vec<_>>()
        );
        let post = &got[before];
        assert_eq!(post.method, "POST");
        assert_eq!(post.path, path);
        assert_eq!(post.header("content-type"), Some(content_type));
        assert_eq!(post.header("host"), Some("collector.example"));
        assert_eq!(post.header("authorization"), Some("Bearer t0ken"));
        if provider == TraceProvider::Otlp {
            use prost::Message;
            let req = otlp::ExportTraceServiceRequest::decode(post.body.as_slice()).unwrap();
            assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), 2);
        } else {
            let spans: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
            assert_eq!(spans.as_array().unwrap().len(), 2);
        }
        // The next batch goes on the connection the first opened (keep-alive).
        record(&mut sinks);
        assert_eq!(
            collector.wait_for(before + 2, Duration::from_secs(5)).len(),
            before + 2
        );
        assert_eq!(
            collector.connections() - connections,
            1,
            "{scope}: one connection for two POSTs"
        );
        // As at exit: the workers' sinks are gone first.
        drop(sinks);
        assert!(exporter.finish(Duration::from_secs(5)));
        let value = |name: &str| {
            store
                .lines(Vec::new())
                .into_iter()
                .find(|l| l.name == format!("{scope}{name}"))
                .map(|l| l.value)
        };
        assert_eq!(value("spans_sent"), Some(4), "{scope}");
        match provider {
            TraceProvider::Otlp => {
                assert_eq!(value("http_reports_sent"), Some(2));
                assert_eq!(value("http_reports_success"), Some(2));
            }
            TraceProvider::Zipkin { .. } => assert_eq!(value("reports_sent"), Some(2)),
        }
    }
}

#[test]
fn a_down_or_slow_collector_fails_counted_and_workers_drop_instead_of_waiting() {
    let collector = Collector::start(Mode::Refuse);
    let zipkin = TraceProvider::Zipkin {
        trace_id_128bit: false,
        shared_span_context: true,
    };
    let config = config(collector.addr(), tracer(zipkin, "sink", "/api/v2/spans"));
    let mut store = StatsStore::new(1);
    let scopes = export::register_stats(&mut store, &config);
    let exporter = Exporter::start(1).unwrap();
    exporter.update(&config, &scopes);
    let mut sinks = SpanSinks::new(exporter.worker_setup(0));
    sinks.configure(&config, &scopes);
    let scope = Arc::clone(&scopes[0]);
    let value = |i: usize| scope.sum(i);
    record(&mut sinks);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while value(stat::REPORTS_FAILED) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(value(stat::REPORTS_FAILED), 1);
    // Slow: the exporter waits on its first POST (500 ms timeout) while the worker
    // keeps recording; past the queue of 2 batches, spans are dropped, never waited for.
    collector.set_mode(Mode::Slow(Duration::from_secs(2)));
    let started = std::time::Instant::now();
    for _ in 0..20 {
        record(&mut sinks);
    }
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "the worker never waits"
    );
    assert!(
        value(stat::SPANS_DROPPED) >= 30,
        "dropped {}",
        value(stat::SPANS_DROPPED)
    );
    // A collector cluster the config lacks: skipped, counted.
    let mut missing = config.clone();
    missing.tracers[0].collector.cluster = "nowhere".into();
    exporter.update(&missing, &scopes);
    std::thread::sleep(Duration::from_secs(2));
    let skipped = value(stat::REPORTS_SKIPPED_NO_CLUSTER);
    record(&mut sinks);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while value(stat::REPORTS_SKIPPED_NO_CLUSTER) == skipped && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(value(stat::REPORTS_SKIPPED_NO_CLUSTER) > skipped);
    drop(sinks);
    let _ = exporter.finish(Duration::from_secs(5));
}

/// The real binary: the exporter's scopes are in `/stats` from start for the config's
/// provider and appear with a reload that adds the other; a traced request's spans
/// reach the collector (once the request path samples: with the trace core in place).
#[test]
fn the_binary_registers_tracer_stats_and_exports_through_reloads() {
    let collector = Collector::start(Mode::Normal);
    for driver in common::drivers() {
        let (port, admin) = (common::free_port(), common::free_port());
        let yaml = |provider: &str, path: &str| {
            format!(
                "workers: 2\nadmin: 127.0.0.1:{admin}\ntracing:\n  provider: {provider}\n  collector: {{ cluster: collector, path: {path}, headers: {{ x-token: t }} }}\n  service_name: e2e\n  flush_interval: 1s\nlisteners:\n  - name: edge\n    address: 127.0.0.1:{port}\n    tracing: true\n    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200, body: ok }}\nclusters:\n  - name: collector\n    endpoints: [\"{}\"]\n",
                collector.addr()
            )
        };
        let rw = common::Ringway::start(&yaml("otlp", "/v1/traces"), admin, &["--driver", driver]);
        let stats = rw.stats();
        for name in [
            "spans_sent",
            "timer_flushed",
            "http_reports_sent",
            "http_reports_success",
            "http_reports_failed",
            "spans_dropped",
            "spans_rate_limited",
        ] {
            assert_eq!(
                stats.get(&format!("tracing.opentelemetry.{name}")),
                Some(&0),
                "{driver}: {name}"
            );
        }
        assert!(!stats.contains_key("tracing.zipkin.spans_sent"), "{driver}");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let before = collector.requests().len();
        let r = common::get(addr, "/traced/a?q=1").unwrap();
        assert_eq!(r.status, 200);
        // The span goes out within the flush interval and a tick.
        let got = collector.wait_for(before + 1, Duration::from_secs(4));
        assert!(got.len() > before, "{driver}: no span exported");
        let post = &got[before];
        assert_eq!(post.path, "/v1/traces");
        assert_eq!(post.header("x-token"), Some("t"));
        assert_eq!(post.header("host"), Some("collector"));
        assert_eq!(
            rw.wait_for_stat("tracing.opentelemetry.http_reports_success", 1),
            1
        );
        // The request's span as the request path recorded it, through the exporter.
        use prost::Message as _;
        let body = otlp::ExportTraceServiceRequest::decode(post.body.as_slice()).unwrap();
        let spans = &body.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 1, "{driver}: a local answer has no attempt");
        let span = &spans[0];
        assert_eq!(span.name, "GET /traced/a", "{driver}");
        assert_eq!(span.kind, otlp::SPAN_KIND_SERVER, "{driver}");
        let attribute = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.clone())
                .and_then(|v| v.value)
        };
        let text = |v: &str| Some(otlp::Value::StringValue(v.to_owned()));
        assert_eq!(attribute("http.request.method"), text("GET"), "{driver}");
        assert_eq!(attribute("url.path"), text("/traced/a"), "{driver}");
        assert_eq!(attribute("url.query"), text("q=1"), "{driver}");
        assert_eq!(attribute("url.scheme"), text("http"), "{driver}");
        assert_eq!(attribute("client.address"), text("127.0.0.1"), "{driver}");
        assert_eq!(
            attribute("http.response.status_code"),
            Some(otlp::Value::IntValue(200)),
            "{driver}"
        );
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        std::fs::write(rw.config_path(), yaml("zipkin", "/api/v2/spans")).unwrap();
        let r = common::post(rw.admin_addr(), "/reload").unwrap();
        assert_eq!(
            r.status,
            200,
            "{driver}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let stats = rw.stats();
        for name in [
            "spans_sent",
            "reports_sent",
            "reports_dropped",
            "reports_failed",
            "reports_skipped_no_cluster",
        ] {
            assert_eq!(
                stats.get(&format!("tracing.zipkin.{name}")),
                Some(&0),
                "{driver}: {name}"
            );
        }
        let before = collector.requests().len();
        common::get(addr, "/after-reload").unwrap();
        let got = collector.wait_for(before + 1, Duration::from_secs(4));
        assert!(
            got.len() > before,
            "{driver}: no span exported after the reload"
        );
        assert_eq!(got[before].path, "/api/v2/spans");
        let spans: serde_json::Value = serde_json::from_slice(&got[before].body).unwrap();
        assert_eq!(spans[0]["localEndpoint"]["serviceName"], "e2e");
        assert_eq!(spans[0]["name"], "GET /after-reload", "{driver}");
        assert_eq!(spans[0]["tags"]["http.url"], "http://test/after-reload");
        assert_eq!(rw.wait_for_stat("tracing.zipkin.reports_sent", 1), 1);
        let started = std::time::Instant::now();
        assert!(rw.terminate().success(), "{driver}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{driver}: exit waited"
        );
    }
}

/// Envoy's Zipkin reporter counts a report sent only on 202 Accepted (what a Zipkin
/// server answers); any other answer, a 200 included, counts it dropped.
#[test]
fn a_zipkin_report_is_sent_only_when_the_collector_accepts_it() {
    let collector = Collector::start(Mode::Normal);
    for driver in common::drivers() {
        let (port, admin) = (common::free_port(), common::free_port());
        // The test collector answers 202 under `/api/v2/spans`, 200 elsewhere.
        let yaml = format!(
            "workers: 1\nadmin: 127.0.0.1:{admin}\ntracing:\n  provider: zipkin\n  collector: {{ cluster: collector, path: /elsewhere }}\n  flush_interval: 100ms\nlisteners:\n  - name: edge\n    address: 127.0.0.1:{port}\n    tracing: {{ sampling: 100% }}\n    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200, body: ok }}\nclusters:\n  - name: collector\n    endpoints: [\"{}\"]\n",
            collector.addr()
        );
        let rw = common::Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let before = collector.requests().len();
        assert_eq!(common::get(addr, "/a").unwrap().status, 200);
        let got = collector.wait_for(before + 1, Duration::from_secs(4));
        assert_eq!(got[before].path, "/elsewhere", "{driver}");
        assert_eq!(rw.wait_for_stat("tracing.zipkin.reports_dropped", 1), 1);
        let stats = rw.stats();
        assert_eq!(
            stats.get("tracing.zipkin.reports_sent"),
            Some(&0),
            "{driver}"
        );
        assert_eq!(
            stats.get("tracing.zipkin.reports_failed"),
            Some(&0),
            "{driver}"
        );
    }
}
