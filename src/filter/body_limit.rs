//! The request body size limit: 413 above it. The first filter that sees body pieces.
//!
//! A declared length over the limit is refused from the head, before anything goes
//! upstream; a chunked body is counted as it streams and refused when the count passes
//! the limit (then the upstream connection, which has seen part of the body, is closed,
//! and the client gets the 413 unless the response has started). The limit is the
//! route's `max_request_body`, else the listener's: the route's replaces the listener's
//! (nginx's `client_max_body_size` per location), so it can be larger.

use super::RequestHead;
use crate::error::ErrorKind;

/// A compiled body limit.
#[derive(Debug)]
pub struct BodyLimit {
    max: u64,
}

impl BodyLimit {
    pub fn new(max: u64) -> Self {
        BodyLimit { max }
    }

    /// A declared length over the limit fails the request at once.
    pub(super) fn on_request(&self, head: &RequestHead<'_>) -> Result<(), ErrorKind> {
        match head.content_length() {
            Some(n) if n > self.max => Err(ErrorKind::RequestTooLarge),
            _ => Ok(()),
        }
    }

    /// `received` is the payload so far, this piece included.
    pub(super) fn on_request_body(&self, received: u64) -> Result<(), ErrorKind> {
        if received > self.max {
            Err(ErrorKind::RequestTooLarge)
        } else {
            Ok(())
        }
    }
}
