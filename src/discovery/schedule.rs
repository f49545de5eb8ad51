//! The scheduler thread: which cluster is due, its last good addresses, its members.
//!
//! One thread owns every cluster's state, so nothing here is shared: the control thread
//! talks to it by message (`Watch`, `Stop`) and so do the lookup threads (`Done`). A
//! cluster has at most one round in flight; its next round is due `refresh_rate` after
//! the last one answered, or, with `respect_dns_ttl`, after the smallest refresh time
//! of its names (`refresh_after`). Each watched cluster gets a generation number, so the
//! answer of a round started before a reload changed the cluster is recognised and
//! dropped.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use tracing::{debug, info, warn};

use super::{choose, Answer, Lookups, Target, Update};
use crate::{
    config::{Address, DnsDiscovery, DnsKind, LookupFamily},
    stats::names::cluster as cx,
    upstream::{Member, Members},
};

pub(super) enum Message {
    /// Keep exactly these clusters resolved.
    Watch(Vec<Target>),
    /// A round's answers, one per name, in the spec's order.
    Done {
        cluster: String,
        generation: u64,
        answers: Vec<std::io::Result<Answer>>,
    },
    /// The handle was dropped.
    Stop,
}

/// A round for a lookup thread.
struct Job {
    cluster: String,
    generation: u64,
    names: Vec<(String, u16)>,
    /// Resolve with the TTL-aware lookup, for this family.
    respect_ttl: bool,
    family: LookupFamily,
}

/// One watched cluster.
struct Watched {
    target: Target,
    generation: u64,
    /// Per name: its last good addresses (of the wanted family), `None` until one came.
    last_good: Vec<Option<Vec<IpAddr>>>,
    due: Instant,
    in_flight: bool,
    /// The members last reported; `None` until the first round answered.
    reported: Option<Members>,
    /// Whether the last round failed (to log changes, not every failure).
    failing: bool,
}

/// Starts the scheduler and `threads` lookup threads; returns the scheduler's inbox.
pub(super) fn start(
    updates: flume::Sender<Update>,
    lookups: Lookups,
    threads: usize,
) -> std::io::Result<flume::Sender<Message>> {
    let (inbox_tx, inbox) = flume::unbounded();
    let (jobs_tx, jobs) = flume::unbounded::<Job>();
    for i in 0..threads {
        let (jobs, done, lookups) = (jobs.clone(), inbox_tx.clone(), lookups.clone());
        std::thread::Builder::new()
            .name(format!("ringway-dns-{i}"))
            .spawn(move || {
                // Ends when the scheduler drops the job queue.
                for job in jobs.iter() {
                    let answers = job
                        .names
                        .iter()
                        .map(|(host, port)| {
                            if job.respect_ttl {
                                (lookups.with_ttl)(host, job.family)
                            } else {
                                (lookups.plain)(host, *port).map(Answer::untimed)
                            }
                        })
                        .collect();
                    let _ = done.send(Message::Done {
                        cluster: job.cluster,
                        generation: job.generation,
                        answers,
                    });
                }
            })?;
    }
    std::thread::Builder::new()
        .name("ringway-dns".into())
        .spawn(move || Scheduler::default().run(&inbox, &jobs_tx, &updates))?;
    Ok(inbox_tx)
}

#[derive(Default)]
struct Scheduler {
    watched: HashMap<String, Watched>,
    generations: u64,
}

