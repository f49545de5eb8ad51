//! The full proxy pipeline over one raw byte string, shared by the integration tests:
//! scan -> parse -> strip hop-by-hop -> write-back + body (Content-Length pass-through
//! or chunked re-framing), for every pipelined request in the input.

#![allow(dead_code)]

use ringway::http1::*;

/// Forwards every request in `raw` (fed in `step`-byte reads to the scanner), or the
/// status of the first rejection. Input ending mid-message is status 0.
pub fn forward_with(raw: &[u8], step: usize, limits: &Limits) -> Result<Vec<u8>, u16> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut req = Request::new();
    let mut scanner = HeadScanner::new();
    while at < raw.len() {
        let buf = &raw[at..];
        scanner.reset();
        let mut seen = 0;
        let head_len = loop {
            seen = (seen + step).min(buf.len());
            match scanner.scan(&buf[..seen], limits).map_err(|e| e.status())? {
                Some(n) => break n,
                None if seen == buf.len() => return Err(0),
                None => {}
            }
        };
        parse_request(&buf[..head_len], limits, &mut req).map_err(|e| e.status())?;
        req.strip_hop_by_hop(buf);
        if req.framing == BodyFraming::Chunked {
            req.overlay
                .add(b"Transfer-Encoding", b"chunked")
                .map_err(|e| e.status())?;
        }
        let mut segments = Vec::new();
        req.write_head(&mut segments);
        concat(&segments, buf, &mut out);
        let body = &buf[head_len..];
        let used = match req.framing {
            BodyFraming::None => 0,
            BodyFraming::ContentLength(n) => {
                let mut cl = ContentLengthBody::new(n);
                let take = cl.take(body.len());
                if !cl.is_done() {
                    return Err(0);
                }
                out.extend_from_slice(&body[..take]);
                take
            }
            BodyFraming::Chunked => reframe(body, limits, &mut out)?,
        };
        at += head_len + used;
    }
    Ok(out)
}

/// `forward_with` in one read with default limits.
pub fn forward(raw: &[u8]) -> Result<Vec<u8>, u16> {
    forward_with(raw, usize::MAX, &Limits::default())
}

/// Decodes a chunked body at the start of `body` and appends it re-framed.
pub fn reframe(body: &[u8], limits: &Limits, out: &mut Vec<u8>) -> Result<usize, u16> {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut at = 0;
    loop {
        let input = &body[at..];
        let (n, event) = decoder.decode(input).map_err(|e| e.status())?;
        match event {
            Some(ChunkEvent::Data(r)) => {
                out.extend_from_slice(ChunkedEncoder::size_line(r.len() as u64).as_ref());
                out.extend_from_slice(&input[r]);
                out.extend_from_slice(ChunkedEncoder::CHUNK_END);
            }
            Some(ChunkEvent::Trailers) => {}
            Some(ChunkEvent::Done) => {
                out.extend_from_slice(ChunkedEncoder::LAST_CHUNK);
                out.extend_from_slice(decoder.trailers());
                out.extend_from_slice(ChunkedEncoder::END);
                return Ok(at + n);
            }
            None => return Err(0),
        }
        at += n;
    }
}
