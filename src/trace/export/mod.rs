//! The span exporter: one thread (`ringway-trace-export`) that turns the workers'
//! batches into export requests and POSTs them to each tracer's collector.
//!
//! Design: the workers' half is [`super::sink`]; this thread receives their full or
//! timed-out [`SpanBatch`]es on one bounded channel, takes what else is already queued
//! (up to [`MAX_GROUP`] batches), groups them by tracer, encodes one request per tracer
//! ([`otlp`]: OTLP/HTTP protobuf; [`zipkin`]: Zipkin v2 JSON) and POSTs it with the
//! blocking client of [`crate::fetch`] through the tracer's collector cluster (its
//! addresses or DNS names and its TLS, `fetch::Via`), on a connection kept per tracer
//! between POSTs (`fetch::Kept`: HTTP/1.1 keep-alive; under load a POST goes every few
//! milliseconds, and a connection, or a TLS handshake, per POST cost more than the
//! POST). Emptied batches go back to the workers on a second channel, so batches
//! circulate instead of being reallocated.
//!
//! A slow or down collector: each POST is bounded by the collector's `timeout`; while
//! this thread waits, batches pile up in the queue up to each tracer's bound and the
//! workers drop spans (counted in `spans_dropped`). A worker never waits, and memory
//! never grows past the queues.
//!
//! Start: always, at process start, even without tracers: the workers' setup holds the
//! channel from their first moment (a reload may add tracing), and an idle thread
//! blocked on a channel costs nothing. The control thread sends the current tracers
//! with [`Exporter::update`] at start and after every reload, with each collector
//! cluster's reachability and the stats scopes. At exit the workers flush their open
//! batches and [`Exporter::finish`] waits a bounded time for them to be sent.
//!
//! Stats: `tracing.zipkin.` / `tracing.opentelemetry.` ([`register_stats`], one scope
//! per provider, Envoy's names): this thread writes the scope's extra cell slot
//! (`spans_sent`, the `reports`), the workers their own cells.

pub mod otlp;
pub mod zipkin;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{info, warn};

use super::sink::{Queued, TraceSetup, CHANNEL_CAPACITY};
use super::span::{SpanBatch, SpanRecord, Text, TextRef};
use crate::access_log::ResponseFlags;
use crate::config::observability::{SpanKind, TraceProvider, Tracer};
use crate::config::Config;
use crate::fetch::{Kept, Via};
use crate::stats::{names::trace as stat, Scope, StatsStore, WorkerScope};

/// The most batches put into one round of export requests.
pub const MAX_GROUP: usize = 64;
/// The largest collector answer read (collectors answer with a few bytes).
const MAX_ANSWER: usize = 64 * 1024;

/// The stats scope of each tracer of `config` (`tracing.zipkin.` or
/// `tracing.opentelemetry.`, with one extra cell slot for the exporter), by tracer
/// index. Registered with the other scopes at start and on every reload, so they are in
/// `/stats` as soon as a config has a tracer.
pub fn register_stats(store: &mut StatsStore, config: &Config) -> Vec<Arc<Scope>> {
    config
        .tracers
        .iter()
        .map(|t| match t.provider {
            TraceProvider::Otlp => {
                store.scope_with_extra("tracing.opentelemetry.", &stat::OPENTELEMETRY_DEFS, 1)
            }
            TraceProvider::Zipkin { .. } => {
                store.scope_with_extra("tracing.zipkin.", &stat::ZIPKIN_DEFS, 1)
            }
        })
        .collect()
}

/// One tracer as the exporter thread sees it.
#[derive(Debug, Clone)]
struct Target {
    tracer: Tracer,
    /// The collector cluster's addresses and TLS; `None`: no such cluster.
    via: Option<Via>,
    /// The exporter's cells of the tracer's scope.
    stats: WorkerScope,
}

/// The control thread's handle on the exporter.
#[derive(Debug)]
pub struct Exporter {
    updates: flume::Sender<Vec<Target>>,
    queue: flume::Sender<SpanBatch>,
    pool: flume::Receiver<SpanBatch>,
    queued: Arc<Queued>,
    workers: usize,
    done: flume::Receiver<()>,
    thread: JoinHandle<()>,
}

