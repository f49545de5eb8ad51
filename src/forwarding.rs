//! Forwarding headers: who the client is, and what the upstream is told about it.
//!
//! The trust model decides whether a peer may speak for someone else:
//! - nobody trusted (the default): the client is the peer; any `x-forwarded-for`,
//!   `x-forwarded-proto` or `x-request-id` it sent is replaced, so a client cannot choose
//!   the address that logs and rate limits will see;
//! - `hops: N`: N proxies stand in front of ringway; the client is the N-th address from
//!   the right of `x-forwarded-for` (Envoy's `xff_num_trusted_hops`); with fewer entries
//!   than N, the leftmost one;
//! - `cidrs`: a peer inside those networks is trusted; walking `x-forwarded-for` from the
//!   right, addresses inside the networks are skipped and the first one outside is the
//!   client (nginx's `real_ip_recursive`).
//!
//! A trusted peer's `x-forwarded-for` is kept and the peer appended; its
//! `x-forwarded-proto` and `x-request-id` are kept. A peer on a Unix-socket listener has
//! no address to append (see [`crate::peer`]) and only `hops` can trust it. Changes go into the request's overlay:
//! the received head is never edited in place.
//!
//! Cost: this runs for every proxied request, so nothing here goes through `fmt`: the
//! peer's address is rendered once per connection ([`IpText`]) and request ids are hex
//! encoded by hand (`fmt` machinery was about a tenth of ringway's user-space
//! instructions per request).

use std::{fmt::Write as _, net::IpAddr};

use crate::{config::ProxySettings, http1::Request, peer::Peer};

/// An IP address rendered as text, kept on the stack: a connection renders its peer once
/// instead of formatting it for every request.
#[derive(Clone, Copy)]
pub struct IpText {
    bytes: [u8; IpText::MAX],
    len: u8,
}

impl IpText {
    /// The longest IPv6 text (with an embedded IPv4 address).
    const MAX: usize = 45;

    /// No text: a peer without an address.
    pub const EMPTY: IpText = IpText {
        bytes: [0; IpText::MAX],
        len: 0,
    };

    pub fn new(ip: IpAddr) -> IpText {
        let mut text = IpText {
            bytes: [0; IpText::MAX],
            len: 0,
        };
        let _ = write!(text, "{ip}");
        text
    }

    /// The text's bytes, unchecked (where bytes do: `as_str` validates them).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        // Only `write_str` fills `bytes`, with whole `str`s.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let start = usize::from(self.len);
        let end = start + s.len();
        let room = self.bytes.get_mut(start..end).ok_or(std::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = u8::try_from(end).map_err(|_| std::fmt::Error)?;
        Ok(())
    }
}

/// Whether `peer` is a trusted proxy by the policy (the request controls it may send:
/// the fault filter's headers).
pub fn peer_trusted(trust: &crate::config::TrustedProxies, peer: Peer) -> bool {
    trust.hops > 0
        || peer
            .ip()
            .is_some_and(|ip| trust.cidrs.iter().any(|c| c.contains(ip)))
}

