//! What JWT authentication costs per request, per core.
//!
//! - `jwt_cached`: a client that sends the same token on every request: the token found
//!   in an `authorization: Bearer <token>` value, hashed and looked up in the per-core
//!   cache (and, second line, its claims checked again against the clock and audiences,
//!   as a cache hit is). The budget: at most 1 µs.
//! - `jwt_rs256` and `jwt_es256`: a token not in the cache, verified end to end by
//!   `verify` (split, base64url, JSON, claims, signature), beside aws-lc-rs verifying
//!   the same signature over the same bytes on its own: `RsaPublicKeyComponents::verify`
//!   and `UnparsedPublicKey::verify` (which parse the key on every call), and
//!   `ParsedPublicKey::verify_sig` (the pre-parsed key `Jwks` holds). The issue's
//!   budget: within 10% of the library's own verify time.
//!
//! - `api_key`: a key found in an `x-api-key` value, digested (SHA-256), looked up among
//!   10,000 consumers' keys and confirmed in constant time. The budget: at most
//!   300 ns.
//!
//! Run: `cargo bench --bench auth -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::rc::Rc;

use aws_lc_rs::{
    rand::SystemRandom,
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{
        self, EcdsaKeyPair, KeyPair, ParsedPublicKey, RsaPublicKeyComponents, UnparsedPublicKey,
    },
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use criterion::{criterion_group, criterion_main, Criterion};
use ringway::auth::jwt::{extract, verify, Checks, Jwks, TokenCache};
use serde_json::json;

const NOW: u64 = 1_700_000_000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A typical access token's claims (about 300 bytes of payload).
fn signed_part(alg: &str, kid: &str) -> String {
    let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
    let payload = json!({
        "iss": "https://auth.example.com/",
        "sub": "auth0|5f7c8ec7c33c6c004bbafe82",
        "aud": ["https://api.example.com", "https://auth.example.com/userinfo"],
        "iat": NOW - 60,
        "exp": NOW + 3540,
        "azp": "8Lq5PmZkW3dGx7tRy2vB",
        "scope": "openid profile email read:orders write:orders",
        "email": "jane.doe@example.com",
        "tenant": "acme",
    });
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    )
}

fn checks() -> Checks {
    Checks {
        issuer: Some("https://auth.example.com/".into()),
        audiences: vec!["https://api.example.com".into()],
        ..Checks::default()
    }
}

struct Rsa {
    token: String,
    jwks: Jwks,
    n: Vec<u8>,
    e: Vec<u8>,
}

