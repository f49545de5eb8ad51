//! What trace context costs a request per hop (issue 23; budget: span creation and
//! propagation at most 300 ns per hop).
//!
//! - `extract/{w3c,b3,b3_single,none}`: one pass of `Extractor::observe` over a
//!   realistic 12-field request head (host, user agent, accept…, the trace fields of the
//!   format) and `finish`.
//! - `decide/{envoy,native}`: the sampling decision from the request id (Envoy mode, 1 %
//!   random share) or from a draw.
//! - `ids`: a new span id (and a trace id) from the worker's generator.
//! - `write_lines/{w3c,all}`: the lines a hop writes upstream: `traceparent`, or all three
//!   formats with a parent.
//! - `hop/{w3c,b3,none}`: the whole per-hop cost: extract + decide + ids + write_lines
//!   (with the request's own formats, plus W3C for a request that came with none).
//!
//! Run: `cargo bench --bench trace -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ringway::config::observability::Sampling;
use ringway::config::resilience::Fraction;
use ringway::trace::context::{
    new_span_id, new_trace_id, write_lines, Extractor, Formats, Outgoing, MAX_LINES,
};
use ringway::trace::sampling::{decide, Decide};

const COMMON: &[(&[u8], &[u8])] = &[
    (b"Host", b"api.example.com"),
    (
        b"User-Agent",
        b"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ),
    (b"Accept", b"application/json, text/plain, */*"),
    (b"Accept-Language", b"en-US,en;q=0.5"),
    (b"Accept-Encoding", b"gzip, deflate, br, zstd"),
    (
        b"Authorization",
        b"Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.abc",
    ),
    (b"x-request-id", b"3e4f2a1b-9c8d-4e7f-a6b5-c4d3e2f1a0b9"),
    (b"Content-Type", b"application/json"),
    (b"Connection", b"keep-alive"),
];

fn head(trace: &[(&'static [u8], &'static [u8])]) -> Vec<(&'static [u8], &'static [u8])> {
    let mut h: Vec<_> = COMMON.to_vec();
    h.splice(1..1, trace.iter().copied());
    h
}

fn w3c() -> Vec<(&'static [u8], &'static [u8])> {
    head(&[
        (
            b"traceparent",
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        (b"tracestate", b"congo=t61rcWkgMzE"),
    ])
}

fn b3() -> Vec<(&'static [u8], &'static [u8])> {
    head(&[
        (b"X-B3-TraceId", b"80f198ee56343ba864fe8b2a57d3eff7"),
        (b"X-B3-ParentSpanId", b"05e3ac9a4f6e3b90"),
        (b"X-B3-SpanId", b"e457b5a2e4d86bd1"),
        (b"X-B3-Sampled", b"1"),
    ])
}

fn b3_single() -> Vec<(&'static [u8], &'static [u8])> {
    head(&[(
        b"b3",
        b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
    )])
}

fn none() -> Vec<(&'static [u8], &'static [u8])> {
    head(&[
        (b"Cookie", b"session=abc"),
        (b"Referer", b"https://example.com/"),
    ])
}

const ONE_PERCENT: Sampling = Sampling {
    random: Fraction {
        numerator: 1,
        denominator: 100,
    },
    client: Fraction::ALL,
    overall: Fraction::ALL,
};

/// One hop: what the worker does per request with a traced listener.
fn hop(
    fields: &[(&[u8], &[u8])],
    rng: &mut fastrand::Rng,
    sampling: &Sampling,
    out: &mut [u8; MAX_LINES],
) -> usize {
    let mut ex = Extractor::default();
    let mut dropped = 0u32;
    for (n, v) in fields {
        dropped += u32::from(ex.observe(n, v));
    }
    let got = ex.finish();
    let parent = got.context.and_then(|c| c.sampled).or(got.sampled_only);
    let d = decide(&Decide {
        sampling,
        parent,
        client_trace_id: false,
        force_trace: false,
        request_id: Some(b"3e4f2a1b-9c8d-4e7f-a6b5-c4d3e2f1a0b9"),
        draw: rng.u64(..),
    });
    let span_id = new_span_id(rng);
    let (trace_id, short_id, formats) = match got.context {
        Some(c) => (c.trace_id, c.short_id, c.formats),
        None => (new_trace_id(rng), false, Formats::NONE),
    };
    let o = Outgoing {
        trace_id,
        short_id,
        span_id,
        parent_id: got.context.map_or(0, |c| c.span_id),
        sampled: d.sampled,
        debug: false,
    };
    let formats = formats.union(Formats::W3C);
    write_lines(&o, formats, out) + dropped as usize
}

fn extract(c: &mut Criterion) {
    let mut g = c.benchmark_group("extract");
    for (name, fields) in [
        ("w3c", w3c()),
        ("b3", b3()),
        ("b3_single", b3_single()),
        ("none", none()),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut ex = Extractor::default();
                for (n, v) in black_box(&fields) {
                    ex.observe(n, v);
                }
                black_box(ex.finish())
            })
        });
    }
    g.finish();
}

fn sampling(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    let mut rng = fastrand::Rng::with_seed(1);
    g.bench_function("envoy", |b| {
        b.iter(|| {
            black_box(decide(&Decide {
                sampling: black_box(&ONE_PERCENT),
                parent: None,
                client_trace_id: false,
                force_trace: false,
                request_id: Some(black_box(b"3e4f2a1b-9c8d-4e7f-a6b5-c4d3e2f1a0b9")),
                draw: 0,
            }))
        })
    });
    g.bench_function("native", |b| {
        b.iter(|| {
            black_box(decide(&Decide {
                sampling: black_box(&ONE_PERCENT),
                parent: None,
                client_trace_id: false,
                force_trace: false,
                request_id: None,
                draw: rng.u64(..),
            }))
        })
    });
    g.finish();
    c.bench_function("ids", |b| {
        b.iter(|| black_box((new_trace_id(&mut rng), new_span_id(&mut rng))))
    });
}

fn write(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_lines");
    let o = Outgoing {
        trace_id: 0x0af7651916cd43dd8448eb211c80319c,
        short_id: false,
        span_id: 0xb7ad6b7169203331,
        parent_id: 0x05e3ac9a4f6e3b90,
        sampled: true,
        debug: false,
    };
    let mut out = [0u8; MAX_LINES];
    let w3c = Formats::W3C;
    let all = Formats::new(true, true, true);
    g.bench_function("w3c", |b| {
        b.iter(|| black_box(write_lines(black_box(&o), black_box(w3c), &mut out)))
    });
    g.bench_function("all", |b| {
        b.iter(|| black_box(write_lines(black_box(&o), black_box(all), &mut out)))
    });
    g.finish();
}

fn per_hop(c: &mut Criterion) {
    let mut g = c.benchmark_group("hop");
    let mut rng = fastrand::Rng::with_seed(2);
    let mut out = [0u8; MAX_LINES];
    for (name, fields) in [("w3c", w3c()), ("b3", b3()), ("none", none())] {
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(hop(
                    black_box(&fields),
                    &mut rng,
                    black_box(&ONE_PERCENT),
                    &mut out,
                ))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, extract, sampling, write, per_hop);
criterion_main!(benches);
