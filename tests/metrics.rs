//! Per-route, per-virtual-cluster, per-consumer and per-endpoint stats with the real
//! binary under every driver: the numbers equal the requests sent, in `/stats`, in
//! Prometheus' format (parsed by the reference parser, python's `prometheus_client`)
//! and in `/usage` (JSON and CSV).

mod common;

use std::{
    collections::HashMap,
    io::{BufReader, Write},
    net::SocketAddr,
    process::{Command, Stdio},
};

use common::{upstream::Upstream, *};

fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: api.test\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    if method == "POST" {
        raw.push_str("content-length: 5\r\n\r\nhello");
    } else {
        raw.push_str("\r\n");
    }
    let mut conn = connect(addr).unwrap();
    conn.write_all(raw.as_bytes()).unwrap();
    read_response(&mut BufReader::new(conn), method == "HEAD").unwrap()
}

fn native(admin: u16, port: u16, endpoint: &str) -> String {
    // The same upstream under a DNS name, for the `envoy_endpoint_hostname` label.
    let upstream_port = endpoint.rsplit(':').next().unwrap_or("80");
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
auth:
  api_keys:
    consumers:
      - {{ name: acme, keys: [acme-key] }}
      - {{ name: globex, keys: [globex-key] }}
listeners:
  - name: edge
    address: 127.0.0.1:{port}
    virtual_hosts:
      - name: api
        domains: ["*"]
        virtual_clusters:
          - name: writes
            headers: [ {{ name: ":method", exact: POST }} ]
        routes:
          - name: orders
            match: {{ prefix: /orders }}
            cluster: echo
            auth: api_key
            stats: true
          - name: retried
            match: {{ prefix: /retried }}
            cluster: echo
            retry: {{ on: [5xx], retries: 1 }}
            stats: true
          - name: slow
            match: {{ prefix: /slow }}
            cluster: echo
            timeout: 200ms
            stats: true
          - match: {{ prefix: /direct }}
            direct_response: {{ status: 418, body: "teapot\n" }}
            stats: direct
          - match: {{ prefix: / }}
            cluster: echo
clusters:
  - name: echo
    endpoints: ["{endpoint}"]
    per_endpoint_stats: true
  - name: named
    endpoints: ["localhost:{upstream_port}"]
    per_endpoint_stats: true
"#
    )
}

/// Prometheus samples: (name, labels) -> value, from the reference parser; `None` (with
/// the reason printed) when python's `prometheus_client` cannot be had.
/// Prometheus samples by (sample name, sorted labels).
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

fn parse_prometheus(text: &str) -> Option<Samples> {
    if !python_module("prometheus_client", "prometheus_client") {
        eprintln!(
            "SKIP the Prometheus parse: python3 cannot import prometheus_client and pip could not install it"
        );
        return None;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/metrics/prometheus_samples.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused ringway's output: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut samples = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut labels: Vec<(String, String)> = v["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        labels.sort();
        let name = v["name"].as_str().unwrap().to_owned();
        // Prometheus refuses a scrape with two samples of one name and label set.
        let key = (name, labels);
        let value = v["value"].as_f64().unwrap();
        if let Some(before) = samples.insert(key.clone(), value) {
            panic!("duplicate series {key:?} ({before} and {value}) in:\n{text}");
        }
    }
    Some(samples)
}

fn sample(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    let key = (name.to_owned(), labels);
    match samples.get(&key) {
        Some(v) => *v,
        None => {
            let mut near: Vec<_> = samples.keys().filter(|k| k.0 == name).collect();
            near.sort();
            panic!("no sample {key:?}; with that name: {near:?}")
        }
    }
}

