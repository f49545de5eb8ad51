//! Tokens signed by an independent library (`jsonwebtoken`, on aws-lc-rs) with keys made
//! in the test, verified by ringway's engine; ES512, which `jsonwebtoken` lacks, is
//! signed with aws-lc-rs directly.

use std::rc::Rc;
use std::sync::OnceLock;
use std::time::Duration;

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
        ECDSA_P384_SHA384_FIXED_SIGNING, ECDSA_P521_SHA512_FIXED_SIGNING,
    },
};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

const NOW: u64 = 1_700_000_000;
const ISSUER: &str = "https://issuer.example";

const ALL: [Alg; 13] = [
    Alg::HS256,
    Alg::HS384,
    Alg::HS512,
    Alg::RS256,
    Alg::RS384,
    Alg::RS512,
    Alg::PS256,
    Alg::PS384,
    Alg::PS512,
    Alg::ES256,
    Alg::ES384,
    Alg::ES512,
    Alg::EdDSA,
];

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Private keys (PKCS#8 PEM for `jsonwebtoken`), public keys (SPKI PEM) and the public
/// components the JWKS is written from; made once, shared by every test.
struct TestKeys {
    rsa_private: String,
    rsa_public: String,
    rsa_spki_der: Vec<u8>,
    rsa_n: Vec<u8>,
    rsa_e: Vec<u8>,
    ec256_private: String,
    ec256_public: String,
    ec256_point: Vec<u8>,
    ec384_private: String,
    ec384_public: String,
    ec384_point: Vec<u8>,
    ec521_pkcs8: Vec<u8>,
    ec521_point: Vec<u8>,
    ed_private: String,
    ed_public: String,
    ed_x: Vec<u8>,
    hmac: Vec<u8>,
}

fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let rsa_pkcs8: aws_lc_rs::encoding::Pkcs8V1Der = rsa.as_der().unwrap();
        let rsa_spki = rsa.public_key().as_der().unwrap();
        let ec = |alg| EcdsaKeyPair::generate(alg).unwrap();
        let (ec256, ec384, ec521) = (
            ec(&ECDSA_P256_SHA256_FIXED_SIGNING),
            ec(&ECDSA_P384_SHA384_FIXED_SIGNING),
            ec(&ECDSA_P521_SHA512_FIXED_SIGNING),
        );
        let ed = Ed25519KeyPair::generate().unwrap();
        TestKeys {
            rsa_private: pem("PRIVATE KEY", rsa_pkcs8.as_ref()),
            rsa_public: pem("PUBLIC KEY", rsa_spki.as_ref()),
            rsa_spki_der: rsa_spki.as_ref().to_vec(),
            rsa_n: rsa
                .public_key()
                .modulus()
                .big_endian_without_leading_zero()
                .to_vec(),
            rsa_e: rsa
                .public_key()
                .exponent()
                .big_endian_without_leading_zero()
                .to_vec(),
            ec256_private: pem("PRIVATE KEY", ec256.to_pkcs8v1().unwrap().as_ref()),
            ec256_public: pem("PUBLIC KEY", ec256.public_key().as_der().unwrap().as_ref()),
            ec256_point: ec256.public_key().as_ref().to_vec(),
            ec384_private: pem("PRIVATE KEY", ec384.to_pkcs8v1().unwrap().as_ref()),
            ec384_public: pem("PUBLIC KEY", ec384.public_key().as_der().unwrap().as_ref()),
            ec384_point: ec384.public_key().as_ref().to_vec(),
            ec521_pkcs8: ec521.to_pkcs8v1().unwrap().as_ref().to_vec(),
            ec521_point: ec521.public_key().as_ref().to_vec(),
            ed_private: pem("PRIVATE KEY", ed.to_pkcs8v1().unwrap().as_ref()),
            ed_public: pem("PUBLIC KEY", ed.public_key().as_der().unwrap().as_ref()),
            ed_x: ed.public_key().as_ref().to_vec(),
            hmac: b"a 32-byte secret for HS tokens!!".to_vec(),
        }
    })
}

fn kid_for(alg: Alg) -> &'static str {
    match alg {
        Alg::HS256 | Alg::HS384 | Alg::HS512 => "hmac",
        Alg::ES256 => "ec256",
        Alg::ES384 => "ec384",
        Alg::ES512 => "ec521",
        Alg::EdDSA => "ed",
        _ => "rsa",
    }
}

/// The public JWK for a key family (by `kid`), with `alg` when given.
fn jwk(kid: &str, alg: Option<&str>) -> Value {
    let k = keys();
    let ec = |crv: &str, point: &[u8]| {
        let len = (point.len() - 1) / 2;
        json!({"kty": "EC", "crv": crv, "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])})
    };
    let mut jwk = match kid {
        "rsa" => json!({"kty": "RSA", "n": b64(&k.rsa_n), "e": b64(&k.rsa_e)}),
        "ec256" => ec("P-256", &k.ec256_point),
        "ec384" => ec("P-384", &k.ec384_point),
        "ec521" => ec("P-521", &k.ec521_point),
        "ed" => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&k.ed_x)}),
        "hmac" => json!({"kty": "oct", "k": b64(&k.hmac)}),
        other => panic!("no key {other}"),
    };
    jwk["kid"] = json!(kid);
    if let Some(alg) = alg {
        jwk["alg"] = json!(alg);
    }
    jwk
}

fn jwks_of(jwks: &[Value]) -> Jwks {
    Jwks::parse(&json!({ "keys": jwks }).to_string()).unwrap()
}

/// Every key family, without `alg`.
fn full_jwks() -> Jwks {
    jwks_of(&["rsa", "ec256", "ec384", "ec521", "ed", "hmac"].map(|kid| jwk(kid, None)))
}

