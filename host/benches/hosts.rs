//! The wasmtime host and the native host side by side on the large
//! directory, through the one interface the gateway would use
//! ([`EngineHost`]): what a decision costs on one thread and what the
//! workers decide together, what a full swap and a one-user delta cost in
//! CPU, and the memory a loaded snapshot takes with every worker deciding.
//!
//! `cargo bench -p portcullis-host --bench hosts` — prints a Markdown table
//! for `docs/BENCHMARKS.md`. `PORTCULLIS_BIG_SNAP` reads the snapshot from a
//! file (`portcullis snapshot generate` writes the same one);
//! `PORTCULLIS_WORKERS` sets the workers (8); `PORTCULLIS_SWAPS` the swaps
//! and deltas per row (5).
//!
//! Both hosts are measured in one run, one after the other, so the ratio
//! is the figure to quote. Decisions: the request mix of the engine's own
//! benchmarks, asked in order; nanoseconds per decision is the median of
//! 7 passes on one thread; throughput is the decisions of all workers in
//! one pass over wall time (median of 5). Memory: what the process's
//! anonymous memory grew by (`Pss_Anon`) from before the first install to
//! after every worker has decided, plus the pages the wasmtime host's
//! image file holds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use policy_wasm::OwnedRequest;
use portcullis_host::cpu_time;
use portcullis_host::engine_host::EngineHost;
use portcullis_host::module::{InstanceLimits, PolicyModule};
use portcullis_host::native::NativeHost;
use portcullis_host::swap::{EnginePool, Source, Swapper, set_worker_index};
use portcullis_snapshots::Candidate;
use portcullis_snapshots::encode;
use portcullis_snapshots::generate::{GenerateParams, generate};
use portcullis_snapshots::source::compile;

#[path = "../../policy-wasm/benches/requests.rs"]
mod requests;

#[path = "common/one_user_deltas.rs"]
mod one_user_deltas;

struct Figures {
    full_cpu: Duration,
    full_wall: Duration,
    delta_cpu: Duration,
    in_place: bool,
    ns_per_check: f64,
    per_second: f64,
    memory_kib: u64,
}

impl Figures {
    /// One line on the child's stdout, read back by the parent.
    fn line(&self) -> String {
        format!(
            "FIGURES {} {} {} {} {} {} {}",
            self.full_cpu.as_nanos(),
            self.full_wall.as_nanos(),
            self.delta_cpu.as_nanos(),
            self.in_place,
            self.ns_per_check,
            self.per_second,
            self.memory_kib
        )
    }

    fn parse(line: &str) -> Figures {
        let f: Vec<&str> = line
            .strip_prefix("FIGURES ")
            .expect("a figures line")
            .split(' ')
            .collect();
        let nanos = |s: &str| Duration::from_nanos(s.parse().expect("nanoseconds"));
        Figures {
            full_cpu: nanos(f[0]),
            full_wall: nanos(f[1]),
            delta_cpu: nanos(f[2]),
            in_place: f[3] == "true",
            ns_per_check: f[4].parse().expect("ns"),
            per_second: f[5].parse().expect("per second"),
            memory_kib: f[6].parse().expect("KiB"),
        }
    }
}

