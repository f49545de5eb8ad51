//! `/certs`: every certificate the serving config presents or trusts, in Envoy's
//! `admin.v3.Certificates` JSON, and `server.days_until_first_cert_expiring`.

use serde_json::{json, Value};

use crate::config::tls::{CertContext, CertificateInfo};

/// The body of `/certs`.
pub(super) fn render(contexts: &[CertContext], now: i64) -> String {
    let certificates: Vec<Value> = contexts
        .iter()
        .map(|c| {
            json!({
                "ca_cert": c.ca_cert.iter().map(|(p, d)| details(p, d, now)).collect::<Vec<_>>(),
                "cert_chain": c.cert_chain.iter().map(|(p, d)| details(p, d, now)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut body =
        serde_json::to_string_pretty(&json!({ "certificates": certificates })).unwrap_or_default();
    body.push('\n');
    body
}

/// Whole days until the first of `contexts`' certificates expires (0 once one has);
/// `None` without certificates.
pub fn days_until_first_expiring(contexts: &[CertContext], now: i64) -> Option<u64> {
    contexts
        .iter()
        .flat_map(|c| c.cert_chain.iter().chain(&c.ca_cert))
        .filter_map(|(_, der)| CertificateInfo::parse(der).ok())
        .map(|info| u64::try_from((info.not_after - now) / 86_400).unwrap_or(0))
        .min()
}

fn details(path: &str, der: &[u8], now: i64) -> Value {
    let Ok(info) = CertificateInfo::parse(der) else {
        return json!({ "path": path });
    };
    let mut sans: Vec<Value> = Vec::new();
    sans.extend(info.dns_names.iter().map(|d| json!({ "dns": d })));
    sans.extend(info.uris.iter().map(|u| json!({ "uri": u })));
    sans.extend(
        info.ips
            .iter()
            .map(|ip| json!({ "ip_address": ip.to_string() })),
    );
    let days = u64::try_from((info.not_after - now) / 86_400).unwrap_or(0);
    json!({
        "path": path,
        "serial_number": info.serial,
        "subject_alt_names": sans,
        // uint64 in proto3 JSON: a string.
        "days_until_expiration": days.to_string(),
        "valid_from": rfc3339(info.not_before),
        "expiration_time": rfc3339(info.not_after),
    })
}

fn rfc3339(unix: i64) -> String {
    let time =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    let mut out = Vec::new();
    crate::access_log::timestamp::append_rfc3339_millis(time, &mut out);
    // Envoy prints whole seconds (`2026-12-05T10:00:00Z`).
    String::from_utf8(out)
        .unwrap_or_default()
        .replace(".000Z", "Z")
}
