//! The fuzz targets' bodies, and what they share: the example snapshot
//! loaded into the raw ABI, the demo's route table and identity
//! configuration, and helpers that let mutated inputs past the checksums
//! and signatures in front of the code under test.
//!
//! Each target in `fuzz_targets/` only hands libFuzzer's input to one of
//! the functions below, so the same bodies also run as an ordinary test on
//! the stable toolchain (`tests/tests/fuzz_seeds.rs`: every seed and a few
//! thousand deterministic mutations of each, in every `scripts/test`),
//! while `scripts/fuzz` runs them under libFuzzer and AddressSanitizer for
//! as long as one likes.

use std::sync::{Once, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use portcullis_demo::{DEMO_SECRET, DemoOptions, demo_config, demo_routes, example_snapshot};
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
    let bytes = example();
    write_input(bytes);
    assert_eq!(
        policy_wasm::abi::pc_load(bytes.len() as u32),
        0,
        "the example loads"
    );
}

/// Writes `input` into the ABI's input buffer, as the host does.
fn write_input(input: &[u8]) {
    let buffer = policy_wasm::abi::pc_input(input.len() as u32);
    // SAFETY: pc_input returned a buffer of at least `input.len()` bytes,
    // owned by the ABI until the next pc_input or pc_load.
    #[allow(
        unsafe_code,
        reason = "writing into the buffer the ABI hands out, as wasmtime's host does"
    )]
    unsafe {
        std::ptr::copy_nonoverlapping(input.as_ptr(), buffer, input.len())
    };
}

/// Snapshot bytes → decode, verify, index, and one check on what loaded.
/// Nothing may panic, loop or allocate without bound on any input.
pub fn snapshot_decode(data: &[u8]) {
    use policy_wasm::{Context, Engine, Request};
    // The hash check stops almost every mutation; decode a copy whose
    // header is re-hashed too, so the body decoder and the integrity
    // checks behind it are reached.
    let _ = Engine::load(data);
    let rehashed = rehash(data);
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
}

/// `data` as a delta that applies to the example: its base revision and
/// SHA-256 set to the example's, its body length and SHA-256 to what
/// follows the header, unsigned (when it is long enough to have a header).
pub fn rehash_delta(data: &[u8]) -> Vec<u8> {
    use portcullis_snapshots::delta::DELTA_HEADER_LEN;
    let mut out = data.to_vec();
    if out.len() >= DELTA_HEADER_LEN
        && let Ok(base) = portcullis_snapshots::Header::parse(example())
    {
        out[10] &= !1;
        out[12..20].copy_from_slice(&base.revision.to_le_bytes());
        out[20..52].copy_from_slice(&base.body_sha256);
        let body_len = (out.len() - DELTA_HEADER_LEN) as u64;
        out[100..108].copy_from_slice(&body_len.to_le_bytes());
        let digest = Sha256::digest(&data[DELTA_HEADER_LEN..]);
        out[108..140].copy_from_slice(&digest);
    }
    out
}

/// Delta bytes → decode, apply to the example snapshot: the gateway does
/// this with what a push or a store sends. Refused or applied, never a
/// panic; an applied result is the target it promised, and loads.
pub fn delta_apply(data: &[u8]) {
    use portcullis_snapshots::delta::{Delta, DeltaError, Layout, decode_delta};
    let base = example();
    let layout = Layout::of(base).expect("the example lays out");
    for bytes in [data.to_vec(), rehash_delta(data)] {
        let Ok(delta) = decode_delta(&bytes) else {
            continue;
        };
        let full = delta.apply_to(base);
        if let Ok(out) = &full {
            let header = portcullis_snapshots::Header::parse(out).expect("an applied delta parses");
            assert_eq!(header.body_sha256, delta.header.target_sha256);
            assert!(
                policy_wasm::Engine::load(out).is_ok(),
                "an applied delta loads"
            );
            // The result pushed whole: read back as a change in place, it
            // is exactly itself, on the bytes and in the engine.
            let _ = Delta::same_strings(base, out);
            if let Ok(found) = Delta::between(base, &layout, out) {
                let again = found
                    .apply_in_place(base, &layout)
                    .expect("what between finds applies");
                assert_eq!(&again.snapshot, out, "between found another snapshot");
                let mut engine = policy_wasm::Engine::load(base).expect("the example loads");
                if engine
                    .apply_delta(
                        &found.body,
                        &again.removed_grants,
                        header.revision,
                        header.created_at,
                    )
                    .is_ok()
                {
                    let target = policy_wasm::Engine::load(out).expect("loads");
                    assert_eq!(engine.logical_state(), target.logical_state());
                }
            }
        }
        // In place, to the bytes: the same snapshot as in full, or refused.
        let applied = match delta.apply_in_place(base, &layout) {
            Ok(applied) => applied,
            Err(DeltaError::NotInPlace(_)) => continue,
            Err(e) => {
                assert!(full.is_err(), "refused in place ({e}), applied in full");
                continue;
            }
        };
        if let Ok(out) = &full {
            assert_eq!(&applied.snapshot, out, "in place and in full differ");
        }
        // And to a loaded engine: exactly a load of the target, or refused
        // with the engine unchanged.
        let mut engine = policy_wasm::Engine::load(base).expect("the example loads");
        let before = engine.logical_state();
        match engine.apply_delta(
            &delta.body,
            &applied.removed_grants,
            delta.header.target_revision,
            delta.header.target_created_at,
        ) {
            Ok(()) => {
                let target = policy_wasm::Engine::load(&applied.snapshot)
                    .expect("a delta the engine took loads in full");
                assert_eq!(engine.logical_state(), target.logical_state());
            }
            Err(_) => assert_eq!(engine.logical_state(), before),
        }
    }
}

