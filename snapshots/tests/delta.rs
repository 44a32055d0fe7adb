//! Deltas: applied to their base, they give exactly the target (the same
//! body, the same SHA-256) — for random directories and random changes to
//! them, and for unrelated pairs; anything else is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use portcullis_snapshots::delta::{self, DeltaError, Layout, decode_delta, encode_delta};
use portcullis_snapshots::generate::random_directory;
use portcullis_snapshots::source::*;
use portcullis_snapshots::{Header, decode, encode};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A random change of `dir`: grants removed, added and changed, users
/// changed, inserted in the middle and reordered, group and team members
/// removed and added, strings that only the change uses.
fn mutate(dir: &Directory, seed: u64) -> Directory {
    let rng = &mut ChaCha8Rng::seed_from_u64(seed);
    let mut d = dir.clone();
    for _ in 0..rng.random_range(0..6usize) {
        match rng.random_range(0..9) {
            0 if !d.grants.is_empty() => {
                let i = rng.random_range(0..d.grants.len());
                d.grants.remove(i);
            }
            1 if !d.grants.is_empty() && !d.users.is_empty() => {
                let mut g = d.grants[rng.random_range(0..d.grants.len())].clone();
                g.principal = format!(
                    "user/{}",
                    d.users[rng.random_range(0..d.users.len())].username
                );
                let at = rng.random_range(0..=d.grants.len());
                d.grants.insert(at, g);
            }
            2 if !d.users.is_empty() => {
                let i = rng.random_range(0..d.users.len());
                d.users[i].phone = Some(format!("+1 555 {:04}", rng.random_range(0..10_000)));
            }
            3 if !d.users.is_empty() => {
                let mut u = d.users[rng.random_range(0..d.users.len())].clone();
                u.username = format!("new-{}", rng.random_range(0..1_000_000));
                u.email = format!("{}@example.com", u.username);
                let at = rng.random_range(0..=d.users.len());
                let name = u.username.clone();
                d.users.insert(at, u);
                if let Some(g) = d.groups.first_mut() {
                    g.members.push(format!("user/{name}"));
                }
            }
            4 if d.users.len() > 1 => {
                let (a, b) = (
                    rng.random_range(0..d.users.len()),
                    rng.random_range(0..d.users.len()),
                );
                d.users.swap(a, b);
            }
            5 => {
                if let Some(g) = d.groups.iter_mut().find(|g| !g.members.is_empty()) {
                    let i = rng.random_range(0..g.members.len());
                    g.members.remove(i);
                }
            }
            6 if !d.users.is_empty() => {
                let u = d.users[rng.random_range(0..d.users.len())].username.clone();
                if let Some(t) = d.teams.first_mut() {
                    t.members.push(u);
                }
            }
            7 if !d.grants.is_empty() && !d.catalogs.is_empty() => {
                let i = rng.random_range(0..d.grants.len());
                d.grants[i].on = format!(
                    "catalog/{}",
                    d.catalogs[rng.random_range(0..d.catalogs.len())].id
                );
            }
            _ if d.users.len() > 1 => {
                // Remove a user nothing else names.
                let i = rng.random_range(0..d.users.len());
                let name = d.users[i].username.clone();
                let named = serde_json::to_string(&d)
                    .unwrap()
                    .matches(&format!("\"{name}\""))
                    .count()
                    + serde_json::to_string(&d)
                        .unwrap()
                        .matches(&format!("user/{name}\""))
                        .count();
                if named <= 1 {
                    d.users.remove(i);
                }
            }
            _ => {}
        }
    }
    d
}

fn snapshot(dir: &Directory, revision: u64) -> Option<Vec<u8>> {
    let body = compile(dir).ok()?;
    Some(encode(&body, revision, 1_700_000_000 + revision as i64).unwrap())
}

