//! Header changes the proxy makes before forwarding a head, kept beside the parse.
//!
//! The received head is never edited in place: the overlay records removals and
//! replacements by header index and additions as new lines, and write-back
//! (`serialize.rs`) interleaves them with untouched spans of the original buffer.
//! Every owned line ("name: value\r\n") is appended to one byte arena, so a
//! connection that reuses its `Request` stops allocating once the arena and the edit
//! vector have grown to their working size: `clear` keeps capacity.
//!
//! Names and values are validated on entry, so write-back can only emit well-formed
//! field lines whatever the caller passes.

use super::error::{ErrorKind, ParseError};
use super::header::{is_field_value, is_token};
use super::span::Span;

/// What happens to one received header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    Remove,
    /// Replace the whole line with this arena span.
    Replace(Span),
}

/// Pending header changes. Reusable: [`Overlay::clear`] keeps capacity.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    /// Edits by header index, sorted by index, at most one per index.
    edits: Vec<(u32, Edit)>,
    /// Added lines, as arena spans, in the order added.
    added: Vec<Span>,
    /// Owned line bytes.
    arena: Vec<u8>,
}

impl Overlay {
    /// An empty overlay.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops all changes, keeping capacity.
    pub fn clear(&mut self) {
        self.edits.clear();
        self.added.clear();
        self.arena.clear();
    }

    /// Whether there are no changes.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty() && self.added.is_empty()
    }

    /// Marks received header `index` as removed (a later replace overrides it).
    pub fn remove(&mut self, index: usize) {
        self.set(index, Edit::Remove);
    }

    /// Replaces received header `index` with `name: value`. `name` is usually the
    /// original name (pass `entry.name(buf)`), but may differ.
    pub fn replace(&mut self, index: usize, name: &[u8], value: &[u8]) -> Result<(), ParseError> {
        let line = self.push_line(name, value)?;
        self.set(index, Edit::Replace(line));
        Ok(())
    }

    /// Adds `name: value` after the received headers.
    pub fn add(&mut self, name: &[u8], value: &[u8]) -> Result<(), ParseError> {
        let line = self.push_line(name, value)?;
        self.added.push(line);
        Ok(())
    }

    /// Adds a whole `name: value\r\n` line (or several: a compiled block of them) that
    /// the caller built from known-valid bytes (ringway's own `date`, configured edits),
    /// without checking it again: the check costs more than the copy for a line added
    /// to every message. Checked in debug builds.
    pub fn add_line(&mut self, line: &[u8]) {
        debug_assert!(line.ends_with(b"\r\n"));
        debug_assert!(line[..line.len() - 2].split(|&b| b == b'\n').all(|l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            l.iter().position(|&b| b == b':').is_some_and(|colon| {
                is_token(&l[..colon]) && is_field_value(l[colon + 1..].trim_ascii())
            })
        }));
        let start = self.arena.len();
        self.arena.extend_from_slice(line);
        self.added.push(Span::new(start, self.arena.len()));
    }

    /// Adds `name: value` that the caller knows to be a token and a field value (bytes
    /// ringway already checked: a normalised request target, a configured value), without
    /// checking them again. Checked in debug builds.
    pub fn add_unchecked(&mut self, name: &[u8], value: &[u8]) {
        debug_assert!(is_token(name) && is_field_value(value));
        let start = self.arena.len();
        self.arena.extend_from_slice(name);
        self.arena.extend_from_slice(b": ");
        self.arena.extend_from_slice(value);
        self.arena.extend_from_slice(b"\r\n");
        self.added.push(Span::new(start, self.arena.len()));
    }

    /// Like [`Overlay::add_unchecked`], with the value written as the concatenation of
    /// `parts` (a path and its query), so the caller need not join them first.
    pub fn add_unchecked_parts(&mut self, name: &[u8], parts: &[&[u8]]) {
        // Each part separately (joining them would allocate, even in a debug check).
        debug_assert!(is_token(name) && parts.iter().all(|p| is_field_value(p)));
        let start = self.arena.len();
        self.arena.extend_from_slice(name);
        self.arena.extend_from_slice(b": ");
        for part in parts {
            self.arena.extend_from_slice(part);
        }
        self.arena.extend_from_slice(b"\r\n");
        self.added.push(Span::new(start, self.arena.len()));
    }

    /// The value of the last added line named `name` (ASCII case-insensitive), if any
    /// (a request id the forwarding stage generated).
    pub fn added_value(&self, name: &[u8]) -> Option<&[u8]> {
        self.added
            .iter()
            .rev()
            .map(|s| s.get(&self.arena))
            .find_map(|line| line_value_of(line, name))
    }

    /// Overwrites the value of the last added line named `name` with `value` of the
    /// same length (a request id's trace-reason digit); false when there is no such line
    /// or the lengths differ. `value` must be a valid field value (checked in debug
    /// builds).
    pub fn set_added_value(&mut self, name: &[u8], value: &[u8]) -> bool {
        debug_assert!(is_field_value(value));
        let Some(span) = self
            .added
            .iter()
            .rev()
            .find(|s| line_value_of(s.get(&self.arena), name).is_some())
        else {
            return false;
        };
        let line = span.get(&self.arena);
        let Some(old) = line_value_of(line, name) else {
            return false;
        };
        if old.len() != value.len() {
            return false;
        }
        // The value's offset in the line: the name, the colon and any spaces.
        let offset = old.as_ptr() as usize - line.as_ptr() as usize;
        let start = span.start as usize + offset;
        self.arena[start..start + value.len()].copy_from_slice(value);
        true
    }

    /// Whether received header `index` is removed.
    pub fn is_removed(&self, index: usize) -> bool {
        matches!(self.edit(index), Some(Edit::Remove))
    }

    /// The edit of received header `index`, if any.
    pub fn edit(&self, index: usize) -> Option<Edit> {
        let index = u32::try_from(index).ok()?;
        self.edits
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .and_then(|pos| self.edits.get(pos))
            .map(|(_, e)| *e)
    }

    /// The added lines (a block may hold several).
    pub fn added(&self) -> impl Iterator<Item = &[u8]> {
        self.added.iter().map(|s| s.get(&self.arena))
    }

    /// An owned line's bytes.
    pub fn line(&self, span: Span) -> &[u8] {
        span.get(&self.arena)
    }

    fn set(&mut self, index: usize, edit: Edit) {
        let Ok(index) = u32::try_from(index) else {
            return; // no head has 4 billion headers; nothing to remove
        };
        match self.edits.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(pos) => {
                if let Some(slot) = self.edits.get_mut(pos) {
                    slot.1 = edit;
                }
            }
            Err(pos) => self.edits.insert(pos, (index, edit)),
        }
    }

    fn push_line(&mut self, name: &[u8], value: &[u8]) -> Result<Span, ParseError> {
        if !is_token(name) || !is_field_value(value) {
            return Err(ErrorKind::InvalidOverlay.into());
        }
        let start = self.arena.len();
        self.arena.extend_from_slice(name);
        self.arena.extend_from_slice(b": ");
        self.arena.extend_from_slice(value);
        self.arena.extend_from_slice(b"\r\n");
        Ok(Span::new(start, self.arena.len()))
    }
}

