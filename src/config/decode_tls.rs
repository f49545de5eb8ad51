//! Schema for `tls` on a listener (termination) and on a cluster (origination).
//!
//! Certificates are read and checked here, so a bad file is an error at the position of
//! the key that names it. Relative file names are relative to the config file.

use std::path::Path;

use super::error::Diagnostics;
use super::fields::{choice, duration, list, optional_bool};
use super::node::{Map, Node};
use super::tls::{
    read_certificates, read_crls, CertifiedMaterial, ClientAuth, ClientCertDetails, ClientTls,
    ForwardClientCert, PeerValidation, PemSource, SanMatch, ServerTls, Versions,
};

const SERVER_KEYS: &[&str] = &[
    "certificates",
    "alpn",
    "min_version",
    "max_version",
    "client_certificate",
    "handshake_timeout",
    "max_handshakes",
    "session_tickets",
    "allow_plaintext",
    "forward_client_cert",
    "client_cert_details",
];
const CERT_KEYS: &[&str] = &["certificate_chain", "private_key", "ocsp_staple"];
const CLIENT_AUTH_KEYS: &[&str] = &["ca", "crl", "required", "subject_alt_names"];
const CLIENT_KEYS: &[&str] = &[
    "sni",
    "auto_sni",
    "verify",
    "ca",
    "crl",
    "subject_alt_names",
    "certificate_chain",
    "private_key",
    "alpn",
    "min_version",
    "max_version",
    "session_resumption",
];
const DETAIL_KEYS: &[&str] = &["subject", "uri", "dns", "cert", "chain"];

/// A listener's `tls`.
pub(super) fn server(node: &Node<'_>, diag: &mut Diagnostics, base: &Path) -> Option<ServerTls> {
    let map = node.map(diag, SERVER_KEYS)?;
    let certificates = map.field(diag, "certificates").and_then(|n| {
        let certs = list(&n, diag, |item, diag| certificate(item, diag, base))?;
        if certs.is_empty() {
            n.error(diag, "a TLS listener needs at least one certificate");
            return None;
        }
        Some(certs)
    });
    let alpn = match map.optional("alpn") {
        Some(n) => alpn(&n, diag, true),
        None => Some(vec![b"http/1.1".to_vec()]),
    };
    let versions = versions(&map, diag);
    let client_auth = match map.optional("client_certificate") {
        Some(n) => client_auth(&n, diag, base).map(Some),
        None => Some(None),
    };
    let handshake_timeout = match map.optional("handshake_timeout") {
        Some(n) => duration(&n, diag),
        None => Some(ServerTls::DEFAULT_HANDSHAKE_TIMEOUT),
    };
    let max_handshakes = match map.optional("max_handshakes") {
        Some(n) => n
            .int_in(diag, "a number of handshakes", 1..=1_000_000)
            .and_then(|v| usize::try_from(v).ok()),
        None => Some(ServerTls::DEFAULT_MAX_HANDSHAKES),
    };
    let session_tickets = optional_bool(&map, "session_tickets", true, diag);
    let allow_plaintext = optional_bool(&map, "allow_plaintext", false, diag);
    let forward_client_cert = match map.optional("forward_client_cert") {
        Some(n) => choice(
            &n,
            diag,
            &[
                ("sanitize", ForwardClientCert::Sanitize),
                ("forward_only", ForwardClientCert::ForwardOnly),
                ("append_forward", ForwardClientCert::AppendForward),
                ("sanitize_set", ForwardClientCert::SanitizeSet),
                ("always_forward_only", ForwardClientCert::AlwaysForwardOnly),
            ],
        ),
        None => Some(ForwardClientCert::Sanitize),
    };
    let client_cert_details = match map.optional("client_cert_details") {
        Some(n) => details(&n, diag),
        None => Some(ClientCertDetails::default()),
    };
    Some(ServerTls {
        certificates: certificates?,
        alpn: alpn?,
        versions: versions?,
        client_auth: client_auth?,
        handshake_timeout: handshake_timeout?,
        max_handshakes: max_handshakes?,
        session_tickets: session_tickets?,
        allow_plaintext: allow_plaintext?,
        forward_client_cert: forward_client_cert?,
        client_cert_details: client_cert_details?,
        names_only: false,
    })
}

