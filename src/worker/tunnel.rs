//! A connection after `101 Switching Protocols`: a byte tunnel between the client and
//! the upstream (WebSocket, or another protocol a route allows), until both are done.
//!
//! Both directions run at once, each one read and one write in flight at a time (the
//! write completing is the backpressure), so a peer that sends while the other side
//! echoes cannot deadlock the tunnel. Bytes already read on either side when the switch
//! happened go first: what the client sent after its request head, and what the
//! upstream sent after its `101` (already written to the client with the `101`). When a
//! side ends its sending (EOF), the other side's socket is shut down for writing and the
//! opposite direction goes on (a half-close, as TCP means it); an error ends both. If no
//! byte moves either way for the listener's `stream_idle_timeout`, both connections are
//! closed. The payload is never parsed: WebSocket framing, masking and close frames are
//! the endpoints' business.
//!
//! Costs: the client socket is split into owned halves (one `Rc` per tunnel), and each
//! direction holds one pooled chunk for the tunnel's life. The whole tunnel future is
//! boxed by the caller, so connections that never upgrade do not carry its size.

use std::{cell::Cell, time::Duration};

use monoio::{
    buf::IoBuf,
    io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable},
    time::Instant,
};

use super::{downstream::Downstream, WorkerContext};
use crate::{snapshot::ListenerSnapshot, stats::names::http as rq, upstream::conn::UpstreamConn};

/// Runs the tunnel until both directions have ended, or it was idle too long. `early`
/// is the client's read chunk with the bytes after its request head at `.1`.
pub(super) async fn run(
    client: Downstream,
    mut upstream: UpstreamConn,
    early: (Vec<u8>, usize),
    listener: &ListenerSnapshot,
    worker: &WorkerContext,
) -> super::connection::Ended {
    let stats = &listener.http_stats;
    stats.get(rq::DOWNSTREAM_CX_UPGRADES_TOTAL).inc();
    stats.get(rq::DOWNSTREAM_CX_UPGRADES_ACTIVE).inc();
    let idle = listener.stream_idle_timeout;
    let (up, down, ended) = match client {
        Downstream::Tcp(s) => {
            let (r, w) = s.into_split();
            both_ways((r, w), &mut upstream, early, idle, worker).await
        }
        Downstream::Unix(s) => {
            let (r, w) = s.into_split();
            both_ways((r, w), &mut upstream, early, idle, worker).await
        }
        Downstream::Tls(t) => {
            use crate::tls::stream::{ReadHalf, WriteHalf};
            let session = t.session;
            let (r, w) = t.tcp.into_split();
            let r = ReadHalf {
                io: r,
                session: std::rc::Rc::clone(&session),
            };
            let w = WriteHalf { io: w, session };
            both_ways((r, w), &mut upstream, early, idle, worker).await
        }
    };
    stats.get(rq::DOWNSTREAM_CX_RX_BYTES_TOTAL).add(up);
    stats.get(rq::DOWNSTREAM_CX_TX_BYTES_TOTAL).add(down);
    stats.get(rq::DOWNSTREAM_CX_UPGRADES_ACTIVE).dec();
    // The upgraded request stays open for the tunnel's life, as Envoy's stream does,
    // and every end resets it: the client ending first closes the connection remotely
    // with the request open; the upstream ending first ends the response, and Envoy
    // resets the request still open (`doEndStream`) before ringway closes; the idle
    // timeout finds the response started and resets the stream itself (a `tx_reset`,
    // heard as an `rx_reset` too), then closes.
    stats.get(rq::DOWNSTREAM_RQ_RX_RESET).inc();
    if ended == End::Idle {
        stats.get(rq::DOWNSTREAM_RQ_TX_RESET).inc();
    }
    super::connection::Ended {
        by_client: ended == End::Client,
        active_rq: ended == End::Client,
    }
}

/// Where a direction notes that its reader ended first, and which end it reads from.
type FirstEnd<'a> = (&'a Cell<Option<End>>, End);

/// Which end of a tunnel stopped it: the first side to end its sending, or its idle
/// timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Client,
    Upstream,
    Idle,
}

/// Both directions; returns the bytes moved client → upstream and upstream → client,
/// and which end stopped it.
async fn both_ways<R, W>(
    (mut client_read, mut client_write): (R, W),
    upstream: &mut UpstreamConn,
    (early, start): (Vec<u8>, usize),
    idle: Duration,
    worker: &WorkerContext,
) -> (u64, u64, End)
where
    R: AsyncReadRent,
    W: AsyncWriteRent,
{
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let last = Cell::new(Instant::now());
    let moved = (Cell::new(0u64), Cell::new(0u64));
    let first_end = Cell::new(None);
    let early = if early.capacity() == 0 {
        (worker.bufs.take(), 0)
    } else {
        (early, start)
    };
    let to_upstream = pump(
        &mut client_read,
        &mut upstream_write,
        early,
        (&last, &moved.0, (&first_end, End::Client)),
    );
    let to_client = pump(
        &mut upstream_read,
        &mut client_write,
        (worker.bufs.take(), 0),
        (&last, &moved.1, (&first_end, End::Upstream)),
    );
    let watchdog = async {
        loop {
            let quiet_until = last.get() + idle;
            if Instant::now() >= quiet_until {
                return;
            }
            monoio::time::sleep_until(quiet_until).await;
        }
    };
    let idle = monoio::select! {
        (a, b) = async { monoio::join!(to_upstream, to_client) } => {
            worker.bufs.give(a);
            worker.bufs.give(b);
            false
        }
        () = watchdog => true,
    };
    let ended = match first_end.get() {
        Some(end) if !idle => end,
        _ => End::Idle,
    };
    (moved.0.get(), moved.1.get(), ended)
}

/// One direction: writes what `buf` holds from `start`, then reads and writes until the
/// reader ends, then shuts the writer down, noting its reader's end as `first` when
/// the other's has not ended yet. Returns its chunk.
async fn pump<R, W>(
    reader: &mut R,
    writer: &mut W,
    (mut buf, mut start): (Vec<u8>, usize),
    (last, moved, (first, end)): (&Cell<Instant>, &Cell<u64>, FirstEnd<'_>),
) -> Vec<u8>
where
    R: AsyncReadRent,
    W: AsyncWriteRent,
{
    loop {
        if start < buf.len() {
            let len = buf.len();
            let (result, slice) = writer.write_all(buf.slice(start..len)).await;
            buf = slice.into_inner();
            if result.is_err() {
                // The writer's side is gone: it ended first.
                if first.get().is_none() {
                    first.set(Some(match end {
                        End::Client => End::Upstream,
                        _ => End::Client,
                    }));
                }
                return buf;
            }
            moved.set(moved.get() + (len - start) as u64);
            last.set(Instant::now());
        }
        buf.clear();
        start = 0;
        let (result, back) = reader.read(buf).await;
        buf = back;
        match result {
            Ok(n) if n > 0 => last.set(Instant::now()),
            // The sender is done (or gone): pass the end on, keep the other way open.
            _ => {
                if first.get().is_none() {
                    first.set(Some(end));
                }
                let _ = writer.shutdown().await;
                return buf;
            }
        }
    }
}
