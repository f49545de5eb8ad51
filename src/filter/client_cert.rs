//! `x-forwarded-client-cert` on TLS listeners: Envoy's `forward_client_cert_details`
//! and `set_current_client_cert_details`, part of the fixed request stage.
//!
//! Sanitize (the default) removes what a client sent, so a client cannot claim another
//! identity; the other modes keep, append or replace it as Envoy's do. The element
//! describing this connection's client is built once per request from the identity the
//! handshake verified (`tls::identity`); requests on connections without a client
//! certificate get no element.

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
    match mode {
        ForwardClientCert::ForwardOnly | ForwardClientCert::AlwaysForwardOnly => return,
        ForwardClientCert::Sanitize => {
            view.remove(XFCC);
            return;
        }
        ForwardClientCert::AppendForward => {
            let Some(client) = client else {
                return;
            };
            if let Some(sent) = view.header("x-forwarded-client-cert") {
                scratch.push_str(&String::from_utf8_lossy(sent));
                scratch.push(',');
            }
            client.xfcc_element(by, details, scratch);
        }
        ForwardClientCert::SanitizeSet => {
            let Some(client) = client else {
                view.remove(XFCC);
                return;
            };
            client.xfcc_element(by, details, scratch);
        }
    }
    view.remove(XFCC);
    view.append_checked(XFCC, scratch.as_bytes());
}
