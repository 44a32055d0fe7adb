//! Credentials: an `Authorization` and an API-key header as sent (first
//! byte 0), or a JWT header and claims (JSON, split at the first NUL)
//! signed with the configured HS256 secret (first byte 1), so the claim
//! checks behind the signature are reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let identity = portcullis_fuzz::identity();
    match mode % 2 {
        0 => {
            let mut headers = http::HeaderMap::new();
            let mut values = rest.split(|&b| b == b'\n');
            for name in ["authorization", "x-api-key", "authorization"] {
                if let Some(v) = values.next()
                    && let Ok(v) = http::HeaderValue::from_bytes(v)
                {
                    headers.append(name, v);
                }
            }
            let _ = identity.authenticate(&headers, 1_790_000_000);
        }
        _ => {
            let mut halves = rest.splitn(2, |&b| b == 0);
            let (Some(header), Some(claims)) = (halves.next(), halves.next()) else {
                return;
            };
            let token = portcullis_fuzz::sign_hs256(header, claims);
            let _ = identity.verify(&token, 1_790_000_000);
        }
    }
});
