//! Key sets: a JWKS document, a single JWK, a PEM public key, or Google's map of X.509
//! certificates by `kid`, parsed once into aws-lc-rs key objects.
//!
//! Design: parsing follows jwt_verify_lib's `Jwks::createFrom` (Envoy's `local_jwks`
//! and remote JWKS): a key whose `kty`, `crv` or `alg` is unsupported or whose material
//! does not parse is skipped, with the library's reason kept in [`Jwks::skipped`] for a
//! warning; only a set with no usable key at all is an error (`Jwks doesn't have any
//! valid public key`, with each key's reason). ringway adds two refusals of its own: a
//! key whose `use` is not `sig` (an encryption key must not verify signatures), and RSA
//! moduli under 2048 bits (aws-lc-rs's verification range is 2048 to 8192 bits, so such
//! a key could never verify; refusing it at load says so).
//!
//! Each key is parsed for every algorithm it may serve: an RSA key without `alg` holds
//! one `ParsedPublicKey` per RS/PS algorithm (the parsed key is bound to its padding and
//! digest), an `oct` key one `hmac::Key` per HS algorithm. That costs a few key objects
//! at load and nothing per request. Verification walks the keys in document order,
//! skipping those whose `kid` (when both the token and the key have one) or `alg` (when
//! the key has one) differ, exactly as jwt_verify_lib does; a key whose type does not
//! fit the token's algorithm counts as matched but never verifies, so an `HS256` token
//! against a set of RSA keys answers `Jwt verification fails`, as in Envoy.

use std::fmt;

use aws_lc_rs::{
    hmac,
    signature::{self, ParsedPublicKey, RsaPublicKeyComponents},
};
use base64::Engine;
use serde_json::{Map, Value};
use x509_parser::{
    oid_registry::{
        OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
        OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
    },
    prelude::{FromDer, X509Certificate},
    public_key::PublicKey,
    x509::SubjectPublicKeyInfo,
};

use super::{Alg, JwtError, B64URL};

/// A parsed, immutable key set. `Send + Sync`: workers share one through an `Arc`.
pub struct Jwks {
    keys: Vec<Key>,
    skipped: Vec<String>,
}

struct Key {
    kid: Option<String>,
    alg: Option<Alg>,
    material: Material,
}

/// The RS/PS algorithms in the order of [`Material::Rsa`]'s slots.
const RSA_ALGS: [Alg; 6] = [
    Alg::RS256,
    Alg::RS384,
    Alg::RS512,
    Alg::PS256,
    Alg::PS384,
    Alg::PS512,
];
/// The HS algorithms in the order of [`Material::Hmac`]'s slots.
const HMAC_ALGS: [Alg; 3] = [Alg::HS256, Alg::HS384, Alg::HS512];

enum Material {
    /// One parsed key per algorithm the JWK allows, by [`RSA_ALGS`] index.
    Rsa {
        bits: usize,
        by_alg: Box<[Option<ParsedPublicKey>; 6]>,
    },
    Ec {
        curve: Curve,
        key: ParsedPublicKey,
    },
    Ed25519(ParsedPublicKey),
    /// One HMAC key per algorithm the JWK allows, by [`HMAC_ALGS`] index.
    Hmac(Box<[Option<hmac::Key>; 3]>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn alg(self) -> Alg {
        match self {
            Curve::P256 => Alg::ES256,
            Curve::P384 => Alg::ES384,
            Curve::P521 => Alg::ES512,
        }
    }

    /// Bytes of one coordinate.
    fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    fn verification(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
        }
    }
}

/// What one key said about a signature.
enum Outcome {
    Valid,
    Invalid,
    /// jwt_verify_lib stops at an EdDSA signature of the wrong length.
    Ed25519WrongLength,
}

