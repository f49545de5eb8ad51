//! Rejections, one [`ErrorKind`] per class, each with the status a server answers.
//!
//! The codec never tries to recover from a malformed message: anything ambiguous is
//! a hard error and the connection layer answers with [`ParseError::status`] and
//! closes. Errors are `Copy` and carry no input bytes, so building one allocates
//! nothing and cannot leak attacker data into logs. On the response side the same
//! kinds apply; the proxy maps any upstream parse error to 502 instead.

use core::fmt;

/// Why a message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `parse_*` was given a buffer that does not hold a complete head.
    Incomplete,
    /// A line ends in a bare LF, or a CR is not followed by LF.
    LineEnding,
    /// The request line is longer than `Limits::max_request_line` (414).
    RequestLineTooLong,
    /// The head is longer than `Limits::max_head` (431).
    HeadTooLarge,
    /// More header fields than `Limits::max_headers` (431).
    TooManyHeaders,
    /// Method is not a token.
    InvalidMethod,
    /// Request target has invalid bytes, spaces, or a form the method does not allow.
    InvalidTarget,
    /// The version is not `HTTP/<digit>.<digit>`.
    InvalidVersion,
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1 (505).
    UnsupportedVersion,
    /// Header name is not a token, has whitespace before the colon, or the line is an
    /// obs-fold continuation or starts with whitespace.
    InvalidHeaderName,
    /// Header value holds NUL, CR, LF or another control byte.
    InvalidHeaderValue,
    /// HTTP/1.1 request without Host.
    MissingHost,
    /// More than one Host header.
    MultipleHost,
    /// Host (or the authority of an absolute-form target) is not a valid authority.
    InvalidHost,
    /// Content-Length is not plain decimal digits fitting a u64, or is a list.
    InvalidContentLength,
    /// More than one Content-Length header.
    MultipleContentLength,
    /// Both Content-Length and Transfer-Encoding.
    ContentLengthWithTransferEncoding,
    /// Transfer-Encoding where chunked is not last, is repeated, or the list is empty.
    InvalidTransferEncoding,
    /// A transfer coding other than chunked (501).
    UnsupportedTransferCoding,
    /// Transfer-Encoding in an HTTP/1.0 message.
    TransferEncodingOnHttp10,
    /// Chunk size is not plain hex or overflows a u64.
    InvalidChunkSize,
    /// Chunk extension is not `;name[=token|quoted-string]` with optional BWS.
    InvalidChunkExtension,
    /// Chunk extensions longer than `Limits::max_chunk_extension` in total.
    ChunkExtensionTooLong,
    /// Chunk data is not followed by CRLF (data longer than its size).
    InvalidChunkData,
    /// A trailer line is not a valid field line.
    InvalidTrailer,
    /// The trailer section is longer than `Limits::max_trailer_section` (431).
    TrailersTooLarge,
    /// A request field's name holds an underscore, on a listener that refuses them
    /// (`Limits::underscores`).
    UnderscoreInName,
    /// A response status line is malformed or its code is out of range.
    InvalidStatus,
    /// A header the proxy tried to add or replace is not a valid field line.
    InvalidOverlay,
}

/// A rejected message. [`ParseError::status`] is the status to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    kind: ErrorKind,
}

impl ParseError {
    pub(crate) const fn new(kind: ErrorKind) -> Self {
        ParseError { kind }
    }

    /// The class of rejection.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The status a server answers with: 400, 414, 431, 501 or 505.
    pub fn status(&self) -> u16 {
        use ErrorKind::*;
        match self.kind {
            RequestLineTooLong => 414,
            HeadTooLarge | TooManyHeaders | TrailersTooLarge => 431,
            UnsupportedTransferCoding => 501,
            UnsupportedVersion => 505,
            _ => 400,
        }
    }

    fn reason(&self) -> &'static str {
        use ErrorKind::*;
        match self.kind {
            Incomplete => "incomplete head",
            LineEnding => "line not terminated by CRLF",
            RequestLineTooLong => "request line too long",
            HeadTooLarge => "head too large",
            TooManyHeaders => "too many header fields",
            InvalidMethod => "invalid method",
            InvalidTarget => "invalid request target",
            InvalidVersion => "invalid HTTP version",
            UnsupportedVersion => "unsupported HTTP version",
            InvalidHeaderName => "invalid header name",
            InvalidHeaderValue => "invalid header value",
            MissingHost => "missing Host",
            MultipleHost => "multiple Host headers",
            InvalidHost => "invalid Host",
            InvalidContentLength => "invalid Content-Length",
            MultipleContentLength => "multiple Content-Length headers",
            ContentLengthWithTransferEncoding => "Content-Length with Transfer-Encoding",
            InvalidTransferEncoding => "invalid Transfer-Encoding",
            UnsupportedTransferCoding => "unsupported transfer coding",
            TransferEncodingOnHttp10 => "Transfer-Encoding in HTTP/1.0",
            InvalidChunkSize => "invalid chunk size",
            InvalidChunkExtension => "invalid chunk extension",
            ChunkExtensionTooLong => "chunk extensions too long",
            InvalidChunkData => "chunk data not followed by CRLF",
            InvalidTrailer => "invalid trailer field",
            TrailersTooLarge => "trailer section too large",
            UnderscoreInName => "header name contains underscores",
            InvalidStatus => "invalid status line",
            InvalidOverlay => "invalid header in overlay",
        }
    }
}

impl From<ErrorKind> for ParseError {
    fn from(kind: ErrorKind) -> Self {
        ParseError::new(kind)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(ParseError::new(ErrorKind::RequestLineTooLong).status(), 414);
        assert_eq!(ParseError::new(ErrorKind::TooManyHeaders).status(), 431);
        assert_eq!(
            ParseError::new(ErrorKind::UnsupportedTransferCoding).status(),
            501
        );
        assert_eq!(ParseError::new(ErrorKind::UnsupportedVersion).status(), 505);
        assert_eq!(ParseError::new(ErrorKind::LineEnding).status(), 400);
    }

    #[test]
    fn display_is_short() {
        let e = ParseError::new(ErrorKind::MissingHost);
        assert_eq!(e.to_string(), "missing Host (400)");
    }
}
