//! The health thread and its prober threads.
//!
//! As DNS discovery does (`discovery::schedule`), one scheduler thread owns all state
//! and everything talks to it by message: the control thread (`Watch`), workers
//! (`Observed`, through [`Reporter`]s) and the prober threads (`Probed`). Each loop it
//! takes every message waiting, starts the checks that are due (one in flight per
//! host), runs the outlier intervals that are due, and sends one [`HealthEvent`] per
//! cluster whose flags changed, so a burst of results makes one event, not many.
//!
//! Probes block (up to the check's `timeout`), so they run on prober threads: two at
//! first, one more whenever every prober is busy and a check is due (up to
//! [`MAX_PROBERS`]), so a host that hangs holds one thread for its timeout and delays
//! no other check. A probe's answer carries the id it was started with; an answer for
//! a host that left, or was started before a reload restarted the host's checks, is
//! dropped.
//!
//! Reloads and DNS changes (`watch`): a member whose cluster name and address persist
//! keeps its flags, counters, schedule, in-flight probe and outlier state; a new member
//! of a cluster with a check starts FAILED_ACTIVE_HC | PENDING_ACTIVE_HC and is checked
//! at once (after its `initial_jitter`). A cluster that gains a check starts its hosts
//! the same way; one that loses it clears their check flags; one that loses outlier
//! detection brings its ejected hosts back.
//!
//! No traffic (Envoy: the cluster "has never had traffic routed to it", its
//! `upstream_cx_total` never used): until any member's `rq_total` host stat is above
//! zero, checks run at `no_traffic_interval`; once seen, the cluster counts as having
//! had traffic for good, as in Envoy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info};

use super::checker::{self, Session, Transition};
use super::outlier::{Change, Counts, Detector, HostOutlier};
use super::probe::{self, CheckConnection, Report};
use super::stats as st;
use super::{HealthCheck, HealthEvent, HealthFlags, Observation, Observed, Reporter, Watched};
use crate::config::Address;
use crate::stats::names::host as hx;
use crate::stats::WorkerScope;
use crate::upstream::Members;

/// Probers started with the service.
const MIN_PROBERS: usize = 2;
/// The most probers: as many hosts may hang at once without delaying other checks.
pub const MAX_PROBERS: usize = 64;

pub(super) enum Message {
    Watch(Vec<Watched>),
    Observed(Observation),
    Probed {
        cluster: String,
        address: Address,
        id: u64,
        report: Report,
        /// The host's check connection, back for its next check.
        connection: CheckConnection,
    },
    Stop,
}

/// A check for a prober thread.
struct Job {
    cluster: String,
    address: Address,
    target: Address,
    check: Arc<HealthCheck>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The TLS server name to send and verify (the workers' choice for the endpoint).
    server_name: Option<String>,
    id: u64,
    /// The host's kept check connection (`reuse_connection`).
    connection: CheckConnection,
}

/// The handle of the health threads; they stop when it is dropped.
#[derive(Debug)]
pub struct HealthService {
    inbox: flume::Sender<Message>,
}

impl HealthService {
    /// Starts the health thread and its first probers; events go to `events`.
    pub fn start(events: flume::Sender<HealthEvent>) -> std::io::Result<HealthService> {
        let (inbox_tx, inbox) = flume::unbounded();
        let (jobs_tx, jobs) = flume::unbounded::<Job>();
        let mut probers = Probers {
            jobs: jobs.clone(),
            done: inbox_tx.clone(),
            started: 0,
        };
        for _ in 0..MIN_PROBERS {
            probers.spawn()?;
        }
        let scheduler = Scheduler {
            clusters: HashMap::new(),
            rng: fastrand::Rng::new(),
            ids: 0,
            in_flight: 0,
            probers,
        };
        std::thread::Builder::new()
            .name("ringway-health".into())
            .spawn(move || scheduler.run(&inbox, &jobs_tx, &events))?;
        Ok(HealthService { inbox: inbox_tx })
    }

