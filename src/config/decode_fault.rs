//! Native `fault:` (a listener's, for its routes without their own, or a route's):
//!
//! ```yaml
//! fault:
//!   delay: { fixed: 200ms, percent: 10 }     # or `header: true`
//!   abort: { status: 503, percent: 0.5 }     # or `header: true`
//!   response_rate: { kibps: 64 }             # or `header: true`
//!   headers: [{ name: x-chaos, exact: "on" }] # only requests matching all of these
//!   clusters: [backend]                      # only requests routed to these
//!   max_active: 100                          # faulted requests at once, per worker
//! ```
//!
//! `percent` is 0 to 100 with up to four decimals, kept as a share of 100 (a whole
//! percent) or of 1,000,000; absent, every request (100). `header: true` takes the value
//! from the request's `x-envoy-fault-*` header, honoured only from a peer within
//! `trusted_proxies`; its `...-percentage` header is a numerator over that denominator.

use super::error::Diagnostics;
use super::fields::{duration, exactly_one, list, optional_bool};
use super::node::Node;
use super::resilience::{FaultAbort, FaultDelay, FaultPolicy, FaultRate, Fraction};

const FAULT_KEYS: &[&str] = &[
    "delay",
    "abort",
    "response_rate",
    "headers",
    "clusters",
    "max_active",
];
const DELAY_KEYS: &[&str] = &["fixed", "header", "percent"];
const ABORT_KEYS: &[&str] = &["status", "header", "percent"];
const RATE_KEYS: &[&str] = &["kibps", "header", "percent"];

/// A `fault:` mapping; the cluster names go to `refs`, which `validate` checks.
pub(super) fn policy<'a>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    refs: &mut Vec<(&'a str, Node<'a>)>,
) -> Option<FaultPolicy> {
    let map = node.map(diag, FAULT_KEYS)?;
    let delay = map.optional("delay").map(|n| {
        let (value, fraction) = fault(&n, DELAY_KEYS, "fixed", diag, duration)?;
        Some(FaultDelay {
            fixed: value,
            fraction,
        })
    });
    let abort = map.optional("abort").map(|n| {
        let (status, fraction) = fault(&n, ABORT_KEYS, "status", diag, |v, diag| {
            v.int_in(diag, "a status code", 200..=599)
                .and_then(|s| u16::try_from(s).ok())
        })?;
        Some(FaultAbort { status, fraction })
    });
    let rate = map.optional("response_rate").map(|n| {
        let (kibps, fraction) = fault(&n, RATE_KEYS, "kibps", diag, |v, diag| {
            v.int_in(diag, "a rate in KiB/s", 1..=i64::from(u32::MAX))
                .and_then(|k| u64::try_from(k).ok())
        })?;
        Some(FaultRate { kibps, fraction })
    });
    let headers = match map.optional("headers") {
        Some(n) => super::route_match::headers(&n, diag),
        None => Some(Vec::new()),
    };
    let clusters = match map.optional("clusters") {
        Some(n) => list(&n, diag, |item, diag| {
            let name = item.str(diag)?;
            refs.push((name, item.clone()));
            Some(name.to_owned())
        }),
        None => Some(Vec::new()),
    };
    let max_active = match map.optional("max_active") {
        Some(n) => n
            .int_in(diag, "a number of requests", 0..=i64::from(u32::MAX))
            .and_then(|m| u32::try_from(m).ok())
            .map(Some),
        None => Some(None),
    };
    if !(map.has("delay") || map.has("abort") || map.has("response_rate")) {
        map.error(diag, "`fault` needs `delay`, `abort` or `response_rate`");
        return None;
    }
    Some(FaultPolicy {
        delay: settled(delay)?,
        abort: settled(abort)?,
        response_rate: settled(rate)?,
        headers: headers?,
        upstream_clusters: clusters?,
        max_active: max_active?,
    })
}

/// An optional part's result: `Some(None)` when absent, `None` when it failed.
fn settled<T>(part: Option<Option<T>>) -> Option<Option<T>> {
    match part {
        None => Some(None),
        Some(decoded) => decoded.map(Some),
    }
}

/// One fault: its fixed value (`key`) or `header: true` (`None`), and its share.
fn fault<T>(
    node: &Node<'_>,
    keys: &'static [&'static str],
    key: &'static str,
    diag: &mut Diagnostics,
    value: impl FnOnce(&Node<'_>, &mut Diagnostics) -> Option<T>,
) -> Option<(Option<T>, Fraction)> {
    let map = node.map(diag, keys)?;
    let message = format!("needs `{key}` or `header: true`, not both");
    let (given, n) = exactly_one((node, &map), (&[key, "header"], keys), diag, &message)?;
    let fixed = if given == "header" {
        if !optional_bool(&map, "header", false, diag)? {
            n.error(diag, format!("`header: false`: give `{key}` instead"));
            return None;
        }
        None
    } else {
        Some(value(&n, diag)?)
    };
    let fraction = match map.optional("percent") {
        Some(n) => percent(&n, diag)?,
        None => Fraction::ALL,
    };
    Some((fixed, fraction))
}

