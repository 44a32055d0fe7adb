//! The engine as the gateway runs it: the WebAssembly module under wasmtime,
//! on the large generated directory (issue #3 targets: one check, request
//! encoding and copy included, ≤ 500 ns; a batch of 1000 ≤ 0.3 ms; load and
//! index inside the module ≤ 500 ms with memory ≤ 3× the snapshot).
//! `cargo bench -p portcullis-host --bench module`
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
use portcullis_host::module::{InstanceLimits, POLICY_MODULE, PolicyModule};
use portcullis_snapshots::encode;
use portcullis_snapshots::generate::{GenerateParams, generate};
use portcullis_snapshots::source::compile;

#[path = "../../policy-wasm/benches/requests.rs"]
mod requests;

fn wasm(c: &mut Criterion) {
    let params = GenerateParams::default();
    let dir = generate(params);
    let bytes = encode(&compile(&dir).expect("valid"), 1, 0).expect("encode");
    let module = PolicyModule::new().expect("compile");
    eprintln!("module: {} bytes", POLICY_MODULE.len());

    // Load + index inside the module, and the memory it takes, in a fresh
    // instance each time (memory never shrinks, so reuse would flatter it).
    let mut loads = Vec::new();
    let mut memory = 0;
    for _ in 0..5 {
        let mut inst = module
            .instantiate(InstanceLimits::default())
            .expect("instantiate");
        let t = Instant::now();
        inst.load_snapshot(&bytes).expect("load");
        loads.push(t.elapsed());
        memory = inst.memory_size();
    }
    loads.sort();
    eprintln!(
        "load in module: median {:?} (min {:?}, max {:?}); linear memory after load {} bytes = {:.2}x the {}-byte snapshot",
        loads[2],
        loads[0],
        loads[4],
        memory,
        memory as f64 / bytes.len() as f64,
        bytes.len()
    );

    let mut inst = module
        .instantiate(InstanceLimits::default())
        .expect("instantiate");
    inst.load_snapshot(&bytes).expect("load");
    let native = Engine::load(&bytes).expect("load");
    let owned = requests::request_mix(&dir, params);
    let reqs: Vec<Request<'_>> = owned.iter().map(|r| r.as_request()).collect();
    for r in &reqs[..256] {
        assert_eq!(inst.check(r).expect("check"), native.check(r));
    }

    let mut g = c.benchmark_group("wasmtime");
    g.measurement_time(Duration::from_secs(10));
    let mut i = 0;
    g.bench_function("check (encode + copy + call + decode)", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(inst.check(black_box(&reqs[i])).expect("check"))
        })
    });
    // What the gateway's workers run: an instance started from the
    // memory image of one that loaded the snapshot (copy-on-write pages of
    // a sealed memfd instead of anonymous memory).
    let image = module
        .load_image(&bytes, InstanceLimits::default())
        .expect("image");
    let mut from_image = module
        .instantiate_image(&image, InstanceLimits::default())
        .expect("instance from the image");
    g.bench_function(
        "check, instance from the image (encode + copy + call + decode)",
        |b| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(from_image.check(black_box(&reqs[i])).expect("check"))
            })
        },
    );
    g.bench_function("bare typed call (pc_revision)", |b| {
        b.iter(|| black_box(inst.revision().expect("revision")))
    });
    // The fixed cost of the boundary: a request denied at the first lookup.
    let unknown = Request {
        principal: "user/nobody",
        ..reqs[0]
    };
    g.bench_function("check (unknown principal: boundary cost)", |b| {
        b.iter(|| black_box(inst.check(black_box(&unknown)).expect("check")))
    });
    // The same 16 requests over and over (a few busy users, cache-hot).
    g.bench_function("check (16 hot requests)", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(inst.check(black_box(&reqs[i & 15])).expect("check"))
        })
    });
    let hot: Vec<Request<'_>> = (0..1000).map(|k| reqs[k & 15]).collect();
    g.bench_function("check_batch of 1000 (16 hot requests)", |b| {
        b.iter(|| black_box(inst.check_batch(black_box(&hot)).expect("batch")))
    });
    g.bench_function("check_batch of 1000", |b| {
        b.iter(|| black_box(inst.check_batch(black_box(&reqs[..1000])).expect("batch")))
    });
    g.bench_function("explain", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(inst.explain(black_box(&reqs[i])).expect("explain"))
        })
    });
    g.finish();
    let mut g = c.benchmark_group("wasmtime instantiate");
    g.bench_function(
        "PolicyModule::instantiate_image (a worker's instance after a swap)",
        |b| {
            b.iter(|| {
                black_box(
                    module
                        .instantiate_image(&image, InstanceLimits::default())
                        .expect("instantiate"),
                )
            })
        },
    );
    g.bench_function("PolicyModule::instantiate (InstancePre)", |b| {
        b.iter(|| {
            black_box(
                module
                    .instantiate(InstanceLimits::default())
                    .expect("instantiate"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, wasm);
criterion_main!(benches);