    /// Exactly these clusters from now on (start, reload, DNS member change). State of
    /// an endpoint whose cluster name and address persist is kept (module note).
    pub fn watch(&self, clusters: Vec<Watched>) {
        let _ = self.inbox.send(Message::Watch(clusters));
    }

    /// A handle for workers to report what they see.
    pub fn reporter(&self) -> Reporter {
        Reporter {
            inbox: self.inbox.clone(),
        }
    }
}

impl Drop for HealthService {
    fn drop(&mut self) {
        let _ = self.inbox.send(Message::Stop);
    }
}

struct Probers {
    jobs: flume::Receiver<Job>,
    done: flume::Sender<Message>,
    started: usize,
}

impl Probers {
    fn spawn(&mut self) -> std::io::Result<()> {
        let (jobs, done) = (self.jobs.clone(), self.done.clone());
        std::thread::Builder::new()
            .name(format!("ringway-hc-{}", self.started))
            .spawn(move || {
                // Ends when the scheduler drops the job queue.
                for mut job in jobs.iter() {
                    let tls = job.tls.as_ref().map(|t| (t, job.server_name.as_deref()));
                    let connection = &mut job.connection;
                    let report =
                        probe::probe(&job.check, &job.cluster, &job.target, tls, connection);
                    let _ = done.send(Message::Probed {
                        cluster: job.cluster,
                        address: job.address,
                        id: job.id,
                        report,
                        connection: job.connection,
                    });
                }
            })?;
        self.started += 1;
        Ok(())
    }
}

/// One member.
struct Host {
    address: Address,
    /// Where checks go (the check port applied).
    target: Address,
    declared: HealthFlags,
    /// The active checker's flags.
    checked: HealthFlags,
    session: Session,
    /// When the next check is due; `None` without a check or while one is in flight.
    due: Option<Instant>,
    in_flight: Option<u64>,
    /// The check connection between checks (it travels with a check in flight).
    connection: CheckConnection,
    outlier: HostOutlier,
}

impl Host {
    fn flags(&self) -> HealthFlags {
        let mut flags = self.checked | self.declared;
        flags.set(HealthFlags::FAILED_OUTLIER_CHECK, self.outlier.is_ejected());
        flags
    }
}

struct Cluster {
    name: String,
    members: Members,
    check: Option<Arc<HealthCheck>>,
    detector: Option<Detector>,
    next_outlier: Option<Instant>,
    stats: Option<WorkerScope>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The cluster's fixed TLS server name (`sni`), if any.
    server_name: Option<String>,
    hosts: Vec<Host>,
    by_address: HashMap<Address, usize>,
    traffic: bool,
    /// What the last event said; `None` before the first.
    reported: Option<(Vec<HealthFlags>, bool)>,
    /// The earliest change since the last event.
    changed_at: Option<Instant>,
    /// The observation time of a consecutive-error ejection not reported yet.
    latency_from: Option<Instant>,
}

impl Cluster {
    fn count(&self, index: usize) {
        if let Some(stats) = &self.stats {
            stats.get(index).inc();
        }
    }

    fn changed(&mut self, at: Instant) {
        self.changed_at = Some(self.changed_at.map_or(at, |t| t.min(at)));
    }

    fn first_round_done(&self) -> bool {
        self.hosts
            .iter()
            .all(|h| !h.checked.contains(HealthFlags::PENDING_ACTIVE_HC))
    }

    fn set_gauges(&self) {
        let Some(stats) = &self.stats else { return };
        if self.check.is_some() {
            let healthy = self
                .hosts
                .iter()
                .filter(|h| !h.checked.contains(HealthFlags::FAILED_ACTIVE_HC))
                .count();
            let degraded = self
                .hosts
                .iter()
                .filter(|h| h.checked.contains(HealthFlags::DEGRADED_ACTIVE_HC))
                .count();
            stats.get(st::HC_HEALTHY).set(healthy as u64);
            stats.get(st::HC_DEGRADED).set(degraded as u64);
        }
        let ejected = self.hosts.iter().filter(|h| h.outlier.is_ejected()).count();
        stats.get(st::OD_EJECTIONS_ACTIVE).set(ejected as u64);
    }

