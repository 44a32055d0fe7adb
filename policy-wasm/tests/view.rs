//! Property: a principal's view (`Engine::view`) decides every request of
//! that principal exactly as the whole directory does — every action on
//! every resource of the directory, `permissions` and `list` — and holds
//! nothing its definition (`policy-wasm/README.md#views`) excludes: no one
//! else's personal data, no API keys, no person it cannot act on, no
//! catalog it has no access to.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::collections::BTreeSet;

use policy_wasm::action::Action;
use policy_wasm::{Context, Engine, Reason, Request};
use portcullis_snapshots::generate::random_directory;
use portcullis_snapshots::source::{Directory, compile};
use portcullis_snapshots::vocabulary::EntityType;
use portcullis_snapshots::{decode, encode};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn resources(dir: &Directory) -> Vec<String> {
    let mut r: Vec<String> = dir
        .organizations
        .iter()
        .map(|o| format!("org/{}", o.id))
        .collect();
    r.extend(dir.environments.iter().map(|x| format!("env/{}", x.id)));
    r.extend(dir.catalogs.iter().map(|x| format!("catalog/{}", x.id)));
    r.extend(dir.objects.iter().map(|x| format!("object/{}", x.id)));
    r.extend(dir.teams.iter().map(|x| format!("team/{}", x.id)));
    for t in &dir.teams {
        r.push(format!("team/{}/member/{}", t.id, t.owner));
        r.extend(
            t.members
                .iter()
                .map(|m| format!("team/{}/member/{m}", t.id)),
        );
    }
    r.extend(dir.users.iter().map(|u| format!("user/{}", u.username)));
    r.extend(
        dir.service_accounts
            .iter()
            .map(|s| format!("service/{}", s.id)),
    );
    r.extend(
        EntityType::ALL
            .iter()
            .map(|e| format!("entity/{}", e.name())),
    );
    // The view's stand-in for team owners outside it names nobody.
    r.extend(["user/", "team/t0/member/"].map(String::from));
    r
}

fn actions() -> Vec<String> {
    let mut a: Vec<String> = Action::all().map(Action::name).collect();
    a.extend(["view", "manage", "create", "edit", "remove"].map(String::from));
    a
}

const CONTEXTS: [Context; 3] = [
    Context {
        now: 1_790_000_000,
        bulk: false,
    },
    Context {
        now: 1_790_000_000,
        bulk: true,
    },
    Context {
        now: 4_000_000_000,
        bulk: false,
    },
];

