//! The fuzz entry point (`fuzz/fuzz_targets/jwt.rs`; `tests/fuzz_corpus.rs` replays the
//! corpus through it): arbitrary bytes as a key set, as a token, and as the places a
//! token is looked for. Nothing may panic, and what verifies must be well formed.

use super::{extract, verify, Checks, Jwks};

/// An HS256 key (`secret`) and an ES256 public key, for tokens to be checked against.
const KEYS: &str = r#"{"keys":[
 {"kty":"oct","kid":"h","alg":"HS256","k":"c2VjcmV0"},
 {"kty":"EC","kid":"e","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

pub fn fuzz(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Jwks::parse(text);
    }
    let Ok(keys) = Jwks::parse(KEYS) else {
        return;
    };
    let checks = Checks::default();
    if let Ok(verified) = verify(data, &keys, &checks, 1_800_000_000) {
        // Only a token signed with `secret` can get here: three sections, an object.
        assert_eq!(data.iter().filter(|b| **b == b'.').count(), 2);
        assert!(verified.payload.is_object());
    }
    let _ = extract::from_header_value(data, "Bearer ");
    let _ = extract::query_param(data, "access_token");
    let _ = extract::cookie(data, "session");
    let mut target = data.to_vec();
    extract::remove_query_param(&mut target, "jwt");
    assert!(target.len() <= data.len());
}