    /// Whether the cluster has ever had traffic (sticky, as Envoy's).
    fn had_traffic(&mut self) -> bool {
        if !self.traffic {
            self.traffic = self
                .members
                .iter()
                .filter_map(|m| m.stats.as_ref())
                .any(|s| s.sum(hx::RQ_TOTAL) > 0);
        }
        self.traffic
    }

    fn log_change(&self, i: usize, before: HealthFlags, why: &str) {
        let host = &self.hosts[i];
        let after = host.flags();
        if before != after {
            info!(
                cluster = %self.name,
                address = %host.address,
                from = %before,
                to = %after,
                why,
                "upstream health changed"
            );
        }
    }
}

struct Scheduler {
    clusters: HashMap<String, Cluster>,
    rng: fastrand::Rng,
    ids: u64,
    in_flight: usize,
    probers: Probers,
}

impl Scheduler {
    fn run(
        mut self,
        inbox: &flume::Receiver<Message>,
        jobs: &flume::Sender<Job>,
        events: &flume::Sender<HealthEvent>,
    ) {
        loop {
            let message = match self.next_due() {
                Some(due) => inbox.recv_deadline(due),
                None => inbox
                    .recv()
                    .map_err(|_| flume::RecvTimeoutError::Disconnected),
            };
            let mut message = match message {
                Ok(m) => Some(m),
                Err(flume::RecvTimeoutError::Timeout) => None,
                Err(flume::RecvTimeoutError::Disconnected) => return,
            };
            // Everything waiting, then the work that is due, then one event per cluster.
            while let Some(m) = message.take() {
                if !self.handle(m) {
                    return;
                }
                message = inbox.try_recv().ok();
            }
            let now = Instant::now();
            self.start_checks(now, jobs);
            self.outlier_intervals(now);
            if !self.send_events(events) {
                return;
            }
        }
    }

    /// Handles one message; false on `Stop`.
    fn handle(&mut self, message: Message) -> bool {
        match message {
            Message::Watch(list) => self.watch(list, Instant::now()),
            Message::Observed(o) => self.observed(&o),
            Message::Probed {
                cluster,
                address,
                id,
                report,
                connection,
            } => {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.probed(&cluster, &address, id, &report, connection, Instant::now());
            }
            Message::Stop => return false,
        }
        true
    }

    fn next_due(&self) -> Option<Instant> {
        self.clusters
            .values()
            .flat_map(|c| c.hosts.iter().filter_map(|h| h.due).chain(c.next_outlier))
            .min()
    }

    fn watch(&mut self, list: Vec<Watched>, now: Instant) {
        let mut previous = std::mem::take(&mut self.clusters);
        for w in list {
            let old = previous.remove(&w.name);
            let cluster = self.build(w, old, now);
            self.clusters.insert(cluster.name.clone(), cluster);
        }
        // Clusters left in `previous` are no longer watched: dropped with their state.
    }

