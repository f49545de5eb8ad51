//! Envoy's HTTP connection manager header processing, for listeners loaded from Envoy
//! configs: who the client is, `x-forwarded-for`, `x-forwarded-proto`, internal and
//! edge requests, `x-envoy-external-address`, the `x-envoy-*` request controls only an
//! internal peer may send, `x-request-id` and `via` (`shared/docs/envoy-compat.md` 3.1
//! and 3.2, from Envoy's `headers.rst` and `conn_manager_utility.cc`).
//!
//! Design: the same inputs and overlay edits as `forwarding` (the received head is never
//! edited in place), with Envoy's rules instead of ringway's trust policy:
//! - `use_remote_address: true`: the client is the peer, or the N-th address from the
//!   right of `x-forwarded-for` with `xff_num_trusted_hops: N`; the peer is appended to
//!   `x-forwarded-for` (unless `skip_xff_append`); `x-forwarded-proto` is set to `http`
//!   unless trusted hops sent one;
//! - `use_remote_address: false` (Envoy's default): `x-forwarded-for` is left as it is and
//!   the client is its last address (the (N+1)-th from the right with N trusted hops),
//!   else the peer; `x-forwarded-proto` is set only when absent.
//!
//! A request is internal when its client is in `internal_address_config` and it came
//! without `x-forwarded-for` (with `use_remote_address`), or with exactly that one
//! address (without). Envoy >= 1.36 trusts no address by default (CVE-2024-45806).
//! Internal requests get `x-envoy-internal: true`; the others lose the request-control
//! headers, and edge requests (external, `use_remote_address`) get
//! `x-envoy-external-address` and a fresh `x-request-id` (unless
//! `preserve_external_request_id`). The loopback-peer rule (Envoy appends its own local
//! address for a loopback peer) is not applied: the peer is appended as it is.

use crate::{
    config::{EnvoyForwarding, ProxySettings},
    forwarding::{add_forwarded_for, new_request_id, remove_all, IpText},
    http1::Request,
    peer::Peer,
};

/// Request headers only internal requests may carry (`cleanInternalHeaders`).
const INTERNAL_ONLY: &[&str] = &[
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-hedge-on-per-try-timeout",
];

/// Also removed from edge requests.
const EDGE_REMOVED: &[&str] = &[
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
];

/// Applies Envoy's rules to `request` from `peer`; returns the trusted client address.
pub fn apply(
    request: &mut Request,
    head: &[u8],
    peer: (Peer, &IpText, bool),
    settings: (&ProxySettings, &EnvoyForwarding),
    random: &mut fastrand::Rng,
    scratch: &mut String,
) -> Peer {
    resolve(request, head, peer, settings, random, scratch).0
}