impl Exporter {
    /// Starts the thread, with no tracer until the first [`Self::update`].
    pub fn start(workers: usize) -> std::io::Result<Exporter> {
        let (updates, updates_rx) = flume::unbounded();
        let (queue, queue_rx) = flume::bounded(CHANNEL_CAPACITY);
        let (pool_tx, pool) = flume::bounded(CHANNEL_CAPACITY);
        let (done_tx, done) = flume::bounded(1);
        let queued = Arc::new(Queued::default());
        let thread = Thread {
            updates: updates_rx,
            queue: queue_rx,
            pool: pool_tx,
            queued: Arc::clone(&queued),
            targets: Vec::new(),
            kept: Vec::new(),
            scratch: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("ringway-trace-export".to_owned())
            .spawn(move || {
                thread.run();
                let _ = done_tx.send(());
            })?;
        Ok(Exporter {
            updates,
            queue,
            pool,
            queued,
            workers,
            done,
            thread,
        })
    }

    /// What worker `worker` needs for its span sinks.
    pub fn worker_setup(&self, worker: usize) -> TraceSetup {
        TraceSetup {
            queue: self.queue.clone(),
            pool: self.pool.clone(),
            queued: Arc::clone(&self.queued),
            worker,
            workers: self.workers,
        }
    }

    /// [`Updater::update`].
    pub fn update(&self, config: &Config, scopes: &[Arc<Scope>]) {
        self.updater().update(config, scopes);
    }

    /// A handle the control loop keeps to send each reload's tracers.
    pub fn updater(&self) -> Updater {
        Updater(self.updates.clone())
    }

    /// Closes the control thread's end and waits up to `timeout` for the thread to
    /// send what is queued. Call after the workers are gone (and every [`Updater`]: the
    /// thread ends when the last update sender does). False when it is still
    /// busy (a slow collector: those spans are lost with the process).
    pub fn finish(self, timeout: Duration) -> bool {
        let Exporter {
            updates,
            queue,
            done,
            thread,
            ..
        } = self;
        drop(updates);
        drop(queue);
        match done.recv_timeout(timeout) {
            Err(flume::RecvTimeoutError::Timeout) => false,
            _ => {
                let _ = thread.join();
                true
            }
        }
    }
}

/// Sends new tracers to the exporter thread; held by the control loop.
#[derive(Debug, Clone)]
pub struct Updater(flume::Sender<Vec<Target>>);

impl Updater {
    /// Exports for `config`'s tracers from now on (start, and every reload before the
    /// workers apply it); `scopes` are [`register_stats`]' for the same config. Never
    /// blocks: DNS names of collector clusters are resolved by the thread at each POST.
    pub fn update(&self, config: &Config, scopes: &[Arc<Scope>]) {
        let targets = config
            .tracers
            .iter()
            .zip(scopes)
            .map(|(tracer, scope)| Target {
                tracer: tracer.clone(),
                via: Via::cluster(config, &tracer.collector.cluster, "span export"),
                stats: scope.for_worker(scope.workers() - 1),
            })
            .collect();
        let _ = self.0.send(targets);
    }
}

enum Wake {
    Update(Result<Vec<Target>, flume::RecvError>),
    Batch(Result<SpanBatch, flume::RecvError>),
}

struct Thread {
    updates: flume::Receiver<Vec<Target>>,
    queue: flume::Receiver<SpanBatch>,
    pool: flume::Sender<SpanBatch>,
    queued: Arc<Queued>,
    targets: Vec<Target>,
    /// Each target's collector connection, kept between exports (`fetch::Kept`).
    kept: Vec<Kept>,
    /// The OTLP body's buffer, kept from export to export (`otlp::encode_into`).
    scratch: Vec<u8>,
}

impl Thread {
    fn run(mut self) {
        let mut failing = Vec::new();
        loop {
            let wake = flume::Selector::new()
                .recv(&self.updates, Wake::Update)
                .recv(&self.queue, Wake::Batch)
                .wait();
            match wake {
                Wake::Update(Ok(targets)) => {
                    self.update(targets);
                    failing = vec![false; self.targets.len()];
                }
                Wake::Batch(Ok(first)) => {
                    // The selector picks either channel when both are ready: an update
                    // sent before this batch (a reload's, sent before the workers apply
                    // it) must be applied first.
                    while let Ok(targets) = self.updates.try_recv() {
                        self.update(targets);
                        failing = vec![false; self.targets.len()];
                    }
                    self.round(first, &mut failing);
                }
                // Exiting: the workers have stopped (their last batches are queued),
                // so send what is queued and end. Not a blocking `recv` until every
                // sender is gone: a worker's context may outlive its thread's last
                // moment (a task the runtime never dropped keeps it).
                Wake::Update(Err(_)) => {
                    while let Ok(batch) = self.queue.try_recv() {
                        self.round(batch, &mut failing);
                    }
                    return;
                }
                Wake::Batch(Err(_)) => return,
            }
        }
    }

