//! The JWT engine: key sets, token verification, Envoy's error answers, the per-core
//! cache of verified tokens, and finding a token in a request. Sans-IO: byte slices
//! and parsed values in, results out; nothing here reads a socket, a file or a clock.
//!
//! Design:
//! - [`Jwks`] is parsed once per key set (config load, file change, remote fetch) into
//!   aws-lc-rs key objects (`ParsedPublicKey`, `hmac::Key`), so a request pays for the
//!   signature check only, never for key parsing. It is immutable and `Send + Sync`:
//!   workers share it through an `Arc`.
//! - [`verify`] follows Envoy's jwt_authn (jwt_verify_lib) step by step, so that the
//!   same token gets the same answer from both: parse (`Header.Payload.Signature`,
//!   base64url, JSON, claim types), issuer, `nbf`/`exp` with the clock skew, the
//!   lifetime rules, audiences, then the signature against every key whose `kid` and
//!   `alg` fit. The claims come before the signature as in Envoy; no claim is trusted
//!   before the signature has been checked, because the caller only gets a
//!   [`Verified`] when every step passed.
//! - The algorithm is taken from the token but must fit the key's type: an `HS256`
//!   token never verifies against an RSA or EC key (algorithm confusion), `none` is not
//!   an algorithm. Crypto is aws-lc-rs only, the provider TLS uses; HMAC tags are
//!   compared in constant time (`hmac::verify`).
//! - [`JwtError`] has one variant per jwt_verify_lib status the request path can meet,
//!   with Envoy's exact text ([`JwtError::message`]) and status ([`JwtError::status`]:
//!   403 only for audiences, as Envoy answers).
//! - [`TokenCache`] (one per worker and provider, not `Send`) remembers verified tokens
//!   so that a client sending the same token on every request pays the signature check
//!   once per core. Lookup hashes the token, confirms with a full comparison and
//!   allocates nothing.
//! - [`extract`] finds a token in a header value, a query string or a cookie header
//!   without allocating.

mod cache;
mod error;
pub mod extract;
mod fuzzing;
mod jwks;
mod verify;

pub use cache::TokenCache;
pub use error::JwtError;
pub use fuzzing::fuzz;
pub use jwks::Jwks;
pub use verify::{audiences_allowed, value_text, verify, Checks, Verified};

/// A signature algorithm a token may name in its `alg` header (the set Envoy
/// implements). `none` is not one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Alg {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

impl Alg {
    /// The algorithm a JOSE `alg` value names (case-sensitive, as RFC 7518 says).
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "HS256" => Alg::HS256,
            "HS384" => Alg::HS384,
            "HS512" => Alg::HS512,
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            "ES512" => Alg::ES512,
            "EdDSA" => Alg::EdDSA,
            _ => return None,
        })
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
            Alg::EdDSA => "EdDSA",
        }
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Base64url as jwt_verify_lib decodes it (absl's `WebSafeBase64Unescape`): the URL-safe
/// alphabet, padding optional but correct when present; the unused bits of the last
/// character must be zero (the one canonical encoding).
const B64URL: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

#[cfg(test)]
mod tests;
