//! Envoy's fault filter (`envoy.extensions.filters.http.fault.v3.HTTPFault`), in the
//! connection manager's `http_filters` and as a per-route / per-host
//! `typed_per_filter_config` under the filter's name. The most specific config wins
//! whole (route, else host, else the filter's), as in Envoy.
//!
//! Mapped: `delay` (`fixed_delay` or `header_delay`, `percentage`), `abort`
//! (`http_status` or `header_abort`, `percentage`), `response_rate_limit` (`fixed_limit`
//! `limit_kbps` in KiB/s, or `header_limit`, `percentage`), `headers`,
//! `upstream_cluster`, `max_active_faults` (counted per worker), and
//! `disable_downstream_cluster_stats` (accepted: ringway has no per-downstream-cluster
//! fault stats). An absent `percentage` is 0 %, as in Envoy (its `FractionalPercent`
//! default). The `*_runtime` fields only name runtime keys: ringway's runtime has none of
//! them, so the configured values apply, as in Envoy without a runtime override; they
//! are accepted. Refused by name: `abort.grpc_status` (until HTTP/2),
//! `downstream_nodes` (no `x-envoy-downstream-service-node` matching yet) and
//! `filter_metadata`.

use super::cursor::Msg;
use super::route::{header_matcher, per_filter_config, PerFilter};
use super::schema;
use crate::config::error::Diagnostics;
use crate::config::resilience::{FaultAbort, FaultDelay, FaultPolicy, FaultRate, Fraction};

/// The extension name Envoy documents for the filter.
pub(crate) const FILTER: &str = "envoy.filters.http.fault";

/// The chain's fault filter: its name (per-route configs are keyed by it) and its own
/// policy (`None`: no fault at that level).
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultFilter {
    pub name: String,
    pub policy: Option<FaultPolicy>,
}

/// The filter's `typed_config`.
pub(crate) fn filter(
    m: &Msg<'_, '_>,
    name: &str,
    clusters: &[String],
    diag: &mut Diagnostics,
) -> FaultFilter {
    FaultFilter {
        name: name.to_owned(),
        policy: policy(m, clusters, diag),
    }
}

/// A host's or route's `HTTPFault` under the filter's name, if it has one:
/// `Some(None)` when it turns every fault off (an empty `HTTPFault`).
pub(crate) fn per_route(
    m: &Msg<'_, '_>,
    filter: Option<&FaultFilter>,
    clusters: &[String],
    diag: &mut Diagnostics,
) -> Option<Option<FaultPolicy>> {
    let mut result = None;
    let entries = PerFilter {
        type_name: schema::FAULT,
        filter: filter.map(|f| f.name.as_str()),
        what: ("an HTTPFault", "a fault filter", FILTER),
    };
    per_filter_config(m, entries, diag, |config, diag| {
        result = Some(policy(config, clusters, diag));
    });
    result
}