fn claims() -> Value {
    json!({"iss": ISSUER, "sub": "user-1", "aud": "api", "iat": NOW - 10, "exp": NOW + 300})
}

fn checks() -> Checks {
    Checks {
        issuer: Some(ISSUER.into()),
        audiences: vec!["api".into()],
        ..Checks::default()
    }
}

fn jsonwebtoken_alg(alg: Alg) -> Algorithm {
    match alg {
        Alg::HS256 => Algorithm::HS256,
        Alg::HS384 => Algorithm::HS384,
        Alg::HS512 => Algorithm::HS512,
        Alg::RS256 => Algorithm::RS256,
        Alg::RS384 => Algorithm::RS384,
        Alg::RS512 => Algorithm::RS512,
        Alg::PS256 => Algorithm::PS256,
        Alg::PS384 => Algorithm::PS384,
        Alg::PS512 => Algorithm::PS512,
        Alg::ES256 => Algorithm::ES256,
        Alg::ES384 => Algorithm::ES384,
        Alg::EdDSA => Algorithm::EdDSA,
        Alg::ES512 => unreachable!("signed with aws-lc-rs"),
    }
}

/// A token for `claims`, signed with the test key of `alg`'s family.
fn sign(alg: Alg, kid: Option<&str>, claims: &Value) -> String {
    let k = keys();
    if alg == Alg::ES512 {
        let mut header = json!({"alg": "ES512", "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P521_SHA512_FIXED_SIGNING, &k.ec521_pkcs8).unwrap();
        let signature = key.sign(&SystemRandom::new(), signed.as_bytes()).unwrap();
        return format!("{signed}.{}", b64(signature.as_ref()));
    }
    let key = match alg {
        Alg::HS256 | Alg::HS384 | Alg::HS512 => EncodingKey::from_secret(&k.hmac),
        Alg::ES256 => EncodingKey::from_ec_pem(k.ec256_private.as_bytes()).unwrap(),
        Alg::ES384 => EncodingKey::from_ec_pem(k.ec384_private.as_bytes()).unwrap(),
        Alg::EdDSA => EncodingKey::from_ed_pem(k.ed_private.as_bytes()).unwrap(),
        _ => EncodingKey::from_rsa_pem(k.rsa_private.as_bytes()).unwrap(),
    };
    let mut header = Header::new(jsonwebtoken_alg(alg));
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// A token from raw section texts (JSON strings, base64url-encoded here).
fn raw_token(header: &str, payload: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(payload.as_bytes()),
        b64(signature)
    )
}

fn check(token: &str) -> Result<Verified, JwtError> {
    verify(token.as_bytes(), &full_jwks(), &checks(), NOW)
}

#[test]
fn every_algorithm_verifies_with_and_without_kid() {
    let jwks = full_jwks();
    for alg in ALL {
        for kid in [Some(kid_for(alg)), None] {
            let token = sign(alg, kid, &claims());
            let verified = verify(token.as_bytes(), &jwks, &checks(), NOW)
                .unwrap_or_else(|e| panic!("{alg} kid {kid:?}: {e}"));
            assert_eq!(verified.alg, alg);
            assert_eq!(verified.subject(), Some("user-1"));
            assert_eq!(verified.issuer(), Some(ISSUER));
            assert_eq!(verified.exp, Some(NOW + 300));
            assert_eq!(verified.payload_b64, token.split('.').nth(1).unwrap());
        }
    }
}

#[test]
fn keys_with_alg_serve_that_algorithm_only() {
    for alg in ALL {
        let jwks = jwks_of(&[jwk(kid_for(alg), Some(alg.name()))]);
        let token = sign(alg, Some(kid_for(alg)), &claims());
        assert!(
            verify(token.as_bytes(), &jwks, &checks(), NOW).is_ok(),
            "{alg}"
        );
    }
    // An RS384 key does not verify an RS256 token: no key fits the token's alg.
    let jwks = jwks_of(&[jwk("rsa", Some("RS384"))]);
    let token = sign(Alg::RS256, Some("rsa"), &claims());
    assert_eq!(
        verify(token.as_bytes(), &jwks, &checks(), NOW).unwrap_err(),
        JwtError::KidAlgMismatch
    );
    // A PS256 token does not verify against a key declared RS256, though both are RSA.
    let jwks = jwks_of(&[jwk("rsa", Some("RS256"))]);
    let token = sign(Alg::PS256, None, &claims());
    assert_eq!(
        verify(token.as_bytes(), &jwks, &checks(), NOW).unwrap_err(),
        JwtError::KidAlgMismatch
    );
}

#[test]
fn expired_and_not_yet_valid_with_clock_skew() {
    let with = |exp: Option<u64>, nbf: Option<u64>| {
        let mut c = claims();
        match exp {
            Some(exp) => c["exp"] = json!(exp),
            None => {
                c.as_object_mut().unwrap().remove("exp");
            }
        }
        if let Some(nbf) = nbf {
            c["nbf"] = json!(nbf);
        }
        sign(Alg::ES256, None, &c)
    };
    // The default skew is 60 s: expired 60 s ago still passes, 61 s ago does not.
    assert!(check(&with(Some(NOW - 60), None)).is_ok());
    assert_eq!(
        check(&with(Some(NOW - 61), None)).unwrap_err(),
        JwtError::Expired
    );
    assert!(check(&with(Some(NOW + 300), Some(NOW + 60))).is_ok());
    assert_eq!(
        check(&with(Some(NOW + 300), Some(NOW + 61))).unwrap_err(),
        JwtError::NotYetValid
    );
    // No skew.
    let strict = Checks {
        clock_skew: 0,
        ..checks()
    };
    let run = |t: &str| verify(t.as_bytes(), &full_jwks(), &strict, NOW);
    assert!(run(&with(Some(NOW), None)).is_ok());
    assert_eq!(
        run(&with(Some(NOW - 1), None)).unwrap_err(),
        JwtError::Expired
    );
    assert_eq!(
        run(&with(None, Some(NOW + 1))).unwrap_err(),
        JwtError::NotYetValid
    );
    // Without `exp` a token never expires unless the provider requires one.
    assert!(run(&with(None, None)).is_ok());
    // `exp: 0` expired in 1970 (jwt_verify_lib would read it as absent).
    assert_eq!(run(&with(Some(0), None)).unwrap_err(), JwtError::Expired);
    // Claims are checked before the signature, as Envoy does.
    let mut expired = with(Some(NOW - 1000), None);
    expired.push('A');
    assert_eq!(check(&expired).unwrap_err(), JwtError::Expired);
}

#[test]
fn issuer_must_match() {
    let mut c = claims();
    c["iss"] = json!("https://other.example");
    let token = sign(Alg::RS256, None, &c);
    assert_eq!(check(&token).unwrap_err(), JwtError::UnknownIssuer);
    assert_eq!(
        JwtError::UnknownIssuer.message(),
        "Jwt issuer is not configured"
    );
    c.as_object_mut().unwrap().remove("iss");
    let token = sign(Alg::RS256, None, &c);
    assert_eq!(check(&token).unwrap_err(), JwtError::UnknownIssuer);
    // No issuer configured: any.
    let any = Checks {
        issuer: None,
        ..checks()
    };
    assert!(verify(token.as_bytes(), &full_jwks(), &any, NOW).is_ok());
}

#[test]
fn wrong_audience_is_403() {
    let token = sign(Alg::HS256, None, &claims());
    let other = Checks {
        audiences: vec!["other".into()],
        ..checks()
    };
    let err = verify(token.as_bytes(), &full_jwks(), &other, NOW).unwrap_err();
    assert_eq!(err, JwtError::AudienceNotAllowed);
    assert_eq!(err.status(), 403);
    assert_eq!(err.message(), "Audiences in Jwt are not allowed");

    // Any of a list, against any of the token's; scheme and trailing slash ignored.
    let mut c = claims();
    c["aud"] = json!(["x", "https://api.example.com/"]);
    let token = sign(Alg::HS256, None, &c);
    let list = Checks {
        audiences: vec!["y".into(), "http://api.example.com".into()],
        ..checks()
    };
    assert!(verify(token.as_bytes(), &full_jwks(), &list, NOW).is_ok());

    // No `aud` at all while audiences are configured.
    c.as_object_mut().unwrap().remove("aud");
    let token = sign(Alg::HS256, None, &c);
    assert_eq!(check(&token).unwrap_err(), JwtError::AudienceNotAllowed);
    // No audiences configured: any.
    let any = Checks {
        audiences: vec![],
        ..checks()
    };
    assert!(verify(token.as_bytes(), &full_jwks(), &any, NOW).is_ok());
}

#[test]
fn bad_signature_and_tampered_payload_fail() {
    for alg in ALL {
        let token = sign(alg, None, &claims());
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[0] ^= 1;
        let bad = format!("{signed}.{}", b64(&bytes));
        assert_eq!(
            check(&bad).unwrap_err(),
            JwtError::VerificationFail,
            "{alg}"
        );

        let mut c = claims();
        c["sub"] = json!("admin");
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(c.to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(
            check(&tampered).unwrap_err(),
            JwtError::VerificationFail,
            "{alg}"
        );
    }
    assert_eq!(
        JwtError::VerificationFail.message(),
        "Jwt verification fails"
    );
}

#[test]
fn alg_none_is_refused() {
    let payload = claims().to_string();
    for alg in ["none", "None", "NONE", ""] {
        let header = json!({"alg": alg}).to_string();
        // The classic unsigned token has an empty signature section.
        let unsigned = format!("{}.{}.", b64(header.as_bytes()), b64(payload.as_bytes()));
        assert_eq!(check(&unsigned).unwrap_err(), JwtError::BadFormat);
        let signed = raw_token(&header, &payload, b"whatever");
        assert_eq!(
            check(&signed).unwrap_err(),
            JwtError::HeaderNotImplementedAlg
        );
    }
    assert_eq!(
        JwtError::HeaderNotImplementedAlg.message(),
        "Jwt header [alg] is not supported"
    );
}

#[test]
fn algorithm_confusion_fails() {
    // HS256 tokens whose HMAC secret is the RSA public key, in every form an attacker
    // could take from the JWKS or the PEM, against sets holding only that RSA key.
    let k = keys();
    let secrets: [&[u8]; 4] = [
        k.rsa_public.as_bytes(),
        &k.rsa_spki_der,
        &k.rsa_n,
        &serde_json::to_vec(&jwk("rsa", None)).unwrap(),
    ];
    let sets = [
        jwks_of(&[jwk("rsa", None)]),
        Jwks::parse(&k.rsa_public).unwrap(),
    ];
    for secret in secrets {
        for kid in [None, Some("rsa")] {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = kid.map(str::to_owned);
            let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret))
                .unwrap();
            for jwks in &sets {
                assert_eq!(
                    verify(token.as_bytes(), jwks, &checks(), NOW).unwrap_err(),
                    JwtError::VerificationFail
                );
            }
        }
    }
    // And the reverse: an RS256 token never verifies against an `oct` key.
    let token = sign(Alg::RS256, None, &claims());
    let hmac_only = jwks_of(&[jwk("hmac", None)]);
    assert_eq!(
        verify(token.as_bytes(), &hmac_only, &checks(), NOW).unwrap_err(),
        JwtError::VerificationFail
    );
}

#[test]
fn unknown_kid() {
    let token = sign(Alg::RS256, Some("rotated-away"), &claims());
    let err = check(&token).unwrap_err();
    assert_eq!(err, JwtError::KidAlgMismatch);
    assert!(err.is_unknown_kid());
    assert_eq!(err.status(), 401);
    assert_eq!(
        err.message(),
        "Jwks doesn't have key to match kid or alg from Jwt"
    );
    assert!(full_jwks().has_kid("rsa"));
    assert!(!full_jwks().has_kid("rotated-away"));
    // A key without `kid` serves tokens with any kid (jwt_verify_lib's rule).
    let k = keys();
    let anonymous = jwks_of(&[json!({"kty": "RSA", "n": b64(&k.rsa_n), "e": b64(&k.rsa_e)})]);
    assert!(verify(token.as_bytes(), &anonymous, &checks(), NOW).is_ok());
    // A known kid whose key does not verify is a verification failure, not unknown.
    let mut other_n = k.rsa_n.clone();
    other_n[100] ^= 0xFF;
    let wrong_key =
        jwks_of(&[json!({"kty": "RSA", "kid": "rotated-away", "n": b64(&other_n), "e": "AQAB"})]);
    let err = verify(token.as_bytes(), &wrong_key, &checks(), NOW).unwrap_err();
    assert_eq!(err, JwtError::VerificationFail);
    assert!(!err.is_unknown_kid());
}

#[test]
fn malformed_tokens_get_envoys_answers() {
    let good_header = json!({"alg": "HS256"}).to_string();
    let good_payload = claims().to_string();
    let h = b64(good_header.as_bytes());
    let p = b64(good_payload.as_bytes());
    let cases: Vec<(String, JwtError)> = vec![
        (String::new(), JwtError::BadFormat),
        ("abc".into(), JwtError::BadFormat),
        (format!("{h}.{p}"), JwtError::BadFormat),
        (format!("{h}.{p}.c2ln.c2ln"), JwtError::BadFormat),
        (format!("{h}..c2ln"), JwtError::BadFormat),
        (format!(".{p}.c2ln"), JwtError::BadFormat),
        (format!("!!!.{p}.c2ln"), JwtError::HeaderBadBase64),
        (
            format!("{}.{p}.c2ln", b64(b"not json")),
            JwtError::HeaderBadJson,
        ),
        (format!("{}.{p}.c2ln", b64(b"[1]")), JwtError::HeaderBadJson),
        (
            format!("{}.{p}.c2ln", b64(br#"{"typ":"JWT"}"#)),
            JwtError::HeaderBadAlg,
        ),
        (
            format!("{}.{p}.c2ln", b64(br#"{"alg":256}"#)),
            JwtError::HeaderBadAlg,
        ),
        (
            format!("{}.{p}.c2ln", b64(br#"{"alg":"HS256","kid":7}"#)),
            JwtError::HeaderBadKid,
        ),
        (format!("{h}.%%%.c2ln"), JwtError::PayloadBadBase64),
        (
            format!("{h}.{}.c2ln", b64(b"{oops")),
            JwtError::PayloadBadJson,
        ),
        (
            format!("{h}.{}.c2ln", b64(b"\"str\"")),
            JwtError::PayloadBadJson,
        ),
        (format!("{h}.{p}.***"), JwtError::SignatureBadBase64),
    ];
    for (token, want) in cases {
        assert_eq!(check(&token).unwrap_err(), want, "{token}");
    }
    let claim_cases = [
        (json!({"iss": 1}), JwtError::IssNotString),
        (json!({"sub": true}), JwtError::SubNotString),
        (json!({"iat": "1"}), JwtError::IatNotInteger),
        (json!({"iat": -1}), JwtError::IatOutOfRange),
        (json!({"nbf": null}), JwtError::NbfNotInteger),
        (json!({"nbf": -5}), JwtError::NbfOutOfRange),
        (json!({"exp": "soon"}), JwtError::ExpNotInteger),
        (json!({"exp": 1e30}), JwtError::ExpOutOfRange),
        (json!({"jti": 1}), JwtError::JtiNotString),
        (json!({"aud": 1}), JwtError::AudNotString),
        (json!({"aud": ["a", 1]}), JwtError::AudNotString),
    ];
    for (payload, want) in claim_cases {
        let token = raw_token(&good_header, &payload.to_string(), b"sig");
        assert_eq!(check(&token).unwrap_err(), want, "{payload}");
    }
    // Envoy's exact texts for a few.
    assert_eq!(
        JwtError::BadFormat.message(),
        "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
    );
    assert_eq!(
        JwtError::ExpOutOfRange.message(),
        "Jwt payload [exp] field is not a positive 64 bit integer"
    );
    // Fractional times are truncated, as doubles are in jwt_verify_lib.
    let mut c = claims();
    c["exp"] = json!((NOW + 300) as f64 + 0.5);
    let verified = check(&sign(Alg::HS256, None, &c)).unwrap();
    assert_eq!(verified.exp, Some(NOW + 300));
    // Padded sections decode as absl does.
    let token = sign(Alg::HS256, None, &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let padded = |s: &str| format!("{s}{}", "=".repeat((4 - s.len() % 4) % 4));
    let padded_payload = format!("{}.{}", parts[0], padded(parts[1]));
    let k = keys();
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &k.hmac),
        padded_payload.as_bytes(),
    );
    let token = format!("{padded_payload}.{}", padded(&b64(tag.as_ref())));
    assert!(check(&token).is_ok());
}

#[test]
fn ed25519_signature_of_the_wrong_length() {
    let token = sign(Alg::EdDSA, None, &claims());
    let (signed, _) = token.rsplit_once('.').unwrap();
    let short = format!("{signed}.{}", b64(&[7u8; 63]));
    assert_eq!(
        check(&short).unwrap_err(),
        JwtError::Ed25519SignatureWrongLength
    );
    assert_eq!(
        JwtError::Ed25519SignatureWrongLength.message(),
        "Jwt ED25519 signature is wrong length"
    );
}

#[test]
fn pem_public_keys() {
    let k = keys();
    let cases = [
        (&k.rsa_public, [Alg::RS256, Alg::PS512].as_slice()),
        (&k.ec256_public, &[Alg::ES256]),
        (&k.ec384_public, &[Alg::ES384]),
        (&k.ed_public, &[Alg::EdDSA]),
    ];
    for (pem_text, algs) in cases {
        let jwks = Jwks::parse(pem_text).unwrap();
        assert_eq!(jwks.len(), 1);
        for alg in algs {
            let token = sign(*alg, Some("any-kid"), &claims());
            assert!(
                verify(token.as_bytes(), &jwks, &checks(), NOW).is_ok(),
                "{alg}"
            );
        }
        // Another family's token: the key fits no other type.
        let token = sign(Alg::HS256, None, &claims());
        assert_eq!(
            verify(token.as_bytes(), &jwks, &checks(), NOW).unwrap_err(),
            JwtError::VerificationFail
        );
    }
    // Several blocks, leading whitespace.
    let both = format!("\n  {}{}", k.ec256_public, k.rsa_public);
    assert_eq!(Jwks::parse(&both).unwrap().len(), 2);
    // Private keys are refused, whatever their label.
    for private in [&k.rsa_private, &k.ec256_private, &k.ed_private] {
        let err = Jwks::parse(private).unwrap_err();
        assert!(err.contains("private key"), "{err}");
    }
    let rsa_private = k.rsa_private.replace("PRIVATE KEY", "RSA PRIVATE KEY");
    assert!(Jwks::parse(&rsa_private)
        .unwrap_err()
        .contains("private key"));
    assert!(Jwks::parse("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
    assert!(Jwks::parse("-----BEGIN PUBLIC KEY-----\nnot base64").is_err());
}

#[test]
fn unsupported_keys_are_skipped() {
    let k = keys();
    let mut small_n = vec![0xC5u8; 128];
    small_n[127] |= 1;
    let document = json!({"keys": [
        {"kty": "foo", "kid": "a"},
        {"kid": "no-kty"},
        {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
        {"kty": "RSA", "n": b64(&small_n), "e": "AQAB"},
        {"kty": "RSA", "n": b64(&k.rsa_n), "e": "AQAD"},
        {"kty": "RSA", "use": "enc", "n": b64(&k.rsa_n), "e": b64(&k.rsa_e)},
        {"kty": "RSA", "alg": "ES256", "n": b64(&k.rsa_n), "e": b64(&k.rsa_e)},
        {"kty": "EC", "alg": "ES384", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "EC", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32])},
        {"kty": "OKP", "crv": "X25519", "x": b64(&[0; 32])},
        {"kty": "OKP", "crv": "Ed25519", "x": b64(&[0; 31])},
        {"kty": "oct", "k": ""},
        {"kty": "oct", "alg": "RS256", "k": "c2VjcmV0"},
        "not an object",
        jwk("ec256", Some("ES256")),
    ]});
    let jwks = Jwks::parse(&document.to_string()).unwrap();
    assert_eq!(jwks.len(), 1);
    let skipped = jwks.skipped();
    assert_eq!(skipped.len(), 14, "{skipped:#?}");
    assert_eq!(skipped[0], "keys[0]: [kty] is not supported in [keys]");
    assert_eq!(skipped[1], "keys[1]: [kty] is missing in [keys]");
    assert!(skipped[3].contains("1024-bit modulus"), "{}", skipped[3]);
    assert!(skipped[4].contains("exponent"), "{}", skipped[4]);
    assert!(skipped[5].contains("[use]"), "{}", skipped[5]);
    assert_eq!(
        skipped[7],
        "keys[7]: [crv] field specified is not compatible with [alg] for an EC key"
    );
    assert!(skipped[8].starts_with("keys[8]: Jwks EC [x] and [y] fields have a parse error."));
    let token = sign(Alg::ES256, Some("ec256"), &claims());
    assert!(verify(token.as_bytes(), &jwks, &checks(), NOW).is_ok());
    let debug = format!("{jwks:?}");
    assert!(debug.contains("ec256") && debug.contains("P256"), "{debug}");

    // Nothing usable: an error naming every reason.
    let none = json!({"keys": [{"kty": "foo"}, {"kty": "oct"}]}).to_string();
    let err = Jwks::parse(&none).unwrap_err();
    assert_eq!(
        err,
        "Jwks doesn't have any valid public key (keys[0]: [kty] is not supported in [keys]; \
         keys[1]: [k] field is missing for an HMAC key)"
    );
    assert_eq!(
        Jwks::parse(r#"{"keys": []}"#).unwrap_err(),
        "Jwks doesn't have any valid public key"
    );
    assert_eq!(
        Jwks::parse(r#"{"keys": {}}"#).unwrap_err(),
        "[keys] in Jwks is not an array"
    );
    assert_eq!(
        Jwks::parse(r#"{"other": 1}"#).unwrap_err(),
        "Jwks does not have [keys] field"
    );
    assert!(Jwks::parse("[1]")
        .unwrap_err()
        .starts_with("Jwks is an invalid JSON"));
    assert!(Jwks::parse("")
        .unwrap_err()
        .starts_with("Jwks is an invalid JSON"));
}

#[test]
fn single_jwk_and_x509_map_documents() {
    let single = jwk("ed", None).to_string();
    let jwks = Jwks::parse(&single).unwrap();
    let token = sign(Alg::EdDSA, None, &claims());
    assert!(verify(token.as_bytes(), &jwks, &checks(), NOW).is_ok());

    // Google's `{kid: certificate}` map.
    let certified = rcgen::generate_simple_self_signed(vec!["issuer.example".into()]).unwrap();
    let map = json!({"cert-1": certified.cert.pem()}).to_string();
    let jwks = Jwks::parse(&map).unwrap();
    assert!(jwks.has_kid("cert-1"));
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("cert-1".into());
    let key = EncodingKey::from_ec_pem(certified.signing_key.serialize_pem().as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
    assert!(verify(token.as_bytes(), &jwks, &checks(), NOW).is_ok());
    header.kid = Some("cert-2".into());
    let token = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
    assert_eq!(
        verify(token.as_bytes(), &jwks, &checks(), NOW).unwrap_err(),
        JwtError::KidAlgMismatch
    );
}

#[test]
fn lifetime_rules() {
    let no_exp = {
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        sign(Alg::HS256, None, &c)
    };
    let exp_in = |secs: u64| {
        let mut c = claims();
        c["exp"] = json!(NOW + secs);
        sign(Alg::HS256, None, &c)
    };
    let required = Checks {
        require_expiration: true,
        ..checks()
    };
    let run = |t: &str, c: &Checks| verify(t.as_bytes(), &full_jwks(), c, NOW);
    let err = run(&no_exp, &required).unwrap_err();
    assert_eq!(err, JwtError::LifetimeNotAllowed);
    assert_eq!(err.message(), "Jwt is expired");
    assert!(run(&exp_in(10 * 365 * 86_400), &required).is_ok());

    let hour = Checks {
        max_lifetime: Some(Duration::from_secs(3600)),
        ..checks()
    };
    assert!(run(&exp_in(3599), &hour).is_ok());
    assert_eq!(
        run(&exp_in(3600), &hour).unwrap_err(),
        JwtError::LifetimeNotAllowed
    );
    assert_eq!(
        run(&no_exp, &hour).unwrap_err(),
        JwtError::LifetimeNotAllowed
    );
}

#[test]
fn required_claims() {
    let mut c = claims();
    c["realm"] = json!({"roles": ["admin"], "empty": null});
    let token = sign(Alg::HS256, None, &c);
    let with = |claims: &[&str]| Checks {
        required_claims: claims.iter().map(|c| c.to_string()).collect(),
        ..checks()
    };
    let run = |c: &Checks| verify(token.as_bytes(), &full_jwks(), c, NOW);
    assert!(run(&with(&["sub", "realm.roles"])).is_ok());
    for missing in ["email", "realm.groups", "sub.x", "realm.empty"] {
        let err = run(&with(&["sub", missing])).unwrap_err();
        assert_eq!(err, JwtError::MissingClaim, "{missing}");
        assert_eq!(err.message(), "Jwt is missing required claim");
    }
}

#[test]
fn claims_as_header_text() {
    let mut c = claims();
    c["n"] = json!(42);
    c["big"] = json!(12_345_678_901u64);
    c["neg"] = json!(-3);
    c["f"] = json!(1.5);
    c["whole"] = json!(7.0);
    c["yes"] = json!(true);
    c["no"] = json!(false);
    c["empty"] = json!("");
    c["obj"] = json!({"inner": {"deep": "v"}, "list": [1, 2]});
    c["null"] = Value::Null;
    let verified = check(&sign(Alg::HS256, None, &c)).unwrap();
    let text = |path: &str| {
        let mut out = b"prefix:".to_vec();
        verified
            .claim_text(path, &mut out)
            .then(|| String::from_utf8(out[7..].to_vec()).unwrap())
    };
    assert_eq!(text("sub").as_deref(), Some("user-1"));
    assert_eq!(text("n").as_deref(), Some("42"));
    assert_eq!(text("big").as_deref(), Some("12345678901"));
    assert_eq!(text("neg").as_deref(), Some("-3.000000"));
    assert_eq!(text("f").as_deref(), Some("1.500000"));
    assert_eq!(text("whole").as_deref(), Some("7"));
    assert_eq!(text("yes").as_deref(), Some("true"));
    assert_eq!(text("no").as_deref(), Some("false"));
    assert_eq!(text("obj.inner.deep").as_deref(), Some("v"));
    for nothing in ["empty", "obj", "obj.list", "null", "missing", "sub.x", ""] {
        assert_eq!(text(nothing), None, "{nothing}");
    }
    assert_eq!(verified.claim("obj.list"), Some(&json!([1, 2])));
}

#[test]
fn checks_from_provider_and_recheck() {
    use crate::config::auth::{JwksSource, JwtProvider, TokenSource};
    let provider = JwtProvider {
        name: "p".into(),
        issuer: Some(ISSUER.into()),
        audiences: vec!["api".into()],
        jwks: JwksSource::Inline(String::new()),
        from: vec![TokenSource::Query("access_token".into())],
        forward: false,
        forward_payload_header: None,
        pad_forward_payload_header: false,
        claim_to_headers: vec![],
        clock_skew: Duration::from_secs(30),
        require_expiration: true,
        max_lifetime: None,
        required_claims: vec!["sub".into()],
        cache_size: 100,
        payload_in_metadata: None,
    };
    let checks = crate::auth::runtime::checks(&provider, None);
    assert_eq!(checks.issuer.as_deref(), Some(ISSUER));
    assert_eq!(checks.clock_skew, 30);
    assert!(checks.require_expiration);
    assert_eq!(checks.required_claims, ["sub"]);
    let overridden = crate::auth::runtime::checks(&provider, Some(&["other".to_string()]));
    assert_eq!(overridden.audiences, ["other"]);

    let verified = verify(
        sign(Alg::ES384, None, &claims()).as_bytes(),
        &full_jwks(),
        &checks,
        NOW,
    )
    .unwrap();
    assert_eq!(checks.recheck(&verified, NOW + 330), Ok(()));
    assert!(verified.is_current(NOW + 330));
    assert_eq!(checks.recheck(&verified, NOW + 331), Err(JwtError::Expired));
    assert!(!verified.is_current(NOW + 331));
    assert_eq!(
        overridden.recheck(&verified, NOW),
        Err(JwtError::AudienceNotAllowed)
    );
}

#[test]
fn statuses() {
    let all = [
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
    for e in all {
        let want = if e == JwtError::AudienceNotAllowed {
            403
        } else {
            401
        };
        assert_eq!(e.status(), want, "{e:?}");
        assert_eq!(e.is_unknown_kid(), e == JwtError::KidAlgMismatch);
        assert_eq!(e.to_string(), e.message());
    }
    assert_eq!(JwtError::Missing.message(), "Jwt is missing");
    assert!(JwtError::Missing.is_missing());
    assert_eq!(JwtError::NotYetValid.message(), "Jwt not yet valid");
    assert_eq!(
        JwtError::JwksNoValidKeys.message(),
        "Jwks doesn't have any valid public key"
    );
}

#[test]
fn shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Jwks>();
    send_sync::<Checks>();
    send_sync::<Verified>();
    send_sync::<JwtError>();
}

fn verified_with(exp: Option<u64>) -> Rc<Verified> {
    let mut c = claims();
    match exp {
        Some(exp) => c["exp"] = json!(exp),
        None => {
            c.as_object_mut().unwrap().remove("exp");
        }
    }
    Rc::new(check(&sign(Alg::HS256, None, &c)).unwrap())
}

#[test]
fn cache_hits_misses_and_expiry() {
    let mut cache = TokenCache::new(100);
    assert_eq!(cache.capacity(), 100);
    let token = b"header.payload.signature".as_slice();
    assert!(cache.get(token, NOW).is_none());
    let verified = verified_with(Some(NOW + 100));
    cache.insert(token, Rc::clone(&verified));
    let hit = cache.get(token, NOW).unwrap();
    assert!(Rc::ptr_eq(&hit, &verified));
    assert!(cache.get(b"header.payload.signaturf", NOW).is_none());
    assert!(cache.get(b"header.payload.signatur", NOW).is_none());
    // Good until exp plus the skew it was verified with (60 s).
    assert!(cache.get(token, NOW + 160).is_some());
    assert!(cache.get(token, NOW + 161).is_none());
    assert!(cache.is_empty(), "an expired entry is dropped");

    // Without exp: stays until cleared.
    cache.insert(token, verified_with(None));
    assert!(cache.get(token, u64::MAX).is_some());
    // Insert again replaces rather than duplicates.
    cache.insert(token, verified_with(Some(NOW + 5)));
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get(token, NOW).unwrap().exp, Some(NOW + 5));
    cache.clear();
    assert!(cache.get(token, NOW).is_none());
    assert!(cache.is_empty());
    assert!(format!("{cache:?}").contains("capacity: 100"));
}

#[test]
fn cache_is_bounded_and_evicts_by_clock() {
    let verified = verified_with(None);
    let mut cache = TokenCache::new(10);
    assert_eq!(cache.capacity(), 12);
    for i in 0..1000u32 {
        cache.insert(format!("token-{i}").as_bytes(), Rc::clone(&verified));
        assert!(cache.len() <= 12);
    }
    // One group of four: the entry hit since the hand passed survives.
    let mut cache = TokenCache::new(4);
    for t in [b"t1", b"t2", b"t3", b"t4"] {
        cache.insert(t, Rc::clone(&verified));
    }
    assert!(cache.get(b"t1", NOW).is_some());
    cache.insert(b"t5", Rc::clone(&verified));
    assert!(cache.get(b"t1", NOW).is_some());
    assert!(cache.get(b"t2", NOW).is_none());
    for t in [b"t3", b"t4", b"t5"] {
        assert!(cache.get(t, NOW).is_some());
    }
    // Capacity 0 keeps nothing.
    let mut none = TokenCache::new(0);
    none.insert(b"t1", Rc::clone(&verified));
    assert!(none.get(b"t1", NOW).is_none());
    assert_eq!(none.capacity(), 0);
}

#[test]
fn cache_hash_spreads() {
    let h = cache::test_hash;
    assert_ne!(h(1, b"abc"), h(2, b"abc"));
    assert_ne!(h(1, b"abc"), h(1, b"abd"));
    assert_ne!(h(1, b""), h(1, b"\0"));
    let long = vec![b'x'; 1000];
    let mut other = long.clone();
    other[999] = b'y';
    assert_ne!(h(1, &long), h(1, &other));
    // Only the length and the tail are hashed (a signature's end): tokens that differ
    // only near the start share a hash, and the whole-token comparison tells them apart.
    other[999] = b'x';
    other[3] = b'y';
    assert_eq!(h(1, &long), h(1, &other));
    assert_ne!(h(1, &long), h(1, &long[..999]));
    let mut cache = TokenCache::new(8);
    cache.insert(&long, verified_with(Some(NOW + 100)));
    assert!(cache.get(&long, NOW).is_some());
    assert!(cache.get(&other, NOW).is_none(), "same hash, another token");
}

#[test]
fn extract_from_headers() {
    use extract::from_header_value as header;
    assert_eq!(
        header(b"Bearer abc.def.ghi", "Bearer "),
        Some(&b"abc.def.ghi"[..])
    );
    assert_eq!(
        header(b"bearer abc.def.ghi", "Bearer "),
        Some(&b"abc.def.ghi"[..])
    );
    assert_eq!(
        header(b"  BEARER   abc.d.g  ", "Bearer "),
        Some(&b"abc.d.g"[..])
    );
    assert_eq!(header(b"Basic xyz", "Bearer "), None);
    assert_eq!(header(b"Bearer", "Bearer "), None);
    assert_eq!(
        header(b"Bearer ", "Bearer "),
        None,
        "the value is trimmed first"
    );
    assert_eq!(header(b"Bearer   ", "Bearer "), None);
    // Envoy finds the prefix anywhere in the value.
    assert_eq!(
        header(b"Foo x, Bearer a.b.c", "Bearer "),
        Some(&b"a.b.c"[..])
    );
    assert_eq!(header(b" a.b.c ", ""), Some(&b"a.b.c"[..]));
    assert_eq!(header(b"Token: \"a.b.c", "Token:"), Some(&b"a.b.c"[..]));
}

#[test]
fn extract_from_query_and_cookies() {
    use extract::{cookie, query_param, remove_query_param};
    assert_eq!(
        query_param(b"a=1&access_token=t.o.k&b=2", "access_token"),
        Some(&b"t.o.k"[..])
    );
    assert_eq!(
        query_param(b"access_token=first&access_token=second", "access_token"),
        Some(&b"first"[..])
    );
    assert_eq!(query_param(b"access_token", "access_token"), Some(&b""[..]));
    assert_eq!(
        query_param(b"xaccess_token=1&access_tokenx=2", "access_token"),
        None
    );
    assert_eq!(query_param(b"", "access_token"), None);

    assert_eq!(cookie(b"a=1; jwt=t.o.k; b=2", "jwt"), Some(&b"t.o.k"[..]));
    assert_eq!(cookie(b"jwt=\"t.o.k\"", "jwt"), Some(&b"t.o.k"[..]));
    assert_eq!(cookie(b"ajwt=1;jwta=2", "jwt"), None);
    assert_eq!(cookie(b" jwt = x ;", "jwt"), Some(&b"x"[..]));
    assert_eq!(cookie(b"", "jwt"), None);

    let remove = |target: &str, name: &str| {
        let mut t = target.as_bytes().to_vec();
        remove_query_param(&mut t, name);
        String::from_utf8(t).unwrap()
    };
    assert_eq!(remove("/p?access_token=x", "access_token"), "/p");
    assert_eq!(
        remove("/p?a=1&access_token=x&b=2", "access_token"),
        "/p?a=1&b=2"
    );
    assert_eq!(remove("/p?access_token=x&b=2", "access_token"), "/p?b=2");
    assert_eq!(remove("/p?a=1&access_token=x", "access_token"), "/p?a=1");
    assert_eq!(
        remove("/p?access_token=x&access_token", "access_token"),
        "/p"
    );
    assert_eq!(remove("/p?a=1&&b", "access_token"), "/p?a=1&&b");
    assert_eq!(
        remove("/p?xaccess_token=1", "access_token"),
        "/p?xaccess_token=1"
    );
    assert_eq!(remove("/p", "access_token"), "/p");
    assert_eq!(remove("/p?", "access_token"), "/p?");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn verify_never_panics_on_any_bytes(token in proptest::collection::vec(any::<u8>(), 0..600)) {
        let jwks = full_jwks();
        prop_assert!(verify(&token, &jwks, &checks(), NOW).is_err());
    }

    #[test]
    fn verify_never_panics_on_token_shaped_input(
        header in "[A-Za-z0-9_=-]{0,80}",
        payload in "[A-Za-z0-9_=-]{0,120}",
        signature in proptest::collection::vec(any::<u8>(), 0..600),
        json_header in prop_oneof![
            Just(r#"{"alg":"HS256"}"#.to_string()),
            Just(r#"{"alg":"EdDSA","kid":"ed"}"#.to_string()),
            Just(r#"{"alg":"ES512"}"#.to_string()),
            Just(r#"{"alg":"PS256","kid":""}"#.to_string()),
            "\\PC{0,40}",
        ],
        json_payload in prop_oneof![
            Just(claims().to_string()),
            Just(r#"{"exp":1e400,"aud":[]}"#.to_string()),
            "\\PC{0,60}",
        ],
    ) {
        let jwks = full_jwks();
        let raw = format!("{header}.{payload}.{}", b64(&signature));
        let _ = verify(raw.as_bytes(), &jwks, &checks(), NOW);
        let shaped = raw_token(&json_header, &json_payload, &signature);
        prop_assert!(verify(shaped.as_bytes(), &jwks, &checks(), NOW).is_err());
    }

    #[test]
    fn jwks_parse_never_panics(text in "\\PC{0,200}", n in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Jwks::parse(&text);
        let doc = json!({"keys": [
            {"kty": "RSA", "n": b64(&n), "e": "AQAB"},
            {"kty": "EC", "x": b64(&n), "y": b64(&n)},
            {"kty": "OKP", "crv": "Ed25519", "x": b64(&n)},
            {"kty": "oct", "k": b64(&n)},
        ]});
        let _ = Jwks::parse(&doc.to_string());
        let _ = Jwks::parse(&pem("PUBLIC KEY", &n));
        let _ = Jwks::parse(&json!({"k": pem("CERTIFICATE", &n)}).to_string());
    }

    #[test]
    fn extraction_never_panics(value in proptest::collection::vec(any::<u8>(), 0..200), name in "[a-z_]{0,12}") {
        let _ = extract::from_header_value(&value, "Bearer ");
        let _ = extract::from_header_value(&value, &name);
        let _ = extract::query_param(&value, &name);
        let _ = extract::cookie(&value, &name);
        let mut target = value.clone();
        extract::remove_query_param(&mut target, &name);
    }

    #[test]
    fn remove_query_param_keeps_the_other_pairs(
        pairs in proptest::collection::vec(("[a-c]{1,2}", "[a-z0-9.]{0,4}"), 0..8),
    ) {
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut target = format!("/p?{}", query.join("&")).into_bytes();
        extract::remove_query_param(&mut target, "a");
        let kept: Vec<&String> = query.iter().filter(|p| !p.starts_with("a=")).collect();
        let want = if kept.len() == query.len() {
            format!("/p?{}", query.join("&"))
        } else if kept.is_empty() {
            "/p".to_string()
        } else {
            format!("/p?{}", kept.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("&"))
        };
        prop_assert_eq!(String::from_utf8(target).unwrap(), want);
    }
}
