//! DNS clusters end to end: ringway runs in a mount namespace of its own where the
//! test's file is `/etc/hosts` (and `hosts: files` is the whole `nsswitch.conf`), so the
//! test decides what a name resolves to, and changes it while ringway runs. Upstreams
//! listen on the same port of 127.0.0.1 and 127.0.0.2, so an answer tells which address
//! a name resolved to. Skipped, with the reason printed, where unprivileged namespaces
//! are not allowed.

mod common;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use common::{drivers, free_port, get, upstream::Upstream, Ringway};

/// The `/etc/hosts` ringway sees.
struct Hosts {
    _dir: tempfile::TempDir,
    hosts: PathBuf,
    nsswitch: PathBuf,
}

impl Hosts {
    /// A hosts file, if this machine lets the test give ringway one.
    fn new() -> Option<Hosts> {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        let nsswitch = dir.path().join("nsswitch.conf");
        std::fs::write(&hosts, "").unwrap();
        std::fs::write(&nsswitch, "hosts: files\n").unwrap();
        let this = Hosts {
            _dir: dir,
            hosts,
            nsswitch,
        };
        let probe = Command::new("unshare")
            .args(["-Urm", "sh", "-c", &format!("{} && true", this.mounts())])
            .output();
        match probe {
            Ok(out) if out.status.success() => Some(this),
            Ok(out) => {
                eprintln!(
                    "SKIP DNS tests: cannot bind-mount a hosts file in a user and mount namespace (`unshare -Urm`): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIP DNS tests: `unshare` is not available: {e}");
                None
            }
        }
    }

    fn mounts(&self) -> String {
        format!(
            "mount --bind {} /etc/hosts && mount --bind {} /etc/nsswitch.conf",
            self.hosts.display(),
            self.nsswitch.display()
        )
    }

    /// Rewrites the file in place (the bind mount follows the inode, not the name).
    fn set(&self, lines: &str) {
        std::fs::write(&self.hosts, lines).unwrap();
    }

    /// Starts ringway on `yaml(port, admin)` in the namespace.
    fn start(&self, driver: &str, yaml: impl FnOnce(u16, u16) -> String) -> (Ringway, SocketAddr) {
        let (port, admin) = (free_port(), free_port());
        let rw = Ringway::start_after(
            &yaml(port, admin),
            admin,
            &["--driver", driver],
            &["unshare", "-Urm", "sh"],
            &self.mounts(),
        );
        (rw, ([127, 0, 0, 1], port).into())
    }
}

/// Two upstreams on the same port of 127.0.0.1 and 127.0.0.2.
fn twins() -> (Upstream, Upstream) {
    loop {
        let a = Upstream::start_at("127.0.0.1:0").unwrap();
        if let Ok(b) = Upstream::start_at(&format!("127.0.0.2:{}", a.addr.port())) {
            return (a, b);
        }
    }
}

fn config(port: u16, admin: u16, cluster: &str, route_keys: &str) -> String {
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ prefix: / }}
        cluster: orders
{route_keys}clusters:
  - name: orders
    dns_refresh_rate: 50ms
{cluster}"#
    )
}

/// Sends requests until `upstream` sees one (up to 5 s); each answer must be 200.
fn until_seen_by(addr: SocketAddr, upstream: &Upstream) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = get(addr, "/orders").unwrap();
        assert_eq!(response.status, 200);
        if upstream
            .seen
            .recv_timeout(Duration::from_millis(20))
            .is_ok()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the upstream saw no request in 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn drain(upstream: &Upstream) -> usize {
    std::iter::from_fn(|| upstream.seen.recv_timeout(Duration::from_millis(200)).ok()).count()
}