/// [`apply`], also returning whether the request is internal (it then carries
/// `x-envoy-internal: true`, and Envoy's code stats count it under `internal.`).
pub fn resolve(
    request: &mut Request,
    head: &[u8],
    (peer, peer_text, secure): (Peer, &IpText, bool),
    (policy, envoy): (&ProxySettings, &EnvoyForwarding),
    random: &mut fastrand::Rng,
    scratch: &mut String,
) -> (Peer, bool) {
    let hops = policy.trusted_proxies.hops;
    // One pass over the received fields: the chain (every field joined), and whether
    // there is anything else to look at (most requests carry no `x-envoy-*` field).
    scratch.clear();
    let mut fields = 0;
    let (mut has_proto, mut has_id, mut envoy_fields) = (false, false, false);
    let mut has_client_cert = false;
    for header in &request.headers {
        let name = header.name(head);
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            let value = String::from_utf8_lossy(header.value(head));
            if !value.trim().is_empty() {
                if !scratch.is_empty() {
                    scratch.push_str(", ");
                }
                scratch.push_str(value.trim());
                fields += 1;
            }
        } else if name.eq_ignore_ascii_case(b"x-forwarded-proto") {
            has_proto = true;
        } else if name.eq_ignore_ascii_case(b"x-request-id") {
            has_id |= !header.value(head).is_empty();
        } else if name.eq_ignore_ascii_case(b"x-forwarded-client-cert") {
            has_client_cert = true;
        } else if name.len() > 8 && name[..8].eq_ignore_ascii_case(b"x-envoy-") {
            envoy_fields = true;
        }
    }
    // Envoy's `forward_client_cert_details` (SANITIZE by default) removes a client's
    // `x-forwarded-client-cert` on a connection without mutual TLS; on a TLS listener
    // the fixed stage (`filter::client_cert`) applies the configured mode instead.
    if has_client_cert && !secure {
        remove_all(request, head, "x-forwarded-client-cert");
    }
    let entries = scratch.split(',').filter(|e| !e.trim().is_empty()).count();
    let had_xff = fields > 0;
    let client = if envoy.use_remote_address {
        if hops > 0 {
            nth_from_right(scratch, hops).map_or(peer, Peer::Ip)
        } else {
            peer
        }
    } else {
        nth_from_right(scratch, hops + 1).map_or(peer, Peer::Ip)
    };
    if envoy.use_remote_address && !envoy.skip_xff_append && peer.ip().is_some() {
        remove_all(request, head, "x-forwarded-for");
        add_forwarded_for(request, scratch, Some(peer_text));
    }
    if !has_proto || (envoy.use_remote_address && hops == 0) {
        remove_all(request, head, "x-forwarded-proto");
        request
            .overlay
            .add_line(crate::forwarding::proto_line(secure));
    }
    let trusted_check = if envoy.use_remote_address {
        !had_xff
    } else {
        entries == 1
    };
    let internal = trusted_check
        && client
            .ip()
            .is_some_and(|ip| envoy.internal.iter().any(|c| c.contains(ip)));
    let edge = !internal && envoy.use_remote_address;
    if envoy_fields {
        // The client's own `x-envoy-internal` never counts; the request controls only
        // from internal peers; the external address is Envoy's to set.
        for (index, header) in request.headers.iter().enumerate() {
            let name = header.name(head);
            let is = |list: &[&str]| list.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()));
            let remove = name.eq_ignore_ascii_case(b"x-envoy-internal")
                || (!internal && is(INTERNAL_ONLY))
                || (edge && is(EDGE_REMOVED))
                || (edge && name.eq_ignore_ascii_case(b"x-envoy-external-address"));
            if remove {
                request.overlay.remove(index);
            }
        }
    }
    if internal {
        request.overlay.add_line(b"x-envoy-internal: true\r\n");
    }
    if let (true, Some(ip)) = (edge, client.ip()) {
        let text = IpText::new(ip);
        request
            .overlay
            .add_unchecked(b"x-envoy-external-address", text.as_str().as_bytes());
    }
    if policy.request_id {
        let fresh = edge && !envoy.preserve_external_request_id;
        if fresh || !has_id {
            new_request_id(request, head, random);
        }
    }
    if let Some(via) = &envoy.via {
        append_via(request, head, via, scratch);
    }
    (client, internal)
}

/// Whether [`apply`] finds the request from `peer` internal, for a decision made after
/// it (the fault filter's header controls, which Envoy neither strips nor checks: ringway
/// honours them from internal requests only). One pass over the received fields, no
/// allocation: with `use_remote_address`, no `x-forwarded-for` and an internal peer;
/// without, exactly one address there and that one (with trusted hops: the peer)
/// internal.
pub fn internal(
    request: &Request,
    head: &[u8],
    peer: Peer,
    hops: u32,
    envoy: &EnvoyForwarding,
) -> bool {
    let (mut entries, mut last) = (0usize, None);
    for header in request
        .headers
        .iter()
        .filter(|h| h.is(head, "x-forwarded-for"))
    {
        let value = String::from_utf8_lossy(header.value(head));
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            entries += 1;
            last = crate::forwarding::parse_entry(entry);
        }
    }
    let client = match (envoy.use_remote_address, entries, hops) {
        (true, 0, _) | (false, 1, 1..) => peer,
        (false, 1, 0) => last.map_or(Peer::Unix, Peer::Ip),
        _ => return false,
    };
    client
        .ip()
        .is_some_and(|ip| envoy.internal.iter().any(|c| c.contains(ip)))
}

/// Appends `value` to the request's `via` (`, `-separated), as Envoy does.
fn append_via(request: &mut Request, head: &[u8], value: &str, scratch: &mut String) {
    scratch.clear();
    for header in request.headers.iter().filter(|h| h.is(head, "via")) {
        scratch.push_str(&String::from_utf8_lossy(header.value(head)));
        scratch.push_str(", ");
    }
    scratch.push_str(value);
    remove_all(request, head, "via");
    // Received header text and a value checked when the config was read.
    request.overlay.add_unchecked(b"via", scratch.as_bytes());
}

