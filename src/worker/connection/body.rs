//! The request body on its way upstream.
//!
//! What arrived with the head is moved into the write chunk beside the rewritten head
//! ([`Connection::buffered_request_body`]), as far as it fits: the chunk never grows (a
//! grown chunk would be a reallocation, and the pool would drop it and allocate a fresh
//! one for the next request). The rest stays in the read buffer and goes out from there
//! ([`RequestBody::Held`] when all of it arrived, so a retry can replay it). What is still
//! to come streams client -> upstream one chunk at a time, the chunk itself lent to the
//! kernel ([`Connection::pump_request_body`]): one write in flight, and reading resumes
//! only when it completes, which is the backpressure. Chunked bodies are re-framed (new
//! size lines, extensions dropped, trailers only when valid), which copies their payload
//! next to the size lines ([`reframe`]).

use monoio::{buf::IoBuf, io::AsyncWriteRentExt};

use super::Connection;
use crate::worker::deadline::Deadline;
use crate::{
    error::{Cause, Error, ErrorKind, Side},
    filter::Chain,
    http1::{self, BodyFraming, ChunkEvent, ChunkedDecoder, ChunkedEncoder},
    upstream::conn::WriteHalf,
};

/// Where the request body stands.
#[derive(Debug)]
pub(super) enum RequestBody {
    /// Fully in the write chunk (or there is none).
    Complete,
    /// All of it arrived, but the last `n` bytes did not fit in the write chunk: they
    /// wait in the read buffer at `start` and are written after the chunk on every
    /// attempt (so the request can still be replayed), and consumed when the exchange
    /// is over.
    Held(usize),
    /// Bytes still to come from the client (some may be in the read buffer already).
    Length(u64),
    /// More chunks to come from the client (decoded by the connection's
    /// `request_decoder`); payload forwarded so far.
    Chunked(u64),
}

