//! Portcullis behind a real Caddy (Debian's package, 2.6; installed by the
//! test command when missing): `forward_auth` to the Traefik adapter,
//! configured with exactly `docs/snippets/Caddyfile` — allowed with the
//! principal passed on, denied with the reason, 401 without credentials,
//! an API key's forged identity headers replaced, an encoded slash refused.
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
use std::time::{Duration, Instant};

use portcullis_demo::{DEMO_API_KEY, demo_token};
use serde_json::Value;

fn caddy_binary() -> PathBuf {
    debian_binary("/usr/bin/caddy", "caddy")
}

struct Caddy(Child);

impl Caddy {
    fn start(dir: &Path, caddyfile: &str, listens: SocketAddr) -> Caddy {
        let path = dir.join("Caddyfile");
        std::fs::write(&path, caddyfile).unwrap();
        let child = Command::new(caddy_binary())
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("HOME", dir)
            .env("XDG_DATA_HOME", dir)
            .env("XDG_CONFIG_HOME", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start caddy");
        let caddy = Caddy(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(listens).is_err() {
            assert!(Instant::now() < deadline, "caddy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        caddy
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn caddy_forward_auth_with_the_documented_snippet() {
    let dir = fresh_dir("caddy-forward-auth");
    let (running, app, _runtime) = decision_gateway(&dir);
    let decision = running.decision_addr.expect("decision listener");

    // The snippet from the docs, with only its addresses replaced.
    let snippet = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/snippets/Caddyfile"),
    )
    .unwrap();
    let front = free_port();
    let mut caddyfile = snippet.clone();
    for (from, to) in [
        ("127.0.0.1:9191", decision.to_string()),
        ("127.0.0.1:3000", app.to_string()),
        (":80 {", format!(":{} {{", front.port())),
    ] {
        assert!(caddyfile.contains(from), "the snippet lost {from:?}");
        caddyfile = caddyfile.replace(from, &to);
    }
    let _caddy = Caddy::start(&dir, &caddyfile, front);

    const TABLE: &str = "/envs/prod/catalogs/sales/tables/orders";
    let pat = format!("Bearer {}", demo_token("pat").unwrap());
    let get = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let (status, body) =
            http_with_body(front, method, path, headers, "").expect("caddy answers");
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        )
    };

    // Allowed: the application sees who asked, not what the client claimed.
    let (status, seen) = get(
        "GET",
        &format!("{TABLE}?limit=5"),
        &[
            ("Authorization", &pat),
            ("X-Portcullis-Principal", "user/sam"),
            ("X-Portcullis-Acting-As", "user/olivia"),
            ("X_Portcullis_Principal", "user/olivia"),
        ],
    );
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["path"], TABLE);
    assert_eq!(seen["query"], "limit=5");
    assert_eq!(seen["x-portcullis-principal"], "user/pat");
    assert_eq!(seen["x-portcullis-revision"], "1");
    // Caddy sets a header the answer lacks to "": the client's is gone.
    assert!(
        seen["x-portcullis-acting-as"]
            .as_str()
            .is_none_or(str::is_empty),
        "{seen}"
    );

    // Denied: 403 with the reason, and nothing reaches the application.
    let (status, body) = get("PUT", TABLE, &[("Authorization", &pat)]);
    assert_eq!(status, 403);
    assert_eq!(body["reason"], "no_grant", "{body}");
    // No credentials: 401.
    let (status, _) = get("GET", TABLE, &[]);
    assert_eq!(status, 401);
    // An API key with a forged principal: replaced by the key's, and the
    // user it acts as.
    let (status, seen) = get(
        "GET",
        "/orgs/acme/sso",
        &[
            ("X-API-Key", DEMO_API_KEY),
            ("X-Portcullis-Principal", "user/olivia"),
        ],
    );
    assert_eq!(status, 200, "{seen}");
    assert!(
        seen["x-portcullis-principal"]
            .as_str()
            .unwrap()
            .starts_with("apikey/"),
        "{seen}"
    );
    assert_eq!(seen["x-portcullis-acting-as"], "user/sam");
    // An encoded slash: refused (400), not decoded into another path.
    let (status, _) = get(
        "GET",
        "/envs/prod/catalogs/sales%2Ftables/orders",
        &[("Authorization", &pat)],
    );
    assert_eq!(status, 400);
    drop(running);
}
