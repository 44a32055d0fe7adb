//! Portcullis with a real nginx (Debian's package, installed by the test
//! command when missing): nginx `auth_request` in front of an application,
//! configured with exactly `docs/snippets/nginx.conf`; and three
//! `portcullis serve` replicas (configured with `docs/snippets/replica.toml`)
//! polling the manifest of a store nginx serves (`snapshot publish`),
//! converging on a new revision — by fetching one small delta each — without
//! a failed request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

mod common;
use common::*;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use portcullis_demo::{DEMO_API_KEY, demo_token};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn nginx_binary() -> PathBuf {
    debian_binary("/usr/sbin/nginx", "nginx")
}

/// nginx serving `http` (the inside of an `http {}` block) from its own
/// prefix directory, as a single process (`master_process off`), so that
/// killing it on drop leaves no orphaned worker holding the port.
struct Nginx(Child);

impl Nginx {
    fn start(dir: &Path, http: &str, listens: SocketAddr) -> Nginx {
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n \
             fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             {http}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(listens).is_err() {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "nginx did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn nginx_auth_request_with_the_documented_snippet() {
    let dir = fresh_dir("nginx-auth");
    let (running, app, _runtime) = decision_gateway(&dir);
    let decision = running.decision_addr.expect("decision listener");

    // The snippet from the docs, with only its addresses replaced.
    let snippet =
        std::fs::read_to_string(repo().join("docs/snippets/nginx.conf")).expect("snippet");
    let front = free_port();
    let mut http = snippet.clone();
    for (from, to) in [
        ("127.0.0.1:9191", decision.to_string()),
        ("127.0.0.1:3000", app.to_string()),
        ("listen 80;", format!("listen {front};")),
    ] {
        assert!(http.contains(from), "the snippet lost {from:?}");
        http = http.replace(from, &to);
    }
    let _nginx = Nginx::start(&dir, &http, front);

    const TABLE: &str = "/envs/prod/catalogs/sales/tables/orders";
    let pat = format!("Bearer {}", demo_token("pat").expect("token"));

    // Allowed: the application sees who, not what the client claimed.
    let (status, body) = http_with_body(
        front,
        "GET",
        &format!("{TABLE}?limit=5"),
        &[
            ("Authorization", &pat),
            ("X-Portcullis-Principal", "user/sam"),
            ("X-Portcullis-Acting-As", "user/sam"),
        ],
        "",
    )
    .expect("nginx answers");
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).expect("echo JSON");
    assert_eq!(seen["path"], TABLE);
    assert_eq!(seen["query"], "limit=5");
    assert_eq!(seen["x-portcullis-principal"], "user/pat");
    assert_eq!(seen["x-portcullis-revision"], "1");
    assert_eq!(
        seen["x-portcullis-acting-as"],
        Value::Null,
        "an empty value is not passed on by nginx"
    );

    // An API key: the application learns the user it acts as.
    let (status, body) = http_with_body(front, "GET", TABLE, &[("x-api-key", DEMO_API_KEY)], "")
        .expect("nginx answers");
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).expect("echo JSON");
    assert!(seen["x-portcullis-acting-as"].as_str().is_some(), "{seen}");

    // Denied: 403, and nothing reaches the application.
    let (status, _) =
        http_with_body(front, "PUT", TABLE, &[("Authorization", &pat)], "rows").expect("answers");
    assert_eq!(status, 403);
    // No credentials: 401.
    let (status, _) = http_with_body(front, "GET", TABLE, &[], "").expect("answers");
    assert_eq!(status, 401);
    // Outside the route table: 403.
    let (status, _) = http_with_body(front, "GET", "/elsewhere", &[("Authorization", &pat)], "")
        .expect("answers");
    assert_eq!(status, 403);
    drop(running);
}

/// `portcullis serve` polling `url` every `every_ms`, answering decisions on
/// its own listener.
struct Replica {
    _server: Server,
    admin: SocketAddr,
    decision: SocketAddr,
}

/// A replica configured with `docs/snippets/replica.toml`, only its
/// addresses, URL and period replaced.
fn replica(dir: &Path, n: usize, url: &str, every_ms: u64) -> Replica {
    let (proxy, admin, decision) = (free_port(), free_port(), free_port());
    let mut text =
        std::fs::read_to_string(repo().join("docs/snippets/replica.toml")).expect("snippet");
    for (from, to) in [
        ("0.0.0.0:8080", proxy.to_string()),
        ("127.0.0.1:9090", admin.to_string()),
        ("127.0.0.1:9191", decision.to_string()),
        (
            "http://snapshots.internal/portcullis/latest.json",
            url.to_string(),
        ),
        (
            "poll_interval_ms = 10000",
            format!("poll_interval_ms = {every_ms}"),
        ),
        ("decisions = \"stdout\"", "decisions = \"off\"".to_string()),
    ] {
        assert!(text.contains(from), "the snippet lost {from:?}");
        text = text.replace(from, &to);
    }
    let config = dir.join(format!("replica-{n}.toml"));
    std::fs::write(&config, text).expect("write config");
    Replica {
        _server: serve(&config, Stdio::null()),
        admin,
        decision,
    }
}

