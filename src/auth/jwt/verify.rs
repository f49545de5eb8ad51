//! Verifying one token: parse, claims, signature, in Envoy's order.
//!
//! Design: [`verify`] is jwt_verify_lib's `Jwt::parseFromString` followed by Envoy's
//! authenticator (`startVerify`, `verifyKey`): the same checks in the same order, so a
//! token that fails several checks gets the answer Envoy gives. The token's sections
//! are decoded into fresh buffers (this is the uncached path: a few small allocations
//! beside a signature check that costs tens of microseconds); everything a caller reads
//! afterwards, claims by dotted path included, is read from [`Verified`] without
//! allocating, so the cached path stays allocation-free.
//!
//! Two deliberate differences from jwt_verify_lib, both stricter: the sections must be
//! exactly three and non-empty (absl's `SkipEmpty` split would accept `a..b.c`), and an
//! `exp` of 0 is a token that expired in 1970 (jwt_verify_lib reads 0 as "no `exp`").

use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Number, Value};

use super::{Alg, Jwks, JwtError, B64URL};

/// What a provider requires of a token's claims, besides the signature.
#[derive(Debug, Clone, PartialEq)]
pub struct Checks {
    /// `iss` must be this (`None`: any issuer).
    pub issuer: Option<String>,
    /// One of the token's `aud` must be one of these (empty: any). Compared as Envoy
    /// does: an `http://` or `https://` prefix and one trailing `/` are ignored on both
    /// sides.
    pub audiences: Vec<String>,
    /// Seconds `exp` and `nbf` may be off (Envoy's `clock_skew_seconds`, 60).
    pub clock_skew: u64,
    /// A token without `exp` is refused (Envoy's `require_expiration`).
    pub require_expiration: bool,
    /// `exp` may be at most this far from now (Envoy's `max_lifetime`: the remaining
    /// lifetime, strictly less); implies `require_expiration`.
    pub max_lifetime: Option<Duration>,
    /// Claims (dotted paths) that must be present and not `null`.
    pub required_claims: Vec<String>,
}

impl Default for Checks {
    fn default() -> Checks {
        Checks {
            issuer: None,
            audiences: Vec::new(),
            // Envoy's `clock_skew_seconds` default.
            clock_skew: 60,
            require_expiration: false,
            max_lifetime: None,
            required_claims: Vec::new(),
        }
    }
}

impl Checks {
    /// Runs the claim checks again on a token verified earlier (a cache hit): time,
    /// lifetime, issuer, audiences and required claims against `now`, as Envoy checks a
    /// cached token before using it. Allocates nothing.
    pub fn recheck(&self, verified: &Verified, now: u64) -> Result<(), JwtError> {
        let Value::Object(payload) = &verified.payload else {
            return Err(JwtError::PayloadBadJson);
        };
        self.check_claims(payload, verified.times(), now)
    }

    fn check_claims(
        &self,
        payload: &Map<String, Value>,
        times: Times,
        now: u64,
    ) -> Result<(), JwtError> {
        if let Some(issuer) = &self.issuer {
            if payload.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
                return Err(JwtError::UnknownIssuer);
            }
        }
        // jwt_verify_lib's `verifyTimeConstraint`.
        if times
            .nbf
            .is_some_and(|nbf| now.saturating_add(self.clock_skew) < nbf)
        {
            return Err(JwtError::NotYetValid);
        }
        if times
            .exp
            .is_some_and(|exp| now > exp.saturating_add(self.clock_skew))
        {
            return Err(JwtError::Expired);
        }
        // Envoy's `isLifetimeAllowed`: `require_expiration` is an infinite maximum.
        if self.require_expiration || self.max_lifetime.is_some() {
            let Some(exp) = times.exp else {
                return Err(JwtError::LifetimeNotAllowed);
            };
            if let Some(max) = self.max_lifetime {
                if Duration::from_secs(exp.saturating_sub(now)) >= max {
                    return Err(JwtError::LifetimeNotAllowed);
                }
            }
        }
        if !audience_allowed(&self.audiences, payload.get("aud")) {
            return Err(JwtError::AudienceNotAllowed);
        }
        for claim in &self.required_claims {
            if lookup(payload, claim).is_none_or(Value::is_null) {
                return Err(JwtError::MissingClaim);
            }
        }
        Ok(())
    }
}

