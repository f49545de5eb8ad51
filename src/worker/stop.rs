//! A one-shot, single-thread stop signal for a worker's own tasks.
//!
//! Accept loops wait on it next to `accept()`; connection tasks wait on it between
//! requests. It lives on one thread (`Rc`, `Cell`), so setting and waiting cost no
//! atomics.
//!
//! Waiters sit in a slab and a wait that is dropped before the signal (the usual case: a
//! connection's next request arrived first) takes its waker out again. Without that the
//! list would keep the waker, and with it the task's memory, of every connection that
//! ever waited, and each wait would scan it.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
};

use slab::Slab;

/// The signal. Clone the `Rc` to share it among a worker's tasks.
#[derive(Debug, Default)]
pub struct Stop {
    stopped: Cell<bool>,
    waiters: RefCell<Slab<Waker>>,
}

impl Stop {
    /// A new, unset signal.
    pub fn new() -> Rc<Self> {
        Rc::new(Stop::default())
    }

    /// Sets the signal and wakes every waiter.
    pub fn stop(&self) {
        self.stopped.set(true);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    /// Gives back waiter storage a burst of connections left behind (called from the
    /// worker's sweep): an empty list is freed, otherwise the vacant tail is dropped;
    /// keys of waits still pending never change.
    pub fn compact(&self) {
        let mut waiters = self.waiters.borrow_mut();
        if waiters.is_empty() {
            *waiters = Slab::new();
        } else {
            waiters.shrink_to_fit();
        }
    }

    /// Whether the signal is set.
    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Completes once the signal is set.
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        Wait {
            stop: self,
            key: None,
        }
    }

    /// Waits registered and not yet dropped (for tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }
}

struct Wait<'a> {
    stop: &'a Stop,
    /// This wait's slot in the waiter slab, once registered.
    key: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.stop.stopped.get() {
            self.key = None;
            return Poll::Ready(());
        }
        let mut waiters = self.stop.waiters.borrow_mut();
        match self.key.and_then(|key| waiters.get_mut(key)) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                let key = waiters.insert(cx.waker().clone());
                drop(waiters);
                self.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        // After `stop()` the slab was emptied (and may hold newer waits under reused
        // keys), so only a wait that is still pending owns its slot.
        if let (Some(key), false) = (self.key, self.stop.stopped.get()) {
            let mut waiters = self.stop.waiters.borrow_mut();
            if waiters.contains(key) {
                waiters.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn a_dropped_wait_forgets_its_waker_and_stop_wakes_the_rest() {
        let stop = Stop::new();
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = Box::pin(stop.wait());
        let mut second = Box::pin(stop.wait());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        // Polling again keeps one slot.
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert_eq!(stop.waiting(), 2);
        drop(first);
        assert_eq!(stop.waiting(), 1);
        // Many short waits (one per request) leave nothing behind.
        for _ in 0..100 {
            let mut wait = Box::pin(stop.wait());
            assert!(wait.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(stop.waiting(), 1);
        stop.compact();
        assert_eq!(stop.waiting(), 1);
        stop.stop();
        assert_eq!(stop.waiting(), 0);
        assert!(second.as_mut().poll(&mut cx).is_ready());
        assert!(Box::pin(stop.wait()).as_mut().poll(&mut cx).is_ready());
    }
}
