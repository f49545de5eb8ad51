#![no_main]

use libfuzzer_sys::fuzz_target;

// The checks live in the library (`ringway::config::fuzz`), so that
// tests/fuzz_corpus.rs replays the corpus through the same ones.
fuzz_target!(|data: &[u8]| ringway::config::fuzz(data));