/// Applies the policy to `request` (whose head is `head`) from `peer` (`peer_text` is
/// its text), and returns the client address. `scratch` is a reused buffer; `random`
/// gives request ids.
pub fn apply(
    request: &mut Request,
    head: &[u8],
    (peer, peer_text, secure): (Peer, &IpText, bool),
    policy: &ProxySettings,
    random: &mut fastrand::Rng,
    scratch: &mut String,
) -> Peer {
    if let Some(envoy) = &policy.envoy {
        let settings = (policy, envoy);
        return crate::forwarding_envoy::apply(
            request,
            head,
            (peer, peer_text, secure),
            settings,
            random,
            scratch,
        );
    }
    let trust = &policy.trusted_proxies;
    let peer_trusted = trust.hops > 0
        || peer
            .ip()
            .is_some_and(|ip| trust.cidrs.iter().any(|c| c.contains(ip)));

    scratch.clear();
    // No field of that name's length (most requests): no pass over the fields.
    if request.may_have("x-forwarded-for".len()) {
        for (index, header) in request.headers.iter().enumerate() {
            if header.is(head, "x-forwarded-for") {
                let value = String::from_utf8_lossy(header.value(head));
                if peer_trusted && !value.trim().is_empty() {
                    if !scratch.is_empty() {
                        scratch.push_str(", ");
                    }
                    scratch.push_str(value.trim());
                }
                request.overlay.remove(index);
            }
        }
    }
    let client = if peer_trusted {
        client_from_chain(scratch, peer, trust.hops, &trust.cidrs)
    } else {
        peer
    };
    add_forwarded_for(request, scratch, peer.ip().map(|_| peer_text));

    let proto = request.header(head, "x-forwarded-proto").is_some();
    if !(peer_trusted && proto) {
        remove_all(request, head, "x-forwarded-proto");
        request.overlay.add_line(proto_line(secure));
    }

    if policy.request_id {
        let kept = peer_trusted
            && request
                .header(head, "x-request-id")
                .is_some_and(|v| !v.is_empty() && v.len() <= 128);
        if !kept {
            new_request_id(request, head, random);
        }
    }
    if let Some(via) = &policy.via {
        scratch.clear();
        scratch.push_str("1.1 ");
        scratch.push_str(via);
        // Checked when the config was read.
        request.overlay.add_unchecked(b"via", scratch.as_bytes());
    }
    client
}

/// Adds `x-forwarded-for`: the trusted `chain` received, then the peer (when it has an
/// address). The peer alone, the usual case, goes in as its text's bytes, with no
/// `String` between. The value is built from addresses and header text the parser
/// already checked (lossy UTF-8 only puts bytes above 0x7f in it): valid field bytes,
/// so it is not checked again (the check was most of this function's cost).
pub(crate) fn add_forwarded_for(request: &mut Request, chain: &mut String, peer: Option<&IpText>) {
    match peer {
        Some(peer) if chain.is_empty() => {
            request
                .overlay
                .add_unchecked(b"x-forwarded-for", peer.as_bytes());
            return;
        }
        Some(peer) => {
            chain.push_str(", ");
            chain.push_str(peer.as_str());
        }
        None if chain.is_empty() => return,
        None => {}
    }
    request
        .overlay
        .add_unchecked(b"x-forwarded-for", chain.as_bytes());
}

/// Replaces the request's `x-request-id` fields with a fresh id.
pub(crate) fn new_request_id(request: &mut Request, head: &[u8], random: &mut fastrand::Rng) {
    remove_all(request, head, "x-request-id");
    // Hex digits and dashes.
    request
        .overlay
        .add_unchecked(b"x-request-id", &request_id(random));
}

/// Marks every received field named `name` removed.
pub(crate) fn remove_all(request: &mut Request, head: &[u8], name: &str) {
    if !request.may_have(name.len()) {
        return;
    }
    for (index, header) in request.headers.iter().enumerate() {
        if header.is(head, name) {
            request.overlay.remove(index);
        }
    }
}