/// The value of `line` ("name: value\r\n") when its name is `name`.
fn line_value_of<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.get(name.len()..)?;
    // The colon first: a line with a name of another length is passed over without
    // comparing its name; then the exact name (lines the proxy adds are written as it
    // asks for them), a few word compares where this is inlined with a literal, before
    // any case, byte by byte.
    let field = &line[..name.len()];
    if rest.first() != Some(&b':') || (field != name && !field.eq_ignore_ascii_case(name)) {
        return None;
    }
    let value = rest[1..].strip_suffix(b"\r\n").unwrap_or(&rest[1..]);
    Some(value.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_value_is_found_and_rewritten_in_place() {
        let mut o = Overlay::new();
        o.add_unchecked(b"x-request-id", b"0000-4");
        o.add_line(b"via: 1.1 a\r\n");
        assert_eq!(o.added_value(b"X-Request-Id"), Some(&b"0000-4"[..]));
        assert_eq!(o.added_value(b"x-request"), None);
        assert!(o.set_added_value(b"x-request-id", b"0000-9"));
        assert!(!o.set_added_value(b"x-request-id", b"short"));
        assert!(!o.set_added_value(b"traceparent", b"0000-9"));
        assert_eq!(o.added_value(b"x-request-id"), Some(&b"0000-9"[..]));
        assert_eq!(o.added().next(), Some(&b"x-request-id: 0000-9\r\n"[..]));
    }

    #[test]
    fn edits_are_sorted_and_overridable() {
        let mut o = Overlay::new();
        o.remove(5);
        o.remove(1);
        assert!(o.is_removed(1) && o.is_removed(5) && !o.is_removed(2));
        o.replace(5, b"X-A", b"1").unwrap();
        assert!(!o.is_removed(5));
        match o.edit(5) {
            Some(Edit::Replace(s)) => assert_eq!(o.line(s), b"X-A: 1\r\n"),
            other => panic!("{other:?}"),
        }
        o.add(b"Via", b"1.1 ringway").unwrap();
        assert_eq!(
            o.added().collect::<Vec<_>>(),
            vec![&b"Via: 1.1 ringway\r\n"[..]]
        );
    }

    #[test]
    fn rejects_malformed_lines() {
        let mut o = Overlay::new();
        assert!(o.add(b"Bad Name", b"v").is_err());
        assert!(o.add(b"X", b"a\r\nInjected: 1").is_err());
        assert!(o.add(b"", b"v").is_err());
        assert!(o.is_empty());
    }

    #[test]
    fn clear_keeps_capacity() {
        let mut o = Overlay::new();
        o.add(b"X", b"y").unwrap();
        o.remove(3);
        let cap = o.arena.capacity();
        o.clear();
        assert!(o.is_empty());
        assert_eq!(o.arena.capacity(), cap);
    }
}
