//! What one access-log line says about one request, and the response flags.
//!
//! Design: a [`LogEntry`] borrows everything (method and target bytes from the
//! connection, names from the snapshot), so recording a request copies nothing until the
//! formatter appends the line to the worker's batch. [`ResponseFlags`] is a `u16` bitset
//! with Envoy's short names (`%RESPONSE_FLAGS%`), so tools that read Envoy's access log
//! read ours; several flags are joined with `,` as Envoy does, and none is `-`.
//!
//! Which flags ringway sets today: `NR` (no route: 404), `UH` (a route to a cluster, which
//! has no reachable upstream until proxying exists: 503), `DPE` (the request broke
//! HTTP/1.1: 400/413/414/431/501/505) and `DC` (the client went away before the answer
//! was sent). The others are defined for the upstream layer and rate limiting, which set
//! them when they arrive. `LR` keeps Envoy's meaning (the proxy reset the connection);
//! a direct response has no flag, as in Envoy: its upstream is `-`.

use std::time::{Duration, SystemTime};

use crate::http1::{line_value, Edit, Request};
use crate::peer::Peer;

/// One request, as the access log records it.
#[derive(Debug, Clone, Copy)]
pub struct LogEntry<'a> {
    /// When the request's first byte was seen.
    pub start: SystemTime,
    /// From `start` until the answer was written (or the request was abandoned).
    pub duration: Duration,
    /// The listener's name.
    pub listener: &'a str,
    /// The client's IP address.
    pub client: Peer,
    /// The request method as received; empty when the head could not be parsed.
    pub method: &'a [u8],
    /// The raw request target as received; empty when the head could not be parsed.
    pub path: &'a [u8],
    /// `HTTP/1.1`, `HTTP/1.0`, or `-` when the head could not be parsed.
    pub protocol: &'static str,
    /// The status sent; 0 when no answer was sent.
    pub status: u16,
    /// Head and body bytes read for this request.
    pub bytes_received: u64,
    /// Bytes of the answer written to the client.
    pub bytes_sent: u64,
    /// The upstream endpoint's address, when the request went to one.
    pub upstream: Option<&'a str>,
    /// What went wrong, if anything.
    pub flags: ResponseFlags,
    /// Who authentication found the client to be: the API consumer's name, else the
    /// verified token's `sub`.
    pub consumer: Option<&'a str>,
    /// The request's route name, when it has one.
    pub route: Option<&'a str>,
    /// The request's trace context, on a listener that traces.
    pub trace: Option<TraceIds>,
    /// Upstream attempts made (0: none).
    pub attempts: u32,
    /// What Envoy's command operators print beyond the fields above.
    pub details: Details<'a>,
}

/// A request's trace and span ids, for `%TRACE_ID%` and the JSON format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    pub trace_id: u128,
    /// A 64-bit trace id (B3), printed as 16 hex digits.
    pub short: bool,
    pub span_id: u64,
}

impl TraceIds {
    /// Appends the trace id in lower hex.
    pub fn append_trace_id(&self, out: &mut Vec<u8>) {
        let mut hex = [0u8; 32];
        out.extend_from_slice(
            crate::trace::context::trace_id_hex(self.trace_id, self.short, &mut hex).as_bytes(),
        );
    }

    /// Appends the span id in lower hex.
    pub fn append_span_id(&self, out: &mut Vec<u8>) {
        let mut hex = [0u8; 16];
        out.extend_from_slice(
            crate::trace::context::span_id_hex(self.span_id, &mut hex).as_bytes(),
        );
    }
}

/// The parts of a request only Envoy format strings print (`access_log::envoy`); the
/// native formats ignore them, and a connection fills only what its format asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Details<'a> {
    /// The client as the trust policy resolved it, and its port (0 when it came from
    /// `x-forwarded-for`) (`%DOWNSTREAM_REMOTE_ADDRESS%`); `None`: the entry's `client`.
    pub remote: Option<(Peer, u16)>,
    /// The TCP peer and its port (`%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%`).
    pub direct: Option<(Peer, u16)>,
    /// The address the client connected to (`%DOWNSTREAM_LOCAL_ADDRESS%`).
    pub local: Option<std::net::SocketAddr>,
    /// The matched route's name.
    pub route: Option<&'a str>,
    /// The cluster the request was routed to.
    pub cluster: Option<&'a str>,
    /// `x-envoy-upstream-service-time`: from the end of the request to the upstream's
    /// response head.
    pub upstream_service_time: Option<Duration>,
    /// From the request's first byte to its last, when it completed.
    pub request_duration: Option<Duration>,
    /// From the request's first byte to the upstream's response head, when one came.
    pub response_duration: Option<Duration>,
    /// The request header values the format prints.
    pub headers: Option<&'a Captured>,
    /// The response header values the format prints, as sent to the client.
    pub response_headers: Option<&'a Captured>,
    /// The connection's TLS facts, on a TLS connection.
    pub tls: Option<&'a TlsDetails>,
    /// The request's and the response's head bytes, within `bytes_received` and
    /// `bytes_sent`: Envoy's `%BYTES_RECEIVED%` and `%BYTES_SENT%` count bodies alone.
    pub heads: (u64, u64),
}

