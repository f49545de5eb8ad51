#![no_main]

use libfuzzer_sys::fuzz_target;

// The checks live in the library (`ringway::auth::jwt::fuzz`), so that
// tests/fuzz_corpus.rs replays the corpus through the same ones.
fuzz_target!(|data: &[u8]| ringway::auth::jwt::fuzz(data));