/// jwt_verify_lib's `CheckAudience::sanitizeAudience`: no scheme, no trailing slash.
fn sanitize(audience: &str) -> &str {
    let rest = audience
        .strip_prefix("http://")
        .or_else(|| audience.strip_prefix("https://"))
        .unwrap_or(audience);
    rest.strip_suffix('/').unwrap_or(rest)
}

/// Whether `verified`'s `aud` holds one of `allowed` (any, when `allowed` is empty),
/// compared as jwt_verify_lib compares them: what a cached token needs checked per
/// request when requirements name audiences of their own.
pub fn audiences_allowed(allowed: &[String], verified: &Verified) -> bool {
    allowed.is_empty() || audience_allowed(allowed, verified.claim("aud"))
}

fn audience_allowed(allowed: &[String], aud: Option<&Value>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let fits = |a: &str| {
        let a = sanitize(a);
        allowed.iter().any(|c| sanitize(c) == a)
    };
    match aud {
        Some(Value::String(a)) => fits(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(fits),
        _ => false,
    }
}

/// A claim by dotted path (`realm.roles`), every step but the last an object, as
/// Envoy's `StructUtils::GetValue` walks it.
fn lookup<'a>(payload: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    // Most claims are top-level names: no splitting for them.
    if !path.as_bytes().contains(&b'.') {
        return payload.get(path);
    }
    let mut parts = path.split('.');
    let mut value = payload.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Times {
    exp: Option<u64>,
    nbf: Option<u64>,
}

/// A token whose signature and claims checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The decoded payload (a JSON object).
    pub payload: Value,
    /// `exp`, seconds since the epoch.
    pub exp: Option<u64>,
    /// The payload section of the token as sent (base64url, unpadded unless the issuer
    /// padded), for `forward_payload_header`.
    pub payload_b64: String,
    /// The algorithm the signature was made with.
    pub alg: Alg,
    nbf: Option<u64>,
    /// The last second the token is good for: `exp` plus the clock skew.
    valid_until: u64,
    /// The top-level claims again, flat: a cached token's claims are read on every
    /// request (audiences, policies, headers), and a scan that compares lengths first
    /// touches a name's bytes only when its length fits, where the payload's B-tree
    /// compares names byte by byte at every step (measured: about 280 instructions a
    /// lookup there, against 17 claims). Built once, when the token verifies.
    names: Box<[(Box<str>, Value)]>,
}

impl Verified {
    /// A claim by dotted path (`sub`, `realm.roles`); no allocation.
    pub fn claim(&self, path: &str) -> Option<&Value> {
        let bytes = path.as_bytes();
        let (first, rest) = match bytes.iter().position(|&b| b == b'.') {
            Some(dot) => (&bytes[..dot], Some(&path[dot + 1..])),
            None => (bytes, None),
        };
        let (_, value) = self
            .names
            .iter()
            .find(|(k, _)| k.len() == first.len() && k.as_bytes() == first)?;
        match rest {
            None => Some(value),
            Some(rest) => lookup(value.as_object()?, rest),
        }
    }

    /// Appends a claim as header text, Envoy's `claim_to_headers` rule: strings as
    /// they are, booleans as `true`/`false`, numbers as integers when whole and in
    /// `u64` range, else with six decimals (C++ `std::to_string(double)`). Objects,
    /// arrays, `null`, empty strings and absent claims append nothing and answer false
    /// (Envoy adds no header then). No allocation beyond `out`'s own growth.
    pub fn claim_text(&self, path: &str, out: &mut Vec<u8>) -> bool {
        self.claim(path).is_some_and(|v| value_text(v, out))
    }

    /// `sub`, when a string.
    pub fn subject(&self) -> Option<&str> {
        self.claim("sub").and_then(Value::as_str)
    }

    /// `iss`, when a string.
    pub fn issuer(&self) -> Option<&str> {
        self.claim("iss").and_then(Value::as_str)
    }

    /// Whether the token is still good at `now` (its `exp` plus the clock skew it was
    /// verified with); a token without `exp` always is.
    pub fn is_current(&self, now: u64) -> bool {
        now <= self.valid_until
    }

    fn times(&self) -> Times {
        Times {
            exp: self.exp,
            nbf: self.nbf,
        }
    }
}

/// Envoy's `convertClaimDoubleToString`: protobuf holds JSON numbers as doubles.
/// Appends a claim's value as header text, Envoy's `claim_to_headers` rule (see
/// [`Verified::claim_text`]); a string holding a control character appends nothing
/// either, since a claim must not be able to add a header line. Header variables
/// (`%JWT_CLAIM(..)%`) write claims the same way.
pub fn value_text(value: &Value, out: &mut Vec<u8>) -> bool {
    match value {
        Value::String(s) if !s.is_empty() => {
            if !s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f)) {
                return false;
            }
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => write_number(n, out),
        _ => return false,
    }
    true
}