    /// A reload's tracers: their kept connections start anew (a collector's address or
    /// TLS may have changed; a kept connection is checked against both anyway).
    fn update(&mut self, targets: Vec<Target>) {
        self.kept = targets.iter().map(|_| Kept::default()).collect();
        self.targets = targets;
    }

    /// Exports `first` and whatever else is queued now, one request per tracer.
    fn round(&mut self, first: SpanBatch, failing: &mut [bool]) {
        self.queued.release(first.tracer);
        let mut batches = vec![first];
        while batches.len() < MAX_GROUP {
            match self.queue.try_recv() {
                Ok(batch) => {
                    self.queued.release(batch.tracer);
                    batches.push(batch);
                }
                Err(_) => break,
            }
        }
        let mut tracers: Vec<usize> = batches.iter().map(|b| b.tracer).collect();
        tracers.sort_unstable();
        tracers.dedup();
        for index in tracers {
            let group: Vec<&SpanBatch> = batches.iter().filter(|b| b.tracer == index).collect();
            if let (Some(target), Some(kept)) = (self.targets.get(index), self.kept.get_mut(index))
            {
                let ok = export(target, &group, &mut self.scratch, kept);
                if let Some(was) = failing.get_mut(index) {
                    if ok && *was {
                        info!(
                            cluster = target.tracer.collector.cluster,
                            "span export works again"
                        );
                    }
                    *was = !ok;
                }
            }
        }
        for mut batch in batches {
            batch.clear();
            let _ = self.pool.try_send(batch);
        }
    }
}

/// POSTs `batches` to `target`'s collector (on the connection `kept` holds, when it is
/// still fit) and counts the outcome; false when it failed.
fn export(target: &Target, batches: &[&SpanBatch], scratch: &mut Vec<u8>, kept: &mut Kept) -> bool {
    let stats = &target.stats;
    let zipkin = matches!(target.tracer.provider, TraceProvider::Zipkin { .. });
    // Spans in wire form are OTLP's: queued before a reload gave their tracer's index
    // to a Zipkin tracer, they cannot go to it, and are dropped, counted.
    let (spans, unsendable) = batches.iter().fold((0, 0), |(sent, lost), b| {
        if zipkin {
            (sent + b.spans.len(), lost + b.wire_spans())
        } else {
            (sent + b.span_count(), lost)
        }
    });
    if unsendable > 0 {
        stats.get(stat::SPANS_DROPPED).add(unsendable as u64);
    }
    if spans == 0 {
        return true;
    }
    stats.get(stat::SPANS_SENT).add(spans as u64);
    let collector = &target.tracer.collector;
    let connect_to = target.via.as_ref().map(Via::connect_to).unwrap_or_default();
    if connect_to.is_empty() {
        stats
            .get(if zipkin {
                stat::REPORTS_SKIPPED_NO_CLUSTER
            } else {
                stat::HTTP_REPORTS_FAILED
            })
            .inc();
        warn!(
            cluster = collector.cluster,
            "span export: the collector cluster has no address; {spans} spans not sent"
        );
        return false;
    }
    let zipkin_body;
    let (body, content_type) = if zipkin {
        zipkin_body = zipkin::encode(&target.tracer, batches);
        (vec![&zipkin_body[..]], "application/json")
    } else {
        let range = otlp::encode_into(&target.tracer, batches, scratch);
        let parts = otlp::body_parts(scratch, range, batches);
        (parts, "application/x-protobuf")
    };
    let via = target.via.as_ref().expect("checked above");
    let (tls, server_name) = via.request_tls();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let host = collector.authority.as_deref().unwrap_or(&collector.cluster);
    // The URL carries the path; the `host` header the authority, which need not be a
    // valid URL host (a cluster name with characters a host may not have).
    let url = format!("{scheme}://collector{}", collector.path);
    let server_name = server_name.or_else(|| host_only(host).map(str::to_owned));
    let mut headers = vec![
        ("host".to_owned(), host.to_owned()),
        ("content-type".to_owned(), content_type.to_owned()),
    ];
    headers.retain(|(name, _)| {
        !collector
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    });
    headers.extend(collector.headers.iter().cloned());
    let request = crate::fetch::Request {
        url: &url,
        connect_to: Some(connect_to),
        tls,
        server_name,
        timeout: collector.timeout,
        max_body: MAX_ANSWER,
        headers,
    };
    if !zipkin {
        stats.get(stat::HTTP_REPORTS_SENT).inc();
    }
    let post = crate::fetch::Method::Post;
    let result = crate::fetch::send_kept_parts(post, Some(&body), &request, kept);
    // Envoy's Zipkin reporter counts a report sent only when the collector answers 202
    // Accepted (a Zipkin server's answer), any other answer dropped; an OTLP/HTTP
    // collector answers 200 (any 2xx taken as success).
    let accepted = |status: u16| {
        if zipkin {
            status == 202
        } else {
            (200..300).contains(&status)
        }
    };
    let ok = matches!(&result, Ok(r) if accepted(r.status));
    let counter = match (&result, zipkin, ok) {
        (Ok(_), true, true) => stat::REPORTS_SENT,
        (Ok(_), true, false) => stat::REPORTS_DROPPED,
        (Err(_), true, _) => stat::REPORTS_FAILED,
        (_, false, true) => stat::HTTP_REPORTS_SUCCESS,
        (_, false, false) => stat::HTTP_REPORTS_FAILED,
    };
    stats.get(counter).inc();
    match result {
        Ok(r) if !ok => warn!(
            cluster = collector.cluster,
            status = r.status,
            "span export: the collector refused {spans} spans"
        ),
        Err(e) => warn!(
            cluster = collector.cluster,
            "span export: {spans} spans not sent: {e}"
        ),
        Ok(_) => {}
    }
    ok
}

/// The host part of an authority (no port), for the TLS name when the cluster sets no
/// SNI.
fn host_only(authority: &str) -> Option<&str> {
    let (host, _) = host_port(authority.as_bytes());
    std::str::from_utf8(host).ok().filter(|h| !h.is_empty())
}

/// Where a span's request went, as `server.address` and `server.port`: a request's
/// span, its authority (the port, when it names none, the scheme's); an attempt's, its
/// endpoint, which the worker recorded apart (`SpanRecord::server_port`).
fn server_of<'t>(
    record: &SpanRecord,
    text: impl Fn(TextRef) -> &'t [u8],
) -> (TextRef, Option<u16>) {
    if record.upstream_attempt {
        return (
            record.authority,
            Some(record.server_port).filter(|&p| p != 0),
        );
    }
    let authority = text(record.authority);
    let (host, port) = host_port(authority);
    // `host` is a part of `authority`: where it starts in it.
    let offset = host.as_ptr() as usize - authority.as_ptr() as usize;
    // No port written: the scheme's (the conventions want one with the address).
    let port = port.filter(|&p| p != 0).or_else(|| {
        let default = if record.scheme == Some("https") {
            443
        } else {
            80
        };
        (!host.is_empty()).then_some(default)
    });
    (record.authority.part(offset, host.len()), port)
}

