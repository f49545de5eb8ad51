//! BoringSSL's names for the cipher suites and key-exchange groups ringway's provider
//! has: what Envoy's configs name them by (`tls_params.cipher_suites`, `ecdh_curves`)
//! and what its stats are named after (`ssl.ciphers.<name>`, `ssl.curves.<name>`). One
//! table each, in the order of the stats' cells (`stats::names::listener_tls`).

use rustls::{CipherSuite, NamedGroup};

/// The cipher suites, by BoringSSL's name (TLS 1.2's OpenSSL-style, TLS 1.3's the IANA
/// name).
pub const CIPHERS: [(&str, CipherSuite); 9] = [
    (
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The key-exchange groups, by BoringSSL's name (`SSL_get_curve_name`).
pub const CURVES: [(&str, NamedGroup); 5] = [
    ("X25519MLKEM768", NamedGroup::X25519MLKEM768),
    ("X25519", NamedGroup::X25519),
    ("P-256", NamedGroup::secp256r1),
    ("P-384", NamedGroup::secp384r1),
    ("P-521", NamedGroup::secp521r1),
];

/// The position of `suite` in [`CIPHERS`].
pub fn cipher_index(suite: CipherSuite) -> Option<usize> {
    CIPHERS.iter().position(|(_, s)| *s == suite)
}

/// The position of `group` in [`CURVES`].
pub fn curve_index(group: NamedGroup) -> Option<usize> {
    CURVES.iter().position(|(_, g)| *g == group)
}

/// The suite a BoringSSL name stands for.
pub fn cipher_named(name: &str) -> Option<CipherSuite> {
    CIPHERS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The group a BoringSSL or OpenSSL curve name stands for (`prime256v1` and the SEC
/// names are accepted too).
pub fn curve_named(name: &str) -> Option<NamedGroup> {
    let canonical = match name {
        "prime256v1" | "secp256r1" => "P-256",
        "secp384r1" => "P-384",
        "secp521r1" => "P-521",
        other => other,
    };
    CURVES
        .iter()
        .find(|(n, _)| *n == canonical)
        .map(|(_, g)| *g)
}
