//! A worker's span sinks: one open batch per tracer, handed to the exporter thread when
//! full or old.
//!
//! Design: the access log's model (`access_log/buffer.rs`). Each worker owns one
//! [`SpanSinks`] (in `WorkerContext`, behind a `RefCell`); a sampled request writes its
//! spans into the open [`SpanBatch`] of its tracer, and a batch that is full, or whose
//! flush interval passed (the worker's once-a-second clock task calls [`SpanSinks::tick`]),
//! goes to the exporter with `try_send` on one bounded channel. Nothing here waits for
//! another thread: when a tracer already has its `queue` of batches waiting (a slow or
//! down collector), the batch's spans are dropped and counted (`spans_dropped`) and the
//! same batch is reused. Memory is bounded by each tracer's `queue` times its batch.
//!
//! Allocation: the exporter sends emptied batches back on a second channel, and a
//! worker takes its next batch from there; a batch is allocated only when none is
//! waiting to be reused (at start, or while batches are in flight), so in steady state
//! recording a span copies into memory that is already there.
//!
//! The queue bound is per tracer and process-wide (`Tracer::queue_batches`), and the
//! channel is made once at start while a reload may change the bound, so it is kept by
//! counters shared with the exporter ([`Queued`]): a worker reserves a place before its
//! `try_send`, the exporter gives it back when it takes the batch. The channel's own
//! capacity is only a backstop.
//!
//! Rate limit: `max_spans_per_second` is shared out evenly over the workers (rounded
//! up); each worker's share is a token bucket that [`SpanSinks::tick`] fills once a
//! second (from the coarse clock, no clock read per span). A span over it is refused by
//! [`SpanSinks::batch`] and counted (`spans_rate_limited`).
//!
//! Reload: [`SpanSinks::configure`] keeps the open batch of every tracer whose settings
//! did not change (same index, equal `Tracer`); a changed or removed tracer's open spans
//! are dropped and counted, since the exporter may already be sending that index to the
//! new collector.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::span::SpanBatch;
use crate::config::observability::Tracer;
use crate::config::Config;
use crate::stats::{names::trace as stat, Scope, WorkerScope};

/// Text bytes a batch's arena holds per span (names, paths, addresses, tags).
pub const TEXT_PER_SPAN: usize = 768;
/// Counters of queued batches; tracer `i` uses slot `i % QUEUE_SLOTS` (configs with
/// more tracers than this share slots, which only makes their bounds stricter).
const QUEUE_SLOTS: usize = 16;
/// The channel's capacity, whatever the tracers' `queue`: a backstop.
pub(super) const CHANNEL_CAPACITY: usize = 4096;

/// Batches queued for the exporter, per tracer.
#[derive(Debug, Default)]
pub struct Queued([AtomicUsize; QUEUE_SLOTS]);

impl Queued {
    /// Takes a place for a batch of `tracer` when fewer than `limit` are queued.
    fn reserve(&self, tracer: usize, limit: usize) -> bool {
        let slot = &self.0[tracer % QUEUE_SLOTS];
        if slot.fetch_add(1, Relaxed) >= limit {
            slot.fetch_sub(1, Relaxed);
            return false;
        }
        true
    }

    /// Gives a place back (the exporter took the batch, or the send failed).
    pub(super) fn release(&self, tracer: usize) {
        let slot = &self.0[tracer % QUEUE_SLOTS];
        // Never below zero, even if a reload reshuffled tracers between the two.
        let _ = slot.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    }
}

/// What a worker needs to build its [`SpanSinks`]; made by the exporter's handle
/// (`trace::export::Exporter::worker_setup`) at start.
#[derive(Debug)]
pub struct TraceSetup {
    pub(super) queue: flume::Sender<SpanBatch>,
    pub(super) pool: flume::Receiver<SpanBatch>,
    pub(super) queued: Arc<Queued>,
    /// This worker's index (its stats cell) and the number of workers (the rate
    /// limit's share).
    pub(super) worker: usize,
    pub(super) workers: usize,
}

