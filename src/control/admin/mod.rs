//! The admin listener, served on the control thread (never on a worker).
//!
//! Envoy's endpoints and answers (`../shared/docs/envoy-compat.md` section 2), each
//! rendered from what the control thread holds, so a scrape never waits for a worker:
//! `/ready` (200 `LIVE` when serving, 503 with the state otherwise), `/stats` (text,
//! JSON or Prometheus, `filter`, `usedonly`, `type`, `histogram_buckets`: `stats`),
//! `/stats/prometheus`, `/server_info` (`server_info`), `/listeners`, `/clusters`
//! (`clusters`), `/help` and `/`, ringway's `/dashboard` (a self-contained page polling
//! `/stats` and `/clusters`: `dashboard`); and, by POST only (a GET is
//! answered 400 and changes nothing, as in Envoy): `/healthcheck/fail` and
//! `/healthcheck/ok`, `/reset_counters`, `/logging`, `/drain_listeners`, `/quitquitquit`, and
//! ringway's `/reload` (200 with the new config version once every worker applied it,
//! 400 with the error text, file, line and field, when the config is refused).
//! Mutations that change what workers do go to the control loop as messages, so they
//! are serialised with signals and each other. Each answer closes the connection: admin
//! traffic is rare and this keeps the handler small. A `/stats` scrape is rendered on a
//! thread of its own (milliseconds for a large process), so `/ready` and the control loop
//! never wait behind one.

mod certs;
mod clusters;
mod dashboard;
mod query;
mod server_info;
mod stats;
mod usage;

pub use server_info::version;

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
            let (path, query) = match target.iter().position(|&b| b == b'?') {
                Some(q) => (&target[..q], &target[q + 1..]),
                None => (target, &b""[..]),
            };
            let query = query::Query::parse(query);
            let post = request.method == Method::Post;
            match (path, post) {
                (MUTATIONS!(), true) => mutate(path, &query, &state).await,
                // Envoy: a mutation requested by GET has no effect and gets a 400.
                (MUTATIONS!(), false) => {
                    Reply::new(400, TEXT, b"This endpoint changes the server: use POST.\n")
                }
                (b"/stats", _) => stats::stats(&state, &query, None).await,
                (b"/stats/prometheus", _) => {
                    stats::stats(&state, &query, Some(stats::Format::Prometheus)).await
                }
                _ => route(path, &query, &state),
            }
        }
        Err(_) => Reply::new(400, "text/plain", b"bad request\n"),
    };
    respond(stream, reply).await;
}

/// The endpoints that change something: POST only.
macro_rules! MUTATIONS {
    () => {
        b"/reload"
            | b"/drain_listeners"
            | b"/quitquitquit"
            | b"/healthcheck/fail"
            | b"/healthcheck/ok"
            | b"/reset_counters"
            | b"/logging"
            | b"/reopen_logs"
            | b"/runtime_modify"
    };
}
use MUTATIONS;

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

/// The POST endpoints: a message to the control loop (and for `/reload` its answer), or
/// a change to what the control thread reports.
async fn mutate(path: &[u8], query: &query::Query, state: &ControlState) -> Reply {
    let gone = || Reply::new(503, TEXT, b"shutting down\n");
    let ok = || Reply::new(200, TEXT, b"OK\n");
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
        // Refused by name, with the status Envoy gives when it has no admin layer to
        // write to.
        b"/runtime_modify" => Reply::new(
            503,
            TEXT,
            b"runtime_modify is not supported: ringway's runtime is the bootstrap's static layers, read at load\n",
        ),
        b"/reopen_logs" => match state.requests.send_async(AdminRequest::ReopenLogs).await {
            Ok(()) => ok(),
            Err(_) => gone(),
        },
        b"/drain_listeners" | b"/quitquitquit" => {
            let request = if path == b"/quitquitquit" {
                AdminRequest::Quit
            } else {
                if query.has("inboundonly") {
                    // Envoy stops only `traffic_direction: INBOUND` listeners; ringway's
                    // listeners have no direction yet, so every one is inbound.
                    debug!("admin: drain_listeners?inboundonly: every listener is inbound");
                }
                AdminRequest::DrainListeners
            };
            match state.requests.send_async(request).await {
                Ok(()) => ok(),
                Err(_) => gone(),
            }
        }
        b"/healthcheck/fail" => {
            state.health_failed.set(true);
            // A single writer (this thread); workers read it for their health checks.
            state
                .health_shared
                .store(true, std::sync::atomic::Ordering::Relaxed);
            ok()
        }
        b"/healthcheck/ok" => {
            state.health_failed.set(false);
            state
                .health_shared
                .store(false, std::sync::atomic::Ordering::Relaxed);
            ok()
        }
        b"/reset_counters" => {
            state.reset_counters();
            ok()
        }
        b"/logging" => logging(state, query),
        _ => Reply::new(404, TEXT, b"invalid path. try /help\n"),
    }
}

