//! Moving records between a socket and a session: the async half of TLS.
//!
//! Each function takes the socket (or one half of it) and the session, so the same code
//! serves a client connection held whole, the halves of a tunnel and the halves of an
//! upstream connection. The session sits in a `RefCell` that is never borrowed across an
//! await: a read in flight and a write in flight (a tunnel, an upstream answering while
//! its request body is still being sent) each take it only between socket operations.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use monoio::{
    buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut},
    io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent},
    BufResult,
};

use super::session::{self, give_chunk, take_chunk, Plain, Session, RECORD_CHUNK};

/// A session shared by the two halves of one connection (one thread).
pub type SharedSession = Rc<RefCell<Session>>;

/// Wraps a session for a connection: no buffer limit inside rustls, because every write
/// is flushed before it completes (nothing accumulates), and a limit would make rustls
/// take only part of a write.
pub fn share(mut session: Session) -> SharedSession {
    session.set_buffer_limit(None);
    Rc::new(RefCell::new(session))
}

/// Reads plaintext into `buf`: what the session already decrypted, else records read
/// from `io` (one read, with `cancel` when given). 0 at the end of the stream, which is
/// a close_notify; TCP closing without one is an `UnexpectedEof` error, so that a
/// response whose end is the connection's end cannot be cut short unnoticed by
/// whoever can send a FIN (the truncation attack).
pub async fn read<R, T>(
    io: &mut R,
    session: &RefCell<Session>,
    mut buf: T,
    cancel: Option<CancelHandle>,
) -> BufResult<usize, T>
where
    R: CancelableAsyncReadRent,
    T: IoBufMut,
{
    loop {
        match session::take_plaintext(&mut session.borrow_mut(), &mut buf) {
            Ok(Plain::Bytes(n)) => return (Ok(n), buf),
            Ok(Plain::Closed) => return (Ok(0), buf),
            Ok(Plain::Empty) => {}
            Err(e) => return (Err(e), buf),
        }
        let chunk = take_chunk();
        let (result, chunk) = match &cancel {
            Some(c) => io.cancelable_read(chunk, c.clone()).await,
            None => io.read(chunk).await,
        };
        let absorbed = match result {
            // TCP ended: the end of the stream only after a close_notify.
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection without a TLS close_notify",
            )),
            Ok(n) => session::absorb(&mut session.borrow_mut(), &chunk[..n]),
            Err(e) => Err(e),
        };
        give_chunk(chunk);
        if let Err(e) = absorbed {
            return (Err(e), buf);
        }
    }
}

/// Encrypts all of `buf` and sends the records.
pub async fn write<W, T>(io: &mut W, session: &RefCell<Session>, buf: T) -> BufResult<usize, T>
where
    W: AsyncWriteRent,
    T: IoBuf,
{
    let sealed = session::seal(&mut session.borrow_mut(), &buf);
    match sealed {
        Ok(n) => match flush(io, session).await {
            Ok(()) => (Ok(n), buf),
            Err(e) => (Err(e), buf),
        },
        Err(e) => (Err(e), buf),
    }
}

/// Sends every record the session has queued, a chunk at a time.
pub async fn flush<W: AsyncWriteRent>(io: &mut W, session: &RefCell<Session>) -> io::Result<()> {
    while session.borrow().wants_write() {
        let mut out = take_chunk();
        if let Err(e) = session::records(&mut session.borrow_mut(), &mut out, RECORD_CHUNK) {
            give_chunk(out);
            return Err(e);
        }
        let (result, out) = io.write_all(out).await;
        give_chunk(out);
        result?;
    }
    Ok(())
}

/// Ends the session (close_notify) and the socket's sending side.
pub async fn shutdown<W: AsyncWriteRent>(io: &mut W, session: &RefCell<Session>) -> io::Result<()> {
    session.borrow_mut().send_close_notify();
    let flushed = flush(io, session).await;
    let closed = io.shutdown().await;
    flushed.and(closed)
}

/// Runs a handshake to its end over `io` (both directions of one socket, or a
/// [`Joined`] pair of halves). The caller bounds it in time. A failed handshake sends
/// the alert rustls chose before it returns the error.
pub async fn handshake<S>(io: &mut S, session: &RefCell<Session>) -> io::Result<()>
where
    S: AsyncReadRent + AsyncWriteRent,
{
    loop {
        flush(io, session).await?;
        if !session.borrow().is_handshaking() {
            return Ok(());
        }
        let chunk = take_chunk();
        let (result, chunk) = io.read(chunk).await;
        let absorbed = match result {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection during the TLS handshake",
            )),
            Ok(n) => session::absorb(&mut session.borrow_mut(), &chunk[..n]),
            Err(e) => Err(e),
        };
        give_chunk(chunk);
        if let Err(e) = absorbed {
            // The alert (a bad certificate, no common protocol...) tells the peer why.
            let _ = flush(io, session).await;
            return Err(e);
        }
    }
}

/// A read half and a write half as one stream, for a handshake.
#[derive(Debug)]
pub struct Joined<'a, R, W>(pub &'a mut R, pub &'a mut W);

impl<R: AsyncReadRent, W> AsyncReadRent for Joined<'_, R, W> {
    fn read<T: IoBufMut>(
        &mut self,
        buf: T,
    ) -> impl std::future::Future<Output = BufResult<usize, T>> {
        self.0.read(buf)
    }

    fn readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
    ) -> impl std::future::Future<Output = BufResult<usize, T>> {
        self.0.readv(buf)
    }
}

impl<R, W: AsyncWriteRent> AsyncWriteRent for Joined<'_, R, W> {
    fn write<T: IoBuf>(
        &mut self,
        buf: T,
    ) -> impl std::future::Future<Output = BufResult<usize, T>> {
        self.1.write(buf)
    }

    fn writev<T: IoVecBuf>(
        &mut self,
        buf: T,
    ) -> impl std::future::Future<Output = BufResult<usize, T>> {
        self.1.writev(buf)
    }

    fn flush(&mut self) -> impl std::future::Future<Output = io::Result<()>> {
        self.1.flush()
    }

    fn shutdown(&mut self) -> impl std::future::Future<Output = io::Result<()>> {
        self.1.shutdown()
    }
}

/// Vectored reads and writes are not offered over TLS (nothing on the request path
/// uses them on a client or upstream connection).
pub fn unsupported<T>(buf: T) -> BufResult<usize, T> {
    (
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "vectored I/O over TLS",
        )),
        buf,
    )
}

/// The reading half of a TLS connection (a tunnel's, an upstream connection's).
#[derive(Debug)]
pub struct ReadHalf<R> {
    pub io: R,
    pub session: SharedSession,
}

/// The writing half of a TLS connection.
#[derive(Debug)]
pub struct WriteHalf<W> {
    pub io: W,
    pub session: SharedSession,
}

impl<R: CancelableAsyncReadRent> AsyncReadRent for ReadHalf<R> {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        read(&mut self.io, &self.session, buf, None).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        unsupported(buf)
    }
}

impl<R: CancelableAsyncReadRent> CancelableAsyncReadRent for ReadHalf<R> {
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        read(&mut self.io, &self.session, buf, Some(c)).await
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        _: CancelHandle,
    ) -> BufResult<usize, T> {
        unsupported(buf)
    }
}

impl<W: AsyncWriteRent> AsyncWriteRent for WriteHalf<W> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        write(&mut self.io, &self.session, buf).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        unsupported(buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        shutdown(&mut self.io, &self.session).await
    }
}