impl Connection<'_> {
    /// Moves the body bytes that arrived with the head into `out` (re-framing a chunked
    /// body), and says what is still to come. `chain` sees the payload (the module note
    /// of `filter`).
    pub(super) fn buffered_request_body(
        &mut self,
        out: &mut Vec<u8>,
        chain: &Chain,
    ) -> Result<RequestBody, Error> {
        match self.request.framing {
            BodyFraming::None | BodyFraming::ContentLength(0) => Ok(RequestBody::Complete),
            BodyFraming::ContentLength(length) => {
                let available = self.buf.len() - self.start;
                let take = usize::try_from(length).map_or(available, |n| n.min(available));
                if chain.reads_request_body() {
                    let piece = &self.buf[self.start..self.start + take];
                    chain
                        .on_request_body(piece, take as u64)
                        .map_err(|kind| Error::new(kind, Side::Client))?;
                }
                let copy = take.min(out.capacity() - out.len());
                out.extend_from_slice(&self.buf[self.start..self.start + copy]);
                self.start += copy;
                self.count_received(copy as u64);
                let remaining = length - copy as u64;
                Ok(if remaining == 0 {
                    RequestBody::Complete
                } else if remaining == (take - copy) as u64 {
                    RequestBody::Held(take - copy)
                } else {
                    RequestBody::Length(remaining)
                })
            }
            BodyFraming::Chunked => {
                let decoder = &mut self.request_decoder;
                decoder.reset();
                let mut payload = 0;
                let mut refused = Ok(());
                let mut observe = observer(chain, &mut refused);
                let (consumed, done) = reframe(
                    decoder,
                    &self.buf[self.start..],
                    out,
                    false,
                    (&mut payload, &mut observe),
                )
                .map_err(|e| Error::new(ErrorKind::BadRequestBody(e.status()), Side::Client))?;
                self.start += consumed;
                // The payload, not its framing (Envoy's body bytes).
                self.count_received(payload);
                drop(observe);
                refused.map_err(|kind| Error::new(kind, Side::Client))?;
                Ok(if done {
                    RequestBody::Complete
                } else {
                    RequestBody::Chunked(payload)
                })
            }
        }
    }

    /// Reads until the `length` bytes of the request body are in the read buffer (within
    /// `request_timeout`, else `stream_idle_timeout`, per read), so that the body is held
    /// for replay (`RequestBody::Held`). Stops early, without an error, at the listener's
    /// `buffer_limit`: the rest of the body then streams.
    #[inline(never)]
    pub(super) async fn hold_body(&mut self, length: u64) -> Result<(), Error> {
        let l = self.listener;
        let timeout = l.request_timeout.unwrap_or(l.stream_idle_timeout);
        loop {
            let held = self.buf.len() - self.start;
            if held as u64 >= length || held >= l.proxy.buffer_limit {
                return Ok(());
            }
            match self.read_more(timeout).await {
                super::Read::Bytes => {}
                super::Read::TimedOut => {
                    return Err(Error::new(ErrorKind::RequestTimeout, Side::Client))
                }
                super::Read::Closed | super::Read::Stopped => {
                    return Err(Error::client_gone(false, false, Cause::Closed))
                }
            }
        }
    }

    /// Writes the `n` body bytes at `buf[start..]` to the upstream, leaving them there.
    /// Zero copy: the read chunk itself goes to the kernel for the write.
    pub(super) async fn write_buffered(
        &mut self,
        upstream: &mut WriteHalf<'_>,
        n: usize,
        deadline: &mut Deadline<'_>,
    ) -> Result<(), Error> {
        let chunk = std::mem::take(&mut self.buf);
        let slice = chunk.slice(self.start..self.start + n);
        let (result, slice) = match deadline.within(upstream.write_all(slice)).await {
            Ok(done) => done,
            Err(expired) => {
                // The buffer stays with the cancelled write; the connection closes.
                self.start = 0;
                return Err(deadline.error(expired, true, false));
            }
        };
        self.buf = slice.into_inner();
        result.map_err(|e| Error::upstream_reset(true, false, Cause::of_error(&e)))?;
        Ok(())
    }

    /// Streams the rest of the request body from the client to the upstream.
    pub(super) async fn pump_request_body(
        &mut self,
        upstream: &mut WriteHalf<'_>,
        (body, chain): (&mut RequestBody, &Chain),
        out: &mut Vec<u8>,
        deadline: &mut Deadline<'_>,
    ) -> Result<(), Error> {
        // A failure found in the body: the upstream has seen part of it.
        let refuse = |kind| Error {
            request_written: true,
            ..Error::new(kind, Side::Client)
        };
        loop {
            // Bytes left in the read buffer (they did not fit in the write chunk) go first.
            let buffered = self.start < self.buf.len();
            match body {
                RequestBody::Complete | RequestBody::Held(_) => return Ok(()),
                RequestBody::Length(remaining) => {
                    if !buffered {
                        self.read_body(deadline).await?;
                    }
                    let available = self.buf.len() - self.start;
                    let take = usize::try_from(*remaining).map_or(available, |r| r.min(available));
                    if chain.reads_request_body() {
                        let piece = &self.buf[self.start..self.start + take];
                        let declared = match self.request.framing {
                            BodyFraming::ContentLength(n) => n,
                            BodyFraming::None | BodyFraming::Chunked => 0,
                        };
                        let received = declared - (*remaining - take as u64);
                        chain.on_request_body(piece, received).map_err(refuse)?;
                    }
                    self.write_buffered(upstream, take, deadline).await?;
                    self.start += take;
                    self.count_received(take as u64);
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        *body = RequestBody::Complete;
                    }
                }
                RequestBody::Chunked(payload) => {
                    if !buffered {
                        self.read_body(deadline).await?;
                    }
                    out.clear();
                    let before = *payload;
                    let decoder = &mut self.request_decoder;
                    let mut refused = Ok(());
                    let mut observe = observer(chain, &mut refused);
                    let (consumed, done) = reframe(
                        decoder,
                        &self.buf[self.start..],
                        out,
                        false,
                        (payload, &mut observe),
                    )
                    .map_err(|e| refuse(ErrorKind::BadRequestBody(e.status())))?;
                    self.start += consumed;
                    self.count_received(*payload - before);
                    drop(observe);
                    refused.map_err(refuse)?;
                    if !out.is_empty() {
                        let write = deadline.within(upstream.write_all(std::mem::take(out)));
                        let (result, back) = match write.await {
                            Ok(done) => done,
                            Err(expired) => return Err(deadline.error(expired, true, false)),
                        };
                        *out = back;
                        if let Err(e) = result {
                            return Err(Error::upstream_reset(true, false, Cause::of_error(&e)));
                        }
                    }
                    if done {
                        *body = RequestBody::Complete;
                    }
                }
            }
        }
    }
}

/// Shows decoded pieces to `chain` (when it reads bodies), keeping the first refusal in
/// `refused`: decoding goes on to the end of the input, and nothing more is sent.
fn observer<'a>(
    chain: &'a Chain,
    refused: &'a mut Result<(), ErrorKind>,
) -> impl FnMut(&[u8], u64) + 'a {
    let reads = chain.reads_request_body();
    move |piece, received| {
        if reads && refused.is_ok() {
            *refused = chain.on_request_body(piece, received);
        }
    }
}

/// What re-framing adds to one data piece: its size line (at most 16 hex digits and
/// CRLF) and the CRLF after the data.
const PIECE_FRAMING: usize = 18 + ChunkedEncoder::CHUNK_END.len();

