//! CORS (the Fetch standard's cross-origin protocol), with Envoy's CORS filter semantics.
//!
//! A request with an `Origin` the policy allows is a CORS request:
//! - a preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered here, 200
//!   without a body, with `access-control-allow-origin` (the request's origin),
//!   `-allow-credentials: true` when configured, `-allow-methods`, `-allow-headers` and
//!   `-max-age` when set, and `vary: origin`; it never reaches the upstream;
//! - any other request goes on, and its response (the upstream's, or one ringway writes
//!   itself) gets `access-control-allow-origin` (replacing the upstream's),
//!   `-allow-credentials`, `-expose-headers` and `vary: origin`.
//!
//! A request without `Origin`, or whose origin the policy does not allow, is left alone:
//! no CORS header is added, so the browser refuses the response to the page (as Envoy
//! does, a disallowed preflight is forwarded like any request). The allowed origin is
//! echoed, never `*`, so credentials work and caches keep responses apart by `vary`.
//!
//! Per request, the allowed origin is copied into [`super::RequestState`] (its buffer
//! keeps its capacity), for the response side.

use super::{RequestHead, RequestState, ResponseHead};
use crate::{config, http1::Method, local_reply::Reply};

const CREDENTIALS_LINE: &[u8] = b"access-control-allow-credentials: true\r\n";

/// The upstream's own answers to what the policy decides, replaced by the policy's.
const CORS_RESPONSE_FIELDS: &[&[u8]] = &[
    b"access-control-allow-origin",
    b"access-control-allow-credentials",
    b"access-control-expose-headers",
];

/// A compiled policy.
#[derive(Debug)]
pub struct Cors {
    origins: Box<[OriginMatch]>,
    credentials: bool,
    /// Pre-rendered `access-control-allow-methods/-headers/-max-age` lines of a preflight.
    preflight_lines: Box<[u8]>,
    /// The pre-rendered `access-control-expose-headers` line, if any.
    expose_line: Option<Box<[u8]>>,
    preflight: Reply,
}

#[derive(Debug)]
enum OriginMatch {
    Any,
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    Suffix(Box<[u8]>),
    Contains(Box<[u8]>),
    Regex(regex::bytes::Regex),
}

impl OriginMatch {
    fn matches(&self, origin: &[u8]) -> bool {
        match self {
            OriginMatch::Any => true,
            OriginMatch::Exact(o) => origin == &o[..],
            OriginMatch::Prefix(p) => origin.starts_with(p),
            OriginMatch::Suffix(s) => origin.ends_with(s),
            OriginMatch::Contains(c) => origin.windows(c.len()).any(|w| w == &c[..]),
            OriginMatch::Regex(r) => r.is_match(origin),
        }
    }
}

impl Cors {
    /// Compiles a validated policy.
    pub fn compile(policy: &config::CorsPolicy) -> Cors {
        let origins = policy
            .allow_origins
            .iter()
            .filter_map(|o| {
                Some(match o {
                    config::OriginMatch::Exact(e) if e == "*" => OriginMatch::Any,
                    config::OriginMatch::Exact(e) => OriginMatch::Exact(e.as_bytes().into()),
                    config::OriginMatch::Prefix(p) => OriginMatch::Prefix(p.as_bytes().into()),
                    config::OriginMatch::Suffix(s) => OriginMatch::Suffix(s.as_bytes().into()),
                    config::OriginMatch::Contains(c) => OriginMatch::Contains(c.as_bytes().into()),
                    // Validation compiled it once already.
                    config::OriginMatch::Regex(r) => {
                        OriginMatch::Regex(config::pattern::anchored_regex(r).ok()?)
                    }
                })
            })
            .collect();
        let line = |out: &mut String, name: &str, value: &str| {
            if !value.is_empty() {
                out.push_str(name);
                out.push_str(": ");
                out.push_str(value);
                out.push_str("\r\n");
            }
        };
        let mut preflight_lines = String::new();
        line(
            &mut preflight_lines,
            "access-control-allow-methods",
            &policy.allow_methods.join(","),
        );
        line(
            &mut preflight_lines,
            "access-control-allow-headers",
            &policy.allow_headers.join(","),
        );
        if let Some(age) = policy.max_age {
            line(
                &mut preflight_lines,
                "access-control-max-age",
                &age.as_secs().to_string(),
            );
        }
        let mut expose = String::new();
        line(
            &mut expose,
            "access-control-expose-headers",
            &policy.expose_headers.join(","),
        );
        Cors {
            origins,
            credentials: policy.allow_credentials,
            preflight_lines: preflight_lines.into_bytes().into(),
            expose_line: (!expose.is_empty()).then(|| expose.into_bytes().into()),
            preflight: Reply::new(200, "", b""),
        }
    }

    /// The request side: remembers an allowed origin, and answers a preflight.
    pub(super) fn on_request<'c>(
        &'c self,
        head: &RequestHead<'_>,
        state: &mut RequestState,
    ) -> Option<&'c Reply> {
        let origin = head.header("origin").filter(|o| !o.is_empty())?;
        if !self.origins.iter().any(|m| m.matches(origin)) {
            return None;
        }
        let preflight = head.method() == Method::Options
            && head
                .header("access-control-request-method")
                .is_some_and(|m| !m.is_empty());
        if !preflight {
            state.cors_origin.clear();
            state.cors_origin.extend_from_slice(origin);
            return None;
        }
        let lines = &mut state.reply_lines;
        lines.extend_from_slice(b"access-control-allow-origin: ");
        lines.extend_from_slice(origin);
        lines.extend_from_slice(b"\r\n");
        if self.credentials {
            lines.extend_from_slice(CREDENTIALS_LINE);
        }
        lines.extend_from_slice(&self.preflight_lines);
        lines.extend_from_slice(b"vary: origin\r\n");
        Some(&self.preflight)
    }

    /// The response side of a CORS request.
    pub(super) fn on_response(&self, head: &mut ResponseHead<'_>, state: &RequestState) {
        if state.cors_origin.is_empty() {
            return;
        }
        head.remove_any(CORS_RESPONSE_FIELDS);
        // The origin came from the request's head, whose values the codec checked.
        head.append_checked(b"access-control-allow-origin", &state.cors_origin);
        if self.credentials {
            head.append_line(CREDENTIALS_LINE);
        }
        if let Some(line) = &self.expose_line {
            head.append_line(line);
        }
        head.append_line(b"vary: origin\r\n");
    }

    /// The same lines for an answer ringway writes itself.
    pub(super) fn local_reply_headers(&self, out: &mut Vec<u8>, state: &RequestState) {
        if state.cors_origin.is_empty() {
            return;
        }
        out.extend_from_slice(b"access-control-allow-origin: ");
        out.extend_from_slice(&state.cors_origin);
        out.extend_from_slice(b"\r\n");
        if self.credentials {
            out.extend_from_slice(CREDENTIALS_LINE);
        }
        if let Some(line) = &self.expose_line {
            out.extend_from_slice(line);
        }
        out.extend_from_slice(b"vary: origin\r\n");
    }
}