fn main() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (workers, swaps) = (env("PORTCULLIS_WORKERS", 8), env("PORTCULLIS_SWAPS", 5));
    // Each host in a process of its own that holds nothing but its
    // inputs: neither inherits the other's freed heap, nor the directory's
    // (the memory figure would read it as free).
    let Ok(inputs) = std::env::var("PORTCULLIS_HOSTS_INPUTS") else {
        let inputs = tempfile::tempdir().expect("a temporary directory");
        write_inputs(inputs.path(), swaps);
        let wasm = in_child("wasmtime", inputs.path());
        let native = in_child("native", inputs.path());
        report(&wasm, &native, workers, swaps);
        return;
    };
    let inputs = std::path::Path::new(&inputs);
    let bytes = std::fs::read(inputs.join("snapshot")).expect("snapshot");
    let deltas: Vec<Vec<u8>> =
        serde_json::from_slice(&std::fs::read(inputs.join("deltas.json")).expect("deltas"))
            .expect("deltas");
    let owned: Vec<OwnedRequest> =
        serde_json::from_slice(&std::fs::read(inputs.join("requests.json")).expect("requests"))
            .expect("requests");
    let run = Run {
        bytes: &bytes,
        deltas: &deltas,
        owned: &owned,
        workers,
        swaps,
    };
    let figures = if std::env::var("PORTCULLIS_HOSTS_ONE").as_deref() == Ok("wasmtime") {
        let pool = EnginePool::new(
            PolicyModule::new().expect("compile"),
            InstanceLimits::default(),
            workers,
        )
        .expect("pool");
        run.measure(
            || Swapper::new(Arc::clone(&pool), 1 << 30),
            // The image lives in a file, shared by every instance: memory
            // the snapshot takes all the same.
            |swapper| {
                swapper
                    .current()
                    .expect("installed")
                    .image()
                    .resident_bytes()
                    / 1024
            },
        )
    } else {
        run.measure(|| NativeHost::new(1 << 30), |_| 0)
    };
    println!("{}", figures.line());
}

/// The large snapshot, `swaps + 1` one-user deltas from it and the request
/// mix, into `dir`.
fn write_inputs(dir: &std::path::Path, swaps: usize) {
    let params = GenerateParams::default();
    let directory = generate(params);
    let bytes = match std::env::var("PORTCULLIS_BIG_SNAP") {
        Ok(path) => std::fs::read(path).expect("PORTCULLIS_BIG_SNAP"),
        Err(_) => encode(&compile(&directory).expect("valid"), 1, 0).expect("encode"),
    };
    let deltas = one_user_deltas::one_user_deltas(&directory, swaps + 1);
    let owned = requests::request_mix(&directory, params);
    std::fs::write(dir.join("snapshot"), bytes).expect("writes");
    std::fs::write(
        dir.join("deltas.json"),
        serde_json::to_vec(&deltas).expect("JSON"),
    )
    .expect("writes");
    std::fs::write(
        dir.join("requests.json"),
        serde_json::to_vec(&owned).expect("JSON"),
    )
    .expect("writes");
}

fn in_child(host: &str, inputs: &std::path::Path) -> Figures {
    let out = std::process::Command::new(std::env::current_exe().expect("this bench"))
        .env("PORTCULLIS_HOSTS_ONE", host)
        .env("PORTCULLIS_HOSTS_INPUTS", inputs)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("runs");
    assert!(out.status.success(), "the {host} run failed");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    Figures::parse(
        text.lines()
            .find(|l| l.starts_with("FIGURES "))
            .expect("figures"),
    )
}

fn report(wasm: &Figures, native: &Figures, workers: usize, swaps: usize) {
    println!(
        "| host | decision, 1 thread (ns, median of 7) | decisions/s, {workers} workers | full swap CPU (median of {swaps}) | full swap wall | one-user delta CPU | memory, {workers} workers deciding |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, f) in [
        ("wasmtime (the gateway's)", wasm),
        ("native, in process", native),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} M | {:.0} ms | {:.0} ms | {:.2} ms{} | {:.0} MiB |",
            f.ns_per_check,
            f.per_second / 1e6,
            f.full_cpu.as_secs_f64() * 1e3,
            f.full_wall.as_secs_f64() * 1e3,
            f.delta_cpu.as_secs_f64() * 1e3,
            if f.in_place { ", in place" } else { ", loaded" },
            f.memory_kib as f64 / 1024.0,
        );
    }
    println!();
    println!(
        "native / wasmtime: decision {:.2}×, throughput {:.2}×, full swap CPU {:.2}×, delta CPU {:.2}×, memory {:.2}×",
        native.ns_per_check / wasm.ns_per_check,
        native.per_second / wasm.per_second,
        native.full_cpu.as_secs_f64() / wasm.full_cpu.as_secs_f64(),
        native.delta_cpu.as_secs_f64() / wasm.delta_cpu.as_secs_f64(),
        native.memory_kib as f64 / wasm.memory_kib as f64,
    );
}