/// The `n`-th address from the right of a chain (1 = the last), if it is an address.
fn nth_from_right(chain: &str, n: u32) -> Option<std::net::IpAddr> {
    let entry = chain
        .rsplit(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .nth(usize::try_from(n).ok()?.checked_sub(1)?)?;
    crate::forwarding::parse_entry(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cidr, TrustedProxies};
    use crate::http1::{parse_request, Limits};

    #[test]
    fn internal_agrees_with_what_apply_decides() {
        let xffs = [None, Some("10.0.0.2"), Some("203.0.113.7, 10.0.0.2")];
        for use_remote in [true, false] {
            let envoy = remote(use_remote, &["10.0.0.0/8"]);
            for (hops, peer, xff) in [0, 1].into_iter().flat_map(|hops| {
                ["10.0.0.1", "203.0.113.9"]
                    .into_iter()
                    .flat_map(move |peer| xffs.map(move |xff| (hops, peer, xff)))
            }) {
                let (head, _) = run(&envoy, hops, peer, xff);
                let raw = match xff {
                    Some(xff) => {
                        format!("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: {xff}\r\n\r\n")
                    }
                    None => "GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_owned(),
                };
                let mut request = Request::new();
                parse_request(raw.as_bytes(), &Limits::default(), &mut request).unwrap();
                let found = internal(&request, raw.as_bytes(), ip(peer), hops, &envoy);
                let case = format!("remote {use_remote}, hops {hops}, peer {peer}, xff {xff:?}");
                assert_eq!(found, head.contains("x-envoy-internal: true"), "{case}");
            }
        }
    }

    /// Envoy's `headers.rst` examples (1 to 6), with and without internal addresses.
    fn run(envoy: &EnvoyForwarding, hops: u32, peer: &str, xff: Option<&str>) -> (String, Peer) {
        let raw = match xff {
            Some(xff) => format!("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: {xff}\r\nX-Envoy-Retry-On: 5xx\r\n\r\n"),
            None => "GET / HTTP/1.1\r\nHost: a\r\nX-Envoy-Retry-On: 5xx\r\n\r\n".to_owned(),
        };
        let head = raw.as_bytes();
        let mut request = Request::new();
        parse_request(head, &Limits::default(), &mut request).unwrap();
        let policy = ProxySettings {
            trusted_proxies: TrustedProxies {
                hops,
                cidrs: Vec::new(),
            },
            ..ProxySettings::default()
        };
        let peer_ip: std::net::IpAddr = peer.parse().unwrap();
        let client = apply(
            &mut request,
            head,
            (Peer::Ip(peer_ip), &IpText::new(peer_ip), false),
            (&policy, envoy),
            &mut fastrand::Rng::with_seed(1),
            &mut String::new(),
        );
        (crate::forwarding::written(&request, head), client)
    }

    fn remote(use_remote_address: bool, internal: &[&str]) -> EnvoyForwarding {
        EnvoyForwarding {
            use_remote_address,
            internal: internal
                .iter()
                .map(|c| {
                    let (ip, len) = c.split_once('/').unwrap();
                    Cidr {
                        network: ip.parse().unwrap(),
                        prefix_len: len.parse().unwrap(),
                    }
                })
                .collect(),
            ..EnvoyForwarding::default()
        }
    }

    fn ip(text: &str) -> Peer {
        Peer::Ip(text.parse().unwrap())
    }

    #[test]
    fn a_forwarded_client_cert_is_sanitized_on_connections_without_mutual_tls() {
        let raw =
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Client-Cert: URI=spiffe://forged\r\n\r\n";
        for secure in [false, true] {
            let head = raw.as_bytes();
            let mut request = Request::new();
            parse_request(head, &Limits::default(), &mut request).unwrap();
            let peer: std::net::IpAddr = "192.0.2.5".parse().unwrap();
            apply(
                &mut request,
                head,
                (Peer::Ip(peer), &IpText::new(peer), secure),
                (&ProxySettings::default(), &remote(true, &[])),
                &mut fastrand::Rng::with_seed(1),
                &mut String::new(),
            );
            let written = crate::forwarding::written(&request, head).to_ascii_lowercase();
            // Over TLS the listener's mode decides (`filter::client_cert`).
            assert_eq!(
                written.contains("x-forwarded-client-cert"),
                secure,
                "{written}"
            );
            let proto = if secure { "https" } else { "http" };
            assert!(written.contains(&format!("x-forwarded-proto: {proto}\r\n")));
        }
    }

    #[test]
    fn envoys_worked_examples() {
        // 1: remote, no hops: the peer is the client, and is appended.
        let (head, client) = run(
            &remote(true, &[]),
            0,
            "192.0.2.5",
            Some("203.0.113.128, 203.0.113.10, 203.0.113.1"),
        );
        assert_eq!(client, ip("192.0.2.5"));
        assert!(
            head.contains(
                "x-forwarded-for: 203.0.113.128, 203.0.113.10, 203.0.113.1, 192.0.2.5\r\n"
            ),
            "{head}"
        );
        assert!(
            head.contains("x-envoy-external-address: 192.0.2.5\r\n"),
            "{head}"
        );
        assert!(
            !head.contains("x-envoy-internal") && !head.contains("X-Envoy-Retry-On"),
            "{head}"
        );
        assert!(head.contains("x-request-id: "), "{head}");
        // 2: not remote, no hops: the last address; the chain is left alone.
        let (head, client) = run(
            &remote(false, &[]),
            0,
            "10.11.12.13",
            Some("203.0.113.128, 203.0.113.10, 203.0.113.1, 192.0.2.5"),
        );
        assert_eq!(client, ip("192.0.2.5"));
        assert!(
            head.contains(
                "X-Forwarded-For: 203.0.113.128, 203.0.113.10, 203.0.113.1, 192.0.2.5\r\n"
            ),
            "{head}"
        );
        assert!(!head.contains("x-envoy-external-address"), "{head}");
        // 3: remote, two hops.
        let (head, client) = run(
            &remote(true, &[]),
            2,
            "192.0.2.5",
            Some("203.0.113.128, 203.0.113.10, 203.0.113.1"),
        );
        assert_eq!(client, ip("203.0.113.10"));
        assert!(
            head.contains(
                "x-forwarded-for: 203.0.113.128, 203.0.113.10, 203.0.113.1, 192.0.2.5\r\n"
            ),
            "{head}"
        );
        assert!(
            head.contains("x-envoy-external-address: 203.0.113.10\r\n"),
            "{head}"
        );
        // 4: not remote, two hops: the third from the right.
        let (_, client) = run(
            &remote(false, &[]),
            2,
            "10.11.12.13",
            Some("203.0.113.128, 203.0.113.10, 203.0.113.1, 192.0.2.5"),
        );
        assert_eq!(client, ip("203.0.113.10"));
        // 5: not remote, no chain: the peer; not internal.
        let (head, client) = run(&remote(false, &["10.0.0.0/8"]), 0, "10.20.30.40", None);
        assert_eq!(client, ip("10.20.30.40"));
        assert!(
            !head.contains("x-envoy-internal") && !head.contains("x-forwarded-for"),
            "{head}"
        );
        // 6: not remote, one internal address: internal only when configured (1.36).
        let (head, _) = run(&remote(false, &[]), 0, "10.20.30.50", Some("10.20.30.40"));
        assert!(
            !head.contains("x-envoy-internal") && !head.contains("X-Envoy-Retry-On"),
            "{head}"
        );
        let (head, client) = run(
            &remote(false, &["10.0.0.0/8"]),
            0,
            "10.20.30.50",
            Some("10.20.30.40"),
        );
        assert_eq!(client, ip("10.20.30.40"));
        assert!(
            head.contains("x-envoy-internal: true\r\n") && head.contains("X-Envoy-Retry-On: 5xx"),
            "{head}"
        );
        // Remote, no chain, internal peer: internal, request controls kept.
        let (head, _) = run(&remote(true, &["192.0.2.0/24"]), 0, "192.0.2.5", None);
        assert!(
            head.contains("x-envoy-internal: true\r\n") && head.contains("X-Envoy-Retry-On: 5xx"),
            "{head}"
        );
        assert!(!head.contains("x-envoy-external-address"), "{head}");
    }
}
