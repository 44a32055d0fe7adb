//! Directory JSON → parse, validate, compile, encode: every problem must be
//! a located error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((_, body)) = portcullis_snapshots::source::build(text) {
        let _ = portcullis_snapshots::encode(&body, 1, 0);
    }
});
