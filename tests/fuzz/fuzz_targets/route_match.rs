//! Path normalization, hosts and the route table (`portcullis_fuzz::route_match`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| portcullis_fuzz::route_match(data));
