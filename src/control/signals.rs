//! Signals, turned into messages for the control thread's event loop.
//!
//! The handlers only set a flag and write a byte to a socket pair (async-signal-safe,
//! done by signal-hook); the control thread's runtime reads the other end, so signals are
//! handled as ordinary events, never inside a handler.

use std::{
    io,
    os::unix::net::UnixStream as StdUnixStream,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use monoio::{io::AsyncReadRent, net::UnixStream};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

/// A signal the control thread acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: drain and exit.
    Terminate,
    /// SIGHUP: reload the config.
    Reload,
    /// SIGUSR1: reopen log files.
    ReopenLogs,
}

const WATCHED: [(i32, Signal); 4] = [
    (SIGTERM, Signal::Terminate),
    (SIGINT, Signal::Terminate),
    (SIGHUP, Signal::Reload),
    (SIGUSR1, Signal::ReopenLogs),
];

/// The read side of the signal pipe, plus one pending flag per signal.
#[derive(Debug)]
pub struct Signals {
    wake: StdUnixStream,
    flags: Vec<(Arc<AtomicBool>, Signal)>,
}

impl Signals {
    /// Installs the handlers. Call before starting workers, so that every thread inherits
    /// a process that already handles these signals.
    pub fn install() -> io::Result<Self> {
        let (read, write) = StdUnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let mut flags = Vec::with_capacity(WATCHED.len());
        for (signal, meaning) in WATCHED {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal, Arc::clone(&flag))?;
            signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
            flags.push((flag, meaning));
        }
        Ok(Signals { wake: read, flags })
    }

    /// Turns the pipe into an async stream on the current (control) runtime.
    pub fn into_async(self) -> io::Result<AsyncSignals> {
        Ok(AsyncSignals {
            wake: UnixStream::from_std(self.wake)?,
            flags: self.flags,
            pending: Vec::new(),
        })
    }
}

/// Signals as an async source, on the control thread's runtime.
#[derive(Debug)]
pub struct AsyncSignals {
    wake: UnixStream,
    flags: Vec<(Arc<AtomicBool>, Signal)>,
    pending: Vec<Signal>,
}

impl AsyncSignals {
    /// The next signal received.
    pub async fn next(&mut self) -> Signal {
        loop {
            if let Some(signal) = self.pending.pop() {
                return signal;
            }
            for (flag, meaning) in &self.flags {
                if flag.swap(false, Ordering::Relaxed) && !self.pending.contains(meaning) {
                    self.pending.push(*meaning);
                }
            }
            if !self.pending.is_empty() {
                continue;
            }
            let (result, _) = self.wake.read(vec![0u8; 64]).await;
            if result.is_err() {
                // The pipe cannot fail while we hold both ends; if it does, stop busy
                // looping and wait forever rather than spin.
                std::future::pending::<()>().await;
            }
        }
    }
}