/// What the access log prints about a TLS connection (read once per connection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsDetails {
    /// The server name the client sent.
    pub sni: Option<Box<str>>,
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// The client certificate's URI SANs, comma-separated (empty without one).
    pub peer_uri_san: Box<str>,
    /// Its DNS SANs, comma-separated.
    pub peer_dns_san: Box<str>,
    /// Its subject.
    pub peer_subject: Box<str>,
    /// Its SHA-256, hex.
    pub peer_fingerprint_256: Box<str>,
    /// Our certificate's URI SAN (`By=` of `x-forwarded-client-cert`).
    pub local_uri_san: Box<str>,
}

/// Request header values kept for the access log: one slot per name the format prints
/// (`Captured::get(i)` for the format's i-th name), in one reusable buffer.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    bytes: Vec<u8>,
    spans: Vec<Option<(u32, u32)>>,
}

impl Captured {
    /// Forgets every value, keeping capacity, with `slots` empty slots.
    pub fn reset(&mut self, slots: usize) {
        self.bytes.clear();
        self.spans.clear();
        self.spans.resize(slots, None);
    }

    /// Sets slot `i` (a later value replaces the earlier one).
    pub fn set(&mut self, i: usize, value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        let span = u32::try_from(start)
            .ok()
            .zip(u32::try_from(self.bytes.len()).ok());
        if let Some(slot) = self.spans.get_mut(i) {
            *slot = span;
        }
    }

    /// Keeps, for each of `names` (lower case; `:authority` is the request's authority),
    /// the first value `request` has as it will be forwarded: the overlay's replacement
    /// of a received field, the first received field it did not remove, else the first
    /// it added. One pass over the received fields, then the added ones.
    pub fn capture(&mut self, names: &[String], head: &[u8], request: &Request) {
        self.reset(names.len());
        let slot = |name: &[u8]| {
            names.iter().position(|n| {
                let n = if n == ":authority" {
                    "host"
                } else {
                    n.as_str()
                };
                n.as_bytes().eq_ignore_ascii_case(name)
            })
        };
        for (index, header) in request.headers.iter().enumerate() {
            let Some(i) = slot(header.name(head)) else {
                continue;
            };
            if self.get(i).is_some() {
                continue;
            }
            match request.overlay.edit(index) {
                None => self.set(i, header.value(head)),
                Some(Edit::Remove) => {}
                Some(Edit::Replace(line)) => self.set(i, line_value(request.overlay.line(line))),
            }
        }
        for block in request.overlay.added() {
            // A block may hold several lines (a compiled set of edits).
            for line in block.split(|&b| b == b'\n') {
                let Some(colon) = line.iter().position(|&b| b == b':') else {
                    continue;
                };
                if let Some(i) = slot(&line[..colon]) {
                    if self.get(i).is_none() {
                        self.set(i, line_value(line));
                    }
                }
            }
        }
        // An HTTP/1.0 absolute-form target's authority, when there is no Host field.
        let authority = names.iter().position(|n| n == ":authority");
        if let (Some(i), Some(host)) = (authority, request.host) {
            if self.get(i).is_none() {
                self.set(i, host.get(head));
            }
        }
    }

    /// Sets the slots of `names` that `lines` (header lines `name: value\r\n`, as
    /// written upstream) carry, replacing what was captured: the trace context an
    /// attempt injected (`worker::request_log::RequestLog::injected`).
    pub fn set_from_lines(&mut self, names: &[String], lines: &[u8]) {
        for line in lines.split(|&b| b == b'\n') {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = &line[..colon];
            if let Some(i) = names
                .iter()
                .position(|n| n.as_bytes().eq_ignore_ascii_case(name))
            {
                self.set(i, line_value(line));
            }
        }
    }

