#![no_main]

use libfuzzer_sys::fuzz_target;

// The checks live in the library (`ringway::trace::context::fuzz`,
// `ringway::trace::sampling::fuzz`), so that tests/fuzz_corpus.rs replays the corpus
// through the same ones.
fuzz_target!(|data: &[u8]| {
    ringway::trace::context::fuzz(data);
    ringway::trace::sampling::fuzz(data);
});
