//! Message framing: Content-Length and Transfer-Encoding (RFC 9112 6).
//!
//! Request smuggling lives in the gap between two parsers' framing decisions, so this
//! module accepts only messages whose length every conforming parser agrees on:
//!
//! * Content-Length must be one header holding `1*DIGIT` that fits a u64. Lists are
//!   rejected, even `5, 5` which RFC 9110 8.6 allows a recipient to collapse: no
//!   legitimate client sends one, and rejecting it removes a whole class of
//!   disagreements. Leading zeros are valid `1*DIGIT` and accepted.
//! * Transfer-Encoding is understood only as exactly `chunked` (the proxy removes the
//!   header and re-frames the body, so any other coding would be lost in transit).
//!   A coding we do not know is 501 (RFC 9112 6.1); `chunked` repeated, not last, or
//!   absent is 400 (6.3 item 4); a known coding besides chunked (`gzip, chunked`) is 501.
//!   Several Transfer-Encoding headers are one list, in order.
//! * Both headers together are 400 (6.3 item 3 lets a server drop Content-Length; we
//!   refuse instead), and Transfer-Encoding in an HTTP/1.0 message is 400 (6.1).

use super::error::{ErrorKind, ParseError};
use super::header::{is_token, list_items};

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFraming {
    /// No body.
    #[default]
    None,
    /// Exactly this many bytes follow the head.
    ContentLength(u64),
    /// A chunked body follows the head.
    Chunked,
}

/// Content-Length value: plain decimal digits fitting a u64.
pub(crate) fn parse_content_length(value: &[u8]) -> Result<u64, ParseError> {
    if value.is_empty() {
        return Err(ErrorKind::InvalidContentLength.into());
    }
    value.iter().try_fold(0u64, |acc, &b| {
        let digit = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            _ => return Err(ErrorKind::InvalidContentLength.into()),
        };
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(digit))
            .ok_or(ParseError::new(ErrorKind::InvalidContentLength))
    })
}

/// Collects the framing headers of one head, then decides.
#[derive(Debug, Default)]
pub(crate) struct FramingHeaders {
    content_length: Option<u64>,
    transfer_encoding: bool,
    /// `chunked` was the last coding seen so far.
    chunked_last: bool,
    chunked_seen: bool,
    /// A known coding other than chunked was listed.
    other_coding: bool,
    /// A coding after `chunked`, or chunked twice.
    misordered: bool,
}

impl FramingHeaders {
    pub(crate) fn content_length(&mut self, value: &[u8]) -> Result<(), ParseError> {
        if self.content_length.is_some() {
            return Err(ErrorKind::MultipleContentLength.into());
        }
        self.content_length = Some(parse_content_length(value)?);
        Ok(())
    }

    pub(crate) fn transfer_encoding(&mut self, value: &[u8]) -> Result<(), ParseError> {
        self.transfer_encoding = true;
        for coding in list_items(value) {
            if !is_token(coding) {
                // Parameters (`;q=...`) are not allowed on any coding we know.
                return Err(ErrorKind::InvalidTransferEncoding.into());
            }
            if self.chunked_seen {
                self.misordered = true;
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.chunked_seen = true;
                self.chunked_last = true;
            } else if is_known_coding(coding) {
                self.other_coding = true;
                self.chunked_last = false;
            } else {
                return Err(ErrorKind::UnsupportedTransferCoding.into());
            }
        }
        Ok(())
    }

    /// The framing, or why it is ambiguous. `http10`: the message is HTTP/1.0.
    /// Returns `Ok(None)` when neither header is present (the caller decides what
    /// that means for its side).
    pub(crate) fn finish(&self, http10: bool) -> Result<Option<BodyFraming>, ParseError> {
        if self.transfer_encoding {
            if self.content_length.is_some() {
                return Err(ErrorKind::ContentLengthWithTransferEncoding.into());
            }
            if http10 {
                return Err(ErrorKind::TransferEncodingOnHttp10.into());
            }
            if self.misordered || !self.chunked_last {
                return Err(ErrorKind::InvalidTransferEncoding.into());
            }
            if self.other_coding {
                return Err(ErrorKind::UnsupportedTransferCoding.into());
            }
            return Ok(Some(BodyFraming::Chunked));
        }
        Ok(self.content_length.map(BodyFraming::ContentLength))
    }
}

