//! The header-mutation filter: Envoy's `request_headers_to_add`/`_to_remove` and
//! `response_headers_to_add`/`_to_remove`, removals first, then additions, each in
//! config order. An addition with `append: false` replaces the fields of that name.
//!
//! Cost: each edit is an overlay entry (the added line, rendered when the chain is
//! compiled, is copied into the overlay's arena, whose capacity the connection keeps),
//! so steady state allocates nothing and no byte is checked again per request.

use super::{RequestHead, ResponseHead};
use crate::config;

/// One field to add, compiled.
#[derive(Debug)]
struct Add {
    /// `name: value\r\n`, rendered once: the name and value were checked when the
    /// config was read, so a request copies the line without checking it again.
    line: Box<[u8]>,
}

/// One side's edits, compiled.
#[derive(Debug, Default)]
struct Edits {
    /// Names whose received fields go: the removals and the replacing additions, so
    /// one pass over the received fields does all of it.
    strip: Box<[Box<[u8]>]>,
    add: Box<[Add]>,
}

impl Edits {
    fn compile(add: &[config::HeaderAdd], remove: &[String]) -> Self {
        Edits {
            strip: remove
                .iter()
                .map(String::as_str)
                .chain(add.iter().filter(|a| !a.append).map(|a| a.name.as_str()))
                .map(|n| n.as_bytes().into())
                .collect(),
            add: add
                .iter()
                .map(|a| Add {
                    line: format!("{}: {}\r\n", a.name, a.value).into_bytes().into(),
                })
                .collect(),
        }
    }
}

/// Header edits of a listener or a route.
#[derive(Debug)]
pub struct HeaderMutation {
    request: Edits,
    response: Edits,
}

impl HeaderMutation {
    /// Compiles the configured edits (names and values were checked at load).
    pub fn compile(m: &config::HeaderMutations) -> Self {
        HeaderMutation {
            request: Edits::compile(&m.request_add, &m.request_remove),
            response: Edits::compile(&m.response_add, &m.response_remove),
        }
    }

    /// A replacing addition removes the received fields of its name and adds its line
    /// (at the end of the head: field order between different names carries no meaning).
    pub(super) fn on_request(&self, head: &mut RequestHead<'_>) {
        if !self.request.strip.is_empty() {
            head.remove_any(&self.request.strip);
        }
        for add in self.request.add.iter() {
            head.append_line(&add.line);
        }
    }

    pub(super) fn on_response(&self, head: &mut ResponseHead<'_>) {
        if !self.response.strip.is_empty() {
            head.remove_any(&self.response.strip);
        }
        for add in self.response.add.iter() {
            head.append_line(&add.line);
        }
    }

    /// The response additions as header lines, for a reply ringway writes itself.
    pub(super) fn local_reply_headers(&self, out: &mut Vec<u8>) {
        for add in self.response.add.iter() {
            out.extend_from_slice(&add.line);
        }
    }
}