impl TraceSetup {
    /// A setup with no exporter behind it (tests): every hand-over fails and is counted
    /// as dropped.
    pub fn detached(worker: usize, workers: usize) -> TraceSetup {
        let (queue, _) = flume::bounded(1);
        let (_, pool) = flume::bounded(1);
        TraceSetup {
            queue,
            pool,
            queued: Arc::default(),
            worker,
            workers,
        }
    }
}

/// One tracer's open batch and limits, on one worker.
#[derive(Debug)]
struct Sink {
    /// The settings this sink was made for (a reload keeps the sink only when equal).
    tracer: Tracer,
    /// The open batch; capacity 0 until its first span.
    batch: SpanBatch,
    /// The coarse time of the batch's first span.
    started: Instant,
    /// Spans this worker may still record this second; `None`: no limit.
    tokens: Option<u32>,
    /// This worker's share of `max_spans_per_second`.
    share: u32,
    stats: Option<WorkerScope>,
}

/// A worker's span sinks, one per tracer of the current config (`Config::tracers`).
#[derive(Debug)]
pub struct SpanSinks {
    setup: TraceSetup,
    sinks: Vec<Sink>,
    /// Scratch for encoders that write a span's text in parts (the response flags').
    scratch: Vec<u8>,
    /// The coarse clock, as of the last [`Self::tick`].
    now: Instant,
}

impl SpanSinks {
    pub fn new(setup: TraceSetup) -> SpanSinks {
        SpanSinks {
            setup,
            sinks: Vec::new(),
            scratch: Vec::new(),
            now: Instant::now(),
        }
    }

    /// Called when the worker builds a snapshot (start and every reload): each tracer's
    /// batch size, flush interval and rate limit, by tracer index, with its stats scope
    /// (`scopes[i]` for tracer `i`: `StatsHandles::tracers`).
    pub fn configure(&mut self, config: &Config, scopes: &[Arc<Scope>]) {
        let mut old: Vec<Option<Sink>> = std::mem::take(&mut self.sinks)
            .into_iter()
            .map(Some)
            .collect();
        let worker = self.setup.worker;
        for (i, tracer) in config.tracers.iter().enumerate() {
            let stats = scopes.get(i).map(|s| s.for_worker(worker));
            let share = tracer
                .max_spans_per_second
                .map_or(0, |max| max.div_ceil(self.setup.workers.max(1) as u32));
            let kept = old
                .get_mut(i)
                .and_then(|slot| slot.take_if(|s| s.tracer == *tracer));
            let sink = match kept {
                Some(mut sink) => {
                    sink.stats = stats;
                    sink
                }
                None => Sink {
                    tracer: tracer.clone(),
                    batch: SpanBatch::default(),
                    started: self.now,
                    tokens: tracer.max_spans_per_second.map(|_| share),
                    share,
                    stats,
                },
            };
            self.sinks.push(sink);
        }
        for sink in old.into_iter().flatten() {
            count(&sink.stats, stat::SPANS_DROPPED, sink.batch.span_count());
        }
    }

    /// A batch for `tracer` with room for one more span, or `None` (the rate limit
    /// refused it: counted; or no such tracer). The caller pushes one `SpanRecord` (and
    /// its text and tags) into it, then calls [`Self::pushed`].
    pub fn batch(&mut self, tracer: usize) -> Option<&mut SpanBatch> {
        let sink = self.sinks.get_mut(tracer)?;
        open_batch(&self.setup, tracer, sink)
    }

    /// Whether `tracer`'s spans are written in wire form (an OTLP tracer's), as this
    /// worker's current config says; `None`: no such tracer. A request that began
    /// under an earlier config asks, since a reload may have given its tracer's index
    /// another provider.
    pub fn wire_form(&self, tracer: usize) -> Option<bool> {
        let sink = self.sinks.get(tracer)?;
        Some(sink.tracer.provider == crate::config::observability::TraceProvider::Otlp)
    }