fn write_number(n: &Number, out: &mut Vec<u8>) {
    use std::io::Write;
    let value = n.as_f64().unwrap_or(0.0);
    // Writing into a Vec cannot fail.
    let _ = if (0.0..18_446_744_073_709_551_616.0).contains(&value) && value.fract() == 0.0 {
        write!(out, "{}", value as u64)
    } else {
        write!(out, "{value:.6}")
    };
}

/// A numeric claim as jwt_verify_lib's `GetUInt64` reads it: a JSON number (doubles:
/// the fraction is dropped) in `0..2^64`.
fn time_claim(
    value: Option<&Value>,
    not_integer: JwtError,
    out_of_range: JwtError,
) -> Result<Option<u64>, JwtError> {
    match value {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(u));
            }
            let f = n.as_f64().unwrap_or(-1.0);
            if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                Ok(Some(f as u64))
            } else {
                Err(out_of_range)
            }
        }
        Some(_) => Err(not_integer),
    }
}

fn string_claim(payload: &Map<String, Value>, name: &str, error: JwtError) -> Result<(), JwtError> {
    match payload.get(name) {
        None | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(error),
    }
}

/// Splits `header.payload.signature`; the signed part is the token up to the second dot.
fn sections(token: &[u8]) -> Result<[&[u8]; 4], JwtError> {
    let mut dots = token
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'.')
        .map(|(i, _)| i);
    let (Some(first), Some(second), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(JwtError::BadFormat);
    };
    let (header, payload, signature) = (
        &token[..first],
        &token[first + 1..second],
        &token[second + 1..],
    );
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(JwtError::BadFormat);
    }
    Ok([header, payload, signature, &token[..second]])
}

fn json_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// Verifies `token` (the bytes after any `Bearer ` prefix) against `jwks` and `checks`
/// at `now` (seconds since the epoch). The order of the checks is Envoy's, so is the
/// error each failure answers.
pub fn verify(token: &[u8], jwks: &Jwks, checks: &Checks, now: u64) -> Result<Verified, JwtError> {
    let [header_b64, payload_b64, signature_b64, signed] = sections(token)?;

    let header = B64URL
        .decode(header_b64)
        .map_err(|_| JwtError::HeaderBadBase64)?;
    let header = json_object(&header).ok_or(JwtError::HeaderBadJson)?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => {
            Alg::from_name(name).ok_or(JwtError::HeaderNotImplementedAlg)?
        }
        _ => return Err(JwtError::HeaderBadAlg),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(JwtError::HeaderBadKid),
    };

    let payload = B64URL
        .decode(payload_b64)
        .map_err(|_| JwtError::PayloadBadBase64)?;
    let payload = json_object(&payload).ok_or(JwtError::PayloadBadJson)?;
    string_claim(&payload, "iss", JwtError::IssNotString)?;
    string_claim(&payload, "sub", JwtError::SubNotString)?;
    time_claim(
        payload.get("iat"),
        JwtError::IatNotInteger,
        JwtError::IatOutOfRange,
    )?;
    let nbf = time_claim(
        payload.get("nbf"),
        JwtError::NbfNotInteger,
        JwtError::NbfOutOfRange,
    )?;
    let exp = time_claim(
        payload.get("exp"),
        JwtError::ExpNotInteger,
        JwtError::ExpOutOfRange,
    )?;
    string_claim(&payload, "jti", JwtError::JtiNotString)?;
    match payload.get("aud") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {}
        Some(_) => return Err(JwtError::AudNotString),
    }

    let signature = B64URL
        .decode(signature_b64)
        .map_err(|_| JwtError::SignatureBadBase64)?;

    let times = Times { exp, nbf };
    checks.check_claims(&payload, times, now)?;
    jwks.verify_signature(alg, kid, signed, &signature)?;

    let names = payload
        .iter()
        .map(|(k, v)| (k.as_str().into(), v.clone()))
        .collect();
    Ok(Verified {
        names,
        payload: Value::Object(payload),
        exp,
        // The section decoded as base64, so it is ASCII.
        payload_b64: String::from_utf8_lossy(payload_b64).into_owned(),
        alg,
        nbf,
        valid_until: exp.map_or(u64::MAX, |e| e.saturating_add(checks.clock_skew)),
    })
}
