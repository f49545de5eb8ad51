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
