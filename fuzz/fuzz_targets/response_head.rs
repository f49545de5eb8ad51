#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringway::http1::fuzzing::fuzz_response_head(data));
