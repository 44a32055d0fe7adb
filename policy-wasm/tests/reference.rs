//! Property: the indexed engine decides exactly like the deliberately
//! simple reference evaluator (linear scans, no indexes) — same allow or
//! deny, same reason, same basis — on random directories that use every
//! field and random requests, valid and not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use policy_wasm::action::Action;
use policy_wasm::{Context, Engine, Request, check_reference};
use portcullis_snapshots::generate::random_directory;
use portcullis_snapshots::source::compile;
use portcullis_snapshots::vocabulary::EntityType;
use portcullis_snapshots::{decode, encode};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Every principal, resource and action string worth asking about, plus
/// some that do not exist.
fn vocab(dir: &portcullis_snapshots::source::Directory) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut principals: Vec<String> = dir
        .users
        .iter()
        .map(|u| format!("user/{}", u.username))
        .collect();
    principals.extend(
        dir.service_accounts
            .iter()
            .map(|s| format!("service/{}", s.id)),
    );
    principals.extend(dir.api_keys.iter().map(|k| format!("apikey/{}", k.sha256)));
    principals
        .extend(["support", "user/ghost", "group/g0", "apikey/zz", "", "user"].map(String::from));

    let mut resources: Vec<String> = dir
        .organizations
        .iter()
        .map(|o| format!("org/{}", o.id))
        .collect();
    resources.extend(dir.environments.iter().map(|x| format!("env/{}", x.id)));
    resources.extend(dir.catalogs.iter().map(|x| format!("catalog/{}", x.id)));
    resources.extend(dir.objects.iter().map(|x| format!("object/{}", x.id)));
    resources.extend(dir.teams.iter().map(|x| format!("team/{}", x.id)));
    for t in &dir.teams {
        resources.push(format!("team/{}/member/{}", t.id, t.owner));
        resources.extend(
            t.members
                .iter()
                .map(|m| format!("team/{}/member/{m}", t.id)),
        );
    }
    resources.extend(dir.users.iter().map(|u| format!("user/{}", u.username)));
    resources.extend(
        dir.service_accounts
            .iter()
            .map(|s| format!("service/{}", s.id)),
    );
    resources.extend(
        EntityType::ALL
            .iter()
            .map(|e| format!("entity/{}", e.name())),
    );
    resources.extend(["org/nope", "entity/nope", "team/t0/member/ghost", "x"].map(String::from));

    let mut actions: Vec<String> = Action::all().map(Action::name).collect();
    actions.extend(
        [
            "view",
            "manage",
            "create",
            "edit",
            "remove",
            "fly",
            "view:nope",
            "",
        ]
        .map(String::from),
    );
    (principals, resources, actions)
}

/// An action for `resource`: usually one that applies to its kind, so the
/// rules behind the "does not apply" check are reached; sometimes any.
fn pick_action<'a>(rng: &mut ChaCha8Rng, resource: &str, actions: &'a [String]) -> &'a str {
    let fits = |a: &str| -> bool {
        let kind = resource.split('/').next().unwrap_or("");
        match kind {
            _ if resource.contains("/member/") => a == "team:remove_member",
            "user" => a.starts_with("user:") || a.starts_with("notify:") || a == "login",
            "service" => a == "login",
            "org" => {
                !a.starts_with("user:")
                    && !a.starts_with("team:")
                    && !a.starts_with("notify:")
                    && a != "login"
                    && a.contains(':')
                    || a == "read"
                    || a == "write"
                    || a == "user:invite"
            }
            "env" => matches!(a, "read" | "write" | "env:open" | "dashboards:view"),
            "catalog" | "object" => matches!(a, "read" | "write"),
            "team" => a.starts_with("team:") || a == "user:invite",
            "entity" => matches!(a, "view" | "manage" | "create" | "edit" | "remove"),
            _ => true,
        }
    };
    if rng.random_bool(0.85) {
        let fitting: Vec<&String> = actions.iter().filter(|a| fits(a)).collect();
        if !fitting.is_empty() {
            return fitting[rng.random_range(0..fitting.len())];
        }
    }
    &actions[rng.random_range(0..actions.len())]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn indexed_engine_matches_the_reference(seed in any::<u64>(), n in 1usize..10, req_seed in any::<u64>()) {
        let dir = random_directory(seed, n);
        let body = compile(&dir).map_err(|p| TestCaseError::fail(format!("{p:#?}")))?;
        let bytes = encode(&body, 3, 0).unwrap();
        let engine = Engine::load(&bytes).unwrap();
        let snapshot = decode(&bytes).unwrap();
        let (principals, resources, actions) = vocab(&dir);
        let rng = &mut ChaCha8Rng::seed_from_u64(req_seed);
        let times = [-1_000_000_000i64, 0, 1_000_000_000, 1_800_000_000, 2_000_000_000, 4_000_000_000];
        for _ in 0..300 {
            let req = Request {
                principal: &principals[rng.random_range(0..principals.len())],
                action: "",
                resource: &resources[rng.random_range(0..resources.len())],
                context: Context { now: times[rng.random_range(0..times.len())], bulk: rng.random_bool(0.2) },
            };
            let req = Request { action: pick_action(rng, req.resource, &actions), ..req };
            let fast = engine.check(&req);
            let slow = check_reference(&snapshot, &req);
            prop_assert_eq!(fast, slow, "{:?}", req);
            // Explaining never panics and agrees with the decision.
            let ex = engine.explain(&req);
            prop_assert_eq!(ex.allowed, fast.allowed);
        }
    }
}

