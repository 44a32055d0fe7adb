//! Property: an engine that applied deltas in place is indistinguishable
//! from one that loaded the snapshots they make — the same index, list by
//! list, and the same decisions — over chains of random changes to random
//! directories; a delta it cannot apply in place, or that does not fit,
//! leaves it exactly as it was.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use policy_wasm::action::Action;
use policy_wasm::{Context, Engine, PatchError, Request};
use portcullis_snapshots::body::{Body, GrantRec};
use portcullis_snapshots::delta::{self, DeltaBody};
use portcullis_snapshots::generate::random_directory;
use portcullis_snapshots::source::{Directory, PermissionGrant, compile};
use portcullis_snapshots::vocabulary::{AdminRole, EntityType, Permission, UserStatus};
use portcullis_snapshots::{decode, encode};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A random change of the kinds deltas usually carry — grants removed,
/// added and moved; group and team members; a user's status, role or
/// organization; a team's owner; API keys and permissions removed or
/// added — and, now and then, one that needs a full load (a new user).
fn mutate(dir: &Directory, rng: &mut ChaCha8Rng) -> Directory {
    let mut d = dir.clone();
    let user = |d: &Directory, rng: &mut ChaCha8Rng| {
        (!d.users.is_empty()).then(|| d.users[rng.random_range(0..d.users.len())].username.clone())
    };
    for _ in 0..rng.random_range(1..6usize) {
        match rng.random_range(0..13) {
            0 if !d.grants.is_empty() => {
                let i = rng.random_range(0..d.grants.len());
                d.grants.remove(i);
            }
            1 if !d.grants.is_empty() => {
                let mut g = d.grants[rng.random_range(0..d.grants.len())].clone();
                let principals: Vec<String> = d
                    .users
                    .iter()
                    .map(|u| format!("user/{}", u.username))
                    .chain(d.groups.iter().map(|g| format!("group/{}", g.id)))
                    .chain(
                        d.service_accounts
                            .iter()
                            .map(|s| format!("service/{}", s.id)),
                    )
                    .collect();
                if !principals.is_empty() {
                    g.principal = principals[rng.random_range(0..principals.len())].clone();
                }
                let at = rng.random_range(0..=d.grants.len());
                d.grants.insert(at, g);
            }
            2 if d.grants.len() > 1 => {
                let (a, b) = (
                    rng.random_range(0..d.grants.len()),
                    rng.random_range(0..d.grants.len()),
                );
                d.grants.swap(a, b);
            }
            3 => {
                if let Some(g) = d.groups.iter_mut().find(|g| !g.members.is_empty()) {
                    let i = rng.random_range(0..g.members.len());
                    g.members.remove(i);
                }
            }
            4 if !d.groups.is_empty() => {
                let member = if rng.random_bool(0.7) {
                    user(&d, rng).map(|u| format!("user/{u}"))
                } else {
                    (!d.service_accounts.is_empty()).then(|| {
                        format!(
                            "service/{}",
                            d.service_accounts[rng.random_range(0..d.service_accounts.len())].id
                        )
                    })
                };
                let g = rng.random_range(0..d.groups.len());
                if let Some(m) = member
                    && !d.groups[g].members.contains(&m)
                {
                    let at = rng.random_range(0..=d.groups[g].members.len());
                    d.groups[g].members.insert(at, m);
                }
            }
            5 if !d.teams.is_empty() => {
                let t = rng.random_range(0..d.teams.len());
                if let Some(u) = user(&d, rng)
                    && !d.teams[t].members.contains(&u)
                {
                    d.teams[t].members.push(u);
                }
            }
            6 if !d.teams.is_empty() => {
                let t = rng.random_range(0..d.teams.len());
                if !d.teams[t].members.is_empty() {
                    let i = rng.random_range(0..d.teams[t].members.len());
                    d.teams[t].members.remove(i);
                }
            }
            7 if !d.teams.is_empty() => {
                let t = rng.random_range(0..d.teams.len());
                if let Some(u) = user(&d, rng) {
                    d.teams[t].owner = u;
                }
            }
            8 if !d.users.is_empty() => {
                let i = rng.random_range(0..d.users.len());
                d.users[i].status = [
                    UserStatus::Active,
                    UserStatus::Disabled,
                    UserStatus::Invited,
                ][rng.random_range(0..3)];
                d.users[i].admin_role =
                    [None, Some(AdminRole::Owner), Some(AdminRole::Administrator)]
                        [rng.random_range(0..3)];
            }
            9 if !d.users.is_empty() && !d.organizations.is_empty() => {
                let i = rng.random_range(0..d.users.len());
                d.users[i].organization = d.organizations
                    [rng.random_range(0..d.organizations.len())]
                .id
                .clone();
            }
            10 if !d.api_keys.is_empty() => {
                let i = rng.random_range(0..d.api_keys.len());
                d.api_keys.remove(i);
            }
            11 => {
                if let Some(u) = user(&d, rng) {
                    let at = rng.random_range(0..=d.permissions.len());
                    d.permissions.insert(
                        at,
                        PermissionGrant {
                            principal: format!("user/{u}"),
                            permission: Permission::PlatformAccess,
                            entity: None,
                            on: None,
                        },
                    );
                } else if !d.permissions.is_empty() {
                    d.permissions.pop();
                }
            }
            _ if rng.random_bool(0.3) && !d.users.is_empty() => {
                let mut u = d.users[0].clone();
                u.username = format!("new-{}", rng.random_range(0..1_000_000));
                u.email = format!("{}@example.com", u.username);
                d.users.push(u);
            }
            _ => {}
        }
    }
    d
}

