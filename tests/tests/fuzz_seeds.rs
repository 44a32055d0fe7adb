//! Every fuzz target's body (`tests/fuzz/src/lib.rs`) on the stable
//! toolchain, in every `scripts/test`: each seed of `tests/fuzz/seeds/`
//! (plus the examples and a built snapshot), then deterministic mutations
//! of each — bytes flipped, inserted, removed, cut, and seeds spliced. The
//! long coverage-guided runs under libFuzzer and AddressSanitizer are
//! `scripts/fuzz` (issue #12: this replaced a 20 s cargo-fuzz run per
//! target, whose nightly AddressSanitizer build of the whole dependency
//! tree was most of CI's time).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

#[path = "../fuzz/src/lib.rs"]
mod portcullis_fuzz;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mutations per seed (the fuzz runs in docs/SECURITY.md go far deeper).
const MUTATIONS: usize = 3_000;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = portcullis_tests::workspace_root()
        .join("tests/fuzz/seeds")
        .join(target);
    let mut out: Vec<Vec<u8>> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| std::fs::read(e.expect("entry").path()).expect("seed"))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out.push(Vec::new());
    out
}

fn mutate(rng: &mut ChaCha8Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        match rng.random_range(0..6) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..=v.len());
                v.insert(i, rng.random());
            }
            2 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v.remove(i);
            }
            3 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v.truncate(i);
            }
            4 if !other.is_empty() => {
                let at = rng.random_range(0..=v.len());
                let from = rng.random_range(0..other.len());
                let to = rng.random_range(from..=other.len());
                v.splice(at..at, other[from..to].iter().copied());
            }
            _ if !v.is_empty() => {
                // An "interesting" byte where parsers branch.
                let i = rng.random_range(0..v.len());
                v[i] = *[b'\n', b'\r', b'/', b'%', b';', b'.', b':', 0, 0xff, b'"']
                    .get(rng.random_range(0..10))
                    .unwrap_or(&0);
            }
            _ => {}
        }
    }
    v
}

/// Runs `body` on every seed and its mutations; a panic names the input.
fn run(target: &str, extra: Vec<Vec<u8>>, body: fn(&[u8])) {
    let mut inputs = seeds(target);
    inputs.extend(extra);
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut ran = 0;
    for (i, seed) in inputs.iter().enumerate() {
        let other = &inputs[(i + 1) % inputs.len()];
        let mut cases = vec![seed.clone()];
        cases.extend((0..MUTATIONS).map(|_| mutate(&mut rng, seed, other)));
        for case in cases {
            if let Err(e) = std::panic::catch_unwind(|| body(&case)) {
                panic!(
                    "fuzz target {target} failed on {} (hex): {:?}",
                    hex::encode(&case),
                    e.downcast_ref::<String>()
                        .map(String::as_str)
                        .or(e.downcast_ref::<&str>().copied())
                );
            }
            ran += 1;
        }
    }
    assert!(ran > MUTATIONS, "{target}: ran only {ran} inputs");
}

#[test]
fn snapshot_decode() {
    let example = portcullis_demo::example_snapshot(|_| {}).expect("example");
    run(
        "snapshot_decode",
        vec![example],
        portcullis_fuzz::snapshot_decode,
    );
}

#[test]
fn delta_apply() {
    run(
        "delta_apply",
        vec![portcullis_fuzz::example_delta()],
        portcullis_fuzz::delta_apply,
    );
}

#[test]
fn directory_source() {
    let root = portcullis_tests::workspace_root().join("snapshots/examples");
    let mut examples: Vec<Vec<u8>> = std::fs::read_dir(root)
        .expect("examples")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "json").then(|| std::fs::read(p).expect("example"))
        })
        .collect();
    examples.sort();
    run(
        "directory_source",
        examples,
        portcullis_fuzz::directory_source,
    );
}

#[test]
fn abi_request() {
    run("abi_request", Vec::new(), portcullis_fuzz::abi_request);
}

#[test]
fn route_match() {
    run("route_match", Vec::new(), portcullis_fuzz::route_match);
}

#[test]
fn credentials() {
    run("credentials", Vec::new(), portcullis_fuzz::credentials);
}

#[test]
fn request_framing() {
    let wire = b"\x05GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n0\r\nT: 1\r\n\r\nPUT /c HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec();
    run(
        "request_framing",
        vec![wire],
        portcullis_fuzz::request_framing,
    );
}
