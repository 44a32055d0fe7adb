//! The module's raw ABI on the example snapshot (`portcullis_fuzz::abi_request`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| portcullis_fuzz::abi_request(data));
