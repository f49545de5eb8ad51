//! What a route's filter chain adds to a request: the same request head parsed, run
//! through the chain and written out upstream, with no filter and with a header-mutation
//! filter making five edits (three additions, one replacement, one removal) on the
//! request and the response side's additions rendered for a local reply. The issue's
//! budget: at most 0.5 µs per request over the plain route.
//!
//! Run: `cargo bench --bench filters -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ringway::{
    config::{HeaderAdd, HeaderMutations},
    filter::{Chain, RequestFacts, RequestHead, RequestState},
    http1::*,
    peer::Peer,
};

fn raw() -> Vec<u8> {
    b"GET /api/v1/users/12345 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nX-Drop: secret\r\nX-Tenant: old\r\n\r\n"
        .to_vec()
}

fn add(name: &str, value: &str, append: bool) -> HeaderAdd {
    HeaderAdd {
        name: name.into(),
        value: value.into(),
        append,
        only_if: ringway::config::AddOnlyIf::Always,
    }
}

fn five_edits() -> HeaderMutations {
    HeaderMutations {
        request_add: vec![
            add("x-gateway", "ringway", true),
            add("x-route", "users", true),
            add("x-api-version", "1", true),
            add("x-tenant", "acme", false),
        ],
        request_remove: vec!["x-drop".into()],
        ..HeaderMutations::default()
    }
}

/// Parse, run the chain (if any), write the head: what the request path does per request.
fn one_request(
    raw: &[u8],
    chain: &Chain,
    (request, state): (&mut Request, &mut RequestState),
    out: &mut Vec<u8>,
) -> usize {
    parse_request(raw, &Limits::default(), request).expect("valid");
    if !chain.is_empty() {
        state.clear((Peer::Ip([192, 0, 2, 7].into()), 40000), b"HTTP/1.1");
        chain.on_request(
            &mut RequestHead::new(request, raw),
            &mut RequestFacts::none(),
            state,
        );
    }
    out.clear();
    request.append_fields(raw, out);
    out.len()
}

/// Five edits whose values draw on the request (the routing issue's budget: at most
/// 0.5 µs per request over no filters).
fn five_edits_with_variables() -> HeaderMutations {
    HeaderMutations {
        request_add: vec![
            add("x-client", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", true),
            add("x-user-agent", "ua=%REQ(user-agent)%", true),
            add("x-protocol", "%PROTOCOL%", true),
            add("x-served-by", "%HOSTNAME%", true),
            add("x-tenant", "%REQ(x-tenant)%-v2", false),
        ],
        request_remove: vec!["x-drop".into()],
        ..HeaderMutations::default()
    }
}

fn chains(c: &mut Criterion) {
    let raw = raw();
    let plain = Chain::default();
    let none = HeaderMutations::default();
    let edits = Chain::build(
        ([&none, &none], &five_edits()),
        (None, None),
        "users",
        ([None, None], [None, None, None]),
    );
    let variables = Chain::build(
        ([&none, &none], &five_edits_with_variables()),
        (None, None),
        "users",
        ([None, None], [None, None, None]),
    );
    let mut group = c.benchmark_group("chain");
    for (name, chain) in [
        ("no filters", &plain),
        ("five header edits", &edits),
        ("five header edits with variables", &variables),
    ] {
        let mut request = Request::new();
        let mut state = RequestState::default();
        let mut out = Vec::with_capacity(16 * 1024);
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = (&mut request, &mut state);
                one_request(black_box(&raw), chain, request, &mut out)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, chains);
criterion_main!(benches);
