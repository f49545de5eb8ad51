//! The header-mutation filter: Envoy's `request_headers_to_add`/`_to_remove` and
//! `response_headers_to_add`/`_to_remove`, removals first, then additions, each in
//! config order. An addition with `append: false` replaces the fields of that name.
//! Envoy's conditional additions (`ADD_IF_ABSENT`, `OVERWRITE_IF_EXISTS`) look for a
//! field of their name when they come (received and kept, or added before them).
//!
//! Cost: each edit is an overlay entry (the added line, rendered when the chain is
//! compiled, is copied into the overlay's arena, whose capacity the connection keeps),
//! so steady state allocates nothing and no byte is checked again per request.

use super::{RequestHead, RequestState, ResponseHead};
use crate::config::{
    self,
    format::{self, Piece, Side, Var},
};

/// One field to add, compiled.
#[derive(Debug)]
enum Add {
    /// `name: value\r\n`, rendered once: the name and value were checked when the
    /// config was read, so a request copies the line without checking it again.
    /// Consecutive plain additions share one block of lines.
    Line(Box<[u8]>),
    /// A value with variables, rendered per message (`config::format`).
    Rendered {
        name: Box<[u8]>,
        pieces: Box<[Part]>,
    },
    /// An addition made only when a field named `name` is there (`present`: it then
    /// replaces them) or is not.
    Only {
        name: Box<[u8]>,
        present: bool,
        add: Box<Add>,
    },
}

/// A compiled piece of a value with variables.
#[derive(Debug)]
enum Part {
    Text(Box<[u8]>),
    Var(Var),
}

impl Add {
    fn compile(add: &config::HeaderAdd, side: Side, route_name: &str) -> Add {
        let plain = Add::compile_value(add, side, route_name);
        let present = match add.only_if {
            config::AddOnlyIf::Always => return plain,
            config::AddOnlyIf::Absent => false,
            config::AddOnlyIf::Present => true,
        };
        Add::Only {
            name: add.name.as_bytes().into(),
            present,
            add: Box::new(plain),
        }
    }

    /// The pieces of a value with variables, rendered before the edits apply.
    fn pieces(&self) -> Option<&[Part]> {
        match self {
            Add::Line(_) => None,
            Add::Rendered { pieces, .. } => Some(pieces),
            Add::Only { add, .. } => add.pieces(),
        }
    }

    fn compile_value(add: &config::HeaderAdd, side: Side, route_name: &str) -> Add {
        // What is known when the chain is compiled becomes text.
        let pieces: Vec<Piece> = format::parse(&add.value, side)
            .unwrap_or_default()
            .into_iter()
            .map(|p| match p {
                Piece::Var(Var::Hostname) => Piece::Text(hostname()),
                Piece::Var(Var::RouteName) => Piece::Text(route_name.to_owned()),
                other => other,
            })
            .collect();
        if !pieces.iter().any(|p| matches!(p, Piece::Var(_))) {
            // Plain text (`%%` already unescaped into it).
            let text: String = pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Text(t) => Some(t.as_str()),
                    Piece::Var(_) => None,
                })
                .collect();
            return Add::Line(format!("{}: {}\r\n", add.name, text).into_bytes().into());
        }
        let parts = pieces
            .into_iter()
            .map(|p| match p {
                Piece::Text(t) => Part::Text(t.into_bytes().into()),
                Piece::Var(v) => Part::Var(v),
            })
            .collect();
        Add::Rendered {
            name: add.name.as_bytes().into(),
            pieces: parts,
        }
    }
}

/// The addition to make of `add` for a head whose fields `fields` finds: itself, its
/// inner one when its condition holds (an overwrite then removes the received fields
/// of its name), or none.
fn applies<'a>(add: &'a Add, fields: &mut super::head::Fields<'_, '_>) -> Option<&'a Add> {
    match add {
        Add::Only { name, present, add } => {
            if fields.has(name) != *present {
                return None;
            }
            if *present {
                fields.remove(name);
            }
            Some(add)
        }
        add => Some(add),
    }
}

/// Whether `lines` (`name: value\r\n` lines, after a status line or not) hold a
/// field named `name`.
fn has_line(lines: &[u8], name: &[u8]) -> bool {
    lines.split(|&b| b == b'\n').any(|line| names(line, name))
}