    /// Counts `n` spans of `tracer` dropped without being recorded (a request's spans
    /// prepared for a provider its tracer no longer has after a reload).
    pub fn drop_spans(&mut self, tracer: usize, n: usize) {
        if let Some(sink) = self.sinks.get(tracer) {
            count(&sink.stats, stat::SPANS_DROPPED, n);
        }
    }

    /// [`Self::batch`], with the worker's scratch bytes (for a span written in wire
    /// form).
    pub fn batch_and_scratch(&mut self, tracer: usize) -> Option<(&mut SpanBatch, &mut Vec<u8>)> {
        let sink = self.sinks.get_mut(tracer)?;
        let batch = open_batch(&self.setup, tracer, sink)?;
        Some((batch, &mut self.scratch))
    }

    /// After a span was pushed into [`Self::batch`]'s batch: hands the batch over when
    /// it is full (`try_send`; a full queue drops its spans, counted, and the batch is
    /// cleared and kept). True when it did: text already in the batch is gone from it.
    pub fn pushed(&mut self, tracer: usize) -> bool {
        let Some(sink) = self.sinks.get_mut(tracer) else {
            return false;
        };
        if sink.batch.span_count() == 1 {
            sink.started = self.now;
        }
        if sink.batch.is_full(sink.tracer.batch_spans) {
            hand_off(&self.setup, tracer, sink);
            return true;
        }
        false
    }

    /// Once a second (the worker's clock task): refills the rate limits and hands over
    /// partial batches older than their flush interval (`timer_flushed`).
    pub fn tick(&mut self, now: Instant) {
        self.now = now;
        for (tracer, sink) in self.sinks.iter_mut().enumerate() {
            if sink.tokens.is_some() {
                sink.tokens = Some(sink.share);
            }
            let age = now.saturating_duration_since(sink.started);
            if !sink.batch.is_empty() && age + TICK_SLACK >= sink.tracer.flush_interval {
                count(&sink.stats, stat::TIMER_FLUSHED, 1);
                hand_off(&self.setup, tracer, sink);
            }
        }
    }

    /// Hands every partial batch over (the worker's last act before it stops).
    pub fn flush(&mut self) {
        for (tracer, sink) in self.sinks.iter_mut().enumerate() {
            if !sink.batch.is_empty() {
                hand_off(&self.setup, tracer, sink);
            }
        }
    }
}

/// `sink`'s batch with room for one more span, or `None` (the rate limit refused it,
/// counted).
fn open_batch<'s>(
    setup: &TraceSetup,
    tracer: usize,
    sink: &'s mut Sink,
) -> Option<&'s mut SpanBatch> {
    if let Some(tokens) = &mut sink.tokens {
        if *tokens == 0 {
            count(&sink.stats, stat::SPANS_RATE_LIMITED, 1);
            return None;
        }
        *tokens -= 1;
    }
    if sink.batch.spans.capacity() == 0 {
        sink.batch = fresh(&setup.pool, tracer, &sink.tracer);
    }
    Some(&mut sink.batch)
}

/// The clock task wakes just after each second boundary, but the coarse time of a
/// batch's first span was read at the previous wake: without slack, a 1 s interval
/// would wait for the second wake after it.
const TICK_SLACK: Duration = Duration::from_millis(50);

fn count(stats: &Option<WorkerScope>, index: usize, n: usize) {
    if let Some(stats) = stats {
        stats.get(index).add(n as u64);
    }
}

/// Sends `sink`'s batch to the exporter, leaving an empty one (no capacity: the next
/// span takes one from the pool); when the tracer's queue is full or the exporter is
/// gone, drops the spans, counts them and keeps the batch.
fn hand_off(setup: &TraceSetup, tracer: usize, sink: &mut Sink) {
    let spans = sink.batch.span_count();
    if !setup.queued.reserve(tracer, sink.tracer.queue_batches) {
        count(&sink.stats, stat::SPANS_DROPPED, spans);
        sink.batch.clear();
        return;
    }
    let mut full = std::mem::take(&mut sink.batch);
    full.tracer = tracer;
    if let Err(e) = setup.queue.try_send(full) {
        setup.queued.release(tracer);
        count(&sink.stats, stat::SPANS_DROPPED, spans);
        let mut back = e.into_inner();
        back.clear();
        sink.batch = back;
    }
}

