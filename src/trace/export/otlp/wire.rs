//! Protobuf's wire format, written through a position that never panics: the keys,
//! varints and length-delimited fields a span is made of, and the span attributes
//! (`KeyValue`s) written as fixed arrays around their names and values.
//!
//! Design: every write asks its writer for the room it needs ([`Wire::room`]); a writer
//! that has no such room drops the write and only moves the position on, so that after
//! a span a position past the end says how much room it needs and the span is written
//! again once the buffer has grown. Two writers:
//! - [`Out`], a position over any slice: each write is one bounds check.
//! - [`Fixed`], a position over a [`FAST_ROOM`]-byte window whose writes land at the
//!   position modulo [`FAST_SPAN`]: every write of a length the compiler knows (the
//!   names are literals, the values fixed-size windows, the ids and times fixed blocks)
//!   then fits by construction and compiles to plain moves, no check, no branch. A span
//!   that ends past [`FAST_SPAN`] may have wrapped over its own start: it is written
//!   again with [`Out`]. A worker's span is nearly always a few hundred bytes, and the
//!   checks were about a third of writing it (docs/performance.md).

use crate::trace::span::WINDOW;

/// Wire types, as the low three bits of a field key.
pub(super) const VARINT: u8 = 0;
pub(super) const I64: u8 = 1;
pub(super) const LEN: u8 = 2;
pub(super) const I32: u8 = 5;

/// The longest span [`Fixed`] writes.
pub(super) const FAST_SPAN: usize = 1024;
/// [`Fixed`]'s window: a span of [`FAST_SPAN`] bytes and the widest write that can
/// start inside it.
pub(super) const FAST_ROOM: usize = 2 * FAST_SPAN;

/// A field's key: its number and wire type (written as a varint).
#[inline(always)]
pub(super) const fn key(tag: u32, wire_type: u8) -> usize {
    ((tag as usize) << 3) | wire_type as usize
}

/// A varint into `out`, low group first; returns its width.
#[inline]
pub(super) fn varint_into(mut v: usize, out: &mut [u8; 10]) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = v as u8 | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// A varint of `v` (below 2^56) as the little-endian bytes of a word, and its width:
/// seven bits a byte, the high bit set on every byte but the last.
#[inline(always)]
pub(super) fn varint_word(mut v: u64) -> (u64, usize) {
    debug_assert!(v < 1 << 56);
    let mut word = 0;
    let mut width = 0;
    while v >= 0x80 {
        word |= ((v & 0x7f) | 0x80) << (8 * width);
        v >>= 7;
        width += 1;
    }
    (word | v << (8 * width), width + 1)
}

/// The bytes of a varint.
#[inline]
pub(super) fn varint_len(v: usize) -> usize {
    // Seven bits a byte: 1 for 0..128, 2 up to 16 Ki, ...
    let bits = usize::BITS - (v | 1).leading_zeros();
    (bits as usize).div_ceil(7)
}

/// The bytes of a length-delimited field's length prefix and body of `n` bytes.
#[inline]
pub(super) fn len_of(n: usize) -> usize {
    varint_len(n) + n
}

/// A write position in a buffer: the writes protobuf's messages are made of, over
/// the room a writer gives ([`Wire::room`]).
pub(super) trait Wire {
    /// The position.
    fn at(&self) -> usize;
    /// Moves the position to `at` (always on: a write without room moves it too).
    fn set_at(&mut self, at: usize);
    /// The `n` bytes from `at`, `None` when they are not there.
    fn room_at(&mut self, at: usize, n: usize) -> Option<&mut [u8]>;
    /// Writes the length of a message whose two-byte placeholder is at `len_at`, when
    /// the length takes other than two bytes (the message is moved).
    fn close_rare(&mut self, len_at: usize, n: usize);

    /// The `n` bytes at the position.
    #[inline(always)]
    fn room(&mut self, n: usize) -> Option<&mut [u8]> {
        self.room_at(self.at(), n)
    }

    #[inline(always)]
    fn put(&mut self, s: &[u8]) {
        if let Some(to) = self.room(s.len()) {
            to.copy_from_slice(s);
        }
        self.set_at(self.at() + s.len());
    }

