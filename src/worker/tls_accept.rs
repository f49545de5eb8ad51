//! The TLS handshake of a new client connection, before its first request.
//!
//! Runs in the connection's own task, bounded by the listener's `handshake_timeout`
//! (from accept to the end of the handshake) and counted against the worker's
//! `max_handshakes` once the client has sent its first bytes: over the cap a connection
//! is closed at once, so a flood of handshakes costs the worker at most that many
//! handshakes' worth of CPU at a time and established connections keep being served
//! between them, while clients that connect and say nothing hold no slot (they only
//! wait out the timeout). On a listener that also takes plaintext (`allow_plaintext`,
//! Envoy's `tls_inspector` with a `raw_buffer` chain), the first byte tells: a TLS
//! handshake record starts with 0x16.

use std::time::Duration;

use tracing::debug;

use super::downstream::{Downstream, TlsDownstream};
use crate::{
    snapshot::ListenerSnapshot,
    stats::names::{http as rq, listener as cx},
    tls::{
        identity::PeerIdentity,
        server::HandshakeFailure,
        session::Negotiated,
        stream::{self, share},
    },
};

/// The first byte of a TLS handshake record (RFC 8446 5.1, `handshake(22)`).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Runs the handshake when the listener has TLS. `Err`: the connection is done (the
/// handshake failed or timed out, or the worker is at its cap), its stat counted, and
/// whether the client ended it (a failed handshake ends as Envoy's TLS socket ends one,
/// a remote close; a timeout, the cap or a session that could not start are ringway's
/// local close). A TLS connection is counted in the connection manager's
/// `downstream_cx_ssl_total` and `_active` as Envoy counts one, from the start (its
/// handshake's outcome aside): a connection that fails leaves `_active` here, one
/// that is served when it closes.
pub(super) async fn handshake(
    stream: Downstream,
    listener: &ListenerSnapshot,
) -> Result<Downstream, bool> {
    let counted = std::cell::Cell::new(false);
    let count = || {
        let http = &listener.http_stats;
        http.get(rq::DOWNSTREAM_CX_SSL_TOTAL).inc();
        http.get(rq::DOWNSTREAM_CX_SSL_ACTIVE).inc();
        counted.set(true);
    };
    let result = tls_handshake(stream, listener, count).await;
    if result.is_err() && counted.get() {
        listener.http_stats.get(rq::DOWNSTREAM_CX_SSL_ACTIVE).dec();
    }
    result
}