/// An emptied batch from the exporter when one is big enough for `settings`, else a
/// new one.
fn fresh(pool: &flume::Receiver<SpanBatch>, tracer: usize, settings: &Tracer) -> SpanBatch {
    let spans = settings.batch_spans.max(1);
    let text = spans * TEXT_PER_SPAN;
    match pool.try_recv() {
        // Every batch is made here, its arena sized by its span capacity: enough spans
        // means enough text too.
        Ok(mut batch) if batch.spans.capacity() >= spans => {
            batch.clear();
            batch.tracer = tracer;
            batch
        }
        _ => SpanBatch::with_capacity(tracer, spans, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::observability::{Collector, TraceProvider};
    use crate::trace::span::SpanRecord;

    fn tracer(batch: usize, queue: usize, max: Option<u32>) -> Tracer {
        Tracer {
            provider: TraceProvider::Otlp,
            collector: Collector {
                cluster: "c".into(),
                path: Collector::OTLP_PATH.into(),
                authority: None,
                headers: Vec::new(),
                timeout: Collector::DEFAULT_TIMEOUT,
            },
            service_name: "s".into(),
            max_spans_per_second: max,
            batch_spans: batch,
            flush_interval: Duration::from_secs(1),
            queue_batches: queue,
        }
    }

    struct Harness {
        sinks: SpanSinks,
        queue: flume::Receiver<SpanBatch>,
        pool: flume::Sender<SpanBatch>,
        queued: Arc<Queued>,
        scope: Arc<Scope>,
    }

    fn harness(tracers: Vec<Tracer>, workers: usize) -> Harness {
        let (queue_tx, queue) = flume::bounded(CHANNEL_CAPACITY);
        let (pool, pool_rx) = flume::bounded(CHANNEL_CAPACITY);
        let queued = Arc::new(Queued::default());
        let mut sinks = SpanSinks::new(TraceSetup {
            queue: queue_tx,
            pool: pool_rx,
            queued: Arc::clone(&queued),
            worker: 0,
            workers,
        });
        let scope = Arc::new(Scope::new(
            "tracing.opentelemetry.",
            &stat::OPENTELEMETRY_DEFS,
            workers + 1,
        ));
        let mut config = Config::parse(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        config.tracers = tracers;
        let scopes = vec![Arc::clone(&scope); config.tracers.len()];
        sinks.configure(&config, &scopes);
        Harness {
            sinks,
            queue,
            pool,
            queued,
            scope,
        }
    }

    fn record(sinks: &mut SpanSinks, tracer: usize) -> bool {
        let Some(batch) = sinks.batch(tracer) else {
            return false;
        };
        let name = batch.push_text("GET /");
        batch.spans.push(SpanRecord {
            trace_id: 1,
            span_id: 2,
            name,
            ..SpanRecord::default()
        });
        sinks.pushed(tracer);
        true
    }

    /// The form a request's spans are written in is the worker's current tracer's, and
    /// spans that cannot be written in it are counted dropped.
    #[test]
    fn the_form_is_the_current_tracers_and_drops_are_counted() {
        let mut h = harness(vec![tracer(2, 4, None)], 1);
        assert_eq!(h.sinks.wire_form(0), Some(true), "OTLP");
        assert_eq!(h.sinks.wire_form(1), None);
        h.sinks.drop_spans(0, 3);
        h.sinks.drop_spans(1, 5);
        assert_eq!(h.scope.sum(stat::SPANS_DROPPED), 3);
        let zipkin = Tracer {
            provider: TraceProvider::Zipkin {
                trace_id_128bit: true,
                shared_span_context: false,
            },
            ..tracer(2, 4, None)
        };
        let h = harness(vec![zipkin], 1);
        assert_eq!(h.sinks.wire_form(0), Some(false));
    }

    #[test]
    fn full_batches_go_to_the_exporter_and_come_back_for_reuse() {
        let mut h = harness(vec![tracer(2, 4, None)], 1);
        assert!(record(&mut h.sinks, 0));
        assert!(h.queue.try_recv().is_err());
        assert!(record(&mut h.sinks, 0));
        let mut batch = h.queue.try_recv().unwrap();
        assert_eq!((batch.tracer, batch.spans.len()), (0, 2));
        assert_eq!(batch.text(batch.spans[1].name), "GET /");
        h.queued.release(0);
        let spans_ptr = batch.spans.as_ptr();
        batch.clear();
        h.pool.send(batch).unwrap();
        // The next span lands in the returned batch: no new allocation.
        assert!(record(&mut h.sinks, 0));
        assert_eq!(h.sinks.sinks[0].batch.spans.as_ptr(), spans_ptr);
        assert!(h.sinks.batch(7).is_none());
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_keeps_the_batch() {
        let mut h = harness(vec![tracer(1, 2, None)], 1);
        for _ in 0..5 {
            assert!(record(&mut h.sinks, 0));
        }
        assert_eq!(h.queue.len(), 2);
        assert_eq!(h.scope.sum(stat::SPANS_DROPPED), 3);
        // The dropped batch was kept and cleared.
        assert!(h.sinks.sinks[0].batch.is_empty());
        assert!(h.sinks.sinks[0].batch.spans.capacity() > 0);
    }

    #[test]
    fn the_rate_limit_is_shared_out_and_refilled_by_the_tick() {
        // 10 per second over 4 workers: 3 each.
        let mut h = harness(vec![tracer(100, 4, Some(10))], 4);
        let recorded = (0..5).filter(|_| record(&mut h.sinks, 0)).count();
        assert_eq!(recorded, 3);
        assert_eq!(h.scope.sum(stat::SPANS_RATE_LIMITED), 2);
        h.sinks.tick(Instant::now());
        assert!(record(&mut h.sinks, 0));
    }

    #[test]
    fn old_partial_batches_are_flushed_by_the_tick() {
        let mut h = harness(vec![tracer(100, 4, None)], 1);
        let start = Instant::now();
        h.sinks.tick(start);
        assert!(record(&mut h.sinks, 0));
        h.sinks.tick(start + Duration::from_millis(500));
        assert!(h.queue.try_recv().is_err());
        h.sinks.tick(start + Duration::from_secs(1));
        assert_eq!(h.queue.try_recv().unwrap().spans.len(), 1);
        assert_eq!(h.scope.sum(stat::TIMER_FLUSHED), 1);
        // Nothing open: nothing sent.
        h.sinks.tick(start + Duration::from_secs(5));
        assert!(h.queue.try_recv().is_err());
    }

    #[test]
    fn a_reload_keeps_unchanged_tracers_and_drops_changed_ones() {
        let mut h = harness(vec![tracer(100, 4, None), tracer(50, 4, None)], 1);
        assert!(record(&mut h.sinks, 0));
        assert!(record(&mut h.sinks, 1));
        let mut config = Config::parse(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        config.tracers = vec![tracer(100, 4, None), tracer(60, 4, None)];
        let scopes = vec![Arc::clone(&h.scope); 2];
        h.sinks.configure(&config, &scopes);
        assert_eq!(h.sinks.sinks[0].batch.spans.len(), 1);
        assert!(h.sinks.sinks[1].batch.is_empty());
        assert_eq!(h.scope.sum(stat::SPANS_DROPPED), 1);
        h.sinks.flush();
        assert_eq!(h.queue.len(), 1);
    }

    #[test]
    fn a_detached_setup_counts_every_span_as_dropped() {
        let mut sinks = SpanSinks::new(TraceSetup::detached(0, 1));
        let scope = Arc::new(Scope::new("t.", &stat::ZIPKIN_DEFS, 2));
        let mut config = Config::parse(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        config.tracers = vec![tracer(1, 4, None)];
        sinks.configure(&config, &[Arc::clone(&scope)]);
        assert!(record(&mut sinks, 0));
        assert_eq!(scope.sum(stat::SPANS_DROPPED), 1);
    }
}