/// An authority (`host[:port]`) as OpenTelemetry's `server.address` and
/// `server.port`: the host, an IPv6 literal without its brackets, and the port when
/// the authority ends in `:` and up to five digits (a port over 65535 is left out, its
/// host kept). Read from the end, a byte at a time: authorities are short, and a
/// search routine's setup costs more than the walk.
pub(crate) fn host_port(authority: &[u8]) -> (&[u8], Option<u16>) {
    let (mut port, mut scale, mut colon) = (0u32, 1u32, None);
    for (i, &b) in authority.iter().enumerate().rev().take(6) {
        match b {
            b'0'..=b'9' => {
                port += u32::from(b - b'0') * scale;
                scale *= 10;
            }
            b':' if scale > 1 => {
                colon = Some(i);
                break;
            }
            _ => break,
        }
    }
    let (host, port) = match colon {
        Some(i) => (&authority[..i], u16::try_from(port).ok()),
        None => (authority, None),
    };
    match host {
        [b'[', inner @ .., b']'] => (inner, port),
        // An open bracket never closed: no host and port to tell apart.
        [b'[', ..] => (authority, None),
        _ => (host, port),
    }
}

/// One span with the text its pieces refer to: a batch's arena and custom tags, or
/// the text a worker kept for the request whose span it writes in wire form.
#[derive(Debug)]
pub struct SpanView<'a> {
    pub text: Text<'a>,
    /// The tags that `record.tags_start` and `tags_len` index.
    pub tags: &'a [(TextRef, TextRef)],
    pub record: &'a SpanRecord,
}