/// A cluster's `tls`.
pub(super) fn client(node: &Node<'_>, diag: &mut Diagnostics, base: &Path) -> Option<ClientTls> {
    let map = node.map(diag, CLIENT_KEYS)?;
    let sni = match map.optional("sni") {
        Some(n) => n.str(diag).and_then(|s| {
            if rustls::pki_types::ServerName::try_from(s).is_err() {
                n.error(diag, format!("{s:?} is not a valid server name"));
                return None;
            }
            Some(Some(s.to_owned()))
        }),
        None => Some(None),
    };
    // Native clusters verify the server unless told not to (Envoy's configs keep Envoy's
    // meaning: see config/envoy).
    let verify = optional_bool(&map, "verify", true, diag);
    let validation = match verify {
        Some(true) => validation(&map, diag, base, false).map(Some),
        Some(false) => {
            for key in ["ca", "crl", "subject_alt_names"] {
                if let Some(n) = map.optional(key) {
                    n.error(diag, format!("`{key}` has no effect with `verify: false`"));
                }
            }
            Some(None)
        }
        None => None,
    };
    let certificate = match (
        map.optional("certificate_chain"),
        map.optional("private_key"),
    ) {
        (None, None) => Some(None),
        (Some(_), Some(_)) => pair(&map, diag, base).map(Some),
        (Some(n), None) | (None, Some(n)) => {
            n.error(
                diag,
                "a client certificate needs both `certificate_chain` and `private_key`",
            );
            None
        }
    };
    let alpn = match map.optional("alpn") {
        Some(n) => alpn(&n, diag, false),
        None => Some(Vec::new()),
    };
    let versions = versions(&map, diag);
    let session_resumption = optional_bool(&map, "session_resumption", true, diag);
    let auto_sni = optional_bool(&map, "auto_sni", false, diag);
    if auto_sni == Some(true) && map.has("sni") {
        map.error(diag, "`sni` and `auto_sni` exclude each other");
        return None;
    }
    Some(ClientTls {
        auto_sni: auto_sni?,
        sni: sni?,
        verify_name: verify == Some(true),
        validation: validation?,
        certificate: certificate?,
        alpn: alpn?,
        versions: versions?,
        session_resumption: session_resumption?,
    })
}

fn certificate(node: &Node<'_>, diag: &mut Diagnostics, base: &Path) -> Option<CertifiedMaterial> {
    let map = node.map(diag, CERT_KEYS)?;
    let material = pair(&map, diag, base)?;
    match map.optional("ocsp_staple") {
        None => Some(material),
        Some(n) => {
            let source = pem(&n, diag, base)?;
            material
                .with_ocsp(source)
                .map_err(|e| n.error(diag, e))
                .ok()
        }
    }
}

/// `certificate_chain` and `private_key` of `map`, read and checked together.
fn pair(map: &Map<'_>, diag: &mut Diagnostics, base: &Path) -> Option<CertifiedMaterial> {
    let chain = map
        .field(diag, "certificate_chain")
        .and_then(|n| pem(&n, diag, base));
    let key = map
        .field(diag, "private_key")
        .and_then(|n| pem(&n, diag, base));
    let (chain, key) = (chain?, key?);
    match CertifiedMaterial::load(chain, key) {
        Ok(m) => Some(m),
        Err(e) => {
            map.error(diag, e);
            None
        }
    }
}

/// A file name, or `{filename: ...}`, or `{inline_string: ...}` (PEM text).
fn pem(node: &Node<'_>, diag: &mut Diagnostics, base: &Path) -> Option<PemSource> {
    if let Some(name) = node.peek_str() {
        return Some(PemSource::File(base.join(name)));
    }
    let map = node.map(diag, &["filename", "inline_string"])?;
    match (map.optional("filename"), map.optional("inline_string")) {
        (Some(n), None) => n.str(diag).map(|s| PemSource::File(base.join(s))),
        (None, Some(n)) => n.str(diag).map(|s| PemSource::Inline(s.to_owned())),
        _ => {
            map.error(diag, "PEM comes from one of `filename` or `inline_string`");
            None
        }
    }
}

fn alpn(node: &Node<'_>, diag: &mut Diagnostics, server: bool) -> Option<Vec<Vec<u8>>> {
    let protocols = list(node, diag, |item, diag| {
        let p = item.str(diag)?;
        match p {
            "http/1.1" | "http/1.0" => Some(p.as_bytes().to_vec()),
            // Advertise only what ringway serves: HTTP/2 is not served yet.
            "h2" if server => {
                item.error(
                    diag,
                    "`h2` cannot be offered: this listener serves HTTP/1.1 only (a client \
                     would then speak HTTP/2 to it)",
                );
                None
            }
            _ => {
                item.error(
                    diag,
                    format!("unsupported ALPN protocol {p:?}: `http/1.1` or `http/1.0`"),
                );
                None
            }
        }
    })?;
    if server && protocols.is_empty() {
        node.error(
            diag,
            "an empty `alpn` list would refuse every client that offers ALPN",
        );
        return None;
    }
    Some(protocols)
}

