//! `portcullis serve`, `portcullis demo` and `portcullis snapshot push` as
//! an operator runs them: real processes, real sockets, exit codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// `portcullis demo --walkthrough` with `extra` arguments: its output,
/// once it reported every step as expected.
fn walkthrough(extra: &[&str]) -> String {
    let mut args = vec![
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--directory-listen",
        "127.0.0.1:0",
        "--walkthrough",
    ];
    args.extend_from_slice(extra);
    let o = portcullis(&args);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("every step answered as expected"), "{out}");
    out
}

#[test]
fn demo_walkthrough_answers_every_step() {
    let out = walkthrough(&[]);
    assert!(out.contains("administrator_over_owner"), "{out}");
}

#[test]
fn demo_walkthrough_answers_every_step_over_tls() {
    // `demo --tls`: the proxy over HTTPS with a CA made for the run, which
    // the walkthrough's client trusts (and nothing else).
    let out = walkthrough(&["--tls"]);
    assert!(out.contains(r#""x-forwarded-proto":"https""#), "{out}");
}

#[test]
fn a_bad_config_is_one_clear_error_listing_every_problem() {
    let dir = workdir("badconfig");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        r#"
[server]
listen = "127.0.0.1:0"
workers = 0
upgrades = ["websocket", "h2c"]

[admin]
token = "short"

[upstreams.app]
url = "ftp://app.internal"

[upstreams.plain]
url = "http://app.internal"
ca_file = "ca.pem"

[[routes]]
path = "/envs/{env}"
upstream = "nowhere"
action = "reed"
resource = "env/{environment}"
"#,
    )
    .expect("write");
    let o = portcullis(&[
        "serve",
        "--config",
        config.to_str().expect("utf-8"),
        "--check",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    for problem in [
        "server.workers",
        "admin.token",
        "upstreams.app.url",
        "upstreams.plain: ca_file and server_name are for https://",
        "server.upgrades: h2c cannot be allowed",
        "upstream \"nowhere\" is not defined",
        "unknown action \"reed\"",
        "{environment}",
    ] {
        assert!(err.contains(problem), "missing {problem:?} in:\n{err}");
    }

    std::fs::write(&config, "[server]\nlisten = \"127.0.0.1:0\"\nbogus = 1\n").expect("write");
    let o = portcullis(&["serve", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("bogus"), "{}", text(&o.stderr));
}

#[test]
fn serve_push_and_graceful_stop() {
    let dir = workdir("serve");
    let snap = dir.join("directory.snap");
    build("v1", &snap, 1);
    let upstream = free_port();
    // The upstream is down: allowed requests get 502, which is enough to
    // tell allow (502) from deny (403) here.
    let (proxy, admin) = (free_port(), free_port());
    let token = "an-admin-token-for-tests";
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "{proxy}"
workers = 2

[admin]
listen = "{admin}"
token = "{token}"

[snapshot]
file = "directory.snap"
watch = false

[identity]
api_key_header = "x-api-key"

[upstreams.app]
url = "http://{upstream}"

[[routes]]
name = "sso"
methods = ["GET"]
path = "/orgs/{{org}}/sso"
upstream = "app"
action = "admin:sso"
resource = "org/{{org}}"

[log]
decisions = "decisions.log"
"#
        ),
    )
    .expect("write");
    let mut server = serve(&config, Stdio::piped());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, body)) = http(admin, "GET", "/-/readyz", &[]) {
            assert!(body.contains("\"revision\":1"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    // sam's key (seed 000: SSO is owner/super administrator only) → allowed → 502 (upstream down).
    let (status, body) = http(
        proxy,
        "GET",
        "/orgs/acme/sso",
        &[("x-api-key", "pk_demo_sam_deploy")],
    )
    .expect("answer");
    assert_eq!(status, 502, "{body}");
    let (status, _) = http(proxy, "GET", "/orgs/acme/sso", &[]).expect("answer");
    assert_eq!(status, 401);

    let v2 = dir.join("v2.snap");
    build("v2", &v2, 2);
    let admin_url = format!("http://{admin}");
    let push = |file: &Path, force: bool| {
        let mut args = vec![
            "snapshot",
            "push",
            file.to_str().expect("utf-8"),
            "--to",
            &admin_url,
            "--token",
            token,
        ];
        if force {
            args.push("--force");
        }
        portcullis(&args)
    };
    let o = push(&v2, false);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("revision 2 serving"),
        "{}",
        text(&o.stdout)
    );
    let o = push(&snap, false);
    assert_eq!(
        o.status.code(),
        Some(4),
        "a rollback is refused: {}",
        text(&o.stderr)
    );
    assert!(text(&o.stderr).contains("not newer"), "{}", text(&o.stderr));
    let o = push(&snap, true);
    assert!(o.status.success(), "forced: {}", text(&o.stderr));
    // The change from revision 1 to 2 as a delta: PATCH, with --delta.
    let delta = dir.join("v2.delta");
    let o = portcullis(&[
        "snapshot",
        "delta",
        snap.to_str().expect("utf-8"),
        v2.to_str().expect("utf-8"),
        "-o",
        delta.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = push(&delta, false);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a delta needs --delta: {}",
        text(&o.stderr)
    );
    let mut args = vec![
        "snapshot",
        "push",
        delta.to_str().expect("utf-8"),
        "--to",
        &admin_url,
    ];
    args.extend(["--token", token, "--delta"]);
    let o = portcullis(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("revision 2 serving (was 1), applied as a delta"),
        "{}",
        text(&o.stdout)
    );
    let o = portcullis(&args);
    assert_eq!(
        o.status.code(),
        Some(4),
        "now on another base: {}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("applies to revision 1"),
        "{}",
        text(&o.stderr)
    );
    let o = portcullis(&[
        "snapshot",
        "push",
        v2.to_str().expect("utf-8"),
        "--to",
        &admin_url,
        "--token",
        "wrong-token-wrong",
    ]);
    assert_eq!(o.status.code(), Some(4));

    // SIGTERM: a graceful stop with exit status 0.
    let pid = server.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    let log = std::fs::read_to_string(dir.join("decisions.log")).expect("decision log");
    assert!(log.lines().count() >= 2, "{log}");
    assert!(log.contains("\"acting_as\":\"user/sam\""), "{log}");
}

#[test]
fn the_documented_example_configuration_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gateway.example.toml");
    let o = portcullis(&[
        "serve",
        "--config",
        example.to_str().expect("utf-8"),
        "--check",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn a_refused_initial_snapshot_is_an_invalid_start() {
    let dir = workdir("badsnap");
    std::fs::write(dir.join("directory.snap"), b"not a snapshot").expect("write");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[snapshot]\nfile = \"directory.snap\"\n[upstreams.app]\nurl = \"http://127.0.0.1:9\"\n[[routes]]\npath = \"/*\"\nupstream = \"app\"\naction = \"read\"\nresource = \"org/acme\"\n",
    )
    .expect("write");
    let o = portcullis(&["serve", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("initial snapshot"),
        "{}",
        text(&o.stderr)
    );
}

/// Issue #12, hole 7: the decision endpoint's token file was checked at
/// validation and read again at start-up, and a failed second read left
/// the endpoint open. It is read once; a token that cannot be read stops
/// the start with exit code 5 and nothing listens.
#[test]
fn an_unreadable_decision_token_stops_the_start() {
    let dir = workdir("tokenfile");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"an-admin-token-long-enough\"\n[decision]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"missing-token\"\n[upstreams.app]\nurl = \"http://127.0.0.1:9\"\n[[routes]]\npath = \"/*\"\nupstream = \"app\"\naction = \"read\"\nresource = \"org/acme\"\n",
    )
    .expect("write");
    let o = portcullis(&["serve", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    // Relative to the configuration file, like every other path in it.
    assert!(
        err.contains("decision.token_file") && err.contains("missing-token"),
        "{err}"
    );
    // A token file too short to be a secret is refused the same way.
    std::fs::write(dir.join("missing-token"), "short\n").expect("write");
    let o = portcullis(&["serve", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("16 characters"),
        "{}",
        text(&o.stderr)
    );
}
