//! Credentials and JWT claims (`portcullis_fuzz::credentials`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| portcullis_fuzz::credentials(data));
