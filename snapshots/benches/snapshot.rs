//! Snapshot build and decode on the large generated directory (issue #2
//! targets: build ≤ 5 s, snapshot ≤ 24 MB, decode ≤ 300 ms).
//!
//! `cargo bench -p portcullis-snapshots --bench snapshot`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_snapshots::generate::{GenerateParams, generate};
use portcullis_snapshots::{decode, encode, source};

fn large(c: &mut Criterion) {
    let dir = generate(GenerateParams::default());
    let text = serde_json::to_string(&dir).expect("serialize");
    let (_, body) = source::build(&text).expect("generated directory is valid");
    let bytes = encode(&body, 1, 0).expect("encode");
    eprintln!(
        "large directory: {} bytes of JSON, snapshot {} bytes ({:.1} MB)",
        text.len(),
        bytes.len(),
        bytes.len() as f64 / 1e6
    );

    let mut g = c.benchmark_group("large");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function("build (parse + validate + compile + encode)", |b| {
        b.iter(|| {
            let (_, body) = source::build(black_box(&text)).expect("valid");
            encode(&body, 1, 0).expect("encode")
        })
    });
    g.bench_function("decode (header + sha256 + postcard + integrity)", |b| {
        b.iter(|| decode(black_box(&bytes)).expect("decode"))
    });
    g.finish();
}

criterion_group!(benches, large);
criterion_main!(benches);
