//! The synchronous steps of a TLS session: records in, plaintext out, plaintext in,
//! records out; and the per-worker free list of ciphertext chunks they use.

use std::cell::RefCell;
use std::io::{self, Read, Write};

use monoio::buf::{IoBuf, IoBufMut};

use super::io_buf;

/// A TLS session, client or server.
pub type Session = rustls::Connection;

/// One record and its header, with room: what one socket read hands rustls at most.
pub const RECORD_CHUNK: usize = 16 * 1024 + 1024;

/// Idle ciphertext chunks a worker keeps; more are freed.
const MAX_FREE: usize = 64;

thread_local! {
    /// This worker's idle ciphertext chunks. A connection holds one only while a read or
    /// a write is in flight, so idle TLS connections hold none.
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A ciphertext chunk, empty, from this worker's free list.
pub fn take_chunk() -> Vec<u8> {
    FREE.with_borrow_mut(|free| free.pop())
        .unwrap_or_else(|| Vec::with_capacity(RECORD_CHUNK))
}

/// Gives a chunk back (a chunk that grew is freed instead).
pub fn give_chunk(mut chunk: Vec<u8>) {
    if chunk.capacity() != RECORD_CHUNK {
        return;
    }
    chunk.clear();
    FREE.with_borrow_mut(|free| {
        if free.len() < MAX_FREE {
            free.push(chunk);
        }
    });
}

/// A TLS failure as an I/O error (the alert rustls queued goes out with the next write).
pub fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Feeds ciphertext to the session and processes it.
pub fn absorb(session: &mut Session, mut cipher: &[u8]) -> io::Result<()> {
    while !cipher.is_empty() {
        session.read_tls(&mut cipher)?;
        session.process_new_packets().map_err(tls_error)?;
    }
    Ok(())
}

/// What the session has for a reader.
#[derive(Debug)]
pub enum Plain {
    /// Bytes were copied (at least one).
    Bytes(usize),
    /// The peer ended the session (close_notify).
    Closed,
    /// Nothing yet: read more ciphertext.
    Empty,
}

/// Copies decrypted plaintext into `buf`, as a socket read would fill it.
pub fn take_plaintext<T: IoBufMut>(session: &mut Session, buf: &mut T) -> io::Result<Plain> {
    let state = session.process_new_packets().map_err(tls_error)?;
    let available = state.plaintext_bytes_to_read();
    if available == 0 {
        return Ok(if state.peer_has_closed() {
            Plain::Closed
        } else {
            Plain::Empty
        });
    }
    let n = io_buf::fill_with(buf, available, |dst| session.reader().read(dst))?;
    Ok(if n == 0 {
        Plain::Empty
    } else {
        Plain::Bytes(n)
    })
}

/// Encrypts the bytes of `buf` (all of them: rustls buffers what it cannot send yet).
pub fn seal<T: IoBuf>(session: &mut Session, buf: &T) -> io::Result<usize> {
    let plain = io_buf::as_slice(buf);
    session.writer().write_all(plain)?;
    Ok(plain.len())
}

/// Moves records the session wants sent into `out` (cleared first), at most `limit`
/// bytes, so a chunk never grows past its size; call again while it comes back full.
pub fn records(session: &mut Session, out: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    out.clear();
    while session.wants_write() && out.len() < limit {
        let mut bounded = Bounded { out, limit };
        if session.write_tls(&mut bounded)? == 0 {
            break;
        }
    }
    Ok(())
}

/// A `Write` that appends to a vector up to a length.
struct Bounded<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
}

impl Write for Bounded<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = bytes.len().min(self.limit - self.out.len());
        self.out.extend_from_slice(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Facts about an established session for stats, logs and headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// TLS 1.3 (else 1.2).
    pub tls13: bool,
    /// The session was resumed.
    pub resumed: bool,
}

impl Negotiated {
    /// Reads them off an established session.
    pub fn of(session: &Session) -> Negotiated {
        Negotiated {
            tls13: session.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3),
            resumed: session.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        }
    }
}
