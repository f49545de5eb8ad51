//! The admin listener, served on the control thread (never on a worker).
//!
//! Endpoints: `/ready` (200 `LIVE` when serving, 503 with the state otherwise, as
//! Envoy's), `/stats` (text, `name: value` per line, summed over workers with relaxed
//! loads), and `/` (the list). Each answer closes the connection: admin traffic is rare
//! and this keeps the handler small.

use std::rc::Rc;

use monoio::{
    io::{AsyncReadRent, AsyncWriteRentExt},
    net::{TcpListener, TcpStream},
};
use tracing::debug;

use super::ControlState;
use crate::{
    http1::{self, HeadScanner, Request},
    local_reply::Reply,
};

const MAX_ADMIN_HEAD: usize = 16 * 1024;

/// Accepts admin connections for the life of the process.
pub async fn serve(socket: TcpListener, state: Rc<ControlState>) {
    loop {
        match socket.accept().await {
            Ok((stream, _)) => {
                monoio::spawn(handle(stream, Rc::clone(&state)));
            }
            Err(e) => debug!(error = %e, "admin accept failed"),
        }
    }
}

async fn handle(mut stream: TcpStream, state: Rc<ControlState>) {
    let limits = http1::Limits::default();
    let mut scanner = HeadScanner::new();
    let mut buf = Vec::with_capacity(4096);
    let head_len = loop {
        let len = buf.len();
        if len >= MAX_ADMIN_HEAD {
            return;
        }
        buf.reserve(4096);
        let (result, slice) = stream
            .read(monoio::buf::IoBufMut::slice_mut(buf, len..))
            .await;
        buf = slice.into_inner();
        match result {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        match scanner.scan(&buf, &limits) {
            Ok(Some(n)) => break n,
            Ok(None) => {}
            Err(_) => {
                return respond(stream, Reply::new(400, "text/plain", b"bad request\n")).await
            }
        }
    };
    let mut request = Request::new();
    let reply = match http1::parse_request(&buf[..head_len], &limits, &mut request) {
        Ok(()) => {
            let target = request.path.get(&buf);
            let path = target.split(|&b| b == b'?').next().unwrap_or_default();
            route(path, &state)
        }
        Err(_) => Reply::new(400, "text/plain", b"bad request\n"),
    };
    respond(stream, reply).await;
}

fn route(path: &[u8], state: &ControlState) -> Reply {
    const TEXT: &str = "text/plain; charset=UTF-8";
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
            b"admin commands are:\n  /ready: 200 LIVE when serving\n  /stats: counters and gauges, summed over workers\n",
        ),
        _ => Reply::new(404, TEXT, b"invalid path. try /\n"),
    }
}

async fn respond(mut stream: TcpStream, reply: Reply) {
    let _ = stream.write_all(reply.bytes(true, false)).await;
}
