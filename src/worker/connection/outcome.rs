//! What a forwarded exchange ends with, as the connection loop reads it: the one type
//! the loop (`connection`) and the forwarding code (`forward`, `exchange`) share, in a
//! module of its own so that neither imports the other.

/// How the client connection goes on after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close: the response said `connection: close`, or its end is the connection's.
    Close,
    /// The upstream switched protocols (`101`): the connection becomes a tunnel.
    Tunnel,
}

/// A completed exchange.
#[derive(Debug, Clone, Copy)]
pub(super) struct Forwarded {
    pub next: Next,
    pub status: u16,
    /// Bytes sent to the client: the head and the body's payload (a chunked body's
    /// framing is not counted, as Envoy counts body bytes).
    pub sent: u64,
}
