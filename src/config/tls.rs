//! TLS settings as the config states them, with the certificate material already read.
//!
//! Design: certificates and keys are read and checked when the config is loaded (a chain
//! that does not parse, a key that does not parse or does not match its certificate is a
//! config error with its position), and kept as DER bytes. Each worker then builds its
//! own rustls objects from these bytes (`crate::tls`), so no rustls object is shared
//! between cores. The same reader serves the certificate watcher, which re-reads changed
//! files and keeps the old material when the new one is bad.
//!
//! Nothing here touches a runtime: parsing is pure, over bytes read from files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{
    pem::PemObject, CertificateDer, CertificateRevocationListDer, PrivateKeyDer,
};

/// Where PEM text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    /// A file, read at load and watched for changes (relative names are relative to the
    /// config file's directory).
    File(PathBuf),
    /// Text written in the config.
    Inline(String),
}

impl PemSource {
    /// The PEM bytes.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            PemSource::Inline(text) => Ok(text.as_bytes().to_vec()),
            PemSource::File(path) => {
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
        }
    }

    /// The file, when the PEM comes from one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            PemSource::File(p) => Some(p),
            PemSource::Inline(_) => None,
        }
    }

    /// How /certs and the logs name it.
    pub fn describe(&self) -> String {
        match self {
            PemSource::File(p) => p.display().to_string(),
            PemSource::Inline(_) => "<inline>".to_owned(),
        }
    }
}

/// A certificate chain and its private key, read and checked.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedMaterial {
    /// End-entity certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key, DER (PKCS#8, SEC1 or PKCS#1).
    pub key: Arc<[u8]>,
    /// What the end-entity certificate is for: its DNS subject alt names (lower case,
    /// `*.` wildcards kept), or its common name when it has none.
    pub names: Vec<String>,
    /// When the end-entity certificate expires (seconds since the Unix epoch).
    pub not_after: i64,
    /// Its serial number, hex.
    pub serial: String,
    /// Where the chain and the key came from (watched when they are files).
    pub sources: [PemSource; 2],
    /// An OCSP response (DER) stapled to handshakes, and where it came from.
    pub ocsp: Option<(Arc<[u8]>, PemSource)>,
}

impl std::fmt::Debug for CertifiedMaterial {
    // The key stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedMaterial")
            .field("names", &self.names)
            .field("not_after", &self.not_after)
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl CertifiedMaterial {
    /// Reads a chain and its key and checks that they belong together.
    pub fn load(chain: PemSource, key: PemSource) -> Result<Self, String> {
        let chain_pem = chain.read()?;
        let key_pem = key.read()?;
        let certs = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: not a PEM certificate chain: {e}", chain.describe()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate in it", chain.describe()));
        }
        let private = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| format!("{}: no PEM private key in it: {e}", key.describe()))?;
        let key_der: Arc<[u8]> = private.secret_der().into();
        certified_key(certs.clone(), &key_der, &provider())
            .map_err(|e| format!("{} and {}: {e}", chain.describe(), key.describe()))?;
        let info =
            CertificateInfo::parse(&certs[0]).map_err(|e| format!("{}: {e}", chain.describe()))?;
        let names = if info.dns_names.is_empty() {
            info.common_name.into_iter().collect()
        } else {
            info.dns_names
        };
        Ok(CertifiedMaterial {
            chain: certs,
            key: key_der,
            names,
            not_after: info.not_after,
            serial: info.serial,
            sources: [chain, key],
            ocsp: None,
        })
    }

    /// Staples the OCSP response (DER) in `source` to this certificate's handshakes.
    pub fn with_ocsp(mut self, source: PemSource) -> Result<Self, String> {
        let der = source.read()?;
        if der.first() != Some(&0x30) {
            return Err(format!(
                "{}: not a DER OCSP response (it must start with a SEQUENCE)",
                source.describe()
            ));
        }
        self.ocsp = Some((der.into(), source));
        Ok(self)
    }

    /// The files this material was read from (chain, key, OCSP response).
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        let ocsp = self.ocsp.as_ref().map(|(_, s)| s);
        self.sources.iter().chain(ocsp).filter_map(PemSource::path)
    }

    /// Whole days from `now` (Unix seconds) until this certificate expires (0 when past).
    pub fn days_left(&self, now: i64) -> u64 {
        u64::try_from((self.not_after - now) / 86_400).unwrap_or(0)
    }
}

