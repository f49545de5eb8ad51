//! A worker's TLS termination for one listener: its rustls configuration, certificate
//! choice by SNI, client-certificate checks, and the cap on handshakes in progress.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureAlgorithm,
    SignatureScheme,
};

use super::session::Session;
use super::ticket::{TicketKeys, Ticketer};
use crate::config::tls::{
    provider, CertificateInfo, CertifiedMaterial, PeerValidation, SanMatch, ServerTls,
};

/// One listener's TLS on one worker.
#[derive(Debug)]
pub struct Acceptor {
    /// Replaced when the ticket keys rotate or a certificate file changes.
    config: RefCell<Arc<ServerConfig>>,
    /// The configuration's certificate choice, asked again after a failed handshake.
    names: Arc<SniResolver>,
    /// What the configuration is built from (this worker's copy).
    settings: ServerTls,
    /// Handshakes in progress on this worker.
    in_flight: Cell<usize>,
    /// Our own identity in `x-forwarded-client-cert` (`By=`): the first URI subject alt
    /// name of our certificates.
    by: Option<String>,
    /// What session tickets are bound to (`ticket`).
    ticket_context: [u8; 32],
}

/// A handshake counted against the worker's cap until dropped.
#[derive(Debug)]
pub struct HandshakeSlot<'a>(&'a Cell<usize>);

impl Drop for HandshakeSlot<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl Acceptor {
    /// Builds this worker's configuration.
    pub fn new(settings: &ServerTls, keys: &TicketKeys) -> Result<Self, String> {
        let ticket_context = ticket_context(settings);
        let (config, names) = server_config(settings, keys, ticket_context)?;
        let by = settings.certificates.iter().find_map(|c| {
            let info = CertificateInfo::parse(c.chain.first()?).ok()?;
            info.uris.into_iter().next()
        });
        Ok(Acceptor {
            config: RefCell::new(config),
            names,
            settings: settings.clone(),
            in_flight: Cell::new(0),
            by,
            ticket_context,
        })
    }

    /// Whether a client that sent server name `name` (or none) has a certificate here:
    /// always, unless the listener serves its certificates' names only.
    pub fn serves(&self, name: Option<&str>) -> bool {
        !self.settings.names_only || self.names.named(name).is_some()
    }

    /// Our identity for `x-forwarded-client-cert`'s `By=`.
    pub fn by(&self) -> Option<&str> {
        self.by.as_deref()
    }

    /// The listener's settings.
    pub fn settings(&self) -> &ServerTls {
        &self.settings
    }

    /// New ticket keys: sessions from now on use them.
    pub fn set_ticket_keys(&self, keys: &TicketKeys) {
        if !self.settings.session_tickets {
            return;
        }
        let mut config = ServerConfig::clone(&self.config.borrow());
        config.ticketer = Arc::new(Ticketer::new(keys, self.ticket_context));
        *self.config.borrow_mut() = Arc::new(config);
    }

    /// Counts a handshake, unless the worker already has `max_handshakes` in progress.
    pub fn begin(&self) -> Option<HandshakeSlot<'_>> {
        let n = self.in_flight.get();
        if n >= self.settings.max_handshakes {
            return None;
        }
        self.in_flight.set(n + 1);
        Some(HandshakeSlot(&self.in_flight))
    }

    /// A session for a new connection.
    pub fn session(&self) -> Result<Session, rustls::Error> {
        let config = Arc::clone(&self.config.borrow());
        rustls::ServerConnection::new(config).map(Session::Server)
    }
}

/// The protocol versions a side allows.
pub(super) fn versions(
    v: crate::config::tls::Versions,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut out = Vec::with_capacity(2);
    if v.tls13 {
        out.push(&rustls::version::TLS13);
    }
    if v.tls12 {
        out.push(&rustls::version::TLS12);
    }
    out
}

