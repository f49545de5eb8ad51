//! Property tests: parsing and decoding do not depend on how the bytes were split into
//! reads, and write-back of an unchanged head reproduces it exactly.

mod pipeline;

use proptest::prelude::*;
use ringway::http1::*;

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PURGE",
    ])
}

/// Field names that carry no framing meaning, so any combination is valid.
fn field() -> impl Strategy<Value = (String, String)> {
    ("X-[A-Za-z0-9-]{0,12}", "[!-~]([ -~]{0,30}[!-~])?")
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    (
        method(),
        "/[a-zA-Z0-9/._~?=&%-]{0,40}",
        prop::bool::ANY,
        prop::collection::vec(field(), 0..20),
        0usize..3,
    )
        .prop_map(|(m, path, http10, fields, leading)| {
            let mut raw = "\r\n".repeat(leading);
            raw += &format!("{m} {path} HTTP/1.{}\r\n", if http10 { 0 } else { 1 });
            raw += "Host: example.com:8080\r\n";
            for (n, v) in fields {
                raw += &format!("{n}: {v}\r\n");
            }
            raw += "\r\n";
            raw.into_bytes()
        })
}

/// Sorted cut points inside `len`.
fn cuts(len: usize, raw: Vec<usize>) -> Vec<usize> {
    let mut c: Vec<usize> = raw.into_iter().map(|x| x % (len + 1)).collect();
    c.push(len);
    c.sort_unstable();
    c.dedup();
    c
}

fn summary(raw: &[u8], r: &Request) -> String {
    let spans: Vec<_> = r
        .headers
        .iter()
        .map(|h| (h.name, h.value, h.line, h.hop_by_hop))
        .collect();
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {} {} {:?}",
        r.method,
        r.method_span,
        r.target,
        r.version,
        r.framing,
        r.host.map(|h| h.get(raw).to_vec()),
        r.path,
        r.keep_alive,
        r.head_len,
        spans
    )
}

proptest! {
    #[test]
    fn split_reads_parse_like_one_shot(raw in request(), points in prop::collection::vec(any::<usize>(), 0..12)) {
        let limits = Limits::default();
        let mut one = Request::new();
        let len = HeadScanner::new().scan(&raw, &limits).unwrap().unwrap();
        prop_assert_eq!(len, raw.len());
        parse_request(&raw[..len], &limits, &mut one).unwrap();

        let mut scanner = HeadScanner::new();
        let mut found = None;
        for end in cuts(raw.len(), points) {
            if let Some(n) = scanner.scan(&raw[..end], &limits).unwrap() {
                found = Some(n);
                break;
            }
        }
        prop_assert_eq!(found, Some(len));
        prop_assert_eq!(scanner.bytes_examined(), len as u64);
        let mut split = Request::new();
        parse_request(&raw[..len], &limits, &mut split).unwrap();
        prop_assert_eq!(summary(&raw, &one), summary(&raw, &split));
    }

    #[test]
    fn unchanged_write_back_is_identity(raw in request()) {
        let mut r = Request::new();
        parse_request(&raw, &Limits::default(), &mut r).unwrap();
        let mut segments = Vec::new();
        r.write_head(&mut segments);
        prop_assert_eq!(segments.len(), 1);
        let mut out = Vec::new();
        concat(&segments, &raw, &mut out);
        prop_assert_eq!(&out[..], &raw[r.request_line().start as usize..]);
    }

    #[test]
    fn chunked_decoding_ignores_splits(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..8),
        ext in prop::bool::ANY,
        trailer in prop::bool::ANY,
        points in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut body = Vec::new();
        for c in &chunks {
            body.extend_from_slice(format!("{:X}", c.len()).as_bytes());
            if ext {
                body.extend_from_slice(b" ; n=v;q=\"a b\"");
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(c);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n");
        if trailer {
            body.extend_from_slice(b"X-Trailer: yes\r\n");
        }
        body.extend_from_slice(b"\r\n");
        let want: Vec<u8> = chunks.concat();

        // Feed the decoder through arbitrary read boundaries.
        let limits = Limits::default();
        let mut decoder = ChunkedDecoder::new(&limits);
        let mut got = Vec::new();
        let mut start = 0;
        let mut done = false;
        for end in cuts(body.len(), points) {
            let mut piece = &body[start..end];
            while !piece.is_empty() && !done {
                let (n, event) = decoder.decode(piece).unwrap();
                match event {
                    Some(ChunkEvent::Data(r)) => got.extend_from_slice(&piece[r]),
                    Some(ChunkEvent::Done) => done = true,
                    _ => {}
                }
                piece = &piece[n..];
            }
            start = end;
        }
        if !done {
            done = matches!(decoder.decode(&[]).unwrap().1, Some(ChunkEvent::Done));
        }
        prop_assert!(done);
        prop_assert_eq!(got, want);
        let expected_trailers: &[u8] = if trailer { b"X-Trailer: yes\r\n" } else { b"" };
        prop_assert_eq!(decoder.trailers(), expected_trailers);
    }

    #[test]
    fn pipeline_ignores_splits(raw in request(), step in 1usize..64) {
        let limits = Limits::default();
        prop_assert_eq!(pipeline::forward_with(&raw, step, &limits), pipeline::forward(&raw));
    }
}