impl Material {
    fn kty(&self) -> &'static str {
        match self {
            Material::Rsa { .. } => "RSA",
            Material::Ec { .. } => "EC",
            Material::Ed25519(_) => "OKP",
            Material::Hmac(_) => "oct",
        }
    }

    fn verify(&self, alg: Alg, signed: &[u8], signature: &[u8]) -> Outcome {
        let valid = match self {
            Material::Hmac(by_alg) => HMAC_ALGS
                .iter()
                .position(|a| *a == alg)
                .and_then(|i| by_alg[i].as_ref())
                .is_some_and(|key| hmac::verify(key, signed, signature).is_ok()),
            Material::Rsa { by_alg, .. } => RSA_ALGS
                .iter()
                .position(|a| *a == alg)
                .and_then(|i| by_alg[i].as_ref())
                .is_some_and(|key| key.verify_sig(signed, signature).is_ok()),
            Material::Ec { curve, key } => {
                curve.alg() == alg && key.verify_sig(signed, signature).is_ok()
            }
            Material::Ed25519(key) => {
                if alg != Alg::EdDSA {
                    return Outcome::Invalid;
                }
                if signature.len() != 64 {
                    return Outcome::Ed25519WrongLength;
                }
                key.verify_sig(signed, signature).is_ok()
            }
        };
        if valid {
            Outcome::Valid
        } else {
            Outcome::Invalid
        }
    }
}

impl Jwks {
    /// Parses a key set: a JWKS JSON document (`{"keys": [...]}`), a single JWK, a map
    /// of `kid` to PEM X.509 certificate (Google's format, which Envoy accepts), or PEM
    /// public keys (`-----BEGIN PUBLIC KEY-----`: RSA, EC P-256/384/521 or Ed25519
    /// SubjectPublicKeyInfo). Unusable keys are skipped ([`Jwks::skipped`]); the error
    /// says why no key was usable.
    pub fn parse(text: &str) -> Result<Jwks, String> {
        let start = text.trim_start();
        if start.starts_with("-----BEGIN") {
            return parse_pem(start);
        }
        let document: Value =
            serde_json::from_str(text).map_err(|e| format!("Jwks is an invalid JSON ({e})"))?;
        let Value::Object(document) = document else {
            return Err("Jwks is an invalid JSON (not an object)".into());
        };
        let mut jwks = Jwks {
            keys: Vec::new(),
            skipped: Vec::new(),
        };
        match document.get("keys") {
            Some(Value::Array(list)) => {
                for (i, entry) in list.iter().enumerate() {
                    let result = match entry {
                        Value::Object(jwk) => parse_jwk(jwk),
                        _ => Err("not a JSON object".into()),
                    };
                    match result {
                        Ok(key) => jwks.keys.push(key),
                        Err(why) => jwks.skipped.push(format!("keys[{i}]: {why}")),
                    }
                }
            }
            Some(_) => return Err("[keys] in Jwks is not an array".into()),
            None if document.contains_key("kty") => match parse_jwk(&document) {
                Ok(key) => jwks.keys.push(key),
                Err(why) => jwks.skipped.push(why),
            },
            None if is_x509_map(&document) => {
                for (kid, pem) in &document {
                    let pem = pem.as_str().unwrap_or_default();
                    match certificate_key(pem) {
                        Ok(material) => jwks.keys.push(Key {
                            kid: Some(kid.clone()),
                            alg: None,
                            material,
                        }),
                        Err(why) => jwks.skipped.push(format!("{kid:?}: {why}")),
                    }
                }
            }
            None => return Err("Jwks does not have [keys] field".into()),
        }
        jwks.check_not_empty()
    }

    fn check_not_empty(self) -> Result<Jwks, String> {
        if !self.keys.is_empty() {
            return Ok(self);
        }
        let mut message = JwtError::JwksNoValidKeys.message().to_owned();
        if !self.skipped.is_empty() {
            message.push_str(" (");
            message.push_str(&self.skipped.join("; "));
            message.push(')');
        }
        Err(message)
    }

