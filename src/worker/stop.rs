//! A one-shot, single-thread stop signal for a worker's own tasks.
//!
//! Accept loops wait on it next to `accept()`; connection tasks check it between
//! requests. It lives on one thread (`Rc`, `Cell`), so setting and waiting cost no
//! atomics.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
};

/// The signal. Clone the `Rc` to share it among a worker's tasks.
#[derive(Debug, Default)]
pub struct Stop {
    stopped: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Stop {
    /// A new, unset signal.
    pub fn new() -> Rc<Self> {
        Rc::new(Stop::default())
    }

    /// Sets the signal and wakes every waiter.
    pub fn stop(&self) {
        self.stopped.set(true);
        for waker in self.waiters.take() {
            waker.wake();
        }
    }

    /// Whether the signal is set.
    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Completes once the signal is set.
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        Wait { stop: self }
    }
}

struct Wait<'a> {
    stop: &'a Stop,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.stop.stopped.get() {
            return Poll::Ready(());
        }
        let mut waiters = self.stop.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