    #[inline(always)]
    fn byte(&mut self, b: u8) {
        if let Some(to) = self.room(1) {
            to[0] = b;
        }
        self.set_at(self.at() + 1);
    }

    /// A base-128 varint, low group first.
    #[inline(always)]
    fn varint(&mut self, mut v: usize) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    /// A length-delimited field (bytes, string or message) with its tag.
    #[inline(always)]
    fn field_bytes(&mut self, tag: u32, value: &[u8]) {
        self.varint(key(tag, LEN));
        self.varint(value.len());
        self.put(value);
    }

    /// A string field, left out when empty (proto3's default).
    #[inline(always)]
    fn field_str(&mut self, tag: u32, value: &[u8]) {
        if !value.is_empty() {
            self.field_bytes(tag, value);
        }
    }

    /// A `KeyValue` with a string value, as field `tag` (below 16) of the enclosing
    /// message (9: a span's attribute). When every length fits in one byte (nearly
    /// always), the fixed bytes go in as two small arrays around the name and the
    /// value.
    #[inline(always)]
    fn string_attribute(&mut self, tag: u8, name: &str, value: &[u8]) {
        let (n, v) = (name.len(), value.len());
        if n + v <= 120 {
            // KeyValue { key (1), value (2): AnyValue { string_value (1) } }
            let any = 2 + v;
            let kv = 2 + n + 2 + any;
            self.put(&[(tag << 3) | LEN, kv as u8, 0x0a, n as u8]);
            self.put(name.as_bytes());
            self.put(&[0x12, any as u8, 0x0a, v as u8]);
            self.put(value);
            return;
        }
        let any = 1 + len_of(v);
        let kv = 1 + len_of(n) + 1 + len_of(any);
        self.varint(key(u32::from(tag), LEN));
        self.varint(kv);
        self.field_bytes(1, name.as_bytes());
        self.varint(key(2, LEN));
        self.varint(any);
        self.field_bytes(1, value);
    }

    /// A span's attribute (field 9) whose string value is the concatenation of
    /// `parts` (a URL put together from its pieces), written without a buffer between.
    fn string_attribute_parts(&mut self, name: &str, parts: &[&[u8]]) {
        let (n, v) = (name.len(), parts.iter().map(|p| p.len()).sum::<usize>());
        if n + v <= 120 {
            // As `string_attribute`: every length fits in a byte.
            let any = 2 + v;
            self.put(&[(9 << 3) | LEN, (2 + n + 2 + any) as u8, 0x0a, n as u8]);
            self.put(name.as_bytes());
            self.put(&[0x12, any as u8, 0x0a, v as u8]);
        } else {
            let any = 1 + len_of(v);
            self.varint(key(9, LEN));
            self.varint(1 + len_of(n) + 1 + len_of(any));
            self.field_bytes(1, name.as_bytes());
            self.varint(key(2, LEN));
            self.varint(any);
            self.varint(key(1, LEN));
            self.varint(v);
        }
        for part in parts {
            self.put(part);
        }
    }

    /// A span's attribute (field 9) with a string value of `len` bytes (1 to
    /// [`WINDOW`]), given as the window from its start: with room, fixed-size moves
    /// (the bytes after the value land past the position, where the next write goes
    /// over them); else written exactly, piece by piece.
    #[inline(always)]
    fn short_attribute(&mut self, name: &str, window: &[u8; WINDOW], len: usize) {
        let n = name.len();
        // Names are literals of a few dozen bytes: every length fits in a byte.
        debug_assert!(n <= 64 && (1..=WINDOW).contains(&len));
        let kv = 2 + n + 2 + 2 + len;
        let head = [(9 << 3) | LEN, kv as u8, 0x0a, n as u8];
        let middle = [0x12, 2 + len as u8, 0x0a, len as u8];
        if let Some(to) = self.room(8 + n + WINDOW) {
            to[..4].copy_from_slice(&head);
            to[4..4 + n].copy_from_slice(name.as_bytes());
            to[4 + n..8 + n].copy_from_slice(&middle);
            to[8 + n..].copy_from_slice(window);
            self.set_at(self.at() + 8 + n + len);
            return;
        }
        self.string_attribute(9, name, window.get(..len).unwrap_or_default());
    }