    /// The number of usable keys (never 0 for a parsed set).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a set without a usable key does not parse.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Why keys of the document were left out, one line each (`keys[2]: [kty] is not
    /// supported in [keys]`), for a warning at load.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Whether a key carries this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Checks `signature` over `signed` (the token up to its second dot) with every key
    /// whose `kid` and `alg` fit, jwt_verify_lib's `verifyJwtWithoutTimeChecking`.
    pub(super) fn verify_signature(
        &self,
        alg: Alg,
        kid: Option<&str>,
        signed: &[u8],
        signature: &[u8],
    ) -> Result<(), JwtError> {
        let kid = kid.filter(|k| !k.is_empty());
        let mut matched = false;
        for key in &self.keys {
            if let (Some(want), Some(have)) = (kid, key.kid.as_deref()) {
                if !have.is_empty() && want != have {
                    continue;
                }
            }
            if key.alg.is_some_and(|a| a != alg) {
                continue;
            }
            matched = true;
            match key.material.verify(alg, signed, signature) {
                Outcome::Valid => return Ok(()),
                Outcome::Ed25519WrongLength => return Err(JwtError::Ed25519SignatureWrongLength),
                Outcome::Invalid => {}
            }
        }
        Err(if matched {
            JwtError::VerificationFail
        } else {
            JwtError::KidAlgMismatch
        })
    }
}

impl fmt::Debug for Jwks {
    /// Key ids and types only: an `oct` key is a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct K<'a>(&'a Key);
        impl fmt::Debug for K<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut d = f.debug_struct("Key");
                d.field("kid", &self.0.kid)
                    .field("alg", &self.0.alg)
                    .field("kty", &self.0.material.kty());
                match &self.0.material {
                    Material::Rsa { bits, .. } => d.field("bits", bits),
                    Material::Ec { curve, .. } => d.field("crv", curve),
                    _ => &mut d,
                };
                d.finish()
            }
        }
        f.debug_struct("Jwks")
            .field("keys", &self.keys.iter().map(K).collect::<Vec<_>>())
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// A string field: `Ok(None)` when absent, `Err(())` when not a string.
fn string_field<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ()> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(()),
    }
}

/// A required string field, with jwt_verify_lib's texts for missing and wrong type.
fn required<'a>(
    jwk: &'a Map<String, Value>,
    name: &str,
    missing: &str,
    wrong_type: &str,
) -> Result<&'a str, String> {
    match string_field(jwk, name) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(missing.into()),
        Err(()) => Err(wrong_type.into()),
    }
}

fn parse_jwk(jwk: &Map<String, Value>) -> Result<Key, String> {
    let kty = required(
        jwk,
        "kty",
        "[kty] is missing in [keys]",
        "[kty] is bad in [keys]",
    )?;
    // jwt_verify_lib reads `kid` and `alg` only when they are strings.
    let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
    let alg_name = jwk
        .get("alg")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty());
    if let Some(usage) = jwk.get("use").and_then(Value::as_str) {
        if usage != "sig" {
            return Err(format!("[use] is {usage:?}, not \"sig\""));
        }
    }
    let (alg, material) = match kty {
        "RSA" => rsa_jwk(jwk, alg_name)?,
        "EC" => ec_jwk(jwk, alg_name)?,
        "oct" => oct_jwk(jwk, alg_name)?,
        "OKP" => okp_jwk(jwk, alg_name)?,
        _ => return Err("[kty] is not supported in [keys]".into()),
    };
    Ok(Key { kid, alg, material })
}

fn rsa_jwk(
    jwk: &Map<String, Value>,
    alg_name: Option<&str>,
) -> Result<(Option<Alg>, Material), String> {
    let alg = match alg_name {
        None => None,
        Some(name) => match Alg::from_name(name).filter(|a| RSA_ALGS.contains(a)) {
            Some(alg) => Some(alg),
            None => return Err("[alg] is not started with [RS] or [PS] for an RSA key".into()),
        },
    };
    let n = required(
        jwk,
        "n",
        "[n] field is missing for a RSA key",
        "[n] field is not string for a RSA key",
    )?;
    let e = required(
        jwk,
        "e",
        "[e] field is missing for a RSA key",
        "[e] field is not string for a RSA key",
    )?;
    const PARSE: &str = "Jwks RSA [n] or [e] field is missing or has a parse error";
    let n = B64URL.decode(n).map_err(|_| PARSE.to_owned())?;
    let e = B64URL.decode(e).map_err(|_| PARSE.to_owned())?;
    Ok((alg, rsa_material(&n, &e, alg)?))
}