/// The client address from a trusted `x-forwarded-for` chain (`chain` excludes the peer).
fn client_from_chain(chain: &str, peer: Peer, hops: u32, cidrs: &[crate::config::Cidr]) -> Peer {
    // Right to left, without collecting: this runs per request.
    let mut entries = chain.rsplit(',').map(str::trim).filter(|e| !e.is_empty());
    if hops > 0 {
        let mut pick = None;
        for _ in 0..hops {
            match entries.next() {
                Some(entry) => pick = Some(entry),
                None => break,
            }
        }
        return pick.and_then(parse_entry).map_or(peer, Peer::Ip);
    }
    let mut client = peer;
    for entry in entries {
        match parse_entry(entry) {
            Some(ip) => {
                client = Peer::Ip(ip);
                if !cidrs.iter().any(|c| c.contains(ip)) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// An XFF entry: an IP, optionally with a port (`1.2.3.4:5`, `[::1]:5`).
pub(crate) fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

/// A random (version 4) UUID, lower-case hex (8-4-4-4-12). Its 32 digits at once
/// (`crate::hex`, SSE2 on x86-64), then placed around the dashes: this runs for every
/// request; a nibble at a time out of a `u128` cost about 550 instructions (callgrind),
/// a table of digit pairs a byte at a time about 70 more than this.
pub(crate) fn request_id(random: &mut fastrand::Rng) -> [u8; 36] {
    let hi = random.u64(..);
    let lo = random.u64(..);
    let hi = (hi & !0xf000) | 0x4000; // version 4
    let lo = (lo & !(0xc000 << 48)) | (0x8000 << 48); // RFC 4122 variant
    let digits = crate::hex::digits128([hi, lo]);
    let mut text = [b'-'; 36];
    text[..8].copy_from_slice(&digits[..8]);
    text[9..13].copy_from_slice(&digits[8..12]);
    text[14..18].copy_from_slice(&digits[12..16]);
    text[19..23].copy_from_slice(&digits[16..20]);
    text[24..].copy_from_slice(&digits[20..]);
    text
}

/// The head `request` (parsed from `head`) is forwarded as, for tests.
/// The `x-forwarded-proto` line for a connection: `https` over TLS.
pub(crate) fn proto_line(secure: bool) -> &'static [u8] {
    if secure {
        b"x-forwarded-proto: https\r\n"
    } else {
        b"x-forwarded-proto: http\r\n"
    }
}

#[cfg(test)]
pub(crate) fn written(request: &Request, head: &[u8]) -> String {
    let mut segments = Vec::new();
    request.write_head(&mut segments);
    let mut out = Vec::new();
    crate::http1::concat(&segments, head, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cidr, TrustedProxies};
    use crate::http1::{parse_request, HeadScanner, Limits, Request};

    fn run(raw: &str, peer: &str, trust: TrustedProxies) -> (String, IpAddr) {
        let (head, client) = run_from(raw, Peer::Ip(peer.parse().unwrap()), trust);
        (
            head,
            client.ip().expect("a TCP peer resolves to an address"),
        )
    }

    fn run_from(raw: &str, peer: Peer, trust: TrustedProxies) -> (String, Peer) {
        let limits = Limits::default();
        let head = raw.as_bytes();
        let len = HeadScanner::new().scan(head, &limits).unwrap().unwrap();
        let mut request = Request::new();
        parse_request(&head[..len], &limits, &mut request).unwrap();
        let policy = ProxySettings {
            trusted_proxies: trust,
            ..ProxySettings::default()
        };
        let client = apply(
            &mut request,
            head,
            (
                peer,
                &peer.ip().map(IpText::new).unwrap_or(IpText::EMPTY),
                false,
            ),
            &policy,
            &mut fastrand::Rng::with_seed(7),
            &mut String::new(),
        );
        (written(&request, head), client)
    }

    const SPOOFED: &str = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Request-Id: mine\r\n\r\n";

    #[test]
    fn a_unix_socket_peer_adds_no_address_and_only_hops_trust_it() {
        // Untrusted: the spoofed chain is dropped and nothing replaces it.
        let (head, client) = run_from(SPOOFED, Peer::Unix, TrustedProxies::default());
        assert_eq!(client, Peer::Unix);
        assert!(!head.contains("x-forwarded-for"), "{head}");
        assert!(head.contains("x-forwarded-proto: http\r\n"), "{head}");
        // CIDRs cannot match it.
        let cidrs = TrustedProxies {
            hops: 0,
            cidrs: vec![Cidr {
                network: "0.0.0.0".parse().unwrap(),
                prefix_len: 0,
            }],
        };
        let (head, client) = run_from(SPOOFED, Peer::Unix, cidrs);
        assert_eq!(client, Peer::Unix);
        assert!(!head.contains("6.6.6.6"), "{head}");
        // One trusted hop: the front proxy's chain is kept, without an entry for the peer.
        let hops = TrustedProxies {
            hops: 1,
            cidrs: Vec::new(),
        };
        let (head, client) = run_from(SPOOFED, Peer::Unix, hops);
        assert_eq!(client, Peer::Ip("6.6.6.6".parse().unwrap()));
        assert!(head.contains("x-forwarded-for: 6.6.6.6\r\n"), "{head}");
    }

    #[test]
    fn an_untrusted_client_cannot_choose_its_address() {
        let (head, client) = run(SPOOFED, "192.0.2.7", TrustedProxies::default());
        assert_eq!(client, "192.0.2.7".parse::<IpAddr>().unwrap());
        assert!(head.contains("x-forwarded-for: 192.0.2.7\r\n"), "{head}");
        assert!(!head.contains("6.6.6.6"), "{head}");
        assert!(head.contains("x-forwarded-proto: http\r\n"), "{head}");
        assert!(!head.contains("mine"), "{head}");
        assert!(head.contains("x-request-id: "), "{head}");
    }

    #[test]
    fn trusted_hops_pick_the_nth_address_from_the_right() {
        let raw = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nX-Request-Id: abc\r\n\r\n";
        let trust = TrustedProxies {
            hops: 1,
            cidrs: vec![],
        };
        let (head, client) = run(raw, "10.0.0.1", trust);
        assert_eq!(client, "2.2.2.2".parse::<IpAddr>().unwrap());
        assert!(
            head.contains("x-forwarded-for: 1.1.1.1, 2.2.2.2, 10.0.0.1\r\n"),
            "{head}"
        );
        assert!(head.contains("X-Request-Id: abc\r\n"), "{head}");
        let trust = TrustedProxies {
            hops: 2,
            cidrs: vec![],
        };
        assert_eq!(
            run(raw, "10.0.0.1", trust).1,
            "1.1.1.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_networks_are_walked_from_the_right() {
        let raw = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1, 10.0.0.9\r\n\r\n";
        let cidrs = vec![Cidr {
            network: "10.0.0.0".parse().unwrap(),
            prefix_len: 8,
        }];
        let trust = TrustedProxies {
            hops: 0,
            cidrs: cidrs.clone(),
        };
        let (_, client) = run(raw, "10.0.0.1", trust.clone());
        assert_eq!(client, "1.1.1.1".parse::<IpAddr>().unwrap());
        // A peer outside the networks is the client, whatever it claims.
        let (head, client) = run(raw, "192.0.2.1", trust);
        assert_eq!(client, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert!(head.contains("x-forwarded-for: 192.0.2.1\r\n"), "{head}");
    }

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = request_id(&mut fastrand::Rng::with_seed(1));
        let out = std::str::from_utf8(&id).unwrap();
        assert_eq!(&out[14..15], "4");
        assert!(matches!(&out[19..20], "8" | "9" | "a" | "b"), "{out}");
        // The same text `fmt` gives for the same bits, for many draws.
        let mut random = fastrand::Rng::with_seed(2);
        let mut reference = fastrand::Rng::with_seed(2);
        for _ in 0..1000 {
            let id = request_id(&mut random);
            let out = std::str::from_utf8(&id).unwrap();
            let hi = (reference.u64(..) & !0xf000) | 0x4000;
            let lo = (reference.u64(..) & !(0xc000 << 48)) | (0x8000 << 48);
            let expected = format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                hi >> 32,
                (hi >> 16) & 0xffff,
                hi & 0xffff,
                lo >> 48,
                lo & 0xffff_ffff_ffff
            );
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn ip_text_holds_the_longest_addresses() {
        for ip in [
            "255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
            "1111:2222:3333:4444:5555:6666:255.255.255.255",
            "::1",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new(parsed).as_str(), parsed.to_string());
        }
    }
}
