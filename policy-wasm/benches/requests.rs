//! A realistic request mix over the generated directory, shared by the
//! native and wasmtime benchmarks (included with `#[path]`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use policy_wasm::{Context, OwnedRequest};
use portcullis_snapshots::generate::{GenerateParams, api_key_secret};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// 4096 requests: half data reads/writes on catalogs and objects (a third
/// of them on something a grant covers), the rest environments, orgs,
/// user administration, API keys and entity permissions.
pub fn request_mix(
    dir: &portcullis_snapshots::source::Directory,
    p: GenerateParams,
) -> Vec<OwnedRequest> {
    let rng = &mut ChaCha8Rng::seed_from_u64(7);
    let now = 1_790_000_000;
    (0..4096)
        .map(|i| {
            let user = format!("user/user{}", rng.random_range(0..p.users));
            let (principal, action, resource) = match i % 8 {
                0 | 1 => {
                    let g = &dir.grants[rng.random_range(0..dir.grants.len())];
                    let principal = if g.principal.starts_with("group/") {
                        user
                    } else {
                        g.principal.clone()
                    };
                    (principal, "read".to_string(), g.on.clone())
                }
                2 => (
                    user,
                    "write".into(),
                    format!("catalog/cat-{}", rng.random_range(0..p.catalogs)),
                ),
                3 => (
                    user,
                    "read".into(),
                    format!("object/cat-{}-obj", rng.random_range(0..p.catalogs)),
                ),
                4 => (
                    user,
                    "dashboards:view".into(),
                    format!("env/env-{}", rng.random_range(0..p.envs)),
                ),
                5 => (
                    user,
                    "user:update".into(),
                    format!("user/user{}", rng.random_range(0..p.users)),
                ),
                6 => {
                    let secret = api_key_secret(p.seed, rng.random_range(0..p.users / 50));
                    let key = format!("apikey/{}", hex_sha256(&secret));
                    (
                        key,
                        "read".into(),
                        format!("catalog/cat-{}", rng.random_range(0..p.catalogs)),
                    )
                }
                _ => (user, "manage:schemas".into(), "org/domain".to_string()),
            };
            OwnedRequest {
                principal,
                action,
                resource,
                context: Context { now, bulk: false },
            }
        })
        .collect()
}

fn hex_sha256(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