#[test]
fn route_vhost_consumer_and_endpoint_stats_count_every_request() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let endpoint = upstream.endpoint();
        let (rw, addr) = start_on(driver, |port, admin| native(admin, port, &endpoint));
        let acme = [("x-api-key", "acme-key")];
        for _ in 0..3 {
            assert_eq!(request(addr, "GET", "/orders/1", &acme).status, 200);
        }
        for _ in 0..2 {
            let globex = [("x-api-key", "globex-key")];
            assert_eq!(request(addr, "POST", "/orders", &globex).status, 200);
        }
        let failing = [("x-api-key", "acme-key"), ("x-respond-status", "503")];
        assert_eq!(request(addr, "GET", "/orders/2", &failing).status, 503);
        for _ in 0..2 {
            assert_eq!(request(addr, "GET", "/orders/3", &[]).status, 401);
            assert_eq!(request(addr, "GET", "/direct", &[]).status, 418);
        }
        assert_eq!(request(addr, "GET", "/other", &[]).status, 200);
        // Eleven requests; the last is counted after its answer is written.
        rw.wait_for_stat("http.edge.downstream_rq_completed", 11);
        let stats = rw.stats();
        let s = |name: &str| stats.get(name).copied().unwrap_or(0);

        let route = "vhost.api.route.orders.";
        let expect = [
            ("upstream_rq_total", 6),
            ("upstream_rq_completed", 6),
            ("upstream_rq_200", 5),
            ("upstream_rq_503", 1),
            ("upstream_rq_2xx", 5),
            ("upstream_rq_5xx", 1),
            ("downstream_rq_2xx", 5),
            ("downstream_rq_4xx", 2),
            ("downstream_rq_5xx", 1),
            ("upstream_rq_timeout", 0),
            ("upstream_rq_retry", 0),
        ];
        for (stat, n) in expect {
            assert_eq!(s(&format!("{route}{stat}")), n, "{driver}: {route}{stat}");
        }
        assert!(!stats.contains_key("vhost.api.route.orders.upstream_rq_404"));
        assert!(s("vhost.api.route.orders.rq_rx_bytes") > 0);
        assert!(s("vhost.api.route.orders.rq_tx_bytes") > 0);
        assert_eq!(s("vhost.api.route.direct.downstream_rq_4xx"), 2, "{driver}");
        assert_eq!(s("vhost.api.route.direct.upstream_rq_total"), 0, "{driver}");

        // Virtual clusters: the two POSTs, and everything else under `other`.
        assert_eq!(
            s("vhost.api.vcluster.writes.upstream_rq_total"),
            2,
            "{driver}"
        );
        assert_eq!(
            s("vhost.api.vcluster.writes.upstream_rq_200"),
            2,
            "{driver}"
        );
        assert_eq!(
            s("vhost.api.vcluster.other.upstream_rq_total"),
            5,
            "{driver}"
        );
        assert_eq!(
            s("vhost.api.vcluster.other.downstream_rq_2xx"),
            4,
            "{driver}"
        );
        assert_eq!(
            s("vhost.api.vcluster.other.downstream_rq_4xx"),
            4,
            "{driver}"
        );
        assert_eq!(
            s("vhost.api.vcluster.other.downstream_rq_5xx"),
            1,
            "{driver}"
        );

        // Consumers.
        assert_eq!(s("consumer.acme.rq_total"), 4, "{driver}");
        assert_eq!(s("consumer.acme.rq_2xx"), 3, "{driver}");
        assert_eq!(s("consumer.acme.rq_5xx"), 1, "{driver}");
        assert_eq!(s("consumer.globex.rq_2xx"), 2, "{driver}");

        // The cluster's codes, as Envoy's code stats charge it (a code's counter shown
        // once used).
        assert_eq!(s("cluster.echo.upstream_rq_completed"), 7, "{driver}");
        assert_eq!(s("cluster.echo.upstream_rq_200"), 6, "{driver}");
        assert_eq!(s("cluster.echo.upstream_rq_503"), 1, "{driver}");
        assert_eq!(s("cluster.echo.upstream_rq_5xx"), 1, "{driver}");
        assert!(
            !stats.contains_key("cluster.echo.upstream_rq_404"),
            "{driver}"
        );

        // A native listener's requests are all external (only Envoy's rules make one
        // internal).
        assert_eq!(
            s("cluster.echo.external.upstream_rq_completed"),
            7,
            "{driver}"
        );
        assert_eq!(s("cluster.echo.external.upstream_rq_200"), 6, "{driver}");
        assert_eq!(s("cluster.echo.external.upstream_rq_5xx"), 1, "{driver}");
        assert!(
            !stats
                .keys()
                .any(|k| k.starts_with("cluster.echo.internal.")),
            "{driver}"
        );

        // Endpoints, under Envoy's names.
        let host = format!("cluster.echo.endpoint.{}.", endpoint.replace(':', "_"));
        assert_eq!(s(&format!("{host}rq_total")), 7, "{driver}: {stats:?}");
        assert_eq!(s(&format!("{host}rq_success")), 6, "{driver}");
        assert_eq!(s(&format!("{host}rq_error")), 1, "{driver}");
        assert_eq!(s(&format!("{host}healthy")), 1, "{driver}");

        // Prometheus, read by the reference parser.
        let r = get(rw.admin_addr(), "/stats/prometheus").unwrap();
        assert_eq!(r.status, 200);
        let text = String::from_utf8(r.body).unwrap();
        if let Some(samples) = parse_prometheus(&text) {
            let route = [("envoy_virtual_host", "api"), ("envoy_route", "orders")];
            let total = sample(&samples, "envoy_vhost_route_upstream_rq_total", &route);
            assert_eq!(total, 6.0, "{driver}");
            let code = [
                ("envoy_virtual_host", "api"),
                ("envoy_route", "orders"),
                ("envoy_response_code", "503"),
            ];
            // The parser names a counter's sample `<family>_total`.
            assert_eq!(
                sample(&samples, "envoy_vhost_route_upstream_rq_total", &code),
                1.0
            );
            let class = [
                ("envoy_virtual_host", "api"),
                ("envoy_route", "orders"),
                ("envoy_response_code_class", "2"),
            ];
            assert_eq!(
                sample(&samples, "envoy_vhost_route_upstream_rq_xx_total", &class),
                5.0
            );
            let cluster_code = [
                ("envoy_cluster_name", "echo"),
                ("envoy_response_code", "200"),
            ];
            assert_eq!(
                sample(&samples, "envoy_cluster_upstream_rq_total", &cluster_code),
                6.0,
                "{driver}"
            );
            let time = sample(&samples, "envoy_vhost_route_upstream_rq_time_count", &route);
            assert_eq!(time, 6.0, "{driver}");
            let vc = [
                ("envoy_virtual_host", "api"),
                ("envoy_virtual_cluster", "writes"),
            ];
            let writes = sample(&samples, "envoy_vhost_vcluster_upstream_rq_total", &vc);
            assert_eq!(writes, 2.0, "{driver}");
            let ep = [
                ("envoy_cluster_name", "echo"),
                ("envoy_endpoint_address", endpoint.as_str()),
            ];
            let rq = sample(&samples, "envoy_cluster_endpoint_rq_total", &ep);
            assert_eq!(rq, 7.0, "{driver}");
            let healthy = sample(&samples, "envoy_cluster_endpoint_healthy", &ep);
            assert_eq!(healthy, 1.0, "{driver}");
            // An endpoint found by DNS carries the name it was resolved from.
            let named = samples.keys().any(|(name, labels)| {
                name == "envoy_cluster_endpoint_healthy"
                    && labels.contains(&("envoy_cluster_name".into(), "named".into()))
                    && labels.contains(&("envoy_endpoint_hostname".into(), "localhost".into()))
            });
            assert!(named, "{driver}: {text}");
            let acme = [("envoy_consumer_name", "acme")];
            let consumer = sample(&samples, "envoy_consumer_rq_total", &acme);
            assert_eq!(consumer, 4.0, "{driver}");
        }

        // `/usage`, JSON (the default) and CSV.
        let r = get(rw.admin_addr(), "/usage").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let usage: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let consumers = usage["consumers"].as_array().unwrap();
        assert_eq!(consumers.len(), 2, "{usage}");
        assert_eq!(consumers[0]["name"], "acme");
        assert_eq!(consumers[0]["requests"], 4);
        assert_eq!(consumers[0]["rq_2xx"], 3);
        assert_eq!(consumers[0]["rq_5xx"], 1);
        assert!(consumers[0]["rx_bytes"].as_u64().unwrap() > 0);
        assert_eq!(consumers[1]["name"], "globex");
        assert_eq!(consumers[1]["requests"], 2);
        let since = usage["since"].as_str().unwrap().to_owned();
        assert!(since.ends_with('Z') && since.as_str() <= usage["now"].as_str().unwrap());
        let r = get(rw.admin_addr(), "/usage?format=csv").unwrap();
        assert_eq!(r.status, 200);
        let csv = String::from_utf8(r.body).unwrap();
        let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(
            rows[0],
            [
                "consumer", "requests", "rq_1xx", "rq_2xx", "rq_3xx", "rq_4xx", "rq_5xx",
                "rx_bytes", "tx_bytes", "since", "now"
            ]
        );
        assert_eq!(rows.len(), 3, "{csv}");
        assert_eq!(&rows[1][..7], ["acme", "4", "0", "3", "0", "0", "1"]);
        assert_eq!(&rows[2][..4], ["globex", "2", "0", "2"]);
        let r = get(rw.admin_addr(), "/usage?format=xml").unwrap();
        assert_eq!(r.status, 400);

        // Retries and timeouts, on routes of their own.
        let failing = [("x-respond-status", "503")];
        assert_eq!(request(addr, "GET", "/retried", &failing).status, 503);
        let slow = [("x-delay-ms", "1000")];
        assert_eq!(request(addr, "GET", "/slow", &slow).status, 504);
        rw.wait_for_stat("http.edge.downstream_rq_completed", 13);
        let stats = rw.stats();
        let s = |name: &str| stats.get(name).copied().unwrap_or(0);
        let expect = [
            // Per attempt that got its connection, as Envoy counts it.
            ("retried.upstream_rq_total", 2),
            ("retried.upstream_rq_retry", 1),
            ("retried.upstream_rq_retry_limit_exceeded", 1),
            // The last answer was forwarded because the retries ran out: no success.
            ("retried.upstream_rq_retry_success", 0),
            ("retried.upstream_rq_503", 1),
            ("retried.upstream_rq_completed", 1),
            ("retried.downstream_rq_5xx", 1),
            ("slow.upstream_rq_total", 1),
            ("slow.upstream_rq_timeout", 1),
            // The router's 504 is charged as the upstream's code (Envoy's
            // `chargeUpstreamAbort`).
            ("slow.upstream_rq_completed", 1),
            ("slow.upstream_rq_504", 1),
            ("slow.upstream_rq_5xx", 1),
            ("slow.downstream_rq_5xx", 1),
        ];
        for (stat, n) in expect {
            let name = format!("vhost.api.route.{stat}");
            assert_eq!(s(&name), n, "{driver}: {name}");
        }

        // A reset starts the counts again, from a later `since`.
        assert_eq!(
            post(rw.admin_addr(), "/reset_counters").unwrap().status,
            200
        );
        let r = get(rw.admin_addr(), "/usage").unwrap();
        let usage: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(usage["consumers"][0]["requests"], 0, "{usage}");
        assert!(usage["since"].as_str().unwrap() > since.as_str());
    }
}