/// A delta from the example to the example with pat disabled (a seed).
pub fn example_delta() -> Vec<u8> {
    use portcullis_snapshots::delta::{compute, encode_delta};
    let changed = example_snapshot(|v| {
        v["revision"] = serde_json::json!(2);
        if let Some(users) = v["users"].as_array_mut() {
            for u in users.iter_mut().filter(|u| u["username"] == "pat") {
                u["status"] = serde_json::json!("disabled");
            }
        }
    })
    .expect("the changed example builds");
    let (a, b) = (
        portcullis_snapshots::decode(example()).expect("decodes"),
        portcullis_snapshots::decode(&changed).expect("decodes"),
    );
    let body = compute(&a.body, &b.body).expect("a delta");
    encode_delta(&a.header, &b.header, &body).expect("encodes")
}

/// Directory JSON → parse, validate, compile, encode: every problem must be
/// a located error, never a panic.
pub fn directory_source(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((_, body)) = portcullis_snapshots::source::build(text) {
        let _ = portcullis_snapshots::encode(&body, 1, 0);
    }
}

/// The module's raw ABI with the example snapshot loaded: the first byte
/// picks the function (check, batch, explain, permissions, list, load), the
/// rest is its input as the host would write it into the input buffer.
pub fn abi_request(data: &[u8]) {
    use policy_wasm::abi;
    load_example_into_abi();
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    let len = input.len() as u32;
    write_input(input);
    let _ = match which % 6 {
        0 => abi::pc_check(len),
        1 => abi::pc_check_batch(len),
        2 => abi::pc_explain(len),
        3 => abi::pc_permissions(len),
        4 => abi::pc_list(len),
        // A bad snapshot must leave the loaded one serving.
        _ => {
            if abi::pc_load(len) != 0 {
                assert!(
                    abi::pc_revision() >= 0,
                    "a refused load unloaded the engine"
                );
            }
            reload_example_into_abi();
            0
        }
    };
    assert!(abi::pc_result_len() >= 0);
}

/// Path normalization and the route table (the demo's routes): method,
/// host and raw path from the input, one per line. Whatever matches must
/// be a normalized path that normalizes to itself.
pub fn route_match(data: &[u8]) {
    use portcullis_gateway::stage::route_table::normalize_path;
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (method, host, path) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(h), Some(p)) => (m, Some(h).filter(|h| !h.is_empty()), p),
        _ => ("GET", None, text.as_ref()),
    };
    if let Ok(normal) = normalize_path(path) {
        assert_eq!(normalize_path(&normal).as_deref(), Ok(normal.as_str()));
    }
    if let Ok(r) = routes().resolve(method, host, path) {
        assert!(r.path.starts_with('/'));
        assert!(!r.path.contains("/../") && !r.path.contains("//"));
        assert_eq!(normalize_path(&r.path).as_deref(), Ok(r.path.as_str()));
    }
    // A host is read strictly, and its normal form reads as itself.
    if let Some(h) = host
        && let Ok(normal) = portcullis_gateway::stage::host::parse_host(h)
    {
        assert_eq!(
            portcullis_gateway::stage::host::parse_host(&normal).as_deref(),
            Ok(normal.as_str())
        );
    }
}

/// Credentials: an `Authorization` and an API-key header as sent (first
/// byte 0), or a JWT header and claims (JSON, split at the first NUL)
/// signed with the configured HS256 secret (first byte 1), so the claim
/// checks behind the signature are reached too.
pub fn credentials(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let identity = identity();
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
            let token = sign_hs256(header, claims);
            let _ = identity.verify(&token, 1_790_000_000);
        }
    }
}

/// HTTP/1 request framing as it arrives (`framing.rs`), fed in pieces
/// whose sizes come from the first byte: whatever the bytes, the follower
/// never panics, and a request it flags did carry both framing headers.
pub fn request_framing(data: &[u8]) {
    let Some((&step, wire)) = data.split_first() else {
        return;
    };
    let log = portcullis_gateway::framing::FramingLog::new();
    let mut follower = portcullis_gateway::framing::Follower::new(log.clone(), 0);
    for piece in wire.chunks(usize::from(step).max(1)) {
        follower.feed(piece);
    }
    if log.next_request_is_ambiguous() {
        let text = String::from_utf8_lossy(wire).to_ascii_lowercase();
        assert!(text.contains("content-length") && text.contains("transfer-encoding"));
    }
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