const HELP: &str = "admin commands are:
  /: this list
  /help: this list
  /ready: 200 LIVE when serving; 503 and the state otherwise
  /server_info: the server's state, version, uptime and command line (JSON)
  /stats: every stat (?filter=REGEX, ?usedonly, ?type=Counters|Gauges|All, ?format=json|prometheus,
    ?histogram_buckets=cumulative|disjoint)
  /stats/prometheus: every stat in Prometheus' text format (?filter=, ?usedonly)
  /listeners: each listener's name and bound address (?format=json)
  /clusters: every cluster and its hosts, with each host's stats (?format=json)
  /config_dump: the serving config as Envoy's ConfigDump (JSON; secrets redacted)
  /certs: the certificates the config presents and trusts, with their expiry (JSON)
  /dashboard: a live dashboard for a browser (polls /stats and /clusters every second)
  /usage: each API consumer's requests, status classes and bytes since the last reset (?format=json|csv)
  /memory: the heap's committed bytes and the resident set (JSON, Envoy's fields)
  /runtime: the runtime layers of an Envoy bootstrap and their values (JSON)
  /hot_restart_version: which binaries can hot-restart each other
  POST /healthcheck/fail: report DRAINING (/ready answers 503) while serving on
  POST /healthcheck/ok: undo /healthcheck/fail
  POST /reset_counters: counters read 0 from now on
  POST /reopen_logs: reopen the access log's file (as SIGUSR1)
  POST /logging: list the loggers; ?level=trace|debug|info|warning|error|critical|off sets the level
  POST /drain_listeners: stop accepting, keep serving open connections
  POST /quitquitquit: drain and exit
  POST /reload: reload the config file
";

/// Envoy's level names.
const LEVELS: [&str; 8] = [
    "trace", "debug", "info", "warning", "warn", "error", "critical", "off",
];

/// `POST /logging`: without parameters, lists the loggers; `?level=L`, `?ringway=L` or
/// `?paths=ringway:L` sets the level (ringway has one logger, `ringway`: Envoy's
/// per-component loggers have no counterpart). Answers with the list, as Envoy does.
fn logging(state: &ControlState, query: &query::Query) -> Reply {
    let wanted = query
        .get("level")
        .or_else(|| query.get("ringway"))
        .map(str::to_owned)
        .or_else(|| {
            let paths = query.get("paths")?;
            let levels: Vec<&str> = paths
                .split(',')
                .filter_map(|p| p.split_once(':').map(|(_, level)| level))
                .collect();
            levels.last().map(|l| (*l).to_owned())
        });
    let unknown = query
        .names()
        .find(|n| !matches!(*n, "level" | "ringway" | "paths"));
    if let Some(name) = unknown {
        return Reply::new(
            400,
            TEXT,
            format!("unknown logger {name:?}: ringway has one logger, `ringway`\n").as_bytes(),
        );
    }
    if let Some(level) = wanted {
        if !LEVELS.contains(&level.as_str()) {
            return Reply::new(
                400,
                TEXT,
                format!("invalid level {level:?}: one of {}\n", LEVELS.join(", ")).as_bytes(),
            );
        }
        if let Err(e) = state.options.log_control.set(&level) {
            return Reply::new(500, TEXT, format!("{e}\n").as_bytes());
        }
        *state.log_level.borrow_mut() = level;
    }
    let body = format!("active loggers:\n  ringway: {}\n", state.log_level.borrow());
    Reply::new(200, TEXT, body.as_bytes())
}

/// An address as Envoy's `config.core.v3.Address` in proto3 JSON: `socket_address`, or
/// `pipe` for a Unix socket.
fn json_address(address: &crate::config::Address, out: &mut String) {
    use crate::{config::Address, stats::render::json_string};
    match address {
        Address::Tcp(addr) => {
            out.push_str("{\"socket_address\":{\"address\":");
            json_string(&addr.ip().to_string(), out);
            out.push_str(&format!(",\"port_value\":{}}}}}", addr.port()));
        }
        Address::Unix(path) => {
            out.push_str("{\"pipe\":{\"path\":");
            json_string(&path.display().to_string(), out);
            out.push_str("}}");
        }
    }
}

