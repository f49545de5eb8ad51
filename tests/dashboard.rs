//! `/dashboard` in a real browser: the real binary with an upstream and a rate limit,
//! some requests, then headless Chromium loads the page, runs its polling for a few
//! seconds of virtual time and dumps the DOM (and, separately, a screenshot). The DOM
//! must hold drawn charts (each canvas counts its drawings in `data-drawn`), the
//! numbers `/stats` reports (`data-stat="<name>"` elements), endpoint health, and latency
//! percentiles computed from the histogram buckets of requests sent while the browser
//! polled (on a second listener, so the first one's numbers stay put). Skipped, with the reason
//! printed, where no Chromium is installed (`.ci/run` installs one where it can).

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{upstream::Upstream, *};

/// The first Chromium (or Chrome) on `PATH`.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|candidate| candidate.is_file())
}

/// `public` is left alone while the browser looks (its numbers must equal /stats);
/// `busy` on `busy_port` gets traffic meanwhile (its latency chart must have points).
fn config(port: u16, admin: u16, busy_port: u16, upstream: &str) -> String {
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
listeners:
  - name: busy
    address: 127.0.0.1:{busy_port}
    routes:
      - match: {{ prefix: / }}
        cluster: busy_backend
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ prefix: /limited }}
        direct_response: {{ status: 200 }}
        rate_limit: {{ name: tight, rate: 2/min, burst: 2 }}
      - match: {{ prefix: /teapot }}
        direct_response: {{ status: 418 }}
      - match: {{ prefix: / }}
        cluster: backend
clusters:
  - name: backend
    endpoints: ["{upstream}"]
  - name: busy_backend
    endpoints: ["{upstream}"]
  - name: idle
    endpoints: ["127.0.0.1:9"]
"#
    )
}

