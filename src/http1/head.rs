//! Incremental end-of-head detection.
//!
//! `httparse` restarts from the first byte on every call, so feeding it a head that
//! arrives one byte per read costs O(n²). [`HeadScanner`] instead remembers how far it
//! has looked and which line it is in, examines each byte once, and `httparse` runs a
//! single time once the blank line is found. The scanner also enforces the size limits
//! early (414 for a request line that is already too long, 431 once `max_head` bytes
//! passed without a blank line), so a slow or hostile peer cannot make the proxy buffer
//! more than the limits allow, and it rejects bare LF line endings (RFC 9112 2.2 lets a
//! recipient accept them; a proxy that forwards bytes must not, so we never do).
//!
//! Line-feed search uses a word-at-a-time (SWAR) loop: safe code, no extra dependency,
//! and several times faster than a byte loop on long header values.

use super::error::{ErrorKind, ParseError};
use super::limits::Limits;

/// Finds the end of a message head across partial reads. Reusable: `reset` between heads.
#[derive(Debug, Clone, Default)]
pub struct HeadScanner {
    /// Bytes of the buffer already examined.
    pos: usize,
    /// Start of the line being scanned.
    line_start: usize,
    /// Whether the start line (request or status line) has ended.
    started: bool,
    /// Field lines seen so far.
    fields: usize,
    /// Set once the blank line was found: the head length.
    done: Option<usize>,
    /// Total bytes examined since `new`/`reset` (diagnostics; proves linear cost).
    examined: u64,
}

impl HeadScanner {
    /// A scanner at the start of a head.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets all progress, for the next head.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Bytes examined since `new`/`reset`: equals the head length however it was split.
    pub fn bytes_examined(&self) -> u64 {
        self.examined
    }

    /// `buf` is every byte received so far for this head, starting at its first byte
    /// (leading CRLFs allowed and skipped, RFC 9112 2.2). Only bytes not seen by an
    /// earlier call are examined. Returns `Ok(Some(head_len))` once the blank line is
    /// found (bytes after it are body or the next request and are not looked at),
    /// `Ok(None)` if more bytes are needed, or an error: 414 when the request line is
    /// over `max_request_line`, 431 when `max_head` bytes hold no complete head or
    /// there are more than `max_headers` fields, 400 for a bare LF.
    pub fn scan(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, ParseError> {
        if let Some(len) = self.done {
            return Ok(Some(len));
        }
        let limit = limits.head();
        let end = buf.len().min(limit);
        let start = self.pos.min(end);
        let window = buf.get(start..end).unwrap_or_default();
        self.examined += window.len() as u64;
        // Eight bytes at a time; every LF in a word is handled in order.
        let mut chunks = window.chunks_exact(8);
        let mut base = start;
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let mut mask = lf_mask(u64::from_le_bytes(word));
            while mask != 0 {
                let lf = base + (mask.trailing_zeros() / 8) as usize;
                mask &= mask - 1;
                if let Some(len) = self.line_end(buf, lf, limits)? {
                    return Ok(Some(len));
                }
            }
            base += 8;
        }
        for (i, &b) in chunks.remainder().iter().enumerate() {
            if b == b'\n' {
                if let Some(len) = self.line_end(buf, base + i, limits)? {
                    return Ok(Some(len));
                }
            }
        }
        self.pos = end;
        // An unfinished request line may end in its CR; one byte more is already too long.
        if !self.started && end - self.line_start.min(end) > limits.max_request_line + 1 {
            return Err(ErrorKind::RequestLineTooLong.into());
        }
        if end == limit {
            return Err(ErrorKind::HeadTooLarge.into());
        }
        Ok(None)
    }

    /// Handles the LF at `lf`: checks the CR before it, the limits, and whether the
    /// line was the blank line that ends the head.
    fn line_end(
        &mut self,
        buf: &[u8],
        lf: usize,
        limits: &Limits,
    ) -> Result<Option<usize>, ParseError> {
        if lf == 0 || buf.get(lf - 1) != Some(&b'\r') {
            return Err(ErrorKind::LineEnding.into());
        }
        // Content of the line, CRLF excluded.
        let content = (lf - 1).saturating_sub(self.line_start);
        self.line_start = lf + 1;
        if !self.started {
            // An empty line here is a leading empty line: skipped.
            if content > limits.max_request_line {
                return Err(ErrorKind::RequestLineTooLong.into());
            }
            self.started = content > 0;
        } else if content == 0 {
            self.pos = lf + 1;
            self.done = Some(lf + 1);
            return Ok(self.done);
        } else {
            self.fields += 1;
            if self.fields > limits.headers() {
                return Err(ErrorKind::TooManyHeaders.into());
            }
        }
        Ok(None)
    }
}