/// A chain and its key as rustls signs with them, after checking that the key is the
/// certificate's (their public keys compared). The check reads the certificate with
/// x509-parser rather than through rustls, which refuses X.509 v1 certificates that
/// OpenSSL-based servers (Envoy among them) serve.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key_der: &[u8],
    provider: &rustls::crypto::CryptoProvider,
) -> Result<rustls::sign::CertifiedKey, String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let key =
        PrivateKeyDer::try_from(key_der.to_vec()).map_err(|e| format!("not a private key: {e}"))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("unsupported private key: {e}"))?;
    let end = chain.first().ok_or("no certificate")?;
    let (_, cert) =
        X509Certificate::from_der(end).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    if let Some(spki) = signing.public_key() {
        if spki.as_ref() != cert.tbs_certificate.subject_pki.raw {
            return Err("the key does not fit the certificate (their public keys differ)".into());
        }
    }
    Ok(rustls::sign::CertifiedKey::new(chain, signing))
}

/// What a certificate says about its subject, for SNI, peer checks, logs and /certs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateInfo {
    /// DNS subject alt names, lower case.
    pub dns_names: Vec<String>,
    /// URI subject alt names (SPIFFE IDs among them).
    pub uris: Vec<String>,
    /// IP address subject alt names.
    pub ips: Vec<std::net::IpAddr>,
    /// The subject's common name.
    pub common_name: Option<String>,
    /// The subject as RFC 4514 text (`CN=a,O=b`).
    pub subject: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// Expiry, seconds since the Unix epoch.
    pub not_after: i64,
    /// Serial number, hex.
    pub serial: String,
}

impl CertificateInfo {
    /// Parses a DER certificate.
    pub fn parse(der: &[u8]) -> Result<Self, String> {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let mut info = CertificateInfo {
            subject: cert.subject().to_string(),
            common_name: cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_owned),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            serial: cert.raw_serial_as_string().replace(':', ""),
            ..CertificateInfo::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => info.dns_names.push(d.to_ascii_lowercase()),
                    GeneralName::URI(u) => info.uris.push((*u).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                            info.ips.push(v4.into());
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                            info.ips.push(v6.into());
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(info)
    }
}

/// The crypto provider of the whole binary (TLS both ways and every other use of
/// cryptography): aws-lc-rs, whose default key exchange groups start with the
/// X25519MLKEM768 hybrid. docs/tls.md has the measurement behind the choice.
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// TLS protocol versions a side accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// TLS 1.2 allowed.
    pub tls12: bool,
    /// TLS 1.3 allowed.
    pub tls13: bool,
}

impl Default for Versions {
    fn default() -> Self {
        Versions {
            tls12: true,
            tls13: true,
        }
    }
}

/// How a peer's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerValidation {
    /// Trusted roots (PEM certificates; the system's, read at load, when the config
    /// names none for an upstream).
    pub ca: Option<Vec<CertificateDer<'static>>>,
    /// Where the roots came from (`None`: the system's).
    pub ca_source: Option<PemSource>,
    /// Revocation lists checked against the peer's chain.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// Where they came from.
    pub crl_sources: Vec<PemSource>,
    /// The peer's certificate must carry one of these subject alt names (any kind:
    /// DNS, URI such as a SPIFFE ID, IP); empty: any name.
    pub subject_alt_names: Vec<SanMatch>,
}

/// The kind of a subject alt name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanKind {
    Dns,
    Uri,
    Ip,
}