/// `/listeners`: `<name>::<address>` per line, or (`?format=json`) Envoy's
/// `admin.v3.Listeners` with each listener's bound address.
fn listeners(state: &ControlState, query: &query::Query) -> Reply {
    let bound = state.bound.borrow();
    if query.get("format") == Some("json") {
        let mut out = String::from("{\"listener_statuses\":[");
        for (i, (name, address)) in bound.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            crate::stats::render::json_string(name, &mut out);
            out.push_str(",\"local_address\":");
            json_address(address, &mut out);
            out.push('}');
        }
        out.push_str("]}\n");
        return Reply::new(200, "application/json", out.as_bytes());
    }
    let mut out = String::new();
    for (name, address) in bound.iter() {
        out.push_str(&format!("{name}::{address}\n"));
    }
    Reply::new(200, TEXT, out.as_bytes())
}

fn route(path: &[u8], query: &query::Query, state: &ControlState) -> Reply {
    match path {
        b"/ready" => {
            let server = state.effective_state();
            let status = if server == super::ServerState::Live {
                200
            } else {
                503
            };
            Reply::new(status, TEXT, format!("{}\n", server.name()).as_bytes())
        }
        b"/server_info" => Reply::new(
            200,
            "application/json",
            server_info::server_info(state).as_bytes(),
        ),
        b"/listeners" => listeners(state, query),
        b"/clusters" => clusters::clusters(state, query.get("format") == Some("json")),
        b"/config_dump" => config_dump(state, query),
        b"/certs" => Reply::new(
            200,
            "application/json",
            certs::render(&state.certs.borrow(), unix_now()).as_bytes(),
        ),
        b"/dashboard" => dashboard::page(),
        b"/memory" => Reply::new(200, "application/json", memory().as_bytes()),
        b"/runtime" => {
            let (document, _) = &*state.document.borrow();
            let runtime = crate::config::runtime_dump(document);
            Reply::new(200, "application/json", runtime.as_bytes())
        }
        // As Envoy's: the version alone, no line end.
        b"/hot_restart_version" => {
            let disabled = state.options.tolerated.disable_hot_restart;
            Reply::new(200, TEXT, super::hot_restart_version(disabled).as_bytes())
        }
        b"/usage" => usage::usage(state, query.get("format")),
        b"/" | b"/help" => Reply::new(200, TEXT, HELP.as_bytes()),
        _ => Reply::new(404, TEXT, b"invalid path. try /help\n"),
    }
}

/// `/memory`: Envoy's `admin.v3.Memory` (its 64-bit numbers as JSON strings, as
/// proto3's JSON mapping writes them), from the figures `server.memory_*` report:
/// mimalloc's committed bytes stand for tcmalloc's allocated bytes and heap size, the
/// resident set for the physical bytes; tcmalloc's page-heap and thread-cache figures
/// have no counterpart and read 0.
fn memory() -> String {
    let m = crate::allocator::memory();
    let fields = [
        ("allocated", m.committed),
        ("heap_size", m.committed),
        ("pageheap_unmapped", 0),
        ("pageheap_free", 0),
        ("total_thread_cache", 0),
        ("total_physical_bytes", m.resident),
    ];
    let body: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!(" \"{name}\": \"{value}\""))
        .collect();
    format!("{{\n{}\n}}\n", body.join(",\n"))
}

/// `/config_dump`: the serving config as Envoy's `admin.v3.ConfigDump` (secrets
/// redacted). Envoy's `resource`, `mask` and `name_regex` filters are refused by name
/// rather than ignored; `include_eds` has nothing to add (no EDS).
fn config_dump(state: &ControlState, query: &query::Query) -> Reply {
    if let Some(param) = ["resource", "mask", "name_regex"]
        .into_iter()
        .find(|p| query.has(p))
    {
        let message = format!("/config_dump?{param} is not supported yet\n");
        return Reply::new(400, TEXT, message.as_bytes());
    }
    let (document, loaded) = &*state.document.borrow();
    let dump = crate::config::config_dump(document, loaded);
    Reply::new(200, "application/json", dump.as_bytes())
}

async fn respond(mut stream: TcpStream, reply: Reply) {
    let mut out = Vec::new();
    let date_line = crate::clock::date_line(std::time::SystemTime::now());
    reply.render(&mut out, true, false, &date_line, |_| {});
    let _ = monoio::time::timeout(ADMIN_TIMEOUT, stream.write_all(out)).await;
}

/// Seconds since the Unix epoch.
pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `server.days_until_first_cert_expiring`, when the config has certificates.
pub(super) fn days_until_first_cert_expiring(state: &ControlState) -> Option<u64> {
    certs::days_until_first_expiring(&state.certs.borrow(), unix_now())
}