/// 0x80 in each byte of `word` (little-endian) that is `\n`, 0 elsewhere. Exact for
/// every byte (no borrow between bytes), so all matches in a word can be used.
fn lf_mask(word: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const LF: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let x = word ^ LF; // zero bytes where word has LF
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// Index of the first `\n` in `s`, eight bytes at a time.
pub(crate) fn find_lf(s: &[u8]) -> Option<usize> {
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let found = lf_mask(u64::from_le_bytes(word));
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| base + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(
        input: &[u8],
        step: usize,
        limits: &Limits,
    ) -> (Result<Option<usize>, ParseError>, u64) {
        let mut s = HeadScanner::new();
        let mut n = 0;
        loop {
            n = (n + step).min(input.len());
            let r = s.scan(&input[..n], limits);
            if !matches!(r, Ok(None)) || n == input.len() {
                return (r, s.bytes_examined());
            }
        }
    }

    #[test]
    fn finds_end_of_head() {
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        for step in 1..req.len() {
            assert_eq!(scan_all(req, step, &Limits::default()).0, Ok(Some(27)));
        }
    }

    #[test]
    fn skips_leading_empty_lines() {
        let req = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(scan_all(req, 1, &Limits::default()).0, Ok(Some(req.len())));
    }

    #[test]
    fn rejects_bare_lf() {
        for req in [
            &b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\n\r\n",
            b"\n",
        ] {
            let err = scan_all(req, 1, &Limits::default()).0.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::LineEnding);
        }
    }

    #[test]
    fn request_line_limit() {
        let limits = Limits {
            max_request_line: 16,
            ..Limits::default()
        };
        // Exactly 16 bytes of request line: fine.
        assert!(scan_all(b"GET /23 HTTP/1.1\r\nH: a\r\n\r\n", 1, &limits)
            .0
            .is_ok());
        // 17 bytes: 414, even before the line ends.
        let err = scan_all(b"GET /234 HTTP/1.1\r\n", 1, &limits)
            .0
            .unwrap_err();
        assert_eq!(err.status(), 414);
        let err = scan_all(&[b'A'; 100], 1, &limits).0.unwrap_err();
        assert_eq!(err.status(), 414);
    }

    #[test]
    fn head_limit_is_inclusive() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let exact = Limits {
            max_head: head.len(),
            ..Limits::default()
        };
        assert_eq!(scan_all(head, 3, &exact).0, Ok(Some(head.len())));
        let less = Limits {
            max_head: head.len() - 1,
            ..Limits::default()
        };
        assert_eq!(scan_all(head, 3, &less).0.unwrap_err().status(), 431);
    }

    #[test]
    fn header_count_limit() {
        let limits = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        assert!(
            scan_all(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", 1, &limits)
                .0
                .is_ok()
        );
        let err = scan_all(
            b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
            1,
            &limits,
        )
        .0;
        assert_eq!(err.unwrap_err().status(), 431);
    }

    #[test]
    fn trickled_head_costs_linear_work() {
        let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        while head.len() + 1014 <= 60 * 1024 - 2 {
            head.extend_from_slice(b"X-Filler: ");
            head.extend_from_slice(&[b'v'; 1000]);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let (r, trickled) = scan_all(&head, 1, &Limits::default());
        assert_eq!(r, Ok(Some(head.len())));
        let (_, one_shot) = scan_all(&head, head.len(), &Limits::default());
        // Each byte examined exactly once, however the head was split.
        assert_eq!(trickled, head.len() as u64);
        assert_eq!(trickled, one_shot);
    }

    #[test]
    fn lf_mask_is_exact() {
        let word = u64::from_le_bytes(*b"\n\x0b\n\x01\x8a\n\x00\n");
        assert_eq!(lf_mask(word), 0x8000_8000_0080_0080);
    }

    #[test]
    fn find_lf_matches_naive() {
        let mut data = vec![b'a'; 40];
        assert_eq!(find_lf(&data), None);
        for i in 0..40 {
            data[i] = b'\n';
            assert_eq!(find_lf(&data), Some(i));
            data[i] = 0x8a; // high-bit neighbour must not match
            assert_eq!(find_lf(&data), None);
            data[i] = b'a';
        }
    }
}