/// The delta from `a` to `b`, written, read back and applied — in full,
/// and to the bytes in place when it allows.
fn through_delta(a: &[u8], b: &[u8]) -> Vec<u8> {
    let (sa, sb) = (decode(a).unwrap(), decode(b).unwrap());
    let d = delta::compute(&sa.body, &sb.body).unwrap();
    let bytes = encode_delta(&sa.header, &sb.header, &d).unwrap();
    let delta = decode_delta(&bytes).unwrap();
    let full = delta.apply_to(a).unwrap();
    in_place_agrees(&delta, a, &Layout::of(a).unwrap(), &full);
    between_agrees(a, &Layout::of(a).unwrap(), &full);
    full
}

/// The delta read off the bytes of `base` and `target` — when it finds
/// one — gives `target` exactly in place, with the target's layout;
/// whether it found one.
fn between_agrees(base: &[u8], layout: &Layout, target: &[u8]) -> bool {
    match delta::Delta::between(base, layout, target) {
        Ok(found) => {
            assert!(found.body.in_place().is_ok());
            let applied = found.apply_in_place(base, layout).unwrap();
            assert_eq!(applied.snapshot, target);
            assert_eq!(applied.layout, Layout::of(target).unwrap());
            true
        }
        Err(DeltaError::NotInPlace(_)) => false,
        Err(e) => panic!("{e}"),
    }
}

/// Applied in place (when the delta allows), `delta` gives `full` and the
/// layout a walk of `full` gives, and names the grants it removes.
fn in_place_agrees(
    delta: &delta::Delta,
    base: &[u8],
    layout: &Layout,
    full: &[u8],
) -> Option<Layout> {
    match delta.apply_in_place(base, layout) {
        Ok(applied) => {
            assert!(delta.body.in_place().is_ok());
            assert_eq!(applied.snapshot, full);
            assert_eq!(applied.layout, Layout::of(full).unwrap());
            let grants = decode(base).unwrap().body.grants;
            let removed: Vec<_> = delta
                .body
                .grants
                .iter()
                .flat_map(|s| {
                    grants[s.at as usize..(s.at + s.remove) as usize]
                        .iter()
                        .copied()
                })
                .collect();
            assert_eq!(applied.removed_grants, removed);
            // The decoded body, patched in place, is the target's too.
            let mut body = decode(base).unwrap().body;
            delta::patch(&mut body, &delta.body).unwrap();
            assert_eq!(body, decode(full).unwrap().body);
            Some(applied.layout)
        }
        Err(DeltaError::NotInPlace(_)) => {
            assert!(delta.body.in_place().is_err());
            // A decoded body also takes users and strings appended; any
            // other delta it refuses, unchanged.
            let mut body = decode(base).unwrap().body;
            if delta.body.appends_in_place().is_ok() {
                delta::patch(&mut body, &delta.body).unwrap();
                assert_eq!(body, decode(full).unwrap().body);
            } else {
                assert!(delta::patch(&mut body, &delta.body).is_err());
                assert_eq!(
                    body,
                    decode(base).unwrap().body,
                    "a refused patch changes nothing"
                );
            }
            None
        }
        Err(e) => panic!("{e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_delta_applied_to_its_base_gives_the_target_exactly(seed in any::<u64>(), n in 1usize..10, change in any::<u64>()) {
        let dir = random_directory(seed, n);
        let changed = mutate(&dir, change);
        let (Some(a), Some(b)) = (snapshot(&dir, 1), snapshot(&changed, 2)) else {
            return Err(TestCaseError::reject("the change broke a reference"));
        };
        prop_assert_eq!(through_delta(&a, &b), b);
    }

    #[test]
    fn deltas_between_unrelated_directories_apply_too(a in any::<u64>(), b in any::<u64>(), n in 1usize..8) {
        let (a, b) = (snapshot(&random_directory(a, n), 1).unwrap(), snapshot(&random_directory(b, n), 2).unwrap());
        prop_assert_eq!(through_delta(&a, &b), b);
    }
}

fn example() -> Vec<u8> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.json"))
        .unwrap();
    let (dir, _) = build(&text).unwrap();
    snapshot(&dir, 1).unwrap()
}

