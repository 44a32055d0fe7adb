//! Directory JSON → parse, validate, compile, encode (`portcullis_fuzz::directory_source`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| portcullis_fuzz::directory_source(data));
