//! What a swap of the large snapshot costs with 1 to 8 workers (issue #14,
//! part 1: CPU per swap with 8 workers ≤ 1.3× one worker's, memory with 8
//! workers ≤ 1.5× one worker's), side by side with the way swaps worked
//! before: every worker's instance loading the snapshot itself.
//!
//! `cargo bench -p portcullis-host --bench swap` — prints a Markdown
//! table for `docs/BENCHMARKS.md`. `PORTCULLIS_BIG_SNAP` reads the snapshot
//! from a file (`portcullis snapshot generate` writes the same one);
//! `PORTCULLIS_SWAPS` sets the swaps per row (5);
//! `PORTCULLIS_SWAP_ROWS=delta` runs the delta rows only.
//!
//! CPU is the process's CPU time around `Swapper::install` (median of the
//! swaps). Memory is what the process's anonymous memory grew by (its
//! proportional share, `Pss_Anon` in `/proc/self/smaps_rollup`) after every
//! worker has decided 4,096 requests, plus the pages the image file holds
//! (`MemoryImage::resident_bytes`): the image is shared and lives in the
//! file, whether or not an instance maps it. RSS is printed too: it counts
//! an image page once per instance that maps it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_host::cpu_time;
use portcullis_host::module::{InstanceLimits, PolicyModule};
use portcullis_host::swap::{EnginePool, Source, Swapper};
use portcullis_snapshots::Candidate;
use portcullis_snapshots::encode;
use portcullis_snapshots::generate::{GenerateParams, generate};
use portcullis_snapshots::source::compile;

#[path = "../../policy-wasm/benches/requests.rs"]
mod requests;

#[path = "common/one_user_deltas.rs"]
mod one_user_deltas;
use one_user_deltas::one_user_deltas;

