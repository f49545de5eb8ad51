//! Who is at the other end of a client connection.
//!
//! A TCP peer has an IP address; a peer on a Unix-socket listener has none (it is a
//! process on this machine, usually unnamed). Code that needs an address (forwarding
//! headers, trust, logs, later rate-limit keys) says what it does without one instead of
//! inventing a loopback address: `x-forwarded-for` gets no entry for it (as Envoy does
//! for a non-IP remote address), CIDR trust cannot match it (only `hops` trusts it), and
//! logs print `unix:` (nginx's `$remote_addr` for such a client).

use std::net::IpAddr;

/// A connection's peer, or the client the trust policy resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP peer.
    Ip(IpAddr),
    /// A peer on a Unix-socket listener.
    Unix,
}

impl Peer {
    /// Its IP address, if it has one.
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Peer::Ip(ip) => Some(ip),
            Peer::Unix => None,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Ip(ip) => write!(f, "{ip}"),
            Peer::Unix => f.write_str("unix:"),
        }
    }
}