/// `0` to `100` with up to four decimals: a share of 100 for a whole percent, else of
/// 1,000,000.
fn percent(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Fraction> {
    let Some(value) = node.peek_number() else {
        node.wrong_type(diag, "a percentage from 0 to 100");
        return None;
    };
    if !(0.0..=100.0).contains(&value) {
        node.error(
            diag,
            format!("expected a percentage from 0 to 100, found {value}"),
        );
        return None;
    }
    let millionths = (value * 10_000.0).round();
    if (millionths - value * 10_000.0).abs() > 1e-6 {
        node.error(diag, format!("{value}: at most four decimals"));
        return None;
    }
    // In 0..=1_000_000 by the checks above. A whole percent keeps Envoy's usual
    // denominator 100, so that a `...-percentage` header counts in percent.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let fraction = if value.fract() == 0.0 {
        Fraction {
            numerator: value as u32,
            denominator: 100,
        }
    } else {
        Fraction {
            numerator: millionths as u32,
            denominator: 1_000_000,
        }
    };
    Some(fraction)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::resilience::FaultDelay;
    use crate::config::Config;

    fn parse(fault: &str) -> Result<Config, String> {
        let yaml = format!(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: {{ prefix: / }}\n        cluster: b\n        fault: {fault}\nclusters:\n  - name: b\n    endpoints: [127.0.0.1:1]\n"
        );
        Config::parse(&yaml, std::path::Path::new("t.yaml")).map_err(|e| e.to_string())
    }

    fn route_fault(config: &Config) -> crate::config::resilience::FaultPolicy {
        config.listeners[0].routes[0]
            .fault
            .clone()
            .expect("a fault")
    }

    #[test]
    fn faults_decode() {
        let config = parse(
            "{ delay: { fixed: 200ms, percent: 12.5 }, abort: { header: true }, response_rate: { kibps: 64, percent: 0.0001 }, headers: [{ name: x-chaos, exact: \"on\" }], clusters: [b], max_active: 3 }",
        )
        .unwrap();
        let f = route_fault(&config);
        assert_eq!(
            f.delay,
            Some(FaultDelay {
                fixed: Some(Duration::from_millis(200)),
                fraction: super::Fraction {
                    numerator: 125_000,
                    denominator: 1_000_000
                }
            })
        );
        let abort = f.abort.unwrap();
        assert_eq!((abort.status, abort.fraction), (None, super::Fraction::ALL));
        let rate = f.response_rate.unwrap();
        assert_eq!((rate.kibps, rate.fraction.numerator), (Some(64), 1));
        assert_eq!(f.headers.len(), 1);
        assert_eq!(f.upstream_clusters, ["b"]);
        assert_eq!(f.max_active, Some(3));
    }

    #[test]
    fn a_listener_fault_applies_to_routes_without_their_own() {
        let yaml = "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    fault: { abort: { status: 503 } }\n    routes:\n      - match: { prefix: /a }\n        cluster: b\n      - match: { prefix: / }\n        cluster: b\n        fault: { delay: { fixed: 1s } }\nclusters:\n  - name: b\n    endpoints: [127.0.0.1:1]\n";
        let config = Config::parse(yaml, std::path::Path::new("t.yaml")).unwrap();
        let routes = &config.listeners[0].routes;
        assert_eq!(
            routes[0].fault.as_ref().unwrap().abort.unwrap().status,
            Some(503)
        );
        assert!(routes[1].fault.as_ref().unwrap().abort.is_none());
    }

    #[test]
    fn the_reference_config_spells_out_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/reference.yaml");
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let f = route_fault(&config);
        let delay = f.delay.unwrap();
        assert_eq!(delay.fixed, Some(Duration::from_millis(100)));
        assert_eq!(
            (delay.fraction.numerator, delay.fraction.denominator),
            (1, 100)
        );
        assert_eq!(f.abort.unwrap().fraction.numerator, 5_000);
        assert_eq!((f.response_rate, f.max_active), (None, None));
        assert!(f.upstream_clusters.is_empty() && f.headers.len() == 1);
    }

    #[test]
    fn mistakes_are_reported_where_they_are() {
        let cases = [
            (
                "{ abort: { status: 600 } }",
                "expected a status code from 200 to 599, found 600",
            ),
            (
                "{ abort: { status: 503, header: true } }",
                "needs `status` or `header: true`, not both",
            ),
            (
                "{ delay: { fixed: 1s, percent: 101 } }",
                "expected a percentage from 0 to 100, found 101",
            ),
            (
                "{ delay: { fixed: 1s, percent: 0.00001 } }",
                "at most four decimals",
            ),
            (
                "{ delay: { header: false } }",
                "`header: false`: give `fixed` instead",
            ),
            (
                "{ max_active: 3 }",
                "`fault` needs `delay`, `abort` or `response_rate`",
            ),
            ("{ abort: { status: 503 }, clusters: [nope] }", "nope"),
        ];
        for (fault, expected) in cases {
            let error = parse(fault).unwrap_err();
            assert!(error.contains(expected), "{fault}: {error}");
            assert!(error.contains("t.yaml:7:"), "{fault}: {error}");
        }
    }
}
