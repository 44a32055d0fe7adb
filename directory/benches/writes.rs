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
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let directory = generate(GenerateParams::default());
    println!(
        "directory: {} users, {} grants, {} groups",
        directory.users.len(),
        directory.grants.len(),
        directory.groups.len()
    );
    // STORE=postgres: a new database on the tests' PostgreSQL server
    // (scripts/postgres), written through the same interface.
    let mut pg_url: Option<String> = None;
    let storage: Box<dyn portcullis_directory::storage::Storage> = if std::env::var("STORE")
        .is_ok_and(|s| s == "postgres")
    {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres");
        let out = std::process::Command::new(script)
            .arg("start")
            .output()
            .unwrap();
        let server = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let base = server.rsplit_once('/').unwrap().0.to_string();
        let admin = server.clone();
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            c.batch_execute("DROP DATABASE IF EXISTS bench_writes")
                .unwrap();
            c.batch_execute("CREATE DATABASE bench_writes").unwrap();
        })
        .join()
        .unwrap();
        println!("store: PostgreSQL ({base}/bench_writes)");
        pg_url = Some(format!("{base}/bench_writes"));
        Box::new(
            portcullis_directory::storage::Postgres::open(&format!("{base}/bench_writes")).unwrap(),
        )
    } else {
        println!("store: SQLite");
        Box::new(Sqlite::open(&dir.path().join("d.db")).unwrap())
    };
    let service = Service::open(storage).unwrap();
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
    // What a write that compiles costs: the whole directory compiled
    // (validation), encoded and loaded into a new engine — and what the
    // writer's twin costs to make (a copy of the directory and engine), once
    // after each such write, on a thread of its own.
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
    let sample = |name: &str, n: usize, op: &dyn Fn(usize) -> Operation| {
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            as_owner(&service, op(i));
            times.push(t.elapsed());
        }
        times.sort();
        let total: Duration = times.iter().sum();
        println!(
            "one authorized write, {name} ({n} samples): p50 {}, p99 {}, max {} → {:.0} writes/s back to back",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().unwrap()),
            n as f64 / total.as_secs_f64()
        );
    };
    sample("a status change", samples, &|i| {
        let username = ordinary[i / 2].clone();
        if i % 2 == 0 {
            Operation::DeactivateUser { username }
        } else {
            Operation::ReactivateUser { username }
        }
    });
    // Users who hold no grant: the grant added is new.
    let grantless: Vec<String> = {
        let head = service.head().unwrap();
        let holders: std::collections::HashSet<&str> = head
            .directory
            .grants
            .iter()
            .map(|g| g.principal.as_str())
            .collect();
        ordinary
            .iter()
            .filter(|u| !holders.contains(format!("user/{u}").as_str()))
            .take(samples)
            .cloned()
            .collect()
    };
    let grant = |i: usize| portcullis_snapshots::source::Grant {
        principal: format!("user/{}", grantless[i / 2]),
        role: "reader".into(),
        on: "org/domain".into(),
    };
    sample("a grant added or removed", samples, &|i| {
        if i % 2 == 0 {
            Operation::AddGrant { grant: grant(i) }
        } else {
            Operation::RemoveGrant { grant: grant(i) }
        }
    });
    let outside: Vec<String> = {
        let head = service.head().unwrap();
        let g = head
            .directory
            .groups
            .iter()
            .find(|g| g.id == "group-0")
            .unwrap();
        ordinary
            .iter()
            .filter(|u| !g.members.contains(&format!("user/{u}")))
            .take(samples)
            .cloned()
            .collect()
    };
    sample("a group member added or removed", samples, &|i| {
        let (group, member) = ("group-0".to_string(), format!("user/{}", outside[i / 2]));
        if i % 2 == 0 {
            Operation::AddGroupMember { group, member }
        } else {
            Operation::RemoveGroupMember { group, member }
        }
    });
    let template = {
        let head = service.head().unwrap();
        let mut u = head
            .directory
            .users
            .iter()
            .find(|u| u.username == ordinary[3_000])
            .unwrap()
            .clone();
        u.admin_role = None;
        u
    };
    // An invitation: the new user's row and strings appended in place.
    sample(
        "an invitation (a new user, appended in place)",
        samples,
        &|i| {
            let mut user = template.clone();
            user.username = format!("bench-invitee-{i}");
            user.email = format!("bench-invitee-{i}@example.com");
            Operation::InviteUser { user }
        },
    );
    // A new string in an existing record still compiles; then (the
    // writer's twin being copied after it) the next write waits for it.
    sample("a new phone number (a changed string: compiles)", 6, &|i| {
        Operation::UpdateUser {
            username: ordinary[4_000 + i].clone(),
            set: portcullis_directory::operation::UserChanges {
                phone: Some(format!("+1 555 01{i:02}")),
                ..Default::default()
            },
        }
    });
    sample("a status change just after one that compiled", 1, &|_| {
        Operation::DeactivateUser {
            username: ordinary[2_000].clone(),
        }
    });
    println!(
        "memory after the writes: {:.0} MiB resident, {:.0} MiB peak",
        rss_mib("VmRSS:"),
        rss_mib("VmHWM:")
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
    // Replicas on one PostgreSQL: a second replica on the same database,
    // and writes alternating between the two — each finds the other's
    // last write and catches up (today: reloads the directory) first.
    if let Some(url) = &pg_url {
        let other = Service::open(Box::new(
            portcullis_directory::storage::Postgres::open(url).unwrap(),
        ))
        .unwrap();
        let mut times = Vec::new();
        for i in 0..10 {
            let s = if i % 2 == 0 { &other } else { &service };
            let op = Operation::DeactivateUser {
                username: ordinary[20_000 + i].clone(),
            };
            let t = Instant::now();
            s.write(
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
            .unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "writes alternating between two replicas (10): p50 {}, max {}",
            ms(percentile(&times, 0.5)),
            ms(*times.last().unwrap())
        );
    }
}
