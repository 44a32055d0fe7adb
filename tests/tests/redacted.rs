//! The redacted snapshot (`portcullis snapshot redact`, issue #5) answers
//! exactly what the full snapshot answers, for every principal a browser
//! can be, on every action and every resource; so does each principal's
//! view (what `GET /-/snapshot/me` serves, issue #13) for its principal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use policy_wasm::action::Action;
use policy_wasm::{Context, Engine, Request};
use portcullis_snapshots::encode;
use portcullis_snapshots::generate::{GenerateParams, generate};
use portcullis_snapshots::scope::redact;
use portcullis_snapshots::source::{Directory, compile};
use portcullis_tests::{directory_principals, directory_resources};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn engine(dir: &Directory) -> Engine {
    let body = compile(dir).expect("valid directory");
    Engine::load(&encode(&body, 7, 1_767_225_600).expect("encodes")).expect("loads")
}

fn actions() -> Vec<String> {
    let mut a: Vec<String> = Action::all().map(Action::name).collect();
    a.extend(["view", "manage", "create", "edit", "remove"].map(String::from));
    a
}

/// Asserts equal decisions on both: allow/deny, reason, obligations, the
/// user an API key acted as, and — through the explanation, since string
/// indices differ between the two snapshots — the basis.
fn same(
    full: &Engine,
    red: &Engine,
    principal: &str,
    action: &str,
    resource: &str,
    now: i64,
) -> bool {
    [false, true].iter().all(|&bulk| {
        let req = Request {
            principal,
            action,
            resource,
            context: Context { now, bulk },
        };
        let (a, b) = (full.check(&req), red.check(&req));
        let what = format!("{principal} {action} {resource} bulk={bulk}");
        assert_eq!(
            (
                a.allowed,
                a.reason,
                a.obligations,
                a.acting_as,
                a.basis.is_some()
            ),
            (
                b.allowed,
                b.reason,
                b.obligations,
                b.acting_as,
                b.basis.is_some()
            ),
            "{what}"
        );
        if a.basis.is_some() {
            assert_eq!(full.explain(&req), red.explain(&req), "{what}");
        }
        a.allowed
    })
}

#[test]
fn every_decision_of_the_example_is_unchanged() {
    let text = std::fs::read_to_string(portcullis_tests::examples_dir().join("acme.json"))
        .expect("example");
    let (dir, _) = portcullis_snapshots::source::build(&text).expect("builds");
    let (full, red) = (engine(&dir), engine(&redact(&dir)));
    let (mut checked, mut allowed) = (0usize, 0usize);
    let resources = directory_resources(&dir);
    let actions = actions();
    for now in [1_767_225_600, 1_830_000_000] {
        for p in directory_principals(&dir) {
            for r in &resources {
                for a in &actions {
                    checked += 1;
                    allowed += usize::from(same(&full, &red, &p, a, r, now));
                }
            }
        }
    }
    // The comparison covered allows as well as denies.
    assert!(allowed > 1_000, "{allowed} of {checked}");
}

#[test]
fn a_sample_of_a_generated_directory_is_unchanged() {
    let dir = generate(GenerateParams {
        users: 3_000,
        groups: 60,
        orgs: 6,
        envs: 12,
        catalogs: 150,
        grants: 15_000,
        seed: 11,
    });
    let (full, red) = (engine(&dir), engine(&redact(&dir)));
    let principals = directory_principals(&dir);
    let resources = directory_resources(&dir);
    let actions = actions();
    let rng = &mut ChaCha8Rng::seed_from_u64(5);
    let mut allowed = 0;
    for _ in 0..40 {
        let p = &principals[rng.random_range(0..principals.len())];
        let view =
            (p != "support").then(|| Engine::load(&full.view(p).expect("cut")).expect("loads"));
        for _ in 0..300 {
            let r = &resources[rng.random_range(0..resources.len())];
            for a in &actions {
                allowed += usize::from(same(&full, &red, p, a, r, 1_790_000_000));
                if let Some(view) = &view {
                    alike(&full, view, p, a, r, 1_790_000_000);
                }
            }
        }
    }
    assert!(allowed > 100, "{allowed}");
}

/// Like [`same`] for a principal's view, where what lies outside the view
/// is an unknown resource (a denial either way).
fn alike(full: &Engine, view: &Engine, principal: &str, action: &str, resource: &str, now: i64) {
    for bulk in [false, true] {
        let req = Request {
            principal,
            action,
            resource,
            context: Context { now, bulk },
        };
        let (a, b) = (full.check(&req), view.check(&req));
        let what = format!("{principal} {action} {resource} bulk={bulk}");
        assert_eq!(a.allowed, b.allowed, "{what}");
        if b.reason != policy_wasm::Reason::UnknownResource {
            assert_eq!(
                (a.reason, a.obligations),
                (b.reason, b.obligations),
                "{what}"
            );
        }
        if a.allowed {
            assert_eq!(full.explain(&req), view.explain(&req), "{what}");
        }
    }
}

#[test]
fn every_view_of_the_example_decides_like_the_example_for_its_principal() {
    let text = std::fs::read_to_string(portcullis_tests::examples_dir().join("acme.json"))
        .expect("example");
    let (dir, _) = portcullis_snapshots::source::build(&text).expect("builds");
    let full = engine(&dir);
    let resources = directory_resources(&dir);
    let actions = actions();
    for p in directory_principals(&dir) {
        if p == "support" {
            assert!(full.view(&p).is_err(), "support has no view");
            continue;
        }
        let view = Engine::load(&full.view(&p).expect("cut")).expect("loads");
        for now in [1_767_225_600, 1_830_000_000] {
            for r in &resources {
                for a in &actions {
                    alike(&full, &view, &p, a, r, now);
                }
            }
        }
    }
}