/// A hash of what a resumed session skips checking again: the listener's certificates
/// and its client-certificate policy (CA, CRLs, names, required or not).
fn ticket_context(settings: &ServerTls) -> [u8; 32] {
    use aws_lc_rs::digest::{Context, SHA256};
    let mut hash = Context::new(&SHA256);
    for material in &settings.certificates {
        for cert in &material.chain {
            hash.update(cert);
        }
    }
    match &settings.client_auth {
        None => hash.update(b"no client certificates"),
        Some(auth) => {
            hash.update(if auth.required {
                b"required"
            } else {
                b"optional"
            });
            let v = &auth.validation;
            for cert in v.ca.iter().flatten() {
                hash.update(cert);
            }
            for crl in &v.crls {
                hash.update(crl);
            }
            hash.update(format!("{:?}", v.subject_alt_names).as_bytes());
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(hash.finish().as_ref());
    out
}

fn server_config(
    settings: &ServerTls,
    keys: &TicketKeys,
    ticket_context: [u8; 32],
) -> Result<(Arc<ServerConfig>, Arc<SniResolver>), String> {
    let provider = Arc::new(provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions(settings.versions))
        .map_err(|e| e.to_string())?;
    let builder = match &settings.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let verifier = client_verifier(&auth.validation, auth.required, &provider)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let resolver = Arc::new(SniResolver::new(
        &settings.certificates,
        settings.names_only,
        &provider,
    )?);
    let mut config = builder.with_cert_resolver(Arc::clone(&resolver) as _);
    config.alpn_protocols = settings.alpn.clone();
    // Stateless resumption only: a per-worker session cache could not resume a client
    // that lands on another worker, and a shared one would need a lock.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    if settings.session_tickets {
        config.ticketer = Arc::new(Ticketer::new(keys, ticket_context));
    } else {
        config.send_tls13_tickets = 0;
    }
    // 0-RTT stays off (replayable requests).
    config.max_early_data_size = 0;
    Ok((Arc::new(config), resolver))
}

/// Checks client certificates against the CA (and CRLs), then their names.
fn client_verifier(
    validation: &PeerValidation,
    required: bool,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let roots = validation.roots()?;
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
            .with_crls(validation.crls.iter().cloned());
    if !required {
        builder = builder.allow_unauthenticated();
    }
    let inner = builder.build().map_err(|e| e.to_string())?;
    if validation.subject_alt_names.is_empty() {
        return Ok(inner);
    }
    Ok(Arc::new(NameCheckingVerifier {
        inner,
        names: validation.subject_alt_names.clone(),
    }))
}

/// Adds a subject-alt-name check to a chain verifier (a SPIFFE ID, say).
#[derive(Debug)]
struct NameCheckingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    names: Vec<SanMatch>,
}

impl ClientCertVerifier for NameCheckingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_names(end_entity, &self.names)?;
        Ok(verified)
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

/// Whether a verified certificate carries one of the accepted subject alt names.
pub(super) fn check_names(
    cert: &CertificateDer<'_>,
    names: &[SanMatch],
) -> Result<(), rustls::Error> {
    let info = CertificateInfo::parse(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    if SanMatch::any_of(names, &info) {
        Ok(())
    } else {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ))
    }
}

/// Chooses a certificate by the server name the client sent (exact names first, then
/// `*.` wildcards one label deep), and among the certificates for that name the first
/// whose key type the client can verify (ECDSA before RSA when it can do both); the
/// first configured certificate serves clients that name nothing we have, unless the
/// listener serves its names only (`ServerTls::names_only`: Envoy's named filter
/// chains, whose wildcards take any depth).
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Vec<Arc<CertifiedKey>>>,
    /// By the part after `*.`.
    wildcard: HashMap<String, Vec<Arc<CertifiedKey>>>,
    default: Vec<Arc<CertifiedKey>>,
    names_only: bool,
}

