//! The writer thread: the only place the access log does blocking I/O.
//!
//! Design: one thread (`ringway-access-log`) receives batches from every worker on one
//! bounded flume channel and writes them with plain blocking `write_all`, to a file
//! opened for appending or to stdout. Blocking is fine here and nowhere else: when the
//! disk or the pipe is slow, this thread waits, the channel fills, and workers drop lines
//! (counted) instead of waiting (see `buffer.rs`). Emptied `Vec`s go back to the workers
//! through the pool channel.
//!
//! Reopen (SIGUSR1, for logrotate's rename-then-signal): the control thread sets a flag
//! and sends a `Wake` with `try_send`; the writer checks the flag before every message,
//! so a reopen is never lost even when the queue is full, and the control thread never
//! waits on the writer. The new file is opened before the old one is closed: if the open
//! fails, logging goes on to the old file and the error is logged and counted.
//!
//! Start and stop: the control thread opens the file before any worker starts, so a bad
//! path stops ringway with a clear message, except for a FIFO, whose open blocks until a
//! reader appears; this thread opens that itself. At shutdown every sender is dropped
//! (workers after their last flush, then the control thread); the writer drains what is
//! queued, ends, and says so on `done`. The control thread waits for that for a bounded
//! time, so a writer stuck on a dead pipe cannot keep the process from exiting.
//!
//! Stats: the writer owns the scope's extra cell slot (index `workers`), so each cell
//! still has a single writer.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::FileTypeExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering::Relaxed},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use tracing::{error, info, warn};

use super::buffer::{Batch, WorkerLogSetup};
use crate::{
    config::{AccessLogConfig, AccessLogPath},
    stats::{names::access_log as stat, Scope, StatsStore, WorkerScope},
};

/// Batches each worker may have queued for the writer before lines are dropped.
const QUEUE_BATCHES_PER_WORKER: usize = 8;

/// What goes to the writer thread.
#[derive(Debug)]
pub enum Message {
    /// Lines to write.
    Batch(Batch),
    /// Look at the reopen flag now.
    Wake,
}

/// The control thread's handle on the access log.
#[derive(Debug)]
pub struct AccessLog {
    config: AccessLogConfig,
    queue: flume::Sender<Message>,
    pool: flume::Receiver<Vec<u8>>,
    reopen: Arc<AtomicBool>,
    scope: Arc<Scope>,
    done: flume::Receiver<()>,
    thread: JoinHandle<()>,
}

impl AccessLog {
    /// Registers the `access_log.` stats, opens the log (unless it is a FIFO) and starts
    /// the writer thread. An error says what could not be opened.
    pub fn start(
        config: &AccessLogConfig,
        store: &mut StatsStore,
        workers: usize,
    ) -> Result<AccessLog, String> {
        let file = match &config.path {
            AccessLogPath::Stdout => None,
            AccessLogPath::File(path) if is_fifo(path) => None,
            AccessLogPath::File(path) => Some(
                open_append(path).map_err(|e| format!("access_log ({}): {e}", path.display()))?,
            ),
        };
        let scope = store.scope_with_extra("access_log.", &stat::DEFS, 1);
        let capacity = QUEUE_BATCHES_PER_WORKER * workers.max(1);
        let (queue, queue_rx) = flume::bounded(capacity);
        let (pool_tx, pool) = flume::bounded(capacity);
        let (done_tx, done) = flume::bounded(1);
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            sink: match &config.path {
                AccessLogPath::Stdout => Sink::Stdout,
                AccessLogPath::File(path) => Sink::File {
                    path: path.clone(),
                    file,
                },
            },
            queue: queue_rx,
            pool: pool_tx,
            reopen: Arc::clone(&reopen),
            stats: scope.for_worker(workers),
            failing: false,
        };
        let thread = std::thread::Builder::new()
            .name("ringway-access-log".to_owned())
            .spawn(move || {
                writer.run();
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("starting the access log writer: {e}"))?;
        Ok(AccessLog {
            config: config.clone(),
            queue,
            pool,
            reopen,
            scope,
            done,
            thread,
        })
    }