fn strip_leading_zeros(mut bytes: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = bytes {
        bytes = rest;
    }
    bytes
}

/// RSA keys from big-endian `n` and `e` (leading zeros allowed, as `BN_bin2bn` reads
/// them), for `alg` only or for every RS/PS algorithm.
fn rsa_material(n: &[u8], e: &[u8], alg: Option<Alg>) -> Result<Material, String> {
    const PARSE: &str = "Jwks RSA [n] or [e] field is missing or has a parse error";
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
    // jwt_verify_lib refuses other exponents early ("non-standard key").
    if e != [3] && e != [1, 0, 1] {
        return Err(format!("{PARSE} (the exponent must be 3 or 65537)"));
    }
    let bits = match n.first() {
        Some(top) => n.len() * 8 - top.leading_zeros() as usize,
        None => return Err(PARSE.into()),
    };
    if !(2048..=8192).contains(&bits) {
        return Err(format!(
            "{PARSE} (a {bits}-bit modulus; 2048 to 8192 bits are supported)"
        ));
    }
    let components = RsaPublicKeyComponents { n, e };
    let mut by_alg: Box<[Option<ParsedPublicKey>; 6]> = Box::default();
    for (slot, candidate) in by_alg.iter_mut().zip(RSA_ALGS) {
        if alg.is_some_and(|a| a != candidate) {
            continue;
        }
        let params: &'static signature::RsaParameters = match candidate {
            Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            _ => &signature::RSA_PSS_2048_8192_SHA512,
        };
        let parsed = components
            .to_parsed_public_key(params)
            .map_err(|e| format!("{PARSE} ({e})"))?;
        *slot = Some(parsed);
    }
    Ok(Material::Rsa { bits, by_alg })
}

fn ec_jwk(
    jwk: &Map<String, Value>,
    alg_name: Option<&str>,
) -> Result<(Option<Alg>, Material), String> {
    const UNSUPPORTED: &str = "[crv] or [alg] field is not supported for an EC key";
    let alg = match alg_name {
        None => None,
        Some(name) if !name.starts_with("ES") => {
            return Err("[alg] is not started with [ES] for an EC key".into())
        }
        Some(name) => match Alg::from_name(name) {
            Some(alg) => Some(alg),
            None => return Err(UNSUPPORTED.into()),
        },
    };
    let crv = string_field(jwk, "crv")
        .map_err(|()| "[crv] field is not string for an EC key".to_owned())?
        .filter(|c| !c.is_empty());
    let from_crv = match crv {
        None => None,
        Some("P-256") => Some(Curve::P256),
        Some("P-384") => Some(Curve::P384),
        Some("P-521") => Some(Curve::P521),
        Some(_) if alg.is_some() => {
            return Err("[crv] field specified is not compatible with [alg] for an EC key".into())
        }
        Some(_) => return Err(UNSUPPORTED.into()),
    };
    let curve = match (alg, from_crv) {
        (Some(alg), Some(curve)) if curve.alg() != alg => {
            return Err("[crv] field specified is not compatible with [alg] for an EC key".into())
        }
        (_, Some(curve)) => curve,
        (Some(Alg::ES384), None) => Curve::P384,
        (Some(Alg::ES512), None) => Curve::P521,
        // jwt_verify_lib assumes P-256 when neither says otherwise.
        _ => Curve::P256,
    };
    let x = required(
        jwk,
        "x",
        "[x] field is missing for an EC key",
        "[x] field is not string for an EC key",
    )?;
    let y = required(
        jwk,
        "y",
        "[y] field is missing for an EC key",
        "[y] field is not string for an EC key",
    )?;
    const BASE64: &str = "Jwks EC [x] or [y] field is an invalid Base64.";
    const PARSE: &str = "Jwks EC [x] and [y] fields have a parse error.";
    let x = B64URL.decode(x).map_err(|_| BASE64.to_owned())?;
    let y = B64URL.decode(y).map_err(|_| BASE64.to_owned())?;
    // The uncompressed point 0x04 || x || y, each coordinate left-padded to the field
    // size (some issuers drop leading zeros, which BN_bin2bn tolerates).
    let len = curve.field_len();
    let (x, y) = (strip_leading_zeros(&x), strip_leading_zeros(&y));
    if x.len() > len || y.len() > len {
        return Err(PARSE.into());
    }
    let mut point = vec![0u8; 1 + 2 * len];
    point[0] = 4;
    point[1 + len - x.len()..1 + len].copy_from_slice(x);
    point[1 + 2 * len - y.len()..].copy_from_slice(y);
    let key =
        ParsedPublicKey::new(curve.verification(), &point).map_err(|e| format!("{PARSE} ({e})"))?;
    Ok((alg, Material::Ec { curve, key }))
}