fn main() {
    let params = GenerateParams::default();
    let dir = generate(params);
    let bytes = match std::env::var("PORTCULLIS_BIG_SNAP") {
        Ok(path) => std::fs::read(path).expect("PORTCULLIS_BIG_SNAP"),
        Err(_) => encode(&compile(&dir).expect("valid"), 1, 0).expect("encode"),
    };
    let owned = requests::request_mix(&dir, params);
    let swaps: usize = std::env::var("PORTCULLIS_SWAPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // One user's change after another, each a delta from the revision
    // before (what part 2 of the issue measures: applying one in the
    // gateway, in the steady state of a stream of deltas).
    let deltas = one_user_deltas(&dir, swaps + 1);
    drop(dir);
    let module = PolicyModule::new().expect("compile");
    let limits = InstanceLimits::default();

    println!("| workers | how | CPU per swap (median of {swaps}) | wall per swap | memory | RSS |");
    println!("|---|---|---|---|---|---|");
    let mut now = Vec::new();
    let mut before = Vec::new();
    // `PORTCULLIS_SWAP_ROWS=delta` measures the delta rows only.
    let full_rows = std::env::var("PORTCULLIS_SWAP_ROWS").map_or(true, |r| r != "delta");
    for workers in [1usize, 2, 4, 8].into_iter().filter(|_| full_rows) {
        // Now: the swapper loads once and starts every worker's instance
        // from the image.
        let base = memory();
        let pool = EnginePool::new(module.clone(), limits, workers).expect("pool");
        let (mut cpu, mut wall) = (Vec::new(), Vec::new());
        // A swapper installing the same body again finds nothing changed
        // and patches nothing: each swap is a fresh swapper's first, a
        // full load.
        let mut swapper = Swapper::new(Arc::clone(&pool), 1 << 30);
        for k in 0..swaps {
            swapper = Swapper::new(Arc::clone(&pool), 1 << 30);
            let candidate = with_revision(&bytes, k as u64 + 1);
            let (c, w) = (cpu_time::process(), Instant::now());
            swapper
                .install(Candidate::Snapshot(candidate), Source::Push, false)
                .expect("installs");
            cpu.push(cpu_time::process() - c);
            wall.push(w.elapsed());
        }
        let generation = swapper.current().expect("installed");
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    for r in &owned {
                        generation
                            .with_instance(&pool, |i| i.check(&r.as_request()))
                            .expect("decides");
                    }
                });
            }
        });
        let mut used = memory().minus(base);
        used.pss += generation.image().resident_bytes() / 1024;
        row(workers, "one load, image", &mut cpu, &mut wall, used);
        now.push((median(&mut cpu), used.pss));
        drop(generation);
        drop(swapper);
        drop(pool);

        // Before: each worker's instance loads the snapshot itself.
        let base = memory();
        let (mut cpu, mut wall) = (Vec::new(), Vec::new());
        let mut instances = Vec::new();
        for _ in 0..swaps {
            let (c, w) = (cpu_time::process(), Instant::now());
            instances = (0..workers)
                .map(|_| {
                    let mut i = module.instantiate(limits).expect("instance");
                    i.load_snapshot(&bytes).expect("loads");
                    i
                })
                .collect::<Vec<_>>();
            cpu.push(cpu_time::process() - c);
            wall.push(w.elapsed());
        }
        std::thread::scope(|s| {
            for i in instances.iter_mut() {
                let owned = &owned;
                s.spawn(move || {
                    for r in owned {
                        i.check(&r.as_request()).expect("decides");
                    }
                });
            }
        });
        let used = memory().minus(base);
        row(workers, "a load per worker", &mut cpu, &mut wall, used);
        before.push((median(&mut cpu), used.pss));
        drop(instances);
    }
    // Deltas: each applied to the serving snapshot's bytes and, in one
    // instance, to its engine; the workers map the new image (base +
    // overlay) lazily. The first requests after it pay for faulting in the
    // pages they touch: counted as the CPU of the workers' first pass over
    // the request mix, less the same pass after a full install.
    for workers in [1usize, 8] {
        let pool = EnginePool::new(module.clone(), limits, workers).expect("pool");
        let swapper = Swapper::new(Arc::clone(&pool), 1 << 30);
        let (mut cpu, mut wall, mut extra) = (Vec::new(), Vec::new(), Vec::new());
        let mut in_place = true;
        let pass = |swapper: &Swapper| {
            let generation = swapper.current().expect("installed");
            let c = cpu_time::process();
            std::thread::scope(|s| {
                for _ in 0..workers {
                    s.spawn(|| {
                        for r in owned.iter().take(2_048) {
                            generation
                                .with_instance(&pool, |i| i.check(&r.as_request()))
                                .expect("decides");
                        }
                    });
                }
            });
            cpu_time::process() - c
        };
        swapper
            .install(
                Candidate::Snapshot(with_revision(&bytes, 1)),
                Source::Push,
                true,
            )
            .expect("base");
        // Its layout is walked in the background after a full swap: not
        // a delta's cost.
        swapper
            .current()
            .expect("installed")
            .layout()
            .expect("layout");
        let after_full = pass(&swapper);
        for (k, delta) in deltas.iter().enumerate() {
            let (c, w) = (cpu_time::process(), Instant::now());
            let done = swapper
                .install(Candidate::Delta(delta.clone()), Source::Push, false)
                .expect("applies");
            let (c, w) = (cpu_time::process() - c, w.elapsed());
            in_place &= done.in_place;
            let after_delta = pass(&swapper);
            // The first delta replaces the full swap's generation (every
            // page mapped up front in every worker); the others are the
            // steady state.
            if k > 0 {
                cpu.push(c);
                wall.push(w);
                extra.push(after_delta.saturating_sub(after_full));
            }
        }
        println!(
            "| {workers} | a one-user delta ({} bytes), {} | {:.1} ms | {:.1} ms | | |",
            deltas[1].len(),
            if in_place {
                "applied in place"
            } else {
                "applied, then loaded once"
            },
            median(&mut cpu).as_secs_f64() * 1e3,
            median(&mut wall).as_secs_f64() * 1e3,
        );
        println!(
            "| {workers} | … and its workers' first 2,048 requests each, more than after a full swap | {:.1} ms | | | |",
            median(&mut extra).as_secs_f64() * 1e3,
        );
    }
    if !full_rows {
        return;
    }
    let ratio = |v: &[(Duration, u64)], cpu: bool| {
        let (first, last) = (v[0], v[v.len() - 1]);
        if cpu {
            last.0.as_secs_f64() / first.0.as_secs_f64()
        } else {
            last.1 as f64 / first.1 as f64
        }
    };
    println!();
    println!(
        "8 workers / 1 worker — one load, image: CPU {:.2}× (target ≤ 1.3), memory {:.2}× (target ≤ 1.5); a load per worker: CPU {:.2}×, memory {:.2}×",
        ratio(&now, true),
        ratio(&now, false),
        ratio(&before, true),
        ratio(&before, false)
    );
}

fn row(workers: usize, how: &str, cpu: &mut [Duration], wall: &mut [Duration], used: Memory) {
    println!(
        "| {workers} | {how} | {:.0} ms | {:.0} ms | {:.0} MiB | {:.0} MiB |",
        median(cpu).as_secs_f64() * 1e3,
        median(wall).as_secs_f64() * 1e3,
        used.pss as f64 / 1024.0,
        used.rss as f64 / 1024.0,
    );
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The same snapshot under another revision (the revision is in the
/// header, outside the hashed body).
fn with_revision(bytes: &[u8], revision: u64) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[12..20].copy_from_slice(&revision.to_le_bytes());
    b
}

#[derive(Clone, Copy)]
struct Memory {
    /// KiB.
    pss: u64,
    /// KiB.
    rss: u64,
}

impl Memory {
    fn minus(self, base: Memory) -> Memory {
        Memory {
            pss: self.pss.saturating_sub(base.pss),
            rss: self.rss.saturating_sub(base.rss),
        }
    }
}

fn memory() -> Memory {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").expect("smaps_rollup");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory {
        pss: field("Pss_Anon:"),
        rss: field("Rss:"),
    }
}
