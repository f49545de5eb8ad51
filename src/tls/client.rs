//! A worker's TLS origination for one cluster: its rustls client configuration, the
//! server name each connection asks for and checks, and session resumption.
//!
//! Resumption without a lock: rustls's own session store takes a mutex on every
//! handshake. Ours ([`WorkerSessions`]) is a handle to a thread-local map, so each
//! worker resumes with the tickets it received itself and no thread ever waits.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, NamedGroup, SignatureScheme};

use super::session::Session;
use crate::config::tls::{provider, ClientTls, PeerValidation, SanMatch};
use crate::config::Address;

/// One cluster's TLS on one worker.
#[derive(Debug)]
pub struct Connector {
    config: Arc<ClientConfig>,
    sni: Option<ServerName<'static>>,
}

impl Connector {
    /// Builds this worker's configuration for a cluster.
    pub fn new(settings: &ClientTls) -> Result<Self, String> {
        let provider = Arc::new(provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&super::server::versions(settings.versions))
            .map_err(|e| e.to_string())?;
        let verifier: Arc<dyn ServerCertVerifier> = match &settings.validation {
            Some(validation) => {
                Arc::new(Verifier::new(validation, settings.verify_name, &provider)?)
            }
            None => Arc::new(NoVerification(Arc::clone(&provider))),
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &settings.certificate {
            None => builder.with_no_client_auth(),
            Some(material) => {
                let key = PrivateKeyDer::try_from(material.key.to_vec())
                    .map_err(|e| format!("private key: {e}"))?;
                builder
                    .with_client_auth_cert(material.chain.clone(), key)
                    .map_err(|e| e.to_string())?
            }
        };
        config.alpn_protocols = settings.alpn.clone();
        config.enable_sni = settings.sni.is_some() || settings.verify_name || settings.auto_sni;
        config.resumption = if settings.session_resumption {
            rustls::client::Resumption::store(Arc::new(WorkerSessions))
        } else {
            rustls::client::Resumption::disabled()
        };
        let sni = match &settings.sni {
            Some(name) => {
                Some(ServerName::try_from(name.clone()).map_err(|e| format!("sni {name:?}: {e}"))?)
            }
            None => None,
        };
        Ok(Connector {
            config: Arc::new(config),
            sni,
        })
    }

    /// The rustls configuration, for a client off the workers (a background fetch).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// A session for a new connection to `address` (found by resolving `hostname`,
    /// when it was).
    pub fn session(&self, address: &Address, hostname: Option<&str>) -> Result<Session, String> {
        let name = match (&self.sni, hostname, address) {
            (Some(sni), _, _) => sni.clone(),
            (None, Some(host), _) => {
                ServerName::try_from(host.to_owned()).map_err(|e| format!("{host:?}: {e}"))?
            }
            (None, None, Address::Tcp(addr)) => ServerName::IpAddress(addr.ip().into()),
            (None, None, Address::Unix(_)) => {
                ServerName::try_from("localhost").map_err(|e| e.to_string())?
            }
        };
        rustls::ClientConnection::new(Arc::clone(&self.config), name)
            .map(Session::Client)
            .map_err(|e| e.to_string())
    }
}

/// Checks the server's chain against the roots, then (unless told not to) its name,
/// then the accepted subject alt names.
#[derive(Debug)]
struct Verifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    verify_name: bool,
    names: Vec<SanMatch>,
}

impl Verifier {
    fn new(
        validation: &PeerValidation,
        verify_name: bool,
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, String> {
        let roots = validation.roots()?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(provider),
        )
        .with_crls(validation.crls.iter().cloned())
        .build()
        .map_err(|e| e.to_string())?;
        Ok(Verifier {
            inner,
            verify_name,
            names: validation.subject_alt_names.clone(),
        })
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(_) => {}
            // The chain verified (webpki checks it before the name); Envoy's configs
            // check names only through `match_typed_subject_alt_names`.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.verify_name => {}
            Err(e) => return Err(e),
        }
        if !self.names.is_empty() {
            super::server::check_names(end_entity, &self.names)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// No certificate check (an Envoy cluster without a `validation_context`, and the load
/// generator's `--insecure`); the handshake signatures are still verified, so the peer
/// holds the key it presents.
#[derive(Debug)]
pub struct NoVerification(pub Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Server names a worker remembers sessions for; the oldest is forgotten beyond it.
const MAX_SERVERS: usize = 256;
/// TLS 1.3 tickets kept per server name (a server sends two by default).
const MAX_TICKETS: usize = 4;

#[derive(Debug, Default)]
struct Remembered {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
}

#[derive(Debug, Default)]
struct Sessions {
    by_name: HashMap<ServerName<'static>, Remembered>,
    order: VecDeque<ServerName<'static>>,
}

impl Sessions {
    fn entry(&mut self, name: ServerName<'static>) -> &mut Remembered {
        if !self.by_name.contains_key(&name) {
            if self.order.len() >= MAX_SERVERS {
                if let Some(oldest) = self.order.pop_front() {
                    self.by_name.remove(&oldest);
                }
            }
            self.order.push_back(name.clone());
        }
        self.by_name.entry(name).or_default()
    }
}

thread_local! {
    /// This worker's upstream sessions.
    static SESSIONS: RefCell<Sessions> = RefCell::new(Sessions::default());
}

/// The calling worker's session store (a handle; the map is thread-local).
#[derive(Debug)]
struct WorkerSessions;

impl ClientSessionStore for WorkerSessions {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        SESSIONS.with_borrow_mut(|s| s.entry(name).kx_hint = Some(group));
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        SESSIONS.with_borrow(|s| s.by_name.get(&name.to_owned())?.kx_hint)
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        SESSIONS.with_borrow_mut(|s| s.entry(name).tls12 = Some(value));
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        SESSIONS.with_borrow(|s| s.by_name.get(&name.to_owned())?.tls12.clone())
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        SESSIONS.with_borrow_mut(|s| {
            if let Some(r) = s.by_name.get_mut(name) {
                r.tls12 = None;
            }
        });
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        SESSIONS.with_borrow_mut(|s| {
            let tickets = &mut s.entry(name).tls13;
            if tickets.len() >= MAX_TICKETS {
                tickets.pop_front();
            }
            tickets.push_back(value);
        });
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        SESSIONS.with_borrow_mut(|s| s.by_name.get_mut(name)?.tls13.pop_back())
    }
}
