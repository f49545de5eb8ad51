//! The time limits of one request after its head, on one timer.
//!
//! Three limits apply, as in Envoy:
//! - while the request body is still arriving, the optional `request_timeout` (from the
//!   head to the last body byte; Envoy's `request_timeout`);
//! - once the request is complete, the route's `timeout`, until the response is complete
//!   (Envoy's route timeout: a long upload is not cut by it, a client that stops reading
//!   the response is);
//! - throughout, `stream_idle_timeout`: no read or write of the exchange, on either side,
//!   may go that long without completing (Envoy's `stream_idle_timeout`).
//!
//! Every wait of the exchange goes through [`Deadline::within`], which polls the
//! operation first (an operation that completed is never reported late) and then the one
//! timer. The timer is set to whichever limit comes first; the idle limit is measured
//! from the last completed operation on the worker's coarse clock (one `Cell` read per
//! operation, no clock read), and only checked when the timer fires, so on the plain
//! path (route timeout 15 s, idle 60 s) the timer is registered once per request, as a
//! single route timeout would be. A progress mark is the coarse time, and one tick is
//! added when it is checked (the latest the operation can have completed), so the idle
//! limit fires between `stream_idle_timeout` and one second more after the last
//! progress (a tick task running late can make it a few milliseconds early).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use crate::{
    clock::CoarseClock,
    clock::TICK,
    error::{Error, ErrorKind, Side},
};

/// Which limit passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expired {
    /// The phase's limit: `request_timeout` while receiving, the route timeout after.
    Limit,
    /// No operation completed for `stream_idle_timeout`.
    Idle,
    /// The attempt's `per_try_timeout`, or no progress for its `per_try_idle_timeout`.
    Try,
    /// The request's `max_stream_duration`.
    Duration,
}

/// The limits of one request; see the module note.
pub(super) struct Deadline<'t> {
    /// The current phase's limit, if it has one.
    at: Option<Instant>,
    /// When the request was complete; `None` while its body is still arriving (also
    /// the start of Envoy's `x-envoy-upstream-service-time`).
    completed: Option<Instant>,
    /// `stream_idle_timeout` in milliseconds (at most `u32::MAX`, 49 days: a longer
    /// limit is no limit), so that the request's completion time fits beside it without
    /// growing every connection's task.
    idle_ms: u32,
    /// When the last operation completed, on the coarse clock: at most one tick before
    /// it really did.
    last_progress: Instant,
    /// The current attempt's limit (`per_try_timeout`), if it has one.
    try_at: Option<Instant>,
    /// The current attempt's `per_try_idle_timeout` in milliseconds; 0: none.
    try_idle_ms: u32,
    /// The request's `max_stream_duration` end, if it has one.
    stream_end: Option<Instant>,
    clock: &'t CoarseClock,
    timer: Pin<&'t mut monoio::time::Sleep>,
}

impl<'t> Deadline<'t> {
    /// When the timer of a deadline made now with these limits must first fire: create
    /// the sleep with it, so that [`Deadline::new`] need not reset it.
    pub(super) fn first_check(at: Option<Instant>, idle: Duration, now: Instant) -> Instant {
        let idle_end = now + idle;
        at.map_or(idle_end, |at| at.min(idle_end))
    }

    /// Limits starting at `now`: `at` for the first phase, `idle` throughout. `timer`
    /// must be a sleep until [`Deadline::first_check`] of the same limits.
    pub(super) fn new(
        now: Instant,
        at: Option<Instant>,
        receiving: bool,
        idle: Duration,
        clock: &'t CoarseClock,
        timer: Pin<&'t mut monoio::time::Sleep>,
    ) -> Self {
        Deadline {
            at,
            completed: (!receiving).then_some(now),
            idle_ms: u32::try_from(idle.as_millis()).unwrap_or(u32::MAX),
            // Marks are coarse times, one tick added when checked; this one is exact.
            last_progress: now.checked_sub(TICK).unwrap_or(now),
            try_at: None,
            try_idle_ms: 0,
            stream_end: None,
            clock,
            timer,
        }
    }

    /// The request may last until `end` (`max_stream_duration`, counted from its first
    /// byte), whatever its phase.
    pub(super) fn end_stream_at(&mut self, end: Instant) {
        self.stream_end = Some(end);
        self.arm();
    }

    /// An attempt starts now, with its own limits (`per_try_timeout`,
    /// `per_try_idle_timeout`; `None`: only the request's).
    pub(super) fn start_try(&mut self, limit: Option<Duration>, idle: Option<Duration>) {
        if self.has_try_limits(limit, idle) {
            self.start_try_at(Instant::now(), limit, idle);
        }
    }

    /// Whether an attempt with these limits changes anything (the plain path: neither
    /// this attempt nor the last one has limits of its own, and no clock is read).
    fn has_try_limits(&self, limit: Option<Duration>, idle: Option<Duration>) -> bool {
        limit.is_some() || idle.is_some() || self.try_at.is_some() || self.try_idle_ms != 0
    }

