//! Envoy's `HealthCheck` (a cluster's `health_checks` entry) onto
//! `config::HealthCheck`: HTTP/1.1 and TCP checks.
//!
//! Design: fields map one to one with Envoy's defaults (`no_traffic_interval` 60 s,
//! `GET`, expected status 200, the cluster's name as `Host`). `timeout`, `interval`,
//! `unhealthy_threshold` and `healthy_threshold` are required by Envoy's validation
//! rules, which report a missing one before the mapping runs; a threshold of 0 is
//! refused here. `reuse_connection` (default true) keeps each host's check connection
//! as Envoy does (`health::probe`). Refused by name, with the reason: gRPC and
//! custom checks, `alt_port`, `event_log_path`, `transport_socket_match_criteria`, an
//! HTTP check's `codec_client_type` other than HTTP1, and header values with `%`
//! formatters; the other fields ringway lacks (`send`/`receive` of an HTTP check,
//! `service_name_matcher`, `tls_options`, `event_logger`, ...) by the cursor's rule.
//! `response_buffer_size` is accepted: it bounds the body kept for `receive`, which is
//! refused, so it has nothing to bound.

use super::cursor::Msg;
use crate::config::balance::{decode_hex, HealthCheck, HealthCheckKind, HttpCheck, TcpCheck};
use crate::config::decode_balance::{check_host, check_path};
use crate::config::decode_headers::check_field_name;
use crate::config::error::Diagnostics;

/// Fields refused with a reason of their own.
const REFUSED: &[(&str, &str)] = &[
    ("grpc_health_check", "gRPC health checks are not supported yet (ringway has no HTTP/2 upstreams)"),
    ("custom_health_check", "custom health checkers are not supported yet (HTTP and TCP are)"),
    ("alt_port", "alt_port is not supported yet (use the endpoints' health_check_config.port_value)"),
    ("event_log_path", "event_log_path is not supported yet (health transitions are logged to ringway's log)"),
    (
        "transport_socket_match_criteria",
        "transport_socket_match_criteria is not supported yet (checks use the cluster's transport socket)",
    ),
];

