//! The fixed stages of every chain: what ringway does to every request it forwards and
//! every response it relays, before the request-side filters and after the response-side
//! ones. They are not configurable filters because correctness depends on them (framing,
//! hop-by-hop fields, the trust policy of forwarding headers); the order is documented in
//! the module above.

use crate::{
    config::{ExpectContinue, ProxySettings},
    forwarding::{self, IpText},
    http1::{Request, Response},
    peer::Peer,
};

/// The request stage: hop-by-hop fields removed, forwarding headers (`x-forwarded-for`,
/// `x-forwarded-proto`, `x-request-id`, `via`) by the listener's trust policy, `Expect`
/// removed when ringway answers it itself, and Host set to an absolute-form target's
/// authority. Returns the client's address as the trust policy resolved it, and
/// whether the request is internal (only Envoy's rules make one so: it carries
/// `x-envoy-internal: true`).
pub fn upstream_request(
    request: &mut Request,
    head: &[u8],
    (peer, peer_text, secure): (Peer, &IpText, bool),
    proxy: &ProxySettings,
    random: &mut fastrand::Rng,
    scratch: &mut String,
) -> (Peer, bool) {
    request.strip_hop_by_hop(head);
    let resolved = match &proxy.envoy {
        // Listeners loaded from Envoy configs: Envoy's connection manager rules.
        Some(envoy) => crate::forwarding_envoy::resolve(
            request,
            head,
            (peer, peer_text, secure),
            (proxy, envoy),
            random,
            scratch,
        ),
        None => {
            let client = forwarding::apply(
                request,
                head,
                (peer, peer_text, secure),
                proxy,
                random,
                scratch,
            );
            (client, false)
        }
    };
    if request.expect_continue && proxy.expect_continue == ExpectContinue::Answer {
        for (index, header) in request.headers.iter().enumerate() {
            if header.is(head, "expect") {
                request.overlay.remove(index);
            }
        }
    }
    // An absolute-form target's authority overrides Host (RFC 9112 3.2.2); the upstream
    // gets an origin-form target, so Host must carry that authority.
    if let Some(authority) = request.host.map(|h| h.get(head)) {
        for (index, header) in request.headers.iter().enumerate() {
            if header.is(head, "host") && header.value(head) != authority {
                let _ = request.overlay.replace(index, b"host", authority);
            }
        }
    }
    resolved
}

/// Fields that name the upstream's software, besides `server`.
const UPSTREAM_IDENTITY: &[&str] = &["x-powered-by", "x-aspnet-version", "x-aspnetmvc-version"];

/// How the response goes to the client.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// Re-framed as chunked (the upstream sent chunked and the client reads it).
    pub chunked: bool,
    /// The connection closes after it.
    pub close: bool,
    /// Envoy's `x-envoy-upstream-service-time` (milliseconds from the end of the request
    /// to the upstream's response head), on listeners that add Envoy's headers.
    pub upstream_service_time: Option<std::time::Duration>,
}

/// The response stage, after the response-side filters, writing the response's header
/// section (the status line is already in `out`): `transfer-encoding: chunked`
/// when re-framed, `connection: close` when ringway closes, `date` when the upstream
/// sent none (RFC 9110 6.6.1), the listener's `server` and `via`, and, with
/// `hide_upstream_identity`, the upstream's `server` and `x-powered-by` removed. Hop-by-hop fields were
/// removed before the filters ran.
pub fn downstream_response(
    response: &mut Response,
    head: &[u8],
    delivery: Delivery,
    date_line: &[u8],
    proxy: &ProxySettings,
    out: &mut Vec<u8>,
) {
    // Envoy's `via`: appended to the upstream's, as written (Envoy listeners only).
    let envoy_via = match &proxy.envoy {
        Some(envoy) => envoy
            .via
            .as_deref()
            .map(|via| (via, upstream_via(response, head))),
        None => None,
    };
    // The upstream's own `server` stays when ours is only added in its absence.
    let mut upstream_server = false;
    if proxy.hide_upstream_identity || proxy.server_header.is_some() {
        let keep_server = proxy.server_header_if_absent && !proxy.hide_upstream_identity;
        for (index, header) in response.headers.iter().enumerate() {
            let server = header.is(head, "server");
            if server && keep_server {
                upstream_server = true;
                continue;
            }
            let identity = server
                || (proxy.hide_upstream_identity
                    && UPSTREAM_IDENTITY.iter().any(|name| header.is(head, name)));
            if identity {
                response.overlay.remove(index);
            }
        }
    }
    // The stage's own lines go straight into the write chunk after the fields: through
    // the overlay they would keep its arena allocated on every connection that ever
    // forwarded a response (the date line alone: about 80 bytes per idle connection).
    response.append_fields_then(head, out, |out| {
        if delivery.chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        if delivery.close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        if !response.has_date {
            out.extend_from_slice(date_line);
        }
        // Both checked when the config was read.
        if let Some(server) = proxy.server_header.as_ref().filter(|_| !upstream_server) {
            out.extend_from_slice(b"server: ");
            out.extend_from_slice(server.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(via) = &proxy.via {
            out.extend_from_slice(b"via: 1.1 ");
            out.extend_from_slice(via.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if envoy_via.is_some() || delivery.upstream_service_time.is_some() {
            envoy_lines(envoy_via, delivery.upstream_service_time, out);
        }
    });
}

/// The upstream's first `via` value, its fields removed (Envoy appends to it).
fn upstream_via<'h>(response: &mut Response, head: &'h [u8]) -> Option<&'h [u8]> {
    let mut first = None;
    for (index, header) in response.headers.iter().enumerate() {
        if header.is(head, "via") {
            first.get_or_insert(header.value(head));
            response.overlay.remove(index);
        }
    }
    first
}

/// The response lines only Envoy listeners add: `via` appended to the upstream's, and
/// `x-envoy-upstream-service-time`.
#[cold]
fn envoy_lines(
    via: Option<(&str, Option<&[u8]>)>,
    service_time: Option<std::time::Duration>,
    out: &mut Vec<u8>,
) {
    if let Some((via, upstream)) = via {
        out.extend_from_slice(b"via: ");
        if let Some(upstream) = upstream {
            out.extend_from_slice(upstream);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(via.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(elapsed) = service_time {
        out.extend_from_slice(b"x-envoy-upstream-service-time: ");
        push_decimal(out, u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `value` in decimal, without `fmt`.
fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}