/// An `HTTPFault`; `None` when it injects nothing.
fn policy(m: &Msg<'_, '_>, clusters: &[String], diag: &mut Diagnostics) -> Option<FaultPolicy> {
    m.only(
        diag,
        &[
            "delay",
            "abort",
            "response_rate_limit",
            "headers",
            "upstream_cluster",
            "max_active_faults",
            "disable_downstream_cluster_stats",
            "delay_percent_runtime",
            "abort_percent_runtime",
            "delay_duration_runtime",
            "abort_http_status_runtime",
            "max_active_faults_runtime",
            "response_rate_limit_percent_runtime",
            "abort_grpc_status_runtime",
        ],
    );
    let delay = m.child("delay").and_then(|d| {
        d.only(diag, &["fixed_delay", "header_delay", "percentage"]);
        let fixed = if d.has("header_delay") {
            d.child("header_delay")?.only(diag, &[]);
            None
        } else if let Some(fixed) = d.duration("fixed_delay") {
            Some(fixed)
        } else {
            d.error(
                diag,
                "fixed_delay",
                "a delay needs `fixed_delay` or `header_delay`",
            );
            return None;
        };
        Some(FaultDelay {
            fixed,
            fraction: percentage(&d, diag),
        })
    });
    let abort = m.child("abort").and_then(|a| {
        a.only(diag, &["http_status", "header_abort", "percentage"]);
        let status = if a.has("header_abort") {
            a.child("header_abort")?.only(diag, &[]);
            None
        } else if a.has("http_status") {
            // Envoy's validation: 200 <= status < 600.
            match u16::try_from(a.uint("http_status")) {
                Ok(s) if (200..600).contains(&s) => Some(s),
                _ => {
                    let found = a.uint("http_status");
                    a.error(
                        diag,
                        "http_status",
                        format!("{found}: a status from 200 to 599"),
                    );
                    return None;
                }
            }
        } else {
            a.error(
                diag,
                "http_status",
                "an abort needs `http_status` or `header_abort`",
            );
            return None;
        };
        Some(FaultAbort {
            status,
            fraction: percentage(&a, diag),
        })
    });
    let response_rate = m.child("response_rate_limit").and_then(|r| {
        r.only(diag, &["fixed_limit", "header_limit", "percentage"]);
        let kibps = if r.has("header_limit") {
            r.child("header_limit")?.only(diag, &[]);
            None
        } else if let Some(fixed) = r.child("fixed_limit") {
            fixed.only(diag, &["limit_kbps"]);
            match fixed.uint("limit_kbps") {
                0 => {
                    fixed.error(
                        diag,
                        "limit_kbps",
                        "a rate limit needs `limit_kbps` of 1 or more",
                    );
                    return None;
                }
                k => Some(k),
            }
        } else {
            r.error(
                diag,
                "fixed_limit",
                "a response rate limit needs `fixed_limit` or `header_limit`",
            );
            return None;
        };
        Some(FaultRate {
            kibps,
            fraction: percentage(&r, diag),
        })
    });
    let headers = m
        .children("headers")
        .iter()
        .filter_map(|h| header_matcher(h, diag))
        .collect();
    let upstream_clusters = match m.str("upstream_cluster").filter(|c| !c.is_empty()) {
        Some(cluster) => {
            if !clusters.iter().any(|c| c == cluster) {
                m.error(
                    diag,
                    "upstream_cluster",
                    format!("unknown cluster {cluster:?}"),
                );
            }
            vec![cluster.to_owned()]
        }
        None => Vec::new(),
    };
    let max_active = m
        .wrapped_uint("max_active_faults")
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    if delay.is_none() && abort.is_none() && response_rate.is_none() {
        return None;
    }
    Some(FaultPolicy {
        delay,
        abort,
        response_rate,
        headers,
        upstream_clusters,
        max_active,
    })
}