    fn build(&mut self, w: Watched, old: Option<Cluster>, now: Instant) -> Cluster {
        let check = w.check.map(Arc::new);
        let (mut old_hosts, old_check, old_detector, old_next, traffic) = match old {
            Some(c) => (c.hosts, c.check, c.detector, c.next_outlier, c.traffic),
            None => (Vec::new(), None, None, None, false),
        };
        let mut taken = vec![false; old_hosts.len()];
        let mut hosts = Vec::with_capacity(w.members.len());
        for (i, member) in w.members.iter().enumerate() {
            let target = match (w.check_ports.get(i).copied().flatten(), &member.address) {
                (Some(port), Address::Tcp(addr)) => {
                    Address::Tcp(std::net::SocketAddr::new(addr.ip(), port))
                }
                _ => member.address.clone(),
            };
            let declared = w.declared.get(i).copied().unwrap_or_default();
            let kept = old_hosts
                .iter()
                .enumerate()
                .position(|(j, h)| !taken[j] && h.address == member.address);
            let mut host = match kept {
                Some(j) => {
                    taken[j] = true;
                    let placeholder = Host {
                        address: member.address.clone(),
                        target: target.clone(),
                        declared,
                        checked: HealthFlags::empty(),
                        session: Session::new(),
                        due: None,
                        in_flight: None,
                        connection: CheckConnection::default(),
                        outlier: HostOutlier::default(),
                    };
                    let mut host = std::mem::replace(&mut old_hosts[j], placeholder);
                    if host.target != target {
                        // The check port changed: the kept connection goes elsewhere.
                        host.connection = CheckConnection::default();
                    }
                    host.target = target;
                    host.declared = declared;
                    host
                }
                None => Host {
                    address: member.address.clone(),
                    target,
                    declared,
                    checked: HealthFlags::empty(),
                    session: Session::new(),
                    due: None,
                    in_flight: None,
                    connection: CheckConnection::default(),
                    outlier: HostOutlier::default(),
                },
            };
            let new_host = kept.is_none();
            match (&check, old_check.is_some() && !new_host) {
                // Checked before and now: keep everything.
                (Some(_), true) => {}
                // Newly checked (a new host, or a cluster that gained a check).
                (Some(c), false) => {
                    host.checked = checker::INITIAL;
                    host.session = Session::new();
                    host.in_flight = None;
                    host.connection = CheckConnection::default();
                    host.due = Some(now + checker::initial_delay(c, &mut self.rng));
                }
                // No check: no connection kept for one.
                (None, _) => {
                    host.checked.remove(checker::OWNED);
                    host.session = Session::new();
                    host.in_flight = None;
                    host.connection = CheckConnection::default();
                    host.due = None;
                }
            }
            if w.outlier.is_none() {
                host.outlier = HostOutlier::default();
            }
            hosts.push(host);
        }
        let detector = w.outlier.map(|config| match old_detector {
            Some(mut d) => {
                d.set_config(config);
                d
            }
            None => Detector::new(config, self.rng.fork()),
        });
        let next_outlier = detector.as_ref().map(|d| {
            let next = now + d.config().interval;
            old_next.map_or(next, |old| old.min(next))
        });
        let by_address = hosts
            .iter()
            .enumerate()
            .rev()
            .map(|(i, h)| (h.address.clone(), i))
            .collect();
        let cluster = Cluster {
            name: w.name,
            members: w.members,
            check,
            detector,
            next_outlier,
            stats: w.stats,
            tls: w.tls,
            server_name: w.server_name,
            hosts,
            by_address,
            traffic,
            // Every watch ends in an event, even when no flag changed: the control
            // thread rebuilt this cluster's host set from the config and must hear
            // the verdicts again (a reload that changed the check, say).
            reported: None,
            changed_at: Some(now),
            latency_from: None,
        };
        cluster.set_gauges();
        cluster
    }

    fn start_checks(&mut self, now: Instant, jobs: &flume::Sender<Job>) {
        for cluster in self.clusters.values_mut() {
            let Some(check) = &cluster.check else {
                continue;
            };
            for (i, host) in cluster.hosts.iter_mut().enumerate() {
                if host.due.is_none_or(|due| due > now) {
                    continue;
                }
                self.ids += 1;
                host.due = None;
                host.in_flight = Some(self.ids);
                if let Some(stats) = &cluster.stats {
                    stats.get(st::HC_ATTEMPT).inc();
                }
                if self.in_flight >= self.probers.started && self.probers.started < MAX_PROBERS {
                    if let Err(e) = self.probers.spawn() {
                        debug!(error = %e, "cannot start another health check thread");
                    }
                }
                self.in_flight += 1;
                let _ = jobs.send(Job {
                    cluster: cluster.name.clone(),
                    address: host.address.clone(),
                    target: host.target.clone(),
                    check: Arc::clone(check),
                    tls: cluster.tls.clone(),
                    // As the workers name the endpoint: the cluster's `sni`, else the
                    // name it was resolved from, else its address.
                    server_name: cluster
                        .server_name
                        .clone()
                        .or_else(|| Some(cluster.members.get(i)?.hostname.as_deref()?.to_owned())),
                    id: self.ids,
                    connection: std::mem::take(&mut host.connection),
                });
            }
        }
    }

