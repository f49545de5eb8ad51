//! A worker's side of the access log: format into a batch, hand full batches over.
//!
//! Design: each worker formats its lines into its own batch (`Vec<u8>`, on the worker's
//! thread, behind a `RefCell` since connection tasks share it through `Rc`). A batch that
//! reaches `buffer` bytes, or is still partial when the worker's flush timer fires, is
//! handed to the writer thread with `try_send` on a bounded channel: that never blocks
//! and never waits for another thread. When the channel is full (the writer is stuck on
//! a slow disk or a pipe nobody reads), the batch's lines are dropped and counted in
//! `access_log.dropped_lines`, and the same `Vec` is reused: serving requests always wins
//! over logging them. Memory is bounded by the channel's capacity times the batch size.
//!
//! Allocation: the writer sends emptied `Vec`s back through a second bounded channel (the
//! pool), and a worker takes its next batch from there; a new `Vec` is allocated only
//! when the pool is empty (at start, or when batches are in flight). In steady state a
//! request's line costs a format into memory that is already there.
//!
//! The channels are flume's: `try_send`/`try_recv` take flume's internal lock for a few
//! instructions, once per batch (tens of kilobytes of lines), never per request.

use std::{cell::RefCell, time::Duration};

use super::{
    entry::LogEntry,
    format::{append_line, LineFormat},
    writer::Message,
};
use crate::{
    config::AccessLogFormat,
    stats::{names::access_log as stat, WorkerScope},
};

/// Room for the line that crosses `buffer`, so a batch rarely grows past its capacity.
const LINE_SLACK: usize = 4096;

/// Lines of one worker, on their way to the writer.
#[derive(Debug, Default)]
pub struct Batch {
    /// Whole lines, each ending with `\n`.
    pub bytes: Vec<u8>,
    /// How many lines `bytes` holds (for the written and dropped counters).
    pub lines: u64,
}

/// What a worker needs to build its [`WorkerLog`]; sent to the worker thread at start.
#[derive(Debug)]
pub struct WorkerLogSetup {
    pub(super) queue: flume::Sender<Message>,
    pub(super) pool: flume::Receiver<Vec<u8>>,
    pub(super) format: AccessLogFormat,
    pub(super) buffer: usize,
    pub(super) flush_interval: Duration,
    pub(super) stats: WorkerScope,
}

/// One worker's access log. Shared by the worker's tasks through `Rc`.
#[derive(Debug)]
pub struct WorkerLog {
    format: LineFormat,
    buffer: usize,
    flush_interval: Duration,
    batch: RefCell<Batch>,
    queue: flume::Sender<Message>,
    pool: flume::Receiver<Vec<u8>>,
    stats: WorkerScope,
}

impl WorkerLog {
    /// Builds the worker's log on the worker's thread.
    pub fn new(setup: WorkerLogSetup) -> Self {
        WorkerLog {
            format: LineFormat::new(&setup.format),
            buffer: setup.buffer,
            flush_interval: setup.flush_interval,
            batch: RefCell::new(Batch::default()),
            queue: setup.queue,
            pool: setup.pool,
            stats: setup.stats,
        }
    }

    /// Whether lines are an Envoy format string (which prints more than the native
    /// formats: connections keep more for it).
    pub fn is_envoy_format(&self) -> bool {
        matches!(self.format, LineFormat::Envoy(_))
    }

    /// The request headers each connection captures for its lines (none for the
    /// native formats).
    pub fn headers(&self) -> &[String] {
        self.format.headers()
    }

    /// The response headers each line prints.
    pub fn response_headers(&self) -> &[String] {
        self.format.response_headers()
    }

    /// Whether lines print the connection's local address (a `getsockname` per
    /// connection, only then).
    pub fn needs_local_address(&self) -> bool {
        self.format.needs_local_address()
    }

    /// Whether lines print when the request ended (`%REQUEST_DURATION%`).
    pub fn needs_request_end(&self) -> bool {
        self.format.needs_request_end()
    }

    /// How often the worker should call [`WorkerLog::flush`].
    pub fn flush_interval(&self) -> Duration {
        self.flush_interval
    }

    /// Formats one line into the current batch, handing the batch over when it is full.
    pub fn record(&self, entry: &LogEntry<'_>) {
        let mut batch = self.batch.borrow_mut();
        if batch.bytes.capacity() == 0 {
            batch.bytes = self.fresh_vec();
        }
        append_line(&self.format, entry, &mut batch.bytes);
        batch.lines += 1;
        if batch.bytes.len() >= self.buffer {
            self.hand_off(&mut batch);
        }
    }

