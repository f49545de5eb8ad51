//! Size limits applied while reading a message head, chunk extensions and trailers.
//!
//! Every limit maps to the status a server answers with when it is exceeded, so the
//! connection layer never has to guess: 414 for the request line, 431 for the head,
//! the header count and the trailer section, 400 for chunk extensions (RFC 9112 7.1.1
//! gives extensions no status of their own). Limits are plain data: the connection
//! copies them from configuration once and passes a reference into every call.

/// Caps on what a peer may make the codec examine or hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (method, target, version; CRLF excluded). Over it: 414.
    pub max_request_line: usize,
    /// Longest head, leading empty lines and the final blank line included. Over it: 431.
    pub max_head: usize,
    /// Most header fields in one head. Over it: 431. Values above
    /// [`HARD_MAX_HEADERS`] are clamped to it (the parser's scratch array is on the stack).
    pub max_headers: usize,
    /// Most chunk-extension bytes in one chunked body (summed over all chunks, so that
    /// a stream of tiny chunks cannot carry unbounded metadata). Over it: 400.
    pub max_chunk_extension: usize,
    /// Longest trailer section, final CRLF included. Over it: 431.
    pub max_trailer_section: usize,
    /// Request fields whose names hold an underscore.
    pub underscores: Underscores,
}

/// What becomes of a request field whose name holds an underscore (Envoy's
/// `headers_with_underscores_action`). Such a name is a valid token, but CGI and
/// servers that map fields to variables read `_` and `-` alike: `x_user` can stand in
/// for an `x-user` the proxy strips or sets. An edge drops or refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Underscores {
    /// Kept, as any field.
    #[default]
    Allow,
    /// Dropped from the request as parsed: nothing after the codec sees them, and
    /// they are not forwarded ([`crate::http1::Request::dropped_underscored`] counts
    /// them).
    Drop,
    /// The request is refused: 400 ([`crate::http1::ErrorKind::UnderscoreInName`]).
    Reject,
}

/// The parser keeps its `httparse` header scratch array on the stack, so the header
/// count has a hard ceiling regardless of configuration.
pub const HARD_MAX_HEADERS: usize = 256;

/// Spans are `u32` offsets; heads are capped well below that.
pub(crate) const HARD_MAX_HEAD: usize = 16 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_head: 60 * 1024,
            max_headers: 100,
            max_chunk_extension: 16 * 1024,
            max_trailer_section: 16 * 1024,
            underscores: Underscores::Allow,
        }
    }
}

impl Limits {
    /// The head limit actually enforced (see [`HARD_MAX_HEAD`]).
    pub(crate) fn head(&self) -> usize {
        self.max_head.min(HARD_MAX_HEAD)
    }

    /// The header-count limit actually enforced (see [`HARD_MAX_HEADERS`]).
    pub(crate) fn headers(&self) -> usize {
        self.max_headers.min(HARD_MAX_HEADERS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let l = Limits::default();
        assert_eq!(l.max_request_line, 8192);
        assert_eq!(l.max_head, 61440);
        assert_eq!(l.max_headers, 100);
        assert_eq!(l.max_chunk_extension, 16384);
        assert_eq!(l.max_trailer_section, 16384);
    }

    #[test]
    fn hard_caps_clamp() {
        let l = Limits {
            max_headers: 10_000,
            max_head: usize::MAX,
            ..Limits::default()
        };
        assert_eq!(l.headers(), HARD_MAX_HEADERS);
        assert_eq!(l.head(), HARD_MAX_HEAD);
    }
}
