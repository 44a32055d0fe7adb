//! The wasmtime host and the native host behind one interface decide
//! alike: the example directory loaded in full, then changed by deltas (in
//! place, and one that needs a full load), every principal × action ×
//! resource of the example asked of both after each step.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::sync::Arc;

use policy_wasm::{Context, Request};
use portcullis_host::engine_host::EngineHost;
use portcullis_host::module::{InstanceLimits, PolicyModule};
use portcullis_host::native::NativeHost;
use portcullis_host::swap::{EnginePool, Source, Swapper};
use portcullis_snapshots::Candidate;
use portcullis_snapshots::source::{Directory, build};

const EXAMPLE: &str = include_str!("../../snapshots/examples/acme.json");

fn snapshot(dir: &Directory, revision: u64) -> Vec<u8> {
    let body = portcullis_snapshots::source::compile(dir).expect("valid");
    portcullis_snapshots::encode(&body, revision, 1_790_000_000).expect("encodes")
}

fn delta(from: &[u8], to: &[u8]) -> Vec<u8> {
    let (a, b) = (
        portcullis_snapshots::decode(from).unwrap(),
        portcullis_snapshots::decode(to).unwrap(),
    );
    let body = portcullis_snapshots::delta::compute(&a.body, &b.body).unwrap();
    portcullis_snapshots::delta::encode_delta(&a.header, &b.header, &body).unwrap()
}

fn agree(hosts: &[&dyn EngineHost], dir: &Directory) -> usize {
    let principals: Vec<String> = dir
        .users
        .iter()
        .map(|u| format!("user/{}", u.username))
        .chain(
            dir.service_accounts
                .iter()
                .map(|s| format!("service/{}", s.id)),
        )
        .collect();
    let resources: Vec<String> = dir
        .organizations
        .iter()
        .map(|o| format!("org/{}", o.id))
        .chain(dir.environments.iter().map(|e| format!("env/{}", e.id)))
        .chain(dir.catalogs.iter().map(|c| format!("catalog/{}", c.id)))
        .chain(dir.users.iter().map(|u| format!("user/{}", u.username)))
        .collect();
    let mut asked = 0;
    for p in &principals {
        for action in [
            "read",
            "write",
            "admin",
            "deactivate",
            "edit_expiry",
            "create_api_key",
        ] {
            for r in &resources {
                let req = Request {
                    principal: p,
                    action,
                    resource: r,
                    context: Context {
                        now: 1_790_000_000,
                        bulk: false,
                    },
                };
                let answers: Vec<_> = hosts.iter().map(|h| h.check(&req).unwrap()).collect();
                assert!(
                    answers.windows(2).all(|w| w[0] == w[1]),
                    "{p} {action} {r}: {answers:?}"
                );
                asked += 1;
            }
        }
    }
    asked
}

#[test]
fn the_wasmtime_and_native_hosts_decide_alike_through_deltas() {
    let module = PolicyModule::new().unwrap();
    let pool = EnginePool::new(module, InstanceLimits::default(), 2).unwrap();
    let wasm = Swapper::new(Arc::clone(&pool), 1 << 30);
    let native = NativeHost::new(1 << 30);
    let hosts: [&dyn EngineHost; 2] = [&wasm, &native];

    let (mut dir, _) = build(EXAMPLE).expect("the example builds");
    let mut before = snapshot(&dir, 1);
    for h in hosts {
        h.install(Candidate::Snapshot(before.clone()), Source::Push, false)
            .unwrap();
    }
    assert!(agree(&hosts, &dir) > 1000);

    // Deltas in place: pat deactivated; a grant removed; then a new user
    // (a new string: the target is loaded in full).
    for (revision, change) in [(2u64, 0usize), (3, 1), (4, 2)] {
        match change {
            0 => {
                for u in &mut dir.users {
                    if u.username == "pat" {
                        u.status = portcullis_snapshots::vocabulary::UserStatus::Deactivated;
                    }
                }
            }
            1 => {
                dir.grants.remove(0);
            }
            _ => {
                let mut u = dir.users[1].clone();
                u.username = "newcomer".into();
                u.email = "newcomer@acme.example".into();
                dir.users.push(u);
            }
        }
        let after = snapshot(&dir, revision);
        let d = delta(&before, &after);
        let done: Vec<_> = hosts
            .iter()
            .map(|h| {
                h.install(Candidate::Delta(d.clone()), Source::Push, false)
                    .unwrap()
            })
            .collect();
        assert!(done.iter().all(|i| i.revision == revision && i.delta));
        assert_eq!(done[0].sha256, done[1].sha256);
        assert_eq!(done[0].in_place, done[1].in_place, "revision {revision}");
        assert!(hosts.iter().all(|h| h.revision() == Some(revision)));
        agree(&hosts, &dir);
        before = after;
    }
}