#[test]
fn a_strict_dns_cluster_follows_its_name_and_keeps_the_last_answer_when_resolution_fails() {
    let Some(hosts) = Hosts::new() else { return };
    for driver in drivers() {
        let (a, b) = twins();
        let target = a.addr.port();
        hosts.set("127.0.0.1 orders.test\n");
        let (rw, addr) = hosts.start(driver, |port, admin| {
            config(
                port,
                admin,
                &format!("    endpoints: [\"orders.test:{target}\"]\n"),
                "",
            )
        });
        // Resolved before ringway was ready: the first request lands.
        assert_eq!(get(addr, "/orders").unwrap().status, 200);
        a.next_seen();
        assert_eq!(rw.stat("cluster.orders.membership_total"), 1);

        // The name moves: requests follow within a few refreshes.
        hosts.set("127.0.0.2 orders.test\n");
        until_seen_by(addr, &b);
        assert!(rw.stat("cluster.orders.membership_change") >= 1);
        // `/clusters` lists the new address, with the name it was resolved from.
        let clusters = String::from_utf8(get(rw.admin, "/clusters").unwrap().body).unwrap();
        let host = format!("orders::127.0.0.2:{target}::");
        assert!(
            clusters.contains(&format!("{host}hostname::orders.test\n")),
            "{clusters}"
        );
        assert!(
            !clusters.contains(&format!("orders::127.0.0.1:{target}::")),
            "{clusters}"
        );
        drain(&a);

        // The name disappears: the last good address keeps serving.
        let failures = rw.stat("cluster.orders.update_failure");
        hosts.set("");
        rw.wait_for_stat("cluster.orders.update_failure", failures + 2);
        for _ in 0..5 {
            assert_eq!(get(addr, "/orders").unwrap().status, 200, "{driver}");
        }
        assert_eq!(drain(&b), 5);
        assert_eq!(drain(&a), 0);
        assert_eq!(rw.stat("cluster.orders.membership_total"), 1);
        assert!(rw.stat("cluster.orders.update_attempt") >= 3);
    }
}

#[test]
fn strict_dns_balances_over_every_address_and_logical_dns_uses_the_first() {
    let Some(hosts) = Hosts::new() else { return };
    for driver in drivers() {
        let (a, b) = twins();
        let target = a.addr.port();
        hosts.set("127.0.0.1 orders.test\n127.0.0.2 orders.test\n");
        let (strict, strict_addr) = hosts.start(driver, |port, admin| {
            config(
                port,
                admin,
                &format!("    endpoints: [\"orders.test:{target}\"]\n"),
                "",
            )
        });
        assert_eq!(strict.stat("cluster.orders.membership_total"), 2);
        for _ in 0..8 {
            assert_eq!(get(strict_addr, "/").unwrap().status, 200);
        }
        let (to_a, to_b) = (drain(&a), drain(&b));
        assert_eq!(to_a + to_b, 8);
        assert!(to_a >= 2 && to_b >= 2, "{driver}: {to_a} and {to_b}");
        drop(strict);

        let (logical, logical_addr) = hosts.start(driver, |port, admin| {
            config(
                port,
                admin,
                &format!("    discovery: logical_dns\n    endpoints: [\"orders.test:{target}\"]\n"),
                "",
            )
        });
        assert_eq!(logical.stat("cluster.orders.membership_total"), 1);
        for _ in 0..6 {
            assert_eq!(get(logical_addr, "/").unwrap().status, 200);
        }
        assert_eq!((drain(&a), drain(&b)), (6, 0), "{driver}");
    }
}

#[test]
fn a_name_that_does_not_resolve_yet_answers_503_until_it_does() {
    let Some(hosts) = Hosts::new() else { return };
    for driver in drivers() {
        let a = Upstream::start(false);
        let target = a.addr.port();
        hosts.set("");
        let (rw, addr) = hosts.start(driver, |port, admin| {
            config(
                port,
                admin,
                &format!("    endpoints: [\"late.test:{target}\"]\n"),
                "        auto_host_rewrite: true\n",
            )
        });
        let response = get(addr, "/").unwrap();
        assert_eq!(response.status, 503, "{driver}");
        assert!(rw.stat("cluster.orders.update_failure") >= 1);
        assert_eq!(rw.stat("cluster.orders.membership_total"), 0);

        hosts.set("127.0.0.1 late.test\n");
        let deadline = Instant::now() + Duration::from_secs(5);
        while get(addr, "/").unwrap().status != 200 {
            assert!(Instant::now() < deadline, "{driver}: still no endpoint");
            std::thread::sleep(Duration::from_millis(20));
        }
        // An endpoint host rewrite sends the name it was resolved from (Envoy's
        // auto_host_rewrite for DNS clusters).
        let seen = a.next_seen();
        assert_eq!(seen.header("host").as_deref(), Some("late.test"));
    }
}