fn oct_jwk(
    jwk: &Map<String, Value>,
    alg_name: Option<&str>,
) -> Result<(Option<Alg>, Material), String> {
    let alg = match alg_name {
        None => None,
        Some(name) => match Alg::from_name(name).filter(|a| HMAC_ALGS.contains(a)) {
            Some(alg) => Some(alg),
            None => return Err("[alg] does not start with [HS] for an HMAC key".into()),
        },
    };
    let k = required(
        jwk,
        "k",
        "[k] field is missing for an HMAC key",
        "[k] field is not string for an HMAC key",
    )?;
    let secret = match B64URL.decode(k) {
        Ok(secret) if !secret.is_empty() => secret,
        _ => return Err("Jwks Oct key is an invalid Base64".into()),
    };
    let mut by_alg: Box<[Option<hmac::Key>; 3]> = Box::default();
    for (slot, candidate) in by_alg.iter_mut().zip(HMAC_ALGS) {
        if alg.is_some_and(|a| a != candidate) {
            continue;
        }
        let algorithm = match candidate {
            Alg::HS256 => hmac::HMAC_SHA256,
            Alg::HS384 => hmac::HMAC_SHA384,
            _ => hmac::HMAC_SHA512,
        };
        *slot = Some(hmac::Key::new(algorithm, &secret));
    }
    Ok((alg, Material::Hmac(by_alg)))
}

fn okp_jwk(
    jwk: &Map<String, Value>,
    alg_name: Option<&str>,
) -> Result<(Option<Alg>, Material), String> {
    let alg = match alg_name {
        None => None,
        Some("EdDSA") => Some(Alg::EdDSA),
        Some(_) => return Err("[alg] is not [EdDSA] for an OKP key".into()),
    };
    let crv = required(
        jwk,
        "crv",
        "[crv] field is missing for an OKP key",
        "[crv] field is not string for an OKP key",
    )?;
    if crv != "Ed25519" {
        return Err("[crv] field is not supported for an OKP key".into());
    }
    let x = required(
        jwk,
        "x",
        "[x] field is missing for an OKP key",
        "[x] field is not string for an OKP key",
    )?;
    let x = B64URL
        .decode(x)
        .map_err(|_| "Jwks OKP [x] field is an invalid Base64.".to_owned())?;
    if x.len() != 32 {
        return Err("Jwks OKP [x] field is wrong length.".into());
    }
    let key = ParsedPublicKey::new(&signature::ED25519, &x)
        .map_err(|e| format!("Jwks OKP [x] field is an invalid key ({e})"))?;
    Ok((alg, Material::Ed25519(key)))
}

