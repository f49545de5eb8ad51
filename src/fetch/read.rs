//! Reading a response from a byte source: heads with ringway's own sans-IO codec
//! (`http1::HeadScanner` and `http1::parse_response`, the same strict rules the proxy
//! applies to its upstreams), interim 1xx responses skipped, and the body by its
//! framing: `content-length`, chunked (`http1::ChunkedDecoder`; trailers are dropped)
//! or up to the close. The body is bounded by `max_body` whatever the framing; a
//! declared length over it fails before any of it is read.
//!
//! The source is a closure (one `read` call), so the tests can feed responses split at
//! every byte without a socket.

use crate::http1::{self, ChunkEvent, ChunkedDecoder, HeadScanner, Limits, ResponseFraming};

use super::{Failure, FetchErrorKind, Response};

/// Bytes asked for per read of a body that may be long.
const READ_SIZE: usize = 16 * 1024;
/// Bytes asked for per read of the head, and of a body known to be short: the buffer
/// is zeroed when it is made (safe Rust reads into initialized memory), and most
/// answers (a collector's, a token endpoint's) are a few hundred bytes, so a
/// `READ_SIZE` buffer per response cost the span exporter more than the answer.
const FIRST_READ: usize = 2 * 1024;

/// Reads one response to a request with `method`. `read` fills the slice it is given
/// and returns the count, 0 at the end of the stream. With the response, whether the
/// connection can carry another request: the server did not ask to close it, the body
/// had a length (or chunked coding) and nothing came after it.
pub(super) fn read_response(
    method: http1::Method,
    max_body: usize,
    mut read: impl FnMut(&mut [u8], &str) -> Result<usize, Failure>,
) -> Result<(Response, bool), Failure> {
    let limits = Limits::default();
    let mut chunk = vec![0u8; FIRST_READ];
    let mut buf: Vec<u8> = Vec::new();
    let mut scanner = HeadScanner::new();
    let mut head = http1::Response::new();
    let head_len = loop {
        match scanner.scan(&buf, &limits) {
            Ok(Some(head_len)) => {
                let bytes = buf.get(..head_len).unwrap_or_default();
                http1::parse_response(bytes, method, &limits, &mut head)
                    .map_err(|e| malformed("response head", e))?;
                match head.status {
                    101 => {
                        return Err(Failure::new(
                            FetchErrorKind::Protocol,
                            "the server switched protocols unasked (101)".to_owned(),
                        ))
                    }
                    // Interim (100 Continue, 103 Early Hints): the answer follows.
                    100..=199 => {
                        buf.drain(..head_len);
                        scanner.reset();
                    }
                    _ => break head_len,
                }
            }
            Ok(None) => {
                let n = read(&mut chunk, "waiting for the response head")?;
                if n == 0 {
                    let why = if buf.is_empty() {
                        "the server closed the connection without a response".to_owned()
                    } else {
                        format!(
                            "the server closed the connection after {} bytes of a response head",
                            buf.len()
                        )
                    };
                    return Err(Failure::new(FetchErrorKind::Protocol, why));
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            Err(e) => return Err(malformed("response head", e)),
        }
    };
    let bytes = buf.get(..head_len).unwrap_or_default();
    let headers = head
        .headers
        .iter()
        .map(|h| {
            (
                String::from_utf8_lossy(h.name(bytes)).into_owned(),
                String::from_utf8_lossy(h.value(bytes)).into_owned(),
            )
        })
        .collect();
    let early = buf.get(head_len..).unwrap_or_default();
    let body_reads = match head.framing {
        ResponseFraming::None => 0,
        ResponseFraming::ContentLength(len) => {
            usize::try_from(len).map_or(READ_SIZE, |len| len.clamp(FIRST_READ, READ_SIZE))
        }
        ResponseFraming::Chunked | ResponseFraming::CloseDelimited => READ_SIZE,
    };
    if chunk.len() < body_reads {
        chunk.resize(body_reads, 0);
    }
    // `excess`: bytes after the message (nothing was asked for them).
    let (body, excess) = match head.framing {
        ResponseFraming::None => (Vec::new(), !early.is_empty()),
        ResponseFraming::ContentLength(len) => {
            content_length_body(len, max_body, early, &mut chunk, &mut read)?
        }
        ResponseFraming::Chunked => chunked_body(&limits, max_body, early, &mut chunk, &mut read)?,
        ResponseFraming::CloseDelimited => (
            close_delimited_body(max_body, early, &mut chunk, &mut read)?,
            false,
        ),
    };
    let reusable = head.keep_alive && !excess;
    let response = Response {
        status: head.status,
        headers,
        body,
    };
    Ok((response, reusable))
}

fn malformed(what: &str, e: http1::ParseError) -> Failure {
    Failure::new(
        FetchErrorKind::Protocol,
        format!("malformed {what}: {:?}", e.kind()),
    )
}

fn too_large(max_body: usize, seen: String) -> Failure {
    Failure::new(
        FetchErrorKind::BodyTooLarge,
        format!("the body is larger than the {max_body} bytes allowed ({seen})"),
    )
}

fn content_length_body(
    len: u64,
    max_body: usize,
    early: &[u8],
    chunk: &mut [u8],
    read: &mut impl FnMut(&mut [u8], &str) -> Result<usize, Failure>,
) -> Result<(Vec<u8>, bool), Failure> {
    let want = match usize::try_from(len) {
        Ok(want) if want <= max_body => want,
        _ => return Err(too_large(max_body, format!("content-length {len}"))),
    };
    let mut body = Vec::with_capacity(want);
    body.extend_from_slice(early.get(..want.min(early.len())).unwrap_or_default());
    let mut excess = early.len() > want;
    while body.len() < want {
        let n = read(chunk, "reading the body")?;
        if n == 0 {
            return Err(Failure::new(
                FetchErrorKind::Protocol,
                format!(
                    "the server closed the connection after {} of {want} body bytes",
                    body.len()
                ),
            ));
        }
        let take = n.min(want - body.len());
        excess |= n > take;
        body.extend_from_slice(chunk.get(..take).unwrap_or_default());
    }
    Ok((body, excess))
}

fn chunked_body(
    limits: &Limits,
    max_body: usize,
    early: &[u8],
    chunk: &mut [u8],
    read: &mut impl FnMut(&mut [u8], &str) -> Result<usize, Failure>,
) -> Result<(Vec<u8>, bool), Failure> {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut body = Vec::new();
    if let Some(left) = decode(&mut decoder, early, max_body, &mut body)? {
        return Ok((body, left > 0));
    }
    loop {
        let n = read(chunk, "reading the body")?;
        if n == 0 {
            return Err(Failure::new(
                FetchErrorKind::Protocol,
                format!(
                    "the server closed the connection inside the chunked body (after {} bytes)",
                    body.len()
                ),
            ));
        }
        if let Some(left) = decode(
            &mut decoder,
            chunk.get(..n).unwrap_or_default(),
            max_body,
            &mut body,
        )? {
            return Ok((body, left > 0));
        }
    }
}

/// Feeds `input` to the decoder, appending payload to `body`; once the body ended, the
/// count of `input`'s bytes after it.
fn decode(
    decoder: &mut ChunkedDecoder,
    input: &[u8],
    max_body: usize,
    body: &mut Vec<u8>,
) -> Result<Option<usize>, Failure> {
    let mut rest = input;
    loop {
        let (used, event) = decoder
            .decode(rest)
            .map_err(|e| malformed("chunked body", e))?;
        match event {
            Some(ChunkEvent::Data(range)) => {
                let data = rest.get(range).unwrap_or_default();
                if body.len() + data.len() > max_body {
                    return Err(too_large(max_body, "chunked".to_owned()));
                }
                body.extend_from_slice(data);
            }
            Some(ChunkEvent::Trailers) => {}
            Some(ChunkEvent::Done) => return Ok(Some(rest.len().saturating_sub(used))),
            None => return Ok(None),
        }
        rest = rest.get(used..).unwrap_or_default();
    }
}

fn close_delimited_body(
    max_body: usize,
    early: &[u8],
    chunk: &mut [u8],
    read: &mut impl FnMut(&mut [u8], &str) -> Result<usize, Failure>,
) -> Result<Vec<u8>, Failure> {
    if early.len() > max_body {
        return Err(too_large(max_body, "delimited by the close".to_owned()));
    }
    let mut body = early.to_vec();
    loop {
        let n = read(chunk, "reading the body up to the close")?;
        if n == 0 {
            return Ok(body);
        }
        if body.len() + n > max_body {
            return Err(too_large(max_body, "delimited by the close".to_owned()));
        }
        body.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::Method;

    /// Reads `raw` handed out `step` bytes at a time.
    fn read_split(
        raw: &[u8],
        step: usize,
        method: Method,
        max_body: usize,
    ) -> Result<(Response, bool), Failure> {
        let mut at = 0;
        read_response(method, max_body, |buf, _| {
            let n = step.min(raw.len() - at).min(buf.len());
            buf[..n].copy_from_slice(&raw[at..at + n]);
            at += n;
            Ok(n)
        })
    }

    /// The same result for every split of `raw`.
    fn read_every_split(raw: &[u8], max_body: usize) -> Result<Response, Failure> {
        splits(raw, max_body, false).map(|(response, _)| response)
    }

    /// The same result, and the same verdict on the connection, for every split of `raw`.
    fn every_split(raw: &[u8], max_body: usize) -> Result<(Response, bool), Failure> {
        splits(raw, max_body, true)
    }

    /// The same result for every split of `raw` (and the same verdict on the connection
    /// when `verdict`: bytes past the message are seen only when read with it).
    fn splits(raw: &[u8], max_body: usize, verdict: bool) -> Result<(Response, bool), Failure> {
        let whole = read_split(raw, raw.len().max(1), Method::Get, max_body);
        for step in 1..raw.len() {
            let split = read_split(raw, step, Method::Get, max_body);
            match (&whole, &split) {
                (Ok((a, a_reusable)), Ok((b, b_reusable))) => {
                    assert_eq!(
                        (a.status, &a.headers, &a.body),
                        (b.status, &b.headers, &b.body),
                        "step {step}"
                    );
                    assert!(!verdict || a_reusable == b_reusable, "step {step}");
                }
                (Err(a), Err(b)) => {
                    assert_eq!(a.kind, b.kind, "step {step}: {} / {}", a.cause, b.cause)
                }
                _ => panic!("step {step}: {:?} vs {:?}", whole.is_ok(), split.is_ok()),
            }
        }
        whole
    }

    #[test]
    fn content_length_chunked_and_close_delimited() {
        let r = read_every_split(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloEXTRA",
            100,
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello");
        assert_eq!(r.header("x-a"), Some("b"));
        assert_eq!(r.header("content-length"), Some("5"));

        let r = read_every_split(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nT: v\r\n\r\n",
            100,
        )
        .unwrap();
        assert_eq!(r.body, b"hello!");

        let r = read_every_split(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", 100).unwrap();
        assert_eq!(r.body, b"until the end");
    }

    #[test]
    fn interim_responses_are_skipped() {
        let r = read_every_split(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\nno",
            100,
        )
        .unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"no");
        assert_eq!(r.header("link"), None);
    }

    #[test]
    fn bodiless_answers() {
        let r = read_every_split(b"HTTP/1.1 204 No Content\r\n\r\n", 0).unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        let r = read_split(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            5,
            Method::Head,
            0,
        )
        .unwrap();
        assert_eq!((r.0.status, r.0.body.len(), r.1), (200, 0, true));
    }

    #[test]
    fn a_connection_is_reusable_only_after_a_whole_message_and_no_close() {
        let reusable = |raw: &[u8]| every_split(raw, 100).unwrap().1;
        assert!(reusable(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        ));
        assert!(reusable(b"HTTP/1.1 204 No Content\r\n\r\n"));
        assert!(reusable(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
        ));
        assert!(reusable(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"
        ));
        // The server closes it, or nothing delimits the body but the close.
        assert!(!reusable(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"
        ));
        assert!(!reusable(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"));
        assert!(!reusable(b"HTTP/1.1 200 OK\r\n\r\nup to the close"));
        // Bytes after the message, read with it: nobody asked for them. (Ones that come
        // in a later read stay in the socket, where the check before reuse finds them.)
        let whole = |raw: &[u8]| read_split(raw, raw.len(), Method::Get, 100).unwrap().1;
        assert!(!whole(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA"
        ));
        assert!(!whole(b"HTTP/1.1 204 No Content\r\n\r\nEXTRA"));
        assert!(!whole(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nEXTRA"
        ));
        assert!(whole(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ));
    }

    #[test]
    fn max_body_holds_for_every_framing() {
        let kind = |raw: &[u8]| read_every_split(raw, 4).err().map(|e| e.kind);
        let big = Some(FetchErrorKind::BodyTooLarge);
        assert_eq!(
            kind(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            big
        );
        assert_eq!(
            kind(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"),
            Some(FetchErrorKind::Protocol)
        );
        assert_eq!(
            kind(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n"),
            big
        );
        assert_eq!(kind(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), big);
        assert_eq!(kind(b"HTTP/1.1 200 OK\r\n\r\nhello"), big);
        // Exactly the limit is fine.
        assert!(read_every_split(b"HTTP/1.1 200 OK\r\n\r\nhell", 4).is_ok());
        assert!(read_every_split(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nhell", 4).is_ok());
    }

    #[test]
    fn cut_and_malformed_responses_are_protocol_errors() {
        let fails = |raw: &[u8], says: &str| {
            let e = read_every_split(raw, 100).expect_err("an error");
            assert_eq!(e.kind, FetchErrorKind::Protocol, "{}", e.cause);
            assert!(e.cause.contains(says), "{:?} lacks {says:?}", e.cause);
        };
        fails(b"", "without a response");
        fails(
            b"HTTP/1.1 200 OK\r\nContent-",
            "after 25 bytes of a response head",
        );
        fails(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
            "after 3 of 5 body bytes",
        );
        fails(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            "inside the chunked body",
        );
        fails(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\n",
            "InvalidChunkSize",
        );
        fails(b"HTTP/1.1 200 OK\nX: y\r\n\r\n", "LineEnding");
        fails(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "MultipleContentLength",
        );
        fails(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101");
        fails(b"SSH-2.0-OpenSSH\r\n\r\n", "malformed response head");
    }
}