/// Runs the browser headless on `url` with `args` (a fresh profile in `profile`) and
/// returns its stdout; fails the test after 90 s.
fn browse(browser: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(browser)
        .args([
            "--headless=new",
            // Tests may run as root (containers), where Chromium's sandbox refuses to start.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,2400",
            // Virtual time: the page's one-second polls run without waiting in real
            // time; fetches still go to the real admin listener.
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().expect("wait chromium") {
            assert!(status.success(), "chromium {args:?} failed: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().expect("stdout reader")
}

/// The `data-points` of chart `id` in the card of `scope`.
fn points_in(dom: &str, scope: &str, id: &str) -> u64 {
    let start = dom.find(&format!(r#"data-scope="{scope}""#)).unwrap();
    let re = regex::Regex::new(&format!(
        r#"<canvas data-chart="{id}"[^>]*data-points="(\d+)""#
    ))
    .unwrap();
    re.captures(&dom[start..])
        .map_or(0, |c| c[1].parse().unwrap())
}

/// The text of the first element carrying `data-stat="<name>"`.
fn shown(dom: &str, name: &str) -> Option<u64> {
    let pattern = format!(r#"data-stat="{}"[^>]*>([^<]*)<"#, regex::escape(name));
    let re = regex::Regex::new(&pattern).unwrap();
    re.captures(dom)?.get(1)?.as_str().trim().parse().ok()
}

/// `(chart id, drawings)` of every canvas the page drew in, within the element whose
/// `data-scope` is `scope` (up to the next card).
fn charts_in(dom: &str, scope: &str) -> Vec<(String, u64)> {
    let start = dom
        .find(&format!(r#"data-scope="{scope}""#))
        .unwrap_or_else(|| panic!("no card {scope:?} in the dashboard:\n{dom}"));
    let rest = &dom[start..];
    let end = rest[1..].find("data-scope=").map_or(rest.len(), |i| i + 1);
    let re = regex::Regex::new(r#"<canvas data-chart="([a-z]+)"[^>]*data-drawn="(\d+)""#).unwrap();
    re.captures_iter(&rest[..end])
        .map(|c| (c[1].to_owned(), c[2].parse().unwrap()))
        .collect()
}

fn attribute(dom: &str, name: &str) -> Option<u64> {
    let re = regex::Regex::new(&format!(r#"<body[^>]*\s{name}="(\d+)""#)).unwrap();
    re.captures(dom)?.get(1)?.as_str().parse().ok()
}

#[test]
fn the_dashboard_draws_what_stats_reports() {
    let Some(browser) = chromium() else {
        eprintln!("SKIP dashboard test: no chromium, chromium-browser or google-chrome on PATH (.ci/run installs chromium with apt-get where it can)");
        return;
    };
    let upstream = Upstream::start(false);
    for driver in drivers() {
        let busy_port = free_port();
        let (rw, addr) = start_on(driver, |p, a| config(p, a, busy_port, &upstream.endpoint()));
        let busy = std::net::SocketAddr::from(([127, 0, 0, 1], busy_port));
        for _ in 0..7 {
            assert_eq!(get(addr, "/x").unwrap().status, 200, "{driver}");
        }
        assert_eq!(get(addr, "/teapot").unwrap().status, 418, "{driver}");
        let limited: Vec<u16> = (0..4)
            .map(|_| get(addr, "/limited").unwrap().status)
            .collect();
        assert_eq!(limited, [200, 200, 429, 429], "{driver}");
        // Counted once each exchange ends, just after the client has its answer.
        assert_eq!(
            rw.wait_for_stat("http.public.downstream_rq_total", 12),
            12,
            "{driver}"
        );
        assert_eq!(
            rw.wait_for_stat("cluster.backend.upstream_rq_completed", 7),
            7
        );

        // The page itself: HTML, self-contained (no external script, style or font).
        let page = get(rw.admin, "/dashboard").unwrap();
        assert_eq!(page.status, 200);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=UTF-8")
        );
        let html = String::from_utf8(page.body).unwrap();
        for external in [
            "<script src",
            "<link",
            "@import",
            "url(",
            "http://",
            "https://",
        ] {
            assert!(!html.contains(external), "the page refers to {external:?}");
        }
        let help = String::from_utf8(get(rw.admin, "/help").unwrap().body).unwrap();
        assert!(help.contains("/dashboard"), "{help}");
        // What the page reads for latency: Envoy's `histogram_buckets=cumulative`.
        let r = get(
            rw.admin,
            "/stats?format=json&histogram_buckets=cumulative&filter=^http%5C.public%5C.downstream_rq_time$",
        )
        .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let buckets = doc["stats"][0]["histograms"][0]["buckets"]
            .as_array()
            .unwrap();
        let last = buckets.last().unwrap();
        assert_eq!(
            (last["upper_bound"].as_f64(), last["cumulative"].as_u64()),
            (Some(3600000.0), Some(12))
        );
        assert_eq!(
            get(rw.admin, "/stats?histogram_buckets=detailed")
                .unwrap()
                .status,
            400
        );

        let profile = tempfile::tempdir().unwrap();
        let url = format!("http://{}/dashboard", rw.admin);
        // Traffic on `busy` while the browser polls (virtual time runs ahead of real time,
        // but each poll is a real request: requests fall between polls).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let traffic = {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = get(busy, "/busy");
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        let dom = browse(&browser, profile.path(), &["--dump-dom"], &url);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        traffic.join().unwrap();
        assert!(
            attribute(&dom, "data-polls").unwrap_or(0) >= 2,
            "{driver}: fewer than 2 polls:\n{dom}"
        );
        let body_tag = &dom[dom.find("<body").unwrap()..];
        let body_tag = &body_tag[..body_tag.find('>').unwrap()];
        assert!(!body_tag.contains("data-error"), "{driver}: {body_tag}");

        // Numbers: exactly what /stats reports (nothing moved since the requests).
        let stats = rw.stats();
        for name in [
            "http.public.downstream_rq_total",
            "http.public.downstream_rq_2xx",
            "http.public.downstream_rq_4xx",
            "cluster.backend.upstream_rq_total",
            "cluster.backend.upstream_rq_2xx",
            "http.public.rate_limit.tight.allowed",
            "http.public.rate_limit.tight.limited",
        ] {
            assert_eq!(
                shown(&dom, name),
                stats.get(name).copied(),
                "{driver}: {name} on the dashboard"
            );
        }
        assert_eq!(shown(&dom, "http.public.downstream_rq_total"), Some(12));
        assert_eq!(shown(&dom, "http.public.rate_limit.tight.limited"), Some(2));

        // Charts: drawn on every poll; latency once the histogram has values.
        let listener = charts_in(&dom, "http:public");
        for chart in ["rate", "classes", "latency", "workers"] {
            assert!(
                listener.iter().any(|(id, n)| id == chart && *n >= 2),
                "{driver}: listener chart {chart} not drawn: {listener:?}"
            );
        }
        let cluster = charts_in(&dom, "cluster:backend");
        for chart in ["rate", "classes", "latency", "overflow"] {
            assert!(
                cluster.iter().any(|(id, n)| id == chart && *n >= 2),
                "{driver}: cluster chart {chart} not drawn: {cluster:?}"
            );
        }
        // Latency percentiles from the bucket counts of the requests between polls.
        assert!(
            points_in(&dom, "http:busy", "latency") > 0,
            "{driver}: no latency points for the busy listener: {:?}",
            charts_in(&dom, "http:busy")
        );
        let limits = charts_in(&dom, "rl:http.public.rate_limit.tight.");
        assert!(limits.iter().any(|(_, n)| *n >= 2), "{driver}: {limits:?}");
        // Endpoint health from /clusters.
        let endpoint = format!(
            r#"data-endpoint="{}" data-health="healthy""#,
            upstream.endpoint()
        );
        assert!(dom.contains(&endpoint), "{driver}: no {endpoint} in\n{dom}");

        // A screenshot of the drawn page: a PNG of the window's size.
        let shot = profile.path().join("dashboard.png");
        browse(
            &browser,
            profile.path(),
            &[&format!("--screenshot={}", shot.display())],
            &url,
        );
        let png = std::fs::read(&shot).expect("screenshot written");
        assert!(
            png.len() > 10_000,
            "{driver}: screenshot of {} bytes",
            png.len()
        );
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{driver}: not a PNG");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        assert_eq!(width, 1280, "{driver}: screenshot width");
    }
}