#[test]
fn envoy_stat_prefix_virtual_clusters_and_per_endpoint_stats() {
    let upstream = Upstream::start(false);
    let port = upstream.addr.port();
    for driver in drivers() {
        let vhost = r#"              virtual_clusters:
              - name: reads
                headers: [ { name: ":method", string_match: { exact: GET } } ]
              routes:
              - match: { prefix: "/" }
                stat_prefix: all_routes
                route: { cluster: echo }
"#;
        let (rw, addr) = start_on(driver, |p, admin| {
            common::envoy::bootstrap((admin, p), vhost, "", &[("echo", port)]).replace(
                "  - name: echo\n    load_assignment",
                "  - name: echo\n    track_cluster_stats: { per_endpoint_stats: true }\n    load_assignment",
            )
        });
        for _ in 0..3 {
            assert_eq!(request(addr, "GET", "/a", &[]).status, 200);
        }
        assert_eq!(request(addr, "POST", "/b", &[]).status, 200);
        rw.wait_for_stat("http.ingress_http.downstream_rq_completed", 4);
        let stats = rw.stats();
        let s = |name: &str| stats.get(name).copied().unwrap_or(0);
        assert_eq!(
            s("vhost.all.route.all_routes.upstream_rq_total"),
            4,
            "{driver}"
        );
        assert_eq!(
            s("vhost.all.route.all_routes.upstream_rq_200"),
            4,
            "{driver}"
        );
        assert_eq!(
            s("vhost.all.vcluster.reads.upstream_rq_total"),
            3,
            "{driver}"
        );
        assert_eq!(
            s("vhost.all.vcluster.other.upstream_rq_total"),
            1,
            "{driver}"
        );
        let host = format!("cluster.echo.endpoint.127.0.0.1_{port}.rq_total");
        assert_eq!(s(&host), 4, "{driver}: {stats:?}");
    }
}

