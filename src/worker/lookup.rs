//! The router's view of an HTTP/1 request's headers.
//!
//! The router is protocol-agnostic and asks for headers through `HeaderLookup`; this
//! adapter answers from the parsed head's spans, so a lookup is a scan of the (short)
//! header table comparing names in place: nothing is copied or lower-cased. It lives with
//! the worker rather than in `http1` so the codec stays free of router types.

use crate::{http1, router::HeaderLookup};

/// A parsed request and the head bytes its spans point into.
#[derive(Debug, Clone, Copy)]
pub struct Http1Headers<'a> {
    pub request: &'a http1::Request,
    pub head: &'a [u8],
    /// The connection's verified client certificate, if any.
    pub client: Option<&'a crate::tls::identity::PeerIdentity>,
}

impl HeaderLookup for Http1Headers<'_> {
    /// Also answers Envoy's pseudo-headers `:method`, `:authority` and `:path` (the
    /// target as received), so route conditions can name them.
    fn get(&self, name: &str) -> Option<&[u8]> {
        if let Some(pseudo) = name.strip_prefix(':') {
            return match pseudo {
                "method" => Some(self.request.method_span.get(self.head)),
                "authority" => self.request.host.map(|h| h.get(self.head)),
                "path" => Some(self.request.path.get(self.head)),
                _ => None,
            };
        }
        self.request
            .headers
            .iter()
            .find(|h| h.name.get(self.head).eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| h.value.get(self.head))
    }

    fn client_certificate(&self) -> Option<&crate::tls::identity::PeerIdentity> {
        self.client
    }
}
