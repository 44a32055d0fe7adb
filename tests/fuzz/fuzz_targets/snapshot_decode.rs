//! Snapshot bytes → decode, verify, index, check (`portcullis_fuzz::snapshot_decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| portcullis_fuzz::snapshot_decode(data));