    /// What worker `worker` needs to log.
    pub fn worker_setup(&self, worker: usize) -> WorkerLogSetup {
        WorkerLogSetup {
            queue: self.queue.clone(),
            pool: self.pool.clone(),
            format: self.config.format.clone(),
            buffer: self.config.buffer,
            flush_interval: self.config.flush_interval,
            stats: self.scope.for_worker(worker),
        }
    }

    /// A handle the control loop keeps to ask for reopens.
    pub fn reopener(&self) -> Reopener {
        Reopener {
            queue: self.queue.clone(),
            flag: Arc::clone(&self.reopen),
        }
    }

    /// Closes the control thread's end and waits up to `timeout` for the writer to write
    /// what is queued. Call after the workers (and every [`Reopener`]) are gone. False
    /// when the writer is still blocked (its last lines are then lost with the process).
    pub fn finish(self, timeout: Duration) -> bool {
        let AccessLog {
            queue,
            done,
            thread,
            ..
        } = self;
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

/// Asks the writer to reopen its file; held by the control loop.
#[derive(Debug, Clone)]
pub struct Reopener {
    queue: flume::Sender<Message>,
    flag: Arc<AtomicBool>,
}

impl Reopener {
    /// Requests a reopen; never blocks. A full queue means the writer is busy and will
    /// see the flag at its next message.
    pub fn reopen(&self) {
        self.flag.store(true, Relaxed);
        let _ = self.queue.try_send(Message::Wake);
    }
}

fn is_fifo(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

#[derive(Debug)]
enum Sink {
    Stdout,
    /// `file` is `None` until a FIFO is opened, or after an open failed.
    File {
        path: PathBuf,
        file: Option<File>,
    },
}

struct Writer {
    sink: Sink,
    queue: flume::Receiver<Message>,
    pool: flume::Sender<Vec<u8>>,
    reopen: Arc<AtomicBool>,
    stats: WorkerScope,
    /// Whether the last write failed, so a dead disk logs one error, not one per batch.
    failing: bool,
}

impl Writer {
    fn run(mut self) {
        while let Ok(message) = self.queue.recv() {
            if self.reopen.swap(false, Relaxed) {
                self.reopen();
            }
            if let Message::Batch(batch) = message {
                self.write(batch);
            }
        }
        if let Sink::Stdout = self.sink {
            let _ = io::stdout().lock().flush();
        }
    }

    fn write(&mut self, mut batch: Batch) {
        match self.write_bytes(&batch.bytes) {
            Ok(()) => {
                self.stats.get(stat::WRITTEN_LINES).add(batch.lines);
                if self.failing {
                    info!("access log: writing again");
                    self.failing = false;
                }
            }
            Err(e) => {
                self.stats.get(stat::WRITE_ERRORS).inc();
                self.stats.get(stat::DROPPED_LINES).add(batch.lines);
                if !self.failing {
                    error!(error = %e, "access log: write failed; dropping lines until it works again");
                    self.failing = true;
                }
            }
        }
        batch.bytes.clear();
        let _ = self.pool.try_send(batch.bytes);
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.sink {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            Sink::File { path, file } => {
                if file.is_none() {
                    // A FIFO (blocks until a reader appears) or a retry after a failure.
                    *file = Some(open_append(path)?);
                }
                match file {
                    Some(f) => f.write_all(bytes),
                    None => Ok(()),
                }
            }
        }
    }

    fn reopen(&mut self) {
        match &mut self.sink {
            Sink::Stdout => info!("access log is stdout: nothing to reopen"),
            Sink::File { path, file } => match open_append(path) {
                Ok(new) => {
                    *file = Some(new);
                    self.stats.get(stat::REOPENS).inc();
                    info!(path = %path.display(), "access log reopened");
                }
                Err(e) => {
                    self.stats.get(stat::WRITE_ERRORS).inc();
                    warn!(path = %path.display(), error = %e, "access log: reopen failed; still writing to the old file");
                }
            },
        }
    }
}
