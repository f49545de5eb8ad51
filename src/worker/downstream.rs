//! The client side of a connection, as the HTTP code reaches it: the transport seam.
//!
//! Plain TCP, Unix stream sockets, and TLS over TCP (`crate::tls`: records decrypted
//! into the caller's buffer, so the codec, the exchange and the filters do not change).
//! Each operation returns the variant's own future (one of them, as an [`Either`])
//! rather than wrapping it in an `async fn`: a wrapper would add a future layer to every
//! read and write of every request (about 100 instructions each, measured on the
//! upstream side), and a further state to every connection's task. The TLS variant's
//! futures fit within the connection's existing size (the guard in `worker` checks);
//! the upstream side's TLS futures are larger and are boxed there (`upstream::conn`).

use std::{future::Future, io, os::fd::RawFd};

use monoio::{
    buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut},
    io::{AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent},
    net::{TcpStream, UnixStream},
    BufResult,
};

use super::either::Either;
use crate::tls::stream::{self as tls, SharedSession};

/// A client connection's transport.
#[derive(Debug)]
pub(super) enum Downstream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// A Unix stream socket.
    Unix(UnixStream),
    /// TLS over TCP, after its handshake.
    Tls(Box<TlsDownstream>),
}

/// A client connection over TLS.
#[derive(Debug)]
pub(super) struct TlsDownstream {
    pub tcp: TcpStream,
    pub session: SharedSession,
    /// The client's verified certificate, when it sent one.
    pub peer: Option<Box<crate::tls::identity::PeerIdentity>>,
    /// The server name the client asked for (SNI), for policies on it.
    pub sni: Option<Box<str>>,
}

impl Downstream {
    /// Waits until the transport has bytes to read (monoio's readiness wait).
    pub(super) fn readable(&self, relaxed: bool) -> impl Future<Output = io::Result<()>> + '_ {
        match self {
            Downstream::Tcp(s) => Either::First {
                future: s.readable(relaxed),
            },
            Downstream::Unix(s) => Either::Second {
                future: s.readable(relaxed),
            },
            Downstream::Tls(t) => Either::Third {
                future: async move {
                    // Plaintext already decrypted counts as readable.
                    let pending = t
                        .session
                        .borrow_mut()
                        .process_new_packets()
                        .is_ok_and(|s| s.plaintext_bytes_to_read() > 0 || s.peer_has_closed());
                    if pending {
                        return Ok(());
                    }
                    t.tcp.readable(relaxed).await
                },
            },
        }
    }

    /// The address the client connected to (a `getsockname`); `None` on a Unix socket.
    pub(super) fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Downstream::Tcp(s) => s.local_addr().ok(),
            Downstream::Tls(t) => t.tcp.local_addr().ok(),
            Downstream::Unix(_) => None,
        }
    }

    /// Whether the client connected over TLS.
    pub(super) fn is_tls(&self) -> bool {
        matches!(self, Downstream::Tls(_))
    }

    /// The client's verified certificate, on a TLS connection that has one.
    pub(super) fn peer_identity(&self) -> Option<&crate::tls::identity::PeerIdentity> {
        match self {
            Downstream::Tls(t) => t.peer.as_deref(),
            _ => None,
        }
    }

    /// The server name the client sent in its TLS handshake.
    pub(super) fn server_name(&self) -> Option<&str> {
        match self {
            Downstream::Tls(t) => t.sni.as_deref(),
            _ => None,
        }
    }

    /// What the access log prints about a TLS connection; `None` on plaintext.
    pub(super) fn tls_details(&self, by: Option<&str>) -> Option<crate::access_log::TlsDetails> {
        let Downstream::Tls(t) = self else {
            return None;
        };
        let session = t.session.borrow();
        let sni = match &*session {
            rustls::Connection::Server(s) => s.server_name().map(Into::into),
            rustls::Connection::Client(_) => None,
        };
        let tls13 = crate::tls::session::Negotiated::of(&session).tls13;
        let peer = t.peer.as_deref();
        Some(crate::access_log::TlsDetails {
            sni,
            version: if tls13 { "TLSv1.3" } else { "TLSv1.2" },
            peer_uri_san: peer.map(|p| p.uris.join(",")).unwrap_or_default().into(),
            peer_dns_san: peer.map(|p| p.dns.join(",")).unwrap_or_default().into(),
            peer_subject: peer.map(|p| p.subject.as_str()).unwrap_or_default().into(),
            peer_fingerprint_256: peer.map(|p| p.hash.as_str()).unwrap_or_default().into(),
            local_uri_san: by.unwrap_or_default().into(),
        })
    }

    /// The socket, for a non-blocking peek.
    pub(super) fn raw_fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        match self {
            Downstream::Tcp(s) => s.as_raw_fd(),
            Downstream::Unix(s) => s.as_raw_fd(),
            Downstream::Tls(t) => t.tcp.as_raw_fd(),
        }
    }
}

impl AsyncReadRent for Downstream {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            Downstream::Tcp(s) => Either::First {
                future: s.read(buf),
            },
            Downstream::Unix(s) => Either::Second {
                future: s.read(buf),
            },
            Downstream::Tls(t) => Either::Third {
                future: tls::read(&mut t.tcp, &t.session, buf, None),
            },
        }
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            Downstream::Tcp(s) => Either::First {
                future: s.readv(buf),
            },
            Downstream::Unix(s) => Either::Second {
                future: s.readv(buf),
            },
            Downstream::Tls(_) => Either::Third {
                future: std::future::ready(tls::unsupported(buf)),
            },
        }
    }
}

impl CancelableAsyncReadRent for Downstream {
    fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            Downstream::Tcp(s) => Either::First {
                future: s.cancelable_read(buf, c),
            },
            Downstream::Unix(s) => Either::Second {
                future: s.cancelable_read(buf, c),
            },
            Downstream::Tls(t) => Either::Third {
                future: tls::read(&mut t.tcp, &t.session, buf, Some(c)),
            },
        }
    }

    fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            Downstream::Tcp(s) => Either::First {
                future: s.cancelable_readv(buf, c),
            },
            Downstream::Unix(s) => Either::Second {
                future: s.cancelable_readv(buf, c),
            },
            Downstream::Tls(_) => Either::Third {
                future: std::future::ready(tls::unsupported(buf)),
            },
        }
    }
}

impl AsyncWriteRent for Downstream {
    fn write<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            Downstream::Tcp(s) => Either::First {
                future: s.write(buf),
            },
            Downstream::Unix(s) => Either::Second {
                future: s.write(buf),
            },
            Downstream::Tls(t) => Either::Third {
                future: tls::write(&mut t.tcp, &t.session, buf),
            },
        }
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            Downstream::Tcp(s) => Either::First {
                future: s.writev(buf),
            },
            Downstream::Unix(s) => Either::Second {
                future: s.writev(buf),
            },
            Downstream::Tls(_) => Either::Third {
                future: std::future::ready(tls::unsupported(buf)),
            },
        }
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        match self {
            Downstream::Tcp(s) => Either::First { future: s.flush() },
            Downstream::Unix(s) => Either::Second { future: s.flush() },
            Downstream::Tls(_) => Either::Third {
                future: std::future::ready(Ok(())),
            },
        }
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        match self {
            Downstream::Tcp(s) => Either::First {
                future: s.shutdown(),
            },
            Downstream::Unix(s) => Either::Second {
                future: s.shutdown(),
            },
            Downstream::Tls(t) => Either::Third {
                future: tls::shutdown(&mut t.tcp, &t.session),
            },
        }
    }
}
