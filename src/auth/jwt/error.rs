//! Why a token was refused, in Envoy's words.
//!
//! Design: one variant per jwt_verify_lib `Status` the request path can meet
//! (google/jwt_verify_lib `src/status.cc`, the copy Envoy ships), so that a refused
//! request's body is byte for byte what Envoy answers. The two checks Envoy adds on top
//! of the library (`require_expiration`, `max_lifetime`) answer `Jwt is expired` as
//! Envoy's authenticator does; ringway's own `required_claims` has its own text. The
//! messages are `&'static str`: answering an error allocates nothing.

/// A token that did not verify, or no token at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtError {
    /// No token where the provider looks (`Jwt is missing`).
    Missing,
    /// `nbf` is later than now plus the clock skew.
    NotYetValid,
    /// `exp` is earlier than now minus the clock skew.
    Expired,
    /// Not three non-empty base64url sections joined by two dots.
    BadFormat,
    HeaderBadBase64,
    HeaderBadJson,
    /// `alg` missing or not a string.
    HeaderBadAlg,
    /// `alg` is not an implemented algorithm (`none` included).
    HeaderNotImplementedAlg,
    HeaderBadKid,
    PayloadBadBase64,
    PayloadBadJson,
    IssNotString,
    SubNotString,
    IatNotInteger,
    IatOutOfRange,
    NbfNotInteger,
    NbfOutOfRange,
    ExpNotInteger,
    ExpOutOfRange,
    JtiNotString,
    AudNotString,
    SignatureBadBase64,
    /// An EdDSA signature that is not 64 bytes.
    Ed25519SignatureWrongLength,
    /// `iss` is not the provider's issuer.
    UnknownIssuer,
    /// No `aud` of the token is an allowed audience (Envoy answers 403).
    AudienceNotAllowed,
    /// Keys fit the token's `kid` and `alg`, and none verified the signature.
    VerificationFail,
    /// Several tokens where one was expected.
    MultipleTokens,
    /// No key fits the token's `kid` and `alg`: the case that makes remote keys be
    /// fetched again ([`JwtError::is_unknown_kid`]).
    KidAlgMismatch,
    /// The provider has no usable keys (yet).
    JwksNoValidKeys,
    /// The provider's remote keys could not be fetched.
    JwksFetchFail,
    /// No `exp` although the provider requires one (`require_expiration`, or any
    /// `max_lifetime`), or `exp` further away than `max_lifetime`. Envoy answers
    /// `Jwt is expired` for both.
    LifetimeNotAllowed,
    /// A claim of the provider's `required_claims` is absent (ringway's own check).
    MissingClaim,
}

impl JwtError {
    /// Every status, for answers rendered once per snapshot.
    pub const ALL: [JwtError; 32] = [
        JwtError::Missing,
        JwtError::NotYetValid,
        JwtError::Expired,
        JwtError::BadFormat,
        JwtError::HeaderBadBase64,
        JwtError::HeaderBadJson,
        JwtError::HeaderBadAlg,
        JwtError::HeaderNotImplementedAlg,
        JwtError::HeaderBadKid,
        JwtError::PayloadBadBase64,
        JwtError::PayloadBadJson,
        JwtError::IssNotString,
        JwtError::SubNotString,
        JwtError::IatNotInteger,
        JwtError::IatOutOfRange,
        JwtError::NbfNotInteger,
        JwtError::NbfOutOfRange,
        JwtError::ExpNotInteger,
        JwtError::ExpOutOfRange,
        JwtError::JtiNotString,
        JwtError::AudNotString,
        JwtError::SignatureBadBase64,
        JwtError::Ed25519SignatureWrongLength,
        JwtError::UnknownIssuer,
        JwtError::AudienceNotAllowed,
        JwtError::VerificationFail,
        JwtError::MultipleTokens,
        JwtError::KidAlgMismatch,
        JwtError::JwksNoValidKeys,
        JwtError::JwksFetchFail,
        JwtError::LifetimeNotAllowed,
        JwtError::MissingClaim,
    ];

    /// Envoy's text for this status (the body of its 401/403 answer).
    pub fn message(&self) -> &'static str {
        match self {
            JwtError::Missing => "Jwt is missing",
            JwtError::NotYetValid => "Jwt not yet valid",
            JwtError::Expired | JwtError::LifetimeNotAllowed => "Jwt is expired",
            JwtError::BadFormat => {
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
            }
            JwtError::HeaderBadBase64 => "Jwt header is an invalid Base64url encoded",
            JwtError::HeaderBadJson => "Jwt header is an invalid JSON",
            JwtError::HeaderBadAlg => "Jwt header [alg] field is required and must be a string",
            JwtError::HeaderNotImplementedAlg => "Jwt header [alg] is not supported",
            JwtError::HeaderBadKid => "Jwt header [kid] field is not a string",
            JwtError::PayloadBadBase64 => "Jwt payload is an invalid Base64url encoded",
            JwtError::PayloadBadJson => "Jwt payload is an invalid JSON",
            JwtError::IssNotString => "Jwt payload [iss] field is not a string",
            JwtError::SubNotString => "Jwt payload [sub] field is not a string",
            JwtError::IatNotInteger => "Jwt payload [iat] field is not an integer",
            JwtError::IatOutOfRange => "Jwt payload [iat] field is not a positive 64 bit integer",
            JwtError::NbfNotInteger => "Jwt payload [nbf] field is not an integer",
            JwtError::NbfOutOfRange => "Jwt payload [nbf] field is not a positive 64 bit integer",
            JwtError::ExpNotInteger => "Jwt payload [exp] field is not an integer",
            JwtError::ExpOutOfRange => "Jwt payload [exp] field is not a positive 64 bit integer",
            JwtError::JtiNotString => "Jwt payload [jti] field is not a string",
            JwtError::AudNotString => "Jwt payload [aud] field is not a string or string list",
            JwtError::SignatureBadBase64 => "Jwt signature is an invalid Base64url encoded",
            JwtError::Ed25519SignatureWrongLength => "Jwt ED25519 signature is wrong length",
            JwtError::UnknownIssuer => "Jwt issuer is not configured",
            JwtError::AudienceNotAllowed => "Audiences in Jwt are not allowed",
            JwtError::VerificationFail => "Jwt verification fails",
            JwtError::MultipleTokens => "Found multiple Jwt tokens",
            JwtError::KidAlgMismatch => "Jwks doesn't have key to match kid or alg from Jwt",
            JwtError::JwksNoValidKeys => "Jwks doesn't have any valid public key",
            JwtError::JwksFetchFail => "Jwks remote fetch is failed",
            JwtError::MissingClaim => "Jwt is missing required claim",
        }
    }

    /// The HTTP status Envoy answers: 403 for a valid token with a wrong audience
    /// (Envoy's rule; RFC 6750 would say 401), 401 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            JwtError::AudienceNotAllowed => 403,
            _ => 401,
        }
    }

    /// No key of the set fits the token's `kid` (or `alg`): keys fetched from a URL may
    /// have rotated, so this is the error that asks for a (rate-limited) refetch.
    pub fn is_unknown_kid(&self) -> bool {
        matches!(self, JwtError::KidAlgMismatch)
    }

    /// The token was absent (RFC 6750 §3.1: the challenge then carries no error code),
    /// as opposed to present and invalid (`error="invalid_token"`).
    pub fn is_missing(&self) -> bool {
        matches!(self, JwtError::Missing)
    }
}

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for JwtError {}