impl PeerValidation {
    /// The files the roots and revocation lists were read from.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.ca_source
            .iter()
            .chain(&self.crl_sources)
            .filter_map(PemSource::path)
    }

    /// The trusted roots as rustls takes them: every certificate of a named CA file must
    /// parse as a trust anchor; of the system's roots, those that do not are skipped.
    pub fn roots(&self) -> Result<rustls::RootCertStore, String> {
        let mut roots = rustls::RootCertStore::empty();
        let ca = self.ca.iter().flatten().cloned();
        match &self.ca_source {
            None => {
                roots.add_parsable_certificates(ca);
            }
            Some(source) => {
                for cert in ca {
                    roots.add(cert).map_err(|e| {
                        format!("{}: not a usable CA certificate: {e}", source.describe())
                    })?;
                }
            }
        }
        Ok(roots)
    }

    /// Builds the verifier a worker will build (the roots and the revocation lists), so
    /// that a CA or CRL rustls cannot use is a config error at load, not a listener that
    /// closes every connection.
    pub fn check(&self) -> Result<(), String> {
        let roots = std::sync::Arc::new(self.roots()?);
        rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots,
            std::sync::Arc::new(provider()),
        )
        .with_crls(self.crls.iter().cloned())
        .build()
        .map(drop)
        .map_err(|e| {
            let crl = self.crl_sources.first().map(PemSource::describe);
            format!("{}: {e}", crl.unwrap_or_else(|| "CA".to_owned()))
        })
    }
}

/// One accepted subject alt name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SanMatch {
    /// The whole name, of any kind (DNS names compared without case: they are
    /// case-insensitive; URIs and addresses exactly).
    Exact(String),
    /// A prefix (`spiffe://cluster.local/ns/payments/`), of a name of any kind.
    Prefix(String),
    /// A suffix (`.example.com`), of a name of any kind.
    Suffix(String),
    /// Only names of `kind` (Envoy's `match_typed_subject_alt_names`; `None`: any kind,
    /// the deprecated `match_subject_alt_names`), compared without case when
    /// `ignore_case` (Envoy's `StringMatcher.ignore_case`), else exactly.
    Typed {
        kind: Option<SanKind>,
        pattern: Box<SanMatch>,
        ignore_case: bool,
    },
}

impl SanMatch {
    /// Whether a name of `kind` matches.
    pub fn matches(&self, kind: SanKind, name: &str) -> bool {
        match self {
            SanMatch::Exact(e) if kind == SanKind::Dns => name.eq_ignore_ascii_case(e),
            SanMatch::Exact(e) => name == e,
            SanMatch::Prefix(p) => name.starts_with(p.as_str()),
            SanMatch::Suffix(s) => name.ends_with(s.as_str()),
            SanMatch::Typed {
                kind: wanted,
                pattern,
                ignore_case,
            } => {
                if wanted.is_some_and(|w| w != kind) {
                    return false;
                }
                let (name, pattern_text) = match &**pattern {
                    SanMatch::Exact(t) | SanMatch::Prefix(t) | SanMatch::Suffix(t) => (name, t),
                    SanMatch::Typed { .. } => return false,
                };
                let (name, text) = if *ignore_case {
                    (name.to_ascii_lowercase(), pattern_text.to_ascii_lowercase())
                } else {
                    (name.to_owned(), pattern_text.clone())
                };
                match &**pattern {
                    SanMatch::Exact(_) => name == text,
                    SanMatch::Prefix(_) => name.starts_with(&text),
                    SanMatch::Suffix(_) => name.ends_with(&text),
                    SanMatch::Typed { .. } => false,
                }
            }
        }
    }

    /// Whether any subject alt name of `info` matches any of `matchers`.
    pub fn any_of(matchers: &[SanMatch], info: &CertificateInfo) -> bool {
        let ips: Vec<String> = info.ips.iter().map(ToString::to_string).collect();
        let names = info
            .dns_names
            .iter()
            .map(|n| (SanKind::Dns, n))
            .chain(info.uris.iter().map(|n| (SanKind::Uri, n)))
            .chain(ips.iter().map(|n| (SanKind::Ip, n)));
        names
            .into_iter()
            .any(|(kind, n)| matchers.iter().any(|m| m.matches(kind, n)))
    }
}

