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
}

/// Envoy's response flags, as a bitset. The order of [`ResponseFlags::NAMES`] is Envoy's
/// print order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ResponseFlags(u16);

impl ResponseFlags {
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

    /// Every flag with its short name, in print order.
    pub const NAMES: [(ResponseFlags, &'static str); 13] = [
        (Self::NO_HEALTHY_UPSTREAM, "UH"),
        (Self::UPSTREAM_REQUEST_TIMEOUT, "UT"),
        (Self::LOCAL_RESET, "LR"),
        (Self::UPSTREAM_CONNECTION_FAILURE, "UF"),
        (Self::UPSTREAM_CONNECTION_TERMINATION, "UC"),
        (Self::UPSTREAM_OVERFLOW, "UO"),
        (Self::NO_ROUTE, "NR"),
        (Self::RATE_LIMITED, "RL"),
        (Self::DOWNSTREAM_CONNECTION_TERMINATION, "DC"),
        (Self::UPSTREAM_RETRY_LIMIT_EXCEEDED, "URX"),
        (Self::STREAM_IDLE_TIMEOUT, "SI"),
        (Self::DOWNSTREAM_PROTOCOL_ERROR, "DPE"),
        (Self::UPSTREAM_PROTOCOL_ERROR, "UPE"),
    ];

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
        assert_eq!(text(all), "UH,UT,LR,UF,UC,UO,NR,RL,DC,URX,SI,DPE,UPE");
    }
}
