//! Three `portcullis directory serve` replicas on one PostgreSQL server
//! (Debian's, started by `scripts/postgres` — one of this test's own,
//! since it is restarted), publishing into one store, as an operator runs
//! them: writes go to all three; the replica holding the publishing lease
//! is killed with SIGKILL mid-stream and another takes over; PostgreSQL is
//! restarted under writes. No acknowledged write is lost, revisions stay
//! contiguous, the store's manifest never goes back nor names one revision
//! two ways, and it ends at the last revision.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn script(args: &[&str]) -> String {
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres"))
        .args(args)
        .output()
        .expect("scripts/postgres runs");
    assert!(
        out.status.success(),
        "scripts/postgres {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

fn config(dir: &Path, name: &str, listen: SocketAddr, database: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"listen = "{listen}"
database = "{database}"

[identity.jwt]
issuers = ["portcullis-demo"]
audiences = ["portcullis-demo"]
keys = [{{ alg = "HS256", secret = "{secret}" }}]

[publish]
store_dir = "{store}"
coalesce_ms = 50
lease_check_ms = 100
follow_ms = 50
"#,
            secret = portcullis_demo::DEMO_SECRET,
            store = dir.join("store").display(),
        ),
    )
    .unwrap();
    path
}

fn start(config: &Path) -> Server {
    Server(
        bin()
            .args(["directory", "serve", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a replica"),
    )
}

fn json(addr: SocketAddr, path: &str, token: &str) -> Option<serde_json::Value> {
    match http(addr, "GET", path, &[("authorization", token)]) {
        Some((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
    t.elapsed()
}

fn manifest(dir: &Path) -> Option<(u64, String)> {
    let text = std::fs::read_to_string(dir.join("store/latest.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((v["revision"].as_u64()?, text))
}

#[test]
fn replicas_fail_over_without_losing_forking_or_repeating_a_revision() {
    let dir = fresh_dir("replicas");
    let server = script(&["start", "replicas"]);
    let base = server.rsplit_once('/').unwrap().0.to_string();
    let database = format!("{base}/failover");
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([&server, "-q", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
    };
    psql("DROP DATABASE IF EXISTS failover");
    psql("CREATE DATABASE failover");
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../snapshots/examples/acme.json")
        .display()
        .to_string();
    let out = portcullis(&["directory", "import", &example, "--database", &database]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_port()).collect();
    let mut replicas: Vec<Option<Server>> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| Some(start(&config(&dir, &format!("r{i}"), *a, &database))))
        .collect();
    for a in &addrs {
        wait("a replica came up", Duration::from_secs(30), || {
            http(*a, "GET", "/healthz", &[]).is_some_and(|(s, _)| s == 200)
        });
    }
    let token = format!("Bearer {}", portcullis_demo::demo_token("olivia").unwrap());

    // The store's manifest, watched as a gateway polling it would see it.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let watcher = {
        let (stop, seen, dir) = (stop.clone(), seen.clone(), dir.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(m) = manifest(&dir) {
                    let mut s = seen.lock().unwrap();
                    if s.last() != Some(&m) {
                        s.push(m);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // Three writers, each on its replica, moving on to the next when theirs
    // does not answer (killed, or PostgreSQL restarting).
    let alive: Arc<Vec<AtomicBool>> = Arc::new((0..3).map(|_| AtomicBool::new(true)).collect());
    let acked = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (stop, acked, token, addrs, alive) = (
                stop.clone(),
                acked.clone(),
                token.clone(),
                addrs.clone(),
                alive.clone(),
            );
            std::thread::spawn(move || {
                let mut at = w;
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    while !alive[at].load(Ordering::Relaxed) {
                        at = (at + 1) % 3;
                    }
                    let name = format!("w{w}-{i}");
                    let body = format!(
                        r#"{{"user": {{"username": "{name}", "email": "{name}@acme.example", "organization": "acme"}}}}"#
                    );
                    // One key per user: a retry after a lost answer is
                    // replayed, not applied twice.
                    let key = format!("k-{name}");
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        match http_with_body(
                            addrs[at],
                            "POST",
                            "/v1/directory/users",
                            &[
                                ("authorization", &token),
                                ("content-type", "application/json"),
                                ("idempotency-key", &key),
                            ],
                            &body,
                        ) {
                            Some((200, answer)) => {
                                let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
                                acked
                                    .lock()
                                    .unwrap()
                                    .push((v["revision"].as_u64().unwrap(), name.clone()));
                                break;
                            }
                            // The store is away (PostgreSQL restarting): retry.
                            Some((503, _)) => std::thread::sleep(Duration::from_millis(50)),
                            Some((status, answer)) => panic!("{status}: {answer}"),
                            None => {
                                at = (at + 1) % 3;
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let acked_count = || acked.lock().unwrap().len();
    wait("writes answered", Duration::from_secs(60), || {
        acked_count() >= 30
    });

    // The publisher: the one replica that says it leads.
    let leading = |i: usize| {
        json(addrs[i], "/v1/directory/revision", &token)
            .is_some_and(|v| v["published"]["leading"] == true)
    };
    wait("a replica leads", Duration::from_secs(20), || {
        (0..3).any(leading)
    });
    let leaders: Vec<usize> = (0..3).filter(|&i| leading(i)).collect();
    assert_eq!(leaders.len(), 1, "exactly one publishes: {leaders:?}");
    let leader = leaders[0];
    // Killed mid-stream.
    alive[leader].store(false, Ordering::Relaxed);
    let before = manifest(&dir).map_or(0, |m| m.0);
    let mut killed = replicas[leader].take().unwrap();
    killed.0.kill().unwrap(); // SIGKILL
    killed.0.wait().unwrap();
    let failover = wait("another replica took over", Duration::from_secs(30), || {
        (0..3).filter(|&i| i != leader).any(leading)
    });
    let published = wait("publishing resumed", Duration::from_secs(30), || {
        manifest(&dir).is_some_and(|m| m.0 > before)
    });
    eprintln!(
        "failover: the lease taken over {} ms after the publisher was killed; the next revision in the store after {} ms",
        failover.as_millis(),
        (failover + published).as_millis()
    );
    let n = acked_count();
    wait("writes go on", Duration::from_secs(60), || {
        acked_count() >= n + 20
    });

    // PostgreSQL restarted under writes.
    script(&["restart", "replicas"]);
    let n = acked_count();
    wait("writes after the restart", Duration::from_secs(60), || {
        acked_count() >= n + 20
    });
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }

    // The survivors agree: every acknowledged write is there, revisions
    // contiguous, one user per revision after the import.
    let live: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let last = json(addrs[live[0]], "/v1/directory/changes?limit=1000", &token).unwrap();
    let revisions: Vec<u64> = last["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["revision"].as_u64().unwrap())
        .collect();
    let top = *revisions.last().unwrap();
    assert_eq!(
        revisions,
        (1..=top).collect::<Vec<_>>(),
        "a gap or a repeat in the log"
    );
    for &i in &live {
        wait(
            "a replica follows to the last revision",
            Duration::from_secs(20),
            || {
                json(addrs[i], "/v1/directory/revision", &token)
                    .is_some_and(|v| v["revision"] == top)
            },
        );
    }
    let whole = json(addrs[live[1]], "/v1/directory", &token).unwrap();
    let users: BTreeSet<String> = whole["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .filter(|u| u.starts_with('w') && u.contains('-'))
        .collect();
    let acked = acked.lock().unwrap().clone();
    for (rev, name) in &acked {
        assert!(
            users.contains(name),
            "{name} (revision {rev}) was acknowledged and is lost"
        );
    }
    assert_eq!(users.len() as u64, top - 1, "a revision without its user");
    // The store ends at the last revision; its manifests never went back
    // and never named one revision two ways.
    wait(
        "the last revision published",
        Duration::from_secs(30),
        || manifest(&dir).is_some_and(|m| m.0 == top),
    );
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    let mut by_revision: BTreeMap<u64, &String> = BTreeMap::new();
    for pair in seen.windows(2) {
        assert!(
            pair[0].0 <= pair[1].0,
            "the manifest went back: {} then {}",
            pair[0].0,
            pair[1].0
        );
    }
    for (rev, text) in &seen {
        if let Some(other) = by_revision.insert(*rev, text) {
            assert_eq!(other, text, "revision {rev} published two ways");
        }
    }
    drop(replicas);
    script(&["stop", "replicas"]);
}