fn readyz_revision(admin: SocketAddr) -> Option<u64> {
    let (status, body) = http(admin, "GET", "/-/readyz", &[])?;
    let v: Value = serde_json::from_str(&body).ok()?;
    (status == 200).then(|| v["revision"].as_u64()).flatten()
}

#[test]
fn three_replicas_converge_on_a_new_snapshot_without_failing_a_request() {
    let dir = fresh_dir("replicas");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).expect("mkdir");
    let publish = |revision: u64| {
        let snap = dir.join(format!("v{revision}.snap"));
        build(&format!("v{revision}"), &snap, revision);
        let o = portcullis(&[
            "snapshot",
            "publish",
            snap.to_str().expect("utf-8"),
            "--dir",
            www.to_str().expect("utf-8"),
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        std::fs::metadata(&snap).expect("snapshot").len()
    };
    let v1_bytes = publish(1);
    let store = free_port();
    let _nginx = Nginx::start(
        &dir,
        &format!("server {{ listen {store}; root {}; }}", www.display()),
        store,
    );
    let url = format!("http://{store}/latest.json");
    let every_ms = 1000;
    let replicas: Vec<Replica> = (0..3).map(|n| replica(&dir, n, &url, every_ms)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for r in &replicas {
        while readyz_revision(r.admin) != Some(1) {
            assert!(
                Instant::now() < deadline,
                "a replica never loaded revision 1"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // Load on every replica's decision endpoint while the snapshot changes.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed, on_new) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let load: Vec<_> = replicas
        .iter()
        .map(|r| {
            let (addr, stop) = (r.decision, Arc::clone(&stop));
            let (answered, failed, on_new) = (
                Arc::clone(&answered),
                Arc::clone(&failed),
                Arc::clone(&on_new),
            );
            std::thread::spawn(move || {
                let body = r#"{"principal":"user/pat","action":"read","resource":"catalog/sales"}"#;
                while !stop.load(Ordering::Relaxed) {
                    let answer = http_with_body(addr, "POST", "/v1/check", &[], body);
                    let v: Option<Value> = answer
                        .as_ref()
                        .and_then(|(_, b)| serde_json::from_str(b).ok());
                    match (answer, v) {
                        (Some((200, _)), Some(v)) if v["decision"] == "allow" => {
                            answered.fetch_add(1, Ordering::Relaxed);
                            if v["revision"] == 2 {
                                on_new.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // A new revision: its snapshot, the delta from revision 1, and the
    // manifest last. nginx's ETag is the file's modification second and
    // its size; the manifest grows (it lists the delta), so a store tells
    // the two manifests apart even within one second.
    let manifest_before = std::fs::read(www.join("latest.json")).expect("manifest");
    publish(2);
    assert_ne!(
        manifest_before.len(),
        std::fs::metadata(www.join("latest.json"))
            .expect("manifest")
            .len() as usize
    );
    let delta_bytes = std::fs::metadata(www.join("delta-1-2.delta"))
        .expect("the delta was published")
        .len();
    let published = Instant::now();
    let mut converged = Vec::new();
    for r in &replicas {
        while readyz_revision(r.admin) != Some(2) {
            assert!(
                published.elapsed() < Duration::from_secs(30),
                "a replica never loaded revision 2"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        converged.push(published.elapsed());
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().expect("load thread");
    }

    eprintln!("replicas converged {converged:?} after the new snapshot was published");
    let slowest = converged.iter().max().copied().unwrap_or_default();
    assert!(
        slowest <= Duration::from_millis(2 * every_ms),
        "converged after {converged:?}; the bound is two poll intervals ({} ms)",
        2 * every_ms
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(answered.load(Ordering::Relaxed) > 0);
    assert!(
        on_new.load(Ordering::Relaxed) > 0,
        "no answer from revision 2"
    );
    // What each replica fetched: the first snapshot, then one delta.
    for r in &replicas {
        let (_, metrics) = http(r.admin, "GET", "/-/metrics", &[]).expect("metrics");
        assert!(
            metrics.contains("portcullis_snapshot_revision 2"),
            "{metrics}"
        );
        assert!(
            metrics.contains("portcullis_snapshot_swaps_total{source=\"poll\",kind=\"delta\"} 1"),
            "{metrics}"
        );
        let received = format!(
            "portcullis_snapshot_received_bytes_total{{source=\"poll\"}} {}",
            v1_bytes + delta_bytes
        );
        assert!(metrics.contains(&received), "{received} in\n{metrics}");
    }
    eprintln!(
        "each replica fetched {v1_bytes} + {delta_bytes} bytes: the snapshot of revision 1, then the delta to 2"
    );
}
