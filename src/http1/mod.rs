//! HTTP/1.1 codec, sans-IO: pure functions and state machines over byte slices.
//!
//! Reading a request: feed every received byte of the head to [`HeadScanner::scan`]
//! until it returns the head length, then [`parse_request`] once into a reused
//! [`Request`]. The body is then delimited by [`ContentLengthBody`] or decoded by
//! [`ChunkedDecoder`], which report ranges of the caller's buffer: payload is never
//! copied. Forwarding: [`Request::strip_hop_by_hop`], header changes in
//! [`Request::overlay`], [`Request::write_head`] for the head segments and
//! [`ChunkedEncoder`] for re-framed chunk size lines.
//!
//! The module imports no runtime and does no I/O. Anything ambiguous is rejected with a
//! [`ParseError`] whose [`ParseError::status`] is the answer to send.

mod chunked;
mod error;
mod framing;
pub mod fuzzing;
mod head;
pub(crate) mod header;
mod limits;
mod overlay;
mod request;
mod response;
mod serialize;
mod span;
mod target;

pub use chunked::{ChunkEvent, ChunkedDecoder, ChunkedEncoder, SizeLine};
pub use error::{ErrorKind, ParseError};
pub use framing::{BodyFraming, ContentLengthBody};
pub use head::HeadScanner;
pub use header::{HeaderEntry, NameLengths};
pub use limits::{Limits, Underscores, HARD_MAX_HEADERS};
pub use overlay::{Edit, Overlay};
pub use request::{line_value, parse_request, Method, Request, Version};
pub use response::{parse_response, Response, ResponseFraming};
pub use serialize::{concat, Segment};
pub use span::Span;