    /// A string field `tag` (below 16) of `len` bytes (1 to [`WINDOW`]), given as its
    /// window: as [`Self::short_attribute`].
    #[inline(always)]
    fn short_field(&mut self, tag: u8, window: &[u8; WINDOW], len: usize) {
        if let Some(to) = self.room(2 + WINDOW) {
            to[..2].copy_from_slice(&[(tag << 3) | LEN, len as u8]);
            to[2..].copy_from_slice(window);
            self.set_at(self.at() + 2 + len);
            return;
        }
        self.field_bytes(u32::from(tag), window.get(..len).unwrap_or_default());
    }

    /// An attempt's `url.full`: its scheme (`http://` or `https://`, as an eight-byte
    /// block and its length), then its endpoint and its target, each given as its
    /// window: as [`Self::short_attribute`], when the whole value fits in a one-byte
    /// length.
    #[inline(always)]
    fn url_attribute(
        &mut self,
        (scheme, s): (&[u8; 8], usize),
        (origin, origin_len): (&[u8; WINDOW], usize),
        (target, target_len): (&[u8; WINDOW], usize),
    ) {
        const NAME: &str = "url.full";
        let n = NAME.len();
        let v = s + origin_len + target_len;
        if v < 100 && s <= 8 {
            if let Some(to) = self.room(8 + n + 8 + 2 * WINDOW) {
                let kv = 2 + n + 2 + 2 + v;
                to[..4].copy_from_slice(&[(9 << 3) | LEN, kv as u8, 0x0a, n as u8]);
                to[4..4 + n].copy_from_slice(NAME.as_bytes());
                to[4 + n..8 + n].copy_from_slice(&[0x12, 2 + v as u8, 0x0a, v as u8]);
                let at = 8 + n;
                to[at..at + 8].copy_from_slice(scheme);
                let at = at + s;
                to[at..at + WINDOW].copy_from_slice(origin);
                let at = at + origin_len;
                to[at..at + WINDOW].copy_from_slice(target);
                self.set_at(self.at() + 8 + n + v);
                return;
            }
        }
        let scheme = scheme.get(..s).unwrap_or_default();
        let origin = origin.get(..origin_len).unwrap_or_default();
        let target = target.get(..target_len).unwrap_or_default();
        self.string_attribute_parts(NAME, &[scheme, origin, target]);
    }

    /// A `KeyValue` with an int value, as a span's attribute (field 9).
    #[inline(always)]
    fn int_attribute(&mut self, name: &str, value: i64) {
        // AnyValue { int_value (3) }: a oneof member is written even when zero.
        self.varint_attribute(name, 3, value as u64 as usize);
    }

    /// A `KeyValue` whose `AnyValue` member `field` is a varint (`bool_value` 2,
    /// `int_value` 3), as a span's attribute (field 9).
    #[inline(always)]
    fn varint_attribute(&mut self, name: &str, field: u8, value: usize) {
        let n = name.len();
        if n < 100 && value < 1 << 56 {
            // The varint as one word (at most 8 bytes below 2^56: every status, port
            // and size), written as 8 bytes with room for them: one bounds check, a
            // few moves (a byte array for it was zeroed and copied byte by byte).
            let (word, width) = varint_word(value as u64);
            let any = 1 + width;
            let head = [(9 << 3) | LEN, (2 + n + 2 + any) as u8, 0x0a, n as u8];
            let middle = [0x12, any as u8, field << 3];
            if let Some(to) = self.room(7 + n + 8) {
                to[..4].copy_from_slice(&head);
                to[4..4 + n].copy_from_slice(name.as_bytes());
                to[4 + n..7 + n].copy_from_slice(&middle);
                to[7 + n..].copy_from_slice(&word.to_le_bytes());
                self.set_at(self.at() + 7 + n + width);
                return;
            }
        }
        let any = 1 + varint_len(value);
        let kv = 1 + len_of(n) + 1 + len_of(any);
        if kv < 128 {
            let head = [(9 << 3) | LEN, kv as u8, 0x0a, n as u8];
            let middle = [0x12, any as u8, field << 3];
            self.put(&head);
            self.put(name.as_bytes());
            self.put(&middle);
            self.varint(value);
            return;
        }
        self.varint(key(9, LEN));
        self.varint(kv);
        self.field_bytes(1, name.as_bytes());
        self.varint(key(2, LEN));
        self.varint(any);
        self.varint(key(u32::from(field), VARINT));
        self.varint(value);
    }

