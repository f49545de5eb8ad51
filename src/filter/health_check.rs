//! Envoy's `envoy.filters.http.health_check` filter: a listener's health checks, answered
//! by ringway itself (200, or 503 while `/healthcheck/fail` holds), or passed on to their
//! route in pass-through mode unless failing.
//!
//! Design: compiled once per snapshot from `config::HealthCheckFilter`; a request is a health
//! check when every header condition holds (`:path`, `:method` and `:authority` name the
//! request line's parts, as in Envoy). The failing state is the control thread's
//! `/healthcheck/fail`, shared as an `AtomicBool` that workers only read (a relaxed load,
//! for health checks only: nothing else on the request path reads it).

use std::sync::atomic::{AtomicBool, Ordering};

use super::value_match::Value;
use crate::config;
use crate::http1::Request;
use crate::local_reply::Reply;

/// A listener's compiled health-check filter.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    pass_through: bool,
    conditions: Vec<(String, Value)>,
    /// The answers: 200, and 503 with `x-envoy-immediate-health-check-fail: true`.
    healthy: Reply,
    failing: Reply,
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not a health check.
    Continue,
    /// A health check passed on to its route (`pass_through_mode`).
    PassThrough,
    /// Answer 200 (Envoy's health-check response).
    Healthy,
    /// Answer 503 with `x-envoy-immediate-health-check-fail` (flag `LH`).
    Failing,
}

impl HealthCheck {
    /// Compiles the filter (a regex that no longer compiles matches nothing); `server`
    /// is the listener's `server` value, which Envoy sets on these answers too.
    pub fn new(config: &config::HealthCheckFilter, server: Option<&str>) -> Self {
        let conditions = config
            .headers
            .iter()
            .map(|h| {
                // The same test as a route's header condition.
                (h.name.clone(), Value::compile(&h.value))
            })
            .collect();
        let with_server = |reply: Reply| match server {
            Some(server) => reply.with_header(format!("server: {server}\r\n").as_bytes()),
            None => reply,
        };
        HealthCheck {
            pass_through: config.pass_through,
            conditions,
            healthy: with_server(Reply::new(200, "", b"")),
            failing: with_server(
                Reply::new(503, "", b"")
                    .with_header(b"x-envoy-immediate-health-check-fail: true\r\n"),
            ),
        }
    }

    /// The answer for a verdict that is not `Continue`.
    pub fn reply(&self, verdict: Verdict) -> &Reply {
        match verdict {
            Verdict::Failing => &self.failing,
            Verdict::Healthy | Verdict::Continue | Verdict::PassThrough => &self.healthy,
        }
    }

    /// Whether `request` (head `head`) is a health check, and what to answer.
    pub fn check(&self, request: &Request, head: &[u8], failing: &AtomicBool) -> Verdict {
        let holds = self.conditions.iter().all(|(name, test)| {
            let value = match name.as_str() {
                ":path" => Some(request.target.get(head)),
                ":method" => Some(request.method_span.get(head)),
                ":authority" | "host" => request.host.map(|h| h.get(head)),
                other => request.header(head, other),
            };
            test.test(value)
        });
        if !holds {
            Verdict::Continue
        } else if failing.load(Ordering::Relaxed) {
            Verdict::Failing
        } else if self.pass_through {
            Verdict::PassThrough
        } else {
            Verdict::Healthy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HeaderMatch, ValueMatch};
    use crate::http1::{parse_request, Limits};

    #[test]
    fn health_checks_are_matched_and_answered() {
        let filter = HealthCheck::new(
            &config::HealthCheckFilter {
                pass_through: false,
                headers: vec![HeaderMatch {
                    name: ":path".into(),
                    value: ValueMatch::Exact("/healthz".into()),
                }],
            },
            Some("envoy"),
        );
        let parse = |raw: &'static [u8]| {
            let mut request = Request::new();
            parse_request(raw, &Limits::default(), &mut request).unwrap();
            (request, raw)
        };
        let failing = AtomicBool::new(false);
        let (r, h) = parse(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(filter.check(&r, h, &failing), Verdict::Healthy);
        let (other, oh) = parse(b"GET /healthz/x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(filter.check(&other, oh, &failing), Verdict::Continue);
        failing.store(true, Ordering::Relaxed);
        assert_eq!(filter.check(&r, h, &failing), Verdict::Failing);
        // Passed on: still a health check (its response is not charged), unless
        // failing.
        let passing = HealthCheck::new(
            &config::HealthCheckFilter {
                pass_through: true,
                headers: vec![HeaderMatch {
                    name: ":path".into(),
                    value: ValueMatch::Exact("/healthz".into()),
                }],
            },
            None,
        );
        assert_eq!(passing.check(&r, h, &failing), Verdict::Failing);
        failing.store(false, Ordering::Relaxed);
        assert_eq!(passing.check(&r, h, &failing), Verdict::PassThrough);
        assert_eq!(passing.check(&other, oh, &failing), Verdict::Continue);
    }
}
