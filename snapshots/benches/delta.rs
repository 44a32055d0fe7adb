//! Delta sizes and times on the large generated directory (issue #14:
//! a delta that changes one user's grants and group memberships ≤ 4 KB; a
//! delta of 1% of the grants ≤ 10% of the full snapshot).
//!
//! `cargo bench -p portcullis-snapshots --bench delta` — prints a Markdown
//! table for `docs/BENCHMARKS.md`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::time::Instant;

use portcullis_snapshots::delta::{self, Layout, decode_delta, encode_delta};
use portcullis_snapshots::generate::{GenerateParams, generate};
use portcullis_snapshots::source::{Directory, Grant, compile};
use portcullis_snapshots::{decode, encode};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() {
    let params = GenerateParams::default();
    let dir = generate(params);
    let base = encode(&compile(&dir).expect("valid"), 1, 0).expect("encode");
    let t = Instant::now();
    let layout = Layout::of(&base).unwrap();
    let layout_took = t.elapsed();
    println!(
        "| change | delta | of the snapshot | make | apply (decode, apply, encode, check) | apply to bytes in place (copy, hash) |"
    );
    println!("|---|---|---|---|---|---|");
    let rng = &mut ChaCha8Rng::seed_from_u64(14);
    for (name, changed) in [
        (
            "one user's grants and group memberships",
            one_user(&dir, rng),
        ),
        ("one user's phone number", phone(&dir)),
        (
            "1% of the grants (5,000 moved to another catalog)",
            grants(&dir, rng, 0.01),
        ),
        ("a user added in the middle", user_added(&dir)),
    ] {
        let target = encode(&compile(&changed).expect("valid"), 2, 1).expect("encode");
        let t = Instant::now();
        let (a, b) = (decode(&base).unwrap(), decode(&target).unwrap());
        let d = delta::compute(&a.body, &b.body).unwrap();
        let bytes = encode_delta(&a.header, &b.header, &d).unwrap();
        let make = t.elapsed();
        let t = Instant::now();
        let out = decode_delta(&bytes).unwrap().apply_to(&base).unwrap();
        let apply = t.elapsed();
        assert_eq!(out, target);
        // Median of 5: the copy and the hash are short enough for noise.
        let delta = decode_delta(&bytes).unwrap();
        let mut times = Vec::new();
        let mut in_place = String::new();
        for _ in 0..5 {
            let t = Instant::now();
            match delta.apply_in_place(&base, &layout) {
                Ok(applied) => {
                    times.push(t.elapsed());
                    assert_eq!(applied.snapshot, target);
                }
                Err(e) => in_place = format!("no: {e}"),
            }
        }
        times.sort();
        if let Some(m) = times.get(times.len() / 2) {
            in_place = format!("{:.1} ms", m.as_secs_f64() * 1e3);
        }
        println!(
            "| {name} | {} bytes | {:.3}% | {:.2} s | {:.0} ms | {in_place} |",
            bytes.len(),
            bytes.len() as f64 * 100.0 / target.len() as f64,
            make.as_secs_f64(),
            apply.as_secs_f64() * 1e3
        );
    }
    println!(
        "\nfull snapshot: {} bytes; its layout (made once per full snapshot): {:.0} ms, {} KiB",
        base.len(),
        layout_took.as_secs_f64() * 1e3,
        layout.heap_bytes() / 1024
    );
}

fn one_user(dir: &Directory, rng: &mut ChaCha8Rng) -> Directory {
    let mut d = dir.clone();
    let user = "user/user42".to_string();
    d.grants.retain(|g| g.principal != user);
    for _ in 0..3 {
        let at = rng.random_range(0..d.grants.len());
        d.grants.insert(
            at,
            Grant {
                principal: user.clone(),
                role: "reader".into(),
                on: format!(
                    "catalog/{}",
                    d.catalogs[rng.random_range(0..d.catalogs.len())].id
                ),
            },
        );
    }
    let mut left = 0;
    for g in d.groups.iter_mut() {
        if left < 2 && g.members.contains(&user) {
            g.members.retain(|m| *m != user);
            left += 1;
        }
    }
    for _ in 0..2 {
        let i = rng.random_range(0..d.groups.len());
        if !d.groups[i].members.contains(&user) {
            let at = rng.random_range(0..=d.groups[i].members.len());
            d.groups[i].members.insert(at, user.clone());
        }
    }
    d
}

fn phone(dir: &Directory) -> Directory {
    let mut d = dir.clone();
    d.users[42].phone = Some("+44 20 7946 0000".into());
    d
}

fn grants(dir: &Directory, rng: &mut ChaCha8Rng, share: f64) -> Directory {
    let mut d = dir.clone();
    // Grants on catalogs move to another catalog (the role stays valid).
    let on_catalogs: Vec<usize> = (0..d.grants.len())
        .filter(|&i| d.grants[i].on.starts_with("catalog/"))
        .collect();
    let n = (d.grants.len() as f64 * share) as usize;
    for _ in 0..n {
        let i = on_catalogs[rng.random_range(0..on_catalogs.len())];
        d.grants[i].on = format!(
            "catalog/{}",
            d.catalogs[rng.random_range(0..d.catalogs.len())].id
        );
    }
    d
}

fn user_added(dir: &Directory) -> Directory {
    let mut d = dir.clone();
    let mut u = d.users[500].clone();
    u.username = "newcomer".into();
    u.email = "newcomer@example.com".into();
    d.users.insert(50_000, u);
    d
}
