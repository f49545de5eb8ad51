//! Codec throughput: request heads one-shot and trickled (16-byte reads), each next to
//! raw `httparse::Request::parse` of the same bytes, and chunked decoding in MB/s.
//!
//! Run briefly: `cargo bench --bench http1 -- --warm-up-time 1 --measurement-time 2`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringway::http1::*;

fn small() -> Vec<u8> {
    b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n"
        .to_vec()
}

fn large() -> Vec<u8> {
    let mut raw =
        b"GET /api/v1/users/12345/profile?fields=name,email HTTP/1.1\r\nHost: api.example.com\r\n"
            .to_vec();
    for i in 0..29 {
        raw.extend_from_slice(
            format!("X-Header-{i:02}: value-{i}-abcdefghijklmnopqrstuvwxyz\r\n").as_bytes(),
        );
    }
    raw.extend_from_slice(b"\r\n");
    raw
}

/// Scanner + parser, fed in `step`-byte reads (the way a connection sees them).
fn ringway_parse(raw: &[u8], step: usize, scanner: &mut HeadScanner, req: &mut Request) -> usize {
    let limits = Limits::default();
    scanner.reset();
    let mut seen = 0;
    loop {
        seen = (seen + step).min(raw.len());
        if let Ok(Some(n)) = scanner.scan(&raw[..seen], &limits) {
            parse_request(&raw[..n], &limits, req).expect("valid");
            return req.headers.len();
        }
    }
}

/// Raw httparse, re-run from the start on every read as a plain user of it would.
fn httparse_parse(raw: &[u8], step: usize) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut seen = 0;
    loop {
        seen = (seen + step).min(raw.len());
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(_)) = req.parse(&raw[..seen]) {
            return req.headers.len();
        }
    }
}

fn heads(c: &mut Criterion) {
    let mut group = c.benchmark_group("head");
    for (name, raw) in [("small", small()), ("30-headers", large())] {
        group.throughput(Throughput::Elements(1));
        for (mode, step) in [("one-shot", usize::MAX), ("16B-reads", 16)] {
            let id = format!("{name}/{mode}");
            let mut scanner = HeadScanner::new();
            let mut req = Request::new();
            group.bench_with_input(BenchmarkId::new("ringway", &id), &raw, |b, raw| {
                b.iter(|| ringway_parse(black_box(raw), step, &mut scanner, &mut req))
            });
            group.bench_with_input(BenchmarkId::new("httparse", &id), &raw, |b, raw| {
                b.iter(|| httparse_parse(black_box(raw), step))
            });
        }
        // The two halves of the one-shot ringway path, to see where time goes.
        let limits = Limits::default();
        let mut scanner = HeadScanner::new();
        group.bench_with_input(BenchmarkId::new("scan-only", name), &raw, |b, raw| {
            b.iter(|| {
                scanner.reset();
                scanner.scan(black_box(raw), &limits)
            })
        });
        let mut req = Request::new();
        group.bench_with_input(BenchmarkId::new("parse-only", name), &raw, |b, raw| {
            b.iter(|| parse_request(black_box(raw), &limits, &mut req))
        });
    }
    group.finish();
}

fn chunked(c: &mut Criterion) {
    let payload = vec![b'x'; 4096];
    let mut body = Vec::new();
    for _ in 0..256 {
        body.extend_from_slice(b"1000\r\n");
        body.extend_from_slice(&payload);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let limits = Limits::default();
    let mut group = c.benchmark_group("chunked");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("decode-1MiB-4KiB-chunks", |b| {
        let mut decoder = ChunkedDecoder::new(&limits);
        b.iter(|| {
            decoder.reset();
            let mut input = black_box(&body[..]);
            let mut total = 0;
            loop {
                let (n, event) = decoder.decode(input).expect("valid");
                match event {
                    Some(ChunkEvent::Data(r)) => total += r.len(),
                    Some(ChunkEvent::Done) | None => break,
                    Some(ChunkEvent::Trailers) => {}
                }
                input = &input[n..];
            }
            total
        })
    });
    group.finish();
}

/// What forwarding a head costs beyond parsing it: stripping hop-by-hop fields, adding
/// two forwarding headers and copying the result into a write buffer (the proxy copies
/// heads into one write rather than a vectored write of original spans).
fn write_back(c: &mut Criterion) {
    let mut group = c.benchmark_group("write-back");
    for (name, raw) in [("small", small()), ("30-headers", large())] {
        let limits = Limits::default();
        let mut req = Request::new();
        let mut out = Vec::with_capacity(16 * 1024);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("strip-add-copy", name), &raw, |b, raw| {
            b.iter(|| {
                parse_request(raw, &limits, &mut req).unwrap();
                req.strip_hop_by_hop(raw);
                req.overlay.add(b"x-forwarded-for", b"127.0.0.1").unwrap();
                req.overlay
                    .add(b"x-request-id", b"0f8fad5b-d9cb-469f-a165-70867728950e")
                    .unwrap();
                out.clear();
                out.extend_from_slice(b"GET / HTTP/1.1\r\n");
                req.append_fields(raw, &mut out);
                out.len()
            })
        });
        group.bench_with_input(BenchmarkId::new("parse-only", name), &raw, |b, raw| {
            b.iter(|| {
                parse_request(raw, &limits, &mut req).unwrap();
                req.headers.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, heads, chunked, write_back);
criterion_main!(benches);