/// Compares the view of `principal` with the whole directory on every
/// request of it; returns how many were allowed.
fn agrees(dir: &Directory, full: &Engine, principal: &str) -> Result<usize, TestCaseError> {
    let bytes = full
        .view(principal)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let view = Engine::load(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(view.is_view());
    prop_assert_eq!(view.revision(), full.revision());
    let mut allowed = 0;
    let resources = resources(dir);
    for r in &resources {
        for &context in &CONTEXTS {
            for a in &actions() {
                let req = Request {
                    principal,
                    action: a,
                    resource: r,
                    context,
                };
                let (d, v) = (full.check(&req), view.check(&req));
                prop_assert_eq!(d.allowed, v.allowed, "{:?}", req);
                if d.allowed {
                    allowed += 1;
                    // Same basis, read through names (indices differ).
                    prop_assert_eq!(full.explain(&req), view.explain(&req), "{:?}", req);
                } else if v.reason != Reason::UnknownResource {
                    prop_assert_eq!(d.reason, v.reason, "{:?}", req);
                }
            }
            prop_assert_eq!(
                full.permissions(principal, r, context),
                view.permissions(principal, r, context),
                "permissions on {}",
                r
            );
        }
    }
    for under in resources.iter().filter(|r| {
        ["org/", "env/", "catalog/", "team/"]
            .iter()
            .any(|k| r.starts_with(k))
            && !r.contains("/member/")
    }) {
        for kind in ["org", "env", "catalog", "object", "team"] {
            for a in [
                "read",
                "write",
                "org:open",
                "env:open",
                "team:view",
                "user:invite",
            ] {
                let c = CONTEXTS[0];
                let (d, v) = (
                    full.list(principal, a, kind, under, c),
                    view.list(principal, a, kind, under, c),
                );
                match v {
                    Err(Reason::UnknownResource) => {
                        prop_assert_eq!(d, Ok(vec![]), "list {} {} under {}", a, kind, under)
                    }
                    v => prop_assert_eq!(d, v, "list {} {} under {}", a, kind, under),
                }
            }
        }
    }
    private(dir, full, principal, &bytes)?;
    Ok(allowed)
}

/// What the view holds is what its definition admits.
fn private(
    dir: &Directory,
    full: &Engine,
    principal: &str,
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    let s = decode(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let b = &s.body;
    let strings: BTreeSet<&str> = (0..b.strings.len() as u32)
        .map(|i| b.str(portcullis_snapshots::body::Str(i)))
        .collect();
    prop_assert!(b.api_keys.is_empty());
    for k in &dir.api_keys {
        prop_assert!(
            !strings.contains(k.id.as_str()) || dir.users.iter().any(|u| u.username == k.id)
        );
    }
    let me = dir
        .users
        .iter()
        .find(|u| format!("user/{}", u.username) == principal);
    let mine: BTreeSet<&str> = me
        .into_iter()
        .flat_map(|u| {
            [
                &u.name,
                &u.first_name,
                &u.last_name,
                &u.phone,
                &u.timezone,
                &u.locale,
                &u.start_page,
            ]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .chain([u.email.as_str(), u.username.as_str()])
        })
        .collect();
    // Nobody else's personal data: other users' records carry none, and
    // no email address or phone number of anyone else is anywhere in it
    // (names are not searched for as text: random names repeat as names of
    // organizations and catalogs).
    for u in &b.users {
        if format!("user/{}", b.str(u.username)) == principal {
            continue;
        }
        prop_assert!(
            u.name.get().is_none()
                && u.first_name.get().is_none()
                && u.last_name.get().is_none()
                && u.phone.get().is_none()
                && u.timezone.get().is_none()
                && u.locale.get().is_none()
                && u.start_page.get().is_none()
                && u.last_login.get().is_none()
                && b.str(u.email).is_empty(),
            "user/{} carries personal data in the view of {}",
            b.str(u.username),
            principal
        );
    }
    for u in &dir.users {
        for v in u.phone.iter().chain([&u.email]) {
            prop_assert!(
                mine.contains(v.as_str()) || !strings.contains(v.as_str()),
                "{} of user/{} is in the view of {}",
                v,
                u.username,
                principal
            );
        }
    }
    // Only people it can act on — judged "whatever its own status", so by
    // the directory with the principal made active.
    let active = as_active(dir, principal);
    let c = CONTEXTS[0];
    for u in &b.users {
        let name = b.str(u.username);
        if name.is_empty() || format!("user/{name}") == principal {
            continue;
        }
        let target = format!("user/{name}");
        let on_user = active.permissions(principal, &target, c);
        let as_member = dir.teams.iter().any(|t| {
            active
                .check(&Request {
                    principal,
                    action: "team:remove_member",
                    resource: &format!("team/{}/member/{name}", t.id),
                    context: c,
                })
                .allowed
        });
        prop_assert!(
            !on_user.is_empty() || as_member,
            "user/{} is in the view of {}, who cannot act on it",
            name,
            principal
        );
    }
    // Only catalogs it can act on, that hold an object it can act on, or
    // that one of its grants names.
    for cat in &b.catalogs {
        let id = b.str(cat.id);
        let r = format!("catalog/{id}");
        let acts = !active.permissions(principal, &r, c).is_empty();
        let holds_object = b.objects.iter().any(|o| {
            o.parent
                == portcullis_snapshots::body::NodeRef::Catalog(
                    b.catalogs.iter().position(|x| x == cat).unwrap() as u32,
                )
        });
        let granted = dir.grants.iter().any(|g| g.on == r);
        prop_assert!(
            acts || holds_object || granted,
            "{} is in the view of {}, who cannot act on it",
            r,
            principal
        );
    }
    let _ = full;
    Ok(())
}

/// `dir` with `principal` (a user) able to act; unchanged otherwise.
fn as_active(dir: &Directory, principal: &str) -> Engine {
    let mut d = dir.clone();
    for u in &mut d.users {
        if format!("user/{}", u.username) == principal {
            u.status = portcullis_snapshots::vocabulary::UserStatus::Active;
            u.allow_login = true;
            u.email_verified = true;
            u.expires_at = None;
        }
    }
    for a in &mut d.service_accounts {
        if format!("service/{}", a.id) == principal {
            a.status = portcullis_snapshots::vocabulary::AccountStatus::Active;
        }
    }
    Engine::load(&encode(&compile(&d).unwrap(), 1, 0).unwrap()).unwrap()
}

fn principals(dir: &Directory) -> Vec<String> {
    dir.users
        .iter()
        .map(|u| format!("user/{}", u.username))
        .chain(
            dir.service_accounts
                .iter()
                .map(|s| format!("service/{}", s.id)),
        )
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn a_view_decides_like_the_directory_for_its_principal(seed in any::<u64>(), n in 1usize..9, pick in any::<u64>()) {
        let dir = random_directory(seed, n);
        let body = compile(&dir).map_err(|p| TestCaseError::fail(format!("{p:#?}")))?;
        let full = Engine::load(&encode(&body, 9, 1_767_225_600).unwrap()).unwrap();
        let all = principals(&dir);
        let rng = &mut ChaCha8Rng::seed_from_u64(pick);
        for _ in 0..4 {
            let p = &all[rng.random_range(0..all.len())];
            agrees(&dir, &full, p)?;
        }
    }
}

/// Guards the property against being vacuous: over fixed seeds, views
/// allow many requests, and some hold other people.
#[test]
fn views_of_random_directories_allow_and_hold_others() {
    let (mut allowed, mut with_others, mut stand_ins, mut sole_owners) = (0, 0, 0, 0);
    for seed in 0..12u64 {
        let dir = random_directory(seed, 8);
        let full = Engine::load(&encode(&compile(&dir).unwrap(), 1, 0).unwrap()).unwrap();
        for p in principals(&dir) {
            allowed += agrees(&dir, &full, &p).unwrap();
            let (body, facts) = full.view_body(&p).unwrap();
            let has_stand_in = body.users.iter().any(|u| body.str(u.username).is_empty());
            stand_ins += usize::from(has_stand_in);
            if has_stand_in {
                // The stand-in names nobody: `user/` is no principal and
                // no resource of the view.
                let view = Engine::load(&full.view(&p).unwrap()).unwrap();
                let ask = |principal: &str, resource: &str| {
                    view.check(&Request {
                        principal,
                        action: "user:view",
                        resource,
                        context: CONTEXTS[0],
                    })
                    .reason
                };
                assert_eq!(ask("user/", &p), Reason::UnknownPrincipal, "{p}");
                if p.starts_with("user/") {
                    assert_eq!(ask(&p, "user/"), Reason::UnknownResource, "{p}");
                }
            }
            sole_owners += usize::from(!facts.sole_owners.is_empty());
            with_others += usize::from(
                body.users
                    .iter()
                    .filter(|u| !body.str(u.username).is_empty())
                    .count()
                    > 1,
            );
        }
    }
    assert!(allowed > 2_000, "only {allowed} allowed");
    assert!(
        with_others > 5,
        "only {with_others} views hold other people"
    );
    // Team owners outside a view, and sole owners it states, are reached.
    assert!(
        stand_ins > 5,
        "only {stand_ins} views have a stand-in owner"
    );
    assert!(
        sole_owners > 5,
        "only {sole_owners} views state sole owners"
    );
    eprintln!(
        "{allowed} allowed, {with_others} with others, {stand_ins} stand-ins, {sole_owners} sole owners"
    );
}

/// `dir` with one or two of its users changed the way pushes change people
/// — a name, a status, an organization, an administrator role — and
/// sometimes a new user at the end.
fn one_person_later(dir: &Directory, rng: &mut ChaCha8Rng) -> Directory {
    use portcullis_snapshots::vocabulary::{AdminRole, UserStatus};
    let mut d = dir.clone();
    let orgs: Vec<String> = d.organizations.iter().map(|o| o.id.clone()).collect();
    for _ in 0..rng.random_range(1..=2) {
        let i = rng.random_range(0..d.users.len());
        let u = &mut d.users[i];
        match rng.random_range(0..5) {
            0 => u.name = Some(format!("Renamed {i}")),
            1 => {
                u.status = if u.status == UserStatus::Active {
                    UserStatus::Disabled
                } else {
                    UserStatus::Active
                }
            }
            2 => u.organization = orgs[rng.random_range(0..orgs.len())].clone(),
            3 if u.admin_role != Some(AdminRole::Owner) => {
                u.admin_role = match u.admin_role {
                    None => Some(AdminRole::Administrator),
                    Some(_) => None,
                }
            }
            _ => u.phone = Some(format!("+1 555 {i:04}")),
        }
    }
    if rng.random_bool(0.4) {
        let mut u = d.users[0].clone();
        u.username = "newcomer".into();
        u.email = "newcomer@example.invalid".into();
        u.admin_role = None;
        u.organization = orgs[rng.random_range(0..orgs.len())].clone();
        d.users.push(u);
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]

    /// A view the fingerprints say a push did not reach is exactly the
    /// view of the new snapshot: what lets a gateway keep it.
    #[test]
    fn a_view_a_change_does_not_reach_is_unchanged(seed in any::<u64>(), n in 1usize..9, pick in any::<u64>()) {
        use portcullis_snapshots::fingerprint::{Change, Fingerprint};
        let rng = &mut ChaCha8Rng::seed_from_u64(pick);
        let before = random_directory(seed, n);
        let after = one_person_later(&before, rng);
        let (Ok(b0), Ok(b1)) = (compile(&before), compile(&after)) else {
            // A change the validator refuses (an owner's team elsewhere…).
            return Ok(());
        };
        let (e0, e1) = (
            Engine::load(&encode(&b0, 1, 0).unwrap()).unwrap(),
            Engine::load(&encode(&b1, 2, 0).unwrap()).unwrap(),
        );
        let change = Fingerprint::of(&b0).change_to(&Fingerprint::of(&b1));
        for p in principals(&before) {
            let (_, scope) = e0.view_scoped(&p).unwrap();
            let kept = match &change {
                Change::Identical => true,
                Change::Users(users) => !users.iter().any(|c| e1.view_changed_by(&scope, c)),
                Change::Other => false,
            };
            if kept {
                prop_assert_eq!(e0.view_body(&p).unwrap(), e1.view_body(&p).unwrap(), "{} kept, but its view changed: {:?}", p, change);
            }
        }
    }
}

/// Guards the property above against being vacuous: over fixed seeds,
/// changes reach some views and leave others (in small random directories
/// many principals administer someone, so both are common).
#[test]
fn one_person_changes_keep_most_views_and_reach_some() {
    use portcullis_snapshots::fingerprint::{Change, Fingerprint};
    let (mut kept, mut redone, mut users_changes) = (0, 0, 0);
    for seed in 0..40u64 {
        let rng = &mut ChaCha8Rng::seed_from_u64(seed);
        let before = random_directory(seed, 8);
        let after = one_person_later(&before, rng);
        let (Ok(b0), Ok(b1)) = (compile(&before), compile(&after)) else {
            continue;
        };
        let e0 = Engine::load(&encode(&b0, 1, 0).unwrap()).unwrap();
        let e1 = Engine::load(&encode(&b1, 2, 0).unwrap()).unwrap();
        let Change::Users(users) = Fingerprint::of(&b0).change_to(&Fingerprint::of(&b1)) else {
            continue;
        };
        users_changes += 1;
        for p in principals(&before) {
            let (_, scope) = e0.view_scoped(&p).unwrap();
            if users.iter().any(|c| e1.view_changed_by(&scope, c)) {
                redone += 1;
            } else {
                kept += 1;
                assert_eq!(e0.view_body(&p).unwrap(), e1.view_body(&p).unwrap(), "{p}");
            }
        }
    }
    eprintln!("{users_changes} pushes changed only users; {kept} views kept, {redone} cut again");
    assert!(users_changes > 20, "{users_changes}");
    assert!(kept > 50, "{kept} kept, {redone} cut again");
    assert!(redone > 10, "{redone}");
}

/// The browser package warms its load and check paths at `init()` on this
/// built-in snapshot (`policy-wasm/src/bindgen.rs`): it must stay valid
/// and answer (rebuild it from `warm.json` with `portcullis snapshot build
/// policy-wasm/browser/warm.json -o policy-wasm/browser/warm.snap
/// --created-at 1970-01-01T00:00:00Z` after a format change).
#[test]
fn the_browser_warm_up_snapshot_loads_and_answers() {
    // A checked-in build output: it must be exactly what its source builds.
    let source = include_str!("../browser/warm.json");
    let (dir, _) = portcullis_snapshots::source::build(source).unwrap();
    let built = encode(&compile(&dir).unwrap(), 1, 0).unwrap();
    assert_eq!(
        &built[..],
        include_bytes!("../browser/warm.snap"),
        "warm.snap is stale: rebuild it from warm.json (command above)"
    );
    let engine = Engine::load(include_bytes!("../browser/warm.snap")).unwrap();
    let d = engine.check(&Request {
        principal: "user/u",
        action: "read",
        resource: "catalog/c",
        context: CONTEXTS[0],
    });
    assert!(d.allowed, "{d:?}");
}
