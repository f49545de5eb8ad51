//! The request and response heads as filters see them.
//!
//! Reads are protocol-neutral (method, authority, path, header values by name); edits go
//! to the codec's [`Overlay`], so the received bytes are never copied or moved: HTTP/1.1
//! writes the head upstream as spans of its read buffer with the overlay applied. Names
//! are compared ASCII-case-insensitively; added fields are written as given.

use crate::http1::{BodyFraming, HeaderEntry, Method, Overlay, Request, Response, Version};

/// A request head, for filters.
#[derive(Debug)]
pub struct RequestHead<'a> {
    request: &'a mut Request,
    buf: &'a [u8],
}

/// A response head, for filters.
#[derive(Debug)]
pub struct ResponseHead<'a> {
    response: &'a mut Response,
    buf: &'a [u8],
}

impl<'a> RequestHead<'a> {
    /// The request parsed from `buf` (its head).
    pub fn new(request: &'a mut Request, buf: &'a [u8]) -> Self {
        RequestHead { request, buf }
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.request.method
    }

    /// The request target's path and query as received (Envoy's `:path`).
    pub fn target(&self) -> &[u8] {
        self.request.path.get(self.buf)
    }

    /// The method as received (`GET`, or an extension method).
    pub fn method_bytes(&self) -> &[u8] {
        self.request.method_span.get(self.buf)
    }

    /// The authority (absolute-form target or Host), if any.
    pub fn authority(&self) -> Option<&[u8]> {
        self.request.host.map(|h| h.get(self.buf))
    }

    /// The first received value of `name`, unless a filter removed it.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find(&self.request.headers, &self.request.overlay, self.buf, name)
    }

    /// Its fields, to look for one and remove it.
    pub fn fields(&mut self) -> Fields<'_, 'a> {
        Fields {
            headers: &self.request.headers,
            overlay: &mut self.request.overlay,
            buf: self.buf,
        }
    }

    /// The protocol, as `%PROTOCOL%` writes it.
    pub fn protocol(&self) -> &'static [u8] {
        match self.request.version {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        }
    }

    /// The body's declared length, when it has one (not for a chunked body).
    pub fn content_length(&self) -> Option<u64> {
        match self.request.framing {
            BodyFraming::ContentLength(n) => Some(n),
            BodyFraming::None | BodyFraming::Chunked => None,
        }
    }

    /// Removes every received field named `name`.
    pub fn remove(&mut self, name: &[u8]) {
        remove(
            &self.request.headers,
            &mut self.request.overlay,
            self.buf,
            name,
        );
    }

    /// Removes every received field named any of `names`, in one pass.
    pub fn remove_any<N: AsRef<[u8]>>(&mut self, names: &[N]) {
        let request = &mut *self.request;
        remove_any(&request.headers, &mut request.overlay, self.buf, names);
    }

    /// Adds `name: value` (after the received fields). Both are checked.
    pub fn append(&mut self, name: &[u8], value: &[u8]) {
        let _ = self.request.overlay.add(name, value);
    }

    /// Adds a whole `name: value\r\n` line built from checked bytes (a compiled edit).
    pub fn append_line(&mut self, line: &[u8]) {
        self.request.overlay.add_line(line);
    }

    /// Adds `name: value`, both already checked (see [`Overlay::add_unchecked`]).
    pub fn append_checked(&mut self, name: &[u8], value: &[u8]) {
        self.request.overlay.add_unchecked(name, value);
    }

    /// Adds `name: ` and the concatenated `parts`, all already checked.
    pub fn append_checked_parts(&mut self, name: &[u8], parts: &[&[u8]]) {
        self.request.overlay.add_unchecked_parts(name, parts);
    }

    /// Replaces every received `name` with one `name: value`.
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        set(
            &self.request.headers,
            &mut self.request.overlay,
            self.buf,
            name,
            value,
        );
    }
}

impl<'a> ResponseHead<'a> {
    /// The response parsed from `buf` (its head).
    pub fn new(response: &'a mut Response, buf: &'a [u8]) -> Self {
        ResponseHead { response, buf }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.response.status
    }

