//! WebSocket passthrough (issue #15, part 3), with a real client and
//! server (Python `websockets`): the upgrade request is authorized like
//! any other (401 without credentials, 403 for a principal without the
//! grant), messages pass both ways untouched, and after a snapshot swap
//! the connection of a principal who lost access is closed with 1008 and
//! the reason — at both ends — while another principal's stays open.
//! `Upgrade: h2c` is never passed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test, bench or example: a failed unwrap is a failed run"
)]

mod common;
use common::*;

use std::process::Stdio;
use std::time::Duration;

use portcullis_gateway::config::RouteSpec;
use portcullis_gateway::config::UpstreamConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

fn python(script: &str) -> Command {
    let mut c = Command::new("python3");
    c.arg(format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    c
}

struct Script {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Script {
    fn start(mut command: Command) -> Script {
        let mut child = command.spawn().expect("python3 runs");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Script { child, lines }
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("the script answers in time")
            .unwrap()
            .expect("the script printed a line")
    }

    async fn json(&mut self) -> Value {
        let line = self.line().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }
}

/// The route of the WebSocket upstream: reading a catalog's live feed.
fn live_route() -> RouteSpec {
    RouteSpec {
        name: Some("live-table".into()),
        host: None,
        methods: vec!["GET".into()],
        path: "/envs/{env}/catalogs/{catalog}/live".into(),
        upstream: "live".into(),
        action: "read".into(),
        resource: "catalog/{catalog}".into(),
        shadow: false,
        assertion: false,
    }
}

/// The live feed's path on the gateway.
const LIVE: &str = "/envs/prod/catalogs/sales/live";

/// The WebSocket upstream, and a gateway in front of it (`tweak`ed).
async fn live(tweak: impl FnOnce(&mut portcullis_gateway::config::GatewayConfig)) -> (Script, Gw) {
    let mut upstream = Script::start(python("ws_upstream.py"));
    let port: u16 = upstream.line().await.parse().expect("a port");
    (upstream, ws_gateway_with(port, tweak).await)
}

/// The demo gateway with the WebSocket upstream and its route first,
/// then `tweak`.
async fn ws_gateway_with(
    upstream_port: u16,
    tweak: impl FnOnce(&mut portcullis_gateway::config::GatewayConfig),
) -> Gw {
    gateway_with(Some(revision(1)), |c, _| {
        c.upstreams.insert(
            "live".into(),
            UpstreamConfig {
                url: format!("http://127.0.0.1:{upstream_port}"),
                timeout_ms: 5_000,
                ..c.upstreams["app"].clone()
            },
        );
        c.routes.insert(0, live_route());
        tweak(c);
    })
    .await
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_revoked_on_swap_closes_with_1008() {
    let (mut upstream, gw) = live(|_| {}).await;
    let url = format!("ws://{}{LIVE}", gw.running.proxy_addr);
    let mut client = Script::start({
        let mut c = python("ws_client.py");
        c.args([url, bearer("pat"), bearer("dave"), bearer("gus")]);
        c
    });

    // Authorized at the upgrade like any request.
    let never = client.json().await;
    assert_eq!(never["status"], 403, "{never}");
    assert_eq!(never["reason"], "no_grant", "{never}");
    let anonymous = client.json().await;
    assert_eq!(anonymous["status"], 401, "{anonymous}");

    // Both open; the upstream saw who, and messages pass both ways.
    let ready = client.json().await;
    assert_eq!(ready["step"], "ready", "{ready}");
    assert_eq!(ready["hello"], json!(["user/pat", "user/dave"]));
    assert_eq!(ready["echoes"][0], "ping from the one who loses");
    assert_eq!(ready["echoes"][1], 40_000);
    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert_eq!(
        metric(&metrics, "portcullis_upgraded_connections_open"),
        Some(2.0),
        "{metrics}"
    );

    // pat loses access: pat's connection is closed at both ends, dave's stays.
    let installed = gw.push(pat_deactivated(), false).await;
    assert_eq!(installed.status, 200, "{}", installed.body);
    client
        .child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"swapped\n")
        .await
        .unwrap();
    let losing = client.json().await;
    assert_eq!(losing["code"], 1008, "{losing}");
    let reason = losing["reason"].as_str().unwrap();
    assert!(reason.starts_with("account_deactivated"), "{reason}");
    let at_upstream = upstream.json().await;
    assert_eq!(at_upstream["closed"], 1008, "{at_upstream}");
    assert_eq!(at_upstream["reason"], reason);
    let keeping = client.json().await;
    assert_eq!(keeping["echo"], "still here", "{keeping}");

    let (_, metrics) = gw.admin_get("/-/metrics").await;
    assert_eq!(
        metric(&metrics, "portcullis_upgraded_connections_revoked_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "portcullis_upgraded_connections_rechecked_total"),
        Some(2.0),
        "{metrics}"
    );
    assert!(client.child.wait().await.unwrap().success());
}

/// A raw HTTP/1.1 exchange with the gateway: the status line and the rest.
async fn raw(gw: &Gw, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(gw.running.proxy_addr)
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn h2c_and_unlisted_upgrades_are_never_passed() {
    // The demo's echo upstream answers any request with what it received:
    // an upgrade the gateway does not pass arrives as a plain request.
    let gw = gateway().await;
    let token = bearer("pat");
    for upgrade in ["h2c", "foo/1", "websocket, h2c"] {
        let answer = raw(
            &gw,
            &format!(
                "GET /envs/prod/catalogs/sales/tables/orders HTTP/1.1\r\nHost: a\r\n\
                 Authorization: {token}\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                 Upgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{upgrade}: {answer}");
        assert!(answer.contains("\"upstream\":\"demo\""), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_websockets_are_closed_with_1001_on_shutdown() {
    let (mut upstream, gw) = live(|_| {}).await;
    let url = format!("ws://{}{LIVE}", gw.running.proxy_addr);
    let mut client = Script::start({
        let mut c = Command::new("python3");
        c.args([
            "-c",
            r#"
import json, sys
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
with connect(sys.argv[1], additional_headers={"Authorization": sys.argv[2]}) as ws:
    print(json.dumps({"hello": ws.recv(timeout=5)}), flush=True)
    try:
        ws.recv(timeout=20)
    except ConnectionClosed as e:
        print(json.dumps({"code": e.rcvd.code if e.rcvd else None, "reason": e.rcvd.reason if e.rcvd else None}), flush=True)
"#,
            &url,
            &bearer("dave"),
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true);
        c
    });
    assert_eq!(client.json().await["hello"], "user/dave");
    tokio::time::timeout(Duration::from_secs(20), gw.running.shutdown())
        .await
        .expect("the gateway stops");
    let closed = client.json().await;
    assert_eq!(closed["code"], 1001, "{closed}");
    assert_eq!(closed["reason"], "the gateway is shutting down");
    assert_eq!(upstream.json().await["closed"], 1001);
}

#[tokio::test]
async fn an_upgrade_to_an_http2_upstream_is_refused_not_downgraded() {
    let gw = gateway_with(Some(revision(1)), |c, _| {
        let app = c.upstreams["app"].clone();
        c.upstreams.insert(
            "h2".into(),
            UpstreamConfig {
                protocol: portcullis_gateway::config::UpstreamProtocol::Http2,
                ..app
            },
        );
        for r in &mut c.routes {
            r.upstream = "h2".into();
        }
    })
    .await;
    let token = bearer("pat");
    let answer = raw(
        &gw,
        &format!(
            "GET /envs/prod/catalogs/sales/tables/orders HTTP/1.1\r\nHost: a\r\n\
             Authorization: {token}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(
        answer.contains("an Upgrade needs an http1 upstream"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_over_tls_at_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca_file) = common::ca::listener_tls(dir.path(), &["localhost"]);
    let (_upstream, gw) = live(|c| c.server.tls = Some(tls)).await;
    let url = format!("wss://localhost:{}{LIVE}", gw.running.proxy_addr.port());
    let out = Command::new("python3")
        .args([
            "-c",
            r#"
import json, ssl, sys
from websockets.sync.client import connect
context = ssl.create_default_context(cafile=sys.argv[3])
with connect(sys.argv[1], additional_headers={"Authorization": sys.argv[2]}, ssl=context) as ws:
    hello = ws.recv(timeout=5)
    ws.send("over TLS")
    print(json.dumps({"hello": hello, "echo": ws.recv(timeout=5)}))
"#,
            &url,
            &bearer("dave"),
            ca_file.to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(r["hello"], "user/dave");
    assert_eq!(r["echo"], "over TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_websocket_is_closed_after_the_idle_timeout() {
    let (mut upstream, gw) = live(|c| c.server.upgrade_idle_timeout_ms = 600).await;
    let url = format!("ws://{}{LIVE}", gw.running.proxy_addr);
    let out = Command::new("python3")
        .args([
            "-c",
            r#"
import json, sys, time
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
# No pings from the client library: only what the test sends.
with connect(sys.argv[1], additional_headers={"Authorization": sys.argv[2]}, ping_interval=None) as ws:
    ws.recv(timeout=5)
    # Traffic every 300 ms keeps it open past the timeout...
    for i in range(4):
        time.sleep(0.3)
        ws.send("still here")
        ws.recv(timeout=5)
    started = time.monotonic()
    try:
        ws.recv(timeout=10)
        print(json.dumps({"closed": False}))
    except ConnectionClosed as e:
        print(json.dumps({"code": e.rcvd.code, "reason": e.rcvd.reason, "after": time.monotonic() - started}))
"#,
            &url,
            &bearer("dave"),
        ])
        .output()
        .await
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    // ...then silence closes it.
    assert_eq!(r["code"], 1001, "{r}");
    assert_eq!(r["reason"], "no traffic for 600 ms");
    assert!(r["after"].as_f64().unwrap() < 5.0, "{r}");
    assert_eq!(upstream.json().await["closed"], 1001);
}