    /// Writes the length of the message that follows the two-byte placeholder at
    /// `len_at` (up to the position), moving the message when its length takes other
    /// than two bytes. Past the end it only moves the position on.
    #[inline(always)]
    fn close_length(&mut self, len_at: usize) {
        let n = self.at() - (len_at + 2);
        if (128..16_384).contains(&n) {
            // The common case: the placeholder's two bytes, nothing moved.
            if let Some(to) = self.room_at(len_at, 2) {
                to.copy_from_slice(&[n as u8 | 0x80, (n >> 7) as u8]);
            }
            return;
        }
        self.close_rare(len_at, n);
    }
}

/// A position over any slice: one bounds check a write. A write past the end is
/// dropped (never a panic: this runs on the workers and the exporter thread, and
/// ringway aborts on panic) while the position still moves on. Made as a local over a
/// `&mut [u8]` argument, so that the position stays in a register: pushing onto a
/// `&mut Vec` reloaded its length and capacity after every write (any byte store may
/// alias them), a third of the exporter's instructions.
pub(super) struct Out<'a> {
    pub buf: &'a mut [u8],
    pub at: usize,
}

impl Wire for Out<'_> {
    #[inline(always)]
    fn at(&self) -> usize {
        self.at
    }

    #[inline(always)]
    fn set_at(&mut self, at: usize) {
        self.at = at;
    }

    #[inline(always)]
    fn room_at(&mut self, at: usize, n: usize) -> Option<&mut [u8]> {
        self.buf.get_mut(at..at.checked_add(n)?)
    }

    fn close_rare(&mut self, len_at: usize, n: usize) {
        let body = len_at + 2;
        let mut prefix = [0u8; 10];
        let width = varint_into(n, &mut prefix);
        let end = len_at + width + n;
        if self.at > self.buf.len() || end > self.buf.len() {
            self.at = end.max(self.at);
            return;
        }
        if width != 2 {
            self.buf.copy_within(body..self.at, len_at + width);
        }
        self.buf[len_at..len_at + width].copy_from_slice(&prefix[..width]);
        self.at = end;
    }
}

/// A position over a [`FAST_ROOM`]-byte window, starting at 0, whose writes land at
/// the position modulo [`FAST_SPAN`]: what was written is the message only when the
/// position ends at most at [`FAST_SPAN`] ([`Fixed::fits`]); else it is written again
/// with [`Out`].
pub(super) struct Fixed<'a> {
    pub buf: &'a mut [u8; FAST_ROOM],
    pub at: usize,
}

impl Fixed<'_> {
    /// What was written up to `end` is whole (no write wrapped).
    pub fn fits(end: usize) -> bool {
        end <= FAST_SPAN
    }
}