impl Scheduler {
    fn run(
        mut self,
        inbox: &flume::Receiver<Message>,
        jobs: &flume::Sender<Job>,
        updates: &flume::Sender<Update>,
    ) {
        loop {
            let next = self
                .watched
                .values()
                .filter(|w| !w.in_flight)
                .map(|w| w.due)
                .min();
            let message = match next {
                Some(due) => inbox.recv_deadline(due),
                None => inbox
                    .recv()
                    .map_err(|_| flume::RecvTimeoutError::Disconnected),
            };
            match message {
                Ok(Message::Watch(targets)) => self.watch(targets),
                Ok(Message::Done {
                    cluster,
                    generation,
                    answers,
                }) => {
                    if let Some(update) = self.answered(&cluster, generation, answers) {
                        if updates.send(update).is_err() {
                            return;
                        }
                    }
                }
                Ok(Message::Stop) | Err(flume::RecvTimeoutError::Disconnected) => return,
                Err(flume::RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            for (name, w) in &mut self.watched {
                if w.in_flight || w.due > now {
                    continue;
                }
                w.in_flight = true;
                w.target.stats.get(cx::UPDATE_ATTEMPT).inc();
                let names = w
                    .target
                    .spec
                    .names
                    .iter()
                    .map(|n| (n.host.clone(), n.port))
                    .collect();
                let _ = jobs.send(Job {
                    cluster: name.clone(),
                    generation: w.generation,
                    names,
                    respect_ttl: w.target.spec.respect_dns_ttl,
                    family: w.target.spec.family,
                });
            }
        }
    }

    fn watch(&mut self, targets: Vec<Target>) {
        let mut previous = std::mem::take(&mut self.watched);
        for target in targets {
            let kept = previous
                .remove(&target.cluster)
                .filter(|w| w.target.spec == target.spec);
            let watched = match kept {
                Some(mut w) => {
                    w.target.stats = target.stats;
                    w
                }
                None => {
                    self.generations += 1;
                    Watched {
                        last_good: vec![None; target.spec.names.len()],
                        target,
                        generation: self.generations,
                        due: Instant::now(),
                        in_flight: false,
                        reported: None,
                        failing: false,
                    }
                }
            };
            self.watched.insert(watched.target.cluster.clone(), watched);
        }
    }

    /// Takes a round's answers; returns the update to report, if any.
    fn answered(
        &mut self,
        cluster: &str,
        generation: u64,
        answers: Vec<std::io::Result<Answer>>,
    ) -> Option<Update> {
        let w = self
            .watched
            .get_mut(cluster)
            .filter(|w| w.generation == generation)?;
        let spec = &w.target.spec;
        w.in_flight = false;
        let mut failures = Vec::new();
        let mut next = None::<Duration>;
        for ((answer, last), name) in answers.into_iter().zip(&mut w.last_good).zip(&spec.names) {
            let chosen = answer.map(|found| (choose(spec.family, &found.addresses), found.ttl));
            let ttl = match chosen {
                Ok((addresses, ttl)) if !addresses.is_empty() => {
                    *last = Some(addresses);
                    ttl
                }
                Ok(_) => {
                    failures.push(format!("{}: no address of the wanted family", name.host));
                    None
                }
                Err(e) => {
                    failures.push(format!("{}: {e}", name.host));
                    None
                }
            };
            let after = refresh_after(spec, ttl);
            next = Some(next.map_or(after, |n| n.min(after)));
        }
        let now = Instant::now();
        let after = next.unwrap_or(spec.refresh_rate);
        // Checked: a TTL may be up to 68 years, past what some clocks can represent.
        w.due = now
            .checked_add(after)
            .unwrap_or_else(|| now + spec.refresh_rate);
        if spec.respect_dns_ttl {
            debug!(
                cluster,
                "next DNS resolution in {after:?} (respect_dns_ttl)"
            );
        }
        let stats = &w.target.stats;
        if failures.is_empty() {
            stats.get(cx::UPDATE_SUCCESS).inc();
            if w.failing {
                info!(cluster, "DNS resolution recovered");
            }
        } else {
            stats.get(cx::UPDATE_FAILURE).inc();
            if !w.failing {
                warn!(
                    cluster,
                    "DNS resolution failed; last good addresses kept: {}",
                    failures.join("; ")
                );
            }
        }
        w.failing = !failures.is_empty();
        let members = members(&w.target, &w.last_good);
        stats.get(cx::MEMBERSHIP_TOTAL).set(members.len() as u64);
        if w.reported.as_ref() == Some(&members) {
            if failures.is_empty() {
                stats.get(cx::UPDATE_NO_REBUILD).inc();
            }
            return None;
        }
        if w.reported.is_some() {
            stats.get(cx::MEMBERSHIP_CHANGE).inc();
        }
        w.reported = Some(Members::clone(&members));
        Some(Update {
            cluster: cluster.to_owned(),
            spec: spec.clone(),
            members,
        })
    }
}

/// When a name is due again after an answer with `ttl` (`None` after a failure): the TTL
/// with `respect_dns_ttl` unless it is zero or absent, else `refresh_rate` (Envoy).
fn refresh_after(spec: &DnsDiscovery, ttl: Option<Duration>) -> Duration {
    match ttl {
        Some(ttl) if spec.respect_dns_ttl && !ttl.is_zero() => ttl,
        _ => spec.refresh_rate,
    }
}

/// A cluster's endpoints from its names' last good addresses.
fn members(target: &Target, last_good: &[Option<Vec<IpAddr>>]) -> Members {
    let spec = &target.spec;
    let mut members = Vec::new();
    for (name, addresses) in spec.names.iter().zip(last_good) {
        let Some(addresses) = addresses else { continue };
        let hostname: Arc<str> = name.host.as_str().into();
        let locality = Arc::new(name.locality.clone());
        let take = match spec.kind {
            DnsKind::Strict => addresses.len(),
            // Envoy's logical DNS: new connections go to the first address only.
            DnsKind::Logical => 1,
        };
        members.extend(addresses.iter().take(take).map(|ip| Member {
            address: Address::Tcp(SocketAddr::new(*ip, name.port)),
            weight: name.weight,
            hostname: Some(Arc::clone(&hostname)),
            stats: None,
            priority: name.priority,
            locality: Arc::clone(&locality),
            locality_weight: name.locality_weight,
            declared: crate::config::DeclaredHealth::Healthy,
            check_port: name.health_check_port,
        }));
    }
    members.into()
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use super::*;
    use crate::{
        config::{DnsDiscovery, DnsName, LookupFamily},
        discovery::{
            test_server::{Reply, TestServer},
            DnsClient, Lookup,
        },
        stats::Scope,
    };

    type Table = HashMap<&'static str, Vec<IpAddr>>;

    /// A resolver that answers from `phases[phase]`; the test moves `phase` on (a name
    /// missing from the table fails).
    fn phased(phases: Vec<Table>) -> (Lookup, Arc<AtomicUsize>) {
        let phase = Arc::new(AtomicUsize::new(0));
        let now = Arc::clone(&phase);
        let lookup: Lookup = Arc::new(move |host: &str, _port: u16| {
            phases[now.load(Ordering::Relaxed)]
                .get(host)
                .cloned()
                .ok_or_else(|| std::io::Error::other("not found"))
        });
        (lookup, phase)
    }

    /// `plain` for every cluster without `respect_dns_ttl` (the TTL-aware lookup fails).
    fn plain(lookup: Lookup) -> Lookups {
        Lookups {
            plain: lookup,
            with_ttl: Arc::new(|_: &str, _: LookupFamily| Err(std::io::Error::other("unused"))),
        }
    }

    fn table(entries: &[(&'static str, &[&str])]) -> Table {
        entries
            .iter()
            .map(|(name, ips)| (*name, ips.iter().map(|ip| ip.parse().unwrap()).collect()))
            .collect()
    }

    fn target(kind: DnsKind, names: &[&str], scope: &Arc<Scope>) -> Target {
        Target {
            cluster: "orders".into(),
            spec: DnsDiscovery {
                kind,
                refresh_rate: Duration::from_millis(20),
                family: LookupFamily::V4Preferred,
                names: names
                    .iter()
                    .map(|host| DnsName::new((*host).into(), 8080, 2))
                    .collect(),
                respect_dns_ttl: false,
            },
            stats: scope.for_worker(0),
        }
    }

    fn ips(update: &Update) -> Vec<String> {
        update
            .members
            .iter()
            .map(|m| m.address.to_string())
            .collect()
    }

    /// A scheduler on `threads` threads watching one cluster of `names`: the cluster's
    /// stats, its updates and the scheduler's inbox.
    fn watching(
        lookup: Lookup,
        threads: usize,
        kind: DnsKind,
        names: &[&str],
    ) -> (Arc<Scope>, flume::Receiver<Update>, flume::Sender<Message>) {
        let scope = Arc::new(Scope::new("cluster.orders.", &cx::DEFS, 1));
        let (tx, rx) = flume::unbounded();
        let inbox = start(tx, plain(lookup), threads).unwrap();
        inbox
            .send(Message::Watch(vec![target(kind, names, &scope)]))
            .unwrap();
        (scope, rx, inbox)
    }

    #[test]
    fn names_are_resolved_again_and_the_last_good_answer_survives_failures() {
        let (lookup, phase) = phased(vec![
            table(&[("a", &["10.0.0.1", "10.0.0.2"])]),
            table(&[("a", &["10.0.0.1", "10.0.0.2"]), ("b", &["10.0.0.3"])]),
            table(&[("b", &["10.0.0.4"])]),
        ]);
        let (scope, rx, inbox) = watching(lookup, 1, DnsKind::Strict, &["a", "b"]);
        let wait = || rx.recv_timeout(Duration::from_secs(5)).unwrap();
        // The first round is reported although "b" failed.
        let first = wait();
        assert_eq!(ips(&first), ["10.0.0.1:8080", "10.0.0.2:8080"]);
        assert_eq!(first.members[0].weight, 2);
        assert_eq!(first.members[0].hostname.as_deref(), Some("a"));
        // "b" appears: its address joins.
        phase.store(1, Ordering::Relaxed);
        assert_eq!(
            ips(&wait()),
            ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]
        );
        // "a" fails: its last good addresses stay; only a change is reported.
        phase.store(2, Ordering::Relaxed);
        assert_eq!(
            ips(&wait()),
            ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.4:8080"]
        );
        assert!(scope.sum(cx::UPDATE_FAILURE) >= 2);
        assert!(scope.sum(cx::UPDATE_ATTEMPT) >= 3);
        assert_eq!(scope.sum(cx::MEMBERSHIP_TOTAL), 3);
        assert_eq!(scope.sum(cx::MEMBERSHIP_CHANGE), 2);
        inbox.send(Message::Stop).unwrap();
    }

    /// A resolution that succeeds and changes nothing is Envoy's `update_no_rebuild`;
    /// the first, a change and a failure are not.
    #[test]
    fn an_unchanged_answer_counts_as_no_rebuild() {
        let (lookup, phase) = phased(vec![
            table(&[("a", &["10.0.0.1"])]),
            table(&[("a", &["10.0.0.2"])]),
            table(&[]),
        ]);
        let (scope, rx, inbox) = watching(lookup, 1, DnsKind::Strict, &["a"]);
        let wait = || rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(ips(&wait()), ["10.0.0.1:8080"]);
        let settle = |what: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !what() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(what());
        };
        // Rounds of the same answer: each succeeds and rebuilds nothing.
        settle(&|| scope.sum(cx::UPDATE_NO_REBUILD) >= 2);
        phase.store(1, Ordering::Relaxed);
        assert_eq!(ips(&wait()), ["10.0.0.2:8080"]);
        // Failures keep the last good answer: nothing rebuilt, but not a success.
        phase.store(2, Ordering::Relaxed);
        settle(&|| scope.sum(cx::UPDATE_FAILURE) >= 2);
        let before = scope.sum(cx::UPDATE_NO_REBUILD);
        settle(&|| scope.sum(cx::UPDATE_FAILURE) >= 4);
        assert_eq!(scope.sum(cx::UPDATE_NO_REBUILD), before);
        assert_eq!(scope.sum(cx::MEMBERSHIP_CHANGE), 1);
        inbox.send(Message::Stop).unwrap();
    }

    #[test]
    fn a_logical_cluster_uses_the_first_address_and_a_changed_spec_starts_over() {
        let (lookup, _phase) = phased(vec![table(&[
            ("a", &["10.0.0.1", "10.0.0.2"]),
            ("c", &["10.0.0.9"]),
        ])]);
        let (scope, rx, inbox) = watching(lookup, 2, DnsKind::Logical, &["a"]);
        let wait = || rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(ips(&wait()), ["10.0.0.1:8080"]);
        inbox
            .send(Message::Watch(vec![target(
                DnsKind::Logical,
                &["c"],
                &scope,
            )]))
            .unwrap();
        let next = wait();
        assert_eq!(next.spec.names[0].host, "c");
        assert_eq!(ips(&next), ["10.0.0.9:8080"]);
        // Unwatched: nothing more is reported.
        inbox.send(Message::Watch(Vec::new())).unwrap();
        while rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    }

    /// A cluster "orders" of the name `host`, resolved by a [`DnsClient`] of `server`.
    fn ttl_cluster(
        host: &str,
        refresh_rate: Duration,
        respect_dns_ttl: bool,
        scope: &Arc<Scope>,
    ) -> Target {
        Target {
            cluster: "orders".into(),
            spec: DnsDiscovery {
                kind: DnsKind::Strict,
                refresh_rate,
                family: LookupFamily::V4Only,
                names: vec![DnsName::new(host.into(), 8080, 1)],
                respect_dns_ttl,
            },
            stats: scope.for_worker(0),
        }
    }

    fn client_of(server: &TestServer, dir: &std::path::Path) -> Lookups {
        let resolv = dir.join("resolv.conf");
        std::fs::write(
            &resolv,
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .unwrap();
        let client = DnsClient::new(resolv, dir.join("no-hosts")).with_port(server.port);
        Lookups {
            plain: Arc::new(|_: &str, _: u16| Err(std::io::Error::other("unused"))),
            with_ttl: client.into_lookup(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn with_respect_dns_ttl_a_name_is_resolved_again_after_its_ttl() {
        let server = TestServer::start(&[("api.example", Reply::Records(vec![ip("10.0.0.1")], 1))]);
        let dir = tempfile::tempdir().unwrap();
        let scope = Arc::new(Scope::new("cluster.orders.", &cx::DEFS, 1));
        let (tx, rx) = flume::unbounded();
        let inbox = start(tx, client_of(&server, dir.path()), 1).unwrap();
        // The refresh rate is a minute: only the TTL (1 s) can bring the second round.
        let minute = Duration::from_secs(60);
        inbox
            .send(Message::Watch(vec![ttl_cluster(
                "api.example",
                minute,
                true,
                &scope,
            )]))
            .unwrap();
        let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let answered = Instant::now();
        assert_eq!(ips(&first), ["10.0.0.1:8080"]);
        server.set("api.example", Reply::Records(vec![ip("10.0.0.2")], 1));
        let second = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(ips(&second), ["10.0.0.2:8080"]);
        let waited = answered.elapsed();
        assert!(waited >= Duration::from_millis(900), "{waited:?}");
        assert_eq!(server.count("api.example"), 2);
        // Without respect_dns_ttl the plain lookup (getaddrinfo in production) is used:
        // the nameserver is not asked again.
        inbox
            .send(Message::Watch(vec![ttl_cluster(
                "api.example",
                minute,
                false,
                &scope,
            )]))
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(server.count("api.example"), 2);
        inbox.send(Message::Stop).unwrap();
    }

    #[test]
    fn with_respect_dns_ttl_failures_keep_the_last_addresses_and_retry_at_the_refresh_rate() {
        let server =
            TestServer::start(&[("api.example", Reply::Records(vec![ip("10.0.0.1")], 3600))]);
        let dir = tempfile::tempdir().unwrap();
        let scope = Arc::new(Scope::new("cluster.orders.", &cx::DEFS, 1));
        let (tx, rx) = flume::unbounded();
        let inbox = start(tx, client_of(&server, dir.path()), 1).unwrap();
        // A TTL of 0 and failures use the refresh rate (300 ms); an hour's TTL would not.
        let refresh = Duration::from_millis(300);
        server.set("api.example", Reply::Records(vec![ip("10.0.0.1")], 0));
        inbox
            .send(Message::Watch(vec![ttl_cluster(
                "api.example",
                refresh,
                true,
                &scope,
            )]))
            .unwrap();
        assert_eq!(
            ips(&rx.recv_timeout(Duration::from_secs(5)).unwrap()),
            ["10.0.0.1:8080"]
        );
        server.set("api.example", Reply::NxDomain);
        let wait_for = |queries: usize| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while server.count("api.example") < queries {
                assert!(
                    Instant::now() < deadline,
                    "{} queries",
                    server.count("api.example")
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        wait_for(3);
        server.set("api.example", Reply::Silent);
        wait_for(5);
        // No update: the members did not change; the failures were counted.
        assert!(rx.try_recv().is_err());
        assert!(scope.sum(cx::UPDATE_FAILURE) >= 2);
        assert_eq!(scope.sum(cx::MEMBERSHIP_TOTAL), 1);
        server.set("api.example", Reply::Records(vec![ip("10.0.0.2")], 3600));
        let recovered = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(ips(&recovered), ["10.0.0.2:8080"]);
        inbox.send(Message::Stop).unwrap();
    }

    #[test]
    fn the_refresh_time_follows_envoy() {
        let scope = Arc::new(Scope::new("cluster.orders.", &cx::DEFS, 1));
        let rate = Duration::from_secs(5);
        let respecting = ttl_cluster("a", rate, true, &scope).spec;
        let plain = ttl_cluster("a", rate, false, &scope).spec;
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(refresh_after(&respecting, secs(1)), Duration::from_secs(1));
        // Longer than the refresh rate too: the TTL, as Envoy.
        assert_eq!(
            refresh_after(&respecting, secs(600)),
            Duration::from_secs(600)
        );
        assert_eq!(refresh_after(&respecting, secs(0)), rate);
        assert_eq!(refresh_after(&respecting, None), rate);
        assert_eq!(refresh_after(&plain, secs(1)), rate);
    }
}