    /// Keeps, for each of `names` (lower case), the first value a response head
    /// (`head`: its status line, then `name: value\r\n` lines, up to the blank line; a
    /// body after it is not read) carries.
    pub fn capture_head(&mut self, names: &[String], head: &[u8]) {
        self.reset(names.len());
        for line in head.split(|&b| b == b'\n').skip(1) {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                // The blank line (or a malformed one: the head is ours): the end.
                break;
            };
            let name = &line[..colon];
            if let Some(i) = names
                .iter()
                .position(|n| n.as_bytes().eq_ignore_ascii_case(name))
            {
                if self.get(i).is_none() {
                    self.set(i, line_value(line));
                }
            }
        }
    }

    /// Slot `i`'s value; `None` when the request had no such header.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let (start, end) = (*self.spans.get(i)?)?;
        self.bytes.get(start as usize..end as usize)
    }
}

/// Envoy's response flags, as a bitset. The order of [`ResponseFlags::NAMES`] is Envoy's
/// print order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ResponseFlags(u32);

impl ResponseFlags {
    /// The flags as bits (spans carry them to the exporter, which prints them).
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Flags from [`Self::bits`].
    pub const fn from_bits(bits: u32) -> ResponseFlags {
        ResponseFlags(bits)
    }

    /// No flag: printed as `-`.
    pub const NONE: ResponseFlags = ResponseFlags(0);
    /// `UH`: no healthy upstream host in the cluster.
    pub const NO_HEALTHY_UPSTREAM: ResponseFlags = ResponseFlags(1 << 0);
    /// `UT`: the upstream request timed out.
    pub const UPSTREAM_REQUEST_TIMEOUT: ResponseFlags = ResponseFlags(1 << 1);
    /// `LR`: the connection was reset by ringway (Envoy's "local reset").
    pub const LOCAL_RESET: ResponseFlags = ResponseFlags(1 << 2);
    /// `UF`: connecting to the upstream failed.
    pub const UPSTREAM_CONNECTION_FAILURE: ResponseFlags = ResponseFlags(1 << 3);
    /// `UC`: the upstream connection ended before the response did.
    pub const UPSTREAM_CONNECTION_TERMINATION: ResponseFlags = ResponseFlags(1 << 4);
    /// `UO`: upstream overflow (a circuit breaker was open).
    pub const UPSTREAM_OVERFLOW: ResponseFlags = ResponseFlags(1 << 5);
    /// `NR`: no route matched.
    pub const NO_ROUTE: ResponseFlags = ResponseFlags(1 << 6);
    /// `RL`: rate limited.
    pub const RATE_LIMITED: ResponseFlags = ResponseFlags(1 << 7);
    /// `DC`: the downstream (client) connection ended before the answer was sent.
    pub const DOWNSTREAM_CONNECTION_TERMINATION: ResponseFlags = ResponseFlags(1 << 8);
    /// `URX`: the retry limit was reached.
    pub const UPSTREAM_RETRY_LIMIT_EXCEEDED: ResponseFlags = ResponseFlags(1 << 9);
    /// `DPE`: the request broke the HTTP protocol.
    pub const DOWNSTREAM_PROTOCOL_ERROR: ResponseFlags = ResponseFlags(1 << 10);
    /// `UPE`: the upstream's response broke the HTTP protocol.
    pub const UPSTREAM_PROTOCOL_ERROR: ResponseFlags = ResponseFlags(1 << 11);
    /// `SI`: no read or write of the stream completed within `stream_idle_timeout`.
    pub const STREAM_IDLE_TIMEOUT: ResponseFlags = ResponseFlags(1 << 12);
    /// `LH`: a health check answered 503 while `/healthcheck/fail` holds.
    pub const FAILED_LOCAL_HEALTH_CHECK: ResponseFlags = ResponseFlags(1 << 13);
    /// `DI`: the fault filter delayed the request.
    pub const DELAY_INJECTED: ResponseFlags = ResponseFlags(1 << 14);
    /// `FI`: the fault filter aborted the request.
    pub const FAULT_INJECTED: ResponseFlags = ResponseFlags(1 << 15);
    /// `DT`: the request's `max_stream_duration` passed.
    pub const DURATION_TIMEOUT: ResponseFlags = ResponseFlags(1 << 16);

