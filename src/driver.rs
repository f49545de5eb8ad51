//! Which I/O driver the workers run, and how their io_uring is set up.
//!
//! Each worker owns one ring and is the only thread that submits to it, so the ring is
//! created with `SINGLE_ISSUER | DEFER_TASKRUN` (kernel 6.1+): completions are processed
//! when the worker asks for them (in `io_uring_enter(GETEVENTS)`, which monoio issues
//! when it parks) instead of by task-work interrupts in the middle of request handling.
//! Older kernels get `COOP_TASKRUN`, older still a plain ring.
//!
//! Where io_uring cannot be used at all (old kernel, seccomp profiles such as Docker's
//! default, `kernel.io_uring_disabled`), workers run monoio's epoll driver. The choice is
//! made once, by the control thread, by building a probe ring before any worker starts,
//! so every worker runs the same driver and the log says which and why.

use std::{fmt, io};

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::DriverChoice;

/// Submission queue size. Large enough for a worker's bursts of accepts, reads and
/// writes between two parks, small enough to stay in a few pages.
const RING_ENTRIES: u32 = 1024;

/// The driver every worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring, with the setup flags in `flags`.
    IoUring(RingFlags),
    /// epoll (monoio's "legacy" driver).
    Epoll,
}

/// The io_uring setup flags the kernel accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingFlags {
    /// SINGLE_ISSUER | DEFER_TASKRUN (6.1+).
    SingleIssuerDeferTaskrun,
    /// COOP_TASKRUN (5.19+).
    CoopTaskrun,
    /// No setup flags.
    Plain,
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Driver::IoUring(RingFlags::SingleIssuerDeferTaskrun) => {
                f.write_str("io_uring (single issuer, deferred task running)")
            }
            Driver::IoUring(RingFlags::CoopTaskrun) => {
                f.write_str("io_uring (cooperative task running)")
            }
            Driver::IoUring(RingFlags::Plain) => f.write_str("io_uring"),
            Driver::Epoll => f.write_str("epoll"),
        }
    }
}

impl Driver {
    /// The short name used in stats and tests: `io_uring` or `epoll`.
    pub fn name(self) -> &'static str {
        match self {
            Driver::IoUring(_) => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

fn uring_builder(flags: RingFlags) -> io_uring::Builder {
    let mut builder = io_uring::IoUring::builder();
    match flags {
        RingFlags::SingleIssuerDeferTaskrun => {
            builder.setup_single_issuer().setup_defer_taskrun();
        }
        RingFlags::CoopTaskrun => {
            builder.setup_coop_taskrun();
        }
        RingFlags::Plain => {}
    }
    builder
}

/// Tries the ring setups from the best down; the first one the kernel accepts wins.
fn probe_io_uring() -> Result<RingFlags, io::Error> {
    let mut last = None;
    for flags in [
        RingFlags::SingleIssuerDeferTaskrun,
        RingFlags::CoopTaskrun,
        RingFlags::Plain,
    ] {
        match uring_builder(flags).build(8) {
            Ok(_ring) => return Ok(flags),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("io_uring unavailable")))
}

/// Resolves the configured choice into the driver every worker will use.
///
/// `auto` falls back to epoll with a note; an explicit `io_uring` that the kernel refuses
/// is an error, because the operator asked for it.
pub fn resolve(choice: DriverChoice) -> Result<(Driver, Option<String>), String> {
    resolve_with(choice, probe_io_uring)
}

fn resolve_with(
    choice: DriverChoice,
    probe: impl FnOnce() -> Result<RingFlags, io::Error>,
) -> Result<(Driver, Option<String>), String> {
    match choice {
        DriverChoice::Epoll => Ok((Driver::Epoll, None)),
        DriverChoice::IoUring => probe()
            .map(|flags| (Driver::IoUring(flags), None))
            .map_err(|e| format!("driver io_uring was requested but is unavailable: {e}")),
        DriverChoice::Auto => match probe() {
            Ok(flags) => Ok((Driver::IoUring(flags), None)),
            Err(e) => Ok((
                Driver::Epoll,
                Some(format!("io_uring unavailable ({e}); falling back to epoll")),
            )),
        },
    }
}

/// Runs `future` to completion on a new single-threaded runtime of the given driver, on
/// the calling thread. Timers are enabled (timeouts need them).
pub fn block_on<F: std::future::Future>(driver: Driver, future: F) -> io::Result<F::Output> {
    match driver {
        Driver::IoUring(flags) => {
            let mut rt = RuntimeBuilder::<IoUringDriver>::new()
                .uring_builder(uring_builder(flags))
                .with_entries(RING_ENTRIES)
                .enable_timer()
                .build()?;
            Ok(rt.block_on(future))
        }
        Driver::Epoll => {
            let mut rt = RuntimeBuilder::<LegacyDriver>::new()
                .enable_timer()
                .build()?;
            Ok(rt.block_on(future))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoll_always_resolves() {
        assert_eq!(resolve(DriverChoice::Epoll).unwrap().0, Driver::Epoll);
    }

    #[test]
    fn a_refused_ring_falls_back_to_epoll_and_says_why() {
        let refused = || Err(io::Error::from_raw_os_error(1)); // EPERM, as seccomp answers
        let (driver, note) = resolve_with(DriverChoice::Auto, refused).unwrap();
        assert_eq!(driver, Driver::Epoll);
        assert!(note.unwrap().contains("falling back to epoll"));
        let err = resolve_with(DriverChoice::IoUring, refused).unwrap_err();
        assert!(err.contains("io_uring was requested"), "{err}");
        // epoll runs everywhere.
        assert_eq!(block_on(driver, async { 1 }).unwrap(), 1);
    }

    #[test]
    fn auto_resolves_to_a_runnable_driver() {
        let (driver, _) = resolve(DriverChoice::Auto).unwrap();
        assert_eq!(block_on(driver, async { 7 }).unwrap(), 7);
    }
}