    fn probed(
        &mut self,
        cluster: &str,
        address: &Address,
        id: u64,
        report: &Report,
        connection: CheckConnection,
        now: Instant,
    ) {
        let Some(c) = self.clusters.get_mut(cluster) else {
            return;
        };
        let Some(&i) = c.by_address.get(address) else {
            return;
        };
        // An answer for a check that is no longer the host's (it left, or a reload
        // restarted its checks) is dropped, its connection closed with it.
        if c.hosts[i].in_flight != Some(id) {
            return;
        }
        c.hosts[i].in_flight = None;
        c.hosts[i].connection = connection;
        let Some(check) = c.check.clone() else { return };
        let before = c.hosts[i].flags();
        let host = &mut c.hosts[i];
        let t = host
            .session
            .on_result(&mut host.checked, report.outcome, &check);
        let passed = report.outcome.passed();
        if passed {
            c.count(st::HC_SUCCESS);
        } else {
            c.count(st::HC_FAILURE);
            if report.outcome.is_network() {
                c.count(st::HC_NETWORK_FAILURE);
            }
            if check.always_log_failures {
                info!(cluster = %c.name, address = %c.hosts[i].address, why = %report.detail, "health check failed");
            } else {
                debug!(cluster = %c.name, address = %c.hosts[i].address, why = %report.detail, "health check failed");
            }
        }
        let mut why = report.detail.clone();
        if passed && !c.hosts[i].checked.contains(HealthFlags::FAILED_ACTIVE_HC) {
            if let Some(d) = &mut c.detector {
                let stats = c.stats.as_ref();
                if with_outliers(&mut c.hosts, |o| d.active_check_passed(o, i, now, stats)) {
                    why.push_str("; active check passed, outlier ejection ended");
                }
            }
        }
        let traffic = c.had_traffic();
        c.hosts[i].due = Some(now + checker::next_delay(&check, passed, t, traffic, &mut self.rng));
        if before != c.hosts[i].flags() || t == Transition::Changed {
            c.log_change(i, before, &why);
            c.changed(now);
            c.set_gauges();
        }
    }

    fn observed(&mut self, o: &Observation) {
        let Some(c) = self.clusters.get_mut(&*o.cluster) else {
            return;
        };
        let Some(&i) = c.by_address.get(&o.address) else {
            return;
        };
        let before = c.hosts[i].flags();
        match o.what {
            Observed::ImmediateFail => {
                // Envoy acts on it only in clusters with an active check.
                let Some(check) = c.check.clone() else { return };
                let host = &mut c.hosts[i];
                host.session.on_immediate_fail(&mut host.checked, &check);
                c.count(st::HC_FAILURE);
                c.count(st::HC_PASSIVE_FAILURE);
                if before != c.hosts[i].flags() {
                    c.log_change(
                        i,
                        before,
                        "x-envoy-immediate-health-check-fail on a response",
                    );
                    c.changed(o.at);
                    c.set_gauges();
                }
            }
            Observed::Failure { .. } | Observed::Reset => {
                let Some(d) = &mut c.detector else { return };
                let stats = c.stats.as_ref();
                let ejected = with_outliers(&mut c.hosts, |hosts| {
                    d.observe(hosts, i, o.worker, &o.what, o.at, stats)
                });
                if let Some(kind) = ejected {
                    c.log_change(i, before, kind.name());
                    c.changed(o.at);
                    c.latency_from = Some(o.at);
                    c.set_gauges();
                }
            }
        }
    }

