//! Fuzz entry points, shared by the cargo-fuzz targets (`fuzz/`) and by
//! `tests/fuzz_corpus.rs`, which replays the seed corpus in ordinary `cargo test`.
//!
//! Each function must never panic on any input; the `assert!`s check codec invariants
//! (split-independence, round-trip write-back), so a failing assertion is a bug found.

use super::*;

/// Scan one-shot and in pieces, parse, strip, write back, re-parse the forwarded head.
pub fn fuzz_request_head(data: &[u8]) {
    let limits = Limits::default();
    let mut scanner = HeadScanner::new();
    let one_shot = scanner.scan(data, &limits);
    // Split at a point chosen by the data, so the fuzzer explores splits too.
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    scanner.reset();
    let first = scanner.scan(&data[..split], &limits);
    let pieces = match first {
        Ok(None) => scanner.scan(data, &limits),
        other => other,
    };
    if let (Ok(Some(a)), Ok(Some(b))) = (&one_shot, &pieces) {
        assert_eq!(a, b, "split changed the head length");
    }

    let mut req = Request::new();
    let direct = parse_request(data, &limits, &mut req);
    let Ok(Some(head_len)) = one_shot else { return };
    let parsed = parse_request(&data[..head_len], &limits, &mut req);
    assert_eq!(
        direct.is_ok(),
        parsed.is_ok(),
        "trailing bytes changed the parse"
    );
    if parsed.is_err() {
        return;
    }
    assert_eq!(req.head_len, head_len);
    for h in &req.headers {
        assert!(h.line.end as usize <= head_len);
    }
    let mut unchanged = Vec::new();
    {
        let mut segments = Vec::new();
        req.write_head(&mut segments);
        concat(&segments, data, &mut unchanged);
    }
    assert_eq!(
        &unchanged[..],
        &data[req.request_line().start as usize..head_len]
    );

    req.strip_hop_by_hop(data);
    let mut segments = Vec::new();
    req.write_head(&mut segments);
    let mut forwarded = Vec::new();
    concat(&segments, data, &mut forwarded);
    let mut again = Request::new();
    // The forwarded head lost hop-by-hop fields (Transfer-Encoding among them) but must
    // still be a valid head with the same request line.
    if parse_request(&forwarded, &limits, &mut again).is_ok() {
        assert_eq!(again.method_span.get(&forwarded), req.method_span.get(data));
        assert_eq!(again.target.get(&forwarded), req.target.get(data));
    }
}

/// Parse a response head for a method chosen by the first byte, then write it back.
pub fn fuzz_response_head(data: &[u8]) {
    let (method, rest) = match data.split_first() {
        Some((b, rest)) => (
            match b % 4 {
                0 => Method::Get,
                1 => Method::Head,
                2 => Method::Connect,
                _ => Method::Post,
            },
            rest,
        ),
        None => (Method::Get, data),
    };
    let limits = Limits::default();
    let mut scanner = HeadScanner::new();
    let scanned = scanner.scan(rest, &limits);
    let mut resp = Response::new();
    if parse_response(rest, method, &limits, &mut resp).is_err() {
        return;
    }
    if let Ok(Some(n)) = scanned {
        assert_eq!(n, resp.head_len);
    }
    let mut segments = Vec::new();
    resp.write_head(&mut segments);
    let mut out = Vec::new();
    concat(&segments, rest, &mut out);
    assert_eq!(
        &out[..],
        &rest[resp.status_line().start as usize..resp.head_len]
    );
}

/// Decode one-shot and byte by byte; both must agree on payload, trailers and outcome.
pub fn fuzz_chunked(data: &[u8]) {
    let limits = Limits {
        max_chunk_extension: 64,
        max_trailer_section: 256,
        ..Limits::default()
    };
    let whole = decode_all(data, data.len().max(1), &limits);
    let split = decode_all(data, 1, &limits);
    assert_eq!(whole, split, "split changed the decoding");
    if let Ok((payload, trailers, used)) = whole {
        // Re-frame and decode again: the payload must survive.
        let mut framed = Vec::new();
        if !payload.is_empty() {
            framed.extend_from_slice(ChunkedEncoder::size_line(payload.len() as u64).as_ref());
            framed.extend_from_slice(&payload);
            framed.extend_from_slice(ChunkedEncoder::CHUNK_END);
        }
        framed.extend_from_slice(ChunkedEncoder::LAST_CHUNK);
        framed.extend_from_slice(&trailers);
        framed.extend_from_slice(ChunkedEncoder::END);
        let again = decode_all(&framed, framed.len(), &limits);
        assert_eq!(again, Ok((payload, trailers, framed.len())));
        assert!(used <= data.len());
    }
}

type Decoded = Result<(Vec<u8>, Vec<u8>, usize), ErrorKind>;

/// Feeds `input` in `step`-byte reads; returns payload, trailers and bytes used, or
/// the error (`Incomplete` if the input ended first).
pub fn decode_all(input: &[u8], step: usize, limits: &Limits) -> Decoded {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut payload = Vec::new();
    let mut fed = 0;
    for piece in input.chunks(step.max(1)) {
        let mut off = 0;
        loop {
            let rest = piece.get(off..).unwrap_or_default();
            let (n, event) = decoder.decode(rest).map_err(|e| e.kind())?;
            match &event {
                Some(ChunkEvent::Data(r)) => {
                    payload.extend_from_slice(rest.get(r.clone()).unwrap_or_default())
                }
                Some(ChunkEvent::Done) => {
                    return Ok((payload, decoder.trailers().to_vec(), fed + off + n))
                }
                Some(ChunkEvent::Trailers) | None => {}
            }
            off += n;
            if event.is_none() {
                break;
            }
        }
        fed += piece.len();
    }
    Err(ErrorKind::Incomplete)
}
