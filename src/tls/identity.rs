//! Who a client proved to be with its certificate: read once per connection, after the
//! handshake, for routes, logs and Envoy's `x-forwarded-client-cert`.

use rustls::pki_types::CertificateDer;

use crate::config::tls::{CertificateInfo, ClientCertDetails};

/// A verified client certificate, as the request path uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// SHA-256 of the end-entity certificate, lower-case hex.
    pub hash: String,
    /// Its subject (`CN=a,O=b`).
    pub subject: String,
    /// URI subject alt names (the SPIFFE ID of a workload).
    pub uris: Vec<String>,
    /// DNS subject alt names.
    pub dns: Vec<String>,
    /// The chain as PEM, end entity first (only kept when `x-forwarded-client-cert`
    /// asks for `Cert` or `Chain`).
    pub pem: Vec<String>,
}

impl PeerIdentity {
    /// Reads the identity off a verified chain; `keep_pem` keeps the PEM text.
    pub fn of(chain: &[CertificateDer<'_>], keep_pem: bool) -> Option<Self> {
        let end = chain.first()?;
        let info = CertificateInfo::parse(end).ok()?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, end);
        let pem = if keep_pem {
            chain.iter().map(|c| pem_text(c)).collect()
        } else {
            Vec::new()
        };
        Some(PeerIdentity {
            hash: hex(digest.as_ref()),
            subject: info.subject,
            uris: info.uris,
            dns: info.dns_names,
            pem,
        })
    }

    /// This certificate's element of `x-forwarded-client-cert`, in Envoy's order and
    /// quoting: `By=..;Hash=..;Cert="..";Chain="..";Subject="..";URI=..;DNS=..`.
    pub fn xfcc_element(&self, by: Option<&str>, details: ClientCertDetails, out: &mut String) {
        let mut first = true;
        let mut pair = |out: &mut String, key: &str, value: &str| {
            if !first {
                out.push(';');
            }
            first = false;
            out.push_str(key);
            out.push('=');
            push_value(out, value, matches!(key, "Subject" | "Cert" | "Chain"));
        };
        if let Some(by) = by {
            pair(out, "By", by);
        }
        pair(out, "Hash", &self.hash);
        if details.cert {
            if let Some(pem) = self.pem.first() {
                pair(out, "Cert", &url_encode(pem));
            }
        }
        if details.chain && !self.pem.is_empty() {
            pair(out, "Chain", &url_encode(&self.pem.concat()));
        }
        if details.subject {
            pair(out, "Subject", &self.subject);
        }
        if details.uri {
            // Envoy writes the first URI SAN (an empty value when there is none).
            pair(out, "URI", self.uris.first().map_or("", String::as_str));
        }
        if details.dns {
            for dns in &self.dns {
                pair(out, "DNS", dns);
            }
        }
    }
}

/// A value as Envoy writes it: double-quoted (with `"` and `\\` escaped) when it holds
/// `,`, `;`, `=` or `"`, or when `quote` says so (Subject, Cert and Chain). Characters a
/// header value cannot carry (controls such as CR and LF, which a certificate's subject
/// or names could hold) are percent-encoded, so no certificate can add a header line.
fn push_value(out: &mut String, value: &str, quote: bool) {
    let quote = quote || value.contains([',', ';', '=', '"']) || value.is_empty();
    if quote {
        out.push('"');
    }
    for c in value.chars() {
        if quote && (c == '"' || c == '\\') {
            out.push('\\');
        }
        if c.is_control() {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if quote {
        out.push('"');
    }
}

fn pem_text(der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Percent-encoding of everything but unreserved characters (RFC 3986), as Envoy
/// encodes the PEM in `Cert=`.
fn url_encode(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_only_when_they_must_be() {
        let mut out = String::new();
        push_value(&mut out, "spiffe://a/b", false);
        out.push('|');
        push_value(&mut out, "CN=client,O=\"x\"", false);
        out.push('|');
        push_value(&mut out, "CN=a\r\nx-evil: 1", true);
        assert_eq!(
            out,
            "spiffe://a/b|\"CN=client,O=\\\"x\\\"\"|\"CN=a%0D%0Ax-evil: 1\""
        );
    }

    #[test]
    fn base64_pads_like_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn url_encoding_keeps_unreserved_characters() {
        assert_eq!(url_encode("a-b_c.d~e f\n+/="), "a-b_c.d~e%20f%0A%2B%2F%3D");
    }
}
