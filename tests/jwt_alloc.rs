//! Regression guard: a cached JWT costs no heap allocation per request. The request's
//! steps on a cache hit (finding the token in `authorization: Bearer ...`, hashing and
//! confirming it in the per-core cache, checking its claims again, copying two claims
//! into a header buffer) are run with the counting allocator of feature `alloc-count`
//! and must count zero allocations.

#![cfg(feature = "alloc-count")]

use std::rc::Rc;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ringway::alloc_count::{allocations, Counting};
use ringway::auth::jwt::{extract, verify, Checks, Jwks, TokenCache};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: Counting<std::alloc::System> = Counting(std::alloc::System);

const NOW: u64 = 1_700_000_000;

#[test]
fn cached_token_allocates_nothing() {
    let secret = b"a 32-byte secret for HS tokens!!";
    let jwks = Jwks::parse(
        &json!({"keys": [{"kty": "oct", "kid": "k", "k": URL_SAFE_NO_PAD.encode(secret)}]})
            .to_string(),
    )
    .unwrap();
    let claims = json!({
        "iss": "https://issuer.example", "sub": "user-1", "aud": ["api"],
        "exp": NOW + 300, "tier": {"plan": "gold"}, "n": 7
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap();
    let checks = Checks {
        issuer: Some("https://issuer.example".into()),
        audiences: vec!["api".into()],
        required_claims: vec!["tier.plan".into()],
        ..Checks::default()
    };
    let verified = verify(token.as_bytes(), &jwks, &checks, NOW).unwrap();
    let mut cache = TokenCache::new(100);
    cache.insert(token.as_bytes(), Rc::new(verified));
    let value = format!("Bearer {token}").into_bytes();
    let mut out = Vec::with_capacity(256);

    // Warm once, then count many.
    let mut request = |out: &mut Vec<u8>| {
        let token = extract::from_header_value(&value, "Bearer ").unwrap();
        let hit = cache.get(token, NOW).unwrap();
        checks.recheck(&hit, NOW).unwrap();
        out.clear();
        assert!(hit.claim_text("tier.plan", out));
        assert!(hit.claim_text("n", out));
        assert_eq!(hit.subject(), Some("user-1"));
    };
    request(&mut out);
    let before = allocations();
    for _ in 0..1000 {
        request(&mut out);
    }
    assert_eq!(allocations() - before, 0);
    assert_eq!(out, b"gold7");
    // The counter does count on this thread.
    let before = allocations();
    std::hint::black_box(vec![0u8; 64]);
    assert!(allocations() > before);
}
