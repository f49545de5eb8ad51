//! `x-forwarded-client-cert` on TLS listeners: Envoy's `forward_client_cert_details`
//! and `set_current_client_cert_details`, part of the fixed request stage.
//!
//! Sanitize (the default) removes what a client sent, so a client cannot claim another
//! identity. As in Envoy, `forward_only`, `append_forward` and `sanitize_set` act only
//! when the client connection is mutual TLS (it presented a verified certificate): they
//! keep, append to or replace the header; on any other connection the header is
//! removed. `always_forward_only` passes it on whatever the connection. The element
//! describing this connection's client is built per request from the identity the
//! handshake verified (`tls::identity`).

use super::RequestHead;
use crate::config::tls::{ClientCertDetails, ForwardClientCert};
use crate::tls::identity::PeerIdentity;

const XFCC: &[u8] = b"x-forwarded-client-cert";

/// Applies `mode` to the request's `x-forwarded-client-cert`.
pub fn apply(
    view: &mut RequestHead<'_>,
    (mode, details): (ForwardClientCert, ClientCertDetails),
    client: Option<&PeerIdentity>,
    by: Option<&str>,
    scratch: &mut String,
) {
    scratch.clear();
    let client = match (mode, client) {
        (ForwardClientCert::AlwaysForwardOnly, _) => return,
        (ForwardClientCert::Sanitize, _) | (_, None) => {
            view.remove(XFCC);
            return;
        }
        (_, Some(client)) => client,
    };
    match mode {
        ForwardClientCert::ForwardOnly => return,
        ForwardClientCert::AppendForward => {
            if let Some(sent) = view.header("x-forwarded-client-cert") {
                scratch.push_str(&String::from_utf8_lossy(sent));
                scratch.push(',');
            }
        }
        _ => {}
    }
    client.xfcc_element(by, details, scratch);
    view.remove(XFCC);
    view.append_checked(XFCC, scratch.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{parse_request, Limits, Request};

    fn identity() -> PeerIdentity {
        PeerIdentity {
            hash: "ab12".into(),
            subject: "CN=web,O=acme".into(),
            uris: vec!["spiffe://td/ns/a/sa/web".into()],
            dns: vec!["web.a".into(), "web.b".into()],
            pem: Vec::new(),
        }
    }

    /// The forwarded value (or `None`) for `mode` on a request that carried `sent`.
    fn run(mode: ForwardClientCert, sent: Option<&str>, mtls: bool) -> Option<String> {
        let raw = match sent {
            Some(v) => format!("GET / HTTP/1.1\r\nHost: a\r\nx-forwarded-client-cert: {v}\r\n\r\n"),
            None => "GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_owned(),
        };
        let head = raw.as_bytes();
        let mut request = Request::new();
        parse_request(head, &Limits::default(), &mut request).unwrap();
        let details = ClientCertDetails {
            subject: true,
            uri: true,
            dns: true,
            ..ClientCertDetails::default()
        };
        let client = identity();
        let mut view = RequestHead::new(&mut request, head);
        let client = mtls.then_some(&client);
        apply(
            &mut view,
            (mode, details),
            client,
            Some("spiffe://td/ns/b/sa/api"),
            &mut String::new(),
        );
        let written = crate::forwarding::written(&request, head);
        written
            .lines()
            .find_map(|l| l.strip_prefix("x-forwarded-client-cert: "))
            .map(str::to_owned)
    }

    const ELEMENT: &str = "By=spiffe://td/ns/b/sa/api;Hash=ab12;Subject=\"CN=web,O=acme\";URI=spiffe://td/ns/a/sa/web;DNS=web.a;DNS=web.b";

    #[test]
    fn each_mode_does_what_envoys_does() {
        use ForwardClientCert::*;
        let sent = Some("By=x;Hash=y");
        // Mutual TLS.
        assert_eq!(run(Sanitize, sent, true), None);
        assert_eq!(run(ForwardOnly, sent, true).as_deref(), sent);
        assert_eq!(
            run(AppendForward, sent, true),
            Some(format!("By=x;Hash=y,{ELEMENT}"))
        );
        assert_eq!(run(AppendForward, None, true).as_deref(), Some(ELEMENT));
        assert_eq!(run(SanitizeSet, sent, true).as_deref(), Some(ELEMENT));
        assert_eq!(run(AlwaysForwardOnly, sent, true).as_deref(), sent);
        // No client certificate: only `always_forward_only` lets a sent value through.
        for mode in [Sanitize, ForwardOnly, AppendForward, SanitizeSet] {
            assert_eq!(run(mode, sent, false), None, "{mode:?}");
        }
        assert_eq!(run(AlwaysForwardOnly, sent, false).as_deref(), sent);
    }
}