#[cfg(test)]
mod san_tests {
    use super::*;

    #[test]
    fn typed_matchers_look_only_at_their_kind_and_fold_case_only_when_asked() {
        let dns_suffix = SanMatch::Typed {
            kind: Some(SanKind::Dns),
            pattern: Box::new(SanMatch::Suffix(".example.com".into())),
            ignore_case: false,
        };
        assert!(dns_suffix.matches(SanKind::Dns, "api.example.com"));
        assert!(!dns_suffix.matches(SanKind::Uri, "spiffe://td/ns/x/sa/a.example.com"));
        let uri = |ignore_case| SanMatch::Typed {
            kind: Some(SanKind::Uri),
            pattern: Box::new(SanMatch::Exact("spiffe://td/ns/A".into())),
            ignore_case,
        };
        assert!(!uri(false).matches(SanKind::Uri, "spiffe://td/ns/a"));
        assert!(uri(true).matches(SanKind::Uri, "spiffe://td/ns/a"));
        // Untyped: DNS names without case, URIs exactly.
        assert!(SanMatch::Exact("API.example.com".into()).matches(SanKind::Dns, "api.example.com"));
        assert!(
            !SanMatch::Exact("spiffe://td/ns/A".into()).matches(SanKind::Uri, "spiffe://td/ns/a")
        );
    }
}

/// Whether a listener asks clients for certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// How the certificate is checked.
    pub validation: PeerValidation,
    /// Without a certificate the handshake fails; otherwise clients may send none (and
    /// those that send one must send a valid one).
    pub required: bool,
}

/// Envoy's `forward_client_cert_details`: what becomes of `x-forwarded-client-cert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardClientCert {
    /// Removed from requests (the default, Envoy's `SANITIZE`).
    #[default]
    Sanitize,
    /// Passed on as the client sent it, only on TLS connections (`FORWARD_ONLY`).
    ForwardOnly,
    /// The client's certificate appended to what the client sent (`APPEND_FORWARD`).
    AppendForward,
    /// Replaced with the client's certificate (`SANITIZE_SET`).
    SanitizeSet,
    /// Passed on as sent, on any connection (`ALWAYS_FORWARD_ONLY`).
    AlwaysForwardOnly,
}

/// Which parts of the client's certificate `x-forwarded-client-cert` carries beside its
/// hash and `By` (Envoy's `set_current_client_cert_details`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientCertDetails {
    pub subject: bool,
    pub uri: bool,
    pub dns: bool,
    pub cert: bool,
    pub chain: bool,
}

/// A listener's TLS termination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// At least one; the first is the default for clients that send no (or an unknown)
    /// server name.
    pub certificates: Vec<CertifiedMaterial>,
    /// Protocols offered by ALPN, in preference order (`http/1.1` by default).
    pub alpn: Vec<Vec<u8>>,
    pub versions: Versions,
    /// Client certificates asked for, if any.
    pub client_auth: Option<ClientAuth>,
    /// Time allowed for a handshake (10s by default).
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once on one worker; more connections are closed at
    /// once (counted in `ssl.handshake_overflow`).
    pub max_handshakes: usize,
    /// Session tickets issued and accepted (keys shared by every worker).
    pub session_tickets: bool,
    /// Plaintext HTTP also accepted on the same port: the first byte tells (Envoy's
    /// `tls_inspector` with a `raw_buffer` filter chain beside the TLS one).
    pub allow_plaintext: bool,
    /// `x-forwarded-client-cert`.
    pub forward_client_cert: ForwardClientCert,
    pub client_cert_details: ClientCertDetails,
    /// Only the certificates' names are served: a client that names another server, or
    /// none, is refused (counted in `no_filter_chain_match`). Envoy's listener whose TLS
    /// filter chains all have `server_names` (it has no chain for such a client); the
    /// names' `*.` wildcards then take any depth of subdomain, as Envoy's chain match
    /// walks up the name.
    pub names_only: bool,
}