fn one_change() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let base = example();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.json"))
        .unwrap();
    let (mut dir, _) = build(&text).unwrap();
    dir.users[0].phone = Some("+1 555 0100".into());
    let target = snapshot(&dir, 2).unwrap();
    let (sa, sb) = (decode(&base).unwrap(), decode(&target).unwrap());
    let d = delta::compute(&sa.body, &sb.body).unwrap();
    let bytes = encode_delta(&sa.header, &sb.header, &d).unwrap();
    (base, target, bytes)
}

#[test]
fn a_delta_names_its_base_and_target() {
    let (base, target, bytes) = one_change();
    let d = decode_delta(&bytes).unwrap();
    let (hb, ht) = (
        Header::parse(&base).unwrap(),
        Header::parse(&target).unwrap(),
    );
    assert_eq!(d.header.base_revision, 1);
    assert_eq!(d.header.base_sha256, hb.body_sha256);
    assert_eq!(d.header.target_revision, 2);
    assert_eq!(d.header.target_sha256, ht.body_sha256);
    assert_eq!(d.header.target_created_at, ht.created_at);
    assert_eq!(d.apply_to(&base).unwrap(), target);
    assert!(bytes.len() < 300, "one phone number: {} bytes", bytes.len());
}

#[test]
fn a_delta_on_another_base_is_refused() {
    let (_, target, bytes) = one_change();
    let d = decode_delta(&bytes).unwrap();
    // The target itself is not the base.
    assert!(matches!(
        d.apply_to(&target),
        Err(DeltaError::WrongBase { .. })
    ));
    // The same revision with other contents is not the base either.
    let mut other = example();
    let h = Header::parse(&other).unwrap();
    let body = decode(&other).unwrap().body;
    let mut changed = body.clone();
    changed.users[0].status = portcullis_snapshots::vocabulary::UserStatus::Disabled;
    other = encode(&changed, h.revision, h.created_at).unwrap();
    let err = d.apply_to(&other).unwrap_err();
    assert!(matches!(err, DeltaError::WrongBase { .. }), "{err}");
    assert!(err.to_string().contains("apply the full snapshot"), "{err}");
}

#[test]
fn a_corrupted_or_truncated_delta_is_refused() {
    let (base, _, bytes) = one_change();
    for len in 0..bytes.len() {
        assert!(decode_delta(&bytes[..len]).is_err(), "truncated at {len}");
    }
    for at in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x20;
        match decode_delta(&bad).map(|d| d.apply_to(&base)) {
            Err(_) | Ok(Err(_)) => {}
            // The target's revision and creation time (bytes 52..68) are
            // not in any hash, as a snapshot's are not: a signature covers
            // them. Changed, they are what the result says.
            Ok(Ok(out)) => {
                assert!((52..68).contains(&at), "byte {at} flipped, still applied");
                let d = decode_delta(&bad).unwrap();
                let h = Header::parse(&out).unwrap();
                assert_eq!(
                    (h.revision, h.created_at),
                    (d.header.target_revision, d.header.target_created_at)
                );
            }
        }
    }
}

#[test]
fn a_delta_whose_result_is_not_its_target_is_refused() {
    let (base, _, bytes) = one_change();
    let mut d = decode_delta(&bytes).unwrap();
    d.header.target_sha256[0] ^= 1;
    assert!(matches!(
        d.apply_to(&base),
        Err(DeltaError::TargetMismatch { .. })
    ));
    let mut d = decode_delta(&bytes).unwrap();
    d.body.base.users += 1;
    assert!(matches!(
        d.apply_to(&base),
        Err(DeltaError::DoesNotApply { .. })
    ));
}