    /// Every flag with its short name, in print order.
    pub const NAMES: [(ResponseFlags, &'static str); 17] = [
        (Self::FAILED_LOCAL_HEALTH_CHECK, "LH"),
        (Self::NO_HEALTHY_UPSTREAM, "UH"),
        (Self::UPSTREAM_REQUEST_TIMEOUT, "UT"),
        (Self::LOCAL_RESET, "LR"),
        (Self::UPSTREAM_CONNECTION_FAILURE, "UF"),
        (Self::UPSTREAM_CONNECTION_TERMINATION, "UC"),
        (Self::UPSTREAM_OVERFLOW, "UO"),
        (Self::NO_ROUTE, "NR"),
        (Self::DELAY_INJECTED, "DI"),
        (Self::FAULT_INJECTED, "FI"),
        (Self::RATE_LIMITED, "RL"),
        (Self::DOWNSTREAM_CONNECTION_TERMINATION, "DC"),
        (Self::UPSTREAM_RETRY_LIMIT_EXCEEDED, "URX"),
        (Self::STREAM_IDLE_TIMEOUT, "SI"),
        (Self::DOWNSTREAM_PROTOCOL_ERROR, "DPE"),
        (Self::DURATION_TIMEOUT, "DT"),
        (Self::UPSTREAM_PROTOCOL_ERROR, "UPE"),
    ];

    /// Envoy's long names (`%RESPONSE_FLAGS_LONG%`), in the order of [`Self::NAMES`].
    pub const LONG_NAMES: [&'static str; 17] = [
        "FailedLocalHealthCheck",
        "NoHealthyUpstream",
        "UpstreamRequestTimeout",
        "LocalReset",
        "UpstreamConnectionFailure",
        "UpstreamConnectionTermination",
        "UpstreamOverflow",
        "NoRouteFound",
        "DelayInjected",
        "FaultInjected",
        "RateLimited",
        "DownstreamConnectionTermination",
        "UpstreamRetryLimitExceeded",
        "StreamIdleTimeout",
        "DownstreamProtocolError",
        "DurationTimeout",
        "UpstreamProtocolError",
    ];

    /// Appends the long names joined with `,`, or `-` when none is set.
    pub fn append_long_to(self, out: &mut Vec<u8>) {
        if self.is_empty() {
            out.push(b'-');
            return;
        }
        let mut first = true;
        for ((flag, _), long) in Self::NAMES.iter().zip(Self::LONG_NAMES) {
            if self.contains(*flag) {
                if !first {
                    out.push(b',');
                }
                out.extend_from_slice(long.as_bytes());
                first = false;
            }
        }
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: ResponseFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Appends the short names joined with `,`, or `-` when none is set.
    pub fn append_to(self, out: &mut Vec<u8>) {
        if self.is_empty() {
            out.push(b'-');
            return;
        }
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    out.push(b',');
                }
                out.extend_from_slice(name.as_bytes());
                first = false;
            }
        }
    }
}

impl std::ops::BitOr for ResponseFlags {
    type Output = ResponseFlags;

    fn bitor(self, other: ResponseFlags) -> ResponseFlags {
        ResponseFlags(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for ResponseFlags {
    fn bitor_assign(&mut self, other: ResponseFlags) {
        self.0 |= other.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{parse_request, Limits};

    fn text(flags: ResponseFlags) -> String {
        let mut out = Vec::new();
        flags.append_to(&mut out);
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn flags_print_envoy_short_names_in_order() {
        assert_eq!(text(ResponseFlags::NONE), "-");
        assert_eq!(text(ResponseFlags::NO_ROUTE), "NR");
        let both = ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR | ResponseFlags::NO_HEALTHY_UPSTREAM;
        assert_eq!(text(both), "UH,DPE");
        assert!(both.contains(ResponseFlags::NO_HEALTHY_UPSTREAM));
        assert!(!both.contains(ResponseFlags::NO_ROUTE));
        let mut all = ResponseFlags::NONE;
        for (flag, _) in ResponseFlags::NAMES {
            all |= flag;
        }
        assert_eq!(
            text(all),
            "LH,UH,UT,LR,UF,UC,UO,NR,DI,FI,RL,DC,URX,SI,DPE,DT,UPE"
        );
    }

    #[test]
    fn captured_values_are_the_forwarded_ones() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\nX-B: 3\r\n\r\n";
        let mut request = Request::new();
        parse_request(head, &Limits::default(), &mut request).unwrap();
        request.overlay.replace(1, b"x-a", b"9").unwrap();
        request.overlay.remove(2);
        request.overlay.add(b"x-c", b"new").unwrap();
        request.overlay.add_line(b"x-d: one\r\nx-e: two\r\n");
        let names: Vec<String> = ["x-a", "x-b", "x-c", "x-e", "x-z", ":authority"]
            .iter()
            .map(|n| n.to_string())
            .collect();
        let mut captured = Captured::default();
        captured.capture(&names, head, &request);
        let values: Vec<Option<&[u8]>> = (0..names.len()).map(|i| captured.get(i)).collect();
        assert_eq!(
            values,
            [
                Some(&b"9"[..]),
                Some(&b"3"[..]),
                Some(&b"new"[..]),
                Some(&b"two"[..]),
                None,
                Some(&b"a"[..])
            ]
        );
    }
}
