//! The header-mutation filter: Envoy's `request_headers_to_add`/`_to_remove` and
//! `response_headers_to_add`/`_to_remove`, removals first, then additions, each in
//! config order. An addition with `append: false` replaces the fields of that name.
//!
//! Cost: each edit is an overlay entry (the added line is copied into the overlay's
//! arena, whose capacity the connection keeps), so steady state allocates nothing.

use super::{RequestHead, ResponseHead};
use crate::config;

/// One field to add, compiled.
#[derive(Debug)]
struct Add {
    name: Box<[u8]>,
    value: Box<[u8]>,
    /// Beside fields of the same name, or replacing them.
    append: bool,
}

/// One side's edits, compiled.
#[derive(Debug, Default)]
struct Edits {
    remove: Box<[Box<[u8]>]>,
    add: Box<[Add]>,
}

impl Edits {
    fn compile(add: &[config::HeaderAdd], remove: &[String]) -> Self {
        Edits {
            remove: remove.iter().map(|n| n.as_bytes().into()).collect(),
            add: add
                .iter()
                .map(|a| Add {
                    name: a.name.as_bytes().into(),
                    value: a.value.as_bytes().into(),
                    append: a.append,
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

    pub(super) fn on_request(&self, head: &mut RequestHead<'_>) {
        for name in self.request.remove.iter() {
            head.remove(name);
        }
        for add in self.request.add.iter() {
            if add.append {
                head.append(&add.name, &add.value);
            } else {
                head.set(&add.name, &add.value);
            }
        }
    }

    pub(super) fn on_response(&self, head: &mut ResponseHead<'_>) {
        for name in self.response.remove.iter() {
            head.remove(name);
        }
        for add in self.response.add.iter() {
            if add.append {
                head.append(&add.name, &add.value);
            } else {
                head.set(&add.name, &add.value);
            }
        }
    }

    /// The response additions as header lines, for a reply ringway writes itself.
    pub(super) fn local_reply_headers(&self, out: &mut Vec<u8>) {
        for add in self.response.add.iter() {
            out.extend_from_slice(&add.name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(&add.value);
            out.extend_from_slice(b"\r\n");
        }
    }
}
