//! The client side of a connection, as the HTTP code reaches it: the transport seam.
//!
//! Plain TCP and Unix stream sockets today. A TLS termination (rustls: records copied,
//! its buffers held per connection) becomes a variant here, and the codec, the exchange
//! and the filters do not change. Each operation returns the variant's own future (one
//! of them, as an [`Either`]) rather than wrapping it in an `async fn`: a wrapper would
//! add a future layer to every read and write of every request (about 100 instructions
//! each, measured on the upstream side), and a further state to every connection's task.

use std::{future::Future, io, os::fd::RawFd};

use monoio::{
    buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut},
    io::{AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent},
    net::{TcpStream, UnixStream},
    BufResult,
};

use super::either::Either;

/// A client connection's transport.
#[derive(Debug)]
pub(super) enum Downstream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// A Unix stream socket.
    Unix(UnixStream),
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
        }
    }

    /// The address the client connected to (a `getsockname`); `None` on a Unix socket.
    pub(super) fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Downstream::Tcp(s) => s.local_addr().ok(),
            Downstream::Unix(_) => None,
        }
    }

    /// The socket, for a non-blocking peek.
    pub(super) fn raw_fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        match self {
            Downstream::Tcp(s) => s.as_raw_fd(),
            Downstream::Unix(s) => s.as_raw_fd(),
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
        }
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        match self {
            Downstream::Tcp(s) => Either::First { future: s.flush() },
            Downstream::Unix(s) => Either::Second { future: s.flush() },
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
        }
    }
}
