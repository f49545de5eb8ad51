//! The admin listener, served on the control thread (never on a worker).
//!
//! Endpoints: `/ready` (200 `LIVE` when serving, 503 with the state otherwise, as
//! Envoy's), `/stats` (text, `name: value` per line, summed over workers with relaxed
//! loads), `/` (the list), and with POST (Envoy's names where Envoy has one):
//! `/reload` (200 with the new config version once every worker applied it, 400 with
//! the error text, file, line and field, when the config is refused),
//! `/drain_listeners` (stop accepting, keep serving) and `/quitquitquit` (drain, exit 0).
//! Mutations go to the control loop as messages, so they are serialised with signals
//! and each other. Each answer closes the connection: admin traffic is rare and this
//! keeps the handler small.

use std::{cell::Cell, rc::Rc, time::Duration};

use monoio::{
    io::{AsyncReadRent, AsyncWriteRentExt},
    net::{TcpListener, TcpStream},
};
use tracing::{debug, warn};

use super::{AdminRequest, ControlState};
use crate::{
    http1::{self, HeadScanner, Method, Request},
    local_reply::Reply,
};

const MAX_ADMIN_HEAD: usize = 16 * 1024;
/// How long an admin client has to send its request, and to take the answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Admin connections served at once; one more is closed at once (and counted). Admin
/// traffic is a few requests a second; the cap keeps a misbehaving client from
/// exhausting the control thread's descriptors.
pub const MAX_ADMIN_CONNECTIONS: usize = 64;

/// Accepts admin connections until a hot-restart successor takes the socket over.
pub async fn serve(socket: TcpListener, state: Rc<ControlState>) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        let accepted = monoio::select! {
            accepted = socket.accept() => accepted,
            _ = state.admin_stop.wait() => return,
        };
        match accepted {
            Ok((stream, _)) if open.get() >= MAX_ADMIN_CONNECTIONS => {
                warn!(
                    limit = MAX_ADMIN_CONNECTIONS,
                    "admin: too many connections; closing a new one"
                );
                drop(stream);
            }
            Ok((stream, _)) => {
                let open = Rc::clone(&open);
                open.set(open.get() + 1);
                let state = Rc::clone(&state);
                monoio::spawn(async move {
                    handle(stream, state).await;
                    open.set(open.get() - 1);
                });
            }
            Err(e) if crate::listen::out_of_resources(&e) => {
                // Out of descriptors: accepting again at once would fail again at once.
                warn!(error = %e, "admin accept: out of resources; backing off");
                monoio::time::sleep(crate::listen::ACCEPT_BACKOFF).await;
            }
            Err(e) => debug!(error = %e, "admin accept failed"),
        }
    }
}

async fn handle(mut stream: TcpStream, state: Rc<ControlState>) {
    let limits = http1::Limits::default();
    let mut buf = Vec::with_capacity(4096);
    // The whole head within ADMIN_TIMEOUT: a client that sends nothing (or trickles) is
    // closed, not kept for ever.
    let head = monoio::time::timeout(ADMIN_TIMEOUT, read_head(&mut stream, &mut buf, &limits));
    let head_len = match head.await {
        Err(_elapsed) => {
            debug!("admin: no complete request within {ADMIN_TIMEOUT:?}; closing");
            return;
        }
        Ok(Head::Gone) => return,
        Ok(Head::Bad) => {
            return respond(stream, Reply::new(400, "text/plain", b"bad request\n")).await
        }
        Ok(Head::Complete(n)) => n,
    };
    let mut request = Request::new();
    let reply = match http1::parse_request(&buf[..head_len], &limits, &mut request) {
        Ok(()) => {
            let target = request.path.get(&buf);
            let path = target.split(|&b| b == b'?').next().unwrap_or_default();
            let post = request.method == Method::Post;
            match (path, post) {
                (b"/reload" | b"/drain_listeners" | b"/quitquitquit", true) => {
                    mutate(path, &state).await
                }
                (b"/reload" | b"/drain_listeners" | b"/quitquitquit", false) => {
                    Reply::new(405, TEXT, b"use POST\n")
                }
                _ => route(path, &state),
            }
        }
        Err(_) => Reply::new(400, "text/plain", b"bad request\n"),
    };
    respond(stream, reply).await;
}

const TEXT: &str = "text/plain; charset=UTF-8";

enum Head {
    Complete(usize),
    Bad,
    Gone,
}

async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>, limits: &http1::Limits) -> Head {
    let mut scanner = HeadScanner::new();
    loop {
        let len = buf.len();
        if len >= MAX_ADMIN_HEAD {
            return Head::Gone;
        }
        buf.reserve(4096);
        let (result, slice) = stream
            .read(monoio::buf::IoBufMut::slice_mut(std::mem::take(buf), len..))
            .await;
        *buf = slice.into_inner();
        match result {
            Ok(0) | Err(_) => return Head::Gone,
            Ok(_) => {}
        }
        match scanner.scan(buf, limits) {
            Ok(Some(n)) => return Head::Complete(n),
            Ok(None) => {}
            Err(_) => return Head::Bad,
        }
    }
}

/// The POST endpoints: a message to the control loop, and for `/reload` its answer.
async fn mutate(path: &[u8], state: &ControlState) -> Reply {
    let gone = || Reply::new(503, TEXT, b"shutting down\n");
    match path {
        b"/reload" => {
            let (tx, rx) = flume::bounded(1);
            if state
                .requests
                .send_async(AdminRequest::Reload(tx))
                .await
                .is_err()
            {
                return gone();
            }
            match rx.recv_async().await {
                Ok(Ok(version)) => Reply::new(
                    200,
                    TEXT,
                    format!("reloaded: config version {version}\n").as_bytes(),
                ),
                Ok(Err(e)) => Reply::new(400, TEXT, format!("{e}\n").as_bytes()),
                Err(_) => gone(),
            }
        }
        b"/drain_listeners" | b"/quitquitquit" => {
            let request = if path == b"/quitquitquit" {
                AdminRequest::Quit
            } else {
                AdminRequest::DrainListeners
            };
            match state.requests.send_async(request).await {
                Ok(()) => Reply::new(200, TEXT, b"OK\n"),
                Err(_) => gone(),
            }
        }
        _ => Reply::new(404, TEXT, b"invalid path. try /\n"),
    }
}

fn route(path: &[u8], state: &ControlState) -> Reply {
    match path {
        b"/ready" => {
            let server = state.server_state.get();
            let status = if server == super::ServerState::Live { 200 } else { 503 };
            Reply::new(status, TEXT, format!("{}\n", server.name()).as_bytes())
        }
        b"/stats" => Reply::new(200, TEXT, state.render_stats().as_bytes()),
        b"/" => Reply::new(
            200,
            TEXT,
            b"admin commands are:\n  /ready: 200 LIVE when serving\n  /stats: counters and gauges, summed over workers\n  POST /reload: reload the config file\n  POST /drain_listeners: stop accepting, keep serving\n  POST /quitquitquit: drain and exit\n",
        ),
        _ => Reply::new(404, TEXT, b"invalid path. try /\n"),
    }
}

async fn respond(mut stream: TcpStream, reply: Reply) {
    let mut out = Vec::new();
    let date_line = crate::clock::date_line(std::time::SystemTime::now());
    reply.render(&mut out, true, false, &date_line, |_| {});
    let _ = monoio::time::timeout(ADMIN_TIMEOUT, stream.write_all(out)).await;
}
