//! TLS for `https://` targets: rustls (aws-lc-rs provider, as ringway's) driven over monoio's owned-buffer
//! TCP stream through rustls's sans-IO API.
//!
//! rustls never touches the socket: ciphertext read from the socket goes in with
//! `read_tls` + `process_new_packets`, plaintext comes out of `reader()`; plaintext goes
//! in with `writer()` and ciphertext comes out with `write_tls`, which we send. Each
//! direction keeps one reused buffer (16 KiB, one TLS record), so a keep-alive request
//! costs no allocation here either.
//!
//! By default every connection does a full handshake: session resumption is disabled so
//! that `--conn-rate` (and `--new-conn`) load full handshakes, which is what a connection
//! rate against a TLS endpoint should measure; keep-alive connections do one handshake
//! and then carry many requests. `--tls-resume` keeps the sessions servers give
//! (tickets) and resumes with them; resumed handshakes are counted. Certificates are checked against the system's roots
//! (plus `--cacert` files) unless `--insecure` says to accept any certificate; even then
//! the handshake signatures are verified, so the TLS work per connection is the same.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use ringway::tls::client::NoVerification;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// One TLS record plus header room: what one socket read hands rustls at most.
const TLS_BUF: usize = 16 * 1024 + 512;

/// How certificates are checked.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Accept any certificate (test certificates); signatures are still verified.
    pub insecure: bool,
    /// PEM files whose certificates are trusted besides the system's roots.
    pub ca_files: Vec<std::path::PathBuf>,
    /// Resume sessions (tickets) instead of a full handshake per connection.
    pub resume: bool,
}

/// Builds the client configuration every connection of the run shares.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut config = if opts.insecure {
        builder
            .dangerous()
            // Any certificate, any name; handshake signatures still checked.
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        // Unreadable system certificates only narrow what is trusted: each connection
        // to a server they would have vouched for then fails with a clear message.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        for file in &opts.ca_files {
            for cert in read_pem_certs(file)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.resumption = if opts.resume {
        rustls::client::Resumption::in_memory_sessions(4096)
    } else {
        rustls::client::Resumption::disabled()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_pem_certs(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", file.display()));
    }
    Ok(certs)
}

/// A TLS client connection over a TCP stream.
#[derive(Debug)]
pub struct TlsStream {
    tcp: TcpStream,
    conn: ClientConnection,
    /// Ciphertext to send; empty between calls.
    out: Vec<u8>,
    /// Ciphertext read; empty between calls.
    input: Vec<u8>,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

impl TlsStream {
    /// Runs the handshake over `tcp`. Errors say what failed (`TLS: invalid peer
    /// certificate: UnknownIssuer`, a closed connection, …).
    pub async fn handshake(
        tcp: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<TlsStream> {
        let conn = ClientConnection::new(config, name).map_err(tls_error)?;
        let mut stream = TlsStream {
            tcp,
            conn,
            out: Vec::with_capacity(TLS_BUF),
            input: Vec::with_capacity(TLS_BUF),
        };
        while stream.conn.is_handshaking() {
            stream.flush().await?;
            if stream.conn.is_handshaking() && stream.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "TLS: the server closed the connection during the handshake",
                ));
            }
        }
        stream.flush().await?;
        Ok(stream)
    }

    /// Sends every pending TLS record.
    async fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.out.clear();
            self.conn.write_tls(&mut self.out)?;
            let out = std::mem::take(&mut self.out);
            let (result, out) = self.tcp.write_all(out).await;
            self.out = out;
            result?;
        }
        Ok(())
    }

    /// Reads ciphertext once and processes it; 0 at the end of the TCP stream. On a TLS
    /// error the alert rustls queued is sent (best effort) before the error returns.
    async fn fill(&mut self) -> io::Result<usize> {
        let mut input = std::mem::take(&mut self.input);
        input.clear();
        let (result, input) = self.tcp.read(input).await;
        self.input = input;
        let n = result?;
        if n == 0 {
            return Ok(0);
        }
        let mut rest = &self.input[..n];
        while !rest.is_empty() {
            self.conn.read_tls(&mut rest)?;
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.flush().await;
                return Err(tls_error(e));
            }
        }
        if self.conn.wants_write() {
            self.flush().await?;
        }
        Ok(n)
    }

    /// Whether the handshake resumed a session.
    pub fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// Encrypts and sends `data`.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(data)?;
        self.flush().await
    }

    /// Reads plaintext into `buf[at..]`; 0 at the end of the stream (a close_notify or
    /// a TCP close: servers often close without close_notify, and the response parser
    /// decides whether the answer was complete).
    pub async fn read(&mut self, mut buf: Vec<u8>, at: usize) -> (io::Result<usize>, Vec<u8>) {
        loop {
            match self.conn.reader().read(&mut buf[at..]) {
                Ok(n) => return (Ok(n), buf),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return (Ok(0), buf),
                Err(e) => return (Err(e), buf),
            }
            match self.fill().await {
                Ok(0) => return (Ok(0), buf),
                Ok(_) => {}
                Err(e) => return (Err(e), buf),
            }
        }
    }
}
