//! What the fuzz targets share: the example snapshot loaded into the raw
//! ABI, the demo's route table and identity configuration, and helpers that
//! let mutated inputs past the checksums and signatures in front of the
//! code under test.

use std::sync::{Once, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use portcullis_gateway::demo::{
    DEMO_SECRET, DemoOptions, demo_config, demo_routes, example_snapshot,
};
use portcullis_gateway::stage::identity::Identity;
use portcullis_gateway::stage::route_table::RouteTable;
use portcullis_snapshots::header::HEADER_LEN;
use sha2::{Digest, Sha256};

/// `data` with a header whose body length and SHA-256 match what follows
/// it (when it is long enough to have a header at all).
pub fn rehash(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if out.len() >= HEADER_LEN {
        let body_len = (out.len() - HEADER_LEN) as u64;
        out[28..36].copy_from_slice(&body_len.to_le_bytes());
        let digest = Sha256::digest(&data[HEADER_LEN..]);
        out[36..68].copy_from_slice(&digest);
    }
    out
}

fn example() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| example_snapshot(|_| {}).expect("the example builds"))
}

/// Loads the example snapshot into the ABI's engine, once per process.
pub fn load_example_into_abi() {
    static LOADED: Once = Once::new();
    LOADED.call_once(reload_example_into_abi);
}

/// Loads the example snapshot into the ABI's engine.
pub fn reload_example_into_abi() {
    use policy_wasm::abi;
    let bytes = example();
    let buffer = abi::pc_input(bytes.len() as u32);
    // SAFETY: pc_input returned a buffer of at least that many bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer, bytes.len()) };
    assert_eq!(abi::pc_load(bytes.len() as u32), 0, "the example loads");
}

/// The demo's route table.
pub fn routes() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| RouteTable::new(demo_routes()).expect("the demo routes compile"))
}

/// The demo's identity configuration (HS256 tokens, `x-api-key`).
pub fn identity() -> &'static Identity {
    static IDENTITY: OnceLock<Identity> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        let opts = DemoOptions::for_tests(&std::env::temp_dir());
        let config = demo_config(&opts, "127.0.0.1:9".parse().expect("addr"));
        Identity::new(config.identity).expect("the demo identity")
    })
}

/// A JWT with this header and these claims (any bytes), signed with the
/// demo's HS256 secret.
pub fn sign_hs256(header: &[u8], claims: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac =
        Hmac::<Sha256>::new_from_slice(DEMO_SECRET.as_bytes()).expect("HMAC takes any key");
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}
