//! Cutting principals' views of the large generated directory (issue #13
//! targets: median ≤ 2 ms, p99 ≤ 20 ms over 1,000 random users; an owner
//! of the whole domain ≤ 300 ms; gzipped size median ≤ 16 KB, p99 ≤ 256 KB).
//!
//! `cargo bench -p policy-wasm --bench views` — prints a Markdown table
//! for `docs/BENCHMARKS.md`. Set `PORTCULLIS_VIEWS_SAMPLE` to change the
//! number of users, `PORTCULLIS_BIG_SNAP` to read the directory from a
//! snapshot file (`portcullis snapshot generate` writes the same one).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::io::Write;
use std::time::{Duration, Instant};

use policy_wasm::Engine;
use portcullis_snapshots::encode;
use portcullis_snapshots::generate::{GenerateParams, generate};
use portcullis_snapshots::source::compile;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gzipped(bytes: &[u8]) -> usize {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).unwrap();
    z.finish().unwrap().len()
}

fn pct<T: Copy + Ord>(sorted: &[T], p: f64) -> T {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct One {
    time: Duration,
    bytes: usize,
    gz: usize,
    users: usize,
}

fn cut(engine: &Engine, principal: &str) -> One {
    let t = Instant::now();
    let bytes = engine.view(principal).unwrap();
    let time = t.elapsed();
    let (body, _) = engine.view_body(principal).unwrap();
    One {
        time,
        bytes: bytes.len(),
        gz: gzipped(&bytes),
        users: body
            .users
            .iter()
            .filter(|u| !body.str(u.username).is_empty())
            .count(),
    }
}

fn main() {
    let params = GenerateParams::default();
    // `portcullis snapshot generate` writes the same directory; reading it
    // saves generating it again (and keeps profiles about views).
    let bytes = match std::env::var("PORTCULLIS_BIG_SNAP") {
        Ok(path) => std::fs::read(path).expect("PORTCULLIS_BIG_SNAP"),
        Err(_) => encode(&compile(&generate(params)).expect("valid"), 1, 0).expect("encode"),
    };
    // What a gateway serving browsers adds to every swap: the views'
    // engine is loaded once per replica (not per worker), and the
    // snapshot is fingerprinted to tell which views a push reaches.
    let t = Instant::now();
    let decoded = portcullis_snapshots::decode(&bytes).expect("decode");
    let decode = t.elapsed();
    let t = Instant::now();
    let fingerprint = portcullis_snapshots::fingerprint::Fingerprint::of(&decoded.body);
    let fingerprinted = t.elapsed();
    let t = Instant::now();
    let change = fingerprint.change_to(&fingerprint);
    println!(
        "per swap: decode {:.0} ms, fingerprint {:.0} ms, compare {:.1} ms ({change:?})",
        ms(decode),
        ms(fingerprinted),
        ms(t.elapsed())
    );
    drop(decoded);
    let engine = Engine::load(&bytes).expect("load");
    println!(
        "directory: {} users, {} grants, {} bytes ({} gzipped)",
        params.users,
        params.grants,
        bytes.len(),
        gzipped(&bytes)
    );
    // The first view builds the downward tree index once per engine.
    let t = Instant::now();
    engine.view("user/user42").unwrap();
    println!("first view (builds the tree index): {:?}", t.elapsed());

    let n: usize = std::env::var("PORTCULLIS_VIEWS_SAMPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let rng = &mut ChaCha8Rng::seed_from_u64(13);
    let mut all: Vec<One> = (0..n)
        .map(|_| {
            cut(
                &engine,
                &format!("user/user{}", rng.random_range(0..params.users)),
            )
        })
        .collect();
    let mut times: Vec<Duration> = all.iter().map(|o| o.time).collect();
    times.sort();
    let mut raw: Vec<usize> = all.iter().map(|o| o.bytes).collect();
    raw.sort();
    let mut gz: Vec<usize> = all.iter().map(|o| o.gz).collect();
    gz.sort();
    all.sort_by_key(|o| o.users);
    let with_others = all.iter().filter(|o| o.users > 1).count();
    println!();
    println!("| {n} random users | median | p90 | p99 | max |");
    println!("|---|---|---|---|---|");
    println!(
        "| cut + encode | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
        ms(pct(&times, 0.5)),
        ms(pct(&times, 0.9)),
        ms(pct(&times, 0.99)),
        ms(*times.last().unwrap())
    );
    println!(
        "| size | {} B | {} B | {} B | {} B |",
        pct(&raw, 0.5),
        pct(&raw, 0.9),
        pct(&raw, 0.99),
        raw.last().unwrap()
    );
    println!(
        "| gzipped | {} B | {} B | {} B | {} B |",
        pct(&gz, 0.5),
        pct(&gz, 0.9),
        pct(&gz, 0.99),
        gz.last().unwrap()
    );
    let users: Vec<usize> = all.iter().map(|o| o.users).collect();
    println!(
        "| users in the view | {} | {} | {} | {} |",
        pct(&users, 0.5),
        pct(&users, 0.9),
        pct(&users, 0.99),
        users.last().unwrap()
    );
    let total: Duration = times.iter().sum();
    println!(
        "\n{with_others} of {n} views hold someone besides their principal; all {n} took {:.0} ms in all (mean {:.2} ms).\n",
        ms(total),
        ms(total) / n as f64
    );
    println!("| principal | cut + encode (median of 5) | size | gzipped | users |");
    println!("|---|---|---|---|---|");
    for (who, p) in [
        ("owner", "user/user0"),
        ("super administrator", "user/user1"),
        ("user42 (the issue's example)", "user/user42"),
    ] {
        let mut runs: Vec<One> = (0..5).map(|_| cut(&engine, p)).collect();
        runs.sort_by_key(|o| o.time);
        let o = &runs[2];
        println!(
            "| {who} | {:.1} ms | {} B | {} B | {} |",
            ms(o.time),
            o.bytes,
            o.gz,
            o.users
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
