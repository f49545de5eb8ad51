//! A one-shot, single-thread stop signal for a worker's own tasks.
//!
//! Accept loops wait on it next to `accept()`; connection tasks check it between
//! requests. It lives on one thread (`Rc`, `Cell`), so setting and waiting cost no
//! atomics.
//!
//! Waiters are kept in slots that a waiting future takes when first polled and frees
//! when it is dropped (a connection that closes, a `select!` whose other branch won), so
//! the signal holds exactly one waker per task waiting *now*. A waker keeps its task's
//! allocation alive: holding the wakers of every connection ever served would keep every
//! finished connection's memory (about 6 KiB each) until the worker stops. The slot
//! table grows with the most connections waiting at once (16 bytes each); the worker's
//! sweep calls [`Stop::compact`] to give back what a crowd left once it has gone.

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
    waiters: RefCell<Waiters>,
}

/// Wakers by slot; freed slots are reused.
#[derive(Debug, Default)]
struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Waiters {
    fn insert(&mut self, waker: Waker) -> usize {
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(waker);
                slot
            }
            None => {
                self.slots.push(Some(waker));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, slot: usize) {
        if self.slots.get_mut(slot).and_then(Option::take).is_some() {
            self.free.push(slot);
        }
        if self.free.len() == self.slots.len() {
            // Nobody waits: start over, giving back what a crowd of waiters grew.
            *self = Waiters::default();
        }
    }

    fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Drops the free slots at the end and the spare capacity (O(slots)).
    fn compact(&mut self) {
        while let Some(None) = self.slots.last() {
            self.slots.pop();
        }
        let end = self.slots.len();
        self.free.retain(|&slot| slot < end);
        self.slots.shrink_to_fit();
        self.free.shrink_to_fit();
    }
}

impl Stop {
    /// A new, unset signal.
    pub fn new() -> Rc<Self> {
        Rc::new(Stop::default())
    }

    /// Sets the signal and wakes every waiter.
    pub fn stop(&self) {
        self.stopped.set(true);
        let waiters = self.waiters.take();
        for waker in waiters.slots.into_iter().flatten() {
            waker.wake();
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
            slot: None,
        }
    }

    /// Gives back the slot table's memory that waiters no longer use, when that is most
    /// of it (cheap otherwise; called once a second by the worker's sweep).
    pub fn compact(&self) {
        let mut waiters = self.waiters.borrow_mut();
        if waiters.slots.capacity() > 2 * waiters.len() + 64 {
            waiters.compact();
        }
    }

    /// Futures waiting now (for tests).
    pub fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }
}

struct Wait<'a> {
    stop: &'a Stop,
    /// This future's slot in `stop.waiters`, once polled.
    slot: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.stop.stopped.get() {
            return Poll::Ready(());
        }
        let mut waiters = self.stop.waiters.borrow_mut();
        match self.slot {
            Some(slot) => {
                if let Some(waker) = waiters.slots.get_mut(slot) {
                    match waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => *waker = Some(cx.waker().clone()),
                    }
                }
            }
            None => {
                let slot = waiters.insert(cx.waker().clone());
                drop(waiters);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        // After `stop()` the slots are gone; removing then finds nothing to remove.
        if let Some(slot) = self.slot {
            if !self.stop.stopped.get() {
                self.stop.waiters.borrow_mut().remove(slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);

    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn waker() -> (std::sync::Arc<Flag>, Waker) {
        let flag = std::sync::Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
        (flag.clone(), Waker::from(flag))
    }

    #[test]
    fn dropped_waiters_leave_nothing_behind_and_live_ones_are_woken() {
        let stop = Stop::default();
        // A thousand connections that each waited once and went away.
        for _ in 0..1000 {
            let (_, w) = waker();
            let mut wait = Box::pin(stop.wait());
            assert!(wait
                .as_mut()
                .poll(&mut Context::from_waker(&w))
                .is_pending());
            // Polled again by the same task: still one slot.
            assert!(wait
                .as_mut()
                .poll(&mut Context::from_waker(&w))
                .is_pending());
            assert_eq!(stop.waiting(), 1);
        }
        assert_eq!(stop.waiting(), 0);
        assert_eq!(stop.waiters.borrow().slots.capacity(), 0);

        // A crowd of 1000 waits while an early one stays: compacting gives the table back.
        let (_, w) = waker();
        let cx = &mut Context::from_waker(&w);
        let mut early = Box::pin(stop.wait());
        assert!(early.as_mut().poll(cx).is_pending());
        let mut crowd: Vec<_> = (0..1000).map(|_| Box::pin(stop.wait())).collect();
        for wait in &mut crowd {
            assert!(wait.as_mut().poll(cx).is_pending());
        }
        stop.compact();
        assert_eq!(stop.waiters.borrow().slots.len(), 1001);
        drop(crowd);
        assert_eq!(stop.waiting(), 1);
        stop.compact();
        assert!(stop.waiters.borrow().slots.capacity() < 8);
        // Slots are taken again after compaction.
        let mut again = Box::pin(stop.wait());
        assert!(again.as_mut().poll(cx).is_pending());
        assert_eq!(stop.waiting(), 2);
        drop((early, again));
        assert_eq!(stop.waiting(), 0);

        let (flag, w) = waker();
        let mut live = Box::pin(stop.wait());
        let (gone_flag, gone) = waker();
        let mut left = Box::pin(stop.wait());
        let cx = &mut Context::from_waker(&w);
        assert!(live.as_mut().poll(cx).is_pending());
        assert!(left
            .as_mut()
            .poll(&mut Context::from_waker(&gone))
            .is_pending());
        drop(left);
        assert_eq!(stop.waiting(), 1);
        stop.stop();
        assert!(flag.0.load(std::sync::atomic::Ordering::Relaxed));
        assert!(!gone_flag.0.load(std::sync::atomic::Ordering::Relaxed));
        assert!(live.as_mut().poll(cx).is_ready());
        drop(live);
        // Once stopped, a new wait is ready at once and takes no slot.
        assert!(Box::pin(stop.wait()).as_mut().poll(cx).is_ready());
        assert_eq!(stop.waiting(), 0);
    }
}
