//! A connection to an endpoint: TCP (IPv4, IPv6) or a Unix stream socket.
//!
//! It implements monoio's owned-buffer read and write traits by delegating to the
//! socket, so the forwarding code is the same for both kinds.

use std::{io, time::Duration};

use monoio::{
    buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut},
    io::{AsyncReadRent, AsyncWriteRent},
    net::{TcpStream, UnixStream},
    BufResult,
};

use crate::config::EndpointAddress;

/// An open upstream connection.
#[derive(Debug)]
pub enum UpstreamConn {
    /// TCP.
    Tcp(TcpStream),
    /// Unix stream socket.
    Unix(UnixStream),
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// The endpoint did not answer within the cluster's `connect_timeout`.
    Timeout,
    /// The kernel said no (refused, unreachable, no such socket file...).
    Io(io::Error),
}

impl UpstreamConn {
    /// Connects with a deadline. TCP connections get `TCP_NODELAY`: heads and small
    /// bodies must not wait for Nagle.
    pub async fn connect(
        address: &EndpointAddress,
        timeout: Duration,
    ) -> Result<Self, ConnectError> {
        let connect = async {
            match address {
                EndpointAddress::Tcp(addr) => {
                    let stream = TcpStream::connect_addr(*addr).await?;
                    stream.set_nodelay(true)?;
                    Ok(UpstreamConn::Tcp(stream))
                }
                EndpointAddress::Unix(path) => {
                    Ok(UpstreamConn::Unix(UnixStream::connect(path).await?))
                }
            }
        };
        match monoio::time::timeout(timeout, connect).await {
            Ok(result) => result.map_err(ConnectError::Io),
            Err(_) => Err(ConnectError::Timeout),
        }
    }
}

impl UpstreamConn {
    /// Whether nothing arrived on an idle connection: a non-blocking peek. The origin
    /// closing it (0 bytes), sending something unasked (a 408 before it closes) or an
    /// error all make it unusable.
    pub fn is_quiet(&self) -> bool {
        use std::os::fd::AsRawFd;
        let fd = match self {
            UpstreamConn::Tcp(s) => s.as_raw_fd(),
            UpstreamConn::Unix(s) => s.as_raw_fd(),
        };
        let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
        let mut probe = [0u8; 1];
        matches!(
            nix::sys::socket::recv(fd, &mut probe, flags),
            Err(nix::errno::Errno::EAGAIN)
        )
    }
}

impl AsyncReadRent for UpstreamConn {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Tcp(s) => s.read(buf).await,
            UpstreamConn::Unix(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Tcp(s) => s.readv(buf).await,
            UpstreamConn::Unix(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for UpstreamConn {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Tcp(s) => s.write(buf).await,
            UpstreamConn::Unix(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Tcp(s) => s.writev(buf).await,
            UpstreamConn::Unix(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            UpstreamConn::Tcp(s) => s.shutdown().await,
            UpstreamConn::Unix(s) => s.shutdown().await,
        }
    }
}