/// Guards the property above against being vacuous: the random requests
/// must reach allows and a wide range of reasons.
#[test]
fn random_requests_cover_many_outcomes() {
    let mut allows = 0;
    let mut total = 0;
    let mut reasons = std::collections::BTreeSet::new();
    for seed in 0..60u64 {
        let dir = random_directory(seed, 8);
        let engine = Engine::load(&encode(&compile(&dir).unwrap(), 1, 0).unwrap()).unwrap();
        let (principals, resources, actions) = vocab(&dir);
        let rng = &mut ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..2000 {
            let req = Request {
                principal: &principals[rng.random_range(0..principals.len())],
                action: "",
                resource: &resources[rng.random_range(0..resources.len())],
                context: Context {
                    now: 1_800_000_000,
                    bulk: rng.random_bool(0.2),
                },
            };
            let req = Request {
                action: pick_action(rng, req.resource, &actions),
                ..req
            };
            let d = engine.check(&req);
            total += 1;
            allows += usize::from(d.allowed);
            reasons.insert(d.reason.code());
        }
    }
    assert!(allows * 50 > total, "only {allows} of {total} allowed");
    assert!(
        reasons.len() >= 25,
        "only {} reasons reached: {reasons:?}",
        reasons.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `permissions` is exactly the actions `check` allows (it skips the
    /// rest of an entity type's group when `view` is denied: Manage implies
    /// View, so that must never hide an allowed action).
    #[test]
    fn permissions_are_the_actions_check_allows(seed in any::<u64>(), n in 1usize..9, pick in any::<u64>()) {
        let dir = random_directory(seed, n);
        let body = compile(&dir).map_err(|p| TestCaseError::fail(format!("{p:#?}")))?;
        let engine = Engine::load(&encode(&body, 3, 0).unwrap()).unwrap();
        let (principals, resources, _) = vocab(&dir);
        let rng = &mut ChaCha8Rng::seed_from_u64(pick);
        let context = Context { now: 1_800_000_000, bulk: false };
        for _ in 0..40 {
            let principal = &principals[rng.random_range(0..principals.len())];
            let resource = &resources[rng.random_range(0..resources.len())];
            let asks = |action: &str| engine.check(&Request { principal, action, resource, context }).allowed;
            let expected: Vec<String> = if resource.starts_with("entity/") {
                ["view", "manage", "create", "edit", "remove"]
                    .into_iter()
                    .filter(|v| asks(v))
                    .map(String::from)
                    .collect()
            } else {
                Action::all().map(Action::name).filter(|a| asks(a)).collect()
            };
            prop_assert_eq!(engine.permissions(principal, resource, context), expected, "{} on {}", principal, resource);
        }
    }
}
