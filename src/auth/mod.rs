//! Authentication and authorization, below the filters that use them.
//!
//! - [`jwt`]: JWKS and JWT verification (aws-lc-rs), Envoy's error texts, the
//!   per-worker cache of verified tokens, and finding tokens in a request;
//! - [`runtime`]: a worker's providers (keys now, cache) and [`fetcher`], the thread
//!   that keeps remote keys fresh;
//! - [`consumers`]: API keys by digest;
//! - [`policy`]: access policies, compiled and evaluated.
//!
//! The filters (`filter::authn`, `filter::authz`) apply them to requests; the control
//! thread (`control::jwt_keys`) hands keys to the workers.

pub mod consumers;
pub mod fetcher;
pub mod jwt;
pub mod policy;
pub mod runtime;

/// Appends a claim as a header value: a string as is, a number or a boolean as JSON
/// writes it (Envoy's `claim_to_headers` rule); other kinds, and strings holding bytes a
/// header value may not (control characters: a claim must not be able to add a header
/// line), append nothing. Returns whether it appended.
pub fn claim_as_text(value: &serde_json::Value, out: &mut Vec<u8>) -> bool {
    use std::io::Write as _;
    let start = out.len();
    match value {
        serde_json::Value::String(s) => {
            let ok = s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
            if !ok {
                return false;
            }
            out.extend_from_slice(s.as_bytes());
        }
        serde_json::Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        serde_json::Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        _ => return false,
    }
    out.len() > start || matches!(value, serde_json::Value::String(_))
}