impl Wire for Fixed<'_> {
    #[inline(always)]
    fn at(&self) -> usize {
        self.at
    }

    #[inline(always)]
    fn set_at(&mut self, at: usize) {
        self.at = at;
    }

    /// Below [`FAST_SPAN`] bytes, always there: the start is masked into the first
    /// half of the window, so a length the compiler knows needs no check.
    #[inline(always)]
    fn room_at(&mut self, at: usize, n: usize) -> Option<&mut [u8]> {
        let at = at & (FAST_SPAN - 1);
        if n > FAST_SPAN {
            return None;
        }
        self.buf.get_mut(at..at + n)
    }

    /// Not here: the span is written again with [`Out`].
    fn close_rare(&mut self, _len_at: usize, _n: usize) {
        self.at = FAST_SPAN + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_varint_word_is_the_varint() {
        let mut rng = fastrand::Rng::with_seed(7);
        let edges = (0..56).flat_map(|b| [(1u64 << b) - 1, 1 << b, (1 << b) + 1]);
        let random = (0..10_000).map(|_| rng.u64(..1 << 56) >> rng.u32(0..56));
        for v in edges.filter(|&v| v < 1 << 56).chain(random) {
            let (word, width) = varint_word(v);
            let mut digits = [0u8; 10];
            let want = varint_into(v as usize, &mut digits);
            assert_eq!(width, want, "{v}");
            assert_eq!(&word.to_le_bytes()[..width], &digits[..want], "{v}");
            assert!(width == 8 || word >> (8 * width) == 0, "{v}");
        }
    }

    #[test]
    fn a_length_placeholder_fits_any_length() {
        for n in [0usize, 5, 127, 128, 200, 16_383, 16_384, 20_000, 3_000_000] {
            let mut buf = vec![0u8; 1 + 10 + n];
            let mut out = Out {
                buf: &mut buf[..],
                at: 0,
            };
            out.byte(9);
            out.put(&[0, 0]);
            out.put(&(0..n).map(|i| i as u8).collect::<Vec<_>>());
            out.close_length(1);
            let end = out.at;
            assert!(end <= buf.len());
            let mut want = vec![9u8];
            prost::encoding::encode_varint(n as u64, &mut want);
            want.extend((0..n).map(|i| i as u8));
            assert!(buf[..end] == want[..], "{n}");
            assert_eq!(varint_len(n), prost::encoding::encoded_len_varint(n as u64));
        }
    }

    /// Writes past the end are dropped, never a panic; the position says how much
    /// room was needed.
    #[test]
    fn writes_past_the_end_only_move_the_position() {
        let mut buf = [0u8; 4];
        let mut out = Out {
            buf: &mut buf[..],
            at: 0,
        };
        out.byte(1);
        out.put(&[0, 0]);
        out.put(b"abcdef");
        out.varint(300);
        out.string_attribute(9, "name", b"value");
        let need = out.at;
        assert!(need > 4);
        out.close_length(1);
        assert!(out.at >= need);
        assert_eq!(buf, [1, 0, 0, 0]);
    }

    /// A message that ends within [`FAST_SPAN`] is the one [`Out`] writes; one that
    /// ends past it, or whose length is not two bytes, says so (`fits` false),
    /// however its writes wrapped.
    #[test]
    fn the_fixed_window_writes_what_out_writes_or_says_it_did_not_fit() {
        for n in [
            0usize, 100, 127, 128, 500, 1_000, 1_014, 1_015, 1_016, 1_500, 3_000,
        ] {
            let value = (0..n).map(|i| (i % 251) as u8).collect::<Vec<_>>();
            let mut want = vec![0u8; 256 + n];
            let mut out = Out {
                buf: &mut want[..],
                at: 0,
            };
            message(&mut out, &value);
            let end = out.at;
            let mut window = [0xAAu8; FAST_ROOM];
            let mut fixed = Fixed {
                buf: &mut window,
                at: 0,
            };
            message(&mut fixed, &value);
            // A length of other than two bytes is closed by `Out` alone.
            let two_byte_length = (128..16_384).contains(&(end - 3));
            assert_eq!(
                Fixed::fits(fixed.at),
                end <= FAST_SPAN && two_byte_length,
                "{n}"
            );
            if Fixed::fits(fixed.at) {
                assert_eq!(fixed.at, end, "{n}");
                assert!(window[..end] == want[..end], "{n}");
            }
        }
    }

    /// A span-like message: a key, a length placeholder, a short attribute, a string
    /// attribute of `value`, an int attribute; its length closed.
    fn message(w: &mut impl Wire, value: &[u8]) {
        w.byte(0x12);
        w.put(&[0, 0]);
        let mut window = [0u8; WINDOW];
        window[..5].copy_from_slice(b"GET /");
        w.short_attribute("http.request.method", &window, 3);
        w.string_attribute(9, "user_agent.original", value);
        w.int_attribute("http.response.status_code", 200);
        w.close_length(1);
    }
}