    fn outlier_intervals(&mut self, now: Instant) {
        for c in self.clusters.values_mut() {
            let (Some(d), Some(next)) = (&mut c.detector, c.next_outlier) else {
                continue;
            };
            if next > now {
                continue;
            }
            c.next_outlier = Some(now + d.config().interval);
            let counts: Vec<Option<Counts>> = c
                .members
                .iter()
                .map(|m| {
                    m.stats.as_ref().map(|s| Counts {
                        success: s.sum(hx::RQ_SUCCESS),
                        error: s.sum(hx::RQ_ERROR),
                        timeout: s.sum(hx::RQ_TIMEOUT),
                        connect_fail: s.sum(hx::CX_CONNECT_FAIL),
                    })
                })
                .collect();
            let before: Vec<HealthFlags> = c.hosts.iter().map(Host::flags).collect();
            let stats = c.stats.as_ref();
            let changes = with_outliers(&mut c.hosts, |hosts| d.tick(hosts, &counts, now, stats));
            for (i, change) in changes {
                let why = match change {
                    Change::Ejected(kind) => kind.name(),
                    Change::Unejected => "ejection time over",
                };
                c.log_change(i, before[i], why);
                c.changed(now);
            }
            c.set_gauges();
        }
    }

    /// One event per cluster whose flags changed; false when nobody listens any more.
    fn send_events(&mut self, events: &flume::Sender<HealthEvent>) -> bool {
        for c in self.clusters.values_mut() {
            let Some(at) = c.changed_at.take() else {
                continue;
            };
            let flags: Vec<HealthFlags> = c.hosts.iter().map(Host::flags).collect();
            let done = c.first_round_done();
            if c.reported.as_ref() == Some(&(flags.clone(), done)) {
                continue;
            }
            let event = HealthEvent::Flags {
                cluster: c.name.clone(),
                flags: c
                    .hosts
                    .iter()
                    .zip(&flags)
                    .map(|(h, f)| (h.address.clone(), *f))
                    .collect(),
                at,
                first_round_done: done,
            };
            // Measured as the event leaves (set first, so a reader of the event sees it).
            if let (Some(from), Some(stats)) = (c.latency_from.take(), &c.stats) {
                let us = u64::try_from(from.elapsed().as_micros()).unwrap_or(u64::MAX);
                stats.get(st::OD_DETECTION_LATENCY_US).set(us.max(1));
            }
            if events.send(event).is_err() {
                return false;
            }
            c.reported = Some((flags, done));
        }
        true
    }
}

/// Runs `f` over the hosts' outlier states as one slice (the detector's view).
fn with_outliers<R>(hosts: &mut [Host], f: impl FnOnce(&mut [HostOutlier]) -> R) -> R {
    let mut outliers: Vec<HostOutlier> = hosts
        .iter_mut()
        .map(|h| std::mem::take(&mut h.outlier))
        .collect();
    let result = f(&mut outliers);
    for (host, outlier) in hosts.iter_mut().zip(outliers) {
        host.outlier = outlier;
    }
    result
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
    use std::time::Duration;

    use super::*;
    use crate::health::checker::tests::check;
    use crate::health::probe::tests::{answer, responder};
    use crate::health::{HealthCheckKind, HttpCheck, OutlierDetection};
    use crate::stats::Scope;
    use crate::upstream::Member;

    type F = HealthFlags;

    fn members(addrs: &[Address]) -> Members {
        addrs.iter().map(|a| Member::plain(a.clone())).collect()
    }

    fn http_check(every: Duration) -> HealthCheck {
        let mut c = check(2, 2);
        c.interval = every;
        c.no_traffic_interval = every;
        c.timeout = Duration::from_millis(300);
        c.kind = HealthCheckKind::Http(HttpCheck {
            host: None,
            path: "/healthz".into(),
            method: "GET".into(),
            expected_statuses: vec![(200, 201)],
            retriable_statuses: Vec::new(),
            request_headers: Vec::new(),
            remove_headers: Vec::new(),
        });
        c
    }

    /// The next event for `cluster` whose flags satisfy `want`, within 10 s.
    fn wait_for(
        events: &flume::Receiver<HealthEvent>,
        want: impl Fn(&[(Address, HealthFlags)], bool) -> bool,
    ) -> (Vec<(Address, HealthFlags)>, bool, Instant) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let Ok(HealthEvent::Flags {
                flags,
                first_round_done,
                at,
                ..
            }) = events.recv_deadline(deadline)
            else {
                panic!("no matching event; saw {seen:?}");
            };
            if want(&flags, first_round_done) {
                return (flags, first_round_done, at);
            }
            seen.push((flags, first_round_done));
        }
    }

    #[test]
    fn active_checks_flip_flags_as_the_endpoint_stops_answering_and_comes_back() {
        // 0: answer 200; 1: never answer; 2: 503.
        let mode = Arc::new(AtomicU8::new(0));
        let m = Arc::clone(&mode);
        let (addr, _heads) = responder(move |_| match m.load(Relaxed) {
            0 => Some(answer(200, "")),
            1 => None,
            _ => Some(answer(503, "")),
        });
        let (tx, events) = flume::unbounded();
        let service = HealthService::start(tx).unwrap();
        let scope = Arc::new(Scope::new("cluster.api.", &st::DEFS, 1));
        let address = Address::Tcp(addr);
        service.watch(vec![Watched {
            check: Some(http_check(Duration::from_millis(30))),
            stats: Some(scope.for_worker(0)),
            ..Watched::new("api", members(std::slice::from_ref(&address)))
        }]);
        let (flags, done, _) = wait_for(&events, |_, _| true);
        assert_eq!(flags, [(address.clone(), checker::INITIAL)]);
        assert!(!done);
        // The first success makes it healthy at once (healthy_threshold 2 notwithstanding).
        let (_, done, _) = wait_for(&events, |f, _| f[0].1 == F::empty());
        assert!(done);
        assert_eq!(scope.sum(st::HC_HEALTHY), 1);
        // Two timeouts (unhealthy_threshold 2) fail it.
        mode.store(1, Relaxed);
        wait_for(&events, |f, _| {
            f[0].1 == F::FAILED_ACTIVE_HC | F::ACTIVE_HC_TIMEOUT
        });
        assert!(scope.sum(st::HC_NETWORK_FAILURE) >= 2);
        assert_eq!(scope.sum(st::HC_HEALTHY), 0);
        // Back, after two successes.
        mode.store(0, Relaxed);
        wait_for(&events, |f, _| f[0].1 == F::empty());
        // A 503 fails it at once.
        mode.store(2, Relaxed);
        wait_for(&events, |f, _| f[0].1 == F::FAILED_ACTIVE_HC);
        assert!(scope.sum(st::HC_ATTEMPT) >= scope.sum(st::HC_SUCCESS) + 3);

        // A reload that keeps the endpoint keeps its state; a new one starts pending.
        mode.store(0, Relaxed);
        wait_for(&events, |f, _| f[0].1 == F::empty());
        let other = Address::Tcp(addr);
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let closed = Address::Tcp(closed);
        service.watch(vec![Watched {
            check: Some(http_check(Duration::from_millis(30))),
            ..Watched::new("api", members(&[other.clone(), closed.clone()]))
        }]);
        let (flags, done, _) = wait_for(&events, |f, _| f.len() == 2);
        assert_eq!(
            flags,
            [
                (other.clone(), F::empty()),
                (closed.clone(), checker::INITIAL)
            ]
        );
        assert!(!done);
        let (flags, done, _) = wait_for(&events, |f, _| f[1].1 != checker::INITIAL);
        assert_eq!(flags, [(other, F::empty()), (closed, F::FAILED_ACTIVE_HC)]);
        assert!(done);
        drop(service);
    }

    #[test]
    fn a_hanging_endpoint_does_not_delay_the_others() {
        let (hang, _h) = responder(|_| None);
        let (ok, _o) = responder(|_| Some(answer(200, "")));
        let (tx, events) = flume::unbounded();
        let service = HealthService::start(tx).unwrap();
        let mut c = http_check(Duration::from_millis(20));
        c.timeout = Duration::from_secs(5);
        let hosts = [Address::Tcp(hang), Address::Tcp(ok)];
        // Several hanging clusters take probers; the healthy host is still checked.
        let mut watched: Vec<Watched> = (0..(MIN_PROBERS + 2))
            .map(|i| Watched {
                check: Some(c.clone()),
                ..Watched::new(format!("hang{i}"), members(&hosts[..1]))
            })
            .collect();
        watched.push(Watched {
            check: Some(c.clone()),
            ..Watched::new("ok", members(&hosts[1..]))
        });
        service.watch(watched);
        let started = Instant::now();
        loop {
            let event = events
                .recv_timeout(Duration::from_secs(3))
                .expect("an event");
            let HealthEvent::Flags { cluster, flags, .. } = event;
            if cluster == "ok" && flags[0].1 == F::empty() {
                break;
            }
        }
        // Well before the hanging checks' 5 s timeout.
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn consecutive_errors_from_two_workers_eject_and_the_interval_brings_the_host_back() {
        let (tx, events) = flume::unbounded();
        let service = HealthService::start(tx).unwrap();
        let scope = Arc::new(Scope::new("cluster.api.", &st::DEFS, 1));
        let a: Address = "10.0.0.1:80".parse().unwrap();
        let b: Address = "10.0.0.2:80".parse().unwrap();
        service.watch(vec![Watched {
            outlier: Some(OutlierDetection {
                consecutive_5xx: 3,
                interval: Duration::from_millis(20),
                base_ejection_time: Duration::from_millis(150),
                max_ejection_percent: 50,
                ..OutlierDetection::default()
            }),
            stats: Some(scope.for_worker(0)),
            declared: vec![F::empty(), F::DEGRADED_EDS_HEALTH],
            ..Watched::new("api", members(&[a.clone(), b.clone()]))
        }]);
        let (flags, done, _) = wait_for(&events, |_, _| true);
        assert_eq!(
            flags,
            [(a.clone(), F::empty()), (b.clone(), F::DEGRADED_EDS_HEALTH)]
        );
        assert!(done, "no check: nothing to wait for");
        let reporter = service.reporter();
        let cluster: Arc<str> = Arc::from("api");
        let report = |worker, n: u32| {
            reporter.report(Observation {
                cluster: Arc::clone(&cluster),
                address: a.clone(),
                worker,
                what: Observed::Failure {
                    consecutive_5xx: n,
                    consecutive_gateway: 0,
                    consecutive_local: 0,
                },
                at: Instant::now(),
            });
        };
        report(0, 1);
        report(1, 1);
        let sent = Instant::now();
        report(1, 2);
        let (flags, _, at) = wait_for(&events, |f, _| f[0].1 != F::empty());
        assert_eq!(flags[0].1, F::FAILED_OUTLIER_CHECK);
        assert!(at >= sent, "at is the observation's time");
        assert_eq!(scope.sum(st::OD_EJECTIONS_ACTIVE), 1);
        assert_eq!(scope.sum(st::OD_ENFORCED_CONSECUTIVE_5XX), 1);
        let latency = scope.sum(st::OD_DETECTION_LATENCY_US);
        assert!(latency > 0 && latency < 5_000_000, "{latency}");
        wait_for(&events, |f, _| f[0].1 == F::empty());
        assert!(sent.elapsed() >= Duration::from_millis(150));
        assert_eq!(scope.sum(st::OD_EJECTIONS_ACTIVE), 0);
    }

    #[test]
    fn an_immediate_fail_report_excludes_a_checked_host() {
        let (addr, _heads) = responder(|_| Some(answer(200, "")));
        let (tx, events) = flume::unbounded();
        let service = HealthService::start(tx).unwrap();
        let address = Address::Tcp(addr);
        let mut c = http_check(Duration::from_secs(30));
        c.healthy_threshold = 1;
        service.watch(vec![Watched {
            check: Some(c),
            ..Watched::new("api", members(std::slice::from_ref(&address)))
        }]);
        wait_for(&events, |f, done| done && f[0].1 == F::empty());
        service.reporter().report(Observation {
            cluster: Arc::from("api"),
            address: address.clone(),
            worker: 3,
            what: Observed::ImmediateFail,
            at: Instant::now(),
        });
        let (flags, _, _) = wait_for(&events, |_, _| true);
        assert_eq!(
            flags,
            [(
                address,
                F::FAILED_ACTIVE_HC | F::EXCLUDED_VIA_IMMEDIATE_HC_FAIL
            )]
        );
        assert_eq!(flags[0].1.usability(), crate::balance::Usability::Excluded);
    }
}