/// A key from a DER SubjectPublicKeyInfo (PEM public keys and certificates).
fn spki_material(spki: &SubjectPublicKeyInfo<'_>) -> Result<Material, String> {
    let oid = &spki.algorithm.algorithm;
    if *oid == OID_PKCS1_RSAENCRYPTION {
        return match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => rsa_material(rsa.modulus, rsa.exponent, None),
            _ => Err("PEM pubkey parse fails (a malformed RSA key)".into()),
        };
    }
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve_oid = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        let curve =
            match curve_oid {
                Some(c) if c == OID_EC_P256 => Curve::P256,
                Some(c) if c == OID_NIST_EC_P384 => Curve::P384,
                Some(c) if c == OID_NIST_EC_P521 => Curve::P521,
                _ => return Err(
                    "PEM Key type is not supported (an EC curve other than P-256, P-384 or P-521)"
                        .into(),
                ),
            };
        let key = ParsedPublicKey::new(curve.verification(), &spki.subject_public_key.data)
            .map_err(|e| format!("PEM pubkey parse fails ({e})"))?;
        return Ok(Material::Ec { curve, key });
    }
    if *oid == OID_SIG_ED25519 {
        let key = ParsedPublicKey::new(&signature::ED25519, &spki.subject_public_key.data)
            .map_err(|e| format!("PEM failed to get raw ED25519 key ({e})"))?;
        return Ok(Material::Ed25519(key));
    }
    Err(format!("PEM Key type is not supported (algorithm {oid})"))
}

/// One or more `-----BEGIN PUBLIC KEY-----` blocks (jwt_verify_lib's `Jwks::PEM`); keys
/// have no `kid` or `alg`, so they serve every token whose algorithm fits their type.
fn parse_pem(text: &str) -> Result<Jwks, String> {
    let mut jwks = Jwks {
        keys: Vec::new(),
        skipped: Vec::new(),
    };
    for (i, block) in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()).enumerate() {
        let block = block.map_err(|e| format!("PEM pubkey parse fails (block {}: {e})", i + 1))?;
        if block.label.contains("PRIVATE KEY") {
            return Err(format!(
                "PEM block {} is a private key ({}); only public keys (-----BEGIN PUBLIC KEY-----) belong in a key set",
                i + 1,
                block.label
            ));
        }
        if block.label != "PUBLIC KEY" {
            return Err(format!(
                "PEM block {} is a {}, not a PUBLIC KEY",
                i + 1,
                block.label
            ));
        }
        let spki = match SubjectPublicKeyInfo::from_der(&block.contents) {
            Ok((_, spki)) => spki,
            Err(e) => return Err(format!("PEM pubkey parse fails (block {}: {e})", i + 1)),
        };
        match spki_material(&spki) {
            Ok(material) => jwks.keys.push(Key {
                kid: None,
                alg: None,
                material,
            }),
            Err(why) => jwks.skipped.push(format!("block {}: {why}", i + 1)),
        }
    }
    if jwks.keys.is_empty() && jwks.skipped.is_empty() {
        return Err("PEM pubkey parse fails (no PEM block)".into());
    }
    jwks.check_not_empty()
}

/// jwt_verify_lib's `shouldCheckX509`: a non-empty object whose every value is a PEM
/// certificate.
fn is_x509_map(document: &Map<String, Value>) -> bool {
    !document.is_empty()
        && document.iter().all(|(kid, value)| {
            !kid.is_empty()
                && value.as_str().is_some_and(|pem| {
                    pem.starts_with("-----BEGIN CERTIFICATE-----\n")
                        && pem.ends_with("\n-----END CERTIFICATE-----\n")
                })
        })
}

fn certificate_key(pem: &str) -> Result<Material, String> {
    let block = x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| "X509 parse pubkey fails".to_owned())?;
    let (_, cert) = X509Certificate::from_der(&block.contents)
        .map_err(|e| format!("X509 parse pubkey fails ({e})"))?;
    spki_material(cert.public_key())
}
