#![no_main]

use libfuzzer_sys::fuzz_target;

// The PROXY protocol header parser must never panic, must consume no more than it was
// given, and must give the same answer for a complete header however it is split.
fuzz_target!(|data: &[u8]| {
    if let Ok(Some((consumed, header))) = ringway::proxy_protocol::parse(data) {
        assert!(consumed <= data.len());
        for cut in 0..consumed {
            assert_eq!(ringway::proxy_protocol::parse(&data[..cut]), Ok(None));
        }
        assert_eq!(
            ringway::proxy_protocol::parse(&data[..consumed]),
            Ok(Some((consumed, header)))
        );
    }
});