/// Removes the fields named `name` from `lines`; whether there was one.
fn take_lines(lines: &mut Vec<u8>, name: &[u8]) -> bool {
    // Compacted in place (no second buffer): kept lines move down over taken ones.
    let (mut read, mut write, mut found) = (0, 0, false);
    while read < lines.len() {
        let end = lines[read..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(lines.len(), |i| read + i + 1);
        if names(&lines[read..end], name) {
            found = true;
        } else {
            lines.copy_within(read..end, write);
            write += end - read;
        }
        read = end;
    }
    lines.truncate(write);
    found
}

/// Whether `line` is a field named `name`.
fn names(line: &[u8], name: &[u8]) -> bool {
    line.len() > name.len()
        && line[name.len()] == b':'
        && line[..name.len()].eq_ignore_ascii_case(name)
}

/// This machine's name (Envoy's `%HOSTNAME%`).
fn hostname() -> String {
    crate::process::hostname().to_owned()
}

/// What a rendered value may draw on besides the request state.
enum Source<'h, 'a> {
    Request(&'h RequestHead<'a>),
    Response(&'h ResponseHead<'a>),
    /// A reply ringway writes itself.
    Local,
}

fn render(parts: &[Part], source: &Source<'_, '_>, state: &RequestState, out: &mut Vec<u8>) {
    use std::io::Write as _;
    for part in parts {
        match part {
            Part::Text(t) => out.extend_from_slice(t),
            Part::Var(Var::ClientAddress) => {
                if let Some(ip) = state.client.ip() {
                    let _ = write!(out, "{ip}");
                }
            }
            Part::Var(Var::ClientAddressWithPort) => {
                if let Some(ip) = state.client.ip() {
                    let _ = write!(out, "{}", std::net::SocketAddr::new(ip, state.client_port));
                }
            }
            Part::Var(Var::RequestHeader(name)) => {
                if let Source::Request(head) = source {
                    out.extend_from_slice(head.header(name).unwrap_or_default());
                }
            }
            Part::Var(Var::Protocol) => out.extend_from_slice(match source {
                Source::Request(head) => head.protocol(),
                Source::Response(_) | Source::Local => state.protocol,
            }),
            Part::Var(Var::StartTime) => {
                crate::access_log::timestamp::append_rfc3339_millis(
                    std::time::SystemTime::now(),
                    out,
                );
            }
            Part::Var(Var::ResponseCode) => {
                if let Source::Response(head) = source {
                    let _ = write!(out, "{}", head.status());
                }
            }
            Part::Var(Var::UpstreamAddress) => out.extend_from_slice(&state.upstream),
            Part::Var(Var::Consumer) => {
                if let Some(c) = state.identity().and_then(|a| a.consumer.as_ref()) {
                    out.extend_from_slice(c.consumer.name.as_bytes());
                }
            }
            Part::Var(Var::ConsumerMetadata(key)) => {
                let consumer = state.identity().and_then(|a| a.consumer.as_ref());
                let consumer = consumer.map(|c| &c.consumer);
                let value = consumer.and_then(|c| c.metadata.iter().find(|(k, _)| k == key));
                if let Some((_, v)) = value {
                    out.extend_from_slice(v.as_bytes());
                }
            }
            Part::Var(Var::JwtClaim(claim)) => {
                if let Some(v) = state.identity().and_then(|a| a.claim(claim)) {
                    crate::auth::jwt::value_text(v, out);
                }
            }
            Part::Var(Var::JwtPayload { key, claim }) => {
                let value = state
                    .identity()
                    .and_then(|a| a.payload(key))
                    .and_then(|p| claim.split('.').try_fold(p, |v, segment| v.get(segment)));
                if let Some(v) = value {
                    crate::auth::jwt::value_text(v, out);
                }
            }
            // Compiled into text.
            Part::Var(Var::Hostname | Var::RouteName) => {}
        }
    }
}

/// One side's edits, compiled.
#[derive(Debug, Default)]
struct Edits {
    /// Names whose received fields go: the removals and the replacing additions, so
    /// one pass over the received fields does all of it.
    strip: Box<[Box<[u8]>]>,
    add: Box<[Add]>,
    /// Some value has variables, or an addition a condition (the plain edits skip
    /// rendering and looking).
    rendered: bool,
}

impl Edits {
    fn compile(add: &[config::HeaderAdd], remove: &[String], (side, route): (Side, &str)) -> Self {
        // Consecutive plain lines become one block: one overlay entry and one copy per
        // request instead of one per field (what comes after in the head is the same).
        let mut compiled: Vec<Add> = Vec::with_capacity(add.len());
        for a in add.iter().map(|a| Add::compile(a, side, route)) {
            match (compiled.last_mut(), a) {
                (Some(Add::Line(block)), Add::Line(line)) => {
                    *block = [&block[..], &line[..]].concat().into();
                }
                (_, a) => compiled.push(a),
            }
        }
        let mut edits = Edits {
            strip: remove
                .iter()
                .map(String::as_str)
                .chain(
                    add.iter()
                        .filter(|a| !a.append && a.only_if == config::AddOnlyIf::Always)
                        .map(|a| a.name.as_str()),
                )
                .map(|n| n.as_bytes().into())
                .collect(),
            add: compiled.into(),
            rendered: false,
        };
        edits.rendered = edits.add.iter().any(|a| !matches!(a, Add::Line(_)));
        edits
    }
}

/// Header edits of a listener or a route.
#[derive(Debug)]
pub struct HeaderMutation {
    request: Edits,
    response: Edits,
}

impl Edits {
    fn is_empty(&self) -> bool {
        self.strip.is_empty() && self.add.is_empty()
    }
}

impl HeaderMutation {
    /// Compiles the configured edits (names and values were checked at load) for the
    /// route named `route` (`%ROUTE_NAME%`; empty without a name).
    pub fn compile(m: &config::HeaderMutations, route: &str) -> Self {
        HeaderMutation {
            request: Edits::compile(&m.request_add, &m.request_remove, (Side::Request, route)),
            response: Edits::compile(&m.response_add, &m.response_remove, (Side::Response, route)),
        }
    }

    /// Whether it edits responses (the chain skips its response side otherwise).
    pub(super) fn edits_responses(&self) -> bool {
        !self.response.is_empty()
    }

    /// A replacing addition removes the received fields of its name and adds its line
    /// (at the end of the head: field order between different names carries no meaning).
    /// Values with variables are rendered first, from the request as received (a
    /// replacing edit may remove the very field its value reads, as in Envoy), then the
    /// removals apply, then the additions, in order.
    pub(super) fn on_request(&self, head: &mut RequestHead<'_>, state: &mut RequestState) {
        if !self.request.rendered {
            if !self.request.strip.is_empty() {
                head.remove_any(&self.request.strip);
            }
            for add in self.request.add.iter() {
                if let Add::Line(line) = add {
                    head.append_line(line);
                }
            }
            return;
        }
        let mut rendered = std::mem::take(&mut state.render);
        rendered.clear();
        let mut ends = std::mem::take(&mut state.render_ends);
        ends.clear();
        for add in self.request.add.iter() {
            if let Some(pieces) = add.pieces() {
                render(pieces, &Source::Request(head), state, &mut rendered);
                ends.push(rendered.len());
            }
        }
        if !self.request.strip.is_empty() {
            head.remove_any(&self.request.strip);
        }
        let (mut start, mut next) = (0, ends.iter());
        for add in self.request.add.iter() {
            // Each rendered value's bytes, taken in order whether or not it applies.
            let value = add.pieces().map(|_| {
                let end = next.next().copied().unwrap_or(start);
                let value = &rendered[start..end];
                start = end;
                value
            });
            let Some(add) = applies(add, &mut head.fields()) else {
                continue;
            };
            match add {
                Add::Line(line) => head.append_line(line),
                // Client bytes may be in it: checked like any value.
                Add::Rendered { name, .. } => head.append(name, value.unwrap_or_default()),
                Add::Only { .. } => {}
            }
        }
        (state.render, state.render_ends) = (rendered, ends);
    }

    pub(super) fn on_response(&self, head: &mut ResponseHead<'_>, state: &mut RequestState) {
        if !self.response.strip.is_empty() {
            head.remove_any(&self.response.strip);
        }
        for add in self.response.add.iter() {
            let Some(add) = applies(add, &mut head.fields()) else {
                continue;
            };
            match add {
                Add::Line(line) => head.append_line(line),
                Add::Rendered { name, pieces } => {
                    let mut value = std::mem::take(&mut state.render);
                    value.clear();
                    render(pieces, &Source::Response(head), state, &mut value);
                    head.append(name, &value);
                    state.render = value;
                }
                Add::Only { .. } => {}
            }
        }
    }

    /// The response additions as header lines, for a reply ringway writes itself
    /// (`%RESPONSE_CODE%` is not known there and is empty).
    pub(super) fn local_reply_headers(&self, out: &mut Vec<u8>, state: &RequestState) {
        for add in self.response.add.iter() {
            // The reply's lines so far are its fields (after its status line, if any).
            let add = match add {
                Add::Only { name, present, add } => {
                    let there = if *present {
                        take_lines(out, name)
                    } else {
                        has_line(out, name)
                    };
                    if there != *present {
                        continue;
                    }
                    add
                }
                add => add,
            };
            match add {
                Add::Only { .. } => {}
                Add::Line(line) => out.extend_from_slice(line),
                Add::Rendered { name, pieces } => {
                    // Response-side values draw on no client bytes (`%REQ%` is refused
                    // there), so they are valid field values as rendered.
                    out.extend_from_slice(name);
                    out.extend_from_slice(b": ");
                    render(pieces, &Source::Local, state, out);
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply's own fields: found by name in any case, and taken out in place.
    #[test]
    fn a_replys_fields_are_found_and_taken_by_name() {
        let mut head =
            b"HTTP/1.1 404 Not Found\r\nX-A: 1\r\ncontent-length: 0\r\nx-a: 2\r\n".to_vec();
        assert!(has_line(&head, b"x-a") && !has_line(&head, b"x-b"));
        assert!(!take_lines(&mut head, b"x-b"));
        assert!(take_lines(&mut head, b"x-a"));
        assert_eq!(head, b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n");
    }
}
