//! The directory service on the large generated directory (100k users,
//! 500k grants; `snapshots::generate`): importing it into an empty
//! database, one authorized durable write (p50, p99), sustained writes in
//! batches, and the process's memory. Percentiles need every sample, so
//! this is a plain timing harness rather than criterion (which reports
//! means and medians). `cargo bench -p portcullis-directory --bench writes`;
//! figures in docs/BENCHMARKS.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::time::{Duration, Instant};

use portcullis_directory::operation::Operation;
use portcullis_directory::service::{Change, Provenance, Service};
use portcullis_directory::storage::Sqlite;
use portcullis_snapshots::generate::{GenerateParams, generate};

fn rss_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// One operation, written as the directory's owner (`user0`).
fn as_owner(service: &Service, op: Operation) -> portcullis_directory::service::Committed {
    service
        .write(
            "user/user0",
            &Change {
                operations: vec![op],
                bulk: false,
            },
            &Provenance {
                via: "api",
                ..Provenance::default()
            },
        )
        .unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let samples: usize = std::env::var("WRITES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let directory = generate(GenerateParams::default());
    println!(
        "directory: {} users, {} grants, {} groups",
        directory.users.len(),
        directory.grants.len(),
        directory.groups.len()
    );
    let service = Service::open(Box::new(Sqlite::open(&dir.path().join("d.db")).unwrap())).unwrap();
    let t = Instant::now();
    let c = service
        .import(
            &directory,
            "operator",
            false,
            &Provenance {
                via: "import",
                ..Provenance::default()
            },
        )
        .unwrap();
    println!(
        "import into an empty database: {} (revision {})",
        ms(t.elapsed()),
        c.revision
    );
    let db_bytes = std::fs::metadata(dir.path().join("d.db")).map_or(0, |m| m.len())
        + std::fs::metadata(dir.path().join("d.db-wal")).map_or(0, |m| m.len());
    println!(
        "database on disk: {:.1} MiB",
        db_bytes as f64 / (1 << 20) as f64
    );
    // Where a write's time goes today: the whole directory is copied,
    // compiled (validation), encoded and loaded into a new engine.
    let t = Instant::now();
    let copy = directory.clone();
    let clone_t = t.elapsed();
    let t = Instant::now();
    let body = portcullis_snapshots::source::compile(&copy).unwrap();
    let compile_t = t.elapsed();
    let t = Instant::now();
    let bytes = portcullis_snapshots::encode(&body, 2, 0).unwrap();
    let encode_t = t.elapsed();
    let t = Instant::now();
    let engine = policy_wasm::Engine::load(&bytes).unwrap();
    let load_t = t.elapsed();
    println!(
        "a write's parts: copy {}, compile {}, encode {}, engine load {}",
        ms(clone_t),
        ms(compile_t),
        ms(encode_t),
        ms(load_t)
    );
    drop((copy, body, bytes, engine));
    // Ordinary active users to change: the generator gives users random
    // statuses and some administrator roles.
    let ordinary = portcullis_snapshots::generate::ordinary_users(&directory);
    drop(directory);
    println!(
        "memory after import: {:.0} MiB resident, {:.0} MiB peak",
        rss_mib("VmRSS:"),
        rss_mib("VmHWM:")
    );

    // One write at a time, each a deactivation or reactivation of an
    // ordinary user by the owner (user0), durable before it answers.
    let mut times = Vec::with_capacity(samples);
    let before = service.head().unwrap();
    for i in 0..samples {
        let username = ordinary[i / 2].clone();
        let op = if i % 2 == 0 {
            Operation::DeactivateUser { username }
        } else {
            Operation::ReactivateUser { username }
        };
        let change = Change {
            operations: vec![op],
            bulk: false,
        };
        let t = Instant::now();
        service
            .write(
                "user/user0",
                &change,
                &Provenance {
                    via: "api",
                    ..Provenance::default()
                },
            )
            .unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    // What publishing a revision costs besides the write: the delta from
    // the revision before, computed from the two heads' bodies.
    let after = service.head().unwrap();
    let t = Instant::now();
    let delta = portcullis_snapshots::delta::compute(&before.body, &after.body).unwrap();
    println!(
        "the delta between two heads ({} edits): computed in {}",
        delta.edits().0 + delta.edits().1,
        ms(t.elapsed())
    );
    drop((before, after));
    println!(
        "one authorized write, a status change edited in place ({samples} samples): p50 {}, p99 {}, max {}",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap())
    );

    // A change that compiles: a grant added and removed (the grant table
    // changes length, so no row is edited in place).
    let mut compiled = Vec::new();
    for i in 0..6 {
        let grant = portcullis_snapshots::source::Grant {
            principal: format!("user/{}", ordinary[50 + i / 2]),
            role: "reader".into(),
            on: "org/domain".into(),
        };
        let op = if i % 2 == 0 {
            Operation::AddGrant { grant }
        } else {
            Operation::RemoveGrant { grant }
        };
        let t = Instant::now();
        as_owner(&service, op);
        compiled.push(t.elapsed());
    }
    compiled.sort();
    println!(
        "a write that compiles (a grant added or removed, 6 samples): p50 {}, max {}",
        ms(percentile(&compiled, 0.5)),
        ms(*compiled.last().unwrap())
    );

    // Batched: 5,000 operations per change.
    let batch: Vec<Operation> = (0..5000)
        .map(|i| Operation::SetUserExpiry {
            username: ordinary[10_000 + i].clone(),
            expires_at: Some(portcullis_snapshots::source::Timestamp(1_900_000_000)),
        })
        .collect();
    let t = Instant::now();
    service
        .write(
            "user/user0",
            &Change {
                operations: batch,
                bulk: false,
            },
            &Provenance {
                via: "api",
                ..Provenance::default()
            },
        )
        .unwrap();
    let took = t.elapsed();
    println!(
        "sustained, batched (5,000 operations in one change): {} → {:.0} operations/s",
        ms(took),
        5000.0 / took.as_secs_f64()
    );
    println!(
        "memory at the end: {:.0} MiB resident, {:.0} MiB peak",
        rss_mib("VmRSS:"),
        rss_mib("VmHWM:")
    );
}