struct Run<'a> {
    bytes: &'a [u8],
    deltas: &'a [Vec<u8>],
    owned: &'a [OwnedRequest],
    workers: usize,
    swaps: usize,
}

impl Run<'_> {
    /// The figures of the hosts `fresh` makes; `image_kib`: memory a host
    /// holds outside the process's anonymous memory.
    fn measure<H: EngineHost>(
        &self,
        fresh: impl Fn() -> H,
        image_kib: impl Fn(&H) -> u64,
    ) -> Figures {
        let base_kib = memory_kib();
        // A full load each time: a host installing the same body again
        // may find it unchanged and patch nothing, so each swap is a
        // fresh host's first.
        let (mut full_cpu, mut full_wall) = (Vec::new(), Vec::new());
        let mut host = None;
        for _ in 0..self.swaps {
            drop(host.take());
            let h = fresh();
            let (c, w) = (cpu_time::process(), Instant::now());
            h.install(
                Candidate::Snapshot(self.bytes.to_vec()),
                Source::Push,
                false,
            )
            .expect("installs");
            full_cpu.push(cpu_time::process() - c);
            full_wall.push(w.elapsed());
            host = Some(h);
        }
        let host = host.expect("installed");

        // Every worker decides the mix once: memory with every worker warm.
        let pass = |host: &H| {
            let started = Instant::now();
            std::thread::scope(|s| {
                for w in 0..self.workers {
                    s.spawn(move || {
                        set_worker_index(w);
                        for r in self.owned {
                            black_box(host.check(&r.as_request()).expect("decides"));
                        }
                    });
                }
            });
            started.elapsed()
        };
        pass(&host);
        let memory_kib = memory_kib().saturating_sub(base_kib) + image_kib(&host);

        let mut per_second: Vec<f64> = (0..5)
            .map(|_| (self.workers * self.owned.len()) as f64 / pass(&host).as_secs_f64())
            .collect();
        per_second.sort_by(f64::total_cmp);

        set_worker_index(0);
        let mut ns: Vec<f64> = (0..7)
            .map(|_| {
                let started = Instant::now();
                for r in self.owned {
                    black_box(host.check(&r.as_request()).expect("decides"));
                }
                started.elapsed().as_nanos() as f64 / self.owned.len() as f64
            })
            .collect();
        ns.sort_by(f64::total_cmp);

        // Deltas from the installed revision (1), each from the revision
        // before. A host lays out a new snapshot for deltas once (the
        // wasmtime host in the background after a swap, the native host at
        // the first delta): not a delta's cost, so the first is not counted.
        let (mut delta_cpu, mut in_place) = (Vec::new(), true);
        for (k, delta) in self.deltas.iter().enumerate() {
            let c = cpu_time::process();
            let done = host
                .install(Candidate::Delta(delta.clone()), Source::Push, false)
                .expect("applies");
            if k > 0 {
                delta_cpu.push(cpu_time::process() - c);
                in_place &= done.in_place;
            }
            // Decisions between deltas, as a gateway would make them.
            for r in self.owned.iter().take(2_048) {
                black_box(host.check(&r.as_request()).expect("decides"));
            }
        }

        Figures {
            full_cpu: median(&mut full_cpu),
            full_wall: median(&mut full_wall),
            delta_cpu: median(&mut delta_cpu),
            in_place,
            ns_per_check: ns[ns.len() / 2],
            per_second: per_second[per_second.len() / 2],
            memory_kib,
        }
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The process's proportional share of anonymous memory, KiB.
fn memory_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").expect("smaps_rollup");
    text.lines()
        .find_map(|l| l.strip_prefix("Pss_Anon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