impl SniResolver {
    fn new(
        certificates: &[CertifiedMaterial],
        names_only: bool,
        provider: &rustls::crypto::CryptoProvider,
    ) -> Result<Self, String> {
        let mut resolver = SniResolver {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: Vec::new(),
            names_only,
        };
        for (i, material) in certificates.iter().enumerate() {
            let mut certified =
                crate::config::tls::certified_key(material.chain.clone(), &material.key, provider)?;
            certified.ocsp = material.ocsp.as_ref().map(|(der, _)| der.to_vec());
            let certified = Arc::new(certified);
            let first_names = &certificates[0].names;
            if i == 0 || material.names == *first_names {
                resolver.default.push(Arc::clone(&certified));
            }
            for name in &material.names {
                let table = match name.strip_prefix("*.") {
                    Some(rest) => resolver.wildcard.entry(rest.to_owned()),
                    None => resolver.exact.entry(name.clone()),
                };
                table.or_default().push(Arc::clone(&certified));
            }
        }
        for list in resolver
            .exact
            .values_mut()
            .chain(resolver.wildcard.values_mut())
            .chain(std::iter::once(&mut resolver.default))
        {
            // ECDSA (and Ed25519) first: cheaper to sign with, and any client that offers
            // them can take them.
            list.sort_by_key(|k| k.key.algorithm() == SignatureAlgorithm::RSA);
        }
        Ok(resolver)
    }

    fn candidates(&self, name: Option<&str>) -> &[Arc<CertifiedKey>] {
        match self.named(name) {
            Some(found) => found,
            None if self.names_only => &[],
            None => &self.default,
        }
    }

    /// The certificates for `name`, if it is one of ours.
    fn named(&self, name: Option<&str>) -> Option<&[Arc<CertifiedKey>]> {
        let name = name?.trim_end_matches('.').to_ascii_lowercase();
        if let Some(found) = self.exact.get(&name) {
            return Some(found);
        }
        // A certificate's wildcard covers one label (RFC 6125); Envoy's chain match
        // walks up the name (`*.b.example.com`, then `*.example.com`, ...).
        let mut rest = name.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(found) = self.wildcard.get(parent) {
                return Some(found);
            }
            if !self.names_only {
                break;
            }
            rest = parent;
        }
        None
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let candidates = self.candidates(hello.server_name());
        let schemes = hello.signature_schemes();
        candidates
            .iter()
            .find(|k| {
                let alg = k.key.algorithm();
                schemes.iter().any(|s| scheme_algorithm(*s) == Some(alg))
            })
            .or_else(|| candidates.first())
            .cloned()
    }
}

fn scheme_algorithm(scheme: SignatureScheme) -> Option<SignatureAlgorithm> {
    use SignatureScheme as S;
    Some(match scheme {
        S::ECDSA_NISTP256_SHA256 | S::ECDSA_NISTP384_SHA384 | S::ECDSA_NISTP521_SHA512 => {
            SignatureAlgorithm::ECDSA
        }
        S::RSA_PKCS1_SHA256
        | S::RSA_PKCS1_SHA384
        | S::RSA_PKCS1_SHA512
        | S::RSA_PSS_SHA256
        | S::RSA_PSS_SHA384
        | S::RSA_PSS_SHA512 => SignatureAlgorithm::RSA,
        S::ED25519 => SignatureAlgorithm::ED25519,
        _ => return None,
    })
}

/// Which stat a failed handshake counts in (Envoy's `ssl.*` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The client sent no certificate where one is required (`ssl.fail_verify_no_cert`).
    NoClientCert,
    /// Its certificate names none of the accepted identities (`ssl.fail_verify_san`).
    ClientSan,
    /// Its certificate did not verify: unknown CA, expired, revoked (`ssl.fail_verify_error`).
    ClientCert,
    /// Anything else: no common version or cipher, a malformed message, a closed
    /// connection, a timeout (`ssl.connection_error`).
    Other,
}

impl HandshakeFailure {
    /// Classifies the error a handshake ended with.
    pub fn of(error: &std::io::Error) -> Self {
        let Some(tls) = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        else {
            return HandshakeFailure::Other;
        };
        match tls {
            rustls::Error::NoCertificatesPresented => HandshakeFailure::NoClientCert,
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
            | rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                ..
            }) => HandshakeFailure::ClientSan,
            rustls::Error::InvalidCertificate(_) => HandshakeFailure::ClientCert,
            _ => HandshakeFailure::Other,
        }
    }
}