#[test]
fn a_reload_that_changes_the_name_resolves_it_before_serving() {
    let Some(hosts) = Hosts::new() else { return };
    for driver in drivers() {
        let (a, b) = twins();
        let target = a.addr.port();
        hosts.set("127.0.0.1 one.test\n127.0.0.2 two.test\n");
        let (rw, addr) = hosts.start(driver, |port, admin| {
            config(
                port,
                admin,
                &format!("    endpoints: [\"one.test:{target}\"]\n"),
                "",
            )
        });
        assert_eq!(get(addr, "/").unwrap().status, 200);
        a.next_seen();
        let text = std::fs::read_to_string(rw.config_path()).unwrap();
        std::fs::write(rw.config_path(), text.replace("one.test", "two.test")).unwrap();
        let reload = common::post(rw.admin, "/reload").unwrap();
        assert_eq!(reload.status, 200, "{driver}");
        // The first request after the reload already goes to the new name.
        assert_eq!(get(addr, "/").unwrap().status, 200);
        b.next_seen();
        assert_eq!(drain(&a), 0);
    }
}

/// A traced request to a DNS cluster: its attempt's span names the endpoint by its
/// name (OpenTelemetry's `server.address` prefers the domain name; Zipkin's `http.url`
/// shows it), with the port it resolved to.
#[test]
fn an_attempt_span_names_a_dns_endpoint_by_its_name() {
    use common::collector::{Collector, Mode};
    let Some(hosts) = Hosts::new() else { return };
    for driver in drivers() {
        let app = Upstream::start_at("127.0.0.1:0").unwrap();
        let collector = Collector::start(Mode::Normal);
        hosts.set("127.0.0.1 orders.test\n");
        let (app_port, collector_addr) = (app.addr.port(), collector.addr());
        let (rw, addr) = hosts.start(driver, |port, admin| {
            format!(
                r#"workers: 1
admin: 127.0.0.1:{admin}
tracing:
  provider: zipkin
  collector: {{ cluster: collector }}
  flush_interval: 100ms
listeners:
  - name: public
    address: 127.0.0.1:{port}
    tracing: {{ sampling: 100% }}
    routes:
      - match: {{ prefix: / }}
        cluster: orders
clusters:
  - name: orders
    endpoints: ["orders.test:{app_port}"]
  - name: collector
    endpoints: ["{collector_addr}"]
"#
            )
        });
        assert_eq!(get(addr, "/orders?x=1").unwrap().status, 200);
        let posted = collector.wait_for(1, Duration::from_secs(10));
        let spans: Vec<serde_json::Value> = posted
            .iter()
            .flat_map(|r| serde_json::from_slice::<Vec<serde_json::Value>>(&r.body).unwrap())
            .collect();
        let attempt = spans
            .iter()
            .find(|s| s["kind"] == "CLIENT")
            .unwrap_or_else(|| panic!("{driver}: no attempt span: {spans:?}"));
        assert_eq!(
            attempt["tags"]["http.url"],
            format!("http://orders.test:{app_port}/orders?x=1"),
            "{driver}"
        );
        assert_eq!(
            attempt["tags"]["upstream_address"],
            format!("127.0.0.1:{app_port}"),
            "{driver}: Envoy's tag keeps the address"
        );
        drop(rw);
    }
}
