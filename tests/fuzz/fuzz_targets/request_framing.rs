//! HTTP/1 request framing on the wire (`portcullis_fuzz::request_framing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| portcullis_fuzz::request_framing(data));