impl<'a> SpanView<'a> {
    /// A record of `batch`.
    pub fn of(batch: &'a SpanBatch, record: &'a SpanRecord) -> SpanView<'a> {
        SpanView {
            text: batch.arena(),
            tags: &batch.tags,
            record,
        }
    }

    /// Every record of `batches`, in order.
    pub fn all(batches: &'a [&'a SpanBatch]) -> impl Iterator<Item = SpanView<'a>> + 'a {
        batches.iter().flat_map(|batch| {
            batch
                .spans
                .iter()
                .map(move |record| SpanView::of(batch, record))
        })
    }

    /// The span's custom tags, with their text.
    fn custom_tags(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let text = self.text;
        let start = self.record.tags_start as usize;
        let end = start + self.record.tags_len as usize;
        self.tags
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(move |(k, v)| (text.text(*k), text.text(*v)))
    }
}

/// A failed span as Envoy tags it (`error`): a 5xx answer, or an error's text.
fn is_error(view: &SpanView<'_>) -> bool {
    view.record.status >= 500 || !view.record.error.is_empty()
}

/// A failed span as OpenTelemetry's HTTP conventions set its status: as [`is_error`],
/// and a 4xx answer to a client span (the request failed for whoever sent it; a server
/// span's 4xx is the client's error, not the server's).
fn is_otel_error(view: &SpanView<'_>) -> bool {
    is_error(view) || (view.record.kind == SpanKind::Client && view.record.status >= 400)
}

