//! Replays every file in `fuzz/corpus/<target>/` through the fuzz entry functions, so
//! regressions found by fuzzing are caught by plain `cargo test`.

use std::fs;
use std::path::Path;

use ringway::http1::fuzzing::{fuzz_chunked, fuzz_request_head, fuzz_response_head};

fn replay(target: &str, entry: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for file in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = file.expect("corpus entry").path();
        if path.is_file() {
            let data = fs::read(&path).expect("corpus file");
            entry(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn request_head_corpus() {
    assert!(replay("request_head", fuzz_request_head) > 0);
}

#[test]
fn response_head_corpus() {
    assert!(replay("response_head", fuzz_response_head) > 0);
}

#[test]
fn proxy_protocol_corpus() {
    assert!(replay("proxy_protocol", ringway::proxy_protocol::fuzz) > 0);
}

#[test]
fn chunked_corpus() {
    assert!(replay("chunked", fuzz_chunked) > 0);
}

#[test]
fn config_corpus() {
    assert!(replay("config", ringway::config::fuzz) > 0);
}

#[test]
fn jwt_corpus() {
    assert!(replay("jwt", ringway::auth::jwt::fuzz) > 0);
}

#[test]
fn trace_context_corpus() {
    let entry: fn(&[u8]) = |data| {
        ringway::trace::context::fuzz(data);
        ringway::trace::sampling::fuzz(data);
    };
    assert!(replay("trace_context", entry) > 0);
}
