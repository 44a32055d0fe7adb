//! What the directory service's test suites share: the store they run on.
//! SQLite by default; with `PORTCULLIS_TEST_STORE=postgres` (as
//! `scripts/test` runs them a second time), PostgreSQL — the tests'
//! server, started by `scripts/postgres` if it is not running — with one
//! database per test directory: the same suite over both stores.
#![allow(dead_code, reason = "each suite uses some of these")]

use std::path::Path;

use portcullis_directory::storage::{Postgres, Sqlite, Storage};

/// Whether the suite runs on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("PORTCULLIS_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// The tests' PostgreSQL server (started if needed): its URL.
pub fn postgres_server() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres");
        let out = std::process::Command::new(script)
            .arg("start")
            .output()
            .expect("scripts/postgres runs");
        assert!(
            out.status.success(),
            "scripts/postgres start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
    .clone()
}

/// A database of its own on the tests' server for `path` (the same one
/// each time `path` is named: a reopen finds what was written), made if
/// missing: its URL.
pub fn postgres_database(path: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    let name = format!("t{:016x}", h.finish());
    let server = postgres_server();
    let admin = server.clone();
    let n = name.clone();
    // The synchronous client runs a runtime of its own: on a plain thread.
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connect");
        let exists = c
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&n])
            .expect("query")
            .is_some();
        if !exists {
            c.batch_execute(&format!("CREATE DATABASE {n}"))
                .expect("create database");
        }
    })
    .join()
    .expect("the database is made");
    format!(
        "{}/{name}",
        server.rsplit_once('/').map_or(server.as_str(), |(s, _)| s)
    )
}

/// The store at `path`: a SQLite file, or its PostgreSQL database.
pub fn store(path: &Path) -> Box<dyn Storage> {
    if on_postgres() {
        Box::new(Postgres::open(&postgres_database(path)).expect("postgres store"))
    } else {
        Box::new(Sqlite::open(path).expect("sqlite store"))
    }
}