async fn tls_handshake(
    stream: Downstream,
    listener: &ListenerSnapshot,
    count_tls: impl FnOnce(),
) -> Result<Downstream, bool> {
    let Some(tls) = &listener.tls else {
        return Ok(stream);
    };
    let stats = &listener.cx_stats;
    let Ok(acceptor) = tls else {
        stats.get(cx::SSL_CONNECTION_ERROR).inc();
        return Err(false);
    };
    // TLS listeners are TCP listeners (the config refuses others).
    let Downstream::Tcp(mut tcp) = stream else {
        return Ok(stream);
    };
    let settings = acceptor.settings();
    let deadline = std::time::Instant::now() + settings.handshake_timeout;
    // Only TLS is served here: a TLS connection from the start. Where plaintext is
    // allowed too, the first byte tells (as Envoy's TLS inspector picks the chain).
    let mut count_tls = Some(count_tls);
    if !settings.allow_plaintext {
        if let Some(count) = count_tls.take() {
            count();
        }
    }
    match first_byte(&tcp, settings.handshake_timeout).await {
        Some(TLS_HANDSHAKE_RECORD) => {
            if let Some(count) = count_tls.take() {
                count();
            }
        }
        Some(_) if settings.allow_plaintext => return Ok(Downstream::Tcp(tcp)),
        // Not TLS: the handshake will fail on it and count it.
        Some(_) => {}
        None => {
            stats.get(cx::SSL_HANDSHAKE_TIMEOUT).inc();
            stats
                .get(cx::DOWNSTREAM_CX_TRANSPORT_SOCKET_CONNECT_TIMEOUT)
                .inc();
            stats.get(cx::SSL_CONNECTION_ERROR).inc();
            return Err(false);
        }
    }
    let Some(_slot) = acceptor.begin() else {
        stats.get(cx::SSL_HANDSHAKE_OVERFLOW).inc();
        return Err(false);
    };
    let session = match acceptor.session() {
        Ok(session) => share(session),
        Err(e) => {
            debug!(listener = &*listener.name, error = %e, "TLS session");
            stats.get(cx::SSL_CONNECTION_ERROR).inc();
            return Err(false);
        }
    };
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    let done = monoio::time::timeout(left, stream::handshake(&mut tcp, &session));
    match done.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            debug!(listener = &*listener.name, error = %e, "TLS handshake failed");
            if !acceptor.serves(server_name(&session.borrow())) {
                // No certificate for the name it sent: Envoy finds no filter chain and
                // closes the connection itself.
                stats.get(cx::NO_FILTER_CHAIN_MATCH).inc();
                return Err(false);
            }
            let counter = match HandshakeFailure::of(&e) {
                HandshakeFailure::NoClientCert => cx::SSL_FAIL_VERIFY_NO_CERT,
                HandshakeFailure::ClientSan => cx::SSL_FAIL_VERIFY_SAN,
                HandshakeFailure::ClientCert => cx::SSL_FAIL_VERIFY_ERROR,
                HandshakeFailure::Other => cx::SSL_CONNECTION_ERROR,
            };
            stats.get(counter).inc();
            return Err(true);
        }
        Err(_) => {
            stats.get(cx::SSL_HANDSHAKE_TIMEOUT).inc();
            stats
                .get(cx::DOWNSTREAM_CX_TRANSPORT_SOCKET_CONNECT_TIMEOUT)
                .inc();
            stats.get(cx::SSL_CONNECTION_ERROR).inc();
            return Err(false);
        }
    }
    let (negotiated, peer, sni) = {
        let session = session.borrow();
        let sni = server_name(&session).map(Into::into);
        let peer = match (&settings.client_auth, session.peer_certificates()) {
            (Some(_), Some(chain)) => {
                let details = settings.client_cert_details;
                PeerIdentity::of(chain, details.cert || details.chain).map(Box::new)
            }
            (Some(auth), None) if auth.required => {
                // Only a resumed session could get here (tickets are bound to the
                // listener's policy, so none should): refuse it all the same.
                stats.get(cx::SSL_FAIL_VERIFY_NO_CERT).inc();
                return Err(false);
            }
            (_, None) => {
                // Envoy counts every connection without a client certificate.
                stats.get(cx::SSL_NO_CERTIFICATE).inc();
                None
            }
            (None, Some(_)) => None,
        };
        (Negotiated::of(&session), peer, sni)
    };
    stats.get(cx::SSL_HANDSHAKE).inc();
    if negotiated.resumed {
        stats.get(cx::SSL_SESSION_REUSED).inc();
    }
    stats
        .get(if negotiated.tls13 {
            cx::SSL_VERSIONS_TLS13
        } else {
            cx::SSL_VERSIONS_TLS12
        })
        .inc();
    if let Some(agreed) = &listener.tls_stats {
        use crate::stats::names::listener_tls;
        if let Some(i) = negotiated.cipher {
            agreed.get(listener_tls::CIPHERS + i).inc();
        }
        if let Some(i) = negotiated.curve {
            agreed.get(listener_tls::CURVES + i).inc();
        }
    }
    Ok(Downstream::Tls(Box::new(TlsDownstream {
        tcp,
        session,
        peer,
        sni,
    })))
}

/// The first byte the client sends, without taking it (a peek); `None` if it sends
/// nothing within `timeout` or closes.
async fn first_byte(tcp: &monoio::net::TcpStream, timeout: Duration) -> Option<u8> {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        monoio::time::timeout(left, tcp.readable(false))
            .await
            .ok()?
            .ok()?;
        let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
        let mut byte = [0u8; 1];
        match nix::sys::socket::recv(tcp.as_raw_fd(), &mut byte, flags) {
            Ok(1) => return Some(byte[0]),
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            _ => return None,
        }
    }
}

/// The server name a client's hello sent (rustls keeps it even when no certificate
/// could be chosen for it).
fn server_name(session: &rustls::Connection) -> Option<&str> {
    match session {
        rustls::Connection::Server(s) => s.server_name(),
        rustls::Connection::Client(_) => None,
    }
}