fn versions(map: &Map<'_>, diag: &mut Diagnostics) -> Option<Versions> {
    let version = |key: &str, default: u8, diag: &mut Diagnostics| match map.optional(key) {
        Some(n) => choice(&n, diag, &[("1.2", 12u8), ("1.3", 13u8)]),
        None => Some(default),
    };
    let (min, max) = (
        version("min_version", 12, diag)?,
        version("max_version", 13, diag)?,
    );
    if min > max {
        map.error(diag, "`min_version` is above `max_version`");
        return None;
    }
    Some(Versions {
        tls12: min <= 12,
        tls13: max >= 13,
    })
}

fn client_auth(node: &Node<'_>, diag: &mut Diagnostics, base: &Path) -> Option<ClientAuth> {
    let map = node.map(diag, CLIENT_AUTH_KEYS)?;
    let required = optional_bool(&map, "required", true, diag);
    let validation = validation(&map, diag, base, true);
    Some(ClientAuth {
        validation: validation?,
        required: required?,
    })
}

/// `ca`, `crl` and `subject_alt_names` of `map`. A server must name its CA; a client
/// without one trusts the system's roots.
fn validation(
    map: &Map<'_>,
    diag: &mut Diagnostics,
    base: &Path,
    ca_required: bool,
) -> Option<PeerValidation> {
    let ca_node = if ca_required {
        map.field(diag, "ca")
    } else {
        map.optional("ca")
    };
    let (ca, ca_source) = match ca_node {
        Some(n) => {
            let source = pem(&n, diag, base)?;
            match read_certificates(&source) {
                Ok(certs) => (Some(certs), Some(source)),
                Err(e) => {
                    n.error(diag, e);
                    return None;
                }
            }
        }
        None if ca_required => return None,
        None => match system_roots() {
            Ok(roots) => (Some(roots), None),
            Err(e) => {
                map.error(diag, e);
                return None;
            }
        },
    };
    let (crls, crl_sources) = match map.optional("crl") {
        Some(n) => {
            let source = pem(&n, diag, base)?;
            match read_crls(&source) {
                Ok(crls) => (Some(crls), vec![source]),
                Err(e) => {
                    n.error(diag, e);
                    (None, Vec::new())
                }
            }
        }
        None => (Some(Vec::new()), Vec::new()),
    };
    let subject_alt_names = match map.optional("subject_alt_names") {
        Some(n) => list(&n, diag, san_match),
        None => Some(Vec::new()),
    };
    let validation = PeerValidation {
        ca,
        ca_source,
        crls: crls?,
        crl_sources,
        subject_alt_names: subject_alt_names?,
    };
    if let Err(e) = validation.check() {
        map.error(diag, e);
        return None;
    }
    Some(validation)
}

/// A list of subject-alt-name matchers.
pub(super) fn san_matches(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<SanMatch>> {
    list(node, diag, san_match)
}

/// `name`, `{exact: name}`, `{prefix: p}` or `{suffix: s}`.
fn san_match(node: &Node<'_>, diag: &mut Diagnostics) -> Option<SanMatch> {
    if let Some(name) = node.peek_str() {
        return Some(SanMatch::Exact(name.to_owned()));
    }
    let map = node.map(diag, &["exact", "prefix", "suffix"])?;
    let found: Vec<_> = ["exact", "prefix", "suffix"]
        .into_iter()
        .filter_map(|k| map.optional(k).map(|n| (k, n)))
        .collect();
    let [(kind, n)] = found.as_slice() else {
        map.error(
            diag,
            "a name matcher has one of `exact`, `prefix` or `suffix`",
        );
        return None;
    };
    let text = n.str(diag)?.to_owned();
    Some(match *kind {
        "exact" => SanMatch::Exact(text),
        "prefix" => SanMatch::Prefix(text),
        _ => SanMatch::Suffix(text),
    })
}

fn details(node: &Node<'_>, diag: &mut Diagnostics) -> Option<ClientCertDetails> {
    let map = node.map(diag, DETAIL_KEYS)?;
    Some(ClientCertDetails {
        subject: optional_bool(&map, "subject", false, diag)?,
        uri: optional_bool(&map, "uri", false, diag)?,
        dns: optional_bool(&map, "dns", false, diag)?,
        cert: optional_bool(&map, "cert", false, diag)?,
        chain: optional_bool(&map, "chain", false, diag)?,
    })
}

/// The system's trusted roots (read when the config is loaded, off the workers).
fn system_roots() -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none installed".to_owned(), ToString::to_string);
        return Err(format!(
            "no system CA certificates to verify the upstream with ({why}); name a `ca` file"
        ));
    }
    Ok(found.certs)
}