fn body(dir: &Directory) -> Option<Body> {
    compile(dir).ok()
}

/// The base's grants at the rows `d` removes, in order.
fn removed_grants(base: &Body, d: &DeltaBody) -> Vec<GrantRec> {
    d.grants
        .iter()
        .flat_map(|s| {
            base.grants[s.at as usize..(s.at + s.remove) as usize]
                .iter()
                .copied()
        })
        .collect()
}

/// Random requests over every principal, resource and action, decided
/// by both.
fn same_decisions(a: &Engine, b: &Engine, dir: &Directory, rng: &mut ChaCha8Rng) {
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
        resources.extend(
            t.members
                .iter()
                .map(|m| format!("team/{}/member/{m}", t.id)),
        );
    }
    resources.extend(dir.users.iter().map(|u| format!("user/{}", u.username)));
    resources.extend(
        EntityType::ALL
            .iter()
            .map(|e| format!("entity/{}", e.name())),
    );
    let actions: Vec<String> = Action::all().map(Action::name).collect();
    if principals.is_empty() || resources.is_empty() {
        return;
    }
    for _ in 0..400 {
        let p = &principals[rng.random_range(0..principals.len())];
        let r = &resources[rng.random_range(0..resources.len())];
        let action = actions[rng.random_range(0..actions.len())].as_str();
        let req = Request {
            principal: p,
            action,
            resource: r,
            context: Context {
                now: 1_800_000_000,
                ..Context::default()
            },
        };
        let (x, y) = (a.check(&req), b.check(&req));
        assert_eq!(
            (x.allowed, x.reason, x.basis, x.acting_as),
            (y.allowed, y.reason, y.basis, y.acting_as),
            "{p} {action} {r}"
        );
    }
}

/// Applies a chain of random changes to a random directory, each as a
/// delta in place where it can be (a full load otherwise), and compares
/// with full loads. Returns how many deltas were applied in place.
fn chain(seed: u64, n: usize, steps: usize) -> usize {
    let rng = &mut ChaCha8Rng::seed_from_u64(seed);
    let mut dir = random_directory(seed, n);
    let Some(mut base) = body(&dir) else {
        return 0;
    };
    let mut engine = Engine::load(&encode(&base, 1, 1).unwrap()).unwrap();
    let mut in_place = 0;
    for step in 0..steps {
        let next_dir = mutate(&dir, rng);
        let Some(next) = body(&next_dir) else {
            continue;
        };
        let revision = step as u64 + 2;
        let target = Engine::load(&encode(&next, revision, 7).unwrap()).unwrap();
        let d = delta::compute(&base, &next).unwrap();
        let removed = removed_grants(&base, &d);
        let before = engine.logical_state();
        match engine.apply_delta(&d, &removed, revision, 7) {
            Ok(()) => {
                in_place += 1;
                assert_eq!(
                    engine.logical_state(),
                    target.logical_state(),
                    "step {step}"
                );
                same_decisions(&engine, &target, &next_dir, rng);
            }
            Err(PatchError::NotInPlace(_)) => {
                assert_eq!(
                    engine.logical_state(),
                    before,
                    "a refused delta changed nothing"
                );
                engine = target;
            }
            Err(e) => panic!("step {step}: {e}"),
        }
        // The engine is only ever re-checked against full loads: a
        // second delta applies on top of the first's edits (lists moved,
        // holes left).
        base = next;
        dir = next_dir;
    }
    in_place
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn deltas_applied_in_place_equal_full_loads(seed in any::<u64>(), n in 1usize..8) {
        chain(seed, n, 4);
    }
}

#[test]
fn most_usual_changes_apply_in_place() {
    let applied: usize = (0..24).map(|seed| chain(seed, 4, 4)).sum();
    assert!(
        applied >= 48,
        "only {applied} of 96 deltas applied in place"
    );
}

#[test]
fn a_delta_that_does_not_fit_changes_nothing() {
    let dir = random_directory(3, 5);
    let base = body(&dir).unwrap();
    let mut next_dir = dir.clone();
    next_dir.grants.remove(0);
    let next = body(&next_dir).unwrap();
    let d = delta::compute(&base, &next).unwrap();
    let mut engine = Engine::load(&encode(&base, 1, 1).unwrap()).unwrap();
    let before = engine.logical_state();
    // The grant named as removed is not the one at that row.
    let mut wrong = removed_grants(&base, &d);
    assert_eq!(wrong.len(), 1);
    wrong[0] = base.grants[1];
    assert!(matches!(
        engine.apply_delta(&d, &wrong, 2, 1),
        Err(PatchError::Refused(_))
    ));
    // None named at all.
    assert!(matches!(
        engine.apply_delta(&d, &[], 2, 1),
        Err(PatchError::Refused(_))
    ));
    // A delta for another base (its table lengths).
    let mut other = d.clone();
    other.base.grants += 1;
    assert!(matches!(
        engine.apply_delta(&other, &removed_grants(&base, &d), 2, 1),
        Err(PatchError::Refused(_))
    ));
    assert_eq!(engine.logical_state(), before);
    assert_eq!(engine.revision(), 1);
    // And the right one applies.
    engine
        .apply_delta(&d, &removed_grants(&base, &d), 2, 1)
        .unwrap();
    let target = Engine::load(&encode(&next, 2, 1).unwrap()).unwrap();
    assert_eq!(engine.logical_state(), target.logical_state());
    let _ = decode(&encode(&next, 2, 1).unwrap()).unwrap();
}