/// A fault's `percentage` (`FractionalPercent`); absent: 0 %, as in Envoy.
fn percentage(m: &Msg<'_, '_>, diag: &mut Diagnostics) -> Fraction {
    let Some(p) = m.child("percentage") else {
        return Fraction {
            numerator: 0,
            denominator: 100,
        };
    };
    p.only(diag, &["numerator", "denominator"]);
    let denominator = match p.enum_name("denominator").as_deref() {
        Some("TEN_THOUSAND") => 10_000,
        Some("MILLION") => 1_000_000,
        _ => 100,
    };
    Fraction {
        numerator: u32::try_from(p.uint("numerator")).unwrap_or(u32::MAX),
        denominator,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{errors, load};

    /// A bootstrap whose connection manager has the fault filter `filter` (its
    /// `typed_config` body, indented 14), a host with `host_extra` (indented 14) and two
    /// routes, the first with `route_extra` (indented 16), and the cluster `app`.
    fn bootstrap(filter: &str, host_extra: &str, route_extra: &str) -> String {
        let routes = format!(
            "              - match: {{ prefix: /own }}\n                route: {{ cluster: app }}\n{route_extra}              - match: {{ prefix: / }}\n                route: {{ cluster: app }}\n{host_extra}"
        );
        let filters = format!(
            "          - name: envoy.filters.http.fault\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n{filter}"
        );
        let app = "  - name: app\n    load_assignment: { cluster_name: app, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } } }] }] }\n";
        super::super::tests::listener_with("", &routes, &filters) + app
    }

    const FILTER: &str = r#"              abort:
                http_status: 503
                percentage: { numerator: 25, denominator: TEN_THOUSAND }
              delay:
                fixed_delay: 0.2s
              headers: [{ name: x-chaos, exact_match: "on" }]
              upstream_cluster: app
              max_active_faults: 7
              delay_percent_runtime: fault.delay
              disable_downstream_cluster_stats: true
"#;

    const PER_ROUTE: &str = r#"                typed_per_filter_config:
                  envoy.filters.http.fault:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
                    abort:
                      header_abort: {}
                      percentage: { numerator: 100 }
                    response_rate_limit:
                      fixed_limit: { limit_kbps: 50 }
                      percentage: { numerator: 100 }
"#;

    #[test]
    fn the_filter_and_a_per_route_override_map_onto_the_model() {
        let config = load(&bootstrap(FILTER, "", PER_ROUTE));
        let routes = &config.listeners[0].virtual_hosts[0].routes;
        let own = routes[0].fault.as_ref().expect("the route's own");
        let abort = own.abort.unwrap();
        assert_eq!((abort.status, abort.fraction.numerator), (None, 100));
        assert_eq!(own.response_rate.unwrap().kibps, Some(50));
        assert!(own.delay.is_none() && own.max_active.is_none());
        let filter = routes[1].fault.as_ref().expect("the filter's");
        let abort = filter.abort.unwrap();
        assert_eq!(abort.status, Some(503));
        assert_eq!(
            (abort.fraction.numerator, abort.fraction.denominator),
            (25, 10_000)
        );
        let delay = filter.delay.unwrap();
        assert_eq!(delay.fixed, Some(Duration::from_millis(200)));
        // No percentage: 0 %, as in Envoy.
        assert_eq!(delay.fraction.numerator, 0);
        assert_eq!(filter.headers.len(), 1);
        assert_eq!(filter.upstream_clusters, ["app"]);
        assert_eq!(filter.max_active, Some(7));
    }

    #[test]
    fn a_hosts_config_replaces_the_filters_and_an_empty_one_turns_faults_off() {
        let host: String = PER_ROUTE
            .lines()
            .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
            .collect();
        let off = "                typed_per_filter_config:\n                  envoy.filters.http.fault:\n                    \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n";
        let config = load(&bootstrap(FILTER, &host, off));
        let routes = &config.listeners[0].virtual_hosts[0].routes;
        assert!(routes[0].fault.is_none());
        let from_host = routes[1].fault.as_ref().expect("the host's");
        assert_eq!(from_host.response_rate.unwrap().kibps, Some(50));
    }

    #[test]
    fn unsupported_fields_are_refused_by_name() {
        let cases = [
            ("              abort: { grpc_status: 14 }\n", "grpc_status"),
            ("              downstream_nodes: [a]\n", "downstream_nodes"),
            ("              abort: { http_status: 600 }\n", "http_status"),
            (
                "              upstream_cluster: nope\n",
                "unknown cluster \"nope\"",
            ),
            (
                "              response_rate_limit: { percentage: { numerator: 1 } }\n",
                "`fixed_limit`, `header_limit` is required",
            ),
        ];
        for (filter, expected) in cases {
            let found = errors(&bootstrap(filter, "", ""));
            assert!(
                found
                    .iter()
                    .any(|e| e.contains(expected) && e.contains("envoy.yaml:")),
                "{filter}: {found:?}"
            );
        }
    }
}