impl ServerTls {
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_MAX_HANDSHAKES: usize = 1024;

    /// The earliest expiry of its certificates (Unix seconds).
    pub fn first_expiry(&self) -> Option<i64> {
        self.certificates.iter().map(|c| c.not_after).min()
    }
}

/// A cluster's TLS origination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// The server name sent (and checked); `None`: none sent, and the certificate is
    /// checked against the endpoint's address or DNS name.
    pub sni: Option<String>,
    /// How the server's certificate is checked; `None`: not at all (Envoy's meaning of
    /// an `UpstreamTlsContext` without a `validation_context`).
    pub validation: Option<PeerValidation>,
    /// The certificate must be for the server name (the SNI, the endpoint's DNS name,
    /// or its address). Native clusters check it; Envoy's check only
    /// `match_typed_subject_alt_names`.
    pub verify_name: bool,
    /// A client certificate for mutual TLS.
    pub certificate: Option<CertifiedMaterial>,
    /// Protocols offered by ALPN (none by default, as Envoy).
    pub alpn: Vec<Vec<u8>>,
    pub versions: Versions,
    /// Resume sessions with upstreams (per worker).
    pub session_resumption: bool,
    /// The server name is the request's host (its `Host` without the port; Envoy's
    /// `auto_sni`), and connections are pooled per name.
    pub auto_sni: bool,
}

/// Every certificate a config serves or trusts, by the TLS context it belongs to (a
/// listener's certificate with its client CA, a cluster's CA with its client
/// certificate): what `/certs` lists and `server.days_until_first_cert_expiring` reads.
pub fn contexts(config: &super::Config) -> Vec<CertContext> {
    let mut out = Vec::new();
    // A named CA file's certificates; the system's roots are many and not ours to
    // watch expire.
    let ca_of = |v: Option<&PeerValidation>| -> Vec<(String, CertificateDer<'static>)> {
        match v.and_then(|v| Some((v.ca_source.as_ref()?, v.ca.as_ref()?))) {
            Some((source, ca)) => ca.iter().map(|c| (source.describe(), c.clone())).collect(),
            None => Vec::new(),
        }
    };
    for l in &config.listeners {
        let Some(tls) = &l.tls else { continue };
        let ca = ca_of(tls.client_auth.as_ref().map(|a| &a.validation));
        for material in &tls.certificates {
            out.push(CertContext {
                owner: format!("listener {}", l.name),
                cert_chain: chain_of(material),
                ca_cert: ca.clone(),
            });
        }
    }
    for c in &config.clusters {
        let Some(tls) = &c.tls else { continue };
        out.push(CertContext {
            owner: format!("cluster {}", c.name),
            cert_chain: tls.certificate.as_ref().map(chain_of).unwrap_or_default(),
            ca_cert: ca_of(tls.validation.as_ref()),
        });
    }
    out
}

fn chain_of(material: &CertifiedMaterial) -> Vec<(String, CertificateDer<'static>)> {
    let source = material.sources[0].describe();
    material
        .chain
        .iter()
        .map(|c| (source.clone(), c.clone()))
        .collect()
}

/// One TLS context's certificates, each with where it came from.
#[derive(Debug, Clone)]
pub struct CertContext {
    /// `listener <name>` or `cluster <name>`.
    pub owner: String,
    pub cert_chain: Vec<(String, CertificateDer<'static>)>,
    pub ca_cert: Vec<(String, CertificateDer<'static>)>,
}

/// Reads the certificates of a PEM bundle (a CA file).
pub fn read_certificates(source: &PemSource) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = source.read()?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", source.describe()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", source.describe()));
    }
    Ok(certs)
}

/// Reads the revocation lists of a PEM file.
pub fn read_crls(source: &PemSource) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let pem = source.read()?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM revocation lists: {e}", source.describe()))?;
    if crls.is_empty() {
        return Err(format!("{}: no revocation list in it", source.describe()));
    }
    Ok(crls)
}