    /// The first received value of `name`, unless a filter removed it.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find(
            &self.response.headers,
            &self.response.overlay,
            self.buf,
            name,
        )
    }

    /// Its fields, to look for one and remove it.
    pub fn fields(&mut self) -> Fields<'_, 'a> {
        Fields {
            headers: &self.response.headers,
            overlay: &mut self.response.overlay,
            buf: self.buf,
        }
    }

    /// Removes every received field named `name`.
    pub fn remove(&mut self, name: &[u8]) {
        remove(
            &self.response.headers,
            &mut self.response.overlay,
            self.buf,
            name,
        );
    }

    /// Removes every received field named any of `names`, in one pass.
    pub fn remove_any<N: AsRef<[u8]>>(&mut self, names: &[N]) {
        let response = &mut *self.response;
        remove_any(&response.headers, &mut response.overlay, self.buf, names);
    }

    /// Adds `name: value` (after the received fields). Both are checked.
    pub fn append(&mut self, name: &[u8], value: &[u8]) {
        let _ = self.response.overlay.add(name, value);
    }

    /// Adds a whole `name: value\r\n` line built from checked bytes (a compiled edit).
    pub fn append_line(&mut self, line: &[u8]) {
        self.response.overlay.add_line(line);
    }

    /// Adds `name: value`, both already checked (see [`Overlay::add_unchecked`]).
    pub fn append_checked(&mut self, name: &[u8], value: &[u8]) {
        self.response.overlay.add_unchecked(name, value);
    }

    /// Replaces every received `name` with one `name: value`.
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        set(
            &self.response.headers,
            &mut self.response.overlay,
            self.buf,
            name,
            value,
        );
    }
}

fn is(entry: &HeaderEntry, buf: &[u8], name: &[u8]) -> bool {
    entry.name(buf).eq_ignore_ascii_case(name)
}

fn find<'b>(
    headers: &[HeaderEntry],
    overlay: &Overlay,
    buf: &'b [u8],
    name: &str,
) -> Option<&'b [u8]> {
    headers
        .iter()
        .enumerate()
        .find(|(i, h)| is(h, buf, name.as_bytes()) && !overlay.is_removed(*i))
        .map(|(_, h)| h.value(buf))
}

/// A head's fields, as received with the edits so far, either side.
#[derive(Debug)]
pub struct Fields<'h, 'b> {
    headers: &'h [HeaderEntry],
    overlay: &'h mut Overlay,
    buf: &'b [u8],
}

impl Fields<'_, '_> {
    /// Whether a field named `name` is there: received and kept, or added.
    pub fn has(&self, name: &[u8]) -> bool {
        let received = self
            .headers
            .iter()
            .enumerate()
            .any(|(i, h)| is(h, self.buf, name) && !self.overlay.is_removed(i));
        received || self.overlay.added_value(name).is_some()
    }

    /// Removes every received field named `name`.
    pub fn remove(&mut self, name: &[u8]) {
        remove(self.headers, self.overlay, self.buf, name);
    }
}

fn remove_any<N: AsRef<[u8]>>(
    headers: &[HeaderEntry],
    overlay: &mut Overlay,
    buf: &[u8],
    names: &[N],
) {
    for (index, h) in headers.iter().enumerate() {
        let name = h.name(buf);
        if names.iter().any(|n| name.eq_ignore_ascii_case(n.as_ref())) {
            overlay.remove(index);
        }
    }
}

fn remove(headers: &[HeaderEntry], overlay: &mut Overlay, buf: &[u8], name: &[u8]) {
    for (index, h) in headers.iter().enumerate() {
        if is(h, buf, name) {
            overlay.remove(index);
        }
    }
}

fn set(headers: &[HeaderEntry], overlay: &mut Overlay, buf: &[u8], name: &[u8], value: &[u8]) {
    let mut replaced = false;
    for (index, h) in headers.iter().enumerate() {
        if is(h, buf, name) && !overlay.is_removed(index) {
            if replaced {
                overlay.remove(index);
            } else {
                replaced = overlay.replace(index, name, value).is_ok();
            }
        }
    }
    if !replaced {
        let _ = overlay.add(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{parse_request, Limits};

    fn written(raw: &[u8], edit: impl FnOnce(&mut RequestHead<'_>)) -> String {
        let mut request = Request::new();
        parse_request(raw, &Limits::default(), &mut request).unwrap();
        edit(&mut RequestHead::new(&mut request, raw));
        let mut out = Vec::new();
        request.append_fields(raw, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn edits_go_through_the_overlay() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nX-B: 3\r\n\r\n";
        let out = written(raw, |h| {
            assert_eq!(h.header("x-a"), Some(&b"1"[..]));
            h.set(b"x-a", b"9");
            h.remove(b"X-B");
            h.append(b"x-c", b"4");
            assert_eq!(h.header("x-b"), None);
        });
        assert_eq!(out, "Host: a\r\nx-a: 9\r\nx-c: 4\r\n\r\n");
        let out = written(raw, |h| h.set(b"x-new", b"1"));
        assert_eq!(
            out,
            "Host: a\r\nX-A: 1\r\nx-a: 2\r\nX-B: 3\r\nx-new: 1\r\n\r\n"
        );
    }
}
