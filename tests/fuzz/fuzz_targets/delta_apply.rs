//! Delta bytes → decode, apply to the example (`portcullis_fuzz::delta_apply`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| portcullis_fuzz::delta_apply(data));