    /// Hands a partial batch over (the flush timer, and the worker's last act).
    pub fn flush(&self) {
        let mut batch = self.batch.borrow_mut();
        if batch.lines > 0 {
            self.hand_off(&mut batch);
        }
    }

    /// Sends `batch` to the writer and leaves an empty one in its place; when the writer's
    /// queue is full (or gone), drops the lines, counts them and keeps the `Vec`.
    fn hand_off(&self, batch: &mut Batch) {
        let full = std::mem::take(batch);
        match self.queue.try_send(Message::Batch(full)) {
            Ok(()) => batch.bytes = self.fresh_vec(),
            Err(e) => {
                let Message::Batch(mut returned) = e.into_inner() else {
                    return;
                };
                self.stats.get(stat::DROPPED_LINES).add(returned.lines);
                returned.bytes.clear();
                returned.lines = 0;
                *batch = returned;
            }
        }
    }

    /// An empty `Vec` from the pool the writer refills, or a new one.
    fn fresh_vec(&self) -> Vec<u8> {
        self.pool
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(self.buffer + LINE_SLACK))
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{IpAddr, Ipv4Addr},
        sync::Arc,
        time::UNIX_EPOCH,
    };

    use super::*;
    use crate::{access_log::ResponseFlags, stats::Scope};

    fn entry() -> LogEntry<'static> {
        LogEntry {
            start: UNIX_EPOCH,
            duration: Duration::ZERO,
            listener: "l",
            client: crate::peer::Peer::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            method: b"GET",
            path: b"/",
            protocol: "HTTP/1.1",
            status: 200,
            bytes_received: 0,
            bytes_sent: 0,
            upstream: None,
            flags: ResponseFlags::NONE,
            consumer: None,
            route: None,
            trace: None,
            attempts: 0,
            details: Default::default(),
        }
    }

    struct Harness {
        log: WorkerLog,
        queue: flume::Receiver<Message>,
        pool: flume::Sender<Vec<u8>>,
        scope: Arc<Scope>,
    }

    fn harness(buffer: usize, capacity: usize) -> Harness {
        let (queue_tx, queue) = flume::bounded(capacity);
        let (pool, pool_rx) = flume::bounded(capacity);
        let scope = Arc::new(Scope::new("access_log.", &stat::DEFS, 1));
        let log = WorkerLog::new(WorkerLogSetup {
            queue: queue_tx,
            pool: pool_rx,
            format: AccessLogFormat::Text,
            buffer,
            flush_interval: Duration::from_millis(100),
            stats: scope.for_worker(0),
        });
        Harness {
            log,
            queue,
            pool,
            scope,
        }
    }

    fn received(h: &Harness) -> Vec<Batch> {
        h.queue
            .try_iter()
            .filter_map(|m| match m {
                Message::Batch(b) => Some(b),
                Message::Wake => None,
            })
            .collect()
    }

    #[test]
    fn batches_are_handed_over_when_full_or_flushed() {
        let h = harness(200, 8);
        let line_len = {
            let mut v = Vec::new();
            append_line(&LineFormat::Text, &entry(), &mut v);
            v.len()
        };
        let per_batch = 200usize.div_ceil(line_len) as u64;
        for _ in 0..per_batch {
            h.log.record(&entry());
        }
        let batches = received(&h);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].lines, per_batch);
        assert_eq!(batches[0].bytes.len(), line_len * per_batch as usize);

        h.log.flush();
        assert!(received(&h).is_empty(), "an empty batch is not sent");
        h.log.record(&entry());
        h.log.flush();
        let batches = received(&h);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].lines, 1);
        assert_eq!(h.scope.sum(stat::DROPPED_LINES), 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts_lines_without_blocking() {
        let h = harness(1, 2);
        for _ in 0..5 {
            h.log.record(&entry());
        }
        assert_eq!(h.scope.sum(stat::DROPPED_LINES), 3);
        assert_eq!(received(&h).len(), 2);
        h.log.record(&entry());
        assert_eq!(
            received(&h).len(),
            1,
            "room again after the writer caught up"
        );
        assert_eq!(h.scope.sum(stat::DROPPED_LINES), 3);
    }

    #[test]
    fn emptied_vecs_come_back_from_the_pool() {
        let h = harness(1, 4);
        h.log.record(&entry());
        let mut batch = received(&h).pop().expect("one batch");
        batch.bytes.clear();
        let ptr = batch.bytes.as_ptr();
        h.pool.try_send(batch.bytes).expect("pool has room");
        // The current (empty) batch was allocated before the pool was refilled; the one
        // after it comes from the pool.
        h.log.record(&entry());
        h.log.record(&entry());
        let batches = received(&h);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].bytes.as_ptr(), ptr);
    }
}