/// The four consumers of a defect report, whose names differ only in `-`, `.` and `_`:
/// stat names once replaced `.` with `_` (so `a.b` and `a_b` shared one row of `/usage`),
/// and Prometheus names replaced `-` too (so `acme-corp` and `acme_corp` were two series
/// of one name and no labels, which Prometheus refuses). Each is its own row and series,
/// under the name as configured.
const LOOKALIKES: [(&str, u64); 4] = [("acme-corp", 1), ("a.b", 2), ("a_b", 1), ("acme_corp", 3)];

fn lookalikes(admin: u16, port: u16, endpoint: &str) -> String {
    let mut consumers = String::new();
    for (name, _) in LOOKALIKES {
        consumers.push_str(&format!("      - {{ name: {name}, keys: [{name}-key] }}\n"));
    }
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
auth:
  api_keys:
    consumers:
{consumers}listeners:
  - name: edge
    address: 127.0.0.1:{port}
    routes:
      - match: {{ prefix: / }}
        cluster: echo
        auth: api_key
clusters:
  - name: echo
    endpoints: ["{endpoint}"]
"#
    )
}

#[test]
fn consumers_whose_names_differ_in_punctuation_keep_their_own_rows_and_series() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let endpoint = upstream.endpoint();
        let (rw, addr) = start_on(driver, |port, admin| lookalikes(admin, port, &endpoint));
        let mut sent = 0;
        for (name, n) in LOOKALIKES {
            let key = format!("{name}-key");
            for _ in 0..n {
                let r = request(addr, "GET", "/x", &[("x-api-key", key.as_str())]);
                assert_eq!(r.status, 200, "{driver}: {name}");
                sent += 1;
            }
        }
        rw.wait_for_stat("http.edge.downstream_rq_completed", sent);

        // `/stats`: the dotted names, with each name as configured.
        let stats = rw.stats();
        for (name, n) in LOOKALIKES {
            for stat in ["rq_total", "rq_2xx"] {
                let full = format!("consumer.{name}.{stat}");
                assert_eq!(stats.get(&full), Some(&n), "{driver}: {full}: {stats:?}");
            }
        }
        let consumer_lines = stats.keys().filter(|k| k.starts_with("consumer.")).count();
        assert_eq!(consumer_lines, LOOKALIKES.len() * 8, "{driver}: {stats:?}");
        let r = get(rw.admin_addr(), "/stats?format=json&filter=consumer").unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let named: Vec<(&str, u64)> = doc["stats"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                let name = s["name"].as_str().unwrap();
                name.starts_with("consumer.") && name.ends_with(".rq_total")
            })
            .map(|s| (s["name"].as_str().unwrap(), s["value"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            named,
            [
                ("consumer.a.b.rq_total", 2),
                ("consumer.a_b.rq_total", 1),
                ("consumer.acme-corp.rq_total", 1),
                ("consumer.acme_corp.rq_total", 3)
            ],
            "{driver}"
        );

        // `/usage`: one row per consumer, sorted by name, under its exact name.
        let r = get(rw.admin_addr(), "/usage?format=json").unwrap();
        assert_eq!(r.status, 200);
        let usage: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let rows: Vec<(&str, u64, u64)> = usage["consumers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let n = |k: &str| c[k].as_u64().unwrap();
                (c["name"].as_str().unwrap(), n("requests"), n("rq_2xx"))
            })
            .collect();
        let expected = [
            ("a.b", 2, 2),
            ("a_b", 1, 1),
            ("acme-corp", 1, 1),
            ("acme_corp", 3, 3),
        ];
        assert_eq!(rows, expected, "{driver}: {usage}");
        let r = get(rw.admin_addr(), "/usage?format=csv").unwrap();
        assert_eq!(r.status, 200);
        let csv = String::from_utf8(r.body).unwrap();
        let rows: Vec<(&str, u64, u64)> = csv
            .lines()
            .skip(1)
            .map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                assert_eq!(fields.len(), 11, "{line}");
                (
                    fields[0],
                    fields[1].parse().unwrap(),
                    fields[3].parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(rows, expected, "{driver}: {csv}");

        // Prometheus: one series per consumer per stat, the name as a label.
        let r = get(rw.admin_addr(), "/stats/prometheus").unwrap();
        assert_eq!(r.status, 200);
        let text = String::from_utf8(r.body).unwrap();
        for (name, n) in LOOKALIKES {
            let line = format!("envoy_consumer_rq_total{{envoy_consumer_name=\"{name}\"}} {n}\n");
            assert!(text.contains(&line), "{driver}: no {line:?} in\n{text}");
        }
        for family in [
            "rq_total", "rq_1xx", "rq_2xx", "rq_5xx", "rx_bytes", "tx_bytes",
        ] {
            let series = format!("envoy_consumer_{family}{{");
            let count = text.lines().filter(|l| l.starts_with(&series)).count();
            assert_eq!(count, LOOKALIKES.len(), "{driver}: {family}\n{text}");
        }
        assert!(!text.contains("acme_corp_rq"), "{driver}: {text}");
        if let Some(samples) = parse_prometheus(&text) {
            for (name, n) in LOOKALIKES {
                let labels = [("envoy_consumer_name", name)];
                let total = sample(&samples, "envoy_consumer_rq_total", &labels);
                assert_eq!(total, n as f64, "{driver}: {name}");
                // The parser names a counter's sample `<family>_total`.
                let ok = sample(&samples, "envoy_consumer_rq_2xx_total", &labels);
                assert_eq!(ok, n as f64, "{driver}: {name}");
                assert!(sample(&samples, "envoy_consumer_tx_bytes_total", &labels) > 0.0);
            }
            let consumer_series = samples
                .keys()
                .filter(|(sample, _)| sample.starts_with("envoy_consumer_"))
                .count();
            assert_eq!(consumer_series, LOOKALIKES.len() * 8, "{driver}: {text}");
        }
    }
}