fn is_known_coding(c: &[u8]) -> bool {
    ["gzip", "x-gzip", "deflate", "compress", "x-compress"]
        .iter()
        .any(|k| c.eq_ignore_ascii_case(k.as_bytes()))
}

/// Counts down a Content-Length body. The proxy forwards whatever part of each read
/// belongs to the body as a slice of the receive buffer; nothing is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentLengthBody {
    remaining: u64,
}

impl ContentLengthBody {
    /// A body of `len` bytes.
    pub fn new(len: u64) -> Self {
        ContentLengthBody { remaining: len }
    }

    /// Of `available` received bytes, how many belong to the body (the rest is the
    /// next message). Counts them as consumed.
    pub fn take(&mut self, available: usize) -> usize {
        let n = self.remaining.min(available as u64);
        self.remaining -= n;
        // n <= available, so the cast back cannot truncate.
        n as usize
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether the whole body was taken.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn te(values: &[&str], http10: bool) -> Result<Option<BodyFraming>, u16> {
        let mut f = FramingHeaders::default();
        for v in values {
            f.transfer_encoding(v.as_bytes()).map_err(|e| e.status())?;
        }
        f.finish(http10).map_err(|e| e.status())
    }

    #[test]
    fn content_length_values() {
        assert_eq!(parse_content_length(b"0"), Ok(0));
        assert_eq!(parse_content_length(b"007"), Ok(7));
        assert_eq!(parse_content_length(b"18446744073709551615"), Ok(u64::MAX));
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"+5",
            b"-5",
            b"0x5",
            b"5 5",
            b"5,5",
            b"a",
        ] {
            assert!(parse_content_length(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn duplicate_content_length() {
        let mut f = FramingHeaders::default();
        f.content_length(b"5").unwrap();
        assert_eq!(
            f.content_length(b"5").unwrap_err().kind(),
            ErrorKind::MultipleContentLength
        );
    }

    #[test]
    fn transfer_encoding_rules() {
        assert_eq!(te(&["chunked"], false), Ok(Some(BodyFraming::Chunked)));
        assert_eq!(te(&["CHUNKED"], false), Ok(Some(BodyFraming::Chunked)));
        assert_eq!(te(&[", chunked"], false), Ok(Some(BodyFraming::Chunked)));
        assert_eq!(te(&["chunked", "chunked"], false), Err(400));
        assert_eq!(te(&["chunked, gzip"], false), Err(400));
        assert_eq!(te(&["gzip"], false), Err(400));
        assert_eq!(te(&["gzip, chunked"], false), Err(501));
        assert_eq!(te(&["foo, chunked"], false), Err(501));
        assert_eq!(te(&["chunked;q=1"], false), Err(400));
        assert_eq!(te(&[""], false), Err(400));
        assert_eq!(te(&["chunked"], true), Err(400));
    }

    #[test]
    fn both_headers() {
        let mut f = FramingHeaders::default();
        f.content_length(b"5").unwrap();
        f.transfer_encoding(b"chunked").unwrap();
        assert_eq!(
            f.finish(false).unwrap_err().kind(),
            ErrorKind::ContentLengthWithTransferEncoding
        );
    }

    #[test]
    fn content_length_body() {
        let mut b = ContentLengthBody::new(10);
        assert_eq!(b.take(4), 4);
        assert_eq!(b.take(100), 6);
        assert!(b.is_done());
        assert_eq!(b.take(5), 0);
    }
}