    /// [`Deadline::start_try`] for an attempt that started at `now`: the first one,
    /// whose limit the timer was created with (`first_check` of the earlier of the two),
    /// so that arming it again finds nothing to change.
    pub(super) fn start_try_at(
        &mut self,
        now: Instant,
        limit: Option<Duration>,
        idle: Option<Duration>,
    ) {
        if !self.has_try_limits(limit, idle) {
            return;
        }
        self.try_at = limit.map(|l| now + l);
        self.try_idle_ms = idle.map_or(0, |i| {
            u32::try_from(i.as_millis()).unwrap_or(u32::MAX).max(1)
        });
        self.last_progress = now.checked_sub(TICK).unwrap_or(now);
        self.arm();
    }

    /// Whether the attempt's `per_try_timeout` (not its idle limit) has passed.
    pub(super) fn try_limit_passed(&self) -> bool {
        self.try_at.is_some_and(|at| Instant::now() >= at)
    }

    /// Time left before the attempt's limit or the request's, whichever comes first.
    pub(super) fn try_left(&self) -> Duration {
        let left = self.left();
        self.try_at.map_or(left, |at| {
            at.saturating_duration_since(Instant::now()).min(left)
        })
    }

    /// How long since the request was complete, if it is.
    pub(super) fn since_request_complete(&self) -> Option<Duration> {
        self.completed.map(|at| at.elapsed())
    }

    /// The request body is complete: the route timeout `route` starts now.
    pub(super) fn request_complete(&mut self, route: Duration) {
        if self.completed.is_none() {
            let now = Instant::now();
            self.completed = Some(now);
            self.at = Some(now + route);
            self.arm();
        }
    }

    /// When the idle limit passes if nothing more completes.
    fn idle_end(&self) -> Instant {
        self.last_progress + TICK + Duration::from_millis(u64::from(self.idle_ms))
    }

    /// When the attempt's idle limit passes if nothing more completes.
    fn try_idle_end(&self) -> Option<Instant> {
        (self.try_idle_ms > 0)
            .then(|| self.last_progress + TICK + Duration::from_millis(u64::from(self.try_idle_ms)))
    }

    fn next_check(&self) -> Instant {
        let mut next = self.idle_end();
        for limit in [self.at, self.try_at, self.stream_end, self.try_idle_end()]
            .into_iter()
            .flatten()
        {
            next = next.min(limit);
        }
        next
    }

    fn arm(&mut self) {
        let next = self.next_check();
        if self.timer.deadline().into_std() != next {
            self.timer.as_mut().reset(next.into());
        }
    }

    /// Runs `future` until it completes or a limit passes.
    ///
    /// A future type of its own rather than an `async fn`: an `async fn` keeps its
    /// argument and the pinned copy of it side by side in its state (376 bytes twice for
    /// a `write_all`), and every wrapped wait is part of each connection's task.
    pub(super) fn within<F: Future>(&mut self, future: F) -> Within<'_, 't, F> {
        Within {
            deadline: self,
            future,
        }
    }

    /// Polls the timer; `Ready` when a limit passed. Re-arms it when it fired on an idle
    /// check that progress since made premature.
    fn poll_limits(&mut self, cx: &mut Context<'_>) -> Poll<Expired> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let passed = |limit: Option<Instant>| limit.is_some_and(|at| now >= at);
            if passed(self.stream_end) {
                return Poll::Ready(Expired::Duration);
            }
            if passed(self.at) {
                return Poll::Ready(Expired::Limit);
            }
            if passed(self.try_at) || passed(self.try_idle_end()) {
                return Poll::Ready(Expired::Try);
            }
            if now >= self.idle_end() {
                return Poll::Ready(Expired::Idle);
            }
            // Progress since the timer was set: look again when the idle limit,
            // counted from that progress, would pass.
            let next = self.next_check();
            self.timer.as_mut().reset(next.into());
        }
    }

    /// Time left before the phase's limit or the stream's (the idle limit aside).
    pub(super) fn left(&self) -> Duration {
        let now = Instant::now();
        let left = self
            .at
            .map_or(Duration::from_millis(u64::from(self.idle_ms)), |at| {
                at.saturating_duration_since(now)
            });
        self.stream_end
            .map_or(left, |end| end.saturating_duration_since(now).min(left))
    }

    /// The error for `expired`, given how far the exchange got.
    pub(super) fn error(&self, expired: Expired, written: bool, started: bool) -> Error {
        let kind = match (expired, self.completed.is_none()) {
            (Expired::Duration, _) => ErrorKind::DurationTimeout,
            (Expired::Try, _) => ErrorKind::PerTryTimeout,
            (Expired::Idle, _) => ErrorKind::StreamIdleTimeout,
            (Expired::Limit, true) => ErrorKind::RequestTimeout,
            (Expired::Limit, false) => ErrorKind::Timeout,
        };
        Error {
            request_written: written,
            response_started: started,
            ..Error::new(kind, Side::Upstream)
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Deadline::within`]'s future: the operation, polled first, then the limits.
    pub(super) struct Within<'d, 't, F> {
        deadline: &'d mut Deadline<'t>,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Within<'_, '_, F> {
    type Output = Result<F::Output, Expired>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.future.poll(cx) {
            // No `max` with the exact start (it cost more than it buys): a tick task
            // running late makes a mark a few milliseconds older, so the idle limit may
            // pass that much early.
            this.deadline.last_progress = this.deadline.clock.coarse_now();
            return Poll::Ready(Ok(out));
        }
        this.deadline.poll_limits(cx).map(Err)
    }
}