/// Grants and memberships only: what a delta applied in place carries.
fn mutate_in_place(dir: &Directory, seed: u64) -> Directory {
    let rng = &mut ChaCha8Rng::seed_from_u64(seed);
    let mut d = dir.clone();
    for _ in 0..rng.random_range(1..5usize) {
        match rng.random_range(0..4) {
            0 if !d.grants.is_empty() => {
                let i = rng.random_range(0..d.grants.len());
                d.grants.remove(i);
            }
            1 if !d.grants.is_empty() => {
                let g = d.grants[rng.random_range(0..d.grants.len())].clone();
                let at = rng.random_range(0..=d.grants.len());
                d.grants.insert(at, g);
            }
            2 => {
                if let Some(g) = d.groups.iter_mut().find(|g| !g.members.is_empty()) {
                    let i = rng.random_range(0..g.members.len());
                    g.members.remove(i);
                }
            }
            _ if !d.users.is_empty() && !d.teams.is_empty() => {
                let u = d.users[rng.random_range(0..d.users.len())].username.clone();
                let t = rng.random_range(0..d.teams.len());
                if !d.teams[t].members.contains(&u) {
                    d.teams[t].members.push(u);
                }
            }
            _ => {}
        }
    }
    d
}

#[test]
fn chains_of_deltas_apply_to_bytes_in_place() {
    let mut applied = 0;
    for seed in 0..32u64 {
        let mut dir = random_directory(seed, 5);
        let Some(mut base) = snapshot(&dir, 1) else {
            continue;
        };
        let mut layout = Layout::of(&base).unwrap();
        for step in 0..3u64 {
            let next = mutate_in_place(&dir, seed * 7 + step);
            let Some(target) = snapshot(&next, step + 2) else {
                continue;
            };
            let (sa, sb) = (decode(&base).unwrap(), decode(&target).unwrap());
            let d = delta::compute(&sa.body, &sb.body).unwrap();
            let delta = decode_delta(&encode_delta(&sa.header, &sb.header, &d).unwrap()).unwrap();
            // Read off the bytes alone, the same change is found.
            assert!(
                between_agrees(&base, &layout, &target),
                "seed {seed} step {step}"
            );
            // The layout carried from the delta before, not walked again.
            layout = in_place_agrees(&delta, &base, &layout, &target).unwrap();
            applied += 1;
            base = target;
            dir = next;
        }
    }
    assert!(applied >= 64, "{applied}");
}

#[test]
fn a_delta_in_place_that_misses_its_target_is_refused() {
    let dir = random_directory(5, 5);
    let base = snapshot(&dir, 1).unwrap();
    let mut next = dir.clone();
    next.grants.pop();
    let target = snapshot(&next, 2).unwrap();
    let (sa, mut sb) = (decode(&base).unwrap(), decode(&target).unwrap());
    let d = delta::compute(&sa.body, &sb.body).unwrap();
    sb.header.body_sha256[0] ^= 1;
    let delta = decode_delta(&encode_delta(&sa.header, &sb.header, &d).unwrap()).unwrap();
    let layout = Layout::of(&base).unwrap();
    assert!(matches!(
        delta.apply_in_place(&base, &layout),
        Err(DeltaError::TargetMismatch { .. })
    ));
    // A layout of another snapshot is not used.
    assert!(matches!(
        delta.apply_in_place(&base, &Layout::of(&target).unwrap()),
        Err(DeltaError::NotInPlace(_))
    ));
}

