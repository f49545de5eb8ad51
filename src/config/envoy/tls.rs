//! Envoy's TLS onto ringway's: `DownstreamTlsContext` on filter chains (several chains
//! merged into one listener's certificates), `UpstreamTlsContext` on clusters, the
//! `tls_inspector` listener filter and the HCM's `x-forwarded-client-cert` settings.
//!
//! Design: Envoy chooses a filter chain per connection (by SNI and transport protocol,
//! which the `tls_inspector` reads) and each chain has its own TLS context; ringway has
//! one TLS configuration per listener whose certificate is chosen by SNI. So chains are
//! accepted when they could only differ in what ringway's certificate choice reproduces:
//! the same HTTP connection manager and TLS settings, and `filter_chain_match` limited to
//! `server_names` (which become the certificates' names) and `transport_protocol` (a
//! plaintext chain beside TLS ones becomes `allow_plaintext`). Certificates are read and
//! checked here, as the native format does, with errors at the field that names them.
//! Envoy's meaning is kept where it differs from the native format's defaults: no ALPN
//! unless listed, upstream certificates not verified without a `validation_context`,
//! TLS 1.2 as the upstream's highest version unless raised.

use std::collections::HashMap;

use prost_reflect::{DynamicMessage, SerializeOptions, Value as Pv};

use super::cursor::{Loc, Msg};
use super::{schema, DISABLED};
use crate::config::error::Diagnostics;
use crate::config::tls::{
    provider, read_certificates, read_crls, CertifiedMaterial, ClientAuth, ClientCertDetails,
    ClientTls, ForwardClientCert, PeerValidation, PemSource, SanMatch, ServerTls, Versions,
};

const SDS: &str = "SDS is not supported yet; use files (`tls_certificates`, `validation_context`)";

/// A filter chain's transport socket: `None` for plaintext (none, or `raw_buffer`).
pub(crate) fn listener_socket(
    ts: &Msg<'_, '_>,
    diag: &mut Diagnostics,
) -> Option<Option<ServerTls>> {
    transport_socket(
        ts,
        (
            schema::DOWNSTREAM_TLS,
            "DownstreamTlsContext",
            "a listener's",
        ),
        diag,
        downstream,
    )
}

/// A cluster's transport socket: `None` for plaintext (`raw_buffer`).
pub(crate) fn cluster_socket(
    ts: &Msg<'_, '_>,
    cluster: &str,
    diag: &mut Diagnostics,
) -> Option<Option<ClientTls>> {
    transport_socket(
        ts,
        (schema::UPSTREAM_TLS, "UpstreamTlsContext", "a cluster's"),
        diag,
        |ctx, diag| upstream(ctx, cluster, diag),
    )
}

/// A transport socket: the TLS context `tls_type` (decoded by `decode`), or `raw_buffer`
/// (`None`), else an error naming what was found.
fn transport_socket<T>(
    ts: &Msg<'_, '_>,
    (tls_type, tls_name, whose): (&str, &str, &str),
    diag: &mut Diagnostics,
    decode: impl FnOnce(&Msg<'_, '_>, &mut Diagnostics) -> Option<T>,
) -> Option<Option<T>> {
    ts.only(diag, &["name", "typed_config"]);
    match ts.any("typed_config") {
        Some((type_name, ctx)) if type_name == tls_type => {
            decode(&Msg::new(&ctx, ts.at("typed_config")), diag).map(Some)
        }
        Some((type_name, raw)) if type_name == schema::RAW_BUFFER => {
            Msg::new(&raw, ts.at("typed_config")).only(diag, &[]);
            Some(None)
        }
        Some((type_name, _)) => {
            ts.error(
                diag,
                "typed_config",
                format!("{type_name} is not {whose} transport socket ({tls_name} or RawBuffer)"),
            );
            None
        }
        None if ts.str("name") == Some("envoy.transport_sockets.raw_buffer") => Some(None),
        None => {
            ts.error(
                diag,
                "typed_config",
                format!("a transport socket needs a `typed_config` (`@type` ...{tls_name})"),
            );
            None
        }
    }
}