/// Envoy's short response flags (`UF,URX`), `-` for none.
fn flags_text(bits: u32) -> String {
    let mut out = Vec::new();
    ResponseFlags::from_bits(bits).append_to(&mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::observability::{Collector, SpanKind};

    pub(crate) fn tracer(provider: TraceProvider) -> Tracer {
        Tracer {
            provider,
            collector: Collector {
                cluster: "otel".into(),
                path: Collector::OTLP_PATH.into(),
                authority: None,
                headers: Vec::new(),
                timeout: Collector::DEFAULT_TIMEOUT,
            },
            service_name: "edge".into(),
            max_spans_per_second: None,
            batch_spans: 16,
            flush_interval: Duration::from_secs(1),
            queue_batches: 4,
        }
    }

    /// A server span and its failed client span (a second attempt).
    pub(crate) fn sample_batch() -> SpanBatch {
        let mut batch = SpanBatch::with_capacity(0, 4, 4096);
        sample(&mut batch);
        batch
    }

    pub(crate) fn sample(b: &mut SpanBatch) {
        let trace_id = 0x4bf92f3577b34da6a3ce929d0e0e4736;
        let start = 1_700_000_000_000_000_000;
        let tag = (b.push_text("env"), b.push_text("prod"));
        b.tags.push(tag);
        let server = SpanRecord {
            trace_id,
            span_id: 0x00f067aa0ba902b7,
            parent_id: 0,
            kind: SpanKind::Server,
            start_ns: start,
            end_ns: start + 2_500_000,
            name: b.push_text("GET /orders"),
            method: b.push_text("GET"),
            path: b.push_text("/orders"),
            authority: b.push_text("shop.example"),
            scheme: Some("https"),
            route: b.push_text("orders"),
            status: 200,
            peer: b.push_text("10.0.0.7"),
            peer_port: 51000,
            user_agent: b.push_text("curl/8"),
            request_id: b.push_text("req-1"),
            cluster: b.push_text("shop"),
            upstream: b.push_text("[2001:db8::1]:8080"),
            bytes_received: 120,
            bytes_sent: 3400,
            attempt: 2,
            debug: true,
            tags_start: 0,
            tags_len: 1,
            ..SpanRecord::default()
        };
        let client = SpanRecord {
            span_id: 0x1111222233334444,
            parent_id: 0x00f067aa0ba902b7,
            kind: SpanKind::Client,
            start_ns: start + 100_000,
            end_ns: start + 100_500,
            status: 0,
            flags: (ResponseFlags::UPSTREAM_CONNECTION_FAILURE
                | ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED)
                .bits(),
            error: b.push_text("connect failure"),
            debug: false,
            tags_len: 0,
            upstream_attempt: true,
            ..server.clone()
        };
        b.spans.push(server);
        b.spans.push(client);
    }

    /// Spans in wire form queued for a tracer index that a reload gave to a Zipkin
    /// tracer cannot be sent as JSON: dropped and counted, not counted as sent; the
    /// records beside them go.
    #[test]
    fn wire_spans_for_a_zipkin_tracer_are_dropped_and_counted() {
        use crate::stats::Scope;
        let scope = Arc::new(Scope::new("tracing.zipkin.", &stat::ZIPKIN_DEFS, 1));
        let zipkin = TraceProvider::Zipkin {
            trace_id_128bit: true,
            shared_span_context: false,
        };
        let target = Target {
            tracer: tracer(zipkin),
            via: None,
            stats: scope.for_worker(0),
        };
        let records = sample_batch();
        let mut wire = SpanBatch::with_capacity(0, 4, 64);
        let mut flags = Vec::new();
        for record in &records.spans {
            otlp::write_span(&mut wire, &SpanView::of(&records, record), true, &mut flags);
        }
        let ok = export(
            &target,
            &[&wire, &records],
            &mut Vec::new(),
            &mut Kept::default(),
        );
        assert!(!ok, "no collector cluster");
        assert_eq!(scope.sum(stat::SPANS_DROPPED), 2);
        assert_eq!(scope.sum(stat::SPANS_SENT), 2, "the records");
        assert_eq!(scope.sum(stat::REPORTS_SKIPPED_NO_CLUSTER), 1);
        // Wire spans alone: nothing to send, nothing reported.
        assert!(export(
            &target,
            &[&wire],
            &mut Vec::new(),
            &mut Kept::default()
        ));
        assert_eq!(scope.sum(stat::SPANS_DROPPED), 4);
        assert_eq!(scope.sum(stat::REPORTS_SKIPPED_NO_CLUSTER), 1);
    }

    #[test]
    fn authority_hosts_for_the_tls_name() {
        assert_eq!(host_only("otel.example:4318"), Some("otel.example"));
        assert_eq!(host_only("[::1]:4318"), Some("::1"));
        assert_eq!(host_only("otel"), Some("otel"));
        let split = |a: &str| {
            let (host, port) = host_port(a.as_bytes());
            (String::from_utf8(host.to_vec()).unwrap(), port)
        };
        assert_eq!(
            split("shop.example:8443"),
            ("shop.example".into(), Some(8443))
        );
        assert_eq!(split("shop.example"), ("shop.example".into(), None));
        assert_eq!(split("[2001:db8::1]:80"), ("2001:db8::1".into(), Some(80)));
        assert_eq!(split("[::1]"), ("::1".into(), None));
        assert_eq!(split("h:99999"), ("h".into(), None), "not a port");
        assert_eq!(split("h:+80"), ("h:+80".into(), None));
        assert_eq!(split("h:123456"), ("h:123456".into(), None));
        assert_eq!(split("h:"), ("h:".into(), None));
        assert_eq!(split("[::1"), ("[::1".into(), None));
        assert_eq!(
            split("::1"),
            (":".into(), Some(1)),
            "an unbracketed IPv6 is no authority"
        );
        assert_eq!(split(""), ("".into(), None));
        // A request's span: the scheme's port when the authority names none.
        let mut batch = SpanBatch::with_capacity(0, 1, 64);
        let mut record = SpanRecord {
            authority: batch.push_text("shop"),
            scheme: Some("https"),
            ..SpanRecord::default()
        };
        let port_of = |r: &SpanRecord| server_of(r, |t| batch.bytes(t)).1;
        assert_eq!(port_of(&record), Some(443));
        record.scheme = Some("http");
        assert_eq!(port_of(&record), Some(80));
        record.authority = TextRef::EMPTY;
        assert_eq!(port_of(&record), None, "no address, no port");
        // An attempt's: the endpoint's, as the worker noted it (none for a socket path).
        record.upstream_attempt = true;
        record.server_port = 8080;
        assert_eq!(port_of(&record), Some(8080));
        record.server_port = 0;
        assert_eq!(port_of(&record), None);
    }
}
