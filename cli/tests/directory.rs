//! `portcullis directory …` as an operator runs it: import, export and
//! the log on a database file, and the service killed with SIGKILL in the
//! middle of concurrent writes — every acknowledged write is there after
//! a restart, nothing half-written, revisions contiguous.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../snapshots/examples/acme.json")
        .display()
        .to_string()
}

fn without_revision(mut v: serde_json::Value) -> serde_json::Value {
    v.as_object_mut().unwrap().remove("revision");
    v
}

#[test]
fn import_export_and_the_log_on_a_database() {
    let dir = fresh_dir("directory-import");
    let db = dir.join("d.db").display().to_string();
    let o = portcullis(&["directory", "import", &example(), "--database", &db]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("revision 1"),
        "{}",
        text(&o.stdout)
    );
    // The same file again: nothing to change, no new revision.
    let o = portcullis(&["directory", "import", &example(), "--database", &db]);
    assert!(o.status.success());
    assert!(
        text(&o.stdout).contains("nothing to change"),
        "{}",
        text(&o.stdout)
    );
    // Export is what was imported.
    let o = portcullis(&["directory", "export", "--database", &db]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let exported: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let source: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example()).unwrap()).unwrap();
    assert_eq!(without_revision(exported.clone()), without_revision(source));
    // A file with problems is refused whole, every problem named.
    let mut broken = exported;
    broken["teams"][0]["owner"] = "nobody".into();
    broken["grants"][0]["on"] = "org/nowhere".into();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, serde_json::to_vec_pretty(&broken).unwrap()).unwrap();
    let o = portcullis(&[
        "directory",
        "import",
        bad.to_str().unwrap(),
        "--database",
        &db,
    ]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("nobody") && err.contains("nowhere"), "{err}");
    // The log, for people.
    let o = portcullis(&["directory", "log", "--database", &db]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let log = text(&o.stdout);
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(
        log.starts_with("r1 ") && log.contains("operator via import"),
        "{log}"
    );
}

fn config(dir: &Path, port: std::net::SocketAddr) -> std::path::PathBuf {
    let path = dir.join("directory.toml");
    std::fs::write(
        &path,
        format!(
            r#"listen = "{port}"
database = "d.db"

[identity.jwt]
issuers = ["portcullis-demo"]
audiences = ["portcullis-demo"]
keys = [{{ alg = "HS256", secret = "{secret}" }}]
"#,
            secret = portcullis_demo::DEMO_SECRET
        ),
    )
    .unwrap();
    path
}

fn start(config: &Path) -> Server {
    let child = bin()
        .args(["directory", "serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the directory service");
    Server(child)
}

fn wait_up(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http(addr, "GET", "/healthz", &[]).is_none_or(|(s, _)| s != 200) {
        assert!(Instant::now() < deadline, "the service never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_acknowledged_write_survives_a_kill_9() {
    let dir = fresh_dir("directory-crash");
    let db = dir.join("d.db").display().to_string();
    assert!(
        portcullis(&["directory", "import", &example(), "--database", &db])
            .status
            .success()
    );
    let addr = free_port();
    let cfg = config(&dir, addr);
    let mut server = start(&cfg);
    wait_up(addr);
    let token = format!("Bearer {}", portcullis_demo::demo_token("olivia").unwrap());
    // Four writers invite users as fast as they are answered; the service
    // is killed while they write.
    let acked = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, stop, token) = (acked.clone(), stop.clone(), token.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let name = format!("w{w}-{i}");
                    let body = format!(
                        r#"{{"user": {{"username": "{name}", "email": "{name}@acme.example", "organization": "acme"}}}}"#
                    );
                    match http_with_body(
                        addr,
                        "POST",
                        "/v1/directory/users",
                        &[("authorization", &token), ("content-type", "application/json")],
                        &body,
                    ) {
                        Some((200, answer)) => {
                            let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
                            acked.lock().unwrap().push((v["revision"].as_u64().unwrap(), name));
                        }
                        Some((status, answer)) => panic!("{status}: {answer}"),
                        // Killed mid-request: not acknowledged.
                        None => return,
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while acked.lock().unwrap().len() < 60 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "too few writes answered"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let _server = start(&cfg);
    wait_up(addr);
    let (status, body) = http(addr, "GET", "/v1/directory", &[("authorization", &token)]).unwrap();
    assert_eq!(status, 200, "{body}");
    let dir_now: serde_json::Value = serde_json::from_str(&body).unwrap();
    let users: BTreeSet<String> = dir_now["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .filter(|u| u.starts_with('w') && u.contains('-'))
        .collect();
    for (rev, name) in &acked {
        assert!(
            users.contains(name),
            "{name} (revision {rev}) was acknowledged and is gone"
        );
    }
    // Revisions contiguous; one user per change, no change without its user.
    let (status, body) = http(
        addr,
        "GET",
        "/v1/directory/changes?after=0&limit=1000",
        &[("authorization", &token)],
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let log: serde_json::Value = serde_json::from_str(&body).unwrap();
    let revisions: Vec<u64> = log["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, (1..=revisions.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        users.len(),
        revisions.len() - 1,
        "a change without its user, or a user without its change"
    );
    assert_eq!(
        dir_now["revision"].as_u64().unwrap(),
        revisions.len() as u64
    );
    let max_acked = acked.iter().map(|(r, _)| *r).max().unwrap();
    assert!(revisions.len() as u64 >= max_acked);
}
