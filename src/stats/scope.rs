//! A scope: a fixed set of named stats, one block of cells per worker.
//!
//! Layout: each worker's cells start on their own 128-byte line group (two cache lines,
//! because x86's adjacent-line prefetcher pulls lines in pairs), so two workers never
//! write the same line. Scopes are small (tens of cells), so the padding costs little.

use std::sync::Arc;

use super::Counter;

/// Whether a stat only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic.
    Counter,
    /// Goes up and down (e.g. active connections).
    Gauge,
}

/// The definition of one stat in a scope.
#[derive(Debug, Clone, Copy)]
pub struct StatDef {
    /// The name after the scope's prefix, e.g. `downstream_rq_total`.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Also print one line per worker (`<prefix>worker_<i>.<name>`), as Envoy does for
    /// listener connection counts.
    pub per_worker: bool,
    /// A 0/1 flag per worker, shown as 1 when any worker's is (instead of the sum).
    pub any: bool,
}

const CELLS_PER_LINE: usize = 16;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Line([Counter; CELLS_PER_LINE]);

/// A fixed set of stats with one cell per worker each.
#[derive(Debug)]
pub struct Scope {
    prefix: Box<str>,
    defs: &'static [StatDef],
    workers: usize,
    lines_per_worker: usize,
    lines: Box<[Line]>,
    /// Render only the stats that are not zero (a route's per-code counters: 500 cells
    /// of which a few are ever used).
    sparse: bool,
}

impl Scope {
    /// Creates a scope for `workers` workers. `prefix` ends with a dot (`listener.public.`).
    pub fn new(prefix: impl Into<Box<str>>, defs: &'static [StatDef], workers: usize) -> Self {
        let lines_per_worker = defs.len().div_ceil(CELLS_PER_LINE).max(1);
        let lines = (0..lines_per_worker * workers.max(1))
            .map(|_| Line::default())
            .collect();
        Scope {
            prefix: prefix.into(),
            defs,
            workers,
            lines_per_worker,
            lines,
            sparse: false,
        }
    }

    /// Like [`Scope::new`], rendering only its stats that are not zero.
    pub fn new_sparse(
        prefix: impl Into<Box<str>>,
        defs: &'static [StatDef],
        workers: usize,
    ) -> Self {
        Scope {
            sparse: true,
            ..Scope::new(prefix, defs, workers)
        }
    }

    /// Whether only non-zero stats are rendered.
    pub fn is_sparse(&self) -> bool {
        self.sparse
    }

    /// The scope's name prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The stats in this scope.
    pub fn defs(&self) -> &'static [StatDef] {
        self.defs
    }

    /// The number of workers this scope has cells for.
    pub fn workers(&self) -> usize {
        self.workers
    }

    fn cell(&self, worker: usize, index: usize) -> Option<&Counter> {
        if worker >= self.workers || index >= self.defs.len() {
            return None;
        }
        let line = worker * self.lines_per_worker + index / CELLS_PER_LINE;
        self.lines.get(line).map(|l| &l.0[index % CELLS_PER_LINE])
    }

    /// One worker's value of stat `index` (0 when out of range).
    pub fn value(&self, worker: usize, index: usize) -> u64 {
        self.cell(worker, index).map_or(0, Counter::get)
    }

    /// The sum over all workers of stat `index`.
    pub fn sum(&self, index: usize) -> u64 {
        (0..self.workers)
            .map(|w| self.value(w, index))
            .fold(0, u64::wrapping_add)
    }

    /// The handle through which worker `worker` writes its own cells.
    ///
    /// # Panics
    /// When `worker` is not below the scope's worker count: that is a bug in the caller,
    /// which sizes scopes by the worker count it spawns.
    pub fn for_worker(self: &Arc<Self>, worker: usize) -> WorkerScope {
        assert!(worker < self.workers, "worker index out of range for scope");
        WorkerScope {
            base: worker * self.lines_per_worker,
            scope: Arc::clone(self),
        }
    }
}

/// A worker's view of its own cells in a scope. Held in the worker's snapshot (cloned
/// once per snapshot, never per request).
#[derive(Debug, Clone)]
pub struct WorkerScope {
    scope: Arc<Scope>,
    base: usize,
}

impl WorkerScope {
    /// The cell of stat `index` (an index constant from [`super::names`]).
    #[inline]
    pub fn get(&self, index: usize) -> &Counter {
        let line = &self.scope.lines[self.base + index / CELLS_PER_LINE];
        &line.0[index % CELLS_PER_LINE]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DEFS: [StatDef; 20] = {
        let d = StatDef {
            name: "x",
            kind: Kind::Counter,
            per_worker: false,
            any: false,
        };
        [d; 20]
    };

    #[test]
    fn workers_write_their_own_lines_and_sums_add_up() {
        let scope = Arc::new(Scope::new("t.", &DEFS, 3));
        let w0 = scope.for_worker(0);
        let w2 = scope.for_worker(2);
        w0.get(19).add(5);
        w2.get(19).inc();
        w2.get(0).inc();
        assert_eq!(scope.sum(19), 6);
        assert_eq!(scope.value(2, 19), 1);
        assert_eq!(scope.value(1, 19), 0);
        assert_eq!(scope.sum(0), 1);
        assert!(std::ptr::eq(w0.get(3), scope.cell(0, 3).unwrap()));
        let a = w0.get(19) as *const Counter as usize;
        let b = scope.for_worker(1).get(0) as *const Counter as usize;
        assert!(b - a >= 64, "workers' cells share a cache line");
    }

    #[test]
    fn out_of_range_reads_are_zero() {
        let scope = Scope::new("t.", &DEFS, 1);
        assert_eq!(scope.value(1, 0), 0);
        assert_eq!(scope.value(0, 99), 0);
    }
}
