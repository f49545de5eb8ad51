//! A worker's accept loop for one listener socket.
//!
//! Each accepted connection is a task on this worker, holding the listener snapshot that
//! was current when it was accepted. The loop ends when the worker's stop signal is set;
//! its socket is closed then, as part of the orderly shutdown the control thread drives.

use std::{io, rc::Rc, time::Duration};

use monoio::net::TcpListener;
use tracing::{debug, warn};

use super::{connection, stop::Stop, Connections, WorkerContext};
use crate::{access_log::WorkerLog, snapshot::ListenerSnapshot, stats::names::listener as cx};

/// How long to back off when the process is out of file descriptors, so that the loop
/// does not spin while connections close and free some.
const FD_EXHAUSTED_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts on `socket` until `stop` is set.
pub async fn accept_loop(
    socket: TcpListener,
    listener: Rc<ListenerSnapshot>,
    context: Rc<WorkerContext>,
    stop: Rc<Stop>,
    connections: Rc<Connections>,
    log: Option<Rc<WorkerLog>>,
) {
    loop {
        let accepted = monoio::select! {
            accepted = socket.accept() => accepted,
            _ = stop.wait() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                listener.cx_stats.get(cx::DOWNSTREAM_CX_TOTAL).inc();
                listener.cx_stats.get(cx::DOWNSTREAM_CX_ACTIVE).inc();
                let guard = connections.open();
                let listener = Rc::clone(&listener);
                let context = Rc::clone(&context);
                let stop = Rc::clone(&stop);
                let log = log.clone();
                monoio::spawn(async move {
                    let log = log.as_deref();
                    connection::serve(stream, peer, &listener, &context, &stop, log).await;
                    listener.cx_stats.get(cx::DOWNSTREAM_CX_ACTIVE).dec();
                    listener.cx_stats.get(cx::DOWNSTREAM_CX_DESTROY).inc();
                    drop(guard);
                });
            }
            Err(e) if is_fd_exhaustion(&e) => {
                warn!(listener = &*listener.name, error = %e, "accept: out of file descriptors; backing off");
                monoio::time::sleep(FD_EXHAUSTED_BACKOFF).await;
            }
            Err(e) => debug!(listener = &*listener.name, error = %e, "accept failed"),
        }
    }
}

/// EMFILE (this process) or ENFILE (the whole system) from accept(2).
fn is_fd_exhaustion(e: &io::Error) -> bool {
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    matches!(e.raw_os_error(), Some(ENFILE | EMFILE))
}
