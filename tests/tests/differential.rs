//! The WebAssembly module and the native engine agree: 10,000 random
//! requests over the large generated directory (100k users, 500k grants),
//! decided natively and through wasmtime, one by one and in batches — in an
//! instance that loaded the snapshot and in instances started from the
//! memory image of one that did (how the gateway's workers get it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use policy_wasm::{Context, Engine, Request};
use portcullis_host::module::{InstanceLimits, PolicyModule};
use portcullis_snapshots::encode;
use portcullis_snapshots::generate::{GenerateParams, api_key_secret, generate};
use portcullis_snapshots::source::compile;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn wasm_and_native_agree_on_10000_random_requests() {
    let params = GenerateParams::default();
    let dir = generate(params);
    let bytes = encode(&compile(&dir).expect("generated directory is valid"), 1, 0).unwrap();
    let native = Engine::load(&bytes).unwrap();
    let module = PolicyModule::new().unwrap();
    let mut wasm = module.instantiate(InstanceLimits::default()).unwrap();
    wasm.load_snapshot(&bytes).unwrap();
    let image = module
        .load_image(&bytes, InstanceLimits::default())
        .unwrap();
    let mut first = module
        .instantiate_image(&image, InstanceLimits::default())
        .unwrap();
    let mut second = module
        .instantiate_image(&image, InstanceLimits::default())
        .unwrap();

    let rng = &mut ChaCha8Rng::seed_from_u64(2026);
    let actions: Vec<String> = policy_wasm::action::Action::all()
        .map(|a| a.name())
        .collect();
    let data_actions = ["read", "write", "env:open", "dashboards:view", "org:open"];
    let mut owned = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let principal = match rng.random_range(0..10) {
            0 => format!("service/svc-{}", rng.random_range(0..params.users / 100)),
            1 => {
                let secret = api_key_secret(params.seed, rng.random_range(0..params.users / 50));
                format!("apikey/{}", hex_sha256(&secret))
            }
            _ => format!("user/user{}", rng.random_range(0..params.users)),
        };
        let resource = match rng.random_range(0..8) {
            0 => format!("env/env-{}", rng.random_range(0..params.envs)),
            1 => format!(
                "org/{}",
                if rng.random_bool(0.3) {
                    "domain".to_string()
                } else {
                    format!("org-{}", rng.random_range(1..params.orgs))
                }
            ),
            2 => format!("user/user{}", rng.random_range(0..params.users)),
            3 => format!("team/team-{}", rng.random_range(0..params.groups / 10)),
            4 => format!("object/cat-{}-obj", rng.random_range(0..params.catalogs)),
            _ => format!("catalog/cat-{}", rng.random_range(0..params.catalogs)),
        };
        let action = if i % 3 == 0 {
            actions[rng.random_range(0..actions.len())].clone()
        } else {
            data_actions[rng.random_range(0..data_actions.len())].to_string()
        };
        // A third of the requests ask to read something a grant covers.
        let (principal, action, resource) = match &dir.grants[rng.random_range(0..dir.grants.len())]
        {
            g if rng.random_bool(0.3) && !g.principal.starts_with("group/") => {
                (g.principal.clone(), "read".to_string(), g.on.clone())
            }
            _ => (principal, action, resource),
        };
        let context = Context {
            now: 1_790_000_000 + rng.random_range(0..100_000_000),
            bulk: rng.random_bool(0.1),
        };
        owned.push((principal, action, resource, context));
    }
    let reqs: Vec<Request<'_>> = owned
        .iter()
        .map(|(p, a, r, c)| Request {
            principal: p,
            action: a,
            resource: r,
            context: *c,
        })
        .collect();

    let expected: Vec<_> = reqs.iter().map(|r| native.check(r)).collect();
    let allowed = expected.iter().filter(|d| d.allowed).count();
    assert!(
        allowed > 1500,
        "the requests should reach allows too ({allowed})"
    );

    for (i, (req, want)) in reqs.iter().zip(&expected).enumerate() {
        let from = if i % 2 == 0 { &mut wasm } else { &mut first };
        assert_eq!(&from.check(req).unwrap(), want, "request {i}: {req:?}");
    }
    for (chunk, want) in reqs.chunks(1000).zip(expected.chunks(1000)) {
        assert_eq!(wasm.check_batch(chunk).unwrap(), want);
        assert_eq!(second.check_batch(chunk).unwrap(), want);
    }
    for req in reqs.iter().step_by(20) {
        assert_eq!(wasm.explain(req).unwrap(), native.explain(req), "{req:?}");
        assert_eq!(first.explain(req).unwrap(), native.explain(req), "{req:?}");
    }
    // What the instances wrote stayed theirs: a third one starts from the
    // image as it was taken.
    let mut third = module
        .instantiate_image(&image, InstanceLimits::default())
        .unwrap();
    assert_eq!(third.revision().unwrap(), Some(1));
    for (req, want) in reqs.iter().zip(&expected).take(500) {
        assert_eq!(&third.check(req).unwrap(), want, "{req:?}");
    }
}

fn hex_sha256(s: &str) -> String {
    use std::fmt::Write;
    let digest = sha2_digest(s.as_bytes());
    digest.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn sha2_digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