/// `DownstreamTlsContext`, with Envoy's defaults for what the filter chain and the HCM
/// set later (handshake timeout, `x-forwarded-client-cert`).
fn downstream(ctx: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<ServerTls> {
    ctx.only(
        diag,
        &[
            "common_tls_context",
            "require_client_certificate",
            "require_sni",
            "session_ticket_keys",
            "session_ticket_keys_sds_secret_config",
            "disable_stateless_session_resumption",
            "disable_stateful_session_resumption",
            "session_timeout",
            "ocsp_staple_policy",
            "full_scan_certs_on_sni_mismatch",
        ],
    );
    let mut ok = true;
    if ctx.wrapped_bool("require_sni") == Some(true) {
        ctx.error(diag, "require_sni", "`require_sni` is not supported yet (ringway serves its first certificate to clients that send no server name)");
        ok = false;
    }
    for field in [
        "session_ticket_keys",
        "session_ticket_keys_sds_secret_config",
    ] {
        if ctx.has(field) {
            ctx.error(diag, field, format!("`{field}` is not supported: ringway generates and rotates its own session-ticket keys, shared by every worker (remove it, or disable tickets with `disable_stateless_session_resumption`)"));
            ok = false;
        }
    }
    if ctx.has("session_timeout") {
        ctx.error(
            diag,
            "session_timeout",
            "`session_timeout` is not supported yet (ringway's tickets follow its key rotation)",
        );
        ok = false;
    }
    if let Some(policy) = ctx.enum_name("ocsp_staple_policy") {
        if policy != "LENIENT_STAPLING" {
            ctx.error(
                diag,
                "ocsp_staple_policy",
                format!("ocsp_staple_policy {policy} is not supported: ringway staples a configured `ocsp_staple` but does not enforce one (LENIENT_STAPLING is accepted)"),
            );
            ok = false;
        }
    }
    // `disable_stateful_session_resumption`: ringway has no session cache to disable.
    // `full_scan_certs_on_sni_mismatch`: ringway's choice by name is a table lookup.
    let Some(common_msg) = ctx.child("common_tls_context") else {
        ctx.error(
            diag,
            "common_tls_context",
            "a DownstreamTlsContext needs `common_tls_context.tls_certificates`",
        );
        return None;
    };
    let common = common(&common_msg, true, diag);
    let require = ctx.wrapped_bool("require_client_certificate");
    let common = common?;
    if common.certificates.is_empty() {
        common_msg.error(
            diag,
            "tls_certificates",
            "a TLS listener needs at least one certificate in `tls_certificates`",
        );
        return None;
    }
    let client_auth = match common.validation {
        // Envoy asks for a certificate whenever there is a validation context, and
        // requires one only with `require_client_certificate`.
        Some(validation) => Some(ClientAuth {
            validation,
            required: require == Some(true),
        }),
        None if require == Some(true) => {
            ctx.error(
                diag,
                "require_client_certificate",
                "`require_client_certificate` needs `common_tls_context.validation_context` with the `trusted_ca` to check certificates against",
            );
            return None;
        }
        None => None,
    };
    if !ok {
        return None;
    }
    Some(ServerTls {
        certificates: common.certificates,
        alpn: common.alpn,
        versions: common.versions,
        client_auth,
        handshake_timeout: ServerTls::DEFAULT_HANDSHAKE_TIMEOUT,
        max_handshakes: ServerTls::DEFAULT_MAX_HANDSHAKES,
        session_tickets: !ctx.bool("disable_stateless_session_resumption"),
        allow_plaintext: false,
        names_only: false,
        forward_client_cert: ForwardClientCert::default(),
        client_cert_details: ClientCertDetails::default(),
    })
}

/// `UpstreamTlsContext`.
fn upstream(ctx: &Msg<'_, '_>, cluster: &str, diag: &mut Diagnostics) -> Option<ClientTls> {
    ctx.only(
        diag,
        &[
            "common_tls_context",
            "sni",
            "allow_renegotiation",
            "max_session_keys",
        ],
    );
    let mut ok = true;
    if ctx.bool("allow_renegotiation") {
        ctx.error(
            diag,
            "allow_renegotiation",
            "TLS renegotiation is not supported (rustls never renegotiates)",
        );
        ok = false;
    }
    let sni = match ctx.str("sni") {
        Some(name) if rustls::pki_types::ServerName::try_from(name).is_err() => {
            ctx.error(diag, "sni", format!("{name:?} is not a valid server name"));
            ok = false;
            None
        }
        Some(name) => Some(name.to_owned()),
        None => None,
    };
    let common = match ctx.child("common_tls_context") {
        Some(c) => common(&c, false, diag).map(|parts| (parts, Some(c))),
        None => Some((
            Common {
                certificates: Vec::new(),
                validation: None,
                alpn: Vec::new(),
                versions: default_versions(false),
            },
            None,
        )),
    };
    let (mut common, common_msg) = common?;
    if common.certificates.len() > 1 {
        if let Some(c) = &common_msg {
            c.error(
                diag,
                "tls_certificates",
                "a client context has at most one certificate (as in Envoy)",
            );
        }
        return None;
    }
    if !ok {
        return None;
    }
    if common.validation.is_none() {
        tracing::warn!(
            "cluster {cluster}: upstream TLS without a validation_context: the server's certificate is not verified (as Envoy does)"
        );
    }
    Some(ClientTls {
        sni,
        validation: common.validation,
        // Envoy checks the server's names only through `match_typed_subject_alt_names`.
        verify_name: false,
        certificate: common.certificates.pop(),
        alpn: common.alpn,
        versions: common.versions,
        // `max_session_keys` (default 1): 0 disables resumption.
        session_resumption: ctx.wrapped_uint("max_session_keys") != Some(0),
        // Set by the cluster's `upstream_http_protocol_options`.
        auto_sni: false,
    })
}

/// What a `CommonTlsContext` says.
struct Common {
    certificates: Vec<CertifiedMaterial>,
    validation: Option<PeerValidation>,
    alpn: Vec<Vec<u8>>,
    versions: Versions,
}

fn common(c: &Msg<'_, '_>, server: bool, diag: &mut Diagnostics) -> Option<Common> {
    c.only(
        diag,
        &[
            "tls_params",
            "tls_certificates",
            "validation_context",
            "alpn_protocols",
            "tls_certificate_sds_secret_configs",
            "validation_context_sds_secret_config",
            "combined_validation_context",
        ],
    );
    let mut ok = true;
    for field in [
        "tls_certificate_sds_secret_configs",
        "validation_context_sds_secret_config",
        "combined_validation_context",
    ] {
        if c.has(field) {
            c.error(diag, field, SDS);
            ok = false;
        }
    }
    let mut certificates = Vec::new();
    for cert in c.children("tls_certificates") {
        match certificate(&cert, diag) {
            Some(m) => certificates.push(m),
            None => ok = false,
        }
    }
    let validation = match c.child("validation_context") {
        Some(v) => match validation(&v, diag) {
            Some(v) => Some(v),
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    let alpn = alpn(c, server, diag);
    let versions = tls_params(c, server, diag);
    let (alpn, versions) = (alpn?, versions?);
    ok.then_some(Common {
        certificates,
        validation,
        alpn,
        versions,
    })
}

/// A `TlsCertificate`: its chain and key, read and checked together.
fn certificate(cert: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<CertifiedMaterial> {
    cert.only(diag, &["certificate_chain", "private_key", "ocsp_staple"]);
    let chain = match cert.child("certificate_chain") {
        Some(d) => pem_source(&d, diag),
        None => {
            cert.error(
                diag,
                "certificate_chain",
                "a certificate needs `certificate_chain`",
            );
            None
        }
    };
    let key = match cert.child("private_key") {
        Some(d) => pem_source(&d, diag),
        None => {
            cert.error(diag, "private_key", "a certificate needs `private_key`");
            None
        }
    };
    let ocsp = match cert.child("ocsp_staple") {
        Some(d) => Some(pem_source(&d, diag)?),
        None => None,
    };
    let loaded = CertifiedMaterial::load(chain?, key?).and_then(|m| match ocsp {
        Some(source) => m.with_ocsp(source),
        None => Ok(m),
    });
    match loaded {
        Ok(material) => Some(material),
        Err(e) => {
            diag.error(cert.loc.pos, &cert.loc.path, e);
            None
        }
    }
}

/// A `DataSource` holding PEM: a file (relative names from the working directory, as
/// Envoy reads them), text, bytes (base64 in the document), or an environment variable.
fn pem_source(d: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<PemSource> {
    d.only(
        diag,
        &[
            "filename",
            "inline_string",
            "inline_bytes",
            "environment_variable",
        ],
    );
    if let Some(path) = d.str("filename") {
        return Some(PemSource::File(path.into()));
    }
    if d.has("inline_string") {
        return Some(PemSource::Inline(
            d.str("inline_string").unwrap_or_default().to_owned(),
        ));
    }
    if d.has("inline_bytes") {
        let bytes = match d.msg.get_field_by_name("inline_bytes").as_deref() {
            Some(Pv::Bytes(b)) => b.to_vec(),
            _ => Vec::new(),
        };
        return match String::from_utf8(bytes) {
            Ok(text) => Some(PemSource::Inline(text)),
            Err(_) => {
                d.error(
                    diag,
                    "inline_bytes",
                    "not PEM text (the bytes are not UTF-8)",
                );
                None
            }
        };
    }
    if let Some(var) = d.str("environment_variable") {
        return match std::env::var(var) {
            Ok(value) => Some(PemSource::Inline(value)),
            Err(_) => {
                d.error(
                    diag,
                    "environment_variable",
                    format!("environment variable {var} is not set"),
                );
                None
            }
        };
    }
    diag.error(
        d.loc.pos,
        &d.loc.path,
        "a DataSource needs `filename`, `inline_string`, `inline_bytes` or `environment_variable`",
    );
    None
}

/// A `CertificateValidationContext`: the CA, revocation lists and accepted names.
fn validation(v: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<PeerValidation> {
    v.only(
        diag,
        &[
            "trusted_ca",
            "crl",
            "match_typed_subject_alt_names",
            "match_subject_alt_names",
        ],
    );
    let ca = match v.child("trusted_ca") {
        Some(d) => pem_source(&d, diag).and_then(|source| match read_certificates(&source) {
            Ok(certs) => Some((certs, source)),
            Err(e) => {
                v.error(diag, "trusted_ca", e);
                None
            }
        }),
        None => {
            v.error(
                diag,
                "trusted_ca",
                "a validation_context without `trusted_ca` (checking names or hashes alone) is not supported: name the CA",
            );
            None
        }
    };
    let mut crl_sources = Vec::new();
    let crls = match v.child("crl") {
        Some(d) => pem_source(&d, diag).and_then(|source| match read_crls(&source) {
            Ok(crls) => {
                crl_sources.push(source);
                Some(crls)
            }
            Err(e) => {
                v.error(diag, "crl", e);
                None
            }
        }),
        None => Some(Vec::new()),
    };
    let mut names = Some(Vec::new());
    for m in v.children("match_typed_subject_alt_names") {
        m.only(diag, &["san_type", "matcher"]);
        let kind = m.enum_name("san_type").unwrap_or_default();
        let found = match kind.as_str() {
            "DNS" | "URI" | "IP_ADDRESS" => match m.child("matcher") {
                Some(matcher) => string_matcher(&matcher, Some(&kind), diag),
                None => {
                    m.error(
                        diag,
                        "matcher",
                        "a subject alt name matcher needs `matcher`",
                    );
                    None
                }
            },
            other => {
                m.error(
                    diag,
                    "san_type",
                    format!("san_type {other} is not supported yet (DNS, URI and IP_ADDRESS are)"),
                );
                None
            }
        };
        match (found, &mut names) {
            (Some(f), Some(list)) => list.push(f),
            _ => names = None,
        }
    }
    for m in v.children("match_subject_alt_names") {
        match (string_matcher(&m, None, diag), &mut names) {
            (Some(f), Some(list)) => list.push(f),
            _ => names = None,
        }
    }
    let (ca, ca_source) = ca?;
    let validation = PeerValidation {
        ca: Some(ca),
        ca_source: Some(ca_source),
        crls: crls?,
        crl_sources,
        subject_alt_names: names?,
    };
    if let Err(e) = validation.check() {
        diag.error(v.loc.pos, &v.loc.path, e);
        return None;
    }
    Some(validation)
}

/// A `StringMatcher` on a subject alt name of kind `kind` (any kind for the deprecated
/// `match_subject_alt_names`). ringway's names are compared whatever their kind, an
/// exact match without case (DNS names are lower case in certificates).
fn string_matcher(m: &Msg<'_, '_>, kind: Option<&str>, diag: &mut Diagnostics) -> Option<SanMatch> {
    m.only(
        diag,
        &[
            "exact",
            "prefix",
            "suffix",
            "ignore_case",
            "safe_regex",
            "contains",
            "custom",
        ],
    );
    for field in ["safe_regex", "contains", "custom"] {
        if m.has(field) {
            m.error(
                diag,
                field,
                format!("`{field}` is not supported for subject alt names (`exact`, `prefix` and `suffix` are)"),
            );
            return None;
        }
    }
    let ignore_case = m.bool("ignore_case");
    let pattern = if m.has("exact") {
        SanMatch::Exact(m.str("exact").unwrap_or_default().to_owned())
    } else if let Some(text) = m.str("prefix") {
        SanMatch::Prefix(text.to_owned())
    } else if let Some(text) = m.str("suffix") {
        SanMatch::Suffix(text.to_owned())
    } else {
        SanMatch::Exact(String::new())
    };
    if m.has("exact") || m.has("prefix") || m.has("suffix") {
        // `match_typed_subject_alt_names` looks only at names of its `san_type`; the
        // deprecated `match_subject_alt_names` at every kind.
        let kind = match kind {
            Some("DNS") => Some(crate::config::tls::SanKind::Dns),
            Some("URI") => Some(crate::config::tls::SanKind::Uri),
            Some("IP_ADDRESS") => Some(crate::config::tls::SanKind::Ip),
            _ => None,
        };
        return Some(match kind {
            None if !ignore_case => pattern,
            kind => SanMatch::Typed {
                kind,
                pattern: Box::new(pattern),
                ignore_case,
            },
        });
    }
    diag.error(
        m.loc.pos,
        &m.loc.path,
        "a subject alt name matcher needs `exact`, `prefix` or `suffix`",
    );
    None
}

/// `alpn_protocols`. Envoy joins the entries with `,` and parses the list again, so
/// `["h2,http/1.1"]` is `["h2", "http/1.1"]`. No entry: no ALPN, as in Envoy.
fn alpn(c: &Msg<'_, '_>, server: bool, diag: &mut Diagnostics) -> Option<Vec<Vec<u8>>> {
    let mut protocols = Vec::new();
    let mut ok = true;
    for p in c
        .strings("alpn_protocols")
        .into_iter()
        .flat_map(|entry| entry.split(','))
        .filter(|p| !p.is_empty())
    {
        match p {
            "http/1.1" | "http/1.0" => protocols.push(p.as_bytes().to_vec()),
            "h2" if server => {
                c.error(diag, "alpn_protocols", "`h2` cannot be offered: HTTP/2 is not served yet (a client would then speak HTTP/2 to this listener); list `http/1.1`");
                ok = false;
            }
            "h2" => {
                c.error(
                    diag,
                    "alpn_protocols",
                    "`h2` to upstreams is not supported until HTTP/2 exists; list `http/1.1`",
                );
                ok = false;
            }
            other => {
                c.error(
                    diag,
                    "alpn_protocols",
                    format!("unsupported ALPN protocol {other:?}: `http/1.1` or `http/1.0`"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(protocols)
}

/// Envoy's default versions: TLS 1.2 and 1.3 for servers, TLS 1.2 only for clients.
fn default_versions(server: bool) -> Versions {
    Versions {
        tls12: true,
        tls13: server,
    }
}

/// `tls_params`: the versions; cipher suites and curves when ringway has every one.
fn tls_params(c: &Msg<'_, '_>, server: bool, diag: &mut Diagnostics) -> Option<Versions> {
    let Some(p) = c.child("tls_params") else {
        return Some(default_versions(server));
    };
    p.only(
        diag,
        &[
            "tls_minimum_protocol_version",
            "tls_maximum_protocol_version",
            "cipher_suites",
            "ecdh_curves",
            "signature_algorithms",
        ],
    );
    let mut ok = true;
    let mut version = |field: &str, diag: &mut Diagnostics| -> Option<u8> {
        match p.enum_name(field).as_deref() {
            None | Some("TLS_AUTO") => None,
            Some("TLSv1_2") => Some(12),
            Some("TLSv1_3") => Some(13),
            Some(other) => {
                p.error(
                    diag,
                    field,
                    format!("{other} is not supported: ringway speaks TLS 1.2 and 1.3 only"),
                );
                ok = false;
                None
            }
        }
    };
    let min = version("tls_minimum_protocol_version", diag).unwrap_or(12);
    let default_max: u8 = if server { 13 } else { 12 };
    // A client's default maximum rises to an explicit minimum of TLS 1.3.
    let max = version("tls_maximum_protocol_version", diag).unwrap_or(default_max.max(min));
    if min > max {
        p.error(
            diag,
            "tls_minimum_protocol_version",
            "the minimum version is above the maximum",
        );
        ok = false;
    }
    if p.has("signature_algorithms") {
        p.error(
            diag,
            "signature_algorithms",
            "`signature_algorithms` is not supported: ringway offers rustls's own list",
        );
        ok = false;
    }
    // A list of suites or curves ringway all has is accepted, and its order and the
    // ones it leaves out are not applied: ringway (rustls with ring) offers its own
    // list, in its own order. A name ringway does not have is refused.
    let ciphers: Vec<&str> = p
        .strings("cipher_suites")
        .into_iter()
        // BoringSSL's equal-preference groups: `[A|B]`.
        .flat_map(|entry| entry.trim_matches(|c| c == '[' || c == ']').split('|'))
        .collect();
    let missing: Vec<&str> = ciphers
        .iter()
        .copied()
        .filter(|name| !cipher_supported(name))
        .collect();
    if !missing.is_empty() {
        p.error(
            diag,
            "cipher_suites",
            format!("cipher suites ringway does not have: {} (it has the ECDHE-ECDSA- and ECDHE-RSA- AES128-GCM-SHA256, AES256-GCM-SHA384 and CHACHA20-POLY1305 suites, and TLS 1.3's)", missing.join(", ")),
        );
        ok = false;
    }
    let missing: Vec<&str> = p
        .strings("ecdh_curves")
        .into_iter()
        .filter(|name| !curve_supported(name))
        .collect();
    if !missing.is_empty() {
        p.error(
            diag,
            "ecdh_curves",
            format!(
                "curves ringway does not have: {} (it has X25519, P-256 and P-384)",
                missing.join(", ")
            ),
        );
        ok = false;
    }
    ok.then_some(Versions {
        tls12: min <= 12,
        tls13: max >= 13,
    })
}

/// Whether a BoringSSL cipher name is one of ringway's suites.
fn cipher_supported(name: &str) -> bool {
    let Some(suite) = crate::tls::names::cipher_named(name) else {
        return false;
    };
    provider().cipher_suites.iter().any(|s| s.suite() == suite)
}

/// Whether a BoringSSL curve name is one of ringway's key-exchange groups.
fn curve_supported(name: &str) -> bool {
    let Some(group) = crate::tls::names::curve_named(name) else {
        return false;
    };
    provider().kx_groups.iter().any(|g| g.name() == group)
}

/// `envoy.filters.listener.tls_inspector`: ringway always reads the ClientHello's
/// server name, so the filter has nothing to configure but what it refuses.
pub(crate) fn tls_inspector(m: &Msg<'_, '_>, diag: &mut Diagnostics) {
    m.only(
        diag,
        &[
            "enable_ja3_fingerprinting",
            "enable_ja4_fingerprinting",
            "initial_read_buffer_size",
        ],
    );
    for (field, name) in [
        ("enable_ja3_fingerprinting", "JA3"),
        ("enable_ja4_fingerprinting", "JA4"),
    ] {
        if m.wrapped_bool(field) == Some(true) {
            m.error(
                diag,
                field,
                format!("{name} fingerprinting is not supported yet"),
            );
        }
    }
    // `initial_read_buffer_size`: ringway reads the ClientHello into its own buffers.
}

/// The HCM's `forward_client_cert_details` and `set_current_client_cert_details`.
pub(crate) fn client_cert_forwarding(
    hcm: &Msg<'_, '_>,
    diag: &mut Diagnostics,
) -> (ForwardClientCert, ClientCertDetails) {
    let forward = match hcm.enum_name("forward_client_cert_details").as_deref() {
        None | Some("SANITIZE") => ForwardClientCert::Sanitize,
        Some("FORWARD_ONLY") => ForwardClientCert::ForwardOnly,
        Some("APPEND_FORWARD") => ForwardClientCert::AppendForward,
        Some("SANITIZE_SET") => ForwardClientCert::SanitizeSet,
        Some("ALWAYS_FORWARD_ONLY") => ForwardClientCert::AlwaysForwardOnly,
        Some(other) => {
            hcm.error(
                diag,
                "forward_client_cert_details",
                format!("{other} is not supported"),
            );
            ForwardClientCert::Sanitize
        }
    };
    let mut details = ClientCertDetails::default();
    if let Some(d) = hcm.child("set_current_client_cert_details") {
        d.only(diag, &["subject", "cert", "chain", "dns", "uri"]);
        details = ClientCertDetails {
            subject: d.wrapped_bool("subject") == Some(true),
            uri: d.bool("uri"),
            dns: d.bool("dns"),
            cert: d.bool("cert"),
            chain: d.bool("chain"),
        };
    }
    (forward, details)
}

/// A filter chain as far as TLS goes.
struct Chain<'t> {
    loc: Loc<'t>,
    /// Where its `transport_socket` is.
    socket: Loc<'t>,
    /// `filter_chain_match.server_names`, lower case.
    names: Vec<String>,
    tls: Option<ServerTls>,
}

/// A listener's filter chains (whose HTTP connection managers the caller has found
/// identical) onto one TLS configuration, or `None` for a plaintext listener.
/// `inspector`: the listener has the `tls_inspector` filter.
pub(crate) fn filter_chains(
    chains: &[Msg<'_, '_>],
    inspector: bool,
    diag: &mut Diagnostics,
) -> Option<Option<ServerTls>> {
    let mut mapped = Vec::with_capacity(chains.len());
    let mut ok = true;
    for chain in chains {
        match chain_tls(chain, inspector, diag) {
            Some(c) => mapped.push(c),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    let (tls_chains, plain): (Vec<Chain<'_>>, Vec<Chain<'_>>) =
        mapped.into_iter().partition(|c| c.tls.is_some());
    if plain.len() > 1 {
        let second = &plain[1].loc;
        diag.error(
            second.pos,
            &second.path,
            "a listener has at most one plaintext filter chain (chains that could only differ in `filter_chain_match` criteria ringway does not implement)",
        );
        return None;
    }
    if tls_chains.is_empty() {
        return Some(None);
    }
    let allow_plaintext = plain.len() == 1;
    if allow_plaintext && !inspector {
        let at = &plain[0].loc;
        diag.error(
            at.pos,
            &at.path,
            "a plaintext filter chain beside TLS ones needs the envoy.filters.listener.tls_inspector listener filter: without it Envoy cannot tell TLS from plaintext",
        );
        return None;
    }
    // One TLS configuration: the chains may differ in their certificates only.
    let settings = |t: &ServerTls| ServerTls {
        certificates: Vec::new(),
        ..t.clone()
    };
    let first = settings(tls_chains[0].tls.as_ref()?);
    for chain in &tls_chains[1..] {
        if settings(chain.tls.as_ref()?) != first {
            let at = &chain.socket;
            diag.error(
                at.pos,
                &at.path,
                format!("TLS filter chains that differ in more than their certificates (client certificates, ALPN, versions, session resumption, handshake timeout) are not supported: ringway's listener has one TLS configuration (this one differs from {}'s)", tls_chains[0].loc.path),
            );
            ok = false;
        }
    }
    // Envoy refuses chains with the same match; say so before ringway's table would
    // pick one.
    let mut claimed: HashMap<&str, &str> = HashMap::new();
    let mut catch_all: Option<&Chain<'_>> = None;
    for chain in &tls_chains {
        if chain.names.is_empty() {
            if let Some(other) = catch_all {
                diag.error(
                    chain.loc.pos,
                    &chain.loc.path,
                    format!("two TLS filter chains without `server_names` ({} and this one) have the same match; Envoy refuses them", other.loc.path),
                );
                ok = false;
            }
            catch_all = Some(chain);
        }
        for name in &chain.names {
            if let Some(other) = claimed.insert(name, &chain.loc.path) {
                diag.error(
                    chain.loc.pos,
                    &chain.loc.path,
                    format!("server name {name:?} is in two filter chains ({other} and this one); Envoy refuses them"),
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    // Every TLS chain is named: Envoy has no chain for a client that names another
    // server or none, and closes its connection (`no_filter_chain_match`).
    let names_only = catch_all.is_none();
    let named: Vec<String> = claimed.keys().map(|n| (*n).to_owned()).collect();
    let mut certificates = Vec::new();
    // The chain without server names first: Envoy's choice for any other name.
    let mut ordered: Vec<Chain<'_>> = tls_chains;
    ordered.sort_by_key(|c| !c.names.is_empty());
    let mut tls = None;
    for chain in ordered {
        let Some(mut chain_tls) = chain.tls else {
            continue;
        };
        for mut cert in std::mem::take(&mut chain_tls.certificates) {
            if chain.names.is_empty() {
                // A name another chain claims goes to that chain, as in Envoy.
                cert.names.retain(|n| !covered(n, &named));
            } else {
                cert.names = chain.names.clone();
            }
            certificates.push(cert);
        }
        tls.get_or_insert(chain_tls);
    }
    let mut tls = tls?;
    tls.certificates = certificates;
    tls.allow_plaintext = allow_plaintext;
    tls.names_only = names_only;
    Some(Some(tls))
}

/// Whether a certificate's `name` is one a named chain's `server_names` takes.
fn covered(name: &str, named: &[String]) -> bool {
    if named.iter().any(|n| n == name) {
        return true;
    }
    match name.split_once('.') {
        Some((label, parent)) if label != "*" => {
            named.iter().any(|n| n.strip_prefix("*.") == Some(parent))
        }
        _ => false,
    }
}

/// One chain's `filter_chain_match` and transport socket.
fn chain_tls<'t>(
    chain: &Msg<'_, 't>,
    inspector: bool,
    diag: &mut Diagnostics,
) -> Option<Chain<'t>> {
    let mut names = Vec::new();
    let mut protocol = None;
    let mut ok = true;
    let matcher = chain.child("filter_chain_match");
    if let Some(m) = &matcher {
        m.only(diag, &["server_names", "transport_protocol"]);
        for name in m.strings("server_names") {
            let lower = name.to_ascii_lowercase();
            let bare = lower.strip_prefix("*.").unwrap_or(&lower);
            if bare.is_empty() || bare.contains('*') {
                m.error(
                    diag,
                    "server_names",
                    format!("server name {name:?}: only a leading `*.` wildcard is supported"),
                );
                ok = false;
            }
            if !names.contains(&lower) {
                names.push(lower);
            }
        }
        protocol = m.str("transport_protocol");
    }
    let tls = match chain.child("transport_socket") {
        Some(ts) => listener_socket(&ts, diag),
        None => Some(None),
    };
    let mut tls = tls?;
    if let Some(t) = &mut tls {
        // Envoy has no handshake deadline but this one; ringway always has one.
        t.handshake_timeout = match chain.duration("transport_socket_connect_timeout") {
            Some(d) if d.is_zero() => DISABLED,
            Some(d) => d,
            None => ServerTls::DEFAULT_HANDSHAKE_TIMEOUT,
        };
    }
    // On a plaintext chain `transport_socket_connect_timeout` has nothing to time:
    // raw_buffer is connected at once.
    if let Some(m) = &matcher {
        match (protocol, tls.is_some()) {
            (None, _) | (Some("tls"), true) | (Some("raw_buffer"), false) => {}
            (Some("tls"), false) => {
                m.error(diag, "transport_protocol", "a plaintext filter chain matching `transport_protocol: tls` would hand TLS bytes to the HTTP connection manager (TLS passthrough is not supported)");
                ok = false;
            }
            (Some("raw_buffer"), true) => {
                m.error(
                    diag,
                    "transport_protocol",
                    "a TLS filter chain cannot match `transport_protocol: raw_buffer`",
                );
                ok = false;
            }
            (Some(other), _) => {
                m.error(
                    diag,
                    "transport_protocol",
                    format!(
                        "transport_protocol {other:?} is not supported (`tls` or `raw_buffer`)"
                    ),
                );
                ok = false;
            }
        }
        if !names.is_empty() && tls.is_none() {
            m.error(diag, "server_names", "`server_names` on a plaintext filter chain is not supported (only TLS connections carry a server name)");
            ok = false;
        }
        if (!names.is_empty() || protocol == Some("tls")) && !inspector {
            m.error(diag, if names.is_empty() { "transport_protocol" } else { "server_names" }, "matching on `server_names` or `transport_protocol: tls` needs the envoy.filters.listener.tls_inspector listener filter (without it Envoy never sees them and never selects this chain)");
            ok = false;
        }
    }
    ok.then_some(Chain {
        loc: chain.loc.clone(),
        socket: chain.at("transport_socket"),
        names,
        tls,
    })
}

/// Whether two HTTP connection managers are the same configuration (compared as
/// protobuf JSON: map order and `Any` encodings do not matter).
pub(crate) fn same_message(a: &DynamicMessage, b: &DynamicMessage) -> bool {
    let json = |m: &DynamicMessage| {
        m.serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
            .ok()
    };
    match (json(a), json(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}
