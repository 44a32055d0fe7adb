//! Snapshot bytes → decode, verify, index, and one check on what loaded.
//! Nothing may panic, loop or allocate without bound on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_wasm::{Context, Engine, Request};

fuzz_target!(|data: &[u8]| {
    // The hash check stops almost every mutation; decode a copy whose
    // header is re-hashed too, so the body decoder and the integrity
    // checks behind it are reached.
    let _ = Engine::load(data);
    let rehashed = portcullis_fuzz::rehash(data);
    if let Ok(engine) = Engine::load(&rehashed) {
        let _ = engine.check(&Request {
            principal: "user/pat",
            action: "read",
            resource: "catalog/sales",
            context: Context {
                now: 1_790_000_000,
                bulk: false,
            },
        });
        let _ = engine.permissions("user/pat", "org/acme", Context { now: 0, bulk: true });
    }
});
