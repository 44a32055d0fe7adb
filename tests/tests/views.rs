//! Issue #13's privacy test on the large generated directory (100k users,
//! 500k grants): the view of a regular user — no administrator role, no
//! Admin role, no custom role, no Super Admin or Manage Users permission,
//! no team of its own, neither directly nor through a group — holds no
//! other person: no other username anywhere in it, no email, no phone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::collections::HashSet;

use policy_wasm::Engine;
use portcullis_snapshots::body::Str;
use portcullis_snapshots::generate::{GenerateParams, generate};
use portcullis_snapshots::source::{Directory, compile};
use portcullis_snapshots::vocabulary::{EntityType, Permission};
use portcullis_snapshots::{decode, encode};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The users who hold no authority over anyone, directly or through a
/// group.
fn regular_users(dir: &Directory) -> HashSet<String> {
    let mut authority: HashSet<&str> = dir
        .grants
        .iter()
        .filter(|g| g.role == "admin" || g.role.starts_with("role/"))
        .map(|g| g.principal.as_str())
        .collect();
    authority.extend(
        dir.permissions
            .iter()
            .filter(|p| {
                p.permission == Permission::SuperAdmin
                    || (p.permission == Permission::Manage && p.entity == Some(EntityType::Users))
            })
            .map(|p| p.principal.as_str()),
    );
    let mut out: HashSet<String> = dir
        .users
        .iter()
        .filter(|u| u.admin_role.is_none())
        .map(|u| format!("user/{}", u.username))
        .filter(|p| !authority.contains(p.as_str()))
        .collect();
    for g in &dir.groups {
        if authority.contains(format!("group/{}", g.id).as_str()) {
            for m in &g.members {
                out.remove(m);
            }
        }
    }
    for t in &dir.teams {
        out.remove(&format!("user/{}", t.owner));
    }
    out
}

#[test]
fn a_regular_users_view_of_the_large_directory_holds_no_other_person() {
    let params = GenerateParams::default();
    let dir = generate(params);
    let full = Engine::load(&encode(&compile(&dir).unwrap(), 1, 0).unwrap()).unwrap();
    let regular = regular_users(&dir);
    // Every other person's username, email and phone.
    let personal: std::collections::HashMap<&str, &str> = dir
        .users
        .iter()
        .flat_map(|o| {
            [o.username.as_str(), o.email.as_str()]
                .into_iter()
                .chain(o.phone.as_deref())
                .map(move |s| (s, o.username.as_str()))
        })
        .collect();
    let rng = &mut ChaCha8Rng::seed_from_u64(100);
    let mut checked = 0;
    while checked < 100 {
        let u = &dir.users[rng.random_range(0..dir.users.len())];
        if !regular.contains(&format!("user/{}", u.username)) {
            continue;
        }
        checked += 1;
        let principal = format!("user/{}", u.username);
        let view = decode(&full.view(&principal).unwrap()).unwrap();
        let b = &view.body;
        let strings: HashSet<&str> = (0..b.strings.len() as u32).map(|i| b.str(Str(i))).collect();
        let people: Vec<&str> = b
            .users
            .iter()
            .map(|x| b.str(x.username))
            .filter(|n| !n.is_empty())
            .collect();
        assert_eq!(people, [u.username.as_str()], "the view of {principal}");
        // Nothing of anyone else, anywhere in the view (its strings are few:
        // look each one up, not the 300,000 personal strings in it).
        for s in &strings {
            let whose = personal.get(s).copied();
            assert!(
                whose.is_none_or(|w| w == u.username),
                "{s} of user/{} is in the view of {principal}",
                whose.unwrap_or_default()
            );
        }
        assert!(b.api_keys.is_empty());
    }
}