fn rsa() -> Rsa {
    let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let signed = signed_part("RS256", "rsa-1");
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .unwrap();
    let n = key
        .public_key()
        .modulus()
        .big_endian_without_leading_zero()
        .to_vec();
    let e = key
        .public_key()
        .exponent()
        .big_endian_without_leading_zero()
        .to_vec();
    let jwks = json!({"keys": [
        {"kty": "EC", "kid": "other", "crv": "P-256",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
         "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "RSA", "kid": "rsa-1", "use": "sig", "n": b64(&n), "e": b64(&e)},
    ]});
    Rsa {
        token: format!("{signed}.{}", b64(&signature)),
        jwks: Jwks::parse(&jwks.to_string()).unwrap(),
        n,
        e,
    }
}

struct Ec {
    token: String,
    jwks: Jwks,
    point: Vec<u8>,
}

fn ec() -> Ec {
    let key = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let signed = signed_part("ES256", "ec-1");
    let signature = key.sign(&SystemRandom::new(), signed.as_bytes()).unwrap();
    let point = key.public_key().as_ref().to_vec();
    let jwks = json!({"keys": [
        {"kty": "EC", "kid": "ec-1", "crv": "P-256", "alg": "ES256",
         "x": b64(&point[1..33]), "y": b64(&point[33..])},
    ]});
    Ec {
        token: format!("{signed}.{}", b64(signature.as_ref())),
        jwks: Jwks::parse(&jwks.to_string()).unwrap(),
        point,
    }
}

/// The signed bytes and the raw signature of a token.
fn split(token: &str) -> (&[u8], Vec<u8>) {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    (
        signed.as_bytes(),
        URL_SAFE_NO_PAD.decode(signature).unwrap(),
    )
}

fn cached(c: &mut Criterion) {
    let rsa = rsa();
    let checks = checks();
    let verified = Rc::new(verify(rsa.token.as_bytes(), &rsa.jwks, &checks, NOW).unwrap());
    let mut cache = TokenCache::new(100);
    // A cache with neighbours, as on a busy worker.
    for i in 0..99 {
        cache.insert(format!("{}{i}", rsa.token).as_bytes(), Rc::clone(&verified));
    }
    cache.insert(rsa.token.as_bytes(), Rc::clone(&verified));
    let header = format!("Bearer {}", rsa.token).into_bytes();

    let mut group = c.benchmark_group("jwt_cached");
    group.bench_function("extract_hash_lookup", |b| {
        b.iter(|| {
            let token = extract::from_header_value(black_box(&header), "Bearer ").unwrap();
            let hit = cache.get(token, black_box(NOW)).unwrap();
            black_box(hit.exp)
        })
    });
    group.bench_function("extract_hash_lookup_recheck", |b| {
        b.iter(|| {
            let token = extract::from_header_value(black_box(&header), "Bearer ").unwrap();
            let hit = cache.get(token, black_box(NOW)).unwrap();
            checks.recheck(&hit, NOW).unwrap();
            black_box(hit.exp)
        })
    });
    group.finish();
}

fn rs256(c: &mut Criterion) {
    let rsa = rsa();
    let checks = checks();
    let (signed, signature) = split(&rsa.token);
    let components = RsaPublicKeyComponents {
        n: rsa.n.as_slice(),
        e: rsa.e.as_slice(),
    };
    let parsed = components
        .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
        .unwrap();
    let mut group = c.benchmark_group("jwt_rs256");
    group.bench_function("ringway_verify", |b| {
        b.iter(|| verify(black_box(rsa.token.as_bytes()), &rsa.jwks, &checks, NOW).unwrap())
    });
    group.bench_function("aws_lc_rs_components_verify", |b| {
        b.iter(|| {
            components
                .verify(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    black_box(signed),
                    &signature,
                )
                .unwrap()
        })
    });
    group.bench_function("aws_lc_rs_parsed_verify_sig", |b| {
        b.iter(|| parsed.verify_sig(black_box(signed), &signature).unwrap())
    });
    group.finish();
}

fn es256(c: &mut Criterion) {
    let ec = ec();
    let checks = checks();
    let (signed, signature) = split(&ec.token);
    let unparsed = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &ec.point);
    let parsed = ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &ec.point).unwrap();
    let mut group = c.benchmark_group("jwt_es256");
    group.bench_function("ringway_verify", |b| {
        b.iter(|| verify(black_box(ec.token.as_bytes()), &ec.jwks, &checks, NOW).unwrap())
    });
    group.bench_function("aws_lc_rs_unparsed_verify", |b| {
        b.iter(|| unparsed.verify(black_box(signed), &signature).unwrap())
    });
    group.bench_function("aws_lc_rs_parsed_verify_sig", |b| {
        b.iter(|| parsed.verify_sig(black_box(signed), &signature).unwrap())
    });
    group.finish();
}

fn api_key(c: &mut Criterion) {
    use ringway::auth::consumers::{digest, ConsumerTable};
    use ringway::config::auth::{ApiKeys, Consumer};
    let consumers = (0..10_000)
        .map(|i| Consumer {
            name: format!("consumer-{i}"),
            key_digests: vec![digest(format!("key-{i:08}-{}", "x".repeat(24)).as_bytes())],
            metadata: vec![("plan".into(), "gold".into())],
        })
        .collect();
    let keys = ApiKeys {
        from: Vec::new(),
        consumers,
        file: None,
        forward: false,
    };
    let table = ConsumerTable::build(&keys, |_| None);
    let value = format!("key-{:08}-{}", 4321, "x".repeat(24));
    c.bench_function("api_key/10000 consumers, found", |b| {
        b.iter(|| {
            let found = table.find(black_box(value.as_bytes()));
            black_box(found.map(|e| e.consumer.name.len()))
        })
    });
    c.bench_function("api_key/10000 consumers, unknown", |b| {
        b.iter(|| {
            black_box(
                table
                    .find(black_box(b"not-a-known-key-at-all-000000000"))
                    .is_some(),
            )
        })
    });
}

criterion_group!(benches, cached, rs256, es256, api_key);
criterion_main!(benches);