/// A router-made answer for an upstream request that got none (here a connect
/// failure: 503, `UF`) is charged as the upstream's code on the cluster and the route,
/// as Envoy's router charges an abort (and its "no healthy upstream" 503); the
/// attempt got no connection, so no `upstream_rq_total` (Envoy counts it when the
/// pool is ready).
#[test]
fn router_made_answers_are_charged_as_the_upstreams() {
    for driver in drivers() {
        let (rw, addr) = start_on(driver, |port, admin| {
            format!(
                "workers: 1\nadmin: 127.0.0.1:{admin}\nlisteners:\n  - name: edge\n    address: 127.0.0.1:{port}\n    routes:\n      - name: dead\n        match: {{ prefix: / }}\n        cluster: dead\n        stats: true\nclusters:\n  - name: dead\n    endpoints: [\"127.0.0.1:9\"]\n"
            )
        });
        assert_eq!(request(addr, "GET", "/x", &[]).status, 503, "{driver}");
        rw.wait_for_stat("http.edge.downstream_rq_completed", 1);
        let stats = rw.stats();
        let s = |name: &str| stats.get(name).copied().unwrap_or(0);
        assert_eq!(s("vhost.edge.route.dead.upstream_rq_total"), 0, "{driver}");
        assert_eq!(s("cluster.dead.upstream_rq_total"), 0, "{driver}");
        for name in [
            "cluster.dead.upstream_rq_completed",
            "cluster.dead.upstream_rq_5xx",
            "cluster.dead.upstream_rq_503",
            "vhost.edge.route.dead.upstream_rq_completed",
            "vhost.edge.route.dead.upstream_rq_503",
            "vhost.edge.route.dead.upstream_rq_5xx",
        ] {
            assert_eq!(s(name), 1, "{driver}: {name}: {stats:?}");
        }
        drop(rw);
    }
}