/// Decodes chunked bytes from `input`, appending either re-framed chunks or (with
/// `raw`) the bare payload to `out`, as far as `out` has room: the decoder is fed at
/// most the room less [`PIECE_FRAMING`] at a time and yields at most one data piece per
/// call, so `out` does not grow (it can only when trailers that came in earlier reads
/// are written at the end, which is rare). Returns the bytes consumed (fewer than
/// `input.len()` only when the body ended or `out` is full) and whether the body ended;
/// adds the payload size to `payload`, and shows each data piece to `observe` with the
/// payload so far.
pub(super) fn reframe(
    decoder: &mut ChunkedDecoder,
    input: &[u8],
    out: &mut Vec<u8>,
    raw: bool,
    (payload, observe): (&mut u64, &mut impl FnMut(&[u8], u64)),
) -> Result<(usize, bool), http1::ParseError> {
    if out.is_empty() && out.capacity() <= PIECE_FRAMING {
        // Never the case with a pool chunk; room for progress all the same.
        out.reserve(crate::buffers::CHUNK);
    }
    let mut pos = 0;
    loop {
        let room = out.capacity() - out.len();
        let window = input.len().min(pos + room.saturating_sub(PIECE_FRAMING));
        let (consumed, event) = decoder.decode(&input[pos..window])?;
        match event {
            Some(ChunkEvent::Data(range)) => {
                let data = &input[pos + range.start..pos + range.end];
                *payload += data.len() as u64;
                observe(data, *payload);
                if !raw {
                    out.extend_from_slice(ChunkedEncoder::size_line(data.len() as u64).as_ref());
                }
                out.extend_from_slice(data);
                if !raw {
                    out.extend_from_slice(ChunkedEncoder::CHUNK_END);
                }
            }
            Some(ChunkEvent::Trailers) => {}
            Some(ChunkEvent::Done) => {
                if !raw {
                    out.extend_from_slice(ChunkedEncoder::LAST_CHUNK);
                    out.extend_from_slice(decoder.trailers());
                    out.extend_from_slice(ChunkedEncoder::END);
                }
                return Ok((pos + consumed, true));
            }
            None if consumed == 0 => return Ok((pos, false)),
            None => {}
        }
        pos += consumed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `reframe` without an observer.
    fn decode(
        d: &mut ChunkedDecoder,
        input: &[u8],
        out: &mut Vec<u8>,
        raw: bool,
        payload: &mut u64,
    ) -> Result<(usize, bool), http1::ParseError> {
        reframe(d, input, out, raw, (payload, &mut |_, _| {}))
    }

    #[test]
    fn reframing_never_grows_the_write_chunk() {
        let limits = http1::Limits::default();
        let mut wire = Vec::new();
        for (i, len) in [100usize, 3000, 1, 70].into_iter().enumerate() {
            wire.extend_from_slice(format!("{len:x};e=1\r\n").as_bytes());
            wire.extend(std::iter::repeat_n(b'a' + i as u8, len));
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\nX-T: 1\r\n\r\nNEXT");
        let payload_in = crate::http1::fuzzing::decode_all(&wire, wire.len(), &limits).unwrap();
        for capacity in [PIECE_FRAMING + 1, 64, 500, 4096] {
            let mut d = ChunkedDecoder::new(&limits);
            let mut out = Vec::with_capacity(capacity);
            // A head already in the chunk leaves less room for the first round.
            out.extend_from_slice(&[b'h'; 10][..10.min(capacity / 2)]);
            let mut all = Vec::new();
            let (mut pos, mut payload, mut done) = (0, 0, false);
            while !done {
                let (consumed, finished) =
                    decode(&mut d, &wire[pos..], &mut out, false, &mut payload).unwrap();
                assert_eq!(out.capacity(), capacity, "the chunk grew");
                assert!(consumed > 0 || finished || !out.is_empty());
                pos += consumed;
                done = finished;
                all.extend_from_slice(&out);
                out.clear();
            }
            assert_eq!(&wire[pos..], b"NEXT", "capacity {capacity}");
            let head = 10.min(capacity / 2);
            let decoded = crate::http1::fuzzing::decode_all(&all[head..], 7, &limits).unwrap();
            assert_eq!(decoded.0, payload_in.0, "capacity {capacity}");
            assert_eq!(decoded.1, b"X-T: 1\r\n");
            assert_eq!(payload, 3171);
        }
    }

    #[test]
    fn chunked_bodies_are_reframed_or_unwrapped() {
        let limits = http1::Limits::default();
        let wire = b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut out = Vec::new();
        let mut payload = 0;
        let mut d = ChunkedDecoder::new(&limits);
        let (consumed, done) = decode(&mut d, wire, &mut out, false, &mut payload).unwrap();
        assert!(done);
        assert_eq!(&wire[consumed..], b"NEXT");
        assert_eq!(out, b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n");
        assert_eq!(payload, 5);
        let mut raw = Vec::new();
        let mut d = ChunkedDecoder::new(&limits);
        decode(&mut d, wire, &mut raw, true, &mut payload).unwrap();
        assert_eq!(raw, b"abcde");
        // Split input: nothing is lost between calls.
        let mut out = Vec::new();
        let mut d = ChunkedDecoder::new(&limits);
        let (a, done_a) = decode(&mut d, &wire[..6], &mut out, false, &mut payload).unwrap();
        assert!(!done_a);
        let (_, done_b) = decode(&mut d, &wire[a..], &mut out, false, &mut payload).unwrap();
        assert!(done_b);
        assert_eq!(out, b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n");
    }
}