pub(crate) fn health_check(hc: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<HealthCheck> {
    let mut allowed = vec![
        "timeout",
        "interval",
        "initial_jitter",
        "interval_jitter",
        "interval_jitter_percent",
        "unhealthy_threshold",
        "healthy_threshold",
        "reuse_connection",
        "http_health_check",
        "tcp_health_check",
        "no_traffic_interval",
        "no_traffic_healthy_interval",
        "unhealthy_interval",
        "unhealthy_edge_interval",
        "healthy_edge_interval",
        "always_log_health_check_failures",
    ];
    allowed.extend(REFUSED.iter().map(|(field, _)| *field));
    hc.only(diag, &allowed);
    let mut ok = true;
    for (field, reason) in REFUSED {
        if hc.has(field) {
            hc.error(diag, field, *reason);
            ok = false;
        }
    }
    let threshold = |field: &str, diag: &mut Diagnostics| {
        let value = hc.wrapped_uint(field)?;
        if value == 0 {
            hc.error(diag, field, format!("{field} must be at least 1"));
            return None;
        }
        Some(u32::try_from(value).unwrap_or(u32::MAX))
    };
    let unhealthy_threshold = threshold("unhealthy_threshold", diag);
    let healthy_threshold = threshold("healthy_threshold", diag);
    let kind = if let Some(h) = hc.child("http_health_check") {
        http_check(&h, diag).map(HealthCheckKind::Http)
    } else if let Some(t) = hc.child("tcp_health_check") {
        tcp_check(&t, diag).map(HealthCheckKind::Tcp)
    } else {
        // A gRPC or custom check (refused above), or none (Envoy's rules report it).
        None
    };
    let check = HealthCheck {
        // Required (and positive) by Envoy's validation rules, which report a missing one.
        timeout: hc.duration("timeout")?,
        interval: hc.duration("interval")?,
        interval_jitter: hc.duration("interval_jitter").unwrap_or_default(),
        interval_jitter_percent: u32::try_from(hc.uint("interval_jitter_percent"))
            .unwrap_or(u32::MAX),
        initial_jitter: hc.duration("initial_jitter").unwrap_or_default(),
        unhealthy_threshold: unhealthy_threshold?,
        healthy_threshold: healthy_threshold?,
        no_traffic_interval: hc
            .duration("no_traffic_interval")
            .unwrap_or(HealthCheck::DEFAULT_NO_TRAFFIC_INTERVAL),
        no_traffic_healthy_interval: hc.duration("no_traffic_healthy_interval"),
        unhealthy_interval: hc.duration("unhealthy_interval"),
        unhealthy_edge_interval: hc.duration("unhealthy_edge_interval"),
        healthy_edge_interval: hc.duration("healthy_edge_interval"),
        always_log_failures: hc.bool("always_log_health_check_failures"),
        // A `BoolValue`, true when absent.
        reuse_connection: hc.wrapped_bool("reuse_connection").unwrap_or(true),
        kind: kind?,
    };
    ok.then_some(check)
}

fn http_check(h: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<HttpCheck> {
    h.only(
        diag,
        &[
            "host",
            "path",
            "response_buffer_size",
            "request_headers_to_add",
            "request_headers_to_remove",
            "expected_statuses",
            "retriable_statuses",
            "codec_client_type",
            "method",
        ],
    );
    let mut ok = true;
    if let Some(codec) = h.enum_name("codec_client_type").filter(|c| c != "HTTP1") {
        h.error(
            diag,
            "codec_client_type",
            format!(
                "codec_client_type {codec} is not supported yet (health checks speak HTTP/1.1)"
            ),
        );
        ok = false;
    }
    // Required (non-empty) by Envoy's validation rules.
    let path = h.str("path")?;
    if let Err(message) = check_path(path) {
        h.error(diag, "path", message);
        ok = false;
    }
    let host = h.str("host").map(str::to_owned);
    if let Some(Err(message)) = host.as_deref().map(check_host) {
        h.error(diag, "host", message);
        ok = false;
    }
    let method = match h.enum_name("method").as_deref() {
        None | Some("METHOD_UNSPECIFIED") => "GET".to_owned(),
        // Envoy's validation rules refuse it (`not_in`), which ringway's rule checker
        // does not read for enums.
        Some("CONNECT") => {
            h.error(diag, "method", "a health check cannot use CONNECT");
            ok = false;
            "CONNECT".to_owned()
        }
        Some(m) => m.to_owned(),
    };
    let mut request_headers = Vec::new();
    for option in h.children("request_headers_to_add") {
        // How a field is added makes no difference on a request ringway builds.
        option.only(
            diag,
            &["header", "append", "append_action", "keep_empty_value"],
        );
        let Some(header) = option.child("header") else {
            option.error(diag, "header", "`header` is required");
            ok = false;
            continue;
        };
        header.only(diag, &["key", "value"]);
        let name = header.str("key").unwrap_or_default();
        let value = header.str("value").unwrap_or_default();
        if let Err(message) = check_field_name(name) {
            header.error(diag, "key", message);
            ok = false;
        } else if value.contains('%') {
            header.error(
                diag,
                "value",
                "`%` formatters in health-check headers are not supported yet (values are sent as written)",
            );
            ok = false;
        } else {
            request_headers.push((name.to_ascii_lowercase(), value.to_owned()));
        }
    }
    let remove_headers = h
        .strings("request_headers_to_remove")
        .into_iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let expected_statuses = match statuses(h, "expected_statuses", diag) {
        Some(list) if list.is_empty() => HttpCheck::DEFAULT_EXPECTED_STATUSES.to_vec(),
        Some(list) => list,
        None => {
            ok = false;
            Vec::new()
        }
    };
    let retriable_statuses = statuses(h, "retriable_statuses", diag).unwrap_or_else(|| {
        ok = false;
        Vec::new()
    });
    let check = HttpCheck {
        host,
        path: path.to_owned(),
        method,
        expected_statuses,
        retriable_statuses,
        request_headers,
        remove_headers,
    };
    ok.then_some(check)
}

/// `Int64Range`s of statuses: Envoy's rule is 100 <= start < end <= 600.
fn statuses(h: &Msg<'_, '_>, field: &str, diag: &mut Diagnostics) -> Option<Vec<(u16, u16)>> {
    let mut out = Vec::new();
    let mut ok = true;
    for range in h.children(field) {
        range.only(diag, &["start", "end"]);
        let (start, end) = (range.int("start"), range.int("end"));
        let valid = (100..600).contains(&start) && start < end && end <= 600;
        match (u16::try_from(start), u16::try_from(end)) {
            (Ok(start), Ok(end)) if valid => out.push((start, end)),
            _ => {
                range.error(
                    diag,
                    "start",
                    format!("a status range is [start, end) with 100 <= start < end <= 600, found [{start}, {end})"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn tcp_check(t: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<TcpCheck> {
    t.only(diag, &["send", "receive"]);
    let send = match t.child("send") {
        Some(p) => payload(&p, diag)?,
        None => Vec::new(),
    };
    let mut receive = Vec::new();
    for p in t.children("receive") {
        receive.push(payload(&p, diag)?);
    }
    Some(TcpCheck { send, receive })
}

/// A `Payload`: hex `text` or `binary` bytes.
fn payload(p: &Msg<'_, '_>, diag: &mut Diagnostics) -> Option<Vec<u8>> {
    p.only(diag, &["text", "binary"]);
    if let Some(text) = p.str("text") {
        return match decode_hex(text) {
            Ok(bytes) => Some(bytes),
            Err(message) => {
                p.error(diag, "text", message);
                None
            }
        };
    }
    // An empty payload is refused by Envoy's validation rules (a required oneof).
    Some(p.bytes("binary").map(<[u8]>::to_vec).unwrap_or_default())
}
