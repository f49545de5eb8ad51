//! The admin API as Envoy's users poke it (`../shared/docs/envoy-compat.md` 2.6): Istio's
//! readiness query, a Prometheus scrape parsed by the Python client's parser, the JSON
//! formats parsed by serde_json, Kuma's health-check failure and the POST-only rule;
//! and Envoy's command-line flags.

mod common;

use std::{
    io::Write as _,
    process::{Command, Stdio},
    time::Duration,
};

use common::{upstream::Upstream, *};

const PROMETHEUS_PARSER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/admin/parse_prometheus.py"
);

fn config(port: u16, admin: u16, upstream: &str) -> String {
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
listeners:
  - name: ingress_http
    address: 127.0.0.1:{port}
    routes:
      - match: {{ prefix: / }}
        cluster: backend
clusters:
  - name: backend
    endpoints: ["{upstream}"]
  - name: idle
    endpoints: ["127.0.0.1:9"]
"#
    )
}

fn body(rw: &Ringway, path: &str) -> (u16, String, Option<String>) {
    let r = get(rw.admin, path).unwrap();
    let content_type = r.header("content-type").map(str::to_owned);
    (r.status, String::from_utf8(r.body).unwrap(), content_type)
}

#[test]
fn istios_readiness_query_and_the_stats_parameters() {
    let upstream = Upstream::start(false);
    for driver in drivers() {
        let (rw, addr) = start_on(driver, |p, a| config(p, a, &upstream.endpoint()));
        for _ in 0..3 {
            assert_eq!(get(addr, "/x").unwrap().status, 200);
        }
        // pilot-agent's check: split each line on ':', exactly two parts, a u64 value.
        let (status, text, _) = body(
            &rw,
            r"/stats?usedonly&filter=^(server\.state|listener_manager\.workers_started)",
        );
        assert_eq!(status, 200);
        assert_eq!(
            text,
            "listener_manager.workers_started: 1\nserver.state: 0\n"
        );
        // (Histogram lines, `name: P0(…) …`, are not for that parser: Istio filters them
        // out, as with Envoy.)
        let stats = body(&rw, "/stats").1;
        let numeric = stats
            .lines()
            .filter(|l| !l.contains("(nan,") && !l.ends_with("No recorded values"));
        for line in numeric {
            let parts: Vec<&str> = line.split(':').collect();
            assert_eq!(parts.len(), 2, "{line}");
            parts[1].trim().parse::<u64>().unwrap();
        }
        // Envoy's completed/active stats; a request is counted once its exchange ends,
        // just after the client has its answer.
        let expected = "cluster.backend.upstream_rq_active: 0\ncluster.backend.upstream_rq_completed: 3\nhttp.ingress_http.downstream_rq_completed: 3\n";
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let active = loop {
            let (_, active, _) = body(
                &rw,
                r"/stats?filter=^(cluster\.backend\.upstream_(rq_completed|rq_active)|http\.ingress_http\.downstream_rq_completed)$",
            );
            if active == expected || std::time::Instant::now() > deadline {
                break active;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(active, expected, "{driver}");
        // `usedonly` drops counters that never counted; the filter matches anywhere.
        let (_, used, _) = body(&rw, "/stats?usedonly&filter=cluster%5C.");
        assert!(
            used.contains("cluster.backend.upstream_rq_total: 3\n"),
            "{used}"
        );
        assert!(!used.contains("cluster.idle.upstream_rq_total"), "{used}");
        let (_, all, _) = body(&rw, "/stats?filter=cluster\\.idle\\.upstream_rq_total$");
        assert_eq!(all, "cluster.idle.upstream_rq_total: 0\n");
        let (_, gauges, _) = body(&rw, "/stats?type=Gauges&filter=^server%5C.live$");
        assert_eq!(gauges, "server.live: 1\n");
        assert_eq!(
            body(&rw, "/stats?type=Counters&filter=^server%5C.live$").1,
            ""
        );
        assert_eq!(body(&rw, "/stats?filter=(").0, 400);
        assert_eq!(body(&rw, "/stats?format=html").0, 400);

        // JSON, parsed strictly.
        let (status, json, content_type) = body(&rw, "/stats?format=json&filter=^cluster.backend");
        assert_eq!(status, 200);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        let stats = doc["stats"].as_array().unwrap();
        let total = stats
            .iter()
            .find(|s| s["name"] == "cluster.backend.upstream_rq_total")
            .unwrap();
        assert_eq!(total["value"], 3);

        // Counters read 0 after a reset (POST only); gauges are untouched.
        assert_eq!(get(rw.admin, "/reset_counters").unwrap().status, 400);
        assert_eq!(post(rw.admin, "/reset_counters").unwrap().status, 200);
        let (_, after, _) = body(
            &rw,
            r"/stats?filter=^(cluster\.backend\.upstream_rq_total|server\.live)$",
        );
        assert_eq!(
            after,
            "cluster.backend.upstream_rq_total: 0\nserver.live: 1\n"
        );
        // A counter that counted before the reset is still used (Envoy's `used` flag
        // outlives a reset); one that never counted is not.
        let (_, used, _) = body(&rw, r"/stats?usedonly&filter=upstream_rq_total$");
        assert_eq!(used, "cluster.backend.upstream_rq_total: 0\n", "{driver}");
        assert_eq!(get(addr, "/x").unwrap().status, 200);
        let (_, counted, _) = body(&rw, r"/stats?filter=^cluster\.backend\.upstream_rq_total$");
        assert_eq!(counted, "cluster.backend.upstream_rq_total: 1\n");
    }
}

#[test]
fn a_prometheus_scrape_parses_with_envoys_families_and_tags() {
    if !python_module("prometheus_client", "prometheus_client") {
        eprintln!("SKIP Prometheus parser check: python3 cannot import prometheus_client and pip could not install it");
        return;
    }
    let upstream = Upstream::start(false);
    for driver in drivers() {
        scrape_parses(driver, &upstream);
    }
}

fn scrape_parses(driver: &str, upstream: &Upstream) {
    let (rw, addr) = start_on(driver, |p, a| config(p, a, &upstream.endpoint()));
    for _ in 0..4 {
        assert_eq!(get(addr, "/x").unwrap().status, 200);
    }
    // Counted when each exchange ends, just after the client has its answer.
    rw.wait_for_stat("cluster.backend.upstream_rq_completed", 4);
    rw.wait_for_stat("http.ingress_http.downstream_rq_completed", 4);
    let (status, text, content_type) = body(&rw, "/stats/prometheus");
    assert_eq!(status, 200);
    assert_eq!(
        content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=UTF-8")
    );
    // Two scrapes agree but for the process's memory, which moves between them.
    let steady = |t: &str| -> String {
        t.lines()
            .filter(|l| !l.starts_with("envoy_server_memory"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        steady(&body(&rw, "/stats?format=prometheus").1),
        steady(&text)
    );
    let mut parser = Command::new("python3")
        .arg(PROMETHEUS_PARSER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    parser
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = parser.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |name: &str, labels: &[(&str, &str)]| -> Option<(f64, String)> {
        samples.iter().find_map(|s| {
            // The parser names a counter family without `_total` and gives every
            // counter sample a `_total` name: compare families.
            let family = name.strip_suffix("_total").unwrap_or(name);
            let matches = s["family"] == family
                && labels.iter().all(|(k, v)| s["labels"][*k] == *v)
                && s["labels"].as_object().unwrap().len() == labels.len();
            matches.then(|| {
                (
                    s["value"].as_f64().unwrap(),
                    s["type"].as_str().unwrap().to_owned(),
                )
            })
        })
    };
    assert_eq!(
        find(
            "envoy_cluster_upstream_rq_total",
            &[("envoy_cluster_name", "backend")]
        ),
        Some((4.0, "counter".into()))
    );
    assert_eq!(
        find(
            "envoy_cluster_upstream_rq_xx",
            &[
                ("envoy_response_code_class", "2"),
                ("envoy_cluster_name", "backend")
            ]
        ),
        Some((4.0, "counter".into()))
    );
    assert_eq!(
        find(
            "envoy_http_downstream_rq_xx",
            &[
                ("envoy_response_code_class", "2"),
                ("envoy_http_conn_manager_prefix", "ingress_http")
            ]
        ),
        Some((4.0, "counter".into()))
    );
    assert_eq!(find("envoy_server_live", &[]), Some((1.0, "gauge".into())));
    assert_eq!(
        find("envoy_server_concurrency", &[]),
        Some((2.0, "gauge".into()))
    );
    assert!(find(
        "envoy_listener_worker_downstream_cx_total",
        &[
            ("envoy_worker_id", "0"),
            ("envoy_listener_address", "ingress_http")
        ]
    )
    .is_some());
    // Filtered and used-only scrapes stay parseable subsets.
    let (_, some, _) = body(&rw, "/stats/prometheus?usedonly&filter=^cluster");
    assert!(some.contains("envoy_cluster_upstream_rq_total{envoy_cluster_name=\"backend\"} 4\n"));
    assert!(!some.contains("envoy_server_live"));
    assert!(
        !some.contains("envoy_cluster_name=\"idle\"} 0\n# TYPE envoy_cluster_upstream_rq_total")
    );
}

#[test]
fn server_info_healthcheck_fail_and_the_post_only_rule() {
    let upstream = Upstream::start(false);
    for driver in drivers() {
        server_info_and_healthcheck(driver, &upstream);
    }
}

fn server_info_and_healthcheck(driver: &str, upstream: &Upstream) {
    let (port, admin) = (free_port(), free_port());
    let rw = Ringway::start(
        &config(port, admin, &upstream.endpoint()),
        admin,
        &[
            "--driver",
            driver,
            "--service-node",
            "sidecar~10.0.0.1~app",
            "--service-cluster",
            "app",
            "--drain-time-s",
            "7",
            "--disable-hot-restart",
        ],
    );
    let (status, json, content_type) = body(&rw, "/server_info");
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let info: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(info["state"], "LIVE");
    assert_eq!(info["version"].as_str().unwrap().split('/').count(), 5);
    let options = &info["command_line_options"];
    assert_eq!(options["concurrency"], 2);
    assert_eq!(options["drain_time"], "7s");
    assert_eq!(options["mode"], "Serve");
    assert_eq!(options["disable_hot_restart"], true);
    assert_eq!(options["base_id"], "0", "uint64 is a string in proto3 JSON");
    assert_eq!(info["node"]["id"], "sidecar~10.0.0.1~app");
    assert_eq!(info["node"]["cluster"], "app");
    assert!(info["uptime_current_epoch"]
        .as_str()
        .unwrap()
        .ends_with('s'));

    // Kuma's sequence: fail health checks (POST, 200), /ready turns 503 DRAINING while
    // traffic is still served; ok undoes it. A GET changes nothing.
    assert_eq!(get(rw.admin, "/healthcheck/fail").unwrap().status, 400);
    assert_eq!(get(rw.admin, "/ready").unwrap().status, 200);
    assert_eq!(post(rw.admin, "/healthcheck/fail").unwrap().status, 200);
    let ready = get(rw.admin, "/ready").unwrap();
    assert_eq!(
        (ready.status, ready.body.as_slice()),
        (503, &b"DRAINING\n"[..])
    );
    let (_, state, _) = body(&rw, r"/stats?filter=^server\.(live|state)$");
    assert_eq!(state, "server.live: 0\nserver.state: 1\n");
    assert_eq!(
        get(([127, 0, 0, 1], port).into(), "/x").unwrap().status,
        200
    );
    assert_eq!(post(rw.admin, "/healthcheck/ok").unwrap().status, 200);
    assert_eq!(get(rw.admin, "/ready").unwrap().status, 200);
    for path in [
        "/quitquitquit",
        "/drain_listeners",
        "/reload",
        "/healthcheck/ok",
        "/reopen_logs",
    ] {
        assert_eq!(get(rw.admin, path).unwrap().status, 400, "{path}");
    }
    // Envoy's `/memory`: its fields, 64-bit numbers as strings, the heap's and the
    // resident set's the same figures `server.memory_*` report.
    let (status, json, content_type) = body(&rw, "/memory");
    assert_eq!(
        (status, content_type.as_deref()),
        (200, Some("application/json"))
    );
    let memory: serde_json::Value = serde_json::from_str(&json).unwrap();
    let number = |field: &str| -> u64 {
        let text = memory[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}: {json}"));
        text.parse().unwrap()
    };
    assert!(number("allocated") > 0 && number("heap_size") >= number("allocated"));
    assert!(number("total_physical_bytes") > 0);
    for field in ["pageheap_unmapped", "pageheap_free", "total_thread_cache"] {
        assert_eq!(number(field), 0, "{field}");
    }
    // Envoy's `server.initialization_time_ms`: one value, from the start to serving.
    let prometheus = body(&rw, "/stats?format=prometheus").1;
    assert!(
        prometheus.contains("envoy_server_initialization_time_ms_count{} 1\n"),
        "{prometheus}"
    );
    let stats = rw.stats();
    for name in [
        "server.debug_assertion_failures",
        "server.envoy_bug_failures",
        "server.dropped_stat_flushes",
        "cluster_manager.warming_clusters",
        "cluster_manager.cluster_updated",
    ] {
        assert_eq!(stats.get(name), Some(&0), "{name}");
    }
    // Nothing changes it at run time: refused by name.
    let modify = post(rw.admin, "/runtime_modify?foo=bar").unwrap();
    assert_eq!(modify.status, 503);
    assert!(String::from_utf8_lossy(&modify.body).starts_with("runtime_modify is not supported"));
    // A native config has no runtime layers.
    let (status, runtime, _) = body(&rw, "/runtime");
    assert_eq!(status, 200);
    let runtime: serde_json::Value = serde_json::from_str(&runtime).unwrap();
    assert_eq!(runtime, serde_json::json!({ "layers": [], "entries": {} }));
    // The hot-restart version, as Envoy's: "disabled" with --disable-hot-restart; the
    // admin's, `/server_info`'s and the flag's (on standard error, no line end) agree.
    let (status, version, _) = body(&rw, "/hot_restart_version");
    assert_eq!((status, version.as_str()), (200, "disabled"));
    assert_eq!(info["hot_restart_version"], "disabled");
    let flag = |args: &[&str]| {
        let out = Command::new(bin()).args(args).output().unwrap();
        assert!(out.status.success() && out.stdout.is_empty());
        String::from_utf8(out.stderr).unwrap()
    };
    assert_eq!(
        flag(&["--hot-restart-version", "--disable-hot-restart"]),
        "disabled"
    );
    let enabled = flag(&["--hot-restart-version"]);
    assert!(
        enabled.starts_with("ringway.") && !enabled.ends_with('\n'),
        "{enabled}"
    );
    let help = body(&rw, "/help").1;
    assert!(help.contains("/stats/prometheus"), "{help}");
    assert_eq!(body(&rw, "/nope").0, 404);
}

#[test]
fn envoys_command_line_flags() {
    let run = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .output()
            .expect("run ringway")
    };
    // `--version`: Envoy's line, five `/`-separated fields (Kuma checks the count).
    let out = run(&["--version"]);
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let version = line.trim().strip_prefix("ringway version: ").unwrap();
    assert_eq!(version.split('/').count(), 5, "{line}");

    // An unknown flag is an error naming it; the Envoy loader's flags on a native
    // config are a mistake, said so (tests/envoy.rs covers them on bootstraps).
    let out = run(&["--no-such-flag", "-c", "x.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    let config = write_config(&direct_config(free_port(), free_port()));
    let path = config.path.to_str().unwrap();
    let out = run(&["-c", path, "--config-yaml", "admin: {}"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--config-yaml applies to Envoy bootstraps; this is a native config"));
    let out = run(&["-c", path, "--allow-unknown-static-fields"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "--allow-unknown-static-fields applies to Envoy bootstraps; this is a native config"
    ));

    // What pilot-agent, kuma-dp and Consul pass is accepted.
    let tolerated = [
        "--mode",
        "validate",
        "-c",
        path,
        "--base-id",
        "3",
        "--use-dynamic-base-id",
        "--service-cluster",
        "c",
        "--service-node",
        "n",
        "--service-zone",
        "z",
        "--local-address-ip-version",
        "v4",
        "--file-flush-interval-msec",
        "1000",
        "--log-format",
        "[%Y] %v",
        "--component-log-level",
        "upstream:debug",
        "--drain-strategy",
        "immediate",
        "--parent-shutdown-time-s",
        "60",
        "--disable-hot-restart",
        "--enable-core-dump",
        "--cpuset-threads",
        "--skip-deprecated-logs",
        "--log-level",
        "warning",
        "--drain-time-s",
        "45",
        "--concurrency",
        "2",
        "--restart-epoch",
        "0",
        "--reject-unknown-dynamic-fields",
        "--ignore-unknown-dynamic-fields",
    ];
    let out = run(&tolerated);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `--admin-address-path` gets the bound address; `--log-path` gets the logs.
    let dir = tempfile::tempdir().unwrap();
    let (address_file, log_file) = (dir.path().join("admin"), dir.path().join("log"));
    let (port, admin) = (free_port(), free_port());
    let rw = Ringway::start(
        &direct_config(port, admin),
        admin,
        &[
            "--admin-address-path",
            address_file.to_str().unwrap(),
            "--log-path",
            log_file.to_str().unwrap(),
            "--log-level",
            "info",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&address_file).unwrap(),
        format!("127.0.0.1:{admin}")
    );
    drop(rw);
    std::thread::sleep(Duration::from_millis(100));
    let logs = std::fs::read_to_string(&log_file).unwrap();
    assert!(logs.contains("ringway ready"), "{logs}");
}

#[test]
fn latency_histograms_in_every_format() {
    let upstream = Upstream::start(false);
    for driver in drivers() {
        let (rw, addr) = start_on(driver, |p, a| config(p, a, &upstream.endpoint()));
        // Four requests the upstream answers after 60 ms, on one keep-alive connection.
        let mut conn = std::io::BufReader::new(connect(addr).unwrap());
        for _ in 0..4 {
            conn.get_mut()
                .write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\nx-delay-ms: 60\r\n\r\n")
                .unwrap();
            assert_eq!(read_response(&mut conn, false).unwrap().status, 200);
        }
        drop(conn);
        // Recorded when each request completes, on the worker: poll until all four show.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let text = loop {
            let (_, text, _) = body(&rw, r"/stats?filter=_time$|_connect_ms$");
            if text.contains("downstream_rq_time: P0") || std::time::Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {text}"))
                .to_owned()
        };
        // Envoy's text form: ten quantiles, `nan` for the interval ringway does not keep.
        let rq = line("http.ingress_http.downstream_rq_time:");
        assert_eq!(rq.matches("(nan,").count(), 10, "{rq}");
        let p50: f64 = rq
            .split("P50(nan,")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((55.0..200.0).contains(&p50), "{driver}: {rq}");
        let up = line("cluster.backend.upstream_rq_time:");
        assert!(up.contains("P100(nan,"), "{up}");
        assert!(line("cluster.backend.upstream_cx_connect_ms:").contains("P0(nan,"));
        // An idle cluster: its connection histograms are there, empty (Envoy's cluster
        // stats); `upstream_rq_time` is not, as Envoy makes it on first use.
        assert_eq!(
            line("cluster.idle.upstream_cx_connect_ms:"),
            "cluster.idle.upstream_cx_connect_ms: No recorded values"
        );
        assert!(!text.contains("cluster.idle.upstream_rq_time"), "{text}");
        // `usedonly` drops histograms that recorded nothing; `type=Histograms` keeps only them.
        let (_, used, _) = body(&rw, "/stats?usedonly&type=Histograms");
        assert!(!used.contains("cluster.idle."), "{used}");
        assert!(used.lines().all(|l| l.contains("(nan,")), "{used}");
        // Prometheus: Envoy's buckets, cumulative, with `_sum` and `_count`.
        let (_, prom, _) = body(
            &rw,
            "/stats/prometheus?filter=backend%5C.upstream_rq_time%24",
        );
        assert!(
            prom.starts_with("# TYPE envoy_cluster_upstream_rq_time histogram\n"),
            "{prom}"
        );
        assert!(prom.contains("envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"backend\",le=\"50\"} 0\n"), "{prom}");
        assert!(prom.contains("envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"backend\",le=\"250\"} 4\n"), "{prom}");
        assert!(prom.contains("envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"backend\",le=\"+Inf\"} 4\n"), "{prom}");
        assert!(
            prom.contains(
                "envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"backend\"} 4\n"
            ),
            "{prom}"
        );
        // JSON: quantiles under Envoy's `histograms` element.
        let (_, json, _) = body(
            &rw,
            "/stats?format=json&type=Histograms&filter=downstream_rq_time",
        );
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        let histograms = &doc["stats"][0]["histograms"];
        assert_eq!(histograms["supported_quantiles"][2], 50.0);
        let computed = &histograms["computed_quantiles"][0];
        assert_eq!(computed["name"], "http.ingress_http.downstream_rq_time");
        assert!(computed["values"][2]["interval"].is_null());
        assert!(computed["values"][2]["cumulative"].as_f64().unwrap() >= 55.0);
    }
}

#[test]
fn listeners_and_logging() {
    for driver in drivers() {
        listeners_and_logging_on(driver);
    }
}

fn listeners_and_logging_on(driver: &str) {
    let (port, admin) = (free_port(), free_port());
    let yaml = format!(
        "workers: 1\nadmin: 127.0.0.1:{admin}\nlisteners:\n  - name: public\n    address: 127.0.0.1:{port}\n    routes: [{{ match: {{ prefix: / }}, direct_response: {{ status: 200 }} }}]\n  - name: any_port\n    address: 127.0.0.1:0\n    routes: [{{ match: {{ prefix: / }}, direct_response: {{ status: 200, body: any }} }}]\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("log");
    let rw = Ringway::start(
        &yaml,
        admin,
        &[
            "--driver",
            driver,
            "--log-level",
            "info",
            "--log-path",
            log_file.to_str().unwrap(),
        ],
    );
    // A port 0 is shown as bound, in Envoy's `<name>::<address>` lines.
    let (_, text, _) = body(&rw, "/listeners");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("public::127.0.0.1:{port}"));
    let any: std::net::SocketAddr = lines[1]
        .strip_prefix("any_port::")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(any.port(), 0);
    assert_eq!(get(any, "/").unwrap().body, b"any");
    let (_, json, _) = body(&rw, "/listeners?format=json");
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["listener_statuses"][0]["name"], "public");
    assert_eq!(
        doc["listener_statuses"][1]["local_address"]["socket_address"]["port_value"],
        any.port()
    );

    // /logging: POST only; lists, then sets the level at run time.
    assert_eq!(get(rw.admin, "/logging").unwrap().status, 400);
    let listed = post(rw.admin, "/logging").unwrap();
    assert_eq!(
        String::from_utf8(listed.body).unwrap(),
        "active loggers:\n  ringway: info\n"
    );
    assert_eq!(post(rw.admin, "/logging?level=loud").unwrap().status, 400);
    assert_eq!(
        post(rw.admin, "/logging?upstream=debug").unwrap().status,
        400
    );
    let set = post(rw.admin, "/logging?level=warning").unwrap();
    assert_eq!(set.status, 200);
    assert_eq!(
        String::from_utf8(set.body).unwrap(),
        "active loggers:\n  ringway: warning\n"
    );
    // Info lines stop: a reload logs one at info, none now.
    let before = std::fs::read_to_string(&log_file).unwrap();
    assert!(before.contains("ringway ready"), "{before}");
    assert_eq!(post(rw.admin, "/reload").unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(100));
    let after = std::fs::read_to_string(&log_file).unwrap();
    assert_eq!(before, after, "an info line was written at level warning");
    assert_eq!(
        post(rw.admin, "/logging?paths=ringway:info")
            .unwrap()
            .status,
        200
    );
    assert_eq!(post(rw.admin, "/reload").unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(100));
    let again = std::fs::read_to_string(&log_file).unwrap();
    assert!(
        again.len() > after.len() && again.contains("config reloaded"),
        "{again}"
    );
}

#[test]
fn clusters_lists_every_host_with_its_stats() {
    let upstream = Upstream::start(false);
    for driver in drivers() {
        let (rw, addr) = start_on(driver, |p, a| config(p, a, &upstream.endpoint()));
        // Three requests on one keep-alive connection, one answered 503 by the upstream.
        let mut conn = std::io::BufReader::new(connect(addr).unwrap());
        for status in ["200", "200", "503"] {
            let request =
                format!("GET /x HTTP/1.1\r\nHost: t\r\nx-respond-status: {status}\r\n\r\n");
            conn.get_mut().write_all(request.as_bytes()).unwrap();
            read_response(&mut conn, false).unwrap();
        }
        let host = upstream.endpoint();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let text = loop {
            let (status, text, _) = body(&rw, "/clusters");
            assert_eq!(status, 200);
            // The last request is counted once its exchange ends, just after the
            // client has its answer.
            if text.contains(&format!("backend::{host}::rq_error::1\n"))
                || std::time::Instant::now() > deadline
            {
                break text;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for line in [
            "backend::default_priority::max_connections::1024".to_owned(),
            "backend::high_priority::max_retries::3".to_owned(),
            "backend::added_via_api::false".to_owned(),
            format!("backend::{host}::cx_active::1"),
            format!("backend::{host}::cx_connect_fail::0"),
            format!("backend::{host}::cx_total::1"),
            format!("backend::{host}::rq_active::0"),
            format!("backend::{host}::rq_error::1"),
            format!("backend::{host}::rq_success::2"),
            format!("backend::{host}::rq_total::3"),
            format!("backend::{host}::health_flags::healthy"),
            format!("backend::{host}::weight::1"),
            "idle::127.0.0.1:9::rq_total::0".to_owned(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{driver}: {line} in\n{text}"
            );
        }
        // The cluster counts the same open connection (kept in the pool).
        let (_, cx, _) = body(&rw, r"/stats?filter=^cluster\.backend\.upstream_cx_active$");
        assert_eq!(cx, "cluster.backend.upstream_cx_active: 1\n", "{driver}");
        // Every line has Envoy's `<cluster>::…::<value>` shape.
        assert!(text.lines().all(|l| l.split("::").count() >= 3), "{text}");
        let (_, json, content_type) = body(&rw, "/clusters?format=json");
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        let backend = &doc["cluster_statuses"][0];
        assert_eq!(backend["name"], "backend");
        let status = &backend["host_statuses"][0];
        assert_eq!(
            status["address"]["socket_address"]["port_value"],
            upstream.addr.port()
        );
        let stat = |name: &str| {
            status["stats"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == name)
                .cloned()
                .unwrap()
        };
        assert_eq!(stat("rq_success")["value"], "2");
        assert_eq!(stat("cx_active")["type"], "GAUGE");
        assert_eq!(status["health_status"]["eds_health_status"], "HEALTHY");
        // The connection closes: cx_active goes back to 0.
        drop(conn);
        let deadline = std::time::Instant::now() + Duration::from_secs(8);
        let closed = format!("backend::{host}::cx_active::0");
        while !body(&rw, "/clusters").1.lines().any(|l| l == closed) {
            assert!(
                std::time::Instant::now() < deadline,
                "{driver}: cx_active stays up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let (_, cx, _) = body(&rw, r"/stats?filter=^cluster\.backend\.upstream_cx_active$");
        assert_eq!(cx, "cluster.backend.upstream_cx_active: 0\n", "{driver}");
    }
}
