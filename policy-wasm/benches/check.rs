//! Native engine on the large generated directory (issue #3 targets:
//! `check` median ≤ 200 ns). `cargo bench -p policy-wasm --bench check`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use policy_wasm::{Engine, Request};
use portcullis_snapshots::encode;
use portcullis_snapshots::generate::{GenerateParams, generate};
use portcullis_snapshots::source::compile;

mod requests;

fn native(c: &mut Criterion) {
    let params = GenerateParams::default();
    let dir = generate(params);
    let bytes = encode(&compile(&dir).expect("valid"), 1, 0).expect("encode");
    let t = Instant::now();
    let engine = Engine::load(&bytes).expect("load");
    eprintln!(
        "native load + index of {} bytes: {:?}",
        bytes.len(),
        t.elapsed()
    );
    let owned = requests::request_mix(&dir, params);
    let reqs: Vec<Request<'_>> = owned.iter().map(|r| r.as_request()).collect();
    let allowed = reqs.iter().filter(|r| engine.check(r).allowed).count();
    eprintln!("request mix: {allowed} of {} allowed", reqs.len());

    let mut g = c.benchmark_group("native");
    g.measurement_time(Duration::from_secs(10));
    let mut i = 0;
    g.bench_function("check (mixed requests)", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(engine.check(black_box(&reqs[i])))
        })
    });
    // The same 16 requests over and over: what a gateway sees when a few
    // users are busy; their records stay in cache.
    g.bench_function("check (16 hot requests)", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(engine.check(black_box(&reqs[i & 15])))
        })
    });
    g.bench_function("check_batch of 1000", |b| {
        b.iter(|| black_box(engine.check_batch(black_box(&reqs[..1000]))))
    });
    g.bench_function("explain (mixed requests)", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(engine.explain(black_box(&reqs[i])))
        })
    });
    g.bench_function("permissions(user, catalog)", |b| {
        b.iter(|| black_box(engine.permissions("user/user42", "catalog/cat-17", reqs[0].context)))
    });
    g.finish();
    let mut g = c.benchmark_group("native load");
    g.sample_size(10);
    g.bench_function("Engine::load (decode + verify + index)", |b| {
        b.iter(|| Engine::load(black_box(&bytes)).expect("load"))
    });
    g.finish();
}

criterion_group!(benches, native);
criterion_main!(benches);
