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

/// Feeds ciphertext to the session and processes it. Bytes after the peer's
/// close_notify are dropped: rustls takes none once it has seen one (it would return 0
/// for ever, and a loop waiting for it to take them would never end).
pub fn absorb(session: &mut Session, mut cipher: &[u8]) -> io::Result<()> {
    while !cipher.is_empty() {
        let taken = session.read_tls(&mut cipher)?;
        let state = session.process_new_packets().map_err(tls_error)?;
        if taken == 0 || state.peer_has_closed() {
            break;
        }
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
    /// The cipher suite and key-exchange group agreed on, as positions in
    /// `tls::names::CIPHERS` and `CURVES` (`None`: not one of them).
    pub cipher: Option<usize>,
    pub curve: Option<usize>,
}

impl Negotiated {
    /// Reads them off an established session.
    pub fn of(session: &Session) -> Negotiated {
        Negotiated {
            tls13: session.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3),
            resumed: session.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            cipher: session
                .negotiated_cipher_suite()
                .and_then(|s| super::names::cipher_index(s.suite())),
            curve: session
                .negotiated_key_exchange_group()
                .and_then(|g| super::names::curve_index(g.name())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_after_a_close_notify_do_not_stall_absorb() {
        use std::sync::Arc;
        let provider = Arc::new(crate::config::tls::provider());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut server =
            Session::Server(rustls::ServerConnection::new(Arc::new(server_config)).unwrap());
        let mut client =
            rustls::ClientConnection::new(Arc::new(client_config), "a.test".try_into().unwrap())
                .unwrap();
        let mut wire = Vec::new();
        while client.is_handshaking() || server.is_handshaking() {
            wire.clear();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            absorb(&mut server, &wire).unwrap();
            wire.clear();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            let mut rest = &wire[..];
            while !rest.is_empty() {
                client.read_tls(&mut rest).unwrap();
                client.process_new_packets().unwrap();
            }
        }
        client.send_close_notify();
        wire.clear();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        // Garbage after the alert, more than one `read_tls` takes: returns, not spins.
        wire.extend_from_slice(&[0x17; 20_000]);
        absorb(&mut server, &wire).unwrap();
        assert!(server.process_new_packets().unwrap().peer_has_closed());
    }
}