/// Envoy's code stats split a cluster's responses by the request's origin: `internal.`
/// for one that carries `x-envoy-internal: true` (an internal peer, by
/// `internal_address_config`), `external.` for the others.
#[test]
fn cluster_codes_are_split_by_the_requests_origin() {
    for driver in drivers() {
        let upstream = Upstream::start(false);
        let route = "              routes:\n              - match: { prefix: /none }\n                route: { cluster: none }\n              - match: { prefix: / }\n                route: { cluster: app }\n";
        let (rw, addr) = start_on(driver, |port, admin| {
            common::envoy::bootstrap((admin, port), route, "", &[("app", upstream.addr.port())])
                .replace(
                    "          stat_prefix: ingress_http\n",
                    "          stat_prefix: ingress_http\n          use_remote_address: true\n          internal_address_config: { cidr_ranges: [{ address_prefix: 127.0.0.1, prefix_len: 32 }] }\n",
                )
                // A cluster with no endpoint: "no healthy upstream".
                + "  - name: none\n    load_assignment:\n      cluster_name: none\n"
        });
        // Envoy charges its "no healthy upstream" 503 as the upstream's code too.
        let none = request(addr, "GET", "/none", &[]);
        assert_eq!(none.status, 503, "{driver}");
        assert!(none.body.starts_with(b"no healthy upstream"), "{driver}");
        // From a loopback peer with no `x-forwarded-for`: internal.
        assert_eq!(request(addr, "GET", "/a", &[]).status, 200, "{driver}");
        // Through a proxy (a chain came): external.
        for _ in 0..2 {
            let chain = [("x-forwarded-for", "203.0.113.9")];
            assert_eq!(request(addr, "GET", "/b", &chain).status, 200, "{driver}");
        }
        rw.wait_for_stat("http.ingress_http.downstream_rq_completed", 4);
        let stats = rw.stats();
        let s = |name: &str| stats.get(name).copied().unwrap_or(0);
        for (name, n) in [
            ("cluster.app.upstream_rq_200", 3),
            ("cluster.app.internal.upstream_rq_200", 1),
            ("cluster.app.internal.upstream_rq_2xx", 1),
            ("cluster.app.internal.upstream_rq_completed", 1),
            ("cluster.app.external.upstream_rq_200", 2),
            ("cluster.app.external.upstream_rq_2xx", 2),
            ("cluster.app.external.upstream_rq_completed", 2),
            ("cluster.none.upstream_rq_503", 1),
            ("cluster.none.internal.upstream_rq_503", 1),
            ("cluster.none.upstream_rq_total", 0),
            ("cluster.none.upstream_cx_none_healthy", 1),
            ("cluster.app.upstream_cx_none_healthy", 0),
        ] {
            assert_eq!(s(name), n, "{driver}: {name}");
        }
        // Their times too (Envoy's `chargeResponseTiming`), each histogram shown once
        // it has a value: the 503 made in the upstream's place has no upstream time.
        let text = String::from_utf8(get(rw.admin, "/stats").unwrap().body).unwrap();
        for name in [
            "app.upstream_rq_time",
            "app.internal.upstream_rq_time",
            "app.external.upstream_rq_time",
        ] {
            assert!(
                text.contains(&format!("\ncluster.{name}: P0(")),
                "{driver}: {name}: {text}"
            );
        }
        for name in [
            "none.internal.upstream_rq_time",
            "none.external.upstream_rq_time",
        ] {
            assert!(
                !text.contains(&format!("cluster.{name}")),
                "{driver}: {name}: {text}"
            );
        }
        let prometheus =
            String::from_utf8(get(rw.admin, "/stats?format=prometheus").unwrap().body).unwrap();
        for (family, n) in [
            ("envoy_cluster_upstream_rq_time_count", 3),
            ("envoy_cluster_internal_upstream_rq_time_count", 1),
            ("envoy_cluster_external_upstream_rq_time_count", 2),
        ] {
            let line = format!("{family}{{envoy_cluster_name=\"app\"}} {n}\n");
            assert!(prometheus.contains(&line), "{driver}: {line}{prometheus}");
        }
        // The listener's own view of its connection manager's responses.
        let listener = format!("listener.127.0.0.1_{}.http.ingress_http.", addr.port());
        for (name, n) in [
            ("downstream_rq_2xx", 3),
            ("downstream_rq_5xx", 1),
            ("downstream_rq_4xx", 0),
            ("downstream_rq_completed", 4),
        ] {
            assert_eq!(
                s(&format!("{listener}{name}")),
                n,
                "{driver}: {name}: {stats:?}"
            );
        }
        drop(rw);
    }
}