/// A body of several hash checkpoints (64 KiB each): each delta in place
/// is hashed from the last checkpoint before its first change, and must
/// still give the full build's bytes, SHA-256 and checkpoints.
#[test]
fn deltas_in_place_rehash_only_from_their_first_change() {
    use portcullis_snapshots::generate::{GenerateParams, generate};
    let params = GenerateParams {
        users: 3_000,
        groups: 60,
        orgs: 20,
        envs: 20,
        catalogs: 100,
        grants: 15_000,
        seed: 7,
    };
    let mut dir = generate(params);
    let mut base = snapshot(&dir, 1).unwrap();
    assert!(base.len() > 4 * 65_536, "{} bytes", base.len());
    let mut layout = Layout::of(&base).unwrap();
    let rng = &mut ChaCha8Rng::seed_from_u64(7);
    for step in 0..6u64 {
        let mut next = dir.clone();
        match step % 3 {
            // Near the end (the last grants), in the middle, at the start
            // of the grants.
            0 => {
                next.grants.pop();
            }
            1 => {
                let i = rng.random_range(0..next.grants.len());
                let g = next.grants[i].clone();
                next.grants
                    .insert(rng.random_range(0..next.grants.len()), g);
            }
            _ => {
                if let Some(g) = next.groups.iter_mut().find(|g| !g.members.is_empty()) {
                    g.members.pop();
                }
                next.grants.remove(0);
            }
        }
        let target = snapshot(&next, step + 2).unwrap();
        let (sa, sb) = (decode(&base).unwrap(), decode(&target).unwrap());
        let d = delta::compute(&sa.body, &sb.body).unwrap();
        let delta = decode_delta(&encode_delta(&sa.header, &sb.header, &d).unwrap()).unwrap();
        layout = in_place_agrees(&delta, &base, &layout, &target).expect("in place");
        base = target;
        dir = next;
    }
}

/// Two groups (or teams, or users) that trade ids leave the strings and
/// every row count as they were — but a row under another id is another
/// record, which lookups by name would not follow: never found as a
/// change in place.
#[test]
fn rows_that_change_their_key_are_not_changes_in_place() {
    let mut checked = 0;
    for seed in 0..64u64 {
        let Some(base) = snapshot(&random_directory(seed, 5), 1) else {
            continue;
        };
        let layout = Layout::of(&base).unwrap();
        let body = decode(&base).unwrap().body;
        let mut trades: Vec<portcullis_snapshots::body::Body> = Vec::new();
        if body.groups.len() >= 2 {
            let mut b = body.clone();
            let (x, y) = (b.groups[0].id, b.groups[1].id);
            (b.groups[0].id, b.groups[1].id) = (y, x);
            trades.push(b);
        }
        if body.teams.len() >= 2 {
            let mut b = body.clone();
            let (x, y) = (b.teams[0].id, b.teams[1].id);
            (b.teams[0].id, b.teams[1].id) = (y, x);
            trades.push(b);
        }
        if body.users.len() >= 2 {
            let mut b = body.clone();
            let (x, y) = (b.users[0].username, b.users[1].username);
            (b.users[0].username, b.users[1].username) = (y, x);
            trades.push(b);
        }
        for traded in trades {
            let target = encode(&traded, 2, 1_700_000_002).unwrap();
            match delta::Delta::between(&base, &layout, &target) {
                Err(DeltaError::NotInPlace(_)) => checked += 1,
                Ok(_) => panic!("seed {seed}: records that traded ids were found in place"),
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert!(checked >= 64, "{checked}");
}

/// New strings are told from the first bytes: `same_strings` is false
/// exactly when the string tables differ (and then nothing is found in
/// place), and true for every change found in place.
#[test]
fn same_strings_tells_the_string_table_from_the_first_bytes() {
    let mut told = (0, 0);
    for seed in 0..48u64 {
        let dir = random_directory(seed, 5);
        let Some(base) = snapshot(&dir, 1) else {
            continue;
        };
        let layout = Layout::of(&base).unwrap();
        for change in 0..4u64 {
            let next = if change % 2 == 0 {
                mutate_in_place(&dir, seed * 11 + change)
            } else {
                mutate(&dir, seed * 11 + change)
            };
            let Some(target) = snapshot(&next, 2) else {
                continue;
            };
            let same = decode(&base).unwrap().body.strings == decode(&target).unwrap().body.strings;
            assert_eq!(
                delta::Delta::same_strings(&base, &target),
                same,
                "seed {seed} change {change}"
            );
            if delta::Delta::between(&base, &layout, &target).is_ok() {
                assert!(same);
            }
            if same { told.0 += 1 } else { told.1 += 1 }
        }
    }
    assert!(told.0 >= 20 && told.1 >= 20, "{told:?}");
}
